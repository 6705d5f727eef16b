import type { QueryResult, QueryResultRow } from 'pg';

/** A query on the current transaction's connection, or on the pool outside one. */
export type Query = <R extends QueryResultRow = QueryResultRow>(
  sql: string,
  params?: unknown[],
) => Promise<QueryResult<R>>;

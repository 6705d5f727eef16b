import { AsyncLocalStorage } from 'node:async_hooks';
import { FleetwaveError } from '@fleetwave/shared';
import pg, { type PoolClient } from 'pg';
import type { Logger } from 'pino';
import { PgCluster } from '../../cluster/pg-cluster.js';
import type { ControllerDatabase } from '../database.js';
import { PgFleet } from './fleet.js';
import { PgHealth } from './health.js';
import { PgJobs } from './jobs.js';
import { migratePg } from './migrations.js';
import type { Query } from './query.js';
import { PgRollouts } from './rollouts.js';
import { PgTelemetryLog } from './telemetry-log.js';

/** BIGINT (int8) columns as numbers: the controller's are epoch milliseconds, counters and cursors, all < 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** The URL with its password hidden (for messages and logs). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** Errors of node-postgres that mean "the database is not there (now)", as opposed to a bad statement. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ENOTFOUND',
      'ETIMEDOUT',
      'EPIPE',
      'EAI_AGAIN',
      '57P01',
      '57P02',
      '57P03',
      '08006',
      '08003',
      '08001',
    ].includes(e.code ?? '') ||
    /Connection terminated|connection timeout|Client has encountered a connection error/i.test(e.message ?? '')
  );
}

interface TxContext {
  client: PoolClient;
  open: boolean;
  savepoints: number;
}

export interface PgDatabaseOptions {
  url: string;
  /** Pool size (default 10). */
  max?: number;
  log?: Logger;
}

/**
 * The controller's state on PostgreSQL through a node-postgres pool. A transaction takes a connection of its own and
 * every port call made in its async context (AsyncLocalStorage) runs on it; other calls take any pooled connection.
 * A connection the server ends (a restart, `pg_terminate_backend`) is dropped from the pool and the next call opens a
 * new one: callers see that one statement fail, and the ones that acknowledge (ingest, jobs) do not acknowledge it.
 */
export class PgDatabase implements ControllerDatabase {
  readonly kind = 'postgres';
  readonly where: string;
  readonly pool: pg.Pool;
  readonly fleet;
  readonly jobs;
  readonly rollouts;
  readonly health;
  readonly telemetry;
  readonly cluster;
  private readonly context = new AsyncLocalStorage<TxContext>();

  private constructor(o: PgDatabaseOptions) {
    this.where = redactUrl(o.url);
    this.pool = new pg.Pool({
      connectionString: o.url,
      max: o.max ?? 10,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
      // a process frozen inside a transaction (SIGSTOP, a VM paused) cannot hold its locks, the leader lease row
      // among them, for longer than this: the server ends its session
      options: '-c idle_in_transaction_session_timeout=10000',
      types,
    });
    // an idle connection ended by the server: the pool drops it; without a listener it would end the process
    this.pool.on('error', (err) =>
      o.log?.warn({ err: err.message }, 'database connection lost; it is reopened on use'),
    );
    const q: Query = (sql, params) => {
      const c = this.context.getStore();
      return (c?.open ? c.client : this.pool).query(sql, params);
    };
    this.fleet = new PgFleet(q);
    this.jobs = new PgJobs(q);
    this.rollouts = new PgRollouts(q);
    this.health = new PgHealth(q);
    this.cluster = new PgCluster(q);
    this.telemetry = new PgTelemetryLog(this.pool, (fn) => this.transaction(() => fn(this.context.getStore()!.client)));
  }

  /** Connects, checks the schema and migrates it; clear errors for a bad URL, no answer, or a newer schema. */
  static async open(o: PgDatabaseOptions): Promise<PgDatabase> {
    try {
      const u = new URL(o.url);
      if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error('not postgres://');
      if (u.pathname.length <= 1) throw new Error('no database name');
    } catch (err) {
      throw new FleetwaveError(
        'E_DATABASE_URL',
        `${redactUrl(o.url)} is not a PostgreSQL URL the controller can use (${(err as Error).message}): write postgres://user[:password]@host[:port]/database`,
      );
    }
    const db = new PgDatabase(o);
    try {
      await migratePg(db.pool);
    } catch (err) {
      await db.pool.end().catch(() => {});
      if (err instanceof FleetwaveError) throw err;
      const e = err as { code?: string; message: string };
      if (e.code === '3D000') {
        throw new FleetwaveError(
          'E_DATABASE_URL',
          `the database in ${db.where} does not exist: create it (createdb, or CREATE DATABASE) and start again`,
        );
      }
      if (e.code === '28P01' || e.code === '28000') {
        throw new FleetwaveError('E_DATABASE_URL', `PostgreSQL refused the credentials in ${db.where}: ${e.message}`);
      }
      if (isConnectionError(err) || e.code === undefined) {
        throw new FleetwaveError(
          'E_DATABASE_UNREACHABLE',
          `no PostgreSQL answers at ${db.where} (${e.message}): is it running and reachable from here?`,
        );
      }
      throw err;
    }
    return db;
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const open = this.context.getStore();
    if (open?.open) {
      const name = `fw_sp${++open.savepoints}`;
      await open.client.query(`SAVEPOINT ${name}`);
      try {
        const r = await fn();
        await open.client.query(`RELEASE SAVEPOINT ${name}`);
        return r;
      } catch (err) {
        await open.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
        await open.client.query(`RELEASE SAVEPOINT ${name}`);
        throw err;
      }
    }
    const client = await this.pool.connect();
    const c: TxContext = { client, open: true, savepoints: 0 };
    let broken: Error | undefined;
    // a connection ended while checked out emits 'error' (unhandled, it would end the process); the statement in
    // flight fails with it as well, and that is what the caller sees
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const r = await this.context.run(c, fn);
      await client.query('COMMIT');
      return r;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else {
        await client.query('ROLLBACK').catch((e: Error) => {
          broken = e;
        });
      }
      throw err;
    } finally {
      c.open = false;
      client.off('error', onError);
      // a connection that failed, or whose rollback failed, is closed rather than handed out again
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

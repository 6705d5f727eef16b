import { isAbsolute, join, resolve } from 'node:path';
import { FleetwaveError } from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { ControllerDatabase } from './database.js';
import { PgDatabase, redactUrl } from './pg/database.js';
import { SqliteDatabase } from './sqlite-database.js';

/** Where `--database` (or FLEETWAVE_DATABASE_URL) points: a SQLite file or a PostgreSQL database. */
export type DatabaseTarget = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

/**
 * Reads a database URL: `postgres://…` / `postgresql://…`, or `sqlite:<file>` (relative to the working directory;
 * `sqlite:///abs/path` too). No URL: the SQLite file `fleet.db` in the data directory (the embedded default).
 */
export function databaseTarget(url: string | undefined, dataDir: string): DatabaseTarget {
  if (url === undefined || url === '') return { kind: 'sqlite', file: join(dataDir, 'fleet.db') };
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url };
  const m = /^sqlite:(?:\/\/)?(.+)$/.exec(url);
  if (m) return { kind: 'sqlite', file: isAbsolute(m[1]!) ? m[1]! : resolve(m[1]!) };
  throw new FleetwaveError(
    'E_DATABASE_URL',
    `${redactUrl(url)} is not a database URL the controller knows: use postgres://user@host:5432/db or sqlite:<file> (or leave it out for <data-dir>/fleet.db)`,
  );
}

export async function openDatabase(o: {
  url: string | undefined;
  dataDir: string;
  log?: Logger;
  poolSize?: number;
}): Promise<ControllerDatabase> {
  const t = databaseTarget(o.url, o.dataDir);
  if (t.kind === 'sqlite') return new SqliteDatabase(t.file);
  return PgDatabase.open({ url: t.url, ...(o.log && { log: o.log }), ...(o.poolSize && { max: o.poolSize }) });
}

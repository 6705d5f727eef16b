import { createHash } from 'node:crypto';
import { FleetwaveError } from '@fleetwave/shared';
import type { ControllerDatabase } from './database.js';
import { PgDatabase } from './pg/database.js';
import { SqliteDatabase } from './sqlite-database.js';

/**
 * Every table of the controller's state, in both schemas (the same names and columns), with its key: what
 * `fleetwave db copy` moves (not the replicas and the leader lease: those are the running cluster's, made anew).
 * Rows keep their ids and cursors, so a backend's telemetry cursor and an event reader's
 * position mean the same after the move.
 */
export const TABLES: readonly { name: string; key: readonly string[]; booleans?: readonly string[] }[] = [
  { name: 'devices', key: ['id'] },
  { name: 'api_tokens', key: ['id'] },
  { name: 'enrolment_tokens', key: ['id'] },
  { name: 'audit', key: ['id'] },
  { name: 'config_layers', key: ['name'] },
  { name: 'config_history', key: ['id'] },
  { name: 'releases', key: ['name', 'version'] },
  { name: 'job_executions', key: ['job_id', 'thing', 'execution_number'] },
  { name: 'rollouts', key: ['id'], booleans: ['active'] },
  { name: 'rollout_events', key: ['id'] },
  { name: 'health_samples', key: ['device', 'ts'] },
  { name: 'device_failures', key: ['device'] },
  { name: 'risk_scores', key: ['device'], booleans: ['alerted'] },
  { name: 'models', key: ['name'] },
  { name: 'device_certificates', key: ['fingerprint'] },
  { name: 'telemetry', key: ['cursor'] },
];

type Row = Record<string, unknown>;
const PAGE = 5000;

/** A row with booleans as 0/1 and numbers as numbers: the same in both databases (what checksums compare). */
function normal(row: Row, booleans: readonly string[] = []): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = booleans.includes(k) ? (v === true || v === 1 ? 1 : 0) : typeof v === 'bigint' ? Number(v) : v;
  }
  return out;
}

async function* rows(db: ControllerDatabase, t: (typeof TABLES)[number]): AsyncGenerator<Row[]> {
  const order = t.key.map((k) => (db instanceof PgDatabase ? `"${k}" COLLATE "C"` : `"${k}"`));
  // integer keys sort as integers; COLLATE applies only to text
  const orderBy = t.key
    .map((k, i) => (['id', 'cursor', 'ts', 'execution_number'].includes(k) ? `"${k}"` : order[i]))
    .join(', ');
  for (let offset = 0; ; offset += PAGE) {
    const sql = `SELECT * FROM ${t.name} ORDER BY ${orderBy} LIMIT ${PAGE} OFFSET ${offset}`;
    const page =
      db instanceof SqliteDatabase
        ? (db.db.prepare(sql).all() as Row[])
        : db instanceof PgDatabase
          ? (await db.pool.query(sql)).rows
          : [];
    if (page.length === 0) return;
    yield page.map((r) => normal(r, t.booleans));
    if (page.length < PAGE) return;
  }
}

/** Row count and an order-independent checksum (sum of per-row SHA-256 prefixes mod 2^64) of a table. */
export async function tableSummary(db: ControllerDatabase, t: (typeof TABLES)[number]) {
  let count = 0;
  let sum = 0n;
  for await (const page of rows(db, t)) {
    for (const r of page) {
      count++;
      const keys = Object.keys(r).sort();
      const h = createHash('sha256')
        .update(JSON.stringify(keys.map((k) => [k, r[k]])))
        .digest();
      sum = (sum + h.readBigUInt64BE(0)) & 0xffff_ffff_ffff_ffffn;
    }
  }
  return { table: t.name, rows: count, checksum: sum.toString(16).padStart(16, '0') };
}

async function insertPage(db: ControllerDatabase, t: (typeof TABLES)[number], page: Row[]): Promise<void> {
  const cols = Object.keys(page[0]!);
  const list = cols.map((c) => `"${c}"`).join(', ');
  if (db instanceof SqliteDatabase) {
    const stmt = db.db.prepare(`INSERT INTO ${t.name} (${list}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
    db.db.transaction(() => {
      for (const r of page) stmt.run(r);
    })();
    return;
  }
  if (db instanceof PgDatabase) {
    const values: unknown[] = [];
    const tuples = page.map((r) => {
      const ph = cols.map((c) => {
        values.push(t.booleans?.includes(c) ? r[c] === 1 : r[c]);
        return `$${values.length}`;
      });
      return `(${ph.join(', ')})`;
    });
    // at most 65535 parameters per statement
    const per = Math.max(1, Math.floor(60_000 / cols.length));
    if (tuples.length > per) {
      for (let i = 0; i < page.length; i += per) await insertPage(db, t, page.slice(i, i + per));
      return;
    }
    await db.pool.query(`INSERT INTO ${t.name} (${list}) VALUES ${tuples.join(', ')}`, values);
  }
}

/** Whether the database holds any controller state (any row in any table). */
export async function isEmpty(db: ControllerDatabase): Promise<boolean> {
  for (const t of TABLES) {
    for await (const page of rows(db, t)) if (page.length > 0) return false;
  }
  return true;
}

export interface CopyReport {
  tables: { table: string; rows: number; checksum: string }[];
}

/**
 * Copies all controller state from one database to another (either kind to either kind), then verifies every table
 * by row count and checksum. Refuses a target that holds any state (E_DATABASE_NOT_EMPTY) and changes nothing then.
 * Stop the controller first: rows written during the copy may be missed (the verification then fails).
 */
export async function copyDatabase(
  from: ControllerDatabase,
  to: ControllerDatabase,
  progress: (table: string, rows: number) => void = () => {},
): Promise<CopyReport> {
  if (!(await isEmpty(to))) {
    throw new FleetwaveError(
      'E_DATABASE_NOT_EMPTY',
      `${to.where} already holds controller state: copy into an empty database (nothing was changed)`,
    );
  }
  for (const t of TABLES) {
    let n = 0;
    for await (const page of rows(from, t)) {
      await insertPage(to, t, page);
      n += page.length;
      progress(t.name, n);
    }
  }
  if (to instanceof PgDatabase) {
    // the counters that hand out ids and cursors go on after the copied ones
    await to.pool.query('UPDATE telemetry_head SET last = (SELECT COALESCE(MAX(cursor), 0) FROM telemetry)');
    await to.pool.query('UPDATE rollout_events_head SET last = (SELECT COALESCE(MAX(id), 0) FROM rollout_events)');
    for (const table of ['audit', 'config_history']) {
      await to.pool.query(
        `SELECT setval(pg_get_serial_sequence('${table}', 'id'), GREATEST((SELECT COALESCE(MAX(id), 0) FROM ${table}), 1), (SELECT COUNT(*) > 0 FROM ${table}))`,
      );
    }
  }
  const tables = [];
  for (const t of TABLES) {
    const a = await tableSummary(from, t);
    const b = await tableSummary(to, t);
    if (a.rows !== b.rows || a.checksum !== b.checksum) {
      throw new FleetwaveError(
        'E_DATABASE_CORRUPT',
        `the copy of ${t.name} differs: ${a.rows} rows (checksum ${a.checksum}) in the source, ${b.rows} (${b.checksum}) in the target; was the controller still running? Drop the target and copy again`,
      );
    }
    tables.push(a);
  }
  return { tables };
}

import { FleetwaveError } from '@fleetwave/shared';
import type { Pool, PoolClient } from 'pg';

/**
 * The controller's PostgreSQL schema, in versions (append only; a released migration never changes). Each runs in
 * one transaction with the version bump, under an advisory lock, so two controllers starting together cannot both
 * migrate and a failed migration leaves nothing half done.
 */
export const pgMigrations: readonly string[] = Object.freeze([
  // 1: telemetry, with its cursor handed out from one head row (see PgTelemetryLog: commit order, gap-free)
  `CREATE TABLE telemetry (
     cursor BIGINT PRIMARY KEY,
     device TEXT NOT NULL,
     seq BIGINT NOT NULL,
     stream TEXT NOT NULL,
     ts BIGINT NOT NULL,
     kind TEXT NOT NULL,
     record TEXT NOT NULL,
     received_at BIGINT NOT NULL,
     UNIQUE (device, seq)
   );
   CREATE INDEX telemetry_received ON telemetry (received_at);
   CREATE TABLE telemetry_head (id INT PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);
   INSERT INTO telemetry_head VALUES (1, 0);`,
]);

/** pg_advisory_xact_lock key for migrations ("fwmg"). */
const MIGRATION_LOCK = 0x66776d67;

/** The schema version, from the one row of `fleetwave_schema` (made, at 0, on a database that has none). */
async function versionOf(c: PoolClient): Promise<number> {
  await c.query('CREATE TABLE IF NOT EXISTS fleetwave_schema (version INT NOT NULL)');
  await c.query('INSERT INTO fleetwave_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM fleetwave_schema)');
  const r = await c.query<{ version: number }>('SELECT version FROM fleetwave_schema');
  return r.rows[0]!.version;
}

/**
 * Brings the database to `upTo` (default: the newest this controller knows); returns the version it is at. A
 * database on a newer schema than this controller is refused with what to do, and changed in no way.
 */
export async function migratePg(pool: Pool, upTo = pgMigrations.length): Promise<number> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    const at = await versionOf(c);
    if (at > pgMigrations.length) {
      throw new FleetwaveError(
        'E_CONFIG_INVALID',
        `the database is at schema version ${at}, newer than this controller's ${pgMigrations.length}: run the newer controller (nothing was changed)`,
      );
    }
    for (let v = at; v < upTo; v++) await c.query(pgMigrations[v]!);
    await c.query('UPDATE fleetwave_schema SET version = $1', [Math.max(at, upTo)]);
    await c.query('COMMIT');
    return Math.max(at, upTo);
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

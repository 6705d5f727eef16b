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
  // 2: everything else the SQLite file holds (its migrations 1-5): devices, credentials, audit, desired
  // configuration, releases, job executions, rollouts and their events, health history, failure labels, risk scores
  `CREATE TABLE devices (
     id TEXT PRIMARY KEY,
     tags TEXT NOT NULL DEFAULT '{}',
     hardware TEXT,
     agent_version TEXT,
     firmware_version TEXT,
     created_at BIGINT NOT NULL,
     last_seen BIGINT,
     presence TEXT NOT NULL DEFAULT 'unknown',
     applied_config_version BIGINT,
     revoked_at BIGINT,
     token_hash TEXT NOT NULL,
     mosquitto_hash TEXT NOT NULL DEFAULT '',
     desired_version BIGINT NOT NULL DEFAULT 0,
     desired_config TEXT,
     config_status TEXT,
     config_reason TEXT,
     releases TEXT NOT NULL DEFAULT '{}'
   );
   CREATE TABLE audit (
     id BIGSERIAL PRIMARY KEY,
     ts BIGINT NOT NULL,
     actor TEXT NOT NULL,
     action TEXT NOT NULL,
     target TEXT NOT NULL,
     outcome TEXT NOT NULL,
     details TEXT NOT NULL
   );
   CREATE TABLE api_tokens (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     role TEXT NOT NULL,
     hash TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     revoked_at BIGINT
   );
   CREATE TABLE enrolment_tokens (
     id TEXT PRIMARY KEY,
     hash TEXT NOT NULL,
     uses_left BIGINT NOT NULL,
     tags TEXT NOT NULL DEFAULT '{}',
     created_at BIGINT NOT NULL,
     expires_at BIGINT
   );
   CREATE TABLE config_layers (name TEXT PRIMARY KEY, layer TEXT NOT NULL, updated_at BIGINT NOT NULL);
   CREATE TABLE config_history (
     id BIGSERIAL PRIMARY KEY,
     ts BIGINT NOT NULL,
     actor TEXT NOT NULL,
     action TEXT NOT NULL,
     name TEXT NOT NULL,
     before TEXT,
     after TEXT
   );
   CREATE TABLE releases (
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     manifest TEXT NOT NULL,
     added_at BIGINT NOT NULL,
     PRIMARY KEY (name, version)
   );
   CREATE TABLE job_executions (
     job_id TEXT NOT NULL,
     thing TEXT NOT NULL,
     execution_number BIGINT NOT NULL,
     status TEXT NOT NULL,
     status_details TEXT,
     document TEXT NOT NULL,
     queued_at BIGINT NOT NULL,
     started_at BIGINT,
     last_updated_at BIGINT NOT NULL,
     version_number BIGINT NOT NULL,
     step_deadline BIGINT,
     rollout TEXT,
     PRIMARY KEY (job_id, thing, execution_number)
   );
   CREATE INDEX job_executions_thing ON job_executions (thing, status);
   CREATE INDEX job_executions_rollout ON job_executions (rollout);
   CREATE TABLE rollouts (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     state TEXT NOT NULL,
     active BOOLEAN NOT NULL,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL
   );
   CREATE TABLE rollout_events (
     id BIGINT PRIMARY KEY,
     ts BIGINT NOT NULL,
     rollout TEXT NOT NULL,
     kind TEXT NOT NULL,
     details TEXT NOT NULL
   );
   CREATE INDEX rollout_events_rollout ON rollout_events (rollout, id);
   CREATE TABLE rollout_events_head (id INT PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);
   INSERT INTO rollout_events_head VALUES (1, 0);
   CREATE TABLE health_samples (
     device TEXT NOT NULL,
     ts BIGINT NOT NULL,
     metrics TEXT NOT NULL,
     PRIMARY KEY (device, ts)
   );
   CREATE INDEX health_samples_ts ON health_samples (ts);
   CREATE TABLE device_failures (
     device TEXT PRIMARY KEY,
     ts BIGINT NOT NULL,
     mode TEXT NOT NULL,
     status TEXT NOT NULL,
     actor TEXT NOT NULL,
     note TEXT
   );
   CREATE TABLE risk_scores (
     device TEXT PRIMARY KEY,
     ts BIGINT NOT NULL,
     risk DOUBLE PRECISION NOT NULL,
     mode TEXT,
     signals TEXT NOT NULL,
     alerted BOOLEAN NOT NULL DEFAULT FALSE
   );`,
  // 3: the risk model (SQLite migration 6)
  `CREATE TABLE models (name TEXT PRIMARY KEY, model TEXT NOT NULL, installed_at BIGINT NOT NULL);`,
  // 4: controller replicas and the leader lease (SQLite migration 7)
  `CREATE TABLE cluster_replicas (
     id TEXT PRIMARY KEY, started_at BIGINT NOT NULL, seen_at BIGINT NOT NULL, http TEXT, lag TEXT NOT NULL DEFAULT '{}'
   );
   CREATE TABLE cluster_lease (
     name TEXT PRIMARY KEY, holder TEXT NOT NULL, token BIGINT NOT NULL, since BIGINT NOT NULL, expires_at BIGINT NOT NULL
   );`,
  // 5: device client certificates (SQLite migration 8)
  `CREATE TABLE device_certificates (
     fingerprint TEXT PRIMARY KEY, device TEXT NOT NULL, serial TEXT NOT NULL, not_before BIGINT NOT NULL,
     not_after BIGINT NOT NULL, issued_at BIGINT NOT NULL, revoked_at BIGINT
   );
   CREATE INDEX device_certificates_device ON device_certificates(device);`,
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
        'E_DATABASE_SCHEMA',
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

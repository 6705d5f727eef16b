/**
 * Schema migrations of the controller's SQLite store, in order. The database's `user_version` is the number of
 * migrations applied. Never edit a shipped migration: append a new one (a test migrates from every earlier version).
 */
export const migrations: readonly string[] = Object.freeze([
  // 1: devices, telemetry, audit, API tokens
  `CREATE TABLE devices (
     id TEXT PRIMARY KEY,
     tags TEXT NOT NULL DEFAULT '{}',
     hardware TEXT,
     agent_version TEXT,
     firmware_version TEXT,
     created_at INTEGER NOT NULL,
     last_seen INTEGER,
     presence TEXT NOT NULL DEFAULT 'unknown',
     applied_config_version INTEGER,
     revoked_at INTEGER,
     token_hash TEXT NOT NULL
   );
   CREATE TABLE telemetry (
     cursor INTEGER PRIMARY KEY AUTOINCREMENT,
     device TEXT NOT NULL,
     seq INTEGER NOT NULL,
     stream TEXT NOT NULL,
     ts INTEGER NOT NULL,
     kind TEXT NOT NULL,
     record TEXT NOT NULL,
     received_at INTEGER NOT NULL,
     UNIQUE (device, seq)
   );
   CREATE INDEX telemetry_received ON telemetry(received_at);
   CREATE TABLE audit (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts INTEGER NOT NULL,
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
     created_at INTEGER NOT NULL,
     revoked_at INTEGER
   );`,
  // 2: Mosquitto password hashes for external brokers; fleet enrolment tokens
  `ALTER TABLE devices ADD COLUMN mosquitto_hash TEXT NOT NULL DEFAULT '';
   CREATE TABLE enrolment_tokens (
     id TEXT PRIMARY KEY,
     hash TEXT NOT NULL,
     uses_left INTEGER NOT NULL,
     tags TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL,
     expires_at INTEGER
   );`,
  // 3: desired configuration: layers, their history, and what each device was sent and reported
  `ALTER TABLE devices ADD COLUMN desired_version INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE devices ADD COLUMN desired_config TEXT;
   ALTER TABLE devices ADD COLUMN config_status TEXT;
   ALTER TABLE devices ADD COLUMN config_reason TEXT;
   CREATE TABLE config_layers (name TEXT PRIMARY KEY, layer TEXT NOT NULL, updated_at INTEGER NOT NULL);
   CREATE TABLE config_history (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts INTEGER NOT NULL,
     actor TEXT NOT NULL,
     action TEXT NOT NULL,
     name TEXT NOT NULL,
     before TEXT,
     after TEXT
   );`,
  // 4: releases, job executions (the jobs service), rollouts and their events; what each device runs
  `ALTER TABLE devices ADD COLUMN releases TEXT NOT NULL DEFAULT '{}';
   CREATE TABLE releases (
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     manifest TEXT NOT NULL,
     added_at INTEGER NOT NULL,
     PRIMARY KEY (name, version)
   );
   CREATE TABLE job_executions (
     job_id TEXT NOT NULL,
     thing TEXT NOT NULL,
     execution_number INTEGER NOT NULL,
     status TEXT NOT NULL,
     status_details TEXT,
     document TEXT NOT NULL,
     queued_at INTEGER NOT NULL,
     started_at INTEGER,
     last_updated_at INTEGER NOT NULL,
     version_number INTEGER NOT NULL,
     step_deadline INTEGER,
     rollout TEXT,
     PRIMARY KEY (job_id, thing, execution_number)
   );
   CREATE INDEX job_executions_thing ON job_executions(thing, status);
   CREATE INDEX job_executions_rollout ON job_executions(rollout);
   CREATE TABLE rollouts (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     state TEXT NOT NULL,
     active INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE rollout_events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts INTEGER NOT NULL,
     rollout TEXT NOT NULL,
     kind TEXT NOT NULL,
     details TEXT NOT NULL
   );`,
  // 5: the fleet's health history, failure labels (failed, replaced, candidates) and the latest risk scores
  `CREATE TABLE health_samples (
     device TEXT NOT NULL,
     ts INTEGER NOT NULL,
     metrics TEXT NOT NULL,
     PRIMARY KEY (device, ts)
   ) WITHOUT ROWID;
   CREATE INDEX health_samples_ts ON health_samples(ts);
   CREATE TABLE device_failures (
     device TEXT PRIMARY KEY,
     ts INTEGER NOT NULL,
     mode TEXT NOT NULL,
     status TEXT NOT NULL,
     actor TEXT NOT NULL,
     note TEXT
   );
   CREATE TABLE risk_scores (
     device TEXT PRIMARY KEY,
     ts INTEGER NOT NULL,
     risk REAL NOT NULL,
     mode TEXT,
     signals TEXT NOT NULL,
     alerted INTEGER NOT NULL DEFAULT 0
   );`,
  // 6: the risk model, kept in the database (it was <data-dir>/model.json) so every controller on it has the same one
  `CREATE TABLE models (name TEXT PRIMARY KEY, model TEXT NOT NULL, installed_at INTEGER NOT NULL);`,
  // 7: controller replicas and the leader lease (the fencing token rises with every take-over)
  `CREATE TABLE cluster_replicas (
     id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, seen_at INTEGER NOT NULL, http TEXT, lag TEXT NOT NULL DEFAULT '{}'
   );
   CREATE TABLE cluster_lease (
     name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, since INTEGER NOT NULL, expires_at INTEGER NOT NULL
   );`,
  // 8: device client certificates the fleet CA issued (by SHA-256 fingerprint), and their revocation
  `CREATE TABLE device_certificates (
     fingerprint TEXT PRIMARY KEY, device TEXT NOT NULL, serial TEXT NOT NULL, not_before INTEGER NOT NULL,
     not_after INTEGER NOT NULL, issued_at INTEGER NOT NULL, revoked_at INTEGER
   );
   CREATE INDEX device_certificates_device ON device_certificates(device);`,
]);

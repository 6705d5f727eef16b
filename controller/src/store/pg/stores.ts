import { FleetwaveError, type SignedReleaseManifest } from '@fleetwave/shared';
import type { QueryResult, QueryResultRow } from 'pg';
import {
  type ExecutionRow,
  type ExecutionStateRow,
  executionColumns,
  type JobsStore,
  nextOrder,
  type StoredExecution,
  toExecution,
  toStateRow,
} from '../../jobs/jobs-store.js';
import {
  decodeSample,
  type FailureLabel,
  type HealthSample,
  type HealthStore,
  type ScoreRow,
  type StoredScore,
  toScore,
} from '../../predict/health-store.js';
import {
  assertExpected,
  eventWhere,
  type RolloutEvent,
  type RolloutStore,
  releaseWhere,
  rolloutWhere,
  type StoredRelease,
} from '../../rollouts/rollout-store.js';
import type { RolloutState } from '../../rollouts/wave-engine.js';
import { decodeColumn, decodeRollout, JsonObject, Manifest } from '../documents.js';
import { type DeviceRow, patchColumns, toApiToken, toDevice, toEnrolmentToken } from '../fleet-rows.js';
import type {
  ApiTokenRecord,
  AuditEntry,
  ConfigHistoryEntry,
  DevicePatch,
  DeviceRecord,
  EnrolmentTokenRecord,
  FleetStore,
  NewDevice,
  StoredLayer,
} from '../fleet-store.js';

/** A query on the current transaction's connection, or on the pool outside one. */
export type Query = <R extends QueryResultRow = QueryResultRow>(
  sql: string,
  params?: unknown[],
) => Promise<QueryResult<R>>;

export class PgFleet implements FleetStore {
  constructor(private readonly q: Query) {}

  async addDevice(d: NewDevice): Promise<void> {
    const r = await this.q(
      `INSERT INTO devices (id, tags, hardware, created_at, token_hash, mosquitto_hash) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO NOTHING`,
      [d.id, JSON.stringify(d.tags), d.hardware, d.createdAt, d.tokenHash, d.mosquittoHash],
    );
    if (r.rowCount === 0) throw new FleetwaveError('E_DEVICE_EXISTS', `device ${d.id} is already registered`);
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const r = await this.q<DeviceRow>('SELECT * FROM devices WHERE id = $1', [id]);
    return r.rows[0] && toDevice(r.rows[0]);
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return (await this.q<DeviceRow>('SELECT * FROM devices ORDER BY id COLLATE "C"')).rows.map(toDevice);
  }

  async updateDevice(id: string, patch: DevicePatch): Promise<void> {
    const { columns, values } = patchColumns(patch);
    if (columns.length === 0) return;
    const sets = columns.map((c, i) => `${c} = $${i + 1}`).join(', ');
    await this.q(`UPDATE devices SET ${sets} WHERE id = $${columns.length + 1}`, [...values, id]);
  }

  async revokeDevice(id: string, at: number): Promise<boolean> {
    const r = await this.q('UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id]);
    return (r.rowCount ?? 0) > 0;
  }

  async addAudit(e: Omit<AuditEntry, 'id'>): Promise<void> {
    await this.q('INSERT INTO audit (ts, actor, action, target, outcome, details) VALUES ($1, $2, $3, $4, $5, $6)', [
      e.ts,
      e.actor,
      e.action,
      e.target,
      e.outcome,
      e.details,
    ]);
  }

  async audit(limit: number): Promise<AuditEntry[]> {
    return (await this.q<AuditEntry>('SELECT * FROM audit ORDER BY id DESC LIMIT $1', [limit])).rows;
  }

  async addApiToken(t: ApiTokenRecord): Promise<void> {
    await this.q(
      'INSERT INTO api_tokens (id, name, role, hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [t.id, t.name, t.role, t.hash, t.createdAt, t.revokedAt],
    );
  }

  async getApiToken(id: string): Promise<ApiTokenRecord | undefined> {
    const r = (await this.q('SELECT * FROM api_tokens WHERE id = $1', [id])).rows[0];
    return r && toApiToken(r);
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    return (await this.q('SELECT * FROM api_tokens ORDER BY created_at, id')).rows.map(toApiToken);
  }

  async revokeApiToken(id: string, at: number): Promise<boolean> {
    const r = await this.q('UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id]);
    return (r.rowCount ?? 0) > 0;
  }

  async addEnrolmentToken(t: EnrolmentTokenRecord): Promise<void> {
    await this.q(
      'INSERT INTO enrolment_tokens (id, hash, uses_left, tags, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [t.id, t.hash, t.usesLeft, JSON.stringify(t.tags), t.createdAt, t.expiresAt],
    );
  }

  async getEnrolmentToken(id: string): Promise<EnrolmentTokenRecord | undefined> {
    const r = (await this.q('SELECT * FROM enrolment_tokens WHERE id = $1', [id])).rows[0];
    return r && toEnrolmentToken(r);
  }

  async useEnrolmentToken(id: string): Promise<boolean> {
    const r = await this.q('UPDATE enrolment_tokens SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0', [
      id,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  async configLayers(): Promise<StoredLayer[]> {
    const r = await this.q('SELECT name, layer, updated_at FROM config_layers ORDER BY name COLLATE "C"');
    return r.rows.map((x) => ({ name: x.name, layer: x.layer, updatedAt: x.updated_at }));
  }

  async putConfigLayer(l: StoredLayer): Promise<void> {
    await this.q(
      `INSERT INTO config_layers (name, layer, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET layer = excluded.layer, updated_at = excluded.updated_at`,
      [l.name, l.layer, l.updatedAt],
    );
  }

  async deleteConfigLayer(name: string): Promise<boolean> {
    return ((await this.q('DELETE FROM config_layers WHERE name = $1', [name])).rowCount ?? 0) > 0;
  }

  async addConfigHistory(e: Omit<ConfigHistoryEntry, 'id'>): Promise<void> {
    await this.q(
      'INSERT INTO config_history (ts, actor, action, name, before, after) VALUES ($1, $2, $3, $4, $5, $6)',
      [e.ts, e.actor, e.action, e.name, e.before, e.after],
    );
  }

  async configHistory(limit: number, name?: string): Promise<ConfigHistoryEntry[]> {
    const r = await this.q<ConfigHistoryEntry>(
      'SELECT * FROM config_history WHERE ($1::text IS NULL OR name = $1) ORDER BY id DESC LIMIT $2',
      [name ?? null, limit],
    );
    return r.rows;
  }
}

const EXECUTION_COLUMNS =
  'job_id, thing, execution_number, status, status_details, document, queued_at, started_at, last_updated_at, version_number, step_deadline, rollout';

export class PgJobs implements JobsStore {
  constructor(private readonly q: Query) {}

  async insert(e: StoredExecution): Promise<boolean> {
    const c = executionColumns(e);
    const r = await this.q(
      `INSERT INTO job_executions (${EXECUTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT DO NOTHING`,
      [
        c.jobId,
        c.thing,
        c.executionNumber,
        c.status,
        c.statusDetails,
        c.document,
        c.queuedAt,
        c.startedAt,
        c.lastUpdatedAt,
        c.versionNumber,
        c.stepDeadline,
        c.rollout,
      ],
    );
    return r.rowCount === 1;
  }

  async update(e: StoredExecution): Promise<void> {
    const c = executionColumns(e);
    await this.q(
      `UPDATE job_executions SET status = $1, status_details = $2, started_at = $3, last_updated_at = $4,
         version_number = $5, step_deadline = $6
       WHERE job_id = $7 AND thing = $8 AND execution_number = $9`,
      [
        c.status,
        c.statusDetails,
        c.startedAt,
        c.lastUpdatedAt,
        c.versionNumber,
        c.stepDeadline,
        c.jobId,
        c.thing,
        c.executionNumber,
      ],
    );
  }

  async get(jobId: string, thing: string, executionNumber?: number): Promise<StoredExecution | undefined> {
    const r =
      executionNumber === undefined
        ? await this.q<ExecutionRow>(
            'SELECT * FROM job_executions WHERE job_id = $1 AND thing = $2 ORDER BY execution_number DESC LIMIT 1',
            [jobId, thing],
          )
        : await this.q<ExecutionRow>(
            'SELECT * FROM job_executions WHERE job_id = $1 AND thing = $2 AND execution_number = $3',
            [jobId, thing, executionNumber],
          );
    return r.rows[0] && toExecution(r.rows[0]);
  }

  async pending(thing: string): Promise<StoredExecution[]> {
    const r = await this.q<ExecutionRow>(
      `SELECT DISTINCT ON (job_id) * FROM job_executions WHERE thing = $1
       ORDER BY job_id, execution_number DESC`,
      [thing],
    );
    return r.rows
      .filter((x) => x.status === 'QUEUED' || x.status === 'IN_PROGRESS')
      .map(toExecution)
      .sort(nextOrder);
  }

  async lockThings(things: readonly string[]): Promise<void> {
    if (things.length === 0) return;
    // transaction-scoped advisory locks, taken in one order (fewer deadlocks; PostgreSQL breaks the rest)
    await this.q(
      'SELECT pg_advisory_xact_lock(hashtextextended(\'fleetwave-thing:\' || t, 0)) FROM unnest($1::text[]) AS t ORDER BY t COLLATE "C"',
      [[...things]],
    );
  }

  async pendingMany(things: readonly string[]): Promise<Map<string, StoredExecution[]>> {
    const out = new Map<string, StoredExecution[]>(things.map((t) => [t, []]));
    if (things.length === 0) return out;
    const r = await this.q<ExecutionRow>(
      `SELECT * FROM (SELECT DISTINCT ON (thing, job_id) * FROM job_executions WHERE thing = ANY($1::text[])
         ORDER BY thing, job_id, execution_number DESC) latest WHERE status IN ('QUEUED', 'IN_PROGRESS')`,
      [things],
    );
    for (const row of r.rows) out.get(row.thing)?.push(toExecution(row));
    for (const list of out.values()) list.sort(nextOrder);
    return out;
  }

  async statesByRollout(rollout: string): Promise<ExecutionStateRow[]> {
    const r = await this.q<ExecutionRow>(
      `SELECT job_id, thing, execution_number, status, status_details, started_at, last_updated_at FROM job_executions
       WHERE rollout = $1 ORDER BY thing COLLATE "C", job_id COLLATE "C", execution_number`,
      [rollout],
    );
    return r.rows.map(toStateRow);
  }

  async stepTimeoutsDue(now: number): Promise<StoredExecution[]> {
    const r = await this.q<ExecutionRow>(
      "SELECT * FROM job_executions WHERE status = 'IN_PROGRESS' AND step_deadline IS NOT NULL AND step_deadline <= $1",
      [now],
    );
    return r.rows.map(toExecution);
  }
}

export class PgRollouts implements RolloutStore {
  constructor(private readonly q: Query) {}

  async addRelease(m: SignedReleaseManifest, now: number): Promise<'added' | 'same' | 'different'> {
    const r = await this.q(
      'INSERT INTO releases (name, version, manifest, added_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
      [m.name, m.version, JSON.stringify(m), now],
    );
    if (r.rowCount === 1) return 'added';
    const existing = await this.getRelease(m.name, m.version);
    return JSON.stringify(existing) === JSON.stringify(m) ? 'same' : 'different';
  }

  async getRelease(name: string, version: string): Promise<SignedReleaseManifest | undefined> {
    const r = await this.q<{ manifest: string }>('SELECT manifest FROM releases WHERE name = $1 AND version = $2', [
      name,
      version,
    ]);
    return r.rows[0] && decodeColumn(Manifest, r.rows[0].manifest, releaseWhere(name, version));
  }

  async listReleases(): Promise<StoredRelease[]> {
    const r = await this.q<{ name: string; version: string; added_at: number; manifest: string }>(
      'SELECT * FROM releases ORDER BY name COLLATE "C", added_at, version COLLATE "C"',
    );
    return r.rows.map((x) => ({
      name: x.name,
      version: x.version,
      addedAt: x.added_at,
      manifest: decodeColumn(Manifest, x.manifest, releaseWhere(x.name, x.version)),
    }));
  }

  async versionsOf(name: string): Promise<Set<string>> {
    const r = await this.q<{ version: string }>('SELECT version FROM releases WHERE name = $1', [name]);
    return new Set(r.rows.map((x) => x.version));
  }

  async saveRollout(s: RolloutState, active: boolean, now: number, expected?: RolloutState | null): Promise<void> {
    if (expected !== undefined) {
      // FOR UPDATE: the row stays locked until the unit of work commits, so read, compare and write are one step
      const r = await this.q<{ state: string }>('SELECT state FROM rollouts WHERE id = $1 FOR UPDATE', [s.id]);
      assertExpected(s.id, r.rows[0]?.state, expected);
    }
    await this.q(
      `INSERT INTO rollouts (id, name, state, active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, active = excluded.active, updated_at = excluded.updated_at`,
      [s.id, s.plan.name, JSON.stringify(s), active, now],
    );
  }

  async getRollout(id: string): Promise<RolloutState | undefined> {
    const r = await this.q<{ state: string }>('SELECT state FROM rollouts WHERE id = $1', [id]);
    return r.rows[0] && decodeRollout(r.rows[0].state, rolloutWhere(id));
  }

  async listRollouts(opts: { active?: boolean } = {}): Promise<RolloutState[]> {
    const r = await this.q<{ id: string; state: string }>(
      'SELECT id, state FROM rollouts WHERE ($1::boolean IS NULL OR active = $1) ORDER BY created_at, id COLLATE "C"',
      [opts.active ?? null],
    );
    return r.rows.map((x) => decodeRollout(x.state, rolloutWhere(x.id)));
  }

  async countByName(name: string): Promise<number> {
    const r = await this.q<{ n: number }>('SELECT COUNT(*)::int AS n FROM rollouts WHERE name = $1', [name]);
    return r.rows[0]!.n;
  }

  async activeByName(name: string): Promise<RolloutState | undefined> {
    const r = await this.q<{ id: string; state: string }>(
      'SELECT id, state FROM rollouts WHERE name = $1 AND active LIMIT 1',
      [name],
    );
    return r.rows[0] && decodeRollout(r.rows[0].state, rolloutWhere(r.rows[0].id));
  }

  /**
   * Event ids come from one head row, locked until the writing transaction commits (as the telemetry cursor): ids
   * increase in commit order without gaps, so a reader following "after id" (server-sent events, the CLI) never
   * skips an event that commits late.
   */
  async addEvent(e: Omit<RolloutEvent, 'id'>): Promise<RolloutEvent> {
    const r = await this.q<{ id: number }>(
      `WITH next AS (UPDATE rollout_events_head SET last = last + 1 WHERE id = 1 RETURNING last)
       INSERT INTO rollout_events (id, ts, rollout, kind, details) SELECT last, $1, $2, $3, $4 FROM next RETURNING id`,
      [e.ts, e.rollout, e.kind, JSON.stringify(e.details)],
    );
    return { id: r.rows[0]!.id, ...e };
  }

  async lastEventId(): Promise<number> {
    return (await this.q<{ id: number }>('SELECT COALESCE(MAX(id), 0)::bigint AS id FROM rollout_events')).rows[0]!.id;
  }

  async events(opts: { rollout?: string; after?: number; limit?: number } = {}): Promise<RolloutEvent[]> {
    const r = await this.q<{ id: number; ts: number; rollout: string; kind: string; details: string }>(
      `SELECT * FROM rollout_events WHERE id > $1 AND ($2::text IS NULL OR rollout = $2) ORDER BY id LIMIT $3`,
      [opts.after ?? 0, opts.rollout ?? null, opts.limit ?? 1000],
    );
    return r.rows.map((x) => ({ ...x, details: decodeColumn(JsonObject, x.details, eventWhere(x.id)) }));
  }
}

export class PgHealth implements HealthStore {
  constructor(private readonly q: Query) {}

  async add(device: string, ts: number, metrics: Record<string, number>): Promise<void> {
    await this.q(
      `INSERT INTO health_samples (device, ts, metrics) VALUES ($1, $2, $3)
       ON CONFLICT (device, ts) DO UPDATE SET metrics = excluded.metrics`,
      [device, ts, JSON.stringify(metrics)],
    );
  }

  async samples(device: string, from: number, limit = 5000): Promise<HealthSample[]> {
    const r = await this.q<{ ts: number; metrics: string }>(
      `SELECT ts, metrics FROM (SELECT ts, metrics FROM health_samples WHERE device = $1 AND ts >= $2
         ORDER BY ts DESC LIMIT $3) s ORDER BY ts`,
      [device, from, Math.min(limit, Number.MAX_SAFE_INTEGER)],
    );
    return r.rows.map((x) => decodeSample(device, x));
  }

  async latest(device: string): Promise<HealthSample | undefined> {
    const r = await this.q<{ ts: number; metrics: string }>(
      'SELECT ts, metrics FROM health_samples WHERE device = $1 ORDER BY ts DESC LIMIT 1',
      [device],
    );
    return r.rows[0] && decodeSample(device, r.rows[0]);
  }

  async prune(before: number): Promise<number> {
    return (await this.q('DELETE FROM health_samples WHERE ts < $1', [before])).rowCount ?? 0;
  }

  async setLabel(l: FailureLabel): Promise<void> {
    await this.q(
      `INSERT INTO device_failures (device, ts, mode, status, actor, note) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (device) DO UPDATE SET ts = excluded.ts, mode = excluded.mode, status = excluded.status,
         actor = excluded.actor, note = excluded.note`,
      [l.device, l.ts, l.mode, l.status, l.actor, l.note],
    );
  }

  async removeLabel(device: string): Promise<boolean> {
    return ((await this.q('DELETE FROM device_failures WHERE device = $1', [device])).rowCount ?? 0) > 0;
  }

  async labels(): Promise<FailureLabel[]> {
    return (await this.q<FailureLabel>('SELECT * FROM device_failures ORDER BY ts, device COLLATE "C"')).rows;
  }

  async putScore(s: StoredScore): Promise<void> {
    await this.q(
      `INSERT INTO risk_scores (device, ts, risk, mode, signals, alerted) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (device) DO UPDATE SET ts = excluded.ts, risk = excluded.risk, mode = excluded.mode,
         signals = excluded.signals, alerted = excluded.alerted`,
      [s.device, s.at, s.risk, s.mode, JSON.stringify(s.signals), s.alerted],
    );
  }

  async model(): Promise<{ json: string; installedAt: number } | undefined> {
    const r = await this.q<{ model: string; installed_at: number }>(
      "SELECT model, installed_at FROM models WHERE name = 'risk'",
    );
    return r.rows[0] && { json: r.rows[0].model, installedAt: r.rows[0].installed_at };
  }

  async putModel(json: string, installedAt: number): Promise<void> {
    await this.q(
      `INSERT INTO models (name, model, installed_at) VALUES ('risk', $1, $2)
       ON CONFLICT (name) DO UPDATE SET model = excluded.model, installed_at = excluded.installed_at`,
      [json, installedAt],
    );
  }

  async scores(): Promise<Map<string, StoredScore>> {
    const r = await this.q<ScoreRow>('SELECT * FROM risk_scores');
    return new Map(r.rows.map((x) => [x.device, toScore(x)]));
  }
}

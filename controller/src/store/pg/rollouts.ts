import type { SignedReleaseManifest } from '@fleetwave/shared';
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
import { decodeColumn, decodeEventKind, decodeRollout, JsonObject, Manifest } from '../documents.js';
import type { Query } from './query.js';

/** The rollouts port on PostgreSQL. */
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
    return r.rows.map((x) => ({
      ...x,
      kind: decodeEventKind(x.kind, eventWhere(x.id)),
      details: decodeColumn(JsonObject, x.details, eventWhere(x.id)),
    }));
  }
}

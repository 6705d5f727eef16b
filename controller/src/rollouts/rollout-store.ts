import { type EventKind, FleetwaveError, type SignedReleaseManifest } from '@fleetwave/shared';
import type Database from 'better-sqlite3';
import type { Sync } from '../store/database.js';
import { decodeColumn, decodeEventKind, decodeRollout, JsonObject, Manifest } from '../store/documents.js';
import type { RolloutState } from './wave-engine.js';

export interface RolloutEvent {
  id: number;
  ts: number;
  rollout: string;
  kind: EventKind;
  details: Record<string, unknown>;
}

export interface StoredRelease {
  name: string;
  version: string;
  addedAt: number;
  manifest: SignedReleaseManifest;
}

/**
 * Releases (their manifests; artifacts' bytes stay on disk by hash), rollouts and rollout events: an async port with a
 * SQLite and a PostgreSQL adapter (contract suite `rollout-store.contract.ts`). Stored documents are decoded with
 * their schemas on the way out.
 */
export interface RolloutStore {
  /** Adds the manifest unless that name and version is registered: `same` when it is, identically; else `different`. */
  addRelease(m: SignedReleaseManifest, now: number): Promise<'added' | 'same' | 'different'>;
  getRelease(name: string, version: string): Promise<SignedReleaseManifest | undefined>;
  /** By name, then in the order added. */
  listReleases(): Promise<StoredRelease[]>;
  versionsOf(name: string): Promise<Set<string>>;
  /**
   * Writes a rollout's state. With `expected`, only if the stored state is still that one (null: only if there is no
   * rollout of that id yet), else E_CONFLICT and nothing written: several replicas change rollouts, and a command on
   * one must not be lost under the leader's tick.
   */
  saveRollout(s: RolloutState, active: boolean, now: number, expected?: RolloutState | null): Promise<void>;
  getRollout(id: string): Promise<RolloutState | undefined>;
  /** In the order created. */
  listRollouts(opts?: { active?: boolean }): Promise<RolloutState[]>;
  countByName(name: string): Promise<number>;
  activeByName(name: string): Promise<RolloutState | undefined>;
  /** Appends an event; ids increase in commit order. */
  addEvent(e: Omit<RolloutEvent, 'id'>): Promise<RolloutEvent>;
  events(opts?: { rollout?: string; after?: number; limit?: number }): Promise<RolloutEvent[]>;
  /** The id of the newest event (0: none). */
  lastEventId(): Promise<number>;
}

/** E_CONFLICT unless the stored state (as text) is the expected one (null: none stored). */
export function assertExpected(id: string, stored: string | undefined, expected: RolloutState | null): void {
  const same =
    expected === null
      ? stored === undefined
      : stored !== undefined && JSON.stringify(decodeRollout(stored, rolloutWhere(id))) === JSON.stringify(expected);
  if (!same) {
    throw new FleetwaveError(
      'E_CONFLICT',
      expected === null ? `a rollout ${id} exists already` : `rollout ${id} was changed meanwhile`,
    );
  }
}

export const releaseWhere = (name: string, version: string) => `the manifest of release ${name}@${version}`;
export const rolloutWhere = (id: string) => `the state of rollout ${id}`;
export const eventWhere = (id: number | string) => `the details of rollout event ${id}`;

/** The rollouts port on the controller's SQLite database, synchronously (served async by `SqliteDatabase`). */
export class SqliteRollouts implements Sync<RolloutStore> {
  constructor(private readonly db: Database.Database) {}

  addRelease(m: SignedReleaseManifest, now: number): 'added' | 'same' | 'different' {
    const existing = this.getRelease(m.name, m.version);
    if (existing) return JSON.stringify(existing) === JSON.stringify(m) ? 'same' : 'different';
    this.db
      .prepare('INSERT INTO releases (name, version, manifest, added_at) VALUES (?, ?, ?, ?)')
      .run(m.name, m.version, JSON.stringify(m), now);
    return 'added';
  }

  getRelease(name: string, version: string): SignedReleaseManifest | undefined {
    const r = this.db.prepare('SELECT manifest FROM releases WHERE name = ? AND version = ?').get(name, version) as
      | { manifest: string }
      | undefined;
    return r && decodeColumn(Manifest, r.manifest, releaseWhere(name, version));
  }

  listReleases(): StoredRelease[] {
    return (
      this.db.prepare('SELECT * FROM releases ORDER BY name, added_at, version').all() as {
        name: string;
        version: string;
        added_at: number;
        manifest: string;
      }[]
    ).map((r) => ({
      name: r.name,
      version: r.version,
      addedAt: r.added_at,
      manifest: decodeColumn(Manifest, r.manifest, releaseWhere(r.name, r.version)),
    }));
  }

  versionsOf(name: string): Set<string> {
    return new Set(
      (this.db.prepare('SELECT version FROM releases WHERE name = ?').all(name) as { version: string }[]).map(
        (r) => r.version,
      ),
    );
  }

  saveRollout(s: RolloutState, active: boolean, now: number, expected?: RolloutState | null): void {
    if (expected !== undefined) {
      // BEGIN IMMEDIATE (the unit of work) holds the only write lock: read, compare and write cannot interleave
      const r = this.db.prepare('SELECT state FROM rollouts WHERE id = ?').get(s.id) as { state: string } | undefined;
      assertExpected(s.id, r?.state, expected);
    }
    this.db
      .prepare(
        `INSERT INTO rollouts (id, name, state, active, created_at, updated_at) VALUES (@id, @name, @state, @active, @now, @now)
         ON CONFLICT (id) DO UPDATE SET state = @state, active = @active, updated_at = @now`,
      )
      .run({ id: s.id, name: s.plan.name, state: JSON.stringify(s), active: active ? 1 : 0, now });
  }

  getRollout(id: string): RolloutState | undefined {
    const r = this.db.prepare('SELECT state FROM rollouts WHERE id = ?').get(id) as { state: string } | undefined;
    return r && decodeRollout(r.state, rolloutWhere(id));
  }

  listRollouts(opts: { active?: boolean } = {}): RolloutState[] {
    const rows = (
      opts.active === undefined
        ? this.db.prepare('SELECT id, state FROM rollouts ORDER BY created_at, id').all()
        : this.db
            .prepare('SELECT id, state FROM rollouts WHERE active = ? ORDER BY created_at, id')
            .all(opts.active ? 1 : 0)
    ) as { id: string; state: string }[];
    return rows.map((r) => decodeRollout(r.state, rolloutWhere(r.id)));
  }

  countByName(name: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM rollouts WHERE name = ?').get(name) as { n: number }).n;
  }

  activeByName(name: string): RolloutState | undefined {
    const r = this.db.prepare('SELECT id, state FROM rollouts WHERE name = ? AND active = 1').get(name) as
      | { id: string; state: string }
      | undefined;
    return r && decodeRollout(r.state, rolloutWhere(r.id));
  }

  addEvent(e: Omit<RolloutEvent, 'id'>): RolloutEvent {
    const id = Number(
      this.db
        .prepare('INSERT INTO rollout_events (ts, rollout, kind, details) VALUES (?, ?, ?, ?)')
        .run(e.ts, e.rollout, e.kind, JSON.stringify(e.details)).lastInsertRowid,
    );
    return { id, ...e };
  }

  lastEventId(): number {
    return (this.db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM rollout_events').get() as { id: number }).id;
  }

  events(opts: { rollout?: string; after?: number; limit?: number } = {}): RolloutEvent[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM rollout_events WHERE id > @after AND (@rollout IS NULL OR rollout = @rollout)
           ORDER BY id LIMIT @limit`,
        )
        .all({ after: opts.after ?? 0, rollout: opts.rollout ?? null, limit: opts.limit ?? 1000 }) as {
        id: number;
        ts: number;
        rollout: string;
        kind: string;
        details: string;
      }[]
    ).map((r) => ({
      ...r,
      kind: decodeEventKind(r.kind, eventWhere(r.id)),
      details: decodeColumn(JsonObject, r.details, eventWhere(r.id)),
    }));
  }
}

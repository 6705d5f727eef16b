import type { SignedReleaseManifest } from '@fleetwave/shared';
import type Database from 'better-sqlite3';
import type { RolloutState } from './wave-engine.js';

export interface RolloutEvent {
  id: number;
  ts: number;
  rollout: string;
  kind: string;
  details: Record<string, unknown>;
}

/** Releases, rollouts and rollout events in the controller's SQLite database. */
export class RolloutStore {
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
    return r && JSON.parse(r.manifest);
  }

  listReleases(): { name: string; version: string; addedAt: number; manifest: SignedReleaseManifest }[] {
    return (
      this.db.prepare('SELECT * FROM releases ORDER BY name, added_at').all() as {
        name: string;
        version: string;
        added_at: number;
        manifest: string;
      }[]
    ).map((r) => ({ name: r.name, version: r.version, addedAt: r.added_at, manifest: JSON.parse(r.manifest) }));
  }

  versionsOf(name: string): Set<string> {
    return new Set(
      (this.db.prepare('SELECT version FROM releases WHERE name = ?').all(name) as { version: string }[]).map(
        (r) => r.version,
      ),
    );
  }

  saveRollout(s: RolloutState, active: boolean, now: number): void {
    this.db
      .prepare(
        `INSERT INTO rollouts (id, name, state, active, created_at, updated_at) VALUES (@id, @name, @state, @active, @now, @now)
         ON CONFLICT (id) DO UPDATE SET state = @state, active = @active, updated_at = @now`,
      )
      .run({ id: s.id, name: s.plan.name, state: JSON.stringify(s), active: active ? 1 : 0, now });
  }

  getRollout(id: string): RolloutState | undefined {
    const r = this.db.prepare('SELECT state FROM rollouts WHERE id = ?').get(id) as { state: string } | undefined;
    return r && JSON.parse(r.state);
  }

  listRollouts(opts: { active?: boolean } = {}): RolloutState[] {
    const rows = (
      opts.active === undefined
        ? this.db.prepare('SELECT state FROM rollouts ORDER BY created_at, id').all()
        : this.db
            .prepare('SELECT state FROM rollouts WHERE active = ? ORDER BY created_at, id')
            .all(opts.active ? 1 : 0)
    ) as { state: string }[];
    return rows.map((r) => JSON.parse(r.state));
  }

  countByName(name: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM rollouts WHERE name = ?').get(name) as { n: number }).n;
  }

  activeByName(name: string): RolloutState | undefined {
    const r = this.db.prepare('SELECT state FROM rollouts WHERE name = ? AND active = 1').get(name) as
      | { state: string }
      | undefined;
    return r && JSON.parse(r.state);
  }

  addEvent(e: Omit<RolloutEvent, 'id'>): RolloutEvent {
    const id = Number(
      this.db
        .prepare('INSERT INTO rollout_events (ts, rollout, kind, details) VALUES (?, ?, ?, ?)')
        .run(e.ts, e.rollout, e.kind, JSON.stringify(e.details)).lastInsertRowid,
    );
    return { id, ...e };
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
    ).map((r) => ({ ...r, details: JSON.parse(r.details) }));
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

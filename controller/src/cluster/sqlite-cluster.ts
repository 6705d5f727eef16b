import type Database from 'better-sqlite3';
import type { Sync } from '../store/database.js';
import { decodeColumn } from '../store/documents.js';
import { type ClusterStore, type Lease, notLeader, type ReplicaInfo, toLease } from './cluster-store.js';
import { Lag } from './lag.js';

const NOW = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/** The cluster port on SQLite: one process, but the same rules (a replica restarted with another id, say). */
export class SqliteCluster implements Sync<ClusterStore> {
  constructor(private readonly db: Database.Database) {}

  heartbeat(r: { id: string; startedAt: number; http: string | null; lag: Record<string, number> }): void {
    this.db
      .prepare(
        `INSERT INTO cluster_replicas (id, started_at, seen_at, http, lag) VALUES (?, ?, ${NOW}, ?, ?)
         ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, seen_at = excluded.seen_at,
           http = excluded.http, lag = excluded.lag`,
      )
      .run(r.id, r.startedAt, r.http, JSON.stringify(r.lag));
  }

  replicas(withinMs: number): ReplicaInfo[] {
    return (
      this.db
        .prepare(`SELECT * FROM cluster_replicas WHERE seen_at >= ${NOW} - ? ORDER BY started_at, id`)
        .all(withinMs) as { id: string; started_at: number; seen_at: number; http: string | null; lag: string }[]
    ).map((r) => ({
      id: r.id,
      startedAt: r.started_at,
      seenAt: r.seen_at,
      http: r.http,
      lag: decodeColumn(Lag, r.lag, `the lag of replica ${r.id}`),
    }));
  }

  claim(id: string, token: number | undefined, leaseMs: number): Lease | undefined {
    const r = this.db
      .prepare(
        `INSERT INTO cluster_lease (name, holder, token, since, expires_at) VALUES ('leader', @id, 1, ${NOW}, ${NOW} + @ms)
         ON CONFLICT (name) DO UPDATE SET
           token = CASE WHEN holder = @id AND token = @token THEN token ELSE token + 1 END,
           since = CASE WHEN holder = @id AND token = @token THEN since ELSE excluded.since END,
           holder = excluded.holder,
           expires_at = excluded.expires_at
         WHERE (holder = @id AND token = @token) OR expires_at < excluded.since
         RETURNING holder, token, since, expires_at`,
      )
      .get({ id, token: token ?? -1, ms: leaseMs }) as Parameters<typeof toLease>[0] | undefined;
    return r && toLease(r);
  }

  lease(): Lease | undefined {
    const r = this.db.prepare("SELECT * FROM cluster_lease WHERE name = 'leader'").get() as
      | Parameters<typeof toLease>[0]
      | undefined;
    return r && toLease(r);
  }

  release(id: string, token: number): void {
    this.db
      .prepare(`UPDATE cluster_lease SET expires_at = ${NOW} - 1 WHERE name = 'leader' AND holder = ? AND token = ?`)
      .run(id, token);
  }

  fence(id: string, token: number): void {
    const ok = this.db
      .prepare(`SELECT 1 FROM cluster_lease WHERE name = 'leader' AND holder = ? AND token = ? AND expires_at > ${NOW}`)
      .get(id, token);
    if (!ok) throw notLeader(id);
  }
}

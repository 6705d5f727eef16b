import { decodeColumn } from '../store/documents.js';
import type { Query } from '../store/pg/query.js';
import { type ClusterStore, type Lease, notLeader, type ReplicaInfo, toLease } from './cluster-store.js';
import { Lag } from './lag.js';

const NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

export class PgCluster implements ClusterStore {
  constructor(private readonly q: Query) {}

  async heartbeat(r: {
    id: string;
    startedAt: number;
    http: string | null;
    lag: Record<string, number>;
  }): Promise<void> {
    await this.q(
      `INSERT INTO cluster_replicas (id, started_at, seen_at, http, lag) VALUES ($1, $2, ${NOW}, $3, $4)
       ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, seen_at = excluded.seen_at,
         http = excluded.http, lag = excluded.lag`,
      [r.id, r.startedAt, r.http, JSON.stringify(r.lag)],
    );
  }

  async replicas(withinMs: number): Promise<ReplicaInfo[]> {
    const r = await this.q<{ id: string; started_at: number; seen_at: number; http: string | null; lag: string }>(
      `SELECT * FROM cluster_replicas WHERE seen_at >= ${NOW} - $1 ORDER BY started_at, id COLLATE "C"`,
      [withinMs],
    );
    return r.rows.map((x) => ({
      id: x.id,
      startedAt: x.started_at,
      seenAt: x.seen_at,
      http: x.http,
      lag: decodeColumn(Lag, x.lag, `the lag of replica ${x.id}`),
    }));
  }

  async claim(id: string, token: number | undefined, leaseMs: number): Promise<Lease | undefined> {
    const r = await this.q<Parameters<typeof toLease>[0]>(
      `INSERT INTO cluster_lease AS l (name, holder, token, since, expires_at)
         VALUES ('leader', $1, 1, ${NOW}, ${NOW} + $3)
       ON CONFLICT (name) DO UPDATE SET
         token = CASE WHEN l.holder = $1 AND l.token = $2 THEN l.token ELSE l.token + 1 END,
         since = CASE WHEN l.holder = $1 AND l.token = $2 THEN l.since ELSE excluded.since END,
         holder = excluded.holder,
         expires_at = excluded.expires_at
       WHERE (l.holder = $1 AND l.token = $2) OR l.expires_at < excluded.since
       RETURNING holder, token, since, expires_at`,
      [id, token ?? -1, leaseMs],
    );
    return r.rows[0] && toLease(r.rows[0]);
  }

  async lease(): Promise<Lease | undefined> {
    const r = await this.q<Parameters<typeof toLease>[0]>("SELECT * FROM cluster_lease WHERE name = 'leader'");
    return r.rows[0] && toLease(r.rows[0]);
  }

  async release(id: string, token: number): Promise<void> {
    await this.q(
      `UPDATE cluster_lease SET expires_at = ${NOW} - 1 WHERE name = 'leader' AND holder = $1 AND token = $2`,
      [id, token],
    );
  }

  async fence(id: string, token: number): Promise<void> {
    // FOR SHARE: a take-over (an UPDATE of this row) waits until this unit of work commits
    const r = await this.q(
      `SELECT 1 FROM cluster_lease WHERE name = 'leader' AND holder = $1 AND token = $2 AND expires_at > ${NOW} FOR SHARE`,
      [id, token],
    );
    if (r.rowCount === 0) throw notLeader(id);
  }
}

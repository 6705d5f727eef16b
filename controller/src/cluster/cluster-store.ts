import { FleetwaveError } from '@fleetwave/shared';

/** One controller replica, as it last reported itself. */
export interface ReplicaInfo {
  id: string;
  startedAt: number;
  /** The database's clock when the replica last said it was alive. */
  seenAt: number;
  /** Where its API answers (for `cluster status`), if it said. */
  http: string | null;
  /** How far behind it is, per feed (events, telemetry): ids not yet handed to its listeners. */
  lag: Record<string, number>;
}

/** The leader lease: who holds it, the fencing token of that holding, since when, until when (database clock). */
export interface Lease {
  holder: string;
  token: number;
  since: number;
  expiresAt: number;
}

/**
 * Who the controller replicas are and which one leads (issue "several replicas"): an async port with a SQLite and a
 * PostgreSQL adapter (contract `cluster-store.contract.ts`). Every time is the database's clock, so replicas on
 * machines whose clocks disagree still agree on when a lease ran out.
 */
export interface ClusterStore {
  /** The replica is alive: its row (made on the first call) with what it serves and its lag. */
  heartbeat(r: { id: string; startedAt: number; http: string | null; lag: Record<string, number> }): Promise<void>;
  /** The replicas seen within `withinMs` of now, oldest first. */
  replicas(withinMs: number): Promise<ReplicaInfo[]>;
  /**
   * Takes the lease when it is free or ran out — raising the fencing token — or renews it when this replica holds it
   * with this token. Returns the lease this replica holds after, or undefined (another one holds it).
   */
  claim(id: string, token: number | undefined, leaseMs: number): Promise<Lease | undefined>;
  /** The lease as it is (expired or not), if anyone ever took it. */
  lease(): Promise<Lease | undefined>;
  /** Lets go of the lease (a clean stop), so another replica need not wait for it to run out. */
  release(id: string, token: number): Promise<void>;
  /**
   * Inside a unit of work: throws E_NOT_LEADER unless this replica holds the lease with this token and it has not run
   * out. On PostgreSQL it also holds the lease row until the unit commits, so no take-over happens in between: a
   * former leader's write either commits before the new leader takes over, or is refused.
   */
  fence(id: string, token: number): Promise<void>;
}

/** A lease row as either database returns it. */
export const toLease = (r: { holder: string; token: number; since: number; expires_at: number }): Lease => ({
  holder: r.holder,
  token: Number(r.token),
  since: Number(r.since),
  expiresAt: Number(r.expires_at),
});

export const notLeader = (id: string) =>
  new FleetwaveError(
    'E_NOT_LEADER',
    `replica ${id} no longer holds the leader lease: another replica took over, and this write was refused`,
  );

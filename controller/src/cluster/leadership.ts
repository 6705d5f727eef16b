import { isFleetwaveError } from '@fleetwave/shared';
import type { Logger } from 'pino';
import { type ClusterStore, type Lease, notLeader } from './cluster-store.js';

export interface LeadershipOptions {
  cluster: ClusterStore;
  /** This replica's id (`--replica-id`; default host name and pid). */
  id: string;
  /** How long a lease lasts without renewal (default 3 s); it is renewed every third of that. */
  leaseMs?: number;
  startedAt: number;
  /** Where this replica's API answers, and how far behind its feeds are (reported with every heartbeat). */
  http: () => string | null;
  lag: () => Record<string, number>;
  log: Logger;
  /** This replica took the lease: start the duties that run once in the cluster. */
  onLead: (lease: Lease) => Promise<void> | void;
  /** It lost (or gave up) the lease: stop them. Resolves once they stopped. */
  onLose: () => Promise<void> | void;
}

/**
 * Leadership of one replica: a heartbeat and a claim of the leader lease every third of the lease, on the database's
 * clock. Whatever the timers do, the leader's writes are safe because each passes `fence()` inside its own unit of
 * work: a replica that was paused past its lease (or cut off from the database) finds its token superseded there and
 * its write refused, and steps down at its next claim.
 */
export class Leadership {
  private lease: Lease | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** When the lease was last confirmed (this process's clock), to step down when the database cannot be reached. */
  private confirmedAt = 0;
  readonly leaseMs: number;
  /** Writes the fence refused: by the database (this replica thought it led) and before asking it. */
  readonly refused = { byDatabase: 0, locally: 0 };

  constructor(private readonly o: LeadershipOptions) {
    this.leaseMs = o.leaseMs ?? 3000;
  }

  get id(): string {
    return this.o.id;
  }

  /** The lease this replica holds, if it believes it holds one. */
  get held(): Lease | undefined {
    return this.lease;
  }

  /** Throws E_NOT_LEADER unless this replica holds the lease (to be called inside the unit of work it guards). */
  readonly fence = async (): Promise<void> => {
    const l = this.lease;
    if (!l) {
      this.refused.locally++;
      throw notLeader(this.o.id);
    }
    try {
      await this.o.cluster.fence(this.o.id, l.token);
    } catch (err) {
      if (isFleetwaveError(err, 'E_NOT_LEADER')) {
        this.refused.byDatabase++;
        this.o.log.warn(
          { replica: this.o.id, token: l.token },
          'a write as leader was refused: another replica holds the lease',
        );
      }
      throw err;
    }
  };

  async start(): Promise<void> {
    await this.round();
    this.timer = setInterval(() => void this.round(), Math.max(50, Math.floor(this.leaseMs / 3)));
  }

  /** One heartbeat and claim (never two at once). */
  round(): Promise<void> {
    this.running ??= this.claim().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async claim(): Promise<void> {
    try {
      await this.o.cluster.heartbeat({
        id: this.o.id,
        startedAt: this.o.startedAt,
        http: this.o.http(),
        lag: this.o.lag(),
      });
      const next = await this.o.cluster.claim(this.o.id, this.lease?.token, this.leaseMs);
      if (next) {
        this.confirmedAt = Date.now();
        const was = this.lease;
        this.lease = next;
        if (!was) {
          this.o.log.info({ replica: this.o.id, token: next.token }, 'leading: took the leader lease');
          await this.o.onLead(next);
        }
      } else if (this.lease) await this.stepDown('another replica holds the lease');
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, replica: this.o.id }, 'heartbeat or lease claim failed');
      // cannot confirm the lease: stop leading once it must have run out (the fence refuses writes before that)
      if (this.lease && Date.now() - this.confirmedAt > this.leaseMs)
        await this.stepDown('the lease could not be renewed');
    }
  }

  private async stepDown(why: string): Promise<void> {
    this.o.log.warn({ replica: this.o.id, token: this.lease?.token, why }, 'following: lost the leader lease');
    this.lease = undefined;
    await this.o.onLose();
  }

  /** Stops; a leader stops its duties and lets go of the lease so another can take over at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    const l = this.lease;
    if (!l) return;
    this.lease = undefined;
    await this.o.onLose();
    await this.o.cluster.release(this.o.id, l.token).catch(() => {});
  }
}

import type { ClusterStore } from '../cluster/cluster-store.js';
import type { JobsStore } from '../jobs/jobs-store.js';
import type { HealthStore } from '../predict/health-store.js';
import type { RolloutStore } from '../rollouts/rollout-store.js';
import type { FleetStore } from './fleet-store.js';
import type { TelemetryLog } from './telemetry-log.js';

/**
 * All of the controller's state behind async ports (issue "its state on PostgreSQL"): the SQLite file of the
 * embedded default and PostgreSQL stand behind the same interface, and each port has one contract suite both pass.
 *
 * **Units of work.** `transaction(fn)` runs fn as one transaction: every port call made *in fn's async context*
 * (awaited inside it, directly or through other services) joins it, so what the rollout service's commit writes —
 * state, events, queued executions — commits together or not at all; publishing happens after the transaction
 * resolved. A nested `transaction` is a savepoint: a failure inside it undoes only its own writes (a rejected jobs
 * request inside a group commit). Calls made outside any transaction are each their own.
 */
export interface ControllerDatabase {
  readonly kind: 'sqlite' | 'postgres';
  /** Where the state is, for messages (a file path, or the URL without its password). */
  readonly where: string;
  readonly fleet: FleetStore;
  readonly jobs: JobsStore;
  readonly rollouts: RolloutStore;
  readonly health: HealthStore;
  readonly telemetry: TelemetryLog;
  readonly cluster: ClusterStore;
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The synchronous form of an async port (what a better-sqlite3 adapter implements). */
export type Sync<T> = {
  [K in keyof T]: T[K] extends (...a: infer A) => Promise<infer R> ? (...a: A) => R : T[K];
};

/** A FIFO lock for async work (one holder at a time). */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  private held = 0;

  get locked(): boolean {
    return this.held > 0;
  }

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    this.held++;
    const result = this.tail.then(fn);
    const release = () => {
      this.held--;
    };
    this.tail = result.then(release, release);
    return result;
  }
}

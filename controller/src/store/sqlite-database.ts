import { AsyncLocalStorage } from 'node:async_hooks';
import { FleetwaveError } from '@fleetwave/shared';
import Database from 'better-sqlite3';
import type { ClusterStore } from '../cluster/cluster-store.js';
import { SqliteCluster } from '../cluster/sqlite-cluster.js';
import { type JobsStore, SqliteJobs } from '../jobs/jobs-store.js';
import { type HealthStore, SqliteHealth } from '../predict/health-store.js';
import { type RolloutStore, SqliteRollouts } from '../rollouts/rollout-store.js';
import type { ControllerDatabase, Sync } from './database.js';
import { Mutex } from './database.js';
import type { FleetStore, NewTelemetry, TelemetryQuery } from './fleet-store.js';
import { migrations } from './migrations.js';
import { SqliteFleet } from './sqlite-fleet-store.js';
import type { TelemetryLog } from './telemetry-log.js';

/** Applies the migrations the database lacks, each in its own transaction. Returns the resulting version. */
export function migrate(db: Database.Database, upTo = migrations.length): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new FleetwaveError(
      'E_DATABASE_SCHEMA',
      `${db.name} is at schema version ${current}, newer than this controller's ${migrations.length}: run the newer controller (nothing was changed)`,
    );
  }
  for (let v = current; v < upTo; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db.pragma('user_version', { simple: true }) as number;
}

interface TxContext {
  open: boolean;
  savepoints: number;
}

/**
 * The controller's state in one SQLite file (WAL, synchronous=FULL: what the controller acknowledged survives power
 * loss), served as the async ports. SQLite has one connection here, so a transaction holds it: while one is open,
 * calls from outside it wait their turn (a FIFO lock), and calls from inside it (its async context, tracked with
 * AsyncLocalStorage) run in it. Without that, an unrelated write could land in — and roll back with — someone else's
 * transaction.
 */
export class SqliteDatabase implements ControllerDatabase {
  readonly kind = 'sqlite';
  readonly db: Database.Database;
  readonly fleet: FleetStore;
  readonly jobs: JobsStore;
  readonly rollouts: RolloutStore;
  readonly health: HealthStore;
  readonly telemetry: TelemetryLog;
  readonly cluster: ClusterStore;
  private readonly lock = new Mutex();
  private readonly context = new AsyncLocalStorage<TxContext>();

  constructor(readonly where: string) {
    try {
      this.db = new Database(where);
    } catch (err) {
      throw new FleetwaveError(
        'E_DATABASE_URL',
        `cannot open the SQLite database ${where}: ${(err as Error).message} (is the directory there and writable?)`,
      );
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    try {
      migrate(this.db);
    } catch (err) {
      this.db.close();
      throw err;
    }
    const fleet = new SqliteFleet(this.db);
    this.fleet = this.serve<FleetStore>(fleet);
    this.jobs = this.serve<JobsStore>(new SqliteJobs(this.db));
    this.rollouts = this.serve<RolloutStore>(new SqliteRollouts(this.db));
    this.health = this.serve<HealthStore>(new SqliteHealth(this.db));
    this.cluster = this.serve<ClusterStore>(new SqliteCluster(this.db));
    this.telemetry = new SqliteTelemetryLog(this.db, fleet, (f) => this.call(f));
  }

  private inTransaction(): TxContext | undefined {
    const c = this.context.getStore();
    return c?.open ? c : undefined;
  }

  /** Runs a synchronous statement now when no transaction is open or from inside the open one; else after it. */
  call<R>(f: () => R): Promise<R> {
    if (this.inTransaction() || !this.lock.locked) {
      try {
        return Promise.resolve(f());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.lock.run(f);
  }

  private serve<P>(impl: Sync<P>): P {
    return new Proxy(impl as object, {
      get: (t, k) => {
        const v = Reflect.get(t, k);
        return typeof v === 'function' ? (...a: unknown[]) => this.call(() => v.apply(t, a)) : v;
      },
    }) as P;
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const open = this.inTransaction();
    if (open) {
      const name = `fw_sp${++open.savepoints}`;
      this.db.exec(`SAVEPOINT ${name}`);
      try {
        const r = await fn();
        this.db.exec(`RELEASE ${name}`);
        return r;
      } catch (err) {
        this.db.exec(`ROLLBACK TO ${name}`);
        this.db.exec(`RELEASE ${name}`);
        throw err;
      }
    }
    return this.lock.run(async () => {
      const c: TxContext = { open: true, savepoints: 0 };
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const r = await this.context.run(c, fn);
        this.db.exec('COMMIT');
        return r;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      } finally {
        c.open = false;
      }
    });
  }

  async close(): Promise<void> {
    await this.lock.run(() => {
      if (this.db.open) this.db.close();
    });
  }
}

/**
 * Telemetry in the SQLite file. SQLite has one writer at a time and AUTOINCREMENT never reuses a value, so the cursor
 * is in commit order by construction.
 */
class SqliteTelemetryLog implements TelemetryLog {
  constructor(
    private readonly db: Database.Database,
    private readonly fleet: SqliteFleet,
    private readonly call: <R>(f: () => R) => Promise<R>,
  ) {}

  insert(rows: readonly NewTelemetry[], receivedAt: number) {
    return this.call(() => this.db.transaction(() => this.fleet.insertTelemetry(rows, receivedAt))());
  }

  insertGroups(groups: readonly (readonly NewTelemetry[])[], receivedAt: number) {
    return this.call(() =>
      this.db.transaction(() => groups.map((rows) => this.fleet.insertTelemetry(rows, receivedAt)))(),
    );
  }

  read(q: TelemetryQuery) {
    return this.call(() => this.fleet.telemetry(q));
  }

  missingRanges(device: string) {
    return this.call(() => this.fleet.missingRanges(device));
  }

  prune(receivedBefore: number) {
    return this.call(() => this.fleet.pruneTelemetry(receivedBefore));
  }

  async close() {}
}

import type { JobStatus } from '@fleetwave/shared';
import type Database from 'better-sqlite3';
import type { Sync } from '../store/database.js';
import { decodeColumn, JsonObject, StatusDetails } from '../store/documents.js';

/** One execution of a job on one thing, as the jobs service keeps it (docs/JOBS-PROTOCOL.md "Types"). */
export interface StoredExecution {
  jobId: string;
  thing: string;
  executionNumber: number;
  status: JobStatus;
  statusDetails: Record<string, string> | undefined;
  document: Record<string, unknown>;
  queuedAt: number;
  startedAt: number | undefined;
  lastUpdatedAt: number;
  versionNumber: number;
  /** When the device's step timeout runs out (IN_PROGRESS only). */
  stepDeadline: number | undefined;
  /** The rollout that queued it, if any. */
  rollout: string | undefined;
}

export type ExecutionStateRow = Pick<
  StoredExecution,
  'jobId' | 'thing' | 'executionNumber' | 'status' | 'statusDetails' | 'startedAt' | 'lastUpdatedAt'
>;

/** A row as either database returns it (PostgreSQL's BIGINTs arrive as strings). */
export interface ExecutionRow {
  job_id: string;
  thing: string;
  execution_number: number | string;
  status: JobStatus;
  status_details: string | null;
  document: string;
  queued_at: number | string;
  started_at: number | string | null;
  last_updated_at: number | string;
  version_number: number | string;
  step_deadline: number | string | null;
  rollout: string | null;
}

const num = (v: number | string) => Number(v);
const opt = (v: number | string | null) => (v === null ? undefined : Number(v));

/** A stored execution back from either database, its JSON columns decoded with their schemas. */
export const toExecution = (r: ExecutionRow): StoredExecution => ({
  ...toStateRow(r),
  document: decodeColumn(JsonObject, r.document, 'job_executions.document'),
  queuedAt: num(r.queued_at),
  versionNumber: num(r.version_number),
  stepDeadline: opt(r.step_deadline),
  rollout: r.rollout ?? undefined,
});

/** An execution as the columns both databases store. */
export function executionColumns(e: StoredExecution) {
  return {
    ...e,
    statusDetails: e.statusDetails === undefined ? null : JSON.stringify(e.statusDetails),
    document: JSON.stringify(e.document),
    startedAt: e.startedAt ?? null,
    stepDeadline: e.stepDeadline ?? null,
    rollout: e.rollout ?? null,
  };
}

/**
 * Job executions (the jobs service's source of truth, invariant 4): an async port with a SQLite and a PostgreSQL
 * adapter (contract suite `jobs-store.contract.ts`).
 */
export interface JobsStore {
  /** Inserts unless that (job, thing, execution number) exists; true when inserted. */
  insert(e: StoredExecution): Promise<boolean>;
  update(e: StoredExecution): Promise<void>;
  /** The latest execution of the job on the thing, or the numbered one. */
  get(jobId: string, thing: string, executionNumber?: number): Promise<StoredExecution | undefined>;
  /** The thing's pending executions (the latest of each job), IN_PROGRESS first, then QUEUED oldest first. */
  pending(thing: string): Promise<StoredExecution[]>;
  /**
   * Inside a unit of work: holds the things' executions against other units of work until it commits (several
   * replicas change executions; on SQLite the unit of work holds the only write lock anyway).
   */
  lockThings(things: readonly string[]): Promise<void>;
  /** `pending` of several things at once (every thing named is in the map, with an empty list if it has none). */
  pendingMany(things: readonly string[]): Promise<Map<string, StoredExecution[]>>;
  /** What the wave engine needs of a rollout's executions, without their documents (read on every tick). */
  statesByRollout(rollout: string): Promise<ExecutionStateRow[]>;
  stepTimeoutsDue(now: number): Promise<StoredExecution[]>;
}

const LATEST = `SELECT e.* FROM job_executions e WHERE e.execution_number =
  (SELECT MAX(x.execution_number) FROM job_executions x WHERE x.job_id = e.job_id AND x.thing = e.thing)`;

/** The jobs port on the controller's SQLite database, synchronously (served async by `SqliteDatabase`). */
export class SqliteJobs implements Sync<JobsStore> {
  private readonly s;

  constructor(db: Database.Database) {
    this.s = {
      insert: db.prepare(
        `INSERT OR IGNORE INTO job_executions (job_id, thing, execution_number, status, status_details, document,
           queued_at, started_at, last_updated_at, version_number, step_deadline, rollout)
         VALUES (@jobId, @thing, @executionNumber, @status, @statusDetails, @document, @queuedAt, @startedAt,
           @lastUpdatedAt, @versionNumber, @stepDeadline, @rollout)`,
      ),
      update: db.prepare(
        `UPDATE job_executions SET status = @status, status_details = @statusDetails, started_at = @startedAt,
           last_updated_at = @lastUpdatedAt, version_number = @versionNumber, step_deadline = @stepDeadline
         WHERE job_id = @jobId AND thing = @thing AND execution_number = @executionNumber`,
      ),
      latest: db.prepare(
        'SELECT * FROM job_executions WHERE job_id = ? AND thing = ? ORDER BY execution_number DESC LIMIT 1',
      ),
      numbered: db.prepare('SELECT * FROM job_executions WHERE job_id = ? AND thing = ? AND execution_number = ?'),
      pending: db.prepare(`${LATEST} AND e.thing = ? AND e.status IN ('QUEUED', 'IN_PROGRESS')`),
      statesByRollout: db.prepare(
        `SELECT job_id, thing, execution_number, status, status_details, started_at, last_updated_at FROM job_executions
         WHERE rollout = ? ORDER BY thing, job_id, execution_number`,
      ),
      due: db.prepare(
        "SELECT * FROM job_executions WHERE status = 'IN_PROGRESS' AND step_deadline IS NOT NULL AND step_deadline <= ?",
      ),
    };
  }

  /** Inserts unless that (job, thing, execution number) exists; true when inserted. */
  insert(e: StoredExecution): boolean {
    return this.s.insert.run(executionColumns(e)).changes === 1;
  }

  update(e: StoredExecution): void {
    this.s.update.run(executionColumns(e));
  }

  get(jobId: string, thing: string, executionNumber?: number): StoredExecution | undefined {
    const r = (
      executionNumber === undefined
        ? this.s.latest.get(jobId, thing)
        : this.s.numbered.get(jobId, thing, executionNumber)
    ) as ExecutionRow | undefined;
    return r && toExecution(r);
  }

  /** The thing's pending executions (the latest of each job), IN_PROGRESS first, then QUEUED oldest first. */
  pending(thing: string): StoredExecution[] {
    return (this.s.pending.all(thing) as ExecutionRow[]).map(toExecution).sort(nextOrder);
  }

  lockThings(_things: readonly string[]): void {}

  pendingMany(things: readonly string[]): Map<string, StoredExecution[]> {
    return new Map(things.map((t) => [t, this.pending(t)]));
  }

  /** What the wave engine needs of a rollout's executions, without their documents (read on every tick). */
  statesByRollout(rollout: string): ExecutionStateRow[] {
    return (this.s.statesByRollout.all(rollout) as ExecutionRow[]).map(toStateRow);
  }

  stepTimeoutsDue(now: number): StoredExecution[] {
    return (this.s.due.all(now) as ExecutionRow[]).map(toExecution);
  }
}

/** The state columns of an execution row (no document). */
export const toStateRow = (
  r: Omit<ExecutionRow, 'document' | 'queued_at' | 'version_number' | 'step_deadline' | 'rollout'>,
): ExecutionStateRow => ({
  lastUpdatedAt: num(r.last_updated_at),
  jobId: r.job_id,
  thing: r.thing,
  executionNumber: num(r.execution_number),
  status: r.status,
  statusDetails:
    r.status_details === null
      ? undefined
      : decodeColumn(StatusDetails, r.status_details, 'job_executions.status_details'),
  startedAt: opt(r.started_at),
});

/**
 * docs/JOBS-PROTOCOL.md "start next" and AWS's "Jobs notifications": IN_PROGRESS before QUEUED, then by the time each was
 * queued (so an execution queued earlier than every IN_PROGRESS one becomes first when it starts).
 */
export function nextOrder(a: StoredExecution, b: StoredExecution): number {
  const rank = (e: StoredExecution) => (e.status === 'IN_PROGRESS' ? 0 : 1);
  return rank(a) - rank(b) || a.queuedAt - b.queuedAt || a.jobId.localeCompare(b.jobId);
}

import type { JobStatus } from '@fleetwave/shared';
import type Database from 'better-sqlite3';

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

interface Row {
  job_id: string;
  thing: string;
  execution_number: number;
  status: JobStatus;
  status_details: string | null;
  document: string;
  queued_at: number;
  started_at: number | null;
  last_updated_at: number;
  version_number: number;
  step_deadline: number | null;
  rollout: string | null;
}

export type ExecutionStateRow = Pick<
  StoredExecution,
  'jobId' | 'thing' | 'executionNumber' | 'status' | 'statusDetails' | 'startedAt' | 'lastUpdatedAt'
>;

const toExecution = (r: Row): StoredExecution => ({
  jobId: r.job_id,
  thing: r.thing,
  executionNumber: r.execution_number,
  status: r.status,
  statusDetails: r.status_details === null ? undefined : JSON.parse(r.status_details),
  document: JSON.parse(r.document),
  queuedAt: r.queued_at,
  startedAt: r.started_at ?? undefined,
  lastUpdatedAt: r.last_updated_at,
  versionNumber: r.version_number,
  stepDeadline: r.step_deadline ?? undefined,
  rollout: r.rollout ?? undefined,
});

const LATEST = `SELECT e.* FROM job_executions e WHERE e.execution_number =
  (SELECT MAX(x.execution_number) FROM job_executions x WHERE x.job_id = e.job_id AND x.thing = e.thing)`;

/** Job executions in the controller's SQLite database (the jobs service's source of truth, invariant 4). */
export class JobsStore {
  private readonly s;

  constructor(private readonly db: Database.Database) {
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

  private row(e: StoredExecution) {
    return {
      ...e,
      statusDetails: e.statusDetails === undefined ? null : JSON.stringify(e.statusDetails),
      document: JSON.stringify(e.document),
      startedAt: e.startedAt ?? null,
      stepDeadline: e.stepDeadline ?? null,
      rollout: e.rollout ?? null,
    };
  }

  /** Inserts unless that (job, thing, execution number) exists; true when inserted. */
  insert(e: StoredExecution): boolean {
    return this.s.insert.run(this.row(e)).changes === 1;
  }

  update(e: StoredExecution): void {
    this.s.update.run(this.row(e));
  }

  get(jobId: string, thing: string, executionNumber?: number): StoredExecution | undefined {
    const r = (
      executionNumber === undefined
        ? this.s.latest.get(jobId, thing)
        : this.s.numbered.get(jobId, thing, executionNumber)
    ) as Row | undefined;
    return r && toExecution(r);
  }

  /** The thing's pending executions (the latest of each job), IN_PROGRESS first, then QUEUED oldest first. */
  pending(thing: string): StoredExecution[] {
    return (this.s.pending.all(thing) as Row[]).map(toExecution).sort(nextOrder);
  }

  /** What the wave engine needs of a rollout's executions, without their documents (read on every tick). */
  statesByRollout(rollout: string): ExecutionStateRow[] {
    return (
      this.s.statesByRollout.all(rollout) as {
        job_id: string;
        thing: string;
        execution_number: number;
        status: JobStatus;
        status_details: string | null;
        started_at: number | null;
        last_updated_at: number;
      }[]
    ).map((r) => ({
      lastUpdatedAt: r.last_updated_at,
      jobId: r.job_id,
      thing: r.thing,
      executionNumber: r.execution_number,
      status: r.status,
      statusDetails: r.status_details === null ? undefined : JSON.parse(r.status_details),
      startedAt: r.started_at ?? undefined,
    }));
  }

  stepTimeoutsDue(now: number): StoredExecution[] {
    return (this.s.due.all(now) as Row[]).map(toExecution);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

/**
 * docs/JOBS-PROTOCOL.md "start next" and AWS's "Jobs notifications": IN_PROGRESS before QUEUED, then by the time each was
 * queued (so an execution queued earlier than every IN_PROGRESS one becomes first when it starts).
 */
export function nextOrder(a: StoredExecution, b: StoredExecution): number {
  const rank = (e: StoredExecution) => (e.status === 'IN_PROGRESS' ? 0 : 1);
  return rank(a) - rank(b) || a.queuedAt - b.queuedAt || a.jobId.localeCompare(b.jobId);
}

import {
  type ExecutionRow,
  type ExecutionStateRow,
  executionColumns,
  type JobsStore,
  nextOrder,
  type StoredExecution,
  toExecution,
  toStateRow,
} from '../../jobs/jobs-store.js';
import type { Query } from './query.js';

const EXECUTION_COLUMNS =
  'job_id, thing, execution_number, status, status_details, document, queued_at, started_at, last_updated_at, version_number, step_deadline, rollout';

export class PgJobs implements JobsStore {
  constructor(private readonly q: Query) {}

  async insert(e: StoredExecution): Promise<boolean> {
    const c = executionColumns(e);
    const r = await this.q(
      `INSERT INTO job_executions (${EXECUTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT DO NOTHING`,
      [
        c.jobId,
        c.thing,
        c.executionNumber,
        c.status,
        c.statusDetails,
        c.document,
        c.queuedAt,
        c.startedAt,
        c.lastUpdatedAt,
        c.versionNumber,
        c.stepDeadline,
        c.rollout,
      ],
    );
    return r.rowCount === 1;
  }

  async update(e: StoredExecution): Promise<void> {
    const c = executionColumns(e);
    await this.q(
      `UPDATE job_executions SET status = $1, status_details = $2, started_at = $3, last_updated_at = $4,
         version_number = $5, step_deadline = $6
       WHERE job_id = $7 AND thing = $8 AND execution_number = $9`,
      [
        c.status,
        c.statusDetails,
        c.startedAt,
        c.lastUpdatedAt,
        c.versionNumber,
        c.stepDeadline,
        c.jobId,
        c.thing,
        c.executionNumber,
      ],
    );
  }

  async get(jobId: string, thing: string, executionNumber?: number): Promise<StoredExecution | undefined> {
    const r =
      executionNumber === undefined
        ? await this.q<ExecutionRow>(
            'SELECT * FROM job_executions WHERE job_id = $1 AND thing = $2 ORDER BY execution_number DESC LIMIT 1',
            [jobId, thing],
          )
        : await this.q<ExecutionRow>(
            'SELECT * FROM job_executions WHERE job_id = $1 AND thing = $2 AND execution_number = $3',
            [jobId, thing, executionNumber],
          );
    return r.rows[0] && toExecution(r.rows[0]);
  }

  async pending(thing: string): Promise<StoredExecution[]> {
    const r = await this.q<ExecutionRow>(
      `SELECT DISTINCT ON (job_id) * FROM job_executions WHERE thing = $1
       ORDER BY job_id, execution_number DESC`,
      [thing],
    );
    return r.rows
      .filter((x) => x.status === 'QUEUED' || x.status === 'IN_PROGRESS')
      .map(toExecution)
      .sort(nextOrder);
  }

  async lockThings(things: readonly string[]): Promise<void> {
    if (things.length === 0) return;
    // transaction-scoped advisory locks, taken in one order (fewer deadlocks; PostgreSQL breaks the rest)
    await this.q(
      'SELECT pg_advisory_xact_lock(hashtextextended(\'fleetwave-thing:\' || t, 0)) FROM unnest($1::text[]) AS t ORDER BY t COLLATE "C"',
      [[...things]],
    );
  }

  async pendingMany(things: readonly string[]): Promise<Map<string, StoredExecution[]>> {
    const out = new Map<string, StoredExecution[]>(things.map((t) => [t, []]));
    if (things.length === 0) return out;
    const r = await this.q<ExecutionRow>(
      `SELECT * FROM (SELECT DISTINCT ON (thing, job_id) * FROM job_executions WHERE thing = ANY($1::text[])
         ORDER BY thing, job_id, execution_number DESC) latest WHERE status IN ('QUEUED', 'IN_PROGRESS')`,
      [things],
    );
    for (const row of r.rows) out.get(row.thing)?.push(toExecution(row));
    for (const list of out.values()) list.sort(nextOrder);
    return out;
  }

  async statesByRollout(rollout: string): Promise<ExecutionStateRow[]> {
    const r = await this.q<ExecutionRow>(
      `SELECT job_id, thing, execution_number, status, status_details, started_at, last_updated_at FROM job_executions
       WHERE rollout = $1 ORDER BY thing COLLATE "C", job_id COLLATE "C", execution_number`,
      [rollout],
    );
    return r.rows.map(toStateRow);
  }

  async stepTimeoutsDue(now: number): Promise<StoredExecution[]> {
    const r = await this.q<ExecutionRow>(
      "SELECT * FROM job_executions WHERE status = 'IN_PROGRESS' AND step_deadline IS NOT NULL AND step_deadline <= $1",
      [now],
    );
    return r.rows.map(toExecution);
  }
}

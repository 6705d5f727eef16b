import { FleetwaveError } from './errors.js';
import type { JobStatus } from './schemas/jobs.js';

export type JobActor = 'device' | 'service';

/** The status lifecycle of docs/JOBS-PROTOCOL.md as data. A status not listed as `from` has no way out (terminal). */
export const jobTransitions: readonly { from: JobStatus; to: JobStatus; by: JobActor }[] = Object.freeze([
  { from: 'QUEUED', to: 'IN_PROGRESS', by: 'device' },
  { from: 'QUEUED', to: 'FAILED', by: 'device' },
  { from: 'QUEUED', to: 'SUCCEEDED', by: 'device' },
  { from: 'QUEUED', to: 'REJECTED', by: 'device' },
  { from: 'QUEUED', to: 'REMOVED', by: 'service' },
  { from: 'QUEUED', to: 'CANCELED', by: 'service' },
  { from: 'QUEUED', to: 'TIMED_OUT', by: 'service' },
  { from: 'IN_PROGRESS', to: 'IN_PROGRESS', by: 'device' },
  { from: 'IN_PROGRESS', to: 'SUCCEEDED', by: 'device' },
  { from: 'IN_PROGRESS', to: 'FAILED', by: 'device' },
  { from: 'IN_PROGRESS', to: 'REJECTED', by: 'device' },
  { from: 'IN_PROGRESS', to: 'TIMED_OUT', by: 'service' },
  { from: 'IN_PROGRESS', to: 'CANCELED', by: 'service' },
  { from: 'IN_PROGRESS', to: 'REMOVED', by: 'service' },
]);

export const jobStatusRules: Readonly<Record<JobStatus, { terminal: boolean; retriable: boolean }>> = Object.freeze({
  QUEUED: { terminal: false, retriable: false },
  IN_PROGRESS: { terminal: false, retriable: false },
  SUCCEEDED: { terminal: true, retriable: false },
  FAILED: { terminal: true, retriable: true },
  TIMED_OUT: { terminal: true, retriable: true },
  REJECTED: { terminal: true, retriable: false },
  REMOVED: { terminal: true, retriable: false },
  CANCELED: { terminal: true, retriable: false },
});

export function canTransition(from: JobStatus, to: JobStatus, by: JobActor): boolean {
  return jobTransitions.some((t) => t.from === from && t.to === to && t.by === by);
}

/** Throws E_JOB_TRANSITION (the service answers `InvalidStateTransition`) when the move is not in the table. */
export function assertTransition(from: JobStatus, to: JobStatus, by: JobActor): void {
  if (!canTransition(from, to, by)) {
    throw new FleetwaveError('E_JOB_TRANSITION', `${by} may not move a job execution from ${from} to ${to}`, {
      from,
      to,
      by,
    });
  }
}

import { jobStatusRules } from '@fleetwave/shared';
import { nextOrder, type StoredExecution } from './jobs-store.js';

/** The jobs protocol's messages and rejections (docs/JOBS-PROTOCOL.md), and the pending-list bookkeeping. */
export type Code =
  | 'InvalidTopic'
  | 'InvalidJson'
  | 'InvalidRequest'
  | 'InvalidStateTransition'
  | 'ResourceNotFound'
  | 'VersionMismatch'
  | 'InternalError'
  | 'TerminalStateReached';

export class Rejection extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly execution?: StoredExecution,
  ) {
    super(message);
  }
}

export const summary = (e: StoredExecution) => ({
  jobId: e.jobId,
  queuedAt: e.queuedAt,
  ...(e.startedAt !== undefined && { startedAt: e.startedAt }),
  lastUpdatedAt: e.lastUpdatedAt,
  versionNumber: e.versionNumber,
  executionNumber: e.executionNumber,
});

export const executionMessage = (e: StoredExecution, includeDocument = true) => ({
  jobId: e.jobId,
  thingName: e.thing,
  ...(includeDocument && { jobDocument: e.document }),
  status: e.status,
  ...(e.statusDetails && { statusDetails: e.statusDetails }),
  queuedAt: e.queuedAt,
  ...(e.startedAt !== undefined && { startedAt: e.startedAt }),
  lastUpdatedAt: e.lastUpdatedAt,
  versionNumber: e.versionNumber,
  executionNumber: e.executionNumber,
});

export const stateOf = (e: StoredExecution) => ({
  status: e.status,
  ...(e.statusDetails && { statusDetails: e.statusDetails }),
  versionNumber: e.versionNumber,
});

export const LIST_NOTIFICATION_MAX = 15;

export const key = (e: StoredExecution | undefined) => (e ? `${e.jobId}#${e.executionNumber}` : '');
export const listKey = (l: StoredExecution[]) => l.map((e) => `${key(e)}:${e.status}`).join(',');

/**
 * A thing's pending list after changes to its executions (the latest execution of each job, QUEUED or IN_PROGRESS,
 * in nextOrder): what `JobsStore.pending` would read back after them.
 */
export function applyToPending(
  list: readonly StoredExecution[],
  changed: readonly StoredExecution[],
): StoredExecution[] {
  let out = [...list];
  for (const e of changed) {
    const current = out.find((x) => x.jobId === e.jobId);
    if (current && current.executionNumber > e.executionNumber) continue; // an older execution: the list shows the latest
    out = out.filter((x) => x.jobId !== e.jobId);
    if (!jobStatusRules[e.status].terminal) out.push(e);
  }
  return out.sort(nextOrder);
}

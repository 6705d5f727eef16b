import { jobStatusRules, type RolloutPlan, type UpdateJobDocument } from '@fleetwave/shared';
import type { JobsService } from '../jobs/jobs-service.js';
import type { ExecutionStateRow, JobsStore } from '../jobs/jobs-store.js';
import type { Action, ExecutionView, RolloutState } from './rollout-state.js';

export interface ExecutionViews {
  updates: Map<string, ExecutionView>;
  rollbacks: Map<string, ExecutionView>;
}

/** What a device's execution changed to, as a backend reports it (an event and a reason to evaluate soon). */
export interface ExecutionChange {
  rollout: string | null | undefined;
  thing: string;
  jobId: string;
  status: string;
  executionNumber: number;
  statusDetails?: Record<string, string | undefined> | undefined;
}

/** Builds the job document of a queue action (the manifest of the version, where to download it). */
export type DocumentFor = (
  state: RolloutState,
  action: Extract<Action, { type: 'queue' }>,
) => Promise<UpdateJobDocument>;

/**
 * Where the wave engine's executions live: the controller's own jobs service (local) or AWS IoT Jobs. The engine
 * stays the same; a backend only carries out its actions and reports executions back as views.
 */
export interface RolloutJobs {
  readonly name: 'local' | 'aws-iot';
  /**
   * Whether the backend paces executions, retries them and times them out itself (the plan's rate, retries and
   * device timeout are mapped to it), so the engine queues a whole wave at once and leaves those to the backend.
   */
  readonly selfPaced: boolean;
  /** The plan settings this backend cannot express, as messages (empty: fine). */
  problems(plan: RolloutPlan): string[];
  /**
   * The latest execution per device of a rollout's update job and of its rollback job(s); undefined while they are
   * not known yet (a remote backend before its first poll): the engine must not judge a rollout on missing data.
   */
  views(state: RolloutState): Promise<ExecutionViews | undefined>;
  /**
   * Carries out one action. The local backend does it inside the caller's transaction; a remote one queues the work
   * and does it after the commit (every action is idempotent, and a lost one is repeated by the next evaluation).
   */
  act(state: RolloutState, action: Exclude<Action, { type: 'event' }>, documentFor: DocumentFor): Promise<void>;
  /** A rollout ended: release what the backend holds for it (idempotent). */
  finish(state: RolloutState): void;
  /** Brings the views up to date (remote backends poll; returns whether anything changed). */
  refresh?(active: readonly RolloutState[]): Promise<boolean>;
  /** Resolves when the work queued so far is done (tests, shutdown). */
  idle?(): Promise<void>;
}

export const rollbackJob = (id: string) => `${id}-rb`;

/** The controller's own jobs service (docs/JOBS-PROTOCOL.md) over its database: one update job and one rollback job per rollout. */
export class LocalRolloutJobs implements RolloutJobs {
  readonly name = 'local';
  readonly selfPaced = false;

  constructor(
    private readonly jobs: JobsService,
    private readonly store: JobsStore,
  ) {}

  problems(): string[] {
    return [];
  }

  async views(state: RolloutState): Promise<ExecutionViews> {
    const updates = new Map<string, ExecutionView>();
    const rollbacks = new Map<string, ExecutionView>();
    for (const e of await this.store.statesByRollout(state.id)) {
      const map = e.jobId === state.id ? updates : rollbacks;
      const prev = map.get(e.thing);
      if (!prev || prev.executionNumber < e.executionNumber) map.set(e.thing, executionView(e));
    }
    return { updates, rollbacks };
  }

  async act(state: RolloutState, a: Exclude<Action, { type: 'event' }>, documentFor: DocumentFor): Promise<void> {
    const jobId = a.type !== 'time-out' && a.purpose === 'rollback' ? rollbackJob(state.id) : state.id;
    if (a.type === 'cancel') await this.jobs.end(jobId, a.device, 'CANCELED', a.reason);
    else if (a.type === 'time-out') await this.jobs.end(jobId, a.device, 'TIMED_OUT', a.reason);
    else {
      const document = await documentFor(state, a);
      await this.jobs.queue({
        jobId,
        thing: a.device,
        executionNumber: a.executionNumber,
        document,
        rollout: state.id,
      });
    }
  }

  finish(): void {}
}

export function executionView(e: ExecutionStateRow) {
  return {
    status: e.status,
    executionNumber: e.executionNumber,
    ...(e.startedAt !== undefined && { startedAt: e.startedAt }),
    ...(jobStatusRules[e.status].terminal && { finishedAt: e.lastUpdatedAt }),
    // the coded reason when the device gave one (what failure rules group by), else its message
    ...((e.statusDetails?.code || e.statusDetails?.reason) && {
      reason: e.statusDetails.code ?? e.statusDetails.reason,
    }),
  } satisfies ExecutionView;
}

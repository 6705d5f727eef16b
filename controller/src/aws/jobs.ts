import { createHash } from 'node:crypto';
import {
  AddThingToThingGroupCommand,
  CancelJobCommand,
  CancelJobExecutionCommand,
  CreateJobCommand,
  type CreateJobRequest,
  CreateThingGroupCommand,
  DeleteThingGroupCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  DescribeThingGroupCommand,
  type IoTClient,
  ListJobExecutionsForJobCommand,
  type ListJobExecutionsForJobCommandOutput,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { type JobStatus, jobStatusRules, type RolloutPlan } from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { DocumentFor, ExecutionChange, ExecutionViews, RolloutJobs } from '../rollouts/jobs-port.js';
import type { Action, ExecutionView, RolloutState } from '../rollouts/rollout-state.js';

/** AWS IoT Jobs' limits the plan must fit (CreateJob's documented ranges). */
const AWS = { maxPerMinute: 1000, baseRate: 1000, timeoutMinutes: 10_080, retries: 10, jobId: 64 } as const;

/** An AWS job id (≤ 64 of [a-zA-Z0-9_-]); a long rollout id is shortened with a hash so it stays unique. */
function awsId(base: string): string {
  const clean = base.replace(/[^a-zA-Z0-9_-]/g, '_');
  if (clean.length <= AWS.jobId) return clean;
  return `${clean.slice(0, AWS.jobId - 9)}-${createHash('sha256').update(base).digest('hex').slice(0, 8)}`;
}

const short = (v: string) => createHash('sha256').update(v).digest('hex').slice(0, 8);

/** The AWS job of one wave of a rollout, and the rollback job for each version devices go back to. */
export const waveJobId = (rollout: string, wave: number) => awsId(`${rollout}-w${wave + 1}`);
export const rollbackJobId = (rollout: string, version: string) => awsId(`${rollout}-rb-${short(version)}`);

interface AwsJob {
  jobId: string;
  group: string;
  purpose: 'update' | 'rollback';
  /** Things already added to the group by this process (adding again is harmless, but costs a call). */
  added: Set<string>;
}

export interface AwsIotJobsOptions {
  client: IoTClient;
  /** The fleet's thing group (as `fleetwave aws provision` made it): wave groups are named after it. */
  fleet: string;
  log: Logger;
  /** An execution changed (seen when polling). */
  onChange?: (e: ExecutionChange) => void;
}

/**
 * The wave engine's executions as AWS IoT Jobs: each wave is one continuous job targeting a static thing group of
 * that wave's devices, with the plan's rate, failure threshold, retries and device timeout mapped to the job's rollout,
 * abort, retry and timeout configuration. Fleetwave keeps the gates between waves (success threshold, bake, approvals,
 * maintenance windows, rollback), reading the executions back with ListJobExecutionsForJob.
 */
export class AwsIotJobs implements RolloutJobs {
  readonly name = 'aws-iot';
  readonly selfPaced = true;
  private readonly cache = new Map<string, ExecutionViews>();
  private readonly jobs = new Map<string, AwsJob>();
  /** Failure reasons already read (DescribeJobExecution), by job, thing and execution number. */
  private readonly reasons = new Map<string, string | null>();
  private work: Promise<void> = Promise.resolve();
  private pending = 0;
  /** Whether the executions were read once since the start (before, a rollout's state is not judged). */
  private loaded = false;

  constructor(private readonly o: AwsIotJobsOptions) {}

  problems(plan: RolloutPlan): string[] {
    const out: string[] = [];
    const rate = plan.rate;
    if (rate && rate.maxPerMinute > AWS.maxPerMinute) {
      out.push(`rate.maxPerMinute ${rate.maxPerMinute} is above AWS IoT Jobs' maximumPerMinute limit of 1000`);
    }
    if (rate?.ramp && rate.ramp.baseRatePerMinute > AWS.baseRate) {
      out.push(`rate.ramp.baseRatePerMinute ${rate.ramp.baseRatePerMinute} is above AWS's limit of 1000`);
    }
    plan.waves.forEach((w, i) => {
      if (w.deviceTimeout > AWS.timeoutMinutes * 60_000) {
        out.push(`waves[${i}].deviceTimeout is longer than AWS's in-progress timeout limit of 7 days`);
      }
    });
    return out;
  }

  async views(state: RolloutState): Promise<ExecutionViews | undefined> {
    if (!this.loaded) return undefined;
    return this.cache.get(state.id) ?? { updates: new Map(), rollbacks: new Map() };
  }

  async act(state: RolloutState, a: Exclude<Action, { type: 'event' }>, documentFor: DocumentFor): Promise<void> {
    // AWS times executions out (timeoutConfig) and retries them (jobExecutionsRetryConfig) itself
    if (a.type === 'time-out') return;
    if (a.type === 'queue' && a.purpose === 'update' && a.executionNumber > 1) return;
    if (a.type === 'queue') {
      const jobId = a.purpose === 'update' ? waveJobId(state.id, a.wave) : rollbackJobId(state.id, a.version);
      this.enqueue(async () => {
        const job = await this.ensureJob(state, jobId, a, documentFor);
        if (job.added.has(a.device)) return;
        await this.o.client.send(new AddThingToThingGroupCommand({ thingGroupName: job.group, thingName: a.device }));
        job.added.add(a.device);
      });
      return;
    }
    const member = state.members.find((m) => m.device === a.device);
    if (!member) return;
    const jobId =
      a.purpose === 'update'
        ? waveJobId(state.id, member.wave)
        : rollbackJobId(state.id, member.fromVersion ?? state.plan.release.version);
    this.enqueue(async () => {
      try {
        await this.o.client.send(
          new CancelJobExecutionCommand({
            jobId,
            thingName: a.device,
            force: false,
            statusDetails: { reason: a.reason.slice(0, 128) },
          }),
        );
      } catch (err) {
        // already terminal or started (a device mid-install finishes; its own rollback covers a failure)
        this.o.log.debug({ err: (err as Error).message, jobId, device: a.device }, 'cancel not applied');
      }
    });
  }

  finish(state: RolloutState): void {
    const ids = this.jobIds(state);
    this.enqueue(async () => {
      for (const { jobId } of ids) {
        try {
          const j = await this.o.client.send(new DescribeJobCommand({ jobId }));
          // continuous jobs never complete by themselves: cancel the job (in-progress executions finish)
          if (j.job?.status === 'IN_PROGRESS' || j.job?.status === 'SCHEDULED') {
            await this.o.client.send(
              new CancelJobCommand({ jobId, comment: `rollout ${state.id} ${state.status}`, force: false }),
            );
          }
        } catch (err) {
          if (!(err instanceof ResourceNotFoundException)) throw err;
        }
        // a thing is in at most 10 static groups: the wave's group goes when the rollout ends
        try {
          await this.o.client.send(new DeleteThingGroupCommand({ thingGroupName: groupOf(jobId) }));
        } catch (err) {
          if (!(err instanceof ResourceNotFoundException)) throw err;
        }
        this.jobs.delete(jobId);
      }
    });
  }

  /** The AWS jobs a rollout can have by now: one per started wave, one per version its rollback sends devices to. */
  private jobIds(state: RolloutState): { jobId: string; purpose: 'update' | 'rollback' }[] {
    const ids: { jobId: string; purpose: 'update' | 'rollback' }[] = [];
    state.waves.forEach((w, i) => {
      if (w.status !== 'pending') ids.push({ jobId: waveJobId(state.id, i), purpose: 'update' });
    });
    if (state.rollbackStartedAt !== undefined) {
      for (const v of new Set(state.members.map((m) => m.fromVersion))) {
        if (v !== null) ids.push({ jobId: rollbackJobId(state.id, v), purpose: 'rollback' });
      }
    }
    return ids;
  }

  async refresh(active: readonly RolloutState[]): Promise<boolean> {
    await this.idle();
    let changed = false;
    for (const state of active) {
      const updates = new Map<string, ExecutionView>();
      const rollbacks = new Map<string, ExecutionView>();
      for (const { jobId, purpose } of this.jobIds(state)) {
        const map = purpose === 'rollback' ? rollbacks : updates;
        for (const [thing, view] of await this.executionsOf(jobId)) {
          const prev = map.get(thing);
          if (!prev || prev.executionNumber <= view.executionNumber) map.set(thing, view);
        }
      }
      const before = this.cache.get(state.id);
      for (const [kind, map] of [
        ['update', updates],
        ['rollback', rollbacks],
      ] as const) {
        const old = kind === 'update' ? before?.updates : before?.rollbacks;
        for (const [thing, v] of map) {
          const o = old?.get(thing);
          if (o && o.status === v.status && o.executionNumber === v.executionNumber) continue;
          changed = true;
          const member = state.members.find((m) => m.device === thing);
          this.o.onChange?.({
            rollout: state.id,
            thing,
            jobId:
              kind === 'update'
                ? waveJobId(state.id, member?.wave ?? 0)
                : rollbackJobId(state.id, member?.fromVersion ?? ''),
            status: v.status,
            executionNumber: v.executionNumber,
            ...(v.reason && { statusDetails: { reason: v.reason } }),
          });
        }
      }
      this.cache.set(state.id, { updates, rollbacks });
    }
    if (!this.loaded) changed = true;
    this.loaded = true;
    return changed;
  }

  /** A job's executions by thing (its latest attempt), with the device's reason for a failure. */
  private async executionsOf(jobId: string): Promise<Map<string, ExecutionView>> {
    const out = new Map<string, ExecutionView>();
    let nextToken: string | undefined;
    do {
      let page: ListJobExecutionsForJobCommandOutput;
      try {
        page = await this.o.client.send(new ListJobExecutionsForJobCommand({ jobId, maxResults: 250, nextToken }));
      } catch (err) {
        if (err instanceof ResourceNotFoundException) return out;
        throw err;
      }
      for (const s of page.executionSummaries ?? []) {
        const thing = s.thingArn?.slice(s.thingArn.lastIndexOf('/') + 1);
        const e = s.jobExecutionSummary;
        if (!thing || !e?.status) continue;
        const view: ExecutionView = {
          status: e.status as JobStatus,
          // the engine counts attempts: AWS's first try is retryAttempt 0
          executionNumber: (e.retryAttempt ?? 0) + 1,
          ...(e.startedAt && { startedAt: e.startedAt.getTime() }),
          ...(e.lastUpdatedAt &&
            jobStatusRules[e.status as JobStatus]?.terminal && { finishedAt: e.lastUpdatedAt.getTime() }),
        };
        if (view.status === 'FAILED' || view.status === 'REJECTED' || view.status === 'TIMED_OUT') {
          const reason = await this.reasonOf(jobId, thing, e.executionNumber);
          if (reason) view.reason = reason;
        }
        out.set(thing, view);
      }
      nextToken = page.nextToken;
    } while (nextToken);
    return out;
  }

  /** The coded reason a device gave (statusDetails `code`, else `reason`), read once per execution. */
  private async reasonOf(jobId: string, thing: string, executionNumber: number | undefined): Promise<string | null> {
    const key = `${jobId}\0${thing}\0${executionNumber ?? ''}`;
    if (this.reasons.has(key)) return this.reasons.get(key)!;
    const d = await this.o.client.send(
      new DescribeJobExecutionCommand({
        jobId,
        thingName: thing,
        ...(executionNumber !== undefined && { executionNumber }),
      }),
    );
    const m = d.execution?.statusDetails?.detailsMap ?? {};
    const reason = m.code ?? m.reason ?? null;
    this.reasons.set(key, reason);
    return reason;
  }

  /** The job and its thing group, created once (both looked up first: re-running changes nothing). */
  private async ensureJob(
    state: RolloutState,
    jobId: string,
    a: Extract<Action, { type: 'queue' }>,
    documentFor: DocumentFor,
  ): Promise<AwsJob> {
    const known = this.jobs.get(jobId);
    if (known) return known;
    const group = groupOf(jobId);
    let groupArn: string | undefined;
    try {
      groupArn = (await this.o.client.send(new DescribeThingGroupCommand({ thingGroupName: group }))).thingGroupArn;
    } catch (err) {
      if (!(err instanceof ResourceNotFoundException)) throw err;
      groupArn = (
        await this.o.client.send(
          new CreateThingGroupCommand({
            thingGroupName: group,
            thingGroupProperties: {
              thingGroupDescription: `Fleetwave ${state.id}: ${a.purpose === 'update' ? `wave ${a.wave + 1}` : `rollback to ${a.version}`}`,
              attributePayload: { attributes: { fleet: this.o.fleet, rollout: state.id.slice(0, 800) } },
            },
          }),
        )
      ).thingGroupArn;
    }
    try {
      await this.o.client.send(new DescribeJobCommand({ jobId }));
    } catch (err) {
      if (!(err instanceof ResourceNotFoundException)) throw err;
      await this.o.client.send(
        new CreateJobCommand(createJobRequest(state, jobId, groupArn!, a, await documentFor(state, a))),
      );
      this.o.log.info({ jobId, group, rollout: state.id }, 'AWS IoT job created');
    }
    const job: AwsJob = { jobId, group, purpose: a.purpose, added: new Set() };
    this.jobs.set(jobId, job);
    return job;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.pending++;
    this.work = this.work
      .then(fn)
      .catch((err) =>
        this.o.log.warn({ err: (err as Error).message }, 'AWS IoT Jobs call failed; the next evaluation repeats it'),
      )
      .finally(() => this.pending--);
  }

  async idle(): Promise<void> {
    while (this.pending > 0) await this.work;
  }
}

const groupOf = (jobId: string) => `fleetwave-${jobId}`;

/**
 * The CreateJob request of a wave (or rollback) job: the plan's settings as AWS's. What AWS cannot express stays with
 * Fleetwave (see the mapping table in controller/README.md).
 */
export function createJobRequest(
  state: RolloutState,
  jobId: string,
  groupArn: string,
  a: Extract<Action, { type: 'queue' }>,
  document: unknown,
): CreateJobRequest {
  const plan = state.plan;
  const wave = plan.waves[a.wave]!;
  const update = a.purpose === 'update';
  const rate = plan.rate;
  return {
    jobId,
    targets: [groupArn],
    // devices that join the wave later (joiners go to the last wave) are added to the group and get the job
    targetSelection: 'CONTINUOUS',
    document: JSON.stringify(document),
    description:
      `Fleetwave ${state.id}: ${update ? `wave ${a.wave + 1} of ${plan.waves.length}` : 'rollback'}, ${plan.release.name} ${a.version}`.slice(
        0,
        2028,
      ),
    timeoutConfig: {
      inProgressTimeoutInMinutes: Math.min(AWS.timeoutMinutes, Math.max(1, Math.ceil(wave.deviceTimeout / 60_000))),
    },
    ...(update &&
      rate && {
        jobExecutionsRolloutConfig: {
          maximumPerMinute: rate.maxPerMinute,
          ...(rate.ramp && {
            exponentialRate: {
              baseRatePerMinute: rate.ramp.baseRatePerMinute,
              incrementFactor: rate.ramp.incrementFactor,
              rateIncreaseCriteria: { numberOfSucceededThings: rate.ramp.afterSucceeded },
            },
          }),
        },
      }),
    ...(update &&
      wave.failureThreshold && {
        abortConfig: {
          criteriaList: [
            {
              failureType: 'ALL',
              action: 'CANCEL',
              thresholdPercentage: wave.failureThreshold.percent,
              minNumberOfExecutedThings: wave.failureThreshold.minFinished,
            },
          ],
        },
      }),
    ...(update &&
      wave.retries > 0 && {
        jobExecutionsRetryConfig: {
          // the engine retries FAILED and TIMED_OUT alike
          criteriaList: [{ failureType: 'ALL', numberOfRetries: wave.retries }],
        },
      }),
    tags: [
      { Key: 'fleetwave:rollout', Value: state.id },
      { Key: 'fleetwave:purpose', Value: a.purpose },
    ],
  };
}

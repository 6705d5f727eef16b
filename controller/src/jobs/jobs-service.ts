import { AsyncLocalStorage } from 'node:async_hooks';
import {
  assertTransition,
  DescribeRequest,
  decodeJson,
  FleetwaveError,
  GetPendingRequest,
  isFleetwaveError,
  type JobStatus,
  jobNotifyTopic,
  jobStatusRules,
  parseJobTopic,
  parseWith,
  StartNextRequest,
  UpdateRequest,
} from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { ControllerDatabase } from '../store/database.js';
import { Mutex } from '../store/database.js';
import type { StoredExecution } from './jobs-store.js';
import {
  applyToPending,
  executionMessage,
  key,
  LIST_NOTIFICATION_MAX,
  listKey,
  Rejection,
  stateOf,
  summary,
} from './messages.js';

export { applyToPending, executionMessage, LIST_NOTIFICATION_MAX, summary } from './messages.js';

export interface JobsServiceOptions {
  db: Pick<ControllerDatabase, 'jobs' | 'transaction'>;
  jobsRoot: string;
  now: () => number;
  /** QoS 1 publish to a device (never retained: invariant 4, the broker holds nothing we depend on). */
  publish: (topic: string, payload: string) => void;
  log: Logger;
  /** Called after every committed change of an execution (the wave engine listens). */
  onChange?: (e: StoredExecution, before: JobStatus | undefined) => void;
}

interface Batch {
  out: { topic: string; payload: string }[];
  changes: { e: StoredExecution; before: JobStatus | undefined }[];
  /**
   * Each thing's pending executions as this batch has them: read once (for a group of requests, in one query), then
   * kept up to date with the batch's own changes, so a request costs its writes, not three reads of the list.
   */
  pending: Map<string, StoredExecution[]>;
}

/**
 * The jobs service of docs/JOBS-PROTOCOL.md: executions per thing, versioned updates, step timeouts, and the two
 * notifications — `notify` when a thing's list of pending executions changes, `notify-next` only when *which*
 * execution is next changes. Every change is committed to the database before anything is published.
 */
export class JobsService {
  /** The batch (unit of work) the current async context is in, if any. */
  private readonly context = new AsyncLocalStorage<Batch>();
  /**
   * Batches run one at a time: each reads a thing's pending executions, changes them and compares, which must not
   * interleave with another batch changing the same thing (in this process; across replicas a batch holds the things
   * it touches, `JobsStore.lockThings`).
   */
  private readonly serial = new Mutex();

  constructor(private readonly o: JobsServiceOptions) {}

  private get store() {
    return this.o.db.jobs;
  }

  /** A device's request on its jobs topics (the ACL already checked the thing is the publisher). */
  async handle(thing: string, topic: string, payload: Buffer): Promise<void> {
    let t: ReturnType<typeof parseJobTopic>;
    try {
      t = parseJobTopic(this.o.jobsRoot, topic);
    } catch {
      this.reply(`${topic}/rejected`, this.rejection(new Rejection('InvalidTopic', `not a jobs topic: ${topic}`)));
      return;
    }
    if (t.family !== 'jobs' || t.reply !== 'request' || t.thing !== thing) return;
    let clientToken: string | undefined;
    try {
      const body = this.decode(payload);
      clientToken = typeof body.clientToken === 'string' ? body.clientToken : undefined;
      const answer = await (t.op === 'get'
        ? this.listPending(thing, this.addressed(GetPendingRequest, body, t))
        : t.op === 'start-next'
          ? this.startNext(thing, this.addressed(StartNextRequest, body, t))
          : t.op === 'describe'
            ? this.describe(thing, t.jobId!, this.addressed(DescribeRequest, body, t))
            : this.update(thing, t.jobId!, this.addressed(UpdateRequest, body, t)));
      this.reply(`${topic}/accepted`, { ...answer, timestamp: this.o.now(), ...(clientToken && { clientToken }) });
    } catch (err) {
      if (!(err instanceof Rejection)) this.o.log.error({ err, thing, topic }, 'jobs request failed');
      const r = err instanceof Rejection ? err : new Rejection('InternalError', 'internal error');
      this.reply(`${topic}/rejected`, { ...this.rejection(r), ...(clientToken && { clientToken }) });
    }
  }

  /** Queues an execution unless it exists (idempotent: a restarted rollout queues nothing twice). */
  queue(x: {
    jobId: string;
    thing: string;
    executionNumber: number;
    document: object;
    rollout?: string;
  }): Promise<boolean> {
    const now = this.o.now();
    return this.change(x.thing, async () => {
      const e: StoredExecution = {
        jobId: x.jobId,
        thing: x.thing,
        executionNumber: x.executionNumber,
        status: 'QUEUED',
        statusDetails: undefined,
        document: x.document as Record<string, unknown>,
        queuedAt: now,
        startedAt: undefined,
        lastUpdatedAt: now,
        versionNumber: 1,
        stepDeadline: undefined,
        rollout: x.rollout,
      };
      return (await this.store.insert(e)) ? [{ e, before: undefined }] : [];
    });
  }

  /** The service ends a pending execution (CANCELED, REMOVED or TIMED_OUT); false when it was not pending. */
  end(jobId: string, thing: string, status: 'CANCELED' | 'REMOVED' | 'TIMED_OUT', reason: string): Promise<boolean> {
    return this.change(thing, async (pending) => {
      // the latest execution of the job, if it is pending (else there is nothing to end)
      const e = pending.find((x) => x.jobId === jobId);
      if (!e) return [];
      assertTransition(e.status, status, 'service');
      const next = this.bump(e, { status, statusDetails: { ...e.statusDetails, reason }, stepDeadline: undefined });
      await this.store.update(next);
      return [{ e: next, before: e.status }];
    });
  }

  /** Step timeouts that ran out become TIMED_OUT. */
  async tick(now: number, fence?: () => Promise<void>): Promise<number> {
    const due = await this.store.stepTimeoutsDue(now);
    if (due.length === 0) return 0;
    await this.batch(async () => {
      await fence?.(); // the leader's duty: refused once another replica leads
      for (const e of due) await this.end(e.jobId, e.thing, 'TIMED_OUT', 'step timeout');
    });
    return due.length;
  }

  pendingOf(thing: string): Promise<StoredExecution[]> {
    return this.pendingList(thing);
  }

  /**
   * Inside a batch: holds these things and reads their pending lists in one query each, for the changes to come (a
   * rollout's commit queues a wave's executions: one lock and one read for all of them, not one per device).
   */
  async prepare(things: readonly string[]): Promise<void> {
    const b = this.context.getStore();
    if (!b) return;
    const fresh = [...new Set(things)].filter((t) => !b.pending.has(t));
    if (fresh.length === 0) return;
    await this.store.lockThings(fresh);
    for (const [thing, list] of await this.store.pendingMany(fresh)) b.pending.set(thing, list);
  }

  /** A thing's pending list: the current batch's copy, else read (and kept for the rest of the batch). */
  private async pendingList(thing: string): Promise<StoredExecution[]> {
    const b = this.context.getStore();
    const known = b?.pending.get(thing);
    if (known) return [...known];
    if (b) await this.store.lockThings([thing]);
    const list = await this.store.pending(thing);
    b?.pending.set(thing, list);
    return [...list];
  }

  private queued: { thing: string; topic: string; payload: Buffer }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  /**
   * Runs fn as one unit of work (one database transaction); what it publishes and the changes it reports go out only
   * after the commit (persist, then act), and one commit (one fsync) covers everything in it. Calls made inside it
   * (its async context) join it. `onChange` listeners run while the next batch waits: they must not wait on a batch.
   */
  async batch<T>(fn: () => Promise<T>): Promise<T> {
    if (this.context.getStore()) return fn();
    return this.serial.run(async () => {
      const b: Batch = { out: [], changes: [], pending: new Map() };
      const result = await this.context.run(b, () => this.o.db.transaction(fn));
      for (const m of b.out) this.o.publish(m.topic, m.payload);
      for (const c of b.changes) this.o.onChange?.(c.e, c.before);
      return result;
    });
  }

  /**
   * A device request from a broker adapter: requests arriving within a few milliseconds share one transaction (a
   * group commit, as telemetry ingest does); the answers are published after it committed.
   */
  enqueue(thing: string, topic: string, payload: Buffer): void {
    this.queued.push({ thing, topic, payload });
    if (this.queued.length >= 500) {
      void this.flush();
      return;
    }
    this.flushTimer ??= setTimeout(() => void this.flush(), 2);
  }

  /** Handles what is queued now, in one unit of work; resolves when it committed and the answers went out. */
  flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const requests = this.queued;
    this.queued = [];
    if (requests.length === 0) return this.flushing;
    this.flushing = this.batch(async () => {
      // the pending lists of every thing asking, in one read
      await this.prepare(requests.map((r) => r.thing));
      for (const r of requests) await this.handle(r.thing, r.topic, r.payload);
    }).catch((err) => {
      // the commit failed: no answer went out; devices ask again (on reconnect, or their next status)
      this.o.log.error({ err, requests: requests.length }, 'jobs commit failed');
    });
    return this.flushing;
  }

  /**
   * One change of a thing's executions inside the current batch (or a batch of its own). fn gets the thing's pending
   * list and refuses (throws) before it writes anything, so a refused request changes nothing; a failed write fails
   * the whole batch (nothing is answered, devices ask again). The notifications compare the pending list before and
   * after.
   */
  private change(
    thing: string,
    fn: (pending: readonly StoredExecution[]) => Promise<{ e: StoredExecution; before: JobStatus | undefined }[]>,
  ): Promise<boolean> {
    return this.batch(async () => {
      const b = this.context.getStore()!;
      const before = await this.pendingList(thing);
      const changed = await fn(before);
      const after = applyToPending(
        before,
        changed.map((c) => c.e),
      );
      b.pending.set(thing, after);
      this.notify(thing, before, after);
      b.changes.push(...changed);
      return changed.length > 0;
    });
  }

  private notify(thing: string, before: StoredExecution[], after: StoredExecution[]): void {
    const timestamp = this.o.now();
    if (listKey(before) !== listKey(after)) {
      // a ListNotification holds at most 15 pending executions, in the order of nextOrder (AWS "Jobs notifications")
      const listed = after.slice(0, LIST_NOTIFICATION_MAX);
      const inProgress = listed.filter((e) => e.status === 'IN_PROGRESS').map(summary);
      const queued = listed.filter((e) => e.status === 'QUEUED').map(summary);
      this.reply(jobNotifyTopic(this.o.jobsRoot, thing, 'notify'), {
        timestamp,
        jobs: { ...(inProgress.length && { IN_PROGRESS: inProgress }), ...(queued.length && { QUEUED: queued }) },
      });
    }
    if (key(before[0]) !== key(after[0])) {
      this.reply(jobNotifyTopic(this.o.jobsRoot, thing, 'notify-next'), {
        timestamp,
        ...(after[0] && { execution: executionMessage(after[0]) }),
      });
    }
  }

  private async listPending(thing: string, _req: z.infer<typeof GetPendingRequest>) {
    const pending = await this.pendingList(thing);
    return {
      inProgressJobs: pending.filter((e) => e.status === 'IN_PROGRESS').map(summary),
      queuedJobs: pending.filter((e) => e.status === 'QUEUED').map(summary),
    };
  }

  private async startNext(thing: string, req: z.infer<typeof StartNextRequest>) {
    let started: StoredExecution | undefined;
    await this.change(thing, async (pending) => {
      const next = pending[0];
      if (!next) return [];
      if (next.status === 'IN_PROGRESS') {
        started = next;
        return [];
      }
      const now = this.o.now();
      started = this.bump(next, {
        status: 'IN_PROGRESS',
        startedAt: now,
        ...(req.statusDetails && { statusDetails: req.statusDetails }),
        stepDeadline: req.stepTimeoutInMinutes ? now + req.stepTimeoutInMinutes * 60_000 : undefined,
      });
      await this.store.update(started);
      return [{ e: started, before: next.status }];
    });
    return started ? { execution: executionMessage(started) } : {};
  }

  private async describe(thing: string, jobId: string, req: z.infer<typeof DescribeRequest>) {
    const e =
      jobId === '$next' ? (await this.pendingList(thing))[0] : await this.store.get(jobId, thing, req.executionNumber);
    if (!e) throw new Rejection('ResourceNotFound', `no execution of ${jobId} for ${thing}`);
    if (jobStatusRules[e.status].terminal && jobId !== '$next') {
      throw new Rejection('TerminalStateReached', `the execution of ${jobId} is ${e.status}`);
    }
    return { execution: executionMessage(e, req.includeJobDocument ?? true) };
  }

  private async update(thing: string, jobId: string, req: z.infer<typeof UpdateRequest>) {
    let updated: StoredExecution | undefined;
    await this.change(thing, async (pending) => {
      // a pending execution is in the list; any other is read (to answer why it cannot change)
      const e =
        pending.find(
          (x) => x.jobId === jobId && (req.executionNumber === undefined || x.executionNumber === req.executionNumber),
        ) ?? (await this.store.get(jobId, thing, req.executionNumber));
      if (!e) throw new Rejection('ResourceNotFound', `no execution of ${jobId} for ${thing}`);
      if (req.expectedVersion !== undefined && req.expectedVersion !== e.versionNumber) {
        throw new Rejection('VersionMismatch', `expected version ${req.expectedVersion}, is ${e.versionNumber}`, e);
      }
      try {
        assertTransition(e.status, req.status, 'device');
      } catch (err) {
        if (isFleetwaveError(err, 'E_JOB_TRANSITION')) throw new Rejection('InvalidStateTransition', err.message, e);
        throw err;
      }
      const now = this.o.now();
      const terminal = jobStatusRules[req.status].terminal;
      updated = this.bump(e, {
        status: req.status,
        ...(req.statusDetails && { statusDetails: req.statusDetails }),
        ...(e.startedAt === undefined && { startedAt: now }),
        stepDeadline: terminal
          ? undefined
          : req.stepTimeoutInMinutes
            ? now + req.stepTimeoutInMinutes * 60_000
            : e.stepDeadline,
      });
      await this.store.update(updated);
      return [{ e: updated, before: e.status }];
    });
    const u = updated!;
    return {
      ...(req.includeJobExecutionState && { executionState: stateOf(u) }),
      ...(req.includeJobDocument && { jobDocument: u.document }),
    };
  }

  private bump(e: StoredExecution, patch: Partial<StoredExecution>): StoredExecution {
    return { ...e, ...patch, versionNumber: e.versionNumber + 1, lastUpdatedAt: this.o.now() };
  }

  private decode(payload: Buffer): Record<string, unknown> {
    if (payload.length === 0) return {};
    try {
      const v = decodeJson(payload);
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      return v as Record<string, unknown>;
    } catch {
      throw new Rejection('InvalidJson', 'the request is not a JSON object');
    }
  }

  /**
   * Parses a request and checks the `thingName` and `jobId` an AWS SDK client repeats in the body against the topic:
   * the topic is the address (the ACL checked it); a body naming another thing or job is a confused client, refused.
   */
  private addressed<T extends z.ZodType>(schema: T, body: unknown, t: { thing: string; jobId?: string }): z.infer<T> {
    const req = this.parse(schema, body) as { thingName?: string; jobId?: string };
    if (req.thingName !== undefined && req.thingName !== t.thing) {
      throw new Rejection('InvalidRequest', `thingName "${req.thingName}" is not the topic's thing "${t.thing}"`);
    }
    if (req.jobId !== undefined && req.jobId !== t.jobId) {
      throw new Rejection('InvalidRequest', `jobId "${req.jobId}" is not the topic's job "${t.jobId}"`);
    }
    return req as z.infer<T>;
  }

  private parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
    try {
      return parseWith(schema, body, 'jobs request') as z.infer<T>;
    } catch (err) {
      throw new Rejection('InvalidRequest', err instanceof FleetwaveError ? err.message : 'invalid request');
    }
  }

  private rejection(r: Rejection) {
    return {
      code: r.code,
      message: r.message.slice(0, 256),
      timestamp: this.o.now(),
      ...(r.execution &&
        (r.code === 'InvalidStateTransition' || r.code === 'VersionMismatch') && {
          executionState: stateOf(r.execution),
        }),
    };
  }

  /** Publishes after the current batch commits (or now, outside one). */
  private reply(topic: string, body: object): void {
    const b = this.context.getStore();
    if (b) b.out.push({ topic, payload: JSON.stringify(body) });
    else this.o.publish(topic, JSON.stringify(body));
  }
}

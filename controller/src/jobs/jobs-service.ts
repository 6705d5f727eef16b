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
import { type JobsStore, nextOrder, type StoredExecution } from './jobs-store.js';

type Code =
  | 'InvalidTopic'
  | 'InvalidJson'
  | 'InvalidRequest'
  | 'InvalidStateTransition'
  | 'ResourceNotFound'
  | 'VersionMismatch'
  | 'InternalError'
  | 'TerminalStateReached';

class Rejection extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly execution?: StoredExecution,
  ) {
    super(message);
  }
}

export interface JobsServiceOptions {
  store: JobsStore;
  jobsRoot: string;
  now: () => number;
  /** QoS 1 publish to a device (never retained: invariant 4, the broker holds nothing we depend on). */
  publish: (topic: string, payload: string) => void;
  log: Logger;
  /** Called after every committed change of an execution (the wave engine listens). */
  onChange?: (e: StoredExecution, before: JobStatus | undefined) => void;
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

const stateOf = (e: StoredExecution) => ({
  status: e.status,
  ...(e.statusDetails && { statusDetails: e.statusDetails }),
  versionNumber: e.versionNumber,
});

export const LIST_NOTIFICATION_MAX = 15;

const key = (e: StoredExecution | undefined) => (e ? `${e.jobId}#${e.executionNumber}` : '');
const listKey = (l: StoredExecution[]) => l.map((e) => `${key(e)}:${e.status}`).join(',');

/**
 * The jobs service of docs/JOBS-PROTOCOL.md: executions per thing, versioned updates, step timeouts, and the two
 * notifications — `notify` when a thing's list of pending executions changes, `notify-next` only when *which*
 * execution is next changes. Every change is committed to SQLite before anything is published.
 */
export class JobsService {
  constructor(private readonly o: JobsServiceOptions) {}

  /** A device's request on its jobs topics (the ACL already checked the thing is the publisher). */
  handle(thing: string, topic: string, payload: Buffer): void {
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
      const answer =
        t.op === 'get'
          ? this.listPending(thing, this.addressed(GetPendingRequest, body, t))
          : t.op === 'start-next'
            ? this.startNext(thing, this.addressed(StartNextRequest, body, t))
            : t.op === 'describe'
              ? this.describe(thing, t.jobId!, this.addressed(DescribeRequest, body, t))
              : this.update(thing, t.jobId!, this.addressed(UpdateRequest, body, t));
      this.reply(`${topic}/accepted`, { ...answer, timestamp: this.o.now(), ...(clientToken && { clientToken }) });
    } catch (err) {
      if (!(err instanceof Rejection)) this.o.log.error({ err, thing, topic }, 'jobs request failed');
      const r = err instanceof Rejection ? err : new Rejection('InternalError', 'internal error');
      this.reply(`${topic}/rejected`, { ...this.rejection(r), ...(clientToken && { clientToken }) });
    }
  }

  /** Queues an execution unless it exists (idempotent: a restarted rollout queues nothing twice). */
  queue(x: { jobId: string; thing: string; executionNumber: number; document: object; rollout?: string }): boolean {
    const now = this.o.now();
    return this.change(x.thing, () => {
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
      return this.o.store.insert(e) ? [{ e, before: undefined }] : [];
    });
  }

  /** The service ends a pending execution (CANCELED, REMOVED or TIMED_OUT); false when it was not pending. */
  end(jobId: string, thing: string, status: 'CANCELED' | 'REMOVED' | 'TIMED_OUT', reason: string): boolean {
    return this.change(thing, () => {
      const e = this.o.store.get(jobId, thing);
      if (!e || jobStatusRules[e.status].terminal) return [];
      assertTransition(e.status, status, 'service');
      const next = this.bump(e, { status, statusDetails: { ...e.statusDetails, reason }, stepDeadline: undefined });
      this.o.store.update(next);
      return [{ e: next, before: e.status }];
    });
  }

  /** Step timeouts that ran out become TIMED_OUT. */
  tick(now: number): number {
    const due = this.o.store.stepTimeoutsDue(now);
    for (const e of due) this.end(e.jobId, e.thing, 'TIMED_OUT', 'step timeout');
    return due.length;
  }

  pendingOf(thing: string): StoredExecution[] {
    return this.o.store.pending(thing);
  }

  private batchOut: { topic: string; payload: string }[] | undefined;
  private batchChanges: { e: StoredExecution; before: JobStatus | undefined }[] = [];
  private queued: { thing: string; topic: string; payload: Buffer }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;

  /**
   * Runs fn in one SQLite transaction; what it publishes and the changes it reports go out only after the commit
   * (persist, then act), and one commit (one fsync) covers everything in it. Nested calls join the outer one.
   */
  batch<T>(fn: () => T): T {
    if (this.batchOut) return fn();
    this.batchOut = [];
    this.batchChanges = [];
    let result: T;
    try {
      result = this.o.store.transaction(fn);
    } catch (err) {
      this.batchOut = undefined;
      this.batchChanges = [];
      throw err;
    }
    const out = this.batchOut;
    const changes = this.batchChanges;
    this.batchOut = undefined;
    this.batchChanges = [];
    for (const m of out) this.o.publish(m.topic, m.payload);
    for (const c of changes) this.o.onChange?.(c.e, c.before);
    return result;
  }

  /**
   * A device request from a broker adapter: requests arriving within a few milliseconds share one transaction (a
   * group commit, as telemetry ingest does); the answers are published after it committed.
   */
  enqueue(thing: string, topic: string, payload: Buffer): void {
    this.queued.push({ thing, topic, payload });
    if (this.queued.length >= 500) {
      this.flush();
      return;
    }
    this.flushTimer ??= setTimeout(() => this.flush(), 2);
  }

  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const requests = this.queued;
    this.queued = [];
    if (requests.length === 0) return;
    try {
      this.batch(() => {
        for (const r of requests) this.handle(r.thing, r.topic, r.payload);
      });
    } catch (err) {
      // the commit failed: no answer went out; devices ask again (on reconnect, or their next status)
      this.o.log.error({ err, requests: requests.length }, 'jobs commit failed');
    }
  }

  private change(thing: string, fn: () => { e: StoredExecution; before: JobStatus | undefined }[]): boolean {
    const { changed, before, after } = this.o.store.transaction(() => {
      const before = this.o.store.pending(thing);
      const changed = fn();
      return { changed, before, after: this.o.store.pending(thing) };
    });
    this.notify(thing, before, after);
    if (this.batchOut) this.batchChanges.push(...changed);
    else for (const c of changed) this.o.onChange?.(c.e, c.before);
    return changed.length > 0;
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

  private listPending(thing: string, _req: z.infer<typeof GetPendingRequest>) {
    const pending = this.o.store.pending(thing);
    return {
      inProgressJobs: pending.filter((e) => e.status === 'IN_PROGRESS').map(summary),
      queuedJobs: pending.filter((e) => e.status === 'QUEUED').map(summary),
    };
  }

  private startNext(thing: string, req: z.infer<typeof StartNextRequest>) {
    let started: StoredExecution | undefined;
    this.change(thing, () => {
      const next = this.o.store.pending(thing).sort(nextOrder)[0];
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
      this.o.store.update(started);
      return [{ e: started, before: next.status }];
    });
    return started ? { execution: executionMessage(started) } : {};
  }

  private describe(thing: string, jobId: string, req: z.infer<typeof DescribeRequest>) {
    const e = jobId === '$next' ? this.o.store.pending(thing)[0] : this.o.store.get(jobId, thing, req.executionNumber);
    if (!e) throw new Rejection('ResourceNotFound', `no execution of ${jobId} for ${thing}`);
    if (jobStatusRules[e.status].terminal && jobId !== '$next') {
      throw new Rejection('TerminalStateReached', `the execution of ${jobId} is ${e.status}`);
    }
    return { execution: executionMessage(e, req.includeJobDocument ?? true) };
  }

  private update(thing: string, jobId: string, req: z.infer<typeof UpdateRequest>) {
    let updated: StoredExecution | undefined;
    this.change(thing, () => {
      const e = this.o.store.get(jobId, thing, req.executionNumber);
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
      this.o.store.update(updated);
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

  private reply(topic: string, body: object): void {
    if (this.batchOut) this.batchOut.push({ topic, payload: JSON.stringify(body) });
    else this.o.publish(topic, JSON.stringify(body));
  }
}

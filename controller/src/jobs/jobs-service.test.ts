import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeAccepted,
  GetPendingAccepted,
  JobsRejected,
  jobStatusRules,
  NotifyJobs,
  NotifyNext,
  StartNextAccepted,
  UpdateAccepted,
} from '@fleetwave/shared';
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { SqliteDatabase } from '../store/sqlite-database.js';
import { applyToPending, JobsService } from './jobs-service.js';
import type { StoredExecution } from './jobs-store.js';

const ROOT = 'fleetwave/jobs';

function setup() {
  const db = new SqliteDatabase(join(mkdtempSync(join(tmpdir(), 'fw-jobs-')), 'fleet.db'));
  const sent: { topic: string; body: Record<string, unknown> }[] = [];
  let clock = 1_700_000_000_000;
  const jobs = new JobsService({
    db,
    jobsRoot: ROOT,
    now: () => clock,
    publish: (topic, payload) => sent.push({ topic, body: JSON.parse(payload) }),
    log: pino({ level: 'silent' }),
  });
  const request = async (thing: string, op: string, body: object | string = {}) => {
    sent.length = 0;
    await jobs.handle(
      thing,
      `${ROOT}/${thing}/jobs/${op}`,
      Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    );
    return [...sent];
  };
  const take = () => sent.splice(0);
  return { jobs, sent, request, take, advance: (ms: number) => (clock += ms), now: () => clock };
}

/** Every message a device receives, checked against the protocol's schema for its topic. */
function conforms<T extends { topic: string; body: unknown }>(messages: T[]): T[] {
  const schemaFor = (topic: string): z.ZodType => {
    if (topic.endsWith('/notify')) return NotifyJobs;
    if (topic.endsWith('/notify-next')) return NotifyNext;
    if (topic.endsWith('/rejected')) return JobsRejected;
    if (topic.endsWith('/start-next/accepted')) return StartNextAccepted;
    if (/\/jobs\/get\/accepted$/.test(topic)) return GetPendingAccepted;
    if (topic.endsWith('/get/accepted')) return DescribeAccepted;
    return UpdateAccepted;
  };
  for (const m of messages) expect(() => schemaFor(m.topic).parse(m.body), m.topic).not.toThrow();
  return messages;
}

const topics = (m: { topic: string }[]) => m.map((x) => x.topic.slice(ROOT.length + 1));

describe('jobs service (docs/JOBS-PROTOCOL.md)', () => {
  it('walks several jobs through their lifecycle with notify and notify-next only when they should be sent', async () => {
    const t = setup();
    // queueing the first job changes the pending list and which job is next
    await t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: { n: 'a' } });
    let m = conforms(t.take());
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next']);
    expect(m[1]!.body.execution).toMatchObject({ jobId: 'job-a', status: 'QUEUED', jobDocument: { n: 'a' } });
    // a second job changes the list, not which is next
    t.advance(10);
    await t.jobs.queue({ jobId: 'job-b', thing: 'gw-1', executionNumber: 1, document: { n: 'b' } });
    m = conforms(t.take());
    expect(topics(m)).toEqual(['gw-1/jobs/notify']);
    expect(m[0]!.body).toMatchObject({ jobs: { QUEUED: [{ jobId: 'job-a' }, { jobId: 'job-b' }] } });
    // queueing the same execution again changes nothing and sends nothing
    expect(await t.jobs.queue({ jobId: 'job-b', thing: 'gw-1', executionNumber: 1, document: {} })).toBe(false);
    expect(t.take()).toEqual([]);

    // list pending
    m = conforms(await t.request('gw-1', 'get', { clientToken: 'c1' }));
    expect(m).toHaveLength(1);
    expect(m[0]!.body).toMatchObject({ inProgressJobs: [], queuedJobs: [{ jobId: 'job-a' }, { jobId: 'job-b' }] });
    expect(m[0]!.body.clientToken).toBe('c1');

    // start-next: the oldest queued becomes IN_PROGRESS; list changes, next does not
    m = conforms(
      await t.request('gw-1', 'start-next', { stepTimeoutInMinutes: 5, statusDetails: { stage: 'verify' } }),
    );
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/start-next/accepted']);
    expect(m[1]!.body.execution).toMatchObject({ jobId: 'job-a', status: 'IN_PROGRESS', versionNumber: 2 });
    // start-next again returns the same execution, changes nothing
    m = conforms(await t.request('gw-1', 'start-next'));
    expect(topics(m)).toEqual(['gw-1/jobs/start-next/accepted']);

    // progress with expectedVersion; a stale version is rejected with the state
    m = conforms(
      await t.request('gw-1', 'job-a/update', {
        status: 'IN_PROGRESS',
        statusDetails: { stage: 'download', percent: '40' },
        expectedVersion: 2,
        includeJobExecutionState: true,
      }),
    );
    expect(topics(m)).toEqual(['gw-1/jobs/job-a/update/accepted']);
    expect(m[0]!.body.executionState).toEqual({
      status: 'IN_PROGRESS',
      statusDetails: { stage: 'download', percent: '40' },
      versionNumber: 3,
    });
    m = conforms(
      await t.request('gw-1', 'job-a/update', { status: 'IN_PROGRESS', expectedVersion: 2, clientToken: 'x' }),
    );
    expect(m[0]!.body).toMatchObject({
      code: 'VersionMismatch',
      clientToken: 'x',
      executionState: { versionNumber: 3 },
    });

    // success: the list and which job is next both change
    m = conforms(await t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED', expectedVersion: 3 }));
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next', 'gw-1/jobs/job-a/update/accepted']);
    expect(m[1]!.body.execution).toMatchObject({ jobId: 'job-b', status: 'QUEUED' });
    // out of a terminal state is refused; describing a terminal job says so
    m = conforms(await t.request('gw-1', 'job-a/update', { status: 'IN_PROGRESS' }));
    expect(m[0]!.body).toMatchObject({ code: 'InvalidStateTransition', executionState: { status: 'SUCCEEDED' } });
    m = conforms(await t.request('gw-1', 'job-a/get'));
    expect(m[0]!.body).toMatchObject({ code: 'TerminalStateReached' });

    // $next describes job-b; the device rejects it; nothing is pending and notify-next carries no execution
    m = conforms(await t.request('gw-1', '$next/get', { includeJobDocument: false }));
    expect(m[0]!.body.execution).toMatchObject({ jobId: 'job-b' });
    expect(m[0]!.body.execution).not.toHaveProperty('jobDocument');
    m = conforms(
      await t.request('gw-1', 'job-b/update', { status: 'REJECTED', statusDetails: { reason: 'E_UPDATE_HARDWARE' } }),
    );
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next', 'gw-1/jobs/job-b/update/accepted']);
    expect(m[0]!.body).toEqual({ timestamp: t.now(), jobs: {} });
    expect(m[1]!.body).toEqual({ timestamp: t.now() });
    m = conforms(await t.request('gw-1', 'start-next'));
    expect(m[0]!.body).toEqual({ timestamp: t.now() });
  });

  it('answers bad requests with the right codes and changes nothing', async () => {
    const t = setup();
    await t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: {} });
    t.take();
    expect(conforms(await t.request('gw-1', 'get', '{nope'))[0]!.body.code).toBe('InvalidJson');
    expect(conforms(await t.request('gw-1', 'get', '[1]'))[0]!.body.code).toBe('InvalidJson');
    expect(conforms(await t.request('gw-1', 'job-a/update', { status: 'QUEUED' }))[0]!.body.code).toBe(
      'InvalidRequest',
    );
    expect(conforms(await t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED', extra: 1 }))[0]!.body.code).toBe(
      'InvalidRequest',
    );
    expect(conforms(await t.request('gw-1', 'job-x/update', { status: 'SUCCEEDED' }))[0]!.body.code).toBe(
      'ResourceNotFound',
    );
    expect(
      conforms(await t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED', executionNumber: 7 }))[0]!.body.code,
    ).toBe('ResourceNotFound');
    // another thing's job is not found for this thing
    expect(conforms(await t.request('gw-2', 'job-a/get'))[0]!.body.code).toBe('ResourceNotFound');
    const m = conforms(await t.request('gw-1', 'get'));
    expect(m[0]!.body).toMatchObject({ queuedJobs: [{ jobId: 'job-a', versionNumber: 1 }] });
  });

  it('times out a step the device does not refresh, and a refreshed one not', async () => {
    const t = setup();
    await t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: {} });
    await t.jobs.queue({ jobId: 'job-b', thing: 'gw-2', executionNumber: 1, document: {} });
    await t.request('gw-1', 'start-next', { stepTimeoutInMinutes: 1 });
    await t.request('gw-2', 'start-next', { stepTimeoutInMinutes: 1 });
    t.advance(50_000);
    await t.request('gw-2', 'job-b/update', { status: 'IN_PROGRESS', stepTimeoutInMinutes: 1 });
    t.advance(20_000);
    t.take();
    expect(await t.jobs.tick(t.now())).toBe(1);
    const m = conforms(t.take());
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next']);
    expect(conforms(await t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED' }))[0]!.body).toMatchObject({
      code: 'InvalidStateTransition',
      executionState: { status: 'TIMED_OUT' },
    });
    expect(await t.jobs.pendingOf('gw-2')).toHaveLength(1);
  });

  it('lets the service cancel a pending execution, and not a finished one', async () => {
    const t = setup();
    await t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: {} });
    t.take();
    expect(await t.jobs.end('job-a', 'gw-1', 'CANCELED', 'rollout aborted')).toBe(true);
    expect(topics(conforms(t.take()))).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next']);
    expect(await t.jobs.end('job-a', 'gw-1', 'CANCELED', 'again')).toBe(false);
    expect(t.take()).toEqual([]);
  });

  it('accepts the request members of the iot-jobs-data model (the AWS IoT Device SDK sends them) and checks them against the topic', async () => {
    const t = setup();
    await t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: { n: 'a' } });
    t.take();
    // exactly what aws-iot-device-sdk-v2's IotJobsClient publishes: its whole request object
    let m = conforms(await t.request('gw-1', 'get', { thingName: 'gw-1' }));
    expect(m[0]!.body).toMatchObject({ queuedJobs: [{ jobId: 'job-a' }] });
    m = conforms(await t.request('gw-1', '$next/get', { thingName: 'gw-1', jobId: '$next', includeJobDocument: true }));
    expect(m[0]!.body.execution).toMatchObject({ jobId: 'job-a', jobDocument: { n: 'a' } });
    m = conforms(await t.request('gw-1', 'start-next', { thingName: 'gw-1', stepTimeoutInMinutes: 5 }));
    expect(m.at(-1)!.body.execution).toMatchObject({ jobId: 'job-a', status: 'IN_PROGRESS' });
    m = conforms(await t.request('gw-1', 'job-a/get', { thingName: 'gw-1', jobId: 'job-a', executionNumber: 1 }));
    expect(m[0]!.body.execution).toMatchObject({ status: 'IN_PROGRESS' });
    m = conforms(
      await t.request('gw-1', 'job-a/update', {
        thingName: 'gw-1',
        jobId: 'job-a',
        status: 'IN_PROGRESS',
        expectedVersion: 2,
      }),
    );
    expect(topics(m)).toEqual(['gw-1/jobs/job-a/update/accepted']);
    // a body that names another thing or job than its topic is refused, and changes nothing
    for (const [op, body] of [
      ['get', { thingName: 'gw-2' }],
      ['start-next', { thingName: 'gw-2' }],
      ['$next/get', { jobId: 'job-a' }],
      ['job-a/get', { jobId: 'job-b' }],
      ['job-a/update', { thingName: 'gw-2', status: 'SUCCEEDED' }],
      ['job-a/update', { jobId: 'job-b', status: 'SUCCEEDED' }],
      ['job-a/update', { jobId: '$next', status: 'SUCCEEDED' }],
    ] as const) {
      const r = conforms(await t.request('gw-1', op, body));
      expect(r, `${op} ${JSON.stringify(body)}`).toHaveLength(1);
      expect(r[0]!.body.code, `${op} ${JSON.stringify(body)}`).toBe('InvalidRequest');
    }
    expect((await t.jobs.pendingOf('gw-1'))[0]).toMatchObject({ status: 'IN_PROGRESS', versionNumber: 3 });
  });

  /**
   * AWS IoT Core developer guide, "Jobs notifications": a ListNotification (notify) whenever an execution is queued,
   * changes to a non-terminal status, or an old one reaches a terminal status; a NextNotification (notify-next)
   * whenever the first execution of the list changes: a new QUEUED one first in the list, a QUEUED one that becomes
   * first by starting, the first one reaching a terminal status. Three jobs created, then started and finished in
   * turn on one thing; every message the thing receives, in order.
   */
  it('sends the notify / notify-next sequence of three jobs created, started and finished in turn (AWS "Jobs notifications")', async () => {
    const t = setup();
    const steps: {
      act: () => Promise<unknown>;
      expect: { topic: string; list?: [string[], string[]]; next?: string | null }[];
    }[] = [];
    const queue = (id: string) => async () => {
      t.advance(1000);
      await t.jobs.queue({ jobId: id, thing: 'thing1', executionNumber: 1, document: { op: id } });
    };
    const start = () => async () => {
      t.advance(1000);
      await t.request('thing1', 'start-next', {});
    };
    const finish = (id: string) => async () => {
      t.advance(1000);
      await t.request('thing1', `${id}/update`, { status: 'SUCCEEDED' });
    };
    const notify = (inProgress: string[], queued: string[]) => ({
      topic: 'notify',
      list: [inProgress, queued] as [string[], string[]],
    });
    const next = (id: string | null) => ({ topic: 'notify-next', next: id });
    steps.push(
      { act: queue('job1'), expect: [notify([], ['job1']), next('job1')] },
      { act: queue('job2'), expect: [notify([], ['job1', 'job2'])] },
      { act: queue('job3'), expect: [notify([], ['job1', 'job2', 'job3'])] },
      { act: start(), expect: [notify(['job1'], ['job2', 'job3'])] },
      { act: finish('job1'), expect: [notify([], ['job2', 'job3']), next('job2')] },
      { act: start(), expect: [notify(['job2'], ['job3'])] },
      { act: finish('job2'), expect: [notify([], ['job3']), next('job3')] },
      { act: start(), expect: [notify(['job3'], [])] },
      { act: finish('job3'), expect: [notify([], []), next(null)] },
    );
    for (const [i, step] of steps.entries()) {
      t.take();
      await step.act();
      const got = conforms(t.sent.splice(0)).filter((m) => /\/jobs\/notify(-next)?$/.test(m.topic));
      expect(
        got.map((m) => m.topic.split('/').at(-1)),
        `step ${i + 1}`,
      ).toEqual(step.expect.map((e) => e.topic));
      for (const [j, e] of step.expect.entries()) {
        const body = got[j]!.body as {
          timestamp: number;
          jobs?: { IN_PROGRESS?: { jobId: string }[]; QUEUED?: { jobId: string }[] };
          execution?: { jobId: string; status: string; jobDocument: unknown };
        };
        expect(body.timestamp).toBe(t.now());
        if (e.list) {
          expect(
            [(body.jobs!.IN_PROGRESS ?? []).map((x) => x.jobId), (body.jobs!.QUEUED ?? []).map((x) => x.jobId)],
            `step ${i + 1}`,
          ).toEqual(e.list);
        } else if (e.next === null) {
          expect(body, `step ${i + 1}`).toEqual({ timestamp: t.now() });
        } else {
          expect(body.execution, `step ${i + 1}`).toMatchObject({
            jobId: e.next,
            status: 'QUEUED',
            jobDocument: { op: e.next },
          });
        }
      }
    }
  });

  it('lists at most 15 pending executions in a notify, IN_PROGRESS first, then by the time they were queued', async () => {
    const t = setup();
    for (let i = 0; i < 20; i++) {
      t.advance(10);
      await t.jobs.queue({
        jobId: `job-${String(i).padStart(2, '0')}`,
        thing: 'gw-1',
        executionNumber: 1,
        document: {},
      });
    }
    t.take();
    await t.request('gw-1', 'start-next');
    const n = conforms(t.take()).find((m) => m.topic.endsWith('/notify'))!;
    const jobs = n.body.jobs as { IN_PROGRESS: { jobId: string }[]; QUEUED: { jobId: string }[] };
    expect(jobs.IN_PROGRESS.map((x) => x.jobId)).toEqual(['job-00']);
    expect(jobs.QUEUED.map((x) => x.jobId)).toEqual(
      Array.from({ length: 14 }, (_, i) => `job-${String(i + 1).padStart(2, '0')}`),
    );
  });
});

describe('the pending list a batch keeps', () => {
  it('is what the store reads back after any sequence of protocol changes (property)', async () => {
    const db = new SqliteDatabase(join(mkdtempSync(join(tmpdir(), 'fw-pending-')), 'fleet.db'));
    const statuses = ['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'CANCELED', 'TIMED_OUT', 'REJECTED'] as const;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ job: fc.integer({ min: 0, max: 3 }), to: fc.constantFrom(...statuses) }), {
          maxLength: 25,
        }),
        async (ops) => {
          const thing = `t-${run++}`;
          let list = await db.jobs.pending(thing);
          let clock = 1;
          for (const op of ops) {
            const jobId = `job-${op.job}`;
            const latest = await db.jobs.get(jobId, thing);
            let e: StoredExecution;
            if (!latest || (jobStatusRules[latest.status].terminal && op.to === 'QUEUED')) {
              // a new job, or the next execution of one that ended (a retry)
              e = {
                jobId,
                thing,
                executionNumber: (latest?.executionNumber ?? 0) + 1,
                status: 'QUEUED',
                statusDetails: undefined,
                document: {},
                queuedAt: clock++,
                startedAt: undefined,
                lastUpdatedAt: clock,
                versionNumber: 1,
                stepDeadline: undefined,
                rollout: undefined,
              };
              await db.jobs.insert(e);
            } else if (!jobStatusRules[latest.status].terminal && op.to !== latest.status) {
              e = { ...latest, status: op.to, versionNumber: latest.versionNumber + 1, lastUpdatedAt: clock++ };
              await db.jobs.update(e);
            } else continue;
            list = applyToPending(list, [e]);
            expect(list).toEqual(await db.jobs.pending(thing));
          }
        },
      ),
      { numRuns: 150 },
    );
    await db.close();
  });
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeAccepted,
  GetPendingAccepted,
  JobsRejected,
  NotifyJobs,
  NotifyNext,
  StartNextAccepted,
  UpdateAccepted,
} from '@fleetwave/shared';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { SqliteFleetStore } from '../store/sqlite-fleet-store.js';
import { JobsService } from './jobs-service.js';
import { JobsStore } from './jobs-store.js';

const ROOT = 'fleetwave/jobs';

function setup() {
  const fleet = new SqliteFleetStore(join(mkdtempSync(join(tmpdir(), 'fw-jobs-')), 'fleet.db'));
  const sent: { topic: string; body: Record<string, unknown> }[] = [];
  let clock = 1_700_000_000_000;
  const jobs = new JobsService({
    store: new JobsStore(fleet.db),
    jobsRoot: ROOT,
    now: () => clock,
    publish: (topic, payload) => sent.push({ topic, body: JSON.parse(payload) }),
    log: pino({ level: 'silent' }),
  });
  const request = (thing: string, op: string, body: object | string = {}) => {
    sent.length = 0;
    jobs.handle(
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

describe('jobs service (JOBS-PROTOCOL.md)', () => {
  it('walks several jobs through their lifecycle with notify and notify-next only when they should be sent', () => {
    const t = setup();
    // queueing the first job changes the pending list and which job is next
    t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: { n: 'a' } });
    let m = conforms(t.take());
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next']);
    expect(m[1]!.body.execution).toMatchObject({ jobId: 'job-a', status: 'QUEUED', jobDocument: { n: 'a' } });
    // a second job changes the list, not which is next
    t.advance(10);
    t.jobs.queue({ jobId: 'job-b', thing: 'gw-1', executionNumber: 1, document: { n: 'b' } });
    m = conforms(t.take());
    expect(topics(m)).toEqual(['gw-1/jobs/notify']);
    expect(m[0]!.body).toMatchObject({ jobs: { QUEUED: [{ jobId: 'job-a' }, { jobId: 'job-b' }] } });
    // queueing the same execution again changes nothing and sends nothing
    expect(t.jobs.queue({ jobId: 'job-b', thing: 'gw-1', executionNumber: 1, document: {} })).toBe(false);
    expect(t.take()).toEqual([]);

    // list pending
    m = conforms(t.request('gw-1', 'get', { clientToken: 'c1' }));
    expect(m).toHaveLength(1);
    expect(m[0]!.body).toMatchObject({ inProgressJobs: [], queuedJobs: [{ jobId: 'job-a' }, { jobId: 'job-b' }] });
    expect(m[0]!.body.clientToken).toBe('c1');

    // start-next: the oldest queued becomes IN_PROGRESS; list changes, next does not
    m = conforms(t.request('gw-1', 'start-next', { stepTimeoutInMinutes: 5, statusDetails: { stage: 'verify' } }));
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/start-next/accepted']);
    expect(m[1]!.body.execution).toMatchObject({ jobId: 'job-a', status: 'IN_PROGRESS', versionNumber: 2 });
    // start-next again returns the same execution, changes nothing
    m = conforms(t.request('gw-1', 'start-next'));
    expect(topics(m)).toEqual(['gw-1/jobs/start-next/accepted']);

    // progress with expectedVersion; a stale version is rejected with the state
    m = conforms(
      t.request('gw-1', 'job-a/update', {
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
    m = conforms(t.request('gw-1', 'job-a/update', { status: 'IN_PROGRESS', expectedVersion: 2, clientToken: 'x' }));
    expect(m[0]!.body).toMatchObject({
      code: 'VersionMismatch',
      clientToken: 'x',
      executionState: { versionNumber: 3 },
    });

    // success: the list and which job is next both change
    m = conforms(t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED', expectedVersion: 3 }));
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next', 'gw-1/jobs/job-a/update/accepted']);
    expect(m[1]!.body.execution).toMatchObject({ jobId: 'job-b', status: 'QUEUED' });
    // out of a terminal state is refused; describing a terminal job says so
    m = conforms(t.request('gw-1', 'job-a/update', { status: 'IN_PROGRESS' }));
    expect(m[0]!.body).toMatchObject({ code: 'InvalidStateTransition', executionState: { status: 'SUCCEEDED' } });
    m = conforms(t.request('gw-1', 'job-a/get'));
    expect(m[0]!.body).toMatchObject({ code: 'TerminalStateReached' });

    // $next describes job-b; the device rejects it; nothing is pending and notify-next carries no execution
    m = conforms(t.request('gw-1', '$next/get', { includeJobDocument: false }));
    expect(m[0]!.body.execution).toMatchObject({ jobId: 'job-b' });
    expect(m[0]!.body.execution).not.toHaveProperty('jobDocument');
    m = conforms(
      t.request('gw-1', 'job-b/update', { status: 'REJECTED', statusDetails: { reason: 'E_UPDATE_HARDWARE' } }),
    );
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next', 'gw-1/jobs/job-b/update/accepted']);
    expect(m[0]!.body).toEqual({ timestamp: t.now(), jobs: {} });
    expect(m[1]!.body).toEqual({ timestamp: t.now() });
    m = conforms(t.request('gw-1', 'start-next'));
    expect(m[0]!.body).toEqual({ timestamp: t.now() });
  });

  it('answers bad requests with the right codes and changes nothing', () => {
    const t = setup();
    t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: {} });
    t.take();
    expect(conforms(t.request('gw-1', 'get', '{nope'))[0]!.body.code).toBe('InvalidJson');
    expect(conforms(t.request('gw-1', 'get', '[1]'))[0]!.body.code).toBe('InvalidJson');
    expect(conforms(t.request('gw-1', 'job-a/update', { status: 'QUEUED' }))[0]!.body.code).toBe('InvalidRequest');
    expect(conforms(t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED', extra: 1 }))[0]!.body.code).toBe(
      'InvalidRequest',
    );
    expect(conforms(t.request('gw-1', 'job-x/update', { status: 'SUCCEEDED' }))[0]!.body.code).toBe('ResourceNotFound');
    expect(conforms(t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED', executionNumber: 7 }))[0]!.body.code).toBe(
      'ResourceNotFound',
    );
    // another thing's job is not found for this thing
    expect(conforms(t.request('gw-2', 'job-a/get'))[0]!.body.code).toBe('ResourceNotFound');
    const m = conforms(t.request('gw-1', 'get'));
    expect(m[0]!.body).toMatchObject({ queuedJobs: [{ jobId: 'job-a', versionNumber: 1 }] });
  });

  it('times out a step the device does not refresh, and a refreshed one not', () => {
    const t = setup();
    t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: {} });
    t.jobs.queue({ jobId: 'job-b', thing: 'gw-2', executionNumber: 1, document: {} });
    t.request('gw-1', 'start-next', { stepTimeoutInMinutes: 1 });
    t.request('gw-2', 'start-next', { stepTimeoutInMinutes: 1 });
    t.advance(50_000);
    t.request('gw-2', 'job-b/update', { status: 'IN_PROGRESS', stepTimeoutInMinutes: 1 });
    t.advance(20_000);
    t.take();
    expect(t.jobs.tick(t.now())).toBe(1);
    const m = conforms(t.take());
    expect(topics(m)).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next']);
    expect(conforms(t.request('gw-1', 'job-a/update', { status: 'SUCCEEDED' }))[0]!.body).toMatchObject({
      code: 'InvalidStateTransition',
      executionState: { status: 'TIMED_OUT' },
    });
    expect(t.jobs.pendingOf('gw-2')).toHaveLength(1);
  });

  it('lets the service cancel a pending execution, and not a finished one', () => {
    const t = setup();
    t.jobs.queue({ jobId: 'job-a', thing: 'gw-1', executionNumber: 1, document: {} });
    t.take();
    expect(t.jobs.end('job-a', 'gw-1', 'CANCELED', 'rollout aborted')).toBe(true);
    expect(topics(conforms(t.take()))).toEqual(['gw-1/jobs/notify', 'gw-1/jobs/notify-next']);
    expect(t.jobs.end('job-a', 'gw-1', 'CANCELED', 'again')).toBe(false);
    expect(t.take()).toEqual([]);
  });
});

import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfig, parseJobTopic, UpdateRequest } from '@fleetwave/shared';
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { decodeJobsMessage } from './jobs-inbound.js';
import { UpdateManager } from './update-manager.js';

const ROOT = '$aws/things';
const DEVICE = 'gw-1';
const BASE = `${ROOT}/${DEVICE}/jobs`;

function manager() {
  const dataDir = mkdtempSync(join(tmpdir(), 'fw-jobs-in-'));
  const config = AgentConfig.parse({ device: { id: DEVICE }, dataDir, updates: { jobsRoot: ROOT } });
  const sent: { topic: string; body: Record<string, unknown> }[] = [];
  const m = new UpdateManager({
    config: config.updates,
    dataDir,
    device: DEVICE,
    trusted: [],
    installers: {},
    send: (topic, payload) => {
      sent.push({ topic, body: JSON.parse(payload) });
      return true;
    },
    connected: () => true,
    now: () => 1_700_000_000_000,
    log: pino({ level: 'silent' }),
    downloadHeaders: {},
  });
  return { m, sent, statePath: join(dataDir, 'updates', 'state.json') };
}

/** Every topic the agent published must be one of its own jobs requests, and every update a valid request. */
function sentOnlyOwnRequests(sent: { topic: string; body: unknown }[]) {
  for (const s of sent) {
    const t = parseJobTopic(ROOT, s.topic);
    expect(t).toMatchObject({ family: 'jobs', thing: DEVICE, reply: 'request' });
    if (t.family === 'jobs' && t.op === 'update') expect(UpdateRequest.safeParse(s.body).success).toBe(true);
  }
}

const execution = (over: Record<string, unknown> = {}) => ({
  jobId: 'job-1',
  thingName: DEVICE,
  status: 'IN_PROGRESS',
  queuedAt: 1,
  lastUpdatedAt: 2,
  versionNumber: 2,
  executionNumber: 1,
  jobDocument: { not: 'a fleetwave job' },
  ...over,
});

const hostileId = fc.oneof(
  fc.constantFrom('../../etc/passwd', 'a/b', '+', '#', '$next', '', 'x'.repeat(65), 'job 1', 'job\u0000', 'ü'),
  fc.string({ maxLength: 80 }),
);
const suffix = fc.oneof(
  fc.constantFrom('notify', 'notify-next', 'start-next/accepted', 'start-next/rejected', 'get/accepted'),
  fc.constantFrom('job-1/update/accepted', 'job-1/update/rejected', '$next/get/accepted', 'job-1/get/rejected'),
  hostileId.map((id) => `${id}/update/accepted`),
  fc.string({ maxLength: 40 }),
);
const json = fc.oneof(
  fc.jsonValue(),
  fc.record({ timestamp: fc.anything(), execution: fc.anything(), clientToken: fc.anything() }),
  hostileId.map((jobId) => ({ timestamp: 1, execution: execution({ jobId }) })),
  fc
    .record({
      k: fc.constantFrom('status', 'thingName', 'versionNumber', 'queuedAt', 'statusDetails', 'extra'),
      v: fc.anything(),
    })
    .map(({ k, v }) => ({ timestamp: 1, execution: execution({ [k]: v }) })),
  fc.record({ code: fc.anything(), message: fc.anything(), timestamp: fc.anything(), executionState: fc.anything() }),
);
const payload = fc.oneof(
  json.map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.constantFrom(
    Buffer.from('{"timestamp":1,"execution":'.repeat(20_000)),
    Buffer.from(`{"timestamp":1,"execution":${'['.repeat(50_000)}${']'.repeat(50_000)}}`),
    Buffer.alloc(300 * 1024, 0x20),
    Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
  ),
);

describe('the agent jobs boundary (every message decoded with the shared schemas)', () => {
  it('survives hostile jobs topics and payloads: no throw, nothing changed unless a readable job is REJECTED with its reason', () => {
    fc.assert(
      fc.property(suffix, payload, (sfx, body) => {
        const { m, sent, statePath } = manager();
        const topic = `${BASE}/${sfx}`;
        const decoded = decodeJobsMessage(ROOT, DEVICE, topic, body);
        expect(() => m.onMessage(topic, body)).not.toThrow();
        sentOnlyOwnRequests(sent);
        const status = m.status();
        if (decoded.kind === 'refused' && !decoded.jobId) {
          expect(status).toBeNull();
          expect(existsSync(statePath)).toBe(false);
          expect(sent).toEqual([]);
          expect(m.refusedMessages).toBe(1);
        }
        if (status) {
          // only a start-next answer starts a job; one this agent cannot do is rejected with a reason, at once
          expect(sfx).toBe('start-next/accepted');
          expect(status).toMatchObject({ stage: 'rejected', code: 'E_SCHEMA', reason: expect.any(String) });
          const update = sent.find((s) => s.topic === `${BASE}/${status.jobId}/update`);
          expect(update?.body).toMatchObject({ status: 'REJECTED', statusDetails: { code: 'E_SCHEMA' } });
        }
      }),
      { numRuns: 400 },
    );
  });

  it('refuses an execution that names another thing, a hostile job id, or a topic of another thing, changing nothing', () => {
    for (const [topic, body] of [
      [`${BASE}/start-next/accepted`, { timestamp: 1, execution: execution({ thingName: 'gw-2' }) }],
      [`${BASE}/start-next/accepted`, { timestamp: 1, execution: execution({ jobId: 'a/b/#' }) }],
      [`${BASE}/notify-next`, { timestamp: 1, execution: execution({ jobId: '../x' }) }],
      [`${ROOT}/gw-2/jobs/start-next/accepted`, { timestamp: 1, execution: execution() }],
      [`${BASE}/a+b/update/accepted`, { timestamp: 1 }],
    ] as const) {
      const { m, sent, statePath } = manager();
      m.onMessage(topic, Buffer.from(JSON.stringify(body)));
      expect(m.status(), topic).toBeNull();
      expect(sent, topic).toEqual([]);
      expect(existsSync(statePath)).toBe(false);
      expect(m.refusedMessages).toBe(1);
    }
  });

  it('rejects, with the reason, a start-next answer whose execution cannot be read but whose job id can', () => {
    const { m, sent } = manager();
    m.onMessage(
      `${BASE}/start-next/accepted`,
      Buffer.from(JSON.stringify({ timestamp: 1, execution: execution({ status: 'PAUSED', versionNumber: -1 }) })),
    );
    expect(m.status()).toMatchObject({ jobId: 'job-1', stage: 'rejected', code: 'E_SCHEMA' });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.topic).toBe(`${BASE}/job-1/update`);
    expect(sent[0]!.body).toMatchObject({
      status: 'REJECTED',
      statusDetails: { reason: expect.stringContaining('execution.status') },
    });
    expect(sent[0]!.body).not.toHaveProperty('expectedVersion');
  });

  it('accepts what AWS IoT Core sends: an execution with approximateSecondsBeforeTimedOut, times in seconds', () => {
    const { m, sent } = manager();
    m.onMessage(
      `${BASE}/start-next/accepted`,
      Buffer.from(
        JSON.stringify({
          timestamp: 1_567_714_853,
          execution: execution({ approximateSecondsBeforeTimedOut: 88, queuedAt: 1_567_701_902.444 }),
        }),
      ),
    );
    expect(m.refusedMessages).toBe(0);
    // its document is not a Fleetwave update: rejected for that reason, not for the AWS fields
    expect(sent[0]!.body).toMatchObject({
      status: 'REJECTED',
      statusDetails: { reason: expect.stringContaining('not a Fleetwave update job') },
    });
  });

  it('keeps going when its state file cannot be written (a full disk): the message is not acted on, nothing throws', () => {
    const { m, sent, statePath } = manager();
    mkdirSync(`${statePath}.tmp`, { recursive: true }); // writeDurable's temp file cannot be opened: every write fails
    expect(() =>
      m.onMessage(`${BASE}/start-next/accepted`, Buffer.from(JSON.stringify({ timestamp: 1, execution: execution() }))),
    ).not.toThrow();
    expect(existsSync(statePath)).toBe(false);
    expect(sent).toEqual([]); // persist, then act: nothing reported that is not on disk
  });
});

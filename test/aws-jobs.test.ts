import { join } from 'node:path';
import { FleetEvent, UpdateJobDocument } from '@fleetwave/shared';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { startAwsIotEndpoint } from './aws-iot-endpoint.js';
import { api, freePort, spawnController, tmp, waitForAsync } from './helpers.js';
import { appArchive, filesRelease, publishRelease, trustedKey } from './release-helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PLAN = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: app-two
release: { name: gateway-app, version: 2.0.0 }
waves:
  - { name: canary, count: 1, retries: 1, deviceTimeout: 90s, failureThreshold: { percent: 50, minFinished: 1 } }
  - { percent: 50, approval: true }
  - { percent: 100 }
rate: { maxPerMinute: 100, ramp: { baseRatePerMinute: 10, incrementFactor: 2, afterSucceeded: 2 } }
onFailure: rollback
`;

describe('rollouts on AWS IoT Jobs (a local endpoint speaking the AWS IoT API)', () => {
  it('runs each wave as a job on a thing group with the plan mapped to AWS settings, gates waves itself, rolls back, cleans up, and survives a restart without creating a job twice', async () => {
    const aws = await startAwsIotEndpoint();
    cleanups.push(() => aws.close());
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret-example',
      AWS_REGION: 'eu-central-1',
    });
    const dir = tmp('aws-jobs');
    const ctlDir = join(dir, 'ctl');
    const key = trustedKey(ctlDir);
    const mqttPort = await freePort();
    const args = [
      '--mqtt-port',
      String(mqttPort),
      '--http-port',
      '0',
      '--jobs-backend',
      'aws-iot',
      '--fleet',
      'lab',
      '--endpoint-url',
      aws.url,
      '--aws-poll-interval',
      '200ms',
    ];
    let ctl = await spawnController(ctlDir, args);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const call = (method: string, path: string, body?: unknown) => api(ctl.url, ctl.adminToken, method, path, body);

    // six gateways in the registry and on AWS, each reporting that it runs gateway-app 1.0.0
    const devices = Array.from({ length: 6 }, (_, i) => `gw-${i}`);
    for (const id of devices) {
      const r = await call('POST', '/api/devices', { id, tags: {}, hardware: 'rpi4' });
      expect(r.status).toBe(201);
      aws.addThing(id, 'lab', { hardware: 'rpi4' });
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
        clientId: id,
        username: id,
        password: r.body.token,
      });
      await c.publishAsync(
        `fleetwave/devices/${id}/presence`,
        JSON.stringify({ v: 1, device: id, state: 'online', ts: Date.now(), releases: { 'gateway-app': '1.0.0' } }),
        { qos: 1 },
      );
      await c.endAsync();
    }
    for (const v of ['1.0.0', '2.0.0']) {
      const archive = await appArchive(dir, v, { 'app.txt': v });
      await publishRelease(ctl.url, ctl.adminToken, filesRelease(key, v, archive), archive);
    }
    await waitForAsync('devices to report 1.0.0', async () => {
      const d = (await call('GET', '/api/devices')).body.devices as { releases: Record<string, string> }[];
      return d.every((x) => x.releases['gateway-app'] === '1.0.0');
    });

    // a plan AWS cannot express is refused before anything is created
    const before = aws.requests.length;
    const refused = await call('POST', '/api/rollouts', {
      yaml: PLAN.replace('maxPerMinute: 100', 'maxPerMinute: 5000'),
    });
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('E_ROLLOUT_BACKEND');
    expect(refused.body.error.message).toMatch(/maxPerMinute 5000 is above AWS IoT Jobs' maximumPerMinute limit/);
    expect((await call('GET', '/api/rollouts')).body.rollouts).toEqual([]);
    expect(aws.requests.length).toBe(before);

    const applied = await call('POST', '/api/rollouts', { yaml: PLAN });
    expect(applied.status, JSON.stringify(applied.body)).toBe(201);
    const id = applied.body.id as string;
    const w1 = `${id}-w1`;
    const rollout = async () => (await call('GET', `/api/rollouts/${id}?devices=1`)).body;
    const membersOf = async (wave: number) =>
      ((await rollout()).waves[wave].members as { device: string }[]).map((m) => m.device);
    await waitForAsync('the canary job', async () => aws.state.jobs.get(w1)?.executions.size === 1);

    // the canary: a thing group of its one device and a continuous job with the plan's settings as AWS's
    const jobCalls = aws.requests.filter((r) => !r.path.startsWith('/thing-groups/lab') && r.path !== '/endpoint');
    expect(jobCalls.slice(0, 5).map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /thing-groups/fleetwave-${w1}`,
      `POST /thing-groups/fleetwave-${w1}`,
      `GET /jobs/${w1}`,
      `PUT /jobs/${w1}`,
      'PUT /thing-groups/addThingToThingGroup',
    ]);
    expect(jobCalls.every((r) => r.signed)).toBe(true);
    const create = jobCalls[3]!.body as Record<string, unknown>;
    expect(create).toMatchObject({
      targets: [`arn:aws:iot:eu-central-1:123456789012:thinggroup/fleetwave-${w1}`],
      targetSelection: 'CONTINUOUS',
      timeoutConfig: { inProgressTimeoutInMinutes: 2 },
      jobExecutionsRolloutConfig: {
        maximumPerMinute: 100,
        exponentialRate: {
          baseRatePerMinute: 10,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfSucceededThings: 2 },
        },
      },
      abortConfig: {
        criteriaList: [{ failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 50, minNumberOfExecutedThings: 1 }],
      },
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'ALL', numberOfRetries: 1 }] },
    });
    const doc = UpdateJobDocument.parse(JSON.parse(create.document as string));
    expect(doc).toMatchObject({ purpose: 'update', rollout: id, wave: 0 });
    expect(doc.manifest.version).toBe('2.0.0');
    expect(doc.artifactBaseUrl).toMatch(/\/api\/releases\/gateway-app\/2\.0\.0\/artifacts\/$/);
    const [canary] = await membersOf(0);
    expect(aws.state.jobs.get(w1)!.executions.has(canary!)).toBe(true);

    // the canary fails once: AWS retries it (the retry configuration), Fleetwave does not count it as failed
    aws.device(canary!, w1, 'IN_PROGRESS');
    aws.device(canary!, w1, 'FAILED', { code: 'E_DOWNLOAD', reason: 'connection reset' });
    await waitForAsync('the retry to be seen', async () => (await rollout()).waves[0].counts.QUEUED === 1);
    expect((await rollout()).status).toBe('running');
    aws.device(canary!, w1, 'SUCCEEDED');
    await waitForAsync('the canary wave to succeed', async () => (await rollout()).status === 'awaiting-approval');

    // the approval gate is Fleetwave's: no job for wave 2 until an operator approves
    expect(aws.state.jobs.has(`${id}-w2`)).toBe(false);
    // a controller restart (kill -9) changes nothing: no job is created twice
    await ctl.kill('SIGKILL');
    ctl = await spawnController(ctlDir, args);
    // (until the restarted controller has read the executions back, commands wait: 409, try again)
    await waitForAsync(
      'the approval',
      async () => (await call('POST', `/api/rollouts/${id}/approve`, {})).status === 200,
    );
    const w2 = `${id}-w2`;
    const wave2 = await membersOf(1);
    await waitForAsync('wave 2 on AWS', async () => aws.state.jobs.get(w2)?.executions.size === wave2.length);
    for (const d of wave2) aws.device(d, w2, 'SUCCEEDED');

    // wave 3: one device fails its health check; the success threshold (100%) fails the wave → rollback on AWS
    const w3 = `${id}-w3`;
    const wave3 = await membersOf(2);
    await waitForAsync('wave 3 on AWS', async () => aws.state.jobs.get(w3)?.executions.size === wave3.length);
    aws.device(wave3[0]!, w3, 'FAILED', { code: 'E_HEALTH_CHECK' });
    for (const d of wave3.slice(1)) aws.device(d, w3, 'SUCCEEDED');
    await waitForAsync('the rollback job', async () => (await rollout()).status === 'rolling-back');
    expect((await rollout()).reason).toMatch(/E_HEALTH_CHECK ×1/);
    const rollbackJob = () => [...aws.state.jobs.keys()].find((j) => j.startsWith(`${id}-rb-`));
    await waitForAsync('the rollback job on AWS', async () => rollbackJob() !== undefined);
    const rbJob = rollbackJob()!;
    const updated = devices.filter((d) => d !== wave3[0]);
    await waitForAsync(
      'every updated device in the rollback',
      async () => aws.state.jobs.get(rbJob)!.executions.size === updated.length,
    );
    const rbCreate = aws.requests.find((r) => r.method === 'PUT' && r.path === `/jobs/${rbJob}`)!.body as Record<
      string,
      unknown
    >;
    const rbDoc = UpdateJobDocument.parse(JSON.parse(rbCreate.document as string));
    expect(rbDoc.purpose).toBe('rollback');
    expect(rbDoc.manifest.version).toBe('1.0.0');
    expect(rbCreate.jobExecutionsRolloutConfig).toBeUndefined();
    expect([...aws.state.jobs.get(rbJob)!.executions.keys()].sort()).toEqual(updated.sort());
    // restarted mid-rollback, the controller does not judge the rollback before it read the executions back
    await ctl.kill('SIGKILL');
    const polled = () => aws.requests.filter((r) => r.path === `/jobs/${rbJob}/things`).length;
    const polls = polled();
    ctl = await spawnController(ctlDir, args);
    await waitForAsync('two polls after the restart', async () => polled() >= polls + 2);
    expect((await rollout()).status).toBe('rolling-back');
    for (const d of updated) aws.device(d, rbJob, 'SUCCEEDED');
    await waitForAsync('rolled back', async () => (await rollout()).status === 'rolled-back');

    // the ended rollout lets go of AWS: its continuous jobs are canceled, its wave groups deleted
    await waitForAsync('the wave groups deleted', async () =>
      [w1, w2, w3, rbJob].every((j) => !aws.state.groups.has(`fleetwave-${j}`)),
    );
    for (const j of [w1, w2, w3, rbJob]) expect(aws.state.jobs.get(j)!.status).toBe('CANCELED');
    const creates = aws.requests.filter((r) => r.method === 'PUT' && /^\/jobs\/[^/]+$/.test(r.path)).map((r) => r.path);
    expect(creates).toEqual([`/jobs/${w1}`, `/jobs/${w2}`, `/jobs/${w3}`, `/jobs/${rbJob}`]);
    // and the rollout's events tell the story, with the devices' executions as AWS reported them
    const events = (await call('GET', `/api/rollouts/events?rollout=${id}`)).body.events as unknown[];
    // each one as shared's FleetEvent schema (the kinds of the wire format) says
    for (const e of events) expect(FleetEvent.safeParse(e).error).toBeUndefined();
    const kinds = events.map((e) => (e as FleetEvent).kind);
    expect(kinds).toEqual(
      expect.arrayContaining(['wave.succeeded', 'rollout.approved', 'wave.failed', 'rollout.rolled-back']),
    );
    expect(kinds.filter((k) => k === 'execution.changed').length).toBeGreaterThanOrEqual(10);
  });
});

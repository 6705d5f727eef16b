import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  api,
  CONTROLLER_CLI,
  type ControllerProcess,
  cleanupAfterEach,
  freePort,
  haveBinary,
  selfSignedCert,
  spawnController,
  startMosquitto,
  tmp,
  waitForAsync,
} from './helpers.js';
import { appArchive, filesRelease, publishRelease, trustedKey } from './release-helpers.js';

const cleanups = cleanupAfterEach();

/**
 * The official AWS IoT Device SDK v2 for JavaScript, as a device of its own: its native aws-crt module ships prebuilt
 * binaries for linux x64/arm64 (glibc and musl). Where it cannot load the test says so and skips only itself; under
 * FLEETWAVE_REQUIRE_SERVICES=1 (CI) that is a failure.
 */
type Sdk = typeof import('aws-iot-device-sdk-v2');
function loadSdk(): Sdk | undefined {
  try {
    return createRequire(import.meta.url)('aws-iot-device-sdk-v2') as Sdk;
  } catch (err) {
    const why = `aws-iot-device-sdk-v2 cannot load on this machine (${(err as Error).message.split('\n')[0]})`;
    if (process.env.FLEETWAVE_REQUIRE_SERVICES === '1') throw new Error(`${why}; FLEETWAVE_REQUIRE_SERVICES=1`);
    console.warn(`${why}: skipping the AWS SDK device tests`);
    return undefined;
  }
}
const sdk = loadSdk();
const openssl = haveBinary('openssl');
const mosquitto = haveBinary('mosquitto');

const PLAN = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: sdk-app
release: { name: gateway-app, version: 1.0.0 }
selector: { hardware: [rpi4] }
waves:
  - { name: all, percent: 100, deviceTimeout: 5m }
`;

interface Seen {
  topic: string;
  body: Record<string, unknown>;
}

/**
 * A device written only with the SDK's IotJobsClient, with the SDK's default connection settings (TLS, its metrics
 * on the username unless `disableMetrics`): it takes a job through notify-next, describe `$next`, start-next,
 * describe, update IN_PROGRESS and update SUCCEEDED, recording every answer it receives.
 */
async function sdkDevice(
  s: Sdk,
  o: { port: number; ca: string; thing: string; token: string; disableMetrics?: boolean },
) {
  const { iot, iotjobs, mqtt } = s;
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_default_builder()
    .with_certificate_authority_from_path(undefined, o.ca)
    .with_endpoint('localhost')
    .with_port(o.port)
    .with_client_id(o.thing)
    .with_username(o.thing)
    .with_password(o.token)
    .build();
  if (o.disableMetrics) config.disable_metrics = true;
  const client = new mqtt.MqttClient();
  const conn = client.new_connection(config);
  cleanups.push(async () => {
    await conn.disconnect().catch(() => {});
  });
  await conn.connect();
  const jobs = new iotjobs.IotJobsClient(conn);
  const seen: Seen[] = [];
  const record = (topic: string) => (err: unknown, body: unknown) =>
    seen.push({ topic, body: (err ? { error: String(err) } : body) as Record<string, unknown> });
  const Q = mqtt.QoS.AtLeastOnce;
  const thingName = o.thing;
  await jobs.subscribeToNextJobExecutionChangedEvents({ thingName }, Q, record('notify-next'));
  await jobs.subscribeToJobExecutionsChangedEvents({ thingName }, Q, record('notify'));
  await jobs.subscribeToStartNextPendingJobExecutionAccepted({ thingName }, Q, record('start-next/accepted'));
  await jobs.subscribeToStartNextPendingJobExecutionRejected({ thingName }, Q, record('start-next/rejected'));
  await jobs.subscribeToDescribeJobExecutionAccepted({ thingName, jobId: '$next' }, Q, record('$next/get/accepted'));
  await jobs.subscribeToDescribeJobExecutionRejected({ thingName, jobId: '$next' }, Q, record('$next/get/rejected'));
  const take = async (topic: string, what = topic) => {
    await waitForAsync(`the SDK device to receive ${what}`, async () => seen.some((x) => x.topic === topic), 60_000);
    const i = seen.findIndex((x) => x.topic === topic);
    return seen.splice(i, 1)[0]!.body;
  };
  return {
    seen,
    take,
    async run() {
      const next = (await take('notify-next')) as { execution?: { jobId: string } };
      expect(next.execution?.jobId).toBeTruthy();
      const jobId = next.execution!.jobId;
      await jobs.subscribeToDescribeJobExecutionAccepted({ thingName, jobId }, Q, record(`${jobId}/get/accepted`));
      await jobs.subscribeToUpdateJobExecutionAccepted({ thingName, jobId }, Q, record('update/accepted'));
      await jobs.subscribeToUpdateJobExecutionRejected({ thingName, jobId }, Q, record('update/rejected'));

      await jobs.publishDescribeJobExecution({ thingName, jobId: '$next', includeJobDocument: true }, Q);
      const described = (await take('$next/get/accepted')) as { execution: Record<string, unknown> };
      expect(described.execution).toMatchObject({ jobId, thingName, status: 'QUEUED' });
      expect(described.execution.jobDocument).toMatchObject({ purpose: 'update', manifest: { version: '1.0.0' } });

      await jobs.publishStartNextPendingJobExecution({ thingName, stepTimeoutInMinutes: 10 }, Q);
      const started = (await take('start-next/accepted')) as { execution: { versionNumber: number } };
      expect(started.execution).toMatchObject({ jobId, status: 'IN_PROGRESS' });

      await jobs.publishDescribeJobExecution({ thingName, jobId, executionNumber: 1 }, Q);
      expect(((await take(`${jobId}/get/accepted`)) as { execution: unknown }).execution).toMatchObject({
        jobId,
        status: 'IN_PROGRESS',
      });

      await jobs.publishUpdateJobExecution(
        {
          thingName,
          jobId,
          status: iotjobs.model.JobStatus.IN_PROGRESS,
          statusDetails: { stage: 'installing', version: '1.0.0' },
          expectedVersion: started.execution.versionNumber,
          includeJobExecutionState: true,
        },
        Q,
      );
      const progressed = (await take('update/accepted', 'update IN_PROGRESS accepted')) as {
        executionState: { versionNumber: number };
      };
      expect(progressed.executionState).toMatchObject({ status: 'IN_PROGRESS' });
      await jobs.publishUpdateJobExecution(
        {
          thingName,
          jobId,
          status: iotjobs.model.JobStatus.SUCCEEDED,
          statusDetails: { stage: 'succeeded', version: '1.0.0' },
          expectedVersion: progressed.executionState.versionNumber,
        },
        Q,
      );
      await take('update/accepted', 'update SUCCEEDED accepted');
      expect(seen.filter((x) => x.topic.endsWith('rejected'))).toEqual([]);
    },
  };
}

async function releaseAndPlan(ctl: ControllerProcess, dir: string, key: ReturnType<typeof trustedKey>) {
  const archive = await appArchive(dir, '1.0.0', { 'app.txt': '1.0.0' });
  await publishRelease(ctl.url, ctl.adminToken, filesRelease(key, '1.0.0', archive), archive);
  const r = await api(ctl.url, ctl.adminToken, 'POST', '/api/rollouts', { yaml: PLAN, source: 'plan.yaml' });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.rollout?.id ?? r.body.id;
}

async function rolloutSucceeds(ctl: ControllerProcess, id: string) {
  let last: Record<string, unknown> = {};
  await waitForAsync(
    'the rollout to complete',
    async () => {
      last = (await api(ctl.url, ctl.adminToken, 'GET', `/api/rollouts/${id}?devices=1`)).body;
      return last.status === 'completed';
    },
    60_000,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(last).slice(0, 2000)}`);
  });
}

describe.skipIf(!sdk || !openssl)('a device on the official AWS IoT Device SDK v2 takes a Fleetwave rollout', () => {
  it('through the embedded broker (TLS) with the SDK defaults, metrics on the username', {
    timeout: 180_000,
  }, async () => {
    const dir = tmp('aws-sdk');
    const ctlDir = join(dir, 'ctl');
    const key = trustedKey(ctlDir);
    const tls = selfSignedCert(dir);
    const ctl = await spawnController(ctlDir, [
      '--jobs-root',
      '$aws/things',
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--mqtts-port',
      '0',
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
    ]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const added = await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'sdk-1', hardware: 'rpi4' });
    expect(added.status).toBe(201);
    const device = await sdkDevice(sdk!, { port: ctl.mqtts!, ca: tls.cert, thing: 'sdk-1', token: added.body.token });
    const id = await releaseAndPlan(ctl, dir, key);
    await device.run();
    await rolloutSucceeds(ctl, id);
    // the controller saw the SDK's metrics suffix and still knew the device
    const audit = (await api(ctl.url, ctl.adminToken, 'GET', '/api/audit?limit=500')).body as {
      entries: { action: string; outcome: string }[];
    };
    expect(audit.entries.filter((e) => e.action === 'mqtt.connect' && e.outcome === 'denied')).toEqual([]);
  });

  it.skipIf(!mosquitto)(
    'through Mosquitto with the config `broker mosquitto-config` generates for the $aws/things root',
    { timeout: 180_000 },
    async () => {
      const dir = tmp('aws-sdk-mosq');
      chmodSync(dir, 0o777);
      const ctlDir = join(dir, 'ctl');
      const key = trustedKey(ctlDir);
      const tls = selfSignedCert(dir);
      // register the device on a controller that ran with the $aws/things root, then generate the broker files
      // without naming the roots: they come from the controller's data dir
      const first = await spawnController(ctlDir, [
        '--jobs-root',
        '$aws/things',
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
      ]);
      const added = await api(first.url, first.adminToken, 'POST', '/api/devices', { id: 'sdk-2', hardware: 'rpi4' });
      expect(added.body.agentConfig).toContain('jobsRoot: "$aws/things"');
      await first.kill('SIGTERM');
      const out = join(dir, 'mosq');
      const gen = spawnSync(
        process.execPath,
        [CONTROLLER_CLI, 'broker', 'mosquitto-config', '--out', out, '--data-dir', ctlDir],
        {
          encoding: 'utf8',
        },
      );
      expect(gen.status, gen.stderr).toBe(0);
      expect(gen.stdout).toContain('jobs root $aws/things');
      const acl = readFileSync(join(out, 'acl'), 'utf8');
      expect(acl).toContain('pattern write $aws/things/%u/jobs/+/get');
      expect(acl).toContain('pattern read $aws/things/%u/jobs/#');
      expect(acl).toContain('topic readwrite $aws/things/#'); // the controller's own: `#` does not match `$aws/…`
      const password = /password \(shown once\): (\S+)/.exec(gen.stdout)![1]!;
      chmodSync(out, 0o755);
      for (const f of readdirSync(out)) chmodSync(join(out, f), 0o644);
      const tlsPort = await freePort();
      const broker = await startMosquitto(
        `allow_anonymous false\nuse_username_as_clientid true\npassword_file ${out}/passwd\nacl_file ${out}/acl\n` +
          `listener ${tlsPort} 127.0.0.1\ncertfile ${tls.cert}\nkeyfile ${tls.key}\n`,
      );
      cleanups.push(() => broker.stop());
      const ctl = await spawnController(ctlDir, [
        '--jobs-root',
        '$aws/things',
        '--external-broker',
        broker.url,
        '--broker-username',
        'fleetwave-controller',
        '--broker-password',
        password,
        '--broker-connections',
        '1',
        '--http-port',
        '0',
      ]);
      cleanups.push(() => ctl.kill('SIGKILL'));
      // Mosquitto compares the username as sent: the SDK's metrics suffix must be off (disable_metrics) there
      const device = await sdkDevice(sdk!, {
        port: tlsPort,
        ca: tls.cert,
        thing: 'sdk-2',
        token: added.body.token,
        disableMetrics: true,
      });
      const id = await releaseAndPlan(ctl, dir, key);
      await device.run();
      await rolloutSucceeds(ctl, id);
    },
  );
});

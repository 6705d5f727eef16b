import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAgent } from '@fleetwave/agent';
import { AgentConfig, trustedKeyFromPem } from '@fleetwave/shared';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  api,
  CONTROLLER_CLI,
  cleanupAfterEach,
  haveBinary,
  sensor,
  spawnAgent,
  spawnController,
  startMosquitto,
  tmp,
  waitForAsync,
} from './helpers.js';
import { appArchive, filesRelease, publishRelease, trustedKey } from './release-helpers.js';

const cleanups = cleanupAfterEach();

const mosquitto = haveBinary('mosquitto');

/**
 * Devices registered with a controller on its embedded defaults (then stopped), Mosquitto started with the password
 * file and ACL `fleetwave broker mosquitto-config` generates, and the arguments that run the controller on it.
 */
async function mosquittoSetup(ids: string[], brokerConf = '') {
  const dir = tmp('ctl-mosq');
  chmodSync(dir, 0o777);
  const ctlDir = join(dir, 'ctl');
  const first = await spawnController(ctlDir, ['--mqtt-port', '0', '--http-port', '0']);
  const tokens: Record<string, string> = {};
  for (const id of ids) {
    const r = await api(first.url, first.adminToken, 'POST', '/api/devices', { id, hardware: 'rpi4' });
    tokens[id] = r.body.token;
  }
  await first.kill('SIGTERM');
  const out = join(dir, 'mosq-config');
  const gen = spawnSync(
    process.execPath,
    [CONTROLLER_CLI, 'broker', 'mosquitto-config', '--out', out, '--data-dir', ctlDir],
    { encoding: 'utf8' },
  );
  expect(gen.status, gen.stderr).toBe(0);
  const password = /password \(shown once\): (\S+)/.exec(gen.stdout)![1]!;
  chmodSync(out, 0o755);
  for (const f of readdirSync(out)) chmodSync(join(out, f), 0o644); // mosquitto reads them as its own user
  const broker = await startMosquitto(
    `allow_anonymous false\nuse_username_as_clientid true\npassword_file ${out}/passwd\nacl_file ${out}/acl\n${brokerConf}`,
  );
  cleanups.push(() => broker.stop());
  const args = [
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
  ];
  return { dir, ctlDir, tokens, broker, args };
}

describe('controller with an external Mosquitto (generated password file and ACL)', () => {
  it.skipIf(!mosquitto)(
    'ingests through Mosquitto, keeps devices apart, and loses nothing across a controller crash',
    async () => {
      const { dir, ctlDir, tokens, broker, args } = await mosquittoSetup(['gw-a', 'gw-b']);
      let ctl = await spawnController(ctlDir, args);
      cleanups.push(() => ctl.kill('SIGKILL'));

      // a wrong password is refused by Mosquitto itself
      const refused = await new Promise<number | undefined>((resolve) => {
        const c = mqtt.connect(broker.url, {
          clientId: 'gw-a',
          username: 'gw-a',
          password: 'wrong',
          reconnectPeriod: 0,
        });
        c.once('error', (e: Error & { code?: number }) => resolve(e.code));
        c.once('connect', () => resolve(0));
      });
      expect(refused).toBe(5);

      const tokenFile = join(dir, 'gw-a.token');
      writeFileSync(tokenFile, tokens['gw-a']!);
      const config = join(dir, 'gw-a.yaml');
      writeFileSync(
        config,
        `device: { id: gw-a }\ndataDir: ${dir}/gw-a\ningest: { port: 0 }\nuplink: { url: '${broker.url}', username: gw-a, tokenFile: ${tokenFile}, backoffMinMs: 100, backoffMaxMs: 500 }\n`,
      );
      const agent = await spawnAgent(['--config', config, '--max-ack-delay', '5ms']);
      cleanups.push(() => agent.kill('SIGKILL'));
      const s = await sensor(agent.ingestUrl, 'sensor');
      for (let k = 0; k < 50; k++) await s.send('sensors/x/v', k);
      const count = async (device: string) =>
        (await api(ctl.url, ctl.adminToken, 'GET', `/api/telemetry?device=${device}&stream=x/v&limit=10000`)).body
          .records.length as number;
      await waitForAsync('50 readings through Mosquitto', async () => (await count('gw-a')) >= 50);

      // device A writing on B's topic: Mosquitto's ACL drops it; A's next message on its own topic still arrives
      const a = await mqtt
        .connectAsync(broker.url, { clientId: 'gw-a-raw', username: 'gw-b-not', password: 'x', reconnectPeriod: 0 })
        .catch(() => undefined);
      expect(a).toBeUndefined();
      const forged = {
        v: 1,
        device: 'gw-b',
        seqFrom: 1,
        seqTo: 1,
        sentAt: 1,
        records: [{ kind: 'reading', seq: 1, stream: 'x/v', ts: 1, value: 666 }],
      };
      await agent.kill('SIGTERM'); // the agent's session (client id gw-a) is taken over by a raw client of gw-a
      const raw = await mqtt.connectAsync(broker.url, {
        clientId: 'gw-a',
        username: 'gw-a',
        password: tokens['gw-a'],
        reconnectPeriod: 0,
      });
      await raw.publishAsync('fleetwave/devices/gw-b/telemetry', JSON.stringify(forged), { qos: 1 });
      const marker = {
        v: 1,
        device: 'gw-a',
        ts: 1,
        depth: 0,
        bytes: 0,
        oldestAgeMs: 0,
        inflightBatches: 0,
        lastSeq: 50,
        dropped: { cap: 0, ttl: 0 },
        refused: {},
        accepted: 4242,
      };
      await raw.publishAsync('fleetwave/devices/gw-a/backlog', JSON.stringify(marker), { qos: 1 });
      await waitForAsync(
        'own message after the forged one',
        async () => (await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-a')).body.backlog?.accepted === 4242,
      );
      expect(await count('gw-b')).toBe(0);
      await raw.endAsync();

      // the controller crashes; the agent goes on; Mosquitto queues for the controller's persistent session
      await ctl.kill('SIGKILL');
      const again = await spawnAgent(['--config', config, '--max-ack-delay', '5ms']);
      cleanups.push(() => again.kill('SIGKILL'));
      const s2 = await sensor(again.ingestUrl, 'sensor-2');
      for (let k = 100; k < 150; k++) await s2.send('sensors/x/v', k);
      await new Promise((r) => setTimeout(r, 300));
      ctl = await spawnController(ctlDir, args);
      await waitForAsync('everything after the crash', async () => (await count('gw-a')) >= 100, 30_000);
      const dev = await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-a');
      expect(dev.body.missingSequences).toEqual([]);
      await s.client.endAsync().catch(() => {});
      await s2.client.endAsync();
    },
    90_000,
  );

  it.skipIf(!mosquitto)(
    'runs a rollout through Mosquitto: the jobs topics pass its ACL, waves complete, a bad canary is rolled back',
    async () => {
      const ids = ['gw-1', 'gw-2', 'gw-3', 'gw-4'];
      // debug logging: Mosquitto logs a denied publish only at that level
      const { dir, ctlDir, tokens, broker, args } = await mosquittoSetup(
        ids,
        ['debug', 'error', 'warning', 'notice', 'information'].map((t) => `log_type ${t}`).join('\n'),
      );
      const key = trustedKey(ctlDir);
      const ctl = await spawnController(ctlDir, args);
      cleanups.push(() => ctl.kill('SIGKILL'));
      const agents = await Promise.all(
        ids.map(async (id) => {
          const appsDir = join(dir, id, 'apps');
          const agent = createAgent({
            config: AgentConfig.parse({
              device: { id },
              dataDir: join(dir, id),
              ingest: { port: 0 },
              uplink: { url: broker.url, username: id, backoffMinMs: 50, backoffMaxMs: 500 },
              health: { enabled: false },
              updates: {
                enabled: true,
                hardware: 'rpi4',
                trustedKeys: [key.pemFile],
                appsDir,
                healthCommand: ['test', '-f', join(appsDir, 'gateway-app', 'current', 'ok')],
                healthDeadline: '20s',
              },
              log: { level: 'silent' },
            }),
            log: pino({ level: 'silent' }),
            uplinkClient: { username: id, password: tokens[id] },
            sensorUsers: new Map(),
            trustedKeys: [trustedKeyFromPem(key.publicPem)],
          });
          await agent.start();
          cleanups.push(() => agent.stop(200));
          return agent;
        }),
      );
      const plan = (name: string, version: string) =>
        `apiVersion: fleetwave/v1\nkind: RolloutPlan\nname: ${name}\nrelease: { name: gateway-app, version: ${version} }\n` +
        'waves:\n  - { name: canary, count: 1 }\n  - { name: all, percent: 100 }\nonFailure: rollback\n';
      const run = async (version: string, files: Record<string, string>) => {
        const archive = await appArchive(dir, version, files);
        await publishRelease(ctl.url, ctl.adminToken, filesRelease(key, version, archive), archive);
        const r = await api(ctl.url, ctl.adminToken, 'POST', '/api/rollouts', {
          yaml: plan(`app-${version.replaceAll('.', '-')}`, version),
        });
        expect(r.status, JSON.stringify(r.body)).toBe(201);
        let last: { status: string; reason?: string; waves: { members: { device: string; status: string }[] }[] };
        await waitForAsync(
          `rollout of ${version} to end`,
          async () => {
            last = (await api(ctl.url, ctl.adminToken, 'GET', `/api/rollouts/${r.body.id}?devices=1`)).body;
            return last.status !== 'running';
          },
          60_000,
        );
        return last!;
      };
      const good = await run('1.0.0', { ok: '', 'app.txt': 'v1' });
      expect(good.status, good.reason).toBe('completed');
      expect(good.waves.map((w) => w.members.map((m) => m.status))).toEqual([
        ['SUCCEEDED'],
        ['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED'],
      ]);
      for (const a of agents) expect(a.status().releases).toEqual({ 'gateway-app': '1.0.0' });
      // 1.1.0 fails its health check: the canary rolls itself back, nothing else is started
      const bad = await run('1.1.0', { 'app.txt': 'v1.1' });
      expect(bad.status).toBe('rolled-back');
      expect(bad.reason).toMatch(/wave canary failed/);
      expect(bad.waves[0]!.members[0]!.status).toBe('FAILED');
      expect(bad.waves[1]!.members.every((m) => m.status === 'NOT_STARTED' || m.status === 'CANCELED')).toBe(true);
      for (const a of agents) expect(a.status().releases).toEqual({ 'gateway-app': '1.0.0' });
      // and the broker's ACL let every device's jobs messages through: the devices' updates are in its log, no denial
      const log = readFileSync(join(broker.dir, 'mosquitto.log'), 'utf8');
      expect(log).toMatch(/Received PUBLISH from gw-1 .*'fleetwave\/jobs\/gw-1\/jobs\/[^']+\/update'/);
      expect(log).not.toMatch(/Denied PUBLISH/);
    },
    120_000,
  );
});

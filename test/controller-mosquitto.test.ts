import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
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

const cleanups = cleanupAfterEach();

const mosquitto = haveBinary('mosquitto');

describe('controller with an external Mosquitto (generated password file and ACL)', () => {
  it.skipIf(!mosquitto)(
    'ingests through Mosquitto, keeps devices apart, and loses nothing across a controller crash',
    async () => {
      const dir = tmp('ctl-mosq');
      chmodSync(dir, 0o777);
      const ctlDir = join(dir, 'ctl');
      // register two devices with a controller on its embedded defaults, then stop it
      const first = await spawnController(ctlDir, ['--mqtt-port', '0', '--http-port', '0']);
      const tokens: Record<string, string> = {};
      for (const id of ['gw-a', 'gw-b'])
        tokens[id] = (await api(first.url, first.adminToken, 'POST', '/api/devices', { id })).body.token;
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
        `allow_anonymous false\nuse_username_as_clientid true\npassword_file ${out}/passwd\nacl_file ${out}/acl`,
      );
      cleanups.push(() => broker.stop());
      const args = [
        '--external-broker',
        broker.url,
        '--broker-username',
        'fleetwave-controller',
        '--broker-password',
        password,
        '--http-port',
        '0',
      ];
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
      const agent = await spawnAgent(['--config', config]);
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
      const again = await spawnAgent(['--config', config]);
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
});

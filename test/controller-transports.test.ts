import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  type ControllerProcess,
  haveBinary,
  selfSignedCert,
  spawnController,
  tmp,
  waitForAsync,
} from './helpers.js';

const openssl = haveBinary('openssl');
let ctl: ControllerProcess;
let token: string;
let ca: Buffer;

beforeAll(async () => {
  if (!openssl) return;
  const dir = tmp('ctl-tls');
  const { key, cert } = selfSignedCert(dir);
  ca = readFileSync(cert);
  ctl = await spawnController(join(dir, 'ctl'), [
    '--mqtt-port',
    '0',
    '--http-port',
    '0',
    '--ws-port',
    '0',
    '--mqtts-port',
    '0',
    '--tls-cert',
    cert,
    '--tls-key',
    key,
  ]);
  token = (await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'gw-t' })).body.token;
});
afterAll(() => ctl?.kill('SIGKILL'));

const batch = (seq: number) =>
  JSON.stringify({
    v: 1,
    device: 'gw-t',
    seqFrom: seq,
    seqTo: seq,
    sentAt: 1,
    records: [{ kind: 'reading', seq, stream: 'a/b', ts: 1, value: seq }],
  });

describe.skipIf(!openssl)('embedded broker transports', () => {
  it('accepts devices over MQTT over WebSocket and over TLS, with the same credentials and rules', async () => {
    for (const [i, url, extra] of [
      [1, `ws://127.0.0.1:${ctl.ws}`, {}],
      [2, `mqtts://127.0.0.1:${ctl.mqtts}`, { ca }],
    ] as const) {
      const c = await mqtt.connectAsync(url, {
        clientId: 'gw-t',
        username: 'gw-t',
        password: token,
        reconnectPeriod: 0,
        ...extra,
      });
      await c.publishAsync('fleetwave/devices/gw-t/telemetry', batch(i), { qos: 1 });
      await c.endAsync();
    }
    await waitForAsync(
      'both batches stored',
      async () => (await api(ctl.url, ctl.adminToken, 'GET', '/api/telemetry?device=gw-t')).body.records.length === 2,
    );
    const refused = await new Promise<number | undefined>((resolve) => {
      const c = mqtt.connect(`ws://127.0.0.1:${ctl.ws}`, {
        clientId: 'gw-t',
        username: 'gw-t',
        password: 'wrong',
        reconnectPeriod: 0,
      });
      c.once('error', (e: Error & { code?: number }) => resolve(e.code));
      c.once('connect', () => resolve(0));
    });
    expect(refused).toBe(5);
    const untrusted = await new Promise<string>((resolve) => {
      const c = mqtt.connect(`mqtts://127.0.0.1:${ctl.mqtts}`, {
        clientId: 'gw-t',
        username: 'gw-t',
        password: token,
        reconnectPeriod: 0,
      });
      c.once('error', (e) => resolve(e.message));
      c.once('connect', () => resolve('connected'));
    });
    expect(untrusted).toMatch(/self.signed|certificate/i);
  });
});

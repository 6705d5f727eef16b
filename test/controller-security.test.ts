import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, type ControllerProcess, spawnController, tmp } from './helpers.js';

let ctl: ControllerProcess;
let mqttUrl: string;
const tokens: Record<string, string> = {};

const connect = (opts: mqtt.IClientOptions) =>
  new Promise<{ client?: MqttClient; error?: Error & { code?: number } }>((resolve) => {
    const c = mqtt.connect(mqttUrl, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once('connect', () => resolve({ client: c }));
    c.once('error', (error) => {
      c.end(true);
      resolve({ error });
    });
  });

/** The SUBACK return code for one filter: the granted QoS, or 128 (failure) with the session still up. */
const suback = (c: MqttClient, filter: string) =>
  new Promise<number>((resolve) =>
    c.subscribe(filter, { qos: 1 }, (err, granted) => resolve(err ? (c.connected ? 128 : -1) : granted![0]!.qos)),
  );

const closed = (c: MqttClient) => new Promise<void>((r) => (c.connected ? c.once('close', () => r()) : r()));

beforeAll(async () => {
  ctl = await spawnController(tmp('ctl-sec'), ['--mqtt-port', '0', '--http-port', '0']);
  mqttUrl = `mqtt://127.0.0.1:${ctl.mqtt}`;
  for (const id of ['gw-a', 'gw-b']) {
    tokens[id] = (await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id })).body.token;
  }
  tokens.backend = (
    await api(ctl.url, ctl.adminToken, 'POST', '/api/tokens', { name: 'lake', role: 'backend' })
  ).body.token;
  tokens.viewer = (
    await api(ctl.url, ctl.adminToken, 'POST', '/api/tokens', { name: 'watcher', role: 'viewer' })
  ).body.token;
});
afterAll(() => ctl?.kill('SIGKILL'));

async function auditHas(actor: RegExp, action: string, target?: RegExp) {
  const entries = (await api(ctl.url, ctl.adminToken, 'GET', '/api/audit?limit=1000')).body.entries as {
    actor: string;
    action: string;
    target: string;
    outcome: string;
  }[];
  return entries.some(
    (e) => actor.test(e.actor) && e.action === action && e.outcome === 'denied' && (!target || target.test(e.target)),
  );
}

describe('controller security (real clients against the embedded broker and the API)', () => {
  it('refuses wrong credentials, unknown devices and a borrowed client id at CONNECT', async () => {
    expect((await connect({ clientId: 'gw-a', username: 'gw-a', password: 'wrong' })).error?.code).toBe(5);
    expect((await connect({ clientId: 'gw-x', username: 'gw-x', password: tokens['gw-a'] })).error?.code).toBe(5);
    expect((await connect({ clientId: 'gw-b', username: 'gw-a', password: tokens['gw-a'] })).error?.code).toBe(5);
    expect((await connect({ clientId: 'anon' })).error?.code).toBe(5);
    expect((await connect({ clientId: 'gw-a', username: 'backend', password: tokens.backend })).error?.code).toBe(5);
    expect(await auditHas(/^mqtt:gw-a$/, 'mqtt.connect')).toBe(true);
    expect(await auditHas(/^mqtt:anonymous$/, 'mqtt.connect')).toBe(true);
  });

  it('closes a device connection that announces a packet over the 2 MiB limit, before the body is buffered', async () => {
    const { client } = await connect({ clientId: 'gw-a', username: 'gw-a', password: tokens['gw-a'] });
    expect(client).toBeDefined();
    // the fixed header of a PUBLISH of 100 MB (Remaining Length 0x80 0xc2 0xd7 0x2f): nothing more is sent
    client!.stream.write(Buffer.from([0x30, 0x80, 0xc2, 0xd7, 0x2f]));
    await closed(client!);
    client!.end(true);
    // the broker is fine, and the device may come back
    const again = await connect({ clientId: 'gw-a', username: 'gw-a', password: tokens['gw-a'] });
    expect(again.client?.connected).toBe(true);
    await again.client!.endAsync();
  });

  it('stops device A from publishing or subscribing as device B', async () => {
    const { client: a } = await connect({ clientId: 'gw-a', username: 'gw-a', password: tokens['gw-a'] });
    expect(await suback(a!, 'fleetwave/devices/gw-b/config/desired')).toBe(128);
    expect(await suback(a!, 'fleetwave/devices/+/config/desired')).toBe(128);
    expect(await suback(a!, 'fleetwave/devices/gw-a/config/desired')).toBe(1);
    const gone = closed(a!);
    a!.publish('fleetwave/devices/gw-b/telemetry', JSON.stringify({ v: 1, device: 'gw-b' }), { qos: 1 });
    await gone; // a forbidden PUBLISH ends the session (MQTT 3.1.1 has no negative PUBACK)
    expect(await auditHas(/^device:gw-a$/, 'mqtt.subscribe', /gw-b/)).toBe(true);
    expect(await auditHas(/^device:gw-a$/, 'mqtt.publish', /gw-b/)).toBe(true);
    const b = (await api(ctl.url, ctl.adminToken, 'GET', '/api/telemetry?device=gw-b')).body;
    expect(b.records).toEqual([]);
  });

  it('lets a backend read clean telemetry and nothing else', async () => {
    const { client: be } = await connect({ clientId: 'backend-lake', username: 'backend', password: tokens.backend });
    expect(await suback(be!, 'fleetwave/clean/#')).toBe(1);
    expect(await suback(be!, 'fleetwave/devices/gw-a/telemetry')).toBe(128);
    expect(await suback(be!, '#')).toBe(128);
    const gone = closed(be!);
    be!.publish('fleetwave/clean/gw-a/telemetry', '{}', { qos: 1 });
    await gone;
    expect(await auditHas(/^backend:lake$/, 'mqtt.publish')).toBe(true);
    const http = await api(ctl.url, tokens.backend, 'GET', '/api/telemetry');
    expect(http.status).toBe(200);
    expect((await api(ctl.url, tokens.backend, 'GET', '/api/devices')).status).toBe(403);
  });

  it('revokes a device: its live session drops and it cannot come back', async () => {
    const { client: b } = await connect({ clientId: 'gw-b', username: 'gw-b', password: tokens['gw-b'] });
    const gone = closed(b!);
    expect((await api(ctl.url, tokens.viewer, 'POST', '/api/devices/gw-b/revoke')).status).toBe(403);
    const r = await api(ctl.url, ctl.adminToken, 'POST', '/api/devices/gw-b/revoke');
    expect(r.status).toBe(200);
    await gone;
    expect((await connect({ clientId: 'gw-b', username: 'gw-b', password: tokens['gw-b'] })).error?.code).toBe(5);
    expect(await auditHas(/^mqtt:gw-b$/, 'mqtt.connect')).toBe(true);
    expect(await auditHas(/^watcher$/, 'device.revoke')).toBe(true);
  });

  it('refuses unauthenticated and under-privileged API calls, each in the audit log, changing nothing', async () => {
    expect((await api(ctl.url, undefined, 'GET', '/api/devices')).status).toBe(401);
    expect((await api(ctl.url, 'fwt_000000000000_not-a-real-secret-at-all', 'GET', '/api/devices')).status).toBe(401);
    const add = await api(ctl.url, tokens.viewer, 'POST', '/api/devices', { id: 'gw-evil' });
    expect(add.status).toBe(403);
    expect(add.body.error.code).toBe('E_FORBIDDEN');
    expect((await api(ctl.url, tokens.viewer, 'POST', '/api/tokens', { name: 'x', role: 'admin' })).status).toBe(403);
    expect((await api(ctl.url, tokens.viewer, 'GET', '/api/audit')).status).toBe(403);
    const bad = await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'bad id!', extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.issues.length).toBeGreaterThan(0);
    const ids = (await api(ctl.url, tokens.viewer, 'GET', '/api/devices')).body.devices.map(
      (d: { id: string }) => d.id,
    );
    expect(ids).toEqual(['gw-a', 'gw-b']);
    expect(await auditHas(/^anonymous$/, 'device.list')).toBe(true);
    expect(await auditHas(/^watcher$/, 'device.add')).toBe(true);
    expect(await auditHas(/^watcher$/, 'token.create')).toBe(true);
  });
});

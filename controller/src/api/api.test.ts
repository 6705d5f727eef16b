import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../auth/authenticator.js';
import { ConfigService } from '../config/service.js';
import { TelemetryIngest } from '../ingest/telemetry-ingest.js';
import { sqliteFixture } from '../store/database-fixtures.js';
import { buildApi } from './app.js';
import { TelemetryHub } from './telemetry-hub.js';

const log = pino({ level: 'silent' });
const { db, close } = await sqliteFixture();
const store = db.fleet;
const auth = new Authenticator(store, Date.now, log);
const ingest = new TelemetryIngest({
  db,
  now: Date.now,
  log,
  onClean: () => {},
});
const published: { topic: string; doc: { version: number; config: Record<string, unknown> } }[] = [];
const config = new ConfigService({
  db,
  root: 'fleetwave',
  now: Date.now,
  log,
  audit: (...a) => auth.audit(...a),
  publish: async (topic, payload) => {
    published.push({ topic, doc: JSON.parse(payload) });
  },
});
const app = buildApi({
  db,
  auth,
  ingest,
  config,
  hub: new TelemetryHub(),
  log,
  now: Date.now,
  kick: () => {},
  agentUplinkUrl: () => 'mqtt://127.0.0.1:1883',
  root: 'fleetwave',
});
const admin = (await auth.createApiToken('admin', 'admin')).token;
afterAll(async () => {
  await app.close();
  await close();
});

describe('API (fastify inject)', () => {
  it('registers a device, shows it without credential hashes, and prints an agent config', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/api/devices',
      headers: { authorization: `Bearer ${admin}` },
      payload: { id: 'gw-1', tags: { site: 'n' } },
    });
    expect(r.statusCode).toBe(201);
    const body = r.json();
    expect(body.token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(body.agentConfig).toContain('username: gw-1');
    expect(JSON.stringify(body.device)).not.toMatch(/Hash/);
    expect((await store.getDevice('gw-1'))!.tokenHash).toMatch(/^sha256\$/);
    expect(
      (
        await app.inject({
          method: 'POST',
          url: '/api/devices',
          headers: { authorization: `Bearer ${admin}` },
          payload: { id: 'gw-1' },
        })
      ).statusCode,
    ).toBe(409);
    const reserved = await app.inject({
      method: 'POST',
      url: '/api/devices',
      headers: { authorization: `Bearer ${admin}` },
      payload: { id: 'backend-x' },
    });
    expect(reserved.statusCode).toBe(400);
  });

  it('publishes an OpenAPI document and Prometheus metrics', async () => {
    const doc = (await app.inject({ url: '/openapi.json' })).json();
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toContain('/api/telemetry/stream');
    for (const p of [
      '/api/rollouts',
      '/api/rollouts/{id}/{command}',
      '/api/releases/{name}/{version}/artifacts/{artifact}',
      '/api/config/layers',
    ]) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
    const list = (await app.inject({ url: '/schemas' })).json().schemas;
    expect(list).toContain('/schemas/clean-record.json');
    expect((await app.inject({ url: '/schemas/clean-record.json' })).json().$id).toMatch(/clean-record/);
    expect((await app.inject({ url: '/schemas/nope.json' })).statusCode).toBe(404);
    const m = await app.inject({ url: '/metrics' });
    expect(m.body).toMatch(/fleetwave_devices 1/);
  });

  it('enrols a gateway once per use of a fleet enrolment token', async () => {
    const t = (
      await app.inject({
        method: 'POST',
        url: '/api/enrolment-tokens',
        headers: { authorization: `Bearer ${admin}` },
        payload: { uses: 1, tags: { fleet: 'x' } },
      })
    ).json().token;
    const first = await app.inject({ method: 'POST', url: '/api/enrol', payload: { token: t, id: 'gw-new' } });
    expect(first.statusCode).toBe(201);
    expect((await store.getDevice('gw-new'))!.tags).toEqual({ fleet: 'x' });
    expect(
      (await app.inject({ method: 'POST', url: '/api/enrol', payload: { token: t, id: 'gw-new2' } })).statusCode,
    ).toBe(403);
    expect(
      (await app.inject({ method: 'POST', url: '/api/enrol', payload: { token: `${t}x`, id: 'gw-new3' } })).statusCode,
    ).toBe(401);
    expect(await store.getDevice('gw-new2')).toBeUndefined();
  });

  it('answers any malformed body with a 4xx and changes nothing', async () => {
    const before = (await store.listDevices()).length;
    const tokensBefore = (await store.listApiTokens()).length;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.jsonValue(), fc.string()),
        fc.constantFrom('/api/devices', '/api/tokens', '/api/enrol', '/api/enrolment-tokens'),
        async (body, url) => {
          const r = await app.inject({
            method: 'POST',
            url,
            headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
            payload: typeof body === 'string' ? body : JSON.stringify(body),
          });
          // a random body may by chance be valid for enrolment tokens (all fields have defaults)
          if (url === '/api/enrolment-tokens' && r.statusCode === 201) return;
          expect(r.statusCode).toBeGreaterThanOrEqual(400);
          expect(r.statusCode).toBeLessThan(500);
          expect(r.json().error.code).toMatch(/^E_/);
        },
      ),
      { numRuns: 200 },
    );
    expect((await store.listDevices()).length).toBe(before);
    expect((await store.listApiTokens()).length).toBe(tokensBefore);
  });
});

describe('desired configuration API', () => {
  const h = { authorization: `Bearer ${admin}` };
  const layer = (name: string, priority: number, selector: object, cfg: object) => ({
    apiVersion: 'fleetwave/v1',
    kind: 'ConfigLayer',
    name,
    priority,
    selector,
    config: cfg,
  });

  it('applies layers to exactly the matching devices, shows provenance, diffs, refuses conflicts, and reverts', async () => {
    for (const [id, site] of [
      ['cfg-a', 'north'],
      ['cfg-b', 'south'],
    ]) {
      await app.inject({ method: 'POST', url: '/api/devices', headers: h, payload: { id, tags: { site } } });
    }
    published.length = 0;
    const north = layer('north', 10, { tags: { site: 'north' } }, { backlogIntervalMs: 5000 });
    const diff = (await app.inject({ method: 'POST', url: '/api/config/diff', headers: h, payload: north })).json();
    expect(diff.devices).toEqual([
      { device: 'cfg-a', changes: [{ field: 'backlogIntervalMs', from: null, to: 5000 }] },
    ]);
    const r = await app.inject({ method: 'POST', url: '/api/config/layers', headers: h, payload: north });
    expect(r.json()).toEqual({ layer: 'north', changed: ['cfg-a'] });
    expect(published).toEqual([
      {
        topic: 'fleetwave/devices/cfg-a/config/desired',
        doc: { v: 1, device: 'cfg-a', version: 1, config: { backlogIntervalMs: 5000 } },
      },
    ]);
    const eff = (await app.inject({ url: '/api/config/effective/cfg-a', headers: h })).json();
    expect(eff).toMatchObject({ version: 1, provenance: { backlogIntervalMs: 'north' }, layers: ['north'] });

    const clash = await app.inject({
      method: 'POST',
      url: '/api/config/layers',
      headers: h,
      payload: layer('clash', 10, {}, { backlogIntervalMs: 1000 }),
    });
    expect(clash.statusCode).toBe(400);
    expect(clash.json().error.message).toMatch(/north and clash|clash and north/);

    await app.inject({
      method: 'POST',
      url: '/api/config/layers',
      headers: h,
      payload: { ...north, config: { backlogIntervalMs: 7000 } },
    });
    expect((await store.getDevice('cfg-a'))!.desiredVersion).toBe(2);
    const rev = await app.inject({ method: 'POST', url: '/api/config/layers/north/revert', headers: h });
    expect(rev.json().changed).toEqual(['cfg-a']);
    expect(JSON.parse((await store.getDevice('cfg-a'))!.desiredConfig!)).toEqual({ backlogIntervalMs: 5000 });
    expect((await store.getDevice('cfg-a'))!.desiredVersion).toBe(3);
    const hist = (await app.inject({ url: '/api/config/history?name=north', headers: h })).json().entries;
    expect(hist.map((e: { action: string }) => e.action)).toEqual(['revert', 'apply', 'apply']);
    const status = (await app.inject({ url: '/api/config/status', headers: h })).json().devices;
    expect(status).toEqual([{ device: 'cfg-a', desired: 3, applied: null, state: 'lagging', reason: null }]);
    expect(
      (await app.inject({ method: 'DELETE', url: '/api/config/layers/north', headers: h })).json().changed,
    ).toEqual(['cfg-a']);
    expect((await store.audit(50)).some((e) => e.action === 'config.revert' && e.outcome === 'ok')).toBe(true);
  });

  it("changes a device's tags and hardware; its configuration follows the layers it now matches", async () => {
    await app.inject({ method: 'POST', url: '/api/devices', headers: h, payload: { id: 'mv-1', tags: { site: 'x' } } });
    await app.inject({
      method: 'POST',
      url: '/api/config/layers',
      headers: h,
      payload: layer('rpi5-only', 3, { hardware: ['rpi5'] }, { batchMaxRecords: 50 }),
    });
    published.length = 0;
    const patch = (payload: unknown, id = 'mv-1', headers = h) =>
      app.inject({ method: 'PATCH', url: `/api/devices/${id}`, headers, payload: payload as object });
    const r = await patch({ tags: { site: 'y', rack: '4' }, hardware: 'rpi5' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({
      device: { id: 'mv-1', hardware: 'rpi5', tags: { site: 'y', rack: '4' } },
      changed: ['tags', 'hardware'],
    });
    // it now matches the rpi5 layer: a new desired configuration went out
    expect(published).toEqual([
      {
        topic: 'fleetwave/devices/mv-1/config/desired',
        doc: { v: 1, device: 'mv-1', version: 1, config: { batchMaxRecords: 50 } },
      },
    ]);
    expect((await patch({ hardware: 'rpi5' })).json().changed).toEqual([]);
    expect(published).toHaveLength(1);
    expect((await store.audit(5)).find((e) => e.action === 'device.update')).toMatchObject({
      target: 'mv-1',
      outcome: 'ok',
      details: 'unchanged',
    });
    // bad input changes nothing; an unknown device, a viewer, a revoked device are refused
    expect((await patch({})).statusCode).toBe(400);
    expect((await patch({ hardware: 'rpi 5' })).statusCode).toBe(400);
    expect((await patch({ tags: { 'bad key': 'v' } })).statusCode).toBe(400);
    expect((await patch({ owner: 'me' })).statusCode).toBe(400);
    expect(await store.getDevice('mv-1')).toMatchObject({ hardware: 'rpi5', tags: { site: 'y', rack: '4' } });
    expect((await patch({ hardware: 'rpi4' }, 'nope')).statusCode).toBe(404);
    const viewer = (await auth.createApiToken('mv-viewer', 'viewer')).token;
    expect((await patch({ hardware: 'rpi4' }, 'mv-1', { authorization: `Bearer ${viewer}` })).statusCode).toBe(403);
    await app.inject({ method: 'POST', url: '/api/devices/mv-1/revoke', headers: h });
    expect((await patch({ hardware: 'rpi4' })).statusCode).toBe(409);
    await app.inject({ method: 'DELETE', url: '/api/config/layers/rpi5-only', headers: h });
  });

  it('validates layers and refuses viewers', async () => {
    const viewer = (await auth.createApiToken('cfg-viewer', 'viewer')).token;
    const bad = await app.inject({
      method: 'POST',
      url: '/api/config/layers',
      headers: h,
      payload: layer('x', 1, {}, { filters: [{ match: '**', deadband: { absolute: 0 } }] }),
    });
    expect(bad.statusCode).toBe(400);
    const denied = await app.inject({
      method: 'POST',
      url: '/api/config/layers',
      headers: { authorization: `Bearer ${viewer}` },
      payload: layer('y', 1, {}, {}),
    });
    expect(denied.statusCode).toBe(403);
    expect((await app.inject({ url: '/api/config/layers', headers: h })).json().layers).toEqual([]);
  });
});

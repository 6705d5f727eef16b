import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../auth/authenticator.js';
import { TelemetryIngest } from '../ingest/telemetry-ingest.js';
import { MemoryFleetStore } from '../store/memory-fleet-store.js';
import { buildApi } from './app.js';
import { TelemetryHub } from './telemetry-hub.js';

const log = pino({ level: 'silent' });
const store = new MemoryFleetStore();
const auth = new Authenticator(store, Date.now, log);
const ingest = new TelemetryIngest({ store, now: Date.now, log, onClean: () => {} });
const app = buildApi({
  store,
  auth,
  ingest,
  hub: new TelemetryHub(),
  log,
  now: Date.now,
  kick: () => {},
  agentUplinkUrl: () => 'mqtt://127.0.0.1:1883',
  root: 'fleetwave',
});
const admin = auth.createApiToken('admin', 'admin').token;
afterAll(() => app.close());

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
    expect(store.getDevice('gw-1')!.tokenHash).toMatch(/^scrypt\$/);
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
  });

  it('publishes an OpenAPI document and Prometheus metrics', async () => {
    const doc = (await app.inject({ url: '/openapi.json' })).json();
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toContain('/api/telemetry/stream');
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
    expect(store.getDevice('gw-new')!.tags).toEqual({ fleet: 'x' });
    expect(
      (await app.inject({ method: 'POST', url: '/api/enrol', payload: { token: t, id: 'gw-new2' } })).statusCode,
    ).toBe(403);
    expect(
      (await app.inject({ method: 'POST', url: '/api/enrol', payload: { token: `${t}x`, id: 'gw-new3' } })).statusCode,
    ).toBe(401);
    expect(store.getDevice('gw-new2')).toBeUndefined();
  });

  it('answers any malformed body with a 4xx and changes nothing', async () => {
    const before = store.listDevices().length;
    const tokensBefore = store.listApiTokens().length;
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
    expect(store.listDevices().length).toBe(before);
    expect(store.listApiTokens().length).toBe(tokensBefore);
  });
});

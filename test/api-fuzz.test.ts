import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { api, cleanupAfterEach, spawnController, tmp } from './helpers.js';

const cleanups = cleanupAfterEach();

interface Operation {
  method: string;
  path: string;
  requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
}

/** Long-lived streams (NDJSON, server-sent events): a GET there does not end by itself. */
const STREAMS = ['/api/telemetry/stream', '/api/rollouts/events'];

const hostileSegment = fc.oneof(
  fc.constantFrom('..', '%2e%2e', 'a%2Fb', '%00', '%E2%82', 'x'.repeat(300), '$next', '-', ' ', '%20'),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,20}$/),
  fc.string({ maxLength: 30 }).map((s) => encodeURIComponent(s) || 'e'),
);

/** JSON that is deeper than anything the API takes; built as text (no recursion anywhere). */
const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

/**
 * Bodies no route may accept: not an object, an object with a key no schema has, every documented property of the
 * wrong type, nested 5,000 levels deep, over the 256 KiB body limit, not JSON at all, or a raw byte stream.
 */
function badBody(op: Operation) {
  const props = Object.keys(op.requestBody?.content?.['application/json']?.schema?.properties ?? {});
  const json = (v: unknown) => ({ type: 'application/json', body: JSON.stringify(v) });
  return fc.oneof(
    fc
      .oneof(fc.integer(), fc.string({ maxLength: 40 }), fc.constant(null), fc.array(fc.jsonValue(), { maxLength: 4 }))
      .map(json),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue(), { maxKeys: 4 }).map((d) => json({ ...d, __fuzz: [1] })),
    fc
      .constantFrom(...(props.length ? [0, 1] : [0]))
      .map(() => json(Object.fromEntries(props.map((p) => [p, { '\u0000': [[]] }])))),
    fc.constant({ type: 'application/json', body: deep(5000) }),
    fc.constant({ type: 'application/json', body: JSON.stringify({ id: 'x'.repeat(300 * 1024) }) }),
    fc.string({ maxLength: 60 }).map((s) => ({ type: 'application/json', body: `{${s}` })),
    fc.uint8Array({ maxLength: 300 }).map((b) => ({ type: 'application/octet-stream', body: Buffer.from(b) })),
    fc.string({ maxLength: 60 }).map((s) => ({ type: 'text/plain', body: s })),
  );
}

describe('every API route refuses bad input (fuzzed from the served OpenAPI document)', () => {
  it('answers random, oversized, deeply nested and wrongly typed bodies with a coded 4xx; nothing changes; the process stays healthy', {
    timeout: 240_000,
  }, async () => {
    const dir = tmp('api-fuzz');
    const ctl = await spawnController(dir, ['--mqtt-port', '0', '--http-port', '0']);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const call = (m: string, p: string, b?: unknown) => api(ctl.url, ctl.adminToken, m, p, b);
    // something to change: a device, a config layer
    expect((await call('POST', '/api/devices', { id: 'gw-keep', tags: { site: 'a' } })).status).toBe(201);
    const doc = (await call('GET', '/openapi.json')).body as { paths: Record<string, Record<string, Operation>> };
    const ops: Operation[] = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, o]) => ({ ...o, method: method.toUpperCase(), path })),
    );
    expect(ops.length).toBeGreaterThan(30);
    const snapshot = async () =>
      JSON.stringify(
        await Promise.all(
          ['/api/devices', '/api/releases', '/api/rollouts', '/api/config/layers', '/api/tokens', '/api/predict'].map(
            async (p) => (await call('GET', p)).body,
          ),
        ),
      );
    const before = await snapshot();
    let requests = 0;
    const seen = new Map<string, number>();
    for (const op of ops) {
      if (op.method === 'GET' && STREAMS.includes(op.path)) continue;
      const withBody = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(op.method);
      await fc.assert(
        fc.asyncProperty(fc.array(hostileSegment, { minLength: 4, maxLength: 4 }), badBody(op), async (segs, b) => {
          let k = 0;
          const path = op.path.replace(/\{[^}]+\}/g, () => segs[k++ % segs.length]!);
          const res = await fetch(`${ctl.url}${path}`, {
            method: op.method,
            headers: {
              authorization: `Bearer ${ctl.adminToken}`,
              ...(withBody && { 'content-type': b.type }),
            },
            ...(withBody && { body: b.body }),
          });
          const text = await res.text();
          requests++;
          seen.set(String(res.status), (seen.get(String(res.status)) ?? 0) + 1);
          const what = `${op.method} ${path} (${b.type}, ${String(b.body).slice(0, 80)}) → ${res.status} ${text.slice(0, 200)}`;
          expect(res.status, what).toBeLessThan(500);
          if (withBody) {
            expect(res.status, what).toBeGreaterThanOrEqual(400);
            expect(String(JSON.parse(text).error?.code), what).toMatch(/^E_[A-Z_]+$/);
          }
        }),
        { numRuns: op.method === 'GET' ? 8 : 25 },
      );
    }
    console.log(
      `api fuzz: ${requests} requests over ${ops.length} operations; statuses ${JSON.stringify(Object.fromEntries(seen))}`,
    );
    expect(await snapshot()).toBe(before);
    expect((await call('GET', '/healthz')).body).toEqual({ ok: true });
    expect(ctl.proc.exitCode).toBeNull();
  });
});

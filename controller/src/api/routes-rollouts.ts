import { createReadStream } from 'node:fs';
import { FleetwaveError, parseWith, parseYamlWith, RolloutPlan } from '@fleetwave/shared';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ReleaseService } from '../rollouts/releases.js';
import type { RolloutService } from '../rollouts/rollout-service.js';
import type { RolloutEvent, RolloutStore } from '../rollouts/rollout-store.js';
import { rolloutView } from '../rollouts/view.js';
import type { ApiDeps, Guard } from './app.js';

export interface RolloutApiDeps {
  releases: ReleaseService;
  rollouts: RolloutService;
  rolloutStore: RolloutStore;
  /** Live rollout events for SSE listeners. */
  subscribeEvents: (fn: (e: RolloutEvent) => void) => () => void;
}

const PlanBody = z.strictObject({
  yaml: z
    .string()
    .min(1)
    .max(256 * 1024),
  source: z.string().max(256).optional(),
});
const CommandBody = z.strictObject({ wave: z.number().int().min(0).max(100).optional() }).default({});
const Command = z.enum(['pause', 'resume', 'approve', 'abort', 'rollback']);

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` (one range) → [start, end], or null when absent; throws when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): [number, number] | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  const [start, end] =
    m[1] === ''
      ? [Math.max(0, size - Number(m[2])), size - 1]
      : [Number(m[1]), m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)];
  if (start > end || start >= size) throw Object.assign(new Error('range not satisfiable'), { statusCode: 416 });
  return [start, end];
}

export function rolloutRoutes(app: FastifyInstance, api: ApiDeps, deps: RolloutApiDeps, guard: Guard): void {
  const { releases, rollouts } = deps;

  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  app.get('/api/releases', { preHandler: guard('viewer', 'release.list') }, async () => ({
    releases: (await deps.rolloutStore.listReleases()).map((r) => ({
      name: r.name,
      version: r.version,
      addedAt: r.addedAt,
      manifest: r.manifest,
    })),
  }));

  app.post('/api/releases', { preHandler: guard('operator', 'release.add') }, async (req) => {
    try {
      const { manifest, added } = await releases.add(req.body);
      await api.auth.audit(
        req.caller!.actor,
        'release.add',
        `${manifest.name}@${manifest.version}`,
        'ok',
        added ? 'added' : 'unchanged',
      );
      return { name: manifest.name, version: manifest.version, added };
    } catch (err) {
      await api.auth.audit(
        req.caller!.actor,
        'release.add',
        'manifest',
        'denied',
        (err as Error).message.slice(0, 200),
      );
      throw err;
    }
  });

  const artifactParams = (req: FastifyRequest) => req.params as { name: string; version: string; artifact: string };

  app.put(
    '/api/releases/:name/:version/artifacts/:artifact',
    // the one route that takes a raw stream (app.ts refuses octet-stream bodies everywhere else)
    { preHandler: guard('operator', 'release.artifact'), config: { rawBody: true } },
    async (req) => {
      const p = artifactParams(req);
      if (!req.headers['content-type']?.startsWith('application/octet-stream')) {
        throw new FleetwaveError('E_SCHEMA', 'send the artifact as application/octet-stream');
      }
      const r = await releases.putArtifact(p.name, p.version, p.artifact, req.body as NodeJS.ReadableStream as never);
      await api.auth.audit(req.caller!.actor, 'release.artifact', `${p.name}@${p.version}/${p.artifact}`, 'ok');
      return r;
    },
  );

  /** Devices download with their own credentials (HTTP Basic: device id and token); operators with a bearer token. */
  const downloadGuard = async (req: FastifyRequest) => {
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (basic) {
      const text = Buffer.from(basic, 'base64').toString('utf8');
      const i = text.indexOf(':');
      const principal = i > 0 ? await api.auth.mqtt(text.slice(0, i), text.slice(0, i), text.slice(i + 1)) : null;
      if (principal?.kind === 'device') return;
      throw new FleetwaveError('E_AUTH', 'device credentials are wrong');
    }
    await guard('viewer', 'release.download')(req);
  };

  app.get('/api/releases/:name/:version/artifacts/:artifact', { preHandler: downloadGuard }, async (req, reply) => {
    const p = artifactParams(req);
    const file = await releases.artifactFile(p.name, p.version, p.artifact);
    if (!file)
      throw new FleetwaveError('E_NOT_FOUND', `artifact ${p.artifact} of ${p.name}@${p.version} was not uploaded`);
    let range: [number, number] | null;
    try {
      range = parseRange(req.headers.range, file.size);
    } catch {
      return reply.status(416).header('content-range', `bytes */${file.size}`).send();
    }
    const [start, end] = range ?? [0, file.size - 1];
    reply
      .header('accept-ranges', 'bytes')
      .header('etag', `"${file.sha256}"`)
      .header('x-checksum-sha256', file.sha256)
      .header('content-type', 'application/octet-stream')
      .header('content-length', String(end - start + 1));
    if (range) reply.status(206).header('content-range', `bytes ${start}-${end}/${file.size}`);
    return reply.send(createReadStream(file.path, { start, end }));
  });

  const planOf = (body: unknown) => {
    const b = parseWith(PlanBody, body, 'plan request');
    return parseYamlWith(RolloutPlan, b.yaml, b.source ?? 'plan.yaml') as RolloutPlan;
  };
  const view = async (id: string, devices = false) => {
    const s = await rollouts.get(id);
    if (!s) throw new FleetwaveError('E_NOT_FOUND', `no rollout ${id}`);
    return rolloutView(s, await rollouts.executions(s), { devices });
  };

  app.post('/api/rollouts/plan', { preHandler: guard('viewer', 'rollout.plan') }, async (req) => {
    const s = await rollouts.preview(planOf(req.body));
    return rolloutView(s, { updates: new Map(), rollbacks: new Map() }, { devices: true });
  });

  app.post('/api/rollouts', { preHandler: guard('operator', 'rollout.apply') }, async (req, reply) => {
    const s = await rollouts.apply(planOf(req.body), req.caller!.actor);
    reply.status(201);
    return view(s.id);
  });

  app.get('/api/rollouts', { preHandler: guard('viewer', 'rollout.list') }, async () => ({
    rollouts: await Promise.all((await rollouts.list()).map(async (s) => rolloutView(s, await rollouts.executions(s)))),
  }));

  app.get('/api/rollouts/events', { preHandler: guard('viewer', 'rollout.events') }, async (req, reply) => {
    const q = req.query as { after?: string; rollout?: string };
    let after = Number(q.after ?? req.headers['last-event-id'] ?? 0) || 0;
    if (!(req.headers.accept ?? '').includes('text/event-stream')) {
      return { events: await deps.rolloutStore.events({ after, rollout: q.rollout }) };
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    // sent now, not with the first event: a client knows at once that it is connected
    res.write(': connected\n\n');
    const send = (e: RolloutEvent) => {
      if (e.id <= after || (q.rollout && e.rollout !== q.rollout)) return;
      after = e.id;
      res.write(`id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    const backlog: RolloutEvent[] = [];
    let live = false;
    const unsubscribe = deps.subscribeEvents((e) => (live ? send(e) : backlog.push(e)));
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    req.raw.on('close', () => {
      unsubscribe();
      clearInterval(keepAlive);
    });
    for (const e of await deps.rolloutStore.events({ after, rollout: q.rollout, limit: 100_000 })) send(e);
    live = true;
    for (const e of backlog.splice(0)) send(e);
  });

  app.get('/api/rollouts/:id', { preHandler: guard('viewer', 'rollout.status') }, async (req) => {
    const q = req.query as { devices?: string };
    return view((req.params as { id: string }).id, q.devices === '1' || q.devices === 'true');
  });

  app.post('/api/rollouts/:id/:command', { preHandler: guard('operator', 'rollout.command') }, async (req) => {
    const p = req.params as { id: string; command: string };
    const cmd = parseWith(Command, p.command, 'rollout command');
    const body = parseWith(CommandBody, req.body ?? {}, 'rollout command body');
    await rollouts.command(p.id, cmd, req.caller!.actor, body.wave);
    return view(p.id);
  });
}

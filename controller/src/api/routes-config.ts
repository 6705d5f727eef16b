import { ConfigLayer, FleetwaveError, parseWith } from '@fleetwave/shared';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ApiDeps, Guard } from './app.js';

const LayerName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'a layer name is lower-case [a-z0-9-]');

export function configRoutes(app: FastifyInstance, deps: ApiDeps, guard: Guard): void {
  const { config: svc } = deps;
  const store = deps.db.fleet;
  const nameOf = (params: unknown) => parseWith(LayerName, (params as { name?: unknown }).name, 'layer name');

  app.get('/api/config/layers', { preHandler: guard('viewer', 'config.list') }, async () => ({
    layers: await svc.layers(),
  }));

  app.post('/api/config/layers', { preHandler: guard('operator', 'config.apply') }, async (req) => {
    const r = await svc.apply(req.body, req.caller!.actor);
    return { layer: r.layer.name, changed: r.changed };
  });

  app.post('/api/config/diff', { preHandler: guard('viewer', 'config.diff') }, async (req) => {
    const layer = parseWith(ConfigLayer, req.body, 'config layer');
    return { layer: layer.name, devices: await svc.diff(layer.name, layer) };
  });

  app.delete('/api/config/layers/:name', { preHandler: guard('operator', 'config.remove') }, async (req) =>
    svc.remove(nameOf(req.params), req.caller!.actor),
  );

  app.post('/api/config/layers/:name/revert', { preHandler: guard('operator', 'config.revert') }, async (req) =>
    svc.revert(nameOf(req.params), req.caller!.actor),
  );

  app.get('/api/config/effective/:device', { preHandler: guard('viewer', 'config.effective') }, async (req) => {
    const id = String((req.params as { device: string }).device);
    return svc.effective(id);
  });

  app.get('/api/config/history', { preHandler: guard('viewer', 'config.history') }, async (req) => {
    const q = req.query as { name?: string; limit?: string };
    return { entries: await store.configHistory(Math.min(1000, Number(q.limit ?? 100) || 100), q.name) };
  });

  /** Devices whose applied configuration lags the desired one, or that rejected it. */
  app.get('/api/config/status', { preHandler: guard('viewer', 'config.status') }, async () => ({
    devices: (await store.listDevices())
      .filter((d) => d.revokedAt === null && d.desiredVersion > 0)
      .map((d) => ({
        device: d.id,
        desired: d.desiredVersion,
        applied: d.appliedConfigVersion,
        state:
          d.configStatus === 'rejected'
            ? 'rejected'
            : (d.appliedConfigVersion ?? 0) >= d.desiredVersion
              ? 'applied'
              : 'lagging',
        reason: d.configReason,
      })),
  }));

  app.get('/api/config/layers/:name', { preHandler: guard('viewer', 'config.show') }, async (req) => {
    const name = nameOf(req.params);
    const layer = (await svc.layers()).find((l) => l.name === name);
    if (!layer) throw new FleetwaveError('E_NOT_FOUND', `no layer ${name}`);
    return layer;
  });
}

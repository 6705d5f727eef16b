import { FleetwaveError, parseWith } from '@fleetwave/shared';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PredictionService } from '../predict/service.js';
import type { ApiDeps, Guard } from './app.js';

const Label = z.strictObject({
  status: z.enum(['failed', 'replaced']).default('failed'),
  mode: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'a mode is lower-case [a-z0-9-], e.g. flash-wear')
    .default('failure'),
  at: z.number().int().min(0).optional(),
  note: z.string().max(500).optional(),
});

const Learn = z.strictObject({
  horizon: z
    .string()
    .regex(/^\d+[hd]$/)
    .optional(),
  epochs: z.number().int().min(1).max(500).optional(),
});

/** Failure prediction: scores, labels (failed, replaced, candidates), the model, learning from the fleet. */
export function predictRoutes(app: FastifyInstance, deps: ApiDeps, p: PredictionService, guard: Guard): void {
  const known = async (id: string) => {
    if (!(await deps.db.fleet.getDevice(id))) throw new FleetwaveError('E_DEVICE_UNKNOWN', `no device ${id}`);
  };
  const modelView = () => {
    const m = p.model;
    return m
      ? { kind: m.kind, horizon: m.horizon, classes: m.classes, metrics: m.spec.metrics, trainedOn: m.trainedOn }
      : null;
  };

  app.get('/api/predict', { preHandler: guard('viewer', 'predict.status') }, async () => ({
    model: modelView(),
    threshold: p.threshold,
    scores: p.allScores(),
    labels: await p.labels(),
    candidates: await p.candidates(),
  }));

  app.post('/api/predict/score', { preHandler: guard('operator', 'predict.score') }, async () => {
    if (!p.model) throw new FleetwaveError('E_CONFIG_INVALID', 'no model: fleetwave predict train or learn first');
    return { scores: await p.scoreAll() };
  });

  app.put('/api/predict/model', { preHandler: guard('admin', 'predict.model') }, async (req) => {
    const m = await p.install(JSON.stringify(req.body), 'the uploaded model');
    await p.scoreAll();
    return { model: { kind: m.kind, horizon: m.horizon, classes: m.classes, trainedOn: m.trainedOn } };
  });

  app.post('/api/predict/learn', { preHandler: guard('operator', 'predict.learn') }, async (req) => {
    const b = parseWith(Learn, req.body ?? {}, 'learn request');
    const horizonMs = b.horizon && Number(b.horizon.slice(0, -1)) * (b.horizon.endsWith('d') ? 86_400_000 : 3_600_000);
    await p.learn({ ...(horizonMs && { horizonMs }), ...(b.epochs && { epochs: b.epochs }) });
    return { model: modelView(), scores: p.allScores() };
  });

  app.get('/api/devices/:id/health', { preHandler: guard('viewer', 'device.health') }, async (req) => {
    const { id } = req.params as { id: string };
    await known(id);
    const since = Number((req.query as { since?: string }).since ?? deps.now() - 7 * 86_400_000);
    if (!Number.isFinite(since)) throw new FleetwaveError('E_CONFIG_INVALID', 'since must be epoch milliseconds');
    return {
      device: id,
      samples: await p.history(id, since),
      score: p.score(id) ?? null,
      label: (await p.labels()).find((l) => l.device === id) ?? null,
    };
  });

  app.post('/api/devices/:id/failure', { preHandler: guard('operator', 'device.mark-failed') }, async (req) => {
    const { id } = req.params as { id: string };
    await known(id);
    const b = parseWith(Label, req.body ?? {}, 'failure label');
    await p.setLabel({
      device: id,
      ts: b.at ?? deps.now(),
      mode: b.mode,
      status: b.status,
      actor: req.caller!.actor,
      note: b.note ?? null,
    });
    return { labels: (await p.labels()).filter((l) => l.device === id) };
  });

  app.delete('/api/devices/:id/failure', { preHandler: guard('operator', 'device.unmark-failed') }, async (req) => {
    const { id } = req.params as { id: string };
    await known(id);
    if (!(await p.removeLabel(id))) throw new FleetwaveError('E_NOT_FOUND', `${id} has no failure label`);
    return { removed: id };
  });
}

import { z } from 'zod';
import { cronProblem } from '../windows.js';
import { Duration, ShortText } from './common.js';
import { SemVer } from './manifest.js';

const Percent = z.number().min(0).max(100);

export const Wave = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/)
      .optional(),
    count: z.number().int().min(1).max(1_000_000).optional(),
    percent: z.number().gt(0).max(100).optional(),
    bake: Duration.default(0),
    successThreshold: Percent.default(100),
    failureThreshold: z.strictObject({ percent: Percent, minFinished: z.number().int().min(1) }).optional(),
    deviceTimeout: Duration.prefault('1h'),
    retries: z.number().int().min(0).max(10).default(0),
    approval: z.boolean().default(false),
  })
  .refine((w) => (w.count === undefined) !== (w.percent === undefined), {
    message: 'a wave has exactly one of count or percent',
  });

export const MaintenanceWindow = z
  .strictObject({
    cron: z.string().min(9).max(128),
    duration: Duration,
    timezone: z.string().min(1).max(64).default('UTC'),
  })
  .superRefine((w, ctx) => {
    const problem = cronProblem(w.cron, w.timezone);
    if (problem)
      ctx.addIssue({ code: 'custom', message: problem, path: [problem.startsWith('unknown') ? 'timezone' : 'cron'] });
  });

/** A rollout plan as operators write it in YAML (issue "rollout waves" builds the engine). */
export const RolloutPlan = z.strictObject({
  apiVersion: z.literal('fleetwave/v1'),
  kind: z.literal('RolloutPlan'),
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'name must be lower-case [a-z0-9-], 1-64 characters'),
  release: z.strictObject({ name: ShortText, version: SemVer }),
  selector: z
    .strictObject({
      tags: z.record(ShortText, ShortText).optional(),
      groups: z.array(ShortText).optional(),
      hardware: z.array(ShortText).optional(),
      currentVersion: ShortText.optional(),
    })
    .default({}),
  waves: z.array(Wave).min(1).max(100),
  rate: z
    .strictObject({
      maxPerMinute: z.number().int().min(1).max(100_000),
      ramp: z
        .strictObject({
          baseRatePerMinute: z.number().int().min(1).max(100_000),
          incrementFactor: z.number().min(1.1).max(5),
          afterSucceeded: z.number().int().min(1),
        })
        .optional(),
    })
    .optional(),
  maintenanceWindows: z.array(MaintenanceWindow).max(32).default([]),
  onFailure: z.enum(['pause', 'abort', 'rollback']).default('pause'),
  /**
   * Before a wave is declared a success, the health of its updated devices is compared with the devices of the rollout
   * not updated yet (one-sided Mann-Whitney U per metric, Bonferroni-corrected); a significant degradation fails it.
   */
  healthGate: z
    .strictObject({
      metrics: z
        .array(
          z.union([
            ShortText,
            z.strictObject({ metric: ShortText, worse: z.enum(['higher', 'lower']).default('higher') }),
          ]),
        )
        .min(1)
        .max(16)
        .default(['agentRestarts', 'reconnects']),
      minSample: z.number().int().min(5).max(100_000).default(8),
      alpha: z.number().gt(0).max(0.2).default(0.01),
    })
    .optional(),
  /** Devices the predictor gives at least this failure risk go to the last wave, not the canary or early waves. */
  risk: z.strictObject({ deferAbove: z.number().gt(0).max(1) }).optional(),
});
export type RolloutPlan = z.infer<typeof RolloutPlan>;

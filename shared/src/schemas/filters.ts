import { z } from 'zod';
import { Duration, Quality } from './common.js';

const finite = z.number();

/**
 * Edge filter rules (issue "error-bounded edge reduction"). A rule applies to the streams its `match` selects
 * (segments joined by '/', `*` is one segment, `**` the rest); the first matching rule wins. Within a rule the steps
 * run in a fixed order: validate → alert (an extra record, at once) → window (aggregates every valid reading; the
 * readings themselves go on only with keepReadings) → heartbeat.minInterval → deadband or swingingDoor, where
 * heartbeat.maxInterval forces a report. agent/README.md states each filter's guarantee.
 */
export const FilterRule = z
  .strictObject({
    match: z
      .string()
      .max(200)
      .regex(/^([A-Za-z0-9_.-]+|\*|\*\*)(\/([A-Za-z0-9_.-]+|\*|\*\*))*$/, 'match must be stream segments, * or **'),
    validate: z
      .strictObject({
        min: finite.optional(),
        max: finite.optional(),
        units: z.array(z.string().max(32)).max(16).optional(),
        quality: z.array(Quality).min(1).optional(),
      })
      .refine((v) => v.min === undefined || v.max === undefined || v.min <= v.max, { message: 'min must be <= max' })
      .optional(),
    alert: z
      .strictObject({ above: finite.optional(), below: finite.optional(), hysteresis: z.number().min(0).default(0) })
      .refine((a) => a.above !== undefined || a.below !== undefined, { message: 'an alert needs above or below' })
      .optional(),
    heartbeat: z
      .strictObject({ minInterval: Duration.optional(), maxInterval: Duration.optional() })
      .refine((h) => h.minInterval === undefined || h.maxInterval === undefined || h.minInterval < h.maxInterval, {
        message: 'minInterval must be below maxInterval',
      })
      .optional(),
    deadband: z
      .union([
        z.strictObject({ absolute: z.number().gt(0) }),
        z
          .strictObject({ percent: z.number().gt(0).max(100), span: z.tuple([finite, finite]) })
          .refine((d) => d.span[1] > d.span[0], { message: 'span must be [low, high] with high > low' }),
      ])
      .optional(),
    swingingDoor: z
      .strictObject({
        deviation: z.number().gt(0),
        maxInterval: Duration.prefault('1h'),
        minInterval: Duration.default(0),
      })
      .optional(),
    window: z
      .strictObject({
        size: Duration.refine((ms) => ms > 0, 'window size must be positive'),
        quantiles: z.array(z.number().gt(0).lt(1)).max(16).default([]),
        /** How long after a window's end a reading still counts for it (readings later than that are counted late). */
        lateness: Duration.default(0),
        keepReadings: z.boolean().default(false),
      })
      .optional(),
    /**
     * Also send every raw reading of the stream, unfiltered, as `_raw/<stream>` at bulk priority (the first to go when
     * the outbox is full): to see, on the dashboard, what the filters keep against what they were given. For tuning.
     */
    mirrorRaw: z.boolean().default(false),
  })
  .refine((r) => !(r.deadband && r.swingingDoor), { message: 'a rule has deadband or swingingDoor, not both' })
  .refine((r) => !(r.heartbeat && r.swingingDoor), {
    message: 'swingingDoor has its own minInterval and maxInterval: do not combine it with heartbeat',
  });
export type FilterRule = z.infer<typeof FilterRule>;

export const FilterRules = z.array(FilterRule).max(1000);
export type FilterRules = z.infer<typeof FilterRules>;

/** A file of filter rules for `fleetwave-agent filters test` (the `filters:` section of an agent config). */
export const FilterRulesFile = z.strictObject({ filters: FilterRules });

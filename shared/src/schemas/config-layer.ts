import { z } from 'zod';
import { DeviceId, ShortText } from './common.js';
import { AgentTunables } from './device.js';

/** Which devices a layer applies to: all of the given conditions (an absent condition matches every device). */
export const DeviceSelector = z.strictObject({
  /** Every listed tag must have the listed value. A device's groups are its tags (e.g. `group: pumps`). */
  tags: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), ShortText).optional(),
  /** The device's hardware is one of these. */
  hardware: z
    .array(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/))
    .min(1)
    .max(64)
    .optional(),
  /** The device is one of these. */
  devices: z.array(DeviceId).min(1).max(10_000).optional(),
});
export type DeviceSelector = z.infer<typeof DeviceSelector>;

/**
 * A layer of desired configuration (`fleetwave config apply layer.yaml`). A device's effective configuration merges
 * every layer whose selector matches it, lowest priority first (controller/README.md states the rules).
 */
export const ConfigLayer = z.strictObject({
  apiVersion: z.literal('fleetwave/v1'),
  kind: z.literal('ConfigLayer'),
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'name must be lower-case [a-z0-9-], 1-64 characters'),
  priority: z.number().int().min(0).max(1_000_000),
  selector: DeviceSelector.default({}),
  config: AgentTunables,
});
export type ConfigLayer = z.infer<typeof ConfigLayer>;

import { z } from 'zod';
import { Count, EpochMs, ShortText } from './common.js';

/**
 * The kinds of event the controller records and sends on (the event log, `GET /api/rollouts/events`, the dashboard's
 * stream, webhooks): a rollout's and its waves', a device's, and a jobs execution's. A public wire format: a kind is
 * added here, never renamed.
 */
export const EVENT_KINDS = [
  'rollout.started',
  'rollout.device-deferred',
  'rollout.device-joined',
  'rollout.awaiting-approval',
  'rollout.approved',
  'rollout.paused',
  'rollout.resumed',
  'rollout.completed',
  'rollout.aborted',
  'rollout.rolling-back',
  'rollout.rolled-back',
  'wave.started',
  'wave.accepted',
  'wave.baking',
  'wave.health-checked',
  'wave.succeeded',
  'wave.failed',
  'device.rollback-impossible',
  'device.at-risk',
  'device.risk-cleared',
  'execution.changed',
] as const;
export const EventKind = z.enum(EVENT_KINDS);
export type EventKind = z.infer<typeof EventKind>;

/** One recorded event: `rollout` is empty for a fleet event (a device's risk); `details` depend on the kind. */
export const FleetEvent = z.strictObject({
  id: Count,
  ts: EpochMs,
  rollout: ShortText,
  kind: EventKind,
  details: z.record(z.string(), z.unknown()),
});
export type FleetEvent = z.infer<typeof FleetEvent>;

import { EventKind, FleetwaveError, RolloutPlan, SignedReleaseManifest } from '@fleetwave/shared';
import { z } from 'zod';
import type { RolloutState } from '../rollouts/rollout-state.js';

/**
 * The JSON the controller keeps in its databases is decoded with a schema on the way out (issue "its state on
 * PostgreSQL"): a document that does not match — written by a bug, edited by hand, or by a newer controller — is
 * refused with where it is, never handed on as if it were well-formed.
 */
export function decodeColumn<T extends z.ZodType>(schema: T, text: string, where: string): z.infer<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FleetwaveError('E_DATABASE_CORRUPT', `${where} is not JSON`);
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new FleetwaveError(
      'E_DATABASE_CORRUPT',
      `${where} does not match its schema: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : ''}`,
    );
  }
  return r.data;
}

export const JsonObject = z.record(z.string(), z.unknown());

/** A stored event's kind: one of shared's EVENT_KINDS, else the row is refused as corrupt (like any document). */
export function decodeEventKind(kind: string, where: string): EventKind {
  const r = EventKind.safeParse(kind);
  if (!r.success)
    throw new FleetwaveError('E_DATABASE_CORRUPT', `${where} has an unknown kind ${JSON.stringify(kind)}`);
  return r.data;
}
export const StringMap = z.record(z.string(), z.string());
/** Status details as stored (a device's, with the service's own `reason` added). */
export const StatusDetails = StringMap;
export const Manifest = SignedReleaseManifest;

const Member = z.object({
  device: z.string(),
  wave: z.number().int().min(0),
  hardware: z.string(),
  site: z.string(),
  fromVersion: z.string().nullable(),
});

const HealthVerdict = z.object({
  metric: z.string(),
  worse: z.enum(['higher', 'lower']),
  updated: z.number(),
  notUpdated: z.number(),
  medianUpdated: z.number().nullable(),
  medianNotUpdated: z.number().nullable(),
  p: z.number().nullable(),
  degraded: z.boolean(),
});

const Wave = z.object({
  status: z.enum(['pending', 'running', 'baking', 'succeeded', 'failed', 'accepted']),
  health: z.array(HealthVerdict).optional(),
  startedAt: z.number().optional(),
  bakeUntil: z.number().optional(),
  finishedAt: z.number().optional(),
  reason: z.string().optional(),
});

/** The persisted state of a rollout (rollout-state.ts `RolloutState`, a wire format). */
export const RolloutStateDocument = z.object({
  v: z.literal(1),
  id: z.string().min(1),
  plan: RolloutPlan,
  status: z.enum(['running', 'awaiting-approval', 'paused', 'completed', 'aborted', 'rolling-back', 'rolled-back']),
  reason: z.string().optional(),
  createdAt: z.number(),
  wave: z.number().int().min(0),
  waves: z.array(Wave),
  members: z.array(Member),
  approvals: z.array(z.number()),
  rate: z.object({ windowStart: z.number(), sent: z.number() }),
  rollbackStartedAt: z.number().optional(),
  rollbackSkipped: z.array(z.string()).optional(),
  deferred: z.array(z.object({ device: z.string(), risk: z.number() })).optional(),
}) satisfies z.ZodType<RolloutState>;

export const decodeRollout = (text: string, where: string): RolloutState =>
  decodeColumn(RolloutStateDocument, text, where) as RolloutState;

/** A health sample's metrics (numbers by name). */
export const Metrics = z.record(z.string(), z.number());

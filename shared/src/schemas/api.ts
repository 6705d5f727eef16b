import { z } from 'zod';
import { DeviceId, parseDurationMs, ShortText } from './common.js';

const Tags = z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'tag names are [A-Za-z0-9_.-]{1,64}'), ShortText);

const Hardware = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'hardware is [A-Za-z0-9._-]{1,64}');

/** POST /api/devices: register a device; the answer carries its token once. */
export const DeviceAddRequest = z.strictObject({
  id: DeviceId,
  tags: Tags.default({}),
  hardware: Hardware.optional(),
});

/**
 * POST /api/devices/<id>/certificate: a client certificate from the fleet CA, for the device's own CSR (its key stays
 * on the device) or, without one, with a key made by the controller and returned once.
 */
export const CertificateRequest = z.strictObject({
  csr: z.string().max(16_384).optional(),
  days: z.number().int().min(1).max(3650).default(365),
  /** Instead of days, e.g. "7d" or "30s" (short-lived certificates the agent renews by itself); at least 10 s. */
  validity: z
    .string()
    .regex(/^\d{1,9}(s|m|h|d)$/, 'validity must look like 30s, 15m, 2h or 7d')
    .transform((s) => parseDurationMs(s))
    .refine((ms) => ms >= 10_000 && ms <= 3650 * 86_400_000, 'validity must be from 10s to 3650d')
    .optional(),
});

/** POST /api/devices/<id>/certificates/revoke: one certificate (by fingerprint) or, without it, all of the device's. */
export const CertificateRevokeRequest = z.strictObject({
  fingerprint: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'a SHA-256 fingerprint: 64 lower-case hex digits')
    .optional(),
});

/** PATCH /api/devices/<id>: replace a device's tags, its hardware (null: none), or both. */
export const DeviceUpdateRequest = z
  .strictObject({ tags: Tags.optional(), hardware: Hardware.nullable().optional() })
  .refine((b) => b.tags !== undefined || b.hardware !== undefined, 'give tags, hardware or both');
export type DeviceUpdateRequest = z.infer<typeof DeviceUpdateRequest>;

/** POST /api/enrol: a gateway registers itself with a fleet enrolment token. */
export const EnrolRequest = z.strictObject({
  token: z.string().min(10).max(256),
  id: DeviceId,
  hardware: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .optional(),
});

/** POST /api/enrolment-tokens */
export const EnrolmentTokenRequest = z.strictObject({
  uses: z.number().int().min(1).max(100_000).default(1),
  tags: Tags.default({}),
  expiresInHours: z
    .number()
    .int()
    .min(1)
    .max(24 * 365)
    .optional(),
});

/** POST /api/tokens */
export const ApiTokenRequest = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'name is [A-Za-z0-9_.-]{1,64}'),
  role: z.enum(['viewer', 'operator', 'admin', 'backend']),
});

/** Query of GET /api/telemetry and /api/telemetry/stream */
export const TelemetryQueryParams = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  device: DeviceId.optional(),
  stream: z.string().max(200).optional(),
  /** `newest`: the last `limit` records after the cursor (still in cursor order) instead of the first. */
  pick: z.enum(['oldest', 'newest']).default('oldest'),
});

import { z } from 'zod';

/** A device id doubles as an AWS IoT thing name: `[a-zA-Z0-9:_-]{1,128}`. */
export const DeviceId = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'device id must match [a-zA-Z0-9:_-]{1,128}');
/** Milliseconds since the epoch (integers; anything past year 275760 is not a date). */
export const EpochMs = z.number().int().min(0).max(8.64e15);
/** A stream name: segments of [A-Za-z0-9_.-] joined by '/', at most 200 characters. */
export const StreamName = z
  .string()
  .max(200)
  .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'stream must be segments of [A-Za-z0-9_.-] joined by /');
export const Sequence = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
export const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const Priority = z.enum(['alert', 'event', 'telemetry', 'bulk']);
export type Priority = z.infer<typeof Priority>;
/** Highest first: alert > event > telemetry > bulk. The index is the storage rank (0 leaves first). */
export const PRIORITIES: readonly Priority[] = Object.freeze(['alert', 'event', 'telemetry', 'bulk']);
export const Quality = z.enum(['good', 'uncertain', 'bad']);
export const ShortText = z.string().max(256);
/** Durations as a number of milliseconds, or a string such as `500ms`, `30s`, `15m`, `2h`, `7d`. */
export const Duration = z.union([
  z
    .number()
    .int()
    .min(0)
    .max(365 * 24 * 3600 * 1000),
  z
    .string()
    .regex(/^\d{1,9}(ms|s|m|h|d)$/, 'duration must look like 500ms, 30s, 15m, 2h or 7d')
    .transform((s) => parseDurationMs(s)),
]);

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export function parseDurationMs(s: string): number {
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(s);
  if (!m) throw new Error(`not a duration: ${s}`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

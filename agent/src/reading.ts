import { decodeJson, FleetwaveError } from '@fleetwave/shared';

export interface Reading {
  value: number;
  ts: number;
  quality?: 'good' | 'uncertain' | 'bad';
  unit?: string;
}

export interface ReadingLimits {
  maxPayloadBytes: number;
  maxClockSkewMs: number;
}

/**
 * Parses what a sensor published: a bare number (`21.5`) or a small JSON object (value, ts, quality, unit).
 * Throws E_PAYLOAD_TOO_LARGE, E_PAYLOAD_ENCODING, E_PAYLOAD_JSON, E_SCHEMA, E_READING_VALUE or E_READING_TIMESTAMP.
 */
export function parseReading(payload: Uint8Array, now: number, limits: ReadingLimits): Reading {
  if (payload.byteLength > limits.maxPayloadBytes) {
    throw new FleetwaveError(
      'E_PAYLOAD_TOO_LARGE',
      `reading of ${payload.byteLength} bytes exceeds ${limits.maxPayloadBytes}`,
    );
  }
  const raw = decodeJson(payload, { maxBytes: limits.maxPayloadBytes });
  let reading: Reading;
  if (typeof raw === 'number') {
    reading = { value: raw, ts: now };
  } else if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    reading = checkSensorPayload(raw as Record<string, unknown>, now);
  } else {
    throw new FleetwaveError('E_READING_VALUE', 'a reading is a number or an object with a numeric value');
  }
  if (!Number.isFinite(reading.value)) throw new FleetwaveError('E_READING_VALUE');
  if (Math.abs(reading.ts - now) > limits.maxClockSkewMs) {
    throw new FleetwaveError(
      'E_READING_TIMESTAMP',
      `timestamp ${reading.ts} is more than ${limits.maxClockSkewMs} ms from now`,
    );
  }
  return reading;
}

const QUALITIES = new Set(['good', 'uncertain', 'bad']);
const FIELDS = new Set(['value', 'ts', 'quality', 'unit']);

/**
 * The hot path's check of a reading object, by hand: what shared's SensorPayload schema accepts, and the same E_SCHEMA
 * error with every issue, without zod's cost per reading (bench/README.md, "What the agent costs"). A test holds it
 * to the schema on generated objects (reading.test.ts).
 */
export function checkSensorPayload(o: Record<string, unknown>, now: number): Reading {
  const issues: { path: string[]; message: string }[] = [];
  const { value, ts, quality, unit } = o;
  if (typeof value !== 'number' || !Number.isFinite(value))
    issues.push({ path: ['value'], message: 'expected a finite number' });
  if (ts !== undefined && !(typeof ts === 'number' && Number.isInteger(ts) && ts >= 0 && ts <= 8.64e15))
    issues.push({ path: ['ts'], message: 'expected an integer of milliseconds since the epoch, 0 to 8.64e15' });
  if (quality !== undefined && !(typeof quality === 'string' && QUALITIES.has(quality)))
    issues.push({ path: ['quality'], message: 'expected one of "good", "uncertain", "bad"' });
  if (unit !== undefined && !(typeof unit === 'string' && unit.length <= 32))
    issues.push({ path: ['unit'], message: 'expected a string of at most 32 characters' });
  for (const k of Object.keys(o))
    if (!FIELDS.has(k)) issues.push({ path: [], message: `unrecognized key: "${k.slice(0, 64)}"` });
  if (issues.length) {
    const text = issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
    throw new FleetwaveError('E_SCHEMA', `reading is invalid: ${text}`, { issues });
  }
  const reading: Reading = { value: value as number, ts: (ts as number | undefined) ?? now };
  if (quality) reading.quality = quality as NonNullable<Reading['quality']>;
  if (unit) reading.unit = unit as string;
  return reading;
}

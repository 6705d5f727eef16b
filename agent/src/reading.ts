import { decodeJson, FleetwaveError, parseWith, SensorPayload } from '@fleetwave/shared';

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
    const p = parseWith(SensorPayload, raw, 'reading');
    reading = { value: p.value, ts: p.ts ?? now };
    if (p.quality) reading.quality = p.quality;
    if (p.unit) reading.unit = p.unit;
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

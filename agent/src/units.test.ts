import { FleetwaveError } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { parseReading } from './reading.js';
import { compileStreamMap } from './streams.js';
import { backoffDelay } from './uplink/backoff.js';

const limits = { maxPayloadBytes: 256, maxClockSkewMs: 1000 };
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as FleetwaveError).code;
  }
  return 'accepted';
};

describe('parseReading', () => {
  it('accepts a bare number or a small object', () => {
    expect(parseReading(Buffer.from('21.5'), 5000, limits)).toEqual({ value: 21.5, ts: 5000 });
    expect(parseReading(Buffer.from('{"value":-1e3,"ts":4500,"quality":"bad","unit":"C"}'), 5000, limits)).toEqual({
      value: -1000,
      ts: 4500,
      quality: 'bad',
      unit: 'C',
    });
  });

  it('refuses each kind of bad reading with its own code', () => {
    expect(code(() => parseReading(Buffer.from('"hot"'), 0, limits))).toBe('E_READING_VALUE');
    expect(code(() => parseReading(Buffer.from('[1]'), 0, limits))).toBe('E_READING_VALUE');
    expect(code(() => parseReading(Buffer.from('NaN'), 0, limits))).toBe('E_PAYLOAD_JSON');
    expect(code(() => parseReading(Buffer.from('1e999'), 0, limits))).toBe('E_READING_VALUE');
    expect(code(() => parseReading(Buffer.from('{"value":"1"}'), 0, limits))).toBe('E_SCHEMA');
    expect(code(() => parseReading(Buffer.from('{"value":1,"extra":2}'), 0, limits))).toBe('E_SCHEMA');
    expect(code(() => parseReading(Buffer.alloc(300, 0x31), 0, limits))).toBe('E_PAYLOAD_TOO_LARGE');
    expect(code(() => parseReading(Buffer.from([0xff, 0x31]), 0, limits))).toBe('E_PAYLOAD_ENCODING');
    expect(code(() => parseReading(Buffer.from('{"value":1,"ts":99999}'), 0, limits))).toBe('E_READING_TIMESTAMP');
    expect(code(() => parseReading(Buffer.from('{"value":1,"ts":-5}'), 0, limits))).toBe('E_SCHEMA');
  });
});

describe('stream mapping', () => {
  const map = compileStreamMap([
    { pattern: 'alarms/{sensor}', stream: '{sensor}/alarm', priority: 'alert', ttl: undefined },
    { pattern: 'sensors/{sensor}/{metric}', stream: '{sensor}/{metric}', priority: 'telemetry', ttl: 60_000 },
  ]);

  it('maps topics to streams by the first matching pattern', () => {
    expect(map('sensors/boiler/temp')).toEqual({
      stream: 'boiler/temp',
      priority: 'telemetry',
      rank: 2,
      ttlMs: 60_000,
    });
    expect(map('alarms/door')).toMatchObject({ stream: 'door/alarm', rank: 0 });
  });

  it('refuses topics that match nothing or give a bad stream name', () => {
    expect(code(() => map('sensors/boiler'))).toBe('E_TOPIC_UNMAPPED');
    expect(code(() => map('other/x/y'))).toBe('E_TOPIC_UNMAPPED');
    expect(code(() => map('sensors/bo iler/temp'))).toBe('E_TOPIC_SEGMENT');
  });

  it('refuses a stream template that uses an uncaptured name', () => {
    expect(() => compileStreamMap([{ pattern: 'a/{x}', stream: '{y}', priority: 'bulk', ttl: undefined }])).toThrow(
      FleetwaveError,
    );
  });
});

describe('backoffDelay', () => {
  it('doubles from the minimum, is capped, and jitters within the upper half', () => {
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, 100, 1000, () => 1))).toEqual([100, 200, 400, 800]);
    expect(backoffDelay(10, 100, 1000, () => 1)).toBe(1000);
    expect(backoffDelay(10, 100, 1000, () => 0)).toBe(500);
    expect(backoffDelay(1000, 100, 1000, () => 0.5)).toBe(750);
  });
});

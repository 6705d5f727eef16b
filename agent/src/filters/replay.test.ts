import { FilterRule } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { parseReadingsCsv } from './csv.js';
import { reconstruct, replayStream } from './replay.js';

describe('replay', () => {
  it('reconstructs by linear interpolation or step-hold', () => {
    const sent = [
      { ts: 0, value: 0 },
      { ts: 10, value: 10 },
    ];
    expect(reconstruct(sent, 5, 'linear')).toBe(5);
    expect(reconstruct(sent, 5, 'step')).toBe(0);
    expect(reconstruct(sent, 10, 'linear')).toBe(10);
    expect(reconstruct(sent, 15, 'linear')).toBe(10);
    expect(reconstruct(sent, -1, 'linear')).toBeUndefined();
  });

  it('measures reduction and error against the valid input', () => {
    const input = [0, 0.2, 0.4, 3, 3.1, 99].map((value, i) => ({ ts: i * 1000, value }));
    const rules = [FilterRule.parse({ match: 'a/*', validate: { max: 50 }, deadband: { absolute: 1 } })];
    const r = replayStream(rules, 'a/b', input);
    expect(r).toMatchObject({ readingsIn: 6, readingsOut: 2, reduction: 3, reconstruction: 'step', rule: 'a/*' });
    expect(r.maxError).toBeCloseTo(0.4);
    expect(r.dropped).toEqual({ deadband: 3, 'validate.range': 1 });
    expect(replayStream(rules, 'other', input)).toMatchObject({ readingsOut: 6, maxError: 0, rule: '(none)' });
  });

  it('reads ts,stream,value CSV and names the line of a bad row', () => {
    const m = parseReadingsCsv('ts,stream,value\n1000,a/b,1.5\n2026-01-01T00:00:00Z,a/b,2\n');
    expect(m.get('a/b')).toEqual([
      { ts: 1000, value: 1.5 },
      { ts: Date.parse('2026-01-01T00:00:00Z'), value: 2 },
    ]);
    expect(() => parseReadingsCsv('ts,stream,value\n1,a,x\n', 'r.csv')).toThrow(/r\.csv:2:/);
    expect(() => parseReadingsCsv('time,value\n', 'r.csv')).toThrow(/header/);
  });
});

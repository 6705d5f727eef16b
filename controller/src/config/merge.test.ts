import { ConfigLayer } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { assertNoConflicts, conflicts, effectiveConfig, selectorMatches, selectorsOverlap } from './merge.js';

const layer = (name: string, priority: number, selector: object, config: object) =>
  ConfigLayer.parse({ apiVersion: 'fleetwave/v1', kind: 'ConfigLayer', name, priority, selector, config });
const dev = (id: string, tags: Record<string, string>, hardware: string | null = 'rpi4') => ({ id, tags, hardware });

describe('configuration layers', () => {
  const base = layer(
    'base',
    0,
    {},
    { backlogIntervalMs: 60_000, filters: [{ match: '**', deadband: { absolute: 1 } }] },
  );
  const north = layer(
    'north',
    10,
    { tags: { site: 'north' } },
    { backlogIntervalMs: 10_000, filters: [{ match: 'pump/*', swingingDoor: { deviation: 0.1 } }] },
  );
  const pi5 = layer('pi5', 20, { hardware: ['rpi5'] }, { filters: [{ match: '**', deadband: { absolute: 0.1 } }] });

  it('merges lowest priority first; a higher layer wins each field and each filter rule by match', () => {
    const e = effectiveConfig([pi5, base, north], dev('gw-1', { site: 'north' }, 'rpi5'));
    expect(e.layers).toEqual(['base', 'north', 'pi5']);
    expect(e.config.backlogIntervalMs).toBe(10_000);
    expect(e.config.filters!.map((r) => [r.match, r.deadband ?? r.swingingDoor])).toEqual([
      ['**', { absolute: 0.1 }],
      ['pump/*', { deviation: 0.1, maxInterval: 3_600_000, minInterval: 0 }],
    ]);
    expect(e.provenance).toEqual({ backlogIntervalMs: 'north', 'filters[**]': 'pi5', 'filters[pump/*]': 'north' });
    expect(effectiveConfig([pi5, base, north], dev('gw-2', { site: 'south' })).layers).toEqual(['base']);
    expect(effectiveConfig([], dev('gw-3', {}))).toEqual({ config: {}, provenance: {}, layers: [] });
  });

  it('selects by tags, hardware and device ids', () => {
    expect(
      selectorMatches({ tags: { site: 'north', group: 'pumps' } }, dev('a', { site: 'north', group: 'pumps' })),
    ).toBe(true);
    expect(selectorMatches({ tags: { site: 'north' } }, dev('a', {}))).toBe(false);
    expect(selectorMatches({ hardware: ['rpi5'] }, dev('a', {}, null))).toBe(false);
    expect(selectorMatches({ devices: ['a'] }, dev('a', {}))).toBe(true);
    expect(selectorsOverlap({ tags: { site: 'north' } }, { tags: { site: 'south' } })).toBe(false);
    expect(selectorsOverlap({ tags: { site: 'north' } }, { hardware: ['rpi4'] })).toBe(true);
    expect(selectorsOverlap({ hardware: ['rpi4'] }, { hardware: ['rpi5'] })).toBe(false);
  });

  it('refuses equal-priority layers that set the same field for the same devices, with a clear error', () => {
    const a = layer('a', 5, { tags: { site: 'north' } }, { backlogIntervalMs: 1000 });
    const b = layer('b', 5, { hardware: ['rpi4'] }, { backlogIntervalMs: 2000 });
    const c = layer('c', 5, { tags: { site: 'south' } }, { backlogIntervalMs: 3000 });
    const d = layer('d', 5, {}, { healthIntervalMs: 5000 });
    expect(conflicts([a, b])).toHaveLength(1);
    expect(conflicts([a, c, d])).toEqual([]);
    expect(() => assertNoConflicts([a, b])).toThrow(
      /layers a and b both have priority 5.*backlogIntervalMs.*another priority/,
    );
  });

  it('does not depend on the order the layers are given in', () => {
    const all = [base, north, pi5];
    const d = dev('gw', { site: 'north' }, 'rpi5');
    const want = effectiveConfig(all, d);
    for (const order of [
      [2, 1, 0],
      [1, 0, 2],
      [0, 2, 1],
    ])
      expect(
        effectiveConfig(
          order.map((i) => all[i]!),
          d,
        ),
      ).toEqual(want);
  });
});

import { describe, expect, it } from 'vitest';
import { backoffDelay, reconnectDelay } from './backoff.js';

describe('reconnect delays', () => {
  const o = { backoffMinMs: 500, backoffMaxMs: 30_000, reconnectSpreadMs: 3000 };

  it('spreads the first attempt after a working connection over the whole window', () => {
    expect(reconnectDelay(true, 0, o, () => 0)).toBe(0);
    expect(reconnectDelay(true, 0, o, () => 0.5)).toBe(1500);
    expect(reconnectDelay(true, 0, o, () => 0.999)).toBe(2997);
    // 1,000 agents losing the broker at once: spread over the window, not within the backoff's first half second
    let seed = 1;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return (seed - 1) / 2147483646;
    };
    const delays = Array.from({ length: 1000 }, () => reconnectDelay(true, 0, o, random));
    const perSecond = [0, 1, 2].map((s) => delays.filter((d) => d >= s * 1000 && d < (s + 1) * 1000).length);
    for (const n of perSecond) expect(n).toBeGreaterThan(250);
  });

  it('backs off while attempts fail, and without a window at all', () => {
    expect(reconnectDelay(false, 0, o, () => 1)).toBe(backoffDelay(0, 500, 30_000, () => 1));
    expect(reconnectDelay(false, 3, o, () => 0)).toBe(2000);
    expect(reconnectDelay(true, 0, { ...o, reconnectSpreadMs: 0 }, () => 1)).toBe(500);
    expect(backoffDelay(20, 500, 30_000, () => 1)).toBe(30_000);
  });
});

import { describe, expect, it } from 'vitest';
import { mannWhitneyGreater, normalCdf } from './mann-whitney.js';

describe('Mann-Whitney U (one-sided)', () => {
  it('matches reference values', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-2.326348)).toBeCloseTo(0.01, 6);
    // scipy.stats.mannwhitneyu([5..14], [1..10], alternative='greater', method='asymptotic') → U=82, p=0.0085033
    const r = mannWhitneyGreater([5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(r.u).toBe(82);
    expect(r.p).toBeCloseTo(0.0085033, 6);
  });
  it('gives p = 1 for identical samples and is not fooled by the other direction', () => {
    expect(mannWhitneyGreater([0, 0, 0, 0], [0, 0, 0, 0]).p).toBe(1);
    expect(mannWhitneyGreater([1, 2, 3], [7, 8, 9]).p).toBeGreaterThan(0.9);
  });
});

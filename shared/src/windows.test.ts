import { describe, expect, it } from 'vitest';
import { anyWindowAt, cronProblem, windowAt } from './windows.js';

const t = (iso: string) => Date.parse(iso);

describe('maintenance windows', () => {
  const nightly = { cron: '0 2 * * *', duration: 2 * 3_600_000, timezone: 'Europe/Berlin' };

  it('is open from each occurrence for its duration, in the window time zone', () => {
    // 02:00 in Berlin in winter is 01:00 UTC
    expect(windowAt(nightly, t('2026-01-10T00:59:59Z'))).toEqual({ open: false, opensAt: t('2026-01-10T01:00:00Z') });
    expect(windowAt(nightly, t('2026-01-10T01:00:00Z'))).toEqual({ open: true, closesAt: t('2026-01-10T03:00:00Z') });
    expect(windowAt(nightly, t('2026-01-10T02:59:59Z')).open).toBe(true);
    expect(windowAt(nightly, t('2026-01-10T03:00:00Z'))).toEqual({ open: false, opensAt: t('2026-01-11T01:00:00Z') });
    // summer time: 02:00 Berlin is 00:00 UTC
    expect(windowAt(nightly, t('2026-07-10T00:30:00Z')).open).toBe(true);
  });

  it('combines windows, and no window means always open', () => {
    expect(anyWindowAt([], 0)).toEqual({ open: true });
    const weekend = { cron: '0 0 * * 6', duration: 86_400_000, timezone: 'UTC' };
    expect(anyWindowAt([nightly, weekend], t('2026-01-10T12:00:00Z')).open).toBe(true); // a Saturday
    expect(anyWindowAt([nightly, weekend], t('2026-01-12T12:00:00Z'))).toEqual({
      open: false,
      opensAt: t('2026-01-13T01:00:00Z'),
    });
  });

  it('names what is wrong with a cron expression or time zone', () => {
    expect(cronProblem('0 2 * * *', 'UTC')).toBeUndefined();
    expect(cronProblem('0 25 * * *', 'UTC')).toMatch(/cron expression "0 25 \* \* \*" is invalid/);
    expect(cronProblem('0 2 * * *', 'Mars/Base')).toBe('unknown time zone "Mars/Base"');
  });
});

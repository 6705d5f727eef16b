import type { Failure, History, Series } from './history.js';

/** The C-MAPSS sensors that change over an engine's life in FD001 (the others are constant there). */
export const CMAPSS_SENSORS = [2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21] as const;

/**
 * NASA's C-MAPSS run-to-failure text format (unit, cycle, 3 settings, 21 sensors; space-separated) as a history in
 * cycles, each unit failing after its last cycle.
 */
export function cmapssHistory(text: string): { history: History; failures: Failure[] } {
  const metrics = CMAPSS_SENSORS.map((s) => `s${s}`);
  const units = new Map<string, Series>();
  for (const line of text.split('\n')) {
    const cells = line.trim().split(/\s+/).map(Number);
    if (cells.length < 26 || cells.some((c) => !Number.isFinite(c))) continue;
    const device = `unit-${cells[0]}`;
    const s = units.get(device) ?? { device, t: [], metrics: Object.fromEntries(metrics.map((m) => [m, []])) };
    s.t.push(cells[1]!);
    CMAPSS_SENSORS.forEach((sensor, j) => {
      s.metrics[metrics[j]!]!.push(cells[4 + sensor]!);
    });
    units.set(device, s);
  }
  const series = [...units.values()];
  return {
    history: { metrics, series, cycles: true },
    failures: series.map((s) => ({ device: s.device, time: s.t[s.t.length - 1]!, mode: 'failure' })),
  };
}

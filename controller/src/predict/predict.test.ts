import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteDatabase } from '../store/sqlite-database.js';
import { backtestRisk, scoreSeries, trainRisk } from './evaluate.js';
import { type FeatureSpec, featureNames, SeriesIndex } from './features.js';
import { healthSeries } from './health-store.js';
import { failuresCsv, historyCsv, parseFailuresCsv, parseHistoryCsv, unwrapCounter } from './history.js';
import { Predictor } from './model.js';
import { FAILURE_MODES, simulateFleet } from './simulator.js';

const DAY = 86_400_000;
const spec = (metrics: string[]): FeatureSpec => ({
  metrics,
  windows: [DAY, 3 * DAY, 7 * DAY],
  unit: DAY,
  withAge: false,
});

describe('history CSV', () => {
  it('reads the generic format (any row order, gaps carried forward) and names the line of bad input', () => {
    const h = parseHistoryCsv(
      'device,time,cpuTempC,reconnects\ngw-1,2026-01-01T01:00:00Z,51,\ngw-1,2026-01-01T00:00:00Z,50,3\ngw-2,2026-01-01T00:00:00Z,40,0\n',
    );
    expect(h.cycles).toBe(false);
    expect(h.series[0]).toEqual({
      device: 'gw-1',
      t: [Date.parse('2026-01-01T00:00:00Z'), Date.parse('2026-01-01T01:00:00Z')],
      metrics: { cpuTempC: [50, 51], reconnects: [3, 3] },
    });
    expect(parseHistoryCsv('device,time,s2\nu1,1,641.8\nu1,2,642.1\n').cycles).toBe(true);
    expect(() => parseHistoryCsv('id,when,x\n')).toThrow(/history\.csv:1: the header must start with device,time/);
    expect(() => parseHistoryCsv('device,time,x\ngw-1,2026-01-01T00:00:00Z,hot\n')).toThrow(
      /:2: x "hot" is not a number/,
    );
    expect(() => parseHistoryCsv('device,time,x\ngw-1,yesterday,1\n')).toThrow(/:2: time "yesterday"/);
    expect(() => parseHistoryCsv('device,time,x\ngw-1,1,1\ngw-1,2026-01-01T00:00:00Z,1\n')).toThrow(
      /mix dates and cycle/,
    );
    expect(
      parseFailuresCsv('device,time,mode\ngw-1,2026-01-02T00:00:00Z,thermal\ngw-2,2026-01-03T00:00:00Z,\n'),
    ).toEqual([
      { device: 'gw-1', time: Date.parse('2026-01-02T00:00:00Z'), mode: 'thermal' },
      { device: 'gw-2', time: Date.parse('2026-01-03T00:00:00Z'), mode: 'failure' },
    ]);
  });

  it('unwraps counters that start again from zero (a reboot), in CSV and in the stored history', async () => {
    expect(unwrapCounter([0, 2, 5, 1, 3, 0, 0, 4])).toEqual([0, 2, 5, 6, 8, 8, 8, 12]);
    const h = parseHistoryCsv('device,time,linkChanges,cpuTempC\ngw-1,1,4,50\ngw-1,2,6,52\ngw-1,3,1,40\ngw-1,4,2,41\n');
    // the counter goes on counting; a level (temperature) is left as it is
    expect(h.series[0]!.metrics).toEqual({ linkChanges: [4, 6, 7, 8], cpuTempC: [50, 52, 40, 41] });
    const db = new SqliteDatabase(join(mkdtempSync(join(tmpdir(), 'fw-unwrap-')), 'fleet.db'));
    try {
      const store = db.health;
      const reports: Record<string, number>[] = [
        { reconnects: 3, mmcErrors: 10, load1: 0.5 },
        { reconnects: 5, mmcErrors: 12, load1: 0.7 },
        { reconnects: 0, mmcErrors: 1, load1: 0.2 }, // the machine rebooted
        { reconnects: 2, load1: 0.3 }, // mmcErrors unreadable: carried forward
      ];
      for (const [i, m] of reports.entries()) await store.add('gw-1', 1000 * (i + 1), m);
      const s = await healthSeries(store, 'gw-1', 0, ['reconnects', 'mmcErrors', 'load1']);
      expect(s.metrics).toEqual({ reconnects: [3, 5, 5, 7], mmcErrors: [10, 12, 13, 13], load1: [0.5, 0.7, 0.2, 0.3] });
    } finally {
      await db.close();
    }
  });

  it('round-trips the simulator through CSV', () => {
    const { history, failures } = simulateFleet({ devices: 4, days: 12, seed: 3 });
    const again = parseHistoryCsv(historyCsv(history));
    expect(again.series.map((s) => s.t.length)).toEqual(history.series.map((s) => s.t.length));
    expect(again.series[0]!.metrics.cpuTempC![5]).toBeCloseTo(history.series[0]!.metrics.cpuTempC![5]!, 2);
    expect(parseFailuresCsv(failuresCsv(failures))).toEqual(failures);
  });
});

describe('features', () => {
  it('look only at the past: a sample added later changes no feature of an earlier time', () => {
    const { history } = simulateFleet({ devices: 1, days: 20, seed: 5 });
    const s = history.series[0]!;
    const sp = spec(history.metrics);
    const short = {
      ...s,
      t: s.t.slice(0, 200),
      metrics: Object.fromEntries(Object.entries(s.metrics).map(([k, v]) => [k, v.slice(0, 200)])),
    };
    const full = new SeriesIndex(s, sp).featuresAt(199);
    expect(new SeriesIndex(short, sp).featuresAt(199)).toEqual(full);
    expect(full).toHaveLength(featureNames(sp).length);
    // a counter's change over a day is the events in that day
    const idx = featureNames(sp).indexOf(`reconnects.change@${DAY}`);
    const r = s.metrics.reconnects!;
    const dayAgo = s.t.findIndex((t) => t > s.t[199]! - DAY);
    expect(full[idx]).toBe(r[199]! - r[dayAgo]!);
  });
});

describe('the simulator', () => {
  it('is the same for the same seed, fails the share asked for, across every mode', () => {
    const a = simulateFleet({ devices: 20, days: 40, seed: 9 });
    expect(simulateFleet({ devices: 20, days: 40, seed: 9 })).toEqual(a);
    expect(a.failures).toHaveLength(6);
    expect(new Set(a.failures.map((f) => f.mode))).toEqual(new Set(FAILURE_MODES.slice(0, 5)));
    // a failed device's history ends at its failure
    for (const f of a.failures) {
      const s = a.history.series.find((x) => x.device === f.device)!;
      expect(s.t[s.t.length - 1]!).toBeLessThan(f.time);
    }
  });
});

describe('the risk model', () => {
  it('learns the failure modes of a simulated fleet: cross-validated precision and recall, the mode, the signals', async () => {
    const { history, failures } = simulateFleet({ devices: 100, days: 60, seed: 11 });
    const o = { horizon: 7 * DAY, step: 12 * 3_600_000, spec: spec(history.metrics), train: { epochs: 15 } };
    const [r] = await backtestRisk(history, failures, { ...o, folds: 2, thresholds: [0.8] });
    expect(r!.failures).toBe(30);
    // a small fleet and two folds: well below what the benchmark reaches, well above chance
    expect(r!.recall).toBeGreaterThanOrEqual(0.7);
    expect(r!.precision).toBeGreaterThanOrEqual(0.6);
    expect(r!.modeAccuracy).toBeGreaterThanOrEqual(0.7);
    expect(r!.medianLeadTime!).toBeGreaterThan(DAY);

    // scored at its last sample (just before it fails), a thermal device is at risk because of heat and load
    const model = await trainRisk(history, failures, o);
    const p = new Predictor(model);
    const thermal = failures.find((f) => f.mode === 'thermal')!;
    const s = history.series.find((x) => x.device === thermal.device)!;
    const healthy = history.series.find((x) => !failures.some((f) => f.device === x.device))!;
    const [hot, fine] = scoreSeries(p, [s, healthy]);
    expect(hot!.risk).toBeGreaterThan(0.8);
    expect(hot!.mode).toBe('thermal');
    expect(['cpuTempC', 'load1']).toContain(hot!.signals[0]!.metric);
    expect(fine!.risk).toBeLessThan(0.5);
    // the model file carries everything a scorer needs
    const again = new Predictor(JSON.parse(JSON.stringify(model)));
    expect(scoreSeries(again, [s])[0]!.risk).toBeCloseTo(hot!.risk, 5);
    p.dispose();
    again.dispose();
  }, 180_000);
});

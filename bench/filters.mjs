// Filter benchmarks: pipeline throughput, and reduction against error on NASA C-MAPSS FD001 (../shared/data).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FilterEngine, replayStream } from '@fleetwave/agent';
import { FilterRule } from '@fleetwave/shared';

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const CMAPSS = fileURLToPath(new URL('../../shared/data/cmapss/train_FD001.txt', import.meta.url));

export function benchFilterThroughput(n = 1_000_000) {
  console.log(`\n# filter pipeline throughput: ${fmt(n)} readings over 100 streams, in process`);
  const settings = {
    'all filters (validate, alert, window 1m with p50/p95, heartbeat, deadband)': {
      match: '**',
      validate: { min: -1e6, max: 1e6, quality: ['good', 'uncertain'] },
      alert: { above: 1e5, hysteresis: 1 },
      heartbeat: { minInterval: 0, maxInterval: '5m' },
      deadband: { absolute: 0.5 },
      window: { size: '1m', quantiles: [0.5, 0.95], keepReadings: true },
    },
    'swinging door (deviation 0.5)': { match: '**', swingingDoor: { deviation: 0.5 } },
    'no rule (pass-through)': null,
  };
  for (const [name, r] of Object.entries(settings)) {
    const engine = new FilterEngine(r ? [FilterRule.parse(r)] : []);
    const routes = Array.from({ length: 100 }, (_, i) => ({
      stream: `s${i}/v`,
      priority: 'telemetry',
      rank: 2,
      ttlMs: undefined,
    }));
    let out = 0;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const k = i % 100;
      out += engine.process(routes[k], { ts: 1_700_000_000_000 + i * 10, value: Math.sin(i / 1000 + k) * 10 }).length;
      if (i % 10_000 === 9_999) engine.takeDirty(); // the outbox serialises dirty states once per commit
    }
    const s = (performance.now() - t0) / 1000;
    console.log(`${name}: ${fmt(n / s)} readings/s (${fmt(out)} rows out, state JSON once per 10,000 readings)`);
  }
}

export function benchCmapss() {
  if (!existsSync(CMAPSS)) {
    console.log(`\n# C-MAPSS reduction: skipped, ${CMAPSS} not found`);
    return;
  }
  const rows = readFileSync(CMAPSS, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number));
  const series = new Map();
  const lo = Array(21).fill(Infinity);
  const hi = Array(21).fill(-Infinity);
  for (const r of rows) {
    const [unit, cycle] = r;
    for (let s = 0; s < 21; s++) {
      const v = r[5 + s];
      lo[s] = Math.min(lo[s], v);
      hi[s] = Math.max(hi[s], v);
      const key = `unit${unit}/sensor${s + 1}`;
      if (!series.has(key)) series.set(key, []);
      series.get(key).push({ ts: cycle * 1000, value: v });
    }
  }
  const varying = [...Array(21).keys()].filter((s) => hi[s] > lo[s]);
  console.log(
    `\n# reduction against error: NASA C-MAPSS FD001 train (${fmt(rows.length)} cycles, 100 units); each unit's sensor is a stream (ts = cycle)`,
  );
  console.log(
    `${varying.length} of 21 sensors vary (${21 - varying.length} are constant and left out); errors are in % of each sensor's span (max − min over the data set)`,
  );
  // how noisy the signals are: the RMS of first differences, in % of span, averaged over the varying sensors
  const noise = varying.map((s) => {
    let sq = 0;
    let n = 0;
    for (let u = 1; u <= 100; u++) {
      const x = series.get(`unit${u}/sensor${s + 1}`);
      for (let i = 1; i < x.length; i++) {
        sq += (x[i].value - x[i - 1].value) ** 2;
        n++;
      }
    }
    return (Math.sqrt(sq / n) / (hi[s] - lo[s])) * 100;
  });
  console.log(
    `cycle-to-cycle noise (RMS of first differences): ${(noise.reduce((a, b) => a + b, 0) / noise.length).toFixed(1)}% of span on average, min ${Math.min(...noise).toFixed(1)}%`,
  );
  const settings = [
    [
      'swinging door, deviation 0.5% of span',
      (span) => ({ swingingDoor: { deviation: span * 0.005, maxInterval: '1d' } }),
      0.5,
    ],
    [
      'swinging door, deviation 1% of span',
      (span) => ({ swingingDoor: { deviation: span * 0.01, maxInterval: '1d' } }),
      1,
    ],
    [
      'swinging door, deviation 2% of span',
      (span) => ({ swingingDoor: { deviation: span * 0.02, maxInterval: '1d' } }),
      2,
    ],
    [
      'swinging door, deviation 5% of span',
      (span) => ({ swingingDoor: { deviation: span * 0.05, maxInterval: '1d' } }),
      5,
    ],
    [
      'swinging door, deviation 10% of span',
      (span) => ({ swingingDoor: { deviation: span * 0.1, maxInterval: '1d' } }),
      10,
    ],
    ['deadband, 1% of span', (span) => ({ deadband: { absolute: span * 0.01 } }), 1],
    ['deadband, 5% of span', (span) => ({ deadband: { absolute: span * 0.05 } }), 5],
  ];
  for (const [name, make, bound] of settings) {
    let tin = 0;
    let tout = 0;
    let maxPct = 0;
    let sqPct = 0;
    let n = 0;
    let within = true;
    for (const s of varying) {
      const span = hi[s] - lo[s];
      const rule = FilterRule.parse({ match: '**', ...make(span) });
      for (let u = 1; u <= 100; u++) {
        const input = series.get(`unit${u}/sensor${s + 1}`);
        const r = replayStream([rule], 'x', input);
        tin += r.readingsIn;
        tout += r.readingsOut;
        const pct = (r.maxError / span) * 100;
        maxPct = Math.max(maxPct, pct);
        sqPct += ((r.rmsError / span) * 100) ** 2 * input.length;
        n += input.length;
        if (pct > bound * (1 + 1e-9)) within = false;
      }
    }
    console.log(
      `${name}: kept ${fmt(tout)} of ${fmt(tin)} (${(tin / tout).toFixed(1)}x reduction), max error ${maxPct.toFixed(3)}% of span, RMS ${Math.sqrt(sqPct / n).toFixed(3)}%; every stream within its bound: ${within ? 'yes' : 'NO'}`,
    );
  }
}

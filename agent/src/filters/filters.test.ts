import { FilterRule } from '@fleetwave/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bandOf, exceedsBand } from './deadband.js';
import { FilterEngine } from './engine.js';
import { applyRule, finishRule, initialState, tickRule } from './rule.js';
import { initialSwingingDoor, type SwingingDoorState, swingingDoor, swingingDoorFinish } from './swinging-door.js';
import type { Emission, Sample } from './types.js';
import { aggregate, initialWindow, quantileKey, windowAdd, windowFinish } from './window.js';

/** Arbitrary series: strictly increasing irregular timestamps; monotone, noisy, constant and spiky shapes. */
const series = fc
  .tuple(
    fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 300 }),
    fc.constantFrom('noisy', 'monotone', 'constant', 'spiky', 'random'),
    fc.double({ min: -1e6, max: 1e6, noNaN: true }),
    fc.integer({ min: 0, max: 2 ** 31 }),
  )
  .map(([gaps, shape, rawBase, seed]) => {
    // -0 becomes 0 here: filter state is persisted as JSON, which keeps no negative zero, so a resumed engine would
    // report 0 where a running one reports -0 (the same reading; seen once with a constant -0 series)
    const base = rawBase === 0 ? 0 : rawBase;
    let t = 1_700_000_000_000;
    let x = seed;
    const rnd = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x / 2 ** 31;
    };
    return gaps.map((g, i): Sample => {
      t += g;
      const value =
        shape === 'constant'
          ? base
          : shape === 'monotone'
            ? base + i * 0.37
            : shape === 'noisy'
              ? base + Math.sin(i / 10) * 5 + (rnd() - 0.5)
              : shape === 'spiky'
                ? base + (rnd() < 0.05 ? 1000 * (rnd() - 0.5) : rnd())
                : (rnd() - 0.5) * 2000;
      return { ts: t, value };
    });
  });

const rule = (r: unknown) => FilterRule.parse(r);
const readingsOf = (out: Emission[]) => out.flatMap((e) => (e.kind === 'reading' ? [e.sample] : []));

function run(r: FilterRule, input: Sample[]) {
  let s = initialState(r);
  const out: Emission[] = [];
  const dropped: string[] = [];
  for (const p of input) {
    const res = applyRule(r, s, p);
    s = res.state;
    out.push(...res.out);
    if (res.dropped) dropped.push(res.dropped);
  }
  return { out, state: s, dropped };
}

describe('deadband', () => {
  it('is strict against the last reported value, and treats float noise at the boundary as equal to the band', () => {
    expect(exceedsBand(1.2, 1.3, 0.1)).toBe(false); // 1.3 − 1.2 = 0.10000000000000009 in doubles
    expect(exceedsBand(1.2, 1.30000001, 0.1)).toBe(true);
    expect(exceedsBand(0, 0.1, 0.1)).toBe(false); // equal is not more
    expect(exceedsBand(10, 9.8, 0.1)).toBe(true);
    expect(bandOf({ percent: 1, span: [0, 200] })).toBe(2);
    const r = rule({ match: '**', deadband: { absolute: 0.5 } });
    const { out } = run(
      r,
      [0, 0.3, 0.5, 0.6, 0.2, 1.2, 1.0].map((value, i) => ({ ts: i + 1, value })),
    );
    // compared with the last *reported* value: 0 → (0.3, 0.5 within) → 0.6 reported → 0.2 within → 1.2 reported
    expect(readingsOf(out).map((s) => s.value)).toEqual([0, 0.6, 1.2]);
  });

  it('guarantees a step-hold reconstruction within the band for any series', () => {
    fc.assert(
      fc.property(series, fc.double({ min: 0.001, max: 100, noNaN: true }), (input, band) => {
        const { out } = run(rule({ match: '**', deadband: { absolute: band } }), input);
        const sent = readingsOf(out);
        let k = -1;
        for (const p of input) {
          while (k + 1 < sent.length && sent[k + 1]!.ts <= p.ts) k++;
          const last = sent[k]!;
          const tol = 1e-9 * Math.max(Math.abs(last.value), Math.abs(p.value), band);
          if (Math.abs(p.value - last.value) > band + tol) return false;
        }
        return true;
      }),
    );
  });
});

describe('heartbeat', () => {
  it('drops readings faster than minInterval and reports one at least every maxInterval while readings come', () => {
    fc.assert(
      fc.property(
        series,
        fc.integer({ min: 1, max: 3000 }),
        fc.integer({ min: 3001, max: 20_000 }),
        (input, min, max) => {
          const r = rule({
            match: '**',
            deadband: { absolute: 1e9 },
            heartbeat: { minInterval: min, maxInterval: max },
          });
          const sent = readingsOf(run(r, input).out);
          for (let i = 1; i < sent.length; i++) if (sent[i]!.ts - sent[i - 1]!.ts < min) return false;
          let last = sent[0]!.ts;
          for (const p of input) {
            const reported = sent.some((s) => s.ts === p.ts);
            if (p.ts - last >= max && !reported) return false;
            if (reported) last = p.ts;
          }
          return true;
        },
      ),
    );
  });
});

function sdtRun(cfg: { deviation: number; maxInterval: number; minInterval: number }, input: Sample[]) {
  let s: SwingingDoorState = initialSwingingDoor();
  const archived: Sample[] = [];
  for (const p of input) {
    const r = swingingDoor(cfg, s, p);
    s = r.state;
    archived.push(...r.archive);
  }
  archived.push(...swingingDoorFinish(s).archive);
  return archived;
}

describe('swinging door', () => {
  it('keeps every dropped reading within the deviation of the line between the archived readings around it', () => {
    fc.assert(
      fc.property(
        series,
        fc.double({ min: 1e-3, max: 500, noNaN: true }),
        fc.integer({ min: 1, max: 1e6 }),
        (input, dev, maxI) => {
          const archived = sdtRun({ deviation: dev, maxInterval: maxI, minInterval: 0 }, input);
          expect(archived[0]).toEqual(input[0]);
          expect(archived.at(-1)).toEqual(input.at(-1));
          let k = 0;
          for (const p of input) {
            while (k + 1 < archived.length && archived[k + 1]!.ts < p.ts) k++;
            const a = archived[k]!;
            const b = archived[k + 1];
            if (p.ts === a.ts || (b && p.ts === b.ts)) continue;
            const line = a.value + ((b!.value - a.value) * (p.ts - a.ts)) / (b!.ts - a.ts);
            const tol = 1e-9 * Math.max(1, Math.abs(p.value), Math.abs(a.value), Math.abs(b!.value));
            if (Math.abs(p.value - line) > dev + tol) return false;
          }
          return true;
        },
      ),
    );
  });

  it('works a hand example: a ramp is two points, a step keeps its corners', () => {
    const ramp = [0, 1, 2, 3, 4, 5].map((v, i) => ({ ts: (i + 1) * 1000, value: v }));
    expect(sdtRun({ deviation: 0.1, maxInterval: 1e9, minInterval: 0 }, ramp).map((s) => s.value)).toEqual([0, 5]);
    const step = [0, 0, 0, 10, 10, 10].map((v, i) => ({ ts: (i + 1) * 1000, value: v }));
    expect(sdtRun({ deviation: 0.5, maxInterval: 1e9, minInterval: 0 }, step).map((s) => [s.ts, s.value])).toEqual([
      [1000, 0],
      [3000, 0],
      [4000, 10],
      [6000, 10],
    ]);
  });

  it('archives at least every maxInterval, honours minInterval, and drops out-of-order readings', () => {
    const flat = Array.from({ length: 10 }, (_, i) => ({ ts: (i + 1) * 1000, value: 1 }));
    expect(sdtRun({ deviation: 1, maxInterval: 3000, minInterval: 0 }, flat).map((s) => s.ts)).toEqual([
      1000, 4000, 7000, 10_000,
    ]);
    const s0 = swingingDoor(
      { deviation: 1, maxInterval: 1e9, minInterval: 5000 },
      initialSwingingDoor(),
      flat[0]!,
    ).state;
    expect(swingingDoor({ deviation: 1, maxInterval: 1e9, minInterval: 5000 }, s0, flat[1]!).dropped).toBe(
      'swingingDoor.minInterval',
    );
    expect(swingingDoor({ deviation: 1, maxInterval: 1e9, minInterval: 0 }, s0, { ts: 500, value: 3 }).dropped).toBe(
      'outOfOrder',
    );
  });
});

function naiveWindows(input: Sample[], size: number, quantiles: number[]) {
  const by = new Map<number, number[]>();
  for (const p of input) {
    const start = Math.floor(p.ts / size) * size;
    by.set(start, [...(by.get(start) ?? []), p.value]);
  }
  return [...by.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([start, values]) => {
      const sum = values.reduce((s, v) => s + v, 0);
      const mean = sum / values.length;
      const sorted = [...values].sort((a, b) => a - b);
      const q = (p: number) => {
        const pos = (sorted.length - 1) * p;
        const lo = Math.floor(pos);
        return sorted[lo]! + (sorted[Math.ceil(pos)]! - sorted[lo]!) * (pos - lo);
      };
      return {
        from: start,
        to: start + size,
        count: values.length,
        min: Math.min(...values),
        max: Math.max(...values),
        mean,
        last: values.at(-1)!,
        stddev: Math.sqrt(values.reduce((s, v) => s + (v - mean) * (v - mean), 0) / values.length),
        late: 0,
        quantiles: Object.fromEntries(quantiles.map((p) => [quantileKey(p), q(p)])),
      };
    });
}

describe('windowed aggregates', () => {
  it('agree exactly with a naive recomputation over the same readings', () => {
    fc.assert(
      fc.property(series, fc.integer({ min: 100, max: 60_000 }), (input, size) => {
        const cfg = { size, lateness: 0, quantiles: [0.5, 0.9, 0.99] };
        let s = initialWindow();
        const aggs = [];
        for (const p of input) {
          const r = windowAdd(cfg, s, p);
          s = r.state;
          aggs.push(...r.closed);
        }
        aggs.push(...windowFinish(cfg, s).closed);
        expect(aggs).toEqual(naiveWindows(input, size, cfg.quantiles));
      }),
    );
  });

  it('counts a reading for a closed window as late, and closes windows on tick', () => {
    const cfg = { size: 1000, lateness: 0, quantiles: [] };
    let s = initialWindow();
    s = windowAdd(cfg, s, { ts: 1500, value: 1 }).state;
    const closed = windowAdd(cfg, s, { ts: 2100, value: 2 });
    expect(closed.closed.map((a) => [a.from, a.count])).toEqual([[1000, 1]]);
    const late = windowAdd(cfg, closed.state, { ts: 1999, value: 9 });
    expect(late.late).toBe(true);
    const r = rule({ match: '**', window: { size: 1000 } });
    const t = tickRule(r, { ...initialState(r), win: late.state }, 3000);
    expect(t.out).toMatchObject([{ kind: 'aggregate', agg: { from: 2000, count: 1, late: 1 } }]);
    expect(aggregate({ start: 0, values: [1, 2, 3, 4], last: 4, lastTs: 4 }, 10, 0, [0.5]).quantiles).toEqual({
      p50: 2.5,
    });
  });

  it('waits for late readings within lateness', () => {
    const cfg = { size: 1000, lateness: 500, quantiles: [] };
    let s = initialWindow();
    s = windowAdd(cfg, s, { ts: 1500, value: 1 }).state;
    const r1 = windowAdd(cfg, s, { ts: 2100, value: 2 });
    expect(r1.closed).toEqual([]);
    const r2 = windowAdd(cfg, r1.state, { ts: 1900, value: 3 });
    expect(r2.late).toBe(false);
    const r3 = windowAdd(cfg, r2.state, { ts: 2600, value: 4 });
    expect(r3.closed.map((a) => [a.from, a.count, a.mean])).toEqual([[1000, 2, 2]]);
  });
});

describe('threshold alerts', () => {
  it('fire once on crossing, clear with hysteresis, and go out whatever the other filters decide', () => {
    const r = rule({ match: '**', alert: { above: 80, hysteresis: 5 }, deadband: { absolute: 1000 } });
    const { out } = run(
      r,
      [70, 81, 90, 78, 74, 82].map((value, i) => ({ ts: i + 1, value })),
    );
    const alerts = out.flatMap((e) => (e.kind === 'reading' && e.alert ? [e.sample.value] : []));
    expect(alerts).toEqual([81, 74, 82]);
    expect(readingsOf(out.filter((e) => e.kind === 'reading' && !e.alert)).map((s) => s.value)).toEqual([70]);
  });
});

describe('validation', () => {
  it('drops out-of-range, wrong-unit, bad-quality and non-finite readings with their reason', () => {
    const r = rule({ match: '**', validate: { min: 0, max: 100, units: ['C'], quality: ['good'] } });
    const input: Sample[] = [
      { ts: 1, value: 50 },
      { ts: 2, value: 150 },
      { ts: 3, value: 50, unit: 'F' },
      { ts: 4, value: 50, quality: 'bad' },
      { ts: 5, value: Number.NaN },
      { ts: 6, value: 20, unit: 'C', quality: 'good' },
    ];
    const res = run(r, input);
    expect(readingsOf(res.out).map((s) => s.ts)).toEqual([1, 6]);
    expect(res.dropped).toEqual(['validate.range', 'validate.unit', 'validate.quality', 'validate.range']);
  });
});

describe('FilterEngine', () => {
  const route = { stream: 'boiler/temp', priority: 'telemetry' as const, rank: 2, ttlMs: undefined };
  const rules = [
    rule({
      match: 'boiler/*',
      alert: { above: 100, hysteresis: 1 },
      swingingDoor: { deviation: 0.5 },
      window: { size: 10_000, keepReadings: true, quantiles: [0.5] },
    }),
  ];

  it('mirrors every raw reading as _raw/<stream> at bulk priority when the rule asks, beside what the filter keeps', () => {
    const e = new FilterEngine([rule({ match: 'boiler/*', deadband: { absolute: 1 }, mirrorRaw: true })]);
    const rows = [20, 20.3, 20.6, 21.5, 21.6].flatMap((value, i) => e.process(route, { ts: 1000 * (i + 1), value }));
    const raw = rows.filter((r) => r.record.stream === '_raw/boiler/temp');
    const kept = rows.filter((r) => r.record.stream === 'boiler/temp');
    expect(raw).toHaveLength(5);
    expect(raw.every((r) => r.rank === 3)).toBe(true); // bulk: sent last, dropped first
    expect(kept).toHaveLength(2); // 20 and 21.5: the others are within the deadband
    // without the flag, nothing extra
    const plain = new FilterEngine([rule({ match: 'boiler/*', deadband: { absolute: 1 } })]);
    expect(plain.process(route, { ts: 1, value: 1 }).every((r) => r.record.stream === 'boiler/temp')).toBe(true);
  });

  it('keeps its state JSON-clean (no Infinity or NaN that JSON would turn into null)', () => {
    const e = new FilterEngine(rules);
    for (let i = 0; i < 50; i++) e.process(route, { ts: 1000 * (i + 1), value: Math.sin(i) * 200 });
    for (const [, json] of e.takeDirty()) expect(JSON.stringify(JSON.parse(json!))).toBe(json);
    const fresh = JSON.stringify(initialState(rules[0]!));
    expect(JSON.parse(fresh)).toEqual(initialState(rules[0]!));
  });

  it('resumes from persisted state exactly as if it had never stopped', () => {
    fc.assert(
      fc.property(series, fc.nat(), (input, cut) => {
        const whole = new FilterEngine(rules);
        const expected = input.flatMap((p) => whole.process(route, p));
        const first = new FilterEngine(rules);
        const k = cut % input.length;
        const rows = input.slice(0, k).flatMap((p) => first.process(route, p));
        const saved = new Map(first.takeDirty().flatMap(([s, j]) => (j ? [[s, j] as [string, string]] : [])));
        const second = new FilterEngine(rules, saved);
        rows.push(...input.slice(k).flatMap((p) => second.process(route, p)));
        expect(rows).toEqual(expected);
      }),
    );
  });

  it('passes streams without a rule through, rolls back on request, and emits what it holds when rules change', () => {
    const e = new FilterEngine(rules);
    expect(e.process({ ...route, stream: 'other/x' }, { ts: 1, value: 2 })).toHaveLength(1);
    e.process(route, { ts: 1000, value: 1 });
    e.takeDirty();
    e.settle(); // the transaction that stored those states committed
    e.process(route, { ts: 2000, value: 5 }); // held by the swinging door
    e.rollback();
    expect(e.takeDirty()).toEqual([]);
    e.process(route, { ts: 2000, value: 5 });
    const flushed = e.replace([]);
    expect(flushed.map((r) => r.record.kind).sort()).toEqual(['aggregate', 'reading']);
    expect(finishRule(rules[0]!, initialState(rules[0]!))).toEqual([]);
  });
});

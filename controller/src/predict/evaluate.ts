import { createHash } from 'node:crypto';
import { median } from '../rollouts/mann-whitney.js';
import { type FeatureSpec, SeriesIndex } from './features.js';
import type { Failure, History, Series } from './history.js';
import { type ModelFile, Predictor, type TrainOptions, train } from './model.js';

export interface RiskOptions {
  /** Predict failures within this time (history units). */
  horizon: number;
  /** Evaluate every this much time (history units). */
  step: number;
  spec: FeatureSpec;
  train?: TrainOptions;
  /** Train on one in this many 'none' examples (default 3). */
  negativeEvery?: number;
}

const DAY = 86_400_000;

/** The risk model's defaults for dated health histories: failure within 7 days, scored every 12 h, 1/3/7-day windows. */
export function riskDefaults(metrics: string[], epochs = 20): RiskOptions {
  return {
    horizon: 7 * DAY,
    step: 12 * 3_600_000,
    spec: { metrics, windows: [DAY, 3 * DAY, 7 * DAY], unit: DAY, withAge: false },
    train: { epochs },
  };
}

/** Evaluation points of a series: every `step`, after the shortest window has filled, before the failure. */
function points(idx: SeriesIndex, step: number, warmup: number, until = Number.POSITIVE_INFINITY): number[] {
  const t = idx.series.t;
  const out: number[] = [];
  let next = (t[0] ?? 0) + warmup;
  for (let i = 0; i < t.length; i++) {
    if (t[i]! >= until) break;
    if (t[i]! >= next) {
      out.push(i);
      next = t[i]! + step;
    }
  }
  return out;
}

/** Training examples of the risk model: class 0 'none', else the mode of a failure within the horizon. */
export function riskExamples(h: History, failures: readonly Failure[], o: RiskOptions, classes: string[]) {
  const failed = new Map(failures.map((f) => [f.device, f]));
  const x: number[][] = [];
  const y: number[] = [];
  for (const s of h.series) {
    const idx = new SeriesIndex(s, o.spec);
    const f = failed.get(s.device);
    // a device that did not fail may still fail right after its history ends: its last horizon is left out
    const until = f ? f.time : (s.t[s.t.length - 1] ?? 0) - o.horizon;
    for (const i of points(idx, o.step, o.spec.windows[0]!, until)) {
      x.push(idx.featuresAt(i));
      y.push(f && f.time - s.t[i]! <= o.horizon ? classes.indexOf(f.mode) : 0);
    }
  }
  return { x, y };
}

export async function trainRisk(h: History, failures: readonly Failure[], o: RiskOptions): Promise<ModelFile> {
  const classes = ['none', ...[...new Set(failures.map((f) => f.mode))].sort()];
  const all = riskExamples(h, failures, o, classes);
  // most examples are 'none' and alike: keep every failure example and one in `negativeEvery` of the others
  const every = o.negativeEvery ?? 3;
  const keep = all.y.map((c, i) => c !== 0 || i % every === 0);
  const x = all.x.filter((_, i) => keep[i]);
  const y = all.y.filter((_, i) => keep[i]);
  // failures are rare: weigh each class by how rare it is (capped)
  const counts = classes.map((_, c) => y.filter((v) => v === c).length);
  const classWeight = Object.fromEntries(
    counts.map((n, c) => [c, n === 0 ? 1 : Math.min(20, y.length / classes.length / n)]),
  );
  return train(
    'risk',
    o.spec,
    x,
    y,
    { classes, horizon: o.horizon, devices: h.series.length },
    {
      classWeight,
      ...o.train,
    },
  );
}

/** A device's risk now (at its last sample): probability of failing within the horizon, likely mode, signals. */
export interface RiskScore {
  device: string;
  at: number;
  risk: number;
  mode: string | null;
  /** The metrics that drove the score most (the score without them, by how much it drops). */
  signals: { metric: string; contribution: number }[];
}

/**
 * Scores rows of features: the risk, the likeliest mode, and which metrics drove it — each metric's own evidence:
 * the risk with every feature at the fleet's mean except that metric's, less the risk with all at the mean (so two
 * signals that tell the same story, heat and load, are both named rather than each hiding the other).
 */
export function scoreRows(p: Predictor, rows: number[][], devices: string[], at: number[]): RiskScore[] {
  const file = p.file;
  const classes = file.classes!;
  const risk = (probs: number[]) => 1 - probs[0]!;
  const base = p.predict(rows);
  const metrics = file.spec.metrics;
  const neutral = risk(p.predict([file.norm.mean])[0]!);
  const solo = metrics.map((m) => {
    const cols = new Set(file.features.flatMap((f, j) => (f.startsWith(`${m}.`) ? [j] : [])));
    const only = rows.map((r) => r.map((v, j) => (cols.has(j) ? v : file.norm.mean[j]!)));
    return p.predict(only).map((probs) => risk(probs) - neutral);
  });
  return rows.map((_, k) => {
    const probs = base[k]!;
    let best = 1;
    for (let c = 2; c < classes.length; c++) if (probs[c]! > probs[best]!) best = c;
    const r = risk(probs);
    return {
      device: devices[k]!,
      at: at[k]!,
      risk: r,
      mode: classes.length > 1 ? classes[best]! : null,
      signals: metrics
        .map((metric, j) => ({ metric, contribution: solo[j]![k]! }))
        .filter((s) => s.contribution > 0.05)
        .sort((a, b) => b.contribution - a.contribution)
        .slice(0, 3),
    };
  });
}

/** Scores every series at its last sample. */
export function scoreSeries(p: Predictor, series: readonly Series[]): RiskScore[] {
  const withData = series.filter((s) => s.t.length > 0);
  const rows = withData.map((s) => new SeriesIndex(s, p.file.spec).featuresAt(s.t.length - 1));
  return scoreRows(
    p,
    rows,
    withData.map((s) => s.device),
    withData.map((s) => s.t[s.t.length - 1]!),
  );
}

/** Splits devices into k folds by a hash of their names (stable across runs). */
export function folds<T extends { device: string }>(items: readonly T[], k: number): T[][] {
  const out: T[][] = Array.from({ length: k }, () => []);
  const sorted = [...items].sort((a, b) => hash(a.device) - hash(b.device));
  sorted.forEach((s, i) => {
    out[i % k]!.push(s);
  });
  return out;
}

const hash = (s: string) => createHash('sha256').update(s).digest().readUInt32BE(0);

export interface RiskBacktest {
  horizon: number;
  threshold: number;
  folds: number;
  devices: number;
  failures: number;
  alerts: number;
  truePositiveAlerts: number;
  detected: number;
  precision: number;
  recall: number;
  /** Median time from the first alert of a detected failure to the failure (history units). */
  medianLeadTime: number | null;
  /** Of the detected failures, the share whose first alert named the right mode. */
  modeAccuracy: number | null;
}

/**
 * Alerts from a device's scores over time, as the controller raises them: an alert begins when the risk is at or above
 * the threshold on `confirm` consecutive evaluations, and ends when it falls below the threshold minus `hysteresis`.
 */
export function alerts(
  scores: readonly RiskScore[],
  threshold: number,
  confirm = 2,
  hysteresis = 0.15,
): { start: RiskScore; end: number }[] {
  const out: { start: RiskScore; end: number }[] = [];
  let above = 0;
  let open: { start: RiskScore; end: number } | undefined;
  for (const sc of scores) {
    above = sc.risk >= threshold ? above + 1 : 0;
    if (!open && above >= confirm) {
      open = { start: sc, end: Number.POSITIVE_INFINITY };
      out.push(open);
    } else if (open && sc.risk < threshold - hysteresis) {
      open.end = sc.at;
      open = undefined;
    }
  }
  return out;
}

/**
 * Cross-validation over devices: each fold's devices are scored by a model trained on the others, every `step` of
 * their history. An alert (see `alerts`) is right if the device fails while it is raised or within the horizon after
 * it was raised. Recall: failures with a right alert; lead time: from when it was raised to the failure. One result
 * per threshold.
 */
export async function backtestRisk(
  h: History,
  failures: readonly Failure[],
  o: RiskOptions & { folds: number; thresholds: number[]; progress?: (line: string) => void },
): Promise<RiskBacktest[]> {
  const failed = new Map(failures.map((f) => [f.device, f]));
  const scored: { device: string; scores: RiskScore[] }[] = [];
  const parts = folds(h.series, o.folds);
  for (const [k, test] of parts.entries()) {
    const model = await trainRisk({ ...h, series: parts.filter((_, j) => j !== k).flat() }, failures, o);
    const p = new Predictor(model);
    for (const s of test) {
      const idx = new SeriesIndex(s, o.spec);
      const at = points(idx, o.step, o.spec.windows[0]!, failed.get(s.device)?.time);
      const rows = at.map((i) => idx.featuresAt(i));
      scored.push({
        device: s.device,
        scores: scoreRows(
          p,
          rows,
          at.map(() => s.device),
          at.map((i) => s.t[i]!),
        ),
      });
    }
    p.dispose();
    o.progress?.(`fold ${k + 1}/${o.folds} scored (${test.length} devices)`);
  }
  const nFailures = h.series.filter((s) => failed.has(s.device)).length;
  return o.thresholds.map((threshold) => {
    let nAlerts = 0;
    let tp = 0;
    let detected = 0;
    let rightMode = 0;
    const leads: number[] = [];
    for (const { device, scores } of scored) {
      const f = failed.get(device);
      const raised = alerts(scores, threshold);
      nAlerts += raised.length;
      // right if the device failed while the alert was raised, or within the horizon after it was raised
      const hits = raised.filter((a) => f && f.time >= a.start.at && f.time <= Math.max(a.start.at + o.horizon, a.end));
      tp += hits.length;
      if (f && hits[0]) {
        detected++;
        leads.push(f.time - hits[0].start.at);
        if (hits[0].start.mode === f.mode) rightMode++;
      }
    }
    return {
      horizon: o.horizon,
      threshold,
      folds: o.folds,
      devices: h.series.length,
      failures: nFailures,
      alerts: nAlerts,
      truePositiveAlerts: tp,
      detected,
      precision: nAlerts === 0 ? 0 : tp / nAlerts,
      recall: nFailures === 0 ? 0 : detected / nFailures,
      medianLeadTime: median(leads),
      modeAccuracy: detected === 0 ? null : rightMode / detected,
    };
  });
}

export interface RulOptions {
  spec: FeatureSpec;
  /** The remaining life is learned capped here (default 125 cycles, the usual choice for C-MAPSS). */
  cap: number;
  /** Use every n-th sample for training (1: all). */
  stride: number;
  train?: TrainOptions;
}

export function rulExamples(h: History, failures: readonly Failure[], o: RulOptions) {
  const failed = new Map(failures.map((f) => [f.device, f]));
  const x: number[][] = [];
  const y: number[] = [];
  for (const s of h.series) {
    const f = failed.get(s.device);
    if (!f) continue;
    const idx = new SeriesIndex(s, o.spec);
    for (let i = 0; i < s.t.length; i += o.stride) {
      x.push(idx.featuresAt(i));
      y.push(Math.min(o.cap, f.time - s.t[i]!));
    }
  }
  return { x, y };
}

export async function trainRul(h: History, failures: readonly Failure[], o: RulOptions): Promise<ModelFile> {
  const { x, y } = rulExamples(h, failures, o);
  return train('rul', o.spec, x, y, { rulCap: o.cap, devices: h.series.length }, o.train);
}

export interface RulBacktest {
  folds: number;
  devices: number;
  points: number;
  /** RMSE against the true remaining life. */
  rmse: number;
  /** RMSE against the true remaining life capped like the target (how most papers report it). */
  rmseCapped: number;
  cap: number;
}

/**
 * Cross-validation over units of run-to-failure data: each held-out unit is cut at `perUnit` points chosen at random
 * (seeded) with a true remaining life of 1 to `maxRul`, like the published test sets, and the model trained on the
 * other units predicts the remaining life there.
 */
export async function backtestRul(
  h: History,
  failures: readonly Failure[],
  o: RulOptions & { folds: number; perUnit: number; maxRul: number; seed: number; progress?: (l: string) => void },
): Promise<RulBacktest> {
  const failed = new Map(failures.map((f) => [f.device, f]));
  const series = h.series.filter((s) => failed.has(s.device));
  const parts = folds(series, o.folds);
  let rng = o.seed >>> 0 || 1;
  const rand = () => {
    rng = (Math.imul(rng, 1_103_515_245) + 12_345) >>> 0;
    return rng / 2 ** 32;
  };
  let se = 0;
  let seCapped = 0;
  let n = 0;
  for (const [k, test] of parts.entries()) {
    const model = await trainRul({ ...h, series: parts.filter((_, j) => j !== k).flat() }, failures, o);
    const p = new Predictor(model);
    const rows: number[][] = [];
    const truth: number[] = [];
    for (const s of test) {
      const idx = new SeriesIndex(s, o.spec);
      const f = failed.get(s.device)!;
      const eligible = s.t.flatMap((t, i) => (f.time - t >= 1 && f.time - t <= o.maxRul ? [i] : []));
      for (let r = 0; r < o.perUnit && eligible.length > 0; r++) {
        const i = eligible[Math.floor(rand() * eligible.length)]!;
        rows.push(idx.featuresAt(i));
        truth.push(f.time - s.t[i]!);
      }
    }
    p.predict(rows).forEach(([v], j) => {
      se += (v! - truth[j]!) ** 2;
      seCapped += (v! - Math.min(o.cap, truth[j]!)) ** 2;
      n++;
    });
    p.dispose();
    o.progress?.(`fold ${k + 1}/${o.folds}: RMSE so far ${Math.sqrt(se / n).toFixed(2)}`);
  }
  return {
    folds: o.folds,
    devices: series.length,
    points: n,
    rmse: Math.sqrt(se / n),
    rmseCapped: Math.sqrt(seCapped / n),
    cap: o.cap,
  };
}

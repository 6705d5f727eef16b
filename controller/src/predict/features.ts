import type { Series } from './history.js';

/** How features are computed: window lengths and the time unit slopes are expressed in. */
export interface FeatureSpec {
  metrics: string[];
  /** Window lengths in the history's time unit (ms for dates, cycles otherwise), shortest first. */
  windows: number[];
  /** Slopes are per this much time (a day for dates, one cycle otherwise). */
  unit: number;
  /** Include the time since the history began (useful for run-to-failure data, where it is the age). */
  withAge: boolean;
}

/** Feature names, in the order `featuresAt` fills them (the first segment is the metric they come from). */
export function featureNames(spec: FeatureSpec): string[] {
  const names: string[] = [];
  for (const m of spec.metrics) {
    names.push(`${m}.last`, `${m}.vsBaseline`);
    for (const w of spec.windows) names.push(`${m}.mean@${w}`, `${m}.change@${w}`);
    names.push(`${m}.slope`, `${m}.std`);
  }
  if (spec.withAge) names.push('age');
  return names;
}

/** Prefix sums of one series for O(1) window statistics. */
export class SeriesIndex {
  private readonly x: Float64Array;
  private readonly sums: Record<string, { y: Float64Array; y2: Float64Array; xy: Float64Array }> = {};
  private readonly sx: Float64Array;
  private readonly sx2: Float64Array;
  private readonly baseline: Record<string, number> = {};

  constructor(
    readonly series: Series,
    private readonly spec: FeatureSpec,
  ) {
    const n = series.t.length;
    const t0 = series.t[0] ?? 0;
    this.x = Float64Array.from(series.t, (t) => (t - t0) / spec.unit);
    this.sx = new Float64Array(n + 1);
    this.sx2 = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) {
      this.sx[i + 1] = this.sx[i]! + this.x[i]!;
      this.sx2[i + 1] = this.sx2[i]! + this.x[i]! ** 2;
    }
    const longest = spec.windows[spec.windows.length - 1]!;
    for (const m of spec.metrics) {
      const v = series.metrics[m] ?? new Array<number>(n).fill(0);
      const y = new Float64Array(n + 1);
      const y2 = new Float64Array(n + 1);
      const xy = new Float64Array(n + 1);
      for (let i = 0; i < n; i++) {
        y[i + 1] = y[i]! + v[i]!;
        y2[i + 1] = y2[i]! + v[i]! ** 2;
        xy[i + 1] = xy[i]! + v[i]! * this.x[i]!;
      }
      this.sums[m] = { y, y2, xy };
      // the device's own baseline: its mean over the shortest window at the start of its history
      const end = this.startIndex(0, Math.min(spec.windows[0]!, longest), true);
      this.baseline[m] = (y[end + 1]! - y[0]!) / (end + 1);
    }
  }

  get length(): number {
    return this.series.t.length;
  }

  /** The first index within `w` before sample i (or, with `forward`, the last index within w after sample i). */
  private startIndex(i: number, w: number, forward = false): number {
    const t = this.series.t;
    if (forward) {
      let hi = i;
      while (hi + 1 < t.length && t[hi + 1]! - t[i]! < w) hi++;
      return hi;
    }
    let lo = 0;
    let hi = i;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (t[i]! - t[mid]! < w) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The features of the history up to and including sample i (nothing after it is looked at). */
  featuresAt(i: number, out: number[] = []): number[] {
    const spec = this.spec;
    const starts = spec.windows.map((w) => this.startIndex(i, w));
    const longest = starts[starts.length - 1]!;
    for (const m of spec.metrics) {
      const s = this.sums[m]!;
      const last = s.y[i + 1]! - s.y[i]!;
      out.push(last, last - this.baseline[m]!);
      // the mean over each window, and the change across it (for a counter: how many events in the window)
      for (const a of starts) out.push((s.y[i + 1]! - s.y[a]!) / (i + 1 - a), last - (s.y[a + 1]! - s.y[a]!));
      const n = i + 1 - longest;
      const sy = s.y[i + 1]! - s.y[longest]!;
      const sx = this.sx[i + 1]! - this.sx[longest]!;
      const den = n * (this.sx2[i + 1]! - this.sx2[longest]!) - sx * sx;
      out.push(den > 1e-12 ? (n * (s.xy[i + 1]! - s.xy[longest]!) - sx * sy) / den : 0);
      out.push(Math.sqrt(Math.max(0, (s.y2[i + 1]! - s.y2[longest]!) / n - (sy / n) ** 2)));
    }
    if (spec.withAge) out.push(this.x[i]!);
    return out;
  }
}

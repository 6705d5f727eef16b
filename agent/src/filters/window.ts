import type { Aggregate, Sample } from './types.js';

/**
 * Tumbling windows aligned to wall-clock boundaries (a window of size S starts at a multiple of S since the epoch).
 * A window closes when a reading at or past its end + lateness arrives (event time), or on tick(now) when the
 * gateway clock passes it (processing time). A reading for a window that has closed is counted as late and goes
 * into no aggregate; the count travels on the next aggregate. Statistics are computed exactly from the window's
 * values at close (two-pass standard deviation, quantiles by linear interpolation between order statistics).
 */
export interface WindowConfig {
  size: number;
  lateness: number;
  quantiles: readonly number[];
}

export interface OpenWindow {
  start: number;
  values: number[];
  last: number;
  lastTs: number;
}

export interface WindowState {
  open: OpenWindow[];
  /** Every window starting before this is closed (null: none closed yet). JSON has no -Infinity. */
  closedBefore: number | null;
  late: number;
}

export const initialWindow = (): WindowState => ({ open: [], closedBefore: null, late: 0 });

export function quantileKey(q: number): string {
  return `p${Number((q * 100).toFixed(6))}`;
}

/** Linear interpolation between order statistics (Hyndman & Fan type 7, numpy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function aggregate(w: OpenWindow, size: number, late: number, quantiles: readonly number[]): Aggregate {
  const n = w.values.length;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of w.values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  let sq = 0;
  for (const v of w.values) sq += (v - mean) * (v - mean);
  const sorted = quantiles.length ? [...w.values].sort((x, y) => x - y) : [];
  return {
    from: w.start,
    to: w.start + size,
    count: n,
    min,
    max,
    mean,
    last: w.last,
    stddev: Math.sqrt(sq / n),
    late,
    quantiles: Object.fromEntries(quantiles.map((q) => [quantileKey(q), quantile(sorted, q)])),
  };
}

function closeUpTo(cfg: WindowConfig, s: WindowState, watermark: number): { state: WindowState; closed: Aggregate[] } {
  const closing = s.open.filter((w) => w.start + cfg.size + cfg.lateness <= watermark);
  if (closing.length === 0) return { state: s, closed: [] };
  let late = s.late;
  const closed = closing.map((w) => {
    const agg = aggregate(w, cfg.size, late, cfg.quantiles);
    late = 0;
    return agg;
  });
  const lastClosed = closing.at(-1)!;
  return {
    state: {
      open: s.open.filter((w) => !closing.includes(w)),
      closedBefore: Math.max(s.closedBefore ?? -Infinity, lastClosed.start + cfg.size),
      late,
    },
    closed,
  };
}

export function windowAdd(
  cfg: WindowConfig,
  s: WindowState,
  p: Sample,
): { state: WindowState; closed: Aggregate[]; late: boolean } {
  const start = Math.floor(p.ts / cfg.size) * cfg.size;
  if (s.closedBefore !== null && start < s.closedBefore)
    return { state: { ...s, late: s.late + 1 }, closed: [], late: true };
  const open = s.open.map((w) =>
    w.start === start ? { ...w, values: [...w.values, p.value], last: p.value, lastTs: p.ts } : w,
  );
  if (!open.some((w) => w.start === start)) {
    open.push({ start, values: [p.value], last: p.value, lastTs: p.ts });
    open.sort((x, y) => x.start - y.start);
  }
  const r = closeUpTo(cfg, { ...s, open }, p.ts);
  return { ...r, late: false };
}

export function windowTick(
  cfg: WindowConfig,
  s: WindowState,
  now: number,
): { state: WindowState; closed: Aggregate[] } {
  return closeUpTo(cfg, s, now);
}

export function windowFinish(cfg: WindowConfig, s: WindowState): { state: WindowState; closed: Aggregate[] } {
  return closeUpTo(cfg, s, Infinity);
}

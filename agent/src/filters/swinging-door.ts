import type { Sample } from './types.js';

/**
 * Swinging-door compression, the variant with doors that pivot on the archived value itself and give every held
 * (candidate-to-drop) point the ±deviation allowance; the newest point is the segment's end and is archived exactly
 * as it came. (The other published variant pivots the doors at archived ± deviation and lets the newest point's
 * allowance decide; its reconstruction error can reach twice the deviation.)
 *
 * Guarantee: every dropped reading lies within `deviation` of the straight line between the archived readings
 * before and after it (up to floating-point rounding, 1e-9 relative). Readings that arrive less than minInterval
 * after the last archived one are dropped without that guarantee; no two archived readings are more than
 * maxInterval apart while readings keep coming (tick() archives a held reading when the stream goes quiet).
 */
export interface SwingingDoorConfig {
  deviation: number;
  maxInterval: number;
  minInterval: number;
}

export interface SwingingDoorState {
  /** The last archived reading. */
  a: Sample | null;
  /** The held reading: the end of the current segment, archived when the next reading falls outside the doors. */
  h: Sample | null;
  /** Bounds on the slope from `a` that keep every dropped reading since `a` within the deviation (null: none yet). */
  lo: number | null;
  hi: number | null;
}

export const initialSwingingDoor = (): SwingingDoorState => ({ a: null, h: null, lo: null, hi: null });

export type SdtResult = {
  state: SwingingDoorState;
  archive: Sample[];
  dropped: 'swingingDoor' | 'swingingDoor.minInterval' | 'outOfOrder' | null;
};

export function swingingDoor(cfg: SwingingDoorConfig, s: SwingingDoorState, p: Sample): SdtResult {
  if (s.a === null) return { state: { a: p, h: null, lo: null, hi: null }, archive: [p], dropped: null };
  const a = s.a;
  if (p.ts <= (s.h ?? a).ts) return { state: s, archive: [], dropped: 'outOfOrder' };
  if (p.ts - a.ts < cfg.minInterval) return { state: s, archive: [], dropped: 'swingingDoor.minInterval' };
  if (s.h === null) return { state: { ...s, h: p }, archive: [], dropped: null };
  const h = s.h;
  const dh = h.ts - a.ts;
  const lo = Math.max(s.lo ?? -Infinity, (h.value - cfg.deviation - a.value) / dh);
  const hi = Math.min(s.hi ?? Infinity, (h.value + cfg.deviation - a.value) / dh);
  const slope = (p.value - a.value) / (p.ts - a.ts);
  if (p.ts - a.ts <= cfg.maxInterval && slope >= lo && slope <= hi) {
    // the segment a → p keeps h (and everything dropped before it) within the deviation: drop h, hold p
    return { state: { a, h: p, lo, hi }, archive: [], dropped: 'swingingDoor' };
  }
  // archive the held reading: a → h is valid (it was checked when h arrived); a new segment starts at h
  return { state: { a: h, h: p, lo: null, hi: null }, archive: [h], dropped: null };
}

/** Archives the held reading when nothing was archived for maxInterval (so a quiet stream's last value arrives). */
export function swingingDoorTick(cfg: SwingingDoorConfig, s: SwingingDoorState, now: number): SdtResult {
  if (s.a && s.h && now - s.a.ts >= cfg.maxInterval) {
    return { state: { a: s.h, h: null, lo: null, hi: null }, archive: [s.h], dropped: null };
  }
  return { state: s, archive: [], dropped: null };
}

/** Archives the held reading, e.g. before the rules change. */
export function swingingDoorFinish(s: SwingingDoorState): SdtResult {
  if (!s.h) return { state: s, archive: [], dropped: null };
  return { state: { a: s.h, h: null, lo: null, hi: null }, archive: [s.h], dropped: null };
}

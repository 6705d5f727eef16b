import type { FilterRule } from '@fleetwave/shared';
import { bandOf, exceedsBand } from './deadband.js';
import {
  initialSwingingDoor,
  type SwingingDoorState,
  swingingDoor,
  swingingDoorFinish,
  swingingDoorTick,
} from './swinging-door.js';
import type { DropReason, Emission, Sample } from './types.js';
import { initialWindow, type WindowState, windowAdd, windowFinish, windowTick } from './window.js';

/** The filter state of one stream under one rule: plain data, persisted as JSON with the outbox. */
export interface StreamState {
  /** Last reported reading (deadband, heartbeat). */
  reported: { ts: number; value: number } | null;
  alert: 'above' | 'below' | null;
  sdt: SwingingDoorState | null;
  win: WindowState | null;
}

export interface StepResult {
  state: StreamState;
  out: Emission[];
  /** Why the reading itself went no further (null: it was reported, or is held by the swinging door). */
  dropped: DropReason | null;
}

export const initialState = (rule: FilterRule): StreamState => ({
  reported: null,
  alert: null,
  sdt: rule.swingingDoor ? initialSwingingDoor() : null,
  win: rule.window ? initialWindow() : null,
});

const reading = (sample: Sample, alert = false): Emission => ({ kind: 'reading', sample, alert });

function validate(rule: FilterRule, p: Sample): DropReason | null {
  if (!Number.isFinite(p.value)) return 'validate.range';
  const v = rule.validate;
  if (!v) return null;
  if ((v.min !== undefined && p.value < v.min) || (v.max !== undefined && p.value > v.max)) return 'validate.range';
  if (v.units && p.unit !== undefined && !v.units.includes(p.unit)) return 'validate.unit';
  if (v.quality && !v.quality.includes(p.quality ?? 'good')) return 'validate.quality';
  return null;
}

function alertStep(
  rule: FilterRule,
  active: StreamState['alert'],
  v: number,
): { active: StreamState['alert']; fire: boolean } {
  const a = rule.alert;
  if (!a) return { active, fire: false };
  if (active === 'above') return v < a.above! - a.hysteresis ? { active: null, fire: true } : { active, fire: false };
  if (active === 'below') return v > a.below! + a.hysteresis ? { active: null, fire: true } : { active, fire: false };
  if (a.above !== undefined && v > a.above) return { active: 'above', fire: true };
  if (a.below !== undefined && v < a.below) return { active: 'below', fire: true };
  return { active: null, fire: false };
}

/** Runs one reading through a rule: validate → alert → window → heartbeat.minInterval → deadband | swingingDoor. */
export function applyRule(rule: FilterRule, s: StreamState, p: Sample): StepResult {
  const invalid = validate(rule, p);
  if (invalid) return { state: s, out: [], dropped: invalid };
  const out: Emission[] = [];
  const alert = alertStep(rule, s.alert, p.value);
  if (alert.fire) out.push(reading(p, true));
  let state: StreamState = alert.active === s.alert ? s : { ...s, alert: alert.active };

  if (rule.window && state.win) {
    const w = windowAdd(rule.window, state.win, p);
    state = { ...state, win: w.state };
    for (const agg of w.closed) out.push({ kind: 'aggregate', agg });
    if (!rule.window.keepReadings) return { state, out, dropped: 'window' };
  }

  if (rule.swingingDoor && state.sdt) {
    const r = swingingDoor(rule.swingingDoor, state.sdt, p);
    for (const a of r.archive) out.push(reading(a));
    return { state: { ...state, sdt: r.state }, out, dropped: r.dropped };
  }

  const last = state.reported;
  const hb = rule.heartbeat;
  if (last && p.ts < last.ts) return { state, out, dropped: 'outOfOrder' };
  if (last && hb?.minInterval !== undefined && p.ts - last.ts < hb.minInterval) {
    return { state, out, dropped: 'heartbeat.minInterval' };
  }
  const forced = last !== null && hb?.maxInterval !== undefined && p.ts - last.ts >= hb.maxInterval;
  if (rule.deadband && last && !forced && !exceedsBand(last.value, p.value, bandOf(rule.deadband))) {
    return { state, out, dropped: 'deadband' };
  }
  out.push(reading(p));
  return { state: { ...state, reported: { ts: p.ts, value: p.value } }, out, dropped: null };
}

/** Time passing with no reading: close windows, archive a swinging door's held reading after maxInterval. */
export function tickRule(rule: FilterRule, s: StreamState, now: number): { state: StreamState; out: Emission[] } {
  let state = s;
  const out: Emission[] = [];
  if (rule.window && state.win) {
    const w = windowTick(rule.window, state.win, now);
    if (w.closed.length) {
      state = { ...state, win: w.state };
      for (const agg of w.closed) out.push({ kind: 'aggregate', agg });
    }
  }
  if (rule.swingingDoor && state.sdt) {
    const r = swingingDoorTick(rule.swingingDoor, state.sdt, now);
    if (r.archive.length) {
      state = { ...state, sdt: r.state };
      for (const a of r.archive) out.push(reading(a));
    }
  }
  return { state, out };
}

/** Emits everything a rule holds (open windows, a held reading), e.g. before the rules are replaced. */
export function finishRule(rule: FilterRule, s: StreamState): Emission[] {
  const out: Emission[] = [];
  if (rule.window && s.win)
    for (const agg of windowFinish(rule.window, s.win).closed) out.push({ kind: 'aggregate', agg });
  if (rule.swingingDoor && s.sdt) for (const a of swingingDoorFinish(s.sdt).archive) out.push(reading(a));
  return out;
}

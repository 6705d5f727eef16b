import type { FilterRule } from '@fleetwave/shared';
import { ruleFor } from './engine.js';
import { applyRule, finishRule, initialState } from './rule.js';
import type { DropReason, Emission, Sample } from './types.js';

export interface StreamReplay {
  stream: string;
  rule: string;
  readingsIn: number;
  readingsOut: number;
  aggregatesOut: number;
  /** readingsIn / (readingsOut + aggregatesOut). */
  reduction: number;
  /** Of the valid readings, how far the reconstruction from what was sent is off (null: not reconstructable). */
  maxError: number | null;
  rmsError: number | null;
  reconstruction: 'linear' | 'step' | 'none';
  dropped: Partial<Record<DropReason, number>>;
}

/** Linear interpolation between sent points (swinging door), or holding the last sent value (everything else). */
export function reconstruct(sent: readonly Sample[], t: number, how: 'linear' | 'step'): number | undefined {
  let lo = 0;
  let hi = sent.length - 1;
  if (hi < 0 || t < sent[0]!.ts) return undefined;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (sent[mid]!.ts <= t) lo = mid;
    else hi = mid - 1;
  }
  const a = sent[lo]!;
  const b = sent[lo + 1];
  if (how === 'step' || !b || a.ts === t) return a.value;
  return a.value + ((b.value - a.value) * (t - a.ts)) / (b.ts - a.ts);
}

/**
 * Replays readings through filter rules as the agent would (then flushes what the rules hold) and measures the
 * reduction and the error of the backend's reconstruction against every valid input reading. Pure.
 */
export function replayStream(rules: readonly FilterRule[], stream: string, input: readonly Sample[]): StreamReplay {
  const rule = ruleFor(rules, stream);
  const dropped: Partial<Record<DropReason, number>> = {};
  const out: Emission[] = [];
  const valid: Sample[] = [];
  if (rule) {
    let s = initialState(rule);
    for (const p of input) {
      const r = applyRule(rule, s, p);
      s = r.state;
      out.push(...r.out);
      if (r.dropped) dropped[r.dropped] = (dropped[r.dropped] ?? 0) + 1;
      if (!r.dropped?.startsWith('validate.')) valid.push(p);
    }
    out.push(...finishRule(rule, s));
  } else {
    for (const p of input) out.push({ kind: 'reading', sample: p, alert: false });
    valid.push(...input);
  }
  const sent = out.flatMap((e) => (e.kind === 'reading' && !e.alert ? [e.sample] : []));
  const aggregates = out.filter((e) => e.kind === 'aggregate').length;
  const how = rule?.swingingDoor ? 'linear' : sent.length ? 'step' : 'none';
  let max: number | null = null;
  let sq = 0;
  let n = 0;
  if (how !== 'none') {
    max = 0;
    for (const p of valid) {
      const r = reconstruct(sent, p.ts, how);
      if (r === undefined) continue;
      const err = Math.abs(p.value - r);
      max = Math.max(max, err);
      sq += err * err;
      n++;
    }
  }
  return {
    stream,
    rule: rule?.match ?? '(none)',
    readingsIn: input.length,
    readingsOut: sent.length,
    aggregatesOut: aggregates,
    reduction: input.length / Math.max(1, sent.length + aggregates),
    maxError: max,
    rmsError: n ? Math.sqrt(sq / n) : max === null ? null : 0,
    reconstruction: how,
    dropped,
  };
}

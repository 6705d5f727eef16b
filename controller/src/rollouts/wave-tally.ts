import { jobStatusRules } from '@fleetwave/shared';
import type { ExecutionView, RolloutState } from './rollout-state.js';

export interface Tally {
  total: number;
  succeeded: number;
  failed: number;
  byHardware: Map<string, { failed: number; finished: number }>;
  reasons: Map<string, number>;
}

export function tally(s: RolloutState, updates: ReadonlyMap<string, ExecutionView>, wave: number): Tally {
  const t: Tally = { total: 0, succeeded: 0, failed: 0, byHardware: new Map(), reasons: new Map() };
  for (const m of s.members) {
    if (m.wave !== wave) continue;
    t.total++;
    const e = updates.get(m.device);
    const hw = t.byHardware.get(m.hardware) ?? { failed: 0, finished: 0 };
    t.byHardware.set(m.hardware, hw);
    if (!e || !jobStatusRules[e.status].terminal) continue;
    if (e.status === 'SUCCEEDED') {
      t.succeeded++;
      hw.finished++;
      continue;
    }
    const retriable = jobStatusRules[e.status].retriable && e.executionNumber <= s.plan.waves[wave]!.retries;
    if (retriable) continue;
    t.failed++;
    hw.failed++;
    hw.finished++;
    const reason = e.reason ?? e.status;
    t.reasons.set(reason, (t.reasons.get(reason) ?? 0) + 1);
  }
  return t;
}

export function failureReason(name: string, t: Tally, why: string): string {
  const hw = [...t.byHardware.entries()]
    .filter(([, h]) => h.finished > 0)
    .map(([k, h]) => `${k} ${h.failed}/${h.finished}`)
    .join(', ');
  const only = [...t.byHardware.entries()].filter(([, h]) => h.failed > 0);
  const concentrated =
    only.length === 1 && [...t.byHardware.values()].some((h) => h.finished > 0 && h.failed === 0)
      ? `; failures only on hardware ${only[0]![0]}`
      : '';
  const reasons = [...t.reasons.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([r, n]) => `${r} ×${n}`)
    .join(', ');
  return `wave ${name} failed: ${why} (failed/finished by hardware: ${hw}${concentrated}; reasons: ${reasons || 'none'})`;
}

import { type EventKind, jobStatusRules, type RolloutPlan } from '@fleetwave/shared';
import { assignWaves, type TargetDevice } from './assignment.js';
import { mannWhitneyGreater, median } from './mann-whitney.js';
import {
  type Action,
  type Command,
  type HealthCohorts,
  type HealthVerdict,
  isTerminal,
  type RolloutState,
  type TickInput,
} from './rollout-state.js';
import { failureReason, tally } from './wave-tally.js';

export * from './rollout-state.js';
export { tally } from './wave-tally.js';

/** A new rollout over the targets matching its selector now; waves are assigned at once (stable hashing). */
export function startRollout(
  id: string,
  plan: RolloutPlan,
  targets: readonly TargetDevice[],
  now: number,
): RolloutState {
  const members = assignWaves(plan.name, plan.waves, targets, plan.risk?.deferAbove).map(({ device, wave }) => ({
    device: device.id,
    wave,
    hardware: device.hardware,
    site: device.site,
    fromVersion: device.version,
  }));
  return {
    v: 1,
    id,
    plan,
    status: 'running',
    createdAt: now,
    wave: 0,
    waves: plan.waves.map(() => ({ status: 'pending' })),
    members,
    approvals: [],
    rate: { windowStart: now, sent: 0 },
    ...(plan.risk && {
      deferred: targets
        .filter((t) => (t.risk ?? 0) >= plan.risk!.deferAbove)
        .map((t) => ({ device: t.id, risk: t.risk! })),
    }),
  };
}

interface Step {
  s: RolloutState;
  actions: Action[];
  input: TickInput;
}

const event = (st: Step, kind: EventKind, details: Record<string, unknown> = {}) =>
  st.actions.push({ type: 'event', kind, details: { rollout: st.s.id, ...details } });

/**
 * One evaluation of a rollout: pure, level-triggered (it looks only at the persisted state and the executions as
 * they are now), so running it after a restart, an outage or a week offline gives the same outcome.
 */
export function tick(state: RolloutState, input: TickInput): { state: RolloutState; actions: Action[] } {
  const st: Step = { s: structuredClone(state), actions: [], input };
  if (isTerminal(st.s.status)) return { state: st.s, actions: [] };
  addJoiners(st);
  if (st.s.status === 'rolling-back') rollBack(st);
  else if (st.s.status === 'running' || st.s.status === 'awaiting-approval') advance(st);
  return { state: st.s, actions: st.actions };
}

/** Devices that joined or started matching go into the last wave. */
function addJoiners(st: Step): void {
  const known = new Set(st.s.members.map((m) => m.device));
  const last = st.s.waves.length - 1;
  for (const t of st.input.targets) {
    if (known.has(t.id) || t.version === st.s.plan.release.version) continue;
    st.s.members.push({ device: t.id, wave: last, hardware: t.hardware, site: t.site, fromVersion: t.version });
    event(st, 'rollout.device-joined', { device: t.id, wave: last });
  }
}

function advance(st: Step): void {
  const s = st.s;
  const w = s.wave;
  const wave = s.waves[w]!;
  const plan = s.plan.waves[w]!;
  if (wave.status === 'pending') {
    if (plan.approval && !s.approvals.includes(w)) {
      if (s.status !== 'awaiting-approval') event(st, 'rollout.awaiting-approval', { wave: w });
      s.status = 'awaiting-approval';
      return;
    }
    s.status = 'running';
    if (!st.input.windowOpen) return;
    Object.assign(wave, { status: 'running', startedAt: st.input.now });
    event(st, 'wave.started', { wave: w, devices: s.members.filter((m) => m.wave === w).length });
  }
  dispatch(st);
  evaluate(st);
}

function limit(st: Step): number {
  const rate = st.s.plan.rate;
  if (!rate || st.input.selfPaced) return Number.POSITIVE_INFINITY;
  const { now } = st.input;
  const r = st.s.rate;
  if (now - r.windowStart >= 60_000) {
    r.windowStart += Math.floor((now - r.windowStart) / 60_000) * 60_000;
    r.sent = 0;
  }
  let perMinute = rate.maxPerMinute;
  if (rate.ramp) {
    const succeeded = st.s.members.filter((m) => st.input.updates.get(m.device)?.status === 'SUCCEEDED').length;
    const steps = Math.floor(succeeded / rate.ramp.afterSucceeded);
    perMinute = Math.min(
      rate.maxPerMinute,
      Math.floor(rate.ramp.baseRatePerMinute * rate.ramp.incrementFactor ** steps),
    );
  }
  return Math.max(0, perMinute - r.sent);
}

/** Queues (rate-limited, inside a window) every member of the waves so far that has no live execution. */
function dispatch(st: Step): void {
  const { now, updates, windowOpen } = st.input;
  const s = st.s;
  let budget = limit(st);
  for (const m of s.members) {
    if (m.wave > s.wave) continue;
    const e = updates.get(m.device);
    const retries = s.plan.waves[m.wave]!.retries;
    if (e?.status === 'IN_PROGRESS' && e.startedAt !== undefined && !st.input.selfPaced) {
      if (now - e.startedAt >= s.plan.waves[m.wave]!.deviceTimeout) {
        st.actions.push({ type: 'time-out', device: m.device, reason: 'device timeout of the wave' });
      }
      continue;
    }
    const retry = e && (e.status === 'FAILED' || e.status === 'TIMED_OUT') && e.executionNumber <= retries;
    if (e && (!retry || st.input.selfPaced)) continue;
    if (!windowOpen || budget <= 0) continue;
    budget--;
    s.rate.sent++;
    st.actions.push({
      type: 'queue',
      purpose: 'update',
      device: m.device,
      executionNumber: (e?.executionNumber ?? 0) + 1,
      version: s.plan.release.version,
      wave: m.wave,
    });
  }
}

function evaluate(st: Step): void {
  const s = st.s;
  const w = s.wave;
  const wave = s.waves[w]!;
  const plan = s.plan.waves[w]!;
  const name = plan.name ?? String(w + 1);
  const t = tally(s, st.input.updates, w);
  const finished = t.succeeded + t.failed;
  const rule = plan.failureThreshold;
  let why: string | undefined;
  if (rule && finished >= rule.minFinished && (t.failed * 100) / finished >= rule.percent) {
    why = `${t.failed} of ${finished} finished devices failed, threshold ${rule.percent}% after ${rule.minFinished}`;
  } else if (
    t.total > 0 &&
    finished >= (rule?.minFinished ?? 1) &&
    ((t.total - t.failed) * 100) / t.total < plan.successThreshold
  ) {
    // the success threshold can no longer be reached (judged, like the failure rule, after minFinished)
    why = `${t.failed} of ${t.total} devices failed, ${plan.successThreshold}% must succeed`;
  }
  if (why) {
    const reason = failureReason(name, t, why);
    Object.assign(wave, { status: 'failed', finishedAt: st.input.now, reason });
    event(st, 'wave.failed', { wave: w, reason, succeeded: t.succeeded, failed: t.failed, total: t.total });
    onFailure(st, reason);
    return;
  }
  const successPct = t.total === 0 ? 100 : (t.succeeded * 100) / t.total;
  if (successPct < plan.successThreshold) return;
  if (wave.status === 'running') {
    Object.assign(wave, { status: 'baking', bakeUntil: st.input.now + plan.bake });
    event(st, 'wave.baking', { wave: w, until: wave.bakeUntil });
  }
  if (wave.status === 'baking' && st.input.now >= (wave.bakeUntil ?? 0)) {
    const gate = s.plan.healthGate;
    if (gate) {
      // judged once, when the wave would succeed: is the health of its updated devices worse than of the others?
      if (!st.input.health) return;
      wave.health = healthVerdicts(st.input.health, gate.minSample, gate.alpha);
      const bad = wave.health.filter((h) => h.degraded);
      if (bad.length) {
        const why = bad
          .map(
            (h) =>
              `${h.metric} ${h.worse} on updated devices (median ${fmt(h.medianUpdated)} vs ${fmt(h.medianNotUpdated)}, n ${h.updated}/${h.notUpdated}, Mann-Whitney p=${h.p!.toPrecision(2)})`,
          )
          .join('; ');
        const reason = `wave ${name} failed: health of updated devices is worse: ${why}`;
        Object.assign(wave, { status: 'failed', finishedAt: st.input.now, reason });
        event(st, 'wave.failed', { wave: w, reason, health: wave.health });
        onFailure(st, reason);
        return;
      }
      event(st, 'wave.health-checked', { wave: w, health: wave.health });
    }
    Object.assign(wave, { status: 'succeeded', finishedAt: st.input.now });
    event(st, 'wave.succeeded', { wave: w, succeeded: t.succeeded, total: t.total });
    nextWave(st);
  }
}

const fmt = (v: number | null) => (v === null ? 'n/a' : String(Math.round(v * 100) / 100));

/**
 * The health gate's verdict per metric: a one-sided Mann-Whitney U test (updated worse than not updated), at
 * alpha divided by the number of metrics compared (Bonferroni); a metric with a cohort below the minimum sample is
 * not compared (reported with p null).
 */
export function healthVerdicts(cohorts: readonly HealthCohorts[], minSample: number, alpha: number): HealthVerdict[] {
  const compared = cohorts.filter((c) => c.updated.length >= minSample && c.notUpdated.length >= minSample).length;
  return cohorts.map((c) => {
    const enough = c.updated.length >= minSample && c.notUpdated.length >= minSample;
    const flip = (v: number[]) => (c.worse === 'higher' ? v : v.map((x) => -x));
    const p = enough ? mannWhitneyGreater(flip(c.updated), flip(c.notUpdated)).p : null;
    return {
      metric: c.metric,
      worse: c.worse,
      updated: c.updated.length,
      notUpdated: c.notUpdated.length,
      medianUpdated: median(c.updated),
      medianNotUpdated: median(c.notUpdated),
      p,
      degraded: p !== null && p < alpha / Math.max(1, compared),
    };
  });
}

function nextWave(st: Step): void {
  const s = st.s;
  if (s.wave === s.waves.length - 1) {
    s.status = 'completed';
    event(st, 'rollout.completed', {});
    return;
  }
  s.wave++;
  advance(st);
}

function cancelQueued(st: Step, reason: string): void {
  for (const m of st.s.members) {
    if (st.input.updates.get(m.device)?.status === 'QUEUED') {
      st.actions.push({ type: 'cancel', purpose: 'update', device: m.device, reason });
    }
  }
}

function onFailure(st: Step, reason: string): void {
  const s = st.s;
  s.reason = reason;
  if (s.plan.onFailure === 'pause') {
    s.status = 'paused';
    event(st, 'rollout.paused', { reason, by: 'failure' });
  } else if (s.plan.onFailure === 'abort') {
    abort(st, reason);
  } else {
    startRollback(st, reason);
  }
}

function abort(st: Step, reason: string): void {
  cancelQueued(st, `rollout aborted: ${reason}`.slice(0, 1000));
  st.s.status = 'aborted';
  st.s.reason = reason;
  event(st, 'rollout.aborted', { reason });
}

function startRollback(st: Step, reason: string): void {
  cancelQueued(st, 'rollout rolling back');
  Object.assign(st.s, { status: 'rolling-back', reason, rollbackStartedAt: st.input.now });
  event(st, 'rollout.rolling-back', { reason });
  rollBack(st);
}

/**
 * The rollback wave: every member whose update succeeded goes back to the version it ran before, as its own job.
 * Devices still installing are waited for (a failed install rolls itself back on the device).
 */
function rollBack(st: Step): void {
  const { updates, rollbacks, knownVersions } = st.input;
  let open = 0;
  for (const m of st.s.members) {
    const u = updates.get(m.device);
    if (u && !jobStatusRules[u.status].terminal) {
      if (u.status === 'QUEUED')
        st.actions.push({ type: 'cancel', purpose: 'update', device: m.device, reason: 'rollout rolling back' });
      open++;
      continue;
    }
    if (u?.status !== 'SUCCEEDED') continue;
    const r = rollbacks.get(m.device);
    if (r) {
      if (!jobStatusRules[r.status].terminal) open++;
      continue;
    }
    if (m.fromVersion === null || !knownVersions.has(m.fromVersion)) {
      if (st.s.rollbackSkipped?.includes(m.device)) continue;
      st.s.rollbackSkipped = [...(st.s.rollbackSkipped ?? []), m.device];
      event(st, 'device.rollback-impossible', {
        device: m.device,
        reason: m.fromVersion === null ? 'no earlier release recorded' : `release ${m.fromVersion} is not registered`,
      });
      continue;
    }
    st.actions.push({
      type: 'queue',
      purpose: 'rollback',
      device: m.device,
      executionNumber: 1,
      version: m.fromVersion,
      wave: m.wave,
    });
    open++;
  }
  if (open === 0) {
    st.s.status = 'rolled-back';
    event(st, 'rollout.rolled-back', {});
  }
}

/** An operator's command; throws a message when the rollout's status does not allow it. */
export function command(
  state: RolloutState,
  cmd: Command,
  input: TickInput,
  wave?: number,
): { state: RolloutState; actions: Action[] } {
  const st: Step = { s: structuredClone(state), actions: [], input };
  const s = st.s;
  const refuse = () => {
    throw new Error(`cannot ${cmd} a rollout that is ${s.status}`);
  };
  switch (cmd) {
    case 'pause':
      if (s.status !== 'running' && s.status !== 'awaiting-approval') refuse();
      s.status = 'paused';
      event(st, 'rollout.paused', { by: 'operator' });
      break;
    case 'resume': {
      if (s.status !== 'paused') refuse();
      s.status = 'running';
      s.reason = undefined;
      event(st, 'rollout.resumed', {});
      const current = s.waves[s.wave]!;
      if (current.status === 'failed') {
        current.status = 'accepted';
        event(st, 'wave.accepted', { wave: s.wave });
        nextWave(st);
      } else advance(st);
      break;
    }
    case 'approve': {
      const w = wave ?? s.wave;
      if (isTerminal(s.status) || w < s.wave || w >= s.waves.length) refuse();
      if (!s.approvals.includes(w)) s.approvals.push(w);
      event(st, 'rollout.approved', { wave: w });
      if (s.status === 'awaiting-approval') {
        s.status = 'running';
        advance(st);
      }
      break;
    }
    case 'abort':
      if (isTerminal(s.status) || s.status === 'rolling-back') refuse();
      abort(st, 'aborted by an operator');
      break;
    case 'rollback':
      if (s.status === 'rolling-back' || s.status === 'rolled-back') refuse();
      startRollback(st, 'rolled back by an operator');
      break;
  }
  return { state: s, actions: st.actions };
}

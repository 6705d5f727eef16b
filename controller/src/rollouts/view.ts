import type { JobStatus } from '@fleetwave/shared';
import type { ExecutionView, RolloutState } from './wave-engine.js';

export type StatusCounts = Partial<Record<JobStatus | 'NOT_STARTED', number>>;

/** What operators see of a rollout: each wave with its devices by status and the thresholds it is held to. */
export function rolloutView(
  s: RolloutState,
  ex: { updates: ReadonlyMap<string, ExecutionView>; rollbacks: ReadonlyMap<string, ExecutionView> },
  opts: { devices?: boolean } = {},
) {
  const count = (members: RolloutState['members'], map: ReadonlyMap<string, ExecutionView>) => {
    const c: StatusCounts = {};
    for (const m of members) {
      const k = map.get(m.device)?.status ?? 'NOT_STARTED';
      c[k] = (c[k] ?? 0) + 1;
    }
    return c;
  };
  const rolledBack = s.members.filter((m) => ex.rollbacks.has(m.device));
  return {
    id: s.id,
    name: s.plan.name,
    release: s.plan.release,
    status: s.status,
    ...(s.reason && { reason: s.reason }),
    createdAt: s.createdAt,
    currentWave: s.wave,
    onFailure: s.plan.onFailure,
    devices: s.members.length,
    waves: s.waves.map((w, i) => {
      const p = s.plan.waves[i]!;
      const members = s.members.filter((m) => m.wave === i);
      return {
        index: i,
        name: p.name ?? `wave-${i + 1}`,
        status: w.status,
        size: members.length,
        counts: count(members, ex.updates),
        successThreshold: p.successThreshold,
        ...(p.failureThreshold && { failureThreshold: p.failureThreshold }),
        bake: p.bake,
        approval: p.approval,
        approved: s.approvals.includes(i),
        ...(w.startedAt !== undefined && { startedAt: w.startedAt }),
        ...(w.bakeUntil !== undefined && { bakeUntil: w.bakeUntil }),
        ...(w.finishedAt !== undefined && { finishedAt: w.finishedAt }),
        ...(w.reason && { reason: w.reason }),
        ...(w.health && { health: w.health }),
        ...(opts.devices && {
          members: members.map((m) => ({
            device: m.device,
            hardware: m.hardware,
            site: m.site,
            fromVersion: m.fromVersion,
            status: ex.updates.get(m.device)?.status ?? 'NOT_STARTED',
            ...(ex.updates.get(m.device)?.reason && { reason: ex.updates.get(m.device)!.reason }),
            ...(ex.rollbacks.get(m.device) && { rollback: ex.rollbacks.get(m.device)!.status }),
          })),
        }),
      };
    }),
    ...(s.plan.healthGate && { healthGate: s.plan.healthGate }),
    ...(s.deferred?.length && { deferred: s.deferred }),
    ...(s.rollbackStartedAt !== undefined && {
      rollback: { startedAt: s.rollbackStartedAt, devices: rolledBack.length, counts: count(rolledBack, ex.rollbacks) },
    }),
  };
}

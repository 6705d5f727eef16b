import { createHash } from 'node:crypto';
import type { RolloutPlan } from '@fleetwave/shared';

/** A device as the wave engine sees it. */
export interface TargetDevice {
  id: string;
  hardware: string;
  /** The `site` tag, or '' (waves are spread across sites and hardware). */
  site: string;
  /** The version of the plan's release the device runs now, null when none. */
  version: string | null;
  /** The predictor's failure risk (0–1), when one is known. */
  risk?: number;
}

const rank = (salt: string, s: string) => createHash('sha256').update(`${salt}\0${s}`).digest('hex');

/** Round-robin over lists: the first of each, then the second of each, … */
function interleave<T>(lists: T[][]): T[] {
  const out: T[] = [];
  const longest = Math.max(0, ...lists.map((l) => l.length));
  for (let i = 0; i < longest; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const g = m.get(k);
    if (g) g.push(t);
    else m.set(k, [t]);
  }
  return m;
}

/**
 * A deterministic order of the targets for a rollout, spread across hardware first and sites second: devices are
 * grouped by hardware, then by site, each group ordered by a stable hash of the rollout name and device id, and the
 * groups interleaved round-robin, so every prefix (the canary first) covers as many hardware kinds, then sites, as
 * its size allows. The same inputs give the same order on every replica and after every restart.
 */
export function orderTargets(salt: string, targets: readonly TargetDevice[]): TargetDevice[] {
  const byRank = <T>(entries: [string, T][]) =>
    entries.sort(([a], [b]) => rank(salt, a).localeCompare(rank(salt, b))).map(([, v]) => v);
  const perHardware = byRank([...groupBy(targets, (t) => t.hardware).entries()]).map((devices) =>
    interleave(
      byRank([...groupBy(devices, (t) => t.site).entries()]).map((g) =>
        g.sort((x, y) => rank(salt, x.id).localeCompare(rank(salt, y.id))),
      ),
    ),
  );
  return interleave(perHardware);
}

/**
 * How many devices each wave holds, for `total` targets. A `count` is that many more devices; a `percent` is the
 * cumulative share of the targets reached by the end of that wave (1%, 10%, 50%, 100% as AWS and hawkBit users
 * expect), at least one device while any remain.
 */
export function waveSizes(waves: RolloutPlan['waves'], total: number): number[] {
  const sizes: number[] = [];
  let reached = 0;
  for (const w of waves) {
    const goal =
      w.count !== undefined ? reached + w.count : Math.max(reached + 1, Math.ceil(((w.percent ?? 0) * total) / 100));
    const next = Math.min(total, goal);
    sizes.push(next - reached);
    reached = next;
  }
  return sizes;
}

/** Assigns the ordered targets to waves; devices past the last wave are not in the rollout. */
export function assignWaves(
  salt: string,
  waves: RolloutPlan['waves'],
  targets: readonly TargetDevice[],
  deferAbove?: number,
): { device: TargetDevice; wave: number }[] {
  // devices likely to fail come last: not in the canary, not among the first to get a new release
  const risky = (t: TargetDevice) => deferAbove !== undefined && (t.risk ?? 0) >= deferAbove;
  const ordered = [
    ...orderTargets(
      salt,
      targets.filter((t) => !risky(t)),
    ),
    ...orderTargets(salt, targets.filter(risky)),
  ];
  const sizes = waveSizes(waves, ordered.length);
  const out: { device: TargetDevice; wave: number }[] = [];
  let i = 0;
  sizes.forEach((n, wave) => {
    for (let k = 0; k < n; k++) out.push({ device: ordered[i++]!, wave });
  });
  return out;
}

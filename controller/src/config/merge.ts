import { type ConfigLayer, type DeviceSelector, type FilterRule, FleetwaveError } from '@fleetwave/shared';

/** What a selector sees of a device. */
export interface DeviceFacts {
  id: string;
  tags: Record<string, string>;
  hardware: string | null;
}

export function selectorMatches(s: DeviceSelector, d: DeviceFacts): boolean {
  if (s.devices && !s.devices.includes(d.id)) return false;
  if (s.hardware && (d.hardware === null || !s.hardware.includes(d.hardware))) return false;
  for (const [k, v] of Object.entries(s.tags ?? {})) if (d.tags[k] !== v) return false;
  return true;
}

/** Could one device match both selectors? (Disjoint only when a tag, the hardware or the device list rules it out.) */
export function selectorsOverlap(a: DeviceSelector, b: DeviceSelector): boolean {
  for (const [k, v] of Object.entries(a.tags ?? {})) if (b.tags?.[k] !== undefined && b.tags[k] !== v) return false;
  if (a.hardware && b.hardware && !a.hardware.some((h) => b.hardware!.includes(h))) return false;
  if (a.devices && b.devices && !a.devices.some((d) => b.devices!.includes(d))) return false;
  return true;
}

type Scalar = 'backlogIntervalMs' | 'healthIntervalMs' | 'batchMaxRecords';
const SCALARS: readonly Scalar[] = ['backlogIntervalMs', 'healthIntervalMs', 'batchMaxRecords'];

/** The fields a layer sets: each scalar, and each filter rule by its `match`. */
function fieldsOf(layer: ConfigLayer): string[] {
  return [
    ...SCALARS.filter((k) => layer.config[k] !== undefined),
    ...(layer.config.filters ?? []).map((r) => `filters[${r.match}]`),
  ];
}

/**
 * Two layers of equal priority that set the same field and may select the same device would make the merge depend on
 * their order: that is refused when a layer is applied. Returns a message per conflict.
 */
export function conflicts(layers: readonly ConfigLayer[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < layers.length; i++) {
    for (let j = i + 1; j < layers.length; j++) {
      const a = layers[i]!;
      const b = layers[j]!;
      if (a.priority !== b.priority || !selectorsOverlap(a.selector, b.selector)) continue;
      const shared = fieldsOf(a).filter((f) => fieldsOf(b).includes(f));
      if (shared.length) {
        out.push(
          `layers ${a.name} and ${b.name} both have priority ${a.priority}, may select the same devices and both set ${shared.join(', ')}`,
        );
      }
    }
  }
  return out;
}

export function assertNoConflicts(layers: readonly ConfigLayer[]): void {
  const c = conflicts(layers);
  if (c.length) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `${c.join('; ')}: give one of them another priority or narrow its selector`,
    );
  }
}

export interface Effective {
  config: {
    backlogIntervalMs?: number;
    healthIntervalMs?: number;
    batchMaxRecords?: number;
    filters?: FilterRule[];
  };
  /** Which layer set each field (`filters[<match>]` for a filter rule). */
  provenance: Record<string, string>;
  layers: string[];
}

/**
 * A device's effective configuration. The layers that select it are merged from the lowest priority up (ties by
 * name): a scalar takes the value of the highest layer that sets it; filter rules are merged by `match`, a higher
 * layer's rule replacing a lower one's, and listed highest layer first (the agent applies the first rule that
 * matches a stream, so the more specific, higher layer wins). Pure and deterministic.
 */
export function effectiveConfig(layers: readonly ConfigLayer[], device: DeviceFacts): Effective {
  const matching = layers
    .filter((l) => selectorMatches(l.selector, device))
    .sort((a, b) => a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const config: Effective['config'] = {};
  const provenance: Record<string, string> = {};
  const rules = new Map<string, { rule: FilterRule; rank: number }>();
  matching.forEach((layer, rank) => {
    for (const k of SCALARS) {
      const v = layer.config[k];
      if (v !== undefined) {
        config[k] = v;
        provenance[k] = layer.name;
      }
    }
    for (const rule of layer.config.filters ?? []) {
      rules.set(rule.match, { rule, rank });
      provenance[`filters[${rule.match}]`] = layer.name;
    }
  });
  if (rules.size) {
    config.filters = [...rules.values()].sort((a, b) => b.rank - a.rank).map((r) => r.rule);
  }
  return { config, provenance, layers: matching.map((l) => l.name) };
}

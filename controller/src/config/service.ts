import { ConfigLayer, deviceTopic, FleetwaveError, parseWith } from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { AuditFn } from '../auth/authenticator.js';
import type { ControllerDatabase } from '../store/database.js';
import { Mutex } from '../store/database.js';
import { decodeColumn, JsonObject } from '../store/documents.js';
import type { DeviceRecord } from '../store/fleet-store.js';
import { assertNoConflicts, type Effective, effectiveConfig } from './merge.js';

export interface ConfigServiceOptions {
  db: Pick<ControllerDatabase, 'fleet' | 'transaction'>;
  root: string;
  now: () => number;
  log: Logger;
  audit: AuditFn;
  /** Publishes retained, QoS 1 (the broker hands it to the device when it subscribes, after any reconnect). */
  publish: (topic: string, payload: string) => Promise<void>;
}

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}

const fieldMap = (e: Effective['config']): Map<string, unknown> => {
  const m = new Map<string, unknown>();
  for (const [k, v] of Object.entries(e)) if (k !== 'filters') m.set(k, v);
  for (const r of e.filters ?? []) m.set(`filters[${r.match}]`, r);
  return m;
};

export function changesBetween(a: Effective['config'], b: Effective['config']): FieldChange[] {
  const fa = fieldMap(a);
  const fb = fieldMap(b);
  const fields = [...new Set([...fa.keys(), ...fb.keys()])].sort();
  return fields
    .filter((f) => JSON.stringify(fa.get(f)) !== JSON.stringify(fb.get(f)))
    .map((f) => ({ field: f, from: fa.get(f) ?? null, to: fb.get(f) ?? null }));
}

/**
 * Desired configuration: layers applied by operators, each device's effective configuration (merge.ts), a version
 * per device that increases whenever it changes, and publishing it. The store is the truth; the broker's retained
 * copy is re-published at start-up, so a device that was offline or a controller restart changes nothing.
 */
export class ConfigService {
  /** Changes one at a time: each reads the layers and writes every device's version from what the last one left. */
  private readonly serial = new Mutex();

  constructor(private readonly o: ConfigServiceOptions) {}

  private get store() {
    return this.o.db.fleet;
  }

  async layers(): Promise<ConfigLayer[]> {
    return (await this.store.configLayers()).map((l) => decodeColumn(ConfigLayer, l.layer, `config layer ${l.name}`));
  }

  private facts(d: DeviceRecord) {
    return { id: d.id, tags: d.tags, hardware: d.hardware };
  }

  async effective(deviceId: string): Promise<
    Effective & {
      version: number;
      applied: number | null;
      status: DeviceRecord['configStatus'];
      reason: string | null;
    }
  > {
    const d = await this.store.getDevice(deviceId);
    if (!d) throw new FleetwaveError('E_DEVICE_UNKNOWN', `no device ${deviceId}`);
    return {
      ...effectiveConfig(await this.layers(), this.facts(d)),
      version: d.desiredVersion,
      applied: d.appliedConfigVersion,
      status: d.configStatus,
      reason: d.configReason,
    };
  }

  /** What applying (or, with `layer` null, removing) would change, device by device. */
  async diff(name: string, layer: ConfigLayer | null): Promise<{ device: string; changes: FieldChange[] }[]> {
    const current = await this.layers();
    const next = [...current.filter((l) => l.name !== name), ...(layer ? [layer] : [])];
    if (layer) assertNoConflicts(next);
    return (await this.store.listDevices())
      .filter((d) => d.revokedAt === null)
      .map((d) => ({
        device: d.id,
        changes: changesBetween(
          effectiveConfig(current, this.facts(d)).config,
          effectiveConfig(next, this.facts(d)).config,
        ),
      }))
      .filter((x) => x.changes.length > 0);
  }

  /** Applies (creates or replaces) a layer; refuses conflicts; returns the devices whose configuration changed. */
  apply(input: unknown, actor: string): Promise<{ layer: ConfigLayer; changed: string[] }> {
    const layer = parseWith(ConfigLayer, input, 'config layer');
    return this.change(layer.name, layer, actor, 'apply');
  }

  async remove(name: string, actor: string): Promise<{ changed: string[] }> {
    if (!(await this.store.configLayers()).some((l) => l.name === name))
      throw new FleetwaveError('E_NOT_FOUND', `no layer ${name}`);
    return this.change(name, null, actor, 'remove');
  }

  /** Puts a layer back as it was before its last change (or removes it, if that change created it). */
  async revert(name: string, actor: string): Promise<{ changed: string[] }> {
    const last = (await this.store.configHistory(1, name))[0];
    if (!last) throw new FleetwaveError('E_NOT_FOUND', `layer ${name} has no history to revert`);
    const before = last.before === null ? null : decodeColumn(ConfigLayer, last.before, `the history of layer ${name}`);
    return this.change(name, before, actor, 'revert');
  }

  private change(name: string, layer: ConfigLayer | null, actor: string, action: 'apply' | 'remove' | 'revert') {
    return this.serial.run(async () => {
      const { now } = this.o;
      const store = this.store;
      const current = await this.layers();
      const next = [...current.filter((l) => l.name !== name), ...(layer ? [layer] : [])];
      assertNoConflicts(next);
      const before = (await store.configLayers()).find((l) => l.name === name)?.layer ?? null;
      const after = layer ? JSON.stringify(layer) : null;
      const changed = await this.o.db.transaction(async () => {
        if (layer) await store.putConfigLayer({ name, layer: after!, updatedAt: now() });
        else await store.deleteConfigLayer(name);
        await store.addConfigHistory({ ts: now(), actor, action, name, before, after });
        return this.recomputeIn(next);
      });
      await this.o.audit(
        actor,
        `config.${action}`,
        name,
        'ok',
        changed.length ? `changed ${changed.length} devices` : 'no device changed',
      );
      for (const id of changed) await this.publishDevice(id);
      return { layer: layer!, changed };
    });
  }

  /** Recomputes every device's effective configuration; bumps and stores the version of those that changed. */
  private async recomputeIn(layers: readonly ConfigLayer[], only?: string): Promise<string[]> {
    const changed: string[] = [];
    const devices = only
      ? [await this.store.getDevice(only)].filter((d) => d !== undefined)
      : await this.store.listDevices();
    for (const d of devices) {
      if (d.revokedAt !== null) continue;
      const json = JSON.stringify(effectiveConfig(layers, this.facts(d)).config);
      if (json === (d.desiredConfig ?? JSON.stringify({}))) continue;
      await this.store.updateDevice(d.id, { desiredConfig: json, desiredVersion: d.desiredVersion + 1 });
      changed.push(d.id);
    }
    return changed;
  }

  /**
   * A device was registered, or its tags or hardware changed: its effective configuration is computed again (and
   * published when it changed); it gets it as soon as it subscribes.
   */
  deviceChanged(id: string): Promise<void> {
    return this.serial.run(async () => {
      const changed = await this.o.db.transaction(async () => this.recomputeIn(await this.layers(), id));
      for (const c of changed) await this.publishDevice(c);
    });
  }

  /** Publishes a device's desired configuration (errors are logged: the next start-up publishes it again). */
  private async publishDevice(id: string): Promise<void> {
    const d = await this.store.getDevice(id);
    if (!d || d.desiredVersion === 0 || d.desiredConfig === null) return;
    const doc = {
      v: 1,
      device: id,
      version: d.desiredVersion,
      config: decodeColumn(JsonObject, d.desiredConfig, `the desired configuration of ${id}`),
    };
    this.o
      .publish(deviceTopic(this.o.root, id, 'config/desired'), JSON.stringify(doc))
      .catch((err) => this.o.log.warn({ device: id, err: (err as Error).message }, 'desired config not published'));
  }

  /** Publishes every device's desired configuration again (at start-up: the broker may have lost its retained copy). */
  async republishAll(): Promise<void> {
    for (const d of await this.store.listDevices()) if (d.revokedAt === null) await this.publishDevice(d.id);
  }
}

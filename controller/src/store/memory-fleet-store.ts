import { FleetwaveError } from '@fleetwave/shared';
import type {
  ApiTokenRecord,
  AuditEntry,
  ConfigHistoryEntry,
  DevicePatch,
  DeviceRecord,
  EnrolmentTokenRecord,
  FleetStore,
  NewDevice,
  NewTelemetry,
  StoredLayer,
  TelemetryQuery,
  TelemetryRow,
} from './fleet-store.js';

/** In-memory FleetStore for unit tests; passes the same contract suite as SqliteFleetStore. */
export class MemoryFleetStore implements FleetStore {
  private devices = new Map<string, DeviceRecord>();
  private rows: TelemetryRow[] = [];
  private keys = new Set<string>();
  private cursor = 0;
  private auditLog: AuditEntry[] = [];
  private tokens = new Map<string, ApiTokenRecord>();
  private enrol = new Map<string, EnrolmentTokenRecord>();
  private layers = new Map<string, StoredLayer>();
  private history: ConfigHistoryEntry[] = [];

  transaction<T>(fn: () => T): T {
    const snapshot = structuredClone({
      devices: this.devices,
      rows: this.rows,
      keys: this.keys,
      cursor: this.cursor,
      audit: this.auditLog,
      tokens: this.tokens,
      enrol: this.enrol,
      layers: this.layers,
      history: this.history,
    });
    try {
      return fn();
    } catch (err) {
      this.devices = snapshot.devices;
      this.rows = snapshot.rows;
      this.keys = snapshot.keys;
      this.cursor = snapshot.cursor;
      this.auditLog = snapshot.audit;
      this.tokens = snapshot.tokens;
      this.enrol = snapshot.enrol;
      this.layers = snapshot.layers;
      this.history = snapshot.history;
      throw err;
    }
  }

  addDevice(d: NewDevice): void {
    if (this.devices.has(d.id)) throw new FleetwaveError('E_DEVICE_EXISTS', `device ${d.id} is already registered`);
    this.devices.set(d.id, {
      ...structuredClone(d),
      agentVersion: null,
      firmwareVersion: null,
      releases: {},
      lastSeen: null,
      presence: 'unknown',
      appliedConfigVersion: null,
      desiredVersion: 0,
      desiredConfig: null,
      configStatus: null,
      configReason: null,
      revokedAt: null,
    });
  }

  getDevice(id: string): DeviceRecord | undefined {
    const d = this.devices.get(id);
    return d && structuredClone(d);
  }

  listDevices(): DeviceRecord[] {
    return [...this.devices.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((d) => structuredClone(d));
  }

  updateDevice(id: string, patch: DevicePatch): void {
    const d = this.devices.get(id);
    if (d) Object.assign(d, structuredClone(patch));
  }

  revokeDevice(id: string, at: number): boolean {
    const d = this.devices.get(id);
    if (!d || d.revokedAt !== null) return false;
    d.revokedAt = at;
    return true;
  }

  insertTelemetry(rows: readonly NewTelemetry[], receivedAt: number): TelemetryRow[] {
    const out: TelemetryRow[] = [];
    for (const r of rows) {
      const key = `${r.device}\u0000${r.seq}`;
      if (this.keys.has(key)) continue;
      this.keys.add(key);
      const row = { ...r, cursor: ++this.cursor, receivedAt };
      this.rows.push(row);
      out.push(row);
    }
    return out;
  }

  telemetry(q: TelemetryQuery): TelemetryRow[] {
    const rows = this.rows.filter(
      (r) => r.cursor > q.after && (!q.device || r.device === q.device) && (!q.stream || r.stream === q.stream),
    );
    return q.pick === 'newest' ? rows.slice(-q.limit) : rows.slice(0, q.limit);
  }

  missingRanges(device: string): [number, number][] {
    const seqs = this.rows
      .filter((r) => r.device === device)
      .map((r) => r.seq)
      .sort((a, b) => a - b);
    const out: [number, number][] = [];
    let prev = 0;
    for (const s of seqs) {
      if (s > prev + 1) out.push([prev + 1, s - 1]);
      prev = s;
    }
    return out;
  }

  pruneTelemetry(receivedBefore: number): number {
    const before = this.rows.length;
    const kept = this.rows.filter((r) => r.receivedAt >= receivedBefore);
    for (const r of this.rows) if (r.receivedAt < receivedBefore) this.keys.delete(`${r.device}\u0000${r.seq}`);
    this.rows = kept;
    return before - kept.length;
  }

  addAudit(e: Omit<AuditEntry, 'id'>): void {
    this.auditLog.push({ ...e, id: this.auditLog.length + 1 });
  }

  audit(limit: number): AuditEntry[] {
    return [...this.auditLog].reverse().slice(0, limit);
  }

  addApiToken(t: ApiTokenRecord): void {
    this.tokens.set(t.id, { ...t });
  }

  getApiToken(id: string): ApiTokenRecord | undefined {
    const t = this.tokens.get(id);
    return t && { ...t };
  }

  listApiTokens(): ApiTokenRecord[] {
    return [...this.tokens.values()].map((t) => ({ ...t }));
  }

  revokeApiToken(id: string, at: number): boolean {
    const t = this.tokens.get(id);
    if (!t || t.revokedAt !== null) return false;
    t.revokedAt = at;
    return true;
  }

  addEnrolmentToken(t: EnrolmentTokenRecord): void {
    this.enrol.set(t.id, structuredClone(t));
  }

  getEnrolmentToken(id: string): EnrolmentTokenRecord | undefined {
    const t = this.enrol.get(id);
    return t && structuredClone(t);
  }

  useEnrolmentToken(id: string): boolean {
    const t = this.enrol.get(id);
    if (!t || t.usesLeft <= 0) return false;
    t.usesLeft--;
    return true;
  }

  configLayers(): StoredLayer[] {
    return [...this.layers.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((l) => ({ ...l }));
  }

  putConfigLayer(l: StoredLayer): void {
    this.layers.set(l.name, { ...l });
  }

  deleteConfigLayer(name: string): boolean {
    return this.layers.delete(name);
  }

  addConfigHistory(e: Omit<ConfigHistoryEntry, 'id'>): void {
    this.history.push({ ...e, id: this.history.length + 1 });
  }

  configHistory(limit: number, name?: string): ConfigHistoryEntry[] {
    return [...this.history]
      .reverse()
      .filter((h) => name === undefined || h.name === name)
      .slice(0, limit);
  }

  close(): void {}
}

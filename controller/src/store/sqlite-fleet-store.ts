import { FleetwaveError } from '@fleetwave/shared';
import type Database from 'better-sqlite3';
import type { Sync } from './database.js';
import { type DeviceRow, patchColumns, toApiToken, toCertificate, toDevice, toEnrolmentToken } from './fleet-rows.js';
import type {
  ApiTokenRecord,
  AuditEntry,
  ConfigHistoryEntry,
  DeviceCertificate,
  DevicePatch,
  DeviceRecord,
  EnrolmentTokenRecord,
  FleetStore,
  NewDevice,
  NewTelemetry,
  SecretKind,
  StoredLayer,
  TelemetryQuery,
  TelemetryRow,
} from './fleet-store.js';
import { SECRET_COLUMNS } from './fleet-store.js';

/**
 * The fleet port on the controller's SQLite database, synchronously (better-sqlite3); `SqliteDatabase` serves it as the
 * async port. It also keeps the telemetry table (`SqliteTelemetryLog`).
 */
export class SqliteFleet implements Sync<FleetStore> {
  private readonly s;

  constructor(private readonly db: Database.Database) {
    this.s = {
      insertTelemetry: db.prepare(
        // not INSERT OR IGNORE: a conflicting row would still take an AUTOINCREMENT value (a gap in the cursor), and a
        // NOT NULL violation would be dropped in silence
        `INSERT INTO telemetry (device, seq, stream, ts, kind, record, received_at)
         SELECT @device, @seq, @stream, @ts, @kind, @record, @receivedAt
         WHERE NOT EXISTS (SELECT 1 FROM telemetry WHERE device = @device AND seq = @seq)`,
      ),
      telemetryAfter: db.prepare(
        `SELECT * FROM telemetry WHERE cursor > @after AND (@device IS NULL OR device = @device)
         AND (@stream IS NULL OR stream = @stream) ORDER BY cursor LIMIT @limit`,
      ),
      telemetryNewest: db.prepare(
        `SELECT * FROM telemetry WHERE cursor > @after AND (@device IS NULL OR device = @device)
         AND (@stream IS NULL OR stream = @stream) ORDER BY cursor DESC LIMIT @limit`,
      ),
      getDevice: db.prepare('SELECT * FROM devices WHERE id = ?'),
    };
  }

  addDevice(d: NewDevice): void {
    try {
      this.db
        .prepare(
          'INSERT INTO devices (id, tags, hardware, created_at, token_hash, mosquitto_hash) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(d.id, JSON.stringify(d.tags), d.hardware, d.createdAt, d.tokenHash, d.mosquittoHash);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new FleetwaveError('E_DEVICE_EXISTS', `device ${d.id} is already registered`);
      }
      throw err;
    }
  }

  getDevice(id: string): DeviceRecord | undefined {
    const r = this.s.getDevice.get(id) as DeviceRow | undefined;
    return r && toDevice(r);
  }

  listDevices(): DeviceRecord[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]).map(toDevice);
  }

  updateDevice(id: string, patch: DevicePatch): void {
    const { columns, values } = patchColumns(patch);
    if (columns.length === 0) return;
    this.db.prepare(`UPDATE devices SET ${columns.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`).run(...values, id);
  }

  revokeDevice(id: string, at: number): boolean {
    return (
      this.db.prepare('UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes > 0
    );
  }

  insertTelemetry(rows: readonly NewTelemetry[], receivedAt: number): TelemetryRow[] {
    const out: TelemetryRow[] = [];
    for (const r of rows) {
      const info = this.s.insertTelemetry.run({ ...r, receivedAt });
      if (info.changes > 0) out.push({ ...r, cursor: Number(info.lastInsertRowid), receivedAt });
    }
    return out;
  }

  telemetry(q: TelemetryQuery): TelemetryRow[] {
    const stmt = q.pick === 'newest' ? this.s.telemetryNewest : this.s.telemetryAfter;
    const rows = stmt.all({
      after: q.after,
      limit: q.limit,
      device: q.device ?? null,
      stream: q.stream ?? null,
    }) as (Omit<TelemetryRow, 'receivedAt'> & { received_at: number })[];
    const out = rows.map(({ received_at, ...r }) => ({ ...r, receivedAt: received_at }));
    return q.pick === 'newest' ? out.reverse() : out;
  }

  missingRanges(device: string): [number, number][] {
    const rows = this.db
      .prepare(
        `SELECT prev + 1 AS "from", seq - 1 AS "to" FROM (
           SELECT seq, COALESCE(LAG(seq) OVER (ORDER BY seq), 0) AS prev FROM telemetry WHERE device = ?
         ) WHERE seq > prev + 1`,
      )
      .all(device) as { from: number; to: number }[];
    return rows.map((r) => [r.from, r.to]);
  }

  pruneTelemetry(receivedBefore: number): number {
    return this.db.prepare('DELETE FROM telemetry WHERE received_at < ?').run(receivedBefore).changes;
  }

  addAudit(e: Omit<AuditEntry, 'id'>): void {
    this.db
      .prepare('INSERT INTO audit (ts, actor, action, target, outcome, details) VALUES (?, ?, ?, ?, ?, ?)')
      .run(e.ts, e.actor, e.action, e.target, e.outcome, e.details);
  }

  audit(limit: number): AuditEntry[] {
    return this.db.prepare('SELECT * FROM audit ORDER BY id DESC LIMIT ?').all(limit) as AuditEntry[];
  }

  addApiToken(t: ApiTokenRecord): void {
    this.db
      .prepare('INSERT INTO api_tokens (id, name, role, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(t.id, t.name, t.role, t.hash, t.createdAt, t.revokedAt);
  }

  getApiToken(id: string): ApiTokenRecord | undefined {
    const r = this.db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return r && toApiToken(r);
  }

  listApiTokens(): ApiTokenRecord[] {
    return (this.db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id').all() as Record<string, unknown>[]).map(
      toApiToken,
    );
  }

  revokeApiToken(id: string, at: number): boolean {
    return (
      this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes >
      0
    );
  }

  addCertificate(c: DeviceCertificate): void {
    this.db
      .prepare(
        'INSERT INTO device_certificates (fingerprint, device, serial, not_before, not_after, issued_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(c.fingerprint, c.device, c.serial, c.notBefore, c.notAfter, c.issuedAt, c.revokedAt);
  }

  getCertificate(fingerprint: string): DeviceCertificate | undefined {
    const r = this.db.prepare('SELECT * FROM device_certificates WHERE fingerprint = ?').get(fingerprint);
    return r ? toCertificate(r as Record<string, unknown>) : undefined;
  }

  listCertificates(device: string): DeviceCertificate[] {
    return (
      this.db
        .prepare('SELECT * FROM device_certificates WHERE device = ? ORDER BY issued_at DESC, fingerprint')
        .all(device) as Record<string, unknown>[]
    ).map(toCertificate);
  }

  revokeCertificates(device: string, at: number, fingerprint?: string): number {
    return this.db
      .prepare(
        `UPDATE device_certificates SET revoked_at = ? WHERE device = ? AND revoked_at IS NULL${fingerprint ? ' AND fingerprint = ?' : ''}`,
      )
      .run(at, device, ...(fingerprint ? [fingerprint] : [])).changes;
  }

  rehashSecret(kind: SecretKind, id: string, from: string, to: string): boolean {
    const { table, column } = SECRET_COLUMNS[kind];
    return (
      this.db.prepare(`UPDATE ${table} SET ${column} = ? WHERE id = ? AND ${column} = ?`).run(to, id, from).changes > 0
    );
  }

  addEnrolmentToken(t: EnrolmentTokenRecord): void {
    this.db
      .prepare(
        'INSERT INTO enrolment_tokens (id, hash, uses_left, tags, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(t.id, t.hash, t.usesLeft, JSON.stringify(t.tags), t.createdAt, t.expiresAt);
  }

  getEnrolmentToken(id: string): EnrolmentTokenRecord | undefined {
    const r = this.db.prepare('SELECT * FROM enrolment_tokens WHERE id = ?').get(id) as
      | Record<string, unknown>
      | undefined;
    return r && toEnrolmentToken(r);
  }

  configLayers(): StoredLayer[] {
    return (
      this.db.prepare('SELECT name, layer, updated_at FROM config_layers ORDER BY name').all() as {
        name: string;
        layer: string;
        updated_at: number;
      }[]
    ).map((r) => ({ name: r.name, layer: r.layer, updatedAt: r.updated_at }));
  }

  putConfigLayer(l: StoredLayer): void {
    this.db
      .prepare(
        'INSERT INTO config_layers (name, layer, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET layer = excluded.layer, updated_at = excluded.updated_at',
      )
      .run(l.name, l.layer, l.updatedAt);
  }

  deleteConfigLayer(name: string): boolean {
    return this.db.prepare('DELETE FROM config_layers WHERE name = ?').run(name).changes > 0;
  }

  addConfigHistory(e: Omit<ConfigHistoryEntry, 'id'>): void {
    this.db
      .prepare('INSERT INTO config_history (ts, actor, action, name, before, after) VALUES (?, ?, ?, ?, ?, ?)')
      .run(e.ts, e.actor, e.action, e.name, e.before, e.after);
  }

  configHistory(limit: number, name?: string): ConfigHistoryEntry[] {
    return this.db
      .prepare('SELECT * FROM config_history WHERE (@name IS NULL OR name = @name) ORDER BY id DESC LIMIT @limit')
      .all({ name: name ?? null, limit }) as ConfigHistoryEntry[];
  }

  useEnrolmentToken(id: string): boolean {
    return (
      this.db.prepare('UPDATE enrolment_tokens SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0').run(id)
        .changes > 0
    );
  }
}

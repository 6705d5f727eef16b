import { FleetwaveError } from '@fleetwave/shared';
import { type DeviceRow, patchColumns, toApiToken, toCertificate, toDevice, toEnrolmentToken } from '../fleet-rows.js';
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
  SecretKind,
  StoredLayer,
} from '../fleet-store.js';
import { SECRET_COLUMNS } from '../fleet-store.js';
import type { Query } from './query.js';

/** The fleet port on PostgreSQL. */
export class PgFleet implements FleetStore {
  constructor(private readonly q: Query) {}

  async addDevice(d: NewDevice): Promise<void> {
    const r = await this.q(
      `INSERT INTO devices (id, tags, hardware, created_at, token_hash, mosquitto_hash) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO NOTHING`,
      [d.id, JSON.stringify(d.tags), d.hardware, d.createdAt, d.tokenHash, d.mosquittoHash],
    );
    if (r.rowCount === 0) throw new FleetwaveError('E_DEVICE_EXISTS', `device ${d.id} is already registered`);
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const r = await this.q<DeviceRow>('SELECT * FROM devices WHERE id = $1', [id]);
    return r.rows[0] && toDevice(r.rows[0]);
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return (await this.q<DeviceRow>('SELECT * FROM devices ORDER BY id COLLATE "C"')).rows.map(toDevice);
  }

  async updateDevice(id: string, patch: DevicePatch): Promise<void> {
    const { columns, values } = patchColumns(patch);
    if (columns.length === 0) return;
    const sets = columns.map((c, i) => `${c} = $${i + 1}`).join(', ');
    await this.q(`UPDATE devices SET ${sets} WHERE id = $${columns.length + 1}`, [...values, id]);
  }

  async revokeDevice(id: string, at: number): Promise<boolean> {
    const r = await this.q('UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id]);
    return (r.rowCount ?? 0) > 0;
  }

  async addAudit(e: Omit<AuditEntry, 'id'>): Promise<void> {
    await this.q('INSERT INTO audit (ts, actor, action, target, outcome, details) VALUES ($1, $2, $3, $4, $5, $6)', [
      e.ts,
      e.actor,
      e.action,
      e.target,
      e.outcome,
      e.details,
    ]);
  }

  async audit(limit: number): Promise<AuditEntry[]> {
    return (await this.q<AuditEntry>('SELECT * FROM audit ORDER BY id DESC LIMIT $1', [limit])).rows;
  }

  async addApiToken(t: ApiTokenRecord): Promise<void> {
    await this.q(
      'INSERT INTO api_tokens (id, name, role, hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [t.id, t.name, t.role, t.hash, t.createdAt, t.revokedAt],
    );
  }

  async getApiToken(id: string): Promise<ApiTokenRecord | undefined> {
    const r = (await this.q('SELECT * FROM api_tokens WHERE id = $1', [id])).rows[0];
    return r && toApiToken(r);
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    return (await this.q('SELECT * FROM api_tokens ORDER BY created_at, id')).rows.map(toApiToken);
  }

  async revokeApiToken(id: string, at: number): Promise<boolean> {
    const r = await this.q('UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id]);
    return (r.rowCount ?? 0) > 0;
  }

  async addCertificate(c: DeviceCertificate): Promise<void> {
    await this.q(
      `INSERT INTO device_certificates (fingerprint, device, serial, not_before, not_after, issued_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [c.fingerprint, c.device, c.serial, c.notBefore, c.notAfter, c.issuedAt, c.revokedAt],
    );
  }

  async getCertificate(fingerprint: string): Promise<DeviceCertificate | undefined> {
    const r = (await this.q('SELECT * FROM device_certificates WHERE fingerprint = $1', [fingerprint])).rows[0];
    return r && toCertificate(r);
  }

  async listCertificates(device: string): Promise<DeviceCertificate[]> {
    const r = await this.q(
      'SELECT * FROM device_certificates WHERE device = $1 ORDER BY issued_at DESC, fingerprint COLLATE "C"',
      [device],
    );
    return r.rows.map(toCertificate);
  }

  async revokeCertificates(device: string, at: number, fingerprint?: string): Promise<number> {
    const r = await this.q(
      `UPDATE device_certificates SET revoked_at = $1 WHERE device = $2 AND revoked_at IS NULL${fingerprint ? ' AND fingerprint = $3' : ''}`,
      [at, device, ...(fingerprint ? [fingerprint] : [])],
    );
    return r.rowCount ?? 0;
  }

  async rehashSecret(kind: SecretKind, id: string, from: string, to: string): Promise<boolean> {
    const { table, column } = SECRET_COLUMNS[kind];
    const r = await this.q(`UPDATE ${table} SET ${column} = $1 WHERE id = $2 AND ${column} = $3`, [to, id, from]);
    return (r.rowCount ?? 0) > 0;
  }

  async addEnrolmentToken(t: EnrolmentTokenRecord): Promise<void> {
    await this.q(
      'INSERT INTO enrolment_tokens (id, hash, uses_left, tags, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [t.id, t.hash, t.usesLeft, JSON.stringify(t.tags), t.createdAt, t.expiresAt],
    );
  }

  async getEnrolmentToken(id: string): Promise<EnrolmentTokenRecord | undefined> {
    const r = (await this.q('SELECT * FROM enrolment_tokens WHERE id = $1', [id])).rows[0];
    return r && toEnrolmentToken(r);
  }

  async useEnrolmentToken(id: string): Promise<boolean> {
    const r = await this.q('UPDATE enrolment_tokens SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0', [
      id,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  async configLayers(): Promise<StoredLayer[]> {
    const r = await this.q('SELECT name, layer, updated_at FROM config_layers ORDER BY name COLLATE "C"');
    return r.rows.map((x) => ({ name: x.name, layer: x.layer, updatedAt: x.updated_at }));
  }

  async putConfigLayer(l: StoredLayer): Promise<void> {
    await this.q(
      `INSERT INTO config_layers (name, layer, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET layer = excluded.layer, updated_at = excluded.updated_at`,
      [l.name, l.layer, l.updatedAt],
    );
  }

  async deleteConfigLayer(name: string): Promise<boolean> {
    return ((await this.q('DELETE FROM config_layers WHERE name = $1', [name])).rowCount ?? 0) > 0;
  }

  async addConfigHistory(e: Omit<ConfigHistoryEntry, 'id'>): Promise<void> {
    await this.q(
      'INSERT INTO config_history (ts, actor, action, name, before, after) VALUES ($1, $2, $3, $4, $5, $6)',
      [e.ts, e.actor, e.action, e.name, e.before, e.after],
    );
  }

  async configHistory(limit: number, name?: string): Promise<ConfigHistoryEntry[]> {
    const r = await this.q<ConfigHistoryEntry>(
      'SELECT * FROM config_history WHERE ($1::text IS NULL OR name = $1) ORDER BY id DESC LIMIT $2',
      [name ?? null, limit],
    );
    return r.rows;
  }
}

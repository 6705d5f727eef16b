/** The controller's source of truth (DESIGN invariant 4): devices, telemetry, tokens, audit. */
export type Role = 'viewer' | 'operator' | 'admin' | 'backend';
export type PresenceState = 'online' | 'offline' | 'unknown';

export interface DeviceRecord {
  id: string;
  tags: Record<string, string>;
  hardware: string | null;
  agentVersion: string | null;
  firmwareVersion: string | null;
  createdAt: number;
  lastSeen: number | null;
  presence: PresenceState;
  appliedConfigVersion: number | null;
  /** The version and JSON of the effective desired configuration last published to the device (0: none yet). */
  desiredVersion: number;
  desiredConfig: string | null;
  /** What the agent last reported: applied, or rejected with the reason. */
  configStatus: 'applied' | 'rejected' | null;
  configReason: string | null;
  revokedAt: number | null;
  /** Hash of the device token (`sha256$…`, or an older `scrypt$…` until its first use; never the token). */
  tokenHash: string;
  /** The same token as a Mosquitto PBKDF2-SHA512 hash, for a generated password file. */
  mosquittoHash: string;
  /** What the device runs, per release name (from its presence). */
  releases: Record<string, string>;
}

export type NewDevice = Pick<DeviceRecord, 'id' | 'tags' | 'hardware' | 'createdAt' | 'tokenHash' | 'mosquittoHash'>;
/** A client certificate the fleet CA issued for a device (the certificate itself is the device's). */
export interface DeviceCertificate {
  /** SHA-256 of its DER, lower-case hex. */
  fingerprint: string;
  device: string;
  serial: string;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
  revokedAt: number | null;
}

/** The three kinds of secret the controller issues, by the table that keeps their hashes. */
export type SecretKind = 'device' | 'api' | 'enrolment';

/** Table and column of each kind's hash (the same in SQLite and PostgreSQL). */
export const SECRET_COLUMNS: Record<SecretKind, { table: string; column: string }> = {
  device: { table: 'devices', column: 'token_hash' },
  api: { table: 'api_tokens', column: 'hash' },
  enrolment: { table: 'enrolment_tokens', column: 'hash' },
};

export type DevicePatch = Partial<
  Pick<
    DeviceRecord,
    | 'lastSeen'
    | 'presence'
    | 'agentVersion'
    | 'firmwareVersion'
    | 'appliedConfigVersion'
    | 'tags'
    | 'hardware'
    | 'desiredVersion'
    | 'desiredConfig'
    | 'configStatus'
    | 'configReason'
    | 'releases'
  >
>;

export interface StoredLayer {
  name: string;
  /** The layer as applied (ConfigLayer JSON). */
  layer: string;
  updatedAt: number;
}

export interface ConfigHistoryEntry {
  id: number;
  ts: number;
  actor: string;
  action: 'apply' | 'remove' | 'revert';
  name: string;
  /** The layer before and after the change (JSON), null when absent. */
  before: string | null;
  after: string | null;
}

export interface NewTelemetry {
  device: string;
  seq: number;
  stream: string;
  ts: number;
  kind: string;
  /** The record as JSON. */
  record: string;
}

export interface TelemetryRow extends NewTelemetry {
  /** Global, increasing: the resume point of the HTTP stream. */
  cursor: number;
  receivedAt: number;
}

export interface AuditEntry {
  id: number;
  ts: number;
  actor: string;
  action: string;
  target: string;
  outcome: 'ok' | 'denied' | 'error';
  details: string;
}

export interface ApiTokenRecord {
  id: string;
  name: string;
  role: Role;
  hash: string;
  createdAt: number;
  revokedAt: number | null;
}

export interface EnrolmentTokenRecord {
  id: string;
  hash: string;
  usesLeft: number;
  tags: Record<string, string>;
  createdAt: number;
  expiresAt: number | null;
}

export interface TelemetryQuery {
  after: number;
  limit: number;
  device?: string;
  stream?: string;
  /** The last `limit` records after the cursor instead of the first (returned in cursor order all the same). */
  pick?: 'oldest' | 'newest';
}

/**
 * Devices, credentials, audit and desired configuration: an async port (SQLite and PostgreSQL adapters, one contract
 * suite `fleet-store.contract.ts`). Telemetry has its own port (`TelemetryLog`); units of work are the database's
 * (`ControllerDatabase.transaction`).
 */
export interface FleetStore {
  /** Throws E_DEVICE_EXISTS when the id is registered. */
  addDevice(d: NewDevice): Promise<void>;
  getDevice(id: string): Promise<DeviceRecord | undefined>;
  listDevices(): Promise<DeviceRecord[]>;
  updateDevice(id: string, patch: DevicePatch): Promise<void>;
  revokeDevice(id: string, at: number): Promise<boolean>;
  addAudit(e: Omit<AuditEntry, 'id'>): Promise<void>;
  /** The newest entries first. */
  audit(limit: number): Promise<AuditEntry[]>;
  addApiToken(t: ApiTokenRecord): Promise<void>;
  getApiToken(id: string): Promise<ApiTokenRecord | undefined>;
  listApiTokens(): Promise<ApiTokenRecord[]>;
  revokeApiToken(id: string, at: number): Promise<boolean>;
  /**
   * Replaces a stored secret hash with another of the same secret (an older kind migrated on first use), only if it
   * is still `from`: false when a rotation or revocation changed it meanwhile.
   */
  rehashSecret(kind: SecretKind, id: string, from: string, to: string): Promise<boolean>;
  addCertificate(c: DeviceCertificate): Promise<void>;
  getCertificate(fingerprint: string): Promise<DeviceCertificate | undefined>;
  /** A device's certificates, newest first. */
  listCertificates(device: string): Promise<DeviceCertificate[]>;
  /** Revokes a device's certificates (one, with `fingerprint`) not revoked yet; returns how many. */
  revokeCertificates(device: string, at: number, fingerprint?: string): Promise<number>;
  addEnrolmentToken(t: EnrolmentTokenRecord): Promise<void>;
  getEnrolmentToken(id: string): Promise<EnrolmentTokenRecord | undefined>;
  /** Uses one enrolment; false when none is left. */
  useEnrolmentToken(id: string): Promise<boolean>;
  configLayers(): Promise<StoredLayer[]>;
  putConfigLayer(l: StoredLayer): Promise<void>;
  deleteConfigLayer(name: string): Promise<boolean>;
  addConfigHistory(e: Omit<ConfigHistoryEntry, 'id'>): Promise<void>;
  /** The newest entries first. */
  configHistory(limit: number, name?: string): Promise<ConfigHistoryEntry[]>;
}

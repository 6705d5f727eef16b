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
  /** scrypt hash of the device token (the token itself is never stored). */
  tokenHash: string;
  /** The same token as a Mosquitto PBKDF2-SHA512 hash, for a generated password file. */
  mosquittoHash: string;
  /** What the device runs, per release name (from its presence). */
  releases: Record<string, string>;
}

export type NewDevice = Pick<DeviceRecord, 'id' | 'tags' | 'hardware' | 'createdAt' | 'tokenHash' | 'mosquittoHash'>;
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

export interface FleetStore {
  transaction<T>(fn: () => T): T;
  addDevice(d: NewDevice): void;
  getDevice(id: string): DeviceRecord | undefined;
  listDevices(): DeviceRecord[];
  updateDevice(id: string, patch: DevicePatch): void;
  revokeDevice(id: string, at: number): boolean;
  /** Inserts the records not yet stored for (device, seq); returns the new rows with their cursors. */
  insertTelemetry(rows: readonly NewTelemetry[], receivedAt: number): TelemetryRow[];
  telemetry(q: TelemetryQuery): TelemetryRow[];
  /** Sequence ranges missing between 1 and the highest sequence stored for the device. */
  missingRanges(device: string): [from: number, to: number][];
  pruneTelemetry(receivedBefore: number): number;
  addAudit(e: Omit<AuditEntry, 'id'>): void;
  audit(limit: number): AuditEntry[];
  addApiToken(t: ApiTokenRecord): void;
  getApiToken(id: string): ApiTokenRecord | undefined;
  listApiTokens(): ApiTokenRecord[];
  revokeApiToken(id: string, at: number): boolean;
  addEnrolmentToken(t: EnrolmentTokenRecord): void;
  getEnrolmentToken(id: string): EnrolmentTokenRecord | undefined;
  /** Uses one enrolment; false when none is left. */
  useEnrolmentToken(id: string): boolean;
  configLayers(): StoredLayer[];
  putConfigLayer(l: StoredLayer): void;
  deleteConfigLayer(name: string): boolean;
  addConfigHistory(e: Omit<ConfigHistoryEntry, 'id'>): void;
  configHistory(limit: number, name?: string): ConfigHistoryEntry[];
  close(): void;
}

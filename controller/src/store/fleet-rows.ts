import { decodeColumn, StringMap } from './documents.js';
import type {
  ApiTokenRecord,
  DeviceCertificate,
  DevicePatch,
  DeviceRecord,
  EnrolmentTokenRecord,
} from './fleet-store.js';

/** The fleet tables' rows as both databases return them (the SQLite and the PostgreSQL adapter share these). */
export interface DeviceRow {
  id: string;
  tags: string;
  hardware: string | null;
  agent_version: string | null;
  firmware_version: string | null;
  created_at: number;
  last_seen: number | null;
  presence: DeviceRecord['presence'];
  applied_config_version: number | null;
  revoked_at: number | null;
  desired_version: number;
  desired_config: string | null;
  config_status: DeviceRecord['configStatus'];
  config_reason: string | null;
  token_hash: string;
  mosquitto_hash: string;
  releases: string;
}

export const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  tags: decodeColumn(StringMap, r.tags, `the tags of device ${r.id}`),
  hardware: r.hardware,
  agentVersion: r.agent_version,
  firmwareVersion: r.firmware_version,
  createdAt: r.created_at,
  lastSeen: r.last_seen,
  presence: r.presence,
  appliedConfigVersion: r.applied_config_version,
  desiredVersion: r.desired_version,
  desiredConfig: r.desired_config,
  configStatus: r.config_status,
  configReason: r.config_reason,
  revokedAt: r.revoked_at,
  tokenHash: r.token_hash,
  mosquittoHash: r.mosquitto_hash,
  releases: decodeColumn(StringMap, r.releases, `the releases of device ${r.id}`),
});

/** A device patch as column names and values (JSON for the object fields), in the patch's order. */
export function patchColumns(patch: DevicePatch): { columns: string[]; values: unknown[] } {
  const keys = Object.keys(patch) as (keyof DevicePatch)[];
  return {
    columns: keys.map((k) => PATCH_COLUMNS[k]),
    values: keys.map((k) => (k === 'tags' || k === 'releases' ? JSON.stringify(patch[k]) : patch[k])),
  };
}

const PATCH_COLUMNS: Record<keyof DevicePatch, string> = {
  lastSeen: 'last_seen',
  presence: 'presence',
  agentVersion: 'agent_version',
  firmwareVersion: 'firmware_version',
  appliedConfigVersion: 'applied_config_version',
  tags: 'tags',
  hardware: 'hardware',
  desiredVersion: 'desired_version',
  desiredConfig: 'desired_config',
  configStatus: 'config_status',
  configReason: 'config_reason',
  releases: 'releases',
};

export const toApiToken = (r: Record<string, unknown>): ApiTokenRecord => ({
  id: r.id as string,
  name: r.name as string,
  role: r.role as ApiTokenRecord['role'],
  hash: r.hash as string,
  createdAt: r.created_at as number,
  revokedAt: r.revoked_at as number | null,
});

export const toEnrolmentToken = (r: Record<string, unknown>): EnrolmentTokenRecord => ({
  id: r.id as string,
  hash: r.hash as string,
  usesLeft: r.uses_left as number,
  tags: decodeColumn(StringMap, r.tags as string, `the tags of enrolment token ${r.id}`),
  createdAt: r.created_at as number,
  expiresAt: r.expires_at as number | null,
});

export const toCertificate = (r: Record<string, unknown>): DeviceCertificate => ({
  fingerprint: r.fingerprint as string,
  device: r.device as string,
  serial: r.serial as string,
  notBefore: Number(r.not_before),
  notAfter: Number(r.not_after),
  issuedAt: Number(r.issued_at),
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
});

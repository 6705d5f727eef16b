import { z } from 'zod';
import { Count, DeviceId, EpochMs, ShortText } from './common.js';
import { FilterRules } from './filters.js';
import { InstalledReleases } from './update.js';

export const Presence = z.strictObject({
  v: z.literal(1),
  device: DeviceId,
  state: z.enum(['online', 'offline']),
  ts: EpochMs,
  agentVersion: ShortText.optional(),
  firmwareVersion: ShortText.optional(),
  /** The releases the device runs, by name (the update installers keep this). */
  releases: InstalledReleases.optional(),
});
export type Presence = z.infer<typeof Presence>;

/** `{root}/devices/{id}/certificate/request`: a device renewing its client certificate sends a CSR for a new key. */
export const CertificateRenewalRequest = z.strictObject({
  v: z.literal(1),
  device: DeviceId,
  csr: z.string().min(1).max(16_384),
});
export type CertificateRenewalRequest = z.infer<typeof CertificateRenewalRequest>;

/** `{root}/devices/{id}/certificate/issued`: the controller's answer, the new certificate or why there is none. */
export const CertificateIssued = z.union([
  z.strictObject({
    v: z.literal(1),
    device: DeviceId,
    certificate: z.string().min(1).max(16_384),
    fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
    notAfter: EpochMs,
  }),
  z.strictObject({
    v: z.literal(1),
    device: DeviceId,
    error: z.strictObject({ code: ShortText, message: z.string().max(1000) }),
  }),
]);
export type CertificateIssued = z.infer<typeof CertificateIssued>;

export const RestartReason = z.enum(['first-boot', 'clean', 'crash', 'power-loss', 'watchdog', 'update', 'unknown']);

/** The gateway's own health, one sample. Every field but the identity may be missing: readers say what they could not read. */
export const HealthReport = z.strictObject({
  v: z.literal(1),
  device: DeviceId,
  ts: EpochMs,
  bootId: ShortText.optional(),
  uptimeS: z.number().min(0).optional(),
  restartReason: RestartReason.optional(),
  cpuTempC: z.number().min(-100).max(200).optional(),
  throttled: z
    .strictObject({
      underVoltage: z.boolean(),
      throttled: z.boolean(),
      freqCapped: z.boolean(),
      softTempLimit: z.boolean(),
    })
    .optional(),
  load1: z.number().min(0).optional(),
  memUsedPct: z.number().min(0).max(100).optional(),
  swapUsedPct: z.number().min(0).max(100).optional(),
  diskUsedPct: z.number().min(0).max(100).optional(),
  flashWearPct: z.number().min(0).max(100).optional(),
  wifiSignalDbm: z.number().min(-150).max(0).optional(),
  /** SD/MMC errors the host controller counted since boot (debugfs err_stats, summed). */
  mmcErrors: Count.optional(),
  /** Network link up/down changes since boot (carrier_changes of eth0 and wlan0). */
  linkChanges: Count.optional(),
  /** Under-voltage episodes since the agent started (Raspberry Pi: the kernel's rpi_volt alarm, else get_throttled). */
  underVoltageEvents: Count.optional(),
  agentRestarts: Count.optional(),
  reconnects: Count.optional(),
  backlogDepth: Count.optional(),
  /** The agent's data directory is full: it refuses readings and drains (agent/README.md, "A full disk"). */
  storageFull: z.boolean().optional(),
  unreadable: z.array(ShortText).max(64).default([]),
});
export type HealthReport = z.infer<typeof HealthReport>;

/** Settings the controller may change at run time (issue "desired configuration" grows this). */
export const AgentTunables = z.strictObject({
  backlogIntervalMs: z.number().int().min(1000).max(86_400_000).optional(),
  healthIntervalMs: z.number().int().min(1000).max(86_400_000).optional(),
  batchMaxRecords: z.number().int().min(1).max(10_000).optional(),
  filters: FilterRules.optional(),
});

export const DesiredConfig = z.strictObject({
  v: z.literal(1),
  device: DeviceId,
  version: z.number().int().min(1),
  config: AgentTunables,
});
export type DesiredConfig = z.infer<typeof DesiredConfig>;

export const ReportedConfig = z.strictObject({
  v: z.literal(1),
  device: DeviceId,
  version: z.number().int().min(0),
  status: z.enum(['applied', 'rejected']),
  reason: ShortText.optional(),
  ts: EpochMs,
});
export type ReportedConfig = z.infer<typeof ReportedConfig>;

import { gunzipSync } from 'node:zlib';
import {
  BacklogReport,
  type CleanRecord,
  decodeMessage,
  type ErrorCode,
  FleetwaveError,
  HealthReport,
  Presence,
  ReportedConfig,
  TelemetryBatch,
} from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { FleetStore } from '../store/fleet-store.js';

export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export interface IngestResult {
  stored: number;
  duplicates: number;
}

export interface IngestOptions {
  store: FleetStore;
  now: () => number;
  log: Logger;
  /** New clean records, after they were committed (publish them to backends). */
  onClean: (device: string, records: CleanRecord[]) => void;
}

/** Decodes a batch payload: gzip when it starts with the gzip magic bytes, JSON otherwise. */
export function decodeBatch(payload: Buffer): TelemetryBatch {
  let bytes = payload;
  if (payload[0] === 0x1f && payload[1] === 0x8b) {
    try {
      bytes = gunzipSync(payload, { maxOutputLength: MAX_BATCH_BYTES });
    } catch (err) {
      throw new FleetwaveError('E_PAYLOAD_ENCODING', `gzip payload does not inflate: ${(err as Error).message}`);
    }
  }
  return decodeMessage(TelemetryBatch, bytes, 'telemetry batch', { maxBytes: MAX_BATCH_BYTES });
}

/**
 * Controller ingest: validates what devices publish, drops telemetry duplicates by (device, sequence), stores the
 * rest, keeps presence and last-seen, and hands clean records on. Every method is synchronous over SQLite, so a
 * caller can acknowledge the device's PUBLISH after it returns (commit, then acknowledge).
 */
export class TelemetryIngest {
  readonly rejected = new Map<string, Partial<Record<ErrorCode, number>>>();
  readonly latestBacklog = new Map<string, BacklogReport>();
  readonly latestHealth = new Map<string, HealthReport>();
  totals = { stored: 0, duplicates: 0, rejected: 0 };

  constructor(private readonly o: IngestOptions) {}

  private reject(device: string, err: unknown): FleetwaveError {
    const e = err instanceof FleetwaveError ? err : new FleetwaveError('E_SCHEMA', (err as Error).message);
    const per = this.rejected.get(device) ?? {};
    per[e.code] = (per[e.code] ?? 0) + 1;
    this.rejected.set(device, per);
    this.totals.rejected++;
    this.o.log.warn({ device, code: e.code, err: e.message.slice(0, 300) }, 'message rejected');
    return e;
  }

  /** Throws (after counting) a coded error when the batch is malformed or names another device. */
  telemetry(device: string, payload: Buffer): IngestResult {
    let batch: TelemetryBatch;
    try {
      batch = decodeBatch(payload);
      if (batch.device !== device) {
        throw new FleetwaveError('E_FORBIDDEN', `a batch of ${batch.device} arrived on the topic of ${device}`);
      }
    } catch (err) {
      throw this.reject(device, err);
    }
    const now = this.o.now();
    const rows = batch.records.map((r) => ({
      device,
      seq: r.seq,
      stream: r.stream,
      ts: r.ts,
      kind: r.kind,
      record: JSON.stringify(r),
    }));
    const fresh = this.o.store.transaction(() => {
      const inserted = this.o.store.insertTelemetry(rows, now);
      this.o.store.updateDevice(device, { lastSeen: now });
      return inserted;
    });
    this.totals.stored += fresh.length;
    this.totals.duplicates += rows.length - fresh.length;
    if (fresh.length) {
      this.o.onClean(
        device,
        fresh.map((r) => ({ cursor: r.cursor, device, receivedAt: r.receivedAt, record: JSON.parse(r.record) })),
      );
    }
    return { stored: fresh.length, duplicates: rows.length - fresh.length };
  }

  presence(device: string, payload: Buffer): void {
    try {
      const p = decodeMessage(Presence, payload, 'presence');
      if (p.device !== device) throw new FleetwaveError('E_FORBIDDEN', `presence of ${p.device} on ${device}'s topic`);
      this.o.store.updateDevice(device, {
        presence: p.state,
        lastSeen: this.o.now(),
        ...(p.agentVersion && { agentVersion: p.agentVersion }),
        ...(p.firmwareVersion && { firmwareVersion: p.firmwareVersion }),
      });
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  backlog(device: string, payload: Buffer): void {
    try {
      this.latestBacklog.set(device, decodeMessage(BacklogReport, payload, 'backlog report'));
      this.o.store.updateDevice(device, { lastSeen: this.o.now() });
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  health(device: string, payload: Buffer): void {
    try {
      this.latestHealth.set(device, decodeMessage(HealthReport, payload, 'health report'));
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  reportedConfig(device: string, payload: Buffer): void {
    try {
      const r = decodeMessage(ReportedConfig, payload, 'reported config');
      if (r.status === 'applied') this.o.store.updateDevice(device, { appliedConfigVersion: r.version });
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  /** Marks a device connected or gone (the broker saw its CONNECT or its connection end). */
  connection(device: string, online: boolean): void {
    this.o.store.updateDevice(device, { presence: online ? 'online' : 'offline', lastSeen: this.o.now() });
  }
}

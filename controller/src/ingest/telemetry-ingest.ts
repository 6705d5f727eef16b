import {
  BacklogReport,
  type CleanRecord,
  type DeviceTopicKind,
  decodeMessage,
  decodeTelemetryPayload,
  type ErrorCode,
  FleetwaveError,
  HealthReport,
  Presence,
  ReportedConfig,
  type TelemetryBatch,
} from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { ControllerDatabase } from '../store/database.js';
import type { DevicePatch, NewTelemetry, TelemetryRow } from '../store/fleet-store.js';

export interface IngestResult {
  stored: number;
  duplicates: number;
}

type Done = (err?: FleetwaveError, result?: IngestResult) => void;

interface Queued {
  device: string;
  rows: NewTelemetry[];
  done: Done;
}

export interface IngestOptions {
  /** Where telemetry is committed (its TelemetryLog port) and presence kept (its fleet port). */
  db: Pick<ControllerDatabase, 'fleet' | 'telemetry' | 'transaction'>;
  /** Batches arriving within this window share one transaction (default 2 ms). */
  commitWindowMs?: number;
  /** A group is committed at once when it holds this many records (default 5,000). */
  maxGroupRecords?: number;
  now: () => number;
  log: Logger;
  /** New clean records, after they were committed (publish them to backends). */
  onClean: (device: string, records: CleanRecord[]) => void;
  /** A valid health report arrived (the health history keeps it). */
  onHealth?: (device: string, report: HealthReport) => void;
  /** A device asked for a renewed client certificate (the payload is decoded by the handler). */
  onCertificateRequest?: (device: string, payload: Buffer) => void;
}

/**
 * Controller ingest: validates what devices publish, drops telemetry duplicates by (device, sequence), stores the
 * rest, keeps presence and last-seen, and hands clean records on. Telemetry goes in group commits through the
 * TelemetryLog port, one at a time (the next group gathers meanwhile), and each batch's `done` runs after its commit,
 * so a caller acknowledging the device's PUBLISH there acknowledges only what is durable.
 */
export class TelemetryIngest {
  readonly rejected = new Map<string, Partial<Record<ErrorCode, number>>>();
  readonly latestBacklog = new Map<string, BacklogReport>();
  readonly latestHealth = new Map<string, HealthReport>();
  totals = { stored: 0, duplicates: 0, rejected: 0 };
  private queue: Queued[] = [];
  private queuedRecords = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The commit in flight: groups commit one after another, in the order they were gathered. */
  private committing: Promise<void> = Promise.resolve();
  /** Each device's registry writes, one after another (so a later presence never lands before an earlier one). */
  private readonly writes = new Map<string, Promise<void>>();

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

  private parse(device: string, payload: Buffer): NewTelemetry[] {
    let batch: TelemetryBatch;
    try {
      batch = decodeTelemetryPayload(payload);
      if (batch.device !== device) {
        throw new FleetwaveError('E_FORBIDDEN', `a batch of ${batch.device} arrived on the topic of ${device}`);
      }
    } catch (err) {
      throw this.reject(device, err);
    }
    return batch.records.map((r) => ({
      device,
      seq: r.seq,
      stream: r.stream,
      ts: r.ts,
      kind: r.kind,
      record: JSON.stringify(r),
    }));
  }

  /** Stores the queued batches in one transaction (one fsync), then calls each back and hands on the new records. */
  private async commit(group: readonly Queued[]): Promise<void> {
    const now = this.o.now();
    let results: TelemetryRow[][];
    try {
      results = await this.o.db.telemetry.insertGroups(
        group.map((q) => q.rows),
        now,
      );
    } catch (err) {
      const e = new FleetwaveError('E_OUTBOX_CLOSED', `telemetry commit failed: ${(err as Error).message}`);
      for (const q of group) q.done(e);
      return;
    }
    // last seen is advisory: one write of its own for the group after the telemetry committed, not waited for
    const devices = [...new Set(group.map((q) => q.device))];
    void this.o.db
      .transaction(async () => {
        for (const device of devices) await this.o.db.fleet.updateDevice(device, { lastSeen: now });
      })
      .catch((err) => this.o.log.warn({ err: (err as Error).message }, 'last-seen update failed'));
    group.forEach((q, i) => {
      const fresh = results[i]!;
      this.totals.stored += fresh.length;
      this.totals.duplicates += q.rows.length - fresh.length;
      if (fresh.length) {
        this.o.onClean(
          q.device,
          fresh.map((r) => ({
            cursor: r.cursor,
            device: q.device,
            receivedAt: r.receivedAt,
            record: JSON.parse(r.record),
          })),
        );
      }
      q.done(undefined, { stored: fresh.length, duplicates: q.rows.length - fresh.length });
    });
  }

  /** Validates and stores a batch now. Rejects (after counting) with a coded error when it is malformed or not the device's. */
  telemetry(device: string, payload: Buffer): Promise<IngestResult> {
    return new Promise((resolve, reject) => {
      let rows: NewTelemetry[];
      try {
        rows = this.parse(device, payload);
      } catch (err) {
        reject(err);
        return;
      }
      this.enqueueCommit([{ device, rows, done: (err, r) => (err ? reject(err) : resolve(r!)) }]);
    });
  }

  private enqueueCommit(group: readonly Queued[]): void {
    this.committing = this.committing.then(() => this.commit(group));
  }

  /** Resolves when every group gathered so far is committed (and its callbacks ran). */
  async settled(): Promise<void> {
    this.flush();
    await this.committing;
  }

  /**
   * Validates a batch now and stores it with the others that arrive within the commit window (group commit); `done`
   * runs after the commit, so a caller acknowledging the device there acknowledges only what is durable.
   */
  submitTelemetry(device: string, payload: Buffer, done: Done): void {
    let rows: NewTelemetry[];
    try {
      rows = this.parse(device, payload);
    } catch (err) {
      done(err as FleetwaveError);
      return;
    }
    this.queue.push({ device, rows, done });
    this.queuedRecords += rows.length;
    if (this.queuedRecords >= (this.o.maxGroupRecords ?? 5000)) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.o.commitWindowMs ?? 2);
  }

  /** Commits what is queued now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const group = this.queue;
    this.queue = [];
    this.queuedRecords = 0;
    if (group.length) this.enqueueCommit(group);
  }

  /**
   * Writes a device's registry fields after its earlier writes; a failure is logged (presence and last seen are
   * advisory: the next message or connection writes them again). Resolves when written.
   */
  private updateDevice(device: string, patch: DevicePatch): Promise<void> {
    const prev = this.writes.get(device) ?? Promise.resolve();
    const next = prev.then(() =>
      this.o.db.fleet
        .updateDevice(device, patch)
        .catch((err) => this.o.log.warn({ device, err: (err as Error).message }, 'device registry update failed')),
    );
    this.writes.set(device, next);
    void next.then(() => {
      if (this.writes.get(device) === next) this.writes.delete(device);
    });
    return next;
  }

  /** Resolves when the registry writes queued so far are done. */
  async written(): Promise<void> {
    await Promise.all([...this.writes.values()]);
  }

  presence(device: string, payload: Buffer): Promise<void> {
    try {
      const p = decodeMessage(Presence, payload, 'presence');
      if (p.device !== device) throw new FleetwaveError('E_FORBIDDEN', `presence of ${p.device} on ${device}'s topic`);
      return this.updateDevice(device, {
        presence: p.state,
        lastSeen: this.o.now(),
        ...(p.agentVersion && { agentVersion: p.agentVersion }),
        ...(p.firmwareVersion && { firmwareVersion: p.firmwareVersion }),
        ...(p.releases && { releases: p.releases }),
      });
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  backlog(device: string, payload: Buffer): Promise<void> {
    try {
      this.latestBacklog.set(device, decodeMessage(BacklogReport, payload, 'backlog report'));
      return this.updateDevice(device, { lastSeen: this.o.now() });
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  health(device: string, payload: Buffer): void {
    try {
      const report = decodeMessage(HealthReport, payload, 'health report');
      if (report.device !== device)
        throw new FleetwaveError('E_FORBIDDEN', `a report of ${report.device} on ${device}'s topic`);
      this.latestHealth.set(device, report);
      this.o.onHealth?.(device, report);
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  reportedConfig(device: string, payload: Buffer): Promise<void> {
    try {
      const r = decodeMessage(ReportedConfig, payload, 'reported config');
      if (r.device !== device) throw new FleetwaveError('E_FORBIDDEN', `a report of ${r.device} on ${device}'s topic`);
      return this.updateDevice(
        device,
        r.status === 'applied'
          ? { appliedConfigVersion: r.version, configStatus: 'applied', configReason: null }
          : { configStatus: 'rejected', configReason: `version ${r.version}: ${r.reason ?? 'no reason given'}` },
      );
    } catch (err) {
      throw this.reject(device, err);
    }
  }

  /**
   * A device's non-telemetry message, routed by its topic kind (presence, backlog, health, reported config). A bad
   * message is counted and dropped (a coded error, already logged); anything else is logged as a controller fault.
   */
  statusMessage(device: string, kind: DeviceTopicKind, payload: Buffer): void {
    try {
      // the registry writes never reject (a failure is logged in updateDevice)
      if (kind === 'presence') void this.presence(device, payload);
      else if (kind === 'backlog') void this.backlog(device, payload);
      else if (kind === 'health') this.health(device, payload);
      else if (kind === 'config/reported') void this.reportedConfig(device, payload);
      else if (kind === 'certificate/request') this.o.onCertificateRequest?.(device, payload);
    } catch (err) {
      if (!(err instanceof FleetwaveError)) this.o.log.error({ err, device, kind }, 'ingest failed');
    }
  }

  /** Marks a device connected or gone (the broker saw its CONNECT or its connection end). */
  connection(device: string, online: boolean): Promise<void> {
    return this.updateDevice(device, { presence: online ? 'online' : 'offline', lastSeen: this.o.now() });
  }
}

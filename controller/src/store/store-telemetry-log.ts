import type { FleetStore } from './fleet-store.js';
import type { TelemetryLog } from './telemetry-log.js';

/**
 * The telemetry port over a synchronous FleetStore: the embedded SQLite file (or the memory store of API tests).
 * SQLite has one writer at a time and AUTOINCREMENT never reuses a value, so the cursor is in commit order by
 * construction; every call is one synchronous transaction.
 */
export class StoreTelemetryLog implements TelemetryLog {
  constructor(private readonly store: FleetStore) {}

  async insert(...a: Parameters<TelemetryLog['insert']>) {
    return this.store.transaction(() => this.store.insertTelemetry(...a));
  }

  async insertGroups(groups: Parameters<TelemetryLog['insertGroups']>[0], receivedAt: number) {
    return this.store.transaction(() => groups.map((rows) => this.store.insertTelemetry(rows, receivedAt)));
  }

  async read(q: Parameters<TelemetryLog['read']>[0]) {
    return this.store.telemetry(q);
  }

  async missingRanges(device: string) {
    return this.store.missingRanges(device);
  }

  async prune(receivedBefore: number) {
    return this.store.pruneTelemetry(receivedBefore);
  }

  async close() {
    this.store.close();
  }
}

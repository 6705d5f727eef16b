import type { SqliteFleetStore } from './sqlite-fleet-store.js';
import type { TelemetryLog } from './telemetry-log.js';

/**
 * The telemetry port over the embedded SQLite store. SQLite has one writer at a time and AUTOINCREMENT never reuses
 * a value, so the cursor is in commit order by construction; every call is one synchronous transaction.
 */
export class SqliteTelemetryLog implements TelemetryLog {
  constructor(private readonly store: SqliteFleetStore) {}

  async insert(...a: Parameters<TelemetryLog['insert']>) {
    return this.store.transaction(() => this.store.insertTelemetry(...a));
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

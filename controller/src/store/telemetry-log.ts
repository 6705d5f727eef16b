import type { NewTelemetry, TelemetryQuery, TelemetryRow } from './fleet-store.js';

/**
 * The controller's telemetry as an async port (issue "its state on PostgreSQL", first part): what ingest commits
 * and backends read by cursor. Any database can stand behind it; the SQLite and PostgreSQL adapters pass one contract
 * suite (`telemetry-log.contract.ts`).
 *
 * The cursor is global, increasing **in commit order** and gap-free: a reader that has seen cursor X and asks for
 * "after X" never misses a row that commits later, whatever the number of writers (several controller replicas).
 */
export interface TelemetryLog {
  /** One transaction: the rows not yet stored for (device, seq) get the next cursors; returns those rows. */
  insert(rows: readonly NewTelemetry[], receivedAt: number): Promise<TelemetryRow[]>;
  /**
   * A group commit: several batches in one transaction, in order (a row repeated in a later batch of the group is a
   * duplicate); returns each batch's new rows.
   */
  insertGroups(groups: readonly (readonly NewTelemetry[])[], receivedAt: number): Promise<TelemetryRow[][]>;
  read(q: TelemetryQuery): Promise<TelemetryRow[]>;
  /** Sequence ranges missing between 1 and the highest sequence stored for the device. */
  missingRanges(device: string): Promise<[from: number, to: number][]>;
  /** Deletes what was received before the time; returns how many rows. */
  prune(receivedBefore: number): Promise<number>;
  close(): Promise<void>;
}

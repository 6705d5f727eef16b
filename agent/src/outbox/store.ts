/** A reading (or loss record) waiting in the outbox, before it got a wire sequence number. */
export interface OutboxRow {
  /** Local ingest id, increasing; assigned by the store. */
  id: number;
  stream: string;
  /** 0 = alert … 3 = bulk; lower leaves first and is dropped last. */
  rank: number;
  ts: number;
  /** Expiry instant (ms) from the stream's time-to-live, or null. */
  expiresAt: number | null;
  /** The record's JSON members without `seq`, e.g. `"kind":"reading","stream":"a/b","ts":1,"value":2`. */
  body: string;
  /** Bytes this row counts against the cap. */
  bytes: number;
}

export type NewRow = Omit<OutboxRow, 'id'>;

/** A batch formed for sending: sequence numbers are fixed, the payload is re-sent byte for byte until acknowledged. */
export interface OutboxBatch {
  seqFrom: number;
  seqTo: number;
  payload: Buffer;
  createdAt: number;
}

export interface OutboxCounters {
  nextSeq: number;
  droppedCap: number;
  droppedTtl: number;
}

export interface OutboxTotals {
  rows: number;
  rowBytes: number;
  batches: number;
  batchBytes: number;
  oldestTs: number | null;
}

/**
 * The outbox's storage port. Every method but `close` runs inside `transaction` when the caller needs atomicity;
 * `transaction` is where durability lives (one commit, one fsync in the SQLite adapter).
 */
export interface OutboxStore {
  transaction<T>(fn: () => T): T;
  insertRows(rows: readonly NewRow[]): number[];
  /** Removes and returns rows of the lowest priority (highest rank), oldest first, until `bytes` are freed. Loss rows are kept. */
  takeLowest(bytes: number): OutboxRow[];
  /** Removes and returns rows whose expiresAt <= now. */
  takeExpired(now: number): OutboxRow[];
  /** Removes and returns the next rows to send: rank, then id; at most maxRecords and (but at least one) maxBytes. */
  takeForBatch(maxRecords: number, maxBytes: number): OutboxRow[];
  /** The unsent loss record of a stream for a reason, if there is one (to widen it rather than add another). */
  pendingLoss(stream: string, reason: 'cap' | 'ttl'): OutboxRow | undefined;
  /** Replaces a row's body (and its byte count). */
  updateRow(id: number, body: string, bytes: number): void;
  insertBatch(batch: OutboxBatch): void;
  deleteBatch(seqFrom: number): boolean;
  batches(): OutboxBatch[];
  counters(): OutboxCounters;
  setCounters(c: OutboxCounters): void;
  totals(): OutboxTotals;
  /** Filter states by stream (JSON), written in the same transaction as the rows they produced. */
  filterStates(): Map<string, string>;
  saveFilterStates(entries: readonly [stream: string, json: string | null][]): void;
  /** Small persisted settings (the applied desired configuration). */
  setting(key: string): string | undefined;
  setSetting(key: string, value: string): void;
  close(): void;
}

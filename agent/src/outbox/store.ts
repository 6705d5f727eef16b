/**
 * One group commit's records of one priority class (and time-to-live), encoded once as a wire-format v2 chunk
 * (shared/wire-v2.md). It is stored as one row, sent byte for byte inside a batch and deleted whole on the PUBACK.
 */
export interface NewChunk {
  /** 0 = alert … 3 = bulk; lower leaves first and is dropped last. */
  rank: number;
  records: number;
  /** The encoded chunk (codec byte and body), exactly as it goes on the wire. */
  body: Buffer;
  /** The oldest record's timestamp (backlog age). */
  firstTs: number;
  /** When the chunk's newest record passes its stream's time-to-live (ms), or null. */
  expiresAt: number | null;
  /** A loss chunk holds the one loss record of this stream and reason; it is widened in place, never dropped. */
  loss?: { stream: string; reason: 'cap' | 'ttl' };
}

export interface StoredChunk extends NewChunk {
  /** Increasing; ids times 65,536 plus a record's position are the local ingest ids loss records name. */
  id: number;
  /** The first sequence number, once the chunk was claimed for a batch; null while it waits. */
  seqFrom: number | null;
}

export interface OutboxCounters {
  nextSeq: number;
  droppedCap: number;
  droppedTtl: number;
}

export interface OutboxTotals {
  chunks: number;
  records: number;
  /** What the chunks count against the cap: their bytes plus CHUNK_OVERHEAD_BYTES each. */
  bytes: number;
  /** Chunks claimed for a batch (sent or about to be) and their records. */
  claimedChunks: number;
  claimedRecords: number;
  waitingChunks: number;
  oldestTs: number | null;
}

/** Per-chunk bookkeeping bytes on top of its body (row header, columns, index entry): what the cap counts. */
export const CHUNK_OVERHEAD_BYTES = 64;

/**
 * The outbox's storage port. The caller wraps what must be atomic in `transaction`, where durability lives (one
 * commit, one fsync in the SQLite adapter). The store assigns chunk ids and sequence numbers: consecutive per device,
 * in claim order, never reused.
 */
export interface OutboxStore {
  transaction<T>(fn: () => T): T;
  /** Adds chunks; with `claim` they are claimed in the same step, in the order given (nothing else may be waiting). */
  insertChunks(chunks: readonly NewChunk[], claim: boolean): StoredChunk[];
  /** Waiting (unclaimed) chunks in send order: rank, then id; at most `limit`. */
  waiting(limit: number): StoredChunk[];
  /** Claims waiting chunks (as waiting() returned them) in the order given, with consecutive sequence numbers. */
  claim(chunks: readonly StoredChunk[]): StoredChunk[];
  /** Claimed chunks not yet deleted, in sequence order (re-sent after a reconnect or a restart). */
  claimed(): StoredChunk[];
  deleteChunks(ids: readonly number[]): void;
  /** Removes and returns waiting chunks of the lowest priority, oldest first, until `bytes` are freed (loss chunks stay). */
  takeLowest(bytes: number): StoredChunk[];
  /** Removes and returns waiting chunks whose expiresAt <= now. */
  takeExpired(now: number): StoredChunk[];
  /** The waiting loss chunk of a stream for a reason, if there is one (to widen it rather than add another). */
  pendingLoss(stream: string, reason: 'cap' | 'ttl'): StoredChunk | undefined;
  /** Replaces a waiting chunk's body (a widened loss record). */
  replaceBody(id: number, body: Buffer): void;
  counters(): OutboxCounters;
  addDropped(cap: number, ttl: number): void;
  totals(): OutboxTotals;
  /** Filter states by stream (JSON), written in the same transaction as the records they produced. */
  filterStates(): Map<string, string>;
  saveFilterStates(entries: readonly [stream: string, json: string | null][]): void;
  /** Small persisted settings (the applied desired configuration). */
  setting(key: string): string | undefined;
  setSetting(key: string, value: string): void;
  close(): void;
}

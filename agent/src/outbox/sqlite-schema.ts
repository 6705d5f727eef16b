// The SQLite outbox's tables and how a row becomes a StoredChunk (used by sqlite-store.ts only).
import { CHUNK_OVERHEAD_BYTES, type StoredChunk } from './store.js';

/**
 * Where a chunk's sequence numbers live. A chunk claimed as it is inserted (steady state) carries them in its own
 * row; a chunk claimed later (draining a backlog) gets a row in `claims` (a few bytes, many to a page), so claiming
 * never rewrites the chunk's own pages: a reading is written once and leaves as it was written.
 */

/** A chunk that waits: neither claimed as it was inserted nor since. */
export const WAITING = 'c.seq_from IS NULL AND NOT EXISTS (SELECT 1 FROM claims k WHERE k.chunk = c.id)';

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY,
  seq_from INTEGER,
  rank INTEGER NOT NULL,
  records INTEGER NOT NULL,
  first_ts INTEGER NOT NULL,
  expires_at INTEGER,
  loss_stream TEXT,
  loss_reason TEXT,
  body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_waiting ON chunks(rank, id) WHERE seq_from IS NULL;
CREATE INDEX IF NOT EXISTS chunks_expiry ON chunks(expires_at) WHERE seq_from IS NULL AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS claims (chunk INTEGER PRIMARY KEY, seq_from INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS filter_state (stream TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export interface DbChunk {
  id: number;
  seq_from: number | null;
  /** From claims, when the chunk was claimed after it was stored. */
  seq: number | null;
  rank: number;
  records: number;
  first_ts: number;
  expires_at: number | null;
  loss_stream: string | null;
  loss_reason: 'cap' | 'ttl' | null;
  body: Buffer;
}

export const toChunk = (r: DbChunk): StoredChunk => ({
  id: r.id,
  seqFrom: r.seq_from ?? r.seq,
  rank: r.rank,
  records: r.records,
  firstTs: r.first_ts,
  expiresAt: r.expires_at,
  body: r.body,
  ...(r.loss_stream && r.loss_reason && { loss: { stream: r.loss_stream, reason: r.loss_reason } }),
});

export const cost = (ch: { body: Buffer }) => ch.body.length + CHUNK_OVERHEAD_BYTES;

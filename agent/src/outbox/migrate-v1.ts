import { gunzipSync } from 'node:zlib';
import { type ChunkRecord, encodeChunk } from '@fleetwave/shared';
import type Database from 'better-sqlite3';
import type { NewChunk } from './store.js';

interface V1Row {
  id: number;
  rank: number;
  ts: number;
  expires_at: number | null;
  body: string;
  loss: number;
}

const MIGRATED_CHUNK_RECORDS = 1000;

function chunkOf(rank: number, records: ChunkRecord[], expiresAt: number | null): NewChunk {
  const loss = records.length === 1 && records[0]!.kind === 'loss' ? records[0] : undefined;
  return {
    rank,
    records: records.length,
    body: encodeChunk(records),
    firstTs: Math.min(...records.map((r) => r.ts)),
    expiresAt,
    ...(loss?.kind === 'loss' && { loss: { stream: loss.stream, reason: loss.reason } }),
  };
}

/**
 * Moves an outbox of the v1 layout (a row per reading, batches as JSON payloads) into chunks, in the caller's
 * transaction-free constructor, as one transaction: every formed batch becomes a claimed chunk with its sequence
 * numbers (re-sent, the controller drops what it already has), every waiting row goes into waiting chunks of its
 * rank, loss rows into loss chunks. Counters (meta), filter states and settings are kept as they are.
 */
export function migrateV1(
  db: Database.Database,
  out: { insert: (chunks: readonly NewChunk[], seqFrom: number | null) => void },
): void {
  db.transaction(() => {
    const batches = db.prepare('SELECT seq_from, seq_to, payload FROM batches ORDER BY seq_from').all() as {
      seq_from: number;
      payload: Buffer;
    }[];
    for (const b of batches) {
      const bytes = b.payload[0] === 0x1f && b.payload[1] === 0x8b ? gunzipSync(b.payload) : b.payload;
      const parsed = JSON.parse(bytes.toString('utf8')) as { records: (ChunkRecord & { seq?: number })[] };
      const records = parsed.records.map(({ seq: _seq, ...r }) => r as ChunkRecord);
      // claimed already, so its rank only says what it holds: alert when it carries an alert, else telemetry
      out.insert(
        [chunkOf(records.some((r) => r.kind === 'reading' && r.priority === 'alert') ? 0 : 2, records, null)],
        b.seq_from,
      );
    }
    const rows = db.prepare('SELECT id, rank, ts, expires_at, body, loss FROM rows ORDER BY rank, id').all() as V1Row[];
    let run: { rank: number; ttl: boolean; records: ChunkRecord[]; expiresAt: number | null } | undefined;
    const pending: NewChunk[] = [];
    const close = () => {
      if (run?.records.length) pending.push(chunkOf(run.rank, run.records, run.expiresAt));
      run = undefined;
    };
    for (const r of rows) {
      const rec = JSON.parse(`{${r.body}}`) as ChunkRecord;
      if (r.loss) {
        pending.push(chunkOf(r.rank, [rec], null));
        continue;
      }
      const ttl = r.expires_at !== null;
      if (!run || run.rank !== r.rank || run.ttl !== ttl || run.records.length >= MIGRATED_CHUNK_RECORDS) {
        close();
        run = { rank: r.rank, ttl, records: [], expiresAt: null };
      }
      run.records.push(rec);
      if (ttl) run.expiresAt = Math.max(run.expiresAt ?? 0, r.expires_at!);
    }
    close();
    out.insert(pending, null);
    db.exec('DROP TABLE rows; DROP TABLE batches');
  })();
}

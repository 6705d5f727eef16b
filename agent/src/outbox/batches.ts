import { gzipSync } from 'node:zlib';
import { type ChunkRecord, decodeChunk, encodeBatchV1, encodeBatchV2 } from '@fleetwave/shared';
import type { StoredChunk } from './store.js';

export type WireFormat = 'v1' | 'v2';

/** A batch formed for sending: whole claimed chunks with consecutive sequence numbers seqFrom..seqTo. */
export interface OutboxBatch {
  seqFrom: number;
  seqTo: number;
  payload: Buffer;
  createdAt: number;
  /** The chunks it carries; a PUBACK deletes exactly these. */
  chunkIds: number[];
}

/**
 * The wire message of claimed chunks (consecutive in sequence order). v2 carries the chunks byte for byte behind a
 * small header; v1 decodes them back into JSON records for a controller older than v2.
 */
export function batchOf(
  device: string,
  chunks: readonly StoredChunk[],
  sentAt: number,
  format: WireFormat,
  compression: 'none' | 'gzip',
): OutboxBatch {
  const seqFrom = chunks[0]!.seqFrom!;
  const records = chunks.reduce((s, ch) => s + ch.records, 0);
  const head = { device, seqFrom, sentAt };
  let payload: Buffer;
  if (format === 'v2')
    payload = encodeBatchV2(
      head,
      chunks.map((ch) => ({ records: ch.records, bytes: ch.body })),
    );
  else {
    const json = encodeBatchV1(
      head,
      chunks.flatMap((ch) => decodeChunk(ch.body) as ChunkRecord[]),
    );
    payload = compression === 'gzip' ? gzipSync(json) : json;
  }
  return { seqFrom, seqTo: seqFrom + records - 1, payload, createdAt: sentAt, chunkIds: chunks.map((ch) => ch.id) };
}

/**
 * Splits chunks, in the order given, into the chunk lists of batches: as many whole chunks as fit within the
 * limits, at least one a batch; with `contiguous`, a batch also ends where the sequence numbers jump.
 */
export function batchesOf(
  chunks: readonly StoredChunk[],
  limits: { maxRecords: number; maxBytes: number; contiguous?: boolean },
): StoredChunk[][] {
  const out: StoredChunk[][] = [];
  let cur: StoredChunk[] = [];
  let records = 0;
  let bytes = 0;
  for (const ch of chunks) {
    const last = cur.at(-1);
    const jump = limits.contiguous && last !== undefined && last.seqFrom! + last.records !== ch.seqFrom;
    if (last && (jump || records + ch.records > limits.maxRecords || bytes + ch.body.length > limits.maxBytes)) {
      out.push(cur);
      cur = [];
      records = bytes = 0;
    }
    cur.push(ch);
    records += ch.records;
    bytes += ch.body.length;
  }
  if (cur.length) out.push(cur);
  return out;
}

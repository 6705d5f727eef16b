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

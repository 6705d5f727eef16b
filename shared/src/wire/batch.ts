import { gunzipSync } from 'node:zlib';
import { decodeMessage, parseWith } from '../decode.js';
import { FleetwaveError } from '../errors.js';
import { TelemetryBatch, TelemetryBatchV2Header } from '../schemas/telemetry.js';
import { ByteReader, ByteWriter, encodingError } from './bytes.js';
import { CHUNK_LIMITS, type ChunkRecord, chunkBody, decodeChunkBody } from './chunk.js';

/** The first bytes of a v2 telemetry message: "FW" and the format version (a v1 message is JSON: `{`). */
export const WIRE_V2_MAGIC = Buffer.from([0x46, 0x57, 0x02]);
const MAX_HEADER_BYTES = 256 * 1024;

/** A chunk as the uplink sends it: its encoded bytes (as stored) and how many records they hold. */
export interface WireChunk {
  records: number;
  bytes: Uint8Array;
}

export interface BatchHead {
  device: string;
  seqFrom: number;
  sentAt: number;
}

/** A v2 message: magic, varint header length, the JSON header, then the chunks byte for byte (shared/wire-v2.md). */
export function encodeBatchV2(head: BatchHead, chunks: readonly WireChunk[]): Buffer {
  const records = chunks.reduce((s, c) => s + c.records, 0);
  const header = JSON.stringify({
    v: 2,
    device: head.device,
    seqFrom: head.seqFrom,
    seqTo: head.seqFrom + records - 1,
    sentAt: head.sentAt,
    chunks: chunks.map((c) => [c.records, c.bytes.length]),
  });
  const w = new ByteWriter();
  w.bytes(WIRE_V2_MAGIC);
  w.string(header);
  for (const c of chunks) w.bytes(c.bytes);
  return w.done();
}

export function isWireV2(payload: Uint8Array): boolean {
  return payload.length >= 3 && payload[0] === 0x46 && payload[1] === 0x57 && payload[2] === 0x02;
}

/** The same batch as a v1 JSON message (for a controller that predates v2), records numbered from seqFrom. */
export function encodeBatchV1(head: BatchHead, records: readonly ChunkRecord[]): Buffer {
  const body = records.map((r, i) => JSON.stringify({ seq: head.seqFrom + i, ...r })).join(',');
  return Buffer.from(
    `{"v":1,"device":${JSON.stringify(head.device)},"seqFrom":${head.seqFrom},"seqTo":${head.seqFrom + records.length - 1},"sentAt":${head.sentAt},"records":[${body}]}`,
  );
}

/**
 * Decodes a v2 message into the batch it carries, in the v1 (JSON) shape and through the same schema, so whatever
 * format a device sends, the controller and the backends see the same validated records. Throws E_PAYLOAD_ENCODING
 * (structure), E_PAYLOAD_JSON or E_SCHEMA (header or records).
 */
export function decodeBatchV2(payload: Uint8Array): TelemetryBatch {
  if (!isWireV2(payload)) throw encodingError('not a v2 message');
  const r = new ByteReader(payload);
  r.take(WIRE_V2_MAGIC.length);
  const n = r.varint();
  if (n > MAX_HEADER_BYTES) throw encodingError(`header of ${n} bytes`);
  const header = decodeMessage(TelemetryBatchV2Header, r.take(n), 'telemetry v2 header', {
    maxBytes: MAX_HEADER_BYTES,
  });
  const total = header.chunks.reduce((s, c) => s + c[1], 0);
  if (total !== r.remaining) throw encodingError(`header names ${total} chunk bytes, ${r.remaining} follow`);
  const records: unknown[] = [];
  let seq = header.seqFrom;
  // one budget for the whole message: many small chunks must not inflate to more than one may
  let inflateBudget = CHUNK_LIMITS.maxInflatedBytes;
  for (const [count, bytes] of header.chunks) {
    const body = chunkBody(r.take(bytes), inflateBudget);
    inflateBudget -= body.length;
    const recs = decodeChunkBody(body, count);
    if (recs.length !== count) throw encodingError(`a chunk holds ${recs.length} records, the header says ${count}`);
    for (const rec of recs) records.push({ seq: seq++, ...(rec as object) });
  }
  return parseWith(
    TelemetryBatch,
    { v: 1, device: header.device, seqFrom: header.seqFrom, seqTo: header.seqTo, sentAt: header.sentAt, records },
    'telemetry batch',
  );
}

/** The largest telemetry message a controller takes (and the most a gzip'd v1 message may inflate to). */
export const MAX_TELEMETRY_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Decodes a telemetry message in any format an agent may send (an agent is upgraded long before or after its
 * controller): wire format v2 when it starts with its magic bytes, gzip'd v1 JSON when it starts with the gzip magic
 * bytes, v1 JSON otherwise. Every format ends in the same schema and the same records.
 */
export function decodeTelemetryPayload(payload: Uint8Array): TelemetryBatch {
  const max = MAX_TELEMETRY_MESSAGE_BYTES;
  if (payload.byteLength > max) {
    throw new FleetwaveError('E_PAYLOAD_TOO_LARGE', `batch of ${payload.byteLength} bytes exceeds ${max}`);
  }
  if (isWireV2(payload)) return decodeBatchV2(payload);
  let bytes = payload;
  if (payload[0] === 0x1f && payload[1] === 0x8b) {
    try {
      bytes = gunzipSync(payload, { maxOutputLength: max });
    } catch (err) {
      throw new FleetwaveError('E_PAYLOAD_ENCODING', `gzip payload does not inflate: ${(err as Error).message}`);
    }
  }
  return decodeMessage(TelemetryBatch, bytes, 'telemetry batch', { maxBytes: max });
}

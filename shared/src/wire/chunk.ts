import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { PRIORITIES, Quality } from '../schemas/common.js';
import type { TelemetryRecord } from '../schemas/telemetry.js';
import { ByteReader, ByteWriter, encodingError, SVARINT_LIMIT } from './bytes.js';

/** A telemetry record as a chunk holds it: without `seq`, which the batch assigns by position (shared/wire-v2.md). */
export type ChunkRecord = TelemetryRecord extends infer R ? (R extends unknown ? Omit<R, 'seq'> : never) : never;
type ReadingBody = Extract<ChunkRecord, { kind: 'reading' }>;

/** Group kinds and value modes of the chunk body (shared/wire-v2.md, "Chunk body"). */
const GROUP_READINGS = 1;
const GROUP_JSON = 2;
const TS_DOD = 0;
const TS_RAW = 1;
const VALUES_XOR = 0x80;
const MAX_DECIMALS = 12;
const CODEC_STORED = 0;
const CODEC_DEFLATE = 1;
const QUALITIES = Quality.options;
/** Bounds a decoder enforces so that a small malicious chunk cannot make it allocate much. */
export const CHUNK_LIMITS = Object.freeze({ maxRecords: 10_000, maxInflatedBytes: 4 * 1024 * 1024 });

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // index of the high word (little-endian hosts: 1)

function bitsOf(v: number): [hi: number, lo: number] {
  f64[0] = v;
  return [u32[HI]!, u32[1 - HI]!];
}

function fromBits(hi: number, lo: number): number {
  u32[HI] = hi;
  u32[1 - HI] = lo;
  return f64[0]!;
}

/**
 * The decimal scale k (0 … 12) at which every value is an integer m with m / 10^k === value exactly, |m| < 2^50
 * (so deltas stay exact in the zigzag varint); -1 when there is none (-0, subnormals, more digits): XOR mode.
 */
function decimalScale(values: readonly number[]): number {
  let k = 0;
  let p = 1;
  for (const v of values) {
    for (;;) {
      const m = Math.round(v * p) + 0; // + 0: -0 becomes 0, so -0 itself fails the check below and goes to XOR
      if (Math.abs(m) < 2 ** 50 && m / p === v && !Object.is(v, -0)) break;
      if (++k > MAX_DECIMALS) return -1;
      p *= 10;
    }
  }
  for (const v of values) {
    const m = Math.round(v * p) + 0;
    if (Math.abs(m) >= 2 ** 50 || m / p !== v) return -1;
  }
  return k;
}

function writeValues(w: ByteWriter, values: readonly number[]): void {
  const k = decimalScale(values);
  if (k >= 0) {
    const p = 10 ** k;
    w.byte(k);
    let prev = 0;
    for (const v of values) {
      const m = Math.round(v * p) + 0;
      w.svarint(m - prev);
      prev = m;
    }
    return;
  }
  w.byte(VALUES_XOR);
  let [ph, pl] = [0, 0];
  for (const v of values) {
    const [h, l] = bitsOf(v);
    const xh = (h ^ ph) >>> 0;
    const xl = (l ^ pl) >>> 0;
    [ph, pl] = [h, l];
    const bytes = [
      xh >>> 24,
      (xh >>> 16) & 255,
      (xh >>> 8) & 255,
      xh & 255,
      xl >>> 24,
      (xl >>> 16) & 255,
      (xl >>> 8) & 255,
      xl & 255,
    ];
    let lead = 0;
    while (lead < 8 && bytes[lead] === 0) lead++;
    if (lead === 8) {
      w.byte(0);
      continue;
    }
    let trail = 0;
    while (bytes[7 - trail] === 0) trail++;
    w.byte(0x40 | (lead << 3) | trail);
    for (let i = lead; i < 8 - trail; i++) w.byte(bytes[i]!);
  }
}

function readValues(r: ByteReader, n: number): number[] {
  const mode = r.byte();
  const out = new Array<number>(n);
  if (mode <= MAX_DECIMALS) {
    const p = 10 ** mode;
    let m = 0;
    for (let i = 0; i < n; i++) {
      m += r.svarint();
      if (Math.abs(m) >= 2 ** 51) throw encodingError('decimal value out of range');
      out[i] = m / p;
    }
    return out;
  }
  if (mode !== VALUES_XOR) throw encodingError(`unknown value mode ${mode}`);
  let [h, l] = [0, 0];
  for (let i = 0; i < n; i++) {
    const c = r.byte();
    if (c !== 0) {
      const lead = (c >> 3) & 7;
      const trail = c & 7;
      if ((c & 0xc0) !== 0x40 || lead + trail > 7) throw encodingError(`bad XOR control byte ${c}`);
      const x = [0, 0, 0, 0, 0, 0, 0, 0];
      for (let j = lead; j < 8 - trail; j++) x[j] = r.byte();
      h = (h ^ ((x[0]! << 24) | (x[1]! << 16) | (x[2]! << 8) | x[3]!)) >>> 0;
      l = (l ^ ((x[4]! << 24) | (x[5]! << 16) | (x[6]! << 8) | x[7]!)) >>> 0;
    }
    out[i] = fromBits(h, l);
  }
  return out;
}

function writeTimestamps(w: ByteWriter, ts: readonly number[], base: number): void {
  let dod = true;
  for (let i = 1; i < ts.length; i++) if (Math.abs(ts[i]! - ts[i - 1]!) >= 2 ** 50) dod = false;
  if (!dod) {
    w.byte(TS_RAW);
    for (const t of ts) w.varint(t);
    return;
  }
  w.byte(TS_DOD);
  w.varint(ts[0]! - base);
  let prevDelta = 0;
  for (let i = 1; i < ts.length; i++) {
    const d = ts[i]! - ts[i - 1]!;
    w.svarint(i === 1 ? d : d - prevDelta);
    prevDelta = d;
  }
}

function readTimestamps(r: ByteReader, n: number, base: number): number[] {
  const mode = r.byte();
  const out = new Array<number>(n);
  if (mode === TS_RAW) {
    for (let i = 0; i < n; i++) out[i] = r.varint();
    return out;
  }
  if (mode !== TS_DOD) throw encodingError(`unknown timestamp mode ${mode}`);
  let t = base + r.varint();
  let d = 0;
  for (let i = 0; i < n; i++) {
    if (i === 1) d = r.svarint();
    else if (i > 1) d += r.svarint();
    if (Math.abs(d) >= SVARINT_LIMIT) throw encodingError('timestamp delta out of range');
    t += d;
    out[i] = t;
  }
  return out;
}

interface ReadingGroup {
  head: ReadingBody;
  ts: number[];
  values: number[];
}

/**
 * The chunk body (uncompressed) of a chunk's records: readings grouped by stream (a new group where a stream's unit,
 * quality or priority changes, so each stream keeps its order), each
 * group's timestamps as delta-of-delta and values as scaled decimals or XOR of the previous value; every other record
 * as JSON. Records are numbered in the order decodeChunkBody returns them: group by group, as written.
 */
export function encodeChunkBody(records: readonly ChunkRecord[]): Buffer {
  const groups: ReadingGroup[] = [];
  /** Each stream's current group: a reading with other attributes starts a new one, so a stream keeps its order. */
  const current = new Map<string, ReadingGroup>();
  const json: string[] = [];
  let base = Number.POSITIVE_INFINITY;
  for (const rec of records) {
    if (rec.kind !== 'reading') {
      json.push(JSON.stringify(rec));
      continue;
    }
    if (rec.ts < base) base = rec.ts;
    const g = current.get(rec.stream);
    if (g && g.head.quality === rec.quality && g.head.priority === rec.priority && g.head.unit === rec.unit) {
      g.ts.push(rec.ts);
      g.values.push(rec.value);
    } else {
      const next = { head: rec, ts: [rec.ts], values: [rec.value] };
      groups.push(next);
      current.set(rec.stream, next);
    }
  }
  const w = new ByteWriter();
  w.varint(Number.isFinite(base) ? base : 0);
  w.varint(groups.length + (json.length ? 1 : 0));
  for (const { head, ts, values } of groups) {
    w.byte(GROUP_READINGS);
    w.string(head.stream);
    w.byte((head.unit !== undefined ? 1 : 0) | (head.quality ? 2 : 0) | (head.priority ? 4 : 0));
    if (head.unit !== undefined) w.string(head.unit);
    if (head.quality) w.byte(QUALITIES.indexOf(head.quality));
    if (head.priority) w.byte(PRIORITIES.indexOf(head.priority));
    w.varint(ts.length);
    writeTimestamps(w, ts, Number.isFinite(base) ? base : 0);
    writeValues(w, values);
  }
  if (json.length) {
    w.byte(GROUP_JSON);
    w.varint(json.length);
    for (const j of json) w.string(j);
  }
  return w.done();
}

/** The records of a chunk body, in record order. Structure is checked here; field values by the schema afterwards. */
export function decodeChunkBody(body: Uint8Array, maxRecords: number = CHUNK_LIMITS.maxRecords): unknown[] {
  const r = new ByteReader(body);
  const base = r.varint();
  const nGroups = r.varint();
  const out: unknown[] = [];
  for (let g = 0; g < nGroups; g++) {
    const kind = r.byte();
    if (kind === GROUP_JSON) {
      const n = r.varint();
      if (out.length + n > maxRecords) throw encodingError(`more than ${maxRecords} records`);
      for (let i = 0; i < n; i++) {
        const text = r.string(64 * 1024);
        try {
          out.push(JSON.parse(text));
        } catch {
          throw encodingError('a JSON record does not parse');
        }
      }
      continue;
    }
    if (kind !== GROUP_READINGS) throw encodingError(`unknown group kind ${kind}`);
    const stream = r.string(1024);
    const flags = r.byte();
    if (flags > 7) throw encodingError(`unknown group flags ${flags}`);
    const unit = flags & 1 ? r.string(1024) : undefined;
    const quality = flags & 2 ? QUALITIES[r.byte()] : undefined;
    const priority = flags & 4 ? PRIORITIES[r.byte()] : undefined;
    if ((flags & 2 && !quality) || (flags & 4 && !priority)) throw encodingError('unknown quality or priority');
    const n = r.varint();
    if (n === 0 || out.length + n > maxRecords) throw encodingError(`a group of ${n} readings`);
    const ts = readTimestamps(r, n, base);
    const values = readValues(r, n);
    for (let i = 0; i < n; i++) {
      const rec: Record<string, unknown> = { kind: 'reading', stream, ts: ts[i], value: values[i] };
      if (quality) rec.quality = quality;
      if (unit !== undefined) rec.unit = unit;
      if (priority) rec.priority = priority;
      out.push(rec);
    }
  }
  if (r.remaining !== 0) throw encodingError(`${r.remaining} bytes after the last group`);
  return out;
}

/** A chunk as stored and sent: one codec byte (0 stored, 1 raw deflate, RFC 1951), then the body. */
export function encodeChunk(records: readonly ChunkRecord[]): Buffer {
  const body = encodeChunkBody(records);
  const deflated = deflateRawSync(body);
  return deflated.length + 1 < body.length + 1
    ? Buffer.concat([Buffer.of(CODEC_DEFLATE), deflated])
    : Buffer.concat([Buffer.of(CODEC_STORED), body]);
}

/** A chunk's body, inflated when it is deflated, at most `maxBytes` (a small chunk must not inflate without bound). */
export function chunkBody(chunk: Uint8Array, maxBytes: number = CHUNK_LIMITS.maxInflatedBytes): Uint8Array {
  if (chunk.length === 0) throw encodingError('empty chunk');
  const body = chunk.subarray(1);
  if (chunk[0] === CODEC_STORED) return body;
  if (chunk[0] !== CODEC_DEFLATE) throw encodingError(`unknown chunk codec ${chunk[0]}`);
  try {
    return inflateRawSync(body, { maxOutputLength: Math.max(1, maxBytes) });
  } catch (err) {
    throw encodingError(`chunk does not inflate within ${maxBytes} bytes: ${(err as Error).message}`);
  }
}

export function decodeChunk(chunk: Uint8Array, maxRecords: number = CHUNK_LIMITS.maxRecords): unknown[] {
  return decodeChunkBody(chunkBody(chunk), maxRecords);
}

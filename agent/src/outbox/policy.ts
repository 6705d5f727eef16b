import { CHUNK_LIMITS, type ChunkRecord, decodeChunk, encodeChunk } from '@fleetwave/shared';
import type { Emission } from '../filters/types.js';
import type { Reading } from '../reading.js';
import type { StreamRoute } from '../streams.js';
import type { NewChunk, StoredChunk } from './store.js';

/** A record on its way into a chunk: what it is, its priority class and its stream's time-to-live. */
export interface OutboxRecord {
  rank: number;
  ttlMs: number | undefined;
  record: ChunkRecord;
}

const EVENT_RANK = 1;
/** Records in one chunk at most: what a decoder takes (a batch holds whole chunks, and at most as many records). */
export const CHUNK_MAX_RECORDS = CHUNK_LIMITS.maxRecords;
/** Ingest ids are chunk id × this + the record's position in the chunk (loss records name them). */
export const INGEST_IDS_PER_CHUNK = 65_536;

export function readingRecord(route: StreamRoute, r: Reading): OutboxRecord {
  // + 0: -0 goes as 0, as it did in JSON (v1), so a filter state restored from JSON emits the same value
  const record: ChunkRecord = { kind: 'reading', stream: route.stream, ts: r.ts, value: r.value + 0 };
  if (r.quality) record.quality = r.quality;
  if (r.unit) record.unit = r.unit;
  return { rank: route.rank, ttlMs: route.ttlMs, record };
}

/** The record for what a filter emitted: a reading (alerts in the alert class) or a window aggregate. */
export function emissionRecord(route: StreamRoute, e: Emission): OutboxRecord {
  if (e.kind === 'reading') {
    const rec = readingRecord(route, e.sample);
    if (!e.alert) return rec;
    return { rank: 0, ttlMs: undefined, record: { ...rec.record, priority: 'alert' } as ChunkRecord };
  }
  const a = e.agg;
  const record: ChunkRecord = {
    kind: 'aggregate',
    stream: route.stream,
    ts: a.to,
    from: a.from,
    to: a.to,
    count: a.count,
    min: a.min,
    max: a.max,
    mean: a.mean,
    last: a.last,
    stddev: a.stddev,
  };
  if (a.late) record.late = a.late;
  if (Object.keys(a.quantiles).length) record.quantiles = { ...a.quantiles };
  return { rank: route.rank, ttlMs: route.ttlMs, record };
}

/**
 * The chunks of one group commit: one per (priority class, time-to-live), records in arrival order, at most
 * CHUNK_MAX_RECORDS each. A chunk expires when its newest record does, so no record is dropped before its
 * time-to-live (some live up to one group's span longer).
 */
export function chunksOf(records: readonly OutboxRecord[]): NewChunk[] {
  const classes = new Map<string, { rank: number; ttlMs: number | undefined; recs: ChunkRecord[] }>();
  for (const r of records) {
    const key = `${r.rank}:${r.ttlMs ?? ''}`;
    const c = classes.get(key);
    if (c) c.recs.push(r.record);
    else classes.set(key, { rank: r.rank, ttlMs: r.ttlMs, recs: [r.record] });
  }
  const out: NewChunk[] = [];
  for (const c of [...classes.values()].sort((a, b) => a.rank - b.rank)) {
    for (let i = 0; i < c.recs.length; i += CHUNK_MAX_RECORDS) {
      const recs = c.recs.slice(i, i + CHUNK_MAX_RECORDS);
      let first = Number.POSITIVE_INFINITY;
      let last = 0;
      for (const r of recs) {
        if (r.ts < first) first = r.ts;
        if (r.ts > last) last = r.ts;
      }
      out.push({
        rank: c.rank,
        records: recs.length,
        body: encodeChunk(recs),
        firstTs: first,
        expiresAt: c.ttlMs === undefined ? null : last + c.ttlMs,
      });
    }
  }
  return out;
}

/** A conservative bound on what one reading can add to the outbox before it is encoded (the refuse policy's room). */
export function readingBound(route: StreamRoute, r: Reading): number {
  return 32 + route.stream.length + (r.unit?.length ?? 0);
}

type LossRecord = Extract<ChunkRecord, { kind: 'loss' }>;

export interface LossChanges {
  insert: NewChunk[];
  replace: { id: number; body: Buffer }[];
}

function lossChunk(rec: LossRecord): NewChunk {
  return {
    rank: EVENT_RANK,
    records: 1,
    body: encodeChunk([rec]),
    firstTs: rec.ts,
    expiresAt: null,
    loss: { stream: rec.stream, reason: rec.reason },
  };
}

/**
 * The loss records for chunks dropped on purpose (cap or time-to-live), so the loss is visible upstream (DESIGN
 * invariant 2): one per stream and reason, with the exact count, time range and ingest-id range of what went. A
 * stream that already has a waiting loss record of that reason gets it widened instead of a new one, so a long
 * stretch at the cap does not fill the outbox with loss records. Loss chunks are never themselves dropped.
 */
export function lossChanges(
  dropped: readonly StoredChunk[],
  reason: 'cap' | 'ttl',
  now: number,
  pending: (stream: string) => StoredChunk | undefined,
): LossChanges {
  const byStream = new Map<string, LossRecord>();
  for (const ch of dropped) {
    const recs = decodeChunk(ch.body) as ChunkRecord[];
    recs.forEach((r, i) => {
      const ingest = ch.id * INGEST_IDS_PER_CHUNK + i;
      const f = byStream.get(r.stream);
      if (!f) {
        byStream.set(r.stream, {
          kind: 'loss',
          stream: r.stream,
          ts: now,
          reason,
          count: 1,
          ingestFrom: ingest,
          ingestTo: ingest,
          firstTs: r.ts,
          lastTs: r.ts,
        });
        return;
      }
      f.count++;
      f.ingestFrom = Math.min(f.ingestFrom, ingest);
      f.ingestTo = Math.max(f.ingestTo, ingest);
      f.firstTs = Math.min(f.firstTs, r.ts);
      f.lastTs = Math.max(f.lastTs, r.ts);
    });
  }
  const out: LossChanges = { insert: [], replace: [] };
  for (const [stream, f] of byStream) {
    const prev = pending(stream);
    if (!prev) {
      out.insert.push(lossChunk(f));
      continue;
    }
    const p = (decodeChunk(prev.body) as LossRecord[])[0]!;
    const merged: LossRecord = {
      ...f,
      count: p.count + f.count,
      ingestFrom: Math.min(p.ingestFrom, f.ingestFrom),
      ingestTo: Math.max(p.ingestTo, f.ingestTo),
      firstTs: Math.min(p.firstTs, f.firstTs),
      lastTs: Math.max(p.lastTs, f.lastTs),
    };
    out.replace.push({ id: prev.id, body: encodeChunk([merged]) });
  }
  return out;
}

import { gzipSync } from 'node:zlib';
import type { Emission } from '../filters/types.js';
import type { Reading } from '../reading.js';
import type { StreamRoute } from '../streams.js';
import type { NewRow, OutboxRow } from './store.js';

/** Per-row bookkeeping bytes on top of the body (ids, columns, index entries): what the cap counts. */
export const ROW_OVERHEAD_BYTES = 48;
const EVENT_RANK = 1;

/** A row of the route's stream and priority, expiring by the stream's time-to-live from `ts`. */
function streamRow(route: StreamRoute, ts: number, body: string): NewRow {
  return {
    stream: route.stream,
    rank: route.rank,
    ts,
    expiresAt: route.ttlMs === undefined ? null : ts + route.ttlMs,
    body,
    bytes: body.length + ROW_OVERHEAD_BYTES,
  };
}

export function readingRow(route: StreamRoute, r: Reading): NewRow {
  let body = `"kind":"reading","stream":${JSON.stringify(route.stream)},"ts":${r.ts},"value":${r.value}`;
  if (r.quality) body += `,"quality":"${r.quality}"`;
  if (r.unit) body += `,"unit":${JSON.stringify(r.unit)}`;
  return streamRow(route, r.ts, body);
}

interface LossFields {
  count: number;
  ingestFrom: number;
  ingestTo: number;
  firstTs: number;
  lastTs: number;
}

function lossBody(stream: string, reason: 'cap' | 'ttl', now: number, f: LossFields): string {
  return (
    `"kind":"loss","stream":${JSON.stringify(stream)},"ts":${now},"reason":"${reason}","count":${f.count},` +
    `"ingestFrom":${f.ingestFrom},"ingestTo":${f.ingestTo},"firstTs":${f.firstTs},"lastTs":${f.lastTs}`
  );
}

export interface LossChanges {
  insert: NewRow[];
  update: { id: number; body: string; bytes: number }[];
}

/**
 * The loss records for rows dropped on purpose (cap or time-to-live), so the loss is visible upstream (DESIGN
 * invariant 2): one per stream and reason. A stream that already has an unsent loss record of that reason gets it
 * widened (count added, ingest-id and time ranges extended) instead of a new one, so a long stretch at the cap does
 * not fill the outbox with loss records. Loss rows travel as events and are never themselves dropped for the cap.
 */
export function lossChanges(
  dropped: readonly OutboxRow[],
  reason: 'cap' | 'ttl',
  now: number,
  pending: (stream: string) => OutboxRow | undefined,
): LossChanges {
  const byStream = new Map<string, LossFields>();
  for (const r of dropped) {
    const f = byStream.get(r.stream);
    if (!f) byStream.set(r.stream, { count: 1, ingestFrom: r.id, ingestTo: r.id, firstTs: r.ts, lastTs: r.ts });
    else {
      f.count++;
      f.ingestFrom = Math.min(f.ingestFrom, r.id);
      f.ingestTo = Math.max(f.ingestTo, r.id);
      f.firstTs = Math.min(f.firstTs, r.ts);
      f.lastTs = Math.max(f.lastTs, r.ts);
    }
  }
  const out: LossChanges = { insert: [], update: [] };
  for (const [stream, f] of byStream) {
    const prev = pending(stream);
    if (prev) {
      const p = JSON.parse(`{${prev.body}}`) as LossFields;
      const merged = {
        count: p.count + f.count,
        ingestFrom: Math.min(p.ingestFrom, f.ingestFrom),
        ingestTo: Math.max(p.ingestTo, f.ingestTo),
        firstTs: Math.min(p.firstTs, f.firstTs),
        lastTs: Math.max(p.lastTs, f.lastTs),
      };
      const body = lossBody(stream, reason, now, merged);
      out.update.push({ id: prev.id, body, bytes: body.length + ROW_OVERHEAD_BYTES });
    } else {
      const body = lossBody(stream, reason, now, f);
      out.insert.push({
        stream,
        rank: EVENT_RANK,
        ts: now,
        expiresAt: null,
        body,
        bytes: body.length + ROW_OVERHEAD_BYTES,
      });
    }
  }
  return out;
}

/** The wire payload of a batch (a shared TelemetryBatch), built by concatenation: rows already hold valid JSON. */
export function batchPayload(
  device: string,
  seqFrom: number,
  rows: readonly OutboxRow[],
  sentAt: number,
  compression: 'none' | 'gzip',
): Buffer {
  const records = rows.map((r, i) => `{"seq":${seqFrom + i},${r.body}}`).join(',');
  const text = `{"v":1,"device":${JSON.stringify(device)},"seqFrom":${seqFrom},"seqTo":${seqFrom + rows.length - 1},"sentAt":${sentAt},"records":[${records}]}`;
  return compression === 'gzip' ? gzipSync(text) : Buffer.from(text);
}

/** The outbox row for what a filter emitted: a reading (alerts in the alert class) or a window aggregate. */
export function emissionRow(route: StreamRoute, e: Emission): NewRow {
  if (e.kind === 'reading') {
    const row = readingRow(route, e.sample);
    if (!e.alert) return row;
    const body = `${row.body},"priority":"alert"`;
    return { ...row, rank: 0, expiresAt: null, body, bytes: body.length + ROW_OVERHEAD_BYTES };
  }
  const a = e.agg;
  let body =
    `"kind":"aggregate","stream":${JSON.stringify(route.stream)},"ts":${a.to},"from":${a.from},"to":${a.to},` +
    `"count":${a.count},"min":${a.min},"max":${a.max},"mean":${a.mean},"last":${a.last},"stddev":${a.stddev}`;
  if (a.late) body += `,"late":${a.late}`;
  if (Object.keys(a.quantiles).length) body += `,"quantiles":${JSON.stringify(a.quantiles)}`;
  return streamRow(route, a.to, body);
}

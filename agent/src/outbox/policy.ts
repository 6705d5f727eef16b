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

/**
 * One loss record per stream for rows dropped on purpose (cap or time-to-live), so the loss is visible upstream
 * (DESIGN invariant 2). Loss rows travel as events and are never themselves dropped for the cap.
 */
export function lossRows(dropped: readonly OutboxRow[], reason: 'cap' | 'ttl', now: number): NewRow[] {
  const byStream = new Map<string, OutboxRow[]>();
  for (const r of dropped) {
    const list = byStream.get(r.stream);
    if (list) list.push(r);
    else byStream.set(r.stream, [r]);
  }
  return [...byStream].map(([stream, rows]) => {
    let ingestFrom = Number.MAX_SAFE_INTEGER;
    let ingestTo = 0;
    let firstTs = Number.MAX_SAFE_INTEGER;
    let lastTs = 0;
    for (const r of rows) {
      ingestFrom = Math.min(ingestFrom, r.id);
      ingestTo = Math.max(ingestTo, r.id);
      firstTs = Math.min(firstTs, r.ts);
      lastTs = Math.max(lastTs, r.ts);
    }
    const body =
      `"kind":"loss","stream":${JSON.stringify(stream)},"ts":${now},"reason":"${reason}","count":${rows.length},` +
      `"ingestFrom":${ingestFrom},"ingestTo":${ingestTo},"firstTs":${firstTs},"lastTs":${lastTs}`;
    return { stream, rank: EVENT_RANK, ts: now, expiresAt: null, body, bytes: body.length + ROW_OVERHEAD_BYTES };
  });
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

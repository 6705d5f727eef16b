import { once } from 'node:events';
import { type CleanRecord, parseWith, TelemetryQueryParams } from '@fleetwave/shared';
import type { FastifyInstance } from 'fastify';
import type { TelemetryRow } from '../store/fleet-store.js';
import type { ApiDeps, Guard } from './app.js';

export const toClean = (r: TelemetryRow): CleanRecord => ({
  cursor: r.cursor,
  device: r.device,
  receivedAt: r.receivedAt,
  record: JSON.parse(r.record),
});

export function telemetryRoutes(app: FastifyInstance, deps: ApiDeps, guard: Guard): void {
  const { hub } = deps;
  const store = deps.db.telemetry;

  app.get('/api/telemetry', { preHandler: guard('backend', 'telemetry.read') }, async (req) => {
    const q = parseWith(TelemetryQueryParams, req.query, 'query');
    const records = (await store.read(q)).map(toClean);
    return { records, next: records.at(-1)?.cursor ?? q.after };
  });

  /**
   * The clean stream for backends: every record after the cursor (`?after=`, or SSE's Last-Event-ID), then live
   * ones, in cursor order, as NDJSON or (Accept: text/event-stream) server-sent events with the cursor as event id.
   * A backend that restarts resumes from the last cursor it processed and misses nothing still within retention.
   */
  app.get('/api/telemetry/stream', { preHandler: guard('backend', 'telemetry.stream') }, async (req, reply) => {
    const q = parseWith(TelemetryQueryParams, req.query, 'query');
    const sse = (req.headers.accept ?? '').includes('text/event-stream');
    const lastEventId = Number(req.headers['last-event-id']);
    let cursor = sse && Number.isInteger(lastEventId) && lastEventId > 0 ? lastEventId : q.after;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    let closed = false;
    const wanted = (r: CleanRecord) =>
      r.cursor > cursor && (!q.device || r.device === q.device) && (!q.stream || r.record.stream === q.stream);
    const write = (r: CleanRecord): boolean => {
      if (!wanted(r)) return true;
      cursor = r.cursor;
      return res.write(sse ? `id: ${r.cursor}\ndata: ${JSON.stringify(r)}\n\n` : `${JSON.stringify(r)}\n`);
    };
    let live = false;
    const pending: CleanRecord[] = [];
    const unsubscribe = hub.subscribe((records) => {
      if (!live) pending.push(...records);
      else for (const r of records) write(r);
    });
    const keepAlive = setInterval(() => sse && res.write(': keep-alive\n\n'), 15_000);
    req.raw.on('close', () => {
      closed = true;
      unsubscribe();
      clearInterval(keepAlive);
    });
    // catch up from the store, page by page, respecting back-pressure
    for (;;) {
      const rows = await store.read({ after: cursor, limit: 1000, device: q.device, stream: q.stream });
      if (rows.length === 0 || closed) break;
      let ok = true;
      for (const r of rows) ok = write(toClean(r)) && ok;
      if (!ok) await once(res, 'drain');
    }
    live = true;
    for (const r of pending.splice(0)) write(r);
  });
}

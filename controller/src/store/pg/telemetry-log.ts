import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Pool, PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** Runs fn in one transaction on one connection (the database's unit of work, joining an open one). */
export type PgTransaction = <T>(fn: (c: PoolClient) => Promise<T>) => Promise<T>;

/** A transaction of its own on a pooled connection (for a log used without a PgDatabase around it). */
export const ownTransaction =
  (pool: Pool): PgTransaction =>
  async (fn) => {
    const c = await pool.connect();
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (err) {
      await c.query('ROLLBACK').catch((e: Error) => {
        broken = e;
      });
      throw err;
    } finally {
      c.off('error', onError);
      c.release(broken);
    }
  };

import type { NewTelemetry, TelemetryQuery, TelemetryRow } from '../fleet-store.js';
import type { TelemetryLog } from '../telemetry-log.js';

interface Row {
  cursor: string;
  device: string;
  seq: string;
  stream: string;
  ts: string;
  kind: string;
  record: string;
  received_at: string;
}

const toRow = (r: Row): TelemetryRow => ({
  cursor: Number(r.cursor),
  device: r.device,
  seq: Number(r.seq),
  stream: r.stream,
  ts: Number(r.ts),
  kind: r.kind,
  record: r.record,
  receivedAt: Number(r.received_at),
});

/** Bursts of this many new rows or more are written with COPY, smaller ones with one INSERT. */
const COPY_FROM = 64;

/** A value in COPY's text format (backslash, tab, newline and carriage return escaped). */
const copyText = (s: string) =>
  /[\\\t\n\r]/.test(s)
    ? s.replace(/[\\\t\n\r]/g, (m) => (m === '\\' ? '\\\\' : m === '\t' ? '\\t' : m === '\n' ? '\\n' : '\\r'))
    : s;

/**
 * Telemetry on PostgreSQL. The cursor is not a sequence: a sequence value is taken before commit, so a reader polling
 * "after X" could pass a row whose transaction commits later with a lower value. Instead every insert transaction
 * locks the one `telemetry_head` row (SELECT … FOR UPDATE), numbers its new rows from it and writes it back, and holds
 * that lock until it commits. Writers — several controller replicas too — therefore commit in cursor order, one burst
 * at a time, and the numbers roll back with a failed transaction: the cursor is increasing in commit order and
 * gap-free, and a reader cannot skip. The price is that bursts commit one after another (a burst is one multi-row
 * INSERT, so the lock is held for one round trip and the commit).
 */
export class PgTelemetryLog implements TelemetryLog {
  constructor(
    private readonly pool: Pool,
    private readonly transaction: PgTransaction = ownTransaction(pool),
  ) {}

  async insert(rows: readonly NewTelemetry[], receivedAt: number): Promise<TelemetryRow[]> {
    return (await this.insertGroups([rows], receivedAt))[0]!;
  }

  async insertGroups(groups: readonly (readonly NewTelemetry[])[], receivedAt: number): Promise<TelemetryRow[][]> {
    const rows = groups.flat();
    if (rows.length === 0) return groups.map(() => []);
    return this.transaction(async (c) => {
      const head = await c.query<{ last: string }>('SELECT last FROM telemetry_head WHERE id = 1 FOR UPDATE');
      let last = Number(head.rows[0]!.last);
      // which (device, seq) are stored already: under the head lock no other writer can add one meanwhile
      const stored = await c.query<{ device: string; seq: string }>(
        `SELECT t.device, t.seq FROM telemetry t
         JOIN unnest($1::text[], $2::bigint[]) AS u(device, seq) ON t.device = u.device AND t.seq = u.seq`,
        [rows.map((r) => r.device), rows.map((r) => r.seq)],
      );
      const seen = new Set(stored.rows.map((r) => `${r.device}\u0000${Number(r.seq)}`));
      const out: TelemetryRow[][] = groups.map(() => []);
      groups.forEach((g, i) => {
        for (const r of g) {
          const key = `${r.device}\u0000${r.seq}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out[i]!.push({ ...r, cursor: ++last, receivedAt });
        }
      });
      const fresh = out.flat();
      if (fresh.length >= COPY_FROM) {
        // a burst: COPY, about twice as fast per row as a multi-row INSERT (no conflict is possible: the rows stored
        // already were taken out above, under the head lock)
        const text = fresh
          .map(
            (r) =>
              `${r.cursor}\t${copyText(r.device)}\t${r.seq}\t${copyText(r.stream)}\t${r.ts}\t${copyText(r.kind)}\t${copyText(r.record)}\t${receivedAt}\n`,
          )
          .join('');
        await pipeline(
          Readable.from([text]),
          c.query(copyFrom('COPY telemetry (cursor, device, seq, stream, ts, kind, record, received_at) FROM STDIN')),
        );
        await c.query('UPDATE telemetry_head SET last = $1 WHERE id = 1', [last]);
      } else if (fresh.length > 0) {
        await c.query(
          `INSERT INTO telemetry (cursor, device, seq, stream, ts, kind, record, received_at)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[])`,
          [
            fresh.map((r) => r.cursor),
            fresh.map((r) => r.device),
            fresh.map((r) => r.seq),
            fresh.map((r) => r.stream),
            fresh.map((r) => r.ts),
            fresh.map((r) => r.kind),
            fresh.map((r) => r.record),
            fresh.map(() => receivedAt),
          ],
        );
        await c.query('UPDATE telemetry_head SET last = $1 WHERE id = 1', [last]);
      }
      return out;
    });
  }

  async read(q: TelemetryQuery): Promise<TelemetryRow[]> {
    const newest = q.pick === 'newest';
    const r = await this.pool.query<Row>(
      `SELECT * FROM telemetry WHERE cursor > $1 AND ($2::text IS NULL OR device = $2)
       AND ($3::text IS NULL OR stream = $3) ORDER BY cursor ${newest ? 'DESC' : 'ASC'} LIMIT $4`,
      [q.after, q.device ?? null, q.stream ?? null, q.limit],
    );
    const out = r.rows.map(toRow);
    return newest ? out.reverse() : out;
  }

  async missingRanges(device: string): Promise<[number, number][]> {
    const r = await this.pool.query<{ from: string; to: string }>(
      `SELECT prev + 1 AS "from", seq - 1 AS "to" FROM (
         SELECT seq, COALESCE(LAG(seq) OVER (ORDER BY seq), 0) AS prev FROM telemetry WHERE device = $1
       ) s WHERE seq > prev + 1 ORDER BY seq`,
      [device],
    );
    return r.rows.map((x) => [Number(x.from), Number(x.to)]);
  }

  async prune(receivedBefore: number): Promise<number> {
    return (await this.pool.query('DELETE FROM telemetry WHERE received_at < $1', [receivedBefore])).rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

import { FleetwaveError } from '@fleetwave/shared';
import Database from 'better-sqlite3';
import { sqliteBindingOption } from '../native.js';
import { migrateV1 } from './migrate-v1.js';
import { cost, type DbChunk, SCHEMA, toChunk, WAITING } from './sqlite-schema.js';
import {
  CHUNK_OVERHEAD_BYTES,
  type NewChunk,
  type OutboxCounters,
  type OutboxStore,
  type OutboxTotals,
  type StoredChunk,
} from './store.js';

export interface SqliteOutboxOptions {
  /**
   * FULL (default): every commit is fsynced, so an acknowledged reading survives power loss. NORMAL: in WAL mode a
   * commit survives a crash of the process but the last commits may be lost on power loss. See agent/README.md.
   */
  synchronous?: 'FULL' | 'NORMAL';
  readonly?: boolean;
}

/** The layout this adapter writes (PRAGMA user_version): 2 = chunks. 0 with a `rows` table is the v1 layout. */
export const OUTBOX_LAYOUT = 2;

/**
 * The outbox on a SQLite file in WAL mode with 1 KiB pages: a steady-state group commit (one chunk in, the
 * acknowledged one out) changes one leaf page. Counters live in memory and are written to `meta` only when a reopen
 * could not recompute them from the chunks (the chunk holding the newest id or sequence number is deleted, or a drop
 * is counted), so the hot path does not rewrite a page for them.
 */
export class SqliteOutboxStore implements OutboxStore {
  private readonly db: Database.Database;
  private readonly stmt;
  private t: OutboxTotals = emptyTotals();
  private c: OutboxCounters = { nextSeq: 1, droppedCap: 0, droppedTtl: 0 };
  private maxId = 0;

  constructor(path: string, opts: SqliteOutboxOptions = {}) {
    const readonly = opts.readonly ?? false;
    this.db = new Database(path, {
      readonly,
      fileMustExist: readonly,
      // the typings say string; better-sqlite3 also takes the loaded addon object (what the single executable passes)
      ...(sqliteBindingOption() as { nativeBinding?: string }),
    });
    const layout = this.db.pragma('user_version', { simple: true }) as number;
    if (layout > OUTBOX_LAYOUT) {
      this.db.close();
      throw new FleetwaveError(
        'E_CONFIG_INVALID',
        `${path} has outbox layout ${layout}, written by a newer agent; this agent reads layouts up to ${OUTBOX_LAYOUT}: run the newer agent, or move the file away to start empty`,
      );
    }
    const isV1 = layout < OUTBOX_LAYOUT && this.hasTable('rows');
    if (readonly && isV1) {
      this.db.close();
      throw new FleetwaveError(
        'E_CONFIG_INVALID',
        `${path} is in the v1 layout; the agent migrates it when it starts (nothing is lost)`,
      );
    }
    if (!readonly) {
      // page size first: it only takes effect before the file's first write
      if (!this.hasTable('meta')) this.db.pragma('page_size = 1024');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
      this.db.exec(SCHEMA);
    }
    const db = this.db;
    this.stmt = {
      insert: db.prepare(
        'INSERT INTO chunks (id, seq_from, rank, records, first_ts, expires_at, loss_stream, loss_reason, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      waiting: db.prepare(`SELECT c.*, NULL AS seq FROM chunks c WHERE ${WAITING} ORDER BY rank, id LIMIT ?`),
      lowestOfRank: db.prepare(
        `SELECT c.*, NULL AS seq FROM chunks c WHERE ${WAITING} AND rank = ? AND loss_stream IS NULL ORDER BY rank, id LIMIT 256`,
      ),
      expired: db.prepare(
        `SELECT c.*, NULL AS seq FROM chunks c WHERE ${WAITING} AND expires_at IS NOT NULL AND expires_at <= ?`,
      ),
      get: db.prepare(
        'SELECT c.*, k.seq_from AS seq FROM chunks c LEFT JOIN claims k ON k.chunk = c.id WHERE c.id = ?',
      ),
      addClaim: db.prepare('INSERT INTO claims (chunk, seq_from) VALUES (?, ?)'),
      claimed: db.prepare(
        `SELECT * FROM (SELECT c.*, k.seq_from AS seq FROM claims k JOIN chunks c ON c.id = k.chunk
           UNION ALL SELECT c.*, NULL AS seq FROM chunks c WHERE c.seq_from IS NOT NULL)
         ORDER BY COALESCE(seq_from, seq)`,
      ),
      delete: db.prepare(
        'DELETE FROM chunks WHERE id BETWEEN ? AND ? RETURNING id, seq_from, records, LENGTH(body) AS n',
      ),
      deleteClaims: db.prepare('DELETE FROM claims WHERE chunk BETWEEN ? AND ? RETURNING chunk, seq_from'),
      pendingLoss: db.prepare(
        `SELECT c.*, NULL AS seq FROM chunks c WHERE ${WAITING} AND loss_stream = ? AND loss_reason = ? ORDER BY id LIMIT 1`,
      ),
      replaceBody: db.prepare('UPDATE chunks SET body = ? WHERE id = ?'),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      oldest: db.prepare('SELECT first_ts FROM chunks ORDER BY id LIMIT 1').pluck(),
      saveState: db.prepare(
        'INSERT INTO filter_state (stream, state) VALUES (?, ?) ON CONFLICT(stream) DO UPDATE SET state = excluded.state',
      ),
      deleteState: db.prepare('DELETE FROM filter_state WHERE stream = ?'),
      setting: db.prepare('SELECT value FROM settings WHERE key = ?').pluck(),
      setSetting: db.prepare(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
    };
    if (isV1) this.migrate();
    if (!readonly && layout !== OUTBOX_LAYOUT) this.db.pragma(`user_version = ${OUTBOX_LAYOUT}`);
    this.load();
  }

  private migrate(): void {
    let id = 0;
    migrateV1(this.db, {
      insert: (chunks, seqFrom) => {
        let seq = seqFrom;
        for (const ch of chunks) {
          this.writeChunk(++id, seq, ch);
          if (seq !== null) seq += ch.records;
        }
      },
    });
    // once, after the migration: 1 KiB pages as a new outbox has (VACUUM rewrites the file, crash-safe)
    this.db.pragma('journal_mode = DELETE');
    this.db.pragma('page_size = 1024');
    this.db.exec('VACUUM');
    this.db.pragma('journal_mode = WAL');
  }

  private writeChunk(id: number, seqFrom: number | null, ch: NewChunk): void {
    this.stmt.insert.run(
      id,
      seqFrom,
      ch.rank,
      ch.records,
      ch.firstTs,
      ch.expiresAt,
      ch.loss?.stream ?? null,
      ch.loss?.reason ?? null,
      ch.body,
    );
  }

  private hasTable(name: string): boolean {
    return !!this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name);
  }

  /** Totals and counters from the file: the counters are the larger of meta and what the chunks imply. */
  private load(): void {
    const m = new Map(
      (this.db.prepare('SELECT key, value FROM meta').all() as { key: string; value: number }[]).map((r) => [
        r.key,
        r.value,
      ]),
    );
    const agg = this.db
      .prepare(
        `SELECT COUNT(*) AS n, COALESCE(SUM(records), 0) AS r, COALESCE(SUM(LENGTH(body)), 0) AS b,
                COALESCE(MAX(id), 0) AS maxId,
                COALESCE(SUM(s IS NOT NULL), 0) AS cn, COALESCE(SUM(CASE WHEN s IS NOT NULL THEN records END), 0) AS cr,
                COALESCE(MAX(s + records), 1) AS next
         FROM (SELECT c.id, c.records, c.body, COALESCE(c.seq_from, k.seq_from) AS s
               FROM chunks c LEFT JOIN claims k ON k.chunk = c.id)`,
      )
      .get() as { n: number; r: number; b: number; maxId: number; cn: number; cr: number; next: number };
    this.t = {
      chunks: agg.n,
      records: agg.r,
      bytes: agg.b + agg.n * CHUNK_OVERHEAD_BYTES,
      claimedChunks: agg.cn,
      claimedRecords: agg.cr,
      waitingChunks: agg.n - agg.cn,
      oldestTs: null,
    };
    this.c = {
      nextSeq: Math.max(m.get('nextSeq') ?? 1, agg.next),
      droppedCap: m.get('droppedCap') ?? 0,
      droppedTtl: m.get('droppedTtl') ?? 0,
    };
    this.maxId = Math.max((m.get('nextId') ?? 1) - 1, agg.maxId);
  }

  private writeMeta(): void {
    this.stmt.setMeta.run('nextSeq', this.c.nextSeq);
    this.stmt.setMeta.run('nextId', this.maxId + 1);
    this.stmt.setMeta.run('droppedCap', this.c.droppedCap);
    this.stmt.setMeta.run('droppedTtl', this.c.droppedTtl);
  }

  transaction<T>(fn: () => T): T {
    const saved = { t: { ...this.t }, c: { ...this.c }, maxId: this.maxId };
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      Object.assign(this, saved);
      throw err;
    }
  }

  insertChunks(chunks: readonly NewChunk[], claim: boolean): StoredChunk[] {
    return chunks.map((ch) => {
      const id = ++this.maxId;
      const seqFrom = claim ? this.c.nextSeq : null;
      this.writeChunk(id, seqFrom, ch);
      this.t.chunks++;
      this.t.records += ch.records;
      this.t.bytes += cost(ch);
      if (seqFrom === null) this.t.waitingChunks++;
      else {
        this.c.nextSeq += ch.records;
        this.t.claimedChunks++;
        this.t.claimedRecords += ch.records;
      }
      return { ...ch, id, seqFrom };
    });
  }

  waiting(limit: number): StoredChunk[] {
    return (this.stmt.waiting.all(limit) as DbChunk[]).map(toChunk);
  }

  claim(chunks: readonly StoredChunk[]): StoredChunk[] {
    return chunks.map((ch) => {
      if (ch.seqFrom !== null) throw new Error(`chunk ${ch.id} is not waiting`);
      const seqFrom = this.c.nextSeq;
      this.stmt.addClaim.run(ch.id, seqFrom); // a primary key: claiming a chunk twice fails the transaction
      this.c.nextSeq += ch.records;
      this.t.waitingChunks--;
      this.t.claimedChunks++;
      this.t.claimedRecords += ch.records;
      return { ...ch, seqFrom };
    });
  }

  claimed(): StoredChunk[] {
    return (this.stmt.claimed.all() as DbChunk[]).map(toChunk);
  }

  deleteChunks(ids: readonly number[]): void {
    let persist = false;
    // acknowledged chunks are mostly consecutive ids: one range statement per run, not one per chunk
    const sorted = [...ids].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; ) {
      let j = i;
      while (j + 1 < sorted.length && sorted[j + 1]! <= sorted[j]! + 1) j++;
      const [from, to] = [sorted[i]!, sorted[j]!];
      i = j + 1;
      const claims = new Map(
        (this.stmt.deleteClaims.all(from, to) as { chunk: number; seq_from: number }[]).map((c) => [
          c.chunk,
          c.seq_from,
        ]),
      );
      const rows = this.stmt.delete.all(from, to) as {
        id: number;
        seq_from: number | null;
        records: number;
        n: number;
      }[];
      for (const r of rows) {
        const claim = r.seq_from ?? claims.get(r.id);
        this.t.chunks--;
        this.t.records -= r.records;
        this.t.bytes -= r.n + CHUNK_OVERHEAD_BYTES;
        if (claim !== undefined) {
          this.t.claimedChunks--;
          this.t.claimedRecords -= r.records;
          if (claim + r.records === this.c.nextSeq) persist = true;
        } else this.t.waitingChunks--;
        if (r.id === this.maxId) persist = true;
      }
    }
    // the deleted chunk was what a reopen would derive nextSeq or the next id from
    if (persist) this.writeMeta();
  }

  private remove(rows: DbChunk[]): StoredChunk[] {
    const chunks = rows.map(toChunk);
    this.deleteChunks(chunks.map((ch) => ch.id));
    return chunks;
  }

  takeLowest(bytes: number): StoredChunk[] {
    const taken: StoredChunk[] = [];
    let freed = 0;
    for (let rank = 3; rank >= 0 && freed < bytes; rank--) {
      let rows: DbChunk[];
      do {
        rows = this.stmt.lowestOfRank.all(rank) as DbChunk[];
        const pick: DbChunk[] = [];
        for (const r of rows) {
          if (freed >= bytes) break;
          pick.push(r);
          freed += cost(r);
        }
        taken.push(...this.remove(pick));
      } while (freed < bytes && rows.length === 256);
    }
    return taken;
  }

  takeExpired(now: number): StoredChunk[] {
    return this.remove(this.stmt.expired.all(now) as DbChunk[]);
  }

  pendingLoss(stream: string, reason: 'cap' | 'ttl'): StoredChunk | undefined {
    const r = this.stmt.pendingLoss.get(stream, reason) as DbChunk | undefined;
    return r && toChunk(r);
  }

  replaceBody(id: number, body: Buffer): void {
    const old = this.stmt.get.get(id) as DbChunk | undefined;
    if (!old || old.seq_from !== null || old.seq !== null) return;
    this.stmt.replaceBody.run(body, id);
    this.t.bytes += body.length - old.body.length;
  }

  counters(): OutboxCounters {
    return { ...this.c };
  }

  addDropped(cap: number, ttl: number): void {
    if (!cap && !ttl) return;
    this.c.droppedCap += cap;
    this.c.droppedTtl += ttl;
    this.writeMeta();
  }

  totals(): OutboxTotals {
    const oldest = this.stmt.oldest.get() as number | undefined;
    return { ...this.t, oldestTs: oldest ?? null };
  }

  filterStates(): Map<string, string> {
    const rows = this.db.prepare('SELECT stream, state FROM filter_state').all() as { stream: string; state: string }[];
    return new Map(rows.map((r) => [r.stream, r.state]));
  }

  saveFilterStates(entries: readonly [string, string | null][]): void {
    for (const [stream, state] of entries) {
      if (state === null) this.stmt.deleteState.run(stream);
      else this.stmt.saveState.run(stream, state);
    }
  }

  setting(key: string): string | undefined {
    return this.stmt.setting.get(key) as string | undefined;
  }

  setSetting(key: string, value: string): void {
    this.stmt.setSetting.run(key, value);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function emptyTotals(): OutboxTotals {
  return { chunks: 0, records: 0, bytes: 0, claimedChunks: 0, claimedRecords: 0, waitingChunks: 0, oldestTs: null };
}

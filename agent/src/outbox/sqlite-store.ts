import Database from 'better-sqlite3';
import { sqliteBindingOption } from '../native.js';
import type { NewRow, OutboxBatch, OutboxCounters, OutboxRow, OutboxStore, OutboxTotals } from './store.js';

export interface SqliteOutboxOptions {
  /**
   * FULL (default): every commit is fsynced, so an acknowledged reading survives power loss. NORMAL: in WAL mode a
   * commit survives a crash of the process but the last commits may be lost on power loss; about twice the rate on
   * slow SD cards. See agent/README.md.
   */
  synchronous?: 'FULL' | 'NORMAL';
  readonly?: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rows (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  stream TEXT NOT NULL,
  rank INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  expires_at INTEGER,
  body TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  loss INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rows_rank ON rows(rank, id);
CREATE INDEX IF NOT EXISTS rows_expiry ON rows(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS batches (
  seq_from INTEGER PRIMARY KEY,
  seq_to INTEGER NOT NULL,
  payload BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS filter_state (stream TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

interface DbRow {
  id: number;
  stream: string;
  rank: number;
  ts: number;
  expires_at: number | null;
  body: string;
  bytes: number;
}

const toRow = (r: DbRow): OutboxRow => ({
  id: r.id,
  stream: r.stream,
  rank: r.rank,
  ts: r.ts,
  expiresAt: r.expires_at,
  body: r.body,
  bytes: r.bytes,
});

/** The outbox on a SQLite file in WAL mode. Totals are kept in memory, loaded once at open. */
export class SqliteOutboxStore implements OutboxStore {
  private readonly db: Database.Database;
  private readonly stmt;
  private t: OutboxTotals;

  constructor(path: string, opts: SqliteOutboxOptions = {}) {
    this.db = new Database(path, {
      readonly: opts.readonly ?? false,
      fileMustExist: opts.readonly ?? false,
      // the typings say string; better-sqlite3 also takes the loaded addon object (what the single executable passes)
      ...(sqliteBindingOption() as { nativeBinding?: string }),
    });
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
      this.db.exec(SCHEMA);
    }
    const db = this.db;
    this.stmt = {
      insert: db.prepare(
        'INSERT INTO rows (stream, rank, ts, expires_at, body, bytes, loss) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      lowestOfRank: db.prepare('SELECT * FROM rows WHERE rank = ? AND loss = 0 ORDER BY id LIMIT 1000'),
      expired: db.prepare('SELECT * FROM rows WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY id'),
      forBatch: db.prepare('SELECT * FROM rows ORDER BY rank ASC, id ASC LIMIT ?'),
      deleteRow: db.prepare('DELETE FROM rows WHERE id = ?'),
      pendingLoss: db.prepare('SELECT * FROM rows WHERE loss = 1 AND stream = ? AND instr(body, ?) > 0 LIMIT 1'),
      rowBytes: db.prepare('SELECT bytes FROM rows WHERE id = ?').pluck(),
      updateRow: db.prepare('UPDATE rows SET body = ?, bytes = ? WHERE id = ?'),
      insertBatch: db.prepare('INSERT INTO batches (seq_from, seq_to, payload, created_at) VALUES (?, ?, ?, ?)'),
      deleteBatch: db.prepare('DELETE FROM batches WHERE seq_from = ? RETURNING LENGTH(payload) AS n'),
      // rows taken for a batch are a prefix of the (rank, id) order: one index range per rank deletes them
      deleteUpTo: db.prepare('DELETE FROM rows WHERE rank = ? AND id <= ?'),
      batches: db.prepare('SELECT seq_from, seq_to, payload, created_at FROM batches ORDER BY seq_from'),
      getMeta: db.prepare('SELECT key, value FROM meta'),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      oldest: db.prepare('SELECT ts FROM rows ORDER BY id LIMIT 1').pluck(),
      saveState: db.prepare(
        'INSERT INTO filter_state (stream, state) VALUES (?, ?) ON CONFLICT(stream) DO UPDATE SET state = excluded.state',
      ),
      deleteState: db.prepare('DELETE FROM filter_state WHERE stream = ?'),
      setting: db.prepare('SELECT value FROM settings WHERE key = ?').pluck(),
      setSetting: db.prepare(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
    };
    this.t = this.loadTotals();
  }

  private loadTotals(): OutboxTotals {
    const r = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM rows').get() as {
      n: number;
      b: number;
    };
    const b = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(payload)), 0) AS b FROM batches').get() as {
      n: number;
      b: number;
    };
    return { rows: r.n, rowBytes: r.b, batches: b.n, batchBytes: b.b, oldestTs: null };
  }

  transaction<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      this.t = this.loadTotals();
      throw err;
    }
  }

  insertRows(rows: readonly NewRow[]): number[] {
    const ids: number[] = [];
    for (const r of rows) {
      const isLoss = r.body.startsWith('"kind":"loss"') ? 1 : 0;
      const info = this.stmt.insert.run(r.stream, r.rank, r.ts, r.expiresAt, r.body, r.bytes, isLoss);
      ids.push(Number(info.lastInsertRowid));
      this.t.rows++;
      this.t.rowBytes += r.bytes;
    }
    return ids;
  }

  private remove(rows: OutboxRow[]): OutboxRow[] {
    for (const r of rows) {
      this.stmt.deleteRow.run(r.id);
      this.t.rows--;
      this.t.rowBytes -= r.bytes;
    }
    return rows;
  }

  takeLowest(bytes: number): OutboxRow[] {
    const taken: OutboxRow[] = [];
    let freed = 0;
    // lowest priority first (highest rank), oldest first within it; the (rank, id) index serves each rank in order
    for (let rank = 3; rank >= 0 && freed < bytes; rank--) {
      let rows: DbRow[];
      do {
        rows = this.stmt.lowestOfRank.all(rank) as DbRow[];
        const chunk: OutboxRow[] = [];
        for (const r of rows) {
          if (freed >= bytes) break;
          chunk.push(toRow(r));
          freed += r.bytes;
        }
        taken.push(...this.remove(chunk));
      } while (freed < bytes && rows.length === 1000);
    }
    return taken;
  }

  takeExpired(now: number): OutboxRow[] {
    return this.remove((this.stmt.expired.all(now) as DbRow[]).map(toRow));
  }

  takeForBatch(maxRecords: number, maxBytes: number): OutboxRow[] {
    const pick: OutboxRow[] = [];
    let size = 0;
    const upTo = new Map<number, number>();
    for (const r of this.stmt.forBatch.all(maxRecords) as DbRow[]) {
      if (pick.length > 0 && size + r.bytes > maxBytes) break;
      pick.push(toRow(r));
      upTo.set(r.rank, r.id);
      size += r.bytes;
    }
    for (const [rank, id] of upTo) this.stmt.deleteUpTo.run(rank, id);
    this.t.rows -= pick.length;
    this.t.rowBytes -= size;
    return pick;
  }

  pendingLoss(stream: string, reason: 'cap' | 'ttl'): OutboxRow | undefined {
    const r = this.stmt.pendingLoss.get(stream, `"reason":"${reason}"`) as DbRow | undefined;
    return r && toRow(r);
  }

  updateRow(id: number, body: string, bytes: number): void {
    const old = this.stmt.rowBytes.get(id) as number | undefined;
    if (old === undefined) return;
    this.stmt.updateRow.run(body, bytes, id);
    this.t.rowBytes += bytes - old;
  }

  insertBatch(b: OutboxBatch): void {
    this.stmt.insertBatch.run(b.seqFrom, b.seqTo, b.payload, b.createdAt);
    this.t.batches++;
    this.t.batchBytes += b.payload.byteLength;
  }

  deleteBatch(seqFrom: number): boolean {
    const row = this.stmt.deleteBatch.get(seqFrom) as { n: number } | undefined;
    if (!row) return false;
    this.t.batches--;
    this.t.batchBytes -= row.n;
    return true;
  }

  batches(): OutboxBatch[] {
    return (this.stmt.batches.all() as { seq_from: number; seq_to: number; payload: Buffer; created_at: number }[]).map(
      (b) => ({ seqFrom: b.seq_from, seqTo: b.seq_to, payload: b.payload, createdAt: b.created_at }),
    );
  }

  counters(): OutboxCounters {
    const m = new Map((this.stmt.getMeta.all() as { key: string; value: number }[]).map((r) => [r.key, r.value]));
    return {
      nextSeq: m.get('nextSeq') ?? 1,
      droppedCap: m.get('droppedCap') ?? 0,
      droppedTtl: m.get('droppedTtl') ?? 0,
    };
  }

  setCounters(c: OutboxCounters): void {
    this.stmt.setMeta.run('nextSeq', c.nextSeq);
    this.stmt.setMeta.run('droppedCap', c.droppedCap);
    this.stmt.setMeta.run('droppedTtl', c.droppedTtl);
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

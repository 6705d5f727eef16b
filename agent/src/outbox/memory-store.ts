import type { NewRow, OutboxBatch, OutboxCounters, OutboxRow, OutboxStore, OutboxTotals } from './store.js';

/** In-memory OutboxStore for unit tests of the policy; passes the same contract suite as the SQLite adapter. */
export class MemoryOutboxStore implements OutboxStore {
  private rows: OutboxRow[] = [];
  private batchList: OutboxBatch[] = [];
  private lastId = 0;
  private c: OutboxCounters = { nextSeq: 1, droppedCap: 0, droppedTtl: 0 };
  private states = new Map<string, string>();
  private settings = new Map<string, string>();

  transaction<T>(fn: () => T): T {
    const saved = {
      rows: [...this.rows],
      batches: [...this.batchList],
      lastId: this.lastId,
      c: { ...this.c },
      states: new Map(this.states),
      settings: new Map(this.settings),
    };
    try {
      return fn();
    } catch (err) {
      this.rows = saved.rows;
      this.batchList = saved.batches;
      this.lastId = saved.lastId;
      this.c = saved.c;
      this.states = saved.states;
      this.settings = saved.settings;
      throw err;
    }
  }

  filterStates(): Map<string, string> {
    return new Map(this.states);
  }

  saveFilterStates(entries: readonly [string, string | null][]): void {
    for (const [k, v] of entries) {
      if (v === null) this.states.delete(k);
      else this.states.set(k, v);
    }
  }

  setting(key: string): string | undefined {
    return this.settings.get(key);
  }

  setSetting(key: string, value: string): void {
    this.settings.set(key, value);
  }

  insertRows(rows: readonly NewRow[]): number[] {
    return rows.map((r) => {
      const id = ++this.lastId;
      this.rows.push({ ...r, id });
      return id;
    });
  }

  private take(pick: OutboxRow[]): OutboxRow[] {
    const ids = new Set(pick.map((r) => r.id));
    this.rows = this.rows.filter((r) => !ids.has(r.id));
    return pick;
  }

  takeLowest(bytes: number): OutboxRow[] {
    const order = this.rows
      .filter((r) => !r.body.startsWith('"kind":"loss"'))
      .sort((a, b) => b.rank - a.rank || a.id - b.id);
    const pick: OutboxRow[] = [];
    let freed = 0;
    for (const r of order) {
      if (freed >= bytes) break;
      pick.push(r);
      freed += r.bytes;
    }
    return this.take(pick);
  }

  takeExpired(now: number): OutboxRow[] {
    return this.take(this.rows.filter((r) => r.expiresAt !== null && r.expiresAt <= now));
  }

  takeForBatch(maxRecords: number, maxBytes: number): OutboxRow[] {
    const order = [...this.rows].sort((a, b) => a.rank - b.rank || a.id - b.id);
    const pick: OutboxRow[] = [];
    let size = 0;
    for (const r of order) {
      if (pick.length >= maxRecords || (pick.length > 0 && size + r.bytes > maxBytes)) break;
      pick.push(r);
      size += r.bytes;
    }
    return this.take(pick);
  }

  pendingLoss(stream: string, reason: 'cap' | 'ttl'): OutboxRow | undefined {
    const r = this.rows.find(
      (x) => x.stream === stream && x.body.startsWith('"kind":"loss"') && x.body.includes(`"reason":"${reason}"`),
    );
    return r && { ...r };
  }

  updateRow(id: number, body: string, bytes: number): void {
    const r = this.rows.find((x) => x.id === id);
    if (r) Object.assign(r, { body, bytes });
  }

  insertBatch(batch: OutboxBatch): void {
    this.batchList.push({ ...batch, payload: Buffer.from(batch.payload) });
  }

  deleteBatch(seqFrom: number): boolean {
    const before = this.batchList.length;
    this.batchList = this.batchList.filter((b) => b.seqFrom !== seqFrom);
    return this.batchList.length < before;
  }

  batches(): OutboxBatch[] {
    return [...this.batchList].sort((a, b) => a.seqFrom - b.seqFrom);
  }

  counters(): OutboxCounters {
    return { ...this.c };
  }

  setCounters(c: OutboxCounters): void {
    this.c = { ...c };
  }

  totals(): OutboxTotals {
    return {
      rows: this.rows.length,
      rowBytes: this.rows.reduce((s, r) => s + r.bytes, 0),
      batches: this.batchList.length,
      batchBytes: this.batchList.reduce((s, b) => s + b.payload.byteLength, 0),
      oldestTs: this.rows.length ? Math.min(...this.rows.map((r) => r.ts)) : null,
    };
  }

  close(): void {}
}

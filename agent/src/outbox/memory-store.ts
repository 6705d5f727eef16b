import {
  CHUNK_OVERHEAD_BYTES,
  type NewChunk,
  type OutboxCounters,
  type OutboxStore,
  type OutboxTotals,
  type StoredChunk,
} from './store.js';

const byRank = (a: StoredChunk, b: StoredChunk) => a.rank - b.rank || a.id - b.id;

/** In-memory OutboxStore for unit tests of the policy; passes the same contract suite as the SQLite adapter. */
export class MemoryOutboxStore implements OutboxStore {
  private chunks = new Map<number, StoredChunk>();
  private lastId = 0;
  private c: OutboxCounters = { nextSeq: 1, droppedCap: 0, droppedTtl: 0 };
  private states = new Map<string, string>();
  private settings = new Map<string, string>();

  transaction<T>(fn: () => T): T {
    const saved = {
      chunks: new Map([...this.chunks].map(([id, ch]) => [id, { ...ch }])),
      lastId: this.lastId,
      c: { ...this.c },
      states: new Map(this.states),
      settings: new Map(this.settings),
    };
    try {
      return fn();
    } catch (err) {
      Object.assign(this, saved);
      throw err;
    }
  }

  insertChunks(chunks: readonly NewChunk[], claim: boolean): StoredChunk[] {
    const out = chunks.map((ch) => {
      const s: StoredChunk = { ...ch, id: ++this.lastId, seqFrom: null };
      this.chunks.set(s.id, s);
      return s;
    });
    return claim ? this.claim(out) : out.map((s) => ({ ...s }));
  }

  waiting(limit: number): StoredChunk[] {
    return [...this.chunks.values()]
      .filter((ch) => ch.seqFrom === null)
      .sort(byRank)
      .slice(0, limit)
      .map((ch) => ({ ...ch }));
  }

  claim(chunks: readonly StoredChunk[]): StoredChunk[] {
    return chunks.map(({ id }) => {
      const ch = this.chunks.get(id);
      if (!ch || ch.seqFrom !== null) throw new Error(`chunk ${id} is not waiting`);
      ch.seqFrom = this.c.nextSeq;
      this.c.nextSeq += ch.records;
      return { ...ch };
    });
  }

  claimed(): StoredChunk[] {
    return [...this.chunks.values()]
      .filter((ch) => ch.seqFrom !== null)
      .sort((a, b) => a.seqFrom! - b.seqFrom!)
      .map((ch) => ({ ...ch }));
  }

  deleteChunks(ids: readonly number[]): void {
    for (const id of ids) this.chunks.delete(id);
  }

  private take(pick: StoredChunk[]): StoredChunk[] {
    for (const ch of pick) this.chunks.delete(ch.id);
    return pick.map((ch) => ({ ...ch }));
  }

  takeLowest(bytes: number): StoredChunk[] {
    const order = [...this.chunks.values()]
      .filter((ch) => ch.seqFrom === null && !ch.loss)
      .sort((a, b) => b.rank - a.rank || a.id - b.id);
    const pick: StoredChunk[] = [];
    let freed = 0;
    for (const ch of order) {
      if (freed >= bytes) break;
      pick.push(ch);
      freed += ch.body.length + CHUNK_OVERHEAD_BYTES;
    }
    return this.take(pick);
  }

  takeExpired(now: number): StoredChunk[] {
    return this.take(
      [...this.chunks.values()].filter((ch) => ch.seqFrom === null && ch.expiresAt !== null && ch.expiresAt <= now),
    );
  }

  pendingLoss(stream: string, reason: 'cap' | 'ttl'): StoredChunk | undefined {
    const ch = [...this.chunks.values()].find(
      (x) => x.seqFrom === null && x.loss?.stream === stream && x.loss.reason === reason,
    );
    return ch && { ...ch };
  }

  replaceBody(id: number, body: Buffer): void {
    const ch = this.chunks.get(id);
    if (ch && ch.seqFrom === null) ch.body = body;
  }

  counters(): OutboxCounters {
    return { ...this.c };
  }

  addDropped(cap: number, ttl: number): void {
    this.c.droppedCap += cap;
    this.c.droppedTtl += ttl;
  }

  totals(): OutboxTotals {
    const all = [...this.chunks.values()];
    const claimed = all.filter((ch) => ch.seqFrom !== null);
    return {
      chunks: all.length,
      records: all.reduce((s, ch) => s + ch.records, 0),
      bytes: all.reduce((s, ch) => s + ch.body.length + CHUNK_OVERHEAD_BYTES, 0),
      claimedChunks: claimed.length,
      claimedRecords: claimed.reduce((s, ch) => s + ch.records, 0),
      waitingChunks: all.length - claimed.length,
      oldestTs: all.length ? Math.min(...all.map((ch) => ch.firstTs)) : null,
    };
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

  close(): void {}
}

import { describe, expect, it } from 'vitest';
import type { NewRow, OutboxStore } from './store.js';

const row = (stream: string, rank: number, ts: number, expiresAt: number | null = null): NewRow => ({
  stream,
  rank,
  ts,
  expiresAt,
  body: `"kind":"reading","stream":"${stream}","ts":${ts},"value":1`,
  bytes: 100,
});

/** The contract every OutboxStore passes (memory and SQLite). `reopen` returns the same store after a restart, when it has one. */
export function outboxStoreContract(name: string, make: () => { store: OutboxStore; reopen?: () => OutboxStore }) {
  describe(`OutboxStore contract: ${name}`, () => {
    it('assigns increasing ids and keeps totals', () => {
      const { store } = make();
      const ids = store.insertRows([row('a', 2, 1), row('b', 2, 2)]);
      expect(ids[1]! > ids[0]!).toBe(true);
      expect(store.totals()).toMatchObject({ rows: 2, rowBytes: 200, batches: 0, batchBytes: 0, oldestTs: 1 });
      store.close();
    });

    it('takes rows for a batch by priority then age, within the record and byte limits', () => {
      const { store } = make();
      store.insertRows([row('bulk', 3, 1), row('tel', 2, 2), row('alert', 0, 3), row('tel', 2, 4)]);
      expect(store.takeForBatch(2, 10_000).map((r) => r.stream)).toEqual(['alert', 'tel']);
      expect(store.takeForBatch(10, 150).map((r) => r.ts)).toEqual([4]);
      expect(store.takeForBatch(10, 10).map((r) => r.ts)).toEqual([1]); // at least one row, even above maxBytes
      expect(store.takeForBatch(10, 10)).toEqual([]);
      expect(store.totals().rows).toBe(0);
      store.close();
    });

    it('drops the lowest priority, oldest first, and never a loss row', () => {
      const { store } = make();
      store.insertRows([row('tel', 2, 1), row('bulk', 3, 2), row('bulk', 3, 3), row('alert', 0, 4)]);
      store.insertRows([{ ...row('x', 3, 5), body: '"kind":"loss","stream":"x"' }]);
      expect(store.takeLowest(150).map((r) => r.ts)).toEqual([2, 3]);
      expect(store.takeLowest(1).map((r) => r.ts)).toEqual([1]);
      expect(store.takeLowest(1000).map((r) => r.ts)).toEqual([4]);
      expect(store.totals().rows).toBe(1);
      store.close();
    });

    it("finds a stream's unsent loss record by reason and updates a row in place", () => {
      const { store } = make();
      store.insertRows([
        { ...row('a', 1, 1), body: '"kind":"loss","stream":"a","ts":1,"reason":"cap","count":2' },
        { ...row('a', 1, 1), body: '"kind":"loss","stream":"a","ts":1,"reason":"ttl","count":1' },
      ]);
      const cap = store.pendingLoss('a', 'cap')!;
      expect(cap.body).toContain('"count":2');
      expect(store.pendingLoss('b', 'cap')).toBeUndefined();
      store.updateRow(cap.id, '"kind":"loss","stream":"a","ts":2,"reason":"cap","count":5', 150);
      expect(store.pendingLoss('a', 'cap')!.body).toContain('"count":5');
      expect(store.totals().rowBytes).toBe(250);
      store.close();
    });

    it('takes expired rows only', () => {
      const { store } = make();
      store.insertRows([row('a', 2, 1, 100), row('b', 2, 2, 200), row('c', 2, 3)]);
      expect(store.takeExpired(150).map((r) => r.stream)).toEqual(['a']);
      expect(store.totals().rows).toBe(2);
      store.close();
    });

    it('keeps batches until deleted, in sequence order, byte for byte', () => {
      const { store } = make();
      store.insertBatch({ seqFrom: 11, seqTo: 12, payload: Buffer.from('second'), createdAt: 5 });
      store.insertBatch({ seqFrom: 1, seqTo: 10, payload: Buffer.from('first'), createdAt: 4 });
      expect(store.batches().map((b) => b.payload.toString())).toEqual(['first', 'second']);
      expect(store.totals()).toMatchObject({ batches: 2, batchBytes: 11 });
      expect(store.deleteBatch(1)).toBe(true);
      expect(store.deleteBatch(1)).toBe(false);
      expect(store.batches().map((b) => b.seqFrom)).toEqual([11]);
      store.close();
    });

    it('rolls a failed transaction back entirely', () => {
      const { store } = make();
      store.insertRows([row('a', 2, 1)]);
      expect(() =>
        store.transaction(() => {
          store.insertRows([row('b', 2, 2)]);
          store.setCounters({ nextSeq: 99, droppedCap: 1, droppedTtl: 1 });
          throw new Error('disk full');
        }),
      ).toThrow('disk full');
      expect(store.totals().rows).toBe(1);
      expect(store.counters()).toEqual({ nextSeq: 1, droppedCap: 0, droppedTtl: 0 });
      store.close();
    });

    it('keeps filter states and settings, and rolls them back with a failed transaction', () => {
      const { store } = make();
      store.saveFilterStates([
        ['a', '{"x":1}'],
        ['b', '{"x":2}'],
      ]);
      store.setSetting('desired', '{"version":1}');
      expect(() =>
        store.transaction(() => {
          store.saveFilterStates([
            ['a', null],
            ['b', '{"x":3}'],
          ]);
          store.setSetting('desired', '{"version":2}');
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect([...store.filterStates()].sort()).toEqual([
        ['a', '{"x":1}'],
        ['b', '{"x":2}'],
      ]);
      expect(store.setting('desired')).toBe('{"version":1}');
      store.saveFilterStates([['a', null]]);
      expect([...store.filterStates().keys()]).toEqual(['b']);
      expect(store.setting('nope')).toBeUndefined();
      store.close();
    });

    it('persists rows, batches and counters across a reopen (when the store is durable)', () => {
      const { store, reopen } = make();
      if (!reopen) return;
      store.transaction(() => {
        store.insertRows([row('a', 2, 1)]);
        store.insertBatch({ seqFrom: 1, seqTo: 3, payload: Buffer.from('p'), createdAt: 1 });
        store.setCounters({ nextSeq: 4, droppedCap: 2, droppedTtl: 3 });
        store.saveFilterStates([['s', '{"held":1}']]);
      });
      store.close();
      const again = reopen();
      expect(again.filterStates().get('s')).toBe('{"held":1}');
      expect(again.totals()).toMatchObject({ rows: 1, batches: 1 });
      expect(again.counters()).toEqual({ nextSeq: 4, droppedCap: 2, droppedTtl: 3 });
      const [id] = again.insertRows([row('b', 2, 2)]);
      expect(id).toBeGreaterThan(1);
      again.close();
    });
  });
}

import { describe, expect, it } from 'vitest';
import { CHUNK_OVERHEAD_BYTES, type NewChunk, type OutboxStore } from './store.js';

const chunk = (rank: number, records: number, firstTs: number, over: Partial<NewChunk> = {}): NewChunk => ({
  rank,
  records,
  body: Buffer.alloc(100 - CHUNK_OVERHEAD_BYTES, rank),
  firstTs,
  expiresAt: null,
  ...over,
});

/** The contract every OutboxStore passes (memory and SQLite). `reopen` returns the same store after a restart, when it has one. */
export function outboxStoreContract(name: string, make: () => { store: OutboxStore; reopen?: () => OutboxStore }) {
  describe(`OutboxStore contract: ${name}`, () => {
    it('assigns increasing ids and keeps totals', () => {
      const { store } = make();
      const [a, b] = store.insertChunks([chunk(2, 3, 1), chunk(2, 2, 2)], false);
      expect(b!.id > a!.id).toBe(true);
      expect(a!.seqFrom).toBeNull();
      expect(store.totals()).toMatchObject({ chunks: 2, records: 5, bytes: 200, claimedChunks: 0, waitingChunks: 2 });
      expect(store.totals().oldestTs).toBe(1);
      store.close();
    });

    it('lists waiting chunks by priority then age, and claims them with consecutive sequence numbers', () => {
      const { store } = make();
      const [bulk, tel, alert, tel2] = store.insertChunks(
        [chunk(3, 1, 1), chunk(2, 4, 2), chunk(0, 2, 3), chunk(2, 1, 4)],
        false,
      );
      expect(store.waiting(10).map((c) => c.id)).toEqual([alert!.id, tel!.id, tel2!.id, bulk!.id]);
      expect(store.waiting(2)).toHaveLength(2);
      const claimed = store.claim([alert!, tel!]);
      expect(claimed.map((c) => c.seqFrom)).toEqual([1, 3]);
      expect(store.counters().nextSeq).toBe(7);
      expect(store.waiting(10).map((c) => c.id)).toEqual([tel2!.id, bulk!.id]);
      expect(store.claimed().map((c) => [c.id, c.seqFrom])).toEqual([
        [alert!.id, 1],
        [tel!.id, 3],
      ]);
      expect(() => store.claim([alert!])).toThrow();
      expect(store.totals()).toMatchObject({ claimedChunks: 2, claimedRecords: 6, waitingChunks: 2 });
      store.close();
    });

    it('inserts chunks claimed at once when asked, the body kept byte for byte', () => {
      const { store } = make();
      const body = Buffer.from([1, 2, 3, 250, 0, 7]);
      const [c] = store.insertChunks([chunk(2, 5, 1, { body })], true);
      expect(c!.seqFrom).toBe(1);
      expect(store.claimed()[0]!.body.equals(body)).toBe(true);
      expect(store.waiting(10)).toEqual([]);
      expect(store.counters().nextSeq).toBe(6);
      store.close();
    });

    it('deletes chunks, and keeps the sequence going after the newest claimed one is gone', () => {
      const { store, reopen } = make();
      const [a, b] = store.insertChunks([chunk(2, 3, 1), chunk(2, 2, 2)], true);
      store.deleteChunks([a!.id, a!.id + 1000]);
      expect(store.claimed().map((c) => c.id)).toEqual([b!.id]);
      store.deleteChunks([b!.id]);
      expect(store.totals()).toMatchObject({ chunks: 0, records: 0, bytes: 0, claimedChunks: 0 });
      const [c] = store.insertChunks([chunk(2, 1, 3)], true);
      expect(c!.seqFrom).toBe(6);
      expect(c!.id).toBeGreaterThan(b!.id);
      store.deleteChunks([c!.id]);
      if (!reopen) return;
      store.close();
      const again = reopen();
      expect(again.counters().nextSeq).toBe(7);
      const [d] = again.insertChunks([chunk(2, 1, 4)], false);
      expect(d!.id).toBeGreaterThan(c!.id);
      again.close();
    });

    it('drops the lowest priority waiting chunks, oldest first, never a claimed or a loss chunk', () => {
      const { store } = make();
      const [tel, bulk1, bulk2, alert] = store.insertChunks(
        [chunk(2, 1, 1), chunk(3, 1, 2), chunk(3, 1, 3), chunk(0, 1, 4)],
        false,
      );
      store.insertChunks([chunk(3, 1, 5, { loss: { stream: 'x', reason: 'cap' } })], false);
      const [claimedBulk] = store.insertChunks([chunk(3, 1, 6)], false);
      store.claim([claimedBulk!]);
      expect(store.takeLowest(150).map((c) => c.id)).toEqual([bulk1!.id, bulk2!.id]);
      expect(store.takeLowest(1).map((c) => c.id)).toEqual([tel!.id]);
      expect(store.takeLowest(1000).map((c) => c.id)).toEqual([alert!.id]);
      expect(store.totals()).toMatchObject({ chunks: 2, claimedChunks: 1 });
      store.close();
    });

    it("finds a stream's waiting loss chunk by reason and replaces its body", () => {
      const { store } = make();
      store.insertChunks(
        [
          chunk(1, 1, 1, { loss: { stream: 'a', reason: 'cap' } }),
          chunk(1, 1, 1, { loss: { stream: 'a', reason: 'ttl' } }),
        ],
        false,
      );
      const cap = store.pendingLoss('a', 'cap')!;
      expect(cap.loss).toEqual({ stream: 'a', reason: 'cap' });
      expect(store.pendingLoss('b', 'cap')).toBeUndefined();
      store.replaceBody(cap.id, Buffer.alloc(86));
      expect(store.pendingLoss('a', 'cap')!.body.length).toBe(86);
      expect(store.totals().bytes).toBe(250);
      store.claim([cap]);
      expect(store.pendingLoss('a', 'cap')).toBeUndefined();
      store.close();
    });

    it('takes expired waiting chunks only', () => {
      const { store } = make();
      const [a] = store.insertChunks(
        [chunk(2, 1, 1, { expiresAt: 100 }), chunk(2, 1, 2, { expiresAt: 200 }), chunk(2, 1, 3)],
        false,
      );
      const [claimed] = store.insertChunks([chunk(2, 1, 1, { expiresAt: 50 })], true);
      expect(store.takeExpired(150).map((c) => c.id)).toEqual([a!.id]);
      expect(store.claimed().map((c) => c.id)).toEqual([claimed!.id]);
      expect(store.totals().chunks).toBe(3);
      store.close();
    });

    it('rolls a failed transaction back entirely', () => {
      const { store } = make();
      store.insertChunks([chunk(2, 1, 1)], false);
      expect(() =>
        store.transaction(() => {
          const [c] = store.insertChunks([chunk(2, 4, 2)], false);
          store.claim([c!]);
          store.addDropped(1, 1);
          throw new Error('disk full');
        }),
      ).toThrow('disk full');
      expect(store.totals()).toMatchObject({ chunks: 1, records: 1, claimedChunks: 0, waitingChunks: 1 });
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

    it('persists chunks, claims and counters across a reopen (when the store is durable)', () => {
      const { store, reopen } = make();
      if (!reopen) return;
      store.transaction(() => {
        store.insertChunks([chunk(2, 3, 1)], true);
        store.insertChunks(
          [chunk(3, 2, 2, { expiresAt: 9 }), chunk(1, 1, 3, { loss: { stream: 's', reason: 'ttl' } })],
          false,
        );
        store.addDropped(2, 3);
        store.saveFilterStates([['s', '{"held":1}']]);
      });
      store.close();
      const again = reopen();
      expect(again.filterStates().get('s')).toBe('{"held":1}');
      expect(again.totals()).toMatchObject({ chunks: 3, records: 6, claimedChunks: 1, waitingChunks: 2 });
      expect(again.counters()).toEqual({ nextSeq: 4, droppedCap: 2, droppedTtl: 3 });
      expect(again.waiting(10).map((c) => [c.rank, c.expiresAt, c.loss ?? null])).toEqual([
        [1, null, { stream: 's', reason: 'ttl' }],
        [3, 9, null],
      ]);
      again.close();
    });
  });
}

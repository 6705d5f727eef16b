import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewTelemetry } from './fleet-store.js';
import type { TelemetryLog } from './telemetry-log.js';

const rec = (device: string, seq: number, stream = 's/v'): NewTelemetry => ({
  device,
  seq,
  stream,
  ts: 1_700_000_000_000 + seq,
  kind: 'reading',
  record: JSON.stringify({ seq, v: seq / 10 }),
});

/**
 * What every TelemetryLog adapter must do. `open` gives a fresh, empty log; `writers` opens more handles on the
 * same database (other controller processes, as far as the database can tell), for the race below.
 */
export function telemetryLogContract(
  name: string,
  open: () => Promise<{
    log: TelemetryLog;
    writers: (n: number) => Promise<TelemetryLog[]>;
    close: () => Promise<void>;
  }>,
) {
  describe(`TelemetryLog contract: ${name}`, () => {
    let t: Awaited<ReturnType<typeof open>>;
    beforeEach(async () => {
      t = await open();
    });
    afterEach(async () => {
      await t.close();
    });

    it('stores each (device, seq) once, with cursors from 1 without gaps, and answers reads by cursor', async () => {
      const a = await t.log.insert([rec('gw-a', 1), rec('gw-a', 2), rec('gw-b', 1), rec('gw-a', 2)], 10);
      expect(a.map((r) => [r.device, r.seq, r.cursor])).toEqual([
        ['gw-a', 1, 1],
        ['gw-a', 2, 2],
        ['gw-b', 1, 3],
      ]);
      expect(await t.log.insert([rec('gw-a', 2), rec('gw-a', 3)], 11)).toMatchObject([{ seq: 3, cursor: 4 }]);
      expect(await t.log.insert([rec('gw-a', 1)], 12)).toEqual([]);
      const all = await t.log.read({ after: 0, limit: 100 });
      expect(all.map((r) => r.cursor)).toEqual([1, 2, 3, 4]);
      expect(all[0]).toEqual({ ...rec('gw-a', 1), cursor: 1, receivedAt: 10 });
      expect((await t.log.read({ after: 2, limit: 1 })).map((r) => r.cursor)).toEqual([3]);
      expect((await t.log.read({ after: 0, limit: 10, device: 'gw-b' })).map((r) => r.cursor)).toEqual([3]);
      expect((await t.log.read({ after: 0, limit: 2, pick: 'newest' })).map((r) => r.cursor)).toEqual([3, 4]);
      expect(await t.log.read({ after: 0, limit: 10, stream: 'other' })).toEqual([]);
    });

    it('keeps every character of a record in a large burst and a small one (quotes, backslashes, tabs, newlines, emoji)', async () => {
      const odd = (seq: number): NewTelemetry => ({
        ...rec('gw-odd', seq, 'tab\there/nl\nthere'),
        kind: 'reading',
        record: JSON.stringify({ seq, note: 'a\\b "q" \t \n \r \\N ✓ 🚀', raw: '\\t' }).concat(seq % 2 ? '\t\n\\' : ''),
      });
      const big = Array.from({ length: 300 }, (_, i) => odd(i + 1));
      await t.log.insertGroups([big.slice(0, 150), big.slice(150)], 1);
      await t.log.insert([odd(301), odd(302)], 2);
      const back = await t.log.read({ after: 0, limit: 1000 });
      expect(back.map(({ cursor: _c, receivedAt: _r, ...x }) => x)).toEqual([...big, odd(301), odd(302)]);
      expect(back.map((r) => r.cursor)).toEqual(Array.from({ length: 302 }, (_, i) => i + 1));
    });

    it('commits a group of batches in one transaction, in order, a row repeated later in the group a duplicate', async () => {
      const r = await t.log.insertGroups([[rec('gw-a', 1), rec('gw-a', 2)], [], [rec('gw-a', 2), rec('gw-b', 7)]], 5);
      expect(r.map((g) => g.map((x) => [x.device, x.seq, x.cursor]))).toEqual([
        [
          ['gw-a', 1, 1],
          ['gw-a', 2, 2],
        ],
        [],
        [['gw-b', 7, 3]],
      ]);
      await expect(
        t.log.insertGroups([[rec('gw-c', 1)], [{ ...rec('gw-c', 2), kind: null as never }]], 6),
      ).rejects.toThrow();
      expect(await t.log.read({ after: 3, limit: 10 })).toEqual([]); // the whole group rolled back
    });

    it('keeps the cursor gap-free across a failed insert, and reports missing sequence ranges', async () => {
      await t.log.insert([rec('gw-a', 1)], 1);
      await expect(t.log.insert([rec('gw-a', 2), { ...rec('gw-a', 3), stream: null as never }], 2)).rejects.toThrow();
      expect(await t.log.read({ after: 0, limit: 10 })).toHaveLength(1); // the whole burst rolled back
      expect(await t.log.insert([rec('gw-a', 5), rec('gw-a', 9)], 3)).toMatchObject([{ cursor: 2 }, { cursor: 3 }]);
      expect(await t.log.missingRanges('gw-a')).toEqual([
        [2, 4],
        [6, 8],
      ]);
      expect(await t.log.missingRanges('nobody')).toEqual([]);
    });

    it('prunes by receive time', async () => {
      await t.log.insert([rec('gw-a', 1), rec('gw-a', 2)], 100);
      await t.log.insert([rec('gw-a', 3)], 200);
      expect(await t.log.prune(150)).toBe(2);
      expect((await t.log.read({ after: 0, limit: 10 })).map((r) => r.seq)).toEqual([3]);
      expect(await t.log.insert([rec('gw-a', 4)], 300)).toMatchObject([{ cursor: 4 }]);
    });

    it('never lets a reader racing several writers skip a row: cursors appear in commit order', async () => {
      const writers = await t.writers(4);
      const bursts = 60;
      const per = 10;
      const total = writers.length * bursts * per;
      let done = false;
      const writing = Promise.all(
        writers.map(async (w, k) => {
          for (let b = 0; b < bursts; b++) {
            await w.insert(
              Array.from({ length: per }, (_, i) => rec(`gw-${k}`, b * per + i + 1)),
              b,
            );
          }
        }),
      ).finally(() => {
        done = true;
      });
      // the reader polls "after the last cursor it saw", as a backend following the stream does
      const seen: number[] = [];
      let after = 0;
      for (;;) {
        const finished = done;
        const page = await t.log.read({ after, limit: 37 });
        for (const r of page) seen.push(r.cursor);
        if (page.length) after = page.at(-1)!.cursor;
        else if (finished) break;
      }
      await writing;
      expect(seen).toHaveLength(total);
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    }, 60_000);
  });
}

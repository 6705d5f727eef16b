import { describe, expect, it } from 'vitest';
import type { DatabaseFixture } from '../store/database-fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The contract every ClusterStore passes (SQLite and PostgreSQL). */
export function clusterStoreContract(name: string, make: () => Promise<DatabaseFixture>) {
  describe(`ClusterStore contract: ${name}`, () => {
    it('gives the lease to one replica, renews it for that holding only, and hands it over when it runs out', async () => {
      const f = await make();
      try {
        const c = f.db.cluster;
        expect(await c.lease()).toBeUndefined();
        const a = (await c.claim('a', undefined, 300))!;
        expect(a).toMatchObject({ holder: 'a', token: 1 });
        expect(await c.claim('b', undefined, 300)).toBeUndefined(); // held
        const renewed = (await c.claim('a', a.token, 300))!;
        expect(renewed).toMatchObject({ holder: 'a', token: 1, since: a.since });
        expect(renewed.expiresAt).toBeGreaterThanOrEqual(a.expiresAt);
        expect(await c.claim('a', 7, 300)).toBeUndefined(); // not this holding's token
        // a's writes pass the fence inside a unit of work; b's do not
        await f.db.transaction(() => c.fence('a', 1));
        await expect(f.db.transaction(() => c.fence('b', 1))).rejects.toMatchObject({ code: 'E_NOT_LEADER' });
        await sleep(400); // a stops renewing: the lease runs out
        await expect(f.db.transaction(() => c.fence('a', 1))).rejects.toMatchObject({ code: 'E_NOT_LEADER' });
        const b = (await c.claim('b', undefined, 300))!;
        expect(b).toMatchObject({ holder: 'b', token: 2 }); // the fencing token rose
        expect(await c.claim('a', 1, 300)).toBeUndefined(); // the former holding cannot renew
        await expect(f.db.transaction(() => c.fence('a', 1))).rejects.toMatchObject({ code: 'E_NOT_LEADER' });
        await c.release('b', 2);
        expect((await c.claim('a', undefined, 300))!.token).toBe(3); // released: taken at once
        expect(await c.lease()).toMatchObject({ holder: 'a', token: 3 });
      } finally {
        await f.close();
      }
    });

    it('lists the replicas seen lately with what they reported', async () => {
      const f = await make();
      try {
        const c = f.db.cluster;
        await c.heartbeat({ id: 'r2', startedAt: 20, http: 'http://b', lag: { events: 0 } });
        await c.heartbeat({ id: 'r1', startedAt: 10, http: null, lag: {} });
        await c.heartbeat({ id: 'r2', startedAt: 20, http: 'http://b', lag: { events: 3 } });
        const seen = await c.replicas(60_000);
        expect(seen.map((r) => [r.id, r.http, r.lag])).toEqual([
          ['r1', null, {}],
          ['r2', 'http://b', { events: 3 }],
        ]);
        expect(seen[0]!.seenAt).toBeGreaterThan(1_700_000_000_000); // the database's clock
        await sleep(150);
        expect(await c.replicas(100)).toEqual([]);
      } finally {
        await f.close();
      }
    });
  });
}

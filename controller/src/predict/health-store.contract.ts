import { describe, expect, it } from 'vitest';
import type { DatabaseFixture } from '../store/database-fixtures.js';
import { healthSeries } from './health-store.js';

/** The contract every HealthStore passes (SQLite and PostgreSQL). */
export function healthStoreContract(name: string, make: () => Promise<DatabaseFixture>) {
  describe(`HealthStore contract: ${name}`, () => {
    it('keeps samples per (device, time), the newest, the last n, and prunes by age', async () => {
      const f = await make();
      try {
        const s = f.db.health;
        await s.add('gw-1', 3000, { load1: 0.3 });
        await s.add('gw-1', 1000, { load1: 0.1, reconnects: 2 });
        await s.add('gw-1', 2000, { load1: 0.2 });
        await s.add('gw-1', 2000, { load1: 0.25 }); // the same time again replaces it
        await s.add('gw-2', 1500, { load1: 9 });
        expect(await s.samples('gw-1', 0)).toEqual([
          { ts: 1000, metrics: { load1: 0.1, reconnects: 2 } },
          { ts: 2000, metrics: { load1: 0.25 } },
          { ts: 3000, metrics: { load1: 0.3 } },
        ]);
        expect((await s.samples('gw-1', 0, 2)).map((x) => x.ts)).toEqual([2000, 3000]);
        expect((await s.samples('gw-1', 2000)).map((x) => x.ts)).toEqual([2000, 3000]);
        expect(await s.latest('gw-1')).toEqual({ ts: 3000, metrics: { load1: 0.3 } });
        expect(await s.latest('gw-9')).toBeUndefined();
        const series = await healthSeries(s, 'gw-1', 0, ['load1', 'reconnects']);
        expect(series).toEqual({
          device: 'gw-1',
          t: [1000, 2000, 3000],
          metrics: { load1: [0.1, 0.25, 0.3], reconnects: [2, 2, 2] },
        });
        expect(await s.prune(2000)).toBe(2);
        expect((await s.samples('gw-1', 0)).map((x) => x.ts)).toEqual([2000, 3000]);
      } finally {
        await f.close();
      }
    });

    it('keeps one failure label per device and the latest risk scores', async () => {
      const f = await make();
      try {
        const s = f.db.health;
        await s.setLabel({ device: 'gw-2', ts: 20, mode: 'flash-wear', status: 'failed', actor: 'ops', note: null });
        await s.setLabel({
          device: 'gw-1',
          ts: 10,
          mode: 'thermal',
          status: 'candidate',
          actor: 'controller',
          note: 'silent',
        });
        await s.setLabel({ device: 'gw-1', ts: 30, mode: 'thermal', status: 'replaced', actor: 'ops', note: null });
        expect(await s.labels()).toEqual([
          { device: 'gw-2', ts: 20, mode: 'flash-wear', status: 'failed', actor: 'ops', note: null },
          { device: 'gw-1', ts: 30, mode: 'thermal', status: 'replaced', actor: 'ops', note: null },
        ]);
        expect(await s.removeLabel('gw-2')).toBe(true);
        expect(await s.removeLabel('gw-2')).toBe(false);
        const score = {
          device: 'gw-1',
          at: 5,
          risk: 0.875,
          mode: 'thermal',
          signals: [{ metric: 'cpuTempC', contribution: 0.5 }],
          alerted: true,
        };
        await s.putScore(score);
        await s.putScore({ ...score, device: 'gw-2', mode: null, alerted: false, risk: 0.125 });
        await s.putScore({ ...score, risk: 0.9 });
        expect(await s.model()).toBeUndefined();
        await s.putModel('{"kind":"risk","a":1}', 10);
        await s.putModel('{"kind":"risk","a":2}', 20);
        expect(await s.model()).toEqual({ json: '{"kind":"risk","a":2}', installedAt: 20 });
        expect(await s.scores()).toEqual(
          new Map([
            ['gw-1', { ...score, risk: 0.9 }],
            ['gw-2', { ...score, device: 'gw-2', mode: null, alerted: false, risk: 0.125 }],
          ]),
        );
      } finally {
        await f.close();
      }
    });
  });
}

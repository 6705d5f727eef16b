import { describe, expect, it } from 'vitest';
import { copyDatabase, TABLES, tableSummary } from './copy.js';
import type { ControllerDatabase } from './database.js';
import { pgFixture, sqliteFixture } from './database-fixtures.js';
import { havePostgres } from './pg/test-database.js';

const postgres = await havePostgres();

async function seed(db: ControllerDatabase) {
  await db.fleet.addDevice({
    id: 'gw-1',
    tags: { a: 'b' },
    hardware: 'rpi4',
    createdAt: 1,
    tokenHash: 'h',
    mosquittoHash: 'm',
  });
  await db.fleet.addAudit({ ts: 2, actor: 'ops', action: 'x', target: 'gw-1', outcome: 'ok', details: 'tab\there' });
  await db.fleet.addApiToken({ id: 't1', name: 'n', role: 'admin', hash: 'h', createdAt: 3, revokedAt: null });
  await db.telemetry.insert(
    Array.from({ length: 120 }, (_, i) => ({
      device: 'gw-1',
      seq: i + 1,
      stream: 's',
      ts: i,
      kind: 'reading',
      record: `{"v":${i}}`,
    })),
    4,
  );
  await db.rollouts.addEvent({ ts: 5, rollout: '', kind: 'device.at-risk', details: { device: 'gw-1' } });
  await db.health.add('gw-1', 6, { load1: 0.5 });
  await db.health.putScore({ device: 'gw-1', at: 7, risk: 0.5, mode: null, signals: [], alerted: true });
}

describe.skipIf(!postgres)('db copy (SQLite → PostgreSQL → SQLite)', () => {
  it('carries every table over with the same rows, ids and cursors, and the counters go on after them', async () => {
    const a = await sqliteFixture();
    const b = await pgFixture();
    const c = await sqliteFixture();
    try {
      await seed(a.db);
      const ra = await copyDatabase(a.db, b.db);
      const rc = await copyDatabase(b.db, c.db);
      expect(rc.tables).toEqual(ra.tables);
      expect(ra.tables.find((t) => t.table === 'telemetry')!.rows).toBe(120);
      for (const t of TABLES) expect(await tableSummary(c.db, t)).toEqual(await tableSummary(a.db, t));
      // ids and cursors go on after the copied ones on both kinds
      for (const db of [b.db, c.db]) {
        const [next] = await db.telemetry.insert(
          [{ device: 'gw-1', seq: 500, stream: 's', ts: 1, kind: 'reading', record: '{}' }],
          9,
        );
        expect(next!.cursor).toBe(121);
        expect((await db.rollouts.addEvent({ ts: 9, rollout: '', kind: 'device.at-risk', details: {} })).id).toBe(2);
        await db.fleet.addAudit({ ts: 9, actor: 'a', action: 'b', target: 'c', outcome: 'ok', details: '' });
        expect((await db.fleet.audit(1))[0]!.id).toBe(2);
      }
      await expect(copyDatabase(a.db, b.db)).rejects.toMatchObject({ code: 'E_DATABASE_NOT_EMPTY' });
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  });
});

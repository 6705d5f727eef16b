import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migratePg, pgMigrations } from './pg/migrations.js';
import { PgTelemetryLog } from './pg/telemetry-log.js';
import { createTestDatabase, havePostgres } from './pg/test-database.js';
import { SqliteDatabase } from './sqlite-database.js';
import { telemetryLogContract } from './telemetry-log.contract.js';

telemetryLogContract('sqlite file', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'fw-tlog-')), 'fleet.db');
  const opened: SqliteDatabase[] = [];
  // each writer a database of its own on the one file: as separate processes would be
  const one = () => {
    const db = new SqliteDatabase(file);
    opened.push(db);
    return db.telemetry;
  };
  return {
    log: one(),
    writers: async (n) => Array.from({ length: n }, one),
    close: async () => {
      for (const db of opened) await db.close();
    },
  };
});

const postgres = await havePostgres();

describe.skipIf(!postgres)('on PostgreSQL (a database of the test’s own on 127.0.0.1:5432)', () => {
  telemetryLogContract('postgresql', async () => {
    const db = await createTestDatabase();
    const pools: pg.Pool[] = [];
    const pool = () => {
      const p = new pg.Pool({ connectionString: db.url, max: 4 });
      p.on('error', () => {}); // an idle connection ended by the database being dropped
      pools.push(p);
      return p;
    };
    await migratePg(pool());
    return {
      log: new PgTelemetryLog(pool()),
      // each writer its own pool: as separate controller processes would be
      writers: async (n) => Array.from({ length: n }, () => new PgTelemetryLog(pool())),
      close: async () => {
        for (const p of pools) await p.end().catch(() => {});
        await db.drop();
      },
    };
  });

  it('migrates an empty database and every earlier version, and refuses a newer schema without touching it', async () => {
    const db = await createTestDatabase();
    const pool = new pg.Pool({ connectionString: db.url });
    try {
      for (let v = 0; v <= pgMigrations.length; v++) expect(await migratePg(pool, v)).toBe(v);
      expect(await migratePg(pool)).toBe(pgMigrations.length);
      // one version at a time ends on the same schema as all at once
      const fresh = await createTestDatabase();
      const freshPool = new pg.Pool({ connectionString: fresh.url });
      await migratePg(freshPool);
      const schemaOf = async (p: pg.Pool) =>
        (
          await p.query(
            `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
             WHERE table_schema = 'public' ORDER BY table_name, column_name`,
          )
        ).rows.concat(
          (await p.query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"))
            .rows,
        );
      expect(await schemaOf(pool)).toEqual(await schemaOf(freshPool));
      expect((await schemaOf(freshPool)).length).toBeGreaterThan(100);
      await freshPool.end();
      await fresh.drop();
      await pool.query('UPDATE fleetwave_schema SET version = $1', [pgMigrations.length + 1]);
      await expect(migratePg(pool)).rejects.toThrow(/newer than this controller's .*run the newer controller/);
      expect((await pool.query('SELECT version FROM fleetwave_schema')).rows[0].version).toBe(pgMigrations.length + 1);
      // two controllers migrating at once: one does it, the other finds it done
      const db2 = await createTestDatabase();
      const a = new pg.Pool({ connectionString: db2.url });
      const b = new pg.Pool({ connectionString: db2.url });
      expect(await Promise.all([migratePg(a), migratePg(b)])).toEqual([pgMigrations.length, pgMigrations.length]);
      await Promise.all([a.end(), b.end()]);
      await db2.drop();
    } finally {
      await pool.end();
      await db.drop();
    }
  });
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'vitest';
import type { ControllerDatabase } from './database.js';
import { PgDatabase } from './pg/database.js';
import { createTestDatabase, havePostgres } from './pg/test-database.js';
import { SqliteDatabase } from './sqlite-database.js';

/** A database a contract test opens, and what closes (and for PostgreSQL drops) it. */
export interface DatabaseFixture {
  db: ControllerDatabase;
  close(): Promise<void>;
}

export async function sqliteFixture(): Promise<DatabaseFixture> {
  const db = new SqliteDatabase(join(mkdtempSync(join(tmpdir(), 'fw-db-')), 'fleet.db'));
  return { db, close: () => db.close() };
}

/** A PostgreSQL database of the test's own on 127.0.0.1:5432, created now and dropped by close(). */
export async function pgFixture(): Promise<DatabaseFixture> {
  const t = await createTestDatabase();
  const db = await PgDatabase.open({ url: t.url, max: 4 });
  return {
    db,
    close: async () => {
      await db.close().catch(() => {});
      await t.drop();
    },
  };
}

const postgres = await havePostgres();

/**
 * Runs a contract suite on every database: the SQLite file and PostgreSQL (which says so and skips only itself where
 * none answers; under FLEETWAVE_REQUIRE_SERVICES=1 that is a failure, in havePostgres).
 */
export function onEveryDatabase(suite: (name: string, make: () => Promise<DatabaseFixture>) => void): void {
  suite('sqlite', sqliteFixture);
  describe.skipIf(!postgres)('on PostgreSQL (a database of the test’s own on 127.0.0.1:5432)', () => {
    suite('postgresql', pgFixture);
  });
}

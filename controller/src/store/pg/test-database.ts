import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The PostgreSQL tests connect to (trust auth on the CI machine); FLEETWAVE_TEST_PG_URL overrides it. */
export const TEST_PG_ADMIN_URL = process.env.FLEETWAVE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Whether a PostgreSQL answers for the tests. Where none does the test says so and skips only itself; under
 * FLEETWAVE_REQUIRE_SERVICES=1 (CI) that is a failure.
 */
export async function havePostgres(): Promise<boolean> {
  const c = new pg.Client({ connectionString: TEST_PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch (err) {
    const why = `no PostgreSQL at ${TEST_PG_ADMIN_URL} (${(err as Error).message})`;
    if (process.env.FLEETWAVE_REQUIRE_SERVICES === '1') throw new Error(`${why}; FLEETWAVE_REQUIRE_SERVICES=1`);
    console.warn(`${why}: skipping the PostgreSQL tests`);
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/** A database of the test's own (created now, dropped by the returned function), and its URL. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `fw_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const a = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

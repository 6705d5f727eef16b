import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL databases the end-to-end tests make for their controllers (helpers.ts `testDatabaseFor`: with
 * FLEETWAVE_TEST_DATABASE=postgres for every controller, else for the tests that are about PostgreSQL) are named after
 * this run, and every database of the run is dropped when the run ends.
 */
export function setup() {
  process.env.FLEETWAVE_E2E_RUN ??= randomBytes(4).toString('hex');
}

export async function teardown() {
  const run = process.env.FLEETWAVE_E2E_RUN;
  if (!run) return;
  const admin = new pg.Client({
    connectionString: process.env.FLEETWAVE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    connectionTimeoutMillis: 3000,
  });
  try {
    await admin.connect();
  } catch {
    return; // no PostgreSQL: no database was made
  }
  try {
    const r = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [
      `fw_e2e_${run}_%`,
    ]);
    for (const { datname } of r.rows) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

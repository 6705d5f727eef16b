import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * With FLEETWAVE_TEST_DATABASE=postgres the end-to-end tests run their controllers on PostgreSQL: each controller data
 * directory gets a database of its own (helpers.ts `testDatabaseFor`), named after this run, and every database of the
 * run is dropped when the run ends.
 */
export function setup() {
  if (process.env.FLEETWAVE_TEST_DATABASE !== 'postgres') return;
  process.env.FLEETWAVE_E2E_RUN ??= randomBytes(4).toString('hex');
}

export async function teardown() {
  const run = process.env.FLEETWAVE_E2E_RUN;
  if (process.env.FLEETWAVE_TEST_DATABASE !== 'postgres' || !run) return;
  const admin = new pg.Client({
    connectionString: process.env.FLEETWAVE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  });
  await admin.connect();
  try {
    const r = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [
      `fw_e2e_${run}_%`,
    ]);
    for (const { datname } of r.rows) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

// The databases the controller benchmarks compare: the SQLite file of the embedded default and a PostgreSQL database of
// the benchmark's own on 127.0.0.1:5432 (created and dropped here), and the CPU the database's server processes use.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { openDatabase } from '@fleetwave/controller';
import pg from 'pg';

const ADMIN = process.env.FLEETWAVE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh PostgreSQL database, or undefined (said) when none answers. */
export async function benchDatabase() {
  const admin = new pg.Client({ connectionString: ADMIN, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (err) {
    console.log(`  (no PostgreSQL at ${ADMIN}: ${err.message}; the PostgreSQL figures are missing)`);
    return undefined;
  }
  const name = `fw_bench_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const a = new pg.Client({ connectionString: ADMIN });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Devices straight into the registry through the controller's own ports (registration is not what is measured). */
export async function seedDevices(url, dataDir, n, device) {
  const db = await openDatabase({ url, dataDir });
  try {
    await db.transaction(async () => {
      for (let i = 0; i < n; i++) await db.fleet.addDevice(device(i));
    });
  } finally {
    await db.close();
  }
}

/** CPU seconds used so far by the PostgreSQL server processes of a database (its backends) and the server's own. */
export async function pgCpuSeconds(name) {
  const c = new pg.Client({ connectionString: ADMIN });
  await c.connect();
  try {
    const r = await c.query(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
      [name],
    );
    let ticks = 0;
    for (const { pid } of r.rows) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        ticks += Number(stat[11]) + Number(stat[12]);
      } catch {
        // ended meanwhile
      }
    }
    return ticks / 100;
  } finally {
    await c.end();
  }
}

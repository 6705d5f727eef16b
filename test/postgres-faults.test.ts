import { join } from 'node:path';
import { havePostgres } from '@fleetwave/controller';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  api,
  cleanupAfterEach,
  enrolDevice,
  freePort,
  sensor,
  spawnAgent,
  spawnController,
  testDatabaseFor,
  tmp,
  waitForAsync,
} from './helpers.js';

const cleanups = cleanupAfterEach();
const postgres = await havePostgres();

/** Ends every connection to the database but this one (what a PostgreSQL restart or a failover does to them). */
async function terminateConnections(url: string): Promise<number> {
  const name = new URL(url).pathname.slice(1);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    return r.rowCount ?? 0;
  } finally {
    await c.end();
  }
}

describe.skipIf(!postgres)('the controller on PostgreSQL, its connections killed (pg_terminate_backend)', () => {
  it('reconnects during ingest and loses no acknowledged reading', async () => {
    const dir = tmp('pg-faults');
    const ctlDir = join(dir, 'ctl');
    const url = await testDatabaseFor(ctlDir);
    const mqttPort = await freePort();
    const ctl = await spawnController(ctlDir, ['--mqtt-port', String(mqttPort), '--http-port', '0', '--database', url]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const { config } = await enrolDevice(ctl, 'gw-pg', dir, `mqtt://127.0.0.1:${mqttPort}`, {});
    const agent = await spawnAgent(['--config', config, '--max-ack-delay', '5ms']);
    cleanups.push(() => agent.kill('SIGKILL'));
    const s = await sensor(agent.ingestUrl, 'sensor-1');
    let killed = 0;
    for (let k = 0; k < 300; k++) {
      await s.send('sensors/pg/v', k);
      // every 60 readings, every connection the controller has to the database is ended under it
      if (k % 60 === 30) killed += await terminateConnections(url);
    }
    expect(killed).toBeGreaterThan(0);
    const stored = async () => {
      const values = new Set<number>();
      let after = 0;
      for (;;) {
        const r = await api(ctl.url, ctl.adminToken, 'GET', `/api/telemetry?after=${after}&limit=1000&device=gw-pg`);
        if (r.status !== 200) return values;
        const recs = r.body.records as { cursor: number; record: { stream: string; value?: number } }[];
        for (const x of recs) if (x.record.stream === 'pg/v') values.add(x.record.value!);
        if (recs.length < 1000) return values;
        after = recs.at(-1)!.cursor;
      }
    };
    // the agent keeps what the controller did not acknowledge and sends it again: every reading arrives
    await waitForAsync('all 300 readings stored', async () => (await stored()).size === 300, 90_000);
    const r = await api(ctl.url, ctl.adminToken, 'GET', '/api/telemetry?after=0&limit=10000&device=gw-pg');
    const seqs = (r.body.records as { record: { seq: number } }[]).map((x) => x.record.seq);
    expect(new Set(seqs).size).toBe(seqs.length); // stored once each
    // the controller is still up and answers
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/devices')).status).toBe(200);
  }, 180_000);
});

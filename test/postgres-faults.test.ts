import { join } from 'node:path';
import { havePostgres } from '@fleetwave/controller';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  api,
  cleanupAfterEach,
  enrolDevice,
  freePort,
  jobsDevice,
  sensor,
  spawnAgent,
  spawnController,
  testDatabaseFor,
  tmp,
  waitForAsync,
} from './helpers.js';
import { appArchive, filesRelease, publishRelease, trustedKey } from './release-helpers.js';

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

  it('takes a rollout to the same end while its connections are killed again and again', async () => {
    const dir = tmp('pg-faults-rollout');
    const ctlDir = join(dir, 'ctl');
    const url = await testDatabaseFor(ctlDir);
    const key = trustedKey(ctlDir);
    const mqttPort = await freePort();
    const ctl = await spawnController(ctlDir, ['--mqtt-port', String(mqttPort), '--http-port', '0', '--database', url]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const archive = await appArchive(dir, '1.0.0', { 'app.txt': 'v1' });
    await publishRelease(ctl.url, ctl.adminToken, filesRelease(key, '1.0.0', archive), archive);
    // protocol-level devices (no agent): every 300 ms they ask start-next and report what they got SUCCEEDED; a request
    // lost or refused while the database is away is simply asked again, as an agent does
    const devices = 12;
    for (let i = 0; i < devices; i++) {
      const id = `gw-${i}`;
      const r = await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id, hardware: 'rpi4' });
      await jobsDevice(`mqtt://127.0.0.1:${mqttPort}`, id, cleanups, { username: id, password: r.body.token });
    }
    const plan = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: pg-faults
release: { name: gateway-app, version: 1.0.0 }
waves: [{ count: 2 }, { percent: 50 }, { percent: 100 }]
`;
    const applied = await api(ctl.url, ctl.adminToken, 'POST', '/api/rollouts', { yaml: plan });
    expect(applied.status, JSON.stringify(applied.body)).toBe(201);
    let killed = 0;
    const killer = setInterval(() => {
      terminateConnections(url).then(
        (n) => (killed += n),
        () => {},
      );
    }, 250);
    cleanups.push(async () => clearInterval(killer));
    let status: { status: string; waves: { status: string }[] } | undefined;
    await waitForAsync(
      'the rollout to complete',
      async () => {
        const r = await api(ctl.url, ctl.adminToken, 'GET', `/api/rollouts/${applied.body.id}`).catch(() => undefined);
        if (r?.status === 200) status = r.body;
        return status?.status === 'completed';
      },
      120_000,
    );
    clearInterval(killer);
    expect(killed).toBeGreaterThan(0);
    expect(status!.waves.map((w) => w.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // the outcome of a rollout nothing happened to: one execution per device, each SUCCEEDED
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const rows = (await c.query('SELECT thing, execution_number, status FROM job_executions ORDER BY thing')).rows;
      expect(rows).toHaveLength(devices);
      expect(rows.every((r) => Number(r.execution_number) === 1 && r.status === 'SUCCEEDED')).toBe(true);
    } finally {
      await c.end();
    }
  }, 180_000);
});

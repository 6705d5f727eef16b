// Controller replicas (issue "several replicas"): ingest through Mosquitto with 1, 2 and 3 replicas on one PostgreSQL,
// and failover: time from SIGKILL of the leader to the next wave action of the replica that takes over.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signManifest } from '@fleetwave/shared';
import mqtt from 'mqtt';
import { freePort, proc, startController, telemetryLoad } from './controller.mjs';
import { benchDatabase, pgCpuSeconds } from './databases.mjs';
import { startNatsCluster } from './nats.mjs';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const SECONDS = Number(process.env.BENCH_CONTROLLER_SECONDS ?? 10);
const TRIALS = Number(process.env.BENCH_FAILOVER_TRIALS ?? 10);
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function mosquitto(dir) {
  const port = await freePort();
  writeFileSync(join(dir, 'm.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n`);
  const p = spawn('mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' });
  await sleep(500);
  return { url: `mqtt://127.0.0.1:${port}`, pid: p.pid, stop: () => p.kill('SIGTERM') };
}

/**
 * A replica in `<dir>/<id>`. The first replica on the database writes the admin token file; the others get a copy of
 * it (and of the release key) from `firstDir`.
 */
async function replica(dir, id, url, brokerArgs, firstDir) {
  const d = join(dir, id);
  mkdirSync(join(d, 'trusted-keys'), { recursive: true });
  if (firstDir && firstDir !== d) {
    copyFileSync(join(firstDir, 'admin-token'), join(d, 'admin-token'));
    try {
      copyFileSync(join(firstDir, 'trusted-keys', 'bench.pem'), join(d, 'trusted-keys', 'bench.pem'));
    } catch {
      // no release key (the ingest runs)
    }
  }
  const ctl = await startController(d, [
    ...(typeof brokerArgs === 'string' ? ['--external-broker', brokerArgs, '--broker-connections', '2'] : brokerArgs),
    '--database',
    url,
    '--replica-id',
    id,
  ]);
  return { ...ctl, id, admin: readFileSync(join(d, 'admin-token'), 'utf8').trim() };
}

async function storedTotal(replicas) {
  let n = 0;
  for (const r of replicas) {
    const text = await (await fetch(`http://127.0.0.1:${r.http}/metrics`)).text();
    n += Number(/fleetwave_telemetry_stored_total (\d+)/.exec(text)[1]);
  }
  return n;
}

/**
 * `broker`: `{ name, prefix (of the device ids), args(k): the k-th replica's broker flags, deviceUrl(i), pids }` — Mosquitto, or a NATS cluster
 * with the devices spread over its nodes.
 */
async function ingest(n, dir, db, broker) {
  const replicas = [];
  // ids of this run's own (a broker session of an earlier run's replica keeps what was queued for it)
  for (let k = 1; k <= n; k++) replicas.push(await replica(dir, `n${n}r${k}`, db.url, broker.args(k - 1), db.firstDir));
  db.firstDir ??= join(dir, `n${n}r1`);
  const clients = [];
  for (let i = 0; i < DEVICES; i += 100) {
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, DEVICES - i) }, (_, k) =>
          mqtt.connectAsync(broker.deviceUrl(i + k), {
            clientId: `${broker.prefix}-${n}-${i + k}`,
            reconnectPeriod: 0,
            keepalive: 120,
          }),
        ),
      )),
    );
  }
  // devices of this broker's runs only: the same ids would send readings the database holds already (deduplicated)
  const load = telemetryLoad(clients, (i) => `${broker.prefix}-${n}-${i}`);
  await sleep(2000);
  const s0 = await storedTotal(replicas);
  const c0 = replicas.map((r) => proc(r.child.pid).cpuS);
  const b0 = broker.pids.map((p) => proc(p).cpuS);
  const d0 = await pgCpuSeconds(db.name);
  const self0 = process.cpuUsage();
  const w0 = performance.now();
  await sleep(SECONDS * 1000);
  const s1 = await storedTotal(replicas);
  const wall = (performance.now() - w0) / 1000;
  const c1 = replicas.map((r) => proc(r.child.pid).cpuS);
  const b1 = broker.pids.map((p) => proc(p).cpuS);
  const d1 = await pgCpuSeconds(db.name);
  const self = process.cpuUsage(self0);
  await load.stop();
  await Promise.all(clients.map((c) => c.endAsync(true)));
  for (const r of replicas) r.child.kill('SIGTERM');
  await Promise.all(replicas.map((r) => new Promise((res) => r.child.once('exit', res))));
  const pct = (a, b) => `${(((b - a) / wall) * 100).toFixed(0)}%`;
  const rate = (s1 - s0) / wall;
  console.log(
    `${n} replica${n > 1 ? 's' : ''}: ${fmt(rate)} readings/s stored; CPU (% of one core): replicas ${c0.map((c, k) => pct(c, c1[k])).join(' + ')}, ` +
      `${broker.name} ${b0.map((b, k) => pct(b, b1[k])).join(' + ')}, PostgreSQL ${pct(d0, d1)}, load generator ${(((self.user + self.system) / 1e6 / wall) * 100).toFixed(0)}%`,
  );
  return rate;
}

/** A device of the failover run: takes every job it is offered (notify-next, or its own start-next) and reports it SUCCEEDED. */
async function device(url, id) {
  const c = await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 200 });
  const base = `fleetwave/jobs/${id}/jobs`;
  c.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString());
    if (body.execution && (topic.endsWith('/notify-next') || topic.endsWith('/start-next/accepted'))) {
      if (topic.endsWith('/notify-next')) c.publish(`${base}/start-next`, '{}', { qos: 1 });
      else c.publish(`${base}/${body.execution.jobId}/update`, '{"status":"SUCCEEDED"}', { qos: 1 });
    }
  });
  await c.subscribeAsync([`${base}/notify-next`, `${base}/start-next/accepted`], { qos: 1 });
  // and asks every 200 ms besides (a request lost while a replica dies is asked again)
  const poll = setInterval(() => c.publish(`${base}/start-next`, '{}', { qos: 1 }), 200);
  c.on('end', () => clearInterval(poll));
  c.publish(`${base}/start-next`, '{}', { qos: 1 });
  return c;
}

async function failover(dir, db, brokerUrl) {
  const key = generateKeyPairSync('ed25519');
  mkdirSync(join(dir, 'r1', 'trusted-keys'), { recursive: true });
  writeFileSync(join(dir, 'r1', 'trusted-keys', 'bench.pem'), key.publicKey.export({ type: 'spki', format: 'pem' }));
  const live = {};
  // the release key in the first replica's trusted keys: the others copy it with the admin token
  const firstDir = db.firstDir;
  copyFileSync(join(dir, 'r1', 'trusted-keys', 'bench.pem'), join(firstDir, 'trusted-keys', 'bench.pem'));
  live.r1 = await replica(dir, 'r1', db.url, brokerUrl, firstDir);
  live.r2 = await replica(dir, 'r2', db.url, brokerUrl, firstDir);
  const first = live.r1;
  const call = async (r, method, path, body) => {
    const res = await fetch(`http://127.0.0.1:${r.http}${path}`, {
      method,
      headers: { authorization: `Bearer ${first.admin}`, ...(body && { 'content-type': 'application/json' }) },
      body: body && JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const waves = TRIALS + 1;
  for (let i = 0; i < waves; i++) await call(first, 'POST', '/api/devices', { id: `fo-${i}`, hardware: 'rpi4' });
  const devices = await Promise.all(Array.from({ length: waves }, (_, i) => device(brokerUrl, `fo-${i}`)));
  const manifest = signManifest(
    {
      schema: 1,
      name: 'bench-app',
      version: '2.0.0',
      hardware: ['rpi4'],
      artifacts: [{ name: 'a.tar.gz', url: './a.tar.gz', size: 1, sha256: 'a'.repeat(64) }],
      install: { type: 'files', target: 'bench-app' },
      createdAt: new Date().toISOString(),
    },
    key.privateKey,
  );
  await call(first, 'POST', '/api/releases', manifest);
  const plan = `apiVersion: fleetwave/v1\nkind: RolloutPlan\nname: failover\nrelease: { name: bench-app, version: 2.0.0 }\nwaves: [${Array.from(
    { length: waves },
    (_, i) => `{ count: 1${i < waves - 1 ? ', bake: 2s' : ''} }`,
  ).join(', ')}]\n`;
  const { id } = await call(first, 'POST', '/api/rollouts', { yaml: plan });
  const times = [];
  let after = 0;
  const next = async (r, kind, wave) => {
    for (;;) {
      const { events } = await call(r, 'GET', `/api/rollouts/events?rollout=${id}&after=${after}`).catch(() => ({
        events: [],
      }));
      for (const e of events) {
        after = e.id;
        if (e.kind === kind && e.details.wave === wave) return e;
      }
      await sleep(20);
    }
  };
  for (let k = 0; k < TRIALS; k++) {
    const any = Object.values(live)[0];
    process.stderr.write(`failover trial ${k + 1}/${TRIALS}: waiting for wave ${k + 1} to bake\n`);
    const baking = await next(any, 'wave.baking', k);
    const cluster = await call(any, 'GET', '/api/cluster');
    const leader = live[cluster.leader.replica];
    const survivor = Object.values(live).find((r) => r !== leader);
    // kill the leader just before the bake ends: the next wave is then the new leader's first action
    await sleep(Math.max(0, baking.details.until - Date.now() - 100));
    const t0 = Date.now();
    leader.child.kill('SIGKILL');
    await new Promise((r) => leader.child.once('exit', r));
    process.stderr.write(`  killed ${leader.id}; waiting for wave ${k + 2} to start on ${survivor.id}\n`);
    const started = await next(survivor, 'wave.started', k + 1);
    times.push(started.ts - t0);
    live[leader.id] = await replica(dir, leader.id, db.url, brokerUrl, firstDir);
  }
  await Promise.all(devices.map((c) => c.endAsync(true)));
  for (const r of Object.values(live)) r.child.kill('SIGTERM');
  await Promise.all(Object.values(live).map((r) => new Promise((res) => r.child.once('exit', res))));
  const sorted = [...times].sort((a, b) => a - b);
  const median = (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
  console.log(
    `failover (2 replicas, lease 3 s, the default): SIGKILL of the leader to the next wave started by the other, median of ${TRIALS}: ${(median / 1000).toFixed(2)} s (aim <= 5 s); ` +
      `min ${(sorted[0] / 1000).toFixed(2)} s, max ${(sorted.at(-1) / 1000).toFixed(2)} s`,
  );
}

export async function benchReplicas() {
  console.log(
    `\n# controller replicas on one PostgreSQL, through Mosquitto: ingest of ${fmt(DEVICES)} devices (${SECONDS} s each), and failover; this machine has ${(await import('node:os')).cpus().length} cores for everything`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-replicas-'));
  const db = await benchDatabase();
  if (!db) return;
  const broker = await mosquitto(dir);
  let nats;
  try {
    const mosq = {
      name: 'Mosquitto',
      prefix: 'gw',
      args: () => broker.url,
      deviceUrl: () => broker.url,
      pids: [broker.pid],
    };
    const rates = [];
    for (const n of [1, 2, 3]) {
      const d = join(dir, `ingest-${n}`);
      mkdirSync(d, { recursive: true });
      rates.push(await ingest(n, d, db, mosq));
    }
    console.log(`  3 replicas / 1 replica: ${(rates[2] / rates[0]).toFixed(2)} (aim >= 1.8 where the cores allow it)`);
    // the same through a 3-node NATS cluster (JetStream R3 telemetry stream, one durable consumer the replicas share)
    nats = await startNatsCluster(join(dir, 'nats'));
    const rotated = (urls, k) => urls.map((_, j) => urls[(k + j) % urls.length]).join(',');
    const viaNats = {
      name: 'NATS nodes',
      prefix: 'nats-gw',
      args: (k) => ['--external-broker', rotated(nats.mqttUrls, k), '--nats', rotated(nats.natsUrls, k)],
      deviceUrl: (i) => nats.mqttUrls[i % nats.mqttUrls.length],
      pids: nats.pids,
    };
    console.log('  through a 3-node NATS cluster (MQTT on every node, devices spread over the three):');
    const natsRates = [];
    for (const n of [1, 2, 3]) {
      const d = join(dir, `nats-ingest-${n}`);
      mkdirSync(d, { recursive: true });
      natsRates.push(await ingest(n, d, db, viaNats));
    }
    console.log(
      `  NATS: 3 replicas / 1 replica: ${(natsRates[2] / natsRates[0]).toFixed(2)}; NATS / Mosquitto with 1 replica: ${(natsRates[0] / rates[0]).toFixed(2)}`,
    );
    nats.stop();
    nats = undefined;
    const f = join(dir, 'failover');
    mkdirSync(f, { recursive: true });
    await failover(f, db, broker.url);
  } finally {
    nats?.stop();
    broker.stop();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

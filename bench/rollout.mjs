// Rollout benchmark (issue "Controller: rollout waves"): 4 waves (1%, 10%, 50%, 100%), no bake, to N simulated
// protocol-level devices over real MQTT connections, on the embedded broker and through Mosquitto.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSecret, mosquittoHash } from '@fleetwave/controller';
import { signManifest } from '@fleetwave/shared';
import mqtt from 'mqtt';
import { freePort, proc, startController as startCtl } from './controller.mjs';
import { benchDatabase, pgCpuSeconds, seedDevices } from './databases.mjs';

const DEVICES = Number(process.env.BENCH_ROLLOUT_DEVICES ?? 10_000);
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const JOBS = 'fleetwave/jobs';

const api = async (ctl, method, path, body) => {
  const res = await fetch(`http://127.0.0.1:${ctl.http}${path}`, {
    method,
    headers: { authorization: `Bearer ${ctl.admin}`, ...(body && { 'content-type': 'application/json' }) },
    body: body && JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
};

/** A device that speaks only the jobs protocol: on notify-next it starts the job, and reports it SUCCEEDED. */
async function device(url, id, credentials, counts) {
  const c = await mqtt.connectAsync(url, { clientId: id, ...credentials, reconnectPeriod: 0, keepalive: 300 });
  const base = `${JOBS}/${id}/jobs`;
  c.on('message', (topic, payload) => {
    counts.received++;
    const body = JSON.parse(payload.toString());
    if (topic === `${base}/notify-next` && body.execution) {
      counts.sent++;
      c.publish(`${base}/start-next`, '{}', { qos: 1 });
    } else if (topic === `${base}/start-next/accepted` && body.execution) {
      counts.sent++;
      c.publish(
        `${base}/${body.execution.jobId}/update`,
        JSON.stringify({
          status: 'SUCCEEDED',
          expectedVersion: body.execution.versionNumber,
          statusDetails: { stage: 'succeeded' },
        }),
        { qos: 1 },
      );
    }
  });
  await c.subscribeAsync(
    [
      `${base}/notify`,
      `${base}/notify-next`,
      `${base}/start-next/accepted`,
      `${base}/+/update/accepted`,
      `${base}/+/update/rejected`,
    ],
    { qos: 1 },
  );
  // what a real agent does on connecting: ask for pending work (nothing yet)
  counts.sent++;
  c.publish(`${base}/start-next`, '{}', { qos: 1 });
  return c;
}

async function startController(dataDir, args) {
  const ctl = await startCtl(dataDir, args);
  return { ...ctl, admin: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() };
}

async function run(name, dataDir, controllerArgs, brokerUrl, credentials, pgName) {
  const key = generateKeyPairSync('ed25519');
  mkdirSync(join(dataDir, 'trusted-keys'), { recursive: true });
  writeFileSync(join(dataDir, 'trusted-keys', 'bench.pem'), key.publicKey.export({ type: 'spki', format: 'pem' }));
  const ctl = await startController(dataDir, controllerArgs);
  const url = brokerUrl ?? `mqtt://127.0.0.1:${ctl.mqtt}`;
  const manifest = signManifest(
    {
      schema: 1,
      name: 'bench-app',
      version: '2.0.0',
      hardware: ['rpi3', 'rpi4'],
      artifacts: [{ name: 'app.tar.gz', url: './app.tar.gz', size: 1, sha256: 'a'.repeat(64) }],
      install: { type: 'files', target: 'bench-app' },
      createdAt: new Date().toISOString(),
    },
    key.privateKey,
  );
  await api(ctl, 'POST', '/api/releases', manifest);
  const counts = { sent: 0, received: 0 };
  const t0 = performance.now();
  const clients = [];
  for (let i = 0; i < DEVICES; i += 100) {
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, DEVICES - i) }, (_, k) =>
          device(url, `gw-${i + k}`, credentials(i + k), counts),
        ),
      )),
    );
  }
  const connectS = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  counts.sent = 0;
  counts.received = 0;
  const p0 = proc(ctl.child.pid);
  const d0 = pgName ? await pgCpuSeconds(pgName) : 0;
  const w0 = performance.now();
  const plan = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: bench
release: { name: bench-app, version: 2.0.0 }
waves: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }]
onFailure: pause
`;
  const applied = await api(ctl, 'POST', '/api/rollouts', { yaml: plan });
  let status;
  let peakRss = 0;
  const waveDone = [];
  for (;;) {
    status = await api(ctl, 'GET', `/api/rollouts/${applied.id}`);
    peakRss = Math.max(peakRss, proc(ctl.child.pid).rss);
    status.waves.forEach((w, i) => {
      if (w.status === 'succeeded' && waveDone[i] === undefined) waveDone[i] = (performance.now() - w0) / 1000;
    });
    if (status.status !== 'running') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const wall = (performance.now() - w0) / 1000;
  const p1 = proc(ctl.child.pid);
  const d1 = pgName ? await pgCpuSeconds(pgName) : 0;
  const succeeded = status.waves.reduce((n, w) => n + (w.counts.SUCCEEDED ?? 0), 0);
  console.log(
    `${name}: ${status.status} — ${fmt(succeeded)} of ${fmt(DEVICES)} devices SUCCEEDED in ${wall.toFixed(1)} s from apply ` +
      `(waves done at ${waveDone.map((t) => `${t.toFixed(1)} s`).join(', ')}); AWS IoT Jobs' documented ceiling of 1,000 devices notified per minute: ${((DEVICES / 1000) * 60).toFixed(0)} s`,
  );
  console.log(
    `  ${(counts.sent / DEVICES).toFixed(1)} messages sent and ${(counts.received / DEVICES).toFixed(1)} received per device; ` +
      `controller ${(((p1.cpuS - p0.cpuS) / wall) * 100).toFixed(0)}% of one core, RSS ${p0.rss.toFixed(0)} MB before, ${peakRss.toFixed(0)} MB peak; ` +
      `${fmt(DEVICES)} devices connected in ${connectS.toFixed(1)} s (not in the figure)` +
      (pgName ? `; PostgreSQL server processes ${(((d1 - d0) / wall) * 100).toFixed(0)}% of one core` : ''),
  );
  await Promise.all(clients.map((c) => c.endAsync(true)));
  ctl.child.kill('SIGTERM');
  await new Promise((r) => ctl.child.once('exit', r));
}

export async function benchRollout() {
  console.log(
    `\n# rollout: 4 waves (1%, 10%, 50%, 100%), no bake, ${fmt(DEVICES)} protocol-level devices over real MQTT, the controller a child process`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-rollout-'));
  const token = 'bench-token-0123456789-abcdefghijklmnop';
  const hash = hashSecret(token);
  const mhash = mosquittoHash(token);
  // the last run: the same through Mosquitto with the controller's state on PostgreSQL (aim: under 20 s)
  const pgDb = await benchDatabase();
  for (const [name, sub] of [
    ['embedded aedes, SQLite', 'emb'],
    ['through Mosquitto, SQLite', 'ext'],
    ...(pgDb ? [['through Mosquitto, PostgreSQL', 'pg']] : []),
  ].filter(([, sub]) => !process.env.BENCH_ROLLOUT_RUNS || process.env.BENCH_ROLLOUT_RUNS.split(',').includes(sub))) {
    const d = join(dir, sub);
    mkdirSync(d, { recursive: true });
    // devices straight into the registry (registration is not what is measured), one shared token
    const url = sub === 'pg' ? pgDb.url : undefined;
    await seedDevices(url, d, DEVICES, (i) => ({
      id: `gw-${i}`,
      tags: { site: `s${i % 5}` },
      hardware: i % 2 ? 'rpi4' : 'rpi3',
      createdAt: Date.now(),
      tokenHash: hash,
      mosquittoHash: mhash,
    }));
    if (sub === 'emb') {
      await run(name, d, ['--mqtt-port', '0'], undefined, (i) => ({ username: `gw-${i}`, password: token }));
    } else {
      const port = await freePort();
      writeFileSync(
        join(d, 'm.conf'),
        `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n`,
      );
      const mosq = spawn('mosquitto', ['-c', join(d, 'm.conf')], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 500));
      try {
        await run(
          name,
          d,
          ['--external-broker', `mqtt://127.0.0.1:${port}`, ...(url ? ['--database', url] : [])],
          `mqtt://127.0.0.1:${port}`,
          () => ({}),
          url && pgDb.name,
        );
      } finally {
        mosq.kill('SIGTERM');
      }
    }
  }
  await pgDb?.drop();
  rmSync(dir, { recursive: true, force: true });
}

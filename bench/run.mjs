#!/usr/bin/env node
// Fleetwave agent benchmarks (issue "Agent: the durable store-and-forward path"). Not tests: they print figures and
// the conditions they were taken under, each next to a reference measured in the same run.
// Sizes: BENCH_APPEND (readings, default 200000), BENCH_DRAIN (default 1000000), BENCH_INGEST_SECONDS (default 10).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { MemoryOutboxStore, Outbox, SqliteOutboxStore, Uplink } from '@fleetwave/agent';
import { Aedes } from 'aedes';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { benchController } from './controller.mjs';
import { benchExe } from './exe.mjs';
import { benchCmapss, benchFilterThroughput } from './filters.mjs';
import { benchFlash, spawnBenchAgent } from './flash.mjs';
import { benchHealth } from './health.mjs';
import { benchLoadCost } from './load-cost.mjs';
import { benchPredict } from './predict.mjs';
import { benchReconnect } from './reconnect.mjs';
import { benchReplicas } from './replicas.mjs';
import { benchRollout } from './rollout.mjs';
import { benchUpdate } from './update.mjs';
import { benchWire } from './wire.mjs';

const APPEND = Number(process.env.BENCH_APPEND ?? 200_000);
const DRAIN = Number(process.env.BENCH_DRAIN ?? 1_000_000);
const INGEST_S = Number(process.env.BENCH_INGEST_SECONDS ?? 10);
const GROUP = 500;
// V8 flags for the agent child, e.g. BENCH_AGENT_NODE_FLAGS='--max-semi-space-size=1' (default: none, Node defaults)
const AGENT_FLAGS = (process.env.BENCH_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const tmp = (p) => mkdtempSync(join(tmpdir(), `fw-bench-${p}-`));
const route = (i) => ({ stream: `s${i % 100}/m`, priority: 'telemetry', rank: 2, ttlMs: undefined });
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const pkg = (name) =>
  JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;

function conditions() {
  let mosq = 'absent';
  try {
    mosq = execFileSync('mosquitto', ['-h'], { encoding: 'utf8' }).split('\n')[0];
  } catch (e) {
    mosq = String(e.stdout ?? '').split('\n')[0] || 'absent';
  }
  console.log('# conditions');
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${process.platform}-${process.arch}`,
  );
  console.log(
    `node ${process.version}; better-sqlite3 ${pkg('better-sqlite3')} (SQLite ${new Database(':memory:').prepare('select sqlite_version() v').get().v}); mqtt.js ${pkg('mqtt')}; aedes ${pkg('aedes')}; ${mosq}`,
  );
  console.log(`disk: ${tmpdir()} (outbox files there, synchronous=FULL unless said)`);
}

function outboxOver(store, extra = {}) {
  return new Outbox(store, {
    device: 'bench-gw',
    capBytes: 2 ** 40,
    fullPolicy: 'drop-oldest',
    maxAckDelayMs: 1000,
    maxGroup: 1e9,
    batchMaxRecords: 500,
    batchMaxBytes: 128 * 1024,
    now: Date.now,
    ...extra,
  });
}

function benchAppend() {
  console.log(`\n# outbox append: ${fmt(APPEND)} readings, groups of ${GROUP} per transaction, 100 streams`);
  const results = {};
  for (const sync of ['FULL', 'NORMAL']) {
    const dir = tmp('append');
    const box = outboxOver(new SqliteOutboxStore(join(dir, 'o.db'), { synchronous: sync }));
    const t0 = performance.now();
    for (let i = 0; i < APPEND; i++) {
      box.submit(route(i), { value: i * 0.5, ts: 1_700_000_000_000 + i }, () => {});
      if ((i + 1) % GROUP === 0) box.flush();
    }
    box.flush();
    const outboxRate = APPEND / ((performance.now() - t0) / 1000);
    box.close();
    // the reference: the same rows into the same table shape, in the same group size, with nothing around it
    const db = new Database(join(dir, 'bare.db'));
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${sync}`);
    db.exec(
      'CREATE TABLE rows (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT, rank INTEGER, ts INTEGER, expires_at INTEGER, body TEXT, bytes INTEGER, loss INTEGER); CREATE INDEX rows_rank ON rows(rank, id)',
    );
    const ins = db.prepare(
      'INSERT INTO rows (stream, rank, ts, expires_at, body, bytes, loss) VALUES (?, ?, ?, ?, ?, ?, 0)',
    );
    const tx = db.transaction((from, to) => {
      for (let i = from; i < to; i++) {
        const body = `"kind":"reading","stream":"s${i % 100}/m","ts":${1_700_000_000_000 + i},"value":${i * 0.5}`;
        ins.run(`s${i % 100}/m`, 2, 1_700_000_000_000 + i, null, body, body.length + 48);
      }
    });
    const t1 = performance.now();
    for (let i = 0; i < APPEND; i += GROUP) tx(i, Math.min(APPEND, i + GROUP));
    const bareRate = APPEND / ((performance.now() - t1) / 1000);
    db.close();
    rmSync(dir, { recursive: true, force: true });
    results[sync] = outboxRate / bareRate;
    console.log(
      `synchronous=${sync}: outbox ${fmt(outboxRate)} readings/s, bare better-sqlite3 ${fmt(bareRate)} readings/s, ratio ${(outboxRate / bareRate).toFixed(2)} (aim >= 0.7)`,
    );
  }
}

async function aedesBroker() {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => broker.close(() => server.close(() => r()))),
  };
}

async function mosquittoBroker() {
  const dir = tmp('mosq');
  chmodSync(dir, 0o777);
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  writeFileSync(
    join(dir, 'm.conf'),
    `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 0\n`,
  );
  const proc = spawn('mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((res) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
      c.once('connect', () => {
        res(true);
        c.end(true);
      });
      c.once('error', () => res(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `mqtt://127.0.0.1:${port}`, close: async () => proc.kill('SIGKILL') };
}

/** A backlog of DRAIN readings over 100 streams, committed in groups of 1,000 (the default maxGroup). */
function fillBacklog(box) {
  for (let i = 0; i < DRAIN; i++) {
    box.submit(route(i), { value: Math.round(Math.sin(i / 5000) * 1000) / 100, ts: 1_700_000_000_000 + i }, () => {});
    if ((i + 1) % 1000 === 0) box.flush();
  }
  box.flush();
}

async function benchDrain(name, makeBroker) {
  const broker = await makeBroker();
  const dir = tmp('drain');
  const store = new SqliteOutboxStore(join(dir, 'o.db'));
  const box = outboxOver(store);
  fillBacklog(box);
  // the reference payloads: the very batches this backlog makes (the same input through an in-memory outbox),
  // published by bare mqtt.js, same window, same QoS
  const refBox = outboxOver(new MemoryOutboxStore());
  fillBacklog(refBox);
  const payloads = [];
  for (let b = refBox.claimBatch(); b; b = refBox.claimBatch()) payloads.push(b.payload);
  const nBatches = payloads.length;
  const bytes = payloads.reduce((s, p) => s + p.length, 0);
  // both sides' time includes connecting (the uplink's drain starts with its CONNECT)
  const r0 = performance.now();
  const ref = await mqtt.connectAsync(broker.url, { clientId: 'bench-ref', clean: true });
  await new Promise((resolve) => {
    let sent = 0,
      acked = 0,
      inflight = 0;
    const pump = () => {
      while (inflight < 8 && sent < nBatches) {
        inflight++;
        ref.publish('fleetwave/devices/bench-ref/telemetry', payloads[sent++], { qos: 1 }, () => {
          inflight--;
          acked++;
          if (acked === nBatches) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const refS = (performance.now() - r0) / 1000;
  await ref.endAsync();

  let uplink;
  const drained = new Promise((resolve) => {
    uplink = new Uplink({
      url: broker.url,
      client: {},
      root: 'fleetwave',
      device: 'bench-gw',
      agentVersion: 'bench',
      inflightWindow: 8,
      backoffMinMs: 100,
      backoffMaxMs: 1000,
      outbox: box,
      log: pino({ level: 'silent' }),
      now: Date.now,
    });
    // done at the PUBACK of the last record's batch (counted as the uplink acknowledges, no polling that would
    // compete with the drain for the event loop); then the chunks left are deleted, timed too
    let acked = 0;
    const acknowledge = box.acknowledge.bind(box);
    box.acknowledge = (b) => {
      acknowledge(b);
      acked += b.seqTo - b.seqFrom + 1;
      if (acked >= DRAIN) resolve();
    };
  });
  const t0 = performance.now();
  uplink.start();
  await drained;
  box.flush();
  const s = (performance.now() - t0) / 1000;
  const left = box.status().depth;
  await uplink.stop(1000);
  box.close();
  await broker.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(
    `drain to ${name}: ${fmt(DRAIN)} readings in ${fmt(nBatches)} batches (${(bytes / DRAIN).toFixed(2)} B/reading) in ${s.toFixed(2)} s = ${fmt(DRAIN / s)} readings/s; bare mqtt.js, the same batches: ${refS.toFixed(2)} s = ${fmt(DRAIN / refS)} readings/s; ratio ${(refS / s).toFixed(2)} (aim >= 0.8)${left ? `; ${left} NOT DRAINED` : ''}`,
  );
}

function filterConfig() {
  const dir = tmp('filters-cfg');
  const file = join(dir, 'agent.yaml');
  writeFileSync(
    file,
    `device: { id: bench-gw }
filters:
  - match: '**'
    validate: { min: -1000000, max: 1000000 }
    alert: { above: 100000, hysteresis: 1 }
    heartbeat: { maxInterval: 5m }
    deadband: { absolute: 0.5 }
    window: { size: 1m, quantiles: [0.5, 0.95], keepReadings: true }
`,
  );
  return file;
}

async function benchIngest(mode) {
  const paced = mode === 'steady';
  const filtered = mode === 'filters';
  if (filtered) console.log('(the same, with every reading through the all-filters rule of the filter benchmark)');
  console.log(
    paced
      ? `\n# steady state: agent as a child process, 100 streams at 10 readings/s each (1,000/s), local MQTT QoS 1, ${INGEST_S} s`
      : `\n# end-to-end ingest: agent as a child process, 10 sensor clients over local MQTT QoS 1, ${INGEST_S} s, 100 streams`,
  );
  const cloud = await aedesBroker();
  const dir = tmp('ingest');
  const { agent, port, io, rss } = await spawnBenchAgent(AGENT_FLAGS, [
    ...(filtered ? ['--config', filterConfig()] : []),
    '--device-id',
    'bench-gw',
    '--uplink-url',
    cloud.url,
    '--data-dir',
    dir,
    '--listen',
    '127.0.0.1:0',
    '--log-level',
    'warn',
    ...(process.env.BENCH_MAX_ACK_DELAY ? ['--max-ack-delay', process.env.BENCH_MAX_ACK_DELAY] : []),
  ]);
  const sensors = await Promise.all(
    Array.from({ length: 10 }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `bench-s${i}` })),
  );
  let acked = 0;
  let running = true;
  const loops = sensors.map(
    (c, si) =>
      new Promise((resolve) => {
        let inflight = 0,
          k = 0;
        if (paced) {
          // each client carries 10 streams at 10 readings/s: 10 publishes every 100 ms
          const t = setInterval(() => {
            if (!running) {
              clearInterval(t);
              resolve();
              return;
            }
            for (let j = 0; j < 10; j++)
              c.publish(`sensors/s${si * 10 + j}/m`, String(k++ * 0.25), { qos: 1 }, () => acked++);
          }, 100);
          return;
        }
        const pump = () => {
          if (!running) {
            if (inflight === 0) resolve();
            return;
          }
          while (inflight < 200) {
            inflight++;
            const stream = si * 10 + (k++ % 10);
            c.publish(`sensors/s${stream}/m`, String(k * 0.25), { qos: 1 }, () => {
              inflight--;
              acked++;
              pump();
            });
          }
        };
        pump();
      }),
  );
  await new Promise((r) => setTimeout(r, 2000)); // warm-up
  const a0 = acked,
    w0 = io(),
    t0 = performance.now();
  await new Promise((r) => setTimeout(r, INGEST_S * 1000));
  const a1 = acked,
    w1 = io(),
    t1 = performance.now();
  const mem = rss();
  running = false;
  await Promise.all(loops);
  await Promise.all(sensors.map((c) => c.endAsync()));
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  await cloud.close();
  rmSync(dir, { recursive: true, force: true });
  const rate = (a1 - a0) / ((t1 - t0) / 1000);
  const perReading = ((w1 - w0) / (a1 - a0)).toFixed(1);
  if (paced) {
    console.log(`acknowledged ${fmt(rate)} readings/s; disk writes ${perReading} bytes per reading (/proc/<agent>/io)`);
    console.log(
      `agent resident memory at steady state, 100 streams: ${mem.toFixed(1)} MB (aim < 80 MB; VmRSS, agent flags: ${AGENT_FLAGS.join(' ') || 'none'})`,
    );
    return;
  }
  console.log(
    `committed and acknowledged: ${fmt(rate)} readings/s (aim >= 25,000), while the uplink drained to an aedes cloud in the same run`,
  );
  console.log(`disk writes: ${perReading} bytes per reading (/proc/<agent>/io write_bytes, synchronous=FULL, WAL)`);
  console.log(
    `agent resident memory under this full load: ${mem.toFixed(1)} MB (VmRSS, agent flags: ${AGENT_FLAGS.join(' ') || 'none'})`,
  );
}

conditions();
const only = process.argv[2];
if (!only || only === 'append') benchAppend();
if (!only || only === 'ingest') await benchIngest('max');
if (!only || only === 'ingest' || only === 'filters') await benchIngest('filters');
if (!only || only === 'ingest' || only === 'steady') await benchIngest('steady');
if (!only || only === 'filters') {
  benchFilterThroughput();
  benchCmapss();
}
if (!only || only === 'health') benchHealth();
if (!only || only === 'controller') await benchController();
if (!only || only === 'rollout') await benchRollout();
if (!only || only === 'replicas') await benchReplicas();
if (!only || only === 'reconnect') await benchReconnect();
if (!only || only === 'load') benchLoadCost();
if (!only || only === 'exe') await benchExe();
if (!only || only === 'predict') await benchPredict();
if (!only || only === 'update') await benchUpdate();
if (!only || only === 'flash') await benchFlash();
if (!only || only === 'wire') benchWire();
if (!only || only === 'drain') {
  console.log(
    `\n# drain: a backlog of ${fmt(DRAIN)} readings over 100 streams in chunks of 1,000 (SQLite file, FULL), batches of whole chunks up to 500 records, in-flight window 8`,
  );
  await benchDrain('aedes (in process)', aedesBroker);
  await benchDrain('mosquitto', mosquittoBroker);
}
process.exit(0);

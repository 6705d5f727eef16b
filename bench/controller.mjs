// Controller ingest benchmark: 1,000 simulated devices over real MQTT, to the embedded broker and through Mosquitto.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashSecret, mosquittoHash } from '@fleetwave/controller';
import mqtt from 'mqtt';
import { benchDatabase, pgCpuSeconds, seedDevices } from './databases.mjs';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const SECONDS = Number(process.env.BENCH_CONTROLLER_SECONDS ?? 10);
const PER_BATCH = 100;
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const cli = fileURLToPath(import.meta.resolve('@fleetwave/controller').replace(/index\.js$/, 'cli.js'));

export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

export function proc(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime, in clock ticks (100 Hz)
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
  return { cpuS: ticks / 100, rss };
}

export async function startController(dataDir, args) {
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_CONTROLLER_PROFILE
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CONTROLLER_PROFILE}`]
        : []),
      cli,
      'serve',
      '--data-dir',
      dataDir,
      '--http-port',
      '0',
      '--log-level',
      'warn',
      ...args,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const ready = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (c) => reject(new Error(`controller exited ${c}`)));
  });
  return { child, ...ready };
}

/**
 * The ingest load: each client publishes batches of 100 readings as its device, QoS 1, one in flight, until stopped
 * (the batches are built as strings: the generator's own cost is part of what the machine shares).
 */
export function telemetryLoad(clients, deviceOf) {
  let running = true;
  const loops = clients.map((c, i) => {
    let seq = 1;
    const device = deviceOf(i);
    const topic = `fleetwave/devices/${device}/telemetry`;
    return (async () => {
      while (running) {
        const records = [];
        for (let k = 0; k < PER_BATCH; k++) {
          records.push(
            `{"kind":"reading","seq":${seq + k},"stream":"s${k % 10}/v","ts":${1_700_000_000_000 + seq + k},"value":${(seq + k) * 0.5}}`,
          );
        }
        const body = `{"v":1,"device":"${device}","seqFrom":${seq},"seqTo":${seq + PER_BATCH - 1},"sentAt":1700000000000,"records":[${records.join(',')}]}`;
        seq += PER_BATCH;
        await c.publishAsync(topic, body, { qos: 1 });
      }
    })();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function stored(http) {
  const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
  return Number(/fleetwave_telemetry_stored_total (\d+)/.exec(text)[1]);
}

async function run(name, brokerUrl, dataDir, controllerArgs, credentials, pgName) {
  const ctl = await startController(dataDir, controllerArgs);
  const url = brokerUrl ?? `mqtt://127.0.0.1:${ctl.mqtt}`;
  const t0 = performance.now();
  const clients = [];
  for (let i = 0; i < DEVICES; i += 50) {
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, DEVICES - i) }, (_, k) =>
          mqtt.connectAsync(url, {
            clientId: `gw-${i + k}`,
            ...credentials(i + k),
            reconnectPeriod: 0,
            keepalive: 120,
          }),
        ),
      )),
    );
  }
  const connectS = (performance.now() - t0) / 1000;
  const idle = proc(ctl.child.pid);
  const load = telemetryLoad(clients, (i) => `gw-${i}`);
  await new Promise((r) => setTimeout(r, 2000));
  const s0 = await stored(ctl.http);
  const p0 = proc(ctl.child.pid);
  const d0 = pgName ? await pgCpuSeconds(pgName) : 0;
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const s1 = await stored(ctl.http);
  const p1 = proc(ctl.child.pid);
  const d1 = pgName ? await pgCpuSeconds(pgName) : 0;
  const wall = (performance.now() - w0) / 1000;
  await load.stop();
  await Promise.all(clients.map((c) => c.endAsync(true)));
  ctl.child.kill('SIGTERM');
  await new Promise((r) => ctl.child.once('exit', r));
  const rate = (s1 - s0) / wall;
  const cpu = (p1.cpuS - p0.cpuS) / wall;
  console.log(
    `${name}: ${fmt(rate)} readings/s validated, deduplicated and stored (aim >= 100,000); ` +
      `batches of ${PER_BATCH}, QoS 1, one in flight per device; ${DEVICES} devices connected in ${connectS.toFixed(1)} s`,
  );
  console.log(
    `  controller: ${(cpu * 100).toFixed(0)}% of one core under load; RSS ${idle.rss.toFixed(0)} MB idle with ${DEVICES} devices connected, ${p1.rss.toFixed(0)} MB under load ` +
      `(${((idle.rss / DEVICES) * 1000).toFixed(0)} MB per 1,000 connected devices)` +
      (pgName ? `; PostgreSQL server processes ${(((d1 - d0) / wall) * 100).toFixed(0)}% of one core` : ''),
  );
  return rate;
}

export async function benchController() {
  console.log(
    `\n# controller ingest: ${fmt(DEVICES)} devices over real MQTT, ${SECONDS} s, the controller a child process`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-ctl-'));
  chmodSync(dir, 0o777);
  // devices are written straight into the registry (registration is not what is measured); all share one token
  const token = 'bench-token-0123456789-abcdefghijklmnop';
  const hash = hashSecret(token);
  const mhash = mosquittoHash(token);
  const device = (i) => ({
    id: `gw-${i}`,
    tags: {},
    hardware: 'bench',
    createdAt: Date.now(),
    tokenHash: hash,
    mosquittoHash: mhash,
  });
  const creds = (i) => ({ username: `gw-${i}`, password: token });
  await seedDevices(undefined, dir, DEVICES, device);
  const sqlite = await run('embedded aedes, SQLite', undefined, dir, ['--mqtt-port', '0'], creds);
  // the same on PostgreSQL (issue "its state on PostgreSQL": aim >= 0.7 of SQLite and >= 50,000 readings/s)
  const pgDb = await benchDatabase();
  if (pgDb) {
    try {
      const pgDir = join(dir, 'pg');
      await seedDevices(pgDb.url, pgDir, DEVICES, device);
      const onPg = await run(
        'embedded aedes, PostgreSQL',
        undefined,
        pgDir,
        ['--mqtt-port', '0', '--database', pgDb.url],
        creds,
        pgDb.name,
      );
      console.log(
        `  PostgreSQL/SQLite: ${(onPg / sqlite).toFixed(2)} (aim >= 0.7), ${fmt(onPg)} readings/s on PostgreSQL (aim >= 50,000)`,
      );
    } finally {
      await pgDb.drop();
    }
  }
  rmSync(join(dir, 'fleet.db'), { force: true });
  rmSync(join(dir, 'fleet.db-wal'), { force: true });
  rmSync(join(dir, 'fleet.db-shm'), { force: true });

  const port = await freePort();
  writeFileSync(join(dir, 'm.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n`);
  const mosq = spawn('mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  try {
    await run(
      'through Mosquitto',
      `mqtt://127.0.0.1:${port}`,
      join(dir, 'ext'),
      ['--external-broker', `mqtt://127.0.0.1:${port}`],
      () => ({}),
    );
  } finally {
    mosq.kill('SIGTERM');
  }
  rmSync(dir, { recursive: true, force: true });
}

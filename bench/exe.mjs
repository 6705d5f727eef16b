// Single-executable benchmark (issues "The agent as one executable", "Agent: small on the gateway"): sizes of the
// executables and the bundle, the x64 footprint (footprint.mjs: start-up, memory, throughput against `node` running
// the same bundle under other V8 settings), and start-up under qemu for arm64 (emulated).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { benchFootprint } from './footprint.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const exe = (arch) => join(root, 'dist-exe', `fleetwave-agent-linux-${arch}`);
const bundleDir = join(root, 'dist-bundle');

const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

async function cloud() {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(() => aedes.close(r))),
  };
}

/** Starts the agent, sends one reading as soon as its listener is up: ms from spawn to that reading's PUBACK. */
async function startup(command, env, uplink, steadySeconds = 0) {
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-exe-'));
  const t0 = performance.now();
  const [cmd, ...pre] = command;
  const p = spawn(
    cmd,
    [
      ...pre,
      'run',
      '--device-id',
      'gw-b',
      '--uplink-url',
      uplink,
      '--data-dir',
      join(dir, 'data'),
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    },
  );
  const port = await new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = /"event":"ready","ingest":\{"host":"[^"]*","port":(\d+)\}/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    p.once('exit', (c) => reject(new Error(`agent exited ${c}`)));
  });
  const s = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'bench-sensor' });
  await s.publishAsync('sensors/a/temp', JSON.stringify({ value: 1 }), { qos: 1 });
  const startupMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 2000));
  const idle = rss(p.pid);
  let steady = Number.NaN;
  if (steadySeconds > 0) {
    // 1,000 readings/s over 100 streams
    let i = 0;
    const timer = setInterval(() => {
      for (let k = 0; k < 100; k++, i++) s.publish(`sensors/s${i % 100}/v`, JSON.stringify({ value: i }), { qos: 1 });
    }, 100);
    await new Promise((r) => setTimeout(r, steadySeconds * 1000));
    steady = rss(p.pid);
    clearInterval(timer);
  }
  await s.endAsync();
  p.kill('SIGTERM');
  await new Promise((r) => p.once('exit', r));
  return { startupMs, idle, steady };
}

export async function benchExe() {
  console.log('\n# the agent as one executable (dist-exe/, built by npm run build:agent)');
  if (!existsSync(exe('x64'))) {
    console.log('no dist-exe/fleetwave-agent-linux-x64: run npm run build:agent first');
    return;
  }
  for (const arch of ['x64', 'arm64']) {
    if (!existsSync(exe(arch))) continue;
    const bytes = statSync(exe(arch)).size;
    const gz = gzipSync(readFileSync(exe(arch)), { level: 6 }).length;
    console.log(`size ${arch}: ${(bytes / 2 ** 20).toFixed(1)} MiB raw, ${(gz / 2 ** 20).toFixed(1)} MiB gzip`);
  }
  for (const f of existsSync(bundleDir) ? readdirSync(bundleDir) : []) {
    const bytes = readFileSync(join(bundleDir, f));
    console.log(
      `bundle dist-bundle/${f}: ${(bytes.length / 2 ** 20).toFixed(2)} MiB raw, ${(gzipSync(bytes, { level: 9 }).length / 2 ** 20).toFixed(2)} MiB gzip -9`,
    );
  }
  await benchFootprint();
  const c = await cloud();
  if (existsSync(exe('arm64'))) {
    const arm = await startup(['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', exe('arm64')], {}, c.url);
    console.log(
      `arm64 executable under qemu-user (emulated on this x64 machine): start to first accepted reading ${arm.startupMs.toFixed(0)} ms`,
    );
  }
  await c.close();
}

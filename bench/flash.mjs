// Flash wear of the agent process (issue "Agent: an outbox that spares the gateway's flash and its link"): bytes
// written to storage (/proc/<pid>/io write_bytes) per reading and per day at realistic rates, with the default
// settings and with the low-wear setting, and the bytes on the link per reading. The agent runs as a child process
// (node + the built CLI) against an aedes cloud in this process that acknowledges every batch.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';

const SECONDS = Number(process.env.BENCH_FLASH_SECONDS ?? 30);
const WARMUP_S = 5;
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const mb = (b) => `${(b / 1e6).toFixed(b < 1e7 ? 1 : 0)} MB`;

/**
 * The agent CLI as a child process (node flags, then `run` and its arguments), once it printed its listener's port;
 * `io()` is its bytes written to storage so far, `rss()` its resident memory in MB.
 */
export async function spawnBenchAgent(nodeFlags, args) {
  const cli = fileURLToPath(import.meta.resolve('@fleetwave/agent').replace(/index\.js$/, 'cli.js'));
  const agent = spawn(process.execPath, [...nodeFlags, cli, 'run', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => {
    let out = '';
    agent.stdout.on('data', (d) => {
      out += d;
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
  });
  const io = () => Number(/write_bytes: (\d+)/.exec(readFileSync(`/proc/${agent.pid}/io`, 'utf8'))[1]);
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))[1]) / 1024;
  return { agent, port, io, rss };
}

/** An aedes broker that counts the telemetry it receives: messages, payload bytes, MQTT PUBLISH bytes. */
async function countingCloud() {
  const broker = await Aedes.createBroker();
  const wire = { messages: 0, payload: 0, packet: 0 };
  broker.on('publish', (packet, client) => {
    if (!client || !packet.topic.endsWith('/telemetry')) return;
    wire.messages++;
    wire.payload += packet.payload.length;
    // fixed header (1 + remaining-length bytes) + topic (2 + length) + packet id (2) + payload
    const rest = 2 + Buffer.byteLength(packet.topic) + 2 + packet.payload.length;
    wire.packet += 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : 3) + rest;
  });
  const server = createServer(broker.handle);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${server.address().port}`,
    wire,
    close: () => new Promise((r) => broker.close(() => server.close(() => r()))),
  };
}

/**
 * One run: `rate` readings/s from one sensor client over 10 streams (slowly varying values, 0.01 resolution), QoS 1
 * without waiting for PUBACKs, for SECONDS after a warm-up; the agent with `outbox` settings from a config file.
 */
export async function flashRun(rate, outbox = {}, flags = []) {
  const cloud = await countingCloud();
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-flash-'));
  const config = join(dir, 'agent.yaml');
  writeFileSync(
    config,
    `device: { id: bench-gw }\ndataDir: ${dir}/data\ningest: { port: 0 }\nuplink: { url: '${cloud.url}' }\n` +
      `outbox: ${JSON.stringify(outbox)}\nlog: { level: warn }\n`,
  );
  const { agent, port, io } = await spawnBenchAgent(flags, ['--config', config]);
  const sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'bench-sensor' });
  let acked = 0;
  let k = 0;
  const perTick = Math.max(1, rate / 100);
  const tickMs = (1000 * perTick) / rate;
  const t = setInterval(() => {
    for (let j = 0; j < perTick; j++, k++) {
      const stream = k % 10;
      const value = (2150 + Math.round(Math.sin(k / 500 + stream) * 200)) / 100;
      sensor.publish(`sensors/s${stream}/temp`, String(value), { qos: 1 }, () => acked++);
    }
  }, tickMs);
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  const a0 = acked;
  const k0 = k;
  const w0 = io();
  const m0 = { ...cloud.wire };
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const a1 = acked;
  const k1 = k;
  const w1 = io();
  const s = (performance.now() - t0) / 1000;
  const m1 = { ...cloud.wire };
  clearInterval(t);
  await sensor.endAsync();
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  await cloud.close();
  rmSync(dir, { recursive: true, force: true });
  // per reading: what the sensor sent in the window (with maxAckDelay 5s the PUBACKs come in bursts, so the
  // acknowledged count of a window is off by up to a burst); the acknowledged rate is reported beside it
  const readings = k1 - k0;
  const written = w1 - w0;
  return {
    rate: (a1 - a0) / s,
    perReading: written / readings,
    perDay: (written / s) * 86_400,
    wirePerReading: (m1.payload - m0.payload) / readings,
    packetPerReading: (m1.packet - m0.packet) / readings,
    messagesPerSecond: (m1.messages - m0.messages) / s,
  };
}

/** Aims of the issue; figures of the v1 outbox as the issue measured them (same method, same machine kind). */
const V1 = { 10: [45_600, 39e9, 178], 100: [4_550, 39e9, 100], 1000: [875, 75e9, 93] };

export async function benchFlash() {
  console.log(
    `\n# flash: agent child process, one sensor, 10 streams, QoS 1, ${SECONDS} s after ${WARMUP_S} s warm-up; /proc/<agent>/io write_bytes; synchronous=FULL`,
  );
  console.log('(v1 figures: the previous outbox, as measured in the issue with the same method; not re-run here)');
  const settings = [
    ['defaults (maxAckDelay 1s)', {}],
    ['low-wear (maxAckDelay 5s)', { maxAckDelay: '5s' }],
  ];
  for (const [name, outbox] of settings) {
    for (const rate of [10, 100, 1000]) {
      const r = await flashRun(rate, outbox);
      const [v1Per, v1Day, v1Wire] = V1[rate];
      const aim =
        name.startsWith('defaults') && rate === 10
          ? ' (aim <= 1 GB/day)'
          : name.startsWith('defaults') && rate === 1000
            ? ' (aim <= 100 B/reading)'
            : name.startsWith('low') && rate === 10
              ? ' (aim <= 200 MB/day)'
              : '';
      console.log(
        `${name}, ${rate}/s (${r.rate.toFixed(1)} acknowledged/s): ${fmt(r.perReading)} bytes written per reading, ${mb(r.perDay)} per day${aim}; ` +
          `v1 ${fmt(v1Per)} B, ${mb(v1Day)}/day | link: ${r.wirePerReading.toFixed(1)} B payload, ${r.packetPerReading.toFixed(1)} B MQTT per reading, ${r.messagesPerSecond.toFixed(1)} messages/s (v1 JSON ${v1Wire} B)`,
      );
    }
  }
}

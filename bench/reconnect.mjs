// Reconnect storm (issue "Devices at fleet scale"): N devices (mqtt.js clients in this process, each with its own
// token) connected to the embedded broker; the controller is killed (SIGKILL) and started again on the same ports and
// data; measured: time until every device is connected again and has had one telemetry batch acknowledged.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCa,
  hashSecret,
  issueDeviceCertificate,
  legacyScryptHash,
  loadCa,
  mosquittoHash,
  openDatabase,
} from '@fleetwave/controller';
import mqtt from 'mqtt';
import { freePort, proc, startController } from './controller.mjs';
import { seedDevices } from './databases.mjs';

const DEVICES = Number(process.env.BENCH_RECONNECT_DEVICES ?? 10_000);
const LEGACY = Number(process.env.BENCH_RECONNECT_LEGACY_DEVICES ?? 1_000);
const RUNS = (process.env.BENCH_RECONNECT_RUNS ?? 'tokens,legacy,certs').split(',');
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One run: `n` devices whose stored hashes `hashOf(token)` makes; connect all, kill the controller, start it again.
 * Every device reconnects every second (mqtt.js's default period) until it is in, as a fleet does after an outage.
 */
async function storm(label, dir, n, hashOf, certs = false) {
  // distinct tokens (a cache keyed by token could not help), made once: the hashing is not what is measured
  const tokens = Array.from(
    { length: n },
    (_, i) => `bench-${i}-${Math.random().toString(36).slice(2)}-0123456789abcdef`,
  );
  await seedDevices(undefined, dir, n, (i) => ({
    id: `gw-${i}`,
    tags: {},
    hardware: 'rpi4',
    createdAt: Date.now(),
    tokenHash: hashOf(tokens[i]),
    mosquittoHash: mosquittoHash(tokens[i]),
  }));
  const mqttPort = await freePort();
  const args = [
    '--mqtt-port',
    String(mqttPort),
    ...(process.env.BENCH_RECONNECT_ARGS?.split(' ').filter(Boolean) ?? []),
  ];
  let url = `mqtt://127.0.0.1:${mqttPort}`;
  let tls;
  if (certs) {
    // a fleet CA in the data dir, a certificate for each device in the registry (made here: not what is measured)
    await createCa(dir);
    const ca = await loadCa(dir);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'server.key'),
        '-out',
        join(dir, 'server.pem'),
      ],
      { stdio: 'ignore' },
    );
    tls = [];
    const db = await openDatabase({ dataDir: dir });
    try {
      for (let i = 0; i < n; i++) {
        const c = await issueDeviceCertificate(ca, `gw-${i}`);
        tls.push({ key: c.keyPem, cert: c.certPem });
        await db.fleet.addCertificate({
          fingerprint: c.fingerprint,
          device: `gw-${i}`,
          serial: c.serial,
          notBefore: c.notBefore,
          notAfter: c.notAfter,
          issuedAt: Date.now(),
          revokedAt: null,
        });
      }
    } finally {
      await db.close();
    }
    const tlsPort = await freePort();
    args.push(
      '--mqtts-port',
      String(tlsPort),
      '--tls-cert',
      join(dir, 'server.pem'),
      '--tls-key',
      join(dir, 'server.key'),
      '--require-client-cert',
    );
    url = `mqtts://127.0.0.1:${tlsPort}`;
  }
  let ctl = await startController(dir, args);
  const serverCa = certs ? readFileSync(join(dir, 'server.pem')) : undefined;
  const state = Array.from({ length: n }, () => ({ connects: 0, acked: 0 }));
  const clients = [];
  const send = (c, i) => {
    const body = `{"v":1,"device":"gw-${i}","seqFrom":${state[i].connects},"seqTo":${state[i].connects},"sentAt":${Date.now()},"records":[{"kind":"reading","seq":${state[i].connects},"stream":"s/v","ts":${Date.now()},"value":1}]}`;
    c.publish(`fleetwave/devices/gw-${i}/telemetry`, body, { qos: 1 }, (err) => {
      if (!err) state[i].acked = state[i].connects;
    });
  };
  const t0 = performance.now();
  for (let i = 0; i < n; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, n - i) }, (_, k) => {
        const j = i + k;
        const c = mqtt.connect(url, {
          clientId: `gw-${j}`,
          ...(certs ? { ...tls[j], ca: serverCa } : { username: `gw-${j}`, password: tokens[j] }),
          reconnectPeriod: 1000,
          reconnectOnConnackError: true, // CONNACK 3 (over the broker's connect rate): try again, as an agent does
          connectTimeout: 30_000,
          keepalive: 300,
        });
        c.on('connect', () => {
          state[j].connects++;
          send(c, j);
        });
        c.on('error', () => {});
        clients.push(c);
        return new Promise((r) => c.once('connect', r));
      }),
    );
  }
  const first = (performance.now() - t0) / 1000;
  const everyone = async (round) => {
    for (;;) {
      const late = state.filter((s) => s.connects < round || s.acked < round).length;
      if (late === 0) return;
      await sleep(20);
    }
  };
  await everyone(1);
  const rssBefore = proc(ctl.child.pid).rss;
  ctl.child.kill('SIGKILL');
  await new Promise((r) => ctl.child.once('exit', r));
  const k0 = performance.now();
  ctl = await startController(dir, args);
  const ready = (performance.now() - k0) / 1000;
  await everyone(2);
  const back = (performance.now() - k0) / 1000;
  const after = proc(ctl.child.pid);
  console.log(
    `${label}, ${fmt(n)} devices: first connection of all ${first.toFixed(1)} s; after SIGKILL and restart: controller ready ${ready.toFixed(1)} s, ` +
      `every device connected and its batch acknowledged ${back.toFixed(1)} s from the kill; controller RSS ${fmt(rssBefore)} MB before, ${fmt(after.rss)} MB after`,
  );
  for (const c of clients) c.end(true);
  ctl.child.kill('SIGTERM');
  await new Promise((r) => ctl.child.once('exit', r));
  return back;
}

export async function benchReconnect() {
  console.log(
    `\n# reconnect storm: devices (mqtt.js clients in this process, each its own token, reconnecting every 1 s) on the embedded broker, the controller killed and started again`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-reconnect-'));
  try {
    if (RUNS.includes('tokens')) {
      const fast = join(dir, 'sha256');
      mkdirSync(fast);
      const t = await storm('tokens hashed with SHA-256', fast, DEVICES, hashSecret);
      console.log(
        `  aim: <= 10 s for 10,000 devices: ${t <= 10 && DEVICES >= 10_000 ? 'met' : 'not met'} (${t.toFixed(1)} s)`,
      );
    }
    // the reference: the scrypt hashes of earlier versions (each costs scrypt once; then migrated), fewer devices
    const legacy = join(dir, 'scrypt');
    mkdirSync(legacy);
    if (RUNS.includes('legacy'))
      await storm(
        'reference: scrypt hashes of earlier versions (migrated on this first check)',
        legacy,
        LEGACY,
        legacyScryptHash,
      );
    if (RUNS.includes('certs')) {
      const certs = join(dir, 'certs');
      mkdirSync(certs);
      const tc = await storm(
        'client certificates (P-256, TLS, --require-client-cert)',
        certs,
        DEVICES,
        hashSecret,
        true,
      );
      console.log(
        `  aim: <= 10 s for 10,000 devices with certificates: ${tc <= 10 && DEVICES >= 10_000 ? 'met' : 'not met'} (${tc.toFixed(1)} s)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

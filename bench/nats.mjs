// A 3-node NATS cluster for the benchmarks (the tests' own is test/nats-cluster.ts): JetStream and an MQTT listener
// on every node, routes between all of them, each node on free ports with its store under `dir`.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './controller.mjs';

export async function startNatsCluster(dir, size = 3) {
  const ports = [];
  for (let i = 0; i < size; i++) {
    ports.push({ client: await freePort(), cluster: await freePort(), mqtt: await freePort(), http: await freePort() });
  }
  const routes = ports.map((p) => `nats://127.0.0.1:${p.cluster}`).join(', ');
  const children = ports.map((p, i) => {
    const store = join(dir, `n${i + 1}`);
    mkdirSync(store, { recursive: true });
    const conf = join(dir, `n${i + 1}.conf`);
    writeFileSync(
      conf,
      `server_name: n${i + 1}\nlisten: 127.0.0.1:${p.client}\nhttp: 127.0.0.1:${p.http}\n` +
        `jetstream { store_dir: "${store}", max_memory_store: 64MB, max_file_store: 4GB }\n` +
        `cluster { name: fleetwave-bench, listen: 127.0.0.1:${p.cluster}, routes: [${routes}] }\n` +
        `mqtt { listen: 127.0.0.1:${p.mqtt} }\n`,
    );
    return spawn('nats-server', ['-c', conf, '-l', join(dir, `n${i + 1}.log`)], { stdio: 'ignore' });
  });
  // healthy (JetStream meta group with a leader) on every node
  const deadline = Date.now() + 60_000;
  for (const p of ports) {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${p.http}/healthz?js-server-only=true`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`the NATS cluster did not become healthy; see ${dir}/n*.log`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    natsUrls: ports.map((p) => `nats://127.0.0.1:${p.client}`),
    mqttUrls: ports.map((p) => `mqtt://127.0.0.1:${p.mqtt}`),
    pids: children.map((c) => c.pid),
    stop: () => {
      for (const c of children) c.kill('SIGTERM');
    },
  };
}

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tmp } from './helpers.js';

export interface NatsNode {
  name: string;
  natsUrl: string;
  mqttUrl: string;
  /** SIGKILL: the node is gone at once, as when its machine dies. */
  kill(): Promise<void>;
  /** Starts it again on its ports and its JetStream store; resolves when it is healthy in the cluster again. */
  start(): Promise<void>;
  running(): boolean;
}

export interface NatsCluster {
  nodes: NatsNode[];
  natsUrls: string[];
  mqttUrls: string[];
  stop(): Promise<void>;
}

/**
 * A NATS cluster of `size` nodes started for a test: one process each on free ports, JetStream (file store in its own
 * directory) and an MQTT listener on every node, routes between all of them. Resolves when every node reports healthy
 * with JetStream (its /healthz answers 200 once the JetStream meta group has a leader).
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const dir = tmp('nats');
  const ports = [];
  for (let i = 0; i < size; i++) {
    ports.push({ client: await freePort(), cluster: await freePort(), mqtt: await freePort(), http: await freePort() });
  }
  const routes = ports.map((p) => `nats://127.0.0.1:${p.cluster}`).join(', ');
  const nodes: NatsNode[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const store = join(dir, name);
    mkdirSync(store, { recursive: true });
    const conf = join(dir, `${name}.conf`);
    const log = join(dir, `${name}.log`);
    writeFileSync(
      conf,
      `server_name: ${name}\nlisten: 127.0.0.1:${p.client}\nhttp: 127.0.0.1:${p.http}\n` +
        `jetstream { store_dir: "${store}", max_memory_store: 64MB, max_file_store: 2GB }\n` +
        `cluster { name: fleetwave-test, listen: 127.0.0.1:${p.cluster}, routes: [${routes}] }\n` +
        `mqtt { listen: 127.0.0.1:${p.mqtt} }\n`,
    );
    let proc: ChildProcess | undefined;
    const node: NatsNode = {
      name,
      natsUrl: `nats://127.0.0.1:${p.client}`,
      mqttUrl: `mqtt://127.0.0.1:${p.mqtt}`,
      running: () => proc !== undefined && proc.exitCode === null && proc.signalCode === null,
      kill: async () => {
        const q = proc;
        proc = undefined;
        if (!q || q.exitCode !== null || q.signalCode !== null) return;
        await new Promise<void>((r) => {
          q.once('exit', () => r());
          q.kill('SIGKILL');
        });
      },
      start: async () => {
        proc = spawn('nats-server', ['-c', conf, '-l', log], { stdio: 'ignore' });
        const deadline = Date.now() + 60_000;
        for (;;) {
          const ok = await fetch(`http://127.0.0.1:${p.http}/healthz?js-server-only=true`).then(
            (r) => r.ok,
            () => false,
          );
          if (ok) return;
          if (proc.exitCode !== null || Date.now() > deadline) {
            let tail = '';
            try {
              tail = readFileSync(log, 'utf8').slice(-800);
            } catch {}
            throw new Error(`nats-server ${name} did not become healthy: ${tail}`);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      },
    };
    return node;
  });
  // all at once: a node's JetStream is healthy only once the meta group has a quorum
  await Promise.all(nodes.map((n) => n.start()));
  return {
    nodes,
    natsUrls: nodes.map((n) => n.natsUrl),
    mqttUrls: nodes.map((n) => n.mqttUrl),
    stop: async () => {
      await Promise.all(nodes.map((n) => n.kill()));
    },
  };
}

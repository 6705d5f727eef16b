import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  cleanupAfterEach,
  haveBinary,
  haveFile,
  Receiver,
  sensor,
  spawnAgent,
  startAedesCloud,
  tmp,
  waitFor,
} from './helpers.js';

const cleanups = cleanupAfterEach();
const exe = (arch: string) => fileURLToPath(new URL(`../dist-exe/fleetwave-agent-linux-${arch}`, import.meta.url));
const BUILD = 'npm run build:agent (npm test builds it when the tools are there)';

/** A directory with nothing but the executable: no node_modules, no Node.js. */
function bare(arch: string): string {
  const dir = tmp(`exe-${arch}`);
  copyFileSync(exe(arch), join(dir, 'fleetwave-agent'));
  return join(dir, 'fleetwave-agent');
}

async function run(command: string[], cwd: string, uplink: string, dataDir: string, extra: string[] = []) {
  const a = await spawnAgent(
    ['--device-id', 'gw-exe', '--uplink-url', uplink, '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extra],
    { command, env: {}, cwd, readyTimeoutMs: 60_000 },
  );
  cleanups.push(() => a.kill('SIGKILL'));
  return a;
}

describe('the x64 single executable, from a directory without node_modules and an empty environment', () => {
  const present = haveFile(exe('x64'), BUILD);
  it.skipIf(!present)(
    'forwards every acknowledged reading from 10 sensors, gap-free, and survives kill -9',
    async () => {
      const file = bare('x64');
      const cwd = join(file, '..');
      const cloud = await startAedesCloud();
      cleanups.push(() => cloud.close());
      const rx = await Receiver.connect(cloud.url);
      cleanups.push(() => rx.close());
      const dataDir = join(cwd, 'data');
      let agent: AgentProcess = await run([file], cwd, cloud.url, dataDir);
      const sensors = await Promise.all(Array.from({ length: 10 }, (_, i) => sensor(agent.ingestUrl, `s${i}`)));
      await Promise.all(
        sensors.map((s, i) =>
          Promise.all(Array.from({ length: 100 }, (_, k) => s.send(`sensors/s${i}/temp`, i * 1000 + k))),
        ),
      );
      const acked = new Set(sensors.flatMap((s) => [...s.acked]));
      expect(acked.size).toBe(1000);
      await Promise.all(sensors.map((s) => s.client.endAsync()));
      // kill -9 at random instants while a sensor keeps sending: nothing acknowledged is lost
      let next = 100_000;
      for (let cycle = 0; cycle < 8; cycle++) {
        if (cycle > 0) agent = await run([file], cwd, cloud.url, dataDir);
        const s = await sensor(agent.ingestUrl, `k${cycle}`);
        s.client.on('error', () => {});
        let running = true;
        const loop = (async () => {
          while (running && s.client.connected) {
            const v = next++;
            if (
              await Promise.race([
                s.send('sensors/k/v', v),
                new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
              ])
            ) {
              acked.add(v);
            }
          }
        })();
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
        await agent.kill('SIGKILL');
        running = false;
        await loop;
        s.client.end(true);
      }
      agent = await run([file], cwd, cloud.url, dataDir);
      await waitFor(
        'every acknowledged reading upstream',
        () => {
          const got = new Set(rx.readings().map((r) => r.value));
          return [...acked].every((v) => got.has(v));
        },
        60_000,
      );
      expect(rx.gapFree()).toBe(true);
      expect(rx.conflicting).toBe(0);
      expect(existsSync(join(cwd, 'node_modules'))).toBe(false);
      expect(await agent.kill('SIGTERM')).toBe(0);
    },
    180_000,
  );
});

describe('the arm64 single executable under qemu-user', () => {
  const present = haveFile(exe('arm64'), BUILD) && haveBinary('qemu-aarch64-static');
  it.skipIf(!present)(
    'starts, opens its outbox, takes readings from a sensor and forwards them to a broker on the host',
    async () => {
      const file = bare('arm64');
      const cwd = join(file, '..');
      const cloud = await startAedesCloud();
      cleanups.push(() => cloud.close());
      const rx = await Receiver.connect(cloud.url);
      cleanups.push(() => rx.close());
      const agent = await run(
        ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', file],
        cwd,
        cloud.url,
        join(cwd, 'data'),
      );
      const s = await sensor(agent.ingestUrl, 'arm');
      await Promise.all(Array.from({ length: 100 }, (_, k) => s.send('sensors/arm/temp', k)));
      expect(s.acked.size).toBe(100);
      await waitFor('readings upstream', () => rx.readings().length >= 100, 60_000);
      expect(
        rx
          .readings()
          .map((r) => r.value)
          .sort((a, b) => a - b),
      ).toEqual(Array.from({ length: 100 }, (_, k) => k));
      expect(existsSync(join(cwd, 'data', 'outbox.db'))).toBe(true);
      await s.client.endAsync();
      expect(await agent.kill('SIGTERM')).toBe(0);
    },
    180_000,
  );
});

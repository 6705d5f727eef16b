import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
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

/**
 * 1,000 readings from 10 sensors, then kill -9 at random instants while a sensor keeps sending: nothing acknowledged
 * lost, gap-free, a clean exit at SIGTERM; run with `command` from `cwd`, a directory without node_modules.
 */
async function forwardsThroughKills(command: string[], cwd: string): Promise<void> {
  const cloud = await startAedesCloud();
  cleanups.push(() => cloud.close());
  const rx = await Receiver.connect(cloud.url);
  cleanups.push(() => rx.close());
  const dataDir = join(cwd, 'data');
  let agent: AgentProcess = await run(command, cwd, cloud.url, dataDir);
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
    if (cycle > 0) agent = await run(command, cwd, cloud.url, dataDir);
    const s = await sensor(agent.ingestUrl, `k${cycle}`);
    s.client.on('error', () => {});
    let running = true;
    const loop = (async () => {
      while (running && s.client.connected) {
        const v = next++;
        if (
          await Promise.race([s.send('sensors/k/v', v), new Promise<boolean>((r) => setTimeout(() => r(false), 500))])
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
  agent = await run(command, cwd, cloud.url, dataDir);
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
  const code = await agent.kill('SIGTERM');
  expect(code, `signal ${agent.proc.signalCode}; stderr: ${agent.stderr()}`).toBe(0);
}

describe('the x64 single executable, from a directory without node_modules and an empty environment', () => {
  const present = haveFile(exe('x64'), BUILD);
  it.skipIf(!present)(
    'forwards every acknowledged reading from 10 sensors, gap-free, and survives kill -9',
    async () => {
      const file = bare('x64');
      await forwardsThroughKills([file], join(file, '..'));
    },
    180_000,
  );

  it.skipIf(!present)(
    'runs under the V8 settings built into it, and NODE_OPTIONS adds to them',
    async () => {
      const file = bare('x64');
      const cloud = await startAedesCloud();
      cleanups.push(() => cloud.close());
      const runtimeOf = (a: AgentProcess) => {
        const line = a
          .stdout()
          .split('\n')
          .find((l) => l.includes('"event":"ready"'))!;
        return JSON.parse(line).runtime as { node: string; execArgv: string[]; heapLimitMb: number };
      };
      const plain = await run([file], join(file, '..'), cloud.url, join(file, '..', 'data'));
      expect(runtimeOf(plain)).toMatchObject({ node: 'v22.23.3', execArgv: ['--max-semi-space-size=1'] });
      expect(runtimeOf(plain).heapLimitMb).toBeGreaterThan(500); // V8's default for this machine's memory
      await plain.kill();
      const a = await spawnAgent(
        [
          '--device-id',
          'gw-exe',
          '--uplink-url',
          cloud.url,
          '--data-dir',
          join(file, '..', 'data'),
          '--listen',
          '127.0.0.1:0',
        ],
        { command: [file], env: { NODE_OPTIONS: '--max-old-space-size=200' }, readyTimeoutMs: 60_000 },
      );
      cleanups.push(() => a.kill('SIGKILL'));
      expect(runtimeOf(a).execArgv).toEqual(['--max-semi-space-size=1']);
      // the old generation's 200 MB and the young generation's three semi-spaces of 1 MB
      expect(runtimeOf(a).heapLimitMb).toBeGreaterThanOrEqual(200);
      expect(runtimeOf(a).heapLimitMb).toBeLessThan(210);
      expect(await a.kill()).toBe(0);
    },
    120_000,
  );
});

describe("the bundle (dist-bundle) under the host's own Node, from a directory with only the bundle and its addon", () => {
  const bundleFile = fileURLToPath(new URL('../dist-bundle/fleetwave-agent.cjs', import.meta.url));
  const addonName = `better_sqlite3-abi${process.versions.modules}-linux-${process.arch}.node`;
  const present = haveFile(bundleFile, BUILD);
  it.skipIf(!present)(
    'forwards every acknowledged reading from 10 sensors, gap-free, and survives kill -9',
    async () => {
      const dir = tmp('bundle');
      copyFileSync(bundleFile, join(dir, 'fleetwave-agent.cjs'));
      copyFileSync(join(bundleFile, '..', addonName), join(dir, addonName));
      await forwardsThroughKills([process.execPath, join(dir, 'fleetwave-agent.cjs')], dir);
    },
    180_000,
  );

  it.skipIf(!present)('says which Node it needs when its directory has no addon for this one', () => {
    const dir = tmp('bundle-no-addon');
    copyFileSync(bundleFile, join(dir, 'fleetwave-agent.cjs'));
    const r = spawnSync(process.execPath, [join(dir, 'fleetwave-agent.cjs'), '--version'], {
      encoding: 'utf8',
      env: {},
    });
    expect(r.status).toBe(70);
    expect(r.stderr).toMatch(/this bundle has no SQLite addon for Node v\d+.*run it with Node 20 or 22/);
  });
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

describe('installing the executable for systemd', () => {
  const present = haveFile(exe('x64'), BUILD);
  it.skipIf(!present)(
    'lays out versions/, bin/ and the config as the self-update expects, and runs from there',
    async () => {
      const prefix = tmp('install');
      const config = join(prefix, 'agent.yaml');
      writeFileSync(
        config,
        'device: { id: gw-inst }\ndataDir: /var/lib/fleetwave\nupdates: { agentRoot: /opt/fleetwave }\n',
      );
      const script = fileURLToPath(new URL('../agent/packaging/install.sh', import.meta.url));
      const r = spawnSync(
        'sh',
        [script, '--exe', exe('x64'), '--config', config, '--prefix', prefix, '--no-user', '--no-systemd'],
        {
          encoding: 'utf8',
        },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/installed fleetwave-agent 0\.1\.0/);
      const root = join(prefix, 'opt', 'fleetwave');
      expect(readlinkSync(join(root, 'bin', 'fleetwave-agent'))).toBe('../versions/0.1.0/fleetwave-agent');
      expect(readlinkSync(join(root, 'bin', 'fleetwave-agent.previous'))).toBe('../versions/0.1.0/fleetwave-agent');
      expect(readFileSync(join(prefix, 'etc', 'fleetwave', 'agent.yaml'), 'utf8')).toMatch(/gw-inst/);
      expect(existsSync(join(prefix, 'etc', 'systemd', 'system', 'fleetwave-agent.service'))).toBe(true);
      expect(spawnSync(join(root, 'bin', 'fleetwave-agent'), ['--version'], { encoding: 'utf8', env: {} }).stdout).toBe(
        '0.1.0\n',
      );
      // a bad config is refused by the install, with its location
      const bad = tmp('install-bad');
      writeFileSync(join(bad, 'agent.yaml'), 'device: { id: "no spaces allowed" }\n');
      const refused = spawnSync(
        'sh',
        [
          script,
          '--exe',
          exe('x64'),
          '--config',
          join(bad, 'agent.yaml'),
          '--prefix',
          bad,
          '--no-user',
          '--no-systemd',
        ],
        {
          encoding: 'utf8',
        },
      );
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(/agent\.yaml:1:\d+ device\.id/);
    },
  );

  it.skipIf(!present)('tells systemd it is ready and pings its watchdog (through systemd-notify)', async () => {
    const dir = tmp('notify');
    const log = join(dir, 'notify.log');
    writeFileSync(join(dir, 'systemd-notify'), `#!/bin/sh\necho "$@" >> ${log}\n`);
    chmodSync(join(dir, 'systemd-notify'), 0o755);
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const file = bare('x64');
    const a = await spawnAgent(
      ['--device-id', 'gw-n', '--uplink-url', cloud.url, '--data-dir', join(dir, 'data'), '--listen', '127.0.0.1:0'],
      {
        command: [file],
        env: { PATH: `${dir}:/usr/bin:/bin`, NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '2000000' },
        readyTimeoutMs: 60_000,
      },
    );
    cleanups.push(() => a.kill('SIGKILL'));
    await waitFor('READY and two watchdog pings', () => {
      const lines = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
      return lines.some((l) => l.endsWith('READY=1')) && lines.filter((l) => l.endsWith('WATCHDOG=1')).length >= 2;
    });
    expect(await a.kill('SIGTERM')).toBe(0);
    await waitFor('STOPPING', () => readFileSync(log, 'utf8').includes('STOPPING=1'));
    expect(readFileSync(log, 'utf8')).toMatch(new RegExp(`--pid=${a.proc.pid} READY=1`));
  });
});

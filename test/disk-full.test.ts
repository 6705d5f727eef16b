import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, freePort, Receiver, sensor, spawnAgent, startAedesCloud, tmp, waitFor } from './helpers.js';

const cleanups = cleanupAfterEach();

/**
 * A small file system of the test's own: a tmpfs where the test may mount one (root), else a loop-mounted ext4 image.
 * Where neither works the test says so and skips only itself (a failure under FLEETWAVE_REQUIRE_SERVICES=1).
 */
function smallDisk(bytes: number): { dir: string; how: string } | undefined {
  const dir = tmp('small-disk');
  const tried: string[] = [];
  const mount = (args: string[]) => spawnSync('mount', args, { encoding: 'utf8' });
  let r = mount(['-t', 'tmpfs', '-o', `size=${bytes},mode=0777`, 'tmpfs', dir]);
  if (r.status === 0) {
    cleanups.push(async () => spawnSync('umount', ['-l', dir]));
    return { dir, how: `tmpfs of ${bytes} bytes` };
  }
  tried.push(`tmpfs: ${r.stderr.trim()}`);
  const image = `${dir}.img`;
  try {
    execFileSync('truncate', ['-s', String(bytes), image]);
    execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
    r = mount(['-o', 'loop', image, dir]);
    if (r.status === 0) {
      cleanups.push(async () => {
        spawnSync('umount', ['-l', dir]);
        rmSync(image, { force: true });
      });
      return { dir, how: `loop-mounted ext4 image of ${bytes} bytes` };
    }
    tried.push(`loop: ${r.stderr.trim()}`);
  } catch (err) {
    tried.push(`loop: ${(err as Error).message}`);
  }
  const why = `cannot mount a small file system here (${tried.join('; ')})`;
  if (process.env.FLEETWAVE_REQUIRE_SERVICES === '1') throw new Error(`${why}; FLEETWAVE_REQUIRE_SERVICES=1`);
  console.warn(`${why}: skipping the full-disk test`);
  return undefined;
}

const free = (dir: string) => {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
};

/** Takes all but `leave` bytes of the file system with a file of its own (another process filling the disk). */
function ballast(dir: string, leave: number): string {
  const path = join(dir, 'ballast');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    while (free(dir) > leave + block.length) writeSync(fd, block);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * `minFreeBytes` 1 MiB: the agent sees the disk fill (statfs) before any write fails. 0: only failed writes
 * (SQLITE_FULL, ENOSPC) tell it, on a disk that is really full; the reserve released then is what lets the outbox
 * still delete and claim.
 */
describe.each([
  { how: 'low free space', minFree: 1_048_576 },
  { how: 'failed writes on a disk that is really full', minFree: 0 },
])('the agent on a full disk, told by $how', ({ minFree }) => {
  it('refuses readings once full, says so, starts while full after kill -9, drains every acknowledged reading, and resumes when space returns', {
    timeout: 240_000,
  }, async () => {
    const disk = smallDisk(16 * 1024 * 1024);
    if (!disk) return;
    console.log(`full-disk test on a ${disk.how}`);
    const dataDir = join(disk.dir, 'agent');
    mkdirSync(dataDir);
    const port = await freePort(); // the cloud is down: the backlog builds up on the gateway
    const configFile = join(tmp('full-cfg'), 'agent.yaml');
    writeFileSync(
      configFile,
      [
        'device: { id: gw-full }',
        `dataDir: ${dataDir}`,
        'ingest: { port: 0 }',
        `uplink: { url: 'mqtt://127.0.0.1:${port}', backoffMinMs: 100, backoffMaxMs: 300 }`,
        `outbox: { maxAckDelay: 5ms, minFreeBytes: ${minFree}, reserveBytes: 524288 }`,
        'health: { enabled: false }',
        '',
      ].join('\n'),
    );
    const start = () => spawnAgent(['--config', configFile, '--listen', '127.0.0.1:0', '--log-level', 'info']);
    let agent = await start();
    cleanups.push(() => agent.kill('SIGKILL'));
    // another process takes the disk: 512 KiB above the threshold stays free, then the agent's own readings fill it
    const weight = ballast(disk.dir, minFree + 512 * 1024 + 524_288);

    const acked = new Set<number>();
    let next = 0;
    let refusedAfterFull = 0;
    const fullLine = /the data directory is full/;
    const pump = async (until: () => boolean, limitMs: number) => {
      const deadline = Date.now() + limitMs;
      while (!until() && Date.now() < deadline) {
        const s = await sensor(agent.ingestUrl, `s-${next}`);
        s.client.on('error', () => {});
        // bursts of 200 readings in flight, values that do not repeat (they take space in the outbox)
        while (s.client.connected && !until() && Date.now() < deadline) {
          const vs = Array.from({ length: 200 }, () => next++);
          const oks = await Promise.all(
            vs.map((v) =>
              Promise.race([
                s.send('sensors/probe/v', v + 0.25 + Math.random() / 4),
                new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
              ]),
            ),
          );
          const full = fullLine.test(agent.stdout());
          vs.forEach((v, i) => {
            if (oks[i]) acked.add(v);
            else if (full) refusedAfterFull++;
          });
        }
        s.client.end(true);
      }
    };
    // sensors publish until the agent says the disk is full, then a little longer: those are refused
    await pump(() => fullLine.test(agent.stdout()), 150_000);
    expect(agent.stdout()).toMatch(fullLine);
    const warn = agent
      .stdout()
      .split('\n')
      .find((l) => fullLine.test(l))!;
    expect(JSON.parse(warn).why).toMatch(minFree === 0 ? /failed: .*(full|space)/i : /is below/);
    expect(JSON.parse(warn)).toMatchObject({
      level: 40,
      freeBytes: expect.any(Number),
      outboxBytes: expect.any(Number),
    });
    await pump(() => refusedAfterFull >= 3, 30_000);
    expect(refusedAfterFull).toBeGreaterThanOrEqual(3);
    expect(agent.stdout()).toMatch(/"code":"E_STORAGE_FULL"/); // the sensor's refusal, logged once at info
    const ackedWhileFull = acked.size;
    expect(ackedWhileFull).toBeGreaterThan(1000); // what the disk took before it filled

    // kill -9 while full, and start again: it must start (in the full state) and not crash
    await agent.kill('SIGKILL');
    agent = await start();
    await pump(() => false, 1500); // still refused
    expect(acked.size).toBe(ackedWhileFull);

    // the cloud comes back: everything acknowledged arrives, gap-free, while the disk is still full
    const cloud = await startAedesCloud(port);
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const allUpstream = () => {
      const got = new Set(rx.readings().map((r) => Math.floor(r.value)));
      return [...acked].every((v) => got.has(v));
    };
    await waitFor('every acknowledged reading upstream', allUpstream, 120_000);
    expect(rx.gapFree()).toBe(true);
    expect(rx.conflicting).toBe(0);

    // space returns: ingest resumes by itself
    rmSync(weight);
    await waitFor('the agent to say it has room again', () => /has room again/.test(agent.stdout()), 30_000);
    const before = acked.size;
    await pump(() => acked.size >= before + 50, 30_000);
    expect(acked.size).toBeGreaterThanOrEqual(before + 50);
    await waitFor('the new readings upstream', allUpstream, 60_000);
    expect(rx.gapFree()).toBe(true);
    await agent.kill('SIGTERM');
  });
});

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, freePort, Receiver, sensor, spawnAgent, startAedesCloud, tmp, waitFor } from './helpers.js';

const cleanups = cleanupAfterEach();
const FIXTURE = fileURLToPath(new URL('./fixtures/outbox-v1.db', import.meta.url));

describe('the outbox in chunks (child processes, real brokers)', () => {
  it('an agent upgraded in place sends everything a v1 outbox file held, keeping its sequence numbers and filter state', async () => {
    // test/fixtures/outbox-v1.db was written by the previous outbox (rows + JSON batches; make-outbox-v1.mjs):
    // batches 1..50 and 51..100 formed and never acknowledged, 56 readings waiting, a deadband state for dead/c
    const dir = tmp('migrate');
    mkdirSync(join(dir, 'data'));
    copyFileSync(FIXTURE, join(dir, 'data', 'outbox.db'));
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    // the same deadband rule the fixture's filter state belongs to
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `device: { id: gw-v1 }\ndataDir: ${dir}/data\ningest: { port: 0 }\nuplink: { url: '${cloud.url}' }\n` +
        `outbox: { maxAckDelay: 5ms }\nfilters:\n  - { match: 'dead/**', deadband: { absolute: 0.5 } }\n`,
    );
    const agent = await spawnAgent(['--config', config]);
    cleanups.push(() => agent.kill('SIGKILL'));
    const fixtureStreams = (r: { stream: string }) => !r.stream.startsWith('_health/');
    await waitFor('the 156 held records upstream', () => rx.readings().filter(fixtureStreams).length >= 156);
    const got = rx.readings().filter(fixtureStreams);
    // the two formed batches keep their sequence numbers 1..100; the waiting readings get theirs when claimed (the
    // agent's own health readings, of a higher priority, may come first), all of it gap-free
    expect(got.filter((r) => r.seq <= 100).map((r) => r.stream)).toEqual(Array(100).fill('temp/a'));
    expect(new Set(got.map((r) => r.seq)).size).toBe(156);
    expect(rx.gapFree()).toBe(true);
    const values = (stream: string) =>
      got
        .filter((r) => r.stream === stream)
        .sort((a, b) => a.seq - b.seq)
        .map((r) => r.value);
    expect(values('temp/a')).toEqual(Array.from({ length: 120 }, (_, i) => 20 + i / 8));
    expect(values('vib/x')).toEqual(Array.from({ length: 30 }, (_, i) => i * 0.001));
    expect(values('temp/b')).toEqual([99.5]);
    expect(values('dead/c')).toEqual([0, 1, 2, 3, 4]);
    // the units and qualities came through as they were stored
    const rec = (seq: number) => rx.bySeq.get(seq);
    expect(rec(1)).toMatchObject({ kind: 'reading', stream: 'temp/a', unit: 'C', ts: 1_764_000_000_000 });
    expect([...rx.bySeq.values()].filter((r) => r.kind === 'reading' && r.quality === 'uncertain')).toHaveLength(5);
    expect(rx.conflicting).toBe(0);
    // the deadband goes on from the state the old outbox kept (last reported 4): 4.2 is dropped, 5 is sent
    const s = await sensor(agent.ingestUrl, 'after-upgrade');
    await s.send('sensors/dead/c', 4.2);
    await s.send('sensors/dead/c', 5);
    await waitFor('the new dead/c reading', () => rx.readings().some((r) => r.stream === 'dead/c' && r.value === 5));
    const dead = rx
      .readings()
      .filter((r) => r.stream === 'dead/c')
      .map((r) => r.value);
    expect(dead.sort()).toEqual([0, 1, 2, 3, 4, 5]);
    await s.client.endAsync();
    await agent.kill('SIGTERM');
  }, 120_000);

  it('never half-sends or half-deletes a chunk across kill -9 during a large drain, and loses nothing', async () => {
    const port = await freePort(); // the cloud is down while the backlog builds up
    const dataDir = tmp('chunk-kill');
    // small chunks (maxGroup 50) and one batch in flight: the drain takes long enough to be killed in many places
    const config = join(dataDir, 'agent.yaml');
    writeFileSync(
      config,
      `device: { id: gw-k }\ndataDir: ${dataDir}/data\ningest: { port: 0 }\n` +
        `uplink: { url: 'mqtt://127.0.0.1:${port}', inflightWindow: 1, backoffMinMs: 50, backoffMaxMs: 200 }\n` +
        'outbox: { maxAckDelay: 50ms, maxGroup: 50 }\n',
    );
    const args = ['--config', config];
    const first = await spawnAgent(args);
    cleanups.push(() => first.kill('SIGKILL'));
    const s = await sensor(first.ingestUrl, 'backlog');
    const N = 20_000;
    // many in flight at once, as a busy sensor would: chunks of up to 1,000 readings (maxGroup)
    await Promise.all(Array.from({ length: N }, (_, k) => s.send(`sensors/s${k % 20}/v`, k)));
    expect(s.acked.size).toBe(N);
    await s.client.endAsync();
    await first.kill('SIGKILL');
    const cloud = await startAedesCloud(port);
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const kills: number[] = [];
    for (let k = 0; k < 15 && rx.readings().length < N; k++) {
      const agent = await spawnAgent([...args, '--log-level', 'silent']);
      cleanups.push(() => agent.kill('SIGKILL'));
      // kill after a random share of what is left has arrived: while forming, sending or deleting chunks
      const target = rx.readings().length + Math.floor(Math.random() * 1500);
      await waitFor('some of the drain', () => rx.readings().length >= Math.min(target, N), 60_000);
      kills.push(rx.readings().length);
      await agent.kill('SIGKILL');
    }
    const last = await spawnAgent(args);
    cleanups.push(() => last.kill('SIGKILL'));
    await waitFor('every acknowledged reading upstream', () => rx.readings().length >= N, 60_000);
    const values = new Set(rx.readings().map((r) => r.value));
    expect([...s.acked].every((v) => values.has(v))).toBe(true);
    expect(rx.readings()).toHaveLength(N);
    expect(rx.gapFree()).toBe(true);
    // a re-sent chunk carries the same records under the same sequence numbers
    expect(rx.conflicting).toBe(0);
    console.log(`chunk kill test: ${kills.length} kills at ${kills.join(', ')} readings; ${rx.duplicates} duplicates`);
    await last.kill('SIGTERM');
  }, 240_000);
});

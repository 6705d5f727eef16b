import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  cleanupAfterEach,
  freePort,
  haveBinary,
  Receiver,
  sensor,
  spawnAgent,
  startAedesCloud,
  startMosquitto,
  tmp,
  waitFor,
} from './helpers.js';

const cleanups = cleanupAfterEach();

async function agentFor(uplinkUrl: string, dataDir: string, extra: string[] = []): Promise<AgentProcess> {
  const a = await spawnAgent([
    '--device-id',
    'gw-1',
    '--uplink-url',
    uplinkUrl,
    '--data-dir',
    dataDir,
    '--listen',
    '127.0.0.1:0',
    ...extra,
  ]);
  cleanups.push(() => a.kill('SIGKILL'));
  return a;
}

describe('agent end to end (child process, real brokers)', () => {
  it('forwards every acknowledged reading from 10 sensors to an aedes cloud, gap-free, and stops cleanly on SIGTERM', async () => {
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const agent = await agentFor(cloud.url, tmp('e2e'));
    const sensors = await Promise.all(Array.from({ length: 10 }, (_, i) => sensor(agent.ingestUrl, `s${i}`)));
    await Promise.all(
      sensors.map((s, i) =>
        Promise.all(Array.from({ length: 100 }, (_, k) => s.send(`sensors/s${i}/temp`, i * 1000 + k))),
      ),
    );
    const acked = sensors.flatMap((s) => [...s.acked]);
    expect(acked).toHaveLength(1000);
    await waitFor('all readings upstream', () => rx.readings().length >= 1000);
    expect(
      rx
        .readings()
        .map((r) => r.value)
        .sort((a, b) => a - b),
    ).toEqual(acked.sort((a, b) => a - b));
    expect(rx.gapFree()).toBe(true);
    // per stream, order is kept
    for (let i = 0; i < 10; i++) {
      const vals = rx
        .readings()
        .filter((r) => r.stream === `s${i}/temp`)
        .sort((a, b) => a.seq - b.seq)
        .map((r) => r.value);
      expect(vals).toEqual([...vals].sort((a, b) => a - b));
    }
    await Promise.all(sensors.map((s) => s.client.endAsync()));
    expect(await agent.kill('SIGTERM')).toBe(0);
  });

  const mosquitto = haveBinary('mosquitto');
  it.skipIf(!mosquitto)(
    'keeps ingesting through a Mosquitto outage and drains the backlog completely and in order',
    async () => {
      const broker = await startMosquitto();
      cleanups.push(() => broker.stop());
      const rx = await Receiver.connect(broker.url);
      cleanups.push(() => rx.close());
      const dataDir = tmp('outage');
      const config = join(dataDir, 'agent.yaml');
      writeFileSync(config, 'device: { id: gw-1 }\nuplink: { backoffMinMs: 100, backoffMaxMs: 1000 }\n');
      const agent = await agentFor(broker.url, dataDir, ['--config', config]);
      const s = await sensor(agent.ingestUrl, 'sensor-a');
      const sendRange = async (from: number, to: number) => {
        for (let k = from; k < to; k += 100) {
          await Promise.all(Array.from({ length: Math.min(100, to - k) }, (_, i) => s.send('sensors/a/temp', k + i)));
        }
      };
      await sendRange(0, 200);
      await waitFor('first part upstream', () => rx.readings().length >= 200);
      await broker.stop();
      await sendRange(200, 2200); // ingest goes on while the cloud is gone
      expect(s.acked.size).toBe(2200);
      await broker.start();
      await waitFor('backlog drained', () => rx.readings().length >= 2200, 40_000);
      const values = rx
        .readings()
        .sort((a, b) => a.seq - b.seq)
        .map((r) => r.value);
      expect(values).toEqual(Array.from({ length: 2200 }, (_, k) => k));
      expect(rx.gapFree()).toBe(true);
      expect(rx.conflicting).toBe(0);
      await s.client.endAsync();
    },
  );

  it('loses no acknowledged reading across 50 SIGKILLs during ingest and drain', async () => {
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const dataDir = tmp('crash');
    const acked = new Set<number>();
    let next = 0;
    const started = Date.now();
    for (let cycle = 0; cycle < 50; cycle++) {
      // sensors wait for each PUBACK; a short maxAckDelay commits (and so kills) at many instants per cycle
      const agent = await agentFor(cloud.url, dataDir, ['--log-level', 'silent', '--max-ack-delay', '5ms']);
      const sensors = await Promise.all([0, 1, 2].map((i) => sensor(agent.ingestUrl, `c${cycle}-${i}`)));
      for (const s of sensors) s.client.on('error', () => {});
      let running = true;
      const loops = sensors.map(async (s, i) => {
        while (running && s.client.connected) {
          const v = next++;
          const ok = await Promise.race([
            s.send(`sensors/c${i}/v`, v),
            new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
          ]);
          if (ok) acked.add(v);
        }
      });
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 180)); // a random instant
      await agent.kill('SIGKILL');
      running = false;
      await Promise.all(loops);
      for (const s of sensors) s.client.end(true);
    }
    console.log(`crash test: 50 kills in ${Date.now() - started} ms, ${acked.size} readings acknowledged`);
    expect(acked.size).toBeGreaterThan(500);
    const last = await agentFor(cloud.url, dataDir);
    await waitFor(
      'every acknowledged reading upstream',
      () => {
        const got = new Set(rx.readings().map((r) => r.value));
        return [...acked].every((v) => got.has(v));
      },
      30_000,
    );
    expect(rx.gapFree()).toBe(true);
    expect(rx.conflicting).toBe(0); // duplicates are only identical re-sends of batches in flight
    await last.kill('SIGTERM');
  }, 180_000);

  it('drops the oldest bulk readings at the cap and expires by time-to-live, with loss records arriving upstream', async () => {
    const port = await freePort(); // nothing listens yet: the backlog builds up
    const dir = tmp('cap');
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `device: { id: gw-cap }
dataDir: ${dir}/data
ingest:
  port: 0
  streams:
    - { pattern: 'bulk/{s}', stream: 'bulk/{s}', priority: bulk }
    - { pattern: 'short/{s}', stream: 'short/{s}', priority: telemetry, ttl: 300ms }
outbox: { capBytes: 65536, fullPolicy: drop-oldest, commitWindowMs: 2 }
uplink: { url: 'mqtt://127.0.0.1:${port}', backlogInterval: 1s, backoffMinMs: 100, backoffMaxMs: 300 }
`,
    );
    const agent = await spawnAgent(['--config', config]);
    cleanups.push(() => agent.kill('SIGKILL'));
    const s = await sensor(agent.ingestUrl, 'bulky');
    await s.send('short/x', -1);
    for (let k = 0; k < 1500; k++) await s.send('bulk/x', k);
    const statusFile = join(dir, 'data', 'status.json');
    await waitFor(
      'ttl expiry counted',
      () => existsSync(statusFile) && JSON.parse(readFileSync(statusFile, 'utf8')).dropped.ttl === 1,
    );
    const cloud = await startAedesCloud(port);
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const losses = () => [...rx.bySeq.values()].flatMap((r) => (r.kind === 'loss' ? [r] : []));
    await waitFor('drained with loss records', () => {
      const lost = losses().reduce((n, l) => n + l.count, 0);
      return rx.readings().length + lost >= 1501;
    });
    const cap = losses().filter((l) => l.reason === 'cap');
    const ttl = losses().filter((l) => l.reason === 'ttl');
    expect(ttl).toMatchObject([{ stream: 'short/x', count: 1 }]);
    expect(cap.length).toBeGreaterThan(0);
    const kept = rx
      .readings()
      .filter((r) => r.stream === 'bulk/x')
      .map((r) => r.value);
    // the oldest went first: what was kept is the newest, contiguous tail
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 1500 - kept.length + i));
    expect(cap.reduce((n, l) => n + l.count, 0)).toBe(1500 - kept.length);
    await s.client.endAsync();
  });

  it('refuses bad readings with a reason, never acknowledging them, and changes nothing else', async () => {
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const dataDir = tmp('bad');
    const agent = await agentFor(cloud.url, dataDir, ['--log-level', 'silent']);
    const good = await sensor(agent.ingestUrl, 'good');
    await good.send('sensors/a/t', 1);
    const bad: [string, string | Buffer][] = [
      ['sensors/a/t', 'hot'],
      ['sensors/a/t', 'x'.repeat(2000)],
      ['unknown/topic', '1'],
      ['sensors/a/t', '{"value":1,"ts":1}'],
      ['sensors/a/t', Buffer.from([0xff, 0xfe])],
    ];
    for (const [topic, payload] of bad) {
      const s = await sensor(agent.ingestUrl, 'bad-qos0');
      s.client.publish(topic, payload, { qos: 0 });
      const s1 = await sensor(agent.ingestUrl, 'bad-qos1');
      const closed = new Promise<void>((r) => s1.client.once('close', () => r()));
      let acked = false;
      s1.client.publish(topic, payload, { qos: 1 }, (err) => (acked = !err));
      await closed; // MQTT 3.1.1 has no negative PUBACK: the listener closes the connection instead
      expect(acked).toBe(false);
      await s.client.endAsync();
    }
    await good.send('sensors/a/t', 2);
    await waitFor('good readings upstream', () => rx.readings().length >= 2);
    expect(rx.readings().map((r) => r.value)).toEqual([1, 2]);
    await good.client.endAsync();
    expect(await agent.kill('SIGTERM')).toBe(0);
    const status = JSON.parse(readFileSync(join(dataDir, 'status.json'), 'utf8'));
    expect(status.accepted).toBe(2);
    expect(status.refused).toEqual({
      E_PAYLOAD_JSON: 2,
      E_PAYLOAD_TOO_LARGE: 2,
      E_TOPIC_UNMAPPED: 2,
      E_READING_TIMESTAMP: 2,
      E_PAYLOAD_ENCODING: 2,
    });
  });

  it('connects again when the broker refuses its subscription (SUBACK 0x80), says why, and then subscribes', async () => {
    // e.g. a NATS node whose JetStream is electing a leader cannot set up a QoS 1 subscription for some seconds
    const cloud = await startAedesCloud(0, { refuseSubscriptions: { client: 'gw-1', times: 2 } });
    cleanups.push(() => cloud.close());
    const agent = await agentFor(cloud.url, tmp('suback'));
    await waitFor('the subscription taken on a later connection', () => cloud.subscribed().length > 0, 30_000);
    expect(cloud.subscribed()).toEqual(['fleetwave/devices/gw-1/config/desired']);
    expect(cloud.connects()).toBeGreaterThanOrEqual(3);
    expect(agent.stderr() + agent.stdout()).toMatch(/the broker refused a subscription/);
  });

  it('keeps running and forwarding when a side duty fails (status file not writable), and says so at warn', async () => {
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const dir = tmp('side-duty');
    const config = join(dir, 'agent.yaml');
    // status.json.tmp is a directory: every write of the status file fails (EISDIR), as on a full disk
    mkdirSync(join(dir, 'data', 'status.json.tmp'), { recursive: true });
    writeFileSync(
      config,
      `device: { id: gw-side }\ndataDir: ${dir}/data\ningest: { port: 0 }\n` +
        `uplink: { url: '${cloud.url}', backlogInterval: 200ms }\noutbox: { maxAckDelay: 5ms }\n`,
    );
    const agent = await spawnAgent(['--config', config]);
    cleanups.push(() => agent.kill('SIGKILL'));
    await waitFor('the warn line naming the duty', () => /side duty failed/.test(agent.stdout()));
    const warns = agent
      .stdout()
      .split('\n')
      .filter((l) => l.includes('side duty failed'));
    expect(JSON.parse(warns[0]!)).toMatchObject({ duty: 'backlog report and status file' });
    const s = await sensor(agent.ingestUrl, 'after-fault');
    for (let k = 0; k < 5; k++) expect(await s.send('sensors/x/v', k)).toBe(true);
    await waitFor('readings upstream', () => rx.readings().length === 5);
    // retried at every interval, but said once while the failure stays the same
    await new Promise((r) => setTimeout(r, 1000));
    expect(
      agent
        .stdout()
        .split('\n')
        .filter((l) => l.includes('side duty failed')),
    ).toHaveLength(1);
    expect(agent.proc.exitCode).toBeNull();
    await s.client.endAsync();
    await agent.kill('SIGTERM');
  }, 60_000);

  it('refuses a bad config file with the line and field, and starts nothing', async () => {
    const dir = tmp('badcfg');
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, `device:\n  id: gw-1\ndataDir: ${dir}/data\noutbox:\n  fullPolicy: maybe\n`);
    await expect(spawnAgent(['--config', file])).rejects.toThrow(/agent\.yaml:5:15 outbox\.fullPolicy/);
    expect(existsSync(join(dir, 'data'))).toBe(false);
    await expect(spawnAgent(['--uplink-url', 'mqtt://x'])).rejects.toThrow(/no device id/);
  });
});

describe('agent health (child process)', () => {
  it('reports its health as _health streams through the outbox, and tells a crash from a clean stop', async () => {
    const cloud = await startAedesCloud();
    const cleanupsHere = [() => cloud.close()];
    const rx = await Receiver.connect(cloud.url);
    const dir = tmp('health');
    const config = join(dir, 'agent.yaml');
    const root = fileURLToPath(new URL('../agent/src/health/fixtures/rpi4/', import.meta.url));
    writeFileSync(
      config,
      `device: { id: gw-h }\ndataDir: ${dir}/data\ningest: { port: 0 }\nuplink: { url: '${cloud.url}' }\nhealth: { root: '${root}', interval: 1h }\n`,
    );
    const healthTopic = await mqtt.connectAsync(cloud.url, { clientId: 'health-watcher' });
    const reports: { restartReason?: string }[] = [];
    healthTopic.on('message', (_t, p) => reports.push(JSON.parse(p.toString())));
    await healthTopic.subscribeAsync('fleetwave/devices/gw-h/health', { qos: 1 });
    cleanupsHere.push(() => healthTopic.endAsync());
    try {
      const reasons = async (n: number) => {
        await waitFor(
          `${n} health samples`,
          () => rx.health().filter((h) => h.stream === '_health/cpuTempC').length >= n,
        );
      };
      let agent = await spawnAgent(['--config', config]);
      await reasons(1);
      expect(rx.health()).toContainEqual({ stream: '_health/cpuTempC', value: 58.4 });
      expect(rx.health()).toContainEqual({ stream: '_health/throttled.underVoltage', value: 1 });
      // the recorded tree's voltage monitor raises its alarm: one under-voltage episode
      expect(rx.health()).toContainEqual({ stream: '_health/underVoltageEvents', value: 1 });
      await agent.kill('SIGKILL'); // a crash: the marker says unclean, same boot id
      agent = await spawnAgent(['--config', config]);
      await reasons(2);
      await agent.kill('SIGTERM');
      agent = await spawnAgent(['--config', config]);
      await reasons(3);
      await agent.kill('SIGKILL');
      const restarts = rx
        .health()
        .filter((h) => h.stream === '_health/agentRestarts')
        .map((h) => h.value);
      expect(restarts).toEqual([0, 1, 2]);
      // each run publishes its report on the health topic once its uplink is up
      await waitFor('health reports of the three runs', () => new Set(reports.map((r) => r.restartReason)).size >= 3);
      expect(new Set(reports.map((r) => r.restartReason))).toEqual(new Set(['first-boot', 'crash', 'clean']));
      expect(rx.gapFree()).toBe(true);
    } finally {
      await rx.close();
      for (const c of cleanupsHere) await c();
    }
  });
});

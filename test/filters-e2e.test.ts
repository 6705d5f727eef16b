import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deviceTopic, ReportedConfig } from '@fleetwave/shared';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, Receiver, sensor, spawnAgent, startAedesCloud, tmp, waitFor } from './helpers.js';

const cleanups = cleanupAfterEach();

const DEVIATION = 0.5;
const BAND = 1;

describe('edge filters end to end (child process)', () => {
  it('never loses a held point nor emits one twice across 20 SIGKILLs, and keeps each guarantee', async () => {
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const dir = tmp('filters-crash');
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `device: { id: gw-f }
dataDir: ${dir}/data
ingest: { port: 0 }
uplink: { backlogInterval: 1s }
outbox: { maxAckDelay: 5ms } # the sensor waits for each PUBACK: commit at once
filters:
  - { match: 'sdt/*', swingingDoor: { deviation: ${DEVIATION}, maxInterval: 1h } }
  - { match: 'db/*', deadband: { absolute: ${BAND} } }
`,
    );
    const base = Date.now() - 3_600_000;
    const acked: Record<string, { ts: number; value: number }[]> = { 'sdt/x': [], 'db/x': [] };
    let k = 0;
    for (let cycle = 0; cycle < 20; cycle++) {
      const agent = await spawnAgent(['--config', config, '--uplink-url', cloud.url, '--log-level', 'silent']);
      cleanups.push(() => agent.kill('SIGKILL'));
      const s = await sensor(agent.ingestUrl, `f${cycle}`);
      s.client.on('error', () => {});
      let running = true;
      const loop = (async () => {
        while (running && s.client.connected) {
          const i = k++;
          const ts = base + i * 100;
          const value = Math.round((Math.sin(i / 15) * 10 + Math.sin(i * 7.3)) * 1000) / 1000;
          const payloads = (['sdt/x', 'db/x'] as const).map(
            (stream) =>
              new Promise<void>((resolve) => {
                s.client.publish(`sensors/${stream}`, JSON.stringify({ value, ts }), { qos: 1 }, (err) => {
                  if (!err) acked[stream]!.push({ ts, value });
                  resolve();
                });
                setTimeout(resolve, 500);
              }),
          );
          await Promise.all(payloads);
        }
      })();
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 150));
      await agent.kill('SIGKILL');
      running = false;
      await loop;
      s.client.end(true);
    }
    const last = await spawnAgent(['--config', config, '--uplink-url', cloud.url, '--log-level', 'silent']);
    cleanups.push(() => last.kill('SIGKILL'));
    const out = (stream: string) =>
      rx
        .readings()
        .filter((r) => r.stream === stream)
        .sort((a, b) => a.seq - b.seq);
    const lastAcked = (stream: string) => acked[stream]!.at(-1)!.ts;
    // everything the filters decided before the last kill reaches the cloud
    const startedAt = Date.now();
    await waitFor('outbox drained', () => {
      const file = join(dir, 'data', 'status.json');
      if (!existsSync(file)) return false;
      const s = JSON.parse(readFileSync(file, 'utf8'));
      return s.ts > startedAt && s.depth === 0;
    });
    await waitFor('filtered output upstream', () => out('sdt/x').length > 2 && out('db/x').length > 2);
    await new Promise((r) => setTimeout(r, 500));
    expect(acked['sdt/x']!.length).toBeGreaterThan(100);

    // the raw readings carry ts; the filters' output is keyed by (stream, ts): nothing emitted twice
    const tsOf = new Map<number, number>(); // seq → ts, from the raw records
    for (const r of rx.bySeq.values()) if (r.kind === 'reading') tsOf.set(r.seq, r.ts);
    for (const stream of ['sdt/x', 'db/x']) {
      const ts = out(stream).map((r) => tsOf.get(r.seq)!);
      expect(new Set(ts).size, `${stream} emitted a point twice`).toBe(ts.length);
      expect(ts).toEqual([...ts].sort((a, b) => a - b));
    }
    // swinging door: every acknowledged reading between archived points is within the deviation of their line
    const archived = out('sdt/x').map((r) => ({ ts: tsOf.get(r.seq)!, value: r.value }));
    let j = 0;
    let checked = 0;
    for (const p of acked['sdt/x']!) {
      while (j + 1 < archived.length && archived[j + 1]!.ts < p.ts) j++;
      const a = archived[j]!;
      const b = archived[j + 1];
      if (!b || p.ts <= a.ts || p.ts === b.ts) continue;
      const line = a.value + ((b.value - a.value) * (p.ts - a.ts)) / (b.ts - a.ts);
      expect(Math.abs(p.value - line)).toBeLessThanOrEqual(DEVIATION + 1e-9);
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
    // deadband: every acknowledged reading is within the band of the last reported value before it
    const reported = out('db/x').map((r) => ({ ts: tsOf.get(r.seq)!, value: r.value }));
    let m = 0;
    for (const p of acked['db/x']!) {
      if (p.ts < reported[0]!.ts || p.ts > lastAcked('db/x')) continue;
      while (m + 1 < reported.length && reported[m + 1]!.ts <= p.ts) m++;
      expect(Math.abs(p.value - reported[m]!.value)).toBeLessThanOrEqual(BAND * (1 + 1e-9) + 1e-9);
    }
    expect(rx.gapFree()).toBe(true);
  }, 120_000);

  it('applies a desired config from the cloud atomically, reports it, and rejects a bad one keeping the old rules', async () => {
    const cloud = await startAedesCloud();
    cleanups.push(() => cloud.close());
    const rx = await Receiver.connect(cloud.url);
    cleanups.push(() => rx.close());
    const ctl = await mqtt.connectAsync(cloud.url, { clientId: 'controller-test' });
    cleanups.push(() => ctl.endAsync(true));
    const reports: ReportedConfig[] = [];
    ctl.on('message', (_t, p) => reports.push(ReportedConfig.parse(JSON.parse(p.toString()))));
    await ctl.subscribeAsync(deviceTopic('fleetwave', 'gw-d', 'config/reported'), { qos: 1 });
    const desired = (doc: unknown) =>
      ctl.publishAsync(deviceTopic('fleetwave', 'gw-d', 'config/desired'), JSON.stringify(doc), {
        qos: 1,
        retain: true,
      });
    await desired({
      v: 1,
      device: 'gw-d',
      version: 2,
      config: { filters: [{ match: '**', deadband: { absolute: 5 } }] },
    });
    const dataDir = tmp('desired');
    const start = () =>
      spawnAgent(['--device-id', 'gw-d', '--uplink-url', cloud.url, '--data-dir', dataDir, '--listen', '127.0.0.1:0']);
    const agent = await start();
    cleanups.push(() => agent.kill('SIGKILL'));
    await waitFor('v2 applied', () => reports.some((r) => r.version === 2 && r.status === 'applied'));
    const s = await sensor(agent.ingestUrl, 'sd');
    for (const v of [0, 1, 2, 10, 11, 3]) await s.send('sensors/a/t', v);
    await waitFor('filtered readings', () => rx.readings().length >= 3);
    expect(rx.readings().map((r) => r.value)).toEqual([0, 10, 3]);

    await desired({
      v: 1,
      device: 'gw-d',
      version: 3,
      config: { filters: [{ match: '**', deadband: { absolute: -1 } }] },
    });
    await waitFor('v3 rejected', () => reports.some((r) => r.version === 3 && r.status === 'rejected'));
    expect(reports.find((r) => r.version === 3)!.reason).toMatch(/deadband/);
    await desired({ v: 1, device: 'gw-other', version: 4, config: {} });
    await waitFor('v4 rejected', () => reports.some((r) => r.version === 4 && r.status === 'rejected'));
    await s.send('sensors/a/t', 4); // within 5 of 3: the v2 rules still run
    await s.send('sensors/a/t', 20);
    await waitFor('next reading', () => rx.readings().length >= 4);
    expect(rx.readings().map((r) => r.value)).toEqual([0, 10, 3, 20]);
    await s.client.endAsync();
    expect(await agent.kill('SIGTERM')).toBe(0);
    expect(JSON.parse(readFileSync(join(dataDir, 'status.json'), 'utf8')).filtersVersion).toBe(2);
    // after a restart the applied rules and version are still in force (the retained v4 is refused again)
    const again = await start();
    cleanups.push(() => again.kill('SIGKILL'));
    await waitFor('retained v4 refused again', () => reports.filter((r) => r.version === 4).length >= 2);
    expect(await again.kill('SIGTERM')).toBe(0);
    expect(JSON.parse(readFileSync(join(dataDir, 'status.json'), 'utf8')).filtersVersion).toBe(2);
  });
});

import { join } from 'node:path';
import { type CleanRecord, CleanTelemetry, topicFilters } from '@fleetwave/shared';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  api,
  cleanupAfterEach,
  enrolDevice,
  freePort,
  sensor,
  spawnAgent,
  spawnController,
  tmp,
  waitFor,
} from './helpers.js';

const cleanups = cleanupAfterEach();

/** A backend on the HTTP stream: NDJSON from a cursor; restartable; keeps what it got. */
function httpBackend(getBase: () => string, token: string) {
  const got: CleanRecord[] = [];
  let abort: AbortController | undefined;
  let running: Promise<void> | undefined;
  const start = () => {
    abort = new AbortController();
    const after = got.at(-1)?.cursor ?? 0;
    const signal = abort.signal;
    running = (async () => {
      for (;;) {
        try {
          const res = await fetch(`${getBase()}/api/telemetry/stream?after=${got.at(-1)?.cursor ?? after}`, {
            headers: { authorization: `Bearer ${token}` },
            signal,
          });
          let buf = '';
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            buf += Buffer.from(chunk).toString('utf8');
            let nl = buf.indexOf('\n');
            while (nl >= 0) {
              const rec: CleanRecord = JSON.parse(buf.slice(0, nl));
              if (!rec.record.stream.startsWith('_health/')) got.push(rec); // the sensors' records only
              buf = buf.slice(nl + 1);
              nl = buf.indexOf('\n');
            }
          }
        } catch {
          if (signal.aborted) return;
        }
        if (signal.aborted) return;
        await new Promise((r) => setTimeout(r, 200)); // the controller went away: resume from the last cursor
      }
    })();
  };
  return {
    got,
    start,
    async stop() {
      abort?.abort();
      await running;
    },
  };
}

describe('controller end to end (child processes, embedded broker)', () => {
  it('hands every reading to backends once and in order, across a controller crash and backend restarts', async () => {
    const dir = tmp('ctl-e2e');
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const args = ['--mqtt-port', String(mqttPort), '--http-port', String(httpPort)];
    let ctl = await spawnController(join(dir, 'ctl'), args);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
    const { config } = await enrolDevice(ctl, 'gw-e2e', dir, mqttUrl, { site: 'test' });
    const backendToken = (await api(ctl.url, ctl.adminToken, 'POST', '/api/tokens', { name: 'lake', role: 'backend' }))
      .body.token;
    // the test's sensor waits for each PUBACK: commit after 5 ms rather than the default 1 s
    const agent = await spawnAgent(['--config', config, '--max-ack-delay', '5ms']);
    cleanups.push(() => agent.kill('SIGKILL'));

    const http = httpBackend(() => ctl.url, backendToken);
    http.start();
    cleanups.push(() => http.stop());
    const viaMqtt: CleanRecord[] = [];
    // the message handler is attached before CONNECT: a persistent session delivers its queue right after CONNACK
    const mqttBackend = async () => {
      const c = mqtt.connect(mqttUrl, {
        clientId: 'backend-lake',
        username: 'backend',
        password: backendToken,
        clean: false,
        reconnectPeriod: 200,
      });
      c.on('message', (_t, p) =>
        viaMqtt.push(
          ...CleanTelemetry.parse(JSON.parse(p.toString())).records.filter(
            (r) => !r.record.stream.startsWith('_health/'),
          ),
        ),
      );
      await new Promise<void>((resolve) => c.once('connect', () => resolve()));
      return c;
    };
    let be = await mqttBackend();
    await be.subscribeAsync(topicFilters.clean('fleetwave'), { qos: 1 });

    const s = await sensor(agent.ingestUrl, 'sensor-1');
    const send = async (from: number, to: number) => {
      for (let k = from; k < to; k++) await s.send(`sensors/${k % 2 ? 'odd' : 'even'}/v`, k);
    };
    await send(0, 100);
    await waitFor(
      'phase 1 on both backends',
      () => http.got.length >= 100 && new Set(viaMqtt.map((r) => r.cursor)).size >= 100,
    );

    // both backends restart; readings go on meanwhile
    await http.stop();
    await be.endAsync();
    await send(100, 200);
    be = await mqttBackend();
    http.start();
    // distinct cursors: a redelivered record (QoS 1, at least once) must not count, or the controller below is killed
    // with records still queued for the MQTT backend in the embedded broker's memory
    const distinct = () => new Set(viaMqtt.map((r) => r.cursor)).size;
    await waitFor('phase 2 on both backends', () => http.got.length >= 200 && distinct() >= 200);

    // the controller crashes; the agent keeps its backlog; the controller comes back on the same ports
    await ctl.kill('SIGKILL');
    await send(200, 300);
    ctl = await spawnController(join(dir, 'ctl'), args);
    await waitFor('phase 3 on the HTTP stream', () => http.got.length >= 300, 30_000);
    await new Promise((r) => setTimeout(r, 300));

    const values = (recs: CleanRecord[]) => recs.map((r) => (r.record.kind === 'reading' ? r.record.value : -1));
    expect(values(http.got).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, k) => k));
    expect(new Set(http.got.map((r) => r.cursor)).size).toBe(300);
    expect(new Set(http.got.map((r) => r.record.seq)).size).toBe(300);
    for (const stream of ['even/v', 'odd/v']) {
      const v = values(http.got.filter((r) => r.record.stream === stream));
      expect(v).toEqual([...v].sort((a, b) => a - b));
    }
    // MQTT: live delivery, and a persistent session across the backend's own restart. QoS 1 is at-least-once (a
    // message in flight when the backend went away comes again); the cursor on every record lets a backend drop those.
    const unique = [...new Map(viaMqtt.map((r) => [r.cursor, r])).values()];
    const firstTwo = values(unique).filter((v) => v < 200);
    expect(firstTwo.sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, k) => k));
    for (const r of viaMqtt) expect(unique.find((u) => u.cursor === r.cursor)).toEqual(r); // a repeat is identical
    const dev = await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-e2e');
    expect(dev.body.missingSequences).toEqual([]);
    expect(dev.body.device.presence).toBe('online');
    await be.endAsync();
    await s.client.endAsync();
  }, 90_000);
});

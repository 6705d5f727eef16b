import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfig, decodeTelemetryPayload, firstStopSignal, topicFilters } from '@fleetwave/shared';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { createAgent } from './agent.js';

/**
 * The demo for now: an embedded cloud broker (aedes on a free port), one agent, simulated sensors publishing QoS 1,
 * and a receiver that checks the per-device sequence numbers. Later issues grow it into the fleet demo.
 */
export async function runDemo(opts: { sensors: number }): Promise<void> {
  // Ctrl-C from the first moment on: during start-up the demo finishes starting, then stops cleanly
  const signalled = firstStopSignal();
  const cloud = await Aedes.createBroker();
  const server = createServer(cloud.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const cloudPort = (server.address() as { port: number }).port;
  const dataDir = mkdtempSync(join(tmpdir(), 'fleetwave-demo-'));
  const config = AgentConfig.parse({
    device: { id: 'demo-gw-1' },
    dataDir,
    ingest: { port: 0 },
    uplink: { url: `mqtt://127.0.0.1:${cloudPort}`, backlogInterval: '5s' },
    log: { level: 'warn' },
  });
  const agent = createAgent({ config, log: pino({ level: 'warn' }), uplinkClient: {}, sensorUsers: new Map() });
  const ingest = (await agent.start()).ingest!; // the demo's agents have their sensor listener
  console.log(`cloud broker (embedded aedes) on 127.0.0.1:${cloudPort}`);
  console.log(`agent ${config.device.id}: sensors connect to mqtt://127.0.0.1:${ingest.port}, outbox in ${dataDir}`);

  let received = 0;
  let expected = 1;
  let gaps = 0;
  const receiver = await mqtt.connectAsync(`mqtt://127.0.0.1:${cloudPort}`, { clientId: 'demo-receiver' });
  await receiver.subscribeAsync(topicFilters.allDevices('fleetwave', 'telemetry'), { qos: 1 });
  receiver.on('message', (_t, payload) => {
    const b = decodeTelemetryPayload(payload);
    if (b.seqFrom > expected) gaps += b.seqFrom - expected;
    expected = Math.max(expected, b.seqTo + 1);
    received += b.records.length;
  });

  const sensors = await Promise.all(
    Array.from({ length: opts.sensors }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.port}`, { clientId: `sensor-${i}` }),
    ),
  );
  let sent = 0;
  const tick = setInterval(() => {
    sensors.forEach((s, i) => {
      const value = 20 + 5 * Math.sin(Date.now() / 10_000 + i) + Math.random() * 0.2;
      s.publish(`sensors/sensor-${i}/temperature`, value.toFixed(3), { qos: 1 });
      sent++;
    });
  }, 100);
  const report = setInterval(() => {
    const s = agent.status();
    console.log(
      `sensors sent ${sent}, agent accepted ${s.accepted}, backlog ${s.depth}, cloud received ${received} (gaps ${gaps})`,
    );
  }, 2000);
  console.log('Ctrl-C stops the demo.');
  await signalled;
  clearInterval(tick);
  clearInterval(report);
  await Promise.all(sensors.map((s) => s.endAsync()));
  await agent.stop(2000);
  await receiver.endAsync();
  await new Promise<void>((r) => cloud.close(() => r()));
  server.close();
  console.log(`stopped: sensors sent ${sent}, cloud received ${received}, gaps ${gaps}`);
}

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgent } from '@fleetwave/agent';
import {
  createController,
  defaultControllerConfig,
  type PredictionService,
  type RiskScore,
  riskDefaults,
  simulateFleet,
  trainRisk,
} from '@fleetwave/controller';
import { AgentConfig, FleetwaveError, firstStopSignal, trustedKeyFromPem } from '@fleetwave/shared';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { rolloutStory } from './demo-story.js';

/** Start on the preferred port; if it is taken, on a free one (and say so). */
async function startWithFallback(make: (http: number, mqttPort: number) => ReturnType<typeof createController>) {
  try {
    const c = make(8080, 1883);
    return { controller: c, addresses: await c.start(), fallback: false };
  } catch (err) {
    if (!(err instanceof FleetwaveError && err.code === 'E_PORT_IN_USE')) throw err;
    const c = make(0, 0);
    return { controller: c, addresses: await c.start(), fallback: true };
  }
}

/**
 * The demo: a controller on its embedded defaults, a fleet of gateways running the real agent code in this process,
 * each with simulated sensors, half of the streams reduced by a deadband at the edge. Ctrl-C stops everything.
 */
export async function runDemo(opts: { gateways: number; story?: boolean; storyDelayMs?: number }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fleetwave-demo-'));
  // the demo's release key: the controller and every gateway trust it
  const releaseKey = generateKeyPairSync('ed25519');
  const pemFile = join(dir, 'release.pem');
  writeFileSync(pemFile, releaseKey.publicKey.export({ type: 'spki', format: 'pem' }));
  const trusted = [trustedKeyFromPem(readFileSync(pemFile, 'utf8'))];
  const log = pino({ level: 'warn' });
  // the gateways' own warnings (a failed health check of the broken release, say) would drown the story
  const agentLog = pino({ level: 'error' });
  let stopping = false;
  // Ctrl-C from the first moment on: during start-up the demo finishes starting, then stops cleanly
  const signalled = firstStopSignal(() => console.log('stopping…'));
  const { controller, addresses, fallback } = await startWithFallback((http, mqttPort) => {
    const partial = {
      ...defaultControllerConfig(join(dir, 'controller')),
      httpPort: http,
      mqttPort,
      trustedKeyFiles: [pemFile],
    };
    // the first attempt may have opened the store: a fresh data directory per attempt keeps the demo simple
    if (http === 0) partial.dataDir = join(dir, 'controller-2');
    return createController({ config: partial, log });
  });
  const mqttUrl = `mqtt://127.0.0.1:${addresses.mqtt}`;
  console.log(
    `controller: API http://127.0.0.1:${addresses.http}, MQTT ${mqttUrl}${fallback ? ' (the default ports 8080/1883 were taken, so free ones were picked)' : ''}`,
  );
  console.log(
    `admin token: ${addresses.adminTokenFile} (try: curl -H "Authorization: Bearer $(cat ${addresses.adminTokenFile})" http://127.0.0.1:${addresses.http}/api/devices)`,
  );

  const auth = controller.auth!;
  const store = controller.store!;
  const agents: ReturnType<typeof createAgent>[] = [];
  const makers: (() => ReturnType<typeof createAgent>)[] = [];
  const sensors: MqttClient[] = [];
  for (let g = 0; g < opts.gateways; g++) {
    const id = `demo-gw-${String(g + 1).padStart(3, '0')}`;
    const creds = auth.deviceCredentials();
    await store.fleet.addDevice({
      id,
      tags: { site: g % 2 ? 'north' : 'south' },
      hardware: g % 3 === 2 ? 'rpi3' : 'rpi4',
      createdAt: Date.now(),
      tokenHash: creds.tokenHash,
      mosquittoHash: creds.mosquittoHash,
    });
    const config = AgentConfig.parse({
      device: { id },
      dataDir: join(dir, id),
      ingest: { port: 0 },
      uplink: { url: mqttUrl, username: id, backlogInterval: '5s' },
      // the first gateway also sends its raw temperature, so the dashboard can show raw against kept
      filters: [
        {
          match: '*/temperature',
          deadband: { absolute: 0.2 },
          heartbeat: { maxInterval: '30s' },
          ...(g === 0 && { mirrorRaw: true }),
        },
      ],
      updates: {
        enabled: true,
        hardware: g % 3 === 2 ? 'rpi3' : 'rpi4',
        appsDir: join(dir, id, 'apps'),
        // the application's own health check: a broken release carries a BROKEN marker
        healthCommand: ['sh', '-c', `test ! -e ${join(dir, id, 'apps', 'demo-app', 'current', 'BROKEN')}`],
        healthDeadline: '20s',
        downloadBackoffMs: 200,
      },
      log: { level: 'warn' },
      // the demo's health history is simulated (with injected faults, below): this machine's own would blur it
      health: { enabled: false },
    });
    const make = () =>
      createAgent({
        config,
        log: agentLog,
        uplinkClient: { username: id, password: creds.token },
        sensorUsers: new Map(),
        trustedKeys: trusted,
      });
    const agent = make();
    const ingest = (await agent.start()).ingest!; // the demo's agents have their sensor listener
    agents.push(agent);
    makers.push(make);
    const sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.port}`, { clientId: `${id}-sensors` });
    sensor.on('error', () => {}); // a gateway that is down refuses its sensors for a while
    sensors.push(sensor);
  }
  console.log(
    `${opts.gateways} gateways enrolled and running the agent; each has a temperature (deadband 0.2 at the edge) and a vibration sensor`,
  );
  // three gateways will lose their network during the first rollout (agents stopped and started again)
  const flakyIdx = [1, 2, 3].map((k) => (k * 7) % opts.gateways).filter((v, i, a) => a.indexOf(v) === i);
  const flaky = {
    stop: async () => {
      for (const i of flakyIdx) await agents[i]!.stop(500);
    },
    start: async () => {
      for (const i of flakyIdx) {
        agents[i] = makers[i]!();
        const ingest = (await agents[i]!.start()).ingest!;
        sensors[i]!.end(true);
        sensors[i] = await mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.port}`, { clientId: `flaky-${i}-sensors` });
        sensors[i]!.on('error', () => {});
      }
    },
  };
  // health: 14 days of simulated history per gateway, a few with injected faults about to fail, and a risk model
  // trained on another simulated fleet; the controller scores the gateways and flags those at risk
  const atRisk = simulatedHealth(
    controller.prediction!,
    (await store.fleet.listDevices()).map((d) => d.id),
  )
    .then((risky) => {
      console.log(
        `health: 14 days of simulated history per gateway (some with injected faults); risk model trained; ${risky.length} gateways at risk: ${risky.map((r) => `${r.device} (${r.mode}, ${r.risk.toFixed(2)})`).join(', ') || 'none'}`,
      );
      return risky;
    })
    .catch((err) => {
      if (!stopping) console.log(`health: the risk model could not be set up: ${(err as Error).message}`);
      return [];
    });
  console.log(`dashboard: http://127.0.0.1:${addresses.http}/ui/ (sign in with the admin token above)`);
  const story =
    opts.story === false
      ? Promise.resolve()
      : rolloutStory({
          dir,
          api: `http://127.0.0.1:${addresses.http}`,
          token: readFileSync(addresses.adminTokenFile ?? join(dir, 'controller', 'admin-token'), 'utf8').trim(),
          key: releaseKey.privateKey,
          flaky,
          atRisk,
          say: (line) => console.log(line),
          stopped: () => stopping,
          delayMs: opts.storyDelayMs ?? 8000,
        }).catch((err) => console.log(`story: stopped: ${(err as Error).message}`));

  let sent = 0;
  const tick = setInterval(() => {
    const t = Date.now() / 1000;
    sensors.forEach((s, i) => {
      s.publish(`sensors/g${i}/temperature`, (21 + Math.sin(t / 20 + i) * 3 + Math.random() * 0.1).toFixed(3), {
        qos: 1,
      });
      s.publish(`sensors/g${i}/vibration`, (Math.random() * 2).toFixed(3), { qos: 1 });
      sent += 2;
    });
  }, 500);
  const report = setInterval(async () => {
    // a gateway that is offline (stopped) has no status
    const st = agents.flatMap((a) => {
      try {
        return [a.status()];
      } catch {
        return [];
      }
    });
    const accepted = st.reduce((n, s) => n + s.accepted, 0);
    const reduced = st.reduce((n, s) => n + (s.filtered.deadband ?? 0), 0);
    const online = (await store.fleet.listDevices().catch(() => [])).filter((d) => d.presence === 'online').length;
    console.log(
      `sensors sent ${sent} · agents committed ${accepted} (${reduced} dropped by the deadband) · controller stored ${controller.ingest!.totals.stored} · ${online}/${opts.gateways} gateways online`,
    );
  }, 3000);
  console.log('Ctrl-C stops the demo.');
  await signalled;
  if (stopping) return;
  stopping = true;
  await story;
  clearInterval(tick);
  clearInterval(report);
  await Promise.all(sensors.map((s) => s.endAsync()));
  await Promise.all(agents.map((a) => a.stop(2000)));
  await controller.stop();
  console.log(`stopped. data in ${dir}`);
}

/**
 * The demo's health: each gateway gets 14 days of simulated hourly health ending now (the simulator's failing devices
 * end at their failure, so theirs look about to fail), a risk model is trained on another simulated fleet, and the
 * controller scores the gateways with it. Returns the gateways at risk.
 */
async function simulatedHealth(prediction: PredictionService, devices: string[]): Promise<RiskScore[]> {
  const now = Date.now();
  const { history } = simulateFleet({
    devices: devices.length,
    days: 14,
    failing: Math.max(0.05, 1.5 / Math.max(1, devices.length)),
    seed: 42,
  });
  await prediction.recordMany(
    history.series.flatMap((s, i) => {
      const shift = now - s.t[s.t.length - 1]!;
      return s.t.map((t, k) => ({
        device: devices[i]!,
        ts: t + shift,
        metrics: Object.fromEntries(history.metrics.map((m) => [m, s.metrics[m]![k]!])),
      }));
    }),
  );
  const training = simulateFleet({ devices: 80, days: 45, seed: 7 });
  const model = await trainRisk(training.history, training.failures, riskDefaults(training.history.metrics, 10));
  await prediction.install(JSON.stringify(model), 'the demo');
  return (await prediction.scoreAll()).filter((s) => s.risk >= prediction.threshold);
}

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import { cleanTelemetryTopic, FleetwaveError } from '@fleetwave/shared';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApi } from './api/app.js';
import { TelemetryHub } from './api/telemetry-hub.js';
import { Authenticator } from './auth/authenticator.js';
import { caCertificateFile } from './auth/certificates.js';
import { renewCertificate } from './auth/renewal.js';
import { AwsIotJobs } from './aws/jobs.js';
import { EmbeddedBroker } from './broker/embedded-broker.js';
import { connectExternalBroker, type ExternalBrokerConfig, type ExternalBrokerLink } from './broker/external-link.js';
import { writeTopicRoots } from './broker/mosquitto-config.js';
import type { NatsLink } from './broker/nats-link.js';
import { eventFeed, telemetryFeed } from './cluster/feeds.js';
import { Leadership } from './cluster/leadership.js';
import { ConfigService } from './config/service.js';
import { TelemetryIngest } from './ingest/telemetry-ingest.js';
import { JobsService } from './jobs/jobs-service.js';
import { healthMetrics } from './predict/health-store.js';
import { PredictionService } from './predict/service.js';
import { loadTrustedKeys, ReleaseService } from './rollouts/releases.js';
import { RolloutService } from './rollouts/rollout-service.js';
import type { RolloutEvent } from './rollouts/rollout-store.js';
import { Webhooks } from './rollouts/webhooks.js';
import type { ControllerDatabase } from './store/database.js';
import { openDatabase } from './store/open-database.js';

export interface ControllerConfig {
  dataDir: string;
  /**
   * Where the controller's state is: `postgres://user@host:5432/db`, or `sqlite:<file>`; default the SQLite file
   * `<dataDir>/fleet.db`. Artifacts, trusted keys and the model stay in the data directory either way.
   */
  database?: string;
  /**
   * This replica's id among the controllers on one database (default: host name and pid). Each runs everything a
   * request needs; the one holding the leader lease also runs the wave engine, step timeouts, retention and scoring.
   */
  replicaId?: string;
  /** How long the leader lease lasts without renewal (default 3 s): a dead leader is replaced within about that. */
  leaseMs?: number;
  root: string;
  jobsRoot: string;
  host: string;
  httpPort: number;
  /** Embedded broker ports (ignored with `external`). */
  mqttPort: number;
  wsPort?: number;
  /**
   * MQTT over TLS. `clientCaFile`: devices may sign in with a certificate it issued (default: the fleet CA of the data
   * dir, when there is one); `requireClientCert`: only so, no tokens on this listener.
   */
  tls?: { port: number; keyFile: string; certFile: string; clientCaFile?: string; requireClientCert?: boolean };
  /** Largest MQTT packet a client of the embedded broker may send (default 2 MiB). */
  maxPacketBytes?: number;
  /** CONNECTs the embedded broker takes per second (default 5,000; beyond: CONNACK 3, server unavailable). */
  maxConnectsPerSecond?: number;
  /** Connect to this broker instead of running one. */
  external?: ExternalBrokerConfig;

  /** The broker URL agents should use (printed at enrolment); default derived from the embedded broker. */
  publicMqttUrl?: string;
  retentionMs: number;
  /** PEM files of the keys releases must be signed with (default: `<dataDir>/trusted-keys/*.pem`). */
  trustedKeyFiles?: string[];
  /** URLs that receive every rollout event as a JSON POST. */
  webhooks?: string[];
  /** The controller's HTTP address as devices reach it (artifact downloads); default from host and port. */
  publicHttpUrl?: string;
  /** How often the wave engine evaluates active rollouts (it also runs on every execution change). */
  rolloutTickMs?: number;
  /** Run rollouts' jobs on AWS IoT Jobs instead of the controller's own jobs service. */
  awsJobs?: { fleet: string; region: string; endpointUrl?: string; pollMs?: number };
  /**
   * A failure-risk model file to import at start (`fleetwave predict train` writes one); the model is kept in the
   * database. Without it, `<dataDir>/model.json` is imported when the database holds no model yet.
   */
  modelFile?: string;
  /** Alert when a device's predicted risk reaches this (default 0.8). */
  riskThreshold?: number;
  /** How long the health history is kept (default 30 days). */
  healthRetentionMs?: number;
  /** How often devices are scored (default 10 minutes). */
  scoreIntervalMs?: number;
}

function readPem(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new FleetwaveError('E_CONFIG_READ', `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The TLS listener's client CA: the one given, else the fleet CA of the data dir (if any). */
function clientCaOf(config: ControllerConfig): { clientCa?: Buffer; requireClientCert?: boolean } {
  const file = config.tls?.clientCaFile ?? caCertificateFile(config.dataDir);
  if (!file) {
    if (config.tls?.requireClientCert) {
      throw new FleetwaveError(
        'E_CA_MISSING',
        `--require-client-cert needs a client CA: run fleetwave ca init --data-dir ${config.dataDir}, or pass --client-ca <pem>`,
      );
    }
    return {};
  }
  return { clientCa: readPem(file), ...(config.tls?.requireClientCert && { requireClientCert: true }) };
}

export const defaultControllerConfig = (dataDir = './.fleetwave/controller'): ControllerConfig => ({
  dataDir,
  root: 'fleetwave',
  jobsRoot: 'fleetwave/jobs',
  host: '127.0.0.1',
  httpPort: 8080,
  mqttPort: 1883,
  retentionMs: 7 * 86_400_000,
});

/** The composition root of the controller: builds it unstarted; start() opens the store and listens. */
export function createController(deps: { config: ControllerConfig; log: Logger; now?: () => number }) {
  const { config, log } = deps;
  const now = deps.now ?? Date.now;
  let store: ControllerDatabase | undefined;
  let api: FastifyInstance | undefined;
  let broker: EmbeddedBroker | undefined;
  let link: ExternalBrokerLink | undefined;
  let natsLink: NatsLink | undefined;
  let auth: Authenticator | undefined;
  let ingest: TelemetryIngest | undefined;
  let prediction: PredictionService | undefined;
  let pruner: NodeJS.Timeout | undefined;
  let rollouts: RolloutService | undefined;
  let jobs: JobsService | undefined;
  let awsJobs: AwsIotJobs | undefined;
  let leadership: Leadership | undefined;
  /** What other replicas wrote, for this replica's listeners, by name (PostgreSQL only). */
  const feeds = new Map<string, { stop(): void; readonly lag: number }>();
  const replicaId = config.replicaId ?? `${hostname()}-${process.pid}`;
  const addresses = {
    http: 0,
    mqtt: 0 as number | undefined,
    ws: undefined as number | undefined,
    mqtts: undefined as number | undefined,
  };

  /** On first start an admin token is created and written, readable by the owner only, into the data directory. */
  async function bootstrapAdmin(a: Authenticator, s: ControllerDatabase): Promise<string | undefined> {
    const file = join(config.dataDir, 'admin-token');
    if ((await s.fleet.listApiTokens()).length > 0) return existsSync(file) ? file : undefined;
    const { token } = await a.createApiToken('admin', 'admin');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    await a.audit('controller', 'token.create', 'admin', 'ok', 'first start');
    return file;
  }

  async function stop(): Promise<void> {
    // a leader stops its duties and lets go of the lease first: another replica takes over at once
    await leadership?.stop();
    for (const f of feeds.values()) f.stop();
    if (pruner) clearInterval(pruner);
    await rollouts?.stop();
    prediction?.stop();
    await jobs?.flush();
    await awsJobs?.idle();
    await api?.close();
    await broker?.stop();
    await natsLink?.stop();
    await link?.stop();
    await ingest?.settled();
    await ingest?.written();
    await store?.close();
    store = undefined;
  }

  return {
    /** Opens the store and listens; on failure (a port taken, say) closes what it opened and throws. */
    async start() {
      try {
        return await start();
      } catch (err) {
        await stop().catch(() => {});
        throw err;
      }
    },

    get store() {
      return store;
    },
    get auth() {
      return auth;
    },
    get ingest() {
      return ingest;
    },
    get rollouts() {
      return rollouts;
    },
    get jobs() {
      return jobs;
    },
    get prediction() {
      return prediction;
    },
    get leadership() {
      return leadership;
    },
    replicaId,

    stop,
  };

  async function start() {
    mkdirSync(config.dataDir, { recursive: true });
    writeTopicRoots(config.dataDir, config);
    const s = await openDatabase({
      url: config.database,
      dataDir: config.dataDir,
      log: log.child({ part: 'database' }),
    });
    store = s;
    log.info({ database: s.kind, where: s.where }, 'state opened');
    const healthStore = s.health;
    const lastHealth = new Map<string, number>();
    const a = new Authenticator(s.fleet, now, log.child({ part: 'auth' }));
    auth = a;
    const hub = new TelemetryHub();
    const publishClean: (topic: string, payload: string) => Promise<void> = (topic, payload) =>
      (broker ?? link)?.publish(topic, payload, { qos: 1 }) ?? Promise.resolve();
    const i = new TelemetryIngest({
      db: s,
      now,
      log: log.child({ part: 'ingest' }),
      // the history keeps at most one sample per device every 5 minutes (a report a minute is more than trends need)
      onHealth: (device, report) => {
        const last = lastHealth.get(device);
        if (last !== undefined && report.ts >= last && report.ts - last < 300_000) return;
        lastHealth.set(device, report.ts);
        healthStore
          .add(device, report.ts, healthMetrics(report))
          .catch((err) => log.warn({ device, err: (err as Error).message }, 'health sample not kept'));
      },
      onCertificateRequest: (device, payload) =>
        void renewCertificate(
          {
            dataDir: config.dataDir,
            fleet: s.fleet,
            root: config.root,
            now,
            log: log.child({ part: 'certificates' }),
            audit: (...args) => a.audit(...args),
            publish: publishClean,
          },
          device,
          payload,
        ),
      onClean: (device, records) => {
        // on PostgreSQL the HTTP stream's live records come from the telemetry feed (what every replica stored)
        if (s.kind === 'sqlite') hub.publish(records);
        publishClean(cleanTelemetryTopic(config.root, device), JSON.stringify({ v: 1, device, records })).catch((err) =>
          log.warn({ err: (err as Error).message }, 'clean publish failed'),
        );
      },
    });
    ingest = i;
    const adminTokenFile = await bootstrapAdmin(a, s);
    const rolloutStore = s.rollouts;
    const trusted = loadTrustedKeys(config.dataDir, config.trustedKeyFiles);
    const releases = new ReleaseService({ store: rolloutStore, dataDir: config.dataDir, trusted: () => trusted, now });
    const eventListeners = new Set<(e: RolloutEvent) => void>();
    const webhooks = new Webhooks({ urls: config.webhooks ?? [], log: log.child({ part: 'webhooks' }) });
    const deliver = (e: RolloutEvent) => {
      for (const fn of eventListeners) fn(e);
    };
    // the replica that wrote an event sends its webhook; server-sent events come from the event feed on every replica
    // (what any replica wrote), on SQLite straight from here
    const events = eventFeed(rolloutStore, deliver, () => eventListeners.size > 0, log.child({ part: 'events' }));
    const announce = (e: RolloutEvent) => {
      webhooks.send(e);
      if (s.kind === 'sqlite') deliver(e);
      else void events.poll();
    };
    const p = new PredictionService({
      health: healthStore,
      fleet: s.fleet,
      transaction: (fn) => s.transaction(fn),
      fence: () => leadership!.fence(),
      ...(config.modelFile && { modelFile: config.modelFile }),
      defaultModelFile: join(config.dataDir, 'model.json'),
      ...(config.riskThreshold !== undefined && { threshold: config.riskThreshold }),
      now,
      log: log.child({ part: 'predict' }),
      // fleet events (not of a rollout) share the event log, its API and the webhooks, with an empty rollout
      onEvent: async (kind, details) =>
        announce(await rolloutStore.addEvent({ ts: now(), rollout: '', kind, details })),
    });
    await p.init();
    prediction = p;
    const j = new JobsService({
      db: s,
      jobsRoot: config.jobsRoot,
      now,
      log: log.child({ part: 'jobs' }),
      publish: (topic, payload) =>
        void ((broker ?? link)?.publish(topic, payload, { qos: 1 }) ?? Promise.resolve()).catch((err) =>
          log.warn({ err: (err as Error).message, topic }, 'jobs publish failed'),
        ),
      onChange: (e) => r.executionChanged(e),
    });
    jobs = j;
    awsJobs =
      config.awsJobs &&
      new AwsIotJobs({
        client: new IoTClient({
          region: config.awsJobs.region,
          ...(config.awsJobs.endpointUrl && { endpoint: config.awsJobs.endpointUrl }),
        }),
        fleet: config.awsJobs.fleet,
        log: log.child({ part: 'aws-jobs' }),
        onChange: (e) => r.executionChanged(e),
      });
    const r = new RolloutService({
      db: s,
      jobs: j,
      releases,
      now,
      log: log.child({ part: 'rollouts' }),
      audit: (...args) => a.audit(...args),
      ...(awsJobs && { backend: awsJobs, pollMs: config.awsJobs?.pollMs ?? 5000 }),
      artifactBaseUrl: () => `${config.publicHttpUrl ?? `http://${config.host}:${addresses.http}`}/api/releases/`,
      onEvent: announce,
      health: p,
      fence: () => leadership!.fence(),
    });
    rollouts = r;
    if (config.external) {
      ({ link, natsLink } = await connectExternalBroker(config.external, {
        replicaId: config.replicaId,
        root: config.root,
        jobsRoot: config.jobsRoot,
        ingest: i,
        log,
        onJobRequest: (thing, topic, payload) => j.enqueue(thing, topic, payload),
      }));
      addresses.mqtt = undefined;
    } else {
      broker = new EmbeddedBroker({
        host: config.host,
        port: config.mqttPort,
        wsPort: config.wsPort,
        tls: config.tls && {
          port: config.tls.port,
          key: readPem(config.tls.keyFile),
          cert: readPem(config.tls.certFile),
          ...clientCaOf(config),
        },
        root: config.root,
        jobsRoot: config.jobsRoot,
        auth: a,
        ingest: i,
        log: log.child({ part: 'broker' }),
        ...(config.maxPacketBytes !== undefined && { maxPacketBytes: config.maxPacketBytes }),
        ...(config.maxConnectsPerSecond !== undefined && { maxConnectsPerSecond: config.maxConnectsPerSecond }),
        onJobRequest: (device, topic, payload) => j.enqueue(device, topic, payload),
      });
      Object.assign(addresses, await broker.start());
    }
    const configService = new ConfigService({
      db: s,
      root: config.root,
      now,
      log: log.child({ part: 'config' }),
      audit: (...args) => a.audit(...args),
      publish: (topic, payload) =>
        (broker ?? link)?.publish(topic, payload, { qos: 1, retain: true }) ?? Promise.resolve(),
    });
    await configService.republishAll();
    api = buildApi({
      db: s,
      dataDir: config.dataDir,
      replicaId,
      leadership: () => leadership,
      auth: a,
      ingest: i,
      hub,
      config: configService,
      log,
      now,
      kick: (id) => broker?.kick(id),
      agentUplinkUrl: () =>
        config.publicMqttUrl ?? config.external?.url.split(',')[0] ?? `mqtt://${config.host}:${addresses.mqtt}`,
      root: config.root,
      jobsRoot: config.jobsRoot,
      prediction: p,
      rollouts: {
        releases,
        rollouts: r,
        rolloutStore,
        subscribeEvents: (fn) => {
          eventListeners.add(fn);
          return () => eventListeners.delete(fn);
        },
      },
    });
    try {
      await api.listen({ port: config.httpPort, host: config.host });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new FleetwaveError(
          'E_PORT_IN_USE',
          `port ${config.httpPort} is taken: pass --http-port <port> (0 picks a free one)`,
        );
      }
      throw err;
    }
    addresses.http = (api.server.address() as { port: number }).port;
    const prune = async () => {
      try {
        await s.transaction(() => leadership!.fence()); // retention runs once in the cluster, on the leader
        await s.telemetry.prune(now() - config.retentionMs);
        await healthStore.prune(now() - (config.healthRetentionMs ?? 30 * 86_400_000));
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'retention pruning failed; the next run retries');
      }
    };
    if (s.kind === 'postgres') {
      await events.start();
      const telemetry = telemetryFeed(
        s.telemetry,
        (records) => hub.publish(records),
        () => hub.size > 0,
        log,
      );
      await telemetry.start();
      feeds.set('events', events).set('telemetry', telemetry);
    }
    const feedLag = () => Object.fromEntries([...feeds].map(([name, f]) => [name, f.lag]));
    r.follow();
    leadership = new Leadership({
      cluster: s.cluster,
      id: replicaId,
      ...(config.leaseMs !== undefined && { leaseMs: config.leaseMs }),
      startedAt: now(),
      http: () => config.publicHttpUrl ?? `http://${config.host}:${addresses.http}`,
      lag: feedLag,
      log: log.child({ part: 'cluster' }),
      // the duties that run once in the cluster
      onLead: async () => {
        r.start(config.rolloutTickMs ?? 1000);
        p.start(config.scoreIntervalMs ?? 600_000);
        await prune();
        pruner = setInterval(() => void prune(), 3_600_000);
      },
      onLose: async () => {
        if (pruner) clearInterval(pruner);
        pruner = undefined;
        p.pause();
        await r.stop();
        r.follow();
      },
    });
    await leadership.start();
    return { ...addresses, adminTokenFile, replica: replicaId };
  }
}

export type Controller = ReturnType<typeof createController>;

import { FleetwaveError, jobRequestFilters, parseTopic } from '@fleetwave/shared';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { TelemetryIngest } from '../ingest/telemetry-ingest.js';
import { routeDeviceMessage } from './device-routing.js';
import { NatsLink } from './nats-link.js';

export interface ExternalLinkOptions {
  /** The broker's URL, or several (comma-separated) of one cluster: the client moves to the next when one goes. */
  url: string;
  /**
   * `false`: publish only, take no device messages (with NATS, where NatsLink takes them through queue groups and
   * JetStream). Default true.
   */
  subscribe?: boolean;
  username?: string;
  password?: string;
  root: string;
  clientId: string;
  /** Shared-subscription group, so several controller replicas split the load (Mosquitto 2, EMQX, HiveMQ). */
  shareGroup?: string;
  /**
   * `own`: the jobs requests on a connection of their own with a clean session (controller replicas: Mosquitto hands
   * a shared subscription's messages to an offline persistent member too, so a replica that is gone would keep its
   * share of the requests unanswered until it came back). Default: on the device connections.
   */
  jobsSession?: 'shared' | 'own';
  /** Sessions in the shared group (default 4): MQTT acknowledges a session's messages in order, so parallel
   * sessions let batches from several devices share one commit. Without a share group there is one. */
  connections?: number;
  ingest: TelemetryIngest;
  log: Logger;
  /** Jobs requests of devices (`{jobsRoot}/{thing}/jobs/…`) go to the jobs service. */
  jobsRoot?: string;
  onJobRequest?: (thing: string, topic: string, payload: Buffer) => void;
}

/**
 * The controller as a client of a broker it does not run. Its session is persistent (clean: false, QoS 1), so the
 * broker queues device messages while the controller is away, and a message is acknowledged to the broker only after
 * ingest committed it (mqtt.js sends the PUBACK when handleMessage calls back). Device identity comes from the topic:
 * the broker must enforce that a device publishes only under its own topics (see the generated Mosquitto ACL).
 */
export class ExternalBrokerLink {
  private clients: MqttClient[] = [];

  constructor(private readonly o: ExternalLinkOptions) {}

  async start(): Promise<void> {
    if (this.o.subscribe === false) {
      this.clients.push(await this.connect(this.o.clientId, { device: false, jobs: false, jobsShared: false }));
      return;
    }
    const n = this.o.shareGroup ? (this.o.connections ?? 4) : 1;
    const ownJobs = this.o.jobsSession === 'own';
    for (let i = 0; i < n; i++) {
      const id = n === 1 ? this.o.clientId : `${this.o.clientId}-${i}`;
      this.clients.push(await this.connect(id, { device: true, jobs: !ownJobs && i === 0, jobsShared: !ownJobs }));
    }
    if (ownJobs)
      this.clients.push(await this.connect(`${this.o.clientId}-jobs`, { device: false, jobs: true, jobsShared: true }));
  }

  private async connect(
    clientId: string,
    take: { device: boolean; jobs: boolean; jobsShared: boolean },
  ): Promise<MqttClient> {
    const o = this.o;
    const [first, ...more] = o.url.split(',').map((u) => u.trim());
    const client = mqtt.connect(first!, {
      ...(more.length > 0 && {
        servers: [first!, ...more].map((u) => {
          const p = new URL(u);
          return { host: p.hostname, port: Number(p.port || 1883), protocol: p.protocol.replace(':', '') as 'mqtt' };
        }),
      }),
      clientId,
      // telemetry needs a persistent session (what was not acknowledged comes again); a jobs-only connection does not
      // (a device asks again), and with a clean one a replica that is gone leaves the share group at once
      clean: !take.device,
      reconnectPeriod: 1000,
      username: o.username,
      password: o.password,
      protocolVersion: 4,
    });
    client.handleMessage = (packet, callback) => {
      // the PUBACK to the broker goes out when callback runs: for telemetry, after its group commit
      const t = this.telemetryDevice(packet.topic);
      if (t) {
        o.ingest.submitTelemetry(t, packet.payload as Buffer, (err) => {
          if (!err?.transient) return callback();
          // not stored: no PUBACK; drop the connection so the broker delivers the message again after reconnecting
          o.log.error({ err: err.message }, 'telemetry commit failed; reconnecting to have it delivered again');
          client.stream.destroy();
        });
      } else {
        this.route(packet.topic, packet.payload as Buffer);
        callback();
      }
    };
    client.on('error', (err) => o.log.warn({ err: err.message }, 'external broker error'));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const filter = `${o.root}/devices/+/#`;
    if (take.device)
      await client.subscribeAsync(o.shareGroup ? `$share/${o.shareGroup}/${filter}` : filter, { qos: 1 });
    if (o.jobsRoot && o.onJobRequest && (take.jobs || take.jobsShared)) {
      // the devices' jobs requests only (shared's JOB_REQUESTS), not the answers the controller itself publishes
      // Mosquitto 2.0 delivers nothing under a `$` root (such as `$aws/things`) to a shared subscription: those are
      // subscribed plainly, on the first connection only
      const jobs = jobRequestFilters(o.jobsRoot, '+');
      const shareable = !o.jobsRoot.startsWith('$');
      if ((shareable && take.jobsShared) || take.jobs) {
        await client.subscribeAsync(
          jobs.map((f) => (o.shareGroup && shareable ? `$share/${o.shareGroup}/${f}` : f)),
          { qos: 1 },
        );
      }
    }
    return client;
  }

  private telemetryDevice(topic: string): string | undefined {
    try {
      const t = parseTopic(this.o.root, topic);
      return t.family === 'device' && t.kind === 'telemetry' ? t.device : undefined;
    } catch {
      return undefined;
    }
  }

  private route(topic: string, payload: Buffer): void {
    routeDeviceMessage(this.o, topic, payload);
  }

  publish(topic: string, payload: string | Buffer, opts: { qos: 0 | 1; retain?: boolean } = { qos: 1 }): Promise<void> {
    const client = this.clients[0];
    if (!client) return Promise.reject(new FleetwaveError('E_UPLINK_DISCONNECTED', 'not connected'));
    return client.publishAsync(topic, payload, { qos: opts.qos, retain: opts.retain ?? false }).then(() => {});
  }

  /**
   * Disconnects at once: a backlog the broker holds for the controller's sessions would otherwise keep a graceful
   * end going for as long as it lasts. What was not acknowledged yet is delivered again to the session when it comes
   * back (persistent sessions); what was committed and not yet acknowledged comes again too and is a duplicate.
   */
  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.endAsync(true)));
    this.clients = [];
  }
}

/** A broker the controller does not run (`--external-broker`, and with `--nats` the NATS side of the same cluster). */
export interface ExternalBrokerConfig {
  url: string;
  username?: string;
  password?: string;
  shareGroup?: string;
  connections?: number;
  /**
   * NATS URLs of the cluster `url` is an MQTT listener of: device messages come through NATS (a queue group, and a
   * JetStream consumer for telemetry), answers go out over MQTT. Same credentials as for MQTT.
   */
  nats?: string[];
}

/**
 * The controller's links to a broker it does not run: the MQTT link, and with `nats` the NATS link that takes the
 * device messages (the MQTT link then only sends). A replica connects as its own client, and its jobs requests on a
 * clean session of their own.
 */
export async function connectExternalBroker(
  external: ExternalBrokerConfig,
  o: {
    replicaId?: string;
    root: string;
    jobsRoot: string;
    ingest: TelemetryIngest;
    log: Logger;
    onJobRequest: (thing: string, topic: string, payload: Buffer) => void;
  },
): Promise<{ link: ExternalBrokerLink; natsLink?: NatsLink }> {
  // one client id per replica, or they would push each other off
  const clientId = o.replicaId ? `fleetwave-controller-${o.replicaId}` : 'fleetwave-controller';
  const natsLink = external.nats
    ? new NatsLink({
        servers: external.nats,
        ...(external.username !== undefined && { user: external.username, pass: external.password }),
        name: clientId,
        root: o.root,
        jobsRoot: o.jobsRoot,
        ingest: o.ingest,
        log: o.log.child({ part: 'nats' }),
        onJobRequest: o.onJobRequest,
      })
    : undefined;
  const link = new ExternalBrokerLink({
    ...external,
    ...(external.nats && { subscribe: false }),
    root: o.root,
    clientId,
    ...(o.replicaId && { jobsSession: 'own' as const }),
    ingest: o.ingest,
    log: o.log.child({ part: 'external-broker' }),
    jobsRoot: o.jobsRoot,
    onJobRequest: o.onJobRequest,
  });
  await link.start();
  await natsLink?.start(); // after the link that answers: a request taken must find a way back
  return { link, ...(natsLink && { natsLink }) };
}

import { FleetwaveError, parseTopic } from '@fleetwave/shared';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { TelemetryIngest } from '../ingest/telemetry-ingest.js';

export interface ExternalLinkOptions {
  url: string;
  username?: string;
  password?: string;
  root: string;
  clientId: string;
  /** Shared-subscription group, so several controller replicas split the load (Mosquitto 2, EMQX, HiveMQ). */
  shareGroup?: string;
  ingest: TelemetryIngest;
  log: Logger;
}

/**
 * The controller as a client of a broker it does not run. Its session is persistent (clean: false, QoS 1), so the
 * broker queues device messages while the controller is away, and a message is acknowledged to the broker only after
 * ingest committed it (mqtt.js sends the PUBACK when handleMessage calls back). Device identity comes from the topic:
 * the broker must enforce that a device publishes only under its own topics (see the generated Mosquitto ACL).
 */
export class ExternalBrokerLink {
  private client: MqttClient | undefined;

  constructor(private readonly o: ExternalLinkOptions) {}

  async start(): Promise<void> {
    const o = this.o;
    const client = mqtt.connect(o.url, {
      clientId: o.clientId,
      clean: false,
      reconnectPeriod: 1000,
      username: o.username,
      password: o.password,
      protocolVersion: 4,
    });
    this.client = client;
    client.handleMessage = (packet, callback) => {
      this.route(packet.topic, packet.payload as Buffer);
      callback();
    };
    client.on('error', (err) => o.log.warn({ err: err.message }, 'external broker error'));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const filter = `${o.root}/devices/+/#`;
    await client.subscribeAsync(o.shareGroup ? `$share/${o.shareGroup}/${filter}` : filter, { qos: 1 });
  }

  private route(topic: string, payload: Buffer): void {
    const { ingest, root, log } = this.o;
    try {
      const t = parseTopic(root, topic);
      if (t.family !== 'device') return;
      if (t.kind === 'telemetry') ingest.telemetry(t.device, payload);
      else if (t.kind === 'presence') ingest.presence(t.device, payload);
      else if (t.kind === 'backlog') ingest.backlog(t.device, payload);
      else if (t.kind === 'health') ingest.health(t.device, payload);
      else if (t.kind === 'config/reported') ingest.reportedConfig(t.device, payload);
    } catch (err) {
      if (!(err instanceof FleetwaveError)) log.error({ err, topic }, 'ingest failed');
    }
  }

  publish(topic: string, payload: string | Buffer, opts: { qos: 0 | 1; retain?: boolean } = { qos: 1 }): Promise<void> {
    if (!this.client) return Promise.reject(new FleetwaveError('E_UPLINK_DISCONNECTED', 'not connected'));
    return this.client.publishAsync(topic, payload, { qos: opts.qos, retain: opts.retain ?? false }).then(() => {});
  }

  async stop(): Promise<void> {
    await this.client?.endAsync();
    this.client = undefined;
  }
}

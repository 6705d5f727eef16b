import { deviceTopic } from '@fleetwave/shared';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { OutboxBatch } from '../outbox/batches.js';
import type { Outbox } from '../outbox/outbox.js';
import { reconnectDelay } from './backoff.js';

export interface UplinkOptions {
  url: string;
  /** TLS material, credentials, keepalive; clientId, clean, will and reconnect are set here. */
  client: Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'username' | 'password' | 'keepalive' | 'rejectUnauthorized'>;
  root: string;
  device: string;
  agentVersion: string;
  inflightWindow: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** After losing a working connection, the first attempt waits a random delay within this (0: none). */
  reconnectSpreadMs?: number;
  outbox: Outbox;
  log: Logger;
  now: () => number;
  random?: () => number;
  /** A desired-config document arrived (raw payload); subscribed on every connection. */
  onDesiredConfig?: (payload: Buffer) => void;
  /** Called on every (re)connection, after presence (e.g. to publish the latest health report). */
  onConnected?: () => void;
  /** More topic filters to subscribe to on every connection (the jobs topics), and their messages. */
  subscriptions?: readonly string[];
  onMessage?: (topic: string, payload: Buffer) => void;
  /** Called once those subscriptions are acknowledged, on every connection (ask for pending jobs then). */
  onSubscribed?: () => void;
  /** Extra presence fields (the installed releases). */
  presenceExtra?: () => Record<string, unknown>;
}

/**
 * One MQTT session to the cloud broker. Batches go out QoS 1 within an in-flight window and leave the outbox only on
 * their PUBACK. The session is clean and a new client is made for every connection: after a reconnect the agent
 * re-sends what its own outbox holds and relies on nothing the broker or mqtt.js kept (DESIGN invariant 4).
 */
export class Uplink {
  private client: MqttClient | undefined;
  private generation = 0;
  private readonly inflight = new Map<number, OutboxBatch>();
  private resend: OutboxBatch[] = [];
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private draining: (() => void) | undefined;
  connected = false;
  reconnects = 0;

  constructor(private readonly o: UplinkOptions) {}

  start(): void {
    this.stopping = false;
    this.connect();
  }

  /** Publishes a message of the agent's own (QoS 1) when connected; false when not. */
  publish(topic: string, payload: string): boolean {
    if (!this.connected || !this.client) return false;
    this.client.publish(topic, payload, { qos: 1 });
    return true;
  }

  /** New TLS client material (a renewed certificate): the connection is made again with it. */
  replaceClientMaterial(m: { cert: Buffer; key: Buffer }): void {
    this.o.client = { ...this.o.client, cert: m.cert, key: m.key };
    this.client?.end(true); // the close handler connects again (after the reconnect spread)
  }

  private presence(state: 'online' | 'offline'): string {
    return JSON.stringify({
      v: 1,
      device: this.o.device,
      state,
      ts: this.o.now(),
      agentVersion: this.o.agentVersion,
      ...this.o.presenceExtra?.(),
    });
  }

  private connect(): void {
    const gen = ++this.generation;
    const presenceTopic = deviceTopic(this.o.root, this.o.device, 'presence');
    const client = mqtt.connect(this.o.url, {
      ...this.o.client,
      clientId: this.o.device,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      protocolVersion: 4,
      // mqtt-packet's cache of every 16-bit number as a Buffer is 65,536 objects, 6 MB of heap (bench/README.md)
      writeCache: false,
      will: { topic: presenceTopic, payload: Buffer.from(this.presence('offline')), qos: 1, retain: true },
    });
    this.client = client;
    client.on('connect', () => {
      if (gen !== this.generation) return;
      this.connected = true;
      this.o.log.info({ url: this.o.url }, 'uplink connected');
      client.publish(presenceTopic, this.presence('online'), { qos: 1, retain: true });
      const filters = [
        ...(this.o.onDesiredConfig ? [deviceTopic(this.o.root, this.o.device, 'config/desired')] : []),
        ...(this.o.subscriptions ?? []),
      ];
      if (filters.length > 0) {
        client.subscribe(filters, { qos: 1 }, (err, granted) => {
          if (gen !== this.generation || !this.connected) return; // that connection is gone already
          // a broker may refuse a subscription (SUBACK 0x80): its ACL or policy, or a cluster that cannot set it up
          // just now (NATS while its JetStream elects a leader); a connection deaf to its jobs or config is of no
          // use, so it is dropped and made again after the backoff
          const refused = err ? filters : (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic);
          if (refused.length > 0) {
            this.o.log.warn(
              { refused, ...(err && { err: err.message }) },
              "the broker refused a subscription (check the device's ACL or policy); connecting again",
            );
            this.connected = false; // not a working connection: the next attempt backs off (not the reconnect spread)
            client.end(true);
            return;
          }
          this.attempt = 0; // a connection that works: the backoff starts over (a refusing broker is not hammered)
          if (this.o.subscriptions?.length) this.o.onSubscribed?.();
        });
      } else this.attempt = 0;
      // Everything formed but not acknowledged goes again, in sequence order, before anything new.
      this.resend = this.o.outbox.unacknowledged();
      this.pump();
      this.o.onConnected?.();
    });
    client.on('message', (topic, payload) => {
      if (gen === this.generation && topic === deviceTopic(this.o.root, this.o.device, 'config/desired')) {
        this.o.onDesiredConfig?.(payload);
      } else if (gen === this.generation) this.o.onMessage?.(topic, payload);
    });
    client.on('error', (err) => {
      if (gen === this.generation) this.o.log.warn({ err: err.message }, 'uplink error');
    });
    client.on('close', () => {
      if (gen !== this.generation) return;
      const wasConnected = this.connected;
      this.connected = false;
      this.inflight.clear();
      this.resend = [];
      client.removeAllListeners('connect');
      client.end(true);
      if (this.stopping) return;
      if (wasConnected) this.reconnects++;
      const delay = reconnectDelay(
        wasConnected,
        wasConnected ? 0 : this.attempt++,
        this.o,
        this.o.random ?? Math.random,
      );
      this.o.log.info({ delayMs: delay, attempt: this.attempt }, 'uplink disconnected, reconnecting');
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  /** Fills the in-flight window: first what must be re-sent, then new batches from the outbox. */
  pump(): void {
    const client = this.client;
    if (!client || !this.connected) return;
    const gen = this.generation;
    const topic = deviceTopic(this.o.root, this.o.device, 'telemetry');
    let fresh: OutboxBatch[] = [];
    while (this.inflight.size < this.o.inflightWindow) {
      if (this.resend.length === 0 && fresh.length === 0 && !this.stopping) {
        fresh = this.o.outbox.claimBatches(this.o.inflightWindow - this.inflight.size);
      }
      const batch = this.resend.shift() ?? fresh.shift();
      if (!batch) break;
      this.inflight.set(batch.seqFrom, batch);
      client.publish(topic, batch.payload, { qos: 1 }, (err) => {
        if (err || gen !== this.generation) return; // stays in the outbox; re-sent on the next connection
        this.o.outbox.acknowledge(batch);
        this.inflight.delete(batch.seqFrom);
        if (this.draining && this.inflight.size === 0) this.draining();
        this.pump();
      });
    }
  }

  /** How many new batches would go out now: free in-flight slots while connected and nothing waits to be re-sent. */
  freeSlots(): number {
    if (!this.connected || this.stopping || this.resend.length) return 0;
    return Math.max(0, this.o.inflightWindow - this.inflight.size);
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Publishes a small status message (backlog, health) at QoS 1 when connected; dropped when not. */
  /** Publishes QoS 1 when connected; false when not (the caller keeps what it must re-send). */
  publishRaw(topic: string, payload: string): boolean {
    if (!this.connected || !this.client) return false;
    this.client.publish(topic, payload, { qos: 1 });
    return true;
  }

  /** Re-announces presence (after the installed releases changed). */
  announce(): void {
    if (this.connected) {
      this.client?.publish(deviceTopic(this.o.root, this.o.device, 'presence'), this.presence('online'), {
        qos: 1,
        retain: true,
      });
    }
  }

  publishStatus(kind: 'backlog' | 'health', payload: string): void {
    if (this.connected) this.client?.publish(deviceTopic(this.o.root, this.o.device, kind), payload, { qos: 1 });
  }

  /** Publishes the reported configuration, retained, so the controller sees the latest after its own restart. */
  publishReported(payload: string): void {
    if (this.connected) {
      this.client?.publish(deviceTopic(this.o.root, this.o.device, 'config/reported'), payload, {
        qos: 1,
        retain: true,
      });
    }
  }

  /** Stops forming batches, waits up to `graceMs` for in-flight acknowledgements, marks the device offline, closes. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    if (client && this.connected && this.inflight.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        this.draining = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.generation++;
    if (client && this.connected) {
      await new Promise<void>((resolve) => {
        const presenceTopic = deviceTopic(this.o.root, this.o.device, 'presence');
        const t = setTimeout(resolve, 1000);
        client.publish(presenceTopic, this.presence('offline'), { qos: 1, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.connected = false;
    if (client) await client.endAsync(true).catch(() => {});
  }
}

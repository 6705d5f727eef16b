import { FleetwaveError, jobRequestFilters } from '@fleetwave/shared';
import { type ConsumerConfig, type ConsumerMessages, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { TelemetryIngest } from '../ingest/telemetry-ingest.js';
import { routeDeviceMessage } from './device-routing.js';

export interface NatsLinkOptions {
  /** NATS URLs of the cluster's nodes (`nats://host:4222`); the client moves to another when one goes. */
  servers: string[];
  user?: string;
  pass?: string;
  root: string;
  jobsRoot?: string;
  ingest: TelemetryIngest;
  log: Logger;
  onJobRequest?: (thing: string, topic: string, payload: Buffer) => void;
  /** This replica's name on the NATS connection (monitoring). */
  name: string;
  /** How long a replica has to commit a message before JetStream gives it to another (default 10 s). */
  ackWaitMs?: number;
}

/** Every replica's queue group and the one durable consumer they share. */
const GROUP = 'fleetwave';
const CONSUMER = 'fleetwave-ingest';
/**
 * The stream NATS's MQTT side stores every QoS 1 PUBLISH in before it sends the PUBACK (interest retention, replicated
 * like the account's MQTT streams; measured on 2.9.10: without a JetStream quorum a device gets no PUBACK and its
 * connection is closed). Its subjects are `$MQTT.msgs.<the topic as a NATS subject>`.
 */
const MQTT_MSGS = '$MQTT_msgs';
const MQTT_MSGS_PREFIX = '$MQTT.msgs.';

/** An MQTT topic filter as the NATS subject NATS's MQTT layer maps it to (`a/+/b/#` → `a.*.b.>`). */
export function natsSubject(mqttFilter: string): string {
  if (/[.\s*>]/.test(mqttFilter)) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `"${mqttFilter}" has a character NATS maps differently ('.', '*', '>' or a space): use topic roots without them with --nats`,
    );
  }
  return mqttFilter
    .split('/')
    .map((s) => (s === '+' ? '*' : s === '#' ? '>' : s))
    .join('.');
}

const mqttTopic = (subject: string) => subject.replaceAll('.', '/');

/**
 * The controller's intake from a NATS cluster whose nodes speak MQTT to the devices (NATS has no MQTT shared
 * subscriptions: `$share/…` is taken as a literal topic). Telemetry is read from the stream NATS's MQTT side keeps
 * QoS 1 messages in, through one durable pull consumer all replicas share (it is also what keeps the messages there:
 * interest retention): each message goes to one replica, is acknowledged only after its commit, and one not
 * acknowledged within `ackWaitMs` (its replica died) goes to another; the (device, seq) dedupe drops what was
 * committed twice. A stream of our own capturing the subject would not do: NATS feeds it after the PUBACK, and drops
 * what arrives while that stream elects a leader. Jobs requests and the devices' status messages go to a NATS queue group, one replica each; a jobs
 * request lost with a replica is asked again by the device. Answers to devices go out over MQTT (ExternalBrokerLink),
 * where they keep their QoS 1 and retain flags: NATS delivers what a NATS client publishes at QoS 0.
 */
export class NatsLink {
  private nc: NatsConnection | undefined;
  private subs: Subscription[] = [];
  private messages: ConsumerMessages | undefined;
  private pumping: Promise<void> | undefined;

  constructor(private readonly o: NatsLinkOptions) {}

  async start(): Promise<void> {
    const o = this.o;
    const telemetry = natsSubject(`${o.root}/devices/+/telemetry`);
    const jobs = o.jobsRoot && o.onJobRequest ? jobRequestFilters(o.jobsRoot, '+').map(natsSubject) : [];
    const status = ['health', 'presence', 'backlog', 'config/reported', 'certificate/request'].map((k) =>
      natsSubject(`${o.root}/devices/+/${k}`),
    );
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: o.servers,
        name: o.name,
        ...(o.user !== undefined && { user: o.user, pass: o.pass }),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
      });
    } catch (err) {
      throw new FleetwaveError(
        'E_BROKER_UNREACHABLE',
        `cannot connect to NATS at ${o.servers.join(', ')}: ${(err as Error).message}; check --nats and that the servers run`,
      );
    }
    this.nc = nc;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect') o.log.warn({ status: s.type, server: s.server }, 'NATS');
      }
    })().catch(() => {});

    const jsm = await jetstreamManager(nc);
    const consumer: Partial<ConsumerConfig> = {
      durable_name: CONSUMER,
      ack_policy: 'explicit' as ConsumerConfig['ack_policy'],
      ack_wait: (o.ackWaitMs ?? 10_000) * 1_000_000,
      max_ack_pending: 2_000,
      filter_subject: `${MQTT_MSGS_PREFIX}${telemetry}`,
    };
    // the stream exists once an MQTT client connected to the account (the link that answers did, just before)
    for (let attempt = 0; ; attempt++) {
      try {
        await jsm.consumers.info(MQTT_MSGS, CONSUMER).then(
          () =>
            jsm.consumers.update(MQTT_MSGS, CONSUMER, {
              ack_wait: consumer.ack_wait!,
              max_ack_pending: consumer.max_ack_pending!,
            }),
          () => jsm.consumers.add(MQTT_MSGS, consumer),
        );
        break;
      } catch (err) {
        if (attempt >= 20) {
          throw new FleetwaveError(
            'E_BROKER_UNREACHABLE',
            `cannot set up the telemetry consumer on NATS's ${MQTT_MSGS} stream: ${(err as Error).message}; ` +
              'is MQTT enabled on these NATS servers, with JetStream for the account?',
          );
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const c = await jetstream(nc).consumers.get(MQTT_MSGS, CONSUMER);
    const messages = await c.consume({ max_messages: 500 });
    this.messages = messages;
    this.pumping = (async () => {
      for await (const m of messages) {
        const device = m.subject.split('.').at(-2)!;
        o.ingest.submitTelemetry(device, Buffer.from(m.data), (err) => {
          // not stored: ask for it again a second later (from this replica or another); else acknowledged
          if (err?.transient) {
            o.log.error({ err: err.message }, 'telemetry commit failed; JetStream delivers it again');
            m.nak(1000);
          } else m.ack();
        });
      }
    })().catch((err) => o.log.error({ err: (err as Error).message }, 'NATS telemetry consumer ended'));

    for (const subject of [...jobs, ...status]) {
      const sub = nc.subscribe(subject, { queue: GROUP });
      this.subs.push(sub);
      void (async () => {
        for await (const m of sub) routeDeviceMessage(o, mqttTopic(m.subject), Buffer.from(m.data));
      })().catch((err) => o.log.error({ err: (err as Error).message, subject }, 'NATS subscription ended'));
    }
    await nc.flush();
  }

  /** Stops taking messages; what this replica took and did not acknowledge goes to another after the ack wait. */
  async stop(): Promise<void> {
    const nc = this.nc;
    this.nc = undefined;
    if (!nc) return;
    await this.messages?.close().catch(() => {});
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    await this.pumping;
    await this.o.ingest.settled(); // the commits under way acknowledge before the connection goes
    await nc.close().catch(() => {});
  }
}

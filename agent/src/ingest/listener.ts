import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { type ErrorCode, FleetwaveError, limitPacketSize } from '@fleetwave/shared';
import { Aedes } from 'aedes';
import mqttPacket from 'mqtt-packet';
import type { Logger } from 'pino';
import type { Committed } from '../outbox/outbox.js';
import { parseReading, type Reading, type ReadingLimits } from '../reading.js';
import type { StreamRoute } from '../streams.js';

export interface IngestSink {
  submit(route: StreamRoute, reading: Reading, done: Committed): void;
  countRefused(code: ErrorCode): void;
}

export interface ListenerOptions {
  host: string;
  port: number;
  /** username → password; empty means sensors connect without credentials. */
  users: ReadonlyMap<string, string>;
  limits: ReadingLimits;
  route: (topic: string) => StreamRoute;
  sink: IngestSink;
  now: () => number;
  log: Logger;
  /** Largest MQTT packet a sensor may send; larger closes its connection before the body is buffered. */
  maxPacketBytes: number;
}

// aedes writes through mqtt-packet, whose cache of every 16-bit number as a Buffer (made at the first write) is
// 65,536 objects, 6 MB of heap: the agent writes numbers as it goes (bench/README.md, "What the agent costs")
mqttPacket.writeToStream.cacheNumbers = false;

const digest = (s: string | Buffer) => createHash('sha256').update(s).digest();

/**
 * The local MQTT listener for sensors (aedes, MQTT 3.1.1). A QoS 1 PUBLISH is acknowledged only after its reading
 * was committed: aedes holds the PUBACK until authorizePublish calls back, and we call back from the group commit.
 * MQTT 3.1.1 has no negative PUBACK, so a refused QoS 1 reading closes the sensor's connection (it is never
 * acknowledged as stored); a refused QoS 0 reading is dropped. Both are counted by reason.
 */
export class IngestListener {
  private broker: Aedes | undefined;
  private server: Server | undefined;

  /** (sensor, code) pairs already logged: each refusal is logged once at info, then only counted. */
  private readonly logged = new Set<string>();

  constructor(private readonly opts: ListenerOptions) {}

  private refused(sensor: string, code: ErrorCode, reason: string): void {
    const key = `${sensor}\u0000${code}`;
    if (this.logged.has(key) || this.logged.size >= 1000) return;
    this.logged.add(key);
    this.opts.log.info({ sensor, code, reason }, 'sensor refused (logged once per sensor and reason; counted always)');
  }

  async start(): Promise<{ host: string; port: number }> {
    const o = this.opts;
    const users = new Map([...o.users].map(([u, p]) => [u, digest(p)]));
    // [MQTT-3.1.3-8]: a zero-byte client id with CleanSession=0 gets CONNACK 0x02 (aedes would give it a random id)
    const noIdWithSession = new WeakSet<object>();
    const broker = await Aedes.createBroker({
      preConnect: (client, packet, done) => {
        if (packet.clientId === '' && packet.clean === false) noIdWithSession.add(client);
        done(null, true);
      },
      authenticate: (client, username, password, done) => {
        if (noIdWithSession.has(client)) {
          this.refused(username ?? '(no client id)', 'E_AUTH', 'a zero-length client id needs CleanSession=1');
          return done(Object.assign(new Error('identifier rejected'), { returnCode: 2 as const }), false);
        }
        if (users.size === 0) return done(null, true);
        const want = username === undefined ? undefined : users.get(username);
        const ok = want !== undefined && password !== undefined && timingSafeEqual(want, digest(password));
        if (!ok) {
          o.sink.countRefused('E_AUTH');
          this.refused(username ?? client.id, 'E_AUTH', 'bad username or password');
          const err = Object.assign(new Error('bad username or password'), { returnCode: 4 as const });
          return done(err, false);
        }
        done(null, true);
      },
      // sensors have nothing to subscribe to: SUBACK with the failure code 0x80 per filter [MQTT-3.9.3-2]; the
      // connection stays
      authorizeSubscribe: (client, sub, done) => {
        this.refused(client?.id ?? '?', 'E_FORBIDDEN', `sensors may not subscribe (${sub.topic.slice(0, 200)})`);
        done(null, null);
      },
      authorizePublish: (client, packet, done) => {
        if (!client) return done(null); // the broker's own messages (wills): nothing to store
        /** `counted`: the sink already counted it (a refusal from the outbox itself). */
        const refuse = (err: unknown, counted = false) => {
          const code: ErrorCode = err instanceof FleetwaveError ? err.code : 'E_SCHEMA';
          if (!counted) o.sink.countRefused(code);
          this.refused(client.id, code, `${(err as Error).message} (topic ${packet.topic.slice(0, 200)})`);
          // QoS 0: nothing to acknowledge, the reading is just dropped. QoS 1: no PUBACK, the connection closes.
          done(packet.qos === 0 ? null : new FleetwaveError(code, (err as Error).message));
        };
        let route: StreamRoute;
        let reading: Reading;
        try {
          route = o.route(packet.topic);
          reading = parseReading(packet.payload as Buffer, o.now(), o.limits);
        } catch (err) {
          return refuse(err);
        }
        if (packet.retain) packet.retain = false; // readings are not retained on the gateway
        if (packet.qos === 0) {
          o.sink.submit(route, reading, () => {});
          return done(null);
        }
        o.sink.submit(route, reading, (err) => (err ? refuse(err, true) : done(null)));
      },
    });
    this.broker = broker;
    const server = createServer((sock) => {
      limitPacketSize(sock, o.maxPacketBytes, (announced) =>
        this.refused(
          sock.remoteAddress ?? '?',
          'E_PAYLOAD_TOO_LARGE',
          `an MQTT packet of ${announced} bytes, over ingest.maxPacketBytes ${o.maxPacketBytes}: connection closed`,
        ),
      );
      broker.handle(sock);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : o.port;
    return { host: o.host, port };
  }

  /** Stops accepting sensors; connected sensors are disconnected. */
  async stop(): Promise<void> {
    const server = this.server;
    const broker = this.broker;
    this.server = undefined;
    this.broker = undefined;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    if (broker) await new Promise<void>((r) => broker.close(() => r()));
    await closed;
  }
}

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { type ErrorCode, FleetwaveError } from '@fleetwave/shared';
import { Aedes } from 'aedes';
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
}

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

  constructor(private readonly opts: ListenerOptions) {}

  async start(): Promise<{ host: string; port: number }> {
    const o = this.opts;
    const users = new Map([...o.users].map(([u, p]) => [u, digest(p)]));
    const broker = await Aedes.createBroker({
      authenticate: (_client, username, password, done) => {
        if (users.size === 0) return done(null, true);
        const want = username === undefined ? undefined : users.get(username);
        const ok = want !== undefined && password !== undefined && timingSafeEqual(want, digest(password));
        if (!ok) {
          o.sink.countRefused('E_AUTH');
          const err = Object.assign(new Error('bad username or password'), { returnCode: 4 as const });
          return done(err, false);
        }
        done(null, true);
      },
      authorizeSubscribe: (_client, sub, done) => done(new Error(`sensors may not subscribe (${sub.topic})`), null),
      authorizePublish: (client, packet, done) => {
        if (!client) return done(null); // the broker's own messages (wills): nothing to store
        const refuse = (err: unknown) => {
          const code: ErrorCode = err instanceof FleetwaveError ? err.code : 'E_SCHEMA';
          o.sink.countRefused(code);
          o.log.debug({ sensor: client.id, topic: packet.topic, code }, 'reading refused');
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
        o.sink.submit(route, reading, (err) => (err ? refuse(err) : done(null)));
      },
    });
    this.broker = broker;
    const server = createServer(broker.handle);
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

import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { FleetwaveError, limitPacketSize, parseTopic } from '@fleetwave/shared';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Authenticator } from '../auth/authenticator.js';
import type { TelemetryIngest } from '../ingest/telemetry-ingest.js';
import { canPublish, canSubscribe, type Principal, type TopicRoots } from './acl.js';

export interface EmbeddedBrokerOptions extends TopicRoots {
  host: string;
  /** Plain MQTT port (0: a free one). */
  port: number;
  /** MQTT over WebSocket port, when set. */
  wsPort?: number;
  /**
   * MQTT over TLS, when set. With `clientCa`, clients may present a certificate it issued: the device's identity is
   * then its CN (checked against the registry's certificates); with `requireClientCert` as well, token logins on
   * this listener are refused.
   */
  tls?: { port: number; key: Buffer; cert: Buffer; clientCa?: Buffer; requireClientCert?: boolean };
  auth: Authenticator;
  ingest: TelemetryIngest;
  log: Logger;
  /** A device's jobs request (the ACL checked it is under its own jobs topics). */
  onJobRequest?: (device: string, topic: string, payload: Buffer) => void;
  /** Largest MQTT packet a client may send (Remaining Length); larger closes its connection (default 2 MiB). */
  maxPacketBytes?: number;
  /**
   * CONNECTs taken per second (default 5,000); beyond, CONNACK 3 (server unavailable) at once and the client tries
   * again later, instead of every client's token check and session set-up piling up at once.
   */
  maxConnectsPerSecond?: number;
}

/** Telemetry batches are at most 1 MiB (uplink.batchMaxBytes): 2 MiB leaves room and bounds what one client holds. */
export const DEFAULT_MAX_PACKET_BYTES = 2 * 1024 * 1024;

/** A client with whom it authenticated as, and (signed in by certificate) when that certificate expires. */
type WithPrincipal = Client & { principal?: Principal; certUntil?: number; expiry?: NodeJS.Timeout };

function listen(server: Server | HttpServer, port: number, host: string, flag: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new FleetwaveError(
              'E_PORT_IN_USE',
              `port ${port} on ${host} is taken: pass ${flag} <port> (0 picks a free one)`,
            )
          : err,
      ),
    );
    // a fleet reconnecting at once after a restart sends thousands of SYNs within a second: with Node's default
    // backlog (511) the kernel drops the rest and each waits for its SYN to be sent again (1 s, 3 s, 7 s…); the kernel
    // caps this at net.core.somaxconn (4096 on current kernels)
    server.listen({ port, host, backlog: 4096 }, () => resolve((server.address() as { port: number }).port));
  });
}

/**
 * The embedded broker (aedes). Devices and backends authenticate at CONNECT; every PUBLISH and SUBSCRIBE goes
 * through the ACL; what devices publish is ingested inside authorizePublish, so a device's PUBACK follows the commit
 * of its telemetry (aedes holds the PUBACK until that hook calls back).
 */
export class EmbeddedBroker {
  private aedes: Aedes | undefined;
  private servers: (Server | HttpServer)[] = [];
  private wss: WebSocketServer | undefined;
  addresses: { mqtt: number; ws?: number; mqtts?: number } = { mqtt: 0 };
  private window = { start: 0, count: 0, refused: 0 };

  constructor(private readonly o: EmbeddedBrokerOptions) {}

  /** Whether this second's CONNECT budget has room; a refusal is counted and logged once per second. */
  private admit(): boolean {
    const now = Date.now();
    const w = this.window;
    if (now - w.start >= 1000) {
      if (w.refused > 0) {
        this.o.log.warn(
          { refused: w.refused, perSecond: this.o.maxConnectsPerSecond ?? 5000 },
          'CONNECTs over the rate refused with CONNACK 3 (server unavailable); they come again',
        );
      }
      this.window = { start: now, count: 0, refused: 0 };
    }
    if (++this.window.count <= (this.o.maxConnectsPerSecond ?? 5000)) return true;
    this.window.refused++;
    return false;
  }

  async start(): Promise<{ mqtt: number; ws?: number; mqtts?: number }> {
    const o = this.o;
    const aedes = await Aedes.createBroker({
      // mqemitter processes its queue recursively when messages complete synchronously (no subscriber): a burst of
      // more queued messages than the stack holds, such as 10,000 devices disconnecting at once (each a $SYS
      // message), overflows the stack (mcollina/mqemitter#204). A concurrency above any burst keeps the queue empty.
      concurrency: 1_000_000,
      authenticate: (client: WithPrincipal, username, password, done) => {
        if (!this.admit()) {
          return done(Object.assign(new Error('server busy: try again'), { returnCode: 3 as const }), false);
        }
        const sock = client.conn as unknown as Partial<TLSSocket>;
        const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
        const login =
          peer && Object.keys(peer).length > 0
            ? o.auth.certificate(client.id, {
                authorized: sock.authorized === true,
                error: sock.authorizationError?.toString(),
                fingerprint: peer.fingerprint256,
                cn: typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined,
              })
            : typeof sock.getPeerCertificate === 'function' && o.tls?.requireClientCert
              ? o.auth.refuseMqtt(client.id, username, 'a client certificate is required on this listener')
              : o.auth.mqtt(client.id, username, password?.toString('utf8'));
        login.then(
          (principal) => {
            if (!principal) return done(Object.assign(new Error('not authorized'), { returnCode: 5 as const }), false);
            client.principal = principal;
            if (peer?.valid_to) client.certUntil = Date.parse(peer.valid_to);
            done(null, true);
          },
          (err) => done(Object.assign(err as Error, { returnCode: 3 as const }), false),
        );
      },
      authorizePublish: (client: WithPrincipal | null, packet, done) => {
        const p: Principal = client?.principal ?? { kind: 'controller' };
        if (!canPublish(p, packet.topic, o)) {
          o.auth.denied(p, 'mqtt.publish', packet.topic);
          return done(new Error(`not allowed to publish to ${packet.topic}`));
        }
        if (p.kind !== 'device') return done(null);
        // telemetry is acknowledged after its group commit; a malformed batch is counted and acknowledged (below)
        if (packet.topic === `${o.root}/devices/${p.id}/telemetry`) {
          // a malformed batch (a fatal error) is acknowledged and dropped; a commit that failed (transient) is not
          // acknowledged: the session closes and the agent sends the batch again
          return o.ingest.submitTelemetry(p.id, packet.payload as Buffer, (err) => done(err?.transient ? err : null));
        }
        if (packet.topic.startsWith(`${o.jobsRoot}/`)) {
          done(null);
          const { topic, payload } = packet;
          setImmediate(() => o.onJobRequest?.(p.id, topic, payload as Buffer));
          return;
        }
        this.ingestFrom(p.id, packet.topic, packet.payload as Buffer);
        done(null);
      },
      authorizeSubscribe: (client: WithPrincipal | null, sub, done) => {
        const p: Principal = client?.principal ?? { kind: 'controller' };
        if (!canSubscribe(p, sub.topic, o)) {
          o.auth.denied(p, 'mqtt.subscribe', sub.topic);
          return done(null, null); // SUBACK 0x80 (failure) for this filter; the session stays
        }
        done(null, sub);
      },
    });
    aedes.on('client', (c: WithPrincipal) => {
      if (c.principal?.kind === 'device') void o.ingest.connection(c.principal.id, true);
      // a session signed in by certificate ends when the certificate does (the agent renews before, and comes back)
      const until = c.certUntil;
      if (until !== undefined) {
        const arm = () => {
          const left = until - Date.now();
          if (left <= 0) {
            o.log.warn({ clientId: c.id }, 'client certificate expired: session closed');
            c.close();
            return;
          }
          c.expiry = setTimeout(arm, Math.min(left, 2 ** 31 - 1)); // a timer lasts at most ~24.8 days
          c.expiry.unref();
        };
        arm();
      }
    });
    aedes.on('clientDisconnect', (c: WithPrincipal) => {
      if (c.expiry) clearTimeout(c.expiry);
      if (c.principal?.kind === 'device') void o.ingest.connection(c.principal.id, false);
    });
    this.aedes = aedes;
    const max = o.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    const handle = (conn: Duplex & { remoteAddress?: string }, req?: unknown) => {
      limitPacketSize(conn, max, (announced) =>
        o.log.warn(
          { remote: conn.remoteAddress, announced, maxPacketBytes: max },
          'MQTT packet larger than the limit: connection closed (--max-packet-bytes)',
        ),
      );
      aedes.handle(conn as never, req as never);
    };
    const tcp = createServer(handle);
    this.servers.push(tcp);
    this.addresses = { mqtt: await listen(tcp, o.port, o.host, '--mqtt-port') };
    if (o.tls) {
      const tls = createTlsServer(
        {
          key: o.tls.key,
          cert: o.tls.cert,
          // asked for, and checked at CONNECT (so a refusal is audited with its reason), not by the handshake
          ...(o.tls.clientCa && { ca: o.tls.clientCa, requestCert: true, rejectUnauthorized: false }),
        },
        handle,
      );
      this.servers.push(tls);
      this.addresses.mqtts = await listen(tls, o.tls.port, o.host, '--mqtts-port');
    }
    if (o.wsPort !== undefined) {
      const http = createHttpServer();
      this.wss = new WebSocketServer({ server: http });
      this.wss.on('connection', (ws, req) => handle(createWebSocketStream(ws), req));
      this.servers.push(http);
      this.addresses.ws = await listen(http, o.wsPort, o.host, '--ws-port');
    }
    return this.addresses;
  }

  /**
   * Device messages are ingested before the PUBACK. A malformed one is counted and dropped, but still acknowledged:
   * MQTT 3.1.1 has no negative PUBACK, and refusing it would make the agent re-send the same batch forever.
   */
  private ingestFrom(device: string, topic: string, payload: Buffer): void {
    let t: ReturnType<typeof parseTopic>;
    try {
      t = parseTopic(this.o.root, topic);
    } catch {
      return; // a job request, not a device status topic (the ACL already checked it is the device's own)
    }
    if (t.family === 'device') this.o.ingest.statusMessage(device, t.kind, payload);
  }

  /** The controller's own publish (clean telemetry, desired config, jobs). */
  publish(topic: string, payload: string | Buffer, opts: { qos: 0 | 1; retain?: boolean } = { qos: 1 }): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new FleetwaveError('E_UPLINK_DISCONNECTED', 'broker is not running'));
    return new Promise((resolve, reject) =>
      aedes.publish(
        {
          cmd: 'publish',
          topic,
          payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
          qos: opts.qos,
          retain: opts.retain ?? false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }

  /** Drops a revoked device's live session. */
  kick(clientId: string): void {
    // aedes keeps connected clients by id; its typings do not declare the map
    (this.aedes as unknown as { clients: Record<string, Client | undefined> } | undefined)?.clients[clientId]?.close();
  }

  async stop(): Promise<void> {
    const aedes = this.aedes;
    this.aedes = undefined;
    const closing = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const c of this.wss?.clients ?? []) c.terminate();
    if (aedes) await new Promise<void>((r) => aedes.close(() => r()));
    await Promise.all(closing);
    this.servers = [];
  }
}

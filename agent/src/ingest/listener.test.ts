import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { ErrorCode } from '@fleetwave/shared';
import { FleetwaveError } from '@fleetwave/shared';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { IngestListener } from './listener.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** MQTT 3.1.1 packets by hand: the listener is checked on the wire, not through a client library's opinions. */
const str = (s: string) => Buffer.concat([Buffer.from([s.length >> 8, s.length & 255]), Buffer.from(s)]);
const packet = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type, body.length]), body]);
const connectPacket = (clientId: string, clean: boolean) =>
  packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, clean ? 0x02 : 0x00, 0, 60]), str(clientId)]));
const subscribePacket = (id: number, ...filters: string[]) =>
  packet(0x82, Buffer.concat([Buffer.from([0, id]), ...filters.map((f) => Buffer.concat([str(f), Buffer.from([1])]))]));
const publishQos1 = (topic: string, id: number, payload: string) =>
  packet(0x32, Buffer.concat([str(topic), Buffer.from([0, id]), Buffer.from(payload)]));

/** A socket that collects what the listener sends and says when it closed. */
function wire(port: number) {
  const sock: Socket = connect(port, '127.0.0.1');
  cleanups.push(() => sock.destroy());
  let got = Buffer.alloc(0);
  let closed = false;
  sock.on('data', (d) => {
    got = Buffer.concat([got, d]);
  });
  sock.on('close', () => {
    closed = true;
  });
  sock.on('error', () => {});
  const until = async (what: string, cond: () => boolean) => {
    for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
    if (!cond()) throw new Error(`timed out waiting for ${what}; got ${got.toString('hex')}`);
  };
  return {
    send: (b: Buffer) => sock.write(b),
    bytes: () => got,
    closed: () => closed,
    until,
  };
}

async function listener() {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()));
        cb();
      },
    }),
  );
  const refused: ErrorCode[] = [];
  const l = new IngestListener({
    host: '127.0.0.1',
    port: 0,
    users: new Map(),
    limits: { maxPayloadBytes: 1024, maxClockSkewMs: 86_400_000 },
    route: (topic) => {
      if (!topic.startsWith('sensors/')) throw new FleetwaveError('E_TOPIC_KIND', `no stream mapping for ${topic}`);
      return { stream: topic.slice(8), priority: 'telemetry', rank: 2, ttlMs: undefined };
    },
    sink: { submit: (_r, _reading, done) => done(undefined), countRefused: (c) => refused.push(c) },
    now: () => Date.now(),
    log,
    maxPacketBytes: 4096,
  });
  const { port } = await l.start();
  cleanups.push(() => l.stop());
  return { port, lines, refused };
}

describe('the sensor listener as an MQTT 3.1.1 server', () => {
  it('answers SUBSCRIBE with SUBACK failure codes and keeps the session [MQTT-3.9.3-2]', async () => {
    const l = await listener();
    const w = wire(l.port);
    w.send(connectPacket('s1', true));
    await w.until('CONNACK', () => w.bytes().length >= 4);
    expect(w.bytes().subarray(0, 4).toString('hex')).toBe('20020000');
    w.send(subscribePacket(7, 'a/b', 'c/#'));
    await w.until('SUBACK', () => w.bytes().length >= 9);
    expect(w.bytes().subarray(4).toString('hex')).toBe('900400078080');
    // still connected: a PINGREQ is answered
    w.send(Buffer.from([0xc0, 0]));
    await w.until('PINGRESP', () => w.bytes().subarray(10).toString('hex') === 'd000');
    expect(w.closed()).toBe(false);
    expect(l.lines.filter((x) => x.msg?.toString().startsWith('sensor refused'))).toHaveLength(1);
  });

  it('gives a zero-length client id with CleanSession=0 CONNACK 0x02 and closes [MQTT-3.1.3-8]', async () => {
    const l = await listener();
    const w = wire(l.port);
    w.send(connectPacket('', false));
    await w.until('CONNACK and close', () => w.closed());
    expect(w.bytes().toString('hex')).toBe('20020002');
    // with CleanSession=1 the same empty id is accepted
    const ok = wire(l.port);
    ok.send(connectPacket('', true));
    await ok.until('CONNACK', () => ok.bytes().length >= 4);
    expect(ok.bytes().toString('hex')).toBe('20020000');
    expect(l.lines.find((x) => x.code === 'E_AUTH')).toMatchObject({
      level: 30,
      reason: expect.stringContaining('CleanSession'),
    });
  });

  it('logs a refused reading once at info with the sensor and the reason, counts every one', async () => {
    const l = await listener();
    for (let i = 1; i <= 3; i++) {
      const w = wire(l.port);
      w.send(connectPacket('probe-7', true));
      await w.until('CONNACK', () => w.bytes().length >= 4);
      w.send(publishQos1('elsewhere/x', i, '21.5'));
      // no PUBACK for a refused QoS 1 reading (MQTT 3.1.1 has no negative PUBACK): the connection closes
      await w.until('close', () => w.closed());
      expect(w.bytes().toString('hex')).toBe('20020000');
    }
    expect(l.refused).toEqual(['E_TOPIC_KIND', 'E_TOPIC_KIND', 'E_TOPIC_KIND']);
    const logged = l.lines.filter((x) => x.sensor === 'probe-7');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 30,
      code: 'E_TOPIC_KIND',
      reason: expect.stringContaining('elsewhere/x'),
    });
  });

  it('closes a connection whose packet is announced over maxPacketBytes before its body arrives, and logs it once', async () => {
    const l = await listener();
    const w = wire(l.port);
    w.send(connectPacket('big-1', true));
    await w.until('CONNACK', () => w.bytes().length >= 4);
    // a PUBLISH announcing 200 MB (Remaining Length 0x80 0x84 0xaf 0x5f): only its header is sent
    w.send(Buffer.from([0x30, 0x80, 0x84, 0xaf, 0x5f, 0x00]));
    await w.until('close', () => w.closed());
    expect(l.lines.filter((x) => String(x.reason).includes('over ingest.maxPacketBytes 4096'))).toHaveLength(1);
    // a packet within the limit is read as ever (and refused only for its unknown topic)
    const ok = wire(l.port);
    ok.send(connectPacket('small-1', true));
    await ok.until('CONNACK', () => ok.bytes().length >= 4);
    ok.send(Buffer.from([0xc0, 0x00]));
    await ok.until('PINGRESP', () => ok.bytes().subarray(4).toString('hex') === 'd000');
  });
});

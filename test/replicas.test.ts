import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { havePostgres } from '@fleetwave/controller';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  api,
  type ControllerProcess,
  cleanupAfterEach,
  controllerCli,
  freePort,
  haveBinary,
  jobsDevice,
  spawnController,
  startMosquitto,
  testDatabaseFor,
  tmp,
  waitForAsync,
} from './helpers.js';
import { startNatsCluster } from './nats-cluster.js';
import { appArchive, filesRelease, publishRelease, trustedKey } from './release-helpers.js';

const cleanups = cleanupAfterEach();
const ready = (await havePostgres()) && haveBinary('mosquitto');
const natsReady = haveBinary('nats-server');

interface Cluster {
  leader: string | null;
  replicas: { id: string; leading: boolean }[];
}

/**
 * Server-sent rollout events, collected; when the replica goes away the stream resumes on whichever replica `url`
 * names then, after the last id it got.
 */
function sse(url: () => string, token: string) {
  const got: { id: number; kind: string }[] = [];
  const abort = new AbortController();
  const done = (async () => {
    let last = 0;
    while (!abort.signal.aborted) {
      try {
        const res = await fetch(`${url()}/api/rollouts/events?after=${last}`, {
          headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
          signal: abort.signal,
        });
        let buf = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += Buffer.from(chunk).toString('utf8');
          let end = buf.indexOf('\n\n');
          while (end >= 0) {
            const data = /^data: (.*)$/m.exec(buf.slice(0, end))?.[1];
            if (data) {
              const e = JSON.parse(data) as { id: number; kind: string };
              got.push({ id: e.id, kind: e.kind });
              last = e.id;
            }
            buf = buf.slice(end + 2);
            end = buf.indexOf('\n\n');
          }
        }
      } catch {
        // aborted, or the replica went away
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    got,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

/**
 * The broker the replicas and the devices share: Mosquitto with shared subscriptions, or a NATS cluster whose nodes
 * speak MQTT to the devices (the controllers take device messages through NATS queue groups and JetStream).
 */
interface SharedBroker {
  /** The controller's broker flags, for the n-th replica. */
  args(n: number): string[];
  /** The MQTT URL(s) device i connects to (several: it moves to the next when one goes). */
  deviceUrl(i: number): string;
  /** A fault of the broker itself, done once while the waves run, after the first leader kill. */
  fault?(): Promise<void>;
  /** Undoes the fault, after the second leader kill. */
  heal?(): Promise<void>;
}

/**
 * Three replicas on one PostgreSQL: a release rolled out in three waves while the leading replica is killed with
 * SIGKILL twice (and the broker suffers its fault once); the outcome must be that of a rollout nothing happened to.
 */
async function rolloutThroughKills(broker: SharedBroker) {
  const dir = tmp('replicas');
  const url = await testDatabaseFor(join(dir, 'a'));
  const key = trustedKey(join(dir, 'a'));
  const ids = ['a', 'b', 'c'];
  const ctl: Record<string, ControllerProcess> = {};
  const start = async (id: string) => {
    const d = join(dir, id);
    mkdirSync(join(d, 'trusted-keys'), { recursive: true });
    if (id !== 'a') {
      // the first replica made the admin token; an operator hands its file (or another token) to the others
      copyFileSync(join(dir, 'a', 'admin-token'), join(d, 'admin-token'));
      copyFileSync(key.pemFile, join(d, 'trusted-keys', 'release.pem'));
    }
    ctl[id] = await spawnController(d, [
      ...broker.args(ids.indexOf(id)),
      '--database',
      url,
      '--replica-id',
      id,
      '--lease',
      '1s',
      '--http-port',
      '0',
    ]);
    cleanups.push(() => ctl[id]!.kill('SIGKILL'));
  };
  for (const id of ids) await start(id);
  const cluster = async (via: string): Promise<Cluster> => {
    const r = await api(ctl[via]!.url, ctl[via]!.adminToken, 'GET', '/api/cluster');
    return { leader: r.body.leader?.replica ?? null, replicas: r.body.replicas };
  };
  let view: Cluster | undefined;
  await waitForAsync('three replicas, one leading', async () => {
    view = await cluster('b').catch(() => undefined);
    return view?.replicas.length === 3 && view.leader !== null;
  });
  expect(view!.replicas.filter((r) => r.leading)).toHaveLength(1);

  const admin = ctl.a!.adminToken;
  const follower = () => ids.find((id) => id !== view!.leader && ctl[id]!.proc.exitCode === null)!;
  // devices: protocol level (jobs: start-next every 300 ms, report SUCCEEDED) and 100 readings each, QoS 1
  const devices = 10;
  const clients: MqttClient[] = [];
  for (let i = 0; i < devices; i++) {
    const id = `gw-${i}`;
    expect((await api(ctl[follower()]!.url, admin, 'POST', '/api/devices', { id, hardware: 'rpi4' })).status).toBe(201);
    clients.push(await jobsDevice(broker.deviceUrl(i), id, cleanups));
  }
  let seq = 0;
  const sendReadings = async (n: number) => {
    const from = seq + 1;
    seq += n;
    await Promise.all(
      clients.map((c, i) => {
        const records = Array.from({ length: n }, (_, k) => ({
          kind: 'reading',
          seq: from + k,
          stream: 'r/v',
          ts: Date.now(),
          value: from + k,
        }));
        const body = { v: 1, device: `gw-${i}`, seqFrom: from, seqTo: seq, sentAt: Date.now(), records };
        return c.publishAsync(`fleetwave/devices/gw-${i}/telemetry`, JSON.stringify(body), { qos: 1 });
      }),
    );
  };

  // events through a follower (then whichever replica is up); the release and the rollout through another follower
  const first = follower();
  const any = () => [first, ...ids].find((x) => ctl[x]!.proc.exitCode === null && ctl[x]!.proc.signalCode === null)!;
  const events = sse(() => ctl[any()]!.url, admin);
  cleanups.push(() => events.stop());
  const archive = await appArchive(dir, '1.0.0', { 'app.txt': 'v1' });
  const via = ids.filter((id) => id !== view!.leader)[1]!;
  await publishRelease(ctl[via]!.url, admin, filesRelease(key, '1.0.0', archive), archive);
  const plan = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: replicas
release: { name: gateway-app, version: 1.0.0 }
waves: [{ count: 2, bake: 3s }, { percent: 50, bake: 3s }, { percent: 100 }]
`;
  const applied = await api(ctl[via]!.url, admin, 'POST', '/api/rollouts', { yaml: plan });
  expect(applied.status, JSON.stringify(applied.body)).toBe(201);
  const id = applied.body.id as string;

  // the leader is killed (SIGKILL) twice while the waves run, each time started again with its id
  for (let k = 0; k < 2; k++) {
    await sendReadings(50);
    await new Promise((r) => setTimeout(r, 1500));
    const dead = view!.leader!;
    await ctl[dead]!.kill('SIGKILL');
    await waitForAsync(`a replica to take over from ${dead}`, async () => {
      const alive = ids.find((x) => x !== dead)!;
      view = await cluster(alive).catch(() => view);
      return view!.leader !== null && view!.leader !== dead;
    });
    if (k === 0) await broker.fault?.();
    else await broker.heal?.();
    await sendReadings(50);
    await start(dead);
  }
  let status: { status: string; waves: { status: string }[] } | undefined;
  await waitForAsync(
    'the rollout to complete',
    async () => {
      const r = await api(ctl[any()]!.url, admin, 'GET', `/api/rollouts/${id}`).catch(() => undefined);
      if (r?.status === 200) status = r.body;
      return status?.status === 'completed';
    },
    120_000,
  ).catch((err) => {
    const logs = ids.map((x) => `--- ${x}:\n${ctl[x]!.stdout().slice(-3000)}`).join('\n');
    throw new Error(`${(err as Error).message}; last status ${JSON.stringify(status)}\n${logs}`);
  });
  expect(status!.waves.map((w) => w.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);

  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    // one execution per device, SUCCEEDED: the outcome of a rollout nothing happened to
    const execs = (await db.query('SELECT thing, execution_number, status FROM job_executions WHERE job_id = $1', [id]))
      .rows;
    expect(execs).toHaveLength(devices);
    expect(execs.every((e) => Number(e.execution_number) === 1 && e.status === 'SUCCEEDED')).toBe(true);
    // one rollout.completed, one wave.started per wave, whichever replica wrote them
    const kinds = (await db.query('SELECT kind FROM rollout_events WHERE rollout = $1', [id])).rows.map((r) => r.kind);
    expect(kinds.filter((k) => k === 'rollout.completed')).toHaveLength(1);
    // every reading stored once (the killed replicas' sessions were delivered again when they came back)
    await waitForAsync(
      'every reading stored',
      async () => Number((await db.query('SELECT COUNT(*) AS n FROM telemetry')).rows[0].n) === devices * seq,
      60_000,
    );
    const dupes = (await db.query('SELECT device, seq FROM telemetry GROUP BY device, seq HAVING COUNT(*) > 1')).rows;
    expect(dupes).toEqual([]);
    const cursors = (await db.query('SELECT cursor FROM telemetry ORDER BY cursor')).rows.map((r) => Number(r.cursor));
    expect(cursors).toEqual(Array.from({ length: cursors.length }, (_, i) => i + 1)); // gap-free
  } finally {
    await db.end();
  }
  // the follower's event stream: increasing ids, each once, the rollout's end included
  await waitForAsync('the completed event on the follower’s stream', async () =>
    events.got.some((e) => e.kind === 'rollout.completed'),
  );
  const seen = events.got.map((e) => e.id);
  expect(seen).toEqual([...new Set(seen)].sort((x, y) => x - y));
}

describe.skipIf(!ready)('controller replicas on one PostgreSQL, through Mosquitto with shared subscriptions', () => {
  it('three replicas: a rollout ends the same with its leader killed twice; readings stored once; API and SSE on a follower', async () => {
    const mosq = await startMosquitto();
    cleanups.push(() => mosq.stop());
    await rolloutThroughKills({
      args: () => ['--external-broker', mosq.url, '--broker-connections', '2'],
      deviceUrl: () => mosq.url,
    });
  }, 300_000);

  it('split brain: a leader frozen past its lease is fenced out when it wakes, and follows', async () => {
    const dir = tmp('replicas-stop');
    const mosq = await startMosquitto();
    cleanups.push(() => mosq.stop());
    const url = await testDatabaseFor(join(dir, 'a'));
    const ctl: Record<string, ControllerProcess> = {};
    for (const id of ['a', 'b']) {
      const d = join(dir, id);
      mkdirSync(d, { recursive: true });
      if (id === 'b') copyFileSync(join(dir, 'a', 'admin-token'), join(d, 'admin-token'));
      ctl[id] = await spawnController(d, [
        '--external-broker',
        mosq.url,
        '--database',
        url,
        '--replica-id',
        id,
        '--lease',
        '1s',
        '--broker-connections',
        '1',
        '--http-port',
        '0',
        '--log-level',
        'warn',
      ]);
      cleanups.push(() => ctl[id]!.kill('SIGKILL'));
    }
    const admin = ctl.a!.adminToken;
    const view = async (via: string) => (await api(ctl[via]!.url, admin, 'GET', '/api/cluster')).body;
    await waitForAsync('a to lead', async () => (await view('b')).leader?.replica === 'a');
    const before = (await view('b')).leader.token as number;

    ctl.a!.proc.kill('SIGSTOP');
    cleanups.push(async () => ctl.a!.proc.kill('SIGCONT'));
    await waitForAsync(
      'b to take over while a is frozen',
      async () => (await view('b')).leader?.replica === 'b',
      20_000,
    );
    const after = (await view('b')).leader.token as number;
    expect(after).toBeGreaterThan(before); // a new fencing token
    ctl.a!.proc.kill('SIGCONT');

    // a wakes up believing it leads: its first write as leader (the rollout evaluation's check) is refused by the
    // database, and it steps down; b leads on, and a's view says so
    await waitForAsync('a to see b leading', async () => {
      const v = await view('a').catch(() => undefined);
      return v?.leader?.replica === 'b';
    });
    const a = await view('a');
    expect(a.refusedWrites.byDatabase + a.refusedWrites.locally).toBeGreaterThan(0);
    expect(ctl.a!.stdout()).toMatch(
      /a write as leader was refused|not evaluating rollouts: this replica does not lead/,
    );
    expect(ctl.a!.stdout()).toMatch(/lost the leader lease/);
    expect((await view('b')).leader).toMatchObject({ replica: 'b', token: after });
    expect((await view('a')).replicas.map((r: { id: string; leading: boolean }) => [r.id, r.leading])).toEqual([
      ['a', false],
      ['b', true],
    ]);
  }, 120_000);
});

describe.skipIf(!(ready && natsReady))(
  'controller replicas on one PostgreSQL, through a 3-node NATS cluster (JetStream, MQTT)',
  () => {
    it('three replicas: the same rollout through the leader killed twice and a NATS node killed once; devices on all three nodes', async () => {
      const nats = await startNatsCluster(3);
      cleanups.push(() => nats.stop());
      // each replica and each device starts on another node and moves on to the next when its node goes
      const rotated = (urls: string[], n: number) => urls.map((_, k) => urls[(n + k) % urls.length]!).join(',');
      const victim = nats.nodes[1]!;
      await rolloutThroughKills({
        args: (n) => ['--external-broker', rotated(nats.mqttUrls, n), '--nats', rotated(nats.natsUrls, n)],
        deviceUrl: (i) => rotated(nats.mqttUrls, i),
        fault: () => victim.kill(),
        heal: () => victim.start(),
      });
    }, 300_000);

    it('says what to do when --nats is given without its MQTT side, or names no NATS that answers', async () => {
      const dir = tmp('nats-cli');
      const base = ['serve', '--data-dir', dir, '--http-port', '0'];
      const alone = await controllerCli(...base, '--nats', 'nats://127.0.0.1:4222');
      expect(alone.code).toBe(78);
      expect(alone.err).toMatch(/E_CONFIG_INVALID: --nats needs --external-broker/);
      const bad = await controllerCli(...base, '--external-broker', 'mqtt://127.0.0.1:1', '--nats', 'http://x');
      expect(bad.code).toBe(78);
      expect(bad.err).toMatch(/--nats takes nats:\/\/host:port/);
      const mosq = await startMosquitto(); // an MQTT side that answers, and no NATS behind the given port
      cleanups.push(() => mosq.stop());
      const nowhere = `nats://127.0.0.1:${await freePort()}`;
      const gone = await controllerCli(...base, '--external-broker', mosq.url, '--nats', nowhere);
      expect(gone.code).toBe(69);
      expect(gone.err).toMatch(/E_BROKER_UNREACHABLE: cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/);
    }, 60_000);
  },
);

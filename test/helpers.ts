import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeTelemetryPayload, type TelemetryBatch, topicFilters } from '@fleetwave/shared';
import { Aedes } from 'aedes';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { afterEach } from 'vitest';

export const AGENT_CLI = fileURLToPath(new URL('../agent/dist/cli.js', import.meta.url));

/** Things to undo after each test of the file (processes, brokers, clients), last first; failures are ignored. */
export function cleanupAfterEach(): (() => Promise<unknown>)[] {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });
  return cleanups;
}

export const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), `fw-${prefix}-`));

/** Polls a condition until it holds or the deadline passes (then throws with the description). */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** waitFor with an asynchronous condition (an API call, say), polled one call at a time. */
export async function waitForAsync(what: string, cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startAedesCloud(
  port = 0,
  o: { refuseSubscriptions?: { client: string; times: number } } = {},
): Promise<{ url: string; port: number; close(): Promise<void>; connects: () => number; subscribed: () => string[] }> {
  const broker = await Aedes.createBroker();
  let refuse = o.refuseSubscriptions?.times ?? 0;
  let connects = 0;
  const subscribed: string[] = [];
  broker.on('client', () => connects++);
  broker.authorizeSubscribe = (client, sub, done) => {
    // that client's first n refused (SUBACK 0x80), as a broker whose ACL or cluster cannot take them just now
    if (refuse > 0 && client?.id === o.refuseSubscriptions?.client) {
      refuse--;
      return done(null, null);
    }
    if (client?.id === o.refuseSubscriptions?.client) subscribed.push(sub.topic);
    done(null, sub);
  };
  const server: Server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const p = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${p}`,
    port: p,
    connects: () => connects,
    subscribed: () => subscribed,
    async close() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
      await closed;
    },
  };
}

/** Is a service binary here? Without it the test is skipped, unless FLEETWAVE_REQUIRE_SERVICES=1 (CI) makes it fail. */
/** Whether a file the tests need exists; under FLEETWAVE_REQUIRE_SERVICES=1 its absence is an error. */
export function haveFile(path: string, howToGet: string): boolean {
  if (existsSync(path)) return true;
  if (process.env.FLEETWAVE_REQUIRE_SERVICES === '1') {
    throw new Error(`${path} is required (FLEETWAVE_REQUIRE_SERVICES=1) but is missing: ${howToGet}`);
  }
  console.warn(`${path} is missing: skipping the tests that need it (${howToGet})`);
  return false;
}

export function haveBinary(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.FLEETWAVE_REQUIRE_SERVICES === '1') {
      throw new Error(`${bin} is required (FLEETWAVE_REQUIRE_SERVICES=1) but was not found on PATH`);
    }
    console.warn(`${bin} not found: skipping the tests that need it (install it, e.g. apt install ${bin})`);
    return false;
  }
}

/** A Mosquitto of the test's own, on a free port, that the test can stop and start again on the same port. */
export async function startMosquitto(
  auth = 'allow_anonymous true',
): Promise<{ url: string; port: number; dir: string; stop(): Promise<void>; start(): Promise<void> }> {
  const port = await freePort();
  const dir = tmp('mosq');
  chmodSync(dir, 0o777); // started as root, mosquitto drops to its own user and must still write its database here
  const conf = join(dir, 'mosquitto.conf');
  // persistence keeps a receiver's persistent session (and its queued messages) across a restart of this broker
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\n${auth}\npersistence true\npersistence_location ${dir}/\nlog_dest file ${dir}/mosquitto.log\n`,
  );
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    for (;;) {
      // listening is enough: a CONNACK refusing an anonymous probe also proves the broker is up
      const ok = await new Promise<boolean>((resolve) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 1000 });
        c.once('connect', () => {
          resolve(true);
          c.end(true);
        });
        c.once('error', (err: Error & { code?: unknown }) => resolve(typeof err.code === 'number'));
        c.once('close', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline)
        throw new Error(`mosquitto did not start: ${readFileSync(join(dir, 'mosquitto.log'), 'utf8').slice(-500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGTERM');
    });
  };
  await start();
  return { url: `mqtt://127.0.0.1:${port}`, port, dir, stop, start };
}

export interface AgentProcess {
  proc: ChildProcess;
  ingestUrl: string;
  stderr: () => string;
  /** Everything the agent wrote to stdout (its machine-readable JSON lines). */
  stdout: () => string;
  /** Calls fn with every stdout line from now on. */
  onLine(fn: (line: string) => void): void;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The agent as a child process; `opts.command` runs another build of it (the single executable, under qemu…). */
export async function spawnAgent(
  args: string[],
  opts: { command?: string[]; env?: NodeJS.ProcessEnv; cwd?: string; readyTimeoutMs?: number } = {},
): Promise<AgentProcess> {
  const [cmd, ...pre] = opts.command ?? [process.execPath, AGENT_CLI];
  const proc = spawn(cmd!, [...pre, 'run', '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.env && { env: opts.env }),
    ...(opts.cwd && { cwd: opts.cwd }),
  });
  let err = '';
  let out = '';
  let partial = '';
  const lineListeners: ((line: string) => void)[] = [];
  proc.stderr!.on('data', (d) => (err += d));
  proc.stdout!.on('data', (d) => {
    out += d;
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const l of lines) for (const fn of lineListeners) fn(l);
  });
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`agent did not become ready: ${err}`)), opts.readyTimeoutMs ?? 15_000);
    proc.stdout!.on('data', () => {
      const m = /"event":"ready","ingest":\{"host":"[^"]*","port":(\d+)\}/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`agent exited with ${code}: ${err}`));
    });
  });
  return {
    proc,
    ingestUrl: `mqtt://127.0.0.1:${port}`,
    stderr: () => err,
    stdout: () => out,
    onLine: (fn) => lineListeners.push(fn),
    kill: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}

/**
 * Runs `node <args>` and sends it one SIGTERM the instant its stdout shows `"event":"ready"`, as a supervisor may;
 * resolves with how it ended. One signal only: a second one while stopping ends a Fleetwave process at once.
 */
export function signalAtReady(args: string[]): Promise<{ code: number | null; signal: string | null; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
    let out = '';
    let err = '';
    let sent = false;
    p.stderr!.on('data', (d) => (err += d));
    p.stdout!.on('data', (d) => {
      out += d;
      if (!sent && out.includes('"event":"ready"')) sent = p.kill('SIGTERM');
    });
    p.on('exit', (code, signal) => resolve({ code, signal, err }));
  });
}

/** Subscribes to a device's telemetry and keeps every record by sequence number, checking re-sends are identical. */
export class Receiver {
  readonly bySeq = new Map<number, TelemetryBatch['records'][number]>();
  duplicates = 0;
  conflicting = 0;
  batches = 0;
  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, root = 'fleetwave'): Promise<Receiver> {
    const clientId = `receiver-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const client = await mqtt.connectAsync(url, { clientId, clean: false, reconnectPeriod: 200 });
    const r = new Receiver(client);
    client.on('message', (_t, payload) => r.take(decodeTelemetryPayload(payload)));
    client.on('connect', () => client.subscribe(topicFilters.allDevices(root, 'telemetry'), { qos: 1 }));
    await client.subscribeAsync(topicFilters.allDevices(root, 'telemetry'), { qos: 1 });
    return r;
  }

  private take(b: TelemetryBatch): void {
    this.batches++;
    for (const rec of b.records) {
      const prev = this.bySeq.get(rec.seq);
      if (prev) {
        this.duplicates++;
        if (JSON.stringify(prev) !== JSON.stringify(rec)) this.conflicting++;
      } else this.bySeq.set(rec.seq, rec);
    }
  }

  /** The sensors' readings (the agent's own `_health/…` streams left out). */
  readings(): { seq: number; stream: string; value: number }[] {
    return [...this.bySeq.values()].flatMap((r) =>
      r.kind === 'reading' && !r.stream.startsWith('_health/')
        ? [{ seq: r.seq, stream: r.stream, value: r.value }]
        : [],
    );
  }

  /** The agent's own health readings. */
  health(): { stream: string; value: number }[] {
    return [...this.bySeq.values()].flatMap((r) =>
      r.kind === 'reading' && r.stream.startsWith('_health/') ? [{ stream: r.stream, value: r.value }] : [],
    );
  }

  /** Sequence numbers 1..max with none missing? */
  gapFree(): boolean {
    const max = Math.max(0, ...this.bySeq.keys());
    return this.bySeq.size === max;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

/** A sensor that publishes QoS 1 and remembers which values the agent acknowledged (PUBACK). */
export async function sensor(
  url: string,
  id: string,
): Promise<{ client: MqttClient; acked: Set<number>; send(topic: string, v: number): Promise<boolean> }> {
  const client = await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0, clean: true });
  const acked = new Set<number>();
  return {
    client,
    acked,
    send: (topic, v) =>
      new Promise((resolve) => {
        client.publish(topic, String(v), { qos: 1 }, (err) => {
          if (!err) acked.add(v);
          resolve(!err);
        });
      }),
  };
}

export const CONTROLLER_CLI = fileURLToPath(new URL('../controller/dist/cli.js', import.meta.url));
/** The demo (its own package: it runs the controller and agents). */
export const DEMO_CLI = fileURLToPath(new URL('../demo/dist/cli.js', import.meta.url));

export interface ControllerProcess {
  proc: ChildProcess;
  http: number;
  mqtt: number | null;
  ws: number | null;
  mqtts: number | null;
  url: string;
  adminToken: string;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** What it wrote to stdout so far (the ready line, then its log: pino writes there). */
  stdout(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Which database the end-to-end tests' controllers use: FLEETWAVE_TEST_DATABASE=postgres, else SQLite. */
export const TEST_DATABASE = process.env.FLEETWAVE_TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite';

/**
 * The PostgreSQL database of a controller data directory in a FLEETWAVE_TEST_DATABASE=postgres run: created on the
 * first start and kept in the directory, so a restarted controller finds its state (test/global-setup.ts drops it).
 */
export async function testDatabaseFor(dataDir: string): Promise<string> {
  const file = join(dataDir, 'test-database-url');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const name = `fw_e2e_${process.env.FLEETWAVE_E2E_RUN ?? 'x'}_${randomBytes(5).toString('hex')}`;
  const adminUrl = process.env.FLEETWAVE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, url.toString());
  return url.toString();
}

/**
 * Rows of a read-only SQL query on a stopped (or running) controller's database, whichever it is (write SQL both
 * SQLite and PostgreSQL read the same way).
 */
export async function queryControllerDb(dataDir: string, sql: string): Promise<Record<string, unknown>[]> {
  if (TEST_DATABASE === 'postgres') {
    const c = new pg.Client({ connectionString: await testDatabaseFor(dataDir) });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  }
  const db = new Database(join(dataDir, 'fleet.db'), { readonly: true });
  try {
    return db.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

/** The controller as a child process (`fleetwave serve`), waiting for its ready line. */
export async function spawnController(dataDir: string, args: string[] = []): Promise<ControllerProcess> {
  const database =
    TEST_DATABASE === 'postgres' && !args.includes('--database') ? ['--database', await testDatabaseFor(dataDir)] : [];
  const proc = spawn(
    process.execPath,
    [CONTROLLER_CLI, 'serve', '--data-dir', dataDir, '--log-level', 'warn', ...database, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  let all = '';
  proc.stderr!.on('data', (d) => (err += d));
  proc.stdout!.on('data', (d) => (all += d));
  const ready = await new Promise<{ http: number; mqtt: number | null; ws: number | null; mqtts: number | null }>(
    (resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`controller did not become ready: ${err}`)), 20_000);
      proc.stdout!.on('data', (d) => {
        out += d;
        const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
        if (line) {
          clearTimeout(t);
          resolve(JSON.parse(line));
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`controller exited with ${code}: ${err}`));
      });
    },
  );
  return {
    proc,
    ...ready,
    url: `http://127.0.0.1:${ready.http}`,
    adminToken: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(),
    stderr: () => err,
    stdout: () => all,
    kill: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}

/**
 * A device that speaks only the jobs protocol (no agent): every 300 ms it asks start-next and reports what it got
 * SUCCEEDED; a request lost or refused meanwhile is simply asked again, as an agent does. Ended after the test.
 */
export async function jobsDevice(
  url: string,
  id: string,
  cleanups: (() => Promise<unknown>)[],
  credentials: { username?: string; password?: string } = {},
): Promise<MqttClient> {
  // several URLs (comma-separated): the nodes of one cluster, the next taken when one goes
  const [first, ...more] = url.split(',');
  const servers = more.length
    ? [first!, ...more].map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) }))
    : undefined;
  const c = await mqtt.connectAsync(first!, {
    clientId: id,
    reconnectPeriod: 200,
    resubscribe: false,
    ...(servers && { servers }),
    ...credentials,
  });
  const base = `fleetwave/jobs/${id}/jobs`;
  c.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString());
    if (topic === `${base}/start-next/accepted` && body.execution) {
      c.publish(`${base}/${body.execution.jobId}/update`, JSON.stringify({ status: 'SUCCEEDED' }), { qos: 1 });
    }
  });
  // on every connection, and again while the broker refuses it (SUBACK 0x80: a NATS node whose JetStream is electing
  // a leader cannot set up a QoS 1 subscription for some seconds), as the agent does
  const subscribe = () =>
    c.subscribe(`${base}/start-next/accepted`, { qos: 1 }, (err, granted) => {
      if (c.connected && (err || granted?.some((g) => g.qos > 2))) setTimeout(subscribe, 500);
    });
  c.on('connect', subscribe);
  subscribe();
  const poll = setInterval(() => c.publish(`${base}/start-next`, '{}', { qos: 1 }), 300);
  cleanups.push(async () => {
    clearInterval(poll);
    await c.endAsync(true);
  });
  return c;
}

/** A JSON call to the controller's API. */
export async function api(base: string, token: string | undefined, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token && { authorization: `Bearer ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Registers a device through the API and writes its token and an agent config file. */
export async function enrolDevice(
  ctl: ControllerProcess,
  id: string,
  dir: string,
  mqttUrl: string,
  tags: Record<string, string> = {},
  hardware?: string,
) {
  const r = await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id, tags, ...(hardware && { hardware }) });
  if (r.status !== 201) throw new Error(`device add ${id}: ${JSON.stringify(r.body)}`);
  const tokenFile = join(dir, `${id}.token`);
  writeFileSync(tokenFile, r.body.token);
  const config = join(dir, `${id}.yaml`);
  writeFileSync(
    config,
    `device: { id: ${id} }\ndataDir: ${dir}/${id}\ningest: { port: 0 }\nuplink: { url: '${mqttUrl}', username: ${id}, tokenFile: ${tokenFile}, backoffMinMs: 100, backoffMaxMs: 500 }\n`,
  );
  return { token: r.body.token as string, config };
}

/** An HTTP server on 127.0.0.1 that records every JSON body POSTed to it (a webhook receiver); closed after the test. */
export async function webhookReceiver<T = unknown>(cleanups: (() => Promise<unknown>)[]) {
  const hooks: T[] = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      hooks.push(JSON.parse(body) as T);
      res.end('ok');
    });
  }).listen(0, '127.0.0.1');
  cleanups.push(() => new Promise((r) => server.close(r)));
  await new Promise((r) => server.once('listening', r));
  return { hooks, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook` };
}

/** A self-signed server certificate (P-256) for localhost and 127.0.0.1, made with openssl; key readable by others. */
export function selfSignedCert(dir: string): { key: string; cert: string } {
  const key = join(dir, 'server.key');
  const cert = join(dir, 'server.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  chmodSync(key, 0o644); // a broker started as root may read it as its own user
  return { key, cert };
}

/** The CLI as a child process (not spawnSync: the test's own servers keep answering meanwhile). */
export function controllerCli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CONTROLLER_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

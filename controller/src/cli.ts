#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { exitOnUncaught, FleetwaveError, firstStopSignal, parseDurationMs } from '@fleetwave/shared';
import { pino } from 'pino';
import { readTopicRoots } from './broker/mosquitto-config.js';
import { runAwsCommand } from './cli-aws.js';
import { writeMosquittoConfig } from './cli-broker.js';
import { runCaCommand, runCertClientCommand } from './cli-certs.js';
import { resolveToken, resolveUrl, writeControllerUrl } from './cli-client.js';
import { runClientCommand } from './cli-commands.js';
import { runDbCommand } from './cli-db.js';
import { commandHelp } from './cli-help.js';
import { PREDICT_USAGE, runPredictCommand } from './cli-predict.js';
import { type ControllerConfig, createController, defaultControllerConfig } from './controller.js';
import { releaseTool } from './release-tool.js';

const HELP = `fleetwave: the Fleetwave controller and its operator CLI

Usage:
  fleetwave serve [options]                 run the controller (embedded MQTT broker + SQLite in --data-dir)
  fleetwave device add <id> [--tag k=v]… [--hardware h] [--out <dir>] [--agent-dir <dir>]
                                            register a device; prints its token once and a complete agent config
                                            (uplink, credentials, updates with the jobs root, data dir); --out writes
                                            agent.yaml, token and trusted-keys/ there, to copy to --agent-dir on the
                                            device (default /etc/fleetwave, the directory the config's paths name)
  fleetwave device add <id> --cert [--out <dir>] [--uplink-url mqtts://…] [--days n | --validity 7d]
                                            register a device with a client certificate from the fleet CA (its key
                                            made here, written to --out only); the agent signs in over TLS with it
  fleetwave device certify <id> --csr <file> [--days n] [--out <file>]
                                            sign a CSR the device made (fleetwave-agent csr): its key never leaves it
  fleetwave device certs <id> | revoke-cert <id> [--fingerprint f]   a device's certificates; revoke one or all
  fleetwave ca init [--cn <name>] [--days 3650] | ca import --ca-cert <pem> --ca-key <pem>
                                            the fleet CA in --data-dir/ca (bring your own with import: EC P-256/P-384)
  fleetwave device list | show <id> | revoke <id>
  fleetwave device set <id> [--tag k=v]… [--untag k]… [--hardware h]
                                            change a device's tags (merged into its own) or hardware
  fleetwave enrolment create [--uses n] [--tag k=v]…   a fleet enrolment token gateways register themselves with
  fleetwave token create <name> --role viewer|operator|admin|backend | token list | token revoke <id>
  fleetwave telemetry tail [--device id] [--after cursor] [--follow]
  fleetwave config apply <layer.yaml> | diff <layer.yaml> | effective <device> | layers | status
  fleetwave config history [name] | revert <name> | remove <name>
  fleetwave audit [--limit n]
  fleetwave cluster status                  the controller replicas on this database, which one leads (since when, its
                                            fencing token), when each was last seen and how far its feeds lag
  fleetwave release keygen --out <prefix>    an Ed25519 key pair: <prefix>.key (private, 0600) and <prefix>.pem
  fleetwave release sign <body.json> --key <prefix.key> --out <manifest.json>   sign a manifest body
  fleetwave release add <manifest.json> [--artifact <file>]…   register a signed release (verified) and upload artifacts
  fleetwave release list
  fleetwave rollout plan <plan.yaml>        which devices go in which wave, and when (nothing is started)
  fleetwave rollout apply <plan.yaml>       start a rollout
  fleetwave rollout status [id] | watch <id>   one rollout (waves, progress, thresholds) or all; watch: live view
  fleetwave rollout pause|resume|abort|rollback <id> | approve <id> [--wave n]
  fleetwave rollout events [id] [--after n] [--follow]
  fleetwave aws provision --fleet <name> --out <dir> [--region r] [--endpoint-url u] [--ca-file f]
                                            the registry's devices onto AWS IoT Core: thing group, least-privilege
                                            policy, things, certificates (keys to files only), agent configs
  fleetwave aws sync --fleet <name>         things of the fleet's group on AWS that the registry lacks are registered
  fleetwave predict simulate --out <dir> [--devices n] [--days n]   a gateway fleet's health history with failures
  fleetwave predict train --history <csv> --failures <csv> --out <model.json> [--rul]
  fleetwave predict backtest --history <csv> --failures <csv> [--rul] [--folds 5] [--threshold 0.8,0.9]
                                            cross-validated precision, recall and lead time at --horizon (default
                                            7d), or with --rul the remaining-life RMSE (run-to-failure data)
  fleetwave predict score --model <model.json> --history <csv>   each device's risk, likely mode and signals
  fleetwave predict status | learn | install <model.json>   the controller's model, devices at risk, labels;
                                            learn: train on the fleet's own labelled history
  fleetwave device mark-failed <id> [--mode m] [--replaced] [--note t] | unmark-failed <id>   failure labels
  fleetwave db migrate [--database url]    bring the database's schema to this controller's (serve does it too)
  fleetwave db copy --from <url> --to <url>
                                            copy all controller state (stop the controller first); refuses a
                                            target that holds any; verified by row counts and checksums per table
  fleetwave broker mosquitto-config --out <dir> [--topic-root r] [--jobs-root r]
                          [--cert --tls-cert <pem> --tls-key <pem> [--mqtts-port 8883]]
                                            password file, ACL and config lines for an external Mosquitto; the topic
                                            roots default to those the controller in --data-dir last ran with; --cert
                                            adds a TLS listener for fleet-CA certificates (ca.pem, crl.pem)

serve options:
  --data-dir <dir>        default ./.fleetwave/controller
  --database <url>        where the controller's state is: postgres://user[:password]@host[:port]/db, or
                          sqlite:<file> (default: FLEETWAVE_DATABASE_URL, else <data-dir>/fleet.db); artifacts,
                          trusted keys stay in --data-dir either way
  --replica-id <id>       this controller's id among the replicas on one PostgreSQL (default: host name and pid);
                          every replica serves the API, devices and ingest, the leader also runs the waves
  --lease <duration>      how long the leader lease lasts unrenewed (default 3s): a dead leader's duties move to
                          another replica within about that
  --host <addr>           listen address (default 127.0.0.1)
  --http-port <port>      API and dashboard (default 8080; 0 picks a free one)
  --mqtt-port <port>      embedded broker, MQTT over TCP (default 1883; 0 picks a free one)
  --ws-port <port>        embedded broker, MQTT over WebSocket (off unless given)
  --mqtts-port <port>     embedded broker, MQTT over TLS (with --tls-cert and --tls-key; off unless given)
  --tls-cert <file> --tls-key <file>   PEM certificate chain and key for MQTT over TLS
  --client-ca <pem>       devices may sign in on the TLS listener with a certificate this CA issued (default: the
                          fleet CA of --data-dir, from "fleetwave ca init", when there is one)
  --require-client-cert   the TLS listener takes certificates only, no tokens
  --max-packet-bytes <n>  largest MQTT packet a client of the embedded broker may send (default 2097152); a larger
                          one closes its connection before it is buffered
  --connect-rate <n>      CONNECTs the embedded broker takes per second (default 5000); beyond, CONNACK 3 (server
                          unavailable) at once and the device tries again: a reconnecting fleet is let in at that rate
  --external-broker <url> use this broker instead of the embedded one (e.g. mqtt://127.0.0.1:1883)
  --broker-username <u> --broker-password <p>   credentials for the external broker
  --nats <url>[,<url>…]   the external broker is a NATS cluster (--external-broker: its MQTT listeners): device
                          messages come through NATS, telemetry through a JetStream stream all replicas share
  --broker-connections <n>  connections to it, sharing the device topics ($share/fleetwave/…; default 4); 1 on a
                          Mosquitto with use_username_as_clientid, where every connection of one user gets one
                          client id and they would push each other off
  --public-mqtt-url <url> the broker URL agents use, printed at enrolment
  --retention <duration>  how long telemetry is kept (default 7d)
  --trusted-key <pem>     a public key releases must be signed with (repeatable; default <data-dir>/trusted-keys/*.pem)
  --webhook <url>         POST every rollout event here as JSON (repeatable)
  --public-http-url <url> the controller's HTTP address as devices reach it (artifact downloads)
  --topic-root <root>     the device topics' root (default fleetwave)
  --jobs-root <root>      the jobs protocol's topic root (default fleetwave/jobs; $aws/things as on AWS IoT Core)
  --jobs-backend local|aws-iot   where rollouts run their jobs (default local: the controller's own jobs service;
                          aws-iot: each wave is an AWS IoT Job on a thing group, needs --fleet and --region or
                          AWS_REGION; credentials from the standard AWS chain; --endpoint-url overrides the endpoint)
  --aws-poll-interval <d> how often AWS IoT Jobs executions are read back (default 5s)
  --model <file>          a failure-risk model to import at start, replacing the one kept in the database
                          (without it: <data-dir>/model.json is imported when the database holds none)
  --risk-threshold <p>    raise a device.at-risk event (webhook) at this predicted risk (default 0.8)
  --log-level <level>     default info

Client options (all other commands):
  --url <url>      the controller's API (default FLEETWAVE_URL, else the URL a controller serving from
                   --data-dir wrote there, else http://127.0.0.1:8080)
  --token <token>  an API token (default FLEETWAVE_TOKEN, else <data-dir>/admin-token)
  --json           machine-readable output
  -h, --help       this help
`;

/** `--jobs-backend aws-iot` and its flags as the controller's configuration (checked before anything starts). */
function jobsBackend(v: {
  'jobs-backend'?: string | undefined;
  fleet?: string | undefined;
  region?: string | undefined;
  'endpoint-url'?: string | undefined;
  'aws-poll-interval'?: string | undefined;
}): Pick<ControllerConfig, 'awsJobs'> {
  const kind = v['jobs-backend'] ?? 'local';
  if (kind === 'local') return {};
  if (kind !== 'aws-iot') {
    throw new FleetwaveError('E_CONFIG_INVALID', `--jobs-backend must be local or aws-iot, got "${kind}"`);
  }
  const region = v.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new FleetwaveError('E_CONFIG_INVALID', '--jobs-backend aws-iot: pass --region or set AWS_REGION');
  if (!v.fleet) {
    throw new FleetwaveError('E_CONFIG_INVALID', '--jobs-backend aws-iot needs --fleet <thing group of the fleet>');
  }
  return {
    awsJobs: {
      fleet: v.fleet,
      region,
      ...(v['endpoint-url'] && { endpointUrl: v['endpoint-url'] }),
      ...(v['aws-poll-interval'] && { pollMs: parseDurationMs(v['aws-poll-interval']) }),
    },
  };
}

function probability(s: string, flag: string): number {
  const n = Number(s);
  if (!(n > 0 && n < 1)) throw new FleetwaveError('E_CONFIG_INVALID', `${flag} must be a probability between 0 and 1`);
  return n;
}

function count(s: string, flag: string, min: number, max: number): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new FleetwaveError('E_CONFIG_INVALID', `${flag} must be a whole number from ${min} to ${max}, got "${s}"`);
  }
  return n;
}

function topicRoot(s: string, flag: string): string {
  if (!/^[^/+#\s]+(\/[^/+#\s]+)*$/.test(s) || s.length > 128) {
    throw new FleetwaveError('E_CONFIG_INVALID', `${flag} must be topic segments without wildcards, got "${s}"`);
  }
  return s;
}

/**
 * Exit codes (sysexits): 78 a configuration the controller cannot use (fix it and start again), 69 a service it needs
 * does not answer (try again later), 73 a target it must not overwrite, 1 anything else.
 */
function exitCodeOf(code: string): number {
  if (
    [
      'E_CONFIG_INVALID',
      'E_PORT_IN_USE',
      'E_DATABASE_URL',
      'E_DATABASE_SCHEMA',
      'E_CA_MISSING',
      'E_CERT_INVALID',
    ].includes(code)
  ) {
    return 78;
  }
  if (['E_DATABASE_UNREACHABLE', 'E_BROKER_UNREACHABLE', 'E_CONTROLLER_UNREACHABLE'].includes(code)) return 69;
  if (code === 'E_DATABASE_NOT_EMPTY') return 73;
  return 1;
}

function natsUrls(s: string): string[] {
  const urls = s.split(',').map((u) => u.trim());
  for (const u of urls) {
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(u) && !/^[^:/\s]+:\d+$/.test(u)) {
      throw new FleetwaveError('E_CONFIG_INVALID', `--nats takes nats://host:port[,…], got "${u}"`);
    }
  }
  return urls;
}

function replicaIdOf(s: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(s)) {
    throw new FleetwaveError('E_CONFIG_INVALID', `--replica-id must be 1-64 of [A-Za-z0-9._-], got "${s}"`);
  }
  return s;
}

/** A flag another flag needs (`by` names that one). */
function requireFlag(value: string | undefined, flag: string, by: string): string {
  if (!value) throw new FleetwaveError('E_CONFIG_INVALID', `${by} needs ${flag} <file>`);
  return value;
}

async function main(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      database: { type: 'string' },
      'replica-id': { type: 'string' },
      lease: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      host: { type: 'string' },
      'http-port': { type: 'string' },
      'mqtt-port': { type: 'string' },
      'ws-port': { type: 'string' },
      'mqtts-port': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'client-ca': { type: 'string' },
      'require-client-cert': { type: 'boolean' },
      'external-broker': { type: 'string' },
      'broker-username': { type: 'string' },
      'broker-password': { type: 'string' },
      'broker-connections': { type: 'string' },
      nats: { type: 'string' },
      'max-packet-bytes': { type: 'string' },
      'connect-rate': { type: 'string' },
      'public-mqtt-url': { type: 'string' },
      retention: { type: 'string' },
      'log-level': { type: 'string' },
      url: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      tag: { type: 'string', multiple: true },
      untag: { type: 'string', multiple: true },
      hardware: { type: 'string' },
      role: { type: 'string' },
      uses: { type: 'string' },
      device: { type: 'string' },
      after: { type: 'string' },
      follow: { type: 'boolean' },
      limit: { type: 'string' },
      out: { type: 'string' },
      'trusted-key': { type: 'string', multiple: true },
      webhook: { type: 'string', multiple: true },
      'public-http-url': { type: 'string' },
      'jobs-root': { type: 'string' },
      'topic-root': { type: 'string' },
      'agent-dir': { type: 'string' },
      'jobs-backend': { type: 'string' },
      'aws-poll-interval': { type: 'string' },
      artifact: { type: 'string', multiple: true },
      key: { type: 'string' },
      fleet: { type: 'string' },
      region: { type: 'string' },
      'endpoint-url': { type: 'string' },
      'ca-file': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      cert: { type: 'boolean' },
      csr: { type: 'string' },
      cn: { type: 'string' },
      fingerprint: { type: 'string' },
      validity: { type: 'string' },
      'uplink-url': { type: 'string' },
      wave: { type: 'string' },
      history: { type: 'string' },
      failures: { type: 'string' },
      model: { type: 'string' },
      horizon: { type: 'string' },
      step: { type: 'string' },
      windows: { type: 'string' },
      folds: { type: 'string' },
      threshold: { type: 'string' },
      rul: { type: 'boolean' },
      'rul-cap': { type: 'string' },
      epochs: { type: 'string' },
      devices: { type: 'string' },
      days: { type: 'string' },
      seed: { type: 'string' },
      mode: { type: 'string' },
      replaced: { type: 'boolean' },
      note: { type: 'string' },
      'risk-threshold': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, sub, arg] = positionals;
  if (v.help && cmd) {
    // one command's usage and options; a command the help does not know gets all of it, as a usage error
    const one = commandHelp(HELP, cmd, sub, cmd === 'predict' ? PREDICT_USAGE : '');
    process.stdout.write(one ?? HELP);
    return one ? 0 : 2;
  }
  if (v.help || !cmd) {
    process.stdout.write(HELP);
    return v.help ? 0 : 2;
  }
  const dataDir = v['data-dir'] ?? './.fleetwave/controller';
  const port = (s: string | undefined, d: number, flag = 'port') => {
    if (s === undefined) return d;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0 || n > 65_535) {
      throw new FleetwaveError('E_CONFIG_INVALID', `${flag} must be a port number from 0 to 65535, got "${s}"`);
    }
    return n;
  };
  if (cmd === 'serve') {
    if (v.nats !== undefined && !v['external-broker']) {
      throw new FleetwaveError(
        'E_CONFIG_INVALID',
        '--nats needs --external-broker with the MQTT listener(s) of the same NATS cluster (the controller sends over MQTT)',
      );
    }
    const database = v.database ?? process.env.FLEETWAVE_DATABASE_URL;
    const config = {
      ...defaultControllerConfig(dataDir),
      ...(database && { database }),
      ...(v['replica-id'] && { replicaId: replicaIdOf(v['replica-id']) }),
      ...(v.lease && { leaseMs: parseDurationMs(v.lease) }),
      host: v.host ?? '127.0.0.1',
      httpPort: port(v['http-port'], 8080, '--http-port'),
      mqttPort: port(v['mqtt-port'], 1883, '--mqtt-port'),
      ...(v['ws-port'] !== undefined && { wsPort: port(v['ws-port'], 0, '--ws-port') }),
      ...(v['mqtts-port'] !== undefined && {
        tls: {
          port: port(v['mqtts-port'], 0, '--mqtts-port'),
          certFile: requireFlag(v['tls-cert'], '--tls-cert', '--mqtts-port'),
          keyFile: requireFlag(v['tls-key'], '--tls-key', '--mqtts-port'),
          ...(v['client-ca'] && { clientCaFile: v['client-ca'] }),
          ...(v['require-client-cert'] && { requireClientCert: true }),
        },
      }),
      ...(v['max-packet-bytes'] !== undefined && {
        maxPacketBytes: count(v['max-packet-bytes'], '--max-packet-bytes', 1024, 268_435_455),
      }),
      ...(v['connect-rate'] !== undefined && {
        maxConnectsPerSecond: count(v['connect-rate'], '--connect-rate', 1, 1_000_000),
      }),
      ...(v['external-broker'] && {
        external: {
          url: v['external-broker'],
          username: v['broker-username'],
          password: v['broker-password'],
          shareGroup: 'fleetwave',
          ...(v['broker-connections'] !== undefined && {
            connections: count(v['broker-connections'], '--broker-connections', 1, 64),
          }),
          ...(v.nats !== undefined && { nats: natsUrls(v.nats) }),
        },
      }),
      ...(v['public-mqtt-url'] && { publicMqttUrl: v['public-mqtt-url'] }),
      ...(v.retention && { retentionMs: parseDurationMs(v.retention) }),
      ...(v['trusted-key'] && { trustedKeyFiles: v['trusted-key'] }),
      ...(v.webhook && { webhooks: v.webhook }),
      ...(v['jobs-root'] && { jobsRoot: topicRoot(v['jobs-root'], '--jobs-root') }),
      ...(v['topic-root'] && { root: topicRoot(v['topic-root'], '--topic-root') }),
      ...(v['public-http-url'] && { publicHttpUrl: v['public-http-url'].replace(/\/$/, '') }),
      ...jobsBackend(v),
      ...(v.model && { modelFile: v.model }),
      ...(v['risk-threshold'] && { riskThreshold: probability(v['risk-threshold'], '--risk-threshold') }),
    };
    const log = pino({ level: v['log-level'] ?? 'info' });
    exitOnUncaught(log, 'fleetwave');
    const controller = createController({ config, log });
    // before "ready": a supervisor may signal the moment it reads it
    const signalled = firstStopSignal();
    const a = await controller.start();
    const forgetUrl = writeControllerUrl(config.dataDir, config.host, a.http);
    process.stdout.write(
      `${JSON.stringify({ event: 'ready', http: a.http, mqtt: a.mqtt ?? null, ws: a.ws ?? null, mqtts: a.mqtts ?? null, external: config.external?.url ?? null, replica: a.replica })}\n`,
    );
    process.stderr.write(
      `fleetwave controller: API http://${config.host}:${a.http}, ${config.external ? `broker ${config.external.url}` : `MQTT mqtt://${config.host}:${a.mqtt}`}` +
        `${a.adminTokenFile ? `, admin token in ${a.adminTokenFile}` : ''}\n`,
    );
    await signalled;
    await controller.stop();
    forgetUrl();
    return 0;
  }
  if (cmd === 'demo') {
    // the demo runs an agent too: it is a package of its own (demo/), so the controller does not depend on the agent
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      'the demo moved: npm run demo, or fleetwave-demo from @fleetwave/demo',
    );
  }
  if (cmd === 'release' && (sub === 'keygen' || sub === 'sign')) return releaseTool(sub, arg, v);
  if (cmd === 'predict' && ['simulate', 'train', 'backtest', 'score'].includes(sub ?? '')) {
    return runPredictCommand(sub, v);
  }
  if (cmd === 'db') return runDbCommand(sub, v, dataDir);
  if (cmd === 'ca') return runCaCommand(sub, v, dataDir);
  if (cmd === 'broker' && sub === 'mosquitto-config') {
    if (!v.out) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave broker mosquitto-config --out <dir>');
    const last = readTopicRoots(dataDir);
    const roots = {
      root: v['topic-root'] ? topicRoot(v['topic-root'], '--topic-root') : (last?.root ?? 'fleetwave'),
      jobsRoot: v['jobs-root'] ? topicRoot(v['jobs-root'], '--jobs-root') : (last?.jobsRoot ?? 'fleetwave/jobs'),
    };
    const from =
      v['topic-root'] || v['jobs-root'] ? 'as given' : last ? `as the controller in ${dataDir} ran` : 'defaults';
    await writeMosquittoConfig({
      out: v.out,
      dataDir,
      database: v.database ?? process.env.FLEETWAVE_DATABASE_URL,
      roots,
      rootsFrom: from,
      ...(v.cert && {
        certs: {
          port: port(v['mqtts-port'], 8883, '--mqtts-port'),
          certFile: requireFlag(v['tls-cert'], '--tls-cert', '--cert'),
          keyFile: requireFlag(v['tls-key'], '--tls-key', '--cert'),
        },
      }),
    });
    return 0;
  }
  const client = {
    url: resolveUrl(v.url, dataDir),
    token: resolveToken(v.token, dataDir),
  };
  if (cmd === 'aws') return runAwsCommand(sub, v, client);
  const certs = await runCertClientCommand(`${cmd} ${sub ?? ''}`.trim(), arg, v, client);
  if (certs !== undefined) return certs;
  return runClientCommand(cmd, sub, arg, v, client, HELP);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof FleetwaveError) {
      process.stderr.write(`fleetwave: ${err.code}: ${err.message}\n`);
      // the controller refused a request (its code is shown): 1; the CLI's own configuration or reach: by the code
      process.exit(err.details.httpStatus === undefined ? exitCodeOf(err.code) : 1);
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`fleetwave: ${(err as Error).message}\n\n${HELP}`);
      process.exit(2);
    }
    process.stderr.write(`fleetwave: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);

#!/usr/bin/env node
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import {
  certificateRequest,
  exitOnUncaught,
  FleetwaveError,
  firstStopSignal,
  trustedKeyFromPem,
} from '@fleetwave/shared';
import { pino } from 'pino';
import { AGENT_VERSION, createAgent } from './agent.js';
import { type ConfigOverrides, loadAgentConfig } from './config.js';
import { runDemo } from './demo.js';
import { filtersTest } from './filters/report.js';
import { SqliteOutboxStore } from './outbox/sqlite-store.js';
import { systemdNotify } from './sd-notify.js';
import { selfRollback } from './updates/installers/agent-self.js';
import { completeCertificateSwap } from './uplink/cert-renewal.js';

/** EX_TEMPFAIL: the agent asks its service manager to start it again (after switching its own executable). */
const EXIT_RESTART = 75;

const HELP = `fleetwave-agent ${AGENT_VERSION}: store-and-forward agent for edge gateways

Usage:
  fleetwave-agent [run] [options]          run the agent (the default command)
  fleetwave-agent check-config <file>      validate a config file; explain what is wrong and where
  fleetwave-agent status [options]         show the backlog of the agent using --data-dir or --config
  fleetwave-agent filters test --rules <file> --input <csv> [--json]
                                           replay readings (ts,stream,value CSV) through filter rules and print
                                           the reduction and the reconstruction error per stream
  fleetwave-agent self-rollback --config <file>
                                           point <updates.agentRoot>/bin/fleetwave-agent back at this executable
                                           (run by the service manager when a new version keeps failing to start)
  fleetwave-agent csr --device-id <id> --key <file> [--out <file>]
                                           a certificate signing request for this device (CN = its id); the key
                                           is made in --key (0600) unless it exists, and never leaves the device:
                                           the controller signs the CSR (fleetwave device certify <id> --csr <file>)
  fleetwave-agent demo [--sensors N]       a self-contained demo: a cloud broker, this agent and simulated sensors

Options:
  -c, --config <file>      YAML config file (see agent/README.md; only device.id is required)
      --device-id <id>     device id, overrides device.id
      --uplink-url <url>   cloud broker, e.g. mqtts://broker.example:8883 (default mqtt://127.0.0.1:1883)
      --listen <host:port> local MQTT listener for sensors (default 127.0.0.1:1884; port 0 picks a free one)
      --data-dir <dir>     where the outbox lives (default ./.fleetwave/agent)
      --log-level <level>  trace, debug, info, warn, error, fatal or silent
      --max-ack-delay <d>  outbox.maxAckDelay: longest a sensor waits for its PUBACK while readings are grouped
                           into one commit (default 1s; e.g. 5ms answers sooner, 5s spares the flash more)
  -h, --help               show this help
  -v, --version            print the version

Signals: SIGTERM or SIGINT commit what is queued, wait up to 5 s for acknowledgements in flight, and exit.
`;

/** A CSR for `id` with the EC key in `keyFile`, made there first (0600, P-256) when the file does not exist. */
function deviceCsr(id: string, keyFile: string): string {
  if (!existsSync(keyFile)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(readFileSync(keyFile));
  } catch (err) {
    throw new FleetwaveError('E_CONFIG_READ', `cannot read the key ${keyFile}: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec') {
    throw new FleetwaveError('E_CONFIG_INVALID', `${keyFile} is not an EC key: remove it to have one made`);
  }
  return certificateRequest(id, key);
}

function overrides(v: Record<string, string | boolean | undefined>): ConfigOverrides {
  const o: ConfigOverrides = {
    deviceId: v['device-id'] as string | undefined,
    uplinkUrl: v['uplink-url'] as string | undefined,
    dataDir: v['data-dir'] as string | undefined,
    logLevel: v['log-level'] as string | undefined,
    maxAckDelay: v['max-ack-delay'] as string | undefined,
  };
  const listen = v.listen as string | undefined;
  if (listen !== undefined) {
    const m = /^(.*):(\d{1,5})$/.exec(listen);
    if (!m) throw new FleetwaveError('E_CONFIG_INVALID', `--listen must be host:port, got "${listen}"`);
    o.listenHost = m[1];
    o.listenPort = Number(m[2]);
  }
  return o;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'device-id': { type: 'string' },
      'uplink-url': { type: 'string' },
      listen: { type: 'string' },
      'data-dir': { type: 'string' },
      'log-level': { type: 'string' },
      'max-ack-delay': { type: 'string' },
      sensors: { type: 'string' },
      rules: { type: 'string' },
      input: { type: 'string' },
      json: { type: 'boolean' },
      key: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  const [command = 'run', ...rest] = positionals;
  switch (command) {
    case 'self-rollback': {
      const file = values.config;
      if (!file) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave-agent self-rollback --config <file>');
      const c = loadAgentConfig(file, overrides(values));
      if (!c.updates.agentRoot) throw new FleetwaveError('E_CONFIG_INVALID', 'updates.agentRoot is not set');
      const target = selfRollback(c.updates.agentRoot, process.env.FLEETWAVE_AGENT_EXECUTABLE ?? process.execPath);
      process.stdout.write(`${c.updates.agentRoot}/bin/fleetwave-agent -> ${target}\n`);
      return 0;
    }
    case 'csr': {
      const id = values['device-id'] ?? (values.config ? loadAgentConfig(values.config).device.id : undefined);
      if (!id || !values.key) {
        throw new FleetwaveError(
          'E_CONFIG_INVALID',
          'usage: fleetwave-agent csr --device-id <id> --key <file> [--out <file>]',
        );
      }
      const csrPem = deviceCsr(id, values.key);
      if (values.out) writeFileSync(values.out, csrPem);
      process.stdout.write(values.out ? `wrote ${values.out} (CSR for CN=${id}; key in ${values.key})\n` : csrPem);
      return 0;
    }
    case 'check-config': {
      const file = rest[0] ?? values.config;
      if (!file) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave-agent check-config <file>');
      const c = loadAgentConfig(file);
      process.stdout.write(`${file}: valid (device ${c.device.id}, uplink ${c.uplink.url})\n`);
      return 0;
    }
    case 'status': {
      const dataDir = values.config
        ? loadAgentConfig(values.config, overrides(values)).dataDir
        : (values['data-dir'] ?? './.fleetwave/agent');
      const db = join(dataDir, 'outbox.db');
      if (!existsSync(db)) throw new FleetwaveError('E_CONFIG_READ', `no outbox at ${db}: is --data-dir right?`);
      const store = new SqliteOutboxStore(db, { readonly: true });
      const t = store.totals();
      const c = store.counters();
      store.close();
      const statusFile = join(dataDir, 'status.json');
      const live = existsSync(statusFile) ? JSON.parse(readFileSync(statusFile, 'utf8')) : undefined;
      process.stdout.write(
        [
          `outbox ${db}`,
          `  records held       ${t.records} in ${t.chunks} chunks (${t.bytes} bytes)`,
          `  sent, not acked    ${t.claimedRecords} records in ${t.claimedChunks} chunks`,
          `  oldest reading     ${t.oldestTs === null ? '-' : new Date(t.oldestTs).toISOString()}`,
          `  last sequence sent ${c.nextSeq - 1}`,
          `  dropped            cap ${c.droppedCap}, ttl ${c.droppedTtl}`,
          live
            ? `  last report        ${new Date(live.ts).toISOString()}: ${live.connected ? 'connected' : 'not connected'}, accepted ${live.accepted}, refused ${JSON.stringify(live.refused)}`
            : '  last report        none yet',
          '',
        ].join('\n'),
      );
      return 0;
    }
    case 'filters': {
      if (rest[0] !== 'test' || !values.rules || !values.input) {
        throw new FleetwaveError(
          'E_CONFIG_INVALID',
          'usage: fleetwave-agent filters test --rules <file> --input <csv>',
        );
      }
      process.stdout.write(filtersTest(values.rules, values.input, values.json ?? false));
      return 0;
    }
    case 'demo':
      await runDemo({ sensors: values.sensors ? Number(values.sensors) : 5 });
      return 0;
    case 'run': {
      const config = loadAgentConfig(values.config, overrides(values));
      const log = pino({ level: config.log.level, redact: ['password', '*.password', 'client.password'] });
      exitOnUncaught(log, 'fleetwave-agent');
      const token = config.uplink.tokenFile
        ? readFileSync(config.uplink.tokenFile, 'utf8').trim()
        : config.uplink.tokenEnv
          ? process.env[config.uplink.tokenEnv]
          : undefined;
      // a certificate renewal a crash interrupted is finished (or undone) before the pair is read
      if (config.uplink.certFile && config.uplink.keyFile) {
        completeCertificateSwap(config.uplink.certFile, config.uplink.keyFile);
      }
      const read = (f: string | undefined) => (f ? readFileSync(f) : undefined);
      const users = new Map<string, string>();
      for (const u of config.ingest.users) {
        const pw = u.password ?? process.env[u.passwordEnv!];
        if (!pw) throw new FleetwaveError('E_CONFIG_INVALID', `sensor user ${u.username}: ${u.passwordEnv} is not set`);
        users.set(u.username, pw);
      }
      const client = {
        ...(config.uplink.caFile && { ca: read(config.uplink.caFile) }),
        ...(config.uplink.certFile && { cert: read(config.uplink.certFile) }),
        ...(config.uplink.keyFile && { key: read(config.uplink.keyFile) }),
        ...(config.uplink.username && { username: config.uplink.username }),
        ...(token && { password: token }),
      };
      const trustedKeys = config.updates.trustedKeys.map((f) => {
        try {
          return trustedKeyFromPem(readFileSync(f, 'utf8'));
        } catch (err) {
          throw new FleetwaveError('E_CONFIG_INVALID', `updates.trustedKeys: ${f}: ${(err as Error).message}`);
        }
      });
      if (config.updates.enabled && trustedKeys.length === 0) {
        throw new FleetwaveError('E_CONFIG_INVALID', 'updates.enabled needs at least one updates.trustedKeys file');
      }
      const agent = createAgent({
        config,
        log,
        uplinkClient: client,
        sensorUsers: users,
        trustedKeys,
        // one machine-readable line per persisted update stage, for supervisors and tests
        onUpdateStage: (st) => process.stdout.write(`${JSON.stringify({ event: 'update-stage', ...st })}\n`),
        // self-update: stop cleanly, then exit 75 for the service manager to start the new executable
        requestRestart: () => {
          void agent.stop(5000).finally(() => process.exit(EXIT_RESTART));
        },
      });
      // before anything is announced: a supervisor may signal the moment it reads "ready"
      const signalled = firstStopSignal();
      const { ingest } = await agent.start();
      // One machine-readable line for supervisors and tests: where sensors connect (null: no listener), and the Node
      // and V8 settings the agent runs under (the executable's are built in)
      const heapLimitMb = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
      const runtime = { node: process.version, execArgv: process.execArgv, heapLimitMb };
      process.stdout.write(`${JSON.stringify({ event: 'ready', ingest, runtime })}\n`);
      const notify = systemdNotify();
      await signalled;
      notify.stop();
      await agent.stop(5000).catch(() => {});
      return 0;
    }
    default:
      process.stderr.write(`fleetwave-agent: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof FleetwaveError) {
      process.stderr.write(`fleetwave-agent: ${err.code}: ${err.message}\n`);
      process.exit(err.code === 'E_CONFIG_INVALID' || err.code === 'E_CONFIG_READ' ? 78 : 1);
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`fleetwave-agent: ${(err as Error).message}\n\n${HELP}`);
      process.exit(2);
    }
    process.stderr.write(`fleetwave-agent: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);

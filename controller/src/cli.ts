#!/usr/bin/env node
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigLayer, FleetwaveError, parseDurationMs, parseYamlWith } from '@fleetwave/shared';
import { pino } from 'pino';
import { mosquittoHash, newSecret } from './auth/secrets.js';
import { mosquittoFiles } from './broker/mosquitto-config.js';
import { call, resolveToken, table } from './cli-client.js';
import { createController, defaultControllerConfig } from './controller.js';
import { runDemo } from './demo.js';
import { SqliteFleetStore } from './store/sqlite-fleet-store.js';

const HELP = `fleetwave: the Fleetwave controller and its operator CLI

Usage:
  fleetwave serve [options]                 run the controller (embedded MQTT broker + SQLite in --data-dir)
  fleetwave demo [--gateways N]             a controller and N gateways running the agent (default 20)
  fleetwave device add <id> [--tag k=v]… [--hardware h]
                                            register a device; prints its token once and an agent config snippet
  fleetwave device list | show <id> | revoke <id>
  fleetwave enrolment create [--uses n] [--tag k=v]…   a fleet enrolment token gateways register themselves with
  fleetwave token create <name> --role viewer|operator|admin|backend | token list | token revoke <id>
  fleetwave telemetry tail [--device id] [--after cursor] [--follow]
  fleetwave config apply <layer.yaml> | diff <layer.yaml> | effective <device> | layers | status
  fleetwave config history [name] | revert <name> | remove <name>
  fleetwave audit [--limit n]
  fleetwave broker mosquitto-config --out <dir>   password file, ACL and config lines for an external Mosquitto

serve options:
  --data-dir <dir>        default ./.fleetwave/controller
  --host <addr>           listen address (default 127.0.0.1)
  --http-port <port>      API and dashboard (default 8080; 0 picks a free one)
  --mqtt-port <port>      embedded broker, MQTT over TCP (default 1883; 0 picks a free one)
  --ws-port <port>        embedded broker, MQTT over WebSocket (off unless given)
  --mqtts-port <port>     embedded broker, MQTT over TLS (with --tls-cert and --tls-key; off unless given)
  --tls-cert <file> --tls-key <file>   PEM certificate chain and key for MQTT over TLS
  --external-broker <url> use this broker instead of the embedded one (e.g. mqtt://127.0.0.1:1883)
  --broker-username <u> --broker-password <p>   credentials for the external broker
  --public-mqtt-url <url> the broker URL agents use, printed at enrolment
  --retention <duration>  how long telemetry is kept (default 7d)
  --log-level <level>     default info

Client options (all other commands):
  --url <url>      the controller's API (default http://127.0.0.1:8080 or FLEETWAVE_URL)
  --token <token>  an API token (default FLEETWAVE_TOKEN, else <data-dir>/admin-token)
  --json           machine-readable output
  -h, --help       this help
`;

function tags(list: string[] | undefined): Record<string, string> {
  return Object.fromEntries(
    (list ?? []).map((t) => {
      const m = /^([^=]+)=(.*)$/.exec(t);
      if (!m) throw new FleetwaveError('E_CONFIG_INVALID', `--tag must be key=value, got "${t}"`);
      return [m[1]!, m[2]!];
    }),
  );
}

function requireFlag(value: string | undefined, flag: string): string {
  if (!value) throw new FleetwaveError('E_CONFIG_INVALID', `--mqtts-port needs ${flag} <file>`);
  return value;
}

async function main(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      host: { type: 'string' },
      'http-port': { type: 'string' },
      'mqtt-port': { type: 'string' },
      'ws-port': { type: 'string' },
      'mqtts-port': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'external-broker': { type: 'string' },
      'broker-username': { type: 'string' },
      'broker-password': { type: 'string' },
      'public-mqtt-url': { type: 'string' },
      retention: { type: 'string' },
      'log-level': { type: 'string' },
      url: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      tag: { type: 'string', multiple: true },
      hardware: { type: 'string' },
      role: { type: 'string' },
      uses: { type: 'string' },
      device: { type: 'string' },
      after: { type: 'string' },
      follow: { type: 'boolean' },
      limit: { type: 'string' },
      out: { type: 'string' },
      gateways: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, sub, arg] = positionals;
  if (v.help || !cmd) {
    process.stdout.write(HELP);
    return v.help ? 0 : 2;
  }
  const dataDir = v['data-dir'] ?? './.fleetwave/controller';
  const port = (s: string | undefined, d: number) => (s === undefined ? d : Number(s));
  if (cmd === 'serve') {
    const config = {
      ...defaultControllerConfig(dataDir),
      host: v.host ?? '127.0.0.1',
      httpPort: port(v['http-port'], 8080),
      mqttPort: port(v['mqtt-port'], 1883),
      ...(v['ws-port'] !== undefined && { wsPort: Number(v['ws-port']) }),
      ...(v['mqtts-port'] !== undefined && {
        tls: {
          port: Number(v['mqtts-port']),
          certFile: requireFlag(v['tls-cert'], '--tls-cert'),
          keyFile: requireFlag(v['tls-key'], '--tls-key'),
        },
      }),
      ...(v['external-broker'] && {
        external: {
          url: v['external-broker'],
          username: v['broker-username'],
          password: v['broker-password'],
          shareGroup: 'fleetwave',
        },
      }),
      ...(v['public-mqtt-url'] && { publicMqttUrl: v['public-mqtt-url'] }),
      ...(v.retention && { retentionMs: parseDurationMs(v.retention) }),
    };
    const log = pino({ level: v['log-level'] ?? 'info' });
    const controller = createController({ config, log });
    const a = await controller.start();
    process.stdout.write(
      `${JSON.stringify({ event: 'ready', http: a.http, mqtt: a.mqtt ?? null, ws: a.ws ?? null, mqtts: a.mqtts ?? null, external: config.external?.url ?? null })}\n`,
    );
    process.stderr.write(
      `fleetwave controller: API http://${config.host}:${a.http}, ${config.external ? `broker ${config.external.url}` : `MQTT mqtt://${config.host}:${a.mqtt}`}` +
        `${a.adminTokenFile ? `, admin token in ${a.adminTokenFile}` : ''}\n`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await controller.stop();
    return 0;
  }
  if (cmd === 'demo') {
    await runDemo({ gateways: Number(v.gateways ?? 20) });
    return 0;
  }
  if (cmd === 'broker' && sub === 'mosquitto-config') {
    if (!v.out) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave broker mosquitto-config --out <dir>');
    const store = new SqliteFleetStore(join(dataDir, 'fleet.db'));
    const password = newSecret();
    const files = mosquittoFiles(
      store.listDevices(),
      { root: 'fleetwave', jobsRoot: 'fleetwave/jobs' },
      { username: 'fleetwave-controller', mosquittoHash: mosquittoHash(password) },
      v.out,
    );
    store.close();
    mkdirSync(v.out, { recursive: true });
    writeFileSync(join(v.out, 'passwd'), files.passwd, { mode: 0o600 });
    writeFileSync(join(v.out, 'acl'), files.acl);
    writeFileSync(join(v.out, 'mosquitto.conf'), files.conf);
    process.stdout.write(
      `wrote ${v.out}/passwd, acl, mosquitto.conf\ncontroller broker user: fleetwave-controller, password (shown once): ${password}\n`,
    );
    return 0;
  }
  const client = {
    url: v.url ?? process.env.FLEETWAVE_URL ?? 'http://127.0.0.1:8080',
    token: resolveToken(v.token, dataDir),
  };
  const out = (data: unknown, human: () => string) =>
    process.stdout.write(v.json ? `${JSON.stringify(data, null, 2)}\n` : human());
  const key = `${cmd} ${sub ?? ''}`.trim();
  switch (key) {
    case 'device add': {
      if (!sub || !arg) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave device add <id>');
      const r = (await call(client, 'POST', '/api/devices', {
        id: arg,
        tags: tags(v.tag),
        ...(v.hardware && { hardware: v.hardware }),
      })) as { token: string; agentConfig: string };
      out(
        r,
        () =>
          `device ${arg} registered.\ntoken (shown once, store it on the device): ${r.token}\n\nagent config:\n${r.agentConfig}`,
      );
      return 0;
    }
    case 'device list': {
      const r = (await call(client, 'GET', '/api/devices')) as { devices: Record<string, unknown>[] };
      const withConfig = r.devices.map((d) => ({
        ...d,
        config: !d.desiredVersion
          ? '-'
          : d.configStatus === 'rejected'
            ? `rejected v${d.desiredVersion}`
            : (Number(d.appliedConfigVersion) || 0) >= Number(d.desiredVersion)
              ? `v${d.desiredVersion}`
              : `lagging (v${d.appliedConfigVersion ?? 0} of v${d.desiredVersion})`,
      }));
      out(r, () =>
        table(withConfig, ['id', 'presence', 'hardware', 'agentVersion', 'config', 'lastSeen', 'revokedAt', 'tags']),
      );
      return 0;
    }
    case 'device show': {
      const r = await call(client, 'GET', `/api/devices/${encodeURIComponent(arg ?? '')}`);
      out(r, () => `${JSON.stringify(r, null, 2)}\n`);
      return 0;
    }
    case 'device revoke': {
      const r = await call(client, 'POST', `/api/devices/${encodeURIComponent(arg ?? '')}/revoke`);
      out(r, () => `device ${arg} revoked; its session was dropped\n`);
      return 0;
    }
    case 'enrolment create': {
      const r = (await call(client, 'POST', '/api/enrolment-tokens', {
        uses: Number(v.uses ?? 1),
        tags: tags(v.tag),
      })) as { token: string };
      out(r, () => `enrolment token (shown once): ${r.token}\n`);
      return 0;
    }
    case 'token create': {
      const r = (await call(client, 'POST', '/api/tokens', { name: arg, role: v.role })) as { token: string };
      out(r, () => `token for ${arg} (shown once): ${r.token}\n`);
      return 0;
    }
    case 'token list': {
      const r = (await call(client, 'GET', '/api/tokens')) as { tokens: Record<string, unknown>[] };
      out(r, () => table(r.tokens, ['id', 'name', 'role', 'createdAt', 'revokedAt']));
      return 0;
    }
    case 'token revoke': {
      const r = await call(client, 'POST', `/api/tokens/${encodeURIComponent(arg ?? '')}/revoke`);
      out(r, () => `token ${arg} revoked\n`);
      return 0;
    }
    case 'config apply':
    case 'config diff': {
      if (!arg) throw new FleetwaveError('E_CONFIG_INVALID', `usage: fleetwave ${key} <layer.yaml>`);
      let text: string;
      try {
        text = readFileSync(arg, 'utf8');
      } catch (err) {
        throw new FleetwaveError('E_CONFIG_READ', `cannot read ${arg}: ${(err as Error).message}`);
      }
      const layer = parseYamlWith(ConfigLayer, text, arg);
      if (sub === 'diff') {
        const r = (await call(client, 'POST', '/api/config/diff', layer)) as {
          devices: { device: string; changes: { field: string; from: unknown; to: unknown }[] }[];
        };
        out(r, () =>
          r.devices.length === 0
            ? 'no device would change\n'
            : `${r.devices.map((d) => `${d.device}\n${d.changes.map((c) => `  ${c.field}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`).join('\n')}`).join('\n')}\n`,
        );
      } else {
        const r = (await call(client, 'POST', '/api/config/layers', layer)) as { changed: string[] };
        out(
          r,
          () =>
            `layer ${layer.name} applied; ${r.changed.length} device(s) get a new configuration${r.changed.length ? `: ${r.changed.join(', ')}` : ''}\n`,
        );
      }
      return 0;
    }
    case 'config effective': {
      const r = (await call(client, 'GET', `/api/config/effective/${encodeURIComponent(arg ?? '')}`)) as {
        config: Record<string, unknown>;
        provenance: Record<string, string>;
        version: number;
        applied: number | null;
        status: string | null;
        reason: string | null;
      };
      out(r, () => {
        const lines = Object.entries(r.provenance).map(([f, layer]) => `  ${f.padEnd(32)} from ${layer}`);
        return `${arg}: desired version ${r.version}, applied ${r.applied ?? '-'}${r.status === 'rejected' ? ` (rejected: ${r.reason})` : ''}\n${JSON.stringify(r.config, null, 2)}\nset by:\n${lines.join('\n') || '  (no layer matches)'}\n`;
      });
      return 0;
    }
    case 'config layers': {
      const r = (await call(client, 'GET', '/api/config/layers')) as { layers: Record<string, unknown>[] };
      out(r, () => table(r.layers, ['name', 'priority', 'selector', 'config']));
      return 0;
    }
    case 'config status': {
      const r = (await call(client, 'GET', '/api/config/status')) as { devices: Record<string, unknown>[] };
      out(r, () => table(r.devices, ['device', 'desired', 'applied', 'state', 'reason']));
      return 0;
    }
    case 'config history': {
      const r = (await call(client, 'GET', `/api/config/history${arg ? `?name=${encodeURIComponent(arg)}` : ''}`)) as {
        entries: Record<string, unknown>[];
      };
      out(r, () => table(r.entries, ['id', 'ts', 'actor', 'action', 'name', 'after']));
      return 0;
    }
    case 'config revert':
    case 'config remove': {
      const r = (await call(
        client,
        sub === 'revert' ? 'POST' : 'DELETE',
        `/api/config/layers/${encodeURIComponent(arg ?? '')}${sub === 'revert' ? '/revert' : ''}`,
      )) as { changed: string[] };
      out(
        r,
        () => `layer ${arg} ${sub === 'revert' ? 'reverted' : 'removed'}; ${r.changed.length} device(s) changed\n`,
      );
      return 0;
    }
    case 'audit': {
      const r = (await call(client, 'GET', `/api/audit?limit=${Number(v.limit ?? 50)}`)) as {
        entries: Record<string, unknown>[];
      };
      out(r, () => table(r.entries, ['id', 'ts', 'actor', 'action', 'target', 'outcome', 'details']));
      return 0;
    }
    case 'telemetry tail': {
      let after = Number(v.after ?? 0);
      for (;;) {
        const q = new URLSearchParams({ after: String(after), limit: '1000', ...(v.device && { device: v.device }) });
        const r = (await call(client, 'GET', `/api/telemetry?${q}`)) as {
          records: { cursor: number; device: string; record: Record<string, unknown> }[];
          next: number;
        };
        for (const rec of r.records) {
          process.stdout.write(
            v.json ? `${JSON.stringify(rec)}\n` : `${rec.cursor}\t${rec.device}\t${JSON.stringify(rec.record)}\n`,
          );
        }
        after = r.next;
        if (!v.follow) return 0;
        if (r.records.length === 0) await new Promise((res) => setTimeout(res, 1000));
      }
    }
    default:
      process.stderr.write(`fleetwave: unknown command "${key}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof FleetwaveError) {
      process.stderr.write(`fleetwave: ${err.code}: ${err.message}\n`);
      process.exit(err.code === 'E_CONFIG_INVALID' || err.code === 'E_PORT_IN_USE' ? 78 : 1);
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`fleetwave: ${(err as Error).message}\n\n${HELP}`);
      process.exit(2);
    }
    process.stderr.write(`fleetwave: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigLayer, FleetwaveError, parseYamlWith } from '@fleetwave/shared';
import { type AgentSetup, agentConfigSnippet } from './api/agent-setup.js';
import { type ClientOptions, call, need, table } from './cli-client.js';
import { type RolloutFlags, runRolloutCommand } from './cli-rollouts.js';

export interface ClientFlags extends RolloutFlags {
  json?: boolean | undefined;
  tag?: string[] | undefined;
  untag?: string[] | undefined;
  hardware?: string | undefined;
  'agent-dir'?: string | undefined;
  out?: string | undefined;
  role?: string | undefined;
  uses?: string | undefined;
  device?: string | undefined;
  after?: string | undefined;
  follow?: boolean | undefined;
  limit?: string | undefined;
  mode?: string | undefined;
  replaced?: boolean | undefined;
  note?: string | undefined;
}

interface RiskCell {
  risk: number;
  mode: string | null;
  signals: { metric: string; contribution: number }[];
}

const riskCell = (r: RiskCell | undefined) =>
  r
    ? `${r.risk.toFixed(2)}${r.mode ? ` ${r.mode}` : ''}${r.signals.length ? ` (${r.signals.map((s) => s.metric).join(', ')})` : ''}`
    : '-';

interface HealthCell {
  cpuTempC?: number;
  memUsedPct?: number;
  diskUsedPct?: number;
  underVoltage: boolean;
  throttled: boolean;
}

/** The newest health report's headline figures (as on the dashboard's fleet page). */
const healthCell = (h: HealthCell | undefined) =>
  h
    ? [
        h.cpuTempC !== undefined && `${h.cpuTempC.toFixed(0)}°C`,
        h.memUsedPct !== undefined && `mem ${h.memUsedPct.toFixed(0)}%`,
        h.diskUsedPct !== undefined && `disk ${h.diskUsedPct.toFixed(0)}%`,
        h.underVoltage && 'UNDER-VOLTAGE',
        h.throttled && 'THROTTLED',
      ]
        .filter(Boolean)
        .join(' ') || '-'
    : '-';

function tags(list: string[] | undefined): Record<string, string> {
  return Object.fromEntries(
    (list ?? []).map((t) => {
      const m = /^([^=]+)=(.*)$/.exec(t);
      if (!m) throw new FleetwaveError('E_CONFIG_INVALID', `--tag must be key=value, got "${t}"`);
      return [m[1]!, m[2]!];
    }),
  );
}

/** `device add --out`: the files an agent starts from, laid out as the config's paths name them under --agent-dir. */
function writeAgentFiles(dir: string, token: string, agent: AgentSetup, config: string): string[] {
  mkdirSync(join(dir, 'trusted-keys'), { recursive: true });
  const files = [join(dir, 'agent.yaml'), join(dir, 'token')];
  writeFileSync(files[0]!, config);
  writeFileSync(files[1]!, `${token}\n`, { mode: 0o600 });
  for (const k of agent.trustedKeys) {
    const f = join(dir, 'trusted-keys', `${k.keyId}.pem`);
    writeFileSync(f, k.pem);
    files.push(f);
  }
  return files;
}

/** The operator commands that talk to a running controller over its API. */
export async function runClientCommand(
  cmd: string,
  sub: string | undefined,
  arg: string | undefined,
  v: ClientFlags,
  client: ClientOptions,
  help: string,
): Promise<number> {
  const out = (data: unknown, human: () => string) =>
    process.stdout.write(v.json ? `${JSON.stringify(data, null, 2)}\n` : human());
  const key = `${cmd} ${sub ?? ''}`.trim();
  const rolloutResult = await runRolloutCommand(key, arg, v, client);
  if (rolloutResult !== undefined) return rolloutResult;
  switch (key) {
    case 'device add': {
      if (!sub || !arg) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave device add <id>');
      const r = (await call(client, 'POST', '/api/devices', {
        id: arg,
        tags: tags(v.tag),
        ...(v.hardware && { hardware: v.hardware }),
      })) as { token: string; agentConfig: string; agent: AgentSetup };
      const agentDir = v['agent-dir'] ?? '/etc/fleetwave';
      const agentConfig = v['agent-dir'] ? agentConfigSnippet(r.agent, agentDir) : r.agentConfig;
      const written = v.out ? writeAgentFiles(v.out, r.token, r.agent, agentConfig) : undefined;
      out({ ...r, agentConfig, ...(written && { written }) }, () =>
        written
          ? `device ${arg} registered.\nwrote ${written.join(', ')}: copy ${v.out} to ${agentDir} on the device ` +
            `(the token file is secret; it is shown nowhere else)\n\nagent config:\n${agentConfig}`
          : `device ${arg} registered.\ntoken (shown once, store it on the device as ${agentDir}/token): ${r.token}\n\nagent config:\n${agentConfig}`,
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
        health: healthCell(d.health as HealthCell | undefined),
        risk: riskCell(d.risk as RiskCell | undefined),
      }));
      out(r, () =>
        table(withConfig, [
          'id',
          'presence',
          'hardware',
          'agentVersion',
          'config',
          'health',
          'risk',
          'lastSeen',
          'revokedAt',
          'tags',
          'releases',
        ]),
      );
      return 0;
    }
    case 'device show': {
      const r = await call(
        client,
        'GET',
        `/api/devices/${encodeURIComponent(need(arg, 'fleetwave device show <id>'))}`,
      );
      out(r, () => `${JSON.stringify(r, null, 2)}\n`);
      return 0;
    }
    case 'device mark-failed': {
      if (!arg)
        throw new FleetwaveError(
          'E_CONFIG_INVALID',
          'usage: fleetwave device mark-failed <id> [--mode m] [--replaced]',
        );
      const r = await call(client, 'POST', `/api/devices/${encodeURIComponent(arg)}/failure`, {
        status: v.replaced ? 'replaced' : 'failed',
        ...(v.mode && { mode: v.mode }),
        ...(v.note && { note: v.note }),
      });
      out(
        r,
        () =>
          `device ${arg} labelled ${v.replaced ? 'replaced' : 'failed'} (${v.mode ?? 'failure'}); the next learning uses it\n`,
      );
      return 0;
    }
    case 'device unmark-failed': {
      const r = await call(
        client,
        'DELETE',
        `/api/devices/${encodeURIComponent(need(arg, 'fleetwave device unmark-failed <id>'))}/failure`,
      );
      out(r, () => `device ${arg}: failure label removed\n`);
      return 0;
    }
    case 'predict status': {
      const r = (await call(client, 'GET', '/api/predict')) as {
        model: { horizon: number; classes: string[]; trainedOn: { devices: number; at: string } } | null;
        threshold: number;
        scores: {
          device: string;
          risk: number;
          mode: string | null;
          signals: { metric: string; contribution: number }[];
        }[];
        labels: { device: string; status: string; mode: string }[];
        candidates: { device: string; lastSeen: number }[];
      };
      out(r, () => {
        const lines = [
          r.model
            ? `model: failure within ${r.model.horizon / 86_400_000} days (${r.model.classes.slice(1).join(', ')}), trained on ${r.model.trainedOn.devices} devices at ${r.model.trainedOn.at}; alerts at risk ≥ ${r.threshold}`
            : 'model: none (fleetwave predict train --out <file>, then --model; or fleetwave predict learn)',
          `at risk: ${r.scores.filter((s) => s.risk >= r.threshold).length} of ${r.scores.length} scored devices`,
          ...r.scores.filter((s) => s.risk >= r.threshold).map((s) => `  ${s.device}  ${riskCell(s)}`),
          `labelled: ${r.labels.map((l) => `${l.device} (${l.status}, ${l.mode})`).join(', ') || 'none'}`,
          `silent, unlabelled (confirm with fleetwave device mark-failed): ${r.candidates.map((c) => c.device).join(', ') || 'none'}`,
        ];
        return `${lines.join('\n')}\n`;
      });
      return 0;
    }
    case 'predict learn': {
      const r = (await call(client, 'POST', '/api/predict/learn', {})) as { model: { trainedOn: { devices: number } } };
      out(r, () => `model trained on the fleet's history (${r.model.trainedOn.devices} devices) and in use\n`);
      return 0;
    }
    case 'predict install': {
      if (!arg) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave predict install <model.json>');
      const r = await call(client, 'PUT', '/api/predict/model', JSON.parse(readFileSync(arg, 'utf8')));
      out(r, () => `model ${arg} installed; devices rescored\n`);
      return 0;
    }
    case 'device set': {
      if (!arg || (!v.tag && !v.untag && !v.hardware)) {
        throw new FleetwaveError(
          'E_CONFIG_INVALID',
          'usage: fleetwave device set <id> [--tag k=v]… [--untag k]… [--hardware h] (at least one)',
        );
      }
      const path = `/api/devices/${encodeURIComponent(arg)}`;
      const current = ((await call(client, 'GET', path)) as { device: { tags: Record<string, string> } }).device;
      const next = { ...current.tags, ...tags(v.tag) };
      for (const k of v.untag ?? []) delete next[k];
      const r = (await call(client, 'PATCH', path, {
        tags: next,
        ...(v.hardware && { hardware: v.hardware }),
      })) as { changed: string[] };
      out(r, () => `device ${arg}: ${r.changed.length ? `${r.changed.join(' and ')} changed` : 'nothing changed'}\n`);
      return 0;
    }
    case 'device revoke': {
      const r = await call(
        client,
        'POST',
        `/api/devices/${encodeURIComponent(need(arg, 'fleetwave device revoke <id>'))}/revoke`,
      );
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
      const r = (await call(client, 'POST', '/api/tokens', {
        name: need(arg, 'fleetwave token create <name> [--role viewer|operator|admin|backend]'),
        role: v.role,
      })) as { token: string };
      out(r, () => `token for ${arg} (shown once): ${r.token}\n`);
      return 0;
    }
    case 'token list': {
      const r = (await call(client, 'GET', '/api/tokens')) as { tokens: Record<string, unknown>[] };
      out(r, () => table(r.tokens, ['id', 'name', 'role', 'createdAt', 'revokedAt']));
      return 0;
    }
    case 'token revoke': {
      const r = await call(
        client,
        'POST',
        `/api/tokens/${encodeURIComponent(need(arg, 'fleetwave token revoke <name>'))}/revoke`,
      );
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
      const r = (await call(
        client,
        'GET',
        `/api/config/effective/${encodeURIComponent(need(arg, 'fleetwave config effective <device>'))}`,
      )) as {
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
        `/api/config/layers/${encodeURIComponent(need(arg, `fleetwave config ${sub} <layer>`))}${sub === 'revert' ? '/revert' : ''}`,
      )) as { changed: string[] };
      out(
        r,
        () => `layer ${arg} ${sub === 'revert' ? 'reverted' : 'removed'}; ${r.changed.length} device(s) changed\n`,
      );
      return 0;
    }
    case 'cluster status': {
      const r = (await call(client, 'GET', '/api/cluster')) as {
        replica: string | null;
        leader: { replica: string; token: number; since: number } | null;
        replicas: {
          id: string;
          startedAt: number;
          seenAt: number;
          http: string | null;
          lag: Record<string, number>;
          leading: boolean;
        }[];
      };
      out(r, () => {
        const iso = (t: number) => new Date(t).toISOString();
        const head = r.leader
          ? `leader: ${r.leader.replica} since ${iso(r.leader.since)} (fencing token ${r.leader.token})\n`
          : 'leader: none now (the lease ran out; a replica takes it within a lease)\n';
        return (
          head +
          table(
            r.replicas.map((x) => ({
              replica: `${x.id}${x.id === r.replica ? ' (this one)' : ''}`,
              role: x.leading ? 'leader' : 'follower',
              started: iso(x.startedAt),
              seen: `${Math.max(0, Math.round((Date.now() - x.seenAt) / 100) / 10)} s ago`,
              lag: Object.entries(x.lag)
                .map(([k, n]) => `${k} ${n}`)
                .join(', '),
              api: x.http ?? '',
            })),
            ['replica', 'role', 'started', 'seen', 'lag', 'api'],
          )
        );
      });
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
      process.stderr.write(`fleetwave: unknown command "${key}"\n\n${help}`);
      return 2;
  }
}

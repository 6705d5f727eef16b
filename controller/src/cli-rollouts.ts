import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { FleetwaveError, parseYamlWith, RolloutPlan } from '@fleetwave/shared';
import { type ClientOptions, call, readInputFile, table } from './cli-client.js';

export interface RolloutFlags {
  json?: boolean | undefined;
  artifact?: string[] | undefined;
  wave?: string | undefined;
  follow?: boolean | undefined;
  after?: string | undefined;
}

interface WaveView {
  index: number;
  name: string;
  status: string;
  size: number;
  counts: Record<string, number>;
  successThreshold: number;
  failureThreshold?: { percent: number; minFinished: number };
  bake: number;
  approval: boolean;
  approved: boolean;
  reason?: string;
  members?: { device: string; hardware: string; site: string; fromVersion: string | null; status: string }[];
}
interface RolloutView {
  id: string;
  name: string;
  release: { name: string; version: string };
  status: string;
  reason?: string;
  currentWave: number;
  onFailure: string;
  devices: number;
  waves: WaveView[];
  rollback?: { devices: number; counts: Record<string, number> };
}

/** A plan file checked here first, so errors name the file, line and field before anything is sent. */
function planBody(file: string | undefined, usage: string) {
  const yaml = readInputFile(file, usage);
  parseYamlWith(RolloutPlan, yaml, file);
  return { yaml, source: basename(file!) };
}

const DONE = ['SUCCEEDED'];
const BAD = ['FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED', 'REMOVED'];

function bar(w: WaveView, width = 30): string {
  const n = (ks: string[]) => ks.reduce((s, k) => s + (w.counts[k] ?? 0), 0);
  const total = Math.max(1, w.size);
  const ok = Math.round((n(DONE) / total) * width);
  const bad = Math.min(width - ok, Math.round((n(BAD) / total) * width));
  const busy = Math.min(width - ok - bad, Math.round((n(['IN_PROGRESS', 'QUEUED']) / total) * width));
  return `[${'#'.repeat(ok)}${'x'.repeat(bad)}${'~'.repeat(busy)}${' '.repeat(width - ok - bad - busy)}]`;
}

/** The human view of a rollout: one line per wave with a progress bar and counts per status. */
export function renderRollout(r: RolloutView): string {
  const lines = [
    `rollout ${r.id}: ${r.release.name}@${r.release.version} — ${r.status.toUpperCase()}${r.status === 'running' ? ` (wave ${r.currentWave + 1} of ${r.waves.length})` : ''}, ${r.devices} devices, on failure: ${r.onFailure}`,
  ];
  if (r.reason) lines.push(`  reason: ${r.reason}`);
  for (const w of r.waves) {
    const counts = Object.entries(w.counts)
      .map(([k, v]) => `${k.toLowerCase()} ${v}`)
      .join(', ');
    const rule = w.failureThreshold
      ? `; stop at ${w.failureThreshold.percent}% failed after ${w.failureThreshold.minFinished}`
      : '';
    const gate = w.approval ? (w.approved ? '; approved' : '; needs approval') : '';
    lines.push(
      `  ${String(w.index + 1).padStart(2)} ${w.name.padEnd(12)} ${bar(w)} ${w.status.padEnd(9)} ${String(w.size).padStart(5)} devices  ${counts}`,
      `     go on at ${w.successThreshold}% succeeded${rule}${w.bake ? `; bake ${Math.round(w.bake / 1000)}s` : ''}${gate}`,
    );
  }
  if (r.rollback) {
    const counts = Object.entries(r.rollback.counts)
      .map(([k, v]) => `${k.toLowerCase()} ${v}`)
      .join(', ');
    lines.push(`  rollback: ${r.rollback.devices} devices sent back — ${counts || 'none yet'}`);
  }
  return `${lines.join('\n')}\n`;
}

const TERMINAL = ['completed', 'aborted', 'rolled-back'];

/** `fleetwave release …` and `fleetwave rollout …`; undefined when the command is not one of these. */
export async function runRolloutCommand(
  key: string,
  arg: string | undefined,
  v: RolloutFlags,
  client: ClientOptions,
): Promise<number | undefined> {
  const out = (data: unknown, human: () => string) =>
    process.stdout.write(v.json ? `${JSON.stringify(data, null, 2)}\n` : human());
  const id = () => {
    if (!arg) throw new FleetwaveError('E_CONFIG_INVALID', `usage: fleetwave ${key} <rollout-id>`);
    return encodeURIComponent(arg);
  };
  switch (key) {
    case 'release add': {
      const text = readInputFile(arg, 'fleetwave release add <manifest.json> [--artifact <file>]…');
      let manifest: { name: string; version: string; artifacts: { name: string; size: number; sha256: string }[] };
      try {
        manifest = JSON.parse(text);
      } catch (err) {
        throw new FleetwaveError('E_PAYLOAD_JSON', `${arg} is not JSON: ${(err as Error).message}`);
      }
      // artifacts are checked here against the manifest before anything is registered (the controller checks again)
      for (const file of v.artifact ?? []) {
        const name = basename(file);
        const a = manifest.artifacts?.find((x) => x.name === name);
        if (!a)
          throw new FleetwaveError(
            'E_CONFIG_INVALID',
            `--artifact ${file}: the manifest has no artifact named ${name}`,
          );
        const bytes = readFileSync(file);
        if (bytes.length !== a.size) {
          throw new FleetwaveError('E_ARTIFACT_SIZE', `${file} is ${bytes.length} bytes, the manifest says ${a.size}`);
        }
        const sha = createHash('sha256').update(bytes).digest('hex');
        if (sha !== a.sha256)
          throw new FleetwaveError('E_ARTIFACT_HASH', `${file} has SHA-256 ${sha}, the manifest says ${a.sha256}`);
      }
      const r = await call(client, 'POST', '/api/releases', manifest);
      const uploaded: string[] = [];
      for (const file of v.artifact ?? []) {
        const name = basename(file);
        const res = await fetch(
          `${client.url}/api/releases/${manifest.name}/${manifest.version}/artifacts/${encodeURIComponent(name)}`,
          {
            method: 'PUT',
            headers: { authorization: `Bearer ${client.token}`, 'content-type': 'application/octet-stream' },
            body: readFileSync(file),
          },
        );
        if (!res.ok)
          throw new FleetwaveError('E_ARTIFACT_HASH', `upload of ${file}: ${res.status} ${await res.text()}`);
        uploaded.push(name);
      }
      out({ ...(r as object), uploaded }, () => {
        const a = r as { name: string; version: string; added: boolean };
        return `release ${a.name}@${a.version} ${a.added ? 'registered' : 'already registered (unchanged)'}; signature verified${uploaded.length ? `; uploaded ${uploaded.join(', ')} (size and SHA-256 checked)` : ''}\n`;
      });
      return 0;
    }
    case 'release list': {
      const r = (await call(client, 'GET', '/api/releases')) as { releases: Record<string, unknown>[] };
      out(r, () => table(r.releases, ['name', 'version', 'addedAt']));
      return 0;
    }
    case 'rollout plan': {
      const body = planBody(arg, 'fleetwave rollout plan <plan.yaml>');
      const r = (await call(client, 'POST', '/api/rollouts/plan', body)) as RolloutView;
      out(r, () => {
        const lines = [
          `plan ${r.name}: ${r.release.name}@${r.release.version} to ${r.devices} devices (nothing is started)`,
        ];
        for (const w of r.waves) {
          const hw = new Map<string, number>();
          for (const m of w.members ?? []) hw.set(m.hardware, (hw.get(m.hardware) ?? 0) + 1);
          const mix = [...hw.entries()].map(([k, n]) => `${k} ${n}`).join(', ');
          const when =
            w.index === 0
              ? 'at once'
              : `after wave ${w.index} reaches ${r.waves[w.index - 1]!.successThreshold}%${r.waves[w.index - 1]!.bake ? ` and bakes ${Math.round(r.waves[w.index - 1]!.bake / 1000)}s` : ''}`;
          lines.push(
            `  wave ${w.index + 1} ${w.name}: ${w.size} devices (${mix || 'none'}), ${when}${w.approval ? ', after approval' : ''}`,
            `    ${(w.members ?? []).map((m) => m.device).join(' ') || '-'}`,
          );
        }
        return `${lines.join('\n')}\n`;
      });
      return 0;
    }
    case 'rollout apply': {
      const r = (await call(
        client,
        'POST',
        '/api/rollouts',
        planBody(arg, 'fleetwave rollout apply <plan.yaml>'),
      )) as RolloutView;
      out(r, () => `rollout ${r.id} started\n${renderRollout(r)}`);
      return 0;
    }
    case 'rollout status': {
      if (!arg) {
        const r = (await call(client, 'GET', '/api/rollouts')) as { rollouts: RolloutView[] };
        out(r, () =>
          table(
            r.rollouts.map((x) => ({
              ...x,
              release: `${x.release.name}@${x.release.version}`,
              wave: `${x.currentWave + 1}/${x.waves.length}`,
            })),
            ['id', 'release', 'status', 'wave', 'devices', 'reason'],
          ),
        );
        return 0;
      }
      const r = (await call(client, 'GET', `/api/rollouts/${id()}`)) as RolloutView;
      out(r, () => renderRollout(r));
      return 0;
    }
    case 'rollout watch': {
      let last = '';
      for (;;) {
        const r = (await call(client, 'GET', `/api/rollouts/${id()}`)) as RolloutView;
        const text = v.json ? `${JSON.stringify(r)}\n` : renderRollout(r);
        if (text !== last) {
          if (process.stdout.isTTY && !v.json) process.stdout.write('\x1b[2J\x1b[H');
          process.stdout.write(text);
          last = text;
        }
        if (TERMINAL.includes(r.status)) return r.status === 'completed' ? 0 : 1;
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
    case 'rollout pause':
    case 'rollout resume':
    case 'rollout abort':
    case 'rollout rollback':
    case 'rollout approve': {
      const cmd = key.split(' ')[1]!;
      const body = cmd === 'approve' && v.wave !== undefined ? { wave: Number(v.wave) - 1 } : {};
      const r = (await call(client, 'POST', `/api/rollouts/${id()}/${cmd}`, body)) as RolloutView;
      out(r, () => renderRollout(r));
      return 0;
    }
    case 'rollout events': {
      let after = Number(v.after ?? 0);
      for (;;) {
        const q = new URLSearchParams({ after: String(after), ...(arg && { rollout: arg }) });
        const r = (await call(client, 'GET', `/api/rollouts/events?${q}`)) as {
          events: { id: number; ts: number; rollout: string; kind: string; details: unknown }[];
        };
        for (const e of r.events) {
          process.stdout.write(
            v.json
              ? `${JSON.stringify(e)}\n`
              : `${e.id}\t${new Date(e.ts).toISOString()}\t${e.rollout}\t${e.kind}\t${JSON.stringify(e.details)}\n`,
          );
          after = e.id;
        }
        if (!v.follow) return 0;
        if (r.events.length === 0) await new Promise((res) => setTimeout(res, 1000));
      }
    }
    default:
      return undefined;
  }
}

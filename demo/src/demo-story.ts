import { createHash, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signManifest } from '@fleetwave/shared';
import { create } from 'tar';

export interface StoryOptions {
  dir: string;
  api: string;
  token: string;
  key: KeyObject;
  /** Gateways that drop off the network during the first rollout and come back later. */
  flaky: { stop(): Promise<void>; start(): Promise<void> };
  /** The gateways the predictor flags as likely to fail (ready once the risk model is trained). */
  atRisk: Promise<{ device: string; risk: number; mode: string | null }[]>;
  say: (line: string) => void;
  stopped: () => boolean;
  delayMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call(o: StoryOptions, method: string, path: string, body?: unknown) {
  const res = await fetch(`${o.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${o.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

async function release(o: StoryOptions, version: string, files: Record<string, string>) {
  const src = join(o.dir, 'releases', version);
  mkdirSync(src, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(src, name), content);
  const archive = join(o.dir, 'releases', `demo-app-${version}.tar.gz`);
  await create({ gzip: true, file: archive, cwd: src, portable: true }, Object.keys(files));
  const bytes = readFileSync(archive);
  const manifest = signManifest(
    {
      schema: 1,
      name: 'demo-app',
      version,
      hardware: ['rpi3', 'rpi4'],
      artifacts: [
        {
          name: 'app.tar.gz',
          url: './app.tar.gz',
          size: bytes.length,
          sha256: createHash('sha256').update(bytes).digest('hex'),
        },
      ],
      install: { type: 'files', target: 'demo-app' },
      healthChecks: [{ type: 'uplink-connected', withinS: 30 }],
      createdAt: new Date().toISOString(),
    },
    o.key,
  );
  await call(o, 'POST', '/api/releases', manifest);
  const put = await fetch(`${o.api}/api/releases/demo-app/${version}/artifacts/app.tar.gz`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  if (!put.ok) throw new Error(`artifact upload: ${put.status}`);
}

const plan = (name: string, version: string) => `apiVersion: fleetwave/v1
kind: RolloutPlan
name: ${name}
release: { name: demo-app, version: ${version} }
waves:
  - { name: canary, count: 5, failureThreshold: { percent: 40, minFinished: 5 } }
  - { name: early, percent: 30 }
  - { name: everyone, percent: 100 }
onFailure: rollback
risk: { deferAbove: 0.8 }
`;

type View = {
  id: string;
  status: string;
  reason?: string;
  waves: { name: string; status: string; size: number; counts: Record<string, number> }[];
};

async function follow(o: StoryOptions, id: string, onTick?: (v: View) => Promise<void>): Promise<View> {
  let last = '';
  for (;;) {
    const v = (await call(o, 'GET', `/api/rollouts/${id}`)) as View;
    const line = v.waves
      .map(
        (w) =>
          `${w.name} ${w.counts.SUCCEEDED ?? 0}/${w.size} ${w.status}${w.counts.FAILED ? ` (${w.counts.FAILED} failed)` : ''}`,
      )
      .join(' · ');
    if (line !== last) o.say(`rollout ${id}: ${v.status} — ${line}`);
    last = line;
    await onTick?.(v);
    if (['completed', 'aborted', 'rolled-back'].includes(v.status) || o.stopped()) return v;
    await sleep(1000);
  }
}

/**
 * The demo's story: a good release goes out in waves (a few gateways are offline meanwhile and get it when they come
 * back), then a broken release is stopped at the canary and rolled back. Everything goes through the API, as the CLI
 * (`fleetwave rollout …`) and the dashboard would.
 */
export async function rolloutStory(o: StoryOptions): Promise<void> {
  for (const until = Date.now() + o.delayMs; Date.now() < until && !o.stopped(); ) await sleep(200);
  if (o.stopped()) return;
  const risky = await o.atRisk;
  if (risky.length) {
    o.say(
      `story: ${risky.length} gateways are flagged at risk (${risky.map((r) => `${r.device}: ${r.mode}`).join(', ')}); the rollouts keep them out of the early waves`,
    );
  }
  o.say(
    'story: publishing demo-app 1.0.0 (signed, verified by the controller) and rolling it out: canary of 5, then 30%, then everyone',
  );
  await release(o, '1.0.0', { 'app.txt': 'demo app 1.0.0\n' });
  const first = (await call(o, 'POST', '/api/rollouts', {
    yaml: plan('demo-app-1-0-0', '1.0.0'),
    source: 'plan.yaml',
  })) as View;
  o.say(`story: (the same from the CLI: fleetwave rollout apply plan.yaml; fleetwave rollout watch ${first.id})`);
  await o.flaky.stop();
  o.say('story: 3 gateways lose their network; their updates stay queued');
  let back = false;
  const wentAway = Date.now();
  const done = await follow(o, first.id, async () => {
    if (!back && Date.now() - wentAway > 10_000) {
      back = true;
      await o.flaky.start();
      o.say('story: the 3 gateways are back and ask for the jobs they missed');
    }
  });
  if (o.stopped()) return;
  o.say(`story: release demo-app 1.0.0 ${done.status}`);
  o.say('story: publishing demo-app 1.1.0, which breaks the application (its health check fails), and rolling it out');
  await release(o, '1.1.0', { 'app.txt': 'demo app 1.1.0\n', BROKEN: 'this version does not come up\n' });
  const second = (await call(o, 'POST', '/api/rollouts', {
    yaml: plan('demo-app-1-1-0', '1.1.0'),
    source: 'plan.yaml',
  })) as View;
  const bad = await follow(o, second.id);
  if (o.stopped()) return;
  o.say(
    `story: release demo-app 1.1.0 stopped at the canary and ${bad.status === 'rolled-back' ? 'rolled back' : bad.status}: ${bad.reason ?? ''}`,
  );
  o.say('story: every gateway runs demo-app 1.0.0 again; the fleet keeps sending telemetry. Ctrl-C ends the demo.');
}

import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Controller, createController, defaultControllerConfig, type SqliteDatabase } from '@fleetwave/controller';
import type { SignedReleaseManifest } from '@fleetwave/shared';
import { pino } from 'pino';
import { type AgentProcess, api, spawnAgent, tmp, waitFor } from './helpers.js';
import { appArchive, filesRelease, publishRelease, signingKey } from './release-helpers.js';

/** A controller in-process (its jobs service queues jobs directly) and one agent as a child process. */
export interface Rig {
  dir: string;
  ctl: Controller;
  http: string;
  admin: string;
  key: ReturnType<typeof signingKey>;
  configFile: string;
  appsDir: string;
  jobs: number;
  start(): Promise<AgentProcess>;
  /** Queues an update job for the device, as the controller's jobs service does for a rollout. */
  queue(manifest: SignedReleaseManifest, over?: Record<string, unknown>): string;
  execution(jobId: string): { status: string; statusDetails?: Record<string, string> } | undefined;
  waitTerminal(jobId: string): Promise<{ status: string; statusDetails?: Record<string, string> }>;
  active(): string | null;
}

export async function rig(
  cleanups: (() => Promise<unknown>)[],
  opts: { hardware?: string; extra?: string; healthCommand?: (current: string) => string; jobsRoot?: string } = {},
): Promise<Rig> {
  const dir = tmp('upd');
  const key = signingKey();
  const pem = join(dir, 'release.pem');
  writeFileSync(pem, key.publicPem);
  const ctl = createController({
    config: {
      ...defaultControllerConfig(join(dir, 'ctl')),
      httpPort: 0,
      mqttPort: 0,
      trustedKeyFiles: [pem],
      rolloutTickMs: 200,
      ...(opts.jobsRoot && { jobsRoot: opts.jobsRoot }),
    },
    log: pino({ level: 'silent' }),
  });
  const a = await ctl.start();
  cleanups.push(() => ctl.stop());
  const http = `http://127.0.0.1:${a.http}`;
  const admin = readFileSync(join(dir, 'ctl', 'admin-token'), 'utf8').trim();
  const dev = await api(http, admin, 'POST', '/api/devices', { id: 'gw-u', hardware: opts.hardware ?? 'rpi4' });
  writeFileSync(join(dir, 'token'), dev.body.token);
  const appsDir = join(dir, 'agent', 'apps');
  const configFile = join(dir, 'agent.yaml');
  writeFileSync(
    configFile,
    `device: { id: gw-u }
dataDir: ${join(dir, 'agent')}
ingest: { port: 0 }
uplink: { url: "mqtt://127.0.0.1:${a.mqtt}", username: gw-u, tokenFile: ${join(dir, 'token')}, backoffMinMs: 50, backoffMaxMs: 300 }
health: { enabled: false }
updates:
  enabled: true
${opts.jobsRoot ? `  jobsRoot: "${opts.jobsRoot}"\n` : ''}  hardware: ${opts.hardware ?? 'rpi4'}
  trustedKeys: [${pem}]
  appsDir: ${appsDir}
  healthCommand: ${opts.healthCommand?.(join(appsDir, 'gateway-app', 'current')) ?? `[test, -f, ${join(appsDir, 'gateway-app', 'current', 'ok')}]`}
  healthDeadline: 10s
  downloadRetries: 3
  downloadBackoffMs: 50
${opts.extra ?? ''}`,
  );
  // the rig's controller is on its SQLite file: read the executions directly (synchronously, for waitFor)
  const store = () => (ctl.store as SqliteDatabase).db;
  const r: Rig = {
    dir,
    ctl,
    http,
    admin,
    key,
    configFile,
    appsDir,
    jobs: 0,
    async start() {
      const p = await spawnAgent(['--config', configFile]);
      cleanups.push(() => p.kill('SIGKILL'));
      return p;
    },
    queue(manifest, over = {}) {
      const jobId = `upd-${++r.jobs}`;
      ctl.jobs!.queue({
        jobId,
        thing: 'gw-u',
        executionNumber: 1,
        document: {
          operation: 'fleetwave.update',
          purpose: 'update',
          manifest,
          artifactBaseUrl: `${http}/api/releases/${manifest.name}/${manifest.version}/artifacts/`,
          ...over,
        },
      });
      return jobId;
    },
    execution(jobId) {
      const row = store().prepare('SELECT status, status_details FROM job_executions WHERE job_id = ?').get(jobId) as
        | { status: string; status_details: string | null }
        | undefined;
      return (
        row && { status: row.status, ...(row.status_details && { statusDetails: JSON.parse(row.status_details) }) }
      );
    },
    async waitTerminal(jobId) {
      await waitFor(
        `${jobId} to end`,
        () => !['QUEUED', 'IN_PROGRESS'].includes(r.execution(jobId)?.status ?? 'QUEUED'),
        60_000,
      );
      return r.execution(jobId)!;
    },
    active() {
      try {
        return readlinkSync(join(appsDir, 'gateway-app', 'current'));
      } catch {
        return null;
      }
    },
  };
  return r;
}

export async function release(r: Rig, version: string, files: Record<string, string> = { ok: '', 'app.txt': version }) {
  const archive = await appArchive(r.dir, version, files);
  const m = filesRelease(r.key, version, archive, { hardware: ['rpi4'] });
  await publishRelease(r.http, r.admin, m, archive);
  return { manifest: m, archive };
}

export const installed = (r: Rig): string | undefined => {
  const f = join(r.dir, 'agent', 'updates', 'installed.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')).current['gateway-app'] : undefined;
};

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { FleetwaveError, verifyManifest } from '@fleetwave/shared';
import { checkFreeSpace, download, sha256File } from './download.js';
import { healthCheck, runCommand } from './health-checks.js';
import type { InstallContext } from './installers/types.js';
import type { UpdateState } from './state.js';
import type { InstalledRecord, UpdateManagerOptions } from './update-manager.js';

export interface StageDeps extends UpdateManagerOptions {
  dir: string;
  installed: () => InstalledRecord;
  saveInstalled: (r: InstalledRecord) => void;
  persist: () => void;
  progress: (details: Record<string, string>) => void;
  activationAllowed: () => boolean;
  sleep?: (ms: number) => Promise<void>;
}

/** Semantic-version order (numeric major.minor.patch; a pre-release sorts before its release). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core, pre] = v.split('-', 2) as [string, string | undefined];
    return { nums: core.split('.').map(Number), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function artifactPath(d: Pick<StageDeps, 'dir'>, sha256: string): string {
  return join(d.dir, 'downloads', sha256);
}

function resolveUrl(url: string, base: string | undefined): string {
  if (/^https?:\/\//.test(url)) return url;
  if (!base)
    throw new FleetwaveError('E_DOWNLOAD_GAVE_UP', `relative artifact URL ${url} without an artifact base URL`);
  return new URL(url.replace(/^\.\//, ''), base).toString();
}

export function context(s: UpdateState, d: Pick<StageDeps, 'dir' | 'log'>): InstallContext {
  return {
    manifest: s.manifest,
    artifacts: s.manifest.artifacts.map((a) => artifactPath(d, a.sha256)),
    slot: s.slot,
    previousVersion: s.previousVersion,
    log: d.log.child({ job: s.jobId }),
  };
}

export function installerFor(s: UpdateState, d: Pick<StageDeps, 'installers'>) {
  const i = d.installers[s.manifest.install.type];
  if (!i) throw new FleetwaveError('E_UPDATE_INSTALLER', `this agent has no ${s.manifest.install.type} installer`);
  return i;
}

/** One step of the machine; resolves to the event (`skip`: already installed), throws a coded error on failure. */
export async function runStage(s: UpdateState, d: StageDeps): Promise<'ok' | 'skip'> {
  const m = s.manifest;
  const sleep = d.sleep ?? sleepMs;
  switch (s.stage) {
    case 'verifying': {
      verifyManifest(m, { trusted: d.trusted, now: d.now() });
      if (!m.hardware.includes(d.config.hardware)) {
        throw new FleetwaveError(
          'E_UPDATE_HARDWARE',
          `release is for ${m.hardware.join(', ')}, this device is ${d.config.hardware}`,
        );
      }
      installerFor(s, d);
      const installed = d.installed();
      const current = installed.current[m.name];
      if (current === m.version) return 'skip';
      const rollbackToPrevious = s.purpose === 'rollback' && installed.previous[m.name] === m.version;
      if (current && compareVersions(m.version, current) < 0 && !m.allowDowngrade && !rollbackToPrevious) {
        throw new FleetwaveError('E_UPDATE_DOWNGRADE', `${m.version} is older than the installed ${current}`);
      }
      const total = m.artifacts.reduce((n, a) => n + a.size, 0);
      if (total > d.config.maxArtifactBytes) {
        throw new FleetwaveError('E_DISK_FULL', `artifacts of ${total} bytes exceed updates.maxArtifactBytes`);
      }
      checkFreeSpace(join(d.dir, 'downloads'), total);
      return 'ok';
    }
    case 'downloading': {
      for (const a of m.artifacts) {
        const dest = artifactPath(d, a.sha256);
        let lastPct = -1;
        await download({
          url: resolveUrl(a.url, s.artifactBaseUrl),
          dest,
          size: a.size,
          headers: d.downloadHeaders,
          retries: d.config.downloadRetries,
          backoffMs: d.config.downloadBackoffMs,
          sleep,
          onProgress: (bytes) => {
            const pct = Math.floor((bytes * 100) / a.size / 10) * 10;
            if (pct > lastPct && pct < 100) {
              lastPct = pct;
              d.progress({ artifact: a.name, percent: String(pct), bytes: String(bytes) });
            }
          },
        });
        const sha = await sha256File(dest);
        if (sha !== a.sha256) {
          rmSync(dest, { force: true });
          throw new FleetwaveError(
            'E_ARTIFACT_HASH',
            `${a.name} has SHA-256 ${sha}, the signed manifest says ${a.sha256}`,
          );
        }
      }
      return 'ok';
    }
    case 'installing':
      s.slot = await installerFor(s, d).install(context(s, d));
      return 'ok';
    case 'awaiting-activation':
      while (!d.activationAllowed()) await sleep(1000);
      return 'ok';
    case 'activating': {
      // the visit was counted and persisted before this step ran (the reboot-loop guard: UpdateManager.enter)
      const installer = installerFor(s, d);
      if (installer.beforeActivate) {
        s.slot = installer.beforeActivate(context(s, d));
        d.persist();
      }
      await installer.activate(context(s, d));
      if (d.config.restartCommand && m.install.type === 'files') {
        const r = await runCommand(d.config.restartCommand, 120_000);
        if (r.code !== 0)
          throw new FleetwaveError('E_INSTALL', `restart command exited ${r.code}: ${r.output.slice(-200)}`);
      }
      return 'ok';
    }
    case 'health-checking':
      await healthCheck({
        manifest: m,
        command: d.config.healthCommand,
        deadline: d.now() + d.config.healthDeadline,
        now: d.now,
        connected: d.connected,
        sleep,
      });
      return 'ok';
    case 'committing': {
      await installerFor(s, d).commit(context(s, d));
      const r = d.installed();
      const before = r.current[m.name];
      d.saveInstalled({
        current: { ...r.current, [m.name]: m.version },
        previous: before ? { ...r.previous, [m.name]: before } : r.previous,
      });
      return 'ok';
    }
    case 'rolling-back': {
      await installerFor(s, d).rollback(context(s, d));
      if (d.config.restartCommand && m.install.type === 'files') {
        await runCommand(d.config.restartCommand, 120_000);
      }
      return 'ok';
    }
    default:
      throw new Error(`stage ${s.stage} has no step`);
  }
}

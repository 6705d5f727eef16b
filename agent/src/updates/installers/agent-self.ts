import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FleetwaveError } from '@fleetwave/shared';
import { switchLink } from './links.js';
import type { InstallContext, Installer, Probe } from './types.js';

export interface AgentSelfOptions {
  /** `<root>/bin/fleetwave-agent` → `<root>/versions/<version>/fleetwave-agent`. */
  root: string;
  /** The version of the agent running this code. */
  runningVersion: string;
  /** Ends this process so the service manager starts the agent again from the symlink (systemd Restart=always). */
  restart: () => void;
  /** Identifies this process (a restart changes it). */
  processId?: string;
}

const EXE = 'fleetwave-agent';

/**
 * The `agent` installer: the agent updates its own executable. The new executable goes to
 * `versions/<version>/fleetwave-agent` and must answer `--version` with the release's version before anything else;
 * activation switches `bin/fleetwave-agent` (and `bin/fleetwave-agent.previous` to the running one) and ends the
 * process for the service manager to restart it. The restarted agent is the new version (probe: active) and goes on
 * with the health check — its self-test is that it came up, opened its outbox and state, reconnected and resumed the
 * update — or it is still the old one (probe: fell back, e.g. the unit's OnFailure ran `fleetwave-agent.previous
 * self-rollback` after the new one kept crashing) and the update fails. Rollback points the symlink back and restarts
 * when the new version is the one running.
 */
export class AgentSelfInstaller implements Installer {
  readonly type = 'agent';
  private readonly pid: string;

  constructor(private readonly o: AgentSelfOptions) {
    this.pid = o.processId ?? `${process.pid}:${Math.round(performance.timeOrigin)}`;
  }

  private get link() {
    return join(this.o.root, 'bin', EXE);
  }

  private versionDir(v: string) {
    return join(this.o.root, 'versions', v);
  }

  async install(ctx: InstallContext): Promise<Record<string, string>> {
    const v = ctx.manifest.version;
    if (!existsSync(this.link)) {
      throw new FleetwaveError(
        'E_UPDATE_INSTALLER',
        `${this.link} is missing: the agent is not installed in the self-update layout`,
      );
    }
    const exe = join(this.versionDir(v), EXE);
    if (!existsSync(exe)) {
      mkdirSync(this.versionDir(v), { recursive: true });
      const partial = `${exe}.partial`;
      copyFileSync(ctx.artifacts[0]!, partial);
      chmodSync(partial, 0o755);
      const r = spawnSync(partial, ['--version'], { encoding: 'utf8', timeout: 60_000 });
      if (r.status !== 0 || r.stdout.trim() !== v) {
        rmSync(this.versionDir(v), { recursive: true, force: true });
        throw new FleetwaveError(
          'E_INSTALL',
          `the new executable does not run here or is not ${v} (--version: ${r.error?.message ?? (r.stdout.trim() || r.stderr.trim()).slice(0, 200)})`,
        );
      }
      renameSync(partial, exe);
    }
    return { previous: readlinkSync(this.link), target: join('..', 'versions', v, EXE) };
  }

  beforeActivate(ctx: InstallContext): Record<string, string> {
    return { ...ctx.slot, activatedBy: this.pid };
  }

  async activate(ctx: InstallContext): Promise<void> {
    if (this.o.runningVersion === ctx.manifest.version) return;
    switchLink(`${this.link}.previous`, ctx.slot.previous!);
    switchLink(this.link, ctx.slot.target!);
    this.o.restart();
    await new Promise<never>(() => {}); // the process ends
  }

  probe(ctx: InstallContext): Probe {
    if (this.o.runningVersion === ctx.manifest.version) return 'active';
    return ctx.slot.activatedBy && ctx.slot.activatedBy !== this.pid ? 'fell-back' : 'pending';
  }

  async commit(ctx: InstallContext): Promise<void> {
    const keep = new Set([ctx.manifest.version, basename(dirname(ctx.slot.previous ?? ''))]);
    for (const v of readdirSync(join(this.o.root, 'versions'))) {
      if (!keep.has(v)) rmSync(this.versionDir(v), { recursive: true, force: true });
    }
  }

  async rollback(ctx: InstallContext): Promise<void> {
    if (ctx.slot.previous) switchLink(this.link, ctx.slot.previous);
    if (this.o.runningVersion === ctx.manifest.version) {
      this.o.restart();
      await new Promise<never>(() => {});
    }
  }
}

/** `fleetwave-agent self-rollback`: run from `bin/fleetwave-agent.previous` by the unit's OnFailure, points the agent
 * back at the executable running it. */
export function selfRollback(root: string, executable: string): string {
  const link = join(root, 'bin', EXE);
  const target = join('..', 'versions', basename(dirname(executable)), EXE);
  switchLink(link, target);
  return target;
}

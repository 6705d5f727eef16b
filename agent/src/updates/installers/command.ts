import { spawn } from 'node:child_process';
import { FleetwaveError } from '@fleetwave/shared';
import type { InstallContext, Installer } from './types.js';

export type CommandPhase = 'install' | 'activate' | 'commit' | 'rollback';

/**
 * The `command` installer: an operator-provided executable does the work, like an update module. The contract
 * (agent/README.md "Command installers"): it is run as `<command…> <phase>` with phase one of install, activate,
 * commit, rollback; the environment carries FLEETWAVE_RELEASE, FLEETWAVE_VERSION, FLEETWAVE_PREVIOUS_VERSION,
 * FLEETWAVE_ARTIFACTS (paths joined by ':') and FLEETWAVE_STATE_DIR (a directory it may keep state in); exit 0 is
 * success, anything else failure; each phase must be idempotent (it is run again after a crash). Only executables
 * listed in the agent's `updates.commandInstallers` may be named by a release.
 */
export class CommandInstaller implements Installer {
  readonly type = 'command';

  constructor(private readonly o: { allowed: readonly string[]; stateDir: string; timeoutMs?: number }) {}

  private run(ctx: InstallContext, phase: CommandPhase): Promise<void> {
    const install = ctx.manifest.install;
    if (install.type !== 'command') throw new FleetwaveError('E_UPDATE_INSTALLER', 'not a command release');
    const [cmd, ...args] = install.command;
    if (!cmd || !this.o.allowed.includes(cmd)) {
      throw new FleetwaveError('E_UPDATE_INSTALLER', `command installer ${cmd} is not in updates.commandInstallers`);
    }
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, [...args, phase], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: this.o.timeoutMs ?? 600_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          FLEETWAVE_PHASE: phase,
          FLEETWAVE_RELEASE: ctx.manifest.name,
          FLEETWAVE_VERSION: ctx.manifest.version,
          FLEETWAVE_PREVIOUS_VERSION: ctx.previousVersion ?? '',
          FLEETWAVE_ARTIFACTS: ctx.artifacts.join(':'),
          FLEETWAVE_STATE_DIR: this.o.stateDir,
        },
      });
      let out = '';
      const keep = (b: Buffer) => {
        out = (out + b.toString('utf8')).slice(-2000);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      child.on('error', (err) => reject(new FleetwaveError('E_INSTALL', `${cmd} ${phase}: ${err.message}`)));
      child.on('close', (code, signal) => {
        if (code === 0) return resolve();
        ctx.log.warn({ phase, code, signal, output: out }, 'command installer failed');
        reject(new FleetwaveError('E_INSTALL', `${cmd} ${phase} exited ${code ?? signal}: ${out.trim().slice(-300)}`));
      });
    });
  }

  async install(ctx: InstallContext): Promise<Record<string, string>> {
    await this.run(ctx, 'install');
    return {};
  }
  activate(ctx: InstallContext): Promise<void> {
    return this.run(ctx, 'activate');
  }
  commit(ctx: InstallContext): Promise<void> {
    return this.run(ctx, 'commit');
  }
  rollback(ctx: InstallContext): Promise<void> {
    return this.run(ctx, 'rollback');
  }
}

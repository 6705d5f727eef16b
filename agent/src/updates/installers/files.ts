import { existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FleetwaveError } from '@fleetwave/shared';
import { extract } from 'tar';
import { checkArchive } from './archive.js';
import { switchLink } from './links.js';
import type { InstallContext, Installer } from './types.js';

/**
 * The `files` installer: each release's archive is unpacked into its own slot directory,
 * `<appsDir>/<target>/slots/<version>`, and `<appsDir>/<target>/current` is a symlink switched atomically; the
 * previous slot stays for rollback. Archives are checked entry by entry before anything is written.
 */
export class FilesInstaller implements Installer {
  readonly type = 'files';

  constructor(private readonly o: { appsDir: string; maxBytes: number; maxEntries?: number }) {}

  private dirs(ctx: InstallContext) {
    const install = ctx.manifest.install;
    if (install.type !== 'files') throw new FleetwaveError('E_UPDATE_INSTALLER', 'not a files release');
    const app = join(this.o.appsDir, install.target);
    return { app, slots: join(app, 'slots'), current: join(app, 'current') };
  }

  /** The slot directory `current` points at, or null. */
  active(target: string): string | null {
    try {
      return readlinkSync(join(this.o.appsDir, target, 'current'));
    } catch {
      return null;
    }
  }

  async install(ctx: InstallContext): Promise<Record<string, string>> {
    const d = this.dirs(ctx);
    const slotName = ctx.manifest.version;
    const slot = join(d.slots, slotName);
    const previous = this.active((ctx.manifest.install as { target: string }).target);
    if (previous === join('slots', slotName)) {
      throw new FleetwaveError('E_INSTALL', `version ${slotName} is the active slot already`);
    }
    if (!existsSync(slot)) {
      const partial = `${slot}.partial`;
      rmSync(partial, { recursive: true, force: true });
      mkdirSync(partial, { recursive: true });
      for (const file of ctx.artifacts) {
        await checkArchive(file, { maxBytes: this.o.maxBytes, maxEntries: this.o.maxEntries ?? 100_000 });
        await extract({ file, cwd: partial, strict: true, preserveOwner: false, noChmod: false });
      }
      renameSync(partial, slot);
    }
    return { slot: join('slots', slotName), previous: previous ?? '' };
  }

  async activate(ctx: InstallContext): Promise<void> {
    switchLink(this.dirs(ctx).current, ctx.slot.slot!);
  }

  async commit(ctx: InstallContext): Promise<void> {
    const d = this.dirs(ctx);
    const keep = new Set([ctx.slot.slot, ctx.slot.previous].filter(Boolean).map((s) => s!.replace(/^slots\//, '')));
    for (const name of readdirSync(d.slots))
      if (!keep.has(name)) rmSync(join(d.slots, name), { recursive: true, force: true });
  }

  async rollback(ctx: InstallContext): Promise<void> {
    const d = this.dirs(ctx);
    switchLink(d.current, ctx.slot.previous || null);
    if (ctx.slot.slot && ctx.slot.slot !== ctx.slot.previous)
      rmSync(join(d.app, ctx.slot.slot), { recursive: true, force: true });
  }
}

import { spawn } from 'node:child_process';
import { closeSync, createReadStream, createWriteStream, fsyncSync, openSync, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { FleetwaveError } from '@fleetwave/shared';
import { type Bootloader, otherSlot, type Slot } from './bootloader.js';
import type { InstallContext, Installer, Probe } from './types.js';

export interface AbRootfsOptions {
  bootloader: Bootloader;
  /** Where each slot's root file system is written (a block device, or an image file in tests). */
  devices: Record<Slot, string>;
  rebootCommand: readonly string[];
  /** Identifies the current boot (`/proc/sys/kernel/random/boot_id`): a changed id means the device rebooted. */
  bootIdFile: string;
  /** How long activate() waits for the reboot it asked for before it gives up. */
  rebootTimeoutMs?: number;
}

/**
 * The `ab-rootfs` installer: the release's image is written to the slot the system did not boot from, the boot
 * loader is told to boot it once, and the device reboots. After the reboot the update machine probes: booted from the
 * new slot → health check, then commit (the boot loader's default becomes the new slot); booted from the old one →
 * the boot loader fell back, the update fails. A rollback after a boot into the new slot makes the old slot the
 * default again and reboots.
 */
export class AbRootfsInstaller implements Installer {
  readonly type = 'ab-rootfs';

  constructor(private readonly o: AbRootfsOptions) {}

  private bootId(): string {
    return readFileSync(this.o.bootIdFile, 'utf8').trim();
  }

  async install(ctx: InstallContext): Promise<Record<string, string>> {
    const from = this.o.bootloader.booted();
    const target = ctx.slot.target ? (ctx.slot.target as Slot) : otherSlot(from);
    if (target === from) throw new FleetwaveError('E_INSTALL', `slot ${target} is the running system`);
    const image = ctx.artifacts[0];
    if (!image) throw new FleetwaveError('E_INSTALL', 'an ab-rootfs release needs an image artifact');
    const device = this.o.devices[target];
    await pipeline(createReadStream(image), createWriteStream(device, { flags: 'w' }));
    const fd = openSync(device, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return { target, from };
  }

  private reboot(): Promise<never> {
    return new Promise((_resolve, reject) => {
      const [cmd, ...args] = this.o.rebootCommand;
      spawn(cmd!, args, { stdio: 'ignore' }).on('error', (err) =>
        reject(new FleetwaveError('E_INSTALL', `reboot command failed: ${err.message}`)),
      );
      // the reboot ends this process; if it does not come, give up (the update machine rolls back)
      setTimeout(
        () => reject(new FleetwaveError('E_INSTALL', 'the device did not reboot')),
        this.o.rebootTimeoutMs ?? 300_000,
      ).unref();
    });
  }

  /** Persist first (the boot id before the reboot is in the slot data), then ask for the one-time boot. */
  async activate(ctx: InstallContext): Promise<void> {
    const target = ctx.slot.target as Slot;
    if (this.o.bootloader.booted() === target) return;
    this.o.bootloader.tryOnce(target);
    await this.reboot();
  }

  probe(ctx: InstallContext): Probe {
    if (this.o.bootloader.booted() === (ctx.slot.target as Slot)) return 'active';
    return ctx.slot.bootId && ctx.slot.bootId !== this.bootId() ? 'fell-back' : 'pending';
  }

  /** The boot id before activation, kept with the slot data. */
  beforeActivate(ctx: InstallContext): Record<string, string> {
    return { ...ctx.slot, bootId: this.bootId() };
  }

  async commit(ctx: InstallContext): Promise<void> {
    this.o.bootloader.commit(ctx.slot.target as Slot);
  }

  async rollback(ctx: InstallContext): Promise<void> {
    const from = (ctx.slot.from as Slot | undefined) ?? otherSlot(ctx.slot.target as Slot);
    this.o.bootloader.clearTry();
    this.o.bootloader.commit(from);
    if (this.o.bootloader.booted() !== from) await this.reboot();
  }
}

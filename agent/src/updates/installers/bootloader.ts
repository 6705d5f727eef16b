import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { FleetwaveError } from '@fleetwave/shared';
import { writeDurable } from '../state.js';

export type Slot = 'a' | 'b';
export const otherSlot = (s: Slot): Slot => (s === 'a' ? 'b' : 'a');

/** The boot loader as the `ab-rootfs` installer needs it (docs/STYLE.md: `Bootloader`). */
export interface Bootloader {
  /** The slot the running system booted from. */
  booted(): Slot;
  /** The slot booted by default. */
  committed(): Slot;
  /** Boot `slot` on the next boot only; any later boot goes back to the committed slot. */
  tryOnce(slot: Slot): void;
  commit(slot: Slot): void;
  /** Drops a pending one-time boot. */
  clearTry(): void;
}

/**
 * Raspberry Pi's tryboot: `autoboot.txt` on the boot partition names the default partition in `[all]` and the one
 * booted by `reboot "0 tryboot"` in `[tryboot]` (with `tryboot_a_b=1`); the firmware reports the partition it booted
 * in the device tree (`chosen/bootloader/partition`, a big-endian u32).
 */
export class RpiTryboot implements Bootloader {
  constructor(private readonly o: { bootDir: string; deviceTreeDir: string; partitions: Record<Slot, number> }) {}

  private get file() {
    return join(this.o.bootDir, 'autoboot.txt');
  }

  private slotOf(partition: number): Slot {
    if (partition === this.o.partitions.a) return 'a';
    if (partition === this.o.partitions.b) return 'b';
    throw new FleetwaveError('E_INSTALL', `partition ${partition} is neither slot a nor slot b`);
  }

  private read(): { all: number; tryboot: number } {
    const text = existsSync(this.file) ? readFileSync(this.file, 'utf8') : '';
    let section = 'all';
    const out = { all: this.o.partitions.a, tryboot: this.o.partitions.a };
    let sawTry = false;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      const s = /^\[(\w+)\]$/.exec(line);
      if (s) section = s[1]!;
      const m = /^boot_partition=(\d+)$/.exec(line);
      if (m && (section === 'all' || section === 'tryboot')) {
        out[section] = Number(m[1]);
        if (section === 'tryboot') sawTry = true;
      }
    }
    if (!sawTry) out.tryboot = out.all;
    return out;
  }

  private write(all: number, tryboot: number): void {
    writeDurable(this.file, `[all]\ntryboot_a_b=1\nboot_partition=${all}\n[tryboot]\nboot_partition=${tryboot}\n`);
  }

  booted(): Slot {
    const buf = readFileSync(join(this.o.deviceTreeDir, 'partition'));
    return this.slotOf(buf.readUInt32BE(0));
  }
  committed(): Slot {
    return this.slotOf(this.read().all);
  }
  tryOnce(slot: Slot): void {
    this.write(this.read().all, this.o.partitions[slot]);
  }
  commit(slot: Slot): void {
    this.write(this.o.partitions[slot], this.o.partitions[slot]);
  }
  clearTry(): void {
    const r = this.read();
    this.write(r.all, r.all);
  }
}

/** U-Boot's environment in its binary form (a CRC32, then `name=value\0` pairs, padded): `uboot.env` on FAT. */
export function readUbootEnv(file: string, size: number): Map<string, string> {
  const env = new Map<string, string>();
  if (!existsSync(file)) return env;
  const buf = readFileSync(file);
  if (buf.length !== size) throw new FleetwaveError('E_INSTALL', `${file} is ${buf.length} bytes, expected ${size}`);
  const data = buf.subarray(4);
  if (crc32(data) !== buf.readUInt32LE(0)) throw new FleetwaveError('E_INSTALL', `${file} has a bad CRC`);
  for (const pair of data.toString('latin1').split('\0')) {
    if (!pair) break;
    const i = pair.indexOf('=');
    if (i > 0) env.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return env;
}

export function writeUbootEnv(file: string, size: number, env: Map<string, string>): void {
  const body = Buffer.from(`${[...env].map(([k, v]) => `${k}=${v}`).join('\0')}\0\0`, 'latin1');
  if (body.length > size - 4) throw new FleetwaveError('E_INSTALL', `U-Boot environment exceeds ${size} bytes`);
  const buf = Buffer.alloc(size, 0);
  body.copy(buf, 4);
  buf.writeUInt32LE(crc32(buf.subarray(4)), 0);
  writeDurable(file, buf);
}

/**
 * U-Boot with its environment in a file: `fleetwave_slot` is the default slot, `fleetwave_try` a slot to boot once
 * (the boot script clears it before booting it, see agent/README.md), and the kernel command line carries
 * `fleetwave.slot=<slot>` so the running system knows where it came from.
 */
export class UbootEnvBootloader implements Bootloader {
  constructor(private readonly o: { envFile: string; envSize: number; cmdlineFile: string }) {}

  private env() {
    return readUbootEnv(this.o.envFile, this.o.envSize);
  }
  private save(env: Map<string, string>) {
    writeUbootEnv(this.o.envFile, this.o.envSize, env);
  }

  booted(): Slot {
    const m = /(?:^|\s)fleetwave\.slot=([ab])(?:\s|$)/.exec(readFileSync(this.o.cmdlineFile, 'utf8'));
    if (!m) throw new FleetwaveError('E_INSTALL', `${this.o.cmdlineFile} has no fleetwave.slot=a|b`);
    return m[1] as Slot;
  }
  committed(): Slot {
    return this.env().get('fleetwave_slot') === 'b' ? 'b' : 'a';
  }
  tryOnce(slot: Slot): void {
    const env = this.env();
    env.set('fleetwave_try', slot);
    this.save(env);
  }
  commit(slot: Slot): void {
    const env = this.env();
    env.set('fleetwave_slot', slot);
    env.delete('fleetwave_try');
    this.save(env);
  }
  clearTry(): void {
    const env = this.env();
    if (!env.has('fleetwave_try')) return;
    env.delete('fleetwave_try');
    this.save(env);
  }
}

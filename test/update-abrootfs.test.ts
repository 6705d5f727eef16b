import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readUbootEnv, writeUbootEnv } from '@fleetwave/agent';
import { signManifest } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { type AgentProcess, cleanupAfterEach, waitFor } from './helpers.js';
import { publishRelease, sha256 } from './release-helpers.js';
import { type Rig, rig } from './update-rig.js';

const cleanups = cleanupAfterEach();
type Kind = 'rpi-tryboot' | 'uboot';
const ENV_SIZE = 0x4000;

/**
 * A gateway with two root file system slots laid out in a directory, and the boot firmware simulated as the boot
 * loaders document it: Raspberry Pi boots autoboot.txt's [tryboot] partition once after `reboot "0 tryboot"`, else
 * [all]; U-Boot boots `fleetwave_try` once (clearing it) else `fleetwave_slot`. An image that "panics" makes the
 * watchdog reboot plainly, into the default slot.
 */
class Device {
  readonly boot: string;
  constructor(
    readonly dir: string,
    readonly kind: Kind,
  ) {
    this.boot = join(dir, 'boot');
    mkdirSync(join(this.boot), { recursive: true });
    mkdirSync(join(dir, 'dt'), { recursive: true });
    writeFileSync(join(dir, 'slot-a.img'), 'GOOD 1.0.0');
    writeFileSync(join(dir, 'slot-b.img'), '');
    if (kind === 'rpi-tryboot')
      writeFileSync(join(this.boot, 'autoboot.txt'), '[all]\ntryboot_a_b=1\nboot_partition=2\n');
    else writeUbootEnv(join(this.boot, 'uboot.env'), ENV_SIZE, new Map([['fleetwave_slot', 'a']]));
    this.bootInto('a');
  }

  get config(): string {
    return `  abRootfs:
    bootloader: ${this.kind}
    slots: { a: { device: ${join(this.dir, 'slot-a.img')}, partition: 2 }, b: { device: ${join(this.dir, 'slot-b.img')}, partition: 3 } }
    bootDir: ${this.boot}
    deviceTreeDir: ${join(this.dir, 'dt')}
    cmdlineFile: ${join(this.dir, 'cmdline')}
    bootIdFile: ${join(this.dir, 'boot_id')}
    rebootCommand: [sh, -c, 'echo "$0" > ${join(this.dir, 'reboot-requested')}', '${this.kind === 'rpi-tryboot' ? '0 tryboot' : 'plain'}']
`;
  }

  private bootInto(slot: 'a' | 'b'): void {
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(slot === 'a' ? 2 : 3);
    writeFileSync(join(this.dir, 'dt', 'partition'), buf);
    writeFileSync(
      join(this.dir, 'cmdline'),
      `console=serial0 root=/dev/mmcblk0p${slot === 'a' ? 2 : 3} fleetwave.slot=${slot}\n`,
    );
    writeFileSync(join(this.dir, 'boot_id'), randomUUID());
    writeFileSync(join(this.dir, 'booted'), join(this.dir, `slot-${slot}.img`));
  }

  /** Power-cycles as the firmware would after the requested reboot; returns the slot it ended in. */
  reboot(): 'a' | 'b' {
    const tryboot = existsSync(join(this.dir, 'reboot-requested'))
      ? readFileSync(join(this.dir, 'reboot-requested'), 'utf8').trim() === '0 tryboot'
      : false;
    rmSync(join(this.dir, 'reboot-requested'), { force: true });
    let slot: 'a' | 'b';
    if (this.kind === 'rpi-tryboot') {
      const text = readFileSync(join(this.boot, 'autoboot.txt'), 'utf8');
      const part = (section: string) =>
        Number(new RegExp(`\\[${section}\\][^[]*boot_partition=(\\d+)`).exec(text)?.[1] ?? 2);
      slot = (tryboot ? part('tryboot') : part('all')) === 3 ? 'b' : 'a';
    } else {
      const env = readUbootEnv(join(this.boot, 'uboot.env'), ENV_SIZE);
      const once = env.get('fleetwave_try');
      env.delete('fleetwave_try');
      writeUbootEnv(join(this.boot, 'uboot.env'), ENV_SIZE, env);
      slot = (once ?? env.get('fleetwave_slot') ?? 'a') as 'a' | 'b';
    }
    if (readFileSync(join(this.dir, `slot-${slot}.img`), 'utf8').startsWith('PANIC')) {
      // the kernel panics, the watchdog resets: a plain boot into the default slot
      return this.reboot();
    }
    this.bootInto(slot);
    return slot;
  }

  committed(): 'a' | 'b' {
    if (this.kind === 'rpi-tryboot') {
      return /\[all\][^[]*boot_partition=3/.test(readFileSync(join(this.boot, 'autoboot.txt'), 'utf8')) ? 'b' : 'a';
    }
    return readUbootEnv(join(this.boot, 'uboot.env'), ENV_SIZE).get('fleetwave_slot') === 'b' ? 'b' : 'a';
  }
}

async function imageRelease(r: Rig, kind: Kind, version: string, content: string) {
  const file = join(r.dir, `rootfs-${version}.img`);
  writeFileSync(file, `${content} ${version}`);
  const m = signManifest(
    {
      schema: 1,
      name: 'rootfs',
      version,
      hardware: ['rpi4'],
      artifacts: [{ name: 'app.tar.gz', url: './app.tar.gz', size: readFileSync(file).length, sha256: sha256(file) }],
      install: { type: 'ab-rootfs', bootloader: kind },
      createdAt: '2026-01-01T00:00:00Z',
    },
    r.key.privateKey,
  );
  await publishRelease(r.http, r.admin, m, file);
  return m;
}

/** Runs the agent through reboots until the job ends; each requested reboot kills the agent and power-cycles. */
async function runThroughReboots(
  r: Rig,
  dev: Device,
  jobId: string,
): Promise<{ status: string; reboots: number; code?: string }> {
  let reboots = 0;
  for (;;) {
    const agent: AgentProcess = await r.start();
    await waitFor(
      'the job to end or a reboot to be requested',
      () =>
        existsSync(join(dev.dir, 'reboot-requested')) ||
        !['QUEUED', 'IN_PROGRESS'].includes(r.execution(jobId)?.status ?? 'QUEUED'),
      60_000,
    );
    await agent.kill('SIGKILL');
    if (!existsSync(join(dev.dir, 'reboot-requested'))) {
      const e = r.execution(jobId)!;
      return { status: e.status, reboots, ...(e.statusDetails?.code && { code: e.statusDetails.code }) };
    }
    dev.reboot();
    reboots++;
    if (reboots > 6) throw new Error('reboot loop');
  }
}

for (const kind of ['rpi-tryboot', 'uboot'] as const) {
  describe(`ab-rootfs with ${kind} (agent as a child process, boot partition in a directory)`, () => {
    it('boots the new slot once, health-checks it and commits; rolls back a bad one; notices a fallback', async () => {
      const r = await rig(cleanups, { healthCommand: () => '__HEALTH__', extra: '__AB__' });
      const dev = new Device(join(r.dir, 'device'), kind);
      // the system's own check: the root file system it booted says GOOD
      const health = `[sh, -c, 'grep -q GOOD "$(cat "$0")"', ${join(dev.dir, 'booted')}]`;
      writeFileSync(
        r.configFile,
        readFileSync(r.configFile, 'utf8').replace('__AB__', dev.config).replace('__HEALTH__', health),
      );

      const good = await imageRelease(r, kind, '2.0.0', 'GOOD');
      const j1 = r.queue(good);
      expect(await runThroughReboots(r, dev, j1)).toEqual({ status: 'SUCCEEDED', reboots: 1 });
      expect(dev.committed()).toBe('b');
      expect(readFileSync(join(dev.dir, 'booted'), 'utf8')).toMatch(/slot-b\.img$/);
      expect(readFileSync(join(dev.dir, 'slot-b.img'), 'utf8')).toBe('GOOD 2.0.0');

      // an image that boots but fails the health check: back to b, with a second reboot
      const bad = await imageRelease(r, kind, '3.0.0', 'BAD');
      expect(await runThroughReboots(r, dev, r.queue(bad))).toEqual({
        status: 'FAILED',
        reboots: 2,
        code: 'E_HEALTH_CHECK',
      });
      expect(dev.committed()).toBe('b');
      expect(readFileSync(join(dev.dir, 'booted'), 'utf8')).toMatch(/slot-b\.img$/);

      // an image that does not boot at all: the firmware falls back, the agent notices
      const panic = await imageRelease(r, kind, '4.0.0', 'PANIC');
      const e = await runThroughReboots(r, dev, r.queue(panic));
      expect(e).toEqual({ status: 'FAILED', reboots: 1, code: 'E_HEALTH_CHECK' });
      expect(r.execution(`upd-${r.jobs}`)?.statusDetails?.reason).toMatch(
        /restarted without the new version: it fell back/,
      );
      expect(dev.committed()).toBe('b');
      expect(readFileSync(join(dev.dir, 'booted'), 'utf8')).toMatch(/slot-b\.img$/);
    }, 180_000);
  });
}

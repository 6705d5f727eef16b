import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SignedReleaseManifest } from '@fleetwave/shared';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { InstallContext, Installer } from './types.js';

export interface InstallerHarness {
  installer: Installer;
  /** A manifest of this installer's type for `version`, and its artifact files (made by the harness). */
  release(version: string): Promise<{ manifest: SignedReleaseManifest; artifacts: string[] }>;
  /** The version that is active now (what the device would run), or null. */
  active(): string | null;
}

/**
 * What every installer must do (one suite, run against each): install never touches the active version, every step
 * can be run again after a crash, activate switches, rollback switches back, commit keeps the new one.
 */
export function installerContract(name: string, make: (dir: string) => Promise<InstallerHarness>): void {
  describe(`Installer contract: ${name}`, () => {
    const setup = async () => {
      const h = await make(mkdtempSync(join(tmpdir(), 'fw-inst-')));
      const log = pino({ level: 'silent' });
      const ctx = async (version: string, previousVersion: string | null, slot: Record<string, string> = {}) => {
        const r = await h.release(version);
        return { manifest: r.manifest, artifacts: r.artifacts, slot, previousVersion, log } satisfies InstallContext;
      };
      const full = async (version: string, previous: string | null) => {
        const c = await ctx(version, previous);
        const slot = await h.installer.install(c);
        const c2 = { ...c, slot };
        await h.installer.activate(c2);
        await h.installer.commit(c2);
        return c2;
      };
      return { h, ctx, full };
    };

    it('installs without touching the active version, then activates and commits', async () => {
      const { h, ctx, full } = await setup();
      await full('1.0.0', null);
      expect(h.active()).toBe('1.0.0');
      const c = await ctx('1.1.0', '1.0.0');
      const slot = await h.installer.install(c);
      expect(h.active()).toBe('1.0.0');
      // every step again, as after a crash
      expect(await h.installer.install(c)).toEqual(slot);
      await h.installer.activate({ ...c, slot });
      await h.installer.activate({ ...c, slot });
      expect(h.active()).toBe('1.1.0');
      await h.installer.commit({ ...c, slot });
      await h.installer.commit({ ...c, slot });
      expect(h.active()).toBe('1.1.0');
    });

    it('rolls back to the previous version, also when rollback runs twice or before activation', async () => {
      const { h, ctx, full } = await setup();
      await full('1.0.0', null);
      const c = await ctx('2.0.0', '1.0.0');
      const slot = await h.installer.install(c);
      await h.installer.activate({ ...c, slot });
      expect(h.active()).toBe('2.0.0');
      await h.installer.rollback({ ...c, slot });
      await h.installer.rollback({ ...c, slot });
      expect(h.active()).toBe('1.0.0');
      // a crash after install but before activation: rollback leaves the active version alone
      const c3 = await ctx('3.0.0', '1.0.0');
      const slot3 = await h.installer.install(c3);
      await h.installer.rollback({ ...c3, slot: slot3 });
      expect(h.active()).toBe('1.0.0');
      // and the machine can install that version again afterwards
      await full('3.0.0', '1.0.0');
      expect(h.active()).toBe('3.0.0');
    });
  });
}

export const readIf = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : null);

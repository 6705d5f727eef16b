import type { SignedReleaseManifest } from '@fleetwave/shared';
import type { Logger } from 'pino';

export interface InstallContext {
  manifest: SignedReleaseManifest;
  /** Local paths of the verified artifacts, in manifest order. */
  artifacts: readonly string[];
  /** What install() returned, persisted with the update state. */
  slot: Readonly<Record<string, string>>;
  previousVersion: string | null;
  log: Logger;
}

/**
 * One way to install a release (docs/STYLE.md: `Installer`). Every step is idempotent — after a crash the update machine
 * runs the interrupted step again — and one contract suite (installer.contract.ts) runs against every installer.
 */
export interface Installer {
  readonly type: SignedReleaseManifest['install']['type'];
  /** Writes the release into an inactive slot; returns the slot data to persist. Never touches the active one. */
  install(ctx: InstallContext): Promise<Record<string, string>>;
  /** Makes the new slot the active one. */
  activate(ctx: InstallContext): Promise<void>;
  /** The new version proved healthy: keep it and the previous slot, drop older ones. */
  commit(ctx: InstallContext): Promise<void>;
  /** Makes the previous slot the active one again (or none, when there was none). */
  rollback(ctx: InstallContext): Promise<void>;
  /**
   * For installers whose activation restarts the device: after a restart in activating or health-checking, is the new
   * version running (`active`), did the device restart without it (`fell-back`: the boot loader went back), or has the
   * restart not happened yet (`pending`)? Installers without it are simply activated again.
   */
  probe?(ctx: InstallContext): Probe;
  /** Slot data to persist right before activate() (what probe() needs to know after the restart). */
  beforeActivate?(ctx: InstallContext): Record<string, string>;
}

export type Probe = 'active' | 'fell-back' | 'pending';

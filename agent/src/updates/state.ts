import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SignedReleaseManifest } from '@fleetwave/shared';

/**
 * The update state machine as data (docs/STYLE.md convention 2). Stage names are persisted: they are a wire format and
 * never change. `ok` moves on, `fail` leaves by the failure edge; every non-terminal stage has one.
 */
export const STAGES = [
  'verifying',
  'downloading',
  'installing',
  'awaiting-activation',
  'activating',
  'health-checking',
  'committing',
  'rolling-back',
  'succeeded',
  'failed',
  'rejected',
] as const;
export type Stage = (typeof STAGES)[number];
export type StageEvent = 'ok' | 'fail';

export const transitions: readonly { from: Stage; on: StageEvent; to: Stage }[] = Object.freeze([
  { from: 'verifying', on: 'ok', to: 'downloading' },
  { from: 'verifying', on: 'fail', to: 'rejected' },
  { from: 'downloading', on: 'ok', to: 'installing' },
  { from: 'downloading', on: 'fail', to: 'failed' },
  { from: 'installing', on: 'ok', to: 'awaiting-activation' },
  { from: 'installing', on: 'fail', to: 'failed' },
  { from: 'awaiting-activation', on: 'ok', to: 'activating' },
  { from: 'awaiting-activation', on: 'fail', to: 'failed' },
  { from: 'activating', on: 'ok', to: 'health-checking' },
  { from: 'activating', on: 'fail', to: 'rolling-back' },
  { from: 'health-checking', on: 'ok', to: 'committing' },
  { from: 'health-checking', on: 'fail', to: 'rolling-back' },
  { from: 'committing', on: 'ok', to: 'succeeded' },
  { from: 'committing', on: 'fail', to: 'rolling-back' },
  { from: 'rolling-back', on: 'ok', to: 'failed' },
  { from: 'rolling-back', on: 'fail', to: 'failed' },
]);

export const TERMINAL_STAGES: readonly Stage[] = ['succeeded', 'failed', 'rejected'];

export function nextStage(from: Stage, on: StageEvent): Stage {
  const t = transitions.find((x) => x.from === from && x.on === on);
  if (!t) throw new Error(`no transition from ${from} on ${on}`);
  return t.to;
}

/** Stages from which the device may already run the new version: a crash there counts as an attempt. */
export const ACTIVE_STAGES: readonly Stage[] = ['activating', 'health-checking'];

export interface PendingReport {
  status: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'REJECTED';
  statusDetails: Record<string, string>;
}

export interface UpdateState {
  v: 1;
  jobId: string;
  /** Unknown only for a job rejected because its execution could not be read. */
  executionNumber: number | undefined;
  /** The execution's version as last acknowledged by the jobs service (sent as expectedVersion). */
  versionNumber: number | undefined;
  purpose: 'update' | 'rollback';
  manifest: SignedReleaseManifest;
  artifactBaseUrl: string | undefined;
  stage: Stage;
  /** Activations tried (the reboot-loop guard). */
  attempts: number;
  previousVersion: string | null;
  /** Installer-specific slot data (the new and the previous slot). */
  slot: Record<string, string>;
  code?: string;
  reason?: string;
  /** The last status for the cloud, kept until the jobs service acknowledged it (re-sent after every restart). */
  report: PendingReport | undefined;
  updatedAt: number;
}

/** Writes a file so that a crash leaves either the old or the new content: temp file, fsync, rename, fsync dir. */
export function writeDurable(path: string, text: string | Buffer): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, typeof text === 'string' ? Buffer.from(text) : text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function removeDurable(path: string): void {
  rmSync(path, { force: true });
}

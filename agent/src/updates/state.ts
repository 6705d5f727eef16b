import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  FleetwaveError,
  parseWith,
  type SignedReleaseManifest,
  UPDATE_STAGES,
  type UpdateJobDocument,
  UpdateStateFile,
} from '@fleetwave/shared';

/**
 * The update state machine as data (docs/STYLE.md convention 2). Stage names are persisted: they are a wire format and
 * never change. `ok` moves on, `fail` leaves by the failure edge; every non-terminal stage has one.
 */
export const STAGES = UPDATE_STAGES;
export type Stage = (typeof STAGES)[number];
/**
 * Every way a stage changes, as events through one table: `ok` and `fail` end a step; `skip` (the release is already
 * installed); `cancel` (the jobs service ended the execution before activation); `restart-*` (the agent started again
 * in a stage where the new version may be running, by what the installer's probe says); `loop` (a stage was started
 * more often than allowed: a crash loop in it).
 */
export const STAGE_EVENTS = [
  'ok',
  'fail',
  'skip',
  'cancel',
  'restart-active',
  'restart-fell-back',
  'restart-inactive',
  'loop',
] as const;
export type StageEvent = (typeof STAGE_EVENTS)[number];

const BEFORE_ACTIVATION = ['verifying', 'downloading', 'installing', 'awaiting-activation'] as const;

export const transitions: readonly { from: Stage; on: StageEvent; to: Stage }[] = Object.freeze([
  { from: 'verifying', on: 'ok', to: 'downloading' },
  { from: 'verifying', on: 'fail', to: 'rejected' },
  { from: 'verifying', on: 'skip', to: 'succeeded' },
  { from: 'downloading', on: 'ok', to: 'installing' },
  { from: 'downloading', on: 'fail', to: 'failed' },
  { from: 'installing', on: 'ok', to: 'awaiting-activation' },
  { from: 'installing', on: 'fail', to: 'failed' },
  { from: 'awaiting-activation', on: 'ok', to: 'activating' },
  { from: 'awaiting-activation', on: 'fail', to: 'failed' },
  ...BEFORE_ACTIVATION.map((from) => ({ from, on: 'cancel' as const, to: 'failed' as const })),
  ...BEFORE_ACTIVATION.map((from) => ({ from, on: 'loop' as const, to: 'failed' as const })),
  { from: 'activating', on: 'ok', to: 'health-checking' },
  { from: 'activating', on: 'fail', to: 'rolling-back' },
  { from: 'health-checking', on: 'ok', to: 'committing' },
  { from: 'health-checking', on: 'fail', to: 'rolling-back' },
  ...(['activating', 'health-checking'] as const).flatMap((from) => [
    { from, on: 'restart-active' as const, to: 'health-checking' as const },
    { from, on: 'restart-fell-back' as const, to: 'rolling-back' as const },
    { from, on: 'restart-inactive' as const, to: 'activating' as const },
    { from, on: 'loop' as const, to: 'rolling-back' as const },
  ]),
  { from: 'committing', on: 'ok', to: 'succeeded' },
  { from: 'committing', on: 'fail', to: 'rolling-back' },
  { from: 'committing', on: 'loop', to: 'rolling-back' },
  { from: 'rolling-back', on: 'ok', to: 'failed' },
  { from: 'rolling-back', on: 'fail', to: 'failed' },
  { from: 'rolling-back', on: 'loop', to: 'failed' },
]);

export const TERMINAL_STAGES: readonly Stage[] = ['succeeded', 'failed', 'rejected'];

export function nextStage(from: Stage, on: StageEvent): Stage {
  const t = transitions.find((x) => x.from === from && x.on === on);
  if (!t) throw new Error(`no transition from ${from} on ${on}`);
  return t.to;
}

/** Stages from which the device may already run the new version: a restart there asks the installer where it is. */
export const ACTIVE_STAGES: readonly Stage[] = ['activating', 'health-checking'];

/** Waiting for permission to activate does nothing that could crash: restarts there are not a loop. */
export const UNCOUNTED_STAGES: readonly Stage[] = ['awaiting-activation'];

/** Why a stage started `visits` times ends the update (the `loop` event). */
export function loopReason(stage: Stage, visits: number): string {
  return ACTIVE_STAGES.includes(stage)
    ? `${visits - 1} starts of the new version (${stage}) did not end healthy`
    : `${stage} was started ${visits} times without finishing (a crash or power loss each time)`;
}

/** The version of the persisted state (`state.json`); an agent refuses a version it does not know. */
export const UPDATE_STATE_VERSION = 2 as const;

export interface PendingReport {
  status: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'REJECTED';
  statusDetails: Record<string, string>;
}

export interface UpdateState {
  v: typeof UPDATE_STATE_VERSION;
  jobId: string;
  /** Unknown only for a job rejected because its execution could not be read. */
  executionNumber: number | undefined;
  /** The execution's version as last acknowledged by the jobs service (sent as expectedVersion). */
  versionNumber: number | undefined;
  purpose: 'update' | 'rollback';
  manifest: SignedReleaseManifest;
  artifactBaseUrl: string | undefined;
  stage: Stage;
  /** How often each stage was started (the reboot-loop and crash-loop guard; counted by the one persist function). */
  visits: Partial<Record<Stage, number>>;
  previousVersion: string | null;
  /** Installer-specific slot data (the new and the previous slot). */
  slot: Record<string, string>;
  code?: string;
  reason?: string;
  /** The last status for the cloud, kept until the jobs service acknowledged it (re-sent after every restart). */
  report: PendingReport | undefined;
  updatedAt: number;
}

/** What identifies an execution (a job id alone when the rest of it could not be read). */
export interface ExecutionRef {
  jobId: string;
  executionNumber: number | undefined;
  versionNumber: number | undefined;
}

function base(e: ExecutionRef, now: number) {
  return {
    v: UPDATE_STATE_VERSION,
    jobId: e.jobId,
    executionNumber: e.executionNumber,
    versionNumber: e.versionNumber,
    slot: {},
    visits: {},
    updatedAt: now,
    report: undefined,
  };
}

/** The state of a job this agent will try: at verifying, nothing counted yet. */
export function newUpdateState(
  e: ExecutionRef,
  doc: UpdateJobDocument,
  previousVersion: string | null,
  now: number,
): UpdateState {
  return {
    ...base(e, now),
    purpose: doc.purpose,
    manifest: doc.manifest,
    artifactBaseUrl: doc.artifactBaseUrl,
    stage: 'verifying',
    previousVersion,
  };
}

/** The state of a job this agent cannot do (its document, or the execution itself, is not readable). */
export function rejectedState(e: ExecutionRef, reason: string, now: number): UpdateState {
  return {
    ...base(e, now),
    purpose: 'update',
    manifest: null as never,
    artifactBaseUrl: undefined,
    stage: 'rejected',
    previousVersion: null,
    code: 'E_SCHEMA',
    reason: reason.slice(0, 1000),
  };
}

/** The status for the jobs service that a state stands for. */
export function reportOf(s: UpdateState): PendingReport {
  const details: Record<string, string> = { stage: s.stage, version: s.manifest?.version ?? '', purpose: s.purpose };
  if (s.code) details.code = s.code;
  if (s.reason) details.reason = s.reason.slice(0, 1000);
  const status =
    s.stage === 'succeeded'
      ? 'SUCCEEDED'
      : s.stage === 'failed'
        ? 'FAILED'
        : s.stage === 'rejected'
          ? 'REJECTED'
          : 'IN_PROGRESS';
  return { status, statusDetails: details };
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

/**
 * Reads the persisted state, checking its version: 2 is read as it is (validated), 1 is migrated (its activation
 * count becomes the activating stage's visits), anything else is refused with what to do. Never guesses.
 */
export function loadUpdateState(path: string): UpdateState | undefined {
  let raw: Record<string, unknown> | undefined;
  try {
    raw = readJson<Record<string, unknown>>(path);
  } catch (err) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `${path} cannot be read as update state (${(err as Error).message}): move it away to start without it (the jobs service sends the job again)`,
    );
  }
  if (raw === undefined) return undefined;
  if (raw === null || typeof raw !== 'object') {
    throw new FleetwaveError('E_CONFIG_INVALID', `${path} is not update state: move it away to start without it`);
  }
  let value: Record<string, unknown> = raw;
  if (raw.v === 1) {
    const { attempts, ...rest } = raw as { attempts?: number };
    value = { ...rest, v: 2, visits: typeof attempts === 'number' && attempts > 0 ? { activating: attempts } : {} };
  } else if (raw.v !== UPDATE_STATE_VERSION) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `${path} holds update state version ${JSON.stringify(raw.v)}; this agent reads versions 1 and ${UPDATE_STATE_VERSION}: run the agent that wrote it, or move the file away (the jobs service sends the job again)`,
    );
  }
  // undefined fields are dropped by JSON; a v1 file wrote null where v2 has none
  for (const k of ['executionNumber', 'versionNumber', 'artifactBaseUrl', 'report'] as const) {
    if (value[k] === null) delete value[k];
  }
  // parseWith freezes what it returns; the machine changes its state in place: a copy
  return structuredClone(parseWith(UpdateStateFile, value, `update state ${path}`)) as unknown as UpdateState;
}

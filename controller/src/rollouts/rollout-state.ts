import type { EventKind, JobStatus, RolloutPlan } from '@fleetwave/shared';
import type { TargetDevice } from './assignment.js';

/** The rollout's persisted state and the wave engine's inputs and outputs (a wire format: names never change). */
export type RolloutStatus =
  | 'running'
  | 'awaiting-approval'
  | 'paused'
  | 'completed'
  | 'aborted'
  | 'rolling-back'
  | 'rolled-back';
export type WaveStatus = 'pending' | 'running' | 'baking' | 'succeeded' | 'failed' | 'accepted';

export interface Member {
  device: string;
  wave: number;
  hardware: string;
  site: string;
  /** The version the device ran when it joined the rollout: what a rollback sends it back to. */
  fromVersion: string | null;
}

/** One metric of the health comparison of a wave: updated devices against devices not updated yet. */
export interface HealthCohorts {
  metric: string;
  worse: 'higher' | 'lower';
  updated: number[];
  notUpdated: number[];
}

export interface HealthVerdict {
  metric: string;
  worse: 'higher' | 'lower';
  updated: number;
  notUpdated: number;
  medianUpdated: number | null;
  medianNotUpdated: number | null;
  /** One-sided Mann-Whitney U p-value (null: a cohort was below the minimum sample, not compared). */
  p: number | null;
  degraded: boolean;
}

export interface WaveState {
  status: WaveStatus;
  /** The health comparison made before the wave was declared a success (plans with a health gate). */
  health?: HealthVerdict[];
  startedAt?: number;
  bakeUntil?: number;
  finishedAt?: number;
  reason?: string;
}

/** The persisted state of one rollout (a wire format: field and status names never change). */
export interface RolloutState {
  v: 1;
  id: string;
  plan: RolloutPlan;
  status: RolloutStatus;
  reason?: string;
  createdAt: number;
  wave: number;
  waves: WaveState[];
  members: Member[];
  approvals: number[];
  rate: { windowStart: number; sent: number };
  rollbackStartedAt?: number;
  /** Devices the rollback cannot send back (no earlier release known), reported once. */
  rollbackSkipped?: string[];
  /** Devices put in the last wave because of their predicted failure risk. */
  deferred?: { device: string; risk: number }[];
}

/** The latest execution of a device's update (or rollback) job, as the jobs service keeps it. */
export interface ExecutionView {
  status: JobStatus;
  executionNumber: number;
  startedAt?: number;
  /** When it reached its terminal status. */
  finishedAt?: number;
  reason?: string;
}

export interface TickInput {
  now: number;
  /** Devices matching the selector now (dynamic targeting). */
  targets: readonly TargetDevice[];
  updates: ReadonlyMap<string, ExecutionView>;
  rollbacks: ReadonlyMap<string, ExecutionView>;
  /** Whether a maintenance window of the plan is open now (no windows: always). */
  windowOpen: boolean;
  /** Versions of the plan's release that are registered (a rollback needs the previous one). */
  knownVersions: ReadonlySet<string>;
  /** The jobs backend paces, retries and times out executions itself (AWS IoT Jobs): queue whole waves at once. */
  selfPaced?: boolean;
  /** The health comparison of the current wave (given when the plan has a health gate and the bake is over). */
  health?: HealthCohorts[];
}

export type Action =
  | {
      type: 'queue';
      purpose: 'update' | 'rollback';
      device: string;
      executionNumber: number;
      version: string;
      wave: number;
    }
  | { type: 'cancel'; purpose: 'update' | 'rollback'; device: string; reason: string }
  | { type: 'time-out'; device: string; reason: string }
  | { type: 'event'; kind: EventKind; details: Record<string, unknown> };

export type Command = 'pause' | 'resume' | 'approve' | 'abort' | 'rollback';

const TERMINAL: readonly RolloutStatus[] = ['completed', 'aborted', 'rolled-back'];
export const isTerminal = (s: RolloutStatus) => TERMINAL.includes(s);

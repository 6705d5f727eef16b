import { anyWindowAt, FleetwaveError, type RolloutPlan, UpdateJobDocument } from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { JobsService } from '../jobs/jobs-service.js';
import type { JobsStore } from '../jobs/jobs-store.js';
import type { DeviceRecord, FleetStore } from '../store/fleet-store.js';
import type { TargetDevice } from './assignment.js';
import {
  type DocumentFor,
  type ExecutionChange,
  type ExecutionViews,
  LocalRolloutJobs,
  type RolloutJobs,
} from './jobs-port.js';
import type { ReleaseService } from './releases.js';
import type { RolloutEvent, RolloutStore } from './rollout-store.js';
import {
  type Action,
  type Command,
  command,
  isTerminal,
  type RolloutState,
  startRollout,
  type TickInput,
  tick,
} from './wave-engine.js';

export interface RolloutServiceOptions {
  store: RolloutStore;
  fleet: FleetStore;
  jobs: JobsService;
  jobsStore: JobsStore;
  releases: ReleaseService;
  now: () => number;
  log: Logger;
  audit: (actor: string, action: string, target: string, outcome: 'ok' | 'denied' | 'error', details?: string) => void;
  /** Where devices download artifacts the controller stores (`…/api/v1/releases/`). */
  artifactBaseUrl: () => string;
  onEvent?: (e: RolloutEvent) => void;
  /** Where executions run: the controller's jobs service (default) or another backend (AWS IoT Jobs). */
  backend?: RolloutJobs;
  /** How often a remote backend is polled for executions (default 5 s). */
  pollMs?: number;
  /** Devices' health over time (the health gate) and their predicted failure risk (deferring risky devices). */
  health?: HealthSource;
}

export interface HealthSource {
  /** A device's value of a metric over [from, to]: the rate per hour for counters, the mean otherwise. */
  statistic(device: string, metric: string, from: number, to: number): number | undefined;
  /** The device's latest predicted failure risk (0–1), if it has one. */
  risk(device: string): number | undefined;
}

/** Whether a device matches a plan's selector (groups are the device's `group` tag). */
export function matches(d: DeviceRecord, plan: RolloutPlan): boolean {
  const sel = plan.selector;
  if (d.revokedAt !== null) return false;
  if (sel.tags && Object.entries(sel.tags).some(([k, v]) => d.tags[k] !== v)) return false;
  if (sel.groups && !sel.groups.includes(d.tags.group ?? '')) return false;
  if (sel.hardware && !sel.hardware.includes(d.hardware ?? '')) return false;
  if (sel.currentVersion !== undefined && d.releases[plan.release.name] !== sel.currentVersion) return false;
  return true;
}

/**
 * The thin adapter around the wave engine: it builds the engine's input from the registry and the jobs store,
 * persists the new state and its events in one transaction, then acts (queue, cancel, time out) through the jobs
 * service. Every action is idempotent, so a crash between persisting and acting is repaired by the next tick.
 */
export class RolloutService {
  private timer: NodeJS.Timeout | undefined;
  private kickTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private ticking = false;
  readonly backend: RolloutJobs;

  constructor(private readonly o: RolloutServiceOptions) {
    this.backend = o.backend ?? new LocalRolloutJobs(o.jobs, o.jobsStore);
  }

  targets(plan: RolloutPlan): TargetDevice[] {
    return this.o.fleet
      .listDevices()
      .filter((d) => matches(d, plan))
      .map((d) => {
        const risk = this.o.health?.risk(d.id);
        return {
          id: d.id,
          hardware: d.hardware ?? 'unknown',
          site: d.tags.site ?? '',
          version: d.releases[plan.release.name] ?? null,
          ...(risk !== undefined && { risk }),
        };
      });
  }

  /** Starts a rollout from a validated plan. */
  apply(plan: RolloutPlan, actor: string): RolloutState {
    this.o.releases.get(plan.release.name, plan.release.version);
    const problems = this.backend.problems(plan);
    if (problems.length) {
      throw new FleetwaveError(
        'E_ROLLOUT_BACKEND',
        `the plan cannot run on ${this.backend.name} jobs: ${problems.join('; ')}`,
      );
    }
    if (this.o.store.activeByName(plan.name)) {
      throw new FleetwaveError('E_ROLLOUT_EXISTS', `rollout ${plan.name} is active: abort it or wait until it ends`);
    }
    const id = `${plan.name.slice(0, 52)}-${this.o.store.countByName(plan.name) + 1}`;
    const targets = this.targets(plan).filter((t) => t.version !== plan.release.version);
    const state = startRollout(id, plan, targets, this.o.now());
    this.emit(id, 'rollout.started', { release: plan.release, devices: state.members.length, actor });
    for (const d of state.deferred ?? []) {
      this.emit(id, 'rollout.device-deferred', { device: d.device, risk: d.risk, wave: plan.waves.length - 1 });
    }
    const written = this.o.store.transaction(() => {
      this.o.store.saveRollout(state, true, this.o.now());
      return this.writeEvents();
    });
    for (const e of written) this.o.onEvent?.(e);
    this.o.audit(actor, 'rollout.apply', id, 'ok', `${plan.release.name}@${plan.release.version}`);
    this.tickOne(id);
    return this.o.store.getRollout(id)!;
  }

  /** What a plan would do now: the waves with their devices (nothing is created). */
  preview(plan: RolloutPlan): RolloutState {
    this.o.releases.get(plan.release.name, plan.release.version);
    const targets = this.targets(plan).filter((t) => t.version !== plan.release.version);
    return startRollout(`${plan.name}-preview`, plan, targets, this.o.now());
  }

  command(id: string, cmd: Command, actor: string, wave?: number): RolloutState {
    const state = this.o.store.getRollout(id);
    if (!state) throw new FleetwaveError('E_NOT_FOUND', `no rollout ${id}: fleetwave rollout status lists them`);
    const views = this.backend.views(state);
    if (!views) {
      throw new FleetwaveError('E_ROLLOUT_STATE', `the executions of ${id} are not read back yet: try again shortly`);
    }
    let result: ReturnType<typeof command>;
    try {
      result = command(state, cmd, this.input(state, views), wave);
    } catch (err) {
      this.o.audit(actor, `rollout.${cmd}`, id, 'denied', (err as Error).message);
      throw new FleetwaveError('E_ROLLOUT_STATE', (err as Error).message);
    }
    this.commit(result.state, result.actions, { actor });
    this.o.audit(actor, `rollout.${cmd}`, id, 'ok', wave === undefined ? '' : `wave ${wave}`);
    return this.o.store.getRollout(id)!;
  }

  get(id: string): RolloutState | undefined {
    return this.o.store.getRollout(id);
  }

  list(): RolloutState[] {
    return this.o.store.listRollouts();
  }

  /** Per-device executions of a rollout's update and rollback jobs, as far as they are known (empty while a remote
   *  backend has not been read back yet). */
  executions(state: RolloutState): ExecutionViews {
    return this.backend.views(state) ?? { updates: new Map(), rollbacks: new Map() };
  }

  private input(state: RolloutState, views: ExecutionViews): TickInput {
    const now = this.o.now();
    return {
      now,
      targets: isTerminal(state.status) ? [] : this.targets(state.plan),
      ...views,
      windowOpen: anyWindowAt(state.plan.maintenanceWindows, now).open,
      knownVersions: this.o.store.versionsOf(state.plan.release.name),
      ...(this.backend.selfPaced && { selfPaced: true }),
      ...this.healthInput(state, views, now),
    };
  }

  /**
   * The current wave's health cohorts, when the plan has a health gate and the wave's bake is over: its updated
   * devices (each from when its update succeeded) against the rollout's devices not updated yet (from when the wave
   * started), up to now.
   */
  private healthInput(state: RolloutState, views: ExecutionViews, now: number): Pick<TickInput, 'health'> {
    const gate = state.plan.healthGate;
    const wave = state.waves[state.wave];
    if (!gate || wave?.status !== 'baking' || now < (wave.bakeUntil ?? 0) || !this.o.health) return {};
    const source = this.o.health;
    const updated = state.members.filter(
      (m) => m.wave <= state.wave && views.updates.get(m.device)?.status === 'SUCCEEDED',
    );
    const notUpdated = state.members.filter((m) => {
      const e = views.updates.get(m.device);
      return m.wave > state.wave && (!e || e.status === 'QUEUED');
    });
    const collect = (list: typeof updated, from: (device: string) => number, metric: string) =>
      list.flatMap((m) => {
        const v = source.statistic(m.device, metric, from(m.device), now);
        return v === undefined ? [] : [v];
      });
    const waveStart = wave.startedAt ?? now;
    return {
      health: gate.metrics.map((g) => {
        const { metric, worse } = typeof g === 'string' ? { metric: g, worse: 'higher' as const } : g;
        return {
          metric,
          worse,
          updated: collect(updated, (d) => views.updates.get(d)?.finishedAt ?? waveStart, metric),
          notUpdated: collect(notUpdated, () => waveStart, metric),
        };
      }),
    };
  }

  /** Evaluates every active rollout once (the scheduler's whole job). */
  tickAll(): void {
    if (this.ticking) return;
    this.ticking = true;
    try {
      this.o.jobs.tick(this.o.now());
      this.flushEvents();
      for (const r of this.o.store.listRollouts({ active: true })) this.tickOne(r.id);
    } finally {
      this.ticking = false;
    }
  }

  private tickOne(id: string): void {
    const state = this.o.store.getRollout(id);
    const views = state && this.backend.views(state);
    if (!state || !views) return;
    const input = this.input(state, views);
    const { state: next, actions } = tick(state, input);
    // level-triggered clean-up: a rollout that ended cancels what is still queued of its update job
    if (isTerminal(next.status) || next.status === 'rolling-back') {
      for (const [device, e] of input.updates) {
        if (e.status === 'QUEUED' && !actions.some((a) => a.type === 'cancel' && a.device === device)) {
          actions.push({ type: 'cancel', purpose: 'update', device, reason: `rollout ${next.status}` });
        }
      }
    }
    if (actions.length === 0 && JSON.stringify(next) === JSON.stringify(state)) {
      if (isTerminal(next.status)) this.finished(next);
      return;
    }
    this.commit(next, actions);
  }

  /**
   * Persist, then act — in one transaction: the new state, its events and the executions it queues or ends commit
   * together (one fsync), and the devices hear of it only after the commit (the jobs service publishes then).
   */
  private commit(state: RolloutState, actions: Action[], extra: Record<string, unknown> = {}): void {
    for (const a of actions) if (a.type === 'event') this.emit(state.id, a.kind, { ...a.details, ...extra });
    const written = this.o.jobs.batch(() => {
      this.o.store.saveRollout(state, true, this.o.now());
      const events = this.writeEvents();
      let done = true;
      for (const a of actions) {
        try {
          this.act(state, a);
        } catch (err) {
          this.o.log.error({ err, rollout: state.id, action: a }, 'rollout action failed; the next tick retries');
          done = false;
          break;
        }
      }
      if (done && isTerminal(state.status)) this.finished(state);
      return events;
    });
    for (const e of written) this.o.onEvent?.(e);
  }

  private pendingEvents: Omit<RolloutEvent, 'id'>[] = [];

  /** Writes the buffered events (inside the caller's transaction); returns them with their ids. */
  private writeEvents(): RolloutEvent[] {
    const events = this.pendingEvents;
    this.pendingEvents = [];
    return events.map((e) => this.o.store.addEvent(e));
  }

  private flushEvents(): void {
    if (this.pendingEvents.length === 0) return;
    const written = this.o.store.transaction(() => this.writeEvents());
    for (const e of written) this.o.onEvent?.(e);
  }

  /** A rollout that ended is no longer active, and its backend lets go of what it held for it. */
  private finished(state: RolloutState): void {
    this.o.store.saveRollout(state, false, this.o.now());
    this.backend.finish(state);
  }

  private readonly documentFor: DocumentFor = (state, a) => {
    const manifest = this.o.releases.get(state.plan.release.name, a.version);
    return UpdateJobDocument.parse({
      operation: 'fleetwave.update',
      purpose: a.purpose,
      manifest,
      artifactBaseUrl: `${this.o.artifactBaseUrl()}${manifest.name}/${manifest.version}/artifacts/`,
      rollout: state.id,
      wave: a.wave,
    });
  };

  private act(state: RolloutState, a: Action): void {
    if (a.type !== 'event') this.backend.act(state, a, this.documentFor);
  }

  /** Buffers an event; it is written with the next commit (or flush) and announced after it. */
  private emit(rollout: string, kind: string, details: Record<string, unknown>): void {
    this.pendingEvents.push({ ts: this.o.now(), rollout, kind, details });
  }

  /** A device's execution changed: record it as an event and evaluate the rollout soon. */
  executionChanged(e: ExecutionChange): void {
    if (!e.rollout) return;
    this.emit(e.rollout, 'execution.changed', {
      device: e.thing,
      job: e.jobId,
      status: e.status,
      executionNumber: e.executionNumber,
      ...(e.statusDetails && { details: e.statusDetails }),
    });
    this.kick();
  }

  /** Evaluates soon (coalescing bursts of changes). */
  kick(): void {
    if (this.kickTimer || !this.timer) return;
    this.kickTimer = setTimeout(() => {
      this.kickTimer = undefined;
      this.tickAll();
    }, 100);
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => this.tickAll(), intervalMs);
    this.tickAll();
    if (this.backend.refresh) {
      const poll = () => {
        this.pollTimer = setTimeout(async () => {
          await this.poll();
          if (this.pollTimer) poll();
        }, this.o.pollMs ?? 5000);
      };
      poll();
    }
  }

  /** Brings a remote backend's executions up to date and evaluates (errors are logged; the next poll retries). */
  async poll(): Promise<void> {
    try {
      if (await this.backend.refresh?.(this.o.store.listRollouts({ active: true }))) this.tickAll();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, backend: this.backend.name }, 'polling executions failed');
    }
  }

  stop(): void {
    this.flushEvents();
    if (this.timer) clearInterval(this.timer);
    if (this.kickTimer) clearTimeout(this.kickTimer);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    this.timer = undefined;
    this.kickTimer = undefined;
  }
}

import {
  anyWindowAt,
  type EventKind,
  FleetwaveError,
  isFleetwaveError,
  type RolloutPlan,
  UpdateJobDocument,
} from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { AuditFn } from '../auth/authenticator.js';
import type { JobsService } from '../jobs/jobs-service.js';
import type { ControllerDatabase } from '../store/database.js';
import { Mutex } from '../store/database.js';
import type { DeviceRecord } from '../store/fleet-store.js';
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
  db: Pick<ControllerDatabase, 'rollouts' | 'fleet' | 'jobs' | 'transaction'>;
  jobs: JobsService;
  releases: ReleaseService;
  now: () => number;
  log: Logger;
  audit: AuditFn;
  /** Where devices download artifacts the controller stores (`…/api/v1/releases/`). */
  artifactBaseUrl: () => string;
  onEvent?: (e: RolloutEvent) => void;
  /** Where executions run: the controller's jobs service (default) or another backend (AWS IoT Jobs). */
  backend?: RolloutJobs;
  /** How often a remote backend is polled for executions (default 5 s). */
  pollMs?: number;
  /** Devices' health over time (the health gate) and their predicted failure risk (deferring risky devices). */
  health?: HealthSource;
  /**
   * Checks, inside the unit of work, that this replica still leads (issue "several replicas"): every write the wave
   * engine's ticks make passes it first, so a former leader's tick is refused. Absent: one controller, always leading.
   */
  fence?: () => Promise<void>;
}

export interface HealthSource {
  /** A device's value of a metric over [from, to]: the rate per hour for counters, the mean otherwise. */
  statistic(device: string, metric: string, from: number, to: number): Promise<number | undefined>;
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
  private followTimer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /**
   * Operations on rollouts run one at a time (apply, commands, ticks): each reads a rollout's state and writes the
   * next one, which must not interleave with another writing the same rollout.
   */
  private readonly serial = new Mutex();
  readonly backend: RolloutJobs;

  constructor(private readonly o: RolloutServiceOptions) {
    this.backend = o.backend ?? new LocalRolloutJobs(o.jobs, o.db.jobs);
  }

  private get store(): RolloutStore {
    return this.o.db.rollouts;
  }

  async targets(plan: RolloutPlan): Promise<TargetDevice[]> {
    return (await this.o.db.fleet.listDevices())
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
  apply(plan: RolloutPlan, actor: string): Promise<RolloutState> {
    return this.serial.run(() => this.applyNow(plan, actor));
  }

  private async applyNow(plan: RolloutPlan, actor: string): Promise<RolloutState> {
    await this.o.releases.get(plan.release.name, plan.release.version);
    const problems = this.backend.problems(plan);
    if (problems.length) {
      throw new FleetwaveError(
        'E_ROLLOUT_BACKEND',
        `the plan cannot run on ${this.backend.name} jobs: ${problems.join('; ')}`,
      );
    }
    if (await this.store.activeByName(plan.name)) {
      throw new FleetwaveError('E_ROLLOUT_EXISTS', `rollout ${plan.name} is active: abort it or wait until it ends`);
    }
    const id = `${plan.name.slice(0, 52)}-${(await this.store.countByName(plan.name)) + 1}`;
    const targets = (await this.targets(plan)).filter((t) => t.version !== plan.release.version);
    const state = startRollout(id, plan, targets, this.o.now());
    const events = [
      this.event(id, 'rollout.started', { release: plan.release, devices: state.members.length, actor }),
      ...(state.deferred ?? []).map((d) =>
        this.event(id, 'rollout.device-deferred', { device: d.device, risk: d.risk, wave: plan.waves.length - 1 }),
      ),
    ];
    // created only if no other replica created a rollout of that id meanwhile (E_CONFLICT: try again)
    await this.writing(events, (write) =>
      this.o.db.transaction(async () => {
        await this.store.saveRollout(state, true, this.o.now(), null);
        return write();
      }),
    );
    await this.o.audit(actor, 'rollout.apply', id, 'ok', `${plan.release.name}@${plan.release.version}`);
    // the leader evaluates it now; on another replica the leader's next tick does
    if (this.leading) await this.tickOne(id);
    return (await this.store.getRollout(id))!;
  }

  /** What a plan would do now: the waves with their devices (nothing is created). */
  async preview(plan: RolloutPlan): Promise<RolloutState> {
    await this.o.releases.get(plan.release.name, plan.release.version);
    const targets = (await this.targets(plan)).filter((t) => t.version !== plan.release.version);
    return startRollout(`${plan.name}-preview`, plan, targets, this.o.now());
  }

  command(id: string, cmd: Command, actor: string, wave?: number): Promise<RolloutState> {
    return this.serial.run(() => this.commandNow(id, cmd, actor, wave));
  }

  private async commandNow(id: string, cmd: Command, actor: string, wave?: number, attempt = 1): Promise<RolloutState> {
    const state = await this.store.getRollout(id);
    if (!state) throw new FleetwaveError('E_NOT_FOUND', `no rollout ${id}: fleetwave rollout status lists them`);
    const views = await this.backend.views(state);
    if (!views) {
      throw new FleetwaveError('E_ROLLOUT_STATE', `the executions of ${id} are not read back yet: try again shortly`);
    }
    let result: ReturnType<typeof command>;
    try {
      result = command(state, cmd, await this.input(state, views), wave);
    } catch (err) {
      await this.o.audit(actor, `rollout.${cmd}`, id, 'denied', (err as Error).message);
      throw new FleetwaveError('E_ROLLOUT_STATE', (err as Error).message);
    }
    try {
      // any replica takes commands: the state is replaced only if no one (the leader's tick) changed it meanwhile
      await this.commit(result.state, result.actions, { previous: state, extra: { actor } });
    } catch (err) {
      if (isFleetwaveError(err, 'E_CONFLICT') && attempt < 5) return this.commandNow(id, cmd, actor, wave, attempt + 1);
      throw err;
    }
    await this.o.audit(actor, `rollout.${cmd}`, id, 'ok', wave === undefined ? '' : `wave ${wave}`);
    return (await this.store.getRollout(id))!;
  }

  get(id: string): Promise<RolloutState | undefined> {
    return this.store.getRollout(id);
  }

  list(): Promise<RolloutState[]> {
    return this.store.listRollouts();
  }

  /** Per-device executions of a rollout's update and rollback jobs, as far as they are known (empty while a remote
   *  backend has not been read back yet). */
  async executions(state: RolloutState): Promise<ExecutionViews> {
    return (await this.backend.views(state)) ?? { updates: new Map(), rollbacks: new Map() };
  }

  private async input(state: RolloutState, views: ExecutionViews): Promise<TickInput> {
    const now = this.o.now();
    return {
      now,
      targets: isTerminal(state.status) ? [] : await this.targets(state.plan),
      ...views,
      windowOpen: anyWindowAt(state.plan.maintenanceWindows, now).open,
      knownVersions: await this.store.versionsOf(state.plan.release.name),
      ...(this.backend.selfPaced && { selfPaced: true }),
      ...(await this.healthInput(state, views, now)),
    };
  }

  /**
   * The current wave's health cohorts, when the plan has a health gate and the wave's bake is over: its updated
   * devices (each from when its update succeeded) against the rollout's devices not updated yet (from when the wave
   * started), up to now.
   */
  private async healthInput(
    state: RolloutState,
    views: ExecutionViews,
    now: number,
  ): Promise<Pick<TickInput, 'health'>> {
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
    const collect = async (list: typeof updated, from: (device: string) => number, metric: string) => {
      const out: number[] = [];
      for (const m of list) {
        const v = await source.statistic(m.device, metric, from(m.device), now);
        if (v !== undefined) out.push(v);
      }
      return out;
    };
    const waveStart = wave.startedAt ?? now;
    const health = [];
    for (const g of gate.metrics) {
      const { metric, worse } = typeof g === 'string' ? { metric: g, worse: 'higher' as const } : g;
      health.push({
        metric,
        worse,
        updated: await collect(updated, (d) => views.updates.get(d)?.finishedAt ?? waveStart, metric),
        notUpdated: await collect(notUpdated, () => waveStart, metric),
      });
    }
    return { health };
  }

  /**
   * Evaluates every active rollout once (the scheduler's whole job); a call while one runs joins it. Errors (the
   * database gone for a moment) are logged and the next tick tries again: every action is idempotent.
   */
  tickAll(): Promise<void> {
    this.ticking ??= this.serial
      .run(async () => {
        // a replica that lost the lead (paused past its lease, say) stops here, before it reads or acts
        if (this.o.fence) {
          try {
            await this.o.db.transaction(this.o.fence);
          } catch (err) {
            if (!isFleetwaveError(err, 'E_NOT_LEADER')) throw err;
            this.o.log.warn({ err: err.message }, 'not evaluating rollouts: this replica does not lead');
            return;
          }
        }
        await this.o.jobs.tick(this.o.now(), this.o.fence);
        await this.flushEvents();
        for (const r of await this.store.listRollouts({ active: true })) await this.tickOne(r.id);
      })
      .catch((err) => this.o.log.error({ err }, 'rollout evaluation failed; the next tick retries'))
      .finally(() => {
        this.ticking = undefined;
      });
    return this.ticking;
  }

  private async tickOne(id: string): Promise<void> {
    const state = await this.store.getRollout(id);
    const views = state && (await this.backend.views(state));
    if (!state || !views) return;
    const input = await this.input(state, views);
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
      if (isTerminal(next.status)) {
        await this.o.db.transaction(async () => {
          await this.o.fence?.();
          await this.finished(next);
        });
      }
      return;
    }
    try {
      await this.commit(next, actions, { previous: state, fenced: true });
    } catch (err) {
      // a command (on any replica) changed the rollout meanwhile: the next tick evaluates what it left
      if (isFleetwaveError(err, 'E_CONFLICT')) this.o.log.debug({ rollout: id }, 'rollout changed during a tick');
      else throw err;
    }
  }

  /**
   * Persist, then act — in one transaction: the new state, its events and the executions it queues or ends commit
   * together (one fsync), and the devices hear of it only after the commit (the jobs service publishes then).
   */
  private async commit(
    state: RolloutState,
    actions: Action[],
    o: { previous: RolloutState; fenced?: boolean; extra?: Record<string, unknown> },
  ): Promise<void> {
    const own = actions.flatMap((a) =>
      a.type === 'event' ? [this.event(state.id, a.kind, { ...a.details, ...o.extra })] : [],
    );
    await this.writing(own, (write) =>
      this.o.jobs.batch(async () => {
        if (o.fenced) await this.o.fence?.();
        await this.store.saveRollout(state, true, this.o.now(), o.previous);
        const events = await write();
        // the devices the actions touch, held and read at once
        await this.o.jobs.prepare(actions.flatMap((a) => (a.type === 'event' ? [] : [a.device])));
        let done = true;
        for (const a of actions) {
          try {
            // an action refuses before it writes (a release not registered, say); a failed write fails the commit
            await this.act(state, a);
          } catch (err) {
            this.o.log.error({ err, rollout: state.id, action: a }, 'rollout action failed; the next tick retries');
            done = false;
            break;
          }
        }
        if (done && isTerminal(state.status)) await this.finished(state);
        return events;
      }),
    );
  }

  /** Events of device changes waiting for the next write (a commit or a flush). */
  private pendingEvents: Omit<RolloutEvent, 'id'>[] = [];

  private event(rollout: string, kind: EventKind, details: Record<string, unknown>): Omit<RolloutEvent, 'id'> {
    return { ts: this.o.now(), rollout, kind, details };
  }

  /**
   * Runs a unit of work that writes events: the buffered ones and its own, with `write()` inside it. Announced once it
   * committed; if it fails, the buffered events are kept for the next write (its own are the caller's to redo).
   */
  private async writing(
    own: Omit<RolloutEvent, 'id'>[],
    unit: (write: () => Promise<RolloutEvent[]>) => Promise<RolloutEvent[]>,
  ): Promise<void> {
    const buffered = this.pendingEvents;
    this.pendingEvents = [];
    let written: RolloutEvent[];
    try {
      written = await unit(async () => {
        const out: RolloutEvent[] = [];
        for (const e of [...buffered, ...own]) out.push(await this.store.addEvent(e));
        return out;
      });
    } catch (err) {
      this.pendingEvents = [...buffered, ...this.pendingEvents];
      throw err;
    }
    for (const e of written) this.o.onEvent?.(e);
  }

  private async flushEvents(): Promise<void> {
    if (this.pendingEvents.length === 0) return;
    await this.writing([], (write) => this.o.db.transaction(write));
  }

  /** A rollout that ended is no longer active, and its backend lets go of what it held for it. */
  private async finished(state: RolloutState): Promise<void> {
    await this.store.saveRollout(state, false, this.o.now());
    this.backend.finish(state);
  }

  private readonly documentFor: DocumentFor = async (state, a) => {
    const manifest = await this.o.releases.get(state.plan.release.name, a.version);
    return UpdateJobDocument.parse({
      operation: 'fleetwave.update',
      purpose: a.purpose,
      manifest,
      artifactBaseUrl: `${this.o.artifactBaseUrl()}${manifest.name}/${manifest.version}/artifacts/`,
      rollout: state.id,
      wave: a.wave,
    });
  };

  private async act(state: RolloutState, a: Action): Promise<void> {
    if (a.type !== 'event') await this.backend.act(state, a, this.documentFor);
  }

  /** Buffers an event; it is written with the next commit (or flush) and announced after it. */
  private emit(rollout: string, kind: EventKind, details: Record<string, unknown>): void {
    this.pendingEvents.push(this.event(rollout, kind, details));
  }

  /** Whether this replica runs the wave engine (start() was called, not follow()). */
  get leading(): boolean {
    return this.timer !== undefined;
  }

  /**
   * On a replica that does not lead: no ticks, but the events of the device changes it handles are written every
   * half second (the leader evaluates them at its next tick).
   */
  follow(): void {
    this.followTimer ??= setInterval(() => {
      void this.serial
        .run(() => this.flushEvents())
        .catch((err) => this.o.log.warn({ err: (err as Error).message }, 'rollout events not written yet'));
    }, 500);
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
      void this.tickAll();
    }, 100);
  }

  start(intervalMs = 1000): void {
    if (this.followTimer) clearInterval(this.followTimer);
    this.followTimer = undefined;
    this.timer = setInterval(() => void this.tickAll(), intervalMs);
    void this.tickAll();
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
      if (await this.backend.refresh?.(await this.store.listRollouts({ active: true }))) await this.tickAll();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, backend: this.backend.name }, 'polling executions failed');
    }
  }

  /** Stops evaluating; resolves once the evaluation in flight ended and the buffered events are written. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.kickTimer) clearTimeout(this.kickTimer);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.followTimer) clearInterval(this.followTimer);
    this.pollTimer = undefined;
    this.timer = undefined;
    this.kickTimer = undefined;
    this.followTimer = undefined;
    await this.ticking;
    await this.serial
      .run(() => this.flushEvents())
      .catch((err) => this.o.log.warn({ err: (err as Error).message }, 'rollout events not written at stop'));
  }
}

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '@fleetwave/shared';
import {
  anyWindowAt,
  isFleetwaveError,
  type JobExecution,
  parseWith,
  type TrustedKey,
  UpdateJobDocument,
} from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { Installer } from './installers/types.js';
import { decodeJobsMessage } from './jobs-inbound.js';
import { context, runStage, type StageDeps } from './stages.js';
import {
  ACTIVE_STAGES,
  type ExecutionRef,
  loadUpdateState,
  loopReason,
  newUpdateState,
  nextStage,
  readJson,
  rejectedState,
  removeDurable,
  reportOf,
  type Stage,
  type StageEvent,
  TERMINAL_STAGES,
  transitions,
  UNCOUNTED_STAGES,
  type UpdateState,
  writeDurable,
} from './state.js';

export interface InstalledRecord {
  /** name → version running now */
  current: Record<string, string>;
  /** name → the version before it (a rollback may go back to exactly this one) */
  previous: Record<string, string>;
}

export interface UpdateManagerOptions {
  config: AgentConfig['updates'];
  dataDir: string;
  device: string;
  trusted: readonly TrustedKey[];
  installers: Partial<Record<string, Installer>>;
  /** QoS 1 publish through the uplink; false when disconnected. */
  send: (topic: string, payload: string) => boolean;
  connected: () => boolean;
  now: () => number;
  log: Logger;
  /** Headers for artifact downloads from the controller (the device's own credentials). */
  downloadHeaders: Record<string, string>;
  /** The installed releases changed (re-announce presence). */
  onInstalled?: () => void;
  /** Every persisted stage change (the CLI prints it as a JSON line). */
  onStage?: (s: { jobId: string; stage: Stage; code?: string }) => void;
}

/**
 * The device side of the jobs protocol and the update state machine. The state is written before each step and
 * the job's last status is kept until the jobs service acknowledged it, so a restart at any instant resumes or rolls
 * back and re-sends what the cloud has not confirmed (invariant 5). On every (re)connection it asks for pending work.
 */
export class UpdateManager {
  private readonly dir: string;
  private readonly statePath: string;
  private readonly installedPath: string;
  private state: UpdateState | undefined;
  private running = false;
  private stopped = false;
  private reportSeq = 0;
  /** The clientToken of the status sent last. */
  private sentToken: string | undefined;
  /** The service ended the execution before activation: the run loop drops the update. */
  private cancelRequested = false;

  constructor(private readonly o: UpdateManagerOptions) {
    this.dir = join(o.dataDir, 'updates');
    mkdirSync(join(this.dir, 'downloads'), { recursive: true });
    this.statePath = join(this.dir, 'state.json');
    this.installedPath = join(this.dir, 'installed.json');
    // the version is checked: an unknown one is refused with what to do (E_CONFIG_INVALID), never guessed
    this.state = loadUpdateState(this.statePath);
  }

  private get base(): string {
    return `${this.o.config.jobsRoot}/${this.o.device}/jobs`;
  }

  subscriptions(): string[] {
    return [`${this.base}/#`];
  }

  installed(): InstalledRecord {
    return readJson<InstalledRecord>(this.installedPath) ?? { current: {}, previous: {} };
  }

  status(): { jobId: string; stage: Stage; code?: string; reason?: string } | null {
    const s = this.state;
    return s
      ? { jobId: s.jobId, stage: s.stage, ...(s.code && { code: s.code }), ...(s.reason && { reason: s.reason }) }
      : null;
  }

  /**
   * Resumes an update a restart interrupted. A stage the new version may run in asks the installer where the device
   * came back (an event of the table); any other stage starts again, which counts as a visit (the crash-loop guard).
   */
  start(): void {
    const s = this.state;
    if (!s) return;
    this.o.log.info({ jobId: s.jobId, stage: s.stage, visits: s.visits }, 'resuming update after restart');
    if (TERMINAL_STAGES.includes(s.stage)) return;
    try {
      if (ACTIVE_STAGES.includes(s.stage)) this.resumeActive(s);
      else this.persist({ visit: true, report: true }); // the stage starts again: counted, and said upstream
    } catch (err) {
      this.resumeLater(err); // not persisted (a full disk): nothing was done
      return;
    }
    void this.run();
  }

  /**
   * A step whose state could not be written was not taken. In 30 s the update resumes from the state on disk, which is
   * where it was, as after a restart (start(): counted, and probed where the new version may run).
   */
  private resumeLater(err: unknown): void {
    this.o.log.warn(
      { jobId: this.state?.jobId, stage: this.state?.stage, err: (err as Error).message },
      'update state could not be written; the update resumes from the state on disk in 30 s',
    );
    setTimeout(() => {
      if (this.stopped) return;
      try {
        this.state = loadUpdateState(this.statePath);
        this.start();
      } catch (e) {
        this.o.log.error({ err: (e as Error).message }, 'update state cannot be read; updates stay stopped');
      }
    }, 30_000).unref();
  }

  stop(): void {
    this.stopped = true;
  }

  /** Subscriptions acknowledged: re-send the unacknowledged status, or ask for the next job. */
  onSubscribed(): void {
    if (this.state?.report) this.sendReport();
    else if (!this.state) this.startNext();
  }

  private publish(op: string, body: object): void {
    this.o.send(`${this.base}/${op}`, JSON.stringify(body));
  }

  private startNext(): void {
    this.publish('start-next', {
      stepTimeoutInMinutes: this.o.config.stepTimeoutMinutes,
      statusDetails: { stage: 'verifying' },
    });
  }

  /** Jobs messages that did not pass the shared schemas (refused, counted, logged; nothing changed). */
  refusedMessages = 0;
  private readonly refusalsLogged = new Set<string>();

  /** A jobs message from the uplink. A fault handling it (a state file that cannot be written) is logged, never fatal. */
  onMessage(topic: string, payload: Buffer): void {
    try {
      this.handleMessage(topic, payload);
    } catch (err) {
      this.o.log.warn(
        { topic, err: (err as Error).message },
        'jobs message could not be handled; the service sends it again',
      );
    }
  }

  private handleMessage(topic: string, payload: Buffer): void {
    const m = decodeJobsMessage(this.o.config.jobsRoot, this.o.device, topic, payload);
    switch (m.kind) {
      case 'refused':
        this.refuse(topic, m.reason, m.jobId);
        return;
      case 'notify-next':
        if (!this.state && m.execution) this.startNext();
        return;
      case 'start-next':
        if (m.reply === 'rejected')
          this.o.log.warn({ code: m.rejection.code, message: m.rejection.message }, 'start-next rejected');
        else if (!this.state && m.execution) this.begin(m.execution);
        return;
      case 'update':
        if (this.state?.jobId === m.jobId) this.onUpdateAnswer(m.reply, m.answer);
        return;
      default:
        return;
    }
  }

  /**
   * A jobs message that did not pass changes nothing. When it was the answer to start-next and its job id is valid,
   * that job is REJECTED with the reason (the service must not wait for a job this agent cannot read).
   */
  private refuse(topic: string, reason: string, jobId?: string): void {
    this.refusedMessages++;
    const key = `${topic.slice(this.base.length + 1).replace(/^[^/]+\/(get|update)/, '{jobId}/$1')} ${reason.slice(0, 60)}`;
    if (!this.refusalsLogged.has(key) && this.refusalsLogged.size < 100) {
      this.refusalsLogged.add(key);
      this.o.log.warn({ topic, reason, refused: this.refusedMessages }, 'jobs message refused');
    }
    if (jobId && !this.state) this.rejectUnreadable(jobId, `the execution cannot be read: ${reason}`);
  }

  /** A job this agent cannot do is rejected with a reason, never left IN_PROGRESS. */
  private reject(e: ExecutionRef, reason: string): void {
    this.state = rejectedState(e, reason, this.o.now());
    this.persist({ report: true });
  }

  private rejectUnreadable(jobId: string, reason: string): void {
    this.reject({ jobId, executionNumber: undefined, versionNumber: undefined }, reason);
  }

  /** A new execution: validate its document, then run the machine (or reject it at once). */
  private begin(e: JobExecution): void {
    let doc: UpdateJobDocument;
    try {
      doc = parseWith(UpdateJobDocument, e.jobDocument ?? {}, 'job document') as UpdateJobDocument;
    } catch (err) {
      this.reject(e, `not a Fleetwave update job: ${(err as Error).message}`);
      return;
    }
    this.state = newUpdateState(e, doc, this.installed().current[doc.manifest.name] ?? null, this.o.now());
    this.persist({ visit: true, report: true });
    void this.run();
  }

  /**
   * The one writer of the state file (persist, then act): the state, with the status for the cloud when `report`
   * (sent after the write), and one more visit of the current stage when `visit` (a stage starts: the crash-loop
   * guard counts these).
   */
  private persist(o: { visit?: boolean; report?: boolean; progress?: Record<string, string> } = {}): void {
    const s = this.state!;
    if (o.visit && !UNCOUNTED_STAGES.includes(s.stage)) s.visits[s.stage] = (s.visits[s.stage] ?? 0) + 1;
    if (o.report) {
      s.report = reportOf(s);
      if (o.progress) Object.assign(s.report.statusDetails, o.progress);
    }
    s.updatedAt = this.o.now();
    writeDurable(this.statePath, JSON.stringify(s));
    if (o.report) {
      this.o.onStage?.({ jobId: s.jobId, stage: s.stage, ...(s.code && { code: s.code }) });
      this.sendReport();
    }
  }

  /** Every stage change: an event through the transition table, persisted (a visit of the new stage) and reported. */
  private transition(event: StageEvent, why?: { code: string; reason: string }, report = true): void {
    const s = this.state!;
    s.stage = nextStage(s.stage, event);
    if (why) Object.assign(s, why);
    this.persist({ visit: true, report });
  }

  /** How often a stage may be started before it counts as a loop. */
  private limitOf(stage: Stage): number {
    return ACTIVE_STAGES.includes(stage) ? this.o.config.maxAttempts : this.o.config.maxStageStarts;
  }

  private sendReport(): void {
    const s = this.state;
    if (!s?.report) return;
    const terminal = s.report.status !== 'IN_PROGRESS';
    this.sentToken = `${s.stage}-${++this.reportSeq}`.slice(0, 64);
    this.publish(`${s.jobId}/update`, {
      status: s.report.status,
      statusDetails: s.report.statusDetails,
      ...(s.versionNumber !== undefined && { expectedVersion: s.versionNumber }),
      executionNumber: s.executionNumber,
      includeJobExecutionState: true,
      ...(!terminal && { stepTimeoutInMinutes: this.o.config.stepTimeoutMinutes }),
      clientToken: this.sentToken,
    });
  }

  /**
   * The answer to a status update. Only the answer to the status sent last counts (matched by clientToken): an
   * acknowledged older status must not clear a newer one still unacknowledged.
   */
  private onUpdateAnswer(
    kind: 'accepted' | 'rejected',
    body: { clientToken?: string; code?: string; message?: string; executionState?: { versionNumber: number } },
  ): void {
    const s = this.state!;
    const exec = body.executionState;
    if (exec?.versionNumber !== undefined && (s.versionNumber === undefined || exec.versionNumber > s.versionNumber)) {
      s.versionNumber = exec.versionNumber;
    }
    if (body.clientToken !== this.sentToken) return;
    if (kind === 'accepted') {
      if (TERMINAL_STAGES.includes(s.stage)) {
        this.finish();
        return;
      }
      s.report = undefined;
      this.persist();
      return;
    }
    const code = body.code;
    if (code === 'VersionMismatch') {
      this.sendReport();
      return;
    }
    // the service ended the execution (canceled, timed out, removed): nothing more to report for it
    this.o.log.warn({ jobId: s.jobId, code, message: body.message }, 'the jobs service refused the status');
    if (TERMINAL_STAGES.includes(s.stage)) {
      this.finish();
      return;
    }
    s.report = undefined;
    this.persist();
    if (transitions.some((t) => t.from === s.stage && t.on === 'cancel')) this.cancelRequested = true;
  }

  /** The terminal status is acknowledged: forget the update and ask for the next job. */
  private finish(): void {
    const s = this.state!;
    writeDurable(join(this.dir, 'last.json'), JSON.stringify({ ...s, report: undefined }));
    removeDurable(this.statePath);
    this.state = undefined;
    this.cancelRequested = false;
    this.startNext();
  }

  /**
   * Runs the machine. A step whose state cannot be persisted (a full disk) is not taken: the run stops, says so, and
   * starts again later from the state on disk, which is where it was.
   */
  private async run(): Promise<void> {
    try {
      await this.runSteps();
    } catch (err) {
      this.resumeLater(err);
    }
  }

  private async runSteps(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.stopped && this.state && !TERMINAL_STAGES.includes(this.state.stage)) {
        const st = this.state;
        if (this.cancelRequested) {
          // the service already ended the execution: nothing to report, the update is dropped
          this.transition('cancel', { code: 'E_UPDATE_BUSY', reason: 'the jobs service ended this execution' }, false);
          this.finish();
          return;
        }
        const visits = st.visits[st.stage] ?? 0;
        if (visits > this.limitOf(st.stage)) {
          this.transition('loop', { code: 'E_UPDATE_ATTEMPTS', reason: loopReason(st.stage, visits) });
          continue;
        }
        let event: StageEvent = 'ok';
        try {
          event = await runStage(st, this.stageDeps());
        } catch (err) {
          event = 'fail';
          st.code = isFleetwaveError(err) ? err.code : 'E_INSTALL';
          st.reason = (err as Error).message;
          this.o.log.warn({ jobId: st.jobId, stage: st.stage, code: st.code, reason: st.reason }, 'update step failed');
        }
        if (this.stopped) return;
        this.transition(event);
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * A restart while the new version may have been active. Installers that restart the device to activate say where it
   * came back (probe); with the others the device is activated again. Each is an event of the table; the visit it
   * counts is what bounds a reboot loop.
   */
  private resumeActive(s: UpdateState): void {
    const installer = this.o.installers[s.manifest.install.type];
    const probe = installer?.probe?.(context(s, this.stageDeps()));
    if (probe === 'active') this.transition('restart-active');
    else if (probe === 'fell-back') {
      this.transition('restart-fell-back', {
        code: 'E_HEALTH_CHECK',
        reason:
          'restarted without the new version: it fell back (the boot loader, or the service manager ran the previous agent)',
      });
    } else this.transition('restart-inactive');
  }

  private stageDeps(): StageDeps {
    return {
      ...this.o,
      dir: this.dir,
      installed: () => this.installed(),
      saveInstalled: (r) => {
        writeDurable(this.installedPath, JSON.stringify(r));
        this.o.onInstalled?.();
      },
      persist: () => this.persist(),
      progress: (p) => this.persist({ report: true, progress: p }),
      activationAllowed: () => {
        const a = this.o.config.activation;
        if (a.mode === 'immediate') return true;
        if (a.mode === 'lock-file') return !existsSync(a.path);
        return anyWindowAt([a], this.o.now()).open;
      },
    };
  }
}

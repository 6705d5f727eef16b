import { existsSync, readFileSync } from 'node:fs';
import { type EventKind, FleetwaveError } from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { HealthSource } from '../rollouts/rollout-service.js';
import type { FleetStore } from '../store/fleet-store.js';
import { riskDefaults, scoreSeries, trainRisk } from './evaluate.js';
import {
  type FailureLabel,
  type HealthSample,
  type HealthStore,
  healthSeries,
  type StoredScore,
} from './health-store.js';
import { COUNTER_METRICS, type Series } from './history.js';
import { type ModelFile, Predictor, parseModel } from './model.js';

const DAY = 86_400_000;

export interface PredictionServiceOptions {
  health: HealthStore;
  fleet: FleetStore;
  /** The database's units of work (scores of one run commit together). */
  transaction: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Checks, inside the unit of work, that this replica leads (absent: always). */
  fence?: () => Promise<void>;
  /**
   * The model is kept in the database (every controller on it uses the same one). A model file named here (`--model`)
   * is imported at start, replacing the kept one; `defaultModelFile` (`<data-dir>/model.json`, where controllers
   * before the database kept it) is imported only when the database holds none.
   */
  modelFile?: string;
  defaultModelFile?: string;
  /** Alert (webhook event `device.at-risk`) when a device's risk reaches this (default 0.8). */
  threshold?: number;
  /** A device silent this long without a label is a candidate failure an operator confirms (default 3 days). */
  silentAfterMs?: number;
  now: () => number;
  log: Logger;
  onEvent: (kind: EventKind, details: Record<string, unknown>) => Promise<void>;
}

/**
 * The controller's side of failure prediction: scores every device from its health history with the loaded model,
 * keeps the scores, raises and clears at-risk alerts (with hysteresis), learns a new model from the fleet's own
 * labelled history, and answers the wave engine's questions about health and risk.
 */
export class PredictionService implements HealthSource {
  private predictor: Predictor | undefined;
  private scores = new Map<string, StoredScore>();
  private timer: NodeJS.Timeout | undefined;
  readonly threshold: number;

  constructor(private readonly o: PredictionServiceOptions) {
    this.threshold = o.threshold ?? 0.8;
  }

  /** Reads the kept model and scores, importing a model file as configured (call once, before anything else). */
  async init(): Promise<void> {
    this.scores = await this.o.health.scores();
    const file =
      this.o.modelFile ??
      (this.o.defaultModelFile && existsSync(this.o.defaultModelFile) && !(await this.o.health.model())
        ? this.o.defaultModelFile
        : undefined);
    if (file) {
      let json: string;
      try {
        json = readFileSync(file, 'utf8');
      } catch (err) {
        throw new FleetwaveError('E_CONFIG_READ', `cannot read the model ${file}: ${(err as Error).message}`);
      }
      await this.install(json, file);
      return;
    }
    const kept = await this.o.health.model();
    if (kept)
      this.load(
        parseModel(kept.json, `the model kept in the database (installed ${new Date(kept.installedAt).toISOString()})`),
        'the kept model',
      );
  }

  get model(): ModelFile | undefined {
    return this.predictor?.file;
  }

  private load(m: ModelFile, source: string): void {
    if (m.kind !== 'risk') {
      throw new FleetwaveError('E_CONFIG_INVALID', `${source} is a remaining-life model; scoring needs a risk model`);
    }
    let next: Predictor;
    try {
      next = new Predictor(m);
    } catch (err) {
      throw new FleetwaveError('E_CONFIG_INVALID', `the model does not load: ${(err as Error).message}`);
    }
    // the old model is let go only once the new one loaded: a bad model changes nothing
    this.predictor?.dispose();
    this.predictor = next;
  }

  /** Uses a model (validated) from now on, and keeps it in the database as the controller's model. */
  async install(json: string, source: string): Promise<ModelFile> {
    const m = parseModel(json, source);
    this.load(m, source);
    await this.o.health.putModel(JSON.stringify(m), this.o.now());
    return m;
  }

  risk(device: string): number | undefined {
    return this.scores.get(device)?.risk;
  }

  /** The device's newest health sample in the kept history (survives a controller restart). */
  latestHealth(device: string): Promise<HealthSample | undefined> {
    return this.o.health.latest(device);
  }

  score(device: string): StoredScore | undefined {
    return this.scores.get(device);
  }

  allScores(): StoredScore[] {
    return [...this.scores.values()].sort((a, b) => b.risk - a.risk);
  }

  async statistic(device: string, metric: string, from: number, to: number): Promise<number | undefined> {
    const s = await healthSeries(this.o.health, device, from, [metric]);
    const t = s.t.filter((x) => x <= to);
    const v = s.metrics[metric]!.slice(0, t.length);
    if (t.length === 0) return undefined;
    if (!COUNTER_METRICS.has(metric)) return v.reduce((a, b) => a + b, 0) / v.length;
    if (t.length < 2) return undefined;
    // events per hour (the series is unwrapped: a counter that started again from zero goes on counting)
    return (v[v.length - 1]! - v[0]!) / Math.max(1, (t[t.length - 1]! - t[0]!) / 3_600_000);
  }

  /** Scores every registered device now; raises `device.at-risk` and `device.risk-cleared` events. */
  async scoreAll(): Promise<StoredScore[]> {
    const p = this.predictor;
    if (!p) return [];
    const now = this.o.now();
    const longest = p.file.spec.windows[p.file.spec.windows.length - 1]!;
    const from = now - Math.max(2 * longest, 14 * DAY);
    const series: Series[] = [];
    for (const d of await this.o.fleet.listDevices()) {
      if (d.revokedAt !== null) continue;
      const s = await healthSeries(this.o.health, d.id, from, p.file.spec.metrics);
      if (s.t.length >= 2) series.push(s);
    }
    const out: StoredScore[] = [];
    const events: [EventKind, Record<string, unknown>][] = [];
    await this.o.transaction(async () => {
      await this.o.fence?.(); // scoring and its alerts run once in the cluster, on the leader
      for (const sc of scoreSeries(p, series)) {
        const before = this.scores.get(sc.device);
        let alerted = before?.alerted ?? false;
        if (!alerted && sc.risk >= this.threshold) {
          alerted = true;
          events.push(['device.at-risk', { device: sc.device, risk: sc.risk, mode: sc.mode, signals: sc.signals }]);
        } else if (alerted && sc.risk < this.threshold - 0.15) {
          alerted = false;
          events.push(['device.risk-cleared', { device: sc.device, risk: sc.risk }]);
        }
        const stored = { ...sc, alerted };
        await this.o.health.putScore(stored);
        out.push(stored);
      }
    });
    // the kept scores change, and the alerts go out, only once they are committed
    for (const sc of out) this.scores.set(sc.device, sc);
    for (const [kind, details] of events) await this.o.onEvent(kind, details);
    return out;
  }

  /** A device's health samples since `from` (for charts). */
  history(device: string, from: number): Promise<HealthSample[]> {
    return this.o.health.samples(device, from);
  }

  labels(): Promise<FailureLabel[]> {
    return this.o.health.labels();
  }

  /** Adds a health sample as if the device had reported it (imports, the demo's simulated history). */
  record(device: string, ts: number, metrics: Record<string, number>): Promise<void> {
    return this.o.health.add(device, ts, metrics);
  }

  /** Adds many samples in one transaction (imports, the demo). */
  recordMany(samples: readonly { device: string; ts: number; metrics: Record<string, number> }[]): Promise<void> {
    return this.o.transaction(async () => {
      for (const s of samples) await this.o.health.add(s.device, s.ts, s.metrics);
    });
  }

  setLabel(l: FailureLabel): Promise<void> {
    return this.o.health.setLabel(l);
  }

  removeLabel(device: string): Promise<boolean> {
    return this.o.health.removeLabel(device);
  }

  /** Devices silent beyond the threshold without a label: candidate failures for an operator to confirm. */
  async candidates(): Promise<{ device: string; lastSeen: number | null }[]> {
    const labelled = new Set((await this.labels()).map((l) => l.device));
    const cutoff = this.o.now() - (this.o.silentAfterMs ?? 3 * DAY);
    return (await this.o.fleet.listDevices())
      .filter((d) => d.revokedAt === null && !labelled.has(d.id) && d.lastSeen !== null && d.lastSeen < cutoff)
      .map((d) => ({ device: d.id, lastSeen: d.lastSeen }));
  }

  /**
   * Trains a risk model on the fleet's own history: every device's retained health history, the devices labelled
   * failed or replaced as failures (at their label's time, with its mode).
   */
  async learn(opts: { horizonMs?: number; epochs?: number } = {}): Promise<ModelFile> {
    const failures = (await this.labels())
      .filter((l) => l.status !== 'candidate')
      .map((l) => ({ device: l.device, time: l.ts, mode: l.mode }));
    if (failures.length < 2) {
      throw new FleetwaveError(
        'E_CONFIG_INVALID',
        `the fleet has ${failures.length} labelled failure(s): mark failed or replaced devices first (fleetwave device mark-failed)`,
      );
    }
    const metrics = [
      ...COUNTER_METRICS,
      'cpuTempC',
      'load1',
      'memUsedPct',
      'diskUsedPct',
      'flashWearPct',
      'wifiSignalDbm',
    ];
    const series: Series[] = [];
    for (const d of await this.o.fleet.listDevices()) series.push(await healthSeries(this.o.health, d.id, 0, metrics));
    const model = await trainRisk({ metrics, series: series.filter((s) => s.t.length >= 2), cycles: false }, failures, {
      ...riskDefaults(metrics, opts.epochs),
      ...(opts.horizonMs !== undefined && { horizon: opts.horizonMs }),
    });
    await this.install(JSON.stringify(model), 'the fleet history');
    await this.scoreAll();
    return model;
  }

  start(intervalMs = 600_000): void {
    this.pause();
    this.timer = setInterval(() => {
      this.scoreAll().catch((err) => this.o.log.warn({ err: (err as Error).message }, 'scoring failed'));
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops scoring on a timer (another replica leads); the model stays loaded. */
  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  stop(): void {
    this.pause();
    this.predictor?.dispose();
  }
}

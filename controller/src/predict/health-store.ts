import type { HealthReport } from '@fleetwave/shared';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import type { Sync } from '../store/database.js';
import { decodeColumn, Metrics } from '../store/documents.js';
import type { RiskScore } from './evaluate.js';
import { COUNTER_METRICS, type Series, unwrapCounter } from './history.js';

/** A health report as flat numeric metrics (booleans as 0/1, nested fields dotted): what history keeps. */
export function healthMetrics(r: HealthReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) {
    if (typeof v === 'number' && k !== 'ts' && k !== 'v') out[k] = v;
    else if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) if (typeof v2 === 'boolean') out[`${k}.${k2}`] = v2 ? 1 : 0;
    }
  }
  return out;
}

export interface FailureLabel {
  device: string;
  ts: number;
  mode: string;
  /** failed or replaced (confirmed labels the model learns from), or candidate (silent; an operator confirms). */
  status: 'failed' | 'replaced' | 'candidate';
  actor: string;
  note: string | null;
}

export interface StoredScore extends RiskScore {
  alerted: boolean;
}

export interface HealthSample {
  ts: number;
  metrics: Record<string, number>;
}

/**
 * The fleet's health history (with retention), failure labels and latest risk scores: an async port with a SQLite and
 * a PostgreSQL adapter (contract suite `health-store.contract.ts`).
 */
export interface HealthStore {
  /** Keeps one sample per (device, ts): a second one at the same time replaces it. */
  add(device: string, ts: number, metrics: Record<string, number>): Promise<void>;
  /** A device's samples from `from` on, oldest first (the last `limit`). */
  samples(device: string, from: number, limit?: number): Promise<HealthSample[]>;
  /** A device's newest kept sample, if any. */
  latest(device: string): Promise<HealthSample | undefined>;
  prune(before: number): Promise<number>;
  /** One label per device (a newer one replaces it). */
  setLabel(l: FailureLabel): Promise<void>;
  removeLabel(device: string): Promise<boolean>;
  /** Oldest first. */
  labels(): Promise<FailureLabel[]>;
  putScore(s: StoredScore): Promise<void>;
  scores(): Promise<Map<string, StoredScore>>;
  /** The controller's risk model (its JSON, as `fleetwave predict train` writes it), if one was installed. */
  model(): Promise<{ json: string; installedAt: number } | undefined>;
  putModel(json: string, installedAt: number): Promise<void>;
}

/**
 * A device's history since `from` as a series over the given metrics (missing values carried forward, else 0;
 * counters unwrapped across resets, from `from` on).
 */
export async function healthSeries(
  store: HealthStore,
  device: string,
  from: number,
  metrics: readonly string[],
): Promise<Series> {
  const rows = await store.samples(device, from, Number.MAX_SAFE_INTEGER);
  const s: Series = { device, t: [], metrics: Object.fromEntries(metrics.map((m) => [m, []])) };
  const last: Record<string, number> = {};
  for (const r of rows) {
    s.t.push(r.ts);
    for (const k of metrics) {
      const v = r.metrics[k] ?? last[k] ?? 0;
      last[k] = v;
      s.metrics[k]!.push(v);
    }
  }
  for (const k of metrics) if (COUNTER_METRICS.has(k)) s.metrics[k] = unwrapCounter(s.metrics[k]!);
  return s;
}

const sampleWhere = (device: string, ts: number | string) => `the health sample of ${device} at ${ts}`;
export const decodeSample = (device: string, r: { ts: number | string; metrics: string }): HealthSample => ({
  ts: Number(r.ts),
  metrics: decodeColumn(Metrics, r.metrics, sampleWhere(device, r.ts)),
});
/** A risk score row as either database returns it (`alerted` is 0/1 in SQLite, a boolean in PostgreSQL). */
export interface ScoreRow {
  device: string;
  ts: number;
  risk: number;
  mode: string | null;
  signals: string;
  alerted: number | boolean;
}

export const toScore = (r: ScoreRow): StoredScore => ({
  device: r.device,
  at: r.ts,
  risk: r.risk,
  mode: r.mode,
  signals: decodeSignals(r.device, r.signals),
  alerted: r.alerted === 1 || r.alerted === true,
});

const decodeSignals = (device: string, text: string) => decodeColumn(Signals, text, `the risk signals of ${device}`);
const Signals = z.array(z.object({ metric: z.string(), contribution: z.number() }));

/** The health port on the controller's SQLite database, synchronously (served async by `SqliteDatabase`). */
export class SqliteHealth implements Sync<HealthStore> {
  private readonly s;

  constructor(db: Database.Database) {
    this.s = {
      add: db.prepare('INSERT OR REPLACE INTO health_samples (device, ts, metrics) VALUES (?, ?, ?)'),
      since: db.prepare('SELECT ts, metrics FROM health_samples WHERE device = ? AND ts >= ? ORDER BY ts'),
      latest: db.prepare('SELECT ts, metrics FROM health_samples WHERE device = ? ORDER BY ts DESC LIMIT 1'),
      prune: db.prepare('DELETE FROM health_samples WHERE ts < ?'),
      label: db.prepare(
        'INSERT OR REPLACE INTO device_failures (device, ts, mode, status, actor, note) VALUES (@device, @ts, @mode, @status, @actor, @note)',
      ),
      labels: db.prepare('SELECT * FROM device_failures ORDER BY ts, device'),
      unlabel: db.prepare('DELETE FROM device_failures WHERE device = ?'),
      putScore: db.prepare(
        'INSERT OR REPLACE INTO risk_scores (device, ts, risk, mode, signals, alerted) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      scores: db.prepare('SELECT * FROM risk_scores'),
      model: db.prepare("SELECT model, installed_at FROM models WHERE name = 'risk'"),
      putModel: db.prepare(
        "INSERT INTO models (name, model, installed_at) VALUES ('risk', ?, ?) ON CONFLICT (name) DO UPDATE SET model = excluded.model, installed_at = excluded.installed_at",
      ),
    };
  }

  add(device: string, ts: number, metrics: Record<string, number>): void {
    this.s.add.run(device, ts, JSON.stringify(metrics));
  }

  /** A device's newest kept sample, if any. */
  latest(device: string): HealthSample | undefined {
    const r = this.s.latest.get(device) as { ts: number; metrics: string } | undefined;
    return r && decodeSample(device, r);
  }

  samples(device: string, from: number, limit = 5000): HealthSample[] {
    const rows = this.s.since.all(device, from) as { ts: number; metrics: string }[];
    return rows.slice(-limit).map((r) => decodeSample(device, r));
  }

  prune(before: number): number {
    return this.s.prune.run(before).changes;
  }

  setLabel(l: FailureLabel): void {
    this.s.label.run(l);
  }

  removeLabel(device: string): boolean {
    return this.s.unlabel.run(device).changes > 0;
  }

  labels(): FailureLabel[] {
    return this.s.labels.all() as FailureLabel[];
  }

  putScore(s: StoredScore): void {
    this.s.putScore.run(s.device, s.at, s.risk, s.mode, JSON.stringify(s.signals), s.alerted ? 1 : 0);
  }

  model(): { json: string; installedAt: number } | undefined {
    const r = this.s.model.get() as { model: string; installed_at: number } | undefined;
    return r && { json: r.model, installedAt: r.installed_at };
  }

  putModel(json: string, installedAt: number): void {
    this.s.putModel.run(json, installedAt);
  }

  scores(): Map<string, StoredScore> {
    return new Map((this.s.scores.all() as ScoreRow[]).map((r) => [r.device, toScore(r)]));
  }
}

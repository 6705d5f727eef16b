import type { HealthReport } from '@fleetwave/shared';
import type Database from 'better-sqlite3';
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

/** The fleet's health history (with retention), failure labels and latest risk scores, in the controller's SQLite. */
export class HealthStore {
  private readonly s;

  constructor(private readonly db: Database.Database) {
    this.s = {
      add: db.prepare('INSERT OR REPLACE INTO health_samples (device, ts, metrics) VALUES (?, ?, ?)'),
      since: db.prepare('SELECT ts, metrics FROM health_samples WHERE device = ? AND ts >= ? ORDER BY ts'),
      latest: db.prepare('SELECT ts, metrics FROM health_samples WHERE device = ? ORDER BY ts DESC LIMIT 1'),
      prune: db.prepare('DELETE FROM health_samples WHERE ts < ?'),
      label: db.prepare(
        'INSERT OR REPLACE INTO device_failures (device, ts, mode, status, actor, note) VALUES (@device, @ts, @mode, @status, @actor, @note)',
      ),
      labels: db.prepare('SELECT * FROM device_failures ORDER BY ts'),
      unlabel: db.prepare('DELETE FROM device_failures WHERE device = ?'),
      putScore: db.prepare(
        'INSERT OR REPLACE INTO risk_scores (device, ts, risk, mode, signals, alerted) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      scores: db.prepare('SELECT * FROM risk_scores'),
    };
  }

  add(device: string, ts: number, metrics: Record<string, number>): void {
    this.s.add.run(device, ts, JSON.stringify(metrics));
  }

  /**
   * A device's history since `from` as a series over the given metrics (missing values carried forward, else 0;
   * counters unwrapped across resets, from `from` on).
   */
  series(device: string, from: number, metrics: readonly string[]): Series {
    const rows = this.s.since.all(device, from) as { ts: number; metrics: string }[];
    const s: Series = { device, t: [], metrics: Object.fromEntries(metrics.map((m) => [m, []])) };
    const last: Record<string, number> = {};
    for (const r of rows) {
      const m = JSON.parse(r.metrics) as Record<string, number>;
      s.t.push(r.ts);
      for (const k of metrics) {
        const v = m[k] ?? last[k] ?? 0;
        last[k] = v;
        s.metrics[k]!.push(v);
      }
    }
    for (const k of metrics) if (COUNTER_METRICS.has(k)) s.metrics[k] = unwrapCounter(s.metrics[k]!);
    return s;
  }

  /** A device's newest kept sample, if any. */
  latest(device: string): { ts: number; metrics: Record<string, number> } | undefined {
    const r = this.s.latest.get(device) as { ts: number; metrics: string } | undefined;
    return r && { ts: r.ts, metrics: JSON.parse(r.metrics) };
  }

  samples(device: string, from: number, limit = 5000): { ts: number; metrics: Record<string, number> }[] {
    const rows = this.s.since.all(device, from) as { ts: number; metrics: string }[];
    return rows.slice(-limit).map((r) => ({ ts: r.ts, metrics: JSON.parse(r.metrics) }));
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

  scores(): Map<string, StoredScore> {
    const rows = this.s.scores.all() as {
      device: string;
      ts: number;
      risk: number;
      mode: string | null;
      signals: string;
      alerted: number;
    }[];
    return new Map(
      rows.map((r) => [
        r.device,
        {
          device: r.device,
          at: r.ts,
          risk: r.risk,
          mode: r.mode,
          signals: JSON.parse(r.signals),
          alerted: r.alerted === 1,
        },
      ]),
    );
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

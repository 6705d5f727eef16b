import {
  decodeSample,
  type FailureLabel,
  type HealthSample,
  type HealthStore,
  type ScoreRow,
  type StoredScore,
  toScore,
} from '../../predict/health-store.js';
import type { Query } from './query.js';

/** The health port on PostgreSQL. */
export class PgHealth implements HealthStore {
  constructor(private readonly q: Query) {}

  async add(device: string, ts: number, metrics: Record<string, number>): Promise<void> {
    await this.q(
      `INSERT INTO health_samples (device, ts, metrics) VALUES ($1, $2, $3)
       ON CONFLICT (device, ts) DO UPDATE SET metrics = excluded.metrics`,
      [device, ts, JSON.stringify(metrics)],
    );
  }

  async samples(device: string, from: number, limit = 5000): Promise<HealthSample[]> {
    const r = await this.q<{ ts: number; metrics: string }>(
      `SELECT ts, metrics FROM (SELECT ts, metrics FROM health_samples WHERE device = $1 AND ts >= $2
         ORDER BY ts DESC LIMIT $3) s ORDER BY ts`,
      [device, from, Math.min(limit, Number.MAX_SAFE_INTEGER)],
    );
    return r.rows.map((x) => decodeSample(device, x));
  }

  async latest(device: string): Promise<HealthSample | undefined> {
    const r = await this.q<{ ts: number; metrics: string }>(
      'SELECT ts, metrics FROM health_samples WHERE device = $1 ORDER BY ts DESC LIMIT 1',
      [device],
    );
    return r.rows[0] && decodeSample(device, r.rows[0]);
  }

  async prune(before: number): Promise<number> {
    return (await this.q('DELETE FROM health_samples WHERE ts < $1', [before])).rowCount ?? 0;
  }

  async setLabel(l: FailureLabel): Promise<void> {
    await this.q(
      `INSERT INTO device_failures (device, ts, mode, status, actor, note) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (device) DO UPDATE SET ts = excluded.ts, mode = excluded.mode, status = excluded.status,
         actor = excluded.actor, note = excluded.note`,
      [l.device, l.ts, l.mode, l.status, l.actor, l.note],
    );
  }

  async removeLabel(device: string): Promise<boolean> {
    return ((await this.q('DELETE FROM device_failures WHERE device = $1', [device])).rowCount ?? 0) > 0;
  }

  async labels(): Promise<FailureLabel[]> {
    return (await this.q<FailureLabel>('SELECT * FROM device_failures ORDER BY ts, device COLLATE "C"')).rows;
  }

  async putScore(s: StoredScore): Promise<void> {
    await this.q(
      `INSERT INTO risk_scores (device, ts, risk, mode, signals, alerted) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (device) DO UPDATE SET ts = excluded.ts, risk = excluded.risk, mode = excluded.mode,
         signals = excluded.signals, alerted = excluded.alerted`,
      [s.device, s.at, s.risk, s.mode, JSON.stringify(s.signals), s.alerted],
    );
  }

  async model(): Promise<{ json: string; installedAt: number } | undefined> {
    const r = await this.q<{ model: string; installed_at: number }>(
      "SELECT model, installed_at FROM models WHERE name = 'risk'",
    );
    return r.rows[0] && { json: r.rows[0].model, installedAt: r.rows[0].installed_at };
  }

  async putModel(json: string, installedAt: number): Promise<void> {
    await this.q(
      `INSERT INTO models (name, model, installed_at) VALUES ('risk', $1, $2)
       ON CONFLICT (name) DO UPDATE SET model = excluded.model, installed_at = excluded.installed_at`,
      [json, installedAt],
    );
  }

  async scores(): Promise<Map<string, StoredScore>> {
    const r = await this.q<ScoreRow>('SELECT * FROM risk_scores');
    return new Map(r.rows.map((x) => [x.device, toScore(x)]));
  }
}

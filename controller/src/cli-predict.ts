import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetwaveError, parseDurationMs } from '@fleetwave/shared';
import { backtestRisk, backtestRul, scoreSeries, trainRisk, trainRul } from './predict/evaluate.js';
import type { FeatureSpec } from './predict/features.js';
import { failuresCsv, type History, historyCsv, readFailures, readHistory } from './predict/history.js';
import { Predictor, parseModel } from './predict/model.js';
import { simulateFleet } from './predict/simulator.js';

export interface PredictFlags {
  history?: string | undefined;
  failures?: string | undefined;
  out?: string | undefined;
  model?: string | undefined;
  horizon?: string | undefined;
  step?: string | undefined;
  windows?: string | undefined;
  folds?: string | undefined;
  threshold?: string | undefined;
  rul?: boolean | undefined;
  'rul-cap'?: string | undefined;
  epochs?: string | undefined;
  devices?: string | undefined;
  days?: string | undefined;
  seed?: string | undefined;
  json?: boolean | undefined;
}

const DAY = 86_400_000;
const say = (line: string) => process.stderr.write(`${line}\n`);

export const PREDICT_USAGE = `fleetwave predict simulate --out <dir> [--devices 300] [--days 90] [--seed 1]
fleetwave predict train --history <csv> --failures <csv> --out <model.json> [--rul] [options]
fleetwave predict backtest --history <csv> --failures <csv> [--rul] [--folds 5] [--threshold 0.8[,…]] [options]
fleetwave predict score --model <model.json> --history <csv>
options: --horizon (7d; cycles for run-to-failure data: 30) --step (12h; 1) --windows (1d,3d,7d; 10,30)
         --rul-cap (125) --epochs (20 risk, 30 remaining life)`;

/** A time span in the history's unit: a duration (7d, 12h) for dated histories, a number for cycles. */
function span(value: string, cycles: boolean, flag: string): number {
  if (cycles) {
    if (!/^\d+(\.\d+)?$/.test(value)) {
      throw new FleetwaveError('E_CONFIG_INVALID', `${flag} "${value}": this history counts cycles, give a number`);
    }
    return Number(value);
  }
  try {
    return parseDurationMs(value);
  } catch {
    throw new FleetwaveError('E_CONFIG_INVALID', `${flag} "${value}" is not a duration like 7d or 12h`);
  }
}

function int(value: string | undefined, dflt: number, flag: string, min = 1): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new FleetwaveError('E_CONFIG_INVALID', `${flag} must be an integer ≥ ${min}`);
  return n;
}

function specOf(h: History, v: PredictFlags): FeatureSpec {
  const windows = (v.windows ?? (h.cycles ? '10,30' : '1d,3d,7d'))
    .split(',')
    .map((w) => span(w.trim(), h.cycles, '--windows'))
    .sort((a, b) => a - b);
  return { metrics: h.metrics, windows, unit: h.cycles ? 1 : DAY, withAge: h.cycles };
}

const fmtSpan = (n: number | null, cycles: boolean) =>
  n === null ? 'n/a' : cycles ? `${n.toFixed(1)} cycles` : `${(n / DAY).toFixed(1)} days`;

export async function runPredictCommand(sub: string | undefined, v: PredictFlags): Promise<number> {
  if (sub === 'simulate') {
    if (!v.out) throw new FleetwaveError('E_CONFIG_INVALID', `usage: ${PREDICT_USAGE.split('\n')[0]}`);
    const { history, failures } = simulateFleet({
      devices: int(v.devices, 300, '--devices'),
      days: int(v.days, 90, '--days', 10),
      seed: int(v.seed, 1, '--seed', 0),
    });
    mkdirSync(v.out, { recursive: true });
    writeFileSync(join(v.out, 'history.csv'), historyCsv(history));
    writeFileSync(join(v.out, 'failures.csv'), failuresCsv(failures));
    process.stdout.write(
      `${history.series.length} gateways, ${history.series.reduce((n, s) => n + s.t.length, 0)} hourly samples, ${failures.length} failures → ${v.out}/history.csv, ${v.out}/failures.csv\n`,
    );
    return 0;
  }
  if (sub !== 'train' && sub !== 'backtest' && sub !== 'score') {
    throw new FleetwaveError('E_CONFIG_INVALID', `usage:\n${PREDICT_USAGE}`);
  }
  if (!v.history) throw new FleetwaveError('E_CONFIG_INVALID', `fleetwave predict ${sub} needs --history <csv>`);
  const h = readHistory(v.history);
  if (sub === 'score') {
    if (!v.model) throw new FleetwaveError('E_CONFIG_INVALID', 'fleetwave predict score needs --model <model.json>');
    if (!existsSync(v.model)) throw new FleetwaveError('E_CONFIG_READ', `no model at ${v.model}`);
    const p = new Predictor(parseModel(readFileSync(v.model, 'utf8'), v.model));
    if (p.file.kind !== 'risk') throw new FleetwaveError('E_CONFIG_INVALID', `${v.model} is a remaining-life model`);
    const missing = p.file.spec.metrics.filter((m) => !h.metrics.includes(m));
    if (missing.length) {
      throw new FleetwaveError('E_CONFIG_INVALID', `${v.history} lacks metrics the model needs: ${missing.join(', ')}`);
    }
    const scores = scoreSeries(p, h.series).sort((a, b) => b.risk - a.risk);
    if (v.json) process.stdout.write(`${JSON.stringify(scores, null, 2)}\n`);
    else {
      for (const s of scores) {
        const signals = s.signals.map((x) => `${x.metric} +${x.contribution.toFixed(2)}`).join(', ');
        process.stdout.write(
          `${s.device.padEnd(20)} risk ${s.risk.toFixed(2)}  ${(s.mode ?? '').padEnd(14)} ${signals}\n`,
        );
      }
    }
    return 0;
  }
  if (!v.failures) throw new FleetwaveError('E_CONFIG_INVALID', `fleetwave predict ${sub} needs --failures <csv>`);
  const failures = readFailures(v.failures);
  const known = new Set(h.series.map((s) => s.device));
  const unknown = failures.filter((f) => !known.has(f.device)).map((f) => f.device);
  if (unknown.length) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `${v.failures} names devices without history: ${unknown.slice(0, 5).join(', ')}`,
    );
  }
  const spec = specOf(h, v);
  const progress = v.json ? undefined : say;
  if (v.rul) {
    const o = {
      spec,
      cap: int(v['rul-cap'], 125, '--rul-cap'),
      stride: 2,
      train: { epochs: int(v.epochs, 30, '--epochs') },
    };
    if (sub === 'train') return writeModel(await trainRul(h, failures, o), v);
    const r = await backtestRul(h, failures, {
      ...o,
      folds: int(v.folds, 5, '--folds', 2),
      perUnit: 5,
      maxRul: 150,
      seed: int(v.seed, 1, '--seed', 0),
      ...(progress && { progress }),
    });
    process.stdout.write(
      v.json
        ? `${JSON.stringify(r, null, 2)}\n`
        : `remaining life, ${r.folds}-fold cross-validation over ${r.devices} units, ${r.points} cut points: RMSE ${r.rmse.toFixed(2)} (against the true remaining life; ${r.rmseCapped.toFixed(2)} against it capped at ${r.cap})\n`,
    );
    return 0;
  }
  const o = {
    spec,
    horizon: span(v.horizon ?? (h.cycles ? '30' : '7d'), h.cycles, '--horizon'),
    step: span(v.step ?? (h.cycles ? '1' : '12h'), h.cycles, '--step'),
    train: { epochs: int(v.epochs, 20, '--epochs') },
  };
  if (sub === 'train') return writeModel(await trainRisk(h, failures, o), v);
  const thresholds = (v.threshold ?? '0.5,0.7,0.8,0.9').split(',').map((x) => {
    const n = Number(x);
    if (!(n > 0 && n < 1)) throw new FleetwaveError('E_CONFIG_INVALID', `--threshold ${x}: a probability in (0, 1)`);
    return n;
  });
  const rs = await backtestRisk(h, failures, {
    ...o,
    folds: int(v.folds, 5, '--folds', 2),
    thresholds,
    ...(progress && { progress }),
  });
  if (v.json) {
    process.stdout.write(`${JSON.stringify(rs, null, 2)}\n`);
    return 0;
  }
  const first = rs[0]!;
  process.stdout.write(
    `failure within ${fmtSpan(first.horizon, h.cycles)}: ${first.folds}-fold cross-validation over ${first.devices} devices, ${first.failures} failures\n` +
      'threshold  precision  recall  median lead time  alerts  right mode\n',
  );
  for (const r of rs) {
    process.stdout.write(
      `${r.threshold.toFixed(2).padStart(9)}  ${r.precision.toFixed(2).padStart(9)}  ${r.recall.toFixed(2).padStart(6)}  ${fmtSpan(r.medianLeadTime, h.cycles).padStart(16)}  ${String(r.alerts).padStart(6)}  ${r.modeAccuracy === null ? 'n/a' : r.modeAccuracy.toFixed(2)}\n`,
    );
  }
  return 0;
}

function writeModel(model: Awaited<ReturnType<typeof trainRisk>>, v: PredictFlags): number {
  if (!v.out) throw new FleetwaveError('E_CONFIG_INVALID', 'fleetwave predict train needs --out <model.json>');
  writeFileSync(v.out, JSON.stringify(model));
  process.stdout.write(
    `${model.kind === 'risk' ? `failure risk within the horizon (${model.classes!.slice(1).join(', ')})` : `remaining life (capped at ${model.rulCap})`} model trained on ${model.trainedOn.devices} devices, ${model.trainedOn.examples} examples → ${v.out}\n`,
  );
  return 0;
}

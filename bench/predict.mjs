// Failure-prediction benchmark (issue "Device health, failure prediction, and health-gated waves"):
// 1. the gateway fleet simulator's five failure modes: cross-validated precision, recall and median lead time of the
//    risk model at a 7-day horizon, per alert threshold (aim: ≥ 0.8 precision and recall, lead time ≥ 2 days);
// 2. NASA C-MAPSS FD001 (real run-to-failure data of 100 engines): cross-validated RMSE of remaining life, next to
//    the published results on its held-out part (MLP 37.6, SVR 21.0, CNN 18.5, deep LSTM 16.1; aim < 18).
// Sizes: BENCH_PREDICT_DEVICES (default 300), BENCH_PREDICT_DAYS (90), BENCH_PREDICT_FOLDS (5).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { backtestRisk, backtestRul, cmapssHistory, riskDefaults, simulateFleet } from '@fleetwave/controller';

const DAY = 86_400_000;
const DEVICES = Number(process.env.BENCH_PREDICT_DEVICES ?? 300);
const DAYS = Number(process.env.BENCH_PREDICT_DAYS ?? 90);
const FOLDS = Number(process.env.BENCH_PREDICT_FOLDS ?? 5);
const CMAPSS = fileURLToPath(new URL('../../shared/data/cmapss/train_FD001.txt', import.meta.url));

export async function benchPredict() {
  const tfjs = JSON.parse(
    readFileSync(new URL('../controller/node_modules/@tensorflow/tfjs-core/package.json', import.meta.url), 'utf8'),
  ).version;
  console.log(
    `\n# Failure prediction (TensorFlow.js ${tfjs}, CPU backend; MLP 64-32; ${FOLDS}-fold cross-validation over devices)`,
  );
  let t0 = Date.now();
  const { history, failures } = simulateFleet({ devices: DEVICES, days: DAYS, seed: 7 });
  const rs = await backtestRisk(history, failures, {
    ...riskDefaults(history.metrics, 20),
    folds: FOLDS,
    thresholds: [0.5, 0.7, 0.8, 0.9],
  });
  console.log(
    `simulated fleet: ${DEVICES} gateways × ${DAYS} days hourly, ${failures.length} failures (flash wear, thermal, power supply, memory leak, flaky link), scored every 12 h; ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  console.log('threshold  precision  recall  median lead time  alerts  right mode   (aim: ≥ 0.80, ≥ 0.80, ≥ 2 days)');
  for (const r of rs) {
    console.log(
      `${r.threshold.toFixed(2).padStart(9)}  ${r.precision.toFixed(2).padStart(9)}  ${r.recall.toFixed(2).padStart(6)}  ${`${(r.medianLeadTime / DAY).toFixed(1)} days`.padStart(16)}  ${String(r.alerts).padStart(6)}  ${r.modeAccuracy?.toFixed(2) ?? 'n/a'}`,
    );
  }
  if (!existsSync(CMAPSS)) {
    console.log(`C-MAPSS: skipped, ${CMAPSS} not found`);
    return;
  }
  t0 = Date.now();
  const c = cmapssHistory(readFileSync(CMAPSS, 'utf8'));
  const r = await backtestRul(c.history, c.failures, {
    spec: { metrics: c.history.metrics, windows: [10, 30], unit: 1, withAge: true },
    cap: 125,
    stride: 2,
    train: { epochs: 30 },
    folds: FOLDS,
    perUnit: 5,
    maxRul: 150,
    seed: 1,
  });
  console.log(
    `C-MAPSS FD001: ${r.devices} engines, ${r.folds}-fold cross-validation over engines, ${r.points} cut points (true remaining life 1–150 cycles); ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  console.log(
    `  RMSE ${r.rmse.toFixed(2)} against the true remaining life, ${r.rmseCapped.toFixed(2)} against it capped at ${r.cap}`,
  );
  console.log('  published on the held-out test part: MLP 37.6, SVR 21.0, CNN 18.5, deep LSTM 16.1 (aim < 18)');
  console.log(
    '  (not the same split: cross-validation over the training engines; the test part is not in this repository)',
  );
}

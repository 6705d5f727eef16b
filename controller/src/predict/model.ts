import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { FleetwaveError } from '@fleetwave/shared';
import * as tfl from '@tensorflow/tfjs-layers';
import { type FeatureSpec, featureNames } from './features.js';

// no banner about the native backend (we use the pure-JS CPU backend on purpose: nothing to download or build)
tf.enableProdMode();

export interface TrainOptions {
  epochs?: number;
  hidden?: number[];
  seed?: number;
  learningRate?: number;
  /** Weights per class index (risk models: failures are rare). */
  classWeight?: Record<number, number>;
}

/** A trained model, serialisable to JSON (weights included) and loadable without the training data. */
export interface ModelFile {
  v: 1;
  kind: 'risk' | 'rul';
  spec: FeatureSpec;
  /** Risk: probability of failing within this time; the classes are 'none' and the failure modes. */
  horizon?: number;
  classes?: string[];
  /** RUL: the remaining life is learned capped at this (the usual piecewise-linear target). */
  rulCap?: number;
  features: string[];
  norm: { mean: number[]; sd: number[] };
  hidden: number[];
  weights: { shape: number[]; values: number[] }[];
  trainedOn: { devices: number; examples: number; at: string };
}

function network(inputs: number, hidden: number[], outputs: number, softmax: boolean, seed: number): tfl.Sequential {
  const m = tfl.sequential();
  hidden.forEach((units, i) => {
    m.add(
      tfl.layers.dense({
        ...(i === 0 && { inputShape: [inputs] }),
        units,
        activation: 'relu',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + i }),
      }),
    );
  });
  m.add(
    tfl.layers.dense({
      units: outputs,
      ...(softmax && { activation: 'softmax' }),
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + hidden.length }),
    }),
  );
  return m;
}

function normaliser(x: number[][]): { mean: number[]; sd: number[] } {
  const d = x[0]?.length ?? 0;
  const mean = new Array<number>(d).fill(0);
  const sd = new Array<number>(d).fill(0);
  for (const row of x) for (let j = 0; j < d; j++) mean[j]! += row[j]! / x.length;
  for (const row of x) for (let j = 0; j < d; j++) sd[j]! += (row[j]! - mean[j]!) ** 2 / x.length;
  return { mean, sd: sd.map((v) => Math.sqrt(v) || 1) };
}

const normalise = (x: number[][], n: ModelFile['norm']) =>
  x.map((row) => row.map((v, j) => (v - n.mean[j]!) / n.sd[j]!));

/**
 * A small multi-layer perceptron (TensorFlow.js layers on its CPU backend): softmax over 'none' and the failure modes
 * for risk, one linear output for remaining life.
 */
export async function train(
  kind: 'risk' | 'rul',
  spec: FeatureSpec,
  x: number[][],
  y: number[],
  meta: { classes?: string[]; horizon?: number; rulCap?: number; devices: number },
  o: TrainOptions = {},
): Promise<ModelFile> {
  if (x.length === 0) throw new FleetwaveError('E_CONFIG_INVALID', 'no training examples: is the history empty?');
  const hidden = o.hidden ?? [64, 32];
  const norm = normaliser(x);
  const classes = meta.classes ?? [];
  const outputs = kind === 'risk' ? classes.length : 1;
  const m = network(x[0]!.length, hidden, outputs, kind === 'risk', o.seed ?? 1);
  m.compile({
    optimizer: tf.train.adam(o.learningRate ?? 0.003),
    loss: kind === 'risk' ? 'categoricalCrossentropy' : 'meanSquaredError',
  });
  // one seeded shuffle instead of tfjs' Math.random per epoch: the same data and seed train the same model
  const order = x.map((_, i) => i);
  let a = (o.seed ?? 1) >>> 0;
  for (let i = order.length - 1; i > 0; i--) {
    a = (Math.imul(a, 1_664_525) + 1_013_904_223) >>> 0;
    const j = a % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  x = order.map((i) => x[i]!);
  y = order.map((i) => y[i]!);
  const xs = tf.tensor2d(normalise(x, norm));
  const ys =
    kind === 'risk' ? tf.cast(tf.oneHot(tf.tensor1d(y, 'int32'), outputs), 'float32') : tf.tensor2d(y, [y.length, 1]);
  await m.fit(xs, ys, {
    epochs: o.epochs ?? 30,
    batchSize: 256,
    shuffle: false,
    verbose: 0,
    ...(o.classWeight && { classWeight: o.classWeight }),
  });
  const weights = m.getWeights().map((w) => ({ shape: w.shape, values: Array.from(w.dataSync()) }));
  tf.dispose([xs, ys]);
  m.dispose();
  return {
    v: 1,
    kind,
    spec,
    ...(meta.horizon !== undefined && { horizon: meta.horizon }),
    ...(kind === 'risk' && { classes }),
    ...(meta.rulCap !== undefined && { rulCap: meta.rulCap }),
    features: featureNames(spec),
    norm,
    hidden,
    weights,
    trainedOn: { devices: meta.devices, examples: x.length, at: new Date().toISOString() },
  };
}

/** A loaded model: predicts from feature rows. */
export class Predictor {
  private readonly net: tfl.Sequential;

  constructor(readonly file: ModelFile) {
    const outputs = file.kind === 'risk' ? file.classes!.length : 1;
    this.net = network(file.features.length, file.hidden, outputs, file.kind === 'risk', 1);
    this.net.setWeights(file.weights.map((w) => tf.tensor(w.values, w.shape)));
  }

  /** Risk: per row the class probabilities; RUL: per row one value (remaining life, ≥ 0, ≤ the cap). */
  predict(x: number[][]): number[][] {
    if (x.length === 0) return [];
    return tf.tidy(() => {
      const out = this.net.predict(tf.tensor2d(normalise(x, this.file.norm))) as tf.Tensor2D;
      const rows = out.arraySync();
      if (this.file.kind === 'rul') return rows.map(([v]) => [Math.max(0, Math.min(this.file.rulCap ?? Infinity, v!))]);
      return rows;
    });
  }

  dispose(): void {
    this.net.dispose();
  }
}

/** Reads and checks a model file. */
export function parseModel(json: string, file: string): ModelFile {
  let m: ModelFile;
  try {
    m = JSON.parse(json) as ModelFile;
  } catch (err) {
    throw new FleetwaveError('E_CONFIG_INVALID', `${file} is not JSON: ${(err as Error).message}`);
  }
  if (m?.v !== 1 || (m.kind !== 'risk' && m.kind !== 'rul') || !Array.isArray(m.weights) || !m.spec) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `${file} is not a Fleetwave model (fleetwave predict train writes one)`,
    );
  }
  return m;
}

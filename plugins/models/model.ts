/**
 * The online models' shared shape, after River's: `predictProbaMany` and `learnMany` on micro-batches
 * (TF.js pays per op call, so the runtime never calls a model per event), with `*One` twins derived
 * from them. A model is a set of parameters, a forward pass giving logits, and an optimiser; the
 * loss is binary cross-entropy plus the model's own penalty.
 */
import type * as TF from '@tensorflow/tfjs';
import { tf } from './backend.js';
import { decodeFloats, encodeFloats, Optimizer, ParamSet, type EncodedTensor, type OptimizerConfig, type OptimizerState } from './params.js';

import type { ModelConfig, ModelKind } from './settings.js';

export type { ModelConfig, ModelKind } from './settings.js';

/** Per-event inputs of the sequence model: the last `length` events of the session, left-padded. */
export interface SequenceBatch {
  length: number;
  /** Event type ids (0 = padding), n x length. */
  types: Int32Array;
  /** Hashed category ids (0 = padding), n x length. */
  categories: Int32Array;
  /** Numeric step features (time deltas, price), n x length x stepFeatures. */
  steps: Float32Array;
}

/**
 * A micro-batch: n samples of d (normalised) features, and for `gru` their event sequences. The
 * features come as `x` (n x d) or `x1` (n x (d + 1), each row with a 1 appended), or both: a model
 * takes the form it needs ({@link inputMatrix}, {@link inputsWithOnes}), copying only if it is absent.
 */
export interface Batch {
  n: number;
  d: number;
  x?: Float32Array;
  x1?: Float32Array;
  seq?: SequenceBatch;
}


export interface ModelState {
  /** A built-in {@link ModelKind}, or a custom model's plugin name (see custom.ts). */
  kind: string;
  inputs: number;
  params: Record<string, EncodedTensor>;
  optimizer: OptimizerState;
  /** A custom model's own state (its `state()`); absent for the built-in kinds. */
  custom?: unknown;
}

/**
 * A model as the model operators use it: an {@link OnlineModel} in this thread, or one a worker thread
 * holds (plugins/models/remote.ts, for backends that read results back only asynchronously).
 */
export interface Model {
  /** A built-in {@link ModelKind}, or a custom model's plugin name. */
  readonly kind: string;
  readonly inputs: number;
  /** The optimiser's knobs the operators turn (drift reactions, an edited learning rate). */
  readonly optimizer: { learningRate: number; reset(): void };
  predictProbaMany(batch: Batch): Float32Array;
  learnMany(batch: Batch, labels: Float32Array): void;
  predictRow?(rows: Float32Array, offset: number): number;
  state(): ModelState;
  load(state: ModelState): void;
  dispose(): void;
}

/** Base of every model: owns parameters and optimiser; subclasses give the forward pass. */
export abstract class OnlineModel implements Model {
  abstract readonly kind: ModelKind;
  protected readonly params = new ParamSet();
  optimizer!: Optimizer;

  constructor(
    readonly inputs: number,
    protected readonly config: ModelConfig,
    protected readonly optimizerConfig: OptimizerConfig,
  ) {}

  /** Initial output bias: the log-odds of the prior positive rate. */
  protected initialBias(): TF.Tensor1D {
    const p = Math.min(1 - 1e-6, Math.max(1e-6, this.config.prior));
    // Written from the host (not a fill kernel), so ParamSet can read it back on any backend: the
    // webgpu backend cannot read a kernel's output synchronously in Node (it needs an OffscreenCanvas).
    return tf.tensor1d([Math.log(p / (1 - p))], 'float32');
  }

  /** Subclasses call this after adding their parameters. */
  protected ready(): void {
    this.params.seal();
    this.optimizer = new Optimizer(this.optimizerConfig, this.params);
    const l2 = this.config.l2;
    if (l2 > 0) {
      this.penaltyValues = this.params.maskOf('w', l2);
      if (!this.optimizer.onHost) this.penalty = tf.tensor1d(this.penaltyValues, 'float32');
    }
  }

  /** l2 at every weight (parameters named `w...`), 0 at biases: the L2 gradient is `penalty * theta`. */
  private penalty: TF.Tensor1D | undefined;
  private penaltyValues: Float32Array | undefined;

  /**
   * One optimiser step from the gradient of the loss over the flat parameter vector (any shape holding
   * its values in order), plus L2 on every weight matrix. The L2 gradient (l2 * w) is added in closed
   * form rather than taped: fewer kernel calls per step, and TF.js pays per call at these sizes.
   */
  protected update(grad: TF.Tensor): void {
    // On the host where that computes the same (see Optimizer.onHost): one read back instead of the step's kernels.
    if (this.optimizer.onHost) this.optimizer.stepOnHost(grad.dataSync() as Float32Array, this.penaltyValues);
    else {
      // A gradient in another shape (a row, say) is flattened only here: the host step reads its values as they lie.
      const flat = grad.rank === 1 ? grad : grad.reshape([-1]);
      this.optimizer.apply(this.penalty ? flat.add(this.params.flat.mul(this.penalty)) : flat);
    }
  }

  /** 1/n as a scalar tensor, kept while batches keep their size (a JS number in an op is a new tensor per call). */
  protected inverseCount(n: number): TF.Scalar {
    if (this.inverse?.n !== n) {
      this.inverse?.scalar.dispose();
      this.inverse = { n, scalar: tf.keep(tf.scalar(1 / n)) };
    }
    return this.inverse.scalar;
  }

  private inverse: { n: number; scalar: TF.Scalar } | undefined;

  /** Logits, shape [n]. `training` turns dropout on. */
  protected abstract logits(batch: Batch, training: boolean): TF.Tensor1D;

  /** P(positive), n values in any shape: sigmoid of the logits unless a model has a cheaper way. */
  protected probabilities(batch: Batch): TF.Tensor {
    return tf.sigmoid(this.logits(batch, false));
  }

  predictProbaMany(batch: Batch): Float32Array {
    if (batch.n === 0) return new Float32Array(0);
    // Read outside the tidy: tidy walks what it returns, element by element for a typed array.
    const scores = tf.tidy(() => this.probabilities(batch));
    const out = scores.dataSync() as Float32Array;
    scores.dispose();
    return out;
  }

  /**
   * {@link predictProbaMany} reading the scores back asynchronously: on a GPU backend the event loop
   * runs on while the device computes (the webgpu backend in Node reads back no other way).
   */
  async predictProbaManyAsync(batch: Batch): Promise<Float32Array> {
    if (batch.n === 0) return new Float32Array(0);
    const scores = tf.tidy(() => this.probabilities(batch));
    try {
      return (await scores.data()) as Float32Array;
    } finally {
      scores.dispose();
    }
  }

  /**
   * P(positive) of one row of features, `d` values from `offset` (a ones column after them is
   * ignored), computed on the host at once; undefined for models that only predict in batches.
   * A model offers it when one row costs less in plain JS than a kernel call: then predictions need
   * not wait for a micro-batch (latency) and make no kernel calls (throughput).
   */
  predictRow?(rows: Float32Array, offset: number): number;

  predictProbaOne(batch: Batch): number {
    return this.predictProbaMany(batch)[0]!;
  }

  /** One optimiser step on the batch: mean binary cross-entropy (autodiff; `logistic` and `mlp` give theirs in closed form). */
  learnMany(batch: Batch, labels: Float32Array): void {
    if (batch.n === 0) return;
    tf.tidy(() => {
      const y = tf.tensor1d(labels, 'float32');
      const theta = this.params.flat;
      const { grads } = this.params.taped(() => tf.variableGrads(() => tf.losses.sigmoidCrossEntropy(y, this.logits(batch, true)) as TF.Scalar, [theta]));
      this.update(grads[theta.name]!);
    });
  }

  state(): ModelState {
    return { kind: this.kind, inputs: this.inputs, params: this.params.encode(), optimizer: this.optimizer.state() };
  }

  /**
   * {@link state} on a backend that reads back only asynchronously (webgpu in Node): each tensor it
   * reads is read first, which leaves the backend a copy on the host, so state()'s reads are
   * answered from it. Nothing may run on the model in between: that is why the reads come first.
   */
  async stateAsync(): Promise<ModelState> {
    await Promise.all([this.params.flat, ...this.optimizer.readTensors()].map((tensor) => tensor.data()));
    return this.state();
  }

  load(state: ModelState): void {
    if (state.kind !== this.kind) throw new Error(`saved model is ${state.kind}, this one is ${this.kind}`);
    if (state.inputs !== this.inputs) throw new Error(`saved model takes ${state.inputs} features, this one ${this.inputs}`);
    this.params.load(state.params);
    this.optimizer.load(state.optimizer);
  }

  dispose(): void {
    this.params.dispose();
    this.optimizer.dispose();
    this.penalty?.dispose();
    this.penalty = undefined;
    this.inverse?.scalar.dispose();
    this.inverse = undefined;
  }
}

/**
 * Where a parameter reads the feature vector: rows `from` to `from + inputs` of its first axis are one per
 * feature, in the model's feature order (see {@link remapInputRows}). Each model kind lists its own beside
 * its constructor, which lays them out.
 */
export interface InputRows {
  param: string;
  from: number;
}

/**
 * A saved model's state for another feature list (a pipeline's features added or gone since it was saved):
 * `map[i]` is the saved feature that new feature i is (-1: one it did not have). The rows that read a kept
 * feature keep their weights and the optimiser's moments; an added feature's rows are 0, weights and moments
 * alike (so the model predicts as before until it learns from it); a gone feature's rows are dropped. Every other
 * parameter, the optimiser's step and learning rate are kept as they are.
 */
export function remapInputRows(state: ModelState, rows: readonly InputRows[], map: readonly number[]): ModelState {
  const remap = (encoded: EncodedTensor, from: number): EncodedTensor => {
    const [count, ...rest] = encoded.shape;
    const width = rest.reduce((a, b) => a * b, 1);
    const inputs = state.inputs;
    if (count === undefined || from + inputs > count) throw new Error(`saved parameter of shape [${encoded.shape}] has no ${inputs} input rows from row ${from}`);
    const values = decodeFloats(encoded.data);
    const out = new Float32Array((count - inputs + map.length) * width);
    // The rows before and after the inputs' rows as they were; each input row from its saved one, or 0.
    out.set(values.subarray(0, from * width), 0);
    map.forEach((at, i) => {
      if (at >= 0) out.set(values.subarray((from + at) * width, (from + at + 1) * width), (from + i) * width);
    });
    out.set(values.subarray((from + inputs) * width), (from + map.length) * width);
    return { shape: [count - inputs + map.length, ...rest], data: encodeFloats(out) };
  };
  const remapAll = (encoded: Record<string, EncodedTensor>, suffix: string): Record<string, EncodedTensor> => {
    const out = { ...encoded };
    const byParam = new Map<string, number[]>();
    for (const { param, from } of rows) byParam.set(param, [...(byParam.get(param) ?? []), from]);
    for (const [param, froms] of byParam) {
      let tensor = encoded[param + suffix];
      if (tensor === undefined) continue; // an optimiser without slots (sgd)
      // From the last block back: a block's rows shift those after it, not those before.
      for (const from of [...froms].sort((a, b) => b - a)) tensor = remap(tensor, from);
      out[param + suffix] = tensor;
    }
    return out;
  };
  return {
    ...state,
    inputs: map.length,
    params: remapAll(state.params, ''),
    optimizer: { ...state.optimizer, slots: remapAll(remapAll(state.optimizer.slots, '/m'), '/v') },
  };
}

/** Glorot-normal initial weights, seeded. */
export function glorot(rows: number, cols: number, seed: number): TF.Tensor2D {
  return tf.randomNormal([rows, cols], 0, Math.sqrt(2 / (rows + cols)), 'float32', seed) as TF.Tensor2D;
}

export function inputMatrix(batch: Batch): TF.Tensor2D {
  const { n, d, x, x1 } = batch;
  if (x) return tf.tensor2d(x.subarray(0, n * d), [n, d], 'float32');
  const out = new Float32Array(n * d);
  for (let i = 0, from = 0, to = 0; i < n; i++, from++) for (let j = 0; j < d; j++) out[to++] = x1![from++]!;
  return tf.tensor2d(out, [n, d], 'float32');
}

/**
 * The inputs with a column of ones appended, n x (d + 1), built in a buffer the caller keeps: with
 * it a layer's bias is one more row of its weights (stored right after them), so the product needs
 * no bias op and its gradient X1' dZ holds the bias gradient too (no reduction op). Copying the
 * batch costs less than the kernel calls it saves.
 */
export function inputsWithOnes(batch: Batch, buffer: { data: Float32Array }): TF.Tensor2D {
  const { n, d, x, x1 } = batch;
  const width = d + 1;
  if (x1) return tf.tensor2d(x1.subarray(0, n * width), [n, width], 'float32');
  if (!x) throw new Error('a batch needs x or x1');
  if (buffer.data.length < n * width) buffer.data = new Float32Array(n * width);
  const out = buffer.data;
  // A plain loop: a subarray per row would allocate n views.
  for (let i = 0, from = 0, to = 0; i < n; i++) {
    for (let j = 0; j < d; j++) out[to++] = x[from++]!;
    out[to++] = 1;
  }
  return tf.tensor2d(out.subarray(0, n * width), [n, width], 'float32');
}

/**
 * d(mean binary cross-entropy)/d(logits) for logits [n, 1]: (sigmoid(logits) - y) / n, [n, 1].
 * `inverseCount` is 1/n as a tensor when the caller keeps one ({@link OnlineModel.inverseCount}).
 */
export function outputError(logits: TF.Tensor2D, labels: Float32Array, inverseCount?: TF.Scalar): TF.Tensor2D {
  const n = labels.length;
  return tf.sigmoid(logits).sub(tf.tensor2d(labels, [n, 1], 'float32')).mul(inverseCount ?? 1 / n) as TF.Tensor2D;
}

/**
 * Model parameters and the optimisers that update them. The optimisers are ours, not tf.train's,
 * because tf.train's state can only be read asynchronously (`getWeights()` returns a Promise) and
 * an operator's `snapshot()` is synchronous.
 *
 * Every parameter of a model lives in ONE flat variable, and each named parameter is a view of it
 * (an offset and a shape). TF.js pays per kernel call, not per flop, at these sizes: the optimiser
 * then updates one tensor per step (a dozen calls) instead of one per parameter (a dozen each),
 * and models with closed-form gradients hand it one flat gradient.
 */
import type * as TF from '@tensorflow/tfjs';
import { tf } from './backend.js';
import type { OptimizerKind } from './settings.js';

/** A tensor as JSON: its shape and its float32 bytes in base64. */
export interface EncodedTensor {
  shape: number[];
  data: string;
}

/** Float values as base64 of their bytes: exact, and for float64 about 11 characters a value against JSON's 18 or so. */
export function encodeFloats(values: Float32Array | Float64Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}

/** Reads what {@link encodeFloats} wrote of a Float32Array. */
export function decodeFloats(data: string): Float32Array {
  return decodeAligned(data, Float32Array);
}

/** Reads what {@link encodeFloats} wrote of a Float64Array. */
export function decodeFloat64s(data: string): Float64Array {
  return decodeAligned(data, Float64Array);
}

/**
 * Reads what {@link encodeFloats} wrote of a Float32Array into `target` from element `offset`
 * (a row of a slab: no buffer of its own); returns how many values it read.
 */
export function decodeFloatsInto(data: string, target: Float32Array, offset: number): number {
  const bytes = Buffer.from(data, 'base64');
  if (bytes.byteLength % 4 !== 0 || offset + bytes.byteLength / 4 > target.length) throw new RangeError(`saved floats (${bytes.byteLength} bytes) do not fit their row`);
  new Uint8Array(target.buffer, target.byteOffset + offset * 4, bytes.byteLength).set(bytes);
  return bytes.byteLength / 4;
}

function decodeAligned<T extends Float32Array | Float64Array>(data: string, Type: { new (length: number): T; readonly BYTES_PER_ELEMENT: number }): T {
  const bytes = Buffer.from(data, 'base64');
  // Copy into a fresh, aligned buffer: Buffer's pool offset need not be a multiple of the element size.
  const out = new Type(bytes.byteLength / Type.BYTES_PER_ELEMENT);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export function encodeTensor(tensor: TF.Tensor): EncodedTensor {
  return { shape: [...tensor.shape], data: encodeFloats(tensor.dataSync() as Float32Array) };
}

export function decodeTensor(encoded: EncodedTensor): TF.Tensor {
  return tf.tensor(decodeFloats(encoded.data), encoded.shape, 'float32');
}

/** Where a view lies in the flat vector. */
interface Region {
  offset: number;
  shape: number[];
  size: number;
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Named trainable parameters, in a fixed order, stored in one flat variable. Add them (and any
 * aliases) before {@link seal}; then {@link get} gives a parameter as a tensor of its shape. Those
 * views are made once per update and cached (kept out of tidies), so a forward pass costs no slice;
 * inside {@link taped} they are sliced afresh, so autodiff sees them as functions of the variable.
 */
export class ParamSet {
  private readonly regions = new Map<string, Region>();
  /** Parameters proper (not aliases), in storage order: what is saved. */
  private readonly names: string[] = [];
  private initial: Float32Array[] = [];
  private variable: TF.Variable | undefined;
  /** Views made since the last update (only those asked for). */
  private readonly views = new Map<string, TF.Tensor>();
  private taping = 0;
  size = 0;

  add(name: string, initial: TF.Tensor): void {
    if (this.variable) throw new Error('parameters are sealed');
    const shape = [...initial.shape];
    this.regions.set(name, { offset: this.size, shape, size: sizeOf(shape) });
    this.names.push(name);
    this.initial.push(Float32Array.from(initial.dataSync() as Float32Array));
    initial.dispose();
    this.size += sizeOf(shape);
  }

  /**
   * Another view of the storage: `shape` elements from element `start` of parameter `of`, running
   * on into the parameters after it if `shape` asks (a weight matrix followed by its bias is the
   * matrix with the bias as one more row). Call after adding every parameter it covers.
   */
  alias(name: string, of: string, start: number, shape: number[]): void {
    const offset = this.region(of).offset + start;
    const size = sizeOf(shape);
    if (offset + size > this.size) throw new Error(`alias '${name}' runs past the parameters`);
    this.regions.set(name, { offset, shape, size });
  }

  /** Makes the flat variable from the parameters added. */
  seal(): void {
    const values = new Float32Array(this.size);
    let offset = 0;
    for (const part of this.initial) {
      values.set(part, offset);
      offset += part.length;
    }
    this.initial = [];
    const initial = tf.tensor1d(values, 'float32');
    this.variable = tf.variable(initial, true, undefined, 'float32');
    initial.dispose();
  }

  /** The flat variable every parameter is a view of. */
  get flat(): TF.Variable {
    if (!this.variable) throw new Error('parameters are not sealed');
    return this.variable;
  }

  private region(name: string): Region {
    const region = this.regions.get(name);
    if (!region) throw new Error(`no parameter '${name}'`);
    return region;
  }

  private slice(region: Region): TF.Tensor {
    // A view of the whole vector is a reshape, which shares its data; a slice copies.
    const part = region.size === this.size ? this.flat : tf.slice(this.flat, [region.offset], [region.size]);
    return tf.reshape(part, region.shape);
  }

  /** Parameter (or alias) `name` in its shape: the cached view, or a taped slice inside {@link taped}. */
  get(name: string): TF.Tensor {
    if (this.taping > 0) return this.slice(this.region(name));
    let view = this.views.get(name);
    if (!view) {
      const region = this.region(name);
      view = tf.keep(tf.tidy(() => this.slice(region)));
      this.views.set(name, view);
    }
    return view;
  }

  /** {@link get}, for a parameter that is a matrix. */
  matrix(name: string): TF.Tensor2D {
    return this.get(name) as TF.Tensor2D;
  }

  /** Runs `f` with views sliced inside it (for tf.variableGrads). */
  taped<T>(f: () => T): T {
    this.taping++;
    try {
      return f();
    } finally {
      this.taping--;
    }
  }

  /** Sets the flat vector (the optimiser's step, a load); the cached views are remade on next use. */
  assign(value: TF.Tensor): void {
    this.flat.assign(value);
    this.dropViews();
    this.host = undefined;
    this.hostFloats = undefined;
  }

  /** Sets the flat vector from values on the host, which become its host copy (nothing is read back). Not to be modified after. */
  assignValues(values: Float32Array): void {
    const value = tf.tensor1d(values, 'float32');
    this.assign(value);
    value.dispose();
    this.hostFloats = values;
  }

  private host: Float64Array | undefined;
  private hostFloats: Float32Array | undefined;

  /** The flat vector on the host as stored (float32; a copy, read back once per change). Not to be modified. */
  values(): Float32Array {
    return (this.hostFloats ??= Float32Array.from(this.flat.dataSync() as Float32Array));
  }

  /**
   * The flat vector on the host (a copy, read back once per change): for models that predict one row
   * in plain JS, where a kernel call would cost more than the arithmetic.
   */
  hostValues(): Float64Array {
    return (this.host ??= Float64Array.from(this.values()));
  }

  private dropViews(): void {
    for (const view of this.views.values()) view.dispose();
    this.views.clear();
  }

  /** A flat vector with `value` at every element of the parameters whose name starts with `prefix`, 0 elsewhere. */
  maskOf(prefix: string, value: number): Float32Array {
    const mask = new Float32Array(this.size);
    for (const name of this.names) {
      const region = this.region(name);
      if (name.startsWith(prefix)) mask.fill(value, region.offset, region.offset + region.size);
    }
    return mask;
  }

  /** A flat vector (the parameters, or an optimiser slot) as one encoded tensor per parameter. */
  encodeFlat(values: Float32Array, suffix = ''): Record<string, EncodedTensor> {
    const out: Record<string, EncodedTensor> = {};
    for (const name of this.names) {
      const region = this.region(name);
      out[name + suffix] = { shape: region.shape, data: encodeFloats(values.subarray(region.offset, region.offset + region.size)) };
    }
    return out;
  }

  /** The inverse of {@link encodeFlat}, checking every parameter is there in its shape. */
  decodeFlat(encoded: Record<string, EncodedTensor>, suffix = '', what = 'parameter'): Float32Array {
    const values = new Float32Array(this.size);
    for (const name of this.names) {
      const region = this.region(name);
      const saved = encoded[name + suffix];
      if (!saved) throw new Error(`saved model lacks ${what} '${name + suffix}'`);
      if (saved.shape.join('x') !== region.shape.join('x')) throw new Error(`${what} '${name + suffix}': saved shape [${saved.shape}] differs from the model's [${region.shape}]`);
      values.set(decodeFloats(saved.data), region.offset);
    }
    return values;
  }

  encode(): Record<string, EncodedTensor> {
    return this.encodeFlat(this.flat.dataSync() as Float32Array);
  }

  load(encoded: Record<string, EncodedTensor>): void {
    const value = tf.tensor1d(this.decodeFlat(encoded), 'float32');
    this.assign(value);
    value.dispose();
  }

  dispose(): void {
    this.dropViews();
    this.variable?.dispose();
    this.variable = undefined;
  }
}

export type { OptimizerKind } from './settings.js';

export interface OptimizerConfig {
  kind: OptimizerKind;
  learning_rate: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

export interface OptimizerState {
  kind: OptimizerKind;
  learningRate: number;
  step: number;
  /** Adam's moments, per parameter (`NAME/m`, `NAME/v`): the same format as when each parameter had its own. */
  slots: Record<string, EncodedTensor>;
}

/** SGD or Adam over a {@link ParamSet}'s flat vector; its state (moments, step) serialises synchronously. */
export class Optimizer {
  learningRate: number;
  step = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  /** Adam's moments, flat like the parameters. */
  private moments: { m: TF.Variable; v: TF.Variable } | undefined;
  /**
   * Steps are taken on the host ({@link stepOnHost}) on the backends whose element-wise kernels are
   * plain IEEE float32 operations (wasm, cpu): there each kernel of {@link apply} is one correctly
   * rounded float32 operation per element, which `Math.fround` of the same operation in float64
   * reproduces exactly (float64 carries more than twice float32's precision, so rounding twice
   * changes no +, -, *, / or sqrt), so the parameters come out bit for bit the same, without the
   * dozen kernel calls (TF.js pays per call: most of a step at these sizes). Elsewhere (tensorflow,
   * whose math library may approximate sqrt) the kernels run as before.
   */
  readonly onHost: boolean;
  /** Adam's moments on the host (with {@link onHost}). */
  private hostMoments: { m: Float32Array; v: Float32Array } | undefined;
  /**
   * Adam's constants as tensors made once: a JS number in an op becomes a new scalar tensor (an
   * allocation and an upload to the backend) per op per step.
   */
  private constants: { b1: TF.Scalar; b1c: TF.Scalar; b2: TF.Scalar; b2c: TF.Scalar; epsilon: TF.Scalar } | undefined;

  constructor(
    private readonly config: OptimizerConfig,
    private readonly params: ParamSet,
  ) {
    this.learningRate = config.learning_rate;
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.epsilon = config.epsilon ?? 1e-7;
    const backend = tf.getBackend();
    this.onHost = backend === 'wasm' || backend === 'cpu';
    if (config.kind === 'adam' && this.onHost) this.hostMoments = { m: new Float32Array(params.size), v: new Float32Array(params.size) };
    else if (config.kind === 'adam') {
      // tf.variable keeps its own reference to the data: the initial tensor is disposed with the tidy.
      this.moments = tf.tidy(() => ({ m: tf.variable(tf.zeros([params.size]), false), v: tf.variable(tf.zeros([params.size]), false) }));
      this.constants = {
        b1: tf.scalar(this.beta1),
        b1c: tf.scalar(1 - this.beta1),
        b2: tf.scalar(this.beta2),
        b2c: tf.scalar(1 - this.beta2),
        epsilon: tf.scalar(this.epsilon),
      };
    }
  }

  /** One step with the gradient of the flat parameter vector (the model derives it: autodiff or closed form). */
  apply(grad: TF.Tensor): void {
    tf.tidy(() => {
      this.step++;
      const lr = this.learningRate;
      const theta = this.params.flat;
      if (!this.moments) {
        this.params.assign(theta.sub(grad.mul(lr)));
        return;
      }
      const c = this.constants!;
      const { m, v } = this.moments;
      // Bias correction folded into the step size, as tf.train.adam does.
      const alpha = tf.scalar((lr * Math.sqrt(1 - this.beta2 ** this.step)) / (1 - this.beta1 ** this.step));
      m.assign(m.mul(c.b1).add(grad.mul(c.b1c)));
      v.assign(v.mul(c.b2).add(grad.square().mul(c.b2c)));
      this.params.assign(theta.sub(m.div(v.sqrt().add(c.epsilon)).mul(alpha)));
    });
  }

  /**
   * {@link apply} on the host (see {@link onHost}): the same float32 operations in the same order,
   * each rounded as its kernel rounds it; `penalty` (per element, float32) adds the L2 gradient
   * `penalty * theta` first, as the model's update does with kernels.
   */
  stepOnHost(grad: Float32Array, penalty: Float32Array | undefined): void {
    this.step++;
    const f = Math.fround;
    const theta = this.params.values();
    const next = new Float32Array(theta.length);
    // Scalars as the kernels see them: float32 tensors.
    const lr = f(this.learningRate);
    const moments = this.hostMoments;
    if (!moments) {
      for (let i = 0; i < next.length; i++) {
        const g = penalty ? f(grad[i]! + f(theta[i]! * penalty[i]!)) : grad[i]!;
        next[i] = f(theta[i]! - f(g * lr));
      }
    } else {
      const { m, v } = moments;
      const b1 = f(this.beta1);
      const b1c = f(1 - this.beta1);
      const b2 = f(this.beta2);
      const b2c = f(1 - this.beta2);
      const epsilon = f(this.epsilon);
      const alpha = f((this.learningRate * Math.sqrt(1 - this.beta2 ** this.step)) / (1 - this.beta1 ** this.step));
      for (let i = 0; i < next.length; i++) {
        const g = penalty ? f(grad[i]! + f(theta[i]! * penalty[i]!)) : grad[i]!;
        const mi = (m[i] = f(f(m[i]! * b1) + f(g * b1c)));
        const vi = (v[i] = f(f(v[i]! * b2) + f(f(g * g) * b2c)));
        next[i] = f(theta[i]! - f(f(mi / f(f(Math.sqrt(vi)) + epsilon)) * alpha));
      }
    }
    this.params.assignValues(next);
  }

  /** Forgets the moments (after drift), keeping the weights. */
  reset(): void {
    this.step = 0;
    if (this.hostMoments) {
      this.hostMoments.m.fill(0);
      this.hostMoments.v.fill(0);
    }
    if (!this.moments) return;
    tf.tidy(() => {
      for (const slot of [this.moments!.m, this.moments!.v]) slot.assign(tf.zerosLike(slot));
    });
  }

  /** The tensors {@link state} reads back (Adam's moments where they live on the backend). */
  readTensors(): TF.Tensor[] {
    return this.moments ? [this.moments.m, this.moments.v] : [];
  }

  state(): OptimizerState {
    const m = this.hostMoments?.m ?? (this.moments?.m.dataSync() as Float32Array | undefined);
    const v = this.hostMoments?.v ?? (this.moments?.v.dataSync() as Float32Array | undefined);
    const slots = m && v ? { ...this.params.encodeFlat(m, '/m'), ...this.params.encodeFlat(v, '/v') } : {};
    return { kind: this.config.kind, learningRate: this.learningRate, step: this.step, slots };
  }

  load(state: OptimizerState): void {
    if (state.kind !== this.config.kind) throw new Error(`saved optimiser is ${state.kind}, the model's is ${this.config.kind}`);
    this.learningRate = state.learningRate;
    this.step = state.step;
    if (this.hostMoments) {
      this.hostMoments.m.set(this.params.decodeFlat(state.slots, '/m', 'optimiser slot'));
      this.hostMoments.v.set(this.params.decodeFlat(state.slots, '/v', 'optimiser slot'));
    }
    if (!this.moments) return;
    for (const [suffix, slot] of [['/m', this.moments.m], ['/v', this.moments.v]] as const) {
      const value = tf.tensor1d(this.params.decodeFlat(state.slots, suffix, 'optimiser slot'), 'float32');
      slot.assign(value);
      value.dispose();
    }
  }

  dispose(): void {
    if (this.moments) {
      this.moments.m.dispose();
      this.moments.v.dispose();
    }
    this.moments = undefined;
    this.hostMoments = undefined;
    if (this.constants) for (const constant of Object.values(this.constants)) constant.dispose();
    this.constants = undefined;
  }
}

/**
 * Model parameters and the optimisers that update them. The optimisers are ours, not tf.train's,
 * because tf.train's state can only be read asynchronously (`getWeights()` returns a Promise) and
 * an operator's `snapshot()` is synchronous. Both are a handful of tensor ops per parameter.
 */
import type * as TF from '@tensorflow/tfjs';
import { tf } from './backend.js';

/** A tensor as JSON: its shape and its float32 bytes in base64. */
export interface EncodedTensor {
  shape: number[];
  data: string;
}

export function encodeFloats(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}

export function decodeFloats(data: string): Float32Array {
  const bytes = Buffer.from(data, 'base64');
  // Copy into a fresh, aligned buffer: Buffer's pool offset need not be a multiple of 4.
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export function encodeTensor(tensor: TF.Tensor): EncodedTensor {
  return { shape: [...tensor.shape], data: encodeFloats(tensor.dataSync() as Float32Array) };
}

export function decodeTensor(encoded: EncodedTensor): TF.Tensor {
  return tf.tensor(decodeFloats(encoded.data), encoded.shape, 'float32');
}

/** Named trainable variables, in a fixed order. */
export class ParamSet {
  readonly vars = new Map<string, TF.Variable>();

  add(name: string, initial: TF.Tensor): TF.Variable {
    const variable = tf.variable(initial, true, undefined, 'float32');
    initial.dispose();
    this.vars.set(name, variable);
    return variable;
  }

  get(name: string): TF.Variable {
    const variable = this.vars.get(name);
    if (!variable) throw new Error(`no parameter '${name}'`);
    return variable;
  }

  list(): TF.Variable[] {
    return [...this.vars.values()];
  }

  encode(): Record<string, EncodedTensor> {
    const out: Record<string, EncodedTensor> = {};
    for (const [name, variable] of this.vars) out[name] = encodeTensor(variable);
    return out;
  }

  load(encoded: Record<string, EncodedTensor>): void {
    for (const [name, variable] of this.vars) {
      const saved = encoded[name];
      if (!saved) throw new Error(`saved model lacks parameter '${name}'`);
      if (saved.shape.join('x') !== variable.shape.join('x')) throw new Error(`parameter '${name}': saved shape [${saved.shape}] differs from the model's [${variable.shape}]`);
      const value = decodeTensor(saved);
      variable.assign(value);
      value.dispose();
    }
  }

  dispose(): void {
    for (const variable of this.vars.values()) variable.dispose();
    this.vars.clear();
  }
}

export type OptimizerKind = 'sgd' | 'adam';

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
  slots: Record<string, EncodedTensor>;
}

/** SGD or Adam over a {@link ParamSet}; its state (moments, step) serialises synchronously. */
export class Optimizer {
  learningRate: number;
  step = 0;
  private readonly slots = new Map<string, TF.Variable>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  /**
   * Adam's constants as tensors made once: a JS number in an op becomes a new scalar tensor (an
   * allocation and an upload to the backend) per op per parameter per step.
   */
  private constants: { b1: TF.Scalar; b1c: TF.Scalar; b2: TF.Scalar; b2c: TF.Scalar; epsilon: TF.Scalar } | undefined;
  /** Per parameter, in the parameter order: its moments. */
  private moments: { name: string; m: TF.Variable; v: TF.Variable }[] = [];

  constructor(
    private readonly config: OptimizerConfig,
    private readonly params: ParamSet,
  ) {
    this.learningRate = config.learning_rate;
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.epsilon = config.epsilon ?? 1e-7;
    if (config.kind === 'adam') {
      for (const [name, variable] of params.vars) {
        // tf.variable keeps its own reference to the data: the initial tensor is disposed with the tidy.
        this.slots.set(`${name}/m`, tf.tidy(() => tf.variable(tf.zerosLike(variable), false)));
        this.slots.set(`${name}/v`, tf.tidy(() => tf.variable(tf.zerosLike(variable), false)));
        this.moments.push({ name, m: this.slots.get(`${name}/m`)!, v: this.slots.get(`${name}/v`)! });
      }
      this.constants = {
        b1: tf.scalar(this.beta1),
        b1c: tf.scalar(1 - this.beta1),
        b2: tf.scalar(this.beta2),
        b2c: tf.scalar(1 - this.beta2),
        epsilon: tf.scalar(this.epsilon),
      };
    }
  }

  /** One step with the given gradients (by parameter name): the model derives them (autodiff or closed form). */
  apply(gradOf: (name: string, variable: TF.Variable) => TF.Tensor | undefined): void {
    tf.tidy(() => {
      this.step++;
      const lr = this.learningRate;
      if (this.config.kind === 'sgd') {
        for (const [name, variable] of this.params.vars) {
          const grad = gradOf(name, variable);
          if (grad) variable.assign(variable.sub(grad.mul(lr)));
        }
      } else {
        const c = this.constants!;
        // Bias correction folded into the step size, as tf.train.adam does.
        const alpha = tf.scalar((lr * Math.sqrt(1 - this.beta2 ** this.step)) / (1 - this.beta1 ** this.step));
        for (const { name, m, v } of this.moments) {
          const variable = this.params.get(name);
          const grad = gradOf(name, variable);
          if (!grad) continue;
          m.assign(m.mul(c.b1).add(grad.mul(c.b1c)));
          v.assign(v.mul(c.b2).add(grad.square().mul(c.b2c)));
          variable.assign(variable.sub(m.div(v.sqrt().add(c.epsilon)).mul(alpha)));
        }
      }
    });
  }

  /** Forgets the moments (after drift), keeping the weights. */
  reset(): void {
    this.step = 0;
    tf.tidy(() => {
      for (const slot of this.slots.values()) slot.assign(tf.zerosLike(slot));
    });
  }

  state(): OptimizerState {
    const slots: Record<string, EncodedTensor> = {};
    for (const [name, slot] of this.slots) slots[name] = encodeTensor(slot);
    return { kind: this.config.kind, learningRate: this.learningRate, step: this.step, slots };
  }

  load(state: OptimizerState): void {
    if (state.kind !== this.config.kind) throw new Error(`saved optimiser is ${state.kind}, the model's is ${this.config.kind}`);
    this.learningRate = state.learningRate;
    this.step = state.step;
    for (const [name, slot] of this.slots) {
      const saved = state.slots[name];
      if (!saved) throw new Error(`saved optimiser lacks slot '${name}'`);
      const value = decodeTensor(saved);
      slot.assign(value);
      value.dispose();
    }
  }

  dispose(): void {
    for (const slot of this.slots.values()) slot.dispose();
    this.slots.clear();
    this.moments = [];
    if (this.constants) for (const constant of Object.values(this.constants)) constant.dispose();
    this.constants = undefined;
  }
}

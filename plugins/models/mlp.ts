/**
 * `mlp`: a multilayer perceptron (ReLU hidden layers, dropout while learning) with a linear skip
 * from the inputs to the output ("wide and deep"): on weak, noisy signals such as a few hours of
 * clickstream, the hidden layers learn slowly and the linear part carries what logistic regression
 * would find, so the network does not start behind it.
 *
 * Learning is backpropagation written out in TF.js ops rather than taped by autodiff: about half
 * the kernel calls, and every matrix product untransposed. The wasm backend runs only those on
 * XNNPACK; the transposed products autodiff asks for (X'dZ, dZ W') are a scalar loop there, and
 * were most of a step's time. Plain matMul + add + relu, not tf.fused.matMul: the fused op wraps
 * its kernel in three reshapes, more calls than it saves.
 */
import type * as TF from '@tensorflow/tfjs';
import { tf } from './backend.js';
import { OnlineModel, glorot, inputsWithOnes, outputError, type Batch, type InputRows, type ModelConfig } from './model.js';
import type { OptimizerConfig } from './params.js';

interface Forward {
  /** The inputs with a ones column (the first layer's and the skip's biases are rows of their weights). */
  x1: TF.Tensor2D;
  /** Each hidden layer's output (after dropout when learning); the last one feeds the output. */
  hidden: TF.Tensor2D[];
  /** Each hidden layer's dropout multiplier (0 or 1 / keep), when learning with dropout. */
  dropped: (TF.Tensor2D | undefined)[];
  logits: TF.Tensor2D;
}

export class MultilayerPerceptron extends OnlineModel {
  readonly kind = 'mlp' as const;
  /** Width of the last hidden layer (the inputs when there is none). */
  private readonly width: number;
  private readonly ones = { data: new Float32Array(0) };

  /**
   * Where it reads the features (see remapInputRows): a row of the first layer's `w0` each, and of the output's
   * linear skip (the rows of `wout` after the last hidden layer's width); with no hidden layer, the output's
   * "hidden" part reads them too.
   */
  static inputRows(inputs: number, config: ModelConfig): InputRows[] {
    if (config.hidden.length === 0) return [{ param: 'wout', from: 0 }, { param: 'wout', from: inputs }];
    return [{ param: 'w0', from: 0 }, { param: 'wout', from: config.hidden.at(-1)! }];
  }

  constructor(inputs: number, config: ModelConfig, optimizer: OptimizerConfig) {
    super(inputs, config, optimizer);
    let width = inputs;
    config.hidden.forEach((size, i) => {
      this.params.add(`w${i}`, glorot(width, size, config.seed + i));
      this.params.add(`b${i}`, tf.zeros([size]));
      width = size;
    });
    this.width = width;
    // A zero output layer: the network starts predicting the prior, not a random projection of the
    // features (which scored below chance on real data for the first thousands of samples); the hidden
    // layers' random weights still break the symmetry once the output weights move.
    // The output reads the last hidden layer and the inputs (the linear skip), as one matrix.
    this.params.add('wout', tf.zeros([width + inputs, 1]));
    this.params.add('bout', this.initialBias());
    // Views: the first layer with its bias as a last row (b0 follows w0), the output's two parts (the
    // skip's with bout as a last row), so the forward pass needs neither a concat nor bias adds there.
    if (config.hidden.length > 0) this.params.alias('w0b0', 'w0', 0, [inputs + 1, config.hidden[0]!]);
    this.params.alias('wout.hidden', 'wout', 0, [width, 1]);
    this.params.alias('wout.hidden.row', 'wout', 0, [1, width]);
    this.params.alias('wout.inputs', 'wout', width, [inputs + 1, 1]);
    this.ready();
  }

  private forward(batch: Batch, training: boolean): Forward {
    const x1 = inputsWithOnes(batch, this.ones);
    const hidden: TF.Tensor2D[] = [];
    const dropped: (TF.Tensor2D | undefined)[] = [];
    let h: TF.Tensor2D | undefined;
    for (let i = 0; i < this.config.hidden.length; i++) {
      const z = h ? h.matMul(this.params.matrix(`w${i}`)).add(this.params.get(`b${i}`)) : x1.matMul(this.params.matrix('w0b0'));
      h = tf.relu(z) as TF.Tensor2D;
      if (training && this.config.dropout > 0) {
        // As tf.dropout computes it (same seed, same units dropped), keeping the multiplier for the backward pass.
        // Seeded by the step, so a restored model drops the same units as the original would have.
        const keep = 1 - this.config.dropout;
        const multiplier = tf.randomUniform(h.shape, 0, 1, 'float32', this.config.seed * 7919 + this.optimizer.step * 31 + i).add(keep).floor().div(keep) as TF.Tensor2D;
        h = h.mul(multiplier) as TF.Tensor2D;
        dropped.push(multiplier);
      } else dropped.push(undefined);
      hidden.push(h);
    }
    // With no hidden layer the "hidden" part reads the inputs themselves (as the concat of [x, x] did).
    const last = h ?? (x1.slice([0, 0], [batch.n, this.inputs]) as TF.Tensor2D);
    const logits = last.matMul(this.params.matrix('wout.hidden')).add(x1.matMul(this.params.matrix('wout.inputs'))) as TF.Tensor2D;
    if (!h) hidden.push(last);
    return { x1, hidden, dropped, logits };
  }

  protected logits(batch: Batch, training: boolean): TF.Tensor1D {
    return this.forward(batch, training).logits.reshape([batch.n]);
  }

  override learnMany(batch: Batch, labels: Float32Array): void {
    if (batch.n === 0) return;
    tf.tidy(() => {
      const { x1, hidden, dropped, logits } = this.forward(batch, true);
      const layers = this.config.hidden.length;
      const error = outputError(logits, labels);
      const last = hidden[hidden.length - 1]!;
      // Row gradients (error' H) hold the same floats as the column parameters they update; the
      // skip's (error' [X 1]) ends with bout's. Transposed products, but with one output column the
      // wasm backend's scalar loop beats XNNPACK, which would first pack H as weights.
      const grads: TF.Tensor[] = [error.matMul(last, true, false).reshape([this.width]), error.matMul(x1, true, false).reshape([this.inputs + 1])];
      let delta = error.matMul(this.params.matrix('wout.hidden.row')) as TF.Tensor2D; // d loss / d last hidden output
      for (let i = layers - 1; i >= 0; i--) {
        const multiplier = dropped[i];
        if (multiplier) delta = delta.mul(multiplier) as TF.Tensor2D;
        // ReLU passes the gradient where its output is positive (a dropped unit's delta is already 0).
        delta = delta.mul(tf.step(hidden[i]!)) as TF.Tensor2D;
        if (i === 0) {
          grads.unshift(x1.transpose().matMul(delta).reshape([-1])); // [w0; b0] in one product
        } else {
          grads.unshift(hidden[i - 1]!.transpose().matMul(delta).reshape([-1]), delta.sum(0));
          delta = delta.matMul(this.params.matrix(`w${i}`).transpose()) as TF.Tensor2D;
        }
      }
      this.update(tf.concat(grads));
    });
  }
}

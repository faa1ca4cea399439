/** `logistic`: logistic regression with an L2 penalty; the fastest model and the baseline. */
import type * as TF from '@tensorflow/tfjs';
import { tf } from './backend.js';
import { OnlineModel, inputsWithOnes, outputError, type Batch, type InputRows, type ModelConfig } from './model.js';
import type { OptimizerConfig } from './params.js';

export class LogisticRegression extends OnlineModel {
  readonly kind = 'logistic' as const;
  private readonly ones = { data: new Float32Array(0) };

  /** Where it reads the features (see remapInputRows): a row of `w` each. */
  static inputRows(): InputRows[] {
    return [{ param: 'w', from: 0 }];
  }

  constructor(inputs: number, config: ModelConfig, optimizer: OptimizerConfig) {
    super(inputs, config, optimizer);
    // Zero weights, as River's GLM starts (a convex model needs no random start); the bias at the prior.
    this.params.add('w', tf.zeros([inputs, 1]));
    this.params.add('b', this.initialBias());
    // The whole parameter vector [w; b] as a column, for inputs with a ones column: logits = [X 1] [w; b].
    this.params.alias('wb', 'w', 0, [inputs + 1, 1]);
    this.ready();
  }

  /**
   * The gradient in closed form, not by autodiff: (sigmoid([X 1] [w; b]) - y)' [X 1] / n is the
   * gradient of the whole parameter vector, as a row. A handful of kernel calls, and TF.js pays per
   * call, not per flop, at these sizes. (On wasm a transposed product is a scalar loop, but for one
   * output column that beats XNNPACK, which would first pack [X 1] as weights.)
   */
  override learnMany(batch: Batch, labels: Float32Array): void {
    if (batch.n === 0) return;
    tf.tidy(() => {
      const x1 = inputsWithOnes(batch, this.ones);
      const error = outputError(x1.matMul(this.params.matrix('wb')) as TF.Tensor2D, labels, this.inverseCount(batch.n));
      this.update(error.matMul(x1, true, false));
    });
  }

  /** sigmoid(x . w + b) in float64 from a host copy of [w; b], read back once per learning step. */
  override predictRow(rows: Float32Array, offset: number): number {
    const wb = this.params.hostValues();
    const d = this.inputs;
    let z = wb[d]!;
    for (let i = 0; i < d; i++) z += wb[i]! * rows[offset + i]!;
    return 1 / (1 + Math.exp(-z));
  }

  protected logits(batch: Batch): TF.Tensor1D {
    return inputsWithOnes(batch, this.ones).matMul(this.params.matrix('wb')).reshape([batch.n]);
  }

  /** [n, 1]: the caller reads the n values, so the logits need no reshape. */
  protected override probabilities(batch: Batch): TF.Tensor {
    return tf.sigmoid(inputsWithOnes(batch, this.ones).matMul(this.params.matrix('wb')));
  }
}

/** `logistic`: logistic regression with an L2 penalty; the fastest model and the baseline. */
import type * as TF from '@tensorflow/tfjs';
import { tf } from './backend.js';
import { OnlineModel, inputMatrix, type Batch, type ModelConfig } from './model.js';
import type { OptimizerConfig } from './params.js';

export class LogisticRegression extends OnlineModel {
  readonly kind = 'logistic' as const;

  constructor(inputs: number, config: ModelConfig, optimizer: OptimizerConfig) {
    super(inputs, config, optimizer);
    // Zero weights, as River's GLM starts (a convex model needs no random start); the bias at the prior.
    this.params.add('w', tf.zeros([inputs, 1]));
    this.params.add('b', this.initialBias());
    this.ready();
  }

  /**
   * The gradients in closed form, not by autodiff: X'(sigmoid(Xw + b) - y) / n (+ l2 w). A dozen
   * kernel calls fewer per step, and TF.js pays per call, not per flop, at these sizes.
   */
  override learnMany(batch: Batch, labels: Float32Array): void {
    if (batch.n === 0) return;
    tf.tidy(() => {
      const x = inputMatrix(batch);
      const w = this.params.get('w');
      const error = tf.sigmoid(x.matMul(w).add(this.params.get('b'))).sub(tf.tensor2d(labels, [batch.n, 1], 'float32')).mul(1 / batch.n);
      const gw = this.config.l2 > 0 ? x.matMul(error, true, false).add(w.mul(this.config.l2)) : x.matMul(error, true, false);
      const gb = error.sum(0);
      this.optimizer.apply((name) => (name === 'w' ? gw : gb));
    });
  }

  protected logits(batch: Batch): TF.Tensor1D {
    return inputMatrix(batch).matMul(this.params.get('w')).add(this.params.get('b')).reshape([batch.n]) as TF.Tensor1D;
  }
}

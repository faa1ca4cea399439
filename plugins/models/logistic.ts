/** `logistic`: logistic regression with an L2 penalty; the fastest model and the baseline. */
import { tf } from './backend.js';
import { OnlineModel, inputMatrix, type Batch, type ModelConfig } from './model.js';
import type { OptimizerConfig } from './params.js';

export class LogisticRegression extends OnlineModel {
  readonly kind = 'logistic' as const;

  constructor(inputs: number, config: ModelConfig, optimizer: OptimizerConfig) {
    super(inputs, config, optimizer);
    // Zeros, as River's GLM starts: a convex model needs no random start.
    this.params.add('w', tf.zeros([inputs, 1]));
    this.params.add('b', tf.zeros([1]));
    this.ready();
  }

  protected logits(batch: Batch): tf.Tensor1D {
    return inputMatrix(batch).matMul(this.params.get('w')).add(this.params.get('b')).reshape([batch.n]) as tf.Tensor1D;
  }
}

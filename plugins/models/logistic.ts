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

  protected logits(batch: Batch): TF.Tensor1D {
    return inputMatrix(batch).matMul(this.params.get('w')).add(this.params.get('b')).reshape([batch.n]) as TF.Tensor1D;
  }
}

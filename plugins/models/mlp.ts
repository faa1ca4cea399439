/** `mlp`: a multilayer perceptron (ReLU hidden layers, dropout while learning). */
import { tf } from './backend.js';
import { OnlineModel, glorot, inputMatrix, type Batch, type ModelConfig } from './model.js';
import type { OptimizerConfig } from './params.js';

export class MultilayerPerceptron extends OnlineModel {
  readonly kind = 'mlp' as const;

  constructor(inputs: number, config: ModelConfig, optimizer: OptimizerConfig) {
    super(inputs, config, optimizer);
    let width = inputs;
    config.hidden.forEach((size, i) => {
      this.params.add(`w${i}`, glorot(width, size, config.seed + i));
      this.params.add(`b${i}`, tf.zeros([size]));
      width = size;
    });
    this.params.add('wout', glorot(width, 1, config.seed + 99));
    this.params.add('bout', tf.zeros([1]));
    this.ready();
  }

  protected logits(batch: Batch, training: boolean): tf.Tensor1D {
    let h: tf.Tensor2D = inputMatrix(batch);
    for (let i = 0; i < this.config.hidden.length; i++) {
      h = tf.relu(h.matMul(this.params.get(`w${i}`)).add(this.params.get(`b${i}`))) as tf.Tensor2D;
      // Seeded by the step, so a restored model drops the same units as the original would have.
      if (training && this.config.dropout > 0) h = tf.dropout(h, this.config.dropout, undefined, this.config.seed * 7919 + this.optimizer.step * 31 + i) as tf.Tensor2D;
    }
    return h.matMul(this.params.get('wout')).add(this.params.get('bout')).reshape([batch.n]) as tf.Tensor1D;
  }
}

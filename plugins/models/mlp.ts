/**
 * `mlp`: a multilayer perceptron (ReLU hidden layers, dropout while learning) with a linear skip
 * from the inputs to the output ("wide and deep"): on weak, noisy signals such as a few hours of
 * clickstream, the hidden layers learn slowly and the linear part carries what logistic regression
 * would find, so the network does not start behind it.
 */
import type * as TF from '@tensorflow/tfjs';
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
    // A zero output layer: the network starts predicting the prior, not a random projection of the
    // features (which scored below chance on real data for the first thousands of samples); the hidden
    // layers' random weights still break the symmetry once the output weights move.
    // The output reads the last hidden layer and the inputs (the linear skip), as one matrix.
    this.params.add('wout', tf.zeros([width + inputs, 1]));
    this.params.add('bout', this.initialBias());
    this.ready();
  }

  protected logits(batch: Batch, training: boolean): TF.Tensor1D {
    const x = inputMatrix(batch);
    let h: TF.Tensor2D = x;
    for (let i = 0; i < this.config.hidden.length; i++) {
      h = tf.relu(h.matMul(this.params.get(`w${i}`)).add(this.params.get(`b${i}`))) as TF.Tensor2D;
      // Seeded by the step, so a restored model drops the same units as the original would have.
      if (training && this.config.dropout > 0) h = tf.dropout(h, this.config.dropout, undefined, this.config.seed * 7919 + this.optimizer.step * 31 + i) as TF.Tensor2D;
    }
    return tf.concat([h, x], 1).matMul(this.params.get('wout')).add(this.params.get('bout')).reshape([batch.n]) as TF.Tensor1D;
  }
}

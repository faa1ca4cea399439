/** Builds a model of the configured kind. */
import { GruModel } from './gru.js';
import { LogisticRegression } from './logistic.js';
import { MultilayerPerceptron } from './mlp.js';
import type { ModelConfig, OnlineModel } from './model.js';
import type { OptimizerConfig } from './params.js';

export function createModel(inputs: number, config: ModelConfig, optimizer: OptimizerConfig): OnlineModel {
  switch (config.kind) {
    case 'logistic':
      return new LogisticRegression(inputs, config, optimizer);
    case 'mlp':
      return new MultilayerPerceptron(inputs, config, optimizer);
    case 'gru':
      return new GruModel(inputs, config, optimizer);
  }
}

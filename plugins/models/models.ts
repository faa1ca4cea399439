/** Builds a model of the configured kind. */
import { modelsInWorkers } from './backend.js';
import { GruModel } from './gru.js';
import { LogisticRegression } from './logistic.js';
import { MultilayerPerceptron } from './mlp.js';
import type { Model, ModelConfig, OnlineModel } from './model.js';
import type { OptimizerConfig } from './params.js';
import { RemoteModel } from './remote.js';

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

/**
 * The model a model operator uses: in this thread, or, on a backend whose models live in worker threads
 * (webgpu: see remote.ts), held by a worker of its own, which tells `onFailure` when it fails where no
 * call would see it (see RemoteModel).
 */
export function openModel(inputs: number, config: ModelConfig, optimizer: OptimizerConfig, onFailure?: (error: Error) => void): Model {
  const backend = modelsInWorkers();
  return backend ? new RemoteModel(inputs, config, optimizer, backend, onFailure) : createModel(inputs, config, optimizer);
}

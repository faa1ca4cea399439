/** Builds a model of the configured kind. */
import { modelsInWorkers } from './backend.js';
import { GruModel } from './gru.js';
import { LogisticRegression } from './logistic.js';
import { MultilayerPerceptron } from './mlp.js';
import { remapInputRows, type InputRows, type Model, type ModelConfig, type ModelState, type OnlineModel } from './model.js';
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

/** Where a model of `config.kind` over `inputs` features reads them (see remapInputRows). */
function inputRowsOf(inputs: number, config: ModelConfig): InputRows[] {
  switch (config.kind) {
    case 'logistic':
      return LogisticRegression.inputRows();
    case 'mlp':
      return MultilayerPerceptron.inputRows(inputs, config);
    case 'gru':
      return GruModel.inputRows(config);
  }
}

/**
 * A saved model's state for another feature list (see remapInputRows): `map[i]` is the saved feature that new
 * feature i is, -1 for one added (its weights and optimiser moments start at 0).
 */
export function remapFeatures(state: ModelState, config: ModelConfig, map: readonly number[]): ModelState {
  return remapInputRows(state, inputRowsOf(state.inputs, config), map);
}

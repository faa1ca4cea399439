/**
 * The model stages' settings as types, apart from the modules that run TF.js: the public `tributary/models`
 * types (define.ts, through config.ts) name these, and a plugin project compiling against them must not
 * need TF.js's own declarations, which do not compile under `strict` without `skipLibCheck`.
 */

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export type ModelKind = 'logistic' | 'mlp' | 'gru';

export type OptimizerKind = 'sgd' | 'adam';

export interface ModelConfig {
  kind: ModelKind;
  /** L2 penalty on weights (not biases): `l2 * w` is added to their gradient, as River's GLM does. */
  l2: number;
  /** mlp: hidden layer sizes. */
  hidden: number[];
  /** mlp: dropout rate on hidden layers while learning. */
  dropout: number;
  /** gru: hidden units. */
  units: number;
  /** gru: events of the session the model sees. */
  sequence_length: number;
  /** gru: buckets the category is hashed into. */
  category_buckets: number;
  /** Seed of weight initialisation and dropout. */
  seed: number;
  /**
   * Positive rate the output bias starts at (its log-odds). Rare positives (4% of sessions buy)
   * otherwise cost a model hundreds of steps just to move its bias from 0.5, and every prediction
   * made before the first labels would be 0.5. The bias is then learnt like any other parameter.
   */
  prior: number;
}

/**
 * What a plugin's model is to the model stage (`defineModel`, define.ts), apart from the adapter that drives
 * it (custom.ts), whose declarations name TF.js's: the public `tributary/models` types need only these.
 */

import type { Logger } from 'pino';
import type { Metrics } from 'tributary';

/**
 * What `defineModel`'s `create` gets besides its options and the feature names: the stage's logger and
 * metrics, as a plugin's context has them (PluginContext.logger, .metrics).
 */
export interface ModelContext {
  /** The stage's pino logger: its lines carry the pipeline and the stage's label. */
  readonly logger: Logger;
  /**
   * The stage's metrics with its model's `name` as the `model` label, as the stage's own series have it:
   * `counter('nb_skipped_total', help)` is `tributary_nb_skipped_total{pipeline, stage, model}`. `create`
   * runs again on a restore (and after a throw): asking for a metric again gives the same series.
   */
  readonly metrics: Metrics;
}

/** What `defineModel`'s `create` returns: one model for the feature names it was made for. */
export interface CustomModel {
  /**
   * P(positive) of one sample: `features` holds its raw values in the order of the names `create` got
   * (a value the sample lacks reads 0, a non-finite one 0). The array is reused: copy what you keep.
   * A result that is not a number in [0, 1] is counted as an invalid score, neither scored nor learnt.
   */
  predict(features: Float32Array): number;
  /**
   * One learning step on `labels.length` labelled samples, in the order their labels came: `features` is
   * their rows one after another (`labels.length` x the number of features). Called only after every
   * prediction made before it (test-then-train). Absent: the model learns nothing (a fixed rule).
   */
  learn?(features: Float32Array, labels: Float32Array): void;
  /** Its state for the pipeline's checkpoints, as JSON (numbers, strings, arrays, plain objects). Absent: none to keep. */
  state?(): unknown;
  /** Takes back what {@link state} gave, on a restart from a checkpoint. */
  load?(state: unknown): void;
}

/** How the learner makes a custom model once it knows the features (at the first prediction, or from a snapshot). */
export interface CustomModelSource {
  /** The plugin's name: the report's `kind_of_model`, and the kind its snapshots are checked against. */
  kind: string;
  create(features: readonly string[], context: ModelContext): CustomModel;
  /**
   * Of `features` (the vector's names, as `create` got them), those the model reads, in their order: what its
   * `model_metrics` record (a backtest's report) lists. Absent: all of them, as a built-in model reads them all.
   */
  reads?(features: readonly string[]): readonly string[];
}

/**
 * `defineModel` (public as `tributary/models`): a plugin's own model as a model stage. The stage is the
 * built-in `intent-model` or `churn-model` operator (createIntentModel, createChurnModel) with the
 * plugin's model in place of the TF.js one: the same predictions and ids, label join, label buffer,
 * prequential scores, metrics, `drift` and `model_metrics` records, and snapshots. Only the model differs.
 *
 * Not offered to a custom model: `backend`, `optimizer`, `checkpoint` (a model file; the pipeline's
 * checkpoints keep its `state()`), `drift.action` (it turns the TF.js optimiser's knobs) and `batch.max_size`
 * (a custom model predicts each sample at once).
 */
import { defineOperator, FeatureSelector, fieldPath, valueAtPath, type ConfigFieldPath, type ConfigSchema, type EntryProblem, type JsonSchema, type OperatorPlugin, type OutlineEntry, type PipelineOutline, type PluginStatus } from 'tributary';
import { churnProperties, createChurnModel, type ChurnModelConfig } from './churn.js';
import { addModelStageType, bareMillisecondsWarnings, inapplicableFieldProblems, modelEmits, sessionizerProblems, modelEmitsOnlyWith, modelNameProblems, modelSideOutputs, modelSideOutputsOnlyWith, modelOperatorProperties, type ModelOperatorConfig } from './config.js';
import type { CustomModel, CustomModelSource, ModelContext } from './custom-model.js';
import { createIntentModel, labelTimeoutProblems } from './intent.js';

export type { CustomModel, ModelContext } from './custom-model.js';

/** What a model predicts: `intent`, P(a session ends in a purchase) at each of its events; `churn`, P(no return within `horizon`) at each session's close. */
export type ModelTask = 'intent' | 'churn';

export interface ModelDefinition<Config> {
  /** The stage's `type:` in YAML, and the `kind_of_model` of its reports. */
  name: string;
  task: ModelTask;
  status?: PluginStatus;
  /** One line for `tributary plugins` and the reference. */
  summary: string;
  /** Longer Markdown for the reference (what the stage shares with the built-in model of its task is added). */
  description?: string;
  /**
   * JSON Schema of the stage's `model` field: the model's own options, checked against `Config` as
   * defineOperator checks a plugin's config (every field described; defaults filled in).
   */
  config: ConfigSchema<Config>;
  /** Examples of the `model` field, shown in the reference (each must validate: `specProblems`). */
  examples?: Config[];
  /**
   * The field of the model's options holding the feature names and `*` patterns it reads (`features`; a
   * field of `Config`, so one renamed there and not here does not compile), for a
   * model that selects its features by name (with FeatureSelector): `validate` and `run` warn of a name or
   * pattern that no stage before it appends, at its item (`$.stages[3].model.features[1]`), as they do for a
   * transform's `featureSelectorField`; its `model_metrics` record (a backtest's report) lists the features
   * the list selects. Absent: not checked, and the report lists every feature of the vector.
   */
  featureSelectorField?: ConfigFieldPath<Config>;
  /**
   * Checks of the model's options that their schema cannot express (one option against another, against
   * the rest of the pipeline), run by `validate` and `run` before any factory, as a plugin's
   * `checkPipeline`: `config` is the `model` field (defaults filled in), `self` the stage's entry (its own
   * fields in `self.config`). Each problem's `field` is one of the options (`smoothing`, `features[1]`),
   * said at `model.<field>` with its line and column; one without `field` at `model`.
   */
  checkPipeline?(config: Config, pipeline: PipelineOutline, self: OutlineEntry): readonly EntryProblem[];
  /**
   * Makes the model for `features`, the names of the feature vector it will read (those of the first
   * sample it predicts, in their order, or of the model in a checkpoint it resumes from): look up the
   * positions you need here. Called once per run (and again on a restore from a checkpoint, then `load`).
   * `context`: the stage's logger and metrics (ModelContext), as other plugins get them in their context.
   */
  create(config: Config, features: readonly string[], context: ModelContext): CustomModel;
}

/** A custom model stage's config as written: the fields its task's built-in stage shares, and `model`. */
export interface CustomModelStageConfig<Config> extends Omit<ModelOperatorConfig, 'backend' | 'model' | 'optimizer' | 'checkpoint'> {
  /** churn only. */
  horizon?: string | number;
  /** churn only. */
  max_users?: number;
  model: Config;
}

const { backend: _backend, model: _model, optimizer: _optimizer, checkpoint: _checkpoint, drift, batch, ...shared } = modelOperatorProperties;
const { action: _action, factor: _factor, ...driftProperties } = drift.properties;

/** The built-in stages' fields a custom model takes, as they are there, save those said above. */
const customProperties = {
  ...shared,
  batch: {
    type: 'object',
    additionalProperties: false,
    description: "Learning in micro-batches: the model's `learn` gets this many labelled samples at a time. Predictions are made at once.",
    properties: {
      learn_size: { type: 'integer', minimum: 1, description: 'Labelled samples per `learn` call. Default: 256.' },
      max_delay: batch.properties.max_delay,
    },
  },
  drift: { ...drift, properties: driftProperties },
} satisfies Record<string, JsonSchema>;

/**
 * A problem of the model's options (`field` one of them) as one of the stage's: at `model.<field>`. An item
 * that is no problem (a string, a field that is no string) is left as it is, for the core to say so.
 */
function inModelField(problem: EntryProblem): EntryProblem {
  if (typeof problem !== 'object' || problem === null) return problem;
  const { field } = problem as { field?: unknown };
  if (field !== undefined && typeof field !== 'string') return problem;
  return { ...problem, field: field === undefined || field === '' ? 'model' : field.startsWith('[') ? `model${field}` : `model.${field}` };
}

const sharedText = (task: ModelTask): string =>
  `A custom ${task} model: predictions, labels, the label buffer, scores, metrics and records as \`${task}-model\`'s (see it), ` +
  "from this model's `predict` (raw feature values, not standardised) and `learn` (if it has one; without, no learning step is counted and the prediction version stays `<version>.0`). " +
  'Not offered: `backend`, `optimizer`, `checkpoint` (the pipeline\'s checkpoints keep its state), `drift.action`, `batch.max_size`; the `model_backend_info`, `model_backend_memory_bytes` and `model_learning_rate` metrics are not exported.';

/**
 * A model stage for `task` around the plugin's own model: `type: <name>` in YAML, with the `name`,
 * `label_buffer`, `metrics`, `drift`, `batch.learn_size`, `report` (and churn's `horizon`, `max_users`)
 * of the built-in stage of its task, and `model` for its own options.
 */
export function defineModel<Config>(definition: ModelDefinition<Config>): OperatorPlugin<CustomModelStageConfig<Config>> {
  const { name, task } = definition;
  addModelStageType(name);
  const modelField: JsonSchema = { ...(definition.config as JsonSchema), description: (definition.config as JsonSchema).description ?? `The ${name} model's options.`, default: {} };
  const properties: Record<string, JsonSchema> = { ...customProperties, ...(task === 'churn' ? churnProperties : {}), model: modelField };
  return defineOperator<CustomModelStageConfig<Config>>({
    name,
    role: 'model',
    state: 'global',
    // It appends no features: the stages after it (a transform, another custom model) are checked against the names before it.
    featureNames: () => [],
    // `model.<field>`: a field of the stage's `model` (which TypeScript cannot tell of a Config not yet known).
    ...(definition.featureSelectorField === undefined ? {} : { featureSelectorField: `model.${definition.featureSelectorField}` as ConfigFieldPath<CustomModelStageConfig<Config>> }),
    emits: modelEmits,
    emitsOnlyWith: modelEmitsOnlyWith as NonNullable<OperatorPlugin<CustomModelStageConfig<Config>>['emitsOnlyWith']>,
    sideOutputs: modelSideOutputs,
    sideOutputsOnlyWith: modelSideOutputsOnlyWith as NonNullable<OperatorPlugin<CustomModelStageConfig<Config>>['sideOutputsOnlyWith']>,
    status: definition.status ?? 'experimental',
    summary: definition.summary,
    description: definition.description ? `${definition.description}\n\n${sharedText(task)}` : sharedText(task),
    // Checked by hand, not by ConfigSchema: an intent stage's schema leaves out churn's horizon and max_users.
    config: { type: 'object', additionalProperties: false, properties } as unknown as ConfigSchema<CustomModelStageConfig<Config>>,
    ...(definition.examples ? { examples: definition.examples.map((model) => ({ model })) } : {}),
    checkPipeline: (config, pipeline, self) => {
      const { model: _options, ...stage } = config;
      // A plugin in JavaScript may return anything: what is no list is handed back as it is, for the core to
      // say as it says any hook's wrong result (naming this plugin and the hook), not a TypeError from `map`.
      const options: unknown = definition.checkPipeline === undefined ? [] : definition.checkPipeline(config.model, pipeline, self);
      if (!Array.isArray(options)) return options as readonly EntryProblem[];
      const own = task === 'intent' ? [...modelNameProblems(stage, pipeline, self), ...labelTimeoutProblems(stage, pipeline, self)] : modelNameProblems(stage, pipeline, self);
      // The model's own first: an item of the wrong shape is said by its index in the list the model returned.
      return [...(options as readonly EntryProblem[]).map(inModelField), ...own, ...sessionizerProblems(pipeline, self), ...inapplicableFieldProblems(stage, true), ...bareMillisecondsWarnings(stage)];
    },
    create(config, context) {
      const { model: options, ...stage } = config;
      const source: CustomModelSource = { kind: name, create: (features, model) => definition.create(options, features, model) };
      // A model that selects its features by name reads those its list selects, not the whole vector: what its report lists.
      if (definition.featureSelectorField !== undefined) {
        const patterns = valueAtPath(options as object, fieldPath(definition.featureSelectorField) ?? [definition.featureSelectorField]);
        if (Array.isArray(patterns) && patterns.every((pattern) => typeof pattern === 'string')) {
          source.reads = (features) => Array.from(new FeatureSelector(patterns, () => undefined).indices(features), (index) => features[index]!);
        }
      }
      return task === 'intent' ? createIntentModel(stage, context, source) : createChurnModel(stage as ChurnModelConfig, context, source);
    },
  });
}

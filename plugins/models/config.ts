/** The config every model operator shares (schema and type), with its defaults resolved in code. */
import { bareMillisecondsWarning, madeBefore, parseDuration, timerDurationMax, type EntryProblem, type JsonSchema, type OutlineEntry, type OutputCondition, type PipelineOutline, type PluginContext } from 'tributary';
import type { DriftDetectorKind } from './drift.js';
import type { BackendChoice, ModelConfig, ModelKind, OptimizerKind } from './settings.js';
import { defaultExactAucLimit } from './prequential.js';

export type DriftAction = 'none' | 'reset_optimizer' | 'raise_learning_rate';

/** As written in YAML (snake_case, every field optional but `model.kind`). */
export interface ModelOperatorConfig {
  name?: string;
  version?: string;
  backend?: BackendChoice;
  model?: Partial<ModelConfig> & { kind?: ModelKind };
  optimizer?: { kind?: OptimizerKind; learning_rate?: number };
  batch?: { max_size?: number; learn_size?: number; max_delay?: string | number };
  label_buffer?: { max_size?: number; timeout?: string | number };
  metrics?: { window?: number; calibration_bins?: number; exact_auc_limit?: number };
  drift?: {
    detector?: DriftDetectorKind;
    block?: number;
    delta?: number;
    threshold?: number;
    min_instances?: number;
    clock?: number;
    max_buckets?: number;
    min_window_length?: number;
    grace_period?: number;
    action?: DriftAction;
    factor?: number;
  };
  checkpoint?: { dir: string; every?: number; warm_start?: boolean };
  report?: boolean;
  emit_labels?: boolean;
  shadow?: boolean;
}

/** With every default filled in. */
export interface ResolvedModelConfig {
  name: string;
  version: string;
  backend: BackendChoice;
  model: ModelConfig;
  optimizer: { kind: OptimizerKind; learning_rate: number };
  batch: { maxSize: number; learnSize: number; maxDelayMs: number };
  labelBuffer: { maxSize: number; timeoutMs: number };
  metrics: { window: number; calibrationBins: number; exactAucLimit: number };
  drift: {
    detector: DriftDetectorKind;
    block: number;
    /** page-hinkley: tolerated rise; adwin: significance of the cut test. */
    delta: number;
    /** page-hinkley only. */
    threshold: number;
    min_instances: number;
    /** adwin only (River's names and defaults). */
    clock: number;
    max_buckets: number;
    min_window_length: number;
    grace_period: number;
    action: DriftAction;
    factor: number;
  };
  checkpoint: { dir: string; every: number; warmStart: boolean } | undefined;
  report: boolean;
  emitLabels: boolean;
  /** Its records go to the side output {@link shadowOutput}, not the main stream (a challenger beside the live model). */
  shadow: boolean;
}

/** `label_buffer.timeout` when not written (intent's pipeline check reads it too). */
export const defaultLabelTimeout = '1d';

/** `defaultPrior`: the task's prior positive rate (see `model.prior`). */
export function resolveConfig(config: ModelOperatorConfig, label: string, defaultPrior = 0.05): ResolvedModelConfig {
  const kind = config.model?.kind ?? 'logistic';
  const detector = config.drift?.detector ?? 'page-hinkley';
  return {
    name: config.name ?? label,
    version: config.version ?? '1',
    backend: config.backend ?? 'auto',
    model: {
      kind,
      l2: config.model?.l2 ?? 1e-4,
      hidden: config.model?.hidden ?? [32, 16],
      dropout: config.model?.dropout ?? 0,
      units: config.model?.units ?? 16,
      sequence_length: config.model?.sequence_length ?? 12,
      category_buckets: config.model?.category_buckets ?? 64,
      seed: config.model?.seed ?? 1,
      prior: config.model?.prior ?? defaultPrior,
    },
    optimizer: { kind: config.optimizer?.kind ?? 'adam', learning_rate: config.optimizer?.learning_rate ?? (kind === 'logistic' ? 0.05 : 0.005) },
    batch: {
      maxSize: config.batch?.max_size ?? 256,
      learnSize: config.batch?.learn_size ?? config.batch?.max_size ?? 256,
      maxDelayMs: parseDuration(config.batch?.max_delay ?? '200ms'),
    },
    labelBuffer: { maxSize: config.label_buffer?.max_size ?? 100_000, timeoutMs: parseDuration(config.label_buffer?.timeout ?? defaultLabelTimeout) },
    metrics: { window: config.metrics?.window ?? 1000, calibrationBins: config.metrics?.calibration_bins ?? 10, exactAucLimit: config.metrics?.exact_auc_limit ?? defaultExactAucLimit },
    drift: {
      detector,
      block: config.drift?.block ?? (detector === 'adwin' ? ADWIN_BLOCK : 200),
      delta: config.drift?.delta ?? (detector === 'adwin' ? 0.002 : 0.01),
      threshold: config.drift?.threshold ?? 2,
      min_instances: config.drift?.min_instances ?? 20,
      clock: config.drift?.clock ?? 32,
      max_buckets: config.drift?.max_buckets ?? 5,
      min_window_length: config.drift?.min_window_length ?? 5,
      grace_period: config.drift?.grace_period ?? 10,
      action: config.drift?.action ?? 'none',
      factor: config.drift?.factor ?? 2,
    },
    checkpoint: config.checkpoint ? { dir: config.checkpoint.dir, every: config.checkpoint.every ?? 0, warmStart: config.checkpoint.warm_start ?? true } : undefined,
    report: config.report ?? false,
    emitLabels: config.emit_labels ?? false,
    shadow: config.shadow ?? false,
  };
}

/**
 * The side output a model stage with `shadow: true` sends every record it makes to (predictions, labels,
 * unlabelled, drift, model_metrics): a challenger scores and learns beside the live model while the sinks of
 * the main stream (the topic consumers read) get the live model's records alone. PluginSpec.sideOutputs.
 */
export const shadowOutput = 'shadow';
export const modelSideOutputs = [shadowOutput] as const;
export const modelSideOutputsOnlyWith: { readonly [output: string]: OutputCondition<ModelOperatorConfig> } = {
  [shadowOutput]: { condition: 'shadow: true', test: (config) => config.shadow === true },
};

/**
 * What every model operator emits (PluginSpec.emits): a prediction per input it scores always; `drift` when
 * its detector fires, so only with one; `model_metrics` at end of input, only with `report: true` (as the
 * backtest sets it); `label` per labelled prediction it scores and `unlabelled` per prediction it gives up, only
 * with `emit_labels: true`. A sink asking for one of these while its model is not so configured is a config error.
 */
export const modelEmits = ['prediction', 'drift', 'model_metrics', 'label', 'unlabelled'] as const;
export const modelEmitsOnlyWith: { readonly [kind: string]: OutputCondition<ModelOperatorConfig> } = {
  drift: { condition: "a drift detector: drift.detector not 'none'", test: (config) => config.drift?.detector !== 'none' },
  model_metrics: { condition: 'report: true', test: (config) => config.report === true },
  label: { condition: 'emit_labels: true', test: (config) => config.emit_labels === true },
  unlabelled: { condition: 'emit_labels: true', test: (config) => config.emit_labels === true },
};

const modelNamesKey = 'tributary.models.names';

/** The model stages (the built-in ones and each defineModel's): each claims its `name` in its pipeline. */
const modelStageTypes = new Set(['intent-model', 'churn-model']);

/** A stage type whose `name` is a model name, unique in its pipeline as the built-in models' are (defineModel's plugins). */
export function addModelStageType(type: string): void {
  modelStageTypes.add(type);
}

/**
 * Why a model stage may not take `name`: prediction ids, metrics.json's entries and the saved model's
 * file are keyed by the name, so two models of one name would emit each other's ids and overwrite
 * each other's results.
 */
function nameTaken(name: string, otherStage: string): string {
  return `'${name}' is already the model name of stage ${otherStage}; prediction ids, metrics and the saved model are keyed by it, so give each model stage its own`;
}

/**
 * The model stages' checkPipeline: `name` (default: the stage label) belongs to the first model stage
 * that takes it; a later one is a config error at its `name` (said by validate, before any factory).
 */
export function modelNameProblems(config: ModelOperatorConfig, pipeline: PipelineOutline, self: OutlineEntry): EntryProblem[] {
  const nameOf = (entry: OutlineEntry): string => (typeof entry.config.name === 'string' ? entry.config.name : entry.label);
  const name = config.name ?? self.label;
  const first = pipeline.stages.find((entry) => modelStageTypes.has(entry.type) && nameOf(entry) === name);
  return first === undefined || first === self ? [] : [{ field: 'name', message: nameTaken(name, first.label) }];
}

/**
 * Takes `name` for this model stage in its pipeline (PluginContext.shared), or throws if another stage
 * has it: validate and PipelineRunner say so first ({@link modelNameProblems}); this is for stages made outside a runner.
 */
export function claimModelName(context: PluginContext, name: string): void {
  if (!context.shared) return;
  let names = context.shared.get(modelNamesKey) as Map<string, string> | undefined;
  if (!names) context.shared.set(modelNamesKey, (names = new Map()));
  const other = names.get(name);
  if (other !== undefined) throw new Error(`name: ${nameTaken(name, other)}`);
  names.set(name, context.label);
}

/** The model fields each kind reads: another kind's would be taken and ignored. */
const kindFields: readonly [field: 'hidden' | 'dropout' | 'units' | 'sequence_length' | 'category_buckets', kind: ModelKind][] = [
  ['hidden', 'mlp'],
  ['dropout', 'mlp'],
  ['units', 'gru'],
  ['sequence_length', 'gru'],
  ['category_buckets', 'gru'],
];

/** The drift fields each detector reads (`block` and `delta` both do; `none` reads none). */
const detectorFields: readonly [field: 'threshold' | 'min_instances' | 'clock' | 'max_buckets' | 'min_window_length' | 'grace_period', detector: DriftDetectorKind][] = [
  ['threshold', 'page-hinkley'],
  ['min_instances', 'page-hinkley'],
  ['clock', 'adwin'],
  ['max_buckets', 'adwin'],
  ['min_window_length', 'adwin'],
  ['grace_period', 'adwin'],
];

/**
 * Fields set for a model kind, drift detector or action other than the one configured, which the stage
 * would take and ignore: `hidden: [64]` without `kind: mlp` is a logistic model (the default kind), and
 * `threshold` beside `detector: adwin` tunes nothing. Config errors at the field (the model stages'
 * checkPipeline), as an unknown field is; warnings where the detector or action is switched off (`none`),
 * as a tuned setting may be kept to switch it on again. `custom`: a defineModel stage, whose `model` is its own.
 */
export function inapplicableFieldProblems(config: ModelOperatorConfig, custom = false): EntryProblem[] {
  const problems: EntryProblem[] = [];
  if (!custom) {
    const kind = config.model?.kind ?? 'logistic';
    const kindText = config.model?.kind === undefined ? `${kind} (the default kind)` : kind;
    for (const [field, reads] of kindFields) {
      if (config.model?.[field] === undefined || kind === reads) continue;
      problems.push({ field: `model.${field}`, message: `is read by kind ${reads} only, and this model is ${kindText}: set model.kind: ${reads}, or remove ${field}` });
    }
  }
  const drift = config.drift;
  if (drift === undefined) return problems;
  const detector = drift.detector ?? 'page-hinkley';
  const detectorText = drift.detector === undefined ? `${detector} (the default detector)` : detector;
  // Switched off (detector none, action none), a tuned setting may be kept to switch it on again: a warning.
  if (detector === 'none') {
    for (const field of ['block', 'delta', ...detectorFields.map(([name]) => name), 'action', 'factor'] as const) {
      if (drift[field] !== undefined) problems.push({ field: `drift.${field}`, severity: 'warning', message: 'does nothing while drift.detector is none (no drift is detected): remove it, or name a detector' });
    }
    return problems;
  }
  for (const [field, reads] of detectorFields) {
    if (drift[field] === undefined || detector === reads) continue;
    problems.push({ field: `drift.${field}`, message: `is read by detector ${reads} only, and this one is ${detectorText}: set drift.detector: ${reads}, or remove ${field}` });
  }
  const action = drift.action ?? 'none';
  if (drift.factor !== undefined && action !== 'raise_learning_rate') {
    problems.push({
      field: 'drift.factor',
      ...(action === 'none' ? { severity: 'warning' as const } : {}),
      message: `is read by action raise_learning_rate only, and this one is ${drift.action === undefined ? 'none (the default action)' : action}: set drift.action: raise_learning_rate, or remove factor`,
    });
  }
  if (!custom && action === 'reset_optimizer' && (config.optimizer?.kind ?? 'adam') === 'sgd') {
    problems.push({ field: 'drift.action', message: 'reset_optimizer resets adam\'s moment estimates, and sgd keeps none, so a drift would change nothing: use raise_learning_rate, or optimizer.kind: adam' });
  }
  return problems;
}

/** Event-time spans of a model stage written as a bare number under a second (`timeout: 7`: 7 ms): warnings. */
export function bareMillisecondsWarnings(config: ModelOperatorConfig & { horizon?: string | number }): EntryProblem[] {
  return [bareMillisecondsWarning('label_buffer.timeout', config.label_buffer?.timeout), bareMillisecondsWarning('horizon', config.horizon)].flatMap((warning) => warning ?? []);
}

/**
 * A model stage with no sessionizer before it (no stage making `session` summaries, where every stage
 * before it says what it makes): it learns from the summaries alone, so it would learn and score nothing,
 * silently. A config error at the entry.
 */
export function sessionizerProblems(pipeline: PipelineOutline, self: OutlineEntry): EntryProblem[] {
  if (madeBefore(pipeline, self, 'session') !== false) return [];
  return [{ message: 'needs a sessionizer before it: its labels come from the session summaries one emits, so without one it would learn and score nothing; put a `sessionizer` stage before it' }];
}

/**
 * adwin reads finer blocks than page-hinkley (its clock already spaces its tests out), but not single
 * losses: a session's labels come together, and on REES46 per-label ADWIN fired 23 times where blocks
 * of 20 (and page-hinkley) fired none.
 */
const ADWIN_BLOCK = 20;

const duration = (description: string, least?: string, most?: string): JsonSchema => ({
  $ref: 'tributary:duration',
  description,
  ...(least === undefined ? {} : { minDuration: least }),
  ...(most === undefined ? {} : { maxDuration: most }),
});

/** Schema properties shared by `intent-model` and `churn-model`. */
export const modelOperatorProperties = {
  name: { type: 'string', minLength: 1, description: 'Model name on predictions and metrics (and of its saved model); one per model stage of a pipeline. Default: the stage label.' },
  version: { type: 'string', description: 'Version prefix on predictions, as text (quote a number: `version: "2"`); the model\'s learning steps are appended (`2.340`): every step its weights have taken since it was made, across restarts from the pipeline\'s checkpoint and warm starts from a saved file (`checkpoint`) alike, so predictions of one version come from the same weights and a warm-started model goes on from the saved one\'s version (its steps are the `model_metrics` record\'s `warmStart.steps`, a backtest\'s `warmStarts`). A model started afresh (no saved file, `checkpoint.warm_start: false`) begins at `<version>.0`; an edited prefix applies at once, the steps going on under it. A restart from the pipeline\'s checkpoint, an older one too, gives each prediction it makes again the version it had (a consumer drops duplicates by model, version and id); one from a checkpoint written before 2026-12-07 by a warm-started model goes on numbering as that build did (its pipeline\'s steps alone). Default: `1`.' },
  backend: {
    enum: ['auto', 'tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'],
    description:
      'TensorFlow.js backend; auto tries tensorflow-gpu, tensorflow, wasm, then cpu. webgpu (experimental, only when named: needs the packages `webgpu` and `@tensorflow/tfjs-backend-webgpu` and a GPU with a Vulkan driver) runs each model in a worker thread on the GPU; it pays only with large micro-batches (`gru` from batch.max_size 1024, `mlp` from 4096). Default: auto.',
  },
  model: {
    type: 'object',
    additionalProperties: false,
    description: 'The model. A field only another kind reads (`hidden` without `kind: mlp`) is a config error.',
    properties: {
      kind: { enum: ['logistic', 'mlp', 'gru'], description: 'logistic (L2), mlp (ReLU hidden layers, dropout; then a logistic output) or gru (a GRU over the session\'s last `sequence_length` events: each one\'s embedded type and hashed category, log times since the previous event and since the session start, log price; its last state joined with the event\'s feature vector, then a logistic output). Default: logistic.' },
      l2: { type: 'number', minimum: 0, description: 'L2 penalty on weights, as River\'s `l2`: each step adds `l2` times a weight to its gradient (the gradient of l2/2 ||w||^2), at every weight (River\'s at the weights of the features a sample has, its dict\'s keys: a dense vector has them all); biases are not penalised. A bias learns with its weights\' optimizer and rate, from the log-odds of `prior` (River\'s `LogisticRegression` starts its intercept at 0 and moves it by plain SGD at its own `intercept_lr`, 0.01). Default: 1e-4.' },
      hidden: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1 }, description: 'mlp: hidden layer sizes (ReLU), at least one (a model without one is `logistic`). Default: [32, 16].' },
      dropout: { type: 'number', minimum: 0, maximum: 0.9, description: 'mlp: dropout rate while learning. Default: 0.' },
      units: { type: 'integer', minimum: 1, description: 'gru: hidden units. Default: 16.' },
      sequence_length: { type: 'integer', minimum: 1, maximum: 256, description: 'gru: last events of the session it reads. Default: 12.' },
      category_buckets: { type: 'integer', minimum: 1, description: 'gru: buckets categories are hashed into. Default: 64.' },
      seed: { type: 'integer', description: 'Seed of initial weights and dropout. Default: 1.' },
      prior: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'Positive rate the output bias starts at (its log-odds), then learnt: what the model predicts before its first labels. Default: 0.05 for intent-model, 0.2 for churn-model.' },
    },
  },
  optimizer: {
    type: 'object',
    additionalProperties: false,
    description: 'Optimiser.',
    properties: {
      kind: { enum: ['sgd', 'adam'], description: 'sgd: plain gradient descent, each weight moved by `learning_rate` times its gradient (mean over the batch); adam: Adam (beta1 0.9, beta2 0.999, epsilon 1e-7, as TF.js\'s), which scales each weight\'s step by its gradients\' running moments. Default: adam.' },
      learning_rate: { type: 'number', exclusiveMinimum: 0, description: 'Default: 0.05 for logistic, 0.005 otherwise.' },
    },
  },
  batch: {
    type: 'object',
    additionalProperties: false,
    description: 'Micro-batches for predicting and learning: TF.js pays per op call, so samples are batched. `logistic` predicts each event at once on the host (a dot product costs less than a kernel call) and batches only its learning.',
    properties: {
      max_size: { type: 'integer', minimum: 1, description: 'Samples per prediction micro-batch (mlp, gru; `logistic` predicts each event at once), and the default of `learn_size` (every kind, `logistic` too). Default: 256.' },
      learn_size: { type: 'integer', minimum: 1, description: 'Labelled samples per learning step. Above max_size: fewer TF.js calls per label, but fewer optimiser steps, which can learn worse on short streams. Default: max_size.' },
      max_delay: duration('Longest a sample waits (wall clock) before its batch runs anyway; 0 to batch by size only (fully deterministic). Either way pending predictions are made before every learning step (test-then-train: no prediction uses a label given after its event) and at the end of input. Does not apply to replayed input (`tributary backtest`), which is always batched by size. Default: 200ms.', undefined, timerDurationMax),
    },
  },
  label_buffer: {
    type: 'object',
    additionalProperties: false,
    description: 'Predictions waiting for their label (delayed labels).',
    properties: {
      max_size: { type: 'integer', minimum: 1, description: 'Predictions held for their labels at most. While it is full, the predictions held keep their place and a new one is not held: it is still predicted and emitted, but never scored against its label or learnt from, and is counted (`model_label_buffer_overflow_total`, an `unlabelled` record with reason `overflow`, the report\'s counts, a warning at the first, said once, and one at the end of input; its label, when it comes, is a late label). It must hold the predictions of one label delay (intent: the events of the sessions still open; churn: the sessions closed within `horizon`), else the model learns from only about `max_size` predictions per label delay: docs/operations.md, Sizing. Default: 100000.' },
      timeout: duration('Event time after which an unlabelled prediction is dropped (and counted). Default: 1d.', '1ms'),
    },
  },
  metrics: {
    type: 'object',
    additionalProperties: false,
    description:
      'Prequential metrics. Log loss clips each score to [1e-7, 1 - 1e-7], so one confident miss costs at most 16.1 (River\'s `LogLoss` clips at 1e-15, up to 34.5): ' +
      'next to 1 a float32 score, as batch predictions are, steps by 6e-8, and one rounded to exactly 1 is no certainty. The Brier score is not clipped. ' +
      'The AUCs count ties half and are null while the labels they cover are all of one class.',
    properties: {
      window: { type: 'integer', minimum: 2, description: 'Labels in the sliding window of the windowed AUC and log loss. Default: 1000.' },
      calibration_bins: { type: 'integer', minimum: 1, maximum: 100, description: 'Calibration bins. Default: 10.' },
      exact_auc_limit: {
        type: 'integer',
        minimum: 0,
        description:
          'By default (0) the cumulative AUC is counted over 65,536 score bins, pairs within one bin counting half (on the demo it differs ' +
          'from the exact figure by 2e-8 for intent and 3e-5 for churn, on REES46 by 5e-5). Above 0: the distinct scores it keeps to stay exact (ties count half), ' +
          '24 bytes each (up to 48 with growth) and about 16 characters each in every checkpoint, at most one per label, at about 1 µs per label; ' +
          'past it the scores are freed and later pairs within one bin count half (the pairs counted before stay exact; `aucExact` in the ' +
          'model_metrics record turns false). Resumed from a checkpoint taken under another limit, the pairs counted binned before stay so (`aucExact` stays false) and ' +
          'later ones follow this limit; the summary line says which. The windowed AUC is always exact. Default: 0.',
      },
    },
  },
  drift: {
    type: 'object',
    additionalProperties: false,
    description:
      'Drift detection on the prequential log loss: Page-Hinkley (a sustained rise of the mean loss) or ADWIN (Bifet & Gavaldà\'s ADWIN2, as River\'s `drift.ADWIN`: ' +
      'an adaptive window of recent losses, cut where its older and newer parts\' means differ significantly, either way). A drift emits a `drift` record. ' +
      'Page-Hinkley here is one-sided (a fall of the loss, the model doing better, is no drift) and forgets nothing: River\'s `drift.PageHinkley` with ' +
      '`mode=\'up\'`, `alpha=1` and the same `delta`, `threshold` and `min_instances` signals at the same blocks. Its defaults are for block means, not River\'s ' +
      '(`delta` 0.005, `threshold` 50, `min_instances` 30, for single values), which on block means are slow to fire. ' +
      'A field only another detector or action reads (`threshold` with `adwin`, `factor` with `reset_optimizer`) is a config error, and one that `detector: none` or `action: none` leaves unread a warning.',
    // adwin's delta is a probability: 0 or 1 and above would leave its cut test never true (a detector that never fires).
    if: { properties: { detector: { const: 'adwin' } }, required: ['detector'] },
    then: { properties: { delta: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } } },
    properties: {
      detector: { enum: ['page-hinkley', 'adwin', 'none'], description: 'Default: page-hinkley.' },
      block: {
        type: 'integer',
        minimum: 1,
        description:
          'The detector reads the mean log loss of each block of this many labels, each label once: the predictions one label scores (an intent session\'s, all labelled ' +
          `at its end) count as the mean of their losses, since they rise and fall together. A session labelled again (a late event reopened it: its updated summary labels the predictions made since) ` +
          `still counts once: its new losses join its mean while that is in the open block, and are left out of the detector's input once that block was read (they are scored all the same). ` +
          `So does a session a late event merged into another: the merged session's summary labels its predictions in its unit, and those its own summary labelled join that unit (whether either bought) while both are in the open block (or either's run still open, or waiting for losses its batch has not scored yet); once the detector has read the block holding one part, the other stays a unit of its own in a later block (a block read cannot be taken back, and no block holds the session twice). A new session under a session id from the data that came back (its first event) is a unit of its own. ` +
          `Default: 200 for page-hinkley, ${ADWIN_BLOCK} for adwin.`,
      },
      delta: {
        type: 'number',
        minimum: 0,
        description: 'page-hinkley: tolerated rise of the block-mean loss (default 0.01). adwin: significance of the cut test, in (0, 1); lower gives fewer false alarms and later detections (default 0.002).',
      },
      threshold: { type: 'number', exclusiveMinimum: 0, description: 'page-hinkley: cumulative excess (in block-mean loss) that signals drift. Default: 2.' },
      min_instances: { type: 'integer', minimum: 1, description: 'page-hinkley: blocks before the test may fire. Default: 20.' },
      clock: { type: 'integer', minimum: 1, description: 'adwin: cuts are tested every this many blocks. Default: 32.' },
      max_buckets: { type: 'integer', minimum: 2, description: 'adwin: buckets of each size before two merge (the window\'s resolution). Default: 5.' },
      min_window_length: { type: 'integer', minimum: 1, description: 'adwin: blocks each side of a cut needs at least. Default: 5.' },
      grace_period: { type: 'integer', minimum: 1, description: 'adwin: blocks before the first test (after a drift too: the window starts afresh). Default: 10.' },
      action: {
        enum: ['none', 'reset_optimizer', 'raise_learning_rate'],
        description:
          'What a drift does besides emitting a `drift` record. `reset_optimizer`: with `optimizer.kind: adam`, zeroes its moment estimates and restarts its step count ' +
          '(keeping the weights), so the steps after the drift follow the new gradients, not averages of the old ones; with `sgd`, which keeps no such state, ' +
          'it would change nothing, and is a config error (use `raise_learning_rate`). `raise_learning_rate`: multiplies the learning rate by `factor` (either optimiser). Default: none.',
      },
      factor: { type: 'number', minimum: 1, description: 'raise_learning_rate: multiplier (it decays back by 1% per step). Default: 2.' },
    },
  },
  checkpoint: {
    type: 'object',
    additionalProperties: false,
    required: ['dir'],
    description: 'Saves the model (weights, optimiser, normaliser) to DIR/NAME.model.json; warm-starts from it. A run that resumes from the pipeline\'s checkpoint uses the model that checkpoint holds instead (logged): the file warm-starts a run with no pipeline checkpoint (a new pipeline, a replay, a backtest). A saved model that no longer fits the config (another kind, hidden sizes, units, optimiser) stops the run (TRIB_ERR_CHECKPOINT, exit 2) and is left as it was, as does one whose features the stages before the model now make otherwise under the same names (a hash-features\' width or fields, a transform added, removed or moved: the file records those stages, since 2026-12-07), whose weights would be read for other values; an edited `optimizer.learning_rate` applies to it. The file is the model\'s name in that folder, read at start and saved over, and locked while a run may save it (`NAME.model.json.lock`): a second model stage given the same file (the same model name and `dir` in another pipeline, or another run of this one) is refused at its start (TRIB_ERR_OUTPUT_LOCKED, exit 2, naming the holder; another host\'s lock is waited for up to `--lock-wait`), where each saved over the other\'s model. The file records the pipeline that saved it, its name and (since 2026-12-07) its file: a run of another pipeline after it, or of another file of the same name (a copy), is warned that it replaces that model at close, naming both, whether it warm-starts from it or starts afresh (`warm_start: false`); give the second its own `dir`. A file of a format a later release writes (a rollback) stops the run (TRIB_ERR_CHECKPOINT, exit 2), left as it was. A backtest (replayed input) reads the saved model to warm-start but never writes it (nor locks it), so it is reproducible and leaves the file of a live model alone; it warns of each model it warm-starts, whose scores may count data the saved model learnt (`warm_start: false` for a cold score). It saves the model it learnt to its report folder instead (`REPORT/models/NAME.model.json`, with or without this section): copied into DIR before a run\'s first start, it warm-starts that run (docs/operations.md, From a backtest to a live model).',
    properties: {
      dir: { type: 'string', minLength: 1, description: 'Folder, relative to the pipeline file.' },
      every: { type: 'integer', minimum: 0, description: 'Also save every N labels (0: only when the pipeline closes), in the background: the stage goes on while the disk syncs, and a save due while one is in flight is made once after it. A failed save is logged (the previous file stays) and the next one retries; the save at close is awaited, and its failure fails the run. Default: 0.' },
      warm_start: { type: 'boolean', description: 'Load the saved model at start when it exists. Default: true.' },
    },
  },
  report: {
    type: 'boolean',
    description:
      'Emit a `model_metrics` record (summary, its `window` the same over the last `metrics.window` labels; ROC; calibration, its bins; `calibrationError`: `{ece, maxGap}` over those bins, the expected calibration error (each bin\'s gap between its mean score and its positive rate, weighted by its share of the labels: `model_calibration_error`\'s figure) and the largest gap of a bin holding a label, null before the first label; timeline; `timelineWindow`: what the timeline\'s windowed figures span, `{labels, firstPointAt, setting}` (the last `metrics.window` labels, its first point after a quarter of them, and `metrics.window`, the field that sets both), which a backtest\'s report says; and `counts`: `predictions`, `labels`, `learnSteps`, `overflow`, `expired`, ' +
      '`unlabelledAtEnd`, `drifts`, `lateLabels` (labels that came for a prediction already dropped, as `model_late_labels_total`), `invalidScores`, `withdrawn` (as `model_predictions_withdrawn_total`), `erased` (predictions of a user an erasure request erased before their label came: the pipeline\'s `erasure` section), `scoredBeforeLearning` (labels scored before a cold model\'s first learning step: they score the untrained model, a logistic one\'s constant prior; one predicted before that step but labelled after it is not counted); ' +
      'each prediction is counted once: `predictions` = `labels` + `overflow` + `expired` + `unlabelledAtEnd` + `withdrawn` + `invalidScores` + `erased`; `warmStart`: the saved model\'s `file` and learning `steps` it started from (every step it took, over its warm starts, a drift\'s `reset_optimizer` included), or null, and (a model with a `checkpoint` section) `warmStartSetting`: `checkpoint.warm_start`, the field that starts it cold, which a backtest\'s report says beside a warm start; `skippedFeatureValues`: per feature, the values the model read without them, `absent` (its input lacked the feature) and `nonFinite` (NaN, +-Infinity), each read at the feature\'s running mean and left out of its statistics, over the model\'s life (warm starts included, as its saved normaliser counts them; `{}` where none); ' +
      '`scoreReason`: why its AUC is null or measures nothing learnt, in a few words (`no label`, `one class: every label negative` or `positive`, `every label scored before it learnt`, `diverged: N of M predictions not a number`), as the end-of-run log line says it beside the AUC, or null; ' +
      '`scoreNotes`: what its scores do not show by themselves, each said whole (why a score is null, how many labels were scored before its first learning step, how many predictions were not a number), empty when there is nothing to say; ' +
      'a backtest shows these two beside the scores; and `shadow`: this stage\'s `shadow`, true for a challenger, which a backtest\'s report sets beside the live model of its task) at end of input; the backtest turns it on. Default: false.',
  },
  shadow: {
    type: 'boolean',
    description:
      'Score and learn as ever, but send every record the stage makes (`prediction`, `label`, `unlabelled`, `drift`, `model_metrics`) to the side output `shadow` instead of the main stream: ' +
      'a challenger beside the live model (another kind, learning rate or feature set), which the sinks of the main stream (the topic consumers read) never get; a sink with `outputs: [shadow]` takes its records. ' +
      'Its metrics, end-of-run line, model file and checkpoint state are as any model stage\'s (by its `name` and `label`), and every input record still passes through to the stages after it. ' +
      'Moving `shadow: true` from one model stage to another promotes the challenger: with their `label`s kept, both resume their learnt state from the checkpoint (docs/operations.md, Trying a challenger model). Default: false.',
  },
  emit_labels: {
    type: 'boolean',
    description:
      'Emit a `label` record for each prediction the model scores, when its label comes (`predictionId`: the `id` of the prediction it resolves, `model`, `task`, `userId`, `sessionId`, `time`: the event time it was scored at, `label`: 1 a purchase or no return, 0 not), so that a consumer joins predictions to their outcomes by id (one label per prediction: labels are final) and computes the prequential metrics from the output alone: ' +
      'the AUC of the labelled predictions\' scores is the model\'s cumulative AUC (`model_auc_cumulative`, the `model_metrics` record\'s `summary.auc`; exact up to `metrics.exact_auc_limit` labels). A prediction that will never be labelled gets an `unlabelled` record instead, when the model gives it up (`predictionId`, `model`, `task`, `userId`, `sessionId`, `reason`: `overflow` (a full label buffer), `expired` (`label_buffer.timeout`, or no label can come: an evicted session, a user forgotten for `max_users`), `handed_over` (churn: its user\'s Kafka partition moved to another member), `withdrawn`, `unlabelled_at_end`, `invalid_score` (its score not a number)), never before its prediction: every prediction gets exactly one of the two, ' +
      'and the `unlabelled` records by reason are the `model_metrics` record\'s `counts` (`overflow`, `expired` with `handed_over`, `withdrawn`, `unlabelledAtEnd`, `invalidScores`). docs/records.md lists every field. Default: false.',
  },
} satisfies Record<string, JsonSchema>;

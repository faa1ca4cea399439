/**
 * The records that flow through a pipeline.
 *
 * Every record carries a `kind` so sinks can choose what they take and the runtime can count by kind.
 * The canonical clickstream event is kind `event`; operators add their own kinds (`session`,
 * `prediction`, ...). Watermarks travel in-band, as Flink's do, so an operator sees them in order
 * with the records they bound.
 */

/** Well-known event types; any other string is allowed too. */
export type KnownEventType = 'view' | 'cart' | 'remove_from_cart' | 'purchase';

/** The well-known event types: the ones the built-in feature operators count by type, and a model's purchase. */
export const KNOWN_EVENT_TYPES: readonly KnownEventType[] = Object.freeze(['view', 'cart', 'remove_from_cart', 'purchase'] as const);

/** Where a record came from: enough to find the raw input again. */
export interface Origin {
  /** Label of the source that produced it. */
  source: string;
  /** File path, topic, or `stdin`. */
  file?: string;
  /** 1-based line (files) or row number. */
  line?: number;
  /** Byte offset of the record's start (files) or Kafka offset. */
  offset?: number;
  partition?: number;
  /**
   * Set by partitioned sources (Kafka), e.g. `clicks-3`: the unit of scale-out. Keyed stages run one
   * instance per partition id, and that state moves with the partition on a rebalance.
   */
  partitionId?: string;
}

/** Key of a record's {@link Origin}; symbol-keyed so JSON.stringify leaves it out. */
export const ORIGIN: unique symbol = Symbol.for('tributary.origin');

export function originOf(record: object): Origin | undefined {
  return (record as { [ORIGIN]?: Origin })[ORIGIN];
}

/**
 * The one canonical clickstream event every source maps its raw records to. The record types are type
 * aliases, not interfaces, so that each is a StreamRecord too: an operator emits a `Prediction` it built
 * (`emit(prediction)`) and sends a `ClickEvent` to a side output without a cast.
 */
export type ClickEvent = {
  kind: 'event';
  userId: string;
  sessionId?: string;
  /**
   * Event time, milliseconds since the Unix epoch. NaN for an erasure request read without one (the pipeline's
   * `erasure` section's type, PluginContext.erasureEventType), which the runtime takes out before any stage.
   */
  time: number;
  /** `view`, `cart`, `remove_from_cart`, `purchase` or any other string. */
  type: KnownEventType | (string & {});
  itemId?: string;
  category?: string;
  price?: number;
  /** Free attributes copied from the raw record by the source's mapping. */
  attrs?: Record<string, unknown>;
  /** Where the event came from. A symbol key, so sinks' JSON never carries it unless asked. */
  [ORIGIN]?: Origin;
  /** Session context, set by a sessionizer. */
  session?: SessionContext;
  /** Feature vector, set by feature operators. */
  features?: FeatureVector;
};

/** Per-event session context attached by a sessionizer. */
export interface SessionContext {
  id: string;
  /** 0-based position of the event in its session. */
  position: number;
  /** Milliseconds since the session's first event. */
  sinceStart: number;
  /**
   * Milliseconds since the previous event of the session in event time (0 for the first); for a late event,
   * since its event-time predecessor where the sessionizer still knows it, else since the session's start.
   */
  sincePrevious: number;
  /** Time of the session's first event. */
  start: number;
  /**
   * True when the event arrived after a later event (in event time) of the same user: a late event.
   * Stages that compute in arrival order (the feature operators) gave it features that include those
   * later events, a purchase among them maybe, so a model must not predict at it. Absent otherwise.
   */
  outOfOrder?: boolean;
  /**
   * Only on the late event that bridged sessions and merged them into its own: the ids of the sessions
   * it absorbed (the updated summary lists them in `replaces` too). From this event on they are one
   * session: a stage keeping state per session folds theirs into this one's here.
   */
  merged?: readonly string[];
}

/**
 * A fixed-width feature vector whose names travel with it. The features are the first `names.length`
 * values: while feature stages are still appending blocks, `values` may be longer (room reserved for
 * the later blocks, zeros), so read it through `names`.
 */
export interface FeatureVector {
  names: readonly string[];
  values: Float32Array;
}

/**
 * Event-time progress: no record with `time` below this will follow (except late ones, which
 * operators route to their late output). `Infinity` means end of input.
 */
export interface Watermark {
  kind: 'watermark';
  time: number;
}

/** Any record: the canonical event or one an operator made. */
export interface StreamRecord {
  kind: string;
  [field: string]: unknown;
}

/** What an operator sees: records and watermarks. */
export type Element = ClickEvent | Watermark | StreamRecord;

export function isWatermark(element: Element): element is Watermark {
  return element.kind === 'watermark';
}

export function isClickEvent(element: Element): element is ClickEvent {
  return element.kind === 'event';
}

/**
 * A sessionizer's summary (`kind: 'session'`), typed: a plugin's handler gets records as StreamRecord,
 * which a plain `as SessionSummary` converts without checking anything.
 */
export function isSessionSummary(element: Element): element is StreamRecord & SessionSummary {
  return element.kind === 'session';
}

/**
 * The key a stage keeps a session's state by: its user and id, unambiguous (the user's length first).
 * Not the id alone: data session ids repeat across users (GA4's ga_session_id is the second the session
 * started), and the sessionizer keeps each user's sessions apart.
 */
export function sessionKey(userId: string, sessionId: string): string {
  return `${userId.length}:${userId}${sessionId}`;
}

/** Whether a {@link sessionKey} is one of this user's sessions (the length before the user says where the user ends): an erasure's sweep. */
export function isSessionKeyOf(key: string, userId: string): boolean {
  return key.startsWith(sessionKey(userId, ''));
}

/** A prediction's label (`kind: 'label'`), typed (as isSessionSummary). */
export function isPredictionLabel(element: Element): element is StreamRecord & PredictionLabel {
  return element.kind === 'label';
}

/** A model's prediction (`kind: 'prediction'`), typed (as isSessionSummary). */
export function isPrediction(element: Element): element is StreamRecord & Prediction {
  return element.kind === 'prediction';
}

/** A model's report (`kind: 'model_metrics'`), typed (as isSessionSummary). */
export function isModelMetrics(element: Element): element is StreamRecord & ModelMetrics {
  return element.kind === 'model_metrics';
}

/** A dead letter (`kind: 'dead_letter'`: a dead-letter sink's records), typed (as isSessionSummary). */
export function isDeadLetter(element: Element): element is StreamRecord & DeadLetter {
  return element.kind === 'dead_letter';
}

export function watermark(time: number): Watermark {
  return { kind: 'watermark', time };
}

/**
 * A closed session, emitted by a sessionizer when the watermark passes its end plus the gap (and
 * again, with `update: true`, when a late event within the allowed lateness changes it).
 */
export type SessionSummary = {
  kind: 'session';
  userId: string;
  sessionId: string;
  /** Event time of the first and last events. */
  start: number;
  end: number;
  eventCount: number;
  /** Events by type, e.g. `{view: 5, cart: 1}`. */
  counts: Record<string, number>;
  purchased: boolean;
  /** True when this replaces a summary emitted before (a late event changed the session). */
  update?: boolean;
  /**
   * Why the session closed. The sessionizer always sets it; optional here because a summary may come from
   * elsewhere (another plugin, a topic another pipeline wrote), without it.
   */
  closedBy?: SessionCloseReason;
  /**
   * Ids of the sessions a late event merged into this one (their events carry those ids; their summaries
   * are replaced by this one). Absent where none was merged.
   */
  replaces?: readonly string[];
  /**
   * Event time after which no event joins this session: once the watermark passes it, the sessionizer
   * keeps the session no more (an event under its id then starts a new session, at position 0). Until
   * then a late event may update, reopen or merge it, so a stage keeping state per session keeps it as
   * long. A sessionizer's end + gap + allowed_lateness (an evicted session's: the watermark it was evicted
   * at). The sessionizer always sets it; absent from summaries made elsewhere.
   */
  keptUntil?: number;
};

/**
 * Why a session closed: `gap` (the watermark passed its end plus the gap), `max_length` (cut; its
 * continuation is another session), `evicted` (by the sessionizer's `max_open_sessions`; its later events
 * start another session), `end_of_input`.
 */
export type SessionCloseReason = 'gap' | 'max_length' | 'evicted' | 'end_of_input';

/** A model's drift detector fired (`kind: 'drift'`, a model stage with `drift.detector` set). */
export type ModelDrift = {
  kind: 'drift';
  /** The model stage's name. */
  model: string;
  task: Prediction['task'];
  /** `page-hinkley` or `adwin`. */
  detector: string;
  /** Event time of the label that made it fire. */
  time: number;
  /** Labels the model had scored then. */
  labels: number;
  /** What it did: the stage's `drift.action` (`none`, `reset_optimizer`, `raise_learning_rate`). */
  action: string;
};

/** A model's score for a user or session at an event time. */
export type Prediction = {
  kind: 'prediction';
  /** Deterministic: the same input gives the same id, so consumers can drop duplicates after a replay. */
  id: string;
  model: string;
  modelVersion: string;
  task: 'intent' | 'churn' | (string & {});
  userId: string;
  sessionId?: string;
  /** Event time the prediction was made at. */
  time: number;
  /**
   * Probability of the positive class. NaN from a diverged model (its weights no longer finite), which
   * JSON writes as `null`: a sink that needs a probability checks `Number.isNaN(score)` (a test for
   * `null` never holds in a plugin, which gets the number).
   */
  score: number;
};

/**
 * The label of a prediction, emitted when the model scores it (a model stage with `emit_labels: true`), so a
 * consumer can join predictions to their outcomes by `predictionId` and compute its own metrics.
 */
export type PredictionLabel = {
  kind: 'label';
  /** The `id` of the prediction it resolves; a prediction gets at most one label (labels are final). */
  predictionId: string;
  model: string;
  task: Prediction['task'];
  userId: string;
  sessionId?: string;
  /** Event time the label was scored at. */
  time: number;
  /** 1: the positive class (a purchase; no return within the horizon), 0: not. */
  label: number;
};

/** Why a prediction will never be labelled (PredictionUnlabelled.reason): each is one of the model report's `counts`. */
export type UnlabelledReason = 'overflow' | 'expired' | 'handed_over' | 'withdrawn' | 'unlabelled_at_end' | 'invalid_score';

/**
 * A prediction that will never be labelled, emitted when the model gives it up (a model stage with `emit_labels:
 * true`): with the `label` records, every prediction gets exactly one of the two, so a consumer tells one still
 * waiting for its label from one that will get none. A separate kind, so that the `label` records stay exactly
 * the labels the prequential metrics count.
 */
export type PredictionUnlabelled = {
  kind: 'unlabelled';
  /** The `id` of the prediction it resolves. */
  predictionId: string;
  model: string;
  task: Prediction['task'];
  userId: string;
  sessionId?: string;
  reason: UnlabelledReason;
};

/** A model's prequential figures over the labels it scored ({@link ModelMetrics}' `summary`). */
export interface PrequentialSummary {
  /** Labels scored. */
  n: number;
  positives: number;
  /** positives / n (0 before a label). */
  baseRate: number;
  /** Cumulative AUC of the labelled predictions' scores (ties counting half); null while one class. */
  auc: number | null;
  /**
   * Whether `auc` is exact: false when some pairs within a bin of 1/65,536 counted half (binned by
   * default, past the exact limit, or before a restore from a checkpoint that had them binned).
   */
  aucExact: boolean;
  /** Mean log loss, each score clipped to [1e-7, 1 - 1e-7]; 0 before a label. */
  logloss: number;
  /** Mean Brier score; 0 before a label. */
  brier: number;
  /** The same over the last `metrics.window` labels. */
  window: { n: number; auc: number | null; logloss: number; brier: number; baseRate: number };
}

/** One bin of a model's calibration table: its score range, labels, mean score and positive rate. */
export interface CalibrationBin {
  lower: number;
  upper: number;
  count: number;
  meanScore: number;
  positiveRate: number;
}

/** How far a model's probabilities are from the rates observed, over its calibration bins. */
export interface CalibrationError {
  /** Expected calibration error: each bin's gap |mean score - positive rate| weighted by its share of the labels. */
  ece: number;
  /** The largest gap of a bin holding a label, whatever its share (a bin of few labels can make it large). */
  maxGap: number;
}

/** A point of a model's metrics over event time: its windowed figures and its cumulative AUC then. */
export interface TimelinePoint {
  /** Event time of the label it was taken at. */
  time: number;
  /** Labels scored by then. */
  n: number;
  /** AUC over the last `metrics.window` labels; null while one class. */
  auc: number | null;
  /** Log loss over the last `metrics.window` labels. */
  logloss: number;
  cumulativeAuc: number | null;
}

/** What a model counted over its life ({@link ModelMetrics}' `counts`): every prediction is labelled or given up under one of them. */
export interface ModelCounts {
  predictions: number;
  /** Labels scored: the `label` records (emit_labels). */
  labels: number;
  learnSteps: number;
  /** Given up unlabelled because the label buffer was full (`label_buffer.max_size`). */
  overflow: number;
  /** Given up unlabelled: `label_buffer.timeout` passed, no label can come, or (churn, scale-out) handed over. */
  expired: number;
  /** Still waiting for their label when the input ended. */
  unlabelledAtEnd: number;
  drifts: number;
  /** Labels that came for a prediction no longer awaited (overflowed, expired or withdrawn): the buffer was too small or its timeout too short for the label delay. */
  lateLabels: number;
  /** Predictions that were not a number (the model diverged): emitted, neither scored nor learnt from. */
  invalidScores: number;
  /** Predictions a late event showed are not to be scored. */
  withdrawn: number;
  /**
   * Predictions of a user an erasure request (the pipeline's `erasure` section) erased while they awaited their
   * label: emitted, never scored, and said in no `unlabelled` record (it would name the user).
   */
  erased: number;
  /**
   * Labels scored before the model's first learning step (cold: no saved model learnt before either), so against
   * predictions of the untrained model; one predicted before that step but labelled after it is not counted.
   */
  scoredBeforeLearning: number;
}

/** A saved model a model started from: its file and the learning steps it had taken. */
export interface WarmStart {
  file: string;
  steps: number;
}

/**
 * A model's prequential report (`kind: 'model_metrics'`), once at the end of input (a model stage with `report:
 * true`; a backtest makes its metrics.json of it). A number that is not finite (a log loss before any label) JSON
 * writes as `null`. docs/records.md describes each field.
 */
export type ModelMetrics = {
  kind: 'model_metrics';
  /** The model stage's name. */
  model: string;
  task: Prediction['task'];
  /** `logistic`, `mlp`, `gru`, or a custom model's type. */
  kind_of_model: string;
  /** The TensorFlow.js backend it ran on; null where it loaded none. */
  backend: string | null;
  /** The features it reads. */
  features: readonly string[];
  summary: PrequentialSummary;
  calibration: readonly CalibrationBin[];
  /** Over `calibration`; null before the first label. */
  calibrationError: CalibrationError | null;
  /** The ROC curve's points, as false and true positive rates. */
  roc: { fpr: readonly number[]; tpr: readonly number[] };
  timeline: readonly TimelinePoint[];
  /** What the timeline's windowed figures span: the last `labels` labels, its first point after `firstPointAt`, both set by the config field `setting`. */
  timelineWindow: { labels: number; firstPointAt: number; setting: string };
  counts: ModelCounts;
  /** Per feature, the values the model read without them (absent from its input; NaN or ±Infinity), over the model's life. */
  skippedFeatureValues: { absent: Record<string, number>; nonFinite: Record<string, number> };
  /** The saved model it started from; null where it started without one (or resumed from a checkpoint). */
  warmStart: WarmStart | null;
  /** The config field that, false, starts it cold (`checkpoint.warm_start`); absent for a custom model. */
  warmStartSetting?: string;
  /** The file the model is saved to at close (a backtest's: in its report folder), for a run to warm-start from; null where it is saved nowhere (a custom model, no `checkpoint` in a run, no model built: no feature vector came). */
  modelFile: string | null;
  /** Why its AUC is null or measures nothing learnt; null where there is nothing to say. */
  scoreReason: string | null;
  /** What its scores do not show by themselves. */
  scoreNotes: readonly string[];
  /**
   * true: a challenger (its stage's `shadow: true`: its records go to the side output `shadow`); false: the live model.
   * A backtest's report sets the two of a task side by side. Absent from a plugin's record that does not say (taken as live).
   */
  shadow?: boolean;
};

/**
 * A record a source, stage or sink rejected (`kind: 'dead_letter'`), as the pipeline's dead-letter sink gets it: why,
 * where the input came from and what was read, so it can be fixed and replayed (docs/operations.md, "Replaying dead
 * letters"). The position fields are there where the input's {@link Origin} is known.
 */
export type DeadLetter = {
  kind: 'dead_letter';
  /** Why, e.g. `price: expected a number, got "abc"`. */
  reason: string;
  /** The pipeline's name: pipelines run together may share one dead-letter file. */
  pipeline: string;
  /** The label of the source, stage or sink that rejected it. */
  stage: string;
  /** The label of the source that read the input. */
  source?: string;
  /** File path, topic or `stdin`. */
  file?: string;
  /** 1-based line (files) or row number. */
  line?: number;
  /** Byte offset of the input's start (files) or Kafka offset. */
  offset?: number;
  partition?: number;
  /**
   * The input as read: a line of text, a parsed object, the record a stage or sink rejected (an event, its features
   * as `{name: value}` in JSON), `null` for a Kafka tombstone; with `encoding: 'base64'` its bytes in base64. Absent
   * where nothing could be read (a Kafka record batch librdkafka cannot read).
   */
  raw?: unknown;
  /** `base64`: `raw` is the input's bytes in base64, as they are not UTF-8 text. */
  encoding?: 'base64';
  /** The input's key, where it has one apart from its value (a Kafka record's). */
  key?: string;
  /** `base64`: `key` is the key's bytes in base64, as they are not UTF-8 text. */
  keyEncoding?: 'base64';
  /** Only from a `kafka` sink writing a dead letter larger than `message.max.bytes`: `raw` is cut to fit, and this is its whole length in bytes. */
  rawBytes?: number;
  /** When it was dead-lettered, as an ISO 8601 wall-clock time (UTC), not an event time. */
  at: string;
};

/**
 * The engine under every model operator: micro-batched prediction, a bounded buffer of predictions
 * waiting for their (delayed) labels, prequential scoring (test-then-train), micro-batched learning,
 * drift detection, metrics, checkpoints and snapshots. The task operators (intent, churn) decide
 * what a sample is and when its label is known; this class does the rest.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type ClickEvent, type Column, type CopyThenEncode, type Counter, LockRefusedError, otherPipelineText, releaseLock, takeLockWaiting, decodeColumn, decodeColumnOf, decodeDerivedIds, decodeNamedColumns, decodeNullableStrings, decodeStrings, type DerivedIds, eachOf, type Element, type Emit, encodeColumn, encodeNamedColumns, encodeDerivedIds, type Gauge, type GaugeFamily, makeFolderDurably, type Metrics, type ModelCounts, type ModelDrift, type ModelMetrics, PartedSnapshots, partsOf, isSessionSummary, recentScoresText, PluginConfigError, type PluginContext, type Prediction, type PredictionLabel, type PredictionUnlabelled, type UnlabelledReason, recordOperator, type RecordOperator, type SessionSummary, type StageRecord, type StreamRecord, TributaryError, writeFileDurably, isSessionKeyOf, sessionKey } from 'tributary';
import { backendMemoryBytes, missingPackages, modelsInWorkers, useBackend, type BackendSelection } from './backend.js';
import { shadowOutput, type ResolvedModelConfig } from './config.js';
import { createDriftDetector, LossBlocks, type DriftDetector, type DriftState, type LossBlocksState } from './drift.js';
import type { Batch, Model, ModelState } from './model.js';
import { openModel, remapFeatures } from './models.js';
import { Normaliser, remapNormaliserState, type NormaliserState } from './normaliser.js';
import { CustomModelAdapter, RawFeatures, type CustomModelSource } from './custom.js';
import { decodeFloats, decodeFloatsInto, encodeFloats } from './params.js';
import { calibrationError, Prequential, type PrequentialState, type PrequentialSummary } from './prequential.js';
import { scoreNotes, type ScoreNotes } from './score-notes.js';
import type { SequenceSample } from './sequence.js';
import { stepFeatures } from './gru.js';

/** What a task operator hands in: one prediction to make (read during `submit` only: one object may serve every call). */
export interface SampleInput {
  id: string;
  userId: string;
  sessionId?: string;
  time: number;
  names: readonly string[];
  values: ArrayLike<number>;
  seq?: SequenceSample;
  /** With the user, session and time, what the learner's {@link IdDeriver} remakes `id` from (a non-negative integer): a snapshot then holds it, not the id. */
  idKey?: number;
}

/**
 * How a task makes a prediction's id from its user, session, time and a key of the task's own (intent:
 * the event's position in its session), so a snapshot holds a small number per prediction, not its
 * id (ids are deterministic: see predictionId). A snapshot checks each id it leaves out against it.
 */
export type IdDeriver = (userId: string, sessionId: string | undefined, time: number, key: number) => string;

/**
 * A prediction as a task operator holds it (from {@link OnlineLearner.submit}) to label or drop
 * it: a handle, so the label buffer needs no lookup by id per label.
 */
export interface SampleHandle {
  readonly id: string;
  /** The session it predicts for (absent on a stand-in for a prediction no longer awaited). */
  readonly sessionId?: string | undefined;
  /** The time it was made at, which its id was made from (absent on a stand-in). */
  readonly time?: number;
  /** Out of the label buffer (labelled, expired or withdrawn), or never in it (made while it was full): a later label for it is late. */
  readonly released: boolean;
}

/**
 * One prediction, from submission until it is learnt from. Every field is set at creation (see
 * {@link newSample}): one object shape, and no property store allocated when a score or label comes.
 */
interface Sample extends SampleHandle {
  userId: string;
  sessionId: string | undefined;
  time: number;
  /** The features as given (a snapshot from before samples were normalised at submit); dropped once normalised. */
  raw: Float32Array | undefined;
  /**
   * The normalised features (what the sample is scored on and learnt from): the row at element
   * `row` of `rows`, a slab in the learner's row format (d values, then a 1 for models that fold
   * biases in). A buffer and an offset, not a view: a view is one more allocation per sample.
   */
  rows: Float32Array | undefined;
  row: number;
  seq: SequenceSample | undefined;
  score: number | undefined;
  label: number | undefined;
  released: boolean;
  /** SampleInput.idKey; -1: none. */
  idKey: number;
  /** The event time `label_buffer.timeout` is counted from: `time`, or a later one its task set (see OnlineLearner.postpone). */
  expiresFrom: number;
  /** Its unit of the loss blocks where not its own session's (see joinUnit). */
  unit: string | undefined;
  /** Why it was given up unlabelled before its batch ran (what it is counted as): its `unlabelled` record follows its prediction's (emitPrediction). */
  givenUp: DropReason | undefined;
  /** Whether the label buffer's snapshot gather in progress (AwaitingCopy) has it: its generation where kept, the generation + 1 where read or new since its call. */
  copied: number;
  /** The snapshot generation it was released in (see OnlineLearner.releasedBefore); 0 while held, or restored. */
  releasedIn: number;
}

/** Why a prediction left the label buffer unlabelled before it was scored (saved in a snapshot's flags: SAMPLE_GIVEN_UP_SHIFT). */
type DropReason = 'overflow' | 'expired' | 'handed_over' | 'withdrawn';
const dropReasons: readonly DropReason[] = ['overflow', 'expired', 'handed_over', 'withdrawn'];

/**
 * A sample's unit of the loss blocks (see LossBlocks): the session it joined (OnlineLearner.joinUnit: a merge), else
 * its session by user and id (two users' sessions of one data id, GA4's ga_session_id, are two labels), else its own id.
 * Three key spaces that cannot meet, whatever ids a task gives: a session's starts with a digit (sessionKey), a retired
 * run's with `retired:` (newUnit), a prediction's own id after `#` (a bare id could be `retired:x` or `1:ab`; intent and
 * churn give every prediction a session, so no snapshot of theirs holds one bare).
 */
function lossUnit(sample: Sample): string {
  return sample.unit ?? (sample.sessionId !== undefined ? sessionKey(sample.userId, sample.sessionId) : `#${sample.id}`);
}

/**
 * A score the metrics can take: NaN fails both comparisons; outside [0, 1] only a backend computing
 * wrongly gets (Dawn's null device).
 */
function isProbability(score: number): boolean {
  return score >= 0 && score <= 1;
}

/**
 * Awaiting its label with a score that is not a probability: counted in `invalidScores` when it was
 * made (see OnlineLearner.invalidScore), so it stays in the label buffer but is counted as nothing else.
 */
function countedInvalid(sample: Sample): boolean {
  return sample.score !== undefined && !isProbability(sample.score);
}

/**
 * The handle of a prediction not held by a full label buffer (see OnlineLearner.submit): what a task keeps of it, its id,
 * session and time (churn's snapshot writes them), not the sample, whose row only learning needs. A label for it is late.
 */
function releasedStandIn(sample: Sample): SampleHandle {
  return { id: sample.id, sessionId: sample.sessionId, time: sample.time, released: true };
}

function newSample(id: string, userId: string, sessionId: string | undefined, time: number, rows: Float32Array | undefined, row: number, seq: SequenceSample | undefined, idKey = -1, copied = 0): Sample {
  return { id, userId, sessionId, time, raw: undefined, rows, row, seq, score: undefined, label: undefined, released: false, idKey, expiresFrom: time, unit: undefined, givenUp: undefined, copied, releasedIn: 0 };
}

interface EncodedSample {
  id: string;
  userId: string;
  sessionId?: string;
  time: number;
  raw?: string;
  x?: string;
  seq?: { types: number[]; categories: number[]; steps: string };
  score?: number;
  label?: number;
  /** Out of the label buffer unlabelled (overflowed, expired or withdrawn) while it waited for its batch. */
  dropped?: true;
}

/**
 * Samples as columns (see core/columns.ts), a row each, in order: the first format's object per sample, its
 * features a base64 string each, cost a JSON object and a buffer per sample to write and read back.
 */
interface SavedSamples {
  /** Format 2: every row's id. Format 3: the ids of the rows whose `idKeys` value is -1, in order. */
  ids: string[];
  /** Format 3: each row's key that its id is remade from (see IdDeriver); -1: the id is in `ids`. */
  idKeys?: Column;
  /** Format 2: every row's user. */
  userIds?: string[];
  /** Format 2: every row's session. null: none. Absent: no sample has one. */
  sessionIds?: (string | null)[];
  /** Format 3: each row's user and session. */
  owners?: SavedOwners;
  time: Column;
  /** Format 3: each row's Sample.expiresFrom (stored against `time`, see TIMES); absent where every row's is its time. */
  expiresFrom?: Column;
  /** SAMPLE_* bits. */
  flags: Column;
  /** Where SAMPLE_SCORED (any float, NaN included: a diverged model's), else 0. */
  score: Column;
  /** Where SAMPLE_LABELLED, else 0. */
  label: Column;
  /** The normalised features of the rows with SAMPLE_ROW, one after another (float32s, base64). */
  x: string;
  /** The features as given, of rows with SAMPLE_RAW (base64 float32s each; a snapshot of the first format restored). */
  raw?: string[];
  /** The sequences of rows with SAMPLE_SEQ (gru), `length` steps each, one after another. */
  seq?: { length: number; types: Column; categories: Column; steps: string };
  /**
   * [row, unit] for each row whose unit of the loss blocks is not its own session's (Sample.unit: a merge moved it, its
   * label before its batch ran); absent where none is (and in snapshots written before it: each restored as its own).
   */
  units?: [number, string][];
}

/**
 * The rows' distinct (user, session) pairs, each once, by its first row: a session's predictions share
 * one (intent: 7 a session in the soak, where a user and session id written per prediction were 1.5 MB
 * a checkpoint).
 */
interface SavedOwners {
  userIds: string[];
  /** The pairs' sessions (`<user>:<start>` ones as numbers, see encodeDerivedIds); absent: no row has one. */
  sessionIds?: DerivedIds;
  /** Each row's pair, an index into the lists (stored as offsets from the row's number: distinct rows, distinct pairs, cost nothing). */
  rows: Column;
}

/** A restore's view of the rows' identities, whichever format wrote them. */
interface RowOwners {
  n: number;
  userAt(i: number): string;
  sessionAt(i: number): string | undefined;
  /** Row i's id, given the rows' times; to be called once a row, in row order. */
  ids(time: Float64Array): (i: number) => string;
  idKeyAt(i: number): number;
}

/** `ref` of the column of row numbers that SavedOwners.rows is stored against. */
const ROW_NUMBERS = 0;
/** `ref` of the `time` column that SavedSamples.expiresFrom is stored against. */
const TIMES = 1;

const SAMPLE_DROPPED = 1;
const SAMPLE_ROW = 2;
const SAMPLE_SEQ = 4;
const SAMPLE_RAW = 8;
const SAMPLE_SCORED = 16;
const SAMPLE_LABELLED = 32;
/** Bits 6 to 8 of a sample's flags: 1 + its givenUp's index in dropReasons, 0 for none (and in snapshots from before it). */
const SAMPLE_GIVEN_UP_SHIFT = 6;
const SAMPLE_FLAGS_END = 8 << SAMPLE_GIVEN_UP_SHIFT;

/** The format of the model files (SavedModel.format) this release writes and reads; a later release's is refused (refuseLaterFormat). */
const savedModelFormat = 1 as const;
/** The newest learner snapshot format (LearnerState.format) this release reads; a later release's is refused (restoreParts). */
const learnerStateFormat = 4;

/** The model as saved to a checkpoint folder (a warm start reads it). */
export interface SavedModel {
  format: typeof savedModelFormat;
  name: string;
  task: string;
  features: string[];
  model: ModelState;
  normaliser: NormaliserState;
  baseLearningRate: number;
  /** Labels and positives the model has learnt from (its base-rate offset), warm starts included. */
  labels: [number, number];
  /**
   * Learning steps the model has taken, warm starts included (the optimiser's own count restarts at a drift's
   * reset_optimizer); absent from files written before it (read as the optimiser's count).
   */
  learnSteps?: number;
  /** The pipeline that saved it; absent from files written before it. */
  pipeline?: string;
  /**
   * In a model file: the pipeline file that saved it (PluginContext.pipelineFile), which tells two files of one
   * pipeline name apart (one copied from the other); absent from files written before 2026-12-07.
   */
  pipelineFile?: string;
  /**
   * In a model file: a backtest wrote it (to its report folder, REPORT/models/), for a run to warm-start from once
   * copied into the model's checkpoint.dir (no live run's model is replaced then, whichever pipeline file it was
   * a backtest of); absent from a run's, and from files written before 2026-12-07.
   */
  writtenByBacktest?: true;
  /**
   * In a model file: the stages before the model when it was saved (PluginContext.stagesBefore), which a warm
   * start compares with those now; absent from files written before 2026-12-07, and from a pipeline
   * checkpoint's snapshot (whose own record of the stages is checked on resume).
   */
  stages?: readonly StageRecord[];
}

/** The learning steps a saved model took (see SavedModel.learnSteps). */
function stepsOf(saved: SavedModel): number {
  return saved.learnSteps ?? saved.model.optimizer.step;
}

export interface LearnerState {
  /**
   * 4: as 3, the loss block's open unit keyed by sessionKey (user and session id; before, by id alone). 3: samples
   * as columns, owners once each, ids remade (see SavedSamples); 2: columns; 1: an object each (all restored still).
   */
  format: 1 | 2 | 3 | 4;
  saved: SavedModel | null;
  toPredict: SavedSamples | EncodedSample[];
  awaiting: SavedSamples | EncodedSample[];
  toLearn: SavedSamples | EncodedSample[];
  prequential: PrequentialState;
  drift: DriftState;
  /** LossBlocks' state (a 2-tuple in snapshots from before it counted labels, not predictions). */
  block: LossBlocksState | [number, number];
  /** `withdrawn`, `erased` and `scoredBeforeLearning` are absent from snapshots written before them (read as 0). */
  counts: ModelCounts;
  /**
   * The `unlabelled` records given up and not yet emitted (see OnlineLearner.emitUnlabelled): a restore emits them.
   * Absent from snapshots written before it (none: those taken between a drop and the next emit lost theirs).
   */
  unlabelled?: PredictionUnlabelled[];
  /**
   * The learning steps the predictions' versions count before `counts.learnSteps` (OnlineLearner.versionBase). Absent
   * from snapshots written before 2026-12-07, whose builds numbered versions by `counts.learnSteps` alone: read as 0,
   * so a resume from one goes on numbering as that build did, and a prediction made again gets the version it had.
   */
  versionBase?: number;
}

/**
 * Deterministic prediction ids: the same model and input give the same id after a replay. 64 bits
 * (two 32-bit multiply-xorshift lanes, as cyrb53 but keeping all 64) as 16 hex digits: ids only need
 * to be unique per model among predictions a consumer deduplicates, and sha1 cost more than the
 * model itself per event. The lanes live here, not in an array, so hashing allocates nothing.
 */
let lane1 = 0;
let lane2 = 0;

function mixPart(part: string | number | undefined): void {
  if (typeof part === 'number' && Number.isSafeInteger(part)) {
    // Integers (times, positions) as their two 32-bit halves: no string to build per event.
    const lo = part >>> 0;
    const hi = Math.floor(part / 4294967296) | 0;
    lane1 = Math.imul(Math.imul(lane1 ^ lo, 2654435761) ^ hi, 2654435761);
    lane2 = Math.imul(Math.imul(lane2 ^ lo, 1597334677) ^ hi, 1597334677);
    lane1 = Math.imul(lane1 ^ 2, 2654435761);
    lane2 = Math.imul(lane2 ^ 2, 1597334677);
    return;
  }
  const text = part === undefined ? '' : typeof part === 'string' ? part : String(part);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    lane1 = Math.imul(lane1 ^ c, 2654435761);
    lane2 = Math.imul(lane2 ^ c, 1597334677);
  }
  // A separator, so ('ab', 'c') and ('a', 'bc') differ.
  lane1 = Math.imul(lane1 ^ 1, 2654435761);
  lane2 = Math.imul(lane2 ^ 1, 1597334677);
}

/** Char codes of the hex digits. */
const hexCode = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/**
 * The 16 hex digits as one flat string, made at once: Number#toString(16) takes V8's slow path
 * above 2^31 (1.5 µs an id), and concatenated pieces allocate a string each, then a flattened copy
 * when the id is first used as a map key.
 */
function finishId(): string {
  const h1 = Math.imul(lane1 ^ (lane1 >>> 16), 2246822507) ^ Math.imul(lane2 ^ (lane2 >>> 13), 3266489909);
  const h2 = Math.imul(lane2 ^ (lane2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const x = hexCode;
  return String.fromCharCode(
    x[(h2 >>> 28) & 15]!, x[(h2 >>> 24) & 15]!, x[(h2 >>> 20) & 15]!, x[(h2 >>> 16) & 15]!, x[(h2 >>> 12) & 15]!, x[(h2 >>> 8) & 15]!, x[(h2 >>> 4) & 15]!, x[h2 & 15]!,
    x[(h1 >>> 28) & 15]!, x[(h1 >>> 24) & 15]!, x[(h1 >>> 20) & 15]!, x[(h1 >>> 16) & 15]!, x[(h1 >>> 12) & 15]!, x[(h1 >>> 8) & 15]!, x[(h1 >>> 4) & 15]!, x[h1 & 15]!,
  );
}

/** The hash state after some leading id parts (a session's model, user and session ids), to reuse per event. */
export interface IdPrefix {
  h1: number;
  h2: number;
}

export function idPrefix(...parts: (string | number | undefined)[]): IdPrefix {
  lane1 = 0xdeadbeef;
  lane2 = 0x41c6ce57;
  for (let p = 0; p < parts.length; p++) mixPart(parts[p]);
  return { h1: lane1, h2: lane2 };
}

export function predictionId(...parts: (string | number | undefined)[]): string {
  lane1 = 0xdeadbeef;
  lane2 = 0x41c6ce57;
  for (let p = 0; p < parts.length; p++) mixPart(parts[p]);
  return finishId();
}

/**
 * `predictionIdAfter(idPrefix(a, b), c, d)` is `predictionId(a, b, c, d)`: two parts after the
 * prefix, as parameters (a rest array would be one more allocation per prediction).
 */
export function predictionIdAfter(prefix: IdPrefix, part1: string | number | undefined, part2: string | number | undefined): string {
  lane1 = prefix.h1;
  lane2 = prefix.h2;
  mixPart(part1);
  mixPart(part2);
  return finishId();
}

/**
 * Samples as a snapshot copied them (OnlineLearner.copySamples, AwaitingCopy), for its encode parts: the samples, and
 * by row what changes on them (flags as saved, SAMPLE_ROW, SAMPLE_SEQ and SAMPLE_RAW for the rows,
 * sequences and raw features listed, in order).
 */
interface CopiedSamples {
  samples: Sample[];
  /** The features a row holds (the model's, which a later record may build or change). */
  width: number;
  flags: Float64Array;
  score: Float64Array;
  label: Float64Array;
  expiresFrom: Float64Array;
  /** Each row's slab and element (Sample.rows, Sample.row). */
  rows: Float32Array[];
  rowAt: number[];
  seqs: SequenceSample[];
  raws: Float32Array[];
  units: [number, string][];
}

/** Room for `capacity` samples of `width` features, none copied yet (copySampleInto). */
function newCopiedSamples(capacity: number, width: number): CopiedSamples {
  const [flags, score, label, expiresFrom] = Array.from({ length: 4 }, () => new Float64Array(capacity));
  return { samples: [], width, flags: flags!, score: score!, label: label!, expiresFrom: expiresFrom!, rows: [], rowAt: [], seqs: [], raws: [], units: [] };
}

/**
 * Copies `s` into `copied`, its next row: the sample itself for what no path changes (id, user, session, time, key;
 * the feature row, whose slab is written once, before the sample exists; the sequence and raw features, made for it
 * alone), and the fields that change (score, label, release, units, the row and sequence let go once learnt).
 */
function copySampleInto(copied: CopiedSamples, s: Sample): void {
  const i = copied.samples.length;
  copied.samples.push(s);
  copied.expiresFrom[i] = s.expiresFrom;
  let f = s.released && s.label === undefined ? SAMPLE_DROPPED : 0;
  if (s.givenUp !== undefined) f |= (dropReasons.indexOf(s.givenUp) + 1) << SAMPLE_GIVEN_UP_SHIFT;
  if (s.score !== undefined) {
    f |= SAMPLE_SCORED;
    copied.score[i] = s.score;
  }
  if (s.label !== undefined) {
    f |= SAMPLE_LABELLED;
    copied.label[i] = s.label;
  }
  // Those it has, in order (encodeSamples reads them by these flags).
  if (s.rows) {
    f |= SAMPLE_ROW;
    copied.rows.push(s.rows);
    copied.rowAt.push(s.row);
  }
  if (s.seq) {
    f |= SAMPLE_SEQ;
    copied.seqs.push(s.seq);
  }
  if (s.raw) {
    f |= SAMPLE_RAW;
    copied.raws.push(s.raw);
  }
  if (s.unit !== undefined) copied.units.push([i, s.unit]);
  copied.flags[i] = f;
}

/**
 * The predictions awaiting their label as a snapshot's call saw them, copied on write (as churn's users are,
 * UsersCopy): the call takes only the queue, its head and its length (the sources held O(1); was a walk of every
 * prediction held); the samples are read while records flow (readUpTo, in the encode parts). Until all are read, a
 * path about to change a sample not read yet keeps a copy of it first (keep: OnlineLearner.changing), and the queue's
 * slots up to that length stay where they are (its compactions wait; an emptied queue is replaced, not truncated):
 * new predictions go past them. What is read is then what the call saw, in its order: the same bytes.
 */
class AwaitingCopy {
  private next: number;
  /** Samples changed since the call before they were read, as they were at it (frozen: their rows' slabs with them). */
  private readonly kept = new Map<Sample, Sample>();
  private copied: CopiedSamples | undefined;

  constructor(
    /** The live queue (or the one it was, where emptied since). */
    private readonly queue: readonly Sample[],
    head: number,
    private readonly end: number,
    /** This gather's number (even, above any before): a sample's `copied` is it where kept, it + 1 where read (or new since the call). */
    readonly generation: number,
    /** The features a row held at the call. */
    private readonly width: number,
    /** Called once every sample is read: paths need keep nothing more. */
    private readonly onRead: () => void,
  ) {
    this.next = head;
  }

  get done(): boolean {
    return this.next === this.end;
  }

  /** Slots still to read. */
  get left(): number {
    return this.end - this.next;
  }

  /** Before a path changes `sample`: kept as at the call where not read yet. */
  keep(sample: Sample): void {
    if (sample.copied >= this.generation) return;
    sample.copied = this.generation;
    this.kept.set(sample, { ...sample });
  }

  /** Reads up to `count` more of the queue's slots at the call: its predictions scored and awaiting their label then. */
  readUpTo(count: number): void {
    if (this.done) return;
    const copied = (this.copied ??= newCopiedSamples(this.end - this.next, this.width));
    const { queue, generation, kept } = this;
    const to = Math.min(this.end, this.next + count);
    for (let i = this.next; i < to; i++) {
      const live = queue[i]!;
      const s = live.copied === generation ? kept.get(live)! : live;
      live.copied = generation + 1;
      // Only predicted ones: the others are in toPredict (restore holds those again).
      if (!s.released && s.score !== undefined) copySampleInto(copied, s);
    }
    this.next = to;
    if (to === this.end) {
      kept.clear();
      this.onRead();
    }
  }

  /** What was read, once done: the columns cut to the samples copied. */
  result(): CopiedSamples {
    const copied = this.copied ?? newCopiedSamples(0, this.width);
    const n = copied.samples.length;
    return { ...copied, flags: copied.flags.subarray(0, n), score: copied.score.subarray(0, n), label: copied.label.subarray(0, n), expiresFrom: copied.expiresFrom.subarray(0, n) };
  }
}

export class OnlineLearner {
  private model: Model | undefined;
  private normaliser: Normaliser | RawFeatures | undefined;
  /** False for a custom model without `learn` (a fixed rule): its labels are scored, and neither queued nor counted as scored before learning. */
  private learns = true;
  private features: string[] | undefined;
  /** Names arrays mapped onto `features`: remade with the features (a warm start or restore may change them). */
  private aligned = new WeakMap<readonly string[], number[] | null>();
  private toPredict: Sample[] = [];
  /**
   * The label buffer: samples from submission on (not from their batch: a session's labels often
   * come while its last samples wait for their batch, 40% of them on the demo), oldest first, as a
   * queue from `awaitingHead`. Labelled ones are marked released and leave lazily (when they reach
   * the head, or in a compaction once they outnumber the rest): a label costs no hashing. A label
   * for a sample not yet predicted is scored when its batch runs.
   */
  private awaitingQueue: Sample[] = [];
  private awaitingHead = 0;
  /** Samples in the queue still awaiting their label. */
  private awaitingCount = 0;
  /** The label buffer a snapshot still reads while records flow (see AwaitingCopy), until it has read it all. */
  private awaitingCopy: AwaitingCopy | undefined;
  /** The number of the last such gather (even; see Sample.copied). */
  private copyGeneration = 0;
  private toLearn: Sample[] = [];
  /**
   * Reused for learning batches: every tensor made from it is disposed within the step, before the
   * buffer is written again.
   */
  private learnBuffer = new Float32Array(0);
  /**
   * Normalised vectors of submitted samples, `batch.max_size` per slab: a sample keeps its slice
   * (what it is scored on and later learnt from), and a batch of consecutive samples is one view of
   * it, so there is no per-sample allocation or copy. A slab is freed with its last sample.
   */
  private slab = new Float32Array(0);
  private slabUsed = 0;
  /**
   * Rows of the slab and of learning batches: d features, then a 1 for models that fold biases into
   * their weights (all but gru), so a prediction batch is handed over without a copy in either form.
   */
  private withOnes = false;
  private stride = 0;
  private alignBuffer = new Float32Array(0);
  /** Per feature of the model, 1 where the vector being aligned lacks it (see Normaliser.updateAndTransform). */
  private missingBuffer = new Uint8Array(0);
  private oldestPending = Infinity;
  private readonly prequential: Prequential;
  private readonly drift: DriftDetector;
  /**
   * The operator's snapshot in parts (its own state's parts after the learner's, {@link snapshotParts}):
   * every path that changes the learner's state settles it first, and the operator does the same
   * before changing its own.
   */
  readonly snapshots = new PartedSnapshots();
  private baseLearningRate: number;
  private backend: BackendSelection | undefined;
  /**
   * The model was loaded from a saved one (a warm start, a resume) and has had no vector yet: the first one's
   * features it takes on where that one has names it lacks (see {@link fitFeatures}).
   */
  private fitToFirstVector = false;
  /** The saved model this one started from (its file and learning steps), else null: a backtest's report says so. */
  private warmStarted: { file: string; steps: number } | null = null;
  private lastCheckpointLabels = 0;
  private closedModel: SavedModel | undefined;
  /** Labels and positives learnt before this run (a warm start), for the saved model's totals. */
  private prior: [number, number] = [0, 0];
  /** Learning steps taken before this run (a warm start), for the saved model's total. */
  private priorSteps = 0;
  /**
   * The learning steps the predictions' versions count before this run's (counts.learnSteps): priorSteps, but on a
   * resume from a snapshot the snapshot's (LearnerState.versionBase), so the predictions a restart makes again (the
   * input since that checkpoint, read again) carry the versions they had, whatever the model file held by then.
   */
  private versionBase = 0;
  private readonly lossBlocks: LossBlocks;
  /** Labels scored since the counter was last increased (prom-client pays per call). */
  private unCountedLabels = 0;
  /** Wall-clock time metrics were last exported: exact AUCs cost too much to compute per batch. */
  private lastExport = -Infinity;
  /** Labels were scored (or learnt from) since the gauges were last set: the timer's next tick sets them, so a stream gone quiet does not leave them stale. */
  private gaugesBehind = false;
  private static readonly exportEveryMs = 1000;
  readonly counts: ModelCounts = { predictions: 0, labels: 0, learnSteps: 0, overflow: 0, expired: 0, unlabelledAtEnd: 0, drifts: 0, lateLabels: 0, invalidScores: 0, withdrawn: 0, erased: 0, scoredBeforeLearning: 0 };
  private readonly gauges: Record<'auc' | 'aucCumulative' | 'logloss' | 'loglossWindow' | 'brier' | 'baseRate' | 'calibration' | 'buffer' | 'learningRate' | 'backendMemory', Gauge>;
  /**
   * The backend as an info metric: 1 on the series of the backend in use (`backend="wasm"`), as Prometheus
   * exports facts that are names (a dashboard shows the label; an alert matches it), not a number to decode.
   */
  private readonly backendInfo: GaugeFamily;
  private readonly counters: Record<'predictions' | 'labels' | 'overflow' | 'expired' | 'drifts' | 'invalidScores' | 'lateLabels' | 'withdrawn' | 'absentValues' | 'nonFiniteValues', Counter>;
  /**
   * The model's metrics: its stage's, each series labelled with the model's `name` too, so a dashboard
   * and an alert name the model (`model="intent-lr"`), not its stage's generated label. The task's own
   * series (churn's evictions, intent's out-of-order events) are made here too.
   */
  readonly metrics: Metrics;

  constructor(
    readonly config: ResolvedModelConfig,
    readonly task: string,
    private readonly context: PluginContext,
    /** How the task makes its ids, where it gives samples an `idKey`. */
    private readonly deriveId?: IdDeriver,
    /** A plugin's own model (defineModel) in place of the TF.js one `config.model` describes; it sees raw features. */
    private readonly custom?: CustomModelSource,
  ) {
    // A backend named in the config whose packages are missing cannot run however often it restarts: said
    // at the field as the pipeline starts (exit 2). A plugin's own model runs no TF.js.
    const missing = custom ? [] : missingPackages(config.backend);
    if (missing.length > 0) throw new PluginConfigError('backend', `backend ${config.backend} needs ${missing.join(' and ')}, not installed: npm install ${missing.join(' ')}, or use backend: auto`);
    this.prequential = new Prequential(config.metrics.window, config.metrics.calibrationBins, config.metrics.exactAucLimit);
    this.drift = createDriftDetector(config.drift);
    this.lossBlocks = new LossBlocks(config.drift.block);
    // Replayed input: a batch cut by wall-clock time would make every run learn at other points.
    this.maxDelayMs = context.replay ? 0 : config.batch.maxDelayMs;
    if (context.replay && config.batch.maxDelayMs > 0) context.logger.info({ max_delay_ms: config.batch.maxDelayMs }, 'replayed input: batches by size only (batch.max_delay does not apply)');
    this.baseLearningRate = config.optimizer.learning_rate;
    this.metrics = context.metrics.withLabels({ model: config.name });
    const m = this.metrics;
    this.gauges = {
      auc: m.gauge('model_auc', 'Prequential ROC AUC over the last `metrics.window` labels (exact).'),
      aucCumulative: m.gauge('model_auc_cumulative', 'Prequential ROC AUC over every label so far.'),
      logloss: m.gauge('model_logloss', 'Prequential log loss over every label so far.'),
      // The cumulative figure barely moves after months of labels: a model going wrong shows here.
      loglossWindow: m.gauge('model_logloss_window', 'Prequential log loss over the last `metrics.window` labels.'),
      brier: m.gauge('model_brier', 'Prequential Brier score over every label so far.'),
      baseRate: m.gauge('model_base_rate', 'Share of positive labels so far.'),
      calibration: m.gauge('model_calibration_error', 'Expected calibration error over the calibration bins.'),
      buffer: m.gauge('model_label_buffer', 'Predictions waiting for their label.'),
      learningRate: m.gauge('model_learning_rate', 'Current learning rate.'),
      backendMemory: m.gauge('model_backend_memory_bytes', "Bytes of the TensorFlow.js backend's own memory, outside the V8 heap: wasm, its linear memory (it grows and never shrinks); tensorflow, its tensors' native memory. Process-wide: each model's series says the same. Not exported for cpu (its tensors are ArrayBuffers: tributary_array_buffers_bytes) and webgpu."),
    };
    this.backendInfo = m.gaugeFamily('model_backend_info', 'TensorFlow.js backend the model runs on, as the `backend` label (cpu, wasm, tensorflow, tensorflow-gpu, webgpu); always 1.', ['backend']);
    this.counters = {
      predictions: m.counter('model_predictions_total', 'Predictions emitted.'),
      labels: m.counter('model_labels_total', 'Labels scored and learnt from.'),
      overflow: m.counter('model_label_buffer_overflow_total', 'Predictions not held for their labels because the label buffer was full (emitted, never scored nor learnt from).'),
      expired: m.counter('model_labels_expired_total', 'Predictions dropped unlabelled after label_buffer.timeout, or when no label will come (intent: a session the sessionizer evicted; churn: a user forgotten for max_users or whose partition was revoked).'),
      drifts: m.counter('model_drifts_total', 'Drifts detected on the loss stream.'),
      invalidScores: m.counter('model_invalid_scores_total', 'Predictions that were not a number (the model diverged): neither scored nor learnt from.'),
      lateLabels: m.counter('model_late_labels_total', 'Labels that came for a prediction no longer awaited (not held by a full label buffer, expired, or withdrawn): not scored.'),
      withdrawn: m.counter(
        'model_predictions_withdrawn_total',
        'Predictions withdrawn unscored because a late event showed they are not to be scored: churn, their session merged into one predicted already; intent, made at an event after their session\'s first purchase.',
      ),
      absentValues: m.counter('model_feature_values_absent_total', "Values of the model's features that its input lacked (read at the feature's running mean, left out of its statistics; a custom model reads 0)."),
      nonFiniteValues: m.counter('model_feature_values_non_finite_total', "Values of the model's features that were not finite, NaN or +-Infinity (read at the feature's running mean, left out of its statistics; a custom model reads 0)."),
    };
  }

  get name(): string {
    return this.config.name;
  }

  get backendName(): string | undefined {
    return this.backend?.backend;
  }

  get featureNames(): readonly string[] | undefined {
    return this.features;
  }

  /** Picks the backend and warm-starts from the checkpoint folder when asked. */
  async open(): Promise<void> {
    // A custom model runs no TF.js (no backend to pick) and has no model file (its state is in the pipeline's checkpoints).
    if (this.custom) return;
    this.backend = await useBackend(this.config.backend, this.context.logger);
    this.backendInfo.set({ backend: this.backend.backend }, 1);
    this.gauges.learningRate.set(this.config.optimizer.learning_rate);
    const file = this.checkpointFile();
    if (this.context.replay) this.refuseReplaySaveOverOwnFile(file);
    if (file && this.context.replay) this.context.logger.info({ file, savedTo: this.saveFile() }, `model ${this.name}: replayed input: the model is not saved to ${file} (it is read to warm-start, if there)${this.saveFile() === undefined ? '' : `; it is saved to ${this.saveFile()!} at the end`}`);
    // Before the file is read: a run that saves it owns it until it closes.
    if (file && !this.context.replay) await this.lockModelFile(file);
    try {
      if (file) this.warmStart(file);
    } catch (error) {
      // The run does not start (a person's to mend): the file is no longer this run's to save.
      this.releaseModelFile();
      throw error;
    }
  }

  /**
   * A replay saves its model to its own folder (saveFile) so as never to replace a run's model file: one whose folder
   * is the model's `checkpoint.dir` (a backtest's report folder named so that its `models/` is it) is refused before
   * anything runs (exit 2), or the backtest would replace the live model it promises to leave alone.
   */
  private refuseReplaySaveOverOwnFile(own: string | undefined): void {
    const saveTo = this.saveFile();
    if (own === undefined || saveTo === undefined || resolve(own) !== resolve(saveTo)) return;
    throw new TributaryError(
      'TRIB_ERR_CHECKPOINT',
      `model ${this.name}: a backtest saves its model to ${saveTo}, which is this model's own file (checkpoint.dir), the one a run saves and warm-starts from: the backtest would replace it. Give --report another folder`,
    );
  }

  /** Warm-starts from the model file `file` when there and asked; says whose model it replaces at close. */
  private warmStart(file: string): void {
    if (!existsSync(file)) return;
    if (!this.config.checkpoint!.warmStart) {
      if (!this.context.replay) this.warnOfOtherPipelinesModel(file);
      return;
    }
    let saved: SavedModel;
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as SavedModel;
      this.refuseLaterFormat(saved, file);
      // Checked before it is loaded: a refused model is never this stage's, so a close cannot save it over the file.
      this.refuseOtherFeatureValues(saved, file);
      this.loadSaved(saved);
    } catch (cause) {
      if (cause instanceof TributaryError) throw cause; // refuseOtherFeatureValues's, worded whole
      // A person must act (exit 2): a restart would fail the same way. The file is left as it was.
      throw new TributaryError(
        'TRIB_ERR_CHECKPOINT',
        `model ${this.name}: cannot warm-start from ${file}: ${(cause as Error).message}. The file is left as it was: undo the change to the model's config to resume from it, or move it away (or set checkpoint.warm_start: false, which replaces it at close) to start afresh`,
        { cause },
      );
    }
    const steps = stepsOf(saved);
    this.warmStarted = { file, steps };
    if (this.context.replay) {
      // A replay (a backtest) scores its data prequentially only from a cold start: a model saved by runs over this
      // very data has learnt its labels already, and scores higher than it would on data it has not seen.
      this.context.logger.warn(
        { model: this.name, file, steps },
        `model ${this.name}: warm start from ${file} (${steps} learning steps): if that model learnt from this input, its scores here are not out of sample; set checkpoint.warm_start: false (or --set) for a cold score`,
      );
    } else if (saved.writtenByBacktest) {
      // Deployed from a backtest's report (From a backtest to a live model): the backtest ran of this pipeline's file
      // or of a copy elsewhere; either way its file is a copy of the report's, and no live pipeline's model is replaced.
      const backtestOf = this.backtestOf(saved);
      this.context.logger.info({ file, steps, backtestOf }, `model ${this.name}: warm start from a model a backtest of ${backtestOf} learnt: ${file} (${steps} learning steps; saved over at close)`);
    } else if (this.savedByOther(saved) !== undefined) {
      // Another pipeline's model, kept only until this one closes: a check of a warm start run after the pipeline
      // that trained the model (same name and folder) replaced that model with its own (beside it, the lock refuses it).
      // Another file of the same pipeline name too (a copy of it): the name alone said nothing (2026-12-07).
      this.context.logger.warn(
        { model: this.name, file, steps, savedBy: saved.pipeline, ...this.savedByFields(saved) },
        `model ${this.name}: warm start from ${file} (${steps} learning steps), saved by ${this.savedByOther(saved)!}: this run saves its model to the same file and replaces that one's; ${this.keepOthersModel}`,
      );
    } else this.context.logger.info({ file, steps }, `model ${this.name}: warm start from ${file} (${steps} learning steps; saved over at close)`);
    this.gauges.learningRate.set(this.model!.optimizer.learningRate);
  }

  /**
   * A run that starts afresh (checkpoint.warm_start: false) saves its model over the file at close: said where
   * the file holds another pipeline's model (a model file records the pipeline that saved it), which it replaces.
   */
  private warnOfOtherPipelinesModel(file: string): void {
    let saved: Partial<SavedModel>;
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<SavedModel>;
    } catch {
      return; // not a model this run could read: nothing to say of whose it is (it is replaced all the same)
    }
    const other = this.savedByOther(saved);
    if (other === undefined) return;
    const steps = saved.model?.optimizer !== undefined ? stepsOf(saved as SavedModel) : undefined;
    if (saved.writtenByBacktest) {
      // A copy of a backtest's report file: the report keeps the model, and no live pipeline's is replaced.
      const backtestOf = this.backtestOf(saved);
      this.context.logger.info({ file, backtestOf, ...(steps === undefined ? {} : { steps }) }, `model ${this.name}: ${file} holds a model a backtest of ${backtestOf} learnt; this run starts afresh (checkpoint.warm_start: false) and saves its model over it`);
      return;
    }
    this.context.logger.warn(
      { model: this.name, file, savedBy: saved.pipeline, ...this.savedByFields(saved), ...(steps === undefined ? {} : { steps }) },
      `model ${this.name}: ${file} holds the model saved by ${other}${steps === undefined ? '' : ` (${steps} learning steps)`}; this run starts afresh (checkpoint.warm_start: false) and saves its model over it; ${this.keepOthersModel}`,
    );
  }

  /** Where a model file was saved by another pipeline than this run's (another name, or another file of this name), the words naming both (otherPipelineText). */
  private savedByOther(saved: Partial<SavedModel>): string | undefined {
    return otherPipelineText(saved, this.context);
  }

  /** The pipeline a backtest that wrote a model file ran: its file, or its name where the file is not recorded. */
  private backtestOf(saved: Partial<SavedModel>): string {
    return saved.pipelineFile ?? `pipeline ${saved.pipeline ?? '(not recorded)'}`;
  }

  private savedByFields(saved: Partial<SavedModel>): { savedByFile?: string } {
    return saved.pipelineFile === undefined ? {} : { savedByFile: saved.pipelineFile };
  }

  private readonly keepOthersModel =
    "give this stage another checkpoint.dir (or name) to keep that pipeline's model (where that pipeline is this one, its name or file changed since, nothing is to be done)";

  private releaseModelFile(): void {
    if (this.modelFileLock !== undefined) releaseLock(this.modelFileLock);
    this.modelFileLock = undefined;
  }

  /** The model file's lock, where this run holds it (see lockModelFile). */
  private modelFileLock: string | undefined;

  /**
   * Locks the model file for this run, which saves it (`<file>.lock`, as a file sink locks its output): two
   * model stages given one file (the same name and checkpoint.dir in two pipelines, or two runs of one)
   * each saved over the other's model, every checkpoint.every labels and at close, silently. Another live
   * process holding it, or another stage of this one, refuses the start (exit 2); another host's is waited
   * for up to the run's lock wait. A backtest never saves the model and takes no lock.
   */
  private async lockModelFile(file: string): Promise<void> {
    const lockPath = `${file}.lock`;
    const { pipeline, logger, lockWaitMs, signal } = this.context;
    try {
      if (await takeLockWaiting(lockPath, `model file ${file}`, { pipeline, logger, user: `model ${this.name}`, heldAs: 'saved', shared: false, waitMs: lockWaitMs ?? 0, ...(signal ? { signal } : {}) })) {
        this.modelFileLock = lockPath;
      }
    } catch (error) {
      if (!(error instanceof LockRefusedError)) {
        // No lock can be made there (the folder cannot be made: a file in its place, a full disk): neither can a
        // save, so no other run's model can be overwritten. The stage goes on, as through any failed save (said
        // at each, and the save at close fails the run), not stopped at its start for a file it may never write.
        logger.warn({ model: this.name, file, err: (error as Error).message }, `model ${this.name}: the model file ${file} cannot be locked (${(error as Error).message}); the saves are tried all the same`);
        return;
      }
      throw new TributaryError(
        'TRIB_ERR_OUTPUT_LOCKED',
        `model ${this.name}: ${error.message}. Two model stages given one model file (the same name and checkpoint.dir) save over each other's model: ` +
          'give this stage another checkpoint.dir (or name); to score with that model without saving over it, run this pipeline as a backtest (which never saves it) or copy the file into a folder of its own; ' +
          'if no such process runs, remove the lock file',
        { cause: error },
      );
    }
  }

  /**
   * A warm start from a model whose features the stages before it now make otherwise under the same names (a
   * hash-features' width or fields, a transform added, removed, moved or selecting otherwise; PluginContext's
   * featureStagesChangedSince) is refused: the model reads its input by name, so its weights would be applied to
   * other values without a word, and unlike a resumed pipeline's state a warm start is cheap to give up. Names
   * only added or gone are no such change: the model takes on the first vector's (fitFeatures: added ones learnt
   * from 0, gone ones' weights dropped). Not where the pipeline resumes from its checkpoint, whose model replaces this one (and
   * whose record of the stages the runtime checks).
   */
  private refuseOtherFeatureValues(saved: SavedModel, file: string): void {
    const compare = this.context.featureStagesChangedSince;
    if (compare === undefined || this.context.resuming) return;
    if (saved.stages === undefined) {
      this.context.logger.info(
        { model: this.name, file },
        `model ${this.name}: ${file} records no stages (saved before 2026-12-07): whether the stages before the model make its features as they did is not checked; its next save records them`,
      );
      return;
    }
    const changes = compare.call(this.context, saved.stages).filter((change) => change.sameNamesOtherValues);
    if (changes.length === 0) return;
    const other = this.savedByOther(saved);
    throw new TributaryError(
      'TRIB_ERR_CHECKPOINT',
      `model ${this.name}: cannot warm-start from ${file}${other === undefined ? '' : ` (saved by ${other})`}: the stages before the model make its features otherwise than when it was saved (${changes.map((change) => change.text).join('; ')}), ` +
        'so the weights it learnt would be applied to other values under the same feature names. The file is left as it was: undo the change to warm-start from it, ' +
        'or move it away (or set checkpoint.warm_start: false, which replaces it at close) to start afresh, ' +
        'or backtest the pipeline as it is now and copy the model it saves (REPORT/models/) in its place to start from one learnt on these features',
    );
  }

  /**
   * A model file of a format a later release writes (a rollback after an upgrade) is not read as this one's, whose
   * fields it may use otherwise: the start stops for a person (TRIB_ERR_CHECKPOINT, exit 2), naming the file, its
   * format and this release's, the file left as it was. (A file with no number is no model file: failed as unreadable.)
   */
  private refuseLaterFormat(saved: Partial<SavedModel>, file: string): void {
    const format: unknown = saved.format;
    if (typeof format !== 'number' || format <= savedModelFormat) return;
    throw new TributaryError(
      'TRIB_ERR_CHECKPOINT',
      `model ${this.name}: cannot warm-start from ${file}: it has model file format ${format}, which a later release writes; this release reads format ${savedModelFormat}. ` +
        'The file is left as it was: run that release (or a later one) to warm-start from it; to start this model afresh with this one, move the file away (or set checkpoint.warm_start: false, which replaces it at close)',
    );
  }

  private checkpointFile(): string | undefined {
    const dir = this.config.checkpoint?.dir;
    return dir ? join(resolve(this.context.baseDir, dir), `${this.name}.model.json`) : undefined;
  }

  /**
   * The file this run saves its model to: its own (`checkpoint.dir`) in a run; in a replay (a backtest), never that
   * one but the replay's folder's (PluginContext.replaySaveDir, whatever its `checkpoint`), so that a run can warm-start
   * from what the backtest learnt. A custom model has no model file.
   */
  private saveFile(): string | undefined {
    if (this.custom) return undefined;
    if (!this.context.replay) return this.checkpointFile();
    const dir = this.context.replaySaveDir;
    return dir === undefined ? undefined : join(dir, `${this.name}.model.json`);
  }

  /**
   * A model in a worker that cannot go on (see RemoteModel's onFailure): the run fails now, not at a
   * later call that would only dead-letter the record it was made for.
   */
  private readonly modelFailed = (error: Error): void => this.context.fail(new Error(`model ${this.name}: ${error.message}`, { cause: error }));

  /** A new model for `features`: the configured TF.js one, or the plugin's own. */
  private newModel(features: readonly string[]): Model {
    // Its logger and metrics are the stage's (the metrics with the model's name, as the stage's own).
    if (this.custom) return new CustomModelAdapter(this.custom.kind, features.length, this.custom.create(features, { logger: this.context.logger, metrics: this.metrics }));
    return openModel(features.length, this.config.model, this.config.optimizer, this.modelFailed);
  }

  /** The feature transform of a new model: standardised for the TF.js models, raw for a custom one. */
  private newNormaliser(size: number): Normaliser | RawFeatures {
    return this.custom ? new RawFeatures(size) : new Normaliser(size);
  }

  /** A fresh model and normaliser for `features`, or the given ones (a saved model, loaded). */
  private build(features: readonly string[], model = this.newModel(features), normaliser = this.newNormaliser(features.length)): void {
    this.features = [...features];
    this.aligned = new WeakMap();
    this.lastNames = undefined;
    this.normaliser = normaliser;
    this.model = model;
    this.learns = !(model instanceof CustomModelAdapter) || model.learns;
    // A custom model's rows are its features alone (no ones column for a folded-in bias).
    this.withOnes = !this.custom && this.config.model.kind !== 'gru';
    this.stride = features.length + (this.withOnes ? 1 : 0);
    this.learnBuffer = new Float32Array(Math.max(this.config.batch.maxSize, this.config.batch.learnSize) * this.stride);
    this.alignBuffer = new Float32Array(features.length);
    this.missingBuffer = new Uint8Array(features.length);
    this.slab = new Float32Array(0);
    this.slabUsed = 0;
    this.unheldSlab = new Float32Array(0);
    this.unheldSlabUsed = 0;
  }

  /**
   * Takes a saved model (a warm start, a snapshot). Loaded aside and swapped in only whole: one that
   * does not fit the config (kind, sizes, optimiser) throws and leaves the learner as it was, so a
   * close after that failure cannot save a half-loaded or fresh model over the saved one.
   */
  private loadSaved(saved: SavedModel): void {
    const model = this.newModel(saved.features);
    const normaliser = this.newNormaliser(saved.features.length);
    try {
      model.load(saved.model);
      normaliser.load(saved.normaliser);
    } catch (error) {
      model.dispose();
      throw error;
    }
    this.model?.dispose();
    this.build(saved.features, model, normaliser);
    // A custom model's state is its own: it keeps the features it was made for (read by name).
    this.fitToFirstVector = !this.custom;
    // The learning rate is config, not state: an edited one applies (a drift's raise keeps its ratio).
    const configured = this.config.optimizer.learning_rate;
    if (saved.baseLearningRate !== configured) {
      model.optimizer.learningRate *= configured / saved.baseLearningRate;
      this.context.logger.info({ model: this.name, saved: saved.baseLearningRate, configured }, `model ${this.name}: learning rate ${configured} (the saved model used ${saved.baseLearningRate})`);
    }
    this.baseLearningRate = configured;
    this.prior = [...(saved.labels ?? [0, 0])];
    this.priorSteps = stepsOf(saved);
    this.versionBase = this.priorSteps;
  }

  savedModel(): SavedModel | null {
    // After close the model is gone, but the runtime may still snapshot (a checkpoint at stop).
    if (!this.model) return this.closedModel ?? null;
    if (!this.normaliser || !this.features) return null;
    return { format: savedModelFormat, name: this.name, task: this.task, features: this.features, model: this.model.state(), normaliser: this.normaliser.state(), baseLearningRate: this.baseLearningRate, labels: [this.prior[0] + this.prequential.n, this.prior[1] + this.prequential.positives], learnSteps: this.priorSteps + this.counts.learnSteps, pipeline: this.context.pipeline };
  }

  /**
   * The periodic save in flight (`checkpoint.every`), if any. Saves never overlap: they share one
   * temp file, and an older save renamed last would put an older model in place.
   */
  private saving: Promise<void> | undefined;
  /** A periodic save was due while one was in flight: one more follows it, of the model as it is then. */
  private saveAgain = false;
  /** The last periodic save failed (said once per run of failures, and again when one succeeds). */
  private saveFailing = false;

  /**
   * A periodic save, in the background: the model is taken now (on the thread: it goes on learning),
   * written and fsynced while records keep flowing. Due while one is in flight, it is coalesced into
   * one save after it. Not on replayed input (see {@link writeModel}).
   */
  private saveInBackground(): void {
    if (this.context.replay || !this.checkpointFile()) return;
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    this.saving = this.saveWhileDue();
  }

  private async saveWhileDue(): Promise<void> {
    do {
      this.saveAgain = false;
      try {
        await this.writeModel(this.savedModel());
        if (this.saveFailing) this.context.logger.info({ model: this.name, file: this.checkpointFile() }, `model ${this.name}: the model is saved again`);
        this.saveFailing = false;
      } catch (error) {
        // The run goes on (its own checkpoints hold the model too); the save at close reports a failure that lasts.
        if (!this.saveFailing) this.context.logger.error({ model: this.name, file: this.checkpointFile(), err: (error as Error).message }, `model ${this.name}: saving the model failed: ${(error as Error).message}; the previous save stays in place, the next one retries`);
        this.saveFailing = true;
      }
    } while (this.saveAgain && this.model);
    this.saving = undefined;
  }

  /**
   * Writes a saved model to the checkpoint folder durably (writeFileDurably, as the pipeline's
   * checkpoints: after a crash or power loss the file is the old model or the new one, whole). On
   * replayed input (a backtest) to the replay's folder only (saveFile), never to the model's own file: the
   * next backtest would warm-start from a model that learnt the data it then scores (not reproducible,
   * and optimistic), and a live daemon's saved model in that folder would be replaced by the backtest's.
   */
  private async writeModel(saved: SavedModel | null): Promise<void> {
    // On replayed input, only at close (saveInBackground), and never to its own file (saveFile).
    const file = this.saveFile();
    if (!file || !saved) return;
    // Serialised before the first wait: the model goes on learning meanwhile. With the stages before the model,
    // which a warm start from the file compares with those then (refuseOtherFeatureValues).
    // With the pipeline file, which tells this pipeline from another file of its name (savedByOther).
    // A backtest's is marked so: a run warm-starting from it replaces no live pipeline's model (warmStart).
    const { stagesBefore: stages, pipelineFile, replay } = this.context;
    const body = JSON.stringify({ ...saved, ...(stages === undefined ? {} : { stages }), ...(pipelineFile === undefined ? {} : { pipelineFile }), ...(replay ? { writtenByBacktest: true } : {}) });
    await makeFolderDurably(dirname(file));
    // A fixed temp name: one left by a crash is overwritten by the next save.
    await writeFileDurably(file, body, `${file}.tmp`);
  }

  /**
   * A model loaded from a saved one (a warm start, a resume) whose first vector has features it lacks (a stage
   * added before it, a horizon added to one) takes on that vector's features, as River's linear models grow a
   * weight per new name: its weights for the features kept stay as learnt, each added one's start at 0 (its
   * optimiser moments too, and its normaliser's statistics fresh), so it predicts as before until it learns from
   * them; those the vector no longer has are dropped with their weights. Said once (the added, the dropped). Only
   * once, at the first vector: a later vector named otherwise is read by name (warnOtherFeatures), as a vector
   * that only lacks some of the model's features is (read at their running mean, the weights kept should they
   * come back). Same names made otherwise (a hash width) are refused before this (refuseOtherFeatureValues) or
   * warned of by the runtime on a resume: a name is taken to mean what it meant.
   */
  private fitFeatures(names: readonly string[]): void {
    this.fitToFirstVector = false;
    const own = this.features!;
    const index = new Map(own.map((name, i) => [name, i]));
    const added = names.filter((name) => !index.has(name));
    // Duplicate names cannot be told apart by name: read as before (warnOtherFeatures says what).
    if (added.length === 0 || new Set(names).size !== names.length) return;
    const kept = new Set(names);
    const dropped = own.filter((name) => !kept.has(name));
    const map = names.map((name) => index.get(name) ?? -1);
    // Samples of a first-format snapshot hold raw values in the old order: normalised now, before the features change.
    for (const list of [this.toPredict, this.awaitingQueue, this.toLearn]) for (const s of list) if (!s.rows && s.raw) this.normaliseRaw(s);
    const model = this.newModel(names);
    const normaliser = this.newNormaliser(names.length);
    try {
      model.load(remapFeatures(this.model!.state(), this.config.model, map));
      normaliser.load(remapNormaliserState(this.normaliser!.state(), map));
    } catch (error) {
      model.dispose();
      throw error;
    }
    this.model!.dispose();
    this.build(names, model, normaliser);
    this.remapRows(map);
    const text =
      `model ${this.name}: the input has ${added.length} feature${added.length === 1 ? '' : 's'} the saved model did not (${added.slice(0, 20).join(', ')}${added.length > 20 ? ', ...' : ''}): ` +
      'the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept' +
      (dropped.length === 0 ? '' : `; its weights for ${dropped.length} the input no longer has (${dropped.slice(0, 20).join(', ')}${dropped.length > 20 ? ', ...' : ''}) are dropped`);
    const fields = { model: this.name, added: added.slice(0, 50), addedCount: added.length, dropped: dropped.slice(0, 50), droppedCount: dropped.length };
    if (dropped.length === 0) this.context.logger.info(fields, text);
    else this.context.logger.warn(fields, text);
  }

  /**
   * The rows of the samples held (to predict, awaiting labels, to learn) in the model's new feature order, after
   * {@link fitFeatures}: `map[i]` is the old feature new feature i is; an added one is 0 (standardised: at its
   * running mean, as a value a sample lacks is read). In new slabs: the old ones are in the old row format.
   */
  private remapRows(map: readonly number[]): void {
    // A snapshot's gather reads rows of the width at its call.
    this.finishAwaitingCopy();
    const slabs = this.restoredSlabs();
    const d = map.length;
    const remapped = new Set<Sample>();
    for (const list of [this.toPredict, this.awaitingQueue, this.toLearn]) {
      for (const s of list) {
        if (s.rows === undefined || remapped.has(s)) continue;
        remapped.add(s);
        const { rows, row } = slabs();
        for (let i = 0; i < d; i++) if (map[i]! >= 0) rows[row + i] = s.rows[s.row + map[i]!]!;
        if (this.withOnes) rows[row + d] = 1;
        s.rows = rows;
        s.row = row;
      }
    }
  }

  /** Maps a vector's names onto the model's feature order (null: same order). */
  private alignment(names: readonly string[]): number[] | null {
    // Upstream operators share one names array across their vectors: skip the WeakMap for a repeat.
    if (names === this.lastNames) return this.lastAlignment;
    let map = this.aligned.get(names);
    if (map === undefined) {
      const own = this.features!;
      const same = names.length === own.length && names.every((n, i) => n === own[i]);
      if (same) map = null;
      else {
        const index = new Map(names.map((n, i) => [n, i]));
        map = own.map((n) => index.get(n) ?? -1);
        this.warnOtherFeatures(names, map);
      }
      this.aligned.set(names, map);
    }
    this.lastNames = names;
    this.lastAlignment = map;
    return map;
  }

  private lastNames: readonly string[] | undefined;
  private lastAlignment: number[] | null = null;
  /** Feature mismatches already logged (by what differs), so a stream of them logs each once. */
  private readonly mismatchesLogged = new Set<string>();

  /**
   * The model's features are fixed for the run (by its first sample, or the model it resumed and the first vector's
   * features it took on: fitFeatures): a vector named otherwise (a stage whose output changed) is read by name, which
   * drops what the model does not know and reads its missing features at their running mean (standardised 0,
   * leaving the normaliser's statistics as they were: a raw 0 would shift every prediction); a custom model,
   * which gets raw values, reads them as 0. Said, not silent.
   */
  private warnOtherFeatures(names: readonly string[], map: readonly number[]): void {
    const own = this.features!;
    const known = new Set(own);
    const missing = own.filter((_, i) => map[i]! < 0);
    const ignored = names.filter((n) => !known.has(n));
    if (missing.length === 0 && ignored.length === 0) return;
    const key = `${missing.join(',')}|${ignored.join(',')}`;
    if (this.mismatchesLogged.has(key) || this.mismatchesLogged.size >= 100) return;
    this.mismatchesLogged.add(key);
    this.context.logger.warn(
      { model: this.name, ignored: ignored.slice(0, 50), missing: missing.slice(0, 50), ignoredCount: ignored.length, missingCount: missing.length },
      `model ${this.name}: input features differ from the model's ${own.length}: ${ignored.length} it does not know are ignored, ${missing.length} of its own are absent and read as 0${this.custom ? '' : ' once standardised (at their running mean, which with their variance is left as it was)'} ` +
        (this.custom
          ? '(a custom model keeps the features it was made for; to learn on new ones, start it afresh)'
          : '(a model takes on new features only at its first vector after a warm start or a resume, their weights starting at 0; within a run it keeps its features)'),
    );
  }

  /**
   * Warns of each feature whose first non-finite value of the run is in `values` (the model's features, in its
   * order), naming the stage that appends it where one declares it: a NaN or Infinity is a bug upstream (a ratio
   * over 0, a user's stage), which the model only reads around (at the running mean), counted.
   */
  private warnNonFinite(values: ArrayLike<number>): void {
    const first = this.normaliser!.skipped.firstNonFinite;
    for (const i of first) {
      const feature = this.features![i]!;
      const stage = this.context.featureOrigin?.(feature);
      const value = String(values[i]);
      this.context.logger.warn(
        { model: this.name, feature, value, ...(stage === undefined ? {} : { madeBy: stage }) },
        `model ${this.name}: feature ${feature}${stage === undefined ? '' : ` (appended by stage ${stage})`} has a value that is not finite (${value}): ` +
          (this.custom ? 'read as 0' : "read at its running mean (standardised 0), its statistics left as they were") +
          "; each such value is counted (model_feature_values_non_finite_total, the report's skippedFeatureValues), this warning said once per feature",
      );
    }
    first.length = 0;
  }

  /**
   * One prediction: made and emitted at once by a model that predicts rows on the host, else queued
   * and made when its micro-batch runs. Returns its handle, to {@link label}, {@link expireOne} or {@link withdraw} it.
   */
  submit(input: SampleInput, emit: Emit): SampleHandle {
    this.snapshots.settle();
    if (!this.model) this.build(input.names);
    else if (this.fitToFirstVector) this.fitFeatures(input.names);
    const size = this.features!.length;
    const map = this.alignment(input.names);
    // Not held by a full label buffer: nothing learns from it, so its row must not share a slab with held ones (each
    // held one would keep a slab of mostly such rows until its label): a model that scores it at once normalises it
    // into a row reused for every such prediction, a batched one into a slab of such rows, freed once they are emitted.
    const held = this.awaitingCount < this.config.labelBuffer.maxSize;
    const scratch = !held && this.model!.predictRow !== undefined;
    if (scratch && this.scratchRow.length !== this.stride) this.scratchRow = this.newRow();
    // Normalised now (same order as at prediction, so the same statistics) straight into the slab.
    let rows: Float32Array;
    let offset = 0;
    if (scratch) rows = this.scratchRow;
    else if (held) {
      if (this.slabUsed * this.stride >= this.slab.length) {
        this.slab = new Float32Array(this.config.batch.maxSize * this.stride);
        this.slabUsed = 0;
      }
      rows = this.slab;
      offset = this.slabUsed++ * this.stride;
    } else {
      if (this.unheldSlabUsed * this.stride >= this.unheldSlab.length) {
        this.unheldSlab = new Float32Array(this.config.batch.maxSize * this.stride);
        this.unheldSlabUsed = 0;
      }
      rows = this.unheldSlab;
      offset = this.unheldSlabUsed++ * this.stride;
    }
    if (this.withOnes) rows[offset + size] = 1;
    let values: ArrayLike<number> = input.values;
    let missing: Uint8Array | undefined;
    if (map !== null) {
      const aligned = this.alignBuffer;
      missing = this.missingBuffer;
      for (let i = 0; i < size; i++) {
        const at = map[i]!;
        aligned[i] = at >= 0 ? input.values[at]! : 0;
        missing[i] = at >= 0 ? 0 : 1;
      }
      values = aligned;
    }
    this.normaliser!.updateAndTransform(values, rows, offset, missing);
    if (this.normaliser!.skipped.firstNonFinite.length > 0) this.warnNonFinite(values);
    // New since a snapshot's call: a gather in progress neither reads nor keeps it.
    const sample = newSample(input.id, input.userId, input.sessionId, input.time, rows, offset, input.seq, input.idKey, this.copyGeneration + 1);
    const model = this.model!;
    if (model.predictRow !== undefined) {
      // Scored at once on the host: the prediction waits for no micro-batch.
      this.hold(sample);
      sample.score = model.predictRow(rows, offset);
      this.emitPrediction(sample, emit, this.currentVersion());
      return held ? sample : releasedStandIn(sample);
    }
    if (this.toPredict.length === 0 && this.toLearn.length === 0) this.oldestPending = this.context.clock.now();
    this.toPredict.push(sample);
    this.hold(sample);
    if (this.toPredict.length >= this.config.batch.maxSize) this.flushPredictions(emit);
    return held ? sample : releasedStandIn(sample);
  }

  /** The slab the rows of predictions not held go in, for a batched model (see submit). */
  private unheldSlab = new Float32Array(0);
  private unheldSlabUsed = 0;
  /** The row an unheld prediction of a model that scores at once is normalised into (see submit). */
  private scratchRow: Float32Array = new Float32Array(0);

  /** Predictions made since the metrics were last exported (counted in bulk: a counter per event cost more than the row). */
  private unCountedPredictions = 0;
  private version = '';
  private versionSteps = -1;

  /**
   * The model's version as of now: `<config version>.<learning steps>`, the steps the model's weights have taken
   * since it was made, warm starts and resumes included (SavedModel.learnSteps): a model warm-started from a
   * saved file goes on from that file's version, so two predictions of one version came from the same weights
   * (its steps restarting at 0 here gave a warm-started model the version of a cold one).
   */
  private currentVersion(): string {
    const steps = this.versionBase + this.counts.learnSteps;
    if (this.versionSteps !== steps) {
      this.versionSteps = steps;
      this.version = `${this.config.version}.${steps}`;
    }
    return this.version;
  }

  /**
   * Emits a scored sample's prediction record under `version`, that of the model that scored it; scores
   * it now if its label came while it waited for its batch.
   */
  private emitPrediction(s: Sample, emit: Emit, version: string): void {
    // Built whole, in one shape per kind (fields in the same order either way).
    const prediction: Prediction =
      s.sessionId === undefined
        ? { kind: 'prediction', id: s.id, model: this.name, modelVersion: version, task: this.task, userId: s.userId, time: s.time, score: s.score! }
        : { kind: 'prediction', id: s.id, model: this.name, modelVersion: version, task: this.task, userId: s.userId, time: s.time, score: s.score!, sessionId: s.sessionId };
    emit(prediction);
    this.counts.predictions++;
    this.unCountedPredictions++;
    // Out of the label buffer unlabelled (not held, expired or withdrawn while it waited for its batch): nothing will
    // learn from it, so its row (and its slab, with its last sample) need not outlive its prediction.
    if (s.released && s.label === undefined) this.letGoOfRow(s);
    // Given up while it waited for its batch (scored now, so unlabelled() emits it).
    if (s.givenUp !== undefined) {
      const reason = s.givenUp;
      s.givenUp = undefined;
      this.unlabelled(s, reason);
    }
    // Checked when made, not when labelled: a churn label comes a horizon later, days of null scores unsaid.
    if (!isProbability(s.score!)) {
      this.invalidScore(s);
      // Its label came first: its unit of the loss blocks waits for no loss from it.
      if (s.label !== undefined && this.config.drift.detector !== 'none') this.driftOn(this.lossBlocks.addDeferred(undefined, lossUnit(s)), s.time, emit);
    } else if (s.label !== undefined) this.scoreAndQueue(s, emit, s.time, true);
  }

  /** The batch of `samples`; `rows` given when their rows already lie in one buffer, in order. */
  private batchOf(samples: readonly Sample[], rows?: Float32Array): Batch {
    const d = this.features!.length;
    const stride = this.stride;
    if (!rows) {
      const size = samples.length * stride;
      rows = this.learnBuffer.length >= size ? this.learnBuffer.subarray(0, size) : new Float32Array(size);
      // Whole rows (the 1 included): a plain loop, as a subarray per sample would allocate a view each.
      for (let i = 0, to = 0; i < samples.length; i++) {
        const from = samples[i]!.rows!;
        for (let j = samples[i]!.row, end = j + stride; j < end; j++) rows[to++] = from[j]!;
      }
    }
    const batch: Batch = this.withOnes ? { n: samples.length, d, x1: rows } : { n: samples.length, d, x: rows };
    if (this.config.model.kind === 'gru') {
      const L = this.config.model.sequence_length;
      const types = new Int32Array(samples.length * L);
      const categories = new Int32Array(samples.length * L);
      const steps = new Float32Array(samples.length * L * stepFeatures);
      samples.forEach((s, i) => {
        if (!s.seq) return;
        types.set(s.seq.types, i * L);
        categories.set(s.seq.categories, i * L);
        steps.set(s.seq.steps, i * L * stepFeatures);
      });
      batch.seq = { length: L, types, categories, steps };
    }
    return batch;
  }

  /** Runs the pending predictions as one batch and emits them. */
  flushPredictions(emit: Emit): void {
    this.snapshots.settle();
    const samples = this.toPredict;
    if (samples.length === 0) return;
    this.toPredict = [];
    // Scored below (and given up ones said: emitPrediction): a snapshot's gather keeps them as they were first.
    if (this.awaitingCopy !== undefined) for (const s of samples) this.changing(s);
    for (const s of samples) {
      if (!s.rows) this.normaliseRaw(s);
      s.raw = undefined;
    }
    const model = this.model!;
    // Taken before any is emitted: a label scored at an emit may run a learning step (nested), but every score here is the model's as it is now.
    const version = this.currentVersion();
    if (model.predictRow !== undefined) {
      // Only samples restored from a snapshot of a batched run reach here for such a model.
      for (const s of samples) s.score = model.predictRow(s.rows!, s.row);
    } else {
      // Consecutive rows of one slab: the batch is a view of it, no copy.
      const stride = this.stride;
      const first = samples[0]!;
      let contiguous = true;
      for (let i = 1; i < samples.length && contiguous; i++) contiguous = samples[i]!.rows === first.rows && samples[i]!.row === first.row + i * stride;
      const rows = contiguous ? first.rows!.subarray(first.row, first.row + samples.length * stride) : undefined;
      const scores = model.predictProbaMany(this.batchOf(samples, rows));
      for (let i = 0; i < samples.length; i++) samples[i]!.score = scores[i]!;
    }
    for (let i = 0; i < samples.length; i++) this.emitPrediction(samples[i]!, emit, version);
    this.gauges.buffer.set(this.awaitingCount);
  }

  /** A sample of a snapshot from before samples were normalised at submit: its raw features normalised into a row of its own. */
  private normaliseRaw(s: Sample): void {
    s.rows = this.newRow();
    s.row = 0;
    this.normaliser!.updateAndTransform(s.raw!, s.rows, 0);
    if (this.normaliser!.skipped.firstNonFinite.length > 0) this.warnNonFinite(s.raw!);
    s.raw = undefined;
  }

  /** Whether the first overflow of the label buffer was said (once a run, as max_users reached is). */
  private overflowSaid = false;

  /**
   * Puts a new prediction in the label buffer; a full one keeps those it holds and not this one, which is still
   * predicted and emitted, but counted as overflow (its label, if one comes, is late). Dropping the oldest instead
   * let a buffer smaller than one label delay's predictions drop every one before its label: nothing learnt.
   * Kept, the held ones are labelled and the model learns from about max_size per label delay. A buffer restored
   * above max_size (a smaller one configured since) keeps its predictions too, and takes new ones once below it.
   */
  private hold(sample: Sample): void {
    if (this.awaitingCount >= this.config.labelBuffer.maxSize) {
      // Released before it is scored: never counted invalid (countedInvalid), its `unlabelled` record follows its prediction.
      this.markReleased(sample);
      this.countDropped('overflow', sample);
      if (!this.overflowSaid) this.sayOverflow();
      return;
    }
    this.awaitingQueue.push(sample);
    this.awaitingCount++;
  }

  /** The oldest sample still awaiting its label; released ones before it leave the queue. */
  private oldestAwaiting(): Sample | undefined {
    const queue = this.awaitingQueue;
    while (this.awaitingHead < queue.length && queue[this.awaitingHead]!.released) this.awaitingHead++;
    if (this.awaitingHead === queue.length) {
      // A snapshot's gather reads the slots as they were at its call: it keeps this array, the buffer takes a new one.
      if (this.awaitingCopy === undefined) queue.length = 0;
      else this.awaitingQueue = [];
      this.awaitingHead = 0;
      return undefined;
    }
    // The slots passed still hold their released samples (and the slabs of their rows). Labels come
    // about in order and expire() runs at every watermark, so the head moves on while an awaited sample
    // is always behind it and the queue never empties: without this it kept every prediction since the
    // start. Once they are half the queue they go, order kept (amortised: each slot is moved at most once per passing).
    if (this.awaitingHead >= 1024 && this.awaitingHead * 2 >= queue.length && this.awaitingCopy === undefined) {
      queue.copyWithin(0, this.awaitingHead);
      queue.length -= this.awaitingHead;
      this.awaitingHead = 0;
    }
    return queue[this.awaitingHead];
  }

  /**
   * Takes an unlabelled prediction out of the label buffer; true where its drop is still to be
   * counted (countDropped): one not a number was counted when made (invalidScore) and counts nothing more.
   */
  private drop(sample: Sample): boolean {
    this.release(sample);
    // Predicted already: its row is for learning only (one still waiting for its batch keeps it to be scored: emitPrediction lets go).
    if (sample.score !== undefined) this.letGoOfRow(sample);
    return !countedInvalid(sample);
  }

  /**
   * A daemon's full label buffer showed only in a counter: a buffer smaller than the predictions of one label delay
   * (intent's at a 30m gap: every event of the open sessions) holds only some of them, and the model learns from
   * about max_size per label delay, not from every prediction. Said when it starts, once; a run's verdict (report,
   * end of input) counts them too.
   */
  private sayOverflow(): void {
    this.overflowSaid = true;
    const max = this.config.labelBuffer.maxSize;
    const awaited =
      this.task === 'intent'
        ? 'intent: the events of the sessions still open, all labelled as each closes'
        : this.task === 'churn'
          ? 'churn: the sessions closed within its horizon'
          : 'the predictions made within the time a label takes';
    this.context.logger.warn(
      { model: this.name, label_buffer_max_size: max, metric: 'tributary_model_label_buffer_overflow_total' },
      `model ${this.name}: label buffer full (label_buffer.max_size ${max}): a prediction made while it is full is not held for its label (it is still emitted, but never scored or learnt from; those held keep their place), counted in tributary_model_label_buffer_overflow_total (said once); it must hold the predictions of one label delay (${awaited}), else the model learns from only about max_size predictions per label delay (docs/operations.md, Sizing)`,
    );
  }

  /** Counts a prediction dropped unlabelled (`handed_over` counts as expired), and says so where asked (emit_labels). */
  private countDropped(reason: 'overflow' | 'expired' | 'withdrawn', sample: Sample, said: UnlabelledReason = reason): void {
    this.counts[reason]++;
    this.counters[reason].inc();
    this.unlabelled(sample, said);
  }

  /**
   * Records of predictions given up (emit_labels), until the operator's next emit: most drops happen where none is at
   * hand (churn's partitionsRevoked has none at all). A snapshot holds them, so a checkpoint taken before they leave keeps them.
   */
  private unlabelledRecords: PredictionUnlabelled[] = [];

  /** With emit_labels, queues the record of a prediction that will never be labelled (see emitUnlabelled). */
  private unlabelled(sample: Sample, reason: UnlabelledReason): void {
    // Not predicted yet (it waits for its batch): its record comes after its prediction, as a consumer joining them expects.
    // Its reason is kept with emit_labels off too: what it was counted as, which an erasure before its batch runs takes back (forgetUser).
    if (sample.score === undefined && reason !== 'unlabelled_at_end' && reason !== 'invalid_score') {
      this.changing(sample);
      sample.givenUp = reason;
      return;
    }
    if (!this.config.emitLabels) return;
    this.unlabelledRecords.push({ kind: 'unlabelled', ...this.outcomeOf(sample), reason });
  }

  /** The fields a `label` and an `unlabelled` record share: the prediction they resolve, and whose it is. */
  private outcomeOf(sample: Sample): Pick<PredictionLabel, 'predictionId' | 'model' | 'task' | 'userId' | 'sessionId'> {
    const { id: predictionId, userId, sessionId } = sample;
    return sessionId === undefined ? { predictionId, model: this.name, task: this.task, userId } : { predictionId, model: this.name, task: this.task, userId, sessionId };
  }

  /**
   * Emits the queued `unlabelled` records (the operator calls it after each record, watermark and tick), unless the
   * runtime holds the sources: a checkpoint's state, taken as the hold began, holds them, and emitted now they would
   * be committed with its outputs and emitted again by a restart from it. The first call after it emits them.
   */
  emitUnlabelled(emit: Emit): void {
    if (this.context.held?.() !== undefined) return;
    this.emitUnlabelledNow(emit);
  }

  /** Emits the queued `unlabelled` records, held or not (the end of input: the final checkpoint comes after, and must not hold them). */
  private emitUnlabelledNow(emit: Emit): void {
    if (this.unlabelledRecords.length === 0) return;
    const records = this.unlabelledRecords;
    this.unlabelledRecords = [];
    for (const record of records) emit(record);
  }

  /**
   * Before a path changes a sample (any field but its id, user, session, time and key): a snapshot's gather in
   * progress that has not read it yet keeps it as it was (AwaitingCopy). One comparison where none is in progress.
   */
  private changing(sample: Sample): void {
    if (this.awaitingCopy !== undefined) this.awaitingCopy.keep(sample);
  }

  /** Out of the label buffer from now on, stamped with the snapshot generation it happened in (see releasedBefore). */
  private markReleased(sample: Sample): void {
    sample.released = true;
    sample.releasedIn = this.copyGeneration;
  }

  /**
   * The mark of the last snapshot taken ({@link snapshotParts}): a task's snapshot that reads its handles after the
   * call, while records flow, asks {@link releasedBefore} with it whether each was released at the call.
   */
  get releaseMark(): number {
    return this.copyGeneration;
  }

  /**
   * Whether `handle` was out of the label buffer when the snapshot of `mark` ({@link releaseMark}) was called: one
   * released since (expired, overflowed, labelled or forgotten while records flow) reads as held then. A stand-in is
   * released from its making.
   */
  releasedBefore(handle: SampleHandle, mark: number): boolean {
    return handle.released && ((handle as Partial<Sample>).releasedIn ?? -1) < mark;
  }

  /** Has a snapshot's gather still in progress read the rest now: before what it cannot keep aside (rows remapped, a restore, the next snapshot). */
  private finishAwaitingCopy(): void {
    this.awaitingCopy?.readUpTo(Infinity);
  }

  /** A sample nothing will learn from lets go of what only learning needs: its row (a slab goes with its last one), sequence and raw features. */
  private letGoOfRow(sample: Sample): void {
    this.changing(sample);
    sample.rows = undefined;
    sample.seq = undefined;
    sample.raw = undefined;
  }

  /** Takes a sample out of the label buffer (its slot leaves the queue lazily); a snapshot's gather keeps it first. */
  private release(sample: Sample): void {
    this.changing(sample);
    this.markReleased(sample);
    this.awaitingCount--;
    // Released samples still queued behind an awaiting one: drop them once they are most of it (not while a
    // snapshot's gather reads the queue's slots: the next release after it does).
    const queued = this.awaitingQueue.length - this.awaitingHead;
    if (queued > 1024 && queued > 2 * this.awaitingCount && this.awaitingCopy === undefined) {
      // In place, order kept: no new array (and no closure) per compaction.
      const queue = this.awaitingQueue;
      let kept = 0;
      for (let i = this.awaitingHead; i < queue.length; i++) if (!queue[i]!.released) queue[kept++] = queue[i]!;
      queue.length = kept;
      this.awaitingHead = 0;
    }
  }

  /** Empties the label buffer; handles still held elsewhere read as released. */
  private releaseAll(): void {
    for (const sample of this.awaitingSamples()) sample.released = true;
    this.awaitingQueue = [];
    this.awaitingHead = 0;
    this.awaitingCount = 0;
  }

  /** Samples awaiting their label, oldest first. */
  private *awaitingSamples(): Generator<Sample> {
    for (let i = this.awaitingHead; i < this.awaitingQueue.length; i++) if (!this.awaitingQueue[i]!.released) yield this.awaitingQueue[i]!;
  }

  /**
   * Handles by prediction id, for a task operator restoring the ids it snapshotted: the awaiting
   * sample, or a released stand-in (labelling it counts a late label, as for any prediction no
   * longer awaited). Built in parts (see inTurns), as the restore that needs it.
   */
  *handlesById(): Generator<void, (id: string) => SampleHandle, void> {
    const byId = new Map<string, Sample>();
    yield* eachOf(this.awaitingSamples(), (s) => byId.set(s.id, s));
    return (id) => byId.get(id) ?? { id, released: true };
  }

  /**
   * The samples awaiting their label by session, oldest first (a restore's task operator finds its sessions'
   * in it): by sessionKey (user and id) where `byUser`, else by session id alone (as snapshots before the
   * intent model's format 4 kept sessions). Built in parts (see inTurns).
   */
  *awaitingBySession(byUser: boolean): Generator<void, Map<string, SampleHandle[]>, void> {
    const bySession = new Map<string, Sample[]>();
    yield* eachOf(this.awaitingSamples(), (s) => {
      if (s.sessionId === undefined) return;
      const key = byUser ? sessionKey(s.userId, s.sessionId) : s.sessionId;
      const list = bySession.get(key);
      if (list) list.push(s);
      else bySession.set(key, [s]);
    });
    return bySession;
  }

  /**
   * The label of an earlier prediction: scored (test), then queued for learning (train).
   * Returns false when the prediction is no longer awaited (overflowed, expired, withdrawn or labelled).
   * `relabelUntil`: the watermark until which its session may be labelled again (a late event reopens it: see
   * LossBlocks.add), so that such a label counts in the same unit of the loss blocks.
   */
  label(handle: SampleHandle, label: number, time: number, emit: Emit, relabelUntil?: number): boolean {
    this.snapshots.settle();
    const sample = handle as Sample;
    if (sample.released) {
      this.counts.lateLabels++;
      this.counters.lateLabels.inc();
      return false;
    }
    this.release(sample);
    sample.label = label;
    // Not predicted yet: scored when its batch runs, so the score is the one the prediction carried (its
    // unit of the loss blocks waits for it). One not a number was counted when made: its label has nothing to score or teach.
    if (sample.score === undefined) {
      if (this.config.drift.detector !== 'none') this.driftOn(this.lossBlocks.defer(lossUnit(sample), relabelUntil), time, emit);
    } else if (isProbability(sample.score)) this.scoreAndQueue(sample, emit, time, false, relabelUntil);
    return true;
  }

  /**
   * Scores a labelled sample whose score is a probability (an invalid one is counted when made: see invalidScore);
   * `deferred`: its label came before its prediction (LossBlocks.defer); `relabelUntil` as label's.
   */
  private scoreAndQueue(sample: Sample, emit: Emit, labelTime = sample.time, deferred = false, relabelUntil?: number): void {
    // With predictions made at once, a learning batch's wait starts at its first sample.
    if (this.toLearn.length === 0 && this.toPredict.length === 0) this.oldestPending = this.context.clock.now();
    const loss = this.prequential.add(sample.score!, sample.label!, labelTime);
    this.counts.labels++;
    // Exactly the labels the prequential metrics count, so a consumer recomputes them from the output.
    if (this.config.emitLabels) {
      const record: PredictionLabel = { kind: 'label', ...this.outcomeOf(sample), time: labelTime, label: sample.label! };
      emit(record);
    }
    // Predicted before any learning step (this run's or a saved model's): a backtest's report says how many, as they rank nothing learnt.
    if (this.learns && this.counts.learnSteps === 0 && (this.warmStarted?.steps ?? 0) === 0) this.counts.scoredBeforeLearning++;
    this.unCountedLabels++;
    if (this.config.drift.detector !== 'none') {
      // Block means, each label once (a session's predictions share one): LossBlocks says why.
      const unit = lossUnit(sample);
      this.driftOn(deferred ? this.lossBlocks.addDeferred(loss, unit) : this.lossBlocks.add(loss, unit, relabelUntil), labelTime, emit);
    }
    if (!this.learns) {
      // Nothing to learn: no step (its version stays `<version>.0`), and the row goes now.
      this.letGoOfRow(sample);
      return;
    }
    this.toLearn.push(sample);
    if (this.toLearn.length >= this.config.batch.learnSize) this.flushLearning(emit);
  }

  /**
   * A score that is not a number (or not a probability), at the prediction: the model's weights are no longer finite (a
   * learning rate far too high). It has no log loss or AUC to add (scored, it would turn every metric into NaN) and nothing
   * to teach; counted, and said once, loudly, since every later prediction will be the same. One still awaiting its
   * label stays in the label buffer (a snapshot holds it, score and all, so a restored run treats it alike): its
   * label, overflow, expiry or withdrawal then counts nothing more (see countedInvalid).
   */
  private invalidScore(sample: Sample): void {
    this.letGoOfRow(sample);
    // Dropped unlabelled (full buffer, expired, withdrawn) while it waited for its batch: counted as that already.
    if (sample.released && sample.label === undefined) return;
    this.unlabelled(sample, 'invalid_score');
    if (this.counts.invalidScores++ === 0) {
      this.context.logger.error(
        { model: this.name, id: sample.id },
        this.custom
          ? `model ${this.name}: a prediction is not a number (or not between 0 and 1): its predict returned one (a custom model, ${this.custom.kind}). Its predictions carry score null and are neither scored nor learnt from; see what its predict computes`
          : `model ${this.name}: a prediction is not a number (or not between 0 and 1): the model diverged (its weights are no longer finite). Its predictions carry score null and are neither scored nor learnt from; lower optimizer.learning_rate and start the model afresh`,
      );
    }
    this.counters.invalidScores.inc();
  }

  /** Feeds a block's mean, where one closed, to the drift detector. */
  private driftOn(mean: number | undefined, time: number, emit: Emit): void {
    if (mean !== undefined && this.drift.update(mean)) this.onDrift(time, emit);
  }

  private onDrift(time: number, emit: Emit): void {
    this.counts.drifts++;
    this.counters.drifts.inc();
    const action = this.config.drift.action;
    if (this.model && action === 'reset_optimizer') this.model.optimizer.reset();
    if (this.model && action === 'raise_learning_rate') this.model.optimizer.learningRate = this.baseLearningRate * this.config.drift.factor;
    const record: ModelDrift = { kind: 'drift', model: this.name, task: this.task, detector: this.config.drift.detector, time, labels: this.counts.labels, action };
    emit(record);
    this.context.logger.info({ model: this.name, eventTime: new Date(time).toISOString(), labels: this.counts.labels, action }, `model ${this.name}: drift detected`);
  }

  /** Learns from the labelled samples queued so far, as one batch. */
  flushLearning(emit: Emit): void {
    this.snapshots.settle();
    if (this.toLearn.length === 0 || !this.model) return;
    // Test-then-train: samples submitted before this step are predicted by the model as it is now,
    // never by one that learnt from labels given after them (for intent, their own session's).
    this.flushPredictions(emit);
    const samples = this.toLearn;
    // A step nested in those predictions (labels that had come while they waited) took them all.
    if (samples.length === 0) return;
    this.toLearn = [];
    const labels = new Float32Array(samples.length);
    for (let i = 0; i < samples.length; i++) labels[i] = samples[i]!.label!;
    this.model.learnMany(this.batchOf(samples), labels);
    // Learnt: the rows go (a slab is freed with its last sample), whoever still holds the handle.
    for (let i = 0; i < samples.length; i++) this.letGoOfRow(samples[i]!);
    this.counts.learnSteps++;
    const optimizer = this.model.optimizer;
    // A raised learning rate decays back to the configured one.
    if (optimizer.learningRate > this.baseLearningRate) optimizer.learningRate = Math.max(this.baseLearningRate, optimizer.learningRate * 0.99);
    if (!this.custom) this.gauges.learningRate.set(optimizer.learningRate);
    this.exportMetrics(false);
    const every = this.config.checkpoint?.every ?? 0;
    if (every > 0 && this.counts.labels - this.lastCheckpointLabels >= every) {
      this.lastCheckpointLabels = this.counts.labels;
      this.saveInBackground();
    }
  }

  /** Sets the metric gauges; at most once a second unless `force` (end of input). */
  private exportMetrics(force: boolean): void {
    if (this.unCountedPredictions > 0) {
      this.counters.predictions.inc(this.unCountedPredictions);
      this.unCountedPredictions = 0;
    }
    if (this.unCountedLabels > 0) {
      this.counters.labels.inc(this.unCountedLabels);
      this.unCountedLabels = 0;
    }
    if (this.normaliser !== undefined) {
      const skipped = this.normaliser.skipped.takeUncounted();
      if (skipped.absent > 0) this.counters.absentValues.inc(skipped.absent);
      if (skipped.nonFinite > 0) this.counters.nonFiniteValues.inc(skipped.nonFinite);
    }
    const now = this.context.clock.now();
    if (!force && now - this.lastExport < OnlineLearner.exportEveryMs) {
      this.gaugesBehind = true;
      return;
    }
    this.lastExport = now;
    this.gaugesBehind = false;
    this.gauges.buffer.set(this.awaitingCount);
    const backendMemory = this.backend === undefined || modelsInWorkers() ? Number.NaN : backendMemoryBytes();
    if (Number.isFinite(backendMemory)) this.gauges.backendMemory.set(backendMemory);
    const s = this.prequential.summary();
    // Once measured, NaN (not the last window with both classes) while the window holds labels of one class only.
    if (s.window.auc !== null || s.auc !== null) this.gauges.auc.set(s.window.auc ?? Number.NaN);
    if (s.auc !== null) this.gauges.aucCumulative.set(s.auc);
    // Before the first label these are not measured: a 0 would read as a perfect model (churn waits a horizon).
    if (s.n === 0) return;
    this.gauges.logloss.set(s.logloss);
    this.gauges.loglossWindow.set(s.window.logloss);
    this.gauges.brier.set(s.brier);
    this.gauges.baseRate.set(s.baseRate);
    const calibration = calibrationError(this.prequential.calibrationTable());
    if (calibration) this.gauges.calibration.set(calibration.ece);
  }

  /**
   * {@link runDueBatches} from the per-record path: reads the clock every 16th record only (a record
   * takes a few µs; the clock read cost about as much as the rest of the operator's per-event work).
   */
  tickRecord(emit: Emit): void {
    if (++this.recordsSinceTick >= 16) {
      this.recordsSinceTick = 0;
      this.runDueBatches(emit);
    }
  }

  private recordsSinceTick = 0;

  /**
   * {@link runDueBatches}, and brings the prediction and label counters up to date (and the gauges, where
   * the once-a-second limit left them behind the labels scored). That is left to
   * this tick (the operators' timer, every `batch.max_delay` or 1 s, and each watermark), learning
   * steps and the end of input, not every 16th record: prom-client hashes the labels and allocates
   * on every increment (a few % of the demo's model stages when done per 16 records).
   */
  tick(emit: Emit): void {
    this.recordsSinceTick = 0;
    if (this.unCountedPredictions > 0 || this.gaugesBehind) this.exportMetrics(false);
    this.runDueBatches(emit);
  }

  /**
   * {@link tick} from the operators' timer, unless the runtime holds the sources (a checkpoint is
   * under way, from the instant its state was taken until its outputs are committed): predictions
   * emitted then would be committed with that checkpoint's outputs while its state still holds their
   * batch, and a restart from it would emit them again. The first tick after it runs the batch.
   */
  timerTick(emit: Emit): void {
    if (this.context.held?.() === undefined) this.tick(emit);
  }

  /** `batch.max_delay`, or 0 (never by time) when the input is replayed (`PluginContext.replay`). */
  private readonly maxDelayMs: number;

  /** Runs both batches when the oldest pending sample has waited `batch.max_delay` (wall clock). */
  private runDueBatches(emit: Emit): void {
    const delay = this.maxDelayMs;
    if (delay <= 0 || (this.toPredict.length === 0 && this.toLearn.length === 0)) return;
    if (this.context.clock.now() - this.oldestPending >= delay) {
      this.flushPredictions(emit);
      this.flushLearning(emit);
      this.oldestPending = this.context.clock.now();
    }
  }

  /**
   * The sample's session was merged into the session `unit` (by user and id, as sessionKey makes it): its loss counts
   * in that session's unit of the loss blocks, one session one unit (see LossBlocks).
   */
  joinUnit(handle: SampleHandle, unit: string): void {
    // One out of the label buffer unlabelled is never scored, so it has no loss to count (and a stand-in has no unit).
    if (handle.released && (handle as Partial<Sample>).label === undefined) return;
    this.changing(handle as Sample);
    (handle as Sample).unit = unit;
  }

  /**
   * The session `from` was merged into `into` (units by user and id, as sessionKey makes them): the losses of its
   * predictions labelled already count in `into`'s unit where the loss blocks can still join them (LossBlocks.merge),
   * those still to be scored (labelled before their batch ran) too: they carry `into`'s unit then.
   */
  mergeUnits(from: string, into: string): void {
    if (this.config.drift.detector === 'none' || !this.lossBlocks.merge(from, into)) return;
    for (const s of this.toBeScored(from)) {
      this.changing(s);
      s.unit = into;
    }
  }

  /**
   * A new session starts under `unit` (a data session id back after its session was forgotten): its labels are a
   * unit of their own, not a relabel of the session before (see LossBlocks.renew). The one before may still wait for
   * losses (labelled before its batch ran: mlp, gru, replayed by batch size only): its samples still to be scored go
   * on as a unit of theirs, named by the first one's prediction id after `retired:` (a key no other unit has: see lossUnit).
   */
  newUnit(unit: string, time: number, emit: Emit): void {
    if (this.config.drift.detector === 'none') return;
    if (this.lossBlocks.awaits(unit)) {
      const waiting = this.toBeScored(unit);
      if (waiting.length > 0) {
        const retired = `retired:${waiting[0]!.id}`;
        for (const s of waiting) {
          this.changing(s);
          s.unit = retired;
        }
        this.lossBlocks.retire(unit, retired);
      }
    }
    this.driftOn(this.lossBlocks.renew(unit), time, emit);
  }

  /** The samples of loss-block unit `unit` labelled before their batch ran: their losses are still to come. */
  private toBeScored(unit: string): Sample[] {
    return this.toPredict.filter((s) => s.label !== undefined && lossUnit(s) === unit);
  }

  /** The watermark reached `time`: the units of the loss blocks kept for a later label until before it are let go. */
  watermarkPassed(time: number): void {
    this.snapshots.settle();
    this.lossBlocks.release(time);
  }

  /**
   * Drops predictions still unlabelled whose event time (or the later one {@link postpone} set) is
   * before `before`; returns how many it counted as expired.
   */
  expire(before: number): number {
    this.snapshots.settle();
    let dropped = 0;
    // Submission order is roughly event-time order; stop at the first young one (the task sweeps older ones behind it: expireOne).
    for (let oldest = this.oldestAwaiting(); oldest !== undefined && oldest.expiresFrom < before; oldest = this.oldestAwaiting()) {
      if (this.drop(oldest)) {
        dropped++;
        this.unlabelled(oldest, 'expired');
      }
    }
    // In one prom-client call: expire drops many at once.
    if (dropped > 0) {
      this.counts.expired += dropped;
      this.counters.expired.inc(dropped);
    }
    return dropped;
  }

  /**
   * Counts `label_buffer.timeout` for an awaited prediction from `time` on, where that is later than
   * its own time: churn labels at its session's end + horizon, and a merge can move that end further
   * past the prediction's time than the timeout allows for. {@link expire} stops at it until then
   * (it goes in submission order), so predictions queued behind it expire no earlier than it.
   */
  postpone(handle: SampleHandle, time: number): void {
    this.snapshots.settle();
    if (handle.released) return;
    const sample = handle as Sample;
    if (time > sample.expiresFrom) {
      this.changing(sample);
      sample.expiresFrom = time;
    }
  }

  /**
   * Drops one unlabelled prediction whose label will not come, counted as expired: one past the timeout
   * that {@link expire} did not reach (queued behind a younger one), or one the task knows no label is coming for;
   * `reason` `handed_over`: its user's partition moved to another member (counted as expired too).
   */
  expireOne(handle: SampleHandle, reason: 'expired' | 'handed_over' = 'expired'): void {
    this.snapshots.settle();
    if (handle.released) return;
    if (this.drop(handle as Sample)) this.countDropped('expired', handle as Sample, reason);
  }

  /**
   * An erasure request (Operator.forget): the user's samples go, whatever they wait for: a label (the label
   * buffer), their micro-batch's prediction, or their learning step; and `unlabelled` records of theirs not yet
   * emitted. None is said in an `unlabelled` record (that would write the user out again): their handles read
   * as released, so the task operator's own state of them finds nothing to label. Each prediction is counted
   * once all the same (predictions = labels + overflow + expired + withdrawn + invalidScores + unlabelledAtEnd +
   * erased): one emitted and awaiting its label is counted `erased`; one still waiting for its batch was no
   * prediction yet, so one counted as dropped meanwhile (not held by a full buffer, expired, withdrawn:
   * givenUp) has that count taken back (the metric's counter, which counts drops as they come, keeps it).
   * What the model learnt from the user before stays in its weights. A scan: erasures are rare. Returns how
   * many samples went.
   */
  forgetUser(userId: string): number {
    this.snapshots.settle();
    const awaiting: Sample[] = [];
    // A plain loop, not awaitingSamples(): the queue holds a horizon's predictions (churn: about every user's), and the
    // generator's protocol made most of a request's time (bench/erasure-cost.ts; an index by user would cost every prediction).
    const queue = this.awaitingQueue;
    for (let i = this.awaitingHead; i < queue.length; i++) {
      const sample = queue[i]!;
      if (sample.userId === userId && !sample.released) awaiting.push(sample);
    }
    // Collected first: release() may compact the queue being walked.
    for (const sample of awaiting) this.release(sample);
    // Emitted (a score that is a probability: one that is not was counted as invalidScores), never to be labelled now.
    for (const sample of awaiting) if (sample.score !== undefined && !countedInvalid(sample)) this.counts.erased++;
    const others = (sample: Sample): boolean => sample.userId !== userId;
    for (const sample of this.toPredict) {
      if (others(sample) || sample.givenUp === undefined) continue;
      // Counted when given up, before its batch ran; never emitted now. (handed_over is counted as expired.)
      this.counts[sample.givenUp === 'handed_over' ? 'expired' : sample.givenUp]--;
      sample.givenUp = undefined;
    }
    const toPredict = this.toPredict.filter(others);
    const toLearn = this.toLearn.filter(others);
    const dropped = new Set([...awaiting, ...this.toPredict.filter((sample) => !others(sample)), ...this.toLearn.filter((sample) => !others(sample))]);
    for (const sample of dropped) {
      this.changing(sample);
      this.markReleased(sample);
    }
    this.toPredict = toPredict;
    this.toLearn = toLearn;
    this.unlabelledRecords = this.unlabelledRecords.filter((record) => record.userId !== userId);
    // The drift detector's units of the user's sessions are keyed by them (lossUnit): renamed as a retired unit is (newUnit).
    // A random key: one taken anew in each process would meet those of an earlier one restored from its checkpoint.
    this.lossBlocks.rekey((key) => isSessionKeyOf(key, userId), () => `erased:${randomUUID()}`);
    this.gauges.buffer.set(this.awaitingCount);
    return dropped.size;
  }

  /**
   * Drops one unlabelled prediction that a late event showed is not to be scored (churn: its session
   * merged into one predicted already; intent: it was made after its session's first purchase), counted as withdrawn.
   */
  withdraw(handle: SampleHandle): void {
    this.snapshots.settle();
    if (handle.released) return;
    if (this.drop(handle as Sample)) this.countDropped('withdrawn', handle as Sample);
  }

  /** End of input: run every batch; what is still unlabelled is counted. Emits the report when asked. */
  endOfInput(emit: Emit): void {
    this.snapshots.settle();
    this.flushPredictions(emit);
    this.flushLearning(emit);
    let unlabelled = 0;
    for (const sample of this.awaitingSamples()) {
      if (countedInvalid(sample)) continue;
      unlabelled++;
      this.unlabelled(sample, 'unlabelled_at_end');
    }
    this.counts.unlabelledAtEnd += unlabelled;
    this.releaseAll();
    this.emitUnlabelledNow(emit);
    this.gauges.buffer.set(0);
    this.exportMetrics(true);
    // The run's verdict on the model, where a person running a backtest or the demo will see it.
    const summary = this.prequential.summary();
    // The cumulative AUC averages in the model's first predictions (for churn, a whole horizon of
    // them at the prior): the window's says how good the model is now.
    const recent = summary.window;
    const recentScores = recentScoresText(recent, summary.n, 3);
    const recentText = recentScores === undefined ? '' : `; ${recentScores}`;
    // Predictions the scores leave out: a full label buffer is a sizing mistake (warned), expiry is the timeout's doing.
    const { overflow, expired, invalidScores, withdrawn, erased } = this.counts;
    const invalidText = invalidScores === 0 ? '' : `, ${invalidScores} not a number (the model diverged)`;
    const withdrawnText = withdrawn === 0 ? '' : `, ${withdrawn} withdrawn (a late event showed they were not to be scored)`;
    const erasedText = erased === 0 ? '' : `, ${erased} erased (their user's erasure request came before their label)`;
    const droppedText =
      overflow + expired + invalidScores + withdrawn + erased === 0
        ? ''
        : `; ${overflow + expired + invalidScores + withdrawn + erased} of ${this.counts.predictions} predictions were never scored: ${overflow} not held by a full label buffer (label_buffer.max_size), ${expired} expired unlabelled (label_buffer.timeout)${invalidText}${withdrawnText}${erasedText}`;
    // Without a label there is no mean to take: the means are null (as in a backtest's metrics.json), not a perfect 0.
    const scored = summary.n > 0;
    const logloss = scored ? summary.logloss : null;
    const brier = scored ? summary.brier : null;
    const shown = (value: number | null): string => (value === null ? 'n/a' : value.toFixed(3));
    // Why the AUC is null or measures nothing learnt, beside it, as a backtest says it (from the report's scoreReason).
    const { reason } = this.notesOn(summary);
    const reasonText = reason ? ` (${reason})` : '';
    this.context.logger[overflow + invalidScores > 0 ? 'warn' : 'info'](
      { model: this.name, task: this.task, ...summary, logloss, brier, window: undefined, recentAuc: recent.auc, recentLogloss: recent.n > 0 ? recent.logloss : null, recentLabels: recent.n, unlabelledAtEnd: this.counts.unlabelledAtEnd, overflow, expired, invalidScores, withdrawn, erased, scoreReason: reason },
      `model ${this.name} (${this.task}): ${summary.n} labels (${(summary.baseRate * 100).toFixed(1)}% positive), prequential AUC ${shown(summary.auc)}${reasonText}${this.prequential.aucNote()}, log loss ${shown(logloss)}, Brier ${shown(brier)}${recentText}${droppedText}`,
    );
    if (this.config.report) emit(this.report());
  }

  /** The `model_metrics` record the backtest reads. */
  report(): ModelMetrics {
    const summary = this.prequential.summary();
    const notes = this.notesOn(summary);
    const calibration = this.prequential.calibrationTable();
    return {
      kind: 'model_metrics',
      model: this.name,
      task: this.task,
      kind_of_model: this.custom?.kind ?? this.config.model.kind,
      backend: this.backendName ?? null,
      // The features the model reads: a custom model's selection (its featureSelectorField's), else the whole vector.
      features: this.features === undefined ? [] : [...(this.custom?.reads?.(this.features) ?? this.features)],
      summary,
      calibration,
      // Over the bins above, for a backtest's metrics.json and report (null before the first label).
      calibrationError: calibrationError(calibration),
      roc: this.prequential.rocCurve(),
      timeline: this.prequential.timelinePoints(),
      // What the timeline's windowed figures span, and the config field that sets it, for a report to say (the backtest knows no model's config).
      timelineWindow: { labels: this.prequential.window, firstPointAt: this.prequential.firstPointAt, setting: 'metrics.window' },
      counts: { ...this.counts },
      // Per feature, the values read without them (absent, not finite) over the model's life, warm starts included, as its saved normaliser counts them.
      skippedFeatureValues: this.normaliser === undefined || this.features === undefined ? { absent: {}, nonFinite: {} } : this.normaliser.skipped.byName(this.features),
      warmStart: this.warmStarted,
      // The field that starts it cold, for a backtest's report to say beside a warm start (a custom model has no model file to start from).
      ...(this.custom ? {} : { warmStartSetting: 'checkpoint.warm_start' }),
      // Where a run finds the model to warm-start from (a backtest's copy: its report lists it); none where no model was
      // built (no feature vector came: savedModel has nothing to save).
      modelFile: this.features === undefined || this.normaliser === undefined ? null : (this.saveFile() ?? null),
      // What the scores do not show by themselves, for a backtest to show beside them: said here, where the counts
      // and the config fields that change them are known. null and []: nothing to say.
      scoreReason: notes.reason ?? null,
      scoreNotes: notes.notes,
      // A challenger or the live model, for a backtest's report to set the champion and the challenger side by side.
      shadow: this.config.shadow,
    };
  }

  /** Why this model's scores (`summary`, its prequential summary now) are null or say little (see score-notes.ts). */
  private notesOn(summary: PrequentialSummary): ScoreNotes {
    return scoreNotes({ summary, counts: this.counts }, { optimizer: !this.custom });
  }

  summary(): ReturnType<Prequential['summary']> {
    return this.prequential.summary();
  }

  /**
   * The learner's state in parts (run by its operator's {@link snapshots}: 100,000 samples awaiting
   * labels took 0.5-1.5 s in one go), in two phases (PartedSnapshots.takeCopying): the copy parts read
   * the live state, which every path that changes it leaves alone until the snapshot is settled, and
   * return the encode parts, which read only what they copied and what no path changes (a sample's id,
   * user, session and time, its feature row and sequence: see {@link copySamples}). The label buffer is
   * copied on write (AwaitingCopy): the call takes the queue's bounds, and the encode parts read it while
   * records flow, every path keeping a sample not read yet before it changes it; so are the prequential metrics
   * (Prequential.stateOnWrite). The value shares nothing the learner changes later.
   */
  *snapshotParts(): CopyThenEncode<LearnerState> {
    // An earlier snapshot's gather, if still running, reads the state it was called at.
    this.finishAwaitingCopy();
    // Copies: the queue is pushed to, and its records handed downstream, after this instant.
    const unlabelled = this.unlabelledRecords.map((record) => ({ ...record }));
    const saved = this.savedModel();
    // Read in the encode parts: a label scored meanwhile keeps what it changes first.
    const prequential = this.prequential.stateOnWrite();
    const drift = this.drift.state();
    // A batch each at most: copied now.
    const toPredict = yield* this.copySamples(this.toPredict);
    const toLearn = yield* this.copySamples(this.toLearn);
    this.copyGeneration += 2;
    const gather: AwaitingCopy = (this.awaitingCopy = new AwaitingCopy(this.awaitingQueue, this.awaitingHead, this.awaitingQueue.length, this.copyGeneration, this.features?.length ?? 0, () => {
      if (this.awaitingCopy === gather) this.awaitingCopy = undefined;
    }));
    const block = this.lossBlocks.state();
    const counts = { ...this.counts };
    const versionBase = this.versionBase;
    const learner = this;
    return (function* () {
      // The label buffer first: until it is read, paths keep what they change (AwaitingCopy).
      yield* partsOf(gather.left, (from, to) => gather.readUpTo(to - from));
      const awaiting = gather.result();
      const state: LearnerState = {
        format: 4,
        saved,
        toPredict: yield* learner.encodeSamples(toPredict),
        awaiting: yield* learner.encodeSamples(awaiting),
        toLearn: yield* learner.encodeSamples(toLearn),
        prequential: prequential.read(),
        drift,
        block,
        counts,
        versionBase,
      };
      if (unlabelled.length > 0) state.unlabelled = unlabelled;
      return state;
    })();
  }

  /**
   * Restores a snapshot in parts (run by inTurns: 100,000 samples awaiting labels took 0.4-0.9 s in
   * one go): the samples are decoded a part at a time, then swapped in at once.
   */
  *restoreParts(state: LearnerState): Generator<void, void, void> {
    this.snapshots.settle();
    this.finishAwaitingCopy();
    // A later release's state (a rollback after an upgrade) is not read as this one's: the restore fails for a person
    // (restoreStage: TRIB_ERR_CHECKPOINT, naming the checkpoint file), before anything is swapped in.
    const format: unknown = state.format;
    if (typeof format === 'number' && format > learnerStateFormat) throw new Error(`model ${this.name}: its state has format ${format}, which a later release writes; this release reads formats 1 to ${learnerStateFormat}`);
    const modelFormat: unknown = state.saved?.format;
    if (typeof modelFormat === 'number' && modelFormat > savedModelFormat) throw new Error(`model ${this.name}: its saved model has format ${modelFormat}, which a later release writes; this release reads format ${savedModelFormat}`);
    if (state.saved) {
      this.loadSaved(state.saved);
      // open() warm-started from the model file, and the pipeline's checkpoint replaces that model: said, or
      // the log's "warm start from FILE" (and the report's warmStart) would claim a model this run does not use.
      if (this.warmStarted !== null) {
        this.context.logger.info(
          { file: this.warmStarted.file },
          `model ${this.name}: resumed with the model of the pipeline's checkpoint, which replaces the one warm-started from ${this.warmStarted.file} (a model file is read only by a run that starts without a checkpoint)`,
        );
        this.warmStarted = null;
      }
    }
    const toPredict: Sample[] = [];
    const awaiting: Sample[] = [];
    const toLearn: Sample[] = [];
    const slabs = this.restoredSlabs();
    yield* this.restoreSamples(state.toPredict, toPredict, slabs, 'toPredict');
    yield* this.restoreSamples(state.awaiting, awaiting, slabs, 'awaiting');
    yield* this.restoreSamples(state.toLearn, toLearn, slabs, 'toLearn');
    this.toPredict = toPredict;
    // Handles from before the restore are stale: released, so labelling one is a late label.
    this.releaseAll();
    this.awaitingQueue = awaiting;
    for (const s of this.toPredict) if (s.label === undefined && !s.released) this.awaitingQueue.push(s);
    for (const s of this.toPredict) if (s.label !== undefined) s.released = true;
    this.awaitingCount = this.awaitingQueue.length;
    this.toLearn = toLearn;
    this.prequential.load(state.prequential);
    if (state.saved) this.prior = [state.saved.labels[0] - this.prequential.n, state.saved.labels[1] - this.prequential.positives];
    this.drift.load(state.drift);
    // Labels that came before their predictions: their losses are still to come, which their units wait for.
    const block = state.format === 4 ? state.block : this.unitByUser(state.block);
    if (this.config.drift.detector !== 'none' && state.format === 4 && (Array.isArray(state.toPredict) || state.toPredict.units === undefined)) this.unitsOfMerges(block);
    const expected = this.config.drift.detector === 'none' ? [] : this.toPredict.filter((s) => s.label !== undefined).map(lossUnit);
    this.lossBlocks.load(block, expected);
    Object.assign(this.counts, state.counts);
    // Given up before the snapshot, not yet emitted then: the counts above say they were, so they are emitted from here.
    // (None where emit_labels is off now: no sink is to get the kind.)
    this.unlabelledRecords = this.config.emitLabels && Array.isArray(state.unlabelled) ? state.unlabelled.map((record) => ({ ...record })) : [];
    // A snapshot from before saved models counted their steps has the optimiser's, which a drift's reset restarted.
    if (state.saved) this.priorSteps = Math.max(0, stepsOf(state.saved) - this.counts.learnSteps);
    // A snapshot without a model (none was built yet) leaves the one open() warm-started, numbered by its steps.
    if (state.saved) this.versionBase = this.restoredVersionBase(state);
    this.lastCheckpointLabels = this.counts.labels;
    this.oldestPending = this.context.clock.now();
  }

  /**
   * The versions' base a snapshot numbered its predictions by (LearnerState.versionBase). A snapshot without it was
   * written by a build that numbered them by counts.learnSteps alone: 0, said where the model's own steps differ (a
   * warm-started model), as its versions stay behind them until a run warm-starts from the model file without a
   * pipeline checkpoint. Numbered by the steps at once, every prediction the restart makes again (the input since the
   * checkpoint, read again) would carry another version than it had, and a consumer dropping duplicates by model,
   * version and id would keep both.
   */
  private restoredVersionBase(state: LearnerState): number {
    if (typeof state.versionBase === 'number' && Number.isSafeInteger(state.versionBase) && state.versionBase >= 0) return state.versionBase;
    if (this.priorSteps > 0) {
      this.context.logger.info(
        { model: this.name, steps: this.priorSteps + this.counts.learnSteps, versionSteps: this.counts.learnSteps },
        `model ${this.name}: resumed from a checkpoint written before 2026-12-07, whose predictions were versioned by this pipeline's learning steps alone (${this.config.version}.${this.counts.learnSteps}), not the model's since it was made (${this.priorSteps + this.counts.learnSteps}, warm starts included): its versions go on so, so that the predictions made again keep theirs; a run that warm-starts from the model file without a pipeline checkpoint numbers them by the model's steps`,
      );
    }
    return 0;
  }

  /**
   * A loss block saved before format 4, its open unit keyed by session id alone, keyed as add() keys units now
   * (sessionKey): by the user of the unit's last sample where the snapshot holds it, the last to learn from
   * (queued as it was added). Else the key is left, and the next label, whoever's, closes the unit: a session
   * whose labels the snapshot fell between counts as two units, once. Run after toLearn is restored. The open unit is
   * the only key to rekey: builds before format 4 kept no waiting or kept units (the block was this 5-tuple), and the
   * units load expects for labels still to be scored are made from their samples (lossUnit: by sessionKey).
   */
  private unitByUser(block: LossBlocksState | [number, number]): LossBlocksState | [number, number] {
    if (block.length !== 5 || block[4] === null) return block;
    const last = this.toLearn[this.toLearn.length - 1];
    if (last === undefined || last.sessionId !== block[4]) return block;
    return [block[0], block[1], block[2], block[3], sessionKey(last.userId, last.sessionId)];
  }

  /**
   * A snapshot without SavedSamples.units (before 4a45a9c) lost the tags of predictions a merge moved into another
   * session (joinUnit) and its summary labelled before their batch ran: under their own session, whose run the loss
   * blocks do not hold (theirs is the merged session's), they would close as a unit of their own. Each such is given the
   * run of its user that the blocks hold, where they hold one only (a merge joins one user's sessions); else it is left,
   * one unit more, once. Run after toPredict is restored. Not for formats before 4: their builds had no merges' tags
   * and put a label before its batch in no run (scored at the batch, a unit of its own), so each such sample's own
   * session is its unit (expected by load under sessionKey, as waiting units are keyed now). A format 4 snapshot of
   * a build before waiting runs (d26256f, the same day) cannot be told apart: its such samples may join their user's
   * open run, once.
   */
  private unitsOfMerges(block: LossBlocksState | [number, number]): void {
    if (block.length === 2) return;
    const runs = new Set<string>(block.length === 5 ? [] : block[5].map(([key]) => key));
    if (block[4] !== null) runs.add(block[4]);
    for (const s of this.toPredict) {
      if (s.label === undefined || s.unit !== undefined || s.sessionId === undefined || runs.has(lossUnit(s))) continue;
      const user = sessionKey(s.userId, '');
      const ofUser = [...runs].filter((key) => key.startsWith(user));
      if (ofUser.length === 1) s.unit = ofUser[0];
    }
  }

  /** Saves the model (after any save in flight, so the last one renamed is this one) and frees it. */
  async close(): Promise<void> {
    this.snapshots.settle();
    this.finishAwaitingCopy();
    this.closedModel = this.savedModel() ?? undefined;
    this.model?.dispose();
    this.model = undefined;
    this.saveAgain = false;
    await this.saving;
    try {
      await this.writeModel(this.closedModel ?? null);
    } finally {
      this.releaseModelFile();
    }
  }

  /** One row of its own, in the slab's format (its 1 set for models that fold biases in). */
  private newRow(): Float32Array {
    const row = new Float32Array(this.stride);
    if (this.withOnes) row[this.features!.length] = 1;
    return row;
  }

  /** What a snapshot needs of `samples` that a later record may change (see snapshotParts, copySampleInto), in parts. */
  private *copySamples(samples: readonly Sample[]): Generator<void, CopiedSamples, void> {
    const copied = newCopiedSamples(samples.length, this.features?.length ?? 0);
    yield* partsOf(samples.length, (from, to) => {
      for (let i = from; i < to; i++) copySampleInto(copied, samples[i]!);
    });
    return copied;
  }

  /** Samples copied (copySamples) as columns, in parts: reads nothing the learner changes (see snapshotParts). */
  private *encodeSamples(copied: CopiedSamples): Generator<void, SavedSamples, void> {
    const { samples, flags, score, label, expiresFrom } = copied;
    const n = samples.length;
    const d = copied.width;
    // Ids the task's deriveId does not remake, in order.
    const ids: string[] = [];
    const ownerUsers: string[] = [];
    const ownerSessions: (string | null)[] = [];
    // A session's first owner; a pair whose user is not its session's first (none in the soak) by both, as text.
    const ownerBySession = new Map<string | undefined, number>();
    const otherOwners = new Map<string, number>();
    let withSession = false;
    const derive = this.deriveId;
    const [time, idKeys, owners, rowNumbers] = Array.from({ length: 4 }, () => new Float64Array(n));
    let postponed = false;
    const x = new Float32Array(n * d);
    let xRows = 0;
    let seqLength = -1;
    const types: number[] = [];
    const categories: number[] = [];
    const steps: number[] = [];
    // The next of the rows and sequences copied.
    let atRow = 0;
    let atSeq = 0;
    yield* partsOf(n, (from, to) => {
      for (let i = from; i < to; i++) {
        const s = samples[i]!;
        // Checked, not trusted: an id the task made otherwise is kept as it is.
        const derived = derive !== undefined && s.idKey >= 0 && Number.isSafeInteger(s.idKey) && derive(s.userId, s.sessionId, s.time, s.idKey) === s.id;
        idKeys[i] = derived ? s.idKey : -1;
        if (!derived) ids.push(s.id);
        let owner = ownerBySession.get(s.sessionId);
        if (owner !== undefined && ownerUsers[owner] !== s.userId) owner = otherOwners.get(JSON.stringify([s.sessionId ?? null, s.userId]));
        if (owner === undefined) {
          owner = ownerUsers.length;
          if (!ownerBySession.has(s.sessionId)) ownerBySession.set(s.sessionId, owner);
          else otherOwners.set(JSON.stringify([s.sessionId ?? null, s.userId]), owner);
          ownerUsers.push(s.userId);
          ownerSessions.push(s.sessionId ?? null);
          if (s.sessionId !== undefined) withSession = true;
        }
        owners[i] = owner;
        rowNumbers[i] = i;
        time[i] = s.time;
        if (expiresFrom[i] !== s.time) postponed = true;
        const f = flags[i]!;
        if ((f & SAMPLE_ROW) !== 0) {
          const slab = copied.rows[atRow]!;
          // A loop, not a subarray per sample (a view is an allocation).
          for (let k = 0, from = copied.rowAt[atRow]!, at = xRows++ * d; k < d; k++) x[at + k] = slab[from + k]!;
          atRow++;
        }
        if ((f & SAMPLE_SEQ) !== 0) {
          const seq = copied.seqs[atSeq++]!;
          if (seqLength < 0) seqLength = seq.types.length;
          if (seq.types.length !== seqLength || seq.categories.length !== seqLength || seq.steps.length !== seqLength * stepFeatures) throw new RangeError(`sequences of ${seqLength} and ${seq.types.length} steps in one snapshot`);
          for (let k = 0; k < seqLength; k++) types.push(seq.types[k]!), categories.push(seq.categories[k]!);
          for (let k = 0; k < seq.steps.length; k++) steps.push(seq.steps[k]!);
        }
      }
    });
    const raw = copied.raws.map(encodeFloats);
    const withSeq = seqLength >= 0;
    const columns = yield* encodeNamedColumns({ time, flags, score, label, idKeys });
    const savedOwners: SavedOwners = { userIds: ownerUsers, rows: yield* encodeColumn(owners, { values: rowNumbers, ref: ROW_NUMBERS }) };
    if (withSession) savedOwners.sessionIds = yield* encodeDerivedIds(ownerUsers, ownerSessions);
    const saved: SavedSamples = { ids, ...columns, owners: savedOwners, x: encodeFloats(x.subarray(0, xRows * d)) };
    if (postponed) saved.expiresFrom = yield* encodeColumn(expiresFrom, { values: time, ref: TIMES });
    if (raw.length > 0) saved.raw = raw;
    if (copied.units.length > 0) saved.units = copied.units;
    if (withSeq) {
      const seq = yield* encodeNamedColumns({ types: Float64Array.from(types), categories: Float64Array.from(categories) });
      saved.seq = { length: seqLength, ...seq, steps: encodeFloats(Float32Array.from(steps)) };
    }
    return saved;
  }

  /** Samples of any format into `into`, in parts (see restoreParts); throws on columns that do not fit together. */
  private *restoreSamples(saved: SavedSamples | EncodedSample[], into: Sample[], slabs: () => { rows: Float32Array; row: number }, list: string): Generator<void, void, void> {
    if (Array.isArray(saved)) {
      yield* eachOf(saved, (e) => into.push(this.decodeSample(e, slabs)));
      return;
    }
    const what = `learner snapshot: ${list}`;
    const owned = saved.owners === undefined ? this.ownersOfFormat2(saved, what) : this.ownersOfFormat3(saved, saved.owners, what);
    const { n, userAt, sessionAt } = owned;
    const { time, flags, score, label } = decodeNamedColumns(saved, ['time', 'flags', 'score', 'label'], n, what);
    const idAt = owned.ids(time);
    const expiresFrom = saved.expiresFrom === undefined ? undefined : decodeColumnOf(saved.expiresFrom, n, `${what}: expiresFrom`, { values: time!, ref: TIMES });
    const d = this.features?.length ?? 0;
    if (typeof saved.x !== 'string') throw new Error(`${what}: no feature rows`);
    const x = decodeFloats(saved.x);
    const raw = decodeStrings(saved.raw ?? [], undefined, `${what}: raw`);
    const L = saved.seq?.length ?? 0;
    // Rows of each kind, to check the lists that hold them, in one pass.
    let rowsWithX = 0;
    let rowsWithRaw = 0;
    let rowsWithSeq = 0;
    for (let i = 0; i < n; i++) {
      const f = flags![i]!;
      if (!Number.isInteger(f) || f < 0 || f >= SAMPLE_FLAGS_END || f >> SAMPLE_GIVEN_UP_SHIFT > dropReasons.length) throw new Error(`${what}: flags ${f} at row ${i}`);
      if ((f & SAMPLE_ROW) !== 0) rowsWithX++;
      if ((f & SAMPLE_RAW) !== 0) rowsWithRaw++;
      if ((f & SAMPLE_SEQ) !== 0) rowsWithSeq++;
    }
    if (x.length !== rowsWithX * d) throw new Error(`${what}: ${x.length} feature values for ${rowsWithX} rows of ${d}`);
    if (raw.length !== rowsWithRaw) throw new Error(`${what}: ${raw.length} raw feature rows for ${rowsWithRaw}`);
    const types = saved.seq ? decodeColumnOf(saved.seq.types, rowsWithSeq * L, `${what}: seq.types`) : new Float64Array(0);
    const categories = saved.seq ? decodeColumnOf(saved.seq.categories, rowsWithSeq * L, `${what}: seq.categories`) : new Float64Array(0);
    const steps = saved.seq ? decodeFloats(saved.seq.steps) : new Float32Array(0);
    if (rowsWithSeq > 0 && (!Number.isSafeInteger(L) || L < 1 || steps.length !== rowsWithSeq * L * stepFeatures)) throw new Error(`${what}: sequences do not fit their rows`);
    const units = this.unitsOfRows(saved.units, n, what);
    let atRow = 0;
    let atRaw = 0;
    let atSeq = 0;
    yield* partsOf(n, (from, to) => {
      for (let i = from; i < to; i++) {
        const f = flags![i]!;
        let rows: Float32Array | undefined;
        let row = 0;
        if ((f & SAMPLE_ROW) !== 0) {
          ({ rows, row } = slabs());
          for (let k = 0, at = atRow++ * d; k < d; k++) rows[row + k] = x[at + k]!;
          if (this.withOnes) rows[row + d] = 1;
        }
        let seq: SequenceSample | undefined;
        if ((f & SAMPLE_SEQ) !== 0) {
          seq = { types: Int32Array.from(types.subarray(atSeq * L, (atSeq + 1) * L)), categories: Int32Array.from(categories.subarray(atSeq * L, (atSeq + 1) * L)), steps: steps.slice(atSeq * L * stepFeatures, (atSeq + 1) * L * stepFeatures) };
          atSeq++;
        }
        const s = newSample(idAt(i), userAt(i), sessionAt(i), time![i]!, rows, row, seq, owned.idKeyAt(i));
        if (expiresFrom !== undefined) s.expiresFrom = expiresFrom[i]!;
        if ((f & SAMPLE_RAW) !== 0) s.raw = decodeFloats(raw[atRaw++]!);
        if ((f & SAMPLE_SCORED) !== 0) s.score = score![i]!;
        if ((f & SAMPLE_LABELLED) !== 0) s.label = label![i]!;
        s.unit = units.get(i);
        // Still to be predicted and emitted, but no longer awaited: its label, if one comes, is late.
        if ((f & SAMPLE_DROPPED) !== 0) s.released = true;
        const givenUp = f >> SAMPLE_GIVEN_UP_SHIFT;
        if (givenUp > 0) s.givenUp = dropReasons[givenUp - 1];
        into.push(s);
      }
    });
  }

  /** SavedSamples.units by row; throws on a row out of range or a unit not a string. */
  private unitsOfRows(saved: unknown, n: number, what: string): Map<number, string> {
    const units = new Map<number, string>();
    if (saved === undefined) return units;
    if (!Array.isArray(saved)) throw new Error(`${what}: units not a list`);
    for (const entry of saved as unknown[]) {
      const [row, unit] = Array.isArray(entry) ? (entry as unknown[]) : [];
      if (typeof row !== 'number' || !Number.isInteger(row) || row < 0 || row >= n || typeof unit !== 'string') throw new Error(`${what}: units: ${JSON.stringify(entry)} is not [a row of ${n}, a unit]`);
      units.set(row, unit);
    }
    return units;
  }

  /** Each row's user and session, and a reader of its ids, in the second format: every row's written. */
  private ownersOfFormat2(saved: SavedSamples, what: string): RowOwners {
    const ids = decodeStrings(saved.ids, undefined, `${what}: ids`);
    const n = ids.length;
    const userIds = decodeStrings(saved.userIds, n, `${what}: userIds`);
    const sessionIds = saved.sessionIds === undefined ? undefined : decodeNullableStrings(saved.sessionIds, n, `${what}: sessionIds`);
    return { n, userAt: (i) => userIds[i]!, sessionAt: (i) => sessionIds?.[i] ?? undefined, ids: () => (i) => ids[i]!, idKeyAt: () => -1 };
  }

  /** The same in the third format: owners once each, ids remade by the task's deriveId; throws on columns that do not fit together. */
  private ownersOfFormat3(saved: SavedSamples, owners: SavedOwners, what: string): RowOwners {
    const n = saved.time?.n;
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: not a snapshot column`);
    const users = decodeStrings(owners.userIds, undefined, `${what}: owners: userIds`);
    const sessions = owners.sessionIds === undefined ? undefined : decodeDerivedIds(users, owners.sessionIds, what);
    const rowNumbers = new Float64Array(n);
    for (let i = 0; i < n; i++) rowNumbers[i] = i;
    const ownerOf = decodeColumn(owners.rows, what, { values: rowNumbers, ref: ROW_NUMBERS });
    const keys = decodeColumnOf(saved.idKeys!, n, `${what}: idKeys`);
    const ids = decodeStrings(saved.ids, undefined, `${what}: ids`);
    let written = 0;
    for (let i = 0; i < n; i++) {
      const owner = ownerOf[i]!;
      if (!Number.isInteger(owner) || owner < 0 || owner >= users.length) throw new Error(`${what}: owner ${owner} at row ${i} of ${users.length}`);
      const key = keys[i]!;
      if (key === -1) written++;
      else if (!Number.isSafeInteger(key) || key < 0) throw new Error(`${what}: id key ${key} at row ${i}`);
      else if (this.deriveId === undefined) throw new Error(`${what}: ids to remake, but the ${this.task} task makes none`);
    }
    if (written !== ids.length) throw new Error(`${what}: ${ids.length} ids written for ${written} rows`);
    const derive = this.deriveId;
    return {
      n,
      userAt: (i) => users[ownerOf[i]!]!,
      sessionAt: (i) => sessions?.[ownerOf[i]!],
      // Read in row order (written ids are taken in turn).
      ids: (time) => {
        let next = 0;
        return (i) => (keys[i]! < 0 ? ids[next++]! : derive!(users[ownerOf[i]!]!, sessions?.[ownerOf[i]!], time[i]!, keys[i]!));
      },
      idKeyAt: (i) => keys[i]!,
    };
  }

  /**
   * Where restored (or remapped: remapRows) samples' rows go: slabs of `batch.max_size` rows in the slab's format, as at
   * submit (a buffer of its own per sample, and one more to decode it into, made 200,000 ArrayBuffers
   * for 100,000 samples awaiting labels: work for the garbage collector while the loop waits). The
   * caller writes the row's features, then its 1 where the model folds biases in.
   */
  private restoredSlabs(): () => { rows: Float32Array; row: number } {
    const stride = this.stride;
    const size = this.config.batch.maxSize * stride;
    const place = { rows: new Float32Array(0), row: 0 };
    let used = size;
    return () => {
      if (used + stride > size) {
        place.rows = new Float32Array(size);
        used = 0;
      }
      place.row = used;
      used += stride;
      return place;
    };
  }

  /** A sample of the first format, after the saved model is loaded (the row format is the model's); `slabs` places its row. */
  private decodeSample(e: EncodedSample, slabs: () => { rows: Float32Array; row: number }): Sample {
    let rows: Float32Array | undefined;
    let row = 0;
    if (e.x) {
      ({ rows, row } = slabs());
      if (decodeFloatsInto(e.x, rows, row) > this.features!.length) throw new RangeError(`a saved sample has more features than the model's ${this.features!.length}`);
      if (this.withOnes) rows[row + this.features!.length] = 1;
    }
    const seq = e.seq ? { types: Int32Array.from(e.seq.types), categories: Int32Array.from(e.seq.categories), steps: decodeFloats(e.seq.steps) } : undefined;
    const s = newSample(e.id, e.userId, e.sessionId, e.time, rows, row, seq);
    if (e.raw !== undefined) s.raw = decodeFloats(e.raw);
    s.score = e.score;
    s.label = e.label;
    // Still to be predicted and emitted, but no longer awaited: its label, if one comes, is late.
    if (e.dropped) s.released = true;
    return s;
  }
}

/** What a model stage does with its input around its learner (see {@link learnerOperator}). */
export interface LearnerStageHandlers {
  event(event: ClickEvent, emit: Emit): void;
  summary(summary: SessionSummary, emit: Emit): void;
  /** A watermark before the end of input: labels and expiries due by `time` (the learner's batches run after). */
  watermark(time: number, emit: Emit): void;
  /** The end of input, before the learner's last batches. */
  ended?(): void;
}

/**
 * A model stage's operator: passes every record on, hands events and session summaries to the task's
 * handlers, and runs the learner's micro-batches as records and watermarks come and on a timer (every
 * `batch.max_delay`, else every second), so a quiet stream's predictions still leave.
 */
export function learnerOperator(context: PluginContext, learner: OnlineLearner, handlers: LearnerStageHandlers): RecordOperator {
  // A shadow stage's own records (every one the handlers and the learner make) go to its side output; the
  // records it is given still pass on down the main stream.
  const toShadow: Emit | undefined = learner.config.shadow ? (record) => context.sideOutput(shadowOutput, record as StreamRecord) : undefined;
  return recordOperator(context, () => {
    // The emit the timer's ticks use: the first record's (a closure over `emit` made in `record` would
    // cost a context allocation per record, made or not).
    let tickEmit: Emit | undefined;
    // The records an event's handling makes, held until the event itself is passed on (see `record`).
    const held: Element[] = [];
    const hold: Emit = (element) => void held.push(element);
    const releaseHeld = (emit: Emit): void => {
      for (let i = 0; i < held.length; i++) emit(held[i]!);
      held.length = 0;
    };
    const timer = setInterval(() => {
      if (!tickEmit) return;
      learner.timerTick(tickEmit);
      learner.emitUnlabelled(tickEmit);
    }, Math.max(10, learner.config.batch.maxDelayMs || 1000));
    timer.unref();
    return {
      record(record, emit) {
        const out = toShadow ?? emit;
        tickEmit ??= out;
        if (record.kind === 'event') {
          // Read before it is passed on: a feature stage after this one appends to the event's vector in place
          // (FeatureBlock), and a model reads the features of the stages before it alone (a challenger after a
          // stage the live model is before gets more). What it makes meanwhile follows the event, as it did.
          try {
            handlers.event(record as ClickEvent, toShadow ?? hold);
          } catch (error) {
            releaseHeld(emit); // what it made before it threw goes out, as it did when the event went first
            throw error;
          }
          emit(record);
          releaseHeld(emit);
        } else {
          emit(record);
          if (isSessionSummary(record)) handlers.summary(record, out);
        }
        learner.tickRecord(out);
        learner.emitUnlabelled(out);
      },
      watermark(mark, emit) {
        const out = toShadow ?? emit;
        learner.snapshots.settle();
        if (mark.time === Infinity) {
          handlers.ended?.();
          learner.endOfInput(out);
          return;
        }
        handlers.watermark(mark.time, out);
        learner.watermarkPassed(mark.time);
        learner.tick(out);
        learner.emitUnlabelled(out);
      },
      // Runs after completion too (a stop keeps pending batches for the snapshot): one place clears the timer.
      finalize() {
        tickEmit = undefined;
        clearInterval(timer);
      },
    };
  });
}

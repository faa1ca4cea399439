/**
 * `intent-model`: P(this session ends in a purchase), predicted at every event of a session before
 * its first purchase. Every label of a session comes when it closes (its summary): 1 if it bought.
 * Not at the purchase itself: positives would then reach the model about a session gap before
 * negatives, so it would learn (and its metrics would score) an early stream rich in buyers.
 * Predictions wait in a bounded buffer until then; each label is scored against its prediction,
 * then learnt from (prequential, test-then-train).
 */
import { checkListLengths, type ClickEvent, type Column, type CopyingSnapshot, decodeColumnOf, decodeNamedColumns, decodeOptionalColumnOf, decodeStrings, defineOperator, eachOf, type Emit, encodeNamedColumns, type EntryProblem, inTurns, type OutlineEntry, parseDuration, partsOf, type PipelineOutline, type PluginContext, type Operator, type SessionSummary, sessionKey, turnDue } from 'tributary';
import { idPrefix, learnerOperator, OnlineLearner, predictionIdAfter, type IdPrefix, type LearnerState, type SampleHandle, type SampleInput } from './learner.js';
import type { CustomModelSource } from './custom.js';
import { claimModelName, defaultLabelTimeout, bareMillisecondsWarnings, inapplicableFieldProblems, modelEmits, sessionizerProblems, modelEmitsOnlyWith, modelNameProblems, modelSideOutputs, modelSideOutputsOnlyWith, modelOperatorProperties, resolveConfig, type ModelOperatorConfig } from './config.js';
import { releaseReached, SequenceTracker, type SequencesState } from './sequence.js';
import { closedEarly, mergedAwayIds } from './summaries.js';

export type IntentModelConfig = ModelOperatorConfig;

interface SessionState {
  userId: string;
  /** The session (or one merged into it) bought: no more predictions; its labels (1) come when it closes. */
  purchased?: boolean;
  /** Event time of its first purchase (undefined: none seen, or restored from a snapshot without it): predictions after it are withdrawn. */
  purchasedAt?: number;
  /**
   * Its summary came and labelled its predictions. Only a session that bought is kept so, until its summary's
   * keptUntil (see closedBought; the sweep, a timeout after its last event, where the summary had none): a late
   * event may still reopen it, and is not to be predicted.
   */
  labelled: boolean;
  /** Predictions waiting for this session's label. */
  pending: SampleHandle[];
  /** Latest event time, for the label timeout. */
  last: number;
  /** Hash of (model, user, session): each prediction id adds the event's time and position. */
  ids?: IdPrefix;
  /** Its place in the map's order, ascending as sessions are added (SessionsCopy tells the call's sessions, and which it read, by it). */
  order: number;
}

/** A session as the first format snapshotted it (one object each): its predictions by id. */
type SavedSession = Omit<SessionState, 'pending' | 'order'> & { pending: string[] };

/** The sessions as columns (see core/columns.ts), a row each, in the map's order. */
interface SavedSessions {
  /** Format 4: each session's sessionKey (user and id). Before: its id alone (ids then named one session of any user). */
  keys: string[];
  userIds: string[];
  last: Column;
  /** SESSION_PURCHASED | SESSION_LABELLED | SESSION_HAS_IDS. */
  flags: Column;
  /** The id prefix (IdPrefix h1, h2) where SESSION_HAS_IDS. */
  idsH1: Column;
  idsH2: Column;
  /**
   * Predictions waiting for each session's label. Format 3: those the label buffer still awaits (the
   * session's last ones among its awaiting predictions: see restoreSessions). Format 2: all, their
   * ids in `pending`, session after session.
   */
  pendingCounts: Column;
  /** Format 3: each session's predictions no longer awaited (overflowed or expired): their labels count as late. */
  releasedCounts?: Column;
  /** Format 2 only: the ids of the pending predictions. */
  pending?: string[];
  /** Each session's first purchase time (NaN: none, or not known); absent from snapshots written before it (not known). */
  purchasedAt?: Column;
  /**
   * A closed session that bought: its summary's keptUntil, when it is forgotten (NaN: not so kept, see closedBought);
   * absent from snapshots written before it (each such session forgotten by the sweep, as then).
   */
  keptUntil?: Column;
}

const SESSION_PURCHASED = 1;
const SESSION_LABELLED = 2;
const SESSION_HAS_IDS = 4;

/** A session's row of a snapshot as at its call, kept before a record changed it (SessionsCopy.keep). */
interface KeptSession {
  order: number;
  key: string;
  userId: string;
  last: number;
  flags: number;
  idsH1: number;
  idsH2: number;
  pendingCount: number;
  releasedCount: number;
  purchasedAt: number;
  keptUntil: number;
}

/**
 * The sessions of a snapshot, copied on write (as churn's users, UsersCopy): its call takes only the map's size, an
 * iterator over it and the next session's `order` (the sources held O(1); was a walk of every open session); the
 * sessions are read into columns while records flow (readUpTo, in the encode parts). Sessions are only added at the
 * map's end, so it holds the call's in `order`, then those added since. Until all are read, a path about to change a
 * session not read yet (its fields, its pending predictions, its closedBought entry) keeps its row first (keep), and
 * one about to delete it keeps it too (deleting), written at its place by its order. A pending prediction counts as
 * released where it was at the call (OnlineLearner.releasedBefore: the label buffer releases them while records flow
 * without a word to the session). Their pending predictions as counts, not ids: the label buffer's snapshot holds
 * the predictions, each with its session. So the columns are byte for byte those of a copy made at the call.
 */
class SessionsCopy {
  readonly n: number;
  /** The live map's entries in its order, read up to the first added since the call. */
  private readonly entries: Iterator<[string, SessionState]>;
  private liveRead = false;
  /** The order of the last session read from the map: those up to it are read. */
  private readOrder = -1;
  private readonly kept = new Map<SessionState, KeptSession>();
  /** Kept sessions the map let go of before they were read, written at their place (sorted by order, descending, when `sorted`). */
  private readonly deleted: KeptSession[] = [];
  private sorted = true;
  private written = 0;
  readonly keys: string[] = [];
  readonly userIds: string[] = [];
  readonly last: Float64Array;
  readonly flags: Float64Array;
  readonly idsH1: Float64Array;
  readonly idsH2: Float64Array;
  readonly pendingCounts: Float64Array;
  readonly releasedCounts: Float64Array;
  readonly purchasedAt: Float64Array;
  readonly keptUntil: Float64Array;

  constructor(
    sessions: ReadonlyMap<string, SessionState>,
    /** The order the next session added gets: the call's sessions are below it. */
    private readonly endOrder: number,
    private readonly closedBought: ReadonlyMap<string, number>,
    /** Whether a pending prediction was released at the call. */
    private readonly releasedThen: (handle: SampleHandle) => boolean,
    /** Called once every session is read: paths need keep nothing more. */
    private readonly onRead: () => void,
  ) {
    const n = (this.n = sessions.size);
    this.entries = sessions.entries();
    [this.last, this.flags, this.idsH1, this.idsH2, this.pendingCounts, this.releasedCounts, this.purchasedAt, this.keptUntil] = Array.from({ length: 8 }, () => new Float64Array(n));
  }

  get done(): boolean {
    return this.written === this.n && this.liveRead;
  }

  /**
   * Before a path changes `state` (at `key`), its pending predictions or its closedBought entry: kept as at the call
   * where not read yet. `keptUntil`: its closedBought entry at the call, where the path took that out first.
   */
  keep(key: string, state: SessionState, keptUntil: number | undefined): void {
    if (state.order >= this.endOrder || state.order <= this.readOrder || this.kept.has(state)) return;
    const row = this.rowOf(key, state, keptUntil);
    this.kept.set(state, row);
  }

  /** Before the map lets go of `state` (at `key`): kept where not read yet, and written at its place. */
  deleting(key: string, state: SessionState): void {
    this.keep(key, state, this.closedBought.get(key));
    const row = this.kept.get(state);
    if (row === undefined) return;
    this.kept.delete(state);
    this.deleted.push(row);
    this.sorted = false;
  }

  /** Reads about `count` more sessions into the columns. */
  readUpTo(count: number): void {
    for (let k = 0; k < count && !this.liveRead; k++) {
      const next = this.entries.next();
      if (next.done || next.value[1].order >= this.endOrder) {
        this.liveRead = true;
        break;
      }
      const [key, live] = next.value;
      this.writeDeletedBefore(live.order);
      const row = this.kept.get(live);
      if (row === undefined) this.write(this.rowOf(key, live, this.closedBought.get(key)));
      else {
        this.kept.delete(live);
        this.write(row);
      }
      this.readOrder = live.order;
    }
    if (this.liveRead) this.finish();
  }

  /** The deleted sessions before `order` (all: Infinity) in their places. */
  private writeDeletedBefore(order: number): void {
    const deleted = this.deleted;
    if (deleted.length === 0) return;
    if (!this.sorted) {
      deleted.sort((a, b) => b.order - a.order);
      this.sorted = true;
    }
    while (deleted.length > 0 && deleted[deleted.length - 1]!.order < order) this.write(deleted.pop()!);
  }

  private finish(): void {
    this.liveRead = true;
    this.writeDeletedBefore(Infinity);
    // Each of the call's sessions is read from the map or was kept as it let go of it: one row each.
    if (this.written !== this.n) throw new Error(`intent snapshot: ${this.written} sessions read of the ${this.n} at the call`);
    this.kept.clear();
    this.onRead();
  }

  private rowOf(key: string, state: SessionState, keptUntil: number | undefined): KeptSession {
    let released = 0;
    for (const sample of state.pending) if (this.releasedThen(sample)) released++;
    return {
      order: state.order,
      key,
      userId: state.userId,
      last: state.last,
      flags: (state.purchased ? SESSION_PURCHASED : 0) | (state.labelled ? SESSION_LABELLED : 0) | (state.ids ? SESSION_HAS_IDS : 0),
      idsH1: state.ids?.h1 ?? 0,
      idsH2: state.ids?.h2 ?? 0,
      pendingCount: state.pending.length - released,
      releasedCount: released,
      purchasedAt: state.purchasedAt ?? NaN,
      keptUntil: keptUntil ?? NaN,
    };
  }

  private write(row: KeptSession): void {
    const i = this.written++;
    this.keys.push(row.key);
    this.userIds.push(row.userId);
    this.last[i] = row.last;
    this.flags[i] = row.flags;
    this.idsH1[i] = row.idsH1;
    this.idsH2[i] = row.idsH2;
    this.pendingCounts[i] = row.pendingCount;
    this.releasedCounts[i] = row.releasedCount;
    this.purchasedAt[i] = row.purchasedAt;
    this.keptUntil[i] = row.keptUntil;
  }
}

/** The sessions (read in parts first, see SessionsCopy) in the columns of a snapshot, while records flow. */
function* encodeSessions(copy: SessionsCopy): Generator<void, SavedSessions, void> {
  while (!copy.done) {
    copy.readUpTo(1024);
    if (turnDue()) yield;
  }
  const { keys, userIds, last, flags, idsH1, idsH2, pendingCounts, releasedCounts, purchasedAt, keptUntil } = copy;
  const columns = yield* encodeNamedColumns({ last, flags, idsH1, idsH2, pendingCounts, releasedCounts, purchasedAt, keptUntil });
  return { keys, userIds, ...columns };
}

/** A pending prediction no longer awaited, restored (what a label of it does is count a late label). */
const releasedHandle: SampleHandle = Object.freeze({ id: '', released: true });

/**
 * A session's pending handles in format 3: its last `count` predictions among those awaiting with its
 * session id, in order (an earlier session of the same id, dropped from the map when it was full,
 * left its predictions awaiting, older than these), then its released ones.
 */
function pendingOf(awaiting: readonly SampleHandle[] | undefined, count: number, released: number, what: string): SampleHandle[] {
  const have = awaiting?.length ?? 0;
  if (count > have) throw new Error(`${what}: ${count} predictions pending, ${have} awaiting for the session`);
  const handles = count === 0 ? [] : awaiting!.slice(have - count);
  for (let k = 0; k < released; k++) handles.push(releasedHandle);
  return handles;
}

/**
 * The sessions of a snapshot's columns into `into`, keyed by sessionKey, in parts (see inTurns); throws on
 * columns that do not fit together. Formats 2 and 3 keyed a session by its id alone: its key is made of
 * its user and id here (each id's user put in `usersById`), and its awaiting predictions are found by its
 * id, as they were saved. Closed sessions that bought, with their keptUntil, into `closedBought` (by keptUntil).
 */
function* restoreSessions(saved: SavedSessions, into: Map<string, SessionState>, learner: OnlineLearner, format: 2 | 3 | 4, usersById: Map<string, string>, closedBought: Map<string, number>): Generator<void, void, void> {
  const what = 'intent snapshot: sessions';
  const keys = decodeStrings(saved.keys, undefined, `${what}: keys`);
  const n = keys.length;
  const userIds = decodeStrings(saved.userIds, n, `${what}: userIds`);
  const { last, flags, idsH1, idsH2, pendingCounts } = decodeNamedColumns(saved, ['last', 'flags', 'idsH1', 'idsH2', 'pendingCounts'], n, what);
  const purchasedAt = decodeOptionalColumnOf(saved.purchasedAt, n, `${what}: purchasedAt`);
  const keptUntil = decodeOptionalColumnOf(saved.keptUntil, n, `${what}: keptUntil`);
  const kept: [string, number][] = [];
  let pendingAt: (i: number) => SampleHandle[];
  if (format === 2) {
    const handleOf = yield* learner.handlesById();
    const pending = decodeStrings(saved.pending, undefined, `${what}: pending`);
    checkListLengths(pendingCounts, pending.length, `${what}: pending`);
    let at = 0;
    pendingAt = (i) => {
      const handles: SampleHandle[] = [];
      for (const end = at + pendingCounts[i]!; at < end; at++) handles.push(handleOf(pending[at]!));
      return handles;
    };
  } else {
    const releasedCounts = decodeColumnOf(saved.releasedCounts!, n, `${what}: releasedCounts`);
    checkListLengths(pendingCounts, sumOf(pendingCounts), `${what}: pendingCounts`);
    checkListLengths(releasedCounts, sumOf(releasedCounts), `${what}: releasedCounts`);
    const bySession = yield* learner.awaitingBySession(format === 4);
    pendingAt = (i) => pendingOf(bySession.get(keys[i]!), pendingCounts[i]!, releasedCounts[i]!, what);
  }
  yield* partsOf(n, (from, to) => {
    for (let i = from; i < to; i++) {
      const handles = pendingAt(i);
      const f = flags[i]!;
      const ids = (f & SESSION_HAS_IDS) !== 0 ? { h1: idsH1[i]!, h2: idsH2[i]! } : undefined;
      const state: SessionState = { userId: userIds[i]!, purchased: (f & SESSION_PURCHASED) !== 0, labelled: (f & SESSION_LABELLED) !== 0, pending: handles, last: last[i]!, ids, order: 0 };
      const bought = purchasedAt?.[i];
      if (bought !== undefined && !Number.isNaN(bought)) state.purchasedAt = bought;
      const until = keptUntil?.[i];
      if (until !== undefined && !Number.isNaN(until)) kept.push([keys[i]!, until]);
      if (format === 4) into.set(keys[i]!, state);
      else {
        into.set(sessionKey(state.userId, keys[i]!), state);
        usersById.set(keys[i]!, state.userId);
      }
    }
  });
  // In the order they are let go (the map's order, which a snapshot did not keep).
  kept.sort((a, b) => a[1] - b[1]);
  for (const [key, until] of kept) closedBought.set(key, until);
}

/**
 * The earlier of two purchase times, either not known (undefined): a session's first purchase is at
 * or before each it saw, so the earliest known is a bound that withdraws no prediction made before it.
 */
function earliest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/**
 * The watermark until which a closed session may be labelled again: a late event joins it until the watermark passes
 * its keptUntil (its end + the sessionizer's gap + allowed_lateness), and the updated summary comes a gap after its new
 * end, which is at most keptUntil: by keptUntil + gap, gap at most keptUntil - end. Undefined where the summary has no
 * keptUntil (made elsewhere: nothing says how late a label may come again). A session that bought gets it too: its
 * late events are not predicted, but a late event may merge it with another of its user's sessions, whose summary
 * labelled that one already, and its unit of the loss blocks must be kept to join theirs (LossBlocks.merge) by the same
 * bound (a merge needs both sessions still held). It costs a key a buyer, kept as long as a non-buyer's.
 */
function relabelUntil(summary: SessionSummary): number | undefined {
  const keptUntil = summary.keptUntil;
  return typeof keptUntil === 'number' && Number.isFinite(keptUntil) && keptUntil >= summary.end ? keptUntil + (keptUntil - summary.end) : undefined;
}

/** The sum of a column's values (NaN for one not a number). */
function sumOf(values: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum;
}

interface IntentState {
  /**
   * 4: as 3, sessions (and GRU sequences) keyed by sessionKey, their user and id. 3: sessions as columns,
   * their pending predictions as counts, keyed by session id alone (two users' sessions of one data id were
   * one). 2: columns, pending predictions by id. Absent: the first format, sessions as [key, SavedSession].
   * All restored still.
   */
  format?: 2 | 3 | 4;
  learner: LearnerState;
  sessions: SavedSessions | [string, SavedSession][];
  sequences: SequencesState;
  ended: boolean;
  /** The watermark of the last idle-session sweep (absent: none yet, or a snapshot written before it: the next watermark sweeps). */
  lastSweep?: number;
}

const maxSessions = 500_000;

/**
 * A `label_buffer.timeout` not above the gap of the sessionizer before this stage is a config error:
 * a session's labels come when it closes, a gap after its last event, and a prediction expires a
 * timeout after its own event, so every prediction but a session's last would expire unlabelled (the
 * model would learn from, and be scored on, almost nothing). An error, not a warning: no run of such
 * a config is of use, and `validate` says so before a long backtest or a daemon's first day does.
 * Churn raises its timeout itself (to twice the horizon), as its need follows from its own config;
 * here it depends on another stage's, and a bound the user wrote is not overridden silently.
 * Nor above the gap plus the sessionizer's `allowed_lateness`: a session that bought is remembered
 * for the timeout after its last event, and a late event may reopen it until then (it would be
 * predicted after the purchase, and learnt as a purchase).
 */
export function labelTimeoutProblems(config: IntentModelConfig, pipeline: PipelineOutline, self: OutlineEntry): EntryProblem[] {
  const at = pipeline.stages.indexOf(self);
  const sessionizer = pipeline.stages.slice(0, at < 0 ? 0 : at).reverse().find((entry) => entry.type === 'sessionizer');
  if (sessionizer === undefined) return [];
  const written = config.label_buffer?.timeout ?? defaultLabelTimeout;
  const said = `${JSON.stringify(written)}${config.label_buffer?.timeout === undefined ? ' (the default)' : ''}`;
  const gapWritten = (sessionizer.config.gap as string | number | undefined) ?? '30m';
  const latenessWritten = (sessionizer.config.allowed_lateness as string | number | undefined) ?? 0;
  const timeout = parseDuration(written);
  const gap = parseDuration(gapWritten);
  if (timeout <= gap) {
    return [
      {
        field: 'label_buffer.timeout',
        message:
          `${said} is not longer than the gap (${JSON.stringify(gapWritten)}) of sessionizer ${sessionizer.label}: a session's labels come when it closes, ` +
          `a gap after its last event, so its predictions would expire unlabelled first; set label_buffer.timeout above the gap plus the longest session (the sessionizer's max_length)`,
      },
    ];
  }
  if (timeout > gap + parseDuration(latenessWritten)) return [];
  return [
    {
      field: 'label_buffer.timeout',
      message:
        `${said} is not longer than the gap (${JSON.stringify(gapWritten)}) plus the allowed_lateness (${JSON.stringify(latenessWritten)}) of sessionizer ${sessionizer.label}: ` +
        `a late event may reopen a session until then, and a session that bought is remembered (so that such an event is not predicted after the purchase) only for the timeout after its last event; set label_buffer.timeout above both`,
    },
  ];
}
const noNames: readonly string[] = [];
const noValues = new Float32Array(0);

export default defineOperator<IntentModelConfig>({
  name: 'intent-model',
  role: 'model',
  state: 'global',
  featureNames: () => [], // appends none: a transform after it is checked against the names before it
  emits: modelEmits,
  emitsOnlyWith: modelEmitsOnlyWith,
  sideOutputs: modelSideOutputs,
  sideOutputsOnlyWith: modelSideOutputsOnlyWith,
  status: 'experimental',
  summary: 'Learns P(session ends in a purchase) online from sessionized events with features; emits a prediction per event.',
  description:
    'Needs events with `session` (a sessionizer) and `features` (feature operators) upstream, and the session summaries ' +
    'the sessionizer emits (no sessionizer before it is a config error). A session is its user\'s and id\'s: two users\' sessions under one data session id (GA4\'s ga_session_id, the second a session started) are two. An event without features is not predicted at (said once, as a warning; `gru` reads the events and needs none). A `gru` reads the last `sequence_length` events of the session in event-time order, as an in-order stream would give them: a late event inside the session\'s span takes its place among them (the oldest cut at `sequence_length`), its time since the previous event and the next one\'s measured from each other, and one before the session\'s start moves every event\'s time since the start; a closed session\'s are kept until its summary\'s `keptUntil` (while a late event may still reopen it, as session-features keeps its state), and a merge (the merging event\'s `session.merged`, else the summary\'s `replaces`) puts the merged-away session\'s events after the surviving one\'s (its later events: a merge keeps the earlier id), the merging event between them (it bridged the gap), their times since the start measured from the merged session\'s start. Predicts at every event before the session\'s first purchase, but not at one that arrived after a later event ' +
    'of its user (`session.outOfOrder`, a late event: the features before this stage follow arrival order, so its features include that later event, ' +
    'maybe a purchase), counted in `intent_out_of_order_events_total`; all its labels come when the session ' +
    'closes (1 if it bought), not at the purchase, so buyers and non-buyers reach the model and its metrics with the same delay. ' +
    'A label is final: when a late event (within the sessionizer\'s `allowed_lateness`) brings a purchase to a session that ' +
    'already closed, or merges it with one that bought, the predictions its first summary labelled stay labelled 0 (scored and ' +
    'learnt so); only predictions made since, and those of the sessions it absorbed (the summary\'s `replaces`), take the updated summary\'s label. ' +
    'A session that bought (or absorbed one that did) is not predicted again, nor is a late event that reopens it: it is remembered until ' +
    'its summary\'s `keptUntil` (no event joins it after), or, where the summary has none, for `label_buffer.timeout` after its last event. A prediction made at an event after its session\'s first purchase, known only later (a late ' +
    'purchase event, a merge), is withdrawn unscored (`model_predictions_withdrawn_total`). ' +
    'A session the sessionizer closed before its gap passed (`closedBy`: `end_of_input`, or `evicted` by its `max_open_sessions`, its later ' +
    'events starting another session) is censored whatever it did so far (scoring only those that bought would score a sample rich in buyers): ' +
    'its predictions are not scored, and are counted unlabelled at the end of input (the report\'s `unlabelledAtEnd`) or, evicted, as expired (`model_labels_expired_total`) A session cut at the sessionizer\'s `max_length` is not censored: the cut is part of what a session is, so it is labelled by its own events, and a purchase in its continuation (another session) labels that one. ' +
    '`label_buffer.timeout` must be longer than the `gap` of the sessionizer before it, and than its `gap` plus `allowed_lateness` (a config error otherwise: labels come a gap after a ' +
    'session\'s last event, so predictions would expire first; a late event may reopen a session that bought until then); a prediction made more than timeout minus gap before its session\'s last event ' +
    'expires unlabelled (counted in `model_labels_expired_total`), so set it above the gap plus the longest session (`max_length`). ' +
    'The model keeps the features of the first event it predicts; a saved model it resumes or warm-starts from takes on those of its first event, where that has features it lacks (a stage or a horizon added): its weights for the kept ones as learnt, each added one\'s at 0 (its optimiser moments too, its statistics fresh), so it predicts as before until it learns them, its weights for features gone dropped (logged). Any other vector named otherwise is read by name, ' +
    'features the model does not know are ignored (a custom model keeps the features it was made for, new ones ignored) and its own that are absent read at their running mean (standardised to 0, their mean and variance left as they were: a raw 0 would shift every prediction), or as 0 by a custom model, which gets raw values (logged as a warning). A value that is not finite (NaN, +-Infinity: a ratio over 0 in a stage before) is read alike, at its running mean and left out of its statistics (as 0 by a custom model), warned of once per feature naming the stage that appends it (where that stage declares its `featureNames`). Both are counted: `model_feature_values_absent_total` and `model_feature_values_non_finite_total`, and per feature in the report\'s `skippedFeatureValues` (`report: true`; over the model\'s life, warm starts included). ' +
    'Emits `prediction` records (and `drift` records); every input record passes through. ' +
    'Metrics, each series labelled `model` (its `name`) besides `pipeline` and `stage`: `model_auc` and `model_logloss_window` (over the last `metrics.window` labels), `model_auc_cumulative`, `model_logloss`, `model_brier`, `model_base_rate`, `model_calibration_error`, `model_learning_rate`, `model_predictions_total`, `model_labels_total` (labels scored and learnt from), ' +
    '`intent_out_of_order_events_total`, `model_label_buffer`, `model_label_buffer_overflow_total`, `model_labels_expired_total`, `model_late_labels_total` (labels that came for a prediction no longer held: not held by a full buffer, or timed out: a sign it is too small for the label delay), `model_predictions_withdrawn_total`, `model_drifts_total`, `model_invalid_scores_total` (predictions that were not a number: a diverged model, logged as an error), `model_backend_info` (1, the backend in use as its `backend` label), `model_backend_memory_bytes` (memory of the backend itself, outside the V8 heap: wasm, its linear memory, which never shrinks; tensorflow, the tensors in native memory; process-wide, each model\'s series the same); with a `gru`, `intent_sequences_evicted_total` and `intent_sequences_forgotten_early_total` (sequences let go at the bound of 500,000: closed ones kept for late events first, then the oldest open ones).',
  config: { type: 'object', additionalProperties: false, properties: modelOperatorProperties },
  examples: [
    { model: { kind: 'logistic' } },
    { name: 'intent-mlp', model: { kind: 'mlp', hidden: [32, 16], dropout: 0.1 }, optimizer: { kind: 'adam', learning_rate: 0.005 }, batch: { max_size: 256, max_delay: '200ms' } },
    { name: 'intent-gru', model: { kind: 'gru', units: 16, sequence_length: 12 }, checkpoint: { dir: '../out/models' } },
  ],
  checkPipeline: (config, pipeline, self) => [...modelNameProblems(config, pipeline, self), ...sessionizerProblems(pipeline, self), ...labelTimeoutProblems(config, pipeline, self), ...inapplicableFieldProblems(config), ...bareMillisecondsWarnings(config)],
  create: (rawConfig, context) => createIntentModel(rawConfig, context),
});

/**
 * The `intent-model` operator over the configured TF.js model, or over `custom` (a plugin's own model, see
 * define.ts): the same label join, buffer, scores and records either way.
 */
export function createIntentModel(rawConfig: IntentModelConfig, context: PluginContext, custom?: CustomModelSource): Operator {
  const config = resolveConfig(rawConfig, context.label, 0.05);
  claimModelName(context, config.name);
  // Ids as onEvent makes them (so a snapshot holds each prediction's position, not its id); the last prefix is kept for a run of one session's rows.
  let derivedFor: { userId: string; sessionId: string | undefined; prefix: IdPrefix } | undefined;
  const deriveId = (userId: string, sessionId: string | undefined, time: number, position: number): string => {
    if (derivedFor === undefined || derivedFor.userId !== userId || derivedFor.sessionId !== sessionId) derivedFor = { userId, sessionId, prefix: idPrefix(config.name, userId, sessionId) };
    return predictionIdAfter(derivedFor.prefix, time, position);
  };
  const learner = new OnlineLearner(config, 'intent', context, deriveId, custom);
  const outOfOrder = learner.metrics.counter(
    'intent_out_of_order_events_total',
    'Events not predicted because they arrived after a later event of their user (session.outOfOrder): their features, in arrival order, include it.',
  );
  const sequences =
    config.model.kind === 'gru'
      ? new SequenceTracker(config.model.sequence_length, config.model.category_buckets, maxSessions, {
          open: learner.metrics.counter('intent_sequences_evicted_total', `Open sessions' event sequences (gru) let go, the oldest first, to keep within ${maxSessions} sequences: the session's next prediction reads only its events since.`),
          closed: learner.metrics.counter(
            'intent_sequences_forgotten_early_total',
            `Closed sessions' event sequences (gru) kept for late events, let go before their keptUntil to keep within ${maxSessions} sequences (before any open one): a late event's prediction reads only itself and the events after it.`,
          ),
        })
      : undefined;
  /** Replaced whole by a restore (built aside in parts). */
  let sessions = new Map<string, SessionState>();
  /**
   * Keys of the closed sessions that bought, each with its summary's keptUntil, in the order they closed (about
   * keptUntil's): no event joins such a session after it (the sessionizer forgets it then; a new session under an
   * id from the data starts at position 0), so it is forgotten then, not a label timeout (1d) after its last event.
   * A late event that reopens one takes it out: it is open again until its next summary.
   */
  let closedBought = new Map<string, number>();
  /** The order the next session added to `sessions` gets (SessionState.order). */
  let nextOrder = 0;
  /** The sessions a snapshot still reads while records flow (see SessionsCopy), until it has read them all. */
  let sessionsCopy: SessionsCopy | undefined;
  /** Before a path changes the session `state` at `key` (or its closedBought entry): a snapshot's read in progress keeps it as it was. */
  const changing = (key: string, state: SessionState): void => {
    if (sessionsCopy !== undefined) sessionsCopy.keep(key, state, closedBought.get(key));
  };
  /** Lets go of the session `state` at `key` (a snapshot's read in progress keeps it first). */
  const dropSession = (key: string, state: SessionState): void => {
    sessionsCopy?.deleting(key, state);
    sessions.delete(key);
  };
  let ended = false;
  let lastSweep = -Infinity;
  /** Whether an event without features was said (once: each such event is one no prediction is made at). */
  let featurelessSaid = false;

  /** `relabelUntil`: as OnlineLearner.label's (a late event may reopen the session, and label it again). */
  const labelSession = (state: SessionState, label: number, time: number, emit: Emit, relabelUntil?: number): void => {
    const boughtAt = state.purchasedAt;
    for (const sample of state.pending) {
      // Made at an event after the session's first purchase (a merge or a late purchase event showed it only
      // later): not a prediction of whether it will buy. One no longer awaited counts its late label, restored or not.
      if (boughtAt !== undefined && !sample.released && sample.time! > boughtAt) learner.withdraw(sample);
      else learner.label(sample, label, time, emit, relabelUntil);
    }
    state.pending = [];
    state.labelled = true;
  };

  // Reused for every prediction: the learner keeps none of it (it copies what it holds on to).
  const input: SampleInput = { id: '', userId: '', sessionId: undefined, time: 0, names: noNames, values: noValues };

  const onEvent = (event: ClickEvent, emit: Emit): void => {
    learner.snapshots.settle();
    const sessionId = event.session?.id ?? event.sessionId;
    if (sessionId === undefined) return;
    // By user and id: two users' sessions of one data id (GA4's ga_session_id, a second) are two sessions.
    const key = sessionKey(event.userId, sessionId);
    let state = sessions.get(key);
    if (state !== undefined) changing(key, state);
    // A first event: a new session, though its id (from the data) may be back; not a relabel of the one before.
    if (event.session?.position === 0) learner.newUnit(key, event.time, emit);
    // A session that bought and closed, its id at a first event again: a new session under the same id (ids from the data), not a late event of it.
    if (state?.labelled && event.session?.position === 0) {
      dropSession(key, state);
      state = undefined;
    }
    if (state?.labelled === true) closedBought.delete(key); // reopened by a late event: open until its next summary
    if (!state) {
      if (sessions.size >= maxSessions) {
        const [oldestKey, oldest] = sessions.entries().next().value!;
        dropSession(oldestKey, oldest);
      }
      state = { userId: event.userId, purchased: false, labelled: false, pending: [], last: event.time, ids: idPrefix(config.name, event.userId, sessionId), order: nextOrder++ };
      sessions.set(key, state);
    }
    state.last = Math.max(state.last, event.time);
    if (sequences !== undefined && !state.labelled) {
      const context = event.session;
      // A first event under a key whose closed session is still kept (an id from the data, back): a new session.
      if (context?.position === 0) sequences.delete(key);
      sequences.push(key, event);
      // A merge: the merged-away sessions' events are this one's now, as session-features folds their state. Folded
      // after this event's step: it bridged the gap between this session's events and theirs (later), so the
      // sequence is in event-time order, as the GRU reads it (appended last, it read as the latest step, and a
      // sequence_length cut dropped a later event of theirs before it); their steps measured from this session's start.
      if (context?.merged !== undefined && context.position !== 0) for (const id of context.merged) sequences.fold(sessionKey(event.userId, id), key, context.start);
    }
    if (event.type === 'purchase') {
      state.purchasedAt = earliest(state.purchasedAt, event.time);
      state.purchased = true;
      return;
    }
    if (state.labelled || state.purchased) return;
    // Its features (arrival order) include a later event of the user: a prediction here could use the future.
    if (event.session?.outOfOrder === true) {
      outOfOrder.inc();
      return;
    }
    const features = event.features;
    if (!features && config.model.kind !== 'gru') {
      // A pipeline with no feature operator before this stage: it would predict at nothing, without a word.
      if (!featurelessSaid) {
        featurelessSaid = true;
        context.logger.warn(
          { model: config.name, kind: custom?.kind ?? config.model.kind },
          `model ${config.name}: an event reached it without features, and a ${custom?.kind ?? config.model.kind} model predicts only at events with features (said once): put session-features, user-features or hash-features before it`,
        );
      }
      return;
    }
    const position = event.session?.position ?? state.pending.length;
    // Same as predictionId(name, user, session, time, position); the prefix is hashed once per session.
    state.ids ??= idPrefix(config.name, state.userId, sessionId);
    const id = predictionIdAfter(state.ids, event.time, position);
    input.id = id;
    input.idKey = position;
    input.userId = event.userId;
    input.sessionId = sessionId;
    input.time = event.time;
    input.names = features?.names ?? noNames;
    input.values = features?.values ?? noValues;
    if (sequences) input.seq = sequences.sample(key);
    const handle = learner.submit(input, emit);
    // Not held by a full label buffer: all its label can do is count a late label, which the shared stand-in does (its snapshot counts it as released).
    state.pending.push(handle.released ? releasedHandle : handle);
  };

  const onSummary = (summary: SessionSummary, emit: Emit): void => {
    learner.snapshots.settle();
    const key = sessionKey(summary.userId, summary.sessionId);
    let state = sessions.get(key);
    if (state !== undefined) changing(key, state);
    // A merge: the sessions it absorbed (the user's own) are this one now (their ids are gone), so their predictions take its label.
    for (const id of mergedAwayIds(summary)) {
      const absorbedKey = sessionKey(summary.userId, id);
      const absorbed = sessions.get(absorbedKey);
      // Folded at the merging event; here where that event did not come this way.
      sequences?.fold(absorbedKey, key, summary.start);
      // Its predictions its own summary labelled: in this session's unit of the loss blocks too, where still in reach.
      learner.mergeUnits(absorbedKey, key);
      if (absorbed === undefined) continue;
      dropSession(absorbedKey, absorbed);
      closedBought.delete(absorbedKey);
      if (state === undefined) {
        state = { userId: summary.userId, purchased: false, labelled: false, pending: [], last: absorbed.last, order: nextOrder++ };
        sessions.set(key, state);
      }
      for (const sample of absorbed.pending) {
        learner.joinUnit(sample, key); // one session, one unit of the drift detector's loss blocks
        state.pending.push(sample);
      }
      state.purchased ||= absorbed.purchased;
      state.purchasedAt = earliest(state.purchasedAt, absorbed.purchasedAt);
      state.last = Math.max(state.last, absorbed.last);
    }
    const bought = summary.purchased || state?.purchased === true;
    if (sequences !== undefined) {
      // Closed: a late event may reopen it (or merge another into it) until its keptUntil, and its prediction
      // reads the session's events so far, as session-features' do. One that bought is predicted no more; one
      // closed early takes no more events (evicted, its later ones start another session).
      const keptUntil = summary.keptUntil;
      if (bought || closedEarly(summary) || typeof keptUntil !== 'number' || Number.isNaN(keptUntil)) sequences.delete(key);
      else sequences.close(key, keptUntil);
    }
    // Replaced below, or deleted: kept again (from now, in the order of closing) until this summary's keptUntil.
    closedBought.delete(key);
    if (closedEarly(summary)) {
      // Censored, not a 0: at the end of input its predictions stay awaiting (counted unlabelled at the end);
      // evicted, its events go on under another id and no label will come for them (expired now). Whatever
      // it did so far, as churn's end of input: scoring only those that bought would score a sample rich in buyers.
      if (state && summary.closedBy === 'evicted') for (const sample of state.pending) learner.expireOne(sample);
      if (state) dropSession(key, state);
      return;
    }
    if (state) labelSession(state, bought ? 1 : 0, summary.end, emit, relabelUntil(summary));
    // Closed: a late event re-opens it, and its updated summary labels what that event predicted. One that
    // bought is kept, so that such an event is not predicted, until its keptUntil (releaseClosedBought).
    if (!bought) {
      if (state) dropSession(key, state);
      return;
    }
    if (state) {
      state.purchased = true;
      state.last = Math.max(state.last, summary.end);
    } else sessions.set(key, { userId: summary.userId, purchased: true, labelled: true, pending: [], last: summary.end, order: nextOrder++ });
    const keptUntil = summary.keptUntil;
    if (typeof keptUntil === 'number' && !Number.isNaN(keptUntil)) closedBought.set(key, keptUntil);
  };

  /** Forgets the closed sessions that bought whose keptUntil `time` has reached (`all`: wherever they are in the order; see closedBought). */
  const releaseClosedBought = (time: number, all: boolean): void =>
    releaseReached(closedBought, time, all, (key, keptUntil) => {
      const state = sessions.get(key);
      if (state === undefined) return;
      // Its closedBought entry is gone already: kept with the one it had.
      sessionsCopy?.keep(key, state, keptUntil);
      if (state.labelled && state.purchased === true) dropSession(key, state);
    });

  return {
    async open() {
      await learner.open();
    },
    apply: learnerOperator(context, learner, {
      event: onEvent,
      summary: onSummary,
      ended: () => void (ended = true),
      watermark(time) {
        const cutoff = time - config.labelBuffer.timeoutMs;
        learner.expire(cutoff);
        sequences?.release(time);
        releaseClosedBought(time, false);
        // Sessions idle past the timeout will get no label (no summary came): forget them, a few times per timeout.
        if (time - lastSweep >= config.labelBuffer.timeoutMs / 4) {
          lastSweep = time;
          sequences?.release(time, true);
          releaseClosedBought(time, true);
          for (const [key, state] of sessions) {
            if (state.last >= cutoff) continue;
            changing(key, state);
            // Expired, as expire() would have counted them had no younger prediction been queued before them.
            for (const sample of state.pending) learner.expireOne(sample);
            state.pending = [];
            sequences?.delete(key);
            // A session that bought may still be open (a gap longer than the timeout): keep knowing it
            // bought until its summary, or its next event would be predicted after the purchase. maxSessions bounds these.
            if (!state.purchased || state.labelled) {
              dropSession(key, state);
              closedBought.delete(key);
            }
          }
        }
      },
    }),
    /**
     * An erasure request: the user's sessions (their purchase flags, predictions waiting for a label) and GRU
     * sequences go; the predictions leave the label buffer unlabelled and uncounted (the learner's forgetUser).
     */
    forget(userId) {
      learner.snapshots.settle();
      let dropped = learner.forgetUser(userId) + (sequences?.forgetUser(userId) ?? 0);
      for (const [key, state] of sessions) {
        if (state.userId !== userId) continue;
        dropSession(key, state);
        closedBought.delete(key);
        dropped++;
      }
      if (derivedFor?.userId === userId) derivedFor = undefined;
      return dropped;
    },
    /**
     * The state as of this call, built in parts (see PartedSnapshots): the learner's copied (its label buffer on
     * write), the sessions' taken to be read on write (SessionsCopy), then both read and encoded while records flow
     * (PartedSnapshots.takeCopying).
     */
    snapshot(): CopyingSnapshot<IntentState> {
      return learner.snapshots.takeCopying(
        (function* () {
          // An earlier snapshot's read, if still running, reads the sessions it was called at.
          sessionsCopy?.readUpTo(Infinity);
          const learnerState = yield* learner.snapshotParts();
          const mark = learner.releaseMark;
          const copy: SessionsCopy = (sessionsCopy = new SessionsCopy(sessions, nextOrder, closedBought, (handle) => learner.releasedBefore(handle, mark), () => {
            if (sessionsCopy === copy) sessionsCopy = undefined;
          }));
          const savedSequences = sequences ? yield* sequences.stateParts() : [];
          const endedThen = ended;
          const sweptLast = lastSweep;
          return (function* () {
            // The sessions first: until they are read, each record changing one keeps it.
            const savedSessions = yield* encodeSessions(copy);
            const state: IntentState = { format: 4, learner: yield* learnerState, sessions: savedSessions, sequences: savedSequences, ended: endedThen };
            // When the next sweep comes (a restored run sweeping elsewhere could drop a session an uninterrupted one still labels).
            if (Number.isFinite(sweptLast)) state.lastSweep = sweptLast;
            return state;
          })();
        })(),
      );
    },
    async restore(state) {
      learner.snapshots.settle();
      // A snapshot's read in progress reads the sessions it was called at, before they are replaced.
      sessionsCopy?.readUpTo(Infinity);
      const saved = state as IntentState;
      // In parts, each part a turn of the event loop (see inTurns); the maps swapped in at the end.
      await inTurns(
        (function* () {
          yield* learner.restoreParts(saved.learner);
          const restored = new Map<string, SessionState>();
          const restoredClosedBought = new Map<string, number>();
          // Before format 4, each saved session id's user (one session per id then).
          const usersById = new Map<string, string>();
          if (Array.isArray(saved.sessions)) {
            const handleOf = yield* learner.handlesById();
            yield* eachOf(saved.sessions, ([id, value]) => {
              restored.set(sessionKey(value.userId, id), { ...value, pending: value.pending.map(handleOf), order: 0 });
              usersById.set(id, value.userId);
            });
          } else yield* restoreSessions(saved.sessions, restored, learner, saved.format === 4 ? 4 : saved.format === 3 ? 3 : 2, usersById, restoredClosedBought);
          if (sequences) {
            yield* sequences.loadParts(saved.sequences);
            // Before format 4 a sequence was kept by its session's id alone: keyed now as its session is. One
            // whose session is not kept (evicted from a full map) is let go: no user to key it by.
            if (saved.format !== 4) sequences.keyByUser(usersById);
          }
          // In the map's order (a key restored twice, from before format 4, kept its first place).
          let order = 0;
          yield* eachOf(restored.values(), (session) => void (session.order = order++));
          sessions = restored;
          nextOrder = order;
          closedBought = restoredClosedBought;
          ended = saved.ended;
          lastSweep = typeof saved.lastSweep === 'number' ? saved.lastSweep : -Infinity;
        })(),
      );
    },
    async close() {
      await learner.close();
    },
  };
}

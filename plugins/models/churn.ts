/**
 * `churn-model`: P(the user does not come back within `horizon` of a session's end), predicted when
 * the session closes (its summary arrives). Fixed-horizon labels: every prediction is labelled when
 * the watermark passes end + horizon + grace, 0 if the user started a session within the horizon, else
 * 1. The grace (the sessionizer's gap + allowed_lateness: how late a session's first event may come) lets
 * a return within the horizon whose first event arrives behind the watermark be seen; labelled at
 * end + horizon, it was not, and the prediction was labelled 1.
 * Labelling a return at once (days) while a churn waits the whole horizon made early labels almost
 * all 0s, and at the end of input only returns had been scored: the model learnt, and the metrics
 * scored, a skewed sample (AUC 0.35 on the demo). The end of input is not a label: predictions
 * still open then are counted as censored, not scored, whatever their outcome so far.
 */
import { checkListLengths, type ClickEvent, type Column, type CopyingSnapshot, decodeColumn, decodeColumnOf, decodeDerivedIds, decodeNamedColumns, decodeNullableStrings, decodeOptionalColumnOf, decodeStrings, defineOperator, type DerivedIds, eachOf, type Emit, encodeColumn, encodeDerivedIds, encodeNamedColumns, inTurns, parseDuration, partsOf, type JsonSchema, type PluginContext, type SessionSummary, type Operator, sessionKey, turnDue } from 'tributary';
import { learnerOperator, OnlineLearner, predictionId, type IdDeriver, type LearnerState, type SampleHandle, type SampleInput } from './learner.js';
import type { CustomModelSource } from './custom.js';
import { claimModelName, bareMillisecondsWarnings, inapplicableFieldProblems, modelEmits, sessionizerProblems, modelEmitsOnlyWith, modelNameProblems, modelSideOutputs, modelSideOutputsOnlyWith, modelOperatorProperties, resolveConfig, type ModelOperatorConfig } from './config.js';
import { SequenceTracker, type SequencesState } from './sequence.js';
import { mergedAwayIds } from './summaries.js';

export interface ChurnModelConfig extends ModelOperatorConfig {
  horizon?: string | number;
  max_users?: number;
}

interface UserState {
  firstSeen: number;
  sessions: number;
  purchases: number;
  lastEnd: number | undefined;
  gapSum: number;
  /** Sessions seen in events but not yet closed, by id: their start. */
  open: [string, number][];
  /** Predictions waiting for their deadline. */
  pending: PendingChurn[];
  /** Scale-out: the source partition the user's records come from (see partitionsRevoked). */
  partition?: string;
  /** Whether the snapshot gather in progress (UsersCopy) has this user: its generation where kept, the generation + 1 where read or new since its call. */
  copied: number;
  /** The generation of the last snapshot gather during which this user was seen (its move to the map's end waits). */
  touched: number;
}

/** A prediction waiting for its deadline (its session's end + horizon + grace). */
interface PendingChurn {
  sample: SampleHandle;
  /** The session's start: a return for the user's earlier sessions (see onUpdate). */
  start: number;
  /** The session's end. */
  end: number;
  /**
   * What its summary added to the user's history, taken back if a merge withdraws it: a purchase (0 or 1;
   * NaN: not known, restored from a snapshot written before it, so none is added or taken back) and a gap.
   */
  purchased: number;
  gap: number;
  /** Start of the user's first session after `end` (-1: none yet). */
  back: number;
  /**
   * How long after end + horizon its label waits: its summary's `keptUntil` - end (see lateReturnGrace),
   * so that a return within the horizon whose first event arrives late is seen; 0 for a summary without
   * one, and for predictions restored from a snapshot written before it (labelled at end + horizon, as then).
   */
  grace: number;
  /** The user whose session it is (the deadline heap's entries are these objects). */
  userId: string;
}

/** A user as the first format snapshotted it (one object each): pending predictions as (id, end, back). */
type SavedUser = Omit<UserState, 'pending' | 'copied' | 'touched'> & { pending: [string, number, number][] };

/** The users as columns (see core/columns.ts), a row each, in the map's order. */
interface SavedUsers {
  keys: string[];
  firstSeen: Column;
  sessions: Column;
  purchases: Column;
  /** NaN: none yet. */
  lastEnd: Column;
  gapSum: Column;
  /** Open sessions per user, then their ids and starts, user after user. */
  openCounts: Column;
  openIds: string[];
  openStarts: Column;
  /** Pending predictions per user, then their ids, ends and backs, user after user. */
  pendingCounts: Column;
  /** Format 2: every pending prediction's id. Format 3: the ids of the rows whose `pendingIdKeys` value is -1, in order. */
  pendingIds: string[];
  pendingEnds: Column;
  pendingBacks: Column;
  /** Their starts, purchases and gaps: absent from snapshots written before them (restored as end, NaN and 0). */
  pendingStarts?: Column;
  pendingPurchased?: Column;
  pendingGaps?: Column;
  /** Format 4: their graces; absent before it (restored as 0). */
  pendingGraces?: Column;
  /**
   * Format 3: what each id is remade from (the model's IdDeriver, as the label buffer's: the row's user,
   * its session, stored against `pendingStarts`, and the time it was predicted at, against `pendingEnds`),
   * and its key (-1: the id is in `pendingIds`; its time, not known, is stored as its end).
   */
  pendingIdKeys?: Column;
  pendingSessions?: DerivedIds;
  pendingTimes?: Column;
  /** Each user's partition (null: none); absent when no user has one. */
  partitions?: (string | null)[];
}

/** The deadline heap as columns, in its order. */
interface SavedDeadlines {
  at: Column;
  /** Format 3: each entry's prediction, a row of the users' pending predictions; -1: one no user holds any more (skipped when popped). */
  pending?: Column;
  /** Format 2: each entry's prediction by id and user. */
  ids?: string[];
  userIds?: string[];
}

/** `ref` of the columns that others are stored as offsets from: the pending predictions' starts and ends, the deadlines' predictions' ends (0: none). */
const PENDING_STARTS = 0;
const PENDING_ENDS = 1;
const PREDICTION_ENDS = 2;

/** The row of a deadline whose prediction no user holds any more. */
const NO_PENDING = -1;

interface ChurnState {
  /**
   * 5: as 4, a GRU's sequences keyed by sessionKey (user and id). 4: as 3, with each pending prediction's
   * grace; sequences keyed by session id alone (two users' sessions of one data id shared one). 3: each
   * pending prediction once (ids remade, deadlines as rows of the pending list). 2: users and deadlines as
   * columns, pending ids written by users and again by deadlines. Absent: the first format, one tuple
   * each. All restore (before 4, with no grace).
   */
  format?: 2 | 3 | 4 | 5;
  learner: LearnerState;
  users: SavedUsers | [string, SavedUser][];
  /** The first format: (deadline, prediction id, user). */
  deadlines: SavedDeadlines | [number, string, string][];
  sequences: SequencesState;
}

/** A user as a snapshot's call saw it, kept before a record changed it (UsersCopy.keep). */
type KeptUser = Omit<UserState, 'pending'> & { pending: KeptPending[] };
/** A pending prediction as at the call, and the live one (the deadlines point at it). */
type KeptPending = PendingChurn & { of: PendingChurn };

/**
 * The users of a snapshot, copied on write: its call takes only the map's size and an iterator over it (the
 * sources held O(1)); the users are read into columns while records flow (readUpTo, in the encode parts).
 * Until all are read: a record that changes a user not read yet keeps a copy of it first (keep); a user seen
 * (userOf) stays where it is in the map and its move to the end, the most recently seen, waits until the
 * gather is done (then made in the order seen: the map's order as if made at once); max_users forgets the
 * first user not seen since the call (leastRecent), read first. So the map's first n entries stay the call's,
 * in its order, and the columns are byte for byte those of a copy made at the call.
 */
class UsersCopy {
  readonly n: number;
  /** The live map's entries in its order, read up to n. */
  private readonly entries: Iterator<[string, UserState]>;
  private read = 0;
  private readonly kept = new Map<UserState, KeptUser>();
  /** Users seen during the gather, in order (repeats too), with their keys: their moves to the map's end, made once it is done. */
  private readonly seenKeys: string[] = [];
  private readonly seenUsers: UserState[] = [];
  /** From the map's front, past the users seen since the call: where the next user max_users forgets is. */
  private front: Iterator<[string, UserState]> | undefined;
  readonly keys: string[] = [];
  readonly openIds: string[] = [];
  readonly openStarts: number[] = [];
  readonly pendingSamples: SampleHandle[] = [];
  readonly pendingUsers: string[] = [];
  /** The pending predictions in row order, for the deadlines that point at them (matched in the encode parts). */
  readonly pendingRows: PendingChurn[] = [];
  readonly pendingEnds: number[] = [];
  readonly pendingBacks: number[] = [];
  readonly pendingStarts: number[] = [];
  readonly pendingPurchased: number[] = [];
  readonly pendingGaps: number[] = [];
  readonly pendingGraces: number[] = [];
  readonly partitions: (string | null)[] = [];
  partitioned = false;
  readonly firstSeen: Float64Array;
  readonly sessions: Float64Array;
  readonly purchases: Float64Array;
  readonly lastEnd: Float64Array;
  readonly gapSum: Float64Array;
  readonly openCounts: Float64Array;
  readonly pendingCounts: Float64Array;

  constructor(
    private readonly users: Map<string, UserState>,
    /** This gather's number (even, above any before): a user's `copied` is it where kept, it + 1 where read (or new since the call). */
    readonly generation: number,
    /** Called once every user is read (and the moves made): records need keep nothing more. */
    private readonly onRead: () => void,
  ) {
    const n = (this.n = users.size);
    this.entries = users.entries();
    [this.firstSeen, this.sessions, this.purchases, this.lastEnd, this.gapSum, this.openCounts, this.pendingCounts] = Array.from({ length: 7 }, () => new Float64Array(n));
  }

  get done(): boolean {
    return this.read === this.n;
  }

  /** Before a record changes `user`: kept as at the call where not read yet. */
  keep(user: UserState): void {
    if (user.copied >= this.generation) return;
    user.copied = this.generation;
    this.kept.set(user, { ...user, open: user.open.map(([id, start]): [string, number] => [id, start]), pending: user.pending.map((p) => ({ ...p, of: p })) });
  }

  /** `user` (at `key`) is seen now: kept, its move to the map's end made once the gather is done. */
  seen(key: string, user: UserState): void {
    this.keep(user);
    user.touched = this.generation;
    this.seenKeys.push(key);
    this.seenUsers.push(user);
  }

  /** The user seen least recently (the map's first not seen since the call), read before max_users forgets it; undefined where every user was seen since. */
  leastRecent(): [string, UserState] | undefined {
    this.front ??= this.users.entries();
    for (;;) {
      const next = this.front.next();
      if (next.done) return undefined;
      const [, user] = next.value;
      if (user.touched === this.generation) continue;
      while (user.copied !== this.generation + 1) this.readUpTo(1);
      return next.value;
    }
  }

  /** Reads up to `count` more users into the columns; once all are read, makes the moves of the users seen meanwhile. */
  readUpTo(count: number): void {
    const to = Math.min(this.n, this.read + count);
    for (let row = this.read; row < to; row++) {
      const [key, live] = this.entries.next().value!;
      // A user not read yet whose `copied` is this gather's was kept (the map's first n entries are the call's).
      const kept = live.copied === this.generation ? this.kept.get(live)! : undefined;
      live.copied = this.generation + 1;
      const u = kept ?? live;
      this.keys.push(key);
      this.firstSeen[row] = u.firstSeen;
      this.sessions[row] = u.sessions;
      this.purchases[row] = u.purchases;
      this.lastEnd[row] = u.lastEnd ?? NaN;
      this.gapSum[row] = u.gapSum;
      this.openCounts[row] = u.open.length;
      for (const [id, start] of u.open) {
        this.openIds.push(id);
        this.openStarts.push(start);
      }
      this.pendingCounts[row] = u.pending.length;
      for (const p of u.pending) {
        this.pendingRows.push(kept === undefined ? p : (p as KeptPending).of);
        this.pendingSamples.push(p.sample);
        this.pendingUsers.push(key);
        this.pendingEnds.push(p.end);
        this.pendingBacks.push(p.back);
        this.pendingStarts.push(p.start);
        this.pendingPurchased.push(p.purchased);
        this.pendingGaps.push(p.gap);
        this.pendingGraces.push(p.grace);
      }
      this.partitions.push(u.partition ?? null);
      if (u.partition !== undefined) this.partitioned = true;
    }
    this.read = to;
    if (to === this.n) this.moveSeen();
  }

  /** The users seen during the gather to the map's end, in the order seen (a user gone since, forgotten, is not brought back). */
  private moveSeen(): void {
    const { users, seenKeys, seenUsers } = this;
    for (let i = 0; i < seenKeys.length; i++) {
      const key = seenKeys[i]!;
      const user = seenUsers[i]!;
      if (users.get(key) !== user) continue;
      users.delete(key);
      users.set(key, user);
    }
    seenKeys.length = 0;
    seenUsers.length = 0;
    this.kept.clear();
    this.front = undefined;
    this.onRead();
  }
}

/**
 * The users (read in parts first, see UsersCopy) and the deadline heap as at the call (arrays no record
 * changes since: see the heap's copy on write) in the columns of a snapshot, while records flow. Each
 * pending prediction's id is written only where `idOf` does not remake it from its user, session and time
 * (checked there).
 */
function* encodeUsers(copy: UsersCopy, deadlinesAtCall: readonly number[], deadlineOfAtCall: readonly PendingChurn[], idOf: IdDeriver): Generator<void, { users: SavedUsers; deadlines: SavedDeadlines }, void> {
  while (!copy.done) {
    copy.readUpTo(1024);
    if (turnDue()) yield;
  }
  const { keys, openIds, openStarts, pendingSamples, pendingUsers, pendingRows, pendingEnds, pendingBacks, pendingStarts, pendingPurchased, pendingGaps, pendingGraces, partitions, partitioned } = copy;
  const { firstSeen, sessions, purchases, lastEnd, gapSum, openCounts, pendingCounts } = copy;
  const deadlinesThen = Float64Array.from(deadlinesAtCall);
  const deadlinesOfThen = deadlineOfAtCall;
  /** Each pending prediction's row, for the deadlines that point at it. */
  const rowOf = new Map<PendingChurn, number>();
  yield* partsOf(pendingRows.length, (from, to) => {
    for (let i = from; i < to; i++) rowOf.set(pendingRows[i]!, i);
  });
  const deadlineRows = new Float64Array(deadlinesThen.length);
  // A deadline is its prediction's end + the horizon + its grace but where an update moved it: stored as offsets from that end
  // (the end as copied: an update may move it once the sources go on).
  const predictionEnds = new Float64Array(deadlinesThen.length);
  yield* partsOf(deadlinesThen.length, (from, to) => {
    for (let i = from; i < to; i++) {
      const row = rowOf.get(deadlinesOfThen[i]!);
      deadlineRows[i] = row ?? NO_PENDING;
      predictionEnds[i] = row === undefined ? 0 : pendingEnds[row]!;
    }
  });
  const pendingIds: string[] = [];
  const pendingIdKeys: number[] = [];
  const pendingSessions: (string | null)[] = [];
  const pendingTimes: number[] = [];
  yield* partsOf(pendingSamples.length, (from, to) => {
    for (let i = from; i < to; i++) {
      const { id, sessionId, time } = pendingSamples[i]!;
      // Checked, not trusted (as the label buffer's ids): a stand-in restored from an older format (its id only) keeps its id written.
      const remade = time !== undefined && idOf(pendingUsers[i]!, sessionId, time, 0) === id;
      pendingIdKeys.push(remade ? 0 : -1);
      if (!remade) pendingIds.push(id);
      // Its session whether remade or not: a prediction no longer awaited is restored with it, for an update to find.
      pendingSessions.push(sessionId ?? null);
      pendingTimes.push(remade ? time : pendingEnds[i]!);
    }
  });
  const atColumn = yield* encodeColumn(deadlinesThen, { values: predictionEnds, ref: PREDICTION_ENDS });
  const starts = Float64Array.from(pendingStarts);
  const ends = Float64Array.from(pendingEnds);
  const sessionColumn = yield* encodeDerivedIds(pendingUsers, pendingSessions, { values: starts, ref: PENDING_STARTS });
  const timeColumn = yield* encodeColumn(Float64Array.from(pendingTimes), { values: ends, ref: PENDING_ENDS });
  const { pending: pendingColumn, ...columns } = yield* encodeNamedColumns({
    firstSeen: firstSeen!,
    sessions: sessions!,
    purchases: purchases!,
    lastEnd: lastEnd!,
    gapSum: gapSum!,
    openCounts: openCounts!,
    openStarts: Float64Array.from(openStarts),
    pendingCounts: pendingCounts!,
    pendingEnds: ends,
    pendingBacks: Float64Array.from(pendingBacks),
    pendingStarts: starts,
    pendingPurchased: Float64Array.from(pendingPurchased),
    pendingGaps: Float64Array.from(pendingGaps),
    pendingGraces: Float64Array.from(pendingGraces),
    pendingIdKeys: Float64Array.from(pendingIdKeys),
    pending: deadlineRows,
  });
  return {
    users: { keys, ...columns, pendingSessions: sessionColumn, pendingTimes: timeColumn, openIds, pendingIds, ...(partitioned ? { partitions } : {}) },
    deadlines: { at: atColumn, pending: pendingColumn },
  };
}

/**
 * The users of a snapshot's columns into `into`, their pending predictions in row order into `pending`,
 * in parts (see inTurns); throws on columns that do not fit together.
 */
function* restoreUsers(saved: SavedUsers, into: Map<string, UserState>, pendingRows: PendingChurn[], handleOf: (id: string) => SampleHandle, idOf: IdDeriver): Generator<void, void, void> {
  const what = 'churn snapshot: users';
  const keys = decodeStrings(saved.keys, undefined, `${what}: keys`);
  const n = keys.length;
  const { firstSeen, sessions, purchases, lastEnd, gapSum, openCounts, pendingCounts } = decodeNamedColumns(saved, ['firstSeen', 'sessions', 'purchases', 'lastEnd', 'gapSum', 'openCounts', 'pendingCounts'], n, what);
  const openIds = decodeStrings(saved.openIds, undefined, `${what}: openIds`);
  const openStarts = decodeColumnOf(saved.openStarts, openIds.length, `${what}: openStarts`);
  checkListLengths(openCounts, openIds.length, `${what}: openIds`);
  const pendingIds = decodeStrings(saved.pendingIds, undefined, `${what}: pendingIds`);
  // Format 3 writes only the ids it does not remake: its rows are its keys'.
  const rows = saved.pendingIdKeys === undefined ? pendingIds.length : saved.pendingIdKeys.n;
  const { pendingEnds, pendingBacks } = decodeNamedColumns(saved, ['pendingEnds', 'pendingBacks'], rows, what);
  const pendingStarts = decodeOptionalColumnOf(saved.pendingStarts, rows, `${what}: pendingStarts`);
  const pendingPurchased = decodeOptionalColumnOf(saved.pendingPurchased, rows, `${what}: pendingPurchased`);
  const pendingGaps = decodeOptionalColumnOf(saved.pendingGaps, rows, `${what}: pendingGaps`);
  const pendingGraces = decodeOptionalColumnOf(saved.pendingGraces, rows, `${what}: pendingGraces`);
  checkListLengths(pendingCounts, rows, `${what}: pending predictions`);
  const handleAt = saved.pendingIdKeys === undefined ? (i: number) => handleOf(pendingIds[i]!) : pendingHandleReader(saved, keys, pendingCounts!, pendingIds, pendingStarts, pendingEnds!, idOf, handleOf, what);
  const partitions = saved.partitions === undefined ? undefined : decodeNullableStrings(saved.partitions, n, `${what}: partitions`);
  let atOpen = 0;
  let atPending = 0;
  yield* partsOf(n, (from, to) => {
    for (let i = from; i < to; i++) {
      const key = keys[i]!;
      const open: [string, number][] = [];
      for (const end = atOpen + openCounts![i]!; atOpen < end; atOpen++) open.push([openIds[atOpen]!, openStarts[atOpen]!]);
      const pending: PendingChurn[] = [];
      for (const end = atPending + pendingCounts![i]!; atPending < end; atPending++) {
        const end = pendingEnds[atPending]!;
        const p: PendingChurn = {
          sample: handleAt(atPending),
          start: pendingStarts?.[atPending] ?? end,
          end,
          purchased: pendingPurchased?.[atPending] ?? NaN,
          gap: pendingGaps?.[atPending] ?? 0,
          back: pendingBacks[atPending]!,
          grace: pendingGraces?.[atPending] ?? 0,
          userId: key,
        };
        pending.push(p);
        pendingRows.push(p);
      }
      const end = lastEnd![i]!;
      const user: UserState = { firstSeen: firstSeen![i]!, sessions: sessions![i]!, purchases: purchases![i]!, lastEnd: end === end ? end : undefined, gapSum: gapSum![i]!, open, pending, copied: 0, touched: 0 };
      const partition = partitions?.[i];
      if (partition != null) user.partition = partition;
      into.set(key, user);
    }
  });
}

/**
 * Format 3's pending predictions' handles, row by row (to be read in row order: written ids are taken
 * in turn), each id remade by `idOf` from its user, session and time unless written; one no longer
 * awaited keeps its session (and time), as the uninterrupted run's does. Throws on columns that do not fit.
 */
function pendingHandleReader(
  saved: SavedUsers,
  keys: readonly string[],
  pendingCounts: Float64Array,
  written: readonly string[],
  starts: Float64Array | undefined,
  ends: Float64Array,
  idOf: IdDeriver,
  handleOf: (id: string) => SampleHandle,
  what: string,
): (row: number) => SampleHandle {
  const rows = ends.length;
  const idKeys = decodeColumnOf(saved.pendingIdKeys!, rows, `${what}: pendingIdKeys`);
  const users: string[] = [];
  for (let i = 0; i < keys.length; i++) for (let k = 0; k < pendingCounts[i]!; k++) users.push(keys[i]!);
  if (saved.pendingSessions === undefined || saved.pendingTimes === undefined) throw new Error(`${what}: pendingIdKeys without pendingSessions and pendingTimes`);
  const sessions = decodeDerivedIds(users, saved.pendingSessions, `${what}: pendingSessions`, false, starts && { values: starts, ref: PENDING_STARTS });
  const times = decodeColumnOf(saved.pendingTimes, rows, `${what}: pendingTimes`, { values: ends, ref: PENDING_ENDS });
  let toWrite = 0;
  for (let i = 0; i < rows; i++) {
    const key = idKeys[i]!;
    if (key === -1) toWrite++;
    else if (!Number.isSafeInteger(key) || key < 0) throw new Error(`${what}: id key ${key} at row ${i}`);
  }
  if (toWrite !== written.length) throw new Error(`${what}: ${written.length} ids written for ${toWrite} rows`);
  let next = 0;
  return (i) => {
    const remade = idKeys[i]! >= 0;
    const id = remade ? idOf(users[i]!, sessions[i], times[i]!, idKeys[i]!) : written[next++]!;
    const handle = handleOf(id);
    if (!handle.released) return handle;
    return remade ? { id, sessionId: sessions[i], time: times[i]!, released: true } : { id, sessionId: sessions[i], released: true };
  };
}

/**
 * Before format 5 a GRU's sequences were kept by session id alone: each is keyed now by its user and id,
 * the user whose open sessions hold the id. One no user holds open (its user evicted, or more than
 * `maxOpen` open) or two users do (their events were mixed in one) is let go: no one user to key it by.
 */
function* rekeySequences(sequences: SequenceTracker, users: Map<string, UserState>): Generator<void, void, void> {
  /** Each open session id's user; null: more than one user's. */
  const userById = new Map<string, string | null>();
  yield* eachOf(users, ([userId, user]) => {
    for (const [id] of user.open) userById.set(id, userById.has(id) && userById.get(id) !== userId ? null : userId);
  });
  sequences.keyByUser(userById);
}

/** Features churn computes itself from the summary and the user's history. */
export const churnFeatureNames = [
  'session_events_log',
  'session_minutes_log',
  'session_views_log',
  'session_carts_log',
  'session_purchased',
  'user_sessions_log',
  'user_days_since_first_log',
  'user_mean_gap_days_log',
  'user_purchases_log',
  'user_days_since_previous_log',
  'hour_sin',
  'hour_cos',
] as const;

const day = 86_400_000;
const maxOpen = 8;

/**
 * How long a prediction's label waits after end + horizon for a return that arrives late: the
 * sessionizer starts a session at a late event until the watermark passes its time + gap +
 * allowed_lateness, and that span is its summaries' `keptUntil` - end. A return at the horizon's last
 * instant may so reach this stage until the watermark passes end + horizon + that. 0 for a summary
 * without `keptUntil` (made elsewhere: how late its events come is not known) and for an evicted
 * session's (its `keptUntil` is the watermark it was evicted at, no bound on a late event).
 */
function lateReturnGrace(summary: SessionSummary): number {
  const keptUntil = summary.keptUntil;
  if (summary.closedBy === 'evicted' || typeof keptUntil !== 'number' || !Number.isFinite(keptUntil)) return 0;
  return Math.max(0, keptUntil - summary.end);
}

/** The time between a session's start and the end of the user's session before it (0: none before, or they overlap). */
const gapAfter = (previousEnd: number | undefined, start: number): number => (previousEnd !== undefined ? Math.max(0, start - previousEnd) : 0);

const sharedLabelBuffer = modelOperatorProperties.label_buffer;

/** churn-model's own fields, beside the shared ones (a custom churn model's too). */
export const churnProperties = {
  // The shared field, its default said as churn's (createChurnModel raises the timeout to twice the horizon).
  label_buffer: {
    ...sharedLabelBuffer,
    properties: {
      ...sharedLabelBuffer.properties,
      timeout: {
        ...sharedLabelBuffer.properties.timeout,
        description:
          "Event time after which an unlabelled prediction is dropped (and counted). Raised to twice the `horizon` when shorter: a churner's label comes only once the horizon has passed. Default: twice the horizon (14d with the default horizon of 7d), at least 1d.",
      },
    },
  },
  horizon: { $ref: 'tributary:duration', minDuration: '1ms', description: 'A user who starts no session within this time after a session ends has churned. Default: 7d.' },
  max_users: {
    type: 'integer',
    minimum: 1,
    default: 1000000,
    description: 'Most users whose history is kept; beyond it the user seen least recently (the last start or end of a session of theirs) is forgotten, counted in `churn_users_evicted_total`, and its predictions awaiting a label leave the label buffer unscored (no label can come), counted in `model_labels_expired_total`. A user last seen more than `horizon` (and the sessionizer\'s lateness) ago has none awaiting: with the bound above the users seen within a horizon no label is lost to it, and a forgotten user who comes back starts a history anew (its tenure, sessions and purchases from 0).',
  },
} satisfies Record<string, JsonSchema>;

export default defineOperator<ChurnModelConfig>({
  name: 'churn-model',
  role: 'model',
  state: 'global',
  featureNames: () => [], // appends none: a transform after it is checked against the names before it
  emits: modelEmits,
  emitsOnlyWith: modelEmitsOnlyWith,
  sideOutputs: modelSideOutputs,
  sideOutputsOnlyWith: modelSideOutputsOnlyWith,
  status: 'experimental',
  summary: 'Learns P(no return within the horizon) online, predicting when each session closes; fixed-horizon labels once no return within the horizon can still arrive.',
  description:
    'Needs the session summaries a sessionizer emits (and its events, to see returns): no sessionizer before it is a config error. Fixed-horizon labels: each prediction is ' +
    'labelled when the watermark passes its session end + `horizon` + the sessionizer\'s `gap` + `allowed_lateness` (the summary\'s ' +
    '`keptUntil` - end), 0 if the user started a session within the horizon (of the end), 1 otherwise; both outcomes resolve at the same ' +
    'point, so the model learns from (and is scored on) an unskewed sample. The wait past the horizon is how far behind the watermark the ' +
    'sessionizer still accepts a late event that starts a session: a return within the horizon whose first event arrives late is seen, ' +
    'not labelled 1, and so is one whose late event joins a session already seen before its first event and moves its start back into the ' +
    'horizon (as in time order; one that arrives after the label, joining a long session, is not seen). A label is final. A summary without `keptUntil` (made elsewhere) is labelled at end + `horizon`: a return that reaches ' +
    'this stage after the watermark passed that is not seen. Predictions whose ' +
    'wait has not passed at the end of input are censored (counted, not scored). Features come from the summary and ' +
    'the user\'s history (sessions, purchases, gaps). `label_buffer.timeout` is raised to twice the horizon when shorter (a churner\'s label ' +
    'comes only once the horizon has passed) and counts from the session\'s end as a late event or merge moved it, plus the wait past the horizon, and `label_buffer.max_size` must hold a horizon of sessions: while it is full, a new ' +
    'prediction is not held (emitted, but neither scored nor learnt from; those held keep their place). A session the sessionizer cut short (`closedBy`: `max_length`, at an event that ' +
    'starts its continuation, or `evicted` by its `max_open_sessions`, its later events starting another session) is no end: it joins the ' +
    'user\'s history but is not predicted (the continuation would label it 0 at once); the session its events go on in is. ' +
    'A session is predicted once, at its first summary: a late event ' +
    '(within the sessionizer\'s `allowed_lateness`) that extends it moves its deadline to the new end + `horizon` (+ the wait), and one that merges ' +
    'sessions makes them one session with one prediction: the first made (under the id the merged session keeps) stays and is labelled ' +
    'from the merged end (a merged session\'s start is no return), the others are withdrawn unscored, counted in `churn_predictions_merged_total` (and `model_predictions_withdrawn_total`), and leave the user\'s history (the merged session counts once in its sessions, purchases and gaps). ' +
    'The user\'s history follows an updated session\'s final span: the next session\'s gap is measured from its final end, a purchase ' +
    'only the update shows counts (once), and a late event before its start shortens its gap to the session before. ' +
    'Emits `prediction` and `drift` records; every input record passes through. ' +
    'The `model_` metrics of `intent-model`, and `churn_known_users`, `churn_users_evicted_total`, `churn_handed_over_total`, `churn_predictions_merged_total`; with a `gru`, `churn_sequences_evicted_total` (open sessions\' sequences let go at the bound of `max_users`, the oldest first).',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...modelOperatorProperties,
      ...churnProperties,
    },
  },
  examples: [{ horizon: '7d', model: { kind: 'logistic' } }, { name: 'churn-mlp', horizon: '14d', model: { kind: 'mlp', hidden: [16] } }],
  checkPipeline: (config, pipeline, self) => [...modelNameProblems(config, pipeline, self), ...sessionizerProblems(pipeline, self), ...inapplicableFieldProblems(config), ...bareMillisecondsWarnings(config)],
  create: (rawConfig, context) => createChurnModel(rawConfig, context),
});

/**
 * The `churn-model` operator over the configured TF.js model, or over `custom` (a plugin's own model, see
 * define.ts): the same label join, buffer, scores and records either way.
 */
export function createChurnModel(rawConfig: ChurnModelConfig, context: PluginContext, custom?: CustomModelSource): Operator {
  const config = resolveConfig(rawConfig, context.label, 0.2);
  claimModelName(context, config.name);
  // Label timeouts must outlast the horizon, or every churner would expire unlabelled.
  const horizon = parseDuration(rawConfig.horizon ?? '7d');
  config.labelBuffer.timeoutMs = Math.max(config.labelBuffer.timeoutMs, horizon * 2);
  // A prediction's id (time: the session's end when predicted; no key of its own), remade from those by a
  // snapshot's label buffer and pending predictions, so neither holds it.
  const idOf: IdDeriver = (userId, sessionId, time) => predictionId(config.name, userId, sessionId, time);
  const learner = new OnlineLearner(config, 'churn', context, idOf, custom);
  const maxUsers = rawConfig.max_users ?? 1_000_000;
  const metrics = learner.metrics;
  const usersEvicted = metrics.counter('churn_users_evicted_total', 'Users forgotten by the churn model because max_users was reached.');
  const knownUsers = metrics.gauge('churn_known_users', 'Users whose history the churn model keeps (at most max_users).');
  knownUsers.set(0);
  const sequences =
    config.model.kind === 'gru'
      ? new SequenceTracker(config.model.sequence_length, config.model.category_buckets, maxUsers, {
          open: metrics.counter('churn_sequences_evicted_total', 'Open sessions\' event sequences (gru) let go, the oldest first, to keep within max_users sequences: the session is predicted reading only its events since.'),
        })
      : undefined;
  /** In the order last seen (the first is the one max_users forgets; a snapshot keeps the order). Replaced whole by a restore (built aside in parts), as the deadline heap. */
  let users = new Map<string, UserState>();
  // Min-heap of predictions by deadline; entries already labelled are skipped when popped. Deadlines
  // in a number array of their own (unboxed doubles, no tuple per entry), predictions beside them.
  let deadlines: number[] = [];
  let deadlineOf: PendingChurn[] = [];
  /** The heap's arrays are a snapshot's too (its call's): copied at its next change, not at the call (the sources held). */
  let heapShared = false;
  const unshareHeap = (): void => {
    deadlines = deadlines.slice();
    deadlineOf = deadlineOf.slice();
    heapShared = false;
  };
  /** The users a snapshot is still reading, while records flow (see UsersCopy), and the number of the last such gather. */
  let copying: UsersCopy | undefined;
  let generation = 0;
  /** Has a snapshot still reading the users read the rest now: before a change it cannot keep aside (a restore, users revoked, a new snapshot). */
  const finishCopy = (): void => {
    const copy = copying;
    copying = undefined;
    copy?.readUpTo(copy.n);
  };

  const push = (deadline: number, pending: PendingChurn): void => {
    if (heapShared) unshareHeap();
    let i = deadlines.length;
    // Moved up while below its parent (ties stay below, as before: pop order depends on the layout).
    for (let parent = (i - 1) >> 1; i > 0 && deadline < deadlines[parent]!; i = parent, parent = (i - 1) >> 1) {
      deadlines[i] = deadlines[parent]!;
      deadlineOf[i] = deadlineOf[parent]!;
    }
    deadlines[i] = deadline;
    deadlineOf[i] = pending;
  };
  /** Removes the earliest entry (read it first at index 0). */
  const pop = (): void => {
    if (heapShared) unshareHeap();
    const deadline = deadlines.pop()!;
    const pending = deadlineOf.pop()!;
    const n = deadlines.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let least = deadline;
      if (l < n && deadlines[l]! < least) least = deadlines[(m = l)]!;
      if (r < n && deadlines[r]! < least) m = r;
      if (m === i) break;
      deadlines[i] = deadlines[m]!;
      deadlineOf[i] = deadlineOf[m]!;
      i = m;
    }
    deadlines[i] = deadline;
    deadlineOf[i] = pending;
  };

  const handedOver = metrics.counter(
    'churn_handed_over_total',
    'Scale-out: predictions released unlabelled because their user\'s partition moved to another member (which sees any return).',
  );
  const userOf = (userId: string, time: number): UserState => {
    const partition = context.currentPartition?.();
    let user = users.get(userId);
    const copy = copying;
    if (user) {
      // Seen now: to the map's end, so its first entry is the user seen least recently, the one max_users
      // forgets. By first sight (as before 2026-12-07) a loyal returner went first, while its awaited
      // label (a 0: it returns) expired with it and its history started over: the labels leaned to churn.
      // While a snapshot reads the users, the move waits until it has (UsersCopy.seen).
      if (copy !== undefined) copy.seen(userId, user);
      else {
        users.delete(userId);
        users.set(userId, user);
      }
      if (partition !== undefined) user.partition = partition;
    } else {
      if (users.size >= maxUsers) {
        let least = copy?.leastRecent();
        if (least === undefined) {
          // Every user seen since the snapshot's call: read the rest and make the moves first.
          finishCopy();
          least = users.entries().next().value!;
        }
        const [forgottenId, forgotten] = least;
        users.delete(forgottenId);
        usersEvicted.inc();
        // No label can come for its pending predictions now (their deadlines find no user): out of the
        // buffer at once, not after label_buffer.timeout (1d by default), which let them pile up.
        for (const pending of forgotten.pending) learner.expireOne(pending.sample);
      }
      // New since a snapshot's call: none of it (its `copied` says so), in the order seen.
      const copied = copying === undefined ? 0 : copying.generation + 1;
      user = { firstSeen: time, sessions: 0, purchases: 0, lastEnd: undefined, gapSum: 0, open: [], pending: [], copied, touched: 0, ...(partition === undefined ? {} : { partition }) };
      users.set(userId, user);
      copying?.seen(userId, user);
      knownUsers.set(users.size);
    }
    return user;
  };

  /** The first start of the user's sessions after `pending`'s end (-1: none yet): an open session's, or one closed since (predicted, so pending). */
  const firstReturn = (user: UserState, pending: PendingChurn): number => {
    let back = -1;
    for (const [, start] of user.open) if (start > pending.end && (back < 0 || start < back)) back = start;
    for (const p of user.pending) if (p !== pending && p.start > pending.end && (back < 0 || p.start < back)) back = p.start;
    return back;
  };

  /** The user started a session at `start`: noted on predictions for sessions that ended before it (labelled at their deadline). */
  const returned = (user: UserState, start: number): void => {
    for (const pending of user.pending) if (start > pending.end && (pending.back < 0 || start < pending.back)) pending.back = start;
  };

  /**
   * A late event moved the start of a session already seen back to `start` (it joined the session before
   * its first event): in time order the user was back then. Its open entry starts there now (for a prediction
   * made later), and earlier predictions see the return (at their deadline, as any other). Its update
   * summary, if it was closed, moves its prediction's start (onUpdate); the event comes first.
   */
  const startMoved = (userId: string, sessionId: string, start: number): void => {
    const user = users.get(userId);
    if (!user) return;
    copying?.keep(user);
    for (const entry of user.open) if (entry[0] === sessionId && start < entry[1]) entry[1] = start;
    returned(user, start);
  };

  const onEvent = (event: ClickEvent): void => {
    learner.snapshots.settle();
    const session = event.session;
    const sessionId = session?.id ?? event.sessionId;
    // By user and id: two users' sessions of one data id (GA4's ga_session_id, a second) are two sequences.
    if (sequences && sessionId !== undefined) sequences.push(sessionKey(event.userId, sessionId), event);
    // Only an event at a session's start tells this model anything (the user is back at it); a later one
    // (the sessionizer counts it) found the session open already: no user lookup per event. But for a late
    // event at its start (not its first to arrive: 0 since its start), which moved the start earlier.
    if (session !== undefined && session.position > 0) {
      if (session.sinceStart === 0) startMoved(event.userId, session.id, session.start);
      return;
    }
    const user = userOf(event.userId, event.time);
    const start = event.session?.start ?? event.time;
    if (sessionId !== undefined) {
      for (let i = 0; i < user.open.length; i++) if (user.open[i]![0] === sessionId) return;
      user.open.push([sessionId, start]);
      if (user.open.length > maxOpen) user.open.shift();
    }
    returned(user, start);
  };

  // Reused for every prediction: the learner keeps none of it (it copies what it holds on to).
  const input: SampleInput & { values: Float32Array } = { id: '', userId: '', sessionId: undefined, time: 0, names: churnFeatureNames, values: new Float32Array(churnFeatureNames.length), idKey: 0 };

  const merges = metrics.counter(
    'churn_predictions_merged_total',
    'Predictions withdrawn unscored because a late event merged their session into an earlier one (one session, one prediction).',
  );
  /**
   * An updated summary: a late event changed a session already predicted (a late event does not
   * re-predict). A merge (`replaces`) makes one session of several: the first prediction made for
   * any of them is the merged session's (the earliest, under the id the merged session keeps, as
   * consumers saw it), the others are withdrawn unscored and counted, and their sessions leave the
   * user's history and open list. Either way the prediction's end moves to the session's end, so its
   * deadline is the merged end + horizon + grace and a return is a session that starts after it (a merged
   * session's start, read as a return before, is none). The user's history follows the session's
   * final span: its last end (the next session's gap), a purchase only the update shows, its gap to
   * the session before (a late event before its start) and the gap of a session after it that
   * closed first.
   */
  const onUpdate = (summary: SessionSummary): void => {
    const user = users.get(summary.userId);
    if (!user) return;
    copying?.keep(user);
    if (user.lastEnd === undefined || summary.end > user.lastEnd) user.lastEnd = summary.end;
    if (summary.start < user.firstSeen) user.firstSeen = summary.start;
    const replaces = mergedAwayIds(summary);
    if (replaces.length > 0) {
      const open = user.open;
      let kept = 0;
      for (let i = 0; i < open.length; i++) if (!replaces.includes(open[i]![0])) open[kept++] = open[i]!;
      open.length = kept;
    }
    let survivor: PendingChurn | undefined;
    const pending = user.pending;
    for (let i = 0; i < pending.length; ) {
      const p = pending[i]!;
      const sessionId = p.sample.sessionId;
      if (sessionId !== summary.sessionId && (sessionId === undefined || !replaces.includes(sessionId))) {
        i++;
      } else if (survivor === undefined) {
        survivor = p; // pending is in prediction order: the first made
        i++;
      } else {
        pending.splice(i, 1); // its deadline entry is skipped when popped
        learner.withdraw(p.sample);
        merges.inc();
        // Its session is part of the survivor's now: what its summary added to the history goes, but for a
        // purchase the survivor had not made (the merged session bought, once). A restored prediction that
        // predates these fields (purchase not known, gap 0) changes nothing, as before them.
        user.sessions = Math.max(0, user.sessions - 1);
        if (p.purchased === 1 && survivor.purchased !== 1) survivor.purchased = 1;
        else if (p.purchased === 1) user.purchases = Math.max(0, user.purchases - 1);
        user.gapSum = Math.max(0, user.gapSum - p.gap);
      }
    }
    if (survivor === undefined) return;
    // A late purchase event: the session bought (once, however many updates say so; not known: maybe counted).
    if (summary.purchased && survivor.purchased === 0) {
      survivor.purchased = 1;
      user.purchases++;
    }
    if (summary.start < survivor.start) {
      const gap = Math.max(0, survivor.gap - (survivor.start - summary.start));
      user.gapSum = Math.max(0, user.gapSum - (survivor.gap - gap));
      survivor.gap = gap;
      survivor.start = summary.start;
    }
    if (!(summary.end > survivor.end)) return;
    // A session after it that closed before this update measured its gap from the end it had then.
    for (const p of pending) {
      if (p === survivor || p.gap <= 0 || p.start - p.gap !== survivor.end) continue;
      const gap = gapAfter(summary.end, p.start);
      user.gapSum = Math.max(0, user.gapSum - (p.gap - gap));
      p.gap = gap;
    }
    survivor.end = summary.end;
    survivor.back = firstReturn(user, survivor);
    // The same sessionizer's: the grace moves with the end (kept where the update has none, or from an evicted session).
    survivor.grace = Math.max(survivor.grace, lateReturnGrace(summary));
    push(survivor.end + horizon + survivor.grace, survivor); // the earlier entry is skipped when popped
    // Its label waits for the new end + horizon + grace: the label timeout counts from that end (+ grace) too, or a
    // session that grew by more than timeout - horizon (a merge with one released at a later watermark) would expire first.
    learner.postpone(survivor.sample, survivor.end + survivor.grace);
  };

  const onSummary = (summary: SessionSummary, emit: Emit): void => {
    learner.snapshots.settle();
    if (sequences) {
      // A session is predicted once, at its first summary: a merge (only a session already summarised can be
      // merged into: one that starts a gap after another's end finds it closed) or an update predicts nothing
      // again, so no sequence of theirs is read: released, the merged-away sessions' and the late events' since.
      for (const id of mergedAwayIds(summary)) sequences.delete(sessionKey(summary.userId, id));
      if (summary.update) sequences.delete(sessionKey(summary.userId, summary.sessionId));
    }
    if (summary.update) return onUpdate(summary);
    const user = userOf(summary.userId, summary.start);
    // A session that started before the user's first event seen (a late event, within the sessionizer's
    // allowed_lateness, began it) is the user's first: its tenure feature read log1p of a negative number of
    // days, NaN below -1 (an update's summary moved firstSeen so already; a first summary did not).
    if (summary.start < user.firstSeen) user.firstSeen = summary.start;
    // Closed: out of the open list (in place, order kept).
    const open = user.open;
    let kept = 0;
    for (let i = 0; i < open.length; i++) if (open[i]![0] !== summary.sessionId) open[kept++] = open[i]!;
    open.length = kept;
    // The UTC hour, without a Date per session.
    const hour = (Math.floor((((summary.end % day) + day) % day) / 3_600_000) / 24) * 2 * Math.PI;
    const counts = summary.counts ?? {};
    // Into the operator's one input vector: the learner normalises it into its own rows at once.
    const values = input.values;
    values[0] = Math.log1p(summary.eventCount);
    values[1] = Math.log1p((summary.end - summary.start) / 60_000);
    values[2] = Math.log1p(counts.view ?? 0);
    values[3] = Math.log1p(counts.cart ?? 0);
    values[4] = summary.purchased ? 1 : 0;
    values[5] = Math.log1p(user.sessions);
    values[6] = Math.log1p((summary.end - user.firstSeen) / day);
    values[7] = Math.log1p(user.sessions > 1 ? user.gapSum / (user.sessions - 1) / day : 0);
    values[8] = Math.log1p(user.purchases);
    const gap = gapAfter(user.lastEnd, summary.start);
    values[9] = Math.log1p(gap / day);
    values[10] = Math.sin(hour);
    values[11] = Math.cos(hour);
    const purchased = summary.purchased ? 1 : 0;
    user.gapSum += gap;
    user.sessions++;
    user.purchases += purchased;
    // A session that closes after a later one did (a late event started it) leaves the last end the later one's.
    if (user.lastEnd === undefined || summary.end > user.lastEnd) user.lastEnd = summary.end;
    // Cut by the sessionizer's max_length (at an event that starts its continuation) or evicted by its
    // max_open_sessions: not an end (its events go on in another session, a "return" moments later that
    // would label it 0). Part of the user's history, not a prediction.
    const closedBy = summary.closedBy;
    const key = sessionKey(summary.userId, summary.sessionId);
    if (closedBy === 'evicted' || closedBy === 'max_length') {
      sequences?.delete(key);
      return;
    }
    input.id = idOf(summary.userId, summary.sessionId, summary.end, 0);
    input.userId = summary.userId;
    input.sessionId = summary.sessionId;
    input.time = summary.end;
    if (sequences) input.seq = sequences.sample(key);
    const grace = lateReturnGrace(summary);
    const pending: PendingChurn = { sample: learner.submit(input, emit), start: summary.start, end: summary.end, purchased, gap, back: -1, grace, userId: summary.userId };
    // The label timeout counts from end + grace: timeout >= 2 horizons then outlasts the label's wait, however long the grace.
    if (grace > 0) learner.postpone(pending.sample, summary.end + grace);
    sequences?.delete(key);
    // The user may already be back: events of the next session can arrive before this summary, and that
    // session may have closed before it (a late event started this one).
    pending.back = firstReturn(user, pending);
    user.pending.push(pending);
    push(summary.end + horizon + grace, pending);
  };

  return {
    async open() {
      await learner.open();
    },
    apply: learnerOperator(context, learner, {
      event: onEvent,
      summary: onSummary,
      watermark(time, emit) {
        while (deadlines.length > 0 && deadlines[0]! < time) {
          const deadline = deadlines[0]!;
          const pending = deadlineOf[0]!;
          pop();
          // Moved later by a merge or a late event (onUpdate): its entry at the new deadline labels it.
          if (pending.end + horizon + pending.grace > deadline) continue;
          // Gone with its user (evicted, or its partition revoked): no label.
          const user = users.get(pending.userId);
          const index = user ? user.pending.indexOf(pending) : -1;
          if (index < 0) continue;
          copying?.keep(user!);
          user!.pending.splice(index, 1);
          learner.label(pending.sample, pending.back >= 0 && pending.back - pending.end <= horizon ? 0 : 1, deadline, emit);
        }
        learner.expire(time - config.labelBuffer.timeoutMs);
      },
    }),
    /**
     * The users of these partitions return (or not) on another member now: labelling their pending
     * predictions here would call every one of them a churner. Their history goes too; the
     * predictions leave the label buffer unscored at once, counted as expired as well (an `unlabelled` record says
     * `handed_over`, with emit_labels, at the stage's next record or tick: no emit is at hand here; a checkpoint taken
     * before then holds it, see OnlineLearner.emitUnlabelled).
     */
    partitionsRevoked(partitions) {
      learner.snapshots.settle();
      finishCopy();
      const revoked = new Set(partitions);
      let released = 0;
      for (const [userId, user] of users) {
        if (user.partition === undefined || !revoked.has(user.partition)) continue;
        released += user.pending.length;
        for (const pending of user.pending) learner.expireOne(pending.sample, 'handed_over');
        users.delete(userId);
      }
      if (released > 0) handedOver.inc(released);
      knownUsers.set(users.size);
      context.logger.info({ partitions, released }, 'churn: users of revoked partitions released');
    },
    /**
     * An erasure request: the user's history and their predictions waiting for a deadline go, unlabelled and
     * uncounted (the learner's forgetUser); the deadline heap's entries for them are skipped when popped, as an
     * evicted user's are, and a snapshot writes them as stand-ins without a user.
     */
    forget(userId) {
      learner.snapshots.settle();
      let dropped = learner.forgetUser(userId) + (sequences?.forgetUser(userId) ?? 0);
      if (users.delete(userId)) {
        dropped++;
        knownUsers.set(users.size);
      }
      return dropped;
    },
    /**
     * The state as of this call, built in parts (see PartedSnapshots): the learner's, then the users' and the deadlines',
     * copied, then encoded from the copies while records flow (PartedSnapshots.takeCopying).
     */
    snapshot(): CopyingSnapshot<ChurnState> {
      return learner.snapshots.takeCopying(
        (function* () {
          const learnerState = yield* learner.snapshotParts();
          // Copies on write (UsersCopy, the heap's arrays): taken now, read while records flow.
          finishCopy();
          generation += 2;
          const copy: UsersCopy = (copying = new UsersCopy(users, generation, () => {
            if (copying === copy) copying = undefined;
          }));
          heapShared = true;
          const usersState = encodeUsers(copy, deadlines, deadlineOf, idOf);
          const savedSequences = sequences ? yield* sequences.stateParts() : [];
          return (function* () {
            // The users first: until they are read, records keep what they change (UsersCopy).
            const columns = yield* usersState;
            const saved = yield* learnerState;
            return { format: 5 as const, learner: saved, users: columns.users, deadlines: columns.deadlines, sequences: savedSequences };
          })();
        })(),
      );
    },
    async restore(state) {
      learner.snapshots.settle();
      finishCopy();
      const saved = state as ChurnState;
      // In parts, each part a turn of the event loop (see inTurns); the state swapped in at the end.
      await inTurns(
        (function* () {
          yield* learner.restoreParts(saved.learner);
          const handleOf = yield* learner.handlesById();
          const pendingRows: PendingChurn[] = [];
          const restored = new Map<string, UserState>();
          if (Array.isArray(saved.users)) {
            yield* eachOf(saved.users, ([key, user]) => {
              const pending = user.pending.map(([id, end, back]): PendingChurn => ({ sample: handleOf(id), start: end, end, purchased: NaN, gap: 0, back, grace: 0, userId: key }));
              pendingRows.push(...pending);
              restored.set(key, { ...user, open: user.open.map((o) => [...o] as [string, number]), pending, copied: 0, touched: 0 });
            });
          } else yield* restoreUsers(saved.users, restored, pendingRows, handleOf, idOf);
          const restoredDeadlines: number[] = [];
          const restoredDeadlineOf: PendingChurn[] = [];
          const what = 'churn snapshot: deadlines';
          // In their saved order (a heap already). A deadline whose prediction no user holds any more
          // gets a stand-in, skipped when popped.
          if (!Array.isArray(saved.deadlines) && saved.deadlines.pending !== undefined) {
            const rowOf = decodeColumn(saved.deadlines.pending, `${what}: pending`);
            const predictionEnds = new Float64Array(rowOf.length);
            yield* partsOf(rowOf.length, (from, to) => {
              for (let i = from; i < to; i++) {
                const row = rowOf[i]!;
                if (row !== NO_PENDING && !(Number.isInteger(row) && row >= 0 && row < pendingRows.length)) throw new Error(`${what}: row ${row} of ${pendingRows.length} pending predictions`);
                predictionEnds[i] = row === NO_PENDING ? 0 : pendingRows[row]!.end;
              }
            });
            const at = decodeColumnOf(saved.deadlines.at, rowOf.length, `${what}: at`, { values: predictionEnds, ref: PREDICTION_ENDS });
            const gone: PendingChurn = { sample: { id: '', released: true }, start: 0, end: 0, purchased: 0, gap: 0, back: -1, grace: 0, userId: '' };
            yield* partsOf(rowOf.length, (from, to) => {
              for (let i = from; i < to; i++) {
                restoredDeadlines.push(at[i]!);
                restoredDeadlineOf.push(rowOf[i]! === NO_PENDING ? gone : pendingRows[rowOf[i]!]!);
              }
            });
          } else {
            // Formats 1 and 2: by id and user.
            const pendingById = new Map<string, PendingChurn>();
            for (const p of pendingRows) pendingById.set(p.sample.id, p);
            const restoreDeadline = (deadline: number, id: string, userId: string): void => {
              restoredDeadlines.push(deadline);
              const pending = pendingById.get(id);
              restoredDeadlineOf.push(pending !== undefined && pending.userId === userId ? pending : { sample: handleOf(id), start: 0, end: 0, purchased: 0, gap: 0, back: -1, grace: 0, userId });
            };
            if (Array.isArray(saved.deadlines)) yield* eachOf(saved.deadlines, ([deadline, id, userId]) => restoreDeadline(deadline, id, userId));
            else {
              const ids = decodeStrings(saved.deadlines.ids, undefined, `${what}: ids`);
              const userIds = decodeStrings(saved.deadlines.userIds, ids.length, `${what}: userIds`);
              const at = decodeColumnOf(saved.deadlines.at, ids.length, `${what}: at`);
              yield* partsOf(ids.length, (from, to) => {
                for (let i = from; i < to; i++) restoreDeadline(at[i]!, ids[i]!, userIds[i]!);
              });
            }
          }
          if (sequences) {
            yield* sequences.loadParts(saved.sequences);
            if (saved.format !== 5) yield* rekeySequences(sequences, restored);
          }
          users = restored;
          knownUsers.set(users.size);
          deadlines = restoredDeadlines;
          deadlineOf = restoredDeadlineOf;
          heapShared = false;
        })(),
      );
    },
    async close() {
      await learner.close();
    },
  };
}

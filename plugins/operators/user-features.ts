/**
 * `user-features`: a block of features across a user's sessions at every event: recency, frequency,
 * monetary value, exponentially decayed event and purchase counts over event-time horizons, sessions,
 * time since the last purchase, mean session length. Only events that arrived up to the current one count
 * (arrival order: a late event's include later ones, see the description).
 *
 * State is one row of numbers per known user in a shared Float64Array (struct of arrays), because
 * this state grows with every user ever seen: a million users must fit in well under a GiB.
 */
import { bareMillisecondsWarning, type ClickEvent, type Column, type CopyingSnapshot, type CopyThenEncode, decodeDerivedIds, decodeStrings, decodeTable, defineOperator, type DerivedIds, type Duration, durationText, type Element, type Emit, encodeDerivedIds, FeatureBlock, inFloat32Range, encodeTable, inParts, parseDuration, PartedSnapshots, type EntryProblem, PluginConfigError, type PluginContext, recordOperator, type SessionContext, turnDue } from 'tributary';
import { handleOf } from './handle.js';
import { horizonLabel, userFeatureNames } from './feature-blocks.js';

export interface UserFeaturesConfig {
  horizons: Duration[];
  max_users: number;
}

/**
 * Two horizons of one duration (1d and 24h) would give the same features under two names: a config error
 * `validate` says (the schema's uniqueItems sees only equal strings).
 */
function sameDurationHorizons(horizons: readonly Duration[]): { index: number; message: string }[] {
  const durations = horizons.map((h) => parseDuration(h));
  return durations.flatMap((duration, k) => {
    const j = durations.indexOf(duration);
    return j < k ? [{ index: k, message: `'${horizonLabel(horizons[k]!)}' is the same duration as horizons[${j}] '${horizonLabel(horizons[j]!)}'` }] : [];
  });
}

export default defineOperator<UserFeaturesConfig>({
  name: 'user-features',
  state: 'keyed',
  emits: [],
  status: 'beta',
  summary: 'Appends per-user features across sessions: recency, frequency, monetary value, decayed counts, time since last purchase.',
  description:
    'Computed from the user\'s events that arrived up to and including the current one: arrival order, which is event-time order ' +
    'for events in order (the sessionizer sorts them); a late event (within its `allowed_lateness`) counts every event of the user that ' +
    'arrived before it, later ones in event time among them (another session\'s purchase maybe): the sessionizer marks such an event ' +
    '(`session.outOfOrder`), and intent-model predicts at none. ' +
    'Names: `u_events`, `u_sessions`, `u_purchases`, `u_monetary` (sum of purchase prices; beyond the Float32 range of the vector, the ' +
    'largest Float32, never Infinity), `u_tenure_days`, ' +
    '`u_recency_days` (from the end of the previous session to the start of this one; 0 in the first), `u_days_since_purchase` (0 before the first ' +
    'purchase, see `u_has_purchased`), `u_has_purchased`, `u_mean_session_events` and `u_mean_session_minutes` (over the ' +
    "user's completed sessions), then `u_events_<h>` and `u_purchases_<h>` for each horizon h, named as it is written (`u_events_7d`; a number of milliseconds: `u_events_3600000ms`): counts decayed by " +
    'exp(-age / h) in event time. Sessions are told apart by `session.id` (a sessionizer before), else `sessionId`; ' +
    'an event back in an earlier session (data sessions interleaved across tabs, a late event) opens none and counts ' +
    'toward the current one, and a data id that comes back after the gap opens a new one. A session that starts before the current one (a late ' +
    'event opening a session of its own) counts in `u_sessions` but does not become the current one. A late event that merges sessions ' +
    '(`session.merged`) makes them one in `u_sessions`; one that merges the current session with the one completed before it ' +
    'takes that one out of the completed sessions (`u_mean_session_*`) and makes the one before it the previous session (`u_recency_days`), ' +
    'and one that merges the two sessions completed last makes them one completed session, the late event among its events (not the current ' +
    'one\'s), as the same events in order would; after other merges (of older sessions, of a late session of its own with a completed one, of ' +
    'a session whose id is not `<userId>:<start ms>`, or a second before another session completes: the figures of older sessions are not ' +
    'kept) those features keep the figures they had. ' +
    'Beyond `max_users` known users, the 10% seen least recently are forgotten, counted in `users_evicted_total` ' +
    '(the expected policy at the bound: logged once, at info, when it first happens).',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      horizons: {
        type: 'array',
        minItems: 0,
        maxItems: 8,
        items: { $ref: 'tributary:duration', minDuration: '1ms' },
        uniqueItems: true,
        default: ['1d', '7d', '30d'],
        description: 'Time constants of the decayed counts (event time), each a different duration.',
      },
      max_users: {
        type: 'integer',
        minimum: 1,
        default: 5000000,
        description:
          'Most users remembered; beyond it the least recently seen tenth is forgotten (counted). About 380 B of heap a user (BENCHMARKS.md). ' +
          'With `scale_out` it bounds each partition\'s instance: a member holds up to this times the partitions assigned to it.',
      },
    },
  },
  examples: [{}, { horizons: ['1h', '1d', '7d', '30d'], max_users: 1000000 }],
  checkPipeline: (config): EntryProblem[] => [
    ...sameDurationHorizons(config.horizons).map(({ index, message }) => ({ field: `horizons[${index}]`, message })),
    ...config.horizons.flatMap((horizon, index) => bareMillisecondsWarning(`horizons[${index}]`, horizon) ?? []),
  ],
  featureNames: (config) => userFeatureNames(config.horizons),
  // Each horizon's counts are its own (decayed by it alone), and a name says its horizon as written (u_events_7d is
  // 7 days'): horizons added, removed or changed leave the names kept made as they were, so a model warm-starts across
  // the edit (learning the added ones from 0, the gone ones dropped or ignored). The fixed features read no horizon.
  // `max_users` bounds which users are remembered, not how a feature is computed.
  keepsFeatureValues: (saved) => {
    const before = (saved as { horizons?: unknown } | null)?.horizons;
    return Array.isArray(before) && before.every((horizon) => typeof horizon === 'string' || typeof horizon === 'number');
  },
  create(config, context) {
    const horizons = config.horizons.map((h) => parseDuration(h));
    for (const [k, h] of horizons.entries()) if (!(h > 0)) throw new PluginConfigError(`horizons[${k}]`, `must be positive, got '${String(config.horizons[k])}'`);
    // Checked again here for a config that reaches the factory without validation (a plugin's own test).
    for (const { index, message } of sameDurationHorizons(config.horizons)) throw new PluginConfigError(`horizons[${index}]`, message);
    const state = new UserState(horizons, config.horizons.map(horizonLabel), userFeatureNames(config.horizons), config.max_users, context);
    return {
      apply: recordOperator(context, () => ({
        record: (record, emit) => state.record(record, emit),
        watermark: () => state.flushMetrics(),
      })),
      snapshot: () => state.snapshot(),
      restore: (saved) => state.restore(saved as UserFeaturesSnapshot | UserFeaturesSnapshotV1),
      forget: (userId) => state.forget(userId),
    };
  },
});

// Row layout of one user's numbers.
const FIRST_SEEN = 0;
const LAST_TIME = 1;
const EVENTS = 2;
const SESSIONS = 3;
const SESSION_START = 4;
const SESSION_EVENTS = 5;
const SESSION_LAST = 6;
const DONE_SESSIONS = 7;
const DONE_EVENTS = 8;
const DONE_DURATION = 9;
const PREV_SESSION_END = 10;
const PURCHASES = 11;
const MONETARY = 12;
const LAST_PURCHASE = 13;
const DECAY_TIME = 14;
/**
 * The session completed last (before the current one) as it went into the DONE_ figures, and the end
 * of the one before it: what a late event merging that session into the current one takes back out,
 * or merging the two makes one (UserState.unmerge). PREV_SESSION_EVENTS 0: not known (a completed
 * session has at least one event).
 */
const PREV_SESSION_START = 15;
const PREV_SESSION_EVENTS = 16;
const END_BEFORE_PREV = 17;
const FIXED = 18;
/**
 * Fields holding event times are snapshotted as offsets from FIRST_SEEN where that is smaller. Until
 * the user's first completed session and first purchase, PREV_SESSION_END and LAST_PURCHASE (read
 * only after them) hold the time the user was first seen, not 0: one 0 among event times made the
 * whole column raw float64s (0 is no small offset from a time), twice the bytes of 4-byte offsets.
 */
const TIME_REFS: (number | undefined)[] = [];
for (const field of [LAST_TIME, SESSION_START, SESSION_LAST, PREV_SESSION_END, LAST_PURCHASE, DECAY_TIME, PREV_SESSION_START, END_BEFORE_PREV]) TIME_REFS[field] = FIRST_SEEN;
/** Fields before the previous-session ones came (version 2): FIXED less those three. */
const FIXED_V2 = 15;

const DAY = 86_400_000;

/**
 * Copies a row as versions 1 and 2 laid it out (no previous-session fields: the decayed counts right
 * after FIXED_V2) into the current layout; the previous-session fields stay 0, not known.
 */
function widenRowV2(source: ArrayLike<number>, from: number, rows: Float64Array, to: number, width: number): void {
  const shift = FIXED - FIXED_V2;
  for (let f = 0; f < FIXED_V2; f++) rows[to + f] = source[from + f]!;
  for (let f = FIXED; f < width; f++) rows[to + f] = source[from + f - shift]!;
}

/** What an event's session is to the user (UserState.opens). */
const NONE = 0;
const CURRENT = 1;
const PAST = 2;
type Opens = typeof NONE | typeof CURRENT | typeof PAST;

/** The first format: one array per user (slow for a million users; still restored). */
export interface UserFeaturesSnapshotV1 {
  version: 1;
  horizons: number[];
  /** [userId, current session id or null, ...row numbers], in the order users were first seen. */
  users: [string, string | null, ...number[]][];
}

/** Columnar: the ids once, then one encoded column per row field (see columns.ts). */
export interface UserFeaturesSnapshot {
  /** 2: without the previous-session fields (PREV_SESSION_START to END_BEFORE_PREV), restored as not known. */
  version: 2 | 3;
  horizons: number[];
  /**
   * The horizons as the config wrote them (`7d`, not the `1w` their milliseconds read as), for a restore
   * into other horizons to say in the user's words; absent in snapshots of older versions.
   */
  horizonNames?: string[];
  /** User ids in the order users were first seen (the order the map iterates; eviction goes by last-seen time). */
  users: string[];
  /** Each user's current session id. */
  sessions: DerivedIds;
  /** One column per row field, in row layout order. */
  columns: Column[];
}

/** A slot's state in a snapshot's gather (SlotsCopy.marks). */
const UNREAD = 0;
const READ = 1;
/** Changed since the call: its row and session as at the call are in SlotsCopy.kept. */
const KEPT = 2;

/** A user-features snapshot's copy made while records flow (see UserState.snapshotParts). */
interface SlotsCopy {
  /** Users at the call: the map's first n entries. */
  readonly n: number;
  /** The live map's slots, in its order (the eviction order): read up to n. */
  readonly entries: Iterator<number>;
  /** Entries read so far. */
  read: number;
  /** Per slot held at the call: UNREAD, READ, KEPT (a slot beyond: a user new since, not in the snapshot). */
  readonly marks: Uint8Array;
  readonly kept: Map<number, { row: Float64Array; session: string | number | undefined }>;
  readonly users: string[];
  /** Each user's session id, or its restored start time where the id is not built yet. */
  readonly sessions: (string | number | undefined)[];
  /** The rows in map order. */
  readonly rows: Float64Array;
}

class UserState {
  private readonly slots = new Map<string, number>();
  private userIds: (string | undefined)[] = [];
  private sessionIds: (string | undefined)[] = [];
  /**
   * After a restore, slot i's session id is `<userId>:<restoredTimes[i]>` until first needed (NaN:
   * as in sessionIds): building a million id strings up front was a third of the restore time.
   */
  private restoredTimes: Float64Array | undefined;
  private rows: Float64Array;
  private capacity = 1024;
  private free: number[] = [];
  private used = 0;
  private readonly width: number;
  private readonly horizons: number[];
  /** The horizons as written in the config (horizonLabel). */
  private readonly horizonNames: string[];
  private readonly block: FeatureBlock;
  private readonly maxUsers: number;
  private readonly context: PluginContext;
  private readonly evicted;
  private evictionLogged = false;
  private readonly known;
  private knownReported = 0;
  /** A snapshot still in parts reads the state: settled before a record changes it. */
  private readonly snapshots = new PartedSnapshots();
  /** The users' rows a snapshot still reads while records flow (see SlotsCopy), until it has them all. */
  private copying: SlotsCopy | undefined;

  constructor(horizons: number[], horizonNames: string[], names: readonly string[], maxUsers: number, context: PluginContext) {
    this.horizons = horizons;
    this.horizonNames = horizonNames;
    this.width = FIXED + 2 * horizons.length;
    this.rows = new Float64Array(this.capacity * this.width);
    this.maxUsers = maxUsers;
    this.context = context;
    this.block = new FeatureBlock(names);
    this.evicted = context.metrics.counter('users_evicted_total', 'Users forgotten because max_users was reached.');
    this.known = context.metrics.gauge('known_users', 'Users remembered.');
    // A count whose start is known: exported from the start; the first batch reports a restored count.
    this.known.set(0);
  }

  get names(): readonly string[] {
    return this.block.names;
  }

  record(record: Element, emit: Emit): void {
    if (record.kind !== 'event') {
      emit(record);
      return;
    }
    this.snapshots.settle();
    const event = record as ClickEvent;
    const time = event.time;
    const handle = handleOf(event.session);
    let slot: number | undefined;
    if (handle !== undefined && handle.userStage === this && this.userIds[handle.userSlot] === event.userId) slot = handle.userSlot;
    else {
      slot = this.slots.get(event.userId);
      if (slot === undefined) {
        slot = this.allocate(event.userId);
        const fresh = this.rows; // read after allocate: it may have grown the slab
        const start = slot * this.width;
        fresh[start + FIRST_SEEN] = time;
        fresh[start + LAST_TIME] = time;
        fresh[start + DECAY_TIME] = time;
        fresh[start + PREV_SESSION_END] = time;
        fresh[start + LAST_PURCHASE] = time;
        fresh[start + PREV_SESSION_START] = time;
        fresh[start + END_BEFORE_PREV] = time;
      }
      if (handle !== undefined) {
        handle.userStage = this;
        handle.userSlot = slot;
      }
    }
    // A snapshot still gathering its rows keeps this user's as they were at its call, before the change.
    const copy = this.copying;
    if (copy !== undefined && copy.marks[slot] === UNREAD) this.keepForCopy(copy, slot);
    const r = slot * this.width;
    const row = this.rows;
    const sessionId = event.session?.id ?? event.sessionId;
    if (this.restoredTimes !== undefined && slot < this.restoredTimes.length) this.materialize(slot);
    const opens = sessionId === undefined ? NONE : this.opens(event, sessionId, slot, row[r + SESSION_START]!);
    if (opens === PAST) row[r + SESSIONS]!++;
    else if (opens === CURRENT) {
      if (this.sessionIds[slot] !== undefined) {
        row[r + DONE_SESSIONS]!++;
        row[r + DONE_EVENTS]! += row[r + SESSION_EVENTS]!;
        row[r + DONE_DURATION]! += row[r + SESSION_LAST]! - row[r + SESSION_START]!;
        row[r + END_BEFORE_PREV] = row[r + PREV_SESSION_END]!;
        row[r + PREV_SESSION_END] = row[r + SESSION_LAST]!;
        row[r + PREV_SESSION_START] = row[r + SESSION_START]!;
        row[r + PREV_SESSION_EVENTS] = row[r + SESSION_EVENTS]!;
      }
      this.sessionIds[slot] = sessionId!;
      row[r + SESSIONS]!++;
      row[r + SESSION_START] = event.session?.start ?? time;
      row[r + SESSION_EVENTS] = 0;
      row[r + SESSION_LAST] = time;
    }
    // Sessions a late event merged into its own were each counted when they started: one session now.
    const merged = event.session?.merged;
    let inCompleted = false;
    if (merged !== undefined) {
      row[r + SESSIONS] = Math.max(1, row[r + SESSIONS]! - merged.length);
      inCompleted = this.unmerge(event, merged, slot, r);
    }
    row[r + EVENTS]!++;
    // A late event that made two completed sessions one belongs to it, as in order, not to the current one.
    if (inCompleted) row[r + DONE_EVENTS]!++;
    else row[r + SESSION_EVENTS]!++;
    if (time > row[r + SESSION_LAST]!) row[r + SESSION_LAST] = time;
    if (time > row[r + LAST_TIME]!) row[r + LAST_TIME] = time;
    if (time < row[r + FIRST_SEEN]!) row[r + FIRST_SEEN] = time;
    const isPurchase = event.type === 'purchase';
    if (isPurchase) {
      row[r + PURCHASES]!++;
      if (event.price !== undefined && Number.isFinite(event.price)) row[r + MONETARY]! += event.price;
      if (row[r + PURCHASES] === 1 || time > row[r + LAST_PURCHASE]!) row[r + LAST_PURCHASE] = time;
    }
    // Decayed counts: decay to this event's time (a late event counts as at the latest time), then add.
    const age = time - row[r + DECAY_TIME]!;
    if (age > 0) row[r + DECAY_TIME] = time;
    const horizons = this.horizons;
    const h = horizons.length;
    const decays = r + FIXED;
    for (let k = 0; k < h; k++) {
      const factor = age > 0 ? Math.exp(-age / horizons[k]!) : 1;
      row[decays + k] = row[decays + k]! * factor + 1;
      row[decays + h + k] = row[decays + h + k]! * factor + (isPurchase ? 1 : 0);
    }

    const v = this.block.append(event);
    let i = this.block.offset;
    const purchases = row[r + PURCHASES]!;
    const done = row[r + DONE_SESSIONS]!;
    v[i++] = row[r + EVENTS]!;
    v[i++] = row[r + SESSIONS]!;
    v[i++] = purchases;
    v[i++] = inFloat32Range(row[r + MONETARY]!);
    v[i++] = (time - row[r + FIRST_SEEN]!) / DAY;
    v[i++] = done > 0 ? Math.max(0, row[r + SESSION_START]! - row[r + PREV_SESSION_END]!) / DAY : 0;
    v[i++] = purchases > 0 ? Math.max(0, time - row[r + LAST_PURCHASE]!) / DAY : 0;
    v[i++] = purchases > 0 ? 1 : 0;
    v[i++] = done > 0 ? row[r + DONE_EVENTS]! / done : 0;
    v[i++] = done > 0 ? row[r + DONE_DURATION]! / done / 60_000 : 0;
    for (let k = 0; k < 2 * h; k++) v[i++] = row[decays + k]!;
    emit(event);
  }

  /**
   * Whether the event opens a session the user has not had, and which. CURRENT: its id is not the
   * current one's and it starts after it (at the same time: its first event), or it is the current
   * one's, reused after the gap (data ids), with a later start. PAST: the first event of a session that started before the current one
   * (a late event opening a session of its own): counted, but the current session stays current (else
   * the user's next event in it would open it a second time). NONE: a return to an earlier session (a
   * data session resumed in another tab, a late event), which adds to the current session's figures.
   */
  private opens(event: ClickEvent, sessionId: string, slot: number, currentStart: number): Opens {
    const current = this.sessionIds[slot];
    if (current === undefined) return CURRENT;
    const tag = event.session;
    if (sessionId === current) return tag !== undefined && tag.start > currentStart ? CURRENT : NONE;
    if (tag === undefined || tag.start > currentStart) return CURRENT;
    // Two sessions that start at one time (tabs opened in the same millisecond): the one whose first event
    // comes second is current; a return to the other is none, as to any earlier session.
    if (tag.start === currentStart) return tag.position === 0 ? CURRENT : NONE;
    return tag.position === 0 ? PAST : NONE;
  }

  /**
   * A late event merged two of the user's sessions (`merged` names the later one, the event's session
   * is the earlier): one session now, as the events in order would have made it, where the row says
   * exactly what each went into the figures as: the current session and the one before it
   * (unmergeCurrent), or the two completed last (mergeCompleted). Other merges keep the figures they
   * had: of older sessions (their figures are not kept), and a second merge before another session
   * completes (the figures kept are of sessions that are one now). Returns whether the event belongs
   * to the completed sessions (mergeCompleted), not to the current one.
   */
  private unmerge(event: ClickEvent, merged: readonly string[], slot: number, r: number): boolean {
    if (merged.length !== 1) return false;
    if (merged[0] === this.sessionIds[slot]) {
      this.unmergeCurrent(event.session!, slot, r);
      return false;
    }
    return this.mergeCompleted(event, merged[0]!, r);
  }

  /**
   * A late event bridged the user's current session and the one before it: the earlier one, if it
   * completed here, leaves the completed sessions' figures (the mean session length) and the current
   * session takes its events and start; the session before it becomes the previous one (recency).
   */
  private unmergeCurrent(tag: SessionContext, slot: number, r: number): void {
    const row = this.rows;
    const previousEvents = row[r + PREV_SESSION_EVENTS]!;
    // Whether the earlier session is the one completed last, and its figures, are not known.
    if (row[r + DONE_SESSIONS]! > 0 && previousEvents === 0) return;
    if (row[r + DONE_SESSIONS]! > 0 && tag.start <= row[r + PREV_SESSION_START]!) {
      // The earlier session is (or holds) the one completed last: taken back out of the completed ones.
      row[r + DONE_SESSIONS]!--;
      row[r + DONE_EVENTS]! -= previousEvents;
      row[r + DONE_DURATION]! -= row[r + PREV_SESSION_END]! - row[r + PREV_SESSION_START]!;
      row[r + SESSION_EVENTS]! += previousEvents;
      row[r + PREV_SESSION_END] = row[r + END_BEFORE_PREV]!;
      row[r + PREV_SESSION_EVENTS] = 0;
    }
    // Else the earlier session never completed here (a late session older than the current one): its
    // events counted toward the current one already.
    if (tag.start < row[r + SESSION_START]!) row[r + SESSION_START] = tag.start;
    this.sessionIds[slot] = tag.id;
  }

  /**
   * A late event bridged the two sessions completed last, S1 then S2 (the current one later): one
   * completed session now, from S1's start to S2's end. S1 went into DONE_DURATION as its end
   * (END_BEFORE_PREV) less its start, S2 as PREV_SESSION_END less PREV_SESSION_START: so the total
   * grows by the time between them, S2's start less S1's end, and the count drops by one; the late
   * event is one of its events (the caller counts it there). Which sessions merged: the absorbed one
   * is S2 where its id is `<userId>:<S2's start>`, as the sessionizer names a session by the time of
   * its first event (an id once only: no other session it keeps holds that time); the event's session
   * is then the one just before S2, S1's where it starts at or before S1's end (a user's sessions are
   * apart in time: a late session of its own between S1 and S2 starts after S1's end). S1's events
   * and start are not kept: a further merge of the two waits until a session completes.
   */
  private mergeCompleted(event: ClickEvent, absorbed: string, r: number): boolean {
    const row = this.rows;
    if (row[r + DONE_SESSIONS]! < 2 || row[r + PREV_SESSION_EVENTS] === 0) return false;
    const endBefore = row[r + END_BEFORE_PREV]!;
    const previousStart = row[r + PREV_SESSION_START]!;
    if (!(event.session!.start <= endBefore && absorbed === `${event.userId}:${previousStart}`)) return false;
    row[r + DONE_SESSIONS]!--;
    row[r + DONE_DURATION]! += previousStart - endBefore;
    row[r + PREV_SESSION_EVENTS] = 0;
    return true;
  }

  private allocate(userId: string): number {
    if (this.slots.size >= this.maxUsers) this.evict();
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.used++;
      if (slot >= this.capacity) {
        this.capacity *= 2;
        const grown = new Float64Array(this.capacity * this.width);
        grown.set(this.rows);
        this.rows = grown;
      }
    } else {
      this.rows.fill(0, slot * this.width, (slot + 1) * this.width);
    }
    this.slots.set(userId, slot);
    this.userIds[slot] = userId;
    this.sessionIds[slot] = undefined;
    if (this.restoredTimes !== undefined && slot < this.restoredTimes.length) this.restoredTimes[slot] = NaN;
    return slot;
  }

  /** Forgets the least recently seen tenth of the users (at least one): amortised over many events. */
  private evict(): void {
    // Eviction frees slots for reuse and changes the map's order: a snapshot gathering reads the rest first.
    this.finishCopy();
    const count = Math.max(1, Math.floor(this.slots.size / 10));
    const times = new Float64Array(this.slots.size);
    let n = 0;
    for (const slot of this.slots.values()) times[n++] = this.rows[slot * this.width + LAST_TIME]!;
    times.sort();
    const threshold = times[count - 1]!;
    let removed = 0;
    for (const [userId, slot] of this.slots) {
      if (removed >= count) break;
      if (this.rows[slot * this.width + LAST_TIME]! <= threshold) {
        this.releaseSlot(userId, slot);
        removed++;
      }
    }
    this.evicted.inc(removed);
    // Forgetting the least recent users at the bound is the policy, not a fault: said once, then counted.
    if (!this.evictionLogged) {
      this.evictionLogged = true;
      this.context.logger.info(
        { evicted: removed, max_users: this.maxUsers, metric: 'tributary_users_evicted_total' },
        'max_users reached: the least recently seen users are forgotten from now on, counted in tributary_users_evicted_total (said once)',
      );
    }
  }

  /** An erasure request: the user's row (every horizon's counts) goes, as an eviction takes it. Returns 1 if the user was known. */
  forget(userId: string): number {
    const slot = this.slots.get(userId);
    if (slot === undefined) return 0;
    this.snapshots.settle();
    // Zeroed now, not at the slot's reuse: nothing of the user stays in memory.
    if (this.restoredTimes !== undefined && slot < this.restoredTimes.length) this.restoredTimes[slot] = NaN;
    this.rows.fill(0, slot * this.width, (slot + 1) * this.width);
    this.releaseSlot(userId, slot);
    return 1;
  }

  /** The user's slot back to the free list (eviction, erasure): allocate() zeroes its row at reuse. */
  private releaseSlot(userId: string, slot: number): void {
    this.slots.delete(userId);
    this.userIds[slot] = undefined; // a slot cached on a session handle no longer matches
    this.sessionIds[slot] = undefined;
    this.free.push(slot);
  }

  private materialize(slot: number): void {
    const time = this.restoredTimes![slot]!;
    if (time === time) {
      this.sessionIds[slot] = `${this.userIds[slot]!}:${time}`;
      this.restoredTimes![slot] = NaN;
    }
  }

  /** The gauge is set per watermark: a prom-client call per new user showed in allocation profiles. */
  flushMetrics(): void {
    if (this.slots.size !== this.knownReported) {
      this.knownReported = this.slots.size;
      this.known.set(this.knownReported);
    }
  }

  get size(): number {
    return this.slots.size;
  }

  /** The state as of this call, built in parts (see PartedSnapshots): copied, then encoded from the copies while records flow (takeCopying). */
  snapshot(): CopyingSnapshot<UserFeaturesSnapshot> {
    return this.snapshots.takeCopying(this.snapshotParts());
  }

  /**
   * Copy on write: at the call only the map's size and an iterator over it are taken (the held part, O(1)).
   * The rows are gathered in the encode parts while records flow; a record that changes a user the gather
   * has not read yet first keeps that user's row and session (keepForCopy); an eviction or a restore has the
   * gather read the rest at once (finishCopy). New users go to the map's end and to slots the call did not
   * hold, past the `n` entries read. The bytes are those of a copy made at the call.
   */
  private *snapshotParts(): CopyThenEncode<UserFeaturesSnapshot> {
    this.finishCopy(); // an earlier snapshot's gather, if still running, reads the state it was called at
    const n = this.slots.size;
    const width = this.width;
    const copy: SlotsCopy = {
      n,
      entries: this.slots.values(),
      read: 0,
      marks: new Uint8Array(this.used),
      kept: new Map(),
      // Pushed, not `new Array(n)`: a large preallocated array gets slow dictionary elements in V8.
      users: [],
      sessions: [],
      rows: new Float64Array(n * width),
    };
    this.copying = copy;
    const horizons = [...this.horizons];
    const horizonNames = [...this.horizonNames];
    const state = this;
    return (function* (): Generator<void, UserFeaturesSnapshot, void> {
      while (state.copying === copy && copy.read < n) {
        state.gather(copy, 1024);
        if (turnDue()) yield;
      }
      const { users, sessions, rows } = copy;
      const columns = yield* encodeTable(rows, n, width, TIME_REFS);
      const sessionStarts = { values: rows, ref: SESSION_START, stride: width, offset: SESSION_START };
      return { version: 3, horizons, horizonNames, users, sessions: yield* encodeDerivedIds(users, sessions, sessionStarts), columns };
    })();
  }

  /** The session a snapshot writes for a slot: its restored start time while its id is not built yet (materialize), else its id. */
  private savedSession(slot: number): string | number | undefined {
    const restoredTimes = this.restoredTimes;
    const pending = restoredTimes !== undefined && slot < restoredTimes.length ? restoredTimes[slot]! : NaN;
    return pending === pending ? pending : this.sessionIds[slot];
  }

  /** Reads up to `count` more of the map's entries at the copy's call into the copy: a kept row where a record changed it since, else the live one. */
  private gather(copy: SlotsCopy, count: number): void {
    const { users, sessions, rows, marks, kept } = copy;
    const width = this.width;
    const live = this.rows;
    const userIds = this.userIds;
    const to = Math.min(copy.n, copy.read + count);
    let i = copy.read;
    for (; i < to; i++) {
      const slot = copy.entries.next().value!;
      users.push(userIds[slot]!);
      const out = i * width;
      if (marks[slot] === KEPT) {
        const old = kept.get(slot)!;
        rows.set(old.row, out);
        sessions.push(old.session);
      } else {
        const r = slot * width;
        for (let k = 0; k < width; k++) rows[out + k] = live[r + k]!;
        sessions.push(this.savedSession(slot));
        marks[slot] = READ;
      }
    }
    copy.read = i;
    if (i === copy.n && this.copying === copy) this.copying = undefined;
  }

  /** A record is about to change a user a snapshot has not read yet: its row and session as at the call, for the gather. */
  private keepForCopy(copy: SlotsCopy, slot: number): void {
    const r = slot * this.width;
    copy.kept.set(slot, { row: this.rows.slice(r, r + this.width), session: this.savedSession(slot) });
    copy.marks[slot] = KEPT;
  }

  /** Has a snapshot still gathering read the rest now: before what it cannot keep aside (evictions, a restore). */
  private finishCopy(): void {
    const copy = this.copying;
    if (copy !== undefined) this.gather(copy, copy.n);
  }

  /**
   * A snapshot's horizons in the words they were configured in: as it says (this version's), else as the
   * config writes the same duration, else in the largest whole unit up to days (`7d`, which people write,
   * rather than durationText's `1w`; either parses back to the same duration).
   */
  private savedHorizonNames(saved: UserFeaturesSnapshot | UserFeaturesSnapshotV1): string[] {
    const names = 'horizonNames' in saved ? saved.horizonNames : undefined;
    if (Array.isArray(names) && names.length === saved.horizons.length && names.every((name) => typeof name === 'string')) return names;
    return saved.horizons.map((ms) => {
      const configured = this.horizons.indexOf(ms);
      if (configured >= 0) return this.horizonNames[configured]!;
      return ms % DAY === 0 ? `${ms / DAY}d` : durationText(ms);
    });
  }

  /**
   * For each configured horizon, the index of the snapshot's of the same duration, or -1 for one added since (its
   * counts start at 0 now: what the events before would have made of them is not kept); one removed since is
   * dropped. A saved horizon of a configured one's name but another
   * duration would put counts decayed otherwise under that name: refused.
   */
  private savedHorizonOf(saved: UserFeaturesSnapshot | UserFeaturesSnapshotV1): number[] {
    const savedNames = this.savedHorizonNames(saved);
    for (const [j, name] of savedNames.entries()) {
      const k = this.horizonNames.indexOf(name);
      if (k >= 0 && this.horizons[k] !== saved.horizons[j]) {
        throw new Error(`snapshot horizon ${name} is ${String(saved.horizons[j])} ms, the config's ${this.horizons[k]} ms: its counts were decayed otherwise`);
      }
    }
    return this.horizons.map((ms) => saved.horizons.indexOf(ms));
  }

  /** Says (info) which horizons were added since the snapshot (`from`: savedHorizonOf) and which removed, once it is restored. */
  private sayHorizonsChanged(saved: UserFeaturesSnapshot | UserFeaturesSnapshotV1, from: readonly number[]): void {
    const added = this.horizonNames.filter((_, k) => from[k] === -1);
    const removed = this.savedHorizonNames(saved).filter((_, j) => !this.horizons.includes(saved.horizons[j]!));
    const users = this.slots.size;
    if (added.length > 0) {
      this.context.logger.info(
        { added, users },
        `user-features: horizon${added.length === 1 ? '' : 's'} ${added.join(', ')} added since the checkpoint: ${added.map((h) => `u_events_${h}, u_purchases_${h}`).join(', ')} start at 0 now for the ${users} users restored (the events before are not kept), the other horizons' counts resumed`,
      );
    }
    if (removed.length > 0) {
      this.context.logger.info({ removed, users }, `user-features: horizon${removed.length === 1 ? '' : 's'} ${removed.join(', ')} removed since the checkpoint: ${removed.length === 1 ? 'its' : 'their'} saved counts are dropped`);
    }
  }

  /** Copies `count` rows saved with other horizons (`width` wide; `from`: savedHorizonOf) into the live rows: each kept horizon's counts, 0 for one added. */
  private async takeHorizons(saved: Float64Array, width: number, from: readonly number[], count: number): Promise<void> {
    const rows = this.rows;
    const liveWidth = this.width;
    const h = this.horizons.length;
    const hs = (width - FIXED) / 2;
    await inParts(count, (first, to) => {
      for (let i = first; i < to; i++) {
        const r = i * liveWidth;
        const s = i * width;
        rows.set(saved.subarray(s, s + FIXED), r);
        for (let k = 0; k < h; k++) {
          const j = from[k]!;
          rows[r + FIXED + k] = j < 0 ? 0 : saved[s + FIXED + j]!;
          rows[r + FIXED + h + k] = j < 0 ? 0 : saved[s + FIXED + hs + j]!;
        }
      }
    });
  }

  async restore(saved: UserFeaturesSnapshot | UserFeaturesSnapshotV1): Promise<void> {
    // Not prefixed with the label: the runtime's message (restoreStage) names the stage.
    const what = 'user-features snapshot';
    if (saved?.version !== 1 && saved?.version !== 2 && saved?.version !== 3) throw new Error('unknown user-features snapshot version');
    const from = this.savedHorizonOf(saved);
    this.snapshots.settle();
    this.finishCopy();
    this.slots.clear();
    this.free = [];
    this.used = 0;
    this.userIds = [];
    this.sessionIds = [];
    this.restoredTimes = undefined;
    this.capacity = Math.max(1024, saved.users.length);
    this.rows = new Float64Array(this.capacity * this.width);
    // Rows as saved (the saved horizons' counts), in this release's layout: the live rows where the horizons are the same.
    const sameHorizons = from.length === saved.horizons.length && from.every((j, k) => j === k);
    const width = FIXED + 2 * saved.horizons.length;
    const rows = sameHorizons ? this.rows : new Float64Array(this.capacity * width);
    if (saved.version === 1) {
      for (const [userId, sessionId, ...numbers] of saved.users) {
        const slot = this.allocate(userId);
        this.sessionIds[slot] = sessionId ?? undefined;
        widenRowV2(numbers, 0, rows, slot * width, width);
      }
      if (!sameHorizons) await this.takeHorizons(rows, width, from, this.used);
    } else {
      const users = decodeStrings(saved.users, undefined, `${what}: users`);
      let count: number;
      if (saved.version === 2) {
        const widthV2 = width - (FIXED - FIXED_V2);
        const rowsV2 = new Float64Array(users.length * widthV2);
        count = await decodeTable(saved.columns, rowsV2, widthV2, what);
        await inParts(count, (first, to) => {
          for (let i = first; i < to; i++) widenRowV2(rowsV2, i * widthV2, rows, i * width, width);
        });
      } else count = await decodeTable(saved.columns, rows, width, what);
      if (count !== users.length) throw new Error(`${what}: ${count} rows for ${users.length} users`);
      if (!sameHorizons) await this.takeHorizons(rows, width, from, count);
      const sessions = decodeDerivedIds(users, saved.sessions, what, true, { values: this.rows, ref: SESSION_START, stride: this.width, offset: SESSION_START });
      // Rows were written in order, so user i has slot i.
      const slots = this.slots;
      await inParts(users.length, (from, to) => {
        for (let i = from; i < to; i++) slots.set(users[i]!, i);
      });
      this.userIds = users.slice();
      this.sessionIds = sessions.ids;
      this.restoredTimes = sessions.times;
      this.used = users.length;
      if (this.slots.size !== users.length) throw new Error(`${what}: duplicate user ids`);
    }
    await this.unsetTimesAtFirstSeen();
    this.flushMetrics();
    this.sayHorizonsChanged(saved, from);
  }

  /**
   * A snapshot written before PREV_SESSION_END and LAST_PURCHASE held the first-seen time until set
   * has 0 there: moved to it (unread until set either way), so the next snapshot is the smaller one.
   * So are the previous-session times of a snapshot from before they were kept (version 1 or 2).
   */
  private async unsetTimesAtFirstSeen(): Promise<void> {
    const rows = this.rows;
    const width = this.width;
    await inParts(this.used, (from, to) => {
      for (let r = from * width; r < to * width; r += width) {
        if (rows[r + DONE_SESSIONS] === 0 && rows[r + PREV_SESSION_END] === 0) rows[r + PREV_SESSION_END] = rows[r + FIRST_SEEN]!;
        if (rows[r + PURCHASES] === 0 && rows[r + LAST_PURCHASE] === 0) rows[r + LAST_PURCHASE] = rows[r + FIRST_SEEN]!;
        if (rows[r + PREV_SESSION_EVENTS] === 0 && rows[r + PREV_SESSION_START] === 0 && rows[r + END_BEFORE_PREV] === 0) {
          rows[r + PREV_SESSION_START] = rows[r + END_BEFORE_PREV] = rows[r + FIRST_SEEN]!;
        }
      }
    });
  }
}

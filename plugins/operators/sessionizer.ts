/**
 * `sessionizer`: per-user session windows on event time.
 *
 * Events wait in a buffer until the watermark passes them, then are assigned in event-time order, so
 * an out-of-order event within the sources' bound is handled exactly as if it had arrived in order.
 * A session closes when the watermark passes its last event plus `gap`; its summary is emitted then.
 * A late event (behind the watermark) within `allowed_lateness` updates, or bridges and merges, the
 * sessions it touches, and the summary is emitted again with `update: true`. Later events go to the
 * `late` side output. State is plain maps and one timer heap keyed by event time.
 */
import {
  type CopyingSnapshot,
  type CopyThenEncode,
  defineOperator,
  eachOf,
  inParts,
  PartedSnapshots,
  partsOf,
  originOf,
  parseDuration,
  recordOperator,
  setOwnField,
  watermark,
  ORIGIN,
  type ClickEvent,
  type Duration,
  type Element,
  type Emit,
  type Origin,
  type PluginContext,
  PluginConfigError,
  durationText,
  bareMillisecondsWarning,
  type EntryProblem,
  type SessionSummary,
  type SessionCloseReason,
  checkListLengths,
  decodeColumn,
  decodeColumnOf,
  decodeDerivedIds,
  decodeNamedColumns,
  decodeNamedColumnsInTurns,
  decodeOptionalColumnOf,
  decodeNullableStrings,
  decodeStrings,
  encodeColumns,
  encodeDerivedIds,
  type Column,
  type DerivedIds,
} from 'tributary';
import { attachHandle, SessionTag, type SessionHandle } from './handle.js';

export interface SessionizerConfig {
  gap: Duration;
  max_length?: Duration;
  allowed_lateness: Duration;
  session_id_from: 'gap' | 'data';
  max_open_sessions: number;
  max_ahead_of_clock: Duration;
  max_behind_watermark: Duration;
  not_before: string;
}

/**
 * Settings that contradict one another, said by validate (checkPipeline) and by the factory: `max_length`
 * with data session ids, where it cuts nothing; a `max_behind_watermark` shorter than `gap` plus
 * `allowed_lateness`, where events this stage would still take (late, not absurd) are dead-lettered as absurd.
 */
function settingProblems(config: SessionizerConfig): EntryProblem[] {
  const problems: EntryProblem[] = [];
  if (config.session_id_from === 'data' && config.max_length !== undefined) {
    problems.push({
      field: 'max_length',
      message: 'cuts sessions with session_id_from: gap only: with data session ids a session is what its id names, so this would be ignored; remove it, or cut by gap',
    });
  }
  const behind = parseDuration(config.max_behind_watermark);
  const taken = parseDuration(config.gap) + parseDuration(config.allowed_lateness);
  if (behind < taken) {
    problems.push({
      field: 'max_behind_watermark',
      message:
        `${JSON.stringify(config.max_behind_watermark)} is less than gap plus allowed_lateness (${durationText(taken)}): an event that far behind the watermark may still ` +
        `join or open a session (late, not absurd), and would be dead-lettered as absurd; set it to at least ${durationText(taken)}`,
    });
  }
  return problems;
}

export default defineOperator<SessionizerConfig>({
  name: 'sessionizer',
  state: 'keyed',
  emits: ['session'],
  sideOutputs: ['late'],
  status: 'beta',
  summary: 'Groups each user\'s events into sessions on event time; tags events with their session and emits a summary per closed session.',
  description:
    'Every event leaves with `session: {id, position, sinceStart, sincePrevious, start}`. When the watermark passes a ' +
    "session's last event plus `gap`, a `kind: session` summary follows (userId, sessionId, start, end, eventCount, counts, " +
    'purchased, closedBy, and `keptUntil`: end + gap + allowed_lateness, the event time after which no event joins it). Events are held ' +
    'until the watermark passes them and then assigned in event-time order. A late ' +
    'event within `allowed_lateness` updates (or merges) its sessions and the summary is sent again with `update: true` ' +
    '(and `replaces` listing merged-away ids; the event that merged them has `session.merged`, the ids it absorbed); a later one goes to ' +
    'the `late` side output. A late event\'s `sinceStart` and `sincePrevious` are measured as in order, from the (merged) session\'s start and ' +
    'from the event before it in event time (for the event that merged sessions, the last of the earlier one): the sessionizer keeps the ' +
    'times of each session\'s first event and its last four (whole milliseconds, within 12 days of its start), so for a late event older than ' +
    'those it is measured from the latest of them before it, the first at worst: more than the true time since the previous event. Events ' +
    'passed on before it keep their figures. Its `position` is the number of its session\'s events that arrived before it (arrival order: ' +
    'a position 0 is a new session to the stages after it), not its place in event time. A late event that arrived after a later event of its user has `session.outOfOrder: true`: stages after it ' +
    'compute in arrival order, so its features include that later event (after `max_open_sessions` dropped sessions, whose they were is not ' +
    'kept: every late event before the latest end among them is marked). Session ids are `<userId>:<start ms>` ' +
    '(or the data\'s own, with `session_id_from: data`), so a replay gives the same ids; one that could repeat the id of a ' +
    'session `max_open_sessions` dropped gets `#<n>` added, so ids stay unique. Events with absurd timestamps go to ' +
    'the dead-letter sink with the reason. At most `max_open_sessions` are kept: beyond it, closed sessions still waiting for ' +
    'late events are forgotten first (counted in `sessions_forgotten_early_total`; a late event of one then opens a session of ' +
    'its own), then the open session due to close first is closed early (summary `closedBy: evicted`, counted in `sessions_evicted_total`).',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      gap: { $ref: 'tributary:duration', minDuration: '1ms', default: '30m', description: 'Inactivity (event time) that ends a session: an event `gap` or more after the session\'s last one starts a new one.' },
      max_length: {
        $ref: 'tributary:duration',
        minDuration: '1ms',
        description:
          'Bound on a session\'s length (first to last event): an event `max_length` or more after the session\'s first one starts a new one, so a session spans less than this. ' +
          'A late event too far from a session\'s other end joins the session on its other side, else starts one of its own. Default: no limit. With `session_id_from: gap` only (with `data` a config error: the ids name the sessions).',
      },
      allowed_lateness: {
        $ref: 'tributary:duration',
        default: '0ms',
        description: 'How long after a session closed a late event may still update it (Flink allowed lateness, Kafka Streams grace).',
      },
      session_id_from: {
        enum: ['gap', 'data'],
        default: 'gap',
        description: '`gap`: sessions are cut by inactivity. `data`: the event\'s own `sessionId` (e.g. REES46 user_session) names the session; events without one are dead-lettered: they are in no session, as GA4 counts sessions by `ga_session_id` and leaves its events without one (Measurement Protocol hits sent without `session_id`) out, and are not put in sessions cut by `gap`, which the data never had (a refund alone, scored by the models). Either way a session closes after `gap` of inactivity; a data id that comes back later opens a new session under the same id (its summaries tell them apart by `start`), unless its closed session is still kept for `allowed_lateness`: then that session takes the events again, reopened, and its summary is sent again with `update: true` when it closes (one kept session per id, as the stages after it key their state by the id).',
      },
      max_open_sessions: {
        type: 'integer',
        minimum: 1,
        default: 1000000,
        description:
          'Most sessions kept in memory (open, or closed and waiting for late events). Beyond it, the closed one whose lateness runs out first is forgotten ' +
          '(a late event it would have taken opens a session of its own), else the open one due to close first is closed early (summary `closedBy: evicted`). ' +
          'Counted apart: `sessions_forgotten_early_total`, `sessions_evicted_total`. About 450 B of heap a session (1,178 B with session-features after it; BENCHMARKS.md). ' +
          'With `scale_out` it bounds each partition\'s instance: a member holds up to this times the partitions assigned to it.',
      },
      max_ahead_of_clock: {
        $ref: 'tributary:duration',
        default: '1d',
        description:
          'An event time further than this ahead of the wall clock is absurd: dead-lettered. Where the source\'s `watermark.max_ahead_of_clock` is wider, such an event ' +
          'still moves the sources\' watermark: until accepted events reach its time, this stage\'s event time is then held at the latest accepted event, and so is the ' +
          'watermark it passes on (the stages after it, e.g. churn-model\'s labels, do not move ahead of it); meanwhile an event behind the latest accepted one may be late. Held, its time moves only with accepted events: with `scale_out`, a ' +
          'partition held so holds the global stages (the models) back for every partition until its own events move it, except while it is idle (no event for the source\'s `watermark.idle_timeout` and nothing to read), as an idle ' +
          'source holds nothing: the others then move them on; once it has records again it holds them again where they stand (never back) until its events pass them, and what it passes on behind them is late there. Keep this bound as wide as the source\'s to avoid holds.',
      },
      max_behind_watermark: {
        $ref: 'tributary:duration',
        default: '365d',
        description: 'An event time further than this behind the watermark is absurd (not merely late): dead-lettered. At least `gap` plus `allowed_lateness` (a config error otherwise): an event up to that far behind may still join or open a session.',
      },
      not_before: {
        type: 'string',
        format: 'date-time',
        default: '2000-01-01T00:00:00Z',
        description: 'Event times before this are absurd (zero or missing clocks): dead-lettered. A date and time with its UTC offset (RFC 3339), e.g. `2020-01-01T00:00:00Z`.',
      },
    },
  },
  examples: [
    { gap: '30m' },
    { gap: '30m', max_length: '4h', allowed_lateness: '10m', max_open_sessions: 500000 },
    { session_id_from: 'data', gap: '30m', max_ahead_of_clock: '2h' },
  ],
  checkPipeline: (config) => [
    ...settingProblems(config),
    ...(['gap', 'max_length', 'allowed_lateness'] as const).flatMap((field) => bareMillisecondsWarning(field, config[field]) ?? []),
  ],
  // It appends no features (a transform after it knows every name before it).
  featureNames: () => [],
  create(config, context) {
    const gap = parseDuration(config.gap);
    if (!(gap > 0)) throw new PluginConfigError('gap', `must be positive, got '${config.gap}'`);
    const maxLength = config.max_length === undefined ? Infinity : parseDuration(config.max_length);
    if (!(maxLength > 0)) throw new PluginConfigError('max_length', `must be positive, got '${config.max_length}'`);
    // Checked again here for a config that reaches the factory without validation (a plugin's own test).
    for (const { field, message } of settingProblems(config)) throw new PluginConfigError(field!, message);
    const notBefore = Date.parse(config.not_before);
    if (!Number.isFinite(notBefore)) throw new RangeError(`not_before: cannot parse '${config.not_before}'`);
    const state = new SessionState(
      {
        gap,
        maxLength,
        lateness: parseDuration(config.allowed_lateness),
        fromData: config.session_id_from === 'data',
        maxOpen: config.max_open_sessions,
        maxAhead: parseDuration(config.max_ahead_of_clock),
        maxBehind: parseDuration(config.max_behind_watermark),
        notBefore,
      },
      context,
    );
    return {
      apply: recordOperator(context, () => ({
        record: (record, emit) => state.record(record, emit),
        // Held back after a far-future event, the stages after it are held back with it (see futureUntil).
        watermark: (mark, emit) => state.advance(mark.time, emit),
      })),
      snapshot: () => state.snapshot(),
      restore: (saved) => state.restore(saved as SessionizerSnapshot | SessionizerSnapshotV1),
      forget: (userId) => state.forget(userId),
    };
  },
});

interface Settings {
  gap: number;
  maxLength: number;
  lateness: number;
  fromData: boolean;
  maxOpen: number;
  maxAhead: number;
  maxBehind: number;
  notBefore: number;
}

/** A summary as this sessionizer emits it: core's SessionSummary, with why it closed and until when it is kept always set. */
export type SessionizerSummary = SessionSummary & {
  closedBy: SessionCloseReason;
  keptUntil: number;
};

/** How many event times before its last a session keeps (Session.prior1..3). */
const PRIOR_TIMES = 3;
/** The largest offset from a session's start kept as a prior time: a small integer (Smi) on every V8 build. */
const MAX_PRIOR = 0x3fffffff;

/** Event time between the watermarks passed on from events while held back (see futureUntil). */
const RELEASE_EVERY_MS = 1000;

const PURCHASED = 1;
const EMITTED = 2;
const CLOSED = 4;
const SEALED = 8;

/** One session. Fields are all set in the constructor so every instance shares one shape. */
class Session implements SessionHandle {
  seq: number;
  userId: string;
  /** Its id; undefined while it is `<userId>:<idTime>` and not asked for yet (a restore builds none). */
  private idText: string | undefined;
  /** NaN: the id is `idText` as it is. */
  private readonly idTime: number;
  start: number;
  end: number;
  count = 0;
  /**
   * Counts by event type, in first-seen order. The four known types are counted in fixed fields,
   * their first-seen order packed in `knownOrder` (3 bits per type, first in the lowest bits; bit
   * `code` of `knownSeen` set once seen): no arrays per session (they were two allocations per
   * session, each promoted). A session that sees
   * another type moves all its counts to `types`/`typeCounts` (arrays, in first-seen order).
   */
  knownOrder = 0;
  knownTypes = 0;
  knownSeen = 0;
  views = 0;
  carts = 0;
  removes = 0;
  purchases = 0;
  types: string[] | undefined = undefined;
  typeCounts: number[] | undefined = undefined;
  /** PURCHASED | EMITTED (a summary went out) | CLOSED (its summary is current) | SEALED (cut by max_length). */
  flags = 0;
  dead = false;
  /** Its timer's index in the timer heap; -1: none. */
  heapAt = -1;
  /**
   * Times of the PRIOR_TIMES events before its last one (`end`), the nearest first, as whole ms after `start`; -1:
   * none (fewer events), or not kept (a time not a whole ms or 2^30 ms (12 days) after the start, or a snapshot from
   * before they were kept). The latest of them known are consecutive (a -1 ends the list): a late event inside the
   * span measures its time since the previous event from them (see keptTimes). Small integers, stored in the object
   * (a double field would be a box of its own each).
   */
  prior1 = -1;
  prior2 = -1;
  prior3 = -1;
  /** Next older session of the same user still kept (sessions of a user are listed newest first). */
  older: Session | undefined = undefined;
  replaces: string[] | undefined = undefined;
  sessionStage: object | undefined = undefined;
  sessionSlot = 0;
  userStage: object | undefined = undefined;
  userSlot = 0;

  /** `id` a number: the id is `<userId>:<id>`, built when first asked for (a million at a restore took ~0.3 s and their memory). */
  constructor(seq: number, userId: string, id: string | number | undefined, start: number) {
    this.seq = seq;
    this.userId = userId;
    this.idText = typeof id === 'number' ? undefined : id;
    this.idTime = typeof id === 'number' ? id : NaN;
    this.start = start;
    this.end = start;
  }

  get id(): string {
    if (this.idText === undefined && this.idTime === this.idTime) this.idText = `${this.userId}:${this.idTime}`;
    return this.idText!;
  }

  /** The id as encodeDerivedIds takes it: the number of one not built yet. */
  get savedId(): string | number | undefined {
    return this.idText !== undefined || this.idTime !== this.idTime ? this.idText : this.idTime;
  }
}

/**
 * Restored sessions' rows by seq, for the timers that name them. Seqs count up as sessions open, so
 * most kept sessions have one of the newest few: those within a window below the newest are found in
 * a table (a million Map sets and gets were ~0.8 s of a restore), older ones (a session kept open
 * long) in a Map.
 */
class RowsBySeq {
  /** Row + 1 of seq `base + k` at k; 0: none. */
  private readonly table: Int32Array;
  private readonly base: number;
  private readonly older = new Map<number, number>();

  constructor(newest: number, rows: number) {
    this.table = new Int32Array(rows > 0 ? 4 * rows + 1024 : 0);
    this.base = newest - this.table.length + 1;
  }

  /** Records the row of a seq; false if the seq has a row already. */
  add(seq: number, row: number): boolean {
    const at = this.slot(seq);
    if (at >= 0) {
      if (this.table[at] !== 0) return false;
      this.table[at] = row + 1;
      return true;
    }
    const size = this.older.size;
    this.older.set(seq, row);
    return this.older.size !== size;
  }

  /** The row of a seq; -1 for none. */
  get(seq: number): number {
    const at = this.slot(seq);
    return at >= 0 ? this.table[at]! - 1 : (this.older.get(seq) ?? -1);
  }

  /** The seq's place in the table; -1 for a seq the table cannot hold (older, or no whole number). */
  private slot(seq: number): number {
    const at = seq - this.base;
    return at >= 0 && at < this.table.length && Number.isInteger(at) ? at : -1;
  }
}

/**
 * Sessions by their timers: a min-heap in (time, seq) order, so ties never depend on its layout. Each
 * session knows its timer's place (`heapAt`), so the timer can be moved earlier or taken out.
 */
class TimerHeap {
  keys: number[] = [];
  items: Session[] = [];

  get size(): number {
    return this.keys.length;
  }

  push(key: number, session: Session): void {
    this.keys.push(key);
    this.items.push(session);
    session.heapAt = this.keys.length - 1;
    this.up(session.heapAt);
  }

  /** Takes out the earliest timer (there must be one) and returns its session. */
  pop(): Session {
    const top = this.items[0]!;
    this.removeAt(0);
    return top;
  }

  /** Sets the session's timer (it must have one) to `key`. */
  move(session: Session, key: number): void {
    const at = session.heapAt;
    const old = this.keys[at]!;
    this.keys[at] = key;
    if (key < old) this.up(at);
    else this.down(at);
  }

  /** Takes out the session's timer; nothing if it has none in this heap. */
  delete(session: Session): void {
    const at = session.heapAt;
    if (at >= 0 && this.items[at] === session) this.removeAt(at);
  }

  private removeAt(at: number): void {
    const keys = this.keys;
    const items = this.items;
    items[at]!.heapAt = -1;
    const lastKey = keys.pop()!;
    const lastItem = items.pop()!;
    if (at < keys.length) {
      keys[at] = lastKey;
      items[at] = lastItem;
      lastItem.heapAt = at;
      this.down(at);
      this.up(lastItem.heapAt);
    }
  }

  private less(i: number, j: number): boolean {
    const a = this.keys[i]!;
    const b = this.keys[j]!;
    return a < b || (a === b && this.items[i]!.seq < this.items[j]!.seq);
  }

  private swap(i: number, j: number): void {
    const keys = this.keys;
    const items = this.items;
    const k = keys[i]!;
    keys[i] = keys[j]!;
    keys[j] = k;
    const a = items[i]!;
    const b = items[j]!;
    items[i] = b;
    items[j] = a;
    b.heapAt = i;
    a.heapAt = j;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.keys.length;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < n && this.less(left, smallest)) smallest = left;
      if (right < n && this.less(right, smallest)) smallest = right;
      if (smallest === i) break;
      this.swap(i, smallest);
      i = smallest;
    }
  }
}

/** The first JSON form: sessions as tuples (slow for many sessions; still restored). */
export interface SessionizerSnapshotV1 {
  version: 1;
  watermark: number | null;
  maxSeen: number | null;
  /** A far-future event was dead-lettered (since version 6: futureUntil). */
  sawFuture: boolean;
  nextSeq: number;
  /** [seq, userId, id, start, end, count, counts, flags, replaces], users in map order, each newest first. */
  sessions: [number, string, string, number, number, number, Record<string, number>, number, string[] | null][];
  heapKeys: number[];
  heapSeqs: number[];
  /** Events not yet passed by the watermark, in arrival order, with their origins. */
  pending: [Omit<ClickEvent, typeof ORIGIN>, Origin | null][];
}

/**
 * Columnar form: one row per kept session (users in map order, each newest first), each field a
 * column (see columns.ts); the timer heap as two columns. Version 2 held pending events as version 1
 * does (one object each: ~124 bytes an event, a tenth of the soak's sessionizer state at 2,000
 * events/s); version 3 holds them as columns (PendingColumns); version 4 adds `droppedThrough` and
 * `numberedIds`, version 5 `lastMark`, version 6 `futureUntil` for `sawFuture`.
 */
export interface SessionizerSnapshot {
  version: 2 | 3 | 4 | 5 | 6;
  watermark: number | null;
  /** The latest watermark received, which `watermark` is held behind after a far-future event (version 5 on). */
  lastMark?: number | null;
  /** The latest end of a session max_open_sessions dropped, and how many ids took a `#<n>` since (version 4 on; null and 0 before). */
  droppedThrough?: number | null;
  numberedIds?: number;
  maxSeen: number | null;
  /** Before version 6: a far-future event was dead-lettered. */
  sawFuture?: boolean;
  /** The latest far-future event time dead-lettered (version 6 on). */
  futureUntil?: number | null;
  nextSeq: number;
  users: string[];
  ids: DerivedIds;
  seq: Column;
  start: Column;
  end: Column;
  count: Column;
  flags: Column;
  /** Counts by type: the distinct lists of types (in first-seen order), each row's list, and the counts flattened. */
  countTypes: string[][];
  countLayout: Column;
  countValues: Column;
  /** Rows that absorbed other sessions, and the ids they replace. */
  replacesRows: number[];
  replaces: string[][];
  heapKeys: Column;
  heapSeqs: Column;
  /** Each row's prior1, prior2, prior3 (see Session), row after row; absent (snapshots from before they were kept): -1, not kept. */
  prior?: Column;
  pending: PendingColumns | [Omit<ClickEvent, typeof ORIGIN>, Origin | null][];
}

/**
 * Events not yet passed by the watermark, in arrival order: one row each. A plain event (only the
 * fields below, in this order, as sources write them) is its columns; any other (attrs, a session id,
 * other fields or another key order) is kept whole in `others`, its columns left empty.
 */
export interface PendingColumns {
  n: number;
  userIds: string[];
  time: Column;
  /** Distinct types; `type` holds each row's index in them. */
  types: string[];
  type: Column;
  itemIds: (string | null)[];
  categories: (string | null)[];
  /** NaN where the event has no price. */
  price: Column;
  otherRows: number[];
  others: Omit<ClickEvent, typeof ORIGIN>[];
  originRows: number[];
  origins: Origin[];
}

/** The fields of a plain pending event, in the order they must come (absent ones skipped; see PendingColumns). */
const PLAIN_FIELDS = ['kind', 'userId', 'time', 'type', 'itemId', 'category', 'price'] as const;

/** Whether the event is plain: its columns give it back as it is (the same fields, values and key order). */
function isPlain(event: ClickEvent): boolean {
  if (event.kind !== 'event' || typeof event.userId !== 'string' || typeof event.time !== 'number' || typeof event.type !== 'string') return false;
  if (event.itemId !== undefined && typeof event.itemId !== 'string') return false;
  if (event.category !== undefined && typeof event.category !== 'string') return false;
  if (event.price !== undefined && (typeof event.price !== 'number' || Number.isNaN(event.price))) return false;
  let at = 0;
  for (const key in event) {
    while (at < PLAIN_FIELDS.length && PLAIN_FIELDS[at] !== key) at++;
    if (at === PLAIN_FIELDS.length) return false;
    at++;
  }
  return true;
}

function* encodePending(events: readonly ClickEvent[]): Generator<void, PendingColumns, void> {
  const n = events.length;
  const userIds: string[] = [];
  const itemIds: (string | null)[] = [];
  const categories: (string | null)[] = [];
  const time = new Float64Array(n);
  const type = new Float64Array(n);
  const price = new Float64Array(n);
  const types: string[] = [];
  const typeIndex = new Map<string, number>();
  const otherRows: number[] = [];
  const others: Omit<ClickEvent, typeof ORIGIN>[] = [];
  const originRows: number[] = [];
  const origins: Origin[] = [];
  yield* partsOf(n, (from, to) => {
    for (let i = from; i < to; i++) {
      const event = events[i]!;
      const origin = originOf(event);
      if (origin !== undefined) {
        originRows.push(i);
        origins.push(origin);
      }
      if (!isPlain(event)) {
        otherRows.push(i);
        others.push({ ...event });
        userIds.push('');
        itemIds.push(null);
        categories.push(null);
        price[i] = NaN;
        continue;
      }
      userIds.push(event.userId);
      itemIds.push(event.itemId ?? null);
      categories.push(event.category ?? null);
      time[i] = event.time;
      let code = typeIndex.get(event.type);
      if (code === undefined) {
        code = types.length;
        typeIndex.set(event.type, code);
        types.push(event.type);
      }
      type[i] = code;
      price[i] = event.price ?? NaN;
    }
  });
  const [timeColumn, typeColumn, priceColumn] = yield* encodeColumns([time, type, price]);
  return { n, userIds, time: timeColumn!, types, type: typeColumn!, itemIds, categories, price: priceColumn!, otherRows, others, originRows, origins };
}

/** `values`, one for each of `rows` (a list of row numbers, checked where they are used); throws naming `name` on anything else. */
function rowsAndValues<T>(rows: unknown, values: readonly T[], name: string, items: string, what: string): readonly T[] {
  if (!Array.isArray(rows)) throw new Error(`${what}: ${name}: its rows are not a list`);
  if (!Array.isArray(values)) throw new Error(`${what}: ${name}: not a list`);
  if (values.length !== rows.length) throw new Error(`${what}: ${name}: ${values.length} ${items}, expected ${rows.length}`);
  return values;
}

function decodePending(saved: PendingColumns, what: string): ClickEvent[] {
  const n = saved.n;
  const userIds = decodeStrings(saved.userIds, n, `${what}: userIds`);
  const { time, type, price } = decodeNamedColumns(saved, ['time', 'type', 'price'], n, what);
  const itemIds = decodeNullableStrings(saved.itemIds, n, `${what}: itemIds`);
  const categories = decodeNullableStrings(saved.categories, n, `${what}: categories`);
  const types = decodeStrings(saved.types, undefined, `${what}: types`);
  const others = rowsAndValues(saved.otherRows, saved.others, 'others', 'events', what);
  const origins = rowsAndValues(saved.originRows, saved.origins, 'origins', 'origins', what);
  const events: ClickEvent[] = [];
  let other = 0;
  for (let i = 0; i < n; i++) {
    if (other < others.length && saved.otherRows[other] === i) {
      const kept: unknown = others[other];
      if (typeof kept !== 'object' || kept === null || Array.isArray(kept)) throw new Error(`${what}: others: not an event at ${other}`);
      events.push({ ...kept } as ClickEvent);
      other++;
      continue;
    }
    if (!Number.isFinite(time[i]!)) throw new Error(`${what}: time: ${time[i]!} at row ${i} is not a time`);
    const eventType = types[type[i]!];
    if (eventType === undefined) throw new Error(`${what}: unknown pending event type ${type[i]!}`);
    // Fields in PLAIN_FIELDS order: the event comes back as it was written.
    const event: ClickEvent = { kind: 'event', userId: userIds[i]!, time: time[i]!, type: eventType };
    const itemId = itemIds[i];
    const category = categories[i];
    if (itemId != null) event.itemId = itemId;
    if (category != null) event.category = category;
    if (!Number.isNaN(price[i]!)) event.price = price[i]!;
    events.push(event);
  }
  if (other !== saved.otherRows.length) throw new Error(`${what}: pending rows do not add up`);
  for (let k = 0; k < origins.length; k++) {
    const event = events[saved.originRows[k]!];
    if (event === undefined) throw new Error(`${what}: origin of an unknown pending row ${saved.originRows[k]!}`);
    event[ORIGIN] = origins[k]!;
  }
  return events;
}

const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null);

/** A saved time that finiteOrNull wrote; throws with `what` on anything else. */
function timeOrNull(value: unknown, what: string): number | null {
  if (value === null || (typeof value === 'number' && Number.isFinite(value))) return value;
  throw new Error(`${what}: not a number or null`);
}

/** The snapshot's lists of count types: each a list of distinct names (a name twice would add up two counts). */
function decodeCountTypes(value: unknown, what: string): string[][] {
  if (!Array.isArray(value)) throw new Error(`${what}: not a list`);
  for (let k = 0; k < value.length; k++) {
    const types = decodeStrings(value[k], undefined, `${what}: list ${k}`);
    for (let t = 1; t < types.length; t++) if (types.indexOf(types[t]!) < t) throw new Error(`${what}: list ${k}: '${types[t]!}' twice`);
  }
  return value as string[][];
}

/** Rows that absorbed other sessions, by row: the ids they replace (rows increasing, each below `rows`). */
function decodeReplaces(rows: unknown, lists: unknown, n: number, what: string): Map<number, string[]> {
  if (!Array.isArray(rows)) throw new Error(`${what}: replacesRows: not a list`);
  if (!Array.isArray(lists)) throw new Error(`${what}: replaces: not a list`);
  if (lists.length !== rows.length) throw new Error(`${what}: replaces: ${lists.length} lists, expected ${rows.length}`);
  const replaces = new Map<number, string[]>();
  let previous = -1;
  for (let k = 0; k < rows.length; k++) {
    const row: unknown = rows[k];
    if (!(typeof row === 'number' && Number.isSafeInteger(row) && row > previous && row < n)) throw new Error(`${what}: replacesRows: ${String(row)} at ${k}, expected increasing rows below ${n}`);
    replaces.set(row, decodeStrings(lists[k], undefined, `${what}: replaces: list ${k}`));
    previous = row;
  }
  return replaces;
}

class SessionState {
  private readonly users = new Map<string, Session>();
  /**
   * One timer a kept session. Open ones wait in `closing` for end + gap (their timers may lag behind:
   * ends move on without them), closed ones in `forgetting` for end + gap + lateness: two heaps, so
   * max_open_sessions can drop closed ones first.
   */
  private closing = new TimerHeap();
  private forgetting = new TimerHeap();
  private pending: ClickEvent[] = [];
  private pendingSorted = true;
  private watermark = -Infinity;
  private maxSeen = -Infinity;
  /**
   * The latest end of a session dropped to keep within max_open_sessions. Every id a session had
   * (its own, those it replaces) is `<userId>:<a time in its span>`, so a new session starting
   * after this cannot repeat a dropped one's; one starting at or before it gets `#<n>` added, n
   * counting such ids.
   */
  private droppedThrough = -Infinity;
  private numberedIds = 0;
  /**
   * The latest far-future event time dead-lettered. Until accepted events reach it, the sources'
   * watermark may be ahead of every accepted event (theirs bound events further ahead than this one's),
   * so this operator's time is held at the latest accepted event, below `lastMark`, the latest
   * watermark received, and so is the watermark it passes on (see `advance`). Once they reach it, no
   * watermark that event moved is ahead of them: the hold ends, and events slightly out of order are
   * in time again.
   */
  private futureUntil = -Infinity;
  private lastMark = -Infinity;
  /** Moves of its time by events since the metrics were last flushed (held back after a far-future event). */
  private movesSinceFlush = 0;
  private nextSeq = 0;
  private open = 0;
  private now: number;
  private evictions = 0;
  private openedSinceFlush = 0;
  private closedSinceFlush = 0;
  private readonly settings: Settings;
  private readonly context: PluginContext;
  private readonly opened;
  private readonly closed;
  private readonly evicted;
  private readonly forgottenEarly;
  private readonly merged;
  private readonly late;
  private readonly openGauge;
  /** A snapshot still in parts reads the state: settled before an event or a watermark changes it. */
  private readonly snapshots = new PartedSnapshots();

  constructor(settings: Settings, context: PluginContext) {
    this.settings = settings;
    this.context = context;
    this.now = context.clock.now();
    const metrics = context.metrics;
    this.opened = metrics.counter('sessions_opened_total', 'Sessions started.');
    this.closed = metrics.counter('sessions_closed_total', 'Session summaries emitted (first emission).');
    this.evicted = metrics.counter('sessions_evicted_total', 'Open sessions closed early (summary closedBy: evicted) to keep within max_open_sessions.');
    this.forgottenEarly = metrics.counter('sessions_forgotten_early_total', 'Closed sessions forgotten before their allowed_lateness ran out, to keep within max_open_sessions.');
    this.merged = metrics.counter('sessions_merged_total', 'Sessions merged into another by a late event.');
    this.late = metrics.counter('late_events_total', 'Events later than the allowed lateness, sent to the late output.');
    this.openGauge = metrics.gauge('open_sessions', 'Sessions kept in memory.');
    // A count whose start is known: exported from the start (a restore sets the restored count).
    this.openGauge.set(0);
  }

  record(record: Element, emit: Emit): void {
    if (record.kind !== 'event') {
      emit(record);
      return;
    }
    this.snapshots.settle();
    const event = record as ClickEvent;
    const time = event.time;
    const s = this.settings;
    // Said in the mapping's words (session_id), which the user wrote, not the event's field (sessionId).
    if (s.fromData && event.sessionId === undefined) throw new Error("event has no session id: its source's mapping read no session_id (session_id_from: data needs one)");
    if (!(time >= s.notBefore)) return this.reject(event, `event time ${iso(time)} is before not_before ${iso(s.notBefore)}${epochUnitHint(time * 1000, s.notBefore, this.context.clock.now() + s.maxAhead, 'seconds read as milliseconds')}`);
    if (time > this.now + s.maxAhead) {
      // The clock is read at each watermark, and the runtime pushes a batch's events before its
      // watermark: after a lull that reading is hours old, so it is read again before rejecting.
      this.now = this.context.clock.now();
      if (time > this.now + s.maxAhead) {
        if (time > this.futureUntil) this.futureUntil = time;
        return this.reject(event, `event time ${iso(time)} is more than max_ahead_of_clock ahead of the clock (${iso(this.now)})${epochUnitHint(time / 1000, s.notBefore, this.now + s.maxAhead, 'milliseconds read as seconds, or microseconds as milliseconds')}`);
      }
    }
    if (time < this.watermark) {
      if (time < this.watermark - s.maxBehind) return this.reject(event, `event time ${iso(time)} is more than max_behind_watermark behind the watermark (${iso(this.watermark)})`);
      this.lateEvent(event, emit);
      this.keepWithinBound(emit);
      this.flushMetrics();
      return;
    }
    const pending = this.pending;
    let at = pending.length;
    if (this.pendingSorted) {
      // Slightly out-of-order events are inserted in place (after equal times: arrival order), so
      // the buffer rarely needs the sort, which allocates a copy of it at every watermark.
      const floor = at > 64 ? at - 64 : 0;
      while (at > floor && pending[at - 1]!.time > time) at--;
      if (at > 0 && at === floor && pending[at - 1]!.time > time) {
        at = pending.length;
        this.pendingSorted = false;
      }
    }
    if (at === pending.length) pending.push(event);
    else pending.splice(at, 0, event);
    if (time > this.maxSeen) {
      this.maxSeen = time;
      // Held back (see futureUntil), this operator's time would wait for a watermark, and the sources send
      // none until event time reaches the future event (hours): events move it to where the last one
      // would take it now. The same time either way, so it depends on the stream alone (and a restore).
      const to = Math.min(this.lastMark, time);
      if (time < this.futureUntil && to > this.watermark) {
        const from = this.watermark;
        this.moveTo(to, emit);
        // The stages after it wait for it too: passed on at most once a second of event time, as their
        // watermark handlers per event would cost (a prom-client call among them).
        if (Math.floor(to / RELEASE_EVERY_MS) > Math.floor(from / RELEASE_EVERY_MS)) emit(watermark(to));
        // Not per event (a prom-client call each showed in profiles), yet not waiting for a watermark
        // that may not come for hours (see futureUntil).
        if (++this.movesSinceFlush >= 1024) this.flushMetrics();
      }
    }
  }

  private reject(event: ClickEvent, reason: string): void {
    this.context.deadLetter({ reason: `${this.context.label}: ${reason}`, raw: event, origin: originOf(event) });
  }

  /**
   * Moves event time to `mark`: assigns the events it passed, in time order, and fires due timers.
   * Returns the watermark to pass on (RecordHandlers.watermark): undefined, `mark` itself, unless held
   * back (see futureUntil): then this operator's time where it moved, else none (-Infinity).
   */
  advance(mark: number, emit: Emit): number | undefined {
    this.snapshots.settle();
    this.now = this.context.clock.now();
    if (mark > this.lastMark) this.lastMark = mark;
    // A dead-lettered far-future timestamp has already pushed the sources' watermark: until accepted
    // events reach it only they move this operator's time, so it cannot close every session at once.
    const to = mark === Infinity || !(this.maxSeen < this.futureUntil) ? mark : Math.min(mark, this.maxSeen);
    const held = to < mark;
    if (!(to > this.watermark)) return held ? -Infinity : undefined;
    this.moveTo(to, emit);
    this.flushMetrics();
    return held ? to : undefined;
  }

  /** Moves this operator's time to `to` (above its watermark): assigns the events it passed, in time order, and fires due timers. */
  private moveTo(to: number, emit: Emit): void {
    this.watermark = to;
    const pending = this.pending;
    if (pending.length > 0) {
      if (!this.pendingSorted) {
        pending.sort(byTime); // stable: ties keep arrival order
        this.pendingSorted = true;
      }
      let k = 0;
      for (; k < pending.length; k++) {
        const event = pending[k]!;
        if (event.time > to) break;
        this.fire(event.time, emit);
        this.assign(event, emit);
        this.keepWithinBound(emit);
      }
      const rest = pending.length - k;
      for (let i = 0; i < rest; i++) pending[i] = pending[i + k]!;
      pending.length = rest;
    }
    this.fire(to, emit);
  }

  /**
   * Metrics are flushed per watermark (a prom-client call per session showed in profiles), and after
   * each late event (rare), so no count waits outside the state a snapshot takes.
   */
  private flushMetrics(): void {
    this.movesSinceFlush = 0;
    this.openGauge.set(this.open);
    if (this.openedSinceFlush > 0) this.opened.inc(this.openedSinceFlush);
    if (this.closedSinceFlush > 0) this.closed.inc(this.closedSinceFlush);
    this.openedSinceFlush = 0;
    this.closedSinceFlush = 0;
  }

  /** An in-order event (its time is at or after every kept session's end). */
  private assign(event: ClickEvent, emit: Emit): void {
    const s = this.settings;
    const time = event.time;
    const newest = this.users.get(event.userId);
    let session: Session | undefined;
    if (s.fromData) {
      // One kept session per data id (downstream stages key their state by it): a closed one still kept
      // (within its allowed_lateness) takes its id's events again, reopened; without lateness a closed
      // one is gone, and an id back after a gap opens a new session.
      for (let c = newest; c !== undefined; c = c.older) {
        if (c.id === event.sessionId) {
          session = c;
          break;
        }
      }
      if (session !== undefined) this.reopen(session);
    } else if (newest !== undefined && time - newest.end < s.gap) {
      if (time - newest.start < s.maxLength) session = newest;
      else this.seal(newest, emit);
    }
    if (session === undefined) {
      session = this.create(event, newest);
      this.tag(event, session, 0, 0);
    } else {
      const position = session.count;
      const sincePrevious = time > session.end ? time - session.end : 0;
      // The last event's time becomes the nearest prior one (for a late event inside the span, see keptTimes).
      const prior = session.end - session.start;
      const kept = prior & MAX_PRIOR;
      if (kept === prior) {
        session.prior3 = session.prior2;
        session.prior2 = session.prior1;
        session.prior1 = kept;
      } else session.prior1 = session.prior2 = session.prior3 = -1;
      if (time > session.end) session.end = time;
      this.tag(event, session, position, sincePrevious);
    }
    this.count(session, event.type);
    emit(event);
  }

  private tag(event: ClickEvent, session: Session, position: number, sincePrevious: number): void {
    event.session = new SessionTag(session.id, position, event.time - session.start, sincePrevious, session.start, session);
  }

  private count(session: Session, type: string): void {
    session.count++;
    addCount(session, type, 1);
    if (type === 'purchase') session.flags |= PURCHASED;
  }

  /** A new session, linked into its user's list (newest first by start) and given a timer. */
  private create(event: ClickEvent, newest: Session | undefined): Session {
    const { userId, time: start } = event;
    // Data ids come back by design; `<userId>:<start>` must not name a dropped session's again.
    const id = this.settings.fromData ? event.sessionId! : start <= this.droppedThrough ? `${userId}:${start}#${++this.numberedIds}` : `${userId}:${start}`;
    const session = new Session(this.nextSeq++, userId, id, start);
    if (newest === undefined || start >= newest.start) {
      session.older = newest;
      this.users.set(userId, session);
    } else {
      let c = newest;
      while (c.older !== undefined && c.older.start > start) c = c.older;
      session.older = c.older;
      c.older = session;
    }
    this.open++;
    this.openedSinceFlush++;
    this.closing.push(start + this.settings.gap, session);
    return session;
  }

  /** Cut by max_length: no in-order event can join it any more, so its summary goes out now. */
  private seal(session: Session, emit: Emit): void {
    session.flags |= SEALED;
    this.close(session);
    this.summarize(session, 'max_length', emit);
  }

  private lateEvent(event: ClickEvent, emit: Emit): void {
    const s = this.settings;
    const time = event.time;
    const newest = this.users.get(event.userId);
    // Whether an event of this user later than this one went out already (in-order events go out in
    // time order, so only a late one can follow a later one). Sessions max_open_sessions dropped are
    // no longer listed, nor is whose they were: one that ended after this time may have been the user's.
    let latest = this.droppedThrough;
    for (let c = newest; c !== undefined; c = c.older) if (c.end > latest) latest = c.end;
    const outOfOrder = time < latest;
    let session: Session | undefined;
    let absorbed: Session | undefined;
    if (s.fromData) {
      // The kept session of that id, wherever the event falls (one per id: see assign).
      for (let c = newest; c !== undefined; c = c.older) {
        if (c.id === event.sessionId) {
          session = c;
          break;
        }
      }
    } else {
      // The user's sessions either side of the event (a user's are apart, newest first by start):
      // `before` the last to start at or before it, `after` the next. Each takes it if within a gap
      // of its span and, with it, still shorter than max_length, as an event in order would be.
      let after: Session | undefined;
      let before = newest;
      while (before !== undefined && before.start > time) {
        after = before;
        before = before.older;
      }
      const nearBefore = before !== undefined && time - before.end < s.gap;
      const nearAfter = after !== undefined && after.start - time < s.gap;
      if (nearBefore && nearAfter && Math.max(before!.end, after!.end) - before!.start < s.maxLength) {
        session = before; // bridged: the merged session keeps the earlier id
        absorbed = after;
      } else if (nearBefore && (time <= before!.end || time - before!.start < s.maxLength)) {
        session = before; // in order, an event joins the session before it
      } else if (nearAfter && after!.end - time < s.maxLength) {
        session = after;
      }
      // Else a session of its own: in order, one max_length or more past a session's start starts one.
    }
    if (session === undefined) {
      if (this.watermark >= time + s.gap + s.lateness) return this.tooLate(event);
      session = this.create(event, newest);
      this.tag(event, session, 0, 0);
      if (outOfOrder) event.session!.outOfOrder = true;
      this.count(session, event.type);
      emit(event);
      if (time + s.gap <= this.watermark) {
        this.close(session);
        this.summarize(session, 'gap', emit);
      }
      return;
    }
    // Its time since the previous event by event time, in the merged session if it bridges two: from the latest
    // kept time at or before it (exact where its previous event is among them; see keptTimes).
    const times = keptTimes(session);
    const absorbedTimes = absorbed === undefined ? undefined : keptTimes(absorbed);
    const previous = Math.max(latestAtOrBefore(times, time), absorbedTimes === undefined ? -Infinity : latestAtOrBefore(absorbedTimes, time));
    const sincePrevious = previous === -Infinity ? 0 : time - previous;
    if (absorbed !== undefined) this.absorb(session, absorbed);
    // Late events take the next position in arrival order (stages after it count the events arrived: position 0 is a
    // new session to them).
    const position = session.count;
    if (time < session.start) session.start = time;
    if (time > session.end) session.end = time;
    keepPriorTimes(session, times, absorbedTimes, time);
    this.tag(event, session, position, sincePrevious);
    if (outOfOrder) event.session!.outOfOrder = true;
    if (absorbed !== undefined) event.session!.merged = [absorbed.id];
    this.count(session, event.type);
    emit(event);
    if ((session.flags & SEALED) === 0) {
      // Reopened when the late event moved its end past the watermark; else its summary is stale now.
      if (session.end + s.gap > this.watermark) this.reopen(session);
      else this.close(session);
    }
    if ((session.flags & CLOSED) !== 0) this.summarize(session, (session.flags & SEALED) !== 0 ? 'max_length' : 'gap', emit);
  }

  private tooLate(event: ClickEvent): void {
    this.late.inc();
    this.context.sideOutput('late', event);
  }

  private absorb(into: Session, from: Session): void {
    into.count += from.count;
    forEachCount(from, (type, count) => addCount(into, type, count));
    into.flags |= from.flags & (PURCHASED | EMITTED | SEALED);
    if (from.end > into.end) into.end = from.end;
    if (from.start < into.start) into.start = from.start;
    into.replaces = [...(into.replaces ?? []), from.id, ...(from.replaces ?? [])];
    this.merged.inc();
    this.remove(from);
  }

  private summarize(session: Session, closedBy: SessionCloseReason, emit: Emit): void {
    const summary: SessionizerSummary = {
      kind: 'session',
      userId: session.userId,
      sessionId: session.id,
      start: session.start,
      end: session.end,
      eventCount: session.count,
      counts: countsOf(session),
      purchased: (session.flags & PURCHASED) !== 0,
      closedBy,
      keptUntil: closedBy === 'evicted' ? Math.max(this.watermark, session.end) : session.end + this.settings.gap + this.settings.lateness,
    };
    if ((session.flags & EMITTED) !== 0) summary.update = true;
    else this.closedSinceFlush++;
    if (session.replaces !== undefined) summary.replaces = session.replaces;
    attachHandle(summary, session);
    session.flags |= EMITTED;
    emit(summary);
  }

  /** Marks the session closed (its summary is current): it waits out the lateness, to end + gap + lateness. */
  private close(session: Session): void {
    if ((session.flags & CLOSED) !== 0) return;
    session.flags |= CLOSED;
    this.closing.delete(session);
    this.forgetting.push(session.end + this.settings.gap + this.settings.lateness, session);
  }

  /** A closed session a late event moved past the watermark: open again, it closes at its new end + gap. */
  private reopen(session: Session): void {
    if ((session.flags & CLOSED) === 0) return;
    session.flags &= ~CLOSED;
    this.forgetting.delete(session);
    this.closing.push(session.end + this.settings.gap, session);
  }

  /** Fires every timer due at or before `time`: closes sessions, then forgets them after the lateness. */
  private fire(time: number, emit: Emit): void {
    const s = this.settings;
    const closing = this.closing;
    while (closing.size > 0 && closing.keys[0]! <= time) {
      const key = closing.keys[0]!;
      const session = closing.pop();
      const due = session.end + s.gap;
      if (due > key) {
        closing.push(due, session); // its end moved since the timer was set
        continue;
      }
      session.flags |= CLOSED;
      // At the end of input, a session whose gap had passed by the last event time ended by its gap.
      this.summarize(session, time === Infinity && due > this.maxSeen ? 'end_of_input' : 'gap', emit);
      if (s.lateness > 0 && time !== Infinity) this.forgetting.push(due + s.lateness, session);
      else this.remove(session);
    }
    // Forgetting makes no output: the order against closing does not matter.
    const forgetting = this.forgetting;
    while (forgetting.size > 0 && forgetting.keys[0]! <= time) {
      const key = forgetting.keys[0]!;
      const session = forgetting.pop();
      const due = session.end + s.gap + s.lateness;
      if (due > key) forgetting.push(due, session); // a late event moved its end
      else this.remove(session);
    }
  }

  /** After each event: a new session may have taken the count past max_open_sessions. */
  private keepWithinBound(emit: Emit): void {
    while (this.open > this.settings.maxOpen) this.evictOne(emit);
  }

  /**
   * Over max_open_sessions: the closed session whose lateness runs out first is forgotten (its
   * summary is out; it only loses its chance of a late update), or where none is closed, the open
   * session due to close first is closed now (summary closedBy: evicted).
   */
  private evictOne(emit: Emit): void {
    const s = this.settings;
    const closed = this.forgetting.size > 0;
    const heap = closed ? this.forgetting : this.closing;
    const wait = closed ? s.gap + s.lateness : s.gap;
    // Timers that lag behind their sessions' ends are brought up to date until the first is due then.
    for (;;) {
      const top = heap.items[0]!;
      const due = top.end + wait;
      if (due > heap.keys[0]!) heap.move(top, due);
      else break;
    }
    const victim = heap.items[0]!;
    if (closed) this.forgottenEarly.inc();
    else {
      this.summarize(victim, 'evicted', emit);
      this.evicted.inc();
    }
    if (victim.end > this.droppedThrough) this.droppedThrough = victim.end;
    this.remove(victim);
    this.evictions++;
    if ((this.evictions & (this.evictions - 1)) === 0) {
      this.context.logger.warn(
        { evictions: this.evictions, max_open_sessions: s.maxOpen },
        'max_open_sessions reached: forgetting closed sessions before their lateness runs out, or closing open ones early',
      );
    }
  }

  /**
   * An erasure request: the user's sessions, open or closed, go without a summary, and so do their events
   * held back until the watermark passes them. Returns how many sessions and events went.
   */
  forget(userId: string): number {
    this.snapshots.settle();
    let dropped = 0;
    for (let session = this.users.get(userId); session !== undefined; session = this.users.get(userId)) {
      this.remove(session);
      dropped++;
    }
    const kept = this.pending.filter((event) => event.userId !== userId);
    dropped += this.pending.length - kept.length;
    this.pending = kept;
    this.openGauge.set(this.open);
    return dropped;
  }

  private remove(session: Session): void {
    session.dead = true;
    this.closing.delete(session);
    this.forgetting.delete(session);
    this.open--;
    const newest = this.users.get(session.userId);
    if (newest === session) {
      if (session.older === undefined) this.users.delete(session.userId);
      else this.users.set(session.userId, session.older);
    } else {
      for (let c = newest; c !== undefined; c = c.older) {
        if (c.older === session) {
          c.older = session.older;
          break;
        }
      }
    }
    session.older = undefined;
  }

  /** The state as of this call, built in parts (see PartedSnapshots): copied, then encoded from the copies while records flow (takeCopying). */
  snapshot(): CopyingSnapshot<SessionizerSnapshot> {
    return this.snapshots.takeCopying(this.snapshotParts());
  }

  private *snapshotParts(): CopyThenEncode<SessionizerSnapshot> {
    const rows: Session[] = [];
    yield* eachOf(this.users.values(), (newest) => {
      for (let c: Session | undefined = newest; c !== undefined; c = c.older) rows.push(c);
    });
    const n = rows.length;
    const users: string[] = [];
    const ids: (string | number | undefined)[] = [];
    const seq = new Float64Array(n);
    const start = new Float64Array(n);
    const end = new Float64Array(n);
    const count = new Float64Array(n);
    const flags = new Float64Array(n);
    const countLayout = new Float64Array(n);
    const prior = new Float64Array(PRIOR_TIMES * n);
    const countValues: number[] = [];
    const countTypes: string[][] = [];
    const layouts = new Map<string, number>();
    const replacesRows: number[] = [];
    const replaces: string[][] = [];
    yield* partsOf(n, (from, to) => {
      for (let i = from; i < to; i++) {
        const c = rows[i]!;
        users.push(c.userId);
        ids.push(c.savedId);
        seq[i] = c.seq;
        start[i] = c.start;
        end[i] = c.end;
        count[i] = c.count;
        flags[i] = c.flags;
        prior[PRIOR_TIMES * i] = c.prior1;
        prior[PRIOR_TIMES * i + 1] = c.prior2;
        prior[PRIOR_TIMES * i + 2] = c.prior3;
        const types: string[] = [];
        forEachCount(c, (type, value) => {
          types.push(type);
          countValues.push(value);
        });
        const key = types.join('\u0000');
        let layout = layouts.get(key);
        if (layout === undefined) {
          layout = countTypes.length;
          layouts.set(key, layout);
          countTypes.push(types);
        }
        countLayout[i] = layout;
        if (c.replaces !== undefined) {
          replacesRows.push(i);
          replaces.push([...c.replaces]);
        }
      }
    });
    // The heap orders by (time, seq), so its layout need not be kept.
    // Both heaps in one list: a restore puts each timer in the heap its session's CLOSED flag calls for.
    const heapKeys = this.closing.keys.concat(this.forgetting.keys);
    const timed = this.closing.items.concat(this.forgetting.items);
    const heapSeqs = new Float64Array(heapKeys.length);
    yield* partsOf(heapKeys.length, (from, to) => {
      for (let i = from; i < to; i++) heapSeqs[i] = timed[i]!.seq;
    });
    const pending = yield* encodePending(this.pending);
    const watermark = finiteOrNull(this.watermark);
    const lastMark = finiteOrNull(this.lastMark);
    const droppedThrough = finiteOrNull(this.droppedThrough);
    const numberedIds = this.numberedIds;
    const maxSeen = finiteOrNull(this.maxSeen);
    const futureUntil = finiteOrNull(this.futureUntil);
    const nextSeq = this.nextSeq;
    return (function* () {
      const derivedIds = yield* encodeDerivedIds(users, ids);
      const [seqs, starts, ends, counts, flagColumn, layoutColumn, valueColumn, keyColumn, seqColumn, priorColumn] = yield* encodeColumns([
        seq,
        start,
        end,
        count,
        flags,
        countLayout,
        Float64Array.from(countValues),
        Float64Array.from(heapKeys),
        heapSeqs,
        prior,
      ]);
      const snapshot: SessionizerSnapshot = {
        version: 6,
        watermark,
        lastMark,
        droppedThrough,
        numberedIds,
        maxSeen,
        futureUntil,
        nextSeq,
        users,
        ids: derivedIds,
        seq: seqs!,
        start: starts!,
        end: ends!,
        count: counts!,
        flags: flagColumn!,
        countTypes,
        countLayout: layoutColumn!,
        countValues: valueColumn!,
        replacesRows,
        replaces,
        heapKeys: keyColumn!,
        heapSeqs: seqColumn!,
        prior: priorColumn!,
        pending,
      };
      return snapshot;
    })();
  }

  async restore(saved: SessionizerSnapshot | SessionizerSnapshotV1): Promise<void> {
    // Not prefixed with the label: the runtime's message (restoreStage) names the stage.
    const what = 'sessionizer snapshot';
    const version = (saved as { version?: unknown } | undefined)?.version;
    if (version !== 1 && version !== 2 && version !== 3 && version !== 4 && version !== 5 && version !== 6) throw new Error(`unknown sessionizer snapshot version ${String(version)}`);
    const watermark = timeOrNull(saved.watermark, `${what}: watermark`);
    const fourOn = saved.version === 4 || saved.version === 5 || saved.version === 6;
    const droppedThrough = fourOn ? timeOrNull(saved.droppedThrough, `${what}: droppedThrough`) : null;
    const numberedIds = fourOn ? saved.numberedIds : 0;
    // Before version 5 the watermark received was not kept: taken as this operator's own, the next one moves it.
    const lastMark = saved.version === 5 || saved.version === 6 ? timeOrNull(saved.lastMark, `${what}: lastMark`) : watermark;
    if (!(typeof numberedIds === 'number' && Number.isSafeInteger(numberedIds) && numberedIds >= 0)) throw new Error(`${what}: numberedIds: ${String(numberedIds)} is not a whole number`);
    const maxSeen = timeOrNull(saved.maxSeen, `${what}: maxSeen`);
    let futureUntil: number | null;
    if (saved.version === 6) futureUntil = timeOrNull(saved.futureUntil, `${what}: futureUntil`);
    else if (typeof saved.sawFuture !== 'boolean') throw new Error(`${what}: sawFuture: not true or false`);
    // Before version 6 the far-future event's time was not kept: held until the end, as those versions did.
    else futureUntil = saved.sawFuture ? Number.MAX_VALUE : null;
    const nextSeq = saved.nextSeq;
    if (!(Number.isSafeInteger(nextSeq) && nextSeq >= 0)) throw new Error(`${what}: nextSeq: ${String(nextSeq)} is not a whole number`);
    this.snapshots.settle();
    this.users.clear();
    this.closing = new TimerHeap();
    this.forgetting = new TimerHeap();
    this.watermark = watermark ?? -Infinity;
    this.lastMark = lastMark ?? -Infinity;
    this.maxSeen = maxSeen ?? -Infinity;
    this.droppedThrough = droppedThrough ?? -Infinity;
    this.numberedIds = numberedIds;
    this.futureUntil = futureUntil ?? -Infinity;
    this.nextSeq = nextSeq;
    // Sessions by row, and their rows by seq (the timers name sessions by seq).
    const sessions: Session[] = [];
    let rowsBySeq: RowsBySeq;
    let previous: Session | undefined;
    const link = (session: Session, row: number): void => {
      if (!rowsBySeq.add(session.seq, row)) throw new Error(`${what}: seq: ${session.seq} at row ${row} again`);
      sessions.push(session);
      if (previous !== undefined && previous.userId === session.userId) previous.older = session;
      else {
        // A user's sessions are one run of rows: a second run would cut the first from the user's list.
        const users = this.users.size;
        this.users.set(session.userId, session);
        if (this.users.size === users) throw new Error(`${what}: users: '${session.userId}' at row ${row} apart from its other rows`);
      }
      previous = session;
    };
    let heapKeys: ArrayLike<number>;
    let heapSeqs: ArrayLike<number>;
    if (saved.version === 1) {
      let newest = 0;
      for (const row of saved.sessions) if (row[0] > newest) newest = row[0];
      rowsBySeq = new RowsBySeq(newest, saved.sessions.length);
      for (const [seq, userId, id, start, end, count, counts, flags, replaces] of saved.sessions) {
        const session = new Session(seq, userId, id, start);
        session.end = end;
        session.count = count;
        setCounts(session, counts);
        session.flags = flags;
        session.replaces = replaces ?? undefined;
        link(session, sessions.length);
      }
      heapKeys = saved.heapKeys;
      heapSeqs = saved.heapSeqs;
    } else {
      const users = decodeStrings(saved.users, undefined, `${what}: users`);
      const n = users.length;
      // Ids of the form `<user>:<time>` stay numbers until asked for (Session.id).
      const { ids, times: idTimes } = decodeDerivedIds(users, saved.ids, `${what}: ids`, true);
      const { seq, start, end, count, flags, countLayout } = await decodeNamedColumnsInTurns(saved, ['seq', 'start', 'end', 'count', 'flags', 'countLayout'], n, what);
      let newest = 0;
      for (let i = 0; i < n; i++) if (seq[i]! > newest) newest = seq[i]!;
      rowsBySeq = new RowsBySeq(newest, n);
      const countValues = decodeColumn(saved.countValues, `${what}: countValues`);
      const countTypes = decodeCountTypes(saved.countTypes, `${what}: countTypes`);
      // Each row's counts are as many as its layout's types; all rows' together fill countValues.
      const widths = new Float64Array(n);
      await inParts(n, (from, to) => {
        for (let i = from; i < to; i++) {
          const types = countTypes[countLayout[i]!];
          if (types === undefined) throw new Error(`${what}: countLayout: ${countLayout[i]!} at row ${i}, expected a list of countTypes (0 to ${countTypes.length - 1})`);
          widths[i] = types.length;
        }
      });
      checkListLengths(widths, countValues.length, `${what}: countValues`);
      const replaces = decodeReplaces(saved.replacesRows, saved.replaces, n, what);
      const prior = decodeOptionalColumnOf(saved.prior, PRIOR_TIMES * n, `${what}: prior`);
      let nextValue = 0;
      await inParts(n, (from, to) => {
        for (let i = from; i < to; i++) {
          const rowSeq = seq[i]!;
          // A seq is a session's identity (the timers name it) and orders ties; new sessions take nextSeq on.
          if (!(Number.isSafeInteger(rowSeq) && rowSeq >= 0 && rowSeq < nextSeq)) throw new Error(`${what}: seq: ${rowSeq} at row ${i}, expected a whole number below nextSeq ${nextSeq}`);
          const rowStart = start[i]!;
          const rowEnd = end[i]!;
          if (!Number.isFinite(rowStart)) throw new Error(`${what}: start: ${rowStart} at row ${i} is not a time`);
          if (!(rowEnd >= rowStart && rowEnd < Infinity)) throw new Error(`${what}: end: ${rowEnd} at row ${i}, expected a time at or after its start ${rowStart}`);
          const rowFlags = flags[i]!;
          if (!(Number.isInteger(rowFlags) && rowFlags >= 0 && rowFlags <= (PURCHASED | EMITTED | CLOSED | SEALED))) {
            throw new Error(`${what}: flags: ${rowFlags} at row ${i}, expected a whole number 0 to ${PURCHASED | EMITTED | CLOSED | SEALED}`);
          }
          const idTime = idTimes[i]!;
          const session = new Session(rowSeq, users[i]!, idTime === idTime ? idTime : ids[i], rowStart);
          session.end = rowEnd;
          session.count = count[i]!;
          session.flags = rowFlags;
          let counted = 0;
          for (const type of countTypes[countLayout[i]!]!) {
            const value = countValues[nextValue++]!;
            counted += value;
            addCount(session, type, value);
          }
          if (counted !== session.count) throw new Error(`${what}: count: ${session.count} at row ${i}, its counts by type add up to ${counted}`);
          session.replaces = replaces.get(i);
          if (prior !== undefined) restorePriorTimes(session, prior, i, what);
          session.dead = true; // until its timer is read below: a second timer then finds it alive
          link(session, i);
        }
      });
      // Every kept session has exactly one timer (dead ones' are not saved): one a row.
      heapKeys = decodeColumnOf(saved.heapKeys, n, `${what}: heapKeys`);
      heapSeqs = decodeColumnOf(saved.heapSeqs, n, `${what}: heapSeqs`);
    }
    this.open = sessions.length;
    this.openGauge.set(this.open);
    // Versions 2 and 3 hold exactly one timer a session (checked); version 1's are taken as they always were.
    const exact = saved.version !== 1;
    await inParts(heapKeys.length, (from, to) => {
      for (let i = from; i < to; i++) {
        const key = heapKeys[i]!;
        if (!Number.isFinite(key)) throw new Error(`${what}: heapKeys: ${key} at ${i} is not a time`);
        const timerSeq = heapSeqs[i]!;
        const row = rowsBySeq.get(timerSeq);
        const session = row < 0 ? undefined : sessions[row];
        if (session === undefined) {
          if (exact) throw new Error(`${what}: heapSeqs: ${timerSeq} at ${i} names no session`);
          continue;
        }
        if (exact) {
          if (!session.dead) throw new Error(`${what}: heapSeqs: ${timerSeq} at ${i} names a session timed before`);
          session.dead = false;
        }
        // Never later than it is due: a snapshot of an earlier version may hold a session reopened by
        // a late event with its timer still at the old end + gap + lateness.
        const closed = (session.flags & CLOSED) !== 0;
        const timers = closed ? this.forgetting : this.closing;
        const due = session.end + this.settings.gap + (closed ? this.settings.lateness : 0);
        const at = key < due ? key : due;
        if (session.heapAt < 0) timers.push(at, session);
        else if (at < timers.keys[session.heapAt]!) timers.move(session, at); // a second timer (version 1): the earlier one stands
      }
    });
    let pending: ClickEvent[] = [];
    const savedPending = saved.pending;
    if (Array.isArray(savedPending)) {
      await inParts(savedPending.length, (from, to) => {
        for (let i = from; i < to; i++) {
          const [event, origin] = savedPending[i]!;
          const restored = { ...event } as ClickEvent;
          if (origin) restored[ORIGIN] = origin;
          pending.push(restored);
        }
      });
    } else pending = decodePending(savedPending, `${what}: pending`);
    this.pending = pending;
    this.pendingSorted = this.pending.every((event, i, all) => i === 0 || all[i - 1]!.time <= event.time);
  }
}

/**
 * The event times a session keeps, ascending: its prior times and `end`, and `start` where the first event is the one
 * event before them. `floor`: every event after it is among them (-Infinity: all its events are).
 */
interface KeptTimes {
  times: number[];
  floor: number;
  start: number;
}

function keptTimes(session: Session): KeptTimes {
  const times: number[] = [];
  // Nearest first, up to the first not kept (the kept ones are consecutive events).
  for (const prior of [session.prior1, session.prior2, session.prior3]) {
    if (prior < 0) break;
    times.push(session.start + prior);
  }
  times.reverse();
  times.push(session.end);
  if (times.length + 1 === session.count) times.unshift(session.start);
  return { times, floor: times.length >= session.count ? -Infinity : times[0]!, start: session.start };
}

/** The latest kept time at or before `time`; the session's first event is always known, so -Infinity only before the start. */
function latestAtOrBefore(kept: KeptTimes, time: number): number {
  const times = kept.times;
  for (let k = times.length - 1; k >= 0; k--) if (times[k]! <= time) return times[k]!;
  // Older than every kept time: of those, the first event's (the start) is the latest known before it.
  return time >= kept.start ? kept.start : -Infinity;
}

/**
 * A late event at `time` joined `session` (its start and end updated already), bridging from it to `absorbed` if its
 * times are given: its prior times are the latest PRIOR_TIMES before the end among the kept times and this one, those
 * at or above every list's floor (so they stay consecutive; an event older than them changes none).
 */
function keepPriorTimes(session: Session, kept: KeptTimes, absorbed: KeptTimes | undefined, time: number): void {
  const floor = absorbed === undefined ? kept.floor : Math.max(kept.floor, absorbed.floor);
  const times = absorbed === undefined ? kept.times.slice() : kept.times.concat(absorbed.times);
  times.push(time);
  times.sort((a, b) => a - b);
  let at = times.length - 2; // the last is the end
  const priors = [-1, -1, -1];
  for (let k = 0; k < PRIOR_TIMES && at >= 0 && times[at]! >= floor; k++, at--) {
    const prior = times[at]! - session.start;
    const kept = prior & MAX_PRIOR; // a small integer: an arithmetic result may be a boxed double
    if (kept !== prior) break;
    priors[k] = kept;
  }
  [session.prior1, session.prior2, session.prior3] = priors as [number, number, number];
}

/** Row `row`'s prior times from the snapshot's column: each -1, or a whole number of ms from the start to the end, the nearest first, and none after a -1. */
function restorePriorTimes(session: Session, column: Float64Array, row: number, what: string): void {
  const priors = [-1, -1, -1];
  let bound = session.end - session.start;
  for (let k = 0; k < PRIOR_TIMES; k++) {
    const prior = column[PRIOR_TIMES * row + k]!;
    if (prior === -1) {
      bound = -1;
      continue;
    }
    const kept = prior & MAX_PRIOR;
    if (!(kept === prior && prior <= bound)) {
      throw new Error(`${what}: prior: ${prior} at row ${row}, expected -1 or a whole number of ms after the session's start up to ${bound < 0 ? 'none after a -1' : `${bound} (its end, or the later one before it)`}`);
    }
    priors[k] = kept;
    bound = prior;
  }
  [session.prior1, session.prior2, session.prior3] = priors as [number, number, number];
}

/** The known event types, by their code in `Session.knownOrder` (code k + 1). */
const KNOWN_TYPES = ['view', 'cart', 'remove_from_cart', 'purchase'] as const;

/** Code (1-4) of a known event type, 0 for any other. */
function knownCode(type: string): number {
  return type === 'view' ? 1 : type === 'cart' ? 2 : type === 'remove_from_cart' ? 3 : type === 'purchase' ? 4 : 0;
}

function knownCount(session: Session, code: number): number {
  return code === 1 ? session.views : code === 2 ? session.carts : code === 3 ? session.removes : session.purchases;
}

function addCount(session: Session, type: string, count: number): void {
  const types = session.types;
  if (types === undefined) {
    const code = knownCode(type);
    if (code !== 0) {
      if (code === 1) session.views += count;
      else if (code === 2) session.carts += count;
      else if (code === 3) session.removes += count;
      else session.purchases += count;
      if ((session.knownSeen & (1 << code)) === 0) {
        session.knownSeen |= 1 << code;
        session.knownOrder |= code << (3 * session.knownTypes);
        session.knownTypes++;
      }
      return;
    }
    generalCounts(session);
    return addCount(session, type, count);
  }
  const typeCounts = session.typeCounts!;
  for (let k = 0; k < types.length; k++) {
    if (types[k] === type) {
      typeCounts[k]! += count;
      return;
    }
  }
  types.push(type);
  typeCounts.push(count);
}

/** Moves a session's counts of known types into the arrays (in first-seen order), for any type after. */
function generalCounts(session: Session): void {
  const types: string[] = [];
  const typeCounts: number[] = [];
  forEachCount(session, (type, count) => {
    types.push(type);
    typeCounts.push(count);
  });
  session.types = types;
  session.typeCounts = typeCounts;
  session.knownOrder = session.knownTypes = session.knownSeen = session.views = session.carts = session.removes = session.purchases = 0;
}

/** Calls `each` with every (type, count) of the session, in first-seen order. */
function forEachCount(session: Session, each: (type: string, count: number) => void): void {
  const types = session.types;
  if (types === undefined) {
    for (let k = 0; k < session.knownTypes; k++) {
      const code = (session.knownOrder >> (3 * k)) & 7;
      each(KNOWN_TYPES[code - 1]!, knownCount(session, code));
    }
    return;
  }
  const typeCounts = session.typeCounts!;
  for (let k = 0; k < types.length; k++) each(types[k]!, typeCounts[k]!);
}

/** Counts by type as a plain object (own keys even for `__proto__`, as a spread would make). */
function countsOf(session: Session): Record<string, number> {
  const counts: Record<string, number> = {};
  forEachCount(session, (type, count) => setOwnField(counts, type, count));
  return counts;
}

function setCounts(session: Session, counts: Record<string, number>): void {
  for (const type of Object.keys(counts)) addCount(session, type, counts[type]!);
}

function byTime(a: ClickEvent, b: ClickEvent): number {
  return a.time - b.time;
}

/**
 * Where an event time read in the wrong unit would fall in the accepted range when scaled by 1,000
 * (`scaled`): the most likely cause of such a time (a producer switching epoch seconds and milliseconds
 * under a running pipeline), said in its dead letter's reason with the source's setting that reads it.
 */
function epochUnitHint(scaled: number, notBefore: number, notAfter: number, what: string): string {
  if (!(scaled >= notBefore && scaled <= notAfter)) return '';
  return ` (as ${iso(scaled)} it would be in range: a time in ${what}, as after a producer switched units? check the source's mapping.time_format)`;
}

function iso(time: number): string {
  return Number.isFinite(time) && Math.abs(time) < 8.64e15 ? new Date(time).toISOString() : String(time);
}

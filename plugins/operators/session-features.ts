/**
 * `session-features`: a block of features at every event, computed from the events of its session
 * that arrived up to and including that event: arrival order, which is event-time order but for late
 * events (marked `session.outOfOrder`, see the description).
 * Needs a sessionizer before it. A session's state is kept as long as the sessionizer may still add
 * to the session (until the watermark passes its summary's `keptUntil`), and a merge folds the absorbed
 * sessions' state into the one that absorbed them.
 */
import { canonicalTimeZone, checkListLengths, type ClickEvent, type Column, type CopyingSnapshot, type CopyThenEncode, decodeColumn, decodeColumnOf, decodeColumns, decodeDerivedIds, decodeNamedColumns, decodeStrings, defineOperator, type DerivedIds, FeatureBlock, inFloat32Range, type Element, type Emit, encodeColumns, encodeDerivedIds, type EntryProblem, inParts, isUtcZone, madeBefore, offsetText, onTimeOffset, PartedSnapshots, partsOf, type PipelineOutline, PluginConfigError, type PluginContext, recordOperator, type SessionContext, sessionKey, type StreamRecord, timeFormatReadsInstants, timeZoneProblem, utcToLocal, type UtcToLocal, zoneNameWarning } from 'tributary';
import { handleOf, summaryHandle, type SessionHandle } from './handle.js';
import { sessionFeatureNames } from './feature-blocks.js';

export interface SessionFeaturesConfig {
  /** IANA zone of the hour-of-day and day-of-week features; not with utc_offset_minutes. */
  time_zone?: string;
  /** Fixed offset from UTC of those features (default 0); not with time_zone. */
  utc_offset_minutes?: number;
}

export { sessionFeatureNames };

export default defineOperator<SessionFeaturesConfig>({
  name: 'session-features',
  state: 'keyed',
  emits: [],
  status: 'beta',
  summary: 'Appends per-session features at every event: counts by type, distinct items, dwell, prices, cart value, time of day.',
  description:
    'Computed from the events of the session that arrived up to and including the current one. Features follow arrival order: ' +
    'events in order come in event-time order (the sessionizer sorts them), so their features never see the future (a purchase ' +
    'prediction made before the purchase does not use it); a late event (within the sessionizer\'s `allowed_lateness`) sees the events ' +
    'of its session that arrived before it, later ones in event time among them, a purchase maybe: the sessionizer marks such an event ' +
    '(`session.outOfOrder`), and intent-model predicts at none. Its `s_duration_s` and `s_since_prev_s` are still its time since the ' +
    'session\'s start and since the event before it in event time (the sessionizer\'s `sinceStart` and `sincePrevious`, as in order), while ' +
    '`s_events` and the other counts are of the events arrived, so its `s_mean_dwell_s` divides that duration among events that include later ones. ' +
    `Names: ${sessionFeatureNames.map((n) => `\`${n}\``).join(', ')}. ` +
    'Times are in seconds; a statistic with no input (e.g. the mean price of viewed items before any view) is 0, except ' +
    '`s_cart_to_view`, carts per view, which is the cart count before any view. `s_mean_dwell_s` is the duration over the ' +
    'events after the first; `s_view_price_std` the population deviation (Welford\'s running update: prices of any size with a small spread keep their precision); `s_cart_value` the carted prices less the removed ' +
    'ones (each remove\'s own price: a remove without one takes nothing off), never below 0. A price figure beyond the Float32 range of ' +
    'the vector (a price of 1e39) is written as the largest Float32 (3.4e38), never as Infinity. ' +
    'Hour of day, with its minutes and seconds (14:30 is 14.5), and day of week (Monday 0, whole days) are cyclic (sin and cos of 2π·hour/24 and 2π·day/7), of the event\'s time as a clock in `time_zone` showed it (summer time followed), ' +
    'or in UTC shifted by `utc_offset_minutes` (UTC itself by default). Sessions are told apart by ' +
    'user and id (data session ids may repeat across users). A session\'s state is kept while the sessionizer may still add to it (until the ' +
    'watermark passes its summary\'s `keptUntil`): a late event, or a data session id that comes back within the `allowed_lateness`, goes on ' +
    'from where the session was, and a late event that merges sessions (`session.merged`) adds up their state first (counts, sums, extremes, ' +
    'deviations, distinct items); a new session under an id still kept (at position 0) starts from zero. Records other than ' +
    'events pass through unchanged; an event without a session is dead-lettered (a pipeline with no sessionizer before this stage is a config error).',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      time_zone: {
        type: 'string',
        format: 'time-zone',
        description:
          'Where the hour-of-day and day-of-week features are taken: an IANA zone name (`Europe/Berlin`, `America/New_York`, `Asia/Kathmandu`) or `UTC`; without it, UTC (shifted by `utc_offset_minutes`). ' +
          'Each event\'s time is read as a clock there showed it, summer time followed: a Europe/Berlin shop\'s 14:00 is hour 14 in winter (13:00Z) ' +
          'and in summer (12:00Z). Usually the zone of the source\'s `mapping.time_zone`, which reads the times: where a source names a zone other than UTC there (and its `time_format` reads times without their own offset: no offset letter, not `epoch_s`/`epoch_ms`/`epoch_us`), `validate` and `run` warn of a stage ' +
          'with neither `time_zone` nor `utc_offset_minutes` (its hours would be UTC\'s), or with a `time_zone` that is none of the sources\' zones (`time_zone: UTC` says UTC hours are meant). ' +
          'Times written with their own offset (`2024-03-12T10:00:00+01:00`) are the right instants whatever the zone, so no config says the shop\'s clock: where neither `time_zone` nor `utc_offset_minutes` is set, ' +
          '`run` and `backtest` warn once, at the first time a source reads with an offset other than zero (a `file`, `stdin` or `kafka` source; a source of your own through `decodeRecords`, or `timeOffsetReporter`), naming the offset. Not set with `utc_offset_minutes`. ' +
          'A name that is no zone is a config error, with the zone most likely meant; an abbreviation Intl takes (`EST`, a fixed UTC-5 all year; `CET`; `BST`, which it reads as Bangladesh\'s) is a warning of `validate` and `run`, with the place most likely meant, as is an `Etc/GMT+5`-style name (POSIX\'s sign: UTC-05:00).',
      },
      utc_offset_minutes: {
        type: 'integer',
        minimum: -840,
        maximum: 840,
        description:
          'A fixed offset from UTC for the hour-of-day and day-of-week features, e.g. 60 for CET; default 0 (UTC). A fixed offset ' +
          'does not follow summer time (60 is an hour off for a Berlin shop from March to October): name the place with `time_zone` instead. Not set with `time_zone`.',
      },
    },
  },
  examples: [{}, { time_zone: 'Europe/Berlin' }, { utc_offset_minutes: 60 }],
  checkPipeline: (config, pipeline, self): EntryProblem[] => [
    ...(madeBefore(pipeline, self, 'session') === false
      ? [{ message: "needs a sessionizer before it: it reads each event's session, so without one every event would be dead-lettered ('event has no session'); put a `sessionizer` stage before it" }]
      : []),
    ...bothTimeSettings(config),
    ...abbreviatedZoneWarnings(config),
    ...sourceZoneWarnings(config, pipeline),
  ],
  featureNames: () => sessionFeatureNames,
  create(config, context) {
    // Checked again here for a config that reaches the factory without validation (a plugin's own test).
    for (const { field, message } of bothTimeSettings(config)) throw new PluginConfigError(field, message);
    const zone = config.time_zone;
    if (zone !== undefined) {
      const problem = timeZoneProblem(zone);
      if (problem !== undefined) throw new PluginConfigError('time_zone', problem);
    }
    // UTC itself is the fixed offset 0: no zone to look offsets up in.
    const toLocal = isUtcZone(zone) ? undefined : utcToLocal(zone!);
    const state = new SessionFeatureState((config.utc_offset_minutes ?? 0) * 60_000, toLocal, context);
    // Times written with an offset (+01:00) are the right instants, and so no config check sees that the
    // shop's clock is not UTC's: the first such time a source reads is told here, once per pipeline.
    if (zone === undefined && config.utc_offset_minutes === undefined) {
      onTimeOffset(context.shared, (offsetMinutes, source) =>
        context.logger.warn(
          { offset: offsetText(offsetMinutes), source },
          `${source} reads times written with their own UTC offset (${offsetText(offsetMinutes)}, the first one read), while neither time_zone nor utc_offset_minutes is set on this stage: the hour-of-day and day-of-week features are taken in UTC, not on the clock the times were written on; set time_zone to the shop's zone (an IANA name, Europe/Berlin: summer time followed), or utc_offset_minutes: ${offsetMinutes} for a fixed offset (time_zone: UTC keeps UTC hours and says they are meant)`,
        ),
      );
    }
    return {
      apply: recordOperator(context, () => ({ record: (record, emit) => state.record(record, emit), watermark: (mark) => state.advance(mark.time) })),
      snapshot: () => state.snapshot(),
      restore: (saved) => state.restore(saved as SessionFeaturesSnapshot | SessionFeaturesSnapshotV3 | SessionFeaturesSnapshotV1),
      forget: (userId) => state.forget(userId),
    };
  },
});

/**
 * Warnings, not errors (UTC hours, or another place's, may be meant): the hour and day features taken
 * in a zone other than the one a source reads its times in (`mapping.time_zone`, a shop's local
 * clock): without time_zone or utc_offset_minutes, in UTC, a Berlin shop's 14:00 is hour 13 in winter
 * and 12 in summer; with a time_zone that is none of the sources' zones, in that one. An explicit
 * `time_zone: UTC`, or a utc_offset_minutes, says it is meant.
 */
function sourceZoneWarnings(config: SessionFeaturesConfig, pipeline: PipelineOutline): EntryProblem[] {
  if (config.utc_offset_minutes !== undefined) return [];
  // zone compares (canonical); written is what the messages repeat: the canonical name, but an
  // abbreviation as the source's config gives it (EST's canonical name is America/Panama, a place its user never wrote).
  const sourceZones: { label: string; zone: string; written: string }[] = [];
  for (const source of pipeline.sources) {
    const mapping = source.config.mapping as { time_zone?: unknown; time_format?: unknown } | undefined;
    const given = typeof mapping?.time_zone === 'string' ? mapping.time_zone : undefined;
    const zone = given === undefined ? undefined : canonicalTimeZone(given);
    if (given === undefined || zone === undefined || zone === 'UTC') continue;
    // An epoch, or a pattern with an offset, reads instants: its time_zone applies to no time (the mapping's own warning says so), and says nothing of the source's clock.
    if (typeof mapping?.time_format === 'string' && timeFormatReadsInstants(mapping.time_format)) continue;
    sourceZones.push({ label: source.label, zone, written: zoneNameWarning(given) === undefined ? zone : given });
  }
  const first = sourceZones[0];
  if (first === undefined) return [];
  const read = `source ${first.label} reads its times in ${first.written} (mapping.time_zone)`;
  if (config.time_zone === undefined) {
    return [
      {
        field: 'time_zone',
        severity: 'warning',
        message: `neither time_zone nor utc_offset_minutes is set, so the hour-of-day and day-of-week features are taken in UTC, while ${read}: set time_zone: ${first.written} on this stage for the hours of a clock there (time_zone: UTC keeps UTC and says it is meant)`,
      },
    ];
  }
  const own = canonicalTimeZone(config.time_zone);
  if (own === undefined || own === 'UTC' || sourceZones.some(({ zone }) => zone === own)) return [];
  return [
    {
      field: 'time_zone',
      severity: 'warning',
      message: `time_zone ${config.time_zone} takes the hour-of-day and day-of-week features in another zone than the times are read in: ${read}; set time_zone: ${first.written} on this stage, unless the hours of a clock in ${config.time_zone} are meant`,
    },
  ];
}

/** A time_zone that is an abbreviation, not a place (`EST`: UTC-05:00 all year): a warning, said as the mapping's is (zoneNameWarning). */
function abbreviatedZoneWarnings(config: SessionFeaturesConfig): EntryProblem[] {
  const message = config.time_zone === undefined ? undefined : zoneNameWarning(config.time_zone);
  return message === undefined ? [] : [{ field: 'time_zone', severity: 'warning', message }];
}

/** time_zone and utc_offset_minutes both set: one of them is ignored otherwise, and which is not obvious. */
function bothTimeSettings(config: SessionFeaturesConfig): { field: string; message: string }[] {
  if (config.time_zone === undefined || config.utc_offset_minutes === undefined) return [];
  return [{ field: 'utc_offset_minutes', message: 'set time_zone or utc_offset_minutes, not both: time_zone follows summer time, a fixed offset does not; remove utc_offset_minutes' }];
}

// Running aggregates of one session: a row of numbers in a shared Float64Array (no per-session
// object with boxed doubles; rows and their distinct-value slots are reused once a session is forgotten).
const VIEWS = 0;
const CARTS = 1;
const REMOVES = 2;
const PURCHASES = 3;
const VIEW_PRICE_N = 4;
const VIEW_PRICE_SUM = 5;
/**
 * Sum of squared deviations from the running mean (Welford). Version-1 and -2 snapshots hold the sum
 * of squares here instead: E[x^2] - mean^2 cancelled terms of the prices' squared size, so prices near
 * 1e9 with a spread of 0.1 gave a deviation of 0 (or tens).
 */
const VIEW_PRICE_M2 = 6;
const VIEW_PRICE_MIN = 7;
const VIEW_PRICE_MAX = 8;
const CART_PRICE_N = 9;
const CART_PRICE_SUM = 10;
const CART_PRICE_MAX = 11;
const CART_VALUE = 12;
const WIDTH = 13;
/** Slots the pools start with, and never shrink below. */
const MIN_CAPACITY = 1024;

/**
 * The first format: one array per session (still restored). Versions 1 to 3 name a session by its id
 * alone (data ids repeat across users): restored, each waits for the first event or summary of its id
 * to tell its user (see SessionFeatureState.legacy).
 */
export interface SessionFeaturesSnapshotV1 {
  version: 1;
  /** [sessionId, numbers (in row layout order), items, categories] */
  sessions: [string, number[], string[], string[]][];
}

/**
 * Columnar: ids once, one column per row field, the distinct items and categories flattened. Version 3
 * holds VIEW_PRICE_M2 where version 2 held the sum of squared view prices (converted at restore).
 */
export interface SessionFeaturesSnapshotV3 {
  version: 2 | 3;
  /** Ids of the sessions with state (in the order of their slots). */
  ids: string[];
  /** One column per row field, in row layout order. */
  columns: Column[];
  /** Distinct items per session (a column of counts) and all of them, session after session. */
  itemCounts: Column;
  items: string[];
  categoryCounts: Column;
  categories: string[];
}

/** Version 4: sessions by user and id, and the closed ones' `keptUntil` (as version 3 otherwise). */
export interface SessionFeaturesSnapshot extends Omit<SessionFeaturesSnapshotV3, 'version' | 'ids'> {
  version: 4;
  /** Each session's user ('' where not known yet: one restored from a version 1 to 3 snapshot, listed in `unknownUsers`). */
  users: string[];
  ids: DerivedIds;
  unknownUsers: number[];
  /** The rows of the closed sessions (increasing), and for each the time the watermark must pass before it goes (its summary's keptUntil). */
  closedRows: Column;
  keptUntil: Column;
}

const DAY = 86_400_000;
const HOUR_ANGLE = (2 * Math.PI) / DAY;
const DOW_ANGLE = (2 * Math.PI) / 7;
/** sin and cos of the day of week: the same values Math.sin/cos give, looked up. */
const DOW_SIN = Float64Array.from({ length: 7 }, (_, d) => Math.sin(d * DOW_ANGLE));
const DOW_COS = Float64Array.from({ length: 7 }, (_, d) => Math.cos(d * DOW_ANGLE));

/** Distinct values a slot keeps in the shared array before it moves them to a Set of its own. */
const INLINE = 16;

/**
 * Distinct strings per slot (a session's items, its categories), in insertion order. Sessions are
 * short (a handful of events), so the first INLINE values of each slot live in one shared array,
 * compared by a scan: no Set (and its hash table) per session, which was two to four allocations per
 * session, each surviving into the old generation. A slot with more moves to a Set.
 */
class DistinctPool {
  private values: string[] = [];
  private counts = new Int32Array(0);
  private readonly overflow = new Map<number, Set<string>>();

  /** Room for slots below `capacity`; slots from `capacity` on must be empty. */
  resize(capacity: number): void {
    const counts = new Int32Array(capacity);
    counts.set(this.counts.subarray(0, capacity));
    this.counts = counts;
    const values = this.values;
    if (values.length > capacity * INLINE) values.length = capacity * INLINE; // V8 trims the backing store
    // Filled, not a length change: a holey array would take slower element accesses.
    for (let k = values.length; k < capacity * INLINE; k++) values.push('');
  }

  /** Empties a slot (dropping its strings, so a free slot keeps nothing alive). */
  clear(slot: number): void {
    const n = this.counts[slot]!;
    if (n > INLINE) this.overflow.delete(slot);
    else for (let k = slot * INLINE, end = k + n; k < end; k++) this.values[k] = ''; // a loop: fill() is a call for a handful
    this.counts[slot] = 0;
  }

  /** Adds `value` to the slot; true when it was there already. */
  add(slot: number, value: string): boolean {
    const n = this.counts[slot]!;
    if (n > INLINE) {
      const set = this.overflow.get(slot)!;
      if (set.has(value)) return true;
      set.add(value);
      this.counts[slot] = set.size;
      return false;
    }
    const values = this.values;
    const base = slot * INLINE;
    for (let k = base; k < base + n; k++) if (values[k] === value) return true;
    if (n < INLINE) {
      values[base + n] = value;
      this.counts[slot] = n + 1;
      return false;
    }
    const set = new Set<string>(values.slice(base, base + n));
    values.fill('', base, base + n);
    set.add(value);
    this.overflow.set(slot, set);
    this.counts[slot] = set.size;
    return false;
  }

  size(slot: number): number {
    return this.counts[slot]!;
  }

  /** Moves slot `from`'s values to the empty slot `to`, leaving `from` empty. */
  move(from: number, to: number): void {
    const n = this.counts[from]!;
    if (n > INLINE) {
      this.overflow.set(to, this.overflow.get(from)!);
      this.overflow.delete(from);
    } else {
      const values = this.values;
      for (let k = 0; k < n; k++) {
        values[to * INLINE + k] = values[from * INLINE + k]!;
        values[from * INLINE + k] = '';
      }
    }
    this.counts[to] = n;
    this.counts[from] = 0;
  }

  /** Appends the slot's values, in insertion order, to `out`. */
  collect(slot: number, out: string[]): void {
    const n = this.counts[slot]!;
    if (n > INLINE) for (const value of this.overflow.get(slot)!) out.push(value);
    else for (let k = slot * INLINE; k < slot * INLINE + n; k++) out.push(this.values[k]!);
  }
}

/**
 * Closed sessions' slots by the time their state may go (their summary's keptUntil), earliest first,
 * ties in the order they closed: a min-heap. An entry whose slot no longer holds that time (reopened,
 * released, moved) is stale, and skipped when it comes up.
 */
class ReleaseQueue {
  private times: number[] = [];
  private orders: number[] = [];
  private slots: number[] = [];
  private next = 0;

  get size(): number {
    return this.times.length;
  }

  get topTime(): number {
    return this.times[0]!;
  }

  get topSlot(): number {
    return this.slots[0]!;
  }

  push(time: number, slot: number): void {
    let i = this.times.length;
    this.times.push(time);
    this.orders.push(this.next++);
    this.slots.push(slot);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): void {
    const last = this.times.length - 1;
    this.swap(0, last);
    this.times.pop();
    this.orders.pop();
    this.slots.pop();
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      let smallest = i;
      if (left < last && this.less(left, smallest)) smallest = left;
      if (left + 1 < last && this.less(left + 1, smallest)) smallest = left + 1;
      if (smallest === i) break;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  clear(): void {
    this.times = [];
    this.orders = [];
    this.slots = [];
  }

  private less(i: number, j: number): boolean {
    const a = this.times[i]!;
    const b = this.times[j]!;
    return a < b || (a === b && this.orders[i]! < this.orders[j]!);
  }

  private swap(i: number, j: number): void {
    const { times, orders, slots } = this;
    const time = times[i]!;
    times[i] = times[j]!;
    times[j] = time;
    const order = orders[i]!;
    orders[i] = orders[j]!;
    orders[j] = order;
    const slot = slots[i]!;
    slots[i] = slots[j]!;
    slots[j] = slot;
  }
}


class SessionFeatureState {
  /**
   * Slots by session (sessionKey: its user and id): every slot in use is here, so a summary finds its
   * session's state however it came (a stage between that copied it lost its handle). A session whose
   * handle this stage holds is found through the handle on its events, not here (see handle.ts).
   */
  private readonly slots = new Map<string, number>();
  /**
   * Slots restored from a snapshot of version 1 to 3, which named a session by its id alone: by id,
   * until the first event or summary of that id tells its user (claimLegacy).
   */
  private legacy = new Map<string, number>();
  /** Each slot's session id, user (undefined: a legacy slot's, not known yet) and map key; undefined id: a free slot. */
  private slotIds: (string | undefined)[] = [];
  private slotUsers: (string | undefined)[] = [];
  private slotKeys: (string | undefined)[] = [];
  /** The handle this stage cached the slot on: the session's events find the slot by its identity. */
  private slotHandles: (SessionHandle | undefined)[] = [];
  /**
   * A closed session's keptUntil (its summary's: after the watermark passes it no event joins it), NaN
   * while open. Until then a late event or a data id back may reopen it: its state stays.
   */
  private keptUntil = new Float64Array(0);
  private readonly closed = new ReleaseQueue();
  /**
   * Closed slots the watermark passed while the sessionizer may still keep them (its own watermark held
   * back behind a far-future event it dead-lettered): [slot, keptUntil] pairs.
   */
  private overdue: [number, number][] = [];
  private watermark = -Infinity;
  /**
   * The latest event time seen. The sessionizer sends an event once its own watermark has passed it
   * (a late one: behind it), so its watermark is at least this: a slot without a handle to ask
   * (restored, or copied on the way) goes once this, not only the watermark, passes its keptUntil. Not
   * in the snapshot: until the first event after a restore such slots wait, which only keeps them longer.
   */
  private eventTime = -Infinity;
  private rows = new Float64Array(0);
  private capacity = 0;
  private used = 0;
  private free: number[] = [];
  private items = new DistinctPool();
  private categories = new DistinctPool();
  private readonly block = new FeatureBlock(sessionFeatureNames);
  /** What is added to an event's time for its local time: the fixed utc_offset_minutes, where toLocal is undefined. */
  private readonly offset: number;
  /** The local time of an instant in the stage's time_zone; undefined: UTC shifted by `offset`. */
  private readonly toLocal: UtcToLocal | undefined;
  private readonly context: PluginContext;
  private readonly slotsGauge: { set(value: number): void };
  /** A snapshot still in parts reads the state: settled before a record changes it. */
  private readonly snapshots = new PartedSnapshots();

  constructor(offset: number, toLocal: UtcToLocal | undefined, context: PluginContext) {
    this.offset = offset;
    this.toLocal = toLocal;
    this.context = context;
    this.slotsGauge = context.metrics.gauge('session_feature_slots', 'Session slots session-features keeps room for (open sessions and spare room).');
    this.resize(MIN_CAPACITY);
  }

  /** Every per-slot pool sized for `capacity` slots (those from `capacity` on must be free). */
  private resize(capacity: number): void {
    const rows = new Float64Array(capacity * WIDTH);
    rows.set(this.rows.subarray(0, capacity * WIDTH));
    this.rows = rows;
    const keptUntil = new Float64Array(capacity).fill(NaN);
    keptUntil.set(this.keptUntil.subarray(0, capacity));
    this.keptUntil = keptUntil;
    this.items.resize(capacity);
    this.categories.resize(capacity);
    this.capacity = capacity;
    this.slotsGauge.set(capacity);
  }

  /** A zeroed slot for the session (rows from `used` on are zeros), entered in `slots` by `key` (or, user unknown, in `legacy`). */
  private allocate(userId: string | undefined, id: string, key: string | undefined): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.used++;
      if (slot >= this.capacity) this.resize(this.capacity * 2);
    } else {
      this.rows.fill(0, slot * WIDTH, slot * WIDTH + WIDTH);
    }
    this.slotIds[slot] = id;
    this.slotUsers[slot] = userId;
    this.slotKeys[slot] = key;
    this.slotHandles[slot] = undefined;
    this.keptUntil[slot] = NaN;
    if (key === undefined) this.legacy.set(id, slot);
    else this.slots.set(key, slot);
    return slot;
  }

  /** The slot of the user's session `id` (map key `key`), if it has one. */
  private find(userId: string, id: string, key = sessionKey(userId, id)): number | undefined {
    return this.slots.get(key) ?? (this.legacy.size > 0 ? this.claimLegacy(key, userId, id) : undefined);
  }

  /** A legacy slot of session `id`, now known to be the user's: entered by its key. */
  private claimLegacy(key: string, userId: string, id: string): number | undefined {
    const slot = this.legacy.get(id);
    if (slot === undefined) return undefined;
    this.legacy.delete(id);
    this.slotUsers[slot] = userId;
    this.slotKeys[slot] = key;
    this.slots.set(key, slot);
    return slot;
  }

  /**
   * The slot of an event's session, found by its key, else new; cached on its handle when no stage
   * holds that yet (one another stage holds is left alone: the key serves each time). A first event
   * (position 0) found a state: a new session under an id still kept here (the sessionizer forgot the
   * one before, or took a data id anew), which starts from zero.
   */
  private slotOf(userId: string, context: SessionContext, handle: SessionHandle | undefined): number {
    const id = context.id;
    const key = sessionKey(userId, id);
    let slot = this.find(userId, id, key);
    if (slot === undefined) slot = this.allocate(userId, id, key);
    else if (context.position === 0) this.clear(slot);
    if (handle !== undefined && (handle.sessionStage === undefined || handle.sessionStage === this)) {
      handle.sessionStage = this;
      handle.sessionSlot = slot;
      this.slotHandles[slot] = handle;
    }
    return slot;
  }

  record(record: Element, emit: Emit): void {
    if (record.kind !== 'event') {
      if (record.kind === 'session') {
        this.snapshots.settle();
        this.close(record as StreamRecord);
      }
      emit(record);
      return;
    }
    this.snapshots.settle();
    const event = record as ClickEvent;
    const context = event.session;
    if (context === undefined) throw new Error('event has no session: put a sessionizer before session-features');
    const handle = handleOf(context);
    const slot = handle !== undefined && handle.sessionStage === this && this.slotHandles[handle.sessionSlot] === handle ? handle.sessionSlot : this.slotOf(event.userId, context, handle);
    if (event.time > this.eventTime) this.eventTime = event.time;
    const kept = this.keptUntil;
    if (kept[slot] === kept[slot]) kept[slot] = NaN; // closed, reopened by this event: open until its next summary
    if (context.merged !== undefined) for (const id of context.merged) this.absorb(slot, event.userId, id);
    const row = this.rows; // read after allocate: it may have grown
    const r = slot * WIDTH;
    const hasPrice = event.price !== undefined && Number.isFinite(event.price);
    // Within the Float32 range as it enters the sums (the features are kept within it anyway): two view prices
    // near 1e308, which the mapping accepts, summed to Infinity, and the price m2 to NaN (Infinity - Infinity),
    // so s_view_price_std was NaN for the rest of the session (and the sums of merged sessions alike).
    const price = hasPrice ? inFloat32Range(event.price!) : 0;
    const type = event.type;
    let isView = 0;
    let isCart = 0;
    let isRemove = 0;
    let isPurchase = 0;
    if (type === 'view') {
      isView = 1;
      row[r + VIEWS]!++;
      if (hasPrice) {
        const n = row[r + VIEW_PRICE_N]!;
        if (n === 0 || price < row[r + VIEW_PRICE_MIN]!) row[r + VIEW_PRICE_MIN] = price;
        if (n === 0 || price > row[r + VIEW_PRICE_MAX]!) row[r + VIEW_PRICE_MAX] = price;
        const meanBefore = n > 0 ? row[r + VIEW_PRICE_SUM]! / n : 0;
        row[r + VIEW_PRICE_N] = n + 1;
        row[r + VIEW_PRICE_SUM]! += price;
        row[r + VIEW_PRICE_M2]! += (price - meanBefore) * (price - row[r + VIEW_PRICE_SUM]! / (n + 1));
      }
    } else if (type === 'cart') {
      isCart = 1;
      row[r + CARTS]!++;
      if (hasPrice) {
        if (row[r + CART_PRICE_N] === 0 || price > row[r + CART_PRICE_MAX]!) row[r + CART_PRICE_MAX] = price;
        row[r + CART_PRICE_N]!++;
        row[r + CART_PRICE_SUM]! += price;
        row[r + CART_VALUE]! += price;
      }
    } else if (type === 'remove_from_cart') {
      isRemove = 1;
      row[r + REMOVES]!++;
      if (hasPrice) row[r + CART_VALUE] = Math.max(0, row[r + CART_VALUE]! - price);
    } else if (type === 'purchase') {
      isPurchase = 1;
      row[r + PURCHASES]!++;
    }
    const repeat = event.itemId !== undefined && this.items.add(slot, event.itemId) ? 1 : 0;
    if (event.category !== undefined) this.categories.add(slot, event.category);

    const v = this.block.append(event);
    let i = this.block.offset;
    const events = context.position + 1;
    const duration = context.sinceStart / 1000;
    const views = row[r + VIEWS]!;
    const carts = row[r + CARTS]!;
    v[i++] = events;
    v[i++] = views;
    v[i++] = carts;
    v[i++] = row[r + REMOVES]!;
    v[i++] = row[r + PURCHASES]!;
    v[i++] = this.items.size(slot);
    v[i++] = this.categories.size(slot);
    v[i++] = duration;
    v[i++] = context.sincePrevious / 1000;
    v[i++] = events > 1 ? duration / (events - 1) : 0;
    // Price figures follow the prices, whatever their size: kept within the Float32 range (see inFloat32Range).
    const n = row[r + VIEW_PRICE_N]!;
    const mean = n > 0 ? row[r + VIEW_PRICE_SUM]! / n : 0;
    v[i++] = inFloat32Range(mean);
    v[i++] = n > 1 ? inFloat32Range(Math.sqrt(Math.max(0, row[r + VIEW_PRICE_M2]! / n))) : 0;
    v[i++] = inFloat32Range(row[r + VIEW_PRICE_MIN]!);
    v[i++] = inFloat32Range(row[r + VIEW_PRICE_MAX]!);
    const cartN = row[r + CART_PRICE_N]!;
    v[i++] = cartN > 0 ? inFloat32Range(row[r + CART_PRICE_SUM]! / cartN) : 0;
    v[i++] = inFloat32Range(row[r + CART_PRICE_MAX]!);
    v[i++] = inFloat32Range(row[r + CART_VALUE]!);
    v[i++] = carts / (views > 0 ? views : 1);
    v[i++] = hasPrice ? inFloat32Range(price) : 0;
    v[i++] = repeat;
    v[i++] = isView;
    v[i++] = isCart;
    v[i++] = isRemove;
    v[i++] = isPurchase;
    const toLocal = this.toLocal;
    const local = toLocal === undefined ? event.time + this.offset : toLocal(event.time);
    const dayMs = local - Math.floor(local / DAY) * DAY;
    v[i++] = Math.sin(dayMs * HOUR_ANGLE);
    v[i++] = Math.cos(dayMs * HOUR_ANGLE);
    const dow = (((Math.floor(local / DAY) + 3) % 7) + 7) % 7; // 1970-01-01 was a Thursday; Monday = 0
    v[i++] = DOW_SIN[dow]!;
    v[i] = DOW_COS[dow]!;
    if (context.merged !== undefined) this.compactIfSparse(); // the merged-away sessions' slots were freed
    emit(event);
  }

  /**
   * A session summary: the session closed. Its state stays until the watermark passes its `keptUntil`
   * (a summary without one, made elsewhere, frees it at once). Sessions it absorbed whose merge this
   * stage did not see (the merging event dropped on the way) are folded in now.
   */
  private close(summary: StreamRecord): void {
    const { userId, sessionId, replaces, keptUntil } = summary;
    if (typeof userId !== 'string' || typeof sessionId !== 'string') return;
    const handle = summaryHandle(summary);
    const slot = handle !== undefined && handle.sessionStage === this && this.slotHandles[handle.sessionSlot] === handle ? handle.sessionSlot : this.find(userId, sessionId);
    if (Array.isArray(replaces)) for (const id of replaces as unknown[]) if (typeof id === 'string') this.absorb(slot, userId, id);
    if (slot !== undefined) {
      if (typeof keptUntil === 'number' && keptUntil === keptUntil) {
        this.keptUntil[slot] = keptUntil;
        this.closed.push(keptUntil, slot);
      } else this.release(slot);
    }
    this.compactIfSparse();
  }

  /** Folds the user's session `id`, if it has state here, into `slot` (none: it is dropped), and frees it. */
  private absorb(slot: number | undefined, userId: string, id: string): void {
    const from = this.find(userId, id);
    if (from === undefined || from === slot) return;
    if (slot !== undefined) this.fold(from, slot);
    this.release(from);
  }

  /** Adds the state of slot `from` to slot `to`'s: one session now. */
  private fold(from: number, to: number): void {
    const row = this.rows;
    const a = to * WIDTH;
    const b = from * WIDTH;
    for (const field of [VIEWS, CARTS, REMOVES, PURCHASES, CART_VALUE]) row[a + field]! += row[b + field]!;
    const nA = row[a + VIEW_PRICE_N]!;
    const nB = row[b + VIEW_PRICE_N]!;
    if (nB > 0) {
      if (nA === 0 || row[b + VIEW_PRICE_MIN]! < row[a + VIEW_PRICE_MIN]!) row[a + VIEW_PRICE_MIN] = row[b + VIEW_PRICE_MIN]!;
      if (nA === 0 || row[b + VIEW_PRICE_MAX]! > row[a + VIEW_PRICE_MAX]!) row[a + VIEW_PRICE_MAX] = row[b + VIEW_PRICE_MAX]!;
      // Chan et al.'s parallel update of the squared deviations (0 for a side without prices).
      const delta = nA > 0 ? row[b + VIEW_PRICE_SUM]! / nB - row[a + VIEW_PRICE_SUM]! / nA : 0;
      row[a + VIEW_PRICE_M2]! += row[b + VIEW_PRICE_M2]! + (delta * delta * nA * nB) / (nA + nB);
      row[a + VIEW_PRICE_N] = nA + nB;
      row[a + VIEW_PRICE_SUM]! += row[b + VIEW_PRICE_SUM]!;
    }
    const cartB = row[b + CART_PRICE_N]!;
    if (cartB > 0) {
      if (row[a + CART_PRICE_N] === 0 || row[b + CART_PRICE_MAX]! > row[a + CART_PRICE_MAX]!) row[a + CART_PRICE_MAX] = row[b + CART_PRICE_MAX]!;
      row[a + CART_PRICE_N]! += cartB;
      row[a + CART_PRICE_SUM]! += row[b + CART_PRICE_SUM]!;
    }
    const values: string[] = [];
    this.items.collect(from, values);
    for (const item of values) this.items.add(to, item);
    values.length = 0;
    this.categories.collect(from, values);
    for (const category of values) this.categories.add(to, category);
  }

  /**
   * Event time moved to `time`: the closed sessions it passed the keptUntil of are gone from the
   * sessionizer, their state goes too; so does that of sessions their handle says the sessionizer forgot
   * early (max_open_sessions). One the sessionizer may still keep waits (see overdue, stillKept).
   */
  advance(time: number): void {
    if (!(time > this.watermark)) return;
    this.snapshots.settle();
    this.watermark = time;
    const queue = this.closed;
    while (queue.size > 0) {
      const slot = queue.topSlot;
      const due = queue.topTime;
      if (this.keptUntil[slot] !== due) {
        queue.pop(); // stale
        continue;
      }
      const handle = this.slotHandles[slot];
      if (due <= time) {
        queue.pop();
        if (this.stillKept(slot, due, time)) this.overdue.push([slot, due]);
        else this.release(slot);
      } else if (handle !== undefined && handle.dead) {
        queue.pop();
        this.release(slot);
      } else break;
    }
    if (this.overdue.length > 0) {
      const waiting = this.overdue;
      this.overdue = [];
      for (const [slot, due] of waiting) {
        if (this.keptUntil[slot] !== due) continue;
        if (this.stillKept(slot, due, time)) this.overdue.push([slot, due]);
        else this.release(slot);
      }
    }
    this.compactIfSparse();
  }

  /**
   * Whether the sessionizer may still keep a closed session the watermark here passed the keptUntil
   * (`due`) of: this watermark may run ahead of the sessionizer's (see overdue). Its handle says so;
   * without one (restored, copied on the way), the sessionizer's watermark is known to have passed
   * `due` only once an event at or after it came (see eventTime). At the end of input it keeps none.
   */
  private stillKept(slot: number, due: number, time: number): boolean {
    const handle = this.slotHandles[slot];
    if (handle !== undefined) return !handle.dead;
    return time !== Infinity && due > this.eventTime;
  }

  /** Empties a slot for a new session under its key. */
  private clear(slot: number): void {
    this.rows.fill(0, slot * WIDTH, slot * WIDTH + WIDTH);
    this.items.clear(slot);
    this.categories.clear(slot);
    this.keptUntil[slot] = NaN;
    this.slotHandles[slot] = undefined;
  }

  /**
   * An erasure request: the slots of the user's sessions are freed. A scan of the slots in use: requests are
   * rare, and a map by user would cost every session. Slots restored from a snapshot of version 1 to 3 whose
   * user no event has told yet (legacy) cannot be told apart and stay until their session closes.
   */
  forget(userId: string): number {
    this.snapshots.settle();
    let dropped = 0;
    for (let slot = 0; slot < this.used; slot++) {
      if (this.slotIds[slot] === undefined || this.slotUsers[slot] !== userId) continue;
      this.release(slot);
      dropped++;
    }
    if (dropped > 0) this.compactIfSparse();
    return dropped;
  }

  private release(slot: number): void {
    const key = this.slotKeys[slot];
    if (key !== undefined) this.slots.delete(key);
    else this.legacy.delete(this.slotIds[slot]!);
    this.slotIds[slot] = undefined;
    this.slotUsers[slot] = undefined;
    this.slotKeys[slot] = undefined;
    this.slotHandles[slot] = undefined;
    this.keptUntil[slot] = NaN;
    this.items.clear(slot);
    this.categories.clear(slot);
    this.free.push(slot);
  }

  /**
   * After releases, once the pools are mostly empty, gives their room back (see compact). Called where
   * a release is done with, never inside one: the callers of release hold slot numbers a compaction moves.
   */
  private compactIfSparse(): void {
    if (this.capacity > MIN_CAPACITY && this.size * 8 < this.capacity) this.compact();
  }

  /**
   * After a burst of open sessions has closed, gives the pools' room back (else memory would stay at
   * the peak for good): moves the sessions in use to the lowest slots and shrinks every pool to twice
   * their number. A moved session's map entry, and the handle cached on it, follow it. Moves at most the
   * sessions in use, and the next compaction needs the pool to grow or empty by 4x again, so the cost
   * per release stays constant.
   */
  private compact(): void {
    const ids = this.slotIds;
    let low = 0;
    let high = this.used - 1;
    for (;;) {
      while (low < high && ids[low] !== undefined) low++;
      while (high > low && ids[high] === undefined) high--;
      if (low >= high) break;
      this.rows.copyWithin(low * WIDTH, high * WIDTH, high * WIDTH + WIDTH);
      this.items.move(high, low);
      this.categories.move(high, low);
      ids[low] = ids[high];
      ids[high] = undefined;
      this.slotUsers[low] = this.slotUsers[high];
      this.slotUsers[high] = undefined;
      const key = this.slotKeys[high];
      this.slotKeys[low] = key;
      this.slotKeys[high] = undefined;
      if (key !== undefined) this.slots.set(key, low);
      else this.legacy.set(ids[low]!, low);
      const handle = this.slotHandles[high];
      this.slotHandles[low] = handle;
      this.slotHandles[high] = undefined;
      if (handle !== undefined) handle.sessionSlot = low;
      this.keptUntil[low] = this.keptUntil[high]!;
      this.keptUntil[high] = NaN;
      high--;
    }
    const live = this.size;
    // allocate takes slots from `used` on as they are (zeros): those the compaction vacated still
    // hold closed sessions' figures, which a new session there would have started from.
    this.rows.fill(0, live * WIDTH, this.used * WIDTH);
    this.used = live;
    this.free = [];
    ids.length = live;
    this.slotUsers.length = live;
    this.slotKeys.length = live;
    this.slotHandles.length = live;
    let capacity = MIN_CAPACITY;
    while (capacity < live * 2) capacity *= 2;
    this.resize(capacity);
    this.requeue();
  }

  /** The release queue again from the slots' keptUntil (after their slots moved or were restored). */
  private requeue(): void {
    this.closed.clear();
    this.overdue = []; // queued again: the next watermark finds them overdue again
    const kept = this.keptUntil;
    for (let slot = 0; slot < this.used; slot++) if (kept[slot] === kept[slot]) this.closed.push(kept[slot]!, slot);
  }

  get size(): number {
    return this.used - this.free.length;
  }

  /** The state as of this call, built in parts (see PartedSnapshots): copied, then encoded from the copies while records flow (takeCopying). */
  snapshot(): CopyingSnapshot<SessionFeaturesSnapshot> {
    return this.snapshots.takeCopying(this.snapshotParts());
  }

  private *snapshotParts(): CopyThenEncode<SessionFeaturesSnapshot> {
    const n = this.size;
    const users: string[] = [];
    const ids: string[] = [];
    const unknownUsers: number[] = [];
    const columns: Float64Array[] = [];
    for (let f = 0; f < WIDTH; f++) columns.push(new Float64Array(n));
    const itemCounts = new Float64Array(n);
    const categoryCounts = new Float64Array(n);
    const items: string[] = [];
    const categories: string[] = [];
    const closedRows: number[] = [];
    const keptUntil: number[] = [];
    const rows = this.rows;
    const kept = this.keptUntil;
    let i = 0;
    yield* partsOf(this.used, (from, to) => {
      for (let slot = from; slot < to; slot++) {
        const id = this.slotIds[slot];
        if (id === undefined) continue;
        const userId = this.slotUsers[slot];
        if (userId === undefined) unknownUsers.push(i);
        users.push(userId ?? '');
        ids.push(id);
        const r = slot * WIDTH;
        for (let f = 0; f < WIDTH; f++) columns[f]![i] = rows[r + f]!;
        itemCounts[i] = this.items.size(slot);
        this.items.collect(slot, items);
        categoryCounts[i] = this.categories.size(slot);
        this.categories.collect(slot, categories);
        if (kept[slot] === kept[slot]) {
          closedRows.push(i);
          keptUntil.push(kept[slot]!);
        }
        i++;
      }
    });
    return (function* (): Generator<void, SessionFeaturesSnapshot, void> {
      const encoded = yield* encodeColumns([...columns, itemCounts, categoryCounts, Float64Array.from(closedRows), Float64Array.from(keptUntil)]);
      return {
        version: 4,
        users,
        ids: yield* encodeDerivedIds(users, ids),
        unknownUsers,
        columns: encoded.slice(0, WIDTH),
        itemCounts: encoded[WIDTH]!,
        items,
        categoryCounts: encoded[WIDTH + 1]!,
        categories,
        closedRows: encoded[WIDTH + 2]!,
        keptUntil: encoded[WIDTH + 3]!,
      };
    })();
  }

  async restore(saved: SessionFeaturesSnapshot | SessionFeaturesSnapshotV3 | SessionFeaturesSnapshotV1): Promise<void> {
    // Not prefixed with the label: the runtime's message (restoreStage) names the stage.
    const what = 'session-features snapshot';
    const version = (saved as { version?: unknown } | undefined)?.version;
    if (version !== 1 && version !== 2 && version !== 3 && version !== 4) throw new Error('unknown session-features snapshot version');
    this.snapshots.settle();
    this.slots.clear();
    this.legacy = new Map();
    this.slotIds = [];
    this.slotUsers = [];
    this.slotKeys = [];
    this.slotHandles = [];
    this.free = [];
    this.used = 0;
    this.watermark = -Infinity;
    this.closed.clear();
    this.overdue = [];
    this.keptUntil = new Float64Array(0);
    const count = saved.version === 1 ? saved.sessions.length : saved.version === 4 ? saved.users.length : saved.ids.length;
    this.rows = new Float64Array(0);
    this.items = new DistinctPool();
    this.categories = new DistinctPool();
    this.resize(Math.max(MIN_CAPACITY, count));
    if (saved.version === 1) {
      const repeated = this.repeatedIds(saved.sessions.map(([id]) => id), saved.version);
      for (const [id, numbers, items, categories] of saved.sessions) {
        if (repeated.has(id)) continue;
        const slot = this.allocate(undefined, id, undefined);
        this.rows.set(numbers.slice(0, WIDTH), slot * WIDTH);
        sumOfSquaresToM2(this.rows, slot * WIDTH);
        for (const item of items) this.items.add(slot, item);
        for (const category of categories) this.categories.add(slot, category);
      }
      return;
    }
    let users: string[] | undefined;
    let ids: (string | undefined)[];
    const unknown = new Set<number>();
    let repeated = new Set<string>();
    if (saved.version === 4) {
      users = decodeStrings(saved.users, undefined, `${what}: users`);
      ids = decodeDerivedIds(users, saved.ids, `${what}: ids`);
      if (!Array.isArray(saved.unknownUsers)) throw new Error(`${what}: unknownUsers: not a list`);
      for (const row of saved.unknownUsers as unknown[]) {
        if (!(typeof row === 'number' && Number.isInteger(row) && row >= 0 && row < count && users[row] === '')) throw new Error(`${what}: unknownUsers: ${String(row)} is not a row without a user`);
        unknown.add(row);
      }
    } else {
      ids = decodeStrings(saved.ids, undefined, `${what}: ids`);
      repeated = this.repeatedIds(ids as string[], saved.version);
    }
    const columns = decodeColumns(saved.columns, WIDTH, count, `${what}: columns`);
    const { itemCounts, categoryCounts } = decodeNamedColumns(saved, ['itemCounts', 'categoryCounts'], count, what);
    const items = decodeStrings(saved.items, undefined, `${what}: items`);
    const categories = decodeStrings(saved.categories, undefined, `${what}: categories`);
    checkListLengths(itemCounts, items.length, `${what}: items`);
    checkListLengths(categoryCounts, categories.length, `${what}: categories`);
    let nextItem = 0;
    let nextCategory = 0;
    await inParts(count, (from, to) => {
      for (let i = from; i < to; i++) {
        const id = ids[i];
        if (id === undefined) throw new Error(`${what}: ids: none at row ${i}`);
        const itemsEnd = nextItem + itemCounts[i]!;
        const categoriesEnd = nextCategory + categoryCounts[i]!;
        if (repeated.has(id)) {
          nextItem = itemsEnd;
          nextCategory = categoriesEnd;
          continue;
        }
        // A session twice would have two states, one found: refused as damaged.
        const known = users !== undefined && !unknown.has(i);
        const taken = known ? this.slots.size : this.legacy.size;
        const slot = this.allocate(known ? users![i]! : undefined, id, known ? sessionKey(users![i]!, id) : undefined);
        if ((known ? this.slots.size : this.legacy.size) === taken) throw new Error(`${what}: session '${id}'${known ? ` of user '${users![i]!}'` : ' of no known user'} at row ${i} again`);
        const r = slot * WIDTH;
        for (let f = 0; f < WIDTH; f++) this.rows[r + f] = columns[f]![i]!;
        if (saved.version === 2) sumOfSquaresToM2(this.rows, r);
        for (; nextItem < itemsEnd; nextItem++) this.items.add(slot, items[nextItem]!);
        for (; nextCategory < categoriesEnd; nextCategory++) this.categories.add(slot, categories[nextCategory]!);
      }
    });
    if (saved.version === 4) {
      // Rows are slots: written in order, none dropped.
      const closedRows = decodeColumn(saved.closedRows, `${what}: closedRows`);
      const keptUntil = decodeColumnOf(saved.keptUntil, closedRows.length, `${what}: keptUntil`);
      for (let k = 0; k < closedRows.length; k++) {
        const row = closedRows[k]!;
        if (!(Number.isInteger(row) && row >= 0 && row < count && (k === 0 || row > closedRows[k - 1]!))) throw new Error(`${what}: closedRows: ${row} at ${k}, expected increasing rows below ${count}`);
        if (Number.isNaN(keptUntil[k]!)) throw new Error(`${what}: keptUntil: not a time at ${k}`);
        this.keptUntil[row] = keptUntil[k]!;
      }
      this.requeue();
    }
  }

  /**
   * The ids a snapshot of version 1 to 3 (sessions by id alone) holds more than once: two users'
   * sessions under one data id, whose users it did not keep. Which state is whose is not known: they
   * are left out (logged), their features start over rather than mixing two users' sessions.
   */
  private repeatedIds(ids: readonly string[], version: number): Set<string> {
    const seen = new Set<string>();
    const repeated = new Set<string>();
    for (const id of ids) {
      if (seen.has(id)) repeated.add(id);
      seen.add(id);
    }
    if (repeated.size > 0) {
      this.context.logger.warn(
        { sessions: [...repeated].slice(0, 10), count: repeated.size, version },
        'session-features: the snapshot holds these session ids more than once (two users\' data ids; its version kept sessions by id alone): their state is left out, their features start over',
      );
    }
    return repeated;
  }
}

/**
 * A version-1 or -2 row held the sum of squared view prices where VIEW_PRICE_M2 is now: converted
 * (with the precision those versions had; later prices add to it exactly).
 */
function sumOfSquaresToM2(rows: Float64Array, r: number): void {
  const n = rows[r + VIEW_PRICE_N]!;
  rows[r + VIEW_PRICE_M2] = n > 0 ? Math.max(0, rows[r + VIEW_PRICE_M2]! - (rows[r + VIEW_PRICE_SUM]! * rows[r + VIEW_PRICE_SUM]!) / n) : 0;
}

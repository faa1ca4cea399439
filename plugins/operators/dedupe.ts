/**
 * `dedupe`: drops an event its producer sent again (a retrying client), keyed by user and an event id or
 * a fingerprint of the event's fields. A key is remembered until the watermark passes the first copy's
 * time plus `within` (event time, so a replay drops the same events), and at most `max_keys` are kept:
 * beyond it the key remembered longest ago goes, counted. Duplicates go to the `duplicates` side output.
 */
import {
  bareMillisecondsWarning,
  decodeNamedColumns,
  decodeStrings,
  defineOperator,
  eachOf,
  encodeColumns,
  isInheritedName,
  madeBefore,
  ownValue,
  parseDuration,
  PartedSnapshots,
  PluginConfigError,
  recordOperator,
  type ClickEvent,
  type Column,
  type CopyThenEncode,
  type Duration,
  type EntryProblem,
  type PluginContext,
} from 'tributary';

export interface DedupeConfig {
  id_field?: string;
  fields: string[];
  within: Duration;
  max_keys: number;
}

/** The canonical event fields a fingerprint may take, as the event names them. */
const CANONICAL = ['time', 'type', 'itemId', 'category', 'price', 'sessionId'] as const;
type CanonicalField = (typeof CANONICAL)[number];
const FIELD_PATTERN = '^(time|type|itemId|category|price|sessionId|attrs\\..+)$';
const DEFAULT_FIELDS: CanonicalField[] = ['time', 'type', 'itemId', 'category', 'price', 'sessionId'];

/** What a snapshot holds: every remembered key (in the order they were first seen) with its first copy's time, and the watermark. */
interface DedupeSnapshot {
  version: 1;
  watermark: number | null;
  keys: string[];
  times: Column;
}

export default defineOperator<DedupeConfig>({
  name: 'dedupe',
  state: 'keyed',
  emits: [],
  sideOutputs: ['duplicates'],
  status: 'experimental',
  summary: 'Drops an event sent twice (a retrying client): same user and event id, or same fingerprint, within an event-time horizon.',
  description:
    'An event is a duplicate when an earlier event of the same user had the same key and the watermark has not yet passed that first ' +
    'event\'s time plus `within`. The key is the user id with the event id `id_field` where one is set and the event has it, else with ' +
    'the fingerprint `fields` (by default the event time, type, item, category, price and session id: a retry sends them all the same; an ' +
    'absent field is part of the fingerprint as absent). A duplicate is not passed on: it goes to the `duplicates` side output (a sink with ' +
    '`outputs: [duplicates]` writes it; without one it is counted only), counted in the run summary (`side output duplicates`) and in ' +
    '`tributary_duplicates_total`. Keys expire by event time (the watermark), never by wall clock, so a backtest drops what the live run ' +
    'drops. At most `max_keys` keys are kept: beyond it the key first seen longest ago is forgotten, counted in `dedupe_keys_evicted_total` ' +
    '(a copy of its event arriving later is then passed on). State is keyed by user (it moves with its partition under `scale_out`) and is ' +
    'checkpointed. Put it right after the sources, before the sessionizer, so no stage counts a copy (`validate` warns of one after a sessionizer).',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      id_field: {
        type: 'string',
        pattern: '^attrs\\..+$',
        description:
          'An event id the producer sends with each event and again with its retries, as an attribute the source\'s mapping keeps (`attrs.<name>`: ' +
          '`mapping.attributes: [event_id]` keeps `event_id` as `attrs.event_id`). The key is then the user and this id; an event without it ' +
          '(absent, null or empty) is keyed by `fields` instead, counted in `dedupe_events_without_id_total` and said once in the log. Default: none (the fingerprint).',
      },
      fields: {
        type: 'array',
        minItems: 1,
        uniqueItems: true,
        items: {
          type: 'string',
          pattern: FIELD_PATTERN,
          description: 'An event field, `time`, `type`, `itemId`, `category`, `price` or `sessionId`, or an attribute as `attrs.<name>`.',
        },
        default: DEFAULT_FIELDS,
        description:
          'The fingerprint, with the user id, of an event without `id_field`: two events of a user whose fields here are all equal are one event sent twice. ' +
          'Leave out a field a retry changes (an attribute holding the send time); add an attribute that tells two real events apart (a quantity). ' +
          'Two real events with the same fingerprint (two views of one item in the same millisecond) count as one. The values are kept as a 53-bit hash beside the exact user id (two of a user\'s events within `within` hashing alike: 1 in 2^53).',
      },
      within: {
        $ref: 'tributary:duration',
        minDuration: '1ms',
        default: '10m',
        description:
          'How long, in event time, a key is remembered after its first event: a copy up to this much behind the watermark past the first is dropped. At least the producer\'s retry time plus the sources\' `max_out_of_orderness`.',
      },
      max_keys: {
        type: 'integer',
        minimum: 1,
        default: 1000000,
        description:
          'Most keys remembered (per partition under `scale_out`). Beyond it the key first seen longest ago is forgotten before the watermark expires it, counted in `dedupe_keys_evicted_total` and said in the log; a copy of its event is then passed on. About 230 B of heap a fingerprint key, 320 B an id key of 20 characters (BENCHMARKS.md, Dedupe): 1,000,000 keys, 220-310 MiB.',
      },
    },
  },
  examples: [{}, { id_field: 'attrs.event_id', within: '30m', max_keys: 2000000 }, { fields: ['time', 'type', 'itemId', 'attrs.quantity'], within: '5m' }],
  checkPipeline: (config, pipeline, self) => {
    const problems: EntryProblem[] = [];
    const bare = bareMillisecondsWarning('within', config.within);
    if (bare !== undefined) problems.push(bare);
    // After a sessionizer, each copy has joined a session and been counted (and the stages after it count it again).
    if (madeBefore(pipeline, self, 'session') === true) {
      problems.push({ severity: 'warning', message: 'a stage before this one makes sessions: each copy was counted in its session before this stage drops it; put dedupe before the sessionizer (first among the stages)' });
    }
    return problems;
  },
  // It appends no features and selects none.
  featureNames: () => [],
  create(config, context) {
    const within = parseDuration(config.within);
    if (!(within > 0)) throw new PluginConfigError('within', `must be positive, got '${config.within}'`);
    if (!(Number.isInteger(config.max_keys) && config.max_keys >= 1)) throw new PluginConfigError('max_keys', `must be a whole number of at least 1, got ${config.max_keys}`);
    const readers = config.fields.map((field, k) => {
      // The schema says so too; a config composed in code reaches here unchecked.
      const first = config.fields.indexOf(field);
      if (first < k) throw new PluginConfigError(`fields[${k}]`, `'${field}' is fields[${first}] again`);
      const reader = fieldReader(field);
      if (reader === undefined) throw new PluginConfigError(`fields[${k}]`, `unknown field '${field}': an event field (${CANONICAL.join(', ')}) or an attribute as attrs.<name>`);
      return reader;
    });
    let idReader: ((event: ClickEvent) => unknown) | undefined;
    if (config.id_field !== undefined) {
      idReader = config.id_field.startsWith('attrs.') ? fieldReader(config.id_field) : undefined;
      if (idReader === undefined) throw new PluginConfigError('id_field', `'${config.id_field}' is not an attribute: write it as attrs.<name>`);
    }
    const state = new DedupeState(within, config.max_keys, context);
    const fingerprint = new Fingerprint();

    /** The event's key: its user's id (length first, so no user's key runs into another's) and its id or its fingerprint. */
    const keyOf = (event: ClickEvent): string => {
      const head = `${event.userId.length}:${event.userId}`;
      if (idReader !== undefined) {
        const id = idReader(event);
        if (id !== undefined && id !== null && id !== '') return `${head}#${typeof id === 'string' ? id : JSON.stringify(id)}`;
        state.withoutId();
      }
      fingerprint.start();
      for (let k = 0; k < readers.length; k++) fingerprint.add(readers[k]!(event));
      return `${head}=${fingerprint.finish().toString(36)}`;
    };

    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (record.kind !== 'event') return emit(record);
          const event = record as ClickEvent;
          if (state.seen(keyOf(event), event.time)) {
            state.duplicate();
            context.sideOutput('duplicates', event);
            return;
          }
          emit(record);
        },
        watermark(mark) {
          state.advance(mark.time);
        },
      })),
      snapshot: () => state.snapshot(),
      restore: (saved: DedupeSnapshot) => state.restore(saved),
      forget: (userId) => state.forget(userId),
    };
  },
});

/**
 * A 53-bit hash of an event's fingerprint values (cyrb53's mixing, fed whole values): a value's type,
 * then a string's length and characters, a number's float64 bits, an object's JSON; absent and null
 * alike (a mapping gives either for a field the record lacks). The key holds the hash, not the values:
 * kept for every event seen within `within`, a key of the values as text (80-90 characters) cost about
 * 560 B of heap a key (230 B so), and more collector time (bench/dedupe.ts, BENCHMARKS.md, 2026-12-08).
 * The user id stays exact beside it, so two of one user's events within the horizon would have to
 * collide: 1 in 2^53 (about 10^16) for two events.
 */
class Fingerprint {
  private h1 = 0;
  private h2 = 0;
  private readonly number = new Float64Array(1);
  private readonly words = new Uint32Array(this.number.buffer);

  start(): void {
    this.h1 = 0xdeadbeef;
    this.h2 = 0x41c6ce57;
  }

  private mix(x: number): void {
    this.h1 = Math.imul(this.h1 ^ x, 2654435761);
    this.h2 = Math.imul(this.h2 ^ x, 1597334677);
  }

  add(value: unknown): void {
    switch (typeof value) {
      case 'string':
        this.mix(1);
        this.mix(value.length);
        for (let i = 0; i < value.length; i++) this.mix(value.charCodeAt(i));
        return;
      case 'number':
        this.mix(2);
        this.number[0] = value === 0 ? 0 : value; // -0 as 0, as JSON writes it
        this.mix(this.words[0]!);
        this.mix(this.words[1]!);
        return;
      case 'undefined':
        this.mix(3);
        return;
      default:
        if (value === null) return this.mix(3);
        this.mix(4);
        this.add(JSON.stringify(value));
    }
  }

  /** The hash, a whole number below 2^53. */
  finish(): number {
    let h1 = this.h1;
    let h2 = this.h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
    h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  }
}

/** Reads one fingerprint field of an event; undefined for a name that is neither a canonical field nor `attrs.<name>`. */
function fieldReader(field: string): ((event: ClickEvent) => unknown) | undefined {
  if (field.startsWith('attrs.') && field.length > 6) {
    const name = field.slice(6);
    // An attribute named `constructor` or `__proto__` is one the event has or lacks, never Object.prototype's.
    if (isInheritedName(name)) return (event) => (event.attrs == null ? undefined : ownValue(event.attrs, name));
    return (event) => event.attrs?.[name];
  }
  if (!(CANONICAL as readonly string[]).includes(field)) return undefined;
  const canonical = field as CanonicalField;
  return (event) => event[canonical];
}

/**
 * The remembered keys, each with its first copy's event time, in a Map in the order first seen: the cap
 * evicts from its head in O(1). The watermark expires them: a sweep deletes expired keys from the head
 * up to the first that is not (an out-of-order key behind a later one waits for it; a lookup checks the
 * time itself, so an expired key still held is never taken for a live one).
 */
class DedupeState {
  private readonly keys = new Map<string, number>();
  private watermark = -Infinity;
  private evictions = 0;
  private withoutIdLogged = false;
  private readonly within: number;
  private readonly maxKeys: number;
  private readonly context: PluginContext;
  private readonly duplicates;
  private readonly evicted;
  private readonly withoutIdCount;
  private readonly keysGauge;
  /** A snapshot still in parts reads the map: settled before a record or a watermark changes it. */
  private readonly snapshots = new PartedSnapshots();

  constructor(within: number, maxKeys: number, context: PluginContext) {
    this.within = within;
    this.maxKeys = maxKeys;
    this.context = context;
    const metrics = context.metrics;
    this.duplicates = metrics.counter('duplicates_total', 'Events dropped as copies of an earlier one (sent to the duplicates side output).');
    this.evicted = metrics.counter('dedupe_keys_evicted_total', 'Keys forgotten before their horizon ran out, to keep within max_keys.');
    this.withoutIdCount = metrics.counter('dedupe_events_without_id_total', 'Events without the id_field, keyed by their fingerprint instead.');
    this.keysGauge = metrics.gauge('dedupe_keys', 'Keys remembered.');
    this.keysGauge.set(0);
  }

  /** Whether the key is live (a duplicate); if not, remembers it from `time` on. */
  seen(key: string, time: number): boolean {
    this.snapshots.settle();
    const first = this.keys.get(key);
    if (first !== undefined) {
      if (first + this.within >= this.watermark) return true;
      // Expired, not swept yet: the event is new, remembered at the map's end.
      this.keys.delete(key);
    }
    if (this.keys.size >= this.maxKeys) this.evictOne();
    this.keys.set(key, time);
    return false;
  }

  duplicate(): void {
    this.duplicates.inc();
  }

  withoutId(): void {
    this.withoutIdCount.inc();
    if (!this.withoutIdLogged) {
      this.withoutIdLogged = true;
      this.context.logger.warn({ metric: 'tributary_dedupe_events_without_id_total' }, 'dedupe: an event has no id_field: keyed by its fingerprint (fields) instead, counted (said once)');
    }
  }

  /** The watermark moved: expired keys at the head of the map go. The keys gauge is set here, not per event (a labelled series' set costs a hash of its labels). */
  advance(time: number): void {
    if (!(time > this.watermark)) return;
    this.snapshots.settle();
    this.watermark = time;
    const keys = this.keys;
    if (time === Infinity) {
      // The end of input: nothing can follow. Kept for the checkpoint of a stop, which sends no Infinity.
      keys.clear();
    } else {
      for (const [key, first] of keys) {
        if (first + this.within >= time) break;
        keys.delete(key);
      }
    }
    this.keysGauge.set(keys.size);
  }

  /** Over max_keys: the key first seen longest ago goes; counted only where it was still live. */
  private evictOne(): void {
    const [key, first] = this.keys.entries().next().value as [string, number];
    this.keys.delete(key);
    if (first + this.within < this.watermark) return; // expired already: no loss
    this.evicted.inc();
    this.evictions++;
    if ((this.evictions & (this.evictions - 1)) === 0) {
      this.context.logger.warn(
        { evictions: this.evictions, max_keys: this.maxKeys, metric: 'tributary_dedupe_keys_evicted_total' },
        'dedupe: max_keys reached: keys are forgotten before their horizon runs out (a copy of their events is passed on); raise max_keys or shorten within',
      );
    }
  }

  /** An erasure request: the user's keys go. Returns how many. */
  forget(userId: string): number {
    this.snapshots.settle();
    const head = `${userId.length}:${userId}`;
    let dropped = 0;
    for (const key of this.keys.keys()) {
      // The character after the user id is `#` (an id) or `=` (a fingerprint): a longer user id with this one as its prefix has another length.
      if (key.startsWith(head) && (key[head.length] === '#' || key[head.length] === '=')) {
        this.keys.delete(key);
        dropped++;
      }
    }
    this.keysGauge.set(this.keys.size);
    return dropped;
  }

  snapshot(): DedupeSnapshot | Promise<DedupeSnapshot> {
    const watermark = this.watermark;
    return this.snapshots.takeCopying(this.snapshotParts(watermark));
  }

  /** Copies the keys and times in parts (the map is bounded by max_keys), then encodes the times while records flow. */
  private *snapshotParts(watermark: number): CopyThenEncode<DedupeSnapshot> {
    const keys: string[] = [];
    const times = new Float64Array(this.keys.size);
    yield* eachOf(this.keys, ([key, time]) => {
      times[keys.length] = time;
      keys.push(key);
    });
    return (function* () {
      const [column] = yield* encodeColumns([times]);
      return { version: 1 as const, watermark: Number.isFinite(watermark) ? watermark : null, keys, times: column! };
    })();
  }

  restore(saved: DedupeSnapshot): void {
    const what = 'dedupe snapshot';
    if (saved === null || typeof saved !== 'object' || saved.version !== 1) throw new Error(`${what}: not a dedupe snapshot of version 1`);
    if (saved.watermark !== null && typeof saved.watermark !== 'number') throw new Error(`${what}: watermark is ${typeof saved.watermark}, expected a number or null`);
    const keys = decodeStrings(saved.keys, undefined, `${what}: keys`);
    const { times } = decodeNamedColumns(saved, ['times'], keys.length, what);
    this.snapshots.settle();
    this.keys.clear();
    for (let i = 0; i < keys.length; i++) this.keys.set(keys[i]!, times[i]!);
    this.watermark = saved.watermark ?? -Infinity;
    // Saved under a larger max_keys: the oldest go now, counted, as they would at the next event.
    while (this.keys.size > this.maxKeys) this.evictOne();
    this.keysGauge.set(this.keys.size);
  }
}

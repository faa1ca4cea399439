/**
 * The per-session event sequences the `gru` model reads: the last L events of each open session as
 * (type id, hashed category, time deltas, price), left-padded with zeros.
 */
import { checkListLengths, decodeColumn, decodeColumnOf, decodeStrings, eachOf, encodeNamedColumns, fnv1a, isSessionKeyOf, partsOf, sessionKey, type ClickEvent, type Column, type Counter } from 'tributary';
import { eventTypeIds, eventTypeVocabulary, stepFeatures } from './gru.js';

export interface SequenceSample {
  types: Int32Array;
  categories: Int32Array;
  steps: Float32Array;
}

export interface Step {
  type: number;
  category: number;
  /**
   * The stepFeatures values, then the event's time and its session's start then (ms, at TIME and START), to place a
   * late event and measure from a moved or merged start (NaN: not known, a snapshot from before they were kept). In
   * the one array of doubles: as two fields of the step they were two more objects a step (boxed numbers), and
   * SequenceTracker.push took a fifth more CPU time.
   */
  steps: [number, number, number, number, number];
}

const TIME = 3;
const START = 4;

/** The sequences as columns (see core/columns.ts): keys, each one's length, then the steps' fields, key after key. */
export interface SavedSequences {
  keys: string[];
  lengths: Column;
  types: Column;
  categories: Column;
  /** stepFeatures values a step. */
  steps: Column;
  /** The closed sequences kept for late events (see SequenceTracker.close), as rows of `keys`, in the order they closed; absent: none. */
  closedRows?: Column;
  /** Each closed row's keptUntil. */
  keptUntil?: Column;
  /** Each step's time and session start (see Step.steps); absent (older snapshots): not known. */
  times?: Column;
  starts?: Column;
}

/** A step as the first format saved it: without its times. */
export type FirstFormatStep = Pick<Step, 'type' | 'category'> & { steps: number[] };

/** A snapshot's sequences: columns, or the first format's [key, steps] each (restored still). */
export type SequencesState = SavedSequences | [string, FirstFormatStep[]][];

/**
 * Step features are log1p of seconds or of a price, scaled by this to about [0, 1] (an hour's gap
 * is 8.2 before scaling, a price of 3000 is 8), the order of the other inputs. Unscaled, they were
 * the GRU's largest inputs by far, and its learnt state hurt more than it helped: on REES46 its log
 * loss was worse than the constant base rate's (0.1711 against 0.1674), 0.1608 once scaled.
 */
const logScale = 1 / 8;

export function stepOf(event: ClickEvent, buckets: number, sincePrevious = event.session?.sincePrevious ?? 0): Step {
  const type = eventTypeIds.get(event.type) ?? eventTypeVocabulary - 1;
  // 1 is "no category"; hashed categories take 2..buckets+1 (0 is padding).
  const category = event.category ? 2 + (fnv1a(event.category) % buckets) : 1;
  const sinceStart = event.session?.sinceStart ?? 0;
  return {
    type,
    category,
    steps: [scaledSeconds(sincePrevious), scaledSeconds(sinceStart), Math.log1p(Math.max(0, event.price ?? 0)) * logScale, event.time, event.session?.start ?? NaN],
  };
}

function scaledSeconds(ms: number): number {
  return Math.log1p(Math.max(0, ms) / 1000) * logScale;
}

/** `step` follows `previous` in its session now (a late event placed before it, or a merge): its time since the previous event, from their times. */
function followsNow(step: Step, previous: Step): void {
  const gap = step.steps[TIME] - previous.steps[TIME];
  if (gap === gap) step.steps[0] = scaledSeconds(gap);
}

/** Its session starts at `start` now (a late event before it, or a merge into an earlier session): its time since the start, from that. */
function startsAt(step: Step, start: number): void {
  const since = step.steps[TIME] - start;
  if (since === since) {
    step.steps[1] = scaledSeconds(since);
    step.steps[START] = start;
  }
}

/**
 * Takes out of `kept` (keys by their keptUntil, in about that order) those whose keptUntil `time` has reached,
 * calling `forget` for each: up to the first not reached, or (`all`) wherever they are in the order.
 */
export function releaseReached(kept: Map<string, number>, time: number, all: boolean, forget: (key: string, keptUntil: number) => void): void {
  for (const [key, keptUntil] of kept) {
    if (keptUntil <= time) {
      kept.delete(key);
      forget(key, keptUntil);
    } else if (!all) return;
  }
}

/**
 * Two sequences' steps in event-time order (`a`'s first at equal times; a step of unknown time stays after the one
 * before it in its list), each step whose previous one changed measured from it.
 */
function mergeByTime(a: Step[], b: Step[]): Step[] {
  const out: Step[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const fromA = j >= b.length || (i < a.length && !(b[j]!.steps[TIME] < a[i]!.steps[TIME]));
    const step = fromA ? a[i++]! : b[j++]!;
    const sourcePrevious = fromA ? a[i - 2] : b[j - 2];
    const previous = out[out.length - 1];
    if (previous !== undefined && previous !== sourcePrevious) followsNow(step, previous);
    out.push(step);
  }
  return out;
}

/** Where a SequenceTracker counts the sequences its bound made it let go. */
export interface SequenceEvictions {
  /** Open sessions' sequences (the oldest first): the session's next prediction reads only the events since. */
  open: Counter;
  /** Closed sessions' sequences kept for late events, let go before their keptUntil: a late event's prediction reads only itself and those after. */
  closed?: Counter;
}

/**
 * Bounded sequences by key (session): at `maxKeys` kept, a new key first lets go of the closed sequence kept for
 * late events that closed first (the next to be let go anyway, and read only if a late event comes), else of the
 * oldest open one, as the sessionizer bounds its sessions. A closed session's may be kept for late events (close)
 * until the event time its summary says none joins it any more.
 */
export class SequenceTracker {
  private sequences = new Map<string, Step[]>();
  /** Keys of closed sequences kept, each with its keptUntil, in the order they closed (about keptUntil's). */
  private closed = new Map<string, number>();

  constructor(
    readonly length: number,
    readonly buckets: number,
    private readonly maxKeys: number,
    private readonly evictions?: SequenceEvictions,
  ) {}

  /**
   * Adds the event's step in event-time order, as an in-order stream would have it: a late event inside the span
   * goes among the earlier steps (one older than all `length` kept, if full, would have been cut: none), the steps
   * either side measured from it; a late event before the session's start moves every step's time since the start.
   */
  push(key: string, event: ClickEvent): void {
    let steps = this.sequences.get(key);
    if (!steps) {
      if (this.sequences.size >= this.maxKeys) this.evictOne();
      steps = [];
      this.sequences.set(key, steps);
    } else if (this.closed.size > 0) this.closed.delete(key); // closed, reopened by a late event: open until its next close
    const last = steps[steps.length - 1];
    const lastTime = last === undefined ? NaN : last.steps[TIME];
    if (!(event.time < lastTime)) {
      // Out of order (after a later event of its user, merged sessions' maybe), the sessionizer's time to the previous event may not be this sequence's previous.
      steps.push(lastTime === lastTime && event.session?.outOfOrder === true ? stepOf(event, this.buckets, event.time - lastTime) : stepOf(event, this.buckets));
    } else this.insert(steps, event);
    if (steps.length > this.length) steps.shift();
  }

  /** A late event before the last step: placed after the last step at or before its time. */
  private insert(steps: Step[], event: ClickEvent): void {
    let at = steps.length - 1;
    while (at > 0 && steps[at - 1]!.steps[TIME] > event.time) at--;
    const start = event.session?.start ?? NaN;
    if (start < steps[at]!.steps[START]) for (const step of steps) startsAt(step, start);
    // Older than every step kept: if they are the last `length`, an in-order stream would have cut it.
    if (at === 0 && steps.length >= this.length) return;
    const previous = at > 0 ? steps[at - 1]! : undefined;
    const step = previous !== undefined ? stepOf(event, this.buckets, event.time - previous.steps[TIME]) : stepOf(event, this.buckets);
    steps.splice(at, 0, step);
    followsNow(steps[at + 1]!, step);
  }

  /**
   * Session `from` was merged into `into`, which starts at `start` now: its steps join those of `into` in event-time
   * order (a merge keeps the earlier session's id, so theirs mostly come after; the caller pushes the merging
   * event's step first, as it bridged the gap between them), measured from `start` and from the step before each
   * now, the last `length` kept.
   */
  fold(from: string, into: string, start: number): void {
    const moved = this.sequences.get(from);
    if (moved === undefined || from === into) return;
    this.delete(from);
    for (const step of moved) startsAt(step, start);
    const steps = this.sequences.get(into);
    if (steps === undefined) {
      this.sequences.set(into, moved);
      return;
    }
    const merged = mergeByTime(steps, moved);
    if (merged.length > this.length) merged.splice(0, merged.length - this.length);
    this.sequences.set(into, merged);
  }

  /**
   * The session closed, and a late event may still join it until `keptUntil` (event time): its sequence is
   * kept till then, for such an event's prediction to read (see release).
   */
  close(key: string, keptUntil: number): void {
    if (!this.sequences.has(key)) return;
    this.closed.delete(key); // closed again: in order of closing
    this.closed.set(key, keptUntil);
  }

  /**
   * Lets go of closed sequences whose keptUntil `time` has passed: those first to close (`all`: every one,
   * wherever it closed; a closed session's keptUntil is about its close time plus the sessionizer's lateness,
   * so one due is seldom behind one that is not).
   */
  release(time: number, all = false): void {
    releaseReached(this.closed, time, all, (key) => this.sequences.delete(key));
  }

  /** Makes room for a new key (see the class): a kept closed sequence first, else the oldest open one; counted. */
  private evictOne(): void {
    const closed = this.closed.keys().next();
    if (!closed.done) {
      this.delete(closed.value);
      this.evictions?.closed?.inc();
      return;
    }
    this.sequences.delete(this.sequences.keys().next().value!);
    this.evictions?.open.inc();
  }

  /** The padded sequence of `key` as it stands. */
  sample(key: string): SequenceSample {
    const L = this.length;
    const out: SequenceSample = { types: new Int32Array(L), categories: new Int32Array(L), steps: new Float32Array(L * stepFeatures) };
    const steps = this.sequences.get(key) ?? [];
    const pad = L - steps.length;
    steps.forEach((step, i) => {
      out.types[pad + i] = step.type;
      out.categories[pad + i] = step.category;
      const at = (pad + i) * stepFeatures;
      const values = step.steps;
      out.steps[at] = values[0];
      out.steps[at + 1] = values[1];
      out.steps[at + 2] = values[2];
    });
    return out;
  }

  delete(key: string): void {
    this.sequences.delete(key);
    this.closed.delete(key);
  }

  /** An erasure request: every sequence of the user's sessions goes (keys are sessionKeys). Returns how many. */
  forgetUser(userId: string): number {
    let dropped = 0;
    for (const key of this.sequences.keys()) {
      if (!isSessionKeyOf(key, userId)) continue;
      this.delete(key);
      dropped++;
    }
    return dropped;
  }

  /**
   * Sequences saved by session id alone (older snapshots), keyed now by their user and id (sessionKey):
   * `userById` gives each id's user; an id it gives none (its session not kept) or null (two users' ids
   * alike, their events mixed) is let go, with no one user to key it by.
   */
  keyByUser(userById: ReadonlyMap<string, string | null>): void {
    const rekeyed = new Map<string, Step[]>();
    for (const [id, steps] of this.sequences) {
      const userId = userById.get(id);
      if (userId != null) rekeyed.set(sessionKey(userId, id), steps);
    }
    this.sequences = rekeyed;
    this.closed = new Map();
  }

  /** The sequences as columns, in parts (a snapshot in parts); values copied out, as push changes a session's in place. */
  *stateParts(): Generator<void, SavedSequences, void> {
    const keys: string[] = [];
    const lengths: number[] = [];
    const types: number[] = [];
    const categories: number[] = [];
    const steps: number[] = [];
    const times: number[] = [];
    const starts: number[] = [];
    const rowOf = new Map<string, number>();
    yield* eachOf(this.sequences, ([key, sequence]) => {
      if (this.closed.size > 0) rowOf.set(key, keys.length);
      keys.push(key);
      lengths.push(sequence.length);
      for (const step of sequence) {
        types.push(step.type);
        categories.push(step.category);
        const values = step.steps;
        steps.push(values[0], values[1], values[2]);
        times.push(values[TIME]);
        starts.push(values[START]);
      }
    });
    const columns = yield* encodeNamedColumns({ lengths: Float64Array.from(lengths), types: Float64Array.from(types), categories: Float64Array.from(categories), steps: Float64Array.from(steps), times: Float64Array.from(times), starts: Float64Array.from(starts) });
    if (this.closed.size === 0) return { keys, ...columns };
    const closedRows = Float64Array.from(this.closed.keys(), (key) => rowOf.get(key)!);
    const kept = yield* encodeNamedColumns({ closedRows, keptUntil: Float64Array.from(this.closed.values()) });
    return { keys, ...columns, ...kept };
  }

  /**
   * Puts back what stateParts() took (or the first format's [key, steps] list), in parts (see inTurns):
   * built aside, swapped in at the end; throws on columns that do not fit together.
   */
  *loadParts(state: SequencesState): Generator<void, void, void> {
    const sequences = new Map<string, Step[]>();
    const closed = new Map<string, number>();
    if (Array.isArray(state)) yield* eachOf(state, ([key, steps]) => sequences.set(key, steps.map(({ type, category, steps: values }): Step => ({ type, category, steps: [values[0]!, values[1]!, values[2]!, values[TIME] ?? NaN, values[START] ?? NaN] }))));
    else {
      const what = 'snapshot: sequences';
      const keys = decodeStrings(state.keys, undefined, `${what}: keys`);
      const lengths = decodeColumnOf(state.lengths, keys.length, `${what}: lengths`);
      const types = decodeColumn(state.types, `${what}: types`);
      checkListLengths(lengths, types.length, `${what}: types`);
      const categories = decodeColumnOf(state.categories, types.length, `${what}: categories`);
      const values = decodeColumnOf(state.steps, types.length * stepFeatures, `${what}: steps`);
      const times = state.times === undefined ? undefined : decodeColumnOf(state.times, types.length, `${what}: times`);
      const starts = state.starts === undefined ? undefined : decodeColumnOf(state.starts, types.length, `${what}: starts`);
      let at = 0;
      yield* partsOf(keys.length, (from, to) => {
        for (let i = from; i < to; i++) {
          const steps: Step[] = [];
          for (const end = at + lengths[i]!; at < end; at++) {
            const v = at * stepFeatures;
            steps.push({ type: types[at]!, category: categories[at]!, steps: [values[v]!, values[v + 1]!, values[v + 2]!, times?.[at] ?? NaN, starts?.[at] ?? NaN] });
          }
          sequences.set(keys[i]!, steps);
        }
      });
      if (state.closedRows !== undefined) {
        const rows = decodeColumn(state.closedRows, `${what}: closedRows`);
        const keptUntil = decodeColumnOf(state.keptUntil!, rows.length, `${what}: keptUntil`);
        for (let k = 0; k < rows.length; k++) {
          const row = rows[k]!;
          if (!(Number.isInteger(row) && row >= 0 && row < keys.length) || closed.has(keys[row]!)) throw new Error(`${what}: closedRows: ${row} at ${k}, expected a row below ${keys.length} not listed before`);
          closed.set(keys[row]!, keptUntil[k]!);
        }
      }
    }
    this.sequences = sequences;
    this.closed = closed;
  }
}

/**
 * The per-session event sequences the `gru` model reads: the last L events of each open session as
 * (type id, hashed category, time deltas, price), left-padded with zeros.
 */
import { checkListLengths, decodeColumn, decodeColumnOf, decodeStrings, eachOf, encodeNamedColumns, fnv1a, partsOf, sessionKey, type ClickEvent, type Column, type Counter } from 'tributary';
import { eventTypeIds, eventTypeVocabulary, stepFeatures } from './gru.js';

export interface SequenceSample {
  types: Int32Array;
  categories: Int32Array;
  steps: Float32Array;
}

export interface Step {
  type: number;
  category: number;
  steps: [number, number, number];
}

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
}

/** A snapshot's sequences: columns, or the first format's [key, steps] each (restored still). */
export type SequencesState = SavedSequences | [string, Step[]][];

/**
 * Step features are log1p of seconds or of a price, scaled by this to about [0, 1] (an hour's gap
 * is 8.2 before scaling, a price of 3000 is 8), the order of the other inputs. Unscaled, they were
 * the GRU's largest inputs by far, and its learnt state hurt more than it helped: on REES46 its log
 * loss was worse than the constant base rate's (0.1711 against 0.1674), 0.1608 once scaled.
 */
const logScale = 1 / 8;

export function stepOf(event: ClickEvent, buckets: number): Step {
  const type = eventTypeIds.get(event.type) ?? eventTypeVocabulary - 1;
  // 1 is "no category"; hashed categories take 2..buckets+1 (0 is padding).
  const category = event.category ? 2 + (fnv1a(event.category) % buckets) : 1;
  const sincePrevious = event.session?.sincePrevious ?? 0;
  const sinceStart = event.session?.sinceStart ?? 0;
  return {
    type,
    category,
    steps: [
      Math.log1p(Math.max(0, sincePrevious) / 1000) * logScale,
      Math.log1p(Math.max(0, sinceStart) / 1000) * logScale,
      Math.log1p(Math.max(0, event.price ?? 0)) * logScale,
    ],
  };
}

/**
 * Takes out of `kept` (keys by their keptUntil, in about that order) those whose keptUntil `time` has reached,
 * calling `forget` for each: up to the first not reached, or (`all`) wherever they are in the order.
 */
export function releaseReached(kept: Map<string, number>, time: number, all: boolean, forget: (key: string) => void): void {
  for (const [key, keptUntil] of kept) {
    if (keptUntil <= time) {
      kept.delete(key);
      forget(key);
    } else if (!all) return;
  }
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

  push(key: string, event: ClickEvent): void {
    let steps = this.sequences.get(key);
    if (!steps) {
      if (this.sequences.size >= this.maxKeys) this.evictOne();
      steps = [];
      this.sequences.set(key, steps);
    } else if (this.closed.size > 0) this.closed.delete(key); // closed, reopened by a late event: open until its next close
    steps.push(stepOf(event, this.buckets));
    if (steps.length > this.length) steps.shift();
  }

  /**
   * Session `from` was merged into `into`: its steps go after those of `into` (event-time order: a merge keeps
   * the earlier session's id, and the later one's events all come after the earlier's; the caller pushes the
   * merging event's step first, as it bridged the gap between them), the last `length` kept.
   */
  fold(from: string, into: string): void {
    const moved = this.sequences.get(from);
    if (moved === undefined || from === into) return;
    this.delete(from);
    const steps = this.sequences.get(into);
    if (steps === undefined) {
      this.sequences.set(into, moved);
      return;
    }
    for (const step of moved) steps.push(step);
    if (steps.length > this.length) steps.splice(0, steps.length - this.length);
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
      out.steps.set(step.steps, (pad + i) * stepFeatures);
    });
    return out;
  }

  delete(key: string): void {
    this.sequences.delete(key);
    this.closed.delete(key);
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
    const rowOf = new Map<string, number>();
    yield* eachOf(this.sequences, ([key, sequence]) => {
      if (this.closed.size > 0) rowOf.set(key, keys.length);
      keys.push(key);
      lengths.push(sequence.length);
      for (const step of sequence) {
        types.push(step.type);
        categories.push(step.category);
        steps.push(...step.steps);
      }
    });
    const columns = yield* encodeNamedColumns({ lengths: Float64Array.from(lengths), types: Float64Array.from(types), categories: Float64Array.from(categories), steps: Float64Array.from(steps) });
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
    if (Array.isArray(state)) yield* eachOf(state, ([key, steps]) => sequences.set(key, steps));
    else {
      const what = 'snapshot: sequences';
      const keys = decodeStrings(state.keys, undefined, `${what}: keys`);
      const lengths = decodeColumnOf(state.lengths, keys.length, `${what}: lengths`);
      const types = decodeColumn(state.types, `${what}: types`);
      checkListLengths(lengths, types.length, `${what}: types`);
      const categories = decodeColumnOf(state.categories, types.length, `${what}: categories`);
      const values = decodeColumnOf(state.steps, types.length * stepFeatures, `${what}: steps`);
      let at = 0;
      yield* partsOf(keys.length, (from, to) => {
        for (let i = from; i < to; i++) {
          const steps: Step[] = [];
          for (const end = at + lengths[i]!; at < end; at++) {
            const v = at * stepFeatures;
            steps.push({ type: types[at]!, category: categories[at]!, steps: [values[v]!, values[v + 1]!, values[v + 2]!] });
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

/**
 * A seeded, deterministic world of shoppers: the demo's, the tests' and the benchmarks' data.
 *
 * Each shopper has a latent purchase propensity and a churn hazard. They come back in sessions; a
 * session's intent (propensity plus noise) drives how much they browse one category, how often they
 * add to cart, and whether the session ends in a purchase. After each session a shopper leaves for
 * good with probability equal to their hazard, and a new shopper takes their place, so the
 * population stays at `users`. Events of all shoppers come out in event-time order (a heap of
 * per-shopper cursors). The same seed gives the same stream, event for event.
 */
import { decodeColumns, encodeColumns, partsOf, type ClickEvent, type Column } from 'tributary';

export interface ShopperWorldConfig {
  seed?: number;
  /** Shoppers active at any time. */
  users?: number;
  items?: number;
  categories?: number;
  /** Event time of the first events (ms). */
  start?: number;
  /** Mean gap between a shopper's sessions (ms). */
  meanReturnGap?: number;
  /** Mean time between events in a session (ms). */
  meanDwell?: number;
  /** Attach the generator's own session id (for data sets that carry one). */
  sessionIds?: boolean;
  /**
   * Called as each session's last event is generated, with what only the generator knows: the
   * ground truth a churn model's scores can be held against (bench/churn-ceiling.ts).
   */
  onSessionEnd?: (truth: SessionEndTruth) => void;
}

/** A session's end as the generator knows it: its shopper's latent return behaviour. */
export interface SessionEndTruth {
  userId: string;
  /** Event time of the session's last event. */
  end: number;
  /** P(the shopper leaves for good after this session). */
  hazard: number;
  /** Mean of the exponential part of the shopper's gap between sessions (ms). */
  meanGap: number;
}

/** Every return comes at least this long after the previous session's end. */
const minReturnGap = 60 * 60_000;

/**
 * The true P(no session of this shopper starts within `horizon` of the session's end): they leave
 * with `hazard`, else their next session starts after minReturnGap plus an exponential gap.
 */
export function trueChurnProbability(truth: SessionEndTruth, horizon: number): number {
  const stays = horizon <= minReturnGap ? 1 : Math.exp(-(horizon - minReturnGap) / truth.meanGap);
  return truth.hazard + (1 - truth.hazard) * stays;
}

/** A seeded generator of uniform numbers in [0, 1) whose state can be saved and set again. */
export interface Random {
  (): number;
  /** Its four words, to `load` into a generator of the same seed or any other. */
  state(): [number, number, number, number];
  load(words: readonly number[]): void;
}

/** sfc32: small, fast, and good enough for simulation; seeded through splitmix32. */
export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  const splitmix = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const random = (() => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  }) as Random;
  // Each call starts by reading the words as unsigned, so saved as unsigned they give the same numbers.
  random.state = () => [a >>> 0, b >>> 0, c >>> 0, d >>> 0];
  random.load = (words) => void ([a, b, c, d] = words as [number, number, number, number]);
  return random;
}

const eventTypes = ['view', 'cart', 'remove_from_cart', 'purchase'] as const;

/**
 * Where a world stands: enough to go on event for event as if it had never stopped, at a cost in its
 * `users`, not in the events it generated. The item catalogue is made again from the config. Numbers
 * as columns (encodeColumns): 20,000 shoppers as a list of JSON numbers were 3.3 MiB, built and
 * read back value by value.
 */
export interface ShopperWorldState {
  random: [number, number, number, number];
  nextShopperId: number;
  sessionCounter: number;
  /**
   * The heap of shoppers in its order, a column each of: id, propensity, hazard, meanGap, sessions,
   * current session's number (-1 without session ids), count of its events still to come.
   */
  shoppers: Column[];
  /** Those events, shopper after shopper, a column each of: time, type (index in eventTypes), item. */
  events: Column[];
}

/** The state as the first saved worlds held it (a checkpoint of 7c98cd0): the same numbers, in one flat list per shopper. */
export interface FlatShopperWorldState {
  random: [number, number, number, number];
  nextShopperId: number;
  sessionCounter: number;
  shoppers: number[];
}

const shopperFields = 7;
const eventFields = 3;

/** Runs a generator's parts at once (a state taken where the caller cannot wait: a source's position). */
function atOnce<T>(work: Generator<void, T, void>): T {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
  }
}

/** A flat state's numbers as the columns a state holds. */
function flatToColumns(values: readonly number[]): [Float64Array[], Float64Array[]] {
  let shoppers = 0;
  let events = 0;
  for (let k = 0; k < values.length; shoppers++) {
    const count = values[k + shopperFields - 1]!;
    if (!Number.isInteger(count) || count < 1) throw new Error('synthetic world: not a saved world');
    events += count;
    k += shopperFields + eventFields * count;
  }
  const perShopper = Array.from({ length: shopperFields }, () => new Float64Array(shoppers));
  const perEvent = Array.from({ length: eventFields }, () => new Float64Array(events));
  for (let k = 0, s = 0, e = 0; k < values.length; s++) {
    for (let f = 0; f < shopperFields; f++) perShopper[f]![s] = values[k++]!;
    for (let i = perShopper[6]![s]!; i > 0; i--, e++) for (let f = 0; f < eventFields; f++) perEvent[f]![e] = values[k++]!;
  }
  return [perShopper, perEvent];
}

interface Shopper {
  id: number;
  propensity: number;
  hazard: number;
  meanGap: number;
  sessions: number;
  /** Pending events of the current session, in time order; the heap key is pending[cursor].time. */
  pending: ClickEvent[];
  cursor: number;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export class ShopperWorld {
  private readonly random: Random;
  private readonly users: number;
  private readonly items: number;
  private readonly categories: number;
  private readonly start: number;
  private readonly meanReturnGap: number;
  private readonly meanDwell: number;
  private readonly sessionIds: boolean;
  private readonly onSessionEnd: ((truth: SessionEndTruth) => void) | undefined;
  private readonly itemCategory: Int32Array;
  private readonly itemPrice: Float64Array;
  private readonly categoryItems: number[][];
  private readonly heap: Shopper[] = [];
  private nextShopperId = 0;
  private sessionCounter = 0;

  /**
   * The world with its first shoppers (`firstShoppers` false: none yet, for build()). 20,000 of
   * them cost ~0.2 s in one go: a daemon builds its world with build(), in parts.
   */
  constructor(config: ShopperWorldConfig = {}, firstShoppers = true) {
    this.random = createRandom(config.seed ?? 42);
    this.users = config.users ?? 1000;
    this.items = config.items ?? 5000;
    this.categories = config.categories ?? 50;
    this.start = config.start ?? Date.UTC(2024, 0, 1);
    this.meanReturnGap = config.meanReturnGap ?? 2 * 86_400_000;
    this.meanDwell = config.meanDwell ?? 40_000;
    this.sessionIds = config.sessionIds ?? false;
    this.onSessionEnd = config.onSessionEnd;
    this.itemCategory = new Int32Array(this.items);
    this.itemPrice = new Float64Array(this.items);
    this.categoryItems = Array.from({ length: this.categories }, () => []);
    const categoryPriceLevel = Array.from({ length: this.categories }, () => 2 + this.random() * 3);
    for (let item = 0; item < this.items; item++) {
      // Skewed category sizes: a few large categories, many small ones.
      const category = Math.min(this.categories - 1, Math.floor(this.categories * this.random() ** 2));
      this.itemCategory[item] = category;
      this.itemPrice[item] = Math.round(Math.exp(categoryPriceLevel[category]! + this.normal() * 0.6) * 100) / 100;
      this.categoryItems[category]!.push(item);
    }
    for (let c = 0; c < this.categories; c++) if (this.categoryItems[c]!.length === 0) this.categoryItems[c]!.push(c % this.items);
    if (firstShoppers) atOnce(this.addFirstShoppers());
  }

  /**
   * A world in parts (run by inTurns, the event loop turning between them): its first shoppers, or
   * where `saved` (state() of a world of the same config) stood; the next event is then the one
   * that world's would have been. Throws on a damaged state.
   */
  static *build(config: ShopperWorldConfig, saved?: ShopperWorldState | FlatShopperWorldState): Generator<void, ShopperWorld, void> {
    const world = new ShopperWorld(config, false);
    yield* saved ? world.restore(saved) : world.addFirstShoppers();
    return world;
  }

  private *addFirstShoppers(): Generator<void, void, void> {
    yield* partsOf(this.users, (from, to) => {
      for (let i = from; i < to; i++) this.addShopper(this.start + this.random() * 86_400_000);
    });
  }

  private normal(): number {
    // Box-Muller; one value per call keeps the stream simple and deterministic.
    const u = 1 - this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.random());
  }

  private exponential(mean: number): number {
    return -Math.log(1 - this.random()) * mean;
  }

  private addShopper(firstSession: number): void {
    const engagement = this.normal();
    const shopper: Shopper = {
      id: this.nextShopperId++,
      propensity: this.normal() * 1.1 + 0.4 * engagement,
      hazard: sigmoid(-1.6 - 0.9 * engagement),
      meanGap: this.meanReturnGap * Math.exp(this.normal() * 0.5 - 0.4 * engagement),
      sessions: 0,
      pending: [],
      cursor: 0,
    };
    this.planSession(shopper, firstSession);
    this.push(shopper);
  }

  /** Writes the shopper's next session into `pending`, starting at `at`. */
  private planSession(shopper: Shopper, at: number): void {
    const random = this.random;
    const userId = `u${shopper.id}`;
    const sessionId = this.sessionIds ? `s${this.sessionCounter++}` : undefined;
    shopper.sessions++;
    const intent = sigmoid(shopper.propensity - 3.9 + this.normal() * 0.9 + Math.min(shopper.sessions, 5) * 0.1);
    const buyer = random() < intent;
    const focus = Math.min(this.categories - 1, Math.floor(this.categories * random() ** 2));
    const length = 1 + Math.floor(this.exponential(buyer ? 7 : 3.5));
    const dwell = this.meanDwell * (buyer ? 1.4 : 1);
    const events: ClickEvent[] = [];
    const cart: number[] = [];
    let time = at;
    const emit = (type: string, item: number): void => {
      const event: ClickEvent = {
        kind: 'event',
        userId,
        time: Math.round(time),
        type,
        itemId: `i${item}`,
        category: `c${this.itemCategory[item]}`,
        price: this.itemPrice[item]!,
      };
      if (sessionId !== undefined) event.sessionId = sessionId;
      events.push(event);
      time += this.exponential(dwell) + 1000;
    };
    const pickItem = (): number => {
      const inFocus = random() < 0.35 + 0.5 * intent;
      const pool = inFocus ? this.categoryItems[focus]! : undefined;
      return pool ? pool[Math.floor(random() * pool.length)]! : Math.floor(random() * this.items);
    };
    for (let step = 0; step < length; step++) {
      const item = pickItem();
      emit('view', item);
      if (random() < (buyer ? 0.3 : 0.02 + 0.1 * intent)) {
        emit('cart', item);
        cart.push(item);
      } else if (cart.length > 0 && random() < (buyer ? 0.04 : 0.12)) {
        emit('remove_from_cart', cart.pop()!);
      }
    }
    if (buyer) {
      if (cart.length === 0) {
        const item = pickItem();
        emit('cart', item);
        cart.push(item);
      }
      for (const item of cart) emit('purchase', item);
    }
    shopper.pending = events;
    shopper.cursor = 0;
  }

  /** Where the world stands (see ShopperWorldState), at once: a source's position() must return it now. */
  state(): ShopperWorldState {
    return atOnce(this.stateParts());
  }

  /**
   * state() in parts, yielding between blocks of shoppers and between columns (see PartedSnapshots):
   * for a position taken in parts, once the Source API allows one (see synthetic.ts). The world must
   * not move (next()) until it is done.
   */
  *stateParts(): Generator<void, ShopperWorldState, void> {
    const heap = this.heap;
    const scalars = { random: this.random.state(), nextShopperId: this.nextShopperId, sessionCounter: this.sessionCounter };
    let events = 0;
    yield* partsOf(heap.length, (from, to) => {
      for (let s = from; s < to; s++) events += heap[s]!.pending.length - heap[s]!.cursor;
    });
    const perShopper = Array.from({ length: shopperFields }, () => new Float64Array(heap.length));
    const [id, propensity, hazard, meanGap, sessions, sessionNumber, count] = perShopper as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
    const perEvent = Array.from({ length: eventFields }, () => new Float64Array(events));
    const [time, type, item] = perEvent as [Float64Array, Float64Array, Float64Array];
    let e = 0;
    yield* partsOf(heap.length, (from, to) => {
      for (let s = from; s < to; s++) {
        const shopper = heap[s]!;
        const { pending, cursor } = shopper;
        const sessionId = pending[cursor]!.sessionId;
        id[s] = shopper.id;
        propensity[s] = shopper.propensity;
        hazard[s] = shopper.hazard;
        meanGap[s] = shopper.meanGap;
        sessions[s] = shopper.sessions;
        sessionNumber[s] = sessionId === undefined ? -1 : Number(sessionId.slice(1));
        count[s] = pending.length - cursor;
        for (let i = cursor; i < pending.length; i++, e++) {
          const event = pending[i]!;
          time[e] = event.time;
          type[e] = eventTypes.indexOf(event.type as (typeof eventTypes)[number]);
          item[e] = Number(event.itemId!.slice(1));
        }
      }
    });
    return {
      ...scalars,
      shoppers: yield* encodeColumns(perShopper),
      events: yield* encodeColumns(perEvent),
    };
  }

  /** Sets a saved state, in parts (see build); the shoppers as they were, in the saved heap order. */
  private *restore(state: ShopperWorldState | FlatShopperWorldState): Generator<void, void, void> {
    const what = 'synthetic world';
    const [perShopper, perEvent] =
      'events' in state && Array.isArray(state.events)
        ? [decodeColumns(state.shoppers, shopperFields, undefined, `${what}: shoppers`), decodeColumns(state.events, eventFields, undefined, `${what}: events`)]
        : flatToColumns((state as FlatShopperWorldState).shoppers);
    const [id, propensity, hazard, meanGap, sessions, sessionNumber, count] = perShopper as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
    const [time, type, item] = perEvent as [Float64Array, Float64Array, Float64Array];
    const shoppers = id.length;
    const events = time.length;
    // Each shopper has at least one event to come, and the counts add up to the events' rows.
    let counted = 0;
    for (let s = 0; s < shoppers; s++) {
      const n = count[s]!;
      if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: shopper ${s} has ${n} events to come`);
      counted += n;
    }
    if (counted !== events) throw new Error(`${what}: the shoppers' event counts add up to ${counted}, the events' columns hold ${events}`);
    for (let e = 0; e < events; e++) {
      const t = type[e]!;
      const at = item[e]!;
      if (!(Number.isInteger(t) && t >= 0 && t < eventTypes.length)) throw new Error(`${what}: event ${e} has type ${t}`);
      if (!(Number.isInteger(at) && at >= 0 && at < this.items)) throw new Error(`${what}: event ${e} has item ${at}, of a catalogue of ${this.items}`);
    }
    this.random.load(state.random);
    this.nextShopperId = state.nextShopperId;
    this.sessionCounter = state.sessionCounter;
    this.heap.length = 0;
    let e = 0;
    yield* partsOf(shoppers, (from, to) => {
      for (let s = from; s < to; s++) {
        const userId = `u${id[s]}`;
        const sessionId = sessionNumber[s]! >= 0 ? `s${sessionNumber[s]}` : undefined;
        const pending: ClickEvent[] = new Array(count[s]!);
        for (let i = 0; i < pending.length; i++, e++) {
          const at = item[e]!;
          const event: ClickEvent = { kind: 'event', userId, time: time[e]!, type: eventTypes[type[e]!]!, itemId: `i${at}`, category: `c${this.itemCategory[at]}`, price: this.itemPrice[at]! };
          if (sessionId !== undefined) event.sessionId = sessionId;
          pending[i] = event;
        }
        // In the saved order, which is a heap's: the order events come out in depends on it (ties).
        this.heap.push({ id: id[s]!, propensity: propensity[s]!, hazard: hazard[s]!, meanGap: meanGap[s]!, sessions: sessions[s]!, pending, cursor: 0 });
      }
    });
  }

  /** The next event in event-time order. The world never runs dry: churned shoppers are replaced. */
  next(): ClickEvent {
    const shopper = this.heap[0]!;
    const event = shopper.pending[shopper.cursor++]!;
    if (shopper.cursor >= shopper.pending.length) {
      const end = event.time;
      this.onSessionEnd?.({ userId: event.userId, end, hazard: shopper.hazard, meanGap: shopper.meanGap });
      if (this.random() < shopper.hazard) {
        // Churned: never seen again. A newcomer arrives within the next return gap.
        this.pop();
        this.addShopper(end + this.exponential(this.meanReturnGap / 2) + 60_000);
      } else {
        this.planSession(shopper, end + this.exponential(shopper.meanGap) + minReturnGap);
        this.siftDown(0);
      }
    } else {
      this.siftDown(0);
    }
    return event;
  }

  private key(shopper: Shopper): number {
    return shopper.pending[shopper.cursor]!.time;
  }

  /** Ties break on shopper id so the order never depends on heap layout alone. */
  private less(a: Shopper, b: Shopper): boolean {
    const ka = this.key(a);
    const kb = this.key(b);
    return ka < kb || (ka === kb && a.id < b.id);
  }

  private push(shopper: Shopper): void {
    const heap = this.heap;
    heap.push(shopper);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && this.less(heap[left]!, heap[smallest]!)) smallest = left;
      if (right < heap.length && this.less(heap[right]!, heap[smallest]!)) smallest = right;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}

/**
 * Helpers shared by the feature operators: appending a named block to an event's feature vector, and
 * resolving feature names (with `*` wildcards) to indices. Both cache by the identity of the incoming
 * names array, which every event of a pipeline shares, so the per-event path allocates one values
 * array per event, not one per block.
 */
import type { ClickEvent, FeatureVector } from 'tributary';

/**
 * How many floats the blocks of one chain append in all, learned from the events that went through
 * it. Symbol-keyed on the vectors a BlockAppender started, so JSON and the sinks never see it.
 */
interface Layout {
  width: number;
}

const LAYOUT: unique symbol = Symbol('tributary.features.layout');

interface OwnVector extends FeatureVector {
  [LAYOUT]?: Layout;
}

const SLAB_BYTES = 1 << 16;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/**
 * A zeroed Float32Array of `width` values carved from a shared 64 KiB slab. Small typed arrays each
 * with their own ArrayBuffer cost an off-heap allocation and push V8 into frequent full GCs (it was
 * most of the time of the feature chain); views of a slab are plain heap objects. Slabs are never
 * reused, so a new view is all zeros. The price: a vector kept long after its event keeps its slab
 * alive, so keep a `slice()` instead.
 */
function allocate(width: number): Float32Array {
  const bytes = width * 4;
  if (bytes > SLAB_BYTES / 4) return new Float32Array(width);
  if (slabUsed + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const values = new Float32Array(slab, slabUsed, width);
  slabUsed += bytes;
  return values;
}

/**
 * Appends a fixed block of named features to `event.features`, keeping the names array shared.
 *
 * The first block of a chain makes each event's one values array as wide as every block of the chain
 * together (learned from the first event), and the later blocks write into it in place: between
 * blocks `values` is longer than `names` (zeros past the names), after the last block it is exactly
 * as long. One Float32Array per event instead of one per block: the views were a third of the chain's
 * allocations, and each event's are kept alive until its source batch is done.
 */
export class BlockAppender {
  readonly names: readonly string[];
  readonly width: number;
  /** Where the block of the last `append` starts in its values. */
  offset = 0;
  private lastIn: readonly string[] | undefined;
  private lastOut: readonly string[] = [];
  /** The layout of the vectors this block starts (when it is the first block of its chain)... */
  private readonly layout: Layout;
  /** ...and of those it makes for events whose vector another operator made. */
  private readonly adopted: Layout = { width: 0 };

  constructor(names: readonly string[]) {
    this.names = names;
    this.width = names.length;
    this.layout = { width: names.length };
  }

  /** Returns the event's values array (zeros in this block, which starts at `this.offset`). */
  append(event: ClickEvent): Float32Array {
    const previous = event.features as OwnVector | undefined;
    if (previous === undefined) {
      const layout = this.layout;
      const values = allocate(layout.width);
      event.features = { names: this.names, values, [LAYOUT]: layout } as OwnVector;
      this.offset = 0;
      return values;
    }
    const names = previous.names;
    if (names !== this.lastIn) {
      const seen = new Set(names);
      for (const name of this.names) {
        if (seen.has(name)) throw new Error(`feature '${name}' is already in the vector (two blocks with the same names: set a different prefix)`);
      }
      this.lastIn = names;
      this.lastOut = Object.freeze([...names, ...this.names]);
    }
    const used = names.length;
    const end = used + this.width;
    const layout = previous[LAYOUT];
    const old = previous.values;
    this.offset = used;
    if (layout !== undefined) {
      // Our own vector (made by append): updated in place rather than replaced.
      if (end > layout.width) layout.width = end; // the next events' vectors start this wide
      previous.names = this.lastOut;
      if (end <= old.length) return old; // room was reserved: this block's floats are still 0
      const values = allocate(end);
      values.set(old.length > used ? old.subarray(0, used) : old);
      previous.values = values; // the old view stays valid for whoever kept it
      return values;
    }
    // Another operator's vector: left as it is; the event gets a new one of ours.
    const adopted = this.adopted;
    if (end > adopted.width) adopted.width = end;
    const values = allocate(adopted.width);
    values.set(old.length > used ? old.subarray(0, used) : old);
    event.features = { names: this.lastOut, values, [LAYOUT]: adopted } as OwnVector;
    return values;
  }
}

/** The largest finite Float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * `x` within the range of a feature vector's Float32 values: a larger magnitude (an accepted price of
 * 1e39, a sum of large ones) becomes the largest Float32 of its sign, where it would be Infinity, which
 * poisons every running statistic after it (standardize). NaN stays NaN. For blocks' values that grow
 * with the data (prices and their sums); counts and times stay far inside the range.
 */
export function inFloat32Range(x: number): number {
  return x > FLOAT32_MAX ? FLOAT32_MAX : x < -FLOAT32_MAX ? -FLOAT32_MAX : x;
}

/** A pattern with `*` as the whole names it matches. */
function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Indices of the features a transform applies to, resolved once per names array. Exact names
 * missing from the vector, and wildcards that match none of its names (`s_view_prices_*`, a typo),
 * are reported once through `onMissing` (a config mistake, not bad data).
 */
export class NameResolver {
  private lastNames: readonly string[] | undefined;
  private lastIndices: Int32Array = new Int32Array(0);
  /** The exact names, in the order given (reported missing in it). */
  private readonly exact: readonly string[];
  private readonly exactSet: ReadonlySet<string>;
  /** Each `*` pattern with its compiled form (compiled once per operator). */
  private readonly wildcards: readonly [string, RegExp][];
  private readonly onMissing: (missing: string[]) => void;

  constructor(patterns: readonly string[], onMissing: (missing: string[]) => void) {
    this.exact = patterns.filter((p) => !p.includes('*'));
    this.exactSet = new Set(this.exact);
    this.wildcards = patterns.filter((p) => p.includes('*')).map((p) => [p, wildcard(p)]);
    this.onMissing = onMissing;
  }

  private matches(name: string): boolean {
    return this.exactSet.has(name) || this.wildcards.some(([, re]) => re.test(name));
  }

  indices(names: readonly string[]): Int32Array {
    if (names === this.lastNames) return this.lastIndices;
    const found: number[] = [];
    for (let i = 0; i < names.length; i++) if (this.matches(names[i]!)) found.push(i);
    const present = new Set(names);
    const missing = this.exact.filter((name) => !present.has(name));
    for (const [pattern, re] of this.wildcards) if (!names.some((name) => re.test(name))) missing.push(pattern);
    if (missing.length > 0) this.onMissing(missing);
    this.lastNames = names;
    this.lastIndices = Int32Array.from(found);
    return this.lastIndices;
  }
}

/** Names of the features selected in `names`, for state keyed by name (snapshots). */
export function selectedNames(names: readonly string[], indices: Int32Array): string[] {
  return Array.from(indices, (i) => names[i]!);
}

/**
 * Appending a named block of features to each event's feature vector: what every feature operator
 * does, built-in or a user's. It caches by the identity of the incoming names array, which every
 * event of a pipeline shares, so the per-event path allocates one values array per event, not one per
 * block.
 */
import type { ClickEvent, FeatureVector } from './events.js';

/**
 * How many floats the blocks of one chain append in all, learned from the events that went through
 * it. Symbol-keyed on the vectors a FeatureBlock started, so JSON and the sinks never see it.
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

/** The largest finite Float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * `x` within the range of a feature vector's Float32 values: a larger magnitude (an accepted price of
 * 1e39, a sum of large ones) becomes the largest Float32 of its sign, where the Float32Array would
 * hold Infinity, which poisons every running statistic after it (standardize) and every model weight
 * it meets. NaN stays NaN. For a block's values that grow with the data (prices and their sums,
 * amounts, byte counts): `values[block.offset] = inFloat32Range(price)`; counts and times stay far
 * inside the range.
 */
export function inFloat32Range(x: number): number {
  return x > FLOAT32_MAX ? FLOAT32_MAX : x < -FLOAT32_MAX ? -FLOAT32_MAX : x;
}

/**
 * A fixed block of named features that a feature operator appends to each event's `features`: make
 * one per operator instance with the block's names, then per event `const values = block.append(event)`
 * and write the block's values at `values[block.offset + k]` (`k` the index in `names`; they start at 0).
 *
 * Every event of the chain shares one names array (its identity is what later stages and the models
 * look their columns up by), and the blocks of a chain share each event's one values array: the first
 * block makes it as wide as every block of the chain together (learned from the first event), and the
 * later blocks write into it in place, so between blocks `values` is longer than `names` (zeros past
 * the names), after the last block exactly as long. One Float32Array per event instead of one per
 * block: the views were a third of the built-in chain's allocations, and each event's are kept alive
 * until its source batch is done. A vector another operator set by hand gets a new one of these
 * (its values copied), which the blocks after it then share.
 *
 * A name already in the incoming vector makes `append` throw (the event is dead-lettered with the
 * reason); declare the names on the plugin's spec (`featureNames`) and `validate` says it first.
 */
export class FeatureBlock {
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

  /** `names`: the block's feature names, in order, each once. */
  constructor(names: readonly string[]) {
    const seen = new Set<string>();
    for (const name of names) {
      if (seen.has(name)) throw new Error(`feature '${name}' is twice in the block's names`);
      seen.add(name);
    }
    // The first block's names are every event's names array: frozen, as those of the later blocks are.
    this.names = Object.isFrozen(names) ? names : Object.freeze([...names]);
    this.width = names.length;
    this.layout = { width: names.length };
  }

  /**
   * Appends the block to `event.features` (making it if the event has none) and returns the event's
   * values array, zeros where this block goes: from `this.offset`, `width` values.
   */
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
        if (seen.has(name)) throw new Error(`feature '${name}' is already in the vector: two blocks append it; give one of them other names`);
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

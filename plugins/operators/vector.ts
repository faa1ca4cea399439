/**
 * Helpers shared by the feature operators: appending a named block to an event's feature vector, and
 * resolving feature names (with `*` wildcards) to indices. Both cache by the identity of the incoming
 * names array, which every event of a pipeline shares, so the per-event path allocates only the
 * values array it must.
 */
import type { ClickEvent, FeatureVector } from 'tributary';

/**
 * Where a vector's reserved room ends (in floats): a later block that fits is a wider view of the same
 * memory, not a copy. Symbol-keyed, so JSON and the sinks never see it.
 */
const RESERVED: unique symbol = Symbol('tributary.features.reserved');

interface ReservedVector extends FeatureVector {
  [RESERVED]?: number;
}

/** Widest vector seen so far: a new vector reserves this much, so the later blocks fit in place. */
let widthHint = 64;

const SLAB_BYTES = 1 << 16;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/**
 * A Float32Array of `width` values with room for `reserve`, carved from a shared 64 KiB slab. Small
 * typed arrays each with their own ArrayBuffer cost an off-heap allocation and push V8 into frequent
 * full GCs (it was most of the time of the feature chain); views of a slab are plain heap objects.
 * The price: a vector kept long after its event keeps its slab alive, so keep a `slice()` instead.
 */
function allocate(width: number, reserve: number): Float32Array {
  const bytes = reserve * 4;
  if (bytes > SLAB_BYTES / 4) return new Float32Array(new ArrayBuffer(bytes), 0, width);
  if (slabUsed + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const values = new Float32Array(slab, slabUsed, width);
  slabUsed += bytes;
  return values;
}

/** Appends a fixed block of named features to `event.features`, keeping the names array shared. */
export class BlockAppender {
  readonly names: readonly string[];
  readonly width: number;
  private lastIn: readonly string[] | undefined;
  private lastOut: readonly string[] = [];

  constructor(names: readonly string[]) {
    this.names = names;
    this.width = names.length;
  }

  /** Returns the event's new values array (zeros in this block); it starts at `values.length - width`. */
  append(event: ClickEvent): Float32Array {
    const previous = event.features as ReservedVector | undefined;
    if (previous === undefined) {
      const reserve = Math.max(widthHint, this.width);
      const values = allocate(this.width, reserve);
      event.features = { names: this.names, values, [RESERVED]: reserve } as ReservedVector;
      return values;
    }
    if (previous.names !== this.lastIn) {
      const seen = new Set(previous.names);
      for (const name of this.names) {
        if (seen.has(name)) throw new Error(`feature '${name}' is already in the vector (two blocks with the same names: set a different prefix)`);
      }
      this.lastIn = previous.names;
      this.lastOut = Object.freeze([...previous.names, ...this.names]);
    }
    const old = previous.values;
    const width = old.length + this.width;
    const reserved = previous[RESERVED];
    let values: Float32Array;
    let reserve: number;
    if (reserved !== undefined && width <= reserved) {
      // Room was reserved after the old values: widen the view; the new block's floats are still 0.
      values = new Float32Array(old.buffer, old.byteOffset, width);
      reserve = reserved;
    } else {
      if (width > widthHint) widthHint = Math.min(width, 1 << 16);
      reserve = width;
      values = allocate(width, reserve);
      values.set(old);
    }
    if (reserved !== undefined) {
      // Our own vector object (made by append): updated in place rather than replaced, one object
      // fewer per block per event. Its old values view stays valid for whoever kept it.
      previous.names = this.lastOut;
      previous.values = values;
      previous[RESERVED] = reserve;
    } else {
      event.features = { names: this.lastOut, values, [RESERVED]: reserve } as ReservedVector;
    }
    return values;
  }
}

/** `s_*` and exact names to a matcher; compiled once per operator. */
export function nameMatcher(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set<string>();
  const wild: RegExp[] = [];
  for (const pattern of patterns) {
    if (pattern.includes('*')) wild.push(new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`));
    else exact.add(pattern);
  }
  return (name) => exact.has(name) || wild.some((re) => re.test(name));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Indices of the features a transform applies to, resolved once per names array. Exact names
 * missing from the vector are reported once through `onMissing` (a config mistake, not bad data).
 */
export class NameResolver {
  private lastNames: readonly string[] | undefined;
  private lastIndices: Int32Array = new Int32Array(0);
  private readonly matches: (name: string) => boolean;
  private readonly exact: readonly string[];
  private readonly onMissing: (missing: string[]) => void;

  constructor(patterns: readonly string[], onMissing: (missing: string[]) => void) {
    this.matches = nameMatcher(patterns);
    this.exact = patterns.filter((p) => !p.includes('*'));
    this.onMissing = onMissing;
  }

  indices(names: readonly string[]): Int32Array {
    if (names === this.lastNames) return this.lastIndices;
    const found: number[] = [];
    for (let i = 0; i < names.length; i++) if (this.matches(names[i]!)) found.push(i);
    const present = new Set(names);
    const missing = this.exact.filter((name) => !present.has(name));
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

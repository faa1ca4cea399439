/**
 * Helpers shared by the feature operators: appending a named block to an event's feature vector, and
 * resolving feature names (with `*` wildcards) to indices. Both cache by the identity of the incoming
 * names array, which every event of a pipeline shares, so the per-event path allocates only the
 * values array it must.
 */
import type { ClickEvent } from 'tributary';

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

  /** Returns the event's new values array; this block starts at `values.length - width`. */
  append(event: ClickEvent): Float32Array {
    const previous = event.features;
    if (previous === undefined) {
      const values = new Float32Array(this.width);
      event.features = { names: this.names, values };
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
    const values = new Float32Array(previous.values.length + this.width);
    values.set(previous.values);
    event.features = { names: this.lastOut, values };
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

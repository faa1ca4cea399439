/**
 * Helpers shared by the feature operators (appending a block is core's FeatureBlock): Float32 range,
 * and resolving feature names (with `*` wildcards) to indices, cached by the identity of the incoming
 * names array, which every event of a pipeline shares.
 */

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

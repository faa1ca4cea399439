/**
 * Selecting features of an event's vector by name, `*` wildcards allowed: what every transform
 * operator (one that edits features in place, as the built-in log1p, standardize and clip do) does,
 * built-in or a user's. Resolved once per names array: every event of a pipeline shares one (see
 * FeatureBlock), so the per-event path is one identity comparison.
 */

/** A pattern with `*` as the whole names it matches. */
function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The features a transform applies to, given as names with `*` as a wildcard (`s_*`,
 * `s_view_price_*`, `u_events`): make one per operator instance with the config's list, then per
 * event `const indices = selector.indices(event.features.names)` and change `values[indices[k]]` in
 * place. The indices are in the vector's order, each once however many patterns match it.
 *
 * They are resolved again only when an event brings a names array other than the last one (by
 * identity; every event of a pipeline shares one), so keep one selector per instance and do not
 * change the returned array: it is the one handed out for every event with those names. An exact name
 * missing from the vector, or a wildcard that matches none of its names (`s_view_prices_*`, a typo), is
 * handed to `onMissing` once per names array, in the order given (a config mistake, not bad data: log it).
 */
export class FeatureSelector {
  private lastNames: readonly string[] | undefined;
  private lastIndices: Int32Array = new Int32Array(0);
  /** The exact names, in the order given (reported missing in it). */
  private readonly exact: readonly string[];
  private readonly exactSet: ReadonlySet<string>;
  /** Each `*` pattern with its compiled form (compiled once per operator). */
  private readonly wildcards: readonly [string, RegExp][];
  private readonly onMissing: (missing: string[]) => void;

  /** `patterns`: feature names, `*` matching any run of characters (`*` alone: every feature). */
  constructor(patterns: readonly string[], onMissing: (missing: string[]) => void) {
    this.exact = patterns.filter((p) => !p.includes('*'));
    this.exactSet = new Set(this.exact);
    this.wildcards = patterns.filter((p) => p.includes('*')).map((p) => [p, wildcard(p)]);
    this.onMissing = onMissing;
  }

  private matches(name: string): boolean {
    return this.exactSet.has(name) || this.wildcards.some(([, re]) => re.test(name));
  }

  /** Indices into `names` (and the event's `values`) of the features selected, in the vector's order. */
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

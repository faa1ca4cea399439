/**
 * Online standardisation of feature vectors (Welford's running mean and sample variance, n - 1), clipped to
 * +-5 standard deviations so one outlier cannot blow up a step. It is updated on every predicted
 * sample (no label needed, so no leakage) before the sample is standardised. A feature the sample lacks
 * (one the model knows that its input no longer has) is standardised to 0, i.e. read at its running mean,
 * and leaves that feature's statistics as they were: as River's scaler and VW skip an absent feature,
 * where a raw 0 would shift its mean and variance and give it the value (0 - mean) / sd. A value that is not
 * finite (NaN, +-Infinity: a user's stage, a ratio over 0) is read alike, and counted apart: read as a raw 0
 * (as it was until 2026-12-07) it moved the statistics as a true 0 would.
 */
import { spreadBeyondRounding } from '../operators/standardize.js';

export interface NormaliserState {
  n: number;
  mean: number[];
  m2: number[];
  /** Per feature, the samples that lacked it (its own count is n minus these); absent where none did. */
  absent?: number[];
  /** Per feature, the samples whose value was not finite (NaN, +-Infinity), also left out of its count; absent where none was. */
  nonFinite?: number[];
}

/**
 * Per feature, the values a model's feature transform read without them, left out of any statistics: absent
 * from the sample (`absent`), or not finite (`nonFinite`: NaN, +-Infinity). Saved with the model; besides, for
 * the run (not state), the features whose first non-finite value came, to be warned of once, and the counts
 * not yet added to the metrics' counters.
 */
export class SkippedValues {
  /** Per feature, the samples that lacked it: made at the first such sample. */
  absent: Float64Array | undefined;
  /** Per feature, the samples whose value was not finite: made at the first such sample. */
  nonFinite: Float64Array | undefined;
  /** Features whose first non-finite value of this run came, in order: the learner takes them (and empties it) to warn once each. */
  readonly firstNonFinite: number[] = [];
  private warned: Uint8Array | undefined;
  /** Counted since {@link takeUncounted}: the learner adds them to its counters in bulk (prom-client pays per call). */
  private uncountedAbsent = 0;
  private uncountedNonFinite = 0;

  constructor(readonly size: number) {}

  countAbsent(i: number): void {
    const absent = (this.absent ??= new Float64Array(this.size));
    absent[i] = absent[i]! + 1;
    this.uncountedAbsent++;
  }

  countNonFinite(i: number): void {
    const nonFinite = (this.nonFinite ??= new Float64Array(this.size));
    nonFinite[i] = nonFinite[i]! + 1;
    this.uncountedNonFinite++;
    const warned = (this.warned ??= new Uint8Array(this.size));
    if (warned[i] === 0) {
      warned[i] = 1;
      this.firstNonFinite.push(i);
    }
  }

  /** The absent and non-finite values counted since the last call. */
  takeUncounted(): { absent: number; nonFinite: number } {
    const taken = { absent: this.uncountedAbsent, nonFinite: this.uncountedNonFinite };
    this.uncountedAbsent = 0;
    this.uncountedNonFinite = 0;
    return taken;
  }

  /** Per feature name, the counts that are not 0 (for a report). */
  byName(names: readonly string[]): { absent: Record<string, number>; nonFinite: Record<string, number> } {
    const named = (counts: Float64Array | undefined): Record<string, number> => {
      const out: Record<string, number> = {};
      if (counts !== undefined) for (let i = 0; i < this.size; i++) if (counts[i]! > 0) out[names[i]!] = counts[i]!;
      return out;
    };
    return { absent: named(this.absent), nonFinite: named(this.nonFinite) };
  }

  state(): Pick<NormaliserState, 'absent' | 'nonFinite'> {
    return { ...(this.absent ? { absent: Array.from(this.absent) } : {}), ...(this.nonFinite ? { nonFinite: Array.from(this.nonFinite) } : {}) };
  }

  load(state: Pick<NormaliserState, 'absent' | 'nonFinite'>): void {
    const countsOf = (counts: number[] | undefined, what: string): Float64Array | undefined => {
      if (counts === undefined) return undefined;
      if (counts.length !== this.size) throw new Error(`saved normaliser counts ${what} values of ${counts.length} features, the model has ${this.size}`);
      return Float64Array.from(counts);
    };
    const absent = countsOf(state.absent, 'absent');
    const nonFinite = countsOf(state.nonFinite, 'non-finite');
    this.absent = absent;
    this.nonFinite = nonFinite;
  }
}

/**
 * A saved normaliser's state for another feature list (a pipeline's features added or gone since): `map[i]` is
 * the saved feature that new feature i is, -1 for one added. A kept feature keeps its statistics and counts; an
 * added one starts fresh, the samples before it counted as lacking it (`absent`), so that its own count, its mean
 * and its variance start at its first value; a gone one's are dropped.
 */
export function remapNormaliserState(state: NormaliserState, map: readonly number[]): NormaliserState {
  const pick = (values: readonly number[] | undefined, added: number): number[] => map.map((at) => (at < 0 ? added : (values?.[at] ?? 0)));
  const absent = pick(state.absent, state.n);
  const nonFinite = state.nonFinite === undefined ? undefined : pick(state.nonFinite, 0);
  return {
    n: state.n,
    mean: pick(state.mean, 0),
    m2: pick(state.m2, 0),
    ...(absent.some((count) => count > 0) ? { absent } : {}),
    ...(nonFinite === undefined ? {} : { nonFinite }),
  };
}

export class Normaliser {
  n = 0;
  private mean: Float64Array;
  private m2: Float64Array;
  /** Values left out of the statistics, per feature. */
  readonly skipped: SkippedValues;

  constructor(readonly size: number) {
    this.mean = new Float64Array(size);
    this.m2 = new Float64Array(size);
    this.skipped = new SkippedValues(size);
  }

  /**
   * Updates the statistics with `raw` and writes its standardised copy into `out` at `offset`. Features
   * flagged in `missing` (1: the sample lacks it), and values that are not finite, are written as 0 and left
   * out of the statistics, each counted.
   */
  updateAndTransform(raw: ArrayLike<number>, out: Float32Array, offset: number, missing?: Uint8Array): void {
    const all = ++this.n;
    const size = this.size;
    const means = this.mean;
    const m2s = this.m2;
    const skipped = this.skipped;
    // Made at a feature's first skipped value, its count then 1, the later features' 0: read once here.
    const { absent, nonFinite } = skipped;
    // The same operations as element by element through the fields, with each value read once.
    for (let i = 0; i < size; i++) {
      if (missing !== undefined && missing[i] === 1) {
        skipped.countAbsent(i);
        out[offset + i] = 0;
        continue;
      }
      const value = raw[i]!;
      if (!Number.isFinite(value)) {
        skipped.countNonFinite(i);
        out[offset + i] = 0;
        continue;
      }
      // The feature's own count: the samples that had a finite value of it.
      const n = all - (absent === undefined ? 0 : absent[i]!) - (nonFinite === undefined ? 0 : nonFinite[i]!);
      const delta = value - means[i]!;
      const mean = means[i]! + delta / n;
      means[i] = mean;
      const m2 = m2s[i]! + delta * (value - mean);
      m2s[i] = m2;
      const variance = n > 1 ? m2 / (n - 1) : 0;
      // A fixed floor (sd > 1e-9 until 2026-12-06) zeroed every feature of scale 1e-9 or less and
      // standardised the float32 rounding jitter of a large constant into noise of up to 5 sd.
      const z = spreadBeyondRounding(variance, mean) ? (value - mean) / Math.sqrt(variance) : 0;
      out[offset + i] = z > 5 ? 5 : z < -5 ? -5 : z;
    }
  }

  state(): NormaliserState {
    return {
      n: this.n,
      mean: Array.from(this.mean),
      m2: Array.from(this.m2),
      ...this.skipped.state(),
    };
  }

  load(state: NormaliserState): void {
    if (state.mean.length !== this.size) throw new Error(`saved normaliser has ${state.mean.length} features, the model ${this.size}`);
    this.n = state.n;
    this.mean = Float64Array.from(state.mean);
    this.m2 = Float64Array.from(state.m2);
    this.skipped.load(state);
  }
}

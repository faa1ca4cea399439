/**
 * `standardize`: online standardisation of the named features, in place: (x - mean) / std with the
 * running mean and variance (Welford) of every value seen so far, this one included. Causal, so it
 * adds no leakage; the statistics are state, snapshotted and restored.
 */
import { defineOperator, FeatureSelector, recordOperator, type ClickEvent } from 'tributary';

/**
 * (2^-23)^2: a standard deviation within 2^-23 of the mean (float32's step at 1) is float32 rounding
 * of one value, not a spread of values, and counts as 0. A fixed floor would not do: 1e-12 on the
 * variance zeroed every feature of scale 1e-6 or less, and standardised the last-bit jitter of one above 1.
 */
const roundingVariance = 2 ** -46;

/** Whether a running `variance` about `mean` is a spread of values, not float32 rounding of one (see roundingVariance); the models' normaliser decides alike. */
export function spreadBeyondRounding(variance: number, mean: number): boolean {
  return variance > mean * mean * roundingVariance;
}

export interface StandardizeConfig {
  features: string[];
  min_count: number;
}

export default defineOperator<StandardizeConfig>({
  name: 'standardize',
  state: 'global',
  emits: [],
  status: 'beta',
  summary: 'Replaces the named features by (x - running mean) / running std, in place.',
  description:
    'Statistics are kept per feature name over every event seen, the current one included (Welford), the variance the sample variance (n - 1): River\'s StandardScaler divides by n, so its values are sqrt(n / (n - 1)) times these (1.41 times at the 2nd value, 1.005 at the 100th). Until a feature has ' +
    'been seen `min_count` times, or while its values are all equal (a standard deviation of 0, or within 2^-23 of the mean: float32 rounding of one value), it becomes 0; a feature of any scale, 1e-7 or 1e9, is standardised otherwise. A value that is not finite (NaN, Infinity from a ' +
    'stage that let one through) is left as it is and not counted: one would make the statistics NaN for good. Statistics an ' +
    'older version let one poison (saved as null) start over at a restore, said in a warning. Names may use `*` as a wildcard; a name not in the vector, or a wildcard that matches none of its names, is logged once (and warned of by `validate`, where the stages before it say which features they append).',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['features'],
    properties: {
      features: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Feature names (with `*` wildcards) to standardise.' },
      min_count: { type: 'integer', minimum: 1, default: 2, description: 'Values of a feature that must have been seen, the current one included, before its output is anything but 0: with 2, from its second value on.' },
    },
  },
  examples: [{ features: ['s_*', 'u_*'] }, { features: ['s_view_price_mean'], min_count: 100 }],
  // It appends no features, and selects by name in `features`: validate warns of a name no block before it appends.
  featureNames: () => [],
  featureSelectorField: 'features',
  create(config, context) {
    const selector = new FeatureSelector(config.features, (missing) => context.logger.warn({ missing }, 'standardize: features not in the vector'));
    // Statistics by feature name; `slotsFor` maps a names array's selected indices to them.
    const byName = new Map<string, number>();
    let count: Float64Array<ArrayBuffer> = new Float64Array(16);
    let mean: Float64Array<ArrayBuffer> = new Float64Array(16);
    let m2: Float64Array<ArrayBuffer> = new Float64Array(16);
    const slotOf = (name: string): number => {
      let slot = byName.get(name);
      if (slot === undefined) {
        slot = byName.size;
        byName.set(name, slot);
        if (slot >= count.length) {
          const grow = (a: Float64Array): Float64Array<ArrayBuffer> => {
            const b = new Float64Array(a.length * 2);
            b.set(a);
            return b;
          };
          count = grow(count);
          mean = grow(mean);
          m2 = grow(m2);
        }
      }
      return slot;
    };
    let lastNames: readonly string[] | undefined;
    let lastSlots = new Int32Array(0);
    const minCount = config.min_count;
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          const features = (record as ClickEvent).features;
          if (record.kind === 'event' && features !== undefined) {
            const indices = selector.indices(features.names);
            if (features.names !== lastNames) {
              lastNames = features.names;
              lastSlots = Int32Array.from(indices, (i) => slotOf(features.names[i]!));
            }
            const values = features.values;
            // Locals: the closure's `let`s are reloaded from the context on every access otherwise.
            const slots = lastSlots;
            const counts = count;
            const means = mean;
            const m2s = m2;
            for (let k = 0; k < indices.length; k++) {
              const i = indices[k]!;
              const s = slots[k]!;
              const x = values[i]!;
              if (!Number.isFinite(x)) continue; // NaN or Infinity would poison the statistics for good
              const n = counts[s]! + 1;
              counts[s] = n;
              const delta = x - means[s]!;
              const mu = means[s]! + delta / n;
              means[s] = mu;
              const sq = m2s[s]! + delta * (x - mu);
              m2s[s] = sq;
              const variance = n > 1 ? sq / (n - 1) : 0;
              values[i] = n >= minCount && spreadBeyondRounding(variance, mu) ? (x - mu) / Math.sqrt(variance) : 0;
            }
          }
          emit(record);
        },
      })),
      snapshot: () => {
        const stats: Record<string, [number, number, number]> = {};
        for (const [name, s] of byName) stats[name] = [count[s]!, mean[s]!, m2[s]!];
        return { version: 1, stats };
      },
      // Running means and variances over every user: an aggregate, nothing in it is one user's to erase.
      forget: () => 0,
      restore: (saved) => {
        const state = saved as { version?: number; stats?: Record<string, [number, number, number]> };
        if (state?.version !== 1 || typeof state.stats !== 'object') throw new Error('unknown standardize snapshot version');
        const poisoned: string[] = [];
        for (const [name, [n, mu, sq]] of Object.entries(state.stats)) {
          if (!(Number.isFinite(n) && Number.isFinite(mu) && Number.isFinite(sq))) {
            poisoned.push(name); // left at zero, as a feature not seen yet
            continue;
          }
          const s = slotOf(name);
          count[s] = n;
          mean[s] = mu;
          m2[s] = sq;
        }
        if (poisoned.length > 0) context.logger.warn({ features: poisoned }, 'standardize: the snapshot\'s statistics of these features are not numbers (a value that was not finite reached them, before this version skipped such values): they start over');
        lastNames = undefined;
      },
    };
  },
});

/**
 * `log1p`: compresses heavy-tailed features (counts, prices, durations) in place with
 * sign(x) * log(1 + |x|), so a few huge values do not dominate a linear model.
 */
import { defineOperator, FeatureSelector, recordOperator, type ClickEvent } from 'tributary';

const SMALL = 1024;
const LOG1P_SMALL = Float64Array.from({ length: SMALL }, (_, n) => Math.log1p(n));

export interface Log1pConfig {
  features: string[];
}

export default defineOperator<Log1pConfig>({
  name: 'log1p',
  state: 'none',
  emits: [],
  status: 'beta',
  summary: 'Replaces the named features x by sign(x)·log(1+|x|), in place.',
  description:
    'Names may use `*` as a wildcard (`s_view_price_*`). A name listed exactly that is not in the vector, or a wildcard that matches none of its names, is logged once (and warned of by `validate`, where the stages before it say which features they append). ' +
    'Events without features and other records pass through unchanged.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['features'],
    properties: {
      features: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Feature names (with `*` wildcards) to transform.' },
    },
  },
  examples: [{ features: ['s_events', 's_view_price_*', 'u_monetary'] }],
  // It appends no features, and selects by name in `features`: validate warns of a name no block before it appends.
  featureNames: () => [],
  featureSelectorField: 'features',
  create(config, context) {
    const selector = new FeatureSelector(config.features, (missing) => context.logger.warn({ missing }, 'log1p: features not in the vector'));
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          const features = (record as ClickEvent).features;
          if (record.kind === 'event' && features !== undefined) {
            const indices = selector.indices(features.names);
            const values = features.values;
            for (let k = 0; k < indices.length; k++) {
              const i = indices[k]!;
              const x = values[i]!;
              // Counts (most inputs) are small integers: looked up, the same value Math.log1p gives.
              // log1p(±0) is ±0, so zeros stay as they are.
              const n = x | 0;
              if (n === x && n >= 0 && n < SMALL) {
                if (n !== 0) values[i] = LOG1P_SMALL[n]!;
              } else values[i] = x >= 0 ? Math.log1p(x) : -Math.log1p(-x);
            }
          }
          emit(record);
        },
      })),
    };
  },
});

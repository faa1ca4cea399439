/** `clip`: bounds the named features to [min, max] in place, e.g. after standardisation. */
import { defineOperator, FeatureSelector, recordOperator, type ClickEvent } from 'tributary';

export interface ClipConfig {
  features: string[];
  min?: number;
  max?: number;
}

export default defineOperator<ClipConfig>({
  name: 'clip',
  state: 'none',
  emits: [],
  status: 'beta',
  summary: 'Bounds the named features to [min, max], in place.',
  description:
    'Names may use `*` as a wildcard; a name not in the vector, or a wildcard that matches none of its names, is logged once. At least one of `min` and `max` is required. NaN becomes `min` (or `max`). ' +
    'Events without features and other records pass through unchanged.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['features'],
    properties: {
      features: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Feature names (with `*` wildcards) to bound.' },
      min: { type: 'number', description: 'Lower bound. Default: none.' },
      max: { type: 'number', description: 'Upper bound. Default: none.' },
    },
  },
  examples: [{ features: ['*'], min: -5, max: 5 }, { features: ['s_since_prev_s'], max: 3600 }],
  create(config, context) {
    if (config.min === undefined && config.max === undefined) throw new RangeError('clip needs min, max or both');
    const min = config.min ?? -Infinity;
    const max = config.max ?? Infinity;
    if (min > max) throw new RangeError(`min (${min}) is above max (${max})`);
    const selector = new FeatureSelector(config.features, (missing) => context.logger.warn({ missing }, 'clip: features not in the vector'));
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
              if (x < min) values[i] = min;
              else if (x > max) values[i] = max;
              else if (x !== x) values[i] = Number.isFinite(min) ? min : max;
            }
          }
          emit(record);
        },
      })),
    };
  },
});

/** `clip`: bounds the named features to [min, max] in place, e.g. after standardisation. */
import { defineOperator, FeatureSelector, PluginConfigError, recordOperator, type ClickEvent, type EntryProblem } from 'tributary';

export interface ClipConfig {
  features: string[];
  min?: number;
  max?: number;
}

/** A clip with no bound, or one whose bounds are the wrong way round: said by validate at the field, and by the factory. */
function boundProblems(config: ClipConfig): EntryProblem[] {
  if (config.min === undefined && config.max === undefined) return [{ message: 'clip needs min, max or both: without either it would change nothing' }];
  if (config.min !== undefined && config.max !== undefined && config.min > config.max) {
    return [{ field: 'max', message: `max (${config.max}) is below min (${config.min}): every value would be bounded to one of them; swap them` }];
  }
  return [];
}

export default defineOperator<ClipConfig>({
  name: 'clip',
  state: 'none',
  emits: [],
  status: 'beta',
  summary: 'Bounds the named features to [min, max], in place.',
  description:
    'Names may use `*` as a wildcard; a name not in the vector, or a wildcard that matches none of its names, is logged once (and warned of by `validate`, where the stages before it say which features they append). At least one of `min` and `max` is required, and `min` may not be above `max` (both config errors `validate` reports). NaN becomes `min` (or `max`). ' +
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
  checkPipeline: (config) => boundProblems(config),
  // It appends no features, and selects by name in `features`: validate warns of a name no block before it appends.
  featureNames: () => [],
  featureSelectorField: 'features',
  create(config, context) {
    // Checked again here for a config that reaches the factory without validation (a plugin's own test).
    for (const { field, message } of boundProblems(config)) {
      if (field === undefined) throw new RangeError(message);
      throw new PluginConfigError(field, message);
    }
    const min = config.min ?? -Infinity;
    const max = config.max ?? Infinity;
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

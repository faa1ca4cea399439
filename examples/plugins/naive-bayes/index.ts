/**
 * Two plugins of a user's, one feeding the other:
 * - `item-focus`, a feature block: per event, how many events in a row of its session were on the same
 *   item (`<prefix>_streak`), and its price over the mean price seen in the session so far
 *   (`<prefix>_price_ratio`). Keyed per user, bounded by `max_users`.
 * - `naive-bayes-intent`, a model (`defineModel`): online Gaussian naive Bayes over the features its
 *   `features` option selects (names and `*` patterns), learning from the labels the stage joins.
 * Both use only the public API (`tributary`, `tributary/models`).
 */
import { defineOperator, FeatureBlock, FeatureSelector, inFloat32Range, isClickEvent, isSessionSummary, recordOperator } from 'tributary';
import { defineModel, type CustomModel } from 'tributary/models';

export interface ItemFocusConfig {
  prefix: string;
  max_users: number;
}

/** Per user: the session tracked, its last item, the same-item streak, and the sum and count of its prices. */
type Focus = [sessionId: string, lastItem: string | null, streak: number, priceSum: number, priceCount: number];

const focusNames = (config: ItemFocusConfig): string[] => [`${config.prefix}_streak`, `${config.prefix}_price_ratio`];

export const itemFocus = defineOperator<ItemFocusConfig>({
  name: 'item-focus',
  status: 'experimental',
  state: 'keyed',
  emits: [],
  summary: "Appends each event's same-item streak in its session and its price over the session's mean price so far.",
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      prefix: { type: 'string', default: 'focus', description: 'Prefix of the two feature names: `<prefix>_streak`, `<prefix>_price_ratio`.' },
      max_users: { type: 'integer', minimum: 1, default: 100000, description: 'Most users tracked; beyond it the least recently seen is forgotten (counted in `item_focus_users_evicted_total`).' },
    },
  },
  examples: [{ prefix: 'focus', max_users: 100000 }],
  // Declared, so validate refuses a block before it that appends the same names, at `prefix`.
  featureNames: focusNames,
  featureNamesField: 'prefix',
  create(config, context) {
    const block = new FeatureBlock(focusNames(config));
    const perUser = new Map<string, Focus>(); // in order of last use: the first is the least recently seen
    const evicted = context.metrics.counter('item_focus_users_evicted_total', 'Users item-focus forgot at max_users.');
    let evictionLogged = false;
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (isSessionSummary(record)) {
            // The session closed: its user's state is no longer needed.
            if (perUser.get(record.userId)?.[0] === record.sessionId) perUser.delete(record.userId);
          } else if (isClickEvent(record)) {
            const sessionId = record.session?.id ?? record.sessionId ?? '';
            const held = perUser.get(record.userId);
            const focus: Focus = held !== undefined && held[0] === sessionId ? held : [sessionId, null, 0, 0, 0];
            perUser.delete(record.userId);
            perUser.set(record.userId, focus);
            focus[2] = record.itemId !== undefined && record.itemId === focus[1] ? focus[2] + 1 : 1;
            focus[1] = record.itemId ?? null;
            if (record.price !== undefined) {
              focus[3] += record.price;
              focus[4]++;
            }
            if (perUser.size > config.max_users) {
              perUser.delete(perUser.keys().next().value!);
              evicted.inc();
              if (!evictionLogged) context.logger.info({ maxUsers: config.max_users }, 'item-focus: max_users reached, forgetting the least recently seen users');
              evictionLogged = true;
            }
            const values = block.append(record);
            const mean = focus[4] > 0 ? focus[3] / focus[4] : 0;
            values[block.offset] = focus[2];
            values[block.offset + 1] = record.price !== undefined && mean > 0 ? inFloat32Range(record.price / mean) : 1;
          }
          emit(record);
        },
      })),
      snapshot: () => [...perUser],
      restore(state: [string, Focus][]) {
        perUser.clear();
        for (const [user, focus] of state) perUser.set(user, focus);
      },
    };
  },
});

export interface NaiveBayesConfig {
  features: string[];
  var_smoothing: number;
}

/** Per class: samples, and per selected feature the running mean and sum of squared deviations (Welford). */
interface ClassStats {
  n: number;
  mean: number[];
  m2: number[];
}

/** What `state()` saves and `load` takes back: the names it read, with each class's statistics. */
export interface NaiveBayesState {
  features: string[];
  classes: [ClassStats, ClassStats];
}

const LOG_2PI = Math.log(2 * Math.PI);

export const naiveBayes = defineModel<NaiveBayesConfig>({
  name: 'naive-bayes-intent',
  task: 'intent',
  status: 'experimental',
  summary: 'P(session ends in a purchase) by online Gaussian naive Bayes over the features `features` selects.',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      features: {
        type: 'array',
        items: { type: 'string' },
        minItems: 1,
        default: ['s_events', 's_carts', 's_cart_value', 's_distinct_items'],
        description: 'Names or `*` patterns (`s_*`) of the features it reads.',
      },
      var_smoothing: { type: 'number', exclusiveMinimum: 0, default: 0.001, description: "Added to every class's variance of a feature, so a constant one divides by no zero." },
    },
  },
  examples: [{ features: ['s_*', 'focus_*'], var_smoothing: 0.001 }],
  // validate warns of a name or pattern in `features` that no stage before it appends, at its item.
  featureSelectorField: 'features',
  create(config, features): CustomModel {
    const missing: string[] = [];
    const at = new FeatureSelector(config.features, (names) => missing.push(...names)).indices(features);
    // Without every feature it was asked for it would learn another model than meant: a throw dead-letters each event it predicts with this reason (validate warned first).
    if (missing.length > 0) throw new Error(`naive-bayes-intent: no feature matches ${missing.join(', ')} (the events have: ${features.join(', ') || 'none'})`);
    const selected = Array.from(at, (i) => features[i]!);
    const d = at.length;
    const fresh = (): ClassStats => ({ n: 0, mean: new Array<number>(d).fill(0), m2: new Array<number>(d).fill(0) });
    let classes: [ClassStats, ClassStats] = [fresh(), fresh()];
    /** log P(class) + log P(row | class), the features independent given the class (the naive assumption). */
    const logJoint = (stats: ClassStats, row: Float32Array): number => {
      let sum = Math.log((stats.n + 1) / (classes[0].n + classes[1].n + 2));
      for (let k = 0; k < d; k++) {
        const variance = (stats.n > 1 ? stats.m2[k]! / (stats.n - 1) : 1) + config.var_smoothing;
        const deviation = row[at[k]!]! - stats.mean[k]!;
        sum -= 0.5 * (LOG_2PI + Math.log(variance) + (deviation * deviation) / variance);
      }
      return sum;
    };
    return {
      predict(row) {
        // Until both classes have a sample, the smoothed base rate.
        if (classes[0].n === 0 || classes[1].n === 0) return (classes[1].n + 1) / (classes[0].n + classes[1].n + 2);
        return 1 / (1 + Math.exp(logJoint(classes[0], row) - logJoint(classes[1], row)));
      },
      learn(rows, labels) {
        for (let i = 0; i < labels.length; i++) {
          const stats = classes[labels[i]! > 0.5 ? 1 : 0];
          const row = rows.subarray(i * features.length, (i + 1) * features.length);
          stats.n++;
          for (let k = 0; k < d; k++) {
            const x = row[at[k]!]!;
            const delta = x - stats.mean[k]!;
            stats.mean[k]! += delta / stats.n;
            stats.m2[k]! += delta * (x - stats.mean[k]!);
          }
        }
      },
      state: (): NaiveBayesState => ({ features: selected, classes }),
      // Typed as what state() returns. A restart may come with `features` edited since the checkpoint:
      // refused (the start stops, naming the stage), not one feature's statistics read for another's.
      load(state: NaiveBayesState) {
        if (state.features.join('\n') !== selected.join('\n')) throw new Error(`naive-bayes-intent: the saved model read ${state.features.join(', ')}; its features now select ${selected.join(', ')}`);
        classes = state.classes;
      },
    };
  },
});

export default [itemFocus, naiveBayes];

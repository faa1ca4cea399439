/**
 * `cart-rule`: a purchase-intent model written by hand, P(buy) = sigmoid(bias + carts_weight * carts so far
 * + events_weight * ln(1 + events so far)), from the `session-features` stage's `s_carts` and `s_events`.
 * With `learning_rate` above 0 it also learns its three numbers online (plain SGD on log loss); at 0 it
 * is a fixed rule and has no `learn`. Everything else (which events it predicts, when their labels come,
 * the label buffer, prequential scores, metrics, `model_metrics` records, snapshots) is the built-in
 * `intent-model`'s, through `defineModel`.
 */
import { defineModel, type CustomModel } from 'tributary/models';

export interface CartRuleConfig {
  bias: number;
  carts_weight: number;
  events_weight: number;
  learning_rate: number;
}

/** The features the rule reads, as `session-features` names them. */
export const CART_RULE_FEATURES = ['s_carts', 's_events'] as const;

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export const cartRule = defineModel<CartRuleConfig>({
  name: 'cart-rule',
  task: 'intent',
  status: 'experimental',
  summary: 'P(session ends in a purchase) from carts so far and session length: a hand-written rule, optionally learning its weights.',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      bias: { type: 'number', default: -3, description: 'Log-odds of a purchase in a session with no cart and one event.' },
      carts_weight: { type: 'number', default: 1, description: 'Log-odds added per cart so far.' },
      events_weight: { type: 'number', default: 0.3, description: 'Log-odds added per unit of ln(1 + events so far).' },
      learning_rate: { type: 'number', minimum: 0, default: 0, description: 'SGD step on log loss for the three numbers above; 0: a fixed rule that learns nothing.' },
    },
  },
  examples: [{ bias: -3, carts_weight: 1, events_weight: 0.3, learning_rate: 0 }],
  create(config, features) {
    const at = CART_RULE_FEATURES.map((name) => features.indexOf(name));
    const missing = CART_RULE_FEATURES.filter((_, i) => at[i]! < 0);
    if (missing.length > 0) throw new Error(`cart-rule reads ${missing.join(' and ')}, which the events' features lack (they have: ${features.join(', ') || 'none'}): put a session-features stage before it`);
    const [carts, events] = at as [number, number];
    // Its three numbers, as learnt so far: [bias, carts_weight, events_weight].
    let weights = [config.bias, config.carts_weight, config.events_weight];
    const inputs = (row: Float32Array, offset: number): [number, number] => [row[offset + carts]!, Math.log1p(Math.max(0, row[offset + events]!))];
    const model: CustomModel = {
      predict(row) {
        const [c, e] = inputs(row, 0);
        return sigmoid(weights[0]! + weights[1]! * c + weights[2]! * e);
      },
      state: () => ({ weights }),
      load(state) {
        const saved = (state as { weights?: unknown }).weights;
        if (!Array.isArray(saved) || saved.length !== 3 || !saved.every((w) => typeof w === 'number')) throw new Error('cart-rule: saved state has no three weights');
        weights = saved as number[];
      },
    };
    if (config.learning_rate > 0) {
      const d = features.length;
      model.learn = (rows, labels) => {
        // One SGD step on the batch's mean log loss: its gradient in the log-odds is (p - y).
        const grad = [0, 0, 0];
        for (let i = 0; i < labels.length; i++) {
          const [c, e] = inputs(rows, i * d);
          const error = sigmoid(weights[0]! + weights[1]! * c + weights[2]! * e) - labels[i]!;
          grad[0]! += error;
          grad[1]! += error * c;
          grad[2]! += error * e;
        }
        weights = weights.map((w, k) => w - (config.learning_rate * grad[k]!) / labels.length);
      };
    }
    return model;
  },
});

export default cartRule;

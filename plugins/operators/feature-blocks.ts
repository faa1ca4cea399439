/**
 * The names of the feature blocks this folder's operators append, from their config: one place for
 * what the operators append (FeatureBlock) and what their specs declare (`featureNames`), by which
 * `validate` refuses two blocks of a pipeline that append one name.
 */
import type { Duration } from 'tributary';

/** session-features' names, in order; stable across releases (append new ones at the end). */
export const sessionFeatureNames: readonly string[] = Object.freeze([
  's_events',
  's_views',
  's_carts',
  's_removes',
  's_purchases',
  's_distinct_items',
  's_distinct_categories',
  's_duration_s',
  's_since_prev_s',
  's_mean_dwell_s',
  's_view_price_mean',
  's_view_price_std',
  's_view_price_min',
  's_view_price_max',
  's_cart_price_mean',
  's_cart_price_max',
  's_cart_value',
  's_cart_to_view',
  's_price',
  's_repeat_item',
  's_is_view',
  's_is_cart',
  's_is_remove',
  's_is_purchase',
  'hour_sin',
  'hour_cos',
  'dow_sin',
  'dow_cos',
]);

/** How a user-features horizon reads in its names (`1d` as written; a number of milliseconds as `<n>ms`). */
export function horizonLabel(horizon: Duration): string {
  return typeof horizon === 'number' ? `${horizon}ms` : horizon;
}

/** user-features' names for its horizons, in order. */
export function userFeatureNames(horizons: readonly Duration[]): string[] {
  const labels = horizons.map(horizonLabel);
  return [
    'u_events',
    'u_sessions',
    'u_purchases',
    'u_monetary',
    'u_tenure_days',
    'u_recency_days',
    'u_days_since_purchase',
    'u_has_purchased',
    'u_mean_session_events',
    'u_mean_session_minutes',
    ...labels.map((h) => `u_events_${h}`),
    ...labels.map((h) => `u_purchases_${h}`),
  ];
}

/** hash-features' names: `<prefix>_0` to `<prefix>_<width - 1>`. */
export function hashFeatureNames(prefix: string, width: number): string[] {
  return Array.from({ length: width }, (_, k) => `${prefix}_${k}`);
}

/**
 * The names of the feature blocks this folder's operators append, from their config: one place for
 * the operators (what they append) and for the load-time check that two blocks of a pipeline do not
 * clash. Every block appends to one vector per event, so a name twice cannot be: at run time the
 * second block refuses every event (FeatureBlock), and `validate` says it first (featureNameClashes).
 */
import type { Duration, EntryProblem, OutlineEntry, PipelineOutline } from 'tributary';

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

/** The names a pipeline entry of one of these blocks appends (its config as validated, defaults in); undefined for any other entry. */
function namesOf(entry: OutlineEntry): readonly string[] | undefined {
  const config = entry.config;
  switch (entry.type) {
    case 'session-features':
      return sessionFeatureNames;
    case 'user-features':
      return userFeatureNames(config.horizons as Duration[]);
    case 'hash-features':
      return hashFeatureNames(config.prefix as string, config.width as number);
    default:
      return undefined;
  }
}

/**
 * A feature block's checkPipeline: its names must not be those of a block before it in the pipeline
 * (two hash-features with the default prefix, a block twice). Said at the later one, at its `prefix`
 * where it has one.
 */
export function featureNameClashes(pipeline: PipelineOutline, self: OutlineEntry): EntryProblem[] {
  const names = namesOf(self);
  const at = pipeline.stages.indexOf(self);
  if (names === undefined || at < 0) return [];
  const own = new Set(names);
  for (const other of pipeline.stages.slice(0, at)) {
    const clash = namesOf(other)?.filter((name) => own.has(name));
    if (clash === undefined || clash.length === 0) continue;
    const shown = clash.length > 3 ? `${clash.slice(0, 3).join(', ')} and ${clash.length - 3} more` : clash.join(', ');
    const remedy = self.type === 'hash-features' ? 'set a different prefix' : `remove one of them`;
    return [
      {
        ...(self.type === 'hash-features' ? { field: 'prefix' } : {}),
        message: `its feature names (${shown}) are also those of stage ${other.label}: every block appends to one vector per event, so every event would be dead-lettered; ${remedy}`,
      },
    ];
  }
  return [];
}

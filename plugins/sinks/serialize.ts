import type { FeatureVector } from 'tributary';

/** JSON for one record; a feature vector becomes `{name: value}` so readers never need the schema. */
export function serializeRecord(record: unknown): string {
  const features = (record as { features?: FeatureVector }).features;
  if (features === undefined || !(features.values instanceof Float32Array)) return JSON.stringify(record);
  const named: Record<string, number> = {};
  for (let i = 0; i < features.names.length; i++) named[features.names[i]!] = features.values[i]!;
  return JSON.stringify({ ...(record as object), features: named });
}

/**
 * A helper of the feature blocks (appending a block is core's FeatureBlock; selecting features by
 * name for a transform, core's FeatureSelector): the Float32 range.
 */

/** The largest finite Float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * `x` within the range of a feature vector's Float32 values: a larger magnitude (an accepted price of
 * 1e39, a sum of large ones) becomes the largest Float32 of its sign, where it would be Infinity, which
 * poisons every running statistic after it (standardize). NaN stays NaN. For blocks' values that grow
 * with the data (prices and their sums); counts and times stay far inside the range.
 */
export function inFloat32Range(x: number): number {
  return x > FLOAT32_MAX ? FLOAT32_MAX : x < -FLOAT32_MAX ? -FLOAT32_MAX : x;
}

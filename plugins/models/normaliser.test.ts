import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Normaliser } from './normaliser.js';

/** Each value of one feature standardised in turn by a fresh normaliser (statistics of every value so far, this one included). */
function standardised(xs: readonly number[]): number[] {
  const normaliser = new Normaliser(1);
  const out = new Float32Array(1);
  return xs.map((x) => {
    normaliser.updateAndTransform([x], out, 0);
    return out[0]!;
  });
}

test('the models\' normaliser standardises a feature of any scale; only one whose values differ by no more than float32 rounding becomes 0', () => {
  // 1e-12, 2e-12, 3e-12: at the 2nd, mean 1.5e-12 and sample sd 0.5e-12 * sqrt(2), z = 1/sqrt(2); at the 3rd, z = 1.
  // (Its sd is below the fixed 1e-9 floor the normaliser had, which made every value 0.)
  const small = standardised([1e-12, 2e-12, 3e-12]);
  assert.equal(small[0], 0);
  assert.ok(Math.abs(small[1]! - Math.SQRT1_2) < 1e-6 && Math.abs(small[2]! - 1) < 1e-6, JSON.stringify(small));
  assert.deepEqual(standardised([1e9 + 1e3, 1e9 + 2e3, 1e9 + 3e3]), [0, Math.fround(Math.SQRT1_2), 1]);
  // A constant, and a large constant's float32 rounding (1e6 and the next float32 up): no spread, 0.
  // (The fixed floor standardised that jitter into values of +-0.87 and more.)
  assert.deepEqual(standardised([5, 5, 5]), [0, 0, 0]);
  assert.deepEqual(standardised([1e6, 1e6 + 1 / 16, 1e6, 1e6 + 1 / 16]), [0, 0, 0, 0]);
});

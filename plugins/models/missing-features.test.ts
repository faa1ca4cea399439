import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Emit } from 'tributary';
import { testContext } from 'tributary/testing';
import { OnlineLearner } from './learner.js';
import { resolveConfig } from './config.js';
import { Normaliser } from './normaliser.js';
import { rng } from './testdata.js';

/** A logistic learner (scored on the host, at once) trained on features a, b, c; c far from 0 (mean about 10) and telling. */
async function trainedOnABC(seed: number, logged: string[] = []): Promise<{ learner: OnlineLearner; normaliser: () => Normaliser; score: (names: string[], values: number[]) => number }> {
  const context = testContext();
  const withLog = { ...context, logger: { ...context.logger, warn: (_: unknown, message?: string) => void (message !== undefined && logged.push(message)) } } as typeof context;
  const learner = new OnlineLearner(resolveConfig({ backend: 'cpu', batch: { max_size: 1, max_delay: 0 } }, 'abc'), 'intent', withLog);
  await learner.open();
  let scored = 0;
  const emit: Emit = (record) => {
    if (record.kind === 'prediction') scored = record.score as number;
  };
  const random = rng(seed);
  let n = 0;
  const score = (names: string[], values: number[]): number => {
    learner.submit({ id: `p${n}`, userId: `u${n}`, sessionId: `s${n}`, time: n, names, values: Float32Array.from(values) }, emit);
    n++;
    return scored;
  };
  for (let i = 0; i < 400; i++) {
    const c = 10 + (random() * 2 - 1);
    const handle = learner.submit({ id: `t${i}`, userId: `u${i}`, sessionId: `t${i}`, time: i, names: ['a', 'b', 'c'], values: Float32Array.of(random(), random(), c) }, emit);
    learner.label(handle, c > 10 ? 1 : 0, i, emit);
  }
  learner.flushLearning(emit);
  return { learner, normaliser: () => (learner as unknown as { normaliser: Normaliser }).normaliser, score };
}

test("a feature the model knows that its input no longer has is read at its running mean (standardised 0) and leaves the normaliser's statistics as they were (was: read as a raw 0, which moved its mean and variance and gave it (0 - mean) / sd)", async () => {
  const logged: string[] = [];
  const fed = await trainedOnABC(5, logged);
  const before = fed.normaliser().state();
  const missing = fed.score(['a', 'b'], [0.3, 0.6]);
  const after = fed.normaliser().state();
  // c's mean and m2 untouched; a's and b's updated as ever.
  assert.equal(after.mean[2], before.mean[2]);
  assert.equal(after.m2[2], before.m2[2]);
  assert.notEqual(after.mean[0], before.mean[0]);
  assert.deepEqual(after.absent, [0, 0, 1]);
  // The same model fed c at its running mean: the same score, but for the float32 rounding of that mean as an input.
  const twin = await trainedOnABC(5);
  const atMean = twin.score(['a', 'b', 'c'], [0.3, 0.6, before.mean[2]!]);
  assert.ok(Math.abs(missing - atMean) < 1e-5, `missing ${missing}, at the mean ${atMean}`);
  // Read as a raw 0, c (mean about 10) was clipped to -5 sd: the model's telling feature says "no".
  const third = await trainedOnABC(5);
  const atZero = third.score(['a', 'b', 'c'], [0.3, 0.6, 0]);
  assert.ok(Math.abs(missing - atZero) > 0.05, `missing ${missing}, at a raw 0 ${atZero}`);
  assert.equal(logged.length, 1, logged.join('\n'));
  assert.match(logged[0]!, /0 it does not know are ignored, 1 of its own are absent and read as 0 once standardised \(at their running mean, which with their variance is left as it was\)/);
  for (const { learner } of [fed, twin, third]) await learner.close();
});

test('the normaliser counts each feature by the samples that had it: its variance, and a saved state, count no absent sample', () => {
  const normaliser = new Normaliser(2);
  const out = new Float32Array(2);
  normaliser.updateAndTransform([1, 2], out, 0);
  normaliser.updateAndTransform([3, 0], out, 0, Uint8Array.of(0, 1));
  assert.equal(out[1], 0);
  normaliser.updateAndTransform([5, 4], out, 0);
  const state = normaliser.state();
  // Feature 1 saw 2 and 4: mean 3, m2 2 (sample variance 2), as if the absent sample had not been.
  assert.deepEqual({ n: state.n, mean: state.mean, m2: state.m2, absent: state.absent }, { n: 3, mean: [3, 3], m2: [8, 2], absent: [0, 1] });
  const loaded = new Normaliser(2);
  loaded.load(JSON.parse(JSON.stringify(state)) as typeof state);
  assert.deepEqual(loaded.state(), state);
  // A state saved before absent values were counted loads as none absent.
  const old = new Normaliser(2);
  old.load({ n: 3, mean: [3, 3], m2: [8, 2] });
  assert.equal(old.state().absent, undefined);
  assert.throws(() => new Normaliser(3).load({ n: 1, mean: [0, 0, 0], m2: [0, 0, 0], absent: [0] }), /absent values of 1 features, the model has 3/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inTurns, type Emit } from 'tributary';
import { tempFolder, testContext } from 'tributary/testing';
import { tf } from './backend.js';
import type { ModelOperatorConfig } from './config.js';
import { resolveConfig } from './config.js';
import { OnlineLearner, type LearnerState, type SampleHandle, type SavedModel } from './learner.js';
import { createModel, remapFeatures } from './models.js';
import { decodeFloats } from './params.js';
import { exactAuc } from './prequential.js';
import { rng } from './testdata.js';

// A River linear model grows a weight at 0 for each new feature name; so does a model here that a pipeline with
// features added resumes or warm-starts (was: the added features ignored, with a warning, until it started afresh).

type Kind = 'logistic' | 'mlp';
type How = 'warm start' | 'resume';

const settings = (kind: Kind, dir?: string): ModelOperatorConfig => ({
  backend: 'cpu',
  name: 'grow',
  model: kind === 'mlp' ? { kind: 'mlp', hidden: [8] } : { kind: 'logistic' },
  optimizer: { kind: 'adam', learning_rate: 0.02 },
  // Every event predicted at once (mlp too: a batch of one), learnt in steps of 8.
  batch: { max_size: 1, learn_size: 8, max_delay: 0 },
  drift: { detector: 'none' },
  ...(dir === undefined ? {} : { checkpoint: { dir } }),
});

/** A learner whose logs (info and warn) go to `logged`. */
async function learner(kind: Kind, dir: string | undefined, logged: string[] = []): Promise<OnlineLearner> {
  const context = testContext();
  const log = (_: unknown, message?: string): void => void (message !== undefined && logged.push(message));
  const withLog = { ...context, logger: { ...context.logger, info: log, warn: log } } as typeof context;
  const made = new OnlineLearner(resolveConfig(settings(kind, dir), 'grow'), 'intent', withLog);
  await made.open();
  return made;
}

/** Labels as c > 0 says; `a` tells them a little (label + noise), `b` not at all. */
function sample(random: () => number): { a: number; b: number; c: number; label: number } {
  const c = random() * 2 - 1;
  const label = c > 0 ? 1 : 0;
  return { a: label * 0.6 + random() * 2 - 1, b: random() * 2 - 1, c, label };
}

/** Feeds one sample; returns its score (predicted at once) and its handle. */
function feed(model: OnlineLearner, names: string[], values: number[], n: number): { score: number; handle: SampleHandle } {
  let score = NaN;
  const emit: Emit = (record) => {
    if (record.kind === 'prediction') score = record.score as number;
  };
  const handle = model.submit({ id: `p${n}`, userId: `u${n}`, sessionId: `s${n}`, time: n, names, values: Float32Array.from(values) }, emit);
  return { score, handle };
}

const none: Emit = () => {};

/**
 * A model learnt on features a, b (the last 5 samples left awaiting their labels), then two started from it, by a
 * warm start from its file or by a resume from its snapshot: `grown` for the pipeline as edited (a, b, c), `twin` as
 * it was (a, b). Also the handles of the 5 samples awaiting labels, in each, where resumed.
 */
async function startedFromAB(t: Parameters<typeof tempFolder>[0], kind: Kind, how: How, logged: string[]) {
  const dir = tempFolder(t, 'grow');
  const random = rng(11);
  const trainer = await learner(kind, join(dir, 'trainer'));
  for (let i = 0; i < 400; i++) {
    const s = sample(random);
    const { handle } = feed(trainer, ['a', 'b'], [s.a, s.b], i);
    if (i < 395) trainer.label(handle, s.label, i, none);
  }
  trainer.flushLearning(none);
  const snapshot = JSON.parse(JSON.stringify(await inTurns(await inTurns(trainer.snapshotParts())))) as LearnerState;
  await trainer.close();
  if (how === 'warm start') {
    for (const to of ['grown', 'twin']) {
      mkdirSync(join(dir, to));
      copyFileSync(join(dir, 'trainer', 'grow.model.json'), join(dir, to, 'grow.model.json'));
    }
    return { dir, grown: await learner(kind, join(dir, 'grown'), logged), twin: await learner(kind, join(dir, 'twin')), awaiting: undefined };
  }
  const resumed = async (to: string, log?: string[]): Promise<{ model: OnlineLearner; handles: SampleHandle[] }> => {
    const model = await learner(kind, join(dir, to), log);
    await inTurns(model.restoreParts(JSON.parse(JSON.stringify(snapshot)) as LearnerState));
    const byId = await inTurns(model.handlesById());
    return { model, handles: [395, 396, 397, 398, 399].map((i) => byId(`p${i}`)) };
  };
  const grown = await resumed('grown', logged);
  const twin = await resumed('twin');
  return { dir, grown: grown.model, twin: twin.model, awaiting: { grown: grown.handles, twin: twin.handles } };
}

for (const kind of ['logistic', 'mlp'] as const) {
  for (const how of ['warm start', 'resume'] as const) {
    test(`${kind}, ${how}: a model learnt on features a, b, in a pipeline that now makes a, b, c, predicts as before whatever c is until it learns, then learns c (its AUC rises above what a, b give), its tensors flat, said once; its snapshot restores it exactly`, async (t) => {
      const logged: string[] = [];
      // tf is loaded by the first model's open (the backend is picked then).
      const first = await learner(kind, undefined);
      const tensorsBefore = tf.memory().numTensors;
      const { dir, grown, twin, awaiting } = await startedFromAB(t, kind, how, logged);
      const random = rng(12);
      // Unlabelled at first: c is anything (up to 5 times its range), and the scores are the twin's, exactly.
      for (let i = 0; i < 20; i++) {
        const s = sample(random);
        const c = (random() * 2 - 1) * 5;
        assert.equal(feed(grown, ['a', 'b', 'c'], [s.a, s.b, c], 1000 + i).score, feed(twin, ['a', 'b'], [s.a, s.b], 1000 + i).score, `sample ${i}`);
      }
      assert.deepEqual(grown.featureNames, ['a', 'b', 'c']);
      assert.deepEqual(twin.featureNames, ['a', 'b']);
      const said = logged.filter((line) => line.startsWith('model grow: ') && !line.startsWith('model grow: warm start from '));
      assert.deepEqual(said, [
        'model grow: the input has 1 feature the saved model did not (c): the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept',
      ]);
      // Restored samples awaiting labels (in the old row format) are learnt from after the model grew.
      if (awaiting) {
        for (const handle of awaiting.grown) assert.equal(grown.label(handle, 1, 2000, none), true);
        for (const handle of awaiting.twin) assert.equal(twin.label(handle, 1, 2000, none), true);
      }
      // Labelled: the grown model learns c, which separates the labels; the twin has a (weakly) only.
      const scores: { grown: number[]; twin: number[]; labels: number[] } = { grown: [], twin: [], labels: [] };
      let tensorsLearning = 0;
      for (let i = 0; i < 800; i++) {
        const s = sample(random);
        const g = feed(grown, ['a', 'b', 'c'], [s.a, s.b, s.c], 3000 + i);
        const w = feed(twin, ['a', 'b'], [s.a, s.b], 3000 + i);
        grown.label(g.handle, s.label, 3000 + i, none);
        twin.label(w.handle, s.label, 3000 + i, none);
        if (i >= 400) {
          scores.grown.push(g.score);
          scores.twin.push(w.score);
          scores.labels.push(s.label);
        }
        if (i === 399) tensorsLearning = tf.memory().numTensors;
      }
      assert.equal(tf.memory().numTensors, tensorsLearning, 'no tensor is left behind per step');
      const grownAuc = exactAuc(scores.grown, scores.labels)!;
      const twinAuc = exactAuc(scores.twin, scores.labels)!;
      assert.ok(grownAuc > 0.95 && grownAuc > twinAuc + 0.1, `grown ${grownAuc}, twin (a, b) ${twinAuc}`);

      // The grown model's snapshot restores it exactly: the same scores from here, the same weights.
      const snapshot = JSON.parse(JSON.stringify(await inTurns(await inTurns(grown.snapshotParts())))) as LearnerState;
      const restored = await learner(kind, undefined);
      await inTurns(restored.restoreParts(snapshot));
      assert.deepEqual(restored.featureNames, ['a', 'b', 'c']);
      for (let i = 0; i < 30; i++) {
        const s = sample(random);
        const one = feed(grown, ['a', 'b', 'c'], [s.a, s.b, s.c], 5000 + i);
        const other = feed(restored, ['a', 'b', 'c'], [s.a, s.b, s.c], 5000 + i);
        assert.equal(other.score, one.score, `sample ${i} after the restore`);
        grown.label(one.handle, s.label, 5000 + i, none);
        restored.label(other.handle, s.label, 5000 + i, none);
      }
      assert.deepEqual(restored.savedModel()!.model, grown.savedModel()!.model);
      await restored.close();
      await grown.close();
      await twin.close();
      // Saved with its grown features, for the next warm start.
      assert.deepEqual((JSON.parse(readFileSync(join(dir, 'grown', 'grow.model.json'), 'utf8')) as SavedModel).features, ['a', 'b', 'c']);
      assert.equal(tf.memory().numTensors, tensorsBefore, 'every model disposed, the one replaced by the grown one too');
      await first.close();
    });
  }
}

test('a feature gone and one added since the saved model: its weights for the gone one are dropped, said in a warning, and it predicts as before (the gone one was read at its running mean, weight times 0)', async (t) => {
  const logged: string[] = [];
  const { grown, twin } = await startedFromAB(t, 'logistic', 'warm start', logged);
  const random = rng(13);
  for (let i = 0; i < 20; i++) {
    const s = sample(random);
    // The twin lacks a too: read at its running mean, as the model read a gone feature before.
    assert.equal(feed(grown, ['b', 'c'], [s.b, s.c], 1000 + i).score, feed(twin, ['b'], [s.b], 1000 + i).score, `sample ${i}`);
  }
  assert.deepEqual(grown.featureNames, ['b', 'c']);
  assert.deepEqual(
    logged.filter((line) => line.startsWith('model grow: the input')),
    ['model grow: the input has 1 feature the saved model did not (c): the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept; its weights for 1 the input no longer has (a) are dropped'],
  );
  assert.equal(grown.savedModel()!.model.params.w!.shape[0], 2);
  await grown.close();
  await twin.close();
});

test('a feature only gone since the saved model (a user-features horizon removed): the model keeps its features and reads the gone one at its running mean, so its weight adds nothing (the same scores as a model that dropped it), warned once; it learns on, and saves the weight should the feature come back', async (t) => {
  const logged: string[] = [];
  const { dir, grown: gone, twin } = await startedFromAB(t, 'logistic', 'warm start', logged);
  const random = rng(14);
  for (let i = 0; i < 20; i++) {
    const s = sample(random);
    // The twin drops b's weight (fitFeatures, c added at 0): the scores are the same, so b's weight is read times 0.
    assert.equal(feed(gone, ['a'], [s.a], 1000 + i).score, feed(twin, ['a', 'c'], [s.a, s.c], 1000 + i).score, `sample ${i}`);
  }
  assert.deepEqual(gone.featureNames, ['a', 'b']);
  assert.deepEqual(
    logged.filter((line) => line.startsWith('model grow: ') && !line.startsWith('model grow: warm start from ')),
    ["model grow: input features differ from the model's 2: 0 it does not know are ignored, 1 of its own are absent and read as 0 once standardised (at their running mean, which with their variance is left as it was) (a model takes on new features only at its first vector after a warm start or a resume, their weights starting at 0; within a run it keeps its features)"],
  );
  // Labelled: it learns on a (the scores move), and every score is finite.
  let moved = false;
  for (let i = 0; i < 200; i++) {
    const s = sample(random);
    const before = feed(gone, ['a'], [s.a], 2000 + i);
    gone.label(before.handle, s.label, 2000 + i, none);
    assert.ok(Number.isFinite(before.score), `sample ${i}`);
    // A learning step each 8 labels: the 8th just given.
    if (i % 8 === 7) moved ||= feed(gone, ['a'], [s.a], 3000 + i).score !== before.score;
  }
  assert.ok(moved, 'it learns from the labels');
  await gone.close();
  await twin.close();
  assert.deepEqual((JSON.parse(readFileSync(join(dir, 'grown', 'grow.model.json'), 'utf8')) as SavedModel).features, ['a', 'b']);
});

test("gru: its output's rows for the features (after the GRU state's) are remapped by name, an added one's 0, weights and Adam's moments alike; the GRU's own weights kept", async () => {
  const first = await learner('logistic', undefined);
  const config = { ...resolveConfig({ model: { kind: 'gru', units: 3 } }, 'g').model };
  const optimizer = { kind: 'adam' as const, learning_rate: 0.01 };
  const saved = createModel(2, config, optimizer);
  // Weights and moments to tell apart: one step on a batch.
  const seq = { length: 1, types: Int32Array.of(1, 2), categories: Int32Array.of(1, 1), steps: new Float32Array(2 * 3) };
  saved.learnMany({ n: 2, d: 2, x: Float32Array.of(1, 2, 3, 4), seq }, Float32Array.of(1, 0));
  const state = saved.state();
  // Features [a, b] -> [b, x, a].
  const grown = createModel(3, config, optimizer);
  grown.load(remapFeatures(state, config, [1, -1, 0]));
  const after = grown.state();
  const rows = (encoded: { data: string }): number[] => Array.from(decodeFloats(encoded.data));
  for (const [name, suffix] of [['wout', ''], ['wout', '/m'], ['wout', '/v']] as const) {
    const before = rows(suffix === '' ? state.params[name]! : state.optimizer.slots[name + suffix]!);
    const now = rows(suffix === '' ? after.params[name]! : after.optimizer.slots[name + suffix]!);
    assert.deepEqual(now, [...before.slice(0, 3), before[4]!, 0, before[3]!], `${name}${suffix}`);
    assert.notEqual(before[4], 0);
  }
  for (const name of ['embType', 'embCategory', 'wx', 'wzr', 'wh', 'bx', 'bout']) assert.deepEqual(after.params[name], state.params[name], name);
  assert.equal(after.optimizer.step, state.optimizer.step);
  saved.dispose();
  grown.dispose();
  await first.close();
});

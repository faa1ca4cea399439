import { test } from 'node:test';
import assert from 'node:assert/strict';
import { watermark, type ClickEvent, type Element, type StreamRecord } from 'tributary';
import { runOperator, testContext, until } from 'tributary/testing';
import { Subject } from 'rxjs';
import intentModel, { type IntentModelConfig } from './intent.js';
import churnModel from './churn.js';
import { exactAuc, logLoss } from './prequential.js';
import { event, separableIntentStream, summary } from './testdata.js';
import { idPrefix, predictionId, predictionIdAfter } from './learner.js';
import { tf } from './backend.js';
import { createModel } from './models.js';
import type { ModelKind } from './model.js';
import { modelOperatorProperties, resolveConfig } from './config.js';
import { LogisticRegression } from './logistic.js';
import { base, of, reportOf, shiftingIntentStream } from './models-test-helpers.js';

test('prediction ids: deterministic, 16 hex digits, parts separated', () => {
  assert.equal(predictionId('m', 'u1', 's1', 1700000000000, 3), predictionId('m', 'u1', 's1', 1700000000000, 3));
  assert.match(predictionId('m', 'u1'), /^[0-9a-f]{16}$/);
  assert.notEqual(predictionId('ab', 'c'), predictionId('a', 'bc'));
  assert.equal(predictionIdAfter(idPrefix('m', 'u1', 's1'), 1700000000000, 3), predictionId('m', 'u1', 's1', 1700000000000, 3));
  assert.notEqual(predictionId('m', 'u1', 's1', 1, 0), predictionId('m', 'u1', 's1', 1, 1));
  const ids = new Set<string>();
  for (let i = 0; i < 100_000; i++) ids.add(predictionId('intent', `u${i % 977}`, `s${i}`, 1700000000000 + i * 1000, i % 13));
  assert.equal(ids.size, 100_000);
});

for (const kind of ['logistic', 'mlp', 'gru'] as ModelKind[]) {
  test(`${kind}: learns a separable stream (AUC > 0.9) and its reported metrics match its own predictions`, async () => {
    const input = separableIntentStream(300);
    // The stream's own positive rate as the prior (30% buy; intent's default prior is 0.05).
    const { output } = await runOperator(intentModel, { ...base, report: true, model: { kind, hidden: [16], prior: 0.3 } }, input);
    const report = reportOf(output);
    const auc = report.summary.auc;
    assert.ok(auc !== null && auc > 0.9, `${kind} AUC ${auc}`);
    // Every input passes through, in order.
    assert.deepEqual(output.filter((r) => r.kind === 'event' || r.kind === 'session'), input.filter((r) => r.kind !== 'watermark'));
    // Hand-compute the prequential metrics from the emitted predictions and the sessions' outcomes.
    const purchased = new Map((input.filter((r) => r.kind === 'session') as StreamRecord[]).map((r) => [r.sessionId as string, (r.purchased as boolean) ? 1 : 0]));
    const predictions = of(output, 'prediction');
    const scores = predictions.map((p) => p.score as number);
    const labels = predictions.map((p) => purchased.get(p.sessionId as string)!);
    assert.equal(report.summary.n, predictions.length);
    assert.equal(report.summary.positives, labels.filter((l) => l === 1).length);
    assert.ok(Math.abs(auc - exactAuc(scores, labels)!) < 1e-3);
    const loss = scores.reduce((sum, s, i) => sum + logLoss(s, labels[i]!), 0) / scores.length;
    assert.ok(Math.abs(report.summary.logloss - loss) < 1e-9);
    const brier = scores.reduce((sum, s, i) => sum + (s - labels[i]!) ** 2, 0) / scores.length;
    assert.ok(Math.abs(report.summary.brier - brier) < 1e-9);
  });
}

test('gru: reads a one-event sequence (sequence_length 1) too', async () => {
  const { output } = await runOperator(intentModel, { ...base, report: true, model: { kind: 'gru', sequence_length: 1, prior: 0.3 } }, separableIntentStream(150));
  const report = reportOf(output);
  assert.equal(report.summary.n, report.counts.predictions);
  const auc = report.summary.auc;
  assert.ok(auc !== null && auc > 0.9, `AUC ${auc}`);
});

test('batch.learn_size: learns in steps of learn_size labels while predicting in batches of max_size; scores unchanged before the first step', async () => {
  const input = separableIntentStream(60);
  const run = (batch: { max_size: number; learn_size?: number; max_delay: number }) => runOperator(intentModel, { ...base, report: true, batch }, input);
  const { output } = await run({ max_size: 8, learn_size: 32, max_delay: 0 });
  const report = reportOf(output);
  // Every label learnt from, 32 at a time (the last step takes the rest at the end of input).
  assert.equal(report.counts.labels, report.counts.predictions);
  assert.equal(report.counts.learnSteps, Math.ceil(report.counts.labels / 32));
  // The default learns in batches of max_size, one step per full batch of labels.
  const same = await run({ max_size: 8, max_delay: 0 });
  const sameReport = reportOf(same.output);
  assert.equal(sameReport.counts.learnSteps, Math.ceil(sameReport.counts.labels / 8));
  // Until either learns, both predict from the initial model: the same scores.
  const firstScores = (out: Element[]) => of(out, 'prediction').slice(0, 8).map((p) => p.score);
  assert.deepEqual(firstScores(output), firstScores(same.output));
});

test('replayed input (a backtest): batches by size only, so the outputs do not depend on how fast the input was read', async () => {
  const input = separableIntentStream(60);
  // A clock that jumps a second per reading: every pending sample looks older than max_delay.
  const jumpingClock = () => {
    let now = Date.parse('2024-06-01T00:00:00Z');
    return { now: () => (now += 1_000) };
  };
  const scores = async (config: IntentModelConfig, replay: boolean): Promise<number[]> => {
    const { output } = await runOperator(intentModel, config, input, testContext({ clock: jumpingClock(), replay }));
    return of(output, 'prediction').map((p) => p.score as number);
  };
  const bySize = await scores(base, false);
  const withDelay: IntentModelConfig = { ...base, batch: { max_size: 32, max_delay: '200ms' } };
  assert.deepEqual(await scores(withDelay, true), bySize, 'replayed: max_delay does not apply');
  assert.notDeepEqual(await scores(withDelay, false), bySize, 'live: the slow clock cuts batches early, so the model learns at other points');
});

for (const kind of ['mlp', 'gru'] as ModelKind[]) {
  test(`${kind}: test-then-train: a prediction waiting for its micro-batch is made before the model learns from labels given after it (its own session's)`, async () => {
    const t = Date.parse('2024-01-01T00:00:00Z');
    const v = [0.5, 0, 0, 0];
    // Batches of 2: a0 and a1 are predicted together, a2 waits for its batch when the session closes
    // and labels a0 and a1 (bought), each a learning step (learn_size 1).
    const input: Element[] = [
      event('a', 'sa', t, 0, t, 'view', v),
      event('a', 'sa', t + 1000, 1, t, 'view', v),
      event('a', 'sa', t + 2000, 2, t, 'view', v),
      summary('a', 'sa', t, t + 2000, 3, true),
      watermark(Infinity),
    ];
    const { output } = await runOperator(intentModel, { ...base, report: true, model: { kind, hidden: [4] }, batch: { max_size: 2, learn_size: 1, max_delay: 0 } }, input);
    const predictions = of(output, 'prediction');
    assert.equal(predictions.length, 3);
    // Every prediction from the model before any step: a2's would otherwise have learnt its own label.
    assert.deepEqual(predictions.map((p) => p.modelVersion), ['1.0', '1.0', '1.0']);
    // Same features (all standardise to 0) and the same model: the same score (gru reads longer sequences).
    if (kind === 'mlp') assert.equal(predictions[2]!.score, predictions[0]!.score);
    assert.equal(reportOf(output).counts.learnSteps, 3);
  });
}

test('a batch of predictions carries the version of the model that scored them, though a label scored while they are emitted runs a learning step', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const v = [0.5, 0, 0, 0];
  // Both labels come while their batch waits: emitting the first scores its label, a learning step (learn_size 1), before the second is emitted.
  const input: Element[] = [event('a', 'sa', t, 0, t, 'view', v), event('a', 'sa', t + 1000, 1, t, 'view', v), summary('a', 'sa', t, t + 1000, 2, true), watermark(Infinity)];
  const { output } = await runOperator(intentModel, { ...base, report: true, model: { kind: 'mlp', hidden: [4] }, batch: { max_size: 3, learn_size: 1, max_delay: 0 } }, input);
  const predictions = of(output, 'prediction');
  assert.equal(predictions[0]!.score, predictions[1]!.score, 'one model scored both');
  // Before, ['1.0', '1.1'].
  assert.deepEqual(predictions.map((p) => p.modelVersion), ['1.0', '1.0']);
});

test('features that differ from the model\'s (a pipeline edited under a saved model) are read by name, and said in a warning, once', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const edited = (userId: string, sessionId: string, time: number, position: number): Element => {
    const e = event(userId, sessionId, time, position, t, 'view');
    (e as ClickEvent).features = { names: ['signal', 'noise_a', 'cat_0'], values: Float32Array.from([1, 0, 1]) };
    return e;
  };
  const input: Element[] = [
    event('a', 'sa', t, 0, t, 'view', [0.5, 0, 0, 0]),
    edited('b', 'sb', t + 1000, 0),
    edited('b', 'sb', t + 2000, 1),
    watermark(Infinity),
  ];
  const warned: unknown[][] = [];
  const context = testContext();
  const logged = { ...context, logger: { ...context.logger, warn: (...args: unknown[]) => void warned.push(args) } } as typeof context;
  const { output } = await runOperator(intentModel, { ...base }, input, logged);
  assert.equal(of(output, 'prediction').length, 3);
  assert.equal(warned.length, 1, 'one warning for the two edited vectors');
  const [fields, message] = warned[0] as [{ ignored: string[]; missing: string[] }, string];
  assert.deepEqual(fields.ignored, ['cat_0']);
  assert.deepEqual(fields.missing, ['noise_b', 'noise_c']);
  assert.match(message, /1 it does not know are ignored, 2 of its own are absent and read as 0/);
});

test('logistic predicts each event as it comes (no micro-batch wait), with the score the batched kernel gives', async () => {
  const input = separableIntentStream(40, 5);
  // A batch size and delay no run reaches: a batched prediction would wait for the end of input.
  const config: IntentModelConfig = { ...base, batch: { max_size: 100_000, learn_size: 16, max_delay: '1h' } };
  const operator = await intentModel.create(config, testContext());
  await operator.open?.();
  const feed = new Subject<Element>();
  const output: Element[] = [];
  operator.apply(feed).subscribe((r) => output.push(r));
  let checked = 0;
  for (const element of input) {
    const before = of(output, 'prediction').length;
    feed.next(element);
    const features = (element as { features?: { values: Float32Array } }).features;
    if (element.kind !== 'event' || !features || (element as { type?: string }).type === 'purchase') continue;
    // Every event before a purchase leaves with its prediction, before the next event comes.
    assert.equal(of(output, 'prediction').length, before + 1);
    checked++;
  }
  feed.complete();
  await operator.close?.();
  assert.ok(checked > 100);
  // The host score is the kernel's: the same model predicting the same rows in a batch.
  const config2 = resolveConfig({ model: { kind: 'logistic' } }, 'row');
  const model = createModel(4, config2.model, config2.optimizer);
  const x = Float32Array.from({ length: 12 }, (_, i) => (i % 5) - 2);
  model.learnMany({ n: 3, d: 4, x }, Float32Array.of(1, 0, 1));
  const batched = model.predictProbaMany({ n: 3, d: 4, x });
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(model.predictRow!(x, i * 4) - batched[i]!) < 1e-6, `row ${i}`);
  model.dispose();
});

test('logistic, one SGD step at a time: L2 adds l2 * w to each weight\'s gradient and leaves the bias alone (River\'s GLM convention)', async () => {
  await runOperator(intentModel, base, separableIntentStream(5)); // selects the backend
  const config = resolveConfig({ model: { kind: 'logistic', l2: 0.5, prior: 0.5 }, optimizer: { kind: 'sgd', learning_rate: 0.1 } }, 'l2');
  const model = new LogisticRegression(1, config.model, config.optimizer);
  const step = (): number[] => {
    model.learnMany({ n: 1, d: 1, x: Float32Array.of(2) }, Float32Array.of(1));
    // The weight and bias from sigmoid(1 * w + b) and sigmoid(0 * w + b).
    const logit = (p: number): number => Math.log(p / (1 - p));
    const b = logit(model.predictRow!(Float32Array.of(0), 0));
    return [logit(model.predictRow!(Float32Array.of(1), 0)) - b, b];
  };
  // Step 1 (w = 0, b = 0): p = 0.5, error -0.5; w = 0 - 0.1 * (2 * -0.5 + 0.5 * 0) = 0.1, b = 0 - 0.1 * -0.5 = 0.05.
  const [w1, b1] = step();
  assert.ok(Math.abs(w1! - 0.1) < 1e-6 && Math.abs(b1! - 0.05) < 1e-6, `${w1}, ${b1}`);
  // Step 2: p = sigmoid(0.25) = 0.562177, error -0.437823; w = 0.1 - 0.1 * (2 * -0.437823 + 0.5 * 0.1) = 0.182565
  // (2 * l2 * w would give 0.177565); b = 0.05 + 0.0437823 = 0.093782 (penalised too, 0.091282).
  const [w2, b2] = step();
  assert.ok(Math.abs(w2! - 0.1825647) < 1e-6 && Math.abs(b2! - 0.0937823) < 1e-6, `${w2}, ${b2}`);
  model.dispose();
});

test('tensors do not leak: tf.memory().numTensors stays flat across learn and predict batches (read synchronously or not)', async () => {
  await runOperator(intentModel, base, separableIntentStream(5)); // selects the backend
  for (const kind of ['logistic', 'mlp', 'gru'] as ModelKind[]) {
    const config = resolveConfig({ model: { kind, hidden: [8] } }, 'leak');
    const model = createModel(4, config.model, config.optimizer);
    const L = config.model.sequence_length;
    const batch = { n: 8, d: 4, x: new Float32Array(32).fill(0.5), seq: { length: L, types: new Int32Array(8 * L).fill(1), categories: new Int32Array(8 * L).fill(2), steps: new Float32Array(8 * L * 3) } };
    const labels = new Float32Array(8).fill(1);
    model.learnMany(batch, labels);
    model.predictProbaMany(batch);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) {
      model.learnMany(batch, labels);
      // The asynchronous read (the one GPU backends read by) gives the same scores as the synchronous one.
      assert.deepEqual(await model.predictProbaManyAsync(batch), model.predictProbaMany(batch), kind);
    }
    model.optimizer.reset();
    assert.equal(tf.memory().numTensors, before, kind);
    model.dispose();
  }
  // A whole operator run leaves nothing behind once closed.
  const before = tf.memory().numTensors;
  await runOperator(intentModel, { ...base, model: { kind: 'mlp' } }, separableIntentStream(50));
  assert.equal(tf.memory().numTensors, before);
});

test('drift.action: reset_optimizer restarts Adam (its moments and step count) at a drift, and changes nothing with SGD (as its description says, which validate refuses); raise_learning_rate multiplies the rate, which decays back 1% a step', async () => {
  const input = shiftingIntentStream(1200, 800, 0.05, 0.5, 21);
  const run = async (action: 'none' | 'reset_optimizer' | 'raise_learning_rate', kind: 'adam' | 'sgd' = 'adam') => {
    const { output, operator } = await runOperator(intentModel, { ...base, drift: { detector: 'adwin', block: 4, action, factor: 4 }, optimizer: { kind, learning_rate: 0.01 }, report: true }, input);
    const saved = ((await operator.snapshot!()) as { learner: { saved: { model: { optimizer: { step: number; learningRate: number } } } } }).learner.saved.model.optimizer;
    return { drifts: of(output, 'drift'), steps: reportOf(output).counts.learnSteps, optimizer: saved, scores: of(output, 'prediction').map((p) => p.score) };
  };
  // SGD keeps no state a reset forgets: the same predictions as with no action.
  const sgdNone = await run('none', 'sgd');
  const sgdReset = await run('reset_optimizer', 'sgd');
  assert.ok(sgdReset.drifts.length >= 1);
  assert.deepEqual(sgdReset.scores, sgdNone.scores);
  assert.match(modelOperatorProperties.drift.properties.action.description, /with `sgd`, which keeps no such state,\s+it would change nothing, and is a config error/);
  const none = await run('none');
  assert.ok(none.drifts.length >= 1);
  assert.equal(none.optimizer.step, none.steps);
  assert.equal(none.optimizer.learningRate, 0.01);
  const reset = await run('reset_optimizer');
  assert.deepEqual(reset.drifts.map((d) => d.action), reset.drifts.map(() => 'reset_optimizer'));
  assert.ok(reset.optimizer.step < reset.steps, `step ${reset.optimizer.step} of ${reset.steps}: counted again from the last drift`);
  assert.notDeepEqual(reset.scores, none.scores, 'Adam forgot its moments');
  const raised = await run('raise_learning_rate');
  assert.ok(raised.drifts.length >= 1);
  // 0.04 at the drift, times 0.99 per step since, never below 0.01.
  assert.ok(raised.optimizer.learningRate > 0.01 && raised.optimizer.learningRate < 0.04, `learning rate ${raised.optimizer.learningRate}`);
});

test('two model stages of one pipeline cannot share a name (their prediction ids, metrics and saved model would collide)', async () => {
  const shared = new Map<string, unknown>();
  const first = await intentModel.create({ backend: 'cpu', name: 'intent' }, testContext({ shared, label: 'stage-intent-model-2' }));
  await assert.rejects(async () => churnModel.create({ backend: 'cpu', name: 'intent' }, testContext({ shared, label: 'stage-churn-model-3' })), /^Error: name: 'intent' is already the model name of stage stage-intent-model-2/);
  // Another pipeline (its own shared map) may use the name.
  const other = await churnModel.create({ backend: 'cpu', name: 'intent' }, testContext({ shared: new Map() }));
  await first.close?.();
  await other.close?.();
});

test('a model that diverges (scores not a number) keeps passing its input through: its predictions are counted, not scored, and said once', async () => {
  const input = separableIntentStream(120, 4);
  const errors: unknown[][] = [];
  const context = testContext();
  const logged = { ...context, logger: { ...context.logger, error: (...args: unknown[]) => void errors.push(args) } } as typeof context;
  // A learning rate no one means: the weights overflow float32 within a few steps, then 0 * Infinity is NaN.
  const { output } = await runOperator(intentModel, { ...base, report: true, batch: { max_size: 8, max_delay: 0 }, optimizer: { kind: 'adam', learning_rate: 1e38 } }, input, logged);
  assert.deepEqual(logged.deadLetters, [], 'no input is dead-lettered');
  assert.deepEqual(output.filter((r) => r.kind === 'event' || r.kind === 'session'), input.filter((r) => r.kind !== 'watermark'));
  const report = reportOf(output);
  const nan = of(output, 'prediction').filter((p) => !Number.isFinite(p.score as number)).length;
  assert.ok(nan > 0, 'the model diverged');
  assert.equal(report.counts.invalidScores, nan);
  assert.equal(report.summary.n + nan, report.counts.predictions);
  assert.ok(Number.isFinite(report.summary.logloss) && Number.isFinite(report.summary.brier));
  assert.equal(errors.length, 1);
  assert.match(errors[0]![1] as string, /the model diverged/);
});

test("while the runtime holds the sources (a checkpoint), a model's batch timer emits nothing: the batch is predicted at the first tick after", async () => {
  let now = Date.parse('2024-06-01T00:00:00Z');
  let held: Promise<void> | undefined;
  // The model's timer asks `held` at each tick (every batch.max_delay): the ticks that found the sources held.
  let heldTicks = 0;
  const context = testContext({ clock: { now: () => now }, held: () => {
      if (held) heldTicks++;
      return held;
    },
  });
  // An mlp predicts in micro-batches (a logistic model scores each sample at once).
  const operator = await intentModel.create({ ...base, model: { kind: 'mlp', hidden: [4] }, batch: { max_size: 1000, max_delay: '20ms' } } as never, context);
  await operator.open?.();
  const input = new Subject<Element>();
  const output: Element[] = [];
  const subscription = operator.apply(input).subscribe({ next: (record) => void output.push(record) });
  try {
    const t = Date.parse('2024-01-01T00:00:00Z');
    for (let p = 0; p < 5; p++) input.next(event('a', 'sa', t + p * 1000, p, t, 'view', [0.5, 0, 0, 0]));
    assert.equal(of(output, 'prediction').length, 0, 'a batch of 5 of 1000 waits');
    let release!: () => void;
    held = new Promise((resolve) => (release = resolve));
    now += 60_000; // the batch is overdue: the next tick would predict it
    // Counted, not timed: on a loaded host 100 ms may hold no tick at all, and the check below would pass unasked.
    await until(() => heldTicks >= 3, 'three ticks of the batch timer while held');
    assert.equal(of(output, 'prediction').length, 0, 'nothing emitted while held');
    held = undefined;
    release();
    await until(() => of(output, 'prediction').length >= 5, 'the batch predicted after the hold', 10_000);
    assert.equal(of(output, 'prediction').length, 5, 'predicted at the first tick after');
  } finally {
    subscription.unsubscribe();
    await operator.close?.();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineOperator, FeatureBlock, isClickEvent, MetricsHub, recordOperator, type Emit } from 'tributary';
import { pino } from 'pino';
import { runOperator, runYaml, tempFolder, testContext } from 'tributary/testing';
import intentModel, { type IntentModelConfig } from './intent.js';
import { OnlineLearner, type SavedModel } from './learner.js';
import { resolveConfig } from './config.js';
import { Normaliser } from './normaliser.js';
import { rng } from './testdata.js';
import { base, of, reportOf, shiftingIntentStream } from './models-test-helpers.js';


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

test("warmStart.steps is the saved model's learning steps, a drift's reset_optimizer included, and adds up over warm starts (was: Adam's step count, which that reset restarts)", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'steps', checkpoint: { dir }, drift: { detector: 'adwin', block: 4, action: 'reset_optimizer' }, optimizer: { kind: 'adam', learning_rate: 0.01 }, report: true };
  const first = await runOperator(intentModel, config, shiftingIntentStream(1200, 800, 0.05, 0.5, 21));
  assert.ok(of(first.output, 'drift').length >= 1, 'a drift reset the optimiser');
  const trained = reportOf(first.output).counts.learnSteps;
  const saved = JSON.parse(readFileSync(join(dir, 'steps.model.json'), 'utf8')) as SavedModel;
  assert.ok(saved.model.optimizer.step < trained, `Adam's ${saved.model.optimizer.step} steps, counted again from the drift, of ${trained}`);
  const second = await runOperator(intentModel, config, shiftingIntentStream(100, 1000, 0.05, 0.5, 3));
  const secondReport = reportOf(second.output);
  assert.equal(secondReport.warmStart?.steps, trained);
  assert.equal(saved.learnSteps, trained);
  // Resumed from the second run's checkpoint: its counts go on, the warm start's steps still added.
  const resumed = await runOperator(intentModel, config, shiftingIntentStream(20, 1000, 0.05, 0.5, 6), testContext(), { restore: second.state });
  const resumedSteps = reportOf(resumed.output).counts.learnSteps;
  assert.ok(resumedSteps > secondReport.counts.learnSteps);
  assert.equal((JSON.parse(readFileSync(join(dir, 'steps.model.json'), 'utf8')) as SavedModel).learnSteps, trained + resumedSteps);
  const third = await runOperator(intentModel, config, shiftingIntentStream(10, 1000, 0.05, 0.5, 4));
  assert.equal(reportOf(third.output).warmStart?.steps, trained + resumedSteps);
  // A file saved before models counted their steps: the optimiser's count, the best there is.
  const { learnSteps: _, ...older } = JSON.parse(readFileSync(join(dir, 'steps.model.json'), 'utf8')) as SavedModel;
  writeFileSync(join(dir, 'steps.model.json'), JSON.stringify(older));
  const fourth = await runOperator(intentModel, config, shiftingIntentStream(10, 1000, 0.05, 0.5, 5));
  assert.equal(reportOf(fourth.output).warmStart?.steps, older.model.optimizer.step);
});

test("a model file saved by another pipeline is warned of as it warm-starts: this pipeline saves over it (was: an info line, and the trainer's model replaced at close)", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'shared', checkpoint: { dir } };
  const file = join(dir, 'shared.model.json');
  const logs = (pipeline: string): { context: ReturnType<typeof testContext>; warned: string[]; infos: string[] } => {
    const warned: string[] = [];
    const infos: string[] = [];
    const context = testContext({ pipeline });
    const logger = { ...context.logger, warn: (_: unknown, message?: string) => void (message !== undefined && warned.push(message)), info: (_: unknown, message?: string) => void (message !== undefined && infos.push(message)) };
    return { context: { ...context, logger } as typeof context, warned, infos };
  };
  await runOperator(intentModel, config, shiftingIntentStream(40, 1000, 0.05, 0.5, 1), testContext({ pipeline: 'trainer' }));
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as SavedModel).pipeline, 'trainer');
  // The trainer again: its own model, said as before (an info line), now naming the steps and that it is saved over.
  const again = logs('trainer');
  await runOperator(intentModel, config, shiftingIntentStream(10, 1000, 0.05, 0.5, 2), again.context);
  assert.deepEqual(again.warned, []);
  assert.ok(again.infos.some((message) => /^model shared: warm start from \S+shared\.model\.json \(\d+ learning steps; saved over at close\)$/.test(message)), again.infos.join('\n'));
  // Another pipeline, same model name and folder: warned, naming both pipelines and what keeps the trainer's model.
  const check = logs('warm-check');
  await runOperator(intentModel, config, shiftingIntentStream(10, 1000, 0.05, 0.5, 3), check.context);
  assert.equal(check.warned.length, 1, check.warned.join('\n'));
  assert.match(
    check.warned[0]!,
    /^model shared: warm start from \S+shared\.model\.json \(\d+ learning steps\), saved by pipeline trainer, not this run's pipeline warm-check: this run saves its model to the same file and replaces that one's; give this stage another checkpoint\.dir \(or name\) to keep that pipeline's model \(where that pipeline is this one, its name or file changed since, nothing is to be done\)$/,
  );
  // As it says: the file is the check's now.
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as SavedModel).pipeline, 'warm-check');
});

test("a feature value that is not finite (NaN, +-Infinity) is read at the feature's running mean and leaves its statistics as they were, counted apart from absent ones and warned of once (was: read as a raw 0, which moved its mean and variance)", async () => {
  const logged: string[] = [];
  const fed = await trainedOnABC(5, logged);
  const before = fed.normaliser().state();
  const scores = [Number.NaN, Infinity, -Infinity].map((c) => fed.score(['a', 'b', 'c'], [0.3, 0.6, c]));
  const after = fed.normaliser().state();
  assert.equal(after.mean[2], before.mean[2]);
  assert.equal(after.m2[2], before.m2[2]);
  assert.notEqual(after.mean[0], before.mean[0]);
  assert.deepEqual({ nonFinite: after.nonFinite, absent: after.absent }, { nonFinite: [0, 0, 3], absent: undefined });
  // Each scored as the same model fed c at its running mean (a twin, c's mean moving no more than a's and b's do).
  const twin = await trainedOnABC(5);
  const atMean = [0, 1, 2].map(() => twin.score(['a', 'b', 'c'], [0.3, 0.6, before.mean[2]!]));
  for (const [k, score] of scores.entries()) assert.ok(Math.abs(score - atMean[k]!) < 1e-5, `not finite ${score}, at the mean ${atMean[k]}`);
  // Said once for the feature, naming it and the value (no runtime here: no stage to name).
  assert.equal(logged.length, 1, logged.join('\n'));
  assert.match(logged[0]!, /^model abc: feature c has a value that is not finite \(NaN\): read at its running mean \(standardised 0\), its statistics left as they were; each such value is counted/);
  const report = fed.learner.report() as unknown as { skippedFeatureValues: { absent: Record<string, number>; nonFinite: Record<string, number> } };
  assert.deepEqual(report.skippedFeatureValues, { absent: {}, nonFinite: { c: 3 } });
  for (const { learner } of [fed, twin]) await learner.close();
});

test('the normaliser counts non-finite values per feature beside absent ones, in its saved state too, each left out of the feature\'s own count', () => {
  const normaliser = new Normaliser(2);
  const out = new Float32Array(2);
  normaliser.updateAndTransform([1, 2], out, 0);
  normaliser.updateAndTransform([3, Number.NaN], out, 0);
  assert.equal(out[1], 0);
  normaliser.updateAndTransform([5, 4], out, 0, Uint8Array.of(0, 0));
  normaliser.updateAndTransform([Infinity, 0], out, 0, Uint8Array.of(0, 1));
  const state = normaliser.state();
  // Feature 0 saw 1, 3 and 5 (mean 3, m2 8); feature 1 saw 2 and 4 (mean 3, m2 2).
  assert.deepEqual(state, { n: 4, mean: [3, 3], m2: [8, 2], absent: [0, 1], nonFinite: [1, 1] });
  assert.deepEqual(normaliser.skipped.firstNonFinite, [1, 0]);
  assert.deepEqual(normaliser.skipped.takeUncounted(), { absent: 1, nonFinite: 2 });
  assert.deepEqual(normaliser.skipped.takeUncounted(), { absent: 0, nonFinite: 0 });
  const loaded = new Normaliser(2);
  loaded.load(JSON.parse(JSON.stringify(state)) as typeof state);
  assert.deepEqual(loaded.state(), state);
  assert.throws(() => new Normaliser(3).load({ n: 1, mean: [0, 0, 0], m2: [0, 0, 0], nonFinite: [0] }), /non-finite values of 1 features, the model has 3/);
});

/** A user's feature stage with a ratio that is NaN until the session's first cart (0 / 0): the bug the models read around. */
const purchaseRate = defineOperator<Record<string, never>>({
  name: 'purchase-rate',
  summary: 'Purchases per cart so far in the session (tests only).',
  emits: [],
  config: { type: 'object', additionalProperties: false, properties: {} },
  featureNames: () => ['s_purchases_per_cart'],
  create(_config, context) {
    const block = new FeatureBlock(['s_purchases_per_cart']);
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (isClickEvent(record) && record.features !== undefined) {
            const names = record.features.names;
            const carts = record.features.values[names.indexOf('s_carts')]!;
            const purchases = record.features.values[names.indexOf('s_purchases')]!;
            const values = block.append(record);
            values[block.offset] = purchases / carts;
          }
          emit(record);
        },
      })),
    };
  },
});

test('a non-finite feature value a stage of the pipeline makes is warned of naming the stage that appends it, and counted in the metrics and the report', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const hub = new MetricsHub();
  const yaml = `sources: [{type: synthetic, users: 30, events: 600}]
stages:
  - {type: sessionizer}
  - {type: session-features}
  - {type: purchase-rate}
  - {type: intent-model, name: intent, report: true, batch: {max_size: 8, max_delay: 0}}
sinks: [{type: memory, kinds: [model_metrics]}]
`;
  const run = await runYaml(yaml, { plugins: [purchaseRate], logger, metrics: hub });
  assert.equal(run.stats.deadLettered, 0);
  const warned = lines.filter((line) => typeof line.msg === 'string' && line.msg.includes('not finite'));
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.match(String(warned[0]!.msg), /^model intent: feature s_purchases_per_cart \(appended by stage stage-purchase-rate-2\) has a value that is not finite \(NaN\)/);
  assert.equal(warned[0]!.madeBy, 'stage-purchase-rate-2');
  const report = run.outputs[0]![0] as unknown as { skippedFeatureValues: { absent: Record<string, number>; nonFinite: Record<string, number> } };
  const count = report.skippedFeatureValues.nonFinite.s_purchases_per_cart!;
  assert.ok(count > 0, JSON.stringify(report.skippedFeatureValues));
  assert.deepEqual(Object.keys(report.skippedFeatureValues.nonFinite), ['s_purchases_per_cart']);
  const series = (await hub.registry.metrics()).split('\n').find((line) => line.startsWith('tributary_model_feature_values_non_finite_total{'));
  assert.ok(series !== undefined && /model="intent"/.test(series), series);
  assert.equal(Number(series.split(' ').at(-1)), count);
});

test("two model stages given one model file cannot run at once: the second is refused at its start (TRIB_ERR_OUTPUT_LOCKED), naming the file, the holder and the way out (was: each saved over the other's model, silently); a backtest, which never saves it, is not", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'shared', checkpoint: { dir } };
  const file = join(dir, 'shared.model.json');
  const opened = async (pipeline: string, options: { replay?: boolean } = {}) => {
    const operator = await intentModel.create({ ...config }, testContext({ pipeline, ...options }));
    await operator.open?.();
    return operator;
  };
  const trainer = await opened('trainer');
  // Another pipeline of this process (a `tributary run` of a folder), the same model name and folder.
  await assert.rejects(opened('warm-check'), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_OUTPUT_LOCKED');
    assert.match(error.message, /^model shared: model file \S+shared\.model\.json is saved by this process already \(pipeline 'trainer'\)/);
    assert.match(error.message, /give this stage another checkpoint\.dir \(or name\); to score with that model without saving over it, run this pipeline as a backtest/);
    return true;
  });
  // A backtest reads the file, never saves it: not refused.
  await (await opened('backtest', { replay: true })).close?.();
  await trainer.close?.();
  assert.ok(!existsSync(`${file}.lock`), 'released at close');
  // Another process holding it (a second daemon): refused, naming its pid.
  const child = spawn(process.execPath, ['--input-type=module', '-e', `const { takeLock } = await import('tributary'); const { pino } = await import('pino'); takeLock(${JSON.stringify(`${file}.lock`)}, 'model file', { pipeline: 'other-daemon', logger: pino({ level: 'silent' }), user: 'test', heldAs: 'saved', shared: false }); console.log('locked'); setInterval(() => {}, 1000);`], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => void child.kill());
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => void (chunk.toString().includes('locked') && resolve()));
    child.on('exit', (code) => reject(new Error(`the lock holder exited (${code})`)));
  });
  await assert.rejects(opened('second-daemon'), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_OUTPUT_LOCKED');
    assert.match(error.message, new RegExp(`is saved by pid ${child.pid} on \\S+ \\(pipeline 'other-daemon'`));
    return true;
  });
  child.kill();
  await once(child, 'exit');
  // Gone, its lock is taken over: the model file is this run's again.
  await (await opened('trainer')).close?.();
});

test('a run that starts afresh (checkpoint.warm_start: false) over a model file another pipeline saved is warned of: it saves its model over it (was: replaced at close, silently)', async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'shared', checkpoint: { dir } };
  await runOperator(intentModel, config, shiftingIntentStream(40, 1000, 0.05, 0.5, 1), testContext({ pipeline: 'trainer' }));
  const warned: string[] = [];
  const context = testContext({ pipeline: 'fresh' });
  const logger = { ...context.logger, warn: (_: unknown, message?: string) => void (message !== undefined && warned.push(message)) };
  await runOperator(intentModel, { ...config, checkpoint: { dir, warm_start: false } }, shiftingIntentStream(10, 1000, 0.05, 0.5, 2), { ...context, logger } as typeof context);
  assert.equal(warned.length, 1, warned.join('\n'));
  assert.match(warned[0]!, /^model shared: \S+shared\.model\.json holds the model saved by pipeline trainer, not this run's pipeline fresh \(\d+ learning steps\); this run starts afresh \(checkpoint\.warm_start: false\) and saves its model over it; give this stage another checkpoint\.dir \(or name\) to keep that pipeline's model/);
  // The trainer's own fresh start over its own file: nothing to say.
  const again: string[] = [];
  const own = testContext({ pipeline: 'trainer' });
  await runOperator(intentModel, { ...config, checkpoint: { dir, warm_start: false } }, shiftingIntentStream(10, 1000, 0.05, 0.5, 3), { ...own, logger: { ...own.logger, warn: (_: unknown, message?: string) => void (message !== undefined && again.push(message)) } } as typeof own);
  // (The file is the fresh pipeline's now: the trainer is told it replaces that one.)
  assert.equal(again.length, 1, again.join('\n'));
  assert.match(again[0]!, /holds the model saved by pipeline fresh, not this run's pipeline trainer/);
});

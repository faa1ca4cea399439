import { mock, test } from 'node:test';
import { setImmediate, setTimeout } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import assert from 'node:assert/strict';
import { loadTf, runModelsInWorkers, useBackend } from './backend.js';
import { resolveConfig } from './config.js';
import type { Batch, ModelKind } from './model.js';
import { createModel } from './models.js';
import { RemoteModel } from './remote.js';
import intentModel from './intent.js';
import { rng, separableIntentStream } from './testdata.js';
import { runOperator, silentLogger, testContext } from 'tributary/testing';

const d = 6;

/** Seeded batches of `n` rows (and event sequences, for gru), with labels. */
function batches(kind: ModelKind, count: number, n: number, seed: number): { batch: Batch; labels: Float32Array }[] {
  const random = rng(seed);
  const L = resolveConfig({ model: { kind } }, 'remote').model.sequence_length;
  return Array.from({ length: count }, () => {
    const x = Float32Array.from({ length: n * d }, () => random() * 4 - 2);
    const batch: Batch = { n, d, x };
    if (kind === 'gru') {
      batch.seq = {
        length: L,
        types: Int32Array.from({ length: n * L }, (_, i) => (i % L < i % 3 ? 0 : 1 + Math.floor(random() * 4))),
        categories: Int32Array.from({ length: n * L }, () => 1 + Math.floor(random() * 60)),
        steps: Float32Array.from({ length: n * L * 3 }, () => random()),
      };
    }
    return { batch, labels: Float32Array.from({ length: n }, (_, i) => (x[i * d]! + x[i * d + 1]! > 0 ? 1 : 0)) };
  });
}

test('a model a worker holds computes what the same model in this thread does: predictions, learning steps, state, load, learning rate, reset', async () => {
  // Both on wasm: the same kernels, so the same floats, whichever thread runs them.
  await useBackend('wasm', silentLogger);
  for (const kind of ['logistic', 'mlp', 'gru'] as ModelKind[]) {
    const config = resolveConfig({ model: { kind, hidden: [8, 4] }, optimizer: { kind: 'adam', learning_rate: 0.02 } }, 'remote');
    const local = createModel(d, config.model, config.optimizer);
    const remote = new RemoteModel(d, config.model, config.optimizer, 'wasm');
    assert.equal(remote.opened, 'wasm');
    const stream = batches(kind, 12, 16, 7);
    stream.forEach(({ batch, labels }, i) => {
      assert.deepEqual(remote.predictProbaMany(batch), local.predictProbaMany(batch), `${kind}: batch ${i}`);
      local.learnMany(batch, labels);
      remote.learnMany(batch, labels);
      if (i === 4) local.optimizer.learningRate = remote.optimizer.learningRate = 0.05;
      if (i === 8) {
        local.optimizer.reset();
        remote.optimizer.reset();
      }
    });
    assert.equal(remote.optimizer.learningRate, 0.05);
    const state = local.state();
    assert.deepEqual(remote.state(), state, kind);
    // Another worker's model, loaded with that state, predicts as the one that learnt it.
    const loaded = new RemoteModel(d, config.model, config.optimizer, 'wasm');
    loaded.load(state);
    assert.equal(loaded.optimizer.learningRate, 0.05);
    assert.deepEqual(loaded.predictProbaMany(stream[0]!.batch), local.predictProbaMany(stream[0]!.batch), kind);
    for (const model of [local, remote, loaded]) model.dispose();
  }
});

test('a model a worker holds: a failed learning step (nothing waits for it) is reported at once, and the model takes no more requests; a state of another model is refused', async () => {
  await loadTf();
  const config = resolveConfig({ model: { kind: 'logistic' } }, 'remote');
  const failures: Error[] = [];
  const remote = new RemoteModel(d, config.model, config.optimizer, 'cpu', (error) => failures.push(error));
  const [{ batch, labels }] = batches('logistic', 1, 4, 3);
  assert.equal(remote.predictProbaMany(batch!).length, 4);
  // Rows of 5 values for a model of 6 features: the step fails in the worker, where nothing waits for it.
  remote.learnMany({ n: 4, d: 5, x: batch.x!.slice(0, 20) }, labels);
  // Before, nothing was said until the next request that waits (later steps dropped unseen meanwhile), and the worker went on.
  for (const started = performance.now(); failures.length === 0 && performance.now() - started < 10_000; ) await setTimeout(5);
  assert.equal(failures.length, 1, 'told without another request');
  assert.match(failures[0]!.message, /^the logistic model's worker failed: 'learn' failed: /);
  assert.throws(() => remote.learnMany(batch!, labels), /the logistic model's worker failed: 'learn' failed: /);
  assert.throws(() => remote.predictProbaMany(batch!), /the logistic model's worker failed: 'learn' failed: /);
  assert.equal(failures.length, 1, 'told once');
  remote.dispose();
  // A request that waits is told its own error, and the worker goes on.
  const other = new RemoteModel(d, config.model, config.optimizer, 'cpu', (error) => failures.push(error));
  const mlp = resolveConfig({ model: { kind: 'mlp' } }, 'remote');
  const mlpModel = createModel(d, mlp.model, mlp.optimizer);
  assert.throws(() => other.load(mlpModel.state()), /the logistic model's worker: saved model is mlp, this one is logistic/);
  assert.equal(other.predictProbaMany(batch!).length, 4);
  mlpModel.dispose();
  other.dispose();
  assert.equal(failures.length, 1, 'a disposed model\'s worker ending is no failure');
});

test('a model operator whose model a worker holds fails its run when a learning step fails there (before, one record was dead-lettered and the run went on)', async () => {
  await loadTf();
  runModelsInWorkers('cpu');
  const learn = RemoteModel.prototype.learnMany;
  let steps = 0;
  const broken = mock.method(RemoteModel.prototype, 'learnMany', function (this: RemoteModel, batch: Batch, labels: Float32Array) {
    // The second step's rows are one value short: it fails in the worker.
    if (++steps === 2) return learn.call(this, { n: batch.n, d: batch.d - 1, x1: batch.x1!.slice(0, batch.n * batch.d) }, labels);
    return learn.call(this, batch, labels);
  });
  const context = testContext({ logger: silentLogger });
  try {
    await runOperator(intentModel, { backend: 'cpu', model: { kind: 'mlp', hidden: [8] }, batch: { max_size: 16, max_delay: 0 } }, separableIntentStream(120, 5), context).catch(() => undefined);
  } finally {
    broken.mock.restore();
    runModelsInWorkers(undefined);
  }
  assert.ok(steps >= 2);
  assert.equal(context.failures.length, 1);
  assert.match(context.failures[0]!.message, /^model under-test: the mlp model's worker failed: 'learn' failed: /);
});

test('a model a worker holds: once its worker has ended (a device lost, say), a request fails at once, naming it, and dispose still returns', async () => {
  await loadTf();
  const config = resolveConfig({ model: { kind: 'logistic' } }, 'remote');
  const remote = new RemoteModel(d, config.model, config.optimizer, 'cpu');
  const [{ batch }] = batches('logistic', 1, 4, 3);
  const worker = (remote as unknown as { worker: Worker }).worker;
  await worker.terminate();
  await setImmediate(); // the exit event is seen between requests
  const started = performance.now();
  assert.throws(() => remote.predictProbaMany(batch!), /the logistic model's worker exited \(code 1\)/);
  assert.ok(performance.now() - started < 10_000, 'at once, not at the 120 s answer timeout');
  remote.dispose();
});

test('an intent model operator whose models workers hold gives the outputs and state of the same operator with its models in this thread (mlp, gru)', async () => {
  await useBackend('wasm', silentLogger);
  for (const kind of ['mlp', 'gru'] as const) {
    const config = { backend: 'wasm' as const, model: { kind, hidden: [8] }, batch: { max_size: 16, max_delay: 0 }, report: true };
    const stream = separableIntentStream(120, 5);
    const inThread = await runOperator(intentModel, config, stream);
    runModelsInWorkers('wasm');
    try {
      const inWorkers = await runOperator(intentModel, config, stream);
      const predictions = (run: typeof inThread): unknown[] => run.output.filter((r) => r.kind === 'prediction' || r.kind === 'model_metrics');
      assert.ok(predictions(inThread).length > 300, kind);
      assert.deepEqual(predictions(inWorkers), predictions(inThread), kind);
      assert.deepEqual(inWorkers.state, inThread.state, kind);
    } finally {
      runModelsInWorkers(undefined);
    }
  }
});

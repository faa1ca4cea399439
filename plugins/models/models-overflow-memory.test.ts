// What a prediction not held by a full label buffer costs while its label is awaited: a file of its own, as it reads the
// heap after full collections (gc exposed for this process only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { watermark, type ClickEvent, type Emit } from 'tributary';
import { testContext } from 'tributary/testing';
import { OnlineLearner, type SampleHandle } from './learner.js';
import { resolveConfig } from './config.js';
import intentModel from './intent.js';
import churnModel from './churn.js';
import { summary } from './testdata.js';
import { day, hour, min, reportOf, fedOperator } from './models-test-helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap and array buffers (the learner's rows live in slabs) after full collections. */
function used(): { heap: number; buffers: number } {
  gc();
  gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heap: heapUsed, buffers: arrayBuffers };
}

const t0 = Date.parse('2024-01-01T00:00:00Z');
// As a pipeline's feature stages give them (bench/model-state.ts's default): rows big enough to see.
const names = Array.from({ length: 42 }, (_, i) => `f${i}`);
const perSession = 10;
const maxSize = 50;
const churnUsers = 20;

function event(session: number, position: number): ClickEvent {
  const start = t0 + session * 1000;
  const time = start + position * min;
  const values = Float32Array.from(names, (_, i) => ((session * 31 + position * 7 + i) % 97) / 97);
  return {
    kind: 'event', userId: `user-${session}`, time, type: 'view', category: 'c1', price: 10,
    session: { id: `s-${session}`, position, sinceStart: time - start, sincePrevious: position === 0 ? 0 : min, start },
    features: { names, values },
  };
}

type Task = 'intent' | 'churn';
type Kind = 'logistic' | 'mlp';

/**
 * A run whose label buffer (max_size 50) is full long before any label: `units` open intent sessions of 10 events
 * (or churn sessions, one prediction each, of 20 users), all awaiting their labels. Returns what the operator holds then
 * (heap and buffers grown), and, once every label has come, the run's report.
 */
async function overflowing(task: Task, kind: Kind, units: number) {
  const model = kind === 'mlp' ? { kind, hidden: [8] } : { kind };
  const config = { backend: 'cpu', model, batch: { max_size: 32, max_delay: 0 }, report: true, label_buffer: { max_size: maxSize, timeout: '400d' } } as const;
  const before = used();
  const run = await fedOperator(task === 'intent' ? intentModel : churnModel, config as never);
  for (let u = 0; u < units; u++) {
    if (task === 'intent') for (let p = 0; p < perSession; p++) run.input.next(event(u, p));
    else {
      // Sessions of 20 users, an hour apart (so that a user's state is counted once, not per prediction).
      const user = u % churnUsers;
      const start = t0 + Math.floor(u / churnUsers) * hour + user * 1000;
      run.input.next({ ...event(user, 0), time: start, session: { id: `s-${u}`, position: 0, sinceStart: 0, sincePrevious: 0, start } });
      run.input.next(summary(`user-${user}`, `s-${u}`, start, start, 1, false));
    }
  }
  // What it emitted goes: only what the operator holds is counted.
  run.output.length = 0;
  const after = used();
  return {
    heap: after.heap - before.heap,
    buffers: after.buffers - before.buffers,
    predictions: task === 'intent' ? units * perSession : units,
    /** Labels every prediction (intent: its session closes; churn: the horizon passes) and ends the input. */
    async finish() {
      if (task === 'intent') for (let u = 0; u < units; u++) run.input.next(summary(`user-${u}`, `s-${u}`, t0 + u * 1000, t0 + u * 1000 + (perSession - 1) * min, perSession, false));
      run.input.next(watermark(t0 + units * hour + 30 * day));
      // The end of input: the report.
      run.input.next(watermark(Infinity));
      run.input.complete();
      await run.done;
      return reportOf(run.output);
    },
  };
}

// Warm-up: the backends and code allocate once.
for (const kind of ['logistic', 'mlp'] as const) await (await overflowing('intent', kind, 20)).finish();
await (await overflowing('churn', 'logistic', 20)).finish();

for (const [task, kind] of [['intent', 'logistic'], ['intent', 'mlp'], ['churn', 'logistic'], ['churn', 'mlp']] as const) {
  test(`label buffer (${task}, ${kind}): a prediction not held by a full one keeps no row while its label is awaited (was: its handle kept its row and slab, memory unbounded by max_size), and its label still counts as late`, async () => {
    // Two runs, n and 2n units, all but max_size of their predictions not held: the difference is what n more such cost.
    // The least of three tries: a collection now and then leaves a buffer of megabytes (the tries before and after have none).
    const units = task === 'intent' ? 300 : 2000;
    const rowBytes = (names.length + 1) * 4;
    let buffersEach = Infinity;
    let heapEach = Infinity;
    const runs = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const one = await overflowing(task, kind, units);
      const two = await overflowing(task, kind, 2 * units);
      runs.push(one, two);
      const more = two.predictions - one.predictions;
      buffersEach = Math.min(buffersEach, (two.buffers - one.buffers) / more);
      heapEach = Math.min(heapEach, (two.heap + two.buffers - one.heap - one.buffers) / more);
    }
    // A row is 43 floats for intent (172 B; churn's 13, 52 B): before, each unheld prediction kept its own (and its slab).
    assert.ok(buffersEach < rowBytes / 10, `${buffersEach.toFixed(1)} B of array buffers per prediction not held`);
    // Intent keeps a slot of its session's list per prediction (a shared stand-in): before, its sample too (336-455 B in all).
    // Churn's pending row (its deadline, session, a small handle) is most of what it keeps per prediction, unheld or not.
    if (task === 'intent') assert.ok(heapEach < 150, `${heapEach.toFixed(0)} B per prediction not held`);
    for (const run of runs) {
      const report = await run.finish();
      assert.equal(report.counts.predictions, run.predictions);
      assert.equal(report.counts.overflow, run.predictions - maxSize);
      assert.equal(report.counts.labels, maxSize);
      // Every label of a prediction not held came, late.
      assert.equal(report.counts.lateLabels, report.counts.overflow);
    }
  });
}

test('label buffer (mlp, micro-batches of 32): held predictions scattered among those not held keep only their own slabs, not one each (was: each held one kept the slab it shared with unheld ones)', async () => {
  const slabBytes = 32 * (names.length + 1) * 4;
  let grown = Infinity;
  for (let attempt = 0; attempt < 3; attempt++) {
    const learner = new OnlineLearner(resolveConfig({ backend: 'cpu', model: { kind: 'mlp', hidden: [4] }, batch: { max_size: 32, learn_size: 1000, max_delay: 0 }, label_buffer: { max_size: maxSize, timeout: '400d' } }, 'scattered'), 'intent', testContext());
    await learner.open();
    const emit: Emit = () => {};
    const values = new Float32Array(names.length).fill(0.5);
    // Labels come in one by one, each making room for one more: the held ones lie one in every 20 or so predictions.
    const handles: SampleHandle[] = [learner.submit({ id: 'p0', userId: 'u0', sessionId: 's0', time: 0, names, values }, emit)];
    // From here on (the model built, its buffers made), what the learner keeps.
    const before = used().buffers;
    for (let i = 1; i < 3000; i++) {
      if (i >= 1000 && i % 20 === 0) {
        const held = handles.find((h) => !h.released);
        if (held) learner.label(held, 0, i * 1000, emit);
      }
      handles.push(learner.submit({ id: `p${i}`, userId: `u${i}`, sessionId: `s${i}`, time: i * 1000, names, values }, emit));
    }
    learner.flushPredictions(emit);
    // The task's handles go: what is left is the learner's (held and labelled ones awaiting learn_size keep their rows).
    handles.length = 0;
    grown = Math.min(grown, used().buffers - before);
    await learner.close();
  }
  // 50 held and 100 labelled awaiting learning: 5 slabs of their own. Before, scattered among unheld ones, nearly every slab.
  assert.ok(grown < 20 * slabBytes, `${(grown / slabBytes).toFixed(1)} slabs`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { watermark, type ModelCounts } from 'tributary';
import intentModel from './intent.js';
import { event, summary } from './testdata.js';
import { base, fedOperator, of, reportOf } from './models-test-helpers.js';

// An erasure request (Operator.forget) and the model's accounting: every prediction counted once, as scored or as why not.

const t = Date.parse('2024-01-01T00:00:00Z');
const v = [0.5, 0, 0, 0];

/** What the report's counts add up to: each prediction is counted once (the `report` option's description). */
const accounted = (c: ModelCounts): number => c.labels + c.overflow + c.expired + c.unlabelledAtEnd + c.withdrawn + c.invalidScores + c.erased;

/** a's session and b's, one view each; b erased before either session's summary; then a's summary and the end. */
async function eraseB(config: Parameters<typeof fedOperator>[1]) {
  const fed = await fedOperator(intentModel, { ...config, report: true });
  fed.input.next(event('a', 'sa', t, 0, t, 'view', v));
  fed.input.next(event('b', 'sb', t + 1_000, 0, t + 1_000, 'view', v));
  assert.ok(fed.operator.forget!('b')! > 0, "b's prediction dropped");
  fed.input.next(summary('a', 'sa', t, t, 1, false));
  fed.input.next(watermark(Infinity));
  fed.input.complete();
  await fed.done;
  return { predictions: of(fed.output, 'prediction'), counts: reportOf(fed.output).counts };
}

test("a prediction emitted and awaiting its label when its user is erased is counted as erased: predictions = labels + overflow + expired + unlabelledAtEnd + withdrawn + invalidScores + erased", async () => {
  // Logistic scores at once: b's prediction is out before the request. Before: counted as nothing (predictions 2, accounted 1).
  const { predictions, counts } = await eraseB({ ...base, model: { kind: 'logistic' } });
  assert.deepEqual(predictions.map((p) => p.userId), ['a', 'b']);
  assert.deepEqual([counts.predictions, counts.labels, counts.erased, counts.unlabelledAtEnd], [2, 1, 1, 0]);
  assert.equal(accounted(counts), counts.predictions);
});

test('mlp: a prediction not held by a full label buffer, still waiting for its micro-batch when its user is erased, is never emitted and counted as nothing (its overflow taken back)', async () => {
  // a's prediction fills the buffer (max_size 1); b's is counted as overflow when made, then waits for the batch (32).
  // Before: overflow 1 for a prediction never emitted (predictions 1, accounted 2).
  for (const emitLabels of [false, true]) {
    const { predictions, counts } = await eraseB({ ...base, model: { kind: 'mlp', hidden: [4] }, label_buffer: { max_size: 1 }, emit_labels: emitLabels });
    assert.deepEqual(predictions.map((p) => p.userId), ['a'], `emit_labels ${emitLabels}`);
    assert.deepEqual([counts.predictions, counts.labels, counts.overflow, counts.erased], [1, 1, 0, 0], `emit_labels ${emitLabels}`);
    assert.equal(accounted(counts), counts.predictions, `emit_labels ${emitLabels}`);
  }
});

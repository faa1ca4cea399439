// A challenger beside the live model: what each model stage reads and where its records go (the pipeline-level
// walk, promotion and backtest: core/cli/cli-challenger.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testContext } from 'tributary/testing';
import intentModel from './intent.js';
import hashFeatures from '../operators/hash-features.js';
import { Chain, stage } from '../operators/harness.js';
import { featureNames } from './testdata.js';
import { base, reportOf, shiftingIntentStream } from './models-test-helpers.js';

test('a model reads the features of the stages before it alone: a feature stage after it (before a challenger) does not reach it', async () => {
  const input = shiftingIntentStream(60, 60, 0.3, 0.3, 11);
  const output = (await Chain.build([stage(intentModel, { ...base, name: 'live', report: true }), stage(hashFeatures, { fields: ['category'], width: 4, prefix: 'cat' }), stage(intentModel, { ...base, name: 'challenger', report: true })], testContext()))
    .push(input)
    .end();
  const featuresOf = (model: string): readonly string[] => reportOf(output.filter((record) => (record as { model?: string }).model === model)).features;
  assert.deepEqual(featuresOf('live'), featureNames);
  assert.deepEqual(featuresOf('challenger'), [...featureNames, 'cat_0', 'cat_1', 'cat_2', 'cat_3']);
});

test('shadow: true sends every record the model makes to the side output shadow; its input passes on, and it scores as the same model not shadowed', async () => {
  const input = shiftingIntentStream(60, 60, 0.3, 0.3, 11);
  const config = { ...base, name: 'challenger', report: true, emit_labels: true };
  const plain = (await Chain.build([stage(intentModel, config)], testContext())).push(input).end();
  const context = testContext();
  const shadowed = (await Chain.build([stage(intentModel, { ...config, shadow: true })], context)).push(input).end();
  assert.deepEqual(shadowed, input, 'the main stream carries the input alone, in order');
  assert.deepEqual([...new Set(context.sideOutputs.map(({ name }) => name))], ['shadow']);
  const made = plain.filter((record) => !input.includes(record));
  assert.deepEqual(new Set(made.map((record) => record.kind)), new Set(['prediction', 'label', 'model_metrics']));
  // The same records, but for the report saying which it is (a backtest's report tells the challenger by it).
  const report = (records: readonly unknown[]) => records.filter((record) => (record as { kind: string }).kind === 'model_metrics') as { shadow?: boolean }[];
  assert.deepEqual([report(context.sideOutputs.map(({ record }) => record))[0]?.shadow, report(made)[0]?.shadow], [true, false]);
  const unmarked = (record: unknown): string => JSON.stringify({ ...(record as object), shadow: undefined });
  assert.deepEqual(
    context.sideOutputs.map(({ record }) => unmarked(record)),
    made.map((record) => unmarked(record)),
  );
});

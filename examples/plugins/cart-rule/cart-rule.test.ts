import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isPrediction, type Prediction, type StreamRecord } from 'tributary';
import { runYaml, specProblems, tempFolder } from 'tributary/testing';
import { cartRule } from './index.js';

/** A `model_metrics` record, as much of it as these tests read. */
interface ModelMetrics extends StreamRecord {
  model: string;
  kind_of_model: string;
  summary: { n: number; positives: number; auc: number | null; logloss: number; brier: number };
  calibration: unknown[];
  counts: { predictions: number; labels: number; learnSteps: number; scoredBeforeLearning: number };
}

/** The built-in intent model and cart-rule on the same synthetic shoppers, each reporting at the end. */
const beside = (cartRuleOptions = '{}', events = 20000): string => `
name: cart-rule-beside
sources: [{ type: synthetic, users: 300, events: ${events}, seed: 3 }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent, report: true, batch: { max_delay: 0 } }
  - { type: cart-rule, name: cart-rule, report: true, model: ${cartRuleOptions} }
sinks: [{ type: memory, kinds: [prediction, model_metrics] }]
`;

const reportOf = (records: readonly StreamRecord[], model: string): ModelMetrics => records.find((r): r is ModelMetrics => r.kind === 'model_metrics' && (r as ModelMetrics).model === model)!;
const predictionsOf = (records: readonly StreamRecord[], model: string): Prediction[] => records.filter(isPrediction).filter((p) => p.model === model);

test('the spec describes every field and its example validates', () => {
  assert.deepEqual(specProblems(cartRule), []);
});

test('beside the built-in intent model: the same events predicted, the same labels joined, its own prequential report', async () => {
  const run = await runYaml(beside(), { plugins: [cartRule] });
  const records = run.outputs[0]!;
  const builtIn = predictionsOf(records, 'intent');
  const rule = predictionsOf(records, 'cart-rule');
  assert.ok(rule.length > 1000, `${rule.length} predictions`);
  // Predicted at the same events (before each session's first purchase), in the same record shape.
  assert.deepEqual(rule.map((p) => [p.userId, p.sessionId, p.time]), builtIn.map((p) => [p.userId, p.sessionId, p.time]));
  assert.deepEqual(Object.keys(rule[0]!), Object.keys(builtIn[0]!));
  assert.ok(rule.every((p) => p.task === 'intent' && p.modelVersion === '1.0'), 'a fixed rule takes no learning step: its version stays 1.0');
  const ruleReport = reportOf(records, 'cart-rule');
  const builtInReport = reportOf(records, 'intent');
  assert.equal(ruleReport.kind_of_model, 'cart-rule');
  assert.equal(ruleReport.summary.n, builtInReport.summary.n, 'the same labels, joined when each session closed');
  assert.equal(ruleReport.summary.positives, builtInReport.summary.positives);
  assert.equal(ruleReport.counts.learnSteps, 0);
  assert.equal(ruleReport.counts.scoredBeforeLearning, 0, 'a rule that learns nothing is not an untrained model');
  assert.ok(ruleReport.summary.auc! > 0.6, `AUC ${ruleReport.summary.auc}`);
  assert.ok(ruleReport.calibration.length > 0);
});

test('the same input gives the same prediction ids and scores', async () => {
  const ids = async (): Promise<string[]> => predictionsOf((await runYaml(beside('{}', 5000), { plugins: [cartRule] })).outputs[0]!, 'cart-rule').map((p) => `${p.id} ${p.score}`);
  assert.deepEqual(await ids(), await ids());
});

test('with a learning rate it learns online: learning steps counted, log loss below the fixed rule\'s', async () => {
  const fixed = reportOf((await runYaml(beside(), { plugins: [cartRule] })).outputs[0]!, 'cart-rule');
  const learning = reportOf((await runYaml(beside('{ learning_rate: 0.5 }'), { plugins: [cartRule] })).outputs[0]!, 'cart-rule');
  assert.ok(learning.counts.learnSteps > 0);
  assert.ok(learning.summary.logloss < fixed.summary.logloss, `log loss ${learning.summary.logloss} vs ${fixed.summary.logloss}`);
});

test('without the features it reads, each event it would predict is dead-lettered saying which and what to add', async () => {
  const yaml = `sources: [{ type: synthetic, users: 50, events: 500 }]\nstages: [{ type: sessionizer }, { type: user-features }, { type: cart-rule }]\nsinks: [{ type: memory }]\n`;
  const run = await runYaml(yaml, { plugins: [cartRule] });
  assert.ok(run.stats.deadLettered > 0);
  const reasons = new Set(run.deadLetters.map((letter) => (letter as StreamRecord & { reason: string }).reason));
  assert.equal(reasons.size, 1);
  assert.match([...reasons][0]!, /cart-rule reads s_carts and s_events, which the events' features lack \(they have: u_events, .*\): put a session-features stage before it/);
});

test('tributary backtest keys its metrics.json and report.html by the model name, beside the built-in model', async (t) => {
  const dir = tempFolder(t, 'cart-rule');
  // Events as a file sink writes them: what a backtest of a pipeline without a mapping (synthetic) reads.
  const record = await runYaml(`sources: [{ type: synthetic, users: 300, events: 20000, seed: 3 }]\nsinks: [{ type: file, path: events.jsonl, kinds: [event] }]\n`, { baseDir: dir });
  assert.equal(record.stats.recordsOut, 20000);
  writeFileSync(join(dir, 'pipeline.yaml'), `plugins: [${JSON.stringify(fileURLToPath(new URL('./index.js', import.meta.url)))}]\n${beside().replace(/sinks: .*/, 'sinks: [{ type: file, path: predictions.jsonl }]')}`);
  // The CLI of the tributary this package is built against (its bin, dist/core/cli/main.js).
  const cli = fileURLToPath(new URL('./cli/main.js', import.meta.resolve('tributary')));
  const result = spawnSync(process.execPath, [cli, 'backtest', join(dir, 'pipeline.yaml'), '--input', join(dir, 'events.jsonl'), '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const metrics = JSON.parse(readFileSync(join(dir, 'report', 'metrics.json'), 'utf8')) as { models: Record<string, { auc: number; n: number }> };
  assert.deepEqual(Object.keys(metrics.models).sort(), ['cart-rule', 'intent']);
  assert.equal(metrics.models['cart-rule']!.n, metrics.models.intent!.n);
  assert.ok(metrics.models['cart-rule']!.auc > 0.6);
  assert.match(readFileSync(join(dir, 'report', 'report.html'), 'utf8'), /"model":"cart-rule"/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { watermark, type ClickEvent, type StreamRecord } from 'tributary';
import { runOperator, runYaml, specProblems, tempFolder } from 'tributary/testing';
import { itemFocus, naiveBayes } from './index.js';

/** A `model_metrics` record, as much of it as these tests read. */
interface ModelMetrics extends StreamRecord {
  model: string;
  summary: { n: number; positives: number; auc: number | null };
  counts: { learnSteps: number };
}

const view = (userId: string, time: number, itemId: string, price: number): ClickEvent => ({ kind: 'event', userId, sessionId: `${userId}-1`, time, type: 'view', itemId, price });

/** The built-in intent model and naive-bayes-intent on the same synthetic shoppers, each reporting at the end. */
const beside = (features = `['s_*', 'focus_*']`): string => `
name: naive-bayes-beside
sources: [{ type: synthetic, users: 300, events: 20000, seed: 3 }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: item-focus }
  - { type: intent-model, name: intent, report: true, batch: { max_delay: 0 } }
  - { type: naive-bayes-intent, name: nb, report: true, batch: { max_delay: 0 }, model: { features: ${features} } }
sinks: [{ type: memory, kinds: [model_metrics] }]
`;

const reportOf = (records: readonly StreamRecord[], model: string): ModelMetrics => records.find((r): r is ModelMetrics => r.kind === 'model_metrics' && (r as ModelMetrics).model === model)!;

test('the specs describe every field and their examples validate', () => {
  assert.deepEqual(specProblems(itemFocus), []);
  assert.deepEqual(specProblems(naiveBayes), []);
});

test("item-focus: the same-item streak and the price over the session's mean so far, kept through a snapshot", async () => {
  const { output, state } = await runOperator(itemFocus, {}, [view('a', 0, 'i1', 10), view('a', 1, 'i1', 30), view('a', 2, 'i2', 20), watermark(Infinity)]);
  const events = output.filter((record): record is ClickEvent => record.kind === 'event');
  assert.deepEqual(events.map((event) => event.features!.names), events.map(() => ['focus_streak', 'focus_price_ratio']));
  assert.deepEqual(events.map((event) => [...event.features!.values]), [[1, 1], [2, 1.5], [1, 1]]);
  const resumed = await runOperator(itemFocus, {}, [view('a', 3, 'i2', 20)], undefined, { restore: state });
  assert.deepEqual([...(resumed.output[0] as ClickEvent).features!.values], [2, 1], 'the streak goes on from the restored state');
});

test('naive-bayes-intent beside the built-in model: the same labels, learning steps counted, an AUC well above chance', async () => {
  const records = (await runYaml(beside(), { plugins: [itemFocus, naiveBayes] })).outputs[0]!;
  const nb = reportOf(records, 'nb');
  const intent = reportOf(records, 'intent');
  assert.equal(nb.summary.n, intent.summary.n, 'the same labels, joined when each session closed');
  assert.equal(nb.summary.positives, intent.summary.positives);
  assert.ok(nb.counts.learnSteps > 0);
  assert.ok(nb.summary.auc! > 0.7, `AUC ${nb.summary.auc}`);
});

test('a feature name no stage before it appends is a warning of validate at its item inside `model`, with the name meant', async () => {
  const run = await runYaml(beside(`[s_carts, focus_streek]`).replace('users: 300, events: 20000', 'users: 20, events: 200'), { plugins: [itemFocus, naiveBayes] });
  const warnings = (run.loaded.warnings ?? []).map((warning) => `${warning.path}: ${warning.message}`);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /^\$\.stages\[4\]\.model\.features\[1\]: no stage before it appends a feature 'focus_streek' \(did you mean 'focus_streak'\?\)/);
  // And what the run does of it: each event it would predict dead-lettered, saying why.
  assert.match(String((run.deadLetters[0] as StreamRecord & { reason?: string }).reason), /naive-bayes-intent: no feature matches focus_streek/);
});

test('a restart whose `features` select other features than the checkpoint was taken with is refused, naming the stage (not read one for another)', async (t) => {
  const dir = tempFolder(t, 'naive-bayes');
  const pipeline = (features: string): string => `${beside(features).replace('users: 300, events: 20000', 'users: 50, events: 3000')}checkpoint: { dir: checkpoints, interval: 1h }\n`;
  await runYaml(pipeline(`['s_*']`), { plugins: [itemFocus, naiveBayes], baseDir: dir });
  await assert.rejects(runYaml(pipeline(`['s_*', 'focus_*']`), { plugins: [itemFocus, naiveBayes], baseDir: dir }), /could not be restored: naive-bayes-intent: the saved model read s_events, .*; its features now select s_events, .*focus_streak, focus_price_ratio/);
  // The same features: resumed.
  await runYaml(pipeline(`['s_*']`), { plugins: [itemFocus, naiveBayes], baseDir: dir });
});

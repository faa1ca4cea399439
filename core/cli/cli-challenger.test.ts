// A challenger model beside the live one (docs/operations.md, Trying a challenger model): `shadow: true` keeps its
// records off the main stream, the backtest compares the two, and moving `shadow: true` promotes it with what it learnt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempFolder } from 'tributary/testing';
import { runSummaries } from '../testing.js';
import { tributary } from './cli-test-helpers.js';

interface OutRecord {
  kind: string;
  model?: string;
  modelVersion?: string;
}

const linesOf = (file: string): OutRecord[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as OutRecord);
/** The learning steps a prediction's `modelVersion` (`1.<steps>`) says its model had taken. */
const stepsOf = (record: OutRecord): number => Number(record.modelVersion!.split('.')[1]);
/** The end-of-run line of each model (`n`: labels scored), by model name. */
const labelsByModel = (stderr: string): Record<string, number> =>
  Object.fromEntries(
    stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { model?: string; n?: number; task?: string })
      .filter((entry) => entry.task !== undefined && typeof entry.n === 'number')
      .map((entry) => [entry.model!, entry.n!]),
  );

/** The live logistic model and an mlp challenger, `shadowed` the stage sending its records to the `shadow` side output. */
function championAndChallenger(events: number, shadowed: 'intent' | 'intent-mlp'): string {
  const shadow = (name: string): string => (name === shadowed ? ', shadow: true' : '');
  return `name: shop
sources:
  - { type: synthetic, users: 150, events: ${events}, seed: 5 }
checkpoint: { dir: state/checkpoints }
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent, label: intent${shadow('intent')}, backend: cpu, batch: { max_size: 32, max_delay: 0 } }
  - { type: intent-model, name: intent-mlp, label: intent-mlp${shadow('intent-mlp')}, backend: cpu, model: { kind: mlp, hidden: [8] }, batch: { max_size: 32, max_delay: 0 } }
sinks:
  - { type: file, path: out/predictions.jsonl, kinds: [prediction] }
  - { type: file, path: out/challenger.jsonl, kinds: [], outputs: [shadow] }
`;
}

test('a challenger with shadow: true: the main stream gets the live model\'s predictions alone, the shadow sink the challenger\'s; both learn from the same labels; moving shadow: true promotes it with what it learnt', (t) => {
  const dir = tempFolder(t, 'challenger');
  const file = join(dir, 'shop.yaml');
  writeFileSync(file, championAndChallenger(3000, 'intent-mlp'));
  const first = tributary('run', file);
  assert.equal(first.status, 0, first.stderr);
  const live = linesOf(join(dir, 'out/predictions.jsonl'));
  const shadowed = linesOf(join(dir, 'out/challenger.jsonl'));
  assert.ok(live.length > 100, `${live.length} predictions`);
  assert.deepEqual([...new Set(live.map((r) => `${r.kind} ${r.model}`))], ['prediction intent']);
  assert.deepEqual([...new Set(shadowed.map((r) => `${r.kind} ${r.model}`))], ['prediction intent-mlp']);
  // One prediction each per event scored, and each model scored every label once (no double counting).
  assert.equal(shadowed.length, live.length);
  const labels = labelsByModel(first.stderr);
  assert.ok(labels.intent! > 0, first.stderr);
  assert.equal(labels['intent-mlp'], labels.intent);
  const [summary] = runSummaries(first.stderr);
  assert.deepEqual(summary!.outByKind, { prediction: live.length });
  assert.deepEqual(summary!.sideOutputs, { shadow: shadowed.length });
  const challengerSteps = stepsOf(shadowed.at(-1)!);
  assert.ok(challengerSteps > 0);

  // Promotion: shadow: true moves to the logistic stage, labels and names kept; the run resumes from its checkpoint.
  writeFileSync(file, championAndChallenger(6000, 'intent'));
  const second = tributary('run', file);
  assert.equal(second.status, 0, second.stderr);
  const promoted = linesOf(join(dir, 'out/predictions.jsonl')).slice(live.length);
  const demoted = linesOf(join(dir, 'out/challenger.jsonl')).slice(shadowed.length);
  assert.ok(promoted.length > 100, `${promoted.length} predictions after the promotion`);
  assert.deepEqual([...new Set(promoted.map((r) => r.model))], ['intent-mlp']);
  assert.deepEqual([...new Set(demoted.map((r) => r.model))], ['intent']);
  // What the challenger learnt in the shadow is what it predicts with now: its steps go on from there.
  assert.ok(stepsOf(promoted[0]!) >= challengerSteps, `first promoted prediction ${promoted[0]!.modelVersion}, the challenger had ${challengerSteps} steps`);
  assert.ok(stepsOf(demoted[0]!) >= stepsOf(live.at(-1)!));
  assert.doesNotMatch(second.stderr, /"level":50/);
});

test('backtest: a shadow model is scored beside the live one in metrics.json, report.html (champion and challenger side by side) and the result; without a sink for its side output, that is said', (t) => {
  const dir = tempFolder(t, 'challenger-backtest');
  // The events the live pipeline's synthetic source makes, as a file to replay.
  writeFileSync(join(dir, 'gen.yaml'), 'name: gen\nsources: [{ type: synthetic, users: 150, events: 3000, seed: 5 }]\nsinks: [{ type: file, path: events.jsonl, kinds: [event] }]\n');
  assert.equal(tributary('run', join(dir, 'gen.yaml')).status, 0);
  const file = join(dir, 'shop.yaml');
  writeFileSync(file, championAndChallenger(3000, 'intent-mlp').replace(/ {2}- \{ type: file, path: out\/challenger[^\n]*\n/, ''));
  const result = tributary('backtest', file, '--input', join(dir, 'events.jsonl'), '--report', join(dir, 'bt'));
  assert.equal(result.status, 0, result.stderr);
  const metrics = JSON.parse(readFileSync(join(dir, 'bt', 'metrics.json'), 'utf8')) as { models: Record<string, { n: number; auc: number }>; modelFiles: Record<string, string> };
  assert.deepEqual(Object.keys(metrics.models).sort(), ['intent', 'intent-mlp']);
  assert.equal(metrics.models['intent-mlp']!.n, metrics.models.intent!.n);
  assert.ok(metrics.models.intent!.n > 0);
  assert.deepEqual(Object.keys(metrics.modelFiles).sort(), ['intent', 'intent-mlp']);
  const html = readFileSync(join(dir, 'bt', 'report.html'), 'utf8');
  assert.match(html, /<code>intent-mlp<\/code>/);
  // The two side by side, the live model first, as their records say which is in the shadow.
  assert.match(html, /<h3>intent: intent \(live\) against intent-mlp \(challenger\)<\/h3>\n<table class="comparison" id="comparison-0"><tr><th>figure<\/th><th><code>intent<\/code> \(live\)<\/th><th><code>intent-mlp<\/code> \(challenger\)<\/th>/);
  const [summary] = runSummaries(result.stderr);
  assert.equal(summary!.collected, 2, 'both models\' reports collected');
  // The live model's predictions alone on the main stream.
  assert.deepEqual([...new Set(linesOf(join(dir, 'out/predictions.jsonl')).map((r) => r.model))], ['intent']);
  assert.match(result.stderr, /side output 'shadow' has no sink \(add one with outputs: \[shadow\]\)/);
  assert.doesNotMatch(result.stderr, /which no sink naming it takes/);
});

test('validate: a sink taking the shadow side output with no shadow model is a config error at the sink\'s outputs, naming the setting', (t) => {
  const dir = tempFolder(t, 'challenger-validate');
  const file = join(dir, 'shop.yaml');
  writeFileSync(file, championAndChallenger(3000, 'intent-mlp').replace(', shadow: true', ''));
  const result = tributary('validate', file);
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /shop\.yaml:12:\d+: \$\.sinks\[1\]\.outputs\[0\]: no source or stage of this pipeline has side output 'shadow' as configured: the intent-model at stages\[2\] emits it only with shadow: true; the intent-model at stages\[3\] emits it only with shadow: true/);
  writeFileSync(file, championAndChallenger(3000, 'intent-mlp'));
  const valid = tributary('validate', file);
  assert.equal(valid.status, 0, valid.stderr);
});

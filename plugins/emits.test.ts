/**
 * What a built-in plugin declares it emits (PluginSpec.emits, sideOutputs) is what validation trusts to refuse
 * a sink's `kinds` or `outputs` that nothing produces: a kind emitted but not declared would turn a right
 * config into an error. So the demo pipeline, with every record its models can make switched on, and a
 * pipeline of every other built-in stage (with a late event), run here, and every kind and side output seen
 * is checked against what the plugins in them declare for their config (emittedWith: `emits` less the kinds
 * of PluginSpec.emitsOnlyWith whose condition the config does not meet). The demo with its models' report
 * and drift detectors off then makes neither kind, as those per-config lists say.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runYaml, type TestRun, tempFolder } from 'tributary/testing';
import { emittedWith, type AnyPlugin } from 'tributary';
import builtins from './index.js';

const demoFile = new URL('../../pipelines/demo.yaml', import.meta.url).pathname;

/** The kinds and side outputs the plugins of a run's pipeline declare for their entries' config (a source's `event` always). */
function declared(run: TestRun): { kinds: Set<string>; sideOutputs: Set<string> } {
  const kinds = new Set(['event']);
  const sideOutputs = new Set<string>();
  for (const { plugin, entry } of [...run.loaded.sources, ...run.loaded.stages]) {
    assert.ok(builtins.includes(plugin as AnyPlugin), `${plugin.name} is a built-in`);
    const { type: _type, label: _label, watermark: _watermark, ...config } = entry;
    const made = emittedWith(plugin, config as never);
    assert.ok(made !== undefined, `built-in ${plugin.kind} '${plugin.name}' declares what it emits`);
    for (const kind of made.kinds) kinds.add(kind);
    for (const output of made.sideOutputs) sideOutputs.add(output);
  }
  return { kinds, sideOutputs };
}

function assertDeclared(run: TestRun): Set<string> {
  const { kinds, sideOutputs } = declared(run);
  const seen = new Set(run.outputs.flat().map((record) => record.kind));
  for (const kind of seen) assert.ok(kinds.has(kind), `kind '${kind}' was emitted, but no plugin of the pipeline declares it (declared: ${[...kinds].join(', ')})`);
  for (const output of Object.keys(run.stats.sideOutputs)) assert.ok(sideOutputs.has(output), `side output '${output}' was used, but no plugin of the pipeline declares it`);
  return seen;
}

/** The demo pipeline, its sinks memory sinks of every kind and of `late`, each model's entry changed by `sets` (made for its index). */
async function runDemo(sets: (model: number) => string[]): Promise<TestRun> {
  const yaml = readFileSync(demoFile, 'utf8');
  const sinks = 'sinks:\n  - {type: memory, id: 0}\n  - {type: memory, id: 1, kinds: [], outputs: [late]}\n';
  const stages = (yaml.match(/^stages:\n(?:  .*\n)+/m)?.[0] ?? '').split('\n').filter((line) => line.startsWith('  - type:'));
  const models = stages.map((line, index) => (/-model$/.test(line.trim()) ? index : -1)).filter((index) => index >= 0);
  assert.equal(models.length, 2, 'the demo has two models');
  return runYaml(`${yaml.slice(0, yaml.indexOf('\nsinks:'))}\n${sinks}`, { env: { DEMO_USERS: '200', DEMO_EVENTS: '20000' }, sets: models.flatMap(sets) });
}

/** Drift detectors that fire within the demo's first labels (threshold and warm-up far below their defaults). */
const hairTrigger = (index: number): string[] => [`stages[${index}].drift.threshold=0.001`, `stages[${index}].drift.min_instances=5`];

test('the demo pipeline, its models reporting, emitting labels and their drift detectors on a hair trigger, emits no kind its plugins do not declare', async () => {
  const run = await runDemo((index) => [`stages[${index}].report=true`, `stages[${index}].emit_labels=true`, ...hairTrigger(index)]);
  const seen = assertDeclared(run);
  for (const kind of ['event', 'session', 'prediction', 'drift', 'model_metrics', 'label', 'unlabelled']) assert.ok(seen.has(kind), `the run emitted '${kind}' (seen: ${[...seen].join(', ')})`);
});

test('the demo pipeline, its models not reporting, emitting no labels and their drift detectors off (the same hair trigger), declares and emits neither model_metrics nor drift nor label nor unlabelled', async () => {
  const run = await runDemo((index) => [...hairTrigger(index), `stages[${index}].drift.detector=none`]);
  const { kinds } = declared(run);
  assert.deepEqual([kinds.has('model_metrics'), kinds.has('drift'), kinds.has('label'), kinds.has('unlabelled')], [false, false, false, false], `declared for this config: ${[...kinds].join(', ')}`);
  const seen = assertDeclared(run);
  for (const kind of ['event', 'session', 'prediction']) assert.ok(seen.has(kind), `the run emitted '${kind}' (seen: ${[...seen].join(', ')})`);
});

test("every other built-in stage, from a file with a late event, emits no kind and no side output its plugins do not declare", async (t) => {
  const start = Date.UTC(2024, 0, 1);
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) {
    lines.push(JSON.stringify({ user_id: `u${i % 7}`, time: start + i * 600_000, type: i % 9 === 0 ? 'purchase' : i % 4 === 0 ? 'cart' : 'view', category: `c${i % 3}`, price: 5 + (i % 11) }));
  }
  lines.splice(300, 0, JSON.stringify({ user_id: 'u1', time: start, type: 'view', category: 'c0', price: 1 })); // days behind: late
  lines.splice(200, 0, lines[199]!); // sent twice: a duplicate
  const yaml = `name: every-stage
sources:
  - type: file
    path: events.jsonl
    mapping: { time_format: epoch_ms }
    watermark: { max_out_of_orderness: 0s }
stages:
  - { type: dedupe }
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: user-features, horizons: [1d] }
  - { type: hash-features, fields: [category], width: 4 }
  - { type: log1p, features: [s_events] }
  - { type: standardize, features: ['s_*'] }
  - { type: clip, features: ['*'], min: -5, max: 5 }
  - { type: churn-model, name: churn, horizon: 1d, report: true, backend: cpu, batch: { max_size: 16, max_delay: 0 } }
sinks:
  - { type: memory, id: 0 }
  - { type: memory, id: 1, kinds: [], outputs: [late, duplicates] }
settings: { max_in_flight: 20 }
`;
  const baseDir = tempFolder(t, 'emits');
  writeFileSync(join(baseDir, 'events.jsonl'), `${lines.join('\n')}\n`);
  const run = await runYaml(yaml, { baseDir });
  const seen = assertDeclared(run);
  for (const kind of ['event', 'session', 'prediction', 'model_metrics']) assert.ok(seen.has(kind), `the run emitted '${kind}' (seen: ${[...seen].join(', ')})`);
  assert.ok((run.stats.sideOutputs.late ?? 0) > 0, `the late event went to the late side output (${JSON.stringify(run.stats.sideOutputs)})`);
  assert.equal(run.stats.sideOutputs.duplicates, 1, `the line sent twice went to the duplicates side output (${JSON.stringify(run.stats.sideOutputs)})`);
});

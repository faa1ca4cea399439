import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, FeatureSelector, formatProblem, formatWarning, loadPipeline, MetricsHub, type PluginRegistry } from 'tributary';
import { runYaml, tempFolder } from 'tributary/testing';
import { defineModel } from 'tributary/models';
import { builtinRegistry } from '../../core/cli/registry.js';

const dir = tempFolder({ after }, 'define-model');

/** A model of its own feature list, as a user writes one: it reads the features its `features` option selects. */
const selecting = defineModel<{ features: string[]; smoothing: number; max_smoothing: number }>({
  name: 'mean-rule',
  task: 'intent',
  summary: 'The mean of the selected features, squashed (tests only).',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      features: { type: 'array', items: { type: 'string' }, default: ['s_carts'], description: 'Feature names or `*` patterns it reads.' },
      smoothing: { type: 'number', default: 1, description: 'Added to the sum.' },
      max_smoothing: { type: 'number', default: 10, description: 'Most `smoothing` may be.' },
    },
  },
  featureSelectorField: 'features',
  checkPipeline: (config) => (config.smoothing > config.max_smoothing ? [{ field: 'smoothing', message: `must be at most max_smoothing (${config.max_smoothing})` }] : []),
  create(config, features) {
    const at = new FeatureSelector(config.features, () => undefined).indices(features);
    return { predict: (row) => 1 - 1 / (1 + config.smoothing + at.reduce((sum, i) => sum + row[i]!, 0)) };
  },
});

/** Its `featureSelectorField` names a field of its options: one renamed there and not here does not compile. */
export const misnamed = defineModel<{ features: string[] }>({
  name: 'misnamed',
  task: 'intent',
  summary: 'Tests only.',
  config: { type: 'object', properties: { features: { type: 'array', items: { type: 'string' }, default: [], description: 'Names.' } } },
  // @ts-expect-error 'feature' is not a field of its options
  featureSelectorField: 'feature',
  create: () => ({ predict: () => 0.5 }),
});

async function registryWith(): Promise<PluginRegistry> {
  const registry = await builtinRegistry();
  registry.register(selecting, './mean-rule.js');
  return registry;
}

/** What `tributary validate` says of `yaml`: its errors, else its warnings, each as FILE:LINE:COL (file P). */
async function said(yaml: string): Promise<{ problems: string[]; warnings: string[] }> {
  const file = join(dir, `p${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  try {
    const loaded = await loadPipeline(file, { registry: await registryWith(), env: {} });
    return { problems: [], warnings: (loaded.warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' })) };
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return { problems: error.problems.map((problem) => formatProblem({ ...problem, file: 'P' })), warnings: [] };
  }
}

const pipeline = (stages: string[]): string => `sources: [{type: synthetic}]\nstages:\n${stages.map((stage) => `  - ${stage}\n`).join('')}sinks: [{type: stdout}]\n`;

test("a custom model's checkPipeline is said at its field inside `model`, with line and column (was: no way for a model plugin to have validate check its options)", async () => {
  const { problems } = await said(pipeline(['{type: sessionizer}', '{type: session-features}', '{type: mean-rule, model: {smoothing: 20}}']));
  assert.deepEqual(problems, ['P:5:42: $.stages[2].model.smoothing: must be at most max_smoothing (10)']);
  assert.deepEqual((await said(pipeline(['{type: sessionizer}', '{type: session-features}', '{type: mean-rule, model: {smoothing: 2}}']))).problems, []);
});

test("a custom model's checkPipeline that returns no list, or an item that is no problem, is said as the plugin's mistake at its stage, naming the plugin and the hook, as any hook's wrong result (was: TypeError '...map is not a function')", async () => {
  const returning = (name: string, value: unknown) =>
    defineModel<Record<string, never>>({ name, task: 'intent', summary: 'Tests only.', config: { type: 'object', properties: {} }, checkPipeline: () => value as never, create: () => ({ predict: () => 0.5 }) });
  const registry = await registryWith();
  registry.register(returning('says-text', 'smoothing too high'), './says-text.js');
  registry.register(returning('says-items', ['smoothing too high']), './says-items.js');
  registry.register(returning('says-field', [{ field: 3, message: 'too high' }]), './says-field.js');
  const problems = async (type: string): Promise<string[]> => {
    try {
      await loadPipeline('p.yaml', { registry, env: {}, text: pipeline(['{type: sessionizer}', '{type: session-features}', `{type: ${type}}`]) });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((problem) => formatProblem({ ...problem, file: 'P' }));
    }
    return [];
  };
  const expected = "it must return a list of this entry's problems, { field?, message, severity? } each ([] for none)";
  assert.deepEqual(await problems('says-text'), [`P:5:5: $.stages[2]: operator 'says-text': its checkPipeline(config, pipeline, self) returned "smoothing too high"; ${expected}`]);
  assert.deepEqual(await problems('says-items'), [`P:5:5: $.stages[2]: operator 'says-items': its checkPipeline(config, pipeline, self) returned ["smoothing too high"]: item 0 ("smoothing too high") is not an object { field?, message, severity? }; ${expected}`]);
  assert.deepEqual(await problems('says-field'), [`P:5:5: $.stages[2]: operator 'says-field': its checkPipeline(config, pipeline, self) returned [{"field":3,"message":"too high"}]: item 0 ({"field":3,"message":"too high"}) has a field that is not a string; ${expected}`]);
});

test("a custom model's feature list (featureSelectorField) is checked as a transform's: a name no stage before it appends is a warning at its item inside `model`, model stages before it appending none (was: validate ok, then every event it predicts dead-lettered or read as 0)", async () => {
  const { warnings } = await said(pipeline(['{type: sessionizer}', '{type: session-features}', '{type: intent-model}', '{type: mean-rule, model: {features: [s_carts, s_cartz, "u_*"]}}']));
  assert.equal(warnings.length, 2, warnings.join('\n'));
  // What the run does is the model's create's, not a log line of the run's (as for a transform): said so (was "(the run logs it once)").
  assert.match(
    warnings[0]!,
    /^P:6:51: warning: \$\.stages\[3\]\.model\.features\[1\]: no stage before it appends a feature 's_cartz' \(did you mean 's_carts'\?\), so the model reads nothing for it \(its create is handed the features the events have: if it throws on a missing one, the run dead-letters every event it predicts\); they append s_events, /,
  );
  assert.match(warnings[1]!, /^P:6:60: warning: \$\.stages\[3\]\.model\.features\[2\]: no feature a stage before it appends matches 'u_\*'/);
  // Behind a built-in model stage (which appends no features) and a user-features block, every name is found.
  assert.deepEqual((await said(pipeline(['{type: sessionizer}', '{type: session-features}', '{type: user-features}', '{type: churn-model}', '{type: mean-rule, model: {features: [s_carts, "u_*"]}}']))).warnings, []);
  // A transform after a model stage is checked too: the model stages declare that they append nothing.
  const transform = await said(pipeline(['{type: sessionizer}', '{type: session-features}', '{type: intent-model}', '{type: log1p, features: [s_pric]}']));
  assert.match(transform.warnings.join('\n'), /\$\.stages\[3\]\.features\[0\]: no stage before it appends a feature 's_pric'/);
});

test("a custom model's create gets the stage's logger and metrics, as a plugin's context has them: its lines carry the pipeline and stage, its series the pipeline, stage and model (was: create(config, features) alone, no way to say a missing feature but to throw)", async () => {
  const watching = defineModel<{ features: string[] }>({
    name: 'watching-rule',
    task: 'intent',
    summary: 'Says what it cannot read (tests only).',
    config: { type: 'object', additionalProperties: false, properties: { features: { type: 'array', items: { type: 'string' }, default: [], description: 'Names.' } } },
    featureSelectorField: 'features',
    create(config, features, { logger, metrics }) {
      const missing: string[] = [];
      const at = new FeatureSelector(config.features, (names) => missing.push(...names)).indices(features);
      if (missing.length > 0) logger.warn({ missing }, 'watching-rule: features not in the vector, read as none');
      const predicted = metrics.counter('watching_rule_predictions_total', 'Predictions of the watching rule.');
      return {
        predict: (row) => {
          predicted.inc();
          return at.length > 0 && row[at[0]!]! > 0 ? 0.9 : 0.1;
        },
      };
    },
  });
  const lines: Record<string, unknown>[] = [];
  const { pino } = await import('pino');
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const hub = new MetricsHub();
  const yaml = pipeline(['{type: sessionizer}', '{type: session-features}', '{type: watching-rule, name: watcher, model: {features: [s_carts, s_nope]}}']).replace('{type: synthetic}', '{type: synthetic, users: 20, events: 300}');
  const run = await runYaml(yaml, { plugins: [watching], logger, metrics: hub });
  const said = lines.filter((line) => line.msg === 'watching-rule: features not in the vector, read as none');
  assert.equal(said.length, 1, JSON.stringify(lines));
  assert.deepEqual(said[0]!.missing, ['s_nope']);
  assert.equal(said[0]!.stage, 'stage-watching-rule-2');
  const series = (await hub.registry.metrics()).split('\n').find((line) => line.startsWith('tributary_watching_rule_predictions_total{'));
  assert.ok(series !== undefined, "the model's counter is exported");
  assert.match(series, /stage="stage-watching-rule-2"/);
  assert.match(series, /model="watcher"/);
  assert.ok(Number(series.split(' ').at(-1)) > 0, series);
  assert.equal(run.stats.deadLettered, 0);
});

test('a custom model with checkPipeline and featureSelectorField runs as before', async () => {
  const run = await runYaml(pipeline(['{type: sessionizer}', '{type: session-features}', '{type: mean-rule, report: true, model: {features: ["s_*"]}}']).replace('{type: synthetic}', '{type: synthetic, users: 50, events: 2000}').replace('{type: stdout}', '{type: memory, kinds: [model_metrics]}'), { plugins: [selecting] });
  assert.equal(run.outputs[0]!.length, 1);
  assert.equal(run.stats.deadLettered, 0);
});

test("a custom model's report lists the features it reads (its featureSelectorField's selection), as a built-in model's lists those it reads (was: every feature of the vector)", async () => {
  const stages = (model: string): string => pipeline(['{type: sessionizer}', '{type: session-features}', model]).replace('{type: synthetic}', '{type: synthetic, users: 30, events: 600}').replace('{type: stdout}', '{type: memory, kinds: [model_metrics]}');
  const reportOf = async (model: string): Promise<string[]> => {
    const run = await runYaml(stages(model), { plugins: [selecting] });
    assert.equal(run.outputs[0]!.length, 1);
    return (run.outputs[0]![0] as unknown as { features: string[] }).features;
  };
  const all = await reportOf('{type: intent-model, report: true}');
  const carts = all.filter((name) => name.startsWith('s_cart'));
  assert.ok(carts.length > 0 && carts.length < all.length, all.join(', '));
  // In the vector's order, each once, a name missing from it left out.
  assert.deepEqual(await reportOf('{type: mean-rule, report: true, model: {features: [s_events, "s_cart*", s_nope]}}'), all.filter((name) => name === 's_events' || name.startsWith('s_cart')));
  // The default list of its options (`[s_carts]`).
  assert.deepEqual(await reportOf('{type: mean-rule, report: true}'), ['s_carts']);
  // A custom model that names no featureSelectorField may read any of them: all are listed, as before.
  const fixed = defineModel<Record<string, never>>({ name: 'half-rule', task: 'intent', summary: 'Always 0.5 (tests only).', config: { type: 'object', additionalProperties: false, properties: {} }, create: () => ({ predict: () => 0.5 }) });
  const run = await runYaml(stages('{type: half-rule, report: true}'), { plugins: [fixed] });
  assert.deepEqual((run.outputs[0]![0] as unknown as { features: string[] }).features, all);
});

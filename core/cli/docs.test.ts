import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { composedSchema, defineSink, errorCatalogue, type JsonSchema } from 'tributary';
import { specProblems } from 'tributary/testing';
import { packageRoot } from '../paths.js';
import { pipelineReference } from './docs.js';
import { describePlugins } from './plugins.js';
import { builtinRegistry } from './registry.js';

test('every plugin documents every field, and every example in a spec validates against the real schema', async () => {
  const registry = await builtinRegistry();
  assert.deepEqual(registry.all().flatMap((plugin) => specProblems(plugin)), []);
});

test('the reference has a described row for every field of an object field too (csv.delimiter, model.hidden, security.sasl.mechanism)', async () => {
  const registry = await builtinRegistry();
  const reference = pipelineReference(registry);
  /** The plugin's own section: from its heading to the next one (another plugin's rows do not count). */
  const kindHeadings: Record<string, string> = { source: '## Sources', operator: '## Stages', sink: '## Sinks' };
  const sectionOf = (kind: string, plugin: string): string => {
    const from = reference.indexOf(`### \`${plugin}\``, reference.indexOf(`\n${kindHeadings[kind]}`));
    assert.ok(from >= 0, `${kind} ${plugin} has a section`);
    const to = reference.indexOf('\n##', from + 1);
    return reference.slice(from, to === -1 ? undefined : to);
  };
  const walk = (plugin: { kind: string; name: string }, properties: Record<string, JsonSchema>, prefix: string): number => {
    const section = sectionOf(plugin.kind, plugin.name);
    let rows = 0;
    for (const [name, field] of Object.entries(properties)) {
      const path = `${prefix}${name}`;
      assert.ok(typeof field.description === 'string' || typeof field.$ref === 'string', `${plugin.name}: '${path}' has a description`);
      assert.ok(section.includes(`| \`${path}\` |`), `${plugin.kind} ${plugin.name}: '${path}' has a row in its section of the reference`);
      rows++;
      if (field.type === 'object' && field.properties) rows += walk(plugin, field.properties as Record<string, JsonSchema>, `${path}.`);
    }
    return rows;
  };
  let nested = 0;
  for (const plugin of registry.all()) nested += walk(plugin, (plugin.config.properties ?? {}) as Record<string, JsonSchema>, '') - Object.keys(plugin.config.properties ?? {}).length;
  assert.ok(nested > 50, `${nested} nested fields`);
  for (const path of ['csv.delimiter', 'model.hidden', 'security.sasl.mechanism']) assert.ok(reference.includes(`| \`${path}\` |`), path);
});

test('every bound a field\'s schema checks is in its row: > and < (exclusive), at most N items, lengths; a list\'s 0 items is no bound (was: learning_rate > 0 and prior in (0, 1) unsaid, "(at least 0 items)")', async () => {
  const registry = await builtinRegistry();
  const properties: Record<string, JsonSchema> = {
    rate: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'A rate.' },
    spans: { type: 'array', minItems: 0, maxItems: 8, items: { type: 'string' }, description: 'Spans.' },
    names: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'Names.' },
    pair: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'string' }, description: 'A pair.' },
    id: { type: 'string', minLength: 1, description: 'An id.' },
    mark: { type: 'string', minLength: 1, maxLength: 1, description: 'A mark.' },
    code: { type: 'string', minLength: 2, maxLength: 8, description: 'A code.' },
  };
  registry.register(defineSink({ name: 'bounded', summary: 'Bounds.', config: { type: 'object', properties }, create: () => ({ write() {}, close: async () => undefined }) }), './bounded.js');
  const reference = pipelineReference(registry);
  const section = reference.slice(reference.indexOf('### `bounded`'));
  const row = (name: string): string => section.split('\n').find((line) => line.startsWith(`| \`${name}\` |`)) ?? `no row for ${name}`;
  assert.match(row('rate'), /A rate\. \(> 0, < 1\) \|$/);
  assert.match(row('spans'), /Spans\. \(at most 8 items\) \|$/);
  assert.match(row('names'), /Names\. \(at least 1 item\) \|$/);
  assert.match(row('pair'), /A pair\. \(at least 2 items, at most 2 items\) \|$/);
  assert.match(row('id'), /An id\. \(not empty\) \|$/);
  assert.match(row('mark'), /A mark\. \(one character\) \|$/);
  assert.match(row('code'), /A code\. \(at least 2 characters, at most 8 characters\) \|$/);
  assert.ok(!reference.includes('at least 0 items'));
  assert.match(reference, /\| `optimizer\.learning_rate` \| number \|  \|  \| Default: 0\.05 for logistic, 0\.005 otherwise\. \(> 0\) \|/);
});

test('the generated pipeline reference and composed schema are up to date (run `npm run docs`)', async () => {
  const registry = await builtinRegistry();
  assert.equal(readFileSync(join(packageRoot, 'docs', 'pipeline-reference.md'), 'utf8'), pipelineReference(registry), 'docs/pipeline-reference.md is stale: run npm run docs');
  const committed = JSON.parse(readFileSync(join(packageRoot, 'schemas', 'pipeline.composed.schema.json'), 'utf8')) as unknown;
  assert.deepEqual(committed, composedSchema(registry), 'schemas/pipeline.composed.schema.json is stale: run npm run docs');
});

test('the composed schema compiles and accepts a pipeline (editors use it)', async () => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(composedSchema(await builtinRegistry()));
  assert.ok(validate({ sources: [{ type: 'synthetic', users: 5 }], sinks: [{ type: 'stdout' }] }), JSON.stringify(validate.errors));
  assert.ok(!validate({ sources: [{ type: 'synthetic', users: 'five' }], sinks: [{ type: 'stdout' }] }));
  assert.ok(!validate({ sources: [{ type: 'nonesuch' }], sinks: [{ type: 'stdout' }] }));
});

test("a sink's declared kinds, and an operator's own kinds and side outputs, are in the reference, the composed schema (editors) and `tributary plugins`", async () => {
  const registry = await builtinRegistry();
  registry.register(
    defineSink({ name: 'above', summary: 'Predictions above a threshold.', kinds: ['prediction'], config: { type: 'object', properties: {} }, create: () => ({ write() {}, close: async () => undefined }) }),
    './above.js',
  );
  const reference = pipelineReference(registry);
  const section = reference.slice(reference.indexOf('### `above`'));
  assert.match(section, /^### `above`\n\n_sink, experimental, takes: prediction\._ Predictions above a threshold\.\n/);
  assert.ok(
    section.includes('| `kinds` | `"prediction"`[] |  | `["prediction"]` | Record kinds this sink takes, of those it can take: prediction. Default: all of those. A kind that no source or stage of the pipeline emits as configured is a config error (model_metrics from a model without report: true; where each of them declares what it emits, as the built-ins do). |'),
    section.slice(0, 600),
  );
  // A sink that declares none takes every kind, as before.
  const file = reference.slice(reference.indexOf('### `file`', reference.indexOf('\n## Sinks')));
  assert.match(file, /^### `file`\n\n_sink, stable\._/);
  assert.ok(file.includes('| `kinds` | string[] |  |  | Record kinds this sink takes (e.g. event, session, prediction). Default: every kind. A kind that no source or stage of the pipeline emits as configured is a config error (model_metrics from a model without report: true; where each of them declares what it emits, as the built-ins do). |'));
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(composedSchema(registry));
  assert.ok(validate({ sources: [{ type: 'synthetic' }], sinks: [{ type: 'above', kinds: ['prediction'] }] }), JSON.stringify(validate.errors));
  assert.ok(!validate({ sources: [{ type: 'synthetic' }], sinks: [{ type: 'above', kinds: ['event'] }] }));
  assert.ok(validate({ sources: [{ type: 'synthetic' }], sinks: [{ type: 'file', path: 'x', kinds: ['event'] }] }), JSON.stringify(validate.errors));
  const listed = JSON.parse(describePlugins(registry, true)) as { name: string; kinds?: string[] }[];
  assert.deepEqual(listed.find((plugin) => plugin.name === 'above')?.kinds, ['prediction']);
  assert.equal(listed.find((plugin) => plugin.name === 'file')?.kinds, undefined);
  assert.match(describePlugins(registry, false), /^sink above \(experimental, from \.\/above\.js\)\n  Predictions above a threshold\.\n  takes kinds: prediction\n/m);
  // An operator's own kinds and side outputs (PluginSpec.emits, sideOutputs): what a sink of the pipeline may ask for.
  assert.match(reference, /^_operator, beta, state: keyed, emits: session, side outputs: late\._ Groups each user's events into sessions/m);
  assert.match(reference, /^_operator, beta, state: none\._ Bounds the named features/m, 'a stage that makes no kind of its own says none');
  const sessionizer = listed.find((plugin) => plugin.name === 'sessionizer') as { emits?: string[]; sideOutputs?: string[] } | undefined;
  assert.deepEqual([sessionizer?.emits, sessionizer?.sideOutputs], [['session'], ['late']]);
  assert.match(describePlugins(registry, false), /^operator sessionizer \(beta\)\n  .*\n  emits kinds: session\n  side outputs: late\n/m);
  // Kinds made only under some config (PluginSpec.emitsOnlyWith) are listed with their condition.
  const reports = "emits: prediction, drift (only with a drift detector: drift.detector not 'none'), model_metrics (only with report: true), label (only with emit_labels: true), unlabelled (only with emit_labels: true)";
  assert.ok(reference.includes(`_operator, experimental, state: global, ${reports}, side outputs: shadow (only with shadow: true)._ Learns P(session ends in a purchase)`), 'the reference says when a model emits what');
  assert.match(describePlugins(registry, false), /^operator intent-model \(experimental\)\n  .*\n  emits kinds: prediction, drift \(only with a drift detector: drift\.detector not 'none'\), model_metrics \(only with report: true\), label \(only with emit_labels: true\), unlabelled \(only with emit_labels: true\)\n/m);
  const intent = listed.find((plugin) => plugin.name === 'intent-model') as { emits?: string[]; emitsOnlyWith?: Record<string, string> } | undefined;
  assert.deepEqual([intent?.emits, intent?.emitsOnlyWith], [['prediction', 'drift', 'model_metrics', 'label', 'unlabelled'], { drift: "a drift detector: drift.detector not 'none'", model_metrics: 'report: true', label: 'emit_labels: true', unlabelled: 'emit_labels: true' }]);
});

test('every error code is documented in docs/errors.md', () => {
  const text = readFileSync(join(packageRoot, 'docs', 'errors.md'), 'utf8');
  for (const code of Object.keys(errorCatalogue)) assert.match(text, new RegExp(`^## ${code}$`, 'm'), `${code} is documented`);
});

test("the exit codes are listed once, in docs/errors.md's Exit codes, naming every error code; README.md and docs/operations.md link to it (each had a partial list of its own)", () => {
  const read = (file: string): string => readFileSync(join(packageRoot, file), 'utf8');
  const errors = read('docs/errors.md');
  const section = /^## Exit codes\n([\s\S]*?)^## /m.exec(errors)?.[1];
  assert.ok(section, 'docs/errors.md has an Exit codes section');
  for (const code of Object.keys(errorCatalogue)) assert.ok(section.includes(`\`${code}\``), `${code} is in the exit codes`);
  assert.ok(read('README.md').includes('(docs/errors.md#exit-codes)'), 'README.md links to it');
  assert.ok(read('docs/operations.md').includes('(errors.md#exit-codes)'), 'docs/operations.md links to it');
});

/** A Markdown file's heading anchors as GitHub makes them: lower case, punctuation dropped, spaces as `-`, a repeat suffixed `-1`, `-2`. */
function headingAnchors(markdown: string): { level: number; title: string; anchor: string }[] {
  const seen = new Map<string, number>();
  const headings: { level: number; title: string; anchor: string }[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const match = fenced ? null : /^(#{1,6}) (.+)$/.exec(line);
    if (!match) continue;
    const base = match[2]!.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    headings.push({ level: match[1]!.length, title: match[2]!.trim(), anchor: count === 0 ? base : `${base}-${count}` });
  }
  return headings;
}

test("docs/operations.md opens with a table of contents linking each of its sections and sub-sections (## and ###), in order, by the anchors GitHub gives them", () => {
  const operations = readFileSync(join(packageRoot, 'docs', 'operations.md'), 'utf8');
  const sections = headingAnchors(operations).filter(({ level }) => level === 2 || level === 3);
  const contents = /^# .*\n\n((?:\s*- \[.*\]\(#.*\)\n)+)/.exec(operations)?.[1];
  assert.ok(contents, 'a list of links right under the title');
  const entries = contents.trimEnd().split('\n').map((line) => /^( *)- \[(.*)\]\(#(.*)\)$/.exec(line)).map((match) => ({ level: match![1]!.length / 2 + 2, title: match![2]!, anchor: match![3]! }));
  assert.deepEqual(entries, sections);
});

test('every link to a heading of README.md, BENCHMARKS.md or docs/*.md, from those files, names a heading that file has (a renamed section leaves none dangling)', () => {
  const files = ['README.md', 'BENCHMARKS.md', 'docs/errors.md', 'docs/operations.md', 'docs/operators.md', 'docs/pipeline-reference.md', 'docs/plugin-authoring.md', 'docs/records.md'];
  const anchorsOf = new Map(files.map((file) => [file, new Set(headingAnchors(readFileSync(join(packageRoot, file), 'utf8')).map(({ anchor }) => anchor))]));
  const dangling: string[] = [];
  let links = 0;
  for (const file of files) {
    const text = readFileSync(join(packageRoot, file), 'utf8');
    for (const [, target, anchor] of text.matchAll(/\]\(((?:docs\/|\.\.\/)?[\w-]*(?:\.md)?)#([^)\s]+)\)/g)) {
      const resolved = target === '' ? file : join(file.startsWith('docs/') ? 'docs' : '', target!).replace(/^docs\/\.\.\//, '');
      const anchors = anchorsOf.get(resolved);
      if (!anchors) continue;
      links++;
      if (!anchors.has(anchor!)) dangling.push(`${file}: ${target}#${anchor}`);
    }
  }
  assert.ok(links > 60, `${links} links checked`);
  assert.deepEqual(dangling, []);
});

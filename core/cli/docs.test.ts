import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { composedSchema, errorCatalogue, type JsonSchema } from 'tributary';
import { SchemaValidator } from '../config/schema.js';
import { packageRoot } from '../paths.js';
import { pipelineReference } from './docs.js';
import { builtinRegistry } from './registry.js';

test('every plugin documents every field, and every example in a spec validates against the real schema', async () => {
  const registry = await builtinRegistry();
  const validator = new SchemaValidator();
  for (const plugin of registry.all()) {
    assert.ok(plugin.summary.length > 0, `${plugin.kind} ${plugin.name} has a summary`);
    for (const [field, schema] of Object.entries((plugin.config.properties ?? {}) as Record<string, JsonSchema>)) {
      assert.ok(typeof schema.description === 'string' && schema.description.length > 0 || typeof schema.$ref === 'string', `${plugin.kind} ${plugin.name}: field '${field}' has a description`);
    }
    for (const example of plugin.examples ?? []) {
      const errors = validator.validateEntry(plugin, { type: plugin.name, ...structuredClone(example) });
      assert.deepEqual(errors, [], `${plugin.kind} ${plugin.name} example ${JSON.stringify(example)}`);
    }
  }
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

test('every error code is documented in docs/errors.md', () => {
  const text = readFileSync(join(packageRoot, 'docs', 'errors.md'), 'utf8');
  for (const code of Object.keys(errorCatalogue)) assert.match(text, new RegExp(`^## ${code}$`, 'm'), `${code} is documented`);
});

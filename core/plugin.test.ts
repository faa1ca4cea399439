/**
 * defineSource/defineOperator/defineSink check a plugin's config schema against its Config type at
 * compile time (`npm test` compiles before it runs): each `@ts-expect-error` below fails the build if
 * the mistake under it is no longer an error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Observable } from 'rxjs';
import { defineOperator, emittedWith, isPrediction, isSessionSummary, type Element, type StreamRecord } from 'tributary';

const passThrough = (input: Observable<Element>): Observable<Element> => input;

interface ThresholdConfig {
  field: string;
  min?: number;
}

const properties = { field: { type: 'string' }, min: { type: 'number' } };

test('a config schema that names every field of its Config type, and only those, defines a plugin', () => {
  const plugin = defineOperator<ThresholdConfig>({ name: 'threshold', summary: 's', config: { type: 'object', required: ['field'], properties }, create: () => ({ apply: passThrough }) });
  assert.equal(plugin.name, 'threshold');
});

test('a config schema out of step with its Config type does not compile', () => {
  const create = (): { apply: typeof passThrough } => ({ apply: passThrough });
  // A field of Config the schema lacks (renamed in one and not the other).
  // @ts-expect-error min is missing from properties
  defineOperator<ThresholdConfig>({ name: 'a', summary: 's', config: { type: 'object', properties: { field: { type: 'string' } } }, create });
  // A field the schema accepts that Config does not have (the factory would never read it).
  // @ts-expect-error max is not a field of ThresholdConfig
  defineOperator<ThresholdConfig>({ name: 'b', summary: 's', config: { type: 'object', properties: { ...properties, max: { type: 'number' } } }, create });
  // A required field that is not a field.
  // @ts-expect-error 'feild' is not a field of ThresholdConfig
  defineOperator<ThresholdConfig>({ name: 'c', summary: 's', config: { type: 'object', required: ['feild'], properties }, create });
  // The Config type taken from the factory's parameter is checked as well.
  defineOperator({
    name: 'd',
    summary: 's',
    // @ts-expect-error min is missing from properties
    config: { type: 'object', properties: { field: { type: 'string' } } },
    create: (config: ThresholdConfig) => ({ apply: config.field ? passThrough : passThrough }),
  });
});

test('featureSelectorField names a field of the Config type, or a field of an object field (`model.features`): a field renamed in Config and not there does not compile', () => {
  interface ScaleConfig {
    features: string[];
    model: { features: string[]; factor?: number };
  }
  const scaleProperties = { features: { type: 'array' }, model: { type: 'object' } };
  const spec = { summary: 's', config: { type: 'object', properties: scaleProperties }, create: () => ({ apply: passThrough }) };
  assert.equal(defineOperator<ScaleConfig>({ ...spec, name: 'a', featureSelectorField: 'features' }).featureSelectorField, 'features');
  assert.equal(defineOperator<ScaleConfig>({ ...spec, name: 'b', featureSelectorField: 'model.features' }).featureSelectorField, 'model.features');
  // @ts-expect-error 'feature' is not a field of ScaleConfig
  defineOperator<ScaleConfig>({ ...spec, name: 'c', featureSelectorField: 'feature' });
  // @ts-expect-error 'model.feature' is not a field of its model
  defineOperator<ScaleConfig>({ ...spec, name: 'd', featureSelectorField: 'model.feature' });
  // A Config without fixed fields names any.
  assert.equal(defineOperator<Record<string, unknown>>({ ...spec, name: 'e', featureSelectorField: 'anything' }).featureSelectorField, 'anything');
});

test("what a plugin emits only under some config (emitsOnlyWith) is tested with its own Config type, and emittedWith applies it", () => {
  const plugin = defineOperator<ThresholdConfig>({
    name: 'threshold',
    summary: 's',
    emits: ['flag', 'low'],
    emitsOnlyWith: { low: { condition: 'min', test: (config) => config.min !== undefined } },
    config: { type: 'object', required: ['field'], properties },
    create: () => ({ apply: passThrough }),
  });
  assert.deepEqual(emittedWith(plugin, { field: 'x' }), { kinds: ['flag'], sideOutputs: [] });
  assert.deepEqual(emittedWith(plugin, { field: 'x', min: 0 }), { kinds: ['flag', 'low'], sideOutputs: [] });
  defineOperator<ThresholdConfig>({
    name: 'mistyped',
    summary: 's',
    emits: ['low'],
    // @ts-expect-error max is not a field of ThresholdConfig
    emitsOnlyWith: { low: { condition: 'max', test: (config) => config.max !== undefined } },
    config: { type: 'object', properties },
    create: () => ({ apply: passThrough }),
  });
  // A plugin that does not declare emits may make anything: no list.
  assert.equal(emittedWith(defineOperator<ThresholdConfig>({ name: 'any', summary: 's', config: { type: 'object', properties }, create: () => ({ apply: passThrough }) }), { field: 'x' }), undefined);
});

test('isPrediction and isSessionSummary type the records a plugin is handed (a plain `as Prediction` does not compile)', () => {
  const records: StreamRecord[] = [
    { kind: 'prediction', id: 'p1', model: 'm', modelVersion: '1-0', task: 'intent', userId: 'u', time: 5, score: 0.25 },
    { kind: 'session', userId: 'u', sessionId: 's', start: 0, end: 5, eventCount: 2, counts: { view: 2 }, purchased: false },
  ];
  const scores = records.filter(isPrediction).map((prediction) => prediction.score);
  const purchased = records.filter(isSessionSummary).map((summary) => summary.purchased);
  assert.deepEqual(scores, [0.25]);
  assert.deepEqual(purchased, [false]);
});

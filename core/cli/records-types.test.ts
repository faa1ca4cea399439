// The public record types (core/events.ts) a plugin author consumes, checked against docs/records.md, the fields
// a pipeline really writes (cli-records.test.ts checks the records against the same tables). Each list below is
// typed so that it compiles only while it names exactly the type's fields, with their presence: a field added to
// a type and not here, or here and not in the type, fails the build; one not in the docs fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClickEvent, DeadLetter, ModelCounts, ModelDrift, ModelMetrics, Prediction, PredictionLabel, PredictionUnlabelled, SessionContext, SessionSummary } from 'tributary';
import { documentedFields } from './records-doc-test-helpers.js';

/** Every field of T that JSON writes (symbol keys aside), and whether T lets it be absent. */
type FieldPresence<T> = { [K in Exclude<keyof T, symbol>]-?: {} extends Pick<T, K> ? 'optional' : 'always' };

const typed = {
  prediction: {
    kind: 'always', id: 'always', model: 'always', modelVersion: 'always', task: 'always', userId: 'always', sessionId: 'optional', time: 'always', score: 'always',
  } satisfies FieldPresence<Prediction>,
  label: {
    kind: 'always', predictionId: 'always', model: 'always', task: 'always', userId: 'always', sessionId: 'optional', time: 'always', label: 'always',
  } satisfies FieldPresence<PredictionLabel>,
  unlabelled: {
    kind: 'always', predictionId: 'always', model: 'always', task: 'always', userId: 'always', sessionId: 'optional', reason: 'always',
  } satisfies FieldPresence<PredictionUnlabelled>,
  session: {
    kind: 'always', userId: 'always', sessionId: 'always', start: 'always', end: 'always', eventCount: 'always', counts: 'always', purchased: 'always',
    update: 'optional', closedBy: 'optional', replaces: 'optional', keptUntil: 'optional',
  } satisfies FieldPresence<SessionSummary>,
  drift: {
    kind: 'always', model: 'always', task: 'always', detector: 'always', time: 'always', labels: 'always', action: 'always',
  } satisfies FieldPresence<ModelDrift>,
  model_metrics: {
    kind: 'always', model: 'always', task: 'always', kind_of_model: 'always', backend: 'always', features: 'always', summary: 'always', calibration: 'always',
    calibrationError: 'always', roc: 'always', timeline: 'always', timelineWindow: 'always', counts: 'always', warmStart: 'always', warmStartSetting: 'optional', modelFile: 'always',
    skippedFeatureValues: 'always', scoreReason: 'always', scoreNotes: 'always', shadow: 'optional',
  } satisfies FieldPresence<ModelMetrics>,
  dead_letter: {
    kind: 'always', reason: 'always', pipeline: 'always', stage: 'always', source: 'optional', file: 'optional', line: 'optional', offset: 'optional',
    partition: 'optional', raw: 'optional', encoding: 'optional', key: 'optional', keyEncoding: 'optional', rawBytes: 'optional', at: 'always',
  } satisfies FieldPresence<DeadLetter>,
  event: {
    kind: 'always', userId: 'always', sessionId: 'optional', time: 'always', type: 'always', itemId: 'optional', category: 'optional', price: 'optional',
    attrs: 'optional', session: 'optional', features: 'optional',
  } satisfies FieldPresence<ClickEvent>,
} as const;

/**
 * Fields the built-in stage always writes but the public type leaves optional: a plugin may get the record
 * from elsewhere (another plugin's sessionizer, a topic another pipeline wrote), without them.
 */
const alwaysWrittenOptionalInType: Record<string, readonly string[]> = { session: ['closedBy', 'keptUntil'] };

test('each public record type (Prediction, PredictionLabel, PredictionUnlabelled, SessionSummary, ModelDrift, ModelMetrics, DeadLetter, ClickEvent) has exactly the fields docs/records.md lists for its kind, and none the docs call optional is required', () => {
  const docs = documentedFields();
  for (const [kind, fields] of Object.entries(typed)) {
    const documented = docs.get(kind);
    assert.ok(documented, `docs/records.md has no table for kind '${kind}'`);
    assert.deepEqual(Object.keys(fields).sort(), [...documented.keys()].sort(), `kind '${kind}': the public type's fields, then docs/records.md's`);
    for (const [field, presence] of Object.entries(fields)) {
      const { optional } = documented.get(field)!;
      if (optional) assert.equal(presence, 'optional', `kind '${kind}': docs/records.md says '${field}' may be absent, but the public type requires it`);
      else if (presence === 'optional') {
        assert.ok(alwaysWrittenOptionalInType[kind]?.includes(field), `kind '${kind}': docs/records.md says '${field}' is always there, but the public type lets it be absent`);
      }
    }
  }
});

test("ClickEvent's session context (SessionContext) has the fields docs/records.md lists in the event's `session` row", () => {
  const context = {
    id: 'always', position: 'always', sinceStart: 'always', sincePrevious: 'always', start: 'always', outOfOrder: 'optional', merged: 'optional',
  } as const satisfies FieldPresence<SessionContext>;
  const meaning = documentedFields().get('event')?.get('session')?.meaning ?? '';
  // `{id, position, ...}` (always there), then the backticked ones that apply only sometimes.
  const always = (/\{([^}]*)\}/.exec(meaning)?.[1] ?? '').split(',').map((name) => name.trim()).filter(Boolean);
  const sometimes = [...meaning.replace(/\{[^}]*\}/, '').matchAll(/`([A-Za-z]+)`/g)].map((match) => match[1]!);
  assert.deepEqual(always.sort(), Object.keys(context).filter((field) => context[field as keyof typeof context] === 'always').sort());
  assert.deepEqual(sometimes.sort(), Object.keys(context).filter((field) => context[field as keyof typeof context] === 'optional').sort());
});

test("ModelMetrics' counts (ModelCounts) have the fields docs/records.md lists in the model_metrics `counts` row", () => {
  const counts = {
    predictions: true, labels: true, learnSteps: true, overflow: true, expired: true, unlabelledAtEnd: true, drifts: true, lateLabels: true, invalidScores: true,
    withdrawn: true, erased: true, scoredBeforeLearning: true,
  } as const satisfies Record<keyof ModelCounts, true>;
  const meaning = documentedFields().get('model_metrics')?.get('counts')?.meaning ?? '';
  const documented = [...meaning.matchAll(/`([A-Za-z]+)`/g)].map((match) => match[1]!);
  assert.deepEqual(documented.sort(), Object.keys(counts).sort());
});

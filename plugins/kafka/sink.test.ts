// The kafka sink's message keys: what keeps records that belong together in one partition, in order, for the
// consumer that deduplicates by keeping the last copy (docs/records.md). No broker: the key is chosen before produce.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StreamRecord } from 'tributary';
import { messageKey } from './sink.js';

const prediction: StreamRecord = { kind: 'prediction', id: 'a1', model: 'intent', modelVersion: '1.3', task: 'intent', userId: 'u1', time: 5, score: 0.2 };
const drift: StreamRecord = { kind: 'drift', model: 'intent', task: 'intent', detector: 'adwin', time: 9, labels: 40, action: 'none' };
const metrics: StreamRecord = { kind: 'model_metrics', model: 'churn', task: 'churn', summary: {} };

test("a record with its key field is keyed by it (a user's records in one partition); a number as text", () => {
  assert.equal(messageKey(prediction, 'userId'), 'u1');
  assert.equal(messageKey({ kind: 'event', userId: 'u2', sessionId: 7 }, 'sessionId'), '7');
});

test("drift and model_metrics (no user) are keyed by their model's name, so a model's drift records stay in order in one partition (was: no key, spread over the partitions)", () => {
  assert.equal(messageKey(drift, 'userId'), 'intent');
  assert.equal(messageKey(metrics, 'userId'), 'churn');
  // Its own key field first, where it has one.
  assert.equal(messageKey({ ...drift, shop: 's1' }, 'shop'), 's1');
});

test('a dead letter is keyed as the record it carries would be (a rejected event: its user), else by its input message\'s text key; a binary key or none: no key', () => {
  const deadLetter = (fields: Record<string, unknown>): StreamRecord => ({ kind: 'dead_letter', reason: 'r', pipeline: 'p', stage: 's', at: '2026-01-01T00:00:00.000Z', ...fields });
  assert.equal(messageKey(deadLetter({ raw: { kind: 'event', userId: 'u3', time: 1, type: 'view' } }), 'userId'), 'u3');
  assert.equal(messageKey(deadLetter({ raw: drift }), 'userId'), 'intent', 'a drift record too large for the topic');
  assert.equal(messageKey(deadLetter({ raw: 'not json', key: 'u4', source: 'clicks' }), 'userId'), 'u4', "a Kafka source's message that did not parse");
  assert.equal(messageKey(deadLetter({ raw: 'AAE=', encoding: 'base64', key: 'AAE=', keyEncoding: 'base64' }), 'userId'), null);
  assert.equal(messageKey(deadLetter({ raw: 'a bad line', source: 'file', line: 3 }), 'userId'), null, "a file source's line");
});

test('a record of another kind without the key field gets no key (librdkafka spreads those over the partitions)', () => {
  assert.equal(messageKey({ kind: 'custom', value: 1 }, 'userId'), null);
  assert.equal(messageKey({ kind: 'custom', userId: { nested: true } }, 'userId'), null);
});

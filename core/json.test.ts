import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ORIGIN, recordToJson, recordToJsonBytes, type ClickEvent, type Prediction } from 'tributary';
import { JsonBuffer, NO_ROOM, NOT_CANONICAL, jsonProblem, writeRecordJson } from './json.js';

test('canonical events encode exactly as JSON.stringify would, whatever their strings hold', () => {
  const cases: ClickEvent[] = [
    { kind: 'event', userId: 'u1', time: 1, type: 'view' },
    { kind: 'event', userId: 'u"2\\', time: 2, type: 'cart', sessionId: 's\n', itemId: '\u2028i', category: 'caf\u00e9 \ud83d\ude00', price: 1.5 },
    { kind: 'event', userId: 'u3', time: 3, type: 'purchase', price: 0.1 + 0.2 },
    { kind: 'event', userId: 'lone \ud800 surrogate', time: 4, type: 'view' },
  ];
  for (const event of cases) {
    const withOrigin = { ...event, [ORIGIN]: { source: 's', line: 1 } };
    assert.equal(recordToJson(withOrigin), JSON.stringify(event));
    assert.deepEqual(JSON.parse(recordToJson(event)), JSON.parse(JSON.stringify(event)));
  }
});

test('fields beyond the canonical ones are never dropped; feature vectors are written by name', () => {
  const extended = { kind: 'event', userId: 'u', time: 1, type: 'view', seen: true, attrs: { brand: 'x' } };
  assert.equal(recordToJson(extended), JSON.stringify(extended));
  const withFeatures = { kind: 'event', userId: 'u', time: 1, type: 'view', features: { names: ['a', 'b'], values: new Float32Array([1, 0.5]) } };
  assert.deepEqual(JSON.parse(recordToJson(withFeatures)).features, { a: 1, b: 0.5 });
  // A feature a plugin named __proto__ is written as one (an assignment set the object's prototype: lost).
  const oddlyNamed = { kind: 'event', userId: 'u', time: 1, type: 'view', features: { names: ['__proto__', 'b'], values: new Float32Array([2, 3]) } };
  assert.equal(JSON.stringify(JSON.parse(recordToJson(oddlyNamed)).features), '{"__proto__":2,"b":3}');
  assert.equal(recordToJson({ kind: 'session', userId: 'u' }), '{"kind":"session","userId":"u"}');
  for (const odd of [{ kind: 'event', userId: 'u', time: 1, type: 'view', sessionId: null }, { kind: 'event', userId: 'u', time: 1, type: 'view', price: null }, { kind: 'event', userId: 'u', time: 1, type: 'view', itemId: 7 }]) {
    assert.equal(recordToJson(odd), JSON.stringify(odd), 'values of unexpected types are written as JSON.stringify would');
  }
});

test('a dead letter whose raw is an event with features (a stage rejected it) has them written by name too', () => {
  const event = { kind: 'event', userId: 'u', time: 1, type: 'view', features: { names: ['a', 'b'], values: new Float32Array([1, 0.5]) } };
  const dead = { kind: 'dead_letter', reason: 'stage-x: no', stage: 'stage-x', raw: event, at: '2024-01-01T00:00:00.000Z' };
  const written = JSON.parse(recordToJson(dead));
  assert.deepEqual(written.raw, { kind: 'event', userId: 'u', time: 1, type: 'view', features: { a: 1, b: 0.5 } });
  assert.equal(recordToJsonBytes(dead).toString(), recordToJson(dead));
  for (const raw of ['{"a":1}', null, { kind: 'event', userId: 'u', features: null }]) {
    const other = { kind: 'dead_letter', reason: 'r', raw };
    assert.equal(recordToJson(other), JSON.stringify(other), 'any other raw as JSON.stringify writes it');
  }
});

test('numbers are written as JSON.stringify writes them: epoch times, prices, and every other finite value', () => {
  const values = [0, -0, 1, -1, 0.01, 0.05, 0.1, 0.1 + 0.2, 1.005, 2.675, 36.62, 36.6, 999999999.99, 1e9, 1e9 + 0.5, 1e-7, 5e-324, 1e21, 1.5e300, Number.MAX_VALUE];
  values.push(Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, -(2 ** 53), 999999999, 1000000000, 1704067200279);
  let seed = 7;
  const random = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
  for (let i = 0; i < 20000; i++) {
    values.push(Math.floor(random() * 1e7) / 100, -Math.floor(random() * 1e11) / 100, Math.round(random() * 1e5) / 10);
    values.push(random() * 10 ** (random() * 40 - 20), Math.floor(random() * 2 ** 53), 1.7e12 + Math.floor(random() * 1e11));
  }
  for (const value of values) {
    const priced = { kind: 'event', userId: 'u', time: 1, type: 'view', price: value };
    assert.equal(recordToJson(priced), JSON.stringify(priced));
    const timed = { kind: 'event', userId: 'u', time: value, type: 'view' };
    assert.equal(recordToJson(timed), JSON.stringify(timed));
  }
});

test('writeRecordJson writes UTF-8 into a buffer, or nothing when it lacks room or the record is not canonical', () => {
  const event: ClickEvent = { kind: 'event', userId: 'caf\u00e9', time: 5, type: 'view', itemId: '\ud83d\ude00', price: 2.5 };
  const out = new JsonBuffer(4096);
  const end = writeRecordJson(event, out, 10);
  assert.equal(out.bytes.toString('utf8', 10, end), JSON.stringify(event));
  const small = new JsonBuffer(64);
  small.bytes.fill(0x2e);
  assert.equal(writeRecordJson(event, small, 0), NO_ROOM);
  assert.ok(small.bytes.every((byte) => byte === 0x2e), 'nothing written');
  assert.equal(writeRecordJson({ kind: 'session', userId: 'u' }, out, 0), NOT_CANONICAL);
  assert.equal(writeRecordJson({ ...event, attrs: {} }, out, 0), NOT_CANONICAL);
});

test('predictions encode as JSON.stringify would, as bytes and as text, however they were built', () => {
  const intent: Prediction = { kind: 'prediction', id: 'intent:u1:7', model: 'intent', modelVersion: '3', task: 'intent', userId: 'u1', time: 1704067200279, score: 0.123456789, sessionId: 's"1' };
  const churn: Prediction = { kind: 'prediction', id: 'churn:u\u00e9', model: 'churn', modelVersion: '1', task: 'churn', userId: 'caf\u00e9', time: 5, score: 1e-7 };
  const reordered = { kind: 'prediction', id: 'x', userId: 'u', model: 'm', modelVersion: '1', task: 't', time: 1, score: 0.5 };
  const odd = [reordered, { ...intent, extra: true }, { ...intent, score: Number.NaN }, { ...intent, time: '1' }, { ...intent, sessionId: 7 }];
  const out = new JsonBuffer(4096);
  for (const record of [intent, churn, { ...churn, score: 1 }, { ...intent, score: -1.5e300 }, ...odd]) {
    const expected = JSON.stringify(record);
    assert.equal(recordToJson(record), expected);
    assert.equal(recordToJsonBytes(record).toString('utf8'), expected);
  }
  for (const record of [intent, churn, { ...churn, score: -0 }, { ...churn, sessionId: undefined }]) assert.equal(out.bytes.toString('utf8', 0, writeRecordJson(record, out, 0)), JSON.stringify(record));
  for (const record of odd) assert.equal(writeRecordJson(record, out, 0), NOT_CANONICAL, 'another order, other fields or other types take the generic path');
  const long = { kind: 'event', userId: 'u'.repeat(20_000), time: 1, type: 'view', note: '\u00e9'.repeat(5_000) };
  assert.equal(recordToJsonBytes(long).toString('utf8'), JSON.stringify(long), 'a record larger than the scratch buffer');
});

test('jsonProblem names what JSON would not give back, by path; strict also NaN and undefined in lists; itemsEach bounds the walk of each list and object', () => {
  assert.equal(jsonProblem({ a: [1, { b: new Map() }] }, '$', { strict: false }), '$.a[1].b is a Map (written as {}): use [...entries] or an object');
  assert.equal(jsonProblem({ t: new Float32Array(2) }, '$', { strict: false }), '$.t is a Float32Array (written as an object of indices): use Array.from');
  assert.equal(jsonProblem({ n: NaN, u: [undefined] }, '$', { strict: false }), undefined);
  assert.equal(jsonProblem({ n: NaN }, '$', { strict: true }), '$.n is NaN (written as null)');
  assert.equal(jsonProblem({ at: { toJSON: () => new Set() } }, '$', { strict: false }), '$.at is a Set (written as {}): use [...entries] or an object');
  const long: unknown[] = Array.from({ length: 5000 }, (_, i) => i);
  long[4000] = new Set();
  assert.equal(jsonProblem({ long }, '$', { strict: false, itemsEach: 1000 }), undefined);
  assert.equal(jsonProblem({ long }, '$', { strict: false }), '$.long[4000] is a Set (written as {}): use [...entries] or an object');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ORIGIN, recordToJson, type ClickEvent } from 'tributary';

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
  assert.equal(recordToJson({ kind: 'session', userId: 'u' }), '{"kind":"session","userId":"u"}');
  for (const odd of [{ kind: 'event', userId: 'u', time: 1, type: 'view', sessionId: null }, { kind: 'event', userId: 'u', time: 1, type: 'view', price: null }, { kind: 'event', userId: 'u', time: 1, type: 'view', itemId: 7 }]) {
    assert.equal(recordToJson(odd), JSON.stringify(odd), 'values of unexpected types are written as JSON.stringify would');
  }
});

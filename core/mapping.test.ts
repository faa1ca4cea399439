import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClickEvent, StreamRecord } from './events.js';
import { recordToJson } from './json.js';
import { CANONICAL_EVENT_MAPPING, createEventMapper, createTimeParser, isRejected, MAX_ATTRIBUTE_DEPTH } from './mapping.js';

const iso = createTimeParser('iso8601');

test('iso8601 times are what Date.parse gives, the common UTC form read by position included', () => {
  const pad = (value: number, width: number): string => String(value).padStart(width, '0');
  const pick = <T>(choices: readonly T[], r: number): T => choices[Math.floor(r * choices.length)]!;
  // A seeded generator: the same cases on every run.
  let seed = 42;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const cases: string[] = [
    '2024-01-01T00:00:00Z',
    '2024-01-01T00:00:00.000Z',
    '2024-02-30T00:00:00Z', // rolls over to March 1st, as Date.parse does
    '2024-01-01T24:00:00Z', // the end of a day: Date.parse takes it
    '2024-01-01T23:59:60Z',
    '0099-06-15T12:00:00Z', // years below 100: not 1999
    '0100-06-15T12:00:00.250Z',
    '2024-01-01T00:00:00.5Z',
    '2024-01-01T00:00:00+02:00',
    '2024-01-01',
    '2024-01-01t00:00:00z',
    '2024-1-01T00:00:00Z',
    '2024-01-01T00:00:00.00xZ',
    ' 2024-01-01T00:00:00Z',
    'not a time at all!!!',
  ];
  for (let i = 0; i < 20_000; i++) {
    const year = pick([0, 99, 100, 1969, 1970, 2024, 9999], random());
    const month = Math.floor(random() * 14);
    const day = Math.floor(random() * 33);
    const hour = Math.floor(random() * 26);
    const minute = Math.floor(random() * 61);
    const second = Math.floor(random() * 62);
    const fraction = pick(['', `.${pad(Math.floor(random() * 1000), 3)}`, '.5', '.1234'], random());
    const zone = pick(['Z', 'Z', 'Z', '+01:00', 'z', ''], random());
    const separator = pick(['T', 'T', 'T', ' ', 't'], random());
    cases.push(`${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}${separator}${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction}${zone}`);
  }
  let fast = 0;
  for (const text of cases) {
    const expected = Date.parse(text);
    assert.ok(Object.is(iso(text), expected), `${text}: ${iso(text)}, Date.parse gives ${expected}`);
    if (!Number.isNaN(expected)) fast++;
  }
  assert.ok(fast > 1_000, `enough valid times among the cases (${fast})`);
  for (const value of [undefined, null, 1704067200000, {}, ['2024-01-01T00:00:00Z']]) assert.ok(Number.isNaN(iso(value)), String(value));
});

test('a value nested thousands deep (valid JSON) is a rejection with its reason, never a thrown stack overflow', () => {
  const map = createEventMapper({ time_format: 'epoch_ms', attributes: ['brand', 'tags'] });
  const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
  const asUser = map({ user_id: deep, time: 1, type: 'view' });
  assert.ok(isRejected(asUser));
  assert.equal(asUser.rejected, `user_id: expected a string or number, got an array nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels`);
  const asAttribute = map({ user_id: 'u1', time: 1, type: 'view', brand: 'b', tags: { a: deep } });
  assert.ok(isRejected(asAttribute));
  assert.equal(asAttribute.rejected, `tags: attribute nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels`);
  // Nested within the bound, an attribute is kept as it came.
  let nested: unknown = 'leaf';
  for (let i = 0; i < MAX_ATTRIBUTE_DEPTH; i++) nested = i % 2 === 0 ? [nested] : { x: nested };
  const kept = map({ user_id: 'u1', time: 1, type: 'view', tags: nested });
  assert.ok(!isRejected(kept));
  assert.equal(kept.attrs?.tags, nested);
});

test('a parsed value that is not an object (a JSON line `null`, `42`, `[1]`, `"x"`) is a rejection, not a TypeError', () => {
  // What a user's source gets from JSON.parse, passed straight on as plugin-authoring.md shows.
  const map = createEventMapper();
  const reasons = [null, 42, [1], 'x', true].map((value) => {
    const result = map(value);
    assert.ok(isRejected(result), JSON.stringify(value));
    return result.rejected;
  });
  assert.deepEqual(reasons, [
    'expected a JSON object, got null',
    'expected a JSON object, got number',
    'expected a JSON object, got an array',
    'expected a JSON object, got string',
    'expected a JSON object, got boolean',
  ]);
  assert.ok(!isRejected(map(JSON.parse('{"user_id":"u1","time":"2024-01-01T00:00:00Z","type":"view"}'))));
});

test('CANONICAL_EVENT_MAPPING reads back what a file sink wrote of an event, attributes included; attributes_field takes an object whole', () => {
  const event: ClickEvent = { kind: 'event', userId: 'u1', sessionId: 's1', time: 1704067200123, type: 'cart', itemId: 'i9', category: 'shoes', price: 12.5, attrs: { brand: 'acme', sizes: [40, { eu: 41 }], color: 'red' } };
  const read = createEventMapper(CANONICAL_EVENT_MAPPING);
  assert.deepEqual(read(JSON.parse(recordToJson(event as unknown as StreamRecord))), event);
  const { attrs: _none, ...plain } = event;
  assert.deepEqual(read(JSON.parse(recordToJson(plain as unknown as StreamRecord))), plain, 'no attrs: none made up');
  const mapper = createEventMapper({ attributes_field: 'extra', attributes: ['brand'] });
  const base = { user_id: 'u', time: '2024-01-01T00:00:00Z', type: 'view' };
  // Listed attributes add to the object's; an attribute named __proto__ stays an attribute.
  const mapped = mapper(JSON.parse('{"user_id":"u","time":"2024-01-01T00:00:00Z","type":"view","brand":"b","extra":{"color":"red","__proto__":{"x":1}}}')) as ClickEvent;
  assert.deepEqual(Object.entries(mapped.attrs!), [['color', 'red'], ['__proto__', { x: 1 }], ['brand', 'b']]);
  assert.deepEqual(mapper({ ...base, extra: 'red' }), { rejected: 'extra: expected an object of attributes, got "red"' });
  assert.deepEqual(mapper({ ...base, extra: [1] }), { rejected: 'extra: expected an object of attributes, got [1]' });
  // The bound of a listed attribute, for each of the object's: within it kept, past it rejected.
  let nested: unknown = 'leaf';
  for (let i = 0; i < MAX_ATTRIBUTE_DEPTH; i++) nested = [nested];
  assert.deepEqual((mapper({ ...base, extra: { tags: nested } }) as ClickEvent).attrs, { tags: nested });
  assert.deepEqual(mapper({ ...base, extra: { tags: [nested] } }), { rejected: `extra: attribute nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels` });
  assert.ok(isRejected(createEventMapper({ attributes: ['tags'] })({ ...base, tags: [nested] })));
});

test('a negative price is a rejection with its reason (a price is never below 0); 0 and positive prices are kept', () => {
  const map = createEventMapper();
  const at = (price: unknown) => map({ user_id: 'u1', time: '2024-01-01T00:00:00Z', type: 'view', price });
  assert.deepEqual(at(-3.5), { rejected: 'price: expected a number of 0 or more, got -3.5' });
  assert.deepEqual(at('-0.01'), { rejected: 'price: expected a number of 0 or more, got "-0.01"' });
  assert.equal((at(0) as ClickEvent).price, 0);
  assert.equal((at('12.5') as ClickEvent).price, 12.5);
});

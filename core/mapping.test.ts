import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { ClickEvent, StreamRecord } from './events.js';
import { recordToJson } from './json.js';
import { ABSENT_FIELD_SAMPLE, absentFieldCheck, CANONICAL_EVENT_MAPPING, createEventMapper, createTimeParser, isRejected, isSkipped, mappingWarnings, MAX_ATTRIBUTE_DEPTH, MAX_ID_LENGTH, MAX_UNKNOWN_TYPES_TOLD, timeFormatProblem, unknownEventTypeWarning, type MappingConfig } from './mapping.js';
import { zoneNameWarning } from './time-zone.js';
import { fieldPath, fieldPathProblem, similarFieldPath } from './fields.js';
import { MetricsHub } from './runtime/telemetry.js';

const iso = createTimeParser('iso8601');

test('iso8601: RFC 3339 forms; without an offset UTC (never the machine\'s time zone); a date that does not exist, or other text, is NaN', () => {
  const cases: [string, number][] = [
    ['2024-01-01T00:00:00Z', Date.UTC(2024, 0, 1)],
    ['2024-01-01T00:00:00.250Z', Date.UTC(2024, 0, 1, 0, 0, 0, 250)],
    ['2024-01-01T10:00:00', Date.UTC(2024, 0, 1, 10)],
    ['2024-01-01 10:00:00.5', Date.UTC(2024, 0, 1, 10, 0, 0, 500)],
    ['2024-01-01T10:00', Date.UTC(2024, 0, 1, 10)],
    ['2024-01-01', Date.UTC(2024, 0, 1)],
    ['2024-01-01t10:00:00z', Date.UTC(2024, 0, 1, 10)],
    ['2024-01-01T10:00:00+02:00', Date.UTC(2024, 0, 1, 8)],
    ['2024-01-01T10:00:00-0530', Date.UTC(2024, 0, 1, 15, 30)],
    ['2024-01-01T10:00:00.123456Z', Date.UTC(2024, 0, 1, 10, 0, 0, 123)],
    ['2024-01-01T24:00:00Z', Date.UTC(2024, 0, 2)],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
    ['2000-02-29', Date.UTC(2000, 1, 29)],
    // A year below 100 is a year of the first century, not 19xx (as Date.UTC would have it).
    ['0099-06-15T12:00:00Z', new Date(0).setUTCFullYear(99, 5, 15) + 12 * 3_600_000],
  ];
  for (const [text, expected] of cases) assert.equal(iso(text), expected, text);
  for (const text of [
    '2024-02-30T00:00:00Z', // Date.parse: March 1st
    '2023-02-29',
    '2024-04-31T10:00:00',
    '1900-02-29T00:00:00Z',
    '12/31/2024 10:00', // Date.parse: in local time
    '2024-01-01T10:00:00 +02:00',
    '2024-01-01T10:00:00+02',
    '2024-01-01T24:00:01Z',
    '2024-01-01T23:59:60Z',
    '2024-01-01T25:00:00Z',
    '2024-13-01',
    '2024-1-01T00:00:00Z',
    '2024-01-01T00:00:00.Z',
    '2024-01-01T00:00:00.00xZ',
    ' 2024-01-01T00:00:00Z',
    '2024-01-01Z',
    '2024-01-01T',
    'not a time at all!!!',
  ]) {
    assert.ok(Number.isNaN(iso(text)), `${text}: ${iso(text)}`);
  }
  for (const value of [undefined, null, 1704067200000, {}, ['2024-01-01T00:00:00Z']]) assert.ok(Number.isNaN(iso(value)), String(value));
  // On a machine in New York, a time without an offset is still UTC (Date.parse: 15:00 UTC).
  const script = `import { createTimeParser } from ${JSON.stringify(new URL('./mapping.js', import.meta.url).href)}; process.stdout.write(String(createTimeParser('iso8601')('2024-01-01T10:00:00')))`;
  const elsewhere = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, TZ: 'America/New_York' }, encoding: 'utf8' });
  assert.equal(Number(elsewhere), Date.UTC(2024, 0, 1, 10));
});

test('iso8601: every real date and time of many generated, in each form, is the instant Date.parse gives its UTC form; every impossible one is NaN', () => {
  const pad = (value: number, width: number): string => String(value).padStart(width, '0');
  const pick = <T>(choices: readonly T[], r: number): T => choices[Math.floor(r * choices.length)]!;
  // A seeded generator: the same cases on every run.
  let seed = 42;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let valid = 0;
  for (let i = 0; i < 20_000; i++) {
    const year = pick([100, 1969, 1970, 2000, 2023, 2024, 2100, 9999], random());
    const month = Math.floor(random() * 14);
    const day = Math.floor(random() * 33);
    const hour = Math.floor(random() * 26);
    const minute = Math.floor(random() * 61);
    const second = Math.floor(random() * 62);
    const fraction = pick(['', `.${pad(Math.floor(random() * 1000), 3)}`, '.5', '.1234'], random());
    const zone = pick(['Z', 'Z', '+01:00', '-0930', 'z', ''], random());
    const separator = pick(['T', 'T', ' ', 't'], random());
    const text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}${separator}${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction}${zone}`;
    // The reference: Date.parse of the same instant in the one form it reads alike everywhere (T, an
    // offset), where the day exists (Date.UTC's round trip), which Date.parse does not check.
    const exists = new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day && month >= 1 && month <= 12;
    const canonical = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction}${zone === '' || zone === 'z' ? 'Z' : zone === '-0930' ? '-09:30' : zone}`;
    const expected = exists ? Date.parse(canonical) : NaN;
    assert.ok(Object.is(iso(text), expected), `${text}: ${iso(text)}, expected ${expected}`);
    if (!Number.isNaN(expected)) valid++;
  }
  assert.ok(valid > 1_000, `enough valid times among the cases (${valid})`);
});

test('a mapped record: an impossible date with a time_format pattern, a price that is not a decimal number, a numeric id JSON rounds, are rejections with their reasons; a numeric type is mapped by its text', () => {
  const map = createEventMapper({ time_format: "yyyy-MM-dd HH:mm:ss 'UTC'", event_types: { '2': 'cart', view: 'view' } });
  const base = { user_id: 'u1', time: '2024-01-31 10:00:00 UTC', type: 'view' };
  const reasonOf = (record: Record<string, unknown>): string | undefined => {
    const result = map({ ...base, ...record });
    return isRejected(result) ? result.rejected : undefined;
  };
  assert.equal(reasonOf({ time: '2024-02-31 10:00:00 UTC' }), `time: cannot parse "2024-02-31 10:00:00 UTC" as yyyy-MM-dd HH:mm:ss 'UTC'`);
  assert.equal(reasonOf({ time: '2024-02-29 10:00:00 UTC' }), undefined, 'a leap day is a day');
  for (const price of ['   ', '0x1F', ' 0X1f', '\u00a00x1F', '0b11', '0o17', '1_000', 'Infinity', '1e', '.']) assert.equal(reasonOf({ price }), `price: expected a number, got ${JSON.stringify(price)}`, price);
  for (const [price, expected] of [[' 12.50 ', 12.5], ['1e3', 1000], ['.5', 0.5], [0, 0], ['0', 0]] as const) {
    assert.equal((map({ ...base, price }) as ClickEvent).price, expected, String(price));
  }
  // Two users' ids past 2^53, read by JSON.parse: the same number. Said, not merged.
  const [a, b] = JSON.parse('[12345678901234567890, 12345678901234567891]') as number[];
  assert.equal(a, b);
  const rounded = 'the number 12345678901234567000 is not an integer below 2^53, which JSON readers round (two ids could become one): send ids as strings';
  assert.equal(reasonOf({ user_id: a }), `user_id: ${rounded}`);
  assert.equal(reasonOf({ item_id: b }), `item_id: ${rounded}`);
  assert.match(reasonOf({ session_id: 1.5 })!, /^session_id: the number 1\.5 is not an integer below 2\^53/);
  assert.equal((map({ ...base, user_id: 2 ** 53 - 1 }) as ClickEvent).userId, '9007199254740991');
  // A numeric JSON type: by its text where event_types maps it; otherwise no event type.
  assert.equal((map({ ...base, type: 2 }) as ClickEvent).type, 'cart');
  assert.equal(reasonOf({ type: 3 }), 'type: expected a string (a number is read only where event_types maps it: "3": cart), got 3');
  assert.equal(reasonOf({ type: true }), 'type: expected a string, got true');
  const epoch = createEventMapper({ time_format: 'epoch_ms' });
  assert.ok(isRejected(epoch({ user_id: 'u1', time: '0x1F', type: 'view' })), 'an epoch in hex is no time');
  assert.equal((epoch({ user_id: 'u1', time: ' 1704067200000 ', type: 'view' }) as ClickEvent).time, 1704067200000);
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

test("mapping 'canonical' reads a file sink's events as CANONICAL_EVENT_MAPPING does; its other kinds are no events, said by their kind; the default mapping names 'mapping: canonical' for a sink's event", () => {
  const event: ClickEvent = { kind: 'event', userId: 'u1', sessionId: 's1', time: 1704067200123, type: 'cart', itemId: 'i9', price: 12.5, attrs: { brand: 'acme' } };
  const line = JSON.parse(recordToJson({ ...event, session: { id: 's1', position: 0, sinceStart: 0, sincePrevious: 0, start: 1704067200123 } } as unknown as StreamRecord));
  assert.deepEqual(createEventMapper('canonical')(line), event, 'the session context written is not read: the reading pipeline makes its own');
  const summary = { kind: 'session', userId: 'u1', sessionId: 's1', start: 1, end: 2, eventCount: 2, counts: { view: 2 }, purchased: false };
  const prediction = { kind: 'prediction', id: 'p', model: 'intent', modelVersion: '1', task: 'intent', userId: 'u1', time: 1704067200123, score: 0.5 };
  const notAnEvent = (kind: string): string => `the record is a ${kind} record as a sink writes it, no event: only events are read back as events (a sink's kinds: [event], read with mapping: canonical)`;
  assert.deepEqual(createEventMapper('canonical')(summary), { rejected: `kind: ${notAnEvent('session')}` });
  assert.deepEqual(createEventMapper('canonical')(prediction), { rejected: `kind: ${notAnEvent('prediction')}` });
  // Read with the defaults (user_id, ISO 8601 times), as a source without a mapping reads it: the reason says which mapping reads it.
  assert.deepEqual(createEventMapper()(line), { rejected: 'user_id: missing user id (the record is an event as a file sink writes it, userId and time in epoch milliseconds: read such records with mapping: canonical)' });
  assert.deepEqual(createEventMapper()(prediction), { rejected: `user_id: missing user id (${notAnEvent('prediction')})` });
  // A record of the user's own with a userId keeps its hint.
  assert.deepEqual(createEventMapper()({ userId: 'u1', time: '2024-01-01T00:00:00Z', type: 'view' }), { rejected: 'user_id: missing user id (the record has userId)' });
});

test("mapping 'canonical': a shop's attribute named `kind` (under `attrs`, as a sink writes it) is read back as an attribute, whatever its value; only the record's own `kind` tells an event from a sink's other records, which stay rejected with their reason", () => {
  const notAnEvent = (kind: string): string => `kind: the record is a ${kind} record as a sink writes it, no event: only events are read back as events (a sink's kinds: [event], read with mapping: canonical)`;
  for (const value of ['vip', 'prediction', 'session', 'dead_letter', 'event']) {
    const event: ClickEvent = { kind: 'event', userId: 'u1', time: 1704067200123, type: 'view', attrs: { kind: value, brand: 'acme' } };
    assert.deepEqual(createEventMapper('canonical')(JSON.parse(recordToJson(event as StreamRecord))), event, value);
  }
  const prediction = { kind: 'prediction', id: 'p', model: 'intent', modelVersion: '1', task: 'intent', userId: 'u1', time: 1704067200123, score: 0.5, attrs: { kind: 'event' } };
  assert.deepEqual(createEventMapper('canonical')(prediction), { rejected: notAnEvent('prediction') });
  const summary = { kind: 'session', userId: 'u1', sessionId: 's1', start: 1, end: 2, eventCount: 2, counts: { view: 2 }, purchased: false, attrs: { kind: 'event' } };
  assert.deepEqual(createEventMapper('canonical')(summary), { rejected: notAnEvent('session') });
});

test('a field or attribute named in the mapping as an Object.prototype member (constructor, toString, __proto__) is read from the record alone: absent, it is missing, never the inherited member', () => {
  const base = { time: '2024-01-01T00:00:00Z', type: 'view' };
  const byUser = createEventMapper({ fields: { user_id: 'constructor' } });
  assert.deepEqual(byUser({ ...base }), { rejected: 'constructor: missing user id' });
  assert.equal((byUser(JSON.parse('{"constructor":"u7","time":"2024-01-01T00:00:00Z","type":"view"}')) as ClickEvent).userId, 'u7');
  assert.deepEqual(createEventMapper({ fields: { time: 'toString' } })({ user_id: 'u', type: 'view' }), { rejected: 'toString: missing timestamp' });
  assert.deepEqual(createEventMapper({ fields: { type: 'valueOf' } })({ user_id: 'u', time: base.time }), { rejected: 'valueOf: missing event type' });
  const optional = createEventMapper({ fields: { session_id: '__proto__', item_id: 'hasOwnProperty', category: 'isPrototypeOf', price: 'toLocaleString' }, attributes_field: 'propertyIsEnumerable', attributes: ['constructor', '__proto__', 'brand'] });
  assert.deepEqual(optional({ user_id: 'u', ...base, brand: 'b' }), { kind: 'event', userId: 'u', time: Date.parse(base.time), type: 'view', attrs: { brand: 'b' } });
  // Present, they are read; an attribute __proto__ is an attribute, the attributes' prototype stays Object's.
  const read = optional(JSON.parse('{"user_id":"u","time":"2024-01-01T00:00:00Z","type":"view","__proto__":"s1","hasOwnProperty":"i1","constructor":"c","toLocaleString":"2.5"}')) as ClickEvent;
  assert.deepEqual([read.sessionId, read.itemId, read.price], ['s1', 'i1', 2.5]);
  const attrs = (createEventMapper({ attributes: ['constructor', '__proto__'] })(JSON.parse('{"user_id":"u","time":"2024-01-01T00:00:00Z","type":"view","__proto__":{"polluted":1},"constructor":"c"}')) as ClickEvent).attrs!;
  assert.deepEqual(Object.entries(attrs), [['constructor', 'c'], ['__proto__', { polluted: 1 }]]);
  assert.equal(Object.getPrototypeOf(attrs), Object.prototype);
  assert.equal((attrs as { polluted?: unknown }).polluted, undefined);
});

test('a negative price is a rejection with its reason (a price is never below 0); 0 and positive prices are kept', () => {
  const map = createEventMapper();
  const at = (price: unknown) => map({ user_id: 'u1', time: '2024-01-01T00:00:00Z', type: 'view', price });
  assert.deepEqual(at(-3.5), { rejected: 'price: expected a number of 0 or more, got -3.5' });
  assert.deepEqual(at('-0.01'), { rejected: 'price: expected a number of 0 or more, got "-0.01"' });
  assert.equal((at(0) as ClickEvent).price, 0);
  assert.equal((at('12.5') as ClickEvent).price, 12.5);
});

test('an id longer than MAX_ID_LENGTH is rejected, naming its field and length (ids are kept in state: a blob pasted into user_id cost a megabyte per user); one at the limit is read', () => {
  const map = createEventMapper({ fields: { item_id: 'item', session_id: 'session' } });
  const at = 'u'.repeat(MAX_ID_LENGTH);
  const over = 'u'.repeat(MAX_ID_LENGTH + 1);
  const base = { time: '2024-01-01T00:00:00Z', type: 'view' };
  assert.equal((map({ ...base, user_id: at }) as { userId: string }).userId, at);
  assert.deepEqual(map({ ...base, user_id: over }), { rejected: `user_id: an id of ${MAX_ID_LENGTH + 1} characters, longer than ${MAX_ID_LENGTH} (ids are kept in state, per user and session)` });
  assert.ok(isRejected(map({ ...base, user_id: 'u1', session: over })));
  assert.ok(isRejected(map({ ...base, user_id: 'u1', item: over })));
});

test('second 60 (a leap second) is rejected by a time_format pattern as by iso8601, not rolled into the next minute by one and rejected by the other', () => {
  assert.ok(Number.isNaN(createTimeParser('yyyy-MM-dd HH:mm:ss')('2016-12-31 23:59:60')));
  assert.ok(Number.isNaN(createTimeParser('iso8601')('2016-12-31T23:59:60Z')));
  assert.equal(createTimeParser('yyyy-MM-dd HH:mm:ss')('2016-12-31 23:59:59'), Date.parse('2016-12-31T23:59:59Z'));
});

test('a time_format pattern reads years 0 to 99 as written, as iso8601 does (was: 0099-01-01 read as 1999-01-01, Date.UTC\'s two-digit years), in UTC and in a zone', () => {
  const yearStart = (year: number, month = 0, day = 1): number => new Date(0).setUTCFullYear(year, month, day);
  const pattern = createTimeParser('yyyy-MM-dd');
  for (const [text, expected] of [
    ['0099-01-01', yearStart(99)],
    ['0000-02-29', yearStart(0, 1, 29)], // year 0 (1 BC) is a leap year
    ['0001-12-31', yearStart(1, 11, 31)],
    ['0100-03-01', yearStart(100, 2, 1)],
    ['1999-01-01', Date.UTC(1999, 0, 1)],
    ['2024-02-29', Date.UTC(2024, 1, 29)],
  ] as const) {
    assert.equal(pattern(text), expected, text);
    assert.equal(pattern(text), iso(text), `${text}: as iso8601`);
  }
  assert.equal(createTimeParser('yyyy-MM-dd HH:mm:ss.SSS')('0050-06-01 12:34:56.789'), yearStart(50, 5, 1) + (12 * 3600 + 34 * 60 + 56) * 1000 + 789);
  // In a zone: Berlin's local mean time then, +00:53:28.
  assert.equal(createTimeParser('yyyy-MM-dd', 'Europe/Berlin')('0099-01-01'), yearStart(99) - (53 * 60 + 28) * 1000);
});

test('onUnknownType: called for each event whose type is none of the known ones and that event_types or default_type does not name; the warning says each type once, at most MAX_UNKNOWN_TYPES_TOLD of them', () => {
  const seen: string[] = [];
  const map = createEventMapper({ event_types: { pv: 'view', buy: 'purchase', login: 'login' }, default_type: 'heartbeat', time_format: 'epoch_ms' }, (type) => void seen.push(type));
  for (const type of ['pv', 'view', 'buy', 'login', undefined, 'page_view', 'page_view', 'remove_from_cart', 'cart']) map({ user_id: 'u', time: 1, type });
  // A record rejected for another reason (a negative price) is no event: nothing to tell of.
  map({ user_id: 'u', time: 1, type: 'refund', price: -1 });
  assert.deepEqual(seen, ['page_view', 'page_view']);
  const warned: string[] = [];
  const tell = unknownEventTypeWarning({ warn: (_fields: object, message: string) => void warned.push(message) } as never);
  for (let i = 0; i < MAX_UNKNOWN_TYPES_TOLD + 5; i++) for (let again = 0; again < 3; again++) tell(`t${i}`);
  assert.equal(warned.length, MAX_UNKNOWN_TYPES_TOLD);
  assert.match(warned[0]!, /^event type "t0" is none of the known types \(view, cart, remove_from_cart, purchase\)/);
  assert.match(warned.at(-1)!, /\(the 10th such type: further ones are not told\)$/);
});

test('epoch_us: microseconds since 1970 (GA4\'s event_timestamp, INT64 as text in a JSON export, or a number) are read to the millisecond they fall in, exactly; a zone does not apply (was: no such format, a config error)', () => {
  assert.equal(timeFormatProblem('epoch_us'), undefined);
  const micros = createTimeParser('epoch_us');
  const cases: [unknown, number][] = [
    ['1710237849444419', 1_710_237_849_444],
    [1_710_237_849_444_419, 1_710_237_849_444],
    // Floored, not rounded: the millisecond the time falls in, as a pattern's SSS drops the digits after it.
    ['1710237849444999', 1_710_237_849_444],
    [' 1710237849000000 ', 1_710_237_849_000],
    ['-1500', -2], // 1.5 ms before 1970 falls in the millisecond from -2 to -1
    ['9007199254740991', 9_007_199_254_740], // 2^53 - 1 µs (the year 2255): still exact
  ];
  for (const [value, expected] of cases) assert.equal(micros(value), expected, String(value));
  for (const value of ['0x1F', '   ', '', null, 'soon']) assert.ok(Number.isNaN(micros(value)), String(value));
  // An instant: Europe/Berlin changes nothing (a pattern's reader would have refused the name).
  assert.equal(createTimeParser('epoch_us', 'Europe/Berlin')('1710237849444419'), 1_710_237_849_444);
  const map = createEventMapper({ fields: { user_id: 'user_pseudo_id', time: 'event_timestamp', type: 'event_name' }, time_format: 'epoch_us' });
  assert.equal((map({ user_pseudo_id: '1187345092.1709912233', event_timestamp: '1710231123149747', event_name: 'view' }) as ClickEvent).time, Date.UTC(2024, 2, 12, 8, 12, 3, 149));
  assert.deepEqual(map({ user_pseudo_id: 'u', event_timestamp: 'x', event_name: 'view' }), { rejected: 'event_timestamp: cannot parse "x" as epoch_us' });
  // Another epoch unit is told the ones there are, not a pattern's letters.
  assert.equal(timeFormatProblem('epoch_ns'), "time_format 'epoch_ns': the epoch formats are epoch_s, epoch_ms, epoch_us (seconds, milliseconds, microseconds since 1970)");
});

test('a dotted field name the record lacks whole is read as a path into nested objects (was: every nested record dead-lettered, "user.id: missing user id"); the whole name wins where the record has it', () => {
  const map = createEventMapper({
    fields: { user_id: 'user.id', time: 'ts', type: 'event.type', item_id: 'event.product.sku', category: 'event.product.category', price: 'event.product.price' },
    time_format: 'epoch_s',
    attributes: ['user.country', 'event.product.tags'],
  });
  const nested = { user: { id: 'V1', country: 'DE' }, ts: 1_772_352_334, event: { type: 'view', product: { sku: 'S1', category: 'Shoes > Running', price: '12.50', tags: ['a'] } } };
  assert.deepEqual(recordOf(map(nested)), { kind: 'event', userId: 'V1', time: 1_772_352_334_000, type: 'view', itemId: 'S1', category: 'Shoes > Running', price: 12.5, attrs: { 'user.country': 'DE', 'event.product.tags': ['a'] } });
  // A flat field of the whole name (a CSV column `user.id`, a flattened export) is read first.
  assert.equal(recordOf(map({ ...nested, 'user.id': 'flat' })).userId, 'flat');
  // A step that is missing, or reaches no object, reads as absent: the usual reasons.
  assert.deepEqual(map({ ...nested, user: 'V1' }), { rejected: 'user.id: missing user id (user is text, not an object or a list)' });
  assert.deepEqual(map({ ...nested, user: [{ id: 'V1' }] }), { rejected: 'user.id: missing user id (user is a list: user[0].id reads its first element)' });
  assert.equal(recordOf(map({ ...nested, event: { type: 'view', product: null } })).price, undefined);
  // Steps are own fields: `constructor.name` is no path into Object.prototype, and an empty step (`a..b`) makes the name whole only.
  const guarded = createEventMapper({ fields: { user_id: 'constructor.name', time: 'a..b' }, time_format: 'epoch_ms', default_type: 'view' });
  assert.deepEqual(guarded({ a: { '': { b: 1 } } }), { rejected: 'constructor.name: missing user id' });
  assert.deepEqual(guarded({ constructor: { name: 'u' }, a: { b: 1 } }), { rejected: 'a..b: missing timestamp (the record has a.b)' });
  assert.equal(recordOf(guarded({ constructor: { name: 'u' }, 'a..b': 1 })).userId, 'u');
  // attributes_field by path too.
  const whole = createEventMapper({ fields: { user_id: 'u' }, time_format: 'epoch_ms', attributes_field: 'context.traits' });
  assert.deepEqual(recordOf(whole({ u: 'x', time: 1, type: 'view', context: { traits: { plan: 'pro' } } })).attrs, { plan: 'pro' });
});

/** A GA4 BigQuery export line, cut down (plugins/sources/fixtures/ga4 holds whole ones). */
const ga4 = {
  event_timestamp: '1710237849444419',
  event_name: 'add_to_cart',
  event_params: [
    { key: 'page_title', value: { string_value: 'Merino Tee' } },
    { key: 'ga_session_id', value: { int_value: '1710237660' } },
    { key: 'value', value: { double_value: 45 } },
  ],
  user_pseudo_id: '1968022417.1710012000',
  items: [
    { item_id: 'SKU_2001', item_category: 'Apparel', price: 45.0, quantity: '1' },
    { item_id: 'SKU_3001', item_category: 'Accessories', price: 12.95, quantity: '1' },
  ],
  'geo.city': 'flat',
  geo: { city: 'Austin', 'sub.continent': 'Northern America' },
};
const ga4Fields = {
  user_id: 'user_pseudo_id',
  time: 'event_timestamp',
  type: 'event_name',
  session_id: 'event_params[key="ga_session_id"].value.int_value',
  item_id: 'items[0].item_id',
  category: 'items[0].item_category',
  price: 'items[0].price',
};

test('a path steps into lists: by index (items[0].price), by a test of the elements (event_params[key="ga_session_id"].value.int_value), and by a key in double quotes (["a.b"]) (was: "a list is not stepped into", every such field absent)', () => {
  const map = createEventMapper({ fields: ga4Fields, time_format: 'epoch_us', event_types: { add_to_cart: 'cart' }, attributes: ['items[1].item_id', 'geo["sub.continent"]', 'event_params[key="value"].value.double_value'] });
  assert.deepEqual(recordOf(map(ga4)), {
    kind: 'event',
    userId: '1968022417.1710012000',
    time: 1_710_237_849_444,
    type: 'cart',
    sessionId: '1710237660',
    itemId: 'SKU_2001',
    category: 'Apparel',
    price: 45,
    attrs: { 'items[1].item_id': 'SKU_3001', 'geo["sub.continent"]': 'Northern America', 'event_params[key="value"].value.double_value': 45 },
  });
  // A path that finds nothing leaves an optional field absent: a page_view has no items, an event no session id.
  const pageView = recordOf(map({ ...ga4, event_name: 'page_view', items: [], event_params: [{ key: 'page_title', value: { string_value: 'Shop' } }] }));
  assert.deepEqual([pageView.sessionId, pageView.itemId, pageView.category, pageView.price], [undefined, undefined, undefined, undefined]);
  // The whole name is read first, as for dotted names: a CSV column `items[0].price` keeps its meaning.
  assert.equal(recordOf(map({ ...ga4, 'items[0].price': '7' })).price, 7);
  // A test compares exactly: the number 3 is not the text "3" (BigQuery writes INT64 as text); the first match is read.
  const byNumber = createEventMapper({ fields: { user_id: 'ids[n=3].id', time: 'ids[n="3"].id' }, time_format: 'epoch_ms', default_type: 'view' });
  assert.deepEqual(recordOf(byNumber({ ids: [{ n: '3', id: 5 }, { n: 3, id: 'u3' }, { n: 3, id: 'later' }] })).userId, 'u3');
  assert.equal(recordOf(byNumber({ ids: [{ n: '3', id: 5 }, { n: 3, id: 'u3' }] })).time, 5);
  // Own fields only, through lists too: an element's inherited `constructor` is no match, `length` of a list no field.
  assert.deepEqual(createEventMapper({ fields: { user_id: 'a[constructor="x"].id' }, time_format: 'epoch_ms' })({ a: [{ id: 'u' }], time: 1, type: 'view' }), { rejected: 'a[constructor="x"].id: missing user id (no element of a has constructor "x")' });
  assert.deepEqual(fieldPath('a.length'), ['a', 'length']);
  assert.equal(recordOf(createEventMapper({ fields: { user_id: 'u', item_id: 'a.length' }, time_format: 'epoch_ms' })({ u: 'u', a: [1, 2], time: 1, type: 'view' })).itemId, undefined);
});

test('a required field whose path stops is dead-lettered with where it stopped; a name stepped into a list says the step that reads it (was: "missing user id" alone)', () => {
  const reason = (fields: MappingConfig['fields'], record: object): string => {
    const result = createEventMapper({ fields: { ...ga4Fields, ...fields }, time_format: 'epoch_us' })(record);
    assert.ok(isRejected(result), JSON.stringify(result));
    return result.rejected;
  };
  assert.equal(reason({ user_id: 'items[0].item_id' }, { ...ga4, items: [] }), 'items[0].item_id: missing user id (items is an empty list)');
  assert.equal(reason({ user_id: 'items[2].item_id' }, ga4), 'items[2].item_id: missing user id (items has 2 elements)');
  assert.equal(reason({ type: 'event_params[key="event_category"].value.string_value' }, ga4), 'event_params[key="event_category"].value.string_value: missing event type (no element of event_params has key "event_category")');
  assert.equal(reason({ type: 'event_params[key="ga_session_id"].value.string_value' }, ga4), 'event_params[key="ga_session_id"].value.string_value: missing event type (event_params[key="ga_session_id"].value has no field "string_value")');
  assert.equal(reason({ user_id: 'event_params.ga_session_id' }, ga4), 'event_params.ga_session_id: missing user id (event_params is a list: its element whose key is "ga_session_id" is event_params[key="ga_session_id"])');
  assert.equal(reason({ user_id: 'items.item_id' }, ga4), 'items.item_id: missing user id (items is a list: items[0].item_id reads its first element)');
  assert.equal(reason({ user_id: 'geo[0]' }, ga4), 'geo[0]: missing user id (geo is an object, not a list (a key in brackets is quoted: geo["0"]))');
  assert.equal(reason({ time: 'items[0].price.amount' }, ga4), 'items[0].price.amount: missing timestamp (items[0].price is a number, not an object or a list)');
  assert.equal(reason({ user_id: 'items[0].item_id' }, { ...ga4, items: null }), 'items[0].item_id: missing user id (items is null)');
  // The first step missing: what the record has that is alike, as for any name.
  assert.equal(reason({ user_id: 'visitors[0].user_pseudo_id' }, { ...ga4, context: { user_pseudo_id: 'u1' } }), 'visitors[0].user_pseudo_id: missing user id (the record has context.user_pseudo_id)');
});

test('field names: a step in brackets written wrong is a problem that says how to write it; a [ that opens no step is part of a name, as before', () => {
  const cases: [string, string][] = [
    ['event_params[key=ga_session_id].value', `[key=ga_session_id]: the value of a test is JSON: text in double quotes ([key="ga_session_id"]), a number, true or false`],
    ["event_params[key='ga_session_id'].value", `[key='ga_session_id']: the value of a test is JSON: text in double quotes ([key="ga_session_id"]), a number, true or false`],
    ['event_params[key=="ga_session_id"]', `[key=="ga_session_id"]: a test is written with one '=': [key="ga_session_id"]`],
    ['items[-1].price', '[-1]: an index counts from the first element, [0]; no negative index is read'],
    ["geo['sub.continent']", `['sub.continent']: a key is written in double quotes, as JSON writes text: ["sub.continent"]`],
    ['items[0.price', "'[' at character 6 is not closed by ']'"],
    ['items[0]price', "'p' after ']' at character 9; a step in brackets is followed by '.', '[' or the end"],
    ['items.[0]', 'an empty step at character 7; steps are parted by one dot (a.b), and a bracket follows its field without one (items[0])'],
    ['items[0]..price', 'an empty step at character 10; steps are parted by one dot (a.b), and a bracket follows its field without one (items[0])'],
    ['[0].price', 'a record is an object: a path starts with a field (items[0], not [0])'],
    ['items[0][EUR]', '[EUR]: a step in brackets is an index from 0 ([0]), a key in double quotes (["a.b"]) or a test of the elements ([key="value"])'],
    ['a[b c=1]', '[b c=1]: a test names a field of the elements before \'=\' (letters, digits, _, $ or -): [key="value"]'],
    ['a[k={}]', '[k={}]: the value of a test is JSON: text in double quotes ([k="{}"]), a number, true or false'],
  ];
  for (const [name, why] of cases) {
    assert.equal(fieldPathProblem(name), `field '${name}': ${why}`, name);
    assert.throws(() => createEventMapper({ fields: { item_id: name } }), { name: 'RangeError', message: `field '${name}': ${why}` });
  }
  // Names read whole as before: no step in brackets, or a dotted one with an empty step.
  for (const name of ['Price [EUR]', 'Price (EUR)', 'tags[]', 'a..b', 'user_id']) {
    assert.equal(fieldPathProblem(name), undefined, name);
    assert.equal(fieldPath(name), undefined, name);
  }
  assert.deepEqual(fieldPath('product.Price [EUR]'), ['product', 'Price [EUR]']);
  assert.deepEqual(fieldPath('["a.b"][ 0 ].c[k = "x]"][n=-1.5][ok=true]'), ['a.b', 0, 'c', { field: 'k', value: 'x]' }, { field: 'n', value: -1.5 }, { field: 'ok', value: true }]);
  assert.equal(recordOf(createEventMapper({ fields: { price: 'Price [EUR]' } })({ user_id: 'u', time: '2024-03-12T00:00:00Z', type: 'view', 'Price [EUR]': '3' })).price, 3);
});

test('the field a mapping most likely meant is looked for in lists too: the element that names it (GA4\'s event_params), else the first element (items[0]) (was: a list was passed over, no hint)', () => {
  // A required field: the dead letter says the path.
  const clientId = createEventMapper({ fields: { user_id: 'client_id' }, time_format: 'epoch_ms' })({ ids: [{ type: 'account', id: 'a1' }, { type: 'client_id', id: 'c1' }], time: 1, type: 'view' });
  assert.deepEqual(clientId, { rejected: 'client_id: missing user id (the record has ids[type="client_id"].id)' });
  // Optional fields named as GA4's export has them, at the top: said once with the paths that read them.
  const config = { fields: { user_id: 'user_pseudo_id', time: 'event_timestamp', type: 'event_name', session_id: 'ga_session_id', item_id: 'item_id', price: 'price' }, time_format: 'epoch_us' } satisfies MappingConfig;
  const warned: string[] = [];
  const check = absentFieldCheck(config, { warn: (_fields: object, message: string) => void warned.push(message) } as never, 'events.jsonl');
  check.see(createEventMapper(config)(ga4) as ClickEvent, ga4);
  check.finish();
  assert.deepEqual(warned, [
    `events.jsonl: none of the 1 events had fields.session_id 'ga_session_id' (the records have event_params[key="ga_session_id"].value.int_value), fields.item_id 'item_id' (the records have items[0].item_id), fields.price 'price' (the records have items[0].price), so no event gets a session id or an item or a price; name the field the records have (a nested one by its path: user.id, items[0].price)`,
  ]);
  // The value beside the name, whatever its field (GA4 writes one of int_value, string_value, double_value); an empty or null one is passed over.
  assert.equal(similarFieldPath({ params: [{ key: 'page_title', value: { int_value: null, string_value: 'Shop' } }] }, 'page_title'), 'params[key="page_title"].value.string_value');
  assert.equal(similarFieldPath({ params: [{ key: 'page_title', value: { string_value: '' } }] }, 'page_title'), undefined);
  // The first element only, where it is an object; a list of text is passed over; a key with a dot is quoted.
  assert.equal(similarFieldPath({ items: [{ sku: 'a' }, { price: 3 }] }, 'price'), undefined);
  assert.equal(similarFieldPath({ tags: ['price'] }, 'price'), undefined);
  assert.equal(similarFieldPath({ lines: [{ 'unit.price': 3 }] }, 'unit_price'), 'lines[0]["unit.price"]');
});

test('absentFieldCheck: a path that stopped in the last record (a list stepped into by name) is said with the step that reads it', () => {
  const config = { fields: { ...ga4Fields, item_id: 'items.item_id', session_id: 'event_params.ga_session_id' }, time_format: 'epoch_us' } satisfies MappingConfig;
  const warned: string[] = [];
  const check = absentFieldCheck(config, { warn: (_fields: object, message: string) => void warned.push(message) } as never, 'events.jsonl');
  const event = createEventMapper(config)(ga4);
  assert.ok(!isRejected(event));
  check.see(event, ga4);
  check.finish();
  assert.deepEqual(warned, [
    `events.jsonl: none of the 1 events had fields.session_id 'event_params.ga_session_id' (in the last record, event_params is a list: its element whose key is "ga_session_id" is event_params[key="ga_session_id"]), fields.item_id 'items.item_id' (in the last record, items is a list: items[0].item_id reads its first element), so no event gets a session id or an item; name the field the records have (a nested one by its path: user.id, items[0].price)`,
  ]);
});

function recordOf(result: ReturnType<ReturnType<typeof createEventMapper>>): ClickEvent {
  assert.ok(!isRejected(result), JSON.stringify(result));
  return JSON.parse(JSON.stringify(result)) as ClickEvent;
}

test('decimal_separator ",": prices as European exports write them (12,50; 1.234,56) are read; a dot decimal or an ambiguous 1.234 is rejected, not guessed at; with the default ".", such a price is rejected with a hint to set it (was: no way to read it)', () => {
  const comma = createEventMapper({ decimal_separator: ',', time_format: 'epoch_ms' });
  const price = (mapper: typeof comma, value: unknown) => {
    const result = mapper({ user_id: 'u', time: 1, type: 'view', price: value });
    return isRejected(result) ? result.rejected : result.price;
  };
  const cases: [unknown, number | string][] = [
    ['12,50', 12.5],
    [' 12,5 ', 12.5],
    ['12', 12],
    ['1.234,56', 1234.56],
    ['1.234.567', 1_234_567],
    ['0,99', 0.99],
    [12.5, 12.5],
    ['12.50', 'price: expected a number with a decimal comma (mapping.decimal_separator), dots only between groups of three digits, got "12.50"'],
    ['1.23,4', 'price: expected a number with a decimal comma (mapping.decimal_separator), dots only between groups of three digits, got "1.23,4"'],
    ['-1,00', 'price: expected a number of 0 or more, got "-1,00"'],
    ['', undefined as never],
  ];
  for (const [value, expected] of cases) assert.equal(price(comma, value), expected, JSON.stringify(value));
  const dot = createEventMapper({ time_format: 'epoch_ms' });
  assert.equal(price(dot, '12,50'), 'price: expected a number (a decimal comma? set mapping.decimal_separator to a comma), got "12,50"');
  assert.equal(price(dot, '1.234,56'), 'price: expected a number (a decimal comma? set mapping.decimal_separator to a comma), got "1.234,56"');
  assert.equal(price(dot, 'abc'), 'price: expected a number, got "abc"');
  assert.equal(price(dot, '12.50'), 12.5);
});

test('price_divisor: prices in minor units (cents, micros), JSON numbers and decimal text alike, become exactly the number the price in major units reads as; a negative or junk price is still a rejection (was: no way to read 1999 as 19.99)', () => {
  const priceOf = (config: MappingConfig, value: unknown): number | string | undefined => {
    const result = createEventMapper({ time_format: 'epoch_ms', ...config })({ user_id: 'u', time: 1, type: 'view', price: value });
    return isRejected(result) ? result.rejected : result.price;
  };
  const cents = { price_divisor: 100 } satisfies MappingConfig;
  // 1999 * 0.01 is 19.990000000000002: a multiplication by the inexact 0.01 would not do.
  assert.notEqual(1999 * 0.01, 19.99);
  for (const [value, expected] of [
    [1999, '19.99'],
    ['1999', '19.99'],
    [' 1999 ', '19.99'],
    [0, '0'],
    [5, '0.05'],
    [1, '0.01'],
    [1999.5, '19.995'],
    ['1999.3', '19.993'],
    [123456789, '1234567.89'],
  ] as const) {
    assert.equal(priceOf(cents, value), Number(expected), `${JSON.stringify(value)} cents`);
  }
  // Every price of cents to 100,000.00, and fractions of cents: exactly the number its text in major units is.
  for (let value = 0; value <= 10_000_000; value += 7) {
    const text = String(value).padStart(3, '0');
    assert.equal(priceOf(cents, value), Number(`${text.slice(0, -2)}.${text.slice(-2)}`), String(value));
  }
  for (let tenths = 1; tenths < 100_000; tenths += 13) {
    if (tenths % 10 === 0) continue;
    const value = tenths / 10; // 1999.3
    const text = String(tenths).padStart(4, '0');
    assert.equal(priceOf(cents, value), Number(`${text.slice(0, -3)}.${text.slice(-3)}`), String(value));
  }
  assert.equal(priceOf({ price_divisor: 1_000_000 }, 19_990_000), 19.99, 'micros');
  assert.equal(priceOf({ price_divisor: 1000 }, '1234'), 1.234, 'fils');
  assert.equal(priceOf({ price_divisor: 1 }, 19.99), 19.99);
  assert.equal(priceOf({ price_divisor: 100, decimal_separator: ',' }, '1.999'), 19.99, 'with a decimal comma, dots group thousands');
  assert.equal(priceOf({ price_divisor: 100, decimal_separator: ',' }, '1999,5'), 19.995);
  // The checks of a price are those without it, said of the price as written.
  assert.equal(priceOf(cents, -1999), 'price: expected a number of 0 or more, got -1999');
  assert.equal(priceOf(cents, '-5'), 'price: expected a number of 0 or more, got "-5"');
  assert.equal(priceOf(cents, 'abc'), 'price: expected a number, got "abc"');
  assert.equal(priceOf(cents, '0x1F'), 'price: expected a number, got "0x1F"');
  assert.equal(priceOf(cents, ''), undefined, 'no price');
  assert.equal(priceOf({}, 1999), 1999, 'without it, prices as written');
  // A mapping that reaches the mapper unvalidated (a user's source): the divisor is checked there too.
  for (const divisor of [0, -100, 0.01, 12, Number.NaN]) {
    assert.throws(() => createEventMapper({ price_divisor: divisor }), { name: 'RangeError', message: `price_divisor ${String(divisor)}: expected one of 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000 (100: prices in cents)` });
  }
});

test('a time_format pattern with a letter it does not read (EEE, MMMM, z, yy) says what a pattern reads: MMM, hh with a, the offsets', () => {
  const reads =
    "a pattern reads yyyy MM dd HH mm ss SSS, SSSSSS or SSSSSSSSS (fixed-width numbers; a fraction of a second in milliseconds, microseconds or nanoseconds), MMM (Jan to Dec), hh with a (a 12-hour clock, AM or PM) and an offset, XXX (+01:00 or Z), XX (+0100 or Z), xxx (+01:00), xx or Z (+0100), as Java's DateTimeFormatter has them; no day names, full month names or zone names (a time without an offset is in UTC or mapping.time_zone); quote literal text: 'UTC'";
  for (const [pattern, letter] of [['EEE, dd MMM yyyy', 'E'], ['dd MMMM yyyy', 'M'], ['yyyy-MM-dd HH:mm:ss z', 'z'], ['yy-MM-dd', 'y'], ['yyyy-MM-dd HH:mm:ssX', 'X'], ['yyyy-MM-dd HH:mm:ssx', 'x']] as const) {
    assert.throws(() => createTimeParser(pattern), { name: 'RangeError', message: `time_format '${pattern}': unknown letter '${letter}': ${reads}` }, pattern);
  }
});

test('time_format patterns read MMM (Jan to Dec, any case), hh with a (a 12-hour clock, AM or PM in any case), and an offset as Java\'s DateTimeFormatter writes it: XXX (+01:00 or Z), XX (+0100 or Z), xxx (+01:00), xx and Z (+0100) (was: a config error, unknown letter)', () => {
  const read = (pattern: string, text: string, zone?: string): number => createTimeParser(pattern, zone)(text);
  // Month names, any case; a name that is none, or a day its month lacks, is no time.
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  months.forEach((name, month) => {
    assert.equal(read('dd MMM yyyy HH:mm', `05 ${name} 2024 14:30`), Date.UTC(2024, month, 5, 14, 30), name);
    assert.equal(read('dd MMM yyyy HH:mm', `05 ${name.toUpperCase()} 2024 14:30`), Date.UTC(2024, month, 5, 14, 30), name.toUpperCase());
    assert.equal(read('dd-MMM-yyyy', `05-${name.toLowerCase()}-2024`), Date.UTC(2024, month, 5), name.toLowerCase());
  });
  for (const text of ['05 Mrz 2024 14:30', '31 Feb 2024 10:00', '05 M4r 2024 14:30', '05 March 2024 14:30', '05 Ma\u0152 2024 14:30']) assert.ok(Number.isNaN(read('dd MMM yyyy HH:mm', text)), text);
  // A 12-hour clock: every hour of the day as it is written, 12 AM at midnight, 12 PM at noon.
  for (let hour = 0; hour < 24; hour++) {
    const twelve = String(((hour + 11) % 12) + 1).padStart(2, '0');
    for (const marker of hour < 12 ? ['AM', 'am', 'Am'] : ['PM', 'pm', 'pM']) {
      assert.equal(read('MM/dd/yyyy hh:mm:ss a', `03/05/2024 ${twelve}:30:15 ${marker}`), Date.UTC(2024, 2, 5, hour, 30, 15), `${twelve} ${marker}`);
    }
  }
  assert.equal(read('yyyy-MM-dd hh:mma', '2024-03-05 07:05pm'), Date.UTC(2024, 2, 5, 19, 5));
  for (const text of ['03/05/2024 00:30:00 AM', '03/05/2024 13:00:00 PM', '03/05/2024 10:00:00 XM', '03/05/2024 10:00:00 A.', '03/05/2024 10:60:00 AM']) {
    assert.ok(Number.isNaN(read('MM/dd/yyyy hh:mm:ss a', text)), text);
  }
  // Offsets: the instant, in each letter's form alone.
  const at = (iso: string): number => Date.parse(iso);
  const offsets: [string, string, number][] = [
    ['XXX', '+02:00', at('2024-01-01T08:00:00Z')],
    ['XXX', '-05:30', at('2024-01-01T15:30:00Z')],
    ['XXX', 'Z', at('2024-01-01T10:00:00Z')],
    ['XX', '+0200', at('2024-01-01T08:00:00Z')],
    ['XX', 'Z', at('2024-01-01T10:00:00Z')],
    ['xxx', '+02:00', at('2024-01-01T08:00:00Z')],
    ['xxx', '-00:00', at('2024-01-01T10:00:00Z')],
    ['xx', '+0200', at('2024-01-01T08:00:00Z')],
    ['Z', '-0700', at('2024-01-01T17:00:00Z')],
    ['ZZ', '+0000', at('2024-01-01T10:00:00Z')],
  ];
  for (const [letters, offset, expected] of offsets) assert.equal(read(`yyyy-MM-dd HH:mm:ss${letters}`, `2024-01-01 10:00:00${offset}`), expected, `${letters} ${offset}`);
  const wrong: [string, string][] = [
    ['XXX', '+0200'],
    ['XXX', 'z'],
    ['XXX', '+02'],
    ['XXX', '+24:00'],
    ['XXX', '+02:60'],
    ['XXX', ' 02:00'],
    ['XX', '+02:00'],
    ['xxx', 'Z'],
    ['xx', 'Z'],
    ['Z', 'Z'],
    ['Z', '+02:00'],
  ];
  for (const [letters, offset] of wrong) assert.ok(Number.isNaN(read(`yyyy-MM-dd HH:mm:ss${letters}`, `2024-01-01 10:00:00${offset}`)), `${letters} ${offset}`);
  // An offset before more text: Z in its place moves the rest, which is still read.
  const inside = "yyyy-MM-dd'T'HH:mmXXX '(shop' SSS')'";
  assert.equal(read(inside, '2024-01-01T10:00+01:00 (shop 250)'), at('2024-01-01T09:00:00.250Z'));
  assert.equal(read(inside, '2024-01-01T10:00Z (shop 250)'), at('2024-01-01T10:00:00.250Z'));
  assert.ok(Number.isNaN(read(inside, '2024-01-01T10:00Z (shop 250)xxxxx')));
  assert.ok(Number.isNaN(read(inside, '2024-01-01T10:00Z (shoq 250)')));
  // An Apache access log's time, and all three together.
  assert.equal(read('dd/MMM/yyyy:HH:mm:ss Z', '10/Oct/2000:13:55:36 -0700'), at('2000-10-10T20:55:36Z'));
  assert.equal(read('MMM dd yyyy hh:mm a XXX', 'dec 31 2024 11:59 PM -05:00'), at('2025-01-01T04:59:00Z'));
  // An offset makes the time an instant: time_zone does not apply to it; without one it does.
  assert.equal(read('yyyy-MM-dd HH:mm:ssXXX', '2024-07-01 10:00:00+02:00', 'America/New_York'), at('2024-07-01T08:00:00Z'));
  assert.equal(read('yyyy-MM-dd HH:mm:ssXXX', '2024-07-01 10:00:00Z', 'Europe/Berlin'), at('2024-07-01T10:00:00Z'));
  assert.equal(read('dd MMM yyyy hh:mm a', '01 Jul 2024 10:00 AM', 'Europe/Berlin'), at('2024-07-01T08:00:00Z'));
  // Through the mapper: a time that is none is a rejection, with the pattern.
  const map = createEventMapper({ time_format: 'dd MMM yyyy hh:mm a' });
  assert.equal((map({ user_id: 'u', time: '05 Mar 2024 02:30 PM', type: 'view' }) as ClickEvent).time, Date.UTC(2024, 2, 5, 14, 30));
  assert.deepEqual(map({ user_id: 'u', time: '05 Mar 2024 14:30 PM', type: 'view' }), { rejected: 'time: cannot parse "05 Mar 2024 14:30 PM" as dd MMM yyyy hh:mm a' });
});

test('mappingWarnings: a time_zone that is an abbreviation (EST), or one a pattern with an offset or an epoch format leaves to no time, is a warning by field; a place, UTC, a quoted Z, iso8601 are none', () => {
  assert.deepEqual(mappingWarnings({ time_zone: 'EST' }), [{ field: 'time_zone', message: zoneNameWarning('EST') }]);
  assert.deepEqual(mappingWarnings({ time_zone: 'Europe/Berlin', time_format: 'yyyy-MM-dd HH:mm:ssXXX' }), [
    { field: 'time_zone', message: "time_zone Europe/Berlin applies to no time: time_format 'yyyy-MM-dd HH:mm:ssXXX' reads an offset with each, and so the instant; remove time_zone, or the offset letter where the times are to be read in Europe/Berlin" },
  ]);
  // An epoch is an instant too, which no zone changes (was: no warning, the time_zone silently doing nothing).
  assert.deepEqual(mappingWarnings({ time_zone: 'Europe/Berlin', time_format: 'epoch_ms' }), [
    { field: 'time_zone', message: "time_zone Europe/Berlin applies to no time: time_format 'epoch_ms' reads instants (milliseconds since 1970-01-01 UTC); remove time_zone" },
  ]);
  assert.deepEqual(mappingWarnings({ time_zone: 'EST', time_format: 'epoch_s' }), [
    { field: 'time_zone', message: zoneNameWarning('EST') },
    { field: 'time_zone', message: "time_zone EST applies to no time: time_format 'epoch_s' reads instants (seconds since 1970-01-01 UTC); remove time_zone" },
  ]);
  for (const config of [
    {},
    { time_zone: 'Europe/Berlin' },
    { time_zone: 'UTC', time_format: 'yyyy-MM-dd HH:mm:ss Z' },
    { time_zone: 'UTC', time_format: 'epoch_ms' },
    { time_zone: 'Europe/Berlin', time_format: "yyyy-MM-dd'T'HH:mm:ss'Z'" },
    { time_zone: 'Europe/Berlin', time_format: 'iso8601' },
    { time_zone: 'America/New_York', time_format: 'dd MMM yyyy hh:mm a' },
  ] satisfies MappingConfig[]) {
    assert.deepEqual(mappingWarnings(config), [], JSON.stringify(config));
  }
});

test('time_format patterns whose letters cannot go together are config errors saying why: hh without a, a without hh, HH with hh, MM with MMM, a letter twice (was taken for the numbers: the later one won), two offsets', () => {
  const cases: [string, string][] = [
    ['yyyy-MM-dd hh:mm', 'hh (an hour from 01 to 12) needs a (AM or PM) beside it; an hour from 00 to 23 is HH'],
    ['yyyy-MM-dd HH:mm a', 'a (AM or PM) needs hh (an hour from 01 to 12) beside it; HH is an hour from 00 to 23, without a'],
    ['yyyy-MM-dd HH hh a', 'HH and hh both; a pattern reads the hour once, HH (00 to 23) or hh (01 to 12) with a'],
    ['yyyy-MM MMM', 'MM and MMM both; a pattern reads the month once, MM (01 to 12) or MMM (Jan to Dec)'],
    ['yyyy MMM MMM', 'MMM twice; a pattern reads it once'],
    ['yyyy-MM-dd HH:mm (yyyy)', 'yyyy twice; a pattern reads it once'],
    ['yyyy-MM-dd HH:mm:ss dd', 'dd twice; a pattern reads it once'],
    ['yyyy-MM-dd HH:mmXXX xx', 'two offsets (XXX and xx); a pattern reads one'],
    ['yyyy-MM-dd HH:mmZZZZ', 'two offsets (ZZZ and Z); a pattern reads one'],
  ];
  for (const [pattern, why] of cases) assert.throws(() => createTimeParser(pattern), { name: 'RangeError', message: `time_format '${pattern}': ${why}` }, pattern);
});

test('a record without a required field says which field of it the mapping most likely meant: nested, or named another way (was: only "missing user id", the same for every record)', () => {
  const map = createEventMapper({ time_format: 'epoch_s' });
  assert.deepEqual(map({ user: { id: 'V1' }, time: 1, type: 'view' }), { rejected: 'user_id: missing user id (the record has user.id)' });
  assert.deepEqual(map({ userId: 'V1', time: 1, type: 'view' }), { rejected: 'user_id: missing user id (the record has userId)' });
  assert.deepEqual(map({ user_id: 'V1', meta: { ts: 1 }, event: { time: 1 }, type: 'view' }), { rejected: 'time: missing timestamp (the record has event.time)' });
  assert.deepEqual(map({ user_id: 'V1', time: 1, event: { Type: 'view' } }), { rejected: 'type: missing event type (the record has event.Type)' });
  // Nothing alike, an empty or null value, a list, or the field itself empty: no hint.
  assert.deepEqual(map({ visitor: 'V1', time: 1, type: 'view' }), { rejected: 'user_id: missing user id' });
  assert.deepEqual(map({ user: { id: '' }, userId: null, time: 1, type: 'view' }), { rejected: 'user_id: missing user id' });
  assert.deepEqual(map({ users: [{ id: 'V1' }], time: 1, type: 'view' }), { rejected: 'user_id: missing user id' });
  assert.deepEqual(map({ user_id: '', time: 1, type: 'view' }), { rejected: 'user_id: missing user id' });
  // A CSV row's columns, named with spaces.
  const csv = createEventMapper({ fields: { user_id: 'visitor_id', time: 'Event Time' } });
  assert.deepEqual(csv({ 'Visitor ID': 'V1', 'Event Time': '2026-03-01T00:00:00Z', type: 'view' }), { rejected: 'visitor_id: missing user id (the record has Visitor ID)' });
});

test('absentFieldCheck: the optional fields a mapping names that none of the first events had are said once, with the nested field most likely meant; fields seen, or left to their defaults, are not', () => {
  const config = { fields: { user_id: 'user.id', time: 'ts', type: 'event.type', price: 'price', category: 'event.category', item_id: 'sku' }, attributes: ['country'], time_format: 'epoch_s' } satisfies MappingConfig;
  const map = createEventMapper(config);
  const warned: { fields: object; message: string }[] = [];
  const logger = { warn: (fields: object, message: string) => void warned.push({ fields, message }) };
  const check = absentFieldCheck(config, logger as never, 'events.jsonl');
  const raw = (i: number) => ({ user: { id: `u${i}` }, ts: i, event: { type: 'view', category: 'shoes', product: { price: 9.5, sku: 's1' } }, country: i === 5 ? 'DE' : undefined });
  for (let i = 0; i < ABSENT_FIELD_SAMPLE + 10; i++) {
    const input = raw(i);
    const event = map(input);
    assert.ok(!isRejected(event));
    check.see(event, input);
  }
  check.finish();
  assert.equal(warned.length, 1, 'once, after the sample');
  assert.equal(
    warned[0]!.message,
    `events.jsonl: none of the first ${ABSENT_FIELD_SAMPLE} events had fields.item_id 'sku' (the records have event.product.sku), fields.price 'price' (the records have event.product.price), so no event gets an item or a price; name the field the records have (a nested one by its path: user.id, items[0].price)`,
  );
  // A shorter input is said at its end; an input whose events have them all, or a mapping that names none, says nothing.
  const short = absentFieldCheck({ fields: { price: 'Price' } }, logger as never, 'short.jsonl');
  const input = { user_id: 'u', time: '2026-03-01T00:00:00Z', type: 'view', price: 3 };
  short.see(createEventMapper({ fields: { price: 'Price' } })(input) as never, input);
  short.finish();
  assert.equal(warned[1]!.message, "short.jsonl: none of the 1 events had fields.price 'Price' (the records have price), so no event gets a price; name the field the records have (a nested one by its path: user.id, items[0].price)");
  const fine = absentFieldCheck({ fields: { price: 'price' } }, logger as never, 'fine.jsonl');
  fine.see(createEventMapper({ fields: { price: 'price' } })(input) as never, input);
  fine.finish();
  const defaults = absentFieldCheck({}, logger as never, 'defaults.jsonl');
  defaults.see(createEventMapper({})(input) as never, input);
  defaults.finish();
  assert.equal(warned.length, 2);
  // Canonical events (a file sink's output, a backtest's input for synthetic) lack a field only where the
  // event did: synthetic's have no session id. A copy of the canonical mapping with the schema's defaults filled
  // in, as a backtest's file source gets it, says nothing.
  const event = { kind: 'event', userId: 'u', time: 0, type: 'view' };
  const filled: MappingConfig = { ...structuredClone(CANONICAL_EVENT_MAPPING), fields: { ...CANONICAL_EVENT_MAPPING.fields, time: 'time', type: 'type' }, decimal_separator: '.' };
  const canonical = absentFieldCheck(filled, logger as never, 'canonical.jsonl');
  canonical.see(createEventMapper(CANONICAL_EVENT_MAPPING)(event) as never, event);
  canonical.finish();
  assert.equal(warned.length, 2);
  // One field more or other is a mapping of the user's: said.
  const other = { ...CANONICAL_EVENT_MAPPING, fields: { ...CANONICAL_EVENT_MAPPING.fields, session_id: 'session' } };
  const near = absentFieldCheck(other, logger as never, 'near.jsonl');
  near.see(createEventMapper(other)(event) as never, event);
  near.finish();
  assert.equal(warned.length, 3);
});

test('time_zone: times without an offset (iso8601 and patterns) are read in the zone, summer time followed; a time with Z or an offset, and epoch times, keep their instant (was: every time without an offset read as UTC, a Berlin shop\'s events 1-2 h off)', () => {
  const at = (text: string): number => Date.parse(text);
  const timeOf = (config: MappingConfig, time: unknown): number | string => {
    const result = createEventMapper(config)({ user_id: 'u', time, type: 'view' });
    return isRejected(result) ? result.rejected : result.time;
  };
  const berlinIso = { time_zone: 'Europe/Berlin' } satisfies MappingConfig;
  const berlinPattern = { time_zone: 'Europe/Berlin', time_format: 'yyyy-MM-dd HH:mm:ss' } satisfies MappingConfig;
  const cases: [string, string][] = [
    ['2024-01-15 10:00:00', '2024-01-15T09:00:00Z'], // winter, +01:00
    ['2024-07-15 10:00:00', '2024-07-15T08:00:00Z'], // summer, +02:00
    // Set back: 02:00-03:00 occurs twice; the earlier instant (still summer time) is taken.
    ['2024-10-27 01:59:59', '2024-10-26T23:59:59Z'],
    ['2024-10-27 02:30:00', '2024-10-27T00:30:00Z'],
    ['2024-10-27 03:00:00', '2024-10-27T02:00:00Z'],
    // Set forward: 02:00-03:00 does not occur; such a time is moved forward by the hour (02:30 is 03:30 summer time).
    ['2024-03-31 01:59:59', '2024-03-31T00:59:59Z'],
    ['2024-03-31 02:00:00', '2024-03-31T01:00:00Z'],
    ['2024-03-31 02:30:00', '2024-03-31T01:30:00Z'],
    ['2024-03-31 03:00:00', '2024-03-31T01:00:00Z'],
    ['2024-03-31 03:30:00', '2024-03-31T01:30:00Z'],
  ];
  for (const [local, instant] of cases) {
    assert.equal(timeOf(berlinIso, local), at(instant), `iso8601 ${local}`);
    assert.equal(timeOf(berlinIso, local.replace(' ', 'T')), at(instant), `iso8601 ${local}`);
    assert.equal(timeOf(berlinPattern, local), at(instant), `pattern ${local}`);
  }
  assert.equal(timeOf(berlinIso, '2024-07-15'), at('2024-07-14T22:00:00Z'), 'a date alone: local midnight');
  assert.equal(timeOf(berlinIso, '2024-07-15T24:00:00'), at('2024-07-15T22:00:00Z'), 'the end of a local day');
  // A time that carries its offset is an instant whatever the zone.
  for (const text of ['2024-07-15T10:00:00Z', '2024-07-15T10:00:00.250z', '2024-07-15 12:00:00+02:00', '2024-07-15T04:30:00-0530']) {
    assert.equal(timeOf(berlinIso, text), timeOf({}, text), text);
  }
  assert.equal(timeOf(berlinIso, '2024-07-15T10:00:00+05:00'), at('2024-07-15T05:00:00Z'));
  // Epoch times are instants.
  assert.equal(timeOf({ ...berlinIso, time_format: 'epoch_s' }, 1_721_037_600), 1_721_037_600_000);
  assert.equal(timeOf({ ...berlinIso, time_format: 'epoch_ms' }, '1721037600000'), 1_721_037_600_000);
  // Zones a quarter or half an hour off, one with summer time: Kathmandu +05:45; Adelaide +10:30 in (its) summer, +09:30 in winter.
  assert.equal(timeOf({ time_zone: 'Asia/Kathmandu' }, '2024-06-01T12:00:00'), at('2024-06-01T06:15:00Z'));
  const adelaide = { time_zone: 'Australia/Adelaide' };
  assert.equal(timeOf(adelaide, '2024-01-15T12:00'), at('2024-01-15T01:30:00Z'));
  assert.equal(timeOf(adelaide, '2024-07-15T12:00'), at('2024-07-15T02:30:00Z'));
  assert.equal(timeOf(adelaide, '2024-04-07T02:30'), at('2024-04-06T16:00:00Z'), 'set back: the earlier, +10:30');
  assert.equal(timeOf(adelaide, '2024-10-06T02:30'), at('2024-10-05T17:00:00Z'), 'set forward: 03:30 +10:30');
  // A time that is none is rejected as without a zone, its reason unchanged.
  assert.equal(timeOf(berlinPattern, '2024-02-30 10:00:00'), 'time: cannot parse "2024-02-30 10:00:00" as yyyy-MM-dd HH:mm:ss');
  assert.equal(timeOf(berlinIso, '15.07.2024 10:00'), timeOf({}, '15.07.2024 10:00'));
  // UTC, given or by default: read as it always was.
  for (const config of [{}, { time_zone: 'UTC' }, { time_format: 'yyyy-MM-dd HH:mm:ss' }, { time_format: 'yyyy-MM-dd HH:mm:ss', time_zone: 'UTC' }]) {
    assert.equal(timeOf(config, '2024-07-15 10:00:00'), at('2024-07-15T10:00:00Z'), JSON.stringify(config));
  }
  assert.equal(createTimeParser('iso8601', 'UTC'), createTimeParser('iso8601'), 'in UTC, the parser without zones');
});

test('time_zone that is no zone: createTimeParser and createEventMapper throw a RangeError naming it, with the zone most likely meant', () => {
  assert.throws(() => createTimeParser('iso8601', 'Europe/Berln'), { name: 'RangeError', message: "time_zone 'Europe/Berln': no such time zone (did you mean 'Europe/Berlin'?); expected an IANA zone name such as Europe/Berlin or America/New_York, or UTC" });
  assert.throws(() => createEventMapper({ time_format: 'yyyy-MM-dd HH:mm', time_zone: 'Mars/Olympus_Mons' }), /^RangeError: time_zone 'Mars\/Olympus_Mons': no such time zone; expected/);
  // A zone is not looked at for epoch times, but it must still be one.
  assert.throws(() => createTimeParser('epoch_ms', 'Berlin'), /did you mean 'Europe\/Berlin'/);
});

test('time_format patterns read SSSSSS and SSSSSSSSS, a fraction of a second in microseconds or nanoseconds (BigQuery\'s TIMESTAMP as text, Snowplow\'s tstamps), to the millisecond it falls in (was: a config error, "SSS twice")', () => {
  const bigQuery = createTimeParser("yyyy-MM-dd HH:mm:ss.SSSSSS 'UTC'");
  assert.equal(bigQuery('2024-03-12 00:01:16.700123 UTC'), Date.UTC(2024, 2, 12, 0, 1, 16, 700));
  // Floored, not rounded, as epoch_us and iso8601 drop the digits after the millisecond.
  assert.equal(bigQuery('2024-03-12 00:01:16.999999 UTC'), Date.UTC(2024, 2, 12, 0, 1, 16, 999));
  // Fixed width, as every number of a pattern: three digits are not six.
  assert.ok(Number.isNaN(bigQuery('2024-03-12 00:01:16.700 UTC')));
  assert.ok(Number.isNaN(bigQuery('2024-03-12 00:01:16.70012x UTC')));
  assert.equal(createTimeParser('yyyy-MM-dd HH:mm:ss.SSSSSSSSS')('2024-03-12 00:01:16.700123456'), Date.UTC(2024, 2, 12, 0, 1, 16, 700));
  // With an offset (the reader of patterns with letters beyond numbers), and in a zone.
  assert.equal(createTimeParser("yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")('2024-03-12T01:01:16.700999+01:00'), Date.UTC(2024, 2, 12, 0, 1, 16, 700));
  assert.equal(createTimeParser('yyyy-MM-dd HH:mm:ss.SSSSSS', 'Europe/Berlin')('2024-03-12 01:01:16.700123'), Date.UTC(2024, 2, 12, 0, 1, 16, 700));
  // The fraction read twice, in any of its widths, is a config error that says so.
  for (const pattern of ['yyyy-MM-dd HH:mm:ss.SSSSSS SSS', 'yyyy-MM-dd HH:mm:ss.SSS SSSSSS']) {
    assert.equal(timeFormatProblem(pattern), `time_format '${pattern}': the fraction of a second twice (SSS, SSSSSS or SSSSSSSSS); a pattern reads it once`);
  }
  // Other widths (Java's S to SSSSSSSSS) are not read: said as a letter the pattern does not read.
  assert.match(timeFormatProblem('yyyy-MM-dd HH:mm:ss.SSSS') ?? '', /unknown letter 'S': a pattern reads yyyy MM dd HH mm ss SSS, SSSSSS or SSSSSSSSS \(fixed-width numbers; a fraction of a second in milliseconds, microseconds or nanoseconds\)/);
});

test('an unknown event type that differs only in case, spaces or punctuation from a name of mapping.event_types or a known type is told with that name (was: "does not name it", with no word of the near miss)', () => {
  const seen: [string, string | undefined][] = [];
  const map = createEventMapper({ event_types: { 'product viewed': 'view', order_completed: 'purchase' }, time_format: 'epoch_ms' }, (type, near) => void seen.push([type, near]));
  for (const type of ['product viewed', 'Product Viewed', 'Order Completed', 'Purchase', 'Page Viewed']) map({ user_id: 'u', time: 1, type });
  assert.deepEqual(seen, [
    ['Product Viewed', 'product viewed'],
    ['Order Completed', 'order_completed'],
    ['Purchase', 'purchase'],
    ['Page Viewed', undefined],
  ]);
  const warned: string[] = [];
  const tell = unknownEventTypeWarning({ warn: (_fields: object, message: string) => void warned.push(message) } as never);
  tell('Product Viewed', 'product viewed');
  tell('Page Viewed');
  assert.match(warned[0]!, /^event type "Product Viewed" is none of the known types \(view, cart, remove_from_cart, purchase\) and mapping.event_types does not name it \(it names "product viewed": names are compared exactly, case, spaces and punctuation too\): /);
  assert.match(warned[1]!, /^event type "Page Viewed" is none of the known types \(view, cart, remove_from_cart, purchase\) and mapping.event_types does not name it: /);
  const known: string[] = [];
  unknownEventTypeWarning({ warn: (_fields: object, message: string) => void known.push(message) } as never)('Purchase', 'purchase');
  assert.match(known[0]!, /does not name it \(the known type "purchase" differs from it in case, spaces or punctuation: names are compared exactly\): /);
});

test('epoch_s and epoch_ms read a fraction of a millisecond (Python\'s time.time(), 1710201676.700123) to the millisecond it falls in, as epoch_us, iso8601 and patterns do: every event time is whole milliseconds (was: 1710201676700.123 as the event\'s time)', () => {
  const seconds = createTimeParser('epoch_s');
  const millis = createTimeParser('epoch_ms');
  const cases: [(value: unknown) => number, unknown, number][] = [
    [seconds, '1710201676.700123', 1_710_201_676_700],
    [seconds, 1_710_201_676.700_9, 1_710_201_676_700],
    [seconds, '1710201676', 1_710_201_676_000],
    // 1.005 * 1000 is 1004.9999999999999 in binary: a product a few units in the last place below a whole millisecond is that millisecond.
    [seconds, '1.005', 1005],
    [seconds, 1_710_201_676.005, 1_710_201_676_005],
    [seconds, '-0.0005', -1], // half a millisecond before 1970 falls in the millisecond from -1 to 0
    [millis, '1710201676700.5', 1_710_201_676_700],
    [millis, 1_710_201_676_700.999, 1_710_201_676_700],
    [millis, 1_710_201_676_700, 1_710_201_676_700],
  ];
  for (const [parse, value, expected] of cases) assert.equal(parse(value), expected, String(value));
  for (const parse of [seconds, millis]) for (const value of ['abc', '', 'Infinity']) assert.ok(!Number.isFinite(parse(value)), value);
});

test('mappingWarnings: an event_types value that is no known type but most likely means one (purchased, Purchase, veiw) is warned of at its key; a type mapped to itself, or to a name near none, is not (was: no word, and an intent model without one positive label)', () => {
  assert.deepEqual(
    mappingWarnings({ event_types: { purchase: 'purchased', 'Product Viewed': 'View', add: 'carts', pv: 'veiw', rm: 'remove-from-cart', search: 'search', page_view: 'page_view', checkout: 'begin_checkout', buy: 'purchase', signup: 'new' } }),
    [
      { field: 'event_types["purchase"]', message: "event_types maps 'purchase' to 'purchased', which is no known type (view, cart, remove_from_cart, purchase): did you mean 'purchase'? The feature operators count such events only as events, and no model takes one for a purchase" },
      { field: 'event_types["Product Viewed"]', message: "event_types maps 'Product Viewed' to 'View', which is no known type (view, cart, remove_from_cart, purchase): did you mean 'view'? The feature operators count such events only as events, and no model takes one for a purchase" },
      { field: 'event_types["add"]', message: "event_types maps 'add' to 'carts', which is no known type (view, cart, remove_from_cart, purchase): did you mean 'cart'? The feature operators count such events only as events, and no model takes one for a purchase" },
      { field: 'event_types["pv"]', message: "event_types maps 'pv' to 'veiw', which is no known type (view, cart, remove_from_cart, purchase): did you mean 'view'? The feature operators count such events only as events, and no model takes one for a purchase" },
      { field: 'event_types["rm"]', message: "event_types maps 'rm' to 'remove-from-cart', which is no known type (view, cart, remove_from_cart, purchase): did you mean 'remove_from_cart'? The feature operators count such events only as events, and no model takes one for a purchase" },
    ],
  );
});

test('fields.user_id and fields.session_id take a list of fields read in turn: the first with a value (not absent, null or empty) gives the id, a path too; a single field reads as before (was: a config error, no way to say "userId, else anonymousId")', () => {
  const map = createEventMapper({ fields: { user_id: ['userId', 'anonymousId'], session_id: ['session_id', 'properties.session_id'] } });
  const at = '2024-03-01T10:00:00Z';
  const mapped = (record: object): ClickEvent => {
    const result = map({ time: at, type: 'view', ...record });
    assert.ok(!isRejected(result), JSON.stringify(result));
    return result;
  };
  assert.equal(mapped({ userId: 'u9', anonymousId: 'a1' }).userId, 'u9');
  for (const absent of [{}, { userId: null }, { userId: '' }]) assert.equal(mapped({ ...absent, anonymousId: 'a1' }).userId, 'a1', JSON.stringify(absent));
  assert.equal(mapped({ anonymousId: 7 }).userId, '7');
  assert.equal(mapped({ anonymousId: 'a1', session_id: 's1', properties: { session_id: 's2' } }).sessionId, 's1');
  assert.equal(mapped({ anonymousId: 'a1', session_id: null, properties: { session_id: 's2' } }).sessionId, 's2');
  assert.equal(mapped({ anonymousId: 'a1' }).sessionId, undefined);
  // The field that gave a value is the one a rejection of it names: it is no id, and no later field is read.
  const rejected = map({ time: at, type: 'view', userId: { id: 1 }, anonymousId: 'a1' });
  assert.ok(isRejected(rejected));
  assert.match(rejected.rejected, /^userId: expected a string or number, got \{"id":1\}$/);
  const later = map({ time: at, type: 'view', anonymousId: 1.5 });
  assert.ok(isRejected(later));
  assert.match(later.rejected, /^anonymousId: the number 1\.5 is not an integer/);
  // A list none of whose fields any event had is said by all of them, with the record's field near the first.
  const warned: string[] = [];
  const check = absentFieldCheck({ fields: { session_id: ['sessionId', 'properties.session'] } }, { warn: (_fields: object, message: string) => void warned.push(message) } as never, 'events.jsonl');
  const record = { user_id: 'u', time: at, type: 'view', session_id: 's1' };
  check.see(createEventMapper({ fields: { session_id: ['sessionId', 'properties.session'] } })(record) as ClickEvent, record);
  check.finish();
  assert.deepEqual(warned, [
    "events.jsonl: none of the 1 events had fields.session_id 'sessionId' or 'properties.session' (the records have session_id), so no event gets a session id; name the field the records have (a nested one by its path: user.id, items[0].price)",
  ]);
  // A list of one is the single field; an empty list names none.
  assert.equal((createEventMapper({ fields: { user_id: ['uid'] } })({ uid: 'u', time: at, type: 'view' }) as ClickEvent).userId, 'u');
  assert.throws(() => createEventMapper({ fields: { user_id: [] } }), /fields\.user_id: an empty list names no field/);
});

test('a missing user id names each field read, and the record\'s fields holding another kind of user id (anonymousId, user_pseudo_id, customer_id) with the list that would read them; none is read in its place (was: "userId: missing user id" alone)', () => {
  const at = '2024-03-01T10:00:00Z';
  const reason = (fields: MappingConfig['fields'], record: object): string => {
    const result = createEventMapper({ fields })({ time: at, type: 'view', ...record });
    assert.ok(isRejected(result), JSON.stringify(result));
    return result.rejected;
  };
  assert.equal(
    reason({ user_id: 'userId' }, { userId: null, anonymousId: 'a1' }),
    'userId: missing user id (the record has anonymousId; to read it where userId has none: fields.user_id: [userId, anonymousId])',
  );
  assert.equal(
    reason({ user_id: 'uid' }, { user_pseudo_id: 'p', customer_id: 4, visitor_id: '' }),
    'uid: missing user id (the record has user_pseudo_id, customer_id; to read it where uid has none: fields.user_id: [uid, user_pseudo_id, customer_id])',
  );
  assert.equal(reason({ user_id: ['userId', 'anonymousId'] }, { userId: '', anonymousId: null }), 'userId: missing user id, nor any in anonymousId (read in turn)');
  assert.equal(
    reason({ user_id: ['userId', 'anonymousId'] }, { customer_id: 'c' }),
    'userId: missing user id, nor any in anonymousId (read in turn) (the record has customer_id; to read it where userId, anonymousId has none: fields.user_id: [userId, anonymousId, customer_id])',
  );
  // A field the mapping most likely meant (nested, or named another way) is said first, as before.
  assert.equal(reason({ user_id: 'user_id' }, { user: { id: 'u' }, anonymousId: 'a' }), 'user_id: missing user id (the record has user.id)');
  assert.equal(reason({ user_id: 'user_id' }, { other: 'x' }), 'user_id: missing user id');
});

test('an epoch time in exponent text (1.71e15, 1.71E+15: what a spreadsheet leaves of a long number) is dead-lettered with the reason, in epoch_s, epoch_ms and epoch_us; a JSON number and decimal text are read as before (was: read silently, months off)', () => {
  for (const [format, text] of [['epoch_us', '1.71e15'], ['epoch_ms', '1.71E+12'], ['epoch_s', '1.71e9'], ['epoch_s', ' 1.710201676e9 ']] as const) {
    const map = createEventMapper({ time_format: format });
    const result = map({ user_id: 'u', time: text, type: 'view' });
    assert.ok(isRejected(result), `${format} ${text}`);
    assert.equal(result.rejected, `time: cannot parse ${JSON.stringify(text)} as ${format} (a number in exponent form keeps only the digits written, most often what a spreadsheet left of a long number: the time may be days or months off; export the times as whole numbers, or as text)`);
  }
  const micros = createEventMapper({ time_format: 'epoch_us' });
  assert.equal((micros({ user_id: 'u', time: 1.71e15, type: 'view' }) as ClickEvent).time, 1_710_000_000_000);
  assert.equal((micros({ user_id: 'u', time: '1710000000123456', type: 'view' }) as ClickEvent).time, 1_710_000_000_123);
  assert.equal((createEventMapper({ time_format: 'epoch_s' })({ user_id: 'u', time: '1710201676.5', type: 'view' }) as ClickEvent).time, 1_710_201_676_500);
  // Other text is rejected as before, without the hint; a price in exponent text is still a price.
  const other = micros({ user_id: 'u', time: 'soon', type: 'view' });
  assert.ok(isRejected(other));
  assert.equal(other.rejected, 'time: cannot parse "soon" as epoch_us');
  assert.equal((createEventMapper({ time_format: 'epoch_ms' })({ user_id: 'u', time: 1, type: 'view', price: '1e2' }) as ClickEvent).price, 100);
});

test('createEventMapper\'s onTimeOffset is called once, with the first UTC offset other than zero a time\'s text carries (iso8601, a pattern\'s offset letter, in UTC or a time_zone); not for Z, +00:00, times without an offset, epochs or a time it rejects', () => {
  const offsets = (config: MappingConfig, times: unknown[]): number[] => {
    const told: number[] = [];
    const map = createEventMapper(config, undefined, (offset) => told.push(offset));
    for (const time of times) map({ user_id: 'u', time, type: 'view' });
    return told;
  };
  assert.deepEqual(offsets({}, ['2024-01-10T10:00:00Z', '2024-01-10T10:00:00+00:00', '2024-02-30T10:00:00+01:00', '2024-01-10T10:00:00+01:00', '2024-07-10T10:00:00+02:00']), [60]);
  assert.deepEqual(offsets({ time_zone: 'Europe/Berlin' }, ['2024-01-10 10:00:00', '2024-01-10T10:00:00-0530']), [-330]);
  assert.deepEqual(offsets({ time_format: "yyyy-MM-dd'T'HH:mm:ssXXX" }, ['2024-01-10T10:00:00Z', '2024-01-10T10:00:00+05:45']), [345]);
  assert.deepEqual(offsets({}, ['2024-01-10T10:00:00Z', '2024-01-10 10:00:00', '2024-01-10T10:00:00.123Z']), []);
  assert.deepEqual(offsets({ time_format: 'epoch_ms' }, [1_704_880_800_000]), []);
  // Without a listener the parsers are those alone, as before.
  assert.equal((createEventMapper({})({ user_id: 'u', time: '2024-01-10T11:00:00+01:00', type: 'view' }) as ClickEvent).time, Date.UTC(2024, 0, 10, 10));
});

test('skip_types: a record of a skipped type (after event_types) is a rejection marked skipped, before its other fields are read; other types map as without it', () => {
  const map = createEventMapper({ fields: { user_id: 'user_id', time: 'ts', type: 'event' }, event_types: { order_completed: 'purchase' }, skip_types: ['purchase'] });
  const bought = map({ user_id: 'u1', ts: '2024-01-01T00:00:00Z', event: 'order_completed', price: 'abc' });
  assert.deepEqual(bought, { rejected: 'skip_types: purchase', skipped: true }, 'skipped, its bad price no dead letter');
  assert.ok(isRejected(bought) && isSkipped(bought));
  const viewed = map({ user_id: 'u1', ts: '2024-01-01T00:00:00Z', event: 'view' });
  assert.ok(!isRejected(viewed) && viewed.type === 'view');
  const bad = map({ user_id: 'u1', ts: 'yesterday', event: 'purchase' });
  assert.ok(isRejected(bad) && !isSkipped(bad), 'a record whose type cannot be read is bad input, not skipped');
});

test('mappingWarnings: a skip_types entry that is most likely a known type misspelt (purchases, Purchase) is a warning at its index, as it skips nothing; a known type, one event_types maps to, or a type of its own is none', () => {
  assert.deepEqual(mappingWarnings({ skip_types: ['view', 'purchases'] }), [
    { field: 'skip_types[1]', message: "skip_types names 'purchases', which is no known type (view, cart, remove_from_cart, purchase) and no type event_types maps to: did you mean 'purchase'? Types are compared after event_types, exactly; as written it skips no 'purchase' event" },
  ]);
  assert.equal(mappingWarnings({ skip_types: ['Purchase'] })[0]?.field, 'skip_types[0]');
  assert.deepEqual(mappingWarnings({ skip_types: ['purchase', 'purchases'], event_types: { order: 'purchases' } }).filter((w) => w.field.startsWith('skip_types')), [], 'a type event_types maps to is skipped as named');
  assert.deepEqual(mappingWarnings({ skip_types: ['search'] }), []);
});

test("typeOf: the event type a record names as its event would have it (event_types mapped, default_type where it names none), whatever else it lacks; none for a record of a sink's other kinds or a type that is no text", () => {
  // What tells a rejected record for an erasure request (Rejection.eventType): the mapping rejects it by its missing user id before the runtime sees its type.
  const map = createEventMapper({ fields: { type: 'event.name' }, event_types: { forget_me: 'erase', '7': 'cart' }, default_type: 'view' });
  const record = { event: { name: 'forget_me' }, time: '2026-01-05T09:00:00Z' };
  assert.ok(isRejected(map(record)), 'no user id');
  assert.equal(map.typeOf(record), 'erase');
  assert.equal(map.typeOf({ event: { name: 'click' } }), 'click', 'a type event_types does not name, as it is');
  assert.equal(map.typeOf({ event: { name: 7 } }), 'cart', 'a number event_types maps');
  assert.equal(map.typeOf({ event: { name: 8 } }), undefined, 'a number it does not map');
  assert.equal(map.typeOf({}), 'view', 'default_type');
  for (const other of [null, 'x', [1], 42]) assert.equal(map.typeOf(other), undefined, JSON.stringify(other));
  const canonical = createEventMapper('canonical');
  assert.equal(canonical.typeOf({ kind: 'prediction', type: 'erase' }), undefined, "a sink's prediction is no event");
  assert.equal(canonical.typeOf({ kind: 'event', type: 'erase' }), 'erase');
});

test('absentFieldCheck: a field the events had that the next 1,000 in a row lack is said (with the field that came in its place), once per vanishing, again after it came back; a field never seen is the first sample\'s alone, a sparse one (fewer than one event in ten had it) is not said', () => {
  const config = { fields: { price: 'price', category: 'category' }, attributes: ['brand'] } satisfies MappingConfig;
  const map = createEventMapper(config);
  const warned: { fields: Record<string, unknown>; message: string }[] = [];
  const check = absentFieldCheck(config, { warn: (fields: Record<string, unknown>, message: string) => void warned.push({ fields, message }) } as never, 'topics clicks');
  const feed = (count: number, record: (i: number) => Record<string, unknown>) => {
    for (let i = 0; i < count; i++) {
      const input = { user_id: 'u', time: '2026-03-01T00:00:00Z', type: 'view', ...record(i) };
      const event = map(input);
      assert.ok(!isRejected(event));
      check.see(event, input);
    }
  };
  // Weeks of events with a price and a category, never a brand (said by the first sample).
  feed(ABSENT_FIELD_SAMPLE + 500, () => ({ price: 9.5, category: 'shoes' }));
  assert.deepEqual(warned.map(({ message }) => message), [`topics clicks: none of the first ${ABSENT_FIELD_SAMPLE} events had attributes 'brand', so no event gets an attribute brand; name the field the records have (a nested one by its path: user.id, items[0].price)`]);
  // The price moves into product.price: 999 events in a row without it are not yet a vanishing.
  feed(ABSENT_FIELD_SAMPLE - 1, () => ({ product: { price: 9.5 }, category: 'shoes' }));
  assert.equal(warned.length, 1);
  feed(1, () => ({ product: { price: 9.5 }, category: 'shoes' }));
  assert.equal(warned.length, 2);
  assert.equal(
    warned[1]!.message,
    `topics clicks: the last ${ABSENT_FIELD_SAMPLE} events had no fields.price 'price', though the events before them had it (fields new since the last record with it: product; the records have product.price): they get no price, and the features made of it are as for events without one (a cart value of 0); if the producer renamed or moved it, name the field the records have now in the mapping and restart (docs/operations.md, When your event schema changes). Said again only after it comes back`,
  );
  assert.deepEqual(warned[1]!.fields, { field: 'fields.price', name: 'price', events: ABSENT_FIELD_SAMPLE, added: ['product'], near: 'product.price' });
  // Still gone: not said again; back, then gone again (category null now): said again, once each.
  feed(3 * ABSENT_FIELD_SAMPLE, () => ({ product: { price: 9.5 }, category: 'shoes' }));
  assert.equal(warned.length, 2);
  feed(1, () => ({ price: 9.5, category: 'shoes' }));
  feed(ABSENT_FIELD_SAMPLE, () => ({ product: { price: 9.5 }, category: null }));
  // A brand on one event in 20 (a sparse attribute): 1,000 in a row without one is no vanishing.
  feed(20 * ABSENT_FIELD_SAMPLE, (i) => ({ price: 9.5, category: 'shoes', ...(i % 20 === 0 ? { brand: 'acme' } : {}) }));
  feed(ABSENT_FIELD_SAMPLE, () => ({ price: 9.5, category: 'shoes' }));
  assert.equal(warned.length, 4);
  assert.deepEqual(warned.slice(2).map(({ fields }) => fields.field), ['fields.category', 'fields.price']);
  assert.match(warned[2]!.message, /the last 1000 events had no fields\.category 'category', though the events before them had it \(fields new since the last record with it: product\): they get no category, and the features made of it are as for events without one; if/);
});

test('absentFieldCheck: with metrics, each event without a named optional field is counted under its field (attributes as attrs.NAME), from the first event on, at each flush (a source\'s batch); the canonical mapping counts nothing', async () => {
  const hub = new MetricsHub();
  const metrics = hub.scoped({ pipeline: 'shop', stage: 'clicks' });
  const config = { fields: { price: 'price', category: 'category' }, attributes: ['brand'] } satisfies MappingConfig;
  const check = absentFieldCheck(config, { warn() {} } as never, 'events.jsonl', metrics);
  const map = createEventMapper(config);
  for (const record of [{ price: 3, category: 'shoes', brand: 'x' }, { price: '', category: null }, { category: 'hats' }]) {
    const input = { user_id: 'u', time: '2026-03-01T00:00:00Z', type: 'view', ...record };
    check.see(map(input) as ClickEvent, input);
  }
  check.flush(); // as a source does after each batch
  absentFieldCheck(CANONICAL_EVENT_MAPPING, { warn() {} } as never, 'canonical.jsonl', hub.scoped({ pipeline: 'shop', stage: 'copy' })).see({ kind: 'event', userId: 'u', time: 0, type: 'view' }, {});
  const scraped = await hub.registry.metrics();
  assert.match(scraped, /^tributary_source_field_values_absent_total\{pipeline="shop",stage="clicks",field="price"\} 2$/m);
  assert.match(scraped, /^tributary_source_field_values_absent_total\{pipeline="shop",stage="clicks",field="category"\} 1$/m);
  assert.match(scraped, /^tributary_source_field_values_absent_total\{pipeline="shop",stage="clicks",field="attrs\.brand"\} 2$/m);
  assert.doesNotMatch(scraped, /stage="copy"/);
});

test('a time written as a number where time_format reads text (a producer that switched from ISO 8601 to epoch times) is dead-lettered with the epoch format its digits say', () => {
  const iso = createEventMapper({});
  const reasonOf = (time: unknown) => (iso({ user_id: 'u', time, type: 'view' }) as { rejected: string }).rejected;
  const hint = ' (YYYY-MM-DD, then THH:mm, :ss, .sss and Z or ±HH:mm as given; a date that exists)';
  assert.equal(reasonOf(1569897644), `time: cannot parse 1569897644 as iso8601${hint} (a number: seconds since 1970? mapping.time_format: epoch_s reads them)`);
  assert.equal(reasonOf('1569897644000'), `time: cannot parse "1569897644000" as iso8601${hint} (a number: milliseconds since 1970? mapping.time_format: epoch_ms reads them)`);
  assert.equal(reasonOf(1569897644.700123), `time: cannot parse 1569897644.700123 as iso8601${hint} (a number: seconds since 1970? mapping.time_format: epoch_s reads them)`);
  assert.equal(reasonOf('1569897644000000'), `time: cannot parse "1569897644000000" as iso8601${hint} (a number: microseconds since 1970? mapping.time_format: epoch_us reads them)`);
  // Digits no epoch unit of these decades has, and text: no such hint.
  assert.equal(reasonOf(42), `time: cannot parse 42 as iso8601${hint}`);
  assert.equal(reasonOf('soon'), `time: cannot parse "soon" as iso8601${hint}`);
});

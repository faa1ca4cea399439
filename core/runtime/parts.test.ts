import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawJson, reusePieces, stringifyInParts } from './parts.js';
import { countLoopTurns } from '../testing.js';

test('a body serialised in parts is the UTF-8 of the text JSON.stringify gives, whatever the values (toJSON, skipped values, holes, long strings, surrogate pairs, multi-byte text)', async () => {
  const long = `${'x'.repeat((1 << 20) - 1)}\ud83d\ude00${'y"\n\\'.repeat(300_000)}\ud800z`;
  const sparse = [1, , 3];
  sparse.length = 2000;
  const values: unknown[] = [
    { a: 1, b: undefined, c: () => 1, d: Symbol('s'), e: NaN, f: -0, g: Infinity, h: null, i: new Date(0), j: [undefined, () => 1, Symbol('x')] },
    Array.from({ length: 5000 }, (_, i) => (i % 3 ? `s${i}` : i % 5 ? { k: i, v: [i, 'x'] } : null)),
    sparse,
    { toJSON: (key: string) => ({ key, nested: { toJSON: (k: string) => `k=${k}` } }) },
    [long, { long }, [[long]]],
    Object.assign(Object.create(null) as object, { 'we"ird': 1, '\u2028': [1, 2] }),
    { typed: new Float64Array([1, 2]), map: new Map([[1, 2]]), number: Object(3) as unknown, string: Object('s') as unknown },
    [[], {}, [[]], [{}], ''],
    'plain',
    Array.from({ length: 3000 }, () => ({ n: 1, b64: 'A'.repeat(2000) })),
    // Text of two, three and four UTF-8 bytes a character, across pieces.
    { 'ü': Array.from({ length: 200_000 }, (_, i) => `é漢${i}`), emoji: '😀'.repeat(700_000) },
    // A long string JSON writes as it is (a base64 column).
    { n: 3, b64: 'QUJD'.repeat(800_000) },
  ];
  const text = async (value: unknown): Promise<string> => Buffer.concat(await stringifyInParts(value)).toString('utf8');
  for (const [k, value] of values.entries()) assert.equal(await text(value), JSON.stringify(value), `value ${k}`);
  // A stage's synchronous snapshot is serialised at its instant and written as it was.
  assert.equal(await text({ a: new RawJson('{"x":[1,2]}'), b: 2 }), '{"a":{"x":[1,2]},"b":2}');
});

test('a large body is serialised with the event loop turning between its parts, and a cycle fails as in JSON.stringify', async () => {
  const users = Array.from({ length: 300_000 }, (_, i) => `user-${i}`); // over 3 MiB of text
  const loop = countLoopTurns();
  const pieces = await stringifyInParts({ users });
  const turns = loop.stop();
  assert.ok(turns >= 1, `the event loop turned ${turns} times`);
  assert.ok(pieces.length > 1, `${pieces.length} pieces`);
  assert.equal(Buffer.concat(pieces).toString('utf8'), JSON.stringify({ users }));

  const cycle: { self: unknown[] } = { self: [] };
  cycle.self.push(cycle);
  await assert.rejects(stringifyInParts([cycle, cycle]), /circular/);
});

test('a body fills its pieces, and the pieces of a body written are reused for the next, never a caller own buffer', async () => {
  const body = { columns: ['QUJD'.repeat(700_000), 'RUZH'.repeat(700_000)], users: Array.from({ length: 50_000 }, (_, i) => `user-${i}`) };
  const first = await stringifyInParts(body);
  assert.equal(Buffer.concat(first).toString('utf8'), JSON.stringify(body));
  // ASCII text splits anywhere: every piece but the last is full (1 MiB), not closed half-empty.
  for (const piece of first.slice(0, -1)) assert.equal(piece.length, 1 << 20);
  const buffers = new Set(first.map((piece) => piece.buffer));
  reusePieces(first);
  const own = Buffer.alloc(1 << 20);
  reusePieces([own]); // a caller's buffer of the same size: never taken
  const other = { text: 'x'.repeat(3 << 20) };
  const second = await stringifyInParts(other);
  assert.equal(Buffer.concat(second).toString('utf8'), JSON.stringify(other));
  assert.ok(second.some((piece) => buffers.has(piece.buffer)), 'a buffer of the first body reused');
  assert.ok(second.every((piece) => piece.buffer !== own.buffer), 'the caller buffer not reused');
  reusePieces(first); // twice: its buffers are the second body's now, and are not taken again
  const third = await stringifyInParts(body);
  const secondBuffers = new Set(second.map((piece) => piece.buffer));
  assert.ok(third.every((piece) => !secondBuffers.has(piece.buffer)), 'two bodies share no buffer');
  assert.equal(Buffer.concat(second).toString('utf8'), JSON.stringify(other));
  assert.equal(Buffer.concat(third).toString('utf8'), JSON.stringify(body));
});

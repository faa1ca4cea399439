import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkListLengths, decodeColumnOf, decodeColumns, decodeDerivedIds, decodeNamedColumns, decodeNamedColumnsInTurns, decodeNullableStrings, decodeOptionalColumnOf, decodeStrings, encodeColumns, encodeDerivedIds, inTurns, type Column } from 'tributary';

const encode = (...arrays: number[][]): Promise<Column[]> => inTurns(encodeColumns(arrays.map((values) => Float64Array.from(values))));

test('columns encoded and decoded with their row counts checked give back every value exactly', async () => {
  const values = [[1, 2, 3], [0.5, NaN, -0], [7, 7, 7]];
  const columns = JSON.parse(JSON.stringify(await encode(...values))) as Column[];
  const decoded = decodeColumns(columns, 3, 3, 'test');
  assert.deepEqual(decoded.map((column) => [...column]), values);
  assert.ok(Object.is(decoded[1]![2], -0));
  // Rows undefined: as many as the first column.
  assert.deepEqual(decodeColumns(columns, 3, undefined, 'test').map((column) => column.length), [3, 3, 3]);
  const { a, b } = decodeNamedColumns({ a: columns[0]!, b: columns[2]! }, ['a', 'b'], 3, 'test');
  assert.deepEqual([[...a], [...b]], [values[0], values[2]]);
  assert.equal(decodeOptionalColumnOf(undefined, 3, 'test'), undefined, 'an absent column (one a later version added)');
  assert.deepEqual([...decodeOptionalColumnOf(columns[0], 3, 'test')!], values[0]);
});

test('decodeNamedColumnsInTurns gives the columns decodeNamedColumns gives, the event loop turning between them, and names a bad one', async () => {
  const [a, b, short] = await encode([1, 2, 3], [0.5, NaN, -0], [1, 2]);
  const columns = { a: a!, b: b! };
  let turns = 0;
  const count = (): void => void setImmediate(() => {
    turns++;
    if (turns < 100) count();
  });
  count();
  const decoded = await decodeNamedColumnsInTurns(columns, ['a', 'b'], 3, 'test');
  assert.ok(turns >= 2, `the loop turned before each column (${turns} turns)`);
  const plain = decodeNamedColumns(columns, ['a', 'b'], 3, 'test');
  assert.deepEqual([[...decoded.a], [...decoded.b]], [[...plain.a], [...plain.b]]);
  await assert.rejects(decodeNamedColumnsInTurns({ start: a!, end: short! }, ['start', 'end'], 3, 'plugin snapshot'), /^Error: plugin snapshot: end: 2 rows, expected 3$/);
});

test('a column, list or lengths that do not match their rows are refused with what does not match', async () => {
  const [three, two] = await encode([1, 2, 3], [1, 2]);
  assert.throws(() => decodeColumnOf(two!, 3, 'plugin snapshot: start'), /^Error: plugin snapshot: start: 2 rows, expected 3$/);
  assert.throws(() => decodeColumnOf({ n: 3, f64: 'AAAA' }, 3, 'plugin snapshot: start'), /^Error: plugin snapshot: start: column holds 3 bytes, expected 24$/);
  assert.throws(() => decodeColumnOf(undefined as unknown as Column, 3, 'plugin snapshot: start'), /^Error: plugin snapshot: start: not a snapshot column$/);
  assert.throws(() => decodeColumns([three!, three!], 3, 3, 'plugin snapshot: columns'), /^Error: plugin snapshot: columns: 2 columns, expected 3$/);
  assert.throws(() => decodeColumns([three!, two!], 2, undefined, 'plugin snapshot: columns'), /^Error: plugin snapshot: columns: column 1: 2 rows, expected 3$/);
  assert.throws(() => decodeColumns({} as Column[], 2, 3, 'plugin snapshot: columns'), /^Error: plugin snapshot: columns: no list of columns, expected 2$/);
  assert.throws(() => decodeNamedColumns({ start: three!, end: two! }, ['start', 'end'], 3, 'plugin snapshot'), /^Error: plugin snapshot: end: 2 rows, expected 3$/);
  assert.throws(() => decodeNamedColumns({ start: three! } as { start: Column; end: Column }, ['start', 'end'], 3, 'plugin snapshot'), /^Error: plugin snapshot: end: not a snapshot column$/);
  assert.deepEqual(decodeStrings(['a', 'b'], 2, 'keys'), ['a', 'b']);
  assert.deepEqual(decodeStrings([], undefined, 'keys'), []);
  assert.throws(() => decodeStrings(['a'], 2, 'plugin snapshot: keys'), /^Error: plugin snapshot: keys: 1 strings, expected 2$/);
  assert.throws(() => decodeStrings(['a', null], undefined, 'plugin snapshot: keys'), /^Error: plugin snapshot: keys: not a string at row 1$/);
  assert.throws(() => decodeStrings('ab', undefined, 'plugin snapshot: keys'), /^Error: plugin snapshot: keys: not a list of strings$/);
  assert.deepEqual(decodeNullableStrings(['a', null], 2, 'items'), ['a', null]);
  assert.throws(() => decodeNullableStrings(['a', 3], 2, 'plugin snapshot: items'), /^Error: plugin snapshot: items: not a string or null at row 1$/);
  assert.throws(() => decodeNullableStrings([null], 2, 'plugin snapshot: items'), /^Error: plugin snapshot: items: 1 strings, expected 2$/);
  checkListLengths(Float64Array.from([2, 0, 1]), 3, 'items');
  assert.throws(() => checkListLengths(Float64Array.from([2, 0, 1]), 4, 'plugin snapshot: items'), /^Error: plugin snapshot: items: lengths add up to 3, the list holds 4$/);
  assert.throws(() => checkListLengths(Float64Array.from([2, -1, 1]), 2, 'plugin snapshot: items'), /^Error: plugin snapshot: items: length -1 at row 1$/);
  assert.throws(() => checkListLengths(Float64Array.from([1.5]), 2, 'plugin snapshot: items'), /^Error: plugin snapshot: items: length 1.5 at row 0$/);
  // Derived ids, read whole or lazily: an other id must go to a row of the owners, and be a string or null.
  const ids = await inTurns(encodeDerivedIds(['a', 'b'], ['a:5', 'x']));
  assert.deepEqual(decodeDerivedIds(['a', 'b'], ids, 'ids'), ['a:5', 'x']);
  for (const lazy of [false, true] as const) {
    const decode = (damaged: object) => () => decodeDerivedIds(['a', 'b'], { ...ids, ...damaged }, 'plugin snapshot: ids', lazy as false);
    assert.throws(decode({ otherRows: [2] }), /^Error: plugin snapshot: ids: row 2 out of range$/);
    assert.throws(decode({ otherRows: [0.5] }), /^Error: plugin snapshot: ids: row 0.5 out of range$/);
    assert.throws(decode({ otherIds: ['x', 'y'] }), /^Error: plugin snapshot: ids: 2 other ids for 1 other rows$/);
    assert.throws(decode({ otherIds: [7] }), /^Error: plugin snapshot: ids: other id at 0 not a string or null$/);
    assert.throws(decode({ otherRows: 1 }), /^Error: plugin snapshot: ids: other ids or their rows not a list$/);
  }
});

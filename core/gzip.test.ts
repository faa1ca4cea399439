import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { gunzipUpToDamage, type GzipDamage } from './gzip.js';

async function read(bytes: Buffer): Promise<{ text: string; damage?: GzipDamage; membersEnd?: number }> {
  let damage: GzipDamage | undefined;
  let membersEnd: number | undefined;
  const texts: Buffer[] = [];
  const pieces = async function* (): AsyncGenerator<Buffer> {
    yield bytes;
  };
  for await (const text of gunzipUpToDamage(pieces(), { onDamage: (found) => void (damage = found), onEnd: (end) => void (membersEnd = end) })) texts.push(text);
  return { text: Buffer.concat(texts).toString(), ...(damage ? { damage } : {}), ...(membersEnd === undefined ? {} : { membersEnd }) };
}

test('gunzipUpToDamage tells where the members end (onEnd), zero padding after them not counted; damaged data is told to onDamage instead', async () => {
  const members = Buffer.concat([gzipSync('a\n'), gzipSync('b\n')]);
  assert.deepEqual(await read(members), { text: 'a\nb\n', membersEnd: members.length });
  assert.deepEqual(await read(Buffer.concat([members, Buffer.alloc(512)])), { text: 'a\nb\n', membersEnd: members.length });
  assert.deepEqual(await read(Buffer.alloc(0)), { text: '', membersEnd: 0 });
  const torn = await read(members.subarray(0, members.length - 3));
  assert.equal(torn.membersEnd, undefined);
  assert.equal(torn.damage?.problem, 'unexpected end of file');
  assert.equal(torn.text, 'a\nb\n');
});

test('gunzipUpToDamage holds a member\'s text until its CRC checks: a failed CRC gives the held text to onDamage; past the bound (holdUnchecked) the text goes on, and the damage says how much did', async () => {
  const good = gzipSync('a\n');
  const text = 'x1\nx2\nx3\n';
  const bad = gzipSync(text);
  bad[bad.length - 8]! ^= 1; // the CRC
  const bytes = Buffer.concat([good, bad]);
  const read = async (holdUnchecked?: number): Promise<{ text: string; damage?: GzipDamage }> => {
    let damage: GzipDamage | undefined;
    const texts: Buffer[] = [];
    const pieces = async function* (): AsyncGenerator<Buffer> {
      yield bytes;
    };
    for await (const out of gunzipUpToDamage(pieces(), { onDamage: (found) => void (damage = found), ...(holdUnchecked === undefined ? {} : { holdUnchecked }) })) texts.push(out);
    return { text: Buffer.concat(texts).toString(), ...(damage ? { damage } : {}) };
  };
  const held = await read();
  assert.equal(held.text, 'a\n');
  assert.deepEqual([held.damage?.problem, held.damage?.text.toString(), held.damage?.unchecked], ['incorrect data check', text, undefined]);
  const unheld = await read(0);
  assert.equal(unheld.text, `a\n${text}`);
  assert.deepEqual([unheld.damage?.text.toString(), unheld.damage?.unchecked], ['', { bytes: text.length, lineEnds: 3 }]);
});

/** What gunzipUpToDamage reads of `bytes` with `resync`, in pieces of `pieceBytes`: its text and each damage told. */
async function readResyncing(bytes: Buffer, pieceBytes = bytes.length): Promise<{ text: string; damages: GzipDamage[] }> {
  const damages: GzipDamage[] = [];
  const texts: Buffer[] = [];
  const pieces = async function* (): AsyncGenerator<Buffer> {
    for (let at = 0; at < bytes.length; at += pieceBytes) yield bytes.subarray(at, at + pieceBytes);
  };
  for await (const text of gunzipUpToDamage(pieces(), { onDamage: (found) => void damages.push(found), resync: true })) texts.push(text);
  return { text: Buffer.concat(texts).toString(), damages };
}

test('gunzipUpToDamage with resync reads on at the next member after a damaged one (CRC, corrupt data, junk), each range told with its byte, where reading went on, and the line ends before it', async () => {
  const first = gzipSync('a1\na2\n');
  const middle = 'b1\nb2\nb3\n';
  const last = gzipSync('c1\nc2\n');
  const flipped = gzipSync(middle);
  flipped[flipped.length - 8]! ^= 1; // its CRC
  for (const pieceBytes of [1, 7, 1 << 20]) {
    const crc = await readResyncing(Buffer.concat([first, flipped, last]), pieceBytes);
    assert.equal(crc.text, 'a1\na2\nc1\nc2\n');
    assert.deepEqual(
      crc.damages.map(({ byte, problem, text, lineEndsBefore, resumedAt }) => ({ byte, problem, text: text.toString(), lineEndsBefore, resumedAt })),
      [{ byte: first.length + flipped.length - 8, problem: 'incorrect data check', text: middle, lineEndsBefore: 2, resumedAt: first.length + flipped.length }],
    );
    const junk = Buffer.from('not a member\n');
    const junked = await readResyncing(Buffer.concat([first, junk, last]), pieceBytes);
    assert.equal(junked.text, 'a1\na2\nc1\nc2\n');
    assert.deepEqual(
      junked.damages.map(({ byte, problem, resumedAt }) => ({ byte, problem, resumedAt })),
      [{ byte: first.length, problem: 'incorrect header check', resumedAt: first.length + junk.length }],
    );
  }
  // Corrupt deflate data: the text before it goes on, as without resync; then the next member's.
  const big = Array.from({ length: 2000 }, (_, i) => `{"n":${i},"r":${(i * 7919) % 1000}}\n`).join('');
  const corrupt = gzipSync(big);
  corrupt.fill(0xff, 200, 260);
  const corrupted = await readResyncing(Buffer.concat([first, corrupt, last]));
  assert.ok(corrupted.text.startsWith('a1\na2\n{"n":0'));
  assert.ok(corrupted.text.endsWith('\nc1\nc2\n'));
  assert.equal(corrupted.damages.length, 1);
  assert.equal(corrupted.damages[0]!.resumedAt, first.length + corrupt.length);
  assert.equal(corrupted.damages[0]!.lineEndsBefore, corrupted.text.split('\n').length - 1 - 2);
  // A damaged last member: the rest is skipped, told without resumedAt.
  const tornEnd = await readResyncing(Buffer.concat([first, flipped]));
  assert.deepEqual([tornEnd.text, tornEnd.damages.length, tornEnd.damages[0]!.resumedAt], ['a1\na2\n', 1, undefined]);
});

test('gunzipUpToDamage with resync passes over a match of the magic that is no member: it joins the damaged range, and the member after it is read', async () => {
  const first = gzipSync('a1\n');
  const last = gzipSync('c1\n');
  // Junk holding a header's first bytes, garbage after them (it fails to inflate), then a truncated header.
  const junk = Buffer.concat([Buffer.from('xx'), Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0x07]), Buffer.from('yy'), Buffer.from([0x1f, 0x8b, 8, 0xe0])]);
  for (const pieceBytes of [1, 3, 1 << 20]) {
    const read = await readResyncing(Buffer.concat([first, junk, last]), pieceBytes);
    assert.equal(read.text, 'a1\nc1\n');
    assert.deepEqual(
      read.damages.map(({ byte, problem, lineEndsBefore, resumedAt }) => ({ byte, problem, lineEndsBefore, resumedAt })),
      [{ byte: first.length, problem: 'incorrect header check', lineEndsBefore: 1, resumedAt: first.length + junk.length }],
    );
  }
  // A false match that runs to the end: one range, the rest skipped.
  const read = await readResyncing(Buffer.concat([first, junk]));
  assert.deepEqual([read.text, read.damages.length, read.damages[0]!.byte, read.damages[0]!.resumedAt], ['a1\n', 1, first.length, undefined]);
});

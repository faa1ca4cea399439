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

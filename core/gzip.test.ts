import { test } from 'node:test';
import { performance } from 'node:perf_hooks';
import assert from 'node:assert/strict';
import { constants, createGzip, deflateRawSync, gzipSync } from 'node:zlib';
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
  // Corrupt deflate data: the member's text before it is held with it (the damage's, not the reader's); then the next member's.
  const big = Array.from({ length: 2000 }, (_, i) => `{"n":${i},"r":${(i * 7919) % 1000}}\n`).join('');
  const corrupt = gzipSync(big);
  corrupt.fill(0xff, 200, 260);
  const corrupted = await readResyncing(Buffer.concat([first, corrupt, last]));
  assert.equal(corrupted.text, 'a1\na2\nc1\nc2\n');
  assert.equal(corrupted.damages.length, 1);
  assert.equal(corrupted.damages[0]!.resumedAt, first.length + corrupt.length);
  assert.equal(corrupted.damages[0]!.lineEndsBefore, 2);
  assert.ok(corrupted.damages[0]!.text.toString().startsWith('{"n":0,'));
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

/** A gzip member whose deflate data inflates `text` (a stored block, flushed to a byte) and then is corrupt (a block of the reserved type). */
function corruptAfter(text: string): Buffer {
  const inflates = deflateRawSync(text, { finishFlush: constants.Z_FULL_FLUSH });
  return Buffer.concat([gzipSync('').subarray(0, 10), inflates, Buffer.from([0x07, 0, 0, 0]), Buffer.alloc(8)]); // BFINAL 1, BTYPE 11
}

test('gunzipUpToDamage holds the text zlib inflates before corrupt deflate data with its member: it is the damage\'s (garbage may parse as lines), not the reader\'s; past the bound it went on, and the damage says how much', async () => {
  const first = gzipSync('a1\n');
  const garbage = '{"user_id":"u1","time":1,"type":"purchase"}\nx2\n';
  const last = gzipSync('c1\n');
  const bytes = Buffer.concat([first, corruptAfter(garbage), last]);
  const read = async (pieceBytes: number, options: { readFrom?: boolean; holdUnchecked?: number }): Promise<{ text: string; damages: GzipDamage[] }> => {
    const damages: GzipDamage[] = [];
    const texts: Buffer[] = [];
    const from = async function* (byte: number): AsyncGenerator<Buffer> {
      for (let at = byte; at < bytes.length; at += pieceBytes) yield bytes.subarray(at, at + pieceBytes);
    };
    const reading = gunzipUpToDamage(from(0), {
      onDamage: (found) => void damages.push(found),
      resync: true,
      ...(options.readFrom === true ? { readFrom: from } : {}),
      ...(options.holdUnchecked === undefined ? {} : { holdUnchecked: options.holdUnchecked }),
    });
    for await (const text of reading) texts.push(text);
    return { text: Buffer.concat(texts).toString(), damages };
  };
  // A file (readFrom) and a stream (its compressed bytes kept), in pieces of any size.
  for (const readFrom of [true, false]) {
    for (const pieceBytes of [1, 5, 1 << 20]) {
      const held = await read(pieceBytes, { readFrom });
      // Before: 'a1\n{"user_id"...}\nx2\nc1\n', the garbage read as lines.
      assert.equal(held.text, 'a1\nc1\n', `pieces of ${pieceBytes}`);
      assert.deepEqual(
        held.damages.map(({ problem, text, lineEndsBefore, unchecked, resumedAt }) => ({ problem, text: text.toString(), lineEndsBefore, unchecked, resumedAt })),
        [{ problem: 'invalid block type', text: garbage, lineEndsBefore: 1, unchecked: undefined, resumedAt: bytes.length - last.length }],
      );
    }
  }
  const unheld = await read(1 << 20, { holdUnchecked: 0 });
  assert.equal(unheld.text, `a1\n${garbage}c1\n`);
  assert.deepEqual([unheld.damages[0]!.text.toString(), unheld.damages[0]!.unchecked], ['', { bytes: garbage.length, lineEnds: 2 }]);
});

/**
 * gunzipUpToDamage (maxHoldMs 50) over a live writer that writes `first`, goes quiet until the reader has given out
 * `text` (3 s at most: without the release the test fails, not hangs), then writes `rest`: what was read before any
 * damage was found, and the damage.
 */
async function readPausingWriter(first: Buffer, rest: Buffer, text: string): Promise<{ beforeDamage: string; damage: GzipDamage | undefined }> {
  let gotLines: () => void = () => undefined;
  const linesGot = new Promise<void>((resolve) => (gotLines = resolve));
  const live = async function* (): AsyncGenerator<Buffer> {
    yield first;
    let quiet: NodeJS.Timeout | undefined;
    await Promise.race([linesGot, new Promise((resolve) => (quiet = setTimeout(resolve, 3000)))]);
    clearTimeout(quiet);
    yield rest;
  };
  let damage: GzipDamage | undefined;
  let read = '';
  let beforeDamage = '';
  for await (const out of gunzipUpToDamage(live(), { onDamage: (found) => void (damage = found), maxHoldMs: 50 })) {
    read += out.toString();
    if (damage === undefined) beforeDamage = read;
    if (read === text) gotLines();
  }
  return { beforeDamage, damage };
}

test('gunzipUpToDamage with maxHoldMs: a live stream\'s held lines go on unchecked once they have waited that long for their member\'s CRC (a writer between flushes), and a failed CRC then says so', async () => {
  const text = 'a1\na2\n';
  // The member's start, sync-flushed, as the file sink writes it at a flush: its lines are inflated, its end not written yet.
  const flushed = await new Promise<Buffer>((resolve) => {
    const gzip = createGzip();
    const out: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => out.push(chunk));
    gzip.write(text);
    gzip.flush(constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)));
  });
  // The member's end: an empty last block (fixed Huffman), and a trailer whose CRC is wrong (0).
  const { beforeDamage: beforeEnd, damage } = await readPausingWriter(flushed, Buffer.from([0x03, 0x00, 0, 0, 0, 0, text.length, 0, 0, 0]), text);
  // Before (no maxHoldMs): the lines waited for the member's end, which waited for them: read once the writer went on (3 s), then held back by the CRC.
  assert.equal(beforeEnd, text, 'the lines went on before the member ended');
  assert.deepEqual([damage?.problem, damage?.text.toString(), damage?.unchecked], ['incorrect data check', '', { bytes: text.length, lineEnds: 2 }]);
});

test('gunzipUpToDamage with maxHoldMs: a member whose deflate data ended but whose trailer is not written yet (a live writer pausing there) has its held lines go on within maxHoldMs, and a failed CRC then names them as possibly wrong', async () => {
  const text = 'a1\na2\n';
  const member = gzipSync(text);
  member[member.length - 8]! ^= 1; // its CRC
  // Its deflate data and 0-7 of its trailer's bytes: the data's end comes with the trailer's start, or alone.
  for (const trailerBytes of [0, 3, 7]) {
    const { beforeDamage: beforeEnd, damage } = await readPausingWriter(member.subarray(0, member.length - 8 + trailerBytes), member.subarray(member.length - 8 + trailerBytes), text);
    // Before, with 3 or 7 of its bytes: the trailer was waited for with no limit (the lines read after 3 s, then held back by the CRC).
    assert.equal(beforeEnd, text, `${trailerBytes} bytes of the trailer: the lines went on before it came`);
    assert.deepEqual([damage?.problem, damage?.byte, damage?.text.toString(), damage?.unchecked], ['incorrect data check', member.length - 8, '', { bytes: text.length, lineEnds: 2 }], `${trailerBytes} bytes of the trailer`);
  }
});

test('gunzipUpToDamage with resync finds a member whose header zlib took in during an earlier call that did not fail (a damaged member cut short, the next one fed in the same piece): it is read, not skipped', async () => {
  const a = Array.from({ length: 50 }, (_, i) => `a${i}\n`).join('');
  // A member cut short inside a stored block (of 60 bytes, 3 given): zlib copies the next members' first bytes as its
  // text, then fails on what follows them (a block header in the third member's data: "invalid stored block lengths").
  const cut = Buffer.concat([gzipSync('').subarray(0, 10), deflateRawSync(a, { finishFlush: constants.Z_FULL_FLUSH }), Buffer.from([0x00, 60, 0, ~60 & 0xff, 0xff, 0x61, 0x62, 0x63])]);
  const second = gzipSync('b1\nb2\n');
  const c = Array.from({ length: 3000 }, (_, i) => `{"c":${i},"r":${(i * 7919) % 1000}}\n`).join('');
  const third = gzipSync(c);
  const bytes = Buffer.concat([cut, second, third]);
  // 150: the first piece holds the second member's header and zlib takes it whole without failing; the failing call is the next piece's.
  for (const pieceBytes of [1, 150, 1 << 20]) {
    const read = await readResyncing(bytes, pieceBytes);
    // Before, in pieces of 1 and 150: '' (the search began at the failing call's first byte, inside the third member).
    assert.equal(read.text, `b1\nb2\n${c}`, `pieces of ${pieceBytes}`);
    assert.deepEqual(
      read.damages.map(({ problem, lineEndsBefore, resumedAt }) => ({ problem, lineEndsBefore, resumedAt })),
      [{ problem: 'invalid stored block lengths', lineEndsBefore: 0, resumedAt: cut.length }],
      `pieces of ${pieceBytes}`,
    );
    assert.ok(read.damages[0]!.text.toString().startsWith(a), 'the cut member\'s text is the damage\'s');
  }
  // Cut where a stored block (final) of 3 bytes and the second member's ends: zlib ends the deflate data after the
  // second member, and the third's first bytes are its trailer, whose CRC fails. Before: the search began there (the third member), the second's lines lost.
  const final = Buffer.concat([gzipSync('').subarray(0, 10), deflateRawSync(a, { finishFlush: constants.Z_FULL_FLUSH }), Buffer.from([0x01, 3 + second.length, 0, ~(3 + second.length) & 0xff, 0xff, 0x61, 0x62, 0x63])]);
  for (const pieceBytes of [1, 150, 1 << 20]) {
    const read = await readResyncing(Buffer.concat([final, second, third]), pieceBytes);
    assert.equal(read.text, `b1\nb2\n${c}`, `pieces of ${pieceBytes}`);
    assert.deepEqual(
      read.damages.map(({ byte, problem, resumedAt }) => ({ byte, problem, resumedAt })),
      [{ byte: final.length + second.length, problem: 'incorrect data check', resumedAt: final.length }],
      `pieces of ${pieceBytes}`,
    );
  }
});

test('gunzipUpToDamage: a line longer than the held text\'s bound split where the held text goes on unchecked (past holdUnchecked) is counted in the damage\'s unchecked lines, and its rest in the damage\'s text is said to continue it', async () => {
  const short = Array.from({ length: 4000 }, (_, i) => `s${String(i).padStart(5, '0')}\n`).join(''); // 28,000 bytes
  const long = `${'L'.repeat(120_000)}\n`;
  const after = Array.from({ length: 100 }, (_, i) => `t${i}\n`).join('');
  const bytes = corruptAfter(short + long + after);
  const damages: GzipDamage[] = [];
  const texts: Buffer[] = [];
  const pieces = async function* (): AsyncGenerator<Buffer> {
    yield bytes;
  };
  // 90,000: the short lines (28,000) held, and the long line's first 64 KB and more handed on with them past the bound, unended.
  for await (const text of gunzipUpToDamage(pieces(), { onDamage: (found) => void damages.push(found), holdUnchecked: 90_000 })) texts.push(text);
  const read = Buffer.concat(texts).toString();
  assert.ok(read.startsWith(short) && read.length > short.length + (64 << 10) && read.length < short.length + long.length - 1, `${read.length} bytes read`);
  assert.equal(damages.length, 1);
  const [damage] = damages;
  assert.equal(damage!.lineEndsBefore, 4001, 'the short lines, and the long line ended at the damage');
  // Before: lineEnds 4000, the long line (read in part, unchecked) not among them.
  assert.deepEqual(damage!.unchecked, { bytes: read.length, lineEnds: 4001 });
  assert.equal(damage!.text.toString(), (short + long + after).slice(read.length));
  assert.equal(damage!.continuesLine, true);
});

/** A member's bytes in `count` pieces of about the same size. */
const inPieces = (bytes: Buffer, count: number): Buffer[] => Array.from({ length: count }, (_, i) => bytes.subarray(Math.floor((i * bytes.length) / count), Math.floor(((i + 1) * bytes.length) / count)));

test('gunzipUpToDamage with maxHoldMs counts only the time spent waiting on the input: a reader behind its input (a writer streaming a file) holds a member whole, however long its own work takes', async (t) => {
  // The clock moves 250 ms each turn of the event loop: inflating takes turns (zlib's thread pool); a piece the input has ready takes none.
  let now = 0;
  t.mock.method(performance, 'now', () => now);
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let ticking = true;
  const tick = (): void => {
    now += 250;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const text = Array.from({ length: 2000 }, (_, i) => `{"n":${i},"r":${(i * 7919) % 1000}}\n`).join('');
  const member = gzipSync(text);
  member[member.length - 8]! ^= 1; // its CRC: the text held is the damage's, none of it read
  const ready = async function* (): AsyncGenerator<Buffer> {
    yield* inPieces(member, 40);
  };
  let damage: GzipDamage | undefined;
  let read = '';
  try {
    for await (const out of gunzipUpToDamage(ready(), { onDamage: (found) => void (damage = found), maxHoldMs: 1000 })) read += out.toString();
  } finally {
    ticking = false;
  }
  assert.ok(now >= 1000, `the clock moved ${now} ms while the member was read`);
  // Before (the time since the first text was held): the lines went on unchecked after 4 turns, then named as possibly wrong.
  assert.equal(read, '');
  assert.deepEqual([damage?.problem, damage?.text.toString(), damage?.unchecked], ['incorrect data check', text, undefined]);
});

test('gunzipUpToDamage with maxHoldMs: a live writer that writes a little at a time, its member unended, has its held lines go on once they have waited maxHoldMs on the input in all (not each pause that long: they would wait for the member\'s end)', async (t) => {
  let now = 0;
  t.mock.method(performance, 'now', () => now);
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const text = Array.from({ length: 3000 }, (_, i) => `l${i}\n`).join('');
  const member = gzipSync(text, { level: 0 }); // stored: each piece's text inflates as it comes
  const pieces = inPieces(member, 30);
  let given = 0;
  // A writer writing a piece every 100 ms: the reader waits a turn of the event loop, and the clock moves 100 ms.
  const trickle = async function* (): AsyncGenerator<Buffer> {
    for (const piece of pieces) {
      await new Promise((resolve) => setImmediate(resolve));
      now += 100;
      given++;
      yield piece;
    }
  };
  let firstOutAfter: number | undefined;
  let read = '';
  let damage: GzipDamage | undefined;
  for await (const out of gunzipUpToDamage(trickle(), { onDamage: (found) => void (damage = found), maxHoldMs: 1000 })) {
    firstOutAfter ??= given;
    read += out.toString();
  }
  // The first piece's lines held, then 10 waits of 100 ms: they go on with the 11th piece's, of 30.
  assert.equal(firstOutAfter, 11);
  assert.equal(read, text);
  assert.equal(damage, undefined);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable, Writable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import { countNewlines, JsonLinesWriter, OVERLONG_HEAD_BYTES, readLineBatches, recordToJson } from 'tributary';
import { tempFolder, until } from 'tributary/testing';

/** A Writable that keeps what it got and completes each write only when told to. */
function slowOutput(highWaterMark = 1024): { output: Writable; chunks: Buffer[]; completeAll(): void; completeOne(): void; pending(): number } {
  const chunks: Buffer[] = [];
  let waiting: (() => void)[] = [];
  const output = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      // A copy: the writer reuses a chunk's memory once its write has completed.
      chunks.push(Buffer.from(chunk));
      waiting.push(() => callback());
    },
  });
  return {
    output,
    chunks,
    completeAll() {
      const now = waiting;
      waiting = [];
      for (const complete of now) complete();
    },
    completeOne() {
      waiting.shift()?.();
    },
    pending: () => waiting.length,
  };
}

async function drainAll(sink: ReturnType<typeof slowOutput>, until: Promise<unknown>): Promise<void> {
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    sink.completeAll();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('lines are the records\' JSON, in order, whatever the chunk boundaries and record kinds', async () => {
  const records: object[] = [];
  for (let i = 0; i < 500; i++) {
    records.push({ kind: 'event', userId: `u${i}`, time: 1704067200000 + i, type: 'view', itemId: 'i\u00e9', price: i / 100 });
    if (i % 7 === 0) records.push({ kind: 'session', userId: `u${i}`, note: 'x'.repeat(i) });
    if (i % 50 === 0) records.push({ kind: 'event', userId: 'big', time: i, type: 'view', category: '\u2028'.repeat(2000) });
  }
  const sink = slowOutput();
  const writer = new JsonLinesWriter(sink.output, { chunkSize: 4096, lingerMs: 0 });
  for (const record of records) writer.write(record);
  await drainAll(sink, writer.close());
  assert.equal(Buffer.concat(sink.chunks).toString('utf8'), records.map((r) => `${recordToJson(r)}\n`).join(''));
  assert.ok(sink.chunks.every((chunk) => chunk.length <= 4096 || chunk.toString().split('\n').length === 2), 'only a record larger than a chunk makes a larger write');
});

test('a custom serializer is used for every record', async () => {
  const sink = slowOutput();
  const writer = new JsonLinesWriter(sink.output, { serialize: (record) => `<${(record as { userId: string }).userId}>` });
  writer.write({ kind: 'event', userId: 'a', time: 1, type: 'view' });
  writer.write({ kind: 'event', userId: 'b', time: 2, type: 'view' });
  await drainAll(sink, writer.close());
  assert.equal(Buffer.concat(sink.chunks).toString(), '<a>\n<b>\n');
});

test('flush() resolves only once every write so far has completed', async () => {
  // Below the output's high-water mark: no 'drain' to wait for, yet the writes are not done.
  const sink = slowOutput(1 << 20);
  const writer = new JsonLinesWriter(sink.output, { chunkSize: 1024, lingerMs: 0 });
  for (let i = 0; i < 100; i++) writer.write({ kind: 'event', userId: `u${i}`, time: i, type: 'view' });
  let flushed = false;
  const flush = writer.flush().then(() => (flushed = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(flushed, false, 'writes still in flight');
  assert.ok(sink.pending() > 0);
  await drainAll(sink, flush);
  assert.equal(flushed, true);
  assert.equal(Buffer.concat(sink.chunks).toString().split('\n').length, 101);
});

test('a failing output fails flush() and ready()', async () => {
  const output = new Writable({ write: (_chunk, _encoding, callback) => callback(new Error('disk full')) });
  const writer = new JsonLinesWriter(output, { lingerMs: 0 });
  writer.write({ kind: 'event', userId: 'u', time: 1, type: 'view' });
  await assert.rejects(writer.flush(), /disk full/);
  await assert.rejects(Promise.resolve(writer.ready()), /disk full/);
});

test('a writer closed with its output kept open (stdout) leaves no listener on it: a daemon restarting a stdout pipeline does not pile them up', async () => {
  const output = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const before = output.listenerCount('error');
  for (let run = 0; run < 12; run++) {
    const writer = new JsonLinesWriter(output, { lingerMs: 0 });
    writer.write({ kind: 'event', userId: 'u', time: run, type: 'view' });
    await writer.close(true);
  }
  assert.equal(output.listenerCount('error'), before);
  assert.equal(output.writableEnded, false, 'kept open');

  // One whose output failed: its error still reaches it (no uncaught error), then its listener goes.
  const failing = new Writable({ write: (_chunk, _encoding, callback) => callback(new Error('EPIPE')) });
  const writer = new JsonLinesWriter(failing, { lingerMs: 0 });
  writer.write({ kind: 'event', userId: 'u', time: 0, type: 'view' });
  await assert.rejects(writer.close(true), /EPIPE/);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(failing.listenerCount('error'), 0);
});

test('a quiet stream reaches the output lingerMs after its first pending record, not before and not later', async (t) => {
  // The linger is a setTimeout: node's mock timers move its clock, so wall time (a loaded host) decides nothing.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const sink = slowOutput();
  const writer = new JsonLinesWriter(sink.output, { lingerMs: 10 });
  writer.write({ kind: 'event', userId: 'u', time: 1, type: 'view' });
  t.mock.timers.tick(6);
  // A record that follows does not push the first one's deadline back.
  writer.write({ kind: 'event', userId: 'v', time: 2, type: 'view' });
  t.mock.timers.tick(3);
  assert.equal(sink.chunks.length, 0, 'held until lingerMs has passed');
  t.mock.timers.tick(1);
  assert.equal(Buffer.concat(sink.chunks).toString(), '{"kind":"event","userId":"u","time":1,"type":"view"}\n{"kind":"event","userId":"v","time":2,"type":"view"}\n');
  await drainAll(sink, writer.close());
});

test('flush() waits for the writes issued before it, not for those that follow', async () => {
  const sink = slowOutput(1 << 20);
  const writer = new JsonLinesWriter(sink.output, { lingerMs: 0 });
  writer.write({ kind: 'event', userId: 'first', time: 1, type: 'view' });
  let flushed = false;
  const flush = writer.flush().then(() => (flushed = true));
  writer.write({ kind: 'event', userId: 'second', time: 2, type: 'view' });
  const second = writer.flush();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(sink.pending(), 1, 'one write at a time reaches the output');
  sink.completeOne();
  await flush;
  assert.equal(flushed, true);
  await drainAll(sink, second);
  assert.equal(Buffer.concat(sink.chunks).toString().split('\n').length, 3);
});

test('readLineBatches: each batch ends at the byte after its last line, whatever the characters and chunk boundaries; a last line without a newline is a line, left out of endByte', async () => {
  const lines = ['{"a":1}', 'caf\u00e9 \ud83d\ude00', 'crlf\r', '', 'x'.repeat(100), '\u00e9\u00e9'];
  const bytes = Buffer.concat([Buffer.from(lines.join('\n') + '\n'), Buffer.from([0xff, 0x41, 0x0a]), Buffer.from('last, no newline')]);
  for (const chunkSize of [1, 3, 7, 64, 4096]) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
    for (const maxBatch of [1, 2, 5]) {
      const seen: string[] = [];
      for await (const batch of readLineBatches(Readable.from(chunks), maxBatch, { startLine: 10 })) {
        assert.equal(batch.firstLine, 10 + seen.length, 'numbered from the given first line');
        seen.push(...batch.lines);
        // The bytes through this batch are exactly its whole lines and their newlines: a last line the
        // stream ended inside (it may not be whole yet: a file a writer is still writing) is not counted.
        const through = bytes.subarray(0, batch.endByte);
        const newlines = through.reduce((n, byte) => n + (byte === 10 ? 1 : 0), 0);
        const whole = seen.length - (batch.unterminated === undefined ? 0 : 1);
        assert.ok(bytes[batch.endByte - 1] === 10 && newlines === whole, `chunks of ${chunkSize}, batches of ${maxBatch}: endByte ${batch.endByte}`);
        if (batch.unterminated !== undefined) assert.equal(batch.endByte + batch.unterminated, bytes.length, 'the line left out is the rest of the stream');
      }
      assert.equal(seen.length, 8);
      assert.equal(seen[2], 'crlf', 'a \\r before the newline is dropped');
      assert.equal(seen[7], 'last, no newline');
    }
  }
});

test('readLineBatches with stopAt: the lines before the stopping one, then the stream from its first byte', async () => {
  const lines = ['a', 'caf\u00e9', 'crlf\r', '', 'stop \ud83d\ude00 here', 'after', 'last, no newline'];
  const bytes = Buffer.from(lines.join('\n'));
  const stopLine = (word: string) => (text: string, start: number, end: number) => text.slice(start, end).includes(word);
  for (const chunkSize of [1, 3, 7, 4096]) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
    for (const [word, before] of [['stop', 4], ['no newline', 6], ['a', 0], ['absent', 7]] as const) {
      const seen: string[] = [];
      let rest: string | undefined;
      for await (const batch of readLineBatches(Readable.from(chunks), 2, { stopAt: stopLine(word) })) {
        seen.push(...batch.lines);
        if (batch.rest) {
          assert.equal(batch.rest.line, before + 1, `${word}: the stopping line's number`);
          assert.equal(batch.rest.byte, Buffer.byteLength(lines.slice(0, before).map((l) => `${l}\n`).join('')), `${word}: its first byte`);
          const restChunks: Buffer[] = [];
          for await (const chunk of batch.rest.stream) restChunks.push(chunk as Buffer);
          rest = Buffer.concat(restChunks).toString();
        }
      }
      assert.equal(seen.length, before, `chunks of ${chunkSize}, stop at '${word}'`);
      assert.equal(rest, before === lines.length ? undefined : lines.slice(before).join('\n'), `chunks of ${chunkSize}, stop at '${word}': the rest`);
    }
  }
});

test('readLineBatches: a line over maxLineBytes is reported with its length and first bytes, never held whole, and the lines after it are read', async () => {
  const long = (n: number, c: string) => c.repeat(n);
  // Over the bound: within one chunk, across chunks, with a multi-byte character, last without a newline.
  const lines = ['a', long(5000, 'x'), 'b\r', long(3000, '\u00e9'), '', long(2049, 'y') + '\r', 'c', long(4000, 'z')];
  const bytes = Buffer.from(lines.join('\n'));
  for (const chunkSize of [1, 7, 1000, 1 << 16]) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
    for (const maxBatch of [1, 3, 100]) {
      const seen: string[] = [];
      const overlong: { line: number; bytes: number; head: string }[] = [];
      let endByte = 0;
      let unterminated: number | undefined;
      for await (const batch of readLineBatches(Readable.from(chunks), maxBatch, { maxLineBytes: 2048 })) {
        assert.equal(batch.firstLine, 1 + seen.length);
        seen.push(...batch.lines);
        overlong.push(...(batch.overlong ?? []));
        assert.ok(batch.endByte >= endByte);
        endByte = batch.endByte;
        unterminated = batch.unterminated;
      }
      const label = `chunks of ${chunkSize}, batches of ${maxBatch}`;
      assert.deepEqual(seen, ['a', '', 'b', '', '', '', 'c', ''], `${label}: an overlong line stands as an empty one`);
      assert.deepEqual(
        overlong.map((o) => [o.line, o.bytes, o.head.length]),
        [
          [2, 5000, OVERLONG_HEAD_BYTES],
          [4, 6000, OVERLONG_HEAD_BYTES / 2],
          [6, 2049, OVERLONG_HEAD_BYTES],
          [8, 4000, OVERLONG_HEAD_BYTES],
        ],
        label,
      );
      assert.equal(overlong[0]!.head, long(OVERLONG_HEAD_BYTES, 'x'));
      assert.deepEqual([endByte, unterminated], [bytes.length - 4000, 4000], `${label}: the last batch ends before the last line, which has no newline`);
    }
  }
});

test('readLineBatches: a stream that fails inside a line over maxLineBytes hands on the lines before it, ending at that line\'s start (a resume reads it again, and skips nothing), then the error', async () => {
  // One chunk after another as they are asked for, then the failure (a read error, a gzip cut short).
  const failing = (chunks: string[]): Readable => {
    let next = 0;
    return new Readable({
      read() {
        if (next < chunks.length) this.push(Buffer.from(chunks[next++]!));
        else this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
      },
    });
  };
  // The long line starts in the chunk of the lines before it (held back with them), or a chunk of its own.
  for (const chunks of [['a\nb\n' + 'x'.repeat(20), 'x'.repeat(20)], ['a\nb\n', 'x'.repeat(20), 'x'.repeat(20)]]) {
    const batches: { lines: string[]; endByte: number; overlong?: unknown }[] = [];
    await assert.rejects(async () => {
      for await (const { lines, endByte, overlong } of readLineBatches(failing(chunks), 100, { maxLineBytes: 10 })) batches.push({ lines, endByte, ...(overlong ? { overlong } : {}) });
    }, /EIO/);
    const end = batches.at(-1);
    assert.deepEqual(end && { lines: batches.flatMap((batch) => batch.lines), endByte: end.endByte }, { lines: ['a', 'b'], endByte: 4 }, `chunks ${chunks.map((chunk) => chunk.length).join(', ')}`);
  }
});

test('readLineBatches with stopAtOverlong: a line over maxLineBytes stops reading as stopAt does, within a chunk, across chunks or last without a newline', async () => {
  const head = ['a', 'b\r', ''];
  for (const [long, after] of [[`${'x'.repeat(3000)}\ry`, '\nafter\n'], ['z'.repeat(2049), '']] as const) {
    const bytes = Buffer.from(`${head.join('\n')}\n${long}${after}`);
    for (const chunkSize of [1, 7, 1000, 1 << 16]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
      const seen: string[] = [];
      let rest: { line: number; byte: number; text: string } | undefined;
      for await (const batch of readLineBatches(Readable.from(chunks), 2, { maxLineBytes: 2048, stopAtOverlong: true })) {
        assert.equal(batch.overlong, undefined);
        seen.push(...batch.lines);
        if (batch.rest) {
          const restChunks: Buffer[] = [];
          for await (const chunk of batch.rest.stream) restChunks.push(chunk as Buffer);
          rest = { line: batch.rest.line, byte: batch.rest.byte, text: Buffer.concat(restChunks).toString() };
        }
      }
      const label = `${long.length + after.length} bytes after the lines, chunks of ${chunkSize}`;
      assert.deepEqual(seen, ['a', 'b', ''], label);
      assert.deepEqual(rest, { line: 4, byte: 6, text: long + after }, label);
    }
  }
});

test('readLineBatches with stopAt closes the stream it reads when the reader leaves at the last batch, or destroys the rest', async () => {
  const make = () => Readable.from([Buffer.from('a\nb\nstop\nafter\n'), Buffer.from('more\n')]);
  const stop = (text: string, start: number, end: number) => text.slice(start, end) === 'stop';
  // Leaves at the stopping batch without asking for more: the rest was not taken.
  const left = make();
  for await (const batch of readLineBatches(left, 10, { stopAt: stop })) if (batch.rest) break;
  assert.equal(left.destroyed, true, 'left at the last batch');
  // Takes the rest, then destroys it before its end.
  const taken = make();
  let rest: Readable | undefined;
  for await (const batch of readLineBatches(taken, 10, { stopAt: stop })) rest ??= batch.rest?.stream;
  assert.equal(taken.destroyed, false, 'the rest still reads from it');
  rest!.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(taken.destroyed, true, 'destroying the rest closed it');
  // Read to its end, the rest gives every byte after the stopping line's start.
  const whole = make();
  let text = '';
  for await (const batch of readLineBatches(whole, 10, { stopAt: stop })) if (batch.rest) for await (const chunk of batch.rest.stream) text += String(chunk);
  assert.equal(text, 'stop\nafter\nmore\n');
});

test('readLineBatches hands on the lines it has once the stream has nothing more at hand (a live pipe), not when the batch fills or the stream ends', async () => {
  const input = new PassThrough();
  const batches = readLineBatches(input, 1000);
  const seen: string[][] = [];
  let reading: Promise<unknown> | undefined;
  const readNext = (): void => {
    reading = batches.next().then((result) => {
      if (!result.done) seen.push(result.value.lines);
    });
  };
  readNext();
  input.write('a\nb\n');
  input.write('c\npart');
  await until(() => seen.length === 1, 'the lines written so far to come out while the stream stays open', 5000, 1);
  assert.deepEqual(seen, [['a', 'b', 'c']], 'every whole line at hand, the unfinished one held');
  readNext();
  input.write('ial\n');
  await until(() => seen.length === 2, 'the next line to come out as it is completed', 5000, 1);
  assert.deepEqual(seen[1], ['partial']);
  await reading;
  // Left at a batch handed on early: leaving ends (no read of its own waits on the quiet pipe), and closes the stream.
  await batches.return(undefined);
  assert.equal(input.destroyed, true, 'left at a batch: the stream is closed');
});

test('readLineBatches fills its batches from chunks already at hand (a file, a fast pipe): batches of maxBatch, the rest last', async () => {
  const chunk = (from: number): Buffer => Buffer.from(Array.from({ length: 100 }, (_, i) => `${from + i}\n`).join(''));
  const sizes: number[] = [];
  for await (const batch of readLineBatches(Readable.from(Array.from({ length: 10 }, (_, i) => chunk(100 * i))), 256)) sizes.push(batch.lines.length);
  assert.deepEqual(sizes, [256, 256, 256, 232]);
  // A pipe a writer filled before the reader came: the same.
  const piped = new PassThrough({ highWaterMark: 1 << 20 });
  for (let i = 0; i < 10; i++) piped.write(chunk(100 * i));
  piped.end();
  sizes.length = 0;
  for await (const batch of readLineBatches(piped, 256)) sizes.push(batch.lines.length);
  assert.deepEqual(sizes, [256, 256, 256, 232]);
});

test('JsonLinesWriter.close rejects when the output could not be opened (the records never reached it)', async (t) => {
  const folder = tempFolder(t, 'writer');
  const writer = new JsonLinesWriter(createWriteStream(folder)); // a folder: opening it fails with EISDIR
  writer.write({ kind: 'event', userId: 'u', time: 0, type: 'view' });
  await assert.rejects(writer.close(), /EISDIR/);
});

test('countNewlines counts the records of JSON lines: one per \\n, a \\r\\n once, a lone \\r and a last line without its end not at all', () => {
  assert.equal(countNewlines(Buffer.alloc(0)), 0);
  assert.equal(countNewlines(Buffer.from('{"a":1}\n{"a":2}\r\n{"a":3}\r{"a":4}')), 2);
  assert.equal(countNewlines(Buffer.from('\n\n\n')), 3);
});

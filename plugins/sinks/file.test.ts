import { after, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { closeSync, constants as fsConstants, createReadStream, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as zlib, createGzip, gunzipSync, gzipSync } from 'node:zlib';
import type { StreamRecord } from 'tributary';
import { testContext } from 'tributary/testing';
import fileSink from './file.js';

const dir = mkdtempSync(join(tmpdir(), 'tributary-file-sink-'));
const record = (userId: string): StreamRecord => ({ kind: 'event', userId, time: 0, type: 'view' }) as StreamRecord;

for (const name of ['out.jsonl', 'out.jsonl.gz']) {
  test(`${name}: after flush(), every record written is in the file, before close`, async () => {
    const path = join(dir, name);
    const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir }));
    for (let i = 0; i < 100; i++) sink.write(record(`u${i}`));
    await sink.flush?.();
    const bytes = readFileSync(path);
    // A gzip file's member ends at every flush: what a checkpoint covers is complete gzip, readable as is.
    const text = name.endsWith('.gz') ? gunzipSync(bytes).toString() : bytes.toString();
    const lines = text.split('\n').filter((line) => line.length > 0);
    assert.equal(lines.length, 100);
    assert.equal(JSON.parse(lines[99]!).userId, 'u99');
    await sink.close?.();
    if (name.endsWith('.gz')) assert.equal(gunzipSync(readFileSync(path)).toString().split('\n').filter(Boolean).length, 100);
  });
}

test('a record left cut short at the end of the file (a full disk, kill -9) is dropped on resume, and ours never continue a foreign last line', async () => {
  const whole = `${JSON.stringify(record('u1'))}\n`;
  const resumed = join(dir, 'torn.jsonl');
  writeFileSync(resumed, `${whole}{"kind":"event","userId":"u2","ti`);
  const sink = await fileSink.create({ path: resumed, append: false, lazy: false }, testContext({ baseDir: dir, resuming: true }));
  await sink.open?.();
  sink.write(record('u2'));
  await sink.close();
  assert.equal(readFileSync(resumed, 'utf8'), `${whole}${JSON.stringify(record('u2'))}\n`);

  const appended = join(dir, 'foreign.jsonl');
  writeFileSync(appended, 'a last line without its newline');
  const appender = await fileSink.create({ path: appended, append: true, lazy: false }, testContext({ baseDir: dir }));
  await appender.open?.();
  appender.write(record('u3'));
  await appender.close();
  assert.equal(readFileSync(appended, 'utf8'), `a last line without its newline\n${JSON.stringify(record('u3'))}\n`);
});

test('a pipeline run again in the same process replaces its output file, as a new process would', async () => {
  const { runYaml } = await import('tributary/testing');
  const out = join(dir, 'again.jsonl');
  for (let run = 0; run < 2; run++) await runYaml(`sources: [{type: synthetic, events: 100}]\nsinks: [{type: file, path: ${out}}]\n`);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 100);
});

test('a FIFO without a reader: the start waits for one, and a stop while it waits ends the run at once, writing nothing', async (t) => {
  const { runYaml } = await import('tributary/testing');
  const fifo = join(dir, 'out.fifo');
  execFileSync('mkfifo', [fifo]);
  // Should a regression leave an open blocked in libuv's pool, release it so this test file can exit.
  after(() => closeSync(openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)));
  const yaml = `sources: [{type: synthetic, events: 1000}]\nsinks: [{type: file, path: ${fifo}}]\n`;

  await t.test('stopped before it starts', async () => {
    const controller = new AbortController();
    controller.abort();
    const run = await runYaml(yaml, { signal: controller.signal });
    assert.equal(run.stats.eventsIn, 0);
  });
  await t.test('stopped while it waits for a reader', async () => {
    const controller = new AbortController();
    const running = runYaml(yaml, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const run = await running;
    assert.equal(run.stats.eventsIn, 0);
  });
  await t.test('appending (append: true, or resuming), stopped while it waits for a reader: the sink never reads the FIFO for a torn tail', async () => {
    // Reading a FIFO's tail opened it to read, which blocks the process until a writer comes: not even the stop ran.
    for (const plainOrGzip of ['', ', gzip: true']) {
      const controller = new AbortController();
      const running = runYaml(`sources: [{type: synthetic, events: 1000}]\nsinks: [{type: file, path: ${fifo}, append: true${plainOrGzip}}]\n`, { signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      const run = await running;
      assert.equal(run.stats.eventsIn, 0);
    }
  });
  await t.test('lazy (as a dead-letter file), stopped while it waits for a reader: the run ends', async () => {
    // Opened at its first record instead, the open waited in libuv's pool past the stop, and close waited on it.
    const controller = new AbortController();
    const running = runYaml(`sources: [{type: synthetic, events: 1000}]\nsinks: [{type: file, path: ${fifo}, lazy: true}]\n`, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const run = await running;
    assert.equal(run.stats.eventsIn, 0);
  });
  await t.test('with a reader, every record goes through the FIFO', async () => {
    const read = text(createReadStream(fifo));
    const run = await runYaml(yaml);
    assert.equal(run.stats.eventsIn, 1000);
    assert.equal((await read).trim().split('\n').length, 1000);
  });
});

test('gzip: a member the last run left incomplete (kill -9) is completed on resume, with its whole records, and the file stays readable', async () => {
  const line = (userId: string): string => `${JSON.stringify(record(userId))}\n`;
  // What a crash leaves: the members ended at flushes, then part of one no flush ended (its bytes up to a
  // point zlib had written out), the last record cut short.
  const torn = async (text: string): Promise<Buffer> => {
    const gzip = createGzip();
    const chunks: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
    gzip.write(text);
    await new Promise<void>((done) => gzip.flush(zlib.Z_SYNC_FLUSH, () => done()));
    return Buffer.concat(chunks);
  };
  const cut = `${line('u3')}${line('u4')}`.slice(0, -20);
  const files = {
    // this sink's files: a complete member per flush, then the torn one
    members: Buffer.concat([gzipSync(line('u1')), gzipSync(line('u2')), await torn(cut)]),
    // files of the sink before members (one member, sync flushes): every record is in the torn member
    'one member': await torn(`${line('u1')}${line('u2')}${cut}`),
  };
  for (const [kind, bytes] of Object.entries(files)) {
    const path = join(dir, `crashed-${kind.replace(' ', '-')}.jsonl.gz`);
    writeFileSync(path, bytes);
    assert.throws(() => gunzipSync(readFileSync(path)), /unexpected end of file/, `${kind}: a torn file is not readable as it is`);
    const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir, resuming: true }));
    await sink.open?.();
    sink.write(record('u5'));
    await sink.close();
    assert.equal(gunzipSync(readFileSync(path)).toString(), `${line('u1')}${line('u2')}${line('u3')}${line('u5')}`, kind);
  }
});

test('gzip: appending to a large gzip file of another writer does not decompress it whole; its end is said unchecked, ours follow it, readable', async () => {
  const { pino } = await import('pino');
  // Level 9 sets the header's XFL byte: not a member of this sink, so its end is read from the start, within bounds.
  const line = `${JSON.stringify(record('old'))}\n`;
  const text = Buffer.from(line.repeat(Math.ceil((65 << 20) / line.length)));
  const path = join(dir, 'foreign-large.jsonl.gz');
  writeFileSync(path, gzipSync(text, { level: 9 }));
  const logs: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (entry: string) => void logs.push(entry) });
  const sink = await fileSink.create({ path, append: true, lazy: false }, testContext({ baseDir: dir, logger }));
  await sink.open?.();
  assert.equal(logs.length, 1);
  assert.match(logs[0]!, /more than 64 MiB.*could not be checked/);
  sink.write(record('new'));
  await sink.close();
  const all = gunzipSync(readFileSync(path));
  assert.equal(all.length, text.length + line.length);
  assert.equal(all.subarray(text.length).toString(), `${JSON.stringify(record('new'))}\n`);
});

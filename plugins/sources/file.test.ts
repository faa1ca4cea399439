import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, mkdirSync, constants as fsConstants, createWriteStream, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { constants as zlibConstants, crc32, createGzip, deflateRawSync, gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import { ConfigError, defineSink, MetricsHub, originOf, type ClickEvent, type Rejection, type SourcePosition, type StreamRecord } from 'tributary';
import { runYaml, spawnTributary, testContext, tempFolder, until } from 'tributary/testing';
import fileSource from './file.js';
import fileSink from '../sinks/file.js';

const dir = tempFolder({ after }, 'file-source');

test('JSONL: good lines become events; every bad line is dead-lettered with reason, file and line', async () => {
  const path = join(dir, 'mixed.jsonl');
  writeFileSync(
    path,
    [
      '{"user_id":"u1","time":"2024-01-01T00:00:00Z","type":"view","item_id":"i1","price":9.5}',
      '{"user_id":"u1","time":"2024-01-01T00:00:05Z","type":"cart"', // malformed JSON
      '{"time":"2024-01-01T00:00:06Z","type":"view"}', // no user id
      '{"user_id":"u2","type":"view"}', // no timestamp
      '{"user_id":"u2","time":"yesterday","type":"view"}', // unparseable timestamp
      '{"user_id":"u2","time":"2024-01-01T00:00:07Z","type":"view","price":"cheap"}', // wrong type
      '',
      '{"user_id":42,"time":"2024-01-01T00:00:08Z","type":"purchase","price":"19.90"}',
    ].join('\n'),
  );
  const run = await runYaml(`sources: [{type: file, path: ${path}}]\nsinks: [{type: memory}]\n`);
  const events = run.outputs[0]!;
  assert.equal(events.length, 2);
  assert.deepEqual(JSON.parse(JSON.stringify(events[1])), { kind: 'event', userId: '42', time: Date.parse('2024-01-01T00:00:08Z'), type: 'purchase', price: 19.9 });
  assert.deepEqual(
    run.deadLetters.map((d) => [d.line, String(d.reason).split(':')[0]]),
    [[2, 'malformed JSON'], [3, 'user_id'], [4, 'time'], [5, 'time'], [6, 'price']],
  );
  for (const dead of run.deadLetters) {
    assert.equal(dead.file, path);
    assert.equal(typeof dead.raw, 'string');
  }
  assert.equal(run.stats.eventsIn + run.stats.deadLettered, 7, 'every non-blank line is accounted for');
  assert.equal(run.stats.eventsIn, run.stats.recordsOut + run.stats.filtered);
});

test('JSONL: a line of spaces and Unicode whitespace (U+00A0, U+2028) is no blank line: it is dead-lettered, as the progress total counts it', async () => {
  const path = join(dir, 'unicode-spaces.jsonl');
  writeFileSync(path, ['{"user_id":"u1","time":"2024-01-01T00:00:00Z","type":"view"}', ' \u00a0', '\t\u2028', '  \t', ''].join('\n'));
  const run = await runYaml(`sources: [{type: file, path: ${path}}]\nsinks: [{type: memory}]\n`);
  assert.equal(run.stats.eventsIn, 1);
  assert.deepEqual(run.deadLetters.map((d) => [d.line, d.raw]), [[2, ' \u00a0'], [3, '\t\u2028']]);
  assert.equal(await fileSource.countRecords!({ path }, dir), run.stats.eventsIn + run.deadLetters.length, 'the lines counted are the lines read');
});

test('CSV with a header, a custom delimiter, value mapping for event types, and gzip; wrong field counts are dead-lettered', async () => {
  const path = join(dir, 'events.csv.gz');
  const csv = ['ts;visitor;event;item', '1700000000;v1;pv;a', '1700000001;v1;addtocart;a', '1700000002;v1;buy', '1700000003;v2;buy;b;extra', '1700000004;v2;buy;b'].join('\n');
  writeFileSync(path, gzipSync(csv));
  const run = await runYaml(`
sources:
  - type: file
    path: ${path}
    csv: { delimiter: ";" }
    mapping:
      fields: { user_id: visitor, time: ts, type: event, item_id: item }
      event_types: { pv: view, addtocart: cart, buy: purchase }
      time_format: epoch_s
sinks: [{type: memory}]
`);
  assert.deepEqual(
    run.outputs[0]!.map((e) => [e.userId, e.type, e.time]),
    [['v1', 'view', 1700000000000], ['v1', 'cart', 1700000001000], ['v2', 'purchase', 1700000004000]],
  );
  assert.deepEqual(run.deadLetters.map((d) => [d.line, d.reason]), [[4, 'CSV row has 3 fields, expected 4'], [5, 'CSV row has 5 fields, expected 4']]);
});

test('CSV whose header ends in CRLF and rows in LF: every row is an event, none is dead-lettered', async () => {
  const path = join(dir, 'crlf-header.csv');
  writeFileSync(path, 'time,user_id,type\r\n1,u1,view\n2,u2,view\n');
  const run = await runYaml(`sources: [{type: file, path: ${path}, format: csv, mapping: {time_format: epoch_ms}}]\nsinks: [{type: memory}]\n`);
  assert.deepEqual(run.outputs[0]!.map((e) => [e.userId, e.time]), [['u1', 1], ['u2', 2]]);
  assert.deepEqual(run.deadLetters, []);
  assert.equal(run.stats.eventsIn, 2);
});

test('CSV without a header takes the given columns; several files are read in order', async () => {
  const a = join(dir, 'a.csv');
  const b = join(dir, 'b.csv');
  writeFileSync(a, '2024-01-01 00:00:00 UTC,u1,view\n');
  writeFileSync(b, '2024-01-01 00:00:09 UTC,u1,purchase\n');
  const run = await runYaml(`
sources:
  - type: file
    path: [${a}, ${b}]
    csv: { header: false, columns: [t, u, e] }
    mapping: { fields: { user_id: u, time: t, type: e }, time_format: "yyyy-MM-dd HH:mm:ss 'UTC'" }
sinks: [{type: memory}]
`);
  assert.deepEqual(run.outputs[0]!.map((e) => [e.type, e.time]), [['view', Date.UTC(2024, 0, 1)], ['purchase', Date.UTC(2024, 0, 1, 0, 0, 9)]]);
});

test('resuming a file reads on after its position: the lines before it are neither decoded nor dead-lettered again', async () => {
  const { default: file } = await import('./file.js');
  const csv = join(dir, 'resume.csv');
  // Line 3 has a quote inside a field (data, not quoting), line 4 the wrong field count.
  writeFileSync(csv, ['time,user_id,type', '1,u1,view', '2,u"1,view', '3,u1', '4,u1,cart', '5,u2,view'].join('\n'));
  const jsonl = join(dir, 'resume.jsonl');
  writeFileSync(jsonl, ['{"user_id":"u1","time":1,"type":"view"}', '{bad', '{"user_id":"u1","time":3,"type":"cart"}'].join('\n'));
  const cases: [string, Record<string, unknown>, number, string[]][] = [
    [csv, { format: 'csv' }, 4, ['4 cart', '5 view']],
    [jsonl, {}, 2, ['3 cart']],
  ];
  for (const [path, format, resumeAfter, expected] of cases) {
    const context = testContext();
    const source = await file.create({ path, ...format, mapping: { time_format: 'epoch_ms' } } as never, context);
    source.seek!({ fileIndex: 0, line: resumeAfter });
    const events = [];
    for await (const batch of source.read()) events.push(...batch);
    assert.deepEqual(events.map((e) => `${e.time} ${e.type}`), expected, path);
    assert.deepEqual(context.deadLetters, [], `${path}: nothing before line ${resumeAfter} is dead-lettered again`);
  }
});

test('a CSV file resumed at a byte position whose header row cannot be read alone (over a max_record_bytes lowered since) fails naming the file and the cure, as a read from the start does', async () => {
  const path = join(dir, 'resume-header.csv');
  const header = `time,user_id,type${',x'.repeat(600)}`;
  const row = (time: number): string => `${time},u1,view${','.repeat(600)}`;
  writeFileSync(path, `${header}\n${row(1)}\n${row(2)}\n`);
  const source = await fileSource.create({ path, format: 'csv', max_record_bytes: 1024, mapping: { time_format: 'epoch_ms' } } as never, testContext());
  source.seek!({ fileIndex: 0, line: 2, byte: Buffer.byteLength(`${header}\n${row(1)}\n`) });
  // Was: "the CSV header row is unreadable: 1217 bytes, ..." with neither the file nor the cure.
  await assert.rejects(
    async () => {
      for await (const _batch of source.read());
    },
    (error: Error & { code?: string }) =>
      error.code === 'TRIB_ERR_SOURCE_INPUT' &&
      error.message.startsWith(`${path}: the CSV header row is unreadable: 1217 bytes, longer than max_record_bytes (1024); fix the file, or name its columns in \`csv.columns\``),
  );
});

test('JSON lines resume at the byte after their position\'s line; a position that is not at a line start resumes by line count', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'seek.jsonl');
  const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ user_id: `u\u00e9${i % 7}`, time: i, type: i % 11 ? 'view' : 'cart' }));
  lines[1234] = '{bad';
  writeFileSync(path, `${lines.join('\n')}\n`);
  const config = { path, mapping: { time_format: 'epoch_ms' } } as never;
  // One run, stopped after its first batches: the position it would checkpoint.
  const first = await file.create(config, testContext({ batchSize: 1000 }));
  let batches = 0;
  // Batches of events: the header row comes as an empty one (no event, a position past it).
  for await (const batch of first.read()) if (batch.length > 0 && ++batches === 2) break;
  const position = first.position!();
  assert.equal(position.line, 2000);
  assert.equal(position.byte, Buffer.byteLength(`${lines.slice(0, 2000).join('\n')}\n`), 'the byte after line 2000');
  // A newline added before the position, same size: counting lines would now start a line early. (Past
  // the first KiB: a file whose first bytes changed is another file, read from its start.)
  writeFileSync(path, `${lines.slice(0, 100).join('\n')}\n${lines[100]!.slice(0, 3)}\n${lines[100]!.slice(4)}\n${lines.slice(101).join('\n')}\n`);
  // Resumed: the rest, exactly (read from the byte, not by counting lines), nothing dead-lettered again.
  const context = testContext({ batchSize: 1000 });
  const resumed = await file.create(config, context);
  resumed.seek!(position);
  const after = [];
  for await (const batch of resumed.read()) after.push(...batch);
  assert.deepEqual(after.map((e) => e.time), Array.from({ length: 3000 }, (_, i) => 2000 + i));
  assert.deepEqual(context.deadLetters, []);
  // A byte position that is not at a line start (the file changed): the line count decides (here one
  // line early, since a line was added before the position).
  const warned: unknown[] = [];
  const fallback = testContext({ batchSize: 1000 });
  const logged = { ...fallback, logger: { ...fallback.logger, warn: (...args: unknown[]) => void warned.push(args) } } as typeof fallback;
  const moved = await file.create(config, logged);
  moved.seek!({ ...position, byte: (position.byte as number) - 3 });
  const again = [];
  for await (const batch of moved.read()) again.push(...batch);
  assert.deepEqual(again.map((e) => e.time), Array.from({ length: 3001 }, (_, i) => 1999 + i));
  assert.equal(warned.length, 1);
});

test('CSV resumes at the byte after its position\'s row, with the header\'s columns, past a BOM, CRLF and a quoted newline', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'seek.csv');
  const header = '\ufefftime,user_id,type,brand';
  const rows = Array.from({ length: 3000 }, (_, i) => `${i},u\u00e9${i % 7},${i % 11 ? 'view' : 'cart'},"brand ${i}"`);
  rows[10] = '10,u1,view,"two\nlines"';
  rows[1500] = '1500,u1,view'; // a field short: dead-lettered by the first run only
  const text = (lines: string[]): string => `${header}\r\n${lines.join('\r\n')}\r\n`;
  writeFileSync(path, text(rows));
  const config = { path, mapping: { time_format: 'epoch_ms', attributes: ['brand'] } } as never;
  const firstContext = testContext({ batchSize: 1000 });
  const first = await file.create(config, firstContext);
  let batches = 0;
  // Batches of events: the header row comes as an empty one (no event, a position past it).
  for await (const batch of first.read()) if (batch.length > 0 && ++batches === 2) break;
  const position = first.position!();
  assert.equal(firstContext.deadLetters.length, 1);
  // 2,000 events need 2,001 rows (one was dead-lettered); the header and the quoted newline add a line each.
  assert.equal(position.line, 2003);
  assert.equal(position.byte, Buffer.byteLength(text(rows.slice(0, 2001))), 'the byte after the 2,001st row');
  // A newline put inside a quoted field before the position (past the first KiB, which tells this file
  // from another), same size: counting lines would go wrong.
  const changed = [...rows];
  changed[100] = changed[100]!.replace('brand', 'bra\nd');
  writeFileSync(path, text(changed));
  const context = testContext({ batchSize: 500 });
  const resumed = await file.create(config, context);
  resumed.seek!(position);
  const after = [];
  for await (const batch of resumed.read()) {
    // The position goes on counting the file's lines and bytes from the resume point.
    if (after.length === 0) assert.deepEqual([resumed.position!().line, resumed.position!().byte], [2503, Buffer.byteLength(text(changed.slice(0, 2501)))]);
    after.push(...batch);
  }
  assert.deepEqual(after.map((e) => e.time), Array.from({ length: 999 }, (_, i) => 2001 + i));
  assert.equal(after[0]!.attrs?.brand, 'brand 2001', 'columns from the header row');
  assert.deepEqual(context.deadLetters, []);
});

test('CSV whose line ends vary (a CRLF header, then rows ending in \\n, \\r\\n and \\r) resumes at its position\'s byte, after any of them, at the right lines', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'mixed-line-ends.csv');
  const rows = Array.from({ length: 3000 }, (_, i) => `${i},u${i % 7},${i % 11 ? 'view' : 'cart'},b${i}`);
  rows[10] = '10,u1,view,"two\r\nlines"'; // quoted (the split path hands over here), and one line more from here on
  rows[1500] = '1500,u1,view'; // a field short: dead-lettered by the first run only
  // LF and CRLF rows first (the split path reads them), then each kind in turn.
  const lineEnd = (row: number): string => (row < 1000 ? (row % 2 ? '\r\n' : '\n') : ['\r', '\n', '\r\n'][row % 3]!);
  const text = (upTo: number): string => `time,user_id,type,brand\r\n${rows.slice(0, upTo).map((row, i) => row + lineEnd(i)).join('')}`;
  writeFileSync(path, text(rows.length));
  const config = { path, mapping: { time_format: 'epoch_ms', attributes: ['brand'] } } as never;
  const lineOf = (row: number): number => row + (row > 10 ? 3 : 2);
  const firstContext = testContext({ batchSize: 1000 });
  const first = await file.create(config, firstContext);
  const read = [];
  for await (const batch of first.read()) if (read.push(...batch) >= 2000) break;
  const position = first.position!();
  const last = read[read.length - 1]!;
  assert.equal(lineEnd(last.time), '\r', 'the position follows a row that ends in a lone \\r');
  assert.deepEqual(read.map((e) => [e.time, originOf(e)?.line]), rows.slice(0, last.time + 1).flatMap((_, i) => (i === 1500 ? [] : [[i, lineOf(i)]])));
  assert.deepEqual(firstContext.deadLetters.map((d) => [d.origin?.line, d.reason]), [[lineOf(1500), 'CSV row has 3 fields, expected 4']]);
  assert.deepEqual([position.line, position.byte], [lineOf(last.time), Buffer.byteLength(text(last.time + 1))], 'the line and byte after that row');
  const warned: unknown[] = [];
  const context = testContext({ batchSize: 1000 });
  const logged = { ...context, logger: { ...context.logger, warn: (...args: unknown[]) => void warned.push(args) } } as typeof context;
  const resumed = await file.create(config, logged);
  resumed.seek!(position);
  const after = [];
  for await (const batch of resumed.read()) after.push(...batch);
  assert.deepEqual(warned, [], 'a \\r line end before the position is a line start: resumed from the byte');
  assert.deepEqual(after.map((e) => [e.time, originOf(e)?.line, e.attrs?.brand]), rows.slice(last.time + 1).map((_, i) => [last.time + 1 + i, lineOf(last.time + 1 + i), `b${last.time + 1 + i}`]));
  assert.deepEqual(context.deadLetters, []);
  // A byte between the \r and the \n of a \r\n is no line start (the file changed): the line count decides.
  assert.equal(lineEnd(1001), '\r\n');
  const inside = await file.create(config, logged);
  inside.seek!({ ...position, line: lineOf(1001), byte: Buffer.byteLength(text(1002)) - 1 });
  let firstTime: number | undefined;
  for await (const batch of inside.read()) firstTime ??= batch[0]?.time;
  assert.equal(warned.length, 1);
  assert.equal(firstTime, 1002);
});

test('CSV: a run resumed after LF rows were appended to a CRLF file reads them as a run from the start does', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'appended-lf.csv');
  writeFileSync(path, 'time,user_id,type\r\n1,u1,view\r\n2,u2,view\r\n');
  const config = { path, mapping: { time_format: 'epoch_ms' } } as never;
  const read = async (position?: Record<string, unknown>): Promise<{ events: [number, number | undefined][]; deadLetters: number; position: Record<string, unknown> }> => {
    const context = testContext();
    const source = await file.create(config, context);
    if (position) source.seek!(position as never);
    const events: [number, number | undefined][] = [];
    for await (const batch of source.read()) events.push(...batch.map((e): [number, number | undefined] => [e.time, originOf(e)?.line]));
    return { events, deadLetters: context.deadLetters.length, position: source.position!() as Record<string, unknown> };
  };
  const before = await read();
  assert.deepEqual(before.events, [[1, 2], [2, 3]]);
  appendFileSync(path, '3,u3,view\n4,u4,view\n');
  const resumed = await read(before.position);
  const fresh = await read();
  assert.deepEqual(resumed.events, [[3, 4], [4, 5]], 'the appended rows, at their lines');
  assert.deepEqual(fresh.events, [...before.events, ...resumed.events], 'from the start: the same rows, no dead letter of them all');
  assert.deepEqual([resumed.deadLetters, fresh.deadLetters], [0, 0]);
});

test('CSV: the last position covers a broken row at the end of the file, so a resumed run does not dead-letter it again', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'broken-end.csv');
  const text = 'time,user_id,type,brand\n1,u1,view,"a"\n2,u2,view,b\n3,u3,view,"never closed\n4,u4,view,c\n';
  writeFileSync(path, text);
  const config = { path, mapping: { time_format: 'epoch_ms' } } as never;
  const context = testContext();
  const source = await file.create(config, context);
  let position: Record<string, unknown> | undefined;
  const events = [];
  for await (const batch of source.read()) {
    events.push(...batch);
    position = source.position!();
  }
  assert.deepEqual(events.map((e) => e.time), [1, 2, 4], 'the row after the broken one is read');
  assert.equal(context.deadLetters.length, 1);
  assert.deepEqual([position?.line, position?.byte], [5, Buffer.byteLength(text)], 'the position with the last events is the end of the file');
  const resumedContext = testContext();
  const resumed = await file.create(config, resumedContext);
  resumed.seek!(position!);
  for await (const batch of resumed.read()) assert.deepEqual(batch, []);
  assert.deepEqual(resumedContext.deadLetters, []);
});

test('a run that read every file ends at the last file\'s last line: resumed from there, it reads what was appended since', async () => {
  const { default: file } = await import('./file.js');
  const first = join(dir, 'append-1.jsonl');
  const last = join(dir, 'append-2.jsonl');
  const line = (time: number): string => `${JSON.stringify({ user_id: 'u1', time, type: 'view' })}\n`;
  writeFileSync(first, line(1));
  writeFileSync(last, line(2) + line(3));
  const config = { path: [first, last], mapping: { time_format: 'epoch_ms' } } as never;
  const read = async (position?: Record<string, unknown>): Promise<{ times: number[]; position: Record<string, unknown> }> => {
    const source = await file.create(config, testContext());
    if (position) source.seek!(position as never);
    const times: number[] = [];
    for await (const batch of source.read()) times.push(...batch.map((e) => e.time));
    return { times, position: source.position!() as Record<string, unknown> };
  };
  const run = await read();
  assert.deepEqual(run.times, [1, 2, 3]);
  const { inode, head, headBytes, ...where } = run.position;
  assert.deepEqual(where, { file: last, fileIndex: 1, line: 2, byte: Buffer.byteLength(line(2) + line(3)) });
  assert.deepEqual([typeof inode, typeof head, headBytes], ['string', 'string', Buffer.byteLength(line(2) + line(3))], 'and which file that is');
  appendFileSync(last, line(4) + line(5));
  const resumed = await read(run.position);
  assert.deepEqual(resumed.times, [4, 5], 'only the appended lines');
  assert.deepEqual((await read(resumed.position)).times, [], 'nothing new: nothing read');
});

test('a resume finds its file by name: in a list whose older files were taken off, or not at all (a new file is read from its start, not from the old one\'s line)', async () => {
  const { default: file } = await import('./file.js');
  const line = (time: number): string => `${JSON.stringify({ user_id: 'u1', time, type: 'view' })}\n`;
  const october = join(dir, 'rename-oct.jsonl');
  const november = join(dir, 'rename-nov.jsonl');
  const december = join(dir, 'rename-dec.jsonl');
  writeFileSync(october, line(1) + line(2));
  writeFileSync(november, line(3) + line(4) + line(5));
  writeFileSync(december, line(6) + line(7) + line(8) + line(9));
  const read = async (path: string | string[], position?: Record<string, unknown>): Promise<{ times: number[]; position: Record<string, unknown> }> => {
    const source = await file.create({ path, mapping: { time_format: 'epoch_ms' } } as never, testContext({ resuming: position !== undefined }));
    if (position) source.seek!(position as never);
    const times: number[] = [];
    for await (const batch of source.read()) times.push(...batch.map((e) => e.time));
    return { times, position: source.position!() as Record<string, unknown> };
  };
  // Stopped after two lines of November, then October is taken off the list and December added.
  const first = await read([october, november]);
  assert.deepEqual(first.times, [1, 2, 3, 4, 5]);
  const midNovember = { file: november, fileIndex: 1, line: 2, byte: Buffer.byteLength(line(3) + line(4)) };
  assert.deepEqual((await read([november, december], midNovember)).times, [5, 6, 7, 8, 9], 'on in November, then December');
  // The pipeline now names December alone: November's position is no position in it.
  assert.deepEqual((await read(december, first.position)).times, [6, 7, 8, 9], 'December whole');
  assert.deepEqual((await read([december], midNovember)).times, [6, 7, 8, 9], 'December whole, from a position mid-file too');
  // The same file reached through a link to its folder (the pipeline started by another path) is that file.
  const linked = join(dir, 'rename-link');
  symlinkSync(dir, linked);
  assert.deepEqual((await read(join(linked, 'rename-nov.jsonl'), midNovember)).times, [5], 'on in November');
});

test('a file renamed under a checkpoint (log rotation, stopped or running) resumes where it was, under its new name; the new file at its path is read from its start', async () => {
  const { default: file } = await import('./file.js');
  const rotation = mkdtempSync(join(dir, 'rotation-'));
  const log = join(rotation, 'app.log');
  const rotated = join(rotation, 'app.log.1');
  const line = (time: number): string => `${JSON.stringify({ user_id: `u${time % 13}`, time, type: 'view' })}\n`;
  const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => line(from + i)).join('');
  type Read = { times: number[]; position: Record<string, unknown>; logged: string[] };
  /** Reads `path` (resumed from `position`), stopping after `batches` batches; `between` runs after the first. */
  const read = async (path: string | string[], position?: Record<string, unknown>, batches = Infinity, between?: () => void): Promise<Read> => {
    const logged: string[] = [];
    const base = testContext({ batchSize: 1000, resuming: position !== undefined });
    const log = (...args: unknown[]): void => void logged.push(String(args.at(-1)));
    const context = { ...base, logger: { ...base.logger, info: log, warn: log } } as typeof base;
    const source = await file.create({ path, mapping: { time_format: 'epoch_ms' } } as never, context);
    if (position) source.seek!(position as never);
    const times: number[] = [];
    let read = 0;
    for await (const batch of source.read()) {
      times.push(...batch.map((e) => e.time));
      if (++read === 1) between?.();
      if (read === batches) break;
    }
    return { times, position: JSON.parse(JSON.stringify(source.position!())) as Record<string, unknown>, logged };
  };
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

  // Stopped after 2,000 of 3,000 lines; then rotated: app.log -> app.log.1, a new app.log.
  writeFileSync(log, lines(0, 3000));
  const stopped = await read(log, undefined, 2);
  renameSync(log, rotated);
  writeFileSync(log, lines(10_000, 10_500));
  const resumed = await read([rotated, log], stopped.position);
  assert.deepEqual(resumed.times, [...range(2000, 3000), ...range(10_000, 10_500)], 'the rest of the rotated file, then the new one whole');
  assert.ok(resumed.logged.some((message) => /renamed/.test(message)), resumed.logged.join('; '));
  // A pipeline that names app.log alone: the new app.log is another file, read from its start (not from line 2,000).
  const alone = await read(log, stopped.position);
  assert.deepEqual(alone.times, range(10_000, 10_500));
  assert.ok(alone.logged.some((message) => /no longer at its path \(rotated or replaced/.test(message)), alone.logged.join('; '));

  // Renamed while it is read: reading goes on in the file it opened, and the position is still that file's.
  writeFileSync(log, lines(0, 3000));
  rmSync(rotated);
  const running = await read(log, undefined, 2, () => {
    renameSync(log, rotated);
    writeFileSync(log, lines(10_000, 10_500));
  });
  assert.deepEqual(running.times, range(0, 2000));
  assert.deepEqual((await read([rotated, log], running.position)).times, [...range(2000, 3000), ...range(10_000, 10_500)]);
});

test('a checkpoint taken as the next file opens names the file read to its end: a rotation before the resume loses neither file', async () => {
  const { default: file } = await import('./file.js');
  const rotation = mkdtempSync(join(dir, 'between-'));
  const [log, log1, log2] = ['app.log', 'app.log.1', 'app.log.2'].map((name) => join(rotation, name)) as [string, string, string];
  const line = (time: number): string => `${JSON.stringify({ user_id: 'u1', time, type: 'view' })}\n`;
  const config = (path: string[]): never => ({ path, mapping: { time_format: 'epoch_ms' } }) as never;
  writeFileSync(log1, line(1) + line(2));
  // The next file is a FIFO here only so its open waits (for a writer) while the position is taken.
  execFileSync('mkfifo', [log]);
  const source = await file.create(config([log1, log]), testContext({ batchSize: 1000 }));
  const batches = source.read()[Symbol.asyncIterator]();
  const times = async (next: Promise<IteratorResult<readonly { time: number }[]>>): Promise<number[] | undefined> => {
    const result = await next;
    return result.done === true ? undefined : result.value.map((event) => event.time);
  };
  assert.deepEqual(await times(batches.next()), [1, 2]);
  const rest = batches.next();
  // A writer can open the FIFO (without waiting) once the source is opening it to read.
  let writer: number | undefined;
  while (writer === undefined) {
    try {
      writer = openSync(log, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const position = JSON.parse(JSON.stringify(source.position!())) as Record<string, unknown>;
  writeSync(writer, line(5));
  closeSync(writer);
  assert.deepEqual(await times(rest), [5], 'a FIFO is read as it is written');
  assert.equal((await batches.next()).done, true);
  const { inode, head, headBytes, ...where } = position;
  assert.deepEqual(where, { file: log1, fileIndex: 0, line: 2, byte: Buffer.byteLength(line(1) + line(2)) }, 'the end of the file read');
  assert.equal(inode, `${statSync(log1, { bigint: true }).dev}:${statSync(log1, { bigint: true }).ino}`, 'and which file that is');

  // Killed there; then rotated: app.log.1 -> app.log.2, app.log (the next file, not yet read: lines 3 and 4) -> app.log.1, a new app.log.
  renameSync(log1, log2);
  rmSync(log);
  writeFileSync(log1, line(3) + line(4));
  writeFileSync(log, line(10));
  const resumed = await file.create(config([log2, log1, log]), testContext({ batchSize: 1000, resuming: true }));
  resumed.seek!(position as never);
  const resumedTimes: number[] = [];
  for await (const batch of resumed.read()) resumedTimes.push(...batch.map((event) => event.time));
  assert.deepEqual(resumedTimes, [3, 4, 10], 'the file that was next, whole, then the new one; nothing read again');
});

test('a file at the checkpoint\'s path with its inode but other contents (copytruncate, a reused inode) is read from its start; one with its first bytes but shorter than the position too', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'reused.log');
  const line = (time: number): string => `${JSON.stringify({ user_id: `u${time % 13}`, time, type: 'view' })}\n`;
  const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => line(from + i)).join('');
  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
  const read = async (position?: Record<string, unknown>, batches = Infinity): Promise<{ times: number[]; position: Record<string, unknown> }> => {
    const source = await file.create({ path, mapping: { time_format: 'epoch_ms' } } as never, testContext({ batchSize: 1000, resuming: position !== undefined }));
    if (position) source.seek!(position as never);
    const times: number[] = [];
    let read = 0;
    for await (const batch of source.read()) {
      times.push(...batch.map((e) => e.time));
      if (++read === batches) break;
    }
    return { times, position: source.position!() as Record<string, unknown> };
  };
  writeFileSync(path, lines(0, 3000));
  const { position } = await read(undefined, 2);
  const { ino } = statSync(path);
  // Truncated and written anew in place: the same inode, as a filesystem reusing a freed one gives.
  writeFileSync(path, lines(50_000, 53_000));
  assert.equal(statSync(path).ino, ino);
  assert.deepEqual((await read(position)).times, range(50_000, 53_000), 'other first bytes: another file, read whole');
  // The same first lines again, but fewer than the position had read: written anew, read from its start.
  writeFileSync(path, lines(0, 1500));
  assert.deepEqual((await read(position)).times, range(0, 1500));
  // The same file put back by a copy (another inode): resumed by its first bytes at its path.
  writeFileSync(`${path}.copy`, lines(0, 3000));
  renameSync(`${path}.copy`, path);
  assert.notEqual(statSync(path).ino, ino);
  assert.deepEqual((await read(position)).times, range(2000, 3000));
});

test('a gzip file cut short (or corrupt) is bad input: its whole lines are delivered, the rest is one dead letter, and the next file is read', async () => {
  const { default: file } = await import('./file.js');
  const lines = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ user_id: `u${i % 97}`, time: i, type: 'view', item_id: `item-${(i * 7919) % 100_003}` }));
  const whole = gzipSync(`${lines.join('\n')}\n`);
  const cut = join(dir, 'cut.jsonl.gz');
  writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
  const garbage = join(dir, 'garbage.jsonl.gz');
  writeFileSync(garbage, Buffer.from('not gzip at all\n'));
  const next = join(dir, 'after-cut.jsonl');
  writeFileSync(next, `${JSON.stringify({ user_id: 'z', time: 1e9, type: 'cart' })}\n`);
  const context = testContext({ batchSize: 1000 });
  const source = await file.create({ path: [cut, garbage, next], mapping: { time_format: 'epoch_ms' } } as never, context);
  const events = [];
  for await (const batch of source.read()) events.push(...batch);
  const fromCut = events.filter((e) => e.userId !== 'z');
  assert.ok(fromCut.length > 1000 && fromCut.length < 20_000, `${fromCut.length} events before the cut`);
  assert.deepEqual(fromCut.map((e) => e.time), Array.from({ length: fromCut.length }, (_, i) => i), 'every whole line before the cut, in order');
  assert.equal(events.at(-1)?.userId, 'z', 'the next file is read');
  assert.equal(context.deadLetters.length, 2);
  assert.equal(context.deadLetters[0]!.origin?.file, cut);
  assert.equal(context.deadLetters[0]!.origin?.line, fromCut.length + 1);
  assert.match(context.deadLetters[0]!.reason, new RegExp(`^unreadable gzip data after line ${fromCut.length} \\(unexpected end of file`));
  assert.equal(context.deadLetters[1]!.origin?.file, garbage);
  assert.match(context.deadLetters[1]!.reason, /^unreadable gzip data after line 0 \(incorrect header check/);

  // A cut-short last file, resumed from where a run ended: read to its cut again, its rest is not dead-lettered twice.
  const alone = { path: cut, mapping: { time_format: 'epoch_ms' } } as never;
  const first = testContext({ batchSize: 1000 });
  const run = await file.create(alone, first);
  for await (const batch of run.read()) void batch;
  assert.equal(first.deadLetters.length, 1);
  const position = run.position!();
  assert.equal(position.unreadable, true);
  const resumedContext = testContext({ batchSize: 1000, resuming: true });
  const resumed = await file.create(alone, resumedContext);
  resumed.seek!(position);
  let read = 0;
  for await (const batch of resumed.read()) read += batch.length;
  assert.deepEqual([read, resumedContext.deadLetters.length], [0, 0]);
});

test('CSV: a column the mapping names that the header lacks is said once per file, with the nearest column (a misspelt price read as no price, silently)', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'columns.csv');
  writeFileSync(path, 'user,ts,kind,price,brand\nu1,1000,view,9.5,acme\nu1,2000,cart,9.5,acme\n');
  const read = async (mapping: object, csv: object = {}): Promise<{ events: number; warned: string[] }> => {
    const warned: string[] = [];
    const base = testContext();
    const context = { ...base, logger: { ...base.logger, warn: (_fields: unknown, message: string) => void warned.push(message) } } as typeof base;
    const source = await file.create({ path, csv, mapping: { time_format: 'epoch_ms', ...mapping } } as never, context);
    let events = 0;
    for await (const batch of source.read()) events += batch.length;
    return { events, warned };
  };
  const misspelt = await read({ fields: { user_id: 'user', time: 'ts', type: 'kind', price: 'Price' }, attributes: ['brand', 'colour'] });
  assert.equal(misspelt.events, 2, 'the rows are still read');
  assert.deepEqual(misspelt.warned, [
    `${path}: the CSV has no column for fields.price 'Price' (did you mean 'price'?), attributes 'colour': every row reads it as absent (an optional field stays empty in every event; without user_id, time or type each row is dead-lettered); its columns: user, ts, kind, price, brand`,
  ]);
  // A required field left at its default name is checked too; with default_type, no type column is needed.
  const defaults = await read({ fields: { time: 'ts' }, default_type: 'view' });
  assert.equal(defaults.events, 0);
  assert.deepEqual(defaults.warned.map((message) => message.split(': every row')[0]), [`${path}: the CSV has no column for fields.user_id 'user_id'`]);
  const fits = await read({ fields: { user_id: 'user', time: 'ts', type: 'kind', price: 'price' }, attributes: ['brand'] });
  assert.deepEqual(fits.warned, []);
  // A list of fields read in turn (user_id, session_id) is said by each column it names that the file lacks.
  const listed = await read({ fields: { user_id: ['customer', 'user'], session_id: ['session', 'visit'], time: 'ts', type: 'kind' } });
  assert.equal(listed.events, 2);
  assert.deepEqual(listed.warned.map((message) => message.split(': every row')[0]), [`${path}: the CSV has no column for fields.user_id[0] 'customer', fields.session_id[0] 'session', fields.session_id[1] 'visit'`]);
  // Columns given in the config (no header row) are checked as a header is.
  const named = await read({ fields: { user_id: 'user', time: 'ts', type: 'kind' } }, { header: false, columns: ['usr', 'ts', 'kind', 'price', 'brand'] });
  assert.deepEqual(named.warned.map((message) => message.split(': every row')[0]), [`${path}: the CSV has no column for fields.user_id 'user'`]);
  // A ';'-separated file read with the default ',': its header is one column, and the warning says which delimiter it holds.
  writeFileSync(path, 'user;ts;kind\nu1;1000;view\n');
  const semicolons = await read({ fields: { user_id: 'user', time: 'ts', type: 'kind' } });
  assert.match(semicolons.warned[0]!, /its columns: user;ts;kind \(one column, with ";" in it: is the file ";"-separated\? set csv\.delimiter: ";"\)$/);
  // Tab-separated, read with ';': the hint names the tab, as YAML writes it.
  writeFileSync(path, 'user\tts\tkind\nu1\t1000\tview\n');
  const tabs = await read({ fields: { user_id: 'user', time: 'ts', type: 'kind' } }, { delimiter: ';' });
  assert.match(tabs.warned[0]!, /set csv\.delimiter: "\\t"\)$/);
  assert.doesNotMatch(misspelt.warned[0]!, /one column/, 'a header of several columns gets no such hint');
});

test('an event type the mapping does not know (an export\'s own names: page_view, add_to_cart) is said once per source, over all its files, with what to do; types event_types names, itself included, are not (was: read silently, no view, cart or purchase in any feature)', async () => {
  const first = join(dir, 'types-1.jsonl');
  const second = join(dir, 'types-2.jsonl');
  const line = (time: number, type: string): string => JSON.stringify({ user_id: 'u1', time, type });
  writeFileSync(first, `${[line(1, 'page_view'), line(2, 'add_to_cart'), line(3, 'checkout_completed'), line(4, 'page_view'), line(5, 'view')].join('\n')}\n`);
  writeFileSync(second, `${[line(6, 'page_view'), line(7, 'search'), line(8, 'add_to_cart')].join('\n')}\n`);
  const read = await readFiles({ path: [first, second], mapping: { time_format: 'epoch_ms', event_types: { checkout_completed: 'purchase', search: 'search' } } });
  assert.deepEqual(read.events, ['1 page_view', '2 add_to_cart', '3 purchase', '4 page_view', '5 view', '6 page_view', '7 search', '8 add_to_cart'], 'the events are read as before');
  assert.deepEqual(read.warned, ['page_view', 'add_to_cart'].map(
    (type) => `event type "${type}" is none of the known types (view, cart, remove_from_cart, purchase) and mapping.event_types does not name it: the feature operators count it only as an event, and no model takes it for a purchase; map it in mapping.event_types to the known type it stands for ("${type}": one of view, cart, remove_from_cart, purchase), or to itself ("${type}": "${type}") to keep it as it is`,
  ));
  // CSV rows go through the same mapper.
  const csv = join(dir, 'types.csv');
  writeFileSync(csv, 'user_id,time,type\nu1,1,Page View\nu1,2,view\n');
  assert.deepEqual((await readFiles({ path: csv })).warned.map((message) => message.split(' is none')[0]), ['event type "Page View"']);
});

test('JSON lines: an optional field the mapping names that no event had (a nested price, a misspelt category) is said once per file, with the field the records have (was: every event without a price, silently)', async () => {
  const path = join(dir, 'nested-price.jsonl');
  const line = (time: number): string => JSON.stringify({ user_id: 'u1', time, type: 'view', product: { price: 9.5, category: 'shoes' } });
  writeFileSync(path, `${[1, 2, 3].map(line).join('\n')}\n`);
  const read = await readFiles({ path, mapping: { time_format: 'epoch_ms', fields: { price: 'price', category: 'product.category' } } });
  assert.deepEqual(read.events, ['1 view', '2 view', '3 view'], 'read as before, without a price');
  assert.deepEqual(read.warned, [`${path}: none of the 3 events had fields.price 'price' (the records have product.price), so no event gets a price; name the field the records have (a nested one by its path: user.id, items[0].price)`]);
});

test('a FIFO resumed from a checkpoint is read from the start of its new stream: a line count of the stream before skips nothing of it', async () => {
  const { default: file } = await import('./file.js');
  const fifo = join(dir, 'events.fifo');
  execFileSync('mkfifo', [fifo]);
  const line = (time: number): string => `${JSON.stringify({ user_id: `u${time}`, time, type: 'view' })}\n`;
  /** One writer's stream through the FIFO: its lines, then its end. */
  const read = async (times: number[], position?: Record<string, unknown>): Promise<{ times: number[]; position: Record<string, unknown> }> => {
    const source = await file.create({ path: fifo, mapping: { time_format: 'epoch_ms' } } as never, testContext({ resuming: position !== undefined }));
    if (position) source.seek!(position as never);
    const writer = createWriteStream(fifo);
    writer.end(times.map(line).join(''));
    const read: number[] = [];
    for await (const batch of source.read()) read.push(...batch.map((e) => e.time));
    return { times: read, position: source.position!() as Record<string, unknown> };
  };
  const first = await read([1, 2, 3, 4, 5]);
  assert.deepEqual(first.times, [1, 2, 3, 4, 5]);
  assert.deepEqual([first.position.file, first.position.line], [fifo, 5]);
  // The next writer's stream: fewer lines than the first one's, all of them new.
  const resumed = await read([6, 7, 8], first.position);
  assert.deepEqual(resumed.times, [6, 7, 8]);
  assert.equal(resumed.position.line, 3, 'the lines of this stream');
});

/** Reads `config`'s files to their end (resumed from `position`, if given): the events as `time type price`, the dead letters' lines, the warnings and the last position. */
async function readFiles(config: Record<string, unknown>, position?: Record<string, unknown>): Promise<{ events: string[]; deadLetters: (number | undefined)[]; warned: string[]; position: Record<string, unknown> }> {
  const { default: file } = await import('./file.js');
  const warned: string[] = [];
  const base = testContext({ resuming: position !== undefined });
  const context = { ...base, logger: { ...base.logger, warn: (_fields: unknown, message: string) => void warned.push(message) } } as typeof base;
  const source = await file.create({ mapping: { time_format: 'epoch_ms' }, ...config } as never, context);
  if (position) source.seek!(position as never);
  const events: string[] = [];
  for await (const batch of source.read()) events.push(...batch.map((e) => `${e.time} ${e.type}${e.price === undefined ? '' : ` ${e.price}`}`));
  return { events, deadLetters: base.deadLetters.map((d) => d.origin?.line), warned, position: source.position!() as Record<string, unknown> };
}

test('a last line a writer is still writing (no line end yet) is read at the end of the file, but the position stays before it: a resumed run reads it whole, nothing of it lost', async () => {
  const jsonl = join(dir, 'mid-write.jsonl');
  const line = (time: number, type = 'view'): string => JSON.stringify({ user_id: `u${time}`, time, type });
  writeFileSync(jsonl, `${line(1)}\n${line(2, 'cart').slice(0, 30)}`);
  const first = await readFiles({ path: jsonl });
  assert.deepEqual(first.events, ['1 view']);
  assert.deepEqual(first.deadLetters, [2], 'the end of the file is the end of this run\'s input: its cut line is a record, bad JSON');
  assert.deepEqual([first.position.line, first.position.byte, first.position.unterminated], [1, Buffer.byteLength(`${line(1)}\n`), 30], 'the position is before the cut line');
  appendFileSync(jsonl, `${line(2, 'cart').slice(30)}\n${line(3)}\n`);
  const resumed = await readFiles({ path: jsonl }, first.position);
  assert.deepEqual(resumed.events, ['2 cart', '3 view'], 'the line completed since, whole, and the next');
  assert.equal(resumed.warned.length, 1, 'said: the record read from its first part is not taken back');
  assert.deepEqual([resumed.position.line, resumed.position.unterminated], [3, undefined]);

  // CSV: split on the delimiter, and read by the quoted-row reader (a quote before it).
  for (const header of ['user_id,time,type,price', '"user_id",time,type,price']) {
    const csv = join(dir, 'mid-write.csv');
    writeFileSync(csv, `${header}\nu1,1,view,10\nu2,2,cart,12`);
    const cut = await readFiles({ path: csv });
    assert.deepEqual(cut.events, ['1 view 10', '2 cart 12'], `${header}: the end of this run's input`);
    assert.deepEqual([cut.position.line, cut.position.unterminated], [2, 'u2,2,cart,12'.length], header);
    appendFileSync(csv, '5.50\nu3,3,view,3\n');
    const whole = await readFiles({ path: csv }, cut.position);
    assert.deepEqual(whole.events, ['2 cart 125.5', '3 view 3'], `${header}: the row completed since is read again, whole (not lost, nor cut at 12)`);
    assert.deepEqual([whole.position.line, whole.position.byte], [4, Buffer.byteLength(`${header}\nu1,1,view,10\nu2,2,cart,125.50\nu3,3,view,3\n`)], header);
  }
  // A quoted field the writer has not closed yet: a dead letter at the end of this run's input, read whole once closed.
  const quoted = join(dir, 'mid-write-quoted.csv');
  writeFileSync(quoted, 'user_id,time,type,brand\nu1,1,view,a\nu2,2,cart,"Acme');
  const open = await readFiles({ path: quoted, mapping: { time_format: 'epoch_ms', attributes: ['brand'] } });
  assert.deepEqual([open.events, open.deadLetters, open.position.line], [['1 view'], [3], 2]);
  appendFileSync(quoted, ' Inc"\n');
  const closed = await readFiles({ path: quoted, mapping: { time_format: 'epoch_ms', attributes: ['brand'] } }, open.position);
  assert.deepEqual([closed.events, closed.deadLetters, closed.position.line], [['2 cart'], [], 3]);
});

test('a file whose last line has no line end is read whole; resumed unchanged, or after a line end and more lines were added, that line is not read again', async () => {
  const line = (time: number): string => JSON.stringify({ user_id: `u${time}`, time, type: 'view' });
  const jsonl = join(dir, 'no-last-newline.jsonl');
  const gzipped = join(dir, 'no-last-newline.jsonl.gz');
  const csv = join(dir, 'no-last-newline.csv');
  writeFileSync(jsonl, `${line(1)}\n${line(2)}`);
  writeFileSync(gzipped, gzipSync(`${line(1)}\n${line(2)}`));
  writeFileSync(csv, 'user_id,time,type\nu1,1,view\nu2,2,view');
  for (const path of [jsonl, gzipped, csv]) {
    const run = await readFiles({ path });
    assert.deepEqual(run.events, ['1 view', '2 view'], `${path}: a backtest reads the last line`);
    const again = await readFiles({ path }, run.position);
    assert.deepEqual([again.events, again.deadLetters, again.warned], [[], [], []], `${path}: resumed unchanged, nothing is read again`);
    assert.deepEqual(again.position, run.position, path);
  }
  for (const path of [jsonl, csv]) {
    const run = await readFiles({ path });
    appendFileSync(path, path === csv ? '\nu3,3,view\n' : `\n${line(3)}\n`);
    const resumed = await readFiles({ path }, run.position);
    assert.deepEqual([resumed.events, resumed.warned], [['3 view'], []], `${path}: the line was whole: only the line after it is new`);
    assert.equal(resumed.position.line, path === csv ? 4 : 3, path);
  }
});

test('CSV config: `header: false` without `columns`, or `columns` without `header`, is a config error at `csv` (file and stdin sources); so is a quote in the delimiter, a line end in either, or a column named twice, at its field; both given, each reads as it says', async () => {
  const path = join(dir, 'config.csv');
  writeFileSync(path, 'u0,0,view\nu1,1,view\n');
  const problemsOf = async (source: string): Promise<string[]> => {
    try {
      await runYaml(`sources: [${source}]\nsinks: [{type: memory}]\n`);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((problem) => `${problem.path}: ${problem.message.slice(0, problem.message.indexOf('`:') + 1)}`);
    }
    return [];
  };
  assert.deepEqual(await problemsOf(`{type: file, path: ${path}, csv: {header: false}}`), ['$.sources[0].csv: `header: false` needs `columns`']);
  assert.deepEqual(await problemsOf(`{type: file, path: ${path}, csv: {columns: [user_id, time, type]}}`), ['$.sources[0].csv: `columns` needs `header`']);
  assert.deepEqual(await problemsOf('{type: stdin, format: csv, csv: {header: false}}'), ['$.sources[0].csv: `header: false` needs `columns`']);
  // A delimiter or quote that would split or quote every row otherwise than meant, and a column named twice, said at their fields.
  const charactersOf = async (source: string): Promise<string[]> => {
    try {
      await runYaml(`sources: [${source}]\nsinks: [{type: memory}]\n`);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((problem) => `${problem.path}: ${problem.message.split(':')[0]}`);
    }
    return [];
  };
  assert.deepEqual(await charactersOf(`{type: file, path: ${path}, csv: {delimiter: ',', quote: ','}}`), ['$.sources[0].csv.quote: quote "," is in the delimiter ","']);
  assert.deepEqual(await charactersOf(`{type: file, path: ${path}, csv: {delimiter: '"|'}}`), ['$.sources[0].csv.quote: quote "\\"" is in the delimiter "\\"|"']);
  assert.deepEqual(await charactersOf(`{type: stdin, format: csv, csv: {delimiter: "\\n"}}`), ['$.sources[0].csv.delimiter: delimiter "\\n" holds a line end, which ends the row before it']);
  assert.deepEqual(await charactersOf(`{type: file, path: ${path}, csv: {quote: "\\r"}}`), ['$.sources[0].csv.quote: quote "\\r" is a line end, which ends the row before it; name another character, or \'\' for none']);
  assert.deepEqual(await charactersOf(`{type: file, path: ${path}, csv: {header: false, columns: [user_id, time, user_id]}}`), ["$.sources[0].csv.columns[2]: column 'user_id' is named twice"]);
  assert.deepEqual(await charactersOf(`{type: file, path: ${path}, csv: {header: false, columns: [user_id, time, type], delimiter: ';', quote: ''}}`), [], 'no quote at all is allowed');
  const read = async (header: boolean): Promise<string[]> => {
    const run = await runYaml(`sources: [{type: file, path: ${path}, csv: {header: ${header}, columns: [user_id, time, type]}, mapping: {time_format: epoch_ms}}]\nsinks: [{type: memory}]\n`);
    return run.outputs[0]!.map((e) => String(e.userId));
  };
  assert.deepEqual(await read(false), ['u0', 'u1'], 'no header row: every row is data');
  assert.deepEqual(await read(true), ['u1'], 'a header row renamed: passed over');
});

test('a .tsv file is split on tabs unless csv.delimiter says otherwise; .gz in any case is gzip, for the source and the sink', async () => {
  const tsv = join(dir, 'events.tsv');
  writeFileSync(tsv, 'user_id\ttime\ttype\tbrand\nu1\t1\tview\tAcme, Inc.\n');
  const upper = join(dir, 'EVENTS.TSV.GZ');
  writeFileSync(upper, gzipSync('user_id\ttime\ttype\tbrand\nu2\t2\tcart\tb\n'));
  const semicolons = join(dir, 'semicolons.tsv');
  writeFileSync(semicolons, 'user_id;time;type;brand\nu3;3;view;c\n');
  const out = join(dir, 'OUT.JSONL.GZ');
  const run = await runYaml(`
sources:
  - {type: file, path: [${tsv}, ${upper}], mapping: {time_format: epoch_ms, attributes: [brand]}}
  - {type: file, path: ${semicolons}, csv: {delimiter: ";"}, mapping: {time_format: epoch_ms, attributes: [brand]}}
sinks: [{type: memory}, {type: file, path: ${out}}]
`);
  assert.deepEqual(run.outputs[0]!.map((e) => `${String(e.userId)} ${String(e.type)} ${String((e.attrs as { brand?: unknown }).brand)}`).sort(), ['u1 view Acme, Inc.', 'u2 cart b', 'u3 view c']);
  assert.deepEqual(run.deadLetters, []);
  assert.equal(gunzipSync(readFileSync(out)).toString().split('\n').filter(Boolean).length, 3, 'the sink wrote gzip');
});

test('a gzip file source stopped mid-file (its reader leaves, or it is closed first) closes the file itself, not the garbage collector', { skip: !existsSync('/proc/self/fd') && 'needs /proc/self/fd' }, async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'stopped.jsonl.gz');
  // Members of 10,000 lines, 8 MB compressed: lines come out (each member checked) long before the file is read whole.
  const member = (from: number): Buffer => gzipSync(Array.from({ length: 10_000 }, (_, i) => `${JSON.stringify({ user_id: `u${from + i}`, time: from + i, type: 'view', pad: createHash('sha256').update(String(from + i)).digest('hex') })}\n`).join(''));
  writeFileSync(path, Buffer.concat(Array.from({ length: 20 }, (_, i) => member(i * 10_000))));
  const descriptors = (): number =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === path;
      } catch {
        return false; // closed while listed
      }
    }).length;
  /** The close is asynchronous (a FileHandle's): each turn of the event loop until it is done, for at most 5 s. */
  const closed = async (): Promise<boolean> => {
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await new Promise((resolve) => setImmediate(resolve))) if (descriptors() === 0) return true;
    return false;
  };
  for (const how of ['its reader leaves', 'closed, then its reader leaves']) {
    const source = await file.create({ path, mapping: { time_format: 'epoch_ms' } } as never, testContext({ batchSize: 100 }));
    const reading = source.read()[Symbol.asyncIterator]();
    await reading.next();
    assert.equal(descriptors(), 1, `${how}: open while read`);
    if (how.startsWith('closed')) await source.close!();
    await reading.return?.(undefined);
    assert.ok(await closed(), `${how}: closed`);
  }
});

test('a file of bad lines waits for the dead-letter sink\'s room: its dead letters are not piled on a sink that said it was full', async (t) => {
  const dir = tempFolder(t, 'file-dead-room');
  const path = join(dir, 'garbage.jsonl');
  writeFileSync(path, Array.from({ length: 3000 }, (_, i) => `not json ${i}`).join('\n') + '\n');
  const written: StreamRecord[] = [];
  let release: (() => void) | undefined;
  let blocked = true;
  let writtenWhenFull = -1;
  const gated = defineSink<Record<string, never>>({
    name: 'gated-dead-letters',
    summary: 'test',
    config: { type: 'object' },
    create: () => ({
      write: (record) => void written.push(record),
      ready: () => {
        if (!blocked || written.length < 50) return undefined;
        if (writtenWhenFull < 0) writtenWhenFull = written.length;
        return new Promise<void>((resolve) => (release = resolve));
      },
      close: async () => undefined,
    }),
  });
  const run = runYaml(`sources: [{type: file, path: ${path}}]\nsinks: [{type: memory}]\ndead_letter: {type: gated-dead-letters}\nsettings: {max_in_flight: 100}\n`, { plugins: [gated] });
  const deadline = Date.now() + 20_000;
  while (release === undefined) {
    assert.ok(Date.now() < deadline, 'the dead-letter sink was never asked for room once full');
    await new Promise((resolve) => setImmediate(resolve));
  }
  for (let i = 0; i < 200; i++) await new Promise((resolve) => setImmediate(resolve));
  // At most one batch (max_in_flight lines) past the 50 that filled it. Before, the source yielded no batch of
  // only rejects, so the runtime asked for room only after all 3000 were written.
  assert.ok(writtenWhenFull <= 150 && written.length === writtenWhenFull, `${written.length} dead letters written, the sink full at ${writtenWhenFull}`);
  blocked = false;
  release!();
  const { stats } = await run;
  assert.equal(stats.deadLettered, 3000);
  assert.equal(written.length, 3000);
});

test("file source counts its records for a progress total (backtest's): decompressed lines of a gzip file named in any case, no blank line, each file's CSV header; a FIFO is not counted", async (t) => {
  const dir = tempFolder(t, 'file-count');
  const text = `${Array.from({ length: 500 }, (_, i) => JSON.stringify({ n: i, pad: 'x'.repeat(i % 50) })).join('\n')}\n\n  \n`;
  writeFileSync(join(dir, 'events.jsonl.gz'), gzipSync(text));
  // Named in capitals, as the source reads it (through gzip): the count had been of the compressed bytes' newlines.
  writeFileSync(join(dir, 'EVENTS.JSONL.GZ'), gzipSync(text));
  writeFileSync(join(dir, 'a.csv'), 'a,b\n1,2\n3,4\n\n5,6');
  writeFileSync(join(dir, 'b.TSV'), 'a\tb\n7\t8\n');
  const count = (config: Record<string, unknown>): Promise<number | undefined> => fileSource.countRecords!({ path: 'events.jsonl.gz', ...config } as never, dir);
  assert.equal(await count({}), 500);
  assert.equal(await count({ path: 'EVENTS.JSONL.GZ' }), 500);
  assert.equal(await count({ path: ['a.csv', 'b.TSV'] }), 4);
  assert.equal(await count({ path: 'a.csv', csv: { header: false, columns: ['a', 'b'] } }), 4);
  assert.equal(await count({ path: 'a.csv', format: 'jsonl' }), 4);
  // Compressed data cut short: what could be read.
  writeFileSync(join(dir, 'events.jsonl.gz'), gzipSync(text).subarray(0, 200));
  assert.ok((await count({}))! < 500);
  // Counting a FIFO would consume what the run is to read.
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  assert.equal(await count({ path: 'fifo' }), undefined);
});

test('CSV: a header naming a column twice is said once, at the header, naming the file and the column (each row kept only its last one, silently); not per row', async () => {
  const { default: file } = await import('./file.js');
  const path = join(dir, 'twice.csv');
  writeFileSync(path, 'user_id,time,type,user_id,price,price\nu1,1000,view,u2,1,2\nu1,2000,cart,u2,1,2\nu3,3000,view,u4,1,2\n');
  const read = async (csv: object = {}, position?: SourcePosition): Promise<{ users: string[]; warned: string[]; fields: unknown[] }> => {
    const warned: string[] = [];
    const fields: unknown[] = [];
    const base = testContext();
    const context = { ...base, logger: { ...base.logger, warn: (said: unknown, message: string) => void (warned.push(message), fields.push(said)) } } as typeof base;
    const source = await file.create({ path, csv, mapping: { time_format: 'epoch_ms' } } as never, context);
    if (position !== undefined) source.seek!(position);
    const users: string[] = [];
    for await (const batch of source.read()) for (const event of batch) users.push((event as ClickEvent).userId);
    return { users, warned, fields };
  };
  const twice = await read();
  // Read as before (the last one's value): a warning, not a change in what a row reads.
  assert.deepEqual(twice.users, ['u2', 'u2', 'u4']);
  assert.deepEqual(twice.warned, [
    `${path}: the CSV header names column 'user_id' twice (columns 1 and 4), 'price' twice (columns 5 and 6): each row keeps only the last one's value; rename one in the file, or name the columns in csv.columns with csv.header: true`,
  ]);
  assert.deepEqual(twice.fields, [{ file: path, columns: ['user_id', 'price'] }]);
  // Resumed mid-file (from a checkpoint's position), the header is read alone, and said alike (was: nothing).
  const header = 'user_id,time,type,user_id,price,price\n';
  const resumed = await read({}, { fileIndex: 0, line: 2, byte: Buffer.byteLength(`${header}u1,1000,view,u2,1,2\n`) });
  assert.deepEqual(resumed.users, ['u2', 'u4']);
  assert.deepEqual(resumed.warned, twice.warned);
  // Columns named in the config rename the header: nothing to say (a name twice there is a config error).
  assert.deepEqual((await read({ header: true, columns: ['user_id', 'time', 'type', 'other', 'price', 'price2'] })).warned, []);
});

/** A writer of `fifo`, opened (without waiting) once a reader has it open: ENXIO before. */
async function fifoWriter(fifo: string, started: (condition: () => boolean, what: string) => Promise<void> = (condition, what) => until(condition, what)): Promise<number> {
  let writer: number | undefined;
  await started(() => {
    try {
      writer = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
      return false;
    }
  }, `a reader of ${fifo}`);
  return writer!;
}

/** `next`'s result, or 'still waiting' 5 s on: a failure, not a hang, where a stop is not seen. */
async function within5s<T>(next: Promise<T>): Promise<T | 'still waiting'> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([next, new Promise<'still waiting'>((resolve) => (timer = setTimeout(() => resolve('still waiting'), 5000)))]);
  clearTimeout(timer);
  return result;
}

test('a FIFO whose writer is quiet: a stop (the pipeline\'s signal) ends the source at once, without an error', async (t) => {
  const fifo = join(dir, 'quiet.fifo');
  execFileSync('mkfifo', [fifo]);
  const stop = new AbortController();
  const source = await fileSource.create({ path: fifo, mapping: { time_format: 'epoch_ms' } } as never, testContext({ signal: stop.signal }));
  const batches = source.read()[Symbol.asyncIterator]();
  const first = batches.next();
  const writer = await fifoWriter(fifo);
  // Closed at the end: before the fix, what ends the read the stop could not.
  t.after(() => closeSync(writer));
  writeSync(writer, `${JSON.stringify({ user_id: 'u1', time: 1, type: 'view' })}\n`);
  assert.deepEqual((await first).value?.map((event: ClickEvent) => event.userId), ['u1'], 'a FIFO opened before its writer waits for it');
  const waiting = batches.next();
  stop.abort(new Error('SIGTERM'));
  assert.deepEqual(await within5s(waiting), { done: true, value: undefined });
});

test('a FIFO no writer has opened yet: a stop ends the source at once, without an error', async (t) => {
  const fifo = join(dir, 'unopened.fifo');
  execFileSync('mkfifo', [fifo]);
  const stop = new AbortController();
  const source = await fileSource.create({ path: fifo, mapping: { time_format: 'epoch_ms' } } as never, testContext({ signal: stop.signal }));
  const waiting = source.read()[Symbol.asyncIterator]().next();
  // Before the fix, the open waited for a writer in libuv's pool, and kept this process alive: one ends it
  // (ENXIO: no reader waits, as after the fix).
  t.after(() => {
    try {
      closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
    }
  });
  stop.abort(new Error('SIGTERM'));
  assert.deepEqual(await within5s(waiting), { done: true, value: undefined });
});

test('`tributary run` reading a FIFO whose writer stays open stops on SIGTERM, promptly and cleanly (exit 0, outcome stopped), not when the writer closes', async (t) => {
  const folder = tempFolder(t, 'fifo-stop');
  const fifo = join(folder, 'events.fifo');
  execFileSync('mkfifo', [fifo]);
  const pipeline = join(folder, 'p.yaml');
  writeFileSync(pipeline, ['name: fifo-stop', 'settings: { shutdown_timeout: 10s }', 'sources: [{ type: file, path: events.fifo, mapping: { time_format: epoch_ms } }]', 'sinks: [{ type: stdout }]', ''].join('\n'));
  const run = spawnTributary(t, ['run', pipeline], { stdout: true });
  let out = '';
  run.child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  // Kept open: a writer between two lines (`mkfifo f; (exec 3>f; ...)`).
  const writer = await fifoWriter(fifo, (condition, what) => run.started(condition, what));
  t.after(() => closeSync(writer));
  writeSync(writer, `${JSON.stringify({ user_id: 'u1', time: 1, type: 'view' })}\n`);
  await until(() => out.includes('"u1"'), `the first record on stdout (stderr: ${run.stderr})`);
  // Before the fix the stop waited for the writer: shutdown_timeout (10 s) ended it with exit 1.
  assert.equal(await run.stop('SIGTERM', 20_000), 0, run.stderr);
  assert.match(run.stderr, /"outcome":"stopped"/);
});

test('a damaged gzip file (junk after its members, a wrong CRC, a cut last member) gives every line before the damage (a member whose CRC fails: before that member), and one dead letter naming it and its compressed byte', async () => {
  const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => `${JSON.stringify({ user_id: `u${from + i}`, time: from + i, type: 'view', pad: 'x'.repeat(40) })}\n`).join('');
  // A member as gzip(1) writes one, with the file's name in its header (FNAME), beside zlib's (none).
  const named = (text: string): Buffer => {
    const bytes = Buffer.from(text);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc32(bytes), 0);
    trailer.writeUInt32LE(bytes.length, 4);
    return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3]), Buffer.from('events.jsonl\0'), deflateRawSync(bytes), trailer]);
  };
  const first = named(lines(0, 5000));
  const second = gzipSync(lines(5000, 10_000));
  const wrongCrc = Buffer.from(second);
  wrongCrc[wrongCrc.length - 8]! ^= 0xff;
  const cases = {
    junk: [Buffer.concat([first, second, Buffer.from([0x1f, 0, 1, 2, 3])]), 10_000, 'incorrect header check', first.length + second.length],
    crc: [Buffer.concat([first, wrongCrc]), 10_000, 'incorrect data check', first.length + second.length - 8],
    cut: [Buffer.concat([first, second.subarray(0, second.length - 100)]), undefined, 'unexpected end of file', first.length + second.length - 100],
  } as const;
  for (const [name, [bytes, lineCount, problem, byte]] of Object.entries(cases)) {
    const path = join(dir, `damaged-${name}.jsonl.gz`);
    writeFileSync(path, bytes);
    const context = testContext({ batchSize: 1000 });
    const source = await fileSource.create({ path, mapping: { time_format: 'epoch_ms' } } as never, context);
    const times: number[] = [];
    for await (const batch of source.read()) times.push(...batch.map((event) => event.time));
    // A wrong CRC: the member's lines are held until it checks, and are not read (before: read, then the dead letter).
    const out = name === 'crc' ? 5000 : (lineCount ?? times.length);
    assert.ok(out >= (name === 'crc' ? 5000 : 9900), `${name}: ${out} lines`);
    // Before: createGunzip lost the text its failing call decoded, 147 lines here (~16 KB).
    assert.deepEqual(times, Array.from({ length: out }, (_, i) => i), `${name}: every line before the damage, in order`);
    assert.equal(context.deadLetters.length, 1, name);
    const [dead] = context.deadLetters;
    if (name === 'crc') {
      assert.equal(dead!.reason, `unreadable gzip data after line 5000 (incorrect data check at compressed byte ${byte}: a member's text is not what was compressed; its lines 5001-10000 are not read (raw is their text)): the rest of the file is skipped`);
      assert.equal(dead!.raw, lines(5000, 10_000));
    } else assert.equal(dead!.reason.split(':')[0], `unreadable gzip data after line ${out} (${problem} at compressed byte ${byte}${name === 'cut' ? '; raw is the text read after that line' : ''})`);
    assert.deepEqual([dead!.origin?.file, dead!.origin?.line], [path, out + 1]);
    // The cut line's text: the start of the next line.
    if (name === 'cut') assert.ok(lines(out, out + 1).startsWith(dead!.raw as string) && (dead!.raw as string).length > 0, String(dead!.raw));
    else if (name !== 'crc') assert.equal(dead!.raw, '');
  }
});

/** JSON lines `from` to `to` (their times), 60-odd bytes each. */
const gzipTestLines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => `${JSON.stringify({ user_id: `u${from + i}`, time: from + i, type: 'view', pad: 'x'.repeat(40) })}\n`).join('');

/** A gzip file's events' times and dead letters, as the source reads it; and its progress total (countRecords). */
async function readGzipFile(path: string): Promise<{ times: number[]; deadLetters: Rejection[]; counted: number | undefined }> {
  const config = { path, mapping: { time_format: 'epoch_ms' } } as never;
  const context = testContext({ batchSize: 1000 });
  const source = await fileSource.create(config, context);
  const times: number[] = [];
  for await (const batch of source.read()) times.push(...batch.map((event) => event.time));
  return { times, deadLetters: context.deadLetters, counted: await fileSource.countRecords!(config, dir) };
}

test('corrupt deflate data inside a gzip member: every line zlib decodes before it (not the ~16 KB of its failing call short) is held with the member and is the dead letter\'s raw, not read (it may be garbage); the dead letter names the file, the compressed byte and the problem; countRecords counts the same lines', async () => {
  const text = gzipTestLines(0, 5000);
  // One deflate stream in two parts, the first flushed to a byte (Z_FULL_FLUSH); a bit of the second
  // part's first block header flipped makes its type the reserved one: zlib fails there, at a known byte.
  const half = Buffer.byteLength(gzipTestLines(0, 2500));
  const parts = [deflateRawSync(text.slice(0, half), { finishFlush: zlibConstants.Z_FULL_FLUSH }), deflateRawSync(text.slice(half))];
  const corrupt = Buffer.concat(parts);
  corrupt[parts[0]!.length]! ^= 0b10; // BTYPE 10 (dynamic Huffman) to 11 (reserved)
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(text), 0);
  trailer.writeUInt32LE(Buffer.byteLength(text), 4);
  const first = Buffer.concat([gzipSync('').subarray(0, 10), corrupt, trailer]);
  const second = gzipSync(gzipTestLines(5000, 10_000));
  // What zlib decodes before the corruption (as `zcat` does, but not only up to its last 32 KB window written):
  // the text of the longest start of the data it inflates without an error.
  const inflates = (bytes: number): boolean => {
    try {
      inflateRawSync(corrupt.subarray(0, bytes), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      return true;
    } catch {
      return false;
    }
  };
  let good = 0;
  for (let bad = corrupt.length; bad - good > 1; ) {
    const middle = (good + bad) >> 1;
    if (inflates(middle)) good = middle;
    else bad = middle;
  }
  const before = inflateRawSync(corrupt.subarray(0, good), { finishFlush: zlibConstants.Z_SYNC_FLUSH }).toString();
  const wholeLines = before.lastIndexOf('\n') + 1;
  const expected = before.slice(0, wholeLines).split('\n').length - 1;
  assert.equal(expected, 2500, 'the first part\'s lines');
  const path = join(dir, 'corrupt-member.jsonl.gz');
  writeFileSync(path, Buffer.concat([first, second]));
  const { times, deadLetters, counted } = await readGzipFile(path);
  // Before: the 2,500 lines zlib decodes before the corruption were read (and before that, 2,437: the text of zlib's failing call dropped).
  assert.deepEqual(times, Array.from({ length: 5000 }, (_, i) => 5000 + i), 'the next member\'s lines, none of the damaged one\'s');
  assert.equal(deadLetters.length, 1);
  const [dead] = deadLetters;
  const problem = (() => {
    try {
      inflateRawSync(corrupt);
    } catch (error) {
      return (error as Error).message;
    }
  })();
  const heldLines = expected + (wholeLines < before.length ? 1 : 0); // and the start of the next
  assert.equal(
    dead!.reason,
    `unreadable gzip data after line 0 (${problem} at compressed byte ${10 + good}: a member's text inflated before it may be wrong (zlib can inflate corrupt data as garbage before it fails); its ${heldLines} lines are not read (raw is their text)): reading goes on at the gzip member at compressed byte ${first.length}, its first line numbered 1`,
  );
  assert.deepEqual([dead!.origin?.file, dead!.origin?.line, dead!.raw], [path, 1, before]);
  // The progress total is the lines read (before: createGunzip's count, 2,438).
  assert.equal(counted, 5000);
});

test('corrupt deflate data after more than 16 MiB of a member\'s text: the lines past the hold bound were read, and the dead letter names exactly those as possibly wrong; the rest are its raw', async () => {
  const text = gzipTestLines(0, 300_000); // 29 MB: past the 16 MiB held
  const member = Buffer.concat([gzipSync('').subarray(0, 10), deflateRawSync(text, { finishFlush: zlibConstants.Z_FULL_FLUSH }), Buffer.from([0x07, 0, 0, 0]), Buffer.alloc(8)]);
  const path = join(dir, 'corrupt-past-bound.jsonl.gz');
  writeFileSync(path, member);
  const { times, deadLetters } = await readGzipFile(path);
  assert.ok(times.length > 150_000 && times.length < 300_000, `${times.length} lines read`);
  assert.deepEqual(times, Array.from({ length: times.length }, (_, i) => i));
  assert.equal(deadLetters.length, 1);
  const readBytes = Buffer.byteLength(gzipTestLines(0, times.length));
  assert.equal(
    deadLetters[0]!.reason,
    `unreadable gzip data after line ${times.length} (invalid block type at compressed byte ${member.length - 12}: a member's text inflated before it may be wrong (zlib can inflate corrupt data as garbage before it fails); its lines ${times.length + 1}-300000 are not read (raw is their text); its lines 1-${times.length} (${readBytes} bytes) were read before the damage and may be wrong): the rest of the file is skipped`,
  );
  assert.equal(deadLetters[0]!.raw, gzipTestLines(times.length, 300_000));
});

test('corrupt deflate data after a line longer than 64 KB that the 16 MiB hold bound split (its start read, its rest held): the dead letter counts that line among those possibly wrong, and its rest in the raw as no line of its own', async () => {
  // Lines up to just under the 16 MiB held: the long line's first 64 KB and more, handed on unended, take the held text past it.
  const lineBytes = (n: number): number => Buffer.byteLength(gzipTestLines(n, n + 1));
  let short = 0;
  for (let bytes = 0; bytes + lineBytes(short) <= (16 << 20) - (40 << 10); short++) bytes += lineBytes(short);
  const long = `${JSON.stringify({ user_id: 'u-long', time: short, type: 'view', pad: 'x'.repeat(120_000) })}\n`;
  const text = gzipTestLines(0, short) + long + gzipTestLines(short + 1, short + 101);
  const member = Buffer.concat([gzipSync('').subarray(0, 10), deflateRawSync(text, { finishFlush: zlibConstants.Z_FULL_FLUSH }), Buffer.from([0x07, 0, 0, 0]), Buffer.alloc(8)]);
  const path = join(dir, 'corrupt-after-split-line.jsonl.gz');
  writeFileSync(path, member);
  const { times, deadLetters } = await readGzipFile(path);
  assert.deepEqual(times, Array.from({ length: short }, (_, i) => i), 'the short lines (the long one, cut, is a bad line)');
  const damage = deadLetters.find((dead) => dead.reason.startsWith('unreadable gzip data'));
  const readBytes = Buffer.byteLength(text) - Buffer.byteLength(damage!.raw as string);
  assert.ok(readBytes > Buffer.byteLength(gzipTestLines(0, short)) + (64 << 10) && readBytes < Buffer.byteLength(gzipTestLines(0, short) + long), `${readBytes} bytes read`);
  // Before: "after line ${short} (...; its lines ${short + 1}-${short + 101} are not read (raw is their text); its lines 1-${short} (...) were read ...": the long line, read in part, named as not read, and its rest taken for a line of its own.
  assert.equal(
    damage!.reason,
    `unreadable gzip data after line ${short + 1} (invalid block type at compressed byte ${member.length - 12}: a member's text inflated before it may be wrong (zlib can inflate corrupt data as garbage before it fails); its lines ${short + 2}-${short + 101} are not read (raw is the rest of line ${short + 1}, then their text); its lines 1-${short + 1} (${readBytes} bytes) were read before the damage and may be wrong): the rest of the file is skipped`,
  );
  assert.equal(damage!.raw, text.slice(readBytes));
});

test('damage outside a member (junk after it, a cut) after a line longer than 64 KB whose start was read: the dead letter\'s reason says its raw is the rest of that line, not a line of its own', async () => {
  const short = gzipTestLines(0, 100);
  // A line without its end, of 120,000 bytes that compress about 2:1 (a cut 100 compressed bytes before the end is inside it).
  const long = JSON.stringify({ user_id: 'u-long', time: 100, type: 'view', pad: randomBytes(60_000).toString('hex') });
  const member = gzipSync(short + long);
  const cases = {
    junk: [Buffer.concat([member, Buffer.from('junk\n')]), 'incorrect header check', member.length],
    cut: [member.subarray(0, member.length - 100), 'unexpected end of file', member.length - 100],
  } as const;
  for (const [name, [bytes, problem, byte]] of Object.entries(cases)) {
    const path = join(dir, `long-line-then-${name}.jsonl.gz`);
    writeFileSync(path, bytes);
    const { times, deadLetters } = await readGzipFile(path);
    assert.deepEqual(times, Array.from({ length: 100 }, (_, i) => i), name);
    const damage = deadLetters.find((dead) => dead.reason.startsWith('unreadable gzip data'));
    // Before: "...; raw is the text read after that line)": the long line's rest taken for the start of the next one.
    assert.equal(damage?.reason, `unreadable gzip data after line 101 (${problem} at compressed byte ${byte}; raw is the rest of line 101): the rest of the file is skipped`, name);
    const raw = damage!.raw as string;
    assert.ok(raw.length > 0 && !long.startsWith(raw) && (name === 'junk' ? long.endsWith(raw) : long.includes(raw)), `${name}: ${raw.length} bytes of raw`);
  }
});

test('zero bytes after the last gzip member (tar or dd padding) are passed over, as gzip does ("trailing zero bytes ignored"); other bytes after it, after zeros too, are one dead letter naming the first of them; countRecords counts the lines read', async () => {
  const members = Buffer.concat([gzipSync(gzipTestLines(0, 5000)), gzipSync(gzipTestLines(5000, 10_000))]);
  const cases = {
    // 10,240: a tar record; one zero byte too; more zeros than a read of the file gives at once (1 MB).
    zeros: [Buffer.concat([members, Buffer.alloc(10_240)]), undefined],
    zero: [Buffer.concat([members, Buffer.alloc(1)]), undefined],
    megabytes: [Buffer.concat([members, Buffer.alloc(3 << 20)]), undefined],
    junk: [Buffer.concat([members, Buffer.from('junk\n')]), members.length],
    zerosThenJunk: [Buffer.concat([members, Buffer.alloc(700), Buffer.from([1])]), members.length + 700],
  } as const;
  for (const [name, [bytes, junkAt]] of Object.entries(cases)) {
    const path = join(dir, `trailing-${name}.jsonl.gz`);
    writeFileSync(path, bytes);
    const { times, deadLetters, counted } = await readGzipFile(path);
    assert.equal(times.length, 10_000, name);
    assert.equal(counted, 10_000, name);
    // Before: the zeros were a dead letter ('incorrect header check at compressed byte 54988').
    assert.deepEqual(
      deadLetters.map((dead) => dead.reason),
      junkAt === undefined ? [] : [`unreadable gzip data after line 10000 (incorrect header check at compressed byte ${junkAt}): the rest of the file is skipped`],
      name,
    );
  }
});

test('countRecords of a damaged gzip file (cut, a wrong CRC, junk) counts the lines the source reads, and does not fail', async () => {
  const first = gzipSync(gzipTestLines(0, 5000));
  const second = gzipSync(gzipTestLines(5000, 10_000));
  const wrongCrc = Buffer.from(second);
  wrongCrc[wrongCrc.length - 8]! ^= 0xff;
  const cases = {
    cut: Buffer.concat([first, second.subarray(0, second.length - 100)]),
    crc: Buffer.concat([first, wrongCrc]),
    junk: Buffer.concat([first, second, Buffer.from([0x1f, 0, 1, 2, 3])]),
    notGzip: Buffer.from('not gzip at all\n'),
    empty: Buffer.alloc(0),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const path = join(dir, `counted-${name}.jsonl.gz`);
    writeFileSync(path, bytes);
    const { times, counted } = await readGzipFile(path);
    // Before: createGunzip's count, the text of its failing call short (9,854 for 10,000 read), and a cut file's cut line counted (9,984 for 9,983).
    assert.equal(counted, times.length, name);
  }
});

/** Reads `bytes` through the FIFO `name` as the source does (a writer gives them, then closes): times and dead letters. */
async function readGzipFifo(name: string, bytes: Buffer): Promise<{ times: number[]; deadLetters: Rejection[] }> {
  const fifo = join(dir, name);
  execFileSync('mkfifo', [fifo]);
  const context = testContext({ batchSize: 1000 });
  const source = await fileSource.create({ path: fifo, gzip: true, mapping: { time_format: 'epoch_ms' } } as never, context);
  createWriteStream(fifo).end(bytes);
  const times: number[] = [];
  for await (const batch of source.read()) times.push(...batch.map((event) => event.time));
  return { times, deadLetters: context.deadLetters };
}

test('a bit flipped in a gzip member\'s text that inflates without error: the member\'s lines are held until its CRC fails, then dead-lettered (raw, line range), not read; a FIFO\'s alike', async () => {
  const first = gzipSync(gzipTestLines(0, 5000));
  // Stored (level 0): its text is in the file as is, so a flipped bit changes one character and inflates without error.
  const second = gzipSync(gzipTestLines(5000, 10_000), { level: 0 });
  const flipped = Buffer.from(second);
  const at = flipped.indexOf('"u7000"');
  flipped[at + 2] ^= 0x01; // u7000 -> u6000
  const third = gzipSync(gzipTestLines(10_000, 11_000));
  const bytes = Buffer.concat([first, flipped, third]);
  const path = join(dir, 'flipped-literal.jsonl.gz');
  writeFileSync(path, bytes);
  const trailerAt = first.length + second.length - 8;
  const { times, deadLetters, counted } = await readGzipFile(path);
  // Before: 10,000 lines read, u6000's line among them (the wrong one), then the dead letter "after line 10000".
  const afterIt = Array.from({ length: 1000 }, (_, i) => 10_000 + i);
  assert.deepEqual(times, [...Array.from({ length: 5000 }, (_, i) => i), ...afterIt], 'the lines before the member whose CRC fails, then the next member\'s');
  assert.equal(counted, 6000);
  assert.equal(deadLetters.length, 1);
  assert.equal(deadLetters[0]!.reason, `unreadable gzip data after line 5000 (incorrect data check at compressed byte ${trailerAt}: a member's text is not what was compressed; its 5000 lines are not read (raw is their text)): reading goes on at the gzip member at compressed byte ${trailerAt + 8}, its first line numbered 5001`);
  assert.equal(deadLetters[0]!.raw, gzipTestLines(5000, 10_000).replace('"u7000"', '"u6000"'));
  assert.deepEqual([deadLetters[0]!.origin?.file, deadLetters[0]!.origin?.line], [path, 5001]);
  // A FIFO's are held alike: the source's own work does not count against the hold's 1 s, only its waits on the writer (streaming the file, it keeps the source busy), so a slow machine holds them alike. Before: read as they inflated (u6000's twice), named as possibly wrong.
  const fifo = await readGzipFifo('flipped-literal.fifo', bytes);
  assert.deepEqual(fifo.times, times);
  assert.deepEqual(fifo.deadLetters.map((dead) => [dead.reason, dead.raw, dead.origin?.line]), deadLetters.map((dead) => [dead.reason, dead.raw, dead.origin?.line]));
});

test('a FIFO\'s gzip lines from a live writer (a member sync-flushed, its end not written yet) are read within about a second, not held until the member ends; a failed CRC then names them as possibly wrong', async () => {
  const fifo = join(dir, 'live-writer.fifo');
  execFileSync('mkfifo', [fifo]);
  const context = testContext({ batchSize: 1000 });
  const source = await fileSource.create({ path: fifo, gzip: true, mapping: { time_format: 'epoch_ms' } } as never, context);
  const text = gzipTestLines(0, 2000);
  // The member's start as a writer flushing leaves it (the file sink's sync flush): its lines are all inflated.
  const flushed = await new Promise<Buffer>((resolve) => {
    const gzip = createGzip();
    const out: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => out.push(chunk));
    gzip.write(text);
    gzip.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)));
  });
  const times: number[] = [];
  const reading = (async () => {
    for await (const batch of source.read()) times.push(...batch.map((event) => event.time));
  })();
  const writer = createWriteStream(fifo);
  writer.write(flushed);
  // Held with no time limit, they would wait for the member's end, which this writer sends only once they are read (before, a FIFO's lines were not held at all).
  await until(() => times.length === 2000, 'the flushed lines read before the member ends', 15_000);
  // The member's end: an empty last block, and a trailer whose CRC is wrong (0).
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(Buffer.byteLength(text), 4);
  writer.end(Buffer.concat([Buffer.from([0x03, 0x00]), trailer]));
  await reading;
  assert.deepEqual(times, Array.from({ length: 2000 }, (_, i) => i));
  assert.equal(context.deadLetters.length, 1);
  assert.match(context.deadLetters[0]!.reason, new RegExp(`^unreadable gzip data after line 2000 \\(incorrect data check at compressed byte ${flushed.length + 2}: a member's text is not what was compressed; its lines 1-2000 \\(${Buffer.byteLength(text)} bytes\\) were read before the check and may be wrong\\): the rest of the file is skipped$`));
});

test('a FIFO\'s gzip lines of a member whose deflate data ended but whose trailer its writer has not written yet are read within about a second, not when the trailer comes; a failed CRC then names them as possibly wrong', async () => {
  const fifo = join(dir, 'trailer-pending.fifo');
  execFileSync('mkfifo', [fifo]);
  const context = testContext({ batchSize: 1000 });
  const source = await fileSource.create({ path: fifo, gzip: true, mapping: { time_format: 'epoch_ms' } } as never, context);
  const text = gzipTestLines(0, 2000);
  const member = gzipSync(text);
  member[member.length - 8]! ^= 1; // its CRC
  const times: number[] = [];
  const reading = (async () => {
    for await (const batch of source.read()) times.push(...batch.map((event) => event.time));
  })();
  const writer = createWriteStream(fifo);
  // The deflate data whole, and 3 of the trailer's 8 bytes.
  writer.write(member.subarray(0, member.length - 5));
  try {
    // Before: held until the trailer came, which this writer sends only once they are read.
    await until(() => times.length === 2000, 'the lines read before the trailer comes', 15_000);
  } finally {
    writer.end(member.subarray(member.length - 5)); // a failure above ends the reading too, not leaves it waiting
  }
  await reading;
  assert.deepEqual(times, Array.from({ length: 2000 }, (_, i) => i));
  assert.equal(context.deadLetters.length, 1);
  assert.equal(
    context.deadLetters[0]!.reason,
    `unreadable gzip data after line 2000 (incorrect data check at compressed byte ${member.length - 8}: a member's text is not what was compressed; its lines 1-2000 (${Buffer.byteLength(text)} bytes) were read before the check and may be wrong): the rest of the file is skipped`,
  );
});

test('corrupt deflate data read from a FIFO gives the same lines as from a file (its member\'s compressed bytes kept to inflate it again, bounded), not ~16 KB fewer', async () => {
  const text = gzipTestLines(0, 5000);
  const half = Buffer.byteLength(gzipTestLines(0, 2500));
  const parts = [deflateRawSync(text.slice(0, half), { finishFlush: zlibConstants.Z_FULL_FLUSH }), deflateRawSync(text.slice(half))];
  const corrupt = Buffer.concat(parts);
  corrupt[parts[0]!.length]! ^= 0b10; // BTYPE 10 (dynamic Huffman) to 11 (reserved): zlib fails there
  const bytes = Buffer.concat([gzipSync(gzipTestLines(10_000, 12_000)), gzipSync('').subarray(0, 10), corrupt, Buffer.alloc(8)]);
  const path = join(dir, 'corrupt-for-fifo.jsonl.gz');
  writeFileSync(path, bytes);
  const fromFile = await readGzipFile(path);
  const fromFifo = await readGzipFifo('corrupt.fifo', bytes);
  assert.equal(fromFile.times.length, 2000, 'the first member (the corrupt one\'s lines are the dead letter\'s)');
  assert.equal((fromFile.deadLetters[0]!.raw as string).split('\n').length - 1, 2500);
  // Before: the FIFO gave fewer (the text of zlib's failing call, up to 16 KB, dropped).
  assert.deepEqual(fromFifo.times, fromFile.times);
  assert.deepEqual(fromFifo.deadLetters.map((dead) => [dead.reason, dead.raw]), fromFile.deadLetters.map((dead) => [dead.reason, dead.raw]));
});

test('pipelines chained through a file: the second reads the first one\'s events with `mapping: canonical` and gives the events one pipeline gives, a shop\'s attribute named `kind` with them; a config naming another word is an error at `mapping`', async () => {
  const input = join(dir, 'chain-in.jsonl');
  writeFileSync(
    input,
    [
      '{"user_id":"u1","session_id":"s1","time":"2024-01-01T00:00:00.250Z","type":"view","item_id":"i1","category":"shoes","price":"9.50","brand":"acme","kind":"vip"}',
      // A shop's own attribute named `kind` (written under `attrs`, never beside the record's own `kind`), valued as a sink's kind even.
      '{"user_id":"u1","session_id":"s1","time":"2024-01-01T00:01:00Z","type":"cart","item_id":"i1","price":9.5,"kind":"prediction"}',
      '{"user_id":"u2","time":"2024-01-01T00:02:00Z","type":"purchase","item_id":"i2","brand":"zed"}',
      '{"user_id":"u1","session_id":"s2","time":"2024-01-01T03:00:00Z","type":"view"}',
    ].join('\n') + '\n',
  );
  const source = `{type: file, path: ${input}, mapping: {attributes: [brand, kind]}}`;
  const stages = 'stages: [{type: sessionizer}, {type: session-features}]\n';
  const one = await runYaml(`sources: [${source}]\n${stages}sinks: [{type: memory, kinds: [event]}]\n`);
  const written = join(dir, 'chain-events.jsonl');
  await runYaml(`sources: [${source}]\nsinks: [{type: file, path: ${written}, kinds: [event]}]\n`);
  const chained = await runYaml(`sources: [{type: file, path: ${written}, mapping: canonical}]\n${stages}sinks: [{type: memory, kinds: [event]}]\n`);
  assert.deepEqual(chained.deadLetters, []);
  assert.equal(one.outputs[0]!.length, 4);
  assert.deepEqual((chained.outputs[0] as ClickEvent[]).map((event) => event.attrs?.kind), ['vip', 'prediction', undefined, undefined]);
  // Compared as written, the origin aside (another file): features by their values.
  const plain = (records: StreamRecord[]): unknown => records.map((record) => JSON.parse(JSON.stringify({ ...record, features: Array.from((record as ClickEvent).features!.values) })));
  assert.deepEqual(plain(chained.outputs[0]!), plain(one.outputs[0]!));
  // Without the mapping each event is dead-lettered, its reason naming the mapping that reads it.
  const unmapped = await runYaml(`sources: [{type: file, path: ${written}}]\nsinks: [{type: memory}]\n`);
  assert.equal(unmapped.deadLetters.length, 4);
  assert.match(String(unmapped.deadLetters[0]!.reason), /read such records with mapping: canonical\)$/);
  await assert.rejects(runYaml(`sources: [{type: file, path: ${written}, mapping: canonicl}]\nsinks: [{type: memory}]\n`), (error) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.deepEqual(error.problems.map((problem) => `${problem.path}: ${problem.message}`), ['$.sources[0].mapping: expected `canonical` or an object, got "canonicl"']);
    return true;
  });
});

/**
 * The commands of docs/operations.md's "Replaying dead letters" block, each a command line (a line that
 * goes on, after `|`, joined to it), its comments left out: what a user copies.
 */
function documentedReplayCommands(): string[] {
  const guide = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');
  const section = guide.slice(guide.indexOf('### Replaying dead letters'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const commands: string[] = [];
  for (const line of block.split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (/^\s/.test(line) && commands.length > 0) commands[commands.length - 1] += `\n${line}`;
    else commands.push(line);
  }
  return commands;
}

test('dead letters replayed with the commands docs/operations.md gives, run as written (jq, base64 -d, iconv): a source\'s `raw` text with the fixed mapping, a stage\'s `raw` event with `mapping: canonical`, and a line that is not UTF-8 (`encoding: base64`) as its exact bytes, each read back whole (was: "decode them first", no command)', async () => {
  for (const tool of ['jq', 'base64', 'iconv']) {
    assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is needed: this test runs the documented commands (.ci/run installs jq)`);
  }
  const folder = join(dir, 'replay-documented');
  mkdirSync(folder, { recursive: true });
  const input = join(folder, 'replay-in.jsonl');
  writeFileSync(
    input,
    Buffer.concat([
      Buffer.from(
        [
          '{"user_id":"u1","time":1704067200000,"type":"view","item_id":"i1"}',
          '{"user_id":"u2","time":"2024-01-01T00:01:00Z","type":"cart","price":5}', // an ISO time: the epoch_ms mapping rejects it
          '{"user_id":"u3","time":4070908800000,"type":"purchase","category":"c","brand":"b"}', // 2099: past the sessionizer's max_ahead_of_clock
        ].join('\n') + '\n',
      ),
      Buffer.from('{"user_id":"u4","time":1704067300000,"type":"view","brand":"caf\xe9"}\n', 'latin1'), // Latin-1: no UTF-8 text
    ]),
  );
  const mapping = '{time_format: epoch_ms, attributes: [brand]}';
  // The guide's names: the pipeline `shop`, its dead letters in dead-letters-shop.jsonl, its source source-file-0.
  const dead = join(folder, 'dead-letters-shop.jsonl');
  await runYaml(`name: shop\nsources: [{type: file, path: ${input}, mapping: ${mapping}}]\nstages: [{type: sessionizer}]\nsinks: [{type: memory}]\ndead_letter: {type: file, path: ${dead}}\n`);
  const letters = readFileSync(dead, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { source?: string; encoding?: string });
  assert.deepEqual(letters.map((letter) => [letter.source, letter.encoding]), [['source-file-0', undefined], ['source-file-0', 'base64'], ['source-file-0', undefined]]);

  const commands = documentedReplayCommands();
  assert.equal(commands.length, 4, commands.join('\n---\n'));
  for (const command of commands) execFileSync('sh', ['-c', `set -e\n${command}`], { cwd: folder, stdio: ['ignore', 'ignore', 'pipe'] });
  // What each command wrote, read as the guide says: the fixed mapping (iso8601 times), mapping: canonical, the source's mapping.
  const read = async (file: string, fileMapping: string): Promise<unknown> => {
    const run = await runYaml(`sources: [{type: file, path: ${join(folder, file)}, mapping: ${fileMapping}}]\nsinks: [{type: memory}]\n`);
    assert.deepEqual(run.deadLetters, [], file);
    return JSON.parse(JSON.stringify(run.outputs[0]));
  };
  assert.deepEqual(await read('replay.jsonl', '{time_format: iso8601}'), [{ kind: 'event', userId: 'u2', time: Date.parse('2024-01-01T00:01:00Z'), type: 'cart', price: 5 }]);
  assert.deepEqual(await read('replay-events.jsonl', 'canonical'), [{ kind: 'event', userId: 'u3', time: 4070908800000, type: 'purchase', category: 'c', attrs: { brand: 'b' } }]);
  assert.deepEqual(readFileSync(join(folder, 'replay-bytes.jsonl')), Buffer.from('{"user_id":"u4","time":1704067300000,"type":"view","brand":"caf\xe9"}\n', 'latin1'), 'the exact bytes');
  assert.deepEqual(await read('replay-utf8.jsonl', mapping), [{ kind: 'event', userId: 'u4', time: 1704067300000, type: 'view', attrs: { brand: 'café' } }]);
});

/** A gzip file the `file` sink wrote: `members` members of `perMember` events each (time i for the i-th), and where each member starts. */
async function sinkWrittenGzip(name: string, members: number, perMember: number): Promise<{ path: string; bytes: Buffer; starts: number[] }> {
  const path = join(dir, name);
  const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir }));
  await sink.open?.();
  for (let member = 0; member < members; member++) {
    for (let i = member * perMember; i < (member + 1) * perMember; i++) sink.write({ kind: 'event', userId: `u${i}`, time: i, type: 'view', attrs: { pad: 'x'.repeat(i % 50) } } as StreamRecord);
    await sink.flush?.();
    await sink.flush?.(); // idle: the member ends
  }
  await sink.close();
  const bytes = readFileSync(path);
  const starts: number[] = [];
  for (let at = bytes.indexOf(Buffer.from([0x1f, 0x8b, 8])); at >= 0; at = bytes.indexOf(Buffer.from([0x1f, 0x8b, 8]), at + 1)) starts.push(at);
  // The close may end the file with an empty member (20 bytes): it holds no line.
  assert.ok(starts.length === members || (starts.length === members + 1 && bytes.length - starts[members]! === 20), `members at ${starts}`);
  return { path, bytes, starts };
}

/** The mapping that reads back what a `file` sink wrote. */
const sinkMapping = { fields: { user_id: 'userId', session_id: 'sessionId', item_id: 'itemId' }, time_format: 'epoch_ms', attributes_field: 'attrs' };

test('gzip: a damaged member in the middle of a file the sink wrote (a wrong CRC; cut short, the next member after it) costs its own lines only: the members after it are read, its lines dead-lettered with the reason, line numbers going on; countRecords counts the same', async () => {
  const perMember = 500;
  const { bytes, starts } = await sinkWrittenGzip('resync-source.jsonl.gz', 6, perMember);
  const wrongCrc = Buffer.from(bytes);
  wrongCrc[starts[3]! - 8]! ^= 0xff; // the third member's CRC
  // The third member cut in its deflate data, the fourth right after (as a writer that lost the end of one leaves it).
  const cutAt = Math.floor((starts[2]! + starts[3]!) / 2);
  const cut = Buffer.concat([bytes.subarray(0, cutAt), bytes.subarray(starts[3])]);
  const resumedAt = cutAt;
  const all = Array.from({ length: 6 * perMember }, (_, i) => i);
  for (const [name, damaged] of Object.entries({ wrongCrc, cut })) {
    const path = join(dir, `resync-${name}.jsonl.gz`);
    writeFileSync(path, damaged);
    const config = { path, mapping: sinkMapping } as never;
    const context = testContext({ batchSize: 1000 });
    const source = await fileSource.create(config, context);
    const times: number[] = [];
    for await (const batch of source.read()) times.push(...batch.map((event) => event.time));
    // The cut member's deflate data runs on into the next member's bytes: zlib inflates some of them (garbage) before
    // it fails. Before: its lines and that garbage were read, the garbage lines dead-lettered as malformed JSON (or
    // read as events, had they parsed). Now the member's text, garbage and all, is the one dead letter's.
    assert.equal(context.deadLetters.length, 1, `${name}: ${context.deadLetters.map((dead) => dead.reason).join('; ')}`);
    const dead = context.deadLetters[0]!;
    const before = dead.origin!.line! - 1; // lines read before the damage
    // Before: the lines of the members after the damage were lost, the dead letter said 'the rest of the file is skipped'.
    assert.deepEqual(times.slice(-3 * perMember), all.slice(-3 * perMember), `${name}: the members after the damaged one are read`);
    assert.deepEqual(times.slice(0, 2 * perMember), all.slice(0, 2 * perMember), name);
    if (name === 'wrongCrc') {
      assert.equal(times.length, 5 * perMember);
      assert.equal(context.deadLetters.length, 1);
      assert.equal(
        dead.reason,
        `unreadable gzip data after line 1000 (incorrect data check at compressed byte ${starts[3]! - 8}: a member's text is not what was compressed; its 500 lines are not read (raw is their text)): reading goes on at the gzip member at compressed byte ${starts[3]}, its first line numbered 1001`,
      );
      assert.equal((dead.raw as string).split('\n').length - 1, perMember);
    } else {
      assert.deepEqual(times, [...all.slice(0, 2 * perMember), ...all.slice(-3 * perMember)]);
      assert.equal(before, 2 * perMember);
      assert.match(dead.reason, new RegExp(`^unreadable gzip data after line ${before} \\(.+ at compressed byte \\d+: a member's text inflated before it may be wrong .*; its \\d+ lines are not read \\(raw is their text\\)\\): reading goes on at the gzip member at compressed byte ${resumedAt}, its first line numbered ${before + 1}$`));
      assert.ok((dead.raw as string).startsWith(`{"kind":"event","userId":"u${2 * perMember}",`), String(dead.raw).slice(0, 80));
    }
    assert.equal(dead.origin?.file, path);
    // The progress total: every line read.
    assert.equal(await fileSource.countRecords!(config, dir), before + 3 * perMember, name);
  }
});

test('gzip: resumed from a checkpoint at any batch of a file with a damaged middle member, the run gives the same events and dead letters as one uninterrupted run, each once', async () => {
  const perMember = 500;
  const { bytes, starts } = await sinkWrittenGzip('resync-resume.jsonl.gz', 6, perMember);
  wrongCrcs: {
    bytes[starts[2]! - 8]! ^= 0xff; // the second member's CRC
    bytes[starts[4]! - 8]! ^= 0xff; // the fourth's
  }
  const path = join(dir, 'resync-resume-damaged.jsonl.gz');
  writeFileSync(path, bytes);
  const config = { path, mapping: sinkMapping } as never;
  const whole = testContext({ batchSize: 250 });
  const events: number[] = [];
  for await (const batch of (await fileSource.create(config, whole)).read()) {
    events.push(...batch.map((event) => event.time));
    // Each damaged member's dead letter goes out as the reading passes it, not at the file's end (before: the rest of the file was lost).
    const last = batch.at(-1)!.time;
    // A batch that ends at the line before a damage may come before the gunzip finds it, or after.
    const sent = whole.deadLetters.length;
    assert.ok(sent >= (last >= 2000 ? 2 : last >= 1000 ? 1 : 0) && sent <= (last >= 1499 ? 2 : last >= 499 ? 1 : 0), `${sent} dead letters sent by the batch through time ${last}`);
  }
  assert.equal(events.length, 4 * perMember);
  assert.equal(whole.deadLetters.length, 2);
  const deadLetters = whole.deadLetters.map((dead) => `${dead.origin?.line} ${dead.reason}`);
  for (let stopAfter = 1; stopAfter <= events.length / 250; stopAfter++) {
    const first = testContext({ batchSize: 250 });
    const run = await fileSource.create(config, first);
    const times: number[] = [];
    let batches = 0;
    for await (const batch of run.read()) {
      times.push(...batch.map((event) => event.time));
      if (++batches === stopAfter) break;
    }
    const position = run.position!();
    const again = testContext({ batchSize: 250, resuming: true });
    const resumed = await fileSource.create(config, again);
    resumed.seek!(JSON.parse(JSON.stringify(position)) as SourcePosition);
    for await (const batch of resumed.read()) times.push(...batch.map((event) => event.time));
    assert.deepEqual(times, events, `stopped after batch ${stopAfter} (${JSON.stringify(position)})`);
    assert.deepEqual([...first.deadLetters, ...again.deadLetters].map((dead) => `${dead.origin?.line} ${dead.reason}`), deadLetters, `stopped after batch ${stopAfter}`);
  }
});

test("clicks and the order service's orders as two file sources, each with its own mapping: skip_types [purchase] on the clicks drops the browser's purchase (counted as filtered, no dead letter), so the order paid 2 minutes later is the session's one purchase (was: a config error; without it, two)", async (t) => {
  const dir = tempFolder(t, 'file-orders');
  const clicks = [
    { user_id: 'u1', event_time: '2024-01-01T10:00:00Z', event_type: 'view', product_id: 'i1', price: 20 },
    { user_id: 'u1', event_time: '2024-01-01T10:01:00Z', event_type: 'cart', product_id: 'i1', price: 20 },
    { user_id: 'u1', event_time: '2024-01-01T10:02:00Z', event_type: 'purchase', product_id: 'i1', price: 20, order_id: 'o-1' },
    { user_id: 'u2', event_time: '2024-01-01T10:00:30Z', event_type: 'view', product_id: 'i2', price: 5 },
  ];
  writeFileSync(join(dir, 'clicks.jsonl'), clicks.map((click) => `${JSON.stringify(click)}\n`).join(''));
  writeFileSync(join(dir, 'orders.jsonl'), `${JSON.stringify({ order_id: 'o-1', customer_id: 'u1', created_at: '2024-01-01T10:04:00Z', total: 20 })}\n`);
  const pipeline = (skip: string) => `sources:
  - type: file
    path: clicks.jsonl
    mapping: { fields: { user_id: user_id, time: event_time, type: event_type, item_id: product_id, price: price }${skip} }
  - type: file
    path: orders.jsonl
    mapping: { fields: { user_id: customer_id, time: created_at, price: total }, default_type: purchase }
stages: [{ type: sessionizer, gap: 30m }]
sinks: [{ type: memory, kinds: [session] }]
`;
  const run = await runYaml(pipeline(', skip_types: [purchase]'), { baseDir: dir });
  const sessions = run.outputs[0]!.filter((record) => record.kind === 'session') as unknown as { userId: string; purchased: boolean; counts: Record<string, number>; end: number }[];
  const u1 = sessions.find((session) => session.userId === 'u1');
  assert.deepEqual([u1?.purchased, u1?.counts, u1?.end], [true, { view: 1, cart: 1, purchase: 1 }, Date.parse('2024-01-01T10:04:00Z')], 'the order labels the session it was paid in');
  assert.equal(run.deadLetters.length, 0);
  assert.equal(run.stats.filteredByReason['source-file-0: skip_types: purchase'], 1);
  const both = await runYaml(pipeline(''), { baseDir: dir });
  const doubled = (both.outputs[0]!.find((record) => record.kind === 'session' && record.userId === 'u1') as unknown as { counts: Record<string, number> }).counts;
  assert.equal(doubled.purchase, 2, 'without skip_types the browser and the order service each count the purchase');
});

test('JSONL: a named optional field that vanishes mid-file (a producer renamed price to price_cents under a running pipeline) is warned of with the new field, and every event without it is counted per field in /metrics', async () => {
  const path = join(dir, 'renamed-price.jsonl');
  const line = (i: number, price: string) => `{"user_id":"u${i % 7}","time":"2024-01-01T00:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z","type":"view","item_id":"i${i}","category":${i % 2 === 0 ? '"shoes"' : 'null'},${price}}`;
  const before = Array.from({ length: 1500 }, (_, i) => line(i, '"price":12.5'));
  const after = Array.from({ length: 1200 }, (_, i) => line(1500 + i, '"price_cents":1250'));
  writeFileSync(path, [...before, ...after].join('\n') + '\n');
  const lines: { level: number; msg: string; [field: string]: unknown }[] = [];
  const metrics = new MetricsHub();
  const run = await runYaml(`name: shop\nsources: [{type: file, label: clicks, path: ${path}, mapping: {fields: {item_id: item_id, category: category, price: price}}}]\nsinks: [{type: memory}]\n`, {
    logger: pino({ level: 'info' }, { write: (text: string) => void lines.push(JSON.parse(text)) }),
    metrics,
  });
  assert.equal(run.stats.eventsIn, 2700, 'no event is rejected: each just lacks a price');
  const warned = lines.filter((each) => each.level === 40 && each.field === 'fields.price');
  assert.equal(warned.length, 1, 'said once');
  assert.match(warned[0]!.msg, /renamed-price\.jsonl: the last 1000 events had no fields\.price 'price', though the events before them had it \(fields new since the last record with it: price_cents\): they get no price/);
  assert.deepEqual(warned[0]!.added, ['price_cents']);
  // Null categories are counted (one event in two) but never 1,000 in a row: not warned of.
  assert.equal(lines.filter((each) => each.field === 'fields.category').length, 0);
  const scraped = await metrics.registry.metrics();
  assert.match(scraped, /^tributary_source_field_values_absent_total\{pipeline="shop",stage="clicks",field="price"\} 1200$/m);
  assert.match(scraped, /^tributary_source_field_values_absent_total\{pipeline="shop",stage="clicks",field="category"\} 1350$/m);
  assert.match(scraped, /^tributary_source_field_values_absent_total\{pipeline="shop",stage="clicks",field="item_id"\} 0$/m);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { csvColumns, decodeRecords, originOf, type DecodeConfig } from 'tributary';
import { testContext } from 'tributary/testing';
import { parse as parseCsvSync } from 'csv-parse/sync';
// The readers inside decodeRecords, held to csv-parse and to each other (not public API).
import { csvRecordPieces, parseCsvRun } from '../../core/csv-records.js';
import { plainRowStop } from '../../core/decode.js';
import { createRandom } from './shoppers.js';

/** Line ends between a random file's records: one kind, or each picked at random. */
type LineEnds = '\n' | '\r\n' | '\r' | 'mixed';

/**
 * Records of a random CSV file (its header first): plain ones mostly, and each kind csv-parse has to
 * read itself. `strayLineEnds`: some rows hold an unquoted `\n` or `\r` (a line end of its own).
 */
function randomRecords(random: () => number, delimiter: string, rows: number, strayLineEnds = true): string[] {
  const d = delimiter;
  const kinds = [
    (i: number) => `${i}${d}u${i % 13}${d}view${d}brand ${i}`,
    (i: number) => `${i}${d}u${i % 13}${d}cart${d}`,
    (i: number) => `${i}${d}\u00fc${i % 5}${d}view${d}caf\u00e9 \ud83d\ude00`,
    (i: number) => `${i}${d}u${i}${d}view${d}"quoted${d} with ""quotes"""`,
    (i: number) => `${i}${d}u${i}${d}view${d}"two\nlines"`,
    (i: number) => `${i}${d}u"${i}${d}view${d}stray quote`,
    (i: number) => `${i}${d}u${i}`,
    () => '',
    (i: number) => `later${d}u${i}${d}view${d}x`,
    (i: number) => `${i}${d}u${i}${d}view${d}x${d}extra`,
    (i: number) => `${i}${d}u${i}${d}view${d}""`,
    (i: number) => `${i}${d}"u${i}"x${d}view${d}"a""${d}\r\nb"`,
    (i: number) => `${i}${d}u${i}${d}view${d}"a\rb"${d}"c\r\n\nd"`,
    (i: number) => `${i}${d}u${i}${d}view${d}lone\nline end`,
    (i: number) => `${i}${d}u${i}${d}view${d}lone\rcarriage return`,
  ];
  const weights = [40, 8, 6, 2, 1, 1, 2, 2, 2, 2, 1, 1, 1, strayLineEnds ? 1 : 0, strayLineEnds ? 1 : 0];
  const total = weights.reduce((a, b) => a + b, 0);
  const records = [`time${d}user_id${d}type${d}brand`];
  for (let i = 0; i < rows; i++) {
    let pick = random() * total;
    let k = 0;
    while (pick >= weights[k]!) pick -= weights[k++]!;
    records.push(kinds[k]!(i));
  }
  return records;
}

/**
 * `records` as a file: each followed by a line end (the last one half the time), of one kind or
 * picked at random. Never a `\n` right after a `\r` line end (an empty record between them): the
 * two would be one `\r\n`, and the file a line short of the same records joined by `\n`.
 */
function joinRecords(random: () => number, records: string[], lineEnds: LineEnds, bom: boolean): string {
  const kinds = ['\n', '\r\n', '\r'];
  let text = bom ? '\ufeff' : '';
  for (const record of records) {
    text += record;
    text += lineEnds !== 'mixed' ? lineEnds : text.endsWith('\r') ? kinds[1 + Math.floor(random() * 2)]! : kinds[Math.floor(random() * 3)]!;
  }
  return text;
}

/** A CSV file of random rows (see {@link randomRecords}); half of them without a line end after the last. */
function randomCsv(random: () => number, delimiter: string, lineEnds: LineEnds, bom: boolean, rows: number, strayLineEnds = true): string {
  const text = joinRecords(random, randomRecords(random, delimiter, rows, strayLineEnds), lineEnds, bom);
  return random() < 0.5 ? text.replace(/(\r\n|\n|\r)$/, '') : text;
}

/** `bytes` in chunks of `chunkSize`, or cut at the given offsets. */
function chunksOf(bytes: Buffer, chunkSize: number | number[]): Buffer[] {
  const cuts = typeof chunkSize === 'number' ? [] : [...chunkSize, bytes.length];
  if (typeof chunkSize === 'number') for (let at = chunkSize; at < bytes.length; at += chunkSize) cuts.push(at);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    if (cut > from) chunks.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  if (from < bytes.length) chunks.push(bytes.subarray(from));
  return chunks;
}

async function decodeAll(
  bytes: Buffer,
  chunkSize: number | number[],
  config: DecodeConfig,
  plainCsvRows: boolean,
): Promise<{ events: string[]; deadLetters: string[]; throughByte: number; throughLine: number; unterminated: number | undefined }> {
  const chunks = chunksOf(bytes, chunkSize);
  const context = testContext();
  const events: string[] = [];
  let throughByte = 0;
  let throughLine = 0;
  let unterminated: number | undefined;
  for await (const batch of decodeRecords(Readable.from(chunks), config, context, { source: 's', file: 'f.csv', format: 'csv', batchSize: 7, plainCsvRows })) {
    for (const e of batch.events) events.push(`${originOf(e)?.line}: ${JSON.stringify(e)}`);
    if (batch.throughByte !== undefined) throughByte = batch.throughByte;
    throughLine = batch.throughLine;
    unterminated = batch.unterminated;
  }
  // By line: a malformed row is said as it is found, ahead of the rows being mapped.
  const deadLetters = [...context.deadLetters].sort((a, b) => (a.origin?.line ?? 0) - (b.origin?.line ?? 0)).map((d) => `${d.origin?.line}: ${d.reason} | ${JSON.stringify(d.raw)}`);
  return { events, deadLetters, throughByte, throughLine, unterminated };
}

test('CSV: rows split on the delimiter decode exactly as the quoted-row reader (held to csv-parse below) reads them (events, dead letters, lines), whatever the file', async () => {
  const random = createRandom(5);
  let files = 0;
  for (const delimiter of [',', ';', '\t']) {
    for (const lineEnds of ['\n', '\r\n', '\r', 'mixed'] as const) {
      for (const bom of [false, true]) {
        for (let round = 0; round < 2; round++) {
          const text = randomCsv(random, delimiter, lineEnds, bom, 300);
          const bytes = Buffer.from(text);
          const config: DecodeConfig = { csv: { delimiter }, mapping: { time_format: 'epoch_ms', attributes: ['brand'] } };
          const reference = await decodeAll(bytes, 1 << 16, config, false);
          assert.ok(reference.events.length > 100, `${reference.events.length} events`);
          for (const chunkSize of [5, 64, 1 << 16]) {
            const split = await decodeAll(bytes, chunkSize, config, true);
            const label = `delimiter ${JSON.stringify(delimiter)}, line ends ${JSON.stringify(lineEnds)}, ${bom ? 'BOM' : 'no BOM'}, round ${round}, chunks of ${chunkSize}`;
            assert.deepEqual(split.events, reference.events, label);
            assert.deepEqual(split.deadLetters, reference.deadLetters, label);
            // A position never behind csv-parse's (which ends at its last row read, not at a skipped one).
            assert.ok(split.throughByte >= reference.throughByte && split.throughByte <= bytes.length, `${label}: through byte ${split.throughByte}`);
          }
          files++;
        }
      }
    }
  }
  assert.equal(files, 48);
});

/**
 * csv-parse's row of a whole file: its fields, its own text (csv-parse's raw also holds the empty
 * lines before it and its line end), its line. Its record delimiter: by default the first line end
 * it meets, and then only that one; given a list, any of them.
 */
function csvParseRows(bytes: Buffer, delimiter: string, recordDelimiter?: string | string[]): string[] {
  const options = { skip_records_with_error: true, raw: true, info: true, relax_quotes: true, relax_column_count: true, skip_empty_lines: true, bom: true } as const;
  let crlfInside = 0;
  return (parseCsvSync(bytes, { ...options, delimiter, ...(recordDelimiter ? { record_delimiter: recordDelimiter } : {}) }) as unknown as { record: string[]; raw: string; info: { lines: number } }[]).map((r) => {
    const raw = r.raw.replace(/^[\r\n]+/, '').replace(/\r?\n$|\r$/, '');
    // csv-parse counts a `\r\n` inside a quoted field as two lines.
    for (let at = raw.indexOf('\r\n'); at !== -1; at = raw.indexOf('\r\n', at + 2)) crlfInside++;
    // csv-parse's raw text drops all but one character of a longer delimiter ("a|b" for "a||b"): not compared then.
    return JSON.stringify([r.info.lines - crlfInside, r.record, delimiter.length === 1 ? raw : '']);
  });
}

test('CSV records: runs of whole records, each split by parseCsvRun, give the rows, texts and lines csv-parse gives the whole file with every line end a record delimiter; the same as its default on a file with one kind', async () => {
  const random = createRandom(11);
  for (const delimiter of [',', '\t', '||']) {
    for (const eol of ['\n', '\r\n', '\r', 'mixed'] as const) {
      for (const bom of [false, true]) {
        // One kind of line end outside quotes, or any: mixed between rows, and a lone one inside a row.
        const text = randomCsv(random, delimiter, eol, bom, 400, eol === 'mixed');
        const bytes = Buffer.from(text);
        const whole = csvParseRows(bytes, delimiter, ['\r\n', '\n', '\r']);
        if (eol !== 'mixed') assert.deepEqual(csvParseRows(bytes, delimiter), whole, `${JSON.stringify(eol)}: csv-parse's default reads a file of one kind of line end alike`);
        for (const chunkSize of [1, 3, 64, 1 << 16]) {
          const label = `delimiter ${JSON.stringify(delimiter)}, line ends ${JSON.stringify(eol)}, ${bom ? 'BOM' : 'no BOM'}, chunks of ${chunkSize}`;
          const chunks: Buffer[] = [];
          for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
          const runs: Buffer[] = [];
          const parsed: string[] = [];
          let lineEnds = 0;
          for await (const piece of csvRecordPieces(Readable.from(chunks), { delimiter, quote: '"', maxRecordBytes: 1 << 20, atFileStart: true })) {
            assert.equal(piece.kind, 'records', label);
            if (piece.kind !== 'records') continue;
            for (const row of parseCsvRun(piece.bytes, { delimiter, quote: '"', atFileStart: runs.length === 0 })) {
              parsed.push(JSON.stringify([1 + lineEnds + row.lineEnds, row.fields, delimiter.length === 1 ? row.raw : '']));
              assert.ok(row.end > 0 && row.end <= piece.bytes.length, `${label}: row end ${row.end}`);
            }
            runs.push(piece.bytes);
            lineEnds += piece.lineEnds;
          }
          assert.ok(Buffer.concat(runs).equals(bytes), `${label}: every byte in one run, in order`);
          assert.deepEqual(parsed, whole, label);
          assert.equal(lineEnds, (text.match(/\r\n|\n|\r/g) ?? []).length, `${label}: line ends`);
        }
      }
    }
  }
});

test('CSV: a row\'s line is the file\'s line it starts on, also after a quoted field that holds a CRLF line end, and for a dead letter of several lines', async () => {
  // csv-parse alone counts such a line end as two lines. A row of several lines is found where it
  // starts (a dead letter's line was where it ended: 11 and 14 here, not where a person looks).
  const text =
    'time,user_id,type,brand\r\n1,u1,view,a\r\n2,u2,view,"two\r\nlines"\r\n3,u3,view,"three\r\nmore\r\nlines"\r\n4,u4,view,x,extra\r\n5,u5,view,b\r\n' +
    '6,u6,view,"too","many\r\nfields"\r\nseven,u7,view,"not a\r\ntime\r\nat all"\r\n8,u8,view,c\r\n';
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' } };
  for (const plainCsvRows of [false, true]) {
    for (const chunkSize of [3, 1 << 16]) {
      const label = `plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
      const { events, deadLetters, throughLine } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
      assert.deepEqual(
        events.map((e) => Number(e.split(':')[0])),
        [2, 3, 5, 9, 15],
        label,
      );
      assert.deepEqual(
        deadLetters.map((d) => d.split(':')[0]),
        ['8', '10', '12'],
        label,
      );
      assert.equal(throughLine, 15, label);
    }
  }
});

/** Each event as `line: userId brand`. */
const eventLines = (events: string[]): string[] =>
  events.map((e) => {
    const event = JSON.parse(e.slice(e.indexOf(' ') + 1)) as { userId: string; attrs?: { brand?: string } };
    return `${e.slice(0, e.indexOf(':'))}: ${event.userId}${event.attrs?.brand === undefined ? '' : ` ${JSON.stringify(event.attrs.brand)}`}`;
  });

test('CSV: a CRLF header with LF rows (a file appended to on two systems) is read row by row, however chunks split its \\r\\n', async () => {
  const bytes = Buffer.from('time,user_id,type\r\n1,u1,view\n2,u2,view\n');
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' } };
  for (const plainCsvRows of [true, false]) {
    for (const chunks of [1, 1 << 16, ...Array.from({ length: bytes.length - 1 }, (_, i) => [i + 1])]) {
      const label = `plain rows ${plainCsvRows}, chunks ${JSON.stringify(chunks)}`;
      const { events, deadLetters, throughLine, throughByte } = await decodeAll(bytes, chunks, config, plainCsvRows);
      assert.deepEqual(eventLines(events), ['2: u1', '3: u2'], label);
      assert.deepEqual(deadLetters, [], label);
      assert.deepEqual([throughLine, throughByte], [3, bytes.length], label);
    }
  }
});

test('CSV: each of \\r\\n, \\n and \\r outside quotes ends a row, whatever the file\'s first line ended with; a quoted field keeps any of them', async () => {
  // A bare \n in an unquoted field of a CRLF file (or a bare \r in an LF one) ends its row, as in
  // Python's csv module: the rest of that line is a row of its own (here one field short of a row).
  const text =
    'time,user_id,type,brand\r\n' + // 1
    '1,u1,view,two\nlines\r\n' + // 2, and 3: "lines"
    '2,u2,view,x\ry\n' + // 4, and 5: "y"
    '3,u3,view,"a\nb"\n' + // 6-7
    '4,u4,view,"c\r\nd"\r' + // 8-9
    '5,u5,view,"e\rf"\r\n' + // 10-11
    '6,u6,view,two\nlines\r\n' + // 12, and 13: "lines"
    '7,u7,view,g'; // 14, no line end
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms', attributes: ['brand'] } };
  for (const plainCsvRows of [true, false]) {
    for (const chunkSize of [1, 2, 3, 5, 1 << 16]) {
      const label = `plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
      const { events, deadLetters, throughLine, unterminated } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
      assert.deepEqual(eventLines(events), ['2: u1 "two"', '4: u2 "x"', '6: u3 "a\\nb"', '8: u4 "c\\r\\nd"', '10: u5 "e\\rf"', '12: u6 "two"', '14: u7 "g"'], label);
      assert.deepEqual(deadLetters, ['3: CSV row has 1 fields, expected 4 | "lines"', '5: CSV row has 1 fields, expected 4 | "y"', '13: CSV row has 1 fields, expected 4 | "lines"'], label);
      // The last row, without a line end, is read but not counted: the position stays before it.
      assert.deepEqual([throughLine, unterminated], [13, '7,u7,view,g'.length], label);
    }
  }
});

test('CSV: rows ending in \\r alone, more bytes of them than max_record_bytes, are rows (not one line over the bound)', async () => {
  const rows = Array.from({ length: 300 }, (_, i) => `${i},u${i % 7},view`);
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' }, max_record_bytes: 1024 };
  for (const text of [`time,user_id,type\r${rows.join('\r')}\r`, `time,user_id,type\n${rows.slice(0, 10).join('\n')}\n${rows.slice(10).join('\r')}`]) {
    for (const plainCsvRows of [true, false]) {
      for (const chunkSize of [100, 1000, 1 << 16]) {
        const label = `${JSON.stringify(text.slice(17, 20))}, plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
        const { events, deadLetters, throughLine, unterminated } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
        assert.deepEqual(eventLines(events), rows.map((_, i) => `${i + 2}: u${i % 7}`), label);
        assert.deepEqual(deadLetters, [], label);
        // The second file's last row has no line end: read, not counted.
        assert.deepEqual([throughLine, unterminated], text.endsWith('\r') ? [301, undefined] : [300, rows.at(-1)!.length], label);
      }
    }
  }
});

test('CSV: a dead-lettered row\'s line is right after the line ends change, before and after a quoted row, and around empty lines', async () => {
  const text =
    'time,user_id,type\r\n' + // 1
    '1,u1,view\r\n' + // 2
    '2,u2\n' + // 3: a field short
    '\n' + // 4: empty
    '3,u3,view\r' + // 5
    '4,u4,view,x\r\n' + // 6: a field over
    '5,"u5",view\n' + // 7: quoted (the split path hands over here)
    '6,u6\r' + // 8: a field short
    '\r\n' + // 9: empty (a \r\n after a \r)
    '7,u7,view\r\n' + // 10
    '8,"u8\r\nx",view,y\n' + // 11-12: a field over
    '9,u9,view'; // 13
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' } };
  for (const plainCsvRows of [true, false]) {
    for (const chunkSize of [1, 2, 3, 7, 1 << 16]) {
      const label = `plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
      const { events, deadLetters, throughLine, throughByte, unterminated } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
      assert.deepEqual(eventLines(events), ['2: u1', '5: u3', '7: u5', '10: u7', '13: u9'], label);
      assert.deepEqual(deadLetters.map((d) => d.split(' |')[0]), ['3: CSV row has 2 fields, expected 3', '6: CSV row has 4 fields, expected 3', '8: CSV row has 2 fields, expected 3', '11: CSV row has 4 fields, expected 3'], label);
      assert.deepEqual([throughLine, throughByte, unterminated], [12, Buffer.byteLength(text) - '9,u9,view'.length, '9,u9,view'.length], label);
    }
  }
});

test('CSV: a file whose line ends vary (between rows, and a lone one inside a row) decodes as the same records with \\n line ends: events, dead letters, lines', async () => {
  const random = createRandom(23);
  for (const delimiter of [',', '\t']) {
    for (let round = 0; round < 3; round++) {
      const records = randomRecords(random, delimiter, 300);
      const bom = round === 1;
      // The last record without a line end in one round.
      const end = (text: string): Buffer => Buffer.from(round === 2 ? text.replace(/(\r\n|\n|\r)$/, '') : text);
      const mixed = end(joinRecords(random, records, 'mixed', bom));
      const lf = end(joinRecords(random, records, '\n', bom));
      const config: DecodeConfig = { csv: { delimiter }, mapping: { time_format: 'epoch_ms', attributes: ['brand'] } };
      const reference = await decodeAll(lf, 1 << 16, config, false);
      assert.ok(reference.events.length > 100, `${reference.events.length} events`);
      assert.ok(mixed.includes('\r\n') && mixed.includes('\r3') && /[^\r]\n/.test(mixed.toString()), 'every kind of line end between rows');
      for (const plainCsvRows of [true, false]) {
        for (const chunkSize of [1, 7, 64, 1 << 16]) {
          const label = `delimiter ${JSON.stringify(delimiter)}, round ${round}, plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
          const read = await decodeAll(mixed, chunkSize, config, plainCsvRows);
          assert.deepEqual(read.events, reference.events, label);
          assert.deepEqual(read.deadLetters, reference.deadLetters, label);
          assert.equal(read.throughLine, reference.throughLine, label);
          assert.equal(read.unterminated === undefined, round !== 2, label);
          assert.equal(read.throughByte + (read.unterminated ?? 0), mixed.length, label);
        }
      }
    }
  }
});

test('CSV: a record over max_record_bytes, or a quoted field never closed, ends at its first line end of any kind, however chunks split it; reading goes on at the next line', async () => {
  const long = 'x'.repeat(5000);
  const text =
    'time,user_id,type,brand\r\n' + // 1
    '1,u1,view,a\n' + // 2
    `2,u2,view,${long}\r` + // 3: over the bound
    `3,u3,view,"${long}"\r\n` + // 4: over the bound
    '4,u4,view,"never closed\r' + // 5: its first line
    '5,u5,view,b\r'; // 6
  const bytes = Buffer.from(text);
  const afterEachCr = [...text.matchAll(/\r/g)].map((m) => m.index + 1);
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' }, max_record_bytes: 2048 };
  for (const plainCsvRows of [true, false]) {
    for (const chunks of [1, 7, 1000, 1 << 16, afterEachCr, afterEachCr.map((at) => at - 1)]) {
      const label = `plain rows ${plainCsvRows}, chunks ${JSON.stringify(chunks)}`;
      const { events, deadLetters, throughLine, throughByte } = await decodeAll(bytes, chunks, config, plainCsvRows);
      assert.deepEqual(eventLines(events), ['2: u1', '6: u5'], label);
      assert.deepEqual(
        deadLetters.map((d) => d.slice(0, d.indexOf(' | '))),
        [
          '3: record of 5010 bytes is longer than max_record_bytes (2048); its first 1024 bytes are kept',
          '4: record of 5012 bytes is longer than max_record_bytes (2048); its first 1024 bytes are kept',
          '5: malformed CSV: the input ended inside a quoted field starting at line 5; the lines after it are read as rows',
        ],
        label,
      );
      assert.ok(deadLetters[2]!.endsWith(' | "4,u4,view,\\"never closed"'), `${label}: ${deadLetters[2]}`);
      assert.deepEqual([throughLine, throughByte], [6, bytes.length], label);
    }
  }
});

test('CSV: a quote inside a field is data; a quoted field never closed by the end of the file is a dead letter of its line, and the lines after it are rows', async () => {
  const text = 'time,user_id,type,brand\n1,u1,view,Samsung 55" TV\n2,u2,view,"u"x\n3,u3,view,"say ""hi"""\n4,u4,view,"never closed\n5,u5,view,b\n';
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms', attributes: ['brand'] } };
  for (const plainCsvRows of [false, true]) {
    const { events, deadLetters } = await decodeAll(Buffer.from(text), 8, config, plainCsvRows);
    assert.deepEqual(
      events.map((e) => [Number(e.split(':')[0]), (JSON.parse(e.slice(e.indexOf(' ') + 1)) as { attrs: { brand: string } }).attrs.brand]),
      [[2, 'Samsung 55" TV'], [3, '"u"x'], [4, 'say "hi"'], [6, 'b']],
    );
    assert.deepEqual(deadLetters, ['5: malformed CSV: the input ended inside a quoted field starting at line 5; the lines after it are read as rows | "4,u4,view,\\"never closed"']);
  }
});

test('CSV: a quoted field opened on the last line and never closed: its reason says the input ended inside it, from that line (was: "the next line is read as a new row", of a line there is not)', async () => {
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' } };
  for (const end of ['\n', '\r\n', '']) {
    for (const plainCsvRows of [false, true]) {
      const text = `time,user_id,type\n1,u1,view\n2,u2,"view${end}`;
      const { events, deadLetters } = await decodeAll(Buffer.from(text), 5, config, plainCsvRows);
      const label = `line end ${JSON.stringify(end)}, plain rows ${plainCsvRows}`;
      assert.deepEqual(events.map((e) => Number(e.split(':')[0])), [2], label);
      assert.deepEqual(deadLetters, ['3: malformed CSV: the input ended inside a quoted field starting at line 3 | "2,u2,\\"view"'], label);
    }
  }
});

test('CSV: a quoted field not closed within max_record_bytes: its first line is a dead letter, and the rows after it are read, at their lines', async () => {
  const good = Array.from({ length: 200 }, (_, i) => `${i + 10},u${i},view,b ${i}`);
  const text = `time,user_id,type,brand\n1,u1,view,a\n2,u2,view,"open, never closed\n${good.join('\n')}\n`;
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms', attributes: ['brand'] }, max_record_bytes: 1024 };
  for (const plainCsvRows of [false, true]) {
    for (const chunkSize of [7, 1 << 16]) {
      const { events, deadLetters, throughByte } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
      const label = `plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
      assert.equal(events.length, 201, label);
      assert.deepEqual(events.slice(0, 3).map((e) => Number(e.split(':')[0])), [2, 4, 5], label);
      assert.equal(Number(events[200]!.split(':')[0]), 203, label);
      assert.deepEqual(deadLetters, ['3: malformed CSV: quoted field not closed within max_record_bytes (1024); the next line is read as a new row | "2,u2,view,\\"open, never closed"'], label);
      assert.equal(throughByte, Buffer.byteLength(text), label);
    }
  }
});

test('CSV: a quoted field that closes only past max_record_bytes, lines later: its first line is a dead letter and the lines after it are rows, however the input is chunked (was: in large chunks, one overlong record that took those rows with it)', async () => {
  const text = `time,user_id,type\n1,u1,"${'x'.repeat(600)}\n2,u2,view\n3,u3,${'y'.repeat(600)}"\n4,u4,view\n`;
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' }, max_record_bytes: 1024 };
  for (const plainCsvRows of [false, true]) {
    for (const chunkSize of [7, 512, 1 << 16]) {
      const label = `plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
      const { events, deadLetters, throughLine, throughByte } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
      assert.deepEqual(events.map((e) => Number(e.split(':')[0])), [3, 4, 5], label);
      assert.deepEqual(
        deadLetters.map((d) => d.slice(0, d.indexOf(' | '))),
        ['2: malformed CSV: quoted field not closed within max_record_bytes (1024); the next line is read as a new row'],
        label,
      );
      assert.deepEqual([throughLine, throughByte], [5, Buffer.byteLength(text)], label);
    }
  }
});

test('CSV: a record past max_record_bytes outside a quoted field (one holding a line end closed before the bound) is one dead letter through its line end, a quote after the bound opening no field, however the input is chunked (was: in small chunks its first line alone, and its next line read as a row)', async () => {
  const spanning = `1,u1,"vi\new",b,${'x'.repeat(1100)}`; // lines 2-3
  const quoteAfter = `3,u3,view,${'y'.repeat(1100)},"c`; // line 5; `d"` on line 6 is a row of its own
  const text = `time,user_id,type,b,c\n${spanning}\n2,u2,view,b,c\n${quoteAfter}\nd"\n4,u4,view,b,c\n`;
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' }, max_record_bytes: 1024 };
  for (const plainCsvRows of [false, true]) {
    for (const chunkSize of [1, 7, 512, 1100, 1 << 16]) {
      const label = `plain rows ${plainCsvRows}, chunks of ${chunkSize}`;
      const { events, deadLetters, throughLine, throughByte } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
      assert.deepEqual(events.map((e) => Number(e.split(':')[0])), [4, 7], label);
      assert.deepEqual(
        deadLetters.map((d) => d.slice(0, d.indexOf(' | '))),
        [
          `2: record of ${spanning.length} bytes is longer than max_record_bytes (1024); its first 1024 bytes are kept`,
          `5: record of ${quoteAfter.length} bytes is longer than max_record_bytes (1024); its first 1024 bytes are kept`,
          '6: CSV row has 1 fields, expected 5',
        ],
        label,
      );
      assert.deepEqual([throughLine, throughByte], [7, Buffer.byteLength(text)], label);
    }
  }
});

test('CSV and JSON lines: a record over max_record_bytes is a dead letter with its length and first 1 KiB, and reading goes on', async () => {
  const long = 'x'.repeat(5000);
  const csv = `time,user_id,type,brand\n1,u1,view,a\n2,u2,view,${long}\n3,u3,view,"${long}"\n4,u4,view,b\n`;
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms', attributes: ['brand'] }, max_record_bytes: 2048 };
  for (const [plainCsvRows, chunkSize] of [[false, 1000], [false, 1 << 16], [true, 1000], [true, 1 << 16]] as const) {
    const { events, deadLetters } = await decodeAll(Buffer.from(csv), chunkSize, config, plainCsvRows);
    assert.deepEqual(events.map((e) => Number(e.split(':')[0])), [2, 5], `plain rows ${plainCsvRows}, chunks of ${chunkSize}`);
    assert.deepEqual(
      deadLetters.map((d) => d.slice(0, d.indexOf(' | '))),
      ['3: record of 5010 bytes is longer than max_record_bytes (2048); its first 1024 bytes are kept', '4: record of 5012 bytes is longer than max_record_bytes (2048); its first 1024 bytes are kept'],
      `plain rows ${plainCsvRows}, chunks of ${chunkSize}`,
    );
    assert.ok(deadLetters.every((d) => d.length < 1200), 'only the first bytes are kept');
  }
  const jsonl = `{"user_id":"u1","time":1,"type":"view"}\n{"user_id":"u2","time":2,"type":"view","pad":"${long}"}\n{"user_id":"u3","time":3,"type":"view"}\n`;
  const context = testContext();
  const lines: number[] = [];
  for await (const batch of decodeRecords(Readable.from([Buffer.from(jsonl)]), { mapping: { time_format: 'epoch_ms' }, max_record_bytes: 2048 }, context, { source: 's', file: 'f.jsonl', format: 'jsonl', batchSize: 7 })) {
    for (const e of batch.events) lines.push(originOf(e)!.line!);
  }
  assert.deepEqual(lines, [1, 3]);
  assert.deepEqual(context.deadLetters.map((d) => [d.origin?.line, d.reason]), [[2, `record of ${jsonl.split('\n')[1]!.length} bytes is longer than max_record_bytes (2048); its first 1024 bytes are kept`]]);
});

test('CSV: the split path stops at the first row that is not plain (a quote, a lone \\r), and only there: \\n and \\r\\n rows mixed are plain', async () => {
  const plain = Array.from({ length: 50 }, (_, i) => `${i},u${i},view,b`);
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' } };
  const withQuote = [...plain.slice(0, 30), '30,u30,view,"b,\nc"', ...plain.slice(31)];
  for (const rows of [plain, withQuote]) {
    const bytes = Buffer.from(`time,user_id,type,brand\n${rows.join('\n')}\n`);
    const fast = await decodeAll(bytes, 16, config, true);
    const reference = await decodeAll(bytes, 16, config, false);
    assert.deepEqual(fast, reference);
    assert.equal(fast.events.length, 50);
  }
  // Where it stops, line by line (a chunk's lines share one text; the next chunk may hold the same characters).
  const linesOf = (text: string): [number, number][] => {
    const lines: [number, number][] = [];
    for (let start = 0, end = text.indexOf('\n'); end !== -1; start = end + 1, end = text.indexOf('\n', start)) lines.push([start, end]);
    return lines;
  };
  const stops = (chunks: string[]): boolean[] => {
    const stop = plainRowStop('"');
    return chunks.flatMap((chunk) => linesOf(chunk).map(([start, end]) => stop(chunk, start, end)));
  };
  assert.deepEqual(stops(['a,b\r\nc,d\r\n', 'a,b\r\nc,d\r\n'.slice(0)]), [false, false, false, false], 'CRLF rows in chunks of equal text');
  assert.deepEqual(stops(['a,b\nc,"d"\ne,f\n']), [false, true, false]);
  assert.deepEqual(stops(['a,b\r\nc,d\ne,f\r\n', 'g,h\ni,j\r\n']), [false, false, false, false, false], 'CRLF and LF rows');
  assert.deepEqual(stops(['a,b\nc\rd,e\n']), [false, true], 'a lone \\r inside a line');
  assert.deepEqual(stops(['a,b\nc,d\r\re,f\n']), [false, true], 'a lone \\r before a \\r\\n');
  assert.equal(plainRowStop('"')('c,d\r', 0, 4), true, 'a \\r last in the stream, with no newline after it');
});

test('JSON lines: an attribute nested thousands deep is a dead letter, and the lines after it are read', async () => {
  const deep = `${'['.repeat(50_000)}${']'.repeat(50_000)}`;
  const text = `{"user_id":"u1","time":1,"type":"view"}\n{"user_id":"u2","time":2,"type":"view","brand":${deep}}\n{"user_id":"u3","time":3,"type":"view","brand":"b"}\n`;
  const context = testContext();
  const users: string[] = [];
  for await (const batch of decodeRecords(Readable.from([Buffer.from(text)]), { mapping: { time_format: 'epoch_ms', attributes: ['brand'] } }, context, { source: 's', file: 'f.jsonl', format: 'jsonl', batchSize: 7 })) {
    for (const e of batch.events) users.push(e.userId);
  }
  assert.deepEqual(users, ['u1', 'u3']);
  assert.deepEqual(context.deadLetters.map((d) => [d.origin?.line, d.reason]), [[2, 'brand: attribute nested deeper than 64 levels']]);
});

test('CSV: the header row read alone (a resumed file) is read by the rows\' reader: quotes, empty lines and a BOM before it; never closed, it is an error', async () => {
  const open = (text: string) => () => Readable.from([Buffer.from(text)]);
  assert.deepEqual(await csvColumns(open('\ufeff\n\n"time","user,id",type\n1,u1,view\n')), ['time', 'user,id', 'type']);
  assert.deepEqual(await csvColumns(open('time;user_id\r\n1;u1\r\n'), { delimiter: ';' }), ['time', 'user_id']);
  assert.deepEqual(await csvColumns(open('a,b'), { columns: ['x', 'y'] }), ['x', 'y']);
  assert.equal(await csvColumns(open('a,b\n'), { header: false }), undefined);
  await assert.rejects(csvColumns(open(`time,"user\n${'1,u1\n'.repeat(400)}`), {}, 1024), /the CSV header row is unreadable: quoted field not closed within max_record_bytes \(1024\)/);
  // Said from the line it starts on, past the empty lines before it.
  await assert.rejects(csvColumns(open('\n\ntime,"user\n')), /the CSV header row is unreadable: the input ended inside a quoted field starting at line 3$/);
});

test('CSV: a header row that cannot be read (not UTF-8, over max_record_bytes, a quote never closed) fails the source, read with the rows or alone (a resume); never does the first data row name the columns', async () => {
  const rows = '1,u1,view\n2,u2,view\n';
  const headers: [string, Buffer, RegExp][] = [
    ['Latin-1', Buffer.from('time,user_id,type,march\xe9\n', 'latin1'), /the CSV header row is unreadable: it is not UTF-8 text/],
    ['Latin-1, after a quoted row', Buffer.from('time,"user_id",type,march\xe9\n', 'latin1'), /the CSV header row is unreadable: it is not UTF-8 text/],
    ['overlong', Buffer.from(`time,user_id,type${',x'.repeat(600)}\n`), /the CSV header row is unreadable: 1217 bytes, longer than max_record_bytes \(1024\)/],
    ['never closed', Buffer.from('time,user_id,"type\n'), /the CSV header row is unreadable: the input ended inside a quoted field starting at line 1/],
  ];
  for (const [what, header, error] of headers) {
    const bytes = Buffer.concat([header, Buffer.from(rows)]);
    for (const plainCsvRows of [true, false]) {
      const context = testContext();
      const read = async (): Promise<void> => {
        for await (const _batch of decodeRecords(Readable.from([bytes]), { mapping: { time_format: 'epoch_ms' }, max_record_bytes: 1024 }, context, { source: 's', file: 'f.csv', format: 'csv', batchSize: 7, plainCsvRows }));
      };
      await assert.rejects(read(), (thrown: Error) => error.test(thrown.message) && thrown.message.startsWith('f.csv: '), `${what}, plain rows ${plainCsvRows}`);
      assert.deepEqual(context.deadLetters, [], `${what}: not a dead letter, with the next row taken for the header`);
      // Named in csv.columns, the row is passed over as the header, and every row read.
      const named = testContext();
      const events: number[] = [];
      const config: DecodeConfig = { csv: { header: true, columns: ['time', 'user_id', 'type'] }, mapping: { time_format: 'epoch_ms' }, max_record_bytes: 1024 };
      for await (const batch of decodeRecords(Readable.from([bytes]), config, named, { source: 's', file: 'f.csv', format: 'csv', batchSize: 7, plainCsvRows })) events.push(...batch.events.map((e) => e.time));
      assert.deepEqual([events, named.deadLetters], [[1, 2], []], `${what}, plain rows ${plainCsvRows}, with csv.columns`);
    }
    await assert.rejects(csvColumns(() => Readable.from([bytes]), {}, 1024), error, `${what}, read alone`);
  }
});

test('JSON lines and CSV: UTF-16 or UTF-32 text (a byte order mark) fails the source at once, naming the encoding and how to convert it; a UTF-8 BOM, a 1-byte file and a mark split over chunks are read as before', async () => {
  const jsonl = '{"time":1,"user_id":"u1","type":"view"}\n{"time":2,"user_id":"u2","type":"view"}\n';
  const csv = 'time,user_id,type\n1,u1,view\n2,u2,view\n';
  const utf16be = (text: string): Buffer => Buffer.from(text, 'utf16le').swap16();
  const utf32le = (text: string): Buffer => Buffer.concat([...text].map((c) => { const b = Buffer.alloc(4); b.writeUInt32LE(c.codePointAt(0)!); return b; }));
  const encodings: [string, (text: string) => Buffer, RegExp][] = [
    ['UTF-16 LE', (text) => Buffer.from('\ufeff' + text, 'utf16le'), /the text is UTF-16 little-endian \(it starts with the byte order mark FF FE, .*`iconv -f UTF-16 -t UTF-8 f > f\.utf8`/],
    ['UTF-16 BE', (text) => utf16be('\ufeff' + text), /the text is UTF-16 big-endian \(it starts with the byte order mark FE FF/],
    ['UTF-32 LE', (text) => utf32le('\ufeff' + text), /the text is UTF-32 little-endian \(it starts with the byte order mark FF FE 00 00, .*iconv -f UTF-32/],
  ];
  const read = async (chunks: Buffer[], format: 'jsonl' | 'csv', context = testContext()): Promise<number[]> => {
    const times: number[] = [];
    for await (const batch of decodeRecords(Readable.from(chunks), { mapping: { time_format: 'epoch_ms' } }, context, { source: 's', file: 'f', format, batchSize: 7 })) times.push(...batch.events.map((e) => e.time));
    return times;
  };
  for (const [encoding, encode, error] of encodings) {
    for (const [format, text] of [['jsonl', jsonl], ['csv', csv]] as const) {
      const bytes = encode(text);
      for (const chunks of [[bytes], [bytes.subarray(0, 1), bytes.subarray(1, 3), bytes.subarray(3)]]) {
        const context = testContext();
        await assert.rejects(read(chunks, format, context), (thrown: Error) => error.test(thrown.message) && thrown.message.startsWith('f: '), `${encoding} ${format} in ${chunks.length} chunks`);
        assert.deepEqual(context.deadLetters, [], `${encoding} ${format}: no line dead-lettered one by one`);
      }
    }
  }
  // UTF-8, with its BOM or without, whole or a byte at a time; and files shorter than a mark.
  for (const [format, text] of [['jsonl', jsonl], ['csv', csv]] as const) {
    for (const bytes of [Buffer.from(text), Buffer.from('\ufeff' + text)]) {
      assert.deepEqual(await read([bytes], format), [1, 2], `${format}, ${bytes.length} bytes`);
      assert.deepEqual(await read([...bytes].map((b) => Buffer.from([b])), format), [1, 2], `${format}, a byte per chunk`);
    }
  }
  assert.deepEqual(await read([Buffer.from('\n')], 'jsonl'), []);
  assert.deepEqual(await read([], 'csv'), []);
  // Past the file's start (a resume) the stream is not checked: its first bytes are not the file's.
  const resumed = Buffer.from('\ufeff{"time":3,"user_id":"u3","type":"view"}\n', 'utf16le');
  const context = testContext();
  for await (const _batch of decodeRecords(Readable.from([resumed]), { mapping: { time_format: 'epoch_ms' } }, context, { source: 's', file: 'f', format: 'jsonl', batchSize: 7, start: { line: 5 } }));
  assert.equal(context.deadLetters.length, 1, 'read as before: the line is dead-lettered');
});

test('JSON lines and CSV: a record that is not UTF-8 text is a dead letter of its exact bytes (base64), at its line, and reading goes on', async () => {
  const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
  const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
  const binary = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x80]);
  const cases: { format: 'jsonl' | 'csv'; plainCsvRows: boolean; parts: Buffer[] }[] = [
    {
      format: 'jsonl',
      plainCsvRows: false,
      parts: [
        utf8('{"user_id":"u1","time":1,"type":"view"}\n'),
        utf8('{"user_id":"caf\u00e9","time":2,"type":"view"}\n'), // UTF-8, not ASCII: an event
        latin1('{"user_id":"caf\u00e9","time":3,"type":"view"}\n'), // Latin-1: its é is byte 0xE9
        Buffer.concat([binary, utf8('\r\n')]),
        utf8('{"user_id":"u5","time":5,"type":"view"}\n'),
        latin1('{"user_id":"\u00e9","time":6,"type":"view"}'), // the last line, no line end
      ],
    },
    ...[true, false].map((plainCsvRows) => ({
      format: 'csv' as const,
      plainCsvRows,
      parts: [
        utf8('time,user_id,type\n1,u1,view\n2,caf\u00e9,view\n'),
        latin1('3,caf\u00e9,view\n'),
        Buffer.concat([binary, utf8('\n')]),
        utf8('5,"u5",view\n'), // a quote: the quoted-row reader reads from here on
        latin1('6,"\u00e9",view'),
      ],
    })),
  ];
  for (const { format, plainCsvRows, parts } of cases) {
    const bytes = Buffer.concat(parts);
    const expected = format === 'jsonl' ? { events: [1, 2, 5], bad: [3, 4, 6] } : { events: [2, 3, 6], bad: [4, 5, 7] };
    const badBytes = format === 'jsonl' ? [parts[2]!.subarray(0, -1), binary, parts[5]!] : [parts[1]!.subarray(0, -1), binary, parts[4]!];
    for (const chunkSize of [1, 5, 64, 1 << 16]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
      const context = testContext();
      const lines: number[] = [];
      for await (const batch of decodeRecords(Readable.from(chunks), { mapping: { time_format: 'epoch_ms' } }, context, { source: 's', file: 'f', format, batchSize: 7, plainCsvRows })) {
        for (const e of batch.events) lines.push(originOf(e)!.line!);
      }
      const label = `${format}${format === 'csv' ? ` plain rows ${plainCsvRows}` : ''}, chunks of ${chunkSize}`;
      assert.deepEqual(lines, expected.events, label);
      const letters = [...context.deadLetters].sort((a, b) => a.origin!.line! - b.origin!.line!);
      assert.deepEqual(letters.map((d) => d.origin?.line), expected.bad, label);
      assert.deepEqual(letters.map((d) => Buffer.from(String(d.raw), 'base64')), badBytes, label);
      assert.ok(letters.every((d) => d.encoding === 'base64' && /not UTF-8/.test(d.reason)), label);
    }
  }
});

test('JSON lines and CSV: the dead letters of one batch come in input order, a line not UTF-8 or over max_record_bytes among them (was: those first, then the others)', async () => {
  const long = 'x'.repeat(3000);
  const jsonl = Buffer.concat([
    Buffer.from('not json\n{"user_id":"u2","time":2,"type":"view"}\n'),
    Buffer.from('{"user_id":"caf\u00e9","time":3,"type":"view"}\n', 'latin1'),
    Buffer.from(`{"user_id":"u4","time":4,"type":"view","pad":"${long}"}\nnor this\n`),
  ]);
  const csv = Buffer.concat([Buffer.from('time,user_id,type\n1,u1\n'), Buffer.from('2,caf\u00e9,view\n', 'latin1'), Buffer.from('3,u3,view\n4,u4\n')]);
  for (const [format, bytes, expected] of [
    ['jsonl', jsonl, [1, 3, 4, 5]],
    ['csv', csv, [2, 3, 5]],
  ] as const) {
    for (const plainCsvRows of format === 'csv' ? [true, false] : [true]) {
      const context = testContext();
      const events: number[] = [];
      const config: DecodeConfig = { format, mapping: { time_format: 'epoch_ms' }, max_record_bytes: 2048 };
      for await (const batch of decodeRecords(Readable.from([bytes]), config, context, { source: 's', file: `f.${format}`, batchSize: 100, plainCsvRows })) events.push(...batch.events.map((e) => originOf(e)!.line!));
      assert.deepEqual(context.deadLetters.map((d) => d.origin?.line), expected, `${format}, plain rows ${plainCsvRows}`);
      assert.equal(events.length, 1);
    }
  }
});

test('JSON lines: a BOM before the first line is no part of it (as in CSV): the first record is read, not dead-lettered', async () => {
  const text = '\ufeff{"user_id":"u1","time":1,"type":"view"}\n{"user_id":"u2","time":2,"type":"view"}\n';
  for (const chunkSize of [1, 2, 1 << 16]) {
    const context = testContext();
    const users: string[] = [];
    for await (const batch of decodeRecords(Readable.from(chunksOf(Buffer.from(text), chunkSize)), { mapping: { time_format: 'epoch_ms' } }, context, { source: 's', file: 'stdin', format: 'jsonl', batchSize: 7 })) {
      users.push(...batch.events.map((e) => e.userId));
    }
    assert.deepEqual([users, context.deadLetters], [['u1', 'u2'], []], `chunks of ${chunkSize}`);
  }
});

test('CSV: a column named as an Object.prototype member (__proto__, constructor) is a field of the row, read by the mapping that names it, with or without the split path', async () => {
  const csv = '__proto__,constructor,time,type\nu1,c1,1,view\nu2,,2,view\n';
  for (const plainCsvRows of [true, false]) {
    const context = testContext();
    const events: [string, string | undefined][] = [];
    const config: DecodeConfig = { mapping: { time_format: 'epoch_ms', fields: { user_id: '__proto__', item_id: 'constructor' } } };
    for await (const batch of decodeRecords(Readable.from([Buffer.from(csv)]), config, context, { source: 's', file: 'f.csv', format: 'csv', batchSize: 7, plainCsvRows })) {
      events.push(...batch.events.map((e): [string, string | undefined] => [e.userId, e.itemId]));
    }
    assert.deepEqual([events, context.deadLetters], [[['u1', 'c1'], ['u2', undefined]], []], `plain rows ${plainCsvRows}`);
  }
});

test('CSV: a run of rows that is not UTF-8 somewhere still comes in batches of at most batchSize events, each through the row it ends at', async () => {
  // Read by the quoted rows' reader (plainCsvRows false), in one chunk: 40 rows, and one not UTF-8 (dead-lettered)
  // whose text decodes to another length than its bytes (a UTF-8 é, then a Latin-1 one): the run's byte offsets are unknown.
  const rows = Array.from({ length: 40 }, (_, i) => `${i + 1},u${i},view,"b${i}"\n`);
  const bytes = Buffer.concat([Buffer.from('time,user_id,type,brand\n'), Buffer.from(rows.slice(0, 20).join('')), Buffer.from([...Buffer.from('1,u,view,\u00e9'), 0xe9, 0x0a]), Buffer.from(rows.slice(20).join(''))]);
  const context = testContext();
  const sizes: number[] = [];
  const ends: [number, number | undefined][] = [];
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms', attributes: ['brand'] } };
  for await (const batch of decodeRecords(Readable.from([bytes]), config, context, { source: 's', file: 'f.csv', format: 'csv', batchSize: 7, plainCsvRows: false })) {
    sizes.push(batch.events.length);
    ends.push([batch.throughLine, batch.throughByte]);
  }
  // Before: one batch of all 40 (the run's row positions were not known, so it was not cut).
  assert.ok(sizes.every((size) => size <= 7), `batch sizes ${sizes.join(', ')}`);
  assert.equal(sizes.reduce((a, b) => a + b, 0), 40);
  assert.equal(context.deadLetters.length, 1);
  // Each batch ends at a row's line end: byte offsets of line starts, growing, the last the end.
  const lineStarts = new Set([0, ...[...bytes.entries()].filter(([, b]) => b === 0x0a).map(([i]) => i + 1)]);
  assert.ok(ends.every(([, byte]) => byte !== undefined && lineStarts.has(byte)), JSON.stringify(ends));
  assert.deepEqual(ends.at(-1), [42, bytes.length]);
  for (let i = 1; i < ends.length; i++) assert.ok(ends[i]![0] >= ends[i - 1]![0] && ends[i]![1]! >= ends[i - 1]![1]!, JSON.stringify(ends));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { originOf } from 'tributary';
import { testContext } from 'tributary/testing';
import { decodeStream, type DecodeConfig } from './decode.js';
import { createRandom } from './shoppers.js';

/** A CSV file of random rows: plain ones mostly, and each kind csv-parse has to read itself. */
function randomCsv(random: () => number, delimiter: string, crlf: boolean, bom: boolean, rows: number): string {
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
  ];
  const weights = [40, 8, 6, 2, 1, 1, 2, 2, 2, 2];
  const total = weights.reduce((a, b) => a + b, 0);
  const lines = [`time${d}user_id${d}type${d}brand`];
  for (let i = 0; i < rows; i++) {
    let pick = random() * total;
    let k = 0;
    while (pick >= weights[k]!) pick -= weights[k++]!;
    lines.push(kinds[k]!(i));
  }
  const eol = crlf ? '\r\n' : '\n';
  return `${bom ? '\ufeff' : ''}${lines.join(eol)}${random() < 0.5 ? eol : ''}`;
}

async function decodeAll(bytes: Buffer, chunkSize: number, config: DecodeConfig, plainCsvRows: boolean): Promise<{ events: string[]; deadLetters: string[]; throughByte: number }> {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
  const context = testContext();
  const events: string[] = [];
  let throughByte = 0;
  for await (const batch of decodeStream(Readable.from(chunks), 'csv', config, { source: 's', file: 'f.csv' }, context, 7, 0, { line: 1 }, { plainCsvRows })) {
    for (const e of batch.events) events.push(`${originOf(e)?.line}: ${JSON.stringify(e)}`);
    if (batch.throughByte !== undefined) throughByte = batch.throughByte;
  }
  // By line: csv-parse reports its malformed rows as it parses, ahead of the rows being mapped.
  const deadLetters = [...context.deadLetters]
    .sort((a, b) => (a.origin?.line ?? 0) - (b.origin?.line ?? 0))
    .map((d) => `${d.origin?.line}: ${d.reason.replace(/ at line \d+/, '')} | ${JSON.stringify(d.raw)}`);
  return { events, deadLetters, throughByte };
}

test('CSV: rows split on the delimiter decode exactly as csv-parse reads them (events, dead letters, lines), whatever the file', async () => {
  const random = createRandom(5);
  let files = 0;
  for (const delimiter of [',', ';', '\t']) {
    for (const crlf of [false, true]) {
      for (const bom of [false, true]) {
        for (let round = 0; round < 3; round++) {
          const text = randomCsv(random, delimiter, crlf, bom, 300);
          const bytes = Buffer.from(text);
          const config: DecodeConfig = { csv: { delimiter }, mapping: { time_format: 'epoch_ms', attributes: ['brand'] } };
          const reference = await decodeAll(bytes, 1 << 16, config, false);
          assert.ok(reference.events.length > 100, `${reference.events.length} events`);
          for (const chunkSize of [5, 64, 1 << 16]) {
            const split = await decodeAll(bytes, chunkSize, config, true);
            const label = `delimiter ${JSON.stringify(delimiter)}, ${crlf ? 'CRLF' : 'LF'}, ${bom ? 'BOM' : 'no BOM'}, round ${round}, chunks of ${chunkSize}`;
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
  assert.equal(files, 36);
});

test('CSV: a row\'s line is the file\'s, also after a quoted field that holds a CRLF line end', async () => {
  // csv-parse alone counts such a line end as two lines; rows are numbered by where they end.
  const text = 'time,user_id,type,brand\r\n1,u1,view,a\r\n2,u2,view,"two\r\nlines"\r\n3,u3,view,"three\r\nmore\r\nlines"\r\n4,u4,view,x,extra\r\n5,u5,view,b\r\n';
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms' } };
  for (const plainCsvRows of [false, true]) {
    for (const chunkSize of [3, 1 << 16]) {
      const { events, deadLetters } = await decodeAll(Buffer.from(text), chunkSize, config, plainCsvRows);
      assert.deepEqual(
        events.map((e) => Number(e.split(':')[0])),
        [2, 4, 7, 9],
        `plain rows ${plainCsvRows}, chunks of ${chunkSize}`,
      );
      assert.deepEqual(
        deadLetters.map((d) => d.split(':')[0]),
        ['8'],
      );
    }
  }
});

test('CSV: a quote inside a field is data; a quoted field never closed is one dead letter with the rest of the file', async () => {
  const text = 'time,user_id,type,brand\n1,u1,view,Samsung 55" TV\n2,u2,view,"u"x\n3,u3,view,"say ""hi"""\n4,u4,view,"never closed\n5,u5,view,b\n';
  const config: DecodeConfig = { mapping: { time_format: 'epoch_ms', attributes: ['brand'] } };
  for (const plainCsvRows of [false, true]) {
    const { events, deadLetters } = await decodeAll(Buffer.from(text), 8, config, plainCsvRows);
    assert.deepEqual(
      events.map((e) => (JSON.parse(e.slice(e.indexOf(' ') + 1)) as { attrs: { brand: string } }).attrs.brand),
      ['Samsung 55" TV', '"u"x', 'say "hi"'],
    );
    assert.equal(deadLetters.length, 1, deadLetters.join('\n'));
    assert.match(deadLetters[0]!, /Quote Not Closed.*never closed\\n5,u5,view,b/);
  }
});

test('CSV: a file of plain rows is read without csv-parse, and one quoted row later hands the rest to it', async () => {
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
});

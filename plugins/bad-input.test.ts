/**
 * Bad input through the whole chain: a seeded corpus of mangled lines (cut short, a byte flipped, not
 * UTF-8, nested thousands deep, over max_record_bytes, wrong types, absurd timestamps, CSV rows with a
 * quote left open or a field too many, Object.prototype's names as ids, types, attributes and keys,
 * lone surrogates, duplicate keys, a BOM or Unicode spaces mid-file) read by the file source and handed
 * to every feature operator and both models. The run must drain, and every input must come out: as an
 * event or a dead letter with its reason, none lost and none counted twice; what the sinks would write
 * is JSON, and every feature and score a finite number.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { recordToJson, type StreamRecord } from 'tributary';
import { runYaml, tempFolder } from 'tributary/testing';
import { rng } from './models/testdata.js';

const dir = tempFolder({ after }, 'bad-input');
const columns = ['user_id', 'session_id', 'time', 'type', 'item_id', 'category', 'price', 'brand'] as const;
type RawEvent = Partial<Record<(typeof columns)[number] | 'extra', unknown>>;

/** A corpus of `count` records, about a fifth of them mangled in one of many ways; the same for a seed. */
function corpus(seed: number, count: number) {
  const random = rng(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const protoNames = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
  const oddValues: unknown[] = [
    ...[null, true, -1, 0, 1e308, 'NaN', '', {}, [], [1, 2], 'x'.repeat(3000), '\u0000', '\ud800', 9007199254740993, '1e400'],
    ...[...protoNames, { toString: 1 }, [{ valueOf: 'x' }], '\ufeff', '\u2028', '-0', 1e21],
  ];
  const oddTimes = [
    ...['0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z', 1e20, -5, '2024-13-45', '2024-01-01T00:00:00+14:00', '1704067200'],
    ...['2016-12-31T23:59:60Z', '+275760-09-13T00:00:00Z', '2024-01-01T00:00:00+24:00', '2024-01-01t00:00:00z', [], {}, 'NaN', 'Infinity'],
  ];
  function event(i: number): RawEvent {
    const event: RawEvent = {
      user_id: random() < 0.03 ? pick(protoNames) : `u${Math.floor(random() * 60)}`,
      session_id: random() < 0.03 ? pick(protoNames) : `s${Math.floor(i / 6)}`,
      time: new Date(Date.UTC(2024, 0, 1) + i * 20_000 + Math.floor(random() * 60_000)).toISOString(),
      type: pick(['view', 'view', 'view', 'cart', 'remove_from_cart', 'purchase']),
      item_id: `i${Math.floor(random() * 100)}`,
      category: pick(['a.b', 'c', 'd.e.f']),
      price: Math.round(random() * 10_000) / 100,
      brand: pick(['acme', 'zz', ...protoNames]),
    };
    if (random() >= 0.2) return event;
    const how = random();
    if (how < 0.4) event[pick(columns)] = pick(oddValues);
    else if (how < 0.6) delete event[pick(columns)];
    else if (how < 0.8) event.time = pick(oddTimes);
    else if (how < 0.9) event.type = pick(['weird', '', null, 3, ...protoNames]);
    else event.extra = { deep: [[[[[[[[[[1]]]]]]]]]] };
    return event;
  }
  /** The line's bytes, mangled as a broken producer or disk would. */
  function mangle(line: string): Buffer {
    const how = random();
    if (how < 0.03) return Buffer.from(line.slice(0, Math.floor(random() * line.length)));
    if (how < 0.05) {
      const bytes = Buffer.from(line);
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      return bytes;
    }
    if (how < 0.055) return Buffer.from('['.repeat(5000) + ']'.repeat(5000));
    if (how < 0.057) return Buffer.from(`{"user_id":"u1","x":"${'y'.repeat(1_100_000)}"}`);
    if (how < 0.06) return Buffer.from(`\ufeff${line}`);
    if (how < 0.065) return Buffer.from(`${line}\r`);
    if (how < 0.07) return Buffer.from(pick(['null', '"a string"', '42', '   ', ' \u00a0', '\t\u2028', '\ufeff']));
    if (how < 0.075) return Buffer.from(line.replace('{', '{"__proto__":{"user_id":"p"},"user_id":"dup",'));
    if (how < 0.08) return Buffer.from(line.replace(/"(u\d+)"/, '"$1\\ud800\\u0000"'));
    if (how < 0.085) return Buffer.from(line.replace('{', '{"0":1,"-1":2,"1e3":3,'));
    if (how < 0.09) return Buffer.from(`${line}\r\n`.slice(0, -1)); // a CRLF line among LF ones
    return Buffer.from(line);
  }
  const jsonl: Buffer[] = [];
  const csv: Buffer[] = [Buffer.from(`${columns.join(',')}\n`)];
  for (let i = 0; i < count; i++) {
    jsonl.push(mangle(JSON.stringify(event(i))), Buffer.from('\n'));
    const raw = event(i);
    const cells = columns.map((column) => {
      const value = raw[column];
      const text = value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
      const quoted = `"${text.replaceAll('"', '""')}"`;
      const how = random();
      if (how < 0.01) return quoted.slice(0, -1); // a quote left open: the rows after it are its field, up to max_record_bytes
      if (how < 0.02) return `${quoted.slice(0, -1)}\n,"`; // a newline in a quoted field
      return /[",\n\r]/.test(text) ? quoted : text;
    });
    if (random() < 0.03) cells.pop();
    if (random() < 0.03) cells.push('extra');
    csv.push(mangle(cells.join(',')), Buffer.from('\n'));
  }
  return { jsonl: Buffer.concat(jsonl), csv: Buffer.concat(csv) };
}

const pipeline = (path: string, format: 'jsonl' | 'csv', sessions: 'gap' | 'data'): string => `name: bad-input
sources:
  - type: file
    path: ${path}
    format: ${format}
    mapping: { attributes: [brand] }
    watermark: { max_out_of_orderness: 1m }
stages:
  - type: dedupe
    fields: [time, type, itemId, price, attrs.brand]
  - type: sessionizer
    allowed_lateness: 5m
    session_id_from: ${sessions}${sessions === 'gap' ? '\n    max_length: 4h' : ''}
  - type: session-features
  - type: user-features
    horizons: [1d]
  - type: hash-features
    fields: [category, itemId, attrs.brand, type]
    width: 8
  - type: log1p
    features: ["s_*"]
  - type: standardize
    features: ["*"]
  - type: clip
    features: ["*"]
    min: -5
    max: 5
  - type: intent-model
    name: intent
    model: { kind: logistic }
  - type: churn-model
    name: churn
    horizon: 1d
    model: { kind: logistic }
sinks:
  - type: memory
    kinds: [event, prediction, session]
    outputs: [late]
`;

/** What a sink that writes JSON would write of each record is JSON, and every feature and score in it a finite number. */
function assertWrittenAsJson(records: readonly StreamRecord[], format: string): void {
  for (const record of records) {
    const written = JSON.parse(recordToJson(record)) as Record<string, unknown>;
    if (record.kind === 'event') {
      for (const [name, value] of Object.entries((written.features ?? {}) as Record<string, unknown>)) {
        assert.ok(typeof value === 'number' && Number.isFinite(value), `${format}: feature ${name} of ${String(written.userId)} is ${String(value)}`);
      }
    }
    if (record.kind === 'prediction') assert.ok(typeof written.score === 'number' && Number.isFinite(written.score), `${format}: a finite score`);
  }
}

for (const [seed, sessions] of [[1, 'gap'], [2, 'gap'], [3, 'gap'], [4, 'data']] as const) {
  test(`mangled input (seed ${seed}, sessions by ${sessions}), JSON lines and CSV, through every feature operator and both models: the run drains, every input comes out once`, async () => {
    const { jsonl, csv } = corpus(seed, 3000);
    for (const [file, format, bytes] of [['in.jsonl', 'jsonl', jsonl], ['in.csv', 'csv', csv]] as const) {
      const path = join(dir, `${seed}-${file}`);
      writeFileSync(path, bytes);
      const run = await runYaml(pipeline(path, format, sessions));
      const { stats } = run;
      assert.equal(stats.drained, true, format);
      assert.equal(run.deadLetters.length, stats.deadLettered, `${format}: every dead letter counted is written`);
      for (const dead of run.deadLetters) {
        assert.ok(typeof dead.reason === 'string' && dead.reason.length > 0, `${format}: a dead letter has its reason`);
        assert.ok(dead.raw !== undefined, `${format}: a dead letter holds its input`);
      }
      assertWrittenAsJson(run.outputs[0]!, format);
      assertWrittenAsJson(run.deadLetters, format);
      const fromSource = run.deadLetters.filter((dead) => dead.stage === 'source-file-0');
      // Past the source, only the sessionizer rejects (a time out of its bounds, no session id): an event the mapping took is one every other stage takes.
      for (const dead of run.deadLetters) assert.match(String(dead.stage), /^(source-file-0|stage-sessionizer-1)$/, `${format}: ${String(dead.reason)}`);
      const events = run.outputs[0]!.filter((record) => record.kind === 'event');
      // An event read is passed on, sent to `late` (the sink takes both), or dead-lettered by a stage (a time out of bounds): one of them.
      assert.equal(stats.eventsIn, events.length + (stats.deadLettered - fromSource.length), `${format}: every event read comes out once`);
      assert.ok(stats.eventsIn > 1000 && fromSource.length > 50, `${format}: the corpus holds both (${stats.eventsIn} events, ${fromSource.length} dead letters)`);
      if (format === 'jsonl') {
        // Each non-blank line (one with a character above a space) is one event or one dead letter, and a dead letter names its line.
        const lines = readFileSync(path, 'latin1').split('\n').slice(0, -1);
        const blank = lines.filter((line) => /^[\0-\x20]*$/.test(line)).length;
        assert.equal(stats.eventsIn + fromSource.length, lines.length - blank, 'every non-blank line is accounted for');
        assert.equal(new Set(fromSource.map((dead) => dead.line)).size, fromSource.length, 'no line is dead-lettered twice');
      }
    }
  });
}

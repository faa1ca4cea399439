import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { runSummaries } from '../testing.js';
import type { RunStats } from '../runtime/pipeline.js';
import { everyRecordDeadLettered, summaryRecord } from './run.js';
import { boundedSpawnSync } from 'tributary/testing';
import { cli, dir, tributary, pipeline } from './cli-test-helpers.js';

test('the example plugin package is loaded by its example pipeline and filters bot traffic', () => {
  const result = boundedSpawnSync(process.execPath, [cli, 'run', join(packageRoot, 'examples', 'pipelines', 'bot-filter.yaml'), '--set', 'sinks[0].path=' + join(dir, 'bots.jsonl'), '--log-level', 'warn'], {
    encoding: 'utf8',
    env: { ...process.env, EVENTS: '5000' },
  });
  assert.equal(result.status, 0, result.stderr);
  const bots = Object.entries(runSummaries(result.stderr)[0]!.filteredByReason).find(([reason]) => reason.endsWith('bot traffic'));
  assert.ok(bots && bots[1] > 0, result.stderr);
});

test('run: drains a finite source, exits 0 and prints the summary; --set overrides config', () => {
  const out = join(dir, 'out.jsonl');
  const file = pipeline('run.yaml', `sources: [{type: synthetic, events: 1000, users: 50}]\nsinks: [{type: file, path: ${out}}]\n`);
  const result = tributary('run', file, '--set', 'sources[0].events=250', '--log-level', 'warn');
  assert.equal(result.status, 0, result.stderr);
  // Not on a terminal, its logs are JSON lines: the summary is one record of them, whatever --log-level.
  const [summary, ...more] = runSummaries(result.stderr);
  assert.equal(more.length, 0, result.stderr);
  assert.equal(summary!.level, 30);
  assert.match(summary!.msg, /^pipeline run: drained: 250 events in, 250 records out, 0 dead-lettered, 0 filtered, [\d.]+ s$/);
  assert.equal(summary!.pipeline, 'run');
  assert.equal(summary!.outcome, 'drained');
  assert.equal(summary!.eventsIn, 250);
  assert.equal(summary!.recordsOut, 250);
  assert.deepEqual(summary!.outByKind, { event: 250 });
  assert.equal(summary!.deadLettered, 0);
  assert.ok(summary!.eventsPerSecond! > 0);
  assert.ok(result.stderr.split('\n').every((line) => line === '' || line.startsWith('{')), `only JSON lines on stderr:\n${result.stderr}`);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 250);
});

test('run: an input whose every record is dead-lettered still exits 0, but the summary says so loudly, with the most common reason and the likely cause', () => {
  // CSV columns the default mapping does not name (user_id, time, type), and the same CSV read as JSON lines.
  writeFileSync(join(dir, 'other-shape.csv'), `user,ts,kind\n${Array.from({ length: 40 }, (_, i) => `u${i},2024-01-01T00:00:${String(i).padStart(2, '0')}Z,view`).join('\n')}\n`);
  for (const [format, count, reason] of [
    ['csv', 40, 'source-file-0: user_id: missing user id'],
    // Each line's own reason quotes the line; they are one reason, its quotes elided.
    ['jsonl', 41, `source-file-0: malformed JSON: Unexpected token '…', "…" is not valid JSON`],
  ] as const) {
    const file = pipeline(`all-rejected-${format}.yaml`, `sources: [{type: file, path: other-shape.csv, format: ${format}}]\nsinks: [{type: file, path: all-rejected.jsonl}]\ndead_letter: {type: file, path: all-rejected-dead.jsonl}\n`);
    const result = tributary('run', file, '--log-level', 'warn');
    assert.equal(result.status, 0, result.stderr);
    const [summary] = runSummaries(result.stderr);
    assert.equal(summary?.level, 40, result.stderr);
    assert.equal(summary!.msg, `pipeline all-rejected-${format}: drained: EVERY RECORD WAS DEAD-LETTERED (${count} of ${count}): none reached the stages or the sinks`);
    assert.equal(summary!.everyRecordDeadLettered, true);
    assert.equal(summary!.deadLettered, count);
    assert.deepEqual(Object.entries(summary!.deadLetteredByReason)[0], [reason, count]);
    assert.match(summary!.likelyCause!, /^the source's format or mapping does not fit this input/);
  }
  // A run with good input says nothing of the kind.
  const good = tributary('run', pipeline('all-good.yaml', `sources: [{type: synthetic, events: 50}]\nsinks: [{type: file, path: all-good.jsonl}]\n`), '--log-level', 'warn');
  assert.equal(good.status, 0, good.stderr);
  assert.doesNotMatch(good.stderr, /EVERY RECORD|likely cause|likelyCause/);
});

test('run: events the source read but a stage dead-lettered every one of (epoch milliseconds read as epoch_s) get the same loud summary, with the time_format as the likely cause', () => {
  writeFileSync(join(dir, 'millis.jsonl'), `${Array.from({ length: 30 }, (_, i) => JSON.stringify({ user_id: `u${i % 3}`, time: 1_772_352_334_000 + i * 1000, type: 'view' })).join('\n')}\n`);
  const file = pipeline('stage-rejected.yaml', `sources: [{type: file, path: millis.jsonl, mapping: {time_format: epoch_s}}]\nstages: [{type: sessionizer}]\nsinks: [{type: file, path: stage-rejected.jsonl}]\ndead_letter: {type: file, path: stage-rejected-dead.jsonl}\n`);
  const result = tributary('run', file, '--log-level', 'warn');
  assert.equal(result.status, 0, result.stderr);
  const [summary] = runSummaries(result.stderr);
  assert.equal(summary?.level, 40, result.stderr);
  assert.equal(summary!.msg, 'pipeline stage-rejected: drained: EVERY RECORD WAS DEAD-LETTERED (30 of 30): none reached the sinks');
  assert.equal(summary!.eventsIn, 30);
  assert.equal(summary!.everyRecordDeadLettered, true);
  assert.match(Object.keys(summary!.deadLetteredByReason)[0]!, /^stage-sessionizer-0: event time \S+ is more than max_ahead_of_clock ahead of the clock/);
  assert.match(summary!.likelyCause!, /epoch milliseconds read as epoch_s thousands of years ahead/);
});

test('summary: "every record dead-lettered" only where it is so: not while some event reached a sink, was filtered or went to a side output, nor for a run stopped with records in flight', () => {
  const base: RunStats = { eventsIn: 10, recordsOut: 0, outByKind: {}, deadLettered: 10, deadLetteredByReason: { 'stage-sessionizer-0: late': 10 }, filtered: 0, filteredByReason: {}, sideOutputs: {}, watermark: Infinity, passedWatermark: Infinity, startedAt: 0, elapsedMs: 1, drained: true };
  assert.equal(everyRecordDeadLettered(base), 'stages');
  assert.equal(everyRecordDeadLettered({ ...base, eventsIn: 0 }), 'source');
  assert.equal(everyRecordDeadLettered({ ...base, recordsOut: 1, deadLettered: 9 }), undefined);
  assert.equal(everyRecordDeadLettered({ ...base, filtered: 1 }), undefined);
  assert.equal(everyRecordDeadLettered({ ...base, sideOutputs: { late: 1 } }), undefined);
  assert.equal(everyRecordDeadLettered({ ...base, drained: false }), undefined);
  assert.equal(everyRecordDeadLettered({ ...base, deadLettered: 0, eventsIn: 0 }), undefined);
  assert.equal(summaryRecord('p', { ...base, recordsOut: 1, deadLettered: 9 }).level, 'info');
});

test('run: a UTF-16 input file (Excel\'s "Unicode Text") exits 2 at once, naming the file, its encoding and the iconv command, without restarts that would reread it', () => {
  const folder = mkdtempSync(join(dir, 'utf16-'));
  writeFileSync(join(folder, 'in.csv'), Buffer.from('\ufefftime,user_id,type\n2024-01-01T00:00:00Z,a,view\n', 'utf16le'));
  writeFileSync(join(folder, 'p.yaml'), 'name: p\nsources: [{type: file, path: in.csv}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: cp, interval: 1h}\n');
  const result = boundedSpawnSync(process.execPath, [cli, 'run', 'p.yaml'], { cwd: folder, encoding: 'utf8' });
  assert.equal(result.status, 2, result.stderr);
  const records = result.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; code?: string });
  const failed = records.find((record) => record.code === 'TRIB_ERR_SOURCE_INPUT');
  assert.match(failed?.msg ?? result.stderr, /source-file-0 failed: .*in\.csv: the text is UTF-16 little-endian .*iconv -f UTF-16 -t UTF-8/);
  assert.equal(records.filter((record) => /restarting it/.test(record.msg)).length, 0, 'no restart in the process');
});

test('stdin: JSON lines piped in are read until the pipe closes; bad lines are dead-lettered', () => {
  const out = join(dir, 'stdin-out.jsonl');
  const dead = join(dir, 'stdin-dead.jsonl');
  const file = pipeline('stdin.yaml', `sources: [{type: stdin}]\nsinks: [{type: file, path: ${out}}]\ndead_letter: {type: file, path: ${dead}}\n`);
  const input = ['{"user_id":"a","time":"2024-01-01T00:00:00Z","type":"view"}', 'oops', '{"user_id":"b","time":"2024-01-01T00:00:01Z","type":"cart"}'].join('\n');
  const result = boundedSpawnSync(process.execPath, [cli, 'run', file, '--log-level', 'warn'], { cwd: dir, encoding: 'utf8', input });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 2);
  const [rejected] = readFileSync(dead, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { file: string; line: number; raw: string });
  assert.deepEqual([rejected!.file, rejected!.line, rejected!.raw], ['stdin', 2, 'oops']);
});

test('run: pipelines run in one working directory, one after another or together in one process, each keep their bad input in their own default dead-letter file', () => {
  const folder = mkdtempSync(join(dir, 'default-dead-'));
  const files = ['a', 'b', 'c'].map((name) => {
    writeFileSync(join(folder, `${name}.jsonl`), `{"user_id":"${name}","time":"2024-01-01T00:00:00Z","type":"view"}\nbad-${name}\n`);
    const file = join(folder, `${name}.yaml`);
    writeFileSync(file, `sources: [{type: file, path: ${name}.jsonl}]\nsinks: [{type: file, path: out-${name}.jsonl}]\n`);
    return file;
  });
  const run = (...pipelines: string[]): void => {
    const result = boundedSpawnSync(process.execPath, [cli, 'run', ...pipelines, '--log-level', 'warn'], { cwd: folder, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
  };
  run(files[0]!);
  run(files[1]!, files[2]!);
  const raws = (name: string): unknown[] =>
    readFileSync(join(folder, `dead-letters-${name}.jsonl`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { raw: unknown }).raw);
  assert.deepEqual(['a', 'b', 'c'].map(raws), [['bad-a'], ['bad-b'], ['bad-c']]);
  assert.deepEqual(readdirSync(folder).filter((name) => name.includes('.lock')), [], 'their locks went with them');
});

test('run: after a clean run (nothing rejected) a dead_letter file set in the pipeline exists, empty, for the scripts that check it; the default one is not made', () => {
  const folder = mkdtempSync(join(dir, 'clean-dead-'));
  writeFileSync(join(folder, 'in.jsonl'), '{"user_id":"a","time":"2024-01-01T00:00:00Z","type":"view"}\n');
  const pipelines = { explicit: 'dead_letter: {type: file, path: dead.jsonl}\n', lazy: 'dead_letter: {type: file, path: dead-lazy.jsonl, lazy: true}\n', default: '' };
  for (const [name, deadLetter] of Object.entries(pipelines)) {
    writeFileSync(join(folder, `${name}.yaml`), `name: ${name}\nsources: [{type: file, path: in.jsonl}]\nsinks: [{type: file, path: out-${name}.jsonl}]\n${deadLetter}`);
    const result = boundedSpawnSync(process.execPath, [cli, 'run', `${name}.yaml`, '--log-level', 'warn'], { cwd: folder, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
  }
  assert.equal(readFileSync(join(folder, 'dead.jsonl'), 'utf8'), '');
  assert.deepEqual(readdirSync(folder).filter((file) => file.startsWith('dead')).sort(), ['dead.jsonl'], 'neither the lazy one nor dead-letters-default.jsonl was made');
});

test('run: pipelines run together that share a file (a lazy dead-letter file, a sink path) lose none of its records', () => {
  const shared = mkdtempSync(join(dir, 'shared-'));
  // b's first reject comes long after a's: its dead-letter file (lazy) opens after a closed it.
  const goodLines = (name: string, count: number): string => `{"user_id":"${name}","time":"2024-01-01T00:00:00Z","type":"view"}\n`.repeat(count);
  const files = ['a', 'b'].map((name) => {
    writeFileSync(join(shared, `${name}.jsonl`), name === 'a' ? `${goodLines(name, 1)}bad-a-1\nbad-a-2\n` : `${goodLines(name, 50_000)}bad-b-1\nbad-b-2\n`);
    const file = join(shared, `${name}.yaml`);
    writeFileSync(file, `name: ${name}\nsources: [{type: file, path: ${name}.jsonl}]\nsinks: [{type: file, path: out.jsonl}]\ndead_letter: {type: file, path: dead-letters.jsonl, lazy: true}\n`);
    return file;
  });
  const result = boundedSpawnSync(process.execPath, [cli, 'run', ...files, '--log-level', 'warn'], { cwd: shared, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const lines = (name: string): Record<string, unknown>[] =>
    readFileSync(join(shared, name), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(lines('dead-letters.jsonl').map((dead) => dead.raw).sort(), ['bad-a-1', 'bad-a-2', 'bad-b-1', 'bad-b-2']);
  const users = lines('out.jsonl').map((event) => event.userId);
  assert.deepEqual([users.filter((u) => u === 'a').length, users.filter((u) => u === 'b').length], [1, 50_000]);
});

test('run: a sink whose device is full fails the run naming the sink, its file and the reason, whether it fills while writing or at the final flush', () => {
  for (const events of [300_000, 30]) {
    const file = pipeline(`full-${events}.yaml`, `sources: [{type: synthetic, events: ${events}}]\nsinks: [{type: file, path: /dev/full}]\n`);
    const result = tributary('run', file);
    assert.equal(result.status, 1, result.stderr);
    const failure = result.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; code?: string; err?: { code?: string; message: string } })
      .find((entry) => entry.msg.startsWith('pipeline full-'));
    assert.equal(failure?.err?.code, 'TRIB_ERR_SINK', result.stderr);
    // At the top level too, as docs/errors.md promises every JSON error record (it was only under err).
    assert.equal(failure?.code, 'TRIB_ERR_SINK', result.stderr);
    // The file named: node's words alone ("ENOSPC: no space left on device, write") said neither which output nor which disk.
    assert.match(failure?.err?.message ?? '', /^sink-file-0 failed( while closing| to flush)?: \/dev\/full: ENOSPC: no space left on device, write: the file system holding it is full; free room there/);
  }
});

test("a resumed run's summary gives this process's events/s, not the checkpoint's total over this run's time", async () => {
  // A soak daemon resumed after 1,043,000 events read 10,000 more in 22 s and printed "events/s 48,088".
  const { formatSummary } = await import('./run.js');
  const base = { eventsIn: 1_053_000, recordsOut: 0, outByKind: {}, deadLettered: 0, deadLetteredByReason: {}, filtered: 0, filteredByReason: {}, sideOutputs: {}, watermark: 0, passedWatermark: 0, startedAt: 0, elapsedMs: 20_000, drained: false };
  const resumed = formatSummary('soak', { ...base, resumedFrom: 425, atResume: { eventsIn: 1_043_000, recordsOut: 0, deadLettered: 0, filtered: 0, late: 0 } });
  assert.match(resumed, /events in\s+1053000\n/, 'the count goes on from the checkpoint');
  assert.match(resumed, /events\/s\s+500\n/);
  assert.match(formatSummary('fresh', base), /events\/s\s+52,650\n/);
  // Restarted in the process: said, with which figures are the last run's alone.
  assert.match(formatSummary('soak', { ...base, restarts: 2 }), /^pipeline soak: stopped\n {2}restarts {7}2 in the process \(elapsed and events\/s: since the last one\)\n/);
  assert.doesNotMatch(formatSummary('fresh', base), /restarts/);
  const { summaryRecord } = await import('./run.js');
  assert.equal(summaryRecord('soak', { ...base, restarts: 2 }).fields.restarts, 2);
});

test("run loads a native or heavy library only for a pipeline that uses it: no node-rdkafka without Kafka, no TensorFlow.js without a model (what a process loads, it also tears down at its exit)", () => {
  // The CommonJS packages the process loaded (an ESM import of one goes through require's cache too), said at its exit.
  const preload = join(dir, 'loaded-packages.cjs');
  writeFileSync(
    preload,
    "process.on('exit', () => { const names = new Set(Object.keys(require.cache).map((path) => path.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//)?.[1]).filter(Boolean)); require('node:fs').writeSync(2, `LOADED ${JSON.stringify([...names])}\\n`); });\n",
  );
  const loaded = (file: string): string[] => {
    const result = boundedSpawnSync(process.execPath, ['--require', preload, cli, 'run', file], { cwd: dir, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
    assert.equal(result.status, 0, result.stderr);
    return JSON.parse(/^LOADED (.*)$/m.exec(result.stderr)![1]!) as string[];
  };
  const heavy = (names: string[]): string[] => names.filter((name) => name === 'node-rdkafka' || name.startsWith('@tensorflow/')).sort();
  const input = join(dir, 'no-models.jsonl');
  writeFileSync(input, '{"user_id":"u","time":1704067200000,"type":"view"}\n{"user_id":"u","time":1704067260000,"type":"cart"}\n');
  const plain = pipeline('no-models.yaml', `sources: [{type: file, path: ${input}}]\nstages: [{type: sessionizer}]\nsinks: [{type: file, path: ${join(dir, 'no-models-out.jsonl')}, kinds: [session]}]\n`);
  assert.deepEqual(heavy(loaded(plain)), []);
  // The check sees them when they are loaded: a model stage loads TensorFlow.js (still no node-rdkafka).
  const model = pipeline(
    'one-model.yaml',
    `sources: [{type: synthetic, users: 20, events: 200}]\nstages: [{type: sessionizer}, {type: session-features}, {type: intent-model, backend: cpu}]\nsinks: [{type: file, path: ${join(dir, 'one-model-out.jsonl')}, kinds: [prediction]}]\n`,
  );
  const withModel = heavy(loaded(model));
  assert.ok(withModel.includes('@tensorflow/tfjs-core'), `loaded: ${withModel.join(', ')}`);
  assert.ok(!withModel.includes('node-rdkafka'));
});

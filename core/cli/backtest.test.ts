import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { ShopperWorld } from '../../plugins/sources/shoppers.js';
import { runSummaries } from '../testing.js';
import type { RunStats } from '../runtime/pipeline.js';
import type { ClickEvent } from '../events.js';
import { backtestMetrics, reportHtml, scoreNotesOf, type BacktestModelMetrics, type BacktestResultRecord } from './backtest.js';
import { SPAWNED_START_MS, spawnTributary, tempFolder } from 'tributary/testing';

const main = new URL('./main.js', import.meta.url).pathname;

const records = (stderr: string): ({ level: number; msg: string } & Partial<BacktestResultRecord>)[] =>
  stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string } & Partial<BacktestResultRecord>);
/** The records of a backtest's result (its models' scores and its report's files) in a piped run's stderr. */
const backtestResults = (stderr: string) => records(stderr).filter((entry) => entry.reportFile !== undefined);

/** `count` events of seeded synthetic shoppers as JSON lines, each shaped by `shape` (by default the mapping's default field names, epoch ms). */
function shopperLines(seed: number, users: number, count: number, shape = (e: ClickEvent): object => ({ user_id: e.userId, time: e.time, type: e.type, category: e.category, price: e.price })): string[] {
  const world = new ShopperWorld({ seed, users });
  return Array.from({ length: count }, () => JSON.stringify(shape(world.next())));
}

test('backtest: replaces the first source by the data file and writes metrics.json (exact shape, the same on every run) and a self-contained report.html', (t) => {
  const dir = tempFolder(t, 'backtest');
  const lines = shopperLines(3, 200, 6000, (e) => ({ uid: e.userId, ts: e.time, type: e.type, category: e.category, price: e.price }));
  lines.splice(10, 0, 'not json');
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${lines.join('\n')}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `name: bt
sources:
  - type: stdin
    format: jsonl
    mapping: { fields: { user_id: uid, time: ts }, time_format: epoch_ms }
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu, batch: { max_size: 64, max_delay: 5ms } }
  - { type: churn-model, name: churn-lr, backend: cpu, horizon: 1d, batch: { max_size: 64, max_delay: 5ms } }
sinks:
  - { type: file, path: predictions.jsonl, kinds: [prediction] }
`,
  );
  const report = join(dir, 'report');
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', report, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const metrics = JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as {
    events: number;
    deadLetters: number;
    models: Record<string, Record<string, number>>;
  };
  assert.deepEqual(Object.keys(metrics), ['events', 'deadLetters', 'models', 'modelFiles']);
  assert.equal(metrics.events, 6000);
  assert.equal(metrics.deadLetters, 1);
  assert.deepEqual(Object.keys(metrics.models).sort(), ['churn-lr', 'intent-lr']);
  const html = readFileSync(join(report, 'report.html'), 'utf8');
  for (const [name, model] of Object.entries(metrics.models)) {
    // The contract's keys first, as they were; the last window's and the calibration error's added after them.
    assert.deepEqual(Object.keys(model), ['auc', 'logloss', 'brier', 'n', 'positives', 'lastWindow', 'calibrationError']);
    assert.ok(model.n! > 0 && model.positives! > 0);
    const { lastWindow, calibrationError } = model as unknown as Required<BacktestModelMetrics>;
    // The model's metrics.window (default 1000): as many of its last labels as it has had, up to that.
    assert.deepEqual([lastWindow.size, lastWindow.n], [1000, Math.min(1000, model.n!)]);
    assert.ok(lastWindow.logloss! > 0 && lastWindow.auc! > 0, JSON.stringify(lastWindow));
    assert.equal(calibrationError.bins, 10);
    assert.ok(calibrationError.ece! > 0 && calibrationError.ece! <= calibrationError.maxGap!, JSON.stringify(calibrationError));
    // The same figures in the page, beside the model's name.
    const row = new RegExp(`<tr><td><code>${name}</code></td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>`).exec(html);
    assert.deepEqual(row?.slice(1), [
      `${lastWindow.n} of 1000 (<code>metrics.window</code>)`,
      lastWindow.auc!.toFixed(4),
      lastWindow.logloss!.toFixed(4),
      '10',
      calibrationError.ece!.toFixed(4),
      calibrationError.maxGap!.toFixed(4),
    ]);
  }
  // The simulated shoppers' intent is learnable; churn over so short a span is not judged here.
  assert.ok(metrics.models['intent-lr']!.auc! > 0.7, `AUC ${metrics.models['intent-lr']!.auc}`);
  assert.match(html, /uPlot/);
  assert.match(html, /ROC curve/);
  assert.doesNotMatch(html, /<script[^>]+src=/, 'no external scripts: the page works offline');
  assert.match(html, /s_events/, 'the feature list is in the page');
  // Not on a terminal, its logs are JSON lines, and so is its result: the run's summary record (as
  // `tributary run` writes it) and one record of the models' scores and the report's files, whatever --log-level.
  assert.ok(run.stderr.split('\n').every((line) => line === '' || line.startsWith('{')), `only JSON lines on stderr:\n${run.stderr}`);
  const [summary, ...more] = runSummaries(run.stderr);
  assert.equal(more.length, 0, run.stderr);
  assert.deepEqual([summary!.pipeline, summary!.outcome, summary!.eventsIn, summary!.deadLettered], ['bt', 'drained', 6000, 1]);
  // Records out are what the pipeline's sinks wrote; the model reports the backtest collects for its own report are counted apart.
  const predictions = readFileSync(join(dir, 'predictions.jsonl'), 'utf8').trim().split('\n').length;
  assert.deepEqual([summary!.recordsOut, summary!.outByKind, summary!.collected], [predictions, { prediction: predictions }, 2]);
  const result = backtestResults(run.stderr);
  assert.equal(result.length, 1, run.stderr);
  assert.equal(result[0]!.level, 30);
  assert.match(result[0]!.msg, /^backtest bt: (intent-lr|churn-lr) AUC 0\.\d{4}, (intent-lr|churn-lr) AUC (0\.\d{4}|-); report: \S+metrics\.json, \S+report\.html$/);
  assert.deepEqual(result[0]!.models, metrics.models, 'the scores of metrics.json');
  assert.deepEqual([result[0]!.metricsFile, result[0]!.reportFile], [join(report, 'metrics.json'), join(report, 'report.html')]);
  // A wall-clock max_delay would cut the models' batches wherever the run happened to be; a backtest
  // batches by size only, so a second run reproduces the metrics exactly.
  const again = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', join(dir, 'again'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(again.status, 0, again.stderr);
  assert.equal(readFileSync(join(dir, 'again', 'metrics.json'), 'utf8'), readFileSync(join(report, 'metrics.json'), 'utf8'));
});

test("backtest on a terminal: the summary says each model's last-window AUC and log loss (in the words of the model's own end-of-run line) and its calibration error below its scores, as metrics.json has them; no last-window line where the window holds every label", (t) => {
  const dir = tempFolder(t, 'backtest-terminal');
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${shopperLines(3, 200, 6000).join('\n')}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  // churn-lr's window (5000) holds more than its labels: its last window is all of them, which its cumulative scores say.
  writeFileSync(
    pipeline,
    `name: bt
sources:
  - { type: stdin, format: jsonl, mapping: { time_format: epoch_ms } }
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu, batch: { max_size: 64 } }
  - { type: churn-model, name: churn-lr, backend: cpu, horizon: 1d, batch: { max_size: 64 }, metrics: { window: 5000 } }
sinks:
  - { type: file, path: predictions.jsonl, kinds: [prediction] }
`,
  );
  const report = join(dir, 'report');
  // The summary's terminal form, as a person sees it (stderr a TTY).
  const run = spawnSync(process.execPath, ['--import', 'data:text/javascript,process.stderr.isTTY=true', main, 'backtest', pipeline, '--input', data, '--report', report, '--log-level', 'warn', '--no-progress'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const metrics = JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as { models: Record<string, Required<BacktestModelMetrics>> };
  const lines = run.stderr.split('\n');
  const below = (model: string): string[] => {
    const at = lines.findIndex((line) => line.startsWith(`  model ${model}: AUC `));
    assert.ok(at >= 0, run.stderr);
    const end = lines.findIndex((line, i) => i > at && !line.startsWith('    '));
    return lines.slice(at + 1, end);
  };
  const intent = metrics.models['intent-lr']!;
  const churn = metrics.models['churn-lr']!;
  assert.ok(intent.lastWindow.n === 1000 && intent.n > 1000 && churn.lastWindow.n === churn.n, JSON.stringify(metrics.models));
  const calibration = (m: Required<BacktestModelMetrics>): string => `calibration error (10 bins): ECE ${m.calibrationError.ece!.toFixed(4)}, max bin gap ${m.calibrationError.maxGap!.toFixed(4)}`;
  assert.deepEqual(below('intent-lr').slice(0, 2), [`last 1000 labels: AUC ${intent.lastWindow.auc!.toFixed(4)}, log loss ${intent.lastWindow.logloss!.toFixed(4)}`, calibration(intent)].map((line) => `    ${line}`), run.stderr);
  assert.deepEqual(below('churn-lr').slice(0, 1), [`    ${calibration(churn)}`], run.stderr);
  assert.ok(!below('churn-lr').some((line) => line.includes('last ')), run.stderr);
});

test('backtest: a wrong --input or --report is said before anything runs (exit 2, outputs left alone); input that is all rejected exits 1 with null scores', (t) => {
  const dir = tempFolder(t, 'backtest');
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `name: bt
sources: [{ type: stdin, format: jsonl, mapping: { time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`,
  );
  const predictions = join(dir, 'predictions.jsonl');
  writeFileSync(predictions, 'from an earlier run\n');
  const backtest = (...args: string[]) => spawnSync(process.execPath, [main, 'backtest', pipeline, ...args, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  const missing = backtest('--input', 'nope.jsonl', '--report', join(dir, 'r1'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--input nope\.jsonl: no such file/);
  assert.equal(readFileSync(predictions, 'utf8'), 'from an earlier run\n');
  const data = join(dir, 'events.jsonl');
  // Tributary's own event output read with a mapping for another shape: every line rejected.
  writeFileSync(data, `${Array.from({ length: 50 }, (_, i) => JSON.stringify({ kind: 'event', userId: `u${i}`, time: i, type: 'view' })).join('\n')}\n`);
  const aFile = join(dir, 'a-file');
  writeFileSync(aFile, '');
  const reportIsFile = backtest('--input', data, '--report', aFile);
  assert.equal(reportIsFile.status, 2);
  assert.match(reportIsFile.stderr, /--report .*a-file is a file; name a folder/);
  const rejected = backtest('--input', data, '--report', join(dir, 'r2'));
  assert.equal(rejected.status, 1, rejected.stderr);
  const failure = records(rejected.stderr).find((entry) => entry.level === 50);
  assert.match(failure?.msg ?? '', /^no event was read: all 50 records were rejected, so the report scores nothing \(exit 1\)$/, rejected.stderr);
  assert.deepEqual([(failure as { code?: string }).code, failure?.pipeline], ['TRIB_ERR_BACKTEST_NO_EVENTS', 'bt']);
  const [summary] = runSummaries(rejected.stderr);
  assert.equal(summary?.everyRecordDeadLettered, true, rejected.stderr);
  assert.match(Object.keys(summary!.deadLetteredByReason)[0]!, /^source-\S+: \S+: missing user id \(the record is an event as a file sink writes it, userId and time in epoch milliseconds: read such records with mapping: canonical\)$/);
  assert.match(summary!.likelyCause!, /^the source's format or mapping/);
  const metrics = JSON.parse(readFileSync(join(dir, 'r2', 'metrics.json'), 'utf8')) as { events: number; deadLetters: number; models: Record<string, unknown> };
  const unscored = { auc: null, logloss: null, brier: null, n: 0, positives: 0, lastWindow: { size: 1000, n: 0, auc: null, logloss: null }, calibrationError: { bins: 10, ece: null, maxGap: null } };
  assert.deepEqual(metrics, { events: 0, deadLetters: 50, models: { 'intent-lr': unscored } });
});

test('backtest: every event read but dead-lettered by the stages (epoch seconds read as epoch_ms: 1970, before the sessionizer\'s not_before) is no result either: exit 1, said loudly with the likely cause', (t) => {
  const dir = tempFolder(t, 'backtest-stage-rejected');
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `name: bt-seconds
sources: [{ type: stdin, format: jsonl, mapping: { fields: { user_id: uid, time: ts }, time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`,
  );
  const data = join(dir, 'events.jsonl');
  // Epoch seconds: every line maps, so the source reads 300 events, which the sessionizer all rejects.
  writeFileSync(data, `${shopperLines(4, 30, 300, (e) => ({ uid: e.userId, ts: Math.floor(e.time / 1000), type: e.type, price: e.price })).join('\n')}\n`);
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 1, run.stderr);
  const [summary] = runSummaries(run.stderr);
  assert.equal(summary?.eventsIn, 300, run.stderr);
  assert.equal(summary!.level, 40);
  assert.match(summary!.msg, /^pipeline bt-seconds: drained: EVERY RECORD WAS DEAD-LETTERED \(300 of 300\): none reached the sinks$/);
  assert.equal(summary!.everyRecordDeadLettered, true);
  assert.match(Object.keys(summary!.deadLetteredByReason)[0]!, /^stage-sessionizer-0: event time … is before not_before … \(as … it would be in range: a time in seconds read as milliseconds, as after a producer switched units\? check the source's mapping\.time_format\)$/);
  assert.match(summary!.likelyCause!, /time_format does not fit the input: epoch seconds read as epoch_ms are in 1970/);
  const failure = records(run.stderr).find((entry) => entry.level === 50);
  assert.equal((failure as { code?: string } | undefined)?.code, 'TRIB_ERR_BACKTEST_NO_EVENTS', run.stderr);
  assert.equal(failure!.msg, 'no event got through the stages: all 300 events read were dead-lettered, so the report scores nothing (exit 1)');
});

test('backtest of a pipeline whose source has no mapping (synthetic): the data file is read as canonical events, what a file sink writes', (t) => {
  const dir = tempFolder(t, 'backtest-canonical');
  const world = new ShopperWorld({ seed: 5, users: 100 });
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++) lines.push(JSON.stringify(world.next()));
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${lines.join('\n')}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `name: synthetic-bt
sources: [{type: synthetic, events: 10}]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent, backend: cpu }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`,
  );
  const report = join(dir, 'report');
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', report, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const metrics = JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as { events: number; deadLetters: number };
  assert.deepEqual([metrics.events, metrics.deadLetters], [3000, 0]);
});

test("backtest from a file sink's events, for a source with no mapping that emits attributes: the events keep their attrs, as in the live run", (t) => {
  const dir = tempFolder(t, 'backtest-attrs');
  // A user's source without a mapping: it makes canonical events itself, attributes included.
  writeFileSync(
    join(dir, 'branded.mjs'),
    `import { defineSource } from ${JSON.stringify(new URL('../index.js', import.meta.url).href)};
export default defineSource({
  name: 'branded',
  summary: 'Events with attributes (tests only).',
  config: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    async *read() {
      yield Array.from({ length: 12 }, (_, i) => ({ kind: 'event', userId: 'u' + (i % 3), time: 1704067200000 + i * 1000, type: 'view',
        ...(i % 4 === 3 ? {} : { attrs: { brand: i % 2 ? 'acme' : 'globex', sizes: [i, { eu: 40 + i }] } }) }));
    },
  }),
});
`,
  );
  writeFileSync(
    join(dir, 'pipeline.yaml'),
    `name: attrs
plugins: [./branded.mjs]
sources: [{type: branded}]
stages: [{type: hash-features, fields: [attrs.brand], width: 8, prefix: brand}]
sinks: [{type: file, path: events.jsonl, kinds: [event]}]
`,
  );
  const live = spawnSync(process.execPath, [main, 'run', join(dir, 'pipeline.yaml'), '--log-level', 'warn'], { encoding: 'utf8' });
  assert.equal(live.status, 0, live.stderr);
  writeFileSync(join(dir, 'live.jsonl'), readFileSync(join(dir, 'events.jsonl')));
  const backtest = spawnSync(process.execPath, [main, 'backtest', join(dir, 'pipeline.yaml'), '--input', join(dir, 'live.jsonl'), '--report', join(dir, 'report'), '--set', 'sinks[0].path=replayed.jsonl', '--log-level', 'warn'], {
    encoding: 'utf8',
    cwd: dir,
  });
  assert.equal(backtest.status, 0, backtest.stderr);
  const read = (file: string) => readFileSync(join(dir, file), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { attrs?: unknown; features: Record<string, number> });
  const [written, replayed] = [read('live.jsonl'), read('replayed.jsonl')];
  assert.equal(written.filter((e) => e.attrs).length, 9);
  assert.deepEqual(replayed.map((e) => [e.attrs, e.features]), written.map((e) => [e.attrs, e.features]));
});

test("backtest: a sink of the file asking for model_metrics gets them, as the backtest switches reports on before validating; validate alone refuses it, saying so", (t) => {
  const dir = tempFolder(t, 'backtest');
  const lines = shopperLines(5, 50, 1000);
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${lines.join('\n')}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `name: bt-metrics
sources: [{ type: stdin, format: jsonl, mapping: { time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu, batch: { max_size: 64 } }
sinks:
  - { type: file, path: metrics.jsonl, kinds: [model_metrics] }
`,
  );
  const validate = spawnSync(process.execPath, [main, 'validate', pipeline], { encoding: 'utf8' });
  assert.equal(validate.status, 2, validate.stderr);
  assert.ok(validate.stderr.includes(`${pipeline}:8:48: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'model_metrics' as configured: the intent-model at stages[2] emits it only with report: true`), validate.stderr);
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const written = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { kind: string; model: string });
  assert.deepEqual(written.map((record) => [record.kind, record.model]), [['model_metrics', 'intent-lr']]);
  // Written by the pipeline's own sink, the report is a record out; nothing only collected.
  const [summary] = runSummaries(run.stderr);
  assert.deepEqual([summary!.recordsOut, summary!.outByKind, summary!.collected], [1, { model_metrics: 1 }, undefined]);
});

test("backtest: a failure as the pipeline starts (a sink's factory refusing its path) is said with the pipeline's name, as run says it (exit 2)", (t) => {
  const dir = tempFolder(t, 'backtest-fails');
  mkdirSync(join(dir, 'a-folder'));
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${JSON.stringify({ kind: 'event', userId: 'u', time: 1, type: 'view' })}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(pipeline, 'name: bt-fails\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: a-folder}]\n');
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 2, run.stderr);
  const failures = records(run.stderr).filter((entry) => entry.level === 50) as { code?: string; pipeline?: string; path?: string }[];
  assert.deepEqual(failures.map((entry) => [entry.code, entry.pipeline, entry.path]), [['TRIB_ERR_PLUGIN_FACTORY', 'bt-fails', '$.sinks[0].path']], run.stderr);
});

test('backtest of a model warm-started from a saved model: a warning at the start names the model and its file, and the report, the result and metrics.json (warmStarts, beside its unchanged fields) say so; warm_start: false is cold', (t) => {
  const dir = tempFolder(t, 'backtest-warm');
  const lines = shopperLines(5, 80, 2000);
  writeFileSync(join(dir, 'events.jsonl'), `${lines.join('\n')}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `name: bt-warm
sources: [{ type: file, path: events.jsonl, mapping: { time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu, batch: { max_size: 64 }, checkpoint: { dir: models } }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`,
  );
  const saved = join(dir, 'models', 'intent-lr.model.json');
  // A live run over the very file saves the model the backtest then starts from.
  const live = spawnSync(process.execPath, [main, 'run', pipeline, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(live.status, 0, live.stderr);
  assert.ok(existsSync(saved));
  const backtest = (report: string, ...more: string[]) =>
    spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', join(dir, 'events.jsonl'), '--report', join(dir, report), ...more, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  const warm = backtest('warm');
  assert.equal(warm.status, 0, warm.stderr);
  const logged = records(warm.stderr) as ({ level: number; msg: string; model?: string; file?: string; steps?: number; outcome?: string } & Partial<BacktestResultRecord>)[];
  const warning = logged.findIndex((entry) => entry.level === 40 && entry.model === 'intent-lr' && entry.file === saved);
  assert.ok(warning >= 0, warm.stderr);
  assert.match(logged[warning]!.msg, /^model intent-lr: warm start from \S+intent-lr\.model\.json \(\d+ learning steps\): if that model learnt from this input, its scores here are not out of sample; set checkpoint\.warm_start: false/);
  assert.ok(warning < logged.findIndex((entry) => entry.outcome !== undefined), 'said as the backtest starts, before its summary');
  const steps = logged[warning]!.steps!;
  assert.ok(steps > 0);
  assert.deepEqual(backtestResults(warm.stderr)[0]!.warmStarts, { 'intent-lr': { file: saved, steps } });
  const html = readFileSync(join(dir, 'warm', 'report.html'), 'utf8');
  assert.match(html, /<div id="warm-start" class="warning">/);
  assert.ok(
    html.includes(`model <code>intent-lr</code> started from the saved model <code>${saved}</code> (${steps} learning steps); set <code>checkpoint.warm_start: false</code> on its stage`),
    'the page names the model, its file, and the field that starts it cold, as its record says it',
  );
  const metrics = JSON.parse(readFileSync(join(dir, 'warm', 'metrics.json'), 'utf8')) as { models: Record<string, object>; warmStarts?: unknown };
  assert.deepEqual(Object.keys(metrics), ['events', 'deadLetters', 'models', 'warmStarts', 'modelFiles'], 'metrics.json: its fields as before, warmStarts added');
  assert.deepEqual(Object.keys(metrics.models['intent-lr']!), ['auc', 'logloss', 'brier', 'n', 'positives', 'lastWindow', 'calibrationError'], 'each model as before');
  assert.deepEqual(metrics.warmStarts, { 'intent-lr': { file: saved, steps } }, 'metrics.json names the warm-started model as the result does');
  // Cold: nothing said, nothing in the page.
  const cold = backtest('cold', '--set', 'stages[2].checkpoint.warm_start=false');
  assert.equal(cold.status, 0, cold.stderr);
  assert.deepEqual(records(cold.stderr).filter((entry) => entry.level >= 40 && /warm start/.test(entry.msg)), []);
  assert.equal(backtestResults(cold.stderr)[0]!.warmStarts, undefined);
  assert.deepEqual(Object.keys(JSON.parse(readFileSync(join(dir, 'cold', 'metrics.json'), 'utf8')) as object), ['events', 'deadLetters', 'models', 'modelFiles'], 'cold: metrics.json as before');
  assert.doesNotMatch(readFileSync(join(dir, 'cold', 'report.html'), 'utf8'), /id="warm-start"/);
});

test("backtest refuses (exit 2, before anything runs) an --input the pipeline's own file sink or dead-letter sink writes (was: truncated before it was read), however the path is written", (t) => {
  const dir = tempFolder(t, 'backtest-clobber');
  const world = new ShopperWorld({ seed: 5, users: 20 });
  const events = `${Array.from({ length: 200 }, () => JSON.stringify(world.next())).join('\n')}\n`;
  const folder = join(dir, 'pipelines');
  mkdirSync(folder);
  const pipeline = join(folder, 'gen.yaml');
  // The sink's path is relative to the pipeline's folder, the --input to the working directory.
  writeFileSync(pipeline, 'name: gen\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ../events.jsonl}]\ndead_letter: {type: file, path: ../bad.jsonl}\n');
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, events);
  symlinkSync(data, join(dir, 'link.jsonl'));
  writeFileSync(join(dir, 'bad.jsonl'), events);
  const backtest = (input: string) => spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', input, '--report', 'report', '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  for (const [input, writer] of [['events.jsonl', 'sinks[0]'], ['./link.jsonl', 'sinks[0]'], ['bad.jsonl', 'dead_letter']]) {
    const run = backtest(input!);
    assert.equal(run.status, 2, run.stderr);
    assert.ok(run.stderr.includes(`--input ${input} is the file ${writer} (a file sink) writes`), run.stderr);
  }
  assert.equal(readFileSync(data, 'utf8'), events, 'the input is left as it was');
  assert.equal(readFileSync(join(dir, 'bad.jsonl'), 'utf8'), events);
  assert.equal(existsSync(join(dir, 'report')), false);
  // A copy is read.
  copyFileSync(data, join(dir, 'copy.jsonl'));
  assert.equal(backtest('copy.jsonl').status, 0);
});

test("backtest refuses an --input that a user's sink plugin declares it writes (outputFiles), as it does the file sink's", (t) => {
  const dir = tempFolder(t, 'backtest-clobber-plugin');
  const folder = join(dir, 'pipelines');
  mkdirSync(folder);
  const pipeline = join(folder, 'csv.yaml');
  writeFileSync(pipeline, 'name: csv\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: csv-predictions, path: ../predictions.csv}]\n');
  const csv = join(dir, 'predictions.csv');
  writeFileSync(csv, 'id,model,task,userId,sessionId,time,score\n');
  const plugin = new URL('../../examples/plugins/csv-predictions/index.js', import.meta.url).pathname;
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--plugin', plugin, '--input', 'predictions.csv', '--report', 'report', '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 2, run.stderr);
  assert.ok(
    run.stderr.includes('--input predictions.csv is the file sinks[0] (a csv-predictions sink) writes: the run would replace it (or append to it) while reading it; copy it elsewhere first, or --set sinks[0].path to another file'),
    run.stderr,
  );
  assert.equal(readFileSync(csv, 'utf8'), 'id,model,task,userId,sessionId,time,score\n', 'the file is as it was');
  assert.equal(existsSync(join(dir, 'report')), false);
});

/**
 * Clicks from the browser and orders from the order service, as two files of their own schemas: the shopper
 * world's events with each purchase moved into an order written `delayMs` after it (the order service writes
 * after payment), and the same events whole, canonical, as one source would read them.
 */
function clicksAndOrders(dir: string, delayMs: number): { clicks: string; orders: string; whole: string } {
  const world = new ShopperWorld({ seed: 3, users: 40 });
  const events = Array.from({ length: 3000 }, () => world.next());
  const lines = (rows: readonly object[]): string => rows.map((row) => `${JSON.stringify(row)}\n`).join('');
  const clicks = events.filter((e) => e.type !== 'purchase').map((e) => ({ user_id: e.userId, event_time: new Date(e.time).toISOString(), event_type: e.type, product_id: e.itemId, price: e.price }));
  const orders = events
    .filter((e) => e.type === 'purchase')
    .map((e, n) => ({ order_id: `o-${n}`, customer_id: e.userId, created_at: new Date(e.time + delayMs).toISOString(), total: e.price }))
    .sort((a, b) => a.created_at.localeCompare(b.created_at));
  assert.ok(orders.length > 20, 'the world buys');
  writeFileSync(join(dir, 'clicks.jsonl'), lines(clicks));
  writeFileSync(join(dir, 'orders.jsonl'), lines(orders));
  writeFileSync(join(dir, 'whole.jsonl'), lines(events));
  return { clicks: join(dir, 'clicks.jsonl'), orders: join(dir, 'orders.jsonl'), whole: join(dir, 'whole.jsonl') };
}

const ORDERS_PIPELINE = `name: orders
sources:
  - type: file
    path: clicks.jsonl
    mapping: { fields: { user_id: user_id, time: event_time, type: event_type, item_id: product_id, price: price } }
  - type: file
    path: orders.jsonl
    mapping: { fields: { user_id: customer_id, time: created_at, price: total }, default_type: purchase }
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent }
sinks: [{type: file, path: out.jsonl, kinds: [session]}]
`;

test('backtest of a pipeline with two sources (clicks and orders, each with its own mapping) takes one --input per source, in order: the orders label the sessions as purchases inline do (was: refused)', (t) => {
  const dir = tempFolder(t, 'backtest-two-sources');
  const data = clicksAndOrders(dir, 90_000);
  const pipeline = join(dir, 'orders.yaml');
  writeFileSync(pipeline, ORDERS_PIPELINE);
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data.clicks, '--input', data.orders, '--report', join(dir, 'two'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const one = join(dir, 'one.yaml');
  writeFileSync(one, 'name: one\nsources: [{type: file, path: whole.jsonl, mapping: canonical}]\nstages: [{type: sessionizer, gap: 30m}, {type: session-features}, {type: intent-model, name: intent}]\nsinks: [{type: file, path: out1.jsonl, kinds: [session]}]\n');
  const whole = spawnSync(process.execPath, [main, 'backtest', one, '--input', data.whole, '--report', join(dir, 'one'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(whole.status, 0, whole.stderr);
  const metricsOf = (report: string) => JSON.parse(readFileSync(join(dir, report, 'metrics.json'), 'utf8')) as { events: number; deadLetters: number; models: Record<string, BacktestModelMetrics> };
  const [two, inline] = [metricsOf('two'), metricsOf('one')];
  assert.equal(two.events, inline.events, 'every click and every order read');
  assert.equal(two.deadLetters, 0);
  // Each order, paid 90 s after its session's last click, joins that session: the same sessions bought.
  assert.deepEqual([two.models.intent!.n, two.models.intent!.positives], [inline.models.intent!.n, inline.models.intent!.positives]);
  assert.ok(two.models.intent!.positives > 0);
  assert.match(readFileSync(join(dir, 'two', 'report.html'), 'utf8'), /<code>[^<]*clicks\.jsonl<\/code> \(\d+ bytes[^)]*\), <code>[^<]*orders\.jsonl<\/code> \(\d+ bytes/);
});

test('backtest of a pipeline with two sources and one --input: refused at the source left without one (exit 2, file:line:col, nothing run); more --input than sources: a usage error', (t) => {
  const dir = tempFolder(t, 'backtest-sources');
  const data = clicksAndOrders(dir, 1000);
  const pipeline = join(dir, 'orders.yaml');
  writeFileSync(pipeline, ORDERS_PIPELINE);
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data.clicks, '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 2, run.stderr);
  const [problem] = records(run.stderr) as unknown as { code: string; line: number; col: number; path: string; msg: string }[];
  assert.deepEqual([problem?.code, problem?.line, problem?.path], ['TRIB_ERR_CONFIG_INVALID', 6, '$.sources[1]'], run.stderr);
  assert.match(problem!.msg, /backtest replays one --input per source, in the order of `sources`; this pipeline has 2 and 1 --input was given: give one for \$\.sources\[1\] too/);
  assert.equal(existsSync(join(dir, 'report')), false);
  const extra = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data.clicks, '--input', data.orders, '--input', data.whole, '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(extra.status, 2, extra.stderr);
  assert.match(extra.stderr, /3 --input given for 2 sources: one --input per source, in the order of `sources`/);
  assert.equal(existsSync(join(dir, 'report')), false);
});

test("backtest of a source whose fields the file source cannot take (a format of its own): said at the field in the pipeline file, exit 2, before anything runs (was FILE:0:0)", (t) => {
  const dir = tempFolder(t, 'backtest-replaced');
  writeFileSync(
    join(dir, 'avro.mjs'),
    `import { defineSource } from ${JSON.stringify(new URL('../index.js', import.meta.url).href)};
export default defineSource({
  name: 'avro-feed',
  summary: 'Records in a format of its own (tests only).',
  config: { type: 'object', additionalProperties: false, properties: { format: { type: 'string' }, mapping: { $ref: 'tributary:mapping' } } },
  create: () => ({ async *read() {} }),
});
`,
  );
  const pipeline = join(dir, 'avro.yaml');
  writeFileSync(pipeline, 'name: avro\nplugins: [./avro.mjs]\nsources:\n  - type: avro-feed\n    format: avro\n    mapping: {time_format: epoch_ms}\nsinks: [{type: file, path: out.jsonl}]\n');
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${JSON.stringify(new ShopperWorld({ seed: 1, users: 5 }).next())}\n`);
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 2, run.stderr);
  const [problem, ...more] = records(run.stderr) as unknown as { code: string; line: number; column: number; path: string; msg: string }[];
  assert.equal(more.length, 0, run.stderr);
  assert.deepEqual([problem?.code, problem?.line, problem?.column, problem?.path], ['TRIB_ERR_CONFIG_INVALID', 5, 13, '$.sources[0].format'], run.stderr);
  assert.equal(problem!.msg, `${pipeline}:5:13: $.sources[0].format: as a file source: must be one of: "jsonl", "csv", got "avro"`);
  assert.equal(existsSync(join(dir, 'report')), false);
});

test('backtest of a scale_out pipeline (a kafka source) replays it without scale_out (was: refused as it was built, exit 1)', (t) => {
  const dir = tempFolder(t, 'backtest-scale-out');
  const world = new ShopperWorld({ seed: 3, users: 50 });
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${Array.from({ length: 1500 }, () => JSON.stringify(world.next())).join('\n')}\n`);
  const pipeline = join(dir, 'scaled.yaml');
  writeFileSync(
    pipeline,
    `name: scaled
sources:
  - type: kafka
    brokers: "127.0.0.1:1"
    topics: [clicks]
    group: g
    mapping: { fields: { user_id: userId, session_id: sessionId, item_id: itemId }, time_format: epoch_ms, attributes_field: attrs }
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent, backend: cpu }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
checkpoint: { dir: cp }
scale_out: { state_dir: parts }
`,
  );
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', join(dir, 'report'), '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const metrics = JSON.parse(readFileSync(join(dir, 'report', 'metrics.json'), 'utf8')) as { events: number; models: Record<string, { n: number }> };
  assert.equal(metrics.events, 1500);
  assert.ok(metrics.models.intent!.n > 0);
  assert.equal(existsSync(join(dir, 'parts')), false, 'no partition state');
});

test("backtest of a kafka source taking event time from record timestamps (and the user id from keys): it says first what the file's lines cannot carry and where the replay reads it instead, then reads the field named with --set", (t) => {
  const dir = tempFolder(t, 'backtest-timestamps');
  writeFileSync(join(dir, 'values.jsonl'), '{"uid":"u1","ev":"view","ts":1714521600000}\n{"uid":"u1","ev":"cart","ts":1714521660000}\n');
  const pipeline = join(dir, 'timestamps.yaml');
  writeFileSync(
    pipeline,
    `name: timestamps
sources:
  - type: kafka
    brokers: "127.0.0.1:1"
    topics: [clicks]
    group: g
    event_time: timestamp
    key_field: uid
    mapping: { fields: { user_id: uid, type: ev } }
stages: [{ type: sessionizer, gap: 30m }]
sinks: [{ type: file, path: out.jsonl }]
`,
  );
  const backtest = (...sets: string[]) =>
    spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', join(dir, 'values.jsonl'), '--report', join(dir, 'report'), '--log-level', 'warn', ...sets.flatMap((set) => ['--set', set])], { encoding: 'utf8', cwd: dir });
  const warnings = (stderr: string): string[] =>
    stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { msg: string }).msg)
      .filter((msg) => msg.startsWith('backtest: '));
  // Before: only that every record was dead-lettered, "time: missing timestamp", the mapping blamed.
  const bare = backtest();
  assert.equal(bare.status, 1, 'no event read');
  const said = warnings(bare.stderr);
  assert.equal(said.length, 2, bare.stderr);
  assert.match(said[0]!, /event_time: timestamp takes event time from each Kafka record's timestamp, which a file's lines do not carry: the replay reads it from the field 'time'/);
  assert.match(said[1]!, /key_field: uid is filled from each Kafka record's key/);
  const named = backtest('sources[0].mapping.fields.time=ts', 'sources[0].mapping.time_format=epoch_ms');
  assert.equal(named.status, 0, named.stderr);
  assert.match(warnings(named.stderr)[0]!, /reads it from the field 'ts'/);
  assert.equal((JSON.parse(readFileSync(join(dir, 'report', 'metrics.json'), 'utf8')) as { events: number }).events, 2);
});

test('backtest: an --input or --report below a file (ENOTDIR) is a usage error, exit 2 (was exit 1 with a stack trace)', (t) => {
  const dir = tempFolder(t, 'backtest-notdir');
  const pipeline = join(dir, 'p.yaml');
  writeFileSync(pipeline, 'name: p\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: out.jsonl}]\n');
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${JSON.stringify(new ShopperWorld({ seed: 1, users: 5 }).next())}\n`);
  const backtest = (...args: string[]) => spawnSync(process.execPath, [main, 'backtest', pipeline, ...args, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  const report = backtest('--input', data, '--report', 'p.yaml/sub/report');
  assert.equal(report.status, 2, report.stderr);
  assert.ok(report.stderr.includes(`--report p.yaml/sub/report: ${pipeline} is a file, so no folder can be made in it`), report.stderr);
  const input = backtest('--input', 'p.yaml/events.jsonl', '--report', 'r');
  assert.equal(input.status, 2, input.stderr);
  assert.ok(input.stderr.includes('--input p.yaml/events.jsonl: no such file'), input.stderr);
  assert.equal(existsSync(join(dir, 'out.jsonl')), false);
});

test('metrics.json keeps a model named __proto__ (was dropped: an assignment set the prototype)', () => {
  const summary = { n: 3, positives: 1, auc: 0.5, logloss: 0.6, brier: 0.2 };
  const report = (model: string) => ({ kind: 'model_metrics', time: 0, model, summary }) as unknown as Parameters<typeof backtestMetrics>[1][number];
  const metrics = backtestMetrics({ eventsIn: 10, deadLettered: 0, filteredByReason: {} } as RunStats, [report('__proto__'), report('churn')]);
  assert.deepEqual(Object.keys(metrics.models), ['__proto__', 'churn']);
  assert.deepEqual(JSON.parse(JSON.stringify(metrics)).models.__proto__, { auc: 0.5, logloss: 0.6, brier: 0.2, n: 3, positives: 1 });
});

test('backtest of a short file: a model that learnt nothing before its labels came (AUC 0.5) and one with no label say why, on the console, in the result record and in report.html; metrics.json keeps its numbers (was a bare 0.5 and a bare -)', (t) => {
  const dir = tempFolder(t, 'backtest-cold');
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${shopperLines(9, 40, 600).join('\n')}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  // A learning batch larger than the file's labels: the logistic model learns only at the end of input, after every label was scored.
  writeFileSync(
    pipeline,
    `name: cold
sources: [{ type: stdin, format: jsonl, mapping: { time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu, batch: { max_size: 100000 } }
  - { type: churn-model, name: churn-lr, backend: cpu, horizon: 30d }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`,
  );
  const report = join(dir, 'report');
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', report, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const metrics = JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as { models: Record<string, Record<string, number | null>> };
  const intent = metrics.models['intent-lr']!;
  assert.ok(intent.n! > 0 && intent.positives! > 0 && intent.positives! < intent.n!, JSON.stringify(intent));
  assert.equal(intent.auc, 0.5, 'the prior for every prediction: the AUC is what it is, not hidden');
  assert.deepEqual(Object.keys(intent), ['auc', 'logloss', 'brier', 'n', 'positives', 'lastWindow', 'calibrationError']);
  assert.deepEqual([metrics.models['churn-lr']!.n, metrics.models['churn-lr']!.auc], [0, null]);
  const [result] = backtestResults(run.stderr);
  assert.match(result!.msg, /intent-lr AUC 0\.5000 \(every label scored before it learnt\)/);
  assert.match(result!.msg, /churn-lr AUC - \(no label\)/);
  assert.match(result!.notes!['intent-lr']![0]!, new RegExp(`^all ${intent.n} labels scored predictions made before the model had learnt from any label`));
  assert.match(result!.notes!['churn-lr']![0]!, /^no label: all \d+ predictions still awaited their outcome when the input ended/);
  const html = readFileSync(join(report, 'report.html'), 'utf8');
  assert.match(html, /<div id="score-notes"[^]*intent-lr<\/code>: all \d+ labels scored predictions made before the model had learnt[^]*churn-lr<\/code>: no label/);
});

/** A minimal DOM element: what report.html's script builds its page with. */
class FakeElement {
  children: FakeElement[] = [];
  attributes: Record<string, string> = {};
  textContent = '';
  className = '';
  constructor(readonly tag: string) {}
  appendChild(child: FakeElement): FakeElement {
    this.children.push(child);
    return child;
  }
  setAttribute(name: string, value: string): void {
    this.attributes[name] = value;
  }
}

interface DrawnPlot {
  opts: { title: string; axes: { label: string }[]; tzDate?: (ts: number) => unknown; series: { label?: string }[] };
  data: unknown[][];
  box: FakeElement;
}

/**
 * Runs report.html's own script (the last one) against a fake DOM and a uPlot that records each plot: what a browser would draw.
 * `plots` are the models' own, `compared` those of the champion-and-challenger sections, each by its section's index.
 */
function renderReport(html: string): { plots: DrawnPlot[]; models: FakeElement; compared: DrawnPlot[][]; elements: Record<string, FakeElement> } {
  const scripts = [...html.matchAll(/<script>([^]*?)<\/script>/g)].map((match) => match[1]!);
  const models = new FakeElement('div');
  const elements: Record<string, FakeElement> = { summary: new FakeElement('table'), models };
  // The page's other elements by id, each made at its first look-up, where the page has one of that id.
  const byId = (id: string): FakeElement | undefined => (elements[id] ??= html.includes(` id="${id}"`) ? new FakeElement('div') : undefined!);
  const plots: DrawnPlot[] = [];
  const uPlot = Object.assign(
    function (this: unknown, opts: DrawnPlot['opts'], data: unknown[][], box: FakeElement) {
      plots.push({ opts, data, box });
    },
    { tzDate: (date: Date, zone: string) => ({ date, zone }) },
  );
  runInNewContext(scripts.at(-1)!, { document: { getElementById: byId, createElement: (tag: string) => new FakeElement(tag) }, uPlot });
  const compared = Object.entries(elements)
    .filter(([id]) => id.startsWith('comparison-plots-'))
    .sort(([a], [b]) => Number(a.split('-').at(-1)) - Number(b.split('-').at(-1)))
    .map(([, section]) => plots.filter((drawn) => section.children.includes(drawn.box)));
  return { plots: plots.filter((drawn) => !compared.flat().includes(drawn)), models, compared, elements };
}

test('report.html: each plot has a title, labelled axes (event time in UTC, log loss in nats) and an aria-label; a model with no label or one class shows why in a plot\'s place, not an empty frame or a chance line as its ROC (was both); the page says where it came from', () => {
  const time = Date.parse('2019-10-01T00:00:00Z');
  const report = (model: string, n: number, positives: number, timeline: boolean, scoreNotes: string[] = []) => ({
    kind: 'model_metrics',
    model,
    task: 'intent',
    kind_of_model: 'logistic',
    backend: 'cpu',
    features: ['s_events'],
    summary: { n, positives, baseRate: n ? positives / n : 0, auc: positives > 0 && positives < n ? 0.7 : null, logloss: 0.3, brier: 0.1 },
    calibration: n ? [{ lower: 0, upper: 0.1, count: n, meanScore: 0.05, positiveRate: positives / n }] : [{ lower: 0, upper: 0.1, count: 0, meanScore: 0, positiveRate: 0 }],
    roc: { fpr: [0, 0.5, 1], tpr: [0, 0.8, 1] },
    timeline: timeline ? [{ time, n: 250, auc: 0.7, logloss: 0.3, cumulativeAuc: 0.7 }] : [],
    // As the model stage says it (plugins/models' learner): the page names no config field of its own.
    timelineWindow: { labels: 1000, firstPointAt: 250, setting: 'metrics.window' },
    counts: { predictions: n + 10, labels: n, unlabelledAtEnd: 10, overflow: 0, expired: 0, invalidScores: 0, scoredBeforeLearning: 0 },
    warmStart: null,
    // As the model stage says them (plugins/models' score-notes).
    scoreReason: scoreNotes.length > 0 ? 'why' : null,
    scoreNotes,
  });
  const unlabelled = 'no label: all 10 predictions still awaited their outcome when the input ended (a session still open, a churn horizon not yet passed): a longer input gives labels';
  const negatives = 'no AUC: all 40 labels were negative, and an AUC needs both outcomes';
  const reports = [report('learnt', 500, 50, true), report('unlabelled', 0, 0, false, [unlabelled]), report('negatives', 40, 0, false, [negatives])];
  const metrics = backtestMetrics({ eventsIn: 900, deadLettered: 0, filteredByReason: {} } as RunStats, reports);
  const source = { pipelineFile: '/p/pipeline.yaml', sets: ['stages[0].gap=5m'], inputs: [{ path: '/data/in.csv', bytes: 1234, modified: '2024-01-01T00:00:00.000Z' }], generatedAt: '2024-01-02T03:04:05.000Z', version: '9.9.9', commit: 'abc123' };
  const html = reportHtml('bt', '/data/in.csv', metrics, reports, source);
  assert.match(html, /Pipeline: <code>\/p\/pipeline\.yaml<\/code>, overrides: <code>--set stages\[0\]\.gap=5m<\/code>\. Made 2024-01-02T03:04:05\.000Z by tributary 9\.9\.9, commit <code>abc123<\/code>/);
  assert.match(html, /<code>\/data\/in\.csv<\/code> \(1234 bytes, modified 2024-01-01T00:00:00\.000Z\)/);
  // A secret given by --set (a stage's API token, a Kafka sink's password) is not in the page, which is passed around.
  const secrets = ['stages[2].api_token=tok-123', 'sinks[0].security.sasl.password=hunter2', 'sinks[0].options["ssl.key.pem"]=-----BEGIN PRIVATE KEY-----x'];
  const withSecrets = reportHtml('bt', '/data/in.csv', metrics, reports, { ...source, sets: ['stages[0].gap=5m', ...secrets] });
  for (const secret of ['tok-123', 'hunter2', 'BEGIN PRIVATE']) assert.ok(!withSecrets.includes(secret), secret);
  assert.match(withSecrets, /overrides: <code>--set stages\[0\]\.gap=5m<\/code>, <code>--set stages\[2\]\.api_token=… \(value not shown: a secret\)<\/code>, <code>--set sinks\[0\]\.security\.sasl\.password=… \(value not shown: a secret\)<\/code>/);
  assert.doesNotMatch(html, /\s(src|href)=/, 'nothing loaded from elsewhere');
  const { plots, models } = renderReport(html);
  const sections = models.children.filter((child) => child.className === 'plots');
  assert.equal(sections.length, 3);
  const shown = sections.map((section) => section.children.map((box) => (box.attributes.role === 'img' ? `plot ${box.attributes['aria-label']}` : `none ${box.children.map((c) => c.textContent).join(': ')}`)));
  assert.deepEqual(shown[0], [
    'plot ROC curve: true positive rate by false positive rate',
    'plot Calibration: observed positive rate by mean predicted probability',
    'plot AUC over event time: AUC by event time (UTC)',
    'plot Log loss over event time: log loss (nats) by event time (UTC)',
  ]);
  assert.deepEqual(shown[1], ['none ROC curve: No label was scored: nothing to plot.', 'none Calibration: No label was scored: nothing to plot.', 'none AUC over event time: No label was scored: nothing to plot.', 'none Log loss over event time: No label was scored: nothing to plot.']);
  assert.deepEqual(shown[2], [
    'none ROC curve: None: all 40 labels were negative, and a ROC curve needs both outcomes.',
    'plot Calibration: observed positive rate by mean predicted probability',
    'none AUC over event time: No point yet: the first comes after 250 labels (set by metrics.window), and this model got 40.',
    'none Log loss over event time: No point yet: the first comes after 250 labels (set by metrics.window), and this model got 40.',
  ]);
  assert.deepEqual(
    plots.filter((drawn) => drawn.opts.title.endsWith('over event time')).map((drawn) => Array.from(drawn.opts.series.slice(1), (series) => series.label)),
    [['window (last 1000 labels)', 'cumulative'], ['window (last 1000 labels)']],
  );
  for (const drawn of plots) {
    assert.ok(drawn.opts.title && drawn.opts.axes.every((axis) => axis.label), `${drawn.opts.title}: titled, both axes labelled`);
    if (drawn.opts.axes[0]!.label.startsWith('event time')) {
      // The page's Date is the vm's: compared by value.
      const shownAt = drawn.opts.tzDate!(1.5) as { date: Date; zone: string };
      assert.deepEqual([shownAt.date.getTime(), shownAt.zone], [1500, 'Etc/UTC']);
    }
  }
  // The notes of the models that have them, at their section.
  const notes = models.children.filter((child) => child.className === 'warning').map((child) => child.textContent);
  assert.deepEqual(notes, [unlabelled, negatives]);
  // Each model's counts in words, not the record's JSON (was 'Counts: {"predictions":510,...}'); a count the page does not know by its name.
  const counts = models.children.filter((child) => child.className === 'counts').map((list) => list.children.map((item) => item.textContent));
  assert.equal(counts.length, 3);
  assert.deepEqual(counts[0], [
    '510 predictions made',
    '500 predictions scored against their label (and learnt from)',
    '10 predictions still awaiting their label when the input ended (not scored)',
    '0 predictions not held for their label by a full label buffer (not scored)',
    "0 predictions dropped unscored: their label did not come within the label buffer's timeout",
    '0 predictions that were not a number (not scored)',
    "0 labels scored before the model's first learning step (the untrained model)",
  ]);
  const custom = renderReport(reportHtml('bt', '/data/in.csv', metrics, [{ ...reports[0]!, counts: { trees: 3 } }], source)).models.children.find((child) => child.className === 'counts');
  assert.deepEqual(custom?.children.map((item) => item.textContent), ['3 trees']);
});

test("metrics.json and report.html say each model's last-window AUC and log loss (the window's size as its record says it) and its calibration error, each explained in a line; a plugin whose record says neither gets neither, and its scores as before", () => {
  const record = (model: string, figures: boolean, n = 1500) => ({
    kind: 'model_metrics',
    model,
    task: 'intent',
    kind_of_model: 'logistic',
    backend: null,
    features: [],
    summary: { n, positives: n / 5, baseRate: 0.2, auc: 0.8, logloss: 0.4, brier: 0.12, ...(figures ? { window: { n: Math.min(n, 1000), auc: 0.8123, logloss: 0.3456, brier: 0.11, baseRate: 0.2 } } : {}) },
    calibration: [{ lower: 0, upper: 0.5, count: n / 2, meanScore: 0.1, positiveRate: 0.12 }, { lower: 0.5, upper: 1, count: n / 2, meanScore: 0.6, positiveRate: 0.28 }],
    roc: { fpr: [0, 1], tpr: [0, 1] },
    timeline: [],
    counts: {},
    ...(figures ? { timelineWindow: { labels: 1000, firstPointAt: 250, setting: 'metrics.window' }, calibrationError: { ece: 0.171, maxGap: 0.32 } } : {}),
  });
  const reports = [record('builtin', true), record('theirs', false)];
  const metrics = backtestMetrics({ eventsIn: 10, deadLettered: 0, filteredByReason: {} } as RunStats, reports as unknown as Parameters<typeof backtestMetrics>[1]);
  assert.deepEqual(metrics.models.builtin, {
    auc: 0.8,
    logloss: 0.4,
    brier: 0.12,
    n: 1500,
    positives: 300,
    lastWindow: { size: 1000, n: 1000, auc: 0.8123, logloss: 0.3456 },
    calibrationError: { bins: 2, ece: 0.171, maxGap: 0.32 },
  });
  assert.deepEqual(metrics.models.theirs, { auc: 0.8, logloss: 0.4, brier: 0.12, n: 1500, positives: 300 });
  // Before its first label: no mean to take, as the cumulative scores.
  const [unlabelled] = [{ ...record('new', true, 0), summary: { n: 0, positives: 0, baseRate: 0, auc: null, logloss: 0, brier: 0, window: { n: 0, auc: null, logloss: 0 } }, calibrationError: null }];
  assert.deepEqual(backtestMetrics({ eventsIn: 10, deadLettered: 0, filteredByReason: {} } as RunStats, [unlabelled] as unknown as Parameters<typeof backtestMetrics>[1]).models.new, {
    auc: null,
    logloss: null,
    brier: null,
    n: 0,
    positives: 0,
    lastWindow: { size: 1000, n: 0, auc: null, logloss: null },
    calibrationError: { bins: 2, ece: null, maxGap: null },
  });
  const html = reportHtml('bt', '/data/in.csv', metrics, reports);
  // In the page's text, not drawn by its script: one row, for the model whose record says the figures.
  const table = /<table id="now-and-calibration">(.*?)<\/table>/.exec(html)?.[1] ?? '';
  assert.deepEqual([...table.matchAll(/<tr>(.*?)<\/tr>/g)].slice(1).map((row) => [...row[1]!.matchAll(/<td>(.*?)<\/td>/g)].map((cell) => cell[1])), [
    ['<code>builtin</code>', '1000 of 1000 (<code>metrics.window</code>)', '0.8123', '0.3456', '2', '0.1710', '0.3200'],
  ]);
  const explained = [.../<ul id="figure-notes">(.*?)<\/ul>/s.exec(html)![1]!.matchAll(/<li><strong>(.*?)<\/strong>/g)].map((item) => item[1]);
  assert.deepEqual(explained, ['Last window', 'ECE', 'Max bin gap']);
  // No model that says them: no table, and no field named.
  const none = reportHtml('bt', '/data/in.csv', backtestMetrics({ eventsIn: 10, deadLettered: 0, filteredByReason: {} } as RunStats, [reports[1]!] as unknown as Parameters<typeof backtestMetrics>[1]), [reports[1]!]);
  assert.doesNotMatch(none, /now-and-calibration|figure-notes/);
});

test("a model_metrics record of a plugin that says nothing of its scores (no scoreReason, scoreNotes) shows them without notes: the backtest derives none from its counts, as the notes are the model stage's (was: derived in core from the built-in models' counts and config fields)", () => {
  const record = {
    kind: 'model_metrics',
    model: 'theirs',
    task: 'intent',
    kind_of_model: 'rule',
    backend: null,
    features: [],
    summary: { n: 0, positives: 0, baseRate: 0, auc: null, logloss: 0, brier: 0 },
    calibration: [],
    roc: { fpr: [], tpr: [] },
    timeline: [],
    // Counts that the built-in models' notes would read as "no label: all 10 predictions still awaited their outcome".
    counts: { predictions: 10, labels: 0, unlabelledAtEnd: 10, overflow: 0, expired: 0, invalidScores: 0, scoredBeforeLearning: 0 },
  };
  assert.deepEqual(scoreNotesOf(record), { notes: [] });
  // What a record says is shown as it says it; what is not text is left out.
  assert.deepEqual(scoreNotesOf({ ...record, scoreReason: 'no label', scoreNotes: ['no label: none came', 3] }), { reason: 'no label', notes: ['no label: none came'] });
  assert.deepEqual(scoreNotesOf({ ...record, scoreReason: null, scoreNotes: 'not a list' }), { notes: [] });
  const reports = [record];
  const html = reportHtml('bt', '/data/in.csv', backtestMetrics({ eventsIn: 10, deadLettered: 0, filteredByReason: {} } as RunStats, reports as unknown as Parameters<typeof backtestMetrics>[1]), reports);
  assert.doesNotMatch(html, /score-notes/);
  const { models } = renderReport(html);
  assert.deepEqual(models.children.filter((child) => child.className === 'warning'), []);
  assert.equal(models.children.filter((child) => child.className === 'plots').length, 1, 'its scores are shown');
});

test("report.html's warm-start note says how to start a model cold as its model_metrics record says it (warmStartSetting), and names no field for a plugin whose record does not say (was: checkpoint.warm_start, a built-in model's field, for every model)", () => {
  const record = (model: string, setting?: string) => ({
    kind: 'model_metrics',
    model,
    task: 'intent',
    kind_of_model: 'logistic',
    backend: null,
    features: [],
    summary: { n: 0, positives: 0, baseRate: 0, auc: null, logloss: 0, brier: 0 },
    calibration: [],
    roc: { fpr: [], tpr: [] },
    timeline: [],
    counts: {},
    warmStart: { file: `/models/${model}.json`, steps: 7 },
    ...(setting === undefined ? {} : { warmStartSetting: setting }),
  });
  const reports = [record('builtin', 'checkpoint.warm_start'), record('theirs')];
  const html = reportHtml('bt', '/data/in.csv', backtestMetrics({ eventsIn: 10, deadLettered: 0, filteredByReason: {} } as RunStats, reports as unknown as Parameters<typeof backtestMetrics>[1]), reports);
  const note = /<div id="warm-start" class="warning">(.*?)<\/div>/.exec(html)?.[1] ?? '';
  assert.deepEqual([...note.matchAll(/<li>(.*?)<\/li>/g)].map((item) => item[1]), [
    'model <code>builtin</code> started from the saved model <code>/models/builtin.json</code> (7 learning steps); set <code>checkpoint.warm_start: false</code> on its stage (or <code>--set stages[N].checkpoint.warm_start=false</code>) for a cold score',
    'model <code>theirs</code> started from the saved model <code>/models/theirs.json</code> (7 learning steps)',
  ]);
  // In the page's text (its data, the records as given, aside): at the model whose record names it, only.
  assert.equal(html.slice(0, html.indexOf('<script>')).split('checkpoint.warm_start').length - 1, 2, 'named only where the record names it');
});

test("report.html names no model plugin's config field: what a timeline's window spans comes from the model_metrics record (timelineWindow, as the built-in models say it); a record without it is shown in words of no plugin (was: 'metrics.window', a built-in model's field, said of every model)", () => {
  const time = Date.parse('2019-10-01T00:00:00Z');
  const record = (model: string, timeline: boolean) => ({
    kind: 'model_metrics',
    model,
    task: 'intent',
    kind_of_model: 'rule',
    backend: null,
    features: [],
    summary: { n: 40, positives: 10, baseRate: 0.25, auc: 0.6, logloss: 0.5, brier: 0.2 },
    calibration: [{ lower: 0, upper: 1, count: 40, meanScore: 0.3, positiveRate: 0.25 }],
    roc: { fpr: [0, 1], tpr: [0, 1] },
    timeline: timeline ? [{ time, n: 40, auc: 0.6, logloss: 0.5, cumulativeAuc: 0.6 }] : [],
    counts: { predictions: 40, labels: 40 },
  });
  const reports = [record('few', false), record('plotted', true)];
  const html = reportHtml('bt', '/data/in.csv', backtestMetrics({ eventsIn: 80, deadLettered: 0, filteredByReason: {} } as RunStats, reports as unknown as Parameters<typeof backtestMetrics>[1]), reports);
  assert.doesNotMatch(html, /metrics\.window/);
  const { plots, models } = renderReport(html);
  const nones = models.children
    .filter((child) => child.className === 'plots')
    .flatMap((section) => section.children.filter((box) => box.className === 'no-plot').map((box) => box.children.map((c) => c.textContent).join(': ')));
  assert.deepEqual(nones, [
    'AUC over event time: No point yet: this model got 40 labels, fewer than its first point needs.',
    'Log loss over event time: No point yet: this model got 40 labels, fewer than its first point needs.',
  ]);
  assert.deepEqual(
    plots.filter((drawn) => drawn.opts.title.endsWith('over event time')).map((drawn) => Array.from(drawn.opts.series.slice(1), (series) => series.label)),
    [['window', 'cumulative'], ['window']],
  );
});

test("report.html sets each task's champion and challenger side by side: their figures in one table with the challenger's difference (better or worse), their ROC curves, calibration, and AUC and log loss over event time overlaid in one plot each; a task of one model has none, and metrics.json keeps its shape", () => {
  const time = Date.parse('2019-10-01T00:00:00Z');
  const record = (model: string, task: string, shadow: boolean | undefined, n: number, scores: { auc: number; logloss: number; fpr: number[]; tpr: number[]; at: number[] }) => ({
    kind: 'model_metrics',
    model,
    task,
    kind_of_model: 'logistic',
    backend: 'cpu',
    features: [],
    summary: { n, positives: n / 4, baseRate: 0.25, auc: n > 0 ? scores.auc : null, logloss: scores.logloss, brier: 0.1, window: { n, auc: n > 0 ? scores.auc : null, logloss: scores.logloss, brier: 0.1, baseRate: 0.25 } },
    calibration: [{ lower: 0, upper: 0.5, count: n / 2, meanScore: 0.2, positiveRate: 0.15 }, { lower: 0.5, upper: 1, count: n / 2, meanScore: 0.7, positiveRate: 0.6 }],
    calibrationError: { ece: scores.logloss / 10, maxGap: 0.1 },
    roc: { fpr: scores.fpr, tpr: scores.tpr },
    timeline: n > 0 ? scores.at.map((minutes) => ({ time: time + minutes * 60_000, n, auc: scores.auc, logloss: scores.logloss, cumulativeAuc: scores.auc })) : [],
    timelineWindow: { labels: 1000, firstPointAt: 250, setting: 'metrics.window' },
    counts: { predictions: n, labels: n },
    warmStart: null,
    scoreReason: null,
    scoreNotes: [],
    ...(shadow === undefined ? {} : { shadow }),
  });
  const reports = [
    // The challenger's stage first in the pipeline: the live model is still the one the others are measured against.
    record('intent-mlp', 'intent', true, 400, { auc: 0.85, logloss: 0.3, fpr: [0, 0.1, 0.1, 1], tpr: [0, 0.5, 0.8, 1], at: [10, 20] }),
    record('intent', 'intent', false, 400, { auc: 0.8, logloss: 0.35, fpr: [0, 0.2, 1], tpr: [0, 0.7, 1], at: [10, 20] }),
    record('churn', 'churn', undefined, 200, { auc: 0.7, logloss: 0.5, fpr: [0, 0.3, 1], tpr: [0, 0.6, 1], at: [15] }),
    record('churn-gru', 'churn', true, 0, { auc: 0, logloss: 0.6, fpr: [], tpr: [], at: [] }),
    record('alone', 'basket', undefined, 100, { auc: 0.6, logloss: 0.6, fpr: [0, 1], tpr: [0, 1], at: [] }),
  ];
  const metrics = backtestMetrics({ eventsIn: 900, deadLettered: 0, filteredByReason: {} } as RunStats, reports as unknown as Parameters<typeof backtestMetrics>[1]);
  assert.deepEqual(Object.keys(metrics), ['events', 'deadLetters', 'models']);
  assert.deepEqual(Object.keys(metrics.models.intent!), ['auc', 'logloss', 'brier', 'n', 'positives', 'lastWindow', 'calibrationError']);
  const html = reportHtml('bt', '/data/in.csv', metrics, reports);
  const tables = [...html.matchAll(/<h3>([^<]*)<\/h3>\n<table class="comparison" id="comparison-(\d)">([^]*?)<\/table>/g)].map(([, title, , table]) => ({
    title,
    rows: [...table!.matchAll(/<tr>([^]*?)<\/tr>/g)].map(([, row]) => [...row!.matchAll(/<t[hd]>([^]*?)<\/t[hd]>/g)].map(([, cell]) => cell!.replace(/<\/?code>/g, ''))),
  }));
  assert.deepEqual(tables.map((t) => t.title), ['intent: intent (live) against intent-mlp (challenger)', 'churn: churn (live) against churn-gru (challenger)'], 'one per task of two models or more, the live model first');
  assert.deepEqual(tables[0]!.rows, [
    ['figure', 'intent (live)', 'intent-mlp (challenger)', 'intent-mlp &minus; intent'],
    ['labels scored', '400', '400', 'same'],
    ['positives', '100', '100', 'same'],
    ['AUC', '0.8000', '0.8500', '+0.0500 (better)'],
    ['log loss', '0.3500', '0.3000', '-0.0500 (better)'],
    ['Brier', '0.1000', '0.1000', '0.0000 (same)'],
    ['AUC, last window', '0.8000', '0.8500', '+0.0500 (better)'],
    ['log loss, last window', '0.3500', '0.3000', '-0.0500 (better)'],
    ['ECE', '0.0350', '0.0300', '-0.0050 (better)'],
  ]);
  assert.deepEqual(tables[1]!.rows[3], ['AUC', '0.7000', '-', '-']);
  assert.match(html, /Not scored on the same labels: <code>churn-gru<\/code> 0 against <code>churn<\/code>'s 200/);

  const { compared, elements } = renderReport(html);
  assert.equal(compared.length, 2);
  const [intent, churn] = compared as [DrawnPlot[], DrawnPlot[]];
  assert.deepEqual(
    intent.map((drawn) => [drawn.opts.title, Array.from(drawn.opts.series.slice(1), (series) => series.label)]),
    [
      ['ROC curves', ['intent (live)', 'intent-mlp (challenger)', 'chance']],
      ['Calibration', ['intent (live)', 'intent-mlp (challenger)', 'perfect']],
      ['AUC over event time', ['intent (live)', 'intent-mlp (challenger)']],
      ['Log loss over event time', ['intent (live)', 'intent-mlp (challenger)']],
    ],
  );
  // One x column for all the curves: each curve's own points, in its own order (a ROC curve's vertical step too), null at the others'.
  // The page's arrays are the vm's: compared by value.
  const [x, live, challenger, chance] = JSON.parse(JSON.stringify(intent[0]!.data)) as [number[], (number | null)[], (number | null)[], (number | null)[]];
  const own = (ys: (number | null)[]) => x.flatMap((at, i) => (ys[i] === null ? [] : [[at, ys[i]]]));
  assert.deepEqual(own(live), [[0, 0], [0.2, 0.7], [1, 1]]);
  assert.deepEqual(own(challenger), [[0, 0], [0.1, 0.5], [0.1, 0.8], [1, 1]]);
  assert.deepEqual(own(chance), [[0, 0], [1, 1]]);
  assert.deepEqual(x, [...x].sort((a, b) => a - b), 'x in order');
  const [at, liveAuc] = JSON.parse(JSON.stringify(intent[2]!.data)) as [number[], (number | null)[]];
  assert.deepEqual(at.flatMap((t, i) => (liveAuc[i] === null ? [] : [[t, liveAuc[i]]])), [[time / 1000 + 600, 0.8], [time / 1000 + 1200, 0.8]]);
  // A challenger with no label is left out of each plot, and said so below them.
  assert.deepEqual(churn.map((drawn) => Array.from(drawn.opts.series.slice(1), (series) => series.label)), [['churn (live)', 'chance'], ['churn (live)', 'perfect'], ['churn (live)'], ['churn (live)']]);
  assert.deepEqual(elements['comparison-left-1']!.children.map((p) => p.textContent), [
    'ROC curves: churn-gru (challenger) left out (no label scored)',
    'Calibration: churn-gru (challenger) left out (no label scored)',
    'AUC over event time: churn-gru (challenger) left out (no label scored)',
    'Log loss over event time: churn-gru (challenger) left out (no label scored)',
  ]);
  // A pipeline of one model per task has no such section.
  const single = reportHtml('bt', '/data/in.csv', metrics, [reports[1]!, reports[2]!]);
  assert.doesNotMatch(single, /<h2 id="champion-challenger"|<table class="comparison"/);
  assert.deepEqual(renderReport(single).compared, []);
});

test("backtest of a file source that writes no format (its file's name says csv, or tsv): the input is read so whatever it is named, as the pipeline reads its data (was: read as JSON lines for an input not named .csv, every line rejected)", (t) => {
  const dir = tempFolder(t, 'backtest-implied-format');
  const world = new ShopperWorld({ seed: 4, users: 30 });
  const rows = Array.from({ length: 300 }, () => world.next());
  const stamp = (ms: number) => {
    const d = new Date(ms);
    const two = (n: number) => String(n).padStart(2, '0');
    return `${two(d.getUTCDate())}/${two(d.getUTCMonth() + 1)}/${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
  };
  for (const [sourcePath, delimiter, csvConfig] of [
    ['live/export.csv', ';', 'csv: { delimiter: ";" }'],
    ['live/export.tsv', '\t', ''],
  ] as const) {
    const data = join(dir, `shop-export-${sourcePath.slice(-3)}.txt`);
    writeFileSync(data, `${['customer', 'ts', 'kind', 'cat', 'amount'].join(delimiter)}\n${rows.map((e) => [e.userId, stamp(e.time), e.type, e.category ?? '', e.price ?? ''].join(delimiter)).join('\n')}\n`);
    const pipeline = join(dir, `pipeline-${sourcePath.slice(-3)}.yaml`);
    writeFileSync(
      pipeline,
      `name: implied
sources:
  - type: file
    path: ${sourcePath}
    ${csvConfig}
    mapping: { fields: { user_id: customer, time: ts, type: kind, category: cat, price: amount }, time_format: "dd/MM/yyyy HH:mm:ss" }
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent, backend: cpu }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`,
    );
    const report = join(dir, `report-${sourcePath.slice(-3)}`);
    const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', report, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
    assert.equal(run.status, 0, `${sourcePath}: ${run.stderr}`);
    const metrics = JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as { events: number; deadLetters: number };
    assert.deepEqual([metrics.events, metrics.deadLetters], [300, 0], sourcePath);
    // --format still decides: JSON lines asked for, every row rejected.
    const asked = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--format', 'jsonl', '--report', report, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
    assert.equal(asked.status, 1, asked.stderr);
  }
});

test("backtest --lock-wait: an output file another host's process writes (its lock renewed) is waited for up to --lock-wait, as run waits, then refused (exit 2, TRIB_ERR_OUTPUT_LOCKED); a bad duration is a usage error (was: no such option, refused at once)", (t) => {
  const dir = tempFolder(t, 'backtest-lock-wait');
  const data = join(dir, 'events.jsonl');
  writeFileSync(data, `${shopperLines(5, 20, 200).join('\n')}\n`);
  writeFileSync(join(dir, 'p.yaml'), 'name: bt\nsources: [{type: stdin, format: jsonl}]\nsinks: [{type: file, path: out.jsonl}]\n');
  const out = join(dir, 'out.jsonl');
  writeFileSync(`${out}.lock`, `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'live', since: '2026-01-01T00:00:00.000Z' })}\n`);
  const began = Date.now();
  // A run that ends at its start (a 1 s wait, then exit 2): bounded by the shared start limit, as 30 s failed falsely under load.
  const run = spawnSync(process.execPath, [main, 'backtest', 'p.yaml', '--input', data, '--report', 'r', '--lock-wait', '1s'], { encoding: 'utf8', cwd: dir, timeout: SPAWNED_START_MS });
  assert.equal(run.status, 2, run.stderr);
  assert.ok(Date.now() - began >= 1000, 'it waited');
  const logged = records(run.stderr);
  assert.ok(logged.some((entry) => entry.level === 40 && /^file sink: .* is written by pid 4242 on node-7 .*; waiting for it, up to 1 s in all$/.test(entry.msg)), run.stderr);
  assert.ok(logged.some((entry) => entry.level === 50 && /^pipeline bt: TRIB_ERR_OUTPUT_LOCKED: /.test(entry.msg)), run.stderr);
  assert.equal(existsSync(out), false, 'nothing written');
  assert.equal(existsSync(join(dir, 'r')), false, 'no report');
  const bad = spawnSync(process.execPath, [main, 'backtest', 'p.yaml', '--input', data, '--lock-wait', '5 parsecs'], { encoding: 'utf8', cwd: dir });
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--lock-wait 5 parsecs: not a duration/);
});

// The walk of docs/operations.md (From a backtest to a live model) with the backtest run of a copy of the pipeline file
// elsewhere (a staging checkout): the model file records that other file. Before, the live run warned that it replaced
// that pipeline's model ("give this stage another checkpoint.dir"), as of a model another live pipeline saves there.
test('a run warm-starting from a model a backtest of a copy of its pipeline file saved says so at info, with no warning that it replaces another pipeline\'s model', (t) => {
  const dir = tempFolder(t, 'backtest-deploy-copy');
  writeFileSync(join(dir, 'history.jsonl'), `${shopperLines(5, 40, 2000).join('\n')}\n`);
  writeFileSync(join(dir, 'live.jsonl'), `${shopperLines(6, 40, 500).join('\n')}\n`);
  const yaml = `name: shop
sources: [{ type: file, path: live.jsonl, mapping: { time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu, batch: { max_size: 64 }, checkpoint: { dir: models } }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`;
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(pipeline, yaml);
  mkdirSync(join(dir, 'staging'));
  const copy = join(dir, 'staging', 'pipeline.yaml');
  writeFileSync(copy, yaml);
  const report = join(dir, 'report');
  const backtest = spawnSync(process.execPath, [main, 'backtest', copy, '--input', join(dir, 'history.jsonl'), '--report', report, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(backtest.status, 0, backtest.stderr);
  const saved = JSON.parse(readFileSync(join(report, 'models', 'intent-lr.model.json'), 'utf8')) as { pipelineFile: string; learnSteps: number };
  assert.equal(saved.pipelineFile, copy);

  mkdirSync(join(dir, 'models'));
  const deployed = join(dir, 'models', 'intent-lr.model.json');
  copyFileSync(join(report, 'models', 'intent-lr.model.json'), deployed);
  const live = spawnSync(process.execPath, [main, 'run', pipeline, '--log-level', 'info'], { encoding: 'utf8', cwd: dir });
  assert.equal(live.status, 0, live.stderr);
  const logged = records(live.stderr) as { level: number; msg: string; file?: string; backtestOf?: string }[];
  const warm = logged.filter((entry) => /^model intent-lr: warm start/.test(entry.msg));
  assert.deepEqual(
    warm.map(({ level, msg, file, backtestOf }) => ({ level, msg, file, backtestOf })),
    [{ level: 30, msg: `model intent-lr: warm start from a model a backtest of ${copy} learnt: ${deployed} (${saved.learnSteps} learning steps; saved over at close)`, file: deployed, backtestOf: copy }],
    live.stderr,
  );
  assert.deepEqual(logged.filter((entry) => entry.level >= 40 && /model intent-lr/.test(entry.msg)).map(({ msg }) => msg), [], 'no warning that it replaces another pipeline\'s model');

  // With checkpoint.warm_start: false the copy is saved over at close: said at info, not as another pipeline's model replaced.
  copyFileSync(join(report, 'models', 'intent-lr.model.json'), deployed);
  rmSync(join(dir, 'predictions.jsonl'), { force: true });
  const cold = spawnSync(process.execPath, [main, 'run', pipeline, '--log-level', 'info', '--set', 'stages[2].checkpoint.warm_start=false'], { encoding: 'utf8', cwd: dir });
  assert.equal(cold.status, 0, cold.stderr);
  const coldLogged = records(cold.stderr) as { level: number; msg: string }[];
  assert.deepEqual(coldLogged.filter((entry) => entry.level >= 40 && /model intent-lr/.test(entry.msg)).map(({ msg }) => msg), []);
  assert.ok(coldLogged.some((entry) => entry.level === 30 && entry.msg === `model intent-lr: ${deployed} holds a model a backtest of ${copy} learnt; this run starts afresh (checkpoint.warm_start: false) and saves its model over it`), cold.stderr);
});

test("backtest saves the models it learnt to REPORT/models/NAME.model.json (metrics.json's modelFiles, relative to it; the result's, absolute), never to a model's own checkpoint.dir; a run with the file copied there warm-starts from it, its versions going on from the backtest's steps; a --report whose models/ is that checkpoint.dir is refused (was: no model saved, nothing for a run to start from)", (t) => {
  const dir = tempFolder(t, 'backtest-deploy');
  writeFileSync(join(dir, 'history.jsonl'), `${shopperLines(5, 80, 2000).join('\n')}\n`);
  writeFileSync(join(dir, 'live.jsonl'), `${shopperLines(6, 80, 500).join('\n')}\n`);
  const pipeline = join(dir, 'pipeline.yaml');
  writeFileSync(
    pipeline,
    `name: shop
sources: [{ type: file, path: live.jsonl, mapping: { time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent-lr, backend: cpu, batch: { max_size: 64 }, checkpoint: { dir: models } }
  - { type: churn-model, name: churn-lr, backend: cpu, horizon: 1d, batch: { max_size: 64 } }
sinks: [{ type: file, path: predictions.jsonl, kinds: [prediction] }]
`,
  );
  const report = join(dir, 'report');
  const backtest = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', join(dir, 'history.jsonl'), '--report', report, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(backtest.status, 0, backtest.stderr);
  const metrics = JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as { modelFiles?: Record<string, string> };
  // Every model is saved, with or without a checkpoint section of its own (a live pipeline may add one).
  assert.deepEqual(metrics.modelFiles, { 'intent-lr': 'models/intent-lr.model.json', 'churn-lr': 'models/churn-lr.model.json' });
  assert.deepEqual(backtestResults(backtest.stderr)[0]!.modelFiles, { 'intent-lr': join(report, 'models', 'intent-lr.model.json'), 'churn-lr': join(report, 'models', 'churn-lr.model.json') });
  assert.ok(readFileSync(join(report, 'report.html'), 'utf8').includes('<li>model <code>intent-lr</code>: <code>models/intent-lr.model.json</code></li>'), 'the page lists the saved files');
  assert.ok(!existsSync(join(dir, 'models')), "the model's own checkpoint.dir is left alone");
  const saved = JSON.parse(readFileSync(join(report, 'models', 'intent-lr.model.json'), 'utf8')) as { format: number; pipeline: string; pipelineFile: string; writtenByBacktest?: boolean; learnSteps: number; features: string[]; stages: unknown[] };
  assert.equal(saved.format, 1);
  assert.equal(saved.pipeline, 'shop');
  assert.equal(saved.pipelineFile, pipeline);
  assert.equal(saved.writtenByBacktest, true, 'the file says a backtest wrote it');
  assert.ok(saved.learnSteps > 0 && saved.features.length > 0 && saved.stages.length === 2, JSON.stringify({ ...saved, model: undefined, normaliser: undefined }));

  // Deployed: the file copied into the model's checkpoint.dir before the run's first start.
  mkdirSync(join(dir, 'models'));
  copyFileSync(join(report, 'models', 'intent-lr.model.json'), join(dir, 'models', 'intent-lr.model.json'));
  const live = spawnSync(process.execPath, [main, 'run', pipeline, '--log-level', 'info'], { encoding: 'utf8', cwd: dir });
  assert.equal(live.status, 0, live.stderr);
  const logged = records(live.stderr) as { level: number; msg: string; file?: string; steps?: number }[];
  const warm = logged.find((entry) => entry.file === join(dir, 'models', 'intent-lr.model.json') && /warm start/.test(entry.msg));
  assert.equal(warm?.msg, `model intent-lr: warm start from a model a backtest of ${pipeline} learnt: ${join(dir, 'models', 'intent-lr.model.json')} (${saved.learnSteps} learning steps; saved over at close)`, live.stderr);
  assert.equal(warm?.level, 30);
  assert.deepEqual(logged.filter((entry) => entry.level >= 40 && /model intent-lr/.test(entry.msg)), [], 'a backtest of the same pipeline file saved it: nothing to warn of');
  const resaved = JSON.parse(readFileSync(join(dir, 'models', 'intent-lr.model.json'), 'utf8')) as { writtenByBacktest?: boolean; pipelineFile: string };
  assert.deepEqual([resaved.writtenByBacktest, resaved.pipelineFile], [undefined, pipeline], 'saved over at close: the live run\'s model from then on');
  const first = readFileSync(join(dir, 'predictions.jsonl'), 'utf8').split('\n').map((line) => JSON.parse(line || '{}') as { model?: string; modelVersion?: string }).find((p) => p.model === 'intent-lr');
  assert.equal(first?.modelVersion, `1.${saved.learnSteps}`, "the live model's first prediction is the backtest's model's");

  // A report folder whose models/ is the model's own checkpoint.dir: refused before anything runs, the file left as it was.
  const before = readFileSync(join(dir, 'models', 'intent-lr.model.json'), 'utf8');
  const over = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', join(dir, 'history.jsonl'), '--report', dir, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(over.status, 2, over.stderr);
  assert.match(over.stderr, /model intent-lr: a backtest saves its model to \S+intent-lr\.model\.json, which is this model's own file \(checkpoint\.dir\), the one a run saves and warm-starts from: the backtest would replace it\. Give --report another folder/);
  assert.equal(readFileSync(join(dir, 'models', 'intent-lr.model.json'), 'utf8'), before);
});

test("backtest with an erasure request mid-file (an erasure tool's, without a time): counted in metrics.json and the summary; the user's predictions written before it stay in the outputs, those awaiting their label are counted as erased, and the user's later events are a new shopper's", (t) => {
  const dir = tempFolder(t, 'backtest-erasure');
  const erased = 'shopper-erase-7f3a';
  const start = Date.parse('2026-12-01T10:00:00Z');
  const lines: object[] = [];
  // Three sessions of each of three shoppers, three hours apart; the request comes in the erased one's second session.
  for (let s = 0; s < 3; s++) {
    for (let k = 0; k < 4; k++) {
      for (const [u, user] of ['alice', erased, 'carol'].entries()) {
        if (s === 1 && k === 2 && user === erased) lines.push({ user_id: user, type: 'erase' });
        lines.push({ user_id: user, time: start + s * 3 * 3_600_000 + k * 60_000 + u * 1_000, type: k === 3 && user === 'carol' ? 'purchase' : 'view' });
      }
    }
  }
  writeFileSync(join(dir, 'clicks.jsonl'), lines.map((line) => JSON.stringify(line)).join('\n') + '\n');
  writeFileSync(
    join(dir, 'pipeline.yaml'),
    `name: bt
sources: [{ type: file, path: clicks.jsonl, mapping: { time_format: epoch_ms } }]
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: intent-model, name: intent, backend: cpu, batch: { max_size: 1 }, emit_labels: true }
sinks:
  - { type: file, path: out.jsonl, kinds: [prediction, label, unlabelled] }
erasure: {}
# The watermark moves after each batch read: events read in the request's batch are still held by the sessionizer
# when it comes, and go with it, unpredicted (the default 4096 lines: every one of the user's here).
settings: { max_in_flight: 1 }
`,
  );
  const run = spawnSync(process.execPath, [main, 'backtest', join(dir, 'pipeline.yaml'), '--input', join(dir, 'clicks.jsonl'), '--report', join(dir, 'report'), '--log-level', 'info'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const metrics = JSON.parse(readFileSync(join(dir, 'report', 'metrics.json'), 'utf8')) as { events: number; deadLetters: number; erasures?: number };
  assert.deepEqual([metrics.events, metrics.deadLetters, metrics.erasures], [lines.length, 0, 1]);
  const [summary] = runSummaries(run.stderr);
  assert.equal(summary!.filteredByReason['source-file-0: erasure request'], 1);
  // The request's type is the erasure section's: no warning of an unknown event type.
  assert.doesNotMatch(run.stderr, /event type \\"erase\\" is none of the known types/);
  const outputs = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const requestAt = start + 3 * 3_600_000 + 2 * 60_000;
  const predictions = outputs.filter((record) => record.kind === 'prediction' && record.userId === erased);
  // Before the request: 4 of the first session (labelled when it closed) and 2 of the second (awaiting their label): written, so kept.
  const before = predictions.filter((record) => (record.time as number) < requestAt);
  assert.equal(before.length, 6);
  const outcomes = new Map(outputs.filter((record) => record.kind === 'label' || record.kind === 'unlabelled').map((record) => [record.predictionId, record.kind]));
  assert.deepEqual(before.map((record) => outcomes.get(record.id)), ['label', 'label', 'label', 'label', undefined, undefined], 'the two awaiting their label get none, nor an unlabelled record');
  // After it: the rest of the second session and the third, as a new shopper's.
  assert.equal(predictions.length - before.length, 6);
  const model = records(run.stderr).find((entry) => entry.msg.startsWith('model intent')) as unknown as Record<string, number>;
  assert.equal(model.erased, 2, run.stderr);
});

/** A production pipeline writing to Kafka: predictions to the live topic, late events and dead letters to topics of their own (brokers that refuse every connection). */
const KAFKA_SINKS_PIPELINE = `name: live
sources:
  - type: file
    path: events.jsonl
    mapping: { fields: { user_id: user_id, time: time }, time_format: epoch_ms }
stages:
  - { type: sessionizer, gap: 30m, allowed_lateness: 0s }
  - { type: session-features }
  - { type: intent-model, name: intent, backend: cpu, batch: { max_size: 64, max_delay: 5ms } }
sinks:
  - { type: kafka, brokers: "127.0.0.1:1", topic: intent-predictions, kinds: [prediction] }
  - { type: kafka, brokers: "127.0.0.1:1", topic: late-events, label: late, outputs: [late] }
dead_letter: { type: kafka, brokers: "127.0.0.1:1", topic: dead-letters }
`;

/** Lines of `count` shopper events with one line that is no JSON (a dead letter) and one event an hour before its neighbours (late). */
function eventsWithBadAndLate(count: number): string {
  const lines = shopperLines(3, 50, count);
  lines.splice(10, 0, 'not json');
  const middle = Math.floor(count / 2);
  const late = JSON.parse(lines[middle]!) as { time: number };
  lines.splice(middle + 1, 0, JSON.stringify({ ...late, time: late.time - 3_600_000 }));
  return `${lines.join('\n')}\n`;
}

const fileLines = (path: string): string[] => readFileSync(path, 'utf8').split('\n').filter((line) => line !== '');

test("backtest of a pipeline with kafka sinks (predictions, late events, dead letters) writes nothing to Kafka, not even a connection: each sink's records go to REPORT/sinks/LABEL.jsonl, as a file sink writes them, said once per sink in the log, the result and report.html; the metrics are those of the same pipeline with file sinks (was: replayed into the live topics)", (t) => {
  const dir = tempFolder(t, 'backtest-external-sinks');
  const data = join(dir, 'history.jsonl');
  writeFileSync(data, eventsWithBadAndLate(1500));
  const pipeline = join(dir, 'live.yaml');
  writeFileSync(pipeline, KAFKA_SINKS_PIPELINE);
  const report = join(dir, 'report');
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', report, '--log-level', 'info'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  const entries = records(run.stderr);
  assert.ok(!entries.some((entry) => /kafka/i.test(entry.msg) && /connect/.test(entry.msg)), `no kafka client was even started:\n${run.stderr}`);
  const predictionsFile = join(report, 'sinks', 'sink-kafka-0.jsonl');
  const replaced = [
    { entry: 'sinks[0]', label: 'sink-kafka-0', type: 'kafka', file: predictionsFile },
    { entry: 'sinks[1]', label: 'late', type: 'kafka', file: join(report, 'sinks', 'late.jsonl') },
    { entry: 'dead_letter', label: 'dead-letter-kafka-0', type: 'kafka', file: join(report, 'sinks', 'dead-letter-kafka-0.jsonl') },
  ];
  for (const sink of replaced) {
    const said = entries.filter((entry) => entry.msg.includes(`${sink.entry} (a kafka sink, ${sink.label})`));
    assert.equal(said.length, 1, `said once: ${sink.entry}\n${run.stderr}`);
    assert.ok(said[0]!.msg.includes(`its records go to ${sink.file} instead (--live-sinks keeps it)`), said[0]!.msg);
  }
  assert.deepEqual(backtestResults(run.stderr)[0]?.replacedSinks, replaced);
  const html = readFileSync(join(report, 'report.html'), 'utf8');
  for (const sink of replaced) assert.ok(html.includes(`<code>${sink.entry}</code> (a <code>kafka</code> sink, <code>${sink.label}</code>): <code>${sink.file}</code>`), sink.entry);

  const predictions = fileLines(predictionsFile).map((line) => JSON.parse(line) as { kind: string });
  assert.ok(predictions.length > 0 && predictions.every((record) => record.kind === 'prediction'));
  const deadLetters = fileLines(replaced[2]!.file).map((line) => JSON.parse(line) as { kind: string; raw: unknown });
  assert.deepEqual(deadLetters.map((record) => [record.kind, record.raw]), [['dead_letter', 'not json']]);

  // The same pipeline writing files: the same metrics, the same predictions, as a file sink writes them.
  const filePipeline = join(dir, 'files.yaml');
  writeFileSync(
    filePipeline,
    KAFKA_SINKS_PIPELINE.replace(/type: kafka, brokers: "127.0.0.1:1", topic: intent-predictions/, 'type: file, path: p.jsonl')
      .replace(/type: kafka, brokers: "127.0.0.1:1", topic: late-events/, 'type: file, path: late.jsonl')
      .replace(/dead_letter: .*\n/, 'dead_letter: { type: file, path: dl.jsonl }\n'),
  );
  const fileReport = join(dir, 'file-report');
  const files = spawnSync(process.execPath, [main, 'backtest', filePipeline, '--input', data, '--report', fileReport, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(files.status, 0, files.stderr);
  assert.deepEqual(JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')), JSON.parse(readFileSync(join(fileReport, 'metrics.json'), 'utf8')));
  assert.deepEqual(readFileSync(predictionsFile, 'utf8'), readFileSync(join(dir, 'p.jsonl'), 'utf8'));
  // The late sink's records (its side output's late events among them) as the file sink wrote them; but the model's
  // report, which names its own report folder (modelFile).
  const reportless = (path: string): string[] => fileLines(path).filter((line) => !line.startsWith('{"kind":"model_metrics"'));
  assert.ok(reportless(replaced[1]!.file).length > 0);
  assert.deepEqual(reportless(replaced[1]!.file), reportless(join(dir, 'late.jsonl')));
  assert.equal(existsSync(join(fileReport, 'sinks')), false, 'no file sink is replaced');
  assert.ok(!readFileSync(join(fileReport, 'report.html'), 'utf8').includes('replaced-sinks'));
});

test('backtest --live-sinks keeps the kafka sinks, with a warning per sink: the replay connects to the brokers (was: the only behaviour, unsaid)', async (t) => {
  const dir = tempFolder(t, 'backtest-live-sinks');
  const data = join(dir, 'history.jsonl');
  writeFileSync(data, eventsWithBadAndLate(300));
  const pipeline = join(dir, 'live.yaml');
  writeFileSync(pipeline, KAFKA_SINKS_PIPELINE);
  const run = spawnTributary(t, ['backtest', pipeline, '--input', data, '--report', join(dir, 'report'), '--live-sinks', '--log-level', 'info'], { cwd: dir });
  let ended = false;
  void run.exited.then(() => (ended = true));
  const connecting = (): boolean => run.stderr.includes('"msg":"kafka sink: connecting to the brokers"');
  await run.started(() => ended || connecting(), 'a kafka sink connecting');
  assert.ok(connecting(), run.stderr);
  await run.stop('SIGTERM');
  const warnings = records(run.stderr).filter((entry) => entry.level === 40 && entry.msg.startsWith('backtest --live-sinks: '));
  assert.deepEqual(
    warnings.map((entry) => entry.msg),
    ['sinks[0]', 'sinks[1]', 'dead_letter'].map((where) => `backtest --live-sinks: ${where} (a kafka sink) is kept: the replay writes its records there, where its readers act on them`),
  );
  assert.deepEqual(warnings.map((entry) => (entry as unknown as { sink: string }).sink), ['sink-kafka-0', 'late', 'dead-letter-kafka-0']);
  assert.equal(existsSync(join(dir, 'report', 'sinks')), false);
});

test("backtest replaces a user's sink plugin that declares external: true by a file in the report folder (named by its label, within the folder), and keeps one that does not declare it (it writes where it always did)", (t) => {
  const dir = tempFolder(t, 'backtest-user-external');
  const plugin = join(dir, 'http-sinks.mjs');
  // Each "posts" its records to a file of its own, standing for a remote service.
  writeFileSync(
    plugin,
    `import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineSink } from ${JSON.stringify(new URL('../index.js', import.meta.url).href)};
const post = (name, external) => defineSink({
  name, summary: 'Posts records to a service.', ...(external ? { external: true } : {}),
  config: { type: 'object', properties: {} },
  create: (config, context) => ({ write: (record) => appendFileSync(join(context.baseDir, name + '.posted'), JSON.stringify(record) + '\\n'), close: async () => undefined }),
});
export const declared = post('http-declared', true);
export const undeclared = post('http-undeclared', false);
`,
  );
  const data = join(dir, 'history.jsonl');
  writeFileSync(data, `${shopperLines(3, 50, 300, (e) => e).join('\n')}\n`);
  const pipeline = join(dir, 'p.yaml');
  writeFileSync(pipeline, `name: p\nplugins: [./http-sinks.mjs]\nsources: [{type: synthetic, events: 10}]\nsinks:\n  - { type: http-declared, label: ../web/hook, kinds: [session] }\n  - { type: http-undeclared, kinds: [session] }\nstages: [{ type: sessionizer, gap: 30m }]\n`);
  const run = spawnSync(process.execPath, [main, 'backtest', pipeline, '--input', data, '--report', 'report', '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(existsSync(join(dir, 'http-declared.posted')), false, 'the declared one posted nothing');
  // Its label names its file, kept in sinks/ (no `/`, no leading dot).
  const replaced = fileLines(join(dir, 'report', 'sinks', '_._web_hook.jsonl'));
  assert.ok(replaced.length > 0);
  assert.deepEqual(fileLines(join(dir, 'http-undeclared.posted')).map((line) => JSON.parse(line) as unknown), replaced.map((line) => JSON.parse(line) as unknown));
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { runSummaries } from '../testing.js';
import type { RunStats } from '../runtime/pipeline.js';
import { everyRecordDeadLettered, summaryRecord } from './run.js';
import { exitCodesHelp, httpHostProblem } from './commands.js';
import { lookup } from 'node:dns/promises';
import { boundedSpawnSync, spawnTributary, tempFolder, until } from 'tributary/testing';

const cli = join(packageRoot, 'dist', 'core', 'cli', 'main.js');
const dir = tempFolder({ after }, 'cli');

function tributary(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = boundedSpawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function pipeline(name: string, yaml: string): string {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

test('validate: exit 0 for valid files, 2 with FILE:LINE:COL errors on stderr otherwise', () => {
  const good = pipeline('good.yaml', 'sources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  const bad = pipeline('bad.yaml', 'sources:\n  - type: synthetic\n    events: -1\nsinks: [{type: nowhere}]\n');
  const ok = tributary('validate', good);
  assert.equal(ok.status, 0, ok.stderr);
  const failed = tributary('validate', good, bad);
  assert.equal(failed.status, 2);
  assert.match(failed.stderr, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:13: \\$\\.sources\\[0\\]\\.events: must be >= 0, got -1$`, 'm'));
  assert.match(failed.stderr, /bad\.yaml:4:16: \$\.sinks\[0\]\.type: unknown sink plugin 'nowhere'; known sink plugins: .*file.*stdout/);
});

test("a config warning (session-features in UTC while the source reads Europe/Berlin times): validate says it after ok on stderr and exits 0; run logs it once at level 40 with where it is, and runs the pipeline", () => {
  const input = join(dir, 'berlin.jsonl');
  writeFileSync(input, ['{"user_id":"u","time":"2024-07-01 14:00:00","type":"view"}', '{"user_id":"u","time":"2024-07-01 14:01:00","type":"view"}'].join('\n') + '\n');
  const out = join(dir, 'berlin-out.jsonl');
  const file = pipeline(
    'berlin.yaml',
    `name: berlin\nsources:\n  - {type: file, path: ${input}, mapping: {time_zone: Europe/Berlin}}\nstages:\n  - {type: sessionizer}\n  - {type: session-features}\nsinks: [{type: file, path: ${out}, kinds: [event]}]\n`,
  );
  const message = '$.stages[1].time_zone: neither time_zone nor utc_offset_minutes is set, so the hour-of-day and day-of-week features are taken in UTC, while source source-file-0 reads its times in Europe/Berlin (mapping.time_zone): set time_zone: Europe/Berlin on this stage for the hours of a clock there (time_zone: UTC keeps UTC and says it is meant)';
  const validate = tributary('validate', file);
  assert.equal(validate.status, 0, validate.stderr);
  assert.equal(validate.stdout, `${file}: ok\n`);
  assert.equal(validate.stderr, `${file}:6:5: warning: ${message}\n`);
  const run = tributary('run', file);
  assert.equal(run.status, 0, run.stderr);
  const warnings = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string; file?: string; line?: number; column?: number; path?: string }).filter((entry) => entry.msg.includes(': warning: '));
  assert.deepEqual(
    warnings.map(({ level, msg, file, line, column, path }) => ({ level, msg, file, line, column, path })),
    [{ level: 40, msg: `${file}:6:5: warning: ${message}`, file, line: 6, column: 5, path: '$.stages[1].time_zone' }],
  );
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 2, 'the pipeline ran');
  // Set on the stage: nothing to say.
  const meant = pipeline('berlin-meant.yaml', readFileSync(file, 'utf8').replace('{type: session-features}', '{type: session-features, time_zone: Europe/Berlin}'));
  assert.deepEqual(tributary('validate', meant), { status: 0, stdout: `${meant}: ok\n`, stderr: '' });
});

test('validate and run say each config problem at the same FILE:LINE:COL (run said a field\'s warning at its value where validate said its key): a bad value at the value, an unknown key at the key, a plugin\'s check at its field\'s value', () => {
  const input = join(dir, 'placed.jsonl');
  writeFileSync(input, '{"user_id":"u","time":"2024-07-01 14:00:00","type":"view"}\n');
  const out = join(dir, 'placed-out.jsonl');
  const cases: { name: string; yaml: string; expected: string[] }[] = [
    {
      name: 'placed-schema.yaml',
      yaml: `sources:\n  - {type: synthetic, events: -1, event: 10}\nsinks: [{type: file, path: ${out}}]\n`,
      expected: ['2:31: $.sources[0].events', '2:35: $.sources[0].event'],
    },
    {
      name: 'placed-check.yaml',
      yaml: `sources: [{type: file, path: ${input}}]\nstages:\n  - {type: sessionizer}\n  - {type: session-features, time_zone: Europe/Berlin,  utc_offset_minutes: 0}\nsinks: [{type: file, path: ${out}}]\n`,
      expected: ['4:77: $.stages[1].utc_offset_minutes'],
    },
    {
      name: 'placed-warning.yaml',
      yaml: `sources: [{type: file, path: ${input}, mapping: {time_zone: Europe/Berlin}}]\nstages:\n  - {type: sessionizer}\n  - {type: session-features,  time_zone: America/New_York}\nsinks: [{type: file, path: ${out}, kinds: [event]}]\n`,
      expected: ['4:42: $.stages[1].time_zone'],
    },
    {
      // A plugin's check naming a key with a dot, as the JSONPath writes it (was: split at the dot, said at `options` by validate and run).
      name: 'placed-dotted.yaml',
      yaml: `plugins: [./dotted-sink.mjs]\nsources: [{type: synthetic, events: 1}]\nsinks:\n  - type: dotted-sink\n    options:\n      warn: 1\n      warn.me: 2\n`,
      expected: ['7:16: $.sinks[0].options["warn.me"]'],
    },
  ];
  // A plugin module needs no import of tributary: a plugin is an object with its marker.
  writeFileSync(
    join(dir, 'dotted-sink.mjs'),
    `export default { [Symbol.for('tributary.plugin')]: true, kind: 'sink', name: 'dotted-sink', summary: 'Keys with dots (tests only).', config: { type: 'object', properties: { options: { type: 'object' } } },
  checkPipeline: (config) => (config.options?.['warn.me'] === undefined ? [] : [{ field: 'options["warn.me"]', severity: 'warning', message: 'warn.me is said at its own key' }]),
  create: () => ({ write: () => undefined, close: async () => undefined }) };\n`,
  );
  for (const { name, yaml, expected } of cases) {
    const file = pipeline(name, yaml);
    // FILE:LINE:COL: [warning: ]PATH of each problem said, in the text of validate's lines and of run's log records alike (a JSON string's quotes unescaped).
    const positions = (stderr: string): string[] =>
      [...stderr.replaceAll('\\"', '"').matchAll(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+:\\d+): (?:warning: )?(\\$[^: ]*)`, 'g'))].map((match) => `${match[1]}: ${match[2]}`).sort();
    const validate = tributary('validate', file);
    const run = tributary('run', file, '--log-level', 'warn');
    assert.deepEqual(positions(validate.stderr), expected, `validate ${name}: ${validate.stderr}`);
    assert.deepEqual(positions(run.stderr), expected, `run ${name}: ${run.stderr}`);
  }
});

test('validate: a folder is checked as run reads it, every .yaml in it (was EISDIR); a folder without one is an error', () => {
  const folder = join(dir, 'validate-folder');
  mkdirSync(join(folder, 'empty'), { recursive: true });
  writeFileSync(join(folder, 'a.yaml'), 'name: a\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  writeFileSync(join(folder, 'b.yml'), 'name: b\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: stdot}]\n');
  writeFileSync(join(folder, 'notes.txt'), 'not a pipeline');
  const result = tributary('validate', folder);
  assert.equal(result.status, 2, result.stderr);
  assert.equal(result.stdout, `${join(folder, 'a.yaml')}: ok\n`);
  assert.match(result.stderr, /b\.yml:3:16: \$\.sinks\[0\]\.type: unknown sink plugin 'stdot' \(did you mean 'stdout'\?\)/);
  assert.doesNotMatch(result.stderr, /EISDIR|notes\.txt/);
  const empty = tributary('validate', join(folder, 'empty'));
  assert.equal(empty.status, 2);
  assert.equal(empty.stderr, `${join(folder, 'empty')}: the folder holds no .yaml or .yml pipeline file\n`);
  // Two pipelines of the folder share a name, which run refuses: validate of the folder says so, at the second's
  // name, naming the first (before, both were ok). The same files named one by one may be unrelated: not checked.
  const twins = join(folder, 'twins');
  mkdirSync(twins);
  for (const name of ['one.yaml', 'two.yaml']) writeFileSync(join(twins, name), 'name: same\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  const clash = tributary('validate', twins);
  assert.equal(clash.status, 2, clash.stderr);
  assert.match(clash.stderr, /two\.yaml:1:7: \$\.name: the pipeline of .*one\.yaml:1:7 is named 'same' too/);
  assert.equal(tributary('validate', join(twins, 'one.yaml'), join(twins, 'two.yaml')).status, 0);
});

test('--plugin and --set take one value each, so they may come before the files (were greedy: the files were read as more values)', () => {
  const file = pipeline('options-first.yaml', 'sources: [{type: synthetic, events: 10}]\nstages: [{type: bot-filter}]\nsinks: [{type: stdout}]\n');
  const botFilter = join(packageRoot, 'dist', 'examples', 'plugins', 'bot-filter', 'index.js');
  const result = tributary('validate', '--plugin', botFilter, '--set', 'sources[0].events=20', '--set', 'stages[0].max_events=5', file, '--print');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /events: 20\n/);
  assert.match(result.stdout, /max_events: 5\n/);
});

test('the shipped pipelines, examples and bench pipelines validate', () => {
  const files = ['pipelines', join('examples', 'pipelines'), join('bench', 'pipelines'), join('bench', 'device')].flatMap((folder) =>
    readdirSync(join(packageRoot, folder))
      .filter((name) => name.endsWith('.yaml'))
      .map((name) => join(packageRoot, folder, name)),
  );
  assert.ok(files.length >= 2);
  // Their inputs are data sets fetched or made apart (shared/data, out/diginetica-events.jsonl), not in a fresh clone.
  const result = boundedSpawnSync(process.execPath, [cli, 'validate', '--no-check-inputs', ...files], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '', 'no warnings either');
});

test("a sink asking for a kind no stage emits (a typo) is refused by validate and by run before any output, at the kind, with the nearest one", () => {
  const folder = mkdtempSync(join(dir, 'kinds-'));
  const demo = readFileSync(join(packageRoot, 'pipelines', 'demo.yaml'), 'utf8');
  assert.ok(demo.includes('    kinds: [prediction, drift]\n'));
  const file = join(folder, 'demo.yaml');
  writeFileSync(file, demo.replace('    kinds: [prediction, drift]\n', '    kinds: [prediction, model_metric]\n').replace('../out/', './out/'));
  const line = demo.slice(0, demo.indexOf('    kinds: [prediction, drift]')).split('\n').length;
  // The demo's models do not report: the nearest kind is said with what would make it.
  const reports = (model: string, index: number): string => `the ${model} at stages[${index}] emits it only with report: true`;
  const expected =
    `${file}:${line}:25: $.sinks[0].kinds[1]: no source or stage of this pipeline emits kind 'model_metric' (did you mean 'model_metrics'? ${reports('intent-model', 4)}; ${reports('churn-model', 5)}), ` +
    'so this sink would get none; they emit: event, session, prediction, drift';
  const validate = boundedSpawnSync(process.execPath, [cli, 'validate', file], { encoding: 'utf8' });
  assert.equal(validate.status, 2, validate.stderr);
  assert.ok(validate.stderr.includes(expected), validate.stderr);
  const run = boundedSpawnSync(process.execPath, [cli, 'run', file, '--log-level', 'warn'], { encoding: 'utf8', cwd: folder, env: { ...process.env, DEMO_EVENTS: '100' } });
  assert.equal(run.status, 2, run.stderr);
  assert.ok(run.stderr.includes(expected), run.stderr);
  assert.equal(existsSync(join(folder, 'out')), false, 'nothing was written');
});

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

test('exit codes: 2 for usage and invalid config, 1 for a runtime failure', () => {
  assert.equal(tributary('frobnicate').status, 2);
  assert.equal(tributary('run').status, 2);
  assert.equal(tributary('run', pipeline('invalid.yaml', 'sources: []\nsinks: [{type: stdout}]\n')).status, 2);
  // A sink path under a file is a config error at that path (the sink's own check, as it is created).
  const plainFile = join(dir, 'a-plain-file');
  writeFileSync(plainFile, '');
  const underFile = tributary('run', pipeline('under-a-file.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${join(plainFile, 'out.jsonl')}}]\n`));
  assert.equal(underFile.status, 2);
  assert.match(underFile.stderr, /under-a-file\.yaml:2:28: \$\.sinks\[0\]\.path: sink 'file': .*a-plain-file is a file, not a folder/);
  // A sink whose file cannot be created (a name longer than the filesystem takes) fails the run as it starts.
  const tooLong = join(dir, `${'n'.repeat(300)}.jsonl`);
  const unwritable = tributary('run', pipeline('unwritable.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${tooLong}, lock: false}]\n`));
  assert.equal(unwritable.status, 1);
  // The logged error says the reason once in its message, and the cause beside it (nested, not appended).
  const logged = unwritable.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { err?: { message: string; cause?: { message: string } } });
  const failure = logged.find((entry) => entry.err !== undefined)?.err;
  assert.ok(failure, unwritable.stderr);
  assert.match(failure.message, /^sink-file-0 could not open: /);
  assert.equal(failure.message.split('name too long').length, 2, failure.message);
  assert.match(failure.cause?.message ?? '', /ENAMETOOLONG.*nnnn\.jsonl/);
});

test('schema prints the composed JSON Schema; plugins lists every plugin and its fields; --help works on all', () => {
  const schema = JSON.parse(tributary('schema').stdout) as { $defs: Record<string, unknown> };
  assert.ok(schema.$defs['source.synthetic']);
  assert.ok(schema.$defs['sink.file']);
  const plugins = tributary('plugins');
  assert.equal(plugins.status, 0);
  assert.match(plugins.stdout, /source synthetic/);
  assert.match(plugins.stdout, /users: integer \(default 1000\)/);
  for (const command of [[], ['run'], ['validate'], ['schema'], ['plugins']]) {
    const help = tributary(...command, '--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--help/);
    // What the exit codes mean, pointing to the one complete list (the help listed none).
    assert.equal(help.stdout.replace(/\s+/g, ' ').trim().endsWith(exitCodesHelp), true, `${command.join(' ')} --help ends with the exit codes: ${help.stdout}`);
  }
});

test('schema and docs piped to a reader that goes away (`tributary schema | head`) end quietly, exit 0 (were an unhandled EPIPE: a stack trace, exit 1)', async (t) => {
  for (const command of ['schema', 'docs']) {
    const run = spawnTributary(t, [command], { cwd: dir, stdout: true });
    // The reader goes away before the output is written (`tributary schema | true`; `head` does so once it has its lines).
    run.child.stdout!.destroy();
    let status: number | NodeJS.Signals | null | undefined;
    void run.exited.then((end) => (status = end));
    // Its end is the only sign it ran: bounded by the start limit (the wait on 'close' had none).
    await run.started(() => status !== undefined, 'its end');
    assert.equal(run.stderr, '', `${command}: nothing on stderr`);
    assert.equal(status, 0, command);
  }
});

test('SIGTERM stops an unbounded pipeline cleanly: sinks flushed, summary printed, exit 0', async (t) => {
  const out = join(dir, 'unbounded.jsonl');
  const file = pipeline('unbounded.yaml', `sources: [{type: synthetic, events: 0, rate: 2000}]\nsinks: [{type: file, path: ${out}}]\n`);
  const run = spawnTributary(t, ['run', file, '--log-level', 'warn'], { cwd: dir });
  // Wait until output reaches the file (the sink flushes at least every 200 ms), then stop it.
  await run.started(() => existsSync(out) && statSync(out).size > 0, 'output');
  assert.equal(await run.stop(), 0, run.stderr);
  assert.match(run.stderr, /stopped/);
  const eventsIn = runSummaries(run.stderr)[0]!.eventsIn;
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(lines.length, eventsIn, 'every event read was written before exit');
  for (const line of lines) JSON.parse(line);
});

/**
 * Runs the command with a SIGHUP sent to it while it loads its commands (once main.ts caught the
 * signals, before run.ts or backtest.ts ran): a module hook sends it as './commands.js' is imported.
 */
function withEarlyHangup(...args: string[]): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const hooks = join(dir, 'hangup-hooks.mjs');
  writeFileSync(hooks, `export async function resolve(specifier, context, next) {\n  if (specifier === './commands.js') process.kill(process.pid, 'SIGHUP');\n  return next(specifier, context);\n}\n`);
  const register = join(dir, 'hangup-register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`);
  const result = boundedSpawnSync(process.execPath, ['--import', register, cli, ...args], { cwd: dir, encoding: 'utf8' });
  return { status: result.status, signal: result.signal, stderr: result.stderr };
}

test('a SIGHUP while `run` or `backtest` is still loading is ignored (was the end of the process: no output, exit 129); any other command ends as before', () => {
  const out = join(dir, 'early-hangup.jsonl');
  const file = pipeline('early-hangup.yaml', `name: early-hangup\nsources: [{type: synthetic, events: 2000}]\nsinks: [{type: file, path: ${out}}]\n`);
  const run = withEarlyHangup('run', file, '--log-level', 'warn');
  assert.deepEqual([run.status, run.signal], [0, null], run.stderr);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 2000, 'every event written');
  const report = join(dir, 'early-hangup-report');
  const backtest = withEarlyHangup('backtest', file, '--input', out, '--report', report, '--set', `sinks[0].path=${join(dir, 'early-hangup-replayed.jsonl')}`, '--log-level', 'warn');
  assert.deepEqual([backtest.status, backtest.signal], [0, null], backtest.stderr);
  assert.equal((JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as { events: number }).events, 2000);
  const validate = withEarlyHangup('validate', file);
  assert.deepEqual([validate.status, validate.signal], [null, 'SIGHUP'], 'SIGHUP\'s default action, once validate had it back');
});

test('SIGTERM while the command is still loading (before any pipeline started) ends it cleanly, saying so, not with 143 and no word', async (t) => {
  const out = join(dir, 'early-stop.jsonl');
  const file = pipeline('early-stop.yaml', `sources: [{type: synthetic, events: 0, rate: 2000}]\nsinks: [{type: file, path: ${out}}]\n`);
  const run = spawnTributary(t, ['run', file, '--log-level', 'debug'], { cwd: dir });
  // The first line it logs, before it loads the pipelines and their plugins (a second or more): stopped as it comes
  // (seen within started()'s 10 ms poll, far less than the load).
  await run.started(() => run.stderr.includes('"msg":"loading pipelines"'), 'the log line "loading pipelines"');
  assert.equal(await run.stop(), 0, run.stderr);
  const stderr = run.stderr;
  // Almost always still loading; should the load have ended first, the run was stopped in order.
  // Not on a terminal, both are JSON log records.
  const said = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; outcome?: string });
  assert.ok(said.some((entry) => entry.msg === 'stopped by SIGTERM before any pipeline started: nothing was read or written' || entry.outcome === 'stopped'), stderr);
  if (/before any pipeline started/.test(stderr)) assert.equal(existsSync(out), false, 'nothing was written');
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

test('run: a config error found when the pipeline starts (a missing input file) exits 2 with FILE:LINE:COL and leaves the outputs as they were', () => {
  const out = join(dir, 'kept.jsonl');
  writeFileSync(out, '{"kept":true}\n');
  const file = pipeline('missing-input.yaml', `name: missing-input\nsources:\n  - type: file\n    path: nowhere.jsonl\nsinks: [{type: file, path: ${out}}]\n`);
  const result = tributary('run', file);
  assert.equal(result.status, 2, result.stderr);
  // stderr is not a terminal here: one level-50 record per problem, the text line as msg, where it is as fields.
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  assert.ok(lines.every((line) => line.startsWith('{')), `only JSON lines on stderr:\n${result.stderr}`);
  const problems = lines.map((line) => JSON.parse(line) as { level: number; code?: string; msg: string; file?: string; line?: number; column?: number; path?: string }).filter((entry) => entry.code !== undefined);
  assert.equal(problems.length, 1, result.stderr);
  // At the field that names the file, not at the entry.
  assert.deepEqual({ ...problems[0], msg: undefined, time: undefined }, { level: 50, code: 'TRIB_ERR_PLUGIN_FACTORY', pipeline: 'missing-input', file, line: 4, column: 11, path: '$.sources[0].path', msg: undefined, time: undefined });
  assert.match(problems[0]!.msg, /missing-input\.yaml:4:11: \$\.sources\[0\]\.path: source 'file': no such file: .*nowhere\.jsonl$/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(readFileSync(out, 'utf8'), '{"kept":true}\n');
  // In a list, at its item; a folder so too.
  mkdirSync(join(dir, 'a-folder'), { recursive: true });
  writeFileSync(join(dir, 'there.jsonl'), '');
  const listed = tributary('run', pipeline('missing-listed.yaml', `sources:\n  - type: file\n    path:\n      - there.jsonl\n      - nowhere.jsonl\nsinks: [{type: stdout}]\n`));
  assert.equal(listed.status, 2, listed.stderr);
  assert.match(listed.stderr, /missing-listed\.yaml:5:9: \$\.sources\[0\]\.path\[1\]: source 'file': no such file: .*nowhere\.jsonl/);
  const folder = tributary('run', pipeline('folder-input.yaml', `sources:\n  - type: file\n    path: a-folder\nsinks: [{type: stdout}]\n`));
  assert.equal(folder.status, 2, folder.stderr);
  assert.match(folder.stderr, /folder-input\.yaml:3:11: \$\.sources\[0\]\.path: source 'file': .*a-folder is a folder; name its files/);
  const unreadable = tributary('run', join(dir, 'no-such-pipeline.yaml'));
  assert.equal(unreadable.status, 2);
  assert.match(unreadable.stderr, /no-such-pipeline\.yaml: cannot read: ENOENT/);
});

test('a pipeline file that cannot be read, or a folder without one, is said as FILE: MESSAGE, with no line, column or path (was FILE:0:0: $:), by validate and run, text and JSON record alike', () => {
  const missing = join(dir, 'file-level', 'missing.yaml');
  const empty = join(dir, 'file-level', 'empty');
  mkdirSync(empty, { recursive: true });
  const said = { [missing]: `${missing}: cannot read: ENOENT: no such file or directory, open '${missing}'`, [empty]: `${empty}: the folder holds no .yaml or .yml pipeline file` };
  for (const [target, line] of Object.entries(said)) {
    const validate = tributary('validate', target);
    assert.equal(validate.status, 2, validate.stderr);
    assert.equal(validate.stderr, `${line}\n`);
    // run's stderr is no terminal here: one JSON record, naming the file, with no made-up position.
    const run = tributary('run', target);
    assert.equal(run.status, 2, run.stderr);
    const records = run.stderr.trim().split('\n').map((text) => JSON.parse(text) as Record<string, unknown>);
    assert.deepEqual(
      records.map(({ level, code, file, line, column, path, msg }) => ({ level, code, file, line, column, path, msg })),
      [{ level: 50, code: 'TRIB_ERR_CONFIG_READ', file: target, line: undefined, column: undefined, path: undefined, msg: line }],
    );
  }
});

test("validate: a source's input file that is not there (or a folder) is the error run gives at its start, same place and text; --no-check-inputs leaves it to the run (a build machine without the data)", () => {
  mkdirSync(join(dir, 'a-folder'), { recursive: true });
  writeFileSync(join(dir, 'there.jsonl'), '');
  for (const [name, yaml] of [
    ['validate-missing.yaml', 'sources:\n  - type: file\n    path: nowhere.jsonl\nsinks: [{type: stdout}]\n'],
    ['validate-missing-listed.yaml', 'sources:\n  - type: file\n    path:\n      - there.jsonl\n      - nowhere.jsonl\nsinks: [{type: stdout}]\n'],
    ['validate-folder.yaml', 'sources:\n  - type: file\n    path: a-folder\nsinks: [{type: stdout}]\n'],
  ] as const) {
    const file = pipeline(name, yaml);
    const validated = tributary('validate', file);
    // Was: `FILE: ok`, exit 0, for a pipeline run refuses at once.
    assert.equal(validated.status, 2, `${name}: ${validated.stderr}`);
    const ran = tributary('run', file);
    assert.equal(ran.status, 2, ran.stderr);
    const runProblem = ran.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { code?: string; msg: string }).find((entry) => entry.code !== undefined)!;
    assert.equal(validated.stderr, `${runProblem.msg}\n`, name);
    const unchecked = tributary('validate', file, '--no-check-inputs');
    assert.equal(unchecked.status, 0, unchecked.stderr);
    assert.equal(unchecked.stdout, `${file}: ok\n`);
  }
});

test('validate: a malformed time_format is a config error at its line', () => {
  const file = pipeline('time-format.yaml', `sources:\n  - type: file\n    path: x.jsonl\n    mapping: {time_format: "yyyy-MM-dd 'UTC"}\nsinks: [{type: stdout}]\n`);
  const result = tributary('validate', file);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /time-format\.yaml:4:28: \$\.sources\[0\]\.mapping\.time_format: time_format 'yyyy-MM-dd 'UTC': unclosed quote/);
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

/** Runs the CLI as on a terminal (pretty logs, the summary as lines): stderr is a pipe the test reads, told to say it is a TTY. */
function onTerminal(...args: string[]): { status: number | null; stderr: string } {
  const result = boundedSpawnSync(process.execPath, ['--import', 'data:text/javascript,process.stderr.isTTY=true', cli, ...args], { cwd: dir, encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr.replace(/\x1b\[[0-9;]*m/g, '') };
}

test('run on a terminal: what the stages log as the run ends (the model verdicts) comes before the summary, every time', () => {
  // A large record, as a model's verdict is, logged by a stage as it closes: the summary is written right after.
  writeFileSync(
    join(dir, 'verdict.mjs'),
    `import { defineOperator } from ${JSON.stringify(join(packageRoot, 'dist', 'core', 'index.js'))};
export default defineOperator({
  name: 'verdict',
  summary: 'Logs a large verdict as it closes (tests only).',
  config: { type: 'object', additionalProperties: false, properties: {} },
  create: (_config, context) => ({
    apply: (input) => input,
    close: async () => context.logger.info({ detail: Array.from({ length: 20000 }, (_, i) => ({ i })) }, 'verdict: the last line before the summary'),
  }),
});
`,
  );
  const file = pipeline('verdict.yaml', `name: verdict\nplugins: [./verdict.mjs]\nsources: [{type: synthetic, events: 100, users: 5}]\nstages: [{type: verdict}]\nsinks: [{type: file, path: verdict.jsonl, kinds: []}]\n`);
  for (let run = 0; run < 3; run++) {
    const result = onTerminal('run', file, '--no-progress');
    assert.equal(result.status, 0, result.stderr);
    const verdict = result.stderr.indexOf('INFO: verdict: the last line before the summary');
    const summary = result.stderr.indexOf('pipeline verdict: drained\n');
    assert.ok(verdict >= 0 && summary >= 0, result.stderr.slice(0, 2000));
    assert.ok(verdict < summary, `run ${run + 1}: the summary came before the verdict`);
  }
});

test('run --progress where stderr is not a terminal: no progress line cut into the JSON log lines', () => {
  const file = pipeline('progress.yaml', `sources: [{type: synthetic, events: 200}]\nsinks: [{type: file, path: progress.jsonl}]\n`);
  const result = tributary('run', file, '--progress');
  assert.equal(result.status, 0, result.stderr);
  assert.equal(runSummaries(result.stderr).length, 1, result.stderr);
  assert.ok(result.stderr.split('\n').every((line) => line === '' || line.startsWith('{')), `only JSON lines on stderr:\n${JSON.stringify(result.stderr)}`);
});

test('run --progress where stderr is not a terminal, asked for: a progress record every --progress-interval among the JSON log lines; unasked, none', () => {
  const file = pipeline('progress-asked.yaml', `sources: [{type: synthetic, events: 3000, rate: 3000}]\nsinks: [{type: file, path: progress-asked.jsonl}]\n`);
  const records = (stderr: string): { progress?: true; pipeline: string; eventsIn: number; eventsPerSecond: number | null; msg: string }[] =>
    stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { progress?: true; pipeline: string; eventsIn: number; eventsPerSecond: number | null; msg: string });
  // The source paces itself to 1 s; a record every 200 ms whatever --log-level (it was asked for).
  const asked = tributary('run', file, '--progress', '--progress-interval', '200ms', '--log-level', 'warn');
  assert.equal(asked.status, 0, asked.stderr);
  assert.ok(asked.stderr.split('\n').every((line) => line === '' || line.startsWith('{')), `only JSON lines on stderr:\n${JSON.stringify(asked.stderr)}`);
  const progress = records(asked.stderr).filter((entry) => entry.progress === true);
  assert.ok(progress.length >= 2, asked.stderr);
  for (const entry of progress) {
    assert.equal(entry.pipeline, 'progress-asked');
    assert.match(entry.msg, /^pipeline progress-asked: progress: \d+ events in, \d+ records out, 0 dead-lettered, /);
  }
  const counts = progress.map((entry) => entry.eventsIn);
  assert.deepEqual(counts, [...counts].sort((a, b) => a - b), 'the counts only grow');
  assert.equal(runSummaries(asked.stderr).length, 1, asked.stderr);
  const unasked = tributary('run', file, '--progress-interval', '200ms');
  assert.equal(unasked.status, 0, unasked.stderr);
  assert.equal(records(unasked.stderr).filter((entry) => entry.progress === true).length, 0, unasked.stderr);
  const wrong = tributary('run', file, '--progress', '--progress-interval', '0s');
  assert.equal(wrong.status, 2, wrong.stderr);
  // Past what a timer holds (24.8 days), which would write a record every millisecond.
  const tooLong = tributary('run', file, '--progress', '--progress-interval', '30d');
  assert.equal(tooLong.status, 2, tooLong.stderr);
  assert.match(tooLong.stderr, /--progress-interval 30d: at most 24d \(the longest a timer waits\)/);
});

test('run on a terminal redraws its progress line every settings.progress_interval', () => {
  // A terminal for the run: util-linux's script (in every Debian/Ubuntu base system) gives it a pty.
  const redraws = (interval: string): number => {
    const file = pipeline(`progress-tty-${interval}.yaml`, `sources: [{type: synthetic, events: 3000, rate: 2000}]\nsinks: [{type: file, path: progress-tty-${interval}.jsonl}]\nsettings: {progress_interval: ${interval}}\n`);
    const command = [process.execPath, cli, 'run', file, '--log-level', 'warn'].map((arg) => `'${arg}'`).join(' ');
    const result = boundedSpawnSync('script', ['-qec', command, '/dev/null'], { cwd: dir, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    return result.stdout.split('\r\x1b[2K').filter((part) => part.includes(' ev/s wm ')).length;
  };
  // The source paces itself to 1.5 s: about 15 redraws at 100 ms, one at most at 1 s.
  const often = redraws('100ms');
  const seldom = redraws('1s');
  assert.ok(often >= 6 && seldom <= 2, `${often} redraws at 100 ms, ${seldom} at 1 s`);
});

test('run on a terminal 40 columns wide cuts its progress line to 39, so a redraw leaves no wrapped row behind (was the whole line, two rows)', () => {
  const file = pipeline('progress-narrow.yaml', 'sources: [{type: synthetic, events: 2000, rate: 2000}]\nsinks: [{type: file, path: progress-narrow.jsonl}]\nsettings: {progress_interval: 100ms}\n');
  const command = [process.execPath, cli, 'run', file, '--log-level', 'warn'].map((arg) => `'${arg}'`).join(' ');
  const result = boundedSpawnSync('script', ['-qec', `stty cols 40; ${command}`, '/dev/null'], { cwd: dir, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  assert.equal(result.status, 0, result.stdout + result.stderr);
  const redrawn = result.stdout.split('\r\x1b[2K').map((part) => part.split(/[\r\n]/)[0]!).filter((line) => line.startsWith('progress-narrow: in '));
  assert.ok(redrawn.length > 0, result.stdout);
  for (const line of redrawn) assert.ok(Array.from(line).length <= 39 && line.endsWith('…'), JSON.stringify(line));
});

test('usage errors where stderr is not a terminal are JSON records like the rest of the logs, with code TRIB_ERR_USAGE; exit 2 as documented; help names the command given', () => {
  const file = pipeline('usage.yaml', 'sources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  const cases: Array<[string[], string]> = [
    [['frobnicate'], 'tributary --help'],
    [[], 'tributary --help'],
    [['run'], 'tributary run --help'],
    [['run', file, '--no-such-flag'], 'tributary run --help'],
    [['backtest', file], 'tributary backtest --help'],
    [['validate'], 'tributary validate --help'],
    [['run', file, '--progress-interval', 'soon'], 'tributary run --help'],
  ];
  for (const [args, help] of cases) {
    const result = tributary(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    assert.ok(lines.length > 0 && lines.every((line) => line.startsWith('{')), `${args.join(' ')}: only JSON lines on stderr:\n${result.stderr}`);
    const [error] = lines.map((line) => JSON.parse(line) as { level: number; code: string; msg: string; help: string });
    assert.equal(error!.level, 50);
    assert.equal(error!.code, 'TRIB_ERR_USAGE');
    assert.ok(error!.msg.length > 0);
    assert.equal(error!.help, help, args.join(' '));
  }
  // What `tributary backtest FILE` (no --input) suggests shows backtest's own options.
  const backtestHelp = tributary('backtest', '--help');
  assert.equal(backtestHelp.status, 0, backtestHelp.stderr);
  assert.match(backtestHelp.stdout, /--input/);
  assert.match(backtestHelp.stdout, /--report/);
  // backtest's own checks of its arguments (before anything runs) too.
  const missing = tributary('backtest', file, '--input', 'nope.jsonl', '--report', join(dir, 'usage-report'));
  assert.equal(missing.status, 2, missing.stderr);
  const [error] = missing.stderr.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { code: string; msg: string });
  assert.equal(error!.code, 'TRIB_ERR_USAGE');
  assert.match(error!.msg, /--input nope\.jsonl: no such file/);
});

test("a checkpoint folder another host's process holds: refused (exit 2) saying when it is taken over; --lock-wait waits for the takeover, saying so, and runs", async (t) => {
  const folder = join(dir, 'held-checkpoints');
  mkdirSync(folder, { recursive: true });
  const lock = join(folder, 'checkpoints.lock');
  const renewed = (ago: number): void => {
    const at = new Date(Date.now() - ago);
    utimesSync(lock, at, at);
  };
  writeFileSync(lock, `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'held', since: '2026-01-01T00:00:00.000Z' })}\n`);
  const file = pipeline('held.yaml', `sources: [{type: synthetic, events: 50}]\nsinks: [{type: file, path: held.jsonl}]\ncheckpoint: {dir: ${folder}}\n`);
  const logged = (stderr: string): { level: number; msg: string; code?: string; pipeline?: string; takeoverAt?: string }[] =>
    stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string; code?: string; pipeline?: string; takeoverAt?: string });
  const waitingFor = (seconds: number): RegExp => new RegExp(`^checkpoints: checkpoint folder .* is used by pid 4242 on node-7 .*; waiting for it, up to ${seconds} s in all$`);

  // Renewed just now: refused at once, naming the holder and when its lock is taken over if not renewed.
  renewed(0);
  const refused = tributary('run', file);
  assert.equal(refused.status, 2, refused.stderr);
  // stderr is not a terminal: the refusal is one JSON record among the logs, its text in msg.
  assert.ok(refused.stderr.split('\n').every((line) => line === '' || line.startsWith('{')), refused.stderr);
  const refusals = logged(refused.stderr).filter((entry) => entry.code === 'TRIB_ERR_CHECKPOINT');
  assert.equal(refusals.length, 1, refused.stderr);
  assert.equal(refusals[0]!.level, 50);
  assert.equal(refusals[0]!.pipeline, 'held');
  assert.match(refusals[0]!.msg, /TRIB_ERR_CHECKPOINT: checkpoint folder .*held-checkpoints is used by pid 4242 on node-7 .*lock renewed \d+ s ago\): its lock file .* says so; it is taken over at \d{4}-\d\d-\d\dT[\d:.]+Z unless renewed before\./);
  assert.match(refusals[0]!.msg, /--lock-wait/);

  // --lock-wait shorter than the takeover: waits, saying so, then refused as above.
  const began = Date.now();
  const waitedOut = tributary('run', file, '--lock-wait', '1s');
  assert.equal(waitedOut.status, 2, waitedOut.stderr);
  assert.ok(Date.now() - began >= 1000, 'it waited');
  assert.ok(logged(waitedOut.stderr).some((entry) => entry.level === 40 && waitingFor(1).test(entry.msg)), waitedOut.stderr);
  assert.match(waitedOut.stderr, /TRIB_ERR_CHECKPOINT: checkpoint folder .*held-checkpoints is used by pid 4242 on node-7/);

  // Its holder stops renewing it while the run waits (its node died): tried again before the wait ends, taken over, and the run goes on.
  renewed(0);
  const run = spawnTributary(t, ['run', file, '--lock-wait', '4s'], { cwd: dir });
  let status: number | NodeJS.Signals | null | undefined;
  void run.exited.then((end) => (status = end));
  const waiting = (): boolean => logged(run.stderr.slice(0, run.stderr.lastIndexOf('\n') + 1)).some((entry) => waitingFor(4).test(entry.msg));
  // The first wait bounded by the start limit, the rest (the takeover, 50 events) by until's; both had none.
  await run.started(() => status !== undefined || waiting(), 'its wait for the lock');
  const stale = waiting();
  if (stale) renewed(11 * 60_000);
  await until(() => status !== undefined, 'its end after the takeover');
  const stderr = run.stderr;
  assert.equal(status, 0, stderr);
  assert.ok(stale, stderr);
  assert.ok(logged(stderr).some((entry) => entry.msg === "checkpoints: took over another host's lock its holder stopped renewing"), stderr);
  assert.equal(runSummaries(stderr)[0]?.eventsIn, 50);
  // The run's time starts once it holds the folder: before, elapsedMs (and so events/s) took in the wait.
  const timed = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { time: number; msg: string; elapsedMs?: number; outcome?: string });
  const tookOver = timed.find((entry) => entry.msg === "checkpoints: took over another host's lock its holder stopped renewing")!;
  const summary = timed.find((entry) => entry.outcome !== undefined && entry.elapsedMs !== undefined)!;
  assert.ok(summary.time - summary.elapsedMs! >= tookOver.time - 5, `the run's time starts at the takeover (${tookOver.time}), not before: ${summary.time - summary.elapsedMs!}`);
  assert.equal(existsSync(lock), false, 'released at the end');
});

test('a stop while --lock-wait waits for another host\'s checkpoint folder is a stop before start: exit 0, nothing read or written, the lock left to its holder, no advice to remove it', async (t) => {
  const folder = join(dir, 'held-while-stopped');
  mkdirSync(folder, { recursive: true });
  const lock = join(folder, 'checkpoints.lock');
  const holder = `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'held', since: '2026-01-01T00:00:00.000Z' })}\n`;
  writeFileSync(lock, holder);
  const file = pipeline('held-stopped.yaml', `sources: [{type: synthetic, events: 50}]\nsinks: [{type: file, path: held-stopped.jsonl}]\ncheckpoint: {dir: ${folder}}\n`);
  const run = spawnTributary(t, ['run', file, '--lock-wait', '10m'], { cwd: dir });
  await run.started(() => /waiting for it, up to 600 s in all/.test(run.stderr), 'the wait');
  const status = await run.stop();
  const stderr = run.stderr;
  assert.equal(status, 0, stderr);
  const records = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string });
  assert.deepEqual(records.filter((entry) => entry.level >= 50), [], 'no error, no advice to remove a live holder\'s lock');
  assert.ok(records.some((entry) => /^stopped while waiting for the checkpoint folder another host's process holds: nothing was read or written$/.test(entry.msg)), stderr);
  assert.equal(runSummaries(stderr)[0]?.eventsIn, 0);
  assert.equal(readFileSync(lock, 'utf8'), holder, 'the lock is still its holder\'s');
  assert.equal(existsSync(join(dir, 'held-stopped.jsonl')), false, 'no output was made');
});

test('--plugin naming a module that does not load is TRIB_ERR_PLUGIN_LOAD (as in `plugins:`) for every command: exit 2 with the reason, no stack trace (was exit 1 and a stack, then TRIB_ERR_USAGE)', () => {
  const file = pipeline('plugin-flag.yaml', 'sources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  for (const command of [['validate', file], ['run', file], ['backtest', file, '--input', file], ['schema'], ['plugins'], ['docs']]) {
    const result = tributary(...command, '--plugin', './nope.mjs', '--log-level', 'warn');
    assert.equal(result.status, 2, `${command[0]}: ${result.stderr}`);
    const [record, ...more] = result.stderr.split('\n').filter((line) => line !== '');
    assert.equal(more.length, 0, result.stderr);
    // validate prints text lines whatever stderr is (errors.md), this one too; the others a record where stderr is not a terminal.
    if (command[0] === 'validate') {
      assert.match(record!, /^--plugin \.\/nope\.mjs: cannot load plugin module '\.\/nope\.mjs': there is no file .*nope\.mjs \(relative to /);
      continue;
    }
    const { code, msg } = JSON.parse(record!) as { code: string; msg: string };
    assert.equal(code, 'TRIB_ERR_PLUGIN_LOAD');
    assert.match(msg, /^TRIB_ERR_PLUGIN_LOAD: --plugin \.\/nope\.mjs: cannot load plugin module '\.\/nope\.mjs': there is no file .*nope\.mjs \(relative to /);
  }
});

test("run: a plugin problem's record has its own code (TRIB_ERR_PLUGIN_LOAD, _UNKNOWN) and its position; other problems TRIB_ERR_CONFIG_INVALID; exit 2", () => {
  const file = pipeline('plugin-codes.yaml', 'name: plugin-codes\nplugins: [./nope.mjs]\nsources: [{type: synthetic, events: -1}]\nsinks: [{type: mine}]\n');
  const result = tributary('run', file, '--log-level', 'warn');
  assert.equal(result.status, 2, result.stderr);
  const records = result.stderr.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { code?: string; path?: string; line?: number });
  assert.deepEqual(records.map(({ code, path, line }) => [code, path, line]), [
    ['TRIB_ERR_PLUGIN_LOAD', '$.plugins[0]', 2],
    ['TRIB_ERR_CONFIG_INVALID', '$.sources[0].events', 3],
    ['TRIB_ERR_PLUGIN_UNKNOWN', '$.sinks[0].type', 4],
  ]);
});

test('--http-port that is not a port (abc, 99999, -1, 1.5) is a usage error, exit 2, said before anything runs', () => {
  const file = pipeline('http-port.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${join(dir, 'http-port-out.jsonl')}}]\n`);
  for (const port of ['abc', '99999', '-1', '1.5']) {
    const result = tributary('run', file, `--http-port=${port}`, '--log-level', 'warn');
    assert.equal(result.status, 2, `${port}: ${result.stderr}`);
    assert.ok(result.stderr.includes(`"msg":"--http-port ${port}: not a port (a whole number from 0 to 65535; 0: any free port)"`), result.stderr);
  }
  assert.equal(existsSync(join(dir, 'http-port-out.jsonl')), false, 'nothing ran');
  assert.equal(tributary('run', file, '--http-port=0', '--log-level', 'warn').status, 0);
});

test('a second daemon given the --http-port the first serves on exits 2 (TRIB_ERR_HTTP_PORT, not restarted by the unit for ever: it was exit 1), after trying the port again for 5 s, naming the port, its flag and how to see who holds it; the first serves on', async (t) => {
  const logged = (stderr: string): { level: number; msg: string; code?: string; port?: number }[] =>
    stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string; code?: string; port?: number });
  const first = spawnTributary(t, ['run', pipeline('port-first.yaml', `sources: [{type: stdin}]\nsinks: [{type: file, path: ${join(dir, 'port-first.jsonl')}}]\n`), '--http-port', '0', '--log-level', 'info'], { cwd: dir, stdin: true });
  const serving = (): number | undefined => logged(first.stderr.slice(0, first.stderr.lastIndexOf('\n') + 1)).find((entry) => entry.msg === 'serving /healthz, /readyz, /metrics')?.port;
  await first.started(() => serving() !== undefined, 'the first daemon serving');
  const port = serving()!;

  const out = join(dir, 'port-second.jsonl');
  const began = Date.now();
  const second = tributary('run', pipeline('port-second.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${out}}]\n`), '--http-port', String(port));
  assert.equal(second.status, 2, second.stderr);
  assert.ok(Date.now() - began >= 5000, 'it tried the port again for 5 s');
  const records = logged(second.stderr);
  assert.ok(records.some((entry) => entry.level === 40 && entry.msg === `port ${port} on 127.0.0.1 (--http-port) is in use; trying it again for up to 5 s (a previous instance still shutting down?)`), second.stderr);
  const refusals = records.filter((entry) => entry.code === 'TRIB_ERR_HTTP_PORT');
  assert.equal(refusals.length, 1, second.stderr);
  assert.equal(refusals[0]!.level, 50);
  assert.equal(
    refusals[0]!.msg,
    `TRIB_ERR_HTTP_PORT: cannot serve /healthz, /readyz and /metrics on 127.0.0.1:${port} (--http-host, --http-port): port ${port} is in use by another process (another daemon on this host?), still after 5 s: see which with \`ss -ltnp 'sport = :${port}'\` (or \`lsof -nP -iTCP:${port} -sTCP:LISTEN\`); stop it or give this daemon another --http-port`,
  );
  assert.equal(existsSync(out), false, 'nothing ran');

  assert.equal(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text(), 'ok\n', 'the first serves on');
  first.child.stdin!.end();
  assert.equal(await first.stop(), 0, first.stderr);
});

test('an --http-host whose name does not resolve is a usage error: one line naming it, exit 2, said before anything runs (was a stack trace, exit 1, after the pipeline had started)', async (t) => {
  const host = 'no.such.host.invalid';
  const answer = await lookup(host).then(
    () => 'an address',
    (error: NodeJS.ErrnoException) => error.code,
  );
  if (answer !== 'ENOTFOUND') return t.skip(`this host's resolver answers ${host} with ${answer}, not ENOTFOUND`);
  const out = join(dir, 'http-host-out.jsonl');
  const file = pipeline('http-host.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${out}}]\n`);
  const result = tributary('run', file, '--http-port', '0', '--http-host', host);
  assert.equal(result.status, 2, result.stderr);
  const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { level: number; code: string; msg: string; help: string; err?: unknown });
  const message = `--http-host ${host}: no such host (the name does not resolve); give a name or address of this host, e.g. 127.0.0.1, or 0.0.0.0 for every interface`;
  assert.deepEqual(records.map(({ level, code, msg, help, err }) => ({ level, code, msg, help, err })), [{ level: 50, code: 'TRIB_ERR_USAGE', msg: message, help: 'tributary run --help', err: undefined }]);
  assert.equal(existsSync(out), false, 'nothing ran');
});

test('httpHostProblem: only a name that does not exist (ENOTFOUND) is a usage error; a resolver that did not answer (EAI_AGAIN) is left to the listen, which a restart may mend', async () => {
  const failing = (code: string) => () => Promise.reject(Object.assign(new Error(`getaddrinfo ${code}`), { code }));
  assert.match((await httpHostProblem('nowhere', failing('ENOTFOUND'))) ?? '', /^--http-host nowhere: no such host/);
  assert.equal(await httpHostProblem('slow-dns', failing('EAI_AGAIN')), undefined);
  assert.equal(await httpHostProblem('127.0.0.1'), undefined);
  assert.equal(await httpHostProblem('localhost'), undefined);
});

test('scale_out config errors are config errors (exit 2): a source that is not partitioned, said by validate; no checkpoints, said by run at once, with no restart (were runtime failures: restarted, for kafka without end)', () => {
  const folder = mkdtempSync(join(dir, 'scale-out-'));
  const yaml = (source: string, more = ''): string => `name: so\nsources:\n  - ${source}\nstages: [{type: sessionizer}]\nsinks: [{type: file, path: out.jsonl}]\nscale_out: {state_dir: parts}\n${more}`;
  const file = join(folder, 'file.yaml');
  writeFileSync(file, yaml('{type: synthetic, events: 10}', 'checkpoint: {dir: cp}\n'));
  const validate = tributary('validate', file);
  assert.equal(validate.status, 2, validate.stderr);
  assert.equal(validate.stderr, `${file}:3:5: $.sources[0]: scale_out needs a partitioned source (kafka); 'synthetic' is not\n`);
  // No broker is reached: the run stops before any source is built.
  const kafka = join(folder, 'kafka.yaml');
  writeFileSync(kafka, yaml('{type: kafka, brokers: "127.0.0.1:1", topics: [clicks], group: g}'));
  assert.equal(tributary('validate', kafka).status, 0, 'the daemon may give the checkpoints (--checkpoint-dir)');
  const run = boundedSpawnSync(process.execPath, [cli, 'run', kafka, '--log-level', 'warn'], { cwd: folder, encoding: 'utf8' });
  assert.equal(run.status, 2, `${run.signal ?? ''} ${run.stderr}`);
  const problems = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; code?: string; path?: string; msg: string });
  assert.ok(
    problems.some((p) => p.level === 50 && p.code === 'TRIB_ERR_CONFIG_INVALID' && p.path === '$.scale_out' && /scale_out needs checkpoints/.test(p.msg)),
    run.stderr,
  );
  assert.ok(!/restart/i.test(run.stderr), run.stderr);
  assert.equal(existsSync(join(folder, 'out.jsonl')), false);
});

test('docs --out that cannot be written (a folder, a missing folder, a file on its way) is a usage error: one line naming --out, exit 2, no stack (was exit 1 with a stack trace)', () => {
  const file = pipeline('docs-out-blocker.yaml', 'sources: [{type: synthetic, events: 1}]\nsinks: [{type: stdout}]\n');
  const cases: [string, RegExp][] = [
    [dir, /^--out .* is a folder; name a file$/],
    [join(dir, 'no-such-folder', 'ref.md'), /^--out .*ref\.md: its folder .*no-such-folder does not exist$/],
    [join(file, 'ref.md'), /^--out .*ref\.md cannot be written: ENOTDIR: /],
  ];
  for (const [out, message] of cases) {
    const result = tributary('docs', '--out', out);
    assert.equal(result.status, 2, result.stderr);
    const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { code: string; msg: string; err?: unknown });
    assert.equal(records.length, 1, result.stderr);
    assert.equal(records[0]!.code, 'TRIB_ERR_USAGE');
    assert.match(records[0]!.msg, message);
    assert.equal(records[0]!.err, undefined, 'no stack');
  }
});

test('a usage error is one line naming the option and its value: a negative duration (was `Unknown arguments: 5, s`) and a value not among the choices (was three lines)', () => {
  const file = pipeline('usage-lines.yaml', 'sources: [{type: synthetic, events: 1}]\nsinks: [{type: stdout}]\n');
  const cases: [string[], string][] = [
    [['run', file, '--lock-wait', '-5s'], '--lock-wait -5s: not a duration (use e.g. 500ms, 10s, 1m)'],
    [['backtest', file, '--input', file, '--progress-interval', '-1s'], '--progress-interval -1s: not a duration above 0 (use e.g. 500ms, 10s, 1m)'],
    [['run', file, '--http-port', '-1'], '--http-port -1: not a port (a whole number from 0 to 65535; 0: any free port)'],
    [['backtest', file, '--input', file, '--format', 'xml'], '--format xml: not one of jsonl, csv'],
    [['run', file, '--log-level', 'loud'], '--log-level loud: not one of trace, debug, info, warn, error, fatal, silent'],
  ];
  for (const [args, message] of cases) {
    const result = tributary(...args);
    assert.equal(result.status, 2, result.stderr);
    const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { code: string; msg: string });
    assert.deepEqual(records.map(({ code, msg }) => [code, msg]), [['TRIB_ERR_USAGE', message]], args.join(' '));
  }
});

test('a checkpoint folder that cannot be made as a file is in its place or on its way (--checkpoint-dir or checkpoint.dir) stops the run for a person: TRIB_ERR_CHECKPOINT, exit 2, one line, no restarts (was exit 1 with a stack, after 10 restarts for checkpoint.dir)', () => {
  const blocker = pipeline('cp-blocker.txt', 'a file\n');
  const file = pipeline('cp-blocked.yaml', 'name: cp-blocked\nsources: [{type: synthetic, events: 5}]\nsinks: [{type: file, path: cp-blocked.jsonl}]\n');
  const checkpointed = pipeline('cp-blocked-own.yaml', `name: cp-blocked\nsources: [{type: synthetic, events: 5}]\nsinks: [{type: file, path: cp-blocked.jsonl}]\ncheckpoint: {dir: ${join(blocker, 'cp')}, interval: 1m}\n`);
  for (const args of [[file, '--checkpoint-dir', join(blocker, 'cp')], [file, '--checkpoint-dir', blocker], [checkpointed]]) {
    const result = tributary('run', ...args, '--log-level', 'warn');
    assert.equal(result.status, 2, result.stderr);
    const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { code?: string; msg: string; err?: unknown });
    assert.deepEqual(records.map(({ code, err }) => [code, err]), [['TRIB_ERR_CHECKPOINT', undefined]], result.stderr);
    assert.match(records[0]!.msg, /the checkpoint folder .*cp-blocker\.txt(\/cp)? cannot be made: it, or a folder on its way to it, is a file \((ENOTDIR|EEXIST): .*\): name another \(checkpoint\.dir, --checkpoint-dir\)$/);
  }
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

test('a --set that cannot be applied is said by the file and the --set argument, by validate and run alike, exit 2 (was FILE:0:0: $:, no place)', () => {
  const file = pipeline('set-unapplied.yaml', 'sources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  for (const [assignment, said] of [
    ['stages[9].gap=1m', "--set 'stages[9].gap=1m': $.stages has 0 entries; index 9 is past its end (0 adds one)"],
    ['junk', "--set 'junk': expected path=value"],
  ] as const) {
    const validate = tributary('validate', file, '--set', assignment);
    assert.equal(validate.status, 2, validate.stderr);
    assert.equal(validate.stderr, `${file}: ${said}\n`);
    const run = tributary('run', file, '--set', assignment, '--log-level', 'warn');
    assert.equal(run.status, 2, run.stderr);
    assert.ok(run.stderr.includes(`${file}: ${said}`), run.stderr);
    assert.match(run.stderr, /TRIB_ERR_CONFIG_SET/);
    assert.doesNotMatch(`${validate.stderr}${run.stderr}`, /:0:0/);
  }
});

test('validate: a --plugin that does not load is a line of text, as the rest of its output, whatever stderr is (was a JSON record where stderr is not a terminal); exit 2', () => {
  const file = pipeline('plugin-missing.yaml', 'sources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  const result = tributary('validate', file, '--plugin', './no-such-plugin.js');
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /^--plugin \.\/no-such-plugin\.js: cannot load plugin module '\.\/no-such-plugin\.js': there is no file .*no-such-plugin\.js/);
  assert.doesNotMatch(result.stderr, /"level"/);
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
});

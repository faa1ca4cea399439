import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { dir, tributary, pipeline } from './cli-test-helpers.js';

test('--plugin and --set take one value each, so they may come before the files (were greedy: the files were read as more values)', () => {
  const file = pipeline('options-first.yaml', 'sources: [{type: synthetic, events: 10}]\nstages: [{type: bot-filter}]\nsinks: [{type: stdout}]\n');
  const botFilter = join(packageRoot, 'dist', 'examples', 'plugins', 'bot-filter', 'index.js');
  const result = tributary('validate', '--plugin', botFilter, '--set', 'sources[0].events=20', '--set', 'stages[0].max_events=5', file, '--print');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /events: 20\n/);
  assert.match(result.stdout, /max_events: 5\n/);
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

test("the node flags the tributary command runs with are read from its bin's #! line, where they are set, for whatever starts its code with node itself (the soak bench); npm start's copy of them says the same", async () => {
  const { commandNodeFlags } = await import('./build.js');
  const { readFileSync } = await import('node:fs');
  assert.deepEqual(commandNodeFlags(), ['--max-semi-space-size=32', '--expose-gc']);
  const start = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  assert.equal(start.split(' dist/core/cli/tributary.cjs ')[0], ['node', ...commandNodeFlags()].join(' '), 'npm start runs the daemon as the command does');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { runSummaries } from '../testing.js';
import { boundedSpawnSync } from 'tributary/testing';
import { cli, dir, tributary, pipeline } from './cli-test-helpers.js';

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

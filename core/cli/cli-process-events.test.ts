// An error nothing caught in a run (a plugin's timer that throws, a promise rejected with no handler):
// one fatal JSON record through the redacting logger, the pipelines' orderly stop, exit 70 (process-events.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSummaries } from '../testing.js';
import { boundedSpawnSync } from 'tributary/testing';
import { cli, dir, pipeline } from './cli-test-helpers.js';
import { uncaughtExitCode } from './process-events.js';

/**
 * A sink whose first write sets a timer that throws (`how: throw`) or rejects a promise nobody awaits
 * (`how: reject`), quoting its api_token; or emits a process warning (`how: warn`), as a dependency's deprecation does.
 */
writeFileSync(
  join(dir, 'crash-sink.mjs'),
  `import { defineSink } from ${JSON.stringify(new URL('../index.js', import.meta.url).href)};
export default defineSink({
  name: 'crash-sink',
  summary: 'Fails outside any callback the runtime awaits (tests only).',
  config: { type: 'object', additionalProperties: false, required: ['how'], properties: { how: { enum: ['throw', 'reject', 'warn'] }, api_token: { type: 'string' } } },
  create: (config) => {
    let armed = false;
    return {
      write: () => {
        if (armed) return;
        armed = true;
        if (config.how === 'warn') return process.emitWarning('the old way is deprecated', 'DeprecationWarning', 'DEP_TEST');
        setTimeout(() => {
          if (config.how === 'reject') void Promise.reject(new Error('login refused for token ' + config.api_token + ' at https://svc:' + config.api_token + '@auth.example/token'));
          else throw new Error('timer broke');
        }, 0);
      },
      // Slow enough that a replay's end does not come before the timer.
      flush: () => new Promise((resolve) => setTimeout(resolve, 100)),
      close: async () => undefined,
    };
  },
});
`,
);

const token = 'tok-5ecr3t-9f2e';

interface LogRecord {
  level: number;
  msg: string;
  code?: string;
  origin?: string;
  err?: { code?: string; message: string; stack: string };
  outcome?: string;
}

function tributaryWithToken(...args: string[]): { status: number | null; stderr: string } {
  const result = boundedSpawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0', CRASH_TOKEN: token } });
  return { status: result.status, stderr: result.stderr };
}

/** Every line of stderr as a JSON record: a line that is not one (node's plain-text stack) fails the parse. */
function records(stderr: string): LogRecord[] {
  return stderr
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as LogRecord;
      } catch {
        throw new Error(`a line of stderr is no JSON record: ${line}\n(stderr: ${stderr})`);
      }
    });
}

function crashingRun(name: string, how: 'throw' | 'reject'): { status: number | null; stderr: string; out: string; checkpoints: string } {
  const out = join(dir, `${name}.jsonl`);
  const checkpoints = join(dir, `${name}-checkpoints`);
  const file = pipeline(
    `${name}.yaml`,
    `name: ${name}\nplugins: [./crash-sink.mjs]\nsources: [{type: synthetic, events: 0, rate: 500, users: 20}]\nsinks:\n  - {type: file, path: ${out}}\n  - {type: crash-sink, how: ${how}, api_token: "\${CRASH_TOKEN}"}\ncheckpoint: {dir: ${checkpoints}, interval: 1h}\n`,
  );
  return { ...tributaryWithToken('run', file, '--log-level', 'warn'), out, checkpoints };
}

test(`run: a plugin's timer that throws is one fatal JSON record (code, origin, message, stack), then the pipelines stop in order (final checkpoint, summary) and the process exits ${uncaughtExitCode} (was node's plain-text stack, exit 1, no checkpoint, no summary)`, () => {
  const run = crashingRun('uncaught-throw', 'throw');
  assert.equal(run.status, uncaughtExitCode, run.stderr);
  const said = records(run.stderr);
  const fatal = said.filter((record) => record.level === 60);
  assert.equal(fatal.length, 1, run.stderr);
  assert.equal(fatal[0]!.code, 'TRIB_ERR_UNCAUGHT');
  assert.equal(fatal[0]!.origin, 'uncaughtException');
  assert.equal(fatal[0]!.err!.message, 'timer broke');
  assert.match(fatal[0]!.err!.stack, /^Error: timer broke\n {4}at .*crash-sink\.mjs/);
  assert.equal(fatal[0]!.msg, `uncaught exception (a bug, most likely in a plugin): timer broke; stopping the pipelines in order (final checkpoint, summary), then exiting ${uncaughtExitCode}`);
  const [summary] = runSummaries(run.stderr);
  assert.equal(summary?.outcome, 'stopped', run.stderr);
  assert.ok(said.indexOf(fatal[0]!) < said.findIndex((record) => record.outcome === 'stopped'), 'said before the stop');
  // The final checkpoint (the interval is an hour: the stop's is the only one), and every event read written.
  assert.equal(summary!.checkpoint?.sequence, 1, run.stderr);
  assert.deepEqual(readdirSync(run.checkpoints).filter((entry) => entry.startsWith('checkpoint-')), ['checkpoint-0000000001.json']);
  assert.equal(readFileSync(run.out, 'utf8').trim().split('\n').length, summary!.eventsIn);
});

test(`run: an unhandled rejection whose message quotes a secret of the pipeline (and a URL with it as user info) is logged with neither, then the same orderly stop, exit ${uncaughtExitCode}`, () => {
  const run = crashingRun('uncaught-reject', 'reject');
  assert.equal(run.status, uncaughtExitCode, run.stderr);
  assert.ok(!run.stderr.includes(token), `the secret is nowhere in stderr: ${run.stderr}`);
  assert.ok(!run.stderr.includes('svc:'), `nor the URL's user info: ${run.stderr}`);
  const fatal = records(run.stderr).filter((record) => record.level === 60);
  assert.equal(fatal.length, 1, run.stderr);
  assert.equal(fatal[0]!.origin, 'unhandledRejection');
  assert.equal(fatal[0]!.err!.message, 'login refused for token [redacted] at https://[redacted]@auth.example/token');
  assert.match(fatal[0]!.err!.stack, /^Error: login refused for token \[redacted\] at https:\/\/\[redacted\]@auth\.example\/token\n/);
  assert.match(fatal[0]!.msg, /^unhandled promise rejection \(a bug, most likely in a plugin\): login refused for token \[redacted\] at https:\/\/\[redacted\]@auth\.example\/token; stopping/);
  const [summary] = runSummaries(run.stderr);
  assert.equal(summary?.outcome, 'stopped', run.stderr);
  assert.equal(summary!.checkpoint?.sequence, 1, run.stderr);
});

test(`backtest: an uncaught error during the replay is one fatal record, the replay stops, no report is written (it would score part of the input), exit ${uncaughtExitCode}`, () => {
  const input = join(dir, 'uncaught-backtest-input.jsonl');
  writeFileSync(input, Array.from({ length: 300 }, (_, i) => `${JSON.stringify({ kind: 'event', userId: `u${i % 7}`, time: 1704067200000 + i * 1000, type: 'view' })}\n`).join(''));
  const file = pipeline(
    'uncaught-backtest.yaml',
    `name: uncaught-backtest\nplugins: [./crash-sink.mjs]\nsources: [{type: synthetic, events: 10}]\nsinks:\n  - {type: file, path: ${join(dir, 'uncaught-backtest-out.jsonl')}}\n  - {type: crash-sink, how: reject, api_token: "\${CRASH_TOKEN}"}\n`,
  );
  const report = join(dir, 'uncaught-backtest-report');
  const backtest = tributaryWithToken('backtest', file, '--input', input, '--report', report, '--log-level', 'warn');
  assert.equal(backtest.status, uncaughtExitCode, backtest.stderr);
  assert.ok(!backtest.stderr.includes(token), backtest.stderr);
  const said = records(backtest.stderr);
  const fatal = said.filter((record) => record.level === 60);
  assert.equal(fatal.length, 1, backtest.stderr);
  assert.match(fatal[0]!.msg, new RegExp(`^unhandled promise rejection \\(a bug, most likely in a plugin\\): login refused for token \\[redacted\\] .*; stopping the backtest \\(its outputs flushed\\); no report is written; exiting ${uncaughtExitCode}$`));
  assert.ok(said.some((record) => record.level === 50 && record.code === 'TRIB_ERR_UNCAUGHT' && record.msg === `the backtest was stopped by an uncaught error (logged above, level 60): no report was written to ${report} (exit ${uncaughtExitCode})`), backtest.stderr);
  assert.equal(existsSync(join(report, 'metrics.json')), false, 'no report');
});

test("a process warning during a run (a dependency's deprecation) is a JSON record at level 40 through the run's logger, not node's plain-text '(node:PID) DeprecationWarning' line", () => {
  const out = join(dir, 'node-warning.jsonl');
  const file = pipeline('node-warning.yaml', `name: node-warning\nplugins: [./crash-sink.mjs]\nsources: [{type: synthetic, events: 20}]\nsinks:\n  - {type: file, path: ${out}}\n  - {type: crash-sink, how: warn}\n`);
  const run = tributaryWithToken('run', file, '--log-level', 'warn');
  assert.equal(run.status, 0, run.stderr);
  const warnings = records(run.stderr).filter((record) => record.level === 40);
  assert.equal(warnings.length, 1, run.stderr);
  assert.equal(warnings[0]!.msg, 'node warning: DeprecationWarning: the old way is deprecated');
  assert.equal(warnings[0]!.err?.code, 'DEP_TEST');
});

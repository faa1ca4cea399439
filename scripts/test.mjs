#!/usr/bin/env node
// Runs every test: the compiled *.test.js files under dist/ (core, plugins, examples, integration-tests),
// with node's built-in runner so its summary is printed. `npm test` compiles first.
//   node scripts/test.mjs [PART...]   only the files whose path under dist/ contains one of the PARTs
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');

function find(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...find(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

// Parts are matched against the path under dist/, not the absolute one: a checkout in /builds/core-ci
// must not make `core` select every file.
const only = process.argv.slice(2);
const all = find(dist).sort();
const files = all.filter((file) => only.length === 0 || only.some((part) => relative(dist, file).includes(part)));
// A mistyped part would otherwise quietly run fewer tests than asked for.
const unmatched = only.filter((part) => !all.some((file) => relative(dist, file).includes(part)));
if (unmatched.length > 0) {
  console.error(`no test file under dist/ matches ${unmatched.map((part) => `'${part}'`).join(', ')} (did tsc run?)`);
  process.exit(1);
}
if (files.length === 0) {
  console.error('no test files found under dist/ (did tsc run?)');
  process.exit(1);
}
console.error(`running ${files.length} test files: ${files.map((f) => relative(dist, f)).join(' ')}`);
// Kafka integration tests share one real broker for the run (integration-tests/kafka/broker.ts).
const kafka = files.some((file) => /integration-tests\/.*kafka/.test(relative(dist, file)))
  ? await (await import('../dist/integration-tests/kafka/broker.js')).provideForRun()
  : { env: {}, stop: async () => undefined };
// --test-timeout caps a test that sets no timeout of its own (the longest passing test takes under a minute), so a
// hang becomes a named failure. The spec reporter, also where stdout is no terminal (a CI log, where node's default
// is TAP): it repeats each failure after the summary, where a reader of the log looks.
// --import test-exit-guard.mjs: a test file whose process exits 0 before its tests end fails, rather than passing
// with its later tests uncounted, and one its tests leave running is ended (not --test-force-exit: the guard says why).
const exitGuard = new URL('./test-exit-guard.mjs', import.meta.url).href;
// Without the guard's mark (a run started from a guarded test file, as scripts' own tests do): its files are guarded too.
const { TRIBUTARY_TEST_EXIT_GUARD: _guarded, ...env } = process.env;
const runner = spawn(process.execPath, ['--import', exitGuard, '--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=300000', ...files], { stdio: 'inherit', cwd: root, env: { ...env, ...kafka.env } });
// Interrupted (Ctrl-C, or a SIGTERM to this process alone, as a CI timeout sends): the runner ends its test files
// on SIGTERM/SIGINT, and the broker is stopped after them; dying at once would orphan the runner and its files.
let interruptedBy;
const interrupt = (signal) => {
  if (interruptedBy === undefined) console.error(`test.mjs: ${signal}, stopping the test run`);
  interruptedBy ??= signal;
  runner.kill(signal);
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, interrupt);
const status = await new Promise((resolve) => {
  runner.once('error', (error) => {
    console.error(`test.mjs: could not start the test runner: ${error.message}`);
    resolve(1);
  });
  runner.once('exit', (code) => resolve(code ?? 1));
});
await kafka.stop();
process.exit(interruptedBy ? 128 + constants.signals[interruptedBy] : status);

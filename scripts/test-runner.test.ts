/**
 * scripts/test.mjs, the runner `npm test` and `.ci/run` use, run on a copy of itself in a folder of
 * stand-in test files (and a stand-in Kafka broker module), so that what it selects, what it exits
 * with and what it leaves behind are seen without the real suite.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tempFolder, until } from 'tributary/testing';

const repo = new URL('../..', import.meta.url).pathname;

/** A project root holding scripts/test.mjs and `files` (path under dist/: source), in a folder whose name contains `core`. */
function project(t: TestContext, files: Record<string, string>): string {
  const root = tempFolder(t, 'core-runner');
  mkdirSync(join(root, 'scripts'));
  for (const script of ['test.mjs', 'test-exit-guard.mjs']) cpSync(join(repo, 'scripts', script), join(root, 'scripts', script));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ type: 'module' }));
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(root, 'dist', path)), { recursive: true });
    writeFileSync(join(root, 'dist', path), source);
  }
  return root;
}

// Without node --test's own marker (this file runs under it): a runner started with it runs no files.
const { NODE_TEST_CONTEXT: _, ...env } = process.env;

const passing = "import { test } from 'node:test';\ntest('passes', () => {});\n";

function runTests(root: string, parts: string[], extraEnv: Record<string, string> = {}): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [join(root, 'scripts', 'test.mjs'), ...parts], { cwd: root, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, output: result.stdout + result.stderr };
}

/** Whether a process runs (a zombie, exited but not yet reaped, does not). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

test('parts select by the path under dist/: a checkout whose folder is named like a part does not select every file', (t) => {
  const root = project(t, { 'core/a.test.js': passing, 'plugins/b.test.js': passing });
  const { status, output } = runTests(root, ['core']);
  assert.equal(status, 0, output);
  assert.match(output, /running 1 test files: core\/a\.test\.js\n/);
});

test('a test file whose process exits 0 before its tests end (process.exit in a test) fails the run, naming it; a file its tests leave running is ended after them, naming what holds it; processes the tests start are left alone', (t) => {
  const exitsEarly = "import { test } from 'node:test';\ntest('first', () => {});\ntest('exits', () => process.exit(0));\ntest('never runs', () => {});\n";
  // A test that times out holding a handle (the guard ends that file after its tests), and one whose child node exits 0.
  const forced = "import { test } from 'node:test';\ntest('held', { timeout: 100 }, () => new Promise(() => setInterval(() => {}, 1000)));\ntest('after it', () => {});\n";
  const spawns = "import { test } from 'node:test';\nimport { spawnSync } from 'node:child_process';\nimport assert from 'node:assert/strict';\ntest('child exits 0', () => assert.equal(spawnSync(process.execPath, ['-e', 'process.exit(0)']).status, 0));\n";
  const root = project(t, { 'core/exits.test.js': exitsEarly, 'core/forced.test.js': forced, 'core/spawns.test.js': spawns, 'core/passes.test.js': passing });
  const { status, output } = runTests(root, ['core'], { TRIBUTARY_TEST_LINGER_MS: '500' });
  assert.equal(status, 1, output);
  assert.match(output, /core\/exits\.test\.js: its process exited \(code 0\) before its tests ended/);
  assert.match(output, /✖ .*core\/exits\.test\.js/);
  assert.doesNotMatch(output, /(forced|spawns|passes)\.test\.js: its process exited/);
  assert.match(output, /core\/forced\.test\.js: still running 0\.5 s after its tests ended \(open: [^)]*Timeout[^)]*\); ended/);
  assert.doesNotMatch(output, /(exits|spawns|passes)\.test\.js: still running/, 'a file that ends by itself is not held for the linger');
  assert.match(output, /✔ after it/);
  assert.match(output, /✔ child exits 0/);
  assert.match(output, /ℹ fail 1\nℹ cancelled 1\n/, 'the early exit failed, the timed-out test cancelled');
});

test('a child process a test forks (fork passes the test file\'s --import on) and that exits 0 is left alone: the guard is for the test file\'s own process', (t) => {
  // The file forks itself: as the child (argument `child`) it exits 0 at once, as a worker script may.
  const forks = [
    "import { test } from 'node:test';",
    "import { fork } from 'node:child_process';",
    "import { once } from 'node:events';",
    "import assert from 'node:assert/strict';",
    "if (process.argv[2] === 'child') process.exit(0);",
    "test('forked child exits 0', async () => {",
    "  const child = fork(new URL(import.meta.url).pathname, ['child'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });",
    "  let stderr = '';",
    "  child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));",
    "  const [code] = await once(child, 'exit');",
    "  assert.equal(stderr, '');",
    "  assert.equal(code, 0);",
    "});",
  ].join('\n');
  const root = project(t, { 'core/forks.test.js': forks });
  const { status, output } = runTests(root, ['core']);
  assert.equal(status, 0, output);
  assert.match(output, /✔ forked child exits 0/);
});

test('a part that matches no test file fails the run, naming it, rather than running fewer tests than asked', (t) => {
  const root = project(t, { 'core/a.test.js': passing, 'plugins/b.test.js': passing });
  const { status, output } = runTests(root, ['core', 'pluginz']);
  assert.equal(status, 1, output);
  assert.match(output, /no test file under dist\/ matches 'pluginz'/);
});

test('a test file that crashes while loading fails the run, and the summary counts it', (t) => {
  const root = project(t, { 'core/a.test.js': passing, 'core/crash.test.js': "throw new Error('broken at load');\n" });
  const { status, output } = runTests(root, []);
  assert.equal(status, 1, output);
  assert.match(output, /broken at load/);
  assert.match(output, /pass 1\n[^]*fail 1\n/);
});

test('in a log (no terminal), the failures are repeated after the summary, each with its file and error', (t) => {
  const failing = "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\ntest('adds up', () => assert.equal(1 + 1, 3));\n";
  const root = project(t, { 'core/a.test.js': passing, 'core/sum.test.js': failing, 'core/z.test.js': passing });
  const { status, output } = runTests(root, []);
  assert.equal(status, 1, output);
  const summary = output.slice(output.lastIndexOf('pass 2'));
  assert.match(summary, /failing tests:[^]*core\/sum\.test\.js[^]*adds up[^]*2 !== 3/);
});

test('SIGTERM to the runner (a CI timeout) ends its test files and stops the run\'s Kafka broker before it exits 143', async (t) => {
  const pidFile = join(tempFolder(t, 'runner-pid'), 'pid');
  const root = project(t, {
    // Any file under integration-tests/ naming kafka makes test.mjs provide a broker for the run.
    'integration-tests/kafka-slow.test.js': [
      "import { test } from 'node:test';",
      "import { writeFileSync } from 'node:fs';",
      `test('waits', async () => { writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); await new Promise((done) => setTimeout(done, 120_000)); });`,
      '',
    ].join('\n'),
    'integration-tests/kafka/broker.js': [
      "import { writeFileSync } from 'node:fs';",
      `export async function provideForRun() { return { env: {}, stop: async () => writeFileSync(${JSON.stringify(pidFile + '.stopped')}, '') }; }`,
      '',
    ].join('\n'),
  });
  const runner = spawn(process.execPath, [join(root, 'scripts', 'test.mjs')], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  runner.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => runner.once('exit', (code) => done(code)));
  let filePid = 0;
  t.after(() => {
    runner.kill('SIGKILL');
    if (filePid && running(filePid)) process.kill(filePid, 'SIGKILL');
  });
  await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8') !== '', 'the test file to start', 60_000);
  filePid = Number(readFileSync(pidFile, 'utf8'));
  runner.kill('SIGTERM');
  assert.equal(await exited, 143, output);
  assert.ok(existsSync(pidFile + '.stopped'), 'the broker was stopped');
  await until(() => !running(filePid), 'the test file to end', 20_000);
});

/**
 * scripts/test.mjs, the runner `npm test` and `.ci/run` use, run on a copy of itself in a folder of
 * stand-in test files, so that what it selects, what it exits
 * with and what it leaves behind are seen without the real suite.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const repo = new URL('../..', import.meta.url).pathname;

/** A project root holding scripts/test.mjs and `files` (path under dist/: source), in a folder whose name contains `core`. */
function project(t: TestContext, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tributary-core-runner-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'scripts'));
  cpSync(join(repo, 'scripts', 'test.mjs'), join(root, 'scripts', 'test.mjs'));
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

function runTests(root: string, parts: string[]): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [join(root, 'scripts', 'test.mjs'), ...parts], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, output: result.stdout + result.stderr };
}

test('parts select by the path under dist/: a checkout whose folder is named like a part does not select every file', (t) => {
  const root = project(t, { 'core/a.test.js': passing, 'plugins/b.test.js': passing });
  const { status, output } = runTests(root, ['core']);
  assert.equal(status, 0, output);
  assert.match(output, /running 1 test files: core\/a\.test\.js\n/);
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

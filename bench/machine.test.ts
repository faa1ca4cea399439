import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { positionalArgs, recording } from './machine.js';

const recorded = '# Benchmarks\n\n<!-- bench:probe:start -->\n## Probe\n\nthe quiet-host figures\n<!-- bench:probe:end -->\n\n<!-- bench:other:start -->\nkept\n<!-- bench:other:end -->\n';

/** A bench laid out as in a checkout (ROOT/dist/bench/NAME.js beside machine.js, ROOT/BENCHMARKS.md), run with `args`. */
function runProbeBench(args: string[]): { stdout: string; stderr: string; benchmarks: string } {
  const root = mkdtempSync(join(tmpdir(), 'tributary-bench-machine-'));
  try {
    const bench = join(root, 'dist', 'bench');
    mkdirSync(bench, { recursive: true });
    copyFileSync(fileURLToPath(new URL('./machine.js', import.meta.url)), join(bench, 'machine.js'));
    writeFileSync(join(bench, 'probe.js'), "import { positionalArgs, publishSection } from './machine.js';\npublishSection('probe', `## Probe\\n\\nevents ${positionalArgs()[0]}`);\n");
    writeFileSync(join(root, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(join(root, 'BENCHMARKS.md'), recorded);
    const run = spawnSync(process.execPath, [join(bench, 'probe.js'), ...args], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return { stdout: run.stdout, stderr: run.stderr, benchmarks: readFileSync(join(root, 'BENCHMARKS.md'), 'utf8') };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('a bench run without --write prints its section and leaves the recorded one in BENCHMARKS.md as it is', () => {
  const run = runProbeBench(['5000']);
  assert.equal(run.benchmarks, recorded);
  assert.equal(run.stdout, '## Probe\n\nevents 5000\n');
  assert.match(run.stderr, /--write/);
});

test('a bench run with --write (anywhere among its arguments) replaces its own section only', () => {
  for (const args of [['5000', '--write'], ['--write', '5000']]) {
    const run = runProbeBench(args);
    assert.equal(run.benchmarks, recorded.replace('the quiet-host figures', 'events 5000'), args.join(' '));
    assert.equal(run.stdout, '## Probe\n\nevents 5000\n');
  }
});

test('positionalArgs leaves out flags, so a flag before a positional argument shifts none; recording reads --write', () => {
  const argv = ['node', 'dist/bench/x.js', '--write', '1000', '--rounds=5', '7'];
  assert.deepEqual(positionalArgs(argv), ['1000', '7']);
  assert.equal(recording(argv), true);
  assert.equal(recording(['node', 'dist/bench/x.js', '1000', '--rounds=5']), false);
  // The script's own path is not an argument, whatever it is called.
  assert.equal(recording(['node', '--write']), false);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { exitCodesHelp } from './commands.js';
import { spawnTributary } from 'tributary/testing';
import { dir, tributary, pipeline } from './cli-test-helpers.js';

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

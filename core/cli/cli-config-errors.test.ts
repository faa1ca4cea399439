import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { boundedSpawnSync } from 'tributary/testing';
import { cli, dir, tributary, pipeline } from './cli-test-helpers.js';

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

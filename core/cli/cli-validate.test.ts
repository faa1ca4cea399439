import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { boundedSpawnSync } from 'tributary/testing';
import { cli, dir, tributary, pipeline } from './cli-test-helpers.js';

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

test('the shipped pipelines, examples and bench pipelines validate', () => {
  const files = ['pipelines', join('examples', 'pipelines'), join('bench', 'pipelines'), join('bench', 'device')].flatMap((folder) =>
    readdirSync(join(packageRoot, folder))
      .filter((name) => name.endsWith('.yaml'))
      .map((name) => join(packageRoot, folder, name)),
  );
  assert.ok(files.length >= 2);
  // Their inputs are data sets fetched or made apart (shared/data, out/diginetica-events.jsonl), not in a fresh clone.
  // pipelines/kafka-intent.yaml's SASL secrets have no default, on purpose: unset, they are a config error naming the variable.
  const env = { ...process.env, KAFKA_USER: 'intent', KAFKA_PASSWORD: 'secret' };
  const result = boundedSpawnSync(process.execPath, [cli, 'validate', '--no-check-inputs', ...files], { encoding: 'utf8', env });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '', 'no warnings either');
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

test('validate: a --plugin that does not load is a line of text, as the rest of its output, whatever stderr is (was a JSON record where stderr is not a terminal); exit 2', () => {
  const file = pipeline('plugin-missing.yaml', 'sources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout}]\n');
  const result = tributary('validate', file, '--plugin', './no-such-plugin.js');
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /^--plugin \.\/no-such-plugin\.js: cannot load plugin module '\.\/no-such-plugin\.js': there is no file .*no-such-plugin\.js/);
  assert.doesNotMatch(result.stderr, /"level"/);
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
});

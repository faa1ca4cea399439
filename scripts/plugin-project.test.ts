/**
 * A plugin project as docs/plugin-authoring.md (A plugin project) sets one up: Tributary installed in
 * its node_modules, the docs' tsconfig.json, plugins in TypeScript against the published types.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { tempFolder } from 'tributary/testing';
import type { TestContext } from 'node:test';

const repo = new URL('../..', import.meta.url).pathname;
const require = createRequire(import.meta.url);
const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };

/** The tsconfig.json the docs give a plugin project (the first JSON block after "`tsconfig.json`:"). */
function documentedTsconfig(): string {
  const docs = readFileSync(join(repo, 'docs', 'plugin-authoring.md'), 'utf8');
  const block = /^`tsconfig\.json`:[\s\S]*?```json\n([\s\S]*?)```/m.exec(docs);
  assert.ok(block, 'docs/plugin-authoring.md gives a tsconfig.json');
  return block[1]!;
}

// A source, an operator, a sink and a model, each as the docs write one, importing what the docs import.
const plugins = `
import { defineOperator, defineSink, defineSource, isClickEvent, isPrediction, recordOperator, type ClickEvent } from 'tributary';
import { defineModel, type CustomModel } from 'tributary/models';

export const source = defineSource<{ events: number }>({
  name: 'counted', summary: 'Counted events.', emits: ['event'],
  config: { type: 'object', additionalProperties: false, properties: { events: { type: 'integer', default: 3, description: 'How many.' } } },
  create(config) {
    let offset = 0;
    return {
      async *read() {
        const batch: ClickEvent[] = [];
        for (; offset < config.events; offset++) batch.push({ kind: 'event', userId: 'u' + offset, time: offset, type: 'view' });
        yield batch;
      },
      position: () => ({ offset }),
      seek(position) { offset = Number(position.offset ?? 0); },
    };
  },
});

export const minPrice = defineOperator<{ min_price: number }>({
  name: 'min-price', summary: 'Drops cheap items.', state: 'none', emits: [],
  config: { type: 'object', additionalProperties: false, properties: { min_price: { type: 'number', default: 0, description: 'Lowest price kept.' } } },
  create: (config, context) => ({
    apply: recordOperator(context, () => ({
      record(record, emit) {
        if (isClickEvent(record) && (record.price ?? Infinity) < config.min_price) return context.countFiltered(1, 'cheap');
        emit(record);
      },
    })),
  }),
});

export const scores = defineSink<Record<string, never>>({
  name: 'scores', summary: 'Keeps scores.', kinds: ['prediction'], config: { type: 'object', additionalProperties: false, properties: {} },
  create: () => {
    const kept: number[] = [];
    return { write(record) { if (isPrediction(record)) kept.push(record.score); }, close: async () => {} };
  },
});

export const cartRule = defineModel<{ carts_weight: number; features: string[] }>({
  name: 'cart-rule', task: 'intent', summary: 'P(purchase) from carts so far.',
  config: { type: 'object', additionalProperties: false, properties: {
    carts_weight: { type: 'number', default: 1, description: 'Log-odds per cart.' },
    features: { type: 'array', items: { type: 'string' }, default: ['s_carts'], description: 'What it reads.' } } },
  featureSelectorField: 'features',
  checkPipeline: (config) => (config.carts_weight < 0 ? [{ field: 'carts_weight', message: 'must be at least 0' }] : []),
  create(config, features): CustomModel {
    const carts = features.indexOf('s_carts');
    let weight = config.carts_weight;
    // load's parameter typed as what state() returns, without a cast.
    return { predict: (row) => 1 / (1 + Math.exp(3 - weight * row[carts]!)), state: () => ({ weight }), load(state: { weight: number }) { weight = state.weight; } };
  },
});

export default [source, minPrice, scores, cartRule];
`;

const pluginTest = `
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { watermark } from 'tributary';
import { runOperator, runYaml, specProblems, testContext } from 'tributary/testing';
import { cartRule, minPrice } from '../src/plugins.js';

test('min-price', async () => {
  const context = testContext();
  const { output } = await runOperator(minPrice, { min_price: 1 }, [{ kind: 'event', userId: 'u', time: 0, type: 'view', price: 0 }, watermark(Infinity)], context);
  assert.equal(output.length, 1);
  assert.deepEqual(specProblems(cartRule), []);
  const run = await runYaml('sources: [{type: synthetic, events: 10}]\\nsinks: [{type: memory}]\\n', { plugins: [minPrice] });
  assert.equal(run.stats.eventsIn, 10);
});
`;

test("a plugin project's source, operator, sink and model, and its tests, compile with the docs' tsconfig against the published types (strict, no skipLibCheck)", (t) => {
  const project = tempFolder(t, 'plugin-project');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-plugins', version: '1.0.0', type: 'module' }));
  writeFileSync(join(project, 'tsconfig.json'), documentedTsconfig());
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(repo, join(project, 'node_modules', 'tributary')); // npm install /path/to/tributary: a link
  symlinkSync(join(repo, 'node_modules', '@types'), join(project, 'node_modules', '@types')); // npm install -D @types/node
  mkdirSync(join(project, 'src'));
  mkdirSync(join(project, 'test'));
  writeFileSync(join(project, 'src', 'plugins.ts'), plugins);
  writeFileSync(join(project, 'test', 'plugins.test.ts'), pluginTest);
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', project, '--noEmit'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
});

test('each example plugin, copied as a package of its own, builds with its tsconfig.json into the files its package.json names (exports, main), and a pipeline naming the package loads it', (t) => {
  const examples = join(repo, 'examples', 'plugins');
  for (const example of readdirSync(examples)) {
    const copy = join(tempFolder(t, `example-${example}`), example);
    mkdirSync(join(copy, 'node_modules'), { recursive: true });
    for (const file of readdirSync(join(examples, example))) if (file !== 'node_modules' && file !== 'dist') copyFileSync(join(examples, example, file), join(copy, file));
    symlinkSync(repo, join(copy, 'node_modules', 'tributary')); // its peer
    symlinkSync(join(repo, 'node_modules', '@types'), join(copy, 'node_modules', '@types'));
    const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', copy], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(tsc.status, 0, `${example}: ${tsc.stdout}${tsc.stderr}`);
    const manifest = JSON.parse(readFileSync(join(copy, 'package.json'), 'utf8')) as { name: string; type?: string; main?: string; exports?: { '.': { types: string; default: string } } };
    assert.equal(manifest.type, 'module', example);
    // Was: main index.js, which no build wrote (the package had no tsconfig.json; tsc without one writes nothing).
    for (const named of [manifest.main, manifest.exports?.['.'].default, manifest.exports?.['.'].types]) assert.ok(named !== undefined && existsSync(join(copy, named)), `${example}: ${named} is built`);
    // A pipeline's project with the package installed: `plugins: [NAME]`.
    const project = tempFolder(t, `uses-${example}`);
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(copy, join(project, 'node_modules', manifest.name));
    writeFileSync(join(project, 'p.yaml'), `name: p\nplugins: [${manifest.name}]\nsources: [{type: synthetic, events: 1}]\nsinks: [{type: stdout, kinds: []}]\n`);
    const validated = spawnSync(process.execPath, [join(repo, 'dist', 'core', 'cli', 'main.js'), 'validate', 'p.yaml'], { cwd: project, encoding: 'utf8', timeout: 60_000 });
    assert.equal(validated.status, 0, `${example}: ${validated.stderr}`);
  }
});

/**
 * A project that installed Tributary from its tarball (`npm install tributary-0.1.0.tgz`): npm puts
 * Tributary's dependencies beside it in the project's node_modules, under the project's own
 * package.json. Made of links to this checkout (its dist/ and schemas/, and each dependency) and run
 * with --preserve-symlinks, so that every module finds itself, and its package.json above it, where
 * npm would have put it. `standIns` replaces dependencies by name with an index.js of the test's.
 */
function installedProject(t: TestContext, projectVersion: string, standIns: Record<string, string> = {}): { project: string; tributary: (...args: string[]) => SpawnSyncReturns<string> } {
  const project = tempFolder(t, 'installed');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'shop-pipelines', version: projectVersion, type: 'module', dependencies: { tributary: 'file:tributary-0.1.0.tgz' } }));
  const modules = join(project, 'node_modules');
  const installed = join(modules, 'tributary');
  mkdirSync(installed, { recursive: true });
  copyFileSync(join(repo, 'package.json'), join(installed, 'package.json'));
  for (const folder of ['dist', 'schemas']) symlinkSync(join(repo, folder), join(installed, folder));
  for (const name of readdirSync(join(repo, 'node_modules'))) {
    if (name !== '.bin' && name !== 'tributary' && !name.startsWith('.') && !(name in standIns)) symlinkSync(join(repo, 'node_modules', name), join(modules, name));
  }
  // A dependency replaced by a stand-in: its index.js (CommonJS) as given.
  for (const [name, source] of Object.entries(standIns)) {
    mkdirSync(join(modules, name));
    writeFileSync(join(modules, name, 'package.json'), JSON.stringify({ name, version: '0.0.0', main: 'index.js' }));
    writeFileSync(join(modules, name, 'index.js'), source);
  }
  const main = join(installed, 'dist', 'core', 'cli', 'main.js');
  return {
    project,
    tributary: (...args) => spawnSync(process.execPath, ['--preserve-symlinks', '--preserve-symlinks-main', main, ...args], { cwd: project, encoding: 'utf8', timeout: 120_000 }),
  };
}

test("`tributary --version` in a project that installed it says Tributary's version, not the project's", (t) => {
  const { tributary } = installedProject(t, '7.7.7');
  const result = tributary('--version');
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), version);
});

test("a backtest's report in a project that installed Tributary, itself a git repository, names Tributary's version and no commit (the project's is not Tributary's)", (t) => {
  const { project, tributary } = installedProject(t, '7.7.7');
  const git = (...args: string[]) => spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: project, encoding: 'utf8' });
  assert.equal(git('init', '-q').status, 0);
  writeFileSync(join(project, '.gitignore'), 'node_modules\nout\n');
  writeFileSync(join(project, 'events.jsonl'), [0, 1, 2].map((i) => JSON.stringify({ user_id: 'u', time: new Date(1_700_000_000_000 + i * 1000).toISOString(), type: 'view' })).join('\n') + '\n');
  writeFileSync(join(project, 'pipeline.yaml'), 'name: p\nsources: [{type: file, path: events.jsonl}]\nsinks: [{type: file, path: out/events.jsonl, kinds: [event]}]\n');
  assert.equal(git('add', '-A').status, 0);
  assert.equal(git('commit', '-qm', 'pipelines').status, 0);
  const result = tributary('backtest', 'pipeline.yaml', '--input', 'events.jsonl', '--report', 'out/report');
  assert.equal(result.status, 0, result.stderr);
  const made = /<p id="source">.*?<\/p>/.exec(readFileSync(join(project, 'out', 'report', 'report.html'), 'utf8'))?.[0];
  assert.ok(made?.endsWith(`by tributary ${version}.</p>`), made);
  // Run from this checkout, the same backtest names the checkout's commit.
  const fromCheckout = spawnSync(process.execPath, [join(repo, 'dist', 'core', 'cli', 'main.js'), 'backtest', 'pipeline.yaml', '--input', 'events.jsonl', '--report', 'out/report'], { cwd: project, encoding: 'utf8', timeout: 120_000 });
  assert.equal(fromCheckout.status, 0, fromCheckout.stderr);
  const commit = spawnSync('git', ['-C', repo, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  assert.match(readFileSync(join(project, 'out', 'report', 'report.html'), 'utf8'), new RegExp(`by tributary ${version.replaceAll('.', '\\.')}, commit <code>[^<]*${commit}`));
});

test('where node-rdkafka does not load (its binding not built: its install script skipped), validate and run say so at the kafka entry, and what mends it', (t) => {
  // What node-rdkafka's bindings lookup throws where its build/ is missing.
  const unbuilt = "throw new Error('Could not locate the bindings file. Tried:\\n → ' + __dirname + '/build/Release/node-librdkafka.node');\n";
  const { project, tributary } = installedProject(t, '1.0.0', { 'node-rdkafka': unbuilt });
  writeFileSync(join(project, 'sink.yaml'), 'name: s\nsources: [{type: synthetic, events: 10}]\nsinks:\n  - type: kafka\n    brokers: localhost:1\n    topic: predictions\n');
  writeFileSync(join(project, 'source.yaml'), 'name: k\nsources:\n  - type: kafka\n    brokers: localhost:1\n    topics: [clicks]\n    group: g\nsinks: [{type: stdout}]\n');
  const mends = /node-rdkafka, which the kafka plugins need, does not load \(Could not locate the bindings file\. Tried:\): its native binding is built by its install script, .*npm rebuild node-rdkafka tributary/;
  const validated = tributary('validate', 'sink.yaml');
  assert.equal(validated.status, 2, validated.stderr);
  assert.match(validated.stderr, /^sink\.yaml:4:5: \$\.sinks\[0\]: sink 'kafka': /);
  assert.match(validated.stderr, mends);
  const run = tributary('run', 'source.yaml');
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /source\.yaml:3:5: \$\.sources\[0\]: source 'kafka': /);
  assert.match(run.stderr, mends);
  // A pipeline without Kafka does not need it.
  writeFileSync(join(project, 'plain.yaml'), 'name: plain\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout, kinds: []}]\n');
  const plain = tributary('run', 'plain.yaml');
  assert.equal(plain.status, 0, plain.stderr);
});

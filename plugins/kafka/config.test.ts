/**
 * What `tributary validate` says of a Kafka pipeline's exactly-once ends, its transaction timeout
 * and its source's assignment_timeout, located at the field (these failed only at run before, or at
 * librdkafka's range check).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setTimeout as delay } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, formatProblem, loadPipeline, PipelineRunner, type LoadedPipeline } from 'tributary';
import { boundedSpawnSync, silentLogger, spawnTributary, tempFolder } from 'tributary/testing';
import { builtinRegistry } from '../../core/cli/registry.js';
import { transactionTimeoutMs } from './sink.js';

const dir = tempFolder({ after }, 'kafka-config');

async function problemsOf(yaml: string): Promise<string[]> {
  const file = join(dir, `p${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  try {
    await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.problems.map((p) => formatProblem({ ...p, file: 'P' }));
  }
  return [];
}

const source = (guarantee: string): string => `sources:\n  - type: kafka\n    brokers: b:9092\n    topics: [clicks]\n    group: g\n${guarantee}`;
const sink = (guarantee: string, extra = ''): string => `sinks:\n  - type: kafka\n    brokers: b:9092\n    topic: out\n${guarantee}${extra}`;
const exactlyOnce = '    guarantee: exactly-once\n';

test('validate: an exactly-once kafka source without an exactly-once kafka sink is a config error at its guarantee', async () => {
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}sinks: [{type: stdout}]\n`), [
    'P:6:16: $.sources[0].guarantee: guarantee: exactly-once needs a `kafka` sink with guarantee: exactly-once in the same pipeline (it writes the transaction)',
  ]);
  // An at-least-once kafka sink does not write transactions either.
  assert.equal((await problemsOf(`${source(exactlyOnce)}${sink('')}`)).length, 1);
  // The dead-letter sink may be the exactly-once one.
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}sinks: [{type: stdout}]\ndead_letter: {type: kafka, brokers: "b:9092", topic: dlq, guarantee: exactly-once}\n`), []);
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce)}`), []);
});

test('validate: an exactly-once kafka sink needs an exactly-once kafka source, and an at-least-once one beside it is an error', async () => {
  assert.deepEqual(await problemsOf(`sources: [{type: synthetic}]\n${sink(exactlyOnce)}`), [
    'P:6:16: $.sinks[0].guarantee: guarantee: exactly-once needs a `kafka` source with guarantee: exactly-once in the same pipeline (its offsets commit the transactions); without one nothing written would ever be committed',
  ]);
  // The source says at-least-once by default (the field is absent: its entry is pointed at).
  assert.deepEqual(await problemsOf(`${source('')}${sink(exactlyOnce)}`), [
    'P:2:5: $.sources[0].guarantee: a `kafka` sink of this pipeline is exactly-once: give this source guarantee: exactly-once too (it commits the transactions)',
    'P:10:16: $.sinks[0].guarantee: guarantee: exactly-once needs a `kafka` source with guarantee: exactly-once in the same pipeline (its offsets commit the transactions); without one nothing written would ever be committed',
  ]);
});

test('validate: transaction_timeout under 1s (librdkafka takes no less) is a config error at the field', async () => {
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, '    transaction_timeout: 500ms\n')}`), ['P:12:26: $.sinks[0].transaction_timeout: must be at least 1s, got "500ms"']);
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, '    transaction_timeout: 999\n')}`), ['P:12:26: $.sinks[0].transaction_timeout: must be at least 1s, got 999']);
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, '    transaction_timeout: 1s\n')}settings: { commit_interval: 100ms }\n`), []);
});

test('validate: exactly-once, a transaction_timeout no longer than the time between commits (the checkpoint interval) is a config error at the field; unset, it follows the interval', async () => {
  const checkpoints = (interval: string): string => `checkpoint: { dir: cp, interval: ${interval} }\n`;
  // Before: valid, and at run the brokers aborted every transaction (open 30 s, timeout 10 s), read as a fencing, restarted without end.
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, '    transaction_timeout: 10s\n')}${checkpoints('30s')}`), [
    'P:12:26: $.sinks[0].transaction_timeout: exactly-once: each transaction stays open from one commit to the next, every 30 s (checkpoint.interval), and the brokers abort one open longer than the transaction timeout (10 s), so none would ever commit: set transaction_timeout well above 30 s, or commit more often',
  ]);
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, '    transaction_timeout: 2s\n')}settings: { commit_interval: 5s }\n`).then((p) => p.map((m) => m.split(': exactly-once')[0])), ['P:12:26: $.sinks[0].transaction_timeout']);
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, '    transaction_timeout: 90s\n')}${checkpoints('30s')}`), []);
  // Unset: twice the interval, at least 10 s, at most the brokers' default cap (15 min).
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce)}${checkpoints('30s')}`), []);
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce)}${checkpoints('20m')}`), [
    'P:11:16: $.sinks[0].guarantee: exactly-once: each transaction stays open from one commit to the next, every 1200 s (checkpoint.interval), and the brokers abort one open longer than the transaction timeout (900 s, the most brokers allow by default), so none would ever commit: commit more often (checkpoint.interval under 15 min)',
  ]);
  assert.equal(transactionTimeoutMs(undefined, 1_000), 10_000);
  assert.equal(transactionTimeoutMs(undefined, 30_000), 60_000);
  assert.equal(transactionTimeoutMs(undefined, 600_000), 900_000);
  assert.equal(transactionTimeoutMs('45s', 30_000), 45_000);
  // At-least-once has no transactions.
  assert.deepEqual(await problemsOf(`${source('')}${sink('', '    transaction_timeout: 10s\n')}${checkpoints('30s')}`), []);
});

test('validate: a linger no shorter than the message timeout (librdkafka refuses the producer) is a config error at the field', async () => {
  // Before: the start failed as "cannot connect to the brokers: `message.timeout.ms` must be greater than `linger.ms`", restarted without end.
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, '    linger: 10s\n')}`), [
    'P:12:13: $.sinks[0].linger: linger (10000 ms) must be shorter than the transaction timeout (10000 ms): librdkafka refuses a producer that would time a record out before it may send it',
  ]);
  assert.deepEqual(await problemsOf(`${source('')}${sink('', '    linger: 5m\n')}`), [
    "P:10:13: $.sinks[0].linger: linger (300000 ms) must be shorter than librdkafka's message.timeout.ms (300000 ms): librdkafka refuses a producer that would time a record out before it may send it",
  ]);
  assert.equal((await problemsOf(`${source('')}${sink('', '    linger: 2s\n    options: { message.timeout.ms: 1000 }\n')}`)).length, 1);
  assert.deepEqual(await problemsOf(`${source('')}${sink('', '    linger: 1s\n')}`), []);
});

test('validate: exactly-once kafka sinks of one pipeline share one producer, so their brokers, transactional_id and the like must agree', async () => {
  const second = (extra: string): string => `  - type: kafka\n    brokers: b:9092\n    topic: other\n    key_field: itemId\n${exactlyOnce}${extra}`;
  const firstWithId = sink(exactlyOnce, '    transactional_id: tx-a\n');
  // Different topics and keys are what several sinks are for; the same settings otherwise are fine.
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${firstWithId}${second('    transactional_id: tx-a\n')}`), []);
  // brokers as a list or as a comma-separated string say the same.
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce)}${second('').replace('brokers: b:9092', 'brokers: [b:9092]')}`), []);
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${firstWithId}${second('    transactional_id: tx-b\n').replace('brokers: b:9092', 'brokers: c:9092')}`), [
    'P:14:14: $.sinks[1].brokers: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from sinks[0]: `brokers` must be the same as there ("b:9092" there, "c:9092" here); only `topic` and `key_field` may differ',
    'P:18:23: $.sinks[1].transactional_id: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from sinks[0]: `transactional_id` must be the same as there ("tx-a" there, "tx-b" here); only `topic` and `key_field` may differ',
  ]);
  // A field left to its default differs from one set: said at the entry. Credentials are not printed.
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${firstWithId}${second('    options: { "sasl.password": hunter2 }\n')}`), [
    'P:13:5: $.sinks[1].transactional_id: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from sinks[0]: `transactional_id` must be the same as there ("tx-a" there, not set here); only `topic` and `key_field` may differ',
    'P:18:14: $.sinks[1].options: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from sinks[0]: `options` must be the same as there; only `topic` and `key_field` may differ',
  ]);
  // Maps set in both: said at each key that differs (was: at `options`, 18:14, naming no key), one the other lacks
  // at the map; security's nested keys likewise. Still no value printed.
  const withOptions = (options: string, security: string): string => `    options: ${options}\n    security: ${security}\n`;
  assert.deepEqual(
    await problemsOf(`${source(exactlyOnce)}${sink(exactlyOnce, withOptions('{ linger.ms: 5, "sasl.password": a, acks: all }', '{ sasl: { mechanism: PLAIN, username: u, password: a } }'))}${second(withOptions('{ linger.ms: 5, "sasl.password": b }', '{ sasl: { mechanism: PLAIN, username: u, password: b } }'))}`),
    [
      'P:19:14: $.sinks[1].options.acks: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from sinks[0]: `options.acks` must be the same as there; only `topic` and `key_field` may differ',
      'P:19:47: $.sinks[1].options["sasl.password"]: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from sinks[0]: `options["sasl.password"]` must be the same as there; only `topic` and `key_field` may differ',
      'P:20:66: $.sinks[1].security.sasl.password: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from sinks[0]: `security.sasl.password` must be the same as there; only `topic` and `key_field` may differ',
    ],
  );
  // The dead-letter sink, created first, sets the producer up when it is an exactly-once kafka sink; an at-least-once sink has its own producer.
  assert.deepEqual(await problemsOf(`${source(exactlyOnce)}${firstWithId}  - { type: kafka, brokers: "d:9092", topic: x }\ndead_letter: { type: kafka, brokers: "b:9092", topic: dlq, guarantee: exactly-once }\n`), [
    'P:12:23: $.sinks[0].transactional_id: every exactly-once `kafka` sink of a pipeline writes through one transactional producer, set up from dead_letter: `transactional_id` must be the same as there (not set there, "tx-a" here); only `topic` and `key_field` may differ',
  ]);
});

test('validate: the source\'s assignment_timeout is a duration of at least 1s, a config error at the field otherwise', async () => {
  const withTimeout = (value: string): string => `${source(`    assignment_timeout: ${value}\n`)}sinks: [{type: stdout}]\n`;
  assert.deepEqual(await problemsOf(withTimeout('5m')), []);
  assert.deepEqual(await problemsOf(withTimeout('500ms')), ['P:6:25: $.sources[0].assignment_timeout: must be at least 1s, got "500ms"']);
  assert.equal((await problemsOf(withTimeout('soon'))).length, 1);
});

test('validate: a compression codec this build of librdkafka lacks is a config error at the sink\'s `compression`', async () => {
  const { features } = createRequire(import.meta.url)('node-rdkafka') as { features: string[] };
  const atLeastOnce = (codec: string): string => `sources: [{type: synthetic}]\n${sink('', `    compression: ${codec}\n`)}`;
  for (const codec of ['none', 'gzip', 'snappy', 'lz4']) assert.deepEqual(await problemsOf(atLeastOnce(codec)), []);
  const zstd = await problemsOf(atLeastOnce('zstd'));
  if (features.includes('zstd')) assert.deepEqual(zstd, []);
  else {
    // The bundled librdkafka (node-rdkafka 3.6.1) is built without libzstd: before, validate said ok and
    // `run` failed at the entry, with librdkafka's words only.
    assert.deepEqual(zstd, [
      'P:6:18: $.sinks[0].compression: this build of librdkafka (node-rdkafka\'s) has no zstd (built without libzstd; its codecs: gzip, snappy, lz4); choose one of those, or none',
    ]);
    // The dead-letter sink too.
    assert.equal((await problemsOf(`sources: [{type: synthetic}]\nsinks: [{type: stdout}]\ndead_letter: {type: kafka, brokers: "b:9092", topic: dlq, compression: zstd}\n`)).length, 1);
  }
});

test('validate: the same codec given as a raw librdkafka property (`options`, compression.codec or its alias compression.type) is a config error at that property\'s value', async () => {
  const { features } = createRequire(import.meta.url)('node-rdkafka') as { features: string[] };
  const withOption = (name: string, codec: string): string => `sources: [{type: synthetic}]\n${sink('', `    options: { ${name}: ${codec} }\n`)}`;
  for (const codec of ['none', 'gzip', 'snappy', 'lz4']) assert.deepEqual(await problemsOf(withOption('compression.codec', codec)), []);
  if (features.includes('zstd')) return;
  // Before, validate said ok and `run` failed at the entry, with librdkafka's words only; then it was said
  // at `options` (6:14) whichever key held the codec.
  for (const name of ['compression.codec', 'compression.type']) {
    assert.deepEqual(await problemsOf(withOption(name, 'zstd')), [
      `P:6:${16 + name.length + 2}: $.sinks[0].options["${name}"]: this build of librdkafka (node-rdkafka's) has no zstd (built without libzstd; its codecs: gzip, snappy, lz4); choose one of those, or none`,
    ]);
  }
  // Among other properties, in a block map: at its own line.
  assert.deepEqual(await problemsOf(`sources: [{type: synthetic}]\n${sink('', '    options:\n      linger.ms: 5\n      "compression.type": zstd\n')}`), [
    `P:8:27: $.sinks[0].options["compression.type"]: this build of librdkafka (node-rdkafka's) has no zstd (built without libzstd; its codecs: gzip, snappy, lz4); choose one of those, or none`,
  ]);
  assert.equal((await problemsOf(`sources: [{type: synthetic}]\nsinks: [{type: stdout}]\ndead_letter: {type: kafka, brokers: "b:9092", topic: dlq, options: {compression.codec: zstd}}\n`)).length, 1);
});

test('validate: a kafka source that reads a topic a kafka sink of the pipeline writes on the same brokers (a dead-letter loop) is a config error at its pattern or at that item of its topics', async () => {
  // The docs' own example: `pattern: '^clicks-.*'` beside `dead_letter: { topic: clicks-dlq }`. Before, validate said ok,
  // and at run one malformed record was dead-lettered, read back, dead-lettered again, without end (2,661 dead letters in 11 s).
  const reading = (subscription: string, brokers = 'b:9092'): string => `sources:\n  - type: kafka\n    brokers: ${brokers}\n    ${subscription}\n    group: g\n`;
  const deadLetter = (topic: string, brokers = 'b:9092'): string => `sinks: [{type: stdout}]\ndead_letter: { type: kafka, brokers: "${brokers}", topic: ${topic} }\n`;
  assert.deepEqual(await problemsOf(`${reading("pattern: '^clicks-.*'")}${deadLetter('clicks-dlq')}`), [
    "P:4:14: $.sources[0].pattern: the pattern matches topic 'clicks-dlq', which the dead-letter sink writes on the same brokers: every record written there would be read again as input (a dead letter, never an event, dead-lettered again without end); name the outputs so the pattern does not match them, end the pattern with `$` where it reads too far, or read a list of `topics`",
  ]);
  // librdkafka anchors a pattern at its start only: `clicks-.*` is `^clicks-.*`, and it matches anywhere after that.
  assert.equal((await problemsOf(`${reading("pattern: 'clicks-.*'")}${deadLetter('clicks-dlq')}`)).length, 1);
  assert.equal((await problemsOf(`${reading("pattern: 'clicks'")}${deadLetter('clicks-dlq')}`)).length, 1);
  // A sink in `sinks`, read by name, a broker list naming one of the source's brokers.
  assert.deepEqual(await problemsOf(`${reading('topics: [clicks, predictions]', '[a:9092, b:9092]')}sinks:\n  - { type: kafka, brokers: "b:9092,c:9092", topic: predictions }\n`), [
    "P:4:22: $.sources[0].topics[1]: reads topic 'predictions', which sinks[0] writes on the same brokers: every record written there would be read again as input; read other topics, or write to another one",
  ]);
  // Outputs the subscription does not read, or written to other brokers (another cluster), are fine.
  assert.deepEqual(await problemsOf(`${reading("pattern: 'clicks\\..*'")}${deadLetter('clicks-dlq')}`), []);
  assert.deepEqual(await problemsOf(`${reading("pattern: '^clicks-.*'")}${deadLetter('clicks-dlq', 'other:9092')}`), []);
  assert.deepEqual(await problemsOf(`${reading('topics: [clicks]')}${deadLetter('clicks-dlq')}`), []);
});

test('a pipeline composed in code (PipelineRunner) with an exactly-once kafka sink and no kafka source fails as validate says, before any client is made', async () => {
  const registry = await builtinRegistry();
  const plugin = (kind: 'source' | 'sink', type: string) => registry.get(kind, type)!;
  const loaded: LoadedPipeline = {
    file: '<code>',
    baseDir: dir,
    document: { name: 'composed', sources: [], sinks: [], settings: { max_in_flight: 64, progress_interval: '10s' } },
    sources: [{ plugin: plugin('source', 'synthetic'), entry: { type: 'synthetic', events: 10 }, path: '$.sources[0]' }],
    stages: [],
    // A broker no one listens at: a factory or open() that ran would wait on it, or fail otherwise.
    sinks: [{ plugin: plugin('sink', 'kafka'), entry: { type: 'kafka', brokers: '127.0.0.1:1', topic: 'out', guarantee: 'exactly-once', transactional_id: 't' }, path: '$.sinks[0]' }],
    deadLetter: { plugin: plugin('sink', 'stdout'), entry: { type: 'stdout' }, path: '$.dead_letter' },
  };
  await assert.rejects(new PipelineRunner(loaded, { logger: silentLogger }).run(), (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.deepEqual(error.problems.map(formatProblem), [
      '<code>: $.sinks[0].guarantee: guarantee: exactly-once needs a `kafka` source with guarantee: exactly-once in the same pipeline (its offsets commit the transactions); without one nothing written would ever be committed',
    ]);
    return true;
  });
});

test('run: a TLS file (security.tls.ca_location, certificate_location, key_location) that is not there is a config error at its field, exit 2, before any broker is tried; a relative path is the pipeline file\'s folder\'s', async (t) => {
  const home = tempFolder(t, 'kafka-tls-files');
  writeFileSync(join(home, 'ca.pem'), 'not read: no broker is reached\n');
  const file = join(home, 'pipeline.yaml');
  writeFileSync(
    file,
    [
      'name: tls-files',
      'sources:',
      '  - type: kafka',
      '    brokers: 127.0.0.1:1',
      '    topics: [clicks]',
      '    group: g',
      '    security:',
      '      protocol: ssl',
      '      tls: { ca_location: ca.pem, key_location: keys/client.key }',
      'sinks: [{type: file, path: out.jsonl}]',
      '',
    ].join('\n'),
  );
  // Run from another folder: the paths are the pipeline file's, not the working directory's.
  const run = spawnTributary(t, ['run', file], { cwd: dirname(home) });
  // Bounded: before, the run restarted the pipeline without end.
  const bound = new AbortController();
  const code = await Promise.race([run.exited, delay(60_000, 'still running after 60 s', { signal: bound.signal })]).finally(() => bound.abort());
  // Before: librdkafka's `ssl.key.location failed: ... system lib` as the source connected, a failure a restart may mend (exit 1, restarted without end by a daemon).
  assert.equal(code, 2, run.stderr);
  assert.match(run.stderr, new RegExp(`${file}:9:49: \\$\\.sources\\[0\\]\\.security\\.tls\\.key_location: source 'kafka': no such file: ${join(home, 'keys', 'client.key')} \\(keys/client.key, relative to the pipeline file's folder\\)`));
  assert.ok(!/connecting to the brokers/.test(run.stderr), run.stderr);
});

test('validate: a raw librdkafka property (`options`) librdkafka does not know, or whose value it refuses, is a config error at that property, on the source and the sink', async () => {
  const problems = await problemsOf(
    `${source('    options:\n      sasl.usernme: bob\n      sasl.mechanism: PLAIN\n')}${sink('', '    options: { fetch.min.bytes: 1, linger.ms: soon }\n')}`,
  );
  // Before: validate said ok, and run failed at the entry (P:2:5), not the property: `source 'kafka': No such configuration property: "sasl.usernme"`.
  assert.deepEqual(problems, [
    'P:7:21: $.sources[0].options["sasl.usernme"]: librdkafka refuses it: No such configuration property: "sasl.usernme" (a misspelt name? Its properties are those of librdkafka\'s CONFIGURATION.md; SASL and TLS are set under `security`)',
    // librdkafka names the property by its own name (linger.ms is its alias).
    'P:13:47: $.sinks[0].options["linger.ms"]: librdkafka refuses it: Invalid value for configuration property "queue.buffering.max.ms"',
  ]);
  // librdkafka's alias (sasl.mechanism for sasl.mechanisms) and a consumer property on a producer (ignored, as librdkafka does) are no errors.
  assert.deepEqual(await problemsOf(`${source('    options: { sasl.mechanism: PLAIN, fetch.min.bytes: 1 }\n')}${sink('', '    options: { fetch.min.bytes: 1 }\n')}`), []);
});

test('validate --print hides the credentials written in a kafka source\'s or sink\'s `options` as its logs do (one rule: sasl.username, sasl.password, a key\'s password), and shows the rest', async () => {
  const file = join(dir, 'print-options.yaml');
  writeFileSync(
    file,
    `name: print-options
sources:
  - type: kafka
    brokers: b:9092
    topics: [clicks]
    group: g
    options: { security.protocol: sasl_plaintext, sasl.mechanisms: PLAIN, sasl.username: "\${KAFKA_USER}", sasl.password: "\${KAFKA_PASSWORD}" }
sinks:
  - type: kafka
    brokers: b:9092
    topic: out
    options: { sasl.username: "shop-writer", ssl.key.password: "kp-hidden", linger.ms: 7 }
`,
  );
  const cli = fileURLToPath(new URL('../../core/cli/main.js', import.meta.url));
  const run = boundedSpawnSync(process.execPath, [cli, 'validate', '--print', file], { encoding: 'utf8', env: { ...process.env, KAFKA_USER: 'shop-reader', KAFKA_PASSWORD: 'pw-hidden' } });
  assert.equal(run.status, 0, run.stderr);
  // Before: the users shown (the logs' list had sasl.username, validate --print's rule had not).
  for (const secret of ['shop-reader', 'shop-writer', 'pw-hidden', 'kp-hidden']) assert.ok(!run.stdout.includes(secret), `${secret} printed:\n${run.stdout}`);
  assert.match(run.stdout, /sasl\.username: "?\[redacted\]"?/);
  assert.match(run.stdout, /sasl\.mechanisms: PLAIN/);
  assert.match(run.stdout, /linger\.ms: 7/);
  // The kafka client's logged properties follow the same rule.
  const { redactProperties } = await import('./common.js');
  assert.deepEqual(redactProperties({ 'sasl.username': 'shop-reader', 'sasl.mechanisms': 'PLAIN' }), { 'sasl.username': '[redacted]', 'sasl.mechanisms': 'PLAIN' });
});

/** pipelines/kafka-intent.yaml, the Kafka pipeline users start from. */
const kafkaIntent = fileURLToPath(new URL('../../../pipelines/kafka-intent.yaml', import.meta.url));
const kafkaEnv = { KAFKA_BROKERS: 'kafka-1:9093,kafka-2:9093', KAFKA_USER: 'intent', KAFKA_PASSWORD: 'pw' };

test('pipelines/kafka-intent.yaml validates, its one `x-kafka` block (brokers, SASL/SCRAM over TLS from the environment) merged into every Kafka entry: source, sinks (late output too), dead_letter', async () => {
  const loaded = await loadPipeline(kafkaIntent, { registry: await builtinRegistry(), env: kafkaEnv });
  const entries = [...loaded.document.sources, ...loaded.document.sinks, loaded.document.dead_letter!] as unknown as Record<string, unknown>[];
  assert.deepEqual(entries.map((entry) => entry.type), ['kafka', 'kafka', 'kafka', 'kafka']);
  for (const entry of entries) {
    assert.equal(entry.brokers, 'kafka-1:9093,kafka-2:9093');
    assert.deepEqual(entry.security, { protocol: 'sasl_ssl', sasl: { mechanism: 'SCRAM-SHA-512', username: 'intent', password: 'pw' } });
  }
  assert.deepEqual((loaded.document.sinks[1] as unknown as { outputs: string[] }).outputs, ['late']);
  // Each entry has its own copy of the shared block: a --set on one changes that one only (YAML gives an alias's block as one object).
  const set = await loadPipeline(kafkaIntent, { registry: await builtinRegistry(), env: kafkaEnv, sets: ['sinks[0].security.sasl.username=writer'] });
  const users = [...set.document.sources, ...set.document.sinks, set.document.dead_letter!].map((entry) => (entry as unknown as { security: { sasl: { username: string } } }).security.sasl.username);
  assert.deepEqual(users, ['intent', 'writer', 'intent', 'intent']);
  assert.equal((loaded.document.sources[0] as unknown as { guarantee: string }).guarantee, 'at-least-once');
});

test('a mistake inside the shared `x-kafka` block is said at its line in the block, once per entry that uses it, by that entry\'s path; an unset secret once, at the block', async () => {
  const text = readFileSync(kafkaIntent, 'utf8');
  const line = text.split('\n').findIndex((row) => row.includes('mechanism: ${KAFKA_SASL_MECHANISM')) + 1;
  assert.ok(line > 0);
  const problems = await problemsOf(text.replace('${KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}', 'SCRAM-SHA-999').replace(/\$\{KAFKA_(USER|PASSWORD|BROKERS)[^}]*\}/g, 'x'));
  const refused = 'must be one of: "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", got (not shown: a secret) (did you mean \'SCRAM-SHA-256\'?)';
  // Before: `<<` was a field of its own, refused at each entry, and `x-kafka` an unknown field.
  assert.deepEqual(
    problems,
    ['sources[0]', 'sinks[0]', 'sinks[1]', 'dead_letter'].map((entry) => `P:${line}:18: $.${entry}.security.sasl.mechanism: ${refused}`),
  );
  const unset = await problemsOf(text.replace(/\$\{KAFKA_(PASSWORD|BROKERS)[^}]*\}/g, 'x'));
  assert.deepEqual(unset, [`P:${line + 1}:17: $.x-kafka.security.sasl.username: environment variable KAFKA_USER is not set and has no default (write \${KAFKA_USER:-default})`]);
});

test('validate: a kafka source starts from earliest, latest or a date and time with its offset; anything else is a config error at start_from saying the three', async () => {
  for (const ok of ['earliest', 'latest', "'2026-12-01T00:00:00Z'", "'2026-12-01T01:00:00+01:00'"]) {
    assert.deepEqual(await problemsOf(`${source(`    start_from: ${ok}\n`)}sinks: [{type: stdout}]\n`), [], ok);
  }
  const expected = 'expected earliest, latest, or a date and time with its UTC offset (RFC 3339), such as 2026-12-01T00:00:00Z';
  assert.deepEqual(await problemsOf(`${source('    start_from: yesterday\n')}sinks: [{type: stdout}]\n`), [`P:6:17: $.sources[0].start_from: ${expected}, got "yesterday"`]);
  // A date alone, or a time without its offset, is not an instant.
  assert.deepEqual(await problemsOf(`${source("    start_from: '2026-12-01'\n")}sinks: [{type: stdout}]\n`), [`P:6:17: $.sources[0].start_from: ${expected}, got "2026-12-01"`]);
  assert.deepEqual(await problemsOf(`${source("    start_from: '2026-12-01T00:00:00'\n")}sinks: [{type: stdout}]\n`), [`P:6:17: $.sources[0].start_from: ${expected}, got "2026-12-01T00:00:00"`]);
});

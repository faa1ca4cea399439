import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError, PluginConfigError, PluginRegistry, TributaryError, defineOperator, defineSink, defineSource, loadPipeline, formatProblem, formatWarning, needsPerson, type ConfigProblem } from 'tributary';
import { testContext } from '../testing.js';
import { builtinRegistry } from '../cli/registry.js';
import { entryFieldProblem, loadedPipelineProblems, placeText } from './load.js';
import { zoneNameWarning } from '../time-zone.js';
import { tempFolder } from 'tributary/testing';
import { defineModel } from 'tributary/models';

const dir = tempFolder({ after }, 'config');

async function problemsOf(yaml: string, options: { env?: Record<string, string>; sets?: string[]; registry?: PluginRegistry } = {}): Promise<string[]> {
  const file = join(dir, `p${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  try {
    await loadPipeline(file, { registry: options.registry ?? (await builtinRegistry()), env: options.env ?? {}, sets: options.sets ?? [] });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.problems.map((p) => formatProblem({ ...p, file: 'P' }));
  }
  return [];
}

test('a wrong type, an unknown plugin and a missing field are all reported, each with file, line and column', async () => {
  const problems = await problemsOf(
    [
      'name: broken', //                          1
      'sources:', //                              2
      '  - type: synthetic', //                   3
      '    users: lots', //                       4  wrong type
      'stages:', //                               5
      '  - type: sessionise', //                  6  unknown plugin
      'sinks:', //                                7
      '  - type: file', //                        8  missing path
      '    append: true', //                      9
    ].join('\n'),
  );
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.equal(problems[0], 'P:4:12: $.sources[0].users: must be integer, got "lots"');
  assert.match(problems[1]!, /^P:6:11: \$\.stages\[0\]\.type: unknown operator plugin 'sessionise' \(did you mean 'sessionizer'\?\); known operator plugins: [^;]*$/);
  assert.equal(problems[2], "P:8:5: $.sinks[0]: missing required field 'path'");
});

test('unknown fields are pointed at by their key; document-level errors too', async () => {
  const problems = await problemsOf('sources:\n  - type: synthetic\n    usres: 10\nsinks: []\nextra: 1\n');
  assert.deepEqual(problems, [
    "P:3:5: $.sources[0].usres: unknown field 'usres' (did you mean 'users'?)",
    'P:4:8: $.sinks: must NOT have fewer than 1 items',
    "P:5:1: $.extra: unknown field 'extra'",
  ]);
});

test('an unknown field near a known one of its object suggests it', async () => {
  const problems = await problemsOf('sources:\n  - type: synthetic\n    users: 10\nstages: [{type: sessionizer, gapp: 30m, allowed_latness: 1m}]\nsinks: [{type: stdout}]\nsinkss: 1\n');
  assert.deepEqual(problems, [
    "P:4:30: $.stages[0].gapp: unknown field 'gapp' (did you mean 'gap'?)",
    "P:4:41: $.stages[0].allowed_latness: unknown field 'allowed_latness' (did you mean 'allowed_lateness'?)",
    "P:6:1: $.sinkss: unknown field 'sinkss' (did you mean 'sinks'?)",
  ]);
});

test('an unknown field that a nested object of its entry has (written a level too high) is said with where it goes', async () => {
  const problems = await problemsOf('sources:\n  - type: file\n    path: x.csv\n    delimiter: ";"\n    time_format: epoch_s\n    mapping: { user_id: uid, time: ts }\nsinks: [{type: stdout}]\n');
  assert.deepEqual(problems, [
    "P:4:5: $.sources[0].delimiter: unknown field 'delimiter' (did you mean 'csv.delimiter'?)",
    "P:5:5: $.sources[0].time_format: unknown field 'time_format' (did you mean 'mapping.time_format'?)",
    "P:6:16: $.sources[0].mapping.user_id: unknown field 'user_id' (did you mean 'fields.user_id'?)",
    "P:6:30: $.sources[0].mapping.time: unknown field 'time' (did you mean 'fields.time'?)",
  ]);
});

test('mapping.time_zone that is no zone is a config error at its position, with the zone most likely meant; a real one (any case) loads, in a file source as in a kafka one', async () => {
  const problems = await problemsOf(
    [
      'sources:',
      '  - type: file',
      '    path: x.csv',
      '    mapping: { time_format: "yyyy-MM-dd HH:mm:ss", time_zone: Europe/Berln }',
      '  - type: kafka',
      '    brokers: "k:9092"',
      '    topics: [t]',
      '    group: g',
      '    mapping:',
      '      time_zone: "+01:00"',
      'sinks: [{type: stdout}]',
    ].join('\n'),
  );
  const expected = '; expected an IANA zone name such as Europe/Berlin or America/New_York, or UTC';
  assert.deepEqual(problems, [
    `P:4:63: $.sources[0].mapping.time_zone: time_zone 'Europe/Berln': no such time zone (did you mean 'Europe/Berlin'?)${expected}`,
    `P:10:18: $.sources[1].mapping.time_zone: time_zone '+01:00': no such time zone (an offset is no zone: name the place, whose offset follows summer time)${expected}`,
  ]);
  assert.deepEqual(await problemsOf('sources:\n  - type: file\n    path: x.csv\n    mapping: { time_zone: europe/berlin }\nsinks: [{type: stdout}]\n'), []);
});

test('a field path written wrong (fields, attributes, attributes_field, a kafka key_field) is a config error at its position, saying how to write it; paths into lists and names with brackets that open no step load', async () => {
  const problems = await problemsOf(
    [
      'sources:', //                                                                1
      '  - type: file', //                                                          2
      '    path: x.jsonl', //                                                       3
      '    mapping:', //                                                            4
      '      fields:', //                                                           5
      '        session_id: event_params[key=ga_session_id].value.int_value', //     6
      '        item_id: items[-1].item_id', //                                      7
      '      attributes: [ok, "geo[\'city\']"]', //                               8
      '      attributes_field: "[0]"', //                                           9
      '  - type: kafka', //                                                        10
      '    brokers: "k:9092"', //                                                  11
      '    topics: [t]', //                                                        12
      '    group: g', //                                                           13
      '    key_field: "ids[0"', //                                                 14
      'sinks: [{type: stdout}]', //                                                15
    ].join('\n'),
  );
  assert.deepEqual(problems, [
    `P:6:21: $.sources[0].mapping.fields.session_id: field 'event_params[key=ga_session_id].value.int_value': [key=ga_session_id]: the value of a test is JSON: text in double quotes ([key="ga_session_id"]), a number, true or false`,
    "P:7:18: $.sources[0].mapping.fields.item_id: field 'items[-1].item_id': [-1]: an index counts from the first element, [0]; no negative index is read",
    `P:8:24: $.sources[0].mapping.attributes[1]: field 'geo['city']': ['city']: a key is written in double quotes, as JSON writes text: ["city"]`,
    "P:9:25: $.sources[0].mapping.attributes_field: field '[0]': a record is an object: a path starts with a field (items[0], not [0])",
    "P:14:16: $.sources[1].key_field: field 'ids[0': '[' at character 4 is not closed by ']'",
  ]);
  const good = [
    'sources:',
    '  - type: file',
    '    path: x.jsonl',
    '    mapping:',
    '      fields:',
    '        session_id: event_params[key="ga_session_id"].value.int_value',
    '        item_id: items[0].item_id',
    '        price: Price [EUR]',
    '      attributes: [\'geo["sub.continent"]\']',
    'sinks: [{type: stdout}]',
  ].join('\n');
  assert.deepEqual(await problemsOf(good), []);
});

test('mapping.price_divisor that is no power of ten (0, negative, 0.01, text) is a config error at its position, with the divisors taken; 100 loads', async () => {
  const yaml = (divisor: string): string => `sources:\n  - type: file\n    path: x.jsonl\n    mapping: { price_divisor: ${divisor} }\nsinks: [{type: stdout}]\n`;
  for (const [divisor, shown] of [['0', '0'], ['-100', '-100'], ['0.01', '0.01'], ['cents', '"cents"'], ['"100"', '"100"']]) {
    assert.deepEqual(await problemsOf(yaml(divisor)), [`P:4:31: $.sources[0].mapping.price_divisor: must be one of: 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000, got ${shown}`], divisor);
  }
  assert.deepEqual(await problemsOf(yaml('100')), []);
  assert.deepEqual(await problemsOf(yaml('1000000')), []);
});

test('${VAR} and ${VAR:-default} are interpolated, typed when unquoted; a missing variable is an error at its position', async () => {
  const registry = await builtinRegistry();
  const file = join(dir, 'vars.yaml');
  writeFileSync(file, 'name: ${NAME:-fallback}\nsources:\n  - type: synthetic\n    users: ${USERS}\n    start: "${START:-2024-02-01T00:00:00Z}"\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry, env: { USERS: '12' } });
  assert.equal(loaded.document.name, 'fallback');
  assert.equal(loaded.sources[0]!.entry.users, 12);
  assert.equal(loaded.sources[0]!.entry.start, '2024-02-01T00:00:00Z');
  await assert.rejects(loadPipeline(file, { registry, env: {} }), (error: ConfigError) => {
    assert.equal(error.code, 'TRIB_ERR_CONFIG_VARIABLE');
    assert.equal(error.problems[0]!.line, 4);
    assert.equal(error.problems[0]!.path, '$.sources[0].users');
    assert.match(error.problems[0]!.message, /USERS is not set/);
    return true;
  });
  // The file shows `${USERS}` at that line: the problem quotes the value the variable gave, and says it was filled in (was: the value alone).
  await assert.rejects(loadPipeline(file, { registry, env: { USERS: 'lots' } }), (error: ConfigError) => {
    assert.deepEqual(error.problems.map((p) => formatProblem({ ...p, file: 'P' })), ['P:4:12: $.sources[0].users: must be integer, got "lots" (a value filled in from ${USERS})']);
    return true;
  });
});

test('${constructor} (a name the environment object inherits from Object.prototype) is an unset variable, not the inherited member\'s text', async () => {
  const registry = await builtinRegistry();
  const file = join(dir, 'inherited-vars.yaml');
  writeFileSync(file, 'name: p-${constructor:-plain}\nsources: [{type: synthetic, users: "${toString}"}]\nsinks: [{type: stdout}]\n');
  await assert.rejects(loadPipeline(file, { registry, env: {} }), (error: ConfigError) => {
    assert.deepEqual(error.problems.map((p) => p.message), ['environment variable toString is not set and has no default (write ${toString:-default})']);
    return true;
  });
  writeFileSync(file, 'name: p-${constructor:-plain}\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  assert.equal((await loadPipeline(file, { registry, env: {} })).document.name, 'p-plain');
});

test('${HOSTNAME} is the environment\'s, else the machine\'s name (a shell does not export it, systemd sets none): never the default, so instances do not share an id', async () => {
  const registry = await builtinRegistry();
  const file = join(dir, 'hostname.yaml');
  writeFileSync(file, 'name: intent-${HOSTNAME:-local}\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  // Before: 'intent-local' on every machine whose daemon systemd started.
  assert.equal((await loadPipeline(file, { registry, env: {} })).document.name, `intent-${hostname()}`);
  assert.equal((await loadPipeline(file, { registry, env: { HOSTNAME: 'pod-7' } })).document.name, 'intent-pod-7');
});

test('a problem quotes the value it is about, but never a secret: a password YAML read as a number, a SASL section written as one string', async () => {
  const kafka = (security: string) => `sources: [{type: kafka, brokers: "k:9092", topics: [t], group: g, security: ${security}}]\nsinks: [{type: stdout}]\n`;
  const number = await problemsOf(kafka('{ sasl: { mechanism: PLAIN, username: u, password: 271828 } }'));
  assert.deepEqual(number, ['P:1:128: $.sources[0].security.sasl.password: must be string, got (not shown: a secret)']);
  const inline = await problemsOf(kafka('{ sasl: "u:hunter2" }'));
  assert.equal(inline.length, 1, inline.join('\n'));
  assert.ok(!inline[0]!.includes('hunter2'), inline[0]);
  // From the environment too: the file shows only `${PASSWORD}`.
  const fromEnv = await problemsOf(kafka('{ sasl: { mechanism: PLAIN, username: u, password: ${PASSWORD} } }'), { env: { PASSWORD: '314159' } });
  assert.ok(fromEnv.length === 1 && !fromEnv[0]!.includes('314159'), fromEnv.join('\n'));
});

test('an unquoted ${VAR} whose value YAML reads as no text (digits, true, empty) where text is expected says to quote it, without showing the value; quoted, it loads (was: only "must be string, got (not shown: a secret)")', async () => {
  const kafka = (password: string) =>
    `sources:\n  - type: kafka\n    brokers: "k:9092"\n    topics: [t]\n    group: g\n    security:\n      protocol: sasl_ssl\n      sasl:\n        mechanism: PLAIN\n        username: u\n        password: ${password}\nsinks: [{type: stdout}]\n`;
  const hint = 'an unquoted ${KAFKA_PASSWORD} is read as YAML reads its value (digits a number, true or false a boolean, empty or null no value); quote it for text: "${KAFKA_PASSWORD}"';
  for (const value of ['271828', 'true', '']) {
    const problems = await problemsOf(kafka('${KAFKA_PASSWORD}'), { env: { KAFKA_PASSWORD: value } });
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.ok(problems[0]!.endsWith(hint), problems[0]);
    assert.ok(!problems[0]!.includes('271828'), problems[0]);
    assert.deepEqual(await problemsOf(kafka('"${KAFKA_PASSWORD}"'), { env: { KAFKA_PASSWORD: value } }), []);
  }
  // A number written in the file itself is no reference: said as before.
  assert.deepEqual(await problemsOf(kafka('271828')), ['P:11:19: $.sources[0].security.sasl.password: must be string, got (not shown: a secret)']);
});

test('--set overrides values after interpolation and is validated like the file', async () => {
  const registry = await builtinRegistry();
  const file = join(dir, 'set.yaml');
  writeFileSync(file, 'sources:\n  - type: synthetic\n    users: 5\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry, sets: ['sources[0].users=7', 'sources.0.seed=3'] });
  assert.equal(loaded.sources[0]!.entry.users, 7);
  assert.equal(loaded.sources[0]!.entry.seed, 3);
  await assert.rejects(loadPipeline(file, { registry, sets: ['sources[0].users=many'] }), /must be integer, got "many"/);
  // A key with a dot, quoted in brackets as the JSONPath of a problem writes it (was: split at its dot into two keys).
  const kafka = join(dir, 'set-dotted.yaml');
  writeFileSync(kafka, "sources: [{type: kafka, brokers: 'b:9092', topics: [t], group: g}]\nsinks: [{type: stdout}]\n");
  const dotted = await loadPipeline(kafka, { registry, sets: ['sources[0].options["fetch.min.bytes"]=1024'] });
  assert.deepEqual(dotted.sources[0]!.entry.options, { 'fetch.min.bytes': 1024 });
  // A key with `=` in it: the path ends at the first `=` outside its brackets and quotes (was: at the first
  // `=`, in the key, so `sources[0].options["a` was set to `b"]=1`, a key with a quote in it).
  // librdkafka knows no such properties, so validation refuses them, each at the key the --set parsed.
  await assert.rejects(loadPipeline(kafka, { registry, sets: ['sources[0].options["a=b"]=1', 'sources[0].options["c]=d"]=x=y'] }), (error: unknown) => {
    const paths = (error as { problems?: { path: string }[] }).problems?.map((problem) => problem.path);
    assert.deepEqual(paths, ['$.sources[0].options["a=b"]', '$.sources[0].options["c]=d"]']);
    return true;
  });
});

test('schema defaults are filled in for the factory', async () => {
  const registry = await builtinRegistry();
  const file = join(dir, 'defaults.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry });
  assert.equal(loaded.sources[0]!.entry.users, 1000);
  assert.equal(loaded.document.settings.max_in_flight, 4096);
});

test("a sink entry asking for a kind its plugin does not take is a config error at that kind, naming those it takes; so is such a sink as dead-letter sink", async () => {
  const registry = await builtinRegistry();
  registry.register(
    defineSink({ name: 'above', summary: 'Predictions above a threshold (tests only).', kinds: ['prediction', 'drift'], config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) }),
    'test',
  );
  const withAbove = (yaml: string): Promise<string[]> => problemsOf(yaml, { registry });
  const wrong = await withAbove(
    [
      'sources: [{type: synthetic}]', //          1
      'sinks:', //                                2
      '  - type: above', //                       3
      '    kinds: [prediction, event, session]', // 4
      '  - {type: stdout, kinds: [event]}', //   5  takes every kind
    ].join('\n'),
  );
  assert.deepEqual(wrong, [
    "P:4:25: $.sinks[0].kinds[1]: sink 'above' does not take kind 'event'; it takes: prediction, drift",
    "P:4:32: $.sinks[0].kinds[2]: sink 'above' does not take kind 'session'; it takes: prediction, drift",
  ]);
  // Dead letters are handed to the dead-letter sink whatever their kind: one that takes none would lose them.
  const deadLetter = await withAbove('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\ndead_letter: {type: above}\n');
  assert.deepEqual(deadLetter, ["P:3:21: $.dead_letter.type: sink 'above' does not take kind 'dead_letter' (it takes: prediction, drift), so it cannot be the dead-letter sink"]);
  // Its own routing fields would be ignored (it is handed every dead letter, and nothing else): said where they are.
  const routed = await withAbove(
    [
      'sources: [{type: synthetic}]', //      1
      'sinks: [{type: stdout}]', //            2
      'dead_letter:', //                       3
      '  type: stdout', //                     4
      '  kinds: [event]', //                   5
      '  outputs: [late]', //                  6
    ].join('\n'),
  );
  assert.deepEqual(routed, [
    "P:5:3: $.dead_letter.kinds: the dead-letter sink is handed every dead letter and nothing else: 'kinds' does not apply to it; remove it",
    "P:6:3: $.dead_letter.outputs: the dead-letter sink is handed dead letters only: 'outputs' does not apply to it; remove it, and add a sink with these outputs to keep their records (it may write to the same file)",
  ]);
  // A plugin that declares its kinds (dead_letter among them) gets them filled in as `kinds` by validation: no problem.
  registry.register(defineSink({ name: 'letters', summary: 'Dead letters (tests only).', kinds: ['dead_letter'], config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) }), 'test');
  const declaredFile = join(dir, 'kinds-dead-letter.yaml');
  writeFileSync(declaredFile, 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\ndead_letter: {type: letters}\n');
  const withDefaults = await loadPipeline(declaredFile, { registry, env: {} });
  assert.deepEqual(withDefaults.deadLetter.entry.kinds, ['dead_letter']);
  assert.deepEqual(loadedPipelineProblems(withDefaults), [], 'the runner checks it again, defaults filled in, and finds nothing either');
  // Narrowed, or left to the plugin's kinds, which validation fills in (as `validate --print` shows).
  const file = join(dir, 'kinds-fine.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nstages: [{type: sessionizer}, {type: intent-model}]\nsinks: [{type: above}, {type: above, kinds: [drift]}, {type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry, env: {} });
  assert.deepEqual(
    loaded.sinks.map((sink) => sink.entry.kinds),
    [['prediction', 'drift'], ['drift'], undefined],
  );
});

test("a sink's kinds or outputs naming what no source or stage emits are config errors at that entry, with what is emitted and the nearest name", async () => {
  const problems = await problemsOf(
    [
      'sources: [{type: synthetic}]', //                              1
      'stages:', //                                                   2
      '  - {type: sessionizer}', //                                   3
      '  - {type: intent-model, report: true}', //                    4
      'sinks:', //                                                    5
      '  - {type: stdout, kinds: [prediction, drift]}', //            6
      '  - type: stdout', //                                          7
      '    kinds: [model_metric, predictions, session, dead_letter, anomaly]', // 8
      '    outputs: [late, lat]', //                                  9
    ].join('\n'),
  );
  const emitted = 'they emit: event, session, prediction, drift, model_metrics';
  assert.deepEqual(problems, [
    `P:8:13: $.sinks[1].kinds[0]: no source or stage of this pipeline emits kind 'model_metric' (did you mean 'model_metrics'?), so this sink would get none; ${emitted}`,
    `P:8:27: $.sinks[1].kinds[1]: no source or stage of this pipeline emits kind 'predictions' (did you mean 'prediction'?), so this sink would get none; ${emitted}`,
    "P:8:49: $.sinks[1].kinds[3]: kind 'dead_letter' never reaches this sink: dead letters go to the pipeline's dead-letter sink alone (`dead_letter:`, by default a file)",
    `P:8:62: $.sinks[1].kinds[4]: no source or stage of this pipeline emits kind 'anomaly', so this sink would get none; ${emitted}`,
    "P:9:21: $.sinks[1].outputs[1]: no source or stage of this pipeline has side output 'lat' (did you mean 'late'?), so this sink would get none from it; the side outputs they have: late",
  ]);
  // Without a sessionizer there are no sessions, nor a `late` side output: a sink asking for them is told so.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout, kinds: [session], outputs: [late]}]\n'), [
    "P:2:32: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'session', so this sink would get none; they emit: event",
    "P:2:52: $.sinks[0].outputs[0]: no source or stage of this pipeline has side output 'late', so this sink would get none from it; they have none",
  ]);
  // Every pipeline the project ships validates as before (those are checked by the CLI test too); a kinds list of
  // none (a sink of side outputs alone) is fine.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nstages: [{type: sessionizer}]\nsinks: [{type: stdout, kinds: [], outputs: [late]}, {type: stdout, kinds: [event, session]}]\n'), []);
  // The runner checks a pipeline again as it is handed it (one composed or changed in code): same problem, same place.
  const file = join(dir, 'kinds-runner.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nstages: [{type: sessionizer}]\nsinks:\n  - {type: stdout, kinds: [session]}\n');
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  loaded.sinks[0]!.entry.kinds = ['sessions'];
  assert.deepEqual(
    loadedPipelineProblems(loaded).map((p) => formatProblem({ ...p, file: 'P' })),
    ["P:4:28: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'sessions' (did you mean 'session'?), so this sink would get none; they emit: event, session"],
  );
});

test("a pipeline with a stage that does not declare what it emits (a user's plugin) is not refused for its sinks' kinds; a source that does not still emits events", async () => {
  const registry = await builtinRegistry();
  const enrich = defineOperator({
    name: 'enrich',
    summary: 'Makes records of its own kinds (tests only).',
    config: { type: 'object' },
    create: () => ({ apply: (input) => input }),
  });
  const feed = defineSource({
    name: 'feed',
    summary: 'A source of its own (tests only).',
    config: { type: 'object' },
    create: () => ({ async *read() {} }),
  });
  registry.register(enrich, 'test');
  registry.register(feed, 'test');
  const problemsWith = async (yaml: string): Promise<string[]> => {
    const file = join(dir, `undeclared${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    try {
      const loaded = await loadPipeline(file, { registry, env: {} });
      return loadedPipelineProblems(loaded).map((p) => formatProblem({ ...p, file: 'P' }));
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((p) => formatProblem({ ...p, file: 'P' }));
    }
  };
  assert.deepEqual(await problemsWith('sources: [{type: synthetic}]\nstages: [{type: enrich}]\nsinks: [{type: stdout, kinds: [enriched], outputs: [odd]}]\n'), []);
  // A source of one's own yields events (Source.read), so kinds are still known; its side outputs are not.
  assert.deepEqual(await problemsWith('sources: [{type: feed}]\nsinks: [{type: stdout, kinds: [event], outputs: [odd]}]\n'), []);
  assert.deepEqual(await problemsWith('sources: [{type: feed}]\nsinks: [{type: stdout, kinds: [events]}]\n'), [
    "P:2:32: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'events' (did you mean 'event'?), so this sink would get none; they emit: event",
  ]);
});

test("a sink's kinds that the file gives are checked even where they are the plugin's own list; left to that default they are not", async () => {
  const registry = await builtinRegistry();
  registry.register(defineSink({ name: 'scores', summary: 's', kinds: ['prediction'], config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) }), 'scores.js');
  const problems = (sink: string): Promise<string[]> => problemsOf(['sources: [{type: synthetic}]', 'stages: [{type: sessionizer}]', `sinks: [${sink}]`].join('\n'), { registry });
  // Written out, it is the user's choice, and this pipeline has no model to make predictions.
  assert.deepEqual(await problems('{type: scores, kinds: [prediction]}'), [
    "P:3:32: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'prediction', so this sink would get none; they emit: event, session",
  ]);
  // Left out, the sink is handed nothing, rightly (a backtest's report sink in a pipeline without models).
  assert.deepEqual(await problems('{type: scores}'), []);
});

test("a plugin's kinds are checked as it registers: for sinks only, a non-empty list of record kinds", () => {
  const registry = new PluginRegistry();
  const sink = (kinds: unknown) => defineSink({ name: 's', summary: 's', kinds: kinds as string[], config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) });
  const because = (kinds: unknown): string => {
    try {
      registry.register(sink(kinds), 'm.js');
    } catch (error) {
      return (error as Error).message;
    }
    return '';
  };
  const list = "sink 's' is not a valid plugin: kinds must be a non-empty list of record kinds, e.g. ['prediction'] (not 'watermark': watermarks reach no sink); leave it out to take every kind";
  assert.equal(because([]), `m.js: ${list}`);
  assert.equal(because('prediction'), `m.js: ${list}`);
  assert.equal(because(['watermark']), `m.js: ${list}`);
  const operator = { ...sink(['prediction']), kind: 'operator', name: 'o' } as unknown as Parameters<PluginRegistry['register']>[0];
  assert.throws(() => registry.register(operator, 'm.js'), /^TributaryError: m\.js: operator 'o' is not a valid plugin: kinds is for sinks only/);
  assert.equal(because(['prediction']), '');
});

/**
 * Why `registry` refuses an operator (or a sink) spec with `declared` added to it, less the message's
 * lead; '' when it registers.
 */
function registrationProblem(registry: PluginRegistry): (kind: 'operator' | 'sink', declared: Record<string, unknown>) => string {
  return (kind, declared) => {
    const spec = { ...defineOperator({ name: `o${Math.random()}`, summary: 'o', config: { type: 'object' }, create: () => ({ apply: (input) => input }) }), kind, ...declared };
    try {
      registry.register(spec as unknown as Parameters<PluginRegistry['register']>[0], 'm.js');
    } catch (error) {
      return (error as Error).message.replace(/^m\.js: \w+ 'o[\d.]+' is not a valid plugin: /, '');
    }
    return '';
  };
}

test("a plugin's emits and sideOutputs are checked as it registers: lists of names, for sources and operators, side outputs with emits", () => {
  const because = registrationProblem(new PluginRegistry());
  assert.equal(because('operator', { emits: 'session' }), "emits must be a list of record kinds, e.g. ['session'] ([] for none of its own; not 'watermark'); leave it out if the plugin may emit any");
  assert.equal(because('operator', { emits: ['watermark'] }), "emits must be a list of record kinds, e.g. ['session'] ([] for none of its own; not 'watermark'); leave it out if the plugin may emit any");
  assert.equal(because('operator', { sideOutputs: ['late'] }), 'sideOutputs needs emits beside it: declaring emits declares everything the plugin produces (emits: [] for no kind of its own)');
  assert.equal(because('operator', { emits: [], sideOutputs: 'late' }), "sideOutputs must be a list of side output names, e.g. ['late']");
  assert.equal(because('sink', { emits: ['x'] }), 'emits and sideOutputs are for sources and operators only (what they produce); a sink says what it takes with kinds');
  assert.equal(because('operator', { emits: ['session'], sideOutputs: ['late'] }), '');
  assert.equal(because('operator', { emits: [] }), '');
  // What it makes only under some config: conditions on declared names, each with its words and its test.
  const report = { condition: 'report: true', test: () => true };
  assert.equal(because('operator', { emits: ['prediction'], emitsOnlyWith: { model_metrics: report } }), "emitsOnlyWith names 'model_metrics', which is not in emits: list it there too (emits is all the plugin can make)");
  assert.equal(because('operator', { emits: [], sideOutputs: ['late'], sideOutputsOnlyWith: { lat: report } }), "sideOutputsOnlyWith names 'lat', which is not in sideOutputs: list it there too (sideOutputs is all the plugin can make)");
  assert.equal(
    because('operator', { emits: ['model_metrics'], emitsOnlyWith: { model_metrics: { condition: 'report: true' } } }),
    "emitsOnlyWith.model_metrics must be { condition: 'the option that makes it, e.g. report: true', test: (config) => boolean }",
  );
  assert.equal(because('operator', { emits: ['model_metrics'], emitsOnlyWith: ['model_metrics'] }), 'emitsOnlyWith must map names of emits to { condition, test }');
  assert.equal(because('operator', { emits: ['prediction', 'model_metrics'], emitsOnlyWith: { model_metrics: report } }), '');
});

test("a plugin whose config declares an entry field the runtime reads (type, label, watermark, kinds, outputs) is refused as it registers, naming the field", () => {
  const registry = new PluginRegistry();
  const withOption = (kind: 'source' | 'operator' | 'sink', field: string): string => {
    const config = { type: 'object', properties: { [field]: { type: 'string', description: 'An option of its own.' } } };
    const spec = { ...defineOperator({ name: `p${Math.random()}`, summary: 'p', config: { type: 'object' }, create: () => ({ apply: (input) => input }) }), kind, config };
    try {
      registry.register(spec as unknown as Parameters<PluginRegistry['register']>[0], 'm.js');
    } catch (error) {
      return (error as Error).message.replace(/^m\.js: \w+ 'p[\d.]+' is not a valid plugin: /, '');
    }
    return '';
  };
  // An operator's `kinds` option (which record kinds to act on) would pass validation and reach its factory as undefined.
  assert.equal(
    withOption('operator', 'kinds'),
    "config declares 'kinds', an entry field the runtime reads itself (type, label, watermark, kinds, outputs) and never hands to the factory: give the option another name",
  );
  for (const field of ['type', 'label', 'watermark', 'outputs']) assert.match(withOption('sink', field), new RegExp(`^config declares '${field}'`));
  assert.equal(withOption('source', 'path'), '');
  // Before, a `type` of its own replaced the runtime's, and every entry of the plugin was refused as the user's mistake.
  const typed = defineSink<{ type: number }>({ name: 'typed', summary: 's', config: { type: 'object', properties: { type: { type: 'number', description: 'n' } } }, create: () => ({ write: () => undefined, close: async () => undefined }) });
  assert.throws(() => registry.register(typed, 'typed.js'), /typed\.js: sink 'typed' is not a valid plugin: config declares 'type'/);
});

test("a sink's kinds naming what a stage makes only under config it does not have are config errors at the kind, with the stage and the option; with the option they validate", async () => {
  const pipeline = (intent: string, churn: string, sink: string): string =>
    [
      'sources: [{type: synthetic}]', //                            1
      'stages:', //                                                 2
      '  - {type: sessionizer}', //                                 3
      `  - {type: intent-model${intent}}`, //                       4
      `  - {type: churn-model, horizon: 1d${churn}}`, //            5
      'sinks:', //                                                  6
      `  - {type: stdout, kinds: ${sink}}`, //                      7
    ].join('\n');
  const reportOff = await problemsOf(pipeline('', '', '[prediction, model_metrics]'));
  assert.deepEqual(reportOff, [
    "P:7:40: $.sinks[0].kinds[1]: no source or stage of this pipeline emits kind 'model_metrics' as configured: the intent-model at stages[1] emits it only with report: true; " +
      'the churn-model at stages[2] emits it only with report: true; so this sink would get none; they emit: event, session, prediction, drift',
  ]);
  // One model reporting is enough: the sink gets its records.
  assert.deepEqual(await problemsOf(pipeline(', report: true', '', '[prediction, model_metrics]')), []);
  assert.deepEqual(await problemsOf(pipeline('', ', report: true', '[model_metrics]')), []);
  // drift: only with a detector; the default one (page-hinkley) is one.
  assert.deepEqual(await problemsOf(pipeline(', drift: {detector: adwin}', ', drift: {detector: none}', '[drift]')), []);
  assert.deepEqual(await problemsOf(pipeline(', drift: {detector: none}', ', drift: {detector: none}', '[drift]')), [
    "P:7:28: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'drift' as configured: the intent-model at stages[1] emits it only with a drift detector: drift.detector not 'none'; " +
      "the churn-model at stages[2] emits it only with a drift detector: drift.detector not 'none'; so this sink would get none; they emit: event, session, prediction",
  ]);
  // A typo of a kind that only another config makes: the nearest name, and what makes it.
  assert.deepEqual(await problemsOf(pipeline('', ', report: false', '[model_metric]')), [
    "P:7:28: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'model_metric' (did you mean 'model_metrics'? the intent-model at stages[1] emits it only with report: true; " +
      'the churn-model at stages[2] emits it only with report: true), so this sink would get none; they emit: event, session, prediction, drift',
  ]);
  // The runner checks again what it is handed: a report switched off in code after loading is found there too.
  const file = join(dir, 'kinds-report-runner.yaml');
  writeFileSync(file, pipeline(', report: true', '', '[model_metrics]'));
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  assert.deepEqual(loadedPipelineProblems(loaded), []);
  loaded.stages[1]!.entry.report = false;
  assert.deepEqual(
    loadedPipelineProblems(loaded).map((p) => formatProblem({ ...p, file: 'P' })),
    [
      "P:7:28: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'model_metrics' as configured: the intent-model at stages[1] emits it only with report: true; " +
        'the churn-model at stages[2] emits it only with report: true; so this sink would get none; they emit: event, session, prediction, drift',
    ],
  );
  // Loading for a backtest (every stage that can report switched on first), the same file is valid.
  writeFileSync(file, pipeline('', '', '[model_metrics]'));
  const adjusted = await loadPipeline(file, {
    registry: await builtinRegistry(),
    env: {},
    adjustStage: (entry, plugin) => {
      if ('report' in ((plugin.config.properties ?? {}) as object)) entry.report = true;
    },
  });
  assert.deepEqual(adjusted.stages.map((stage) => stage.entry.report), [undefined, true, true]);
});

test('YAML syntax errors carry their position; only the first is listed, the rest counted', async () => {
  const problems = await problemsOf('sources:\n  - type: synthetic\n   users: [1\n');
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^P:\d+:\d+: \$: /);
  const cascade = await problemsOf('stages:\n  - type: m\n    checkpoint: { dir: ${X:-/a}/b }\nsinks:\n  - type: stdout\n');
  assert.equal(cascade.length, 1);
  assert.match(cascade[0]!, /^P:3:\d+: \$: .*\(and \d+ more YAML errors after it, which often follow from this one\)$/);
});

test('an unquoted ${VAR} in a flow collection says to quote it (YAML said only "Unexpected flow-map-start at node end" or "Missing , or :")', async () => {
  for (const [text, line] of [
    ['sources: [{type: file, path: ${CLICKS_FILE}}]\nsinks: [{type: stdout}]\n', 1],
    ['sources: [{type: synthetic}]\nsinks: [{type: stdout}]\ndead_letter: {type: file, path: ${DLQ}/dead.jsonl}\n', 3],
    ['sources: [{type: synthetic}]\nsinks: [{type: stdout, kinds: [${KIND}]}]\n', 2],
  ] as const) {
    const problems = await problemsOf(text);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, new RegExp(`^P:${line}:\\d+: \\$: .*: a \`\\$\\{VAR\\}\` inside \`\\[\\.\\.\\.\\]\` or \`\\{\\.\\.\\.\\}\` is read by YAML as the start of a map; quote the value`), problems[0]);
  }
  // Quoted, it is a variable as any other.
  assert.match((await problemsOf('sources: [{type: file, path: "${CLICKS_FILE}"}]\nsinks: [{type: stdout}]\n'))[0]!, /CLICKS_FILE is not set/);
});

test('a key given twice in a map is named by its path and both its lines', async () => {
  const problems = await problemsOf('sources:\n  - type: synthetic\n    events: 10\n    users: 5\n    events: 20\nsinks: [{type: stdout}]\n');
  assert.deepEqual(problems, ["P:5:5: $.sources[0].events: 'events' is given twice in this map (first at line 3): keep one"]);
});

test("a plugin type like no known one says how a plugin of one's own is loaded", async () => {
  const problems = await problemsOf('sources: [{type: synthetic}]\nstages: [{type: price-ratio}]\nsinks: [{type: stdout}]\n');
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /^P:2:17: \$\.stages\[0\]\.type: unknown operator plugin 'price-ratio'; known operator plugins: .*sessionizer.*; a plugin of your own: name its module in the pipeline's `plugins:` list$/);
});

test('an empty registry lists no known plugins instead of failing', async () => {
  const file = join(dir, 'empty.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  await assert.rejects(loadPipeline(file, { registry: new PluginRegistry() }), /known source plugins: \(none\)/);
});

test('scale_out: a per-user stage after a global one, or sources that are not partitioned, are located errors', async () => {
  const problems = await problemsOf(
    [
      'sources:', //                                  1
      '  - { type: synthetic }', //                   2
      '  - { type: synthetic }', //                   3
      'stages:', //                                   4
      '  - { type: sessionizer }', //                 5
      "  - { type: standardize, features: ['s_*'] }", // 6  global
      '  - { type: user-features }', //               7  per user, after a global stage
      'sinks: [{ type: stdout }]', //                 8
      'scale_out: { state_dir: shared }', //          9
    ].join('\n'),
  );
  assert.deepEqual(problems, [
    "P:2:5: $.sources[0]: scale_out needs a partitioned source (kafka); 'synthetic' is not: with several sources, partition p of each goes to one task p, so every source must be one (co-partitioned topics)",
    "P:3:5: $.sources[1]: scale_out needs a partitioned source (kafka); 'synthetic' is not: with several sources, partition p of each goes to one task p, so every source must be one (co-partitioned topics)",
    "P:7:13: $.stages[2].type: 'user-features' keeps per-user state but follows 'standardize' (global state); with scale_out, per-user stages must come before global ones",
  ]);
});

test('a problem with a whole block map (or list) is said at its key, not at its first inner key on the next line (was: label_buffer\'s problem at max_size); so is one at a key the block map lacks (a default)', async () => {
  const yaml = (timeout: string): string =>
    [
      'sources: [{type: synthetic}]', // 1
      'stages:', //                      2
      '  - type: sessionizer', //        3
      '    gap: 2d', //                  4
      '  - type: session-features', //   5
      '  - type: intent-model', //       6
      '    label_buffer:', //            7
      '      max_size: 1000', //         8
      timeout, //                        9
      'sinks: [{type: stdout}]', //      10
    ].join('\n');
  const starts = (problems: string[], start: string): void => assert.deepEqual(problems.map((problem) => problem.slice(0, start.length)), [start]);
  // The timeout written: at its value.
  starts(await problemsOf(yaml('      timeout: 10m')), 'P:9:16: $.stages[2].label_buffer.timeout: "10m" is not longer');
  // Its default (1d, under the 2d gap): at `label_buffer:`, the nearest the file holds (was: at max_size, 8:7).
  starts(await problemsOf(yaml('      # timeout: 1d by default')), 'P:7:5: $.stages[2].label_buffer.timeout: "1d" (the default) is not longer');
  // A flow map is said where it starts, at its value, as before.
  const flow = await problemsOf('sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer, gap: 2d}\n  - {type: session-features}\n  - {type: intent-model, label_buffer: {max_size: 10}}\nsinks: [{type: stdout}]\n');
  assert.match(flow[0]!, /^P:5:40: \$\.stages\[2\]\.label_buffer\.timeout: /);
});

test("a document field's position: the loaded pipeline locates `name`, `scale_out` and their fields (a default's at the document's start), and the runner's checks say a section's problem there (was 0:0)", async () => {
  const file = join(dir, 'document-fields.yaml');
  writeFileSync(
    file,
    [
      '# partitions', //                                          1
      'name: parts', //                                           2
      'sources:', //                                              3
      "  - { type: kafka, brokers: 'b:9092', topics: [t], group: g }", // 4
      'sinks: [{ type: stdout }]', //                             5
      'scale_out:', //                                            6
      '  state_dir: shared', //                                   7
      'checkpoint: { dir: cp }', //                               8
    ].join('\n'),
  );
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  assert.deepEqual(loaded.locate?.('name'), { path: '$.name', line: 2, column: 7 });
  assert.deepEqual(loaded.locate?.('scale_out.state_dir'), { path: '$.scale_out.state_dir', line: 7, column: 14 });
  assert.deepEqual(loaded.locate?.('checkpoint.dir'), { path: '$.checkpoint.dir', line: 8, column: 20 });
  assert.deepEqual(loaded.locate?.('settings.max_in_flight'), { path: '$.settings.max_in_flight', line: 2, column: 1 }, 'a default: the document');
  // A source added after loading: the runner checks it as loadPipeline does. A second Kafka source of the group
  // (co-partitioned topics) is one scale_out takes (was: 'scale-out needs exactly one (partitioned) source', at 6:1).
  const first = loaded.sources[0]!;
  loaded.sources.push({ ...first, entry: { ...first.entry, topics: ['u'] }, path: '$.sources[1]' });
  assert.deepEqual(loadedPipelineProblems(loaded).map((p) => formatProblem({ ...p, file: 'P' })), []);
});

test('plugins: an npm package beside the pipeline is loaded by name, also when its exports offer only an `import` (or only a `require`) entry', async () => {
  const project = mkdtempSync(join(dir, 'project-'));
  const core = JSON.stringify(new URL('../index.js', import.meta.url).href);
  for (const [name, manifest] of [
    ['plug-esm', { name: 'plug-esm', type: 'module', exports: { '.': { import: './index.js' } } }],
    ['plug-main', { name: 'plug-main', type: 'module', main: 'index.js' }],
  ] as const) {
    const folder = join(project, 'node_modules', name);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'package.json'), JSON.stringify(manifest));
    writeFileSync(
      join(folder, 'index.js'),
      `import { defineSink } from ${core};\nexport default defineSink({ name: '${name}', summary: 'test', config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) });\n`,
    );
  }
  // A CommonJS package whose exports offer only `require` (a plugin object made by hand: CommonJS cannot require the ESM core).
  const cjs = join(project, 'node_modules', 'plug-cjs');
  mkdirSync(cjs, { recursive: true });
  writeFileSync(join(cjs, 'package.json'), JSON.stringify({ name: 'plug-cjs', exports: { '.': { require: './index.cjs' } } }));
  writeFileSync(
    join(cjs, 'index.cjs'),
    "module.exports = { [Symbol.for('tributary.plugin')]: true, kind: 'sink', name: 'plug-cjs', summary: 'test', config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) };\n",
  );
  const file = join(project, 'pipeline.yaml');
  writeFileSync(file, 'plugins: [plug-esm, plug-main, plug-cjs]\nsources: [{type: synthetic}]\nsinks: [{type: plug-esm}, {type: plug-main}, {type: plug-cjs}]\n');
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  assert.deepEqual(loaded.sinks.map((sink) => sink.plugin.name), ['plug-esm', 'plug-main', 'plug-cjs']);
  writeFileSync(file, 'plugins: [plug-missing]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const missing = await loadPipeline(file, { registry: await builtinRegistry(), env: {} }).then(
    () => [],
    (error: ConfigError) => error.problems.map((p) => formatProblem({ ...p, file: 'P' })),
  );
  assert.deepEqual(missing, [
    `P:1:11: $.plugins[0]: cannot load plugin module 'plug-missing': no package 'plug-missing' is installed in node_modules of ${project} or a folder above it, nor beside Tributary: npm install it there, or name the plugin's file (./plugin.js, relative to ${project})`,
  ]);
  // A package whose package.json names a file that is not there (not built yet) is not said to be missing.
  mkdirSync(join(project, 'node_modules', 'plug-unbuilt'), { recursive: true });
  writeFileSync(join(project, 'node_modules', 'plug-unbuilt', 'package.json'), JSON.stringify({ name: 'plug-unbuilt', type: 'module', main: 'dist/index.js' }));
  writeFileSync(file, 'plugins: [plug-unbuilt]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const unbuilt = await loadPipeline(file, { registry: await builtinRegistry(), env: {} }).then(
    () => [],
    (error: ConfigError) => error.problems.map((p) => formatProblem({ ...p, file: 'P' })),
  );
  assert.deepEqual(unbuilt, [
    `P:1:11: $.plugins[0]: cannot load plugin module 'plug-unbuilt': the package is at ${join(project, 'node_modules', 'plug-unbuilt')}/, but the file its package.json names (main, or exports' import entry) is not: is it built (npx tsc there)?`,
  ]);
  // The types such a module would have defined are unknown, and said so without sending the user to \`plugins:\` again.
  writeFileSync(file, 'plugins: [plug-missing]\nsources: [{type: synthetic}]\nsinks: [{type: plug-sink}]\n');
  const unknownType = await loadPipeline(file, { registry: await builtinRegistry(), env: {} }).then(
    () => [],
    (error: ConfigError) => error.problems.map((p) => formatProblem({ ...p, file: 'P' })),
  );
  assert.match(unknownType[1] ?? '', /^P:3:16: \$\.sinks\[0\]\.type: unknown sink plugin 'plug-sink'; known sink plugins: [^;]* \(a module in `plugins:` failed to load: see above\)$/);
});

test('a value that fits none of its forms (a duration written out) is one problem that says what is expected', async () => {
  const problems = await problemsOf('sources:\n  - type: synthetic\n    watermark: { max_out_of_orderness: 30 minutes }\nsinks: [{type: stdout}]\n');
  assert.deepEqual(problems, [
    'P:3:40: $.sources[0].watermark.max_out_of_orderness: expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got "30 minutes"',
  ]);
});

test('--set past the end of a list says so instead of leaving holes that read as wrong entries; said by the file and the --set argument, not at FILE:0:0 (no place in the file)', async () => {
  const file = join(dir, 'set-past-end.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nstages: [{type: sessionizer}]\nsinks: [{type: stdout}]\n');
  await assert.rejects(loadPipeline(file, { registry: await builtinRegistry(), env: {}, sets: ['stages[3].gap=1m'] }), (error: TributaryError) => {
    assert.ok(!(error instanceof ConfigError), 'a ConfigError, whose problems need a line and column');
    assert.equal(error.code, 'TRIB_ERR_CONFIG_SET');
    assert.equal(error.message, `${file}: --set 'stages[3].gap=1m': $.stages has 1 entries; index 3 is past its end (1 adds one)`);
    return true;
  });
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nstages: [{type: sessionizer}]\nsinks: [{type: stdout}]\n', { sets: ['stages[1].type=session-features'] }), []);
});

test('--set dead_letter.FIELD where the file names no dead_letter changes the default dead-letter sink (a lazy file sink)', async () => {
  const file = join(dir, 'no-dead-letter.yaml');
  writeFileSync(file, 'name: nodl\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const registry = await builtinRegistry();
  const loaded = await loadPipeline(file, { registry, env: {}, sets: ['dead_letter.path=bt/dead-letters.jsonl'] });
  assert.equal(loaded.deadLetter.plugin.name, 'file');
  assert.deepEqual(loaded.deadLetter.entry, { type: 'file', label: 'dead-letter', path: 'bt/dead-letters.jsonl', lazy: true, append: false, gzip_flush_interval: '5s', lock: true });
  // It is the default sink, moved: logs and metrics name it as they name the default (was `dead-letter-file-0`).
  const unset = await loadPipeline(file, { registry, env: {} });
  assert.equal(loaded.deadLetter.entry.label, unset.deadLetter.entry.label);
  // A field other than the path keeps the default file.
  const lazyOff = await loadPipeline(file, { registry, env: {}, sets: ['dead_letter.lazy=false'] });
  assert.equal(lazyOff.deadLetter.entry.path, join(process.cwd(), 'dead-letters-nodl.jsonl'));
  assert.equal(lazyOff.deadLetter.entry.lazy, false);
  assert.equal(lazyOff.deadLetter.entry.label, 'dead-letter');
  // A label set with it is kept.
  const labelled = await loadPipeline(file, { registry, env: {}, sets: ['dead_letter.path=bt/dl.jsonl', 'dead_letter.label=rejects'] });
  assert.equal(labelled.deadLetter.entry.label, 'rejects');
  // Naming the type declares another sink: the default's fields are not put in.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets: ['dead_letter.type=stdout'] }), []);
});

test("a source reading the default dead-letter file (the pipeline names no dead_letter: dead-letters-NAME.jsonl in the working directory) is a config error at the source's field, by validate and the runner's check, as a sink writing an input is (was: not checked, the run replaced its input at the first reject)", async () => {
  const file = join(dir, 'reads-dead-letters.yaml');
  const deadLetters = join(process.cwd(), 'dead-letters-replay.jsonl');
  writeFileSync(file, `name: replay\nsources:\n  - type: file\n    path: [other.jsonl, ${deadLetters}]\nsinks: [{type: stdout}]\n`);
  const message = `${deadLetters} is the default dead-letter file (this pipeline names no dead_letter), which the run replaces at its first reject (appends to, resumed from a checkpoint): this source would read the dead letters back as input; add a dead_letter sink writing another file, or read a copy of it`;
  const expected = [`P:4:25: $.sources[0].path[1]: ${message}`];
  assert.deepEqual(await problemsOf(readFileSync(file, 'utf8')), expected);
  // The runner's check of a loaded pipeline (a pipeline composed in code, a source changed after loading) says it too.
  writeFileSync(file, `name: replay\nsources:\n  - type: file\n    path: [other.jsonl, elsewhere.jsonl]\nsinks: [{type: stdout}]\n`);
  const registry = await builtinRegistry();
  const loaded = await loadPipeline(file, { registry, env: {} });
  assert.deepEqual(loadedPipelineProblems(loaded), []);
  loaded.sources[0]!.entry.path = ['other.jsonl', deadLetters];
  assert.deepEqual(
    loadedPipelineProblems(loaded).map((problem) => formatProblem({ ...problem, file: 'P' })),
    expected,
  );
  // A dead_letter the file names is checked as any sink (at its own field); the default's name follows the pipeline's.
  assert.deepEqual(await problemsOf(`name: other\nsources: [{type: file, path: ${deadLetters}}]\nsinks: [{type: stdout}]\n`), []);
  assert.deepEqual(await problemsOf(`name: replay\nsources: [{type: file, path: ${deadLetters}}]\nsinks: [{type: stdout}]\ndead_letter: {type: file, path: ${join(dir, 'dl.jsonl')}}\n`), []);
});

test('a section --set created that lacks a required field says the file lacks it and which --set made it, by the file alone (was: at 1:1, the document, which holds no such section)', async () => {
  const problems = await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets: ['checkpoint.interval=10s'] });
  assert.deepEqual(problems, [
    "P: $.checkpoint: missing required field 'dir' ($.checkpoint is not in the file: --set 'checkpoint.interval=10s' created it; set its other required fields too, or write the section in the file)",
  ]);
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets: ['checkpoint.interval=10s', 'checkpoint.dir=cp'] }), []);
  // An entry added to a list by --set, the same.
  const added = await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets: ['sinks[1].kinds=[drift]'] });
  assert.equal(added.length, 1);
  assert.match(added[0]!, /\$\.sinks\[1\].*--set 'sinks\[1\]\.kinds=\[drift\]' created it/);
});

test('a section --set created says to set its other required fields only with a missing required field, not with other problems said at it or naming it (was: with every one)', async () => {
  const kafka = await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets: ['sources[1].type=kafka', 'sources[1].group=g', 'sources[1].topics=[t]'] });
  assert.deepEqual(kafka, ["P: $.sources[1]: missing required field 'brokers' ($.sources[1] is not in the file: --set 'sources[1].type=kafka' created it; set its other required fields too, or write the section in the file)"]);
  // A label clash naming an entry a --set created, and what the run says later at it (a factory's refusal): the note alone.
  const yaml = 'sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer, label: stage-user-features-1}\nsinks: [{type: stdout}]\n';
  const clash = await problemsOf(yaml, { sets: ['stages[1].type=user-features'] });
  assert.equal(clash.length, 1);
  assert.ok(clash[0]!.startsWith(`P:3:32: $.stages[0].label: label 'stage-user-features-1' is also the default label of $.stages[1] ($.stages[1] is not in the file: --set 'stages[1].type=user-features' created it): labels key`), clash[0]);
  const file = join(dir, 'set-created.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {}, sets: ['stages[0].type=sessionizer'] });
  assert.equal(formatProblem({ ...entryFieldProblem(file, loaded.stages[0]!, undefined, 'refused'), file: 'P' }), "P: $.stages[0]: refused ($.stages is not in the file: --set 'stages[0].type=sessionizer' created it)");
});

test("the runner's re-check says a missing required field in a section --set created as loadPipeline does, with the advice (was: the note without it)", async () => {
  const sets = ['sources[1].type=kafka', 'sources[1].group=g', 'sources[1].topics=[t]'];
  const expected = ["P: $.sources[1]: missing required field 'brokers' ($.sources[1] is not in the file: --set 'sources[1].type=kafka' created it; set its other required fields too, or write the section in the file)"];
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets }), expected);
  const file = join(dir, 'set-created-recheck.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {}, sets: [...sets, 'sources[1].brokers=[b:9092]'] });
  assert.deepEqual(loadedPipelineProblems(loaded), []);
  // A source changed after loading (as code composing a pipeline may): the runner finds the field missing.
  delete loaded.sources[1]!.entry.brokers;
  assert.deepEqual(loadedPipelineProblems(loaded).map((problem) => formatProblem({ ...problem, file: 'P' })), expected);
});

test("a problem in a value a --set gave is said by the file and path with the --set, not at the place of the file's value it replaced, nor at 1:1 for a field the file lacks (was: P:3:12 showing `users: 5`; P:1:1 for the default dead-letter sink's field)", async () => {
  const yaml = 'sources:\n  - type: synthetic\n    users: 5\nsinks: [{type: stdout}]\n';
  assert.deepEqual(await problemsOf(yaml), []);
  assert.deepEqual(await problemsOf(yaml, { sets: ['sources[0].users=0'] }), ["P: $.sources[0].users: must be >= 1, got 0 (from --set 'sources[0].users=0', not from the file)"]);
  // A field the entry lacks, added by --set; the innermost --set where two set a section and a field in it.
  assert.deepEqual(await problemsOf(yaml, { sets: ['sources[0].seed=x'] }), ["P: $.sources[0].seed: must be integer, got \"x\" (from --set 'sources[0].seed=x', not from the file)"]);
  assert.deepEqual(await problemsOf(yaml, { sets: ['settings={max_in_flight: 2}', 'settings.max_in_flight=0'] }), ["P: $.settings.max_in_flight: must be >= 1, got 0 (from --set 'settings.max_in_flight=0', not from the file)"]);
  // The default dead-letter sink a --set changes (the file names no dead_letter).
  assert.deepEqual(await problemsOf(yaml, { sets: ['dead_letter.lazy=maybe'] }), ["P: $.dead_letter.lazy: must be boolean, got \"maybe\" (from --set 'dead_letter.lazy=maybe', not from the file)"]);
  // A value a --set replaced that came from the environment: the --set's, not the variable's.
  assert.deepEqual(await problemsOf(yaml.replace('5', '${USERS}'), { env: { USERS: '5' }, sets: ['sources[0].users=0'] }), ["P: $.sources[0].users: must be >= 1, got 0 (from --set 'sources[0].users=0', not from the file)"]);
  // A field a --set added that the plugin does not know.
  assert.deepEqual(await problemsOf(yaml, { sets: ['sources[0].bogus=1'] }), ["P: $.sources[0].bogus: unknown field 'bogus' (from --set 'sources[0].bogus=1', not from the file)"]);
  // What the run and validate say later at a field (a factory's refusal, an input file not there) is said the same way.
  const file = join(dir, 'set-later.yaml');
  writeFileSync(file, yaml);
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {}, sets: ['sources[0].seed=3'] });
  assert.equal(formatProblem({ ...entryFieldProblem(file, loaded.sources[0]!, 'seed', 'refused'), file: 'P' }), "P: $.sources[0].seed: refused (from --set 'sources[0].seed=3', not from the file)");
  assert.equal(formatProblem({ ...entryFieldProblem(file, loaded.sources[0]!, 'users', 'refused'), file: 'P' }), 'P:3:12: $.sources[0].users: refused');
});

test("an entry a --set gave or created has no position in the file (was: the nearest enclosing line, which messages naming it printed), and a message naming it says the --set", async () => {
  const file = join(dir, 'set-entries.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer, label: s}\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {}, sets: ['stages[1].type=user-features', 'sinks[0]={type: stdout}'] });
  assert.deepEqual([loaded.stages[0]!.line, loaded.stages[1]!.line, loaded.sinks[0]!.line], [3, undefined, undefined]);
  assert.equal(placeText('P', loaded.stages[1]!.locate?.('')), "P ($.stages[1] is not in the file: --set 'stages[1].type=user-features' created it)");
  assert.equal(placeText('P', loaded.sinks[0]!.locate?.('')), "P (from --set 'sinks[0]={type: stdout}', not from the file)");
  assert.equal(placeText('P', loaded.stages[0]!.locate?.('')), 'P:3:5');
  // With details, for a message's own parentheses: the origin last, not in parentheses of its own (was `(P (from --set ...), $.stages[1], ...)`).
  assert.equal(placeText('P', loaded.stages[0]!.locate?.(''), ['$.stages[0]', 'sessionizer']), 'P:3:5, $.stages[0], sessionizer');
  assert.equal(placeText('P', loaded.sinks[0]!.locate?.(''), ['$.sinks[0]', 'stdout']), "P, $.sinks[0], stdout; from --set 'sinks[0]={type: stdout}', not from the file");
  assert.equal(placeText('P', loaded.stages[1]!.locate?.(''), ['$.stages[1]', 'user-features']), "P, $.stages[1], user-features; $.stages[1] is not in the file: --set 'stages[1].type=user-features' created it");
  // A label clash naming an entry a --set gave: said by the --set, not `(line 3)` of the entry it replaced.
  const why = "labels key each stage's state and each source's position in checkpoints and name each instance's metrics and logs, so every entry needs its own";
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer}\n  - {type: user-features, label: s}\nsinks: [{type: stdout}]\n', { sets: ['stages[0]={type: sessionizer, label: s}'] }), [
    `P:4:34: $.stages[1].label: label 's' is also the label of $.stages[0] (from --set 'stages[0]={type: sessionizer, label: s}', not from the file): ${why}`,
  ]);
});

test('a kafka source needs exactly one of topics and pattern, which validate says at the entry', async () => {
  const yaml = (fields: string): string => `sources:\n  - {type: kafka, brokers: "b:9092", group: g${fields}}\nsinks: [{type: stdout}]\n`;
  for (const fields of [', topics: [a], pattern: b', '']) assert.deepEqual(await problemsOf(yaml(fields)), ['P:2:5: $.sources[0]: expected exactly one of `topics` and `pattern`.']);
  assert.deepEqual(await problemsOf(yaml(', pattern: "^clicks-.*"')), []);
});

test("a plugin's checks across entries (checkPipeline) and a duration's least value (minDuration) are config errors at their field", async () => {
  // `paired` (tests only): a sink that needs a source of type `synthetic` beside it, and waits at least 1s.
  const paired = defineSink<{ wait: string | number; partner: boolean }>({
    name: 'paired',
    summary: 'Needs a synthetic source (tests only).',
    config: {
      type: 'object',
      additionalProperties: false,
      properties: { wait: { $ref: 'tributary:duration', default: '2s', minDuration: '1s' }, partner: { type: 'boolean', default: true } },
    },
    checkPipeline: (config, pipeline) =>
      config.partner && !pipeline.sources.some((source) => source.type === 'synthetic') ? [{ field: 'partner', message: `needs a synthetic source; got ${pipeline.sources.map((s) => s.type).join(', ')}` }] : [],
    create: () => ({ write: () => undefined, close: async () => undefined }),
  });
  const registry = await builtinRegistry();
  registry.register(paired, 'test');
  const problems = async (yaml: string): Promise<string[]> => {
    const file = join(dir, `paired${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    try {
      await loadPipeline(file, { registry, env: {} });
      return [];
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((p) => formatProblem({ ...p, file: 'P' }));
    }
  };
  assert.deepEqual(await problems('sources: [{type: stdin}]\nsinks:\n  - type: paired\n    partner: true\n'), ['P:4:14: $.sinks[0].partner: needs a synthetic source; got stdin']);
  // A field left to its default is pointed at by its entry.
  assert.deepEqual(await problems('sources: [{type: stdin}]\nsinks:\n  - type: paired\n'), ['P:3:5: $.sinks[0].partner: needs a synthetic source; got stdin']);
  assert.deepEqual(await problems('sources: [{type: synthetic}]\nsinks: [{type: paired}]\n'), []);
  assert.deepEqual(await problems('sources: [{type: synthetic}]\nsinks: [{type: paired, wait: 999}]\n'), ['P:2:30: $.sinks[0].wait: must be at least 1s, got 999']);
  assert.deepEqual(await problems('sources: [{type: synthetic}]\nsinks: [{type: paired, wait: 500ms}]\n'), ['P:2:30: $.sinks[0].wait: must be at least 1s, got "500ms"']);
  assert.deepEqual(await problems('sources: [{type: synthetic}]\nsinks: [{type: paired, wait: 1s}]\n'), []);
  // Not a duration at all: the duration type's error alone.
  assert.deepEqual(await problems('sources: [{type: synthetic}]\nsinks: [{type: paired, wait: soon}]\n'), [
    'P:2:30: $.sinks[0].wait: expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got "soon"',
  ]);
});

test("a plugin's checkPipeline that throws (a library it needs does not load) is a config error at its entry, not at the document's 0:0", async () => {
  const unloadable = defineSink<Record<string, never>>({
    name: 'unloadable',
    summary: 'Its check needs a library that does not load (tests only).',
    config: { type: 'object', additionalProperties: false, properties: {} },
    checkPipeline: () => {
      throw new Error('Could not locate the bindings file');
    },
    create: () => ({ write: () => undefined, close: async () => undefined }),
  });
  const registry = await builtinRegistry();
  registry.register(unloadable, 'test');
  const file = join(dir, 'unloadable.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nsinks:\n  - type: unloadable\n');
  const error = await loadPipeline(file, { registry, env: {} }).then(() => undefined, (caught: unknown) => caught);
  assert.ok(error instanceof ConfigError, String(error));
  assert.deepEqual(error.problems.map((p) => formatProblem({ ...p, file: 'P' })), ["P:3:5: $.sinks[0]: sink 'unloadable': its checkPipeline(config, pipeline, self) threw: Could not locate the bindings file"]);
});

test('a duration that sets a timer is at most 24d (Node fires a longer timer after 1 ms: a checkpoint every ms, an instant shutdown timeout), said at its field; durations that are no timer\'s are not bounded', async () => {
  const yaml = (lines: string): string => `sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n${lines}`;
  assert.deepEqual(
    await problemsOf(yaml('settings:\n  shutdown_timeout: 30d\n  commit_interval: 2147483648\n  restart: {backoff: 25d, max_backoff: 4w, reset_after: 30d}\ncheckpoint: {dir: c, interval: 25d, min_pause: 25d}\n')),
    [
      'P:4:21: $.settings.shutdown_timeout: must be at most 24d, got "30d"',
      'P:5:20: $.settings.commit_interval: must be at most 24d, got 2147483648',
      'P:6:22: $.settings.restart.backoff: must be at most 24d, got "25d"',
      'P:6:40: $.settings.restart.max_backoff: must be at most 24d, got "4w"',
      'P:7:32: $.checkpoint.interval: must be at most 24d, got "25d"',
      'P:7:48: $.checkpoint.min_pause: must be at most 24d, got "25d"',
    ],
  );
  assert.deepEqual(await problemsOf(yaml('settings:\n  shutdown_timeout: 24d\n  restart: {max_backoff: 24d, reset_after: 30d}\ncheckpoint: {dir: c, interval: 24d}\n')), []);
  // Plugins' timers too: a model's batch delay (its interval), a Kafka source's consume wait, a producer's linger (librdkafka's own bound, 15 min).
  assert.deepEqual(
    await problemsOf(
      'sources: [{type: kafka, brokers: [b], topics: [t], group: g, poll_timeout: 25d}]\nstages: [{type: intent-model, batch: {max_delay: 30d}}]\nsinks: [{type: kafka, brokers: [b], topic: o, linger: 16m}]\n',
    ),
    [
      'P:1:76: $.sources[0].poll_timeout: must be at most 24d, got "25d"',
      'P:2:50: $.stages[0].batch.max_delay: must be at most 24d, got "30d"',
      'P:3:55: $.sinks[0].linger: must be at most 15m, got "16m"',
    ],
  );
});

test('model config mistakes are located at their field: an unknown kind, no hidden layer, a learning rate not above 0, an adwin delta outside (0, 1)', async () => {
  const problems = await problemsOf(
    [
      'name: models', //                            1
      'sources: [{type: synthetic}]', //            2
      'stages:', //                                 3
      '  - type: intent-model', //                  4
      '    model: {kind: forest}', //               5
      '  - type: intent-model', //                  6
      '    model: {kind: mlp, hidden: []}', //      7
      '    optimizer: {learning_rate: 0}', //       8
      '  - type: churn-model', //                   9
      '    optimizer: {learning_rate: -0.1}', //    10
      '    drift: {detector: adwin, delta: 2}', //  11
      '  - type: churn-model', //                   12
      '    drift: {delta: 2}', //                   13 page-hinkley: a tolerated rise, any size
      'sinks: [{type: stdout}]', //                 14
    ].join('\n'),
  );
  assert.deepEqual(problems, [
    'P:5:19: $.stages[0].model.kind: must be one of: "logistic", "mlp", "gru", got "forest"',
    'P:7:32: $.stages[1].model.hidden: must NOT have fewer than 1 items',
    'P:8:32: $.stages[1].optimizer.learning_rate: must be > 0, got 0',
    'P:10:32: $.stages[2].optimizer.learning_rate: must be > 0, got -0.1',
    'P:11:37: $.stages[2].drift.delta: must be < 1, got 2',
  ]);
});

test('a value outside a list or not of its format is quoted in its problem, and a misspelt choice gets the nearest one', async () => {
  const problems = await problemsOf(
    [
      'name: choices', //                                1
      'sources: [{type: synthetic, start: yesterday, clock: Wall}]', // 2
      'stages:', //                                      3
      '  - type: intent-model', //                       4
      '    model: {kind: logistc}', //                   5
      'sinks: [{type: stdout}]', //                      6
    ].join('\n'),
  );
  assert.deepEqual(problems, [
    'P:2:36: $.sources[0].start: expected a date and time with its UTC offset (RFC 3339), such as 2020-01-01T00:00:00Z, got "yesterday"',
    'P:2:54: $.sources[0].clock: must be one of: "simulated", "wall", got "Wall" (did you mean \'wall\'?)',
    'P:5:19: $.stages[0].model.kind: must be one of: "logistic", "mlp", "gru", got "logistc" (did you mean \'logistic\'?)',
  ]);
});

test('model stages: a churn horizon or label timeout of 0 and a model name two stages share are said by validate, at their field', async () => {
  const durations = await problemsOf(
    [
      'sources: [{type: synthetic}]', //                 1
      'stages:', //                                      2
      '  - type: churn-model', //                        3
      '    horizon: 0d', //                              4
      '  - type: intent-model', //                       5
      '    label_buffer: {timeout: 0}', //               6
      '  - type: churn-model', //                        7
      '    horizon: 1ms', //                             8 the least there is: fine
      '    label_buffer: {timeout: 0.5}', //             9 a fraction of a millisecond: not above 0 in event time
      'sinks: [{type: stdout}]', //                      10
    ].join('\n'),
  );
  assert.deepEqual(durations, [
    'P:4:14: $.stages[0].horizon: must be at least 1ms, got "0d"',
    'P:6:29: $.stages[1].label_buffer.timeout: must be at least 1ms, got 0',
    'P:9:29: $.stages[2].label_buffer.timeout: must be at least 1ms, got 0.5',
  ]);
  const names = await problemsOf(
    [
      'sources: [{type: synthetic}]', //                 1
      'stages:', //                                      2
      '  - type: intent-model', //                       3
      '    name: shop', //                               4
      '  - type: churn-model', //                        5
      '    name: shop', //                               6 taken by stages[0]
      '  - type: churn-model', //                        7 named after its label: stage-churn-model-2
      '  - type: intent-model', //                       8
      '    name: stage-churn-model-2', //                9 taken by stages[2]'s label
      '  - type: intent-model', //                       10
      '    label: shop', //                              11 its name, the label, is stages[0]'s
      '  - type: intent-model', //                       12 a distinct name: fine
      '    name: other', //                              13
      'sinks: [{type: stdout}]', //                      14
    ].join('\n'),
  );
  const tail = 'prediction ids, metrics and the saved model are keyed by it, so give each model stage its own';
  // The stages here stand alone (no sessionizer before them, its own config error): their names are what is checked.
  assert.deepEqual(names.filter((problem) => !problem.includes('needs a sessionizer before it')), [
    `P:6:11: $.stages[1].name: 'shop' is already the model name of stage stage-intent-model-0; ${tail}`,
    `P:9:11: $.stages[3].name: 'stage-churn-model-2' is already the model name of stage stage-churn-model-2; ${tail}`,
    `P:10:5: $.stages[4].name: 'shop' is already the model name of stage stage-intent-model-0; ${tail}`,
  ]);
});

test('feature blocks whose names clash (two hash-features with the default prefix, a block twice) are said by validate at the later one, not found by dead-lettering every event', async () => {
  const problems = await problemsOf(
    [
      'sources: [{type: synthetic}]', //                             1
      'stages:', //                                                  2
      '  - {type: sessionizer}', //                                  3
      '  - {type: session-features}', //                             4
      '  - {type: hash-features, fields: [category]}', //            5
      '  - type: hash-features', //                                  6 the default prefix again
      '    fields: [itemId]', //                                     7
      '  - {type: hash-features, fields: [type], prefix: kind}', //  8 a prefix of its own: fine
      '  - {type: user-features}', //                                9
      '  - {type: user-features, horizons: [1h]}', //                10 u_events and the rest again
      '  - {type: session-features}', //                             11
      'sinks: [{type: stdout}]', //                                  12
    ].join('\n'),
  );
  const tail = 'every block appends to one vector per event, so every event would be dead-lettered';
  assert.deepEqual(problems, [
    `P:6:5: $.stages[3].prefix: its feature names (hash_0, hash_1, hash_2 and 29 more) are also those of stage stage-hash-features-2: ${tail}; set a different prefix`,
    `P:10:5: $.stages[6]: its feature names (u_events, u_sessions, u_purchases and 7 more) are also those of stage stage-user-features-5: ${tail}; remove one of them`,
    `P:11:5: $.stages[7]: its feature names (s_events, s_views, s_carts and 25 more) are also those of stage stage-session-features-1: ${tail}; remove one of them`,
  ]);
});

/** `listed-block` (tests only): a feature block of the names its entry lists, declared by featureNames. */
const listedBlock = defineOperator<{ names: string[] }>({
  name: 'listed-block',
  summary: 'Features as listed (tests only).',
  config: { type: 'object', additionalProperties: false, required: ['names'], properties: { names: { type: 'array', items: { type: 'string' } } } },
  featureNames: (config) => config.names,
  create: () => ({ apply: (input) => input }),
});

test('a feature block whose names clash with several earlier blocks is said once, naming each of them with its clashing names (was: the first only), so one pass mends it', async () => {
  const registry = await builtinRegistry();
  registry.register(listedBlock, 'test');
  const problems = await problemsOf(
    [
      'sources: [{type: synthetic}]', //                                      1
      'stages:', //                                                           2
      '  - {type: sessionizer}', //                                           3
      '  - {type: session-features}', //                                      4
      '  - {type: hash-features, fields: [category], prefix: x, width: 4}', // 5
      '  - {type: listed-block, names: [mine, s_events, x_1, s_views]}', //   6 two of each block before
      '  - type: hash-features', //                                           7 the default prefix: fine
      '    fields: [itemId]', //                                              8
      'sinks: [{type: stdout}]', //                                           9
    ].join('\n'),
    { registry },
  );
  const tail = 'every block appends to one vector per event, so every event would be dead-lettered';
  assert.deepEqual(problems, [
    `P:6:5: $.stages[3]: its feature names (s_events, s_views) are also those of stage stage-session-features-1 and (x_1) those of stage stage-hash-features-2: ${tail}; remove one of them`,
  ]);
});

test("a plugin's feature block that declares its names (featureNames) is checked as the built-in blocks are: a clash with session-features or another plugin's block, or a name twice, is said by validate at the later one", async () => {
  // `named-block` (tests only): appends one feature, named by its `name`; `listed-block` the names it lists, at the entry.
  const namedBlock = defineOperator<{ name: string }>({
    name: 'named-block',
    summary: 'One feature (tests only).',
    config: { type: 'object', additionalProperties: false, properties: { name: { type: 'string', default: 'mine' } } },
    featureNames: (config) => [config.name],
    featureNamesField: 'name',
    create: () => ({ apply: (input) => input }),
  });
  const registry = await builtinRegistry();
  registry.register(namedBlock, 'test');
  registry.register(listedBlock, 'test');
  const problems = await problemsOf(
    [
      'sources: [{type: synthetic}]', //                             1
      'stages:', //                                                  2
      '  - {type: sessionizer}', //                                  3
      '  - {type: session-features}', //                             4
      '  - type: named-block', //                                    5
      '    name: s_events', //                                       6 session-features' first name
      '  - {type: named-block}', //                                  7 `mine` by default: fine
      '  - {type: listed-block, names: [theirs, mine]}', //          8 the block before's
      '  - {type: listed-block, names: [x, y, x]}', //               9 a name twice
      '  - {type: hash-features, fields: [category], prefix: x}', // 10 fine
      '  - {type: named-block, name: hash_0}', //                    11 fine: that hash-features' prefix is x
      '  - {type: session-features}', //                             12 a built-in block after a plugin's: said too
      'sinks: [{type: stdout}]', //                                  13
    ].join('\n'),
    { registry },
  );
  const tail = 'every block appends to one vector per event, so every event would be dead-lettered';
  assert.deepEqual(problems, [
    `P:6:11: $.stages[2].name: its feature names (s_events) are also those of stage stage-session-features-1: ${tail}; set a different name`,
    `P:8:5: $.stages[4]: its feature names (mine) are also those of stage stage-named-block-3: ${tail}; remove one of them`,
    `P:9:5: $.stages[5]: its feature names have x twice: whatever reads features by name (a transform, a model) would find one of them only`,
    `P:12:5: $.stages[8]: its feature names (s_events, s_views, s_carts and 25 more) are also those of stage stage-session-features-1 and (s_events) those of stage stage-named-block-2: ${tail}; remove one of them`,
  ]);
});

test("a user's sink declaring the files it writes (outputFiles) and a user's source those it reads (inputFiles) are checked as the built-in file plugins are: a sink writing a source's input is said at the sink's field, naming the source's", async () => {
  const base = mkdtempSync(join(dir, 'files-'));
  const readsFiles = defineSource<{ from: string[] }>({
    name: 'reads-files',
    summary: 'Reads the files listed (tests only).',
    config: { type: 'object', additionalProperties: false, required: ['from'], properties: { from: { type: 'array', items: { type: 'string' } } } },
    inputFiles: (config) => config.from.map((path, index) => ({ path, field: `from[${index}]` })),
    create: () => ({ async *read() {} }),
  });
  const writesFile = defineSink<{ to: string }>({
    name: 'writes-file',
    summary: 'Writes a file (tests only).',
    config: { type: 'object', additionalProperties: false, required: ['to'], properties: { to: { type: 'string' } } },
    outputFiles: (config) => [{ path: config.to, field: 'to' }],
    create: () => ({ write: () => undefined, close: async () => undefined }),
  });
  const registry = await builtinRegistry();
  registry.register(readsFiles, 'test');
  registry.register(writesFile, 'test');
  const file = join(base, 'files.yaml');
  const problemsIn = async (yaml: string): Promise<string[]> => {
    writeFileSync(file, yaml);
    try {
      await loadPipeline(file, { registry, env: {} });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((problem) => `${problem.line}: ${problem.path}: ${problem.message}`);
    }
    return [];
  };
  const tail = "writing it would replace that file before it is read (or, appending, read this sink's records back as input)";
  assert.deepEqual(
    await problemsIn('sources: [{type: reads-files, from: [a.jsonl, b.jsonl]}]\nsinks:\n  - {type: writes-file, to: ./b.jsonl}\n  - {type: file, path: a.jsonl}\n'),
    [
      `3: $.sinks[0].to: ${join(base, 'b.jsonl')} is the input of sources[0] (from[1]: b.jsonl): ${tail}; name another file in this sink's to`,
      `4: $.sinks[1].path: ${join(base, 'a.jsonl')} is the input of sources[0] (from[0]: a.jsonl): ${tail}; name another file in this sink's path`,
    ],
  );
  // The user's sink beside the built-in file source, and as the dead-letter sink.
  assert.deepEqual(await problemsIn('sources: [{type: file, path: in.jsonl}]\nsinks: [{type: stdout}]\ndead_letter: {type: writes-file, to: in.jsonl}\n'), [
    `3: $.dead_letter.to: ${join(base, 'in.jsonl')} is the input of sources[0] (path: in.jsonl): ${tail}; name another file in this sink's to`,
  ]);
  assert.deepEqual(await problemsIn('sources: [{type: reads-files, from: [a.jsonl]}]\nsinks: [{type: writes-file, to: out.jsonl}]\n'), [], 'another file is no problem');
  // Declared on the wrong kind, the hook would check nothing: refused as the plugin registers.
  const because = registrationProblem(new PluginRegistry());
  assert.equal(because('operator', { outputFiles: () => [] }), "outputFiles is for sinks only: (config) => the files it writes, e.g. [{ path: config.path, field: 'path' }]");
  assert.equal(because('operator', { inputFiles: () => [] }), "inputFiles is for sources only: (config) => the files it reads, e.g. [{ path: config.path, field: 'path' }]");
  assert.equal(because('sink', { outputFiles: () => [] }), '');
});

test('loadPipeline (validate) and the runner\'s check of a loaded pipeline say each problem at one FILE:LINE:COL: a bad value at the value, an unknown key at the key, a missing required field at the key of the map that lacks it; errors and warnings alike (the runner said the key\'s problems at the value)', async () => {
  interface PlacedConfig {
    path: string;
    size?: number;
    csv?: { delimiter: string };
  }
  const spec = { name: 'placed', summary: 'Where problems are said (tests only).', create: () => ({ write: () => undefined, close: async () => undefined }) };
  const strict = defineSink<PlacedConfig>({
    ...spec,
    // A warning and an error of its checks across entries, each at a field.
    checkPipeline: (config) =>
      config.path === 'warn.txt' ? [{ field: 'path', message: 'a warning at path', severity: 'warning' }] : config.path === 'bad.txt' ? [{ field: 'path', message: 'an error at path' }] : [],
    config: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: { type: 'string' },
        size: { type: 'integer', minimum: 1 },
        csv: { type: 'object', additionalProperties: false, required: ['delimiter'], properties: { delimiter: { type: 'string' } } },
      },
    },
  });
  // Lets every entry through, so that the runner's check (the strict plugin put in its place) meets the problems in a pipeline loadPipeline accepted.
  const lenient = defineSink<PlacedConfig>({ ...spec, config: { type: 'object' } as never });
  const registryWith = async (plugin: typeof strict): Promise<PluginRegistry> => {
    const registry = await builtinRegistry();
    registry.register(plugin, 'test');
    return registry;
  };
  const [strictRegistry, lenientRegistry] = await Promise.all([registryWith(strict), registryWith(lenient)]);
  const file = join(dir, 'placed.yaml');
  const bothWays = async (lines: string[]): Promise<{ validate: string[]; runner: string[] }> => {
    writeFileSync(file, lines.join('\n'));
    let validate: string[];
    try {
      validate = ((await loadPipeline(file, { registry: strictRegistry, env: {} })).warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' }));
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      validate = error.problems.map((problem) => formatProblem({ ...problem, file: 'P' }));
    }
    const loaded = await loadPipeline(file, { registry: lenientRegistry, env: {} });
    for (const sink of loaded.sinks) sink.plugin = strict;
    const warnings: ConfigProblem[] = [];
    const problems = loadedPipelineProblems(loaded, warnings);
    const runner = [...problems.map((problem) => formatProblem({ ...problem, file: 'P' })), ...warnings.map((warning) => formatWarning({ ...warning, file: 'P' }))];
    return { validate: validate.sort(), runner: runner.sort() };
  };
  const schema = await bothWays([
    'sources: [{type: synthetic}]', //                              1
    'sinks:', //                                                    2
    '  - {type: placed, path: out.txt, size: 0, colour: red}', //   3 a bad value (size: 0 at 41); an unknown key (colour at 44)
    '  - type: placed', //                                          4
    '    path: out.txt', //                                         5
    '    csv:', //                                                  6 lacks delimiter: at csv (6:5), not its first field (7:7)
    '      quote: x', //                                            7 an unknown key (at 7:7)
    '  - {type: placed, size: 2}', //                               8 lacks path: at the entry (a list's item has no key)
  ]);
  assert.deepEqual(schema.validate, [
    "P:3:41: $.sinks[0].size: must be >= 1, got 0",
    "P:3:44: $.sinks[0].colour: unknown field 'colour'",
    "P:6:5: $.sinks[1].csv: missing required field 'delimiter'",
    "P:7:7: $.sinks[1].csv.quote: unknown field 'quote'",
    "P:8:5: $.sinks[2]: missing required field 'path'",
  ]);
  assert.deepEqual(schema.runner, schema.validate);
  // A plugin's check (checkPipeline) at its field: the field's value, an error or a warning.
  const checks = await bothWays(['sources: [{type: synthetic}]', 'sinks:', '  - {type: placed, path: bad.txt}', '  - {type: placed,   path: warn.txt}']);
  assert.deepEqual(checks.validate, ['P:3:26: $.sinks[0].path: an error at path']);
  assert.deepEqual(checks.runner, [...checks.validate, 'P:4:28: warning: $.sinks[1].path: a warning at path']);
  const warning = await bothWays(['sources: [{type: synthetic}]', 'sinks:', '  - {type: placed,   path: warn.txt}']);
  assert.deepEqual(warning.validate, ['P:3:28: warning: $.sinks[0].path: a warning at path']);
  assert.deepEqual(warning.runner, warning.validate);
});

test('a key with a dot in it (`"a.b"`, a librdkafka option) is located at its own position by validate and by the runner alike, and a plugin names it as the JSONPath does (`options["a.b"]`) (was: the runner split it at the dot and said its problem at the map)', async () => {
  interface DottedConfig {
    options?: Record<string, number>;
  }
  const spec = { name: 'dotted', summary: 'Keys with dots (tests only).', create: () => ({ write: () => undefined, close: async () => undefined }) };
  const strict = defineSink<DottedConfig>({
    ...spec,
    // A check naming a dotted key, as a JSONPath writes it.
    checkPipeline: (config) => (config.options?.['warn.me'] === undefined ? [] : [{ field: 'options["warn.me"]', message: 'a warning at warn.me', severity: 'warning' }]),
    config: { type: 'object', additionalProperties: false, properties: { options: { type: 'object', additionalProperties: { type: 'integer', minimum: 1 } } } },
  });
  // Lets every entry through, so that the runner's check (the strict plugin put in its place) meets the problems in a pipeline loadPipeline accepted, as run does.
  const lenient = defineSink<DottedConfig>({ ...spec, config: { type: 'object' } as never });
  const registryWith = async (plugin: typeof strict): Promise<PluginRegistry> => {
    const registry = await builtinRegistry();
    registry.register(plugin, 'test');
    return registry;
  };
  const [strictRegistry, lenientRegistry] = await Promise.all([registryWith(strict), registryWith(lenient)]);
  const file = join(dir, 'dotted.yaml');
  writeFileSync(
    file,
    [
      'sources: [{type: synthetic}]', //  1
      'sinks:', //                        2
      '  - type: dotted', //              3
      '    options:', //                  4
      '      a: 1', //                    5
      '      a.b: 0', //                  6 a bad value under a dotted key: at 6:12
      '      "c.d": 2', //                7
      '      warn.me: 3', //              8 a warning a check says at options["warn.me"]: 8:16
    ].join('\n'),
  );
  let validate: string[] = [];
  try {
    await loadPipeline(file, { registry: strictRegistry, env: {} });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    validate = error.problems.map((problem) => formatProblem({ ...problem, file: 'P' }));
  }
  assert.deepEqual(validate, ['P:6:12: $.sinks[0].options["a.b"]: must be >= 1, got 0']);
  const loaded = await loadPipeline(file, { registry: lenientRegistry, env: {} });
  for (const sink of loaded.sinks) sink.plugin = strict;
  const warnings: ConfigProblem[] = [];
  assert.deepEqual(
    loadedPipelineProblems(loaded, warnings).map((problem) => formatProblem({ ...problem, file: 'P' })),
    validate,
  );
  // The check's warning: the runner found none of it as the schema problem came first; without it, both find it at the dotted key.
  writeFileSync(file, readFileSync(file, 'utf8').replace('a.b: 0', 'a.b: 1'));
  const loadedAgain = await loadPipeline(file, { registry: strictRegistry, env: {} });
  assert.deepEqual(
    (loadedAgain.warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' })),
    ['P:8:16: warning: $.sinks[0].options["warn.me"]: a warning at warn.me'],
  );
  const lenientLoaded = await loadPipeline(file, { registry: lenientRegistry, env: {} });
  for (const sink of lenientLoaded.sinks) sink.plugin = strict;
  const runnerWarnings: ConfigProblem[] = [];
  assert.deepEqual(loadedPipelineProblems(lenientLoaded, runnerWarnings), []);
  assert.deepEqual(
    runnerWarnings.map((warning) => formatWarning({ ...warning, file: 'P' })),
    ['P:8:16: warning: $.sinks[0].options["warn.me"]: a warning at warn.me'],
  );
  // The entry's locator takes the same path, and a quoted key's own position.
  assert.deepEqual(loadedAgain.sinks[0]!.locate?.('options["c.d"]'), { path: '$.sinks[0].options["c.d"]', line: 7, column: 14 });
  assert.deepEqual(loadedAgain.sinks[0]!.locate?.('options["c.d"]', 'key'), { path: '$.sinks[0].options["c.d"]', line: 7, column: 7 });
});

test("a user's plugin whose hook returns what its spec does not allow (a string for a list, undefined, a number) or throws is a config error at its entry naming the plugin and the hook, by validate and the runner's check (was: a TypeError from inside the core, or the wrong shape taken silently)", async () => {
  const base = mkdtempSync(join(dir, 'hooks-'));
  const noSource = { async *read() {} };
  const noSink = { write: () => undefined, close: async () => undefined };
  // Each plugin's hooks return what the test names in its config (`returns`), read as JSON; `throw` throws.
  const give = (config: { returns?: string }): never => {
    if (config.returns === 'throw') throw new TypeError('config.paths is not iterable');
    return (config.returns === undefined ? undefined : JSON.parse(config.returns)) as never;
  };
  const schema = { type: 'object', additionalProperties: false, properties: { returns: { type: 'string' } } } as const;
  const plugins = [
    defineSource<{ returns?: string }>({ name: 'bad-inputs', summary: 'Tests only.', config: schema, inputFiles: give, create: () => noSource }),
    defineSink<{ returns?: string }>({ name: 'bad-outputs', summary: 'Tests only.', config: schema, outputFiles: give, create: () => noSink }),
    defineOperator<{ returns?: string }>({ name: 'bad-names', summary: 'Tests only.', config: schema, featureNames: give, create: () => ({ apply: (input) => input }) }),
    defineSink<{ returns?: string }>({ name: 'bad-check', summary: 'Tests only.', config: schema, checkPipeline: give, create: () => noSink }),
    defineOperator<{ returns?: string }>({
      name: 'bad-condition',
      summary: 'Tests only.',
      config: schema,
      emits: ['flag'],
      emitsOnlyWith: { flag: { condition: 'returns', test: give } },
      create: () => ({ apply: (input) => input }),
    }),
  ];
  const registry = await builtinRegistry();
  for (const plugin of plugins) registry.register(plugin as never, 'hooks.js');
  const file = join(base, 'hooks.yaml');
  const validate = async (yaml: string): Promise<string[]> => {
    writeFileSync(file, yaml);
    try {
      await loadPipeline(file, { registry, env: {} });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((problem) => `${formatProblem({ ...problem, file: 'P' })}${problem.code ? ` (${problem.code})` : ''}`);
    }
    return [];
  };
  const code = 'TRIB_ERR_PLUGIN_LOAD';
  const files = 'it must return a list of { path, field? }, e.g. [{ path: config.path, field: \'path\' }]';
  assert.deepEqual(await validate(`sources: [{type: file, path: in.jsonl}]\nsinks:\n  - {type: bad-outputs, returns: '"out.jsonl"'}\n`), [
    `P:3:5: $.sinks[0]: sink 'bad-outputs': its outputFiles(config) returned "out.jsonl"; ${files} (${code})`,
  ]);
  assert.deepEqual(await validate(`sources: [{type: file, path: in.jsonl}]\nsinks:\n  - {type: bad-outputs, returns: '[{"path": 3}]'}\n`), [
    `P:3:5: $.sinks[0]: sink 'bad-outputs': its outputFiles(config) returned [{"path":3}]: item 0 ({"path":3}) has no path (a non-empty string); ${files} (${code})`,
  ]);
  assert.deepEqual(await validate(`sources:\n  - {type: bad-inputs}\nsinks: [{type: file, path: out.jsonl}]\n`), [
    `P:2:5: $.sources[0]: source 'bad-inputs': its inputFiles(config) returned undefined; ${files} (${code})`,
  ]);
  assert.deepEqual(await validate(`sources:\n  - {type: bad-inputs, returns: throw}\nsinks: [{type: file, path: out.jsonl}]\n`), [
    `P:2:5: $.sources[0]: source 'bad-inputs': its inputFiles(config) threw: config.paths is not iterable (${code})`,
  ]);
  assert.deepEqual(await validate(`sources: [{type: synthetic}]\nstages:\n  - {type: bad-names, returns: '"my_score"'}\nsinks: [{type: stdout}]\n`), [
    `P:3:5: $.stages[0]: operator 'bad-names': its featureNames(config) returned "my_score"; it must return a list of feature names, e.g. ['my_score'] (${code})`,
  ]);
  assert.deepEqual(await validate(`sources: [{type: synthetic}]\nsinks:\n  - {type: bad-check, returns: '3'}\n`), [
    `P:3:5: $.sinks[0]: sink 'bad-check': its checkPipeline(config, pipeline, self) returned 3; it must return a list of this entry's problems, { field?, message, severity? } each ([] for none) (${code})`,
  ]);
  assert.deepEqual(await validate(`sources: [{type: synthetic}]\nsinks:\n  - {type: bad-check, returns: '[{"field": "returns", "message": "bad", "severity": "fatal"}]'}\n`), [
    `P:3:5: $.sinks[0]: sink 'bad-check': its checkPipeline(config, pipeline, self) returned [{"field":"returns","message":"bad","severity":"fatal"}]: item 0 ({"field":"returns","message":"bad","severity":"fatal"}) has a severity that is neither 'error' nor 'warning'; it must return a list of this entry's problems, { field?, message, severity? } each ([] for none) (${code})`,
  ]);
  assert.deepEqual(await validate(`sources: [{type: synthetic}]\nstages:\n  - {type: bad-condition, returns: '"yes"'}\nsinks: [{type: stdout, kinds: [flag]}]\n`), [
    `P:3:5: $.stages[0]: operator 'bad-condition': its emitsOnlyWith.flag.test(config) returned "yes"; it must return true or false (${code})`,
  ]);
  // Right shapes pass, and are read.
  assert.deepEqual(await validate(`sources: [{type: file, path: in.jsonl}]\nsinks:\n  - {type: bad-outputs, returns: '[{"path": "in.jsonl", "field": "returns"}]'}\n`), [
    `P:3:34: $.sinks[0].returns: ${join(base, 'in.jsonl')} is the input of sources[0] (path: in.jsonl): writing it would replace that file before it is read (or, appending, read this sink's records back as input); name another file in this sink's returns`,
  ]);
  // The runner's check of a loaded pipeline (a pipeline composed in code) says it as validate does.
  writeFileSync(file, `sources: [{type: synthetic}]\nstages:\n  - {type: bad-names, returns: '["my_score"]'}\nsinks: [{type: stdout}]\n`);
  const loaded = await loadPipeline(file, { registry, env: {} });
  loaded.stages[0]!.entry.returns = '{"names": ["my_score"]}';
  assert.deepEqual(
    loadedPipelineProblems(loaded).map((problem) => formatProblem({ ...problem, file: 'P' })),
    [`P:3:5: $.stages[0]: operator 'bad-names': its featureNames(config) returned {"names":["my_score"]}; it must return a list of feature names, e.g. ['my_score']`],
  );
});

test("a plugin's featureNames is for operators, and featureNamesField goes with it: checked as it registers", () => {
  const because = registrationProblem(new PluginRegistry());
  const names = (): string[] => ['a'];
  assert.equal(because('sink', { featureNames: names }), 'featureNames is for operators only: (config) => the names of the feature block it appends');
  assert.equal(because('operator', { featureNames: ['a'] }), 'featureNames is for operators only: (config) => the names of the feature block it appends');
  assert.equal(because('operator', { featureNamesField: 'prefix' }), "featureNamesField needs featureNames beside it: the config field its names come from, e.g. 'prefix'");
  assert.equal(because('operator', { featureNames: names, featureNamesField: 'prefix' }), '');
  assert.equal(because('operator', { featureNames: names }), '');
});

test('intent-model: a label_buffer.timeout not longer than the gap (or the gap plus the allowed_lateness) of the sessionizer before it is said by validate, naming both', async () => {
  const problems = await problemsOf(
    [
      'sources: [{type: synthetic}]', //                 1
      'stages:', //                                      2
      '  - {type: sessionizer, gap: 30m}', //            3
      '  - type: intent-model', //                       4
      '    name: short', //                              5
      '    label_buffer: {timeout: 10m}', //             6 every prediction but a session's last expires first
      '  - type: intent-model', //                       7
      '    name: equal', //                              8
      '    label_buffer: {timeout: 1800000}', //         9 30m in ms: not longer
      '  - type: intent-model', //                       10
      '    name: longer', //                             11
      '    label_buffer: {timeout: 31m}', //             12 fine
      '  - {type: intent-model, name: default}', //      13 1d by default: fine
      '  - {type: sessionizer, gap: 2d}', //             14
      '  - {type: intent-model, name: after}', //        15 the nearest sessionizer before it counts: 1d under 2d
      '  - {type: sessionizer, gap: 30m, allowed_lateness: 1h}', // 16
      '  - type: intent-model', //                       17
      '    name: late', //                               18
      '    label_buffer: {timeout: 90m}', //             19 above the gap, not above the gap plus the lateness
      '  - type: intent-model', //                       20
      '    name: later', //                              21
      '    label_buffer: {timeout: 91m}', //             22 fine
      'sinks: [{type: stdout}]', //                      23
    ].join('\n'),
  );
  const tail = "a session's labels come when it closes, a gap after its last event, so its predictions would expire unlabelled first; set label_buffer.timeout above the gap plus the longest session (the sessionizer's max_length)";
  // At the timeout, written or not (the entry then); was at label_buffer (6:19), naming the timeout in the message.
  assert.deepEqual(problems, [
    `P:6:29: $.stages[1].label_buffer.timeout: "10m" is not longer than the gap ("30m") of sessionizer stage-sessionizer-0: ${tail}`,
    `P:9:29: $.stages[2].label_buffer.timeout: 1800000 is not longer than the gap ("30m") of sessionizer stage-sessionizer-0: ${tail}`,
    `P:15:5: $.stages[6].label_buffer.timeout: "1d" (the default) is not longer than the gap ("2d") of sessionizer stage-sessionizer-5: ${tail}`,
    `P:19:29: $.stages[8].label_buffer.timeout: "90m" is not longer than the gap ("30m") plus the allowed_lateness ("1h") of sessionizer stage-sessionizer-7: ` +
      'a late event may reopen a session until then, and a session that bought is remembered (so that such an event is not predicted after the purchase) only for the timeout after its last event; set label_buffer.timeout above both',
  ]);
});

test("a plugin module's mistakes are said naming the plugin and its module: no config, no create, a misspelt schema keyword, a plugin of another kind", async () => {
  const project = mkdtempSync(join(dir, 'broken-plugins-'));
  const core = JSON.stringify(new URL('../index.js', import.meta.url).href);
  const write = (name: string, body: string): void => writeFileSync(join(project, name), `import { defineOperator, defineSink } from ${core};\n${body}\n`);
  // JavaScript authors have no compiler to catch the first two: they were TypeErrors from deep in validation.
  write('no-config.js', "export default defineOperator({ name: 'no-config', summary: 's', create: () => ({ apply: (s) => s }) });");
  write('no-create.js', "export default defineOperator({ name: 'no-create', summary: 's', config: { type: 'object' } });");
  // ajv's strict mode rejects the typo: it was '0:0: $: strict mode: unknown keyword', naming no plugin.
  write('typo.js', "export default defineOperator({ name: 'typo', summary: 's', config: { type: 'object', properties: { a: { type: 'integer', descripton: 'x' } } }, create: () => ({ apply: (s) => s }) });");
  write('bad-default.js', "export default defineOperator({ name: 'bad-default', summary: 's', config: { type: 'object', properties: { opts: { type: 'object', properties: { every: { type: 'integer', default: 'x' } } } } }, create: () => ({ apply: (s) => s }) });");
  write('a-sink.js', "export default defineSink({ name: 'a-sink', summary: 's', config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) });");
  const problemsIn = async (yaml: string): Promise<string[]> => {
    const file = join(project, `p${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    return loadPipeline(file, { registry: await builtinRegistry(), env: {} }).then(
      () => [],
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        return error.problems.map((p) => formatProblem({ ...p, file: 'P' }));
      },
    );
  };
  const loading = await problemsIn('plugins: [./no-config.js, ./no-create.js]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  assert.deepEqual(loading, [
    "P:1:11: $.plugins[0]: ./no-config.js: operator 'no-config' is not a valid plugin: config must be a JSON Schema object, e.g. { type: \"object\", properties: {} }",
    "P:1:27: $.plugins[1]: ./no-create.js: operator 'no-create' is not a valid plugin: create must be a function (config, context) => instance",
  ]);
  const schema = await problemsIn('plugins: [./typo.js]\nsources: [{type: synthetic}]\nstages: [{type: typo}]\nsinks: [{type: stdout}]\n');
  assert.deepEqual(schema, [`P:3:17: $.stages[0].type: operator 'typo' has an invalid config schema: strict mode: unknown keyword: "descripton" (plugin from ./typo.js)`]);
  // A default its own schema rejects was blamed on the pipeline: 'P:3:17: $.stages[0].opts.every: must be integer'.
  const defaults = await problemsIn('plugins: [./bad-default.js]\nsources: [{type: synthetic}]\nstages: [{type: bad-default}]\nsinks: [{type: stdout}]\n');
  assert.deepEqual(defaults, [`P:3:17: $.stages[0].type: operator 'bad-default' has an invalid config schema: the default of 'opts.every' ("x") fails the field's own schema: must be integer (plugin from ./bad-default.js)`]);
  // A bound that is no duration let every value through: `wait: 1ms` passed `minDuration: soon`.
  write('bad-bound.js', "export default defineOperator({ name: 'bad-bound', summary: 's', config: { type: 'object', properties: { wait: { $ref: 'tributary:duration', minDuration: 'soon' } } }, create: () => ({ apply: (s) => s }) });");
  const bound = await problemsIn('plugins: [./bad-bound.js]\nsources: [{type: synthetic}]\nstages: [{type: bad-bound, wait: 1ms}]\nsinks: [{type: stdout}]\n');
  assert.deepEqual(bound, [`P:3:17: $.stages[0].type: operator 'bad-bound' has an invalid config schema: minDuration: not a duration: 'soon' (use e.g. 500ms, 30s, 30m, 12h, 7d, 2w) (plugin from ./bad-bound.js)`]);
  const kinds = await problemsIn('plugins: [./a-sink.js]\nsources: [{type: synthetic}]\nstages: [{type: a-sink}]\nsinks: [{type: sessionizer}]\n');
  assert.equal(kinds.length, 2, kinds.join('\n'));
  assert.match(kinds[0]!, /^P:3:17: \$\.stages\[0\]\.type: 'a-sink' is a sink plugin, not an operator plugin; known operator plugins: /);
  assert.match(kinds[1]!, /^P:4:16: \$\.sinks\[0\]\.type: 'sessionizer' is an operator plugin, not a sink plugin; known sink plugins: /);
});

test('plugin problems keep their own codes (TRIB_ERR_PLUGIN_LOAD, _DUPLICATE, _UNKNOWN) at their positions; the error has the code its problems share, else TRIB_ERR_CONFIG_INVALID', async () => {
  const project = mkdtempSync(join(dir, 'plugin-codes-'));
  const core = JSON.stringify(new URL('../index.js', import.meta.url).href);
  const sink = (name: string): string => `import { defineSink } from ${core};\nexport default defineSink({ name: '${name}', summary: 's', config: { type: 'object' }, create: () => ({ write() {}, close: async () => undefined }) });\n`;
  writeFileSync(join(project, 'one.js'), sink('twin'));
  writeFileSync(join(project, 'two.js'), sink('twin'));
  const rejection = async (yaml: string): Promise<ConfigError> => {
    const file = join(project, `p${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    try {
      await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error;
    }
    assert.fail('loaded');
  };
  const codes = (error: ConfigError): [string, string | undefined][] => error.problems.map((p) => [`${p.line}:${p.column} ${p.path}`, p.code]);
  const missing = await rejection('plugins: [./missing.js]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  assert.equal(missing.code, 'TRIB_ERR_PLUGIN_LOAD');
  assert.deepEqual(codes(missing), [['1:11 $.plugins[0]', 'TRIB_ERR_PLUGIN_LOAD']]);
  const twice = await rejection('plugins: [./one.js, ./two.js]\nsources: [{type: synthetic}]\nsinks: [{type: twin}]\n');
  assert.equal(twice.code, 'TRIB_ERR_PLUGIN_DUPLICATE');
  assert.deepEqual(codes(twice), [['1:21 $.plugins[1]', 'TRIB_ERR_PLUGIN_DUPLICATE']]);
  // What to do about it, as errors.md says (it named the two modules only).
  assert.match(twice.problems[0]!.message, /sink 'twin' from \.\/two\.js is already registered from \.\/one\.js: load only one of the two modules, or rename the plugin in one of them$/);
  const unknown = await rejection('sources: [{type: synthetic}]\nsinks: [{type: nowhere}]\n');
  assert.equal(unknown.code, 'TRIB_ERR_PLUGIN_UNKNOWN');
  assert.deepEqual(codes(unknown), [['2:16 $.sinks[0].type', 'TRIB_ERR_PLUGIN_UNKNOWN']]);
  // Several causes: each problem its own code, the error the general one.
  const mixed = await rejection('plugins: [./missing.js]\nsources: [{type: synthetic, events: -1}]\nsinks: [{type: mine}]\n');
  assert.equal(mixed.code, 'TRIB_ERR_CONFIG_INVALID');
  assert.deepEqual(codes(mixed), [
    ['1:11 $.plugins[0]', 'TRIB_ERR_PLUGIN_LOAD'],
    ['2:37 $.sources[0].events', undefined],
    ['3:16 $.sinks[0].type', 'TRIB_ERR_PLUGIN_UNKNOWN'],
  ]);
});

test('a plugin module that does not parse is reported with the file and line of its syntax error, also in a module it imports', async () => {
  const project = mkdtempSync(join(dir, 'syntax-'));
  writeFileSync(join(project, 'helper.js'), 'export const ok = 1;\nexport const broken = (a, => a;\n');
  writeFileSync(join(project, 'plugin.js'), "import { broken } from './helper.js';\nexport default broken;\n");
  writeFileSync(join(project, 'broken.cjs'), 'module.exports = {\n  a: => 1 };\n');
  // A SyntaxError thrown by the module's own code is not a parse error: its code must not run twice.
  writeFileSync(join(project, 'runs.js'), "import { appendFileSync } from 'node:fs';\nappendFileSync(new URL('./ran.txt', import.meta.url), 'x');\nJSON.parse('{oops');\n");
  const file = join(project, 'p.yaml');
  writeFileSync(file, 'plugins: [./plugin.js, ./broken.cjs, ./runs.js]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const problems = await loadPipeline(file, { registry: await builtinRegistry(), env: {} }).then(
    () => [],
    (error: ConfigError) => error.problems.map((p) => formatProblem({ ...p, file: 'P' })),
  );
  // Node's own message was only "Unexpected token '=>'": no file, no line.
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.equal(problems[0], `P:1:11: $.plugins[0]: cannot load plugin module './plugin.js': Unexpected token '=>' at ${join(project, 'helper.js')}:2`);
  assert.equal(problems[1], `P:1:24: $.plugins[1]: cannot load plugin module './broken.cjs': Unexpected token '=>' at ${join(project, 'broken.cjs')}:2`);
  assert.match(problems[2]!, /^P:1:38: \$\.plugins\[2\]: cannot load plugin module '\.\/runs\.js': [^\n]*JSON[^\n]*$/);
  assert.equal(readFileSync(join(project, 'ran.txt'), 'utf8'), 'x');
});

test('a plugin named by its TypeScript source is reported with what to name instead', async () => {
  const project = mkdtempSync(join(dir, 'ts-plugin-'));
  writeFileSync(join(project, 'plugin.ts'), "export default { kind: 'operator' as const };\n");
  const file = join(project, 'p.yaml');
  writeFileSync(file, 'plugins: [./plugin.ts]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const problems = await loadPipeline(file, { registry: await builtinRegistry(), env: {} }).then(
    () => [],
    (error: ConfigError) => error.problems.map((p) => formatProblem({ ...p, file: 'P' })),
  );
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /^P:1:11: \$\.plugins\[0\]: cannot load plugin module '\.\/plugin\.ts': Unknown file extension "\.ts" .*a TypeScript plugin is compiled first, with `npx tsc`; name the compiled \.js file here/);
});

test('a plugin file that is not there is said as its path and what it is relative to, with its TypeScript source where that is there, not as "imported from" Tributary\'s own registry.js', async () => {
  const project = mkdtempSync(join(dir, 'missing-plugin-'));
  mkdirSync(join(project, 'src'));
  mkdirSync(join(project, 'pipelines'));
  writeFileSync(join(project, 'src', 'plugin.ts'), "export default { kind: 'operator' as const };\n");
  const file = join(project, 'pipelines', 'p.yaml');
  writeFileSync(file, 'plugins: [../src/plugin.js, ./gone.js]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const problems = await loadPipeline(file, { registry: await builtinRegistry(), env: {} }).then(
    () => [],
    (error: ConfigError) => error.problems.map((p) => formatProblem({ ...p, file: 'P' })),
  );
  assert.deepEqual(problems, [
    `P:1:11: $.plugins[0]: cannot load plugin module '../src/plugin.js': there is no file ${join(project, 'src', 'plugin.js')} (relative to ${join(project, 'pipelines')}); ` +
      `${join(project, 'src', 'plugin.ts')} is its TypeScript source: a TypeScript plugin is compiled first, with \`npx tsc\`; name the compiled .js file here: docs/plugin-authoring.md`,
    `P:1:29: $.plugins[1]: cannot load plugin module './gone.js': there is no file ${join(project, 'pipelines', 'gone.js')} (relative to ${join(project, 'pipelines')})`,
  ]);
  // Named by its .ts name in the compiled output, where only the .js is (`dist/src/index.ts`): the .js is named.
  mkdirSync(join(project, 'dist'));
  writeFileSync(join(project, 'dist', 'plugin.js'), "export default { kind: 'operator' };\n");
  writeFileSync(file, 'plugins: [../dist/plugin.ts]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  await assert.rejects(
    loadPipeline(file, { registry: await builtinRegistry(), env: {} }),
    (error: ConfigError) =>
      error.problems[0]!.message ===
      `cannot load plugin module '../dist/plugin.ts': there is no file ${join(project, 'dist', 'plugin.ts')} (relative to ${join(project, 'pipelines')}); ${join(project, 'dist', 'plugin.js')} is there: name the compiled .js file`,
  );
  // A module the plugin imports that is missing is the plugin's own problem, said in Node's words (which name the plugin).
  writeFileSync(join(project, 'pipelines', 'imports.js'), "import './helper-gone.js';\n");
  writeFileSync(file, 'plugins: [./imports.js]\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  await assert.rejects(loadPipeline(file, { registry: await builtinRegistry(), env: {} }), /helper-gone\.js' imported from .*imports\.js/);
});

test("an unquoted whole ${VAR} is typed only where its value is a YAML number, boolean or null; any other value is kept as given, never read as YAML (a secret starting with '*' loads)", async () => {
  const registry = await builtinRegistry();
  const file = join(dir, 'env-values.yaml');
  writeFileSync(file, 'sources:\n  - type: synthetic\n    users: ${USERS}\nsinks:\n  - type: file\n    path: ${OUT}\n');
  const pathOf = async (out: string): Promise<unknown> => (await loadPipeline(file, { registry, env: { USERS: '3', OUT: out } })).sinks[0]!.entry.path;
  // Were: 'out', 'a.json', 'q', 'b.jsonl', '' (a tag), null, '' (a block scalar), and a ReferenceError quoting the value.
  for (const value of ['out #1.jsonl', '"a.jsonl', "'q'.jsonl", '&anchor b.jsonl', '!tag', '%x', '|', '*.jsonl', '[a, b]', '{x: 1}', '1_000', 'yes']) assert.equal(await pathOf(value), value);
  assert.equal((await loadPipeline(file, { registry, env: { USERS: '0x10', OUT: 'o' } })).sources[0]!.entry.users, 16);
  // The description is a string: its problem quotes the value as typed.
  const text = 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\ndescription: ${D}\n';
  for (const [value, typed] of [['12', '12'], ['true', 'true'], ['1.5', '1.5'], ['null', 'null'], ['~', 'null'], ['.inf', 'Infinity']]) {
    await assert.rejects(loadPipeline(file, { registry, env: { D: value! }, text }), new RegExp(`\\$\\.description: must be string, got ${typed}: an unquoted \\$\\{D\\} is read as YAML reads its value .*; quote it for text: "\\$\\{D\\}"$`), value);
  }
  assert.equal((await loadPipeline(file, { registry, env: { D: 'True story' }, text })).document.description, 'True story');
  // Block style: an unquoted ${...} inside a flow map ({...}) is not plain YAML.
  const kafka = [
    'sources:',
    '  - type: kafka',
    '    brokers: "k:9092"',
    '    topics: [t]',
    '    group: g',
    '    security:',
    '      sasl:',
    '        mechanism: PLAIN',
    '        username: u',
    '        password: ${PW}',
    'sinks: [{type: stdout}]',
    '',
  ].join('\n');
  const loaded = await loadPipeline(file, { registry, env: { PW: '*S3cret pass #1' }, text: kafka });
  assert.equal((loaded.sources[0]!.entry.security as { sasl: { password: string } }).sasl.password, '*S3cret pass #1');
});

test('${...} as a shell reads it: a nested default, an empty variable is set; a malformed reference is a config error at its value, not left as text, and never quotes a secret', async () => {
  const registry = await builtinRegistry();
  const file = join(dir, 'env-forms.yaml');
  const text = (path: string): string => `sources: [{type: synthetic}]\nsinks:\n  - type: file\n    path: "${path}"\n`;
  const pathOf = async (path: string, env: Record<string, string>): Promise<unknown> => (await loadPipeline(file, { registry, env, text: text(path) })).sinks[0]!.entry.path;
  assert.equal(await pathOf('${A:-${B:-x}}/o', { B: 'b' }), 'b/o');
  assert.equal(await pathOf('${A:-${B:-x}}/o', {}), 'x/o');
  // A default is read only where it is used: B unset is no error while A has a value.
  assert.equal(await pathOf('${A:-${B}}/o', { A: 'a' }), 'a/o');
  assert.equal(await pathOf('${A}o', { A: '' }), 'o');
  assert.equal(await pathOf('${A:-d}/o', { A: '' }), 'd/o');
  assert.equal(await pathOf('$${A}/o', { A: 'a' }), '${A}/o');
  for (const [path, shown] of [
    ['${OUT_DIR-out}/o', '${OUT_DIR-out}'],
    ['${OUT_DIR:out}/o', '${OUT_DIR:out}'],
    ['${ OUT_DIR }/o', '${ OUT_DIR }'],
    ['${OUT_DIR/o', '${OUT_DIR/o'],
    ['${A:-${B}/o', '${A:-${B}'],
  ]) {
    await assert.rejects(loadPipeline(file, { registry, env: { OUT_DIR: 'x', A: 'a', B: 'b' }, text: text(path!) }), (error: ConfigError) => {
      assert.equal(error.code, 'TRIB_ERR_CONFIG_VARIABLE');
      assert.deepEqual(
        error.problems.map((p) => formatProblem({ ...p, file: 'P' })),
        [`P:4:11: $.sinks[0].path: malformed variable reference ${JSON.stringify(shown)}: write \${NAME} or \${NAME:-default} (NAME: letters, digits and _), or $\${ for a literal \${`],
        path,
      );
      return true;
    });
  }
  const secret = 'sources: [{type: kafka, brokers: "k:9092", topics: [t], group: g, security: {sasl: {mechanism: PLAIN, username: u, password: "pa${ss word"}}}]\nsinks: [{type: stdout}]\n';
  await assert.rejects(loadPipeline(file, { registry, env: {}, text: secret }), (error: ConfigError) => {
    assert.equal(error.problems.length, 1);
    assert.match(error.problems[0]!.message, /^malformed variable reference \(not shown: a secret\)/);
    assert.ok(!error.message.includes('ss word'), error.message);
    return true;
  });
});

test('YAML forms this loader does not take are said as such: a second document; NaN and Infinity are named, not "null"', async () => {
  // Only a top-level `x-` key holds anchors: another unknown one is still a mistake.
  assert.deepEqual(await problemsOf('x: &c {users: 5}\nsources:\n  - type: synthetic\n    <<: *c\nsinks: [{type: stdout}]\n'), ["P:1:1: $.x: unknown field 'x'"]);
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n---\n'), [
    'P:3:1: $: a pipeline file holds one YAML document; this `---` starts another: remove it, or move what follows to a file of its own',
  ]);
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\nsettings: {progress_interval: .inf, heap_wait: .nan}\n'), [
    'P:3:31: $.settings.progress_interval: expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got Infinity',
    'P:3:48: $.settings.heap_wait: expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got NaN',
  ]);
});

test('a YAML tag outside the standard ones (`!!js/function`, `!!python/object`, `!custom`) is refused at its place, not read as the text it tags; an alias bomb ("billion laughs") is refused at the alias that nests, not "Excessive alias count" with no place', async () => {
  const tagged = (value: string): string => `sources:\n  - type: synthetic\n    label: ${value}\nsinks: [{type: stdout}]\n`;
  const taken = "YAML's standard tags only (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq), and none runs code; remove it";
  assert.deepEqual(await problemsOf(tagged('!!js/function "function () { return process.exit(1) }"')), [`P:3:12: $.sources[0].label: YAML tag !!js/function is not taken: a pipeline file takes ${taken}`]);
  assert.deepEqual(await problemsOf(tagged('!!python/object/apply:os.system ["id"]')), [`P:3:12: $.sources[0].label: YAML tag !!python/object/apply:os.system is not taken: a pipeline file takes ${taken}`]);
  assert.deepEqual(await problemsOf(`name: !env SHOP\n${tagged('x')}`), [`P:1:7: $.name: YAML tag !env is not taken: a pipeline file takes ${taken}`]);
  // The standard ones are still taken.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic, events: !!int "5", label: !!str 12}]\nsinks: [{type: stdout}]\n'), []);
  const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];
  const bomb = levels.map((name, i) => `x-${name}: &${name} [${i === 0 ? Array(9).fill('"lol"').join(', ') : Array(9).fill(`*${levels[i - 1]}`).join(', ')}]`).join('\n');
  assert.deepEqual(await problemsOf(`${bomb}\nsources: [{type: synthetic}]\nsinks: [{type: stdout}]\n`), [
    'P:3:10: $.x-c[0]: this alias *b repeats a block that itself repeats others: together they expand past what a pipeline file may (yaml\'s limit against alias bombs, "billion laughs"); write the values out, or share blocks one level deep',
  ]);
});

test("--set's messages quote the path but not a secret's value (the messages go to logs and terminals)", async () => {
  const file = join(dir, 'set-secret.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  const registry = await builtinRegistry();
  const setProblem = async (assignment: string): Promise<string> => {
    try {
      await loadPipeline(file, { registry, env: {}, sets: [assignment] });
    } catch (error) {
      assert.ok(error instanceof TributaryError && !(error instanceof ConfigError));
      assert.equal(error.code, 'TRIB_ERR_CONFIG_SET');
      assert.ok(error.message.startsWith(`${file}: `), error.message);
      return error.message.slice(file.length + 2);
    }
    assert.fail(`--set '${assignment}' was taken`);
  };
  // Each refusal of applySet: past the list's end, an empty segment, an unsafe name, no `=`.
  for (const assignment of ['sources[3].security.sasl.password=hunter2', 'sources[0]..password=hunter2', 'sources[0].__proto__.token=hunter2', 'sources[0].security.sasl.password:hunter2']) {
    const message = await setProblem(assignment);
    assert.ok(!message.includes('hunter2'), message);
    assert.match(message, /not shown: a secret/);
  }
  assert.match(await setProblem('sources[3].security.sasl.password=hunter2'), /^--set 'sources\[3\]\.security\.sasl\.password=…' \(value not shown: a secret\): \$\.sources has 1 entries/);
  // A private key is one by its text, whatever the field.
  assert.ok(!(await setProblem('sources[3].note="-----BEGIN PRIVATE KEY-----abc"')).includes('BEGIN'));
  // Not a secret: quoted whole, as before.
  assert.match(await setProblem('sources[3].users=10'), /^--set 'sources\[3\]\.users=10': /);
  // The note on a section a --set created (a schema problem, TRIB_ERR_CONFIG_INVALID), the same.
  const created = await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets: ['sources[0].security.sasl.password=hunter2'] });
  assert.equal(created.length, 1);
  assert.ok(!created[0]!.includes('hunter2'), created[0]);
  assert.match(created[0]!, /--set 'sources\[0\]\.security\.sasl\.password=…' \(value not shown: a secret\) created it/);
});

test('--set refuses a path through __proto__ (or constructor, prototype), which reached Object.prototype', async () => {
  const file = join(dir, 'proto.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n');
  for (const assignment of ['__proto__.users=1', 'sources[0].__proto__.polluted=1', 'constructor.prototype.polluted=1']) {
    await assert.rejects(loadPipeline(file, { registry: await builtinRegistry(), env: {}, sets: [assignment] }), (error: TributaryError) => {
      assert.equal(error.code, 'TRIB_ERR_CONFIG_SET');
      assert.match(error.message, /is no field of a pipeline$/);
      return true;
    });
  }
  assert.equal(({} as Record<string, unknown>).users, undefined);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test("a pipeline naming no dead_letter whose registered `file` sink refuses the default dead-letter entry (or where none is registered) is a config error of the file, exit 2 (was a plain TRIB_ERR_PLUGIN_FACTORY naming no file, exit 1); a factory's refusal is a person's to mend however it is thrown", async () => {
  // An embedding program's own `file` sink, without the built-in's `lazy`: the default entry does not fit it.
  const ownFile = defineSink<{ path: string }>({
    name: 'file',
    summary: 'Writes a file (tests only).',
    config: { type: 'object', additionalProperties: false, properties: { path: { type: 'string', description: 'The file.' } } },
    create: () => ({ write: () => undefined, close: async () => undefined }),
  });
  const synthetic = (await builtinRegistry()).get('source', 'synthetic')!;
  const stdout = (await builtinRegistry()).get('sink', 'stdout')!;
  const yaml = 'sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n';
  const refusal = async (registry: PluginRegistry): Promise<unknown> => {
    try {
      await loadPipeline('p.yaml', { registry, env: {}, text: yaml });
    } catch (error) {
      return error;
    }
    return undefined;
  };
  const withOwnFile = new PluginRegistry();
  for (const plugin of [synthetic, stdout, ownFile]) withOwnFile.register(plugin, 'test');
  const refused = await refusal(withOwnFile);
  assert.ok(refused instanceof ConfigError, String(refused));
  assert.equal(refused.code, 'TRIB_ERR_PLUGIN_FACTORY');
  assert.deepEqual(refused.problems.map(formatProblem), [
    "p.yaml: the default dead-letter sink (this pipeline names no dead_letter: a `file` sink writing dead-letters-p.jsonl) does not fit the `file` sink plugin registered (from test): $.lazy: unknown field 'lazy'; name a dead_letter sink",
  ]);
  assert.ok(needsPerson(refused));
  const withoutFile = new PluginRegistry();
  for (const plugin of [synthetic, stdout]) withoutFile.register(plugin, 'test');
  const none = await refusal(withoutFile);
  assert.ok(none instanceof ConfigError, String(none));
  assert.deepEqual(none.problems.map(formatProblem), ['p.yaml: this pipeline names no dead_letter sink, and no `file` sink plugin is registered for the default one; name a dead_letter sink']);
  assert.ok(needsPerson(none));
  // The kafka sink's open() throws one where an exactly-once sink has no exactly-once source beside it.
  assert.equal(needsPerson(new TributaryError('TRIB_ERR_PLUGIN_FACTORY', 'x')), true);
});

test('scale_out with a source that is not partitioned is a config error at the source, said by validate; needsPerson holds every TRIB_ERR_CONFIG_* code, so no restart loops on one', async () => {
  const yaml = (source: string): string => `sources:\n  - ${source}\nstages: [{type: sessionizer}]\nsinks: [{type: stdout}]\ncheckpoint: {dir: cp}\nscale_out: {state_dir: parts}\n`;
  assert.deepEqual(await problemsOf(yaml('{type: file, path: events.jsonl}')), ["P:2:5: $.sources[0]: scale_out needs a partitioned source (kafka); 'file' is not"]);
  assert.deepEqual(await problemsOf(yaml('{type: kafka, brokers: "k:9092", topics: [t], group: g}')), []);
  assert.equal(needsPerson(new TributaryError('TRIB_ERR_CONFIG_INVALID', 'x')), true);
  assert.equal(needsPerson(new TributaryError('TRIB_ERR_CONFIG_VARIABLE', 'x')), true);
  assert.equal(needsPerson(new TributaryError('TRIB_ERR_SOURCE', 'x')), false);
  // A plugin that says it is partitioned must be a source; one that says so falsely is caught as it is built.
  const registry = new PluginRegistry();
  assert.throws(() => registry.register(defineSink({ name: 'p', summary: 's', config: {}, partitioned: true, create: () => ({ write: () => undefined, close: async () => undefined }) }), 'test'), /partitioned is for sources only/);
});

/** What an operator's factory says of a config composed in code (unchecked by the schema): `field: message` of its PluginConfigError. */
async function factoryField(type: string, config: Record<string, unknown>): Promise<string> {
  try {
    await (await builtinRegistry()).get('operator', type)!.create(config as never, testContext());
  } catch (error) {
    assert.ok(error instanceof PluginConfigError, String(error));
    return `${error.field}: ${error.message}`;
  }
  return 'no error';
}

test('zero durations the stages cannot run with are refused by validate at their field (sessionizer gap and max_length, user-features horizons, checkpoint.interval), and by the factories at the field too', async () => {
  const yaml = (stages: string, more = ''): string => `sources: [{type: synthetic}]\nstages:\n${stages}\nsinks: [{type: stdout}]\n${more}`;
  assert.deepEqual(await problemsOf(yaml('  - {type: sessionizer, gap: 0s, max_length: 0ms}')), [
    'P:3:30: $.stages[0].gap: must be at least 1ms, got "0s"',
    'P:3:46: $.stages[0].max_length: must be at least 1ms, got "0ms"',
  ]);
  assert.deepEqual(await problemsOf(yaml('  - {type: sessionizer}\n  - {type: session-features}\n  - {type: user-features, horizons: [1d, 0s]}')), ['P:5:42: $.stages[2].horizons[1]: must be at least 1ms, got "0s"']);
  assert.deepEqual(await problemsOf(yaml('  - {type: sessionizer}', 'checkpoint: {dir: cp, interval: 0s}\n')), ['P:5:33: $.checkpoint.interval: must be at least 1ms, got "0s"']);
  // A config composed in code reaches the factory unchecked: its error names the field, so the runtime locates it there.
  const sessionizer = { gap: '30m', allowed_lateness: '0ms', session_id_from: 'gap', max_open_sessions: 10, max_ahead_of_clock: '1d', max_behind_watermark: '365d', not_before: '2000-01-01T00:00:00Z' };
  assert.equal(await factoryField('sessionizer', { ...sessionizer, gap: 0 }), "gap: must be positive, got '0'");
  assert.equal(await factoryField('sessionizer', { ...sessionizer, max_length: '0s' }), "max_length: must be positive, got '0s'");
  assert.equal(await factoryField('user-features', { horizons: ['1d', '0s'], max_users: 10 }), "horizons[1]: must be positive, got '0s'");
});

test('a negative or non-finite duration is one mistake, said once: the duration type says it, not its bound too (was "expected a duration..." and "must be at least 1ms" for gap: -5)', async () => {
  const yaml = (stage: string, more = ''): string => `sources: [{type: synthetic}]\nstages: [${stage}]\nsinks: [{type: stdout}]\n${more}`;
  const expected = (value: string): string => `expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got ${value}`;
  assert.deepEqual(await problemsOf(yaml('{type: sessionizer, gap: -5}')), [`P:2:35: $.stages[0].gap: ${expected('-5')}`]);
  assert.deepEqual(await problemsOf(yaml('{type: sessionizer, gap: .nan}')), [`P:2:35: $.stages[0].gap: ${expected('NaN')}`]);
  // maxDuration likewise: an infinite interval is no duration, not one too long.
  assert.deepEqual(await problemsOf(yaml('{type: sessionizer}', 'checkpoint: {dir: cp, interval: .inf}\n')), [`P:4:33: $.checkpoint.interval: ${expected('Infinity')}`]);
  // A duration out of its bound is still said by the bound.
  assert.deepEqual(await problemsOf(yaml('{type: sessionizer, gap: 0}')), ['P:2:35: $.stages[0].gap: must be at least 1ms, got 0']);
});

test('settings.sink_stall_timeout is a positive duration of at most 24d, said at its field otherwise; a valid one is taken, a number as milliseconds', async () => {
  const yaml = (value: string): string => `sources: [{type: synthetic}]\nsinks: [{type: stdout}]\nsettings:\n  sink_stall_timeout: ${value}\n`;
  const expected = (value: string): string => `expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got ${value}`;
  assert.deepEqual(await problemsOf(yaml('0s')), ['P:4:23: $.settings.sink_stall_timeout: must be at least 1ms, got "0s"']);
  assert.deepEqual(await problemsOf(yaml('-5')), [`P:4:23: $.settings.sink_stall_timeout: ${expected('-5')}`]);
  assert.deepEqual(await problemsOf(yaml('soon')), [`P:4:23: $.settings.sink_stall_timeout: ${expected('"soon"')}`]);
  assert.deepEqual(await problemsOf(yaml('30d')), ['P:4:23: $.settings.sink_stall_timeout: must be at most 24d, got "30d"']);
  // --set reaches it as any setting.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout}]\n', { sets: ['settings.sink_stall_timeout=0'] }).then((problems) => problems.map((problem) => problem.replace(/^\S+: /, ''))), [
    "$.settings.sink_stall_timeout: must be at least 1ms, got 0 (from --set 'settings.sink_stall_timeout=0', not from the file)",
  ]);
  for (const value of ['10m', '250ms', '90000']) assert.deepEqual(await problemsOf(yaml(value)), [], value);
});

test('sessionizer settings that contradict one another are config errors at their field, by validate and by the factory (was: taken silently): max_length with session_id_from: data (it cut nothing), max_behind_watermark below gap + allowed_lateness (late events it would take were dead-lettered as absurd)', async () => {
  const yaml = (sessionizer: string): string => `sources: [{type: synthetic}]\nstages:\n  - ${sessionizer}\nsinks: [{type: stdout}]\n`;
  assert.deepEqual(await problemsOf(yaml('{type: sessionizer, session_id_from: data, max_length: 4h}')), [
    'P:3:60: $.stages[0].max_length: cuts sessions with session_id_from: gap only: with data session ids a session is what its id names, so this would be ignored; remove it, or cut by gap',
  ]);
  const behind = (written: string, least: string): string =>
    `${written} is less than gap plus allowed_lateness (${least}): an event that far behind the watermark may still join or open a session (late, not absurd), and would be dead-lettered as absurd; set it to at least ${least}`;
  assert.deepEqual(await problemsOf(yaml('{type: sessionizer, allowed_lateness: 2h, max_behind_watermark: 0}')), [`P:3:69: $.stages[0].max_behind_watermark: ${behind('0', '150m')}`]);
  assert.deepEqual(await problemsOf(yaml('{type: sessionizer, gap: 1h, max_behind_watermark: 59m}')), [`P:3:56: $.stages[0].max_behind_watermark: ${behind('"59m"', '1h')}`]);
  for (const sessionizer of ['{type: sessionizer, session_id_from: data}', '{type: sessionizer, max_length: 4h}', '{type: sessionizer, gap: 1h, allowed_lateness: 1h, max_behind_watermark: 2h}', '{type: sessionizer, allowed_lateness: 30d}']) {
    assert.deepEqual(await problemsOf(yaml(sessionizer)), [], sessionizer);
  }
  const sessionizer = { gap: '30m', allowed_lateness: '0ms', session_id_from: 'gap', max_open_sessions: 10, max_ahead_of_clock: '1d', max_behind_watermark: '365d', not_before: '2000-01-01T00:00:00Z' };
  assert.match(await factoryField('sessionizer', { ...sessionizer, session_id_from: 'data', max_length: '4h' }), /^max_length: cuts sessions with session_id_from: gap only/);
  assert.equal(await factoryField('sessionizer', { ...sessionizer, allowed_lateness: '2h', max_behind_watermark: 0 }), `max_behind_watermark: ${behind('0', '150m')}`);
});

test('a date-time field (sessionizer not_before, synthetic start) given a date alone, or a time without its offset, says what it expects with an example (was: must match format "date-time")', async () => {
  const yaml = (source: string, stage: string): string => `sources: [${source}]\nstages:\n  - ${stage}\nsinks: [{type: stdout}]\n`;
  const expected = 'expected a date and time with its UTC offset (RFC 3339), such as 2020-01-01T00:00:00Z, got';
  assert.deepEqual(await problemsOf(yaml('{type: synthetic, start: "2024-01-01T00:00:00"}', '{type: sessionizer, not_before: 2019-01-01}')), [
    `P:1:36: $.sources[0].start: ${expected} "2024-01-01T00:00:00"`,
    `P:3:37: $.stages[0].not_before: ${expected} "2019-01-01"`,
  ]);
  assert.deepEqual(await problemsOf(yaml('{type: synthetic, start: "2024-01-01T00:00:00+01:00"}', '{type: sessionizer, not_before: 2019-01-01T00:00:00Z}')), []);
});

test('hash-features fields and prefix that do not fit say what they take, not a regular expression (was: must match pattern "^(type|itemId|category|userId|sessionId|attrs\\\\..+)$"): the mapping\'s item_id is the event\'s itemId, an attribute is attrs.<name>', async () => {
  const yaml = (hash: string): string => `sources: [{type: synthetic}]\nstages:\n  - ${hash}\nsinks: [{type: stdout}]\n`;
  const field = 'expected an event field, `type`, `itemId`, `category`, `userId` or `sessionId` (the mapping\'s item_id, user_id and session_id are the event\'s itemId, userId and sessionId), or an attribute as `attrs.<name>` (`attrs.brand`), got';
  assert.deepEqual(await problemsOf(yaml('{type: hash-features, fields: [item_id, brand, attrs.brand], prefix: cat-}')), [
    `P:3:36: $.stages[0].fields[0]: ${field} "item_id"`,
    `P:3:45: $.stages[0].fields[1]: ${field} "brand"`,
    'P:3:74: $.stages[0].prefix: expected name prefix of the block (`<prefix>_<bucket>`): a letter or `_`, then letters, digits or `_`, got "cat-"',
  ]);
  assert.deepEqual(await problemsOf(yaml('{type: hash-features, fields: [itemId, attrs.brand], prefix: cat_2}')), []);
});

test('a model field for another model kind, drift detector or action is a config error at the field (was: taken and ignored: hidden: [64] without kind: mlp ran a logistic model), a warning where the detector or action is none, in intent-model, churn-model and a defineModel stage alike', async () => {
  const yaml = (model: string): string => `sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer}\n  - {type: session-features}\n  - ${model}\nsinks: [{type: stdout}]\n`;
  const problems = async (model: string): Promise<string[]> => (await problemsOf(yaml(model))).map((problem) => problem.replace(/^P:\d+:\d+: \$\.stages\[2\]\./, ''));
  assert.deepEqual(await problems('{type: intent-model, model: {hidden: [64, 32]}}'), ['model.hidden: is read by kind mlp only, and this model is logistic (the default kind): set model.kind: mlp, or remove hidden']);
  assert.deepEqual(await problems('{type: churn-model, model: {kind: mlp, units: 8, sequence_length: 4}}'), [
    'model.units: is read by kind gru only, and this model is mlp: set model.kind: gru, or remove units',
    'model.sequence_length: is read by kind gru only, and this model is mlp: set model.kind: gru, or remove sequence_length',
  ]);
  assert.deepEqual(await problems('{type: intent-model, model: {kind: gru, dropout: 0.1}, drift: {detector: adwin, threshold: 3}}'), [
    'model.dropout: is read by kind mlp only, and this model is gru: set model.kind: mlp, or remove dropout',
    'drift.threshold: is read by detector page-hinkley only, and this one is adwin: set drift.detector: page-hinkley, or remove threshold',
  ]);
  assert.deepEqual(await problems('{type: intent-model, drift: {grace_period: 4, action: reset_optimizer, factor: 3}}'), [
    'drift.grace_period: is read by detector adwin only, and this one is page-hinkley (the default detector): set drift.detector: adwin, or remove grace_period',
    'drift.factor: is read by action raise_learning_rate only, and this one is reset_optimizer: set drift.action: raise_learning_rate, or remove factor',
  ]);
  // Switched off, the detector or the action may keep its tuned settings to be switched on again: warnings.
  const warnings = async (model: string): Promise<string[]> => {
    const file = join(dir, `w${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml(model));
    return ((await loadPipeline(file, { registry: await builtinRegistry(), env: {} })).warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' }).replace(/^P:\d+:\d+: warning: \$\.stages\[2\]\./, ''));
  };
  assert.deepEqual(await warnings('{type: intent-model, drift: {detector: none, block: 5, threshold: 0.001}}'), [
    'drift.block: does nothing while drift.detector is none (no drift is detected): remove it, or name a detector',
    'drift.threshold: does nothing while drift.detector is none (no drift is detected): remove it, or name a detector',
  ]);
  assert.deepEqual(await warnings('{type: intent-model, drift: {factor: 3}}'), [
    'drift.factor: is read by action raise_learning_rate only, and this one is none (the default action): set drift.action: raise_learning_rate, or remove factor',
  ]);
  assert.deepEqual(await problems('{type: intent-model, optimizer: {kind: sgd}, drift: {action: reset_optimizer}}'), [
    "drift.action: reset_optimizer resets adam's moment estimates, and sgd keeps none, so a drift would change nothing: use raise_learning_rate, or optimizer.kind: adam",
  ]);
  for (const model of [
    '{type: intent-model, model: {kind: mlp, hidden: [8], dropout: 0.1}, drift: {detector: adwin, clock: 4, action: raise_learning_rate, factor: 3}}',
    '{type: churn-model, model: {kind: gru, units: 8, sequence_length: 4, category_buckets: 16}, drift: {threshold: 3, min_instances: 5, action: reset_optimizer}}',
    '{type: intent-model, drift: {detector: none}}',
  ]) {
    assert.deepEqual(await problems(model), [], model);
  }
  // A defineModel stage's `model` is its own: only its drift fields are checked.
  const registry = await builtinRegistry();
  registry.register(defineModel({ name: 'mean-model', task: 'intent', summary: 'A mean.', config: { type: 'object', properties: { hidden: { type: 'number' } } }, create: () => ({ predict: () => 0.5 }) }), './mean.js');
  assert.deepEqual(
    (await problemsOf(yaml('{type: mean-model, model: {hidden: 3}, drift: {detector: adwin, min_instances: 5}}'), { registry })).map((problem) => problem.replace(/^P:\d+:\d+: \$\.stages\[2\]\./, '')),
    ['drift.min_instances: is read by detector page-hinkley only, and this one is adwin: set drift.detector: page-hinkley, or remove min_instances'],
  );
});

test('session-features and a model stage with no sessionizer before them are config errors at the entry (was: validate ok, then every event dead-lettered, or a model that predicted and scored nothing); a stage before that does not say what it makes may be one', async () => {
  const yaml = (stages: string[]): string => `sources: [{type: synthetic}]\nstages:\n${stages.map((stage) => `  - ${stage}\n`).join('')}sinks: [{type: stdout}]\n`;
  const features = "needs a sessionizer before it: it reads each event's session, so without one every event would be dead-lettered ('event has no session'); put a `sessionizer` stage before it";
  const model = 'needs a sessionizer before it: its labels come from the session summaries one emits, so without one it would learn and score nothing; put a `sessionizer` stage before it';
  assert.deepEqual(await problemsOf(yaml(['{type: session-features}', '{type: intent-model}', '{type: churn-model}'])), [`P:3:5: $.stages[0]: ${features}`, `P:4:5: $.stages[1]: ${model}`, `P:5:5: $.stages[2]: ${model}`]);
  // After it, not before: the order counts.
  assert.deepEqual(await problemsOf(yaml(['{type: user-features}', '{type: churn-model}', '{type: sessionizer}'])), [`P:4:5: $.stages[1]: ${model}`]);
  assert.deepEqual(await problemsOf(yaml(['{type: sessionizer}', '{type: session-features}', '{type: intent-model}', '{type: churn-model}'])), []);
  // A user's stage that does not declare what it makes may be a sessionizer of its own.
  const registry = await builtinRegistry();
  registry.register(defineOperator({ name: 'my-sessions', summary: 'Sessions.', config: { type: 'object', properties: {} }, create: () => ({ apply: (input) => input }) }), './my.js');
  assert.deepEqual(await problemsOf(yaml(['{type: my-sessions}', '{type: session-features}', '{type: intent-model}']), { registry }), []);
});

test('a transform\'s feature name or pattern that no block before it appends is a warning at its item, with the name most likely meant (was: validate ok, the run logged it and left the feature as it was); none where a stage before it does not say what it appends', async () => {
  const yaml = (stages: string[]): string => `sources: [{type: synthetic}]\nstages:\n${stages.map((stage) => `  - ${stage}\n`).join('')}sinks: [{type: stdout}]\n`;
  const warningsOf = async (text: string, registry?: PluginRegistry): Promise<string[]> => {
    const file = join(dir, `w${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, text);
    return ((await loadPipeline(file, { registry: registry ?? (await builtinRegistry()), env: {} })).warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' }));
  };
  const blocks = ['{type: sessionizer}', '{type: session-features}', '{type: hash-features, fields: [category], width: 2, prefix: cat}'];
  const appended = 'they append s_events, s_views, s_carts, s_removes, s_purchases, s_distinct_items and 24 more';
  assert.deepEqual(await warningsOf(yaml([...blocks, '{type: log1p, features: [s_price, s_pric, "x_*", "cat_*"]}'])), [
    `P:6:39: warning: $.stages[3].features[1]: no stage before it appends a feature 's_pric' (did you mean 's_price'?), so it selects nothing (the run logs it once); ${appended}`,
    `P:6:47: warning: $.stages[3].features[2]: no feature a stage before it appends matches 'x_*', so it selects nothing (the run logs it once); ${appended}`,
  ]);
  // Names are those of the blocks before it, not after; standardize and clip are checked alike.
  assert.deepEqual(await warningsOf(yaml(['{type: sessionizer}', '{type: standardize, features: [u_events]}', '{type: user-features}', '{type: clip, features: [u_events], max: 1}'])), [
    "P:4:36: warning: $.stages[1].features[0]: no stage before it appends a feature 'u_events', so it selects nothing (the run logs it once); no stage before it appends features",
  ]);
  assert.deepEqual(await warningsOf(yaml([...blocks, '{type: standardize, features: ["*"]}', '{type: clip, features: ["s_*", cat_1], min: -3}'])), []);
  // A user's stage that does not declare its names may append any.
  const registry = await builtinRegistry();
  registry.register(defineOperator({ name: 'my-features', summary: 'Features.', config: { type: 'object', properties: {} }, create: () => ({ apply: (input) => input }) }), './my.js');
  assert.deepEqual(await warningsOf(yaml(['{type: sessionizer}', '{type: my-features}', '{type: log1p, features: [my_feature]}']), registry), []);
});

test("the unknown-feature warning's model wording is chosen by the spec's role: 'model' (defineModel's), not by a stage emitting predictions: an operator of one's own that predicts gets a transform's (was: the model wording, naming a create it does not have)", async () => {
  const scorer = (role: { role?: 'model' }) =>
    defineOperator<{ features: string[] }>({
      name: role.role === undefined ? 'my-scorer' : 'my-model',
      summary: 'Scores events by the features it selects (tests only).',
      config: { type: 'object', additionalProperties: false, properties: { features: { type: 'array', items: { type: 'string' }, default: [], description: 'Names or `*` patterns.' } } },
      featureNames: () => [],
      featureSelectorField: 'features',
      emits: ['prediction'],
      ...role,
      create: () => ({ apply: (input) => input }),
    });
  const registry = await builtinRegistry();
  registry.register(scorer({}), './scorer.js');
  registry.register(scorer({ role: 'model' }), './model.js');
  const warningOf = async (type: string): Promise<string> => {
    const file = join(dir, `role${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer}\n  - {type: session-features}\n  - {type: ${type}, features: [s_cartz]}\nsinks: [{type: stdout}]\n`);
    const warnings = (await loadPipeline(file, { registry, env: {} })).warnings ?? [];
    assert.equal(warnings.length, 1, warnings.map(formatWarning).join('\n'));
    return warnings[0]!.message;
  };
  assert.match(await warningOf('my-scorer'), /^no stage before it appends a feature 's_cartz' \(did you mean 's_carts'\?\), so it selects nothing \(the run logs it once\); /);
  assert.match(await warningOf('my-model'), /^no stage before it appends a feature 's_cartz' \(did you mean 's_carts'\?\), so the model reads nothing for it \(its create is handed/);
  // Declared on another kind, or with another value, it would word nothing: refused as the plugin registers.
  const because = registrationProblem(new PluginRegistry());
  const refused = "role is for operators only, and 'model' its one value (a model stage, as defineModel's); leave it out for any other";
  assert.equal(because('sink', { role: 'model' }), refused);
  assert.equal(because('operator', { role: 'transform' }), refused);
  assert.equal(because('operator', { role: 'model' }), '');
});

test('an event-time span written as a bare number under a second (horizon: 7, gap: 30) is a warning at its field: a number is milliseconds (was: taken as 7 ms, every churn label positive); with its unit, 0, or a second or more it is not', async () => {
  const warningsOf = async (stages: string[]): Promise<string[]> => {
    const file = join(dir, `w${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `sources: [{type: synthetic}]\nstages:\n${stages.map((stage) => `  - ${stage}\n`).join('')}sinks: [{type: stdout}]\n`);
    return ((await loadPipeline(file, { registry: await builtinRegistry(), env: {} })).warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' }).replace(/^P:\d+:\d+: warning: /, ''));
  };
  const said = (path: string, n: number): string => `${path}: ${n} is ${n} milliseconds (a bare number is milliseconds): write its unit (${n}d, ${n}h, ${n}m or ${n}s), or ${n}ms where milliseconds are meant`;
  assert.deepEqual(
    await warningsOf(['{type: sessionizer, gap: 30, max_length: 240, allowed_lateness: 5}', '{type: session-features}', '{type: user-features, horizons: [7, 1d]}', '{type: intent-model, label_buffer: {timeout: 900}}', '{type: churn-model, horizon: 7}']),
    [said('$.stages[0].gap', 30), said('$.stages[0].max_length', 240), said('$.stages[0].allowed_lateness', 5), said('$.stages[2].horizons[0]', 7), said('$.stages[3].label_buffer.timeout', 900), said('$.stages[4].horizon', 7)],
  );
  assert.deepEqual(await warningsOf(['{type: sessionizer, gap: 1800000, allowed_lateness: 0}', '{type: session-features}', '{type: user-features, horizons: [7ms, 1d]}', '{type: churn-model, horizon: 7d}']), []);
});

test('session-features time_zone that is no zone is a config error at its position, with the zone most likely meant; with utc_offset_minutes too, an error at that field; by validate and by the factory', async () => {
  const yaml = (features: string): string => `sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer}\n  - ${features}\nsinks: [{type: stdout}]\n`;
  const expected = '; expected an IANA zone name such as Europe/Berlin or America/New_York, or UTC';
  assert.deepEqual(await problemsOf(yaml('{type: session-features, time_zone: Berlin}')), [`P:4:41: $.stages[1].time_zone: time_zone 'Berlin': no such time zone (did you mean 'Europe/Berlin'?)${expected}`]);
  assert.deepEqual(await problemsOf(yaml('{type: session-features, time_zone: "UTC+1"}')), [
    `P:4:41: $.stages[1].time_zone: time_zone 'UTC+1': no such time zone (an offset is no zone: name the place, whose offset follows summer time)${expected}`,
  ]);
  const both = 'set time_zone or utc_offset_minutes, not both: time_zone follows summer time, a fixed offset does not; remove utc_offset_minutes';
  assert.deepEqual(await problemsOf(yaml('{type: session-features, time_zone: Europe/Berlin, utc_offset_minutes: 0}')), [`P:4:76: $.stages[1].utc_offset_minutes: ${both}`]);
  assert.equal(await factoryField('session-features', { time_zone: 'Europe/Berlin', utc_offset_minutes: 60 }), `utc_offset_minutes: ${both}`);
  assert.equal(await factoryField('session-features', { time_zone: 'Europe/Berln' }), `time_zone: time_zone 'Europe/Berln': no such time zone (did you mean 'Europe/Berlin'?)${expected}`);
  for (const features of ['{type: session-features}', '{type: session-features, time_zone: europe/berlin}', '{type: session-features, time_zone: UTC}', '{type: session-features, utc_offset_minutes: 345}']) {
    assert.deepEqual(await problemsOf(yaml(features)), [], features);
  }
  assert.equal(await factoryField('session-features', { time_zone: 'Asia/Kathmandu' }), 'no error');
  assert.equal(await factoryField('session-features', {}), 'no error');
});

test('clip with min above max, or with neither, is refused by validate (was: ok, then the run failed at the stage), at max where both are set; and by the factory at the same field', async () => {
  const yaml = (clip: string): string => `sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer}\n  - {type: session-features}\n  - ${clip}\nsinks: [{type: stdout}]\n`;
  const swapped = 'max (5) is below min (15): every value would be bounded to one of them; swap them';
  assert.deepEqual(await problemsOf(yaml('{type: clip, features: [s_price], min: 15, max: 5}')), [`P:5:53: $.stages[2].max: ${swapped}`]);
  assert.deepEqual(await problemsOf(yaml('{type: clip, features: [s_price]}')), ['P:5:5: $.stages[2]: clip needs min, max or both: without either it would change nothing']);
  for (const clip of ['{type: clip, features: [s_price], min: 5, max: 5}', '{type: clip, features: [s_price], min: 15}', '{type: clip, features: [s_price], max: -5}']) {
    assert.deepEqual(await problemsOf(yaml(clip)), [], clip);
  }
  assert.equal(await factoryField('clip', { features: ['s_price'], min: 15, max: 5 }), `max: ${swapped}`);
});

test("session-features whose hours would not be the source's clock's is a warning, not an error (loadPipeline's, and the runner's check): neither time_zone nor utc_offset_minutes while the source reads its times in Europe/Berlin, or a time_zone that is none of the sources' zones; none where they agree, UTC or a fixed offset is set, or the sources read in UTC (was: no warning, hours silently UTC)", async () => {
  const yaml = (mappings: string[], features: string): string =>
    `sources:\n${mappings.map((mapping, i) => `  - {type: file, path: e${i}.jsonl${mapping}}\n`).join('')}stages:\n  - {type: sessionizer}\n  - ${features}\nsinks: [{type: stdout}]\n`;
  const warningsOf = async (text: string): Promise<string[]> => {
    const file = join(dir, `zones${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, text);
    const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
    const again: ConfigProblem[] = [];
    assert.deepEqual(loadedPipelineProblems(loaded, again), [], 'no problem');
    // At the same line and column (the runner's locator gave a field's value's column where loadPipeline gave its key's).
    const said = (warnings: readonly ConfigProblem[]): string[] => warnings.map(({ line, column, path, message }) => `${line}:${column}: ${path}: ${message}`);
    assert.deepEqual(said(again), said(loaded.warnings ?? []), 'the runner finds the same warnings');
    return (loaded.warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' }));
  };
  const berlin = ', mapping: {time_zone: Europe/Berlin}';
  assert.deepEqual(await warningsOf(yaml([berlin], '{type: session-features}')), [
    'P:5:5: warning: $.stages[1].time_zone: neither time_zone nor utc_offset_minutes is set, so the hour-of-day and day-of-week features are taken in UTC, while source source-file-0 reads its times in Europe/Berlin (mapping.time_zone): set time_zone: Europe/Berlin on this stage for the hours of a clock there (time_zone: UTC keeps UTC and says it is meant)',
  ]);
  // Said at the field when it is there; the source named by its label, the zone by its canonical name.
  assert.deepEqual(await warningsOf(yaml(['', ', label: shop, mapping: {time_zone: europe/berlin}'], '{type: session-features, time_zone: America/New_York}')), [
    'P:6:41: warning: $.stages[1].time_zone: time_zone America/New_York takes the hour-of-day and day-of-week features in another zone than the times are read in: source shop reads its times in Europe/Berlin (mapping.time_zone); set time_zone: Europe/Berlin on this stage, unless the hours of a clock in America/New_York are meant',
  ]);
  for (const [mappings, features] of [
    [[berlin], '{type: session-features, time_zone: Europe/Berlin}'],
    [[', mapping: {time_zone: europe/berlin}'], '{type: session-features, time_zone: Europe/Berlin}'],
    [[berlin], '{type: session-features, time_zone: UTC}'],
    [[berlin], '{type: session-features, utc_offset_minutes: 60}'],
    [[', mapping: {time_zone: America/New_York}', berlin], '{type: session-features, time_zone: Europe/Berlin}'],
    [['', ', mapping: {time_zone: Etc/UTC}'], '{type: session-features}'],
    [[''], '{type: session-features, time_zone: Asia/Kathmandu}'],
  ] as const) {
    assert.deepEqual(await warningsOf(yaml([...mappings], features)), [], `${mappings.join(' ')} ${features}`);
  }
  // A source whose pattern reads an offset carries its own: its time_zone applies to no time (the mapping's warning
  // says so), so it names no clock the hours should follow (was: counted as reading its times in Europe/Berlin).
  const offsets = ', mapping: {time_zone: Europe/Berlin, time_format: "yyyy-MM-dd HH:mm:ssXXX"}';
  const noTime = "time_zone Europe/Berlin applies to no time: time_format 'yyyy-MM-dd HH:mm:ssXXX' reads an offset with each, and so the instant; remove time_zone, or the offset letter where the times are to be read in Europe/Berlin";
  assert.deepEqual(await warningsOf(yaml([offsets], '{type: session-features}')), [`P:2:55: warning: $.sources[0].mapping.time_zone: ${noTime}`]);
  assert.deepEqual(await warningsOf(yaml([offsets], '{type: session-features, time_zone: America/New_York}')), [`P:2:55: warning: $.sources[0].mapping.time_zone: ${noTime}`]);
  // So does an epoch (epoch_ms, epoch_s), an instant: was counted as reading its times in Europe/Berlin, warning of the stage in UTC.
  for (const format of ['epoch_ms', 'epoch_s']) {
    const epochs = `, mapping: {time_zone: Europe/Berlin, time_format: ${format}}`;
    const unit = format === 'epoch_ms' ? 'milliseconds' : 'seconds';
    assert.deepEqual(await warningsOf(yaml([epochs], '{type: session-features}')), [
      `P:2:55: warning: $.sources[0].mapping.time_zone: time_zone Europe/Berlin applies to no time: time_format '${format}' reads instants (${unit} since 1970-01-01 UTC); remove time_zone`,
    ]);
  }
  // Beside it, a source that reads its times in a zone is the one named.
  assert.deepEqual(await warningsOf(yaml([offsets, ', label: ny, mapping: {time_zone: America/New_York}'], '{type: session-features}')), [
    `P:2:55: warning: $.sources[0].mapping.time_zone: ${noTime}`,
    'P:6:5: warning: $.stages[1].time_zone: neither time_zone nor utc_offset_minutes is set, so the hour-of-day and day-of-week features are taken in UTC, while source ny reads its times in America/New_York (mapping.time_zone): set time_zone: America/New_York on this stage for the hours of a clock there (time_zone: UTC keeps UTC and says it is meant)',
  ]);
  // A warning is no error: an error of another stage beside it is said alone, as before.
  assert.deepEqual(await problemsOf(yaml([berlin], '{type: session-features}\n  - {type: user-features, horizons: [1d, 1d]}')), ['P:6:42: $.stages[2].horizons[1]: the same as horizons[0], got "1d"']);
});

test('a time_zone that is an abbreviation (EST, CET), in any source\'s mapping (file, kafka) or session-features, is a warning at its position with the place most likely meant, not an error; so is a mapping time_zone that a pattern with an offset leaves to no time (was: taken without a word)', async () => {
  const file = join(dir, 'abbreviations.yaml');
  writeFileSync(
    file,
    [
      'sources:',
      '  - type: file',
      '    path: x.jsonl',
      '    mapping: { time_zone: EST }',
      '  - type: kafka',
      '    brokers: "k:9092"',
      '    topics: [t]',
      '    group: g',
      '    mapping:',
      '      time_format: "yyyy-MM-dd HH:mm:ssXXX"',
      '      time_zone: Europe/Berlin',
      'stages:',
      '  - {type: sessionizer}',
      '  - {type: session-features, time_zone: CET}',
      'sinks: [{type: stdout}]',
    ].join('\n'),
  );
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  const again: ConfigProblem[] = [];
  assert.deepEqual(loadedPipelineProblems(loaded, again), [], 'no problem');
  const said = (warnings: readonly ConfigProblem[]): string[] => warnings.map(({ line, column, path, message }) => `${line}:${column}: ${path}: ${message}`);
  assert.deepEqual(said(again), said(loaded.warnings ?? []), 'the runner finds the same warnings');
  assert.deepEqual(
    (loaded.warnings ?? []).map((warning) => formatWarning({ ...warning, file: 'P' })),
    [
      `P:4:27: warning: $.sources[0].mapping.time_zone: ${zoneNameWarning('EST')!}`,
      "P:11:18: warning: $.sources[1].mapping.time_zone: time_zone Europe/Berlin applies to no time: time_format 'yyyy-MM-dd HH:mm:ssXXX' reads an offset with each, and so the instant; remove time_zone, or the offset letter where the times are to be read in Europe/Berlin",
      `P:14:41: warning: $.stages[1].time_zone: ${zoneNameWarning('CET')!}`,
      // The hours taken in another zone than the first source's, as before (its zone by the name this runtime reads it as).
      `P:14:41: warning: $.stages[1].time_zone: time_zone CET takes the hour-of-day and day-of-week features in another zone than the times are read in: source source-file-0 reads its times in EST (mapping.time_zone); set time_zone: EST on this stage, unless the hours of a clock in CET are meant`,
    ],
  );
});

test('a list that names one thing twice is refused at the later item, naming the earlier: hash-features fields (the field would count double), user-features horizons (the same features under two names; one duration written two ways too, by validate and by the factory)', async () => {
  const yaml = (stages: string): string => `sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer}\n  - {type: session-features}\n${stages}\nsinks: [{type: stdout}]\n`;
  assert.deepEqual(await problemsOf(yaml('  - {type: hash-features, fields: [category, itemId, category]}')), ['P:5:54: $.stages[2].fields[2]: the same as fields[0], got "category"']);
  assert.deepEqual(await problemsOf(yaml('  - {type: user-features, horizons: [1h, 1d, 1d]}')), ['P:5:46: $.stages[2].horizons[2]: the same as horizons[1], got "1d"']);
  // One duration written two ways: said by validate too, not only when the run starts, at the item (was: at the list, 5:37).
  assert.deepEqual(await problemsOf(yaml('  - {type: user-features, horizons: [1h, 1d, 24h]}')), ["P:5:46: $.stages[2].horizons[2]: '24h' is the same duration as horizons[1] '1d'"]);
  assert.equal(await factoryField('user-features', { horizons: ['1h', '1d', '24h'], max_users: 10 }), "horizons[2]: '24h' is the same duration as horizons[1] '1d'");
  assert.equal(await factoryField('user-features', { horizons: ['1h', 3_600_000], max_users: 10 }), "horizons[1]: '3600000ms' is the same duration as horizons[0] '1h'");
  assert.equal(await factoryField('hash-features', { fields: ['category', 'category'], width: 8, prefix: 'h', signed: true }), "fields[1]: 'category' is fields[0] again: it would count double");
  assert.equal(await factoryField('user-features', { horizons: ['1h', '1d'], max_users: 10 }), 'no error');
});

test("two entries with one label (a stage's own, or one an entry's default label already is) are config errors at the later label, across sources, stages, sinks and the dead-letter sink: a label keys state in checkpoints", async () => {
  const problems = await problemsOf(
    [
      'sources:', //                                          1
      '  - {type: synthetic, label: clicks}', //              2
      'stages:', //                                           3
      '  - {type: sessionizer, label: sessions}', //          4
      '  - {type: sessionizer, label: sessions}', //          5 the same label: one state for both in checkpoints
      '  - {type: user-features}', //                         6 default label stage-user-features-2
      '  - {type: session-features, label: stage-user-features-2}', // 7 that default label
      'sinks:', //                                            8
      '  - {type: stdout, label: clicks}', //                 9 a source's label
      'dead_letter: {type: stdout, label: sessions}', //      10
    ].join('\n'),
  );
  const why = "labels key each stage's state and each source's position in checkpoints and name each instance's metrics and logs, so every entry needs its own";
  assert.deepEqual(problems, [
    `P:5:32: $.stages[1].label: label 'sessions' is also the label of $.stages[0] (line 4): ${why}`,
    `P:7:37: $.stages[3].label: label 'stage-user-features-2' is also the default label of $.stages[2] (line 6): ${why}`,
    `P:9:27: $.sinks[0].label: label 'clicks' is also the label of $.sources[0] (line 2): ${why}`,
    `P:10:36: $.dead_letter.label: label 'sessions' is also the label of $.stages[0] (line 4): ${why}`,
  ]);
  // Without a dead_letter section the runtime's own dead-letter sink is labelled dead-letter.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout, label: dead-letter}]\n'), [
    `P:2:31: $.sinks[0].label: label 'dead-letter' is also the default label of the default dead-letter sink (the pipeline names no dead_letter): ${why}`,
  ]);
  // Labels of their own, each once: fine.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic, label: a}]\nstages: [{type: sessionizer, label: b}]\nsinks: [{type: stdout, label: c}]\ndead_letter: {type: stdout, label: d}\n'), []);
  // The runner checks a pipeline again as it is handed it (one composed or changed in code): a label set there too.
  const file = join(dir, 'labels-runner.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer, label: s}\n  - {type: user-features}\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  loaded.stages[1]!.entry.label = 's';
  assert.deepEqual(loadedPipelineProblems(loaded).map((p) => formatProblem({ ...p, file: 'P' })), [`P:4:5: $.stages[1].label: label 's' is also the label of $.stages[0] (line 3): ${why}`]);
});

test("a stage labelled `sinks` is a config error at its label: tributary_stage_latency_seconds{stage=\"sinks\"} is the runtime's time of routing and writing, which the stage's would be mixed with", async () => {
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nstages: [{type: sessionizer, label: sinks}]\nsinks: [{type: stdout}]\n'), [
    `P:2:37: $.stages[0].label: label 'sinks' is the runtime's own: tributary_stage_latency_seconds{stage="sinks"} is the time of routing and writing to the sinks, which this stage's would be mixed with; give the stage another label`,
  ]);
  // A sink (or source) is not timed per entry: the label is free for it.
  assert.deepEqual(await problemsOf('sources: [{type: synthetic}]\nsinks: [{type: stdout, label: sinks}]\n'), []);
});


test("a schema mistake no longer hides the checks across entries (was: said alone, the next one only once it was mended): each check runs on what it can judge, all said at once by line", async () => {
  const why = "labels key each stage's state and each source's position in checkpoints and name each instance's metrics and logs, so every entry needs its own";
  // A bad value in one entry, a label two stages share (one of them the invalid entry) and an unknown sink type.
  assert.deepEqual(
    await problemsOf(
      [
        'settings: {max_in_flight: -3}', //                       1 the document's schema
        'sources: [{type: synthetic, events: -1}]', //             2 an entry's schema
        'stages:', //                                              3
        '  - {type: sessionizer, label: s, gap: soon}', //         4 invalid, still labelled s
        '  - {type: session-features, label: s}', //               5 the same label
        'sinks:', //                                               6
        '  - {type: stdot}', //                                    7 unknown plugin
        '  - {type: stdout, label: s}', //                         8 the same label again
      ].join('\n'),
    ),
    [
      'P:1:27: $.settings.max_in_flight: must be >= 1, got -3',
      'P:2:37: $.sources[0].events: must be >= 0, got -1',
      'P:4:40: $.stages[0].gap: expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got "soon"',
      `P:5:37: $.stages[1].label: label 's' is also the label of $.stages[0] (line 4): ${why}`,
      "P:7:12: $.sinks[0].type: unknown sink plugin 'stdot' (did you mean 'stdout'?); known sink plugins: file, kafka, stdout",
      `P:8:27: $.sinks[1].label: label 's' is also the label of $.stages[0] (line 4): ${why}`,
    ],
  );
  // Every source and stage valid: what the sinks are handed is judged beside a document mistake and an invalid sink.
  assert.deepEqual(
    await problemsOf(['name: 5', 'sources: [{type: synthetic}]', 'stages: [{type: sessionizer}]', 'sinks:', '  - {type: stdout, kinds: [sesion]}', '  - {type: file}'].join('\n')),
    [
      'P:1:7: $.name: must be string, got 5',
      "P:5:28: $.sinks[0].kinds[0]: no source or stage of this pipeline emits kind 'sesion' (did you mean 'session'?), so this sink would get none; they emit: event, session",
      "P:6:5: $.sinks[1]: missing required field 'path'",
    ],
  );
  // A sink writing a source's input, beside another source's mistake; scale-out's order beside a stage's mistake.
  writeFileSync(join(dir, 'in.jsonl'), '');
  assert.deepEqual(
    await problemsOf(
      [
        'sources:', //                                        1
        '  - {type: file, path: in.jsonl}', //                 2
        '  - {type: synthetic, users: lots}', //               3
        'stages:', //                                         4
        "  - {type: standardize, features: ['s_*']}", //      5 global
        '  - {type: sessionizer, gap: soon}', //              6 per user, after it; invalid
        'sinks: [{type: file, path: in.jsonl}]', //           7
        'scale_out: {state_dir: shared}', //                  8
      ].join('\n'),
    ).then((problems) => problems.map((problem) => problem.replace(/: \/\S*\/in\.jsonl is/, ': IN is'))),
    [
      "P:2:5: $.sources[0]: scale_out needs a partitioned source (kafka); 'file' is not: with several sources, partition p of each goes to one task p, so every source must be one (co-partitioned topics)",
      "P:3:5: $.sources[1]: scale_out needs a partitioned source (kafka); 'synthetic' is not: with several sources, partition p of each goes to one task p, so every source must be one (co-partitioned topics)",
      'P:3:30: $.sources[1].users: must be integer, got "lots"',
      "P:6:12: $.stages[1].type: 'sessionizer' keeps per-user state but follows 'standardize' (global state); with scale_out, per-user stages must come before global ones",
      'P:6:30: $.stages[1].gap: expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got "soon"',
      "P:7:28: $.sinks[0].path: IN is the input of sources[0] (path: in.jsonl): writing it would replace that file before it is read (or, appending, read this sink's records back as input); name another file in this sink's path",
    ],
  );
  // The runner's check of a pipeline (one changed in code) says both too.
  const file = join(dir, 'schema-and-labels.yaml');
  writeFileSync(file, 'sources: [{type: synthetic}]\nstages:\n  - {type: sessionizer, label: s}\n  - {type: user-features}\nsinks: [{type: stdout}]\n');
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: {} });
  loaded.stages[1]!.entry.label = 's';
  loaded.sources[0]!.entry.users = 'lots';
  assert.deepEqual(loadedPipelineProblems(loaded).map((p) => formatProblem({ ...p, file: 'P' })), [
    'P:1:11: $.sources[0].users: must be integer, got "lots"',
    `P:4:5: $.stages[1].label: label 's' is also the label of $.stages[0] (line 3): ${why}`,
  ]);
});

test('mapping.fields.user_id and session_id load as a list of fields read in turn; an empty list, an element that is no text or a path written wrong is a config error at its position (was: "must be string" for any list)', async () => {
  const lines = (userId: string): string =>
    ['sources:', '  - type: file', '    path: x.jsonl', '    mapping:', '      fields:', `        user_id: ${userId}`, '        session_id: [session_id, properties.session_id]', 'sinks: [{type: stdout}]'].join('\n');
  assert.deepEqual(await problemsOf(lines('[userId, anonymousId]')), []);
  assert.deepEqual(await problemsOf(lines('[]')), ['P:6:18: $.sources[0].mapping.fields.user_id: must NOT have fewer than 1 items']);
  assert.deepEqual(await problemsOf(lines('[userId, 3]')), ['P:6:27: $.sources[0].mapping.fields.user_id[1]: must be string, got 3']);
  assert.deepEqual(await problemsOf(lines('[userId, "a[k=v]"]')), [
    `P:6:27: $.sources[0].mapping.fields.user_id[1]: field 'a[k=v]': [k=v]: the value of a test is JSON: text in double quotes ([k="v"]), a number, true or false`,
  ]);
});

test('a value of no type a field takes, where it takes several (a field name or a list of them; an object or `canonical`; a librdkafka option), says each in words at the field, as other config errors do (was: "must be string,array")', async () => {
  const source = (mapping: string): string => ['sources:', '  - type: file', '    path: x.jsonl', `    mapping: ${mapping}`, 'sinks: [{type: stdout}]'].join('\n');
  assert.deepEqual(await problemsOf(source('{fields: {user_id: 5, session_id: {a: 1}}}')), [
    'P:4:33: $.sources[0].mapping.fields.user_id: must be a field name or a list of field names, got 5',
    'P:4:48: $.sources[0].mapping.fields.session_id: must be a field name or a list of field names, got {"a":1}',
  ]);
  assert.deepEqual(await problemsOf(source('5')), ['P:4:14: $.sources[0].mapping: must be an object or `canonical`, got 5']);
  const kafka = ['sources:', '  - type: kafka', '    brokers: [localhost:9092]', '    topics: [t]', '    group: g', '    options: {linger.ms: [5]}', 'sinks: [{type: stdout}]'].join('\n');
  assert.deepEqual(await problemsOf(kafka), ['P:6:26: $.sources[0].options["linger.ms"]: must be a string, a number or a boolean (true or false), got [5]']);
});

test('a block shared by several entries: anchored under a top-level `x-` key (Docker Compose\'s convention), used whole (`*name`) or merged (`<<: *name`); a problem inside it is said at the anchor\'s text, named by the entry that uses it', async () => {
  const shared = [
    'x-sink: &sink {lazy: true}', //                  1
    'x-source: &source', //                           2
    '  users: 5', //                                  3
    '  events: ${EVENTS}', //                         4
    'sources:', //                                    5
    '  - type: synthetic', //                         6
    '    <<: *source', //                             7
    '    seed: 3', //                                 8
    'sinks:', //                                      9
    '  - {type: file, path: a.jsonl, <<: *sink}', //  10
    '  - type: file', //                              11
    '    path: b.jsonl', //                           12
    '    <<: [*sink]', //                             13
    '',
  ].join('\n');
  const file = join(dir, 'anchors.yaml');
  writeFileSync(file, shared);
  // Before: `<<` was a field of its own, refused; and `x-source` an unknown top-level field.
  const loaded = await loadPipeline(file, { registry: await builtinRegistry(), env: { EVENTS: '40' } });
  const source = loaded.document.sources[0] as unknown as Record<string, unknown>;
  assert.equal(source.users, 5);
  assert.equal(source.events, 40, 'a variable in the anchored block is filled in, typed as a plain scalar');
  assert.equal(source.seed, 3);
  assert.ok(!('<<' in source));
  assert.deepEqual(loaded.document.sinks.map((sink) => (sink as unknown as { lazy: boolean }).lazy), [true, true]);

  // A wrong value inside the anchored block: at its place in the anchor, the path the entry's.
  assert.deepEqual(await problemsOf(shared.replace('users: 5', 'users: many'), { env: { EVENTS: '40' } }), ['P:3:10: $.sources[0].users: must be integer, got "many"']);
  assert.deepEqual(await problemsOf(shared.replace('{lazy: true}', '{lazy: true, lazzy: 1}'), { env: { EVENTS: '40' } }), [
    "P:1:28: $.sinks[0].lazzy: unknown field 'lazzy' (did you mean 'lazy'?)",
    "P:1:28: $.sinks[1].lazzy: unknown field 'lazzy' (did you mean 'lazy'?)",
  ]);
  // An unset variable in it: at the anchor (it is one text, whichever entries use it).
  assert.deepEqual(await problemsOf(shared), ['P:4:11: $.x-source.events: environment variable EVENTS is not set and has no default (write ${EVENTS:-default})']);
  // An alias of no anchor, a merge key of no map: config errors at them (yaml threw, with no place).
  assert.deepEqual(await problemsOf(shared.replace('<<: *source', '<<: *sourec'), { env: { EVENTS: '40' } }), [
    'P:7:9: $.sources[0]["<<"]: no anchor &sourec before this alias *sourec: an alias names an anchor written above it in the file',
  ]);
  assert.deepEqual(await problemsOf(shared.replace('<<: [*sink]', '<<: [*sink, 3]'), { env: { EVENTS: '40' } }), [
    'P:13:17: $.sinks[1]["<<"]: a merge key (`<<`) takes a map, an alias of one (`<<: *name`), or a list of them (`<<: [*a, *b]`)',
  ]);
  // The entry's own field overrides the merged one, and a problem of its own is said at it.
  assert.deepEqual(await problemsOf(shared.replace('seed: 3', 'users: lots'), { env: { EVENTS: '40' } }), ['P:8:12: $.sources[0].users: must be integer, got "lots"']);
});

test('a value a `${VAR}` fills in inside a block shared by anchor: a problem of it in an entry that uses the block says the variable and the anchor, at the anchor\'s text, named by that entry', async () => {
  const kafka = [
    'x-kafka: &kafka', //                                       1
    '  brokers: ${KAFKA_BROKERS}', //                           2
    '  security:', //                                           3
    '    sasl:', //                                             4
    '      mechanism: ${KAFKA_SASL_MECHANISM}', //              5
    '      username: app', //                                   6
    '      password: ${KAFKA_PASSWORD}', //                     7
    'x-group: &group "${GROUP}"', //                            8
    'sources:', //                                              9
    '  - type: kafka', //                                       10
    '    <<: *kafka', //                                        11
    '    topics: [clicks]', //                                  12
    '    group: *group', //                                     13
    'sinks:', //                                                14
    '  - type: kafka', //                                       15
    '    brokers: ${KAFKA_BROKERS}', //                         16
    '    topic: out', //                                        17
    '    security: {sasl: {mechanism: "${KAFKA_SASL_MECHANISM}", username: app, password: pw}}', // 18
    '',
  ].join('\n');
  const env = { KAFKA_BROKERS: 'b:9092', KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_PASSWORD: 'pw', GROUP: 'g' };
  assert.deepEqual(await problemsOf(kafka, { env }), []);
  // Before: the note was lost at the entry using the block (the sink's own text kept it), so the line pointed
  // at (the anchor's) and the value the problem is about (the variable's) did not seem to match.
  const oneOf = 'must be one of: "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", got (not shown: a secret) (did you mean \'SCRAM-SHA-512\'?)';
  assert.deepEqual(await problemsOf(kafka, { env: { ...env, KAFKA_SASL_MECHANISM: 'SCRAM-SHA-511' } }), [
    `P:5:18: $.sources[0].security.sasl.mechanism: ${oneOf} (a value filled in from \${KAFKA_SASL_MECHANISM}, in the block anchored &kafka that this entry uses)`,
    `P:18:34: $.sinks[0].security.sasl.mechanism: ${oneOf} (a value filled in from \${KAFKA_SASL_MECHANISM})`,
  ]);
  // A whole value by alias (`group: *group`): said at the alias, with the variable and the anchor.
  assert.deepEqual(await problemsOf(kafka, { env: { ...env, GROUP: '' } }), [
    'P:13:12: $.sources[0].group: must NOT have fewer than 1 characters (a value filled in from ${GROUP}, in the block anchored &group that this entry uses)',
  ]);
  // A secret whose unquoted digits YAML read as a number: the cure (quotes) is said in the shared block too (was: `must be string` alone).
  assert.deepEqual(await problemsOf(kafka, { env: { ...env, KAFKA_PASSWORD: '1234' } }), [
    'P:7:17: $.sources[0].security.sasl.password: must be string, got (not shown: a secret): an unquoted ${KAFKA_PASSWORD} is read as YAML reads its value (digits a number, true or false a boolean, empty or null no value); quote it for text: "${KAFKA_PASSWORD}"',
  ]);
});


test("a plugin's `external` (its sink writes outside the run, replaced by a file in a backtest) is a boolean of a sink: said at registration otherwise, naming the plugin; the built-in kafka sink declares it, the file and stdout sinks do not", async () => {
  const registry = new PluginRegistry();
  const sink = { write: () => undefined, close: async () => undefined };
  assert.throws(() => registry.register(defineSink({ name: 's', summary: 's', config: {}, external: 'yes' as unknown as boolean, create: () => sink }), 'test'), /sink 's' is not a valid plugin: external is for sinks only: true where/);
  const source = defineSource({ name: 'o', summary: 's', config: {}, external: true, create: () => ({ read: async function* () {}, close: async () => undefined }) } as never);
  assert.throws(() => registry.register(source, 'test'), /source 'o' is not a valid plugin: external is for sinks only/);
  registry.register(defineSink({ name: 'http', summary: 's', config: {}, external: true, create: () => sink }), 'test');
  const builtin = await builtinRegistry();
  assert.deepEqual(
    builtin.names('sink').map((name) => [name, builtin.get('sink', name)!.kind === 'sink' && (builtin.get('sink', name) as { external?: boolean }).external === true]),
    [['file', false], ['kafka', true], ['stdout', false]],
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { defineOperator, defineSource, recordOperator, type ClickEvent, type StreamRecord } from 'tributary';
import { runYaml, tempFolder, until } from 'tributary/testing';
import { CheckpointStore } from './checkpoint.js';
import { MetricsHub } from './telemetry.js';

// Erasure requests (the pipeline's `erasure` section): a GDPR request to erase one shopper, sent in-stream.

const ERASED = 'shopper-to-erase-7f3a';
const KEPT = 'shopper-kept-91c2';
const start = Date.UTC(2026, 0, 5, 9);
const minute = 60_000;

/** Two sessions each of U and V (the first closed by the gap, so churn holds both users), buying in neither. */
function clicks(): ClickEvent[] {
  const events: ClickEvent[] = [];
  for (const [offset, count] of [
    [0, 6],
    [120, 5],
  ] as const) {
    for (let k = 0; k < count; k++) {
      for (const [u, userId] of [ERASED, KEPT].entries()) {
        events.push({ kind: 'event', userId, time: start + (offset + k * 2 + u) * minute, type: k % 3 === 2 ? 'cart' : 'view', itemId: `item-${k}`, category: `cat-${u}`, price: 10 + k });
      }
    }
  }
  return events;
}

/**
 * The clicks, then `request` (an erasure, or none), then more of V's clicks; then it waits until the run is
 * stopped, so the checkpoint the stop writes holds the stages' live state (the end of input would close every session).
 */
function clicksThen(request: ClickEvent[], read: { done: boolean }) {
  return defineSource<Record<string, never>>({
    name: 'clicks-then',
    summary: 'test',
    config: { type: 'object', properties: {} },
    create: (_config, context) => ({
      async *read() {
        yield clicks();
        if (request.length > 0) yield request;
        yield [0, 1, 2].map((k): ClickEvent => ({ kind: 'event', userId: KEPT, time: start + (140 + k) * minute, type: 'view', itemId: `item-${k}`, category: 'cat-1', price: 20 }));
        read.done = true;
        await new Promise((resolve) => context.signal!.addEventListener('abort', resolve, { once: true }));
      },
    }),
  });
}

const stagesWith = (model: string): string =>
  'stages:\n  - {type: sessionizer, gap: 30m}\n  - {type: session-features}\n  - {type: user-features, horizons: [1d]}\n' +
  `  - {type: intent-model, label: intent, name: intent, model: ${model}, batch: {max_size: 1}}\n` +
  `  - {type: churn-model, label: churn, name: churn, model: ${model}, batch: {max_size: 1}}\n`;

async function run(baseDir: string, request: ClickEvent[], erasure = 'erasure: {}\n', stages = stagesWith('{kind: logistic}')) {
  const read = { done: false };
  const stop = new AbortController();
  const lines: { msg: string; [field: string]: unknown }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const metrics = new MetricsHub();
  const running = runYaml(`name: shop\nsources: [{type: clicks-then}]\n${stages}sinks: [{type: memory}]\ncheckpoint: {dir: cp}\n${erasure}`, {
    baseDir,
    plugins: [clicksThen(request, read)],
    signal: stop.signal,
    logger,
    metrics,
  });
  await until(() => read.done, 'the source read every batch');
  stop.abort();
  const result = await running;
  const checkpoint = (await new CheckpointStore(join(baseDir, 'cp')).latest())!;
  return { ...result, checkpoint, lines, metrics: await metrics.registry.metrics() };
}

const erase = (userId: string): ClickEvent => ({ kind: 'event', userId, time: start + 130 * minute, type: 'erase' });
const ofKept = (records: readonly StreamRecord[]) => records.filter((record) => record.userId === KEPT).map((record) => JSON.stringify({ ...record, features: undefined }));

test("an erasure request in the input drops the user's state from every stage: the next checkpoint holds nothing of theirs, the other user's state and predictions are as without it", async (t) => {
  const kept = await run(tempFolder(t, 'no-erasure'), []);
  const erased = await run(tempFolder(t, 'erasure'), [erase(ERASED)]);
  // Before the request each stage held both users: the comparison below would pass on a stage that holds nothing.
  for (const label of ['stage-sessionizer-0', 'stage-session-features-1', 'stage-user-features-2', 'intent', 'churn']) {
    const state = JSON.stringify(kept.checkpoint.operators[label]);
    assert.ok(state.includes(ERASED) && state.includes(KEPT), `${label} holds both users without the request`);
    const after = JSON.stringify(erased.checkpoint.operators[label]);
    assert.ok(!after.includes(ERASED), `${label} still holds the erased user: ${after.slice(0, 400)}`);
    assert.ok(after.includes(KEPT), `${label} lost the other user`);
  }
  assert.ok(!readFileSync(erased.checkpoint.file, 'utf8').includes(ERASED), 'the checkpoint file names the erased user nowhere');
  // The other user's predictions and feature vectors: as in the run without the request.
  const outputs = (r: typeof kept) => r.outputs[0]!.filter((record) => record.kind === 'prediction' || record.kind === 'event');
  assert.ok(ofKept(outputs(kept)).some((text) => text.includes('"kind":"prediction"')), 'the other user was predicted');
  assert.deepEqual(ofKept(outputs(erased)), ofKept(outputs(kept)));
  const features = (r: typeof kept) => r.outputs[0]!.filter((record) => record.kind === 'event' && record.userId === KEPT).map((record) => Array.from((record.features as { values: Float32Array }).values));
  assert.deepEqual(features(erased), features(kept));
  // The request reached no stage and no sink: counted as filtered, in its metric, and logged without the id in clear.
  assert.ok(!erased.outputs[0]!.some((record) => record.type === 'erase'), 'the request is no output');
  assert.equal(erased.stats.filteredByReason['source-clicks-then-0: erasure request'], 1);
  assert.match(erased.metrics, /^tributary_erasures_total\{pipeline="shop"\} 1$/m);
  const done = erased.lines.filter((line) => line.msg.startsWith('erasure request done'));
  assert.equal(done.length, 1, erased.lines.map((line) => line.msg).join('\n'));
  assert.match(String(done[0]!.user_sha256), /^[0-9a-f]{16}$/);
  assert.ok(!JSON.stringify(erased.lines).includes(ERASED), 'no log line names the erased user in clear');
  assert.deepEqual(erased.deadLetters, []);
});

test('log_user_id: clear names the user in the log line of the request; without the erasure section an erase event is an event like any other', async (t) => {
  const clear = await run(tempFolder(t, 'clear'), [erase(ERASED)], 'erasure: {log_user_id: clear}\n');
  assert.equal(clear.lines.find((line) => line.msg.startsWith('erasure request done'))?.user, ERASED);
  const off = await run(tempFolder(t, 'off'), [erase(ERASED)], '');
  assert.ok(JSON.stringify(off.checkpoint.operators['stage-user-features-2']).includes(ERASED), 'kept: no erasure section');
});

test('an erasure request without a user id goes to the dead-letter sink with the reason, and erases no one', async (t) => {
  const erased = await run(tempFolder(t, 'no-user'), [{ kind: 'event', userId: '', time: start + 130 * minute, type: 'erase' }]);
  assert.equal(erased.deadLetters.length, 1);
  assert.match(String(erased.deadLetters[0]!.reason), /^erasure request \(event type 'erase'\) without a user id: nothing to erase$/);
  assert.equal(erased.stats.deadLettered, 1);
  assert.ok(JSON.stringify(erased.checkpoint.operators['intent']).includes(ERASED), 'no one erased');
});

test('an erasure request read through a mapping without its user id is dead-lettered as an erasure request, with the field it lacks (a view without one keeps the mapping\'s reason alone); one with it erases the user', async (t) => {
  // Was: the mapping rejected it before the runtime saw its type, so its reason (`user_id: missing user id`) did not say it asked to erase anyone.
  const baseDir = tempFolder(t, 'mapped');
  const lines = [
    ...clicks().map((event) => ({ user_id: event.userId, ts: event.time, event_type: event.type, item_id: event.itemId })),
    { ts: start + 130 * minute, event_type: 'forget_me' },
    { ts: start + 130 * minute, event_type: 'view' },
    { user_id: ERASED, ts: start + 131 * minute, event_type: 'forget_me' },
  ];
  writeFileSync(join(baseDir, 'clicks.jsonl'), lines.map((line) => JSON.stringify(line)).join('\n') + '\n');
  const result = await runYaml(
    'name: shop\nsources: [{type: file, path: clicks.jsonl, mapping: {fields: {user_id: user_id, time: ts, type: event_type, item_id: item_id}, time_format: epoch_ms, event_types: {forget_me: erase}}}]\n' +
      'stages:\n  - {type: sessionizer, gap: 30m}\n  - {type: user-features, horizons: [1d]}\nsinks: [{type: memory}]\nerasure: {event_type: erase}\n',
    { baseDir },
  );
  assert.deepEqual(
    result.deadLetters.map((letter) => [letter.reason, letter.line]),
    [
      ["erasure request (event type 'erase') rejected by the source's mapping: nothing erased: user_id: missing user id", lines.length - 2],
      ['user_id: missing user id', lines.length - 1],
    ],
  );
  assert.equal(result.stats.deadLetteredByReason["source-file-0: erasure request (event type '…') rejected by the source's mapping: nothing erased: user_id: missing user id"], 1, JSON.stringify(result.stats.deadLetteredByReason));
  assert.equal(result.stats.filteredByReason['source-file-0: erasure request'], 1);
  // The erased user's sessions closed at the end of input make no summary: their state went at the request.
  const sessions = result.outputs[0]!.filter((record) => record.kind === 'session');
  assert.ok(sessions.some((record) => record.userId === KEPT));
  assert.ok(!sessions.some((record) => record.userId === ERASED && (record.end as number) > start + 100 * minute), 'no summary of the erased open session');
});

test("with an erasure section, a stage that keeps state but has no forget() is named in a warning at the start: a request would leave that stage's copy of the user", async (t) => {
  const remember = defineOperator<Record<string, never>>({
    name: 'remember',
    summary: 'test',
    config: { type: 'object', properties: {} },
    create: (_config, context) => ({ apply: recordOperator(context, () => ({ record: (record, emit) => emit(record) })), snapshot: () => ({}) }),
  });
  const lines: { msg: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  await runYaml('name: shop\nsources: [{type: synthetic, users: 3, events: 10}]\nstages: [{type: remember, label: mine}, {type: sessionizer}]\nsinks: [{type: memory}]\nerasure: {}\n', { baseDir: tempFolder(t, 'warn'), plugins: [remember], logger });
  const warned = lines.filter((line) => line.msg.startsWith('erasure: stage'));
  assert.equal(warned.length, 1, lines.map((line) => line.msg).join('\n'));
  assert.match(warned[0]!.msg, /^erasure: stage mine \(.*pipeline\.yaml:3:\d+, \$\.stages\[0\], remember\) keeps state but has no forget\(\)/);
});

test("an erasure request a stage's forget() throws on is dead-lettered with the stage and its error (to replay once mended), the run going on, and is not counted as done", async (t) => {
  const broken = defineOperator<Record<string, never>>({
    name: 'broken-forget',
    summary: 'test',
    config: { type: 'object', properties: {} },
    create: (_config, context) => ({
      apply: recordOperator(context, () => ({ record: (record, emit) => emit(record) })),
      snapshot: () => ({}),
      forget: () => {
        throw new Error('index offline');
      },
    }),
  });
  const events = clicks();
  const source = defineSource<Record<string, never>>({
    name: 'then-erase',
    summary: 'test',
    config: { type: 'object', properties: {} },
    create: () => ({
      async *read() {
        yield events.slice(0, 4);
        yield [erase(ERASED)];
        yield events.slice(4);
      },
    }),
  });
  const metrics = new MetricsHub();
  const result = await runYaml('name: shop\nsources: [{type: then-erase}]\nstages: [{type: sessionizer}, {type: broken-forget, label: index}]\nsinks: [{type: memory}]\nerasure: {}\n', {
    baseDir: tempFolder(t, 'broken'),
    plugins: [broken, source],
    metrics,
  });
  assert.equal(result.deadLetters.length, 1);
  assert.equal(result.deadLetters[0]!.reason, "erasure request: a stage's forget() failed (index: index offline): the user's state may be left there");
  assert.equal(result.stats.eventsIn, events.length + 1);
  assert.match(await metrics.registry.metrics(), /^tributary_erasures_total\{pipeline="shop"\} 0$/m);
});

test("with GRU models, the user's event sequences go from the checkpoint too", async (t) => {
  const erased = await run(tempFolder(t, 'gru'), [erase(ERASED)], 'erasure: {}\n', stagesWith('{kind: gru, units: 3, sequence_length: 3}'));
  for (const label of ['intent', 'churn']) {
    const state = erased.checkpoint.operators[label] as { sequences: unknown };
    assert.ok(JSON.stringify(state.sequences).includes(KEPT), `${label} keeps the other user's sequences`);
    assert.ok(!JSON.stringify(state).includes(ERASED), `${label} still holds the erased user`);
  }
});

test("an erasure request without a time (an erasure tool's, not the browser's) is taken through a source's mapping and erases its user; one whose time cannot be read is dead-lettered as an erasure request, with why; without an erasure section, a record without a time is rejected as before", async (t) => {
  // Was: `ts: missing timestamp`, dead-lettered: the tool that sends the request has no event time to give, and it needs none.
  const lines = [
    ...clicks().map((event) => ({ user_id: event.userId, ts: event.time, event_type: event.type, item_id: event.itemId })),
    { user_id: ERASED, event_type: 'forget_me' },
    { user_id: KEPT, ts: 'yesterday', event_type: 'forget_me' },
    { user_id: KEPT, event_type: 'view' },
  ];
  const run = async (erasure: string) => {
    const baseDir = tempFolder(t, 'timeless');
    writeFileSync(join(baseDir, 'clicks.jsonl'), lines.map((line) => JSON.stringify(line)).join('\n') + '\n');
    return runYaml(
      'name: shop\nsources: [{type: file, path: clicks.jsonl, mapping: {fields: {user_id: user_id, time: ts, type: event_type, item_id: item_id}, time_format: epoch_ms, event_types: {forget_me: erase}}}]\n' +
        `stages:\n  - {type: sessionizer, gap: 30m}\n  - {type: user-features, horizons: [1d]}\nsinks: [{type: memory}]\ncheckpoint: {dir: cp}\n${erasure}`,
      { baseDir },
    ).then(async (result) => ({ ...result, checkpoint: (await new CheckpointStore(join(baseDir, 'cp')).latest())! }));
  };
  const erased = await run('erasure: {event_type: erase}\n');
  assert.equal(erased.stats.filteredByReason['source-file-0: erasure request'], 1);
  assert.deepEqual(
    erased.deadLetters.map((letter) => [letter.reason, letter.line]),
    [
      ["erasure request (event type 'erase') rejected by the source's mapping: nothing erased: ts: cannot parse \"yesterday\" as epoch_ms", lines.length - 1],
      ['ts: missing timestamp', lines.length],
    ],
  );
  const state = JSON.stringify(erased.checkpoint.operators);
  assert.ok(!state.includes(ERASED) && state.includes(KEPT), 'the erased user is gone, the other kept');
  // Its event time moved no watermark: the other user's sessions closed at the end of input as without the request.
  const sessions = (result: typeof erased) => result.outputs[0]!.filter((record) => record.kind === 'session' && record.userId === KEPT).map((record) => JSON.stringify(record));
  const without = await run('');
  assert.deepEqual(sessions(erased), sessions(without));
  assert.deepEqual(
    without.deadLetters.map((letter) => letter.reason),
    ['ts: missing timestamp', 'ts: cannot parse "yesterday" as epoch_ms', 'ts: missing timestamp'],
  );
  assert.ok(JSON.stringify(without.checkpoint.operators).includes(ERASED), 'no erasure section: no one erased');
});

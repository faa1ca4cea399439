import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeColumn, isCopyingSnapshot, watermark, type Column, type Element, type StreamRecord } from 'tributary';
import { runOperator, testContext } from 'tributary/testing';
import { from, lastValueFrom, toArray } from 'rxjs';
import intentModel, { type IntentModelConfig } from './intent.js';
import churnModel from './churn.js';
import { event, rng, separableIntentStream, summary } from './testdata.js';
import type { ModelKind } from './model.js';
import { LossBlocks } from './drift.js';
import { defineModel } from './define.js';
import { scoreNotes } from './score-notes.js';
import * as format1 from './snapshots-format1.js';
import * as format2 from './snapshots-format2.js';
import * as format3 from './snapshots-format3.js';
import { min, hour, base, of, reportOf, fedOperator, modelOutputs } from './models-test-helpers.js';

/**
 * A small logistic regression of a user's own (tests only): SGD on raw features, its weights its whole state.
 * 'copies' makes new weights at each step; 'in place' changes them in place and gives them live from state(),
 * as a user's model may: the runtime serialises the snapshot later.
 */
function sgdModel(name: string, weightsUpdated: 'copies' | 'in place') {
  return defineModel<Record<string, never>>({
    name,
    task: 'intent',
    summary: 'A learning custom model (tests only).',
    config: { type: 'object', additionalProperties: false, properties: {} },
    create: (_options, features) => {
      let weights = new Array<number>(features.length + 1).fill(0);
      const score = (row: Float32Array): number => 1 / (1 + Math.exp(-row.reduce((sum, value, i) => sum + value * weights[i + 1]!, weights[0]!)));
      return {
        predict: score,
        learn(rows, labels) {
          for (let k = 0; k < labels.length; k++) {
            const row = rows.subarray(k * features.length, (k + 1) * features.length);
            const error = labels[k]! - score(row);
            const step = (w: number, i: number): number => w + 0.1 * error * (i === 0 ? 1 : row[i - 1]!);
            if (weightsUpdated === 'copies') weights = weights.map(step);
            else for (let i = 0; i < weights.length; i++) weights[i] = step(weights[i]!, i);
          }
        },
        state: () => ({ weights }),
        load(state) {
          const saved = (state as { weights: number[] }).weights;
          if (weightsUpdated === 'copies') weights = [...saved];
          else weights.splice(0, weights.length, ...saved);
        },
      };
    },
  });
}

test('a defineModel model that learns keeps its state() through a snapshot: restored (load) at any of several cuts, the rest of the run predicts, labels and scores as an uninterrupted run', async () => {
  const sgd = sgdModel('sgd-rule', 'copies');
  const config = { report: true, batch: { learn_size: 4, max_delay: 0 } };
  const input = separableIntentStream(30);
  const whole = await runOperator(sgd, config, input);
  const report = reportOf(whole.output);
  assert.ok(report.counts.learnSteps > 2 && report.summary.auc! > 0.9, JSON.stringify(report.summary));
  for (const cut of [Math.floor(input.length / 3), Math.floor(input.length / 2), Math.floor((2 * input.length) / 3)]) {
    const first = await runOperator(sgd, config, input.slice(0, cut));
    assert.match(JSON.stringify(first.state), /"weights"/, `cut ${cut}: the snapshot holds the model's state()`);
    const restored = await fedOperator(sgd, config, first.state);
    for (const element of input.slice(cut)) restored.input.next(element);
    restored.input.complete();
    await restored.done;
    await restored.operator.close?.();
    assert.equal([modelOutputs(first.output), modelOutputs(restored.output)].filter((text) => text !== '').join('\n'), modelOutputs(whole.output), `cut ${cut}`);
  }
});

test("a custom model whose state() returns its live weights (learn changes them in place) is snapshotted as of the call: the checkpoint, serialised while the stage learns on, holds the weights of its instant", async () => {
  const inPlace = sgdModel('in-place-sgd', 'in place');
  const input = separableIntentStream(30);
  const cut = Math.floor(input.length / 2);
  const fed = await fedOperator(inPlace as unknown as typeof intentModel, { report: true, batch: { learn_size: 4, max_delay: 0 } } as unknown as IntentModelConfig);
  for (const element of input.slice(0, cut)) fed.input.next(element);
  const taken = await fed.operator.snapshot!();
  const atCall = JSON.stringify(taken);
  assert.match(atCall, /"weights"/);
  // The stage learns on (the sources go on while a checkpoint's file is written).
  for (const element of input.slice(cut)) fed.input.next(element);
  fed.input.complete();
  await fed.done;
  await fed.operator.close?.();
  assert.notEqual(JSON.stringify(await fed.operator.snapshot!()), atCall, 'the model learnt after the cut');
  assert.equal(JSON.stringify(taken), atCall, 'the snapshot taken at the cut did not change');
});

for (const kind of ['logistic', 'mlp', 'gru'] as ModelKind[]) {
  test(`${kind}: a snapshot taken mid-stream (pending batches and label buffer included) restores to the same predictions`, async () => {
    const input = separableIntentStream(120, 3);
    const config: IntentModelConfig = { ...base, model: { kind, hidden: [8], dropout: kind === 'mlp' ? 0.2 : 0 }, batch: { max_size: 16, max_delay: 0 } };
    const whole = await runOperator(intentModel, config, input);
    // Cut inside a session, with a prediction batch half full and labels outstanding.
    const cut = 301;
    const first = await runOperator(intentModel, config, input.slice(0, cut));
    const saved = JSON.parse(JSON.stringify(await first.operator.snapshot!())) as unknown;
    const plugin = intentModel;
    const context = testContext();
    const operator = await plugin.create({ ...config }, context);
    await operator.open?.();
    await operator.restore!(saved);
    const rest = await lastValueFrom(operator.apply(from(input.slice(cut))).pipe(toArray()));
    await operator.close?.();
    const predictions = (output: Element[]) => of(output, 'prediction').map((p) => `${p.id}:${p.score}`);
    const joined = [...predictions(first.output), ...predictions(rest)];
    assert.equal(joined.length, predictions(whole.output).length);
    assert.deepEqual(joined, predictions(whole.output));
  });
}

type SnapshotLists = Record<'toPredict' | 'awaiting' | 'toLearn', { ids: string[]; idKeys: Column; owners: { rows: Column } }>;

/**
 * Takes a stage's snapshot as a checkpoint does: copied at the call (with `atOnce`, asserted done before the event
 * loop turns: the sources held O(1); `atOnce` says what it was before), then read and encoded while records flow.
 */
async function takeCopying(operator: { snapshot?: () => unknown }, atOnce?: string): Promise<{ taken: Promise<unknown>; encoded: () => boolean }> {
  let turned = false;
  if (atOnce !== undefined) setImmediate(() => (turned = true));
  const taken = operator.snapshot!();
  assert.ok(isCopyingSnapshot(taken));
  await taken.copied;
  if (atOnce !== undefined) assert.equal(turned, false, `copied at the call: the sources held without a turn of the event loop (was: ${atOnce})`);
  let encoded = false;
  void taken.then(() => (encoded = true));
  return { taken, encoded: () => encoded };
}

/**
 * The learner's lists of samples less how their ids are written: this release remakes the ids of
 * the predictions it made (`ids` empty), but writes those of predictions restored from an older
 * format (it has not the positions they were made from). Checks each way, then sets `restored`'s to `fresh`'s.
 */
function sameBeyondIds(restored: { learner: SnapshotLists }, fresh: { learner: SnapshotLists }): void {
  for (const list of ['toPredict', 'awaiting', 'toLearn'] as const) {
    const [old, made] = [restored.learner[list], fresh.learner[list]];
    assert.equal(made.ids.length, 0, `${list}: every id remade`);
    assert.ok([...decodeColumn(old.idKeys, 'test')].every((key) => key === -1) && old.ids.length === decodeColumn(old.idKeys, 'test').length, `${list}: restored from an older format, every id written`);
    old.ids = made.ids;
    old.idKeys = made.idKeys;
  }
}

/**
 * An intent snapshot's sessions as rows, less what the formats before this release did not keep:
 * sessions that bought and closed (flag SESSION_LABELLED, 2: kept since, so that a late event of
 * theirs is not predicted) and when each first bought (purchasedAt).
 */
function sessionsKeptBefore(state: unknown): Record<string, unknown>[] {
  const sessions = (state as { sessions: Record<string, Column> & { keys: string[]; userIds: string[] } }).sessions;
  const columns = ['last', 'flags', 'idsH1', 'idsH2', 'pendingCounts', 'releasedCounts'].map((name) => [name, decodeColumn(sessions[name]!, 'test')] as const);
  return sessions.keys
    .map((key, i): Record<string, unknown> => ({ key, userId: sessions.userIds[i], ...Object.fromEntries(columns.map(([name, values]) => [name, values[i]])) }))
    .filter((row) => ((row.flags as number) & 2) === 0);
}

for (const [name, plugin, config, saved, format, writer] of [
  ['intent', intentModel, format1.intentConfig, format1.intentFormat1, 'first', '9eb35de'],
  ['churn', churnModel, format1.churnConfig, format1.churnFormat1, 'first', '9eb35de'],
  ['intent', intentModel, format1.intentConfig, format2.intentFormat2, 'second', 'aa5bd09'],
  ['churn', churnModel, format1.churnConfig, format2.churnFormat2, 'second', 'aa5bd09'],
  ['churn', churnModel, format1.churnConfig, format3.churnFormat3, 'third', '4fa66ba'],
  ['intent', intentModel, format1.intentConfig, format3.intentFormat3, 'third', '97bdccf'],
] as const) {
  const holds = {
    first: `one object per ${name === 'intent' ? 'session' : 'user'}`,
    second: 'every sample\'s ids written',
    third: name === 'intent' ? 'no session that bought and closed, no purchase times' : 'pending predictions\' ids written by users and by deadlines',
  }[format];
  test(`${name}: a checkpoint in the ${format} snapshot format (${holds}, written by ${writer}) restores to the uninterrupted run`, async () => {
    const input = separableIntentStream(40, 3);
    const reported: IntentModelConfig = { ...(config as IntentModelConfig), report: true };
    const whole = await runOperator(plugin, reported, input);
    const first = await runOperator(plugin, reported, input.slice(0, format1.cut));
    // The old format's state is the state this release snapshots at the same cut (in its own format).
    const restoredOld = await fedOperator(plugin, reported, saved);
    const again = JSON.parse(JSON.stringify(await restoredOld.operator.snapshot!())) as { learner: SnapshotLists & { block: unknown } };
    // The third format's label buffer is this release's: its ids remade already.
    if (format !== 'third') sameBeyondIds(again, first.state as { learner: SnapshotLists });
    if (format === 'first') {
      // Except the drift test's open block of losses: the first format's counted predictions, not labels
      // (LossBlocks), so it starts afresh, empty.
      assert.deepEqual(again.learner.block, new LossBlocks(1).state());
      again.learner.block = (first.state as { learner: { block: unknown } }).learner.block;
    }
    if (name === 'churn' && format === 'first') {
      // Nor did it keep what each churn prediction's session added (for a merge to take back) or its start:
      // restored as not known (NaN), 0 and its end (an update then adds and takes back nothing, as before).
      const users = (again as unknown as { users: Record<string, Column> }).users;
      assert.deepEqual([...decodeColumn(users.pendingStarts!, 'test')], [...decodeColumn(users.pendingEnds!, 'test')]);
      assert.ok([...decodeColumn(users.pendingPurchased!, 'test')].every((value) => Number.isNaN(value)));
      assert.ok([...decodeColumn(users.pendingGaps!, 'test')].every((value) => value === 0));
      const current = (first.state as { users: Record<string, Column> }).users;
      for (const column of ['pendingStarts', 'pendingPurchased', 'pendingGaps']) users[column] = current[column]!;
    }
    if (name === 'intent') {
      assert.deepEqual(sessionsKeptBefore(again), sessionsKeptBefore(first.state));
      (again as unknown as { sessions: unknown }).sessions = (first.state as { sessions: unknown }).sessions;
      // Nor the last sweep's watermark: restored as none, the next watermark sweeps.
      assert.equal((again as { lastSweep?: number }).lastSweep, undefined);
      assert.equal(typeof (first.state as { lastSweep?: number }).lastSweep, 'number');
      (again as { lastSweep?: number }).lastSweep = (first.state as { lastSweep?: number }).lastSweep;
    }
    // Nor did they count the labels scored before the model's first learning step (a later count): restored as 0,
    // and none after, as the model had learnt by the cut.
    const counted = (state: unknown) => (state as { learner: { counts: { scoredBeforeLearning: number } } }).learner.counts;
    const scoredBefore = counted(first.state).scoredBeforeLearning;
    assert.ok(scoredBefore > 0);
    assert.equal(counted(again).scoredBeforeLearning, 0);
    counted(again).scoredBeforeLearning = scoredBefore;
    assert.deepEqual(again, first.state);
    assert.equal((first.state as { format?: number }).format, name === 'churn' ? 5 : 4);
    for (const element of input.slice(format1.cut)) restoredOld.input.next(element);
    restoredOld.input.complete();
    await restoredOld.done;
    await restoredOld.operator.close?.();
    assert.ok(of(restoredOld.output, 'prediction').length > 0);
    // The report's notes read that count: said as the uninterrupted run's would be with the count restored.
    const uninterrupted = modelOutputs(
      whole.output.map((r) => {
        if (r.kind !== 'model_metrics') return r;
        const report = structuredClone(r) as unknown as Parameters<typeof scoreNotes>[0] & { scoreReason: string | null; scoreNotes: string[] };
        report.counts.scoredBeforeLearning -= scoredBefore;
        const notes = scoreNotes(report);
        [report.scoreReason, report.scoreNotes] = [notes.reason ?? null, notes.notes];
        return report as unknown as Element;
      }),
    );
    assert.equal(modelOutputs(first.output) + (modelOutputs(first.output) ? '\n' : '') + modelOutputs(restoredOld.output), uninterrupted);
  });
}

test('intent: a snapshot holds no prediction id (remade from user, session, time and position); predictions a full buffer did not hold stay late labels after a restore', async () => {
  const t0 = Date.UTC(2024, 0, 1);
  const random = rng(5);
  // 12 sessions open at once, 4 views each, for a buffer of 30: the predictions after the first 30 are not held.
  const input: Element[] = [];
  for (let round = 0; round < 4; round++) {
    for (let s = 0; s < 12; s++) input.push(event(`u${s}`, `u${s}:${t0 + s}`, t0 + s + round * 60_000, round, t0 + s, 'view', [s % 3 === 0 ? 1 : -1, random(), random(), random()]));
  }
  // Another user's event under u1's session id (data ids repeat across users): a session of its own, its id remade from
  // its user and session as any. Both odd ones are among the first 30 predictions, which the buffer holds.
  input.splice(28, 0, event('other', `u1:${t0 + 1}`, t0 + 150_000, 9, t0 + 1, 'view', [-1, random(), random(), random()]));
  // A position that is no key (not an integer): its id is written too.
  input.splice(29, 0, event('u2', `u2:${t0 + 2}`, t0 + 150_001, 2.5, t0 + 2, 'view', [-1, random(), random(), random()]));
  for (let s = 0; s < 12; s++) input.push(summary(`u${s}`, `u${s}:${t0 + s}`, t0 + s, t0 + s + 180_000, 4, s % 3 === 0));
  input.push(watermark(Infinity));
  const config: IntentModelConfig = { ...base, label_buffer: { max_size: 30 }, report: true };
  const whole = await runOperator(intentModel, config, input);
  const counts = reportOf(whole.output).counts;
  // 50 predictions, the first 30 held: the other 20 overflowed and their labels came late; the other user's session has no summary.
  assert.deepEqual([counts.predictions, counts.overflow, counts.lateLabels, counts.labels, counts.unlabelledAtEnd], [50, 20, 20, 29, 1], 'predictions overflowed, their labels came late');
  for (const cut of [29, 30, 31, 40, 44, 48]) {
    const first = await runOperator(intentModel, config, input.slice(0, cut));
    const text = JSON.stringify(first.state);
    const odd = (p: StreamRecord): boolean => p.time === t0 + 150_001;
    const ids = of(first.output, 'prediction').filter((p) => !odd(p)).map((p) => p.id as string);
    assert.ok(ids.length > 0 && ids.every((id) => !text.includes(id)), `cut ${cut}: no prediction id in the snapshot`);
    const others = of(first.output, 'prediction').filter(odd);
    assert.equal(others.length, cut > 29 ? 1 : 0);
    // The odd position's id is written; restored, its label comes with its session's.
    for (const other of others) assert.ok(text.includes(other.id as string));
    const restored = await fedOperator(intentModel, config, JSON.parse(text));
    for (const element of input.slice(cut)) restored.input.next(element);
    restored.input.complete();
    await restored.done;
    await restored.operator.close?.();
    assert.equal(modelOutputs(first.output) + (modelOutputs(first.output) ? '\n' : '') + modelOutputs(restored.output), modelOutputs(whole.output), `cut ${cut}: restored, the rest of the run is the uninterrupted one's`);
  }
});

test('churn: a snapshot holds each pending prediction once (ids remade from user, session and time; deadlines as rows of the pending list); merged, moved, evicted and overflowed ones restore, once or twice, to the uninterrupted run', async () => {
  const t = Date.UTC(2024, 0, 1);
  const s = (user: string, start: number): string => `${user}:${start}`;
  // Session ids as the sessionizer makes them (`<user>:<start>`), but d's (any other id: written as it is).
  const input: Element[] = [
    event('a', s('a', t), t, 0, t, 'view'),
    summary('a', s('a', t), t, t, 1, false, { view: 1 }),
    event('a', s('a', t + 40 * min), t + 40 * min, 0, t + 40 * min, 'view'),
    summary('a', s('a', t + 40 * min), t + 40 * min, t + 40 * min, 1, false, { view: 1 }),
    event('b', s('b', t + 5 * min), t + 5 * min, 0, t + 5 * min, 'view'),
    summary('b', s('b', t + 5 * min), t + 5 * min, t + 10 * min, 2, true, { view: 2 }),
    // A late event bridges a's sessions: the second is withdrawn (its deadline no user's), the first moves (two deadlines).
    event('a', s('a', t), t + 20 * min, 2, t, 'view'),
    { ...summary('a', s('a', t), t, t + 40 * min, 3, false, { view: 3 }), update: true, replaces: [s('a', t + 40 * min)] },
    // b's session extended: its deadline moves, its id (made at the first end) does not.
    event('b', s('b', t + 5 * min), t + 25 * min, 2, t + 5 * min, 'view'),
    { ...summary('b', s('b', t + 5 * min), t + 5 * min, t + 25 * min, 3, true, { view: 3 }), update: true },
    event('c', s('c', t + 30 * min), t + 30 * min, 0, t + 30 * min, 'view'),
    summary('c', s('c', t + 30 * min), t + 30 * min, t + 31 * min, 1, false, { view: 1 }),
    event('d', 'D', t + 32 * min, 0, t + 32 * min, 'view'),
    summary('d', 'D', t + 32 * min, t + 33 * min, 1, true, { view: 1 }),
    // A fifth user: a, first seen, is evicted with its pending prediction (its deadlines no user's).
    event('e', s('e', t + 34 * min), t + 34 * min, 0, t + 34 * min, 'view'),
    summary('e', s('e', t + 34 * min), t + 34 * min, t + 35 * min, 1, false, { view: 1 }),
    watermark(t + 30 * min),
    // c back within the horizon.
    event('c', s('c', t + 50 * min), t + 50 * min, 0, t + 50 * min, 'view'),
    summary('c', s('c', t + 50 * min), t + 50 * min, t + 51 * min, 1, false, { view: 1 }),
    watermark(t + 80 * min),
    watermark(t + 3 * hour),
    watermark(Infinity),
  ];
  // A label buffer of 2: the oldest predictions overflow while churn still waits for their horizon.
  const config: IntentModelConfig = { backend: 'cpu', horizon: '1h', max_users: 4, label_buffer: { max_size: 2 }, batch: { max_size: 1, max_delay: 0 }, report: true } as IntentModelConfig;
  const whole = await runOperator(churnModel, config, input);
  const report = reportOf(whole.output);
  assert.ok(report.counts.overflow > 0 && report.summary.n > 0, 'some predictions overflowed, some were labelled');
  const joined = (...outputs: Element[][]): string => outputs.map(modelOutputs).filter((text) => text !== '').join('\n');
  type Saved = { format: number; users: { pendingIds: string[]; pendingIdKeys: Column }; deadlines: Record<string, unknown> };
  let remadeAll = 0;
  for (let cut = 1; cut < input.length; cut++) {
    const first = await runOperator(churnModel, config, input.slice(0, cut));
    const text = JSON.stringify(first.state);
    const saved = JSON.parse(text) as Saved;
    assert.equal(saved.format, 5);
    assert.deepEqual(Object.keys(saved.deadlines).sort(), ['at', 'pending'], 'deadlines: no ids, no users');
    const ids = of(first.output, 'prediction').map((p) => p.id as string);
    assert.ok(ids.every((id) => !text.includes(id)), `cut ${cut}: no prediction id in the snapshot`);
    if (ids.length > 0) remadeAll++;
    // Restored once: the rest of the run is the uninterrupted one's.
    const restored = await fedOperator(churnModel, config, JSON.parse(text));
    // Restored twice, a few records on: overflowed predictions restored as stand-ins (no session or time) keep their ids written.
    const next = Math.min(cut + 2, input.length - 1);
    for (const element of input.slice(cut, next)) restored.input.next(element);
    const again = JSON.stringify(await restored.operator.snapshot!());
    const beforeAgain = restored.output.slice();
    for (const element of input.slice(next)) restored.input.next(element);
    restored.input.complete();
    await restored.done;
    await restored.operator.close?.();
    assert.equal(joined(first.output, restored.output), modelOutputs(whole.output), `cut ${cut}: restored, the rest of the run is the uninterrupted one's`);
    const twice = await fedOperator(churnModel, config, JSON.parse(again));
    for (const element of input.slice(next)) twice.input.next(element);
    twice.input.complete();
    await twice.done;
    await twice.operator.close?.();
    assert.equal(joined(first.output, beforeAgain, twice.output), modelOutputs(whole.output), `cut ${cut} and ${next}: restored twice, the rest of the run is the uninterrupted one's`);
    const written = (JSON.parse(again) as Saved).users.pendingIds;
    // Predictions no longer awaited among them (overflowed): restored with their sessions and times, their ids remade too.
    assert.deepEqual(written, [], `cut ${cut} and ${next}: every id remade`);
  }
  assert.ok(remadeAll > 10);

  // The third format (4fa66ba) cut at 12, a's first prediction overflowed: restored, its handle has only its id,
  // which the next snapshot writes in full (the others remade); both restore to one run, with the uninterrupted
  // run's predictions. Not its counts: that build dropped the oldest prediction of a full buffer (a's first), where
  // this one does not hold the new one (b's), so another prediction is labelled.
  const cut = 12;
  const first = await runOperator(churnModel, config, input.slice(0, cut));
  const old = await fedOperator(churnModel, config, format3.churnFormat3Overflowed);
  const resaved = JSON.parse(JSON.stringify(await old.operator.snapshot!())) as Saved;
  assert.deepEqual(resaved.users.pendingIds, [of(whole.output, 'prediction')[0]!.id]);
  assert.deepEqual([...decodeColumn(resaved.users.pendingIdKeys, 'test')], [-1, 0, 0]);
  const again = await fedOperator(churnModel, config, resaved);
  // That format kept no count of withdrawn predictions (a later one): the merge's before the cut is not in it.
  const withdrawnBefore = (first.state as { learner: { counts: { withdrawn: number } } }).learner.counts.withdrawn;
  assert.equal(withdrawnBefore, 1);
  const rests: string[] = [];
  for (const run of [old, again]) {
    for (const element of input.slice(cut)) run.input.next(element);
    run.input.complete();
    await run.done;
    await run.operator.close?.();
    rests.push(joined(first.output, run.output));
  }
  assert.equal(rests[1], rests[0], 'restored from the third format, and from the snapshot taken after it: one run');
  const predictions = (text: string): string[] => text.split('\n').filter((line) => line.includes('"kind":"prediction"'));
  assert.deepEqual(predictions(rests[0]!), predictions(modelOutputs(whole.output)));
  const counts = reportOf(old.output).counts;
  assert.equal(counts.labels + counts.overflow + counts.expired + counts.unlabelledAtEnd + counts.withdrawn + counts.invalidScores + withdrawnBefore, counts.predictions, 'every prediction counted once (the withdrawal before the cut, which that format did not count, aside)');
});

test('a damaged columnar snapshot is refused by restore with what is wrong, not half restored', async () => {
  const input = separableIntentStream(40, 3);
  for (const [plugin, config, damage, message] of [
    [intentModel, format1.intentConfig, (state: Record<string, Record<string, unknown>>) => void (state.sessions!.pendingCounts = { n: (state.sessions!.keys as string[]).length, c: 1000 }), /intent snapshot: sessions: 1000 predictions pending, \d+ awaiting for the session/],
    [churnModel, format1.churnConfig, (state: Record<string, Record<string, unknown>>) => void (state.users!.keys = ['only-one']), /churn snapshot: users: firstSeen: \d+ rows, expected 1/],
    [churnModel, format1.churnConfig, (state: Record<string, Record<string, unknown>>) => void (state.deadlines!.pending = { n: (state.deadlines!.pending as Column).n, c: 99 }), /churn snapshot: deadlines: row 99 of \d+ pending predictions/],
    [churnModel, format1.churnConfig, (state: Record<string, Record<string, unknown>>) => void (state.users!.pendingIdKeys = { n: (state.users!.pendingIdKeys as Column).n, c: -1 }), /churn snapshot: users: 0 ids written for \d+ rows/],
  ] as const) {
    const first = await runOperator(plugin, config as IntentModelConfig, input.slice(0, format1.cut));
    const state = first.state as Record<string, Record<string, unknown>>;
    damage(state);
    const operator = await plugin.create({ ...(config as IntentModelConfig) }, testContext());
    await operator.open?.();
    await assert.rejects(Promise.resolve(operator.restore!(state)), message);
    await operator.close?.();
  }
});

test('a snapshot with a single sample waiting for its prediction batch restores and predicts it', async () => {
  const input = separableIntentStream(60, 5);
  // mlp predicts in batches (logistic predicts each event at once, so it never has one pending).
  const config: IntentModelConfig = { ...base, model: { kind: 'mlp', hidden: [4] }, batch: { max_size: 2, max_delay: 0 } };
  const whole = await runOperator(intentModel, config, input);
  const predictions = (output: Element[]) => of(output, 'prediction').map((p) => `${p.id}:${p.score}`);
  let singles = 0;
  for (const cut of [101, 102, 103]) {
    const first = await runOperator(intentModel, config, input.slice(0, cut));
    const saved = JSON.parse(JSON.stringify(await first.operator.snapshot!())) as { learner: { toPredict: { time: Column } } };
    if (saved.learner.toPredict.time.n === 1) singles++;
    const operator = await intentModel.create({ ...config }, testContext());
    await operator.open?.();
    await operator.restore!(saved);
    const rest = await lastValueFrom(operator.apply(from(input.slice(cut))).pipe(toArray()));
    await operator.close?.();
    assert.deepEqual([...predictions(first.output), ...predictions(rest)], predictions(whole.output), `cut ${cut}`);
    // Input ends right after the restore: the pending batch runs as it is (one sample, alone).
    const ending = await intentModel.create({ ...config }, testContext());
    await ending.open?.();
    await ending.restore!(saved);
    const last = predictions(await lastValueFrom(ending.apply(from([watermark(Infinity)])).pipe(toArray())));
    await ending.close?.();
    assert.equal(last.length, saved.learner.toPredict.time.n);
    const endedThere = await runOperator(intentModel, config, [...input.slice(0, cut), watermark(Infinity)]);
    assert.deepEqual([...predictions(first.output), ...last], predictions(endedThere.output), `cut ${cut}, ended`);
  }
  assert.ok(singles > 0, 'some cut leaves one sample pending');
});

test('a snapshot with predictions that overflowed the label buffer while waiting for their batch restores them as dropped (as an uninterrupted run has them)', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const v = [0.5, 0, 0, 0];
  const input: Element[] = [];
  for (let p = 0; p < 5; p++) input.push(event('a', 'sa', t + p * 1000, p, t, 'view', v));
  input.push(summary('a', 'sa', t, t + 4000, 5, true), watermark(Infinity));
  // Batches of 8 (all five wait) into a label buffer of 2: three overflow before they are predicted.
  const config: IntentModelConfig = { ...base, report: true, model: { kind: 'mlp', hidden: [4] }, batch: { max_size: 8, max_delay: 0 }, label_buffer: { max_size: 2 } };
  const whole = reportOf((await runOperator(intentModel, config, input)).output);
  assert.equal(whole.counts.overflow, 3);
  assert.equal(whole.summary.n, 2);
  const cut = 5;
  const first = await runOperator(intentModel, config, input.slice(0, cut));
  const saved = JSON.parse(JSON.stringify(await first.operator.snapshot!())) as unknown;
  const operator = await intentModel.create({ ...config }, testContext());
  await operator.open?.();
  await operator.restore!(saved);
  const rest = reportOf(await lastValueFrom(operator.apply(from(input.slice(cut))).pipe(toArray())));
  await operator.close?.();
  assert.deepEqual([rest.summary.n, rest.summary.positives, rest.counts.overflow], [whole.summary.n, whole.summary.positives, whole.counts.overflow]);
});

test('a diverged model\'s predictions awaiting labels (scores not a number) restore as predicted, not as unscored: the rest of the run is the uninterrupted one\'s', async () => {
  const input = separableIntentStream(120, 4);
  const config: IntentModelConfig = { ...base, report: true, batch: { max_size: 8, max_delay: 0 }, optimizer: { kind: 'adam', learning_rate: 1e38 } };
  const whole = await runOperator(intentModel, config, input);
  const cut = 400;
  const first = await runOperator(intentModel, config, input.slice(0, cut));
  assert.ok(of(first.output, 'prediction').some((p) => p.score === null || Number.isNaN(p.score)), 'diverged before the cut');
  const rest = await runOperator(intentModel, config, input.slice(cut), testContext(), { restore: first.state });
  assert.equal(modelOutputs(first.output) + '\n' + modelOutputs(rest.output), modelOutputs(whole.output));
});

test("a model's saved state of another kind fails runOperator's restore with the message a run gives, the stage named once", async () => {
  const label = 'stage-intent-model-3';
  const config = { ...format1.intentConfig, model: { kind: 'logistic' } } as IntentModelConfig;
  // Before: "saved model is mlp, this one is logistic" alone, which named no stage.
  await assert.rejects(runOperator(intentModel, config, [], testContext({ label }), { restore: format1.intentFormat1 }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_CHECKPOINT');
    assert.equal(
      error.message,
      `the saved state of stage ${label} could not be restored: saved model is mlp, this one is logistic ` +
        "(if the stage's configuration changed since, undo the change to resume. To start this stage afresh and keep the other stages' state: give it a new `label` " +
        "and run once with --allow-non-restored-state, which drops its old state. To start the whole pipeline afresh: move its checkpoints away, and its `file` outputs " +
        'too to keep them, as a start without a checkpoint replaces them)',
    );
    assert.equal(error.message.split(label).length, 2, 'the label once');
    return true;
  });
});

test('intent and churn: a snapshot is copied at its call and encoded while records flow (the sources go on once it is copied); what the records after the call change (scores, labels, learning, new predictions, released rows) does not show in it: it is byte for byte the snapshot of a stage that saw nothing after the call', async () => {
  const input = separableIntentStream(120, 3);
  const intentConfig: IntentModelConfig = { ...base, batch: { max_size: 16, max_delay: 0 } };
  const churnConfig = { ...base, horizon: '2h', batch: { max_size: 16, max_delay: 0 } } as unknown as IntentModelConfig;
  for (const [name, plugin, config] of [
    ['intent', intentModel, intentConfig],
    ['churn', churnModel, churnConfig],
  ] as const) {
    for (const cut of [97, 301, 502]) {
      const still = await fedOperator(plugin, config);
      for (const element of input.slice(0, cut)) still.input.next(element);
      const atCall = JSON.stringify(await still.operator.snapshot!());

      const fed = await fedOperator(plugin, config);
      for (const element of input.slice(0, cut)) fed.input.next(element);
      const taken = fed.operator.snapshot!();
      assert.ok(isCopyingSnapshot(taken), `${name}: says when it is copied`);
      await taken.copied;
      // All the rest before the encode parts' first turn, as records that reach the stage once the sources go on.
      for (const element of input.slice(cut)) fed.input.next(element);
      fed.input.complete();
      await fed.done;
      assert.ok(of(fed.output, 'prediction').length > of(still.output, 'prediction').length, `${name}, cut ${cut}: the stage went on after the call`);
      assert.equal(JSON.stringify(await taken), atCall, `${name}, cut ${cut}: the snapshot is its call's state`);
      await Promise.all([still.operator.close?.(), fed.operator.close?.()]);
    }
  }
});

test("churn copies its users on write: users seen, updated, labelled and forgotten (max_users) while its snapshot is read do not show in it; it is byte for byte the call's state and restores to it, and the stage goes on as one that took no snapshot (the same users forgotten, in the same order)", async () => {
  const t = Date.UTC(2024, 0, 1);
  const sec = 1000;
  const users = 3000;
  const config = { ...base, horizon: '2h', max_users: 3200, batch: { max_size: 16, max_delay: 0 } } as unknown as IntentModelConfig;
  const sid = (u: string, start: number): string => `${u}:${start}`;
  /** A session of one event at `start`, closed at `start` + 1 min. */
  const session = (u: string, start: number): Element[] => [event(u, sid(u, start), start, 0, start, 'view'), summary(u, sid(u, start), start, start + min, 1, false, { view: 1 })];
  /** A session every tenth user has open from 30 min on (a late event may move its start). */
  const opened = (u: number): number => t + 30 * min + u * sec;
  // More users than one part of the read (1,024), each with a prediction awaiting its label.
  const before = (): Element[] =>
    Array.from({ length: users }, (_, u) => [...session(`u${u}`, t + u * sec), ...(u % 10 === 3 ? [event(`u${u}`, sid(`u${u}`, opened(u)), opened(u), 0, opened(u), 'view')] : [])]).flat();
  /** After the call: users back (moved to the map's end), an update (a purchase), a late event moving an open session's start, new users past max_users (the least recent forgotten), labels at a watermark. */
  const after = (round: number): Element[] => {
    const at = t + hour + round * 10 * min;
    return [
      ...Array.from({ length: 400 }, (_, k) => session(`u${(k * 7 + round) % users}`, at + k * sec)).flat(),
      ...Array.from({ length: 100 }, (_, k) => {
        const u = (k * 13 + 5 + round) % users;
        const start = t + u * sec;
        return { ...summary(`u${u}`, sid(`u${u}`, start), start - sec, start + min, 2, true, { view: 1, purchase: 1 }), update: true };
      }),
      ...Array.from({ length: 50 }, (_, k) => {
        const u = 3 + 10 * ((k * 2 + round) % (users / 10));
        const start = opened(u);
        return event(`u${u}`, sid(`u${u}`, start), start - sec, 1, start - sec, 'view');
      }),
      ...Array.from({ length: 500 }, (_, k) => session(`new${round}-${k}`, at + 5 * min + k * sec)).flat(),
      watermark(t + 2 * hour + (round + 1) * 10 * min),
    ];
  };
  const still = await fedOperator(churnModel, config);
  for (const element of before()) still.input.next(element);
  const atCall = JSON.stringify(await still.operator.snapshot!());
  // The same records, no snapshot among them.
  const plain = await fedOperator(churnModel, config);
  for (const element of [...before(), ...after(0), ...after(1), ...after(2)]) plain.input.next(element);

  const fed = await fedOperator(churnModel, config);
  for (const element of before()) fed.input.next(element);
  const { taken, encoded } = await takeCopying(fed.operator);
  // Before the encode parts' first turn: no user read yet.
  for (const element of after(0)) fed.input.next(element);
  assert.equal(encoded(), false, 'the records came while the snapshot was being read and encoded');
  // A turn: a part of the reading may run here (or all of it), then more records.
  await new Promise((resolve) => setImmediate(resolve));
  for (const element of after(1)) fed.input.next(element);
  const saved = await taken;
  for (const element of after(2)) fed.input.next(element);
  assert.equal(JSON.stringify(saved), atCall, "the snapshot is its call's state");
  assert.equal(JSON.stringify(await fed.operator.snapshot!()), JSON.stringify(await plain.operator.snapshot!()), 'the stage went on as one that took no snapshot');
  const restored = await fedOperator(churnModel, config, JSON.parse(atCall));
  assert.equal(JSON.stringify(await restored.operator.snapshot!()), atCall, 'restored whole');
  for (const { input, done, operator } of [still, plain, fed, restored]) {
    input.complete();
    await done;
    await operator.close?.();
  }
});

test("a model's label buffer is copied on write: with 70,000 predictions awaiting their labels the sources go on at the call, before the event loop turns; labels, evictions, expiries, overflow and new predictions while its snapshot is read do not show in it; it is byte for byte the call's state and restores to it, and the stage goes on as one that took none", async () => {
  const t = Date.UTC(2024, 0, 1);
  const sessionCount = 70;
  const eventsPerSession = 1000;
  // Full at the call: the first predictions after it overflow, until labels make room.
  const config: IntentModelConfig = { ...base, emit_labels: true, batch: { max_size: 256, max_delay: 0 }, label_buffer: { max_size: sessionCount * eventsPerSession, timeout: '2h' } };
  const sid = (s: number): string => `s${s}`;
  const view = (s: number, k: number, time: number, start: number): Element => event(`u${s}`, sid(s), time, k, start, 'view', [(s % 7) / 7, k % 2, 0, 1]);
  // The sessions' events interleaved, so each session's predictions lie all along the queue (past one part of the read, 65,536 rows).
  const before = (): Element[] => {
    const out: Element[] = [];
    for (let k = 0; k < eventsPerSession; k++) for (let s = 0; s < sessionCount; s++) out.push(view(s, k, t + (k * sessionCount + s) * 100, t + s * 100));
    return out;
  };
  const later = t + 3 * hour;
  const closed = (s: number): Element => summary(`u${s}`, sid(s), t + s * 100, later, eventsPerSession, s % 3 === 0, { view: eventsPerSession });
  const evicted = (s: number): Element => ({ ...closed(s), closedBy: 'evicted' }) as Element;
  const fresh = (round: number, from: number, count: number): Element[] => Array.from({ length: count }, (_, k) => view(1000 + round * 10 + (k % 5), from + k, later + k * 100, later));
  /** After the call: new predictions (the first overflow), labels (a session's all along the queue), an eviction, expiries at a watermark. */
  const after = (round: number): Element[] =>
    round === 0
      ? [...fresh(0, 0, 200), ...[0, 1, 2, 3, 4].map(closed), ...fresh(0, 200, 200), evicted(5)]
      : round === 1
        ? [...[10, 11, 12, 13, 14].map(closed), evicted(15), ...fresh(1, 0, 300), watermark(t + 2.5 * hour)]
        : [...Array.from({ length: 20 }, (_, k) => closed(30 + k)), ...fresh(2, 0, 100), watermark(t + 3.5 * hour)];

  const still = await fedOperator(intentModel, config);
  for (const element of before()) still.input.next(element);
  const atCall = JSON.stringify(await still.operator.snapshot!());
  // The same records, no snapshot among them.
  const plain = await fedOperator(intentModel, config);
  for (const element of [...before(), ...after(0), ...after(1), ...after(2)]) plain.input.next(element);

  const fed = await fedOperator(intentModel, config);
  for (const element of before()) fed.input.next(element);
  const { taken, encoded } = await takeCopying(fed.operator, 'a walk of the label buffer in parts');
  // Before the encode parts' first turn: no prediction read yet.
  for (const element of after(0)) fed.input.next(element);
  await new Promise((resolve) => setImmediate(resolve));
  // After one part: the queue's first predictions read, its last not yet.
  for (const element of after(1)) fed.input.next(element);
  assert.equal(encoded(), false, 'the records came while the snapshot was being read and encoded');
  const saved = await taken;
  for (const element of after(2)) fed.input.next(element);
  assert.equal(JSON.stringify(saved), atCall, "the snapshot is its call's state");
  assert.equal(JSON.stringify(await fed.operator.snapshot!()), JSON.stringify(await plain.operator.snapshot!()), 'the stage went on as one that took no snapshot');
  const outcomes = (output: Element[]): Record<string, number> => {
    const count: Record<string, number> = { label: of(output, 'label').length };
    for (const record of of(output, 'unlabelled')) count[String(record.reason)] = (count[String(record.reason)] ?? 0) + 1;
    return count;
  };
  assert.deepEqual(outcomes(fed.output), outcomes(plain.output));
  const seen = outcomes(plain.output);
  assert.ok(seen.label! > 0 && seen.overflow! > 0 && seen.expired! > eventsPerSession, `labels, overflow, an eviction and expiries came after the call: ${JSON.stringify(seen)}`);
  const restored = await fedOperator(intentModel, config, JSON.parse(atCall));
  assert.equal(JSON.stringify(await restored.operator.snapshot!()), atCall, 'restored whole');
  for (const { input, done, operator } of [still, plain, fed, restored]) {
    input.complete();
    await done;
    await operator.close?.();
  }
});

test("intent copies its open sessions on write: with 80,000 sessions the sources go on at the call, before the event loop turns; sessions updated, bought, closed, merged, swept, let go after keptUntil, forgotten and added while its snapshot is read, and their predictions labelled or expired, do not show in it; it is byte for byte the call's state and restores to it, and the stage goes on as one that took none", async () => {
  const t = Date.UTC(2024, 0, 1);
  const sessionCount = 80_000;
  // The sessions' first events spread over 4 hours (a watermark 2 h after the first sweeps the oldest).
  const spacing = (4 * hour) / sessionCount;
  const config: IntentModelConfig = { ...base, emit_labels: true, batch: { max_size: 256, max_delay: 0 }, label_buffer: { max_size: 1_000_000, timeout: '2h' } };
  const user = (s: number): string => `u${s}`;
  const sid = (s: number): string => `s${s}`;
  const start = (s: number): number => t + s * spacing;
  const view = (s: number, k: number, time: number): Element => event(user(s), sid(s), time, k, start(s), 'view', [(s % 7) / 7, k % 2, 0, 1]);
  const purchase = (s: number, k: number, time: number): Element => event(user(s), sid(s), time, k, start(s), 'purchase', [(s % 7) / 7, 1, 0, 1]);
  const closed = (s: number, end: number, bought: boolean): Element => ({ ...summary(user(s), sid(s), start(s), end, 2, bought), keptUntil: end + 30 * min }) as Element;
  const before = (): Element[] => {
    const out: Element[] = [];
    for (let s = 0; s < sessionCount; s++) out.push(view(s, 0, start(s)));
    // Every 50th a second view 3.5 h in: a watermark at 3 h expires its first prediction (the label buffer's doing) but keeps the session.
    for (let s = 0; s < sessionCount; s += 50) out.push(view(s, 1, t + 3.5 * hour));
    // Some bought and closed early on: kept until their keptUntil (closedBought), which a watermark at 3 h passes.
    for (let s = 5; s < 2000; s += 100) out.push(purchase(s, 1, start(s) + 1000), closed(s, start(s) + 2000, true));
    // As many at the map's end (the read reaches them last), as early in time: let go at 3 h too.
    for (let k = 0; k < 20; k++) {
      const [u, id, begun] = [`late${k}`, `late${k}`, t + k * 1000];
      out.push(event(u, id, begun, 0, begun, 'view', [0, 0, 0, 1]), event(u, id, begun + 1000, 1, begun, 'purchase', [0, 1, 0, 1]));
      out.push({ ...summary(u, id, begun, begun + 2000, 2, true), keptUntil: begun + 30 * min } as Element);
    }
    return out;
  };
  const last = sessionCount - 1;
  /** Right after the call, before any session is read: updates, purchases, closes (at both ends of the map), merges, new sessions. */
  const after0 = (): Element[] => [
    ...[1, 2, 3, last - 3].map((s) => view(s, 1, start(s) + 60_000)),
    purchase(7, 1, start(7) + 1000),
    ...[10, 11, 12, last - 1, last].map((s) => closed(s, start(s) + 60_000, s % 2 === 0)),
    // s13 takes s14 in: s14 leaves the map, its prediction labelled with s13's.
    ({ ...closed(13, start(14) + 60_000, true), replaces: [sid(14)] }) as Element,
    ...[0, 1, 2].map((k) => view(sessionCount + k, 0, t + 3.6 * hour)),
    // A session closed, its id back at a first event.
    view(11, 0, t + 3.7 * hour),
  ];
  /** After one part of the read: more of each, a watermark that sweeps the idle sessions, expires predictions and lets the bought ones go. */
  const after1 = (): Element[] => [
    ...[4, 40_000, last - 10].map((s) => view(s, 1, start(s) + 60_000)),
    ...[20, 40_001, last - 11].map((s) => closed(s, start(s) + 60_000, true)),
    watermark(t + 3 * hour),
  ];
  const after2 = (): Element[] => [...[30, 50_000].map((s) => closed(s, start(s) + 60_000, false)), view(sessionCount + 5, 0, t + 3.8 * hour)];
  const forgotten = user(60);

  const still = await fedOperator(intentModel, config);
  for (const element of before()) still.input.next(element);
  const atCall = JSON.stringify(await still.operator.snapshot!());
  // The same records, no snapshot among them.
  const plain = await fedOperator(intentModel, config);
  for (const element of [...before(), ...after0()]) plain.input.next(element);
  plain.operator.forget!(forgotten);
  for (const element of [...after1(), ...after2()]) plain.input.next(element);

  const fed = await fedOperator(intentModel, config);
  for (const element of before()) fed.input.next(element);
  const { taken, encoded } = await takeCopying(fed.operator, 'a walk of the sessions in parts');
  // Before the encode parts' first turn: no session read yet.
  for (const element of after0()) fed.input.next(element);
  fed.operator.forget!(forgotten);
  await new Promise((resolve) => setImmediate(resolve));
  // After one part: the map's first sessions read, its last not yet.
  for (const element of after1()) fed.input.next(element);
  assert.equal(encoded(), false, 'the records came while the snapshot was being read and encoded');
  const saved = await taken;
  for (const element of after2()) fed.input.next(element);
  assert.equal(JSON.stringify(saved), atCall, "the snapshot is its call's state");
  assert.equal(JSON.stringify(await fed.operator.snapshot!()), JSON.stringify(await plain.operator.snapshot!()), 'the stage went on as one that took no snapshot');
  assert.equal(JSON.stringify(modelOutputs(fed.output)), JSON.stringify(modelOutputs(plain.output)));
  const labels = of(plain.output, 'label').length;
  const expired = of(plain.output, 'unlabelled').filter((record) => record.reason === 'expired').length;
  assert.ok(labels > 0 && expired > 1000, `labels and expiries came after the call: ${labels}, ${expired}`);
  const restored = await fedOperator(intentModel, config, JSON.parse(atCall));
  assert.equal(JSON.stringify(await restored.operator.snapshot!()), atCall, 'restored whole');
  for (const { input, done, operator } of [still, plain, fed, restored]) {
    input.complete();
    await done;
    await operator.close?.();
  }
});

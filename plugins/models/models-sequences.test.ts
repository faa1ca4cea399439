import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inTurns, sessionKey, watermark, type ClickEvent, type Element } from 'tributary';
import { runOperator, testContext } from 'tributary/testing';
import intentModel, { type IntentModelConfig } from './intent.js';
import churnModel from './churn.js';
import { event, featureNames, summary } from './testdata.js';
import { SequenceTracker, stepOf, type SequencesState, type Step } from './sequence.js';
import sessionizer from '../operators/sessionizer.js';
import { Chain, stage } from '../operators/harness.js';
import { min, hour, base, of, outputsRestoredAt, fedOperator, modelOutputs } from './models-test-helpers.js';

test('gru sequences snapshot as columns; the first format (one [session, steps] each) restores to the same sequences; damaged columns are refused', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const tracker = new SequenceTracker(4, 16, 100);
  const events = [event('a', 's1', t, 0, t, 'view', undefined, 'shoes'), event('a', 's1', t + 5_000, 1, t, 'cart', undefined, 'shoes'), event('b', 's2', t, 0, t, 'purchase', undefined, '')];
  for (let i = 0; i < 6; i++) events.push(event('c', 's3', t + i * 1_000, i, t, 'view', undefined, `c${i}`)); // longer than 4: the last 4 kept
  for (const e of events) tracker.push(e.session!.id, e);
  const saved = JSON.parse(JSON.stringify(await inTurns(tracker.stateParts()))) as SequencesState;
  assert.ok(!Array.isArray(saved), 'columns, not one object per session');
  const keys = ['s1', 's2', 's3'];
  const samples = (from: SequenceTracker) => keys.map((key) => from.sample(key));
  const restored = new SequenceTracker(4, 16, 100);
  await inTurns(restored.loadParts(saved));
  assert.deepEqual(samples(restored), samples(tracker));
  // The first format, as the build before this one wrote it: each session's steps as objects.
  const firstFormat: [string, Step[]][] = keys.map((key) => [key, events.filter((e) => e.session!.id === key).slice(-4).map((e) => stepOf(e, 16))]);
  const old = new SequenceTracker(4, 16, 100);
  await inTurns(old.loadParts(JSON.parse(JSON.stringify(firstFormat)) as SequencesState));
  assert.deepEqual(samples(old), samples(tracker));
  const damaged = { ...saved, categories: saved.types, types: { n: 3, c: 0 } };
  await assert.rejects(inTurns(new SequenceTracker(4, 16, 100).loadParts(damaged)), /snapshot: sequences: types: lengths add up to 7, the list holds 3/);
});

test('gru sequences: at the bound, a closed sequence kept for late events is let go before any open one (the one that closed first), then the oldest open one; each counted (was: the oldest key, open or not, uncounted)', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const view = (id: string, minute: number): ClickEvent => event('u', id, t + minute * min, 0, t, 'view');
  const counted = { open: 0, closed: 0 };
  const tracker = new SequenceTracker(4, 16, 3, { open: { inc: () => void counted.open++ }, closed: { inc: () => void counted.closed++ } });
  const empty = new SequenceTracker(4, 16, 3).sample('none');
  const held = (key: string): boolean => tracker.sample(key).types.some((type) => type !== 0);
  // B open (the oldest key), A and C closed (A first), D open: D's key takes A's place, not B's.
  tracker.push('B', view('B', 0));
  tracker.push('A', view('A', 1));
  tracker.push('C', view('C', 2));
  tracker.close('A', t + 30 * min);
  tracker.close('C', t + 31 * min);
  tracker.push('D', view('D', 3));
  assert.deepEqual([held('A'), held('B'), held('C'), held('D')], [false, true, true, true]);
  assert.deepEqual(counted, { open: 0, closed: 1 });
  // C reopened by a late event is open again: with no closed one kept, the oldest open one (B) goes.
  tracker.push('C', view('C', 4));
  tracker.push('E', view('E', 5));
  assert.deepEqual([held('B'), held('C'), held('D'), held('E')], [false, true, true, true]);
  assert.deepEqual(counted, { open: 1, closed: 1 });
  // Released as before once their keptUntil passes: no eviction counted.
  tracker.close('E', t + 40 * min);
  tracker.release(t + 41 * min, true);
  assert.deepEqual(tracker.sample('E'), empty);
  tracker.push('F', view('F', 6));
  assert.deepEqual(counted, { open: 1, closed: 1 });
});

test('gru sequences: a fold puts the merged-away steps after the surviving session\'s, the last `length` kept; a closed sequence is kept until its keptUntil (a late event reopens it), which a snapshot holds; damaged closed rows are refused', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const view = (id: string, minute: number, category: string) => event('u', id, t + minute * min, 0, t, 'view', undefined, category);
  const tracker = new SequenceTracker(3, 16, 100);
  const reference = new SequenceTracker(3, 16, 100);
  for (const e of [view('E', 0, 'a'), view('E', 1, 'b')]) tracker.push('E', e), reference.push('E', e);
  for (const e of [view('A', 15, 'c'), view('A', 16, 'd')]) tracker.push('A', e);
  // In E now, c's previous event is b (14 minutes before), not none.
  for (const e of [view('A', 15, 'c'), view('A', 16, 'd')]) reference.push('E', e.category === 'c' ? { ...e, session: { ...e.session!, sincePrevious: 14 * min } } : e);
  tracker.fold('A', 'E', t);
  assert.deepEqual(tracker.sample('E'), reference.sample('E'), 'b, c, d: the last 3 of E\'s then A\'s');
  assert.deepEqual(tracker.sample('A'), new SequenceTracker(3, 16, 100).sample('A'));
  tracker.push('B', view('B', 20, 'e'));
  tracker.close('E', t + 40 * min);
  tracker.close('B', t + 30 * min);
  const saved = JSON.parse(JSON.stringify(await inTurns(tracker.stateParts()))) as SequencesState & { closedRows: unknown };
  const restored = new SequenceTracker(3, 16, 100);
  await inTurns(restored.loadParts(saved));
  for (const copy of [tracker, restored]) {
    // Released in the order they closed: E (due at 40) holds B (due at 30) back until every due one is sought.
    copy.release(t + 35 * min);
    assert.notDeepEqual(copy.sample('B'), reference.sample('none'), 'B is behind E');
    copy.release(t + 35 * min, true);
    assert.deepEqual(copy.sample('B'), reference.sample('none'), 'B let go');
    // A late event reopens E: kept past its keptUntil until it closes again.
    copy.push('E', view('E', 17, 'f'));
    copy.release(t + 50 * min, true);
    assert.equal(copy.sample('E').types.filter((type) => type !== 0).length, 3);
  }
  await assert.rejects(inTurns(new SequenceTracker(3, 16, 100).loadParts({ ...saved, closedRows: { n: 2, c: 0 } })), /snapshot: sequences: closedRows: 0 at 1, expected a row below 2 not listed before/);
});

test('gru steps: an event type that is an Object.prototype member (constructor, toString, __proto__) is "another type", as any unknown one, not padding', () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const other = stepOf(event('u', 's', t, 0, t, 'weird'), 16).type;
  assert.equal(other, 5);
  for (const type of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) assert.equal(stepOf(event('u', 's', t, 0, t, type), 16).type, other, type);
  assert.equal(stepOf(event('u', 's', t, 0, t, 'cart'), 16).type, 2);
});

test('churn (gru): a merge releases the merged-away session\'s sequence, and an update the late events\' since the summary (a session is predicted once, at its first summary); another user\'s open session keeps its own (was: both kept until max_users evicted them)', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 }, model: { kind: 'gru', sequence_length: 4 } } as IntentModelConfig;
  // B still open when the late event merged it into A (summarised and predicted): the merged summary is an update.
  const input: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'B', t + 40 * min, 0, t + 40 * min, 'view'),
    event('c', 'C', t + 45 * min, 0, t + 45 * min, 'view'),
    { ...event('a', 'A', t + 20 * min, 2, t, 'view'), session: { id: 'A', position: 2, sinceStart: 20 * min, sincePrevious: 0, start: t, merged: ['B'] } } as Element,
    event('a', 'A', t + 50 * min, 3, t, 'view'),
  ];
  const keysAfter = async (elements: Element[]): Promise<string[]> => ((await runOperator(churnModel, config, elements)).state as { sequences: { keys: string[] } }).sequences.keys;
  assert.deepEqual(await keysAfter(input), [sessionKey('a', 'B'), sessionKey('c', 'C'), sessionKey('a', 'A')], 'before the merged summary: kept');
  const merged = { ...summary('a', 'A', t, t + 50 * min, 4, false, { view: 4 }), update: true, replaces: ['B'] } as Element;
  assert.deepEqual(await keysAfter([...input, merged]), [sessionKey('c', 'C')]);
});

test('intent (gru): a late event that merges two sessions of a user folds the merged-away session\'s events into the surviving session\'s sequence (and keeps a closed session\'s until its keptUntil, as session-features keeps its state), so later predictions read every event of the merged session in event-time order (the merging event between the two sessions\' events), as the in-order stream\'s sequence: the merged-away steps measured from the merged session\'s start, each step from the one before it now; a snapshot anywhere restores to the same predictions (was: the sequence held the late event and those after it only; then the merged-away steps measured from their own session\'s start, and 0 since the previous event)', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const at = (minute: number, type: string, category: string): Element => ({ kind: 'event', userId: 'u1', time: t + minute * min, type, category, price: 10 + minute, features: { names: featureNames, values: Float32Array.of(0.5, 0, 0, 0) } }) as Element;
  // u1:0 (0, 2) closes at the watermark 13 (its summary labels it); u1:15 (15, 17) opens; the late event at 8 bridges
  // them (each within the 10 minute gap): merged under u1:0, and the event at 19 goes on in it.
  const input: Element[] = [at(0, 'view', 'a'), at(2, 'cart', 'b'), watermark(t + 13 * min), at(15, 'view', 'c'), at(17, 'view', 'd'), watermark(t + 18 * min), at(8, 'view', 'e'), at(19, 'cart', 'f'), watermark(t + 20 * min)];
  const stages = [stage(sessionizer, { gap: '10m', allowed_lateness: '20m' }), stage(intentModel, { backend: 'cpu', batch: { max_size: 1, max_delay: 0 }, model: { kind: 'gru', sequence_length: 8 } })];
  const chain = await Chain.build(stages, testContext());
  chain.push(input);
  const state = (await chain.snapshot())[1] as { sequences: SequencesState };
  const whole = chain.end();
  const events = whole.filter((r): r is ClickEvent => r.kind === 'event');
  assert.deepEqual(events.map((e) => [e.category, e.session!.id, e.session!.merged ?? []]), [['a', `u1:${t}`, []], ['b', `u1:${t}`, []], ['c', `u1:${t + 15 * min}`, []], ['d', `u1:${t + 15 * min}`, []], ['e', `u1:${t}`, [`u1:${t + 15 * min}`]], ['f', `u1:${t}`, []]], 'the sessionizer merged them');
  const key = sessionKey('u1', `u1:${t}`);
  const kept = new SequenceTracker(8, 64, 100);
  await inTurns(kept.loadParts(state.sequences));
  // As one session's events in event-time order: u1:0's, the late one that bridged them, u1:15's, the next (was: the
  // late one after u1:15's, in the order they came: the GRU read it as the latest step, and a cut to 3 steps dropped c for it).
  const inEventTime = [events[0]!, events[1]!, events[4]!, events[2]!, events[3]!, events[5]!];
  assert.deepEqual(inEventTime.map((e) => e.category), ['a', 'b', 'e', 'c', 'd', 'f']);
  // The same events in order, one session (tagged by the sessionizer as such): the sequence the GRU reads is the same.
  const inOrder: Element[] = [at(0, 'view', 'a'), at(2, 'cart', 'b'), at(8, 'view', 'e'), at(15, 'view', 'c'), at(17, 'view', 'd'), at(19, 'cart', 'f'), watermark(t + 20 * min)];
  assert.deepEqual(kept.sample(key), (await heldSequence(inOrder, key, 8)).sample(key));
  assert.deepEqual(kept.sample(sessionKey('u1', `u1:${t + 15 * min}`)), new SequenceTracker(8, 64, 100).sample('none'), 'the merged-away sequence is gone');
  // Bounded as any sequence: the last sequence_length steps.
  assert.deepEqual((await heldSequence(input, key, 3)).sample(key), (await heldSequence(inOrder, key, 3)).sample(key));
  // Restored at any cut, the rest of the run predicts as the uninterrupted one.
  const full = [...input, watermark(t + 60 * min), watermark(Infinity)];
  const uninterrupted = (await Chain.build(stages, testContext())).push(full).end();
  assert.equal(of(uninterrupted, 'prediction').length, 5, 'at every event but e (late, after a later event: out of order)');
  for (let cut = 1; cut < full.length; cut++) assert.equal(await outputsRestoredAt(stages, full, cut), modelOutputs(uninterrupted), `cut ${cut}`);
});

/** The gru sequence intent (behind a sessionizer, gap 10m, lateness 20m) holds for `key` after `input`, as a snapshot saves it. */
async function heldSequence(input: Element[], key: string, length: number): Promise<SequenceTracker> {
  const stages = [stage(sessionizer, { gap: '10m', allowed_lateness: '20m' }), stage(intentModel, { backend: 'cpu', batch: { max_size: 1, max_delay: 0 }, model: { kind: 'gru', sequence_length: length } })];
  const chain = await Chain.build(stages, testContext());
  chain.push(input);
  const state = (await chain.snapshot())[1] as { sequences: SequencesState };
  chain.end();
  const held = new SequenceTracker(length, 64, 100);
  await inTurns(held.loadParts(state.sequences));
  assert.ok(held.sample(key).types.some((type) => type !== 0), `a sequence held for ${key}`);
  return held;
}

test('intent (gru): a late event inside a session\'s span takes its place in event time, the oldest cut at sequence_length; one before the start moves every step\'s time since the start; the next prediction reads the in-order stream\'s sequence (was: appended in arrival order)', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const at = (minute: number, category: string): Element => ({ kind: 'event', userId: 'u1', time: t + minute * min, type: 'view', category, price: 10 + minute, features: { names: featureNames, values: Float32Array.of(0.5, 0, 0, 0) } }) as Element;
  // Inside the span: 4 comes after 6 (and the watermark passed it), then 8 in order.
  const key = sessionKey('u1', `u1:${t}`);
  const late: Element[] = [at(0, 'a'), at(2, 'b'), at(6, 'c'), watermark(t + 7 * min), at(4, 'd'), at(8, 'e'), watermark(t + 9 * min)];
  const inOrder: Element[] = [at(0, 'a'), at(2, 'b'), at(4, 'd'), at(6, 'c'), at(8, 'e'), watermark(t + 9 * min)];
  for (const length of [8, 3, 2]) assert.deepEqual((await heldSequence(late, key, length)).sample(key), (await heldSequence(inOrder, key, length)).sample(key), `sequence_length ${length}`);
  // Before the start: 3 joins the session that starts at 5 (within the gap), which starts at 3 now (its id stays).
  const movedKey = sessionKey('u1', `u1:${t + 5 * min}`);
  const before: Element[] = [at(5, 'a'), at(7, 'b'), at(9, 'c'), watermark(t + 10 * min), at(3, 'd'), at(11, 'e'), watermark(t + 12 * min)];
  const beforeInOrder: Element[] = [at(3, 'd'), at(5, 'a'), at(7, 'b'), at(9, 'c'), at(11, 'e'), watermark(t + 12 * min)];
  const inOrderKey = sessionKey('u1', `u1:${t + 3 * min}`);
  for (const length of [8, 3]) assert.deepEqual((await heldSequence(before, movedKey, length)).sample(movedKey), (await heldSequence(beforeInOrder, inOrderKey, length)).sample(inOrderKey), `sequence_length ${length}`);
});

test('intent (gru): a merge whose merging event this stage did not see is folded at the merged summary; a late event that reopens the merged session reads both sessions\' events', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { ...base, batch: { max_size: 1, max_delay: 0 }, model: { kind: 'gru', sequence_length: 8 } } as IntentModelConfig;
  const v = [0.5, 0, 0, 0];
  const kept = (at: number): Record<string, unknown> => ({ keptUntil: at });
  const input: Element[] = [
    event('a', 'E', t, 0, t, 'view', v, 'a'),
    { ...summary('a', 'E', t, t, 1, false), ...kept(t + 30 * min) },
    event('a', 'A', t + 15 * min, 0, t + 15 * min, 'view', v, 'b'),
    // The merging event (at 8) dropped on the way: the merged summary says A went into E.
    { ...summary('a', 'E', t, t + 15 * min, 3, false), update: true, replaces: ['A'], ...kept(t + 45 * min) },
    event('a', 'E', t + 16 * min, 3, t, 'view', v, 'c'),
  ];
  const state = (await runOperator(intentModel, config, input)).state as { sequences: SequencesState };
  const tracker = new SequenceTracker(8, 64, 100);
  await inTurns(tracker.loadParts(state.sequences));
  // As E's events in order: b 15 minutes after E's start and after a (in A it was its first).
  const reference = new SequenceTracker(8, 64, 100);
  for (const e of input.filter((r): r is ClickEvent => r.kind === 'event')) reference.push('E', e.category === 'b' ? { ...e, session: { ...e.session!, position: 1, sinceStart: 15 * min, sincePrevious: 15 * min, start: t } } : e);
  assert.deepEqual(tracker.sample(sessionKey('a', 'E')), reference.sample('E'));
});

test('churn (gru) keeps two users\' sequences of one data session id apart (GA4\'s ga_session_id is the second a session started): each user\'s prediction reads its own events, as under ids of their own, through a snapshot and a restore, and one of the format before (sequences keyed by id alone) still restores (was: one sequence, the first to close read both users\' events and deleted the other\'s)', async () => {
  const t0 = Date.UTC(2024, 2, 12, 11);
  const shared = '1710241200';
  const config = { backend: 'cpu', horizon: '1h', batch: { max_size: 1, max_delay: 0 }, model: { kind: 'gru', sequence_length: 4 } } as IntentModelConfig;
  // Sessions of other users labelled first (no return within the hour): the GRU has learnt, its score reads the sequence.
  const learnt: Element[] = [];
  for (let i = 0; i < 6; i++) {
    const start = t0 - 10 * hour + i * 10 * min;
    learnt.push(event(`c${i}`, `c${i}`, start, 0, start, i % 2 ? 'cart' : 'view', undefined, 'phones'), summary(`c${i}`, `c${i}`, start, start, 1, false, { view: 1 }));
  }
  learnt.push(watermark(t0 - 2 * hour));
  const stream = (bId: string): Element[] => [
    ...learnt,
    event('a', shared, t0, 0, t0, 'view', undefined, 'shoes'),
    event('b', bId, t0 + 30_000, 0, t0 + 30_000, 'cart', undefined, 'phones'),
    event('a', shared, t0 + 60_000, 1, t0, 'view', undefined, 'shoes'),
    event('b', bId, t0 + 90_000, 1, t0 + 30_000, 'purchase', undefined, 'phones'),
    summary('a', shared, t0, t0 + 60_000, 2, false, { view: 2 }),
    summary('b', bId, t0 + 30_000, t0 + 90_000, 2, true, { cart: 1 }),
    watermark(Infinity),
  ];
  const scores = (output: Element[]): Record<string, unknown> => Object.fromEntries(of(output, 'prediction').map((p) => [p.userId as string, p.score]));
  const apart = scores((await runOperator(churnModel, config, stream('other'))).output);
  const input = stream(shared);
  const whole = await runOperator(churnModel, config, input);
  assert.deepEqual(scores(whole.output), apart, 'each user\'s prediction as under an id of its own');
  for (const cut of [learnt.length + 1, learnt.length + 2, learnt.length + 3, learnt.length + 4, learnt.length + 5]) {
    const first = await runOperator(churnModel, config, input.slice(0, cut));
    const state = first.state as { format: number; sequences: { keys: string[] } };
    assert.equal(state.format, 5);
    const resumed = async (saved: unknown): Promise<string> => {
      const restored = await fedOperator(churnModel, config, saved);
      for (const element of input.slice(cut)) restored.input.next(element);
      restored.input.complete();
      await restored.done;
      await restored.operator.close?.();
      return modelOutputs(first.output) + (modelOutputs(first.output) ? '\n' : '') + modelOutputs(restored.output);
    };
    assert.equal(await resumed(JSON.parse(JSON.stringify(state))), modelOutputs(whole.output), `cut ${cut}: restored, the rest of the run is the uninterrupted one's`);
    // The same state as format 4 wrote it, each sequence keyed by its id alone: where the cut leaves one
    // user's sequence of the id, it restores to the uninterrupted run too.
    if (state.sequences.keys.length !== 1) continue;
    const old = JSON.parse(JSON.stringify(state)) as typeof state;
    old.format = 4;
    old.sequences.keys = [shared];
    assert.equal(await resumed(old), modelOutputs(whole.output), `cut ${cut}: a format 4 snapshot restored`);
  }
});

test("gru sequences: forgetUser (an erasure request) lets go of every sequence of the user's sessions, open or closed, and of no other user's, though one user's id starts with the other's", async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const tracker = new SequenceTracker(4, 16, 100);
  const sessions: [string, string][] = [['ann', 's1'], ['ann', 's2'], ['anna', 's1'], ['bob', 'ann']];
  for (const [user, id] of sessions) tracker.push(sessionKey(user, id), event(user, id, t, 0, t, 'view', undefined, 'shoes'));
  tracker.close(sessionKey('ann', 's1'), t + 60_000);
  assert.equal(tracker.forgetUser('ann'), 2);
  const saved = JSON.stringify(await inTurns(tracker.stateParts()));
  assert.ok(!saved.includes(sessionKey('ann', '')), saved);
  for (const [user, id] of sessions.slice(2)) assert.ok(saved.includes(sessionKey(user, id)), `${user}'s ${id} kept`);
  assert.equal(tracker.forgetUser('ann'), 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShopperWorld, trueChurnProbability, type SessionEndTruth } from './shoppers.js';
import { inTurns } from 'tributary';
import { countLoopTurns } from 'tributary/testing';

const day = 86_400_000;

test('the generator\'s churn truth is calibrated against what its shoppers then do', () => {
  // Every session end with its true P(no return within 7 days), and whether the shopper came back.
  const horizon = 7 * day;
  const ends: { truth: SessionEndTruth; back?: number }[] = [];
  const waiting = new Map<string, { truth: SessionEndTruth; back?: number }[]>();
  const world = new ShopperWorld({
    seed: 3,
    users: 500,
    onSessionEnd: (truth) => {
      const entry = { truth };
      ends.push(entry);
      waiting.set(truth.userId, [...(waiting.get(truth.userId) ?? []), entry]);
    },
  });
  let last = 0;
  for (let i = 0; i < 150_000; i++) {
    const event = world.next();
    last = event.time;
    const open = waiting.get(event.userId);
    if (open === undefined) continue;
    for (const e of open) if (e.truth.end < event.time) e.back ??= event.time;
    waiting.set(event.userId, open.filter((e) => e.back === undefined));
  }
  const labelled = ends.filter((e) => last - e.truth.end > horizon);
  assert.ok(labelled.length > 5000, `${labelled.length} labelled session ends`);
  // Binned by the truth, the share that did not return within the horizon matches the mean truth.
  const bins = [0, 0.15, 0.3, 0.5, 1.01];
  let checked = 0;
  for (let b = 0; b + 1 < bins.length; b++) {
    const inBin = labelled.filter((e) => {
      const p = trueChurnProbability(e.truth, horizon);
      return p >= bins[b]! && p < bins[b + 1]!;
    });
    if (inBin.length < 200) continue;
    checked++;
    const expected = inBin.reduce((sum, e) => sum + trueChurnProbability(e.truth, horizon), 0) / inBin.length;
    const observed = inBin.filter((e) => e.back === undefined || e.back - e.truth.end > horizon).length / inBin.length;
    const tolerance = 4 * Math.sqrt((expected * (1 - expected)) / inBin.length) + 0.01;
    assert.ok(Math.abs(observed - expected) < tolerance, `truth in [${bins[b]}, ${bins[b + 1]}): expected ${expected.toFixed(3)}, observed ${observed.toFixed(3)} of ${inBin.length}`);
  }
  assert.ok(checked >= 3, `${checked} bins with 200 or more session ends`);
});

test('the session-end hook sees every session, at its last event, and leaves the stream unchanged', () => {
  const plain = new ShopperWorld({ seed: 11, users: 50, sessionIds: true });
  const ends: { userId: string; end: number }[] = [];
  const observed = new ShopperWorld({ seed: 11, users: 50, sessionIds: true, onSessionEnd: (truth) => void ends.push(truth) });
  const events = [];
  for (let i = 0; i < 5000; i++) {
    const event = observed.next();
    assert.deepEqual(event, plain.next());
    events.push({ event, endedHere: ends.length });
  }
  // Sessions still open after those 5,000 events go on in the next ones.
  const later = new Set<string>();
  for (let i = 0; i < 20_000; i++) later.add(observed.next().sessionId!);
  // The hook fires exactly with the last event of each session: its id never comes again.
  const lastIndex = new Map<string, number>();
  events.forEach(({ event }, i) => lastIndex.set(event.sessionId!, i));
  let previous = 0;
  events.forEach(({ event, endedHere }, i) => {
    const fired = endedHere > previous;
    previous = endedHere;
    const last = lastIndex.get(event.sessionId!) === i && !later.has(event.sessionId!);
    assert.equal(fired, last, `event ${i}: the hook ${fired ? 'fired' : 'did not fire'} on ${last ? 'the' : 'not the'} last event of ${event.sessionId}`);
    if (fired) assert.deepEqual([ends[endedHere - 1]!.userId, ends[endedHere - 1]!.end], [event.userId, event.time], `event ${i}: the end it reports`);
  });
  assert.ok(ends.length > 500, `${ends.length} session ends`);
});

test('the world\'s state taken in parts, the event loop turning between them, is the state taken at once, and a world built from it goes on with the same events', async () => {
  const config = { seed: 3, users: 20_000, sessionIds: true };
  const world = new ShopperWorld(config);
  for (let i = 0; i < 50_000; i++) world.next();
  const atOnce = world.state();
  const loop = countLoopTurns();
  const inParts = await inTurns(world.stateParts());
  const turns = loop.stop();
  assert.ok(turns >= 1, `the loop turned ${turns} times while 20,000 shoppers' state was taken`);
  assert.deepEqual(inParts, atOnce);
  const resumed = await inTurns(ShopperWorld.build(config, JSON.parse(JSON.stringify(inParts)) as typeof inParts));
  for (let i = 0; i < 1000; i++) assert.deepEqual(resumed.next(), world.next(), `event ${i} after the state`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClickEvent } from 'tributary';
import { countLoopTurns, testContext } from 'tributary/testing';
import synthetic, { type SyntheticSourceConfig } from './synthetic.js';

const config: SyntheticSourceConfig = { seed: 7, users: 200, events: 0, rate: 0, items: 5000, categories: 50, start: '2024-01-01T00:00:00Z', session_ids: false, clock: 'simulated' };

async function firstBatch(resumeAt?: number): Promise<ClickEvent[]> {
  const source = await synthetic.create(config, testContext());
  if (resumeAt !== undefined) {
    await source.seek?.({ emitted: resumeAt });
    // A checkpoint taken while the replay runs saves the position resumed from.
    setImmediate(() => assert.deepEqual(source.position?.(), { emitted: resumeAt }));
  }
  for await (const batch of source.read()) return [...batch]; // the first batch; leaving the loop ends the generator
  return [];
}

test('a resumed synthetic source replays its stream to its position in parts, the event loop turning between them, and goes on where it stood', async () => {
  // A daemon resumed after a million events held the loop ~14 s replaying them in one go (a soak, at
  // load 15): /healthz went unanswered, long enough for a liveness probe to kill it, and longer with uptime.
  const resumeAt = 300_000;
  const uninterrupted = await firstBatch();
  const whole: ClickEvent[] = [];
  const source = await synthetic.create({ ...config, events: resumeAt + 5 }, testContext());
  for await (const batch of source.read()) whole.push(...batch);
  assert.equal(whole.length, resumeAt + 5);
  const counting = countLoopTurns();
  const resumed = await firstBatch(resumeAt);
  const turns = counting.stop();
  assert.ok(turns >= 5, `the loop turned ${turns} times while 300,000 events were replayed`);
  assert.deepEqual(resumed.slice(0, 5), whole.slice(resumeAt), 'the events after the position, as an uninterrupted run has them');
  assert.notDeepEqual(resumed[0], uninterrupted[0]);
});

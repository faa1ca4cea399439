import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isClickEvent, watermark, type ClickEvent } from 'tributary';
import { runOperator, specProblems, testContext } from 'tributary/testing';
import { botFilter } from './index.js';

const click = (userId: string, time: number): ClickEvent => ({ kind: 'event', userId, time, type: 'view' });

test('drops a user once they pass max_events within the window, and counts what it drops', async () => {
  const context = testContext();
  const human = [0, 20_000, 40_000, 60_000, 80_000].map((t) => click('human', t));
  const bot = Array.from({ length: 10 }, (_, i) => click('bot', i * 100));
  const { output } = await runOperator(botFilter, { max_events: 3, window: '1m' }, [...human, ...bot, watermark(Infinity)], context);
  const kept = output.filter(isClickEvent);
  assert.equal(kept.filter((e) => e.userId === 'human').length, 5);
  assert.equal(kept.filter((e) => e.userId === 'bot').length, 3);
  assert.equal(context.filtered, 7);
});

test('passes other records and watermarks through untouched', async () => {
  const { output } = await runOperator(botFilter, {}, [{ kind: 'session', userId: 'u' }, watermark(5)]);
  assert.deepEqual(output, [{ kind: 'session', userId: 'u' }, watermark(5)]);
});

test('its state survives a restart from a checkpoint: the window goes on counting', async () => {
  const first = await runOperator(botFilter, { max_events: 3, window: '1m' }, [click('bot', 0), click('bot', 100), click('bot', 200)]);
  const context = testContext();
  // The fourth click within the minute, after a restart: dropped only if the first three were restored.
  await runOperator(botFilter, { max_events: 3, window: '1m' }, [click('bot', 300)], context, { restore: first.state });
  assert.equal(context.filtered, 1);
});

test('its spec documents every field and its examples validate (what `tributary docs` prints)', () => {
  assert.deepEqual(specProblems(botFilter), []);
});

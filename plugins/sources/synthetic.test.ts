import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeColumn, encodeColumns, inTurns, type ClickEvent, type Column } from 'tributary';
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

/** The `take` events after the first `count` of a run with these settings, and its position once `count` were read. */
async function readFrom(settings: SyntheticSourceConfig, count: number, take: number): Promise<{ after: ClickEvent[]; position: Record<string, unknown> }> {
  const source = await synthetic.create({ ...settings, events: count + take }, testContext());
  const seen: ClickEvent[] = [];
  let position: Record<string, unknown> | undefined;
  for await (const batch of source.read()) {
    seen.push(...batch.map((event) => ({ ...event })));
    if (seen.length === count) position = source.position?.();
  }
  return { after: seen.slice(count), position: position! };
}

test("a checkpoint holds the synthetic world's state: a resume costs its users, not the events it generated, and goes on event for event", async () => {
  for (const session_ids of [false, true]) {
    const settings = { ...config, session_ids };
    // Batches of 1024 (testContext): the position after 50 of them.
    const { after, position } = await readFrom(settings, 51_200, 3000);
    assert.ok(Array.isArray((position.world as { events: unknown }).events), 'the position holds the world');
    // A replay to 10^12 events would never end: resumed from the world, the count is only a count.
    for (const emitted of [51_200, 1e12]) {
      const source = await synthetic.create(settings, testContext());
      await source.seek?.(JSON.parse(JSON.stringify({ ...position, emitted })) as Record<string, unknown>);
      const resumed: ClickEvent[] = [];
      for await (const batch of source.read()) {
        resumed.push(...batch);
        if (resumed.length >= 3000) break;
      }
      assert.deepEqual(resumed.slice(0, 3000), after, `session_ids ${session_ids}, emitted ${emitted}`);
    }
  }
});

test('a position saved under other settings (users, seed) is replayed to by its count, as the new settings make the stream', async () => {
  const { position } = await readFrom(config, 10_240, 0);
  const other = { ...config, users: 300 };
  const { after } = await readFrom(other, 10_240, 2000);
  const source = await synthetic.create(other, testContext());
  await source.seek?.(position);
  for await (const batch of source.read()) {
    assert.deepEqual(batch.slice(0, 1000), after.slice(0, 1000));
    break;
  }
});

test("a synthetic world of 70,000 shoppers is restored in parts, the event loop turning between them, and goes on event for event", async () => {
  // Restored in one go it held the loop 0.15-0.3 s (20,000-40,000 shoppers): a daemon's /healthz unanswered meanwhile.
  // More shoppers than a part takes rows (65,536, core/turns.ts), so the loop turns however fast the machine
  // (with 20,000, a quick restore took two 10 ms parts and the loop turned twice; in one go it turns none).
  const settings = { ...config, users: 70_000 };
  const { after, position } = await readFrom(settings, 40_960, 2000);
  const source = await synthetic.create(settings, testContext());
  await source.seek?.(JSON.parse(JSON.stringify(position)) as Record<string, unknown>);
  const counting = countLoopTurns();
  const resumed: ClickEvent[] = [];
  for await (const batch of source.read()) {
    if (resumed.length === 0) counting.stop();
    resumed.push(...batch);
    if (resumed.length >= 2000) break;
  }
  assert.ok(counting.turns >= 1, `the loop turned ${counting.turns} times while the world was restored`);
  assert.deepEqual(resumed.slice(0, 2000), after);
});

test('a world saved as one flat list of numbers (the first saved worlds) is still resumed from, event for event', async () => {
  const { after, position } = await readFrom(config, 10_240, 1000);
  const world = position.world as { random: number[]; nextShopperId: number; sessionCounter: number; shoppers: Column[]; events: Column[] };
  const shoppers = world.shoppers.map((column) => decodeColumn(column, 'test'));
  const events = world.events.map((column) => decodeColumn(column, 'test'));
  const flat: number[] = [];
  for (let s = 0, e = 0; s < shoppers[0]!.length; s++) {
    for (const column of shoppers) flat.push(column[s]!);
    for (let i = 0; i < shoppers[6]![s]!; i++, e++) for (const column of events) flat.push(column[e]!);
  }
  const source = await synthetic.create(config, testContext());
  // A count no replay would reach: the events can only come from the flat world.
  await source.seek?.({ ...position, emitted: 1e12, world: { random: world.random, nextShopperId: world.nextShopperId, sessionCounter: world.sessionCounter, shoppers: flat } });
  for await (const batch of source.read()) {
    assert.deepEqual(batch.slice(0, 1000), after);
    break;
  }
});

test('a damaged saved world is logged with what does not match and the stream replayed to its position instead', async () => {
  const { after, position } = await readFrom(config, 10_240, 1000);
  const world = position.world as { shoppers: Column[]; events: Column[] };
  const items = decodeColumn(world.events[2]!, 'test');
  items[0] = config.items; // past the catalogue: restored, it was an event of item i5000 in category cundefined
  const [outOfCatalogue] = await inTurns(encodeColumns([items]));
  for (const [events, message] of [
    [world.events.slice(1), 'synthetic world: events: 2 columns, expected 3'],
    [[world.events[0]!, world.events[1]!, outOfCatalogue!], `synthetic world: event 0 has item ${config.items}, of a catalogue of ${config.items}`],
  ] as const) {
    const warnings: string[] = [];
    const errors: string[] = [];
    const context = testContext();
    const logger = Object.create(context.logger) as typeof context.logger;
    logger.warn = ((fields: { err?: Error }, message: string) => void (warnings.push(message), errors.push(fields.err?.message ?? ''))) as typeof logger.warn;
    const source = await synthetic.create(config, { ...context, logger });
    await source.seek?.({ ...position, world: { ...world, events } });
    for await (const batch of source.read()) {
      assert.deepEqual(batch.slice(0, 1000), after);
      break;
    }
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /cannot be read/);
    assert.equal(errors[0], message, 'what does not match');
  }
});

/**
 * The kafka source's idle partitions at startup, against a real broker, on a clock the test moves: a
 * partition assigned but not fetched yet holds the watermark (its records would otherwise come late),
 * and one with nothing to read does not hold it for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { ClickEvent, SourcePlugin } from 'tributary';
import { testContext } from 'tributary/testing';
import kafkaSource, { type KafkaSourceConfig } from '../plugins/kafka/source.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, createTopic, openTransaction, produce, produceEvery, type RawRecord } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const idleTimeout = 5_000;
const maxOutOfOrderness = 1_000;

/** 200 records of `partition`, one a second of event time from `base`. */
const records = (partition: number): RawRecord[] =>
  Array.from({ length: 200 }, (_, i) => ({ partition, key: `u${i}`, value: clickJson(i, base + i * 1_000, 'view', { seq: partition * 1_000 + i }) }));

/**
 * A kafka source reading `topic` on a clock that is the wall clock plus `skew.ms`. `onAssigned` runs
 * when the source logs its assignment (synchronously, right after it hands the partitions to librdkafka,
 * before any fetch of them can be answered).
 */
async function sourceOn(brokers: string, topic: string, skew: { ms: number }, onAssigned: () => void = () => undefined, idle = idleTimeout) {
  const logger = pino({ level: 'info' }, {
    write(line: string) {
      if (line.includes('"kafka partitions assigned"')) onAssigned();
    },
  });
  const context = testContext({ batchSize: 100, clock: { now: () => Date.now() + skew.ms }, logger, watermark: { maxOutOfOrderness, idleTimeout: idle } });
  const config: KafkaSourceConfig = { brokers, topics: [topic], group: `g-${topic}`, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, mapping: { attributes: ['seq'] } };
  return (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
}

type KafkaSourceInstance = Awaited<ReturnType<typeof sourceOn>>;

/** Reads batches until partition 0's last record (event time base + 199 s) came; the newest event time read. */
async function readPartitionZero(batches: AsyncIterator<readonly ClickEvent[]>): Promise<number> {
  let newest = -Infinity;
  while (newest < base + 199_000) {
    const next = await batches.next();
    assert.equal(next.done, false);
    for (const event of next.value as ClickEvent[]) newest = Math.max(newest, event.time);
  }
  return newest;
}

/** Reads batches until `count` events came. */
async function readEvents(batches: AsyncIterator<readonly ClickEvent[]>, count: number): Promise<void> {
  for (let read = 0; read < count; ) {
    const next = await batches.next();
    assert.equal(next.done, false);
    read += (next.value as ClickEvent[]).length;
  }
}

/** Moves the source's clock on by idle_timeout at each look until its watermark follows `newest`: partition 1 went idle. */
async function watermarkFollows(source: KafkaSourceInstance, skew: { ms: number }, newest: number): Promise<void> {
  await waitFor('the watermark to follow partition 0', () => {
    skew.ms += idleTimeout;
    return source.watermark!() === newest - maxOutOfOrderness;
  }, 30_000);
}

test('a partition assigned but not fetched yet is not idle: a first fetch slower than idle_timeout does not make its records late', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('first-fetch');
  await createTopic(brokers, topic, 2);
  // The same event times in both partitions: whichever is read first, the other's records are behind it.
  await produce(brokers, topic, [...records(0), ...records(1)]);
  // The clock passes idle_timeout between the assignment and any fetch answer: a first fetch that took
  // that long (a loaded machine or broker, a scale-out restore, partitions paused while the buffer is full).
  const skew = { ms: 0 };
  const source = await sourceOn(brokers, topic, skew, () => void (skew.ms += idleTimeout + 1));
  const batches = source.read()[Symbol.asyncIterator]();
  try {
    let watermark = source.watermark!();
    const late: number[] = [];
    const read = new Set<number>();
    while (read.size < 400) {
      const next = await batches.next();
      assert.equal(next.done, false);
      for (const event of next.value as ClickEvent[]) {
        if (event.time < watermark) late.push(Number(event.attrs?.seq));
        read.add(Number(event.attrs?.seq));
      }
      watermark = source.watermark!();
    }
    // Before: the partition read second was idle from its assignment on, so the watermark followed the
    // first one's newest event, and about 100 of its records were late (behind by up to 99 s).
    assert.deepEqual(late, []);
  } finally {
    await source.close?.();
  }
});

test('a partition with nothing to read does not hold the watermark for ever: idle_timeout after its first fetch answer, the watermark follows the others', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('empty-partition');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, records(0));
  const skew = { ms: 0 };
  const source = await sourceOn(brokers, topic, skew);
  const batches = source.read()[Symbol.asyncIterator]();
  try {
    const newest = await readPartitionZero(batches);
    // Partition 1 is empty: it holds the watermark only until idle_timeout after its first fetch answer.
    // Each look moves the clock on by idle_timeout, so this waits only for that answer (about a fetch).
    await watermarkFollows(source, skew, newest);
    // Scale-out asks the same of each partition (a held one idle no longer holds the global stages).
    assert.ok(source.idlePartitions!().has(`${topic}-1`), 'partition 1 named idle');
  } finally {
    await source.close?.();
  }
});

for (const backlogPartition of [0, 1]) test(`a partition with records to read (lag > 0) is not idle, however long they wait: a pipeline slower than idle_timeout per batch reads no record late (the backlog on partition ${backlogPartition})`, { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('lagging');
  await createTopic(brokers, topic, 2);
  // One partition holds a backlog of 4000 records (event time 1 s apart, seq 0-3999), the other 200
  // (seq 10000-10199): whichever is read first, the other's records wait in librdkafka's queue or on the
  // broker (the buffer full) while the source's batches go on without them. Both ways round: librdkafka
  // orders a fetch answer's partitions as it likes, so either may be the one that waits.
  const backlog = Array.from({ length: 4_000 }, (_, i) => ({ partition: backlogPartition, key: `a${i}`, value: clickJson(i, base + i * 1_000, 'view', { seq: i }) }));
  const short = Array.from({ length: 200 }, (_, i) => ({ partition: 1 - backlogPartition, key: `u${i}`, value: clickJson(i, base + i * 1_000, 'view', { seq: 10_000 + i }) }));
  await produce(brokers, topic, [...backlog, ...short]);
  const skew = { ms: 0 };
  // A short idle_timeout: the clock moves it at every batch. The stall check (a position that has not
  // moved for 10 s of this clock) called the waiting partition stalled, and judged it by time, after 10 s
  // of the other's batches (runs of 2026-12-04: 100 or 200 records late); it now waits while librdkafka's
  // queue may still hold its records behind them.
  const idle = 1_000;
  const source = await sourceOn(brokers, topic, skew, undefined, idle);
  const batches = source.read()[Symbol.asyncIterator]();
  try {
    let watermark = source.watermark!();
    const late: number[] = [];
    let read = 0;
    while (read < 4_200) {
      const next = await batches.next();
      assert.equal(next.done, false);
      for (const event of next.value as ClickEvent[]) {
        if (event.time < watermark) late.push(Number(event.attrs?.seq));
        read++;
      }
      // Each batch takes idle_timeout on the test's clock (a slow pipeline): by time alone, every
      // partition is idle at each look, its records still to come or not.
      skew.ms += idle + 1;
      watermark = source.watermark!();
    }
    // Before: a partition with records still to read was idle, and the watermark followed the most
    // advanced partition: partition 1's 200 records came first, then partition 0's from 100 to 197 were
    // late (98 of them).
    assert.deepEqual(late, [], `${late.length} records late (seq ${late.join(', ')})`);
  } finally {
    await source.close?.();
  }
});

test('a partition read to its end before a restart (its committed offset at the end) does not hold the watermark for ever', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('read-before');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, [...records(0), ...records(1)]);
  // A first run reads both partitions to their end and commits.
  const first = await sourceOn(brokers, topic, { ms: 0 });
  const firstBatches = first.read()[Symbol.asyncIterator]();
  try {
    await readEvents(firstBatches, 400);
    await first.commit!(first.position!());
  } finally {
    await first.close?.();
  }
  // Partition 0 gets newer records; partition 1 none: the second run reads nothing of it, so where its
  // reading starts (the committed offset, its end) is known only once the source asks.
  const newer = Array.from({ length: 100 }, (_, i) => ({ partition: 0, key: `n${i}`, value: clickJson(i, base + (300 + i) * 1_000, 'view', { seq: 500 + i }) }));
  await produce(brokers, topic, newer);
  const skew = { ms: 0 };
  const source = await sourceOn(brokers, topic, skew);
  const batches = source.read()[Symbol.asyncIterator]();
  try {
    await readEvents(batches, 100);
    // Partition 1 holds the watermark only until the source learns it has nothing to read (its start,
    // about 10 s on the source's clock).
    await watermarkFollows(source, skew, base + 399_000);
  } finally {
    await source.close?.();
  }
});

test('a partition held by another producer\'s open transaction (read_committed) is idle once nothing before its last stable offset is left: it does not hold the watermark until the transaction ends', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('open-transaction');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, records(0));
  // Partition 1: a record in a transaction that stays open (a producer that died mid-transaction holds
  // it so until the broker aborts it, transaction.timeout.ms later; a live one until it commits). Its
  // high watermark is past it; its last stable offset, where a read_committed consumer stops, is before it.
  const open = await openTransaction(brokers, topic, [{ partition: 1, key: 'held', value: clickJson(0, base + 500_000, 'view', { seq: 9_999 }) }]);
  const skew = { ms: 0 };
  const source = await sourceOn(brokers, topic, skew);
  const batches = source.read()[Symbol.asyncIterator]();
  try {
    const newest = await readPartitionZero(batches);
    // Before: partition 1's position (its last stable offset) stayed below its high watermark, so it
    // counted as having records to read and held the watermark at -Infinity for as long as the
    // transaction stayed open.
    await watermarkFollows(source, skew, newest);
    // The transaction commits: its record is read (nothing is lost), and its partition is active again.
    await open.commit();
    const held = await batches.next();
    assert.equal(held.done, false);
    assert.deepEqual((held.value as ClickEvent[]).map((event) => Number(event.attrs?.seq)), [9_999]);
  } catch (error) {
    await open.abort().catch(() => undefined);
    throw error;
  } finally {
    await source.close?.();
  }
});

test('a partition whose records all go to the dead-letter sink does not hold the watermark for ever: they give no event time, so it goes idle as an empty one does', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('dead-letter-partition');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, records(0));
  // Partition 1: records of another format (not JSON) keep coming, one every 200 ms, well within idle_timeout.
  const garbage = produceEvery(brokers, topic, 200, (seq) => ({ partition: 1, key: 'x', value: `not json ${seq}` }));
  // The wall clock (garbage arrives in real time) and a short idle_timeout.
  const idle = 2_000;
  const context = testContext({ batchSize: 100, watermark: { maxOutOfOrderness, idleTimeout: idle } });
  const config: KafkaSourceConfig = { brokers, topics: [topic], group: `g-${topic}`, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, mapping: { attributes: ['seq'] } };
  const source = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  const batches = source.read()[Symbol.asyncIterator]();
  // Pulled in the background: a source that dead-letters records yields nothing for them, so a
  // pull may wait as long as only garbage comes.
  let newest = -Infinity;
  const reading = (async () => {
    for (;;) {
      const next = await batches.next();
      if (next.done) return;
      for (const event of next.value) newest = Math.max(newest, event.time);
    }
  })();
  reading.catch(() => undefined);
  try {
    await waitFor('partition 0 read', () => newest >= base + 199_000, 60_000);
    const deadBefore = context.deadLetters.length;
    // Before: each dead letter counted as activity, so partition 1 was never idle, and with no event
    // time it held the watermark at -Infinity for as long as its garbage kept coming.
    await waitFor('the watermark to follow partition 0', () => source.watermark!() === base + 199_000 - maxOutOfOrderness, 30_000);
    assert.ok(context.deadLetters.length > deadBefore, 'partition 1\'s records kept coming (dead-lettered) meanwhile');
    assert.ok(context.deadLetters.every((letter) => letter.reason.startsWith('not JSON')));
  } finally {
    await garbage.stop();
    await source.close?.();
  }
});

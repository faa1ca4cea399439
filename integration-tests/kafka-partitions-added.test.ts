/**
 * Partitions added to a topic a `kafka` source reads, through a real broker: the topic grown while the
 * source reads it, grown while it is stopped (its checkpoint holding the offsets of the old layout), and
 * deleted and created again with more partitions while it is stopped (the checkpoint's offsets past the
 * new logs' ends). With `start_from: latest` every such partition is read from its start, said in the
 * log; before, librdkafka started them at their end (auto.offset.reset) and their first records were
 * skipped without a word.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { testContext } from 'tributary/testing';
import type { SourcePlugin, SourcePosition } from 'tributary';
import kafkaSource, { type KafkaSourceConfig } from '../plugins/kafka/source.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, createTopic, deleteTopic, growTopic, produce } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');

/** Records `seq` from `from` on, `count` of them, on `partition`. */
function records(partition: number, from: number, count: number): { partition: number; key: string; value: string }[] {
  return Array.from({ length: count }, (_, i) => ({ partition, key: `u${partition}`, value: clickJson(partition, base + from + i, 'view', { seq: from + i }) }));
}

/** A kafka source with `start_from: latest`, at `position` where given, reading the records' seq into `got`; its log lines in `lines`. */
async function latestSource(brokers: string, topic: string, group: string, got: Set<number>, lines: string[], position?: SourcePosition) {
  const config: KafkaSourceConfig = { brokers, topics: [topic], group, start_from: 'latest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, mapping: { attributes: ['seq'] } };
  const context = testContext({ batchSize: 100, logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }) });
  const source = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  if (position) source.seek!(position);
  const reading = (async () => {
    for await (const batch of source.read()) for (const event of batch) got.add(Number(event.attrs?.seq));
  })();
  reading.catch(() => undefined);
  return {
    source,
    /** Its position committed, as a checkpoint's is, then closed: the position. */
    async stop(): Promise<SourcePosition> {
      const at = source.position!();
      await source.commit!(at);
      await source.close?.();
      assert.deepEqual(context.failures, []);
      return at;
    },
  };
}

/** Waits until the source reads: a record on each of `partitions` partitions, produced again until one of them is read (latest: those before the assignment are not). */
async function untilReading(brokers: string, topic: string, partitions: number, got: Set<number>): Promise<void> {
  let seq = 1_000_000;
  await waitFor('the source assigned and reading', async () => {
    if (got.size > 0) return true;
    for (let p = 0; p < partitions; p++) await produce(brokers, topic, records(p, seq++, 1));
    return false;
  }, 60_000, 500);
}

const seqs = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);
const has = (got: Set<number>, wanted: number[]) => () => wanted.every((seq) => got.has(seq));

test('start_from latest: partitions added to the topic while the source reads it are read from their start, not from their end', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('grow-running');
  await createTopic(brokers, topic, 2);
  const got = new Set<number>();
  const lines: string[] = [];
  const reader = await latestSource(brokers, topic, `g-${topic}`, got, lines);
  try {
    await untilReading(brokers, topic, 2, got);
    await growTopic(brokers, topic, 4);
    // Written before the group's next rebalance gives the source the new partitions.
    await produce(brokers, topic, [...records(2, 0, 10), ...records(3, 10, 10)]);
    await waitFor('the records of the added partitions read', has(got, seqs(0, 20)), 30_000, 100);
    assert.match(lines.join(''), new RegExp(`partitions added to their topic since this source last read it .*: (${topic}/[23], ){1}${topic}/[23] read from their start`));
  } finally {
    await reader.stop();
  }
});

test('start_from latest: partitions added while the source was stopped are read from their start after the restart from its checkpoint; the checkpoint says how many partitions each topic had', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('grow-stopped');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 2);
  const got = new Set<number>();
  const first = await latestSource(brokers, topic, group, got, []);
  await untilReading(brokers, topic, 2, got);
  await produce(brokers, topic, [...records(0, 0, 5), ...records(1, 5, 5)]);
  await waitFor('the first records read', has(got, seqs(0, 10)), 30_000, 100);
  const checkpoint = await first.stop();
  assert.deepEqual(checkpoint.partitions, { [topic]: 2 });
  await growTopic(brokers, topic, 4);
  await produce(brokers, topic, [...records(0, 100, 5), ...records(1, 105, 5), ...records(2, 110, 5), ...records(3, 115, 5)]);
  const again = new Set<number>();
  const lines: string[] = [];
  const second = await latestSource(brokers, topic, group, again, lines, checkpoint);
  try {
    await waitFor('every record written while stopped read', has(again, seqs(100, 20)), 30_000, 100);
    assert.deepEqual([...again].filter((seq) => seq < 100), [], 'nothing read twice');
    assert.match(lines.join(''), new RegExp(`${topic}/2, ${topic}/3 read from their start`));
  } finally {
    assert.deepEqual((await second.stop()).partitions, { [topic]: 4 });
  }
});

test('start_from latest: a topic deleted and created again with more partitions while the source was stopped is read from its start, the checkpoint\'s offsets past its logs\' ends said in a warning', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('recreate-more');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 2);
  const got = new Set<number>();
  const first = await latestSource(brokers, topic, group, got, []);
  await untilReading(brokers, topic, 2, got);
  await produce(brokers, topic, [...records(0, 0, 20), ...records(1, 20, 20)]);
  await waitFor('the first records read', has(got, seqs(0, 40)), 30_000, 100);
  const checkpoint = await first.stop();
  await deleteTopic(brokers, topic);
  await waitFor('the topic created again', async () => createTopic(brokers, topic, 3).then(() => true, () => false), 30_000, 500);
  // Each new log ends at 5, below the checkpoint's offsets (20 and more).
  await produce(brokers, topic, [...records(0, 100, 5), ...records(1, 105, 5), ...records(2, 110, 5)]);
  const again = new Set<number>();
  const lines: string[] = [];
  const second = await latestSource(brokers, topic, group, again, lines, checkpoint);
  try {
    await waitFor('every record of the new topic read', has(again, seqs(100, 15)), 30_000, 100);
    const log = lines.join('');
    assert.match(log, new RegExp(`${topic}/0: offset \\d+ is past the log's end 5 \\(the topic was created again.*read from its log's start`));
    assert.match(log, new RegExp(`${topic}/2 read from their start`));
  } finally {
    await second.stop();
  }
});

/**
 * Reprocessing against a real broker: `start_from` a point in time starts a group that holds no
 * committed offset at each partition's first record at or after it (by the records' Kafka timestamps,
 * offsetsForTimes), leaves a group that committed where it committed, and a replay in a group of its own
 * leaves the live group's committed offsets as they were.
 */
import { test } from 'node:test';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { runYaml, tempFolder } from 'tributary/testing';
import type { ClickEvent, StreamRecord } from 'tributary';
import { kafkaBrokers, uniqueTopic } from './kafka/env.js';
import { clickJson, collectSink, createTopic, groupCommitted, produce, type RawRecord } from './kafka/client.js';

// Kafka timestamps of the last hour: within the broker's retention, so none is deleted under the test.
const hourAgo = Date.now() - 3_600_000;

/** `count` views, seq `from`.., a second apart in Kafka timestamp (and event time) from `hourAgo + from` seconds, over the partitions by user. */
function views(from: number, count: number): RawRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const time = hourAgo + seq * 1000;
    return { key: `u${seq % 13}`, value: clickJson(seq % 13, time, 'view', { seq }), timestamp: time };
  });
}

function pipeline(topic: string, group: string, startFrom: string, extra = ''): string {
  return `
name: kafka-replay-test
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${topic}]
    group: ${group}
    start_from: ${startFrom}
    stop_at_end: true
    mapping: { attributes: [seq] }
sinks:
  - type: collect
settings:
  commit_interval: 200ms
${extra}`;
}

async function run(brokers: string, yaml: string): Promise<{ seqs: number[]; eventsIn: number }> {
  const store: StreamRecord[][] = [[]];
  const { stats } = await runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(store)] });
  const seqs = store[0]!.map((record) => Number((record as unknown as ClickEvent).attrs?.seq)).sort((a, b) => a - b);
  return { seqs, eventsIn: stats.eventsIn };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

test('start_from a point in time: a new group reads each partition from its first record at or after it, by Kafka timestamp', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('replay-time');
  await createTopic(brokers, topic, 3);
  await produce(brokers, topic, views(0, 600));
  const at = new Date(hourAgo + 400 * 1000).toISOString();
  // Before: `start_from` took earliest or latest alone (a config error), and a replay read the whole retention.
  const { seqs } = await run(brokers, pipeline(topic, `g-${topic}`, `'${at}'`));
  assert.deepEqual(seqs, range(400, 600), 'every record from the point in time on, each once, none before it');
  // A time after every record: each partition at its end (nothing read, the lag counted from there).
  const later = await run(brokers, pipeline(topic, `g-late-${topic}`, `'${new Date(Date.now() + 3_600_000).toISOString()}'`));
  assert.deepEqual(later.seqs, []);
});

test('start_from a point in time leaves a group that committed at its committed offsets; a replay in another group leaves the live group\'s offsets as they were', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('replay-committed');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, views(0, 300));
  const live = `live-${topic}`;
  const first = await run(brokers, pipeline(topic, live, 'earliest'));
  assert.deepEqual(first.seqs, range(0, 300));
  const liveOffsets = await groupCommitted(brokers, live, topic, 2);
  assert.equal(liveOffsets.reduce((a, b) => a + b, 0), 300, 'the live group committed its whole input');
  await produce(brokers, topic, views(300, 100));
  // The replay: its own group, from a point in time before the live group's offsets.
  const replay = await run(brokers, pipeline(topic, `replay-${topic}`, `'${new Date(hourAgo + 100 * 1000).toISOString()}'`));
  assert.deepEqual(replay.seqs, range(100, 400));
  assert.deepEqual(await groupCommitted(brokers, live, topic, 2), liveOffsets, "the replay moved none of the live group's offsets");
  // The live group with a point in time set: its committed offsets come first (only the 100 new records).
  const resumed = await run(brokers, pipeline(topic, live, `'${new Date(hourAgo).toISOString()}'`));
  assert.deepEqual(resumed.seqs, range(300, 400));
});

test('scale_out: start_from a point in time starts a partition with no saved state and no committed offset at its first record at or after it', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('replay-scale');
  await createTopic(brokers, topic, 3);
  await produce(brokers, topic, views(0, 300));
  const dir = tempFolder(t, 'replay-scale');
  const at = `'${new Date(hourAgo + 250 * 1000).toISOString()}'`;
  const extra = `checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1h }\nscale_out: { state_dir: ${join(dir, 'partition-state')} }\n`;
  const { seqs } = await run(brokers, pipeline(topic, `g-${topic}`, at, extra));
  assert.deepEqual(seqs, range(250, 300));
});

test('exactly-once: start_from a point in time starts a new group there, and its transactions commit the group\'s offsets from there on', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('replay-eos');
  const out = `${topic}-out`;
  await createTopic(brokers, topic, 2);
  await createTopic(brokers, out, 1);
  await produce(brokers, topic, views(0, 200));
  const group = `g-${topic}`;
  const yaml = pipeline(topic, group, `'${new Date(hourAgo + 150 * 1000).toISOString()}'`).replace(
    '    stop_at_end: true\n',
    '    stop_at_end: true\n    guarantee: exactly-once\n',
  ).replace('  - type: collect\n', `  - type: collect\n  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${out}, kinds: [event], guarantee: exactly-once }\n`);
  const { seqs } = await run(brokers, yaml);
  assert.deepEqual(seqs, range(150, 200));
  const committed = await groupCommitted(brokers, group, topic, 2);
  assert.equal(committed.reduce((a, b) => a + b, 0), 200, 'the group committed each partition to its end');
});

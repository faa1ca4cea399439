/**
 * The `kafka` sink's message keys against a real broker, on a topic of several partitions: a model's `drift`
 * records (no user) land in one partition in the order written, keyed by the model's name (without a key,
 * librdkafka's partitioner spread them over the partitions, and a consumer saw them out of order); a dead letter
 * carrying a user's event lands in that user's partition, beside the user's records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testContext } from 'tributary/testing';
import type { SinkPlugin, StreamRecord } from 'tributary';
import kafkaSink, { type KafkaSinkConfig } from '../plugins/kafka/sink.js';
import { kafkaBrokers, uniqueTopic } from './kafka/env.js';
import { createTopic, readTopic } from './kafka/client.js';

test("kafka sink: a model's drift records in one partition, in order, keyed by the model; a dead letter in its event's user's partition", async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('sink-keys');
  await createTopic(brokers, topic, 6);
  const config: KafkaSinkConfig = { brokers, topic, key_field: 'userId', guarantee: 'at-least-once', compression: 'none', linger: 0, batch_size: 100, max_in_flight: 1000 };
  const sink = await (kafkaSink as SinkPlugin<KafkaSinkConfig>).create(config, testContext({ label: 'keys' }));
  const drifts = 24;
  try {
    await sink.open!();
    const event = { kind: 'event', userId: 'u7', time: 1, type: 'view' };
    sink.write(event);
    for (let i = 0; i < drifts; i++) {
      for (const model of ['intent', 'churn']) sink.write({ kind: 'drift', model, task: model, detector: 'adwin', time: 1000 + i, labels: i, action: 'none' });
    }
    sink.write({ kind: 'dead_letter', reason: 'not wanted', pipeline: 'p', stage: 's', raw: event, at: '2026-01-01T00:00:00.000Z' } satisfies StreamRecord);
    await sink.flush!();
  } finally {
    await sink.close();
  }
  const messages = await readTopic(brokers, topic, { expect: 2 + 2 * drifts, toEnd: true });
  const read = messages.map((message) => ({ key: message.key?.toString() ?? null, partition: message.partition, record: JSON.parse(message.value!.toString()) as StreamRecord }));
  for (const model of ['intent', 'churn']) {
    const own = read.filter(({ record }) => record.kind === 'drift' && record['model'] === model);
    assert.equal(own.length, drifts, model);
    assert.deepEqual(new Set(own.map(({ key }) => key)), new Set([model]), `${model}: keyed by the model's name`);
    assert.equal(new Set(own.map(({ partition }) => partition)).size, 1, `${model}: one partition`);
    assert.deepEqual(own.map(({ record }) => record['labels']), Array.from({ length: drifts }, (_, i) => i), `${model}: in the order written`);
  }
  const userEvent = read.find(({ record }) => record.kind === 'event')!;
  const deadLetter = read.find(({ record }) => record.kind === 'dead_letter')!;
  assert.deepEqual([deadLetter.key, deadLetter.partition], ['u7', userEvent.partition], "the dead letter: its event's user's key and partition");
});

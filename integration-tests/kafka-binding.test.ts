/**
 * node-rdkafka's consumed messages, as patched in patches/ (property names internalized once, object
 * shapes from templates, the topic name reused): every field a consumer reads is there, with the
 * values and property order of the unpatched binding, with and without headers, across topics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kafkaBrokers, uniqueTopic } from './kafka/env.js';
import { createTopic, produce, readTopic } from './kafka/client.js';

test('consumed messages carry value, size, key, topic, offset, partition, timestamp and headers', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const first = uniqueTopic('binding-a');
  const second = uniqueTopic('binding-b');
  for (const topic of [first, second]) await createTopic(brokers, topic, 1);
  const at = Date.parse('2024-05-01T00:00:00Z');
  await produce(brokers, first, [
    { value: '{"n":1}', key: 'u1', timestamp: at },
    { value: 'second', key: null, timestamp: at + 1, headers: [{ trace: 'abc' }, { hop: Buffer.from([1, 2]) }] },
    { value: null, key: 'u3', timestamp: at + 2 },
  ]);
  await produce(brokers, second, [{ value: 'other topic', key: 'u4', timestamp: at + 3 }]);

  const a = await readTopic(brokers, first, { expect: 3 });
  assert.equal(a.length, 3);
  assert.deepEqual(Object.keys(a[0]!), ['value', 'size', 'key', 'topic', 'offset', 'partition', 'timestamp']);
  assert.deepEqual(a[0]!.value, Buffer.from('{"n":1}'));
  assert.ok(Buffer.isBuffer(a[0]!.value) && Buffer.isBuffer(a[0]!.key));
  assert.deepEqual(a[0]!.key, Buffer.from('u1'));
  assert.deepEqual([a[0]!.size, a[0]!.topic, a[0]!.offset, a[0]!.partition, a[0]!.timestamp], [7, first, 0, 0, at]);

  assert.deepEqual(Object.keys(a[1]!), ['value', 'headers', 'size', 'key', 'topic', 'offset', 'partition', 'timestamp']);
  assert.equal(a[1]!.key, null);
  assert.deepEqual(a[1]!.headers, [{ trace: Buffer.from('abc') }, { hop: Buffer.from([1, 2]) }]);
  assert.deepEqual([a[1]!.offset, a[1]!.timestamp], [1, at + 1]);

  assert.equal(a[2]!.value, null);
  assert.equal(a[2]!.size, 0);

  // The topic name of a message from another topic is that topic's, not the one converted before.
  const b = await readTopic(brokers, second, { expect: 1 });
  assert.equal(b[0]!.topic, second);
  assert.deepEqual(b[0]!.value, Buffer.from('other topic'));
});

/**
 * node-rdkafka as patched in patches/. Consumed messages (property names internalized once, object
 * shapes from templates, the topic name reused, a batch's payloads and keys in one buffer): every
 * field a consumer reads is there, with the values and property order of the unpatched binding, with
 * and without headers, across topics. Produced records (`produce()` straight to rd_kafka_producev,
 * headers made only when given): string and null keys, null values, timestamps and headers arrive as
 * sent. An error librdkafka reports behind records that one `consume(n)` call already took comes with
 * the next call, in librdkafka's words and naming its partition; so does a partition end (EOF) taken
 * before it, instead of being dropped with it. A fatal error says why
 * (`fatalError()`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Kafka from 'node-rdkafka';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { createTopic, groupCommitted, produce, readTopic } from './kafka/client.js';

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

test('a consumed batch\'s values and keys are separate Buffers with their own bytes, and outlive later batches', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('binding-batch');
  await createTopic(brokers, topic, 1);
  // Lengths vary so the payloads and keys lie at uneven offsets of their batch's buffer.
  const records = Array.from({ length: 2500 }, (_, i) => ({ value: `v${i}-${'x'.repeat(i % 13)}`, key: i % 5 === 0 ? null : `k${i}` }));
  await produce(brokers, topic, records);
  const messages = await readTopic(brokers, topic, { expect: records.length });
  assert.equal(messages.length, records.length);
  messages.forEach((message, i) => {
    assert.ok(Buffer.isBuffer(message.value), `value ${i} is a Buffer`);
    assert.equal(message.value!.toString(), records[i]!.value, `value ${i}`);
    assert.equal(message.size, Buffer.byteLength(records[i]!.value));
    if (records[i]!.key === null) assert.equal(message.key, null);
    else assert.equal(message.key!.toString(), records[i]!.key, `key ${i}`);
  });
  // Writing into one message's value changes no other message's bytes.
  messages[1]!.value!.fill(0x21);
  assert.equal(messages[2]!.value!.toString(), records[2]!.value);
  assert.equal(messages[1]!.key!.toString(), records[1]!.key);
  assert.equal(messages[0]!.value!.toString(), records[0]!.value);
});

test('an error librdkafka reports behind records that one consume(n) call took comes with the next call, not dropped', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  // librdkafka reports some errors once (a partition's fetch denied by an ACL, a partition whose
  // position is out of range with auto.offset.reset=error): dropped, nothing ever says why that
  // partition stopped. The out-of-range one stands in here (the test broker has no authorizer).
  const topic = uniqueTopic('binding-error');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, [...Array.from({ length: 50 }, (_, i) => ({ value: `p0-${i}`, partition: 0 })), ...Array.from({ length: 10 }, (_, i) => ({ value: `p1-${i}`, partition: 1 }))]);
  const consumer = new Kafka.KafkaConsumer(
    { 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': `g-${topic}`, 'enable.auto.commit': false },
    { 'auto.offset.reset': 'error' },
  );
  const consume = (count: number): Promise<Kafka.Message[]> => new Promise((resolve, reject) => consumer.consume(count, (error, messages) => (error ? reject(error) : resolve(messages))));
  await new Promise<void>((resolve, reject) => consumer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  try {
    consumer.assign([{ topic, partition: 0, offset: 0 }]);
    consumer.setDefaultConsumeTimeout(100);
    // One record read: partition 0's fetch is in, the other 49 records wait in the consumer's queue.
    await waitFor('a record of partition 0', async () => (await consume(1)).length === 1, 30_000, 0);
    // Past partition 1's end: its fetch fails, and with auto.offset.reset=error that is an error for
    // the application, queued behind the 49 records. The fetch's answer sets the partition's cached
    // end offset (-1 in an error answer), which is -1001 (none) before.
    consumer.incrementalAssign([{ topic, partition: 1, offset: 1_000 }]);
    await waitFor("partition 1's fetch answered", () => consumer.getWatermarkOffsets(topic, 1).highOffset !== -1001, 30_000);
    consumer.setDefaultConsumeTimeout(0);
    const { calls, error } = await callsUntilError(consume, (messages) => (messages.length > 0 ? `${messages.length} records` : undefined));
    assert.equal(error.code, Kafka.CODES.ERRORS.ERR__AUTO_OFFSET_RESET);
    assert.deepEqual(calls, ['49 records'], 'the records queued before the error came first, in one call');
    // The partition it is about, and librdkafka's words (not only the code's text, "Local: No offset to automatically reset to").
    const about = error as unknown as { topic?: string; partition?: number; offset?: number };
    assert.deepEqual([about.topic, about.partition, about.offset], [topic, 1, 1_000]);
    assert.match(error.message, /requested offset not available on the broker: Broker: Offset out of range/);
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
});

// A source with stop_at_end waits for every partition's end (its EOF): an EOF lost this way left a run
// reading a topic to its end waiting for ever (the unreadable-batch test's stop, 1 run in 8 or so).
test('a partition end (EOF) that one consume(n) call took before an error comes with that call, not dropped with the error', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('binding-eof');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, Array.from({ length: 5 }, (_, i) => ({ value: `p0-${i}`, partition: 0 })));
  const consumer = new Kafka.KafkaConsumer(
    { 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': `g-${topic}`, 'enable.auto.commit': false, 'enable.partition.eof': true },
    { 'auto.offset.reset': 'error' },
  );
  const ends: number[] = [];
  consumer.on('partition.eof', (eof) => void ends.push(eof.partition));
  const consume = (count: number): Promise<Kafka.Message[]> => new Promise((resolve, reject) => consumer.consume(count, (error, messages) => (error ? reject(error) : resolve(messages))));
  await new Promise<void>((resolve, reject) => consumer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  try {
    // At partition 0's end: its fetch's answer sets the cached end offset, and queues the EOF in the same step.
    consumer.assign([{ topic, partition: 0, offset: 5 }]);
    await waitFor("partition 0's fetch answered", () => consumer.getWatermarkOffsets(topic, 0).highOffset !== -1001, 30_000);
    // Then an error behind it (partition 1 out of range, auto.offset.reset=error).
    consumer.incrementalAssign([{ topic, partition: 1, offset: 1_000 }]);
    await waitFor("partition 1's fetch answered", () => consumer.getWatermarkOffsets(topic, 1).highOffset !== -1001, 30_000);
    consumer.setDefaultConsumeTimeout(0);
    const { calls, error } = await callsUntilError(consume, (messages) => `${messages.length} records, ends of [${ends.join(', ')}]`);
    assert.equal(error.code, Kafka.CODES.ERRORS.ERR__AUTO_OFFSET_RESET);
    assert.deepEqual(ends, [0], "partition 0's end, before the error");
    assert.deepEqual(calls, ['0 records, ends of [0]'], 'the call that took the end returned it; the error came with the next');
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
});

test('a fatal consumer error says why: the consume() error in librdkafka\'s words, and fatalError() with the cause', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  // Two consumers with one group.instance.id: the second to join fences the first (static membership).
  const topic = uniqueTopic('binding-fatal');
  await createTopic(brokers, topic, 1);
  const member = (): Kafka.KafkaConsumer =>
    new Kafka.KafkaConsumer(
      { 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': `g-${topic}`, 'group.instance.id': 'one-instance', 'enable.auto.commit': false },
      { 'auto.offset.reset': 'earliest' },
    );
  const [first, second] = [member(), member()];
  const consume = (consumer: Kafka.KafkaConsumer): Promise<Kafka.LibrdKafkaError | undefined> =>
    new Promise((resolve) => consumer.consume(10, (error) => resolve(error ?? undefined)));
  for (const consumer of [first, second]) {
    await new Promise<void>((resolve, reject) => consumer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
    consumer.setDefaultConsumeTimeout(100);
  }
  try {
    assert.equal(first.fatalError(), null, 'no fatal error yet');
    first.subscribe([topic]);
    await waitFor('the first member assigned', async () => (await consume(first), first.assignments().length > 0), 30_000, 0);
    second.subscribe([topic]);
    let error: Kafka.LibrdKafkaError | undefined;
    await waitFor('the first member fenced', async () => {
      void consume(second);
      error = await consume(first);
      return error !== undefined && error.code !== Kafka.CODES.ERRORS.ERR__TIMED_OUT;
    }, 60_000, 0);
    assert.equal(error!.code, Kafka.CODES.ERRORS.ERR__FATAL);
    assert.match(error!.message, /Fatal error: .*Static consumer fenced by other consumer with same group.instance.id/);
    const fatal = first.fatalError();
    assert.equal(fatal?.code, 82, 'FENCED_INSTANCE_ID');
    assert.match(fatal?.message ?? '', /Static consumer fenced by other consumer with same group.instance.id/);
    assert.equal(second.fatalError(), null);
  } finally {
    await Promise.all([first, second].map((consumer) => new Promise<void>((resolve) => consumer.disconnect(() => resolve()))));
  }
});

/**
 * Calls `consume(1000)` until one fails (up to 5 s): that error, and what each call before it returned,
 * as `describe` words it (a call it gives undefined for is left out).
 */
async function callsUntilError(consume: (count: number) => Promise<Kafka.Message[]>, describe: (messages: Kafka.Message[]) => string | undefined): Promise<{ calls: string[]; error: Kafka.LibrdKafkaError }> {
  const calls: string[] = [];
  let error: Kafka.LibrdKafkaError | undefined;
  await waitFor('the error', async () => {
    try {
      const said = describe(await consume(1_000));
      if (said !== undefined) calls.push(said);
      return false;
    } catch (caught) {
      error = caught as Kafka.LibrdKafkaError;
      return true;
    }
  }, 5_000).catch((timedOut: Error) => assert.fail(`${timedOut.message}; the calls returned: ${calls.join('; ') || 'nothing'}`));
  return { calls, error: error! };
}

test('an offset commit\'s metadata goes to the group with commit() and sendOffsetsToTransaction(), and committed() returns it', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('binding-metadata');
  await createTopic(brokers, topic, 3);
  const group = `${topic}-group`;
  const promised = <T>(call: (cb: (error: Kafka.LibrdKafkaError | null | undefined, value?: T) => void) => void): Promise<T> =>
    new Promise<T>((resolve, reject) => call((error, value) => (error ? reject(new Error(error.message)) : resolve(value as T))));
  // Assigned by hand (the group has no members), so the commits need no generation.
  const consumer = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'enable.auto.commit': false, 'isolation.level': 'read_committed' }, {});
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'transactional.id': `${topic}-txn`, dr_cb: true });
  await promised((cb) => consumer.connect({}, (error) => cb(error)));
  await promised((cb) => producer.connect({}, (error) => cb(error)));
  producer.setPollInterval(10);
  try {
    const committed = (): Promise<Kafka.TopicPartitionOffset[]> =>
      promised<Kafka.TopicPartitionOffset[]>((cb) => consumer.committed([0, 1, 2].map((partition) => ({ topic, partition })), 10_000, cb)).then((list) => [...list].sort((a, b) => a.partition - b.partition));
    consumer.assign([0, 1, 2].map((partition) => ({ topic, partition })));
    // UTF-8 beyond ASCII goes through as it is; a commit without metadata leaves none.
    consumer.commitSync([
      { topic, partition: 0, offset: 5, metadata: 'tributary-checkpoint:12:0123456789abcdef' },
      { topic, partition: 1, offset: 7, metadata: 'état ✓' },
      { topic, partition: 2, offset: 9 },
    ]);
    const afterCommit = await committed();
    assert.deepEqual(afterCommit.map((tp) => [tp.partition, tp.offset, tp.metadata]), [
      [0, 5, 'tributary-checkpoint:12:0123456789abcdef'],
      [1, 7, 'état ✓'],
      [2, 9, undefined],
    ]);
    assert.ok(!('metadata' in afterCommit[2]!), 'no metadata property where the commit had none');

    // In a transaction: the offsets (and their metadata) are the group's once it commits.
    await promised((cb) => producer.initTransactions(15_000, cb));
    await promised((cb) => producer.beginTransaction(cb));
    producer.produce(topic, 0, Buffer.from('in the transaction'), null);
    await promised((cb) => producer.sendOffsetsToTransaction(
      [
        { topic, partition: 0, offset: 5, metadata: 'tributary-checkpoint:13:fedcba9876543210' },
        { topic, partition: 2, offset: 10, metadata: 'second' },
      ],
      consumer,
      15_000,
      cb,
    ));
    await promised((cb) => producer.commitTransaction(15_000, cb));
    assert.deepEqual((await committed()).map((tp) => [tp.partition, tp.offset, tp.metadata]), [
      [0, 5, 'tributary-checkpoint:13:fedcba9876543210'],
      [1, 7, 'état ✓'],
      [2, 10, 'second'],
    ]);

    // An aborted transaction's offsets and metadata never reach the group.
    await promised((cb) => producer.beginTransaction(cb));
    await promised((cb) => producer.sendOffsetsToTransaction([{ topic, partition: 0, offset: 5, metadata: 'aborted' }], consumer, 15_000, cb));
    await promised((cb) => producer.abortTransaction(15_000, cb));
    assert.equal((await committed())[0]!.metadata, 'tributary-checkpoint:13:fedcba9876543210');
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
});

test('groupCommitted (the tests\' helper) reads the offsets last committed at once while a transaction that commits others is open', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('binding-open-txn');
  await createTopic(brokers, topic, 2);
  const group = `${topic}-group`;
  const promised = <T>(call: (cb: (error: Kafka.LibrdKafkaError | null | undefined, value?: T) => void) => void): Promise<T> =>
    new Promise<T>((resolve, reject) => call((error, value) => (error ? reject(new Error(error.message)) : resolve(value as T))));
  const consumer = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'enable.auto.commit': false }, {});
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'transactional.id': `${topic}-txn`, dr_cb: true });
  await promised((cb) => consumer.connect({}, (error) => cb(error)));
  await promised((cb) => producer.connect({}, (error) => cb(error)));
  producer.setPollInterval(10);
  try {
    consumer.assign([0, 1].map((partition) => ({ topic, partition })));
    consumer.commitSync([{ topic, partition: 0, offset: 3 }]);
    await promised((cb) => producer.initTransactions(15_000, cb));
    await promised((cb) => producer.beginTransaction(cb));
    await promised((cb) => producer.sendOffsetsToTransaction([{ topic, partition: 0, offset: 8 }, { topic, partition: 1, offset: 4 }], consumer, 15_000, cb));
    // Open: the committed offsets are those before it. Before, the read waited 10 s and failed ("Unstable offset commit").
    const began = Date.now();
    assert.deepEqual(await groupCommitted(brokers, group, topic, 2), [3, -1]);
    assert.ok(Date.now() - began < 5_000, `read in ${Date.now() - began} ms`);
    await promised((cb) => producer.commitTransaction(15_000, cb));
    assert.deepEqual(await groupCommitted(brokers, group, topic, 2), [8, 4]);
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
});

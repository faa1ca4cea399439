/**
 * The `kafka` source and sink against a broker that authenticates its clients and authorises what they
 * do (SASL PLAIN users, ACLs), as a production cluster does: a partition whose fetch the brokers deny
 * makes the source not ready, naming it, until it is read again; a sink whose producer the brokers
 * refuse for good (librdkafka's fatal error) fails the pipeline with that cause, not ready meanwhile.
 * Each test starts a broker of its own (the run's broker has no authorizer). Exactly-once and hand-overs
 * under denied rights: kafka-acl-handover.test.ts (apart, so that each file ends well within the runner's cap).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runYaml, testContext } from 'tributary/testing';
import { TributaryError, type SinkPlugin } from 'tributary';
import kafkaSink, { type KafkaSinkConfig } from '../plugins/kafka/sink.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { collectSink, createTopic, produce, produceEvery, startSource } from './kafka/client.js';
import { aclCommand, startNativeBroker } from './kafka/broker.js';
import { alice, base, brokerWithReader, views } from './kafka/acl.js';

test('a partition whose fetch the brokers deny: the source is not ready, naming it, and reads on elsewhere; allowed again, it is ready, whether a record of it comes or not', async (t) => {
  // Only where the Kafka tests run at all (a broker of the run's kind is there or startable).
  if (!kafkaBrokers(t)) return;
  const { broker, admin, topics: [allowed, denied] } = await brokerWithReader(t, 'acl-allowed', 'acl-denied');
  await produce(admin, denied, views(0, 20));
  const feed = produceEvery(admin, allowed, 100, (seq) => views(1_000 + seq, 1)[0]!);
  const got = new Set<number>();
  const instance = await startSource(broker.brokers, allowed, `g-${allowed}`, got, undefined, { topics: [allowed, denied], security: alice });
  try {
    await waitFor('both topics read', () => got.has(19) && [...got].some((seq) => seq >= 1_000), 60_000);
    assert.equal(instance.health!().ready, true, instance.health!().detail);
    // Read on the topic withdrawn (a DENY beats the ALLOW on every topic).
    aclCommand(broker, ['--add', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
    await produce(admin, denied, views(20, 10));
    await waitFor('not ready, naming the denied topic', () => /cannot read topic '.*'/.test(instance.health!().detail ?? ''), 30_000);
    assert.match(instance.health!().detail!, new RegExp(`^cannot read topic '${denied}' \\(partition 0: .*Topic authorization failed\\); ready again once a record of it is read`));
    const before = [...got].filter((seq) => seq >= 1_000).length;
    await waitFor('the other topic still read', () => [...got].filter((seq) => seq >= 1_000).length >= before + 10, 30_000);
    assert.equal(instance.health!().ready, false, 'still not ready while the denied records wait');
    assert.ok(!got.has(20), 'nothing read from the denied topic');
    // Read allowed again: its records come, and the source is ready.
    aclCommand(broker, ['--remove', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
    await waitFor('the denied records read', () => got.has(29), 60_000);
    await waitFor('ready', () => instance.health!().ready, 10_000);
    // Denied and allowed again with no record produced meanwhile: no record will say it is read again,
    // but its next fetch that the brokers answer does (before: not ready until a record came).
    aclCommand(broker, ['--add', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
    await waitFor('not ready again', () => /cannot read topic '.*'/.test(instance.health!().detail ?? ''), 30_000);
    aclCommand(broker, ['--remove', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
    await waitFor('ready, with no new record of the topic', () => instance.health!().ready, 10_000);
    assert.ok(!got.has(30), 'no record of it was produced');
  } finally {
    await feed.stop();
    await instance.close?.();
  }
});

test('a group the brokers refuse to the source (no Read on it): not ready at once, naming the group and the refusal, not after assignment_timeout; allowed, it is assigned, reads and is ready', async (t) => {
  if (!kafkaBrokers(t)) return;
  const broker = await startNativeBroker({ partitions: 1, users: { alice: 'alice-secret' } });
  t.after(() => broker.stop());
  // Read on every topic, none on any group: a common ACL mistake.
  aclCommand(broker, ['--add', '--allow-principal', 'User:alice', '--operation', 'Read', '--operation', 'Describe', '--topic', '*']);
  const topic = uniqueTopic('acl-group');
  const group = `g-${topic}`;
  await createTopic(broker.plaintext!, topic, 1);
  await produce(broker.plaintext!, topic, views(0, 20));
  const got = new Set<number>();
  // A long assignment_timeout: the source must not wait for it to say why no assignment comes.
  const instance = await startSource(broker.brokers, topic, group, got, undefined, { security: alice, assignment_timeout: '5m' });
  try {
    // Before: ready until assignment_timeout, then "no partitions assigned by group ... (a rebalance that does not end, or a group it cannot join)".
    await waitFor('not ready, naming the group', () => /^group '/.test(instance.health!().detail ?? ''), 30_000);
    assert.match(instance.health!().detail!, new RegExp(`^group '${group}' refuses this client \(.*Group authorization failed.*\): it needs Read on the group`));
    assert.equal(got.size, 0);
    aclCommand(broker, ['--add', '--allow-principal', 'User:alice', '--operation', 'Read', '--group', group]);
    await waitFor('the records read', () => got.has(19), 60_000);
    await waitFor('ready', () => instance.health!().ready, 10_000);
  } finally {
    await instance.close?.();
  }
});

test('a partition whose fetch the brokers deny from the start does not hold the watermark of the others for longer than idle_timeout', async (t) => {
  if (!kafkaBrokers(t)) return;
  const { broker, admin, topics: [allowed, denied] } = await brokerWithReader(t, 'acl-allowed', 'acl-denied');
  await produce(admin, allowed, views(1_000, 20));
  await produce(admin, denied, views(0, 20));
  aclCommand(broker, ['--add', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
  const skew = { ms: 0 };
  const got = new Set<number>();
  const idleTimeout = 5_000;
  const instance = await startSource(broker.brokers, allowed, `g-${allowed}`, got, { now: () => Date.now() + skew.ms }, { topics: [allowed, denied], security: alice }, { watermark: { maxOutOfOrderness: 0, idleTimeout } });
  try {
    await waitFor('the allowed topic read and the denied one named', () => got.has(1_019) && /cannot read topic '.*'/.test(instance.health!().detail ?? ''), 60_000);
    // The denied partition was never fetched: its idle clock starts when it is found unreadable, or it
    // would hold the watermark for as long as it stays denied.
    skew.ms += idleTimeout;
    assert.equal(instance.watermark!(), base + 1_019);
  } finally {
    await instance.close?.();
  }
});

test('a sink whose producer the brokers refuse for good (no right to write anywhere): not ready, and the pipeline fails with librdkafka\'s fatal error', async (t) => {
  if (!kafkaBrokers(t)) return;
  const { broker, admin, topics: [input, output] } = await brokerWithReader(t, 'acl-in', 'acl-out');
  await produce(admin, input, views(0, 50));
  // An idempotent producer asks the brokers for a producer id first; a principal with no Write on
  // any topic is refused it (CLUSTER_AUTHORIZATION_FAILED), which librdkafka makes a fatal error.
  const config = { brokers: broker.brokers, topic: output, security: alice, key_field: 'userId', guarantee: 'at-least-once', transaction_timeout: '10s', compression: 'lz4', linger: '5ms', batch_size: 10_000, max_in_flight: 100_000 } as const;
  const context = testContext();
  const sink = await (kafkaSink as SinkPlugin<KafkaSinkConfig>).create({ ...config }, context);
  try {
    await sink.open!();
    await waitFor('the sink not ready', () => sink.health!().ready === false, 30_000);
    assert.match(sink.health!().detail!, /^the producer hit a fatal error and cannot go on: .*Cluster authorization failed/);
    // Reported by itself, with nothing written: the runtime needs no record to learn it.
    assert.deepEqual(context.failures.map((failure) => failure.message), [sink.health!().detail]);
    assert.throws(() => sink.write({ kind: 'prediction', userId: 'u1' }), /fatal error and cannot go on/);
  } finally {
    await sink.close().catch(() => undefined);
  }
  const pipelineOf = (topic: string, end: string) => `
name: kafka-acl-sink-test
sources:
  - { type: kafka, brokers: "${broker.brokers}", topics: [${topic}], group: g-${topic}, ${end}security: { protocol: sasl_plaintext, sasl: { mechanism: PLAIN, username: alice, password: alice-secret } } }
sinks:
  - { type: kafka, brokers: "${broker.brokers}", topic: ${output}, security: { protocol: sasl_plaintext, sasl: { mechanism: PLAIN, username: alice, password: alice-secret } } }
dead_letter: { type: collect }
`;
  const refused = (error: unknown): true => {
    assert.ok(error instanceof TributaryError, String(error));
    assert.equal(error.code, 'TRIB_ERR_SINK');
    assert.match(error.message, /^sink-kafka-0 failed.*: the producer hit a fatal error and cannot go on: .*Cluster authorization failed/);
    return true;
  };
  await assert.rejects(runYaml(pipelineOf(input, 'stop_at_end: true, '), { plugins: [collectSink([[]])] }), refused);
  // Its input quiet (an empty topic, read on until stopped): the sink writes nothing, and the pipeline
  // stops all the same. Before, it ran on with a dead producer until a record came, for good here.
  const quiet = uniqueTopic('acl-quiet');
  await createTopic(admin, quiet, 1);
  const controller = new AbortController();
  const idle = runYaml(pipelineOf(quiet, ''), { plugins: [collectSink([[]])], signal: controller.signal });
  let failure: unknown;
  idle.catch((error: unknown) => (failure = error));
  try {
    await waitFor('the quiet pipeline failed by itself', () => failure !== undefined, 30_000);
    await assert.rejects(idle, refused);
  } finally {
    controller.abort();
    await idle.catch(() => undefined);
  }
});

test('a sink whose topic the brokers deny it (Write allowed on the dead-letter topic only): the pipeline fails naming the topic and the Write it needs', async (t) => {
  if (!kafkaBrokers(t)) return;
  const { broker, admin, topics: [input, output, deadLetters] } = await brokerWithReader(t, 'acl-in', 'acl-out', 'acl-dlq');
  // Write on one topic is enough for an idempotent producer's id: the output's refusal is the topic's own.
  aclCommand(broker, ['--add', '--allow-principal', 'User:alice', '--operation', 'Write', '--topic', deadLetters!]);
  await produce(admin, input!, views(0, 20));
  const security = '{ protocol: sasl_plaintext, sasl: { mechanism: PLAIN, username: alice, password: alice-secret } }';
  const yaml = `
name: kafka-acl-write-test
sources:
  - { type: kafka, brokers: "${broker.brokers}", topics: [${input}], group: g-${input}, stop_at_end: true, security: ${security} }
sinks:
  - { type: kafka, brokers: "${broker.brokers}", topic: ${output}, kinds: [event], security: ${security} }
dead_letter: { type: kafka, brokers: "${broker.brokers}", topic: ${deadLetters}, security: ${security} }
`;
  await assert.rejects(runYaml(yaml), (error: unknown) => {
    assert.ok(error instanceof TributaryError, String(error));
    assert.equal(error.code, 'TRIB_ERR_SINK');
    // Before: `sink-kafka-0 failed to write a record (kind 'event'): Broker: Topic authorization failed`, no topic, no remedy.
    assert.match(error.message, new RegExp(`^sink-kafka-0 failed.*delivery to topic '${output}' failed: .*[Tt]opic authorization failed \\(the brokers deny this client Write on the topic: an ACL must allow its principal, .*Write on topic '${output}'\\)$`));
    return true;
  });
});

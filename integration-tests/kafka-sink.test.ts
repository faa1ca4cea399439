/**
 * The `kafka` sink against a real broker: with a small max_in_flight (records wait for room) every
 * record arrives; a delivery that fails stops the pipeline before it commits the offsets of the
 * records whose outputs were lost; while its brokers are down it reports not ready, whatever its
 * guarantee.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runYaml, testContext } from 'tributary/testing';
import { defineSink, isClickEvent, type Sink, type SinkPlugin, type SourcePlugin, type StreamRecord } from 'tributary';
import kafkaSink, { type KafkaSinkConfig } from '../plugins/kafka/sink.js';
import kafkaSource, { type KafkaSourceConfig } from '../plugins/kafka/source.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, collectSink, createTopic, produce, readTopic } from './kafka/client.js';
import { startNativeBroker } from './kafka/broker.js';

const base = Date.parse('2024-05-01T00:00:00Z');

/** A one-partition input topic of `count` records keyed by user (u0-u6), `seq` 0 to count - 1. */
async function inputTopic(brokers: string, prefix: string, count: number): Promise<string> {
  const input = uniqueTopic(prefix);
  await createTopic(brokers, input, 1);
  await produce(brokers, input, Array.from({ length: count }, (_, i) => ({ key: `u${i % 7}`, value: clickJson(i % 7, base + i, 'view', { seq: i }) })));
  return input;
}

/** A topic that takes no record batch over 100 bytes: every delivery to it fails ('Message size too large'). */
async function refusingTopic(brokers: string, prefix: string): Promise<string> {
  const topic = uniqueTopic(prefix);
  await createTopic(brokers, topic, 1, { 'max.message.bytes': '100' });
  return topic;
}

function pipeline(input: string, group: string, sink: string): string {
  return `
name: kafka-sink-test
sources:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${input}], group: ${group}, stop_at_end: true, mapping: { attributes: [seq] } }
sinks:
  - ${sink}
dead_letter: { type: collect, id: 2 }
settings:
  max_in_flight: 64
  commit_interval: 100ms
`;
}

/** The group's input read again into a collecting sink (what it had not committed): the run's stats and the records. */
async function readAgain(brokers: string, input: string, group: string): Promise<{ eventsIn: number; outputs: StreamRecord[] }> {
  const outputs: StreamRecord[][] = [[], [], []];
  const { stats } = await runYaml(pipeline(input, group, '{ type: collect }'), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(outputs)] });
  return { eventsIn: stats.eventsIn, outputs: outputs[0]! };
}

test('kafka sink: with 64 records in flight at most, every record reaches the topic', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const [input, output] = [uniqueTopic('sink-in'), uniqueTopic('sink-out')];
  await createTopic(brokers, input, 2);
  await createTopic(brokers, output, 2);
  await produce(brokers, input, Array.from({ length: 3000 }, (_, i) => ({ key: `u${i % 17}`, value: clickJson(i % 17, base + i, 'view', { seq: i }) })));
  const sink = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, max_in_flight: 64 }`;
  const dead: StreamRecord[][] = [[], [], []];
  const { stats } = await runYaml(pipeline(input, `g-${input}`, sink), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(dead)] });
  assert.equal(stats.eventsIn, 3000);
  const written = await readTopic(brokers, output, { expect: 3000, timeoutMs: 30_000 });
  const seqs = written.map((m) => Number((JSON.parse(m.value!.toString()) as { attrs: { seq: number } }).attrs.seq)).sort((a, b) => a - b);
  assert.deepEqual(seqs, Array.from({ length: 3000 }, (_, i) => i));
});

test('kafka sink: a delivery that fails stops the pipeline, and the offsets of its input stay uncommitted', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = await inputTopic(brokers, 'sink-fail-in', 500);
  const group = `g-${input}`;
  // The topic takes no record batch over 100 bytes: every delivery fails (before, a topic that did not
  // exist; a sink now refuses one at its start, before any record is read).
  const tiny = await refusingTopic(brokers, 'sink-tiny');
  const refusing = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${tiny} }`;
  const dead: StreamRecord[][] = [[], [], []];
  await assert.rejects(runYaml(pipeline(input, group, refusing), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(dead)] }), new RegExp(`delivery to topic '${tiny}' failed: .*too large \\(the brokers refused a batch of records larger than the topic's max\\.message\\.bytes, which bounds a whole batch: set the sink's options 'batch\\.size' and 'message\\.max\\.bytes' below`, 'i'));
  // Nothing was committed: the group reads every record again.
  const again = await readAgain(brokers, input, group);
  assert.equal(again.eventsIn, 500);
  assert.equal(again.outputs.length, 500);
});

for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
  test(`kafka sink (${guarantee}): a delivery that fails after the input went quiet fails the run, without waiting for a next record`, { timeout: 120_000 }, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const input = await inputTopic(brokers, 'sink-quiet-fail-in', 20);
    const group = `g-${input}`;
    const tiny = await refusingTopic(brokers, 'sink-quiet-tiny');
    const sink = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${tiny}, guarantee: ${guarantee} }`;
    // No stop at the end: after its 20 records the input is quiet, as a daemon's often is.
    const yaml = pipeline(input, group, sink).replace('stop_at_end: true,', `guarantee: ${guarantee},`);
    const dead: StreamRecord[][] = [[], [], []];
    // Before: each checkpoint's flush failed on the delivery ("checkpoint failed", logged), the run went on
    // ready, and (exactly-once) the transaction was never aborted: only a next record would have failed it.
    await assert.rejects(runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(dead)] }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_SINK');
      assert.match(error.message, new RegExp(`delivery to topic '${tiny}' failed: .*too large`, 'i'));
      return true;
    });
    assert.equal((await readAgain(brokers, input, group)).eventsIn, 20, 'its input stays uncommitted');
  });
}

test('kafka sink (exactly-once): a transaction that fails in the last commit, after the last flush, fails the run, and its input stays uncommitted', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = await inputTopic(brokers, 'sink-eos-last-in', 20);
  const group = `g-${input}`;
  // Every batch is refused ('Message size too large'); with linger 1 s and no commit before the end (5 min
  // apart: an hour is more than a transaction may stay open, 15 min on default brokers), the
  // refusal comes while the last commit flushes, after the runtime's flush barrier. Before, that failure
  // only reached the source's next read, which never came: the run ended drained (exit 0).
  const tiny = await refusingTopic(brokers, 'sink-eos-last-tiny');
  const sink = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${tiny}, guarantee: exactly-once, linger: 1000 }`;
  const yaml = pipeline(input, group, sink).replace('stop_at_end: true,', 'stop_at_end: true, guarantee: exactly-once,').replace('commit_interval: 100ms', 'commit_interval: 5m');
  const dead: StreamRecord[][] = [[], [], []];
  await assert.rejects(runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(dead)] }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_SINK');
    // The sink whose topic refused the batch, and the producer that aborted its transaction for it.
    assert.match(error.message, /^sink-kafka-0 failed: delivery to topic '[^']+' failed: .*too large.*; so the exactly-once producer of sink sink-kafka-0 \(transactional_id '[^']+'\) aborted its transaction: the input it covered stays uncommitted, and a restart reads it again$/i);
    return true;
  });
  assert.equal((await readAgain(brokers, input, group)).eventsIn, 20);
});

for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
  test(`kafka sink (${guarantee}): a topic that does not exist fails the start saying to create it, before any input is read`, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const input = await inputTopic(brokers, 'sink-no-topic-in', 20);
    const output = uniqueTopic('sink-no-topic');
    const missing = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, guarantee: ${guarantee} }`;
    // Exactly-once: the source commits the sink's transactions, so it says so too.
    const yaml = pipeline(input, `g-${input}`, missing).replace('stop_at_end: true,', `stop_at_end: true, guarantee: ${guarantee},`);
    const dead: StreamRecord[][] = [[], [], []];
    // Before, the whole input was read and the run failed at its first flush ('delivery to topic ... failed: unknown topic or
    // partition'), or (exactly-once) at its first transaction's commit.
    await assert.rejects(runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(dead)] }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_SINK');
      assert.match(error.message, new RegExp(`kafka sink: topic '${output}' is not there: it does not exist \\(the brokers do not create topics on first use: create it, or enable auto\\.create\\.topics\\.enable on them\\), or this client may not describe it$`));
      return true;
    });
    assert.deepEqual(dead.map((records) => records.length), [0, 0, 0], 'nothing was read');
    // Nothing was committed either: the group reads every record.
    assert.equal((await readAgain(brokers, input, `g-${input}`)).eventsIn, 20);
  });
}

test('kafka sink: not ready while its brokers are down, ready again once they answer (at-least-once and exactly-once)', async (t) => {
  if (!kafkaBrokers(t)) return;
  // Stopping a broker needs one this test owns.
  const broker = await startNativeBroker({ partitions: 1 });
  const topic = uniqueTopic('sink-outage');
  const sinks: { guarantee: string; sink: Sink }[] = [];
  const shared = new Map<string, unknown>();
  let source: { close?: () => Promise<void> } | undefined;
  try {
    await createTopic(broker.brokers, topic, 1);
    const config = (guarantee: KafkaSinkConfig['guarantee']): KafkaSinkConfig => ({
      brokers: broker.brokers,
      topic,
      key_field: 'userId',
      guarantee,
      transactional_id: uniqueTopic('sink-outage-tx'),
      // Longer than the outage: the open transaction outlives it.
      transaction_timeout: '60s',
      compression: 'none',
      linger: 5,
      batch_size: 100,
      max_in_flight: 100,
    });
    const plugin = kafkaSink as SinkPlugin<KafkaSinkConfig>;
    for (const guarantee of ['at-least-once', 'exactly-once'] as const) sinks.push({ guarantee, sink: await plugin.create(config(guarantee), testContext({ shared, label: `sink-${guarantee}` })) });
    // The exactly-once sink's transactions are committed by an exactly-once kafka source of the same pipeline.
    source = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(
      { brokers: broker.brokers, topics: [topic], group: `g-${topic}`, start_from: 'earliest', event_time: 'field', guarantee: 'exactly-once', poll_timeout: 100, stop_at_end: false },
      testContext({ shared }),
    );
    for (const { sink } of sinks) {
      await sink.open!();
      sink.write({ kind: 'event', userId: 'u1', time: Date.now(), type: 'view' } as unknown as StreamRecord);
      // As the runtime after each batch (the exactly-once sink's transactions start at this first wait).
      await sink.ready?.();
    }
    await sinks[0]!.sink.flush!();
    for (const { guarantee, sink } of sinks) assert.equal(sink.health?.().ready, true, `${guarantee}: ready while the broker is up`);
    await broker.kill();
    for (const { guarantee, sink } of sinks) await waitFor(`${guarantee}: not ready while the broker is down`, () => sink.health?.().ready === false, 60_000);
    await broker.restart();
    // Nothing is written or committed meanwhile: the sinks' own metadata probes see the broker back.
    for (const { guarantee, sink } of sinks) await waitFor(`${guarantee}: ready again`, () => sink.health?.().ready === true, 30_000);
  } finally {
    for (const { sink } of sinks) await sink.close().catch(() => undefined);
    await source?.close?.();
    await broker.stop();
  }
});

for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
  test(`kafka sink (${guarantee}): a record larger than message.max.bytes goes to the dead-letter sink, not the run's end; a dead letter that large is written with its raw input cut to fit`, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const input = uniqueTopic(`sink-big-in-${guarantee}`);
    const [output, dlq] = [uniqueTopic(`sink-big-out-${guarantee}`), uniqueTopic(`sink-big-dlq-${guarantee}`)];
    for (const topic of [input, output, dlq]) await createTopic(brokers, topic, 1);
    // Record 7 carries 20,000 characters in an attribute the mapping keeps: its event is far past the sinks' 8,000 bytes.
    await produce(brokers, input, Array.from({ length: 40 }, (_, i) => ({ key: `u${i % 7}`, value: clickJson(i % 7, base + i, 'view', { seq: i, blob: i === 7 ? 'x'.repeat(20_000) : '' }) })));
    const kafka = (topic: string) =>
      `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${topic}, guarantee: ${guarantee}, transactional_id: tx-${output}, options: { message.max.bytes: 8000 } }`;
    const yaml = `
name: kafka-sink-big
sources:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${input}], group: g-${input}, guarantee: ${guarantee}, stop_at_end: true, mapping: { attributes: [seq, blob] } }
sinks:
  - ${kafka(output)}
dead_letter: ${kafka(dlq)}
settings: { commit_interval: 100ms }
`;
    // Before: the run failed on record 7 (librdkafka's produce refused it: "Broker: Message size too large"),
    // and a daemon restarting it met it again after every restart.
    const { stats } = await runYaml(yaml, { env: { KAFKA_BROKERS: brokers } });
    assert.equal(stats.eventsIn, 40);
    assert.equal(stats.deadLettered, 1);
    const written = await readTopic(brokers, output, { expect: 39, committed: guarantee === 'exactly-once', timeoutMs: 30_000 });
    assert.deepEqual(written.map((m) => (JSON.parse(m.value!.toString()) as { attrs: { seq: number } }).attrs.seq).sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i).filter((i) => i !== 7));
    const [dead] = await readTopic(brokers, dlq, { expect: 1, committed: guarantee === 'exactly-once', timeoutMs: 30_000 });
    const letter = JSON.parse(dead!.value!.toString()) as { reason: string; raw: string; rawBytes: number; offset: number };
    assert.match(letter.reason, /^kafka sink: the event record is \d+ bytes with its key, more than message\.max\.bytes \(8000\) lets topic/);
    assert.equal(letter.offset, 7, 'it names the input');
    assert.ok(letter.rawBytes > 20_000, `rawBytes ${letter.rawBytes}: the whole record's length`);
    assert.ok(dead!.value!.length <= 8000 && letter.raw.startsWith('{"kind":"event"'), 'the raw record cut to fit');
  });
}

test('kafka sink (exactly-once): a run that fails on a record (another sink throws) commits nothing of its open transaction as it closes: a restart reads every record again', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = await inputTopic(brokers, 'sink-eos-fail-in', 20);
  const output = uniqueTopic('sink-eos-fail-out');
  await createTopic(brokers, output, 1);
  const group = `g-${input}`;
  // A sink of the user's that cannot take one record: the run fails there, with the outputs of the records before it
  // in the open transaction, and none of the records after it written anywhere.
  const exploding = defineSink<Record<string, never>>({
    name: 'exploding',
    summary: 'Throws at the record with seq 10 (tests only).',
    config: { type: 'object' },
    create: () => ({
      write: (record) => {
        if (isClickEvent(record) && record.attrs?.seq === 10) throw new Error('cannot write seq 10');
      },
      close: async () => undefined,
    }),
  });
  const sinks = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, guarantee: exactly-once, kinds: [event] }\n  - { type: exploding }`;
  const yaml = pipeline(input, group, sinks).replace('stop_at_end: true,', 'stop_at_end: true, guarantee: exactly-once,').replace('commit_interval: 100ms', 'commit_interval: 5m');
  const dead: StreamRecord[][] = [[], [], []];
  await assert.rejects(runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(dead), exploding] }), /cannot write seq 10/);
  // Before, the source's close handed its partition over with a commit of the open transaction and the offsets of all 20.
  // Read to the high watermark: past the aborted records and their abort marker, not only until a timeout.
  assert.equal((await readTopic(brokers, output, { committed: true, toEnd: true })).length, 0, 'no output committed');
  assert.equal((await readAgain(brokers, input, group)).eventsIn, 20);
});

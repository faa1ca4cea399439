/**
 * Scale-out and outages against a real broker: two pipelines in one consumer group split the
 * partitions; a source keeps running while its broker is down, reports not ready, and resumes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runYaml, testContext } from 'tributary/testing';
import type { ClickEvent, Source, SourcePlugin, StreamRecord } from 'tributary';
import kafkaSource, { type KafkaSourceConfig } from '../plugins/kafka/source.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, collectSink, createTopic, produce } from './kafka/client.js';
import { startNativeBroker } from './kafka/broker.js';
import { MODE_ENV } from './kafka/broker.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const seqOf = (record: StreamRecord): number => Number((record as unknown as ClickEvent).attrs?.seq);

test('two pipelines in one group split the partitions and together read every record', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('split');
  await createTopic(brokers, topic, 4);
  const yaml = `
sources:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${topic}], group: g-${topic}, mapping: { attributes: [seq, probe] } }
sinks:
  - { type: collect }
settings: { commit_interval: 100ms }
`;
  const stores: StreamRecord[][][] = [[[]], [[]]];
  const controller = new AbortController();
  const runs = stores.map((store) => runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(store)], signal: controller.signal }));
  for (const run of runs) run.catch(() => undefined);
  try {
    // Probe every partition until both members receive records: the group has settled on two members.
    let probe = 0;
    await waitFor(
      'both members to own partitions',
      async () => {
        await produce(brokers, topic, [0, 1, 2, 3].map((partition) => ({ partition, value: clickJson(0, base, 'view', { seq: -1, probe: probe++ }) })));
        const recent = (store: StreamRecord[][]) => store[0]!.filter((r) => Number((r as unknown as ClickEvent).attrs?.probe) >= probe - 8).length;
        return recent(stores[0]!) > 0 && recent(stores[1]!) > 0;
      },
      60_000,
      300,
    );
    const records = Array.from({ length: 4000 }, (_, seq) => ({ partition: seq % 4, key: `u${seq % 50}`, value: clickJson(seq % 50, base + seq, 'view', { seq }) }));
    await produce(brokers, topic, records);
    await waitFor('every record', () => new Set([...stores[0]![0]!, ...stores[1]![0]!].map(seqOf).filter((s) => s >= 0)).size >= 4000, 60_000);
  } finally {
    controller.abort();
  }
  await Promise.all(runs);
  const partitionsOf = (store: StreamRecord[][]) => new Set(store[0]!.filter((r) => seqOf(r) >= 0).map((r) => seqOf(r) % 4));
  const [a, b] = [partitionsOf(stores[0]!), partitionsOf(stores[1]!)];
  assert.ok(a.size > 0 && b.size > 0, `both members read: ${[...a]} / ${[...b]}`);
  assert.deepEqual([...a].filter((p) => b.has(p)), [], 'no partition read by both after the group settled');
  assert.equal(a.size + b.size, 4);
});

test('the broker stopped and started under a running source: not ready, then resumes and loses nothing', async (t) => {
  if (!kafkaBrokers(t)) return;
  if (process.env[MODE_ENV] !== 'native') {
    // Stopping a broker needs one this test owns; the native one is started here (Java and the jars).
    t.diagnostic('using a broker of its own for the outage');
  }
  const broker = await startNativeBroker({ partitions: 2 });
  const source = (kafkaSource as SourcePlugin<KafkaSourceConfig>);
  const context = testContext({ batchSize: 100 });
  let instance: Source | undefined;
  try {
    const topic = uniqueTopic('outage');
    await createTopic(broker.brokers, topic, 2);
    instance = await source.create(
      { brokers: broker.brokers, topics: [topic], group: `g-${topic}`, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, mapping: { attributes: ['seq'] } },
      context,
    );
    const got = new Set<number>();
    const reading = (async () => {
      for await (const batch of instance!.read()) for (const event of batch) got.add(Number(event.attrs?.seq));
    })();
    reading.catch(() => undefined);
    await produce(broker.brokers, topic, Array.from({ length: 500 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
    await waitFor('the first 500', () => got.size >= 500, 60_000);
    assert.equal(instance.health!().ready, true);
    await broker.kill();
    await waitFor('not ready while the broker is down', () => !instance!.health!().ready, 60_000);
    await broker.restart();
    await produce(broker.brokers, topic, Array.from({ length: 500 }, (_, i) => ({ key: `u${i}`, value: clickJson(i, base + 500 + i, 'view', { seq: 500 + i }) })));
    await waitFor('the next 500 after the broker returned', () => got.size >= 1000, 90_000);
    await waitFor('ready again', () => instance!.health!().ready, 30_000);
    assert.equal(context.deadLetters.length, 0);
  } finally {
    await instance?.close?.();
    await broker.stop();
  }
});

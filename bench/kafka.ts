/**
 * Kafka through a real broker on this machine (broker included): `node dist/bench/kafka.js [EVENTS]`.
 *
 * 1. Sustained throughput: EVENTS records (default 300,000) are produced to a 4-partition topic
 *    first; then a pipeline `kafka` source -> `kafka` sink reads them all (stop_at_end) and writes
 *    them to another topic, in each delivery mode. Rate = events / pipeline run time.
 * 2. Latency at 5,000 events/s: a producer writes at that rate for 20 s, each record stamped with its
 *    send time; a consumer of the output topic (read_committed in exactly-once mode) measures
 *    event-to-output latency (send -> output readable), p50/p99.
 *
 * Uses KAFKA_BROKERS when set, else starts a native broker (integration-tests/kafka/broker.ts).
 */
import Kafka from 'node-rdkafka';
import type { Message } from 'node-rdkafka';
import { runYaml } from 'tributary/testing';
import { machine, percentile, writeSection } from './machine.js';
import { startNativeBroker, type TestBroker } from '../integration-tests/kafka/broker.js';
import { createTopic, produce } from '../integration-tests/kafka/client.js';

const events = Number(process.argv[2] ?? 300_000);
const modes = ['at-least-once', 'exactly-once'] as const;

function yaml(input: string, output: string, mode: string, extra = ''): string {
  return `
name: kafka-bench-${mode}
sources:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${input}], group: g-${output}, guarantee: ${mode}, mapping: { attributes: [sent, seq] }${extra} }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, guarantee: ${mode}, transactional_id: tx-${output}, linger: 1ms }
dead_letter: { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, guarantee: ${mode} }
settings: { max_in_flight: 4096, commit_interval: ${mode === 'exactly-once' ? '50ms' : '1s'} }
`;
}

function record(seq: number, sent: number): string {
  return JSON.stringify({ user_id: `u${seq % 10_000}`, time: new Date(1_714_521_600_000 + seq).toISOString(), type: seq % 20 === 0 ? 'cart' : 'view', item_id: `i${seq % 997}`, price: 9.99, seq, sent });
}

async function throughput(brokers: string, mode: string): Promise<number> {
  const id = `${Date.now()}`;
  const [input, output] = [`bench-in-${mode}-${id}`, `bench-out-${mode}-${id}`];
  await createTopic(brokers, input, 4);
  await createTopic(brokers, output, 4);
  for (let from = 0; from < events; from += 50_000) {
    await produce(brokers, input, Array.from({ length: Math.min(50_000, events - from) }, (_, i) => ({ key: `u${(from + i) % 10_000}`, value: record(from + i, 0) })));
  }
  const { stats } = await runYaml(yaml(input, output, mode, ', stop_at_end: true'), { env: { KAFKA_BROKERS: brokers } });
  if (stats.eventsIn !== events) throw new Error(`read ${stats.eventsIn} of ${events}`);
  return (events / stats.elapsedMs) * 1000;
}

async function latency(brokers: string, mode: string, rate = 5_000, seconds = 20): Promise<{ p50: number; p99: number; count: number }> {
  const id = `${Date.now()}`;
  const [input, output] = [`lat-in-${mode}-${id}`, `lat-out-${mode}-${id}`];
  await createTopic(brokers, input, 4);
  await createTopic(brokers, output, 4);
  const controller = new AbortController();
  const run = runYaml(yaml(input, output, mode), { env: { KAFKA_BROKERS: brokers }, signal: controller.signal });
  run.catch((error: unknown) => console.error(error));
  const consumer = new Kafka.KafkaConsumer(
    { 'metadata.broker.list': brokers, 'group.id': `lat-${id}`, 'isolation.level': mode === 'exactly-once' ? 'read_committed' : 'read_uncommitted', 'fetch.wait.max.ms': 10, 'broker.address.family': 'v4' },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  consumer.subscribe([output]);
  const latencies: number[] = [];
  let reading = true;
  const reader = (async () => {
    consumer.setDefaultConsumeTimeout(20);
    while (reading) {
      const batch = await new Promise<Message[]>((resolve) => consumer.consume(1000, (error, messages) => resolve(error ? [] : messages)));
      const now = Date.now();
      for (const message of batch) {
        const sent = (JSON.parse(message.value!.toString()) as { attrs?: { sent?: number } }).attrs?.sent;
        if (sent) latencies.push(now - sent);
      }
    }
  })();
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'linger.ms': 1, 'broker.address.family': 'v4', 'enable.idempotence': true });
  await new Promise<void>((resolve, reject) => producer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  producer.setPollInterval(50);
  // Warm up (group join, first fetches), then send at a steady rate in 10 ms slices.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const started = Date.now();
  let seq = 0;
  while (Date.now() - started < seconds * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; seq < due; seq++) producer.produce(input, null, Buffer.from(record(seq, Date.now())), `u${seq % 10_000}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const deadline = Date.now() + 10_000;
  while (latencies.length < seq && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  reading = false;
  await reader;
  controller.abort();
  await run.catch(() => undefined);
  await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  const sorted = latencies.sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), count: sorted.length };
}

let broker: TestBroker | undefined;
let brokers = process.env.KAFKA_BROKERS;
if (!brokers) {
  broker = await startNativeBroker({ heap: '1g' });
  brokers = broker.brokers;
}
try {
  const rows: string[] = [];
  for (const mode of modes) {
    const rate = await throughput(brokers, mode);
    const lat = await latency(brokers, mode);
    console.error(`${mode}: ${Math.round(rate)} events/s; latency at 5k/s p50 ${lat.p50} ms p99 ${lat.p99} ms (${lat.count} records)`);
    rows.push(`| ${mode} | ${Math.round(rate).toLocaleString('en-US')} events/s | ${lat.p50} ms | ${lat.p99} ms |`);
  }
  writeSection(
    new URL('../../BENCHMARKS.md', import.meta.url).pathname,
    'kafka',
    `## Kafka

\`node dist/bench/kafka.js ${events}\` — through a real Kafka ${broker ? '3.9.1 broker (native KRaft, single node, 1 GiB heap) on this same machine' : `broker at KAFKA_BROKERS`}. Pipeline: \`kafka\` source (4 partitions, JSON records mapped to events) -> \`kafka\` sink (JSON, keyed by user, lz4, idempotent or transactional), no stages. Throughput: ${events.toLocaleString('en-US')} records produced first, then read to the end and written out. Latency: records produced at 5,000/s for 20 s, each stamped with its send time; measured when a consumer of the output topic (read_committed in exactly-once mode) receives it. Exactly-once commits a transaction every 50 ms (\`commit_interval\`), at-least-once commits offsets every 1 s.

| mode | sustained throughput | latency p50 at 5k/s | latency p99 at 5k/s |
|---|---|---|---|
${rows.join('\n')}

The intent pipeline's own stages (sessionizer, features, model) are not in this figure: see their sections for their cost per event.

Machine: ${machine()}; the broker (JVM) and the load generator share its cores. Measured ${new Date().toISOString().slice(0, 10)}.`,
  );
} finally {
  await broker?.stop();
}

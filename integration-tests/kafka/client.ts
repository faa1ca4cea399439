/**
 * Small node-rdkafka helpers for the Kafka tests and bench: create a topic, produce records, read a
 * topic back (optionally read_committed), and a test operator that routes late events to `late`.
 */
import { setTimeout as delay } from 'node:timers/promises';
import Kafka from 'node-rdkafka';
import type { LibrdKafkaError, Message } from 'node-rdkafka';
import { disconnectProducer } from '../../plugins/kafka/common.js';
import { defineOperator, defineSink, recordOperator, type ClickEvent, type OperatorPlugin, type PluginContext, type SinkPlugin, type Source, type SourcePlugin, type StreamRecord } from 'tributary';
import { testContext } from 'tributary/testing';
import kafkaSource, { type KafkaSourceConfig } from '../../plugins/kafka/source.js';

function done<T = void>(call: (cb: (error: LibrdKafkaError | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((error, value) => (error ? reject(new Error(error.message)) : resolve(value as T))));
}

/**
 * Creates `topic` with time-based retention off: tests write records stamped with fixed past times
 * (2024), and the broker's retention task (every 5 minutes) would otherwise delete them as older than
 * the default 7 days, between a test's produce and its read. `config`: more topic configs.
 */
export async function createTopic(brokers: string, topic: string, partitions: number, config: Record<string, string> = {}): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4' });
  try {
    await done((cb) => admin.createTopic({ topic, num_partitions: partitions, replication_factor: 1, config: { 'retention.ms': '-1', ...config } }, 15_000, cb));
  } finally {
    admin.disconnect();
  }
}

/** Grows `topic` to `partitions` partitions, as kafka-topics --alter --partitions does. */
export async function growTopic(brokers: string, topic: string, partitions: number): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4' });
  try {
    await done((cb) => admin.createPartitions(topic, partitions, 15_000, cb));
  } finally {
    admin.disconnect();
  }
}

export async function deleteTopic(brokers: string, topic: string): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4' });
  try {
    await done((cb) => admin.deleteTopic(topic, 15_000, cb));
  } finally {
    admin.disconnect();
  }
}

export interface RawRecord {
  value: string | Buffer | null;
  key?: string | Buffer | null;
  partition?: number;
  timestamp?: number;
  headers?: Kafka.MessageHeader[];
}

/** A producer of test input: idempotent, keyed records in order, a large queue (the tests' and benches' own). */
export function inputProducerConfig(brokers: string): Kafka.ProducerGlobalConfig {
  return {
    'metadata.broker.list': brokers,
    'broker.address.family': 'v4',
    'enable.idempotence': true,
    'linger.ms': 5,
    dr_cb: true,
    'queue.buffering.max.messages': 1_000_000,
  };
}

/**
 * Produces `records` and waits for every delivery report. `options`: librdkafka properties on top (e.g.
 * a compression codec, and a long `linger.ms` to write the records as one batch).
 */
export async function produce(brokers: string, topic: string, records: readonly RawRecord[], options: Record<string, string | number | boolean> = {}): Promise<void> {
  const producer = new Kafka.Producer({ ...inputProducerConfig(brokers), ...options });
  await done((cb) => producer.connect({}, (error) => cb(error)));
  let pending = records.length;
  let failed: Error | undefined;
  const all = new Promise<void>((resolve) => {
    if (pending === 0) resolve();
    producer.on('delivery-report', (error) => {
      if (error) failed ??= new Error(error.message);
      if (--pending === 0) resolve();
    });
  });
  producer.setPollInterval(10);
  for (const record of records) {
    const value = record.value === null ? null : Buffer.isBuffer(record.value) ? record.value : Buffer.from(record.value);
    producer.produce(topic, record.partition ?? null, value, record.key ?? null, record.timestamp ?? Date.now(), undefined, record.headers);
  }
  await all;
  await disconnectProducer(producer, 5_000);
  if (failed) throw failed;
}

/**
 * Produces `record(0)`, `record(1)`, ... one every `everyMs` from one producer until `stop()`, which
 * waits for the deliveries and says how many were produced: a topic whose records keep coming.
 */
export function produceEvery(brokers: string, topic: string, everyMs: number, record: (seq: number) => RawRecord): { stop(): Promise<number> } {
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'linger.ms': 0 });
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  const connected = done((cb) => producer.connect({}, (error) => cb(error))).then(() => {
    producer.setPollInterval(10);
    timer = setInterval(() => {
      const { value, key, partition, timestamp } = record(seq++);
      producer.produce(topic, partition ?? null, value === null ? null : Buffer.from(value), key ?? null, timestamp ?? Date.now());
    }, everyMs);
  });
  return {
    async stop() {
      await connected;
      clearInterval(timer);
      await done((cb) => producer.flush(10_000, cb));
      await disconnectProducer(producer, 5_000);
      return seq;
    },
  };
}

/**
 * Another producer's transaction left open: `records` produced in it and flushed to the broker, never
 * committed, so a read_committed consumer's last stable offset stays before them (as it does for a
 * producer that died mid-transaction, until the broker aborts it after `transaction.timeout.ms`).
 * `commit()` commits it; `abort()` aborts it; either disconnects.
 */
export async function openTransaction(brokers: string, topic: string, records: readonly RawRecord[]): Promise<{ commit(): Promise<void>; abort(): Promise<void> }> {
  const producer = new Kafka.Producer({
    'metadata.broker.list': brokers,
    'broker.address.family': 'v4',
    'transactional.id': `open-${topic}-${process.pid}`,
    // Longer than any test: the broker must not abort it meanwhile (its transaction.max.timeout.ms is 15 min).
    'transaction.timeout.ms': 600_000,
    'linger.ms': 0,
  });
  await done((cb) => producer.connect({}, (error) => cb(error)));
  producer.setPollInterval(10);
  await done((cb) => producer.initTransactions(15_000, cb));
  await done((cb) => producer.beginTransaction(cb));
  for (const record of records) {
    const value = record.value === null ? null : Buffer.isBuffer(record.value) ? record.value : Buffer.from(record.value);
    producer.produce(topic, record.partition ?? null, value, record.key ?? null, record.timestamp ?? Date.now());
  }
  await done((cb) => producer.flush(10_000, cb));
  const end = async (how: 'commit' | 'abort') => {
    await done((cb) => (how === 'commit' ? producer.commitTransaction(15_000, cb) : producer.abortTransaction(15_000, cb)));
    await disconnectProducer(producer, 5_000);
  };
  return { commit: () => end('commit'), abort: () => end('abort') };
}

export interface ReadOptions {
  /** read_committed: only committed transactions (exactly-once outputs). Default: read_uncommitted. */
  committed?: boolean;
  /** Stop once this many records were read (else at the end of every partition). */
  expect?: number;
  /**
   * Fail unless every partition was read up to its high watermark: for a check of what is not in the
   * topic ("nothing committed"), which a read cut short by its timeout would pass. With `committed`,
   * an aborted transaction's records and markers are read past; an open one holds the read short of
   * the high watermark (at the last stable offset), and the read waits for it to end until the timeout.
   */
  toEnd?: boolean;
  timeoutMs?: number;
}

/**
 * Reads a topic from the beginning with a throw-away group, until every partition is at its end and
 * (when given) `expect` records were read, or the timeout passes. Returns the records read: on a
 * timeout, those read so far, unless `toEnd` (then it throws, saying where each partition's read ended).
 */
export async function readTopic(brokers: string, topic: string, options: ReadOptions = {}): Promise<Message[]> {
  const consumer = new Kafka.KafkaConsumer(
    {
      'metadata.broker.list': brokers,
      'broker.address.family': 'v4',
      'group.id': `reader-${process.pid}-${Date.now()}-${Math.random()}`,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': options.committed ? 'read_committed' : 'read_uncommitted',
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await done((cb) => consumer.connect({}, (error) => cb(error)));
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const messages: Message[] = [];
  try {
    const partitions = await topicPartitions(consumer, topic, deadline);
    consumer.assign(partitions.map((partition) => ({ topic, partition, offset: 0 })));
    // Each partition's end offset as its last EOF said. node-rdkafka emits an EOF before the consume
    // callback hands over the records it follows: only a record at or past that offset reopens it
    // (before, any did, and a read waited out its whole timeout for an EOF that had come).
    const atEnd = new Map<number, number>();
    consumer.on('partition.eof', (eof) => void atEnd.set(eof.partition, eof.offset));
    consumer.setDefaultConsumeTimeout(100);
    while (Date.now() < deadline) {
      const batch = await done<Message[]>((cb) => consumer.consume(1000, cb));
      for (const message of batch) {
        if (message.offset >= (atEnd.get(message.partition) ?? -1)) atEnd.delete(message.partition);
        messages.push(message);
      }
      const ended = atEnd.size === partitions.length;
      if (options.expect !== undefined ? messages.length >= options.expect && ended : ended) {
        if (!options.toEnd || (await shortOfHighWatermark(consumer, topic, partitions, atEnd)) === undefined) break;
      }
    }
    if (options.toEnd) {
      const short = await shortOfHighWatermark(consumer, topic, partitions, atEnd);
      if (short !== undefined) throw new Error(`readTopic(${topic}): not read to the end within ${options.timeoutMs ?? 30_000} ms (${messages.length} records read): ${short}`);
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
  return messages;
}

/**
 * Undefined where every partition's last end-of-partition was at its high watermark (the broker's,
 * asked now); else which partitions were not, and where their read ended.
 */
async function shortOfHighWatermark(consumer: Kafka.KafkaConsumer, topic: string, partitions: readonly number[], atEnd: ReadonlyMap<number, number>): Promise<string | undefined> {
  const short: string[] = [];
  for (const partition of partitions) {
    const { highOffset } = await done<Kafka.WatermarkOffsets>((cb) => consumer.queryWatermarkOffsets(topic, partition, 5_000, cb));
    const reached = atEnd.get(partition);
    if (reached === undefined || reached < highOffset) short.push(`partition ${partition} read to ${reached ?? 'no end'}, its high watermark ${highOffset}`);
  }
  return short.length > 0 ? short.join('; ') : undefined;
}

/**
 * The partitions of `topic`, once the broker's metadata lists it with a leader for each: just after
 * CreateTopics a broker may still answer UNKNOWN_TOPIC_OR_PART or LEADER_NOT_AVAILABLE (librdkafka's
 * own tests wait likewise, test_wait_topic_exists), and assigning no partitions would read nothing.
 */
async function topicPartitions(consumer: Kafka.KafkaConsumer, topic: string, deadline: number): Promise<number[]> {
  let last = 'not listed';
  for (;;) {
    const metadata = await done<Kafka.Metadata>((cb) => consumer.getMetadata({ topic, timeout: Math.max(1_000, deadline - Date.now()) }, cb)).catch((error: Error) => {
      last = error.message;
      return undefined;
    });
    // node-rdkafka drops the topic's error code: an unknown topic shows as one with no partitions.
    const found = metadata?.topics.find((t) => t.name === topic);
    if (found && found.partitions.length > 0 && found.partitions.every((p) => p.leader >= 0)) return found.partitions.map((p) => p.id);
    if (found) last = `${found.partitions.length} partitions, leaders [${found.partitions.map((p) => p.leader).join(',')}]`;
    if (Date.now() >= deadline) throw new Error(`readTopic: the metadata never listed topic ${topic} with its partitions (${last})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Parsed JSON values of `messages`. */
export function values<T = Record<string, unknown>>(messages: readonly Message[]): T[] {
  return messages.map((m) => JSON.parse(m.value!.toString('utf8')) as T);
}

/**
 * `late-router` (tests only): sends events behind the watermark to the `late` side output and passes
 * the rest on, so a test can account for every input as an output, a dead letter or a late record.
 */
export const lateRouter: OperatorPlugin<Record<string, never>> = defineOperator<Record<string, never>>({
  name: 'late-router',
  summary: 'Routes events behind the watermark to the late output (tests only).',
  config: { type: 'object', additionalProperties: false, properties: {} },
  create(_config, context) {
    return {
      apply: recordOperator(context, () => {
        let watermark = -Infinity;
        return {
          record(record, emit) {
            if (record.kind === 'event' && (record as ClickEvent).time < watermark) context.sideOutput('late', record as StreamRecord);
            else emit(record);
          },
          watermark(mark) {
            watermark = mark.time;
          },
        };
      }),
    };
  },
});

/** One clickstream event as a producer would write it. */
export function clickJson(user: number, time: number, type = 'view', extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ user_id: `u${user}`, time: new Date(time).toISOString(), type, item_id: `i${user % 17}`, ...extra });
}

/** `count` click events of users u0-u210 keyed by user, each carrying a unique `seq` (from `from` on). */
export function seqRecords(from: number, count: number): { key: string; value: string }[] {
  return Array.from({ length: count }, (_, i) => ({ key: `u${(from + i) % 211}`, value: clickJson((from + i) % 211, Date.parse('2024-05-01T00:00:00Z') + from + i, 'view', { seq: from + i }) }));
}

/**
 * Three views of each of `users` users a minute apart, `minute` minutes after `base` (user u in partition
 * u % 4, a second after user u - 1): one session per user however many such phases, with a gap of 30 min.
 */
export function threeViews(users: number, base: number, minute: number): RawRecord[] {
  return Array.from({ length: users * 3 }, (_, i) => {
    const user = i % users;
    return { partition: user % 4, key: `u${user}`, value: clickJson(user, base + (minute + Math.floor(i / users)) * 60_000 + user * 1_000) };
  });
}

/** An event of its own user three hours after `base` on each of `partitions` partitions: its event time closes every session before it. */
export function sessionClosers(partitions: number, base: number): RawRecord[] {
  return Array.from({ length: partitions }, (_, p) => ({ partition: p, key: `close-${p}`, value: JSON.stringify({ user_id: `close-${p}`, time: new Date(base + 3 * 3_600_000).toISOString(), type: 'view' }) }));
}

/** The session summaries of threeViews' users (`u<n>`) in `topic`; `committed`: read_committed. */
export async function userSessions(brokers: string, topic: string, committed: boolean): Promise<{ userId: string; eventCount: number }[]> {
  return values<{ userId: string; eventCount: number }>(await readTopic(brokers, topic, { committed, timeoutMs: 10_000 })).filter((s) => /^u\d+$/.test(s.userId));
}

/** The `seq`s in the topic's committed output (read_committed). */
export async function committedSeqs(brokers: string, topic: string): Promise<Set<number>> {
  return new Set(values(await readTopic(brokers, topic, { committed: true, timeoutMs: 5_000 })).map((v) => (v.attrs as { seq: number }).seq));
}

/**
 * The group's committed offset of each of the topic's partitions 0 to `partitions` - 1 (-1: none): the last
 * ones committed, at once, also while a transaction that commits others is open. A read_committed consumer
 * asks the broker for stable offsets only (require_stable), which it refuses while such a transaction is
 * open, and librdkafka retries until the call's 10 s timeout: every read during an exactly-once run failed.
 */
export async function groupCommitted(brokers: string, group: string, topic: string, partitions: number): Promise<number[]> {
  const consumer = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'isolation.level': 'read_uncommitted' }, {});
  await done((cb) => consumer.connect({}, (error) => cb(error)));
  try {
    const list = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }));
    // The group's coordinator may be moving or loading (a broker just started or back from an outage): asked
    // again, as librdkafka does not (seen: 'Broker: Not coordinator' thrown by kafka-rebalance-state's wait).
    const until = Date.now() + 30_000;
    let committed: Kafka.TopicPartitionOffset[];
    for (;;) {
      try {
        committed = await done<Kafka.TopicPartitionOffset[]>((cb) => consumer.committed(list, 10_000, cb));
        break;
      } catch (error) {
        if (!/coordinator/i.test((error as Error).message) || Date.now() > until) throw error;
        await delay(200);
      }
    }
    // librdkafka answers -1001 (no offset) for a partition the group never committed.
    return list.map(({ partition }) => Math.max(committed.find((tp) => tp.partition === partition)?.offset ?? -1, -1));
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}

/** `collect` (tests only): like `memory`, but into arrays the test holds, so it can watch a running pipeline. */
export function collectSink(store: StreamRecord[][]): SinkPlugin<{ id?: number }> {
  return defineSink<{ id?: number }>({
    name: 'collect',
    summary: 'Keeps records in arrays the test holds (tests only).',
    config: { type: 'object', additionalProperties: false, properties: { id: { type: 'integer', description: 'Which array to write to.' } } },
    create(config) {
      const records = (store[config.id ?? 0] ??= []);
      return { write: (record) => void records.push(record), close: async () => undefined };
    },
  });
}

/**
 * A kafka source built on its own (no pipeline), reading into `got` (the records' seq) in the
 * background; `reading` settles when its read() ends (rejects with what failed the source).
 * `failures`: what the source reported with context.fail (its consume loop failed); `close` throws
 * them, so a test that never awaits `reading` does not pass over a source that failed.
 */
export async function startSource(
  brokers: string,
  topic: string,
  group: string,
  got: Set<number>,
  clock = { now: () => Date.now() },
  extra: Partial<KafkaSourceConfig> = {},
  contextOverrides: Partial<PluginContext> = {},
): Promise<Source & { reading: Promise<void>; failures: Error[]; close(): Promise<void> }> {
  const config: KafkaSourceConfig = { brokers, topics: [topic], group, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, mapping: { attributes: ['seq'] }, ...extra };
  const context = testContext({ batchSize: 100, clock, ...contextOverrides });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  const reading = (async () => {
    for await (const batch of instance.read()) for (const event of batch) got.add(Number(event.attrs?.seq));
  })();
  reading.catch(() => undefined);
  const closeSource = instance.close?.bind(instance);
  const close = async (): Promise<void> => {
    await closeSource?.();
    if (context.failures.length > 0) throw new AggregateError(context.failures, `the kafka source failed: ${context.failures.map((failure) => failure.message).join('; ')}`);
  };
  return Object.assign(instance, { reading, failures: context.failures, close });
}

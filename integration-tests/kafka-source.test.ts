/**
 * The `kafka` source against a real broker: every record produced comes out as an output, a dead
 * letter (with topic/partition/offset) or a late record; offsets are committed so a second run of the
 * group starts where the first ended; /readyz says when a subscribed topic is missing or the group
 * gives no assignment; a consumer that librdkafka declares dead (a fatal error) fails the source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Kafka from 'node-rdkafka';
import pino from 'pino';
import { runYaml, testContext } from 'tributary/testing';
import { defineSink, MetricsHub, TributaryError, type ClickEvent, type SourcePlugin, type StreamRecord } from 'tributary';
import kafkaSource, { type KafkaSourceConfig } from '../plugins/kafka/source.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { deleteRecordsBefore, startNativeBroker } from './kafka/broker.js';
import { clickJson, collectSink, createTopic, deleteTopic, lateRouter, produce, produceEvery, startSource, type RawRecord } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');

function pipeline(topic: string, group: string, extra = ''): string {
  return `
name: kafka-source-test
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${topic}]
    group: ${group}
    watermark: { max_out_of_orderness: 1s, idle_timeout: 2s }
${extra}
stages:
  - type: late-router
sinks:
  - type: collect
  - type: collect
    id: 1
    kinds: []
    outputs: [late]
dead_letter:
  type: collect
  id: 2
settings:
  max_in_flight: 256
  commit_interval: 200ms
`;
}

test('every record comes out as an output, a dead letter or a late record', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('accounting');
  await createTopic(brokers, topic, 4);
  const good: RawRecord[] = [];
  for (let i = 0; i < 2000; i++) good.push({ key: `u${i % 97}`, value: clickJson(i % 97, base + i * 1000, 'view', { seq: i }) });
  const malformed: RawRecord[] = [
    ...Array.from({ length: 10 }, (_, i) => ({ key: 'bad', value: `{not json ${i}` })),
    ...Array.from({ length: 10 }, (_, i) => ({ key: 'bad', value: JSON.stringify([i]) })),
    ...Array.from({ length: 10 }, (_, i) => ({ key: 'bad', value: JSON.stringify({ time: new Date(base).toISOString(), type: 'view', seq: i }) })),
    ...Array.from({ length: 10 }, (_, i) => ({ key: 'bad', value: JSON.stringify({ user_id: 'u1', time: 'yesterday', type: 'view', seq: i }) })),
    // Valid JSON whose attribute no writer could encode (a stack overflow in JSON.stringify).
    { key: 'bad', value: `{"user_id":"u1","time":"${new Date(base).toISOString()}","type":"view","seq":${'['.repeat(100_000)}${']'.repeat(100_000)}}` },
  ];
  // Spread over every partition, malformed records among the good ones.
  await produce(brokers, topic, [...good.slice(0, 1000), ...malformed, ...good.slice(1000)]);

  const store: StreamRecord[][] = [[], [], []];
  const controller = new AbortController();
  const run = runYaml(pipeline(topic, `g-${topic}`, '    mapping: { attributes: [seq] }'), {
    env: { KAFKA_BROKERS: brokers },
    plugins: [collectSink(store), lateRouter],
    signal: controller.signal,
  });
  let failed: unknown;
  run.catch((error: unknown) => (failed = error));
  try {
    await waitFor('2000 outputs and 41 dead letters', () => failed !== undefined || store[0]!.length + store[1]!.length >= 2000 && store[2]!.length >= 41, 60_000);
    // Late: an hour behind a watermark that every partition has pushed past it.
    const late = Array.from({ length: 50 }, (_, i) => ({ key: `late${i}`, value: clickJson(i, base - 3_600_000, 'view', { seq: 10_000 + i }) }));
    await produce(brokers, topic, late);
    await waitFor('50 late records', () => failed !== undefined || store[0]!.length + store[1]!.length >= 2050, 60_000);
  } finally {
    controller.abort();
  }
  const { stats } = await run;
  const outputs = store[0] as unknown as ClickEvent[];
  const lates = store[1] as unknown as ClickEvent[];
  const dead = store[2]!;
  assert.equal(dead.length, 41);
  for (const record of dead) {
    assert.equal(typeof record.raw, 'string', 'a dead letter holds the record as it came');
    assert.equal(record.file, topic);
    assert.equal(typeof record.partition, 'number');
    assert.equal(typeof record.offset, 'number');
  }
  const seqs = new Set([...outputs, ...lates].map((e) => Number(e.attrs?.seq)));
  assert.equal(seqs.size, 2050, 'every good record exactly once (no rebalance in this test)');
  assert.ok(lates.length >= 50, `late records: ${lates.length}`);
  for (const event of lates.filter((e) => Number(e.attrs?.seq) >= 10_000)) assert.equal(event.time, base - 3_600_000);
  assert.equal(outputs.length + lates.length, 2050);
  assert.equal(stats.eventsIn, 2050);
  assert.equal(stats.deadLettered, 41);
  assert.ok(dead.some((d) => d.reason === 'seq: attribute nested deeper than 64 levels'));
  const partitions = new Set(dead.map((d) => d.partition));
  assert.ok(partitions.size >= 1);
});

test('committed offsets: a second run of the group starts where the first ended', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('commit');
  await createTopic(brokers, topic, 3);
  await produce(brokers, topic, Array.from({ length: 900 }, (_, i) => ({ key: `u${i % 31}`, value: clickJson(i % 31, base + i, 'view', { seq: i }) })));
  const yaml = pipeline(topic, `g-${topic}`, '    stop_at_end: true\n    mapping: { attributes: [seq] }');
  const first: StreamRecord[][] = [[], [], []];
  const one = await runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(first), lateRouter] });
  assert.equal(one.stats.eventsIn, 900);
  assert.equal(one.stats.drained, true);
  await produce(brokers, topic, Array.from({ length: 300 }, (_, i) => ({ key: `u${i % 31}`, value: clickJson(i % 31, base + 900 + i, 'view', { seq: 900 + i }) })));
  const second: StreamRecord[][] = [[], [], []];
  const two = await runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(second), lateRouter] });
  const seqs = [...second[0]!, ...second[1]!].map((e) => Number((e as unknown as ClickEvent).attrs?.seq)).sort((a, b) => a - b);
  assert.equal(two.stats.eventsIn, 300);
  assert.deepEqual(seqs, Array.from({ length: 300 }, (_, i) => 900 + i));
});

test('a topic pattern reads every matching topic, and only those', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const stem = uniqueTopic('pattern');
  const [a, b, other] = [`${stem}-clicks-a`, `${stem}-clicks-b`, `${stem}-orders`];
  for (const topic of [a, b, other]) await createTopic(brokers, topic, 2);
  for (const [index, topic] of [a, b, other].entries()) {
    await produce(brokers, topic, Array.from({ length: 100 }, (_, i) => ({ key: `u${i % 7}`, value: clickJson(i % 7, base + i, 'view', { seq: index * 1000 + i }) })));
  }
  const yaml = `
name: kafka-pattern-test
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    pattern: "^${stem}-clicks-.*"
    group: g-${stem}
    start_from: earliest
    stop_at_end: true
    mapping: { attributes: [seq] }
sinks:
  - type: collect
`;
  const store: StreamRecord[][] = [[]];
  const run = await runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(store)] });
  const seqs = store[0]!.map((e) => Number((e as unknown as ClickEvent).attrs?.seq)).sort((x, y) => x - y);
  assert.equal(run.stats.eventsIn, 200);
  assert.deepEqual(seqs, [...Array.from({ length: 100 }, (_, i) => i), ...Array.from({ length: 100 }, (_, i) => 1000 + i)], 'both clicks topics, not the orders topic');
});

/** A view event every 100 ms on `topic` (seq in its attributes), until stopped. */
function viewsEvery100ms(brokers: string, topic: string): ReturnType<typeof produceEvery> {
  return produceEvery(brokers, topic, 100, (seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) }));
}

interface MetadataRequest {
  /** The consumer that sent it. */
  consumer: unknown;
  allTopics: boolean;
  topic?: string;
  /** The topics answered for, once answered. */
  answer?: string[];
}

/**
 * The sources' metadata requests as node-rdkafka gets them (the plugin loads this same module), until
 * stop(), or the test's end where it fails before its own stop (the next test gets node-rdkafka's own).
 */
function watchMetadataRequests(t: { after: (fn: () => void) => void }): { requests: MetadataRequest[]; stop: () => void } {
  const requests: MetadataRequest[] = [];
  const getMetadata = Kafka.KafkaConsumer.prototype.getMetadata;
  Kafka.KafkaConsumer.prototype.getMetadata = function (this: Kafka.KafkaConsumer, options?: Kafka.MetadataOptions, cb?: (error: Kafka.LibrdKafkaError, metadata: Kafka.Metadata) => unknown) {
    const request: MetadataRequest = { consumer: this, allTopics: options?.allTopics !== false, ...(options?.topic ? { topic: options.topic } : {}) };
    requests.push(request);
    return getMetadata.call(this, options, (error, metadata) => {
      if (!error) request.answer = metadata.topics.map((answered) => answered.name);
      return cb?.(error, metadata);
    });
  };
  const stop = (): void => void (Kafka.KafkaConsumer.prototype.getMetadata = getMetadata);
  t.after(stop);
  return { requests, stop };
}

test('readiness: not ready while a subscribed topic does not exist, its requests naming it, not the whole cluster every 2 s; created, it is read and the source is ready', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('not-yet');
  const got = new Set<number>();
  const watch = watchMetadataRequests(t);
  const requests = watch.requests;
  const instance = await startSource(brokers, topic, `g-${topic}`, got);
  try {
    await waitFor('not ready: the topic does not exist', () => instance.health!().ready === false && /does not exist/.test(instance.health!().detail ?? ''), 30_000);
    assert.match(instance.health!().detail!, new RegExp(`topic '${topic}' does not exist`));
    requests.length = 0;
    await waitFor('5 requests answered', () => requests.filter((request) => request.answer).length >= 5, 30_000);
    const answered = requests.filter((request) => request.answer);
    const wholeCluster = answered.filter((request) => request.allTopics).length;
    assert.ok(wholeCluster <= 1, `at most one request for every topic of ${answered.length} (about 10 s): ${wholeCluster}`);
    for (const request of answered.filter((each) => !each.allTopics)) assert.equal(request.topic, topic, 'the others name the missing topic');
    assert.match(instance.health!().detail!, new RegExp(`topic '${topic}' does not exist`), 'a request naming it does not create it');
    await createTopic(brokers, topic, 2);
    await produce(brokers, topic, Array.from({ length: 100 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
    // librdkafka alone would join only at its next metadata refresh (topic.metadata.refresh.interval.ms, 5 min).
    await waitFor('the created topic read', () => got.size >= 100, 60_000);
    await waitFor('ready', () => instance.health!().ready, 30_000);
  } finally {
    watch.stop();
    await instance.close?.();
  }
});

test('readiness: a subscribed topic deleted while another one\'s records keep coming: not ready, naming it, and the other topic is still read', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const [gone, flowing] = [uniqueTopic('deleted'), uniqueTopic('flowing')];
  for (const topic of [gone, flowing]) await createTopic(brokers, topic, 1);
  const feed = viewsEvery100ms(brokers, flowing);
  const got = new Set<number>();
  const instance = await startSource(brokers, gone, `g-${gone}`, got, undefined, { topics: [gone, flowing] });
  try {
    await waitFor('records of the other topic (both assigned)', () => got.size >= 20, 60_000);
    assert.equal(instance.health!().ready, true, instance.health!().detail);
    await deleteTopic(brokers, gone);
    // The records keep coming, so the source never sits quiet: its metadata requests go on all the
    // same (librdkafka's own errors about the deleted topic's partitions come only 30 s after it first
    // looked the topic up, topic.metadata.propagation.max.ms). Those of every 2 s name the topics it
    // reads, so it knows within seconds, not at its next request for every topic (30 s).
    await waitFor(`not ready: '${gone}' does not exist`, () => new RegExp(`^topic '${gone}' does not exist`).test(instance.health!().detail ?? ''), 10_000);
    const before = got.size;
    await waitFor('the other topic still read', () => got.size >= before + 10, 30_000);
    assert.equal(instance.health!().ready, false);
  } finally {
    await feed.stop();
    await instance.close?.();
  }
});

test('readiness requests of a source reading its partitions name one of its own topics; every topic\'s metadata at most every 30 s', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  // On a shared cluster the whole cluster's metadata is large (docs/operations.md, Readiness): the
  // requests the source sends every 2 s while it reads must not ask for it.
  const [topic, elsewhere] = [uniqueTopic('own-metadata'), uniqueTopic('not-read')];
  for (const name of [topic, elsewhere]) await createTopic(brokers, name, 2);
  const feed = viewsEvery100ms(brokers, topic);
  const watch = watchMetadataRequests(t);
  const requests = watch.requests;
  const got = new Set<number>();
  const instance = await startSource(brokers, topic, `g-${topic}`, got);
  try {
    await waitFor('records read (the partitions assigned)', () => got.size >= 20, 60_000);
    requests.length = 0;
    await waitFor('5 requests answered', () => requests.filter((request) => request.answer).length >= 5, 30_000);
    const answered = requests.filter((request) => request.answer);
    const wholeCluster = answered.filter((request) => request.allTopics);
    assert.ok(wholeCluster.length <= 1, `at most one request for every topic in ${answered.length} requests (about 10 s): ${wholeCluster.length}`);
    for (const request of answered.filter((each) => !each.allTopics)) {
      // Named, not librdkafka's local topics (allTopics false alone): those it sends with auto-creation
      // allowed, so a broker that auto-creates topics would re-create one deleted while it was read.
      assert.equal(request.topic, topic, 'the others name the topic read');
      assert.deepEqual(request.answer, [topic], 'and are answered for it only');
    }
    assert.ok(wholeCluster.every((request) => request.answer!.includes(elsewhere)));
    assert.equal(instance.health!().ready, true, instance.health!().detail);
  } finally {
    watch.stop();
    await feed.stop();
    await instance.close?.();
  }
});

for (const subscription of ['topics', 'pattern'] as const) {
  test(`readiness requests of a member the group gives no partition (a standby, subscribed by ${subscription}) name a subscribed topic, not the whole cluster every 2 s`, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    // One partition, two members: one of them holds nothing, for as long as the other lives.
    const topic = uniqueTopic('standby');
    await createTopic(brokers, topic, 1);
    const feed = viewsEvery100ms(brokers, topic);
    const watch = watchMetadataRequests(t);
    const requests = watch.requests;
    const [gotA, gotB] = [new Set<number>(), new Set<number>()];
    // A pattern's standby names a topic the pattern matched in the last answer for every topic.
    const subscribed: Partial<KafkaSourceConfig> = subscription === 'pattern' ? { topics: undefined, pattern: `^${topic}$` } : {};
    const a = await startSource(brokers, topic, `g-${topic}`, gotA, undefined, subscribed);
    const b = await startSource(brokers, topic, `g-${topic}`, gotB, undefined, subscribed);
    try {
      await waitFor('one member reads the partition', () => gotA.size + gotB.size >= 20, 60_000);
      // The group settled: one member holds the partition, the other was given nothing.
      await waitFor('both members ready', () => a.health!().ready && b.health!().ready, 30_000);
      requests.length = 0;
      await waitFor('10 requests answered', () => requests.filter((request) => request.answer).length >= 10, 30_000);
      const answered = requests.filter((request) => request.answer);
      const byMember = new Map<unknown, typeof answered>();
      for (const request of answered) byMember.set(request.consumer, [...(byMember.get(request.consumer) ?? []), request]);
      assert.equal(byMember.size, 2, 'both members sent requests');
      for (const mine of byMember.values()) {
        const wholeCluster = mine.filter((request) => request.allTopics).length;
        // Every topic at most every 30 s per member; the standby asked for it every 2 s.
        assert.ok(wholeCluster <= 1, `at most one request for every topic of ${mine.length} (about 10 s): ${wholeCluster}`);
        for (const request of mine.filter((each) => !each.allTopics)) assert.equal(request.topic, topic);
      }
    } finally {
      watch.stop();
      await feed.stop();
      await Promise.all([a.close?.(), b.close?.()]);
    }
  });
}

test('readiness: a pattern that matches no topic asks for every topic\'s metadata less and less often, up to every 10 s; a topic created to match it is read', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  // Only the whole cluster's metadata shows a new match, and it is large on a shared cluster.
  const stem = uniqueTopic('unmatched');
  const watch = watchMetadataRequests(t);
  const requests = watch.requests;
  const got = new Set<number>();
  const instance = await startSource(brokers, stem, `g-${stem}`, got, undefined, { topics: undefined, pattern: `^${stem}-.*` });
  try {
    await waitFor('not ready: no topic matches', () => /no topic matches the pattern/.test(instance.health!().detail ?? ''), 30_000);
    const since = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 16_000));
    const sent = requests.filter((request) => request.consumer === requests[0]!.consumer);
    const wholeCluster = sent.filter((request) => request.allTopics).length;
    // 2, 4, 8 s apart, then 10 s: at most 4 in its first 16 s or so (before: 8 or more, every 2 s).
    assert.ok(wholeCluster <= 5, `${wholeCluster} requests for every topic in the first ${((Date.now() - since) / 1000 + 1).toFixed(0)} s or so`);
    assert.ok(sent.every((request) => request.allTopics), 'nothing to name');
    await createTopic(brokers, `${stem}-clicks`, 1);
    await produce(brokers, `${stem}-clicks`, Array.from({ length: 20 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
    await waitFor('the created topic read', () => got.size >= 20, 30_000);
    await waitFor('ready', () => instance.health!().ready, 10_000);
  } finally {
    watch.stop();
    await instance.close?.();
  }
});

test('readiness: not ready from the subscription until the group\'s first assignment, naming the group and topic, also while a rebalance another member holds up lasts longer than assignment_timeout; ready once it comes', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('stuck-group');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 1);
  // A member that joins, takes the partition and does not give it up when the source's join asks for
  // it: the rebalance waits for it (up to its max.poll.interval.ms, 60 s).
  let asked = false;
  const stuck = new Kafka.KafkaConsumer(
    {
      'metadata.broker.list': brokers,
      'broker.address.family': 'v4',
      'group.id': group,
      'max.poll.interval.ms': 60_000,
      rebalance_cb(this: Kafka.KafkaConsumer, error: Kafka.LibrdKafkaError, assignment: Kafka.TopicPartition[]) {
        if (error.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) this.assign(assignment);
        else asked = true;
      },
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => stuck.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  stuck.subscribe([topic]);
  stuck.setDefaultConsumeTimeout(100);
  await waitFor('the other member assigned', async () => {
    await new Promise<void>((resolve) => stuck.consume(1, () => resolve()));
    return stuck.assignments().length > 0;
  }, 30_000, 0);
  // The source's clock is moved ahead to pass the bound without waiting it out.
  let skew = 0;
  const got = new Set<number>();
  const watch = watchMetadataRequests(t);
  const requests = watch.requests;
  const instance = await startSource(brokers, topic, group, got, { now: () => Date.now() + skew }, { assignment_timeout: '1m' });
  let stuckOpen = true;
  try {
    // The source's join has started a rebalance that the other member holds up.
    await waitFor('the other member asked for its partition', async () => {
      await new Promise<void>((resolve) => stuck.consume(1, () => resolve()));
      return asked;
    }, 30_000, 0);
    // Before: ready (0 partitions, reading nothing) until assignment_timeout passed.
    const waiting = new RegExp(`^waiting for the group's first assignment \\(group '${group}', topic '${topic}'\\) since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z`);
    assert.match(instance.health!().detail ?? 'ready', waiting);
    // While it waits, its requests name the subscribed topic: librdkafka knows it already (before:
    // every topic's metadata every 2 s).
    requests.length = 0;
    await waitFor('5 requests answered while waiting', () => requests.filter((request) => request.answer).length >= 5, 30_000);
    assert.equal(instance.partitionOffsets!().size, 0, 'still waiting for its assignment');
    const answered = requests.filter((request) => request.answer);
    const wholeCluster = answered.filter((request) => request.allTopics).length;
    assert.ok(wholeCluster <= 1, `at most one request for every topic of ${answered.length} (about 10 s): ${wholeCluster}`);
    for (const request of answered.filter((each) => !each.allTopics)) assert.equal(request.topic, topic);
    // Past the default bound (30 s), within the one configured: waiting, as the source has from the start.
    skew = 30_000;
    assert.match(instance.health!().detail ?? 'ready', waiting);
    assert.doesNotMatch(instance.health!().detail!, /over its assignment_timeout/);
    // Past it: said so, for a person to look at the group.
    skew = 60_000;
    assert.equal(instance.health!().ready, false, 'not ready past its assignment_timeout');
    assert.match(instance.health!().detail!, new RegExp(`^waiting for the group's first assignment \\(group '${group}', topic '${topic}'\\) since \\S+Z, over its assignment_timeout 1m0s`));
    // The other member leaves: the rebalance ends and the source gets the partition.
    await new Promise<void>((resolve) => stuck.disconnect(() => resolve()));
    stuckOpen = false;
    await produce(brokers, topic, Array.from({ length: 50 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
    await waitFor('the records read', () => got.size >= 50, 60_000);
    await waitFor('ready', () => instance.health!().ready, 10_000);
  } finally {
    watch.stop();
    await instance.close?.();
    if (stuckOpen) await new Promise<void>((resolve) => stuck.disconnect(() => resolve()));
  }
});

test('readiness: a member the group assigns nothing (more members than partitions) is idle, not stuck: ready once the group answered with its empty assignment', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('idle-member');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 1);
  // Sticky: the partition stays with the first member, and the second's first assignment is empty (an
  // incremental one, which librdkafka hands the rebalance callback all the same).
  const sticky = { options: { 'partition.assignment.strategy': 'cooperative-sticky' } };
  const [readByFirst, readBySecond] = [new Set<number>(), new Set<number>()];
  const first = await startSource(brokers, topic, group, readByFirst, undefined, sticky);
  let second: Awaited<ReturnType<typeof startSource>> | undefined;
  try {
    await waitFor('the first member ready', () => first.health!().ready, 30_000);
    second = await startSource(brokers, topic, group, readBySecond, undefined, sticky);
    await waitFor('the second member ready', () => second!.health!().ready, 60_000);
    await produce(brokers, topic, Array.from({ length: 20 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
    await waitFor('the records read by the first member', () => readByFirst.size >= 20, 30_000);
    assert.equal(readBySecond.size, 0, 'the second member holds no partition');
    assert.equal(second.health!().ready, true, second.health!().detail);
    assert.equal(first.health!().ready, true, first.health!().detail);
  } finally {
    await second?.close();
    await first.close();
  }
});

test('a consumer fenced by another with its group.instance.id fails the source (TRIB_ERR_SOURCE, librdkafka\'s fatal error named), not ready meanwhile', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  // Two daemons started with one group.instance.id: the second to join fences the first, whose
  // consumer then reads nothing more, ever (librdkafka's fatal error). It must not run on, ready.
  const topic = uniqueTopic('fenced');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 1);
  await produce(brokers, topic, Array.from({ length: 20 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
  const got = new Set<number>();
  const instance = await startSource(brokers, topic, group, got, undefined, { options: { 'group.instance.id': 'one-instance' } });
  const other = new Kafka.KafkaConsumer(
    { 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'group.instance.id': 'one-instance', 'enable.auto.commit': false },
    { 'auto.offset.reset': 'earliest' },
  );
  try {
    await waitFor('the records read', () => got.size >= 20, 60_000);
    assert.equal(instance.health!().ready, true, instance.health!().detail);
    await new Promise<void>((resolve, reject) => other.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
    other.subscribe([topic]);
    other.setDefaultConsumeTimeout(100);
    let failure: unknown;
    instance.reading.catch((error: unknown) => (failure = error));
    await waitFor('the source failed', async () => {
      await new Promise<void>((resolve) => other.consume(10, () => resolve()));
      return failure !== undefined;
    }, 60_000, 0);
    assert.ok(failure instanceof TributaryError, String(failure));
    assert.equal(failure.code, 'TRIB_ERR_SOURCE');
    assert.match(failure.message, /fatal error and cannot go on: .*Static consumer fenced by other consumer with same group.instance.id: another consumer joined the group with this source's group.instance.id 'one-instance'/);
    const health = instance.health!();
    assert.equal(health.ready, false);
    assert.match(health.detail!, /fatal error and cannot go on: .*Static consumer fenced/);
    // Reported to the runtime too (context.fail), once: the failure expected here, not one for close() to throw.
    assert.deepEqual(instance.failures, [failure]);
    instance.failures.length = 0;
  } finally {
    await instance.close?.();
    await new Promise<void>((resolve) => other.disconnect(() => resolve()));
  }
});

test('a fenced consumer fails the pipeline when it happens (context.fail), not when the runtime next pulls a batch: one waiting on its sinks, or with no input, stops', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('fenced-unpulled');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 1);
  await produce(brokers, topic, Array.from({ length: 20 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
  const context = testContext({ batchSize: 100 });
  const config: KafkaSourceConfig = {
    brokers, topics: [topic], group, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false,
    options: { 'group.instance.id': 'one-instance' },
  };
  const source = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  const other = new Kafka.KafkaConsumer(
    { 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'group.instance.id': 'one-instance', 'enable.auto.commit': false },
    { 'auto.offset.reset': 'earliest' },
  );
  try {
    const batches = source.read()[Symbol.asyncIterator]();
    let read = 0;
    while (read < 20) {
      const next = await batches.next();
      assert.equal(next.done, false);
      read += (next.value as ClickEvent[]).length;
    }
    // The runtime pulls no further batch now (its sinks are slow, or it holds the sources): the source's
    // failure must reach it all the same. Before: it was kept for the next pull, and the pipeline ran on.
    await new Promise<void>((resolve, reject) => other.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
    other.subscribe([topic]);
    other.setDefaultConsumeTimeout(100);
    await waitFor('the source to report its failure', async () => {
      await new Promise<void>((resolve) => other.consume(10, () => resolve()));
      return context.failures.length > 0;
    }, 60_000, 0);
    assert.equal(context.failures.length, 1);
    assert.match(context.failures[0]!.message, /fatal error and cannot go on: .*Static consumer fenced by other consumer with same group.instance.id/);
    assert.equal(source.health!().ready, false);
  } finally {
    await source.close?.();
    await new Promise<void>((resolve) => other.disconnect(() => resolve()));
  }
});

test('a value that is not UTF-8 text is dead-lettered with its exact bytes (base64), not decoded', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('binary');
  await createTopic(brokers, topic, 1);
  const binary = [
    Buffer.from([0x00, 0x9f, 0x92, 0x96, 0xff, 0xfe, 0x0a, 0xc3]), // e.g. Avro or Protobuf
    Buffer.from(`{"user_id":"Jos\xe9","time":"${new Date(base).toISOString()}","type":"view"}`, 'latin1'), // JSON-like, Latin-1
  ];
  await produce(brokers, topic, [...binary.map((value) => ({ key: 'bin', value })), { key: 'u1', value: clickJson(1, base, 'view', { seq: 1 }) }]);
  const store: StreamRecord[][] = [[], [], []];
  const { stats } = await runYaml(pipeline(topic, `g-${topic}`, '    stop_at_end: true\n    mapping: { attributes: [seq] }'), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(store), lateRouter] });
  assert.equal(stats.deadLettered, 2);
  assert.equal(store[0]!.length, 1, 'the UTF-8 JSON record passes');
  const dead = store[2]! as unknown as { reason: string; raw: string; encoding?: string; offset: number }[];
  for (const [index, bytes] of binary.entries()) {
    const letter = dead.find((d) => d.offset === index)!;
    assert.equal(letter.encoding, 'base64');
    assert.match(letter.reason, /not UTF-8.*base64/);
    assert.deepEqual(Buffer.from(letter.raw, 'base64'), bytes, `record ${index}: the exact bytes`);
  }
});

test('with key_field, a key that is not UTF-8 text is dead-lettered with its exact bytes (base64), not taken as a lossy user id', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('binary-key');
  await createTopic(brokers, topic, 1);
  const time = new Date(base).toISOString();
  const unkeyed = (seq: number): string => JSON.stringify({ time, type: 'view', seq });
  const binaryKeys = [Buffer.from([0xff]), Buffer.from([0xfe, 0x00, 0x80])];
  await produce(brokers, topic, [
    ...binaryKeys.map((key, seq) => ({ key, value: unkeyed(seq) })),
    // A UTF-8 key is the user id; a binary key beside a user id in the value is not needed.
    { key: 'u7', value: unkeyed(2) },
    { key: Buffer.from([0xff]), value: clickJson(8, base, 'view', { seq: 3 }) },
  ]);
  const store: StreamRecord[][] = [[], [], []];
  const { stats } = await runYaml(pipeline(topic, `g-${topic}`, '    stop_at_end: true\n    key_field: user_id\n    mapping: { attributes: [seq] }'), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(store), lateRouter] });
  assert.equal(stats.deadLettered, 2);
  assert.deepEqual((store[0]! as unknown as ClickEvent[]).map((event) => [event.userId, event.attrs?.seq]), [['u7', 2], ['u8', 3]]);
  const dead = store[2]! as unknown as { reason: string; raw: string; encoding?: string; key?: string; keyEncoding?: string; offset: number }[];
  for (const [index, key] of binaryKeys.entries()) {
    const letter = dead.find((d) => d.offset === index)!;
    assert.match(letter.reason, /^key is not UTF-8 text/);
    // What a replay needs: the key's exact bytes and the value, each in its own field.
    assert.equal(letter.keyEncoding, 'base64');
    assert.deepEqual(Buffer.from(letter.key ?? '', 'base64'), key, `record ${index}: the key's exact bytes`);
    assert.equal(letter.raw, unkeyed(index), `record ${index}: the value as it came`);
    assert.equal(letter.encoding, undefined, 'raw is the value, UTF-8 text');
  }
  // A reason that is the same for every such record (the key is not in it), as other reasons are.
  assert.equal(new Set(dead.map((d) => d.reason)).size, 1);
});

test('every dead letter carries its record\'s key beside its value, so it can be replayed whole; a tombstone (null value) is dead-lettered as one', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('dead-letter-key');
  await createTopic(brokers, topic, 1);
  const badTime = JSON.stringify({ time: 'yesterday', type: 'view' });
  const binaryValue = Buffer.from([0x00, 0x9f, 0xff]);
  await produce(brokers, topic, [
    // With key_field the key is the user id: rejected for something else, the dead letter without it lost the user.
    { key: 'user-42', value: badTime },
    { key: 'user-43', value: null },
    { key: 'user-44', value: '{not json' },
    { key: 'user-45', value: binaryValue },
    { key: Buffer.from([0xfe, 0x00]), value: '[1]' },
    { key: null, value: '{not json either' },
    { key: 'user-46', value: JSON.stringify({ time: new Date(base).toISOString(), type: 'view', seq: 6 }) },
  ]);
  const store: StreamRecord[][] = [[], [], []];
  const { stats } = await runYaml(pipeline(topic, `g-${topic}`, '    stop_at_end: true\n    key_field: user_id\n    mapping: { attributes: [seq] }'), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(store), lateRouter] });
  assert.equal(stats.deadLettered, 6);
  assert.deepEqual((store[0]! as unknown as ClickEvent[]).map((event) => event.userId), ['user-46']);
  const dead = new Map((store[2]! as unknown as { reason: string; raw: unknown; encoding?: string; key?: string; keyEncoding?: string; offset: number }[]).map((d) => [d.offset, d]));
  const letter = (offset: number) => {
    const found = dead.get(offset);
    assert.ok(found, `a dead letter of offset ${offset}`);
    return { reason: found.reason, raw: found.raw, encoding: found.encoding, key: found.key, keyEncoding: found.keyEncoding };
  };
  assert.deepEqual(letter(0), { reason: 'time: cannot parse "yesterday" as iso8601 (YYYY-MM-DD, then THH:mm, :ss, .sss and Z or ±HH:mm as given; a date that exists)', raw: badTime, encoding: undefined, key: 'user-42', keyEncoding: undefined });
  // Before: "not JSON: Unexpected end of JSON input", raw "" (no key either).
  assert.deepEqual(letter(1), { reason: 'tombstone (null value)', raw: null, encoding: undefined, key: 'user-43', keyEncoding: undefined });
  assert.equal(letter(2).key, 'user-44');
  assert.match(letter(2).reason, /^not JSON: /);
  assert.deepEqual({ ...letter(3), reason: undefined }, { reason: undefined, raw: binaryValue.toString('base64'), encoding: 'base64', key: 'user-45', keyEncoding: undefined });
  // A key that is not UTF-8 text: its exact bytes, whatever the rejection is about.
  assert.deepEqual(letter(4), { reason: 'not a JSON object', raw: '[1]', encoding: undefined, key: Buffer.from([0xfe, 0x00]).toString('base64'), keyEncoding: 'base64' });
  // No key: none said.
  assert.equal(letter(5).key, undefined);
});

test('a record whose time is further ahead of the clock than max_ahead_of_clock moves no watermark: the in-order records after it are not late', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('future');
  await createTopic(brokers, topic, 1);
  const inOrder = (seq: number): RawRecord => ({ key: 'u1', value: clickJson(1, base + seq * 1000, 'view', { seq }) });
  // Two hours ahead: past the entry's max_ahead_of_clock (1h) but not the default (1d), so this also
  // shows that the runtime hands the entry's setting to a source that keeps its own watermark.
  const ahead = { key: 'u1', value: clickJson(1, Date.now() + 2 * 3_600_000, 'view', { seq: 99 }) };
  await produce(brokers, topic, [...[0, 1, 2, 3, 4].map(inOrder), ahead, ...[5, 6, 7, 8, 9].map(inOrder)]);
  const yaml = `
name: kafka-future-time
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${topic}]
    group: g-${topic}
    stop_at_end: true
    mapping: { attributes: [seq] }
    watermark: { max_out_of_orderness: 1s, idle_timeout: 2s, max_ahead_of_clock: 1h }
stages:
  - type: late-router
sinks:
  - type: collect
  - type: collect
    id: 1
    kinds: []
    outputs: [late]
dead_letter: { type: collect, id: 2 }
# A batch per record: the watermark moves between them, as it does between batches of a busy topic.
settings: { max_in_flight: 1 }
`;
  const store: StreamRecord[][] = [[], [], []];
  await runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(store), lateRouter] });
  const seqs = (records: StreamRecord[] | undefined): number[] => (records ?? []).map((e) => Number((e as unknown as ClickEvent).attrs?.seq));
  // Before, the 2h-ahead time became the partition's watermark and the five records after it were late.
  assert.deepEqual(seqs(store[1]), [], 'no record is late');
  // The record itself is passed on (the runtime does so too; operators that care dead-letter it).
  assert.deepEqual(seqs(store[0]), [0, 1, 2, 3, 4, 99, 5, 6, 7, 8, 9]);
});

test('a group whose committed offset lies below the log start (records deleted since), start_from latest: no stall is reported, and new records are read', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('below-log-start');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 1);
  await produce(brokers, topic, Array.from({ length: 20 }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq * 1000, 'view', { seq }) })));
  // The group read up to offset 5; records before 10 are deleted since.
  const committer = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'enable.auto.commit': false }, {});
  await new Promise<void>((resolve, reject) => committer.connect({}, (error) => (error ? reject(error) : resolve())));
  committer.commitSync([{ topic, partition: 0, offset: 5 }]);
  await new Promise<void>((resolve) => committer.disconnect(() => resolve()));
  assert.equal(deleteRecordsBefore(brokers, topic, 0, 10), 10);
  // librdkafka's fetch from 5 is out of range: it starts at the end (20) and delivers nothing, so the
  // source has no position of librdkafka's. The clock runs 2 s ahead at every look (20 ms), past the
  // stall check's 10 s several times over; before, it judged from the committed offset 5 and reported
  // "librdkafka delivers no record from offset 5 on ... though the brokers hold records up to 19".
  const skew = { ms: 0 };
  const got = new Set<number>();
  const source = await startSource(brokers, topic, group, got, { now: () => Date.now() + skew.ms }, { start_from: 'latest' });
  try {
    // The clock stands still until the group assigned the partition (assignment_timeout runs on it too).
    await waitFor('the partition assigned', () => source.partitionWatermarks!().size === 1);
    const details: string[] = [];
    for (let look = 0; look < 150; look++) {
      skew.ms += 2_000;
      const health = source.health!();
      if (!health.ready && health.detail !== 'connecting') details.push(health.detail ?? '');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(details, []);
    await produce(brokers, topic, [{ key: 'u100', value: clickJson(100, base + 100_000, 'view', { seq: 100 }) }]);
    await waitFor('the record produced after the start', () => got.has(100));
    assert.deepEqual([...got], [100]);
  } finally {
    await source.close();
  }
});

test('consumer lag in /metrics: the records not yet through the source, falling to 0 as the pipeline catches up; the partitions assigned', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('lag');
  await createTopic(brokers, topic, 2);
  const total = 1_000;
  await produce(brokers, topic, Array.from({ length: total }, (_, i) => ({ key: `u${i % 10}`, value: clickJson(i % 10, base + i, 'view', { seq: i }) })));
  const hub = new MetricsHub();
  const context = testContext({ batchSize: 100, metrics: hub.scoped({ pipeline: 'lag', stage: 'source-kafka-0' }) });
  const config: KafkaSourceConfig = { brokers, topics: [topic], group: `g-${topic}`, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, max_buffered: 200, mapping: {} };
  const source = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  const gauge = async (name: string): Promise<number> => Number(new RegExp(`^tributary_${name}\\{pipeline="lag",stage="source-kafka-0"\\} (\\S+)$`, 'm').exec(await hub.registry.metrics())?.[1]);
  const batches = source.read()[Symbol.asyncIterator]();
  try {
    // One batch taken, then the pipeline "stalls": everything else is lag, in the buffer or still at the brokers.
    const first = await batches.next();
    assert.equal((first.value as ClickEvent[]).length, 100);
    await waitFor('the lag of the records not taken', async () => (await gauge('kafka_consumer_lag')) === total - 100, 20_000);
    assert.equal(await gauge('kafka_assigned_partitions'), 2);
    // And per partition, its part of the sum: a partition stuck behind shows on its own.
    const parts = async (): Promise<Map<string, number>> =>
      new Map([...(await hub.registry.metrics()).matchAll(/^tributary_kafka_partition_lag\{pipeline="lag",stage="source-kafka-0",topic="([^"]+)",partition="(\d+)"\} (\S+)$/gm)].map((m) => [`${m[1]}/${m[2]}`, Number(m[3])]));
    await waitFor('the lag per partition', async () => [...(await parts()).values()].reduce((sum, n) => sum + n, 0) === total - 100, 20_000);
    assert.deepEqual([...(await parts()).keys()].sort(), [`${topic}/0`, `${topic}/1`]);
    let taken = 100;
    while (taken < total) taken += ((await batches.next()).value as ClickEvent[]).length;
    await waitFor('no lag once all are taken', async () => (await gauge('kafka_consumer_lag')) === 0, 20_000);
    await waitFor('no lag in any partition', async () => [...(await parts()).values()].every((n) => n === 0), 20_000);
  } finally {
    await batches.return?.(undefined);
    await source.close?.();
  }
});

test('brokers down at start: the source fails its connect tries, then reads every record once they are up, each partition assigned once', { timeout: 240_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  // Stopping a broker needs one this test owns.
  const broker = await startNativeBroker({ partitions: 2 });
  const topic = uniqueTopic('late-brokers');
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  let instance: Awaited<ReturnType<typeof startSource>> | undefined;
  try {
    await createTopic(broker.brokers, topic, 2);
    await produce(broker.brokers, topic, Array.from({ length: 200 }, (_, i) => ({ key: `u${i % 13}`, value: clickJson(i % 13, base + i, 'view', { seq: i }) })));
    await broker.kill();
    const got = new Set<number>();
    instance = await startSource(broker.brokers, topic, `g-${topic}`, got, undefined, {}, { logger });
    // A whole round failed: 10 s of tries (2, 5 and 3 s), each with a librdkafka handle of its own.
    await waitFor('a failed connect round', () => /^cannot connect: /.test(instance!.health!().detail ?? ''), 60_000);
    await broker.restart();
    await waitFor('every record read', () => got.size === 200, 90_000);
    // node-rdkafka registered its callbacks again at each try: before, a failed try left them, and the
    // group's assignment reached the source once per try.
    const assigned = lines
      .map((line) => JSON.parse(line) as { msg: string; partitions?: string[] })
      .filter((entry) => entry.msg === 'kafka partitions assigned')
      .flatMap((entry) => entry.partitions ?? []);
    assert.deepEqual(assigned.sort(), [`${topic}/0`, `${topic}/1`]);
  } finally {
    await instance?.close().catch(() => undefined);
    await broker.stop();
  }
});

test('partitions paused by back pressure when a rebalance takes them away are fetched again when they come back', { timeout: 180_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('paused-rebalance');
  const group = `g-${topic}`;
  await createTopic(brokers, topic, 4);
  const total = 2_000;
  await produce(brokers, topic, Array.from({ length: total }, (_, seq) => ({ key: `u${seq % 40}`, value: clickJson(seq % 40, base + seq, 'view', { seq }) })));
  const hub = new MetricsHub();
  const context = testContext({ batchSize: 100, metrics: hub.scoped({ pipeline: 'paused', stage: 'source-kafka-0' }) });
  const config: KafkaSourceConfig = { brokers, topics: [topic], group, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, max_buffered: 200, mapping: { attributes: ['seq'] } };
  const source = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  const pauses = async (): Promise<number> => Number(/^tributary_kafka_pauses_total\{pipeline="paused",stage="source-kafka-0"\} (\S+)$/m.exec(await hub.registry.metrics())?.[1]);
  const assigned = async (): Promise<number> => Number(/^tributary_kafka_assigned_partitions\{pipeline="paused",stage="source-kafka-0"\} (\S+)$/m.exec(await hub.registry.metrics())?.[1]);
  const batches = source.read()[Symbol.asyncIterator]();
  const got = new Set<number>();
  const take = async (): Promise<void> => {
    for (const event of (await batches.next()).value as ClickEvent[]) got.add(Number(event.attrs?.seq));
  };
  // Another member joining and leaving: an eager rebalance takes every partition away and gives them back.
  const other = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'enable.auto.commit': false, 'session.timeout.ms': 6_000 }, { 'auto.offset.reset': 'latest' });
  try {
    await take();
    // The pipeline "stalls": the buffer fills, and after a second the source pauses its partitions.
    await waitFor('the partitions paused', async () => (await pauses()) >= 1, 30_000);
    await new Promise<void>((resolve, reject) => other.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
    other.subscribe([topic]);
    other.setDefaultConsumeTimeout(100);
    await waitFor('the other member to get partitions', async () => {
      await new Promise<void>((resolve) => other.consume(1, () => resolve()));
      try {
        return other.assignments().length > 0;
      } catch {
        return false;
      }
    }, 60_000, 0);
    await new Promise<void>((resolve) => other.disconnect(() => resolve()));
    await waitFor('every partition back', async () => (await assigned()) === 4, 60_000);
    // The pipeline takes records again: every one comes, from all four partitions.
    while (got.size < total) await take();
    assert.equal(got.size, total);
  } finally {
    await batches.return?.(undefined);
    await source.close?.();
  }
});

test('dead letters wait for the dead-letter sink\'s room: a topic of records that all go there is read no further than one batch past it, and on once it has room again', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('dead-letter-room');
  await createTopic(brokers, topic, 1);
  const total = 3_000;
  await produce(brokers, topic, Array.from({ length: total }, (_, i) => ({ key: 'k', value: `garbage ${i}` })));
  // A dead-letter sink that has no room once it holds `room` records, until the test gives it more.
  const room = 50;
  const deadLetters: StreamRecord[] = [];
  let roomAgain!: () => void;
  const full = new Promise<void>((resolve) => (roomAgain = resolve));
  let hasRoom = false;
  const fullSink = defineSink<Record<string, never>>({
    name: 'full-after-50',
    summary: 'Has no room after 50 records until the test gives it more (tests only).',
    config: { type: 'object', additionalProperties: false, properties: {} },
    create: () => ({
      write: (record) => void deadLetters.push(record),
      ready: () => (hasRoom || deadLetters.length < room ? undefined : full),
      close: async () => undefined,
    }),
  });
  const batchSize = 100;
  const yaml = `
name: kafka-dead-letter-room
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${topic}]
    group: g-${topic}
sinks: [{ type: collect }]
dead_letter: { type: full-after-50 }
settings: { max_in_flight: ${batchSize} }
`;
  const hub = new MetricsHub();
  const pauses = async (): Promise<number> => Number(/^tributary_kafka_pauses_total\{pipeline="kafka-dead-letter-room",stage="source-kafka-0"\} (\S+)$/m.exec(await hub.registry.metrics())?.[1] ?? 0);
  const controller = new AbortController();
  const run = runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink([]), fullSink], signal: controller.signal, metrics: hub });
  let failed: unknown;
  run.catch((error: unknown) => (failed = error));
  try {
    // The pipeline waits for the dead-letter sink, so the source's buffer fills and, a second later, it
    // pauses its partitions. Before, the source went on dead-lettering every record (all 3000) into
    // the sink that had said it had no room, and never filled its buffer.
    await waitFor('the source paused, or records past the sink\'s room', async () => failed !== undefined || deadLetters.length > batchSize || (await pauses()) >= 1, 60_000);
    assert.equal(failed, undefined);
    assert.ok(deadLetters.length <= batchSize, `at most one batch past the sink's room, got ${deadLetters.length}`);
    // Room again: every record comes, as a dead letter.
    hasRoom = true;
    roomAgain();
    await waitFor('every record dead-lettered', () => failed !== undefined || deadLetters.length >= total, 60_000);
  } finally {
    controller.abort();
    roomAgain();
  }
  const { stats } = await run;
  assert.equal(stats.deadLettered, total);
  assert.equal(stats.eventsIn, 0);
});

test("mapping.skip_types: the clickstream's purchase events are counted as filtered, neither events nor dead letters (the order service's orders, another source, are the purchases)", async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('skip-types');
  await createTopic(brokers, topic, 1);
  await produce(brokers, topic, [
    { key: 'u1', value: clickJson(1, base, 'view', { seq: 0 }) },
    { key: 'u1', value: clickJson(1, base + 1_000, 'purchase', { seq: 1, order_id: 'o-1' }) },
    { key: 'u1', value: clickJson(1, base + 2_000, 'view', { seq: 2 }) },
  ]);
  const got = new Set<number>();
  const filtered: Record<string, number> = {};
  const deadLetters: string[] = [];
  const source = await startSource(brokers, topic, `g-${topic}`, got, undefined, { mapping: { attributes: ['seq'], skip_types: ['purchase'] } }, {
    countFiltered: (count, reason) => void (filtered[reason] = (filtered[reason] ?? 0) + count),
    deadLetter: (rejection) => void deadLetters.push(rejection.reason),
  });
  try {
    await waitFor('both views read', () => got.has(0) && got.has(2));
    assert.deepEqual([...got].sort(), [0, 2], 'the purchase is no event');
    assert.deepEqual(filtered, { 'skip_types: purchase': 1 });
    assert.deepEqual(deadLetters, []);
  } finally {
    await source.close();
  }
});

/**
 * Scale-out and outages against a real broker: two pipelines in one consumer group split the
 * partitions, and a rebalance hands the per-user state over; an exactly-once member takes over
 * partitions whose previous owner died inside a transaction; a source keeps running while its
 * broker is down, reports not ready, and resumes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runYaml, testContext, tempFolder } from 'tributary/testing';
import { MetricsHub, type ClickEvent, type PartitionRevocation, type SessionSummary, type Source, type SourcePlugin, type StreamRecord } from 'tributary';
import kafkaSource, { type KafkaSourceConfig } from '../plugins/kafka/source.js';
import { promisify } from '../plugins/kafka/common.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import Kafka from 'node-rdkafka';
import { pino } from 'pino';
import { clickJson, collectSink, createTopic, groupCommitted, produce, readTopic, values, type ReadOptions } from './kafka/client.js';
import { startNativeBroker } from './kafka/broker.js';
import { MODE_ENV } from './kafka/broker.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const seqOf = (record: StreamRecord): number => Number((record as unknown as ClickEvent).attrs?.seq);

/** Runs a pipeline in this process until the returned stop is called (a stop hands its partitions over). */
function startRun(yaml: string, brokers: string): () => Promise<void> {
  const controller = new AbortController();
  const running = runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, signal: controller.signal });
  running.catch(() => undefined);
  return async () => {
    controller.abort();
    await running;
  };
}

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

for (const strategy of ['range,roundrobin', 'cooperative-sticky'] as const) {
test(`a rebalance hands per-user state over: sessions begun on one member end whole on the member that takes their partition (${strategy})`, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('handover');
  await createTopic(brokers, topic, 4);
  const dir = tempFolder(t, 'handover');
  // Event time only moves as the test produces: no idle partition may drag the watermark ahead.
  const yaml = (member: string) => `
name: handover
sources:
  - type: kafka
    brokers: "\${KAFKA_BROKERS}"
    topics: [${topic}]
    group: g-${topic}
    start_from: earliest
    mapping: { attributes: [seq, probe] }
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
    options: { partition.assignment.strategy: "${strategy}" }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: collect }
checkpoint: { dir: ${join(dir, `checkpoints-${member}`)}, interval: 1h }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
  const users = 40;
  const partitionOf = (user: number) => user % 4;
  const shopper = (user: number, time: number, seq: number) => ({ partition: partitionOf(user), key: `u${user}`, value: clickJson(user, time, 'view', { seq }) });
  // Every partition gets a record at `time` from a user of its own, so the watermark reaches `time`.
  const tick = (name: string, time: number, extra: Record<string, unknown> = {}) =>
    [0, 1, 2, 3].map((partition) => ({ partition, key: `${name}-${partition}`, value: JSON.stringify({ user_id: `${name}-${partition}`, time: new Date(time).toISOString(), type: 'view', ...extra }) }));
  const stores: StreamRecord[][][] = [[[]], [[]]];
  const controllers = [new AbortController(), new AbortController()];
  const metrics = [new MetricsHub(), new MetricsHub()];
  const run = (member: number) => {
    const running = runYaml(yaml(`m${member}`), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(stores[member]!)], signal: controllers[member]!.signal, metrics: metrics[member]! });
    running.catch(() => undefined);
    return running;
  };
  const records = (member: number) => stores[member]![0]!;
  const shopperEvents = (member: number) => records(member).filter((r) => r.kind === 'event' && /^u\d+$/.test(String(r.userId)));
  const runs = [run(0)];
  try {
    // Phase 1, member A alone: each user's session begins with 3 events (all kept open: gap 30m).
    await produce(brokers, topic, Array.from({ length: users * 3 }, (_, i) => shopper(i % users, base + (i % users) * 1_000 + Math.floor(i / users) * 60_000, i)));
    await produce(brokers, topic, tick('tick', base + 200_000));
    await waitFor('member A to sessionize phase 1', () => shopperEvents(0).length >= users * 3, 60_000);
    // Member B joins: the group rebalances, and B's partitions arrive with the sessions A began.
    runs.push(run(1));
    let round = 0;
    await waitFor(
      'both members to own partitions',
      async () => {
        round++;
        await produce(brokers, topic, tick('probe', base + 200_000 + round * 1_000, { probe: round }));
        // A probe comes out once the next round's passes the watermark, so look two rounds back.
        const recent = (member: number) => records(member).some((r) => r.kind === 'event' && Number((r as unknown as ClickEvent).attrs?.probe) >= round - 2);
        return recent(0) && recent(1);
      },
      90_000,
      300,
    );
    // Phase 2: each session gets 3 more events, 10 minutes on (still within the gap), then event time
    // jumps 2 hours so every session closes where its partition now lives.
    const later = base + 200_000 + 600_000;
    await produce(brokers, topic, Array.from({ length: users * 3 }, (_, i) => shopper(i % users, later + (i % users) * 1_000 + Math.floor(i / users) * 60_000, users * 3 + i)));
    await produce(brokers, topic, tick('close', later + 2 * 3_600_000));
    const summaries = () => [...records(0), ...records(1)].filter((r): r is SessionSummary & StreamRecord => r.kind === 'session' && /^u\d+$/.test(String(r.userId)));
    await waitFor('every shopper session to close', () => new Set(summaries().map((s) => s.userId)).size >= users, 90_000);
  } finally {
    for (const controller of controllers) controller.abort();
  }
  const results = await Promise.all(runs);
  const closed = (member: number) => records(member).filter((r): r is SessionSummary & StreamRecord => r.kind === 'session' && /^u\d+$/.test(String(r.userId)));
  const all = [...closed(0), ...closed(1)];
  // Whole sessions: 6 events each, one summary per user. Without the hand-over, the member that took
  // a partition would close 3-event sessions and the phase-1 halves would never close.
  assert.deepEqual(all.map((s) => s.eventCount).filter((count) => count !== 6), [], 'every session has all 6 of its events');
  assert.equal(all.length, users, 'one summary per user');
  assert.equal(new Set(all.map((s) => s.userId)).size, users);
  const movedToB = closed(1).filter((s) => shopperEvents(0).some((e) => e.userId === s.userId));
  assert.ok(movedToB.length > 0, 'member B closed sessions that member A began');
  assert.equal(results[0]!.deadLetters.length + results[1]!.deadLetters.length, 0);
  // The sessionizer runs in the partition tasks: its latency is measured there, on both members.
  for (const hub of metrics) {
    const text = await hub.registry.metrics();
    const series = (what: string) => Number(new RegExp(`^tributary_stage_latency_seconds_${what}\\{pipeline="handover",stage="stage-sessionizer-0"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    const measured = text.split('\n').filter((l) => /stage_latency_seconds_(count|sum)/.test(l)).join('; ');
    assert.ok(series('count') > 0 && series('sum') > 0, `per-partition stage latency measured: ${measured}`);
  }
});
}

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
test(`scale_out, ${guarantee}: a partition that reads nothing after its restore saves the sessions its watermark closes (following the others once idle), and the next owner does not write them again`, { timeout: 240_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('idle-in');
  const output = uniqueTopic('idle-out');
  for (const topic of [input, output]) await createTopic(brokers, topic, 2);
  const dir = tempFolder(t, 'idle-partition');
  const yaml = `
name: idle-partition
sources:
  - type: kafka
    brokers: "\${KAFKA_BROKERS}"
    topics: [${input}]
    group: g-${input}
    guarantee: ${guarantee}
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 2s }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [session], guarantee: ${guarantee}${guarantee === 'exactly-once' ? `, transactional_id: tx-${output}` : ''} }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 300ms }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
  const view = (user: number, partition: number, minutes: number) => ({ partition, key: `u${user}`, value: clickJson(user, base + minutes * 60_000) });
  const files = (partition: number): string[] => {
    try {
      return readdirSync(join(dir, 'partition-state', `${input}-${partition}`)).filter((name) => name.startsWith('checkpoint-')).sort();
    } catch {
      return [];
    }
  };
  const sessions = async (): Promise<string[]> =>
    values<{ userId: string }>(await readTopic(brokers, output, { committed: guarantee === 'exactly-once', timeoutMs: 8_000 }))
      .map((s) => s.userId)
      .filter((id) => /^u\d+$/.test(id));
  const start = () => startRun(yaml, brokers);
  // Run 1: sessions open on both partitions (u0, u2 on partition 0; u1, u3 on 1), saved; a stop hands them over.
  let stop = start();
  try {
    await produce(brokers, input, [view(0, 0, 0), view(2, 0, 1), view(1, 1, 0), view(3, 1, 1)]);
    await waitFor('both partitions saved', () => files(0).length > 0 && files(1).length > 0, 60_000, 100);
  } finally {
    await stop();
  }
  const saved = files(1).at(-1)!;
  // Run 2: partition 0 reads an event two hours on (u0, u2 close); partition 1 reads nothing, goes idle,
  // and its watermark follows partition 0's: u1, u3 close too.
  stop = start();
  try {
    await produce(brokers, input, [view(100, 0, 120)]);
    await waitFor('the four sessions written', async () => new Set(await sessions()).size >= 4, 90_000, 500);
    const newer = () => files(1).some((file) => file > saved);
    // Exactly-once, they are committed with the checkpoint that saved partition 1's state (before: never saved).
    if (guarantee === 'exactly-once') assert.ok(newer(), `partition 1 saved with the sessions it closed: ${files(1).join(', ')}`);
    else await waitFor('partition 1 saved with the sessions it closed', newer, 30_000, 100);
  } finally {
    await stop();
  }
  // Run 3: each partition reads an event at +4 h, then one at +6 h, which closes the one before it.
  // Before: partition 1 restored its first file again, and its +4 h event closed u1 and u3 a second time.
  stop = start();
  try {
    await produce(brokers, input, [view(101, 0, 240), view(103, 1, 240)]);
    await produce(brokers, input, [view(102, 0, 360), view(104, 1, 360)]);
    await waitFor(
      'u101 and u103 written',
      async () => {
        const written = new Set(await sessions());
        return written.has('u101') && written.has('u103');
      },
      90_000,
      500,
    );
  } finally {
    await stop();
  }
  const counts: Record<string, number> = {};
  for (const id of await sessions()) counts[id] = (counts[id] ?? 0) + 1;
  assert.deepEqual(counts, { u0: 1, u1: 1, u2: 1, u3: 1, u100: 1, u101: 1, u103: 1 }, 'one session summary per user');
});
}

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
test(`scale_out, ${guarantee}: a partition restored and taken away by a cooperative rebalance before a record of it is read hands over the sessions its watermark closed meanwhile: its next owner does not restore them open and write them again`, { timeout: 240_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('unread-in');
  const output = uniqueTopic('unread-out');
  for (const topic of [input, output]) await createTopic(brokers, topic, 4);
  const dir = tempFolder(t, 'unread-partition');
  const group = `g-${input}`;
  // Run 2's checkpoints are 10 minutes apart: none comes between the sessions closing and the rebalance, whose own checkpoint saves them.
  const yaml = (interval: string) => `
name: unread-partition
sources:
  - type: kafka
    brokers: "\${KAFKA_BROKERS}"
    topics: [${input}]
    group: ${group}
    guarantee: ${guarantee}
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1s }
    options: { partition.assignment.strategy: cooperative-sticky }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [session], guarantee: ${guarantee}${guarantee === 'exactly-once' ? `, transactional_id: tx-${output}` : ''} }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: ${interval} }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
  const view = (user: number, partition: number, minutes: number) => ({ partition, key: `u${user}`, value: clickJson(user, base + minutes * 60_000) });
  const files = (partition: number): string[] => {
    try {
      return readdirSync(join(dir, 'partition-state', `${input}-${partition}`)).filter((name) => name.startsWith('checkpoint-'));
    } catch {
      return [];
    }
  };
  // Read uncommitted: exactly-once, the sessions closed sit in the open transaction until the rebalance's checkpoint.
  const sessions = async (options: ReadOptions = { timeoutMs: 8_000 }): Promise<string[]> =>
    values<{ userId: string }>(await readTopic(brokers, output, options))
      .map((s) => s.userId)
      .filter((id) => /^u\d+$/.test(id));
  // Run 1: a session opens on each partition (u<p> on partition p), saved; the stop commits every offset.
  let stop = startRun(yaml('300ms'), brokers);
  try {
    await produce(brokers, input, [0, 1, 2, 3].map((p) => view(p, p, 0)));
    await waitFor('every partition saved', () => [0, 1, 2, 3].every((p) => files(p).length > 0), 60_000, 100);
  } finally {
    await stop();
  }
  // Run 2: partition 0 reads an event two hours on; 1 to 3 read nothing (all read before the restart),
  // and once idle their watermarks follow partition 0's: u1 to u3 close, though no record of theirs came.
  const other = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'enable.auto.commit': false, 'partition.assignment.strategy': 'cooperative-sticky', 'session.timeout.ms': 6_000, 'heartbeat.interval.ms': 500 }, { 'auto.offset.reset': 'earliest' });
  stop = startRun(yaml('10m'), brokers);
  try {
    await produce(brokers, input, [view(100, 0, 120)]);
    await waitFor('u0 to u3 closed', async () => new Set(await sessions()).size >= 4, 90_000, 500);
    // Another member joins: the cooperative rebalance takes two of the four partitions away, at least one
    // unread, and keeps the others (exactly-once: a checkpoint of every partition comes first). It leaves
    // again, and they come back, restored from the files their committed offsets name.
    await promisify((cb) => other.connect({}, (error) => cb(error)));
    other.subscribe([input]);
    other.setDefaultConsumeTimeout(100);
    let taken: number[] = [];
    await waitFor('the other member to get partitions', async () => {
      await promisify<Kafka.Message[]>((cb) => other.consume(1, cb)).catch(() => []);
      try {
        taken = other.assignments().map((tp) => tp.partition);
      } catch {
        taken = []; // mid-rebalance
      }
      return taken.length > 0;
    }, 60_000, 0);
    assert.ok(taken.some((p) => p !== 0), `an unread partition was handed over: ${taken.join(', ')}`);
    await promisify((cb) => other.disconnect(() => cb(null)));
    // Each partition then reads an event at +4 h, then one at +6 h, which closes the one before it: a session
    // restored open on the way closes, and is written, before those.
    await produce(brokers, input, [0, 1, 2, 3].map((p) => view(101 + p, p, 240)));
    await produce(brokers, input, [0, 1, 2, 3].map((p) => view(201 + p, p, 360)));
    await waitFor('u101 to u104 closed', async () => {
      const written = new Set(await sessions());
      return [101, 102, 103, 104].every((user) => written.has(`u${user}`));
    }, 90_000, 500);
  } finally {
    if (other.isConnected()) await promisify((cb) => other.disconnect(() => cb(null)));
    await stop();
  }
  const counts: Record<string, number> = {};
  for (const id of await sessions({ committed: guarantee === 'exactly-once', toEnd: true, timeoutMs: 15_000 })) counts[id] = (counts[id] ?? 0) + 1;
  assert.deepEqual(counts, { u0: 1, u1: 1, u2: 1, u3: 1, u100: 1, u101: 1, u102: 1, u103: 1, u104: 1 }, 'one session summary per user');
  // Every record's offset committed: 1 + 1 + 2 on partition 0, 1 + 2 on the others.
  assert.deepEqual(await groupCommitted(brokers, group, input, 4), [4, 3, 3, 3]);
});
}

test('exactly-once scale_out: a record that reaches no partition task (dead-lettered) after the partition\'s last state file is not read again by the next owner: its dead letter is committed once, and the partition is committed with its mark from the assignment on', { timeout: 240_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('behind-in');
  const [output, dlq] = [uniqueTopic('behind-out'), uniqueTopic('behind-dlq')];
  for (const topic of [input, output, dlq]) await createTopic(brokers, topic, 1);
  const dir = tempFolder(t, 'behind');
  const kafka = (topic: string, kinds = '') => `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${topic},${kinds} guarantee: exactly-once, transactional_id: tx-${output} }`;
  const yaml = `
name: behind
sources:
  - type: kafka
    brokers: "\${KAFKA_BROKERS}"
    topics: [${input}]
    group: g-${input}
    guarantee: exactly-once
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - ${kafka(output, ' kinds: [session],')}
dead_letter: ${kafka(dlq)}
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 200ms }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
  const folder = join(dir, 'partition-state', `${input}-0`);
  const files = (): string[] => {
    try {
      return readdirSync(folder).filter((name) => name.startsWith('checkpoint-')).sort();
    } catch {
      return [];
    }
  };
  const view = (user: number, minutes: number) => ({ key: `u${user}`, value: clickJson(user, base + minutes * 60_000) });
  const deadLetters = async (): Promise<number> => (await readTopic(brokers, dlq, { committed: true, timeoutMs: 5_000 })).length;
  const start = () => startRun(yaml, brokers);
  // Run 1: u0's session opens and is saved (offset 1); then a record that is no JSON goes to the
  // dead-letter topic and moves the offset to 2 with no change to the partition's state, so no file
  // is written at 2: the group's offset 2 is committed with the mark of the file at 1.
  let stop = start();
  try {
    await produce(brokers, input, [view(0, 0)]);
    await waitFor('the partition saved with u0', () => files().length > 0, 60_000, 100);
    await produce(brokers, input, [{ key: 'bad', value: 'no json' }]);
    await waitFor('the dead letter committed', async () => (await deadLetters()) >= 1, 60_000, 200);
  } finally {
    await stop();
  }
  const [committed] = await groupCommitted(brokers, `g-${input}`, input, 1);
  assert.equal(committed, 2, 'the group committed past the dead-lettered record');
  // Run 2 restores the file at 1, which the committed offset's mark names. Before: it read again from 1,
  // and the record went to the dead-letter topic a second time, committed with the next transaction.
  stop = start();
  try {
    await produce(brokers, input, [view(1, 120)]);
    await waitFor('u0 closed', async () => values<{ userId: string }>(await readTopic(brokers, output, { committed: true, timeoutMs: 5_000 })).some((s) => s.userId === 'u0'), 90_000, 500);
  } finally {
    await stop();
  }
  assert.equal(values<{ userId: string }>(await readTopic(brokers, output, { committed: true, toEnd: true, timeoutMs: 15_000 })).filter((s) => s.userId === 'u0').length, 1, 'u0 closed once');
  assert.equal((await readTopic(brokers, dlq, { committed: true, toEnd: true, timeoutMs: 15_000 })).length, 1, 'one dead letter for the one bad record');
});

test('scale_out: a member that stalls past max.poll.interval.ms, the group going on without it, is told at the revocation that its partitions were lost', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('lost');
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, Array.from({ length: 400 }, (_, seq) => ({ partition: seq % 2, key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(
    {
      brokers,
      topics: [topic],
      group: `g-${topic}`,
      start_from: 'earliest',
      event_time: 'field',
      guarantee: 'at-least-once',
      poll_timeout: 100,
      stop_at_end: false,
      options: { 'session.timeout.ms': 6_000, 'heartbeat.interval.ms': 500, 'max.poll.interval.ms': 6_000 },
    },
    testContext({ batchSize: 10 }),
  );
  const revocations: PartitionRevocation[][] = [];
  instance.onPartitions!({ assigned: async () => new Map(), revoked: async (partitions) => void revocations.push([...partitions]) });
  try {
    const batches = instance.read()[Symbol.asyncIterator]();
    const first = await batches.next();
    assert.ok(!first.done && first.value.length > 0, 'reading');
    // The process stalls (a long synchronous task, a frozen VM) past max.poll.interval.ms: no poll of
    // librdkafka's, which leaves the group and takes the assignment as lost. (The stall is the test's
    // input, as a SIGSTOP's in kafka-delivery.test.ts.)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 8_000);
    // Read on: the next polls bring librdkafka's revocation.
    const reading = (async () => {
      for (let batch = await batches.next(); !batch.done; batch = await batches.next());
    })();
    reading.catch(() => undefined);
    await waitFor('the revocation', () => revocations.length > 0, 30_000);
    // Before: it looked like a hand-over, and the runtime saved the partitions' state into the shared
    // folder, where their new owner may be writing its own.
    assert.deepEqual(revocations[0]!.map((p) => p.lost), [true, true], JSON.stringify(revocations));
  } finally {
    await instance.close?.();
  }
});

test('scale_out readiness: not ready from the group\'s assignment until its partitions\' state is restored, naming them; ready once restored, and their records read', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('restoring');
  let skew = 0;
  await createTopic(brokers, topic, 2);
  await produce(brokers, topic, Array.from({ length: 20 }, (_, seq) => ({ partition: seq % 2, key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(
    { brokers, topics: [topic], group: `g-${topic}`, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, mapping: { attributes: ['seq'] } },
    testContext({ batchSize: 100, clock: { now: () => Date.now() + skew } }),
  );
  // The runtime's restore of the partitions' state files, held until the test lets it end (a large
  // state, or shared storage that answers slowly).
  let restore!: () => void;
  const restored = new Promise<void>((resolve) => (restore = resolve));
  const assigned: string[][] = [];
  instance.onPartitions!({
    assigned: async (partitions) => {
      assigned.push(partitions.map((p) => p.id));
      await restored;
      return new Map();
    },
    revoked: async () => undefined,
  });
  const got = new Set<number>();
  const reading = (async () => {
    for await (const batch of instance.read()) for (const event of batch) got.add(Number(event.attrs?.seq));
  })();
  reading.catch(() => undefined);
  try {
    await waitFor('the group\'s assignment, its state being restored', () => assigned.length > 0, 60_000);
    // Before: ready from the assignment's arrival on, while nothing of the partitions could be read yet.
    const restoring = new RegExp(`^restoring the scale_out state of partitions ${topic}-0, ${topic}-1 \\(none of them is read until it is restored\\) since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z$`);
    await waitFor('not ready, restoring', () => restoring.test(instance.health!().detail ?? 'ready'), 30_000);
    // The same reason from one probe to the next while the restore lasts (when it began, not how long ago).
    const detail = instance.health!().detail;
    skew = 5_000;
    assert.equal(instance.health!().detail, detail);
    assert.equal(got.size, 0, 'nothing read before the restore ends');
    restore();
    await waitFor('ready once restored', () => instance.health!().ready, 30_000);
    await waitFor('the partitions\' records read', () => got.size >= 20, 30_000);
  } finally {
    restore();
    await instance.close?.();
  }
});

test('the broker stopped and started under a running source: not ready, then resumes and loses nothing', async (t) => {
  if (!kafkaBrokers(t)) return;
  if (process.env[MODE_ENV] !== 'native') {
    // Stopping a broker needs one this test owns; the native one is started here (Java and the jars).
    t.diagnostic('using a broker of its own for the outage');
  }
  const broker = await startNativeBroker({ partitions: 2 });
  const source = (kafkaSource as SourcePlugin<KafkaSourceConfig>);
  // The source's log, as a daemon's operator reads it at the default level (info).
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const context = testContext({ batchSize: 100, logger });
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
    // From the consumer's own event.error (node-rdkafka gives it code -1), not only from the source's
    // metadata probe, which says "metadata request failed" seconds later.
    await waitFor('not ready: the brokers reported down', () => /^broker unreachable: all broker connections are down/.test(instance!.health!().detail ?? ''), 60_000);
    await broker.restart();
    await produce(broker.brokers, topic, Array.from({ length: 500 }, (_, i) => ({ key: `u${i}`, value: clickJson(i, base + 500 + i, 'view', { seq: 500 + i }) })));
    await waitFor('the next 500 after the broker returned', () => got.size >= 1000, 90_000);
    await waitFor('ready again', () => instance!.health!().ready, 30_000);
    assert.equal(context.deadLetters.length, 0);
    // Each failed reconnect during the outage is a "broker transport failure" client error: they were
    // a warning each, in bursts; the outage's are one warning, saying how many (ConnectionFailures.logError).
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string; err?: string }).filter((entry) => entry.level >= 40 && entry.msg.startsWith('kafka consumer error'));
    assert.ok(warnings.length <= 1, `at most one client-error warning for the outage: ${warnings.map((w) => w.err).join('; ')}`);
  } finally {
    await instance?.close?.();
    await broker.stop();
  }
});

test('the broker stopped while a slow pipeline still reads records fetched before: not ready at once, and not ready again from those records', async (t) => {
  if (!kafkaBrokers(t)) return;
  const broker = await startNativeBroker({ partitions: 2 });
  let instance: Source | undefined;
  try {
    const topic = uniqueTopic('prefetched');
    await createTopic(broker.brokers, topic, 2);
    const total = 20_000;
    await produce(broker.brokers, topic, Array.from({ length: total }, (_, seq) => ({ key: `u${seq}`, value: clickJson(seq, base + seq, 'view', { seq }) })));
    // librdkafka fetches ahead up to 20k records a partition (CONSUMER_TUNING): all of these, at once.
    instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(
      { brokers: broker.brokers, topics: [topic], group: `g-${topic}`, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, max_buffered: 200, mapping: { attributes: ['seq'] } },
      testContext({ batchSize: 100 }),
    );
    const got = new Set<number>();
    const health: { ready: boolean; read: number }[] = [];
    let lastRecordAt = Date.now();
    const reading = (async () => {
      for await (const batch of instance!.read()) {
        for (const event of batch) got.add(Number(event.attrs?.seq));
        lastRecordAt = Date.now();
        // A slow pipeline: 100 records per 50 ms, so the records fetched ahead last seconds.
        await new Promise((done) => setTimeout(done, 50));
      }
    })();
    reading.catch(() => undefined);
    await waitFor('the first 1000', () => got.size >= 1_000, 60_000);
    assert.equal(instance.health!().ready, true);
    await broker.kill();
    await waitFor('every record fetched before the stop read (none for 3 s)', () => {
      health.push({ ready: instance!.health!().ready, read: got.size });
      return Date.now() - lastRecordAt > 3_000;
    }, 90_000);
    const lost = health.findIndex((sample) => !sample.ready);
    assert.ok(lost >= 0, 'not ready while the broker is down');
    const readAfter = got.size - health[lost]!.read;
    // librdkafka's own "all broker connections are down" waits behind those records in its queue.
    assert.ok(readAfter >= 1_000, `not ready while records fetched before the stop were still being read (${readAfter} read after it went not ready)`);
    const backToReady = health.slice(lost).findIndex((sample) => sample.ready);
    assert.equal(backToReady, -1, `not ready again from records fetched before the stop (ready again after ${health[lost + backToReady]?.read} records)`);
    await broker.restart();
    await waitFor('ready once the broker answers', () => instance!.health!().ready, 30_000);
    await waitFor('every record', () => got.size >= total, 60_000);
  } finally {
    await instance?.close?.();
    await broker.stop();
  }
});

test('exactly-once scale-out: partitions whose previous owner died inside a transaction are taken over once the broker aborts it', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('zombie-in');
  const output = uniqueTopic('zombie-out');
  for (const topic of [input, output]) await createTopic(brokers, topic, 2);
  const group = `g-${input}`;
  const events = 20;
  await produce(brokers, input, Array.from({ length: events }, (_, seq) => ({ partition: seq % 2, key: `u${seq}`, value: clickJson(seq, base + seq * 1_000, 'view', { seq }) })));
  const connection = { 'metadata.broker.list': brokers, 'broker.address.family': 'v4' as const };
  // The previous owner: a group member that wrote an output and its consumed offsets into a
  // transaction, then died before committing it. Its transaction timeout (12 s) is longer than one
  // committed-offsets request of the next owner (10 s), which the broker answers only once it aborted it.
  const member = new Kafka.KafkaConsumer({ ...connection, 'group.id': group, 'enable.auto.commit': false, 'isolation.level': 'read_committed' }, { 'auto.offset.reset': 'earliest' });
  const zombie = new Kafka.Producer({ ...connection, 'transactional.id': `zombie-${input}`, 'transaction.timeout.ms': 12_000 });
  const controller = new AbortController();
  let running: Promise<unknown> | undefined;
  try {
    await promisify((cb) => member.connect({}, (error) => cb(error)));
    member.subscribe([input]);
    member.setDefaultConsumeTimeout(100);
    await waitFor('the dead owner to own both partitions', async () => {
      await promisify<Kafka.Message[]>((cb) => member.consume(1, cb));
      return member.assignments().length === 2;
    }, 60_000, 0);
    await promisify((cb) => zombie.connect({}, (error) => cb(error)));
    await promisify((cb) => zombie.initTransactions(10_000, cb));
    await promisify((cb) => zombie.beginTransaction(cb));
    zombie.produce(output, 0, Buffer.from(JSON.stringify({ zombie: true })), 'zombie');
    await promisify((cb) => zombie.flush(10_000, cb));
    await promisify((cb) => zombie.sendOffsetsToTransaction([0, 1].map((partition) => ({ topic: input, partition, offset: events / 2 })), member, 10_000, cb));
    await promisify((cb) => member.disconnect(() => cb(null)));
    const dir = tempFolder(t, 'zombie');
    const yaml = `
name: zombie
sources:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${input}], group: ${group}, guarantee: exactly-once, start_from: earliest, mapping: { attributes: [seq] } }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [event], guarantee: exactly-once, transactional_id: tx-${output} }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 100ms }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
    let failure: unknown;
    running = runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, signal: controller.signal }).catch((error: unknown) => (failure = error));
    const committedSeqs = async () => values<{ attrs?: { seq?: number } }>(await readTopic(brokers, output, { committed: true, timeoutMs: 5_000 })).map((r) => r.attrs?.seq);
    await waitFor('every event in the committed output, or the pipeline to fail', async () => failure !== undefined || (await committedSeqs()).length >= events, 90_000, 500);
    assert.equal(failure, undefined, `the pipeline kept running: ${String(failure)}`);
    // The dead owner's transaction was aborted: its output is not there, and its offsets did not count.
    assert.deepEqual((await committedSeqs()).sort((a, b) => Number(a) - Number(b)), Array.from({ length: events }, (_, seq) => seq));
  } finally {
    controller.abort();
    await running;
    await new Promise<void>((resolve) => zombie.disconnect(5_000, () => resolve()));
  }
});

/**
 * The kafka source's consume loop failing (here: it cannot get an OAUTHBEARER token, before any broker
 * is asked) reaches the runtime at once through context.fail, named by the source, whether or not the
 * runtime is pulling from read() at that moment. And the timing of a denied fetch's report against the
 * answers that follow it, scripted (no broker produces it on demand). No broker needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inputHandedOver, MetricsHub, onTimeOffset, TributaryError, type ClickEvent, type PartitionRevocation, type Source, type SourcePlugin } from 'tributary';
import { runYaml, testContext, until } from 'tributary/testing';
import kafkaSource, { type KafkaSourceConfig } from './source.js';
import { rdkafka } from './common.js';

/** KafkaConsumer's prototype as node-rdkafka made it, before any test swapped a method (the last test compares). */
const pristinePrototype = Object.getOwnPropertyDescriptors((await rdkafka()).KafkaConsumer.prototype);

/** A source's config for brokers that refuse every connection (127.0.0.1:1): the tests script the consumer. */
function unreachableConfig(topics: string[], extra: Partial<KafkaSourceConfig> = {}): KafkaSourceConfig {
  return { brokers: '127.0.0.1:1', topics, group: 'g', start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, ...extra };
}

/** A test context whose logger keeps its warnings (fields and message) for the test to read. */
function warningsKept(): { warnings: { fields: unknown; message: string }[]; context: ReturnType<typeof testContext> } {
  const warnings: { fields: unknown; message: string }[] = [];
  const context = testContext({ batchSize: 100 });
  return { warnings, context: { ...context, logger: { ...context.logger, warn: (fields: unknown, message?: string) => void warnings.push({ fields, message: message ?? '' }) } } as typeof context };
}

async function refusingTokenEndpoint(): Promise<{ url: string; server: Server }> {
  const server = createServer((_request, response) => {
    response.statusCode = 401;
    response.end('{"error":"invalid_client"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, server };
}

const oauthSecurity = (url: string) => ({ protocol: 'sasl_plaintext' as const, sasl: { mechanism: 'OAUTHBEARER' as const, oauthbearer: { token_endpoint_url: url, client_id: 'x', client_secret: 'y' } } });

async function assertTributaryFetchesTokens(): Promise<void> {
  // With a librdkafka built with OIDC, librdkafka fetches tokens itself and the source's connect does not fail so.
  assert.ok(!(await rdkafka()).features.includes('oidc'), 'this test needs a librdkafka without OIDC (node-rdkafka\'s bundled one)');
}

test('a kafka source whose consume loop fails reports it with context.fail at once, though no one awaits read()', async () => {
  await assertTributaryFetchesTokens();
  const { url, server } = await refusingTokenEndpoint();
  const context = testContext({ batchSize: 100 });
  const config = unreachableConfig(['t'], { security: oauthSecurity(url) });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  try {
    // The first pull starts the consume loop; its result is not awaited (a runtime busy elsewhere).
    void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
    for (let waited = 0; context.failures.length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(context.failures.length, 1, 'reported once');
    assert.match(context.failures[0]!.message, new RegExp(`token endpoint ${url} answered HTTP 401`));
    assert.match(instance.health!().detail ?? '', /^no OAUTHBEARER token: /);
  } finally {
    await instance.close?.();
    server.close();
  }
});

test('a pipeline whose kafka source\'s consume loop fails stops with TRIB_ERR_SOURCE naming that source', async () => {
  await assertTributaryFetchesTokens();
  const { url, server } = await refusingTokenEndpoint();
  const yaml = `
name: kafka-loop-failure
sources:
  - type: kafka
    brokers: "127.0.0.1:1"
    topics: [t]
    group: g
    security: { protocol: sasl_plaintext, sasl: { mechanism: OAUTHBEARER, oauthbearer: { token_endpoint_url: "${url}", client_id: x, client_secret: y } } }
sinks:
  - type: memory
`;
  try {
    await assert.rejects(runYaml(yaml), (error: unknown) => {
      assert.ok(error instanceof TributaryError, String(error));
      assert.equal(error.code, 'TRIB_ERR_SOURCE');
      // Before, the failure came only through read(), as "a source failed: ...", naming no source.
      assert.match(error.message, new RegExp(`^source-kafka-0 failed: .*token endpoint ${url} answered HTTP 401`));
      return true;
    });
  } finally {
    server.close();
  }
});

/**
 * librdkafka's side of a consumer, scripted, for what no broker produces on demand: each consume call
 * takes the next scripted answer (records or an error) or finds nothing; `highOffsets` is its cache of
 * each partition's high watermark (getWatermarkOffsets). The group assigns partition 0 of each
 * subscribed topic; every topic exists. The methods of node-rdkafka's KafkaConsumer are swapped for the
 * test's span (`restore`, which also undoes a test's own swaps of these), so no native client starts.
 * With `assignAtSubscribe: false` the group assigns nothing until the test's `rebalance`.
 */
async function scriptedConsumer(options: { assignAtSubscribe?: boolean } = {}): Promise<{
  answers: (() => Error | [])[];
  highOffsets: Map<string, number>;
  consumeCalls: () => number;
  /** How many times the source assigned partitions (librdkafka delivers no record of a partition before). */
  assignCalls: () => number;
  /** The group's rebalance as librdkafka calls it back: `revoke` or `assign` of these partitions (after subscribe). */
  rebalance: (kind: 'assign' | 'revoke', assignment: { topic: string; partition: number }[]) => void;
  /** Swaps these methods of KafkaConsumer's prototype for the test's fakes, until `restore`. */
  swap: (methods: Record<string, unknown>) => void;
  restore: () => void;
  /** Topics the brokers no longer list (deleted): left out of the metadata answers. */
  deletedTopics: Set<string>;
}> {
  const Kafka = await rdkafka();
  const prototype = Kafka.KafkaConsumer.prototype as unknown as Record<string, unknown>;
  const answers: (() => Error | [])[] = [];
  const highOffsets = new Map<string, number>();
  let calls = 0;
  let subscribed: string[] = [];
  // The brokers list the topics subscribed and every topic a rebalance assigned, but those deleted.
  const assignedTopics = new Set<string>();
  const deletedTopics = new Set<string>();
  type Rebalance = (error: { code: number; message: string }, assignment: { topic: string; partition: number }[]) => void;
  let consumer: { globalConfig: { rebalance_cb: Rebalance } } | undefined;
  const later = (fn: () => void) => void setTimeout(fn, 5);
  const fakes: Record<string, unknown> = {
    connect(_options: unknown, cb: (error: Error | null) => void) {
      later(() => cb(null));
    },
    subscribe(this: { globalConfig: { rebalance_cb: Rebalance } }, topics: string[]) {
      consumer = this;
      subscribed = topics;
      if (options.assignAtSubscribe === false) return;
      later(() => this.globalConfig.rebalance_cb({ code: -175, message: 'assign' }, topics.map((topic) => ({ topic, partition: 0 }))));
    },
    rebalanceProtocol: () => 'EAGER',
    assign: () => undefined,
    unassign: () => undefined,
    setDefaultConsumeTimeout: () => undefined,
    fatalError: () => null,
    consume(_count: number, cb: (error: Error | null, messages: []) => void) {
      calls++;
      const answer = answers.shift()?.() ?? [];
      later(() => (answer instanceof Error ? cb(answer, []) : cb(null, answer)));
    },
    getWatermarkOffsets: (topic: string, partition: number) => ({ lowOffset: 0, highOffset: highOffsets.get(`${topic}/${partition}`) ?? -1001 }),
    // The brokers' answers: a log from 0 to past any offset a test resumes at, and no committed offsets.
    queryWatermarkOffsets: (_topic: string, _partition: number, _timeout: number, cb: (error: null, offsets: { lowOffset: number; highOffset: number }) => void) => later(() => cb(null, { lowOffset: 0, highOffset: 1_000 })),
    committed: (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) => later(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: -1001 })))),
    position: (list: { topic: string; partition: number }[]) => list.map(({ topic, partition }) => ({ topic, partition, offset: Math.max(highOffsets.get(`${topic}/${partition}`) ?? 0, 0) })),
    getMetadata(_options: unknown, cb: (error: Error | null, metadata: unknown) => void) {
      const names = [...new Set([...subscribed, ...assignedTopics])].filter((name) => !deletedTopics.has(name));
      // Four partitions each: a test assigns partitions among them, none of them one added to its topic since.
      const topics = names.map((name) => ({ name, partitions: [0, 1, 2, 3].map((id) => ({ id, leader: 1, replicas: [1], isrs: [1] })) }));
      later(() => cb(null, { orig_broker_id: 1, orig_broker_name: 'fake', brokers: [{ id: 1, host: '127.0.0.1', port: 1 }], topics }));
    },
    disconnect(cb: () => void) {
      later(cb);
    },
  };
  // Every method swapped, the scripted ones and a test's own (swap), with what it was: restore puts them
  // all back, so no later test of the file inherits a fake (a commitSync that throws, say).
  const originals = new Map<string, PropertyDescriptor | undefined>();
  // Whether the source has assigned partitions (a test's own assign fake counted too).
  let assignCalls = 0;
  const swap = (methods: Record<string, unknown>): void => {
    for (const [name, fake] of Object.entries(methods)) {
      if (!originals.has(name)) originals.set(name, Object.getOwnPropertyDescriptor(prototype, name));
      const value = name === 'assign' && typeof fake === 'function'
        ? function (this: unknown, ...args: unknown[]) {
          assignCalls++;
          return (fake as (...a: unknown[]) => unknown).apply(this, args);
        }
        : fake;
      Object.defineProperty(prototype, name, { value, configurable: true, writable: true });
    }
  };
  swap(fakes);
  const restore = () => {
    for (const [name, original] of originals) {
      if (original) Object.defineProperty(prototype, name, original);
      else delete prototype[name];
    }
    originals.clear();
  };
  const rebalance = (kind: 'assign' | 'revoke', assignment: { topic: string; partition: number }[]): void => {
    for (const { topic } of assignment) assignedTopics.add(topic);
    consumer!.globalConfig.rebalance_cb(kind === 'assign' ? { code: -175, message: 'assign' } : { code: -174, message: 'revoke' }, assignment);
  };
  return { answers, highOffsets, consumeCalls: () => calls, assignCalls: () => assignCalls, rebalance, swap, restore, deletedTopics };
}

/** librdkafka's report of a fetch the brokers denied, as consume() gives it. */
function denial(topic: string): Error {
  return Object.assign(new Error('Fetch from broker 1 failed: Broker: Topic authorization failed'), { code: 29, topic, partition: 0, offset: 30 });
}

/** Has the source read one record of partition t/0 (offset 7; the partition's end 8), then the group revoke the partition. */
async function readOneThenRevoke(instance: Source, script: Awaited<ReturnType<typeof scriptedConsumer>>): Promise<void> {
  await startReading(instance, script);
  await readOneRecord(instance, script);
  script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
}

/** Asks `instance` for its first batch (not awaited), once its consume loop runs. */
async function startReading(instance: Source, script: { consumeCalls(): number }): Promise<void> {
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => script.consumeCalls() > 0, 'the partition assigned');
}

/** Has `instance` read one record of `topic`/0 (offset 7, the partition's end 8): its position then 8. */
async function readOneRecord(instance: Source, script: Awaited<ReturnType<typeof scriptedConsumer>>, topic = 't'): Promise<void> {
  const value = Buffer.from(JSON.stringify({ user_id: 'u1', time: '2024-05-01T00:00:00Z', type: 'view' }));
  // As librdkafka: no record before the assignment (the source looks its partitions up first, one lookup at a time).
  await until(() => script.assignCalls() > 0, 'the partition assigned');
  script.highOffsets.set(`${topic}/0`, 8);
  script.answers.push(() => [{ topic, partition: 0, offset: 7, value, key: null, size: value.length, timestamp: 0 }] as unknown as []);
  await until(() => (instance.position!().offsets as Record<string, Record<string, number>> | undefined)?.[topic]?.['0'] === 8, 'the record read');
}

async function scriptedSource(t: { after: (fn: () => unknown) => void }, topic: string) {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const config = unreachableConfig([topic]);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, testContext({ batchSize: 100 }));
  t.after(() => instance.close?.());
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  // Assigned and read to the end of the partition (offset 30), nothing amiss.
  script.highOffsets.set(`${topic}/0`, 30);
  await until(() => script.consumeCalls() > 0 && instance.health!().ready, 'the partition assigned and the source ready');
  return { ...script, instance };
}

test('a denied partition is not ready while its fetches are denied, and ready once one is answered, though no record of it comes, however late the source looks', async (t) => {
  const { answers, highOffsets, consumeCalls, instance } = await scriptedSource(t, 'quiet');
  const notReady = /^cannot read topic 'quiet' \(partition 0: .*Topic authorization failed\)/;
  // Denied: librdkafka caches the denied answer's high watermark (-1), then queues the error.
  answers.push(() => (highOffsets.set('quiet/0', -1), denial('quiet')));
  await until(() => notReady.test(instance.health!().detail ?? ''), 'not ready, naming the denied topic');
  const calls = consumeCalls();
  await until(() => consumeCalls() >= calls + 5, 'more consume calls');
  assert.match(instance.health!().detail ?? '', notReady, 'still not ready while every fetch is denied');
  // Allowed again: its next fetch is answered (the partition's own high watermark), with no record.
  highOffsets.set('quiet/0', 30);
  await until(() => instance.health!().ready, 'ready again');
  // Denied again, and allowed again before the consume loop looked at the cache after the error (its
  // next look comes after a pause; the event loop may be busy longer): the -1 was never seen by it.
  // Before: not ready until a record of it came, which on a quiet topic is never.
  answers.push(() => (highOffsets.set('quiet/0', -1), denial('quiet')));
  await until(() => notReady.test(instance.health!().detail ?? ''), 'not ready again');
  highOffsets.set('quiet/0', 30);
  await until(() => instance.health!().ready, 'ready, with no record of the topic');
});

test('a denial the source reads only after a later fetch was answered (it waited behind other records) leaves the source ready', async (t) => {
  const { answers, consumeCalls, instance } = await scriptedSource(t, 'quiet');
  let deliveredAt = -1;
  // Denied (-1 cached), then answered again (30), all before the consume loop reaches the error: it finds 30.
  answers.push(() => ((deliveredAt = consumeCalls()), denial('quiet')));
  await until(() => deliveredAt >= 0 && consumeCalls() >= deliveredAt + 2, 'the denial read, and the consume loop past it');
  await until(() => instance.health!().ready, 'ready, with no record of the topic');
});

test('a checkpoint taken after a resume, before a record of a partition is read, keeps the offset the partition resumed at', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const assigned: { topic: string; partition: number; offset?: number }[][] = [];
  script.swap({ assign: (list: { topic: string; partition: number; offset?: number }[]) => void assigned.push(list) });
  const config = unreachableConfig(['quiet']);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, testContext({ batchSize: 100 }));
  t.after(() => instance.close?.());
  // The runtime restores the checkpoint's position before the first pull.
  instance.seek!({ offsets: { quiet: { '0': 42 } } });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => assigned.length > 0, 'the partition assigned');
  assert.deepEqual(assigned[0], [{ topic: 'quiet', partition: 0, offset: 42 }], 'reading starts at the checkpoint\'s offset');
  // No record of it read yet: a checkpoint now (a stop, or the next interval) must still cover offset 42.
  // Before, it held no offset of the partition, and the restart after it started at the group's committed offset.
  assert.deepEqual(instance.position!().offsets, { quiet: { '0': 42 } });
});

test('a rebalance that takes away a partition resumed at a checkpoint\'s offset, before a record of it is read, hands it over at that offset: the hand-over\'s checkpoint names it and commits it there', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const commits: unknown[] = [];
  // A commit of no offsets asks whether the assignment was lost (assignmentLost): none is committed.
  script.swap({ commitSync: (offsets: unknown) => void (offsets === null || offsets === undefined || commits.push(offsets)) });
  // The runtime's checkpoint on request: the position it holds, then the commit of it.
  const checkpoints: unknown[] = [];
  let instance: Source | undefined;
  const commitNow = async (): Promise<void> => {
    const position = instance!.position!();
    checkpoints.push(position);
    await instance!.commit!(position);
  };
  instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['quiet']), testContext({ batchSize: 100, commitNow }));
  t.after(() => instance.close?.());
  instance.seek!({ offsets: { quiet: { '0': 42 } } });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => (instance!.position!().offsets as Record<string, Record<string, number>> | undefined)?.['quiet']?.['0'] === 42, 'the partition assigned at the checkpoint\'s offset');
  script.rebalance('revoke', [{ topic: 'quiet', partition: 0 }]);
  await until(() => commits.length > 0, 'the hand-over committed');
  // Before: the checkpoint held no offset of it (its state there, the restart after it started the
  // partition at the group's committed offset); in scale_out, exactly-once, its commit went without the
  // mark of the state that checkpoint saved, and the next owner restored older state.
  assert.deepEqual(checkpoints, [{ offsets: { quiet: { '0': 42 } }, partitions: { quiet: 4 } }]);
  assert.deepEqual(commits, [[{ topic: 'quiet', partition: 0, offset: 42 }]]);
});

/**
 * The pipeline's transactions as an exactly-once source uses them (context.shared): the offsets each
 * commit sends (sendOffsetsToTransaction), and why they were abandoned, after which none commits (as
 * PipelineTransactions.abandon).
 */
function standInTransactions(): { sent: { topic: string; partition: number; offset: number }[][]; marked: (string | undefined)[][]; abandoned: Error[]; shared: Map<string, unknown>; write: () => void } {
  const sent: { topic: string; partition: number; offset: number }[][] = [];
  /** Each commit's offsets' metadata (the marks: withMarks), as `sent`. */
  const marked: (string | undefined)[][] = [];
  const abandoned: Error[] = [];
  let writes = 0;
  const transactions = {
    sourceAttached: false,
    writesSinceCommit: () => writes,
    open: async () => undefined,
    settled: async () => undefined,
    commit: (offsets: { topic: string; partition: number; offset: number; metadata?: string }[]) => {
      if (abandoned.length > 0) {
        const refused = Promise.reject(abandoned[0]!);
        refused.catch(() => undefined);
        return { sealed: Promise.resolve(), committed: refused };
      }
      writes = 0;
      sent.push(offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })));
      marked.push(offsets.map(({ metadata }) => metadata));
      return { sealed: Promise.resolve(), committed: Promise.resolve() };
    },
    abandon: (failure: Error) => void abandoned.push(failure),
  };
  return { sent, marked, abandoned, shared: new Map<string, unknown>([['kafka:transactions', transactions]]), write: () => void writes++ };
}

/** The group holds offset 5 of every partition. */
const committedAtFive = (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) => void setTimeout(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: 5 }))), 5);

test('exactly-once: a partition assigned at the group\'s committed offset is left out of the transaction\'s offsets until a fetch of it is answered (the brokers refuse the offset of one they deny, failing the transaction), while another offset carries the marks', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  let assignments = 0;
  // The group holds offset 5 of each partition, where the log ends.
  script.swap({ assign: () => void assignments++, committed: committedAtFive });
  const { sent, shared, write } = standInTransactions();
  const context = testContext({ batchSize: 100, shared });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['allowed', 'denied'], { guarantee: 'exactly-once' }), context);
  t.after(() => instance.close?.());
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  const both = { offsets: { allowed: { '0': 5 }, denied: { '0': 5 } } };
  await until(() => JSON.stringify(instance.position!().offsets) === JSON.stringify(both.offsets), 'both partitions assigned at the committed offset');
  // A fetch of `allowed` answered (librdkafka caches its high watermark); none of `denied` yet: the
  // brokers may deny it, which the source learns only from that answer.
  script.highOffsets.set('allowed/0', 5);
  await instance.commit!(instance.position!());
  // Before: both, and where `denied` was denied the brokers refused the transaction (Topic authorization failed).
  assert.deepEqual(sent, [[{ topic: 'allowed', partition: 0, offset: 5 }]]);
  // Answered: committed again with each transaction, with its marks.
  script.highOffsets.set('denied/0', 5);
  await instance.commit!(instance.position!());
  assert.deepEqual(sent[1], [{ topic: 'allowed', partition: 0, offset: 5 }, { topic: 'denied', partition: 0, offset: 5 }]);
  script.rebalance('revoke', [{ topic: 'allowed', partition: 0 }, { topic: 'denied', partition: 0 }]);
  await until(() => sent.length >= 3, 'the hand-over committed');
  script.highOffsets.clear();
  script.rebalance('assign', [{ topic: 'allowed', partition: 0 }, { topic: 'denied', partition: 0 }]);
  await until(() => assignments === 2 && JSON.stringify(instance.position!().offsets) === JSON.stringify(both.offsets), 'both assigned again at the committed offset');
  // None answered, and nothing written since the last commit: no offset (no mark needed). Before: both,
  // and a member's first checkpoint right after its assignment failed on the denied one.
  const before = sent.length;
  await instance.commit!(instance.position!());
  assert.deepEqual(sent[before], []);
  // None answered, with writes (sessions closed by idleness): held, not committed (the next test).
  write();
  await instance.commit!(instance.position!());
  assert.equal(sent.length, before + 1);
});

test('exactly-once: a transaction holding writes while no partition it commits has been answered is held, not committed, until one is: its outputs then go with the answered partition\'s offset, which carries that checkpoint\'s mark; a hand-over meanwhile sends every offset with its mark', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  let assignments = 0;
  script.swap({ assign: () => void assignments++, committed: committedAtFive });
  const { sent, marked, shared, write } = standInTransactions();
  let instance: Source | undefined;
  // The runtime's checkpoint at a revocation (commitNow): the commit of its position, with its mark.
  const commitNow = async (): Promise<void> => instance!.commit!(instance!.position!(), { checkpoint: 'hand-over' });
  const context = testContext({ batchSize: 100, shared, commitNow });
  const infos: string[] = [];
  const logged = { ...context, logger: { ...context.logger, info: (_fields: unknown, message?: string) => void infos.push(message ?? '') } } as typeof context;
  const holds = () => infos.filter((message) => message.startsWith('kafka source: the checkpoint\'s transaction holds outputs'));
  instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['allowed', 'denied'], { guarantee: 'exactly-once' }), logged);
  t.after(() => instance.close?.());
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  const both = { offsets: { allowed: { '0': 5 }, denied: { '0': 5 } } };
  const bothAssigned = () => JSON.stringify(instance!.position!().offsets) === JSON.stringify(both.offsets);
  await until(bothAssigned, 'both partitions assigned at the committed offset');
  // Sessions closed by idleness written before any fetch was answered. Before: every offset went with the
  // mark, and where `denied` was denied the brokers refused the transaction (Topic authorization failed),
  // the pipeline restarting for as long as it stayed so. Without any offset the outputs would commit with
  // no mark, and a restore take the older checkpoint the marks name, writing them twice.
  write();
  await instance.commit!(instance.position!(), { checkpoint: 'mark-1' });
  assert.deepEqual(sent, [], 'held: not committed');
  await instance.commit!(instance.position!(), { checkpoint: 'mark-2' });
  assert.deepEqual(sent, [], 'still held');
  assert.equal(holds().length, 1, 'said once while held');
  assert.match(holds()[0]!, /allowed\/0: no fetch answered since its assignment, denied\/0: no fetch answered since its assignment/);
  // `allowed` answered: the next checkpoint commits the held outputs with its offset, carrying that checkpoint's mark.
  script.highOffsets.set('allowed/0', 5);
  await instance.commit!(instance.position!(), { checkpoint: 'mark-3' });
  assert.deepEqual(sent, [[{ topic: 'allowed', partition: 0, offset: 5 }]]);
  assert.deepEqual(marked, [['mark-3']]);
  // Both taken away and given back, none answered since, and writes: held again (said again).
  script.rebalance('revoke', [{ topic: 'allowed', partition: 0 }, { topic: 'denied', partition: 0 }]);
  await until(() => sent.length === 2, 'the first hand-over committed');
  script.highOffsets.clear();
  script.rebalance('assign', [{ topic: 'allowed', partition: 0 }, { topic: 'denied', partition: 0 }]);
  await until(() => assignments === 2 && bothAssigned(), 'both assigned again at the committed offset');
  write();
  await instance.commit!(instance.position!(), { checkpoint: 'mark-4' });
  assert.equal(sent.length, 2, 'held again');
  assert.equal(holds().length, 2, 'said again: a commit went between');
  // A hand-over now, the writes still held and none answered: the partitions leave, so no later commit
  // may have an offset to carry a mark. Every offset goes with the hand-over's mark (a denied one fails
  // the transaction, and the restart restores the checkpoint the marks name: exactly-once kept).
  script.rebalance('revoke', [{ topic: 'allowed', partition: 0 }, { topic: 'denied', partition: 0 }]);
  await until(() => sent.length === 3, 'the second hand-over committed');
  assert.deepEqual(sent[2], [{ topic: 'allowed', partition: 0, offset: 5 }, { topic: 'denied', partition: 0, offset: 5 }]);
  assert.deepEqual(marked[2], ['hand-over', 'hand-over']);
});

test('exactly-once: a transaction holding writes while every partition it holds is denied (blocked, unmoved: their offsets left out) is held, not committed without the mark; once one is read again, the next commit carries it', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  script.swap({ committed: committedAtFive });
  const { sent, marked, shared, write } = standInTransactions();
  const context = testContext({ batchSize: 100, shared });
  const infos: string[] = [];
  const logged = { ...context, logger: { ...context.logger, info: (_fields: unknown, message?: string) => void infos.push(message ?? '') } } as typeof context;
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['first', 'second'], { guarantee: 'exactly-once' }), logged);
  t.after(() => instance.close?.());
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  const both = { offsets: { first: { '0': 5 }, second: { '0': 5 } } };
  await until(() => JSON.stringify(instance.position!().offsets) === JSON.stringify(both.offsets), 'both partitions assigned at the committed offset');
  // Both denied: librdkafka caches the denied answers' high watermark (-1), then queues the errors.
  script.answers.push(() => (script.highOffsets.set('first/0', -1), denial('first')));
  script.answers.push(() => (script.highOffsets.set('second/0', -1), denial('second')));
  await until(() => /cannot read topics? .*'first'.*'second'|cannot read topics? .*'second'.*'first'/.test(instance.health!().detail ?? ''), 'both named unreadable');
  // A stage's timer wrote meanwhile. Before: committed with no offset, so no mark, and a restore took the
  // older checkpoint the marks still named and wrote those outputs again.
  write();
  await instance.commit!(instance.position!(), { checkpoint: 'mark-1' });
  assert.deepEqual(sent, [], 'held: not committed');
  assert.match(infos.find((message) => message.startsWith('kafka source: the checkpoint\'s transaction holds outputs')) ?? '', /first\/0: cannot be read, second\/0: cannot be read/);
  // `first` read again (its next fetch answered): its offset carries the next checkpoint's mark.
  script.highOffsets.set('first/0', 5);
  await until(() => !/'first'/.test(instance.health!().detail ?? ''), 'first readable again');
  await instance.commit!(instance.position!(), { checkpoint: 'mark-2' });
  assert.deepEqual(sent, [[{ topic: 'first', partition: 0, offset: 5 }]]);
  assert.deepEqual(marked, [['mark-2']]);
});

test('exactly-once scale_out: partitions restored at the group\'s committed offset, none of them answered yet, are all left out of the transaction (their states are their own, their watermarks stay put)', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  script.swap({ committed: committedAtFive });
  const { sent, shared } = standInTransactions();
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['allowed', 'denied'], { guarantee: 'exactly-once' }), testContext({ batchSize: 100, shared }));
  t.after(() => instance.close?.());
  // The runtime restores each partition's state at its committed offset; reading starts there.
  instance.onPartitions!({ assigned: async (partitions) => new Map(partitions.map((p) => [p.id, p.committed!])), revoked: async () => undefined });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => script.consumeCalls() > 0, 'subscribed');
  script.rebalance('assign', [{ topic: 'allowed', partition: 0 }, { topic: 'denied', partition: 0 }]);
  const both = { offsets: { allowed: { '0': 5 }, denied: { '0': 5 } } };
  await until(() => JSON.stringify(instance.position!().offsets) === JSON.stringify(both.offsets), 'both restored at the committed offset');
  await instance.commit!(instance.position!());
  // Before: both, and the brokers refused the transaction where they deny one (a member's first checkpoint
  // after a rebalance, its partitions still unread).
  assert.deepEqual(sent, [[]]);
  script.highOffsets.set('allowed/0', 5);
  await instance.commit!(instance.position!());
  assert.deepEqual(sent[1], [{ topic: 'allowed', partition: 0, offset: 5 }]);
});

test('a resume at a checkpoint\'s offset that the group\'s committed offset differs from (a reset to replay) says so, with both offsets and what to do', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  // The group's offsets, reset to 0 by hand while the daemon was stopped.
  const committed = (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) =>
    void setTimeout(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: 0 }))), 5);
  script.swap({ committed });
  const { warnings, context: logged } = warningsKept();
  const config = unreachableConfig(['quiet']);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, logged);
  t.after(() => instance.close?.());
  instance.seek!({ offsets: { quiet: { '0': 42 } } });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => warnings.some((w) => w.message.startsWith('kafka source resumes at its checkpoint')), 'the warning');
  const warning = warnings.find((w) => w.message.startsWith('kafka source resumes at its checkpoint'))!;
  // Before, the reset was ignored in silence: the checkpoint's offsets win.
  assert.match(warning.message, /quiet\/0 at 42 \(committed: 0\)/);
  assert.match(warning.message, /move the checkpoint folder away/);
  assert.deepEqual(warning.fields, { partitions: [{ partition: 'quiet/0', checkpoint: 42, committed: 0 }] });
});

test('a resume at a checkpoint\'s offset outside its partition\'s log (deleted by retention meanwhile, or another log) says so, with the offsets, and reads the partition from its log\'s start', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const assigned: unknown[] = [];
  script.swap({ assign: (list: unknown) => void assigned.push(list) });
  // 'old': its records up to 19 deleted by retention; 'gone': created again, 10 records in it.
  const logs: Record<string, { lowOffset: number; highOffset: number }> = { old: { lowOffset: 20, highOffset: 30 }, gone: { lowOffset: 0, highOffset: 10 } };
  const queryWatermarkOffsets = (topic: string, _partition: number, _timeout: number, cb: (error: null, offsets: { lowOffset: number; highOffset: number }) => void) => void setTimeout(() => cb(null, logs[topic]!), 5);
  script.swap({ queryWatermarkOffsets });
  const { warnings, context: logged } = warningsKept();
  const config = unreachableConfig(['old', 'gone']);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, logged);
  t.after(() => instance.close?.());
  instance.seek!({ offsets: { old: { '0': 5 }, gone: { '0': 42 } } });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  const outside = (): { fields: unknown; message: string } | undefined => warnings.find((w) => w.message.startsWith('kafka source cannot resume where its checkpoint says'));
  await until(() => outside() !== undefined, 'the warning');
  // Before, librdkafka started both over at start_from (with latest: their records skipped) and nothing said so above its debug log.
  assert.match(outside()!.message, /old\/0: offset 5 is below the log's start 20 \(records 5-19 were deleted, by retention, before they were read\)/);
  assert.match(outside()!.message, /gone\/0: offset 42 is past the log's end 10 \(the topic was created again, or these brokers are another cluster's\)/);
  assert.match(outside()!.message, /Such a partition is read from its log's start, whatever start_from says$/);
  await until(() => assigned.length > 0, 'the assignment');
  assert.deepEqual(assigned[0], [{ topic: 'old', partition: 0, offset: 20 }, { topic: 'gone', partition: 0, offset: 0 }]);
});

test('the brokers\' lookups at a resume come one at a time, not one per partition at once: in an outage each holds one of libuv\'s 4 pool threads for its timeout, and checkpoint writes and a transaction\'s abort waited for them all', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const topics = ['a', 'b', 'c', 'd', 'e', 'f'];
  // Lookups answered late (an unresponsive broker's, shortened), each counted while it runs.
  let inFlight = 0;
  let most = 0;
  let answered = 0;
  const slow = <T>(answer: () => T) => (cb: (error: null, value: T) => void): void => {
    most = Math.max(most, ++inFlight);
    setTimeout(() => {
      inFlight--;
      answered++;
      cb(null, answer());
    }, 30);
  };
  const queryWatermarkOffsets = (_topic: string, _partition: number, _timeout: number, cb: (error: null, offsets: { lowOffset: number; highOffset: number }) => void) => slow(() => ({ lowOffset: 20, highOffset: 30 }))(cb);
  const committed = (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) => slow(() => list.map(({ topic, partition }) => ({ topic, partition, offset: -1001 })))(cb);
  script.swap({ queryWatermarkOffsets, committed });
  const { warnings, context: logged } = warningsKept();
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(topics), logged);
  t.after(() => instance.close?.());
  instance.seek!({ offsets: Object.fromEntries(topics.map((topic) => [topic, { '0': 5 }])) });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => warnings.some((w) => w.message.startsWith('kafka source cannot resume where its checkpoint says')), 'the warning');
  // Every partition still looked up (each below its log's start), one after another. Before, all 6 at once.
  assert.ok(answered >= topics.length, `${answered} lookups answered`);
  assert.equal(most, 1);
});

test('readiness after a (re)start: not ready from the subscription until the group\'s first assignment (an empty one too: an idle member), naming the group and topic; a later rebalance has assignment_timeout\'s grace', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  let skew = 0;
  const context = testContext({ batchSize: 100, clock: { now: () => Date.now() + skew } });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['clicks'], { group: 'intent' }), context);
  t.after(() => instance.close?.());
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  const waiting = /^waiting for the group's first assignment \(group 'intent', topic 'clicks'\) since (\S+)$/;
  // Connected and subscribed (its metadata requests answered), the group's answer still to come.
  // Before: ready, 0 partitions assigned, until assignment_timeout (30 s) passed.
  await until(() => script.consumeCalls() > 0 && waiting.test(instance.health!().detail ?? ''), 'not ready, waiting for the first assignment');
  assert.equal(instance.health!().ready, false);
  // When it began waiting, not how long ago: the same reason from one probe to the next (before: "for 2.1s", new on every probe).
  const since = waiting.exec(instance.health!().detail!)![1]!;
  assert.ok(Math.abs(Date.parse(since) - Date.now()) < 30_000, since);
  skew = 10_000;
  assert.equal(instance.health!().detail, `waiting for the group's first assignment (group 'intent', topic 'clicks') since ${since}`);
  // Past assignment_timeout (a group held up by a member, or by a predecessor whose session has not expired): said so.
  skew = 31_000;
  assert.equal(
    instance.health!().detail,
    `waiting for the group's first assignment (group 'intent', topic 'clicks') since ${since}, over its assignment_timeout 30.0s (a rebalance that does not end, a group it cannot join, or an earlier member of it whose session has not expired)`,
  );
  skew = 0;
  // The group assigns this member nothing (more members than partitions): idle, not stuck.
  script.rebalance('assign', []);
  await until(() => instance.health!().ready, 'ready once the group answered, with no partition');
  // A later rebalance: a revocation that leaves it none is ridden out within assignment_timeout.
  script.rebalance('revoke', []);
  assert.equal(instance.health!().ready, true, instance.health!().detail);
  skew = 29_000;
  assert.equal(instance.health!().ready, true, `within its grace: ${instance.health!().detail}`);
  skew = 31_000;
  assert.match(instance.health!().detail ?? '', /^no partitions assigned by group 'intent' since \d{4}-\d\d-\d\dT[\d:.]+Z, over its assignment_timeout 30\.0s/);
  script.rebalance('assign', [{ topic: 'clicks', partition: 0 }]);
  await until(() => instance.health!().ready, 'ready once assigned again');
});

test('scale-out readiness: not ready from an assignment until the runtime restored its partitions\' state, naming them and since when; ready once restored', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  let skew = 0;
  const context = testContext({ batchSize: 100, clock: { now: () => Date.UTC(2026, 11, 6, 12) + skew } });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['clicks']), context);
  t.after(() => instance.close?.());
  let restore!: () => void;
  const restored = new Promise<void>((resolve) => (restore = resolve));
  t.after(() => restore());
  const assigned: string[][] = [];
  instance.onPartitions!({ assigned: async (partitions) => (assigned.push(partitions.map((p) => p.id)), await restored, new Map()), revoked: async () => undefined });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => script.consumeCalls() > 0, 'subscribed');
  script.rebalance('assign', [{ topic: 'clicks', partition: 0 }, { topic: 'clicks', partition: 1 }]);
  await until(() => assigned.length === 1, 'the restore under way');
  // Before: ready from the assignment's arrival, none of its partitions readable yet.
  const restoring = "restoring the scale_out state of partitions clicks-0, clicks-1 (none of them is read until it is restored) since 2026-12-06T12:00:00.000Z";
  assert.deepEqual(instance.health!(), { ready: false, detail: restoring });
  skew = 60_000;
  assert.equal(instance.health!().detail, restoring, 'the same reason while it lasts');
  restore();
  await until(() => instance.health!().ready, 'ready once restored');
});

test('a kafka source whose metadata requests fail with the brokers away says so in /readyz, with the cause librdkafka logged', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const prototype = (await rdkafka()).KafkaConsumer.prototype as unknown as Record<string, unknown>;
  let consumer: { emit(event: string, log: unknown): void } | undefined;
  script.swap({
    connect: function (this: { emit(event: string, log: unknown): void }, _options: unknown, cb: (error: null) => void) {
      consumer = this;
      setTimeout(() => cb(null), 5);
    },
  });
  let down = false;
  const answer = prototype.getMetadata as (this: unknown, options: unknown, cb: (error: Error | null, metadata?: unknown) => void) => void;
  script.swap({
    getMetadata: function (this: unknown, options: unknown, cb: (error: Error | null, metadata?: unknown) => void) {
      if (!down) return answer.call(this, options, cb);
      // librdkafka logs why the connection failed, then fails the request. (Logged when the broker stopped
      // instead, the answer to a request sent before could come after it, and clear it: an answer came.)
      setTimeout(() => {
        consumer!.emit('event.log', { fac: 'FAIL', message: '[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)' });
        cb(Object.assign(new Error('Local: Broker transport failure'), { code: -195 }));
      }, 5);
    },
  });
  const config = unreachableConfig(['t']);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, testContext({ batchSize: 100 }));
  t.after(() => instance.close?.());
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => script.consumeCalls() > 0 && instance.health!().ready, 'ready');
  // The broker stops: librdkafka logs why each reconnect fails; its metadata requests fail with "transport failure" alone.
  down = true;
  await until(() => !instance.health!().ready, 'not ready', 10_000);
  // Before: "metadata request failed: Local: Broker transport failure", neither the brokers nor the cause named.
  assert.match(instance.health!().detail ?? '', /^broker unreachable: metadata request failed: Local: Broker transport failure \(127\.0\.0\.1:1\/bootstrap: Connect to ipv4#127\.0\.0\.1:1 failed: Connection refused/);
});

test('scale-out: a revocation whose offset commit fails (the group coordinator gone with the brokers) hands the state over and runs on, warning; it does not stop the pipeline', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const fakes: Record<string, unknown> = {
    committed: (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) =>
      void setTimeout(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: 7 }))), 5),
    // What librdkafka answers while the brokers are away (seen in the chaos soak, bench/kafka-chaos.ts).
    commitSync() {
      throw Object.assign(new Error('Local: Waiting for coordinator'), { code: -180 });
    },
  };
  script.swap(fakes);
  const { warnings, context } = warningsKept();
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
  t.after(() => instance.close?.());
  const revoked: { id: string; offset: number | undefined }[][] = [];
  instance.onPartitions!({ assigned: async () => new Map(), revoked: async (partitions) => void revoked.push([...partitions]) });
  await readOneThenRevoke(instance, script);
  await until(() => revoked.length === 1, 'the partition handed over');
  await until(() => warnings.some((w) => w.message.startsWith('kafka offset commit at revocation failed')), 'the failed commit logged');
  assert.deepEqual(revoked[0], [{ id: 't-0', partition: 0, offset: 8 }], 'its state saved at the offset after its last record');
  // Before: the source failed the pipeline (TRIB_ERR_SOURCE "Local: Waiting for coordinator"), and the
  // daemon exited 1 in a broker outage, which the source otherwise runs through (not ready meanwhile).
  assert.deepEqual(context.failures, []);
});

for (const lost of [true, false]) {
test(`scale-out: a revocation of partitions ${lost ? 'librdkafka takes as lost (the session or max.poll.interval expired) says so and commits nothing' : 'not lost hands them over and commits their offsets'}`, async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const commits: unknown[] = [];
  const fakes: Record<string, unknown> = {
    committed: (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) =>
      void setTimeout(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: 7 }))), 5),
    // librdkafka's answer to a commit of the current assignment: lost, or no offset stored to commit.
    commitSync(offsets: unknown) {
      if (offsets === null || offsets === undefined) throw Object.assign(new Error(lost ? 'Local: Assignment lost' : 'Local: No offset stored'), { code: lost ? -142 : -168 });
      commits.push(offsets);
    },
  };
  script.swap(fakes);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), testContext({ batchSize: 100 }));
  t.after(() => instance.close?.());
  const revoked: PartitionRevocation[][] = [];
  instance.onPartitions!({ assigned: async () => new Map(), revoked: async (partitions) => void revoked.push([...partitions]) });
  await readOneThenRevoke(instance, script);
  await until(() => revoked.length === 1, 'the partition revoked');
  // Lost, the runtime saves no state of it (another member may write its files by now), and no offset is committed.
  assert.deepEqual(revoked[0], [{ id: 't-0', partition: 0, offset: 8, ...(lost ? { lost: true } : {}) }]);
  assert.deepEqual(commits, lost ? [] : [[{ topic: 't', partition: 0, offset: 8 }]]);
});
}

test('a checkpoint\'s offset of a partition the group gave another member at the start is not used when the partition comes here later: it starts at the group\'s committed offset', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const assigned: { topic: string; partition: number; offset?: number }[][] = [];
  const fakes: Record<string, unknown> = {
    assign: (list: { topic: string; partition: number; offset?: number }[]) => void assigned.push(list),
  };
  script.swap(fakes);
  const infos: { fields: unknown; message: string }[] = [];
  const context = testContext({ batchSize: 100 });
  const logged = { ...context, logger: { ...context.logger, info: (fields: unknown, message?: string) => void infos.push({ fields, message: message ?? '' }) } } as typeof context;
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['clicks']), logged);
  t.after(() => instance.close?.());
  // The checkpoint of a run that held both partitions; restarted, this member is given partition 0 only.
  instance.seek!({ offsets: { clicks: { '0': 42, '1': 17 } } });
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => assigned.length === 1, 'the first assignment');
  assert.deepEqual(assigned[0], [{ topic: 'clicks', partition: 0, offset: 42 }], 'its own partition resumes at the checkpoint\'s offset');
  // The other member leaves: the group revokes everything (eager) and gives this member both.
  script.rebalance('revoke', [{ topic: 'clicks', partition: 0 }]);
  script.rebalance('assign', [{ topic: 'clicks', partition: 0 }, { topic: 'clicks', partition: 1 }]);
  await until(() => assigned.length === 2, 'the second assignment');
  // Before: partition 1 went back to offset 17, and everything the other member had read of it since
  // (and committed) was read and written again.
  assert.deepEqual(assigned[1], [{ topic: 'clicks', partition: 0 }, { topic: 'clicks', partition: 1 }], 'both at the group\'s committed offsets');
  const note = infos.find((i) => i.message.startsWith('kafka source: the checkpoint\'s offsets of partitions not assigned here (the group gave them to another member, or their topic was deleted)'));
  assert.ok(note, 'the unused offsets are logged');
  assert.deepEqual(note.fields, { partitions: [{ partition: 'clicks/1', checkpoint: 17 }] });
});

test('records a consume call took before a revocation are dropped when the group gives their partition back before the call\'s answer is handled: the new assignment reads them again, once', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  // librdkafka fetches a partition once it is assigned: the second assignment's records come after it,
  // from the group's committed offset (none: the start).
  let assigns = 0;
  script.swap({
    assign: () => void (++assigns === 2 && script.answers.push(() => records(0, 5), () => records(5, 6))),
  });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t'], { mapping: { attributes: ['seq'] } }), testContext({ batchSize: 100 }));
  t.after(() => instance.close?.());
  const seqs: number[] = [];
  const batches = instance.read()[Symbol.asyncIterator]();
  void (async () => {
    for (let next = await batches.next(); !next.done; next = await batches.next()) for (const event of next.value) seqs.push(Number(event.attrs?.seq));
  })().catch(() => undefined);
  await until(() => script.consumeCalls() > 0, 'the partition assigned');
  script.highOffsets.set('t/0', 100);
  const records = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => {
      const value = Buffer.from(JSON.stringify({ user_id: 'u1', time: new Date(Date.UTC(2024, 4, 1) + (from + i) * 1_000).toISOString(), type: 'view', seq: from + i }));
      return { topic: 't', partition: 0, offset: from + i, value, key: null, size: value.length, timestamp: 0 };
    }) as unknown as [];
  // A consume call takes records 0-4 from librdkafka's queue; while it runs, an eager rebalance revokes
  // the partition and gives it back (their callbacks run before the call's answer is handled).
  script.answers.push(() => {
    script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
    script.rebalance('assign', [{ topic: 't', partition: 0 }]);
    return records(0, 5);
  });
  await until(() => seqs.includes(5), 'record 5 read');
  // Before: 0-4 twice, the first time from the assignment revoked (the check that drops a revoked
  // partition's records found it assigned again).
  assert.deepEqual(seqs, [0, 1, 2, 3, 4, 5]);
});

test('a key_field named as an Object.prototype member (constructor) is filled from the message key where the record has no such field of its own; one it has stays', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const config = unreachableConfig(['t'], { key_field: 'constructor', mapping: { fields: { user_id: 'constructor' } } });
  const context = testContext({ batchSize: 100 });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  t.after(() => instance.close?.());
  const batch = instance.read()[Symbol.asyncIterator]().next();
  await until(() => script.consumeCalls() > 0, 'the partition assigned');
  script.highOffsets.set('t/0', 2);
  const message = (offset: number, record: object, key: string) => {
    const value = Buffer.from(JSON.stringify(record));
    return { topic: 't', partition: 0, offset, value, key: Buffer.from(key), size: value.length, timestamp: 0 };
  };
  const time = '2024-05-01T00:00:00Z';
  script.answers.push(() => [message(0, { time, type: 'view' }, 'u1'), message(1, { constructor: 'u2', time, type: 'view' }, 'k')] as unknown as []);
  const { value: events } = await batch;
  assert.deepEqual([(events as ClickEvent[]).map((e) => e.userId), context.deadLetters], [['u1', 'u2'], []]);
});

test("a record the mapping rejects is dead-lettered with the event type it names (event_types mapped), so that the runtime can tell an erasure request without a user id for one; one naming no type has none", async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const config = unreachableConfig(['t'], { mapping: { event_types: { forget_me: 'erase' } } });
  const context = testContext({ batchSize: 100 });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  t.after(() => instance.close?.());
  const batch = instance.read()[Symbol.asyncIterator]().next();
  await until(() => script.consumeCalls() > 0, 'the partition assigned');
  script.highOffsets.set('t/0', 3);
  const message = (offset: number, record: object) => {
    const value = Buffer.from(JSON.stringify(record));
    return { topic: 't', partition: 0, offset, value, size: value.length, timestamp: 0 };
  };
  const time = '2024-05-01T00:00:00Z';
  script.answers.push(() => [message(0, { time, type: 'forget_me' }), message(1, { time }), message(2, { user_id: 'u1', time, type: 'view' })] as unknown as []);
  const { value: events } = await batch;
  assert.deepEqual((events as ClickEvent[]).map((e) => e.userId), ['u1']);
  assert.deepEqual(
    context.deadLetters.map(({ reason, eventType }) => ({ reason, eventType })),
    [
      { reason: 'user_id: missing user id', eventType: 'erase' },
      { reason: 'user_id: missing user id', eventType: undefined },
    ],
  );
});

test('a dotted key_field (user.id) is filled from the message key only where the value has no such field, whole or nested, as the mapping reads it', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const config = unreachableConfig(['t'], { key_field: 'user.id', mapping: { fields: { user_id: 'user.id' } } });
  const context = testContext({ batchSize: 100 });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  t.after(() => instance.close?.());
  const batch = instance.read()[Symbol.asyncIterator]().next();
  await until(() => script.consumeCalls() > 0, 'the partition assigned');
  script.highOffsets.set('t/0', 4);
  const message = (offset: number, record: object, key: string) => {
    const value = Buffer.from(JSON.stringify(record));
    return { topic: 't', partition: 0, offset, value, key: Buffer.from(key), size: value.length, timestamp: 0 };
  };
  const time = '2024-05-01T00:00:00Z';
  script.answers.push(
    () =>
      [
        // The value's own nested user id stays (before: the key, set as field `user.id`, which the mapping reads first).
        message(0, { user: { id: 'u7' }, time, type: 'view' }, 'k0'),
        // So does a field of the whole dotted name.
        message(1, { 'user.id': 'u8', time, type: 'view' }, 'k1'),
        // No such field: the key, as the field `user.id` (an object `user` without `id` is left as it is).
        message(2, { user: { name: 'Ann' }, time, type: 'view' }, 'u1'),
        message(3, { time, type: 'view' }, 'u2'),
      ] as unknown as [],
  );
  const { value: events } = await batch;
  assert.deepEqual([(events as ClickEvent[]).map((e) => e.userId), context.deadLetters], [['u7', 'u8', 'u1', 'u2'], []]);
});

test('scale-out: idlePartitions names an assigned partition with no event for idle_timeout and nothing to read; one with records to read is not, nor one whose record was just read', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  // librdkafka's position of t/0, which the test moves (the scripted one is always at the partition's end).
  let position = 30;
  const positionOf = (list: { topic: string; partition: number }[]) => list.map(({ topic, partition }) => ({ topic, partition, offset: position }));
  script.swap({ position: positionOf });
  let now = Date.UTC(2024, 4, 1);
  const context = testContext({ batchSize: 100, clock: { now: () => now }, watermark: { maxOutOfOrderness: 0, idleTimeout: 60_000 } });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
  t.after(() => instance.close?.());
  instance.onPartitions!({ assigned: async () => new Map(), revoked: async () => undefined });
  const batches = instance.read()[Symbol.asyncIterator]();
  const first = batches.next();
  first.catch(() => undefined);
  // Assigned, read to its end (30): its idle clock starts at the fetch answer.
  script.highOffsets.set('t/0', 30);
  await until(() => script.consumeCalls() > 0 && instance.partitionWatermarks!().size === 1, 'the partition assigned');
  // A consume turn begun before the assignment knows no position of it (so it has records to read, until
  // the turn ends): one begun after does. A turn makes more than one consume call, so the next call after
  // the assignment may still be the earlier turn's (a loaded machine: this test failed so, 10 runs in 120);
  // the source's snapshot of librdkafka's positions, taken as a turn begins, says which.
  const positionsBeforeConsume = () => (instance as unknown as { positionsBeforeConsume?: Map<string, number | undefined> }).positionsBeforeConsume;
  await until(() => positionsBeforeConsume()?.size === 1, 'a consume turn begun after the assignment');
  assert.deepEqual([...instance.idlePartitions!()], [], 'not idle as its clock starts');
  now += 60_000;
  assert.deepEqual([...instance.idlePartitions!()], ['t-0'], 'idle after idle_timeout with nothing to read');
  // Its end moves past its position: records to read, however long since its last event.
  script.highOffsets.set('t/0', 31);
  assert.deepEqual([...instance.idlePartitions!()], [], 'not idle with a record to read');
  // The record read: an event just now.
  const value = Buffer.from(JSON.stringify({ user_id: 'u1', time: '2024-05-01T00:00:00Z', type: 'view' }));
  script.answers.push(() => [{ topic: 't', partition: 0, offset: 30, value, key: null, size: value.length, timestamp: 0 }] as unknown as []);
  position = 31;
  assert.equal((await first).value?.length, 1);
  assert.deepEqual([...instance.idlePartitions!()], [], 'not idle just after its event');
  now += 60_000;
  assert.deepEqual([...instance.idlePartitions!()], ['t-0'], 'idle again idle_timeout after it');
});

/** What a kafka source keeps by partition (private fields: their sizes are what the test bounds). */
interface KafkaSourceEntries {
  partitions: Map<string, { id: string; assigned: boolean; revokedAt?: number }>;
  knownCommitted: Map<string, number>;
  knownMarks: Map<string, string[]>;
}

/** Reads `instance` to its end in the background (what is read is not looked at), once its consume loop runs. */
async function readInBackground(instance: Source, script: { consumeCalls(): number }): Promise<void> {
  const batches = instance.read()[Symbol.asyncIterator]();
  void (async () => {
    for (let next = await batches.next(); !next.done; next = await batches.next());
  })().catch(() => undefined);
  await until(() => script.consumeCalls() > 0, 'the consume loop running');
}

test('start_from latest: a topic the source sees deleted while it runs, then created again, has each partition assigned again read from its log\'s start (the group holds no offset of it), said at info', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const assigned: unknown[] = [];
  script.swap({ assign: (list: unknown) => void assigned.push(list) });
  const infos: string[] = [];
  const context = testContext({ batchSize: 100 });
  const logged = { ...context, logger: { ...context.logger, info: (_fields: unknown, message?: string) => void infos.push(message ?? '') } } as typeof context;
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t'], { start_from: 'latest' }), logged);
  t.after(() => instance.close?.());
  void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
  await until(() => assigned.length === 1, 'the first assignment');
  assert.deepEqual(assigned[0], [{ topic: 't', partition: 0 }], 'at start_from, the group holding no offset of it');
  script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
  script.deletedTopics.add('t');
  // The source's metadata looks (every 2 s) find it gone.
  await until(() => instance.position!().partitions !== undefined && (instance.position!().partitions as Record<string, number>)['t'] === 0, 'the deletion seen');
  script.deletedTopics.delete('t');
  script.rebalance('assign', [{ topic: 't', partition: 0 }]);
  await until(() => assigned.length === 2, 'the assignment of the topic created again');
  // Before: at start_from (latest), its records written before the assignment skipped.
  assert.deepEqual(assigned[1], [{ topic: 't', partition: 0, offset: -2 }]);
  assert.ok(infos.some((message) => message.includes('t/0 read from their start')), infos.join('\n'));
});

for (const lost of [true, false]) {
  test(`at-least-once: a checkpoint's commit after ${lost ? 'the member was expelled from its group (librdkafka takes the assignment as lost), before the revocation that says so, commits nothing and says why' : 'no expulsion commits the offsets'}`, async (t) => {
    const script = await scriptedConsumer();
    t.after(script.restore);
    const commits: unknown[] = [];
    script.swap({
      // librdkafka's answer to a commit of the current assignment: lost, or no offset stored to commit.
      commitSync(offsets: unknown) {
        if (offsets === null || offsets === undefined) throw Object.assign(new Error(lost ? 'Local: Assignment lost' : 'Local: No offset stored'), { code: lost ? -142 : -168 });
      },
      commit: (offsets: unknown) => void commits.push(offsets),
    });
    const { warnings, context } = warningsKept();
    const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
    t.after(() => instance.close?.());
    await startReading(instance, script);
    await readOneRecord(instance, script);
    // A stall past max.poll.interval.ms ended; the checkpoint comes before the revocation is handled.
    await instance.commit!(instance.position!());
    // Before: committed, under the member the group gave the partition to.
    assert.deepEqual(commits, lost ? [] : [[{ topic: 't', partition: 0, offset: 8 }]]);
    const said = warnings.filter((w) => w.message.startsWith('kafka source: this member lost its partitions'));
    assert.equal(said.length, lost ? 1 : 0);
    if (lost) assert.deepEqual((said[0]!.fields as { partitions: string[] }).partitions, ['t/0']);
    // What a scale_out checkpoint asks before it writes the partitions' state files (none when lost).
    assert.equal(instance.partitionsLost!(), lost);
  });
}

for (const revoked of [true, false]) {
  test(`exactly-once: a checkpoint taken before a stall past the group session commits nothing when its commit comes ${revoked ? 'after the revocation that says the partitions were lost' : 'before the revocation is handled (librdkafka takes the assignment as lost)'}: the open transaction, which holds outputs of their records, is abandoned, handed over`, async (t) => {
    const script = await scriptedConsumer();
    t.after(script.restore);
    let lost = false;
    let unassigned = 0;
    script.swap({
      // librdkafka's answer to a commit of the current assignment: lost, or no offset stored to commit.
      commitSync(offsets: unknown) {
        if (offsets === null || offsets === undefined) throw Object.assign(new Error(lost ? 'Local: Assignment lost' : 'Local: No offset stored'), { code: lost ? -142 : -168 });
      },
      // The unassign after a lost revocation clears librdkafka's lost flag.
      unassign: () => void ((lost = false), unassigned++),
    });
    const { sent, abandoned, shared } = standInTransactions();
    let instance: Source | undefined;
    // A revocation's checkpoint (not lost): the runtime's commit of the position at its instant.
    const commitNow = async (): Promise<void> => instance!.commit!(instance!.position!());
    instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t'], { guarantee: 'exactly-once' }), testContext({ batchSize: 100, shared, commitNow }));
    t.after(() => instance.close?.());
    await startReading(instance!, script);
    await readOneRecord(instance!, script);
    // The checkpoint's instant (the open transaction holds the record's outputs); the sources are held
    // while it writes its file, and the stall comes meanwhile: the group expels the member.
    const position = instance.position!();
    lost = true;
    if (revoked) {
      script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
      await until(() => unassigned > 0, 'the lost partition let go');
    }
    await instance.commit!(position);
    // Before: revoked, the commit named no offset (the partition gone) and committed the transaction,
    // outputs without their input's offsets, which the restart read again (758 duplicates); not yet
    // revoked, it sent the offsets with the group metadata librdkafka has after the expulsion.
    assert.deepEqual(sent, [], 'no transaction committed');
    assert.ok(abandoned.length >= 1, 'the open transaction abandoned');
    assert.ok(inputHandedOver(abandoned[0]), String(abandoned[0]));
    assert.match(abandoned[0]!.message, /^this member lost its partitions \(t\/0\)/);
  });
}

for (const lost of [true, false]) {
  test(`exactly-once scale_out: a revocation of partitions ${lost ? 'librdkafka takes as lost (a stall past the group session) commits none of their offsets: the open transaction, which holds outputs of their records, is abandoned, handed over, and their state is not saved' : 'not lost seals the open transaction with their offsets and the marks of their state files'}`, async (t) => {
    const script = await scriptedConsumer();
    t.after(script.restore);
    script.swap({
      committed: (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) =>
        void setTimeout(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: 7 }))), 5),
      // librdkafka's answer to a commit of the current assignment: lost, or no offset stored to commit.
      commitSync(offsets: unknown) {
        if (offsets === null || offsets === undefined) throw Object.assign(new Error(lost ? 'Local: Assignment lost' : 'Local: No offset stored'), { code: lost ? -142 : -168 });
      },
    });
    const { sent, abandoned, shared } = standInTransactions();
    const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t'], { guarantee: 'exactly-once' }), testContext({ batchSize: 100, shared }));
    t.after(() => instance.close?.());
    const revoked: PartitionRevocation[][] = [];
    // The runtime's side (scale_out): it saves the state of those not lost, then seals the transaction while it holds the sources.
    instance.onPartitions!({ assigned: async () => new Map(), revoked: async (partitions, whileHeld) => void (revoked.push([...partitions]), whileHeld?.(new Map([['t-0', '3-abcdef']]))) });
    await readOneThenRevoke(instance, script);
    await until(() => revoked.length === 1, 'the partition revoked');
    assert.deepEqual(revoked[0], [{ id: 't-0', partition: 0, offset: 8, ...(lost ? { lost: true } : {}) }]);
    if (lost) {
      // Before: sealed with t/0's offset 8, sent with the group identity librdkafka had after the expulsion
      // (reset, a transactional commit of it is one the brokers take: KIP-447 fences by that identity), while
      // the member that took t/0 read it on from the group's older committed offset: its records written twice.
      assert.deepEqual(sent, [], 'no offset of a lost partition sent');
      assert.equal(abandoned.length, 1, 'the open transaction abandoned');
      assert.ok(inputHandedOver(abandoned[0]), String(abandoned[0]));
      assert.match(abandoned[0]!.message, /^this member lost its partitions \(t\/0\)/);
    } else {
      assert.deepEqual(sent, [[{ topic: 't', partition: 0, offset: 8 }]]);
      assert.deepEqual(abandoned, []);
    }
  });
}

test('exactly-once scale_out with several sources: the revocation of an assignment given up before its partitions were read (the other sources\' parts had not come) commits none of their offsets, not the offset its previous assignment here was restored at, which moved the group back', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  script.swap({
    committed: (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) =>
      void setTimeout(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: 7 }))), 5),
    commitSync(offsets: unknown) {
      if (offsets === null || offsets === undefined) throw Object.assign(new Error('Local: No offset stored'), { code: -168 });
    },
    pause: () => undefined,
    resume: () => undefined,
  });
  const { sent, shared } = standInTransactions();
  // scaleOutMember: the runtime's name for this member where scale_out has several sources (co-partitioned).
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t'], { guarantee: 'exactly-once' }), testContext({ batchSize: 100, shared, scaleOutMember: 'b' }));
  t.after(() => instance.close?.());
  let assignments = 0;
  let revocations = 0;
  let giveUp: ((starts: ReadonlyMap<string, number>) => void) | undefined;
  instance.onPartitions!({
    // The first assignment: restored at the group's committed offset (7). The second waits for the other
    // source's partition 0, which the next rebalance takes back before it comes (abandoned).
    assigned: (partitions) =>
      ++assignments === 1 ? Promise.resolve(new Map(partitions.map((partition) => [partition.id, 7]))) : new Promise((resolve) => void (giveUp = resolve)),
    revoked: async (_partitions, whileHeld) => {
      revocations++;
      whileHeld?.(new Map([['t-0', '3-abcdef']]));
    },
    abandoned: () => giveUp?.(new Map()),
  });
  // Read from 7 to 8 and handed over at 8; the member that takes it reads on, and the group's offset moves past 8.
  await readOneThenRevoke(instance, script);
  await until(() => revocations === 1 && sent.length === 1, 'the hand-over committed');
  script.rebalance('assign', [{ topic: 't', partition: 0 }]);
  await until(() => giveUp !== undefined, 'the assignment waiting for the other sources\' parts');
  script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
  await until(() => revocations === 2, 'the given-up assignment revoked');
  // Before: the second revocation sent t/0 at 7 (where the first assignment was restored, before its record
  // was read), moving the group's committed offset back under the member that read on: it restored no file
  // at that offset (pruned) and read those records again into empty state, its outputs written twice.
  assert.deepEqual(sent, [[{ topic: 't', partition: 0, offset: 8 }]], 'only the first assignment\'s hand-over commits an offset');
  // And the position still names it where its state stood when it left (8), for covers() to judge by, not at 7.
  assert.deepEqual(instance.position!().offsets, { t: { '0': 8 } });
});

test('a long run of rebalances over ever new partitions (a topic pattern whose topics come and go) keeps entries only for the partitions held and those whose hand-over commit the brokers refused, and no lag series of a partition gone', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  let assigns = 0;
  let refuse = false;
  script.swap({
    assign: () => void assigns++,
    commitSync: () => {
      if (refuse) throw Object.assign(new Error('Broker: Not coordinator'), { code: 16 });
    },
  });
  const hub = new MetricsHub();
  // The runtime's checkpoint on request: the hand-over's commit is the source's own (commitSync).
  const context = testContext({ batchSize: 100, commitNow: async () => undefined, metrics: hub.scoped({ pipeline: 'test', stage: 'source' }) });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t0']), context);
  t.after(() => instance.close?.());
  const entries = instance as unknown as KafkaSourceEntries;
  await readInBackground(instance, script);
  const value = Buffer.from(JSON.stringify({ user_id: 'u1', time: '2024-05-01T00:00:00Z', type: 'view' }));
  const offsetOf = (topic: string): number | undefined => (instance.position!().offsets as Record<string, Record<string, number>> | undefined)?.[topic]?.['0'];
  const lagSeries = async (): Promise<string[]> => (await hub.registry.metrics()).split('\n').filter((line) => line.startsWith('tributary_kafka_partition_lag{') || line.startsWith('kafka_partition_lag{'));
  const cycles = 60;
  for (let i = 0; i <= cycles; i++) {
    const topic = `t${i}`;
    script.rebalance('assign', [{ topic, partition: 0 }]);
    await until(() => assigns === i + 1, `assignment ${i}`);
    if (i === cycles) break;
    script.highOffsets.set(`${topic}/0`, 8);
    script.answers.push(() => [{ topic, partition: 0, offset: 7, value, key: null, size: value.length, timestamp: 0 }] as unknown as []);
    await until(() => offsetOf(topic) === 8, `the record of ${topic} read`);
    // The first partition's lag series, once exported (every 2 s), is looked for after it is gone.
    if (i === 0) await until(async () => (await lagSeries()).some((line) => line.includes('topic="t0"')), 'the lag series of t0');
    // One hand-over commit the brokers refuse (an outage): that partition's offset is still needed.
    refuse = i === 10;
    script.rebalance('revoke', [{ topic, partition: 0 }]);
    await until(() => entries.partitions.get(`${topic}\u0000${0}`)?.revokedAt === 8, `${topic} revoked`);
  }
  // Before: an entry for each of the 61 partitions, and a committed offset for each of the 60 read. (One
  // taken away during the consume round the last assignment came in goes at that round's end.)
  await until(() => entries.partitions.size <= 2, 'the revoked partitions forgotten');
  assert.deepEqual([...entries.partitions.values()].map((state) => state.id).sort(), ['t10-0', `t${cycles}-0`]);
  assert.ok(entries.knownCommitted.size <= 2, `committed offsets kept: ${entries.knownCommitted.size}`);
  assert.ok(entries.knownMarks.size <= 2, `marks kept: ${entries.knownMarks.size}`);
  // The refused one stays named where its state stands, as a restart must start it (not at the older committed offset).
  assert.equal(offsetOf('t10'), 8);
  await until(async () => (await lagSeries()).every((line) => line.includes(`topic="t${cycles}"`)), 'only the assigned partition\'s lag series');
});

test('a revoked partition whose hand-over commit the brokers refused is forgotten once the brokers no longer list its topic (deleted): no checkpoint names it after that', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  let assigns = 0;
  script.swap({
    assign: () => void assigns++,
    // The brokers refuse a deleted topic's offsets.
    commitSync: () => {
      throw Object.assign(new Error('Broker: Unknown topic or partition'), { code: 3 });
    },
  });
  const context = testContext({ batchSize: 100, commitNow: async () => undefined });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
  t.after(() => instance.close?.());
  const entries = instance as unknown as KafkaSourceEntries;
  await readInBackground(instance, script);
  script.rebalance('assign', [{ topic: 'gone', partition: 0 }]);
  await until(() => assigns === 1, 'the assignment');
  await readOneRecord(instance, script, 'gone');
  const offsets = () => instance.position!().offsets as Record<string, Record<string, number>> | undefined;
  // The topic deleted: the group's rebalance takes its partition away (kept while its topic is listed, as
  // the test of 60 rebalances shows: its hand-over commit was refused).
  script.deletedTopics.add('gone');
  script.rebalance('revoke', [{ topic: 'gone', partition: 0 }]);
  script.rebalance('assign', []);
  await until(() => assigns === 2, 'the empty assignment');
  // Before: kept for the rest of the run, named by every checkpoint.
  await until(() => entries.partitions.size === 0, 'the partition of the deleted topic forgotten');
  assert.equal(offsets()?.['gone'], undefined);
});

test('a revoked partition whose hand-over commit the brokers refused is forgotten once the group holds it committed at or past where the state stands (another member read on and committed), not while the group\'s offset is older', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  let assigns = 0;
  // The group's committed offset of moved/0 as the brokers answer it (-1001: none).
  let groupOffset = -1001;
  const answered: number[] = [];
  script.swap({
    assign: () => void assigns++,
    commitSync: () => {
      throw Object.assign(new Error('Broker: Not coordinator'), { code: 16 });
    },
    committed: (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) => {
      setTimeout(() => {
        if (list.some(({ topic }) => topic === 'moved')) answered.push(groupOffset);
        cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: topic === 'moved' ? groupOffset : -1001 })));
      }, 5);
    },
  });
  const context = testContext({ batchSize: 100, commitNow: async () => undefined });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
  t.after(() => instance.close?.());
  const entries = instance as unknown as KafkaSourceEntries;
  await readInBackground(instance, script);
  script.rebalance('assign', [{ topic: 'moved', partition: 0 }]);
  await until(() => assigns === 1, 'the assignment');
  await readOneRecord(instance, script, 'moved');
  const offsets = () => instance.position!().offsets as Record<string, Record<string, number>> | undefined;
  // Its hand-over commit refused (an outage), the group gives it to another member, which starts at the older offset.
  script.rebalance('revoke', [{ topic: 'moved', partition: 0 }]);
  script.rebalance('assign', []);
  await until(() => assigns === 2, 'the empty assignment');
  // The other member committed, short of where this state stands: still kept and named.
  groupOffset = 5;
  await until(() => answered.includes(5), 'the group\'s committed offset answered');
  // (Its answer handled in the same turn as the fake's callback, before until looks again.)
  assert.equal(offsets()?.['moved']?.['0'], 8, 'named while the group\'s offset is older');
  // Then past it. (Another assignment that leaves it out makes the next look come soon, not in 30 s.)
  groupOffset = 12;
  script.rebalance('assign', []);
  // Before: kept for the rest of the run, named by every checkpoint.
  await until(() => entries.partitions.size === 0, 'the partition forgotten');
  assert.equal(offsets()?.['moved'], undefined);
  assert.equal(entries.knownCommitted.size, 0);
});

for (const groupOffset of [12, 5]) {
  test(`a partition whose hand-over commit the brokers refused, assigned here again after missed assignments (this member out of the group), starts ${groupOffset === 12 ? 'at the group\'s committed offset where another member read on and committed past it meanwhile, not at the kept offset (its records read again)' : 'at the kept offset where the group\'s committed offset is still behind it (where its state stands)'}`, async (t) => {
    const script = await scriptedConsumer({ assignAtSubscribe: false });
    t.after(script.restore);
    const assigned: { topic: string; partition: number; offset?: number }[][] = [];
    let group = -1001;
    script.swap({
      assign: (list: { topic: string; partition: number; offset?: number }[]) => void assigned.push(list),
      commitSync: (offsets: unknown) => {
        // The hand-over's commit refused (the coordinator unreachable); the no-offsets question of assignmentLost answered "not lost".
        if (offsets === null || offsets === undefined) throw Object.assign(new Error('Local: No offset stored'), { code: -168 });
        throw Object.assign(new Error('Local: Waiting for coordinator'), { code: -180 });
      },
      committed: (list: { topic: string; partition: number }[], _timeout: number, cb: (error: null, offsets: unknown[]) => void) =>
        void setTimeout(() => cb(null, list.map(({ topic, partition }) => ({ topic, partition, offset: group }))), 5),
    });
    const infos: string[] = [];
    const context = testContext({ batchSize: 100, commitNow: async () => undefined });
    const logged = { ...context, logger: { ...context.logger, info: (_fields: unknown, message?: string) => void infos.push(message ?? '') } } as typeof context;
    const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), logged);
    t.after(() => instance.close?.());
    await readInBackground(instance, script);
    script.rebalance('assign', [{ topic: 't', partition: 0 }]);
    await until(() => assigned.length === 1, 'the assignment');
    await readOneRecord(instance, script);
    script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
    await until(() => infos.includes('kafka partitions revoked, their offsets not committed'), 'the hand-over, its commit refused');
    // Out of the group meanwhile (no assignment here), another member read t/0 from the group's offset and committed.
    group = groupOffset;
    script.rebalance('assign', [{ topic: 't', partition: 0 }]);
    await until(() => assigned.length === 2, 'assigned here again');
    // Before: at 8 either way, and with the group at 12, records 8-11 (the other member's) read a second time.
    assert.deepEqual(assigned[1], groupOffset === 12 ? [{ topic: 't', partition: 0 }] : [{ topic: 't', partition: 0, offset: 8 }]);
    assert.equal(infos.some((message) => message.includes('read on and committed by another member since (t/0 at 12, kept at 8)')), groupOffset === 12);
  });
}

test('a kafka source yields at most batchSize events a batch however many records it holds (one event per record, batchSize records taken at most): the runtime\'s in-flight bound holds', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), testContext({ batchSize: 3 }));
  t.after(() => instance.close?.());
  const batches = instance.read()[Symbol.asyncIterator]();
  const sizes: number[] = [];
  const reading = (async () => {
    let events = 0;
    while (events < 10) {
      const next = await batches.next();
      if (next.done) break;
      sizes.push(next.value.length);
      events += next.value.length;
    }
  })();
  await until(() => script.consumeCalls() > 0, 'the partition assigned');
  // One answer of 10 records, more than asked for (as an unreadable batch's stand-ins come into the buffer at once).
  script.highOffsets.set('t/0', 10);
  script.answers.push(() =>
    Array.from({ length: 10 }, (_, offset) => {
      const value = Buffer.from(JSON.stringify({ user_id: `u${offset}`, time: '2024-05-01T00:00:00Z', type: 'view' }));
      return { topic: 't', partition: 0, offset, value, key: null, size: value.length, timestamp: 0 };
    }) as unknown as [],
  );
  await reading;
  assert.deepEqual(sizes.filter((size) => size > 0), [3, 3, 3, 1]);
});

test('a kafka source tells the stages, once, that its times carry an offset of their own (+01:00), as the file source does: session-features warns of UTC hours', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const shared = new Map<string, unknown>();
  const heard: { offsetMinutes: number; source: string }[] = [];
  onTimeOffset(shared, (offsetMinutes, source) => void heard.push({ offsetMinutes, source }));
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), testContext({ batchSize: 10, shared, label: 'clicks' }));
  t.after(() => instance.close?.());
  const batches = instance.read()[Symbol.asyncIterator]();
  const reading = (async () => {
    let events = 0;
    while (events < 2) {
      const next = await batches.next();
      if (next.done) break;
      events += next.value.length;
    }
  })();
  await until(() => script.consumeCalls() > 0, 'the partition assigned');
  script.highOffsets.set('t/0', 2);
  script.answers.push(() =>
    ['2024-05-01T10:00:00+01:00', '2024-05-01T11:00:00+02:00'].map((time, offset) => {
      const value = Buffer.from(JSON.stringify({ user_id: 'u1', time, type: 'view' }));
      return { topic: 't', partition: 0, offset, value, key: null, size: value.length, timestamp: 0 };
    }) as unknown as [],
  );
  await reading;
  assert.deepEqual(heard, [{ offsetMinutes: 60, source: 'clicks' }], 'the first offset, once');
});

test('start_from latest: a partition added to its topic under a running source, none of its records read yet, counts its lag and its stall from its log\'s start (where it is read from), not from its end', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  const assigned: { topic: string; partition: number; offset?: number }[][] = [];
  // t/1, added: 10 records, none delivered (librdkafka has no position of it); t/0 read to its end (30).
  const logs: Record<string, { lowOffset: number; highOffset: number }> = { 't/0': { lowOffset: 0, highOffset: 30 }, 't/1': { lowOffset: 0, highOffset: 10 } };
  script.highOffsets.set('t/0', 30);
  script.highOffsets.set('t/1', 10);
  script.swap({
    assign: (list: { topic: string; partition: number; offset?: number }[]) => void assigned.push(list),
    position: (list: { topic: string; partition: number }[]) => list.map(({ topic, partition }) => ({ topic, partition, offset: partition === 0 ? 30 : -1001 })),
    queryWatermarkOffsets: (topic: string, partition: number, _timeout: number, cb: (error: null, offsets: { lowOffset: number; highOffset: number }) => void) => void setTimeout(() => cb(null, logs[`${topic}/${partition}`]!), 5),
  });
  let now = Date.UTC(2024, 4, 1);
  const hub = new MetricsHub();
  const context = testContext({ batchSize: 100, clock: { now: () => now }, metrics: hub.scoped({ pipeline: 'test', stage: 'source' }) });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t'], { start_from: 'latest' }), context);
  t.after(() => instance.close?.());
  // The checkpoint the source restarted from: t/0 at its end, and t had 1 partition then.
  instance.seek!({ offsets: { t: { '0': 30 } }, partitions: { t: 1 } });
  await readInBackground(instance, script);
  script.rebalance('assign', [{ topic: 't', partition: 0 }, { topic: 't', partition: 1 }]);
  await until(() => assigned.length === 1, 'the assignment');
  assert.deepEqual(assigned[0], [{ topic: 't', partition: 0, offset: 30 }, { topic: 't', partition: 1, offset: -2 }], 't/1 read from its start');
  const lagOf = async (partition: number): Promise<number | undefined> => {
    const line = (await hub.registry.metrics()).split('\n').find((l) => /^(tributary_)?kafka_partition_lag\{/.test(l) && l.includes(`partition="${partition}"`));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };
  const total = async (): Promise<number | undefined> => {
    const line = (await hub.registry.metrics()).split('\n').find((l) => /^(tributary_)?kafka_consumer_lag(\{| )/.test(l));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };
  // The lag is exported every 2 s of the source's clock; t/1's start is looked up for the export after the first.
  await until(async () => {
    now += 2_100;
    return (await lagOf(1)) !== undefined;
  }, 't/1\'s lag exported');
  // Before: 0, counted from its end (start_from latest's start), though its 10 records are still to be read.
  assert.equal(await lagOf(1), 10, 't/1: its 10 records from its log\'s start');
  assert.equal(await lagOf(0), 0);
  assert.equal(await total(), 10);
  // Its records never come (librdkafka stuck at a batch it cannot read, at offset 0): a stall, from offset 0.
  // Before: judged from its end (10), the high watermark, as if nothing were left to read, never a stall.
  await until(() => {
    now += 2_100;
    return /partition 1: librdkafka delivers no record from offset 0 on, .* the brokers hold records up to 9/.test(instance.health!().detail ?? '');
  }, 't/1 found stalled at its start', 15_000);
});

test('the consumer lag has no sample while no partition is assigned (before the first assignment, after a revocation of all): a 0 would tell an alert "caught up"; the assigned partitions say 0', async (t) => {
  const script = await scriptedConsumer({ assignAtSubscribe: false });
  t.after(script.restore);
  script.highOffsets.set('t/0', 30);
  script.swap({
    // t/0 read to 20 of its 30: a lag of 10.
    position: (list: { topic: string; partition: number }[]) => list.map(({ topic, partition }) => ({ topic, partition, offset: 20 })),
    // librdkafka's answer to a commit of the current assignment (assignmentLost): no offset stored, nothing lost.
    commitSync(offsets: unknown) {
      if (offsets === null || offsets === undefined) throw Object.assign(new Error('Local: No offset stored'), { code: -168 });
    },
  });
  let now = Date.UTC(2024, 4, 1);
  const hub = new MetricsHub();
  const context = testContext({ batchSize: 100, clock: { now: () => now }, metrics: hub.scoped({ pipeline: 'test', stage: 'source' }) });
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
  t.after(() => instance.close?.());
  const sample = async (name: string): Promise<number | undefined> => {
    const line = (await hub.registry.metrics()).split('\n').find((l) => new RegExp(`^tributary_${name}(\\{| )`).test(l));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };
  /** Moves the source's clock past the 2 s between exports until `condition` holds. */
  const exported = (what: string, condition: () => Promise<boolean>) =>
    until(async () => {
      now += 2_100;
      return condition();
    }, what);
  await readInBackground(instance, script);
  await exported('no partition assigned, exported', async () => (await sample('kafka_assigned_partitions')) === 0);
  // Before: 0 from the first export on, as if every record were through.
  assert.equal(await sample('kafka_consumer_lag'), undefined, 'no lag sample before the first assignment');
  script.rebalance('assign', [{ topic: 't', partition: 0 }]);
  await exported('the lag of t/0 exported', async () => (await sample('kafka_consumer_lag')) === 10);
  assert.equal(await sample('kafka_assigned_partitions'), 1);
  script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
  await exported('the revocation exported', async () => (await sample('kafka_assigned_partitions')) === 0);
  assert.equal(await sample('kafka_consumer_lag'), undefined, 'no lag sample once no partition is assigned: the series goes stale');
});

test('at-least-once: the commits in flight when the group expels the member, all refused with one error, are one warning naming the partitions, not one each', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  let consumer: { globalConfig: { offset_commit_cb: (error: number, offsets: unknown[]) => void } } | undefined;
  const sent: { topic: string; partition: number; offset: number }[][] = [];
  script.swap({
    // librdkafka's answer to a commit of the current assignment (assignmentLost): no offset stored, nothing lost yet.
    commitSync(offsets: unknown) {
      if (offsets === null || offsets === undefined) throw Object.assign(new Error('Local: No offset stored'), { code: -168 });
    },
    commit(this: NonNullable<typeof consumer>, offsets: { topic: string; partition: number; offset: number }[]) {
      consumer = this;
      sent.push(offsets);
    },
  });
  const { warnings, context } = warningsKept();
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
  t.after(() => instance.close?.());
  await startReading(instance, script);
  await readOneRecord(instance, script);
  for (let i = 0; i < 9; i++) await instance.commit!(instance.position!());
  assert.ok(sent.length > 0, 'committed');
  // The brokers answer every commit in flight at once: the member is no longer in the group (librdkafka's error code 25).
  for (let i = 0; i < 9; i++) consumer!.globalConfig.offset_commit_cb(25, [{ topic: 't', partition: 0, offset: 8 }]);
  const said = warnings.filter((w) => w.message.startsWith('kafka offset commit failed'));
  // Before: nine, one per commit, each naming no partition.
  assert.equal(said.length, 1, said.map((w) => JSON.stringify(w.fields)).join('\n'));
  assert.deepEqual((said[0]!.fields as { partitions: string[] }).partitions, ['t/0']);
  assert.match((said[0]!.fields as { err: string }).err, /Unknown member/);
});

test('a warning is per episode, not per process: a commit refused again after one succeeded, and an expulsion again after the group assigned partitions, are warned of again; repeats within an episode are not', async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  let consumer: { globalConfig: { offset_commit_cb: (error: number | null, offsets: unknown[]) => void }; emit(event: 'event.error', error: Error): boolean } | undefined;
  script.swap({
    commitSync(offsets: unknown) {
      if (offsets === null || offsets === undefined) throw Object.assign(new Error('Local: No offset stored'), { code: -168 });
    },
    commit(this: NonNullable<typeof consumer>) {
      consumer = this;
    },
  });
  const { warnings, context } = warningsKept();
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['t']), context);
  t.after(() => instance.close?.());
  await startReading(instance, script);
  await readOneRecord(instance, script);
  await instance.commit!(instance.position!());
  const refusals = () => warnings.filter((w) => w.message.startsWith('kafka offset commit failed')).length;
  const refuse = () => consumer!.globalConfig.offset_commit_cb(25, [{ topic: 't', partition: 0, offset: 8 }]);
  refuse();
  refuse();
  assert.equal(refusals(), 1, 'one refusal episode: one warning');
  // A commit the brokers took: the refusal is over (no outage between, no reconnect).
  consumer!.globalConfig.offset_commit_cb(null, [{ topic: 't', partition: 0, offset: 8 }]);
  refuse();
  // Before: the second refusal, days later, was logged at debug level only.
  assert.equal(refusals(), 2, 'a refusal after a commit succeeded is a new episode: warned again');

  const expelled = () => consumer!.emit('event.error', Object.assign(new Error('Heartbeat failed: Broker: Unknown member'), { code: 25 }));
  const expulsions = () => warnings.filter((w) => w.message === 'kafka consumer error' && /Unknown member/.test((w.fields as { err: string }).err)).length;
  expelled();
  expelled();
  assert.equal(expulsions(), 1);
  script.rebalance('revoke', [{ topic: 't', partition: 0 }]);
  script.rebalance('assign', [{ topic: 't', partition: 0 }]);
  expelled();
  assert.equal(expulsions(), 2, 'expelled again after the group assigned partitions: warned again');
});

test('no test leaves a fake method on KafkaConsumer\'s prototype for the tests after it (each restores what it swapped)', async () => {
  const now = Object.getOwnPropertyDescriptors((await rdkafka()).KafkaConsumer.prototype);
  const changed = [...new Set([...Object.keys(pristinePrototype), ...Object.keys(now)])].filter((name) => now[name]?.value !== pristinePrototype[name]?.value);
  // Before: commitSync, swapped by three tests and restored by one.
  assert.deepEqual(changed, []);
});

test("scale-out: each assigned partition is handed to the runtime with its topic's partition count as the brokers' metadata says it now, which the runtime records in its state files (and checks them by)", async (t) => {
  const script = await scriptedConsumer();
  t.after(script.restore);
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(unreachableConfig(['grown']), testContext({ batchSize: 100 }));
  t.after(() => instance.close?.());
  const assigned: { id: string; partitions?: number }[] = [];
  instance.onPartitions!({
    assigned: async (partitions) => (assigned.push(...partitions.map(({ id, partitions: count }) => ({ id, ...(count === undefined ? {} : { partitions: count }) }))), new Map()),
    revoked: async () => undefined,
  });
  await startReading(instance, script);
  await until(() => assigned.length > 0, 'the partition assigned to the runtime');
  // The scripted brokers list four partitions of every topic.
  assert.deepEqual(assigned, [{ id: 'grown-0', partitions: 4 }]);
});

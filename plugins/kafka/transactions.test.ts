/**
 * PipelineTransactions' report of a failed commit, with a stand-in for librdkafka's transactional
 * producer (no broker): which error fails the pipeline must not depend on which request first saw
 * that another producer took the transactional_id over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { pino } from 'pino';
import type * as RdKafka from 'node-rdkafka';
import { inputHandedOver, TributaryError, type Sink } from 'tributary';
import { testContext } from 'tributary/testing';
import { ErrorCode } from './common.js';
import kafkaSink from './sink.js';
import { PipelineTransactions } from './transactions.js';

type Callback = (error?: Error | null) => void;

/**
 * A transactional producer whose sendOffsetsToTransaction fails with `offsetsError` and whose
 * commitTransaction fails with `commitError`. With `fencedAtAbort` its abortTransaction then finds it
 * fenced, as librdkafka does: the fatal error is raised (fatalError()) before the abort's callback, and
 * its event.error would come only at a later poll, which this stand-in never makes.
 */
function standInProducer(failures: { offsetsError?: Error; commitError?: Error; fencedAtAbort?: boolean; beginError?: { at: number; error: Error }; queueCapacity?: number; deliveryFailsInFlush?: Error }): StandIn {
  let fatal: (Error & { code: number }) | undefined;
  let begins = 0;
  /** Records librdkafka holds (not yet acknowledged): a flush acknowledges them all. */
  let queued = 0;
  const calls: string[] = [];
  const done = (cb: Callback, error?: Error): void => void setImmediate(() => cb(error ?? null));
  const listeners = new Map<string, (...args: unknown[]) => void>();
  const producer = {
    on: (event: string, listener: (...args: unknown[]) => void) => (listeners.set(event, listener), producer),
    /** librdkafka's report of a delivery that failed (delivery.report.only.error). */
    reportDelivery: (error: Error, topic = 'out') => listeners.get('delivery-report')?.(error, { topic }),
    /** librdkafka's other events (event.error, event.log), as node-rdkafka emits them. */
    emitEvent: (event: string, ...args: unknown[]) => listeners.get(event)?.(...args),
    setPollInterval: () => producer,
    connect: (_options: unknown, cb: Callback) => done(cb),
    /** A metadata request (a not-ready producer's probe, ProducerReachability.health): the brokers stay away. */
    getMetadata: (_options: unknown, cb: Callback) => done(cb, Object.assign(new Error('Local: Broker transport failure'), { code: -195 })),
    initTransactions: (_timeout: number, cb: Callback) => done(cb),
    beginTransaction: (cb: Callback) => done(cb, ++begins === failures.beginError?.at ? failures.beginError.error : undefined),
    calls,
    produce: (_topic: string, _partition: null, value: Buffer) => {
      if (queued >= (failures.queueCapacity ?? Infinity)) throw Object.assign(new Error('Local: Queue full'), { code: ErrorCode.QUEUE_FULL });
      queued++;
      calls.push(`produce ${value.toString()}`);
    },
    flush: (_timeout: number, cb: Callback) => {
      const failed = queued > 0 ? failures.deliveryFailsInFlush : undefined;
      queued = 0;
      if (!failed) return done(cb);
      // node-rdkafka hands the delivery reports a flush served over through an async handle of their
      // own: they may reach JavaScript a turn after the flush's callback.
      setImmediate(() => {
        cb(null);
        setImmediate(() => listeners.get('delivery-report')?.(failed, { topic: 'out' }));
      });
    },
    sendOffsetsToTransaction: (offsets: RdKafka.TopicPartitionOffset[], consumer: { name?: string } | undefined, _timeout: number, cb: Callback) => {
      if (consumer?.name !== undefined) calls.push(`offsets of ${consumer.name}: ${offsets.map((tp) => `${tp.topic}/${tp.partition}@${tp.offset}`).join(' ')}`);
      done(cb, failures.offsetsError);
    },
    commitTransaction: (_timeout: number, cb: Callback) => (calls.push('commit'), done(cb, failures.commitError)),
    /** abortTransaction's calls. */
    aborts: 0,
    abortTransaction: (_timeout: number, cb: Callback) => {
      producer.aborts++;
      if (failures.fencedAtAbort) fatal = Object.assign(new Error('Failed to end transaction: Local: This instance has been fenced by a newer instance'), { code: ErrorCode.FENCED });
      done(cb, fatal);
    },
    fatalError: () => fatal,
    disconnect: (_timeout: number, cb: Callback) => done(cb),
  };
  return producer as unknown as StandIn;
}

type StandIn = RdKafka.Producer & { reportDelivery(error: Error, topic?: string): void; calls: string[]; aborts: number };

/** The class's own constructor, which obtain() calls with a real node-rdkafka producer. */
const Transactions = PipelineTransactions as unknown as new (transactionalId: string, producer: RdKafka.Producer, logger: Logger, connection: undefined, features: readonly string[]) => PipelineTransactions;

test('a commit that fails with an abortable error, the abort then finding the producer fenced: the pipeline fails with the fencing (TRIB_ERR_SINK, naming the transactional_id), not the commit\'s error', async () => {
  const endTxn = Object.assign(new Error('EndTxn commit failed: Unknown broker error'), { code: -1 });
  const transactions = new Transactions('tx-1', standInProducer({ commitError: endTxn, fencedAtAbort: true }), pino({ enabled: false }), undefined, []);
  const reported: Error[] = [];
  transactions.onFailure((error) => reported.push(error));
  await transactions.open();
  const { committed } = transactions.commit([{ topic: 'in', partition: 0, offset: 10 }], undefined);
  await assert.rejects(committed, (error: unknown) => {
    // Before: the EndTxn error itself, which the source reported as "a source failed: EndTxn commit failed: ...".
    assert.ok(error instanceof TributaryError, String(error));
    assert.equal(error.code, 'TRIB_ERR_SINK');
    assert.match(error.message, /^the exactly-once producer \(transactional_id 'tx-1'\) failed: it hit a fatal error and cannot go on: .*fenced by a newer instance: another producer started with transactional_id 'tx-1'; give each instance its own$/);
    return true;
  });
  assert.equal(reported.length, 1, 'the sinks report it too (PluginContext.fail)');
  assert.equal(reported[0], await committed.catch((error: unknown) => error), 'one error, whichever path reports it first');
  // Every later commit fails with it too.
  await assert.rejects(transactions.commit([], undefined).committed, (error: unknown) => error === reported[0]);
  await transactions.close();
});

test('a transaction whose offsets the group refuses because it gave the member\'s partitions to another (Unknown member) fails as input handed over; one that timed out does not', async () => {
  const unknownMember = Object.assign(new Error('Failed to commit offsets to transaction on broker b/1: in[0](Broker: Unknown member) (after 21ms)'), { code: ErrorCode.UNKNOWN_MEMBER_ID });
  const handedOver = new Transactions('tx-1', standInProducer({ offsetsError: unknownMember }), pino({ enabled: false }), undefined, []);
  await handedOver.open();
  // A consumer only needs to be there: the stand-in takes its group metadata as given.
  const consumer = {} as RdKafka.KafkaConsumer;
  const { committed } = handedOver.commit([{ topic: 'in', partition: 0, offset: 10 }], consumer);
  await assert.rejects(committed, (error: unknown) => {
    assert.ok(inputHandedOver(error), String(error));
    assert.match((error as Error).message, /Unknown member.*another member, which reads their uncommitted input again/);
    return true;
  });
  // The last transaction's failure, reported by the close at a stop: still marked, through its cause.
  await assert.rejects(handedOver.close(), (error: unknown) => inputHandedOver(error) && /its transaction was aborted/.test((error as Error).message));

  const timedOut = Object.assign(new Error('Failed to add offsets to transaction on broker TxnCoordinator/1: Local: Timed out (after 1ms)'), { code: ErrorCode.TIMED_OUT });
  const outage = new Transactions('tx-2', standInProducer({ offsetsError: timedOut }), pino({ enabled: false }), undefined, []);
  await outage.open();
  await assert.rejects(outage.commit([{ topic: 'in', partition: 0, offset: 10 }], consumer).committed, (error: unknown) => !inputHandedOver(error));
  await assert.rejects(outage.close(), (error: unknown) => !inputHandedOver(error));
});

test('a transaction abandoned because the source lost partitions whose outputs it holds (a stall past the group session) never commits: the next commit, one with no offsets too (which needs no group\'s consent), fails handed over before it commits, is aborted, and the pipeline is told', async () => {
  const producer = standInProducer({});
  const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
  const reported: Error[] = [];
  transactions.onFailure((error) => reported.push(error));
  await transactions.open();
  transactions.produce('out', Buffer.from('output of in/0 at 7'), null);
  transactions.abandon(new TributaryError('TRIB_ERR_SOURCE', 'this member lost its partitions (in/0)', { handedOver: true }));
  // The checkpoint under way when the partitions were lost commits after it, naming none of them.
  // Before: committed (no offsets to send, so no group to refuse it), and the restart wrote those outputs again.
  await assert.rejects(transactions.commit([], undefined).committed, (error: unknown) => inputHandedOver(error));
  assert.deepEqual(producer.calls, ['produce output of in/0 at 7'], 'nothing committed');
  assert.equal(producer.aborts, 1, 'aborted');
  assert.equal(reported.length, 1, 'the pipeline is told');
  assert.ok(inputHandedOver(reported[0]), String(reported[0]));
  assert.match(reported[0]!.message, /its transaction was aborted: this member lost its partitions \(in\/0\)/);
  await assert.rejects(transactions.commit([{ topic: 'in', partition: 0, offset: 8 }], undefined).committed, (error: unknown) => inputHandedOver(error));
  await assert.rejects(transactions.close(), (error: unknown) => inputHandedOver(error));
  assert.deepEqual(producer.calls, ['produce output of in/0 at 7'], 'nothing committed, ever');
});

test('a transaction abandoned while a commit is under way that has not sent its offsets yet: that commit fails too (aborted), and none after it commits', async () => {
  const producer = standInProducer({});
  const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
  await transactions.open();
  transactions.produce('out', Buffer.from('sealed'), null);
  const { committed } = transactions.commit([{ topic: 'in', partition: 0, offset: 8 }], {} as RdKafka.KafkaConsumer);
  // Sealed, flushing its records: the loss comes before it sends its offsets.
  transactions.abandon(new TributaryError('TRIB_ERR_SOURCE', 'this member lost its partitions (in/0)', { handedOver: true }));
  await assert.rejects(committed, (error: unknown) => inputHandedOver(error));
  await assert.rejects(transactions.commit([{ topic: 'in', partition: 0, offset: 9 }], {} as RdKafka.KafkaConsumer).committed, (error: unknown) => inputHandedOver(error));
  assert.ok(!producer.calls.includes('commit'), 'nothing committed');
  await assert.rejects(transactions.close(), (error: unknown) => inputHandedOver(error));
});

test('a commit that fails while the sinks wait for room (the next transaction\'s queue full) fails them and the pipeline at once: the wait is rejected, not left for a next transaction that never begins', async () => {
  const endTxn = Object.assign(new Error('EndTxn failed: Local: Timed out'), { code: ErrorCode.TIMED_OUT });
  const transactions = new Transactions('tx-1', standInProducer({ commitError: endTxn }), pino({ enabled: false }), undefined, []);
  const reported: Error[] = [];
  transactions.onFailure((error) => reported.push(error));
  await transactions.open();
  const { committed } = transactions.commit([{ topic: 'in', partition: 0, offset: 10 }], undefined);
  // Written while the commit is under way: they wait for the next transaction, up to its queue's bound.
  const value = Buffer.from('{}');
  for (let i = 0; i < 50_000; i++) transactions.produce('out', value, 'k');
  const room = transactions.ready();
  assert.ok(room, 'the queue is full: the sinks wait');
  await assert.rejects(committed);
  // Before: the wait never settled (only the next transaction's begin made room), and nothing told the
  // pipeline, which waited for room for good, ready, its checkpoints still "succeeding".
  await assert.rejects(room, /its transaction was aborted: EndTxn failed: Local: Timed out; the input it covered stays uncommitted/);
  assert.equal(reported.length, 1, 'the pipeline is told (PluginContext.fail)');
  assert.match(reported[0]!.message, /its transaction was aborted/);
  await assert.rejects(transactions.ready()!, /its transaction was aborted/);
  await assert.rejects(transactions.close(), /its transaction was aborted/);
});

test('a delivery that fails while the input is quiet: the next commit fails on it, aborts the transaction and fails the pipeline (the flush before it does not fail each checkpoint instead)', async () => {
  const producer = standInProducer({});
  const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
  const reported: Error[] = [];
  transactions.onFailure((error) => reported.push(error));
  await transactions.open();
  transactions.produce('out', Buffer.from('{}'), 'k');
  producer.reportDelivery(Object.assign(new Error('Broker: Message size too large'), { code: 10 }));
  // Before: this flush threw at every checkpoint, the commit never ran, and nothing was aborted or reported.
  await transactions.flush();
  await assert.rejects(transactions.commit([{ topic: 'in', partition: 0, offset: 1 }], undefined).committed, /delivery to topic 'out' failed: Broker: Message size too large/);
  assert.equal(reported.length, 1);
  assert.match(reported[0]!.message, /its transaction was aborted: delivery to topic 'out' failed: Broker: Message size too large/);
  await assert.rejects(transactions.close(), /its transaction was aborted/);
});

test('a delivery that fails in the commit\'s flush, its report coming a turn after the flush: the commit fails naming the topic and why, not with the commit\'s own error', async () => {
  // librdkafka refuses to commit a transaction with a failed delivery, in words of its own.
  const endTxn = Object.assign(new Error('Failed to commit transaction: Local: Erroneous state'), { code: ErrorCode.STATE });
  const producer = standInProducer({ commitError: endTxn, deliveryFailsInFlush: Object.assign(new Error('Broker: Message size too large'), { code: 10 }) });
  const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
  const reported: Error[] = [];
  transactions.onFailure((error) => reported.push(error));
  await transactions.open();
  transactions.produce('out', Buffer.from('{}'), 'k');
  // Before: the flush's end was not waited past, and the commit failed with "Erroneous state".
  await assert.rejects(transactions.commit([{ topic: 'in', partition: 0, offset: 1 }], undefined).committed, /^Error: delivery to topic 'out' failed: Broker: Message size too large/);
  assert.ok(!producer.calls.includes('commit'), 'the transaction is not committed: aborted');
  assert.equal(reported.length, 1);
  assert.match(reported[0]!.message, /its transaction was aborted: delivery to topic 'out' failed: Broker: Message size too large/);
  await assert.rejects(transactions.close(), /its transaction was aborted/);
});

test('the next transaction failing to begin after a commit: that commit still succeeds, the one queued behind it fails, later ones too, the pipeline is told, and close() ends', async () => {
  const state = Object.assign(new Error('Local: Erroneous state'), { code: -172 });
  // Begin 1 opens the first transaction; begin 2 follows the first commit.
  const transactions = new Transactions('tx-1', standInProducer({ beginError: { at: 2, error: state } }), pino({ enabled: false }), undefined, []);
  const reported: Error[] = [];
  transactions.onFailure((error) => reported.push(error));
  await transactions.open();
  transactions.produce('out', Buffer.from('{}'), 'k');
  const first = transactions.commit([{ topic: 'in', partition: 0, offset: 1 }], undefined);
  transactions.produce('out', Buffer.from('{}'), 'k');
  const queued = transactions.commit([{ topic: 'in', partition: 0, offset: 2 }], undefined);
  // Before: the first was reported failed though it committed, the queued one never settled, and close() hung.
  await first.committed;
  await assert.rejects(queued.committed, /Erroneous state/);
  await assert.rejects(transactions.commit([], undefined).committed, /Erroneous state/);
  assert.equal(reported.length, 1);
  await assert.rejects(transactions.close(), /its transaction was aborted: Local: Erroneous state/);
});

test('exactly-once, librdkafka\'s queue full (acknowledgements behind): the sinks wait for room instead of the write failing the run, and the transaction commits every write, in order', async () => {
  const producer = standInProducer({ queueCapacity: 10 });
  const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
  await transactions.open();
  // Before: the eleventh write threw "Local: Queue full", and the run failed on it.
  for (let i = 0; i < 25; i++) transactions.produce('out', Buffer.from(String(i)), 'k');
  const room = transactions.ready();
  assert.ok(room, 'the sinks are asked to wait');
  await transactions.commit([{ topic: 'in', partition: 0, offset: 25 }], undefined).committed;
  await room;
  assert.deepEqual(producer.calls, [...Array.from({ length: 25 }, (_, i) => `produce ${i}`), 'commit']);
  await transactions.close();
});

test('a close while a commit drains the writes librdkafka had no room for waits for that commit, which commits them all', async () => {
  const producer = standInProducer({ queueCapacity: 10 });
  const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
  await transactions.open();
  for (let i = 0; i < 25; i++) transactions.produce('out', Buffer.from(String(i)), 'k');
  const { committed } = transactions.commit([{ topic: 'in', partition: 0, offset: 25 }], undefined);
  // Before: the close stopped the overflow's sends, and the commit failed after 30 s with 15 records never sent.
  await transactions.close();
  await committed;
  assert.deepEqual(producer.calls, [...Array.from({ length: 25 }, (_, i) => `produce ${i}`), 'commit']);
});

/**
 * The exactly-once `kafka` sinks `labels` of one pipeline (topic: the label's first word), made by the
 * sink's own factory, writing through `transactions` (as if the first one's factory had made it), each
 * with a test context that keeps what it reports (PluginContext.fail).
 */
async function sharingSinks(transactions: PipelineTransactions, labels: string[]): Promise<{ sink: Sink; failures: Error[] }[]> {
  const shared = new Map<string, unknown>([['kafka:transactions', transactions]]);
  transactions.sourceAttached = true;
  const sinks: { sink: Sink; failures: Error[] }[] = [];
  for (const label of labels) {
    const context = testContext({ label, shared, logger: pino({ enabled: false }) });
    const config = { brokers: 'localhost:9092', topic: label.split('-')[0]!, key_field: 'userId', guarantee: 'exactly-once', compression: 'none', linger: '5ms', batch_size: 10_000, max_in_flight: 100_000 } as const;
    sinks.push({ sink: await kafkaSink.create(config, context), failures: context.failures });
  }
  return sinks;
}

test('the shared producer failing (fenced): the failure names it, its transactional_id and every sink that shares it, whichever sink reports it, and the runtime reports it as it is (TributaryError.shared)', async () => {
  const endTxn = Object.assign(new Error('EndTxn commit failed: Unknown broker error'), { code: -1 });
  const transactions = new Transactions('tx-1', standInProducer({ commitError: endTxn, fencedAtAbort: true }), pino({ enabled: false }), undefined, []);
  // The dead-letter sink is created first: it is the one whose context reports the producer's failures.
  const [deadLetter, predictions] = await sharingSinks(transactions, ['dead-letter-kafka-0', 'predictions-kafka-0']);
  await transactions.open();
  await assert.rejects(transactions.commit([{ topic: 'in', partition: 0, offset: 10 }], undefined).committed);
  const named = /^the exactly-once producer shared by sinks dead-letter-kafka-0 and predictions-kafka-0 \(transactional_id 'tx-1'\) failed: it hit a fatal error and cannot go on: .*fenced by a newer instance/;
  assert.equal(deadLetter!.failures.length, 1);
  const [reported] = deadLetter!.failures;
  // Before: "kafka exactly-once sinks (transactional_id 'tx-1'): ...", which the runtime said as "the dead-letter sink failed: ...".
  assert.match(reported!.message, named);
  assert.ok(reported instanceof TributaryError && reported.shared, 'the runtime reports it as it is, not as the dead-letter sink\'s');
  assert.equal(predictions!.failures.length, 0);
  // The other paths it reaches the runtime by (a write, /readyz) say the same.
  assert.throws(() => predictions!.sink.write({ kind: 'event', userId: 'u', time: 0, type: 'view' }), (error: unknown) => error === reported);
  assert.match(predictions!.sink.health!()!.detail!, named);
  // (Its close says nothing more: the fencing was reported.)
  await predictions!.sink.close();
});

test('the shared producer\'s transaction failing for one sink\'s topic (a batch too large for it): that sink is named, with the producer that aborted its transaction; a timed-out delivery names the producer', async () => {
  for (const [error, topic, named] of [
    [Object.assign(new Error('Broker: Message size too large'), { code: ErrorCode.MSG_SIZE_TOO_LARGE }), 'predictions', /^predictions-kafka-0 failed: delivery to topic 'predictions' failed: Broker: Message size too large .*; so the exactly-once producer shared by sinks dead-letter-kafka-0 and predictions-kafka-0 \(transactional_id 'tx-1'\) aborted its transaction: the input it covered stays uncommitted/],
    [Object.assign(new Error('Local: Message timed out'), { code: -192 }), 'predictions', /^the exactly-once producer shared by sinks dead-letter-kafka-0 and predictions-kafka-0 \(transactional_id 'tx-1'\) failed: its transaction was aborted: delivery to topic 'predictions' failed: Local: Message timed out; the input it covered/],
  ] as const) {
    const producer = standInProducer({});
    const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
    const [deadLetter] = await sharingSinks(transactions, ['dead-letter-kafka-0', 'predictions-kafka-0']);
    await transactions.open();
    transactions.produce(topic, Buffer.from('{}'), 'k');
    producer.reportDelivery(error, topic);
    await assert.rejects(transactions.commit([{ topic: 'in', partition: 0, offset: 1 }], undefined).committed);
    assert.equal(deadLetter!.failures.length, 1);
    assert.match(deadLetter!.failures[0]!.message, named);
    assert.ok(deadLetter!.failures[0] instanceof TributaryError && deadLetter!.failures[0].shared);
    await assert.rejects(transactions.close(), (failure: Error) => named.test(failure.message));
  }
});

test('an outage as librdkafka reports it (every broker down, then each reconnect failing) is one warning of the transactional producer, saying what its open transaction does; /readyz says it once for its sinks', async (t) => {
  const lines: { level: number; msg: string; errors?: Record<string, number> }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const producer = standInProducer({});
  const transactions = new Transactions('tx-1', producer, logger, undefined, []);
  const sinks = await sharingSinks(transactions, ['dead-letter-kafka-0', 'predictions-kafka-0']);
  await transactions.open();
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const emit = (producer as unknown as { emitEvent(event: string, ...args: unknown[]): void }).emitEvent;
  // As the test broker's kill showed it: every broker down at once, then the reconnects failing.
  emit('event.error', Object.assign(new Error('all broker connections are down'), { code: -1 }));
  for (let i = 0; i < 4; i++) emit('event.error', Object.assign(new Error('broker transport failure'), { code: -1 }));
  t.mock.timers.tick(1_000);
  // The outage's later reconnects, past the first second: no news.
  for (let i = 0; i < 3; i++) emit('event.error', Object.assign(new Error('broker transport failure'), { code: -1 }));
  t.mock.timers.tick(1_000);
  const warnings = lines.filter((line) => line.level === 40);
  // Before: two, "kafka transactional producer: brokers unreachable; the open transaction waits ..." and the connection failures' own.
  assert.equal(warnings.length, 1, warnings.map((line) => line.msg).join('\n'));
  assert.match(
    warnings[0]!.msg,
    /^kafka transactional producer error: no broker is reachable \(all broker connections are down\): the open transaction waits \(its commit fails if they stay away longer than its requests may wait, about 20-30 s, and the pipeline restarts from its last commit\); 4 broker connections failed \(broker transport failure\); \/readyz says not ready while no broker is reachable/,
  );
  assert.deepEqual(warnings[0]!.errors, { 'all broker connections are down': 1, 'broker transport failure': 4 });
  // Each sink that shares the producer reports it to /readyz as the producer's own (SourceHealth.shared), said once.
  for (const { sink } of sinks) assert.deepEqual(sink.health!(), { ready: false, detail: "the exactly-once producer shared by sinks dead-letter-kafka-0 and predictions-kafka-0 (transactional_id 'tx-1'): all broker connections are down", shared: true });
  t.mock.timers.reset();
  await transactions.close();
});

test('the brokers going away: the transactional producer\'s "broker transport failure" of each connection is one warning, not one per connection', async (t) => {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const producer = standInProducer({});
  const transactions = new Transactions('tx-1', producer, logger, undefined, []);
  await transactions.open();
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const emit = (producer as unknown as { emitEvent(event: string, ...args: unknown[]): void }).emitEvent;
  for (let i = 0; i < 8; i++) emit('event.error', Object.assign(new Error('broker transport failure'), { code: -1 }));
  t.mock.timers.tick(1_000);
  const warnings = lines.filter((line) => line.level === 40);
  // Before: 8 warnings "kafka transactional producer error".
  assert.equal(warnings.length, 1, warnings.map((line) => line.msg).join('\n'));
  assert.match(warnings[0]!.msg, /^kafka transactional producer error: 8 broker connections failed \(broker transport failure\); \/readyz says not ready while no broker is reachable/);
  t.mock.timers.reset();
  await transactions.close();
});

test('several exactly-once sources (co-partitioned topics): their commits at one barrier go in one transaction, each source\'s offsets with its own consumer; one asked after a write goes in the next', async () => {
  const producer = standInProducer({});
  const transactions = new Transactions('tx-1', producer, pino({ enabled: false }), undefined, []);
  await transactions.open();
  const clicks = { name: 'clicks' } as unknown as RdKafka.KafkaConsumer;
  const orders = { name: 'orders' } as unknown as RdKafka.KafkaConsumer;
  transactions.produce('out', Buffer.from('a'), 'k');
  // The runtime commits each source in turn at one checkpoint's barrier: no write between them.
  const first = transactions.commit([{ topic: 'clicks', partition: 0, offset: 10 }], clicks);
  const second = transactions.commit([{ topic: 'orders', partition: 0, offset: 3 }], orders);
  await Promise.all([first.committed, second.committed]);
  // Before: 'offsets of clicks', 'commit', then a transaction of its own for the orders' offsets.
  assert.deepEqual(producer.calls, ['produce a', 'offsets of clicks: clicks/0@10', 'offsets of orders: orders/0@3', 'commit']);
  producer.calls.length = 0;
  // A write after the first seal: the second source's offsets are not those of that transaction's outputs.
  transactions.produce('out', Buffer.from('b'), 'k');
  const third = transactions.commit([{ topic: 'clicks', partition: 0, offset: 11 }], clicks);
  transactions.produce('out', Buffer.from('c'), 'k');
  const fourth = transactions.commit([{ topic: 'orders', partition: 0, offset: 4 }], orders);
  await Promise.all([third.committed, fourth.committed]);
  assert.deepEqual(producer.calls, ['produce b', 'offsets of clicks: clicks/0@11', 'commit', 'produce c', 'offsets of orders: orders/0@4', 'commit']);
  await transactions.close();
});

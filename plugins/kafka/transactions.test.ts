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
import { inputHandedOver, TributaryError } from 'tributary';
import { ErrorCode } from './common.js';
import { PipelineTransactions } from './transactions.js';

type Callback = (error?: Error | null) => void;

/**
 * A transactional producer whose sendOffsetsToTransaction fails with `offsetsError` and whose
 * commitTransaction fails with `commitError`. With `fencedAtAbort` its abortTransaction then finds it
 * fenced, as librdkafka does: the fatal error is raised (fatalError()) before the abort's callback, and
 * its event.error would come only at a later poll, which this stand-in never makes.
 */
function standInProducer(failures: { offsetsError?: Error; commitError?: Error; fencedAtAbort?: boolean }): RdKafka.Producer {
  let fatal: (Error & { code: number }) | undefined;
  const done = (cb: Callback, error?: Error): void => void setImmediate(() => cb(error ?? null));
  const producer = {
    on: () => producer,
    setPollInterval: () => producer,
    connect: (_options: unknown, cb: Callback) => done(cb),
    initTransactions: (_timeout: number, cb: Callback) => done(cb),
    beginTransaction: (cb: Callback) => done(cb),
    produce: () => undefined,
    flush: (_timeout: number, cb: Callback) => done(cb),
    sendOffsetsToTransaction: (_offsets: unknown, _consumer: unknown, _timeout: number, cb: Callback) => done(cb, failures.offsetsError),
    commitTransaction: (_timeout: number, cb: Callback) => done(cb, failures.commitError),
    abortTransaction: (_timeout: number, cb: Callback) => {
      if (failures.fencedAtAbort) fatal = Object.assign(new Error('Failed to end transaction: Local: This instance has been fenced by a newer instance'), { code: ErrorCode.FENCED });
      done(cb, fatal);
    },
    fatalError: () => fatal,
    disconnect: (_timeout: number, cb: Callback) => done(cb),
  };
  return producer as unknown as RdKafka.Producer;
}

/** The class's own constructor, which obtain() calls with a real node-rdkafka producer. */
const Transactions = PipelineTransactions as unknown as new (transactionalId: string, producer: RdKafka.Producer, logger: Logger, connection: undefined, features: readonly string[]) => PipelineTransactions;

test('a commit that fails with an abortable error, the abort then finding the producer fenced: the pipeline fails with the fencing (TRIB_ERR_SINK, naming the transactional_id), not the commit\'s error', async () => {
  const endTxn = Object.assign(new Error('EndTxn commit failed: Unknown broker error'), { code: -1 });
  const transactions = new Transactions('tx-1', standInProducer({ commitError: endTxn, fencedAtAbort: true }), pino({ enabled: false }), undefined, []);
  const reported: Error[] = [];
  transactions.onFatal((error) => reported.push(error));
  await transactions.open();
  const { committed } = transactions.commit([{ topic: 'in', partition: 0, offset: 10 }], undefined);
  await assert.rejects(committed, (error: unknown) => {
    // Before: the EndTxn error itself, which the source reported as "a source failed: EndTxn commit failed: ...".
    assert.ok(error instanceof TributaryError, String(error));
    assert.equal(error.code, 'TRIB_ERR_SINK');
    assert.match(error.message, /^kafka exactly-once sinks \(transactional_id 'tx-1'\): the transactional producer hit a fatal error and cannot go on: .*fenced by a newer instance: another producer started with transactional_id 'tx-1'; give each instance its own$/);
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
  await assert.rejects(handedOver.close(), (error: unknown) => inputHandedOver(error) && /a transaction failed and was aborted/.test((error as Error).message));

  const timedOut = Object.assign(new Error('Failed to add offsets to transaction on broker TxnCoordinator/1: Local: Timed out (after 1ms)'), { code: ErrorCode.TIMED_OUT });
  const outage = new Transactions('tx-2', standInProducer({ offsetsError: timedOut }), pino({ enabled: false }), undefined, []);
  await outage.open();
  await assert.rejects(outage.commit([{ topic: 'in', partition: 0, offset: 10 }], consumer).committed, (error: unknown) => !inputHandedOver(error));
  await assert.rejects(outage.close(), (error: unknown) => !inputHandedOver(error));
});

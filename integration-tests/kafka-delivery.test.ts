/**
 * Delivery guarantees through a real broker and a real daemon process: `tributary run` reads a topic
 * and writes outputs and dead letters to topics; it is killed with SIGKILL mid-stream and started
 * again. At-least-once: nothing is lost. Exactly-once: the committed output holds every record once.
 * (The broker stopped or refusing under a running daemon: kafka-outages.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Kafka from 'node-rdkafka';
import { daemonStarted, exited, kafkaBrokers, keptLog, startDaemon, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, committedSeqs, createTopic, produce, readTopic, seqRecords, values } from './kafka/client.js';
import { assertEachOnce, pipelineYaml } from './kafka/delivery.js';

async function highWatermarkSum(brokers: string, topic: string): Promise<number> {
  const client = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'group.id': 'hw-probe', 'broker.address.family': 'v4' }, {});
  await new Promise<void>((resolve, reject) => client.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  try {
    let sum = 0;
    for (let partition = 0; partition < 4; partition++) {
      sum += await new Promise<number>((resolve, reject) =>
        client.queryWatermarkOffsets(topic, partition, 5_000, (error, offsets) => (error ? reject(new Error(error.message)) : resolve(offsets.highOffset))),
      );
    }
    return sum;
  } finally {
    await new Promise<void>((resolve) => client.disconnect(() => resolve()));
  }
}

for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
  test(`kill -9 mid-stream and restart: ${guarantee}`, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const input = uniqueTopic(`in-${guarantee}`);
    const output = uniqueTopic(`out-${guarantee}`);
    const dlq = uniqueTopic(`dlq-${guarantee}`);
    for (const topic of [input, output, dlq]) await createTopic(brokers, topic, 4);
    const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-delivery-'));
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(file, pipelineYaml(input, output, dlq, guarantee));
    const chunks = 10;
    const perChunk = 1_000;
    const badPerChunk = 10;
    const chunk = (c: number) => [
      ...Array.from({ length: perChunk }, (_, i) => {
        const seq = c * perChunk + i;
        return { key: `u${seq % 211}`, value: clickJson(seq % 211, Date.parse('2024-05-01T00:00:00Z') + seq, 'view', { seq }) };
      }),
      ...Array.from({ length: badPerChunk }, (_, i) => ({ key: 'bad', value: `malformed ${c}-${i}` })),
    ];
    let daemon = startDaemon(file, brokers);
    try {
      for (let c = 0; c < 4; c++) await produce(brokers, input, chunk(c));
      // Kill while it is working: after some output exists, before the input ends.
      await daemonStarted(daemon, undefined, 'the first outputs', async () => (await highWatermarkSum(brokers, output)) >= 1_000, 100);
      daemon.kill('SIGKILL');
      await exited(daemon);
      for (let c = 4; c < 7; c++) await produce(brokers, input, chunk(c));
      daemon = startDaemon(file, brokers);
      const restarted = daemon;
      for (let c = 7; c < chunks; c++) await produce(brokers, input, chunk(c));
      const good = chunks * perChunk;
      await daemonStarted(
        restarted,
        undefined,
        'every record in the committed output',
        async () => {
          const seqs = new Set(values(await readTopic(brokers, output, { committed: true, timeoutMs: 10_000 })).map((v) => (v.attrs as { seq: number }).seq));
          return seqs.size >= good;
        },
        500,
      );
      daemon.kill('SIGTERM');
      assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
      const outputs = values<{ userId: string; attrs: { seq: number } }>(await readTopic(brokers, output, { committed: true, toEnd: true, timeoutMs: 15_000 }));
      const out = outputs.map((v) => v.attrs.seq);
      const dead = await readTopic(brokers, dlq, { committed: true, toEnd: true, timeoutMs: 15_000 });
      const distinct = new Set(out);
      assert.equal(distinct.size, good, 'no record lost');
      for (let seq = 0; seq < good; seq++) assert.ok(distinct.has(seq), `record ${seq} lost`);
      const deadOffsets = new Set(values(dead).map((d) => `${d.partition}/${d.offset}`));
      assert.equal(deadOffsets.size, chunks * badPerChunk, 'every malformed record dead-lettered');
      if (guarantee === 'exactly-once') {
        assert.equal(out.length, good, `committed output has duplicates: ${out.length - good}`);
        assert.equal(dead.length, chunks * badPerChunk, 'committed dead letters have duplicates');
        // A user's outputs share a partition: read in offset order, they keep the input's order across
        // transactions and across the restart.
        const lastSeq = new Map<string, number>();
        for (const { userId, attrs } of outputs) {
          const last = lastSeq.get(userId) ?? -1;
          assert.ok(attrs.seq > last, `${userId}: output ${attrs.seq} after ${last}`);
          lastSeq.set(userId, attrs.seq);
        }
      } else {
        t.diagnostic(`at-least-once: ${out.length - good} duplicates after the kill`);
      }
    } finally {
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('exactly-once: a daemon stalled past its group session (SIGSTOP, as a long pause or a frozen VM) has its transaction refused; it restarts the pipeline in the process, without exiting, and the committed output holds every record once', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('in-stall');
  const output = uniqueTopic('out-stall');
  const dlq = uniqueTopic('dlq-stall');
  for (const topic of [input, output, dlq]) await createTopic(brokers, topic, 4);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-stall-'));
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, pipelineYaml(input, output, dlq, 'exactly-once', `  restart: { backoff: 100ms }\ncheckpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }\n`));
  const log: string[] = [];
  // At info: the rebalances and transactions, to tell which run wrote what should it fail (keptLog).
  const daemon = startDaemon(file, brokers, log, ['--log-level', 'info']);
  try {
    await produce(brokers, input, seqRecords(0, 2_000));
    await daemonStarted(daemon, log, 'the first outputs committed', async () => (await readTopic(brokers, output, { committed: true, timeoutMs: 5_000 })).length >= 2_000, 200);
    // Frozen for twice the 6 s session: the group drops the member, and its next commit is refused
    // (before: "Unknown member", the transaction aborted and the process exited 1).
    await produce(brokers, input, seqRecords(2_000, 1_000));
    daemon.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    daemon.kill('SIGCONT');
    await produce(brokers, input, seqRecords(3_000, 1_000));
    await waitFor('every record in the committed output', async () => (await committedSeqs(brokers, output)).size >= 4_000, 90_000, 500);
    assert.equal(daemon.exitCode, null, `the daemon runs on: ${log.join('')}`);
    assert.match(log.join(''), /"msg":"pipeline delivery-exactly-once failed; restarting it in 100 ms from its last checkpoint \(restart 1 in a row\)"/);
    daemon.kill('SIGTERM');
    assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
    await assertEachOnce(brokers, output, 4_000);
  } catch (error) {
    t.diagnostic(`the daemon's log: ${keptLog(log, 'stall')}`);
    throw error;
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGCONT');
      daemon.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exactly-once: a SIGTERM right after a stall past the group session, whose last transaction the group refuses (it gave the partitions away), exits 0; the next start commits every record once', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('in-stop-stall');
  const output = uniqueTopic('out-stop-stall');
  const dlq = uniqueTopic('dlq-stop-stall');
  for (const topic of [input, output, dlq]) await createTopic(brokers, topic, 4);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-stop-stall-'));
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, pipelineYaml(input, output, dlq, 'exactly-once', `checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }\n`));
  const log: string[] = [];
  let daemon = startDaemon(file, brokers, log);
  try {
    await produce(brokers, input, seqRecords(0, 2_000));
    await daemonStarted(daemon, log, 'the first outputs committed', async () => (await committedSeqs(brokers, output)).size >= 2_000, 200);
    // Frozen for twice the 6 s session while it reads more: the group drops the member and gives its
    // partitions away; the stop comes as it wakes, so its last transaction is refused (Unknown member).
    // Before: exit 1, though nothing of that input was committed and its next reader reads it again.
    daemon.kill('SIGSTOP');
    await produce(brokers, input, seqRecords(2_000, 1_000));
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    daemon.kill('SIGCONT');
    daemon.kill('SIGTERM');
    assert.equal(await exited(daemon), 0, `a SIGTERM stop exits 0: ${log.join('')}`);
    t.diagnostic(log.join('').split('\n').some((line) => line.includes('stopped without committing its last input') && line.includes("the group gave this member's partitions to another member")) ? 'the last transaction was refused: handed over' : 'the last transaction committed');
    daemon = startDaemon(file, brokers);
    await daemonStarted(daemon, undefined, 'every record in the committed output', async () => (await committedSeqs(brokers, output)).size >= 3_000, 500);
    daemon.kill('SIGTERM');
    assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
    await assertEachOnce(brokers, output, 3_000);
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGCONT');
      daemon.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exactly-once with checkpoints 25 s apart (the transaction_timeout left unset): each transaction, open from one checkpoint to the next, commits', { timeout: 180_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('in-long-txn');
  const output = uniqueTopic('out-long-txn');
  const dlq = uniqueTopic('dlq-long-txn');
  for (const topic of [input, output, dlq]) await createTopic(brokers, topic, 4);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-long-txn-'));
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, pipelineYaml(input, output, dlq, 'exactly-once', `checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 25s }\n`));
  const log: string[] = [];
  const daemon = startDaemon(file, brokers, log);
  try {
    await produce(brokers, input, seqRecords(0, 1_000));
    // Before: the transaction timeout was 10 s whatever the interval; the brokers aborted each transaction
    // before its checkpoint came, the commit failed as a fencing, and the daemon restarted without end.
    await daemonStarted(daemon, log, 'every record in the committed output', async () => (await committedSeqs(brokers, output)).size >= 1_000, 500);
    assert.doesNotMatch(log.join(''), /restarting it in/, 'no transaction failed');
    daemon.kill('SIGTERM');
    assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
    await assertEachOnce(brokers, output, 1_000);
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

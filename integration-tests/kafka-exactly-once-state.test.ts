/**
 * Exactly-once and operator state through a real broker and a real daemon: a transaction that fails
 * after its checkpoint was written must not leave its input in the state the restart restores (the
 * input is read again from the committed offsets), in one process and with scale_out's partition files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventsRead, exited, kafkaBrokers, operationsPort, startDaemon, uniqueTopic, waitFor } from './kafka/env.js';
import { createTopic, groupCommitted, produce, sessionClosers, threeViews, userSessions } from './kafka/client.js';
import { startNativeBroker } from './kafka/broker.js';

for (const scaleOut of [false, true]) {
  test(`exactly-once with a stateful stage${scaleOut ? ' and scale_out (its state in partition files)' : ''}: a transaction that fails after its checkpoint was written (the broker killed) does not put its input into the state twice, however many checkpoints follow it before the restart`, { timeout: 300_000 }, async (t) => {
    if (!kafkaBrokers(t)) return;
    // Stopping a broker needs one this test owns.
    const broker = await startNativeBroker({ partitions: 4 });
    const input = uniqueTopic('in-state-outage');
    const output = uniqueTopic('out-state-outage');
    const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-state-outage-'));
    const log: string[] = [];
    let daemon: ChildProcess | undefined;
    const users = 20;
    const base = Date.parse('2024-05-01T00:00:00Z');
    try {
      for (const topic of [input, output]) await createTopic(broker.brokers, topic, 4);
      const file = join(dir, 'pipeline.yaml');
      // Checkpoints 10 s apart: the records of phase 2 are read, then the broker goes before the checkpoint
      // that covers them commits. keep: 2, so the checkpoints written while that commit waits to fail
      // (about 30 s) would push the last committed one out if age alone decided; scale_out keeps 1, since
      // a partition's file is written at its revocation (the group drops the member in the outage) too.
      // That revocation (its assignment lost: the session expired) abandons the open transaction and fails
      // the run at once, with no checkpoint (revokeCommitted; with scale_out revokeWithState): the session
      // outlasts the next checkpoint (10 s), so that one is written and its transaction fails, the case this
      // test is for. (A 6 s session let the loss come first in about half the runs.)
      writeFileSync(
        file,
        `
name: state-outage
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: g-${input}
    guarantee: exactly-once
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
    options: { session.timeout.ms: ${scaleOut ? 15_000 : 30_000}, heartbeat.interval.ms: 500 }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [session], guarantee: exactly-once, transactional_id: tx-${output} }
dead_letter: { type: file, path: ${join(dir, 'dead-letters.jsonl')} }
settings: { restart: { backoff: 100ms } }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 10s, keep: 2 }
${scaleOut ? `scale_out: { state_dir: ${join(dir, 'partition-state')}, keep: 1 }` : ''}
`,
      );
      daemon = startDaemon(file, broker.brokers, log, ['--log-level', 'info', '--http-port', '0']);
      const port = await operationsPort(daemon, log);
      await produce(broker.brokers, input, threeViews(users, base, 0));
      await waitFor('phase 1 committed', async () => (await groupCommitted(broker.brokers, `g-${input}`, input, 4)).every((offset) => offset >= 15), 60_000, 200);
      await produce(broker.brokers, input, threeViews(users, base, 10));
      await waitFor('phase 2 read', async () => (await eventsRead(port)) >= 2 * users * 3, 60_000, 20);
      await broker.kill();
      await waitFor('the pipeline restarted in the process', () => /restarting it in \d+ ms from its last checkpoint/.test(log.join('')), 120_000, 200);
      await broker.restart();
      await produce(broker.brokers, input, threeViews(users, base, 20));
      await produce(broker.brokers, input, sessionClosers(4, base));
      const sessions = () => userSessions(broker.brokers, output, true);
      await waitFor('every session in the committed output', async () => new Set((await sessions()).map((s) => s.userId)).size >= users, 150_000, 500);
      daemon.kill('SIGTERM');
      assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
      // Before: 12 (phase 2 went into the restored state, then was read again); with the newest checkpoint
      // turned down but pruning by age alone, 6 (no covered checkpoint left: phase 1 lost from the state;
      // with scale_out, each partition's state file likewise: 'partition starts with empty state').
      const counts = (await sessions()).map((s) => s.eventCount);
      assert.deepEqual(counts, Array<number>(users).fill(9), 'one session per user, each of its 9 events counted once');
      // The scenario happened: the restart found the newest checkpoint past the committed offsets (told
      // so by the committed offsets' marks, which name the checkpoint of the last committed transaction).
      assert.match(log.join(''), /holds input its sources' upstream never acknowledged .*resuming from the one before it that is covered|was written after the last commit its sources' upstream acknowledged, which names .*: resuming from that one/);
    } finally {
      if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

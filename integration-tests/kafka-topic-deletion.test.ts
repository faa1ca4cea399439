/**
 * A daemon reading a topic pattern while one of its topics is deleted, through a real broker: the
 * restart resumes from its last checkpoint, so the state of the surviving topic's records (a
 * sessionizer's sessions) is kept, under either guarantee, whether the topic went while the daemon ran
 * or while it was stopped, or was created again (with fewer records than the checkpoint's offsets)
 * before the restart, whose records are then read. Under exactly-once the brokers drop the group's
 * committed offsets of a deleted topic; a checkpoint naming that topic was found "not covered" and
 * the restart took an older checkpoint (the input read since lost from the state) or none. Deleted while
 * the daemon runs, with records of it read and not committed, its partitions (their hand-over commit
 * refused) no longer stay in every later checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readCheckpoint } from '../core/runtime/checkpoint.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonStarted, eventsRead, exited, kafkaBrokers, operationsPort, startDaemon, uniqueTopic, waitFor } from './kafka/env.js';
import { createTopic, deleteTopic, groupCommitted, produce, readTopic, sessionClosers, threeViews, userSessions, values, type RawRecord } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const users = 12;

/** One view on each partition of the topic created again, by users `r<partition>`. */
const recreatedViews: RawRecord[] = Array.from({ length: 4 }, (_, p) => ({ partition: p, key: `r${p}`, value: JSON.stringify({ user_id: `r${p}`, time: new Date(base + 3_600_000).toISOString(), type: 'view' }) }));

/** Views of users `b<n>` on the topic that is deleted: not threeViews' users, whose sessions the test counts. */
function otherViews(count: number): RawRecord[] {
  return Array.from({ length: count }, (_, i) => ({ partition: i % 4, key: `b${i}`, value: JSON.stringify({ user_id: `b${i}`, time: new Date(base + i * 1_000).toISOString(), type: 'view' }) }));
}

/** Whether the newest checkpoint in `folder` names a partition of `topic` in a source's position (true while none is readable). */
async function newestCheckpointNames(folder: string, topic: string): Promise<boolean> {
  const newest = readdirSync(folder).filter((name) => /^checkpoint-\d+\.json$/.test(name)).sort().at(-1);
  if (newest === undefined) return true;
  // Pruned meanwhile (keep): the next look finds a newer one.
  const body = await readCheckpoint(join(folder, newest)).catch(() => undefined);
  return body === undefined || Object.values(body.sources).some((position) => (position.offsets as Record<string, unknown> | undefined)?.[topic] !== undefined);
}

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
  for (const when of ['stopped', 'running', 'stopped, then created again'] as const) {
    test(`${guarantee}, a topic pattern: one of its topics deleted while the daemon is ${when}, the restart resumes from the last checkpoint (the surviving topic's session state kept)`, { timeout: 300_000 }, async (t) => {
      const brokers = kafkaBrokers(t);
      if (!brokers) return;
      const stem = uniqueTopic('del');
      const [kept, deleted, output] = [`${stem}-in-kept`, `${stem}-in-gone`, `${stem}-sessions`];
      const group = `g-${stem}`;
      const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-topic-deletion-'));
      const log: string[] = [];
      let daemon: ChildProcess | undefined;
      const exactlyOnce = guarantee === 'exactly-once';
      try {
        for (const topic of [kept, deleted, output]) await createTopic(brokers, topic, 4);
        const file = join(dir, 'pipeline.yaml');
        writeFileSync(
          file,
          `
name: topic-deletion
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    pattern: "^${stem}-in-.*"
    group: ${group}
    guarantee: ${guarantee}
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
    options: { heartbeat.interval.ms: 500, topic.metadata.refresh.interval.ms: 1000 }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [session], guarantee: ${guarantee}${exactlyOnce ? `, transactional_id: tx-${stem}` : ''} }
dead_letter: { type: file, path: ${join(dir, 'dead-letters.jsonl')} }
settings: { restart: { backoff: 100ms } }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }
`,
        );
        const committedAtLeast = (topic: string, offset: number) => async () => (await groupCommitted(brokers, group, topic, 4)).every((at) => at >= offset);
        const start = async (): Promise<ChildProcess> => {
          const started = startDaemon(file, brokers, log, ['--log-level', 'info', '--http-port', '0']);
          await daemonStarted(started, log, 'the daemon serving', () => /serving \/healthz/.test(log.join('')));
          return started;
        };
        const stop = async (running: ChildProcess): Promise<void> => {
          running.kill('SIGTERM');
          assert.equal(await exited(running), 0, 'a SIGTERM stop exits 0');
        };
        daemon = await start();
        // threeViews: 15 records per partition and phase (users * 3 / 4).
        const perPhase = (users * 3) / 4;
        await produce(brokers, kept, threeViews(users, base, 0));
        await produce(brokers, deleted, otherViews(8));
        await waitFor('phase 1 and the other topic committed', async () => (await committedAtLeast(kept, perPhase)()) && (await committedAtLeast(deleted, 2)()), 60_000, 200);
        if (when !== 'running') await stop(daemon);
        else {
          // Records of the topic read and not yet committed when it goes (the commit comes with the next
          // checkpoint, 1 s apart): its partitions' hand-over commit is refused.
          const port = await operationsPort(daemon, log);
          await produce(brokers, deleted, otherViews(4));
          await waitFor('the last records of the topic read', async () => (await eventsRead(port)) >= users * 3 + 8 + 4, 30_000, 10);
        }
        await deleteTopic(brokers, deleted);
        if (when === 'stopped, then created again') {
          // Its log ends at 1, below the checkpoint's offsets (2): not the log the checkpoint read.
          await waitFor('the topic deleted', async () => createTopic(brokers, deleted, 4).then(() => true, () => false), 30_000, 500);
          await produce(brokers, deleted, recreatedViews);
        }
        if (when !== 'running') {
          log.length = 0;
          daemon = await start();
        }
        await produce(brokers, kept, threeViews(users, base, 10));
        await waitFor('phase 2 committed', committedAtLeast(kept, 2 * perPhase), 60_000, 200);
        if (when === 'running') {
          // Before: at-least-once, the deleted topic's partitions (their hand-over commit refused) stayed in
          // every checkpoint; a restart after the topic's re-creation would seek the new log to their offsets.
          // (Unless the records were committed before the deletion: a race this test loses now and then.)
          await waitFor('a checkpoint that no longer names the deleted topic', async () => !(await newestCheckpointNames(join(dir, 'checkpoints'), deleted)), 30_000, 200);
          await stop(daemon);
          log.length = 0;
          daemon = await start();
        }
        await produce(brokers, kept, threeViews(users, base, 20));
        await produce(brokers, kept, sessionClosers(4, base));
        if (when === 'stopped, then created again') await produce(brokers, deleted, sessionClosers(4, base));
        const sessions = () => userSessions(brokers, output, exactlyOnce);
        await waitFor('every session in the output', async () => new Set((await sessions()).map((s) => s.userId)).size >= users, 120_000, 500);
        await stop(daemon);
        const restartLog = log.join('');
        assert.doesNotMatch(restartLog, /starting with empty state/, 'the restart resumed from a checkpoint');
        // At-least-once the restart's assignment leaves the deleted topic's partitions out of the checkpoint's offsets.
        // Before: it said 'partitions the group gave another member', no other member there.
        if (!exactlyOnce && when === 'stopped') assert.match(restartLog, /offsets of partitions not assigned here \(the group gave them to another member, or their topic was deleted\) are not used \([^)]*-in-gone\/0 at 2/);
        // At-least-once may write a session twice (a replay after a restart); each user's last one counts.
        const last = new Map((await sessions()).map((s) => [s.userId, s.eventCount]));
        assert.deepEqual([...last.values()], Array<number>(users).fill(9), 'one session per user holding all 9 of its events (before: 6 or 3, the state before the restart lost)');
        if (when === 'stopped, then created again') {
          // The new topic is read from start_from (earliest): its records, below the checkpoint's offsets, are not skipped.
          const read = values<{ userId: string }>(await readTopic(brokers, output, { committed: exactlyOnce, timeoutMs: 10_000 })).map((s) => s.userId);
          assert.deepEqual([...new Set(read.filter((user) => user.startsWith('r')))].sort(), ['r0', 'r1', 'r2', 'r3'], 'the re-created topic\'s records read');
        }
      } finally {
        if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

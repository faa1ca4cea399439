/**
 * Scale-out with two sources on co-partitioned topics (clicks and orders), two daemon processes in one group:
 * member B is killed with SIGKILL mid-stream, input of its tasks read past its last commit. Once its group
 * session lapses, A takes B's tasks over (partition p of both topics together) from the newest state file the
 * group's committed offsets of both topics cover, and reads both on from there. Every user's clicks and orders
 * still land in one whole session; exactly-once, the read_committed output holds each session once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { exited, kafkaBrokers, keptLog, waitFor } from './kafka/env.js';
import { produce, readTopic, values } from './kafka/client.js';
import { clicksAt, coSetting, logLines, ordersAt, partitions, sessionClosers, splitBetweenTwo, users, type CoMember } from './kafka/co-partitioned.js';

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
  test(`scale-out with two co-partitioned topics: a member killed with SIGKILL mid-stream hands its tasks (partition p of both topics) over once its session lapses; every session whole${guarantee === 'exactly-once' ? ', each committed once' : ''} (${guarantee})`, { timeout: 140_000 }, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const setting = await coSetting(brokers, 'cokill', guarantee);
    const { clicks, orders, output, dir, checkpointed } = setting;
    const daemons: CoMember[] = [];
    let passed = false;
    try {
      // Phase 1: member A alone holds every task; phase 2: B joins, takes partition p of both topics, and both checkpoint their share.
      const [a, b] = await splitBetweenTwo(setting, brokers, daemons);
      const heldByB = [...b.held].sort();
      await produce(brokers, clicks, clicksAt(5));
      await produce(brokers, orders, ordersAt(7, 2));
      await waitFor('both members to checkpoint phase 2', checkpointed(2), 90_000, 200);
      // Phase 3 goes in, and B dies with it in flight: some of it read, maybe written, past its last commit.
      await produce(brokers, clicks, clicksAt(10));
      await produce(brokers, orders, ordersAt(12, 3));
      b.process.kill('SIGKILL');
      await exited(b.process);
      // No revocation on A until B's 6 s session lapses; then A holds every task, B's restored from their files.
      await waitFor("member A to take B's tasks over", () => a.held.size === 2 * partitions, 60_000, 100);
      await produce(brokers, clicks, sessionClosers());
      const shopperSessions = async () =>
        values<{ userId: string; eventCount: number; purchased: boolean }>(await readTopic(brokers, output, { committed: true, timeoutMs: 10_000 })).filter((s) => /^u\d+$/.test(String(s.userId)));
      await waitFor('every shopper session in the committed output', async () => new Set((await shopperSessions()).map((s) => s.userId)).size >= users, 90_000, 500);
      a.process.kill('SIGTERM');
      assert.equal(await exited(a.process), 0, 'a SIGTERM stop exits 0');
      // A restored each of B's tasks from a file (not empty state: B's users' sessions would restart on A).
      const restored = logLines(a, 'partition state restored').map((entry) => String(entry['partition']));
      for (const id of heldByB.filter((id) => id.startsWith(`${clicks}-`))) {
        const task = `${id}+${orders}-${id.slice(clicks.length + 1)}`;
        assert.ok(restored.includes(task), `A restored ${task} from B's file (restored: ${restored.join(', ')})`);
      }
      const sessions = await shopperSessions();
      // Whole: 6 clicks and 3 orders each, whichever member read them.
      assert.deepEqual(sessions.filter((s) => s.eventCount !== 9 || !s.purchased).map((s) => `${s.userId}: ${s.eventCount} events, purchased ${s.purchased}`), [], 'every session has its 6 clicks and 3 orders');
      assert.equal(new Set(sessions.map((s) => s.userId)).size, users);
      t.diagnostic(`member B held ${heldByB.length / 2} of ${partitions} tasks when it was killed`);
      if (guarantee === 'exactly-once') assert.equal(sessions.length, users, 'one committed summary per user');
      else t.diagnostic(`at-least-once: ${sessions.length - users} duplicate summaries after the kill`);
      passed = true;
    } finally {
      if (!passed) for (const [i, { log }] of daemons.entries()) t.diagnostic(`member ${'ab'[i]}'s log: ${keptLog(log, `scale-co-kill-${'ab'[i]}`)}`);
      for (const { process: child } of daemons) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

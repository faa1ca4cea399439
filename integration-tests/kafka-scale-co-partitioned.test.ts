/**
 * Scale-out with two sources on co-partitioned topics (clicks and orders, one partition count, both keyed by
 * user): two daemon processes in one group, partition p of both topics in one task p on one member; member
 * A stops (SIGTERM) and B takes its tasks over with their state, both topics' offsets in each task's file.
 * Every user's orders still land in the session of their clicks, across both hand-overs, and (exactly-once)
 * every session is committed once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { exited, kafkaBrokers, keptLog, waitFor } from './kafka/env.js';
import { produce, readTopic, values } from './kafka/client.js';
import { clicksAt, coSetting, ordersAt, partitions, refusedCommits, sessionClosers, splitBetweenTwo, users, type CoMember } from './kafka/co-partitioned.js';

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
  test(`scale-out with two co-partitioned topics (clicks, orders): two members split the tasks, one stops, the other takes its tasks over; every order lands in its user's session (${guarantee})`, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const setting = await coSetting(brokers, 'co', guarantee);
    const { clicks, orders, output, dir, checkpointed } = setting;
    const daemons: CoMember[] = [];
    let passed = false;
    try {
      // Phase 1: member A alone holds every task; phase 2: member B joins, with partition p of both topics together.
      await splitBetweenTwo(setting, brokers, daemons);
      for (const daemon of daemons) {
        const numbers = (topic: string): string[] => [...daemon.held].filter((id) => id.startsWith(`${topic}-`)).map((id) => id.slice(topic.length + 1)).sort();
        assert.deepEqual(numbers(clicks), numbers(orders), 'a member holds partition p of both topics');
      }
      const movedToB = daemons[1]!.held.size / 2;
      await produce(brokers, clicks, clicksAt(5));
      await produce(brokers, orders, ordersAt(7, 2));
      await waitFor('both members to checkpoint phase 2', checkpointed(2), 90_000, 200);
      // A stops: B takes its tasks over from A's files. Phase 3, then a jump in event time, close every session on B.
      daemons[0]!.process.kill('SIGTERM');
      assert.equal(await exited(daemons[0]!.process), 0, 'a SIGTERM stop exits 0');
      // Its sources close together, so its hand-over commits while both consumers are in the group. (Closed one
      // after another, the first one's revocation waited until the group expelled it, and the brokers refused the
      // hand-over's transaction: "Unknown member".)
      if (guarantee === 'exactly-once') assert.deepEqual(refusedCommits(daemons[0]!), [], "member A's hand-over committed");
      await waitFor('member B to hold every task', () => daemons[1]!.held.size === 2 * partitions, 60_000, 100);
      await produce(brokers, clicks, clicksAt(10));
      await produce(brokers, orders, ordersAt(12, 3));
      await produce(brokers, clicks, sessionClosers());
      const shopperSessions = async () =>
        values<{ userId: string; eventCount: number; purchased: boolean; counts?: Record<string, number> }>(await readTopic(brokers, output, { committed: true, timeoutMs: 10_000 })).filter((s) => /^u\d+$/.test(String(s.userId)));
      await waitFor('every shopper session in the committed output', async () => new Set((await shopperSessions()).map((s) => s.userId)).size >= users, 120_000, 500);
      daemons[1]!.process.kill('SIGTERM');
      assert.equal(await exited(daemons[1]!.process), 0, 'a SIGTERM stop exits 0');
      if (guarantee === 'exactly-once') assert.deepEqual(refusedCommits(daemons[1]!), [], "member B's hand-over committed");
      const sessions = await shopperSessions();
      // Whole: 6 clicks and 3 orders each. Without the tasks keeping both topics' partition together, a user's
      // orders would open sessions of their own where their clicks were not (or be dead-lettered, no task here).
      assert.deepEqual(sessions.filter((s) => s.eventCount !== 9 || !s.purchased).map((s) => `${s.userId}: ${s.eventCount} events, purchased ${s.purchased}`), [], 'every session has its 6 clicks and 3 orders');
      assert.equal(new Set(sessions.map((s) => s.userId)).size, users);
      t.diagnostic(`member B held ${movedToB} of ${partitions} tasks before A stopped`);
      if (guarantee === 'exactly-once') assert.equal(sessions.length, users, 'one committed summary per user');
      else t.diagnostic(`at-least-once: ${sessions.length - users} duplicate summaries`);
      passed = true;
    } finally {
      // Failed: the members' logs, kept for the diagnosis.
      if (!passed) for (const [i, { log }] of daemons.entries()) t.diagnostic(`member ${'ab'[i]}'s log: ${keptLog(log, `scale-co-${'ab'[i]}`)}`);
      for (const { process: child } of daemons) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

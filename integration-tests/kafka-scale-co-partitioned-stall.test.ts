/**
 * Scale-out with two sources on co-partitioned topics (clicks and orders), two daemon processes in one group,
 * input coming on both topics all along: member B is stalled (SIGSTOP) past its group session, so the group
 * gives its tasks to A, then resumed (SIGCONT). B must find both topics' partitions lost and commit nothing of
 * them (no stale offsets; exactly-once, no outputs of their records twice); the output holds every record of
 * both topics (exactly-once: committed, once), and each task's newest state file is at the group's committed
 * offsets of both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, kafkaBrokers, keptLog, uniqueTopic, waitFor, daemonStarted } from './kafka/env.js';
import { createTopic, groupCommitted, produceEvery, readTopic, values } from './kafka/client.js';
import { base, partitions, pipelineYaml, savedOffsets, startMember, type CoMember } from './kafka/co-partitioned.js';

/** Order records' seq start: one output topic holds both topics' records, each told by its seq. */
const ORDERS = 1_000_000;

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
  test(`scale-out with two co-partitioned topics: a member stalled past its group session (SIGSTOP) while both topics keep coming finds both topics' partitions lost once resumed and commits nothing of them; the ${guarantee === 'exactly-once' ? 'committed ' : ''}output holds every click and order ${guarantee === 'exactly-once' ? 'once' : 'at least once'}, and each task's newest state file is at the group's committed offsets of both topics (${guarantee})`, {
    timeout: 140_000,
    // A known defect, not fixed yet: the test is right, the runtime is not.
    todo:
      guarantee === 'exactly-once'
        ? 'seen in 1 of 10 runs: outputs committed twice. Cause known (docs/operations.md, the known defect): a checkpoint between the two consumers\' revocations of one rebalance saved the task without the clicks offset and committed the orders offsets alone; the next owner could not use that file and restored an older one. A fix is on branch fix-eosstall, not merged (a missing output seen with it under heavy load, not understood yet)'
        : undefined,
  }, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const clicks = uniqueTopic(`costall-clicks-${guarantee}`);
    const orders = uniqueTopic(`costall-orders-${guarantee}`);
    const output = uniqueTopic(`costall-out-${guarantee}`);
    for (const topic of [clicks, orders, output]) await createTopic(brokers, topic, partitions);
    const dir = mkdtempSync(join(tmpdir(), 'tributary-scale-co-stall-'));
    const stateDir = join(dir, 'partition-state');
    // B's checkpoints far apart: none falls between its resume and the revocation that says its partitions were
    // lost, so that revocation finds its transaction open, holding outputs of their records.
    const files = (['a', 'b'] as const).map((member) => {
      const file = join(dir, `${member}.yaml`);
      writeFileSync(file, pipelineYaml({ clicks, orders, output, guarantee, member, dir, outputs: 'events', checkpointInterval: member === 'a' ? '1s' : '40s', restartBackoff: '100ms' }));
      return file;
    });
    const user = (seq: number): string => `u${seq % 48}`;
    // Keyed by user on both topics (user u in partition u % 4 of each), as co-partitioned producers write.
    const feeds = [
      produceEvery(brokers, clicks, 6, (seq) => ({ partition: (seq % 48) % partitions, key: user(seq), value: JSON.stringify({ user_id: user(seq), time: new Date(base + seq * 10).toISOString(), type: 'view', seq }) })),
      produceEvery(brokers, orders, 12, (seq) => ({ partition: (seq % 48) % partitions, key: user(seq), value: JSON.stringify({ customer_id: user(seq), created_at: new Date(base + seq * 20).toISOString(), total: 10, seq: ORDERS + seq }) })),
    ];
    let fed: [number, number] | undefined;
    // To the end once the members stopped (else it throws): a read cut short could miss the duplicates it looks for.
    const committed = async (toEnd = false): Promise<number[]> => values<{ attrs?: { seq?: number } }>(await readTopic(brokers, output, { committed: true, toEnd, timeoutMs: 10_000 })).map((event) => Number(event.attrs?.seq));
    const daemons: CoMember[] = [];
    let passed = false;
    try {
      daemons.push(startMember(files[0]!, brokers), startMember(files[1]!, brokers));
      const [a, b] = daemons as [CoMember, CoMember];
      await daemonStarted(b.process, b.log, 'the group to split the tasks', () => a.held.size > 0 && b.held.size > 0 && a.held.size + b.held.size === 2 * partitions, 100);
      await waitFor('member A to commit outputs of both topics, and B to hold some read past its last commit', async () => {
        const seqs = await committed();
        return seqs.filter((seq) => seq < ORDERS).length >= 400 && seqs.filter((seq) => seq >= ORDERS).length >= 200;
      }, 60_000, 500);
      // Frozen past its 6 s session: the group gives B's tasks to A, which commits them on (checkpoints 1 s apart).
      b.process.kill('SIGSTOP');
      await waitFor('member A to take every task', () => a.held.size === 2 * partitions, 30_000, 100);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      b.process.kill('SIGCONT');
      await waitFor('member B to learn it lost its partitions', () => /partitions lost|lost its partitions/.test(b.log.join('')), 30_000, 100);
      await waitFor('the group to split the tasks again', () => a.held.size > 0 && b.held.size > 0 && a.held.size + b.held.size === 2 * partitions, 60_000, 100);
      fed = [await feeds[0]!.stop(), await feeds[1]!.stop()];
      const [clickCount, orderCount] = fed;
      const expected = clickCount + orderCount;
      // B first: its stop commits what it read and hands its tasks to A, which reads them to the end.
      b.process.kill('SIGTERM');
      assert.equal(await exited(b.process), 0, 'a SIGTERM stop exits 0');
      await waitFor('every record of both topics in the committed output', async () => new Set(await committed()).size >= expected, 60_000, 500);
      a.process.kill('SIGTERM');
      assert.equal(await exited(a.process), 0, 'a SIGTERM stop exits 0');
      const counts = new Map<number, number>();
      for (const seq of await committed(true)) counts.set(seq, (counts.get(seq) ?? 0) + 1);
      if (guarantee === 'exactly-once') assert.deepEqual([...counts].filter(([, n]) => n !== 1).slice(0, 20), [], 'no output committed twice');
      else t.diagnostic(`at-least-once: ${[...counts.values()].filter((n) => n > 1).length} outputs written more than once`);
      assert.equal([...counts.keys()].filter((seq) => seq < ORDERS).length, clickCount, 'every click committed');
      assert.equal([...counts.keys()].filter((seq) => seq >= ORDERS).length, orderCount, 'every order committed');
      // The last owner's file: none written after it by a member that had lost the task, of either topic.
      const [ofClicks, ofOrders] = await Promise.all([groupCommitted(brokers, `g-${clicks}`, clicks, partitions), groupCommitted(brokers, `g-${clicks}`, orders, partitions)]);
      assert.deepEqual(
        await savedOffsets(stateDir, clicks, orders),
        ofClicks.map((offset, p) => ({ clicks: offset, orders: ofOrders[p] })),
        "each task's newest state file is at the group's committed offsets of both topics",
      );
      t.diagnostic(`${clickCount} clicks and ${orderCount} orders`);
      passed = true;
    } finally {
      if (!passed) for (const [i, { log }] of daemons.entries()) t.diagnostic(`member ${'ab'[i]}'s log: ${keptLog(log, `scale-co-stall-${'ab'[i]}`)}`);
      if (fed === undefined) for (const feed of feeds) await feed.stop();
      for (const { process: child } of daemons) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGCONT');
          child.kill('SIGKILL');
        }
      }
      // Failed: the state files and checkpoints too, for the diagnosis.
      if (passed) rmSync(dir, { recursive: true, force: true });
      else t.diagnostic(`the members' files: ${dir}`);
    }
  });
}

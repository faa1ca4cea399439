/**
 * Scale-out through real daemon processes and a real broker: two members split the partitions with
 * their per-user state; one is killed with SIGKILL mid-stream; the survivor takes its partitions over
 * from the shared partition state (the newest file its group's committed offset covers) and replays
 * the rest. Every session still closes whole, and in exactly-once mode exactly once. And a member
 * stalled past its group session (SIGSTOP) while input keeps coming: exactly-once, it commits nothing of
 * the partitions it lost, and the committed output holds every record once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointStore } from 'tributary';
import { daemonStarted, exited, kafkaBrokers, keptLog, followPartitions, startDaemon, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, createTopic, groupCommitted, produce, produceEvery, readTopic, values, type RawRecord } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const users = 40;
const partitions = 4;

function pipelineYaml(input: string, output: string, guarantee: string, member: string, dir: string): string {
  return `
name: scale-crash
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: g-${input}
    guarantee: ${guarantee}
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
    # A killed member's partitions move after 6 s instead of librdkafka's default 45 s.
    options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500 }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topic: ${output}
    kinds: [session]
    guarantee: ${guarantee}
    transactional_id: tx-${output}-${member}
# Two members in one folder: each its own dead-letter file (a file has one writing process: its lock).
dead_letter: { type: file, path: ${join(dir, `dead-letters-${member}.jsonl`)} }
checkpoint: { dir: ${join(dir, `checkpoints-${member}`)}, interval: 300ms }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
}

interface Daemon {
  process: ChildProcess;
  /** Partitions of its latest assignment, from its log. */
  assigned: string[];
}

function startMember(file: string, brokers: string, log?: string[]): Daemon {
  const child = startDaemon(file, brokers, log, ['--log-level', 'info']);
  const daemon: Daemon = { process: child, assigned: [] };
  followPartitions(child, (msg, ids) => {
    if (msg === 'kafka partitions assigned') daemon.assigned = ids;
    else if (msg.startsWith('kafka partitions revoked')) daemon.assigned = [];
  });
  return daemon;
}

/** Three more events for every user, `minute` minutes into their sessions (user u lives in partition u % 4). */
const phase = (minute: number, seq: number): RawRecord[] =>
  Array.from({ length: users * 3 }, (_, i) => {
    const user = i % users;
    const time = base + minute * 60_000 + Math.floor(i / users) * 60_000 + user * 1_000;
    return { partition: user % partitions, key: `u${user}`, value: JSON.stringify({ user_id: `u${user}`, time: new Date(time).toISOString(), type: 'view', seq: seq + i }) };
  });

/** Offset the newest state file of each partition covers (undefined: none yet). */
async function savedOffsets(stateDir: string, topic: string): Promise<(number | undefined)[]> {
  return Promise.all(
    Array.from({ length: partitions }, async (_, p) => {
      const saved = await new CheckpointStore(join(stateDir, `${topic}-${p}`)).latest();
      return saved ? (Object.values(saved.sources)[0] as { offset: number }).offset : undefined;
    }),
  );
}

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
  test(`scale-out: a member killed with SIGKILL hands its partitions and their state over (${guarantee})`, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const input = uniqueTopic(`scale-in-${guarantee}`);
    const output = uniqueTopic(`scale-out-${guarantee}`);
    for (const topic of [input, output]) await createTopic(brokers, topic, partitions);
    const dir = mkdtempSync(join(tmpdir(), 'tributary-scale-crash-'));
    const files = ['a', 'b'].map((member) => {
      const file = join(dir, `${member}.yaml`);
      writeFileSync(file, pipelineYaml(input, output, guarantee, member, dir));
      return file;
    });
    const stateDir = join(dir, 'partition-state');
    const perPartition = (users / partitions) * 3;
    const checkpointed = (records: number) => async () => (await savedOffsets(stateDir, input)).every((offset) => offset !== undefined && offset >= records);
    const daemons: Daemon[] = [];
    try {
      // Phase 1: member A alone begins every session; its checkpoints save all four partitions.
      daemons.push(startMember(files[0]!, brokers));
      await produce(brokers, input, phase(0, 0));
      await daemonStarted(daemons[0]!.process, undefined, 'member A to checkpoint phase 1 of every partition', checkpointed(perPartition), 200);
      // Phase 2: member B joins and takes partitions with their state; both checkpoint their share.
      daemons.push(startMember(files[1]!, brokers));
      await daemonStarted(daemons[1]!.process, undefined, 'the group to split the partitions', () => daemons.every((d) => d.assigned.length > 0) && daemons[0]!.assigned.length + daemons[1]!.assigned.length === partitions, 100);
      const movedToB = daemons[1]!.assigned.length;
      await produce(brokers, input, phase(5, 1_000));
      await waitFor('both members to checkpoint phase 2', checkpointed(2 * perPartition), 90_000, 200);
      // Phase 3 goes in, and B dies with it in flight (some of it past B's last checkpoint).
      await produce(brokers, input, phase(10, 2_000));
      daemons[1]!.process.kill('SIGKILL');
      await exited(daemons[1]!.process);
      // Phase 4 and then a jump in event time on every partition close every session on member A.
      await produce(brokers, input, phase(15, 3_000));
      await produce(
        brokers,
        input,
        Array.from({ length: partitions }, (_, p) => ({ partition: p, key: `close-${p}`, value: JSON.stringify({ user_id: `close-${p}`, time: new Date(base + 3 * 3_600_000).toISOString(), type: 'view' }) })),
      );
      const shopperSessions = async () =>
        values(await readTopic(brokers, output, { committed: true, timeoutMs: 10_000 })).filter((s) => /^u\d+$/.test(String(s.userId)));
      await waitFor('every shopper session in the committed output', async () => new Set((await shopperSessions()).map((s) => s.userId)).size >= users, 120_000, 500);
      await waitFor('member A to own every partition again', () => daemons[0]!.assigned.length === partitions, 60_000, 100);
      daemons[0]!.process.kill('SIGTERM');
      assert.equal(await exited(daemons[0]!.process), 0, 'a SIGTERM stop exits 0');
      const sessions = await shopperSessions();
      // Whole: 12 events each (3 per phase). Without the hand-over B's users would restart on A mid-session.
      assert.deepEqual(sessions.map((s) => s.eventCount).filter((count) => count !== 12), [], 'every session has all 12 of its events');
      assert.equal(new Set(sessions.map((s) => s.userId)).size, users);
      t.diagnostic(`member B held ${movedToB} of ${partitions} partitions when it was killed`);
      if (guarantee === 'exactly-once') assert.equal(sessions.length, users, 'one committed summary per user');
      else t.diagnostic(`at-least-once: ${sessions.length - users} duplicate summaries after the kill`);
    } finally {
      for (const { process: child } of daemons) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('exactly-once scale-out, cooperative rebalance: a member that keeps some partitions when another joins commits their outputs with their offsets, so a SIGKILL right after writes none of them twice', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('coop-in');
  const output = uniqueTopic('coop-out');
  for (const topic of [input, output]) await createTopic(brokers, topic, partitions);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-coop-'));
  // Member A checkpoints rarely: no periodic commit falls between the rebalance and its kill. B often.
  const yaml = (member: string, interval: string): string => `
name: coop
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: g-${input}
    guarantee: exactly-once
    start_from: earliest
    mapping: { attributes: [seq] }
    options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500, partition.assignment.strategy: cooperative-sticky }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [event], guarantee: exactly-once, transactional_id: tx-${output}-${member}, transaction_timeout: 60s }
dead_letter: { type: file, path: ${join(dir, `dead-letters-${member}.jsonl`)} }
checkpoint: { dir: ${join(dir, `checkpoints-${member}`)}, interval: ${interval} }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
  const files = [yaml('a', '40s'), yaml('b', '300ms')].map((text, i) => {
    const file = join(dir, `${i === 0 ? 'a' : 'b'}.yaml`);
    writeFileSync(file, text);
    return file;
  });
  const record = (seq: number, partition: number): RawRecord => ({ partition, key: `u${seq}`, value: JSON.stringify({ user_id: `u${seq}`, time: new Date(base + seq * 1_000).toISOString(), type: 'view', seq }) });
  const logA: string[] = [];
  const children: ChildProcess[] = [];
  try {
    children.push(startDaemon(files[0]!, brokers, logA, ['--log-level', 'info']));
    await produce(brokers, input, Array.from({ length: 40 }, (_, seq) => record(seq, seq % partitions)));
    // Every output is in A's open transaction (read uncommitted), none committed.
    await daemonStarted(children[0]!, logA, 'member A to write the outputs of all 40', async () => (await readTopic(brokers, output, { expect: 40, timeoutMs: 5_000 })).length >= 40, 200);
    children.push(startDaemon(files[1]!, brokers, undefined, ['--log-level', 'warn']));
    await daemonStarted(children[1]!, undefined, 'member A to hand partitions over, keeping the others', () => logA.join('').includes('kafka partitions revoked, state handed over'), 50);
    children[0]!.kill('SIGKILL');
    await exited(children[0]!);
    // B takes A's other partitions once A's session lapses; a last record on every partition, once committed, says it read them all.
    await produce(brokers, input, Array.from({ length: partitions }, (_, p) => record(1_000 + p, p)));
    const committed = async (): Promise<number[]> => values<{ attrs?: { seq?: number } }>(await readTopic(brokers, output, { committed: true, timeoutMs: 10_000 })).map((event) => Number(event.attrs?.seq));
    await waitFor('the last record of every partition committed', async () => (await committed()).filter((seq) => seq >= 1_000).length >= partitions, 120_000, 500);
    children[1]!.kill('SIGTERM');
    assert.equal(await exited(children[1]!), 0);
    const seqs = await committed();
    const counts = new Map<number, number>();
    for (const seq of seqs) counts.set(seq, (counts.get(seq) ?? 0) + 1);
    assert.deepEqual([...counts].filter(([, n]) => n !== 1), [], 'no output committed twice');
    assert.equal(counts.size, 40 + partitions, 'every output committed');
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exactly-once scale-out: a member stalled past its group session (SIGSTOP) while it reads commits nothing of the partitions it lost once resumed: the other member takes them over, the committed output holds every record once, and each partition\'s newest state file is the one its committed offset covers', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('stall-scale-in');
  const output = uniqueTopic('stall-scale-out');
  for (const topic of [input, output]) await createTopic(brokers, topic, partitions);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-stall-scale-'));
  const stateDir = join(dir, 'partition-state');
  const files = ['a', 'b'].map((member) => {
    const file = join(dir, `${member}.yaml`);
    writeFileSync(
      file,
      `
name: stall-scale
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: g-${input}
    guarantee: exactly-once
    start_from: earliest
    mapping: { attributes: [seq] }
    options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500 }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [event], guarantee: exactly-once, transactional_id: tx-${output}-${member} }
dead_letter: { type: file, path: ${join(dir, `dead-letters-${member}.jsonl`)} }
settings:
  restart: { backoff: 100ms }
# B's checkpoints far apart: none falls between its resume and the revocation that says its partitions
# were lost, so that revocation finds its transaction open, holding outputs of their records.
checkpoint: { dir: ${join(dir, `checkpoints-${member}`)}, interval: ${member === 'a' ? '1s' : '40s'} }
scale_out: { state_dir: ${stateDir} }
`,
    );
    return file;
  });
  const logs: [string[], string[]] = [[], []];
  const daemons: Daemon[] = [];
  // Input keeps coming on every partition, so the stalled member holds records read past its last commit.
  const feed = produceEvery(brokers, input, 4, (seq) => ({ partition: seq % partitions, key: `u${seq % 50}`, value: clickJson(seq % 50, base + seq, 'view', { seq }) }));
  let fed: number | undefined;
  // To the end once the members stopped (else it throws): a read cut short could miss the duplicates it looks for.
  const committed = async (toEnd = false): Promise<number[]> => values<{ attrs?: { seq?: number } }>(await readTopic(brokers, output, { committed: true, toEnd, timeoutMs: 10_000 })).map((event) => Number(event.attrs?.seq));
  try {
    daemons.push(startMember(files[0]!, brokers, logs[0]), startMember(files[1]!, brokers, logs[1]));
    await daemonStarted(daemons[1]!.process, logs[1], 'the group to split the partitions', () => daemons.every((d) => d.assigned.length > 0) && daemons[0]!.assigned.length + daemons[1]!.assigned.length === partitions, 100);
    await waitFor('member A to commit outputs, and B to hold some in its open transaction', async () => (await committed()).length >= 1_000, 60_000, 500);
    // Frozen past its 6 s session: the group gives B's partitions to A, which commits them on (checkpoints 1 s apart).
    daemons[1]!.process.kill('SIGSTOP');
    await waitFor('member A to take every partition', () => daemons[0]!.assigned.length === partitions, 30_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    daemons[1]!.process.kill('SIGCONT');
    await waitFor('member B to learn it lost its partitions', () => /partitions lost|lost its partitions/.test(logs[1].join('')), 30_000, 100);
    await waitFor('the group to split the partitions again', () => daemons.every((d) => d.assigned.length > 0), 60_000, 100);
    fed = await feed.stop();
    const count = fed;
    // B first: its stop commits what it read (its checkpoints are 40 s apart) and hands its partitions to A, which reads them to the end.
    daemons[1]!.process.kill('SIGTERM');
    assert.equal(await exited(daemons[1]!.process), 0, 'a SIGTERM stop exits 0');
    await waitFor('every record in the committed output', async () => new Set(await committed()).size >= count, 60_000, 500);
    daemons[0]!.process.kill('SIGTERM');
    assert.equal(await exited(daemons[0]!.process), 0, 'a SIGTERM stop exits 0');
    const counts = new Map<number, number>();
    for (const seq of await committed(true)) counts.set(seq, (counts.get(seq) ?? 0) + 1);
    assert.deepEqual([...counts].filter(([, n]) => n !== 1).slice(0, 20), [], 'no output committed twice');
    assert.equal(counts.size, count, 'every output committed');
    // The last owner's file: none written after it by a member that had lost the partition.
    assert.deepEqual(await savedOffsets(stateDir, input), await groupCommitted(brokers, `g-${input}`, input, partitions), "each partition's newest state file is at the group's committed offset");
  } catch (error) {
    t.diagnostic(`member A's log: ${keptLog(logs[0], 'stall-scale-a')}; member B's log: ${keptLog(logs[1], 'stall-scale-b')}`);
    throw error;
  } finally {
    if (fed === undefined) await feed.stop();
    for (const { process: child } of daemons) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

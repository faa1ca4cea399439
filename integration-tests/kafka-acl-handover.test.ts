/**
 * Exactly-once and partition hand-overs against a broker that authorises what its clients do (SASL PLAIN
 * users, ACLs): a partition whose fetch is denied, or an offset commit refused at a hand-over, loses and
 * duplicates nothing. Each test starts a broker of its own (the run's broker has no authorizer).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { runYaml, tempFolder, testContext } from 'tributary/testing';
import { defineSink, type SinkPlugin, type SourcePlugin } from 'tributary';
import kafkaSource, { type KafkaSourceConfig } from '../plugins/kafka/source.js';
import type { SecurityConfig } from '../plugins/kafka/common.js';
import { daemonStarted, exited, kafkaBrokers, startDaemon, uniqueTopic, unlessFailed, waitFor, type WatchedRun } from './kafka/env.js';
import { clickJson, collectSink, createTopic, groupCommitted, produce, readTopic, values } from './kafka/client.js';
import { aclCommand, startNativeBroker } from './kafka/broker.js';
import { alice, base, brokerWithReader } from './kafka/acl.js';

test('exactly-once scale_out: a partition whose fetch the brokers deny closes no session by time while its offset cannot be committed, so its next owner, restoring the file its committed offset names, writes none of its sessions twice', { timeout: 300_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  const { broker, admin, topics: [allowed, denied, output] } = await brokerWithReader(t, 'acl-eos-allowed', 'acl-eos-denied', 'acl-eos-out');
  // Exactly-once needs more than reading: writing the output and the transactions' ids.
  aclCommand(broker, ['--add', '--allow-principal', 'User:alice', '--operation', 'All', '--topic', '*', '--transactional-id', '*']);
  const dir = tempFolder(t, 'acl-eos');
  const sasl = '{ protocol: sasl_plaintext, sasl: { mechanism: PLAIN, username: alice, password: alice-secret } }';
  // idle_timeout 1h: no partition goes idle until the test moves the run's clock on.
  const yaml = `
name: acl-eos
sources:
  - type: kafka
    brokers: "${broker.brokers}"
    topics: [${allowed}, ${denied}]
    group: g-${allowed}
    guarantee: exactly-once
    start_from: earliest
    security: ${sasl}
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "${broker.brokers}", topic: ${output}, kinds: [session], guarantee: exactly-once, transactional_id: tx-${output}, security: ${sasl} }
dead_letter: { type: collect }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 2s }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
  const files = (topic: string): string[] => {
    try {
      return readdirSync(join(dir, 'partition-state', `${topic}-0`)).filter((name) => name.startsWith('checkpoint-')).sort();
    } catch {
      return [];
    }
  };
  const view = (user: number, minutes: number) => ({ key: `u${user}`, value: clickJson(user, base + minutes * 60_000) });
  const sessions = async (): Promise<string[]> => values<{ userId: string }>(await readTopic(admin, output, { committed: true, timeoutMs: 5_000 })).map((s) => s.userId);
  // The run now going: one that fails meanwhile ends a wait at once, with why and its last log lines.
  let current: WatchedRun = { failed: undefined };
  const start = (options: { clock?: { now(): number }; lines?: string[] } = {}) => {
    const controller = new AbortController();
    const lines = options.lines ?? [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const running = runYaml(yaml, { plugins: [collectSink([[]])], signal: controller.signal, logger, ...(options.clock ? { clock: options.clock } : {}) });
    const run = { failed: undefined as unknown, lines };
    current = run;
    running.catch((error: unknown) => (run.failed = error));
    return async () => {
      controller.abort();
      await running.catch(() => undefined);
    };
  };
  // Run 1: u0 opens on the allowed topic, u1 on the denied one (not denied yet); both saved and handed over.
  let stop = start();
  try {
    await produce(admin, allowed, [view(0, 0)]);
    await produce(admin, denied, [view(1, 0)]);
    await waitFor('both partitions saved', unlessFailed(() => [current], () => files(allowed).length > 0 && files(denied).length > 0), 60_000, 100);
  } finally {
    await stop();
  }
  // Run 2: Read on the denied topic withdrawn. Once the source names it unreadable, the run's clock moves
  // an hour on (every partition idle), and the allowed topic reads an event two hours on: its watermark
  // closes u0, and the denied partition's, following it once idle, closed u1 in the same transaction.
  // That transaction could not commit the denied partition's offset (the brokers refuse it) with the mark
  // of the file that saved u1 closed: its committed offset kept naming the file with u1 open.
  aclCommand(broker, ['--add', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
  const skew = { ms: 0 };
  const lines: string[] = [];
  stop = start({ clock: { now: () => Date.now() + skew.ms }, lines });
  try {
    await waitFor('the denied topic named unreadable', unlessFailed(() => [current], () => lines.some((line) => line.includes(`cannot read topic '${denied}'`))), 60_000, 100);
    skew.ms = 3_600_000;
    await produce(admin, allowed, [view(100, 120)]);
    await waitFor('u0 closed and committed', unlessFailed(() => [current], async () => (await sessions()).includes('u0')), 90_000, 500);
  } finally {
    await stop();
  }
  // Run 3: Read allowed again. Each topic reads an event at +4 h, then one at +6 h, which closes it: u1
  // closes on the way (before: a second time, from the restored file that still held it open).
  aclCommand(broker, ['--remove', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
  stop = start();
  try {
    await produce(admin, allowed, [view(101, 240), view(102, 360)]);
    await produce(admin, denied, [view(103, 240), view(104, 360)]);
    await waitFor(
      'u101 and u103 committed',
      unlessFailed(() => [current], async () => {
        const written = await sessions();
        return written.includes('u101') && written.includes('u103');
      }),
      90_000,
      500,
    );
  } finally {
    await stop();
  }
  const counts: Record<string, number> = {};
  for (const id of values<{ userId: string }>(await readTopic(admin, output, { committed: true, toEnd: true, timeoutMs: 15_000 })).map((s) => s.userId)) counts[id] = (counts[id] ?? 0) + 1;
  assert.deepEqual(counts, { u0: 1, u1: 1, u100: 1, u101: 1, u103: 1 }, 'one session summary per user');
});

/**
 * A sink (tests only) that writes nothing and whose flush waits while `gate.shut` is pending: a checkpoint
 * flushes the sinks between taking its position and committing it, so while shut no commit is made.
 */
function gatedSink(gate: { shut?: Promise<void>; held: number }): SinkPlugin<Record<string, never>> {
  return defineSink<Record<string, never>>({
    name: 'gated',
    summary: 'Writes nothing; its flush waits while the test holds it (tests only).',
    config: { type: 'object', additionalProperties: false, properties: {} },
    create: () => ({
      write: () => undefined,
      flush: async () => {
        if (gate.shut === undefined) return;
        gate.held++;
        await gate.shut;
      },
      close: async () => undefined,
    }),
  });
}

for (const scaleOut of [false, true]) {
test(`exactly-once${scaleOut ? ' scale_out' : ''}: while the brokers deny a partition's fetch, a rebalance and a stop (SIGTERM: exit 0) hand over cleanly, the readable partition's outputs and offsets committed and the denied one's offset left where it stood, named in a log line; allowed again, its records are read, each output once`, { timeout: 300_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  const runs: (WatchedRun & { stop(): Promise<unknown> })[] = [];
  // Whatever still runs when the test fails stops, before the broker does (hooks run in their order).
  t.after(async () => {
    for (const run of runs) await run.stop();
  });
  const { broker, admin, topics: [allowed, denied, output] } = await brokerWithReader(t, 'acl-stop-allowed', 'acl-stop-denied', 'acl-stop-out');
  aclCommand(broker, ['--add', '--allow-principal', 'User:alice', '--operation', 'All', '--topic', '*', '--transactional-id', '*']);
  const dir = tempFolder(t, 'acl-stop');
  const group = `g-${allowed}`;
  const sasl = '{ protocol: sasl_plaintext, sasl: { mechanism: PLAIN, username: alice, password: alice-secret } }';
  // Members of one group (a and b), each with its own transactional_id and checkpoints; in this process
  // with a gated sink, or the daemon's (without: it knows no test plugin).
  const yaml = (member: string, gated = true) => `
name: acl-stop
sources:
  - { type: kafka, brokers: "${broker.brokers}", topics: [${allowed}, ${denied}], group: ${group}, guarantee: exactly-once, start_from: earliest, security: ${sasl} }
sinks:
  - { type: kafka, brokers: "${broker.brokers}", topic: ${output}, kinds: [event], guarantee: exactly-once, transactional_id: tx-${output}-${member}, security: ${sasl} }
${gated ? '  - { type: gated }' : ''}
checkpoint: { dir: ${join(dir, `checkpoints-${member}`)}, interval: 1s }
${scaleOut ? `scale_out: { state_dir: ${join(dir, 'partition-state')} }` : ''}
`;
  const view = (user: number) => ({ key: `u${user}`, value: clickJson(user, base + user * 1_000) });
  const outputs = async (toEnd = false): Promise<string[]> => values<{ userId: string }>(await readTopic(admin, output, { committed: true, timeoutMs: toEnd ? 15_000 : 3_000, toEnd })).map((event) => event.userId);
  const gate: { shut?: Promise<void>; held: number } = { held: 0 };
  // A run that failed ends a wait at once, saying why, with its last log lines.
  const unlessOneFailed = (condition: () => boolean | Promise<boolean>) => unlessFailed(() => runs, condition);
  const committedOutput = (...users: string[]) =>
    unlessOneFailed(async () => {
      const written = await outputs();
      return users.every((user) => written.includes(user));
    });
  /** A run of member `member` in this process: `stop` resolves with how it ended (undefined: cleanly). */
  const start = (member: string) => {
    const controller = new AbortController();
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const running = runYaml(yaml(member), { plugins: [gatedSink(gate)], signal: controller.signal, logger });
    const run = { name: `member ${member}`, failed: undefined as unknown, lines, stop: async (): Promise<unknown> => (controller.abort(), running.then(() => undefined, (error: unknown) => error)) };
    running.catch((error: unknown) => (run.failed = error));
    runs.push(run);
    return run;
  };
  const count = (lines: readonly string[], text: string): number => lines.join('').split(text).length - 1;
  const namesDenied = (lines: readonly string[]) => lines.join('').includes(`handing over partitions it cannot read (${denied}/0 at 1)`);

  // Member a reads u0 on the allowed topic and u1 on the other, committed.
  const a = start('a');
  await produce(admin, allowed, [view(0)]);
  await produce(admin, denied, [view(1)]);
  await waitFor('u0 and u1 committed', committedOutput('u0', 'u1'), 60_000, 500);
  // Read on the topic withdrawn while a checkpoint waits for its sinks: no commit is made before the source
  // finds it denied (one made before would name its offset, which the brokers refuse: a failed transaction).
  let open!: () => void;
  gate.shut = new Promise<void>((resolve) => (open = resolve));
  await waitFor('a checkpoint held', unlessOneFailed(() => gate.held > 0), 30_000, 50);
  aclCommand(broker, ['--add', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
  await waitFor('a names the denied topic', unlessOneFailed(() => a.lines.join('').includes(`cannot read topic '${denied}'`)), 30_000, 100);
  gate.shut = undefined;
  open();
  await produce(admin, denied, [view(2)]);
  await produce(admin, allowed, [view(3)]);
  await waitFor('u3 committed', committedOutput('u3'), 60_000, 500);
  // Member b joins: the group revokes a's partitions, the denied one among them (eager: all). Before,
  // that hand-over committed the denied partition's offset, which the brokers refuse: the transaction
  // failed, and the pipeline with it.
  const b = start('b');
  await waitFor('b assigned', unlessOneFailed(() => count(b.lines, 'kafka partitions assigned') > 0), 60_000, 100);
  await waitFor('a assigned again', unlessOneFailed(() => count(a.lines, 'kafka partitions assigned') >= 2), 60_000, 100);
  assert.ok(namesDenied(a.lines), 'the hand-over names the denied partition');
  await produce(admin, allowed, [view(4)]);
  await waitFor('u4 committed', committedOutput('u4'), 60_000, 500);
  assert.equal(await b.stop(), undefined, 'member b stops cleanly');
  await waitFor('a has every partition again', unlessOneFailed(() => count(a.lines, 'kafka partitions assigned') >= 3), 60_000, 100);
  await produce(admin, allowed, [view(5)]);
  await waitFor('u5 committed', committedOutput('u5'), 60_000, 500);
  assert.equal(await a.stop(), undefined, 'member a stops cleanly');
  assert.equal(count(a.lines, 'kafka transaction failed'), 0);
  // The daemon, the partition denied from its start: a SIGTERM stop exits 0 and names the partition.
  const file = join(dir, 'daemon.yaml');
  writeFileSync(file, yaml('a', false));
  const log: string[] = [];
  const daemon = startDaemon(file, broker.brokers, log, ['--log-level', 'info']);
  try {
    await daemonStarted(daemon, log, 'the daemon names the denied topic', () => log.join('').includes(`cannot read topic '${denied}'`), 100);
    await produce(admin, allowed, [view(6)]);
    await waitFor('u6 committed', committedOutput('u6'), 60_000, 500);
  } finally {
    daemon.kill('SIGTERM');
  }
  assert.equal(await exited(daemon), 0, `a SIGTERM stop exits 0: ${log.join('').slice(-3_000)}`);
  assert.ok(namesDenied(log), 'the stop names the denied partition');
  assert.deepEqual([await groupCommitted(admin, group, allowed, 1), await groupCommitted(admin, group, denied, 1)], [[5], [1]], 'the allowed topic committed to its end, the denied one where it stood');
  // Read allowed again: the denied topic's waiting record is read from where its offset stood.
  aclCommand(broker, ['--remove', '--deny-principal', 'User:alice', '--operation', 'Read', '--topic', denied]);
  const last = start('a');
  await waitFor('u2 committed', committedOutput('u2'), 60_000, 500);
  assert.equal(await last.stop(), undefined, 'the last run stops cleanly');
  const counts: Record<string, number> = {};
  for (const user of await outputs(true)) counts[user] = (counts[user] ?? 0) + 1;
  assert.deepEqual(counts, { u0: 1, u1: 1, u2: 1, u3: 1, u4: 1, u5: 1, u6: 1 }, 'each output once');
});
}

/** A broker of the test's own where alice and bob may read every topic and group, and a topic of 2 partitions read by group `group`. */
async function twoReaders(t: TestContext, prefix: string) {
  const broker = await startNativeBroker({ partitions: 1, users: { alice: 'alice-secret', bob: 'bob-secret' } });
  t.after(() => broker.stop());
  for (const user of ['alice', 'bob']) aclCommand(broker, ['--add', '--allow-principal', `User:${user}`, '--operation', 'Read', '--operation', 'Describe', '--topic', '*', '--group', '*']);
  const topic = uniqueTopic(prefix);
  await createTopic(broker.plaintext!, topic, 2);
  return { broker, admin: broker.plaintext!, topic, group: `g-${topic}` };
}

const bob: SecurityConfig = { protocol: 'sasl_plaintext', sasl: { mechanism: 'PLAIN', username: 'bob', password: 'bob-secret' } };

/** Records seq `from`.. on both partitions, `perPartition` each: partition p holds from + p * perPartition on. */
const twoPartitionBatch = (from: number, perPartition: number) =>
  [0, 1].flatMap((partition) => Array.from({ length: perPartition }, (_, i) => ({ partition, key: `u${partition}`, value: clickJson(partition, base + from + partition * perPartition + i, 'view', { seq: from + partition * perPartition + i }) })));
const seqsOf = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
const hasRead = (read: readonly number[], wanted: readonly number[]) => () => wanted.every((seq) => read.includes(seq));
const readTwice = (read: readonly number[]) => read.filter((seq, i) => read.indexOf(seq) !== i);

/** An at-least-once source of `group` whose reads are kept in order, duplicates and all; its log lines in `lines`. */
async function groupMember(brokers: string, topic: string, group: string, security: SecurityConfig, commitNow?: () => Promise<void>, options?: Record<string, string>) {
  const read: number[] = [];
  const lines: string[] = [];
  const config: KafkaSourceConfig = { brokers, topics: [topic], group, start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, mapping: { attributes: ['seq'] }, security, ...(options ? { options } : {}) };
  const context = testContext({ batchSize: 100, logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), ...(commitNow ? { commitNow } : {}) });
  const source = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  const reading = (async () => {
    for await (const events of source.read()) for (const event of events) read.push(Number(event.attrs?.seq));
  })();
  reading.catch(() => undefined);
  return { source, read, lines, context };
}

/**
 * Alice reads the topic alone: records 0-19 read and committed (10 on each partition), 20-39 read and
 * not. Her hand-over checkpoint (the runtime's commitNow, here the test's) denies her Read on the group at
 * the first revocation, as the brokers refuse a commit in an outage or a coordinator move: her commit there
 * is refused. Returns her, and `handOverRefused`, resolved once her hand-over was done, its commit refused.
 */
async function aliceRefusedAtHandOver(setup: Awaited<ReturnType<typeof twoReaders>>, options?: Record<string, string>) {
  const { broker, admin, topic, group } = setup;
  let first = true;
  const a = await groupMember(broker.brokers, topic, group, alice, async () => {
    if (!first) return;
    first = false;
    aclCommand(broker, ['--add', '--deny-principal', 'User:alice', '--operation', 'Read', '--group', group]);
  }, options);
  await produce(admin, topic, twoPartitionBatch(0, 10));
  await waitFor('alice reads the first records', hasRead(a.read, seqsOf(0, 20)), 60_000);
  await a.source.commit!(a.source.position!());
  await waitFor('the first records committed', async () => (await groupCommitted(admin, group, topic, 2)).every((offset) => offset === 10), 30_000);
  await produce(admin, topic, twoPartitionBatch(20, 10));
  await waitFor('alice reads the next records (not committed)', hasRead(a.read, seqsOf(20, 20)), 60_000);
  const handOverRefused = async (): Promise<void> => {
    await waitFor('alice\'s hand-over done, its commit refused', () => a.lines.join('').includes('kafka partitions revoked, their offsets not committed'), 60_000);
    assert.match(a.lines.join(''), /kafka offset commit at revocation failed; the next assignment reads them on from where the state stands/);
  };
  return { a, handOverRefused };
}

test('a hand-over whose offset commit the brokers refuse (the group\'s Read withdrawn as the partitions are revoked): the partition this member gets back starts where its state stands, the other one\'s new owner replays from the group\'s older offset, and no record is lost or read twice beyond that replay', { timeout: 300_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  const setup = await twoReaders(t, 'acl-handover');
  const { broker, admin, topic, group } = setup;
  const { a, handOverRefused } = await aliceRefusedAtHandOver(setup);
  let b: Awaited<ReturnType<typeof groupMember>> | undefined;
  try {
    // Bob joins: the rebalance revokes alice's partitions, and her hand-over's commit is refused.
    b = await groupMember(broker.brokers, topic, group, bob);
    await handOverRefused();
    aclCommand(broker, ['--remove', '--deny-principal', 'User:alice', '--operation', 'Read', '--group', group]);
    await produce(admin, topic, twoPartitionBatch(40, 10));
    await waitFor('the records after the rebalance read', () => hasRead([...a.read, ...b!.read], seqsOf(40, 20))(), 120_000);
    // Each got one partition; alice's starts where her state stands (20), bob's at the group's offset (10).
    const bobs = [0, 1].find((partition) => b!.read.includes(40 + partition * 10))!;
    assert.ok(a.read.includes(40 + (1 - bobs) * 10), `alice got the other partition back: ${a.read.filter((seq) => seq >= 40).join(',')}`);
    // Bob leaves: his partition comes to alice at his committed offset.
    await b.source.commit!(b.source.position!());
    await b.source.close?.();
    await produce(admin, topic, twoPartitionBatch(60, 10));
    await waitFor('the last records read by alice', hasRead(a.read, seqsOf(60, 20)), 120_000);
    const all = [...a.read, ...b.read];
    assert.deepEqual(seqsOf(0, 80).filter((seq) => !all.includes(seq)), [], 'none lost');
    // Before: alice's partition too started at the group's offset (10), her records 20-29 or 30-39 read again.
    assert.deepEqual(readTwice(a.read), [], 'alice read none twice');
    assert.deepEqual(readTwice(b.read), [], 'bob read none twice');
    // Read by both: only bob's replay of his partition's records since its last commit (at-least-once).
    assert.deepEqual(a.read.filter((seq) => b!.read.includes(seq)).sort((x, y) => x - y), seqsOf(20 + bobs * 10, 10));
    assert.deepEqual(a.context.failures, []);
  } finally {
    await b?.source.close?.().catch(() => undefined);
    await a.source.close?.();
  }
});

test('a hand-over whose offset commit the brokers refuse, the member then out of the group while another reads both partitions on and commits: the partition it gets back starts at that member\'s committed offset, not at its kept one (read twice)', { timeout: 300_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  const setup = await twoReaders(t, 'acl-handover-out');
  const { broker, admin, topic, group } = setup;
  // A short rebalance timeout (max.poll.interval.ms): the group gives up on alice, refused its rejoin, in 10 s, not 5 min.
  const { a, handOverRefused } = await aliceRefusedAtHandOver(setup, { 'max.poll.interval.ms': '10000', 'session.timeout.ms': '6000' });
  let b: Awaited<ReturnType<typeof groupMember>> | undefined;
  try {
    b = await groupMember(broker.brokers, topic, group, bob);
    await handOverRefused();
    // Alice's rejoin refused: bob gets both partitions at the group's offsets (10), reads them on and commits.
    await produce(admin, topic, twoPartitionBatch(40, 10));
    await waitFor('bob reads both partitions on', hasRead(b.read, seqsOf(20, 40)), 120_000);
    await b.source.commit!(b.source.position!());
    await waitFor('bob\'s offsets committed', async () => (await groupCommitted(admin, group, topic, 2)).every((offset) => offset === 30), 30_000);
    const aliceBefore = a.read.length;
    const assignments = (): number => a.lines.filter((line) => line.includes('"msg":"kafka partitions assigned"')).length;
    const assignedBefore = assignments();
    aclCommand(broker, ['--remove', '--deny-principal', 'User:alice', '--operation', 'Read', '--group', group]);
    await waitFor('alice back in the group, assigned', () => assignments() > assignedBefore, 120_000);
    await produce(admin, topic, twoPartitionBatch(60, 10));
    await waitFor('the last records read', () => hasRead([...a.read, ...b!.read], seqsOf(60, 20))(), 120_000);
    const alices = [0, 1].find((partition) => a.read.includes(60 + partition * 10));
    assert.ok(alices !== undefined, `alice got a partition back: ${a.read.slice(aliceBefore).join(',')}`);
    // Before: from her kept offset (20), her records 20-29 (or 30-39), which bob read and committed, read again.
    assert.deepEqual(a.read.slice(aliceBefore).filter((seq) => seq < 60), [], 'alice read nothing bob committed');
    assert.deepEqual(readTwice(a.read), []);
    assert.deepEqual(readTwice(b.read), []);
    const all = [...a.read, ...b.read];
    assert.deepEqual(seqsOf(0, 80).filter((seq) => !all.includes(seq)), [], 'none lost');
    assert.match(a.lines.join(''), /partitions whose hand-over commit the brokers refused were read on and committed by another member since/);
  } finally {
    await b?.source.close?.().catch(() => undefined);
    await a.source.close?.();
  }
});

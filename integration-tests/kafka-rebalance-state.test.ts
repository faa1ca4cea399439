/**
 * A stateful pipeline without scale_out, through a real broker and a real daemon: a rebalance takes the
 * daemon's partitions and gives them back. Their offsets are committed at the hand-over, through a
 * checkpoint of the state. Exactly-once, committed alone, they ran past the newest checkpoint, and a
 * crash before the next one resumed with state that never held that input; at-least-once, nothing was
 * committed, and the partitions given back were read again into a state that held their records already.
 * Then a second member joining while records flow (both guarantees, eager and cooperative-sticky, with
 * and without scale_out): the partitions it takes are handed over mid-processing, and nothing is lost
 * or read (exactly-once: committed) twice, each event at its place in its session.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asError, promisify } from '../plugins/kafka/common.js';
import Kafka from 'node-rdkafka';
import { pino } from 'pino';
import { CheckpointStore, inputHandedOver } from 'tributary';
import { runYaml } from 'tributary/testing';
import type { ClickEvent, StreamRecord } from 'tributary';
import { daemonStarted, eventsRead, exited, kafkaBrokers, operationsPort, startDaemon, uniqueTopic, unlessFailed, waitFor, type WatchedRun } from './kafka/env.js';
import { collectSink, createTopic, groupCommitted, produce, readTopic, seqRecords, sessionClosers, threeViews, userSessions, values } from './kafka/client.js';
import { startNativeBroker } from './kafka/broker.js';

for (const guarantee of ['exactly-once', 'at-least-once'] as const) {
  const crash = guarantee === 'exactly-once';
  test(`${guarantee} without scale_out: a rebalance's hand-over commits the offsets with a checkpoint of the state, so ${crash ? 'a crash before the next checkpoint loses no input from the state' : 'the partitions given back are not read into the state again'}`, { timeout: 240_000 }, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const input = uniqueTopic('in-handover');
    const output = uniqueTopic('out-handover');
    const group = `g-${input}`;
    const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-handover-'));
    const log: string[] = [];
    let daemon: ChildProcess | undefined;
    const users = 20;
    const base = Date.parse('2024-05-01T00:00:00Z');
    // Another member of the group, joining and leaving: the daemon's partitions are revoked (the hand-over) and come back.
    const other = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'group.id': group, 'enable.auto.commit': false, 'session.timeout.ms': 6_000 }, { 'auto.offset.reset': 'earliest' });
    try {
      for (const topic of [input, output]) await createTopic(brokers, topic, 4);
      const file = join(dir, 'pipeline.yaml');
      // Checkpoints a minute apart: none is due between the hand-over and the end of the test's first run.
      writeFileSync(
        file,
        `
name: handover
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: ${group}
    guarantee: ${guarantee}
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
    options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500 }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [session], guarantee: ${guarantee}, transactional_id: tx-${output} }
dead_letter: { type: file, path: ${join(dir, 'dead-letters.jsonl')} }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 60s }
`,
      );
      daemon = startDaemon(file, brokers, log, ['--log-level', 'info', '--http-port', '0']);
      const port = await operationsPort(daemon, log);
      await produce(brokers, input, threeViews(users, base, 0));
      await waitFor('phase 1 read', async () => (await eventsRead(port)) >= users * 3, 60_000, 20);
      await promisify((cb) => other.connect({}, (error) => cb(error)));
      other.subscribe([input]);
      other.setDefaultConsumeTimeout(100);
      await waitFor('the other member to get partitions', async () => {
        await promisify<Kafka.Message[]>((cb) => other.consume(1, cb)).catch(() => []);
        try {
          return other.assignments().length > 0;
        } catch {
          return false; // mid-rebalance: librdkafka's state says nothing yet
        }
      }, 60_000, 0);
      await promisify((cb) => other.disconnect(() => cb(null)));
      if (crash) await waitFor('phase 1 committed by the hand-over', async () => (await groupCommitted(brokers, group, input, 4)).every((offset) => offset >= 15), 60_000, 200);
      // Every partition back with the daemon before phase 2: the watermark follows the partitions assigned,
      // and phase 2 read from two of them alone would close the others' sessions.
      const assignedAll = () => log.join('').split('\n').filter((line) => line.includes('"msg":"kafka partitions assigned"') && line.split(`${input}/`).length === 5).length;
      await waitFor('every partition assigned to the daemon again', () => assignedAll() >= 2, 60_000, 100);
      if (crash) {
        daemon.kill('SIGKILL');
        await exited(daemon);
        log.length = 0;
        daemon = startDaemon(file, brokers, log, ['--log-level', 'info', '--http-port', '0']);
      }
      await produce(brokers, input, threeViews(users, base, 10));
      await produce(brokers, input, sessionClosers(4, base));
      // Exactly-once, written in the open transaction; the stop commits it (the next checkpoint is a minute away).
      await daemonStarted(daemon, log, 'every session written', async () => new Set((await userSessions(brokers, output, false)).map((s) => s.userId)).size >= users, 500);
      daemon.kill('SIGTERM');
      assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
      // Before: exactly-once 3 (the hand-over committed phase 1's offsets alone; the restart found no
      // checkpoint holding it); at-least-once 9 and 12 (phase 1 read again after each rebalance).
      const counts = (await userSessions(brokers, output, crash)).map((s) => s.eventCount);
      assert.deepEqual(counts, Array<number>(users).fill(6), 'one session per user, each of its 6 events counted once');
      if (crash) assert.match(log.join(''), /resuming from checkpoint/);
    } finally {
      if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('at-least-once without scale_out: partitions lost in a broker outage, their hand-over commit refused, then a crash: the restart reads them on from where the state stands, not again from the older committed offsets', { timeout: 240_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  // Stopping a broker needs one this test owns.
  const broker = await startNativeBroker({ partitions: 4 });
  const input = uniqueTopic('in-lost');
  const output = uniqueTopic('out-lost');
  const group = `g-${input}`;
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-lost-'));
  const log: string[] = [];
  let daemon: ChildProcess | undefined;
  const users = 20;
  const base = Date.parse('2024-05-01T00:00:00Z');
  try {
    for (const topic of [input, output]) await createTopic(broker.brokers, topic, 4);
    const file = join(dir, 'pipeline.yaml');
    // Checkpoints every second go on while the partitions are lost: the one the restart resumes from is such a one.
    writeFileSync(
      file,
      `
name: lost
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: ${group}
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
    options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500 }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [session] }
dead_letter: { type: file, path: ${join(dir, 'dead-letters.jsonl')} }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }
`,
    );
    daemon = startDaemon(file, broker.brokers, log, ['--log-level', 'info', '--http-port', '0']);
    const port = await operationsPort(daemon, log);
    await produce(broker.brokers, input, threeViews(users, base, 0));
    await waitFor('phase 1 committed', async () => (await groupCommitted(broker.brokers, group, input, 4)).every((offset) => offset >= 15), 60_000, 200);
    await produce(broker.brokers, input, threeViews(users, base, 10));
    await waitFor('phase 2 read', async () => (await eventsRead(port)) >= 2 * users * 3, 60_000, 20);
    // Gone before phase 2's commit: the group session lapses, the partitions are revoked and their commit refused.
    await broker.kill();
    await waitFor('the partitions lost and their hand-over commit refused', () => /offset commit at revocation failed/.test(log.join('')), 120_000, 200);
    // A checkpoint written after that, the partitions not assigned: the one the restart resumes from.
    const checkpoints = new CheckpointStore(join(dir, 'checkpoints'));
    const newest = async (): Promise<number> => (await checkpoints.latest())?.sequence ?? 0;
    const atRevocation = await newest();
    await waitFor('a checkpoint after the revocation', async () => (await newest()) >= atRevocation + 2, 30_000, 100);
    daemon.kill('SIGKILL');
    await exited(daemon);
    await broker.restart();
    log.length = 0;
    daemon = startDaemon(file, broker.brokers, log, ['--log-level', 'info', '--http-port', '0']);
    await produce(broker.brokers, input, threeViews(users, base, 20));
    await produce(broker.brokers, input, sessionClosers(4, base));
    await waitFor('every session written', async () => new Set((await userSessions(broker.brokers, output, false)).map((s) => s.userId)).size >= users, 150_000, 500);
    daemon.kill('SIGTERM');
    assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
    // Before: 12 (phase 2 read again from the committed offsets into state that held it).
    const counts = (await userSessions(broker.brokers, output, false)).map((s) => s.eventCount);
    assert.deepEqual(counts, Array<number>(users).fill(9), 'one session per user, each of its 9 events counted once');
  } finally {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A member's log line (pino's JSON), as far as these tests read it. */
interface LogLine {
  msg: string;
  partitions?: unknown;
}

interface JoinedWhileFlowing {
  /** Records produced (seqRecords): seqs 0 to sent - 1. */
  sent: number;
  /** The seqs of the events each member's pipeline wrote to its `collect` sink, in the order written. */
  seqs: [number[], number[]];
  /** Each member's log (info and up). */
  logs: [LogLine[], LogLine[]];
  /** How many times each member's run was restarted after the group expelled it (see joinWhileFlowing). */
  restarts: [number, number];
}

/** The seqs of `records`' events (events without one, as sessionClosers' are, left out). */
function eventSeqs(records: readonly StreamRecord[]): number[] {
  return records.flatMap((record) => {
    const seq = record.kind === 'event' ? (record as ClickEvent).attrs?.seq : undefined;
    return typeof seq === 'number' ? [seq] : [];
  });
}

/**
 * Two members of one group, each the pipeline `yaml(member)` (0, then 1) run in this process with a
 * `collect` sink: the input keeps coming, 200 records every 50 ms over the partitions of `topic`,
 * and the second member joins once the first has put out 2,000, taking partitions in the middle of
 * their processing. The input stops once the second has put out 1,000; with `closeSessions`, an event
 * three hours on follows on each of 4 partitions (sessionClosers), whose watermark lets out every event
 * a stage holds. Both stop (their last commit) once every record is out. A member's run that fails
 * fails the call, with what failed it, unless the group had expelled it (its session or
 * max.poll.interval expired under load): restarted then, as `tributary run` restarts a pipeline.
 * `stallMs`: the process stalls that long once both members read.
 */
async function joinWhileFlowing(brokers: string, topic: string, yaml: (member: number) => string, options: { closeSessions?: boolean; stallMs?: number } = {}): Promise<JoinedWhileFlowing> {
  const stores: StreamRecord[][][] = [[[]], [[]]];
  const logs: [LogLine[], LogLine[]] = [[], []];
  // Each member's log as written, and what failed its run: a wait ends at once on a failure, with its log's tail.
  const lines: [string[], string[]] = [[], []];
  const failures: [unknown, unknown] = [undefined, undefined];
  const members = (): WatchedRun[] => [0, 1].map((member) => ({ name: `member ${member}`, failed: failures[member], lines: lines[member]! }));
  const controllers = [new AbortController(), new AbortController()];
  const runs: Promise<unknown>[] = [];
  const restarts: [number, number] = [0, 0];
  // Supervised as the daemon supervises a pipeline: a run that failed having only left its uncommitted
  // input to another member (inputHandedOver: the group expelled it, and the brokers refused its
  // transaction) is started again, with its checkpoints; any other failure fails the call.
  const supervise = async (member: number) => {
    const logger = pino({ level: 'info' }, {
      write: (line: string) => {
        lines[member]!.push(line);
        logs[member]!.push(JSON.parse(line) as LogLine);
      },
    });
    const signal = controllers[member]!.signal;
    for (;;) {
      try {
        return await runYaml(yaml(member), { env: { KAFKA_BROKERS: brokers }, plugins: [collectSink(stores[member]!)], signal, logger });
      } catch (error) {
        if (!inputHandedOver(error)) throw error;
        // Failing as the test stops it: a stop, as the daemon takes it (its input is the group's next owner's).
        if (signal.aborted) return undefined;
        restarts[member]!++;
      }
    }
  };
  const start = (member: number) => {
    const running = supervise(member);
    running.catch((error: unknown) => void (failures[member] = error ?? 'an undefined error'));
    runs.push(running);
  };
  const seqs = (member: number) => eventSeqs(stores[member]![0]!);
  let sent = 0;
  let feeding = true;
  let waitFailed = false;
  const feed = (async () => {
    while (feeding) {
      await produce(brokers, topic, seqRecords(sent, 200));
      sent += 200;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    start(0);
    await waitFor('the first member reading', unlessFailed(members, () => seqs(0).length >= 2_000), 60_000);
    start(1);
    await waitFor('the second member reading', unlessFailed(members, () => seqs(1).length >= 1_000), 60_000);
    // The process stalls (a long synchronous task, a frozen VM): no poll of librdkafka's for stallMs.
    // The stall is the test's input, as a SIGSTOP's in kafka-delivery.test.ts.
    if (options.stallMs) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, options.stallMs);
      // The input goes on until the first member, expelled, is restarted and puts out records again.
      await waitFor('the first member restarted', unlessFailed(members, () => restarts[0] >= 1), 60_000);
      const before = seqs(0).length;
      await waitFor('the restarted member reading', unlessFailed(members, () => seqs(0).length >= before + 1_000), 60_000);
    }
    feeding = false;
    await feed;
    if (options.closeSessions) await produce(brokers, topic, sessionClosers(4, Date.parse('2024-05-01T00:00:00Z')));
    await waitFor('every record out', unlessFailed(members, () => new Set([...seqs(0), ...seqs(1)]).size >= sent), 60_000);
  } catch (error) {
    waitFailed = true;
    throw error;
  } finally {
    feeding = false;
    await feed.catch(() => undefined);
    for (const controller of controllers) controller.abort();
    const failed = (await Promise.allSettled(runs)).flatMap((run, member) => (run.status === 'rejected' ? [`member ${member}: ${asError(run.reason).message}`] : []));
    // Failed as the test stopped it (after its last wait); a failure a wait saw has been said, with its log.
    if (failed.length > 0 && !waitFailed) throw new Error(`a member's run failed: ${failed.join('; ')}`);
  }
  return { sent, seqs: [seqs(0), seqs(1)], logs, restarts };
}

/**
 * The partitions (by number) whose hand-over a member's log says was not committed: lost (the group
 * expelled the member: its session or max.poll.interval expired) or its commit refused. Each with the
 * offset it stood at (the records it handed over end before it), Infinity where unknown. The next
 * owner reads such a partition from the older committed offset: at-least-once, what the member read
 * of it since is read again.
 */
function handOversMissed(logs: readonly (readonly LogLine[])[]): Map<number, number> {
  const missed = new Map<number, number>();
  for (const line of logs.flat()) {
    if (!/^kafka partitions lost|^kafka offset commit at revocation failed/.test(line.msg)) continue;
    for (const entry of Array.isArray(line.partitions) ? (line.partitions as { id?: string; partition?: string; offset?: number }[]) : []) {
      // Named `topic-N` (scale_out's partition ids) or `topic/N`.
      const partition = Number(/[-/](\d+)$/.exec(entry.id ?? entry.partition ?? '')?.[1]);
      if (Number.isInteger(partition)) missed.set(partition, Math.max(missed.get(partition) ?? 0, entry.offset ?? Infinity));
    }
  }
  return missed;
}

const strategies = ['range,roundrobin', 'cooperative-sticky'] as const;

for (const scaleOut of [false, true]) {
  for (const strategy of strategies) {
    test(`at-least-once${scaleOut ? ' scale_out' : ''}, ${strategy}: a member joining while records flow takes partitions mid-processing; the hand-over commits their progress, so nothing is lost and nothing read again`, { timeout: 180_000 }, async (t) => {
      const brokers = kafkaBrokers(t);
      if (!brokers) return;
      const topic = uniqueTopic('alo-revoke');
      const group = `g-${topic}`;
      await createTopic(brokers, topic, 4);
      const dir = mkdtempSync(join(tmpdir(), 'tributary-alo-revoke-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      // Commits a minute apart (and checkpoints, with scale_out): what the group holds committed at the
      // rebalance is what its hand-over committed, so whatever it left out is read again by the next owner.
      const yaml = (member: number) => `
name: alo-revoke
sources:
  - type: kafka
    brokers: "\${KAFKA_BROKERS}"
    topics: [${topic}]
    group: ${group}
    guarantee: at-least-once
    start_from: earliest
    mapping: { attributes: [seq] }
    options: { partition.assignment.strategy: "${strategy}" }
${scaleOut ? `checkpoint: { dir: ${join(dir, `checkpoints-m${member}`)}, interval: 60s }\nscale_out: { state_dir: ${join(dir, 'partition-state')} }\n` : ''}sinks:
  - { type: collect }
settings: { commit_interval: 60s }
`;
      const { sent, seqs, logs } = await joinWhileFlowing(brokers, topic, yaml);
      const all = [...seqs[0], ...seqs[1]];
      const distinct = new Set(all);
      const missing = Array.from({ length: sent }, (_, seq) => seq).filter((seq) => !distinct.has(seq));
      const twice = all.length - distinct.size;
      t.diagnostic(`sent ${sent}; first member ${seqs[0].length}, second ${seqs[1].length}; read twice ${twice}`);
      assert.deepEqual(missing, [], 'nothing lost');
      // At-least-once reads records again for one cause only: a hand-over not committed, because the group
      // expelled the member (no heartbeat for session.timeout.ms, librdkafka's 45 s: they come from its own
      // thread, so only a process or broker stalled that long stops them; max.poll.interval.ms is 5 min,
      // past this test's timeout) or the brokers refused the commit. Rare, a case taking 5-7 s on the test
      // broker (a few times that on a loaded 2-core host); but its re-reads look like the bug this test is
      // for, so the log tells them apart, naming the partitions (handOversMissed). Without such a line
      // nothing is read twice; with one, only records of those partitions before where their hand-over stood.
      const missed = handOversMissed(logs);
      if (missed.size === 0) return assert.equal(twice, 0, 'nothing read again');
      const input = await readTopic(brokers, topic, { toEnd: true, timeoutMs: 30_000 });
      const placeOf = new Map(input.map((message) => [(JSON.parse(message.value!.toString('utf8')) as { seq: number }).seq, { partition: message.partition, offset: message.offset }]));
      const times = new Map<number, number>();
      for (const seq of all) times.set(seq, (times.get(seq) ?? 0) + 1);
      const unexplained = [...times]
        .filter(([, n]) => n > 1)
        .map(([seq]) => ({ seq, ...placeOf.get(seq) }))
        .filter(({ partition, offset }) => partition === undefined || offset === undefined || !missed.has(partition) || offset >= missed.get(partition)!);
      t.diagnostic(`hand-overs not committed: ${[...missed].map(([partition, offset]) => `partition ${partition} at ${offset}`).join(', ')}`);
      assert.deepEqual(unexplained.slice(0, 10), [], `read twice only before where an uncommitted hand-over stood (${unexplained.length} were not)`);
    });
  }
}

/**
 * Exactly-once, a second member joining while records flow (joinWhileFlowing): the committed output
 * must hold every record once, each at its place in its user's session. With `expelFirst`, the first
 * member's max.poll.interval.ms is 6 s and the process stalls 10 s once both read: the group expels the
 * first member and gives its partitions to the second; the first's open transaction cannot commit (scale_out:
 * refused, Unknown member; without: not tried, its partitions lost), and it is restarted.
 */
async function exactlyOnceJoin(t: TestContext, scaleOut: boolean, strategy: (typeof strategies)[number], expelFirst = false): Promise<void> {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('eos-revoke');
  const output = uniqueTopic('eos-revoke-out');
  for (const topic of [input, output]) await createTopic(brokers, topic, 4);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-eos-revoke-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Checkpoints (each a transaction) a minute apart: what the hand-over did not commit with the revoked
  // partitions' offsets is committed at the stop, besides what the next owner writes of the same input.
  const yaml = (member: number) => `
name: eos-revoke
sources:
  - type: kafka
    brokers: "\${KAFKA_BROKERS}"
    topics: [${input}]
    group: g-${input}
    guarantee: exactly-once
    start_from: earliest
    mapping: { attributes: [seq] }
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
    options: { partition.assignment.strategy: "${strategy}"${expelFirst && member === 0 ? ', session.timeout.ms: 6000, max.poll.interval.ms: 6000' : ''} }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: collect }
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [event], guarantee: exactly-once, transactional_id: tx-${output}-m${member} }
checkpoint: { dir: ${join(dir, `checkpoints-m${member}`)}, interval: 60s }
${scaleOut ? `scale_out: { state_dir: ${join(dir, 'partition-state')} }\n` : ''}`;
  // An expelled member's transaction is refused (KIP-447) and aborted, which fails its run: restarted,
  // as the daemon restarts it (joinWhileFlowing). Before, a member the group expelled under CI load
  // (no heartbeat for session.timeout.ms) failed the test, though nothing was wrong with the output.
  const { sent, seqs, restarts } = await joinWhileFlowing(brokers, input, yaml, { closeSessions: true, ...(expelFirst ? { stallMs: 10_000 } : {}) });
  if (expelFirst) assert.ok(restarts[0] >= 1, 'the first member was expelled, and restarted');
  type Written = { time: number; attrs?: { seq?: number }; session: { id: string; position: number; start: number } };
  const written = values<Written>(await readTopic(brokers, output, { committed: true, toEnd: true, timeoutMs: 30_000 })).filter((event) => typeof event.attrs?.seq === 'number');
  const committed = written.map((event) => event.attrs!.seq!);
  const distinct = new Set(committed);
  const missing = Array.from({ length: sent }, (_, seq) => seq).filter((seq) => !distinct.has(seq));
  const twice = committed.length - distinct.size;
  t.diagnostic(`sent ${sent}; put out by the first member ${seqs[0].length}, the second ${seqs[1].length}; committed ${committed.length}, twice ${twice}; restarts ${restarts.join(', ')}`);
  assert.deepEqual(missing, [], 'nothing lost');
  assert.equal(twice, 0, 'nothing committed twice');
  // seqRecords: seq s is user u(s % 211)'s event at base + s ms, so a user's events are 211 apart. Its
  // session counts each of them once from the session's first: an event's position is the user's
  // events between them. With scale_out the state moves with the partition: one session per user,
  // from its first event on (without, a member taking a partition starts its users' sessions anew).
  const misplaced = written.filter(({ attrs, time, session }) => {
    const seq = attrs!.seq!;
    const since = time - session.start;
    return session.id !== `u${seq % 211}:${session.start}` || since % 211 !== 0 || session.position !== since / 211 || (scaleOut && session.position !== Math.floor(seq / 211));
  });
  const sessions = new Set(written.map(({ session }) => session.id)).size;
  t.diagnostic(`${sessions} sessions; ${misplaced.length} events not at their place`);
  // Without scale_out each member's state is its own: the expelled member, restarted from its last
  // committed checkpoint, takes partitions back whose users' sessions there lack what the other member
  // read of them meanwhile (positions behind). Only the output's exactly-once holds then.
  if (expelFirst && !scaleOut) return;
  assert.deepEqual(misplaced.slice(0, 5).map(({ attrs, session }) => ({ seq: attrs!.seq, id: session.id, position: session.position })), [], `each event at its place in its session (${misplaced.length} not)`);
}

for (const scaleOut of [false, true]) {
  for (const strategy of strategies) {
    test(`exactly-once${scaleOut ? ' scale_out' : ''}, ${strategy}: a member joining while records flow takes partitions mid-processing; the committed output holds every record once, each at its place in its user's session`, { timeout: 180_000 }, (t) => exactlyOnceJoin(t, scaleOut, strategy));
  }
}

for (const scaleOut of [false, true]) {
  test(`exactly-once${scaleOut ? ' scale_out' : ''}: a member the group expels while records flow (stalled past max.poll.interval.ms) cannot commit its transaction and is restarted, as the daemon restarts it; the committed output holds every record once${scaleOut ? ", each at its place in its user's session" : ''}`, { timeout: 180_000 }, (t) => exactlyOnceJoin(t, scaleOut, 'range,roundrobin', true));
}

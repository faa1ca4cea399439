/**
 * An erasure request (the pipeline's `erasure` section) through a real broker and a real daemon, as a
 * shop's privacy engineer proves it to an auditor: the request, produced to the clicks topic keyed by
 * the user, takes the user out of the next checkpoint (with scale_out, the user's partition file and the
 * global stages' checkpoint); a SIGKILL right after it, before that checkpoint, and a restart still
 * leave the user erased: the request is read again from the position the restored checkpoint covers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointStore, type Checkpoint } from 'tributary';
import { daemonStarted, exited, kafkaBrokers, keptLog, startDaemon, uniqueTopic, waitFor } from './kafka/env.js';
import { createTopic, produce, threeViews, type RawRecord } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const partitions = 4;
const users = 8;
/** The shopper to erase: an id found in no other text of a checkpoint. */
const ERASED = 'shopper-erase-7f3a';
/** The erased shopper's partition (keyed by user id: every record of theirs, the request too). */
const ERASED_PARTITION = 1;

const erasedViews = (minute: number): RawRecord[] =>
  [0, 1, 2].map((k) => ({ partition: ERASED_PARTITION, key: ERASED, value: JSON.stringify({ user_id: ERASED, time: new Date(base + (minute + k) * 60_000 + 500).toISOString(), type: 'view', item_id: `i${k}` }) }));

interface Mode {
  name: string;
  guarantee: 'at-least-once' | 'exactly-once';
  scaleOut: boolean;
  /** The request as an erasure tool sends it: no event time (it has no event-time meaning). */
  timeless: boolean;
}

const modes: Mode[] = [
  { name: 'at-least-once', guarantee: 'at-least-once', scaleOut: false, timeless: false },
  { name: 'exactly-once, the request without a time', guarantee: 'exactly-once', scaleOut: false, timeless: true },
  { name: 'scale_out (the partition task and the global stages)', guarantee: 'at-least-once', scaleOut: true, timeless: false },
];

function pipelineYaml(mode: Mode, input: string, output: string, dir: string): string {
  return `
name: erasure
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: g-${input}
    guarantee: ${mode.guarantee}
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: user-features, horizons: [1d] }
  - { type: intent-model, label: intent, model: { kind: logistic }, batch: { max_size: 1 } }
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, kinds: [session, prediction], guarantee: ${mode.guarantee}, transactional_id: tx-${output} }
dead_letter: { type: file, path: ${join(dir, 'dead-letters.jsonl')} }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 2s }
erasure: { log_user_id: clear }
${mode.scaleOut ? `scale_out: { state_dir: ${join(dir, 'partition-state')} }` : ''}
`;
}

/**
 * The newest checkpoints that hold the erased user's state: the pipeline's, and with scale_out the erased
 * user's partition file; each with the offset of that partition it covers (its next record's).
 */
async function newest(mode: Mode, dir: string, input: string): Promise<{ file: string; text: string; offset: number; other: string }[]> {
  const found: { file: string; text: string; offset: number; other: string }[] = [];
  const main = await new CheckpointStore(join(dir, 'checkpoints')).latest();
  if (main) {
    // With scale_out the pipeline's checkpoint holds the global stages (the model, every partition's users) and no offsets.
    const offsets = (Object.values(main.sources)[0] as { offsets?: Record<string, Record<string, number>> } | undefined)?.offsets;
    found.push({ file: main.file, text: decoded(main), offset: mode.scaleOut ? Infinity : (offsets?.[input]?.[String(ERASED_PARTITION)] ?? -1), other: '"u6"' });
  }
  if (mode.scaleOut) {
    const file = await new CheckpointStore(join(dir, 'partition-state', `${input}-${ERASED_PARTITION}`)).latest();
    // A user of the erased one's partition (user u is in partition u % 4).
    if (file) found.push({ file: file.file, text: decoded(file), offset: (Object.values(file.sources)[0] as { offset: number }).offset, other: '"u5"' });
  }
  return found;
}

/** A checkpoint as an auditor reads it: its decoded body, and its file's bytes (ids are kept as text). */
function decoded(checkpoint: Checkpoint): string {
  return JSON.stringify(checkpoint.operators) + readFileSync(checkpoint.file, 'utf8');
}

/** The lines of a daemon's log (--log-level info) whose message starts with `msg`. */
function logged(log: readonly string[], msg: string): Record<string, unknown>[] {
  return log
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => String(line.msg).startsWith(msg));
}

for (const mode of modes) {
  test(`erasure on Kafka, ${mode.name}: the next checkpoint names the user nowhere, and a SIGKILL right after the request, then a restart, leaves the user erased`, { timeout: 150_000 }, async (t) => {
    const brokers = kafkaBrokers(t);
    if (!brokers) return;
    const input = uniqueTopic('erasure-in');
    const output = uniqueTopic('erasure-out');
    for (const topic of [input, output]) await createTopic(brokers, topic, partitions);
    const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-erasure-'));
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(file, pipelineYaml(mode, input, output, dir));
    // Sessions stay open (30 min gap, no later time): every stage holds both kinds of users when the request comes.
    const clicks = [...threeViews(users, base, 0), ...erasedViews(0)];
    const requestOffset = clicks.filter((record) => record.partition === ERASED_PARTITION).length;
    const request = JSON.stringify(mode.timeless ? { user_id: ERASED, type: 'erase' } : { user_id: ERASED, time: new Date(base + 10 * 60_000).toISOString(), type: 'erase' });
    const logs: string[][] = [[], []];
    let daemon: ChildProcess | undefined;
    try {
      daemon = startDaemon(file, brokers, logs[0], ['--log-level', 'info']);
      await produce(brokers, input, clicks);
      // Before the request the checkpoints hold the user (else "names the user nowhere" would prove nothing).
      const holds = async () => {
        const found = await newest(mode, dir, input);
        return found.length === (mode.scaleOut ? 2 : 1) && found.every(({ text, offset, other }) => offset >= requestOffset && text.includes(ERASED) && text.includes(other));
      };
      await daemonStarted(daemon, logs[0], 'a checkpoint holding every user', holds, 200);
      await produce(brokers, input, [{ partition: ERASED_PARTITION, key: ERASED, value: request }]);
      await waitFor('the request done', () => logged(logs[0], 'erasure request done').length > 0, 60_000, 10);
      // Killed before the next checkpoint (2 s apart) in most runs: the one it restarts from holds the user.
      daemon.kill('SIGKILL');
      await exited(daemon);
      const [done] = logged(logs[0], 'erasure request done');
      assert.equal(done!.user, ERASED);
      const atKill = await newest(mode, dir, input);
      const killedBeforeCheckpoint = atKill.some(({ offset }) => offset <= requestOffset);
      t.diagnostic(`killed ${killedBeforeCheckpoint ? 'before' : 'after'} the checkpoint that covers the request`);
      // The restart restores state from before the request (where it was killed before the next checkpoint), and reads on from there.
      daemon = startDaemon(file, brokers, logs[1], ['--log-level', 'info']);
      await produce(brokers, input, threeViews(users, base, 5));
      const past = (offset: number) => async () => {
        const found = await newest(mode, dir, input);
        return found.length === (mode.scaleOut ? 2 : 1) && found.every((checkpoint) => checkpoint.offset > offset && checkpoint.text.includes(checkpoint.other));
      };
      await daemonStarted(daemon, logs[1], 'a checkpoint past the request after the restart', past(requestOffset), 200);
      if (killedBeforeCheckpoint) assert.equal(logged(logs[1], 'erasure request done').length, 1, 'the restart read the request again');
      // Files written after the request was done again (one taken before it is written before it is done: batches wait for a checkpoint).
      const seen = new Set((await newest(mode, dir, input)).map((checkpoint) => checkpoint.file));
      await produce(brokers, input, threeViews(users, base, 10));
      await waitFor('the next checkpoints', async () => (await past(requestOffset)()) && (await newest(mode, dir, input)).every((checkpoint) => !seen.has(checkpoint.file)), 60_000, 200);
      for (const { file: checkpointFile, text } of await newest(mode, dir, input)) {
        assert.ok(!text.includes(ERASED), `${checkpointFile} names the erased user`);
      }
      daemon.kill('SIGTERM');
      assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
      // The final checkpoint too; the request reached no output and no dead letter.
      for (const { file: checkpointFile, text } of await newest(mode, dir, input)) assert.ok(!text.includes(ERASED), `${checkpointFile} (the final one) names the erased user`);
      let deadLetters = '';
      try {
        deadLetters = readFileSync(join(dir, 'dead-letters.jsonl'), 'utf8');
      } catch {
        // None written: no file.
      }
      assert.equal(deadLetters, '', 'no dead letter');
    } catch (error) {
      t.diagnostic(`logs: ${keptLog(logs[0], 'erasure-first')}, ${keptLog(logs[1], 'erasure-restart')}`);
      throw error;
    } finally {
      if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

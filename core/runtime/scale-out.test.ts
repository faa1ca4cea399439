/**
 * Scale-out's partition state files, with a partitioned source the test drives (as the Kafka source's
 * rebalances do): which partitions are saved at a checkpoint and at a revocation, which file a partition
 * restores, and which files a write may remove from the folder the group's members share.
 */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { readdirSync, readFileSync } from 'node:fs';
import fsPromises, { rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  CheckpointStore,
  checkpointMark,
  ORIGIN,
  readCheckpoint,
  PipelineRunner,
  defineOperator,
  defineSink,
  defineSource,
  recordOperator,
  type AnyPlugin,
  loadPipeline,
  type ClickEvent,
  type PartitionAssignment,
  type PartitionListener,
  type PartitionRevocation,
  type RunOptions,
  type RunStats,
  type StreamRecord,
} from 'tributary';
import { tempFolder, until } from 'tributary/testing';

const T0 = Date.UTC(2024, 5, 1);
const HOUR = 3_600_000;
const label = 'source-driven-0';

/** What the driven source does when the runtime next pulls: a batch of records, or a rebalance first. */
type Step =
  | { assign: PartitionAssignment[] }
  | { records: { partition: string; userId: string; time: number; type?: string }[] }
  | { revoke: PartitionRevocation[] }
  | 'end';

/**
 * A partitioned source that does what the test queues, one step per pull. Its partitions' next offsets
 * follow the records it yields, from where each assignment starts; their watermarks are set by the
 * test (`marks`), as the Kafka source's follow the others' once idle, and so is which are idle (`idle`).
 * `marksAsked` counts the runtime's calls of partitionWatermarks: one per pass of the watermark.
 */
function drivenSource(name = 'driven', sourceLabel = label) {
  const steps: Step[] = [];
  let wake: (() => void) | undefined;
  /** Resolves run(): the runtime pulled again with nothing queued, so it is done with every step. */
  let drained: (() => void) | undefined;
  const from = new Map<string, number>();
  const next = new Map<string, number>();
  const marks = new Map<string, number>();
  const idle = new Set<string>();
  let marksAsked = 0;
  let assignsAsked = 0;
  /** As the Kafka source's partitionsLost: the group gave the partitions away, the revocation not come yet. */
  const lost = { now: false };
  const answered: ReadonlyMap<string, number>[] = [];
  const committed = new Map<string, number>();
  /** As the Kafka source's consumer, whose close revokes its partitions: revoked at close, each sealed (whileHeld) or not. */
  const atClose: { revoke: PartitionRevocation[]; sealed: boolean } = { revoke: [], sealed: false };
  let listener: PartitionListener | undefined;
  const plugin = defineSource<Record<string, never>>({
    name,
    summary: 'test',
    config: { type: 'object' },
    partitioned: true,
    create: () => ({
      onPartitions: (given) => void (listener = given),
      partitionOffsets: () => new Map(next),
      partitionWatermarks: () => (marksAsked++, new Map(marks)),
      idlePartitions: () => new Set(idle),
      committedOffsets: () => new Map(committed),
      partitionsLost: () => lost.now,
      close: async () => {
        if (atClose.revoke.length > 0) await listener!.revoked(atClose.revoke, () => void (atClose.sealed = true));
      },
      watermark: () => (marks.size === 0 ? -Infinity : Math.min(...marks.values())),
      async *read() {
        for (;;) {
          while (steps.length === 0) {
            drained?.();
            await new Promise<void>((resolve) => (wake = resolve));
          }
          const step = steps.shift()!;
          if (step === 'end') return void drained?.();
          if ('assign' in step) {
            assignsAsked++;
            const starts = await listener!.assigned(step.assign);
            answered.push(new Map(starts));
            for (const { id, committed: at } of step.assign) {
              next.delete(id);
              from.set(id, starts.get(id) ?? at ?? 0);
              if (at !== undefined) committed.set(id, at);
            }
            yield [];
          } else if ('revoke' in step) {
            await listener!.revoked(step.revoke);
            for (const { id } of step.revoke) {
              next.delete(id);
              marks.delete(id);
              idle.delete(id);
            }
            yield [];
          } else {
            yield step.records.map(({ partition, userId, time, type = 'view' }): ClickEvent => {
              next.set(partition, (next.get(partition) ?? from.get(partition)!) + 1);
              return { kind: 'event', userId, time, type, [ORIGIN]: { source: sourceLabel, partitionId: partition } };
            });
          }
        }
      },
    }),
  });
  return {
    plugin,
    marks,
    idle,
    marksAsked: () => marksAsked,
    /** How many assignments it handed the runtime (each waits in `assigned` until answered). */
    assignsAsked: () => assignsAsked,
    /** As the Kafka source at a rebalance that comes while an assignment waits: PartitionListener.abandoned. */
    abandon: (ids: string[]) => listener!.abandoned?.(ids),
    lost,
    atClose,
    next,
    /** Where each partition's last assignment started reading (the runtime's start, else its committed offset). */
    from,
    /** Each assignment's starts as the runtime answered them, in order. */
    answered,
    /** As the group's offsets after a commit of the partitions' next offsets. */
    commit: () => {
      for (const [id, offset] of next) committed.set(id, offset);
    },
    /** Queues steps; resolves once the runtime is done with them all (or the input ended). */
    run(...queued: Step[]): Promise<void> {
      const done = new Promise<void>((resolve) => (drained = resolve));
      steps.push(...queued);
      wake?.();
      wake = undefined;
      return done;
    },
  };
}

interface Member {
  runner: PipelineRunner;
  running: Promise<RunStats>;
  source: ReturnType<typeof drivenSource>;
  sessions: StreamRecord[];
  log: { msg: string; [field: string]: unknown }[];
}

/** `cp`: its own checkpoint folder (beside `dir`'s shared partition folders), for members that run at once, each a process of its own. */
async function member(dir: string, source: ReturnType<typeof drivenSource>, keep = 3, stages = '[{type: sessionizer, gap: 30m}]', plugins: AnyPlugin[] = [], cp = 'cp', sections = ''): Promise<Member> {
  const yaml = `name: scaled\nsources: [{type: driven}]\nstages: ${stages}\nsinks: [{type: collect, kinds: [session]}]\ndead_letter: {type: file, path: dead.jsonl, lazy: true}\ncheckpoint: {dir: ${cp}}\nscale_out: {state_dir: ps, keep: ${keep}}\n${sections}`;
  return runMember(dir, source, [source.plugin, ...plugins], yaml, cp);
}

/** A member running `yaml` (its sink `collect` gathers the records), with `plugins` registered; `source` is the one the test drives. */
async function runMember(dir: string, source: ReturnType<typeof drivenSource>, plugins: AnyPlugin[], yaml: string, cp: string, options: Pick<RunOptions, 'coPartitionWaitMs'> = {}): Promise<Member> {
  const { builtinRegistry } = await import('../cli/registry.js');
  const sessions: StreamRecord[] = [];
  const collect = defineSink<Record<string, never>>({
    name: 'collect',
    summary: 'test',
    config: { type: 'object' },
    create: () => ({ write: (record) => void sessions.push(record), close: async () => undefined }),
  });
  const registry = await builtinRegistry();
  registry.register(collect, 'test');
  for (const plugin of plugins) registry.register(plugin, 'test');
  const loaded = await loadPipeline(join(dir, 'scaled.yaml'), { registry, text: yaml, env: {} });
  const log: Member['log'] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void log.push(JSON.parse(line) as Member['log'][number]) });
  const runner = new PipelineRunner(loaded, { logger, checkpoints: { store: new CheckpointStore(join(dir, cp)), intervalMs: 3_600_000 }, ...options });
  const running = runner.run();
  running.catch(() => undefined);
  return { runner, running, source, sessions, log };
}

const files = (dir: string, partition: string): string[] => {
  try {
    return readdirSync(join(dir, 'ps', partition)).filter((name) => name.startsWith('checkpoint-')).sort();
  } catch {
    return [];
  }
};
const summaries = (sessions: readonly StreamRecord[]): string[] => sessions.map((s) => String(s.userId)).sort();

for (const savedAt of ['checkpoint', 'revocation'] as const) {
  test(`a partition restored from its file that reads nothing, whose sessions its watermark closes, is saved at a ${savedAt}: a later owner does not close them again`, async (t) => {
    const dir = tempFolder(t, 'scale-idle');
    // One run: sessions open on both partitions, saved at a checkpoint, committed.
    const first = await member(dir, drivenSource());
    await first.source.run(
      { assign: [{ id: 'p-0', committed: undefined }, { id: 'p-1', committed: undefined }] },
      { records: [{ partition: 'p-0', userId: 'u0', time: T0 }, { partition: 'p-1', userId: 'u1', time: T0 }] },
    );
    await first.runner.checkpoint();
    first.source.commit();
    assert.deepEqual([files(dir, 'p-0').length, files(dir, 'p-1').length], [1, 1]);
    // Unchanged since that checkpoint: their files hold their state, and are not written again.
    await first.source.run({ revoke: [{ id: 'p-0', offset: 1 }, { id: 'p-1', offset: 1 }] }, 'end');
    await first.running;
    assert.deepEqual([files(dir, 'p-0').length, files(dir, 'p-1').length], [1, 1], 'no file of an unchanged partition at its revocation');

    // The next owner: p-0 reads a record two hours on; p-1 reads nothing, and its watermark follows.
    const source = drivenSource();
    const second = await member(dir, source);
    await source.run({ assign: [{ id: 'p-0', committed: 1 }, { id: 'p-1', committed: 1 }] });
    source.marks.set('p-0', T0 + 2 * HOUR).set('p-1', T0 + 2 * HOUR);
    await source.run({ records: [{ partition: 'p-0', userId: 'u9', time: T0 + 2 * HOUR }] });
    assert.deepEqual(summaries(second.sessions), ['u0', 'u1'], 'both partitions closed their sessions');
    if (savedAt === 'checkpoint') {
      await second.runner.checkpoint();
      source.commit();
      // Before: only p-0's file (p-1 has no offset from the source).
      assert.deepEqual(files(dir, 'p-1').length, 2, "p-1's state saved at its start offset");
    }
    await source.run({ revoke: [{ id: 'p-0', offset: source.next.get('p-0') }, { id: 'p-1', offset: undefined }] }, 'end');
    await second.running;
    assert.equal(files(dir, 'p-1').length, 2, `p-1 saved once: ${files(dir, 'p-1').join(', ')}`);

    // A third owner (p-0 committed at 2, p-1 still at 1): more input on both closes what is open.
    const third = await member(dir, drivenSource());
    await third.source.run({ assign: [{ id: 'p-0', committed: 2 }, { id: 'p-1', committed: 1 }] });
    third.source.marks.set('p-0', T0 + 4 * HOUR).set('p-1', T0 + 4 * HOUR);
    await third.source.run({ records: [{ partition: 'p-0', userId: 'u10', time: T0 + 4 * HOUR }, { partition: 'p-1', userId: 'u11', time: T0 + 4 * HOUR }] });
    await third.source.run({ revoke: [{ id: 'p-0', offset: 3 }, { id: 'p-1', offset: 2 }] }, 'end');
    await third.running;
    // Before: u1 again (p-1 restored its first file, its session open).
    assert.deepEqual(summaries(third.sessions), ['u9'], 'only the session still open closes');
  });
}

test('a revocation of lost partitions (the group gave them away first) saves no state, though it changed', async (t) => {
  const dir = tempFolder(t, 'scale-lost');
  const first = await member(dir, drivenSource());
  await first.source.run({ assign: [{ id: 'p-0', committed: undefined }] }, { records: [{ partition: 'p-0', userId: 'u0', time: T0 }] });
  await first.runner.checkpoint();
  first.source.commit();
  await first.source.run({ records: [{ partition: 'p-0', userId: 'u0', time: T0 + 60_000 }] }, { revoke: [{ id: 'p-0', offset: 2, lost: true }] }, 'end');
  await first.running;
  assert.equal(files(dir, 'p-0').length, 1, 'only the checkpoint\'s file');
  assert.ok(first.log.some((entry) => /^partitions lost/.test(entry.msg) && JSON.stringify(entry['partitions']) === '["p-0"]'), 'said');
  // Not lost, the same revocation saves it.
  const second = await member(dir, drivenSource());
  await second.source.run({ assign: [{ id: 'p-0', committed: 1 }] }, { records: [{ partition: 'p-0', userId: 'u0', time: T0 + 60_000 }] }, { revoke: [{ id: 'p-0', offset: 2 }] }, 'end');
  await second.running;
  assert.equal(files(dir, 'p-0').length, 2);
});

test('a partition restores the file of the greatest offset its committed offset covers (the newest of those on a tie), not the newest file under it', async (t) => {
  const dir = tempFolder(t, 'scale-restore');
  const store = new CheckpointStore(join(dir, 'ps', 'p-0'), 10);
  const body = (offset: number) => JSON.stringify({ pipeline: 'scaled', createdAt: new Date(T0).toISOString(), sources: { [label]: { partition: 'p-0', offset } }, operators: {}, counters: {} });
  // 1: the owner's at 5; 2: its next at 8; 3: a member that had not noticed it lost the partition, late, at 3.
  for (const offset of [5, 8, 3]) await store.write(body(offset));
  const restored = async (committed: number) => {
    const one = await member(dir, drivenSource());
    await one.source.run({ assign: [{ id: 'p-0', committed }] }, { revoke: [{ id: 'p-0', offset: undefined }] }, 'end');
    await one.running;
    const entry = one.log.find((line) => line.msg === 'partition state restored');
    return (entry?.['restored'] as { file: string } | undefined)?.file.replace(/.*checkpoint-0*/, '');
  };
  // Before: 3.json for each (the newest the committed offset covers).
  assert.equal(await restored(5), '1.json');
  assert.equal(await restored(8), '2.json');
  assert.equal(await restored(4), '3.json');
  // 4: the owner's again at 5 (a partition that read nothing since, its state changed): the newest on the tie.
  await store.write(body(5));
  assert.equal(await restored(6), '4.json');
});

test('a partition restores the file its committed offset\'s marks name, not a newer one written at that offset whose commit never went through; marks of no file here leave the offset to decide', async (t) => {
  const dir = tempFolder(t, 'scale-marks');
  const store = new CheckpointStore(join(dir, 'ps', 'p-0'), 10);
  const body = (offset: number, note: string) => JSON.stringify({ pipeline: 'scaled', createdAt: new Date(T0).toISOString(), sources: { [label]: { partition: 'p-0', offset, note } }, operators: {}, counters: {} });
  // 1: at 5, committed with its mark; 2: at 5 again (the partition idle, sessions closed by the
  // watermark), its transaction failed: the committed offset and its marks are 1's.
  const first = await store.write(body(5, 'committed'));
  await store.write(body(5, 'never committed'));
  const restored = async (assignment: PartitionAssignment) => {
    const one = await member(dir, drivenSource());
    await one.source.run({ assign: [assignment] }, { revoke: [{ id: 'p-0', offset: undefined }] }, 'end');
    await one.running;
    const entry = one.log.find((line) => line.msg === 'partition state restored');
    return (entry?.['restored'] as { file: string } | undefined)?.file.replace(/.*checkpoint-0*/, '');
  };
  // Before: 2.json (the newest the committed offset covers), whose closed sessions' outputs were lost.
  assert.equal(await restored({ id: 'p-0', committed: 5, marks: ['tributary-checkpoint:9:0123456789abcdef', checkpointMark(first)] }), '1.json');
  // Marks of another folder's files (its sequence, another digest), or none: the offset decides, as before.
  assert.equal(await restored({ id: 'p-0', committed: 5, marks: [checkpointMark({ sequence: 2, sha256: '0'.repeat(64) })] }), '2.json');
  assert.equal(await restored({ id: 'p-0', committed: 5 }), '2.json');
  // A marked file past the committed offset (the offsets reset by hand) is not taken.
  assert.equal(await restored({ id: 'p-0', committed: 4, marks: [checkpointMark(first)] }), undefined);
});

test('a partition restored from the file its committed offset\'s marks name starts reading at that offset, not at the file\'s (records after the file that changed no state are not read again); from a file the offset alone picks, at the file\'s; with none, at the committed offset, said to the source', async (t) => {
  const dir = tempFolder(t, 'scale-marked-start');
  const store = new CheckpointStore(join(dir, 'ps', 'p-0'), 10);
  const body = (offset: number) => JSON.stringify({ pipeline: 'scaled', createdAt: new Date(T0).toISOString(), sources: { [label]: { partition: 'p-0', offset } }, operators: {}, counters: {} });
  // At 5; the offset then committed at 7 with its mark (records 5 and 6 dead-lettered: no state changed, no file).
  const file = await store.write(body(5));
  const startsOf = async (assignment: PartitionAssignment) => {
    const source = drivenSource();
    const one = await member(dir, source);
    await one.source.run({ assign: [assignment] }, { revoke: [{ id: 'p-0', offset: undefined }] }, 'end');
    await one.running;
    return source.answered[0]!.get('p-0');
  };
  // Before: 5 (records 5 and 6 read again, their dead letters written twice).
  assert.equal(await startsOf({ id: 'p-0', committed: 7, marks: [checkpointMark(file)] }), 7);
  assert.equal(await startsOf({ id: 'p-0', committed: 7 }), 5);
  // Before: none (the source started at the committed offset alone, and left it out of its position).
  await rm(join(dir, 'ps', 'p-0'), { recursive: true });
  assert.equal(await startsOf({ id: 'p-0', committed: 7 }), 7);
  assert.equal(await startsOf({ id: 'p-0', committed: undefined }), undefined);
});

/**
 * Holds each write's opening of a checkpoint temp file in `folder` (node:fs/promises, as the durable
 * write opens it) until released: a writer held there has read the folder and chosen its sequence.
 * `next()` resolves, once the next write got there, with its release; `stop()` lets those after pass.
 */
function holdTempOpens(folder: string) {
  const waiting: (() => void)[] = [];
  let arrived: (() => void) | undefined;
  let holding = true;
  const realOpen = fsPromises.open;
  mock.method(fsPromises, 'open', async (path: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    if (holding && String(path).startsWith(folder) && String(path).includes('.json.tmp-')) {
      await new Promise<void>((release) => {
        waiting.push(release);
        arrived?.();
      });
    }
    return realOpen(path, flags, mode);
  });
  syncBuiltinESMExports();
  return {
    async next(): Promise<() => void> {
      while (waiting.length === 0) await new Promise<void>((resolve) => (arrived = resolve));
      return waiting.shift()!;
    },
    stop: () => void (holding = false),
    restore: () => {
      mock.restoreAll();
      syncBuiltinESMExports();
    },
  };
}

/**
 * Moves the watermark of `partition` (read from or not) to `time`: a record at `time` on `other`, a partition
 * of the member's own, the watermarks' pass (as the Kafka source's idle partitions follow the others').
 */
async function moveWatermark(source: ReturnType<typeof drivenSource>, partition: string, other: string, time: number): Promise<void> {
  source.marks.set(partition, time).set(other, time);
  await source.run({ records: [{ partition: other, userId: `on-${other}`, time }] });
}

/** Which file of p-0 (its sequence's name, `2.json`) a new member restores at `committed`, and the sessions of p-0 it closes once p-0's watermark is at `closeAt`. */
async function restoredBy(dir: string, committed: number, closeAt: number): Promise<{ file: string | undefined; closed: string[] }> {
  const source = drivenSource();
  const next = await member(dir, source, 10, undefined, [], 'cp-next');
  await source.run({ assign: [{ id: 'p-0', committed }, { id: 'p-n', committed: undefined }] });
  await moveWatermark(source, 'p-0', 'p-n', closeAt);
  await source.run({ revoke: [{ id: 'p-0', offset: undefined }, { id: 'p-n', offset: undefined }] }, 'end');
  await next.running;
  const entry = next.log.find((line) => line.msg === 'partition state restored' && line['partition'] === 'p-0');
  return { file: (entry?.['restored'] as { file: string } | undefined)?.file.replace(/.*checkpoint-0*/, ''), closed: summaries(next.sessions).filter((user) => !user.startsWith('on-')) };
}

test("a member that has not noticed it lost its partition, writing its state file after the new owner's at the same offset, does not have its file restored: on an offset tie the later owner's wins, whichever is newer", async (t) => {
  const dir = tempFolder(t, 'scale-tie');
  // A: u0's session open on p-0, saved and committed at 1 (file 1, its first owner's).
  const a = await member(dir, drivenSource(), 10);
  await a.source.run({ assign: [{ id: 'p-0', committed: undefined }, { id: 'p-a', committed: undefined }] }, { records: [{ partition: 'p-0', userId: 'u0', time: T0 }] });
  await a.runner.checkpoint();
  a.source.commit();
  // A stalls; the group gives p-0 to B, which restores file 1. p-0 reads nothing; its watermark (following
  // the other partitions') closes u0 there: file 2, at the same offset 1, B's, committed at 1 again.
  const b = await member(dir, drivenSource(), 10, undefined, [], 'cp-b');
  await b.source.run({ assign: [{ id: 'p-0', committed: 1 }, { id: 'p-b', committed: undefined }] });
  await moveWatermark(b.source, 'p-0', 'p-b', T0 + 2 * HOUR);
  assert.deepEqual(summaries(b.sessions), ['u0'], 'B closed u0');
  await b.runner.checkpoint();
  // A goes on, not yet told: its watermark moves short of closing u0, and its checkpoint writes file 3 at offset 1.
  await moveWatermark(a.source, 'p-0', 'p-a', T0 + 10 * 60_000);
  await a.runner.checkpoint();
  assert.deepEqual(files(dir, 'p-0'), ['checkpoint-0000000001.json', 'checkpoint-0000000002.json', 'checkpoint-0000000003.json'], 'the late file written beside B\'s, replacing nothing');
  const owners = await Promise.all(files(dir, 'p-0').map(async (name) => (await readCheckpoint(join(dir, 'ps', 'p-0', name))).sources[label]));
  assert.deepEqual(owners, [{ partition: 'p-0', offset: 1, owners: 1 }, { partition: 'p-0', offset: 1, owners: 2 }, { partition: 'p-0', offset: 1, owners: 1 }], 'each file names how many owners its state had');
  // The next owner (B crashed, say) restores B's file, not A's newer one: u0 was closed and written by B.
  // Before: A's (the newest on the tie), and u0 closed and written again.
  assert.deepEqual(await restoredBy(dir, 1, T0 + 4 * HOUR), { file: '2.json', closed: [] });
  await a.source.run({ revoke: [{ id: 'p-0', offset: undefined }, { id: 'p-a', offset: undefined }] }, 'end');
  await b.source.run({ revoke: [{ id: 'p-0', offset: undefined }, { id: 'p-b', offset: undefined }] }, 'end');
  await Promise.all([a.running, b.running]);
});

test('a checkpoint of a member whose partitions the group took away before it was told (Source.partitionsLost) writes no state file of them, and says why; its revocation saves none either', async (t) => {
  const dir = tempFolder(t, 'scale-lost-checkpoint');
  const a = await member(dir, drivenSource(), 10);
  await a.source.run({ assign: [{ id: 'p-0', committed: undefined }] }, { records: [{ partition: 'p-0', userId: 'u0', time: T0 }] });
  await a.runner.checkpoint();
  a.source.commit();
  assert.equal(files(dir, 'p-0').length, 1);
  // Expelled (its session expired) while its state changed; the revocation saying so not come yet.
  await a.source.run({ records: [{ partition: 'p-0', userId: 'u0', time: T0 + 60_000 }] });
  a.source.lost.now = true;
  await a.runner.checkpoint();
  // Before: a second file, at offset 2, beside the new owner's.
  assert.deepEqual(files(dir, 'p-0'), ['checkpoint-0000000001.json']);
  assert.ok(a.log.some((entry) => /^checkpoint: this member lost its partitions/.test(entry.msg) && JSON.stringify(entry['partitions']) === '["p-0"]'), 'said');
  await a.source.run({ revoke: [{ id: 'p-0', offset: 2, lost: true }] }, 'end');
  await a.running;
  assert.deepEqual(files(dir, 'p-0'), ['checkpoint-0000000001.json']);
});

test("two members writing one partition's folder at once (both read its newest sequence before either wrote) both keep their file, and the restore takes the one of the greatest offset the committed offset covers", async (t) => {
  const dir = tempFolder(t, 'scale-race');
  const folder = join(dir, 'ps', 'p-0');
  const body = (offset: number) => JSON.stringify({ pipeline: 'scaled', createdAt: new Date(T0).toISOString(), sources: { [label]: { partition: 'p-0', offset } }, operators: {}, counters: {} });
  // 1: the group's file at 5, the one the new owner restored.
  await new CheckpointStore(folder, 10).write(body(5));
  const owner = new CheckpointStore(folder, 10);
  const late = new CheckpointStore(folder, 10); // another host's member that has not yet noticed it lost p-0
  const held = holdTempOpens(folder);
  let written: { file: string; sequence: number }[];
  try {
    const ownerWrite = owner.write(body(9));
    const releaseOwner = await held.next();
    const lateWrite = late.write(body(7));
    const releaseLate = await held.next();
    // Both chose their sequence from the folder as it was (1 file): the owner's file goes in first.
    held.stop();
    releaseOwner();
    const ownerFile = await ownerWrite;
    releaseLate();
    written = [ownerFile, await lateWrite];
  } finally {
    held.restore();
  }
  // Before, both were named 2, and the late member's rename replaced the owner's file (the one its commit of 9 covers).
  assert.deepEqual(files(dir, 'p-0'), ['checkpoint-0000000001.json', 'checkpoint-0000000002.json', 'checkpoint-0000000003.json'], 'no file replaced another, no temp file left');
  assert.deepEqual(written.map((file) => file.sequence), [2, 3]);
  const offsets = await Promise.all(written.map(async ({ file }) => (await readCheckpoint(file)).sources[label]));
  assert.deepEqual(offsets, [{ partition: 'p-0', offset: 9 }, { partition: 'p-0', offset: 7 }], 'each file holds what its writer wrote');
  const restored = async (committed: number) => {
    const one = await member(dir, drivenSource(), 10);
    await one.source.run({ assign: [{ id: 'p-0', committed }] }, { revoke: [{ id: 'p-0', offset: undefined }] }, 'end');
    await one.running;
    const entry = one.log.find((line) => line.msg === 'partition state restored');
    return entry?.['restored'] as { file: string; offset: number } | undefined;
  };
  // The owner committed 9: its file, not the newer one of the late member behind it.
  assert.deepEqual(await restored(9), { file: written[0]!.file, offset: 9 });
  assert.deepEqual(await restored(8), { file: written[1]!.file, offset: 7 });
});

test("a partition's file written by its owner removes neither the files another member wrote since it got the partition nor its own last one; those from before, beyond keep, it does", async (t) => {
  const dir = tempFolder(t, 'scale-prune');
  const folder = join(dir, 'ps', 'p-0');
  const store = new CheckpointStore(folder, 10);
  const body = (offset: number) => JSON.stringify({ pipeline: 'scaled', createdAt: new Date(T0).toISOString(), sources: { [label]: { partition: 'p-0', offset } }, operators: {}, counters: {} });
  // The group's files before this member got p-0: 1..3, the newest at the committed offset 3.
  for (const offset of [1, 2, 3]) await store.write(body(offset));
  const source = drivenSource();
  const owner = await member(dir, source, 2);
  await source.run({ assign: [{ id: 'p-0', committed: 3 }] });
  const write = async (userId: string) => {
    await source.run({ records: [{ partition: 'p-0', userId, time: T0 }] });
    await owner.runner.checkpoint();
  };
  await write('a'); // 4, at offset 4: 1 and 2 go (the group's before, beyond keep)
  assert.deepEqual(files(dir, 'p-0'), ['checkpoint-0000000003.json', 'checkpoint-0000000004.json']);
  // A member that has not noticed it lost p-0 writes late (5); this one goes on, its commits failing.
  await store.write(body(2));
  await write('b'); // 6: keeps 5 (another's), 4 (its last), 3 (covered)
  assert.deepEqual(files(dir, 'p-0'), ['checkpoint-0000000003.json', 'checkpoint-0000000004.json', 'checkpoint-0000000005.json', 'checkpoint-0000000006.json']);
  await write('c'); // 7: 4 goes (its own, neither its last nor covered)
  assert.deepEqual(files(dir, 'p-0'), ['checkpoint-0000000003.json', 'checkpoint-0000000005.json', 'checkpoint-0000000006.json', 'checkpoint-0000000007.json']);
  await source.run({ revoke: [{ id: 'p-0', offset: undefined }] }, 'end');
  await owner.running;
});

/** A global stage `marks` that passes records on and keeps the time of each watermark it gets in `seen`. */
function watermarksSeen() {
  const seen: number[] = [];
  const marks = defineOperator<Record<string, never>>({
    name: 'marks', state: 'global', emits: [], summary: 'test', config: { type: 'object' },
    create: (_config, context) => ({ apply: recordOperator(context, () => ({ record: (record, emit) => emit(record), watermark: (mark) => void seen.push(mark.time) })) }),
  });
  return { seen, marks };
}

/** A member whose per-partition sessionizer is followed by a global stage noting the watermarks it sees (watermarksSeen). */
async function heldMember(dir: string): Promise<{ seen: number[]; source: ReturnType<typeof drivenSource>; run: Member }> {
  const { seen, marks } = watermarksSeen();
  const source = drivenSource();
  const run = await member(dir, source, 3, '[{type: sessionizer, gap: 30m}, {type: marks}]', [marks]);
  return { seen, source, run };
}

/** p-0 at 2 h and p-1 behind it at 0, one event each: the global stages at 0. */
async function startTwoPartitions(source: ReturnType<typeof drivenSource>): Promise<void> {
  source.marks.set('p-0', T0 + 2 * HOUR).set('p-1', T0);
  await source.run(
    { assign: [{ id: 'p-0', committed: undefined }, { id: 'p-1', committed: undefined }] },
    { records: [{ partition: 'p-0', userId: 'u0', time: T0 + 2 * HOUR }, { partition: 'p-1', userId: 'u1', time: T0 }] },
  );
}

/** An event 10 days ahead on `partition` (beyond the sessionizer's max_ahead_of_clock, 1d), its watermark moved there: the sessionizer holds. */
async function sendFarFuture(source: ReturnType<typeof drivenSource>, partition: string): Promise<number> {
  const future = Date.now() + 10 * 24 * HOUR;
  source.marks.set(partition, future);
  await source.run({ records: [{ partition, userId: 'skewed-client', time: future }] });
  return future;
}

test('a partition task whose sessionizer holds its watermark back (a far-future event dead-lettered) holds back the global stages\' with it; its later events move both', async (t) => {
  const dir = tempFolder(t, 'scale-held');
  // A global stage after the per-partition sessionizer: the watermarks it sees.
  const { seen, source, run } = await heldMember(dir);
  const future = Date.now() + 10 * 24 * HOUR; // beyond the sessionizer's max_ahead_of_clock (1d), not the source's here
  await source.run({ assign: [{ id: 'p-0', committed: undefined }] }, { records: [{ partition: 'p-0', userId: 'u0', time: T0 }] });
  source.marks.set('p-0', T0);
  await source.run({ records: [{ partition: 'p-0', userId: 'skewed-client', time: future }] });
  source.marks.set('p-0', future);
  await source.run({ records: [{ partition: 'p-0', userId: 'u1', time: T0 + HOUR }] });
  assert.equal(Math.max(...seen), T0 + HOUR, 'the global stage sees the sessionizer\'s time, not the far-future event\'s');
  // The run stats say both: the sources' watermark, and what the stages passed on to the sinks.
  assert.equal(run.runner.stats.watermark, future);
  assert.equal(run.runner.stats.passedWatermark, T0 + HOUR);
  assert.deepEqual(summaries(run.sessions), ['u0'], 'u0 closed by the time u1 moved the sessionizer to');
  await source.run('end');
  await run.running;
  assert.deepEqual(seen.filter((time) => time > T0 + HOUR), [Infinity], 'then only the end of input');
  assert.ok(seen.every((time, k) => k === 0 || time > seen[k - 1]!), `strictly increasing: ${seen.join(', ')}`);
});

test('a partition whose sessionizer holds, handed over (revoked, then assigned again from its file), holds the global stages\' watermark at its time as it did before: not at none', async (t) => {
  for (const handedOver of [false, true]) {
    const dir = tempFolder(t, 'scale-held-over');
    const { seen, source, run } = await heldMember(dir);
    // p-0 at 2 h, p-1 behind it at 0: the global stages at 0.
    await startTwoPartitions(source);
    // A far-future event on p-0 moves its watermark; its sessionizer holds at 2 h, and p-0 reads nothing more.
    await sendFarFuture(source, 'p-0');
    if (handedOver) {
      await source.run({ revoke: [{ id: 'p-0', offset: 2 }] }, { assign: [{ id: 'p-0', committed: 2 }] });
      assert.ok(run.log.some((entry) => entry.msg === 'partition state restored' && (entry['partition'] as string) === 'p-0'));
      // Its watermark starts over: quiet, it follows the others' (as the Kafka source's idle partitions do).
      source.marks.set('p-0', T0 + 3 * HOUR);
    }
    // p-1 moves on to 3 h: the global stages move with it up to p-0's sessionizer's time.
    source.marks.set('p-1', T0 + 3 * HOUR);
    await source.run({ records: [{ partition: 'p-1', userId: 'u2', time: T0 + 3 * HOUR }] });
    // Before: handed over, the new task had passed none, and held the global stages at none (at 0 for good).
    assert.equal(Math.max(...seen), T0 + 2 * HOUR, handedOver ? 'handed over' : 'kept');
    await source.run('end');
    await run.running;
  }
});

test('a held partition (its sessionizer after a far-future event) holds the global stages\' watermark while active; idle, it no longer does; active again, it holds them where they stand, until its own events move it', async (t) => {
  const dir = tempFolder(t, 'scale-held-idle');
  const { seen, source, run } = await heldMember(dir);
  await startTwoPartitions(source);
  // A far-future event on p-0 moves its watermark; its sessionizer holds at 2 h.
  await sendFarFuture(source, 'p-0');
  const moveP1 = async (hours: number) => {
    source.marks.set('p-1', T0 + hours * HOUR);
    await source.run({ records: [{ partition: 'p-1', userId: `u1-${hours}`, time: T0 + hours * HOUR }] });
  };
  await moveP1(3);
  assert.equal(Math.max(...seen), T0 + 2 * HOUR, 'active, p-0 holds them at its sessionizer\'s time');
  // p-0 goes quiet for its idle_timeout: p-1 moves them on.
  source.idle.add('p-0');
  await moveP1(4);
  // Before: 2 h, for as long as p-0 stayed quiet.
  assert.equal(Math.max(...seen), T0 + 4 * HOUR, 'idle, p-0 holds them no longer');
  // Active again (records to read): it holds again, from where they stand (4 h), not back at 2 h.
  source.idle.delete('p-0');
  await moveP1(5);
  assert.equal(Math.max(...seen), T0 + 4 * HOUR, 'active again, p-0 holds them again');
  // Its own event at 5 h moves its sessionizer, and them with it.
  await source.run({ records: [{ partition: 'p-0', userId: 'u2', time: T0 + 5 * HOUR }] });
  assert.equal(Math.max(...seen), T0 + 5 * HOUR, 'p-0\'s events move them');
  await source.run('end');
  await run.running;
  assert.ok(seen.every((time, k) => k === 0 || time > seen[k - 1]!), `strictly increasing: ${seen.join(', ')}`);
});

test('every partition idle, the global stages go no further than the most advanced time a held partition\'s stages passed on: a lone held partition does not hand them the far-future time its sessionizer holds back', async (t) => {
  const dir = tempFolder(t, 'scale-held-all-idle');
  const { seen, source, run } = await heldMember(dir);
  source.marks.set('p-0', T0);
  await source.run({ assign: [{ id: 'p-0', committed: undefined }] }, { records: [{ partition: 'p-0', userId: 'u0', time: T0 }] });
  await sendFarFuture(source, 'p-0');
  assert.equal(Math.max(...seen), T0);
  // Quiet: the runtime's idle timer passes the watermark again (no batch comes).
  source.idle.add('p-0');
  const asked = source.marksAsked();
  await until(() => source.marksAsked() > asked, 'a pass of the watermark with p-0 idle');
  assert.equal(Math.max(...seen), T0, 'held at the sessionizer\'s time, not the far-future one');
  assert.deepEqual(summaries(run.sessions), [], 'u0\'s session still open');
  await source.run('end');
  await run.running;
});

test('every partition idle, a partition whose stages hold nothing does not hand the global stages the far-future time it got by following the others (the Kafka source\'s idle partitions do): they stay where the held partition holds them', async (t) => {
  const dir = tempFolder(t, 'scale-held-all-idle-two');
  const { seen, source, run } = await heldMember(dir);
  await startTwoPartitions(source);
  // p-0's sessionizer holds at 2 h after a far-future event; p-1 moves on to 3 h.
  const future = await sendFarFuture(source, 'p-0');
  source.marks.set('p-1', T0 + 3 * HOUR);
  await source.run({ records: [{ partition: 'p-1', userId: 'u1', time: T0 + 3 * HOUR }] });
  assert.equal(Math.max(...seen), T0 + 2 * HOUR);
  // Both go quiet: the sources' watermark follows the most advanced partition (p-0's far-future one), and so does
  // idle p-1's, whose sessionizer, not held, passes it on.
  source.idle.add('p-0').add('p-1');
  source.marks.set('p-1', future);
  const asked = source.marksAsked();
  await until(() => source.marksAsked() > asked, 'a pass of the watermark with both partitions idle');
  // Before: the far-future time, from p-1's stages (every partition's label and session timers fire at once).
  assert.equal(Math.max(...seen), T0 + 2 * HOUR, "held at p-0's sessionizer's time");
  await source.run('end');
  await run.running;
});

test("a partition's state file records the stages as the pipeline's checkpoint does: a feature stage edited before its per-partition stages is warned of once, however many partitions resume", async (t) => {
  // Was: partition files carried no record of the stages, so an edit before the per-partition stages resumed them without a word.
  const dir = tempFolder(t, 'scale-stages');
  const boost = defineOperator<{ factor: number }>({
    name: 'boost',
    summary: "test: a user's stateless feature operator that declares no featureNames",
    config: { type: 'object', properties: { factor: { type: 'number' } } },
    state: 'none',
    create: (_config, context) => ({ apply: recordOperator(context, () => ({ record: (record, emit) => emit(record) })) }),
  }) as AnyPlugin;
  const stages = (factor: number): string => `[{type: boost, label: boost, factor: ${factor}}, {type: sessionizer, label: sessions, gap: 30m}]`;
  const first = await member(dir, drivenSource(), 3, stages(1), [boost]);
  await first.source.run(
    { assign: [{ id: 'p-0', committed: undefined }, { id: 'p-1', committed: undefined }] },
    { records: [{ partition: 'p-0', userId: 'u0', time: T0 }, { partition: 'p-1', userId: 'u1', time: T0 }] },
  );
  await first.runner.checkpoint();
  first.source.commit();
  await first.source.run({ revoke: [{ id: 'p-0', offset: 1 }, { id: 'p-1', offset: 1 }] }, 'end');
  await first.running;
  const saved = await readCheckpoint(join(dir, 'ps', 'p-0', files(dir, 'p-0').at(-1)!));
  assert.deepEqual(saved.stages?.map((stage) => [stage.label, stage.features]), [['boost', 'undeclared'], ['sessions', undefined]]);

  const resume = async (factor: number): Promise<Member['log']> => {
    const next = await member(dir, drivenSource(), 3, stages(factor), [boost]);
    await next.source.run({ assign: [{ id: 'p-0', committed: 1 }, { id: 'p-1', committed: 1 }] }, { revoke: [{ id: 'p-0', offset: undefined }, { id: 'p-1', offset: undefined }] }, 'end');
    await next.running;
    return next.log.filter((line) => line.msg.includes('stages that make or select features changed'));
  };
  assert.deepEqual(await resume(1), [], 'nothing changed');
  const warned = await resume(2);
  assert.equal(warned.length, 1, `said once for both partitions: ${warned.map((line) => line.msg).join('\n')}`);
  assert.match(warned[0]!.msg, /^partition checkpoint .*ps\/p-\d\/checkpoint-\d+\.json: stages that make or select features changed since it was taken \(boost \(.*scaled\.yaml:3:10, \$\.stages\[0\], boost\): factor: 1 -> 2\); sessions resumes with state built on the features as they were/);
  assert.deepEqual(warned[0]!['resumed'], ['sessions']);
});

test('a partition state file records its topic\'s partition count: one saved under another count (partitions added to the topic) is not restored, and the run stops for a person, naming the file, both counts and the way out (was: restored to a partition most of whose users had moved to others)', async (t) => {
  const dir = tempFolder(t, 'scale-count');
  const first = await member(dir, drivenSource());
  await first.source.run(
    { assign: [{ id: 'p-0', committed: undefined, partitions: 2 }, { id: 'p-1', committed: undefined, partitions: 2 }] },
    { records: [{ partition: 'p-0', userId: 'u0', time: T0 }, { partition: 'p-1', userId: 'u1', time: T0 }] },
  );
  await first.runner.checkpoint();
  first.source.commit();
  await first.source.run('end');
  await first.running;
  const saved = join(dir, 'ps', 'p-0', files(dir, 'p-0').at(-1)!);
  assert.equal(((await readCheckpoint(saved)).sources[label] as { partitions?: number }).partitions, 2);

  // The same count: restored as ever.
  const same = await member(dir, drivenSource());
  await same.source.run({ assign: [{ id: 'p-0', committed: 1, partitions: 2 }] }, { revoke: [{ id: 'p-0', offset: 1 }] }, 'end');
  await same.running;
  assert.ok(same.log.some((entry) => entry.msg === 'partition state restored'), 'restored');

  // The topic grown to 3 partitions: refused, nothing restored.
  const grown = await member(dir, drivenSource());
  void grown.source.run({ assign: [{ id: 'p-0', committed: 1, partitions: 3 }] });
  await assert.rejects(grown.running, (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_CHECKPOINT', error.message);
    assert.ok(error.message.includes(`the state of partition p-0 (${saved}) was saved when its topic had 2 partitions; it has 3 now`), error.message);
    assert.ok(error.message.includes(`move the partition folders out of ${join(dir, 'ps')} (scale_out.state_dir)`), error.message);
    return true;
  });
  assert.ok(!grown.log.some((entry) => entry.msg === 'partition state restored'), 'nothing restored');
});

test("an erasure request reaches the task of its partition: that partition's next state file names the user nowhere, the other users' state stays, and a partition whose state it did not touch writes no file", async (t) => {
  const dir = tempFolder(t, 'scale-erasure');
  const first = await member(dir, drivenSource(), 3, '[{type: sessionizer, gap: 30m}, {type: user-features, horizons: [1d]}]', [], 'cp', 'erasure: {}\n');
  await first.source.run(
    { assign: [{ id: 'p-0', committed: undefined }, { id: 'p-1', committed: undefined }] },
    { records: [{ partition: 'p-0', userId: 'erase-me', time: T0 }, { partition: 'p-0', userId: 'keep-me', time: T0 + 1 }, { partition: 'p-1', userId: 'other', time: T0 }] },
  );
  await first.runner.checkpoint();
  const newest = (partition: string): string => readFileSync(join(dir, 'ps', partition, files(dir, partition).at(-1)!), 'utf8');
  assert.ok(newest('p-0').includes('erase-me'), 'held before the request');
  await first.source.run({ records: [{ partition: 'p-0', userId: 'erase-me', time: T0 + 2, type: 'erase' }] });
  await first.runner.checkpoint();
  assert.deepEqual([files(dir, 'p-0').length, files(dir, 'p-1').length], [2, 1]);
  assert.ok(!newest('p-0').includes('erase-me'), newest('p-0'));
  assert.ok(newest('p-0').includes('keep-me'));
  assert.ok(newest('p-1').includes('other'));
  assert.equal(first.log.filter((line) => line.msg.startsWith('erasure request done')).length, 1);
  await first.source.run('end');
  await first.running;
});

/**
 * Two partitioned sources (clicks, orders: co-partitioned topics) in one scale_out pipeline, each with its own
 * checkpoint folder under `dir` (`cp`) and the shared partition folders.
 */
async function coMember(dir: string, clicks: ReturnType<typeof drivenSource>, orders: ReturnType<typeof drivenSource>, cp = 'cp', options: Pick<RunOptions, 'coPartitionWaitMs'> = {}): Promise<Member> {
  // The test drives each source a step at a time, so no source may wait for another to catch up (watermark alignment off).
  const yaml = `name: scaled\nsources: [{type: driven, watermark: {max_drift: unlimited}}, {type: orders, watermark: {max_drift: unlimited}}]\nstages: [{type: sessionizer, gap: 30m}]\nsinks: [{type: collect, kinds: [session]}]\ndead_letter: {type: file, path: dead.jsonl, lazy: true}\ncheckpoint: {dir: ${cp}}\nscale_out: {state_dir: ps}\n`;
  return runMember(dir, clicks, [clicks.plugin, orders.plugin], yaml, cp, options);
}

const ordersLabel = 'source-orders-1';

test("several sources (co-partitioned topics): partition p of each is one task p, restored and handed over together; its file holds both offsets, and an order after the hand-over still lands in its user's session", async (t) => {
  const dir = tempFolder(t, 'scale-co');
  const clicks = drivenSource();
  const orders = drivenSource('orders', ordersLabel);
  const first = await coMember(dir, clicks, orders);
  // Each source's consumer hears of the assignment on its own: the task waits for both.
  const assigned = clicks.run({ assign: [{ id: 'c-0', partition: 0, committed: undefined }, { id: 'c-1', partition: 1, committed: undefined }] });
  await orders.run({ assign: [{ id: 'o-0', partition: 0, committed: undefined }, { id: 'o-1', partition: 1, committed: undefined }] });
  await assigned;
  await clicks.run({ records: [{ partition: 'c-0', userId: 'u0', time: T0 }, { partition: 'c-0', userId: 'u0', time: T0 + 60_000 }, { partition: 'c-1', userId: 'u1', time: T0 }] });
  await orders.run({ records: [{ partition: 'o-0', userId: 'u0', time: T0 + 120_000, type: 'purchase' }] });
  // Revoked by one source first: the task waits for the other's revocation, then saves both offsets in one file.
  const revoked = clicks.run({ revoke: [{ id: 'c-0', partition: 0, offset: 2 }, { id: 'c-1', partition: 1, offset: 1 }] }, 'end');
  await orders.run({ revoke: [{ id: 'o-0', partition: 0, offset: 1 }, { id: 'o-1', partition: 1, offset: undefined }] }, 'end');
  await revoked;
  await first.running;
  assert.deepEqual(summaries(first.sessions), [], 'nothing closed: the sessions moved with their tasks');
  assert.deepEqual([files(dir, 'c-0+o-0').length, files(dir, 'c-1+o-1').length, files(dir, 'c-0').length], [1, 1, 0], 'one folder per task, named by its partitions');
  const saved = await readCheckpoint(join(dir, 'ps', 'c-0+o-0', files(dir, 'c-0+o-0')[0]!));
  assert.deepEqual(
    Object.fromEntries(Object.entries(saved.sources).map(([source, position]) => [source, (position as { partition: string; offset?: number }).offset])),
    { [label]: 2, [ordersLabel]: 1 },
    "the file covers both topics' partition 0",
  );
  const other = await readCheckpoint(join(dir, 'ps', 'c-1+o-1', files(dir, 'c-1+o-1')[0]!));
  assert.equal((other.sources[ordersLabel] as { offset?: number }).offset, undefined, 'of a partition nothing was read or committed of, no offset');

  // The next owner: both committed where the file says; one more order of u0 and a click later close the session.
  const clicks2 = drivenSource();
  const orders2 = drivenSource('orders', ordersLabel);
  const second = await coMember(dir, clicks2, orders2, 'cp2');
  const assigned2 = orders2.run({ assign: [{ id: 'o-0', partition: 0, committed: 1 }, { id: 'o-1', partition: 1, committed: undefined }] });
  await clicks2.run({ assign: [{ id: 'c-0', partition: 0, committed: 2 }, { id: 'c-1', partition: 1, committed: 1 }] });
  await assigned2;
  assert.deepEqual([Object.fromEntries(clicks2.answered[0]!), Object.fromEntries(orders2.answered[0]!)], [{ 'c-0': 2, 'c-1': 1 }, { 'o-0': 1 }], "each source starts where the task's file says");
  await orders2.run({ records: [{ partition: 'o-0', userId: 'u0', time: T0 + 180_000, type: 'purchase' }] });
  // The task's watermark is the least of its partitions': the clicks partition moved on, the orders one holds it.
  clicks2.marks.set('c-0', T0 + 3 * HOUR).set('c-1', T0 + 3 * HOUR);
  orders2.marks.set('o-0', T0 + 180_000).set('o-1', T0 + 3 * HOUR);
  await clicks2.run({ records: [{ partition: 'c-0', userId: 'u9', time: T0 + 3 * HOUR }] });
  assert.deepEqual(summaries(second.sessions), ['u1'], "partition 0's session waits for its orders partition's watermark");
  // Idle by its source's idle_timeout, the orders partition holds the task no longer.
  orders2.idle.add('o-0');
  await clicks2.run({ records: [{ partition: 'c-1', userId: 'u8', time: T0 + 3 * HOUR }] });
  const u0 = second.sessions.find((session) => session.userId === 'u0') as (StreamRecord & { eventCount: number; purchased: boolean }) | undefined;
  assert.deepEqual([u0?.eventCount, u0?.purchased], [4, true], "u0's session holds its clicks and both orders, across the hand-over");
  await clicks2.run('end');
  await orders2.run('end');
  await second.running;
});

test('several sources: the sources of a scale_out pipeline must all be partitioned; with scale_out, Kafka sources must share one group, read one topic each (no topic in two), and keep the range assignor (said at each field)', async (t) => {
  const dir = tempFolder(t, 'scale-co-config');
  const { builtinRegistry } = await import('../cli/registry.js');
  const registry = await builtinRegistry();
  const problemsOf = async (sources: string[]): Promise<string[]> => {
    const text = ['sources:', ...sources, 'stages: [{type: sessionizer}]', 'sinks: [{type: stdout}]', 'checkpoint: {dir: cp}', 'scale_out: {state_dir: ps}', ''].join('\n');
    try {
      await loadPipeline(join(dir, 'p.yaml'), { registry, text, env: {} });
      return [];
    } catch (error) {
      return String((error as Error).message).split('\n').map((line) => line.replace(/^.*p\.yaml:/, 'P:'));
    }
  };
  const kafka = (rest: string): string => `  - {type: kafka, brokers: 'b:9092', ${rest}}`;
  assert.deepEqual(await problemsOf([kafka('topics: [clicks], group: g'), kafka('topics: [orders], group: g')]), []);
  assert.deepEqual(await problemsOf([kafka('topics: [clicks], group: g'), '  - {type: synthetic}']), [
    "P:3:5: $.sources[1]: scale_out needs a partitioned source (kafka); 'synthetic' is not: with several sources, partition p of each goes to one task p, so every source must be one (co-partitioned topics)",
  ]);
  const problems = await problemsOf([kafka('topics: [clicks, views], group: g'), kafka("topics: [orders], group: h, options: {partition.assignment.strategy: cooperative-sticky}")]);
  assert.equal(problems.length, 4, problems.join('\n'));
  assert.match(problems[0]!, /^P:2:46: \$\.sources\[0\]\.topics: with scale_out, partition p of every source's topic goes to one task p \(co-partitioned topics\): each source reads one topic; this one names 2/);
  assert.match(problems[1]!, /^P:2:70: \$\.sources\[0\]\.group: .*every source must be in one consumer group.*this one's is 'g', source-kafka-1's 'h'/);
  assert.match(problems[2]!, /^P:3:63: \$\.sources\[1\]\.group: .*this one's is 'h', source-kafka-0's 'g'/);
  assert.match(problems[3]!, /^P:3:107: \$\.sources\[1\]\.options\["partition\.assignment\.strategy"\]: .*only the range assignor.*'cooperative-sticky' does not/);
  // One topic in two sources: in one group they would split its partitions, and task p would take p of it twice.
  assert.deepEqual(
    await problemsOf([kafka('topics: [clicks], group: g'), kafka('topics: [clicks], group: g')]),
    [
      "P:2:46: $.sources[0].topics: with scale_out, partition p of every source's topic goes to one task p (co-partitioned topics): source-kafka-1 reads 'clicks' too; read a topic in one source",
      "P:3:46: $.sources[1].topics: with scale_out, partition p of every source's topic goes to one task p (co-partitioned topics): source-kafka-0 reads 'clicks' too; read a topic in one source",
    ],
  );
});

test('several sources: an assignment waiting for the other source\'s partitions is given up when a rebalance comes first (PartitionListener.abandoned), its revocation waits for nothing, and the next assignment of both starts the task', async (t) => {
  const dir = tempFolder(t, 'scale-co-abandon');
  const clicks = drivenSource();
  const orders = drivenSource('orders', ordersLabel);
  const one = await coMember(dir, clicks, orders);
  // The clicks consumer's generation, which the orders consumer had not joined yet: its task waits for orders' partition 0.
  const first = clicks.run({ assign: [{ id: 'c-0', partition: 0, committed: undefined }] }, { revoke: [{ id: 'c-0', partition: 0, offset: undefined }] });
  await until(() => clicks.assignsAsked() === 1, 'the clicks assignment to wait in the runtime');
  // The next rebalance (the orders consumer joining) needs the clicks consumer: before, its wait held it for 60 s, and the run failed.
  clicks.abandon(['c-0']);
  await first;
  assert.deepEqual(Object.fromEntries(clicks.answered[0]!), {}, 'given up: no start, nothing read');
  assert.equal(one.log.filter((line) => /^partition (state restored|starts with empty state)/.test(line.msg)).length, 0, 'no task started');
  // The rebalance that gives this member partition 0 of both topics.
  const both = clicks.run({ assign: [{ id: 'c-0', partition: 0, committed: undefined }] });
  await orders.run({ assign: [{ id: 'o-0', partition: 0, committed: undefined }] });
  await both;
  await clicks.run({ records: [{ partition: 'c-0', userId: 'u0', time: T0 }] });
  await orders.run({ records: [{ partition: 'o-0', userId: 'u0', time: T0 + 60_000, type: 'purchase' }] });
  const ended = clicks.run('end');
  await orders.run('end');
  await ended;
  await one.running;
  const u0 = one.sessions.find((session) => session.userId === 'u0') as (StreamRecord & { eventCount: number }) | undefined;
  assert.equal(u0?.eventCount, 2, 'the task of partition 0 took both');
});

test('several sources: at a stop the sources close together, so each consumer\'s revocation of a task\'s partitions (a Kafka consumer\'s close revokes them) finds the others\' at once and the hand-over is sealed while every consumer is still in the group', { timeout: 30_000 }, async (t) => {
  const dir = tempFolder(t, 'scale-co-close');
  const clicks = drivenSource();
  const orders = drivenSource('orders', ordersLabel);
  const one = await coMember(dir, clicks, orders);
  const assigned = clicks.run({ assign: [{ id: 'c-0', partition: 0, committed: undefined }] });
  await orders.run({ assign: [{ id: 'o-0', partition: 0, committed: undefined }] });
  await assigned;
  await clicks.run({ records: [{ partition: 'c-0', userId: 'u0', time: T0 }] });
  clicks.atClose.revoke = [{ id: 'c-0', partition: 0, offset: 1 }];
  orders.atClose.revoke = [{ id: 'o-0', partition: 0, offset: undefined }];
  const ended = clicks.run('end');
  await orders.run('end');
  await ended;
  // Before: closed one after another, the clicks source's close waited in its revocation for the orders one's, which
  // only its own close would bring (60 s, then the wait failed). A Kafka member's close waited so until the group
  // expelled its first consumer (session.timeout.ms), whose hand-over commit the brokers then refused: "Unknown member".
  await one.running;
  assert.deepEqual([clicks.atClose.sealed, orders.atClose.sealed], [true, true], 'both sources\' hand-over sealed');
  assert.deepEqual(
    one.log.filter((line) => line.msg === 'partition state saved for hand-over').map((line) => line['partitions']),
    [['c-0+o-0']],
  );
});

test('several sources: topics of unequal partition counts stop the run at the assignment, at once, naming each source\'s topic and count at its entry (was: the larger topic\'s partitions waited a minute for parts that never come, then the run failed blaming the assignor)', { timeout: 30_000 }, async (t) => {
  const dir = tempFolder(t, 'scale-co-counts');
  const clicks = drivenSource();
  const orders = drivenSource('orders', ordersLabel);
  const one = await coMember(dir, clicks, orders);
  const failed = one.running.then(
    () => assert.fail('the run went on'),
    (error: unknown) => error as Error,
  );
  // One member holds every partition of both: tasks 2 and 3 would have no orders partition ever.
  void clicks.run({ assign: [0, 1, 2, 3].map((p) => ({ id: `clicks-${p}`, partition: p, committed: undefined, partitions: 4 })) });
  void orders.run({ assign: [0, 1].map((p) => ({ id: `orders-${p}`, partition: p, committed: undefined, partitions: 2 })) });
  const started = Date.now();
  const error = await failed;
  assert.ok(Date.now() - started < 10_000, `refused at once, not after the co-partition wait (${Date.now() - started} ms)`);
  assert.match(error.message, /scaled\.yaml:\d+:\d+: \$\.sources\[0\]: scale_out with several sources needs co-partitioned topics, one partition count for all .*source-driven-0 \(topic clicks\) 4, source-orders-1 \(topic orders\) 2 partitions/);
  assert.match(error.message, /\$\.sources\[1\]: /, 'said at each source');
  assert.equal(one.log.filter((line) => /^partition (state restored|starts with empty state)/.test(line.msg)).length, 0, 'no task started');
});

test('several sources: a member given partition p of one topic but not of the other waits for it (RunOptions.coPartitionWaitMs, a minute by default), then the run fails saying the assignment does not keep the topics together; nothing of the parts is read', { timeout: 30_000 }, async (t) => {
  const dir = tempFolder(t, 'scale-co-apart');
  const clicks = drivenSource();
  const orders = drivenSource('orders', ordersLabel);
  const one = await coMember(dir, clicks, orders, 'cp', { coPartitionWaitMs: 1_000 });
  // The wait's timer keeps no process alive (a Kafka consumer does, in a daemon); the driven sources none either.
  const alive = setInterval(() => undefined, 100);
  t.after(() => clearInterval(alive));
  const failed = one.running.then(
    () => assert.fail('the run went on'),
    (error: unknown) => error as Error,
  );
  // As another assignor (roundrobin on some member) would: clicks 0 here, but orders 1.
  void clicks.run({ assign: [{ id: 'clicks-0', partition: 0, committed: undefined, partitions: 2 }] });
  void orders.run({ assign: [{ id: 'orders-1', partition: 1, committed: undefined, partitions: 2 }] });
  const started = Date.now();
  const error = await failed;
  assert.ok(Date.now() - started >= 900, 'it waited for the other parts first');
  assert.match(error.message, /scale_out: source-(driven-0 assigned partitions clicks-0 here, and source-orders-1|orders-1 assigned partitions orders-1 here, and source-driven-0) did not assign the same partition numbers within 1 s: the group's assignment does not keep the topics' partitions together/);
  assert.deepEqual([Object.fromEntries(clicks.next), Object.fromEntries(orders.next)], [{}, {}], 'nothing read');
  assert.equal(one.log.filter((line) => /^partition (state restored|starts with empty state)/.test(line.msg)).length, 0, 'no task started');
});

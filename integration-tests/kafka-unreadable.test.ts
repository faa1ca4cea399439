/**
 * Record batches librdkafka cannot read, made by changing a topic's log segment on a broker the test
 * owns: a compressed batch whose bytes were damaged on disk goes to the dead-letter sink, one dead
 * letter per offset (topic, partition, offset and librdkafka's reason), and reading goes on after it,
 * never to read it again; a batch in a compression codec this build of librdkafka lacks (zstd) is valid
 * input, so it is waited on, the source not ready and naming it, not skipped.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync, readSync, writeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { runYaml, tempFolder } from 'tributary/testing';
import type { ClickEvent, StreamRecord } from 'tributary';
import { kafkaBrokerOnDisk, uniqueTopic, unlessFailed, waitFor } from './kafka/env.js';
import { clickJson, collectSink, createTopic, groupCommitted, produce, readTopic, startSource, values } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const views = (from: number, count: number, partition: number) =>
  Array.from({ length: count }, (_, i) => ({ key: `u${from + i}`, value: clickJson(from + i, base + from + i, 'view', { seq: from + i }), partition }));
/** One batch: everything produced in one go, held for 500 ms (the records are all there long before). */
const oneBatch = (compression: string) => ({ 'compression.codec': compression, 'linger.ms': 500, 'batch.num.messages': 100_000 });

interface RecordBatch {
  /** Where its header starts in the segment file, and how long it is (after the length field). */
  at: number;
  length: number;
  first: number;
  last: number;
  /** The compression codec (attributes & 7): 0 none, 1 gzip, 4 zstd. */
  codec: number;
}

/** The first segment file of a partition on the broker's disk (its log.dirs is `dataDir`). */
function segmentOf(broker: { dataDir: string }, topic: string, partition: number): string {
  return join(broker.dataDir, `${topic}-${partition}`, '00000000000000000000.log');
}

/** The v2 record batches of a segment file, from their headers (Kafka's on-disk format). */
function recordBatches(file: string): RecordBatch[] {
  const fd = openSync(file, 'r');
  try {
    const bytes = Buffer.alloc(fstatSync(fd).size);
    readSync(fd, bytes, 0, bytes.length, 0);
    const batches: RecordBatch[] = [];
    // baseOffset int64, batchLength int32, leaderEpoch int32, magic int8, crc int32, attributes int16, lastOffsetDelta int32
    for (let at = 0; at + 27 <= bytes.length; at += 12 + bytes.readInt32BE(at + 8)) {
      const first = Number(bytes.readBigInt64BE(at));
      batches.push({ at, length: bytes.readInt32BE(at + 8), first, last: first + bytes.readInt32BE(at + 23), codec: bytes.readInt16BE(at + 21) & 7 });
    }
    return batches;
  } finally {
    closeSync(fd);
  }
}

/** Changes `count` bytes of a batch at `offset` from its start (the broker serves fetches from the file as it is). */
function overwrite(file: string, batch: RecordBatch, offset: number, change: (bytes: Buffer) => void, count: number): void {
  const fd = openSync(file, 'r+');
  try {
    const bytes = Buffer.alloc(count);
    readSync(fd, bytes, 0, count, batch.at + offset);
    change(bytes);
    writeSync(fd, bytes, 0, count, batch.at + offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * Rewrites an uncompressed batch in place as an LZ4 one whose records decompress short. Records start
 * after the 61-byte header (12 before batchLength's end, 49 after). A frame: magic, FLG 0x60 (version 1,
 * independent blocks, no checksums), BD 0x40 (64 KB blocks), header checksum 0x82; one block stored as
 * it is (size with the high bit set), then the end mark: 15 bytes more than its data, so it holds the
 * records less their last 15 bytes, the last record cut off.
 */
function asShortLz4(file: string, batch: RecordBatch): void {
  const recordsLength = batch.length - 49;
  overwrite(file, batch, 12, (bytes) => {
    const records = Buffer.from(bytes.subarray(49));
    const stored = records.subarray(0, recordsLength - 15);
    const frame = Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]), Buffer.alloc(4), stored, Buffer.alloc(4)]);
    frame.writeUInt32LE((0x80000000 | stored.length) >>> 0, 7);
    frame.copy(bytes, 49);
    // attributes (at 21 from the batch's start, 9 after the length field): codec 3, LZ4.
    bytes.writeInt16BE((bytes.readInt16BE(9) & ~7) | 3, 9);
  }, batch.length);
}

// Bounded: without a way past the batch, the run would wait at it for ever (stop_at_end never comes).
test('a record batch damaged on disk: one dead letter per offset with topic, partition, offset and librdkafka\'s reason; reading goes on after it, and a restart does not read it again', { timeout: 120_000 }, async (t) => {
  const broker = await kafkaBrokerOnDisk(t);
  if (!broker) return;
  const topic = uniqueTopic('unreadable');
  await createTopic(broker.brokers, topic, 2);
  await produce(broker.brokers, topic, views(0, 30, 0));
  await produce(broker.brokers, topic, views(30, 400, 0), oneBatch('gzip'));
  await produce(broker.brokers, topic, views(430, 200, 0), oneBatch('gzip'));
  await produce(broker.brokers, topic, views(630, 30, 0));
  await produce(broker.brokers, topic, views(10_000, 100, 1));
  const file = segmentOf(broker, topic, 0);
  const damaged = recordBatches(file).find((batch) => batch.codec === 1)!;
  assert.deepEqual([damaged.first, damaged.last], [30, 429], 'the 400 gzip records are one batch');
  // 8 bytes in the middle of its compressed records: they no longer decompress.
  overwrite(file, damaged, 12 + Math.floor(damaged.length / 2), (bytes) => bytes.forEach((byte, i) => (bytes[i] = byte ^ 0xff)), 8);

  const { stats, seqs, deadLetters, runAgain } = await readToEnd(broker, topic, t);
  const expected = [...Array.from({ length: 30 }, (_, i) => i), ...Array.from({ length: 230 }, (_, i) => 430 + i), ...Array.from({ length: 100 }, (_, i) => 10_000 + i)];
  assert.deepEqual(seqs, expected, 'every readable record once, those after the damaged batch included');
  const dead = deadLetters as unknown as { reason: string; file: string; partition: number; offset: number }[];
  assert.equal(stats.deadLettered, 400);
  assert.deepEqual(dead.map((letter) => letter.offset), Array.from({ length: 400 }, (_, i) => 30 + i), 'one dead letter per offset of the batch, in order');
  for (const letter of dead) {
    assert.equal(letter.file, topic);
    assert.equal(letter.partition, 0);
    assert.match(letter.reason, /^kafka record batch from offset 30 cannot be read, so neither can this record: Decompression \(codec 0x1\) of message at 30 of \d+ bytes failed: /);
  }
  // The offsets committed are past the batch: the group's next run has nothing to read again.
  const again = await runAgain();
  assert.equal(again.stats.eventsIn, 0);
  assert.equal(again.stats.deadLettered, 0);
});

test('a record batch in a compression codec this build of librdkafka lacks is not skipped: the source is not ready, naming it, and waits', async (t) => {
  const broker = await kafkaBrokerOnDisk(t);
  if (!broker) return;
  const topic = uniqueTopic('codec');
  await createTopic(broker.brokers, topic, 1);
  await produce(broker.brokers, topic, views(0, 10, 0));
  await produce(broker.brokers, topic, views(10, 50, 0), oneBatch('gzip'));
  await produce(broker.brokers, topic, views(60, 10, 0));
  // Marked as zstd (a Java producer's compression.type=zstd), which node-rdkafka's bundled librdkafka
  // cannot decompress. The batch's CRC no longer matches: librdkafka does not check it by default.
  const file = segmentOf(broker, topic, 0);
  const batch = recordBatches(file).find((each) => each.codec === 1)!;
  overwrite(file, batch, 21, (bytes) => bytes.writeInt16BE((bytes.readInt16BE(0) & ~7) | 4), 2);
  const got = new Set<number>();
  const instance = await startSource(broker.brokers, topic, `g-${topic}`, got);
  try {
    await waitFor('not ready, naming the partition', () => /^cannot read topic/.test(instance.health!().detail ?? ''), 60_000);
    assert.match(instance.health!().detail!, new RegExp(`^cannot read topic '${topic}' \\(partition 0: Decompression \\(codec 0x4\\) of message at 10 of \\d+ bytes failed: Local: Not implemented\\)`));
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i), 'the records before it, and none after');
  } finally {
    await instance.close?.();
  }
});

/**
 * A topic whose partition 0 holds records 0-69, 10-59 of them one uncompressed batch (on disk in `file`),
 * for the tests that damage that batch by hand.
 */
/**
 * Runs a pipeline reading the topic to its end (group g-TOPIC) into a collecting sink and dead-letter
 * sink; it must drain. `runAgain` runs it once more in the same group (what a next run reads). t.signal:
 * a run still going when the test times out is stopped (its consumer disconnected), so the test process
 * can end.
 */
async function readToEnd(broker: { brokers: string }, topic: string, t: TestContext) {
  const yaml = `
name: kafka-unreadable-test
sources:
  - { type: kafka, brokers: "${broker.brokers}", topics: [${topic}], group: g-${topic}, stop_at_end: true, mapping: { attributes: [seq] } }
sinks:
  - type: collect
dead_letter: { type: collect, id: 1 }
`;
  const store: StreamRecord[][] = [[], []];
  const { stats } = await runYaml(yaml, { plugins: [collectSink(store)], signal: t.signal });
  assert.equal(stats.drained, true);
  const seqs = (store[0] as unknown as ClickEvent[]).map((event) => Number(event.attrs?.seq)).sort((a, b) => a - b);
  const runAgain = () => runYaml(yaml, { plugins: [collectSink([[], []])], signal: t.signal });
  return { stats, seqs, deadLetters: store[1]!, runAgain };
}

async function seventyRecordsWithMiddleBatch(broker: { brokers: string; dataDir: string }, prefix: string, partitions: number) {
  const topic = uniqueTopic(prefix);
  await createTopic(broker.brokers, topic, partitions);
  await produce(broker.brokers, topic, views(0, 10, 0));
  await produce(broker.brokers, topic, views(10, 50, 0), oneBatch('none'));
  await produce(broker.brokers, topic, views(60, 10, 0));
  const file = segmentOf(broker, topic, 0);
  const batch = recordBatches(file).find((each) => each.first === 10)!;
  assert.deepEqual([batch.last, batch.codec], [59, 0], 'the 50 records are one uncompressed batch');
  return { topic, file, batch };
}

// An LZ4 batch whose records decompress short: librdkafka 2.12 takes a record cut off at the end of the
// decompressed records for the end of a fetch answer (normal when a fetch's size limit cuts a batch),
// delivers the records before it and then fetches from there again and again, reporting nothing; a damaged
// LZ4 batch can decompress so (its frames carry no checksum). Made by hand here, so the damage is always
// the same: an uncompressed batch rewritten in place as an LZ4 frame with one stored (uncompressed) block.
test('an LZ4 batch whose records decompress short stalls its partition with no error from librdkafka: the source is not ready, naming the partition and offset', { timeout: 120_000 }, async (t) => {
  const broker = await kafkaBrokerOnDisk(t);
  if (!broker) return;
  const { topic, file, batch } = await seventyRecordsWithMiddleBatch(broker, 'lz4-short', 2);
  asShortLz4(file, batch);
  const got = new Set<number>();
  const instance = await startSource(broker.brokers, topic, `g-${topic}`, got);
  try {
    await waitFor('not ready, naming the partition', () => /^cannot read topic/.test(instance.health!().detail ?? ''), 60_000);
    const stalledAt = Math.max(...got) + 1;
    assert.ok(stalledAt > 10 && stalledAt < 60, `the batch's records before the cut are read: up to ${stalledAt - 1}`);
    assert.match(instance.health!().detail!, new RegExp(`^cannot read topic '${topic}' \\(partition 0: librdkafka delivers no record from offset ${stalledAt} on`));
    assert.ok(!got.has(60), 'nothing after the batch');
    // The source reads on elsewhere.
    await produce(broker.brokers, topic, views(1_000, 10, 1));
    await waitFor('the other partition read', () => got.has(1_009), 30_000);
    assert.match(instance.health!().detail ?? '', /^cannot read topic/, 'still not ready');
  } finally {
    await instance.close?.();
  }
});

// The same at the partition's start, a batch of one record: librdkafka delivers nothing, so it has no
// position for the partition; where reading starts (here the partition's start: no committed offset,
// start_from earliest) is what the records do not come from.
test('an LZ4 batch at the start of a partition that decompresses short, so that no record is read: the source is not ready, naming the partition and offset', { timeout: 120_000 }, async (t) => {
  const broker = await kafkaBrokerOnDisk(t);
  if (!broker) return;
  const topic = uniqueTopic('lz4-start');
  await createTopic(broker.brokers, topic, 2);
  await produce(broker.brokers, topic, views(0, 1, 0), oneBatch('none'));
  await produce(broker.brokers, topic, views(1, 10, 0));
  const file = segmentOf(broker, topic, 0);
  const batch = recordBatches(file)[0]!;
  assert.deepEqual([batch.first, batch.last, batch.codec], [0, 0, 0], 'the first record is a batch of its own');
  asShortLz4(file, batch);
  const got = new Set<number>();
  const instance = await startSource(broker.brokers, topic, `g-${topic}`, got);
  try {
    await produce(broker.brokers, topic, views(1_000, 10, 1));
    await waitFor('not ready, naming the partition', () => /^cannot read topic/.test(instance.health!().detail ?? ''), 60_000);
    assert.match(instance.health!().detail!, new RegExp(`^cannot read topic '${topic}' \\(partition 0: librdkafka delivers no record from offset 0 on, for [^,]+, though the brokers hold records up to 10 `));
    assert.equal(got.size, 10, 'the other partition read, nothing of this one');
    assert.ok(got.has(1_009));
  } finally {
    await instance.close?.();
  }
});

// A damaged batch can decode a record's offset wrong (its offset delta, a varint inside the records):
// librdkafka 2.12 delivers the record at that offset, past the partition's end here, then reads on from
// the batch's end. Damaged by hand in an uncompressed batch, so the damage is exact (an LZ4 batch's
// records, once decompressed, decode alike, and its frames carry no checksum to catch it).
test('a damaged batch that decodes a record at an offset past the partition\'s end: that record goes to the dead-letter sink with its bytes, the position does not jump, and a restart reads nothing again', { timeout: 120_000 }, async (t) => {
  const broker = await kafkaBrokerOnDisk(t);
  if (!broker) return;
  const { topic, file, batch } = await seventyRecordsWithMiddleBatch(broker, 'past-end', 1);
  overwrite(file, batch, 61, (records) => {
    // Each record: length, attributes (1 byte), timestamp delta, offset delta (zigzag varints).
    const varint = (at: number): { value: number; size: number } => {
      let value = 0;
      let size = 0;
      for (let byte = 0x80; byte & 0x80; size++) value |= ((byte = records[at + size]!) & 0x7f) << (7 * size);
      return { value: (value >>> 1) ^ -(value & 1), size };
    };
    let last = 0;
    for (let at = 0; at < records.length; ) {
      last = at;
      const length = varint(at);
      at += length.size + length.value;
    }
    const deltaAt = last + varint(last).size + 1 + varint(last + varint(last).size + 1).size;
    assert.equal(varint(deltaAt).value, 49, 'the last record\'s offset delta');
    records[deltaAt] = 63 * 2; // offset 10 + 63 = 73; the partition ends at 70
  }, batch.length - 49);
  const { seqs, deadLetters, runAgain } = await readToEnd(broker, topic, t);
  assert.deepEqual(seqs, Array.from({ length: 70 }, (_, i) => i).filter((seq) => seq !== 59), 'every other record once');
  const dead = deadLetters as unknown as { reason: string; raw: string; offset: number }[];
  assert.equal(dead.length, 1);
  assert.equal(dead[0]!.offset, 73);
  assert.match(dead[0]!.reason, /^kafka record delivered at offset 73, at or past the partition's end offset 70: a damaged record batch decoded it so/);
  assert.equal(JSON.parse(dead[0]!.raw).seq, 59, 'its bytes, as they came');
  // The offsets committed are the partition's end (70), not past it: the group's next run reads nothing.
  const again = await runAgain();
  assert.equal(again.stats.eventsIn, 0);
  assert.equal(again.stats.deadLettered, 0);
});

test('exactly-once without scale_out: while every partition is blocked (no transaction can carry a checkpoint\'s mark), their idleness moves the watermark on no further, so a restart closes no session a second time', { timeout: 240_000 }, async (t) => {
  const broker = await kafkaBrokerOnDisk(t);
  if (!broker) return;
  const topic = uniqueTopic('all-blocked');
  const output = uniqueTopic('all-blocked-out');
  await createTopic(broker.brokers, topic, 2);
  await createTopic(broker.brokers, output, 1);
  const hour = 3_600_000;
  const view = (user: number, time: number, partition: number) => ({ key: `u${user}`, value: clickJson(user, time), partition });
  // u0 opens a session on partition 0 at the base time, u1 on partition 1 two hours on; then each
  // partition holds a batch of a user four hours on, in a codec this build lacks: both are blocked.
  await produce(broker.brokers, topic, [view(0, base, 0), view(1, base + 2 * hour, 1)]);
  await produce(broker.brokers, topic, [view(10, base + 4 * hour, 0), view(10, base + 4 * hour + 1_000, 0), view(11, base + 4 * hour, 1), view(11, base + 4 * hour + 1_000, 1)], oneBatch('gzip'));
  const setCodec = (codec: number) => {
    for (const partition of [0, 1]) {
      const file = segmentOf(broker, topic, partition);
      const batch = recordBatches(file).find((each) => each.first === 1)!;
      overwrite(file, batch, 21, (bytes) => bytes.writeInt16BE((bytes.readInt16BE(0) & ~7) | codec), 2);
    }
  };
  setCodec(4);
  const dir = tempFolder(t, 'all-blocked');
  // idle_timeout 1h: no partition goes idle until the test moves the run's clock on.
  const yaml = `
name: all-blocked
sources:
  - type: kafka
    brokers: "${broker.brokers}"
    topics: [${topic}]
    group: g-${topic}
    guarantee: exactly-once
    start_from: earliest
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1h }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: kafka, brokers: "${broker.brokers}", topic: ${output}, kinds: [session], guarantee: exactly-once, transactional_id: tx-${output} }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 700ms }
`;
  const sessions = async (toEnd = false): Promise<string[]> => values<{ userId: string }>(await readTopic(broker.brokers, output, { committed: true, timeoutMs: toEnd ? 15_000 : 3_000, toEnd })).map((s) => s.userId);
  const start = (lines: string[], clock?: { now(): number }) => {
    const controller = new AbortController();
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const running = runYaml(yaml, { signal: controller.signal, logger, ...(clock ? { clock } : {}) });
    const run = { failed: undefined as unknown, lines, stop: async (): Promise<unknown> => (controller.abort(), running.then(() => undefined, (error: unknown) => error)) };
    running.catch((error: unknown) => (run.failed = error));
    return run;
  };
  const count = (lines: readonly string[], text: string): number => lines.join('').split(text).length - 1;
  // Run 1: u0 and u1 read, their offsets committed; both partitions blocked. An hour on, every partition
  // idle: before, the watermark followed the most advanced one and closed u0's session, committed in a
  // transaction with no offset (both blocked and unmoved), so no mark: the marks still named a checkpoint
  // with u0 open, which the next run restored.
  const skew = { ms: 0 };
  const lines: string[] = [];
  let run = start(lines, { now: () => Date.now() + skew.ms });
  let stopped: unknown;
  try {
    await waitFor('both partitions named unreadable', () => lines.some((line) => line.includes(`cannot read topic '${topic}' (partitions 0, 1:`)), 60_000, 100);
    await waitFor('u0 and u1 committed', async () => (await groupCommitted(broker.brokers, `g-${topic}`, topic, 2)).join() === '1,1', 60_000, 500);
    skew.ms = hour;
    // Eight checkpoints on (each commits a transaction), 5-6 s: the runtime looks at the watermark every
    // second, though not during a checkpoint; at 700 ms apart, they do not keep falling together.
    const since = count(lines, 'checkpoint written');
    await waitFor('eight checkpoints after the clock moved on', () => count(lines, 'checkpoint written') >= since + 8, 30_000, 100);
    assert.equal(run.failed, undefined);
  } finally {
    stopped = await run.stop();
  }
  assert.equal(stopped, undefined, 'run 1 stops cleanly');
  // Run 2: the batches readable again (gzip). u10 and u11 four hours on close u0 and u1 (before: u0 a second time).
  setCodec(1);
  run = start([]);
  try {
    // A failed run ends the wait at once, with why and its last log lines.
    await waitFor('u0 and u1 committed', unlessFailed(() => [run], async () => {
      const written = await sessions();
      return written.includes('u0') && written.includes('u1');
    }), 60_000, 500);
  } finally {
    stopped = await run.stop();
  }
  assert.equal(stopped, undefined, 'run 2 stops cleanly');
  const counts: Record<string, number> = {};
  for (const user of await sessions(true)) counts[user] = (counts[user] ?? 0) + 1;
  assert.deepEqual(counts, { u0: 1, u1: 1 }, 'one session summary per user');
});

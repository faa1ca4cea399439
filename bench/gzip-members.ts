/**
 * gzip output of the `file` sink: the size a file gets when it is flushed (checkpoints, commits) every
 * so many records, against one gzip member for the whole file (gzip at its default level), for the
 * records of a JSON-lines file (a pipeline's own output, say). Sizes only: no timing. A flush here is a
 * sync flush of the member, as gzip_flush_interval's is: a stream of R records a second pays that of a
 * flush every R x interval records.
 *
 *   node dist/bench/gzip-members.js RECORDS.jsonl [records-per-flush...]
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { StreamRecord } from 'tributary';
import { testContext } from 'tributary/testing';
import fileSink from '../plugins/sinks/file.js';

const input = process.argv[2];
if (input === undefined) throw new Error('usage: gzip-members RECORDS.jsonl [records-per-flush...]');
const perFlush = process.argv.slice(3).map(Number);
const lines = readFileSync(input, 'utf8').split('\n').filter(Boolean);
const records = lines.map((line) => JSON.parse(line) as StreamRecord);
const text = lines.map((line) => `${line}\n`).join('');
const plain = Buffer.byteLength(text);
const oneMember = gzipSync(text).length;
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-gzip-'));
console.log(`${records.length} records, ${plain} bytes (${(plain / records.length).toFixed(0)} per record); one gzip member: ${oneMember} bytes (${((100 * oneMember) / plain).toFixed(2)}% of plain)`);
console.log('records/flush  bytes/flush  file bytes  vs one member');
for (const every of perFlush.length > 0 ? perFlush : [10, 100, 1_000, 3_000, 10_000, 30_000]) {
  const path = join(dir, `every-${every}.jsonl.gz`);
  // gzip_flush_interval 0: the flushes here are the only sync flushes (a timed one is the same, every rate x interval records).
  const sink = await fileSink.create({ path, append: false, lazy: false, gzip_flush_interval: 0 }, testContext({ baseDir: dir }));
  await sink.open?.();
  for (let i = 0; i < records.length; i++) {
    sink.write(records[i]!);
    if ((i + 1) % every === 0) await sink.flush?.();
  }
  await sink.close();
  const size = statSync(path).size;
  console.log(`${String(every).padStart(13)}  ${String(Math.round((plain / records.length) * every)).padStart(11)}  ${String(size).padStart(10)}  ${`+${((100 * (size - oneMember)) / oneMember).toFixed(1)}%`.padStart(13)}`);
}
rmSync(dir, { recursive: true });

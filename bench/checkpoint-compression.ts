/**
 * `checkpoint.compression`: none against gzip on one checkpoint's body (e.g. one of the soak's):
 * the bytes written, the write's and the read-back's wall time, CPU (the process, libuv's pool
 * included, and its main thread alone) and the longest the event loop went without turning.
 *
 *   node --expose-gc dist/bench/checkpoint-compression.js CHECKPOINT_FILE [rounds=5] [--write]
 *
 * The two settings alternate, a full GC before each step; the body goes to CheckpointStore.write in
 * 1 MiB pieces, as the runtime's serialiser hands it over. Uses only the public API.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointStore, readCheckpoint, type CheckpointCompression } from 'tributary';
import { commandLine, machine, median, positionalArgs, publishSection, watchLoop } from './machine.js';

const args = positionalArgs();
const file = args[0];
if (!file) throw new Error('usage: checkpoint-compression CHECKPOINT_FILE [rounds] [--write]');
const rounds = Number(args[1] ?? 5);
const loadAtStart = loadavg()[0]!;
const gc = (): void => {
  if (!global.gc) throw new Error('run with node --expose-gc');
  global.gc();
};

const text = JSON.stringify(await readCheckpoint(file));
const whole = Buffer.from(text);
const PIECE = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-compression-'));

interface Round {
  bytes: number;
  writeMs: number;
  writeCpuMs: number;
  writeMainCpuMs: number;
  writeLongestMs: number;
  readMs: number;
  readCpuMs: number;
  readMainCpuMs: number;
  readLongestMs: number;
}
const results: Record<CheckpointCompression, Round[]> = { none: [], gzip: [] };
for (let round = 0; round < rounds; round++) {
  for (const compression of ['none', 'gzip'] as const) {
    const store = new CheckpointStore(join(dir, `${compression}-${round}`), 1, compression);
    const pieces: Uint8Array[] = [];
    for (let at = 0; at < whole.length; at += PIECE) pieces.push(Buffer.from(whole.subarray(at, at + PIECE))); // copies: write() may recycle them
    gc();
    const write = await watchLoop(() => store.write(pieces));
    gc();
    const read = await watchLoop(() => readCheckpoint(write.value.file));
    if (JSON.stringify(read.value).length !== text.length) throw new Error(`${compression}: the body read back differs`);
    const r: Round = {
      bytes: write.value.bytes,
      writeMs: write.ms,
      writeCpuMs: write.cpuMs,
      writeMainCpuMs: write.mainThreadCpuMs,
      writeLongestMs: write.longestMs,
      readMs: read.ms,
      readCpuMs: read.cpuMs,
      readMainCpuMs: read.mainThreadCpuMs,
      readLongestMs: read.longestMs,
    };
    results[compression].push(r);
    console.log(`round ${round} ${compression}: ${JSON.stringify(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)])))}`);
  }
}
rmSync(dir, { recursive: true, force: true });

const cell = (compression: CheckpointCompression, key: keyof Round): string => {
  const values = results[compression].map((r) => r[key]);
  return `**${Math.round(median(values)).toLocaleString('en-US')}** (${values.map((v) => Math.round(v).toLocaleString('en-US')).join(', ')})`;
};
const rows: [string, keyof Round][] = [
  ['file bytes', 'bytes'],
  ['write: wall ms', 'writeMs'],
  ['write: process CPU ms (all threads)', 'writeCpuMs'],
  ['write: main thread CPU ms', 'writeMainCpuMs'],
  ['write: longest event-loop block, ms', 'writeLongestMs'],
  ['read back: wall ms', 'readMs'],
  ['read back: process CPU ms', 'readCpuMs'],
  ['read back: main thread CPU ms', 'readMainCpuMs'],
  ['read back: longest event-loop block, ms', 'readLongestMs'],
];
const markdown = `## Checkpoint compression

\`${commandLine()}\` — one checkpoint body of ${whole.length.toLocaleString('en-US')} bytes of JSON, written by \`CheckpointStore\` (temp file, fsync, rename) and read back by \`readCheckpoint\` (length and hash checked, inflated, parsed), with \`checkpoint.compression: none\` and \`gzip\` (level 1, on libuv's thread pool) alternating, ${rounds} rounds, a full GC before each step; median (each round). Main thread CPU from /proc's schedstat; the longest block as a 1 ms timer sees it (wall time: on a loaded host it includes waits for a core).

| measure | none | gzip |
|---|---|---|
${rows.map(([label, key]) => `| ${label} | ${cell('none', key)} | ${cell('gzip', key)} |`).join('\n')}

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end. Measured ${new Date().toISOString().slice(0, 10)}.
`;
publishSection('checkpoint-compression', markdown);

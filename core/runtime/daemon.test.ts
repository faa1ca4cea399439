import { after, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs, { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostname } from 'node:os';
import { pino } from 'pino';
import { basename, join } from 'node:path';
import { CheckpointStore, defineSource, needsPerson, readCheckpoint, type AnyPlugin, type PluginRegistry } from 'tributary';
import { builtinRegistry } from '../cli/registry.js';
import { durableTempName } from '../durable.js';
import { boundedSpawnSync, quietAfterOne, silentLogger, spawnTributary, until, tempFolder } from 'tributary/testing';
import { packageRoot } from '../paths.js';
import { runSummaries } from '../testing.js';
import { ShopperWorld } from '../../plugins/sources/shoppers.js';

const cli = join(packageRoot, 'dist', 'core', 'cli', 'main.js');
const dir = tempFolder({ after }, 'daemon');

/** A daemon's registry (DaemonOptions.registry): the built-in plugins and the test's own. */
function registryWith(...plugins: AnyPlugin[]): () => Promise<PluginRegistry> {
  return async () => {
    const registry = await builtinRegistry();
    for (const plugin of plugins) registry.register(plugin, 'test');
    return registry;
  };
}

/** A source that reads one event, then fails with `message` each time it is read (a consumer librdkafka declared dead). */
function failsAfterOne(name: string, message: string): AnyPlugin {
  return defineSource<Record<string, never>>({
    name,
    summary: 'test',
    config: { type: 'object' },
    create: () => ({
      async *read() {
        yield [{ kind: 'event', userId: 'u', time: 0, type: 'view' }];
        throw new Error(message);
      },
    }),
  });
}

test('checkpoint store: atomic files, the last N kept, a corrupt or torn newest one falls back to the previous', async () => {
  const store = new CheckpointStore(join(dir, 'store'), 2);
  for (let i = 1; i <= 4; i++) await store.write(JSON.stringify({ pipeline: 'p', createdAt: '', sources: {}, operators: { n: i }, counters: {} }));
  const files = readdirSync(join(dir, 'store')).sort();
  assert.deepEqual(files, ['checkpoint-0000000003.json', 'checkpoint-0000000004.json']);
  assert.deepEqual((await store.latest())!.operators, { n: 4 });
  // Corrupt the newest: one flipped byte in the body.
  const newest = join(dir, 'store', files[1]!);
  const bytes = readFileSync(newest);
  bytes[bytes.length - 3] ^= 1;
  writeFileSync(newest, bytes);
  const reported: string[] = [];
  const latest = await store.latest((file, reason) => reported.push(`${file}: ${reason}`));
  assert.deepEqual(latest!.operators, { n: 3 });
  assert.match(reported[0]!, /checkpoint-0000000004\.json: checksum mismatch/);
  // A torn write (half a file) is detected too.
  writeFileSync(newest, bytes.subarray(0, bytes.length / 2));
  await assert.rejects(readCheckpoint(newest), /truncated|no header line/);
});

/**
 * The disk of `folder` full while `full()` says so: writes of the files opened in it (a checkpoint's
 * temp file) fail as node's do on a full file system. Until mock.restoreAll() and syncBuiltinESMExports().
 */
function fullWhile(folder: string, full: () => boolean): void {
  const realOpen = fsPromises.open;
  mock.method(fsPromises, 'open', async (path: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    const handle = await realOpen(path, flags, mode);
    if (String(path).startsWith(folder) && full()) {
      handle.writeFile = () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
    }
    return handle;
  });
  syncBuiltinESMExports();
}

test('a checkpoint that cannot be written names its folder and what mends it (node says only "ENOSPC: no space left on device, write"), its code kept', async () => {
  const folder = join(dir, 'store-full');
  const store = new CheckpointStore(folder, 2);
  const body = JSON.stringify({ pipeline: 'p', createdAt: '', sources: {}, operators: {}, counters: {} });
  await store.write(body);
  // The disk fills.
  fullWhile(folder, () => true);
  try {
    await assert.rejects(store.write(body), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'ENOSPC');
      assert.match(error.message, new RegExp(`^checkpoint could not be written in ${folder}: ENOSPC: no space left on device, write: the file system holding it is full; free room there`));
      assert.match(error.message, /3 in all/, 'keep (2) and the one being written');
      return true;
    });
  } finally {
    mock.restoreAll();
    syncBuiltinESMExports();
  }
  assert.deepEqual(readdirSync(folder).filter((name) => name.startsWith('checkpoint-')), ['checkpoint-0000000001.json'], 'the previous one stays, no temp file left');
  // A folder remounted read-only (or its permissions taken) under the running daemon.
  const realOpen = fsPromises.open;
  mock.method(fsPromises, 'open', async (path: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    if (String(path).startsWith(folder)) throw Object.assign(new Error(`EROFS: read-only file system, open '${String(path)}'`), { code: 'EROFS' });
    return realOpen(path, flags, mode);
  });
  syncBuiltinESMExports();
  try {
    await assert.rejects(store.write(body), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'EROFS');
      assert.match(error.message, new RegExp(`^checkpoint could not be written in ${folder}: EROFS: read-only file system, open .*: mount the file system holding ${folder} read-write, or name another folder \\(checkpoint\\.dir, --checkpoint-dir\\)$`));
      return true;
    });
  } finally {
    mock.restoreAll();
    syncBuiltinESMExports();
  }
});

test('checkpoint store with gzip: files version 2, under a quarter of the bytes for repetitive state, read back the same; a flipped byte or a torn file falls back as uncompressed ones do; uncompressed ones in the folder still read', async () => {
  const folder = join(dir, 'store-gzip');
  const body = (n: number): string => JSON.stringify({ pipeline: 'p', createdAt: '', sources: { s: { line: n } }, operators: { n, ids: Array.from({ length: 20_000 }, (_, i) => `user-${i}`) }, counters: {} });
  await new CheckpointStore(folder, 3).write(body(1)); // written before compression was turned on
  const store = new CheckpointStore(folder, 3, 'gzip');
  const { file, bytes } = await store.write(body(2));
  const header = JSON.parse(readFileSync(file, 'utf8').slice(0, readFileSync(file).indexOf(10))) as { version: number; encoding: string };
  assert.deepEqual([header.version, header.encoding], [2, 'gzip']);
  assert.ok(bytes * 4 < Buffer.byteLength(body(2)), `${bytes} bytes for ${Buffer.byteLength(body(2))} of JSON`);
  assert.deepEqual((await store.latest())!.operators, JSON.parse(body(2)).operators);
  const whole = readFileSync(file);
  const flipped = Buffer.from(whole);
  flipped[flipped.length - 20] ^= 1;
  writeFileSync(file, flipped);
  const reported: string[] = [];
  assert.deepEqual((await store.latest((_file, reason) => reported.push(reason)))!.sources, { s: { line: 1 } }, 'falls back to the uncompressed one before');
  assert.deepEqual(reported, ['checksum mismatch']);
  writeFileSync(file, whole.subarray(0, whole.length - 100));
  await assert.rejects(readCheckpoint(file), /truncated/);
});

test('a checkpoint that cannot be read (an I/O error, not its contents) fails the restore with that error: no fallback to an older one, no corruption verdict', async () => {
  const folder = mkdtempSync(join(dir, 'unreadable-'));
  const store = new CheckpointStore(folder, 3);
  const body = (n: number): string => JSON.stringify({ pipeline: 'p', createdAt: '', sources: { s: { line: n } }, operators: { n }, counters: {} });
  await store.write(body(1));
  await store.write(body(2));
  // The newest one unreadable as EMFILE or EIO would make it: here a folder in its place (EISDIR), a
  // fault this test can cause for real. Falling back to 2 would replay the outputs since 3.
  mkdirSync(join(folder, 'checkpoint-0000000003.json'));
  const reported: string[] = [];
  const unreadable = (error: Error): boolean => /checkpoint-0000000003\.json could not be read: EISDIR/.test(error.message) && (error.cause as NodeJS.ErrnoException).code === 'EISDIR';
  await assert.rejects(store.latest((file) => reported.push(file)), unreadable);
  assert.deepEqual(reported, [], 'not reported as corrupt');
  // Every one unreadable: the read error, not TRIB_ERR_CHECKPOINT's advice to move them out and start from nothing.
  const all = mkdtempSync(join(dir, 'unreadable-all-'));
  mkdirSync(join(all, 'checkpoint-0000000001.json'));
  // Not one for a person (exit 2): the daemon restarts the pipeline, which reads the folder again.
  await assert.rejects(new CheckpointStore(all).latest(), (error: Error) => (error.cause as NodeJS.ErrnoException).code === 'EISDIR' && !needsPerson(error));
  // Contents that pass the hash but neither inflate nor parse are corrupt still: reported, the one before used.
  for (const [encoding, bytes] of [['gzip', Buffer.from('not gzip')], [undefined, Buffer.from('{not json')]] as const) {
    const header = { format: 'tributary-checkpoint', version: encoding ? 2 : 1, sequence: 3, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), ...(encoding ? { encoding } : {}) };
    const bad = join(mkdtempSync(join(dir, 'bad-body-')), 'checkpoint-0000000003.json');
    writeFileSync(bad, Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), bytes]));
    await assert.rejects(readCheckpoint(bad), { name: 'CorruptCheckpointError', message: encoding ? /^body is not gzip/ : /^body is not JSON/ });
  }
});

test('a checkpoint a killed process left half-written (its temp file) is never restored from, and the next start\'s first write removes it', async () => {
  const folder = join(dir, 'killed-mid-write');
  const body = (n: number): string => JSON.stringify({ pipeline: 'p', createdAt: '', sources: { s: { line: n } }, operators: { n }, counters: {} });
  await new CheckpointStore(folder).write(body(1));
  // What kill -9 in writeFileDurably leaves (seen in a soak: the header line and no body yet), under
  // the dead process's pid; the next sequence's final name was never created.
  const whole = readFileSync(join(folder, 'checkpoint-0000000001.json'));
  const temp = join(folder, 'checkpoint-0000000002.json.tmp-999999');
  writeFileSync(temp, whole.subarray(0, whole.indexOf(10) + 20));
  // Named as this version names them (`.tmp-<pid>-<hex>`, one per write).
  writeFileSync(join(folder, 'checkpoint-0000000002.json.tmp-999999-0a1b2c3d'), whole.subarray(0, whole.indexOf(10) + 20));
  // A temp file of a process that runs (the test runner, this process's parent) is its checkpoint in the making: kept.
  const live = join(folder, `checkpoint-0000000002.json.tmp-${process.ppid}`);
  writeFileSync(live, 'being written');
  const restarted = new CheckpointStore(folder);
  restarted.claim('p', silentLogger); // as a pipeline's run does
  const latest = await restarted.latest((file) => assert.fail(`no complete checkpoint is corrupt: ${file}`));
  assert.deepEqual(latest!.sources, { s: { line: 1 } }, 'resumes from the last complete checkpoint');
  await restarted.write(body(2));
  assert.deepEqual(readdirSync(folder).sort(), ['checkpoint-0000000001.json', 'checkpoint-0000000002.json', 'checkpoint-0000000002.json.tmp-' + process.ppid, 'checkpoints.lock']);
  assert.deepEqual((await restarted.latest())!.operators, { n: 2 });
  restarted.release();
  assert.ok(!existsSync(join(folder, 'checkpoints.lock')));
});

test('a folder not claimed (a scale_out partition folder, shared across hosts) keeps a dead pid\'s temp file until it is 10 minutes old: that pid may be another host\'s', async () => {
  const folder = join(dir, 'partition-folder');
  mkdirSync(folder, { recursive: true });
  const fresh = join(folder, 'checkpoint-0000000001.json.tmp-999998');
  const old = join(folder, 'checkpoint-0000000001.json.tmp-999999');
  writeFileSync(fresh, 'another member writes it');
  writeFileSync(old, 'left 11 minutes ago');
  const elevenMinutesAgo = new Date(Date.now() - 11 * 60_000);
  utimesSync(old, elevenMinutesAgo, elevenMinutesAgo);
  await new CheckpointStore(folder).write(JSON.stringify({ pipeline: 'p', createdAt: '', sources: {}, operators: {}, counters: {} }));
  assert.deepEqual(readdirSync(folder).sort(), ['checkpoint-0000000001.json', 'checkpoint-0000000001.json.tmp-999998']);
});

test("a temp file an earlier process of this pid left (a container's pid 1, restarted after a kill mid-write) is removed by the next write, not kept as this process's own: temp names are one per write, so no later write reuses it", async () => {
  const body = JSON.stringify({ pipeline: 'p', createdAt: '', sources: {}, operators: {}, counters: {} });
  // The claimed folder: the predecessor's goes at once; one this process is writing now (its own name) stays.
  const claimed = join(dir, 'same-pid-claimed');
  mkdirSync(claimed, { recursive: true });
  const predecessor = `checkpoint-0000000001.json.tmp-${process.pid}-0a1b2c3d4e5f6a7b`;
  writeFileSync(join(claimed, predecessor), 'half a checkpoint');
  const writing = durableTempName(join(claimed, 'checkpoint-0000000001.json'));
  writeFileSync(writing, 'being written by this process');
  const store = new CheckpointStore(claimed);
  store.claim('p', silentLogger);
  await store.write(body);
  store.release();
  assert.deepEqual(readdirSync(claimed).sort(), ['checkpoint-0000000001.json', basename(writing)]);
  // A partition folder, shared across hosts: a pid says nothing there (every container's first process is pid 1, which
  // runs here too), so once 10 minutes old a temp file goes whatever its pid; a fresh one stays.
  const shared = join(dir, 'same-pid-shared');
  mkdirSync(shared, { recursive: true });
  const elevenMinutesAgo = new Date(Date.now() - 11 * 60_000);
  for (const pid of [process.pid, process.ppid]) {
    writeFileSync(join(shared, `checkpoint-0000000001.json.tmp-${pid}-0a1b2c3d4e5f6a7b`), 'left 11 minutes ago');
    utimesSync(join(shared, `checkpoint-0000000001.json.tmp-${pid}-0a1b2c3d4e5f6a7b`), elevenMinutesAgo, elevenMinutesAgo);
  }
  writeFileSync(join(shared, `checkpoint-0000000001.json.tmp-${process.ppid}-1a1b2c3d4e5f6a7b`), 'another member writes it');
  await new CheckpointStore(shared).write(body);
  assert.deepEqual(readdirSync(shared).sort(), ['checkpoint-0000000001.json', `checkpoint-0000000001.json.tmp-${process.ppid}-1a1b2c3d4e5f6a7b`]);
});

test('a checkpoint store keeps the newest `keep` checkpoints and those it is told to retain; latest() walks back from a sequence with an accept that may wait', async () => {
  const folder = mkdtempSync(join(dir, 'retain-'));
  const store = new CheckpointStore(folder, 2);
  const body = (n: number) => JSON.stringify({ pipeline: 'p', createdAt: '', sources: { s: { n } }, operators: {}, counters: {} });
  await store.write(body(1));
  // 1 is the one the upstream acknowledged; 2 to 5 never were, and 1 outlives them.
  for (let n = 2; n <= 5; n++) await store.write(body(n), new Set([1]));
  assert.deepEqual(readdirSync(folder).sort(), ['checkpoint-0000000001.json', 'checkpoint-0000000004.json', 'checkpoint-0000000005.json']);
  const seen: number[] = [];
  const found = await store.latest(undefined, async (checkpoint) => (seen.push(checkpoint.sequence), (checkpoint.sources.s as { n: number }).n === 1), 5);
  assert.equal(found?.sequence, 1);
  assert.deepEqual(seen, [4, 1], 'from below the sequence given, newest first');
  // Told nothing to retain, it prunes by age again.
  await store.write(body(6));
  assert.deepEqual(readdirSync(folder).sort(), ['checkpoint-0000000005.json', 'checkpoint-0000000006.json']);
});

test("a checkpoint folder deleted while the run holds it is made again with its lock (warned), so a second daemon is still refused; one another process took meanwhile is not written in", async () => {
  const folder = join(mkdtempSync(join(dir, 'deleted-')), 'checkpoints');
  const body = (n: number) => JSON.stringify({ pipeline: 'p', createdAt: '', sources: { s: { n } }, operators: {}, counters: {} });
  const warned: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warned.push((JSON.parse(line) as { msg: string }).msg) });
  const store = new CheckpointStore(folder, 2);
  store.claim('p', logger);
  const lock = join(folder, 'checkpoints.lock');
  const ours = readFileSync(lock, 'utf8');
  await store.write(body(1));
  rmSync(folder, { recursive: true });
  await store.write(body(2));
  // Before: the folder was made again without its lock, and not a word said.
  assert.deepEqual(readdirSync(folder).sort(), ['checkpoint-0000000001.json', 'checkpoints.lock']);
  assert.equal(readFileSync(lock, 'utf8'), ours, 'the same holder');
  assert.match(warned.join('\n'), /the lock file .*checkpoints\.lock was removed while this run held the folder \(the folder deleted\?\): taken again/);
  assert.throws(() => new CheckpointStore(folder).claim('other', silentLogger), /is used by this process already/);
  // Removed again, and taken by another process before the next checkpoint: that one is its now.
  rmSync(lock);
  writeFileSync(lock, JSON.stringify({ pid: process.ppid, host: hostname(), pipeline: 'other', since: '2026-01-01T00:00:00.000Z' }));
  await assert.rejects(store.write(body(3)), /the checkpoint folder .* is no longer this process's: .* pid \d+ on .* \(pipeline 'other', since 2026-01-01T00:00:00\.000Z\) took it since/);
  assert.deepEqual(readdirSync(folder).sort(), ['checkpoint-0000000001.json', 'checkpoints.lock'], 'nothing written or pruned');
  store.release();
  assert.ok(existsSync(lock), "the other process's lock is left to it");
});

test('a checkpoint folder has one writer: a second daemon given it fails at its start (exit 2) naming the folder and the holder, and the first one\'s checkpoints are left alone; so does a second pipeline of one process', async (t) => {
  const folder = mkdtempSync(join(dir, 'one-writer-'));
  const checkpoints = join(folder, 'checkpoints');
  const file = join(folder, 'p.yaml');
  // No file output: nothing but the checkpoint folder is shared (as for a Kafka-only pipeline).
  writeFileSync(file, `name: shared\nsources: [{type: synthetic, events: 0, rate: 2000}]\nsinks: [{type: stdout, kinds: []}]\ncheckpoint: {dir: ${checkpoints}, interval: 100ms}\n`);
  // Started in folders of their own, so their default dead-letter files (locked too) differ, as with a kafka dead-letter sink.
  for (const own of ['a', 'b']) mkdirSync(join(folder, own));
  const firstRun = spawnTributary(t, ['run', file, '--log-level', 'warn', '--no-progress'], { cwd: join(folder, 'a') });
  const first = firstRun.child;
  await firstRun.started(() => existsSync(checkpoints) && readdirSync(checkpoints).some((name) => /^checkpoint-\d+\.json$/.test(name)), 'a first checkpoint');
  const second = boundedSpawnSync(process.execPath, [cli, 'run', file, '--log-level', 'warn', '--no-progress'], { cwd: join(folder, 'b'), encoding: 'utf8' });
  assert.equal(second.status, 2, second.stderr);
  assert.match(second.stderr, new RegExp(`TRIB_ERR_CHECKPOINT: checkpoint folder ${checkpoints.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is used by pid ${first.pid} on ${hostname()} \\(pipeline 'shared', since `));
  assert.match(second.stderr, /give each its own checkpoint\.dir/);
  const held = JSON.parse(readFileSync(join(checkpoints, 'checkpoints.lock'), 'utf8')) as { pid: number };
  assert.equal(held.pid, first.pid, 'the first daemon still holds it');
  assert.equal(await firstRun.stop(), 0, firstRun.stderr);
  assert.ok(!existsSync(join(checkpoints, 'checkpoints.lock')), 'released at the end of the run');

  // Within one process: two pipelines given one folder.
  const a = new CheckpointStore(checkpoints);
  a.claim('a', silentLogger);
  assert.throws(() => new CheckpointStore(checkpoints).claim('b', silentLogger), /checkpoint folder .* is used by this process already \(pipeline 'a'\)/);
  a.release();
});

test("a checkpoint folder the process may not make or write in (no permission, a read-only mount) stops the run at its start for a person to mend (exit 2, TRIB_ERR_CHECKPOINT, no restart; was: restarted 10 times, then exit 1); any other error claiming it stays one a restart may mend", async () => {
  const folder = mkdtempSync(join(dir, 'unwritable-'));
  const file = join(folder, 'p.yaml');
  writeFileSync(file, 'name: unwritable\nsources: [{type: synthetic, events: 10}]\nsinks: [{type: stdout, kinds: []}]\nsettings: {restart: {backoff: 1ms}}\n');
  // sysfs refuses this process (root too) a folder in it (EPERM) and a file in it (EACCES).
  if (existsSync('/sys/kernel')) {
    for (const checkpoints of ['/sys/kernel/tributary-checkpoints', '/sys/kernel']) {
      const run = boundedSpawnSync(process.execPath, [cli, 'run', file, '--checkpoint-dir', checkpoints, '--log-level', 'warn', '--no-progress'], { cwd: folder, encoding: 'utf8' });
      assert.equal(run.status, 2, run.stderr);
      const logged = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; code?: string; msg: string });
      assert.deepEqual(logged.map((entry) => [entry.level, entry.code]), [[50, 'TRIB_ERR_CHECKPOINT']], run.stderr);
      assert.match(logged[0]!.msg, new RegExp(`^pipeline unwritable: TRIB_ERR_CHECKPOINT: the checkpoint folder ${checkpoints} cannot be made or written by this process \\((EPERM|EACCES|EROFS)\\b.*\\): (make /sys/kernel\\S* writable by user \\S+ \\(uid \\d+\\)|mount the file system holding /sys/kernel\\S* read-write), or name another`));
    }
  }
  // A name too long (ENAMETOOLONG), as a full disk (ENOSPC): no verdict on the folder, so a restart may mend it.
  const { Daemon } = await import('tributary');
  const long = join(folder, 'long.yaml');
  writeFileSync(long, `${readFileSync(file, 'utf8')}checkpoint: {dir: ${'x'.repeat(300)}}\n`);
  const daemon = new Daemon({ targets: [long], logger: silentLogger, registry: registryWith() });
  const { failures } = await daemon.run();
  assert.equal(failures.length, 1);
  assert.match(failures[0]!.error.message, /ENAMETOOLONG/);
  assert.equal(needsPerson(failures[0]!.error), false);
  assert.equal(daemon.runners[0]!.stats.restarts, 10, 'restarted as any passing failure is');
});

/**
 * Makes `folder` one this process may not write, until the returned function is called: its mode bits
 * (0555) for a user other than root; for root, which mode bits do not stop, a read-only bind mount of it
 * on itself (EROFS). Undefined where neither is possible (root without the right to mount).
 */
function readOnlyFolder(folder: string): (() => void) | undefined {
  if (process.getuid?.() !== 0) {
    fs.chmodSync(folder, 0o555);
    return () => fs.chmodSync(folder, 0o755);
  }
  const mounted = boundedSpawnSync('mount', ['--bind', folder, folder], { encoding: 'utf8' });
  if (mounted.status !== 0) return undefined;
  if (boundedSpawnSync('mount', ['-o', 'remount,bind,ro', folder], { encoding: 'utf8' }).status !== 0) {
    boundedSpawnSync('umount', [folder], { encoding: 'utf8' });
    return undefined;
  }
  return () => void boundedSpawnSync('umount', [folder], { encoding: 'utf8' });
}

const cannotMakeReadOnly = 'this test runs as root, whom mode bits do not stop, and may not mount a folder read-only here: no folder it cannot write';

test("an output file or dead-letter file this process may not write (no permission, a read-only mount), at the start or at a reopen (SIGHUP after a rotation), stops the run for a person at once (TRIB_ERR_OUTPUT_UNWRITABLE, exit 2, no restart), naming the path, the errno and the fix (was: 10 restarts, then exit 1)", async (t) => {
  const { Daemon } = await import('tributary');
  const { pino } = await import('pino');
  const home = mkdtempSync(join(dir, 'output-unwritable-'));
  const locked = join(home, 'locked');
  mkdirSync(locked);
  const restore = readOnlyFolder(locked);
  if (restore === undefined) return t.skip(cannotMakeReadOnly);
  const fix = (path: string): string => `(make ${path} writable by user \\S+ \\(uid \\d+\\)|mount the file system holding ${path} read-write)`;
  try {
    // At the start: a sink's file, a folder to be made for it, the dead-letter file.
    for (const [sinks, deadLetter, refused, fixed] of [
      [`[{type: file, path: ${join(locked, 'out.jsonl')}}]`, '', join(locked, 'out.jsonl'), locked],
      [`[{type: file, path: ${join(locked, 'sub', 'out.jsonl')}}]`, '', join(locked, 'sub', 'out.jsonl'), locked],
      ['[{type: stdout, kinds: []}]', `dead_letter: {type: file, path: ${join(locked, 'dead.jsonl')}}\n`, join(locked, 'dead.jsonl'), locked],
    ] as const) {
      const file = join(home, 'start.yaml');
      writeFileSync(file, `name: start\nsources: [{type: synthetic, events: 100}]\nsinks: ${sinks}\n${deadLetter}checkpoint: {dir: ${join(home, 'checkpoints-start')}}\nsettings: {restart: {backoff: 1ms}}\n`);
      const daemon = new Daemon({ targets: [file], logger: silentLogger, registry: registryWith() });
      const { failures } = await daemon.run();
      assert.equal(failures.length, 1);
      const error = failures[0]!.error as Error & { code?: string };
      assert.equal(error.code, 'TRIB_ERR_OUTPUT_UNWRITABLE', error.message);
      assert.ok(needsPerson(error), 'exit 2');
      assert.equal(daemon.runners[0]!.stats.restarts ?? 0, 0, 'no restart');
      assert.match(error.message, new RegExp(`${refused} cannot be opened to write \\((EACCES|EPERM|EROFS): .*\\): ${fix(fixed)}$`));
    }
  } finally {
    restore();
  }

  // At a reopen: the file renamed away by a rotation, its folder made read-only, then SIGHUP.
  const rotated = join(home, 'rotated');
  mkdirSync(rotated);
  const out = join(rotated, 'out.jsonl');
  const file = join(home, 'reopen.yaml');
  writeFileSync(file, `name: reopen\nsources: [{type: synthetic, events: 0, rate: 500}]\nsinks: [{type: file, path: ${out}, kinds: [event]}]\ncheckpoint: {dir: ${join(home, 'checkpoints-reopen')}, interval: 100ms}\nsettings: {restart: {backoff: 1ms}}\n`);
  const lines: string[] = [];
  const daemon = new Daemon({ targets: [file], logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), registry: registryWith() });
  const running = daemon.run();
  await until(() => existsSync(out) && fs.statSync(out).size > 0, 'records in the file');
  fs.renameSync(out, `${out}.1`);
  const restoreRotated = readOnlyFolder(rotated)!;
  try {
    await daemon.reopenOutputs();
    const { failures } = await running;
    assert.equal(failures.length, 1, lines.join(''));
    const error = failures[0]!.error as Error & { code?: string };
    assert.equal(error.code, 'TRIB_ERR_OUTPUT_UNWRITABLE', error.message);
    assert.match(error.message, new RegExp(`${out} cannot be opened to write \\((EACCES|EPERM|EROFS): .*\\): ${fix(rotated)}$`));
    assert.equal(daemon.runners[0]!.stats.restarts ?? 0, 0, `no restart: ${lines.join('')}`);
  } finally {
    restoreRotated();
  }
});

test('kill -9 during a file backtest, then restart (gzip checkpoints): same final results as an uninterrupted run, and every input event accounted for', async (t) => {
  const input = join(dir, 'events.jsonl');
  const world = new ShopperWorld({ seed: 3, users: 2000 });
  let text = '';
  const total = 300_000;
  for (let i = 0; i < total; i++) {
    const e = world.next();
    text += `${JSON.stringify({ user_id: e.userId, time: e.time, type: e.type, item_id: e.itemId, price: e.price })}\n`;
    if (i % 50_000 === 0) text += 'this line is not JSON\n';
  }
  writeFileSync(input, text);
  const badLines = 6;
  const pipeline = (name: string, out: string, checkpoints: string, compression = 'none'): string => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `name: ${name}
sources: [{type: file, path: ${input}, mapping: {time_format: epoch_ms}}]
stages:
  - {type: sessionizer, gap: 30m}
sinks: [{type: file, path: ${out}, kinds: [session]}]
dead_letter: {type: file, path: ${out}.dead}
checkpoint: {dir: ${checkpoints}, interval: 100ms, compression: ${compression}}
settings: {max_in_flight: 2000}
`,
    );
    return file;
  };
  const sessionsOf = (file: string): Map<string, number> => {
    const sessions = new Map<string, number>();
    for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
      const s = JSON.parse(line) as { sessionId: string; eventCount: number };
      sessions.set(s.sessionId, s.eventCount); // at-least-once: a replayed duplicate carries the same id
    }
    return sessions;
  };

  const reference = boundedSpawnSync(process.execPath, [cli, 'run', pipeline('reference', join(dir, 'reference.jsonl'), join(dir, 'ckpt-reference')), '--log-level', 'warn'], { encoding: 'utf8' });
  assert.equal(reference.status, 0, reference.stderr);

  const out = join(dir, 'crashed.jsonl');
  const checkpoints = join(dir, 'ckpt-crashed');
  // Compressed checkpoints: what the restart resumes from is gzip (the reference's are not).
  const file = pipeline('crashed', out, checkpoints, 'gzip');
  const first = spawnTributary(t, ['run', file, '--log-level', 'warn']);
  await first.started(() => existsSync(checkpoints) && readdirSync(checkpoints).some((name) => name.endsWith('.json')), 'a first checkpoint');
  assert.equal(await first.stop('SIGKILL'), 'SIGKILL', 'killed mid-stream, before the input was drained');
  const restarted = boundedSpawnSync(process.execPath, [cli, 'run', file, '--log-level', 'warn'], { encoding: 'utf8' });
  assert.equal(restarted.status, 0, restarted.stderr);
  assert.match(restarted.stderr, /resumed from checkpoint \d+/);
  const written = readdirSync(checkpoints).filter((name) => name.endsWith('.json'));
  assert.ok(written.length > 0 && written.every((name) => readFileSync(join(checkpoints, name)).includes('"encoding":"gzip"')));
  const { eventsIn, deadLettered: dead } = runSummaries(restarted.stderr)[0]!;
  assert.equal(eventsIn, total, 'events counted once across the crash');
  assert.equal(dead, badLines);
  assert.deepEqual(sessionsOf(out), sessionsOf(join(dir, 'reference.jsonl')));
});

test('SIGTERM drains, writes a final checkpoint and exits 0; the next start resumes from it', async (t) => {
  const checkpoints = join(dir, 'ckpt-sigterm');
  const out = join(dir, 'sigterm.jsonl');
  const file = join(dir, 'sigterm.yaml');
  writeFileSync(file, `name: sigterm\nsources: [{type: synthetic, events: 0, rate: 5000}]\nstages: [{type: sessionizer}]\nsinks: [{type: file, path: ${out}}]\ncheckpoint: {dir: ${checkpoints}, interval: 1h}\n`);
  const run = spawnTributary(t, ['run', file, '--log-level', 'warn']);
  await run.started(() => existsSync(out) && readFileSync(out, 'utf8').length > 10_000, 'output');
  assert.equal(await run.stop(), 0, run.stderr);
  const stderr = run.stderr;
  assert.match(stderr, /stopped/);
  const latest = await new CheckpointStore(checkpoints).latest();
  assert.ok(latest, 'a final checkpoint was written');
  const emitted = Number((latest.sources['source-synthetic-0'] as { emitted: number }).emitted);
  assert.equal(emitted, runSummaries(stderr)[0]!.eventsIn, 'the checkpoint covers exactly what was read');
  assert.ok(Object.keys(latest.operators).includes('stage-sessionizer-0'));
});

test('/healthz, /readyz and /metrics (Prometheus text with the run series); secrets are redacted in logs and in validate --print', async (t) => {
  const plugin = join(dir, 'secretive.mjs');
  writeFileSync(
    plugin,
    `import { defineSink } from ${JSON.stringify(join(packageRoot, 'dist', 'core', 'index.js'))};
export default defineSink({ name: 'secretive', summary: 'test', config: { type: 'object', properties: { password: { type: 'string', description: 'x' } } },
  create: () => ({ write() {}, close: async () => undefined }) });\n`,
  );
  const file = join(dir, 'ops.yaml');
  writeFileSync(file, `name: ops\nplugins: [${plugin}]\nsources: [{type: synthetic, events: 0, rate: 2000}]\nstages: [{type: sessionizer}]\nsinks:\n  - type: secretive\n    password: \${SINK_PASSWORD}\n`);
  const env = { ...process.env, SINK_PASSWORD: 'hunter2-very-secret' };
  const printed = boundedSpawnSync(process.execPath, [cli, 'validate', '--print', file], { encoding: 'utf8', env });
  assert.equal(printed.status, 0, printed.stderr);
  assert.match(printed.stdout, /password: "?\[redacted\]"?/);
  assert.ok(!printed.stdout.includes('hunter2'));

  const run = spawnTributary(t, ['run', file, '--http-port', '0', '--log-level', 'debug'], { env });
  try {
    await run.started(() => /"port":(\d+)/.test(run.stderr), 'the HTTP endpoint');
    const base = `http://127.0.0.1:${/"port":(\d+)/.exec(run.stderr)![1]}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    let body: { ready: boolean; pipelines: { pipeline: string }[] } | undefined;
    // Polled with until's pause, not back to back: a busy loop took the CPU from the daemon it waited for.
    await until(async () => {
      const ready = await fetch(`${base}/readyz`);
      body = (await ready.json()) as typeof body;
      return ready.status === 200;
    }, '/readyz to say ready', 20_000).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(body)}`);
    });
    assert.deepEqual(body!.pipelines.map((p) => p.pipeline), ['ops']);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const line of metrics.split('\n')) {
      if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?([0-9.eE+-]+|NaN|\+Inf|-Inf)$/, `Prometheus text line: ${line}`);
    }
    for (const series of [
      'tributary_records_in_total{pipeline="ops"}',
      'tributary_records_out_total{pipeline="ops"}',
      'tributary_records_dead_lettered_total{pipeline="ops"}',
      'tributary_records_late_total{pipeline="ops"}',
      'tributary_watermark_lag_seconds{pipeline="ops"}',
      'tributary_events_in_total{pipeline="ops",stage="source-synthetic-0"}',
      'tributary_heap_used_bytes',
      'tributary_array_buffers_bytes',
      'tributary_stage_latency_seconds_bucket{le="0.0001",pipeline="ops",stage="stage-sessionizer-0"}',
      'tributary_stage_latency_seconds_count{pipeline="ops",stage="sinks"}',
      'tributary_nodejs_heap_size_used_bytes',
      'tributary_process_cpu_user_seconds_total',
      '# TYPE tributary_records_in_total counter',
      '# TYPE tributary_watermark_lag_seconds gauge',
    ]) {
      assert.ok(metrics.includes(series), `metrics carry ${series}`);
    }
  } finally {
    assert.equal(await run.stop(), 0, run.stderr);
  }
  assert.ok(run.stderr.includes('[redacted]'), 'the loaded config was logged, redacted');
  assert.ok(!run.stderr.includes('hunter2'), 'the secret never reaches the log');
});

test('a folder of pipelines runs in one process, each with its own state and checkpoints', () => {
  const folder = join(dir, 'many');
  const checkpoints = join(dir, 'ckpt-many');
  mkdirSync(folder, { recursive: true });
  for (const name of ['alpha', 'beta']) {
    writeFileSync(join(folder, `${name}.yaml`), `name: ${name}\nsources: [{type: synthetic, events: 3000, seed: ${name.length}}]\nstages: [{type: sessionizer}]\nsinks: [{type: file, path: ${join(dir, `${name}.jsonl`)}}]\n`);
  }
  appendFileSync(join(folder, 'notes.txt'), 'not a pipeline\n');
  const result = boundedSpawnSync(process.execPath, [cli, 'run', folder, '--checkpoint-dir', checkpoints, '--log-level', 'warn'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /pipeline alpha: drained/);
  assert.match(result.stderr, /pipeline beta: drained/);
  assert.deepEqual(readdirSync(checkpoints).sort(), ['alpha', 'beta']);
});

test("two pipelines of one run with the same name: said at the second one's `name`, naming the first one's file and line (was FILE:0:0); one whose file gives none, at its start", async () => {
  const { Daemon } = await import('tributary');
  const folder = join(dir, 'same-names');
  mkdirSync(folder);
  const body = 'sources: [{type: synthetic, events: 1}]\nsinks: [{type: file, path: out.jsonl}]\n';
  writeFileSync(join(folder, 'a.yaml'), `name: same\n${body}`);
  writeFileSync(join(folder, 'b.yaml'), `# the same, again\nname:   same\n${body}`);
  const why = 'names label metrics and checkpoints, so the pipelines of one run must differ in name';
  const load = (...targets: string[]) => new Daemon({ targets, logger: silentLogger, registry: registryWith() }).load();
  await assert.rejects(load(folder), { name: 'ConfigError', message: `${join(folder, 'b.yaml')}:2:9: $.name: the pipeline of ${join(folder, 'a.yaml')}:1:7 is named 'same' too: ${why}` });
  // Named after its file (no `name`): at the file's start.
  const other = join(dir, 'same-names-other');
  mkdirSync(other);
  writeFileSync(join(other, 'same.yaml'), `# named by its file\n${body}`);
  await assert.rejects(load(join(folder, 'a.yaml'), other), { message: `${join(other, 'same.yaml')}:2:1: $.name: the pipeline of ${join(folder, 'a.yaml')}:1:7 is named 'same' too: ${why}` });
});

test("two pipelines a `--set name=...` gives the same name: said by the --set for both (was: at each file's `name`, which the --set replaced)", async () => {
  const { Daemon } = await import('tributary');
  const folder = join(dir, 'set-names');
  mkdirSync(folder);
  const body = 'sources: [{type: synthetic, events: 1}]\nsinks: [{type: file, path: out.jsonl}]\n';
  writeFileSync(join(folder, 'a.yaml'), `name: alpha\n${body}`);
  writeFileSync(join(folder, 'b.yaml'), `name: beta\n${body}`);
  const why = 'names label metrics and checkpoints, so the pipelines of one run must differ in name';
  const set = "(from --set 'name=same', not from the file)";
  const load = new Daemon({ targets: [folder], logger: silentLogger, registry: registryWith(), sets: ['name=same'] }).load();
  await assert.rejects(load, { name: 'ConfigError', message: `${join(folder, 'b.yaml')}: $.name: the pipeline of ${join(folder, 'a.yaml')} ${set} is named 'same' too: ${why} ${set}` });
});

test('a pipeline of a folder that fails stops the others (drained to a final checkpoint), so the process exits 1 and a supervisor restarts them all', async () => {
  const { Daemon } = await import('tributary');
  // A source that reads a batch, then fails, as a Kafka source whose consumer librdkafka declared dead.
  const failing = failsAfterOne('fails-after-one', 'the consumer is dead');
  const home = join(dir, 'one-fails');
  mkdirSync(home);
  writeFileSync(join(home, 'fails.yaml'), 'name: fails\nsources: [{type: fails-after-one}]\nsinks: [{type: file, path: fails.jsonl}]\n');
  // Endless, until stopped.
  writeFileSync(join(home, 'lives.yaml'), 'name: lives\nsources: [{type: synthetic, events: 0, rate: 100}]\nsinks: [{type: file, path: lives.jsonl}]\ncheckpoint: {dir: checkpoints}\n');
  const daemon = new Daemon({
    targets: [home],
    logger: silentLogger,
    registry: registryWith(failing),
  });
  // Bounded: before, the other pipeline ran on, the failed one dead beside it, and the process never exited.
  let gaveUp = false;
  const deadline = setTimeout(() => {
    gaveUp = true;
    daemon.stop('the test gave up waiting');
  }, 20_000);
  const result = await daemon.run();
  clearTimeout(deadline);
  assert.equal(gaveUp, false, 'the other pipeline stopped by itself');
  assert.deepEqual(result.failures.map(({ name, error }) => [name, error.message]), [['fails', 'source-fails-after-one-0 failed: the consumer is dead']]);
  assert.deepEqual(result.runs.map(({ name, stats }) => [name, stats.drained, stats.lastCheckpoint !== undefined]), [['lives', false, true]], 'stopped, with its final checkpoint');
});

test('checkpoints a run cannot resume from stop it (exit 2, outputs kept) instead of a silent start from nothing: all unreadable, state of stages no longer there, a single run\'s folder shared by several', () => {
  const base = mkdtempSync(join(dir, 'resume-'));
  const world = new ShopperWorld({ seed: 5, users: 50 });
  writeFileSync(join(base, 'in.jsonl'), `${Array.from({ length: 2000 }, () => {
    const e = world.next();
    return JSON.stringify({ user_id: e.userId, time: e.time, type: e.type });
  }).join('\n')}\n`);
  const write = (stages: string, name = 'p.yaml', pipelineName = 'resume'): string => {
    const file = join(base, name);
    writeFileSync(file, `name: ${pipelineName}\nsources: [{type: file, path: in.jsonl, mapping: {time_format: epoch_ms}}]\nstages: ${stages}\nsinks: [{type: file, path: out-${pipelineName}.jsonl, kinds: [event]}]\ncheckpoint: {dir: ckpt, interval: 1h}\n`);
    return file;
  };
  const run = (...args: string[]) => boundedSpawnSync(process.execPath, [cli, 'run', ...args, '--log-level', 'warn'], { cwd: base, encoding: 'utf8' });
  const stages = '[{type: sessionizer}, {type: user-features, horizons: [1h]}]';
  const pipeline = write(stages);
  assert.equal(run(pipeline).status, 0);
  const output = readFileSync(join(base, 'out-resume.jsonl'), 'utf8');
  assert.ok(output.length > 0);

  // A stage removed before another: the saved state would go to no stage, and the next would start empty.
  write('[{type: user-features, horizons: [1h]}]');
  const removed = run(pipeline);
  assert.equal(removed.status, 2, removed.stderr);
  assert.match(removed.stderr, /TRIB_ERR_CHECKPOINT: checkpoint .*checkpoint-\d+\.json holds state of stage-sessionizer-0, stage-user-features-1, which no stage of the pipeline has now \(its stages are stage-user-features-0\)/);
  // Where the renamed stage is in the file, and the label that gives it its state back.
  assert.ok(removed.stderr.includes('No sessionizer stage is left to take the state of stage-sessionizer-0.'), removed.stderr);
  assert.ok(removed.stderr.includes(`The state of stage-user-features-1 is likely that of stage-user-features-0 (${pipeline}:3:10, $.stages[0], user-features): set \`label: stage-user-features-1\` on it to resume it.`), removed.stderr);
  // A stage a --set gave: said by the --set, not at the place of the file's stage it replaced (was :3:10).
  const setStage = 'stages[0]={type: user-features, horizons: [1h]}';
  const replaced = run(pipeline, '--set', setStage);
  assert.equal(replaced.status, 2, replaced.stderr);
  assert.ok(replaced.stderr.includes(`The state of stage-user-features-1 is likely that of stage-user-features-0 (${pipeline}, $.stages[0], user-features; from --set '${setStage}', not from the file): `), replaced.stderr);
  assert.equal(run(pipeline, '--allow-non-restored-state').status, 0, 'allowed: that state is dropped');

  // A user-features horizon added resumes (was: refused, "snapshot horizons 1h differ from the config's 1h, 1d"):
  // the kept horizon's counts go on, the added one's start now. State that does not fit its stage stops the run,
  // naming the stage once, with the ways out: features.test.ts (a damaged snapshot, through the runtime).
  write(stages);
  assert.equal(run(pipeline, '--allow-non-restored-state').status, 0);
  write('[{type: sessionizer}, {type: user-features, horizons: [1h, 1d]}]');
  const changed = run(pipeline);
  assert.equal(changed.status, 0, changed.stderr);
  assert.ok(!changed.stderr.includes('could not be restored'), changed.stderr);
  // A stage relabelled: it starts afresh under its new label, its old state dropped, the sessionizer's kept.
  write('[{type: sessionizer}, {type: user-features, label: users-1d, horizons: [1h, 1d]}]');
  const relabelled = run(pipeline, '--allow-non-restored-state');
  assert.equal(relabelled.status, 0, relabelled.stderr);
  assert.match(relabelled.stderr, /"dropped":\["stage-user-features-1"\]/);

  // Every checkpoint unreadable: no start from the beginning (which would replace the outputs).
  write(stages);
  const ckpt = join(base, 'ckpt');
  for (const name of readdirSync(ckpt)) writeFileSync(join(ckpt, name), 'torn');
  const before = readFileSync(join(base, 'out-resume.jsonl'), 'utf8');
  const unreadable = run(pipeline);
  assert.equal(unreadable.status, 2, unreadable.stderr);
  assert.match(unreadable.stderr, /none of the \d+ checkpoints in .*ckpt is usable \(.*no header line.*\); to start from the beginning, move them out of the folder, and the pipeline's `file` outputs too to keep them: a start without a checkpoint replaces them/);
  assert.equal(readFileSync(join(base, 'out-resume.jsonl'), 'utf8'), before, 'the output is as it was');

  // A second pipeline beside one that ran alone with --checkpoint-dir: each would look in its own sub-folder.
  const folder = join(base, 'folder');
  mkdirSync(folder);
  const shared = join(base, 'shared-ckpt');
  writeFileSync(join(folder, 'a.yaml'), readFileSync(write(stages, 'a.yaml', 'a'), 'utf8').replace('in.jsonl', join(base, 'in.jsonl')));
  assert.equal(run(folder, '--checkpoint-dir', shared).status, 0);
  writeFileSync(join(folder, 'b.yaml'), readFileSync(join(folder, 'a.yaml'), 'utf8').replace('name: a', 'name: b').replace('out-a', 'out-b'));
  const added = run(folder, '--checkpoint-dir', shared);
  assert.equal(added.status, 2, added.stderr);
  assert.match(added.stderr, /holds checkpoints of a run of one pipeline; .*move them into the folder of the pipeline that wrote them/);
});

test('while a checkpoint restores, /healthz answers and /readyz says not ready until the restore ends (a restore may take its time: it is awaited); tributary_pipeline_ready says the same in /metrics', async () => {
  const { Daemon, defineOperator } = await import('tributary');
  // A stage whose restore takes as long as the test says: a large state restored in parts.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let restored: unknown;
  const slow = defineOperator<Record<string, never>>({
    name: 'slow-restore',
    summary: 'test',
    config: { type: 'object' },
    create: () => ({
      apply: (input) => input,
      snapshot: () => restored,
      restore: async (state) => {
        await released;
        restored = state;
      },
    }),
  });
  const home = join(dir, 'slow-restore');
  mkdirSync(home);
  const file = join(home, 'pipeline.yaml');
  writeFileSync(file, 'name: slow\nsources: [{type: synthetic, events: 0, rate: 100}]\nstages: [{type: slow-restore}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: checkpoints}\n');
  await new CheckpointStore(join(home, 'checkpoints')).write(JSON.stringify({ pipeline: 'slow', createdAt: '', sources: {}, operators: { 'stage-slow-restore-0': { users: 3 } }, counters: {} }));
  const daemon = new Daemon({
    targets: [file],
    logger: silentLogger,
    registry: registryWith(slow),
    http: { port: 0 },
  });
  const running = daemon.run();
  try {
    await until(() => daemon.port !== undefined, 'the ops server');
    const base = `http://127.0.0.1:${daemon.port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const restoring = await fetch(`${base}/readyz`);
    // Without awaiting the restore, the pipeline said it was ready (and read input) with its state not yet restored.
    assert.equal(restoring.status, 503);
    assert.deepEqual(((await restoring.json()) as { pipelines: { reasons: string[] }[] }).pipelines[0]!.reasons, ['starting']);
    // Before, readiness was nowhere in /metrics: an alert on a pipeline not ready for minutes had nothing to read.
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^tributary_pipeline_ready\{pipeline="slow"\} 0$/m);
    assert.equal(restored, undefined);
    release();
    await until(() => daemon.runners[0]!.readiness().ready, 'ready after the restore');
    assert.deepEqual(restored, { users: 3 });
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^tributary_pipeline_ready\{pipeline="slow"\} 1$/m);
  } finally {
    release();
    daemon.stop('test over');
    const result = await running;
    assert.deepEqual(result.failures, []);
  }
});

test('a sink that reports by itself that it cannot go on (context.fail) while its input is quiet: /readyz says not ready at once, naming it, and the run fails (exit 1)', async () => {
  const { Daemon, defineSink } = await import('tributary');
  let connectionDies: (() => void) | undefined;
  let releaseClose!: () => void;
  const closing = new Promise<void>((resolve) => (releaseClose = resolve));
  let closeBegun = false;
  // A source that read what there was and waits for more, as a Kafka source on a quiet topic.
  const quiet = quietAfterOne('quiet');
  // A sink whose client reports a dead connection from a callback; its close takes as long as the test says.
  const remote = defineSink<Record<string, never>>({
    name: 'remote',
    summary: 'test',
    config: { type: 'object' },
    create: (_config, context) => ({
      open: async () => {
        connectionDies = () => context.fail(new Error('the producer was fenced'));
      },
      write: () => undefined,
      close: async () => {
        closeBegun = true;
        await closing;
      },
    }),
  });
  const home = join(dir, 'sink-fails');
  mkdirSync(home);
  const file = join(home, 'pipeline.yaml');
  writeFileSync(file, 'name: quiet\nsources: [{type: quiet}]\nsinks: [{type: remote}]\n');
  const daemon = new Daemon({
    targets: [file],
    logger: silentLogger,
    registry: registryWith(quiet, remote),
    http: { port: 0 },
  });
  const running = daemon.run();
  try {
    await until(() => daemon.port !== undefined && daemon.runners[0]?.readiness().ready === true, 'ready');
    const base = `http://127.0.0.1:${daemon.port}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    connectionDies!();
    // Before, nothing heard of it: ready, and running on a dead sink until its next record.
    const failed = await fetch(`${base}/readyz`);
    assert.equal(failed.status, 503);
    assert.deepEqual(((await failed.json()) as { pipelines: { reasons: string[] }[] }).pipelines[0]!.reasons, ['failed: sink-remote-0 failed: the producer was fenced']);
    await until(() => closeBegun, 'the sink closed');
    assert.equal((await fetch(`${base}/readyz`)).status, 503, 'not ready while closing');
  } finally {
    releaseClose();
    const result = await running;
    assert.deepEqual(
      result.failures.map(({ name, error }) => [name, (error as Error & { code?: string }).code, error.message]),
      [['quiet', 'TRIB_ERR_SINK', 'sink-remote-0 failed: the producer was fenced']],
    );
  }
});

test('a pipeline that fails with an error a restart may mend is restarted in the process from its last checkpoint: it drains with every event read once, the restart is logged and counted, /readyz says so meanwhile, and the process counts go on', async () => {
  const { Daemon, defineOperator } = await import('tributary');
  const { map } = await import('rxjs');
  const { pino } = await import('pino');
  const home = join(dir, 'restarts');
  mkdirSync(home);
  const checkpoints = join(home, 'checkpoints');
  let instances = 0;
  // A stage whose first instance fails once the run has checkpoints with events in them, as a sink whose broker dropped it would.
  const failsOnce = defineOperator<Record<string, never>>({
    name: 'fails-once',
    summary: 'test',
    config: { type: 'object' },
    create: () => {
      const first = ++instances === 1;
      return {
        apply: (input) =>
          input.pipe(
            map((element) => {
              if (first && existsSync(join(checkpoints, 'checkpoint-0000000002.json'))) throw new Error('the broker dropped this member');
              return element;
            }),
          ),
      };
    },
  });
  const file = join(home, 'restarts.yaml');
  writeFileSync(
    file,
    // 3 s of input: the sources go on while a checkpoint's file is written, so at 3000/s a loaded host's
    // second checkpoint (its first took 0.8 s) could come after the last event, and nothing failed.
    `name: restarts\nsources: [{type: synthetic, events: 3000, rate: 1000}]\nstages: [{type: fails-once}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: checkpoints, interval: 100ms}\nsettings: {restart: {backoff: 400ms}}\n`,
  );
  const lines: string[] = [];
  const daemon = new Daemon({
    targets: [file],
    logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
    registry: registryWith(failsOnce),
    http: { port: 0 },
  });
  const running = daemon.run();
  let readyz: { ready: boolean; pipelines: { reasons: string[] }[] } | undefined;
  // Polled with until's pause (10 ms, within the 400 ms backoff it must catch).
  await until(async () => {
    if (daemon.port !== undefined) readyz = (await (await fetch(`http://127.0.0.1:${daemon.port}/readyz`)).json()) as typeof readyz;
    return readyz?.pipelines[0]?.reasons.some((reason) => reason.startsWith('restarting')) === true;
  }, '/readyz to say restarting');
  assert.equal(readyz!.ready, false);
  assert.deepEqual(readyz!.pipelines[0]!.reasons, ['failed: a stage failed: the broker dropped this member', 'restarting in 400 ms (restart 1 of 10 in a row)']);
  // Read before the run ends: the server closes with it.
  let metrics = '';
  await until(() => instances === 2, 'the restart');
  await until(async () => /tributary_pipeline_restarts_total\{pipeline="restarts"\} 1/.test((metrics = await (await fetch(`http://127.0.0.1:${daemon.port}/metrics`)).text())), 'the restart in /metrics');
  const result = await running;
  assert.deepEqual(result.failures, []);
  const { stats } = result.runs[0]!;
  assert.equal(stats.drained, true);
  assert.equal(stats.restarts, 1, 'the summary says it was restarted');
  assert.ok(stats.resumedFrom !== undefined && stats.resumedFrom >= 2, `resumed from checkpoint ${stats.resumedFrom}`);
  // From the checkpoint's position, with its counts: 3000 in all, none read twice in the books.
  assert.equal(stats.eventsIn, 3000);
  const logged = lines.map((line) => JSON.parse(line) as { level: number; msg: string; err?: string });
  assert.ok(
    logged.some((entry) => entry.level === 50 && entry.msg === 'pipeline restarts failed; restarting it in 400 ms from its last checkpoint (restart 1 of 10 in a row)' && entry.err === 'a stage failed: the broker dropped this member'),
    'the failure and the restart are logged as an error',
  );
  // The process's count goes on from the failed run's (a counter that drops reads as a reset to Prometheus).
  const readByFirstRun = Number(/tributary_records_in_total\{pipeline="restarts"\} (\d+)/.exec(metrics)?.[1]);
  assert.ok(readByFirstRun >= (stats.atResume?.eventsIn ?? 0) && readByFirstRun > 0, `records_in_total ${readByFirstRun} holds the failed run's reads`);
  const written = readFileSync(join(home, 'out.jsonl'), 'utf8').trim().split('\n').length;
  assert.ok(written >= 3000, `${written} records written: at least one per event (at-least-once from the checkpoint)`);
});

test('a pipeline that fails before its first checkpoint is restarted from the start of its input and replaces its output file, as a new process would: each record once (was: appended after the failed run\'s records, written twice)', async () => {
  const { Daemon, defineOperator } = await import('tributary');
  const { tap } = await import('rxjs');
  const { pino } = await import('pino');
  const home = join(dir, 'restart-before-checkpoint');
  mkdirSync(home);
  let instances = 0;
  // The first instance fails once 1,000 events passed it (a sink's full disk, a broker that dropped it), long before any checkpoint is due.
  const failsAt1000 = defineOperator<Record<string, never>>({
    name: 'fails-at-1000',
    summary: 'test',
    config: { type: 'object' },
    create: () => {
      const first = ++instances === 1;
      let seen = 0;
      return {
        apply: (input) =>
          input.pipe(
            tap(() => {
              if (first && ++seen === 1000) throw new Error('the disk is full');
            }),
          ),
      };
    },
  });
  const file = join(home, 'again.yaml');
  writeFileSync(
    file,
    `name: again\nsources: [{type: synthetic, events: 3000}]\nstages: [{type: fails-at-1000}]\nsinks: [{type: file, path: out.jsonl, kinds: [event]}]\ncheckpoint: {dir: checkpoints, interval: 1h}\nsettings: {restart: {backoff: 1ms}}\n`,
  );
  const lines: string[] = [];
  const daemon = new Daemon({ targets: [file], logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), registry: registryWith(failsAt1000) });
  const result = await daemon.run();
  assert.deepEqual(result.failures, []);
  assert.equal(result.runs[0]!.stats.restarts, 1);
  assert.ok(lines.some((line) => line.includes('restarting it in 1 ms from the start of its input (no checkpoint taken yet)')), lines.join(''));
  const written = readFileSync(join(home, 'out.jsonl'), 'utf8').trim().split('\n');
  // Synthetic events of one seed are the same in both runs: a record of the failed run left in the file is a second copy.
  assert.equal(new Set(written).size, written.length, 'no record twice');
  assert.equal(written.length, 3000, 'every event once, the failed run\'s records replaced');
});

test('an output file deleted under a running daemon (rm, its folder removed) fails the run at the next checkpoint, which is not written, and the restart from the last one writes the records since into a new file at the path (was: written on into the deleted file, none of them kept, /readyz ready)', async () => {
  const { Daemon } = await import('tributary');
  const { pino } = await import('pino');
  const home = join(dir, 'output-deleted');
  mkdirSync(home);
  const yaml = (out: string, checkpoints: string): string =>
    `name: deleted\nsources: [{type: synthetic, events: 3000, rate: 1500}]\nsinks: [{type: file, path: ${out}, kinds: [event]}]\ncheckpoint: {dir: ${checkpoints}, interval: 100ms}\nsettings: {restart: {backoff: 1ms}}\n`;
  const reference = join(home, 'reference.yaml');
  writeFileSync(reference, yaml('reference.jsonl', 'reference-checkpoints'));
  assert.deepEqual((await new Daemon({ targets: [reference], logger: silentLogger, registry: registryWith() }).run()).failures, []);
  const expected = readFileSync(join(home, 'reference.jsonl'), 'utf8').trim().split('\n');

  const file = join(home, 'deleted.yaml');
  writeFileSync(file, yaml('out.jsonl', 'checkpoints'));
  const out = join(home, 'out.jsonl');
  const lines: string[] = [];
  const daemon = new Daemon({ targets: [file], logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), registry: registryWith() });
  const running = daemon.run();
  await until(() => existsSync(join(home, 'checkpoints', 'checkpoint-0000000002.json')) && existsSync(out) && fs.statSync(out).size > 0, 'a checkpoint and records in the file');
  rmSync(out);
  const result = await running;
  assert.deepEqual(result.failures, []);
  assert.equal(result.runs[0]!.stats.restarts, 1, lines.join(''));
  assert.ok(lines.some((line) => line.includes('out.jsonl: the file was deleted while this sink wrote it')), lines.join(''));
  // The new file holds every record from where the restart resumed to the end, none missing (at-least-once: some maybe twice).
  const written = readFileSync(out, 'utf8').trim().split('\n');
  const from = expected.indexOf(written[0]!);
  assert.ok(from > 0, 'it starts with a record of the reference run, after its first');
  const held = new Set(written);
  assert.deepEqual(expected.slice(from).filter((line) => !held.has(line)), [], 'no record since the checkpoint missing');
});

test('restarts in the process: given up after `attempts` in a row (the failure stands), none for a config error, and a stop during the wait ends it at once', async () => {
  const { Daemon, defineSource, PluginConfigError } = await import('tributary');
  let created = 0;
  // `acknowledges`: it commits its input as a Kafka source does (so a new run resumes where it acknowledged).
  // `healthyMs`: it runs that long before it fails; `failures`: the first that many instances fail, the next drains.
  const failing = defineSource<{ reject?: boolean; acknowledges?: boolean; healthyMs?: number; failures?: number }>({
    name: 'always-fails',
    summary: 'test',
    config: { type: 'object', properties: { reject: { type: 'boolean' }, acknowledges: { type: 'boolean' }, healthyMs: { type: 'number' }, failures: { type: 'number' } } },
    create: (config) => {
      const instance = ++created;
      if (config.reject) throw new PluginConfigError('reject', 'not this way');
      return {
        async *read() {
          yield [{ kind: 'event', userId: 'u', time: 0, type: 'view' }];
          if (config.failures !== undefined && instance > config.failures) return;
          if (config.healthyMs) await new Promise((resolve) => setTimeout(resolve, config.healthyMs));
          throw new Error('the consumer is dead');
        },
        ...(config.acknowledges ? { commit: async () => undefined } : {}),
      };
    },
  });
  const home = join(dir, 'restarts-spent');
  mkdirSync(home);
  const daemonOf = (yaml: string, http = false) => {
    const file = join(home, `p${created}.yaml`);
    writeFileSync(file, yaml);
    return new Daemon({
      targets: [file],
      logger: silentLogger,
      registry: registryWith(failing),
      ...(http ? { http: { port: 0 } } : {}),
    });
  };
  // Without checkpoints none by default; asked for, 2 in a row, then the failure stands.
  let result = await daemonOf('name: spent\nsources: [{type: always-fails}]\nsinks: [{type: file, path: spent.jsonl}]\nsettings: {restart: {attempts: 2, backoff: 10ms}}\n').run();
  assert.equal(created, 3, 'the first run and two restarts');
  assert.deepEqual(result.failures.map(({ name, error }) => [name, error.message]), [['spent', 'source-always-fails-0 failed: the consumer is dead']]);
  created = 0;
  result = await daemonOf('name: once\nsources: [{type: always-fails}]\nsinks: [{type: file, path: once.jsonl}]\n').run();
  assert.equal(created, 1, 'no restart without checkpoints unless asked for');
  // Sources that acknowledge their input (Kafka) resume where they did, and fail for as long as their
  // brokers are away: no end to the restarts by default (before: 10, about 10 minutes of an outage).
  created = 0;
  result = await daemonOf('name: acks\nsources: [{type: always-fails, acknowledges: true, failures: 25}]\nsinks: [{type: file, path: acks.jsonl}]\nsettings: {restart: {backoff: 1ms, max_backoff: 1ms}}\n').run();
  assert.equal(created, 26, 'twenty-five failures in a row, then a run that drains');
  assert.deepEqual(result.failures, []);
  assert.equal(result.runs[0]?.stats.restarts, 25);
  // Asked for, a pipeline of files is restarted without end too.
  created = 0;
  result = await daemonOf('name: unlimited\nsources: [{type: always-fails, failures: 12}]\nsinks: [{type: file, path: unlimited.jsonl}]\nsettings: {restart: {attempts: unlimited, backoff: 1ms, max_backoff: 1ms}}\n').run();
  assert.equal(created, 13);
  assert.deepEqual(result.failures, []);
  // A run that lasted `reset_after` before it failed counts as healthy: the count in a row starts again.
  created = 0;
  result = await daemonOf('name: healthy\nsources: [{type: always-fails, healthyMs: 60, failures: 3}]\nsinks: [{type: file, path: healthy.jsonl}]\nsettings: {restart: {attempts: 1, backoff: 1ms, reset_after: 50ms}}\n').run();
  assert.equal(created, 4, 'three failures, each after a healthy run, then a run that drains');
  assert.deepEqual(result.failures, []);
  assert.equal(result.runs[0]?.stats.restarts, 3);
  // A config error a factory finds is a person's to mend: no restart.
  created = 0;
  result = await daemonOf('name: invalid\nsources: [{type: always-fails, reject: true}]\nsinks: [{type: file, path: invalid.jsonl}]\nsettings: {restart: {attempts: 5, backoff: 10ms}}\n').run();
  assert.equal(created, 1);
  assert.equal(result.failures[0]?.error.name, 'ConfigError');
  // A stop while it waits to restart ends the wait at once, as a stop: nothing failed that a restart would not mend.
  created = 0;
  const waiting = daemonOf('name: waits\nsources: [{type: always-fails}]\nsinks: [{type: file, path: waits.jsonl}]\nsettings: {restart: {attempts: 5, backoff: 1h, max_backoff: 1h}}\n', true);
  const running = waiting.run();
  await until(() => waiting.port !== undefined && created === 1, 'the first run');
  let reasons: string[] = [];
  // Polled with until's pause, not back to back (a busy loop took the CPU from the daemon it waited for).
  await until(async () => {
    reasons = ((await (await fetch(`http://127.0.0.1:${waiting.port}/readyz`)).json()) as { pipelines: { reasons: string[] }[] }).pipelines[0]!.reasons;
    return reasons.includes('restarting in 3600000 ms (restart 1 of 5 in a row)');
  }, '/readyz to say it waits to restart').catch((error: Error) => {
    throw new Error(`${error.message}; its reasons: ${reasons.join('; ')}`);
  });
  const stoppedAt = Date.now();
  waiting.stop('SIGTERM');
  result = await running;
  assert.ok(Date.now() - stoppedAt < 2_000, 'the wait ended with the stop');
  assert.equal(created, 1);
  assert.deepEqual(result.failures, []);
});

test('a stop (SIGTERM) while the daemon waits to restart a pipeline ends the wait at once and the run as stopped (exit 0): one warning naming the failure and where the next start resumes, no stack (was: the failure with its stack, exit 1)', async () => {
  const { Daemon } = await import('tributary');
  const home = mkdtempSync(join(dir, 'stop-in-backoff-'));
  const file = join(home, 'p.yaml');
  writeFileSync(file, `name: backoff\nsources: [{type: fails-once-read}]\nsinks: [{type: stdout, kinds: []}]\ncheckpoint: {dir: ${join(home, 'checkpoints')}}\nsettings: {restart: {backoff: 1h, max_backoff: 1h}}\n`);
  const records: { level: number; msg: string; err?: unknown; code?: string; stack?: unknown }[] = [];
  let daemon: InstanceType<typeof Daemon> | undefined;
  const logger = pino({ level: 'info' }, {
    write: (line: string) => {
      const record = JSON.parse(line) as (typeof records)[number];
      records.push(record);
      // Stopped on the daemon's own word that it waits (its restart line), as a supervisor's SIGTERM would come.
      if (record.msg.includes('restarting it in 3600000 ms')) queueMicrotask(() => daemon!.stop('SIGTERM'));
    },
  });
  daemon = new Daemon({ targets: [file], logger, registry: registryWith(failsAfterOne('fails-once-read', 'the consumer is dead')) });
  const result = await daemon.run();
  assert.deepEqual(result.failures, [], 'exit 0: a stop, as asked');
  assert.equal(result.runs[0]!.name, 'backoff');
  const said = records.filter((record) => record.level >= 40);
  assert.deepEqual(
    said.map((record) => [record.level, record.code, record.msg]),
    [
      [50, 'TRIB_ERR_SOURCE', 'pipeline backoff failed; restarting it in 3600000 ms from the start of its input (no checkpoint taken yet) (restart 1 of 10 in a row)'],
      [40, 'TRIB_ERR_SOURCE', 'pipeline backoff stopped while it waited to be restarted after a failure (source-fails-once-read-0 failed: the consumer is dead); its next start resumes from the start of its input (no checkpoint taken yet)'],
    ],
  );
  assert.ok(said.every((record) => typeof record.err === 'string'), 'the failure as its message alone, no stack');
});

test('a sink that cannot open (a Kafka topic not created): while the daemon waits to restart the pipeline, /readyz says the failure, not only that it restarts', async () => {
  const { Daemon, defineSink, TributaryError } = await import('tributary');
  const quiet = quietAfterOne('quiet-for-open');
  let opened = 0;
  const missingTopic = defineSink<Record<string, never>>({
    name: 'missing-topic',
    summary: 'test',
    config: { type: 'object' },
    create: () => ({
      open: async () => {
        opened++;
        throw new TributaryError('TRIB_ERR_SINK', "kafka sink: topic 'predictionz' is not there");
      },
      write: () => undefined,
      close: async () => undefined,
    }),
  });
  const home = join(dir, 'sink-cannot-open');
  mkdirSync(home);
  const file = join(home, 'pipeline.yaml');
  writeFileSync(file, 'name: cannot-open\nsources: [{type: quiet-for-open}]\nsinks: [{type: missing-topic}]\nsettings: {restart: {attempts: 5, backoff: 1h, max_backoff: 1h}}\n');
  const daemon = new Daemon({ targets: [file], logger: silentLogger, registry: registryWith(quiet, missingTopic), http: { port: 0 } });
  const running = daemon.run();
  let readyz: { ready: boolean; pipelines: { reasons: string[] }[] } | undefined;
  await until(async () => {
    if (daemon.port !== undefined) readyz = (await (await fetch(`http://127.0.0.1:${daemon.port}/readyz`)).json()) as typeof readyz;
    return readyz?.pipelines[0]?.reasons.some((reason) => reason.startsWith('restarting')) === true;
  }, '/readyz to say restarting');
  const metrics = await (await fetch(`http://127.0.0.1:${daemon.port}/metrics`)).text();
  daemon.stop('SIGTERM');
  await running;
  assert.equal(opened, 1);
  assert.equal(readyz!.ready, false);
  // Before: ['starting', 'restarting in 3600000 ms (restart 1 of 5 in a row)'], the cause in the log alone.
  assert.deepEqual(readyz!.pipelines[0]!.reasons, ["failed: sink-missing-topic-0 could not open: kafka sink: topic 'predictionz' is not there", 'restarting in 3600000 ms (restart 1 of 5 in a row)']);
  assert.match(metrics, /tributary_pipeline_ready\{pipeline="cannot-open"\} 0/);
});

test("a restart's log line says whether it resumes from a checkpoint: with none taken yet (a failure before the first), from the start of its input (was: 'from its last checkpoint'); with one in the folder, from it", async () => {
  const { Daemon, defineSource } = await import('tributary');
  const { pino } = await import('pino');
  let created = 0;
  // Its first instance fails after one event; a restart's drains.
  const failsFirst = defineSource<Record<string, never>>({
    name: 'fails-first',
    summary: 'test',
    config: { type: 'object' },
    create: () => {
      const first = ++created === 1;
      return {
        async *read() {
          yield [{ kind: 'event', userId: 'u', time: 0, type: 'view' }];
          if (first) throw new Error('the disk went away');
        },
      };
    },
  });
  const home = join(dir, 'restart-point');
  mkdirSync(home);
  const file = join(home, 'point.yaml');
  writeFileSync(file, 'name: point\nsources: [{type: fails-first}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: checkpoints, interval: 1h}\nsettings: {restart: {backoff: 1ms}}\n');
  const restartLines = async (): Promise<string[]> => {
    created = 0;
    const lines: string[] = [];
    const daemon = new Daemon({ targets: [file], logger: pino({ level: 'error' }, { write: (line: string) => void lines.push(line) }), registry: registryWith(failsFirst) });
    const result = await daemon.run();
    assert.deepEqual(result.failures, []);
    return lines.map((line) => (JSON.parse(line) as { msg: string }).msg).filter((msg) => msg.includes('restarting'));
  };
  assert.deepEqual(await restartLines(), ['pipeline point failed; restarting it in 1 ms from the start of its input (no checkpoint taken yet) (restart 1 of 10 in a row)']);
  // The restart drained, to a final checkpoint: the next failure resumes from it.
  assert.ok(await new CheckpointStore(join(home, 'checkpoints')).holdsCheckpoints());
  assert.deepEqual(await restartLines(), ['pipeline point failed; restarting it in 1 ms from its last checkpoint (restart 1 of 10 in a row)']);
});

test("a restart's log record and the giving-up one carry the failure's code at the top level, as docs/errors.md promises every error record (they had only its message)", async () => {
  const { Daemon } = await import('tributary');
  const { pino } = await import('pino');
  const failing = failsAfterOne('fails-always', 'the disk went away');
  const home = join(dir, 'restart-code');
  mkdirSync(home);
  const file = join(home, 'coded.yaml');
  writeFileSync(file, 'name: coded\nsources: [{type: fails-always}]\nsinks: [{type: file, path: out.jsonl}]\nsettings: {restart: {attempts: 1, backoff: 1ms}}\n');
  const lines: string[] = [];
  const daemon = new Daemon({ targets: [file], logger: pino({ level: 'error' }, { write: (line: string) => void lines.push(line) }), registry: registryWith(failing) });
  const result = await daemon.run();
  assert.equal(result.failures.length, 1);
  const records = lines.map((line) => JSON.parse(line) as { msg: string; code?: string; err?: unknown });
  const restart = records.find((record) => record.msg.includes('restarting it in'));
  const givingUp = records.find((record) => record.msg.endsWith('giving up'));
  assert.equal(restart?.code, 'TRIB_ERR_SOURCE', lines.join('\n'));
  assert.equal(restart?.err, 'source-fails-always-0 failed: the disk went away');
  assert.equal(givingUp?.code, 'TRIB_ERR_SOURCE', lines.join('\n'));
  assert.equal(givingUp?.err, 'source-fails-always-0 failed: the disk went away', 'the failure it gives up on is named');
});

test('a folder of pipelines: one restarted in the process leaves the others running (they are stopped only when restarts are spent)', async () => {
  const { Daemon, defineSource } = await import('tributary');
  let created = 0;
  // Fails after its first batch the first time, then waits for more as a Kafka source on a quiet topic does.
  const failsOnce = defineSource<Record<string, never>>({
    name: 'fails-once-then-waits',
    summary: 'test',
    config: { type: 'object' },
    create: (_config, context) => {
      const first = ++created === 1;
      return {
        async *read() {
          yield [{ kind: 'event', userId: 'u', time: 0, type: 'view' }];
          if (first) throw new Error('the consumer is dead');
          await new Promise<void>((resolve) => context.signal?.addEventListener('abort', () => resolve(), { once: true }));
        },
        commit: async () => undefined,
      };
    },
  });
  const home = join(dir, 'one-restarts');
  mkdirSync(home);
  writeFileSync(join(home, 'flaky.yaml'), 'name: flaky\nsources: [{type: fails-once-then-waits}]\nsinks: [{type: file, path: flaky.jsonl}]\nsettings: {restart: {backoff: 10ms}}\n');
  writeFileSync(join(home, 'lives.yaml'), 'name: lives\nsources: [{type: synthetic, events: 0, rate: 100}]\nsinks: [{type: file, path: lives.jsonl}]\ncheckpoint: {dir: checkpoints}\n');
  const daemon = new Daemon({
    targets: [home],
    logger: silentLogger,
    registry: registryWith(failsOnce),
  });
  const running = daemon.run();
  await until(() => created === 2 && daemon.runners.every((runner) => runner.readiness().ready), 'the restart, both pipelines running');
  const lives = daemon.runners.find((runner) => runner.name === 'lives')!;
  const read = lives.stats.eventsIn;
  await until(() => lives.stats.eventsIn > read, 'the other pipeline reading on');
  daemon.stop('the test is done');
  const result = await running;
  assert.deepEqual(result.failures, []);
  assert.deepEqual(result.runs.map(({ name, stats }) => [name, stats.restarts ?? 0]).sort(), [['flaky', 1], ['lives', 0]]);
});

test('a stop that meets a failure which only handed the uncommitted input to another member of the group (a transaction refused: Unknown member) ends as stopped, logged; any other failure at a stop stands', async () => {
  const { Daemon, defineSource, TributaryError } = await import('tributary');
  const { pino } = await import('pino');
  let reading = 0;
  // Fails as the stop comes, as an exactly-once Kafka pipeline whose member the group dropped during an outage does.
  const refused = defineSource<{ handedOver: boolean }>({
    name: 'refused-at-stop',
    summary: 'test',
    config: { type: 'object', properties: { handedOver: { type: 'boolean' } } },
    create: (config, context) => ({
      async *read() {
        yield [{ kind: 'event', userId: 'u', time: 0, type: 'view' }];
        reading++;
        await new Promise((resolve) => context.signal!.addEventListener('abort', resolve, { once: true }));
        throw new TributaryError('TRIB_ERR_SINK', 'Failed to commit offsets to transaction: Broker: Unknown member', { handedOver: config.handedOver });
      },
      commit: async () => undefined,
    }),
  });
  const home = join(dir, 'handed-over');
  mkdirSync(home);
  const stopped = async (handedOver: boolean) => {
    const file = join(home, `p-${handedOver}.yaml`);
    writeFileSync(file, `name: p-${handedOver}\nsources: [{type: refused-at-stop, handedOver: ${handedOver}}]\nsinks: [{type: file, path: out-${handedOver}.jsonl}]\n`);
    const lines: string[] = [];
    const daemon = new Daemon({ targets: [file], logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), registry: registryWith(refused) });
    reading = 0;
    const running = daemon.run();
    await until(() => reading === 1, 'the first event read');
    daemon.stop('SIGTERM');
    return { result: await running, logged: lines.map((line) => JSON.parse(line) as { level: number; msg: string; err?: string }) };
  };
  const { result, logged } = await stopped(true);
  // Before: the failure stood (exit 1) though the stop lost nothing: the group's new member reads that input again.
  assert.deepEqual(result.failures, []);
  assert.equal(result.runs[0]?.stats.drained, false, 'stopped, not drained');
  assert.ok(
    logged.some((entry) => entry.level === 40 && entry.msg.startsWith('pipeline p-true stopped without committing its last input, which its next reader reads again (nothing of it was committed here)') && /Unknown member/.test(entry.err ?? '')),
    'the stop says what happened to the input',
  );
  const other = await stopped(false);
  assert.deepEqual(other.result.failures.map(({ error }) => error.message), ['Failed to commit offsets to transaction: Broker: Unknown member']);
});

test('a periodic checkpoint that fails only leaving its input uncommitted (a broker outage) is logged as a warning, and not counted against checkpoint.tolerable_failures (/readyz says so all the same); any other failure as an error; neither with a stack', async () => {
  const { Daemon, defineSink, TributaryError } = await import('tributary');
  const { pino } = await import('pino');
  let flushes = 0;
  // Its flush fails as a Kafka sink's does while every broker is away.
  const unreachable = defineSink<{ handedOver: boolean }>({
    name: 'unreachable-sink',
    summary: 'test',
    config: { type: 'object', properties: { handedOver: { type: 'boolean' } } },
    create: (config) => ({
      write: () => undefined,
      close: async () => undefined,
      flush: async () => {
        flushes++;
        throw new TributaryError('TRIB_ERR_SINK', 'delivery failed: message timed out (the brokers are unreachable)', { handedOver: config.handedOver });
      },
    }),
  });
  const home = join(dir, 'checkpoint-outage');
  mkdirSync(home);
  const logged = async (handedOver: boolean, tolerable?: number) => {
    const variant = `${handedOver}${tolerable === undefined ? '' : `-tolerating-${tolerable}`}`;
    const file = join(home, `p-${variant}.yaml`);
    writeFileSync(
      file,
      `name: c-${handedOver}\nsources: [{type: synthetic, events: 0, rate: 100}]\nsinks: [{type: unreachable-sink, handedOver: ${handedOver}}]\ncheckpoint: { dir: ${join(home, `cp-${variant}`)}, interval: 100ms${tolerable === undefined ? '' : `, tolerable_failures: ${tolerable}`} }\nsettings: { restart: { attempts: 0 } }\n`,
    );
    const lines: string[] = [];
    const daemon = new Daemon({ targets: [file], logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), registry: registryWith(unreachable) });
    flushes = 0;
    const running = daemon.run();
    await until(() => flushes >= 3, 'three periodic checkpoints tried');
    const reasons = daemon.runners[0]!.readiness().reasons;
    daemon.stop('the test is done');
    const result = await running;
    const entries = lines.map((line) => JSON.parse(line) as { level: number; msg: string; err?: unknown }).filter((entry) => /^checkpoint (failed|not taken)/.test(entry.msg));
    return Object.assign(entries, { reasons, failures: result.failures });
  };
  // Before: every one an error with the whole stack, once a minute through an outage of any length.
  const outage = await logged(true);
  assert.ok(outage.length >= 2, 'each failed checkpoint logged');
  for (const entry of outage) {
    assert.equal(entry.level, 40);
    // None was ever taken here: "the previous one stays" said there was one to restart from.
    assert.equal(entry.msg, 'checkpoint not taken; there is none yet to restart from');
    assert.equal(entry.err, 'delivery failed: message timed out (the brokers are unreachable)');
  }
  const other = await logged(false);
  assert.ok(other.length >= 2);
  for (const entry of other) {
    assert.equal(entry.level, 50);
    assert.equal(entry.msg, 'checkpoint failed; there is none yet to restart from');
    // Its message alone, as the outage's: its stack is at debug (one line per failure, every interval).
    assert.equal(typeof entry.err, 'string');
  }
  // Not one tolerated, yet the outage's run goes on, waiting it out: not ready, and saying why.
  const untolerated = await logged(true, 0);
  assert.ok(untolerated.length >= 3);
  assert.deepEqual(untolerated.failures, [], 'stopped, not failed');
  assert.equal(untolerated.reasons.length, 1, untolerated.reasons.join('; '));
  assert.match(untolerated.reasons[0]!, /^checkpoints failing: \d+ in a row \(checkpoint\.tolerable_failures: 0\), last: delivery failed: message timed out \(the brokers are unreachable\)$/);
});

test('while periodic checkpoints fail (a full disk), /readyz and tributary_pipeline_ready say not ready, naming the failure and its folder, until one is written again; by default the run goes on (was: ready throughout)', async () => {
  const { Daemon } = await import('tributary');
  const home = join(dir, 'checkpoints-failing');
  mkdirSync(home);
  const checkpoints = join(home, 'checkpoints');
  const file = join(home, 'pipeline.yaml');
  writeFileSync(file, 'name: failing\nsources: [{type: quiet}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: checkpoints, interval: 20ms}\n');
  let full = false;
  fullWhile(checkpoints, () => full);
  const daemon = new Daemon({ targets: [file], logger: silentLogger, registry: registryWith(quietAfterOne('quiet')), http: { port: 0 } });
  const running = daemon.run();
  const inRow = (): number => Number(/^checkpoints failing: (\d+) in a row/m.exec(daemon.runners[0]!.readiness().reasons.join('\n'))?.[1] ?? 0);
  try {
    await until(() => daemon.port !== undefined && daemon.runners[0]!.stats.lastCheckpoint !== undefined && daemon.runners[0]!.readiness().ready, 'ready, with a checkpoint written');
    const base = `http://127.0.0.1:${daemon.port}`;
    full = true;
    // More than any small default limit would take: the default is unlimited, the run goes on as it always has.
    await until(() => inRow() >= 4, 'four periodic checkpoints failed in a row');
    const failing = await fetch(`${base}/readyz`);
    assert.equal(failing.status, 503);
    const { reasons } = ((await failing.json()) as { pipelines: { reasons: string[] }[] }).pipelines[0]!;
    assert.equal(reasons.length, 1, reasons.join('; '));
    // The limit is not named: there is none.
    assert.match(reasons[0]!, new RegExp(`^checkpoints failing: \\d+ in a row, last: checkpoint could not be written in ${checkpoints}: ENOSPC: no space left on device, write: the file system holding it is full; free room there`));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^tributary_pipeline_ready\{pipeline="failing"\} 0$/m);
    assert.ok(Number(/^tributary_checkpoint_failures_total\{pipeline="failing"\} (\d+)$/m.exec(metrics)?.[1]) >= 4, 'counted');
    // A gauge an alert rule can use (was: only /readyz's reason and the log said how many in a row).
    assert.ok(Number(/^tributary_checkpoint_failures_in_row\{pipeline="failing"\} (\d+)$/m.exec(metrics)?.[1]) >= 4, metrics);
    // Room again: the next checkpoint is written, and the pipeline is ready.
    full = false;
    await until(() => daemon.runners[0]!.readiness().ready, 'ready again');
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const after = await (await fetch(`${base}/metrics`)).text();
    assert.match(after, /^tributary_pipeline_ready\{pipeline="failing"\} 1$/m);
    assert.match(after, /^tributary_checkpoint_failures_in_row\{pipeline="failing"\} 0$/m, 'reset by the checkpoint written');
  } finally {
    full = false;
    daemon.stop('test over');
    const result = await running;
    mock.restoreAll();
    syncBuiltinESMExports();
    assert.deepEqual(result.failures, []);
    assert.equal(result.runs[0]!.stats.restarts, undefined, 'never restarted');
  }
});

test('a checkpoint folder that fails every interval (remounted read-only) logs one line per failure, its message without a stack (the stack at debug), counted in tributary_checkpoint_failures_total (was: the stack in every line)', async () => {
  const { Daemon } = await import('tributary');
  const home = mkdtempSync(join(dir, 'checkpoints-failing-lines-'));
  const checkpoints = join(home, 'checkpoints');
  const file = join(home, 'pipeline.yaml');
  writeFileSync(file, 'name: lines\nsources: [{type: quiet-lines}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: checkpoints, interval: 20ms}\n');
  let failing = false;
  let collecting = false;
  const realOpen = fsPromises.open;
  mock.method(fsPromises, 'open', async (path: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    if (failing && String(path).startsWith(checkpoints)) throw Object.assign(new Error(`EROFS: read-only file system, open '${String(path)}'`), { code: 'EROFS', syscall: 'open', path: String(path) });
    return realOpen(path, flags, mode);
  });
  syncBuiltinESMExports();
  const records: { level: number; msg: string; err?: string | { stack?: string }; failuresInRow?: number }[] = [];
  let daemon: InstanceType<typeof Daemon> | undefined;
  const logger = pino({ level: 'debug' }, {
    write: (line: string) => {
      const record = JSON.parse(line) as (typeof records)[number];
      if (collecting) records.push(record);
      // Driven by the daemon's own word: the folder fails once a checkpoint was written; three failures, then a stop.
      if (record.msg.startsWith('checkpoint written') && !collecting) failing = collecting = true;
      if (record.level === 50 && record.failuresInRow === 3) {
        failing = false;
        queueMicrotask(() => daemon!.stop('test over'));
      }
    },
  });
  daemon = new Daemon({ targets: [file], logger, registry: registryWith(quietAfterOne('quiet-lines')) });
  try {
    const result = await daemon.run();
    assert.deepEqual(result.failures, []);
  } finally {
    mock.restoreAll();
    syncBuiltinESMExports();
  }
  const said = records.filter((record) => record.level >= 40);
  assert.deepEqual(said.map((record) => [record.level, record.msg, record.failuresInRow]), [1, 2, 3].map((n) => [50, 'checkpoint failed; the previous one stays', n]), 'one line per failure');
  for (const record of said) assert.match(record.err as string, new RegExp(`^checkpoint could not be written in ${checkpoints}: EROFS: read-only file system, open .*: mount the file system holding ${checkpoints} read-write, or name another folder`));
  const stacks = records.filter((record) => record.level === 20 && record.msg === 'checkpoint failed: the failure with its stack');
  assert.equal(stacks.length, 3, 'the stack at debug');
  assert.match((stacks[0]!.err as { stack: string }).stack, /^Error: checkpoint could not be written in .*\n\s+at /);
  const metrics = await daemon.metrics.registry.metrics();
  assert.equal(Number(/^tributary_checkpoint_failures_total\{pipeline="lines"\} (\d+)$/m.exec(metrics)?.[1]), 3, 'the repeats counted');
});

test('checkpoint.tolerable_failures: one failure more in a row fails the run (TRIB_ERR_CHECKPOINTS_FAILING, a failure a restart may mend: settings.restart restarts it from the last checkpoint written), /readyz naming the limit meanwhile', async () => {
  const { Daemon } = await import('tributary');
  const { pino } = await import('pino');
  const home = join(dir, 'checkpoints-tolerable');
  mkdirSync(home);
  const checkpoints = join(home, 'checkpoints');
  const file = join(home, 'pipeline.yaml');
  writeFileSync(
    file,
    'name: tolerable\nsources: [{type: quiet}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: checkpoints, interval: 20ms, tolerable_failures: 2}\nsettings: {restart: {attempts: 1, backoff: 10ms}}\n',
  );
  let full = false;
  fullWhile(checkpoints, () => full);
  const logged: { level: number; msg: string; err?: unknown; code?: string; previous?: number; failuresInRow?: number; reasons?: string[] }[] = [];
  let daemon!: InstanceType<typeof Daemon>;
  const lines = {
    write: (line: string) => {
      const entry = JSON.parse(line) as (typeof logged)[number];
      // As each failure is logged, what /readyz says then (said synchronously: no probe can miss one).
      if (entry.failuresInRow !== undefined) entry.reasons = daemon.runners[0]!.readiness().reasons;
      // The disk is freed while the daemon waits to restart the pipeline.
      if (entry.msg.includes('restarting it in')) full = false;
      logged.push(entry);
    },
  };
  daemon = new Daemon({ targets: [file], logger: pino({ level: 'info' }, lines), registry: registryWith(quietAfterOne('quiet')) });
  const running = daemon.run();
  try {
    await until(() => daemon.runners[0]?.stats.lastCheckpoint !== undefined, 'a first checkpoint');
    const first = daemon.runners[0]!;
    full = true;
    await until(() => daemon.runners[0] !== first && daemon.runners[0]!.stats.lastCheckpoint !== undefined && daemon.runners[0]!.readiness().ready, 'restarted, checkpointing again');
    const failures = logged.filter((entry) => entry.failuresInRow !== undefined);
    // 2 tolerated, the third fails the run; the failed run's checkpoint timer counts no more.
    assert.deepEqual(failures.map((entry) => [entry.level, entry.msg, entry.failuresInRow]), [1, 2, 3].map((n) => [50, 'checkpoint failed; the previous one stays', n]));
    const folder = `checkpoint could not be written in ${checkpoints}: ENOSPC: no space left on device, write: the file system holding it is full; free room there`;
    for (const [index, entry] of failures.entries()) {
      assert.equal(entry.reasons!.length, 1, entry.reasons!.join('; '));
      assert.ok(entry.reasons![0]!.startsWith(`checkpoints failing: ${index + 1} in a row (checkpoint.tolerable_failures: 2), last: ${folder}`), entry.reasons![0]);
    }
    const restart = logged.find((entry) => entry.msg.includes('restarting it in'))!;
    assert.equal(restart.msg, 'pipeline tolerable failed; restarting it in 10 ms from its last checkpoint (restart 1 of 1 in a row)');
    assert.equal(restart.code, 'TRIB_ERR_CHECKPOINTS_FAILING');
    assert.ok(String(restart.err).startsWith(`checkpoints failed 3 times in a row, more than checkpoint.tolerable_failures (2) allows; the last: ${folder}`), String(restart.err));
    assert.equal(daemon.runners[0]!.stats.resumedFrom, failures[0]!.previous, 'resumed from the last checkpoint written');
  } finally {
    full = false;
    daemon.stop('test over');
    const result = await running;
    mock.restoreAll();
    syncBuiltinESMExports();
    assert.deepEqual(result.failures, []);
    assert.equal(result.runs[0]!.stats.restarts, 1);
  }
});

test('while the daemon drains after a stop, /readyz says not ready (stopping) and tributary_pipeline_ready is 0, until it exits', async () => {
  const { Daemon, defineSink } = await import('tributary');
  let releaseClose!: () => void;
  const closing = new Promise<void>((resolve) => (releaseClose = resolve));
  let closeBegun = false;
  const quiet = quietAfterOne('quiet');
  // A sink whose close (the end of the drain) takes as long as the test says.
  const slowClose = defineSink<Record<string, never>>({
    name: 'slow-close',
    summary: 'test',
    config: { type: 'object' },
    create: () => ({
      write: () => undefined,
      close: async () => {
        closeBegun = true;
        await closing;
      },
    }),
  });
  const home = join(dir, 'stopping');
  mkdirSync(home);
  const file = join(home, 'pipeline.yaml');
  writeFileSync(file, 'name: draining\nsources: [{type: quiet}]\nsinks: [{type: slow-close}]\n');
  const daemon = new Daemon({ targets: [file], logger: silentLogger, registry: registryWith(quiet, slowClose), http: { port: 0 } });
  const running = daemon.run();
  try {
    await until(() => daemon.port !== undefined && daemon.runners[0]?.readiness().ready === true, 'ready');
    const base = `http://127.0.0.1:${daemon.port}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    daemon.stop('test');
    await until(() => closeBegun, 'the drain to reach the sink\'s close');
    // Before, 200 until the process exited: restored and running, as operations.md defines it, it was not.
    const draining = await fetch(`${base}/readyz`);
    assert.equal(draining.status, 503);
    assert.deepEqual(((await draining.json()) as { pipelines: { reasons: string[] }[] }).pipelines[0]!.reasons, ['stopping']);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^tributary_pipeline_ready\{pipeline="draining"\} 0$/m);
  } finally {
    releaseClose();
    const result = await running;
    assert.deepEqual(result.failures, []);
  }
});

test('a run stuck in a plugin that holds nothing (a read that never returns, deaf to its signal) waits for the stop, then ends by shutdown_timeout: logged, exit 1', async (t) => {
  const plugin = join(dir, 'stuck.mjs');
  writeFileSync(
    plugin,
    `import { defineSource } from ${JSON.stringify(join(packageRoot, 'dist', 'core', 'index.js'))};
export default [defineSource({
  name: 'stuck', summary: 'test', config: { type: 'object' },
  create: () => ({ async *read() { process.stderr.write('reading\\n'); await new Promise(() => {}); } }),
})];
`,
  );
  const file = join(dir, 'stuck.yaml');
  writeFileSync(file, `name: stuck\nplugins: [${plugin}]\nsettings: {shutdown_timeout: 100ms}\nsources: [{type: stuck}]\nsinks: [{type: file, path: ${join(dir, 'stuck.jsonl')}}]\n`);
  const run = spawnTributary(t, ['run', file]);
  await run.started(() => run.stderr.includes('reading'), 'the source to be read');
  // Before, node found nothing left to do once read() was waiting: exit 13 (an unsettled top-level await), nothing logged.
  assert.equal(await run.stop(), 1, run.stderr);
  assert.match(run.stderr, /shutdown did not finish within shutdown_timeout; exiting 1/);
});

test("a sink whose flush does not return (a hung network mount, a service that never answers) past the pipeline's sink_stall_timeout makes /readyz 503 naming it and since when, warned once, tributary_sink_stalled_seconds rising; ready under the bound; all clear once it returns, the run not failed (was: ready throughout)", async () => {
  const { Daemon, defineSink } = await import('tributary');
  // The first flush (the first checkpoint's) waits until the test lets it go; every other returns at once.
  let letGo: (() => void) | undefined;
  let flushes = 0;
  const held = defineSink<Record<string, never>>({
    name: 'held',
    summary: 'test',
    config: { type: 'object' },
    create: () => ({
      write: () => undefined,
      flush: () => (++flushes === 1 ? new Promise<void>((resolve) => (letGo = resolve)) : Promise.resolve()),
      close: async () => undefined,
    }),
  });
  const file = join(dir, 'held.yaml');
  // The pipeline's own bound, shorter than the default minute (was not configurable: a code option for tests alone).
  const stallMs = 300;
  writeFileSync(file, `name: held\nsettings: {sink_stall_timeout: ${stallMs}ms}\nsources: [{type: synthetic, events: 0, rate: 200}]\nsinks: [{type: held}]\ncheckpoint: {dir: ${join(dir, 'held-checkpoints')}, interval: 100ms}\n`);
  const records: { level: number; msg: string; stage?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line) as (typeof records)[number]) });
  const daemon = new Daemon({ targets: [file], logger, registry: registryWith(held), http: { port: 0 } });
  const running = daemon.run();
  try {
    await until(() => daemon.port !== undefined && letGo !== undefined, 'the first flush');
    const base = `http://127.0.0.1:${daemon.port}`;
    const readyz = async () => {
      const response = await fetch(`${base}/readyz`);
      return { status: response.status, body: (await response.json()) as { pipelines: { reasons: string[] }[] } };
    };
    const stalledSeconds = async (): Promise<number> => Number(/^tributary_sink_stalled_seconds\{pipeline="held",stage="sink-held-0"\} (\S+)$/m.exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
    let answer = await readyz();
    assert.equal(answer.status, 200, `ready while the flush is pending less than the bound: ${JSON.stringify(answer.body)}`);
    assert.equal(await stalledSeconds(), 0);
    await until(async () => (answer = await readyz()).status === 503, '/readyz to say the sink is stalled');
    const reason = /^sink-held-0: stalled: its flush has not returned since (\S+) \(over 0\.3 s\)$/.exec(answer.body.pipelines[0]!.reasons.at(-1)!);
    assert.ok(reason, JSON.stringify(answer.body));
    assert.ok(Date.now() - Date.parse(reason[1]!) >= stallMs, 'since when the flush began');
    // The reason stays the same while the stall lasts; one warning for it.
    await sleep(3 * stallMs);
    assert.deepEqual((await readyz()).body.pipelines[0]!.reasons, answer.body.pipelines[0]!.reasons);
    assert.ok((await stalledSeconds()) >= (4 * stallMs) / 1000);
    const warned = records.filter((record) => record.level === 40 && /stalled/.test(record.msg));
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.match(warned[0]!.msg, /^sink-held-0: stalled: its flush has not returned since \S+ \(over 0\.3 s\): the pipeline is held back until it returns/);
    letGo!();
    await until(async () => (await readyz()).status === 200, '/readyz to be ready again once the flush returned');
    assert.equal(await stalledSeconds(), 0);
    await until(() => records.some((record) => record.level === 30 && /^sink-held-0 moved again, after its flush was pending \d+\.\d s$/.test(record.msg)), 'the all clear');
  } finally {
    letGo?.();
    daemon.stop('test over');
  }
  const { failures } = await running;
  assert.deepEqual(failures, [], 'a stalled sink does not fail the run');
});

test("a SIGTERM whose final checkpoint cannot be written (its folder gone read-only, a sink's last flush refused) ends in one error line naming what failed and that the next start resumes from the last checkpoint written, exit 1, no stack (was: `pipeline NAME failed` with the stack); the next start does so", async (t) => {
  const home = mkdtempSync(join(dir, 'final-checkpoint-'));
  // A sink whose downstream refuses the flush once the stop began: the final checkpoint's flush fails.
  const plugin = join(home, 'refuses-last.mjs');
  writeFileSync(
    plugin,
    `import { defineSink } from ${JSON.stringify(join(packageRoot, 'dist', 'core', 'index.js'))};
export default defineSink({ name: 'refuses-last', summary: 'test', config: { type: 'object' },
  create: (_config, context) => ({ write() {}, async flush() { if (context.signal?.aborted) throw new Error('the service refused the batch'); }, close: async () => undefined }) });\n`,
  );
  const cases: { sinks: string; breaks: (checkpoints: string) => (() => void) | undefined; failed: string }[] = [
    { sinks: `[{type: refuses-last}]\nplugins: [${plugin}]`, breaks: () => () => undefined, failed: 'sink-refuses-last-0 failed to flush: the service refused the batch' },
    { sinks: '[{type: stdout, kinds: []}]', breaks: readOnlyFolder, failed: 'checkpoint could not be written in \\S+: (EROFS|EACCES)\\b.*' },
  ];
  for (const [index, { sinks, breaks, failed }] of cases.entries()) {
    const checkpoints = join(home, `checkpoints-${index}`);
    mkdirSync(checkpoints);
    const file = join(home, `final-${index}.yaml`);
    writeFileSync(file, `name: final\nsources: [{type: synthetic, events: 0, rate: 200}]\nsinks: ${sinks}\ncheckpoint: {dir: ${checkpoints}, interval: 100ms}\n`);
    const run = spawnTributary(t, ['run', file, '--log-level', 'warn', '--no-progress'], { cwd: home });
    await run.started(() => readdirSync(checkpoints).some((name) => /^checkpoint-\d+\.json$/.test(name)), 'a checkpoint written');
    const restore = breaks(checkpoints);
    if (restore === undefined) {
      await run.stop();
      t.diagnostic(cannotMakeReadOnly);
      continue;
    }
    let code: number | NodeJS.Signals | null;
    try {
      code = await run.stop('SIGTERM');
    } finally {
      restore();
    }
    assert.equal(code, 1, run.stderr);
    // A periodic checkpoint due between the folder going read-only and the SIGTERM (100 ms apart, more on a
    // loaded machine) fails on its own line first ('checkpoint failed; ...'), as it should: the stop's is one more.
    const errors = run.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; code?: string; msg: string; err?: unknown })
      .filter((record) => record.level >= 50 && !record.msg.startsWith('checkpoint failed; '));
    assert.equal(errors.length, 1, run.stderr);
    assert.equal(errors[0]!.code, 'TRIB_ERR_FINAL_CHECKPOINT');
    assert.equal(typeof errors[0]!.err, 'string', 'the failure without its stack');
    const said = new RegExp(`^pipeline final stopped without its final checkpoint, which could not be written \\(${failed}\\); its next start resumes from its last checkpoint \\(#(?<sequence>\\d+)\\), reading the input since again$`).exec(errors[0]!.msg);
    assert.ok(said, errors[0]!.msg);
    const newest = Math.max(...readdirSync(checkpoints).flatMap((name) => /^checkpoint-(\d+)\.json$/.exec(name)?.[1] ?? []).map(Number));
    assert.equal(Number(said.groups!.sequence), newest, 'the checkpoint it names is the last one written');
    // The next start resumes from it.
    const again = spawnTributary(t, ['run', file, '--log-level', 'info', '--no-progress'], { cwd: home });
    await again.started(() => /"msg":"resuming from checkpoint"/.test(again.stderr), 'the next start to resume');
    assert.match(again.stderr, new RegExp(`"sequence":${newest},"msg":"resuming from checkpoint"`));
    await again.stop();
  }
});

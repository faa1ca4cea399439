import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, type PathLike } from 'node:fs';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { makeFolderDurably, makeFolderDurablySync, writeFileDurably, writeFileDurablySync } from 'tributary';
import { tempFolder } from 'tributary/testing';
import { inCI } from '../scripts/ci.js';
import { createFileDurably } from './durable.js';

test('writeFileDurably and writeFileDurablySync replace a file with all its parts, in order, and leave no temp file', async (t) => {
  const dir = tempFolder(t, 'durable');
  const file = join(dir, 'state.json');
  writeFileSync(file, 'old contents, longer than the new ones');
  // Bigger than one write call is sure to take, with a multi-byte character across parts.
  const body = 'é'.repeat(300_000);
  await writeFileDurably(file, ['{"a":', Buffer.from('1,"b":"'), body, '"}']);
  assert.equal(readFileSync(file, 'utf8'), `{"a":1,"b":"${body}"}`);
  writeFileDurablySync(file, `{"c":"${body}"}`);
  assert.equal(readFileSync(file, 'utf8'), `{"c":"${body}"}`);
  writeFileDurablySync(file, ['x', Buffer.from('y')], join(dir, 'fixed.tmp'));
  assert.equal(readFileSync(file, 'utf8'), 'xy');
  assert.deepEqual(readdirSync(dir), ['state.json']);
});

test('a file replaced durably keeps its permissions (an operator\'s chmod 600 of a model file holding what users did), whatever the umask and a temp file left there before', async (t) => {
  const dir = tempFolder(t, 'durable-mode');
  const file = join(dir, 'intent.model.json');
  writeFileSync(file, 'old');
  chmodSync(file, 0o600);
  await writeFileDurably(file, 'new');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  chmodSync(file, 0o640);
  writeFileDurablySync(file, 'newer');
  assert.equal(statSync(file).mode & 0o777, 0o640);
  // A fixed temp name (a model's `<file>.tmp`) that a killed save left, readable by all: open() keeps its mode.
  const temp = `${file}.tmp`;
  writeFileSync(temp, 'left by a kill');
  chmodSync(temp, 0o644);
  chmodSync(file, 0o600);
  await writeFileDurably(file, 'newest', temp);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  // Bits the umask takes (group write, under 022) are kept too: they are the operator's.
  chmodSync(file, 0o660);
  await writeFileDurably(file, 'last');
  assert.equal(statSync(file).mode & 0o777, 0o660);
  assert.equal(readFileSync(file, 'utf8'), 'last');
  // A new file takes the process's umask, as every file it makes.
  const made = join(dir, 'churn.model.json');
  await writeFileDurably(made, 'first');
  const umask = process.umask();
  assert.equal(statSync(made).mode & 0o777, 0o666 & ~umask);
});

test('a fixed temp name that holds a symbolic link (put there by another user of the folder) is removed, not written through: the file it names is left as it was, async and sync', async (t) => {
  const dir = tempFolder(t, 'durable-link');
  const file = join(dir, 'intent.model.json');
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'not the model');
  const temp = `${file}.tmp`;
  symlinkSync(victim, temp);
  await writeFileDurably(file, 'model', temp);
  assert.equal(readFileSync(victim, 'utf8'), 'not the model', 'was: the model written into the file the link names');
  assert.equal(readFileSync(file, 'utf8'), 'model');
  symlinkSync(victim, temp);
  writeFileDurablySync(file, 'model 2', temp);
  assert.equal(readFileSync(victim, 'utf8'), 'not the model');
  assert.equal(readFileSync(file, 'utf8'), 'model 2');
  assert.deepEqual(readdirSync(dir).sort(), ['intent.model.json', 'victim.txt']);
});

/** strace, where it runs here (installed, and ptrace allowed): it shows which folders a process fsyncs. */
const straceCheck = spawnSync('strace', ['-qq', '-e', 'trace=none', process.execPath, '-e', ''], { encoding: 'utf8' });
const strace = straceCheck.status === 0;
/** Where strace cannot run, the test skips, except in CI (scripts/ci.ts): .ci/run installs strace, and nothing may be skipped there. */
const straceMissing = strace ? undefined : `strace does not run here (${straceCheck.error?.message ?? straceCheck.stderr.trim().slice(-300)}): apt-get install strace`;

test('a checkpoint folder, and the folder of a lock, made anew have their entries fsynced in the folders above them (as strace sees): a crash cannot lose them with what was durably written in them', { skip: inCI() ? false : (straceMissing ?? false) }, (t) => {
  if (straceMissing) assert.fail(`${straceMissing}; CI=${process.env.CI} forbids skipping this test`);
  const dir = tempFolder(t, 'durable-folders');
  const trace = join(dir, 'fsyncs.txt');
  const script = `
    const { CheckpointStore } = await import(${JSON.stringify(new URL('./runtime/checkpoint.js', import.meta.url).href)});
    const { takeLock, releaseLock } = await import(${JSON.stringify(new URL('./lock.js', import.meta.url).href)});
    const store = new CheckpointStore(${JSON.stringify(join(dir, 'new', 'checkpoints'))});
    await store.write('{}');
    await store.write('{}');
    const lock = ${JSON.stringify(join(dir, 'out', 'day', 'out.jsonl.lock'))};
    takeLock(lock, 'out.jsonl', { pipeline: 'p', logger: { warn() {} }, user: 'file sink', heldAs: 'written', shared: true });
    releaseLock(lock);
  `;
  // -y: each fd as its path.
  const traced = spawnSync('strace', ['-f', '-y', '-qq', '-e', 'trace=fsync', '-o', trace, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(traced.status, 0, traced.stderr);
  const synced = [...readFileSync(trace, 'utf8').matchAll(/fsync\(\d+<([^>]*)>/g)].map((match) => match[1]!.slice(dir.length) || '/');
  // The folders holding the new ones' entries, once each: the second write made no folder.
  const folders = synced.filter((path) => !path.includes('checkpoint-')).sort();
  assert.deepEqual(folders, ['/', '/', '/new', '/new/checkpoints', '/new/checkpoints', '/out'].sort(), synced.join('\n'));
});

test('making folders: each missing level made, one there (or made meanwhile) left alone, a file in the way refused; a path under /proc fails with ENOENT instead of spinning (Node 20\'s recursive mkdir never returned there)', { timeout: 20_000 }, async (t) => {
  const dir = tempFolder(t, 'folders');
  makeFolderDurablySync(join(dir, 'a', 'b', 'c'));
  await makeFolderDurably(join(dir, 'x', 'y'));
  makeFolderDurablySync(join(dir, 'a', 'b'));
  await makeFolderDurably(join(dir, 'x'));
  assert.ok(statSync(join(dir, 'a', 'b', 'c')).isDirectory() && statSync(join(dir, 'x', 'y')).isDirectory());
  writeFileSync(join(dir, 'file'), '');
  assert.throws(() => makeFolderDurablySync(join(dir, 'file')), /EEXIST/);
  assert.throws(() => makeFolderDurablySync(join(dir, 'file', 'below')), /ENOTDIR/);
  await assert.rejects(makeFolderDurably(join(dir, 'file')), /EEXIST/);
  if (existsSync('/proc/self')) {
    assert.throws(() => makeFolderDurablySync('/proc/tributary-nothing/dl'), /ENOENT/);
    await assert.rejects(makeFolderDurably('/proc/tributary-nothing/dl'), /ENOENT/);
  }
});

test('a durable write that fails (a full disk; here a rename over a folder) leaves no temp file behind to hold the space a retry needs, and throws', async (t) => {
  const dir = tempFolder(t, 'durable-failed');
  // A folder with a file in it where the file should go: the data is written to the temp file, the rename fails.
  const file = join(dir, 'checkpoint-0000000001.json');
  mkdirSync(file);
  writeFileSync(join(file, 'inside'), 'x');
  await assert.rejects(writeFileDurably(file, ['{"a":', '1}']));
  assert.deepEqual(readdirSync(dir), ['checkpoint-0000000001.json'], 'no temp file left by the async write');
  assert.throws(() => writeFileDurablySync(file, '{"a":1}'));
  assert.deepEqual(readdirSync(dir), ['checkpoint-0000000001.json'], 'no temp file left by the sync write');
});

/** link(2) of node:fs/promises, as createFileDurably calls it, replaced by `linked` until the test ends. */
function replaceLink(t: { after(fn: () => void): void }, linked: (from: PathLike, to: PathLike, real: typeof fsPromises.link) => Promise<void>): void {
  const real = fsPromises.link;
  mock.method(fsPromises, 'link', (from: PathLike, to: PathLike) => linked(from, to, real));
  syncBuiltinESMExports();
  t.after(() => {
    mock.restoreAll();
    syncBuiltinESMExports();
  });
}

test('createFileDurably makes a new file whole and never replaces one there (another writer\'s in a shared folder): false, that file untouched, no temp file left', async (t) => {
  const dir = tempFolder(t, 'durable-create');
  const file = join(dir, 'checkpoint-0000000001.json');
  assert.equal(await createFileDurably(file, ['{"a":', Buffer.from('1}')]), true);
  assert.equal(readFileSync(file, 'utf8'), '{"a":1}');
  assert.equal(await createFileDurably(file, '{"b":2}'), false);
  assert.equal(readFileSync(file, 'utf8'), '{"a":1}', 'the first writer\'s file stands');
  assert.deepEqual(readdirSync(dir), ['checkpoint-0000000001.json']);
});

test('createFileDurably on NFS: a link retransmitted after its reply was lost answers EEXIST though it made the name; the file is ours, and made', async (t) => {
  const dir = tempFolder(t, 'durable-nfs');
  replaceLink(t, async (from, to, real) => {
    await real(from, to);
    throw Object.assign(new Error(`EEXIST: file already exists, link '${String(from)}' -> '${String(to)}'`), { code: 'EEXIST' });
  });
  const file = join(dir, 'checkpoint-0000000001.json');
  assert.equal(await createFileDurably(file, '{"a":1}'), true);
  assert.equal(readFileSync(file, 'utf8'), '{"a":1}');
  assert.deepEqual(readdirSync(dir), ['checkpoint-0000000001.json']);
});

test('createFileDurably where the filesystem has no hard links takes the name with O_EXCL and renames the data over it: made whole, and a name there is still never replaced', async (t) => {
  const dir = tempFolder(t, 'durable-no-links');
  replaceLink(t, async () => {
    throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
  });
  const file = join(dir, 'checkpoint-0000000001.json');
  assert.equal(await createFileDurably(file, ['{"a":', '1}']), true);
  assert.equal(readFileSync(file, 'utf8'), '{"a":1}');
  assert.equal(await createFileDurably(file, '{"b":2}'), false);
  assert.equal(readFileSync(file, 'utf8'), '{"a":1}');
  assert.deepEqual(readdirSync(dir), ['checkpoint-0000000001.json']);
});

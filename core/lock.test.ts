import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs, { existsSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync, type PathOrFileDescriptor } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { releaseLock, takeLock, takerTempName, type LockHolder, type LockOptions } from './lock.js';
import { tempFolder } from 'tributary/testing';

const dir = tempFolder({ after }, 'lock');

/** Lock options whose logger keeps its messages in `warned`. */
function optionsLogging(warned: string[]): LockOptions {
  const logger: Logger = pino({ level: 'warn' }, { write: (line: string) => void warned.push((JSON.parse(line) as { msg: string }).msg) });
  return { pipeline: 'p', logger, user: 'checkpoints', heldAs: 'used', shared: false };
}

/** The pid of a process that ran and exited: it runs no process now. */
async function deadPid(): Promise<number> {
  const gone = spawn(process.execPath, ['-e', '']);
  await once(gone, 'exit');
  return gone.pid!;
}

const minutesAgo = (path: string, minutes: number): void => {
  const at = new Date(Date.now() - minutes * 60_000);
  utimesSync(path, at, at);
};

test("a taker's temp file is removed only where this host can tell its taker is gone: another host's (the folder is shared) only once 10 minutes old, so its link does not fail and leave it unlocked", async () => {
  const folder = mkdtempSync(join(dir, 'temps-'));
  const lock = join(folder, 'checkpoints.lock');
  const dead = await deadPid();
  const text = '{"pid":1,"host":"elsewhere","pipeline":"p","since":"2026-01-01T00:00:00.000Z"}\n';
  // Another host's taker between writing its temp file and linking it (a pid says nothing here); and one of this host that was killed.
  const elsewhereLive = takerTempName(lock, dead, 'elsewhere');
  const elsewhereOld = takerTempName(lock, dead + 1, 'elsewhere');
  const ownDead = takerTempName(lock, dead);
  // Named by the pid alone (before this version): of any host.
  const pidOnlyLive = `${lock}.tmp-${dead}`;
  const pidOnlyOld = `${lock}.tmp-${dead + 1}`;
  for (const path of [elsewhereLive, elsewhereOld, ownDead, pidOnlyLive, pidOnlyOld]) writeFileSync(path, text);
  minutesAgo(elsewhereOld, 11);
  minutesAgo(pidOnlyOld, 11);
  assert.equal(takeLock(lock, 'checkpoint folder', optionsLogging([])), true);
  releaseLock(lock);
  const left = (path: string): string => path.slice(folder.length + 1);
  assert.deepEqual(readdirSync(folder).sort(), [left(elsewhereLive), left(pidOnlyLive)].sort());
});

test('a lock file that cannot be created for a reason other than a read-only folder fails the taking with that error, instead of going on unlocked', () => {
  const folder = mkdtempSync(join(dir, 'create-fails-'));
  // The lock's name fits, its taker's temp file's is too long: ENAMETOOLONG, a fault of the file system, not a read-only folder.
  const lock = join(folder, `${'x'.repeat(240)}.lock`);
  const warned: string[] = [];
  assert.throws(() => takeLock(lock, 'checkpoint folder', optionsLogging(warned)), (error: Error) => {
    assert.match(error.message, /^checkpoints: could not create the lock file .*x\.lock: ENAMETOOLONG/);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENAMETOOLONG');
    return true;
  });
  assert.deepEqual(warned, []);
  assert.equal(existsSync(lock), false);
  // A folder this process may not create files in (sysfs: EACCES, or EROFS where mounted read-only): unlocked, warned.
  if (existsSync('/sys/kernel')) {
    assert.equal(takeLock('/sys/kernel/tributary-test.lock', 'an output', optionsLogging(warned)), false);
    assert.deepEqual(warned, ['checkpoints: could not create the lock file /sys/kernel/tributary-test.lock; another process using an output would not be refused']);
  }
});

test("a lock of another pid namespace of this host (a container restarted after a crash or an OOM kill: same host name, often pid 1 again) is taken over at once, warned, as a process gone", async () => {
  if (!existsSync('/proc/self/ns/pid')) return; // no namespaces to tell apart
  const folder = mkdtempSync(join(dir, 'namespaces-'));
  const lock = join(folder, 'checkpoints.lock');
  // This process's own lock, as it writes it: its pid namespace and start time in it.
  assert.equal(takeLock(lock, 'checkpoint folder', optionsLogging([])), true);
  const ours = JSON.parse(readFileSync(lock, 'utf8')) as LockHolder;
  assert.equal(typeof ours.pidNamespace, 'string', 'the lock says its namespace');
  releaseLock(lock);
  const dead = await deadPid();
  // Its predecessor's pid, equal to ours or gone here: judged by it, not refused for LOCK_STALE_MS (10 minutes of a restart loop).
  for (const pid of [process.pid, dead]) {
    writeFileSync(lock, `${JSON.stringify({ ...ours, pid, pipeline: 'predecessor', pidNamespace: 'pid:[1]', started: undefined })}\n`);
    const warned: string[] = [];
    assert.equal(takeLock(lock, 'checkpoint folder', optionsLogging(warned)), true);
    assert.deepEqual(warned, ['checkpoints: took over the lock of a process that is gone (of another pid namespace: a container restarted, or one sharing this host name)']);
    releaseLock(lock);
  }
});

test('an empty lock (an older version\'s taker killed before writing it) that goes while it is being taken over is taken afresh: its absence does not read as the empty lock judged stale', async () => {
  const folder = mkdtempSync(join(dir, 'empty-gone-'));
  const lock = join(folder, 'out.jsonl.lock');
  writeFileSync(lock, '');
  minutesAgo(lock, 1);
  // Its second read, as the takeover checks it is still the stale one: another taker took it over and released it just before.
  const readFile = fs.readFileSync;
  let reads = 0;
  fs.readFileSync = ((path: PathOrFileDescriptor, options?: unknown) => {
    if (path === lock && ++reads === 2) fs.unlinkSync(lock);
    return (readFile as (path: PathOrFileDescriptor, options?: unknown) => unknown)(path, options);
  }) as typeof fs.readFileSync;
  syncBuiltinESMExports();
  try {
    const warned: string[] = [];
    assert.equal(takeLock(lock, 'out.jsonl', optionsLogging(warned)), true);
    assert.equal(reads >= 2, true, 'the lock was read again as it was taken over');
    assert.deepEqual(warned, [], 'nothing was taken over: it was gone');
    assert.equal((JSON.parse(readFileSync(lock, 'utf8')) as LockHolder).pid, process.pid);
  } finally {
    fs.readFileSync = readFile;
    syncBuiltinESMExports();
    releaseLock(lock);
  }
});

test('a lock whose holder was killed but not yet reaped by its parent (a zombie: `ps` says <defunct>) is taken over at once, as a process gone (was refused: exit 2, which the unit does not restart on)', async (t) => {
  if (!existsSync('/proc/self/stat')) return; // no /proc to say a process is a zombie
  const folder = mkdtempSync(join(dir, 'zombie-'));
  const lock = join(folder, 'checkpoints.lock');
  assert.equal(takeLock(lock, 'checkpoint folder', optionsLogging([])), true);
  const ours = JSON.parse(readFileSync(lock, 'utf8')) as LockHolder;
  releaseLock(lock);
  // `sleep 1` exits under a parent that never waits for it (the shell became `sleep 30` by then): a zombie. (With
  // `sleep 0` the shell, not yet exec'd, sometimes reaped it first: no process left to read in a loaded CI run.)
  const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => parent.kill());
  const [output] = (await once(parent.stdout, 'data')) as [Buffer];
  const zombie = Number(output.toString().trim());
  const stateOf = (): string | undefined => {
    const stat = existsSync(`/proc/${zombie}/stat`) ? readFileSync(`/proc/${zombie}/stat`, 'utf8') : undefined;
    return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  };
  for (let tries = 0; stateOf() !== 'Z' && tries < 500; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(stateOf(), 'Z', 'the child is a zombie');
  // Its lock as it wrote it: this host, this namespace, its own start time (the 22nd field of its /proc stat).
  const stat = readFileSync(`/proc/${zombie}/stat`, 'utf8');
  const started = `${ours.started!.split(':')[0]}:${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3]}`;
  writeFileSync(lock, `${JSON.stringify({ ...ours, pid: zombie, pipeline: 'killed', started })}\n`);
  const warned: string[] = [];
  assert.equal(takeLock(lock, 'checkpoint folder', optionsLogging(warned)), true);
  assert.deepEqual(warned, ['checkpoints: took over the lock of a process that is gone']);
  releaseLock(lock);
});

test('on NFS, a lock whose link was retransmitted after its reply was lost (EEXIST, though the first link made the name) is the taker\'s own: taken, not refused as another\'s', (t) => {
  const folder = tempFolder(t, 'lock-nfs');
  const lock = join(folder, 'checkpoints.lock');
  const link = fs.linkSync;
  fs.linkSync = ((from: fs.PathLike, to: fs.PathLike) => {
    link(from, to);
    throw Object.assign(new Error(`EEXIST: file already exists, link '${String(from)}' -> '${String(to)}'`), { code: 'EEXIST' });
  }) as typeof fs.linkSync;
  syncBuiltinESMExports();
  try {
    assert.equal(takeLock(lock, 'checkpoint folder', optionsLogging([])), true);
    assert.equal((JSON.parse(readFileSync(lock, 'utf8')) as LockHolder).pid, process.pid);
    assert.deepEqual(readdirSync(folder), ['checkpoints.lock'], 'no temp file left');
  } finally {
    fs.linkSync = link;
    syncBuiltinESMExports();
    releaseLock(lock);
  }
});

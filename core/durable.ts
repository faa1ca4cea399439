/**
 * Durable writes, for files a restart reads back (pipeline checkpoints, saved models): the data goes to
 * a temp file beside the target, which is fsynced, then put in place (renamed over the target, or linked
 * to a new name), and the folder fsynced. A crash or power loss at any moment leaves the old file or the
 * new one whole: a rename alone can reach the disk before the data does, leaving an empty or partial
 * file in place.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { link, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { sameFile, statIfAny } from './paths.js';

/** What is written, in order (a checkpoint's header, then its body). */
export type DurableData = string | Uint8Array | readonly (string | Uint8Array)[];

const partsOf = (data: DurableData): readonly (string | Uint8Array)[] => (typeof data === 'string' || data instanceof Uint8Array ? [data] : data);

/** Begins the hex of this process's temp names: an earlier process of its pid (a container's pid 1, restarted) wrote others. */
const processTag = randomBytes(4).toString('hex');

/**
 * The temp name beside `file`: `<file>.tmp-<pid>-<hex>`, one per write, so two writers never write into
 * one temp file (with the pid alone, processes of one pid on two hosts sharing a folder, containers' pid
 * 1, did, and two writes of one process of one name would). The pid says, on its host, whether its
 * writer still runs (a temp file left by a killed one is swept); the hex, this process's tag then the
 * write's, whether it is this process's (isOwnTempName).
 */
export const durableTempName = (file: string): string => `${file}.tmp-${process.pid}-${processTag}${randomBytes(4).toString('hex')}`;

const ownTempSuffix = new RegExp(`\\.tmp-${process.pid}-${processTag}[0-9a-f]{8}$`);

/**
 * Whether `name` (a temp file's name or path) is one {@link durableTempName} gave this process: its write
 * may be under way. One of this pid but not this process is an earlier process's, left by a kill: no
 * later write reuses its name, so only a sweep removes it.
 */
export const isOwnTempName = (name: string): boolean => ownTempSuffix.test(name);

/** The permission bits of the regular file at `file`, undefined where there is none (see {@link writeFileDurably}). */
async function modeOf(file: string): Promise<number | undefined> {
  const found = await stat(file).catch(() => undefined);
  return found?.isFile() ? found.mode & 0o7777 : undefined;
}

function modeOfSync(file: string): number | undefined {
  const found = statSync(file, { throwIfNoEntry: false });
  return found?.isFile() ? found.mode & 0o7777 : undefined;
}

/**
 * Replaces `file` with `data` durably (see the module comment), without blocking the event loop. A write
 * that fails removes its temp file: half a checkpoint left on a full disk held the room a retry (or a
 * sink) needed until the next run swept it. The new file keeps the permissions of the one it replaces,
 * and its temp file is made with no more than them: before, the temp file took the process's umask, so
 * an operator's `chmod 600` of a model file (it holds what the shop's users did) was undone, 0644 again,
 * at its next save. A new file takes the umask's, as every file the process makes.
 */
export async function writeFileDurably(file: string, data: DurableData, temp = durableTempName(file)): Promise<void> {
  const mode = await modeOf(file);
  const handle = await openTemp(temp, mode ?? 0o666);
  try {
    await writeAndSync(handle, data, mode);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined); // the write's own error is the one to report
    throw error;
  }
  await syncFolder(dirname(file));
}

/**
 * Opens the temp file `temp` new ('wx': O_CREAT | O_EXCL), never through what is at that name: a fixed temp
 * name (a saved model's `NAME.model.json.tmp`, overwritten by the next save after a crash) opened with 'w'
 * followed a symbolic link another user put there, in a folder others can write, and wrote the model into
 * the file it names. What is there is removed first (unlink removes a link, not its target).
 */
async function openTemp(temp: string, mode: number): Promise<FileHandle> {
  try {
    return await open(temp, 'wx', mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  await rm(temp, { force: true });
  return open(temp, 'wx', mode);
}

function openTempSync(temp: string, mode: number): number {
  try {
    return openSync(temp, 'wx', mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  rmSync(temp, { force: true });
  return openSync(temp, 'wx', mode);
}

/**
 * Writes `data` durably as a new file `file`, never replacing one there; resolves false, writing nothing,
 * where the name exists (the caller picks another). For a folder several writers share (scale_out's
 * partition folders, on NFS or the like), where a rename over a name another writer made a moment
 * before would silently replace its file. The temp file, fsynced, is hard-linked to `file` (link(2)
 * fails where the name exists, as O_EXCL does, atomically on NFS too), its temp name removed and the
 * folder fsynced. A filesystem without hard links gets `file` created empty with O_EXCL and the temp
 * renamed over it: readers may see it empty for a moment, and a crash in between leaves it so (a reader
 * of checksummed files finds it corrupt).
 */
export async function createFileDurably(file: string, data: DurableData, temp = durableTempName(file)): Promise<boolean> {
  // 'wx': a temp name is one write's; a file of that name is no one's to truncate.
  const handle = await open(temp, 'wx');
  let created: boolean;
  try {
    await writeAndSync(handle, data);
    created = await linkNew(temp, file);
  } finally {
    // Linked, it is a second name of the file; left (EIO), it is swept as any temp file its writer left.
    await rm(temp, { force: true }).catch(() => undefined);
  }
  if (created) await syncFolder(dirname(file));
  return created;
}

/** link(2)'s answers (their codes) where the filesystem has no hard links (FAT, some FUSE and SMB mounts). */
export const noHardLinks: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** Gives `temp`'s file the name `file` where that name is free (see {@link createFileDurably}); false where it is not. */
async function linkNew(temp: string, file: string): Promise<boolean> {
  try {
    await link(temp, file);
    return true;
  } catch (error) {
    const code = String((error as NodeJS.ErrnoException).code);
    // NFS: a LINK retransmitted after its reply was lost answers EEXIST though the first made the name: ours then.
    if (code === 'EEXIST') return sameFile(temp, file); // by device and inode (distinct names: false where either is gone)
    if (!noHardLinks.has(code)) throw error;
  }
  try {
    await (await open(file, 'wx')).close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await rename(temp, file); // over the empty file just made: this write's own
  } catch (error) {
    await rm(file, { force: true }).catch(() => undefined);
    throw error;
  }
  return true;
}

/**
 * Whether chmod's error says the filesystem keeps no Unix permissions (FAT, some SMB mounts: its files have none
 * to keep). The temp file is this process's own, so EPERM is no other owner's file.
 */
const keepsNoPermissions = (error: unknown): boolean => ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(String((error as NodeJS.ErrnoException).code));

/** Writes `data` to a temp file just opened (giving it `mode` first, where given), fsyncs it and closes it (closed whatever fails). */
async function writeAndSync(handle: FileHandle, data: DurableData, mode?: number): Promise<void> {
  try {
    // open's mode passes through the umask, which may take bits the replaced file had (0664 under 022), and a
    // temp file there before (a fixed temp name) keeps its own.
    if (mode !== undefined) {
      await handle.chmod(mode).catch((error: unknown) => {
        if (!keepsNoPermissions(error)) throw error;
      });
    }
    for (const part of partsOf(data)) await handle.writeFile(part);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** {@link writeFileDurably} for callers that cannot wait (a stage's synchronous close). */
export function writeFileDurablySync(file: string, data: DurableData, temp = durableTempName(file)): void {
  const mode = modeOfSync(file);
  const fd = openTempSync(temp, mode ?? 0o666);
  try {
    try {
      // As writeFileDurably: the replaced file's permissions, whatever the umask.
      if (mode !== undefined) {
        try {
          fchmodSync(fd, mode);
        } catch (error) {
          if (!keepsNoPermissions(error)) throw error;
        }
      }
      for (const part of partsOf(data)) {
        const bytes = typeof part === 'string' ? Buffer.from(part) : part;
        for (let written = 0; written < bytes.byteLength; ) written += writeSync(fd, bytes, written);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (error) {
    try {
      rmSync(temp, { force: true });
    } catch {
      // The write's own error is the one to report.
    }
    throw error;
  }
  syncFolderSync(dirname(file));
}

/**
 * Makes `folder`, and any folder above it that is missing, and fsyncs the folder above each one made:
 * a new folder's entry is in its parent, and until that is synced a crash can lose the folder with the
 * files written durably in it (a new checkpoint folder, its first checkpoint). Nothing to sync where it was there.
 * One level at a time, not `mkdir -p`: Node 20's recursive mkdir never returns where mkdir answers
 * ENOENT under a parent that is there (procfs: a path under /proc spun at full CPU, deaf to SIGTERM).
 */
export async function makeFolderDurably(folder: string): Promise<void> {
  const missing = missingFolders(folder);
  // Something there that is not a folder: mkdir's own EEXIST says so, as `mkdir -p` would.
  if (missing.length === 0 && !isFolder(folder)) await mkdir(folder);
  for (const made of missing) {
    try {
      await mkdir(made);
    } catch (error) {
      if (!madeMeanwhile(error, made)) throw error;
      continue;
    }
    await syncFolder(dirname(made));
  }
}

/** {@link makeFolderDurably} for callers that cannot wait (taking a lock, opening a sink's file). */
export function makeFolderDurablySync(folder: string): void {
  const missing = missingFolders(folder);
  if (missing.length === 0 && !isFolder(folder)) mkdirSync(folder);
  for (const made of missing) {
    try {
      mkdirSync(made);
    } catch (error) {
      if (!madeMeanwhile(error, made)) throw error;
      continue;
    }
    syncFolderSync(dirname(made));
  }
}

/** The folders missing on the way to `folder`, the topmost first (none where it is there). */
function missingFolders(folder: string): string[] {
  const missing: string[] = [];
  for (let at = resolve(folder); !existsSync(at); at = dirname(at)) {
    missing.unshift(at);
    if (dirname(at) === at) break;
  }
  return missing;
}

const isFolder = (path: string): boolean => statIfAny(path)?.isDirectory() === true;

/** An EEXIST from mkdir of `folder` where a folder is there now (another process made it first); not a file there. */
const madeMeanwhile = (error: unknown, folder: string): boolean => (error as NodeJS.ErrnoException).code === 'EEXIST' && isFolder(folder);

async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function syncFolderSync(folder: string): void {
  const fd = openSync(folder, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

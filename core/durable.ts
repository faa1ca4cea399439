/**
 * Durable file replacement, for files a restart reads back (pipeline checkpoints, saved models): the
 * data goes to a temp file beside the target, which is fsynced, renamed over the target, and the
 * folder fsynced. A crash or power loss at any moment leaves the old file or the new one whole: a
 * rename alone can reach the disk before the data does, leaving an empty or partial file in place.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** What is written, in order (a checkpoint's header, then its body). */
export type DurableData = string | Uint8Array | readonly (string | Uint8Array)[];

const partsOf = (data: DurableData): readonly (string | Uint8Array)[] => (typeof data === 'string' || data instanceof Uint8Array ? [data] : data);

/** The temp name beside `file` (per process, so two processes never write into one temp file). */
export const durableTempName = (file: string): string => `${file}.tmp-${process.pid}`;

/** Replaces `file` with `data` durably (see the module comment), without blocking the event loop. */
export async function writeFileDurably(file: string, data: DurableData, temp = durableTempName(file)): Promise<void> {
  const handle = await open(temp, 'w');
  try {
    for (const part of partsOf(data)) await handle.writeFile(part);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  await syncFolder(dirname(file));
}

/** {@link writeFileDurably} for callers that cannot wait (a stage's synchronous close). */
export function writeFileDurablySync(file: string, data: DurableData, temp = durableTempName(file)): void {
  const fd = openSync(temp, 'w');
  try {
    for (const part of partsOf(data)) {
      const bytes = typeof part === 'string' ? Buffer.from(part) : part;
      for (let written = 0; written < bytes.byteLength; ) written += writeSync(fd, bytes, written);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  syncFolderSync(dirname(file));
}

/**
 * Makes `folder`, and any folder above it that is missing, and fsyncs the folder above each one made:
 * a new folder's entry is in its parent, and until that is synced a crash can lose the folder with the
 * files written durably in it (a new checkpoint folder, its first checkpoint). Nothing to sync where it was there.
 */
export async function makeFolderDurably(folder: string): Promise<void> {
  for (const parent of parentsOfMade(folder, await mkdir(folder, { recursive: true }))) await syncFolder(parent);
}

/** {@link makeFolderDurably} for callers that cannot wait (taking a lock). */
export function makeFolderDurablySync(folder: string): void {
  for (const parent of parentsOfMade(folder, mkdirSync(folder, { recursive: true }))) syncFolderSync(parent);
}

/** The folders holding the entries of those a recursive mkdir of `folder` made, `first` the topmost of them (mkdir's result). */
function parentsOfMade(folder: string, first: string | undefined): string[] {
  if (first === undefined) return [];
  const top = resolve(first);
  const parents: string[] = [];
  for (let made = resolve(folder); ; made = dirname(made)) {
    parents.push(dirname(made));
    if (made === top || made === dirname(made)) return parents;
  }
}

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

/**
 * Durable file replacement, for files a restart reads back (pipeline checkpoints, saved models): the
 * data goes to a temp file beside the target, which is fsynced, renamed over the target, and the
 * folder fsynced. A crash or power loss at any moment leaves the old file or the new one whole: a
 * rename alone can reach the disk before the data does, leaving an empty or partial file in place.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

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
  const folder = await open(dirname(file), 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
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
  const folder = openSync(dirname(file), 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
}

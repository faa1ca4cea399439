import { realpathSync, statSync, type BigIntStats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The installed package's root folder (this file is compiled to dist/core/paths.js). */
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

/** A path's stat; undefined where nothing is there, also where a folder on its way is a file (ENOTDIR). */
export function statIfAny(path: string): BigIntStats | undefined {
  try {
    return statSync(path, { bigint: true, throwIfNoEntry: false });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw error;
  }
}

/**
 * Whether two absolute paths name one file: by device and inode where both are regular files (a hard
 * link, a link to the file, a path written another way), else by name once links to their folders are
 * followed (one not there yet, which a writer would create; a FIFO). A sink and a source of one file,
 * or a backtest's input and an output, are found so before anything is replaced.
 */
export function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  const [one, other] = [a, b].map(statIfAny);
  if (one?.isFile() && other?.isFile()) return one.dev === other.dev && one.ino === other.ino;
  const real = (path: string): string => {
    try {
      return join(realpathSync(dirname(path)), basename(path));
    } catch {
      return path; // its folder is not there yet (a sink creates it)
    }
  };
  return real(a) === real(b);
}

/**
 * Why an input file cannot be read at all, as a config error's message: nothing there (`no such file:
 * PATH`), or a folder. Undefined where something readable may be there (a file, a FIFO, a device). The
 * file source's factory refuses its inputs so, and `tributary validate` says the same of every source's
 * PluginSpec.inputFiles.
 */
export function inputFileProblem(path: string): string | undefined {
  const stat = statIfAny(path);
  // A shell's pattern (a GA4 export's events_*.json shards) is read as a name no file has: said so, with the way to list them.
  if (stat === undefined) return /[*?]/.test(basename(path)) ? `no such file: ${path} (a path is read as written, with no wildcards: list the files, path: [a.json, b.json], read one after another)` : `no such file: ${path}`;
  if (stat.isDirectory()) return `${path} is a folder; name its files`;
  return undefined;
}

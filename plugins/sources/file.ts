/**
 * `file`: reads JSON lines or CSV (with or without a header row, any delimiter, gzip) from one or
 * more files in order, mapping each record to the canonical event through config alone.
 */
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { defineSource, type ClickEvent, type SourcePosition } from 'tributary';
import { csvColumns, decodeProperties, decodeStream, type DecodeConfig, type RecordFormat } from './decode.js';

export interface FileSourceConfig extends DecodeConfig {
  path: string | string[];
  gzip?: boolean;
}

export function formatOf(path: string, configured: RecordFormat | undefined): RecordFormat {
  return configured ?? (/\.(csv|tsv)(\.gz)?$/i.test(path) ? 'csv' : 'jsonl');
}

export default defineSource<FileSourceConfig>({
  name: 'file',
  status: 'stable',
  summary: 'Reads JSON lines or CSV from one or more files, in order.',
  description:
    'Each line (JSONL) or row (CSV) is mapped to the canonical event by `mapping`. A line that is not valid JSON, ' +
    'a row with the wrong number of fields, or a record the mapping rejects goes to the dead-letter sink with its ' +
    'file and line; one that is not UTF-8 text (a Latin-1 byte) goes there as its exact bytes, base64 (`encoding: base64`). ' +
    'Files ending in `.gz` are decompressed.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: {
      path: {
        description: 'File to read, or a list of files read one after another. Relative to the pipeline file.',
        anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }],
      },
      gzip: { type: 'boolean', description: 'Decompress with gzip. Default: when the name ends in .gz.' },
      ...decodeProperties,
    },
  },
  examples: [
    { path: 'events.jsonl' },
    {
      path: '../shared/data/rees46/2019-Oct_head.csv',
      format: 'csv',
      mapping: {
        fields: { user_id: 'user_id', session_id: 'user_session', time: 'event_time', type: 'event_type', item_id: 'product_id', category: 'category_code', price: 'price' },
        time_format: "yyyy-MM-dd HH:mm:ss 'UTC'",
        attributes: ['brand'],
      },
    },
  ],
  create(config, context) {
    const paths = (Array.isArray(config.path) ? config.path : [config.path]).map((path) => resolve(context.baseDir, path));
    // A missing input is a mistake in the pipeline (or in backtest's --input): said before the
    // pipeline starts, so no sink has replaced its output yet. Not when resuming: files already read
    // may have been archived since (a file missing ahead of the position fails the source as it comes).
    for (const path of context.resuming ? [] : paths) {
      const stat = statSync(path, { throwIfNoEntry: false });
      if (stat === undefined) throw new Error(`no such file: ${path}`);
      if (stat.isDirectory()) throw new Error(`${path} is a folder; name its files`);
    }
    // Resume point: index of the file, the last line of it already delivered, and (not gzipped)
    // the byte after that line, where a resumed run starts reading instead of reading through
    // every line before it.
    let fileIndex = 0;
    let linesDone = 0;
    let bytesDone: number | undefined = 0;
    let open: Readable | undefined;
    /** Where the last file ended: the position once every file was read, so a resumed run reads what was appended since. */
    let lastFileEnd: { line: number; byte: number | undefined; unreadable: boolean } | undefined;
    /** The line after which the current file's rest was dead-lettered as unreadable (by this run or the one resumed). */
    let unreadableAfter: number | undefined;
    return {
      async *read(): AsyncGenerator<ClickEvent[]> {
        for (; fileIndex < paths.length; fileIndex++, linesDone = 0, bytesDone = 0) {
          const path = paths[fileIndex]!;
          const gzip = config.gzip ?? path.endsWith('.gz');
          const format = formatOf(path.replace(/\.gz$/, ''), config.format);
          const seekable = !gzip;
          let startByte = 0;
          if (seekable && linesDone > 0 && bytesDone !== undefined && bytesDone > 0) {
            if (await followsLineEnd(path, bytesDone, format === 'csv')) startByte = bytesDone;
            else context.logger.warn({ file: path, line: linesDone, byte: bytesDone }, 'file: the resume point is not at a line start (the file changed?); resuming by line count');
          }
          // A CSV stream that starts mid-file has no header row: its columns are read first.
          const start = { line: startByte > 0 ? linesDone + 1 : 1, columns: startByte > 0 && format === 'csv' ? await csvColumns(() => createReadStream(path), config.csv, config.max_record_bytes) : undefined };
          const raw = createReadStream(path, { highWaterMark: 1 << 20, start: startByte });
          open = gzip ? raw.pipe(createGunzip()) : raw;
          if (gzip) raw.on('error', (error) => open!.destroy(error));
          const target = { source: context.label, file: path };
          try {
            for await (const { events, throughLine, throughByte } of decodeStream(open, format, config, target, context, context.batchSize, linesDone, start)) {
              // Position counts rejected lines too: a resumed run neither re-reads nor re-rejects them.
              linesDone = throughLine;
              bytesDone = seekable && throughByte !== undefined ? startByte + throughByte : undefined;
              if (events.length > 0) yield events;
            }
          } catch (error) {
            // Compressed data that ends early or is corrupt is bad input, not a failed source: the lines
            // before it were delivered, the rest of the file is one dead letter, and reading goes on.
            const code = (error as NodeJS.ErrnoException).code;
            if (!gzip || typeof code !== 'string' || !code.startsWith('Z_')) throw error;
            // A resumed run reads a cut-short last file up to its cut again: its rest was dead-lettered once.
            if (unreadableAfter !== linesDone) {
              context.deadLetter({
                reason: `unreadable gzip data after line ${linesDone} (${(error as Error).message}, ${raw.bytesRead} compressed bytes read): the rest of the file is skipped`,
                raw: '',
                origin: { source: context.label, file: path, line: linesDone + 1 },
              });
            }
            unreadableAfter = linesDone;
          }
          open = undefined;
          if (fileIndex === paths.length - 1) lastFileEnd = { line: linesDone, byte: bytesDone, unreadable: unreadableAfter === linesDone };
          unreadableAfter = undefined;
        }
      },
      position(): SourcePosition {
        if (fileIndex >= paths.length && lastFileEnd !== undefined) {
          const { line, byte, unreadable } = lastFileEnd;
          return { file: paths[paths.length - 1]!, fileIndex: paths.length - 1, line, ...(byte !== undefined ? { byte } : {}), ...(unreadable ? { unreadable: true } : {}) };
        }
        return { file: paths[fileIndex] ?? null, fileIndex, line: linesDone, ...(bytesDone !== undefined ? { byte: bytesDone } : {}) };
      },
      seek(position) {
        // The position is a line of one file: found by name, wherever the list has it now (older files may
        // have been taken off its front). A list without it (a new month's file in place of the last) is
        // read from its start: another file's line number says nothing about where to start in this one.
        const saved = typeof position.file === 'string' ? position.file : undefined;
        const at = saved === undefined ? Number(position.fileIndex ?? 0) : indexOfFile(paths, saved);
        if (at < 0) {
          context.logger.warn({ checkpointFile: saved, line: position.line, files: paths }, 'file: the checkpoint was reading a file this source no longer lists; its files are read from their start');
          return;
        }
        fileIndex = at;
        linesDone = Number(position.line ?? 0);
        // A checkpoint from before byte positions (or of a gzip file) resumes by line count.
        bytesDone = typeof position.byte === 'number' ? position.byte : undefined;
        unreadableAfter = position.unreadable === true ? linesDone : undefined;
      },
      async close() {
        open?.destroy();
      },
    };
  },
});

/** Where `file` is in `paths`: by its path, else by the file the paths lead to (one reached through another link or folder). */
function indexOfFile(paths: readonly string[], file: string): number {
  const exact = paths.indexOf(file);
  if (exact >= 0) return exact;
  const real = (path: string): string | undefined => {
    try {
      return realpathSync(path);
    } catch {
      return undefined; // gone (archived): only its path can match
    }
  };
  const target = real(file);
  return target === undefined ? -1 : paths.findIndex((path) => real(path) === target);
}

/**
 * True when the bytes before `offset` are a line end: `offset` starts a line (the file did not change
 * under it). A line end is a `\n`, and in CSV a `\r` too (not the one of a `\r\n`: `offset` would be
 * inside a line end).
 */
async function followsLineEnd(path: string, offset: number, crEndsLines: boolean): Promise<boolean> {
  try {
    const handle = await openFile(path, 'r');
    try {
      const bytes = Buffer.alloc(2);
      const { bytesRead } = await handle.read(bytes, 0, 2, offset - 1);
      return bytesRead >= 1 && (bytes[0] === 10 || (crEndsLines && bytes[0] === 13 && (bytesRead === 1 || bytes[1] !== 10)));
    } finally {
      await handle.close();
    }
  } catch {
    return false; // unreadable: the line-count path reports it as it reads
  }
}

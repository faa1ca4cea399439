/**
 * `file`: reads JSON lines or CSV (with or without a header row, any delimiter, gzip) from one or
 * more files in order, mapping each record to the canonical event through config alone.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, createReadStream, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { Socket } from 'node:net';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { isUtf8 } from 'node:buffer';
import {
  csvColumns,
  csvConfigProblems,
  decodeProperties,
  decodeRecords,
  defineSource,
  formatOfFile,
  gunzipUpToDamage,
  inputFileProblem,
  isTabSeparatedFile,
  PluginConfigError,
  unknownEventTypeWarning,
  type ClickEvent,
  type DecodeConfig,
  type GzipDamage,
  type PluginContext,
  type SourcePosition,
} from 'tributary';

export interface FileSourceConfig extends DecodeConfig {
  path: string | string[];
  gzip?: boolean;
}

/** Whether a file is read through gzip: `gzip`, else its name (`.gz`, `.GZ`). */
const isGzipped = (path: string, configured: boolean | undefined): boolean => configured ?? /\.gz$/i.test(path);

/** The decode config of one file: a `.tsv` file's delimiter is a tab, unless `csv.delimiter` says otherwise. */
function decodeConfigOf(path: string, config: FileSourceConfig): FileSourceConfig {
  if (config.csv?.delimiter !== undefined || !isTabSeparatedFile(path)) return config;
  return { ...config, csv: { ...config.csv, delimiter: '\t' } };
}

/** The files a config reads, in order, resolved against the pipeline file's folder. */
const pathsOf = (config: FileSourceConfig, baseDir: string): string[] => (Array.isArray(config.path) ? config.path : [config.path]).map((path) => resolve(baseDir, path));

/**
 * A file's records, for a progress total: its lines that are not blank (no record is read from those),
 * decompressed where it is read through gzip, less a CSV header row. A CSV field holding a line end makes
 * it an estimate. Damaged gzip data counts the lines the source reads (the same gunzip): those before
 * it and those of the members read on after it. An unreadable file counts what was read.
 */
async function countLines(path: string, gzip: boolean, headerRow: boolean): Promise<number> {
  let records = 0;
  let content = false; // the current line has a byte that is not blank
  const raw = createReadStream(path);
  const stream = gzip ? gunzipUpToDamage(raw, { readFrom: (byte) => createReadStream(path, { start: byte }), resync: true }) : raw;
  try {
    for await (const chunk of stream) {
      let start = 0;
      for (;;) {
        const end = chunk.indexOf(10, start);
        const stop = end < 0 ? chunk.length : end;
        for (let i = start; !content && i < stop; i++) if (chunk[i]! > 32) content = true;
        if (end < 0) break;
        if (content) records++;
        content = false;
        start = end + 1;
      }
    }
  } catch {
    // Counted up to the unreadable part.
  } finally {
    raw.destroy();
  }
  if (content) records++;
  return Math.max(0, records - (headerRow ? 1 : 0));
}

export default defineSource<FileSourceConfig>({
  name: 'file',
  emits: ['event'],
  status: 'stable',
  summary: 'Reads JSON lines or CSV from one or more files, in order.',
  description:
    'Each line (JSONL) or row (CSV) is mapped to the canonical event by `mapping`. Without one, the mapping\'s defaults read `user_id`, `time` (ISO 8601), `type`, ' +
    '`session_id`, `item_id`, `category` and `price`; to read the events a `file` sink wrote (camelCase names, epoch milliseconds: a pipeline chained to another through a file), say `mapping: canonical`, ' +
    'which reads them as a backtest of a pipeline whose source takes no mapping (`synthetic`) reads its input; without it such a line is dead-lettered, its reason naming `mapping: canonical`. A line that is not valid JSON, ' +
    'a row with the wrong number of fields, or a record the mapping rejects goes to the dead-letter sink with its ' +
    'file and line; one that is not UTF-8 text (a Latin-1 byte) goes there as its exact bytes, base64 (`encoding: base64`). ' +
    'Text is UTF-8 (a byte order mark is passed over); a file that starts with a UTF-16 or UTF-32 byte order mark (Excel\'s "Unicode Text") fails the source, its error naming the `iconv` command that converts it. ' +
    'A CSV without a column the mapping names (a misspelt `price: Price` would leave every event without a price) is logged as a warning, once per file, with its columns (a header read as one column holding `;`, a tab or `|` names that as the likely `csv.delimiter`). ' +
    'Files ending in `.gz` are decompressed. A damaged one (cut short, corrupt compressed data, junk after its members, a wrong CRC) gives every line before the damage (for a damaged member, the lines of the members before it: see below), and one dead letter naming the compressed byte the damage is at and zlib\'s problem (its `raw`: the text read after the last whole line, or the damaged member\'s text; where it begins with the rest of a line longer than 64 KB whose start was read, its reason says so); reading then goes on at the next gzip member after it (the `file` sink writes a member per flush, so a damaged one costs its own lines only): the dead letter names the compressed byte it resumed at, and the line number the next line gets (the damaged text is not counted: line numbers go on from the last line read). A match of a member\'s first bytes that is no member (it fails to inflate or its CRC) is read past in the same dead letter. A damaged range is dead-lettered as the reading passes it, and a checkpoint after it records that it was: a resumed run reads the same lines after it and does not dead-letter it again. Where no member follows, the rest of the file is skipped (so said) and the next file is read. ' +
    'A member\'s lines are held until its CRC checks (up to 16 MiB of its text; the `file` sink\'s members end at 4 MiB): a member whose CRC fails (a flipped bit that inflates without error), or whose compressed data is corrupt (zlib can inflate garbage before it fails: a member cut short and followed by the next one inflates some of the next one\'s bytes, and a garbage line may parse as an event), gives none of them: they are the dead letter\'s `raw` (for corrupt data, every line zlib decodes before it, from a FIFO too while the member\'s compressed bytes so far are under 4 MiB, kept for that; past them, up to 16 KB of text before it may be lost), its reason naming how many. A member cut short at the file\'s end (a file still being written) gives its lines: they are what was compressed, as far as it goes. Past 16 MiB of a member, lines go on as they are inflated, and the dead letter of a damage after them names them as possibly wrong. A FIFO\'s lines are held as a file\'s, but no longer than 1 s of waiting on its writer (for more of the member\'s data, or for its 8-byte trailer after it), the waits since the first of them was held added up (a live writer, such as a `file` sink flushing every second, may take minutes to end a member: its lines go on within about a second of its pausing, and those of one writing a little every 100 ms once ten such pauses add up; a writer streaming a whole file keeps the source busy, not waiting, however slow the machine, and its members are checked whole): past it they go on, named so alike. Zero bytes after the last member (a tar or `dd` block\'s padding) are passed over, as `gzip -d` does. A checkpoint\'s position names its file by path, inode and first bytes: ' +
    'renamed since (log rotation), the file resumes where it was wherever `path` lists it now; another file at its path is read from its start. ' +
    'A file read to its end stays the position until the next one is open, and after the last one (a resumed run reads what was appended since). ' +
    'A last line without a line end is read as a record at the end of the file, but the position stays before it: a resumed run reads it again whole if a writer has added to it since (logged), and passes it over if not. A FIFO (or a device) is read as a stream: a resumed run reads the stream it opens from its start. A FIFO waits for a writer, and for its lines, until the writer closes it or the run stops: a stop (SIGTERM) ends its reading at once.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: {
      path: {
        description: 'File to read, or a list of files read one after another. Relative to the pipeline file. Read as written: `*` and `?` are no wildcards (`events_*.json` names no file; list the shards).',
        anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }],
      },
      gzip: { type: 'boolean', description: 'Decompress with gzip. Default: when the name ends in .gz (any case).' },
      ...decodeProperties,
      // Defaults by the file's name (formatOfFile, decodeConfigOf), where decodeRecords' are jsonl and `,`.
      format: { ...decodeProperties.format, description: 'Record format. Default: csv for .csv/.tsv (and .gz of them) files, else jsonl.' },
      csv: {
        ...decodeProperties.csv,
        properties: {
          ...decodeProperties.csv.properties,
          delimiter: { ...decodeProperties.csv.properties.delimiter, description: 'Field delimiter, e.g. `;` or `\\t`. Default: `,`, and a tab for a file named `.tsv` (`.tsv.gz`). One holding a line end is a config error.' },
        },
      },
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
  checkPipeline: (config) => csvConfigProblems(config.csv),
  inputFiles: (config) => (typeof config.path === 'string' ? [{ path: config.path, field: 'path' }] : config.path.map((path, index) => ({ path, field: `path[${index}]` }))),
  async countRecords(config, baseDir) {
    let records = 0;
    for (const path of pathsOf(config, baseDir)) {
      // A FIFO or a device would be consumed by counting it: its records are not known before.
      if (statSync(path, { throwIfNoEntry: false })?.isFile() !== true) return undefined;
      const headerRow = formatOfFile(path, config.format) === 'csv' && decodeConfigOf(path, config).csv?.header !== false;
      records += await countLines(path, isGzipped(path, config.gzip), headerRow);
    }
    return records;
  },
  create(config, context) {
    const paths = pathsOf(config, context.baseDir);
    // A missing input is a mistake in the pipeline (or in backtest's --input): said before the
    // pipeline starts, so no sink has replaced its output yet. Not when resuming: files already read
    // may have been archived since (a file missing ahead of the position fails the source as it comes).
    // At the field that names it (`path`, `path[1]`), as a schema error is.
    for (const [index, path] of (context.resuming ? [] : paths).entries()) {
      const problem = inputFileProblem(path);
      if (problem !== undefined) throw new PluginConfigError(Array.isArray(config.path) ? `path[${index}]` : 'path', problem);
    }
    // Resume point: index of the file, the last line of it already delivered, and (not gzipped)
    // the byte after that line, where a resumed run starts reading instead of reading through
    // every line before it. A file read to its end stays the position until the next one is open
    // (its identity known), and after the last one: a resumed run reads what was appended since.
    let fileIndex = 0;
    let linesDone = 0;
    let bytesDone: number | undefined = 0;
    /** The file being read: its stream, and what is decoded (the same, or its gunzip); both go when reading stops. */
    let open: { raw: Readable; decoded: Readable } | undefined;
    /** The line after which the current file's rest was dead-lettered as unreadable (by this run or the one resumed). */
    let unreadableAfter: number | undefined;
    /**
     * The damaged ranges of the current gzip file read past (a member after them read on) that are
     * dead-lettered, by this run or the one resumed: a resumed run's gunzip finds them again, in order.
     */
    let rangesSkipped = 0;
    /**
     * The length of the record after the position that the file ended inside, read without its line end
     * (DecodedBatch.unterminated): the position stays before it, as a writer may not be done with it.
     */
    let unterminated: number | undefined;
    /** Which file the position is in (its inode and first bytes), so a resume finds it renamed; unknown before it is opened. */
    let identity: FileIdentity | undefined;
    // One for all the files: an unknown event type is told once for the source, not once per file.
    const onUnknownType = unknownEventTypeWarning(context.logger);
    const signal = context.signal;
    return {
      async *read(): AsyncGenerator<ClickEvent[]> {
        for (let next = fileIndex; next < paths.length; next++) {
          const path = paths[next]!;
          const gzip = isGzipped(path, config.gzip);
          const format = formatOfFile(path, config.format);
          const fileConfig = decodeConfigOf(path, config);
          if (signal?.aborted) return;
          // Read through the descriptor its identity is taken from: renamed while read, it is still this file.
          const input = await openInput(path);
          const handle = 'file' in input ? input.file : undefined;
          let startByte = 0;
          let columns: string[] | undefined;
          let seekable = false;
          /** Moves the position to this file, once. */
          let enter: (() => void) | undefined;
          /** Which file this is (undefined for a FIFO or a device). */
          let opened: FileIdentity | undefined;
          try {
            opened = identityOf(handle?.fd ?? input.fifo!);
            // A FIFO or a device is a stream that starts anew at each open: a position's line in it (a
            // resumed run, another read of this source) counts lines of a stream gone, not of this one.
            const stream = opened === undefined;
            seekable = handle !== undefined && !gzip && !stream;
            // Only now, its identity known, does the position move to this file. Moved before the open, a
            // checkpoint taken meanwhile named a file by its path alone: renamed before the resume (log
            // rotation), that file was skipped, and another read in its place.
            // A FIFO's, at its first bytes (or its end): opened at once (openInput), it may wait long for a
            // writer, as its open did before, and meanwhile a checkpoint names the file before it, read to its end.
            enter = (): void => {
              enter = undefined;
              if (next !== fileIndex || stream) {
                fileIndex = next;
                linesDone = 0;
                bytesDone = 0;
                unreadableAfter = undefined;
                unterminated = undefined;
                rangesSkipped = 0;
              }
              identity = opened;
            };
            if (handle !== undefined) enter();
            if (seekable && handle !== undefined && linesDone > 0 && bytesDone !== undefined && bytesDone > 0) {
              if (await followsLineEnd(handle, bytesDone, format === 'csv')) startByte = bytesDone;
              else context.logger.warn({ file: path, line: linesDone, byte: bytesDone }, 'file: the resume point is not at a line start (the file changed?); resuming by line count');
            }
            // A CSV stream that starts mid-file has no header row: its columns are read first.
            if (startByte > 0 && format === 'csv' && handle !== undefined) columns = await csvColumns(() => fromByte(handle, 0), fileConfig.csv, config.max_record_bytes, path);
          } catch (error) {
            if (handle !== undefined) await handle.close();
            else closeSync(input.fifo!);
            throw error;
          }
          const start = { line: startByte > 0 ? linesDone + 1 : 1, columns };
          // No start at 0: reads at a position fail on a FIFO (ESPIPE), and the descriptor is at 0 (only positional reads used it).
          const raw: Readable & { bytesRead: number } =
            handle !== undefined
              ? createReadStream('', { fd: handle, highWaterMark: 1 << 20, ...(startByte > 0 ? { start: startByte } : {}) })
              : new Socket({ fd: input.fifo!, readable: true, writable: false });
          /** Where the gzip data is damaged: the text before it was read, the rest of the file is not. */
          let damage: GzipDamage | undefined;
          // Damaged ranges read past, in order: dead-lettered as the reading passes their line (a checkpoint after it has them sent).
          let rangesFound = 0;
          const ranges: GzipDamage[] = [];
          const onDamage = (found: GzipDamage): void => {
            if (found.resumedAt === undefined) damage = found;
            else if (rangesFound++ >= rangesSkipped) ranges.push(found);
          };
          /** The ranges before line `through` (through it: `through` is a last batch's) dead-lettered. */
          const deadLetterRanges = (through: number): void => {
            while (ranges.length > 0 && ranges[0]!.lineEndsBefore <= through) {
              deadLetterGzipDamage(ranges.shift()!, path, context);
              rangesSkipped++;
            }
          };
          // Corrupt deflate data is inflated again from its member's start (a file's, still this one): zlib's failing call's text.
          const file = opened;
          const again = file === undefined ? undefined : (byte: number): AsyncIterable<Buffer> => fileFrom(path, file, byte);
          // A FIFO's lines are held as a file's, but no longer than FIFO_GZIP_MAX_HOLD_MS: a live writer's member may take long to end (the file sink's ends at 4 MiB of text).
          const gunzipOptions = { onDamage, resync: true, ...(again === undefined ? { maxHoldMs: FIFO_GZIP_MAX_HOLD_MS } : { readFrom: again }) };
          const decoded = gzip ? Readable.from(gunzipUpToDamage(raw, gunzipOptions), { objectMode: false }) : raw;
          open = { raw, decoded };
          // A stop ends the reading at once, as stdin's does: a FIFO's writer may stay quiet for good.
          const stop = (): void => {
            decoded.destroy(signal!.reason instanceof Error ? signal!.reason : new Error('stopped'));
            raw.destroy(); // what the gunzip waits on
          };
          signal?.addEventListener('abort', stop, { once: true });
          if (signal?.aborted) stop(); // during the open
          try {
            const from = enter === undefined ? { skipThrough: linesDone, unterminated } : { skipThrough: 0, unterminated: undefined };
            for await (const batch of decodeRecords(decoded, fileConfig, context, { file: path, format, start, onUnknownType, ...from })) {
              enter?.();
              const { events, throughLine, throughByte } = batch;
              // Position counts rejected lines too: a resumed run neither re-reads nor re-rejects them.
              linesDone = throughLine;
              bytesDone = seekable && throughByte !== undefined ? startByte + throughByte : undefined;
              unterminated = batch.unterminated;
              deadLetterRanges(throughLine);
              // Empty when all of it was dead-lettered: yielded all the same, so the runtime waits for the dead-letter sink's room (Source.read).
              yield events;
            }
            enter?.();
            deadLetterRanges(Infinity);
            // Damaged compressed data is bad input, not a failed source: the lines before it were delivered,
            // the rest of the file is one dead letter, and reading goes on. A resumed run reads a damaged
            // last file up to its damage again: its rest was dead-lettered once.
            // A last line decoded without its line end is one the damage cut (longer than the text gunzipUpToDamage holds): the damage is after it, as the gunzip counts.
            const cutLine = unterminated === undefined ? 0 : 1;
            if (damage !== undefined && unreadableAfter !== linesDone) deadLetterGzipDamage({ ...damage, lineEndsBefore: linesDone + cutLine }, path, context);
            if (damage !== undefined) unreadableAfter = linesDone;
          } catch (error) {
            // The input destroyed by the stop: the end of this run's reading, not a failure of the file.
            if (signal?.aborted) return;
            throw error;
          } finally {
            // Left early too (a stop, a failure): a gunzip destroyed unpipes the file stream, which would
            // keep the file open (until the GC closes its handle) unless destroyed itself.
            signal?.removeEventListener('abort', stop);
            raw.destroy();
            open = undefined;
          }
        }
      },
      position(): SourcePosition {
        const unreadable = unreadableAfter !== undefined && unreadableAfter === linesDone;
        return {
          file: paths[fileIndex] ?? null,
          fileIndex,
          line: linesDone,
          ...(bytesDone !== undefined ? { byte: bytesDone } : {}),
          ...(unterminated !== undefined ? { unterminated } : {}),
          ...(unreadable ? { unreadable: true } : {}),
          ...(rangesSkipped > 0 ? { gzipRangesSkipped: rangesSkipped } : {}),
          ...identity,
        };
      },
      seek(position) {
        // The position is a line of one file: found wherever the list has it now (older files may have been
        // taken off its front; rotation renamed it), by its inode and first bytes, or by name. A list without
        // it (a new month's file in place of the last; a new log where the rotated one was) is read from its
        // start: another file's line number says nothing about where to start in this one.
        const saved = typeof position.file === 'string' ? position.file : undefined;
        const savedIdentity = identityIn(position);
        const byte = typeof position.byte === 'number' ? position.byte : undefined;
        const at = saved === undefined ? Number(position.fileIndex ?? 0) : indexOfFile(paths, saved, savedIdentity, byte ?? 0);
        if (at < 0) {
          const replaced = savedIdentity !== undefined && indexByPath(paths, saved!) >= 0;
          context.logger.warn(
            { checkpointFile: saved, line: position.line, files: paths },
            replaced
              ? 'file: the checkpoint\'s file is no longer at its path (rotated or replaced: another inode, or other first bytes) nor anywhere else in the list; its files are read from their start'
              : 'file: the checkpoint was reading a file this source no longer lists; its files are read from their start',
          );
          return;
        }
        if (saved !== undefined && paths[at] !== saved && indexByPath([paths[at]!], saved) < 0) {
          context.logger.info({ checkpointFile: saved, file: paths[at], line: position.line }, 'file: the checkpoint\'s file was renamed; resuming it under its new name');
        }
        fileIndex = at;
        linesDone = Number(position.line ?? 0);
        // A checkpoint from before byte positions (or of a gzip file) resumes by line count.
        bytesDone = byte;
        unreadableAfter = position.unreadable === true ? linesDone : undefined;
        unterminated = typeof position.unterminated === 'number' ? position.unterminated : undefined;
        rangesSkipped = typeof position.gzipRangesSkipped === 'number' ? position.gzipRangesSkipped : 0;
        identity = savedIdentity;
      },
      async close() {
        open?.decoded.destroy();
        open?.raw.destroy();
      },
    };
  },
});

/**
 * The longest a FIFO's gzip lines wait on its writer for their member's CRC (the waits added up: time the
 * source spends on its own work does not count): a live writer (the `file` sink flushes every second by
 * default) may take minutes to end a member, and its lines should not wait for that. A writer that
 * streams a whole file (`cat events.jsonl.gz > fifo`) keeps the source busy, not waiting, however slow the
 * machine: its members are checked whole.
 */
const FIFO_GZIP_MAX_HOLD_MS = 1000;

/**
 * A gzip file's damage, after its line `damage.lineEndsBefore`, dead-lettered: its text after that line
 * is the raw. A range read past (`resumedAt`) names where reading went on, and the line numbers go on
 * from the damage's (its text is not counted, so a resumed run counts the same lines); else the rest of
 * the file is skipped.
 */
function deadLetterGzipDamage(damage: GzipDamage, path: string, context: PluginContext): void {
  const { byte, problem, text, unchecked, lineEndsBefore: after, resumedAt, continuesLine = false } = damage;
  const utf8 = isUtf8(text);
  const rest = resumedAt === undefined ? 'the rest of the file is skipped' : `reading goes on at the gzip member at compressed byte ${resumedAt}, its first line numbered ${after + 1}`;
  context.deadLetter({
    // A member's lines held back (its CRC failed, or its deflate data is corrupt) are named; else the raw is a line cut short (or the rest of a long one whose start was read).
    reason:
      problem === 'incorrect data check' || text.includes(10) || unchecked !== undefined
        ? `${memberFailureReason(problem, after, byte, text, utf8, unchecked, resumedAt === undefined, continuesLine)}: ${rest}`
        : `unreadable gzip data after line ${after} (${problem} at compressed byte ${byte}${text.length > 0 ? `; ${rawIs(continuesLine ? `the rest of line ${after}` : 'the text read after that line', utf8)}` : ''}): ${rest}`,
    raw: text.toString(utf8 ? 'utf8' : 'base64'),
    ...(utf8 ? {} : { encoding: 'base64' as const }),
    origin: { source: context.label, file: path, line: after + 1 },
  });
}

/** How a gzip damage's reason names its dead letter's raw: what it is, and base64 where it is not UTF-8 text. */
const rawIs = (what: string, utf8: boolean): string => `raw is ${what}${utf8 ? '' : ', base64'}`;

/**
 * The dead letter's reason for a gzip member that failed after line `linesDone`, its CRC (its text is not
 * what was compressed) or its deflate data (corrupt: zlib may inflate garbage before it fails): its text
 * held back (`text`, the dead letter's raw) is not read, its lines named (by number where the file's
 * lines end there, `numbered`; read past, they are not numbered); lines of it handed on before the damage
 * (past the hold bound, or a FIFO's held past FIFO_GZIP_MAX_HOLD_MS) are named as possibly wrong. Text
 * that begins with the rest of line `linesDone` (`continuesLine`: a long line handed on unended) is no line of its own.
 */
function memberFailureReason(problem: string, linesDone: number, byte: number, text: Buffer, utf8: boolean, unchecked: GzipDamage['unchecked'], numbered: boolean, continuesLine: boolean): string {
  const crc = problem === 'incorrect data check';
  const pieces = text.length === 0 ? 0 : text.subarray(0, text.length - 1).toString('latin1').split('\n').length;
  const heldLines = continuesLine ? Math.max(0, pieces - 1) : pieces;
  const lines = numbered ? `lines ${linesDone + 1}-${linesDone + heldLines}` : `${heldLines} line${heldLines === 1 ? '' : 's'}`;
  const raw = rawIs(continuesLine ? `the rest of line ${linesDone}${heldLines > 0 ? ', then their text' : ''}` : 'their text', utf8);
  const held = heldLines > 0 ? `; its ${lines} are not read (${raw})` : continuesLine ? `; ${raw}` : '';
  const passed = unchecked === undefined ? '' : `; its lines ${linesDone - unchecked.lineEnds + 1}-${linesDone} (${unchecked.bytes} bytes) were read before the ${crc ? 'check' : 'damage'} and may be wrong`;
  const what = crc ? "a member's text is not what was compressed" : "a member's text inflated before it may be wrong (zlib can inflate corrupt data as garbage before it fails)";
  return `unreadable gzip data after line ${linesDone} (${problem} at compressed byte ${byte}: ${what}${held}${passed})`;
}

/**
 * What tells a file from another across renames, as log shippers do (Filebeat, Vector, Fluent Bit): its
 * device and inode (`inode`, "dev:ino"), and a SHA-256 (`head`) of its first `headBytes` bytes, which
 * an inode the filesystem reused for a new file does not share.
 */
interface FileIdentity {
  inode: string;
  head: string;
  headBytes: number;
}

/** The first bytes of a file its identity digests: enough to tell log files or CSV files apart by their first lines. */
const HEAD_BYTES = 1024;

/**
 * `path` opened for reading. A FIFO is opened without waiting for a writer (O_NONBLOCK; reads still wait
 * for one: epoll tells of no bytes before a writer's) and is read through a socket: an fs read of it
 * waits in libuv's thread pool for the writer's next bytes, where no stop can end it, and kept the
 * process alive until the writer closed. Node's fs docs: a non-blocking descriptor is net.Socket's.
 */
async function openInput(path: string): Promise<{ file: FileHandle; fifo?: never } | { fifo: number }> {
  if (statSync(path, { throwIfNoEntry: false })?.isFIFO() === true) {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    if (fstatSync(fd).isFIFO()) return { fifo: fd };
    closeSync(fd); // another file at the path since the stat: read as such
  }
  return { file: await openFile(path, 'r') };
}

/** Undefined for what is not a regular file (a FIFO: its first bytes cannot be read twice). */
function identityOf(fd: number): FileIdentity | undefined {
  const stats = fstatSync(fd, { bigint: true });
  if (!stats.isFile()) return undefined;
  const { dev, ino } = stats;
  const head = headOf(fd, HEAD_BYTES);
  return { inode: `${dev}:${ino}`, head: digest(head), headBytes: head.length };
}

function headOf(fd: number, bytes: number): Buffer {
  const head = Buffer.alloc(bytes);
  let read = 0;
  for (let got = -1; read < bytes && got !== 0; read += got) got = readSync(fd, head, read, bytes - read, read);
  return head.subarray(0, read);
}

const digest = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** The identity a checkpointed position holds (none in one from before identities). */
function identityIn(position: SourcePosition): FileIdentity | undefined {
  const { inode, head, headBytes } = position;
  return typeof inode === 'string' && typeof head === 'string' && typeof headBytes === 'number' ? { inode, head, headBytes } : undefined;
}

/** Whether the file at `path` is the one `identity` was taken of: `inode` too, or just its first bytes (and at least `minSize` bytes). */
function isFile(path: string, identity: FileIdentity, minSize: number, sameInode: boolean): boolean {
  let fd: number;
  try {
    // Not a regular file (a FIFO now at its path) is not it, and opening a FIFO would wait for a writer.
    if (!statSync(path).isFile()) return false;
    fd = openSync(path, 'r');
  } catch {
    return false; // gone (archived), or unreadable: reading it says so
  }
  try {
    const { dev, ino, size } = fstatSync(fd, { bigint: true });
    if (sameInode && `${dev}:${ino}` !== identity.inode) return false;
    // Shorter than the position: truncated in place (copytruncate rotation) and written anew.
    if (size < BigInt(Math.max(minSize, identity.headBytes))) return false;
    return digest(headOf(fd, identity.headBytes)) === identity.head;
  } finally {
    closeSync(fd);
  }
}

/**
 * Where the file of a checkpointed position is in `paths`. With its identity: the path whose file has
 * its inode and first bytes (renamed, or not), else the path it had (or one leading to the same file)
 * if that file still starts with its first bytes (a copy of it put back, a device renumbered).
 * A file at its path that is another one (a new log in place of the rotated one, a reused inode) is
 * not it. Without an identity (a checkpoint from before them): by path alone.
 */
function indexOfFile(paths: readonly string[], file: string, identity: FileIdentity | undefined, minSize: number): number {
  const byPath = indexByPath(paths, file);
  if (identity === undefined) return byPath;
  if (byPath >= 0 && isFile(paths[byPath]!, identity, minSize, true)) return byPath;
  const byInode = paths.findIndex((path) => isFile(path, identity, minSize, true));
  if (byInode >= 0) return byInode;
  return byPath >= 0 && isFile(paths[byPath]!, identity, minSize, false) ? byPath : -1;
}

/** Where `file` is in `paths`: by its path, else by the file the paths lead to (one reached through another link or folder). */
function indexByPath(paths: readonly string[], file: string): number {
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

/** The file from byte `start`, read through `handle` and leaving it open (a stream on it closes it when destroyed). */
function fromByte(handle: FileHandle, start: number): Readable {
  return Readable.from(
    (async function* () {
      for (let at = start; ; ) {
        const { bytesRead, buffer } = await handle.read(Buffer.alloc(64 << 10), 0, 64 << 10, at);
        if (bytesRead === 0) return;
        at += bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
    })(),
    { objectMode: false },
  );
}

/** The file at `path` from byte `start`, if it is still the one `identity` was taken of (else nothing). */
async function* fileFrom(path: string, identity: FileIdentity, start: number): AsyncGenerator<Buffer> {
  const handle = await openFile(path, 'r');
  try {
    const now = identityOf(handle.fd);
    if (now?.inode !== identity.inode || now.head !== identity.head) return;
    yield* fromByte(handle, start);
  } finally {
    await handle.close();
  }
}

/**
 * True when the bytes before `offset` are a line end: `offset` starts a line (the file did not change
 * under it). A line end is a `\n`, and in CSV a `\r` too (not the one of a `\r\n`: `offset` would be
 * inside a line end).
 */
async function followsLineEnd(handle: FileHandle, offset: number, crEndsLines: boolean): Promise<boolean> {
  try {
    const bytes = Buffer.alloc(2);
    const { bytesRead } = await handle.read(bytes, 0, 2, offset - 1);
    return bytesRead >= 1 && (bytes[0] === 10 || (crEndsLines && bytes[0] === 13 && (bytesRead === 1 || bytes[1] !== 10)));
  } catch {
    return false; // unreadable: the line-count path reports it as it reads
  }
}

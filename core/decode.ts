/**
 * Raw bytes -> canonical events, for the sources that read text (the built-in file and stdin, and a
 * user's that reads an HTTP response or an object store's export): JSON lines or CSV, mapped by the
 * shared event mapper. Every line that cannot become an event goes to the dead-letter sink with its
 * reason, file and line.
 */
import { isUtf8 } from 'node:buffer';
import { Readable } from 'node:stream';
import { csvRecordPieces, parseCsvRun } from './csv-records.js';
import type { ClickEvent } from './events.js';
import { TributaryError } from './errors.js';
import { setOwnField } from './fields.js';
import { DEFAULT_MAX_RECORD_BYTES, moreAtHand, notUtf8Rejection, OVERLONG_HEAD_BYTES, readLineBatches, type LineBatch, type LineStop } from './io.js';
import { absentFieldCheck, createEventMapper, isRejected, isSkipped, mappingOf, rejectionOf, unknownEventTypeWarning, type EventMapper, type MappingSetting } from './mapping.js';
import type { EntryProblem, JsonSchema, PluginContext } from './plugin.js';
import { timeOffsetReporter } from './time-zone.js';

export type RecordFormat = 'jsonl' | 'csv';

/** The format a file's name implies, unless `configured` says: csv for `.csv` and `.tsv` (gzipped or not), else JSON lines. */
export function formatOfFile(path: string, configured?: RecordFormat): RecordFormat {
  return configured ?? (/\.(csv|tsv)(\.gz)?$/i.test(path) ? 'csv' : 'jsonl');
}

/** Whether a file's name says its CSV is tab-separated: `.tsv`, `.tsv.gz`. */
export const isTabSeparatedFile = (path: string): boolean => /\.tsv(\.gz)?$/i.test(path);


export interface CsvConfig {
  header?: boolean;
  columns?: string[];
  delimiter?: string;
  quote?: string;
}

export interface DecodeConfig {
  format?: RecordFormat;
  csv?: CsvConfig;
  mapping?: MappingSetting;
  max_record_bytes?: number;
}

/**
 * Mistakes in `csv` that its schema lets through and reading would hide: neither a header row nor
 * column names (every row dead-lettered), or column names without saying whether the first row is a
 * header. Left to a default there, a file without one lost its first row silently (passed over as a
 * header); a config error says it before anything is read, where a warning at each read would scroll by.
 */
export function csvConfigProblems(csv: CsvConfig | undefined): EntryProblem[] {
  const problems = csvCharacterProblems(csv);
  if (problems.length > 0) return problems;
  if (csv?.header === false && csv.columns === undefined) {
    return [{ field: 'csv', message: '`header: false` needs `columns`: with neither a header row nor column names, every row would be dead-lettered; name the columns' }];
  }
  if (csv?.columns !== undefined && csv.header === undefined) {
    return [
      {
        field: 'csv',
        message: "`columns` needs `header`: `header: false` when the file has no header row (its first row is data), `header: true` when it has one that `columns` renames (that row is passed over); left out, a headerless file's first row would be lost",
      },
    ];
  }
  return [];
}

/**
 * Delimiters, quotes and column names that read every row otherwise than meant, with no dead letter to
 * say so: a quote that is (or is in) the delimiter splits or quotes at the same character, a line end
 * in either ends the row before it, and a column named twice reads only its last one.
 */
function csvCharacterProblems(csv: CsvConfig | undefined): EntryProblem[] {
  const problems: EntryProblem[] = [];
  const delimiter = csv?.delimiter;
  const quote = csv?.quote;
  if (delimiter !== undefined && /[\r\n]/.test(delimiter)) {
    problems.push({ field: 'csv.delimiter', message: `delimiter ${JSON.stringify(delimiter)} holds a line end, which ends the row before it: every row would be one field` });
  }
  if (quote !== undefined && /[\r\n]/.test(quote)) {
    problems.push({ field: 'csv.quote', message: `quote ${JSON.stringify(quote)} is a line end, which ends the row before it; name another character, or '' for none` });
  } else if (quote !== undefined && quote !== '' && (delimiter ?? ',').includes(quote)) {
    problems.push({ field: 'csv.quote', message: `quote ${JSON.stringify(quote)} is in the delimiter ${JSON.stringify(delimiter ?? ',')}: a field could not be told from a quoted one; name another quote, or '' for none` });
  }
  const seen = new Set<string>();
  for (const [index, column] of (csv?.columns ?? []).entries()) {
    if (seen.has(column)) problems.push({ field: `csv.columns[${index}]`, message: `column '${column}' is named twice: a row would keep only its last one; name each column once (one not read may have any unused name)` });
    seen.add(column);
  }
  return problems;
}

/**
 * The config schema's fields of what decodeRecords reads (DecodeConfig), for a source to spread into
 * its own `properties`; the defaults they describe are decodeRecords'. A source that picks them
 * otherwise (the file source: the format and delimiter by the file's name) says so in its own.
 */
export const decodeProperties = {
  format: {
    enum: ['jsonl', 'csv'],
    description: 'Record format. Default: jsonl.',
  },
  csv: {
    type: 'object',
    additionalProperties: false,
    description:
      'CSV options. Each of `\\r\\n`, `\\n` and `\\r` outside a quoted field ends a row, whatever the first line ends with (a file whose header ends in CRLF and rows in LF is read row by row), as Python\'s csv module reads it: a bare `\\n` in an unquoted field of a CRLF file ends its row there, and the rest of the line is a row of its own. A quoted field keeps any line end.',
    properties: {
      // No schema defaults for `header` and `delimiter`: whether a user wrote them matters (csvConfigProblems, a .tsv file's tab).
      header: {
        type: 'boolean',
        description:
          'The first row names the columns. Default: true; with `columns`, say it (true: the file has a header row, which `columns` renames; false: every row is data). A header row that cannot be read (not UTF-8, longer than `max_record_bytes`, a quote never closed) fails the source, unless `columns` names them (the row is then passed over). A header naming a column twice is read with the last one\'s value in each row, said once as a warning naming the file and the column.',
      },
      columns: {
        type: 'array',
        items: { type: 'string' },
        description: 'Column names, for files without a header row (`header: false`), or to rename a header (`header: true`). Needed with `header: false`. A name given twice is a config error.',
      },
      delimiter: { type: 'string', minLength: 1, description: 'Field delimiter, e.g. `;` or `\\t`. Default: `,`. One holding a line end is a config error.' },
      quote: {
        type: 'string',
        maxLength: 1,
        default: '"',
        description:
          'Quote character. It quotes a field only at the field\'s start; elsewhere it is data (`Samsung 55" TV`), as Python\'s csv module and pandas read it. A quoted field not closed within `max_record_bytes` or by the end of the file: its first line goes to the dead-letter sink and the next line is read as a new row. `\'\'`: none (every field is read as written). One that is in the delimiter, or a line end, is a config error.',
      },
    },
  },
  mapping: { $ref: 'tributary:mapping' },
  max_record_bytes: {
    type: 'integer',
    minimum: 1024,
    default: DEFAULT_MAX_RECORD_BYTES,
    description:
      'Longest record (a JSON line, a CSV row) read, in bytes. A longer one goes to the dead-letter sink with its length and first 1 KiB, and is never held whole; so does the first line of a CSV row whose quoted field is not closed within this many bytes, and reading goes on at the next line. A CSV row over it outside a quoted field ends at its line end, where a quote past this many bytes opens no field.',
  },
} satisfies Record<string, JsonSchema>;

/** What the origins of the events and dead letters, and the warnings, name the stream by. */
interface DecodeTarget {
  /** Label of the source. */
  source: string;
  /** File path, `stdin`, a URL. */
  file: string;
}

/** Events decoded from a run of lines, and the last line consumed (rejected lines included). */
export interface DecodedBatch {
  events: ClickEvent[];
  throughLine: number;
  /** Bytes of the stream through that line (a point to resume reading at). */
  throughByte?: number;
  /**
   * The stream ended inside the record after `throughLine`, before its line end (a file's last line
   * without one, or one a writer is still writing): its length in bytes. It was decoded as a whole
   * record (an event in `events`, or a dead letter), but `throughLine` and `throughByte` stop before
   * it: a file that grows is read again from there, and the run handed this back as
   * `options.unterminated` passes the record over if it is unchanged.
   */
  unterminated?: number;
}

/** Where a stream starts in its file, when that is past the beginning (a resume point). */
export interface StreamStart {
  /** Line number of the stream's first line. */
  line: number;
  /** CSV: the column names, from the file's header row or `csv.columns` (the header row is not in the stream). */
  columns?: string[];
}

/** How decodeRecords reads a stream, besides its config. */
export interface DecodeOptions {
  /** What the events' and dead letters' origins (`origin.file`) and the warnings name the stream by: a path, `stdin`, a URL. */
  file: string;
  /** Default: `config.format`, else `jsonl`. */
  format?: RecordFormat;
  /** The origins' `source`. Default: `context.label`. */
  source?: string;
  /** Most events in a batch. Default: `context.batchSize`. */
  batchSize?: number;
  /**
   * Resuming: the stream's lines up to this one (a last batch's `throughLine`) are passed over unread,
   * so nothing is decoded or dead-lettered twice. Default: 0.
   */
  skipThrough?: number;
  /** Resuming: where the stream starts in its file, when past its start (a last batch's `throughByte`). Default: line 1. */
  start?: StreamStart;
  /** Resuming: a last batch's `unterminated`; the record after `skipThrough` is passed over if it is that long still. */
  unterminated?: number;
  /**
   * An event type the mapping does not know. Default: a warning once per type for this stream; a source
   * reading several streams gives one unknownEventTypeWarning to all, to say it once.
   */
  onUnknownType?: (type: string, near?: string) => void;
  /**
   * CSV: rows without a quote or a lone `\r` are split on the delimiter, faster than the quoted-row
   * reader that reads the rest; false reads every row with that one (the same events and dead letters:
   * for tests and benchmarks). Default: true.
   */
  plainCsvRows?: boolean;
  /**
   * The stream is no file that could be converted where it is (stdin, a response's body): the advice of
   * an error about its text (UTF-16) is to pipe it through a converter, not to convert `file`. Default: false.
   */
  piped?: boolean;
}

/**
 * Decodes `stream`, JSON lines or CSV as `config` says (`format`, `csv`, `mapping`, `max_record_bytes`),
 * into batches of canonical events, as the built-in file and stdin sources do. Each record that cannot
 * become an event goes to `context.deadLetter` with the reason, the line and the text (its bytes as
 * base64 where it is not UTF-8), and reading goes on; a stream that cannot be read at all throws (text
 * in UTF-16, a CSV header row that cannot be read). Every batch says how far the stream is read
 * (`throughLine`, `throughByte`), the rejected lines included: a source's position, handed back as
 * `skipThrough` (and `start`, `unterminated`) when it resumes.
 */
export function decodeRecords(stream: Readable, config: DecodeConfig, context: PluginContext, options: DecodeOptions): AsyncGenerator<DecodedBatch> {
  const target: DecodeTarget = { source: options.source ?? context.label, file: options.file };
  const maxBatch = options.batchSize ?? context.batchSize;
  const start = options.start ?? { line: 1 };
  const readBefore = new ReadBefore(options.skipThrough ?? 0, options.unterminated, target, context);
  // Each file's mapper tells its first offset; the pipeline's stages hear one, once (timeOffsetReporter).
  const map = createEventMapper(config.mapping, options.onUnknownType ?? unknownEventTypeWarning(context.logger), timeOffsetReporter(context.shared, target.source), context.erasureEventType);
  if (start.line === 1) stream = Readable.from(refusingWideText(stream, target.file, options.piped ?? false), { objectMode: false, highWaterMark: 1 });
  return (options.format ?? config.format ?? 'jsonl') === 'csv'
    ? decodeCsv(stream, config, map, target, context, maxBatch, readBefore, start, options.plainCsvRows ?? true)
    : decodeJsonLines(stream, config, map, target, context, maxBatch, readBefore, start.line);
}

/** Byte order marks of the Unicode encodings that are not UTF-8, longest first (UTF-32 LE starts as UTF-16 LE does). */
const WIDE_TEXT_MARKS: readonly { bytes: readonly number[]; encoding: string; iconv: string }[] = [
  { bytes: [0xff, 0xfe, 0, 0], encoding: 'UTF-32 little-endian', iconv: 'UTF-32' },
  { bytes: [0, 0, 0xfe, 0xff], encoding: 'UTF-32 big-endian', iconv: 'UTF-32' },
  { bytes: [0xff, 0xfe], encoding: 'UTF-16 little-endian', iconv: 'UTF-16' },
  { bytes: [0xfe, 0xff], encoding: 'UTF-16 big-endian', iconv: 'UTF-16' },
];

/**
 * The stream's chunks, refused at once when its first bytes are a UTF-16 or UTF-32 byte order mark
 * (Excel's "Unicode Text", PowerShell 5's `>`): read as UTF-8, every line of such a file would be
 * rejected one by one (or its CSV header row be unreadable), with no word of why.
 */
async function* refusingWideText(stream: Readable, file: string, piped: boolean): AsyncGenerator<Buffer> {
  let head: Buffer | undefined = Buffer.alloc(0);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (head === undefined) {
        yield chunk;
        continue;
      }
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length < 4) continue;
      refuseWideText(head, file, piped);
      yield head;
      head = undefined;
    }
    if (head !== undefined && head.length > 0) {
      refuseWideText(head, file, piped);
      yield head;
    }
  } finally {
    stream.destroy();
  }
}

function refuseWideText(head: Buffer, file: string, piped: boolean): void {
  const mark = WIDE_TEXT_MARKS.find(({ bytes }) => head.length >= bytes.length && bytes.every((byte, i) => head[i] === byte));
  if (mark === undefined) return;
  const hex = mark.bytes.map((byte) => byte.toString(16).toUpperCase().padStart(2, '0')).join(' ');
  throw new TributaryError(
    'TRIB_ERR_SOURCE_INPUT',
    `${file}: the text is ${mark.encoding} (it starts with the byte order mark ${hex}, as Excel's "Unicode Text" and PowerShell 5 write), and sources read UTF-8: convert it first, e.g. ${piped ? `pipe it through \`iconv -f ${mark.iconv} -t UTF-8\`` : `\`iconv -f ${mark.iconv} -t UTF-8 ${file} > ${file}.utf8\``}`,
  );
}

/**
 * What a resumed run passes over: the lines through `through`, and the record after them when a
 * position says it was read before without its line end (DecodedBatch.unterminated) and it has as
 * many bytes still, line end written since or not: it was read whole. One with more (a writer was
 * still writing it) is read again, whole, and said: its first part stays read as it was.
 */
class ReadBefore {
  /** The length of the record after `through` read before without its line end; undefined once compared. */
  tail: number | undefined;

  constructor(
    public through: number,
    tail: number | undefined,
    private readonly target: DecodeTarget,
    private readonly context: PluginContext,
  ) {
    this.tail = tail;
  }

  /** Whether the record that starts on line `first` is the one to compare with `tail` (check() it then). */
  comparesAt(first: number): boolean {
    return this.tail !== undefined && first === this.through + 1;
  }

  /** The record on lines `first` to `last`, of `now` bytes, where comparesAt(first): counted read when it is as long as it was. */
  check(first: number, last: number, now: number): void {
    const before = this.tail;
    this.tail = undefined;
    if (now === before) this.through = last;
    else {
      this.context.logger.warn(
        { file: this.target.file, line: first, bytesBefore: before, bytes: now },
        `${this.target.file}: line ${first} was read before without its line end (${before} bytes; a writer was still writing it?) and has changed since: it is read again whole, and what its first part gave then stays given`,
      );
    }
  }

  /** check() for the line after `through` in a batch of lines, if the batch has it. */
  checkLine(batch: LineBatch): void {
    const i = this.through + 1 - batch.firstLine;
    if (this.tail !== undefined && i >= 0 && i < batch.lines.length) this.check(this.through + 1, this.through + 1, lineBytes(batch, i));
  }
}

/** The length in bytes of a batch's line `i`, as LineBatch.unterminated gives a last line's. */
function lineBytes(batch: LineBatch, i: number): number {
  const text = batch.lines[i]!;
  if (text !== '') return Buffer.byteLength(text);
  const line = batch.firstLine + i;
  return batch.overlong?.find((unread) => unread.line === line)?.bytes ?? batch.notUtf8?.find((unread) => unread.line === line)?.bytes.length ?? 0;
}

/**
 * The delimiter a header row read as one column was most likely written with (`;`, a tab, `|` or `,`,
 * whichever it holds most of, other than `delimiter`): a European export read with the default `,`.
 */
export function otherDelimiter(columns: readonly string[], delimiter: string): string | undefined {
  if (columns.length !== 1) return undefined;
  const counts = [';', '\t', '|', ','].filter((candidate) => candidate !== delimiter).map((candidate) => [candidate, columns[0]!.split(candidate).length - 1] as const);
  const [best] = counts.sort(([, a], [, b]) => b - a);
  return best !== undefined && best[1] > 0 ? best[0] : undefined;
}

/**
 * What a mapping names that a CSV's columns lack, as `fields.price 'Price' (did you mean 'price'?)`: every
 * field it names, and the required ones it leaves at their default name (user_id, time, and type without
 * `default_type`). A misspelt column reads as absent in every row: silently for an optional field (no
 * price at all), a dead letter per row for a required one.
 */
export function missingMappedColumns(setting: MappingSetting | undefined, columns: readonly string[]): string[] {
  const mapping = mappingOf(setting);
  // With `default_type`, a row without a type takes it: no type column is needed (and validation fills
  // in `fields.type`'s default name whether the file wrote it or not).
  const optionalType = mapping?.default_type !== undefined;
  // A list (user_id, session_id read in turn) is said by each of its columns: `fields.user_id[1] 'anonymousId'`.
  const named: [string, string][] = Object.entries(mapping?.fields ?? {})
    .filter(([field]) => !(field === 'type' && optionalType))
    .flatMap(([field, column]): [string, string][] => (typeof column === 'string' ? [[`fields.${field}`, column]] : column.map((each, k) => [`fields.${field}[${k}]`, each])));
  const required = ['user_id', 'time', ...(optionalType ? [] : ['type'])];
  for (const field of required) if (!(mapping?.fields && field in mapping.fields)) named.push([`fields.${field}`, field]);
  for (const attribute of mapping?.attributes ?? []) named.push(['attributes', attribute]);
  const present = new Set(columns);
  return named
    .filter(([, column]) => !present.has(column))
    .map(([what, column]) => {
      const near = columns.find((known) => known.toLowerCase() === column.toLowerCase());
      return `${what} '${column}'${near ? ` (did you mean '${near}'?)` : ''}`;
    });
}

/**
 * The column names a CSV file's rows are read with: `csv.columns`, else its header row (read from
 * the file's start by the same reader as the rows); undefined for a headerless file without
 * `csv.columns`. Throws (TRIB_ERR_SOURCE_INPUT) when the header row is longer than `maxRecordBytes`,
 * its quote never closes or it is not UTF-8; `file`, where given, is named in that error with its
 * cure, as a header read with the rows is.
 */
export async function csvColumns(open: () => Readable, csv: CsvConfig = {}, maxRecordBytes = DEFAULT_MAX_RECORD_BYTES, file?: string): Promise<string[] | undefined> {
  if (csv.columns) return csv.columns;
  if (csv.header === false) return undefined;
  const delimiter = csv.delimiter ?? ',';
  const quote = csv.quote ?? '"';
  const stream = open();
  try {
    let atFileStart = true;
    let line = 1; // the line the next piece starts on (empty lines may come before the header row)
    for await (const piece of csvRecordPieces(stream, { delimiter, quote, maxRecordBytes, atFileStart: true })) {
      if (piece.kind !== 'records') throw headerUnreadable(piece.kind === 'unclosed' ? unclosedReason(piece, line, maxRecordBytes) : `${piece.recordBytes} bytes, longer than max_record_bytes (${maxRecordBytes})`, file);
      const rows = parseCsvRun(piece.bytes, { delimiter, quote, atFileStart });
      atFileStart = false;
      const header = rows[0];
      line += piece.lineEnds;
      if (header === undefined) continue;
      // Its bytes, through its last line: decoded, bytes that are not UTF-8 would be column names of U+FFFD.
      const ends = lineEndOffsets(piece.bytes);
      const bytes = piece.bytes.subarray(0, header.lineEnds < ends.length ? ends[header.lineEnds]! : piece.bytes.length);
      if (!isUtf8(bytes)) throw headerUnreadable('it is not UTF-8 text', file);
      return header.fields;
    }
    return undefined;
  } finally {
    stream.destroy();
  }
}

async function* decodeJsonLines(
  stream: Readable,
  config: DecodeConfig,
  map: EventMapper,
  target: DecodeTarget,
  context: PluginContext,
  maxBatch: number,
  readBefore: ReadBefore,
  startLine: number,
): AsyncGenerator<DecodedBatch> {
  const maxLineBytes = config.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES;
  const skipThrough = readBefore.through;
  // A BOM before the file's first line is no part of it (as in CSV): JSON.parse would reject the line.
  let bom = startLine === 1;
  // JSON has no header row to check the mapping's names against (as a CSV's are): its events are.
  const absent = absentFieldCheck(config.mapping, context.logger, target.file, context.metrics);
  for await (const batch of readLineBatches(stream, maxBatch, { startLine, maxLineBytes })) {
    const { lines, firstLine, endByte, unterminated } = batch;
    readBefore.checkLine(batch);
    if (bom && lines.length > 0) {
      bom = false;
      if (lines[0]!.charCodeAt(0) === 0xfeff) lines[0] = lines[0]!.slice(1);
    }
    const skip = readBefore.through;
    const unread = unreadLinesOf(batch, skip, maxLineBytes, target, context);
    const events: ClickEvent[] = [];
    for (let i = Math.max(0, skip - firstLine + 1); i < lines.length; i++) {
      const text = lines[i]!;
      if (text.length === 0 || (text.charCodeAt(0) <= 32 && isBlank(text))) {
        unread?.through(firstLine + i); // an unread line's place is an empty one
        continue; // blank lines are not records
      }
      const origin = { source: target.source, file: target.file, line: firstLine + i };
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (error) {
        context.deadLetter({ reason: `malformed JSON: ${(error as Error).message}`, raw: text, origin });
        continue;
      }
      const result = map(raw, origin); // rejects a line that is JSON but not an object
      if (isSkipped(result)) context.countFiltered(1, result.rejected);
      else if (isRejected(result)) context.deadLetter({ ...rejectionOf(map, result, raw), raw: text, origin });
      else {
        absent.see(result, raw);
        events.push(result);
      }
    }
    unread?.through(Infinity);
    absent.flush();
    const decoded = batchThrough(events, lastLineRead(batch), endByte, unterminated, skipThrough);
    if (decoded) yield decoded;
  }
  absent.finish();
}

async function* decodeCsv(
  stream: Readable,
  config: DecodeConfig,
  map: EventMapper,
  target: DecodeTarget,
  context: PluginContext,
  maxBatch: number,
  readBefore: ReadBefore,
  start: StreamStart,
  plainRows: boolean,
): AsyncGenerator<DecodedBatch> {
  const skipThrough = readBefore.through;
  const csv = config.csv ?? {};
  // Past the file's start the header row is behind us: the columns come with `start`.
  const midFile = start.line > 1;
  let columns: string[] | undefined = midFile ? start.columns : csv.columns;
  let skipHeader = !midFile && (csv.header ?? true);
  let events: ClickEvent[] = [];
  let throughLine = 0;
  let throughByte = 0;
  /** The last record's length when the stream ended inside it (DecodedBatch.unterminated). */
  let unterminated: number | undefined;

  /**
   * One row: the header, an event, or a dead letter. Its origin is the line it starts on (what a person
   * looks for); whether a resumed run read it already goes by the line it ends on (the positions').
   */
  let columnsChecked = false;
  /** A column named `__proto__` (decided once, with the columns): its rows are built with setOwnField, every other by assignment. */
  let protoColumn = false;
  const checkColumns = (known: readonly string[]): void => {
    columnsChecked = true;
    protoColumn = known.includes('__proto__');
    const missing = missingMappedColumns(config.mapping, known);
    if (missing.length === 0) return;
    const other = otherDelimiter(known, csv.delimiter ?? ',');
    const hint = other === undefined ? '' : ` (one column, with ${JSON.stringify(other)} in it: is the file ${JSON.stringify(other)}-separated? set csv.delimiter: ${JSON.stringify(other)})`;
    context.logger.warn(
      { file: target.file, missing, columns: known, ...(other === undefined ? {} : { delimiter: other }) },
      `${target.file}: the CSV has no column for ${missing.join(', ')}: every row reads it as absent (an optional field stays empty in every event; without user_id, time or type each row is dead-lettered); its columns: ${known.join(', ')}${hint}`,
    );
  };
  /**
   * A header row naming a column twice: each row keeps the last one's value, silently (the mapping reads
   * one field per name). Said once, at the header; `csv.columns` naming one twice is a config error.
   */
  const warnColumnsTwice = (header: readonly string[]): void => {
    const first = new Map<string, number>();
    const twice = new Map<string, number[]>();
    header.forEach((column, index) => {
      const at = first.get(column);
      if (at === undefined) first.set(column, index);
      else twice.set(column, [...(twice.get(column) ?? [at]), index]);
    });
    if (twice.size === 0) return;
    const said = [...twice].map(([column, at]) => `'${column}' ${at.length === 2 ? 'twice' : `${at.length} times`} (columns ${at.slice(0, -1).map((index) => index + 1).join(', ')} and ${at.at(-1)! + 1})`);
    context.logger.warn(
      { file: target.file, columns: [...twice.keys()] },
      `${target.file}: the CSV header names column ${said.join(', ')}: each row keeps only the last one's value; rename one in the file, or name the columns in csv.columns with csv.header: true`,
    );
  };
  // Resumed mid-file, the header row was read alone (csvColumns, the file's own names unless csv.columns
  // gives them): said as a read from the start says it, or a restarted run's rows would go on silently.
  if (midFile && csv.columns === undefined && columns !== undefined) warnColumnsTwice(columns);
  const row = (record: string[], rawText: string, line: number, lastLine = line): void => {
    if (skipHeader) {
      skipHeader = false;
      if (columns === undefined) {
        columns = record;
        warnColumnsTwice(columns);
      }
      checkColumns(columns);
      return;
    }
    if (columns && !columnsChecked) checkColumns(columns);
    if (lastLine <= readBefore.through) return;
    const origin = { source: target.source, file: target.file, line };
    if (!columns) {
      context.deadLetter({ reason: 'CSV has no header row and no `csv.columns`', raw: rawText, origin });
      return;
    }
    if (record.length !== columns.length) {
      context.deadLetter({ reason: `CSV row has ${record.length} fields, expected ${columns.length}`, raw: rawText, origin });
      return;
    }
    const raw: Record<string, unknown> = {};
    // Own fields, a column `__proto__` too (assigned, it would set the prototype and be lost).
    if (protoColumn) for (let i = 0; i < columns.length; i++) setOwnField(raw, columns[i]!, record[i]);
    else for (let i = 0; i < columns.length; i++) raw[columns[i]!] = record[i];
    const result = map(raw, origin);
    if (isSkipped(result)) context.countFiltered(1, result.rejected);
    else if (isRejected(result)) context.deadLetter({ ...rejectionOf(map, result, raw), raw: rawText, origin });
    else events.push(result);
  };

  const maxRecordBytes = config.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES;
  /**
   * The header row cannot be read (not UTF-8, over the bound, a quote never closed): dead-lettered,
   * the first data row would name the columns, and every row be read by the wrong names or lost. With
   * `csv.columns` it is passed over as the header it is; without, the source fails.
   */
  const unreadableHeader = (why: string): void => {
    if (!csv.columns) throw headerUnreadable(why, target.file);
    skipHeader = false;
    checkColumns(csv.columns);
  };
  const delimiter = csv.delimiter ?? ',';
  const quote = csv.quote ?? '"';
  // Plain rows (no quote character, no `\r` but one before their `\n`) are what the quoted-row reader
  // below would split on the delimiter, so they are split here on the lines the JSON-lines reader
  // cuts (at `\n` and `\r\n`); from the first row that is not plain, or over the bound, on, that
  // reader reads the rest.
  let rest: { stream: Readable; line: number; byte: number } = { stream, line: start.line, byte: 0 };
  if (plainRows) {
    let bom = start.line === 1;
    let handedOver = false;
    for await (const batch of readLineBatches(stream, maxBatch, { startLine: start.line, stopAt: plainRowStop(quote), maxLineBytes: maxRecordBytes, stopAtOverlong: true })) {
      readBefore.checkLine(batch);
      // A header row that is not UTF-8 stands in `lines` as an empty one (as a blank line does).
      if (skipHeader && batch.notUtf8 !== undefined) {
        const first = batch.lines.findIndex((text, i) => text !== '' || batch.notUtf8![0]!.line === batch.firstLine + i);
        const header = batch.notUtf8[0]!;
        if (first >= 0 && header.line === batch.firstLine + first) {
          unreadableHeader(`it is not UTF-8 text (${header.bytes.length} bytes)`);
          batch.notUtf8 = batch.notUtf8.slice(1);
        }
      }
      const unread = unreadLinesOf(batch, readBefore.through, maxRecordBytes, target, context);
      for (let i = 0; i < batch.lines.length; i++) {
        let text = batch.lines[i]!;
        if (bom) {
          bom = false;
          if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        }
        if (text.length > 0) row(text.split(delimiter), text, batch.firstLine + i); // an empty line is no row
        else unread?.through(batch.firstLine + i); // an unread line's place is an empty one
      }
      unread?.through(Infinity);
      if (batch.lines.length > 0) {
        unterminated = batch.unterminated;
        throughLine = lastLineRead(batch);
        throughByte = batch.endByte;
        const decoded = batchThrough(events, throughLine, throughByte, unterminated, skipThrough);
        if (decoded) yield decoded;
        events = [];
      }
      if (batch.rest) {
        rest = batch.rest;
        handedOver = true;
      }
    }
    if (!handedOver) return;
  }

  // From here on records are found by csvRecordPieces, which holds at most `maxRecordBytes` of an open
  // one, and each run of whole records is split into rows by parseCsvRun.
  let line = rest.line; // the line the next piece starts on
  let byte = rest.byte;
  let atFileStart = rest.byte === 0 && rest.line === 1;
  for await (const piece of csvRecordPieces(rest.stream, { delimiter, quote, maxRecordBytes, atFileStart })) {
    if (piece.kind !== 'records') {
      const last = line + Math.max(piece.lineEnds, 1) - 1;
      if (readBefore.comparesAt(line)) readBefore.check(line, last, piece.recordBytes);
      if (skipHeader) unreadableHeader(piece.kind === 'unclosed' ? unclosedReason(piece, line, maxRecordBytes) : `${piece.recordBytes} bytes, longer than max_record_bytes (${maxRecordBytes})`);
      else if (line > readBefore.through) {
        context.deadLetter({
          reason: piece.kind === 'unclosed' ? `malformed CSV: ${unclosedReason(piece, line, maxRecordBytes)}${unclosedAfter(piece)}` : overlongReason(piece.recordBytes, maxRecordBytes),
          raw: piece.text,
          origin: { source: target.source, file: target.file, line },
        });
      }
      if (piece.lineEnds === 0) {
        // The stream ended inside it, before a line end (only there does a piece have none): not counted read.
        throughLine = line - 1;
        throughByte = byte;
        unterminated = piece.recordBytes;
      } else {
        throughLine = last;
        throughByte = byte + piece.byteLength;
      }
      line += piece.lineEnds;
      byte += piece.byteLength;
      atFileStart = false;
      continue;
    }
    const rows = parseCsvRun(piece.bytes, { delimiter, quote, atFileStart });
    atFileStart = false;
    // A run that is not UTF-8 somewhere: each row's bytes are checked (found by its last line's end).
    const lineEnds = isUtf8(piece.bytes) ? undefined : lineEndOffsets(piece.bytes);
    // The stream's last run may end inside its last record (no line end after it): that record is
    // decoded, but the position stops at its first line's start (DecodedBatch.unterminated).
    const lastByte = piece.bytes[piece.bytes.length - 1];
    const open = lastByte !== 10 && lastByte !== 13;
    const openRow = open ? rows[rows.length - 1] : undefined;
    let rowStart = 0;
    for (const parsed of rows) {
      const at = line + parsed.lineEnds;
      const startsAt = line + parsed.firstLineEnds;
      // Where the row ends in the run's bytes: the parser's count (NaN where the text is not UTF-8), else its line end's.
      let rowEndByte = parsed.end;
      // The lengths compared are given, not closures: one capturing the row would cost an allocation per row.
      if (lineEnds !== undefined) {
        const rowEnd = parsed.lineEnds < lineEnds.length ? lineEnds[parsed.lineEnds]! + 1 : piece.bytes.length;
        const bytes = trimLineEnds(piece.bytes.subarray(rowStart, rowEnd));
        rowStart = rowEndByte = rowEnd;
        if (readBefore.comparesAt(startsAt)) readBefore.check(startsAt, at, bytes.length);
        if (!isUtf8(bytes)) {
          if (skipHeader) unreadableHeader(`it is not UTF-8 text (${bytes.length} bytes)`);
          else if (at > readBefore.through) deadLetterNotUtf8(bytes, startsAt, target, context);
          continue;
        }
      } else if (readBefore.comparesAt(startsAt)) readBefore.check(startsAt, at, Buffer.byteLength(parsed.raw));
      row(parsed.fields, parsed.raw, startsAt, at);
      // Mid-run positions, so no batch holds more than maxBatch events (the runtime pushes a batch whole
      // before it waits for room): a run not UTF-8 somewhere, whose rows' byte offsets the parser does not
      // know, was one batch, every row of the chunk it came in. Not at a last row without its line end.
      if (events.length >= maxBatch && parsed !== openRow) {
        yield { events, throughLine: at, throughByte: byte + rowEndByte };
        events = [];
      }
    }
    if (open) {
      const firstLineEnds = openRow?.firstLineEnds ?? piece.lineEnds;
      const from = firstLineEnds === 0 ? 0 : (lineEnds ?? lineEndOffsets(piece.bytes))[firstLineEnds - 1]! + 1;
      throughLine = line + firstLineEnds - 1;
      throughByte = byte + from;
      unterminated = piece.bytes.length - from;
    } else {
      throughLine = line + piece.lineEnds - 1;
      throughByte = byte + piece.bytes.length;
    }
    line += piece.lineEnds;
    byte += piece.bytes.length;
    // Nothing more at hand (a live pipe): the rows so far go now, as readLineBatches hands on its lines.
    if (events.length > 0 && !(await moreAtHand(rest.stream))) {
      const decoded = batchThrough(events, throughLine, throughByte, unterminated, skipThrough);
      if (decoded) {
        yield decoded;
        events = [];
      }
    }
  }
  const decoded = batchThrough(events, throughLine, throughByte, unterminated, skipThrough);
  if (decoded) yield decoded;
}

/**
 * Whether a line is blank: no character above a space (what countLines, the progress total, counts as no
 * record). Not String#trim(), which also takes Unicode spaces (U+00A0, U+2028, U+FEFF) for blank: a line
 * of ` \u00a0` was then neither an event nor a dead letter, lost from the books.
 */
function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 32) return false;
  return true;
}

/** A batch's last line counted read: one the stream ended in, without its line end, is decoded but not counted (DecodedBatch.unterminated). */
function lastLineRead(batch: LineBatch): number {
  return batch.firstLine + batch.lines.length - 1 - (batch.unterminated === undefined ? 0 : 1);
}

/**
 * The batch that hands on a run's events and position; none where every line of the run was read
 * before (a resumed run passing them over) and the stream did not end inside a record.
 */
function batchThrough(events: ClickEvent[], throughLine: number, throughByte: number, unterminated: number | undefined, skipThrough: number): DecodedBatch | undefined {
  if (throughLine <= skipThrough && unterminated === undefined) return undefined;
  return unterminated === undefined ? { events, throughLine, throughByte } : { events, throughLine, throughByte, unterminated };
}

/** Why a record's quoted field ended it: the end of the file, or the bound. */
function unclosedReason(piece: { atEnd?: boolean }, line: number, maxRecordBytes: number): string {
  return piece.atEnd ? `the input ended inside a quoted field starting at line ${line}` : `quoted field not closed within max_record_bytes (${maxRecordBytes})`;
}

/**
 * What became of the lines after an unclosed quoted field's first line (which is dead-lettered): read again
 * as rows. Nothing where none follow: the input ended on that line (it said "the next line is read as a new
 * row", of a line there was not).
 */
function unclosedAfter(piece: { atEnd?: boolean; linesAfter?: boolean }): string {
  if (!piece.atEnd) return '; the next line is read as a new row';
  return piece.linesAfter ? '; the lines after it are read as rows' : '';
}

/** What a CSV file whose header row cannot be read fails with (read with the rows, or alone at a resume). */
function headerUnreadable(why: string, file?: string): TributaryError {
  // No restart mends it (TRIB_ERR_SOURCE_INPUT): every reading of the file meets the same row.
  const said = `the CSV header row is unreadable: ${why}`;
  if (file === undefined) return new TributaryError('TRIB_ERR_SOURCE_INPUT', said);
  return new TributaryError('TRIB_ERR_SOURCE_INPUT', `${file}: ${said}; fix the file, or name its columns in \`csv.columns\` with \`csv.header: true\` (the row is then passed over as the header)`);
}

/** The reason of a record longer than the bound. */
function overlongReason(bytes: number, maxRecordBytes: number): string {
  return `record of ${bytes} bytes is longer than max_record_bytes (${maxRecordBytes}); its first ${OVERLONG_HEAD_BYTES} bytes are kept`;
}

/**
 * A batch's lines the reader could not hand over as text, to the dead-letter sink: over the bound, or not
 * UTF-8 (as their exact bytes, base64). Those up to `skipThrough` were, by the run that got there.
 * `through(line)` sends those up to `line`, called as the decoder reaches each empty line of the batch
 * (where such a line stands in `lines`) and with Infinity after its last: so the batch's dead letters
 * keep the input's order, theirs among the decoder's own (malformed JSON, a mapping's rejection).
 * Undefined where the batch has none (the usual case: nothing is asked of the lines).
 */
function unreadLinesOf(batch: LineBatch, skipThrough: number, maxRecordBytes: number, target: DecodeTarget, context: PluginContext): { through(line: number): void } | undefined {
  const { overlong = [], notUtf8 = [] } = batch;
  if (overlong.length === 0 && notUtf8.length === 0) return undefined;
  let nextOverlong = 0;
  let nextNotUtf8 = 0;
  return {
    through(line: number): void {
      for (;;) {
        const long = overlong[nextOverlong];
        const bad = notUtf8[nextNotUtf8];
        if (long !== undefined && long.line <= line && (bad === undefined || long.line < bad.line)) {
          nextOverlong++;
          if (long.line > skipThrough) context.deadLetter({ reason: overlongReason(long.bytes, maxRecordBytes), raw: long.head, origin: { source: target.source, file: target.file, line: long.line } });
        } else if (bad !== undefined && bad.line <= line) {
          nextNotUtf8++;
          if (bad.line > skipThrough) deadLetterNotUtf8(bad.bytes, bad.line, target, context);
        } else return;
      }
    },
  };
}

function deadLetterNotUtf8(bytes: Buffer, line: number, target: DecodeTarget, context: PluginContext): void {
  context.deadLetter(notUtf8Rejection(bytes, { source: target.source, file: target.file, line }));
}

/** Where each line end of `bytes` ends (the index of its last byte), lines counted as csv-parse counts them. */
function lineEndOffsets(bytes: Buffer): number[] {
  const ends: number[] = [];
  for (let at = 0; at < bytes.length; at++) {
    const byte = bytes[at]!;
    if (byte === 10 || (byte === 13 && bytes[at + 1] !== 10)) ends.push(at);
  }
  return ends;
}

/** `bytes` without the line ends before and after it (the empty lines before a row are no part of it). */
function trimLineEnds(bytes: Buffer): Buffer {
  let start = 0;
  let end = bytes.length;
  while (start < end && (bytes[start] === 10 || bytes[start] === 13)) start++;
  while (end > start && (bytes[end - 1] === 10 || bytes[end - 1] === 13)) end--;
  return bytes.subarray(start, end);
}

/**
 * Stops line splitting at the first row the quoted-row reader might read otherwise than a split on
 * the delimiter: one with the quote character, or with a `\r` other than the one of a `\r\n` (a
 * line end of its own, which line splitting does not see).
 */
export function plainRowStop(quote: string): LineStop {
  let seen: string | undefined;
  let lastStart = -1;
  let nextQuote = -1;
  let nextCr = -1;
  return (text, start, end) => {
    // A new chunk: another text, or the same characters again (compared by value) from its start.
    if (text !== seen || start <= lastStart) {
      seen = text;
      nextQuote = quote === '' ? -1 : text.indexOf(quote);
      nextCr = text.indexOf('\r');
    }
    lastStart = start;
    // Each search goes on from where the last one ended: one pass over the chunk in all.
    if (nextQuote >= 0 && nextQuote < start) nextQuote = text.indexOf(quote, start);
    if (nextQuote >= 0 && nextQuote < end) return true;
    if (nextCr >= 0 && nextCr < start) nextCr = text.indexOf('\r', start);
    // nextCr is now the line's first \r, if it has one: only the `\r` of its `\r\n` is plain.
    return nextCr >= 0 && nextCr < end && !(nextCr === end - 1 && end < text.length);
  };
}

/**
 * Raw bytes -> canonical events, for the sources that read text (file, stdin): JSON lines or CSV,
 * mapped by the shared event mapper. Every line that cannot become an event goes to the dead-letter
 * sink with its reason, file and line.
 */
import type { Readable } from 'node:stream';
import { parse as parseCsv, type Options as CsvParserOptions } from 'csv-parse';
import {
  createEventMapper,
  isRejected,
  readLineBatches,
  type ClickEvent,
  type LineStop,
  type JsonSchema,
  type MappingConfig,
  type PluginContext,
} from 'tributary';

export type RecordFormat = 'jsonl' | 'csv';

export interface CsvConfig {
  header?: boolean;
  columns?: string[];
  delimiter?: string;
  quote?: string;
}

export interface DecodeConfig {
  format?: RecordFormat;
  csv?: CsvConfig;
  mapping?: MappingConfig;
}

/** Schema fields shared by every text source. */
export const decodeProperties: Record<string, JsonSchema> = {
  format: {
    enum: ['jsonl', 'csv'],
    description: 'Record format. Default: csv for .csv/.tsv (and .gz of them) files, else jsonl.',
  },
  csv: {
    type: 'object',
    additionalProperties: false,
    description: 'CSV options.',
    properties: {
      header: { type: 'boolean', default: true, description: 'The first row names the columns.' },
      columns: { type: 'array', items: { type: 'string' }, description: 'Column names, for files without a header row (or to rename a header).' },
      delimiter: { type: 'string', minLength: 1, default: ',', description: 'Field delimiter, e.g. `;` or `\\t`.' },
      quote: {
        type: 'string',
        maxLength: 1,
        default: '"',
        description:
          'Quote character. It quotes a field only at the field\'s start; elsewhere it is data (`Samsung 55" TV`), as Python\'s csv module and pandas read it. A quoted field never closed takes the rest of the file into one dead letter.',
      },
    },
  },
  mapping: { $ref: 'tributary:mapping' },
};

export interface DecodeTarget {
  /** Label of the source, for origins. */
  source: string;
  /** File path or `stdin`. */
  file: string;
}

/** Events decoded from a run of lines, and the last line consumed (rejected lines included). */
export interface DecodedBatch {
  events: ClickEvent[];
  throughLine: number;
  /** Bytes of the stream through that line (a point to resume reading at). */
  throughByte?: number;
}

/** Where a stream starts in its file, when that is past the beginning (a resume point). */
export interface StreamStart {
  /** Line number of the stream's first line. */
  line: number;
  /** CSV: the column names, from the file's header row or `csv.columns` (the header row is not in the stream). */
  columns?: string[];
}

/**
 * Yields batches of events decoded from `stream`; rejects go to `context.deadLetter`. Lines up to
 * `skipThrough` are passed over unread (resuming after a checkpoint), so nothing is decoded or
 * dead-lettered twice. A stream that starts past the file's beginning (a resume point) says where
 * with `start`.
 */
export function decodeStream(
  stream: Readable,
  format: RecordFormat,
  config: DecodeConfig,
  target: DecodeTarget,
  context: PluginContext,
  maxBatch: number,
  skipThrough = 0,
  start: StreamStart = { line: 1 },
  options: { plainCsvRows?: boolean } = {},
): AsyncGenerator<DecodedBatch> {
  return format === 'csv'
    ? decodeCsv(stream, config, target, context, maxBatch, skipThrough, start, options.plainCsvRows ?? true)
    : decodeJsonLines(stream, config, target, context, maxBatch, skipThrough, start.line);
}

/**
 * csv-parse's options for a source's `csv` config (one place, for the rows and for a header read alone).
 * `relax_quotes`: a quote inside an unquoted field is data. Strict, csv-parse rejected such a row as
 * several dead letters, each with a part of the row, and with `"a"b` went on to swallow the next rows.
 */
function csvParserOptions(csv: CsvConfig): CsvParserOptions {
  return { delimiter: csv.delimiter ?? ',', quote: csv.quote ?? '"', relax_quotes: true, relax_column_count: true, skip_empty_lines: true, bom: true };
}

/**
 * The column names a CSV file's rows are read with: `csv.columns`, else its header row (read from
 * the file's start); undefined for a headerless file without `csv.columns`.
 */
export async function csvColumns(open: () => Readable, csv: CsvConfig = {}): Promise<string[] | undefined> {
  if (csv.columns) return csv.columns;
  if (csv.header === false) return undefined;
  const stream = open();
  const parser = parseCsv({ ...csvParserOptions(csv), to: 1 });
  try {
    for await (const record of stream.pipe(parser) as AsyncIterable<string[]>) return record;
    return undefined;
  } finally {
    stream.destroy();
  }
}

async function* decodeJsonLines(
  stream: Readable,
  config: DecodeConfig,
  target: DecodeTarget,
  context: PluginContext,
  maxBatch: number,
  skipThrough: number,
  startLine: number,
): AsyncGenerator<DecodedBatch> {
  const map = createEventMapper(config.mapping);
  for await (const { lines, firstLine, endByte } of readLineBatches(stream, maxBatch, startLine)) {
    const events: ClickEvent[] = [];
    for (let i = Math.max(0, skipThrough - firstLine + 1); i < lines.length; i++) {
      const text = lines[i]!;
      if (text.length === 0 || (text.charCodeAt(0) <= 32 && text.trim() === '')) continue; // blank lines are not records
      const origin = { source: target.source, file: target.file, line: firstLine + i };
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (error) {
        context.deadLetter({ reason: `malformed JSON: ${(error as Error).message}`, raw: text, origin });
        continue;
      }
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        context.deadLetter({ reason: `expected a JSON object, got ${Array.isArray(raw) ? 'an array' : typeof raw}`, raw: text, origin });
        continue;
      }
      const result = map(raw as Record<string, unknown>, origin);
      if (isRejected(result)) context.deadLetter({ reason: result.rejected, raw: text, origin });
      else events.push(result);
    }
    const throughLine = firstLine + lines.length - 1;
    if (throughLine > skipThrough) yield { events, throughLine, throughByte: endByte };
  }
}

interface CsvRow {
  record: string[];
  raw: string;
  /** Lines and bytes of the stream through this row. */
  info: { lines: number; bytes: number };
}

async function* decodeCsv(
  stream: Readable,
  config: DecodeConfig,
  target: DecodeTarget,
  context: PluginContext,
  maxBatch: number,
  skipThrough: number,
  start: StreamStart,
  plainRows: boolean,
): AsyncGenerator<DecodedBatch> {
  const map = createEventMapper(config.mapping);
  const csv = config.csv ?? {};
  // Past the file's start the header row is behind us: the columns come with `start`.
  const midFile = start.line > 1;
  let columns: string[] | undefined = midFile ? start.columns : csv.columns;
  let skipHeader = !midFile && (csv.header ?? true);
  let events: ClickEvent[] = [];
  let throughLine = 0;
  let throughByte = 0;

  /** One row: the header, an event, or a dead letter. */
  const row = (record: string[], rawText: string, line: number): void => {
    if (skipHeader) {
      skipHeader = false;
      columns ??= record;
      return;
    }
    if (line <= skipThrough) return;
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
    for (let i = 0; i < columns.length; i++) raw[columns[i]!] = record[i];
    const result = map(raw, origin);
    if (isRejected(result)) context.deadLetter({ reason: result.rejected, raw: rawText, origin });
    else events.push(result);
  };

  // Plain rows (no quote character, the file's own line ends) are what csv-parse would split on the
  // delimiter, so they are split here, about 10x faster than through the parser; from the first row
  // that is not plain on, csv-parse reads the rest of the stream.
  let rest: { stream: Readable; line: number; byte: number } = { stream, line: start.line, byte: 0 };
  if (plainRows) {
    const delimiter = csv.delimiter ?? ',';
    let bom = start.line === 1;
    let handedOver = false;
    for await (const batch of readLineBatches(stream, maxBatch, start.line, plainRowStop(csv.quote ?? '"'))) {
      for (let i = 0; i < batch.lines.length; i++) {
        let text = batch.lines[i]!;
        if (bom) {
          bom = false;
          if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        }
        if (text.length > 0) row(text.split(delimiter), text, batch.firstLine + i); // csv-parse skips empty lines
      }
      if (batch.lines.length > 0) {
        throughLine = batch.firstLine + batch.lines.length - 1;
        throughByte = batch.endByte;
        if (throughLine > skipThrough) yield { events, throughLine, throughByte };
        events = [];
      }
      if (batch.rest) {
        rest = batch.rest;
        handedOver = true;
      }
    }
    if (!handedOver) return;
  }

  // The parser counts lines and bytes from the start of what it reads. It counts a `\r\n` inside a
  // quoted field as two lines (each of `\r` and `\n` starts one), so those are taken off again.
  let linesBefore = rest.line - 1;
  const bytesBefore = rest.byte;
  const parser = parseCsv({
    ...csvParserOptions(csv),
    skip_records_with_error: true,
    raw: true,
    info: true,
    on_skip: (error, raw) => {
      const counted = error && 'lines' in error ? Number((error as unknown as { lines: number }).lines) : undefined;
      if (typeof raw === 'string') linesBefore -= innerCrlfCount(raw);
      const line = counted === undefined ? undefined : linesBefore + counted;
      // Resuming: a row up to the position was dead-lettered by the run that got there.
      if (line !== undefined && line <= skipThrough) return undefined;
      context.deadLetter({
        reason: `malformed CSV: ${error?.message ?? 'unreadable row'}`,
        raw: typeof raw === 'string' ? withoutLineEnd(raw) : raw,
        origin: { source: target.source, file: target.file, ...(line !== undefined ? { line } : {}) },
      });
      return undefined;
    },
  });
  rest.stream.on('error', (error) => parser.destroy(error));
  // What the parser was given, so the last position covers the rows it skipped at the end too (its own
  // counts stop at the last record it emitted): a resumed run must not dead-letter them again.
  let restBytes = 0;
  let restNewlines = 0;
  let restEndsWithNewline = true;
  rest.stream.on('data', (chunk: Buffer) => {
    restBytes += chunk.length;
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) restNewlines++;
    if (chunk.length > 0) restEndsWithNewline = chunk[chunk.length - 1] === 10;
  });
  for await (const parsed of rest.stream.pipe(parser) as AsyncIterable<CsvRow>) {
    linesBefore -= innerCrlfCount(parsed.raw);
    const line = linesBefore + parsed.info.lines;
    row(parsed.record, withoutLineEnd(parsed.raw), line);
    throughLine = line;
    throughByte = bytesBefore + parsed.info.bytes;
    if (events.length >= maxBatch) {
      yield { events, throughLine, throughByte };
      events = [];
    }
  }
  if (restBytes > 0) {
    // Never behind the parser's own count (a file of `\r` line ends has no `\n` to count).
    throughLine = Math.max(throughLine, rest.line - 1 + restNewlines + (restEndsWithNewline ? 0 : 1));
    throughByte = bytesBefore + restBytes;
  }
  if (throughLine > skipThrough) yield { events, throughLine, throughByte };
}

/** A row's raw text as csv-parse gives it, without its line end (it keeps the `\r` of a `\r\n`). */
function withoutLineEnd(raw: string): string {
  return raw.replace(/\r?\n$|\r$/, '');
}

/** `\r\n` pairs in a row's raw text before its own line end: inside quoted fields. */
function innerCrlfCount(raw: string): number {
  let count = 0;
  const last = raw.length - 2; // a pair starting here is the row's own line end
  for (let at = raw.indexOf('\r\n'); at !== -1 && at < last; at = raw.indexOf('\r\n', at + 2)) count++;
  return count;
}

/**
 * Stops line splitting at the first row csv-parse might read otherwise than a split on the
 * delimiter: one with the quote character, or whose line end is not the stream's own (the first
 * line's, `\n` or `\r\n`; csv-parse takes that as the record delimiter), or with a `\r` elsewhere.
 */
function plainRowStop(quote: string): LineStop {
  let crlf: boolean | undefined;
  let seen: string | undefined;
  let nextQuote = -1;
  let nextCr = -1;
  return (text, start, end) => {
    if (text !== seen) {
      seen = text;
      nextQuote = quote === '' ? -1 : text.indexOf(quote);
      nextCr = text.indexOf('\r');
    }
    // Each search goes on from where the last one ended: one pass over the chunk in all.
    if (nextQuote >= 0 && nextQuote < start) nextQuote = text.indexOf(quote, start);
    if (nextQuote >= 0 && nextQuote < end) return true;
    if (nextCr >= 0 && nextCr < start) nextCr = text.indexOf('\r', start);
    // nextCr is now the line's first \r, if it has one.
    const endsInCr = end > start && end < text.length && nextCr === end - 1;
    crlf ??= endsInCr;
    return crlf ? !endsInCr : nextCr >= 0 && nextCr < end;
  };
}

/**
 * The CSV reader for rows that are not plain (a quote, a lone `\r`). It finds where records end
 * before reading their fields (parseCsvRun), so that it holds at most one record's worth of bytes:
 * a quoted field never closed (a truncated export, a stray `"` at a field's start) would otherwise
 * take the rest of the file into one record, in memory. Its rules are csv-parse's with
 * `relax_quotes`, the quote as its own escape and `record_delimiter: ['\r\n', '\n', '\r']` (tests
 * hold it to csv-parse): a quote opens a quoted field only at the field's start; inside one, a
 * doubled quote is a quote, and a quote closes the field when a delimiter, a line end or the end
 * follows it (elsewhere it is data). Each of `\r\n`, `\n` and `\r` outside quotes ends a record,
 * as in Python's csv module: not only the first one seen (csv-parse's default), for a file whose
 * line ends change partway (appended to on two systems, exports concatenated) is read row by row.
 */
import type { Readable } from 'node:stream';
import { countNewlines, OVERLONG_HEAD_BYTES } from './io.js';

/** A stretch of the stream, in order: whole records, or one line taken out of the stream. */
export type CsvPiece =
  | {
      kind: 'records';
      /** Whole records, each with its line end (the last one's may be the end of the stream). */
      bytes: Buffer;
      /** Line ends in `bytes` (a `\r\n` is one). */
      lineEnds: number;
    }
  | {
      /**
       * `unclosed`: the first line of a record whose quoted field was not closed within the bound or
       * by the end of the stream; reading goes on at the next line. `overlong`: a whole record, or a
       * line, longer than the bound.
       */
      kind: 'unclosed' | 'overlong';
      /** unclosed: the end of the stream came first (else the bound). */
      atEnd?: boolean;
      /** unclosed at the end: lines follow its first line (the quoted field took them; they are read again as rows). */
      linesAfter?: boolean;
      /** Its bytes as text: the whole line (unclosed), its first {@link OVERLONG_HEAD_BYTES} bytes (overlong). */
      text: string;
      /** Its length in bytes, its line end included. */
      byteLength: number;
      /** Its length in bytes without its line end. */
      recordBytes: number;
      lineEnds: number;
    };

export interface CsvRecordOptions {
  delimiter: string;
  /** '' for none. */
  quote: string;
  /** Longest record held, in bytes. */
  maxRecordBytes: number;
  /** The stream starts at the file's start (a BOM there is not data). */
  atFileStart: boolean;
}

const CR = 13;
const LF = 10;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** Splits `stream` into pieces; holds the current chunk and at most `maxRecordBytes` of an open record. */
export async function* csvRecordPieces(stream: Readable, options: CsvRecordOptions): AsyncGenerator<CsvPiece> {
  const delimiter = Buffer.from(options.delimiter);
  const quote = options.quote === '' ? undefined : Buffer.from(options.quote);
  const max = options.maxRecordBytes;
  const d0 = delimiter[0]!;
  const q0 = quote?.[0] ?? -1;
  let pending: Buffer = Buffer.alloc(0);
  /** Start of the record being read; bytes before it are whole records not yet handed out. */
  let recordStart = 0;
  let pos = 0;
  let quoting = false;
  let fieldEmpty = true;
  /** A line over the bound being read past (no line end yet). */
  let skipping: { text: string; byteLength: number; lastByte: number; heldLineEnds: number } | undefined;
  let first = options.atFileStart;

  const matches = (buf: Buffer, at: number, what: Buffer): boolean => {
    if (buf[at] !== what[0]) return false;
    for (let i = 1; i < what.length; i++) if (buf[at + i] !== what[i]) return false;
    return true;
  };
  /** End (after its line end) of the line that starts at `from`, or undefined when its line end is not read yet. */
  const firstLine = (buf: Buffer, from: number, eof: boolean): number | undefined => {
    for (let at = from; at < buf.length; at++) {
      const c = buf[at];
      if (c !== LF && c !== CR) continue;
      // A `\r` last in the buffer may be the first half of a `\r\n`.
      if (c === CR && at + 1 === buf.length && !eof) return undefined;
      return at + (c === CR && buf[at + 1] === LF ? 2 : 1);
    }
    return undefined;
  };
  /** Whole records before `recordStart`, handed out and dropped. */
  function* takeRecords(): Generator<CsvPiece> {
    if (recordStart === 0) return;
    const bytes = pending.subarray(0, recordStart);
    yield { kind: 'records', bytes, lineEnds: countLineEnds(bytes) };
    pending = pending.subarray(recordStart);
    pos -= recordStart;
    recordStart = 0;
  }
  /** Resets the quote state: what follows a cut starts a record. */
  const restart = (from: number): void => {
    pending = pending.subarray(from);
    pos = 0;
    quoting = false;
    fieldEmpty = true;
  };
  /** The current record's first line out as `kind`; reading starts again after it, outside any quote. */
  function* cutFirstLine(eof: boolean, atEnd: boolean): Generator<CsvPiece> {
    yield* takeRecords();
    const end = firstLine(pending, 0, eof) ?? (eof ? pending.length : undefined);
    if (end === undefined) {
      // The line alone is over the bound: read past it.
      skipping = { text: pending.toString('utf8', 0, Math.min(pending.length, OVERLONG_HEAD_BYTES)), byteLength: pending.length, lastByte: pending[pending.length - 1]!, heldLineEnds: 0 };
      restart(pending.length);
      return;
    }
    const line = pending.subarray(0, end);
    const recordBytes = end - lineEndLength(line);
    yield recordBytes > max
      ? { kind: 'overlong', text: line.toString('utf8', 0, Math.min(recordBytes, OVERLONG_HEAD_BYTES)), byteLength: end, recordBytes, lineEnds: countLineEnds(line) }
      : { kind: 'unclosed', atEnd, linesAfter: atEnd && pending.length > end, text: line.toString('utf8', 0, recordBytes), byteLength: end, recordBytes, lineEnds: countLineEnds(line) };
    restart(end);
  }
  /**
   * The current record, past the bound outside a quoted field, out as `overlong` through the line end
   * after `pos` (a quote after the bound opens no field: scan); read past where that is not read yet. Its
   * lines before `pos` are inside a quoted field it closed (a line end outside one would have ended it),
   * so it is one record, as a scan of it whole finds.
   */
  function* cutThroughLine(eof: boolean): Generator<CsvPiece> {
    yield* takeRecords();
    const end = firstLine(pending, pos, eof) ?? (eof ? pending.length : undefined);
    if (end !== undefined) {
      yield* cutRecord(end);
      return;
    }
    // A `\r` last is the line end the reading past finds (with a `\n` after it or not): not one of the held lines.
    const lastByte = pending[pending.length - 1]!;
    const heldLineEnds = countLineEnds(lastByte === CR ? pending.subarray(0, pending.length - 1) : pending);
    skipping = { text: pending.toString('utf8', 0, Math.min(pending.length, OVERLONG_HEAD_BYTES)), byteLength: pending.length, lastByte, heldLineEnds };
    restart(pending.length);
  }
  /** A whole record over the bound (ending at `end`) out as `overlong`. */
  function* cutRecord(end: number): Generator<CsvPiece> {
    const length = end - recordStart;
    yield* takeRecords();
    const record = pending.subarray(0, length);
    const recordBytes = length - lineEndLength(record);
    yield { kind: 'overlong', text: record.toString('utf8', 0, Math.min(recordBytes, OVERLONG_HEAD_BYTES)), byteLength: length, recordBytes, lineEnds: countLineEnds(record) };
    restart(length);
  }

  const dLength = delimiter.length;
  const qLength = quote?.length ?? 0;
  /** No delimiter or quote read on past a `\n` (csvConfigProblems makes one holding a line end a config error; a caller of decodeRecords may not check). */
  const lfEndsReading = !delimiter.includes(LF) && !(quote?.includes(LF) ?? false);
  /** End of a whole record over the bound that `scan` stopped after, or -1. */
  let overlongEnd = -1;
  /**
   * Scans `pending` from `pos` as far as it can: to its end at the end of the stream, else to where
   * a quote or line end would need bytes not read yet. A record without a quote is passed over with
   * native searches kept ahead of the cursor (the next `\n`, `\r` and quote: one each per row at
   * most, and once per chunk for one the chunk does not hold); others byte by byte. A plain
   * function with its state in locals: it runs for everything after the first quoted row.
   */
  function scan(eof: boolean): void {
    const buf = pending;
    const len = buf.length;
    if (first && (len >= BOM.length || eof)) {
      first = false;
      if (pos === 0 && matches(buf, 0, BOM)) pos = BOM.length; // csv-parse drops it: a quote after it opens a field
    }
    // Short of the end, the last bytes wait for more (a quote or `\r` there may be half of `""` or `\r\n`,
    // a delimiter or quote half read), but not after a last `\n`: nothing there reads past it (neither
    // delimiter nor quote holds a line end), so a live pipe's last row goes on without the next write.
    const end = eof || (buf[len - 1] === LF && lfEndsReading) ? len : len - (Math.max(dLength, qLength, 2) + qLength);
    let p = pos;
    let inQuotes = quoting;
    let empty = fieldEmpty;
    let start = recordStart;
    /** Index of the next quote, `\n` and `\r` at or after the last search for each, -1 for none in `buf`. */
    let nextQuote = quote === undefined ? -1 : -2;
    let nextLf = -2;
    let nextCr = -2;
    while (p < end) {
      if (p === start && !inQuotes) {
        if (nextQuote !== -1 && nextQuote < p) nextQuote = buf.indexOf(quote!, p);
        if (nextLf !== -1 && nextLf < p) nextLf = buf.indexOf(LF, p);
        if (nextCr !== -1 && nextCr < p) nextCr = buf.indexOf(CR, p);
        const recordEnd = nextCr === -1 || (nextLf !== -1 && nextLf < nextCr) ? nextLf : nextCr;
        if (recordEnd !== -1 && recordEnd < end && (nextQuote === -1 || nextQuote > recordEnd)) {
          // Before `end`, the byte after a `\r` is read.
          p = recordEnd + (recordEnd === nextCr && buf[recordEnd + 1] === LF ? 2 : 1);
          if (recordEnd - start > max) {
            overlongEnd = p;
            break;
          }
          start = p;
          continue;
        }
      }
      const c = buf[p]!;
      if (inQuotes) {
        if (c === q0 && (qLength === 1 || matches(buf, p, quote!))) {
          const after = p + qLength;
          if (after < len && buf[after] === q0 && (qLength === 1 || matches(buf, after, quote!))) {
            p = after + qLength; // a doubled quote: one quote of data
            continue;
          }
          // Closes the field before a delimiter, a line end or the end; elsewhere it is data.
          inQuotes = false;
          empty = false;
          p = after;
          continue;
        }
        // Past the bound in a quoted field: its first line is cut (drain), whether or not the quote closes
        // in what is read. Scanned on to a close, the whole record was one overlong dead letter, taking the
        // rows after its first line with it, or not, as the chunks happened to end.
        if (p - start > max) break;
        p++;
        continue;
      }
      if (c === LF || c === CR) {
        const recordEnd = p;
        p += c === CR && buf[p + 1] === LF ? 2 : 1;
        if (recordEnd - start > max) {
          overlongEnd = p;
          break;
        }
        start = p;
        empty = true;
        continue;
      } else if (c === d0 && (dLength === 1 || matches(buf, p, delimiter))) {
        p += dLength;
        empty = true;
        continue;
      } else if (c === q0 && empty && p - start <= max && (qLength === 1 || matches(buf, p, quote!))) {
        // Past the bound a quote is data: the record ends at its line's end (cutThroughLine), read in chunks or whole.
        inQuotes = true;
        p += qLength;
        continue;
      }
      empty = false;
      p++;
    }
    pos = p;
    quoting = inQuotes;
    fieldEmpty = empty;
    recordStart = start;
  }

  /** Scans all it can; cuts a record over the bound, or one the end left open, and scans what follows. */
  function* drain(eof: boolean): Generator<CsvPiece> {
    for (;;) {
      scan(eof);
      if (overlongEnd !== -1) {
        const end = overlongEnd;
        overlongEnd = -1;
        yield* cutRecord(end);
      } else if (pos - recordStart > max) yield* quoting ? cutFirstLine(eof, false) : cutThroughLine(eof);
      else if (eof && quoting) yield* cutFirstLine(true, true);
      else return;
      if (skipping) return;
    }
  }

  const chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await chunks.next();
      const eof = next.done === true;
      let chunk: Buffer = eof ? Buffer.alloc(0) : next.value;
      if (skipping) {
        // A `\r` last in the chunks before ended the line (they are read up to one): with this chunk's
        // first byte when that is a `\n` (a `\r\n` split between chunks).
        const afterCr = skipping.lastByte === CR;
        const end = afterCr ? (chunk.length > 0 ? (chunk[0] === LF ? 1 : 0) : eof ? 0 : undefined) : eof ? 0 : firstLine(chunk, 0, false);
        if (end === undefined) {
          skipping.byteLength += chunk.length;
          if (chunk.length > 0) skipping.lastByte = chunk[chunk.length - 1]!;
          continue;
        }
        const lineEnd = afterCr ? end + 1 : lineEndLength(chunk.subarray(0, end));
        const byteLength = skipping.byteLength + end;
        yield { kind: 'overlong', text: skipping.text, byteLength, recordBytes: byteLength - lineEnd, lineEnds: skipping.heldLineEnds + (lineEnd > 0 ? 1 : 0) };
        skipping = undefined;
        chunk = chunk.subarray(end);
      }
      pending = pending.length === 0 ? chunk : chunk.length === 0 ? pending : Buffer.concat([pending, chunk]);
      yield* drain(eof);
      if (eof) recordStart = pending.length; // the last record, without a line end
      yield* takeRecords();
      if (eof) return;
    }
  } finally {
    await chunks.return?.();
  }
}

/** Bytes of the line end `line` ends with: 2 for `\r\n`, 1 for `\n` or `\r`, 0 for none. */
function lineEndLength(line: Buffer): number {
  const last = line[line.length - 1];
  if (last === LF) return line[line.length - 2] === CR ? 2 : 1;
  return last === CR ? 1 : 0;
}

/** Line ends: `\n`, and `\r` but for the `\r` of a `\r\n` (as csv-parse counts lines outside quotes). */
export function countLineEnds(bytes: Buffer): number {
  let count = countNewlines(bytes);
  for (let at = bytes.indexOf(CR); at !== -1; at = bytes.indexOf(CR, at + 1)) if (bytes[at + 1] !== LF) count++;
  return count;
}

/** One row of a run of whole records. */
export interface CsvRunRow {
  fields: string[];
  /** The row's text, without its line end. */
  raw: string;
  /** Line ends in the run before the row's first line (where it starts, counted from the run's first line). */
  firstLineEnds: number;
  /** Line ends in the run before the row's last line (a quoted field may hold line ends): where it ends. */
  lineEnds: number;
  /** Byte offset in the run just after the row's line end (a point to resume at); NaN in a run that is not valid UTF-8. */
  end: number;
}

export interface CsvRunOptions {
  delimiter: string;
  /** '' for none. */
  quote: string;
  /** The run starts the file: a BOM there is not data. */
  atFileStart: boolean;
}

/**
 * The rows of a run of whole records, as csv-parse reads them with `relax_quotes`,
 * `relax_column_count`, `skip_empty_lines` and `record_delimiter: ['\r\n', '\n', '\r']` (a
 * differential test holds them to it): each line end outside quotes ends a record; a quoted
 * field's `""` is a quote; a quote that closes a field but is followed by neither a delimiter, a
 * line end nor the end is data, with the field's opening quote (`"u"x` stays `"u"x`); a
 * line with nothing on it is no row. Written for this reader because csv-parse's per-row info and
 * raw objects cost it about 12 µs a row, and its byte-by-byte state machine most of the rest.
 */
export function parseCsvRun(bytes: Buffer, options: CsvRunOptions): CsvRunRow[] {
  const text = bytes.toString('utf8');
  const n = text.length;
  const ascii = n === bytes.length;
  // Byte offsets from the text: exact unless decoding replaced invalid bytes.
  const exactBytes = ascii || Buffer.byteLength(text) === bytes.length;
  const delimiter = options.delimiter;
  const quote = options.quote;
  const dLen = delimiter.length;
  const qLen = quote.length;
  const d0 = delimiter.charCodeAt(0);
  const q0 = qLen === 0 ? -1 : quote.charCodeAt(0);
  const at = (i: number, what: string, code: number, length: number): boolean => text.charCodeAt(i) === code && (length === 1 || text.startsWith(what, i));
  const atDelimiter = (i: number): boolean => at(i, delimiter, d0, dLen);
  const atQuote = (i: number): boolean => qLen > 0 && at(i, quote, q0, qLen);
  const atRecordEnd = (i: number): boolean => {
    const c = text.charCodeAt(i);
    return c === 10 || c === 13;
  };
  // The next `\n` and `\r`, each found with a search kept ahead of the cursor (a file of one kind
  // of line end has none of the other, and a search per row from there would read the rest of the run each time).
  let endLf = -2;
  let endCr = -2;
  /** The next line end at or after `from` (n for none). */
  const nextRecordEnd = (from: number): number => {
    if (endLf !== -1 && endLf < from) endLf = text.indexOf('\n', from);
    if (endCr !== -1 && endCr < from) endCr = text.indexOf('\r', from);
    const k = endCr === -1 || (endLf !== -1 && endLf < endCr) ? endLf : endCr;
    return k === -1 ? n : k;
  };
  /** The next delimiter at or after `from`, -1 for none: one search kept ahead of the cursor (a file of one column has none, and a search per row from there would read the rest of the run each time). */
  let nextDelimiter = -2;
  const delimiterFrom = (from: number): number => {
    if (nextDelimiter !== -1 && nextDelimiter < from) nextDelimiter = text.indexOf(delimiter, from);
    return nextDelimiter;
  };
  // Line ends inside a row (in quoted fields; `\r\n` once); found with searches kept ahead of the cursor.
  let nextLf = -2;
  let nextCr = -2;
  const lineEndsIn = (from: number, to: number): number => {
    let count = 0;
    if (nextLf !== -1 && nextLf < from) nextLf = text.indexOf('\n', from);
    while (nextLf !== -1 && nextLf < to) {
      count++;
      nextLf = text.indexOf('\n', nextLf + 1);
    }
    if (nextCr !== -1 && nextCr < from) nextCr = text.indexOf('\r', from);
    while (nextCr !== -1 && nextCr < to) {
      if (text.charCodeAt(nextCr + 1) !== 10) count++;
      nextCr = text.indexOf('\r', nextCr + 1);
    }
    return count;
  };

  const rows: CsvRunRow[] = [];
  let i = options.atFileStart && text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let lineEnds = 0;
  let byte = 0;
  let byteAt = 0;
  while (i < n) {
    const start = i;
    const recordEnd = nextRecordEnd(i);
    const fields: string[] = [];
    let quoted = false;
    for (;;) {
      // At a field's start.
      if (atQuote(i)) {
        quoted = true;
        let value = '';
        let from = i + qLen;
        let closedAt = -1;
        for (let k = text.indexOf(quote, from); k !== -1; k = text.indexOf(quote, k)) {
          if (text.startsWith(quote, k + qLen)) {
            value += text.slice(from, k) + quote; // a doubled quote
            k += 2 * qLen;
            from = k;
            continue;
          }
          value += text.slice(from, k);
          closedAt = k + qLen;
          break;
        }
        if (closedAt === -1) {
          // Not closed by the run's end (the reader cuts such records; kept whole for safety).
          fields.push(value + text.slice(from));
          i = n;
          break;
        }
        i = closedAt;
        if (i < n && !atDelimiter(i) && !atRecordEnd(i)) {
          // Closed before data: the quotes are data too, and so is the rest up to the field's end.
          const recordEndAfter = recordEnd > i ? recordEnd : nextRecordEnd(i);
          const d = delimiterFrom(i);
          const end = d !== -1 && d < recordEndAfter ? d : recordEndAfter;
          fields.push(quote + value + quote + text.slice(i, end));
          i = end;
        } else fields.push(value);
      } else {
        // A quoted field may have carried the record past the delimiter found before it.
        const recordEndNow = recordEnd >= i ? recordEnd : nextRecordEnd(i);
        const d = delimiterFrom(i);
        const end = d !== -1 && d < recordEndNow ? d : recordEndNow;
        fields.push(text.slice(i, end));
        i = end;
      }
      if (i < n && atDelimiter(i)) {
        i += dLen;
        continue;
      }
      break;
    }
    // At a line end or the end. A quoted field may end past `recordEnd` (a line end inside).
    const rowEnd = i;
    const after = i < n ? i + (text.charCodeAt(i) === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1) : n;
    const inner = rowEnd === recordEnd ? 0 : lineEndsIn(start, rowEnd);
    if (ascii) byte = after;
    else if (!exactBytes) byte = NaN;
    else {
      byte += Buffer.byteLength(text.slice(byteAt, after));
      byteAt = after;
    }
    if (quoted || fields.length > 1 || fields[0] !== '') rows.push({ fields, raw: text.slice(start, rowEnd), firstLineEnds: lineEnds, lineEnds: lineEnds + inner, end: byte });
    lineEnds += inner + (after > rowEnd ? 1 : 0);
    i = after;
  }
  return rows;
}

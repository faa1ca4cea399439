/**
 * Line-oriented input and output shared by file, stdin and user sources and sinks: both run once per
 * record, so both work on whole chunks rather than per line.
 */
import { isUtf8 } from 'node:buffer';
import { once } from 'node:events';
import { Readable, type Writable } from 'node:stream';
import type { Origin } from './events.js';
import { JsonBuffer, NO_ROOM, recordToJson, writeRecordJson } from './json.js';
import type { Rejection } from './plugin.js';

export interface LineBatch {
  lines: string[];
  /** 1-based line number of `lines[0]`. */
  firstLine: number;
  /**
   * Bytes of the stream up to and including the last newline read (a resume point for a file): a last
   * line the stream ended inside (`unterminated`) is not counted.
   */
  endByte: number;
  /**
   * The stream ended inside the batch's last line, before its newline (a file whose last line has none,
   * or one a writer is still writing): that line's length in bytes (without a `\r` it ends with; an
   * overlong one's as `overlong` gives it). It comes as any line does, but `endByte` stops before it, so
   * that a resume point never lies past a line that may not be whole yet.
   */
  unterminated?: number;
  /**
   * The last batch when `stopAt` stopped at a line: the stream from that line's first byte on. It is
   * the reader's once it asks for the next batch (the loop goes on); leaving at this one closes it.
   */
  rest?: LineRest;
  /**
   * Lines longer than `maxLineBytes`, in line order: each stands in `lines` as an empty string (so
   * line numbers stay in step) and is described here instead, for the reader to dead-letter.
   */
  overlong?: OverlongLine[];
  /**
   * Lines that are not UTF-8 text (a Latin-1 byte, a binary record), in line order: each stands in
   * `lines` as an empty string and is given here as its exact bytes, for the reader to dead-letter
   * (decoded, its bytes would be lost to U+FFFD).
   */
  notUtf8?: NotUtf8Line[];
}

/** A line that is not UTF-8 text: its number and its bytes (without the line end). */
export interface NotUtf8Line {
  line: number;
  bytes: Buffer;
}

/**
 * The dead letter of a record that is not UTF-8 text (a Latin-1 byte, Avro, Protobuf), as its exact
 * bytes: decoded, they would be lost to U+FFFD. Every source says it the same way.
 */
export function notUtf8Rejection(bytes: Buffer, origin?: Origin): Rejection {
  return {
    reason: `record is not UTF-8 text (${bytes.length} bytes); raw is its exact bytes in base64`,
    raw: bytes.toString('base64'),
    encoding: 'base64',
    ...(origin ? { origin } : {}),
  };
}

/** A line too long to hold: its number, its length and its first bytes. */
export interface OverlongLine {
  line: number;
  /** Its length in bytes, without the line end. */
  bytes: number;
  /** Its first {@link OVERLONG_HEAD_BYTES} bytes as text (a character cut at the end shows as U+FFFD). */
  head: string;
}

/**
 * Default bound of one record (a line, a CSV row) a text reader holds: Kafka's default largest
 * message. A longer one is dead-lettered with its first bytes, never held whole: a file without a
 * newline (or with a quote never closed) must not take the process's memory.
 */
export const DEFAULT_MAX_RECORD_BYTES = 1 << 20;
/** Bytes of an overlong record kept for its dead letter. */
export const OVERLONG_HEAD_BYTES = 1024;

/**
 * How many `\n` bytes `bytes` holds: the records of JSON lines (a `\r\n` counts once, a lone `\r` not;
 * CSV's line count, which counts a lone `\r`, is csv-records' countLineEnds).
 * @internal For the built-in plugins (the file sink); not documented API, may change.
 */
export function countNewlines(bytes: Buffer): number {
  let count = 0;
  for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) count++;
  return count;
}

/** What is left of a stream where {@link readLineBatches} stopped: to be read by someone else. */
export interface LineRest {
  /** Line number and stream offset of the stopping line. */
  line: number;
  byte: number;
  /** Its bytes, from that line's first byte to the end of the stream. */
  stream: Readable;
}

/**
 * Says whether reading lines stops at the line `text.slice(start, end)`; `end` is the index of its
 * newline (the `\r` of a `\r\n` still before it), or `text.length` for a last line without one.
 * Called for each line in order, with the same `text` for the lines of one chunk.
 */
export type LineStop = (text: string, start: number, end: number) => boolean;

export interface LineBatchOptions {
  /** Number of the stream's first line (a file read from a resume point). Default 1. */
  startLine?: number;
  /**
   * The lines before the first one it accepts come in batches as usual, and the last batch hands
   * over the stream from that line on as `rest` (for a reader that needs what line splitting cannot do).
   */
  stopAt?: LineStop;
  /** Longest line held, in bytes; longer ones come as `overlong`. Default {@link DEFAULT_MAX_RECORD_BYTES}. */
  maxLineBytes?: number;
  /**
   * A line longer than `maxLineBytes` stops reading as `stopAt` does, instead of coming as `overlong`:
   * for a reader whose records may end elsewhere than at a newline (a CSV row ends at a lone `\r`
   * too), which bounds them itself.
   */
  stopAtOverlong?: boolean;
}

/**
 * Splits a byte stream into batches of at most `maxBatch` lines (without their `\n` or `\r\n`).
 * Works on Buffers so a multi-byte character split across chunks is never cut. Memory is bounded
 * by the chunk size and `maxLineBytes`, whatever the stream holds.
 */
export async function* readLineBatches(stream: Readable, maxBatch: number, options: LineBatchOptions = {}): AsyncGenerator<LineBatch> {
  const { stopAt, maxLineBytes = DEFAULT_MAX_RECORD_BYTES, stopAtOverlong = false } = options;
  let carry: Buffer | undefined;
  let lineNumber = options.startLine ?? 1;
  let lines: string[] = [];
  let overlong: OverlongLine[] = [];
  let notUtf8: NotUtf8Line[] = [];
  let firstLine = lineNumber;
  /** Stream offset of the current buffer's first byte. */
  let base = 0;
  /** A line over the bound being read past: its first bytes and its length so far, and the offset it starts at. */
  let skipping: OverlongLine | undefined;
  let skippingFrom = 0;
  // Iterated by hand: a `for await` would destroy the stream on leaving, and `rest` reads on from it.
  const chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let handedOver = false;
  /** The last batch: the lines so far, and the stream from the stopping line (at `byte`, its bytes `head` then the chunks left). */
  const stoppedAt = (byte: number, head: Buffer): LineBatch => {
    if (lines.length === 0) firstLine = lineNumber;
    return { ...batch(byte), rest: { line: lineNumber, byte, stream: restOf(head, chunks) } };
  };
  const batch = (endByte: number, unterminated?: number): LineBatch => {
    const out: LineBatch = { lines, firstLine, endByte };
    if (unterminated !== undefined) out.unterminated = unterminated;
    if (overlong.length > 0) out.overlong = overlong;
    if (notUtf8.length > 0) out.notUtf8 = notUtf8;
    lines = [];
    overlong = [];
    notUtf8 = [];
    return out;
  };
  /** A line that is not UTF-8 takes its place in `lines` as an empty string, its bytes copied aside. */
  const pushNotUtf8 = (bytes: Buffer): void => {
    if (lines.length === 0) firstLine = lineNumber;
    lines.push('');
    notUtf8.push({ line: lineNumber, bytes: Buffer.from(bytes.at(-1) === 13 ? bytes.subarray(0, -1) : bytes) });
    lineNumber++;
  };
  /** An overlong line ends: it takes its place in `lines` as an empty string. */
  const pushOverlong = (line: OverlongLine): void => {
    if (lines.length === 0) firstLine = lineNumber;
    lines.push('');
    overlong.push(line);
    lineNumber++;
  };
  /** Whether the last byte read past was a `\r`. */
  let skippedCr = false;
  const startSkipping = (bytes: Buffer): void => {
    skippingFrom = base;
    skipping = { line: lineNumber, bytes: bytes.length, head: bytes.toString('utf8', 0, Math.min(bytes.length, OVERLONG_HEAD_BYTES)) };
    skippedCr = bytes[bytes.length - 1] === 13;
  };
  try {
    for (;;) {
      // Lines waiting and nothing more at hand (a live pipe, `tail -f`): they go now, not when the
      // batch fills or the stream ends. A file or a fast pipe has its next chunk buffered, so plentiful
      // data still makes full batches.
      // (Past the start of an overlong line still being read, the whole lines end where it starts.)
      if (lines.length > 0 && !(await moreAtHand(stream))) yield batch(skipping ? skippingFrom : base);
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (error) {
        // The stream failed (a truncated gzip file): the whole lines read before it still come, then the
        // error; their end is where an overlong line being read past starts (`base` is past its bytes so
        // far), so a resume reads that line again rather than from inside it.
        if (lines.length > 0) yield batch(skipping ? skippingFrom : base);
        throw error;
      }
      if (next.done) break;
      let buffer: Buffer = next.value;
      if (skipping) {
        const newline = buffer.indexOf(10);
        if (newline < 0) {
          skipping.bytes += buffer.length;
          skippedCr = buffer.length > 0 ? buffer[buffer.length - 1] === 13 : skippedCr;
          base += buffer.length;
          continue;
        }
        // Its length without the line end (whose `\r` may have come in the previous chunk).
        skipping.bytes += newline - (newline > 0 ? (buffer[newline - 1] === 13 ? 1 : 0) : skippedCr ? 1 : 0);
        pushOverlong(skipping);
        skipping = undefined;
        base += newline + 1;
        buffer = buffer.subarray(newline + 1);
        if (lines.length >= maxBatch) yield batch(base);
      } else if (carry) buffer = Buffer.concat([carry, buffer]);
      // Decode every complete line of the chunk at once (one toString instead of one per line); the
      // bytes after the last newline wait for the next chunk, so no character is ever cut in two.
      const lastNewline = buffer.lastIndexOf(10);
      if (lastNewline < 0) {
        carry = undefined;
        if (buffer.length > maxLineBytes && stopAtOverlong) {
          yield stoppedAt(base, buffer);
          handedOver = true;
          return;
        }
        if (buffer.length > maxLineBytes) {
          startSkipping(buffer);
          base += buffer.length;
        } else carry = buffer;
        continue;
      }
      carry = lastNewline + 1 < buffer.length ? buffer.subarray(lastNewline + 1) : undefined;
      const text = buffer.toString('utf8', 0, lastNewline + 1);
      // ASCII (one byte per character, the usual case): a character index is a byte offset. Otherwise
      // (multi-byte or invalid UTF-8) the newlines are counted in the bytes from the last batch's end.
      // Not UTF-8 somewhere (one check of the chunk, a few µs per 64 KiB): each line is checked.
      const checkLines = !isUtf8(buffer.subarray(0, lastNewline + 1));
      const ascii = text.length === lastNewline + 1 && !checkLines;
      const chunkStartLine = lineNumber;
      let byteCursor = 0;
      let cursorNewlines = 0;
      /** Offset in `buffer` of the line `lineNumber` starts (the character index when ASCII). */
      const lineByte = (charIndex: number): number => {
        if (ascii) return charIndex;
        for (; cursorNewlines < lineNumber - chunkStartLine; cursorNewlines++) byteCursor = buffer.indexOf(10, byteCursor) + 1;
        return byteCursor;
      };
      let start = 0;
      for (;;) {
        const end = text.indexOf('\n', start);
        if (end < 0) break;
        const contentEnd = text.charCodeAt(end - 1) === 13 && end > start ? end - 1 : end;
        // A UTF-16 unit is at most 3 UTF-8 bytes: only a line that might be over the bound is measured.
        if (3 * (contentEnd - start) > maxLineBytes) {
          const bytes = ascii ? contentEnd - start : Buffer.byteLength(text.slice(start, contentEnd));
          if (bytes > maxLineBytes) {
            const at = lineByte(start);
            if (stopAtOverlong) {
              yield stoppedAt(base + at, buffer.subarray(at));
              handedOver = true;
              return;
            }
            pushOverlong({ line: lineNumber, bytes, head: buffer.toString('utf8', at, at + Math.min(bytes, OVERLONG_HEAD_BYTES)) });
            start = end + 1;
            if (lines.length >= maxBatch) yield batch(base + lineByte(start));
            continue;
          }
        }
        if (stopAt !== undefined && stopAt(text, start, end)) {
          const at = lineByte(start);
          yield stoppedAt(base + at, buffer.subarray(at));
          handedOver = true; // asked past the last batch: its `rest` is the reader's
          return;
        }
        if (checkLines) {
          const at = lineByte(start);
          const bytes = buffer.subarray(at, buffer.indexOf(10, at));
          if (!isUtf8(bytes)) {
            pushNotUtf8(bytes);
            start = end + 1;
            if (lines.length >= maxBatch) yield batch(base + lineByte(start));
            continue;
          }
        }
        if (lines.length === 0) firstLine = lineNumber;
        lines.push(text.slice(start, contentEnd));
        lineNumber++;
        start = end + 1;
        if (lines.length >= maxBatch) yield batch(base + lineByte(start));
      }
      base += lastNewline + 1;
      if (carry && carry.length > maxLineBytes && stopAtOverlong) {
        yield stoppedAt(base, carry);
        handedOver = true;
        return;
      }
      if (carry && carry.length > maxLineBytes) {
        startSkipping(carry);
        base += carry.length;
        carry = undefined;
      }
    }
    // The stream ended inside a line (no newline after it): a line as any other, left out of `endByte`.
    if (skipping) {
      const { bytes } = skipping;
      pushOverlong(skipping);
      skipping = undefined;
      yield batch(skippingFrom, bytes);
      return;
    }
    if (carry && carry.length > 0) {
      const unterminated = carry.length - (carry[carry.length - 1] === 13 ? 1 : 0);
      if (!isUtf8(carry)) pushNotUtf8(carry);
      else {
        const text = carry.toString('utf8');
        if (stopAt !== undefined && stopAt(text, 0, text.length)) {
          yield stoppedAt(base, carry);
          handedOver = true;
          return;
        }
        if (lines.length === 0) firstLine = lineNumber;
        lines.push(text.replace(/\r$/, ''));
      }
      yield batch(base, unterminated);
      return;
    }
    if (lines.length > 0) yield batch(base);
  } finally {
    // Left early (or done): the stream is closed, as a `for await` would. A reader that left at the
    // last batch did not take its `rest`; one that asked past it did, and `rest` closes it.
    if (!handedOver) await chunks.return?.();
  }
}

/**
 * Whether `stream` has bytes buffered, or gets some within one round of the event loop (a chunk on its
 * way through a wrapping stream, a file read the thread pool has done while the last chunk was being
 * split), or is done (its end or error comes at once). Asks for nothing: a read left waiting on a quiet
 * pipe would hold up a reader that leaves.
 */
export async function moreAtHand(stream: Readable): Promise<boolean> {
  const ready = (): boolean => stream.readableLength > 0 || stream.readableEnded || stream.destroyed;
  if (ready()) return true;
  // The first setImmediate runs before the loop's next poll for I/O, the second after it.
  for (let turn = 0; turn < 2 && !ready(); turn++) await new Promise((resolve) => setImmediate(resolve));
  return ready();
}

/** `head`, then whatever `chunks` has left, as one stream; destroyed before its end, it closes theirs. */
function restOf(head: Buffer, chunks: AsyncIterator<Buffer>): Readable {
  const rest = Readable.from(
    (async function* () {
      if (head.length > 0) yield head;
      for (;;) {
        const next = await chunks.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
    { objectMode: false },
  );
  rest.once('close', () => void chunks.return?.());
  return rest;
}

/**
 * Completed chunks kept for reuse. Enough for the writes a file stream queues below its 1 MiB
 * high-water mark plus a batch's worth, so a steady stream allocates no new chunk; bounded so a
 * burst does not keep its memory.
 */
const MAX_SPARE_CHUNKS = 8;

/**
 * Writes records as JSON lines to a Writable, in chunks: records are encoded straight into a
 * Buffer (canonical events byte by byte, others as UTF-8 of their JSON) and each full chunk is one
 * `write`, so no per-record string, array or Buffer is built. `ready()` is the back-pressure signal
 * the runtime awaits; `flush()` resolves once every record written so far has reached the output's
 * destination (for a file: handed to the OS).
 */
export class JsonLinesWriter {
  private readonly chunkSize: number;
  private chunk: JsonBuffer;
  private used = 0;
  /** Chunks whose write completed, reused so memory stays flat: no new Buffer per chunk. */
  private readonly spare: JsonBuffer[] = [];
  /** Writes issued and completed; the output completes them in order. */
  private sent = 0;
  private completed = 0;
  /** flush() calls waiting for the writes issued before them (`upTo`). */
  private waiters: { upTo: number; resolve: () => void; reject: (error: Error) => void }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private failed: Error | undefined;

  constructor(
    private readonly output: Writable,
    private readonly options: { chunkSize?: number; lingerMs?: number; serialize?: (record: object) => string } = {},
  ) {
    this.chunkSize = options.chunkSize ?? 256 * 1024;
    this.chunk = new JsonBuffer(this.chunkSize);
    output.on('error', this.onOutputError);
  }

  private readonly onOutputError = (error: Error): void => {
    this.failed = error;
    this.settle();
  };

  write(record: object): void {
    if (this.used === 0 && this.options.lingerMs !== 0) this.startLinger();
    if (this.options.serialize === undefined) {
      let end = writeRecordJson(record, this.chunk, this.used);
      if (end === NO_ROOM && this.used > 0) {
        this.flushPending();
        this.startLinger();
        end = writeRecordJson(record, this.chunk, 0);
      }
      if (end >= 0) {
        this.chunk.bytes[end] = 10;
        this.used = end + 1;
        return;
      }
    }
    this.writeLine((this.options.serialize ?? recordToJson)(record));
  }

  private writeLine(line: string): void {
    // At most 3 UTF-8 bytes per UTF-16 unit, and the newline.
    if (this.used + 3 * line.length + 1 > this.chunkSize) {
      this.flushPending();
      if (3 * line.length + 1 > this.chunkSize) {
        // Larger than a chunk: written on its own, after everything before it.
        this.send(Buffer.from(`${line}\n`, 'utf8'), undefined);
        return;
      }
      this.startLinger();
    }
    const bytes = this.chunk.bytes;
    this.used += bytes.write(line, this.used, 'utf8');
    bytes[this.used++] = 10;
  }

  /** A quiet stream still reaches the output within lingerMs. */
  private startLinger(): void {
    if (this.flushTimer || this.options.lingerMs === 0) return;
    this.flushTimer = setTimeout(() => this.flushPending(), this.options.lingerMs ?? 200);
    this.flushTimer.unref();
  }

  private flushPending(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.used === 0) return;
    const full = this.chunk;
    const bytes = full.bytes.subarray(0, this.used);
    this.chunk = this.spare.pop() ?? new JsonBuffer(this.chunkSize);
    this.used = 0;
    this.send(bytes, full);
  }

  /** One write; `reuse` goes back to the spares once the output is done with it. */
  private send(bytes: Buffer, reuse: JsonBuffer | undefined): void {
    if (this.output.destroyed) return;
    this.sent++;
    this.output.write(bytes, (error) => {
      this.completed++;
      if (error) this.failed ??= error;
      else if (reuse && this.spare.length < MAX_SPARE_CHUNKS) this.spare.push(reuse);
      if (this.waiters.length > 0) this.settle();
    });
  }

  /** Resolves the flush() calls whose writes have all completed; after a failure, rejects them all. */
  private settle(): void {
    if (this.failed) {
      for (const waiter of this.waiters) waiter.reject(this.failed);
      this.waiters = [];
      return;
    }
    while (this.waiters.length > 0 && this.waiters[0]!.upTo <= this.completed) this.waiters.shift()!.resolve();
  }

  ready(): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    if (this.output.writableNeedDrain) return once(this.output, 'drain').then(() => undefined);
    return undefined;
  }

  /** Writes out what is pending and waits until every write issued so far has completed (checkpoints rely on this). */
  async flush(): Promise<void> {
    this.flushPending();
    if (this.failed) throw this.failed;
    const upTo = this.sent;
    if (this.completed < upTo) await new Promise<void>((resolve, reject) => this.waiters.push({ upTo, resolve, reject }));
  }

  /**
   * Flushes and ends the output (unless `keepOpen`, for stdout). An output kept open outlives the writer:
   * its error listener goes, or every stdout sink a daemon made (a pipeline restarted in the process)
   * left one on process.stdout, holding that writer and its chunks (MaxListenersExceededWarning at the 11th).
   */
  async close(keepOpen = false): Promise<void> {
    if (keepOpen) {
      try {
        return await this.flush();
      } finally {
        // A failed write's error event may not have been emitted yet (it comes on a later tick): left to come to us.
        if (this.output.errored) setImmediate(() => this.output.off('error', this.onOutputError));
        else this.output.off('error', this.onOutputError);
      }
    }
    this.flushPending();
    if (this.failed) throw this.failed;
    await new Promise<void>((resolve, reject) => {
      this.output.once('error', reject);
      // end's callback also runs when the output failed (a file that could not be opened), with the error.
      this.output.end((error?: Error | null) => (error ? reject(error) : resolve()));
    });
    if (this.failed) throw this.failed;
  }
}

/**
 * Line-oriented input and output shared by file, stdin and user sources and sinks: both run once per
 * record, so both work on whole chunks rather than per line.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { recordToJson } from './json.js';

export interface LineBatch {
  lines: string[];
  /** 1-based line number of `lines[0]`. */
  firstLine: number;
}

/**
 * Splits a byte stream into batches of at most `maxBatch` lines (without their `\n` or `\r\n`).
 * Works on Buffers so a multi-byte character split across chunks is never cut.
 */
export async function* readLineBatches(stream: Readable, maxBatch: number): AsyncGenerator<LineBatch> {
  let carry: Buffer | undefined;
  let lineNumber = 1;
  let lines: string[] = [];
  let firstLine = 1;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    // Decode every complete line of the chunk at once (one toString instead of one per line); the
    // bytes after the last newline wait for the next chunk, so no character is ever cut in two.
    const lastNewline = buffer.lastIndexOf(10);
    if (lastNewline < 0) {
      carry = buffer;
      continue;
    }
    carry = lastNewline + 1 < buffer.length ? buffer.subarray(lastNewline + 1) : undefined;
    const text = buffer.toString('utf8', 0, lastNewline + 1);
    let start = 0;
    for (;;) {
      const end = text.indexOf('\n', start);
      if (end < 0) break;
      if (lines.length === 0) firstLine = lineNumber;
      lines.push(text.charCodeAt(end - 1) === 13 && end > start ? text.slice(start, end - 1) : text.slice(start, end));
      lineNumber++;
      start = end + 1;
      if (lines.length >= maxBatch) {
        yield { lines, firstLine };
        lines = [];
      }
    }
  }
  if (carry && carry.length > 0) {
    if (lines.length === 0) firstLine = lineNumber;
    lines.push(carry.toString('utf8').replace(/\r$/, ''));
  }
  if (lines.length > 0) yield { lines, firstLine };
}

/**
 * Writes records as JSON lines to a Writable, in chunks: one `write` per ~64 KiB instead of one per
 * record. `ready()` is the back-pressure signal the runtime awaits.
 */
export class JsonLinesWriter {
  // Lines wait in an array joined once per chunk: cheaper than growing one string with `+=`.
  private pending: string[] = [];
  private pendingLength = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private failed: Error | undefined;

  constructor(
    private readonly output: Writable,
    private readonly options: { chunkSize?: number; lingerMs?: number; serialize?: (record: object) => string } = {},
  ) {
    output.on('error', (error: Error) => {
      this.failed = error;
    });
  }

  write(record: object): void {
    const line = (this.options.serialize ?? recordToJson)(record);
    this.pending.push(line);
    this.pendingLength += line.length + 1;
    if (this.pendingLength >= (this.options.chunkSize ?? 65_536)) this.flushPending();
    else if (!this.flushTimer && this.options.lingerMs !== 0) {
      // A quiet stream still reaches the file within lingerMs.
      this.flushTimer = setTimeout(() => this.flushPending(), this.options.lingerMs ?? 200);
      this.flushTimer.unref();
    }
  }

  private flushPending(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.pending.length === 0) return;
    this.pending.push('');
    const text = this.pending.join('\n');
    this.pending = [];
    this.pendingLength = 0;
    if (!this.output.destroyed) this.output.write(text);
  }

  ready(): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    if (this.output.writableNeedDrain) return once(this.output, 'drain').then(() => undefined);
    return undefined;
  }

  async flush(): Promise<void> {
    this.flushPending();
    if (this.failed) throw this.failed;
    if (this.output.writableNeedDrain) await once(this.output, 'drain');
  }

  /** Flushes and ends the output (unless `keepOpen`, for stdout). */
  async close(keepOpen = false): Promise<void> {
    this.flushPending();
    if (this.failed) throw this.failed;
    if (keepOpen) {
      if (this.output.writableNeedDrain) await once(this.output, 'drain');
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.output.once('error', reject);
      this.output.end(() => resolve());
    });
  }
}

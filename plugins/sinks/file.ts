/** `file`: writes records as JSON lines. Also the default dead-letter sink. */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { constants as zlib, createGzip, type Gzip } from 'node:zlib';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { defineSink, JsonLinesWriter, type StreamRecord } from 'tributary';

export interface FileSinkConfig {
  path: string;
  append: boolean;
  lazy: boolean;
  gzip?: boolean;
}

export default defineSink<FileSinkConfig>({
  name: 'file',
  status: 'stable',
  summary: 'Writes records as JSON lines to a file.',
  description: 'Feature vectors are written as `{name: value}` objects. Missing folders are created.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: {
      path: { type: 'string', minLength: 1, description: 'File to write; relative to the pipeline file.' },
      append: { type: 'boolean', default: false, description: 'Append to the file instead of replacing it.' },
      lazy: { type: 'boolean', default: false, description: 'Create the file only when the first record arrives (the dead-letter default).' },
      gzip: { type: 'boolean', description: 'Compress with gzip. Default: when the name ends in .gz.' },
    },
  },
  examples: [{ path: 'out/predictions.jsonl' }, { path: 'dead-letters.jsonl', append: true }],
  create(config, context) {
    const path = resolve(context.baseDir, config.path);
    let writer: JsonLinesWriter | undefined;
    let file: WriteStream | undefined;
    let gzip: Gzip | undefined;
    const open = (): JsonLinesWriter => {
      mkdirSync(dirname(path), { recursive: true });
      // Resuming from a checkpoint keeps what was written before it (at-least-once, not truncation).
      file = createWriteStream(path, { flags: config.append || context.resuming ? 'a' : 'w', highWaterMark: 1 << 20 });
      let output: Writable = file;
      if (config.gzip ?? path.endsWith('.gz')) {
        gzip = createGzip();
        gzip.pipe(file);
        output = gzip;
      }
      return new JsonLinesWriter(output);
    };
    if (!config.lazy) writer = open();
    return {
      write(record: StreamRecord) {
        (writer ??= open()).write(record);
      },
      ready: () => writer?.ready(),
      async flush() {
        await writer?.flush();
        // gzip holds compressed output back until its block fills: a sync flush pushes it out, so what
        // a checkpoint covers is in the file (and readable) before the offsets move on.
        if (gzip !== undefined && file !== undefined) {
          const compressed = gzip;
          const target = file;
          await new Promise<void>((done) => compressed.flush(zlib.Z_SYNC_FLUSH, () => done()));
          // The pipe has handed the flushed bytes to the file stream; an empty write completes after them.
          await new Promise<void>((done, fail) => target.write(Buffer.alloc(0), (error) => (error ? fail(error) : done())));
        }
      },
      async close() {
        await writer?.close();
        // Ending gzip ends the file stream through the pipe; close is done when the file is.
        if (gzip !== undefined && file !== undefined) await finished(file);
      },
    };
  },
});

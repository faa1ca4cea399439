/**
 * `http-export`: an example of a user's source plugin. It reads an export of JSON lines or CSV from an
 * HTTP(S) URL, once, and decodes it with `decodeRecords`, as the built-in `file` source decodes a file:
 * the same `format`, `csv`, `mapping` and `max_record_bytes` settings, the same dead letters (with the
 * URL and line as their origin), the same warnings. Its position is the lines read: a resumed run
 * fetches the export again and passes those over, so nothing is emitted or dead-lettered twice.
 *
 * It uses only the public API ('tributary'), as every plugin must.
 */
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { csvConfigProblems, decodeProperties, decodeRecords, defineSource, type ClickEvent, type DecodeConfig, type SourcePosition } from 'tributary';

export interface HttpExportConfig extends DecodeConfig {
  url: string;
}

export const httpExport = defineSource<HttpExportConfig>({
  name: 'http-export',
  emits: ['event'],
  status: 'experimental',
  summary: 'Reads an export of JSON lines or CSV from an HTTP URL, once.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    properties: {
      url: { type: 'string', pattern: '^https?://', description: 'The export to read, fetched with GET.' },
      ...decodeProperties, // format, csv, mapping, max_record_bytes: as the file source reads them
    },
  },
  examples: [{ url: 'https://example.com/exports/events.jsonl' }, { url: 'https://example.com/exports/events.csv', format: 'csv', mapping: { fields: { user_id: 'customer' } } }],
  checkPipeline: (config) => csvConfigProblems(config.csv),
  create(config, context) {
    // Lines of the export read, rejected ones included; and the length of a last line read without its line end.
    let line = 0;
    let unterminated: number | undefined;
    return {
      async *read(): AsyncGenerator<ClickEvent[]> {
        const response = await fetch(config.url, { signal: context.signal });
        if (!response.ok || response.body === null) throw new Error(`${config.url}: HTTP ${response.status} ${response.statusText}`);
        // fetch's body and node:stream/web's ReadableStream are one class at run time; @types/node types them apart.
        const body = Readable.fromWeb(response.body as ReadableStream<Uint8Array>);
        for await (const batch of decodeRecords(body, config, context, { file: config.url, piped: true, skipThrough: line, unterminated })) {
          line = batch.throughLine;
          unterminated = batch.unterminated;
          yield batch.events; // empty when every record was dead-lettered: yielded all the same (Source.read)
        }
      },
      position: (): SourcePosition => ({ line, ...(unterminated === undefined ? {} : { unterminated }) }),
      seek(position) {
        line = typeof position.line === 'number' ? position.line : 0;
        unterminated = typeof position.unterminated === 'number' ? position.unterminated : undefined;
      },
    };
  },
});

export default httpExport;

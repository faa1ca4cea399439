/** `stdin`: reads JSON lines or CSV from standard input, e.g. `zcat events.gz | tributary run p.yaml`. */
import { defineSource, type ClickEvent } from 'tributary';
import { csvConfigProblems, decodeProperties, decodeStream, type DecodeConfig } from './decode.js';

export default defineSource<DecodeConfig>({
  name: 'stdin',
  emits: ['event'],
  status: 'stable',
  summary: 'Reads JSON lines or CSV from standard input until it closes.',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: { ...decodeProperties, format: { ...decodeProperties.format, description: 'Record format. Default: jsonl.' } },
  },
  examples: [{ format: 'jsonl' }, { format: 'csv', csv: { header: false, columns: ['time', 'user_id', 'type'] } }],
  checkPipeline: (config) => csvConfigProblems(config.csv),
  create(config, context) {
    return {
      async *read(): AsyncGenerator<ClickEvent[]> {
        for await (const { events } of decodeStream(process.stdin, config.format ?? 'jsonl', config, { source: context.label, file: 'stdin' }, context, context.batchSize)) {
          // Empty when all of it was dead-lettered: the runtime then waits for the dead-letter sink's room (Source.read).
          yield events;
        }
      },
    };
  },
});

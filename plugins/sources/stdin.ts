/** `stdin`: reads JSON lines or CSV from standard input, e.g. `zcat events.gz | tributary run p.yaml`. */
import { PassThrough } from 'node:stream';
import { csvConfigProblems, decodeProperties, decodeRecords, defineSource, type ClickEvent, type DecodeConfig } from 'tributary';

export default defineSource<DecodeConfig>({
  name: 'stdin',
  emits: ['event'],
  status: 'stable',
  summary: 'Reads JSON lines or CSV from standard input until it closes, or the run stops: a stop (SIGTERM) ends the reading at once, not at the next line. Records are handed on as soon as no more input is waiting (a live pipe, `tail -f events.jsonl | tributary run`), in batches of up to `settings.max_in_flight` while more is.',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: decodeProperties,
  },
  examples: [{ format: 'jsonl' }, { format: 'csv', csv: { header: false, columns: ['time', 'user_id', 'type'] } }],
  checkPipeline: (config) => csvConfigProblems(config.csv),
  create(config, context) {
    return {
      async *read(): AsyncGenerator<ClickEvent[]> {
        // Read through a stream of this run's own, unpiped when it ends: read directly, the end of a run
        // the daemon restarts in the process destroyed stdin (every later run failed at once with "The
        // operation was aborted") and left five listeners on it per restart.
        const input = new PassThrough();
        process.stdin.pipe(input);
        // A stop (the pipeline's signal: SIGTERM, a failed stage) ends the reading at once, as the file
        // source's does between two batches: a quiet stdin held the stop until its next line or its end.
        const signal = context.signal;
        const stop = (): void => void input.destroy(signal!.reason instanceof Error ? signal!.reason : new Error('stopped'));
        signal?.addEventListener('abort', stop, { once: true });
        try {
          if (signal?.aborted) return;
          for await (const { events } of decodeRecords(input, config, context, { file: 'stdin', piped: true })) {
            // Empty when all of it was dead-lettered: the runtime then waits for the dead-letter sink's room (Source.read).
            yield events;
            if (signal?.aborted) return;
          }
        } catch (error) {
          // The input destroyed by the stop: the end of this run's reading, not a failure of stdin.
          if (!signal?.aborted) throw error;
        } finally {
          signal?.removeEventListener('abort', stop);
          process.stdin.unpipe(input);
          input.destroy();
        }
      },
    };
  },
});

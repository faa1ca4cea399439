/** `stdout`: writes records as JSON lines to standard output, for pipes and `jq`. */
import { defineSink, JsonLinesWriter, type StreamRecord } from 'tributary';

export default defineSink<Record<string, never>>({
  name: 'stdout',
  status: 'stable',
  summary: 'Writes records as JSON lines to standard output.',
  config: { type: 'object', additionalProperties: false, properties: {} },
  examples: [{}],
  create() {
    const writer = new JsonLinesWriter(process.stdout, { lingerMs: 50 });
    return {
      write: (record: StreamRecord) => writer.write(record),
      ready: () => writer.ready(),
      flush: () => writer.flush(),
      close: () => writer.close(true),
    };
  },
});

/** `stdout`: writes records as JSON lines to standard output, for pipes and `jq`. */
import { defineSink, JsonLinesWriter, TributaryError, type StreamRecord } from 'tributary';

/**
 * A closed pipe said as what it is: a reader such as `head` exits once it has what it wanted. The
 * process's standard output stays closed, so the daemon does not restart the pipeline in the process
 * (lastsForProcess): the run ends, exit 1, its last checkpoint kept.
 */
function named(error: unknown): never {
  if ((error as NodeJS.ErrnoException | null)?.code !== 'EPIPE') throw error;
  throw new TributaryError('TRIB_ERR_SINK', "standard output's reader went away (EPIPE, broken pipe)", { cause: error, lastsForProcess: true });
}

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
      ready: () => writer.ready()?.catch(named),
      flush: () => writer.flush().catch(named),
      close: () => writer.close(true).catch(named),
    };
  },
});

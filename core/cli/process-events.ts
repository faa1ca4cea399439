/**
 * What node itself says on stderr during `run` and `backtest`, said through the run's logger instead:
 * JSON lines where the logs are (a daemon's, shipped to a log store), secrets redacted as in any line.
 *
 * An error nothing caught (a plugin's timer or callback that throws, a promise rejected with no
 * handler, an EventEmitter's 'error' nobody listens to): node's default printed a plain-text stack (not
 * a JSON line, its secrets unredacted) and ended the process at once (exit 1, or 7), without the
 * pipelines' stop: no final checkpoint, no summary. As a stream job's uncaught-exception handler does
 * (Flink, Kafka Streams' SHUTDOWN_CLIENT), and as node advises (say it, then exit: never run on in a
 * state nobody knows), it is said as one fatal record and the command ends in order, with its own exit
 * code (docs/errors.md, Exit codes).
 *
 * A process warning (a dependency's deprecation, MaxListenersExceededWarning): node printed it as
 * `(node:PID) Warning: ...`, a line a log pipeline cannot parse.
 */
import { inspect } from 'node:util';
import type { Logger } from 'pino';
import { redactSecrets } from '../runtime/telemetry.js';

/** The exit code of a command ended by an error nothing caught: sysexits.h's EX_SOFTWARE, an internal software error (a bug). */
export const uncaughtExitCode = 70;

export type UncaughtOrigin = 'uncaughtException' | 'unhandledRejection';

/** Errors after the first that are logged (a timer that throws each tick would fill the log while the pipelines stop). */
const laterErrorsLogged = 10;

const origins: Record<UncaughtOrigin, string> = {
  uncaughtException: 'uncaught exception',
  unhandledRejection: 'unhandled promise rejection',
};

/** What the command does about the first error: `says` ends its log record's message, `act` then does it. */
export interface UncaughtResponse {
  says: string;
  act: () => void;
}

/** What was thrown as an Error: a promise may be rejected with anything (a string, an object: its secret fields redacted before it is quoted). */
export function thrownAsError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  const text = typeof thrown === 'string' ? thrown : inspect(redactSecrets(thrown), { depth: 3, breakLength: Infinity });
  return new Error(`${text} (thrown as ${thrown === null ? 'null' : typeof thrown}, not as an Error)`);
}

/**
 * From now until the returned function is called, an uncaught exception or unhandled rejection is
 * logged through `logger` as one record, level 60 (fatal), `code: TRIB_ERR_UNCAUGHT`, `origin`, and the
 * error as `err` (message and stack; secrets redacted as in any line, texts included: telemetry.ts), written
 * before anything else is done (the logger's writes are synchronous). The first then gets the command's
 * `respond()`: the message says what comes next, and its `act` does it. Later ones (a plugin failing again
 * while the pipelines stop) are logged too, up to {@link laterErrorsLogged}, and change nothing.
 */
export function takeUncaught(logger: Logger, respond: () => UncaughtResponse): () => void {
  let seen = 0;
  const fatal = logger.isLevelEnabled('fatal') ? logger : logger.child({}, { level: 'fatal' });
  const handle = (thrown: unknown, origin: UncaughtOrigin): void => {
    seen++;
    if (seen > 1 + laterErrorsLogged) return;
    const err = thrownAsError(thrown);
    const fields = { code: 'TRIB_ERR_UNCAUGHT', origin, err };
    if (seen > 1) {
      const more = seen === 1 + laterErrorsLogged ? ' (any further ones are not logged)' : '';
      fatal.fatal(fields, `another ${origins[origin]} while the command ends: ${err.message}${more}`);
      return;
    }
    let response: UncaughtResponse;
    try {
      response = respond();
    } catch {
      response = { says: `exiting ${uncaughtExitCode}`, act: () => process.exit(uncaughtExitCode) };
    }
    fatal.fatal(fields, `${origins[origin]} (a bug, most likely in a plugin): ${err.message}; ${response.says}`);
    try {
      response.act();
    } catch {
      // Thrown here, it would end the process as node does (exit 7), unsaid: said, then ended.
      fatal.fatal({ code: 'TRIB_ERR_UNCAUGHT' }, `the command could not end in order; exiting ${uncaughtExitCode}`);
      process.exit(uncaughtExitCode);
    }
  };
  const onException = (error: unknown): void => handle(error, 'uncaughtException');
  const onRejection = (reason: unknown): void => handle(reason, 'unhandledRejection');
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}

/**
 * From now on, each process warning is one record at level 40 (`err`: its name, code and stack), not
 * node's plain-text line: node prints them through a 'warning' listener of its own, which is taken off.
 */
export function takeWarnings(logger: Logger): void {
  for (const listener of process.listeners('warning')) process.off('warning', listener);
  process.on('warning', (warning) => logger.warn({ err: warning }, `node warning: ${warning.name}: ${warning.message}`));
}

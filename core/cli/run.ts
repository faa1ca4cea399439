import type { LevelWithSilent, Logger } from 'pino';
import { Daemon } from '../runtime/daemon.js';
import { otherDeadLetterReasons, type RunStats } from '../runtime/pipeline.js';
import { createLogger } from '../runtime/telemetry.js';
import { ConfigError, formatProblem, needsPerson, type ConfigProblem, type ErrorCode, type TributaryError } from '../errors.js';
import { builtinRegistry } from './registry.js';
import { tributaryVersion } from './build.js';
import { takeHangups, takeSignals } from './signals.js';
import { takeUncaught, takeWarnings, uncaughtExitCode } from './process-events.js';
import { fitToTerminal, watermarkProgress, writeProgressRecords, type ProgressForm } from './progress.js';

/** The CLI's exit codes: 2 where a person must act, 1 for failures a restart may mend, 70 for an error nothing caught (process-events.ts; the complete list: docs/errors.md, Exit codes). */
export const exitCodes = { ok: 0, failure: 1, invalid: 2 } as const;

/**
 * Prints an error a restart cannot mend (a config error, as the loader prints them; checkpoints that
 * cannot be resumed from) and returns true; false for any other error. On a terminal, the text lines;
 * where stderr is not one (a daemon's, a CI job's), where the logs are JSON lines, one level-50 record
 * per problem with the same text as `msg`, its `code`, and for a config problem where it is: `file`,
 * `line`, `column` and `path`, so a log pipeline gets no line it cannot parse. (`validate` prints the
 * text form whatever stderr is: it is its documented output.)
 */
export function reportNeedsPerson(error: unknown, pipeline?: string): boolean {
  const lines = needsPersonLines(error, pipeline);
  if (!lines) return false;
  if (process.stderr.isTTY === true) for (const { message } of lines) process.stderr.write(`${message}\n`);
  else {
    const logger = createLogger({ pretty: false });
    for (const { fields, message } of lines) logger.error({ ...(pipeline ? { pipeline } : {}), ...fields }, message);
  }
  return true;
}

/** The lines of an error a person must act on, each with its record's fields; undefined for any other error. */
function needsPersonLines(error: unknown, pipeline?: string): { fields: { code: ErrorCode } & Partial<ConfigProblem>; message: string }[] | undefined {
  if (error instanceof ConfigError) {
    return error.problems.map((problem) => ({
      fields: { code: problem.code ?? error.code, file: problem.file, line: problem.line, column: problem.column, path: problem.path },
      message: formatProblem(problem),
    }));
  }
  if (needsPerson(error)) {
    const { code, message } = error as TributaryError;
    return [{ fields: { code }, message: `${pipeline ? `pipeline ${pipeline}: ` : ''}${code}: ${message}` }];
  }
  return undefined;
}

/**
 * Says a pipeline's failure, as `run` and `backtest` both do: one a person must act on as
 * {@link reportNeedsPerson} says it (true: exit 2, so a supervisor does not loop), any other as an
 * error record with the error (false: exit 1).
 */
export function reportFailure(logger: Logger, pipeline: string, error: unknown): boolean {
  if (reportNeedsPerson(error, pipeline)) return true;
  logger.error({ pipeline, err: error }, `pipeline ${pipeline} failed: ${(error as Error).message}`);
  return false;
}

/**
 * Prints a usage error (exit 2: a malformed command line) in the form of the logs, as a run's failures
 * are: on a terminal the message and where to read the usage; where stderr is not one (a daemon's, a CI
 * job's) one JSON record among the other log lines, `code: TRIB_ERR_USAGE`, the message as `msg`, and
 * the help command as `help`.
 */
export function reportUsageError(message: string, help = 'tributary --help'): void {
  if (process.stderr.isTTY === true) process.stderr.write(`${message}\n\nRun '${help}' for usage.\n`);
  else createLogger({ pretty: false }).error({ code: 'TRIB_ERR_USAGE', help }, message);
}

export interface RunCommandOptions {
  targets: string[];
  sets: string[];
  plugins: string[];
  logLevel: LevelWithSilent;
  progress: ProgressForm;
  /** How often a progress record is written (`progress: 'records'`). */
  progressIntervalMs: number;
  httpPort?: number;
  httpHost?: string;
  checkpointDir?: string;
  allowNonRestoredState?: boolean;
  /** How long to wait for a checkpoint folder or an output file another host's process holds (`--lock-wait`). */
  lockWaitMs?: number;
}

export const perSecond = (count: number, ms: number): number | null => (ms > 0 ? Math.round((count / ms) * 1000) : null);
const rate = (count: number, ms: number): string => perSecond(count, ms)?.toLocaleString('en-US') ?? '-';
/** This process's events/s: a resumed run's count goes on from the checkpoint's, its clock does not. */
const ownEvents = (stats: RunStats): number => stats.eventsIn - (stats.atResume?.eventsIn ?? 0);

/** Reasons shown under the dead-lettered count, most common first. */
const reasonsShown = 3;
/** A reason may quote its input: longer ones are cut in the summary (the dead letter has it whole). */
const reasonLength = 160;

const cut = (text: string): string => (text.length > reasonLength ? `${text.slice(0, reasonLength - 3)}...` : text);

/** `stage: reason` and dead letters, most common first (reasons past the kept ones last). */
function commonReasons(stats: RunStats): [string, number][] {
  return Object.entries(stats.deadLetteredByReason).sort(([a, x], [b, y]) => Number(a === otherDeadLetterReasons) - Number(b === otherDeadLetterReasons) || y - x);
}

/**
 * Where every record read went to the dead-letter sink: `source` when the sources rejected them all (none
 * entered the stages), `stages` when events entered but the stages (or sinks) rejected every one and nothing
 * reached a sink, was filtered or went to a side output (a sessionizer's time bounds, most often: an
 * epoch_ms time read as epoch_s lands far in the future, the reverse in 1970). Undefined otherwise. The
 * second needs a drained run: stopped early, records still in flight are in no count.
 */
export function everyRecordDeadLettered(stats: RunStats): 'source' | 'stages' | undefined {
  if (stats.deadLettered === 0) return undefined;
  if (stats.eventsIn === 0) return 'source';
  const sideOutputs = Object.values(stats.sideOutputs).reduce((sum, count) => sum + count, 0);
  const none = stats.recordsOut === 0 && stats.filtered === 0 && sideOutputs === 0;
  return stats.drained && none && stats.deadLettered >= stats.eventsIn ? 'stages' : undefined;
}
const likelyCauses = {
  source: "the source's format or mapping does not fit this input; compare its format, csv and mapping settings with a line of the input (each dead letter holds its reason, file and line)",
  stages:
    "the source read every record, but the stages rejected each event (the most common reason names the stage); event times out of a sessionizer's bounds (before not_before, or more than max_ahead_of_clock ahead of the clock) most often mean the source's time_format does not fit the input: epoch seconds read as epoch_ms are in 1970, epoch milliseconds read as epoch_s thousands of years ahead, as are epoch microseconds (GA4's event_timestamp) read as epoch_ms: time_format epoch_us reads them",
} as const;
const nowhere = { source: 'none reached the stages or the sinks', stages: 'none reached the sinks' } as const;

/**
 * When every record read was dead-lettered (nothing entered the stages, or the stages rejected every
 * event), a run that drained looks like a good one, exit 0 and all: bad input is data, not a failure.
 * The summary says it loudly, with the most common reason and where to look.
 */
function allRejected(name: string, stats: RunStats): string[] {
  const where = everyRecordDeadLettered(stats);
  if (!where) return [];
  const [top] = commonReasons(stats);
  const letters = Object.values(stats.deadLetteredByReason).reduce((sum, count) => sum + count, 0);
  return [
    `pipeline ${name}: EVERY RECORD WAS DEAD-LETTERED (${stats.deadLettered} of ${stats.deadLettered}): ${nowhere[where]}`,
    ...(top ? [`  most common reason (${top[1]} of ${letters}): ${cut(top[0])}`] : []),
    `  likely cause: ${likelyCauses[where]}`,
  ];
}

export function formatSummary(name: string, stats: RunStats): string {
  const byKind = Object.entries(stats.outByKind).map(([kind, count]) => `${kind} ${count}`).join(', ');
  const reasons = commonReasons(stats);
  const lines = [
    `pipeline ${name}: ${stats.drained ? 'drained' : 'stopped'}${stats.resumedFrom !== undefined ? ` (resumed from checkpoint ${stats.resumedFrom})` : ''}`,
    ...(stats.restarts ? [`  restarts       ${stats.restarts} in the process (elapsed and events/s: since the last one)`] : []),
    `  events in      ${stats.eventsIn}`,
    `  records out    ${stats.recordsOut}${byKind ? ` (${byKind})` : ''}`,
    ...(stats.collected ? [`  collected      ${stats.collected} (for the backtest's report, not written out)`] : []),
    `  dead-lettered  ${stats.deadLettered}`,
    ...reasons.slice(0, reasonsShown).map(([reason, count]) => `    ${cut(reason)}: ${count}`),
    ...(reasons.length > reasonsShown ? [`    and ${reasons.length - reasonsShown} more reason${reasons.length - reasonsShown === 1 ? '' : 's'}`] : []),
    `  filtered       ${stats.filtered}`,
    ...Object.entries(stats.filteredByReason).map(([reason, count]) => `    ${reason}: ${count}`),
    ...Object.entries(stats.sideOutputs).map(([output, count]) => `  side output ${output}: ${count}`),
    ...(stats.lastCheckpoint ? [`  checkpoint     #${stats.lastCheckpoint.sequence}, ${stats.lastCheckpoint.bytes} bytes, ${stats.lastCheckpoint.durationMs.toFixed(0)} ms`] : []),
    `  elapsed        ${(stats.elapsedMs / 1000).toFixed(2)} s`,
    `  events/s       ${rate(ownEvents(stats), stats.elapsedMs)}`,
    ...allRejected(name, stats),
  ];
  return `${lines.join('\n')}\n`;
}

/** The end-of-run summary as one log record: {@link formatSummary}'s figures, as named fields (the run's own as {@link RunStats} names them; dead-letter reasons most common first). */
export interface SummaryRecord
  extends Pick<RunStats, 'resumedFrom' | 'restarts' | 'eventsIn' | 'recordsOut' | 'outByKind' | 'collected' | 'deadLettered' | 'deadLetteredByReason' | 'filtered' | 'filteredByReason' | 'sideOutputs'> {
  pipeline: string;
  outcome: 'drained' | 'stopped';
  checkpoint?: { sequence: number; bytes: number; durationMs: number };
  elapsedMs: number;
  /** This process's events per second (null when no time passed). */
  eventsPerSecond: number | null;
  /** Present when every record read was dead-lettered: at the source (nothing reached the stages), or by the stages (nothing reached a sink). */
  everyRecordDeadLettered?: true;
  likelyCause?: string;
}

export function summaryRecord(name: string, stats: RunStats): { level: 'info' | 'warn'; fields: SummaryRecord; message: string } {
  const outcome = stats.drained ? 'drained' : 'stopped';
  const rejected = everyRecordDeadLettered(stats);
  const fields: SummaryRecord = {
    pipeline: name,
    outcome,
    ...(stats.resumedFrom !== undefined ? { resumedFrom: stats.resumedFrom } : {}),
    ...(stats.restarts ? { restarts: stats.restarts } : {}),
    eventsIn: stats.eventsIn,
    recordsOut: stats.recordsOut,
    outByKind: stats.outByKind,
    ...(stats.collected ? { collected: stats.collected } : {}),
    deadLettered: stats.deadLettered,
    deadLetteredByReason: Object.fromEntries(commonReasons(stats)),
    filtered: stats.filtered,
    filteredByReason: stats.filteredByReason,
    sideOutputs: stats.sideOutputs,
    ...(stats.lastCheckpoint ? { checkpoint: { sequence: stats.lastCheckpoint.sequence, bytes: stats.lastCheckpoint.bytes, durationMs: Math.round(stats.lastCheckpoint.durationMs) } } : {}),
    elapsedMs: Math.round(stats.elapsedMs),
    eventsPerSecond: perSecond(ownEvents(stats), stats.elapsedMs),
    ...(rejected ? { everyRecordDeadLettered: true as const, likelyCause: likelyCauses[rejected] } : {}),
  };
  const figures = `${stats.eventsIn} events in, ${stats.recordsOut} records out, ${stats.deadLettered} dead-lettered, ${stats.filtered} filtered, ${(stats.elapsedMs / 1000).toFixed(2)} s`;
  const message = rejected
    ? `pipeline ${name}: ${outcome}: EVERY RECORD WAS DEAD-LETTERED (${stats.deadLettered} of ${stats.deadLettered}): ${nowhere[rejected]}`
    : `pipeline ${name}: ${outcome}${stats.resumedFrom !== undefined ? ` (resumed from checkpoint ${stats.resumedFrom})` : ''}: ${figures}`;
  return { level: rejected ? 'warn' : 'info', fields, message };
}

/** The logger for what a run says whatever `--log-level` (its outcome), as JSON lines where the logs are. */
export const resultLogger = (logger: Logger, level: 'info' | 'warn' | 'error'): Logger => (logger.isLevelEnabled(level) ? logger : logger.child({}, { level: 'info' }));

/**
 * Writes a run's summary: the human lines on a terminal (pretty logs), one structured record where the
 * logs are JSON lines (a daemon's stderr, any run whose stderr is not a terminal), so a log shipper
 * gets it whole. Written whatever `--log-level`, as the lines always were: it is the run's result.
 */
export function writeSummary(logger: Logger, pretty: boolean, name: string, stats: RunStats): void {
  if (pretty) {
    process.stderr.write(formatSummary(name, stats));
    return;
  }
  const { level, fields, message } = summaryRecord(name, stats);
  resultLogger(logger, level)[level](fields, message);
}

/** `tributary run FILE|DIR...`: 0 when drained or stopped cleanly, 1 when a pipeline failed; config errors throw (exit 2). */
export async function runPipelineCommand(options: RunCommandOptions): Promise<number> {
  const pretty = process.stderr.isTTY === true;
  const logger = createLogger({ level: options.logLevel, pretty });
  const daemon = new Daemon({
    targets: options.targets,
    logger,
    registry: () => builtinRegistry(options.plugins),
    sets: options.sets,
    ...(options.httpPort !== undefined ? { http: { port: options.httpPort, ...(options.httpHost ? { host: options.httpHost } : {}) } } : {}),
    ...(options.checkpointDir ? { checkpointDir: options.checkpointDir } : {}),
    ...(options.allowNonRestoredState ? { allowNonRestoredState: true } : {}),
    ...(options.lockWaitMs ? { lockWaitMs: options.lockWaitMs } : {}),
    version: tributaryVersion(),
  });
  // A signal at any moment ends the run in order: before the pipelines start, at once, having read and
  // written nothing; after, drained to the summary. (Kept since the process began: signals.ts.)
  let stopSignal: NodeJS.Signals | undefined;
  let started = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopSignal) {
      const code = uncaught ? uncaughtExitCode : exitCodes.failure;
      logger.error({ signal, exitCode: code }, 'second signal: exiting without draining');
      process.exit(code);
    }
    stopSignal = signal;
    if (started) daemon.stop(signal);
  };
  const releaseSignals = takeSignals(onSignal);
  // An error nothing caught (a plugin's timer that throws): said as one fatal record, then the pipelines
  // stop in order (final checkpoint, summary) within shutdown_timeout, and the process exits 70 (process-events.ts).
  // Kept to the process's end: one after the summary still exits 70, said, not as node prints it.
  let uncaught = false;
  let ended = false;
  takeWarnings(logger);
  takeUncaught(logger, () => {
    uncaught = true;
    if (started && !ended) {
      return { says: `stopping the pipelines in order (final checkpoint, summary), then exiting ${uncaughtExitCode}`, act: () => daemon.stop('uncaught error', uncaughtExitCode) };
    }
    const when = started ? 'after the run ended' : 'before any pipeline started: nothing was read or written';
    return { says: `exiting ${uncaughtExitCode} ${when}`, act: () => process.exit(uncaughtExitCode) };
  });
  // SIGHUP reopens the file outputs (log rotation: docs/operations.md), as daemons do; not a stop.
  // Caught since the process began (signals.ts), and ignored once the run ended.
  takeHangups(() => void daemon.reopenOutputs());
  try {
    logger.debug({ targets: options.targets }, 'loading pipelines');
    await daemon.load();
  } catch (error) {
    releaseSignals();
    takeHangups();
    throw error;
  }
  if (stopSignal) {
    releaseSignals();
    takeHangups();
    const message = `stopped by ${stopSignal} before any pipeline started: nothing was read or written`;
    if (pretty) process.stderr.write(`${message}\n`);
    else resultLogger(logger, 'info').info({ signal: stopSignal, outcome: 'stopped before start' }, message);
    return exitCodes.ok;
  }
  started = true;
  let progressTimer: NodeJS.Timeout | undefined;
  let stopProgressRecords: (() => void) | undefined;
  const began = Date.now();
  if (options.progress === 'redrawn') {
    progressTimer = setInterval(() => {
      const parts = daemon.runners.map((runner) => {
        const s = runner.stats;
        return `${runner.name}: in ${s.eventsIn.toLocaleString('en-US')} out ${s.recordsOut.toLocaleString('en-US')} dead ${s.deadLettered} ${rate(ownEvents(s), Date.now() - began)} ev/s wm ${watermarkProgress(s).text}`;
      });
      process.stderr.write(`\r\x1b[2K${fitToTerminal(parts.join(' | '), process.stderr.columns)}`);
    }, daemon.progressIntervalMs);
    progressTimer.unref();
  } else if (options.progress === 'records') {
    stopProgressRecords = writeProgressRecords(resultLogger(logger, 'info'), options.progressIntervalMs, () =>
      daemon.runners.map((runner) => {
        const s = runner.stats;
        const eventsPerSecond = perSecond(ownEvents(s), Date.now() - began);
        const watermark = watermarkProgress(s);
        return {
          fields: { progress: true, pipeline: runner.name, eventsIn: s.eventsIn, recordsOut: s.recordsOut, deadLettered: s.deadLettered, eventsPerSecond, ...watermark.fields },
          message: `pipeline ${runner.name}: progress: ${s.eventsIn} events in, ${s.recordsOut} records out, ${s.deadLettered} dead-lettered, ${eventsPerSecond ?? '-'} events/s, watermark ${watermark.text}`,
        };
      }),
    );
  }
  try {
    const result = await daemon.run();
    if (progressTimer) process.stderr.write('\r\x1b[2K');
    stopProgressRecords?.();
    for (const run of result.runs) writeSummary(logger, pretty, run.name, run.stats);
    // Failures a restart cannot mend (exit 2, so a supervisor does not loop): config errors found by
    // a plugin's factory, printed as the loader prints them, and checkpoints that cannot be resumed.
    let needPerson = 0;
    for (const failure of result.failures) if (!failure.reported && reportFailure(logger, failure.name, failure.error)) needPerson++;
    if (uncaught) return uncaughtExitCode;
    if (result.failures.length === 0) return exitCodes.ok;
    return needPerson === result.failures.length ? exitCodes.invalid : exitCodes.failure;
  } finally {
    ended = true;
    if (progressTimer) clearInterval(progressTimer);
    stopProgressRecords?.();
    releaseSignals();
    takeHangups();
  }
}

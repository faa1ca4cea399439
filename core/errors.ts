/**
 * The error catalogue. Each error a user can meet has a stable code, documented in
 * docs/errors.md (a test checks every code is there), and keeps what it wraps as `cause`.
 */

import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { readOnlyCause } from './lock.js';

export const errorCatalogue = {
  TRIB_ERR_CONFIG_INVALID: 'pipeline configuration is invalid',
  TRIB_ERR_CONFIG_YAML: 'pipeline file is not valid YAML',
  TRIB_ERR_CONFIG_READ: 'pipeline file cannot be read',
  TRIB_ERR_CONFIG_VARIABLE: 'a ${VAR} in the pipeline has no value and no default, or is malformed',
  TRIB_ERR_CONFIG_SET: 'a --set override is malformed',
  TRIB_ERR_PLUGIN_UNKNOWN: 'no plugin of that kind and name is registered',
  TRIB_ERR_PLUGIN_LOAD: 'a plugin module could not be loaded',
  TRIB_ERR_PLUGIN_DUPLICATE: 'two plugins of one kind share a name',
  TRIB_ERR_PLUGIN_FACTORY: "a plugin's factory rejected its configuration",
  TRIB_ERR_CHECKPOINT: 'the checkpoints cannot be resumed from, or their folder cannot be written',
  TRIB_ERR_CHECKPOINTS_FAILING: 'periodic checkpoints failed more times in a row than checkpoint.tolerable_failures allows (a full disk, a sink whose flush fails): a restart may mend it',
  TRIB_ERR_FINAL_CHECKPOINT: "a stop's final checkpoint could not be written (a full disk, its folder gone read-only, a sink whose last flush failed): the stop ends without it, exit 1, and the next start resumes from the last checkpoint written",
  TRIB_ERR_SOURCE: 'a source failed while reading',
  TRIB_ERR_SOURCE_INPUT: "a source's input cannot be read as configured at all (text that is not UTF-8, a CSV header row that cannot be read): no restart mends it",
  TRIB_ERR_SINK: 'a sink failed while writing',
  TRIB_ERR_OUTPUT_UNWRITABLE: "an output file (a sink's, the dead-letter file) or its folder may not be written by this process (no permission, a read-only mount) as it opens or reopens it: no restart mends it",
  TRIB_ERR_OUTPUT_LOCKED: "an output file is another live process's to write (its lock file names the holder: a second daemon, a backtest of a running daemon's pipeline, another host's process still renewing it after --lock-wait): no restart mends it while that process runs",
  TRIB_ERR_STAGE: 'a stage failed while processing',
  TRIB_ERR_HTTP_PORT: "the operations endpoint's --http-port is in use by another process (still after a few seconds) or may not be taken by this user: no restart mends it",
  TRIB_ERR_HTTP_HOST: "the operations endpoint's --http-host is an address no network interface of this host has (still after half a minute): no restart mends it",
  TRIB_ERR_USAGE: 'the command line is malformed',
  TRIB_ERR_BACKTEST_NO_EVENTS: 'a backtest scored no event: every record of its input was rejected, by the source or by the stages',
  TRIB_ERR_UNCAUGHT: "an error nothing caught (a plugin's timer or callback that threw, a promise rejected with no handler): a bug, logged as one fatal record; the pipelines stop in order and the process exits 70",
} as const;

export type ErrorCode = keyof typeof errorCatalogue;

/**
 * One problem in a configuration file, located in its source text. A problem of the file as a whole (it
 * cannot be read; a folder holds no pipeline file) has no line, column or path, as there is no text to
 * point into: it is said as `FILE: <message>` (formatProblem), not at a made-up 0:0.
 */
export interface ConfigProblem {
  file: string;
  line?: number;
  column?: number;
  /** JSONPath of the offending value, e.g. `$.stages[0].gap`. */
  path?: string;
  message: string;
  /**
   * The problem's own code, where its cause has one (a module in `plugins:` that failed to load:
   * TRIB_ERR_PLUGIN_LOAD; an unknown `type:`: TRIB_ERR_PLUGIN_UNKNOWN); absent: the error's.
   */
  code?: ErrorCode;
}

/**
 * The `line` and `column` of a problem at `at` (a field's or an entry's position in the file), where it
 * has them; none where it has not (an entry of a pipeline composed in code, a default the file does not
 * hold), so that it is said by the file alone (`<code>: $.sinks[0].mode: ...`), not at a made-up 0:0.
 */
export function positionOf(at: { readonly line?: number; readonly column?: number } | undefined): Pick<ConfigProblem, 'line' | 'column'> {
  return at?.line === undefined ? {} : { line: at.line, column: at.column ?? 0 };
}

export class TributaryError extends Error {
  readonly code: ErrorCode;
  /** See {@link inputHandedOver}. */
  readonly handedOver: boolean;
  /**
   * What failed is no one plugin's but something several plugins of the pipeline share (the `kafka`
   * exactly-once sinks' transactional producer), and the message names it: the runtime reports it as
   * it is, not as `<label> failed: ...` of whichever of them reported it, which blamed that one.
   */
  readonly shared: boolean;
  /** See {@link lastsForProcess}. */
  readonly lastsForProcess: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; handedOver?: boolean; shared?: boolean; lastsForProcess?: boolean }) {
    super(message, options);
    this.name = 'TributaryError';
    this.code = code;
    this.handedOver = options?.handedOver ?? false;
    this.shared = options?.shared ?? false;
    this.lastsForProcess = options?.lastsForProcess ?? false;
  }
}

/** Whether `error` is the failure of something several plugins share, which names itself ({@link TributaryError.shared}). */
export function sharedFailure(error: unknown): error is TributaryError {
  return error instanceof TributaryError && error.shared;
}

/**
 * A plugin's failure outside its records (a stage's open, ready or watermark handler; any plugin's close)
 * as the run's error: `<label> <what>: <message>`, with the code of the plugin's kind, so the error says
 * which plugin failed and what it was doing. One that carries a code of its own keeps it (a model's warm
 * start a person must mend is TRIB_ERR_CHECKPOINT), and a ConfigError or a failure of something plugins
 * share ({@link TributaryError.shared}), which names what failed itself, is passed on as it is.
 */
export function pluginFailure(code: ErrorCode, label: string, what: string, cause: unknown): TributaryError {
  if (cause instanceof ConfigError || sharedFailure(cause)) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  return new TributaryError(cause instanceof TributaryError ? cause.code : code, `${label} ${what}: ${message}`, { cause });
}

/**
 * Thrown by a plugin's factory to reject one field of its config for a reason the schema cannot
 * express. Reported at that field's position, like a schema error:
 * `FILE:LINE:COL: $.sources[0].url: source 'http': <message>`. `field` is a path inside the entry:
 * `url`, `mapping.time_format`, `horizons[1]`; a key with a dot as the JSONPath writes it, `options["fetch.min.bytes"]`.
 */
export class PluginConfigError extends Error {
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PluginConfigError';
    this.field = field;
  }
}

/** A configuration that cannot run: carries every problem found, each with its position. */
export class ConfigError extends TributaryError {
  readonly problems: readonly ConfigProblem[];

  /** `code` defaults to the problems' own code where they all have the same one, else TRIB_ERR_CONFIG_INVALID. */
  constructor(problems: readonly ConfigProblem[], code: ErrorCode = sharedCode(problems) ?? 'TRIB_ERR_CONFIG_INVALID') {
    super(code, problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** The code every problem has of its own, if they share one. */
function sharedCode(problems: readonly ConfigProblem[]): ErrorCode | undefined {
  const code = problems[0]?.code;
  return code !== undefined && problems.every((problem) => problem.code === code) ? code : undefined;
}

/**
 * `FILE:LINE:COL: <json path>: <message>`, the format editors and CI tools parse; a problem of the file as
 * a whole, which has no line, `FILE: <message>` (as compilers say a file they cannot open).
 */
export function formatProblem(problem: ConfigProblem): string {
  return `${placeOf(problem)}${problem.path === undefined ? '' : `${problem.path}: `}${problem.message}`;
}

/** `FILE:LINE:COL: `, or `FILE: ` for a problem without a line. */
function placeOf(problem: ConfigProblem): string {
  return `${problem.file}${problem.line === undefined ? '' : `:${problem.line}:${problem.column ?? 0}`}: `;
}

/** A config warning (EntryProblem.severity `warning`) as `validate` prints it and `run` logs it: `FILE:LINE:COL: warning: <json path>: <message>`. */
export function formatWarning(warning: ConfigProblem): string {
  return `${placeOf(warning)}warning: ${warning.path === undefined ? '' : `${warning.path}: `}${warning.message}`;
}

/**
 * A plugin module that does not load, a plugin that is not there or there twice, a factory refusing its
 * config (however thrown: a plain TributaryError too, as the kafka sink's open() throws one): only a person
 * mends those (a `--plugin` mistake too).
 */
const pluginSetupCodes: ReadonlySet<ErrorCode> = new Set(['TRIB_ERR_PLUGIN_LOAD', 'TRIB_ERR_PLUGIN_UNKNOWN', 'TRIB_ERR_PLUGIN_DUPLICATE', 'TRIB_ERR_PLUGIN_FACTORY']);

/**
 * Whether a failure is one a person must act on, which no restart can mend (the CLI's exit 2): an
 * invalid configuration (also one only a plugin's factory finds, TRIB_ERR_PLUGIN_FACTORY), a plugin module that does not load
 * (or a plugin not there, or there twice), checkpoints the run cannot resume from or a checkpoint folder it may not write in or another process holds, an input a source cannot read at all (TRIB_ERR_SOURCE_INPUT: its every rereading fails the same way), an output file or its folder this process may not write (TRIB_ERR_OUTPUT_UNWRITABLE: EACCES, EPERM, EROFS as a sink opens or reopens it), an output file a live process writes (TRIB_ERR_OUTPUT_LOCKED: of this host, LockRefusedError.holderLives; of another, that renewed its lock through the run's --lock-wait), an --http-port another process holds or this user may not take (TRIB_ERR_HTTP_PORT), an --http-host address no interface of this host has (TRIB_ERR_HTTP_HOST, after ADDRESS_MISSING_WAIT_MS). Any other failure (a broker out of reach, a full disk, a fenced producer, periodic checkpoints failing past checkpoint.tolerable_failures) a restart may mend:
 * the daemon restarts the pipeline in the process (`settings.restart`), and a supervisor the process.
 */
export function needsPerson(error: unknown): boolean {
  // By code too: a TRIB_ERR_CONFIG_* thrown as a plain TributaryError (a plugin's, or one wrapped on its way) is no less a config error.
  return error instanceof ConfigError || (error instanceof TributaryError && (error.code.startsWith('TRIB_ERR_CONFIG_') || pluginSetupCodes.has(error.code) || error.code === 'TRIB_ERR_CHECKPOINT' || error.code === 'TRIB_ERR_SOURCE_INPUT' || error.code === 'TRIB_ERR_OUTPUT_LOCKED' || error.code === 'TRIB_ERR_OUTPUT_UNWRITABLE' || error.code === 'TRIB_ERR_HTTP_PORT' || error.code === 'TRIB_ERR_HTTP_HOST'));
}

/**
 * Whether a failure (or one it wraps, by `cause`) only left the input this run had not yet committed to
 * its next reader (`new TributaryError(code, message, { handedOver: true })`): a Kafka group handed the
 * member's partitions to another member while it was cut off or stalled, and the brokers refused its
 * transaction (KIP-447; Kafka Streams' TaskMigratedException); or a stop met the brokers unreachable,
 * and the Kafka plugins let go of what they could not deliver instead of waiting for brokers that may
 * be away for hours. Nothing of that input was committed, and its next reader (the partitions' new
 * owner, or the next start) reads it again. A stop that meets one has done what it was asked, so the
 * daemon ends the run as stopped (a warning), not failed; a running pipeline is restarted as after any
 * other failure.
 */
export function inputHandedOver(error: unknown): boolean {
  for (let at: unknown = error; at instanceof Error; at = at.cause) {
    if (at instanceof TributaryError && at.handedOver) return true;
  }
  return false;
}

/**
 * Whether a failure (or one it wraps, by `cause`) is of something the process has once and that stays
 * failed for as long as it lives (`new TributaryError(code, message, { lastsForProcess: true })`): its
 * standard output, whose reader went away (`| head`, a log shipper that died). A restart of the pipeline
 * in the process meets it again at its first record, so the daemon does not restart it (was: 10 restarts
 * over 5 minutes, each replaying the input since the last checkpoint): the process exits 1 at once, and
 * its supervisor, which gives it a new standard output, restarts it.
 */
export function lastsForProcess(error: unknown): boolean {
  for (let at: unknown = error; at instanceof Error; at = at.cause) {
    if (at instanceof TributaryError && at.lastsForProcess) return true;
  }
  return false;
}

/**
 * A file system error said with where it happened (`PATH: ENOSPC: no space left on device, write`: node
 * names no path for a write on a descriptor, so an on-call engineer could not tell which disk) and what
 * mends it: `mends.full` where the file system is full (ENOSPC, EDQUOT), `mends.readOnly` where it may
 * not be written (readOnlyCause); its `code` and cause kept for callers.
 */
export function fileSystemErrorAt(error: Error, where: string, mends: { full: string; readOnly?: string }): Error {
  const code = (error as NodeJS.ErrnoException).code;
  const mend = code === 'ENOSPC' || code === 'EDQUOT' ? mends.full : mends.readOnly !== undefined && readOnlyCause(error) ? mends.readOnly : '';
  return Object.assign(new Error(`${where}: ${error.message}${mend}`, { cause: error }), code === undefined ? {} : { code });
}

/**
 * What mends a file or folder this process may not write (`denied`: EACCES or EPERM, its permissions; EROFS,
 * a read-only mount), said for a person: `make PATH writable by user U` (U: this process's user), or `mount
 * the file system holding PATH read-write`. PATH is the nearest of the error's path and the folders above it
 * that exists: a file that is there (it is the one refused), else the folder a file or folder was to be made in.
 */
export function writeAccessFix(denied: NodeJS.ErrnoException, fallbackPath: string): string {
  let path = denied.path ?? fallbackPath;
  while (!existsSync(path) && dirname(path) !== path) path = dirname(path);
  if (denied.code === 'EROFS') return `mount the file system holding ${path} read-write`;
  return `make ${path} writable by user ${processUser()}`;
}

/** This process's user, by name where the system has one for its uid (a container's may not), and its uid. */
function processUser(): string {
  const uid = process.getuid?.();
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    // no passwd entry for the uid (a container run with --user 1234): the uid alone
  }
  if (uid === undefined) return name ?? 'running this process';
  return name === undefined ? `uid ${uid}` : `${name} (uid ${uid})`;
}

/**
 * An output file (`path`: a sink's, the dead-letter file) that cannot be opened or reopened because this
 * process may not write it or its folder (readOnlyCause): a person's to mend, whichever restart came
 * (TRIB_ERR_OUTPUT_UNWRITABLE, exit 2; was: restarts, then exit 1), naming the path, the errno and the fix.
 * Undefined for any other error (ENOSPC: room may come back, and a restart resumes).
 */
export function unwritableOutput(error: unknown, path: string): TributaryError | undefined {
  const denied = readOnlyCause(error);
  if (denied === undefined) return undefined;
  return new TributaryError('TRIB_ERR_OUTPUT_UNWRITABLE', `${path} cannot be opened to write (${denied.message}): ${writeAccessFix(denied, path)}`, { cause: error });
}

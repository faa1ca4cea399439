/**
 * The `tributary` command's commands (main.ts loads this once it caught the signals). Exit codes are
 * a contract: 0 success, 1 a failure a restart may mend, 2 a person must act (the complete list:
 * docs/errors.md, Exit codes, which --help points to).
 */
import yargs, { type Argv } from 'yargs';
import type { LevelWithSilent } from 'pino';
import { ConfigError, TributaryError, formatProblem, formatWarning, type ConfigProblem } from '../errors.js';
import { composedSchema } from '../config/schema.js';
import { loadPipeline, pluginConfig, problemPlace, type LoadedPipeline } from '../config/load.js';
import { inputFilesOf } from '../plugin-hooks.js';
import { inputFileProblem } from '../paths.js';
import { createLogger, redactSecrets } from '../runtime/telemetry.js';
import { pipelineFiles, sameNameProblems } from '../runtime/daemon.js';
import { stringify as stringifyYaml } from 'yaml';
import { tributaryVersion } from './build.js';
import { builtinRegistry } from './registry.js';
import { exitCodes, reportNeedsPerson, reportUsageError, runPipelineCommand } from './run.js';
import { describePlugins } from './plugins.js';
import { pipelineReference } from './docs.js';
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { lookup as dnsLookup } from 'node:dns/promises';
import { runBacktestCommand } from './backtest.js';
import { releaseHangups, releaseSignals } from './signals.js';
import { defaultProgressInterval, progressForm } from './progress.js';
import { parseDuration, timerDurationMax } from '../duration.js';


interface CommonOptions {
  'log-level': string;
  plugin: string[];
}

interface ProgressOptions {
  progress: boolean | undefined;
  'progress-interval': string;
}

/** `--progress` and `--progress-interval` of `run` and `backtest` (the forms: progress.ts). */
function withProgress<T>(argv: Argv<T>, shown: string): Argv<T & ProgressOptions> {
  return argv
    .option('progress', {
      type: 'boolean',
      describe: `Show ${shown}: redrawn on a terminal (default there); where stderr is not a terminal, a log record every --progress-interval, only when asked for. --no-progress hides it.`,
    })
    .option('progress-interval', { type: 'string', default: defaultProgressInterval, describe: 'How often --progress writes a record where stderr is not a terminal (a duration: 500ms, 10s, 1m).' })
    .check((parsed) => durationProblem('--progress-interval', parsed['progress-interval'], 1, timerDurationMax) ?? true) as Argv<T & ProgressOptions>;
}

interface LockWaitOptions {
  'lock-wait': string;
}

/** `--lock-wait` of `run` and `backtest`, both of which write outputs another host may hold (RunOptions.lockWaitMs). */
function withLockWait<T>(argv: Argv<T>): Argv<T & LockWaitOptions> {
  return argv
    .option('lock-wait', {
      type: 'string',
      default: '0s',
      describe:
        "Wait up to this long (e.g. 15m) for a checkpoint folder or an output file another host's process holds: its lock is taken over once not renewed for 10 minutes (its node died). 0s: refused at once (exit 2). A process of this host is refused at once.",
    })
    .check((parsed) => durationProblem('--lock-wait', parsed['lock-wait'], 0) ?? true) as Argv<T & LockWaitOptions>;
}

/** A usage error for a duration option below `least` ms, above `most` (a timer's: timerDurationMax) or not a duration at all; undefined when it is fine. */
function durationProblem(option: string, value: string, least: number, most?: string): string | undefined {
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch {
    ms = NaN;
  }
  if (most !== undefined && ms > parseDuration(most)) return `${option} ${value}: at most ${most} (the longest a timer waits)`;
  if (ms >= least) return undefined;
  return `${option} ${value}: not a duration${least > 0 ? ' above 0' : ''} (use e.g. 500ms, 10s, 1m)`;
}

/** A usage error for a port option that is not a whole number from 0 to 65535; undefined when it is fine or absent. */
function portProblem(option: string, value: string | undefined): string | undefined {
  if (value === undefined || (/^\d{1,5}$/.test(value) && Number(value) <= 65535)) return undefined;
  return `${option} ${value}: not a port (a whole number from 0 to 65535; 0: any free port)`;
}

/**
 * A usage error for an --http-host whose name does not resolve (ENOTFOUND: no such host), said before
 * anything runs; undefined when it resolves. Listening on it failed later with a stack trace, exit 1, as if a
 * restart could mend it. A resolver that did not answer (EAI_AGAIN) may answer later: left to the listen,
 * whose failure a restart may mend.
 */
export async function httpHostProblem(host: string, lookup: (host: string) => Promise<unknown> = dnsLookup): Promise<string | undefined> {
  try {
    await lookup(host);
    return undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOTFOUND') return undefined;
    return `--http-host ${host}: no such host (the name does not resolve); give a name or address of this host, e.g. 127.0.0.1, or 0.0.0.0 for every interface`;
  }
}

/** --set, as run, backtest and validate take it: one value per flag (see withCommon), read as the loader's applySet reads it. */
function setOption(example: string) {
  return {
    type: 'array',
    string: true,
    nargs: 1,
    default: [] as string[],
    describe: `Override a config value: path=value (${example}; a key with a dot or an = quoted in brackets: sinks[0].options["linger.ms"]=5; the path ends at the first = outside its brackets), the value read as YAML as if written in the pipeline file (a relative path is relative to its folder); repeatable.`,
  } as const;
}

function withCommon<T>(argv: Argv<T>): Argv<T & CommonOptions> {
  // The repeatable options (--plugin, --set) take one value per flag (nargs: 1): an array option takes
  // every value up to the next flag, so `validate --plugin x.js p.yaml` read p.yaml as a plugin.
  return argv
    .option('log-level', { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], describe: 'Log level.' })
    .option('plugin', { type: 'array', string: true, nargs: 1, default: [] as string[], describe: 'Extra plugin module to load (npm package or path); repeatable.' }) as Argv<
    T & CommonOptions
  >;
}

/**
 * Writes `docs --out FILE`. A file that cannot be written there (a folder, a folder missing on its way, no
 * permission) is the command line's mistake: a usage error, exit 2 (was an error with its stack, exit 1).
 */
function writeOut(out: string, text: string): void {
  try {
    writeFileSync(out, text);
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'EISDIR') throw new TributaryError('TRIB_ERR_USAGE', `--out ${out} is a folder; name a file`);
    if (code === 'ENOENT') throw new TributaryError('TRIB_ERR_USAGE', `--out ${out}: its folder ${dirname(resolve(out))} does not exist`);
    if (code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new TributaryError('TRIB_ERR_USAGE', `--out ${out} cannot be written: ${message}`);
    throw error;
  }
}

/** The help's last lines: what the exit codes mean, and where the complete list is. */
export const exitCodesHelp =
  'Exit codes: 0 done; 1 a failure a restart may mend (a source, stage or sink that failed); 2 a person must act (the config, the command line, a plugin, checkpoints, an input or output that cannot be used, an --http-port in use); 70 an error nothing caught (a bug, most often in a plugin: logged, the pipelines stopped in order). The complete list: docs/errors.md, Exit codes (also in the installed package).';

let stdoutWatched = false;

/**
 * Writes a command's output (schema, docs, plugins, validate) to stdout. A reader that went away
 * (`tributary schema | head`: EPIPE) took what it wanted, so that ends the output quietly: it was an
 * unhandled 'error' event, a stack trace and exit 1. Only these commands: `run`'s stdout sink says EPIPE itself.
 */
function print(text: string): void {
  if (!stdoutWatched) {
    stdoutWatched = true;
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
  process.stdout.write(text);
}

/**
 * The command line with a negative value of an option joined to it (`--lock-wait -5s` as `--lock-wait=-5s`):
 * the parser reads `-5s` as the short flags -5 and -s, and said `Unknown arguments: 5, s`, naming neither the
 * option nor its value; joined, the option's own check says what is wrong with it.
 */
function negativeValuesJoined(args: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    if (/^--[a-z][a-z-]*$/.test(arg) && next !== undefined && /^-\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else joined.push(arg);
  }
  return joined;
}

/**
 * A parser's usage message as one line (a log record's `msg`, a terminal's line): its `Invalid values:` lines
 * said as `--format xml: not one of jsonl, csv` (was three lines, the option without its dashes).
 */
function usageLine(message: string): string {
  const invalid = [...message.matchAll(/Argument: ([^,]+), Given: (.*), Choices: (.*)/g)].map(
    ([, option, given, choices]) => `--${option} ${given!.replace(/^"(.*)"$/, '$1')}: not one of ${choices!.replace(/"/g, '')}`,
  );
  if (message.startsWith('Invalid values:') && invalid.length > 0) return invalid.join('; ');
  return message.split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
}

export async function main(args: string[]): Promise<number> {
  let exitCode: number = exitCodes.ok;
  const progress = (argv: ProgressOptions) => ({ progress: progressForm(argv.progress, process.stderr.isTTY === true), progressIntervalMs: parseDuration(argv['progress-interval']) });
  // A usage error points to the help of the command it is about: a command's builder runs only once its
  // name was read, so the builder names it; an error before that (no command, an unknown one) gets the
  // top-level help.
  let usageHelp = 'tributary --help';
  const named = <T>(name: string, argv: Argv<T>): Argv<T> => {
    usageHelp = `tributary ${name} --help`;
    // A command's help has its own epilogue (the top-level one is not shown there).
    return argv.epilogue(exitCodesHelp);
  };
  const parser = yargs(negativeValuesJoined(args))
    .scriptName('tributary')
    .usage('$0 <command> [options]\n\nContinuous churn and purchase-intent prediction on clickstreams.')
    .command(
      'run <targets..>',
      'Run pipelines (files, or folders of .yaml files, all in one process). With finite sources it exits when they are drained and prints a summary.',
      (argv) =>
        withLockWait(withProgress(withCommon(named('run', argv)), 'a progress line'))
          .positional('targets', { type: 'string', array: true, demandOption: true, describe: 'Pipeline YAML files or folders of them.' })
          .option('set', setOption('e.g. sources[0].events=1000'))
          .option('http-port', { type: 'string', describe: 'Serve /healthz, /readyz and /metrics on this port (0: any free port).' })
          .option('http-host', { type: 'string', default: '127.0.0.1', describe: 'Address to bind the HTTP endpoint to.' })
          .option('checkpoint-dir', { type: 'string', describe: "Checkpoint folder, overriding the pipeline's `checkpoint.dir` (one sub-folder per pipeline when several run)." })
          .option('allow-non-restored-state', { type: 'boolean', describe: 'Resume from a checkpoint that holds state of stages no longer in the pipeline, dropping it (without it, that is an error).' })
          .check((parsed) => portProblem('--http-port', parsed['http-port']) ?? true),
      async (argv) => {
        const hostProblem = argv['http-port'] !== undefined ? await httpHostProblem(argv['http-host']) : undefined;
        if (hostProblem !== undefined) throw new TributaryError('TRIB_ERR_USAGE', hostProblem);
        exitCode = await runPipelineCommand({
          targets: argv.targets,
          sets: argv.set,
          plugins: argv.plugin,
          logLevel: argv['log-level'] as LevelWithSilent,
          ...progress(argv),
          ...(argv['http-port'] !== undefined ? { httpPort: Number(argv['http-port']), httpHost: argv['http-host'] } : {}),
          ...(argv['checkpoint-dir'] ? { checkpointDir: argv['checkpoint-dir'] } : {}),
          ...(argv['allow-non-restored-state'] ? { allowNonRestoredState: true } : {}),
          lockWaitMs: parseDuration(argv['lock-wait']),
        });
      },
    )
    .command(
      'backtest <file>',
      'Replay data files through a pipeline (each source replaced by a file source, one --input per source in order, without scale_out) and write DIR/metrics.json, DIR/report.html and the models learnt, DIR/models/NAME.model.json (a run warm-starts from one copied into its checkpoint.dir). Sinks that write outside the run (kafka) write to DIR/sinks/LABEL.jsonl instead, unless --live-sinks.',
      (argv) =>
        withLockWait(withProgress(withCommon(named('backtest', argv)), 'a progress bar'))
          .positional('file', { type: 'string', demandOption: true, describe: 'Pipeline YAML file.' })
          .option('input', { type: 'string', demandOption: true, describe: "Data file (JSON lines or CSV, as the source config says; canonical events, a file sink's output, for a source that takes no mapping, as synthetic). Once per source, in the order of `sources`, each read with that source's mapping (clicks and orders: --input clicks.jsonl --input orders.jsonl)." })
          .option('report', { type: 'string', default: 'backtest-report', describe: 'Folder for metrics.json, report.html, models/ (the models learnt, NAME.model.json) and sinks/ (the records of sinks that write outside the run, LABEL.jsonl).' })
          .option('format', { type: 'string', choices: ['jsonl', 'csv'], describe: "Input format (default: the source's, or what its files' names say for a file source that writes none (.csv, .tsv); else from the input's name)." })
          .option('set', setOption('e.g. sinks[0].path=bt/predictions.jsonl'))
          .option('live-sinks', { type: 'boolean', default: false, describe: "Keep the sinks that write outside the run's files (a kafka sink; any declaring external), writing the replay's records there, where their readers act on them. Without it each is replaced by a file in the report folder, DIR/sinks/LABEL.jsonl." }),
      async (argv) => {
        exitCode = await runBacktestCommand({
          file: argv.file,
          // Given again, yargs makes the option an array: one file per source.
          inputs: [argv.input].flat() as string[],
          report: argv.report,
          ...(argv.format ? { format: argv.format as 'jsonl' | 'csv' } : {}),
          sets: argv.set,
          plugins: argv.plugin,
          logLevel: argv['log-level'] as LevelWithSilent,
          ...progress(argv),
          lockWaitMs: parseDuration(argv['lock-wait']),
          liveSinks: argv['live-sinks'],
        });
      },
    )
    .command(
      'validate <files..>',
      'Check pipeline files (a folder: every .yaml in it, as run reads it). Exits 0 when all are valid, 2 otherwise; errors go to stderr as FILE:LINE:COL: PATH: MESSAGE.',
      (argv) =>
        withCommon(named('validate', argv))
          .positional('files', { type: 'string', array: true, demandOption: true, describe: 'Pipeline YAML files or folders of them.' })
          .option('set', setOption('applied before validating'))
          .option('print', { type: 'boolean', default: false, describe: 'Print each resolved pipeline (variables filled in, defaults applied, secrets redacted) as YAML.' })
          .option('check-inputs', {
            type: 'boolean',
            default: true,
            describe: 'Check that the files the sources read are there, as run does at its start (a missing one is an error). --no-check-inputs where they are not (a build machine without the data).',
          }),
      async (argv) => {
        let invalid = 0;
        const report = (file: string, error: unknown): void => {
          invalid++;
          if (error instanceof ConfigError) for (const problem of error.problems) process.stderr.write(`${formatProblem(problem)}\n`);
          // A --set that cannot be applied names the file and the argument itself: it has no place in the file.
          else if (error instanceof TributaryError && error.code === 'TRIB_ERR_CONFIG_SET') process.stderr.write(`${error.message}\n`);
          else process.stderr.write(`${formatProblem({ file, message: (error as Error).message })}\n`);
        };
        // A --plugin that does not load fails every file alike: said once, as a line of text as the rest
        // of validate's output is (not the JSON record `run` writes where stderr is not a terminal).
        try {
          await builtinRegistry(argv.plugin);
        } catch (error) {
          if (!(error instanceof TributaryError)) throw error;
          process.stderr.write(`${error.message}\n`);
          exitCode = exitCodes.invalid;
          return;
        }
        // A folder is what `run` (and the systemd unit) are given: check the files it would run, and, as
        // run refuses them, pipelines of it that share a name. (Files named one by one may be unrelated.)
        for (const target of argv.files) {
          let files: string[];
          try {
            files = pipelineFiles(target);
          } catch (error) {
            report(target, error);
            continue;
          }
          const folder: LoadedPipeline[] = [];
          for (const file of files) {
            const registry = await builtinRegistry(argv.plugin);
            try {
              const loaded = await loadPipeline(file, { registry, sets: argv.set });
              if (argv.checkInputs) {
                const missing = missingInputProblems(loaded);
                if (missing.length > 0) throw new ConfigError(missing);
              }
              folder.push(loaded);
              print(argv.print ? `# ${file}: ok\n${stringifyYaml(redactSecrets(loaded.document))}` : `${file}: ok\n`);
              // Valid all the same (exit 0): a config that runs, most likely not as meant.
              for (const warning of loaded.warnings ?? []) process.stderr.write(`${formatWarning(warning)}\n`);
            } catch (error) {
              report(file, error);
            }
          }
          const clashes = files.length > 1 || files[0] !== target ? sameNameProblems(folder) : [];
          if (clashes.length > 0) report(target, new ConfigError(clashes));
        }
        exitCode = invalid > 0 ? exitCodes.invalid : exitCodes.ok;
      },
    )
    .command(
      'schema',
      'Print the JSON Schema of pipeline files, composed with every installed plugin (for editors: `# yaml-language-server: $schema=...`).',
      (argv) => withCommon(named('schema', argv)),
      async (argv) => {
        const registry = await builtinRegistry(argv.plugin);
        print(`${JSON.stringify(composedSchema(registry), null, 2)}\n`);
      },
    )
    .command(
      'docs',
      'Write the pipeline reference (Markdown), generated from the schemas of the document and of every installed plugin.',
      (argv) => withCommon(named('docs', argv)).option('out', { type: 'string', describe: 'Write to this file instead of standard output.' }),
      async (argv) => {
        const text = pipelineReference(await builtinRegistry(argv.plugin));
        if (argv.out) writeOut(argv.out, text);
        else print(text);
      },
    )
    .command(
      'plugins',
      'List the installed plugins and their config fields.',
      (argv) => withCommon(named('plugins', argv)).option('json', { type: 'boolean', default: false, describe: 'Print JSON.' }),
      async (argv) => {
        const registry = await builtinRegistry(argv.plugin);
        print(describePlugins(registry, argv.json));
      },
    )
    // Only `run` drains on a signal: any other command gets the default action back (the end of it).
    // SIGHUP reopens the outputs of `run` and `backtest` (they take it over) and ends any other.
    .middleware((argv) => {
      if (argv._[0] !== 'run') releaseSignals();
      if (argv._[0] !== 'run' && argv._[0] !== 'backtest') releaseHangups();
    })
    .demandCommand(1, 'Name a command.')
    // Where each exit code is said in full: one list, in docs/errors.md, not a partial one here.
    .epilogue(exitCodesHelp)
    .strict()
    .help()
    .alias('h', 'help')
    .version(tributaryVersion())
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .fail((message: string | undefined, error: unknown) => {
      // A command's own failure passes through (reported below). yargs hands a failed check() its message
      // as `error` (a string) and calls this again with what it threw: one usage error, reported once.
      if (error instanceof TributaryError || (error instanceof Error && error.name !== 'YError')) throw error;
      throw new TributaryError('TRIB_ERR_USAGE', usageLine(message || String(error)));
    });
  try {
    await parser.parseAsync();
  } catch (error) {
    if (error instanceof TributaryError && error.code === 'TRIB_ERR_USAGE') {
      reportUsageError(error.message, usageHelp);
      return exitCodes.invalid;
    }
    if (reportNeedsPerson(error)) return exitCodes.invalid;
    createLogger({ pretty: process.stderr.isTTY === true }).error({ err: error }, (error as Error).message);
    return exitCodes.failure;
  } finally {
    // Usage errors, --help and --version run no command's middleware.
    releaseSignals();
    releaseHangups();
  }
  return exitCode;
}

/**
 * The input files (PluginSpec.inputFiles) of the pipeline's sources that cannot be read at all (not
 * there, a folder), each said as `run` says it at its start (the file source's factory: TRIB_ERR_PLUGIN_FACTORY),
 * at the field that names it, with the same text: validate's ok means run does not refuse it so.
 */
function missingInputProblems(loaded: LoadedPipeline): ConfigProblem[] {
  return loaded.sources.flatMap((source) =>
    inputFilesOf(source.plugin, pluginConfig(source.entry) as never, { entry: source.path }).flatMap(({ path, field }) => {
      const problem = inputFileProblem(resolve(loaded.baseDir, path));
      if (problem === undefined) return [];
      const at = field === undefined ? undefined : source.locate?.(field);
      return [{ file: loaded.file, ...problemPlace(at, `${source.plugin.kind} '${source.plugin.name}': ${problem}`, source), path: at?.path ?? source.path }];
    }),
  );
}

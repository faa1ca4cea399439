/**
 * `tributary backtest FILE --input DATA [--input DATA2 ...]`: replays DATA through the pipeline with its source
 * replaced by a `file` source (keeping that source's mapping, CSV and watermark config), the n-th --input
 * standing for the n-th source where it has several (clicks and orders, each with its own mapping),
 * without scale_out, then writes DIR/metrics.json (a contract other tools read) and DIR/report.html
 * (self-contained plots); the model stages save the models they learnt to DIR/models/ (PluginContext.replaySaveDir),
 * which a run warm-starts from once copied into a model's `checkpoint.dir`.
 *
 * Stages that can report (a boolean `report` field in their config schema, as the model operators
 * have) are switched to emit a `model_metrics` record at end of input, which a sink added here
 * collects. Sinks that write outside the run's files (PluginSpec.external: a Kafka topic) are replaced by `file`
 * sinks under DIR/sinks/, unless --live-sinks, so a replay writes nothing into production. Nothing else in the
 * runtime knows about backtests.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import cliProgress from 'cli-progress';
import type { LevelWithSilent } from 'pino';
import { assignmentShown, entryLabel, entrySchemaProblems, loadPipeline, pluginConfig, type PipelineEntry, type ResolvedEntry } from '../config/load.js';
import { formatOfFile, isTabSeparatedFile } from '../decode.js';
import { ConfigError, positionOf, TributaryError, type ErrorCode } from '../errors.js';
import { parseDuration } from '../duration.js';
import type { StreamRecord, WarmStart } from '../events.js';
import { defineSink, emittedWith, type AnyPlugin, type ConfigFile } from '../plugin.js';
import { outputFilesOf, recordCountOf, replayNotesOf } from '../plugin-hooks.js';
import { recentScoresText } from '../model-scores.js';
import { sameFile, statIfAny } from '../paths.js';
import { ERASURE_FILTERED, PipelineRunner, type RunStats } from '../runtime/pipeline.js';
import { createLogger } from '../runtime/telemetry.js';
import { tributaryBuild } from './build.js';
import { builtinRegistry } from './registry.js';
import { everyRecordDeadLettered, exitCodes, perSecond, reportFailure, reportUsageError, resultLogger, writeSummary } from './run.js';
import { watermarkProgress, writeProgressRecords, type ProgressForm } from './progress.js';
import { takeHangups } from './signals.js';
import { takeUncaught, takeWarnings, uncaughtExitCode } from './process-events.js';

export interface BacktestCommandOptions {
  file: string;
  /** One data file per source of the pipeline, in the order of its `sources`. */
  inputs: readonly string[];
  report: string;
  format?: 'jsonl' | 'csv';
  sets: string[];
  plugins: string[];
  logLevel: LevelWithSilent;
  progress: ProgressForm;
  /** How often a progress record is written (`progress: 'records'`). */
  progressIntervalMs: number;
  /** How long to wait for an output file another host's process holds (`--lock-wait`, as `run`'s). */
  lockWaitMs?: number;
  /** Keep the sinks that write outside the run's files (PluginSpec.external) instead of writing their records to the report folder. */
  liveSinks?: boolean;
}

/** An external sink (PluginSpec.external) a backtest replaced by a file in its report folder: which, and where its records went. */
export interface ReplacedSink {
  /** Where it is in the pipeline (`sinks[0]`, `dead_letter`). */
  entry: string;
  label: string;
  type: string;
  /** The file its records went to instead, absolute. */
  file: string;
}

/** A model's figures in `metrics.json`: its cumulative scores, then (where its `model_metrics` record says them) the last window's and its calibration error. */
export interface BacktestModelMetrics {
  auc: number | null;
  logloss: number | null;
  brier: number | null;
  n: number;
  positives: number;
  /**
   * AUC and log loss over the model's sliding window of its last labels: `size` the labels it holds when full (null: the
   * plugin does not say), `n` those it holds (fewer before `size` labels came). Absent from a plugin that does not say.
   */
  lastWindow?: { size: number | null; n: number; auc: number | null; logloss: number | null };
  /** Expected calibration error and the largest bin's gap over its `bins` calibration bins (null without a label). Absent from a plugin that does not say. */
  calibrationError?: { bins: number; ece: number | null; maxGap: number | null };
}

/** `metrics.json`, exactly. */
export interface BacktestMetrics {
  events: number;
  deadLetters: number;
  /**
   * Erasure requests done (the pipeline's `erasure` section; counted in `events` too); absent: none. One dead-lettered
   * (no user id, a stage's forget() failed) is in `deadLetters`.
   */
  erasures?: number;
  /** Scores are null for a model that got no label (no mean to take). */
  models: Record<string, BacktestModelMetrics>;
  /** The models that started from a saved model (their scores may count data they learnt), by name; absent: none did. */
  warmStarts?: Record<string, WarmStart>;
  /**
   * The model files the backtest saved, which a run warm-starts from, by model name, relative to the report folder
   * (`models/NAME.model.json`: the same on every run, wherever the folder is); absent: none saved.
   */
  modelFiles?: Record<string, string>;
}

/** A backtest's result as one log record, where the logs are JSON lines (beside the run's summary record). */
export interface BacktestResultRecord {
  pipeline: string;
  /** As in metrics.json. */
  models: BacktestMetrics['models'];
  metricsFile: string;
  reportFile: string;
  /** As in metrics.json. */
  warmStarts?: BacktestMetrics['warmStarts'];
  /** As in metrics.json, each an absolute path. */
  modelFiles?: BacktestMetrics['modelFiles'];
  /** What the scores do not show by themselves, by model, as its `model_metrics` record says (`scoreNotes`); absent: nothing to say. */
  notes?: Record<string, string[]>;
  /** The sinks writing outside the run's files that the backtest replaced by a file in the report folder; absent: none. */
  replacedSinks?: ReplacedSink[];
}

interface ModelReport extends StreamRecord {
  model: string;
  /** `window`: the same over the last labels only (absent from a plugin that does not say). */
  summary: { n: number; positives: number; auc: number | null; logloss: number; brier: number; window?: { n: number; auc: number | null; logloss: number } };
  /** The calibration bins (only their number is read here). */
  calibration?: readonly unknown[];
  /** Over the calibration bins: null before the first label; absent from a plugin that does not say. */
  calibrationError?: { ece: number; maxGap: number } | null;
  /** Absent from a plugin that does not say. */
  warmStart?: WarmStart | null;
  /** Why the model's AUC is null or measures nothing learnt, in a few words (null: nothing to say); absent from a plugin that does not say. */
  scoreReason?: string | null;
  /** What its scores do not show by themselves, each said whole; absent from a plugin that does not say. */
  scoreNotes?: string[];
  /**
   * What the timeline's windowed figures span: the last `labels` labels, its first point taken after
   * `firstPointAt` labels, both set by its config field `setting` (the built-in models' `metrics.window`);
   * absent from a plugin that does not say, whose report then says neither.
   */
  timelineWindow?: { labels: number; firstPointAt: number; setting: string };
  /** The boolean config field that, false, starts the model cold (the built-in models' `checkpoint.warm_start`), said where it warm-started; absent from a plugin that does not say. */
  warmStartSetting?: string;
  /** The file the model is saved to at close (in a backtest, under the report folder); null or absent: none. */
  modelFile?: string | null;
  /** true: a challenger (`shadow: true`); false or absent (a plugin that does not say): a live model. */
  shadow?: boolean;
}

/** What a model's report says its scores do not show by themselves (its `scoreReason` and `scoreNotes`, as the model stage says them). */
export interface ScoreNotes {
  reason?: string;
  notes: string[];
}

/**
 * The notes a report carries, shown beside the model's scores (console, result record, report.html) as given: the
 * model stage knows why its scores are null or say little, the backtest does not. A plugin that does not say has none.
 */
export function scoreNotesOf(report: StreamRecord): ScoreNotes {
  const { scoreReason, scoreNotes } = report as Partial<ModelReport>;
  const notes = Array.isArray(scoreNotes) ? scoreNotes.filter((note): note is string => typeof note === 'string') : [];
  return { ...(typeof scoreReason === 'string' && scoreReason !== '' ? { reason: scoreReason } : {}), notes };
}

/** The warm-started models of the reports, by name, in their order. */
function warmStartsOf(reports: readonly StreamRecord[]): [string, WarmStart][] {
  return reports.flatMap((report) => {
    const warm = (report as Partial<ModelReport>).warmStart;
    return warm ? [[String((report as Partial<ModelReport>).model), warm] as [string, WarmStart]] : [];
  });
}

/** metrics.json of a run's stats and its models' reports; `dir`: the report folder, which the model files' paths are made relative to. */
export function backtestMetrics(stats: RunStats, reports: readonly ModelReport[], dir?: string): BacktestMetrics {
  // Entries defined, not assigned: a model named `__proto__` is a key like any other.
  const models: BacktestMetrics['models'] = Object.fromEntries(
    reports.map((report) => {
      const s = report.summary;
      const scored = s.n > 0;
      return [report.model, { auc: s.auc, logloss: scored ? s.logloss : null, brier: scored ? s.brier : null, n: s.n, positives: s.positives, ...lastWindowOf(report), ...calibrationErrorOf(report) }];
    }),
  );
  const warmStarts = warmStartsOf(reports);
  const modelFiles = reports.flatMap((report) => (typeof report.modelFile === 'string' ? [[report.model, dir === undefined ? report.modelFile : relative(dir, report.modelFile)] as [string, string]] : []));
  let erasures = 0;
  for (const [reason, count] of Object.entries(stats.filteredByReason)) if (reason.endsWith(`: ${ERASURE_FILTERED}`)) erasures += count;
  return {
    events: stats.eventsIn,
    deadLetters: stats.deadLettered,
    ...(erasures > 0 ? { erasures } : {}),
    models,
    ...(warmStarts.length > 0 ? { warmStarts: Object.fromEntries(warmStarts) } : {}),
    ...(modelFiles.length > 0 ? { modelFiles: Object.fromEntries(modelFiles) } : {}),
  };
}

/** The last window's figures of a report that has them (its summary's `window`; its size from `timelineWindow`), as metrics.json keeps them. */
function lastWindowOf(report: ModelReport): Pick<BacktestModelMetrics, 'lastWindow'> {
  const window = report.summary.window;
  if (typeof window?.n !== 'number') return {};
  const size = report.timelineWindow?.labels;
  // As the cumulative log loss: null without a label (no mean to take), not a perfect 0.
  return { lastWindow: { size: typeof size === 'number' && Number.isFinite(size) ? size : null, n: window.n, auc: window.auc ?? null, logloss: window.n > 0 ? window.logloss : null } };
}

/** The calibration error of a report that says it, as metrics.json keeps it. */
function calibrationErrorOf(report: ModelReport): Pick<BacktestModelMetrics, 'calibrationError'> {
  if (!('calibrationError' in report)) return {};
  const error = report.calibrationError;
  const bins = Array.isArray(report.calibration) ? report.calibration.length : 0;
  return { calibrationError: { bins, ece: typeof error?.ece === 'number' ? error.ece : null, maxGap: typeof error?.maxGap === 'number' ? error.maxGap : null } };
}

/** A score as the summary and the report's page say it: 4 decimals, `-` where there is none (null: no label, or one class for an AUC). */
const scoreText = (value: number | null | undefined): string => (typeof value === 'number' ? value.toFixed(4) : '-');

/**
 * A model's figures beyond its cumulative scores, a line each, as the terminal summary says them below the model's
 * line (4 decimals, as its scores): the last window's in the words of the model stage's own end-of-run line (nothing
 * where the window holds every label: the cumulative scores say it), and the calibration error where it has a label.
 */
function figureLines(m: BacktestModelMetrics): string[] {
  const recent = m.lastWindow === undefined ? undefined : recentScoresText(m.lastWindow, m.n, 4);
  const c = m.calibrationError;
  const calibration = c?.ece === null || c?.ece === undefined ? undefined : `calibration error (${c.bins} bins): ECE ${scoreText(c.ece)}, max bin gap ${scoreText(c.maxGap)}`;
  return [recent, calibration].filter((line): line is string => line !== undefined);
}

/** Why `dir` cannot be made a folder, or undefined: it, or the nearest existing path above it, is a file. */
function folderProblem(option: string, given: string, dir: string): string | undefined {
  for (let at = dir; ; at = dirname(at)) {
    const stat = statIfAny(at);
    if (stat?.isDirectory()) return undefined;
    if (stat) return at === dir ? `${option} ${given} is a file; name a folder` : `${option} ${given}: ${at} is a file, so no folder can be made in it`;
    if (dirname(at) === at) return undefined;
  }
}

export async function runBacktestCommand(options: BacktestCommandOptions): Promise<number> {
  takeHangups(); // ignored until its outputs exist (below), not the end of a backtest
  const pretty = process.stderr.isTTY === true;
  const logger = createLogger({ level: options.logLevel, pretty });
  // An error nothing caught (a plugin's timer that throws): one fatal record, then the replay stops (its
  // outputs flushed) within shutdown_timeout, no report is written, and the process exits 70 (process-events.ts).
  const stopReplay = new AbortController();
  let phase: 'loading' | 'running' | 'ended' = 'loading';
  let uncaught = false;
  takeWarnings(logger);
  takeUncaught(logger, () => {
    uncaught = true;
    if (phase !== 'running') {
      const when = phase === 'loading' ? 'before the replay started: no report is written' : 'after the replay ended';
      return { says: `exiting ${uncaughtExitCode} ${when}`, act: () => process.exit(uncaughtExitCode) };
    }
    return {
      says: `stopping the backtest (its outputs flushed); no report is written; exiting ${uncaughtExitCode}`,
      act: () => {
        stopReplay.abort(new Error('uncaught error'));
        const timeoutMs = parseDuration(loaded.document.settings.shutdown_timeout ?? '30s');
        setTimeout(() => {
          logger.fatal({ timeoutMs }, `the backtest did not stop within shutdown_timeout; exiting ${uncaughtExitCode}`);
          process.exit(uncaughtExitCode);
        }, timeoutMs).unref();
      },
    };
  });
  const registry = await builtinRegistry(options.plugins);
  // Stages that can report are switched on before validation, so a sink of the file asking for their
  // model_metrics is valid here, as it is not in a run without `report: true`.
  const adjustStage = (stage: PipelineEntry, plugin: AnyPlugin): void => {
    const properties = (plugin.config.properties ?? {}) as Record<string, { type?: string }>;
    if (properties.report?.type === 'boolean') stage.report = true;
  };
  const loaded = await loadPipeline(options.file, { registry, sets: options.sets, adjustStage });
  const filePlugin = registry.get('source', 'file');
  if (loaded.sources.length === 0 || !filePlugin) {
    const at = loaded.locate?.('sources');
    throw new ConfigError([{ file: options.file, ...positionOf(at), path: '$.sources', message: 'backtest needs a first source and the file source plugin' }]);
  }
  // The n-th --input stands for the n-th source, read with that source's mapping: which of the mappings a
  // file has is not guessed, and a source left reading its own input would mix its events into the scores.
  const unmatched = loaded.sources[options.inputs.length];
  if (unmatched) {
    const count = loaded.sources.length;
    const message = `backtest replays one --input per source, in the order of \`sources\`; this pipeline has ${count} and ${options.inputs.length} --input ${options.inputs.length === 1 ? 'was' : 'were'} given: give one for ${unmatched.path} too`;
    throw new ConfigError([{ file: loaded.file, ...positionOf(unmatched), path: unmatched.path, message }]);
  }
  // Partitions and their state files need a partitioned source and checkpoints; a replay of a file has
  // neither (a backtest takes no checkpoints), and its stages are the same without them.
  delete loaded.document.scale_out;
  // Mistakes in the command line are said before anything runs (and before any output is replaced).
  const usage = (message: string): number => {
    reportUsageError(`tributary backtest: ${message}`, 'tributary backtest --help');
    return exitCodes.invalid;
  };
  if (options.inputs.length > loaded.sources.length) {
    const count = loaded.sources.length;
    return usage(`${options.inputs.length} --input given for ${count} source${count === 1 ? '' : 's'}: one --input per source, in the order of \`sources\``);
  }
  const inputs = options.inputs.map((given) => ({ given, path: resolve(given), stat: statIfAny(resolve(given)) }));
  const dir = resolve(options.report);
  // Before the check of inputs below, so it sees the files that take their place.
  const replacedSinks = options.liveSinks ? [] : replaceExternalSinks(loaded, dir, fileSinkOf(registry));
  for (const input of inputs) {
    if (input.stat === undefined) return usage(`--input ${input.given}: no such file`);
    if (input.stat.isDirectory()) return usage(`--input ${input.given} is a folder; name a file`);
    // A file the pipeline writes would be replaced (or appended to) as the run starts, before it is read.
    for (const sink of [...loaded.sinks, loaded.deadLetter]) {
      const written = writtenFile(sink, loaded.baseDir, input.path);
      if (written === undefined) continue;
      const where = sink.path.replace(/^\$\./, '');
      const other = written.field === undefined ? 'give that sink another file' : `--set ${where}.${written.field} to another file`;
      return usage(`--input ${input.given} is the file ${where} (a ${sink.plugin.name} sink) writes: the run would replace it (or append to it) while reading it; copy it elsewhere first, or ${other}`);
    }
  }
  const reportProblem = folderProblem('--report', options.report, dir);
  if (reportProblem) return usage(reportProblem);
  const replays = inputs.map((input, index) => {
    const original = loaded.sources[index]!;
    const entry: PipelineEntry = { type: 'file', label: original.entry.label ?? `source-file-${index}`, path: input.path };
    for (const key of ['csv', 'mapping', 'watermark', 'format'] as const) if (original.entry[key] !== undefined) entry[key] = structuredClone(original.entry[key]);
    if (options.format) entry.format = options.format;
    else if (entry.format === undefined && original.entry.type === 'file') Object.assign(entry, formatImplied(original.entry));
    // A source with no mapping (synthetic) makes canonical events: a file of them (a file sink's output) is read as such, as `mapping: canonical` reads it.
    const mapsRecords = 'mapping' in ((original.plugin.config.properties ?? {}) as Record<string, unknown>);
    if (!mapsRecords && entry.mapping === undefined) entry.mapping = 'canonical';
    return { original, entry, replay: { ...original, plugin: filePlugin, entry } as ResolvedEntry };
  });
  // Said where the file gives what the file source cannot take (the source's `format`, a field of its `mapping`).
  const problems = replays.flatMap(({ replay }) => entrySchemaProblems(loaded.file, replay));
  if (problems.length > 0) throw new ConfigError(problems.map((problem) => ({ ...problem, message: `as a file source: ${problem.message}` })));
  replays.forEach(({ replay }, index) => (loaded.sources[index] = replay));
  // What the file cannot give as the replaced source took it (a Kafka record's timestamp): said first, as
  // a replay whose every record is then dead-lettered would otherwise only say the time was missing.
  replays.forEach(({ original }, index) => {
    for (const note of replayNotesOf(original.plugin, pluginConfig(original.entry) as never, { entry: original.path })) logger.warn({ source: entryLabel('source', original.entry, index), type: original.entry.type }, `backtest: ${note}`);
  });
  for (const sink of replacedSinks) {
    logger.info({ sink: sink.label, type: sink.type, file: sink.file }, `backtest: ${sink.entry} (a ${sink.type} sink, ${sink.label}) writes outside the run's files: its records go to ${sink.file} instead (--live-sinks keeps it)`);
  }
  if (options.liveSinks) {
    const labelled = [...loaded.sinks.map((sink, index) => [sink, entryLabel('sink', sink.entry, index)] as const), [loaded.deadLetter, entryLabel('dead-letter', loaded.deadLetter.entry, 0)] as const];
    for (const [sink, label] of labelled.filter(([resolved]) => resolved.plugin.kind === 'sink' && resolved.plugin.external === true)) {
      const where = sink.path.replace(/^\$\./, '');
      logger.warn({ sink: label, type: sink.plugin.name }, `backtest --live-sinks: ${where} (a ${sink.plugin.name} sink) is kept: the replay writes its records there, where its readers act on them`);
    }
  }
  const reports: ModelReport[] = [];
  const capture = defineSink<Record<string, never>>({
    name: 'backtest-capture',
    summary: 'Collects model reports for the backtest.',
    kinds: ['model_metrics'],
    config: { type: 'object' },
    create: () => ({ write: (record) => void reports.push(record as ModelReport), close: async () => undefined }),
  });
  // Internal: what only it takes is no record out (the summary counts it as collected). It takes the reports from
  // every side output a stage has as configured too: a model stage may send its records to one (a challenger's `shadow: true`).
  const stageOutputs = [...new Set(loaded.stages.flatMap((stage) => emittedWith(stage.plugin, pluginConfig(stage.entry) as never, { entry: stage.path })?.sideOutputs ?? []))];
  loaded.sinks.push({ plugin: capture, entry: { type: 'backtest-capture', label: 'backtest-capture', outputs: stageOutputs }, path: '$.backtest', internal: true });

  // A replay: plugins decide from the data alone, so the same input gives the same metrics.
  // The models it learnt are saved in the report folder (models/NAME.model.json, at the end), with the scores they earned,
  // for a run to warm-start from (docs/operations.md, From a backtest to a live model); their own files are left alone.
  const runner = new PipelineRunner(loaded, { logger, replay: true, replaySaveDir: join(dir, 'models'), signal: stopReplay.signal, ...(options.lockWaitMs ? { lockWaitMs: options.lockWaitMs } : {}) });
  let bar: cliProgress.SingleBar | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopProgressRecords: (() => void) | undefined;
  // The file source counts what it will read, as it reads it (gzip and CSV by its own rules).
  let total = 0;
  if (options.progress !== 'none') for (const { entry, replay } of replays) total += (await recordCountOf(filePlugin, entry as never, loaded.baseDir, { entry: replay.path })) ?? 0;
  if (options.progress === 'records') {
    const began = Date.now();
    stopProgressRecords = writeProgressRecords(resultLogger(logger, 'info'), options.progressIntervalMs, () => {
      const s = runner.stats;
      const done = Math.min(total, s.eventsIn + s.deadLettered);
      const eventsPerSecond = perSecond(s.eventsIn, Date.now() - began);
      const watermark = watermarkProgress(s);
      const percentage = total > 0 ? Math.floor((done / total) * 100) : 100;
      return [
        {
          fields: { progress: true, pipeline: runner.name, eventsIn: s.eventsIn, recordsOut: s.recordsOut, deadLettered: s.deadLettered, eventsPerSecond, ...watermark.fields, done, total },
          message: `backtest ${runner.name}: progress: ${percentage}% (${done} of ${total} records), ${eventsPerSecond ?? '-'} events/s, watermark ${watermark.text}`,
        },
      ];
    });
  } else if (options.progress === 'redrawn') {
    bar = new cliProgress.SingleBar({ format: `${loaded.document.name} [{bar}] {percentage}% | {value}/{total} records | {rate} ev/s`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
    bar.start(total, 0, { rate: 0 });
    const began = Date.now();
    timer = setInterval(() => {
      const done = runner.stats.eventsIn + runner.stats.deadLettered;
      bar!.update(Math.min(total, done), { rate: Math.round((runner.stats.eventsIn / Math.max(1, Date.now() - began)) * 1000) });
    }, 200);
    timer.unref();
  }
  let stats: RunStats;
  // SIGHUP reopens the pipeline's file outputs as `run`'s does (log rotation); once the run ended
  // (the report is being written) it is ignored.
  takeHangups(() => void runner.reopenOutputs());
  try {
    phase = 'running';
    stats = await runner.run();
  } catch (error) {
    // Said as `run` says a pipeline's failure, with the pipeline's name (config errors found as it starts included).
    const needsPerson = reportFailure(logger, runner.name, error);
    if (uncaught) return uncaughtExitCode;
    return needsPerson ? exitCodes.invalid : exitCodes.failure;
  } finally {
    phase = 'ended';
    takeHangups();
    if (timer) clearInterval(timer);
    stopProgressRecords?.();
    if (bar) {
      bar.update(bar.getTotal());
      bar.stop();
    }
  }
  if (uncaught) {
    // The replay stopped part way: a report would score part of the input as if it were the whole.
    writeSummary(logger, pretty, runner.name, stats);
    const message = `the backtest was stopped by an uncaught error (logged above, level 60): no report was written to ${dir} (exit ${uncaughtExitCode})`;
    if (pretty) process.stderr.write(`tributary backtest: ${message}\n`);
    else resultLogger(logger, 'error').error({ pipeline: runner.name, code: 'TRIB_ERR_UNCAUGHT' satisfies ErrorCode }, message);
    return uncaughtExitCode;
  }
  const metrics = backtestMetrics(stats, reports, dir);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  const notesOf = new Map(reports.map((report) => [report.model, scoreNotesOf(report)]));
  const notes = [...notesOf].filter(([, n]) => n.notes.length > 0).map(([model, n]) => [model, n.notes] as [string, string[]]);
  const inputFiles = inputs.map(({ path, stat }) => ({ path, bytes: Number(stat!.size), modified: stat!.mtime.toISOString() }));
  const source: ReportSource = { pipelineFile: resolve(options.file), sets: options.sets, inputs: inputFiles, generatedAt: new Date().toISOString(), ...tributaryBuild() };
  writeFileSync(join(dir, 'report.html'), reportHtml(loaded.document.name, inputFiles.map(({ path }) => path), metrics, reports, { ...source, replacedSinks }));
  // The result follows the logs' form, as `tributary run`'s summary does: lines on a terminal, records where the
  // logs are JSON lines (written whatever --log-level: they are the result).
  writeSummary(logger, pretty, runner.name, stats);
  const result: BacktestResultRecord = {
    pipeline: runner.name,
    models: metrics.models,
    metricsFile: join(dir, 'metrics.json'),
    reportFile: join(dir, 'report.html'),
    ...(metrics.warmStarts ? { warmStarts: metrics.warmStarts } : {}),
    ...(metrics.modelFiles ? { modelFiles: Object.fromEntries(Object.entries(metrics.modelFiles).map(([model, file]) => [model, resolve(dir, file)])) } : {}),
    ...(notes.length > 0 ? { notes: Object.fromEntries(notes) } : {}),
    ...(replacedSinks.length > 0 ? { replacedSinks } : {}),
  };
  const warmOf = new Map(Object.entries(metrics.warmStarts ?? {}));
  const reportLine = `report: ${result.metricsFile}, ${result.reportFile}`;
  if (pretty) {
    for (const [name, m] of Object.entries(metrics.models)) {
      const warm = warmOf.get(name);
      process.stderr.write(`  model ${name}: AUC ${scoreText(m.auc)}  log loss ${scoreText(m.logloss)}  Brier ${scoreText(m.brier)}  labels ${m.n} (${m.positives} positive)${warm ? `  (warm start from ${warm.file})` : ''}\n`);
      for (const line of figureLines(m)) process.stderr.write(`    ${line}\n`);
      for (const note of notesOf.get(name)?.notes ?? []) process.stderr.write(`    ${note}\n`);
      const saved = result.modelFiles?.[name];
      if (saved !== undefined) process.stderr.write(`    saved: ${saved}\n`);
    }
    for (const sink of replacedSinks) process.stderr.write(`  sink ${sink.label} (${sink.type}) replaced: its records are in ${sink.file}\n`);
    process.stderr.write(`${reportLine}\n`);
  } else {
    const aucs = Object.entries(metrics.models).map(([name, m]) => {
      const reason = notesOf.get(name)?.reason;
      return `${name} AUC ${scoreText(m.auc)}${warmOf.has(name) ? ' (warm start)' : ''}${reason ? ` (${reason})` : ''}`;
    });
    resultLogger(logger, 'info').info(result, `backtest ${runner.name}: ${aucs.join(', ') || 'no model'}; ${reportLine}`);
  }
  const rejected = everyRecordDeadLettered(stats);
  if (rejected) {
    // A report of nothing is no result. The summary said the most common reason and the likely cause.
    const message =
      rejected === 'source'
        ? `no event was read: all ${stats.deadLettered} records were rejected, so the report scores nothing (exit 1)`
        : `no event got through the stages: all ${stats.eventsIn} events read were dead-lettered, so the report scores nothing (exit 1)`;
    if (pretty) process.stderr.write(`tributary backtest: ${message}\n`);
    else resultLogger(logger, 'error').error({ pipeline: runner.name, code: 'TRIB_ERR_BACKTEST_NO_EVENTS' satisfies ErrorCode, deadLettered: stats.deadLettered }, message);
    return exitCodes.failure;
  }
  return exitCodes.ok;
}

/**
 * What a `file` source that writes no `format` reads by its files' names (csv for .csv and .tsv, a tab the
 * delimiter for .tsv), so the input is read as the pipeline reads its data whatever the input is named (an export
 * named .txt); nothing where its files' names disagree or say nothing (JSON lines, as the input's name then decides).
 */
function formatImplied(source: PipelineEntry): { format?: 'csv'; csv?: Record<string, unknown> } {
  const paths = [source.path].flat().filter((path): path is string => typeof path === 'string');
  if (paths.length === 0 || !paths.every((path) => formatOfFile(path) === 'csv')) return {};
  const csv = (source.csv ?? {}) as Record<string, unknown>;
  const tabs = csv.delimiter === undefined && paths.every(isTabSeparatedFile);
  return { format: 'csv', ...(tabs ? { csv: { ...structuredClone(csv), delimiter: '\t' } } : {}) };
}

/** The `file` sink plugin, which takes the place of external sinks: a registry without it cannot keep a replay out of production. */
function fileSinkOf(registry: { get(kind: 'sink', name: string): AnyPlugin | undefined }): AnyPlugin {
  const plugin = registry.get('sink', 'file');
  if (!plugin) throw new TributaryError('TRIB_ERR_PLUGIN_LOAD', 'backtest needs the file sink plugin to write the records of sinks that write outside the run (external) to its report folder');
  return plugin;
}

/**
 * Replaces each sink of the pipeline that writes outside the run's files (PluginSpec.external: a Kafka topic whose
 * consumers send coupons) by a `file` sink writing the same records to `dir/sinks/<label>.jsonl`, keeping its label,
 * `kinds` and `outputs` (a dead-letter sink's: its dead letters, the file made at the first one). A sink that does not
 * declare it is kept.
 */
function replaceExternalSinks(loaded: { sinks: ResolvedEntry[]; deadLetter: ResolvedEntry }, dir: string, filePlugin: AnyPlugin): ReplacedSink[] {
  const replaced: ReplacedSink[] = [];
  const taken = new Set<string>();
  const replace = (sink: ResolvedEntry, index: number | undefined): ResolvedEntry => {
    if (sink.plugin.kind !== 'sink' || sink.plugin.external !== true) return sink;
    const label = index === undefined ? entryLabel('dead-letter', sink.entry, 0) : entryLabel('sink', sink.entry, index);
    // A label is any text: one with a `/` or a leading `.` must not name a file outside sinks/; two that
    // become the same name keep files of their own.
    const base = label.replace(/[^\w.-]/g, '_').replace(/^\./, '_');
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
    taken.add(name);
    const file = join(dir, 'sinks', `${name}.jsonl`);
    const entry: PipelineEntry = { type: 'file', label, path: file, ...(index === undefined ? { lazy: true } : {}) };
    for (const key of ['kinds', 'outputs'] as const) if (sink.entry[key] !== undefined) entry[key] = structuredClone(sink.entry[key]);
    replaced.push({ entry: sink.path.replace(/^\$\./, ''), label, type: sink.plugin.name, file });
    return { ...sink, plugin: filePlugin, entry };
  };
  loaded.sinks.forEach((sink, index) => (loaded.sinks[index] = replace(sink, index)));
  loaded.deadLetter = replace(loaded.deadLetter, undefined);
  return replaced;
}

/** The file of a sink's PluginSpec.outputFiles that is `input` (each resolved against the pipeline's folder, as the sink resolves it), if any. */
function writtenFile(sink: ResolvedEntry, baseDir: string, input: string): ConfigFile | undefined {
  return outputFilesOf(sink.plugin, pluginConfig(sink.entry) as never, { entry: sink.path }).find((file) => sameFile(resolve(baseDir, file.path), input));
}

/** Where a report came from, said at its top: the pipeline file and its --set overrides, each input's size and time (one per source), when and by which build it was made. */
export interface ReportSource {
  pipelineFile: string;
  sets: readonly string[];
  inputs: readonly { path: string; bytes: number; modified: string }[];
  generatedAt: string;
  version?: string;
  /** The commit of the checkout tributary runs from, when it is one (`-dirty` with uncommitted changes). */
  commit?: string;
  /** The sinks writing outside the run's files that the backtest replaced by a file in its report folder; absent or empty: none. */
  replacedSinks?: readonly ReplacedSink[];
}

/** The input files, each with its size and time where the report's source says them, in the order of the sources they stood for. */
function inputsHtml(inputs: string | readonly string[], source?: ReportSource): string {
  return [inputs]
    .flat()
    .map((path) => {
      const file = source?.inputs.find((input) => input.path === path);
      return `<code>${escapeHtml(path)}</code>${file ? ` (${file.bytes} bytes, modified ${escapeHtml(file.modified)})` : ''}`;
    })
    .join(', ');
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function sourceHtml(source: ReportSource): string {
  const sets = source.sets.length === 0 ? 'none' : source.sets.map((set) => `<code>--set ${escapeHtml(assignmentShown(set))}</code>`).join(', ');
  const build = [source.version ? `tributary ${escapeHtml(source.version)}` : 'tributary', source.commit ? `commit <code>${escapeHtml(source.commit)}</code>` : ''].filter(Boolean).join(', ');
  return `<p id="source">Pipeline: <code>${escapeHtml(source.pipelineFile)}</code>, overrides: ${sets}. Made ${escapeHtml(source.generatedAt)} by ${build}.</p>${replacedSinksHtml(source.replacedSinks ?? [])}`;
}

/** The sinks writing outside the run's files whose records went to the report folder instead (nothing where none was replaced). */
function replacedSinksHtml(replaced: readonly ReplacedSink[]): string {
  if (replaced.length === 0) return '';
  const items = replaced.map((sink) => `<li><code>${escapeHtml(sink.entry)}</code> (a <code>${escapeHtml(sink.type)}</code> sink, <code>${escapeHtml(sink.label)}</code>): <code>${escapeHtml(sink.file)}</code></li>`).join('');
  return `<div id="replaced-sinks"><p>Sinks that write outside the run's files were not written to: their records are in these files of the report's folder instead (<code>--live-sinks</code> keeps them):</p><ul>${items}</ul></div>`;
}

/**
 * The last window's AUC and log loss and the calibration error of each model whose record says them, in the
 * page itself (not drawn by its script), each figure explained in a line below; nothing where no model says them.
 */
function nowAndCalibrationHtml(metrics: BacktestMetrics, reports: readonly StreamRecord[]): string {
  const settingOf = new Map(reports.map((report) => [String((report as Partial<ModelReport>).model), (report as Partial<ModelReport>).timelineWindow?.setting]));
  const rows = Object.entries(metrics.models)
    .filter(([, m]) => m.lastWindow !== undefined || m.calibrationError !== undefined)
    .map(([model, m]) => {
      const w = m.lastWindow;
      const setting = settingOf.get(model);
      // What the window spans, as the model stage says it: its size and the config field that sets it (the page knows no plugin's fields).
      const spans = w === undefined ? '-' : `${w.n}${w.size === null ? '' : ` of ${w.size}${typeof setting === 'string' && setting !== '' ? ` (<code>${escapeHtml(setting)}</code>)` : ''}`}`;
      const c = m.calibrationError;
      const cells = [`<code>${escapeHtml(model)}</code>`, spans, scoreText(w?.auc), scoreText(w?.logloss), c === undefined ? '-' : String(c.bins), scoreText(c?.ece), scoreText(c?.maxGap)];
      return `<tr>${cells.map((cell) => `<td>${cell}</td>`).join('')}</tr>`;
    });
  if (rows.length === 0) return '';
  return `<h2>Now, and calibration</h2>
<table id="now-and-calibration"><tr><th>model</th><th>labels in the last window (of its size)</th><th>AUC, last window</th><th>log loss, last window</th><th>calibration bins</th><th>ECE</th><th>max bin gap</th></tr>${rows.join('')}</table>
<ul id="figure-notes">
<li><strong>Last window</strong>: AUC and log loss over the model's most recent labels only, its sliding window (the labels it holds, of as many as it holds when full, and the model's field that sets that); the cumulative figures above average in every label since the start, the untrained model's first predictions included, so these say how the model does now.</li>
<li><strong>ECE</strong> (expected calibration error, cumulative): over the calibration bins of predicted probability, each bin's gap between its mean prediction and its observed positive rate, weighted by its share of the labels; 0 is perfectly calibrated, 0.02 is predictions two points off on average.</li>
<li><strong>Max bin gap</strong>: the largest of those gaps over the bins holding a label, whatever its share: a bin of a few labels can make it large, so read it beside the calibration plot.</li>
</ul>
`;
}

/** Models of one task (the same target) set side by side in the report: the champion first, then its challengers. */
interface Comparison {
  task: string;
  /** The live model the others are measured against: the first of the task not in the shadow (else the first of the task). */
  champion: string;
  /** The task's other models, in the pipeline's order. */
  challengers: string[];
  /** By model: true where it is a challenger (`shadow: true`). */
  shadow: Record<string, boolean>;
}

/** Each task two or more models predict, in the order of its first model: the champion and its challengers. */
function comparisonsOf(reports: readonly StreamRecord[]): Comparison[] {
  const byTask = new Map<string, { model: string; shadow: boolean }[]>();
  for (const report of reports) {
    const { model, task, shadow } = report as Partial<ModelReport> & { task?: unknown };
    if (typeof model !== 'string' || typeof task !== 'string') continue;
    const models = byTask.get(task) ?? [];
    models.push({ model, shadow: shadow === true });
    byTask.set(task, models);
  }
  return [...byTask]
    .filter(([, models]) => models.length > 1)
    .map(([task, models]) => {
      const champion = (models.find((m) => !m.shadow) ?? models[0]!).model;
      return { task, champion, challengers: models.map((m) => m.model).filter((model) => model !== champion), shadow: Object.fromEntries(models.map((m) => [m.model, m.shadow])) };
    });
}

/** A model's name with its place, as the comparison says it: `intent-mlp (challenger)`. */
const placeText = (c: Comparison, model: string): string => `${model} (${c.shadow[model] ? 'challenger' : 'live'})`;

/** A difference of two scores, signed, 4 decimals, with which way is better; `-` where either is missing. */
function differenceText(challenger: number | null | undefined, champion: number | null | undefined, better: 'higher' | 'lower'): string {
  if (typeof challenger !== 'number' || typeof champion !== 'number') return '-';
  const difference = challenger - champion;
  const size = Math.abs(difference).toFixed(4);
  // Within the 4 decimals shown, no sign: a -0.0000 would read as worse.
  if (size === '0.0000') return `${size} (same)`;
  return `${difference > 0 ? '+' : '-'}${size} (${(difference > 0) === (better === 'higher') ? 'better' : 'worse'})`;
}

/**
 * Champion against challenger, per task with two or more models: a table of their figures side by side, each
 * challenger's difference from the champion, in the page itself; the overlaid plots below each are drawn by its script.
 */
function comparisonsHtml(metrics: BacktestMetrics, comparisons: readonly Comparison[]): string {
  if (comparisons.length === 0) return '';
  const sections = comparisons.map((c, index) => {
    const models = [c.champion, ...c.challengers];
    const figures = models.map((model) => metrics.models[model]);
    type Figure = [name: string, read: (m: BacktestModelMetrics) => number | null | undefined, better: 'higher' | 'lower' | undefined];
    const rows: Figure[] = [
      ['labels scored', (m) => m.n, undefined],
      ['positives', (m) => m.positives, undefined],
      ['AUC', (m) => m.auc, 'higher'],
      ['log loss', (m) => m.logloss, 'lower'],
      ['Brier', (m) => m.brier, 'lower'],
      ...(figures.some((m) => m?.lastWindow !== undefined)
        ? ([
            ['AUC, last window', (m) => m.lastWindow?.auc, 'higher'],
            ['log loss, last window', (m) => m.lastWindow?.logloss, 'lower'],
          ] satisfies Figure[])
        : []),
      ...(figures.some((m) => m?.calibrationError !== undefined) ? ([['ECE', (m) => m.calibrationError?.ece, 'lower']] satisfies Figure[]) : []),
    ];
    const champion = metrics.models[c.champion]!;
    const head = `<tr><th>figure</th>${models.map((model) => `<th><code>${escapeHtml(model)}</code> (${c.shadow[model] ? 'challenger' : 'live'})</th>`).join('')}${c.challengers.map((model) => `<th><code>${escapeHtml(model)}</code> &minus; <code>${escapeHtml(c.champion)}</code></th>`).join('')}</tr>`;
    const body = rows.map(([name, read, better]) => {
      const values = models.map((model) => {
        const value = read(metrics.models[model]!);
        return better === undefined ? String(value ?? '-') : scoreText(value);
      });
      const differences = c.challengers.map((model) => {
        const [mine, theirs] = [read(metrics.models[model]!), read(champion)];
        if (better !== undefined) return differenceText(mine, theirs, better);
        if (typeof mine !== 'number' || typeof theirs !== 'number') return '-';
        return mine === theirs ? 'same' : `${mine > theirs ? '+' : '-'}${Math.abs(mine - theirs)}`;
      });
      return `<tr><th>${name}</th>${[...values, ...differences].map((cell) => `<td>${cell}</td>`).join('')}</tr>`;
    });
    // Scored on different labels (another label buffer, a prediction one model did not make), the figures are not like for like.
    const unlike = c.challengers.filter((model) => metrics.models[model]!.n !== champion.n);
    const unlikeNote =
      unlike.length === 0
        ? ''
        : `<p class="warning">Not scored on the same labels: ${unlike.map((model) => `<code>${escapeHtml(model)}</code> ${metrics.models[model]!.n}`).join(', ')} against <code>${escapeHtml(c.champion)}</code>'s ${champion.n} (a full label buffer or an expired label in one model and not the other): the differences compare different samples.</p>`;
    const title = `${escapeHtml(c.task)}: ${[c.champion, ...c.challengers].map((model) => escapeHtml(placeText(c, model))).join(' against ')}`;
    return `<h3>${title}</h3>
<table class="comparison" id="comparison-${index}">${head}${body.join('')}</table>
${unlikeNote}<div class="plots" id="comparison-plots-${index}"></div><div id="comparison-left-${index}"></div>`;
  });
  return `<h2 id="champion-challenger">Champion and challenger</h2>
<p>The models predicting the same target, scored on the same labels, side by side: the live model (the champion) and each one in its shadow (<code>shadow: true</code>, a challenger); each difference is the challenger's figure less the champion's, <em>better</em> where it is: a higher AUC, a lower log loss, Brier score or ECE. The plots overlay the models' ROC curves, calibration, and AUC and log loss over event time (each over its last window of labels); each model's own plots follow below.</p>
${sections.join('\n')}
`;
}

/** The model files the backtest saved, which a run warm-starts from (nothing where none was saved). */
function savedHtml(metrics: BacktestMetrics): string {
  const files = Object.entries(metrics.modelFiles ?? {});
  if (files.length === 0) return '';
  const items = files.map(([model, file]) => `<li>model <code>${escapeHtml(model)}</code>: <code>${escapeHtml(file)}</code></li>`).join('');
  return `<div id="model-files"><p>The models as they ended, saved in this report's folder for a run to start from (copy a file into the model stage's <code>checkpoint.dir</code> before the run's first start):</p><ul>${items}</ul></div>`;
}

/** A self-contained page: uPlot's script and CSS inlined, the data as JSON in the page. */
export function reportHtml(name: string, inputs: string | readonly string[], metrics: BacktestMetrics, reports: readonly StreamRecord[], source?: ReportSource): string {
  const require = createRequire(import.meta.url);
  const uplotDir = resolve(require.resolve('uplot'), '..');
  const script = readFileSync(join(uplotDir, 'uPlot.iife.min.js'), 'utf8');
  const css = readFileSync(join(uplotDir, 'uPlot.min.css'), 'utf8');
  // `<` escaped so no data value can close the script element.
  // Why a score is null, or says less than it seems to: at the top of the page (without its script too) and at each model.
  const noted = reports.map((report) => [String((report as Partial<ModelReport>).model), scoreNotesOf(report).notes] as const).filter(([, notes]) => notes.length > 0);
  const notes = Object.fromEntries(noted);
  const comparisons = comparisonsOf(reports);
  const data = JSON.stringify({ metrics, reports, notes, comparisons }).replace(/</g, '\\u003c');
  // Said in the page itself (not drawn by its script): a warm-started model's scores may not be out of sample. How
  // to start it cold is its plugin's config, said as its record says it (warmStartSetting), never named here.
  const settingOf = new Map(reports.map((report) => [String((report as Partial<ModelReport>).model), (report as Partial<ModelReport>).warmStartSetting]));
  const coldText = (model: string): string => {
    const setting = settingOf.get(model);
    return typeof setting === 'string' && setting !== '' ? `; set <code>${escapeHtml(setting)}: false</code> on its stage (or <code>--set stages[N].${escapeHtml(setting)}=false</code>) for a cold score` : '';
  };
  const warm = Object.entries(metrics.warmStarts ?? {})
    .map(([model, { file, steps }]) => `<li>model <code>${escapeHtml(model)}</code> started from the saved model <code>${escapeHtml(file)}</code> (${steps} learning steps)${coldText(model)}</li>`)
    .join('');
  const notesNote =
    noted.length === 0
      ? ''
      : `<div id="score-notes" class="warning"><p><strong>Read the scores with these notes.</strong></p><ul>${noted.map(([model, notes]) => `<li>model <code>${escapeHtml(model)}</code>: ${notes.map(escapeHtml).join('; ')}</li>`).join('')}</ul></div>`;
  const warmNote = warm
    ? `<div id="warm-start" class="warning"><p><strong>Warm start.</strong> These models did not start from nothing:</p><ul>${warm}</ul><p>A model that learnt from this input before (a run over the same data) is scored here on labels it has already learnt: its scores are not out of sample and read too high: start it cold for an out-of-sample score.</p></div>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest: ${escapeHtml(name)}</title>
<style>${css}
body{font-family:system-ui,sans-serif;margin:2em;color:#222}h2{margin-top:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
.plots{display:flex;flex-wrap:wrap;gap:1em}.features{columns:4;font-size:12px}.warning{border-left:4px solid #d62728;background:#fdf0f0;padding:0 1em;margin:1em 0}.no-plot{width:420px;height:300px;border:1px dashed #ccc;padding:1em;box-sizing:border-box;color:#555}</style></head>
<body><h1>Backtest: ${escapeHtml(name)}</h1>
<p>Input: ${inputsHtml(inputs, source)}. Events: ${metrics.events}, dead letters: ${metrics.deadLetters}. Scores are prequential: each label is scored against the prediction made before it was known.</p>
${source ? sourceHtml(source) : ''}
${savedHtml(metrics)}
${warmNote}
${notesNote}
<table id="summary"><tr><th>model</th><th>start</th><th>task</th><th>kind</th><th>AUC</th><th>log loss</th><th>Brier</th><th>labels</th><th>positives</th><th>base rate</th></tr></table>
${nowAndCalibrationHtml(metrics, reports)}${comparisonsHtml(metrics, comparisons)}<div id="models"></div>
<script>${script}</script>
<script>
const DATA = ${data};
// What the built-in models' counts are (the model_metrics record's \`counts\`): each prediction is counted once, as scored or as why not.
const COUNT_WORDS = {
  predictions: 'predictions made',
  labels: 'predictions scored against their label (and learnt from)',
  learnSteps: 'learning steps',
  overflow: 'predictions not held for their label by a full label buffer (not scored)',
  expired: "predictions dropped unscored: their label did not come within the label buffer's timeout",
  unlabelledAtEnd: 'predictions still awaiting their label when the input ended (not scored)',
  drifts: 'drifts detected',
  lateLabels: 'labels that came after their prediction had been dropped or was not held (not scored)',
  invalidScores: 'predictions that were not a number (not scored)',
  withdrawn: 'predictions withdrawn unscored (a late event showed they were not to be scored)',
  erased: "predictions of a user erased (an erasure request) before their label came (not scored)",
  scoredBeforeLearning: "labels scored before the model's first learning step (the untrained model)",
};
const fmt = (x) => x === null || x === undefined ? '-' : (typeof x === 'number' ? x.toFixed(4) : String(x));
const table = document.getElementById('summary');
for (const r of DATA.reports) {
  const s = r.summary, m = DATA.metrics.models[r.model], row = document.createElement('tr'); // scores as metrics.json has them (null without labels)
  const start = r.warmStart ? 'warm (' + r.warmStart.steps + ' steps)' : r.warmStart === null ? 'cold' : '-'; // '-': the plugin does not say
  for (const v of [r.model, start, r.task, r.kind_of_model, fmt(m.auc), fmt(m.logloss), fmt(m.brier), s.n, s.positives, fmt(s.baseRate)]) { const td = document.createElement('td'); td.textContent = v; row.appendChild(td); }
  table.appendChild(row);
}
const root = document.getElementById('models');
// Event times are shown in UTC (the data's own zone is not known here), and said so on the axis.
const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');
function plot(title, xlabel, ylabel, data, series, opts = {}) {
  const box = document.createElement('div');
  box.setAttribute('role', 'img');
  box.setAttribute('aria-label', title + ': ' + ylabel + ' by ' + xlabel);
  const strokes = opts.strokes || ['#1f77b4', '#d62728', '#2ca02c', '#999'];
  new uPlot({ title, width: 420, height: 300, scales: { x: { time: !!opts.time } }, ...(opts.time ? { tzDate: utc } : {}), axes: [{ label: xlabel }, { label: ylabel }],
    series: [{}, ...series.map((s, i) => ({ label: s, stroke: strokes[i], points: { show: !!opts.points }, spanGaps: !!opts.overlay }))] }, data, box);
  return box;
}
// Curves of their own x values in one plot: every point of every curve in one x column (in order; a curve's own
// points keep theirs, a ROC curve's vertical steps too), each curve null at the others' points, its line spanning them.
function overlay(curves) {
  const points = [];
  curves.forEach((c, i) => c.xs.forEach((x, j) => points.push([x, i, j])));
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return [points.map((p) => p[0]), ...curves.map((c, i) => points.map((p) => (p[1] === i ? c.ys[p[2]] : null)))];
}
// In a plot's place, why it has nothing to show (an empty frame, or a ROC drawn as the chance line, would read as a result).
function none(title, why) {
  const box = document.createElement('div'); box.className = 'no-plot';
  const h = document.createElement('strong'); h.textContent = title; box.appendChild(h);
  const p = document.createElement('p'); p.textContent = why; box.appendChild(p);
  return box;
}
// Champion and challenger of a task: their curves in one plot each (the models left out of one, and why, said below it).
const MODEL_STROKES = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
DATA.comparisons.forEach((c, index) => {
  const box = document.getElementById('comparison-plots-' + index);
  const models = [c.champion, ...c.challengers].map((name) => DATA.reports.find((r) => r.model === name));
  const named = (r) => r.model + ' (' + (c.shadow[r.model] ? 'challenger' : 'live') + ')';
  const left = [];
  const chart = (title, xlabel, ylabel, why, curveOf, reference, opts = {}) => {
    const drawn = [], curves = [], strokes = [];
    models.forEach((r, i) => {
      const reason = why(r);
      if (reason) { left.push(title + ': ' + named(r) + ' left out (' + reason + ')'); return; }
      drawn.push(named(r)); curves.push(curveOf(r)); strokes.push(MODEL_STROKES[i % MODEL_STROKES.length]);
    });
    if (curves.length === 0) return box.appendChild(none(title, 'None: no model of the task has one (' + why(models[0]) + ').'));
    if (reference) { drawn.push(reference.label); curves.push(reference); strokes.push('#999'); }
    box.appendChild(plot(title, xlabel, ylabel, overlay(curves), drawn, { ...opts, strokes, overlay: true }));
  };
  const noLabel = (r) => (r.summary.n > 0 ? '' : 'no label scored');
  const oneClass = (r) => noLabel(r) || (r.summary.positives > 0 && r.summary.positives < r.summary.n ? '' : 'one outcome only');
  const noPoint = (r) => oneClass(r) || (r.timeline.length > 0 ? '' : 'no point yet: ' + r.summary.n + ' labels');
  const diagonal = (label) => ({ label, xs: [0, 1], ys: [0, 1] });
  chart('ROC curves', 'false positive rate', 'true positive rate', oneClass, (r) => ({ xs: r.roc.fpr, ys: r.roc.tpr }), diagonal('chance'));
  chart('Calibration', 'mean predicted probability', 'observed positive rate', noLabel, (r) => {
    const bins = r.calibration.filter((b) => b.count > 0);
    return { xs: bins.map((b) => b.meanScore), ys: bins.map((b) => b.positiveRate) };
  }, diagonal('perfect'), { points: true });
  chart('AUC over event time', 'event time (UTC)', 'AUC (last window)', noPoint, (r) => ({ xs: r.timeline.map((p) => p.time / 1000), ys: r.timeline.map((p) => p.auc) }), undefined, { time: true });
  chart('Log loss over event time', 'event time (UTC)', 'log loss (nats, last window)', (r) => noLabel(r) || (r.timeline.length > 0 ? '' : 'no point yet: ' + r.summary.n + ' labels'), (r) => ({ xs: r.timeline.map((p) => p.time / 1000), ys: r.timeline.map((p) => p.logloss) }), undefined, { time: true });
  const notes = document.getElementById('comparison-left-' + index);
  for (const line of left) { const p = document.createElement('p'); p.textContent = line; notes.appendChild(p); }
});
for (const r of DATA.reports) {
  const h = document.createElement('h2'); h.textContent = r.model + ' (' + r.task + ', ' + r.kind_of_model + ', backend ' + r.backend + (r.warmStart ? ', warm start from ' + r.warmStart.file : '') + ')'; root.appendChild(h);
  for (const note of DATA.notes[r.model] || []) { const p = document.createElement('p'); p.className = 'warning'; p.textContent = note; root.appendChild(p); }
  const plots = document.createElement('div'); plots.className = 'plots'; root.appendChild(plots);
  const s = r.summary, labelled = s.n > 0, bothClasses = s.positives > 0 && s.positives < s.n;
  const noLabel = 'No label was scored: nothing to plot.';
  plots.appendChild(
    bothClasses
      ? plot('ROC curve', 'false positive rate', 'true positive rate', [r.roc.fpr, r.roc.tpr, r.roc.fpr], ['ROC', 'chance'])
      : none('ROC curve', labelled ? 'None: all ' + s.n + ' labels were ' + (s.positives === 0 ? 'negative' : 'positive') + ', and a ROC curve needs both outcomes.' : noLabel),
  );
  const cal = r.calibration.filter((b) => b.count > 0);
  const centres = cal.map((b) => b.meanScore);
  plots.appendChild(
    labelled
      ? plot('Calibration', 'mean predicted probability', 'observed positive rate', [centres, cal.map((b) => b.positiveRate), centres], ['observed', 'perfect'], { points: true })
      : none('Calibration', noLabel),
  );
  const t = r.timeline.map((p) => p.time / 1000);
  // What the window spans, as the model stage says it (the setting is its plugin's config field, which this page does not know).
  const w = r.timelineWindow, spans = w && Number.isFinite(w.labels) && Number.isFinite(w.firstPointAt) && typeof w.setting === 'string';
  const windowed = spans ? 'window (last ' + w.labels + ' labels)' : 'window';
  const fewLabels = !labelled ? noLabel : spans
    ? 'No point yet: the first comes after ' + w.firstPointAt + ' labels (set by ' + w.setting + '), and this model got ' + s.n + '.'
    : 'No point yet: this model got ' + s.n + ' labels, fewer than its first point needs.';
  plots.appendChild(
    t.length > 0 && bothClasses
      ? plot('AUC over event time', 'event time (UTC)', 'AUC', [t, r.timeline.map((p) => p.auc), r.timeline.map((p) => p.cumulativeAuc)], [windowed, 'cumulative'], { time: true })
      : none('AUC over event time', t.length > 0 ? 'None: one outcome only (see the ROC curve).' : fewLabels),
  );
  plots.appendChild(
    t.length > 0
      ? plot('Log loss over event time', 'event time (UTC)', 'log loss (nats)', [t, r.timeline.map((p) => p.logloss)], [windowed], { time: true })
      : none('Log loss over event time', fewLabels),
  );
  // Each count in words (was the record's JSON): a count this page does not know (a plugin's own) is shown by its name.
  const ch = document.createElement('h3'); ch.textContent = 'Counts'; root.appendChild(ch);
  const counts = document.createElement('ul'); counts.className = 'counts';
  for (const [name, value] of Object.entries(r.counts || {})) { const li = document.createElement('li'); li.textContent = value + ' ' + (COUNT_WORDS[name] || name); counts.appendChild(li); }
  root.appendChild(counts);
  const fh = document.createElement('h3'); fh.textContent = r.features.length + ' features'; root.appendChild(fh);
  const list = document.createElement('ol'); list.className = 'features';
  for (const f of r.features) { const li = document.createElement('li'); li.textContent = f; list.appendChild(li); }
  root.appendChild(list);
}
</script></body></html>
`;
}

/**
 * Runs one or more pipelines in one process: each with its own state and checkpoints, one metrics
 * registry and one operations endpoint for all, and one shutdown for all (SIGTERM/SIGINT drain,
 * checkpoint and exit within the timeout). A pipeline that fails with an error a restart may mend is
 * restarted in the process from its last checkpoint (settings.restart), as Flink restarts a job.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { loadPipeline, placeText, problemPlace, type LoadedPipeline } from '../config/load.js';
import { parseDuration } from '../duration.js';
import type { PluginRegistry } from '../registry.js';
import { ConfigError, inputHandedOver, lastsForProcess, needsPerson, TributaryError, type ConfigProblem } from '../errors.js';
import { CheckpointStore, checkpointsOf } from './checkpoint.js';
import { OpsServerStopped, startOpsServer, type OpsServer } from './http.js';
import { PipelineRunner, type RunOptions, type RunStats } from './pipeline.js';
import { MetricsHub, redactSecrets } from './telemetry.js';

/** Pipeline files named by the user: a file, or every .yaml/.yml file in a folder. */
export function pipelineFiles(target: string): string[] {
  // Whatever is not a readable folder is read as a pipeline file, which reports why it cannot be read.
  let folder = false;
  try {
    folder = statSync(target).isDirectory();
  } catch {
    // not there, or no permission: loadPipeline says so, located
  }
  if (!folder) return [target];
  const files = readdirSync(target)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(target, name));
  if (files.length === 0) throw new ConfigError([{ file: target, message: 'the folder holds no .yaml or .yml pipeline file' }], 'TRIB_ERR_CONFIG_READ');
  return files;
}

/**
 * Pipelines of one run (files given together, or a folder's) that share a name: one problem for each
 * after the first of its name, at its `name` (at its start where the file gives none: its name is its
 * file's; by the file and the `--set` where a `--set name=...` gave it: problemPlace), naming the first (placeText). Names label metrics and checkpoints, so `run` refuses these, and
 * `validate` of a folder says so too.
 */
export function sameNameProblems(pipelines: readonly LoadedPipeline[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const byName = new Map<string, LoadedPipeline>();
  for (const pipeline of pipelines) {
    const first = byName.get(pipeline.document.name);
    if (!first) {
      byName.set(pipeline.document.name, pipeline);
      continue;
    }
    // A name a --set gave (the same to every file) is said as the --set's, not at the file's `name` it replaced.
    const at = pipeline.locate?.('name');
    const message = `the pipeline of ${placeText(first.file, first.locate?.('name'))} is named '${pipeline.document.name}' too: names label metrics and checkpoints, so the pipelines of one run must differ in name`;
    problems.push({ file: pipeline.file, ...problemPlace(at, message), path: '$.name' });
  }
  return problems;
}

/** `settings.restart`, its durations in ms. */
export interface RestartPolicy {
  /** As configured (`unlimited`: Infinity); undefined: the default, decided in the daemon's supervise(). */
  attempts: number | undefined;
  backoffMs: number;
  maxBackoffMs: number;
  resetAfterMs: number;
  /** Whether the pipeline keeps checkpoints (a restart resumes from the last one). */
  checkpointed: boolean;
}

/** A checkpointed pipeline's restarts in a row when `settings.restart.attempts` is not given and its sources do not all acknowledge. */
const defaultAttempts = 10;

/** The pipeline's restart policy, as configured (see {@link RestartPolicy.attempts} for the default number of attempts). */
export function restartPolicyOf(pipeline: LoadedPipeline, checkpointed: boolean): RestartPolicy {
  const restart = pipeline.document.settings.restart ?? {};
  return {
    attempts: restart.attempts === 'unlimited' ? Infinity : restart.attempts,
    backoffMs: parseDuration(restart.backoff ?? '1s'),
    maxBackoffMs: parseDuration(restart.max_backoff ?? '1m'),
    resetAfterMs: parseDuration(restart.reset_after ?? '10m'),
    checkpointed,
  };
}

/**
 * Where a restart of a failed pipeline resumes, as its restart's log line says it: its last checkpoint
 * where its folder holds one (this run's, or an earlier process's); else, checkpoints or not, where its
 * sources acknowledged their input (Kafka's committed offsets) or the start of its input.
 */
async function restartPoint(store: CheckpointStore | undefined, acknowledged: boolean): Promise<string> {
  // A folder that cannot be listed now says nothing of what the restart will find: the checkpoint is presumed.
  const held = store === undefined ? false : await store.holdsCheckpoints().catch(() => true);
  if (held) return 'from its last checkpoint';
  if (store === undefined) return acknowledged ? 'where its sources acknowledged their input' : 'from the start of its input (no checkpoints)';
  return `${acknowledged ? 'where its sources acknowledged their input' : 'from the start of its input'} (no checkpoint taken yet)`;
}

export interface DaemonOptions {
  targets: readonly string[];
  logger: Logger;
  /** A fresh registry per pipeline file: plugins of one pipeline never leak into another. */
  registry: () => Promise<PluginRegistry>;
  sets?: readonly string[];
  /**
   * The operations endpoint; `portInUseWaitMs`: how long a port in use is tried again (http.ts, PORT_IN_USE_WAIT_MS by default),
   * `addressMissingWaitMs`: an address no interface has (ADDRESS_MISSING_WAIT_MS).
   */
  http?: { port: number; host?: string; portInUseWaitMs?: number; addressMissingWaitMs?: number };
  /** Overrides every pipeline's `checkpoint.dir` (a sub-folder per pipeline when several run). */
  checkpointDir?: string;
  /** See {@link RunOptions.allowNonRestoredState}. */
  allowNonRestoredState?: boolean;
  /** How long a pipeline waits for a lock another host's process holds: its checkpoint folder's, or an output's (RunOptions.lockWaitMs). */
  lockWaitMs?: number;
  /** Exit hook for a shutdown that outlives its timeout, given the stop's exit code (tests replace it). */
  onShutdownTimeout?: (exitCode: number) => void;
  /** Tributary's version, exported as `tributary_build_info{version}` (a rollout's progress, which version an alert fired under). */
  version?: string;
}

export interface DaemonResult {
  runs: { name: string; stats: RunStats }[];
  /** `reported`: the daemon said it in full already (a stop's final checkpoint that failed), for the command not to say it again. */
  failures: { name: string; error: Error; reported?: true }[];
}

/** Failures the daemon logged in full as they happened (DaemonResult's `reported`). */
const reported = new WeakSet<Error>();

export class Daemon {
  readonly metrics = new MetricsHub({ defaultMetrics: true });
  readonly runners: PipelineRunner[] = [];
  private readonly controller = new AbortController();
  private ops: OpsServer | undefined;
  private loaded: LoadedPipeline[] = [];
  /** Pipelines waiting to be restarted (by index in `runners`): the failure's message, and how long the wait is, for /readyz. */
  private readonly restarting = new Map<number, { failure: string; waiting: string }>();
  /** Ends a stop that outlives shutdown_timeout; cleared once the run is over (the process may live on: tests, embedding). */
  private shutdownTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: DaemonOptions) {}

  get port(): number | undefined {
    return this.ops?.port;
  }

  get stopping(): boolean {
    return this.controller.signal.aborted;
  }

  /** Loads and validates every pipeline first: a bad file stops the start before anything runs. */
  async load(): Promise<void> {
    const files = this.options.targets.flatMap((target) => pipelineFiles(target));
    for (const file of files) {
      const pipeline = await loadPipeline(file, { registry: await this.options.registry(), sets: this.options.sets ?? [] });
      this.options.logger.debug({ file, config: redactSecrets(pipeline.document) }, 'pipeline loaded');
      this.loaded.push(pipeline);
    }
    const clashes = sameNameProblems(this.loaded);
    if (clashes.length > 0) throw new ConfigError(clashes);
  }

  /** Has every pipeline's sinks open their outputs again at their paths (SIGHUP: logrotate renamed them). */
  async reopenOutputs(): Promise<void> {
    this.options.logger.info('reopening outputs');
    await Promise.all(this.runners.map((runner) => runner.reopenOutputs()));
  }

  /**
   * Stops every pipeline: sources stop, in-flight records drain, sinks flush, a final checkpoint is written.
   * A stop that outlives shutdown_timeout exits `timeoutExitCode` (1; an uncaught error's stop: 70). A stop
   * asked for while one is under way changes nothing.
   */
  stop(reason: string, timeoutExitCode = 1): void {
    if (this.controller.signal.aborted) return;
    this.options.logger.info({ reason }, 'stopping: draining in-flight records');
    this.controller.abort();
    const timeouts = this.loaded.map((p) => parseDuration(p.document.settings.shutdown_timeout ?? '30s'));
    const timeout = Math.max(...timeouts, 0);
    this.shutdownTimer = setTimeout(() => {
      this.options.logger.error({ timeoutMs: timeout }, `shutdown did not finish within shutdown_timeout; exiting ${timeoutExitCode}`);
      (this.options.onShutdownTimeout ?? ((code: number) => process.exit(code)))(timeoutExitCode);
    }, timeout);
    this.shutdownTimer.unref();
  }

  /** How often a terminal's progress line is redrawn: the shortest `settings.progress_interval` of the loaded pipelines. */
  get progressIntervalMs(): number {
    // An hour when none is loaded: setInterval takes Infinity for 1 ms.
    return Math.min(...this.loaded.map((p) => parseDuration(p.document.settings.progress_interval ?? '1s')), 3_600_000);
  }

  /** The pipeline's readiness (/readyz, tributary_pipeline_ready), saying so while it waits to be restarted. */
  private readiness(index: number): { ready: boolean; reasons: string[] } {
    const restart = this.restarting.get(index);
    // The failed runner is closed: its own reasons (`starting`, a source `connecting`) are stale then, and
    // a failure before its run began (a sink that could not open) is not among them: said here, as the log says it.
    return restart ? { ready: false, reasons: [`failed: ${restart.failure}`, restart.waiting] } : this.runners[index]!.readiness();
  }

  /**
   * Runs the pipeline at `index`, and while it fails with an error a restart may mend, starts it again
   * in the process (settings.restart): a new runner of the same pipeline, which claims its checkpoint
   * folder and restores from it as a new process would. The failed one closed everything first (its
   * consumer left the group, its producer aborted its transaction): run() rejects only after that.
   */
  private async supervise(index: number, runner: () => PipelineRunner, policy: RestartPolicy, store: CheckpointStore | undefined): Promise<RunStats> {
    const name = this.runners[index]!.name;
    const logger = this.options.logger.child({ pipeline: name });
    const restarts = this.metrics.scoped({ pipeline: name }).counter('pipeline_restarts_total', 'Times the daemon restarted the pipeline in the process after it failed (settings.restart).');
    let inRow = 0;
    let restarted = 0;
    for (;;) {
      const began = Date.now();
      try {
        return await this.runners[index]!.run();
      } catch (error) {
        // Sources that acknowledge their input (Kafka) resume where they acknowledged, checkpoint or not,
        // and fail in a broker outage of any length: no end to the restarts, as a daemon of Flink's or
        // Kafka Streams' rides it out. From files, only a checkpoint resumes (without one a restart would
        // read them again from their start, writing their outputs twice), and a failure that comes back
        // ten times is more likely the input's or the disk's than a passing one.
        const acknowledged = this.runners[index]!.sourcesAcknowledge;
        const attempts = policy.attempts ?? (acknowledged ? Infinity : policy.checkpointed ? defaultAttempts : 0);
        const message = (error as Error).message;
        // docs/errors.md: every record of an error of the catalogue carries its code at the top level (the
        // failure is `err` as its message alone here: a restart without end would repeat its stack).
        const code = error instanceof TributaryError ? { code: error.code } : {};
        if (this.stopping && inputHandedOver(error)) return this.stoppedHandingOver(index, message);
        if (this.stopping && error instanceof TributaryError && error.code === 'TRIB_ERR_FINAL_CHECKPOINT') throw await this.finalCheckpointFailed(index, error, store, acknowledged);
        if (needsPerson(error) || lastsForProcess(error) || this.stopping || attempts === 0) throw error;
        if (Date.now() - began >= policy.resetAfterMs) inRow = 0;
        if (inRow >= attempts) {
          logger.error({ ...code, err: message, attempts }, `pipeline ${name} failed again after ${attempts} restart${attempts === 1 ? '' : 's'} in a row: giving up`);
          throw error;
        }
        const waitMs = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** inRow);
        inRow++;
        const limit = Number.isFinite(attempts) ? ` of ${attempts}` : '';
        const from = await restartPoint(store, acknowledged);
        logger.error({ ...code, err: message, restart: inRow, attempts: limit ? attempts : 'unlimited', waitMs }, `pipeline ${name} failed; restarting it in ${waitMs} ms ${from} (restart ${inRow}${limit} in a row)`);
        this.restarting.set(index, { failure: message, waiting: `restarting in ${waitMs} ms (restart ${inRow}${limit} in a row)` });
        try {
          await sleep(waitMs, undefined, { signal: this.controller.signal });
        } catch {
          // Stopped while waiting: the stop is done (exit 0, as a supervisor asked for it), not a failure with a
          // stack (was exit 1): the failure was one a restart may mend, and the next start resumes as this
          // restart would have, from the same point (nothing of its input is lost). Said in one line.
          if (inputHandedOver(error)) return this.stoppedHandingOver(index, message);
          return this.stoppedWaiting(index, { ...code, err: message }, from);
        } finally {
          this.restarting.delete(index);
        }
        restarts.inc();
        this.runners[index] = runner();
        this.runners[index]!.stats.restarts = ++restarted;
      }
    }
  }

  /**
   * A stop whose final checkpoint could not be written (TRIB_ERR_FINAL_CHECKPOINT): said here in one line,
   * what failed and where the next start resumes, without the stack (was: `pipeline NAME failed` with
   * it); the run still fails (exit 1: the stop was not clean, and a supervisor's restart resumes as said).
   */
  private async finalCheckpointFailed(index: number, error: TributaryError, store: CheckpointStore | undefined, acknowledged: boolean): Promise<TributaryError> {
    const runner = this.runners[index]!;
    const from = await restartPoint(store, acknowledged);
    // This run's last checkpoint, or the one it resumed from: the one the next start restores, unless another process writes one first.
    const last = runner.stats.lastCheckpoint?.sequence ?? runner.stats.resumedFrom;
    const resumes = from === 'from its last checkpoint' && last !== undefined ? `from its last checkpoint (#${last})` : from;
    const cause = error.cause instanceof Error ? error.cause.message : error.message;
    this.options.logger.error(
      { pipeline: runner.name, code: error.code, err: cause },
      `pipeline ${runner.name} stopped without its final checkpoint, which could not be written (${cause}); its next start resumes ${resumes}, reading the input since again`,
    );
    reported.add(error);
    return error;
  }

  /**
   * A stop while the pipeline waited to be restarted after a failure a restart may mend: it ends as
   * stopped, one warning naming the failure (its message and code, no stack) and where the next start resumes.
   */
  private stoppedWaiting(index: number, failure: { code?: string; err: string }, from: string): RunStats {
    const runner = this.runners[index]!;
    this.options.logger.warn(
      { pipeline: runner.name, ...failure },
      `pipeline ${runner.name} stopped while it waited to be restarted after a failure (${failure.err}); its next start resumes ${from}`,
    );
    return runner.stats;
  }

  /**
   * A stop that met a failure which only left the run's uncommitted input to its next reader
   * (inputHandedOver: another member of its group, or the next start in a broker outage): the stop is
   * done, as Kafka Streams closes a migrated task; not a failure. The failure's message (`err`) says which.
   */
  private stoppedHandingOver(index: number, message: string): RunStats {
    const runner = this.runners[index]!;
    this.options.logger.warn(
      { pipeline: runner.name, err: message },
      `pipeline ${runner.name} stopped without committing its last input, which its next reader reads again (nothing of it was committed here)`,
    );
    return runner.stats;
  }

  async run(): Promise<DaemonResult> {
    // A handle held for the run's length: a pipeline waiting on a promise that holds none (a plugin stuck
    // in read, ignoring its signal) left node nothing to do, and it exited 13 at once, silently, instead of
    // waiting for a stop and its shutdown_timeout (whose timer is unref'd: the process may live on after run()).
    const keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
    try {
      return await this.runHeld();
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async runHeld(): Promise<DaemonResult> {
    if (this.loaded.length === 0) await this.load();
    const many = this.loaded.length > 1;
    const runShared = new Map<string, unknown>();
    const starts = this.loaded.map((pipeline) => {
      const dir = this.options.checkpointDir && (many ? join(this.options.checkpointDir, pipeline.document.name) : this.options.checkpointDir);
      const checkpoints = checkpointsOf(pipeline, dir || undefined);
      const runner = (): PipelineRunner =>
        new PipelineRunner(pipeline, {
          logger: this.options.logger,
          metrics: this.metrics,
          signal: this.controller.signal,
          ...(checkpoints ? { checkpoints } : {}),
          lockWaitMs: this.options.lockWaitMs ?? 0,
          ...(this.options.allowNonRestoredState ? { allowNonRestoredState: true } : {}),
          runShared,
        });
      this.runners.push(runner());
      return { runner, policy: restartPolicyOf(pipeline, checkpoints !== undefined), store: checkpoints?.store };
    });
    const folder = this.options.checkpointDir;
    if (folder) {
      // Several pipelines keep their checkpoints in sub-folders, one alone in the folder itself: a
      // pipeline added or removed moves the others', which would be passed over (a start from nothing).
      const own = await new CheckpointStore(folder).holdsCheckpoints();
      if (many && own) {
        throw new TributaryError(
          'TRIB_ERR_CHECKPOINT',
          `${folder} holds checkpoints of a run of one pipeline; with several pipelines each keeps its own in ${join(folder, '<pipeline name>')}: move them into the folder of the pipeline that wrote them`,
        );
      }
      const name = this.loaded[0]!.document.name;
      if (!many && !own && (await new CheckpointStore(join(folder, name)).holdsCheckpoints())) {
        throw new TributaryError(
          'TRIB_ERR_CHECKPOINT',
          `${join(folder, name)} holds this pipeline's checkpoints from a run of several pipelines; run alone, it keeps them in ${folder}: move them there`,
        );
      }
    }
    if (this.options.http) {
      const { port, host = '127.0.0.1' } = this.options.http;
      this.ops = await startOpsServer({
        ...this.options.http,
        registry: this.metrics.registry,
        pipelines: () => this.runners.map((runner, index) => ({ name: runner.name, readiness: () => this.readiness(index) })),
        onPortInUse: (waitMs) => this.options.logger.warn({ port, host }, `port ${port} on ${host} (--http-port) is in use; trying it again for up to ${waitMs / 1000} s (a previous instance still shutting down?)`),
        onAddressMissing: (waitMs) => this.options.logger.warn({ port, host }, `no network interface of this host has address ${host} (--http-host) yet; trying it again for up to ${waitMs / 1000} s (an interface still coming up?)`),
        signal: this.controller.signal,
      }).catch((error: unknown) => {
        // A stop during the wait is no failure: the pipelines, not started yet, end at once, exit 0.
        if (error instanceof OpsServerStopped) return undefined;
        throw error;
      });
      if (this.ops) this.options.logger.info({ port: this.ops.port, host: this.options.http.host ?? '127.0.0.1' }, 'serving /healthz, /readyz, /metrics');
    }
    this.metrics.observe('heap_used_bytes', 'V8 heap in use.', {}, () => process.memoryUsage().heapUsed);
    this.metrics.observe('array_buffers_bytes', 'Memory of ArrayBuffers and Buffers (checkpoint serialisation, file reads, compression): outside the V8 heap, part of tributary_nodejs_external_memory_bytes, in the resident memory.', {}, () => process.memoryUsage().arrayBuffers);
    if (this.options.version !== undefined) this.metrics.observe('build_info', "Tributary's version, as the `version` label; always 1.", { version: this.options.version }, () => 1);
    // What /readyz says, from the start (0 while starting), for an alert in Prometheus: a probe's answer is seen only by its prober.
    this.runners.forEach((runner, index) => {
      this.metrics.observe('pipeline_ready', '1 while the pipeline is ready as /readyz says (restored, running, its sources and sinks reaching their brokers), else 0.', { pipeline: runner.name }, () => (this.readiness(index).ready ? 1 : 0));
    });
    let ended = 0;
    const results = await Promise.allSettled(
      starts.map(({ runner, policy, store }, index) =>
        this.supervise(index, runner, policy, store).then(
          (stats) => {
            // Its summary waits for the others' (the process's end, months later beside a Kafka pipeline): said now.
            if (++ended < this.runners.length && stats.drained && !this.stopping) {
              const name = this.runners[index]!.name;
              this.options.logger.info(
                { pipeline: name, drained: true, eventsIn: stats.eventsIn, recordsOut: stats.recordsOut, deadLettered: stats.deadLettered },
                `pipeline ${name} drained its input: ${stats.eventsIn} events in, ${stats.recordsOut} records out, ${stats.deadLettered} dead-lettered; the other pipelines run on (its summary is written with theirs when the process ends)`,
              );
            }
            return stats;
          },
          (error: unknown) => {
            // The others stop too (drained, to their final checkpoints): the process then exits 1 and its
            // supervisor restarts them all. Left running, they kept the process up with this one dead, never restarted.
            ended++;
            if (this.runners.length > 1) this.stop(`pipeline ${this.runners[index]!.name} failed: ${(error as Error).message}`);
            throw error;
          },
        ),
      ),
    );
    // The endpoint's close too is bounded by the shutdown timer (cleared only after it).
    await this.ops?.close();
    clearTimeout(this.shutdownTimer);
    const result: DaemonResult = { runs: [], failures: [] };
    results.forEach((outcome, index) => {
      const name = this.runners[index]!.name;
      if (outcome.status === 'fulfilled') result.runs.push({ name, stats: outcome.value });
      else result.failures.push({ name, error: outcome.reason as Error, ...(reported.has(outcome.reason as Error) ? { reported: true as const } : {}) });
    });
    return result;
  }
}

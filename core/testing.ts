/**
 * Test helpers for plugin authors (and Tributary's own tests): run a pipeline written inline in
 * YAML, or push records through one operator, and collect what comes out.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Subject } from 'rxjs';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { configErrorTexts, loadPipeline, type LoadedPipeline } from './config/load.js';
import type { Element, StreamRecord } from './events.js';
import { jsonProblem } from './json.js';
import { defineSink, defineSource, isPlugin, type AnyPlugin, type Clock, type JsonSchema, type Operator, type OperatorPlugin, type PluginContext, type Rejection, type Sink, type SinkPlugin, type Source, type SourcePlugin } from './plugin.js';
import { PluginRegistry } from './registry.js';
import { PipelineRunner, restoreStage, type RunStats } from './runtime/pipeline.js';
import { MetricsHub } from './runtime/telemetry.js';
import { checkpointsOf } from './runtime/checkpoint.js';
import { SchemaValidator } from './config/schema.js';
import type { SummaryRecord } from './cli/run.js';

export const silentLogger: Logger = pino({ level: 'silent' });

/** The logger of runYaml and runOperator: silent, unless TRIBUTARY_TEST_LOG names a level (then JSON lines on stderr), to see why a test's run did what it did. */
const runLogger: Logger = process.env['TRIBUTARY_TEST_LOG'] ? pino({ level: process.env['TRIBUTARY_TEST_LOG'] }, pino.destination(2)) : silentLogger;

/** The end-of-run summaries in the stderr of a `tributary run` that was not on a terminal (its logs are JSON lines). */
export function runSummaries(stderr: string): (SummaryRecord & { level: number; msg: string })[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as SummaryRecord & { level: number; msg: string })
    .filter((entry) => entry.outcome !== undefined && entry.eventsIn !== undefined);
}

/**
 * A source that yields one event (user `u`, at time 0), then waits for more until the run stops, as a
 * Kafka source on a quiet topic does: a run under way for tests of readiness, draining and commits.
 * `more` adds or replaces parts of the source (`health`, `position`, `commit`).
 */
export function quietAfterOne(name: string, more: Partial<Source> = {}): SourcePlugin<Record<string, never>> {
  return defineSource<Record<string, never>>({
    name,
    summary: 'One event, then quiet until stopped (tests only).',
    config: { type: 'object' },
    create: (_config, context) => ({
      async *read() {
        yield [{ kind: 'event', userId: 'u', time: 0, type: 'view' }];
        await new Promise<void>((resolve) => context.signal?.addEventListener('abort', () => resolve(), { once: true }));
      },
      ...more,
    }),
  });
}

/** A sink that keeps what it receives in memory; `memory` in test pipelines. */
export function memorySink(store: StreamRecord[][] = []): SinkPlugin<{ id?: number }> {
  return defineSink<{ id?: number }>({
    name: 'memory',
    summary: 'Keeps records in memory (tests only).',
    config: { type: 'object', additionalProperties: false, properties: { id: { type: 'integer', description: 'Which store slot to write to.' } } },
    create(config) {
      const records: StreamRecord[] = [];
      store[config.id ?? 0] = records;
      return { write: (record) => void records.push(record), close: async () => undefined };
    },
  });
}

/** What a temp folder is removed after: a test's context (`t`), or `{ after }` (node:test's `after`) for one the whole file shares. */
export interface TestCleanup {
  after(fn: () => void): void;
}

/**
 * A new empty folder under the system's temp folder, `tributary-<name>-XXXXXX`, removed with all in it
 * when `owner`'s tests end (passed or failed), so that test runs leave no folders behind.
 */
export function tempFolder(owner: TestCleanup, name: string): string {
  const folder = mkdtempSync(join(tmpdir(), `tributary-${name}-`));
  // Retries: a process the test started may still be writing into it as its own cleanup stops it.
  owner.after(() => rmSync(folder, { recursive: true, force: true, maxRetries: 5 }));
  return folder;
}

export interface TestRun {
  stats: RunStats;
  /** Records per `memory` sink id (`type: memory, id: N`; id 0 by default). */
  outputs: StreamRecord[][];
  /** Records that reached the dead-letter sink. */
  deadLetters: StreamRecord[];
  runner: PipelineRunner;
  loaded: LoadedPipeline;
}

export interface TestRunOptions {
  /** Plugin modules or plugins to register besides the built-ins. */
  plugins?: readonly (AnyPlugin | string)[];
  /** Register the built-in plugins (from dist/plugins/index.js). Default: true. */
  builtins?: boolean;
  env?: Record<string, string | undefined>;
  sets?: string[];
  signal?: AbortSignal;
  clock?: Clock;
  /** Operator state to start from, by stage label, as a checkpoint gives it (one a stage refuses fails the run, worded as a checkpoint's). */
  restoreState?: Record<string, unknown>;
  /** Folder the YAML is considered to live in (relative paths). Default: a new temp folder. */
  baseDir?: string;
  /** Where the run's metrics go, to read them afterwards. Default: a fresh hub. */
  metrics?: MetricsHub;
  /** The run's logger, to read what the runtime and the plugins said. Default: silent (see TRIBUTARY_TEST_LOG). */
  logger?: Logger;
}

/**
 * Runs a pipeline given as YAML text. The `memory` sink is registered, and the dead-letter sink is
 * replaced by one in memory unless the YAML names one. The YAML is written to `pipeline.yaml` in
 * `options.baseDir`, else in a temp folder of its own, removed when the run ends with what the run
 * wrote beside it (a relative checkpoint folder): a test that reads such files passes `baseDir`.
 */
export async function runYaml(yaml: string, options: TestRunOptions = {}): Promise<TestRun> {
  const registry = new PluginRegistry();
  if (options.builtins ?? true) {
    const { builtinPluginModule } = await import('./cli/registry.js');
    await registry.load(builtinPluginModule, process.cwd());
  }
  const outputs: StreamRecord[][] = [];
  registry.register(memorySink(outputs), 'testing');
  for (const plugin of options.plugins ?? []) {
    if (isPlugin(plugin)) registry.register(plugin, 'test');
    else await registry.load(plugin, process.cwd());
  }
  const baseDir = options.baseDir ?? mkdtempSync(join(tmpdir(), 'tributary-test-'));
  try {
    return await runYamlIn(baseDir, yaml, registry, outputs, options);
  } finally {
    if (options.baseDir === undefined) rmSync(baseDir, { recursive: true, force: true, maxRetries: 5 });
  }
}

async function runYamlIn(baseDir: string, yaml: string, registry: PluginRegistry, outputs: StreamRecord[][], options: TestRunOptions): Promise<TestRun> {
  const file = join(baseDir, 'pipeline.yaml');
  writeFileSync(file, yaml);
  const hasDeadLetter = /^dead_letter:/m.test(yaml);
  const loaded = await loadPipeline(file, { registry, env: options.env ?? {}, sets: [...(options.sets ?? []), ...(hasDeadLetter ? [] : ['dead_letter.type=memory', 'dead_letter.id=999'])] });
  // A `checkpoint` section in the YAML is honoured, as the daemon honours it.
  const checkpoints = checkpointsOf(loaded);
  const runner = new PipelineRunner(loaded, {
    logger: options.logger ?? runLogger,
    metrics: options.metrics ?? new MetricsHub(),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.restoreState ? { restoreState: options.restoreState } : {}),
    ...(checkpoints ? { checkpoints } : {}),
  });
  const stats = await runner.run();
  const deadLetters = outputs[999] ?? [];
  return { stats, outputs, deadLetters, runner, loaded };
}

/**
 * What the pipeline reference (`tributary docs`) needs of a plugin's spec and does not find: a summary,
 * a description for every field (an object field's own fields too; a `$ref` type describes itself) and
 * examples its own schema accepts (an example that does not validate is printed there all the same).
 * Empty when the spec is complete: assert that in the plugin's tests, as the built-ins' docs test does.
 */
export function specProblems(plugin: AnyPlugin): string[] {
  const problems: string[] = [];
  const name = `${plugin.kind} '${plugin.name}'`;
  if (!plugin.summary) problems.push(`${name} has no summary`);
  const walk = (properties: Record<string, JsonSchema>, prefix: string): void => {
    for (const [field, schema] of Object.entries(properties)) {
      if (!schema.description && typeof schema.$ref !== 'string') problems.push(`${name}: field '${prefix}${field}' has no description`);
      if (schema.type === 'object' && schema.properties) walk(schema.properties as Record<string, JsonSchema>, `${prefix}${field}.`);
    }
  };
  walk((plugin.config.properties ?? {}) as Record<string, JsonSchema>, '');
  const validator = new SchemaValidator();
  for (const example of plugin.examples ?? []) {
    const errors = configErrorTexts(plugin, validator.validateEntry(plugin, { type: plugin.name, ...structuredClone(example) }));
    if (errors.length > 0) problems.push(`${name}: example ${JSON.stringify(example)} is invalid: ${errors.join('; ')}`);
  }
  return problems;
}

/** A context for calling a factory directly in a unit test; dead letters, side outputs and reported failures are kept. */
export function testContext(overrides: Partial<PluginContext> = {}): PluginContext & {
  deadLetters: Rejection[];
  sideOutputs: { name: string; record: StreamRecord }[];
  filtered: number;
  /** What `countFiltered` counted, by its reason (the run's summary shows them so). */
  filteredByReason: Record<string, number>;
  /** What the plugin reported with `fail(error)`, in order. */
  failures: Error[];
} {
  const deadLetters: Rejection[] = [];
  const sideOutputs: { name: string; record: StreamRecord }[] = [];
  const failures: Error[] = [];
  const context = {
    pipeline: 'test',
    label: 'under-test',
    baseDir: process.cwd(),
    logger: runLogger,
    // The logger given (a test's, to read its lines), as the runtime's is the pipeline's.
    sharedLogger: (name: string): Logger => context.logger.child({ shared: name }),
    metrics: new MetricsHub().scoped({ pipeline: 'test', stage: 'under-test' }, runLogger),
    clock: { now: () => Date.now() },
    batchSize: 1024,
    deadLetter: (rejection: Rejection) => void deadLetters.push(rejection),
    countFiltered: (count: number, reason: string) => {
      context.filtered += count;
      context.filteredByReason[reason] = (context.filteredByReason[reason] ?? 0) + count;
    },
    sideOutput: (name: string, record: StreamRecord) => void sideOutputs.push({ name, record }),
    fail: (error: Error) => void failures.push(error),
    deadLetters,
    sideOutputs,
    failures,
    filtered: 0,
    filteredByReason: Object.create(null) as Record<string, number>,
    ...overrides,
  };
  return context;
}

export interface RunOperatorOptions {
  /**
   * A state to start from, as a checkpoint restores it: given to the operator's `restore` after
   * `open`, before the first element (pass the `state` an earlier `runOperator` returned). One the
   * operator refuses rejects with the message a run gives (`the saved state of stage LABEL could not
   * be restored: ...`, LABEL the context's).
   */
  restore?: unknown;
}

export interface OperatorRun {
  output: Element[];
  operator: Operator;
  /**
   * The operator's `snapshot()` after the input, taken once the input completed as a run's final
   * checkpoint takes it, and as it reads back from a checkpoint (which is JSON);
   * undefined for an operator without `snapshot`. A snapshot JSON would not give back as it is (a Map,
   * a Set, a typed array, NaN...) fails the run, since a checkpoint would lose it silently.
   */
  state: unknown;
}

/** Builds an operator from its plugin and config, and runs `input` through it as a run ends its input (waiting on `ready()`). */
export async function runOperator<C>(
  plugin: OperatorPlugin<C>,
  /** Validated against the plugin's schema, with its defaults filled in. */
  config: Partial<C>,
  input: readonly Element[],
  context: PluginContext = testContext(),
  options: RunOperatorOptions = {},
): Promise<OperatorRun> {
  const operator = await plugin.create(validatedConfig(plugin, config), context);
  let output: Element[];
  let state: unknown;
  try {
    await operator.open?.();
    if (options.restore !== undefined) {
      if (!operator.restore) throw new Error(`${plugin.name} has no restore(): it cannot start from a state`);
      // Worded as a run words it, naming the stage (context.label) once: a plugin's own message need not.
      await restoreStage(operator, options.restore, { label: context.label });
    }
    output = await runAsTheRuntimeDoes(operator, input);
    state = operator.snapshot ? asCheckpointed(plugin.name, await operator.snapshot()) : undefined;
  } catch (error) {
    // Closed as a failed run closes it (a model file's lock released); the failure is the first error.
    await operator.close?.().catch(() => undefined);
    throw error;
  }
  await operator.close?.();
  return { output, operator, state };
}

/** `config` validated against the plugin's schema, its defaults filled in, as a run gives it to the factory; throws worded as `tributary validate` words it. */
function validatedConfig<C>(plugin: OperatorPlugin<C> | SinkPlugin<C>, config: Partial<C>): C {
  const entry = { type: plugin.name, ...(config as object) };
  const problems = configErrorTexts(plugin, new SchemaValidator().validateEntry(plugin, entry));
  if (problems.length > 0) throw new Error(`invalid ${plugin.name} config: ${problems.join('; ')}`);
  const { type: _type, ...withDefaults } = entry;
  return withDefaults as C;
}

export interface SinkRun {
  /** The sink, flushed and closed. */
  sink: Sink;
  /** The records handed to its `write`, in order: those of the kinds it takes. */
  written: StreamRecord[];
  /** The records of kinds its spec's `kinds` leaves out: a run never hands them to it (they count as filtered there). */
  notTaken: StreamRecord[];
}

/**
 * Builds a sink from its plugin and config and writes `records` to it as a run does: `open`, then each
 * record of a kind it takes to `write`, waiting after each for every promise `ready()` gives (back
 * pressure), then `flush` and `close`. What it dead-letters is in `context.deadLetters` (testContext);
 * a relative path resolves against `context.baseDir`, and `testContext({ resuming: true })` is a
 * restart's context. A `write`, `flush` or `close` that throws rejects, as it would fail a run.
 */
export async function runSink<C>(
  plugin: SinkPlugin<C>,
  /** Validated against the plugin's schema, with its defaults filled in. */
  config: Partial<C>,
  records: readonly StreamRecord[],
  context: PluginContext = testContext(),
): Promise<SinkRun> {
  const sink = await plugin.create(validatedConfig(plugin, config), context);
  const takes = plugin.kinds === undefined ? undefined : new Set(plugin.kinds);
  const written: StreamRecord[] = [];
  const notTaken: StreamRecord[] = [];
  try {
    await sink.open?.();
    for (const record of records) {
      if (takes !== undefined && !takes.has(record.kind)) {
        notTaken.push(record);
        continue;
      }
      sink.write(record);
      written.push(record);
      for (let ready = sink.ready?.(); ready; ready = sink.ready?.()) await ready;
    }
    await sink.flush?.();
  } catch (error) {
    // Closed as a failed run closes it; the failure is the first error, not one of close's after it.
    await sink.close().catch(() => undefined);
    throw error;
  }
  await sink.close();
  return { sink, written, notTaken };
}

/**
 * `input` through `operator` as a run ends: the input handed over, then (as the runtime does before it
 * ends the input) each promise `ready()` gives awaited until it gives none, so what the operator holds
 * for later (a micro-batch scored asynchronously) comes out; then the input completes. The snapshot
 * taken after this is the one a run's final checkpoint takes.
 */
async function runAsTheRuntimeDoes(operator: Operator, input: readonly Element[]): Promise<Element[]> {
  const output: Element[] = [];
  const elements = new Subject<Element>();
  let ended = false;
  const done = new Promise<void>((resolve, reject) => {
    operator.apply(elements.asObservable()).subscribe({
      next: (element) => void output.push(element),
      error: (error: unknown) => {
        ended = true;
        reject(error);
      },
      complete: () => {
        ended = true;
        resolve();
      },
    });
  });
  done.catch(() => undefined); // awaited below; the stream may fail before anything waits on it
  for (const element of input) elements.next(element);
  for (let ready = operator.ready?.(); ready && !ended; ready = operator.ready?.()) await Promise.race([ready, done]);
  elements.complete();
  await done;
  return output;
}

/** `snapshot` as a checkpoint gives it back (checkpoints are JSON); throws where JSON would change it. */
function asCheckpointed(name: string, snapshot: unknown): unknown {
  if (snapshot === undefined) return undefined;
  const problem = jsonProblem(snapshot, '$', { strict: true });
  if (problem) throw new Error(`${name}: snapshot() would not survive a checkpoint (checkpoints are JSON): ${problem}`);
  return JSON.parse(JSON.stringify(snapshot)) as unknown;
}

export type { Sink };

/**
 * Counts the turns of the event loop from now until `stop()`: whether long work (a snapshot or a
 * restore of a large state) lets other work run meanwhile, as a daemon's /healthz needs. Asserted by
 * count, never by time.
 */
export function countLoopTurns(): { readonly turns: number; stop(): number } {
  let turns = 0;
  let counting = true;
  const count = (): void => {
    if (!counting) return;
    turns++;
    setImmediate(count);
  };
  setImmediate(count);
  return {
    get turns() {
      return turns;
    },
    stop() {
      counting = false;
      return turns;
    },
  };
}

/**
 * Waits until `condition` holds, checking every 10 ms, and fails naming `what` once `timeoutMs` has
 * passed without it: how a test waits for what it can observe (a record written, a file there, a
 * state reached) instead of sleeping a fixed time and hoping it happened.
 */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A `tributary` command run as its own process (spawnTributary), as a user or a supervisor runs it. */
export interface TributaryProcess {
  readonly child: ChildProcess;
  /** What it wrote to stderr so far (its logs: JSON lines, as stderr is no terminal). */
  readonly stderr: string;
  /** Its end: the exit code, or the signal that ended it. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  /**
   * Sends `signal` (SIGTERM: a supervisor's stop) and resolves with its end, as `exited` does; one still
   * running `killAfterMs` later (30 s) is killed, so the test fails on `'SIGKILL'` instead of hanging.
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<number | NodeJS.Signals | null>;
  /**
   * Waits, as {@link until} does, for the first sign that it runs (`condition`: its first output, a log
   * line), up to {@link SPAWNED_START_MS}; the failure names `what` and its stderr so far.
   */
  started(condition: () => boolean | Promise<boolean>, what: string): Promise<void>;
}

/**
 * How long a spawned `tributary` may take to show its first output. Mostly the process's start: on 2
 * cores 1.6 s idle, 15-23 s beside 10 busy processes, 42-49 s beside 20 (until's 30 s default ran out
 * so). The one limit for every test's first wait on a spawned run; later waits are the run's own work.
 */
export const SPAWNED_START_MS = 120_000;

export interface SpawnTributaryOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** A pipe the test writes (a `stdin` source's input) instead of none. */
  stdin?: boolean;
  /** Kept (`child.stdout`) instead of dropped: a `stdout` sink's records, a reader that goes away. */
  stdout?: boolean;
}

/** This package's command line, compiled beside this module. */
const cliPath = fileURLToPath(new URL('./cli/main.js', import.meta.url));

/**
 * spawnSync, bounded: a command that has not ended within `options.timeout` (default
 * {@link SPAWNED_START_MS}: a short run is mostly its start) is killed (SIGKILL: a daemon drains on
 * SIGTERM) and fails the test at once with what it wrote, not at scripts/test.mjs's 300 s bound of the
 * whole test file, which tells nothing of it. A command that cannot be started at all fails so too.
 */
export function boundedSpawnSync(command: string, args: readonly string[], options: SpawnSyncOptionsWithStringEncoding): SpawnSyncReturns<string> {
  const timeout = options.timeout ?? SPAWNED_START_MS;
  const result = spawnSync(command, args, { killSignal: 'SIGKILL', ...options, timeout });
  if (result.error) {
    const why = (result.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? `did not end within ${timeout} ms (killed)` : `could not run: ${result.error.message}`;
    throw new Error(`${[command, ...args].join(' ')} ${why}\nstdout: ${result.stdout ?? ''}\nstderr: ${result.stderr ?? ''}`, { cause: result.error });
  }
  return result;
}

/**
 * Starts `tributary ARGS...` as a process of its own: what a daemon does on a signal, or with a lock
 * another process holds, is seen only so. Its stderr is collected; it is killed (SIGKILL) when `owner`'s
 * tests end should it still run (a failed assertion must not leave a daemon behind). Wait for what it
 * does with `started` (its first sign of running), then {@link until}, then `stop()` it:
 *
 *     const daemon = spawnTributary(t, ['run', 'p.yaml'], { cwd: dir });
 *     await daemon.started(() => existsSync(out) && statSync(out).size > 0, 'output');
 *     assert.equal(await daemon.stop(), 0, daemon.stderr);
 */
export function spawnTributary(owner: TestCleanup, args: readonly string[], options: SpawnTributaryOptions = {}): TributaryProcess {
  const child = spawn(process.execPath, [cliPath, ...args], {
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
    stdio: [options.stdin ? 'pipe' : 'ignore', options.stdout ? 'pipe' : 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close', not 'exit': its stderr is read to the end by then.
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  owner.after(() => void (running() && child.kill('SIGKILL')));
  return {
    child,
    get stderr() {
      return stderr;
    },
    exited,
    async started(condition, what) {
      try {
        await until(condition, what, SPAWNED_START_MS);
      } catch (error) {
        // Its stderr at the time out, not at the start of the wait (empty then).
        throw new Error(`${(error as Error).message} (stderr: ${stderr})`);
      }
    },
    async stop(signal = 'SIGTERM', killAfterMs = 30_000) {
      if (running()) child.kill(signal);
      const killed = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      try {
        return await exited;
      } finally {
        clearTimeout(killed);
      }
    },
  };
}

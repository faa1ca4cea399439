/**
 * What a Kafka integration test needs from its surroundings: the broker scripts/test.mjs started (or
 * the user's `KAFKA_BROKERS`). Without one the test skips with the reason, except in CI (`CI` set to
 * anything but '', 'false' or '0': scripts/ci.ts), where a Kafka test that cannot run fails the run
 * instead of passing silently.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { inCI } from '../../scripts/ci.js';
import { DATA_DIR_ENV, SKIP_ENV, startNativeBroker } from './broker.js';
import { SPAWNED_START_MS, until } from 'tributary/testing';

export function kafkaBrokers(t: TestContext): string | undefined {
  const brokers = process.env.KAFKA_BROKERS;
  if (brokers) return brokers;
  const reason = process.env[SKIP_ENV] ?? 'KAFKA_BROKERS is not set (run through `npm test`, which starts a broker, or set KAFKA_BROKERS)';
  if (inCI()) throw new Error(`Kafka test cannot run, and CI (CI=${process.env.CI}) forbids skipping it: ${reason}`);
  t.skip(`Kafka test skipped: ${reason}`);
  return undefined;
}

/**
 * A broker whose log segments the test can change on disk (`dataDir`: `<dataDir>/<topic>-<partition>/`):
 * the run's broker when scripts/test.mjs started a native one (it says where its data is), else a native
 * broker of the test's own, stopped when the test ends. Starting a broker costs 10-40 s of two JVMs
 * (more on a loaded machine), so only a test run against an external broker pays it. Undefined (the
 * test skipped) without any broker, as kafkaBrokers.
 */
export async function kafkaBrokerOnDisk(t: TestContext): Promise<{ brokers: string; dataDir: string } | undefined> {
  const brokers = kafkaBrokers(t);
  if (!brokers) return undefined;
  const dataDir = process.env[DATA_DIR_ENV];
  if (dataDir) return { brokers, dataDir };
  const own = await startNativeBroker();
  t.after(() => own.stop());
  return { brokers: own.brokers, dataDir: own.dataDir };
}

/** A topic name of its own for each test, so tests never see each other's records. */
export function uniqueTopic(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** tributary/testing's `until`, `what` first and polling every 50 ms (a broker round trip each, often). */
export function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000, everyMs = 50): Promise<void> {
  return until(condition, what, timeoutMs, everyMs);
}

/** Resolves with a child process's exit code once it has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/**
 * `tributary run FILE ARGS` as a daemon process of the test's, with `KAFKA_BROKERS` set; its log (stderr)
 * collected into `log` (and shown with TRIBUTARY_TEST_VERBOSE).
 */
export function startDaemon(file: string, brokers: string, log?: string[], args: readonly string[] = ['--log-level', 'warn']): ChildProcess {
  const child = spawn(process.execPath, [join(process.cwd(), 'dist', 'core', 'cli', 'main.js'), 'run', file, ...args], {
    env: { ...process.env, KAFKA_BROKERS: brokers },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    log?.push(chunk.toString());
    if (process.env.TRIBUTARY_TEST_VERBOSE) process.stderr.write(chunk);
  });
  return child;
}

/**
 * Calls `onPartitions` with each "kafka partitions ..." log line's message and partition ids, as a daemon
 * (startDaemon, `--log-level info`) logs its assignments, revocations and losses: for a test to follow what it holds.
 */
export function followPartitions(child: ChildProcess, onPartitions: (msg: string, ids: string[]) => void): void {
  let pending = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line.includes('kafka partitions')) continue;
      const entry = JSON.parse(line) as { msg: string; partitions: (string | { id: string })[] };
      onPartitions(entry.msg, entry.partitions.map((p) => (typeof p === 'string' ? p : p.id)));
    }
  });
}

/**
 * Writes a daemon's collected log (startDaemon's `log`) to a file of its own in the temp folder, kept
 * after the test, and returns its path: for a failed test to name, where the log is too long for its
 * report (a race seen once under load is diagnosed from it, with the outputs' offsets).
 */
export function keptLog(log: readonly string[], name: string): string {
  const file = join(tmpdir(), `tributary-${name}-${process.pid}-${Date.now().toString(36)}.log`);
  writeFileSync(file, log.join(''));
  return file;
}

/**
 * The first wait on a daemon of startDaemon's (its start, then its first sign of running: a log line, its
 * first outputs), polled every `everyMs`: up to SPAWNED_START_MS, the one limit for a spawned run's first
 * wait (as TributaryProcess.started), not a number of each test's. A daemon that ends meanwhile ends the
 * wait at once, with its log's tail (unlessFailed). Later waits are the run's own work: waitFor.
 * `timeoutMs`: longer only where its first sign waits on the brokers past the start (a start after an
 * outage, which finds the previous run's transaction still open).
 */
export function daemonStarted(daemon: ChildProcess, log: readonly string[] | undefined, what: string, condition: () => boolean | Promise<boolean>, everyMs = 100, timeoutMs = SPAWNED_START_MS): Promise<void> {
  const ended = (): WatchedRun => {
    const end = daemon.exitCode ?? daemon.signalCode;
    return { name: 'the daemon', failed: end === null ? undefined : `it ended (${end}) before ${what}`, ...(log ? { lines: log } : {}) };
  };
  return waitFor(what, unlessFailed(() => [ended()], condition), timeoutMs, everyMs);
}

/** The operations port of a daemon started with `--http-port 0` and `--log-level info`, once its log says it serves (its first wait: daemonStarted). */
export async function operationsPort(daemon: ChildProcess, log: readonly string[]): Promise<number> {
  let port = 0;
  await daemonStarted(daemon, log, 'the operations endpoint', () => (port = Number(/"port":(\d+),[^\n]*serving \/healthz/.exec(log.join(''))?.[1])) > 0, 50);
  return port;
}

/** Events the daemon's sources have read so far (its /metrics, `tributary_events_in_total`). */
export async function eventsRead(port: number): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^tributary_events_in_total\{[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
}

/** A pipeline run in the test's process (runYaml): its error once it failed, and the log lines it wrote. */
export interface WatchedRun {
  /** Which run, in a report (`member a`); `the run` where a test has one at a time. */
  readonly name?: string;
  readonly failed: unknown;
  readonly lines?: readonly string[];
}

/** How much of a failed run's log its report shows: the lead-up to the failure, bounded. */
export const FAILED_RUN_LOG_LINES = 30;

/**
 * `condition`, for a waitFor, that ends the wait at once should one of `runs()` have failed, saying why:
 * its error and the last {@link FAILED_RUN_LOG_LINES} lines of its log (the error alone left the cause of
 * a flake unknown).
 */
export function unlessFailed(runs: () => Iterable<WatchedRun>, condition: () => boolean | Promise<boolean>): () => boolean | Promise<boolean> {
  return () => {
    for (const run of runs()) if (run.failed !== undefined) throw new Error(failedRunReport(run));
    return condition();
  };
}

function failedRunReport(run: WatchedRun): string {
  const which = run.name ?? 'the run';
  if (run.lines === undefined) return `${which} failed: ${String(run.failed)} (no log kept)`;
  // A write is a line as pino makes them; joined and split all the same, should one hold more.
  const lines = run.lines.join('').split('\n').filter((line) => line !== '');
  const tail = lines.slice(-FAILED_RUN_LOG_LINES);
  return `${which} failed: ${String(run.failed)}\nits log's last ${tail.length} of ${lines.length} lines:\n${tail.join('\n')}`;
}

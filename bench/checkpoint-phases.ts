/**
 * Where a daemon's periodic checkpoints spend their wall time, loaded into the daemon with `--import`
 * (through NODE_OPTIONS, so the soak's daemon gets it): for each checkpoint a JSON line with its wall
 * time and the part of it the sources were held at the barrier (all of it before 2026-12-07's
 * fix-ckpthold, and with a transactional sink), the process's CPU (all threads), the sink
 * flush, the store's write (of which SHA-256 on the main thread, the file writes and fsync on libuv's
 * pool), GC pauses, and the longest the event loop went without turning; and once a second the events
 * read. Per stage whose snapshot is built in parts (PartedSnapshots, in stage order: `s0`, `s1`, ...), the
 * main-thread time in its parts that read the live state (`sNCopyMs`: all of them in builds before
 * 2026-12-07's fix-snapheld, or without takeCopying) and in those that encode the copies (`sNEncodeMs`),
 * and when each phase ended from the barrier (`sNCopiedAtMs`, `sNDoneAtMs`).
 * Active only in `tributary run`; it wraps the runtime's methods, so it measures this build only.
 *
 *   CHECKPOINT_PHASES_OUT=/tmp/phases.jsonl NODE_OPTIONS="--import $PWD/dist/bench/checkpoint-phases.js" \
 *     node dist/bench/soak.js months 1050000 180 10 7
 *
 * (the soak then rewrites its BENCHMARKS.md section and CSV from this run: restore them if it is not the one to keep).
 */
import { appendFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { constants, performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { CheckpointStore } from '../core/runtime/checkpoint.js';
import { PipelineRunner } from '../core/runtime/pipeline.js';
import { PartedSnapshots } from '../core/turns.js';

type Phases = Record<string, number>;

const out = process.env.CHECKPOINT_PHASES_OUT;
if (process.argv.includes('run') && out) {
  const emit = (line: object): void => appendFileSync(out, `${JSON.stringify(line)}\n`);
  /** The checkpoint under way, if any: what the wrapped calls add their time to. */
  let current: Phases | undefined;
  const add = (key: string, ms: number): void => {
    if (current) current[key] = (current[key] ?? 0) + ms;
  };
  const timed = (owner: object, name: string, key: string): void => {
    const target = owner as Record<string, (...args: unknown[]) => unknown>;
    const original = target[name]!;
    target[name] = function (this: unknown, ...args: unknown[]): unknown {
      const began = performance.now();
      const result = original.apply(this, args);
      if (result instanceof Promise) return result.finally(() => add(key, performance.now() - began));
      add(key, performance.now() - began);
      return result;
    };
  };
  timed(PipelineRunner.prototype, 'flushSinks', 'flushMs');
  timed(CheckpointStore.prototype, 'write', 'storeWriteMs');
  const handle = await open(out, 'a');
  timed(Object.getPrototypeOf(handle) as object, 'sync', 'fsyncMs');
  timed(Object.getPrototypeOf(handle) as object, 'writeFile', 'fileWriteMs');
  await handle.close();
  timed(Object.getPrototypeOf(createHash('sha256')) as object, 'update', 'hashMs');
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      add('gcMs', entry.duration);
      if (((entry as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) add('majorGcMs', entry.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  let lastLook = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (current) current.longestStallMs = Math.max(current.longestStallMs ?? 0, now - lastLook - 5);
    lastLook = now;
  }, 5).unref();

  /** The snapshots in parts of the checkpoint under way, in the order taken (its stages' order). */
  let snapshotIndex = 0;
  /** Each next() of `parts` timed into `key`; its end's time from the barrier into `endKey`. */
  function timedParts<T>(parts: Generator<void, T, void>, key: string, endKey: string, onDone?: (value: T) => T): Generator<void, T, void> {
    const phases = current;
    const began = phases?.at ?? performance.now();
    return (function* () {
      for (;;) {
        const started = performance.now();
        const step = parts.next();
        if (phases) phases[key] = (phases[key] ?? 0) + performance.now() - started;
        if (step.done) {
          if (phases) phases[endKey] = performance.now() - began;
          return onDone ? onDone(step.value) : step.value;
        }
        yield;
      }
    })();
  }
  const snapshots = PartedSnapshots.prototype as unknown as Record<string, (parts: Generator<void, unknown, void>) => unknown>;
  const take = snapshots.take!;
  snapshots.take = function (this: unknown, parts) {
    const n = snapshotIndex++;
    return take.call(this, timedParts(parts, `s${n}CopyMs`, `s${n}DoneAtMs`));
  };
  const takeCopying = snapshots.takeCopying;
  if (takeCopying) {
    snapshots.takeCopying = function (this: unknown, parts) {
      const n = snapshotIndex++;
      const copying = parts as Generator<void, Generator<void, unknown, void>, void>;
      return takeCopying.call(this, timedParts(copying, `s${n}CopyMs`, `s${n}CopiedAtMs`, (encode) => timedParts(encode, `s${n}EncodeMs`, `s${n}DoneAtMs`)) as Generator<void, unknown, void>);
    };
  }

  let runner: PipelineRunner | undefined;
  const checkpoint = PipelineRunner.prototype.checkpoint;
  PipelineRunner.prototype.checkpoint = function (this: PipelineRunner) {
    runner = this;
    const began = performance.now();
    const cpu = process.cpuUsage();
    const phases: Phases = { at: began, eventsIn: this.stats.eventsIn, longestStallMs: 0 };
    current = phases;
    snapshotIndex = 0;
    const written = checkpoint.call(this);
    // The snapshots taken and the first part serialised: what ran before the checkpoint's first turn.
    phases.syncStartMs = performance.now() - began;
    return written.finally(() => {
      const used = process.cpuUsage(cpu);
      const wallMs = performance.now() - began;
      // The sources were held all of it in builds before they went on while the file is written (no sourcesHeldMs).
      const info = this.stats.lastCheckpoint as { sourcesHeldMs?: number } | undefined;
      Object.assign(phases, { wallMs, sourcesHeldMs: info?.sourcesHeldMs ?? wallMs, processCpuMs: (used.user + used.system) / 1000, bytes: this.stats.lastCheckpoint?.bytes ?? 0 });
      if (current === phases) current = undefined;
      emit({ type: 'checkpoint', ...Object.fromEntries(Object.entries(phases).map(([key, value]) => [key, Math.round(value)])) });
    });
  };
  let eventsBefore = 0;
  setInterval(() => {
    if (!runner) return;
    emit({ type: 'second', t: Math.round(performance.now()), events: runner.stats.eventsIn - eventsBefore });
    eventsBefore = runner.stats.eventsIn;
  }, 1000).unref();
}

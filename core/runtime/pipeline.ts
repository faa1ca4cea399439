/**
 * Runs one pipeline: sources -> ordered stages (RxJS operators) -> sinks.
 *
 * Back pressure: RxJS has none, so the runtime supplies it at the edges. Each source is pulled by
 * its own loop, one batch (at most `max_in_flight` events) at a time; after pushing a batch
 * through the stages (synchronously, in RxJS), the loop waits until every sink and stage says it has
 * room. A slow sink therefore slows the sources instead of filling memory.
 *
 * Watermarks are generated here, per source (bounded out-of-orderness, idle timeout), combined by
 * minimum, and sent in-band. End of input is a watermark at +Infinity followed by completion; a stop
 * (signal) completes without it, so stateful operators keep their state for a checkpoint.
 */
import { createHash, randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { isDeepStrictEqual } from 'node:util';
import { setImmediate } from 'node:timers/promises';
import { Subject, Subscription, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import { originOf, watermark, type ClickEvent, type DeadLetter, type Element, type StreamRecord, type Watermark } from '../events.js';
import { ConfigError, formatWarning, inputHandedOver, lastsForProcess, needsPerson, pluginFailure, sharedFailure, TributaryError, type ConfigProblem, type ErrorCode } from '../errors.js';
import { durationText, formatDuration, parseDuration } from '../duration.js';
import { composeOperators, type Emit, type StageTimer } from '../operators.js';
import type { Clock, CommitMarks, Counter, FeatureStageChange, Gauge, Metrics, Operator, PartitionAssignment, PartitionListener, PartitionRevocation, PluginContext, PluginKind, Rejection, Sink, Source, SourcePosition, StageRecord } from '../plugin.js';
import { featureNamesOf, keepsFeatureValuesOf } from '../plugin-hooks.js';
import { entryFieldProblem, entryLabel, loadedPipelineProblems, placeText, pluginConfig, problemPlace, sinkKinds, sinksLatencyStage, type ErasureSettings, type LoadedPipeline, type PipelineEntry, type ResolvedEntry } from '../config/load.js';
import { MetricsHub, redactSecrets, rememberSecretValues } from './telemetry.js';
import { CheckpointStore, checkpointMark, defaultMinPauseMs, otherPipelineText, type Checkpoint, type CheckpointBody, type CheckpointStage } from './checkpoint.js';
import { RawJson, stringifyInParts } from './parts.js';
import { jsonProblem } from '../json.js';
import { valueText } from '../value-text.js';
import { isCopyingSnapshot, nextTurn, RUN_LOOP_TURN_MS, TURN_MS } from '../turns.js';

export interface RunOptions {
  logger: Logger;
  metrics?: MetricsHub;
  clock?: Clock;
  /** Aborting stops the sources after their current batch; in-flight records drain to the sinks. */
  signal?: AbortSignal;
  /** Operator state to restore before the stream starts, by stage label. */
  restoreState?: Record<string, unknown>;
  /**
   * Periodic checkpoints of operator state and source positions. On start the newest intact one is
   * restored and the sources resume from its positions; offsets are committed only after one is durable.
   */
  checkpoints?: {
    store: CheckpointStore;
    intervalMs: number;
    /**
     * Least time between the end of one periodic checkpoint and the start of the next
     * (checkpoint.min_pause); absent: half of intervalMs (defaultMinPauseMs).
     */
    minPauseMs?: number;
    /**
     * Periodic checkpoints that may fail in a row before the run fails (TRIB_ERR_CHECKPOINTS_FAILING),
     * not counting those a broker outage left untaken (inputHandedOver); absent: Infinity (checkpoint.tolerable_failures).
     */
    tolerableFailures?: number;
  };
  /**
   * How long the run waits for a lock another host's process holds (`--lock-wait`): its checkpoint
   * folder's (CheckpointStore.claimWaiting), and those its plugins take on their outputs
   * ({@link PluginContext.lockWaitMs}: a `file` sink's). 0 (the default): refused at once.
   */
  lockWaitMs?: number;
  /** Sets {@link PluginContext.replay}: the input is replayed from files (a backtest). */
  replay?: boolean;
  /** Sets {@link PluginContext.replaySaveDir} (with `replay`): where the stages save what they learnt. */
  replaySaveDir?: string;
  /**
   * Resume from a checkpoint that holds state no stage takes (a stage was removed or moved), dropping
   * that state. Without it such a checkpoint is an error (TRIB_ERR_CHECKPOINT), as in Flink.
   */
  allowNonRestoredState?: boolean;
  /** PluginContext.runShared: one map for the pipelines run together (the daemon's); the pipeline's own `shared` when absent. */
  runShared?: Map<string, unknown>;
  /**
   * scale_out with several sources: how long a member waits for partition p of the other sources once one source
   * assigned (or revoked) it here, before the run fails (the group's assignor did not keep the topics' partitions
   * together). Absent: {@link CO_PARTITION_WAIT_MS}.
   */
  coPartitionWaitMs?: number;
}

/**
 * scale_out with several sources: the default of {@link RunOptions.coPartitionWaitMs}. Each source's consumer hears
 * of a rebalance in its own time (seconds apart on a loaded host); a minute is far above that.
 */
export const CO_PARTITION_WAIT_MS = 60_000;

/**
 * How long a sink's write (the wait for its room: Sink.ready) or flush may be pending before /readyz
 * names the sink as stalled, a warning says so and tributary_sink_stalled_seconds rises, unless the
 * pipeline sets `settings.sink_stall_timeout` (the schema's default, "1m", is this). A minute: far
 * above a healthy sink's longest wait (a large gzip flush at a checkpoint on a loaded disk takes seconds),
 * far below what the checkpoint-age alert needs to notice (3 intervals, then 5 minutes).
 */
export const SINK_STALL_MS = 60_000;

export interface CheckpointInfo {
  sequence: number;
  bytes: number;
  /** From its barrier until its file was written and the sources committed. */
  durationMs: number;
  /**
   * Of it, the time the sources were held at the barrier: the snapshots taken and the sinks flushed; all of
   * it where a sink is transactional (Sink.transactional) or partitions are saved (scale_out).
   */
  sourcesHeldMs: number;
  at: number;
}

export interface RunStats {
  eventsIn: number;
  /** Records written by the pipeline's sinks (those a command added for itself not counted: {@link collected}). */
  recordsOut: number;
  outByKind: Record<string, number>;
  /** Records only a sink the command added for its own use took (ResolvedEntry.internal: the backtest's model reports); absent: none. */
  collected?: number;
  deadLettered: number;
  /**
   * Dead letters written, by `<stage>: <reason>` with the values a reason quotes or gives elided (reasonClass:
   * `malformed JSON: Unexpected token '…', "…" is not valid JSON` for every such line): the first
   * {@link maxDeadLetterReasons} reasons, the rest under {@link otherDeadLetterReasons}.
   */
  deadLetteredByReason: Record<string, number>;
  filtered: number;
  /** Records filtered, by `<stage>: <reason>`, bounded as {@link deadLetteredByReason} is (a plugin may word each record's reason apart). */
  filteredByReason: Record<string, number>;
  sideOutputs: Record<string, number>;
  /** The sources' combined event-time watermark, as last sent to the stages (-Infinity before the first event, Infinity once drained). */
  watermark: number;
  /**
   * The watermark the stages passed on to the sinks: `watermark`, unless a stage holds it back (RecordHandlers.watermark:
   * a sessionizer after a far-future event it dead-lettered closes no session until its own event time catches up),
   * and with it every stage after it. -Infinity until the stages passed one on.
   */
  passedWatermark: number;
  /** When the run started: once it held its checkpoint folder, where it waited for another host's process to let go of it (--lock-wait). */
  startedAt: number;
  /** Time since `startedAt`: a lock wait is not in it, so events per second over it are the run's. */
  elapsedMs: number;
  /** True when the sources were drained (not stopped by a signal). */
  drained: boolean;
  /** Sequence of the checkpoint the run resumed from, if any. */
  resumedFrom?: number;
  /**
   * The books as that checkpoint held them: what this process did is the difference (its Prometheus
   * counters count it, from 0 as a restarted counter must, and its events/s), where the figures above
   * go on from them.
   */
  atResume?: { eventsIn: number; recordsOut: number; deadLettered: number; filtered: number; late: number };
  lastCheckpoint?: CheckpointInfo;
  /** Times the daemon restarted the pipeline in this process before this run (settings.restart). */
  restarts?: number;
}

/** RunStats.atResume of a run that did not resume. */
/** The reason an erasure request done is counted under as filtered (RunStats.filteredByReason: `<source>: erasure request`). */
export const ERASURE_FILTERED = 'erasure request';

const noBooks = { eventsIn: 0, recordsOut: 0, deadLettered: 0, filtered: 0, late: 0 };

/** Counters carried in checkpoints, so totals survive a restart. */
const carriedCounters = ['eventsIn', 'recordsOut', 'outByKind', 'deadLettered', 'deadLetteredByReason', 'filtered', 'filteredByReason', 'sideOutputs'] as const;

/**
 * A dead letter's reason with the values it quotes or gives elided, so the reasons of one mistake
 * count as one: `price: expected a number, got "abc"` and `..., got "n/a"` are both `..., got "…"`;
 * the numbers and times standing alone in it (a byte count, a JSON error's position, an event time)
 * are `…` too, while those inside a name (`stage-sessionizer-0`, `UTF-8`) stay.
 */
export function reasonClass(reason: string): string {
  // A quote may be cut short with '...' after it (V8's JSON errors cut a line after 10 characters), or cut
  // inside, before its end, with '...' (a long value a reason quotes: valueText): that quote never closes.
  return reason
    .replace(/"(?:[^"\\]|\\.)*"(?:\.\.\.)?|"(?:[^"\\]|\\.)*\.\.\.$/g, '"…"')
    .replace(/(?<!\w)'(?:[^'\\]|\\.)*'(?!\w)/g, "'…'")
    .replace(/(?<![\w.-])-?\d(?:[\d:+TZ-]|\.\d)*(?!\w|\.\w)/g, '…');
}

/** How many distinct reasons {@link RunStats.deadLetteredByReason} keeps, and {@link RunStats.filteredByReason}. */
export const maxDeadLetterReasons = 100;
/** Where the dead letters (or filtered records) of reasons past the first {@link maxDeadLetterReasons} are counted. */
export const otherDeadLetterReasons = '(other reasons)';

/** Adds `count` under `key`, or under {@link otherDeadLetterReasons} once `byReason` holds {@link maxDeadLetterReasons} other keys. */
function countByReason(byReason: Record<string, number>, key: string, count: number): void {
  if (byReason[key] !== undefined) {
    byReason[key] += count;
    return;
  }
  let reasons = 0;
  for (const reason in byReason) if (reason !== otherDeadLetterReasons) reasons++;
  const counted = reasons < maxDeadLetterReasons ? key : otherDeadLetterReasons;
  byReason[counted] = (byReason[counted] ?? 0) + count;
}

/** `1.5GiB`, `512MiB`, or a number of bytes. */
export function parseBytes(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)(KiB|MiB|GiB)$/.exec(value);
  if (!match) throw new RangeError(`not a size: '${value}' (use e.g. 512MiB or 1.5GiB)`);
  return Number(match[1]) * { KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 }[match[2] as 'KiB' | 'MiB' | 'GiB'];
}

/** Bytes as parseBytes reads them back: `1.50GiB`, `512.0MiB`, `900KiB`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)}GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)}MiB`;
  return `${Math.round(bytes / 2 ** 10)}KiB`;
}

interface SinkSlot {
  label: string;
  sink: Sink;
  /** The record kinds of the main stream it is handed (sinkKinds); undefined: every kind. */
  kinds: Set<string> | undefined;
  /** The kinds its plugin takes at all (PluginSpec.kinds), side outputs included; undefined: every kind. */
  takes: Set<string> | undefined;
  outputs: Set<string>;
  /** ResolvedEntry.internal. */
  internal: boolean;
}

/**
 * Scale-out: the per-user stages of one source partition, as Kafka Streams runs a task per partition.
 * Its state moves with the partition: saved when the partition is revoked, restored when assigned. With
 * several sources (co-partitioned topics), task p takes partition p of each: its members.
 */
interface PartitionTask {
  /** Its partition's id; with several sources, its members' ids joined by `+` (`clicks-3+orders-3`): its state folder. */
  id: string;
  /** The source partitions it reads, one per source, in the sources' order. */
  members: TaskMember[];
  input: Subject<Element>;
  operators: { label: string; operator: Operator }[];
  subscription: Subscription;
  gauges: GaugeShares;
  /** The last watermark sent to this task: its partitions' own (the least of its members' that are not idle). */
  watermark: number;
  /**
   * The last watermark its stages passed on: below `watermark`, they hold theirs back (RecordHandlers.watermark), and the global stages' with it.
   * Kept in its partition's file while held (heldOf), as Kafka Streams keeps a task's stream time with its offset: restored, its stages pass
   * nothing until their own time moves, and the global stages would be held at none.
   */
  passed: number;
  /**
   * Counts what reached its stages or came out of them (records, watermarks): its state may have changed
   * since it was `saved` (a partition that reads nothing still closes sessions as its watermark moves).
   */
  changes: number;
  /** `changes` as of its state last saved, or restored from its file. */
  saved: number;
  /**
   * How many owners its partition's state has had, this member the latest: the restored file's + 1 (1 for
   * state started empty). Written in each of its files: of two files at one offset, the later owner's is
   * restored (ownersOf), whichever was written last (a member that had not noticed it lost the partition).
   */
  owners: number;
}

/** One source partition a task reads. */
interface TaskMember {
  slot: SourceSlot;
  /** The source's id of the partition (PartitionAssignment.id). */
  id: string;
  /**
   * The offset the task's state covers of it while no record of it reached the task: its restored file's, else
   * the committed offset reading starts at (undefined: none, reading starts at `start_from`). Cleared by
   * its first record: from then on the source says what offset the state covers.
   */
  start: number | undefined;
  /** How many partitions its topic had at its assignment (PartitionAssignment.partitions), written in the task's files; undefined where the source did not say. */
  partitions: number | undefined;
  /** Its revocation's offset, once the source revoked it while the task waits for its other members' (several sources). */
  handedOver?: number;
}

/** A task's offsets, by source label: undefined for a member of which none is known (nothing read, nothing committed). */
type TaskOffsets = ReadonlyMap<string, number | undefined>;

/** A partition listener's call (PartitionListener) waiting for the other sources' parts of its tasks (Pipeline.gather). */
interface GatheredCall<Part, Result> {
  slot: SourceSlot;
  parts: readonly Part[];
  /** Each part's task key (its partition number; its id with one source). */
  keys: readonly string[];
  whileHeld: ((marks: ReadonlyMap<string, string>) => void) | undefined;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The strings every list has. */
function intersection(lists: readonly (readonly string[])[]): string[] {
  const [first = [], ...rest] = lists;
  return [...new Set(first)].filter((item) => rest.every((list) => list.includes(item)));
}

/** The greater of two files' positions in one task: more read in all (offsets only grow, in every member). */
function offsetsRank(offsets: TaskOffsets): number {
  let sum = 0;
  for (const offset of offsets.values()) sum += offset ?? 0;
  return sum;
}

/**
 * The gauges of a stage's per-partition instances add up to one series per stage: each instance's
 * `set` moves the shared gauge by its own change, and a stopped task takes its share back out.
 */
class GaugeShares {
  private readonly shares: { gauge: Gauge; value: number }[] = [];

  wrap(metrics: Metrics): Metrics {
    return {
      counter: (name, help) => metrics.counter(name, help),
      histogram: (name, help, buckets) => metrics.histogram(name, help, buckets),
      // Series of their own labels: each instance sets and removes its own (a partition's task, its partition's).
      gaugeFamily: (name, help, labelNames) => metrics.gaugeFamily(name, help, labelNames),
      // Their gauges shared as these are.
      withLabels: (labels) => this.wrap(metrics.withLabels(labels)),
      gauge: (name, help) => {
        const share = { gauge: metrics.gauge(name, help), value: 0 };
        this.shares.push(share);
        // A value that is no finite number goes to the shared gauge, which ignores it (and says so): a share of NaN would keep the sum NaN for good.
        return {
          set: (value) => {
            share.gauge.inc(value - share.value);
            if (Number.isFinite(value)) share.value = value;
          },
          inc: (amount = 1) => {
            share.gauge.inc(amount);
            if (Number.isFinite(amount)) share.value += amount;
          },
          dec: (amount = 1) => {
            share.gauge.dec(amount);
            if (Number.isFinite(amount)) share.value -= amount;
          },
        };
      },
    };
  }

  release(): void {
    for (const share of this.shares) {
      share.gauge.dec(share.value);
      share.value = 0;
    }
  }
}

interface SourceSlot {
  label: string;
  source: Source;
  maxOutOfOrderness: number;
  idleTimeout: number;
  maxTime: number;
  maxAheadOfClock: number;
  /** watermark.max_drift: how far its watermark may run ahead of the slowest other live source's before it is read no further (Infinity: unaligned). */
  maxDrift: number;
  /** When the source last gave a batch, or was last asked for one (waiting), whichever came later. */
  lastActivity: number;
  /**
   * Whether the pump waits on the source for its next batch. Only then can the source be idle: one the
   * pipeline does not ask (its sinks have no room, a checkpoint holds it) is held back, not idle, and the
   * watermark moved past its partitions' pending records made them late once the pipeline went on.
   */
  waiting: boolean;
  lastCommit: number;
  done: boolean;
}

/** What the runtime calls on each kind's instance (a factory's result must have them). */
const requiredMembers: Record<PluginKind, readonly string[]> = { source: ['read'], operator: ['apply'], sink: ['write', 'close'] };

/** What a partitioned source's instance has besides (PluginSpec.partitioned): what scale_out calls. */
const partitionMembers: readonly string[] = ['onPartitions', 'partitionOffsets', 'partitionWatermarks'];

/** What a factory's result lacks that the runtime calls, e.g. `no apply function`; undefined when nothing. */
function missingMembers(kind: PluginKind, instance: unknown, partitioned = false): string | undefined {
  if (typeof instance !== 'object' || instance === null) return `${instance === null ? 'null' : typeof instance}, not ${kind === 'operator' ? 'an' : 'a'} ${kind}`;
  const required = partitioned ? [...requiredMembers[kind], ...partitionMembers] : requiredMembers[kind];
  const missing = required.filter((name) => typeof (instance as Record<string, unknown>)[name] !== 'function');
  return missing.length > 0 ? `no ${missing.join(' or ')} function` : undefined;
}

/**
 * A source entry's `watermark` settings in milliseconds, defaults filled in: one place, so the runtime's
 * own watermark of a source and the settings a source that keeps its own gets (PluginContext.watermark) agree.
 */
function sourceWatermark(settings: unknown): { maxOutOfOrderness: number; idleTimeout: number; maxAheadOfClock: number; maxDrift: number } {
  const wm = (settings ?? {}) as { max_out_of_orderness?: string | number; idle_timeout?: string | number; max_ahead_of_clock?: string | number; max_drift?: string | number };
  const drift = wm.max_drift ?? DEFAULT_MAX_DRIFT;
  return {
    maxOutOfOrderness: parseDuration(wm.max_out_of_orderness ?? '5s'),
    idleTimeout: parseDuration(wm.idle_timeout ?? '1m'),
    maxAheadOfClock: parseDuration(wm.max_ahead_of_clock ?? '1d'),
    maxDrift: drift === 'unlimited' ? Infinity : parseDuration(drift),
  };
}

/** watermark.max_drift's default (the schema's): see alignmentWait. */
const DEFAULT_MAX_DRIFT = '1h';

/**
 * A source's batches, ending without error where the source fails with an AbortError once the
 * pipeline is told to stop: a source that passes context.signal to what it waits on (fetch, a timer
 * from node:timers/promises) gets one then, and it ends its reading as returning would, so the stop
 * goes on to its final checkpoint. Only the source's own errors are looked at, not the pump's.
 */
async function* untilStopped(batches: AsyncIterable<readonly ClickEvent[]>, signal: AbortSignal | undefined): AsyncGenerator<readonly ClickEvent[]> {
  try {
    yield* batches;
  } catch (error) {
    if (signal?.aborted && (error === signal.reason || (error as { name?: unknown } | null)?.name === 'AbortError')) return;
    throw error;
  }
}

/** Stages' snapshots as a checkpoint took them, by label: a plain value's JSON, made at once, or a promise. */
type TakenSnapshots = Map<string, RawJson | Promise<unknown>>;

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> => typeof (value as { then?: unknown } | null)?.then === 'function';

const snapshotsChecked = new WeakSet<Operator>();

/**
 * A stage's first snapshot checked for what JSON would not give back (a Map written as {}, a typed array
 * as an object): its restore would lose that state without a word, so the checkpoint fails instead,
 * naming it. Once per stage instance, and over the first 1,000 items of each list or object (a walk in one
 * turn of the event loop, which a state of millions of users would hold up): its later snapshots repeat them in kind.
 */
function checkedOnce<T>(label: string, operator: Operator, state: T): T {
  if (snapshotsChecked.has(operator)) return state;
  const problem = jsonProblem(state, '$', { strict: false, itemsEach: 1000 });
  if (problem) throw new Error(`${label}: snapshot() would not survive a checkpoint (checkpoints are JSON): ${problem}`);
  snapshotsChecked.add(operator);
  return state;
}

/**
 * Every stage's snapshot of this instant: snapshot() is called on each in one synchronous pass. A
 * plain value is serialised at once (it may be the stage's live state); a promise resolves later,
 * to the state of its call (see Operator.snapshot), and is serialised in parts then.
 */
function takeSnapshots(operators: readonly { label: string; operator: Operator }[]): TakenSnapshots {
  const taken: TakenSnapshots = new Map();
  for (const { label, operator } of operators) {
    if (!operator.snapshot) continue;
    const state = operator.snapshot();
    if (isPromiseLike(state)) {
      const promise = Promise.resolve(state).then((value) => checkedOnce(label, operator, value));
      // Awaited in serialiseBody; a checkpoint failing before that must not leave it unhandled.
      promise.catch(() => undefined);
      taken.set(label, promise);
      if (isCopyingSnapshot(state)) copiedOf.set(promise, state.copied);
    } else {
      const text = JSON.stringify(checkedOnce(label, operator, state));
      if (text !== undefined) taken.set(label, new RawJson(text));
    }
  }
  return taken;
}

/**
 * A taken snapshot's promise (takeSnapshots) -> when its stage's snapshot no longer reads the live state
 * (CopyingSnapshot.copied), where the stage says so: the rest of it may run while records flow.
 */
const copiedOf = new WeakMap<Promise<unknown>, Promise<void>>();

/** What the sources are held for at the barrier: each snapshot's copy (CopyingSnapshot.copied), or the whole snapshot where its stage says no such point. */
function snapshotsCopied(taken: TakenSnapshots): Promise<unknown>[] {
  const copies: Promise<unknown>[] = [];
  for (const state of taken.values()) if (!(state instanceof RawJson)) copies.push(copiedOf.get(state) ?? state);
  return copies;
}

/**
 * The watermark a partition task's stages passed on, kept in its file where they hold theirs back (below
 * the one it got), or where it got none yet since its restore (held as restored).
 */
function heldOf(task: PartitionTask): number | undefined {
  return (task.passed < task.watermark || task.watermark === -Infinity) && Number.isFinite(task.passed) ? task.passed : undefined;
}

/**
 * Hands a stage's operator its saved state (nothing if it has no `restore`). State its restore refuses
 * stops the run for a person (TRIB_ERR_CHECKPOINT) with a message that names the stage, so a plugin's
 * own message says only what does not fit. Shared by the runtime (a checkpoint's state, and
 * `restoreState` without one) and tributary/testing's runOperator, so a plugin's tests see the
 * message a user reads.
 */
export async function restoreStage(
  operator: Operator,
  state: unknown,
  /** `where`: the stage's place in the pipeline file, ` (FILE:LINE:COL, $.stages[i], TYPE)`; `checkpoint`: the file the state came from. */
  stage: { label: string; where?: string; checkpoint?: string },
): Promise<void> {
  if (!operator.restore) return;
  try {
    await operator.restore(state);
  } catch (cause) {
    throw new TributaryError(
      'TRIB_ERR_CHECKPOINT',
      // The file's checksum held, so most often the stage's configuration changed since the save
      // (other features, another model); a refused column names damage the checksum could not see.
      `${stage.checkpoint === undefined ? '' : `checkpoint ${stage.checkpoint}: `}the saved state of stage ${stage.label}${stage.where ?? ''} could not be restored: ${(cause as Error).message} ` +
        '(if the stage\'s configuration changed since, undo the change to resume. To start this stage afresh and keep the other stages\' state: give it a new `label` ' +
        'and run once with --allow-non-restored-state, which drops its old state. To start the whole pipeline afresh: move its checkpoints away, and its `file` outputs ' +
        'too to keep them, as a start without a checkpoint replaces them)',
      { cause },
    );
  }
}

/**
 * The top-level fields of a stage's config that differ between a checkpoint's record and now, as
 * `field: OLD -> NOW` (valueText's JSON, `unset` where absent), in the order of the config now.
 */
function configDifferences(saved: unknown, now: unknown): string[] {
  const before = (saved !== null && typeof saved === 'object' ? saved : {}) as Record<string, unknown>;
  const after = now as Record<string, unknown>;
  const text = (value: unknown): string => (value === undefined ? 'unset' : valueText(value));
  const fields = [...new Set([...Object.keys(after), ...Object.keys(before)])];
  return fields.filter((field) => !isDeepStrictEqual(before[field], after[field])).map((field) => `${field}: ${text(before[field])} -> ${text(after[field])}`);
}

/** A stage's bearing on the features whose values may change under kept names: it selects them, or its plugin says nothing of it. */
const rewritesValues = (stage: StageRecord): boolean => stage.features === 'selects' || stage.features === 'undeclared';

/**
 * A FeatureStageChange as the runtime finds it: with `from` (see featureStageChanges), the stage it is of, and for a
 * change that makes no kept name otherwise (sameNamesOtherValues false) the names it adds and those it no longer makes,
 * where its plugin tells them (a stage removed whose type no stage has now does not).
 */
type FoundStageChange = FeatureStageChange & { from: number; stage: StageRecord; added?: readonly string[]; gone?: readonly string[] };

/**
 * How the stages that make or select features (StageRecord.features) differ between a record of them (`saved`:
 * a checkpoint's, a model file's) and the stages now: each added, removed, configured otherwise, or moved (two
 * kept in the other order, one of them a transform or undeclared; stages that only append may move: each writes
 * its own names, which a model finds wherever they are). `from`: the index in `now` of the first stage built on
 * the features as they were (the one after a stage configured otherwise or added; the next kept one after a
 * stage removed). `where(label)`: the stage's place in the pipeline file, for the text. `keepsValues(stage, before)`: whether
 * the stage configured otherwise only adds or drops names (PluginSpec.keepsFeatureValues): names kept are made as they were.
 * `namesOf(stage)`: the names a stage of that record appends (its type's featureNames, its recorded config); undefined
 * where not known. A name a stage appends now that another stage appended before (one removed, a stage of no state
 * relabelled and configured otherwise) is a name kept whose values are made otherwise: that change is no mere addition.
 */
function featureStageChanges(
  saved: readonly StageRecord[],
  now: readonly StageRecord[],
  where: (label: string) => string,
  keepsValues: (stage: StageRecord, before: StageRecord) => boolean,
  namesOf: (stage: StageRecord) => readonly string[] | undefined,
): FoundStageChange[] {
  const savedAt = new Map(saved.map((stage, i) => [stage.label, i]));
  const nowAt = new Map(now.map((stage, i) => [stage.label, i]));
  const changes: FoundStageChange[] = [];
  const appendedNow = new Set(now.flatMap((stage) => (stage.features === 'appends' ? (namesOf(stage) ?? []) : [])));
  for (const [i, stage] of now.entries()) {
    if (!stage.features) continue;
    const j = savedAt.get(stage.label);
    const before = j === undefined ? undefined : saved[j]!;
    if (before === undefined || before.type !== stage.type) {
      const sameNamesOtherValues = rewritesValues(stage);
      const added = sameNamesOtherValues ? undefined : namesOf(stage);
      changes.push({ text: `${stage.label}${where(stage.label)} added`, from: i + 1, sameNamesOtherValues, stage, ...(added === undefined ? {} : { added }), gone: [] });
    } else {
      const fields = configDifferences(before.config, stage.config);
      if (fields.length === 0) continue;
      const text = `${stage.label}${where(stage.label)}: ${fields.join(', ')}`;
      if (!keepsValues(stage, before)) changes.push({ text, from: i + 1, sameNamesOtherValues: true, stage });
      else {
        const [made, madeThen] = [namesOf(stage), namesOf(before)];
        const known = made !== undefined && madeThen !== undefined;
        const added = known ? made.filter((name) => !madeThen.includes(name)) : undefined;
        // As for a stage removed: a name it no longer makes that another stage appends now is not gone.
        const gone = known ? madeThen.filter((name) => !made.includes(name) && !appendedNow.has(name)) : undefined;
        changes.push({ text, from: i + 1, sameNamesOtherValues: false, stage, ...(added === undefined ? {} : { added }), ...(gone === undefined ? {} : { gone }) });
      }
    }
  }
  for (const [j, stage] of saved.entries()) {
    if (!stage.features || nowAt.has(stage.label)) continue;
    // Removed: it changed the features of the stages that came after it, wherever they are now.
    const after = saved.slice(j + 1).map((next) => nowAt.get(next.label)).find((at) => at !== undefined);
    const sameNamesOtherValues = rewritesValues(stage);
    // Its names that a stage appends now are not gone: that stage's change says them (below).
    const gone = sameNamesOtherValues ? undefined : namesOf(stage)?.filter((name) => !appendedNow.has(name));
    changes.push({ text: `${stage.label} (${stage.type}) removed`, from: after ?? now.length, sameNamesOtherValues, stage, added: [], ...(gone === undefined ? {} : { gone }) });
  }
  const appendedBefore = new Map<string, StageRecord>();
  for (const stage of saved) if (stage.features === 'appends') for (const name of namesOf(stage) ?? []) appendedBefore.set(name, stage);
  for (const change of changes) {
    if (change.sameNamesOtherValues || change.added === undefined) continue;
    // Appended before by a stage of the same type and config (a stage of no state relabelled): made as before.
    const same = (name: string): boolean => appendedBefore.get(name)?.type === change.stage.type && isDeepStrictEqual(appendedBefore.get(name)!.config, change.stage.config);
    change.added = change.added.filter((name) => !same(name));
    const reused = change.added.filter((name) => appendedBefore.has(name));
    if (reused.length === 0) continue;
    const labels = [...new Set(reused.map((name) => appendedBefore.get(name)!.label))];
    change.text += ` (it appends ${shownNames(reused)}, which ${labels.join(', ')} appended before)`;
    change.sameNamesOtherValues = true;
    delete change.added;
  }
  const kept = now.filter((stage) => stage.features && savedAt.has(stage.label));
  for (const [k, stage] of kept.entries()) {
    for (const earlier of kept.slice(0, k)) {
      if ((rewritesValues(stage) || rewritesValues(earlier)) && savedAt.get(stage.label)! < savedAt.get(earlier.label)!) {
        changes.push({ text: `${stage.label} moved after ${earlier.label}`, from: nowAt.get(earlier.label)! + 1, sameNamesOtherValues: true, stage });
      }
    }
  }
  return changes;
}

/** Feature names for a message: the first 20, then how many more (a hash block may have thousands). */
function shownNames(names: readonly string[]): string {
  return names.length > 20 ? `${names.slice(0, 20).join(', ')} and ${names.length - 20} more` : names.join(', ');
}

/**
 * A checkpoint's record of its stages (CheckpointBody.stages), the entries that are one: its checksum held, but a
 * body is JSON from a file, and what it says of stages only informs, so an entry of another shape is passed over.
 */
function recordedStages(stages: unknown): CheckpointStage[] | undefined {
  if (!Array.isArray(stages)) return undefined;
  return stages.filter(
    (stage): stage is CheckpointStage => stage !== null && typeof stage === 'object' && typeof (stage as CheckpointStage).label === 'string' && typeof (stage as CheckpointStage).type === 'string',
  );
}

/** A checkpoint body, its snapshots' promises awaited, serialised in parts (the event loop turning between them). */
async function serialiseBody(fields: Omit<CheckpointBody, 'operators'>, taken: TakenSnapshots): Promise<Buffer[]> {
  const operators: Record<string, unknown> = {};
  for (const [label, state] of taken) operators[label] = state instanceof RawJson ? state : await state;
  return stringifyInParts({
    pipeline: fields.pipeline,
    createdAt: fields.createdAt,
    sources: fields.sources,
    operators,
    counters: fields.counters,
    ...(fields.stages === undefined ? {} : { stages: fields.stages }),
    ...(fields.pipelineFile === undefined ? {} : { pipelineFile: fields.pipelineFile }),
  });
}

/**
 * A stop's final checkpoint that failed, said as such (TRIB_ERR_FINAL_CHECKPOINT: the daemon says it in one
 * line, where the next start resumes, exit 1; was: `pipeline NAME failed: ...` with the stack). Kept as it
 * is: a failure a person must mend (exit 2), one that lasts for the process, or one that only left uncommitted
 * input to its next reader (a broker outage: the stop is done).
 */
function finalCheckpointFailure(error: unknown): unknown {
  if (needsPerson(error) || lastsForProcess(error) || inputHandedOver(error)) return error;
  return new TributaryError('TRIB_ERR_FINAL_CHECKPOINT', `the final checkpoint of the stop could not be written: ${(error as Error).message}`, { cause: error });
}

/** A sink's pending write or flush (PipelineRunner.awaitSink). */
interface SinkWait {
  what: 'write' | 'flush';
  since: number;
  pending: number;
  said: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class PipelineRunner {
  readonly stats: RunStats;
  private readonly loaded: LoadedPipeline;
  private readonly options: RunOptions;
  private readonly clock: Clock;
  private readonly metrics: MetricsHub;
  private readonly logger: Logger;
  private sources: SourceSlot[] = [];
  private operators: { label: string; operator: Operator }[] = [];
  private sinks: SinkSlot[] = [];
  private deadLetterSink!: Sink;
  /** Per record kind: the sinks that take it, and the reason counted when none does (built once, not per record). */
  private readonly routes = new Map<string, { sinks: Sink[]; unrouted: string; internal: boolean }>();
  private readonly sinksByOutput = new Map<string, SinkSlot[]>();
  private readonly warnedOutputs = new Set<string>();
  /** Dead-letter reasons said in the log in this process (the first of each, up to {@link maxDeadLetterReasons}). */
  private readonly saidDeadLetterReasons = new Set<string>();
  /** The sources' combined watermark, as last sent. */
  private emittedWatermark = -Infinity;
  /** Scale-out: the last watermark sent to the global stages, the sources' held back to a partition task's (see passGlobalWatermark). */
  private globalWatermark = -Infinity;
  private input = new Subject<Element>();
  /** The run's failure, as run() rejects with it (TRIB_ERR_SINK, _SOURCE or _STAGE, named): the first one only. */
  private failure: TributaryError | undefined;
  /** Rejects the stream's completion with the failure (set once the stream is subscribed). */
  private rejectCompleted: ((error: TributaryError) => void) | undefined;
  /** Rejects what the runtime waits on for a plugin (a sink's room, a flush) when the run fails first (see untilFailed). */
  private readonly failWaiters = new Set<(error: TributaryError) => void>();
  /** Set once run() returned or threw: a failure reported after it is logged only. */
  private ended = false;
  private readonly batchSize: number;
  private readonly commitInterval: number;
  /** When the sinks last flushed (clock time): without checkpoints they flush every commit_interval (flushIfDue). */
  private lastFlush = 0;
  /** Shared by this pipeline's plugin instances (PluginContext.shared). */
  private readonly shared = new Map<string, unknown>();
  /** Set while a checkpoint flushes and writes: sources wait on it, so nothing is written meanwhile. */
  private barrier: Promise<void> | undefined;
  /**
   * Batches yielded by their source and waiting at the barrier to go in: the source's position counts
   * them and the stages' state does not yet, so no checkpoint or commit takes positions until they
   * are in (one queued behind another checkpoint once took its positions first and skipped them).
   */
  private batchesInHand = 0;
  private readonly batchesInWaiters: (() => void)[] = [];
  private resuming = false;
  /** Scale-out (`scale_out`): where partition state lives, and the partitioned source. */
  private scaleOut: { dir: string; keep: number; slots: SourceSlot[] } | undefined;
  /** Scale-out: the leading `none`/`keyed` stages, instantiated once per partition task. */
  private readonly keyedStages: { index: number; resolved: ResolvedEntry }[] = [];
  private readonly tasks = new Map<string, PartitionTask>();
  private readonly partitionStores = new Map<string, CheckpointStore>();
  /** Where the sources' events enter: the stages, or (scale-out) the task of the event's partition. */
  private push: (event: ClickEvent, source: string) => void = (event) => this.input.next(event);
  /**
   * The sources' stop (their context.signal): the caller's signal, or the run failing (a stage or a
   * sink). A source waiting for input (Kafka) would otherwise keep a failed run going until its next record.
   */
  private readonly sourcesStop = new AbortController();
  /** Takes the listener on the caller's signal off (see the constructor). */
  private forgetSignal: () => void = () => undefined;
  /** The pipeline's `erasure` section, defaults filled in; undefined: no event type asks for an erasure. */
  private readonly erasure: ErasureSettings | undefined;
  /** tributary_erasures_total, made with the stages (erasure set). */
  private erasures: { inc(): void } | undefined;

  constructor(loaded: LoadedPipeline, options: RunOptions) {
    this.loaded = loaded;
    this.options = options;
    const signal = options.signal;
    if (signal?.aborted) this.sourcesStop.abort(signal.reason);
    else if (signal) {
      const stop = (): void => this.sourcesStop.abort(signal.reason);
      signal.addEventListener('abort', stop, { once: true });
      // Taken off when the run ends: the daemon's signal outlives a run it restarts, and the listener
      // kept each failed run (its state, its models) alive, about 12 MB per restart of the demo.
      this.forgetSignal = () => signal.removeEventListener('abort', stop);
    }
    // A plugin's error or log text that quotes a secret of its config (a password in a client's message) is logged without it.
    rememberSecretValues(loaded.document);
    this.clock = options.clock ?? { now: () => Date.now() };
    this.coPartitionWaitMs = options.coPartitionWaitMs ?? CO_PARTITION_WAIT_MS;
    this.metrics = options.metrics ?? new MetricsHub();
    this.logger = options.logger.child({ pipeline: loaded.document.name });
    this.batchSize = loaded.document.settings.max_in_flight;
    this.commitInterval = parseDuration(loaded.document.settings.commit_interval ?? '1s');
    this.heapBudget = parseBytes(loaded.document.settings.heap_budget);
    this.heapWaitMs = parseDuration(loaded.document.settings.heap_wait ?? '10s');
    const stallBound = loaded.document.settings.sink_stall_timeout;
    this.sinkStallMs = stallBound === undefined ? SINK_STALL_MS : parseDuration(stallBound);
    // Defaults filled in here too: a pipeline composed in code has not been through the schema's.
    const erasure = loaded.document.erasure;
    this.erasure = erasure === undefined ? undefined : { event_type: erasure.event_type ?? 'erase', log_user_id: erasure.log_user_id ?? 'hashed' };
    this.stats = {
      eventsIn: 0,
      recordsOut: 0,
      outByKind: {},
      deadLettered: 0,
      deadLetteredByReason: {},
      filtered: 0,
      filteredByReason: {},
      sideOutputs: {},
      watermark: -Infinity,
      passedWatermark: -Infinity,
      startedAt: this.clock.now(),
      elapsedMs: 0,
      drained: false,
    };
  }

  get name(): string {
    return this.loaded.document.name;
  }

  /** The pipeline file's absolute path: with the name, what checkpoints and model files record of who wrote them (PluginContext.pipelineFile). */
  private get pipelineFile(): string {
    return resolve(this.loaded.file);
  }

  /** Snapshot of every stateful operator, by stage label: each taken at this instant, promises awaited. */
  async snapshot(): Promise<Record<string, unknown>> {
    const stateful = this.operators.filter(({ operator }) => operator.snapshot);
    const taken = stateful.map(({ operator }) => operator.snapshot!());
    const states = await Promise.all(taken);
    return Object.fromEntries(stateful.map(({ label }, k) => [label, states[k]]));
  }

  private context(kind: string, entry: PipelineEntry, index: number, gauges?: GaugeShares): PluginContext {
    const label = entryLabel(kind, entry, index);
    const pipeline = this.loaded.document.name;
    const logger = this.logger.child({ stage: label });
    const metrics = this.metrics.scoped({ pipeline, stage: label }, logger);
    const deadLetters = this.metrics.scoped({ pipeline, stage: label }).counter('dead_letters_total', 'Inputs rejected to the dead-letter sink.');
    const filteredKeys = new Map<string, string>();
    const wm = kind === 'source' ? sourceWatermark(entry.watermark) : undefined;
    return {
      pipeline,
      pipelineFile: this.pipelineFile,
      label,
      baseDir: this.loaded.baseDir,
      logger,
      metrics: gauges ? gauges.wrap(metrics) : metrics,
      clock: this.clock,
      batchSize: this.batchSize,
      commitIntervalMs: this.options.checkpoints?.intervalMs ?? this.commitInterval,
      resuming: this.resuming,
      ...(this.options.replay ? { replay: true, ...(this.options.replaySaveDir !== undefined ? { replaySaveDir: this.options.replaySaveDir } : {}) } : {}),
      // max_drift is the runtime's to apply (it holds the whole source): the source is handed the rest.
      ...(wm ? { watermark: { maxOutOfOrderness: wm.maxOutOfOrderness, idleTimeout: wm.idleTimeout, maxAheadOfClock: wm.maxAheadOfClock } } : {}),
      shared: this.shared,
      sharedLogger: (name) => this.logger.child({ shared: name }),
      runShared: this.options.runShared ?? this.shared,
      held: () => this.barrier,
      ...(kind === 'source' ? { commitNow: () => this.commitNow(), ...(this.erasure ? { erasureEventType: this.erasure.event_type } : {}) } : {}),
      ...(kind === 'source' && this.loaded.document.scale_out && this.loaded.sources.length > 1 ? { scaleOutMember: this.scaleOutMember } : {}),
      ...(kind === 'stage'
        ? { stagesBefore: this.checkpointStages.slice(0, index), featureStagesChangedSince: (saved: unknown) => this.featureStagesChangedBefore(index, saved) }
        : {}),
      signal: this.sourcesStop.signal,
      ...(this.lockWaitMs > 0 ? { lockWaitMs: this.lockWaitMs } : {}),
      deadLetter: (rejection) => {
        // The dead-letter sink rejecting a dead letter has nowhere to send it: its write fails (the
        // pipeline stops, naming it) instead of recursing into itself until the stack runs out.
        if (kind === 'dead-letter') throw new Error(`it rejected the dead letter (${rejection.reason})`);
        if (this.failure !== undefined) return; // failed: nothing more is written (or counted), as in route()
        deadLetters.inc();
        // A sink rejecting the record route() hands it: route counts that record once (see routing).
        if (kind === 'sink' && this.routing) {
          this.sinkRejects++;
          this.deadLetter(label, rejection, false);
        } else this.deadLetter(label, rejection);
      },
      countFiltered: (count, reason) => {
        // Plugins may call this per record: the key is built once per reason (for the first reasons
        // given: one worded apart for each record is classed each time, not cached for good).
        let key = filteredKeys.get(reason);
        if (key === undefined) {
          key = `${label}: ${reasonClass(reason)}`;
          if (filteredKeys.size < 10 * maxDeadLetterReasons) filteredKeys.set(reason, key);
        }
        // A sink dropping the record route() hands it (a score below its threshold): deliver() counts that
        // record once, as filtered where every sink it went to dropped it, else as written.
        if (kind === 'sink' && this.routing) {
          this.sinkDrops++;
          this.sinkDropKey ??= key;
          return;
        }
        this.stats.filtered += count;
        countByReason(this.stats.filteredByReason, key, count);
      },
      sideOutput: (name, record) => this.sideOutput(name, record),
      featureOrigin: (name) => this.featureOrigins.get(name),
      currentPartition: () => this.currentPartition,
      fail: (error) => this.reportFailure(kind, label, error),
    };
  }

  /** A plugin's own report that it cannot go on (PluginContext.fail), named by its kind and label. */
  private reportFailure(kind: string, label: string, error: unknown): void {
    const cause = error instanceof Error ? error : new Error(String(error));
    if (this.failure || this.ended) {
      // The run's own failure reported again (a sink's error callback after its write threw it) is no news.
      const echo = this.failure !== undefined && rootCause(cause) === rootCause(this.failure);
      this.logger[echo ? 'debug' : 'warn']({ stage: label, err: cause.message }, this.ended ? 'a failure reported after the run ended' : 'a failure reported after the run had failed');
      return;
    }
    // Something plugins share (the Kafka sinks' transactional producer) names itself: not this plugin's failure.
    if (sharedFailure(cause)) return this.failRun(cause);
    const who = kind === 'dead-letter' ? 'the dead-letter sink' : label;
    // A person's to mend (the runtime's own refusal handed back through a plugin: a Kafka source's failed assignment,
    // whose partition state was saved under another partition count) keeps its code, as a sink's write does: as
    // TRIB_ERR_SOURCE it exited 1, and the daemon restarted into the same refusal.
    if (cause instanceof TributaryError && needsPerson(cause)) return this.failWith(new TributaryError(cause.code, `${who} failed: ${cause.message}`, { cause }));
    const code = kind === 'source' ? 'TRIB_ERR_SOURCE' : kind === 'stage' ? 'TRIB_ERR_STAGE' : 'TRIB_ERR_SINK';
    this.failRun(new TributaryError(code, `${who} failed: ${cause.message}`, { cause }));
  }

  /**
   * Fails the run with its first failure: a TributaryError of a sink, a source or a stage comes named
   * already (write, reportFailure); anything else is a stage's (its stream's error). The sources stop
   * at once, nothing more is written, and whatever the runtime waits on for a plugin gives up. Before
   * the stream is subscribed it is kept: run() throws it instead of starting.
   */
  private failRun(error: unknown): void {
    if (this.failure) return;
    const named = error instanceof TributaryError && (error.code === 'TRIB_ERR_SINK' || error.code === 'TRIB_ERR_SOURCE' || error.code === 'TRIB_ERR_STAGE');
    this.failWith(named ? error : new TributaryError('TRIB_ERR_STAGE', `a stage failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
  }

  /** The run fails with `failure` (the first one only): the sources stop, and what waits on a plugin is rejected. */
  private failWith(failure: TributaryError): void {
    if (this.failure) return;
    this.failure = failure;
    this.sourcesStop.abort(failure);
    for (const reject of this.failWaiters) reject(failure);
    this.failWaiters.clear();
    this.rejectCompleted?.(failure);
  }

  /**
   * `promise`, unless the run fails first: then its failure. What the runtime awaits of a plugin (a
   * sink's room, a flush) may never settle once a plugin reported it cannot go on (PluginContext.fail).
   * A waiter per call, dropped when it settles: no reaction piles up on a long-lived promise.
   */
  private untilFailed<T>(promise: Promise<T>): Promise<T> {
    const failure = this.failure;
    if (failure) {
      // Its own rejection (a sink's ready() failing with the run's failure) is the run's, reported already.
      promise.catch(() => undefined);
      return Promise.reject(failure);
    }
    return new Promise<T>((resolve, reject) => {
      this.failWaiters.add(reject);
      promise.then(resolve, reject).finally(() => this.failWaiters.delete(reject));
    });
  }

  /** Scale-out: the partition whose task is handing a record to the global stages right now. */
  private currentPartition: string | undefined;

  /** `counted` false: the caller counts the input (route(), for a record its sinks rejected). */
  private deadLetter(stage: string, rejection: Rejection, counted = true): void {
    if (this.failure !== undefined) return; // failed: nothing more is written, as in route()
    if (counted) this.stats.deadLettered++;
    // An erasure request a source's mapping rejected (no user id): its reason is the field it lacks, which does not say
    // the input asked to erase someone, and that nobody was (the mapping knows no erasure section; it tells the type it read).
    const erasureType = this.erasure?.event_type;
    const said =
      erasureType !== undefined && rejection.eventType === erasureType
        ? `erasure request (event type '${erasureType}') rejected by the source's mapping: nothing erased: ${rejection.reason}`
        : rejection.reason;
    // A stage's own rejections (recordOperator's, the sessionizer's) start with its label already.
    const reason = reasonClass(said);
    const key = reason.startsWith(`${stage}: `) ? reason : `${stage}: ${reason}`;
    countByReason(this.stats.deadLetteredByReason, key, 1);
    // A stage or sink rejecting a record it was handed need not look up where it came from: the record knows.
    const raw = rejection.raw;
    const origin = rejection.origin ?? (typeof raw === 'object' && raw !== null ? originOf(raw) : undefined);
    // The first of each reason said once: the dead-letter alert's on-call found nothing in the log of a daemon
    // (the reasons were only in the dead-letter sink and the summary, written when the process ends).
    if (!this.saidDeadLetterReasons.has(key) && this.saidDeadLetterReasons.size < maxDeadLetterReasons) {
      this.saidDeadLetterReasons.add(key);
      const where = origin ? { source: origin.source, file: origin.file, line: origin.line, partition: origin.partition, offset: origin.offset } : {};
      this.logger.warn({ stage, reason: key, ...where }, `dead letter: ${key} (the first of this reason in this process, said once; all are counted in tributary_dead_letters_total and written to the dead-letter sink)`);
    }
    const record: DeadLetter = {
      kind: 'dead_letter',
      reason: said,
      pipeline: this.name, // pipelines run together may share one dead-letter file
      stage,
      ...(origin ? { source: origin.source, file: origin.file, line: origin.line, offset: origin.offset, partition: origin.partition } : {}),
      raw: rejection.raw,
      ...(rejection.encoding ? { encoding: rejection.encoding } : {}),
      ...(rejection.key !== undefined ? { key: rejection.key } : {}),
      ...(rejection.keyEncoding ? { keyEncoding: rejection.keyEncoding } : {}),
      at: new Date(this.clock.now()).toISOString(),
    };
    this.write(this.deadLetterSink, record);
  }

  private sideOutput(name: string, record: StreamRecord): void {
    if (this.failure !== undefined) return; // failed: nothing more is written, as in route()
    const slots = this.sinksByOutput.get(name) ?? [];
    // An entry's `kinds` chooses from the main stream only; what its plugin cannot take it never gets.
    const taking = slots.filter((slot) => slot.takes === undefined || slot.takes.has(record.kind));
    if (taking.length > 0 && !this.deliver(taking.map((slot) => slot.sink), record)) return;
    // Taken only for the command's own use (the backtest's model reports, from a shadow model's side output too), as route() counts it.
    if (taking.length > 0 && taking.every((slot) => slot.internal)) {
      this.stats.collected = (this.stats.collected ?? 0) + 1;
      return;
    }
    this.stats.sideOutputs[name] = (this.stats.sideOutputs[name] ?? 0) + 1;
    if (taking.length > 0) return;
    // Counted, and said once: a side output without a sink is a config choice, not a silent loss. The command's own sinks are none of the pipeline's.
    const named = slots.filter((slot) => !slot.internal);
    const warning = named.length === 0 ? name : `${name}\0${record.kind}`;
    if (!this.warnedOutputs.has(warning)) {
      this.warnedOutputs.add(warning);
      if (named.length === 0) this.logger.warn({ output: name }, `side output '${name}' has no sink (add one with outputs: [${name}]); its records are counted only`);
      else this.logger.warn({ output: name, kind: record.kind }, `side output '${name}' has records of kind '${record.kind}', which no sink naming it takes; they are counted only`);
    }
  }

  private route(record: Element): void {
    if (record.kind === 'watermark') {
      // Out of the last stage: what the stages passed on (noted per watermark, not per record).
      const time = (record as Watermark).time;
      if (time > this.stats.passedWatermark) this.stats.passedWatermark = time;
      return;
    }
    if (this.failure !== undefined) return; // failed: nothing more is written
    let route = this.routes.get(record.kind);
    if (route === undefined) {
      const slots = this.sinks.filter((slot) => slot.kinds === undefined || slot.kinds.has(record.kind));
      route = { sinks: slots.map((slot) => slot.sink), unrouted: `no sink takes kind '${record.kind}'`, internal: slots.length > 0 && slots.every((slot) => slot.internal) };
      this.routes.set(record.kind, route);
    }
    const sinks = route.sinks;
    if (sinks.length === 0) {
      this.stats.filtered++;
      this.stats.filteredByReason[route.unrouted] = (this.stats.filteredByReason[route.unrouted] ?? 0) + 1;
      return;
    }
    if (!this.deliver(sinks, record as StreamRecord)) return;
    // Taken only for the command's own use (the backtest's report): not written out by the pipeline.
    if (route.internal) {
      this.stats.collected = (this.stats.collected ?? 0) + 1;
      return;
    }
    this.stats.recordsOut++;
    this.stats.outByKind[record.kind] = (this.stats.outByKind[record.kind] ?? 0) + 1;
  }

  /**
   * Hands one record to its sinks, counted once however many take it: true when they all took it;
   * false when one rejected it (counted as dead-lettered: a dead letter was written, and the books must
   * send a reader to the dead-letter sink; each sink's own is counted in its dead_letters_total), when
   * every sink dropped it with countFiltered (counted as filtered, by the first one's reason: written
   * nowhere; one written by another sink is out), or when the run failed writing it.
   */
  private deliver(sinks: readonly Sink[], record: StreamRecord): boolean {
    const rejectsBefore = this.sinkRejects;
    let droppedBy = 0;
    this.routing = true;
    this.sinkDropKey = undefined;
    try {
      for (let i = 0; i < sinks.length; i++) {
        const dropsBefore = this.sinkDrops;
        if (!this.write(sinks[i]!, record)) return false;
        if (this.sinkDrops !== dropsBefore) droppedBy++;
      }
    } finally {
      this.routing = false;
    }
    if (this.sinkRejects !== rejectsBefore) {
      this.stats.deadLettered++;
      return false;
    }
    if (droppedBy < sinks.length) return true;
    this.stats.filtered++;
    countByReason(this.stats.filteredByReason, this.sinkDropKey!, 1);
    return false;
  }

  /**
   * True while deliver() hands a record to its sinks; sinkRejects counts their dead letters meanwhile,
   * sinkDrops their countFiltered calls (sinkDropKey: the first one's reason, as the summary counts it).
   */
  private routing = false;
  private sinkRejects = 0;
  private sinkDrops = 0;
  private sinkDropKey: string | undefined;

  /**
   * One record to one sink. A sink that throws fails the pipeline (a restart resumes from the last
   * checkpoint): thrown inside the stream, the error would escape as an uncaught exception and end
   * the process without its shutdown. Bad input is stopped before (the mapping rejects what no
   * writer could encode); a throwing sink is a broken sink. False once the pipeline failed.
   */
  private write(sink: Sink, record: StreamRecord): boolean {
    try {
      sink.write(record);
      return true;
    } catch (cause) {
      if (sharedFailure(cause)) {
        this.failRun(cause);
        return false;
      }
      const label = sink === this.deadLetterSink ? 'the dead-letter sink' : (this.sinks.find((slot) => slot.sink === sink)?.label ?? 'a sink');
      // One a person must mend keeps its code (a lazy file sink's output locked by a live process at its
      // first record: TRIB_ERR_OUTPUT_LOCKED, exit 2), as it would at the sink's open: no restart mends it.
      const code = cause instanceof TributaryError && needsPerson(cause) ? cause.code : 'TRIB_ERR_SINK';
      this.failWith(new TributaryError(code, `${label} failed to write a record (kind '${record.kind}'): ${(cause as Error).message}`, { cause }));
      return false;
    }
  }

  private async create<T>(resolved: ResolvedEntry, kind: string, index: number, gauges?: GaugeShares): Promise<{ label: string; instance: T }> {
    const context = this.context(kind, resolved.entry, index, gauges);
    try {
      const instance = (await resolved.plugin.create(pluginConfig(resolved.entry) as never, context)) as T;
      // A factory that returns no instance, or one without what the runtime calls, is said here, not as
      // a TypeError from deep in the run (a plugin in JavaScript has no compiler to catch it).
      const missing = missingMembers(resolved.plugin.kind, instance, resolved.plugin.partitioned);
      if (missing) throw new Error(`create() returned ${missing}`);
      return { label: context.label, instance };
    } catch (cause) {
      const where = `${this.loaded.file}: ${resolved.path} (${resolved.plugin.kind} '${resolved.plugin.name}')`;
      // A failure the plugin classed as a runtime one (a broker out of reach) stays one: a restart may mend it.
      if (cause instanceof TributaryError && !(cause instanceof ConfigError)) throw new TributaryError(cause.code, `${where}: ${cause.message}`, { cause });
      // Anything else a factory throws rejects what the schema cannot express: a config error, located like
      // the schema's, at the field a PluginConfigError names (by name: a plugin may carry its own copy of the core).
      const field = (cause as { name?: unknown } | null)?.name === 'PluginConfigError' ? (cause as { field?: unknown }).field : undefined;
      const problem = entryFieldProblem(this.loaded.file, resolved, typeof field === 'string' ? field : undefined, `${resolved.plugin.kind} '${resolved.plugin.name}': ${(cause as Error).message}`);
      throw Object.assign(new ConfigError([problem], 'TRIB_ERR_PLUGIN_FACTORY'), { cause });
    }
  }

  private async build(): Promise<void> {
    const scaleOut = this.loaded.document.scale_out;
    this.deadLetterSink = (await this.create<Sink>(this.loaded.deadLetter, 'dead-letter', 0)).instance;
    for (const [index, resolved] of this.loaded.sinks.entries()) {
      const { label, instance } = await this.create<Sink>(resolved, 'sink', index);
      const kinds = sinkKinds(resolved);
      const takes = resolved.plugin.kinds;
      const outputs = (resolved.entry.outputs as string[] | undefined) ?? [];
      const slot: SinkSlot = { label, sink: instance, kinds: kinds ? new Set(kinds) : undefined, takes: takes ? new Set(takes) : undefined, outputs: new Set(outputs), internal: resolved.internal === true };
      this.sinks.push(slot);
      for (const output of outputs) this.sinksByOutput.set(output, [...(this.sinksByOutput.get(output) ?? []), slot]);
    }
    for (const [index, resolved] of this.loaded.stages.entries()) {
      // Scale-out: the leading per-user (or stateless) stages run per partition, built on assignment.
      const scope = resolved.plugin.state ?? 'global';
      if (scaleOut && this.operators.length === 0 && scope !== 'global') {
        this.keyedStages.push({ index, resolved });
        continue;
      }
      const { label, instance } = await this.create<Operator>(resolved, 'stage', index);
      this.operators.push({ label, operator: instance });
    }
    for (const [index, resolved] of this.loaded.sources.entries()) {
      const { label, instance } = await this.create<Source>(resolved, 'source', index);
      const wm = sourceWatermark(resolved.entry.watermark);
      this.sources.push({
        label,
        source: instance,
        maxOutOfOrderness: wm.maxOutOfOrderness,
        idleTimeout: wm.idleTimeout,
        maxTime: -Infinity,
        maxAheadOfClock: wm.maxAheadOfClock,
        maxDrift: wm.maxDrift,
        lastActivity: this.clock.now(), // set again when its reading starts (pump)
        waiting: false,
        lastCommit: this.clock.now(),
        done: false,
      });
    }
    if (scaleOut) {
      // Its sources are partitioned (loadedPipelineProblems; missingMembers), and checkpoints are on (runWithCheckpointsClaimed).
      if (this.keyedStages.length === 0) this.logger.warn('scale_out: no per-user stage leads the pipeline, so there is no partition state to hand over');
      this.scaleOut = { dir: resolve(this.loaded.baseDir, scaleOut.state_dir), keep: scaleOut.keep ?? 3, slots: [...this.sources] };
    }
    if (this.erasure) {
      this.erasures = this.metrics.scoped({ pipeline: this.name }).counter('erasures_total', "Erasure requests done (the pipeline's erasure section): every stage dropped the user's state.");
      this.warnCannotForget(this.operators);
    }
  }

  /** Stages said by warnCannotForget already (scale-out builds the per-user ones once per partition). */
  private readonly saidCannotForget = new Set<string>();

  /**
   * With `erasure` set: a stage that keeps state (snapshot) but has no forget() keeps a user's state through an
   * erasure request, until it ages out or is evicted; said once per stage, at the start, so that is known before a request comes.
   */
  private warnCannotForget(operators: readonly { label: string; operator: Operator }[]): void {
    for (const { label, operator } of operators) {
      if (!operator.snapshot || operator.forget || this.saidCannotForget.has(label)) continue;
      this.saidCannotForget.add(label);
      this.logger.warn(
        { stage: label },
        `erasure: stage ${label}${this.stageWhere(label)} keeps state but has no forget(): an erasure request leaves whatever it keeps of the user (see docs/plugin-authoring.md, Erasure requests)`,
      );
    }
  }

  // ---- scale-out: one task per source partition (per partition number, with several sources) ----

  private partitionStore(id: string): CheckpointStore {
    let store = this.partitionStores.get(id);
    if (!store) {
      store = new CheckpointStore(join(this.scaleOut!.dir, id), this.scaleOut!.keep, this.loaded.document.checkpoint?.compression ?? 'none');
      this.partitionStores.set(id, store);
    }
    return store;
  }

  /** PluginContext.scaleOutMember: this run's name in the group, one for all its sources. */
  private readonly scaleOutMember = randomUUID().slice(0, 8);

  /** Scale-out: the task that reads a source partition, and its member for it, by the partition's id. */
  private readonly taskOfPartition = new Map<string, { task: PartitionTask; member: TaskMember }>();

  /** Builds a partition's stages, restores their state, and connects them to the global stages. */
  private async startTask(
    id: string,
    members: TaskMember[],
    saved: { operators: Record<string, unknown>; file: string; stages: unknown; held: number | undefined; owners: number } | undefined,
  ): Promise<void> {
    const operators: PartitionTask['operators'] = [];
    const gauges = new GaugeShares();
    for (const { index, resolved } of this.keyedStages) {
      const { label, instance } = await this.create<Operator>(resolved, 'stage', index, gauges);
      await openStage(label, instance);
      operators.push({ label, operator: instance });
    }
    if (this.erasure) this.warnCannotForget(operators);
    if (saved) {
      await this.restoreOperators(operators, saved.operators, saved.file, recordedStages(saved.stages));
      this.sayFeatureStagesChanged(saved, 'partition checkpoint');
    }
    const input = new Subject<Element>();
    const stream = composeOperators(operators.map((o) => o.operator), input.asObservable(), this.latency.task());
    // Its watermark starts over: it rises with the partition's own records (see partitionWatermarks).
    const task: PartitionTask = { id, members, input, operators, subscription: Subscription.EMPTY, gauges, watermark: -Infinity, passed: saved?.held ?? -Infinity, changes: 0, saved: 0, owners: (saved?.owners ?? 0) + 1 };
    task.subscription = stream.subscribe({
      // The runtime sends each watermark to every task, then once to the global stages.
      next: (record) => {
        // Whatever comes out changed its state, even where nothing went in (a stage's own timer).
        task.changes++;
        if (record.kind === 'watermark') {
          // The global stages get theirs from the runtime, held back to this (passGlobalWatermark).
          const time = (record as Watermark).time;
          if (time > task.passed) task.passed = time;
          return;
        }
        // The global stages handle it synchronously, inside this call: they may ask whose it is.
        this.currentPartition = id;
        try {
          this.input.next(record);
        } finally {
          this.currentPartition = undefined;
        }
      },
      error: (error: unknown) => this.failRun(error),
    });
    this.tasks.set(id, task);
    for (const member of members) this.taskOfPartition.set(member.id, { task, member });
  }

  /** Disconnects a partition's stages (nothing more comes out of them) and closes them. */
  private async stopTask(id: string): Promise<void> {
    const task = this.tasks.get(id);
    if (!task) return;
    this.tasks.delete(id);
    for (const member of task.members) if (this.taskOfPartition.get(member.id)?.task === task) this.taskOfPartition.delete(member.id);
    task.subscription.unsubscribe();
    task.gauges.release();
    for (const { operator } of task.operators) await operator.close?.();
  }

  /**
   * The offsets to save a task's state at, by source label: each member's `offsetOf` (the next record after those
   * its source handed over), else its start while no record of it reached the task. Undefined where there is nothing
   * to save: its state unchanged since saved or restored (its newest file holds it), or no offset known of any member
   * (a partition being revoked, saved by the revocation; an empty state with no committed offset).
   */
  private offsetsToSave(task: PartitionTask, offsetOf: (member: TaskMember) => number | undefined): TaskOffsets | undefined {
    if (task.changes === task.saved) return undefined;
    const offsets = new Map(task.members.map((member) => [member.slot.label, offsetOf(member) ?? member.handedOver ?? member.start]));
    return [...offsets.values()].every((offset) => offset === undefined) ? undefined : offsets;
  }

  /**
   * A partition's state as a checkpoint body, of its stages' snapshots taken (takeSnapshots); `offsets` the next record of each member
   * it has not seen, `held` the watermark its stages passed on where they hold theirs back (heldOf), read with the snapshots.
   */
  private partitionBody(task: PartitionTask, offsets: TaskOffsets, held: number | undefined, operators: TakenSnapshots): Promise<Buffer[]> {
    const { owners } = task;
    const sources: Record<string, SourcePosition> = {};
    for (const { slot, id, partitions } of task.members) {
      const offset = offsets.get(slot.label);
      sources[slot.label] = { partition: id, ...(offset === undefined ? {} : { offset }), owners, ...(held === undefined ? {} : { held }), ...(partitions === undefined ? {} : { partitions }) };
    }
    // Its stages recorded as the pipeline's checkpoint records them: a restore of it checks the edits since alike.
    return serialiseBody({ pipeline: this.name, pipelineFile: this.pipelineFile, createdAt: new Date(this.clock.now()).toISOString(), sources, counters: {}, stages: this.checkpointStages }, operators);
  }

  /**
   * Scale-out: a partition's state file written when its topic had another number of partitions than it has now is
   * not restored, and the run stops for a person (TRIB_ERR_CHECKPOINT, exit 2). Its state is per user, and the
   * producers' rule that puts a user's events on a partition (Kafka's default: the key's hash modulo the count) sends
   * most users elsewhere once the count changed: restored, their state would stay on the partition they left (a
   * session cut in two, a churn label for a user active on another partition, features counted anew there). The
   * runtime cannot move it: a stage's state is its own, and the rule is the producers'. Nor is the partition started
   * empty without a word. Files that record no count (before 2026-12-07), or a source that says none, are not checked.
   */
  private refuseOtherPartitionCount(id: string, saved: Checkpoint, recorded: number | undefined, now: number | undefined): void {
    if (recorded === undefined || now === undefined || recorded === now) return;
    throw new TributaryError(
      'TRIB_ERR_CHECKPOINT',
      `scale_out: the state of partition ${id} (${saved.file}) was saved when its topic had ${recorded} partitions; it has ${now} now. ` +
        "Per-user state is kept by partition, and the producers' key -> partition rule (the key's hash modulo the count) sends most users' events to another partition since: " +
        'restored, their state would stay on the partition they left (sessions cut in two, labels and features counted anew on the other). Nothing is restored. ' +
        `To start every partition's state afresh: stop every member of the group, move the partition folders out of ${this.scaleOut!.dir} (scale_out.state_dir), and start them again: ` +
        "each partition then starts with empty state at the group's committed offsets, and the state they held is lost (docs/operations.md, Partitions added to a scale_out topic)",
    );
  }

  /**
   * Several sources: co-partitioned topics have one partition count (and the producers one key -> partition rule),
   * or partition p of one holds other users than p of another, and a task's per-user state would be split. The
   * brokers say the counts at the assignment; a difference is a config error, said at each source's entry.
   */
  private refuseUnequalPartitionCounts(parts: readonly { slot: SourceSlot; id: string; partition?: number; partitions?: number }[]): void {
    // One part of each source is enough to say its topic's count (and one problem at each source's entry).
    const counts = this.scaleOut!.slots.flatMap((slot) => parts.find((part) => part.slot === slot && part.partitions !== undefined) ?? []);
    if (counts.length < 2 || counts.every((member) => member.partitions === counts[0]!.partitions)) return;
    // The topic, from the partition's id (`clicks-3`: topic and number), where the source says its number.
    const topicOf = (member: { id: string; partition?: number }): string =>
      member.partition !== undefined && member.id.endsWith(`-${member.partition}`) ? `topic ${member.id.slice(0, -`-${member.partition}`.length)}` : `partition ${member.id}`;
    const said = counts.map((member) => `${member.slot.label} (${topicOf(member)}) ${member.partitions}`).join(', ');
    const problems = counts.map((member) => {
      const resolved = this.loaded.sources[this.sources.indexOf(member.slot)]!;
      return entryFieldProblem(
        this.loaded.file,
        resolved,
        undefined,
        `scale_out with several sources needs co-partitioned topics, one partition count for all (partition p of each is one task's input), but their topics have ${said} partitions (${member.id} assigned here). ` +
          'Give the topics one count (and the producers one key -> partition rule), or run the pipeline without scale_out',
      );
    });
    throw new ConfigError(problems);
  }

  /** Several sources: how long a member waits for partition p of the other sources once one assigned (or revoked) it here (RunOptions.coPartitionWaitMs). */
  private readonly coPartitionWaitMs: number;

  /**
   * Scale-out: the listener calls of one kind (assignments, or revocations) of the sources, waiting until every source's
   * part of the tasks they name has come (with one source, at once). Each call resolves once all of them are handled.
   */
  private readonly gathered = {
    assigned: [] as GatheredCall<PartitionAssignment, ReadonlyMap<string, number>>[],
    revoked: [] as GatheredCall<PartitionRevocation, void>[],
  };

  /** Partition numbers by task: the number of `part` (a partition's own id, with one source). */
  private taskKey(part: { id: string; partition?: number }): string {
    if (this.scaleOut!.slots.length === 1) return part.id;
    if (part.partition === undefined || !Number.isSafeInteger(part.partition)) {
      throw new TributaryError('TRIB_ERR_SOURCE', `scale_out with several sources: the source gave partition ${part.id} without its number (PartitionAssignment.partition), which puts partition p of each source in one task`);
    }
    return String(part.partition);
  }

  /**
   * Adds a listener call to those gathered, and handles all of them once every task they name has each source's part
   * (several sources: the group's assignor gives p of every topic to one member, but each source's consumer hears
   * of it in its own time). A part that waits longer than coPartitionWaitMs fails the run: the assignor did not keep
   * the topics' partitions together (another strategy on some member), or one topic has more partitions.
   */
  private gather<Part extends { id: string; partition?: number; partitions?: number }, Result>(
    calls: GatheredCall<Part, Result>[],
    slot: SourceSlot,
    parts: readonly Part[],
    whileHeld: ((marks: ReadonlyMap<string, string>) => void) | undefined,
    handle: (calls: readonly GatheredCall<Part, Result>[]) => Promise<void>,
    what: 'assigned' | 'revoked',
  ): Promise<Result> {
    const keys = parts.map((part) => this.taskKey(part));
    return new Promise<Result>((resolve, reject) => {
      const call: GatheredCall<Part, Result> = { slot, parts, keys, whileHeld, resolve, reject, timer: undefined };
      calls.push(call);
      if (what === 'assigned') {
        // Unequal counts leave task p of the larger topic without its other parts for good: said at once, not
        // after coPartitionWaitMs as an assignor's doing (no task is complete while one waits, so assignTasks' check never came).
        try {
          this.refuseUnequalPartitionCounts(calls.flatMap((each) => each.parts.map((part) => ({ slot: each.slot, id: part.id, partition: part.partition, partitions: part.partitions }))));
        } catch (error) {
          for (const waiting of calls.splice(0)) {
            clearTimeout(waiting.timer);
            waiting.reject(error);
          }
          return;
        }
      }
      const complete = (): boolean => {
        const slots = this.scaleOut!.slots;
        const have = new Map<string, { from: Set<SourceSlot>; ids: string[] }>();
        for (const { slot: from, keys: named, parts: given } of calls) {
          named.forEach((key, index) => {
            const entry = have.get(key) ?? { from: new Set<SourceSlot>(), ids: [] };
            entry.from.add(from);
            entry.ids.push(given[index]!.id);
            have.set(key, entry);
          });
        }
        // A revocation of partitions no task reads here (assigned, then abandoned before their task started) waits for nothing.
        return [...have.values()].every(({ from, ids }) => slots.every((each) => from.has(each)) || (what === 'revoked' && !ids.some((id) => this.taskOfPartition.has(id))));
      };
      if (!complete()) {
        call.timer = setTimeout(() => {
          if (!calls.includes(call)) return;
          const others = this.scaleOut!.slots.filter((other) => other !== slot).map((other) => other.label).join(', ');
          const error = new TributaryError(
            'TRIB_ERR_SOURCE',
            `scale_out: ${slot.label} ${what} partitions ${parts.map((part) => part.id).join(', ')} here, and ${others} did not ${what === 'assigned' ? 'assign' : 'revoke'} the same partition numbers within ${this.coPartitionWaitMs / 1000} s: ` +
              "the group's assignment does not keep the topics' partitions together (co-partitioned topics need one partition count, one consumer group, and partition.assignment.strategy range on every member: cooperative-sticky and roundrobin spread each topic on its own). Nothing of them is read or handed over; the run stops",
          );
          for (const waiting of calls.splice(0)) {
            clearTimeout(waiting.timer);
            waiting.reject(error);
          }
          // Stopping (the sources close together, but one may close without revoking its part): nothing to fail.
          if (!this.ended && this.options.signal?.aborted !== true) this.failRun(error);
        }, this.coPartitionWaitMs);
        call.timer.unref?.();
        return;
      }
      const ready = calls.splice(0);
      for (const each of ready) clearTimeout(each.timer);
      handle(ready).catch((error: unknown) => {
        for (const each of ready) each.reject(error);
      });
    });
  }

  private partitionListener(slot: SourceSlot): PartitionListener {
    return {
      // A rebalance came first: the source's assignment waiting for the other sources' parts is given up.
      abandoned: (ids) => {
        const calls = this.gathered.assigned;
        for (const call of [...calls]) {
          if (call.slot !== slot || !call.parts.some((part) => ids.includes(part.id))) continue;
          calls.splice(calls.indexOf(call), 1);
          clearTimeout(call.timer);
          call.resolve(new Map());
        }
      },
      assigned: (partitions) => this.gather(this.gathered.assigned, slot, partitions, undefined, (calls) => this.assignTasks(calls), 'assigned'),
      revoked: (partitions, whileHeld) => this.gather(this.gathered.revoked, slot, partitions, whileHeld, (calls) => this.revokeTasks(calls), 'revoked'),
    };
  }

  /** A partition file's entry of a source (its label): its offset, and what else the file says of it. */
  private fileEntry(checkpoint: Checkpoint, label: string): { offset?: unknown; held?: unknown; partitions?: unknown; owners?: unknown } | undefined {
    return checkpoint.sources[label] as { offset?: unknown; held?: unknown; partitions?: unknown; owners?: unknown } | undefined;
  }

  /** Restores the tasks of the gathered assignments (each source's part of each), then resolves each call with its partitions' starts. */
  private async assignTasks(calls: readonly GatheredCall<PartitionAssignment, ReadonlyMap<string, number>>[]): Promise<void> {
    const starts = await this.exclusive(async () => {
      const starts = new Map<string, number>();
      const byTask = new Map<string, Map<SourceSlot, PartitionAssignment>>();
      for (const call of calls) call.parts.forEach((part, index) => byTask.set(call.keys[index]!, (byTask.get(call.keys[index]!) ?? new Map()).set(call.slot, part)));
      for (const parts of byTask.values()) {
        const assignments = this.scaleOut!.slots.map((slot) => ({ slot, assignment: parts.get(slot)! }));
        const id = assignments.map(({ assignment }) => assignment.id).join('+');
        if (this.tasks.has(id)) continue;
        const members: TaskMember[] = assignments.map(({ slot, assignment }) => ({ slot, id: assignment.id, start: undefined, partitions: assignment.partitions }));
        this.refuseUnequalPartitionCounts(members.map((member, index) => ({ ...member, partition: assignments[index]!.assignment.partition })));
        const committedOf = new Map(assignments.map(({ slot, assignment }) => [slot.label, assignment.committed]));
        const offsetOf = (checkpoint: Checkpoint, label: string): number | undefined => {
          const offset = this.fileEntry(checkpoint, label)?.offset;
          return typeof offset === 'number' && Number.isSafeInteger(offset) ? offset : undefined;
        };
        const first = members[0]!.slot.label;
        const heldIn = (checkpoint: Checkpoint): number | undefined => {
          const held = this.fileEntry(checkpoint, first)?.held;
          return typeof held === 'number' && Number.isFinite(held) ? held : undefined;
        };
        // Files before the count was recorded (2026-12-07) say none: not checked.
        const partitionCountOf = (checkpoint: Checkpoint, label: string): number | undefined => {
          const count = this.fileEntry(checkpoint, label)?.partitions;
          return typeof count === 'number' && Number.isSafeInteger(count) && count > 0 ? count : undefined;
        };
        // Files before owners were recorded (2026-12-07) count as the first owner's.
        const ownersOf = (checkpoint: Checkpoint): number => {
          const owners = this.fileEntry(checkpoint, first)?.owners;
          return typeof owners === 'number' && Number.isSafeInteger(owners) && owners > 0 ? owners : 1;
        };
        // Only state the group's committed offsets cover, of every member: a newer file belongs to outputs that were
        // never committed (a crash between the file and the commit, or an aborted transaction). A member the file
        // names no offset of (nothing of it read or committed then) is covered while the group committed none of it.
        const covered = (checkpoint: Checkpoint): boolean =>
          members.every(({ slot }) => {
            const offset = offsetOf(checkpoint, slot.label);
            const committed = committedOf.get(slot.label);
            return offset === undefined ? committed === undefined : committed !== undefined && offset <= committed;
          });
        const anyCommitted = [...committedOf.values()].some((committed) => committed !== undefined);
        // Of those, the greatest offsets, not the newest file: a member that had not yet noticed it lost
        // the partition may have written one after the new owner's, at offsets behind it, or at the
        // same offsets (its partition idle, its state changed by time): on such a tie the later owner's
        // file (the greater owners count), whichever was written last; the newest of one owner's.
        const store = this.partitionStore(id);
        const unusable = (file: string, reason: string): void => this.logger.warn({ file, reason }, `partition checkpoint ${file} is unusable (${reason}); trying the one before`);
        // The file the committed offsets' marks name, where the source stores them: a file written
        // later at the same offsets (the partition idle, its state changed by time) is covered too,
        // but its outputs committed only if its own commit went through, which only the marks say.
        const marks = assignments.every(({ assignment }) => assignment.committed !== undefined) ? intersection(assignments.map(({ assignment }) => assignment.marks ?? [])) : [];
        const marked = marks.length === 0 ? undefined : await this.markedPartitionFile(store, marks, covered, unusable);
        const saved = !anyCommitted
          ? undefined
          : marked ??
            (await store.highest(unusable, (checkpoint) => (covered(checkpoint) ? [offsetsRank(new Map(members.map(({ slot }) => [slot.label, offsetOf(checkpoint, slot.label)]))), ownersOf(checkpoint)] : undefined)));
        // Where reading starts: what its state covers until a record of it is read. The file the
        // committed offset's marks name is the state at that offset, wherever the file says it was
        // written: a commit names the partition's newest file, and records read after it that changed
        // no state (dead-lettered) left no file of their own. Read again from the file's offset, they
        // were dead-lettered twice, and the partition, its start behind the committed offset, was left
        // out of the transactions (so of their marks) until a record of it came.
        for (const member of members) {
          if (saved) this.refuseOtherPartitionCount(member.id, saved, partitionCountOf(saved, member.slot.label), member.partitions);
          const committed = committedOf.get(member.slot.label);
          member.start = marked ? committed : saved ? offsetOf(saved, member.slot.label) ?? committed : committed;
          // Where none was saved too: a source that names a partition in its position from its start
          // on (Kafka, exactly-once) commits it with each transaction's marks before a record of it comes.
          if (member.start !== undefined) starts.set(member.id, member.start);
        }
        await this.startTask(id, members, saved ? { operators: saved.operators, file: saved.file, stages: saved.stages, held: heldIn(saved), owners: ownersOf(saved) } : undefined);
        // The files before the one restored (all, where none was) are of use to no one from here on:
        // the group's committed offsets only move on with files this member writes (writePartitionFile).
        const floor = saved ? saved.sequence : (await store.newestSequence()) + 1;
        const restoredAt: TaskOffsets = new Map(members.map((member) => [member.slot.label, member.start]));
        this.partitionFiles.set(id, { floor, files: saved ? [{ sequence: saved.sequence, offsets: restoredAt, mark: checkpointMark(saved) }] : [] });
        this.logger.info(
          {
            partition: id,
            committed: members.length === 1 ? committedOf.get(first) : Object.fromEntries(committedOf),
            restored: saved ? { file: saved.file, offset: members.length === 1 ? offsetOf(saved, first) : Object.fromEntries(members.map(({ slot }) => [slot.label, offsetOf(saved, slot.label)])), ...(marked ? { marked: true } : {}) } : null,
          },
          saved ? 'partition state restored' : 'partition starts with empty state',
        );
      }
      return starts;
    });
    for (const call of calls) call.resolve(new Map(call.parts.flatMap((part) => (starts.has(part.id) ? [[part.id, starts.get(part.id)!] as const] : []))));
  }

  /** Saves and stops the tasks of the gathered revocations (every source's part of each, or lost), then resolves each call. */
  private async revokeTasks(calls: readonly GatheredCall<PartitionRevocation, void>[]): Promise<void> {
    await this.exclusive(async () => {
      const saves: [PartitionTask, TaskOffsets, Buffer[]][] = [];
      const lost: string[] = [];
      const revoked = calls.flatMap((call) => call.parts);
      const stopped = new Set<PartitionTask>();
      for (const part of revoked) {
        const found = this.taskOfPartition.get(part.id);
        if (found) found.member.handedOver = part.offset;
      }
      for (const part of revoked) {
        const task = this.taskOfPartition.get(part.id)?.task;
        if (!task || stopped.has(task)) continue;
        stopped.add(task);
        // Lost, the partition is another member's already, which may be writing its files: a file
        // of this state now would be stale there (and its pruning might remove the new owner's).
        // One member lost, the task is: its state covers the others' records too.
        const taskParts = revoked.filter((each) => task.members.some((member) => member.id === each.id));
        if (taskParts.some((each) => each.lost === true)) lost.push(task.id);
        else {
          const offsets = this.offsetsToSave(task, (member) => taskParts.find((each) => each.id === member.id)?.offset);
          if (offsets !== undefined) saves.push([task, offsets, await this.partitionBody(task, offsets, heldOf(task), takeSnapshots(task.operators))]);
        }
        await this.stopTask(task.id);
      }
      if (lost.length > 0) {
        this.logger.warn(
          { partitions: lost },
          'partitions lost (the group gave them to another member before this one handed them over: its session or max.poll.interval expired): their state is not saved; the next owner restores the file their committed offset covers and reads on from there',
        );
      }
      const tasks = [...stopped].map((task) => task.id);
      for (const { operator } of this.operators) operator.partitionsRevoked?.(tasks);
      // Outputs of the partitions' records are durable before their state and offsets move on.
      await this.flushSinks();
      for (const [task, offsets, body] of saves) await this.writePartitionFile(task, offsets, body);
      // Each source's partitions' newest file (their task's), for the source to commit their offsets with.
      for (const call of calls) {
        const marks = new Map<string, string>();
        for (const task of stopped) {
          const mark = this.partitionFiles.get(task.id)?.files.at(-1)?.mark;
          if (mark === undefined) continue;
          for (const member of task.members) if (call.parts.some((part) => part.id === member.id)) marks.set(member.id, mark);
        }
        call.whileHeld?.(marks);
      }
      // Their next owner's from here on.
      for (const task of stopped) this.partitionFiles.delete(task.id);
      this.logger.info({ partitions: tasks, saved: saves.length }, 'partition state saved for hand-over');
    });
    for (const call of calls) call.resolve();
  }

  /** Runs `work` with the sources held at the barrier: no record moves while it runs. */
  private async exclusive<T>(work: () => Promise<T>): Promise<T> {
    const release = await this.holdSources();
    try {
      return await work();
    } finally {
      release();
    }
  }

  /** Holds the sources at the barrier once no batch is in hand; resolves to what lets them go (once). */
  private async holdSources(): Promise<() => void> {
    while (this.barrier || this.batchesInHand > 0) await (this.barrier ?? new Promise<void>((resolve) => this.batchesInWaiters.push(resolve)));
    let resolveBarrier!: () => void;
    const barrier = new Promise<void>((resolve) => (resolveBarrier = resolve));
    this.barrier = barrier;
    return () => {
      if (this.barrier === barrier) this.barrier = undefined;
      resolveBarrier();
    };
  }

  /**
   * Whether a checkpoint holds the sources until they committed, not only until its state is taken. A
   * transactional sink's outputs are committed by the sources' commit (Sink.transactional: Kafka
   * exactly-once), so an output written between the sinks' flush and that commit would join the
   * transaction of input it does not come from. Scale-out saves partition files beside the checkpoint,
   * which a rebalance's hand-over writes too (at the barrier): those stay at the barrier as well.
   */
  private holdsSourcesUntilCommitted(): boolean {
    return this.scaleOut !== undefined || this.allSinks().some(({ sink }) => sink?.transactional === true);
  }

  /** Every sink with its label, the dead-letter sink last (undefined in a run that failed before making it). */
  private allSinks(): { label: string; sink: Sink | undefined }[] {
    return [...this.sinks, { label: 'the dead-letter sink', sink: this.deadLetterSink as Sink | undefined }];
  }

  private async flushSinks(): Promise<void> {
    for (const { label, sink } of this.allSinks()) {
      try {
        const flushed = sink?.flush?.();
        if (flushed) await this.awaitSink(label, sink!, 'flush', flushed);
      } catch (error) {
        // Named as the sink's (a flush from a source's loop was otherwise "a source failed"); a
        // TributaryError (the run's failure, a Kafka sink's own) is passed on as it is.
        throw error instanceof TributaryError ? error : pluginFailure('TRIB_ERR_SINK', label, 'failed to flush', error);
      }
    }
    this.lastFlush = this.clock.now();
  }

  /**
   * Without checkpoints the sinks flush every `settings.commit_interval` whatever the sources: a
   * committing source (Kafka) has them flush before its commit, but a file or synthetic source never
   * commits, and a buffering sink (Sink.flush: what `write` took is durable only then) held its output.
   */
  private async flushIfDue(): Promise<void> {
    if (this.clock.now() - this.lastFlush < this.commitInterval) return;
    await this.exclusive(() => this.flushSinks());
  }

  /**
   * Sends a watermark to the global stages; the end of input (Infinity) to every partition task too.
   * Scale-out: a finite one may be held back by the tasks (passGlobalWatermark).
   */
  private emitWatermark(time: number): void {
    const mark = watermark(time);
    if (time === Infinity) {
      for (const task of this.tasks.values()) {
        task.changes++;
        task.input.next(mark);
      }
    } else if (this.scaleOut) {
      this.passGlobalWatermark();
      return;
    }
    this.globalWatermark = time;
    this.input.next(mark);
  }

  /**
   * Scale-out: the global stages' watermark is the sources', held back to the watermark a partition
   * task's stages passed on where that is below the one it got (a sessionizer after a far-future
   * event): as in a fused run, a stage after a holding one never sees a later time than it passed. Run
   * after each batch, whether the sources' moved or not: such a task moves its own with its records.
   * A task of a partition the source says is idle (Source.idlePartitions) holds nothing, by the rule
   * advanceWatermark applies to an idle source: one quiet partition held the global stages of every
   * partition for as long as it stayed quiet. Every task idle, they go no further than the most
   * advanced time a held task passed on, as the combined watermark follows the most advanced source
   * then: one held partition does not hand them the far-future time its stages hold back, nor does a
   * task that holds nothing, which passes on what it got, the far-future time an idle partition's
   * watermark follows (the Kafka source's). Active again, a held task holds again, as a source that
   * comes back does: the global stages' watermark never goes back, and waits at where it stands until
   * the task's own time passes it.
   */
  private passGlobalWatermark(): void {
    let time = this.emittedWatermark;
    let anyHeld = false;
    for (const task of this.tasks.values()) if (task.passed < task.watermark && task.passed < time) anyHeld = true;
    if (anyHeld) {
      const idle = this.idleTasks();
      let anyActive = false;
      let mostAdvancedHeld = -Infinity;
      for (const task of this.tasks.values()) {
        const held = task.passed < task.watermark && task.passed < this.emittedWatermark;
        if (held && task.passed > mostAdvancedHeld) mostAdvancedHeld = task.passed;
        if (idle.has(task)) continue;
        anyActive = true;
        if (held && task.passed < time) time = task.passed;
      }
      if (!anyActive && mostAdvancedHeld < time) time = mostAdvancedHeld;
    }
    if (!(time > this.globalWatermark)) return;
    this.globalWatermark = time;
    this.input.next(watermark(time));
  }

  /**
   * Scale-out: the tasks whose every partition its source says is idle (Source.idlePartitions, by each source's
   * own `idle_timeout`); without that method, none.
   */
  private idleTasks(): ReadonlySet<PartitionTask> {
    const idle = new Map(this.scaleOut!.slots.map((slot) => [slot, slot.source.idlePartitions?.()]));
    const tasks = new Set<PartitionTask>();
    for (const task of this.tasks.values()) if (task.members.every((member) => idle.get(member.slot)?.has(member.id) === true)) tasks.add(task);
    return tasks;
  }

  /**
   * Scale-out: each partition task gets its own partition's watermark as it advances; a task of several
   * sources the least of its partitions', as a Kafka Streams task's stream time: a partition idle by its
   * source's `idle_timeout` holds it no longer (the greatest of them, every one idle).
   */
  private advanceTaskWatermarks(): void {
    const marks = new Map(this.scaleOut!.slots.map((slot) => [slot, slot.source.partitionWatermarks!()]));
    const idle = this.scaleOut!.slots.length > 1 ? new Map(this.scaleOut!.slots.map((slot) => [slot, slot.source.idlePartitions?.()])) : undefined;
    for (const task of this.tasks.values()) {
      let mark: number | undefined;
      if (task.members.length === 1) mark = marks.get(task.members[0]!.slot)!.get(task.members[0]!.id);
      else {
        let active: number | undefined;
        let all: number | undefined;
        for (const member of task.members) {
          const own = marks.get(member.slot)!.get(member.id);
          if (own === undefined) continue;
          all = all === undefined ? own : Math.max(all, own);
          if (idle!.get(member.slot)?.has(member.id) !== true) active = active === undefined ? own : Math.min(active, own);
        }
        // A member none is known of yet (not read: its source's watermark of it not kept) holds nothing either.
        mark = active ?? all;
      }
      if (mark === undefined || !Number.isFinite(mark) || mark <= task.watermark) continue;
      task.watermark = mark;
      task.changes++;
      task.input.next(watermark(mark));
    }
  }

  /** A source's own watermark: the source's where it keeps one (per partition), else its latest event time less max_out_of_orderness. */
  private sourceWatermarkOf(slot: SourceSlot): number {
    return slot.source.watermark ? slot.source.watermark() : slot.maxTime - slot.maxOutOfOrderness;
  }

  /** Idle: the pipeline waits on it for its next batch, and none came for its idle_timeout. It holds no watermark back. */
  private isIdle(slot: SourceSlot, now: number): boolean {
    return slot.waiting && now - slot.lastActivity >= slot.idleTimeout;
  }

  /** The combined watermark: minimum over sources that are neither drained nor idle. */
  private advanceWatermark(): void {
    // Whatever moved it (a batch, a source idle or drained) may let a source held for alignment read on.
    for (const resolve of this.alignmentWaiters.splice(0)) resolve();
    if (this.scaleOut) this.advanceTaskWatermarks();
    const now = this.clock.now();
    let combined = Infinity;
    let anyActive = false;
    for (const slot of this.sources) {
      if (slot.done) continue;
      if (this.isIdle(slot, now)) continue;
      anyActive = true;
      const own = this.sourceWatermarkOf(slot);
      if (own < combined) combined = own;
    }
    if (!anyActive) {
      // Every live source is idle: the watermark follows the most advanced source, as Flink's idleness does;
      // a drained one counts (its events are all in), or an idle source would hold back what it moved.
      // One that keeps its own watermark (per partition) says where it stands: a partition with records
      // still to read holds it back, though the source as a whole gave nothing for a while.
      combined = -Infinity;
      for (const slot of this.sources) combined = Math.max(combined, !slot.done && slot.source.watermark ? slot.source.watermark() : slot.maxTime - slot.maxOutOfOrderness);
      if (combined === -Infinity) return;
    }
    if (combined > this.emittedWatermark && Number.isFinite(combined)) {
      this.emittedWatermark = combined;
      this.stats.watermark = combined;
      this.emitWatermark(combined);
    } else if (this.scaleOut) this.passGlobalWatermark();
  }

  /** Pumps held for watermark alignment, woken at each advanceWatermark (a batch, the idle timer, a source drained). */
  private alignmentWaiters: Array<() => void> = [];

  /**
   * Watermark alignment (watermark.max_drift), as Flink's withWatermarkAlignment: a source whose watermark is
   * further than its max_drift ahead of the slowest other source is not read on until that one catches up.
   * The combined watermark is their minimum: what the source read ahead waits in the stages (a sessionizer's
   * buffers), and once the slow one's first batch came the watermark jumped over all of it at once: two files
   * (clicks, orders) made every churn prediction of 13 days before the model learnt one label.
   * Only live sources hold it: a drained or idle one (idle_timeout) does not, as it holds no watermark
   * back; one held here is not idle (the pipeline does not wait on it). The slowest source is never held
   * (nothing is below it), so the sources cannot all wait on one another. Resolves at once when not ahead.
   */
  private async alignmentWait(slot: SourceSlot, signal: AbortSignal, held: { pauses: Counter; seconds: Counter }): Promise<void> {
    if (!Number.isFinite(slot.maxDrift) || this.sources.length < 2) return;
    let pausedAt: number | undefined;
    for (;;) {
      if (signal.aborted || this.failure) return;
      const now = this.clock.now();
      let slowest = Infinity;
      let slowestLabel = '';
      for (const other of this.sources) {
        if (other === slot || other.done || this.isIdle(other, now)) continue;
        const mark = this.sourceWatermarkOf(other);
        if (mark < slowest) {
          slowest = mark;
          slowestLabel = other.label;
        }
      }
      const own = this.sourceWatermarkOf(slot);
      if (!(own > slowest + slot.maxDrift)) break;
      if (pausedAt === undefined) {
        pausedAt = performance.now();
        held.pauses.inc();
        this.logger.debug({ stage: slot.label, watermark: own, slowest: slowestLabel, slowestWatermark: slowest, maxDrift: slot.maxDrift }, 'source ahead of the others by more than watermark.max_drift: held until they catch up');
      }
      let onAbort!: () => void;
      await new Promise<void>((resolve) => {
        onAbort = resolve;
        this.alignmentWaiters.push(resolve);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      // One listener per wait would pile up on the run's signal over a long run.
      signal.removeEventListener('abort', onAbort);
    }
    if (pausedAt !== undefined) held.seconds.inc((performance.now() - pausedAt) / 1000);
  }

  private readonly heapBudget: number | undefined;
  private readonly heapWaitMs: number;
  private heapPauses = 0;
  private heapOverruns = 0;
  /** Set when a pause outlasted `heap_wait`: the run goes on over budget until the heap is back under it. */
  private overHeapBudget = false;

  /**
   * Above the heap budget the sources wait (counted, logged) for in-flight work to drain, for up to
   * `heap_wait`. What is left after that is state, which shrinks only as event time advances, and that
   * needs input: waiting longer would stall the run for good, so it goes on over budget, loudly.
   */
  private async waitForHeap(): Promise<void> {
    const budget = this.heapBudget!;
    this.heapPauses++;
    this.logger.warn({ heapUsed: getHeapStatistics().used_heap_size, budget, pauses: this.heapPauses }, 'heap above budget: sources paused');
    const started = performance.now();
    // Garbage counts as used until a collection: where the process exposes gc (`tributary` does), measure live data.
    const collect = (globalThis as { gc?: () => void }).gc;
    let collectedAt = -Infinity;
    for (;;) {
      if (this.options.signal?.aborted) return;
      const waited = performance.now() - started;
      if (collect && waited - collectedAt >= 1000) {
        collect();
        collectedAt = waited;
      }
      const used = getHeapStatistics().used_heap_size;
      if (used <= budget) {
        this.logger.info({ pausedMs: Math.round(waited), heapUsed: used, budget }, 'heap below budget: sources resumed');
        return;
      }
      if (waited >= this.heapWaitMs) {
        this.heapOverruns++;
        this.overHeapBudget = true;
        this.logger.error(
          { heapUsed: used, budget, pausedMs: Math.round(waited), overruns: this.heapOverruns },
          'heap still above heap_budget after heap_wait: the state itself needs more; running over budget (raise heap_budget, or lower max_open_sessions / max_users)',
        );
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(100, this.heapWaitMs)));
    }
  }

  /** Whether the sources must wait for the heap first (see waitForHeap). */
  private heapAboveBudget(): boolean {
    if (this.heapBudget === undefined) return false;
    const above = getHeapStatistics().used_heap_size > this.heapBudget;
    if (this.overHeapBudget && !above) {
      this.overHeapBudget = false;
      this.logger.info({ budget: this.heapBudget }, 'heap back under heap_budget');
    }
    return above && !this.overHeapBudget;
  }

  /**
   * Whether every source acknowledges its input (Source.commit: Kafka's committed offsets), so that a
   * new run resumes where this one acknowledged, checkpoint or not. False until the sources are built.
   */
  get sourcesAcknowledge(): boolean {
    return this.sources.length > 0 && this.sources.every((slot) => slot.source.commit !== undefined);
  }

  /** Whether this pipeline is restored, built and reaching its sources and sinks (for /readyz). */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    // Failed: draining and closing, or (a daemon of several pipelines) waiting for the others to stop.
    if (this.failure) reasons.push(`failed: ${this.failure.message}`);
    // Told to stop (the daemon's SIGTERM): draining until the process exits, no longer running.
    else if (this.options.signal?.aborted) reasons.push('stopping');
    else if (!this.started) reasons.push('starting');
    // Until the next one is written: a restart would replay all since the last, and Kafka offsets go uncommitted meanwhile.
    if (this.failingCheckpoints && !this.failure) reasons.push(this.failingCheckpointsReason(this.failingCheckpoints));
    for (const slot of this.sources) this.healthOf(slot.label, slot.source, reasons);
    // The dead-letter sink too: bad input it cannot write would fail the run (a Kafka dead-letter topic out of reach).
    for (const { label, sink } of this.allSinks()) if (sink) this.healthOf(label, sink, reasons);
    for (const [label, wait] of this.sinkWaits) {
      // A sink that says why it is not ready (a Kafka broker out of reach) is named by that already.
      if (this.stalled(wait) && !reasons.some((reason) => reason.startsWith(`${label}: `))) reasons.push(this.stallReason(label, wait));
    }
    return { ready: reasons.length === 0, reasons };
  }

  /**
   * Sinks' writes (the wait for their room) and flushes pending now, by label: the first one's kind and
   * start (wall clock), how many are pending (sources wait on one sink's room together), and whether
   * the stall was said (past sinkStallMs: /readyz names it, the warning was logged).
   */
  private readonly sinkWaits = new Map<string, SinkWait>();

  /** The pipeline's `settings.sink_stall_timeout` (SINK_STALL_MS by default). */
  private readonly sinkStallMs: number;

  /**
   * `promise` (a sink's room, or its flush), unless the run fails first (untilFailed), timed: pending past
   * sinkStallMs, the sink is stalled (a hung NFS mount, a FIFO whose reader stopped reading, a service
   * that never answers) until it settles. The run goes on waiting: nothing failed, and the sink may move again.
   */
  private async awaitSink<T>(label: string, sink: Sink, what: SinkWait['what'], promise: Promise<T>): Promise<T> {
    let wait = this.sinkWaits.get(label);
    if (wait === undefined) {
      const begun: SinkWait = { what, since: Date.now(), pending: 0, said: false, timer: undefined };
      const check = (): void => {
        // Not said while the sink says itself why it is not ready (a broker outage): looked at again a bound later.
        const said: string[] = [];
        this.healthOf(label, sink, said);
        if (said.length > 0) {
          begun.timer = setTimeout(check, this.sinkStallMs).unref();
          return;
        }
        begun.said = true;
        this.logger.warn(
          { stage: label, waiting: what, since: new Date(begun.since).toISOString() },
          `${this.stallReason(label, begun)}: the pipeline is held back until it returns (a hung network mount, a FIFO whose reader stopped reading, a service that does not answer); /readyz says not ready meanwhile`,
        );
      };
      begun.timer = setTimeout(check, this.sinkStallMs).unref();
      this.sinkWaits.set(label, (wait = begun));
    }
    wait.pending++;
    try {
      return await this.untilFailed(promise);
    } finally {
      if (--wait.pending === 0) {
        clearTimeout(wait.timer);
        this.sinkWaits.delete(label);
        if (wait.said) this.logger.info({ stage: label, stalledMs: Date.now() - wait.since }, `${label} moved again, after its ${wait.what} was pending ${((Date.now() - wait.since) / 1000).toFixed(1)} s`);
      }
    }
  }

  private stalled(wait: SinkWait): boolean {
    return Date.now() - wait.since >= this.sinkStallMs;
  }

  private stallReason(label: string, wait: SinkWait): string {
    return `${label}: stalled: its ${wait.what} has not returned since ${new Date(wait.since).toISOString()} (over ${this.sinkStallMs / 1000} s)`;
  }

  /** Plugins whose health() threw, logged once each (/readyz may be probed every few seconds). */
  private readonly healthThrew = new Set<string>();

  /**
   * Adds a plugin's reason not to be ready. A health() that throws is not ready, named: called from
   * /readyz's handler, it otherwise ended the process with an uncaught exception, undrained. Something
   * plugins share (SourceHealth.shared) names itself, and is said once however many of them report it.
   */
  private healthOf(label: string, plugin: Source | Sink, reasons: string[]): void {
    try {
      const health = plugin.health?.();
      if (!health || health.ready) return;
      const reason = health.shared && health.detail !== undefined ? health.detail : `${label}: ${health.detail ?? 'not ready'}`;
      if (!health.shared || !reasons.includes(reason)) reasons.push(reason);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      reasons.push(`${label}: health() threw: ${message}`);
      if (!this.healthThrew.has(label)) {
        this.healthThrew.add(label);
        this.logger.error({ stage: label, err: error }, `${label}: health() threw: ${message}; the pipeline says it is not ready while it does`);
      }
    }
  }

  private started = false;

  /** Resolves once every sink and stage has room. */
  private async room(): Promise<void> {
    while (this.barrier) await this.barrier;
    if (this.heapAboveBudget()) await this.waitForHeap();
    for (const slot of this.sinks) {
      const ready = slot.sink.ready?.();
      if (ready) await this.awaitSink(slot.label, slot.sink, 'write', pluginReady('TRIB_ERR_SINK', slot.label, ready));
    }
    const deadReady = this.deadLetterSink.ready?.();
    if (deadReady) await this.awaitSink('the dead-letter sink', this.deadLetterSink, 'write', pluginReady('TRIB_ERR_SINK', 'the dead-letter sink', deadReady));
    for (const { label, operator } of this.operators) {
      const ready = operator.ready?.();
      if (ready) await this.untilFailed(pluginReady('TRIB_ERR_STAGE', label, ready));
    }
    for (const task of this.tasks.values()) {
      for (const { label, operator } of task.operators) {
        const ready = operator.ready?.();
        if (ready) await this.untilFailed(pluginReady('TRIB_ERR_STAGE', label, ready));
      }
    }
  }

  private async pump(slot: SourceSlot): Promise<void> {
    const signal = this.sourcesStop.signal;
    const counter = this.metrics
      .scoped({ pipeline: this.name, stage: slot.label })
      .counter('events_in_total', 'Events read from the source.');
    const scoped = this.metrics.scoped({ pipeline: this.name, stage: slot.label });
    const alignment = {
      pauses: scoped.counter('watermark_alignment_pauses_total', "Times the source was held for being further than its watermark.max_drift ahead of the slowest other source's watermark."),
      seconds: scoped.counter('watermark_alignment_held_seconds_total', 'Time the source was held for watermark alignment (watermark.max_drift).'),
    };
    // The idle clock starts at the first poll, not at the source's creation: a startup longer than
    // idle_timeout (a slow restore) would make every source idle at its first batch, and the first
    // source to deliver would move the watermark past the others' in-order events.
    slot.lastActivity = this.clock.now();
    slot.waiting = true;
    for await (const batch of untilStopped(slot.source.read(), signal)) {
      // An empty batch (a poll that found nothing, or input all dead-lettered: see Source.read) is no
      // activity: counted as one, a source polling an upstream with nothing to give never went idle, and
      // held the combined watermark for good. It pushes nothing, but waits for room (the dead-letter
      // sink's among it) before the next pull; its idle clock runs on from where it stood, less that wait.
      if (batch.length === 0) {
        slot.waiting = false;
        const held = this.clock.now();
        await this.room();
        slot.lastActivity += this.clock.now() - held;
        slot.waiting = true;
        await this.turnIfDue();
        if (signal.aborted) break;
        continue;
      }
      slot.waiting = false;
      this.batchesInHand++;
      try {
        // A batch that came while a checkpoint (or a commit) holds the sources waits for it: the position
        // it took does not cover this batch, so neither may the outputs it commits (exactly-once: they
        // belong in the next transaction, or a restart from that position writes them twice).
        while (this.barrier) await this.barrier;
        if (this.failure) break;
        let maxTime = slot.maxTime;
        // An absurd future timestamp must not drag the watermark ahead and make every later event late;
        // the operators dead-letter such events, the watermark just ignores them.
        const horizon = this.clock.now() + slot.maxAheadOfClock;
        const sampled = this.latency.begin();
        const erasureType = this.erasure?.event_type;
        for (let i = 0; i < batch.length; i++) {
          const event: ClickEvent = batch[i]!;
          // Not an event of the user's: it goes to no stage (a sessionizer would open a session for it) and moves no watermark.
          if (event.type === erasureType) {
            this.erase(event, slot.label);
            continue;
          }
          if (event.time > maxTime && event.time <= horizon) maxTime = event.time;
          this.push(event, slot.label);
        }
        slot.maxTime = maxTime;
        this.stats.eventsIn += batch.length;
        counter.inc(batch.length);
        this.advanceWatermark();
        // The watermark is inside the sample: stages that emit on it (session close) are measured too.
        if (sampled) this.latency.end();
      } finally {
        if (--this.batchesInHand === 0) for (const resolve of this.batchesInWaiters.splice(0)) resolve();
      }
      await this.room();
      if (!this.options.checkpoints) {
        if (slot.source.commit && this.clock.now() - slot.lastCommit >= this.commitInterval) await this.commitSource(slot);
        else await this.flushIfDue();
      } else this.checkpointIfDue();
      await this.alignmentWait(slot, signal, alignment);
      // Asked for the next batch from now on: the time the pipeline held it back is not the source's idleness.
      slot.lastActivity = this.clock.now();
      slot.waiting = true;
      await this.turnIfDue();
      if (signal?.aborted) break;
    }
  }

  /**
   * An erasure request (the `erasure` section's event type): every stage that holds the user's state, the
   * user's partition task's and the global ones, drops it (Operator.forget), between two records, so the
   * next checkpoint holds none of it. Counted as filtered (`<source>: erasure request`) and in
   * tributary_erasures_total, logged with the user as `log_user_id` says. One without a user id, or one
   * a stage's forget() failed on, is dead-lettered with why (replayable from there once mended).
   */
  private erase(event: ClickEvent, source: string): void {
    const settings = this.erasure!;
    const origin = originOf(event);
    const where = origin ? { origin } : {};
    const userId: unknown = event.userId;
    if (typeof userId !== 'string' || userId.trim() === '') {
      this.deadLetter(source, { reason: `erasure request (event type '${settings.event_type}') without a user id: nothing to erase`, raw: event, ...where });
      return;
    }
    let operators = this.operators;
    if (this.scaleOut) {
      const found = origin?.partitionId === undefined ? undefined : this.taskOfPartition.get(origin.partitionId);
      if (!found) return this.deadLetterNoTask(event, source);
      const { task, member } = found;
      // Its state changed, and the source's offset moved past the request: its next file is written (see PartitionTask).
      member.start = undefined;
      task.changes++;
      operators = [...task.operators, ...this.operators];
    }
    let dropped = 0;
    const failed: string[] = [];
    for (const { label, operator } of operators) {
      if (!operator.forget) continue;
      try {
        const count = operator.forget(userId);
        if (typeof count === 'number' && Number.isFinite(count)) dropped += count;
      } catch (error) {
        failed.push(`${label}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    const user =
      settings.log_user_id === 'clear' ? { user: userId } : settings.log_user_id === 'hashed' ? { user_sha256: createHash('sha256').update(userId).digest('hex').slice(0, 16) } : {};
    if (failed.length > 0) {
      // Part of the user's state may be left: the request is kept in the dead-letter sink, to replay once the stage is mended.
      this.deadLetter(source, { reason: `erasure request: a stage's forget() failed (${failed.join('; ')}): the user's state may be left there`, raw: event, ...where });
      this.logger.error({ ...user, source, failed }, 'erasure request failed in a stage: dead-lettered');
      return;
    }
    this.stats.filtered++;
    countByReason(this.stats.filteredByReason, `${source}: ${ERASURE_FILTERED}`, 1);
    this.erasures?.inc();
    this.logger.info({ ...user, source, dropped }, 'erasure request done: every stage dropped the user\'s state; the next checkpoint holds none of it');
  }

  /** Scale-out: a record of a partition this member holds no task of (not assigned here, or revoked already). */
  private deadLetterNoTask(event: ClickEvent, source: string): void {
    const origin = originOf(event);
    this.deadLetter(source, { reason: `scale_out: record of partition '${origin?.partitionId ?? '(none)'}', which has no task here`, raw: event, ...(origin ? { origin } : {}) });
  }

  /** When the sources' loops last let the event loop turn (turnIfDue), by the run's clock. */
  private lastTurnAt: number | undefined;

  /**
   * Lets the event loop turn once the sources' loops have run RUN_LOOP_TURN_MS since they last did so.
   * A source that never waits (a file in the page cache, synthetic at rate 0) hands over batch after
   * batch with only promises settling between them, so /healthz, /metrics, signals and timers waited for
   * a sink's full buffer (1-2 s at the daemon's start). Not after every batch: a turn costs throughput
   * (BENCHMARKS.md, "The run loop's turns"). While a checkpoint's file is written with the sources going
   * on, every TURN_MS, the length of one of its parts: the parts and the batches then share the thread
   * about evenly (at 50 ms against 10, a 45 MB checkpoint took 30-48 s on a loaded host, and the next
   * came that much later). By the run's clock, so a test can say when it is due; a clock stepped back turns at once.
   */
  private async turnIfDue(): Promise<void> {
    const now = this.clock.now();
    if (this.lastTurnAt === undefined) this.lastTurnAt = now;
    const since = now - this.lastTurnAt;
    if (since >= 0 && since < (this.checkpointUnderWay ? TURN_MS : RUN_LOOP_TURN_MS)) return;
    await nextTurn();
    this.lastTurnAt = this.clock.now();
  }

  /**
   * Lets a source acknowledge its input (Kafka offsets) once every sink holds the outputs durably.
   * Until checkpoints decide when (the daemon), this runs every `settings.commit_interval` and at the end.
   */
  private async commitSource(slot: SourceSlot): Promise<void> {
    await this.exclusive(async () => {
      const position = slot.source.position?.() ?? {};
      await this.flushSinks();
      await slot.source.commit!(position);
      slot.lastCommit = this.clock.now();
    });
  }

  /** A source's PluginContext.commitNow: a checkpoint where the run keeps them, else every source's commit. */
  private async commitNow(): Promise<void> {
    if (this.options.checkpoints) {
      await this.checkpoint();
      return;
    }
    for (const slot of this.sources) if (slot.source.commit) await this.commitSource(slot);
  }

  /**
   * Takes one consistent checkpoint: state and positions are taken synchronously between two
   * batches (every stage's snapshot() called at that instant), the snapshots built in parts (the
   * event loop turning between them: the daemon answers /healthz meanwhile), and the sinks flushed,
   * with the sources held at the barrier. Then, where no sink is transactional, the sources go on
   * while the state (copies of that instant) is serialised in parts and written; only once the file
   * is durable do the sources commit the positions of the barrier. Where a sink is transactional
   * (holdsSourcesUntilCommitted) they wait at the barrier until that commit, so no output is written
   * between flush and commit. One checkpoint at a time: one whose file is still being written goes first.
   */
  async checkpoint(): Promise<CheckpointInfo | undefined> {
    const config = this.options.checkpoints;
    if (!config) return undefined;
    while (this.checkpointUnderWay) await this.checkpointUnderWay.catch(() => undefined);
    const taking = this.takeCheckpoint(config);
    this.checkpointUnderWay = taking;
    try {
      return await taking;
    } finally {
      if (this.checkpointUnderWay === taking) this.checkpointUnderWay = undefined;
    }
  }

  /** The checkpoint under way, from its barrier until its file is written and its sources committed (or it failed). */
  private checkpointUnderWay: Promise<CheckpointInfo> | undefined;

  private async takeCheckpoint(config: NonNullable<RunOptions['checkpoints']>): Promise<CheckpointInfo> {
    const release = await this.holdSources();
    const began = this.clock.now();
    const started = performance.now();
    let sourcesHeldMs: number | undefined;
    let letGoAt: number | undefined;
    const letGo = (): void => {
      if (sourcesHeldMs !== undefined) return;
      sourcesHeldMs = performance.now() - started;
      letGoAt = this.clock.now();
      release();
      this.checkpointHeldSeconds?.observe(sourcesHeldMs / 1000);
    };
    try {
      const sources: Record<string, SourcePosition> = {};
      for (const slot of this.sources) if (slot.source.position) sources[slot.label] = slot.source.position();
      const counters: Record<string, unknown> = {};
      // Copied now: the maps go on counting while the body is serialised, the totals beside them would not.
      for (const name of carriedCounters) {
        const value = this.stats[name];
        counters[name] = typeof value === 'object' ? { ...value } : value;
      }
      const createdAt = new Date(this.clock.now()).toISOString();
      // The state of this instant, the partition tasks' too, whatever happens while it is serialised.
      const operators = takeSnapshots(this.operators);
      const partitions: { task: PartitionTask; offsets: TaskOffsets; changes: number; held: number | undefined; operators: TakenSnapshots }[] = [];
      // Lost (the group gave them to another member), the partitions' state is not saved: see Source.partitionsLost.
      const lost = this.scaleOut?.slots.some((slot) => slot.source.partitionsLost?.() === true) === true;
      if (lost) this.logger.warn({ partitions: [...this.tasks.keys()] }, 'checkpoint: this member lost its partitions (the group gave them to another member: its session or max.poll.interval expired) before it was told; their state is not saved, as their next owner may be saving its own');
      if (this.scaleOut && !lost) {
        const read = new Map(this.scaleOut.slots.map((slot) => [slot, slot.source.partitionOffsets!()]));
        for (const task of this.tasks.values()) {
          // Every partition whose state changed since its last file, read from or not: one that read
          // nothing still closes sessions as its watermark follows the others (idle_timeout), and
          // restored from its older file, a restart would close and write them again.
          const offsets = this.offsetsToSave(task, (member) => read.get(member.slot)!.get(member.id));
          if (offsets !== undefined) partitions.push({ task, offsets, changes: task.changes, held: heldOf(task), operators: takeSnapshots(task.operators) });
        }
      }
      // Copied at the barrier: a snapshot in parts settles its copy at once when a record reaches its
      // stage (PartedSnapshots), which would hold the event loop for all of those parts in one go. What
      // is left of one that says when it is copied (CopyingSnapshot: encoding its copies) runs while records flow.
      await Promise.all([operators, ...partitions.map((partition) => partition.operators)].flatMap(snapshotsCopied));
      // The outputs of everything before the barrier are durable before a file that holds its state is.
      await this.flushSinks();
      if (!this.holdsSourcesUntilCommitted()) letGo();
      const body = await serialiseBody({ pipeline: this.name, pipelineFile: this.pipelineFile, createdAt, sources, counters, stages: this.checkpointStages }, operators);
      const bodies: Buffer[][] = [];
      for (const { task, offsets, held, operators: taken } of partitions) bodies.push(await this.partitionBody(task, offsets, held, taken));
      for (const [i, { task, offsets, changes }] of partitions.entries()) {
        await this.writePartitionFile(task, offsets, bodies[i]!);
        task.saved = changes;
      }
      const written = await this.writing(config.store.write(body, this.retainedCheckpoints()));
      // The run failed while it was written: its sources are closed or closing, so nothing is committed.
      // The file stands (the sinks had flushed its outputs): a restart resumes from it where its sources
      // resume from the checkpoint, and from the one their upstream covers where they judge (covers).
      if (this.failure) throw this.failure;
      const marks = this.commitMarks(written);
      this.marksWritten.set(marks.checkpoint!, written.sequence);
      // The positions of the barrier, whatever the sources read since: what the file holds the state of.
      for (const slot of this.sources) if (slot.source.commit && sources[slot.label]) await slot.source.commit(sources[slot.label]!, marks);
      this.learnCovered(written.sequence, sources);
      letGo();
      const info: CheckpointInfo = { sequence: written.sequence, bytes: written.bytes, durationMs: performance.now() - started, sourcesHeldMs: sourcesHeldMs!, at: this.clock.now() };
      this.stats.lastCheckpoint = info;
      // Ready again (periodic, final, or a source's commitNow): the failures before it are no longer in a row.
      this.failingCheckpoints = undefined;
      this.checkpointSeconds?.observe(info.durationMs / 1000);
      this.logger.debug({ checkpoint: info, partitions: partitions.length }, 'checkpoint written');
      return info;
    } finally {
      letGo();
      // min_pause counts from here, the checkpoint written (or failed), as Flink's from one's completion (checkpointDueAt).
      this.lastCheckpointSpan = { began, letGo: letGoAt!, ended: this.clock.now() };
    }
  }

  /**
   * The files a checkpoint's commit goes with (Source.commit): the checkpoint just written, and (scale_out)
   * each held partition's newest file, written now or before (its state unchanged since).
   */
  private commitMarks(written: { sequence: number; sha256: string }): CommitMarks {
    const partitions = new Map<string, string>();
    for (const [id, { files }] of this.partitionFiles) {
      const mark = files.at(-1)?.mark;
      // By the sources' partition ids: each of a task's partitions commits with its file.
      if (mark !== undefined) for (const member of this.tasks.get(id)?.members ?? []) partitions.set(member.id, mark);
    }
    return { checkpoint: checkpointMark(written), ...(this.scaleOut ? { partitions } : {}) };
  }

  /**
   * With sources that judge checkpoints (Source.covers): the newest checkpoint they are known to cover,
   * and the one being asked about; pruning keeps both. Checkpoints written while transactions fail (a
   * broker outage holds each commit until it times out, and checkpoints go on meanwhile) are past the
   * committed offsets: pruned by age alone, they pushed out the covered one, and the restart found none
   * to resume from.
   */
  private coveredSequence: number | undefined;
  private coverAsked: number | undefined;
  /** The marks (checkpointMark) of the checkpoints this run wrote or resumed from, with their sequences, since the newest known covered. */
  private readonly marksWritten = new Map<string, number>();

  private retainedCheckpoints(): ReadonlySet<number> {
    const retained = new Set<number>();
    for (const sequence of [this.coveredSequence, this.coverAsked]) if (sequence !== undefined) retained.add(sequence);
    return retained;
  }

  /** Asks, off the barrier and one at a time, whether the sources cover a checkpoint just committed. */
  private learnCovered(sequence: number, sources: Record<string, SourcePosition>): void {
    const judges = this.sources.filter((slot) => slot.source.covers && sources[slot.label]);
    if (judges.length === 0 || this.coverAsked !== undefined) return;
    this.coverAsked = sequence;
    void (async () => {
      for (const slot of judges) if (!(await slot.source.covers!(sources[slot.label]!))) return;
      // At a position that did not move, a checkpoint whose commit failed is covered too: where the
      // sources store marks, the one their acknowledgement names is the one a restore takes.
      let named: number | undefined;
      for (const slot of judges) {
        if (!slot.source.committedMarks) return void (this.coveredSequence = sequence);
        let own: number | undefined;
        for (const mark of await slot.source.committedMarks(sources[slot.label]!)) {
          const written = this.marksWritten.get(mark);
          if (written !== undefined && (own === undefined || written > own)) own = written;
        }
        if (own === undefined) return void (this.coveredSequence = sequence);
        named = named === undefined ? own : Math.min(named, own);
      }
      this.coveredSequence = named;
      for (const [mark, written] of this.marksWritten) if (written < named!) this.marksWritten.delete(mark);
    })()
      // Not known (the run stopped, the brokers away): the one known before stays kept.
      .catch(() => undefined)
      .finally(() => {
        this.coverAsked = undefined;
      });
  }

  /**
   * Scale-out, each partition held here: the state files this member knows (the one it restored, those
   * it wrote since), oldest first, with the offset each covers; and `floor`, the sequence below which
   * the files are those the group had before this member got the partition.
   */
  private readonly partitionFiles = new Map<string, { floor: number; files: { sequence: number; offsets: TaskOffsets; mark: string }[] }>();

  /**
   * Writes a partition's state file. Beyond scale_out.keep it removes only files no member needs: the
   * folder is shared, and the restore takes the file of the greatest offset the group's committed offset
   * covers (newest on a tie). Removed: files below the floor (the group's committed offset only moves on
   * with files this member writes, each newer, at least as far on), and files this member knows. Kept:
   * its newest file that the committed offset covers (Source.committedOffsets), the one a restore needs;
   * its last file before this one, whose commit may still be under way; and every file of another
   * member written since this one got the partition (a member that had not yet noticed it lost it).
   */
  private async writePartitionFile(task: PartitionTask, offsets: TaskOffsets, body: Buffer[]): Promise<void> {
    const { id } = task;
    const held = this.partitionFiles.get(id) ?? { floor: 0, files: [] };
    const committed = new Map(task.members.map((member) => [member.slot.label, member.slot.source.committedOffsets?.().get(member.id)]));
    // Covered: every member's offset, as the restore judges it (a member the file names none of, while none is committed).
    const covers = (file: { offsets: TaskOffsets }): boolean =>
      [...file.offsets].every(([label, offset]) => (offset === undefined ? committed.get(label) === undefined : committed.get(label) !== undefined && offset <= committed.get(label)!));
    let covered: { sequence: number; offsets: TaskOffsets } | undefined;
    for (const file of held.files) if (covers(file) && (!covered || offsetsRank(file.offsets) >= offsetsRank(covered.offsets))) covered = file;
    const retain = new Set([covered?.sequence, held.files.at(-1)?.sequence].filter((sequence) => sequence !== undefined));
    const known = new Set(held.files.map((file) => file.sequence));
    const written = await this.writing(this.partitionStore(id).write(body, retain, (sequence) => sequence < held.floor || known.has(sequence)));
    const removed = new Set(written.removed);
    this.partitionFiles.set(id, { floor: held.floor, files: [...held.files.filter((file) => !removed.has(file.sequence)), { sequence: written.sequence, offsets, mark: checkpointMark(written) }] });
  }

  /** Checkpoint files being written (the pipeline's, the partitions'): see {@link writing}. */
  private readonly writes = new Set<Promise<unknown>>();

  /**
   * `write`, kept in {@link writes} until it settles: a run that fails while it goes on waits for it
   * before giving the folder up (run()). Released at once, the folder was another runner's (the
   * daemon's restart) while this file was put in place and the old ones pruned, the restarted run's
   * checkpoint among them.
   */
  private async writing<T>(write: Promise<T>): Promise<T> {
    this.writes.add(write);
    try {
      return await write;
    } finally {
      this.writes.delete(write);
    }
  }

  private checkpointSeconds: { observe(value: number): void } | undefined;
  private checkpointHeldSeconds: { observe(value: number): void } | undefined;
  private checkpointFailures: { inc(): void } | undefined;
  /**
   * The periodic checkpoints failed since the last one written: `inRow` every one, `counted` those
   * checkpoint.tolerable_failures counts (not those a broker outage left untaken); `last` the latest failure.
   */
  private failingCheckpoints: { inRow: number; counted: number; last: string } | undefined;

  /** RunOptions.lockWaitMs: 0 refuses another host's lock at once. */
  private get lockWaitMs(): number {
    return this.options.lockWaitMs ?? 0;
  }

  /** checkpoint.tolerable_failures: periodic checkpoints that may fail in a row before the run fails. */
  private get tolerableCheckpointFailures(): number {
    return this.options.checkpoints?.tolerableFailures ?? Infinity;
  }

  /** What /readyz says while periodic checkpoints fail: how many in a row, the limit where there is one, and the last failure (a store's names its folder). */
  private failingCheckpointsReason(failing: { inRow: number; last: string }): string {
    const limit = this.tolerableCheckpointFailures;
    const tolerated = Number.isFinite(limit) ? ` (checkpoint.tolerable_failures: ${limit})` : '';
    return `checkpoints failing: ${failing.inRow} in a row${tolerated}, last: ${failing.last}`;
  }

  /**
   * When the periodic checkpoints are due (clock time): the first `checkpoint.interval` after the run
   * began reading, then every interval on that grid (`next`: Infinity while one is queued or under way),
   * but not before `checkpoint.min_pause` after the previous one ended (checkpointDueAt).
   * Undefined without checkpoints, and once the sources ended (the final checkpoint is the run's own).
   */
  private checkpointSchedule: { from: number; intervalMs: number; next: number; minPauseMs: number; timer: NodeJS.Timeout | undefined } | undefined;

  /** When the last checkpoint (periodic, a source's commitNow) took the barrier and let go of it, by the run's clock. */
  private lastCheckpointSpan: { began: number; letGo: number; ended: number } | undefined;

  /** When the next periodic checkpoint is due: its time on the grid, or min_pause after the last one ended if that is later. */
  private checkpointDueAt(schedule: { next: number; minPauseMs: number }): number {
    return Math.max(schedule.next, (this.lastCheckpointSpan?.ended ?? -Infinity) + schedule.minPauseMs);
  }

  /** Whether a periodic checkpoint that took longer than checkpoint.interval was said (once a run). */
  private checkpointsOverIntervalSaid = false;

  /**
   * Starts the periodic checkpoint that is due, if one is. Asked between batches (pump), and by a timer
   * for sources waiting for input. A timer alone fires only when the event loop turns, which a source
   * that never waits (synthetic, a file in the page cache) leaves to a sink's full buffer: the demo's
   * first checkpoint came after its first 8,192 events, 2 s in, for a 1 s interval. Grid points passed
   * while one was taken are skipped, and one due within min_pause of the previous one's end waits for
   * it: with checkpoints about as long as the interval, the sources were held nearly all the time (the
   * long run: 6-7 s checkpoints every 5 s left 0.3 s between two).
   */
  private checkpointIfDue(): void {
    const schedule = this.checkpointSchedule;
    if (schedule === undefined || schedule.next === Infinity) return;
    const now = this.clock.now();
    if (schedule.next - now > schedule.intervalMs) {
      // The clock stepped back (NTP): the grid starts again from now, or checkpoints would stop for as long as the step.
      schedule.from = now;
      schedule.next = now + schedule.intervalMs;
    }
    // Likewise the pause: the previous one ended now at the latest.
    const span = this.lastCheckpointSpan;
    if (span !== undefined && span.ended > now) this.lastCheckpointSpan = { began: Math.min(span.began, now), letGo: Math.min(span.letGo, now), ended: now };
    if (now < this.checkpointDueAt(schedule)) return;
    schedule.next = Infinity;
    // Queued behind a barrier held now (a source's commitNow), if any: exclusive() waits for it.
    void this.periodicCheckpoint().finally(() => {
      if (this.checkpointSchedule !== schedule) return;
      const { from, intervalMs } = schedule;
      // From when it let go of the sources: batches may have gone through before this runs.
      const taken = this.lastCheckpointSpan;
      const ended = Math.min(taken?.ended ?? Infinity, this.clock.now());
      schedule.next = from + (Math.floor((ended - from) / intervalMs) + 1) * intervalMs;
      if (taken !== undefined && taken.ended - taken.began > intervalMs) this.sayCheckpointsOverInterval(taken.ended - taken.began, taken.letGo - taken.began, schedule);
      this.wakeForCheckpoint();
    });
  }

  /**
   * Once a run: a periodic checkpoint took longer than checkpoint.interval, so the state is too large
   * for the interval on this machine. Not a warning each time: it is the steady state of such a run,
   * which min_pause keeps processing; the duration of each is in tributary_checkpoint_duration_seconds, and
   * the time it held the sources in tributary_checkpoint_sources_held_seconds.
   */
  private sayCheckpointsOverInterval(tookMs: number, heldMs: number, schedule: { intervalMs: number; minPauseMs: number }): void {
    if (this.checkpointsOverIntervalSaid) return;
    this.checkpointsOverIntervalSaid = true;
    const bytes = this.stats.lastCheckpoint?.bytes;
    this.logger.info(
      { checkpointMs: Math.round(tookMs), sourcesHeldMs: Math.round(heldMs), intervalMs: schedule.intervalMs, minPauseMs: schedule.minPauseMs, ...(bytes === undefined ? {} : { bytes }) },
      `a periodic checkpoint took ${formatDuration(tookMs)} (${bytes === undefined ? 'its size unknown' : `${(bytes / 1_000_000).toFixed(1)} MB`}), longer than checkpoint.interval (${durationText(schedule.intervalMs)}), ` +
        `and held the sources ${formatDuration(heldMs)} of it; checkpoint.min_pause (${durationText(schedule.minPauseMs)}) is the least time between the end of one and the start of the next. ` +
        'To give it more: a longer checkpoint.interval, a longer checkpoint.min_pause, or less state in the stages. Said once; tributary_checkpoint_duration_seconds has each one, tributary_checkpoint_sources_held_seconds the time each held the sources',
    );
  }

  /** Sets the timer for the next periodic checkpoint (none while one is under way: set again after it). */
  private wakeForCheckpoint(): void {
    const schedule = this.checkpointSchedule;
    if (schedule === undefined) return;
    clearTimeout(schedule.timer);
    schedule.timer = undefined;
    if (schedule.next === Infinity) return;
    // At least 1 ms: a timer may fire a millisecond before the clock says the checkpoint is due; it is then set again.
    schedule.timer = setTimeout(() => {
      this.checkpointIfDue();
      this.wakeForCheckpoint();
    }, Math.min(schedule.intervalMs, Math.max(1, this.checkpointDueAt(schedule) - this.clock.now())));
    schedule.timer.unref();
  }

  private endCheckpointSchedule(): void {
    clearTimeout(this.checkpointSchedule?.timer);
    this.checkpointSchedule = undefined;
  }

  /**
   * A periodic checkpoint, its failure logged, counted and held for /readyz until one is written; past
   * checkpoint.tolerable_failures in a row, the run fails with a failure a restart may mend (a full
   * disk may be freed by then): TRIB_ERR_CHECKPOINT would stop it for a person at once (exit 2), and a
   * folder gone read-only is found so by the restart's claim of it anyway.
   */
  private async periodicCheckpoint(): Promise<void> {
    try {
      await this.checkpoint();
    } catch (error) {
      this.checkpointFailures?.inc();
      const outage = inputHandedOver(error);
      const message = error instanceof Error ? error.message : String(error);
      // Not after the run's own failure (a checkpoint under way when it failed: said as that), nor in a
      // stop: its final checkpoint, to come, is what a stopping run stands or falls by.
      const counting = !this.failure && !this.options.signal?.aborted;
      if (counting) {
        const failing = this.failingCheckpoints ?? { inRow: 0, counted: 0, last: '' };
        this.failingCheckpoints = { inRow: failing.inRow + 1, counted: failing.counted + (outage ? 0 : 1), last: message };
      }
      // "The previous one stays" only where there is one: before this run's first checkpoint and without one it resumed from, a restart has none.
      const previous = this.stats.lastCheckpoint?.sequence ?? this.stats.resumedFrom ?? null;
      const stays = previous === null ? 'there is none yet to restart from' : 'the previous one stays';
      const inRow = counting ? { failuresInRow: this.failingCheckpoints!.inRow } : {};
      // One that only left its input uncommitted (a broker outage, whose sinks and sources say so
      // already and whose every checkpoint fails alike; a stop in one) is no error with a stack.
      // One line per failure, its message alone: a folder gone read-only fails every interval alike, and its
      // stack each time (was: every interval) said nothing new. The stack is at debug; the count is
      // tributary_checkpoint_failures_total (and _in_row, which failuresInRow says too).
      const code = error instanceof TributaryError ? { code: error.code } : {};
      if (outage) this.logger.warn({ ...code, err: message, previous, ...inRow }, `checkpoint not taken; ${stays}`);
      else {
        this.logger.error({ ...code, err: message, previous, ...inRow }, `checkpoint failed; ${stays}`);
        this.logger.debug({ err: error }, 'checkpoint failed: the failure with its stack');
      }
      const limit = this.tolerableCheckpointFailures;
      const counted = this.failingCheckpoints?.counted ?? 0;
      if (counting && counted > limit) {
        this.failWith(
          new TributaryError(
            'TRIB_ERR_CHECKPOINTS_FAILING',
            `checkpoints failed ${counted} time${counted === 1 ? '' : 's'} in a row, more than checkpoint.tolerable_failures (${limit}) allows; the last: ${message}`,
            { cause: error },
          ),
        );
      }
    }
  }

  /** Per-stage latency; made in run(), before any source or partition task can deliver a record. */
  private latency!: StageLatency;

  /**
   * Restores operators from a checkpoint's state (the main one, or a partition's). State is kept by
   * stage label (`stage-<type>-<index>` unless the entry sets `label`), so removing or inserting a
   * stage renames those after it: saved state that none of `operators` takes would be lost without
   * a word, and they would start empty. That is an error unless allowed; so is saved state a stage's
   * restore rejects (its config changed). Both stop the run for a person (TRIB_ERR_CHECKPOINT).
   */
  private async restoreOperators(
    operators: readonly { label: string; operator: Operator }[],
    saved: Record<string, unknown>,
    file: string,
    /** The stages the checkpoint records (CheckpointBody.stages), where it does: an orphan's type is known by them. */
    savedStages?: readonly CheckpointStage[],
  ): Promise<void> {
    const labels = new Set(operators.map((o) => o.label));
    const orphans = Object.keys(saved).filter((label) => !labels.has(label));
    if (orphans.length > 0 && this.options.allowNonRestoredState) {
      this.logger.warn({ file, dropped: orphans }, 'checkpoint state of stages no longer in the pipeline is dropped (--allow-non-restored-state)');
    } else if (orphans.length > 0) {
      throw new TributaryError(
        'TRIB_ERR_CHECKPOINT',
        `checkpoint ${file} holds state of ${orphans.join(', ')}, which no stage of the pipeline has now (its stages are ${[...labels].join(', ') || 'none'}). ` +
          'Stages are known by label, stage-<type>-<index> unless set: a stage added or removed before others renames them. ' +
          orphans.map((orphan) => this.renamedStageHint(orphan, labels, saved, savedStages)).join('') +
          'Undo the change, or give the stages the labels their state was saved under; --allow-non-restored-state drops that state.',
      );
    }
    for (const { label, operator } of operators) {
      const state = saved[label];
      if (state === undefined || !operator.restore) continue;
      // A large state takes a while: the event loop turns between stages (and between the parts of a
      // stage's restore that returns a promise), so the daemon answers /healthz meanwhile.
      await setImmediate();
      await restoreStage(operator, state, { label, where: this.stageWhere(label), checkpoint: file });
    }
  }

  /** Each feature name a stage declares it appends (featureNames), and that stage's label (PluginContext.featureOrigin): the first, where two do. */
  private get featureOrigins(): Map<string, string> {
    if (this.featureOriginsMade === undefined) {
      const origins = new Map<string, string>();
      for (const [i, resolved] of this.loaded.stages.entries()) {
        const appended = featureNamesOf(resolved.plugin, pluginConfig(resolved.entry) as never, { entry: resolved.path }) ?? [];
        for (const name of appended) if (!origins.has(name)) origins.set(name, entryLabel('stage', resolved.entry, i));
      }
      this.featureOriginsMade = origins;
    }
    return this.featureOriginsMade;
  }

  private featureOriginsMade: Map<string, string> | undefined;

  /** The stages as a checkpoint records them (CheckpointBody.stages); the config is fixed for the run. */
  private get checkpointStages(): CheckpointStage[] {
    this.stagesRecorded ??= this.loaded.stages.map((resolved, i) => {
      const config = pluginConfig(resolved.entry);
      const plugin = resolved.plugin;
      const appended = featureNamesOf(plugin, config as never, { entry: resolved.path });
      // A plugin that declares neither (an operator of one's own) may write features any way: checked as a transform.
      const features =
        plugin.featureSelectorField !== undefined ? 'selects' : appended !== undefined ? (appended.length > 0 ? 'appends' : undefined) : plugin.role === 'model' ? undefined : 'undeclared';
      // Redacted: a checkpoint is a file on disk, and a user's stage may hold a token (an enrichment API's); a
      // secret changed compares equal, which is right: it makes no feature. As JSON reads it back (NaN as null, no
      // undefined fields), so a config compares equal to its own record.
      const recorded = JSON.parse(JSON.stringify(redactSecrets(config)) ?? 'null') as unknown;
      return { label: entryLabel('stage', resolved.entry, i), type: resolved.entry.type, config: recorded, ...(features === undefined ? {} : { features }) };
    });
    return this.stagesRecorded;
  }

  private stagesRecorded: CheckpointStage[] | undefined;

  /** PluginContext.featureStagesChangedSince for the stage at `index`: the stages before it now against `saved`, a record of those before it then. */
  private featureStagesChangedBefore(index: number, saved: unknown): FeatureStageChange[] {
    const record = recordedStages(saved);
    if (record === undefined) return [];
    const found = featureStageChanges(record, this.checkpointStages.slice(0, index), (label) => this.stageWhere(label), this.keepsFeatureValues, this.appendedNames);
    return found.map(({ text, sameNamesOtherValues }) => ({ text, sameNamesOtherValues }));
  }

  /** Whether the stage now (`stage`, a record of this run's) configured as `before` recorded it makes each name it still makes as before (PluginSpec.keepsFeatureValues). */
  private readonly keepsFeatureValues = (stage: StageRecord, before: StageRecord): boolean => {
    const resolved = this.loaded.stages.find((each, i) => entryLabel('stage', each.entry, i) === stage.label);
    return resolved !== undefined && keepsFeatureValuesOf(resolved.plugin, before.config, pluginConfig(resolved.entry) as never, { entry: resolved.path });
  };

  /**
   * The feature names a stage of that record (`stage`: this run's, or one a checkpoint or model file records) appends: its
   * type's featureNames with its recorded config, where a stage of that type is in the pipeline now. Undefined where none
   * is, or the recorded config is of a shape the plugin's featureNames cannot read (a record is JSON from a file, and
   * what it says of names only informs: the change is then said without them).
   */
  private readonly appendedNames = (stage: StageRecord): readonly string[] | undefined => {
    const resolved = this.loaded.stages.find((each) => each.entry.type === stage.type);
    if (resolved === undefined) return undefined;
    try {
      return featureNamesOf(resolved.plugin, stage.config as never, { entry: resolved.path });
    } catch {
      return undefined;
    }
  };

  /** Whether a checkpoint without a record of its stages was said (once a run: every file before 2026-12-07 is one). */
  private saidUnrecorded = false;
  /** The lines of feature stages changed that were said, by their kind, changes and resumed stages: a partition's file saying the same is not said again. */
  private readonly saidStageChanges = new Set<string>();

  /**
   * Says which resumed stages were built on features made otherwise since a checkpoint (the pipeline's, or a
   * partition's file: `of` says which): a stage that appends or selects features (or declares neither) added, removed,
   * moved or configured otherwise before them. A model reads its features by name, so a name kept whose values changed
   * (a hash-features' fields or width, a log1p's, clip's or standardize's selection) gets the weights learnt for the
   * old values: no name tells, so the runtime does, in a warning. A warning, not a refusal: many such edits are meant (a
   * feature standardised too), and the way out (new labels) drops the state the person may want to keep, the model's
   * weights for the features made as before among it. Changes that only add or drop names (a stage that appends
   * added or removed, a user-features horizon added, removed or changed) make no kept name otherwise: said apart, as info, naming the
   * names, since the model grows weights for the added ones and nothing needs doing.
   */
  private sayFeatureStagesChanged(checkpoint: { file: string; stages?: unknown; operators: Record<string, unknown> }, of: 'checkpoint' | 'partition checkpoint' = 'checkpoint'): void {
    const saved = recordedStages(checkpoint.stages);
    if (saved === undefined) {
      // Written before checkpoints recorded their stages: nothing to compare, which the person should know.
      if (!this.saidUnrecorded) {
        this.logger.info(
          { file: checkpoint.file },
          `${of} ${checkpoint.file} records no stages (written before 2026-12-07): edits to the pipeline's stages since it was taken are not checked on this resume; the next checkpoint records them`,
        );
      }
      this.saidUnrecorded = true;
      return;
    }
    const now = this.checkpointStages;
    const found = featureStageChanges(saved, now, (label) => this.stageWhere(label), this.keepsFeatureValues, this.appendedNames);
    const otherValues = found.filter((change) => change.sameNamesOtherValues);
    // A change that adds and drops no name (user-features' max_users: which users are remembered, not how a feature is made) is no change of the features.
    const namesOnly = found.filter((change) => !change.sameNamesOtherValues && !(change.added?.length === 0 && change.gone?.length === 0));
    const resumedAfter = (changes: readonly FoundStageChange[]): string[] => {
      if (changes.length === 0) return [];
      const first = Math.min(...changes.map((change) => change.from));
      return now.filter((stage, i) => i >= first && checkpoint.operators[stage.label] !== undefined).map((stage) => stage.label);
    };
    /** Whether these changes and resumed stages were said already (a partition's file saying the same as another's); notes them as said. */
    const saidBefore = (kind: string, changes: readonly string[], resumed: readonly string[]): boolean => {
      const said = JSON.stringify([kind, changes, resumed]);
      if (this.saidStageChanges.has(said)) return true;
      this.saidStageChanges.add(said);
      return false;
    };
    const resumed = resumedAfter(otherValues);
    const changes = otherValues.map((change) => change.text);
    if (resumed.length > 0 && !saidBefore('other values', changes, resumed)) {
      const undeclared = [...new Set(otherValues.filter((change) => change.stage.features === 'undeclared').map((change) => change.stage.type))];
      this.logger.warn(
        { file: checkpoint.file, changes, resumed },
        `${of} ${checkpoint.file}: stages that make or select features changed since it was taken (${changes.join('; ')}); ${resumed.join(', ')} ${resumed.length === 1 ? 'resumes' : 'resume'} with state built on the features as they were. ` +
          'A model reads its features by name: one whose name is kept but whose values are made otherwise now (a hash-features\' fields or width, a log1p\'s, clip\'s or standardize\'s selection) keeps the weights learnt for the old values. ' +
          (undeclared.length === 0
            ? ''
            : `(${undeclared.join(', ')}: its plugin declares neither featureNames nor featureSelectorField, so it is taken for one that may make features; a plugin that makes none declares \`featureNames: () => []\`.) `) +
          'If that is not what you want, give those stages new labels and run once with --allow-non-restored-state: they start afresh, the others resume',
      );
    }
    const growing = resumedAfter(namesOnly);
    const named = namesOnly.map((change) => change.text);
    if (growing.length === 0 || saidBefore('names only', named, growing)) return;
    const added = [...new Set(namesOnly.flatMap((change) => change.added ?? []))];
    const gone = [...new Set(namesOnly.flatMap((change) => change.gone ?? []))];
    // Names a plugin does not tell (a stage removed whose type no stage has now): said by the stage (the model's own line names them).
    const unnamed = (removed: boolean): string[] =>
      namesOnly.filter((change) => (removed ? change.gone : change.added) === undefined && now.includes(change.stage) !== removed).map((change) => change.stage.label);
    const [addedBy, goneOf] = [unnamed(false), unnamed(true)];
    const grows = added.length > 0 || addedBy.length > 0;
    const drops = gone.length > 0 || goneOf.length > 0;
    const what = [
      ...(added.length === 0 ? [] : [`features added: ${shownNames(added)}`]),
      ...(addedBy.length === 0 ? [] : [`the features of ${addedBy.join(', ')} added`]),
      ...(gone.length === 0 ? [] : [`features no longer made: ${shownNames(gone)}`]),
      ...(goneOf.length === 0 ? [] : [`the features of ${goneOf.join(', ')} no longer made`]),
    ];
    const only = grows && drops ? 'adding or dropping' : grows ? 'adding' : 'dropping';
    this.logger.info(
      { file: checkpoint.file, changes: named, resumed: growing, added, gone },
      `${of} ${checkpoint.file}: stages that append features changed since it was taken (${named.join('; ')}), only ${only} feature names: ${what.join('; ')}. ` +
        `${namesOnly.length === 1 ? 'It makes' : 'They make'} no kept feature otherwise: ${growing.join(', ')} ${growing.length === 1 ? 'resumes' : 'resume'} with ${growing.length === 1 ? 'its' : 'their'} state as it is, ` +
        'a model keeping its weights for the features kept' +
        (grows ? ' and growing a weight for each added one, from 0 (it predicts as before until it learns them)' : '') +
        (drops ? '; the model says what it does with the features no longer made' : ''),
    );
  }

  /** ` (FILE:LINE:COL, $.stages[i], TYPE)` (` (FILE, ...)` for a stage composed in code; ` (FILE, ..., TYPE; from --set ...)` for one a --set gave: placeText): where the stage labelled `label` is in the pipeline file, for messages; '' if none is. */
  private stageWhere(label: string): string {
    const index = this.loaded.stages.findIndex((resolved, i) => entryLabel('stage', resolved.entry, i) === label);
    const resolved = this.loaded.stages[index];
    if (resolved === undefined) return '';
    return ` (${placeText(this.loaded.file, resolved.locate?.('') ?? resolved, [resolved.path, resolved.entry.type])})`;
  }

  /**
   * For saved state that no stage takes, under a default label (`stage-<type>-<index>`) or one the checkpoint
   * records the type of (`savedStages`): the stages of that type now under another label without saved state,
   * most likely the one renamed (its `label` edited, or a stage added or removed before it), and the `label`
   * that gives it its state back.
   */
  private renamedStageHint(orphan: string, labels: ReadonlySet<string>, saved: Record<string, unknown>, savedStages?: readonly CheckpointStage[]): string {
    // A label set in the file tells no type; the checkpoint's record of its stages does (checkpoints since 2026-12-07).
    const record = recordedStages(savedStages)?.find((stage) => stage.label === orphan);
    const type = record?.type ?? /^stage-(.+)-\d+$/.exec(orphan)?.[1];
    if (type === undefined) return '';
    const candidates = this.loaded.stages
      .map((resolved, i) => ({ resolved, label: entryLabel('stage', resolved.entry, i) }))
      .filter(({ resolved, label }) => resolved.entry.type === type && labels.has(label) && saved[label] === undefined);
    if (candidates.length === 0) return `No ${type} stage is left to take the state of ${orphan}. `;
    const where = candidates.map(({ label }) => `${label}${this.stageWhere(label)}`).join(' or ');
    // Saved under other settings (a rollback of the pipeline file to before a stage was edited and relabelled): the label
    // alone may not resume it (its restore refuses state that does not fit), so the way that drops it is said at once.
    const now = candidates.length === 1 ? this.checkpointStages.find((stage) => stage.label === candidates[0]!.label) : undefined;
    const differences = record === undefined || now === undefined ? [] : configDifferences(record.config, now.config);
    const otherwise =
      differences.length === 0
        ? ''
        : ` Its state was saved under other settings (${differences.join(', ')}): where it does not fit them (after a rollback of the pipeline file to before that stage was edited), --allow-non-restored-state drops it and that stage starts afresh, the others resuming; or restore the checkpoint folder copied before the edit.`;
    return `The state of ${orphan} is likely that of ${where}: set \`label: ${orphan}\` on it to resume it.${otherwise} `;
  }

  /** The newest intact checkpoint, read before the plugins are made: with one, the run resumes (sinks append). */
  private async newestCheckpoint(): Promise<Checkpoint | undefined> {
    const config = this.options.checkpoints;
    if (!config) return undefined;
    const latest = await config.store.latest(this.unusableCheckpoint);
    if (!latest) {
      this.logger.info({ dir: config.store.dir }, 'no checkpoint: starting with empty state, each source where it starts without one (a file at its first line, a consumer group at its committed offsets)');
      return undefined;
    }
    this.resuming = true;
    return latest;
  }

  private readonly unusableCheckpoint = (file: string, reason: string): void => this.logger.warn({ file, reason }, `checkpoint ${file} is unusable (${reason}); trying the one before`);

  /**
   * The checkpoint to resume from: the newest one every source that resumes from its upstream's
   * acknowledged position covers (Source.covers). One past it (an exactly-once transaction that failed
   * after its checkpoint was written) would put the input it read in the state twice: that input is read
   * again from the committed offsets. Asked once every sink and stage is open.
   */
  private async coveredCheckpoint(newest: Checkpoint): Promise<Checkpoint | undefined> {
    const judges = this.sources.filter((slot) => slot.source.covers);
    if (judges.length === 0) return newest;
    const marked = await this.markedCheckpoint(newest, judges);
    const covered = async (checkpoint: Checkpoint): Promise<boolean> => {
      for (const slot of judges) {
        const position = checkpoint.sources[slot.label] as SourcePosition | undefined;
        let covers: boolean;
        try {
          covers = position === undefined || (await slot.source.covers!(position));
        } catch (cause) {
          if (cause instanceof TributaryError) throw cause;
          throw new TributaryError('TRIB_ERR_SOURCE', `${slot.label} could not say whether its upstream acknowledged the input of checkpoint ${checkpoint.file}: ${(cause as Error).message}`, { cause });
        }
        // Told to stop meanwhile: nothing is read, so any answer will do.
        if (this.options.signal?.aborted) return true;
        if (!covers) return false;
      }
      return true;
    };
    if (marked && marked.sequence !== newest.sequence && (await covered(marked))) {
      this.coveredSequence = marked.sequence;
      this.logger.warn(
        { file: newest.file, resumedFrom: marked.file },
        `checkpoint ${newest.file} was written after the last commit its sources' upstream acknowledged, which names ${marked.file} (a transaction that failed after its checkpoint was written, or a process that ended before its commit): resuming from that one`,
      );
      return marked;
    }
    if (await covered(newest)) {
      this.coveredSequence = newest.sequence;
      return newest;
    }
    const older = await this.options.checkpoints!.store.latest(this.unusableCheckpoint, covered, newest.sequence);
    this.coveredSequence = older?.sequence;
    this.logger.warn(
      { file: newest.file, resumedFrom: older?.file ?? null },
      `checkpoint ${newest.file} holds input its sources' upstream never acknowledged (a transaction that failed after it was written); ` +
        (older ? `resuming from the one before it that is covered, ${older.file}` : 'no older checkpoint is covered: starting with empty state'),
    );
    return older;
  }

  /**
   * The checkpoint the sources' upstream says its last acknowledgement goes with (Source.committedMarks):
   * the newest of this folder's files their marks name, read back intact; undefined where a judge stores
   * no marks, names none of this folder's files, or the judges name different ones (then covers decides).
   */
  private async markedCheckpoint(newest: Checkpoint, judges: readonly SourceSlot[]): Promise<Checkpoint | undefined> {
    let agreed: Checkpoint | undefined;
    for (const slot of judges) {
      const position = newest.sources[slot.label] as SourcePosition | undefined;
      if (!slot.source.committedMarks || position === undefined) return undefined;
      let marks: readonly string[];
      try {
        marks = await slot.source.committedMarks(position);
      } catch (cause) {
        if (cause instanceof TributaryError) throw cause;
        throw new TributaryError('TRIB_ERR_SOURCE', `${slot.label} could not say which checkpoint its upstream's acknowledgement goes with: ${(cause as Error).message}`, { cause });
      }
      if (this.options.signal?.aborted) return undefined;
      let found: Checkpoint | undefined;
      for (const mark of new Set(marks)) {
        const checkpoint = await this.options.checkpoints!.store.marked(mark, this.unusableCheckpoint);
        if (checkpoint && (!found || checkpoint.sequence > found.sequence)) found = checkpoint;
      }
      if (!found || (agreed && agreed.sequence !== found.sequence)) return undefined;
      agreed = found;
    }
    return agreed;
  }

  /**
   * Scale-out: the partition file its committed offset's marks name (PartitionAssignment.marks), the
   * newest of them, read back intact and at an offset `committed` covers; undefined where none does.
   */
  private async markedPartitionFile(
    store: CheckpointStore,
    marks: readonly string[],
    covered: (checkpoint: Checkpoint) => boolean,
    unusable: (file: string, reason: string) => void,
  ): Promise<Checkpoint | undefined> {
    let found: Checkpoint | undefined;
    for (const mark of new Set(marks)) {
      const checkpoint = await store.marked(mark, unusable);
      if (checkpoint && covered(checkpoint) && (!found || checkpoint.sequence > found.sequence)) found = checkpoint;
    }
    return found;
  }

  /** Takes up a checkpoint's books (the counters carried across restarts) and says the run resumes from it. */
  private resumeFrom(checkpoint: Checkpoint): void {
    const writer = otherPipelineText(checkpoint, { pipeline: this.name, pipelineFile: this.pipelineFile });
    if (writer !== undefined) {
      this.logger.warn(
        { file: checkpoint.file, pipeline: checkpoint.pipeline, ...(checkpoint.pipelineFile === undefined ? {} : { pipelineFile: checkpoint.pipelineFile }) },
        `checkpoint ${checkpoint.file} was written by ${writer}: this run resumes its state and source positions. ` +
          'Two pipelines given one checkpoint folder resume each other\'s state and prune each other\'s checkpoints: if this is another pipeline (a copy of that file), stop it and give it its own name and checkpoint.dir; where it is that pipeline, its name or file changed since, nothing is to be done',
      );
    }
    for (const name of carriedCounters) if (checkpoint.counters[name] !== undefined) (this.stats as unknown as Record<string, unknown>)[name] = checkpoint.counters[name];
    this.stats.atResume = { eventsIn: this.stats.eventsIn, recordsOut: this.stats.recordsOut, deadLettered: this.stats.deadLettered, filtered: this.stats.filtered, late: this.stats.sideOutputs.late ?? 0 };
    this.stats.resumedFrom = checkpoint.sequence;
    this.marksWritten.set(checkpointMark(checkpoint), checkpoint.sequence);
    this.logger.info({ file: checkpoint.file, sequence: checkpoint.sequence }, 'resuming from checkpoint');
  }

  private registerRunMetrics(): void {
    const labels = { pipeline: this.name };
    const metrics = this.metrics;
    // This process's part of the books, from 0, as a counter must start after a restart: one that
    // resumed at its checkpoint's total went backwards after a kill -9 (the events since that
    // checkpoint are read again), and Prometheus, taking any drop for a reset to 0, counted the whole
    // total again in rate() and increase().
    const before = (): NonNullable<RunStats['atResume']> => this.stats.atResume ?? noBooks;
    metrics.observe('records_in_total', 'Events read from all sources, by this process.', labels, () => this.stats.eventsIn - before().eventsIn);
    metrics.observe('records_out_total', 'Records written to sinks, by this process.', labels, () => this.stats.recordsOut - before().recordsOut);
    metrics.observe('records_dead_lettered_total', 'Inputs sent to the dead-letter sink, by this process.', labels, () => this.stats.deadLettered - before().deadLettered);
    metrics.observe('records_filtered_total', 'Records dropped on purpose (counted, not lost), by this process.', labels, () => this.stats.filtered - before().filtered);
    metrics.observe('records_late_total', "Records sent to the 'late' side output, by this process.", labels, () => (this.stats.sideOutputs.late ?? 0) - before().late);
    metrics.observe('watermark_lag_seconds', 'Wall clock minus the event-time watermark.', labels, () =>
      Number.isFinite(this.stats.watermark) ? (this.clock.now() - this.stats.watermark) / 1000 : NaN,
    );
    metrics.observe('watermark_held_seconds', 'The event-time watermark minus the one the stages passed on to the sinks: above 0 while a stage holds it back.', labels, () =>
      Number.isFinite(this.stats.watermark) && Number.isFinite(this.stats.passedWatermark) ? (this.stats.watermark - this.stats.passedWatermark) / 1000 : NaN,
    );
    // Until this run's first checkpoint, its age counts from the run's start: a daemon whose checkpoints
    // fail from the first one shows a growing age (an alert can fire), not no sample at all. Once the run
    // drained its input (its final checkpoint written) no checkpoint is due: a folder run's drained
    // pipeline beside live ones showed an age growing for good, and the age alert fired on it.
    metrics.observe('checkpoint_age_seconds', 'Time since the last checkpoint was written (since the run started, before the first); no sample once the pipeline drained its input.', labels, () =>
      this.options.checkpoints && !this.stats.drained ? (this.clock.now() - (this.stats.lastCheckpoint?.at ?? this.stats.startedAt)) / 1000 : NaN,
    );
    this.checkpointFailures = metrics.scoped(labels).counter('checkpoint_failures_total', 'Periodic checkpoints that failed (the previous one stays).');
    // The count /readyz and the log's failuresInRow say, for alert rules: a broker outage's untaken ones too
    // (no checkpoint is written meanwhile either), though checkpoint.tolerable_failures passes over those.
    metrics.observe('checkpoint_failures_in_row', 'Periodic checkpoints that failed since the last one written (0 once one is).', labels, () =>
      this.options.checkpoints ? (this.failingCheckpoints?.inRow ?? 0) : NaN,
    );
    metrics.observe('checkpoint_bytes', 'Size of the last checkpoint.', labels, () => this.stats.lastCheckpoint?.bytes ?? NaN);
    for (const { label } of this.allSinks()) {
      // The dead-letter sink by its plugin's label (as its own series are), not by how /readyz says it.
      const stage = label === 'the dead-letter sink' ? entryLabel('dead-letter', this.loaded.deadLetter.entry, 0) : label;
      metrics.observe('sink_stalled_seconds', "Seconds the sink's pending write or flush has not returned, once it is stalled (pending over the pipeline's sink_stall_timeout, a minute by default: /readyz names it); 0 while it moves.", { pipeline: this.name, stage }, () => {
        const wait = this.sinkWaits.get(label);
        return wait !== undefined && this.stalled(wait) ? (Date.now() - wait.since) / 1000 : 0;
      });
    }
    this.checkpointSeconds = metrics.scoped(labels).histogram('checkpoint_duration_seconds', 'Time to take and write one checkpoint.', [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10]);
    this.checkpointHeldSeconds = metrics
      .scoped(labels)
      .histogram('checkpoint_sources_held_seconds', "Time one checkpoint held the sources: its snapshots and the sinks' flush (all of it with a transactional sink or scale_out).", [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10]);
  }

  /** Runs to the end of the input, or until the signal stops it. Rejects on a runtime failure. */
  async run(): Promise<RunStats> {
    // The checkpoint folder is this run's alone (locked): two daemons given one would overwrite each other's checkpoints.
    const store = this.options.checkpoints?.store;
    try {
      // No wait (0): refused at once, as claim() is.
      if (store && !(await store.claimWaiting(this.name, this.logger, { ms: this.lockWaitMs, ...(this.options.signal ? { signal: this.options.signal } : {}) }))) {
        this.logger.info({ dir: store.dir }, 'stopped while waiting for the checkpoint folder another host\'s process holds: nothing was read or written');
        this.stats.elapsedMs = this.clock.now() - this.stats.startedAt;
        this.ended = true;
        return this.stats;
      }
      // The wait for the folder is no part of the run: a summary's events/s over it read 19 after a 10 s wait.
      if (store) this.stats.startedAt = this.clock.now();
      try {
        return await this.runWithCheckpointsClaimed();
      } finally {
        // A checkpoint file being written when the run failed (writing): file system work alone, so unbounded.
        await Promise.allSettled([...this.writes]);
        store?.release();
      }
    } finally {
      this.forgetSignal();
    }
  }

  private async runWithCheckpointsClaimed(): Promise<RunStats> {
    // As `validate` and loadPipeline check a file: a pipeline composed in code gets the same checks (schemas, checkPipeline).
    const warnings: ConfigProblem[] = [];
    const problems = loadedPipelineProblems(this.loaded, warnings);
    // Known only here (a checkpoint section, or the daemon's --checkpoint-dir): a config error all the same, which no restart mends.
    if (this.loaded.document.scale_out && !this.options.checkpoints) {
      const at = this.loaded.locate?.('scale_out');
      problems.push({ file: this.loaded.file, ...problemPlace(at, "scale_out needs checkpoints (a checkpoint section, or the daemon's --checkpoint-dir): partition state is saved with them"), path: '$.scale_out' });
    }
    if (problems.length > 0) throw new ConfigError(problems);
    const heapLimit = getHeapStatistics().heap_size_limit;
    // A budget at or above V8's own limit never pauses anything: the process ends out of memory first (exit 134).
    if (this.heapBudget !== undefined && this.heapBudget >= heapLimit) {
      const at = this.loaded.locate?.('settings.heap_budget');
      warnings.push({
        file: this.loaded.file,
        ...problemPlace(
          at,
          `heap_budget (${formatBytes(this.heapBudget)}) is not under this process's heap limit (${formatBytes(heapLimit)}, node's --max-old-space-size): the heap reaches the limit, and the process ends out of memory, before the budget would pause the sources; raise --max-old-space-size (NODE_OPTIONS) or lower heap_budget well under it`,
        ),
        path: '$.settings.heap_budget',
      });
    }
    // Said once, at the first start: a restart in the process runs the same config.
    if (!this.stats.restarts) for (const warning of warnings) this.logger.warn({ file: warning.file, line: warning.line, column: warning.column, path: warning.path }, formatWarning(warning));
    const newest = await this.newestCheckpoint();
    try {
      await this.build();
      // Only now that every factory succeeded do sinks open their outputs (see Sink.open).
      for (const { label, sink } of [{ label: 'the dead-letter sink', sink: this.deadLetterSink }, ...this.sinks]) {
        // Told to stop while an earlier one opened (a Kafka sink connecting): the later ones stay unopened
        // (a file sink would make its file); the run then ends before reading (below).
        if (this.options.signal?.aborted) break;
        try {
          await sink.open?.();
        } catch (cause) {
          // A config only wrong with the other plugins in view (an exactly-once sink without its source) is said as a factory's rejection.
          if (cause instanceof TributaryError && cause.code === 'TRIB_ERR_PLUGIN_FACTORY') {
            const resolved = sink === this.deadLetterSink ? this.loaded.deadLetter : this.loaded.sinks[this.sinks.findIndex((slot) => slot.sink === sink)];
            throw new ConfigError([{ file: this.loaded.file, ...problemPlace(resolved?.locate?.(''), `sink '${resolved?.plugin.name ?? label}': ${cause.message}`, resolved), path: resolved?.path ?? '$' }], 'TRIB_ERR_PLUGIN_FACTORY');
          }
          throw pluginFailure('TRIB_ERR_SINK', label, 'could not open', cause);
        }
      }
    } catch (error) {
      // Close whatever was opened before the failing factory (a sink's file, a broker connection).
      await this.closeAll().catch(() => undefined);
      throw error;
    }
    this.registerRunMetrics();
    try {
      for (const { label, operator } of this.operators) await openStage(label, operator);
      const restored = newest && (await this.coveredCheckpoint(newest));
      if (restored) this.resumeFrom(restored);
      const restoredOperators = restored?.operators ?? this.options.restoreState;
      if (restored) {
        await this.restoreOperators(this.operators, restoredOperators ?? {}, restored.file, restored.stages);
        this.sayFeatureStagesChanged(restored);
      }
      else if (restoredOperators) {
        for (const { label, operator } of this.operators) if (restoredOperators[label] !== undefined) await restoreStage(operator, restoredOperators[label], { label, where: this.stageWhere(label) });
      }
      const restoredSources = restored?.sources;
      for (const slot of this.sources) {
        const position = restoredSources?.[slot.label];
        // Scale-out: each partition starts where its own state file says (see partitionListener).
        if (position && slot.source.seek && !this.scaleOut) slot.source.seek(position);
      }
      // Scale-out: the per-partition stages are timed in every task, under their own labels.
      const keyedLabels = this.keyedStages.map(({ index, resolved }) => entryLabel('stage', resolved.entry, index));
      this.latency = new StageLatency([...keyedLabels, ...this.operators.map((o) => o.label)], this.metrics, this.name, keyedLabels.length);
      if (this.scaleOut) {
        for (const slot of this.scaleOut.slots) slot.source.onPartitions!(this.partitionListener(slot));
        this.push = (event, source) => {
          const origin = originOf(event);
          const found = origin?.partitionId === undefined ? undefined : this.taskOfPartition.get(origin.partitionId);
          if (found) {
            found.member.start = undefined;
            found.task.changes++;
            found.task.input.next(event);
          } else this.deadLetterNoTask(event, source);
        };
      }
    } catch (error) {
      await this.closeAll().catch(() => undefined);
      this.ended = true;
      throw error;
    }
    if (this.failure) {
      // A plugin reported that it cannot go on while the pipeline was starting (PluginContext.fail).
      this.stats.elapsedMs = this.clock.now() - this.stats.startedAt;
      await this.closeAll().catch(() => undefined);
      this.ended = true;
      throw this.failure;
    }
    if (this.options.signal?.aborted) {
      // Told to stop while starting (a sink waited for its output: a FIFO without a reader): nothing
      // was read, so there is nothing to drain and the last checkpoint still holds.
      this.logger.info('stopped before reading any input');
      this.stats.elapsedMs = this.clock.now() - this.stats.startedAt;
      try {
        await this.closeAll();
      } finally {
        this.ended = true;
      }
      return this.stats;
    }
    this.started = true;
    this.lastFlush = this.clock.now();
    this.metrics.observe('heap_pauses_total', 'Times the sources paused because the heap was above its budget.', { pipeline: this.name }, () => this.heapPauses);
    this.metrics.observe('heap_overruns_total', 'Pauses that outlasted heap_wait, after which the run went on over its heap budget.', { pipeline: this.name }, () => this.heapOverruns);
    this.metrics.observe('heap_over_budget', '1 while the run goes on over its heap budget (a pause outlasted heap_wait), else 0.', { pipeline: this.name }, () => (this.overHeapBudget ? 1 : 0));
    let commitTimer: NodeJS.Timeout | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    let subscription: Subscription | undefined;
    let failed: unknown;
    let streamEnded!: () => void;
    // Settled by the stream, or rejected by failRun; set before subscribing, as a stage may fail as it is subscribed.
    const completed = new Promise<void>((resolve, reject) => {
      streamEnded = resolve;
      this.rejectCompleted = reject;
    });
    completed.catch(() => undefined); // observed below; avoid an unhandled rejection while sources run
    try {
      // Inside the try: a stage whose operator throws as it is put together fails the run with its
      // plugins closed and no timer left running.
      let stream: Observable<Element>;
      try {
        stream = composeOperators(this.operators.map((o) => o.operator), this.input.asObservable(), this.latency.global());
      } catch (error) {
        this.failRun(error);
        throw this.failure;
      }
      subscription = stream.subscribe({
        next: (record) => this.route(record),
        error: (error: unknown) => this.failRun(error),
        complete: () => streamEnded(),
      });
      if (this.options.checkpoints) {
        // The interval counts from here, the stages opened and restored, as the sources begin reading.
        const { intervalMs, minPauseMs = defaultMinPauseMs(intervalMs) } = this.options.checkpoints;
        const from = this.clock.now();
        this.checkpointSchedule = { from, intervalMs, next: from + intervalMs, minPauseMs, timer: undefined };
        this.wakeForCheckpoint();
      } else {
        // No checkpoints: a source waiting for input still commits what it handed over, and the sinks
        // still flush what they buffered (no batch comes to do it: stdin, a quiet topic).
        commitTimer = setInterval(() => {
          let committing = false;
          for (const slot of this.sources) {
            if (this.barrier || slot.done || !slot.source.commit || this.clock.now() - slot.lastCommit < this.commitInterval) continue;
            committing = true;
            this.commitSource(slot).catch((error: unknown) => this.logger.warn({ stage: slot.label, err: (error as Error).message }, 'commit failed; the next one retries'));
          }
          // A failing flush fails the run, as one at a checkpoint or at the end does.
          if (!committing && !this.barrier) this.flushIfDue().catch((error: unknown) => this.failRun(error));
        }, this.commitInterval);
        commitTimer.unref();
      }
      // Not while the sources are held: a watermark then would change the stages' state (close
      // sessions) and write outputs after the checkpoint's instant, in with the outputs it flushes.
      idleTimer = setInterval(() => {
        if (!this.barrier) this.advanceWatermark();
      }, Math.max(50, Math.min(1000, ...this.sources.map((s) => s.idleTimeout / 2))));
      idleTimer.unref();
      await Promise.allSettled(
        this.sources.map(async (slot) => {
          try {
            await this.pump(slot);
          } catch (error) {
            // The run fails, and its other sources stop: it does not go on without this one (its
            // watermark would move ahead of the failed source's events, nothing would restart it).
            // Named by its label, as a sink's failure is ("a source failed" left a pipeline of several to guess).
            const failure =
              error instanceof TributaryError && error.code !== 'TRIB_ERR_SOURCE_INPUT'
                ? error
                : new TributaryError(error instanceof TributaryError ? error.code : 'TRIB_ERR_SOURCE', `${slot.label} failed: ${(error as Error).message}`, { cause: error });
            this.failWith(failure);
            throw failure;
          } finally {
            slot.done = true;
            // Its events are all in: it holds the others back no more. Left for the next batch, a source that
            // ended before another (orders before clicks) held the combined watermark where its last batch
            // put it until the end, and the time the other's last events reached came in one step with it.
            if (!this.barrier && !this.failure) this.advanceWatermark();
          }
        }),
      );
      clearInterval(idleTimer);
      this.endCheckpointSchedule();
      // The run's first failure is its error: a source's (above), or one that stopped the sources.
      if (this.failure) throw this.failure;
      clearInterval(commitTimer);
      const stopped = this.options.signal?.aborted ?? false;
      if (!stopped) {
        // Not into a checkpoint under way: what the end of input closes (sessions, the models' last
        // batches) is written after its state was taken, and it would flush and commit them with it.
        while (this.barrier) await this.barrier;
        // First the time the drained sources reached, as a single source's last batch moves it: the stages do
        // what it passes (a churn prediction whose horizon it passes is labelled) before the end of input
        // censors what is still open. Without it, sources that ended between two of these calls went
        // straight to the end, and every prediction still pending was censored.
        this.advanceWatermark();
        this.emitWatermark(Infinity);
        this.stats.watermark = Infinity;
      }
      // What a stage holds for later (ready(): a micro-batch) comes out first: after the end it is lost.
      await this.room();
      for (const task of this.tasks.values()) task.input.complete();
      this.input.complete();
      await completed;
      // A stage that failed as its input completed (its finalize) failed the run: no checkpoint of that.
      if (this.failure) throw this.failure;
      // The final checkpoint holds the state as the stages' completion left it (a stop keeps open
      // sessions and the models' pending batches; see Operator.snapshot): what a stage emitted as its
      // input completed is flushed and committed with it, and gone from the state it saves. Taken
      // before, that state still held those records, and a restart from it wrote them again.
      await this.checkpoint().catch((error: unknown) => {
        throw stopped ? finalCheckpointFailure(error) : error;
      });
      const committing = this.sources.filter((slot) => slot.source.commit);
      for (const slot of committing) await this.commitSource(slot);
      // Neither flushed the sinks (no checkpoints, no source that commits: a backtest, a file): what
      // they buffered is made durable now, before they close.
      if (!this.options.checkpoints && committing.length === 0) await this.flushSinks();
      this.stats.drained = !stopped;
    } catch (error) {
      failed = error;
      throw error;
    } finally {
      clearInterval(idleTimer);
      this.endCheckpointSchedule();
      clearInterval(commitTimer);
      subscription?.unsubscribe();
      this.stats.elapsedMs = this.clock.now() - this.stats.startedAt;
      // A failure while closing is the run's error only when nothing failed before it: the first
      // failure (a full disk while writing) is the one to report, not its echo from close().
      await this.closeAll().catch((closing: unknown) => {
        if (failed === undefined) throw closing;
        // The failed output failing its close the same way (a broken pipe, a full disk) is no news.
        const echo = rootCause(closing) === rootCause(failed);
        this.logger[echo ? 'debug' : 'warn']({ err: (closing as Error).message }, 'closing after the failure failed too');
      }).finally(() => {
        this.ended = true;
      });
    }
    // A plugin that reported a failure while the run finished (its last flush, its close) failed it.
    if (this.failure) throw this.failure;
    return this.stats;
  }

  /**
   * Has every sink that can open its outputs again do so (Sink.reopen; the daemon's SIGHUP, for log
   * rotation). A sink failing to is logged; one whose output is then broken fails the run as any write would.
   */
  async reopenOutputs(): Promise<void> {
    await Promise.all(
      this.allSinks().map(async ({ label, sink }) => {
        try {
          await sink?.reopen?.();
        } catch (error) {
          this.logger.error({ sink: label, err: (error as Error).message }, `${label} could not reopen its output`);
        }
      }),
    );
  }

  private async closeAll(): Promise<void> {
    const errors: TributaryError[] = [];
    // Each plugin's failure with the code of its kind: a source's or a stage's close is no sink's failure.
    const attempt = async (code: ErrorCode, label: string, what: () => Promise<void> | undefined) => {
      try {
        await what();
      } catch (error) {
        errors.push(pluginFailure(code, label, 'failed while closing', error));
      }
    };
    const closeSource = ({ label, source }: SourceSlot): Promise<void> => attempt('TRIB_ERR_SOURCE', label, () => source.close?.());
    // scale_out with several sources: a source's close may revoke its partitions (a Kafka consumer's does), and a
    // task's revocation waits for every source's part (gather). Closed one after another, the first one's waited for
    // the next one's close: a Kafka member's stop waited until the group expelled its first consumer
    // (session.timeout.ms), whose hand-over commit the brokers then refused ("Unknown member"). Together, every part
    // comes at once, and the hand-over is committed while each consumer is still in the group.
    if (this.scaleOut && this.scaleOut.slots.length > 1) await Promise.all(this.sources.map(closeSource));
    else for (const slot of this.sources) await closeSource(slot);
    for (const id of [...this.tasks.keys()]) await attempt('TRIB_ERR_STAGE', `partition ${id}`, () => this.stopTask(id));
    for (const { label, operator } of this.operators) await attempt('TRIB_ERR_STAGE', label, () => operator.close?.());
    for (const { label, sink } of this.sinks) await attempt('TRIB_ERR_SINK', label, () => sink.close());
    await attempt('TRIB_ERR_SINK', 'the dead-letter sink', () => this.deadLetterSink?.close());
    if (errors.length > 0 && !this.failure) throw errors[0]!;
  }
}

/** The innermost `cause` of an error's chain: what two wrappings of one failure share. */
function rootCause(error: unknown): unknown {
  let root = error;
  for (let depth = 0; depth < 16 && root instanceof Error && root.cause !== undefined; depth++) root = root.cause;
  return root;
}

/**
 * Waits for a sink's or a stage's room; its ready() rejects once it failed (a sink's disk full, a stage's
 * model worker gone): the failure is that plugin's, named, with its kind's code (`code`).
 */
async function pluginReady(code: ErrorCode, label: string, ready: Promise<void>): Promise<void> {
  try {
    await ready;
  } catch (cause) {
    throw pluginFailure(code, label, 'failed', cause);
  }
}

/** Opens a stage; one whose open() fails fails the run named, as a stage's failure (TRIB_ERR_STAGE). */
async function openStage(label: string, operator: Operator): Promise<void> {
  try {
    await operator.open?.();
  } catch (cause) {
    throw pluginFailure('TRIB_ERR_STAGE', label, 'could not open', cause);
  }
}

/**
 * Per-stage processing time per record, sampled on one batch in `every`. Stages run synchronously
 * and depth-first, so the time inside the hand-over to stage k (boundary k) covers stage k and
 * everything after it; stage k's own time is boundary k's total minus its successor's. Where the
 * boundaries are timed is composeOperators' business; outside sampled batches they cost nothing.
 *
 * Scale-out: the first `keyed` stages run in partition tasks ({@link task}), the rest once, as the
 * global chain ({@link global}). A task's exit gets a slot of its own as the last keyed stage's
 * successor: the global chain's entry also takes the watermarks the runtime sends it directly,
 * which no keyed stage's time contains.
 */
class StageLatency implements StageTimer {
  sampling = false;
  private batches = 0;
  private readonly inclusive: Float64Array;
  private readonly counts: Float64Array;
  /** Slot whose inclusive time each stage's own time excludes (-1: none, the sinks). */
  private readonly successor: Int32Array;
  /** The slot of a partition task's exit (after every stage's and the sinks'). */
  private readonly taskExit: number;
  private readonly histograms: { observe(value: number): void }[];

  constructor(
    labels: readonly string[],
    metrics: MetricsHub,
    pipeline: string,
    private readonly keyed = 0,
    private readonly every = 16,
  ) {
    const stages = [...labels, sinksLatencyStage];
    this.taskExit = stages.length;
    this.inclusive = new Float64Array(stages.length + 1);
    this.counts = new Float64Array(stages.length + 1);
    this.successor = Int32Array.from(stages, (_, k) => (k === stages.length - 1 ? -1 : k === keyed - 1 ? this.taskExit : k + 1));
    const buckets = [1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1];
    this.histograms = stages.map((stage) =>
      metrics.scoped({ pipeline, stage }).histogram('stage_latency_seconds', 'Processing time per record in a stage (sampled batches; sinks = routing and writing).', buckets),
    );
  }

  timed(index: number, deliver: Emit): Emit {
    return (element) => {
      // An operator may keep the emit it got in a sampled batch and call it later (a model's timer):
      // only what runs inside a sampled batch is timed.
      if (!this.sampling) {
        deliver(element);
        return;
      }
      const start = performance.now();
      deliver(element);
      this.inclusive[index]! += performance.now() - start;
      this.counts[index]!++;
    };
  }

  /** The global chain's boundaries: its boundary i is slot keyed + i. */
  global(): StageTimer {
    return this.keyed === 0 ? this : this.view((index) => this.keyed + index);
  }

  /** A partition task's boundaries: its stages' own slots, and its exit's (none without per-partition stages). */
  task(): StageTimer | undefined {
    return this.keyed === 0 ? undefined : this.view((index) => (index < this.keyed ? index : this.taskExit));
  }

  private view(slot: (index: number) => number): StageTimer {
    const base = this;
    return {
      get sampling() {
        return base.sampling;
      },
      timed: (index, deliver) => base.timed(slot(index), deliver),
    };
  }

  /** Starts a batch; true when it is sampled. */
  begin(): boolean {
    this.sampling = this.batches++ % this.every === 0;
    if (this.sampling) {
      this.inclusive.fill(0);
      this.counts.fill(0);
    }
    return this.sampling;
  }

  end(): void {
    this.sampling = false;
    for (let k = 0; k < this.histograms.length; k++) {
      if (this.counts[k] === 0) continue;
      const next = this.successor[k]!;
      const own = Math.max(0, this.inclusive[k]! - (next < 0 ? 0 : this.inclusive[next]!));
      this.histograms[k]!.observe(own / 1000 / this.counts[k]!);
    }
  }
}

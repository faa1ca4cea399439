/**
 * The plugin API: the one way to define a source, an operator or a sink.
 *
 * A plugin is a spec (name, summary, JSON Schema of its config) and a factory. The same spec drives
 * validation (ajv), `tributary plugins`, the generated docs and editor autocompletion. Built-in
 * plugins use exactly this API.
 */
import type { Observable } from 'rxjs';
import type { Logger } from 'pino';
import type { ClickEvent, Element, Origin, StreamRecord } from './events.js';
import { conditionMet, type HookCall } from './plugin-hooks.js';

/** A JSON Schema object (draft-07, as ajv compiles it). */
export interface JsonSchema {
  [keyword: string]: unknown;
}

export type PluginKind = 'source' | 'operator' | 'sink';

/** Maturity, as Redpanda Connect marks its components. */
export type PluginStatus = 'stable' | 'beta' | 'experimental';

export interface Counter {
  inc(amount?: number): void;
}
export interface Gauge {
  set(value: number): void;
  inc(amount?: number): void;
  dec(amount?: number): void;
}
export interface Histogram {
  observe(value: number): void;
}
/**
 * Gauges of one name with labels of the plugin's own besides `pipeline` and `stage`, one series per set
 * of their values (a Kafka source's lag per partition: `topic`, `partition`). A series exists from its
 * first `set` until its `remove`: remove one whose subject went away (a partition revoked), or its last
 * value would be read as current.
 */
export interface GaugeFamily {
  /** Sets the series of these label values (every label of the family, and no other). */
  set(labels: Readonly<Record<string, string>>, value: number): void;
  /** Drops the series of these label values; nothing if there is none. */
  remove(labels: Readonly<Record<string, string>>): void;
}

/**
 * Metrics scoped to one plugin instance: names get the `tributary_` prefix and every series carries
 * the pipeline and stage labels, so two instances of one plugin never collide. Counters and
 * histograms are exported at 0 from their creation; a gauge only from its first `set` (or `inc`),
 * since 0 may be a false reading of a level not yet measured (a model's AUC before its first label,
 * which an alert `< 0.6` would fire on). A gauge whose start is known (a count of open sessions: 0)
 * is set to it when created.
 */
export interface Metrics {
  counter(name: string, help: string): Counter;
  gauge(name: string, help: string): Gauge;
  histogram(name: string, help: string, buckets?: readonly number[]): Histogram;
  /** Gauges with labels of their own (`labelNames`, not `pipeline` or `stage`): one series per set of values. */
  gaugeFamily(name: string, help: string, labelNames: readonly string[]): GaugeFamily;
  /**
   * These metrics with constant labels of the plugin's own added to every series (a model's
   * `model: 'intent-lr'`, so a dashboard names the model, not its stage). Not `pipeline` or `stage`;
   * every series of one metric name must have the same label names.
   */
  withLabels(labels: Readonly<Record<string, string>>): Metrics;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch. Tests replace it. */
  now(): number;
}

/** A record the pipeline could not use, with why. It is written to the dead-letter sink and counted. */
export interface Rejection {
  /** Human-readable reason, e.g. `price: expected a number, got "abc"`. */
  reason: string;
  /** The raw input as read (a line of text, a parsed object). */
  raw?: unknown;
  /**
   * `base64`: `raw` is the input's bytes in base64, because they are not UTF-8 text (a binary Kafka
   * value) and decoding them would lose them. The dead letter carries it as `encoding`.
   */
  encoding?: 'base64';
  /**
   * The input's key, where it has one apart from its value (a Kafka record's), whatever the rejection
   * is about: as `raw`, text, or with `keyEncoding: 'base64'` its bytes in base64 (a key that is not
   * UTF-8 text). The dead letter carries them as `key` and `keyEncoding`, so the input can be replayed
   * whole (the key may be the user id, and picks the partition).
   */
  key?: string;
  keyEncoding?: 'base64';
  origin?: Origin;
  /**
   * The event type the input names, where it was read before the input was rejected (a mapping's: rejectionOf):
   * an input of the pipeline's erasure `event_type` is said to be an erasure request, which the reason alone (the
   * field it lacks) would not tell. Not written to the dead letter.
   */
  eventType?: string;
}

/** What a factory receives besides its config. */
/**
 * A stage of a pipeline as the runtime records it (a checkpoint's record of its stages; PluginContext.stagesBefore):
 * JSON, so a plugin may keep it in a file of its own and hand it back to PluginContext.featureStagesChangedSince.
 */
export interface StageRecord {
  label: string;
  type: string;
  /** Its plugin config, defaults filled in, secrets redacted (redactSecrets). */
  config: unknown;
  /**
   * How it bears on the features of the vector: it selects some by name (PluginSpec.featureSelectorField: a
   * transform), appends some (a non-empty `featureNames`), or its plugin declares neither (`undeclared`: an
   * operator of one's own that may write features any way, so checked as a transform is). Absent: it makes
   * none (it declares `featureNames` with none, or is a model).
   */
  features?: 'selects' | 'appends' | 'undeclared';
}

/** A change to the stages that make or select features, between a record of them (StageRecord[]) and the stages now. */
export interface FeatureStageChange {
  /** The change, with the stage's place in the pipeline file: `hash (FILE:6:5, $.stages[2], hash-features): width: 16 -> 8`, `log (log1p) removed`. */
  text: string;
  /**
   * The values under feature names that are kept are made otherwise (a stage configured otherwise, a transform or
   * an undeclared stage added, removed or moved): no name tells, so a model applies the weights it learnt for the
   * old values to them. False where only which names there are changed (a stage that appends added or removed),
   * which a model reading its features by name sees (it warns of the names it does not know and those missing).
   */
  sameNamesOtherValues: boolean;
}

export interface PluginContext {
  /** Name of the pipeline this instance belongs to. */
  readonly pipeline: string;
  /**
   * The pipeline file's absolute path, where the runtime set it: with `pipeline`, what a stage keeping state in a file of
   * its own (a model file) records of who wrote it, as checkpoints do (otherPipelineText): two files of one `name` (one
   * copied from the other) are otherwise one pipeline to it.
   */
  readonly pipelineFile?: string;
  /** This instance's label: the entry's `label`, else `<kind>-<type>-<index>`. */
  readonly label: string;
  /**
   * Sources of a scale_out pipeline with several sources (co-partitioned topics): a name of this run, the same for
   * each of its sources and another in every other member of the group. A source whose group ranks its members by a
   * name they give (Kafka: the range assignor sorts the consumers by member id, which begins with the client.id) puts
   * it first in that name, so that a member's consumers rank alike on every topic, and partition p of each topic
   * goes to one member. Absent otherwise.
   */
  readonly scaleOutMember?: string;
  /** Folder of the pipeline file: relative paths in config resolve against it. */
  readonly baseDir: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /**
   * True when the pipeline resumes from a checkpoint: outputs written before it stay (a file sink
   * appends instead of replacing its file).
   */
  readonly resuming?: boolean;
  /**
   * True when the input is replayed from files as fast as it can be read (`tributary backtest`):
   * wall-clock time then says nothing about the data, so a plugin should decide from the data and the
   * watermarks alone (a model batches by size, not by `max_delay`), and the same input gives the same
   * outputs on every run.
   */
  readonly replay?: boolean;
  /**
   * Replays only (`tributary backtest`): the folder where a stage that keeps state in a file of its own in a run (a
   * model file) writes it at close instead, under the name it has there (the backtest's `REPORT/models/`), so a run
   * can start from what the replay learnt while the file of a live run is left alone. Undefined otherwise.
   */
  readonly replaySaveDir?: string;
  /** Largest batch a source should yield (the pipeline's `settings.max_in_flight`). */
  readonly batchSize: number;
  /**
   * How often the runtime has the sources commit their input (Kafka offsets, an exactly-once
   * transaction), in milliseconds: `checkpoint.interval` when the run keeps checkpoints (from the file
   * or `--checkpoint-dir`), else `settings.commit_interval`. What a commit closes stays open that long
   * (an exactly-once transaction). Undefined where no runtime set it (tests): take `settings.commit_interval`'s default, 1 s.
   */
  readonly commitIntervalMs?: number;
  /**
   * Sources only: the pipeline's `erasure` section's event type, where it has one. A record of this type is an
   * erasure request, which the runtime takes out of the stream where it is read: it needs no event time, so a
   * source's mapping takes one without a time (createEventMapper's `erasureType`; its event's time is NaN).
   */
  readonly erasureEventType?: string;
  /** Sends a rejected input to the dead-letter sink, with its reason; counted. */
  deadLetter(rejection: Rejection): void;
  /**
   * Sources only: this source entry's `watermark` settings, in milliseconds, for a source that keeps
   * its own watermark (e.g. per Kafka partition) and so must apply them itself. `maxAheadOfClock`: an
   * event time further than this ahead of `clock.now()` must not advance that watermark (the event is
   * still yielded; the operators dead-letter it), as the runtime does for the sources whose watermark it
   * keeps, or one absurd timestamp makes every later event late. Absent (a context built by hand): 1 day.
   */
  readonly watermark?: { readonly maxOutOfOrderness: number; readonly idleTimeout: number; readonly maxAheadOfClock?: number };
  /**
   * One map per running pipeline, shared by its plugin instances, so plugins that must cooperate
   * (a Kafka source and sink committing in one transaction) find each other and no other pipeline.
   */
  readonly shared?: Map<string, unknown>;
  /**
   * A logger for something several plugins of the pipeline share (kept in `shared`: the `kafka`
   * exactly-once sinks' transactional producer), whose lines carry the pipeline and `shared: name`, not
   * this plugin's `stage`: they are no one plugin's (as a TributaryError's and a SourceHealth's `shared`).
   */
  sharedLogger?(name: string): Logger;
  /**
   * One map for every pipeline run together (one `tributary run` of several files or a folder), so
   * plugins of different pipelines that use one resource cooperate: file sinks writing one file (the
   * default dead-letter file) append to it once one of them replaced it. A pipeline run on its own
   * gets a map of its own.
   */
  readonly runShared?: Map<string, unknown>;
  /**
   * While the runtime holds the sources (a checkpoint or a commit takes their positions), a promise
   * that resolves when it lets go; undefined otherwise. A source whose position moves when it takes
   * records (Kafka's offsets) waits for it before taking more, so a position read meanwhile (a
   * rebalance's hand-over) never counts records the pipeline has not yet seen. A stage's own timer
   * that emits records (a micro-batch cut by time) skips its tick meanwhile: a checkpoint's state was
   * taken at its start, and records emitted before the sinks flushed (before it is written and
   * committed, where a sink is transactional) would be committed with its outputs and emitted again
   * by a restart from it.
   */
  readonly held?: () => Promise<void> | undefined;
  /**
   * Sources only: has the runtime commit now, as it does every commit interval: with checkpoints, one
   * is taken (every stage's state and every source's position, the sinks flushed, the file written,
   * then each source's `commit`); without, the sinks flush and each source commits. For a source
   * whose input must be acknowledged between the runtime's commits (a Kafka source handing over the
   * partitions a rebalance takes away), so the state saved and the acknowledged position agree:
   * acknowledged alone, a restart before the next checkpoint resumes after that input with state that
   * never held it; not acknowledged, input read again goes into state that holds it already. Resolves
   * once every source's `commit` was called; rejects if the checkpoint failed.
   */
  commitNow?(): Promise<void>;
  /**
   * Aborted when the pipeline is told to stop, or when its run failed (a stage or a sink): a source
   * waiting for input (Kafka) returns from `read`.
   */
  readonly signal?: AbortSignal;
  /**
   * How long the run waits, in milliseconds, for a lock that another host's process holds on something
   * it writes (`--lock-wait` of `tributary run` and `tributary backtest`, which the checkpoint folder waits under too): such a lock is
   * taken over once its holder stops renewing it (takeLockWaiting: its node died). 0 or undefined:
   * refused at once. A plugin that locks an output waits that long (a stop, `signal`, ends the wait),
   * then fails for a person (exit 2): a restart would meet the same live holder.
   */
  readonly lockWaitMs?: number;
  /**
   * Operators: the stages before this one as the runtime records them (StageRecord), for a stage that keeps state
   * outside the pipeline's checkpoints (a model's file) to save beside it, so that a later run can ask
   * `featureStagesChangedSince` whether the features it was built on are made otherwise now. Undefined where no
   * runtime set it (a context built by hand).
   */
  readonly stagesBefore?: readonly StageRecord[];
  /**
   * Operators: how the stages before this one make or select features otherwise than they did when `saved` (a
   * `stagesBefore` kept earlier, read back) was recorded, each change with the stage's place in the pipeline file;
   * none when nothing that bears on the features changed. The comparison a resume from a checkpoint makes.
   */
  featureStagesChangedSince?(saved: unknown): readonly FeatureStageChange[];
  /**
   * Scale-out: the source partition (e.g. `clicks-3`) of the record a stage is handling right now,
   * for global stages that keep per-user items (a model's pending labels) and must let go of those
   * whose partition moved to another member (see `Operator.partitionsRevoked`). Undefined otherwise.
   */
  currentPartition?(): string | undefined;
  /**
   * Reports a failure the plugin found outside any call of the runtime's (a client's error callback, a
   * timer): it cannot go on, and the pipeline stops as if the call under way had thrown it. A sink's
   * failure is `TRIB_ERR_SINK` (`<label> failed: <message>`), a source's `TRIB_ERR_SOURCE`, a stage's
   * `TRIB_ERR_STAGE`; the pipeline is not ready from then on (/readyz), its sources stop at once, and
   * the run ends with that error (exit 1), its plugins closed. Without it a sink whose connection died
   * while its input was quiet would fail only at its next record, ready meanwhile. The first failure
   * reported is the run's; later ones, and any after the run ended, are logged only. Returns at once:
   * the plugin's pending `ready()` and `flush()` may stay unsettled, the runtime no longer waits for them.
   */
  fail(error: Error): void;
  /**
   * Counts records an operator dropped on purpose, so every input stays accounted for. A sink calls it
   * from `write` (count 1) for the record it is handed and does not write (a score below its threshold):
   * that record is then counted as filtered, not as out, unless another sink wrote it.
   */
  countFiltered(count: number, reason: string): void;
  /**
   * A named side output, e.g. `late` for events later than the allowed lateness. Records sent here
   * go to the sinks whose `outputs` list names it, and are counted.
   */
  sideOutput(name: string, record: StreamRecord): void;
  /**
   * The label of the stage that appends feature `name` to the events' vectors, as its plugin declares the
   * names it appends (PluginSpec.featureNames, with this config); undefined where no stage declares it (a
   * user's stage without `featureNames`, a vector made upstream) or where no runtime set it (tests). For a
   * stage that reads features to say where a bad value came from (a model warned of a NaN).
   */
  featureOrigin?(name: string): string | undefined;
}

/** Where a source stands, so it can resume there after a restart (file offsets, Kafka offsets). */
export type SourcePosition = Record<string, unknown>;

/**
 * The checkpoint files a commit goes with, each named by a mark (a short string, `tributary-checkpoint:`
 * then its sequence and digest): a source whose acknowledgement has room for a note (Kafka: the offset
 * commit's metadata) stores them with it, so a restore can tell which file the last acknowledgement
 * belongs to (Source.committedMarks, PartitionAssignment.marks).
 */
export interface CommitMarks {
  /** The pipeline's checkpoint written for this commit. */
  checkpoint?: string;
  /** scale_out: each held partition's newest state file, by partition id (written now or before). */
  partitions?: ReadonlyMap<string, string>;
}

export interface Source {
  /**
   * Batches of canonical events. The runtime pulls the next batch only when the pipeline has room,
   * which is how back pressure reaches the source. A source that dead-letters input yields after it
   * even when no event came of it (an empty batch), so the runtime waits for the dead-letter sink's
   * room too before the next pull; an empty batch does not count as activity for idleness.
   */
  read(): AsyncIterable<readonly ClickEvent[]>;
  /** The source's own watermark (e.g. the minimum over Kafka partitions), if it keeps one. */
  watermark?(): number;
  /** Position after the last batch returned by `read`. */
  position?(): SourcePosition;
  /** Resume after `position` on the next `read`. */
  seek?(position: SourcePosition): void;
  /**
   * Called by the runtime once every sink has flushed the outputs of everything up to `position` and,
   * in the daemon, a checkpoint covering it is durable: the source may now acknowledge its input up to
   * there (e.g. commit Kafka offsets). Where a sink is transactional (Sink.transactional), or without
   * checkpoints, it is called at a barrier: no record is written between the sinks' flush and this
   * promise settling. Otherwise a checkpoint lets the sources go on once its state is taken and the
   * sinks flushed, so `read` may have moved past `position` by the time it is committed. `marks`, where the runtime keeps checkpoints: the files this
   * commit goes with (see CommitMarks), for a source that can store them with its acknowledgement; one
   * that ignores them works as before.
   */
  commit?(position: SourcePosition, marks?: CommitMarks): Promise<void>;
  /**
   * A source that resumes where its upstream holds its input acknowledged, whatever a checkpoint
   * says (an exactly-once Kafka source: its group's committed offsets, which move atomically with the
   * outputs, so it does not `seek`): whether that acknowledged position covers `position`, a
   * checkpoint's. A checkpoint past it holds the state of input whose outputs never committed (a
   * transaction that failed after its checkpoint was written): restored, that input would go into the
   * state a second time as it is read again. The runtime restores the newest checkpoint that every
   * such source covers. Asked after every sink and stage opened, before the first `read`; it may wait
   * for the upstream (a broker outage) until the pipeline's signal aborts.
   */
  covers?(position: SourcePosition): Promise<boolean>;
  /**
   * Optional, with `covers`: the marks (CommitMarks) stored with the upstream's acknowledgement of
   * `position`'s input (Kafka, exactly-once: the committed offsets' metadata of the partitions it
   * names), as far as there are any. The runtime restores the newest checkpoint of its folder that they
   * name, when that file is there intact and covered: a checkpoint written after it at an unchanged
   * position (input idle, state changed by time alone) is covered too, but its outputs were committed
   * only if its own commit went through, which only the marks tell. No mark of its folder: `covers`
   * alone decides. Asked once, before the first `read`, with the newest checkpoint's position.
   */
  committedMarks?(position: SourcePosition): Promise<readonly string[]>;
  /**
   * Whether the source reaches its upstream now (false while every Kafka broker is down): /readyz.
   * Called on every probe, so keep it cheap; one that throws reads as not ready
   * (`<label>: health() threw: <message>`, logged once).
   */
  health?(): SourceHealth;
  /**
   * Partitioned sources (Kafka) only, for scale-out (`scale_out` in the pipeline): the runtime
   * registers a listener before the first `read`, and the source calls it whenever partitions move
   * to or from this instance. Every event it yields carries its partition in `origin.partitionId`.
   */
  onPartitions?(listener: PartitionListener): void;
  /**
   * The next offset to read of every assigned partition that has yielded records, by partition id. (The
   * state of one that yielded none since its assignment covers the offset reading started at, which the
   * runtime knows: its restored file's, or the group's committed offset.)
   */
  partitionOffsets?(): ReadonlyMap<string, number>;
  /**
   * Scale-out: the group's committed offset of each partition it held as far as the source knows (the
   * brokers' answer at its assignment, and its own commits they acknowledged), by partition id. The
   * runtime keeps each partition's newest state file such an offset covers, whatever its age: commits
   * that fail while checkpoints go on (the brokers back, their group coordinator not yet) leave newer
   * files, and pruned by age alone they pushed out the one file the next owner can restore.
   */
  committedOffsets?(): ReadonlyMap<string, number>;
  /**
   * Scale-out: whether the group took this instance's partitions away before it was told (Kafka: its
   * session or max.poll.interval expired, and the revocation that says so is not handled yet). A
   * checkpoint then writes no partition state file: their next owner may be writing its own, and one
   * written after it at the same offset would be stale. (The revocation that follows saves nothing either:
   * PartitionRevocation.lost.)
   */
  partitionsLost?(): boolean;
  /**
   * Each assigned partition's own watermark, by partition id. In scale-out each partition's stages
   * follow their own partition's event time (as a Kafka Streams task follows its stream time), so a
   * partition that moves here with a backlog is not judged late by the watermark of the others.
   */
  partitionWatermarks?(): ReadonlyMap<string, number>;
  /**
   * Scale-out, optional: the assigned partitions idle now by this source's `idle_timeout` (Kafka: no event
   * for that long and nothing left to read), by partition id. A partition whose stages hold back the
   * watermark they pass on (a sessionizer after a far-future event) holds back the global stages' only
   * while it is not idle, as an idle source no longer holds the combined watermark; without this method
   * every partition counts as active, and one quiet held partition holds them for every partition.
   * Asked only while some partition's stages hold, after `partitionWatermarks`.
   */
  idlePartitions?(): ReadonlySet<string>;
  close?(): Promise<void>;
}

/** A partition given to this instance, and where its consumer group last committed (if ever). */
export interface PartitionAssignment {
  /** Stable, file-name-safe id, e.g. `clicks-3` (topic and partition). */
  id: string;
  /**
   * The partition's number in its topic (3 of `clicks-3`). Needed where a scale_out pipeline has several
   * sources: partition p of each is one task p's input (co-partitioned topics: one partition count, one key
   * -> partition rule), restored and handed over together.
   */
  partition?: number;
  committed: number | undefined;
  /**
   * How many partitions the partition's topic has now, where the source knows (Kafka: the topic's metadata at the
   * assignment). The runtime records it in the partition's state files and refuses to restore one saved under
   * another count (partitions added to the topic): the producers' key -> partition rule then sends most users
   * elsewhere, and per-user state restored by partition would be another user's partition's. Absent: not checked.
   */
  partitions?: number;
  /**
   * The marks stored with the committed offset (CommitMarks: its state file's), for a source that
   * stores them: the runtime restores the file they name when it is there intact, else the file of the
   * greatest offset `committed` covers.
   */
  marks?: readonly string[];
}

/** A partition taken from this instance, and the next offset after the records it yielded. */
export interface PartitionRevocation {
  id: string;
  /** Its number in its topic, as PartitionAssignment.partition. */
  partition?: number;
  offset: number | undefined;
  /**
   * The group gave it to another member before this one could hand it over (Kafka: its session or
   * max.poll.interval expired): its state is not saved, as that member may be writing its own already.
   */
  lost?: boolean;
}

/**
 * The runtime's side of a rebalance. A source awaits each call before it moves on: it reads no record
 * of an assigned partition before `assigned` resolves, and commits and lets go of a revoked one only
 * after `revoked` resolves (its state is saved by then, and every output of its records flushed).
 */
export interface PartitionListener {
  /** Restores the partitions' state; resolves to the offset to start each from (absent: the committed one). */
  assigned(partitions: readonly PartitionAssignment[]): Promise<ReadonlyMap<string, number>>;
  /**
   * Saves the partitions' state. `whileHeld`, when given, runs at the end, while no record moves yet:
   * where an exactly-once source seals its transaction, so it holds no output of any record after
   * the revoked partitions' offsets. It is given the mark of each partition's newest state file (the
   * one just saved, or the one before where its state did not change), by id, to store with the offsets.
   */
  revoked(partitions: readonly PartitionRevocation[], whileHeld?: (marks: ReadonlyMap<string, string>) => void): Promise<void>;
  /**
   * Optional for a source: a rebalance began while `assigned` of these partitions has not resolved (several sources,
   * co-partitioned: a task waits for every source's partition p, and another source's consumer may hear of its part
   * only a rebalance later, which needs this source's consumer). `assigned` then resolves at once with no starts; the
   * source reads none of them, and its revocation of them follows as usual.
   */
  abandoned?(partitions: readonly string[]): void;
}

/**
 * What an operator's state is keyed by, which decides whether it can be split across instances in
 * scale-out: `none` (stateless), `keyed` (all state per user, so one instance per source partition
 * gives the same results when the input is partitioned by user), `global` (one state over all input,
 * e.g. a model or running statistics). Undeclared means `global`.
 */
export type OperatorStateScope = 'none' | 'keyed' | 'global';

export interface SourceHealth {
  ready: boolean;
  /** Why not, when not ready. */
  detail?: string;
  /**
   * What is not ready is no one plugin's but something several plugins of the pipeline share (the
   * `kafka` exactly-once sinks' transactional producer), and `detail` names it: /readyz says it once,
   * as it is, not once per plugin as `<label>: ...` (as a failure's TributaryError.shared).
   */
  shared?: boolean;
}

export interface Operator {
  /** The stage itself: an RxJS operator over records and watermarks. */
  apply(input: Observable<Element>): Observable<Element>;
  open?(): Promise<void>;
  /**
   * A JSON-serialisable copy of the operator's state, or a promise of one. The runtime calls every
   * stage's snapshot() at one instant between two batches, with the sources held: the checkpoint
   * holds the state of that instant. A plain value is serialised at once. A large state may be built
   * in parts instead, returning a promise and yielding between them (`await setImmediate()`, from
   * node:timers/promises), so the daemon answers its liveness probe (/healthz) meanwhile. Such a
   * promise must:
   * - resolve to the state as of the call: a record or watermark can still reach the stage before
   *   it resolves (another stage's timer may emit one), and whatever it changes must not show in the
   *   snapshot (copy what the parts read, or do the remaining parts at once before handling it);
   * - resolve to a value the stage no longer changes: the runtime serialises it in parts, after it
   *   resolved, while the stage may be handling records again.
   * The sources are held until every such promise resolves, unless it has a `copied` promise
   * (CopyingSnapshot, as PartedSnapshots.takeCopying makes): then only until that resolves, the
   * instant its parts no longer read the live state (they copied what they need; what is left
   * encodes those copies while records flow).
   * The final checkpoint (a stop, the end of input) is taken after the stream completed, once every
   * stage's `complete` and `finalize` ran: what a stage emitted as it completed is committed with that
   * checkpoint, so its state must no longer hold it, and it must keep the rest of its state through them.
   */
  snapshot?(): unknown | Promise<unknown>;
  /**
   * Replace the operator's state with one `snapshot` returned, before the stream starts. A large state
   * may be restored in parts, returning a promise and yielding between them (`await setImmediate()`,
   * from node:timers/promises): the process answers its liveness probe (/healthz) only between turns
   * of the event loop, and a supervisor kills one that is silent for long.
   */
  restore?(state: unknown): void | Promise<void>;
  /**
   * Scale-out, global stages: these partitions moved to another member; what this stage keeps for
   * their users (e.g. predictions waiting for a label only the new owner will see) should go.
   */
  partitionsRevoked?(partitions: readonly string[]): void;
  /**
   * An erasure request for this user (the pipeline's `erasure` section: an event of its `event_type`):
   * drop everything the stage keeps about them (open sessions, per-user counts, predictions or samples
   * waiting for a label, events held back) without emitting anything for it, so that the next
   * `snapshot()` holds nothing of theirs. Returns how many items it dropped (for the log; 0: it held
   * none). The runtime calls it between two records, with every earlier record of the user already
   * handed to the stage; events of the user after it start afresh. Aggregates over many users (a
   * model's weights, running statistics) cannot forget one user and stay. A stage that keeps per-user
   * state and lacks it is named in a warning when such a pipeline starts.
   */
  forget?(userId: string): number;
  /** Resolves when the stage has room for more input (stages that hold records, e.g. micro-batches). */
  ready?(): Promise<void> | undefined;
  close?(): Promise<void>;
}

export interface Sink {
  /**
   * Called once every plugin of the pipeline was created, before the first record: open files and
   * connections that touch the outside here, not in `create`, so a pipeline that fails to start (a
   * missing input, a bad config found by a factory) leaves its outputs as they were. A sink never
   * opened is closed without output.
   */
  open?(): Promise<void>;
  write(record: StreamRecord): void;
  /**
   * True where what `write` took is committed by the sources' `commit`, not by `flush` (a transaction
   * that holds the outputs and the input's position: Kafka exactly-once). A checkpoint then holds the
   * sources from its snapshots until their commit, so no output of later input joins that transaction.
   * Otherwise (absent, false) the sources go on once the state is taken and the sinks flushed, while the
   * checkpoint's file is written; their commit of its positions follows once the file is durable.
   */
  readonly transactional?: boolean;
  /**
   * Resolves when the sink has room again; `undefined` when it has room now. One pending over the pipeline's
   * `settings.sink_stall_timeout` (a minute by default; as a `flush`) makes the sink stalled: /readyz names it, unless its `health()` says why itself.
   */
  ready?(): Promise<void> | undefined;
  /**
   * Everything written so far is durable when this resolves. Called at every checkpoint (before its
   * file is written and the sources commit), every `settings.commit_interval` without checkpoints
   * (whatever the sources), and at the end of the input or a stop, before `close`. Pending over `settings.sink_stall_timeout`
   * (a minute by default), the sink is stalled (docs/operations.md, A stalled sink); the run waits on, not failed.
   */
  flush?(): Promise<void>;
  /**
   * Opens the sink's outputs again at their paths (the daemon's SIGHUP, after logrotate renamed a file
   * away): what is written from then on goes to the file now at the path. Nothing written before is lost
   * or cut. Resolves once reopened.
   */
  reopen?(): Promise<void>;
  /** Whether the sink reaches its downstream now: /readyz. One that throws reads as not ready, as a source's does. */
  health?(): SourceHealth;
  close(): Promise<void>;
}

/** One entry of a pipeline as a {@link PluginSpec.checkPipeline} sees it: its type, its label and its config, defaults filled in. */
export interface OutlineEntry {
  readonly type: string;
  /** The label its instance gets ({@link PluginContext.label}): its `label`, else `<source|stage|sink>-<type>-<index>` (the dead-letter sink: `dead-letter-<type>-0`). */
  readonly label: string;
  readonly config: Readonly<Record<string, unknown>>;
  /**
   * Sources and stages: the record kinds it makes as configured (its plugin's `emits`, less those its
   * `emitsOnlyWith` withholds under this config). Undefined where the plugin does not declare them (a
   * user's plugin may make anything), and for sinks.
   */
  readonly emits?: readonly string[];
}

/**
 * Whether a stage before `self` in `pipeline` makes records of `kind` as configured (OutlineEntry.emits):
 * undefined where it cannot be told, a stage before it not declaring what it makes. For a checkPipeline
 * whose stage needs another before it (a `session` summary: a sessionizer).
 */
export function madeBefore(pipeline: PipelineOutline, self: OutlineEntry, kind: string): boolean | undefined {
  const at = pipeline.stages.indexOf(self);
  const before = pipeline.stages.slice(0, at < 0 ? 0 : at);
  if (before.some((entry) => entry.emits?.includes(kind))) return true;
  return before.every((entry) => entry.emits !== undefined) ? false : undefined;
}

/** A pipeline's entries, for checks across them. */
export interface PipelineOutline {
  readonly sources: readonly OutlineEntry[];
  readonly stages: readonly OutlineEntry[];
  readonly sinks: readonly OutlineEntry[];
  /** The dead-letter sink, when the file names one (else the runtime's default `file` sink). */
  readonly deadLetter?: OutlineEntry;
  /**
   * How often the sources commit their input as the file declares it (PluginContext.commitIntervalMs):
   * `checkpoint.interval` with a `checkpoint` section, else `settings.commit_interval`, and which of the
   * two it is. (`tributary run --checkpoint-dir` may add checkpoints the file does not declare: a
   * factory sees the interval of the run.)
   */
  readonly commits?: { readonly intervalMs: number; readonly setting: 'checkpoint.interval' | 'settings.commit_interval' };
  /**
   * Whether the pipeline has `scale_out`: its partitioned sources' partitions go to tasks, and with several
   * sources partition p of each goes to one task p (co-partitioned topics), which a source's plugin may need to check
   * (Kafka: one topic per source, one consumer group, an assignor that gives p of each topic to one member).
   */
  readonly scaleOut?: boolean;
  /** The folder the entries' relative paths are relative to (the pipeline file's; PluginContext.baseDir). */
  readonly baseDir: string;
}

/** A problem a {@link PluginSpec.checkPipeline} found in its own entry. */
export interface EntryProblem {
  /**
   * The entry's field it is about (e.g. `guarantee`, `mapping.time_zone`, `horizons[1]`; a key with a dot,
   * as the JSONPath writes it: `options["fetch.min.bytes"]`), said where its value starts in the file
   * (FieldPlace); absent, or not in the file: the entry as a whole, where it starts.
   */
  readonly field?: string;
  readonly message: string;
  /**
   * `error` (the default): a config error, which `validate` and `run` refuse (exit 2). `warning`: a
   * config that runs but is most likely not what was meant, and may be (session-features taking its
   * hours in UTC while the source reads its times in Europe/Berlin): `validate` says it after the
   * file's `ok`, `run` logs it at the start of the run, and neither refuses the pipeline. Word it with
   * the change that mends it, and the way to keep the config and say it is meant.
   */
  readonly severity?: 'error' | 'warning';
}

/** A file a plugin's config names, as its {@link PluginSpec.outputFiles} or {@link PluginSpec.inputFiles} declares it. */
export interface ConfigFile {
  /** The file's path as the plugin opens it: absolute, or relative to the pipeline file's folder (PluginContext.baseDir). */
  readonly path: string;
  /** The config field that names it (`path`, `paths[1]`), where a problem with the file is said. Absent: at the entry. */
  readonly field?: string;
}

/** When a plugin makes one of the kinds or side outputs it declares (PluginSpec.emitsOnlyWith). */
export interface OutputCondition<Config> {
  /** The condition in the config's own words, said after "only with" (`report: true`). */
  readonly condition: string;
  /** Whether a config meets it: the entry's config as validated, schema defaults filled in. */
  test(config: Config): boolean;
}

/**
 * The record kinds and side outputs a source or operator makes with this config: its `emits` and
 * `sideOutputs`, less those its config does not meet the condition of (PluginSpec.emitsOnlyWith);
 * undefined where the plugin does not declare `emits` (it may make anything). Sources also make
 * `event`, declared or not.
 */
export function emittedWith<Config>(
  plugin: Pick<PluginSpec<PluginKind, Config>, 'kind' | 'name' | 'emits' | 'sideOutputs' | 'emitsOnlyWith' | 'sideOutputsOnlyWith'>,
  config: Config,
  at: HookCall = {},
): { kinds: readonly string[]; sideOutputs: readonly string[] } | undefined {
  if (plugin.emits === undefined) return undefined;
  const made = (field: 'emitsOnlyWith' | 'sideOutputsOnlyWith', names: readonly string[], conditions: { readonly [name: string]: OutputCondition<Config> } = {}): string[] =>
    names.filter((name) => !Object.hasOwn(conditions, name) || conditionMet(plugin, field, name, conditions[name]!, config, at));
  return { kinds: made('emitsOnlyWith', plugin.emits, plugin.emitsOnlyWith), sideOutputs: made('sideOutputsOnlyWith', plugin.sideOutputs ?? [], plugin.sideOutputsOnlyWith) };
}

interface InstanceOf {
  source: Source;
  operator: Operator;
  sink: Sink;
}

export const pluginMarker: unique symbol = Symbol.for('tributary.plugin');

/**
 * The fields of a pipeline entry the runtime reads itself and takes out before the factory gets its
 * config (`type`, `label`; `watermark` of sources, `kinds` and `outputs` of sinks): a plugin's `config`
 * may not declare them (PluginRegistry refuses one that does).
 */
export const runtimeEntryFields: readonly string[] = Object.freeze(['type', 'label', 'watermark', 'kinds', 'outputs']);

/**
 * What a plugin is. Its hooks' results are checked as the core reads them (plugin-hooks.ts): a hook that
 * returns other than what is declared here (a string for a list, nothing) or throws is a config error at the
 * entry it was called for, naming the plugin and the hook (TRIB_ERR_PLUGIN_LOAD).
 */
export interface PluginSpec<K extends PluginKind, Config> {
  kind: K;
  /** The `type:` users write in YAML. */
  name: string;
  /** One line: what it does. */
  summary: string;
  /** Longer Markdown for the docs. */
  description?: string;
  status?: PluginStatus;
  /** JSON Schema of the plugin's own fields (not `type` or `label`); `additionalProperties: false` is advised. */
  config: JsonSchema;
  /**
   * Operators: what their state is keyed by (see {@link OperatorStateScope}); in scale-out the leading
   * `none`/`keyed` stages run as one instance per source partition and move with it. Default `global`.
   */
  state?: OperatorStateScope;
  /**
   * Sources: its instances implement `onPartitions`, `partitionOffsets` and `partitionWatermarks` (Kafka),
   * which `scale_out` needs; validation refuses scale_out with a source that does not say so.
   */
  partitioned?: boolean;
  /**
   * Sinks: the record kinds this sink takes (e.g. `['prediction']`), for one whose `write` handles only
   * those. The runtime hands it no other: a record that no sink takes is counted as filtered, not as
   * written. It is the default of a pipeline entry's `kinds`, which may narrow it; an entry naming a kind
   * not in it is a config error. Undeclared: every kind.
   */
  kinds?: readonly string[];
  /**
   * Sinks: `true` where this sink writes outside the run's own files (a broker, a remote service, a
   * database: Kafka's, an HTTP or DB sink of your own), whose readers act on what it writes. `tributary
   * backtest` replaces each such sink by a `file` sink under its report folder (`sinks/<label>.jsonl`,
   * the same records, the line a `file` sink writes), so that a replay writes nothing into production;
   * `--live-sinks` keeps it. Absent or false: the sink is kept in a backtest as it is (a file, stdout).
   */
  external?: boolean;
  /**
   * Sources and operators: the record kinds this plugin puts on the main stream besides those it is
   * handed and passes on (`['session']` for a sessionizer; `[]` for a stage that only passes records on,
   * changed or not, or drops some). Declaring it declares everything the plugin produces: its side
   * outputs too, in `sideOutputs`. When every stage of a pipeline declares it (and, for side outputs,
   * every source too), a sink's `kinds` or `outputs` entry naming something none of them produces is a
   * config error, with the nearest name produced: the sink would get nothing. Undeclared: the plugin may
   * produce anything, and such a pipeline's sinks are not checked. A source always produces `event`
   * (Source.read yields events), declared or not.
   */
  emits?: readonly string[];
  /**
   * Sources and operators that declare `emits`: the side outputs they send records to with
   * PluginContext.sideOutput (`['late']` for a sessionizer). Absent: none.
   */
  sideOutputs?: readonly string[];
  /**
   * Sources and operators: the kinds of `emits` they make only under some config, each with its
   * condition (a model's `model_metrics` only with `report: true`). `emits` stays the list of all a
   * plugin can make (the docs and `tributary plugins` show it, with these conditions); the check of
   * a sink's `kinds` takes, for each stage, what its own config makes (see {@link emittedWith}), so a
   * sink asking for a kind its stages are not configured to make is refused, with the condition.
   * Absent: every kind of `emits`, whatever the config.
   */
  emitsOnlyWith?: { readonly [kind: string]: OutputCondition<Config> };
  /** As `emitsOnlyWith`, for side outputs of `sideOutputs`. */
  sideOutputsOnlyWith?: { readonly [output: string]: OutputCondition<Config> };
  /**
   * Sources: how many records a run of this config will read, where that is known before it starts (the
   * lines of its files), for a progress total (`tributary backtest` shows one). An estimate is fine: the
   * progress shown never passes it. Undefined where it cannot be known (a stream, a topic). Relative
   * paths in `config` are resolved against `baseDir`, the pipeline file's folder, as `create` does.
   */
  countRecords?(config: Config, baseDir: string): Promise<number | undefined>;
  /**
   * Sources: what a replay of a file in this source's place (`tributary backtest`, which keeps its
   * mapping, CSV and watermark settings) cannot take from the file as this source takes it from its
   * input, and what the replay reads instead: a Kafka record's timestamp or key, say, which a file of
   * the records' values has not. Each is logged as a warning when the replay starts, so a replay whose
   * every record is dead-lettered for want of it says why first. Absent or empty: nothing of the kind.
   */
  replayNotes?(config: Config): readonly string[];
  /**
   * Operators that append a block of named features to each event's vector (FeatureBlock): the names
   * it appends with this config (its validated config, schema defaults filled in), in order. Every block
   * of a pipeline appends to one vector per event, so a name twice cannot be: `validate` and `run` refuse
   * a stage whose names a stage before it appends too (or that names one twice), at this stage. Absent:
   * the stage is not checked, and a clash shows only at run time (FeatureBlock.append dead-letters
   * each event).
   */
  featureNames?(config: Config): readonly string[];
  /**
   * With `featureNames`: the config field the names come from (`prefix`), where a clash is said and
   * which its message tells to change. Absent: the clash is said at the entry, and the message tells
   * to remove one of the two.
   */
  featureNamesField?: string;
  /**
   * With `featureNames`: whether this stage, configured `saved` when a record of it was taken (a checkpoint's, a
   * model file's: its config as JSON read back, of any shape) and `config` now, makes every feature it still makes
   * under a name it made then the same way: the edit only adds names, drops names, or both (a user-features horizon
   * added, removed, or changed: each horizon's counts are its own). Such an edit is no change of the values under
   * kept names: a model warm-starts across it, learning the added names from 0 and dropping or ignoring the gone
   * ones (FeatureStageChange.sameNamesOtherValues false), and a resume says the names added and gone (info), no
   * warning. Absent, or false: any edit of its config is taken for one that may make the kept names' values
   * otherwise (a warm start refused, a resume warned). Asked only where the configs differ. A name added that
   * another stage appended before is taken for a kept name made otherwise, whatever this says.
   */
  keepsFeatureValues?(saved: unknown, config: Config): boolean;
  /**
   * Operators that select features by name (a transform, with FeatureSelector): the config field
   * holding its list of names and `*` patterns (`features`; a path into an object field, `model.features`,
   * as a custom model's is); `define*` take a field of `Config` alone (ConfigFieldPath: a field renamed
   * there and not here does not compile). Where every stage before it declares
   * `featureNames` (`() => []` for a stage that appends none), `validate` and `run` warn of a name or
   * pattern that none of their names matches, at its item, with what the run does then: a transform
   * selects nothing for it and logs that once (its FeatureSelector's onMissing); a model (`role: 'model'`)
   * is handed the names the events have, and a create that throws on a missing one has every event it
   * predicts dead-lettered. Absent: not checked.
   */
  featureSelectorField?: string;
  /**
   * Operators: `'model'` for a model stage (defineModel's and the built-in ones set it), whose own code
   * decides what a feature missing from its `featureSelectorField` list does; that warning says so. Absent:
   * a transform's wording (the run logs it once), whatever the stage emits (an operator of one's own that
   * emits `prediction` is no model by that alone).
   */
  role?: 'model';
  /**
   * Sinks: the files this config writes (replacing or appending to them), so that a run which would
   * overwrite its own input is refused before anything is replaced: a source of the pipeline whose
   * `inputFiles` holds one of them is a config error (`validate` and `run` say it at this sink's
   * `field`), and `tributary backtest` refuses an `--input` that is one of them. The same file is found
   * by name, through links to its folders, or by device and inode (a hard link). Absent: the sink's
   * outputs are not checked; a sink writing a file named in its config should declare it.
   */
  outputFiles?(config: Config): readonly ConfigFile[];
  /**
   * Sources: the files this config reads, which no sink of the pipeline may write (see `outputFiles`), and
   * which `tributary validate` says where they are not there or are folders (inputFileProblem; not with
   * `--no-check-inputs`). Absent: not checked.
   */
  inputFiles?(config: Config): readonly ConfigFile[];
  /** Example configs (without `type`); each is validated against `config` by the docs test. */
  examples?: readonly Record<string, unknown>[];
  /**
   * Checks that need the rest of the pipeline (a Kafka exactly-once source needs an exactly-once Kafka
   * sink beside it), run by `validate`, and by PipelineRunner before any factory (so a pipeline composed
   * in code gets them too), once every entry passed its schema. Returns this entry's problems, each
   * located at the field it names: a config error, or a warning where its `severity` says so.
   * `self` is this entry's own object in `pipeline` (to tell it from others of the same type).
   */
  checkPipeline?(config: Config, pipeline: PipelineOutline, self: OutlineEntry): readonly EntryProblem[];
  /** Builds an instance from a validated config. Throw to reject a config the schema cannot express. */
  create(config: Config, context: PluginContext): InstanceOf[K] | Promise<InstanceOf[K]>;
}

export interface Plugin<K extends PluginKind = PluginKind, Config = never> extends PluginSpec<K, Config> {
  readonly [pluginMarker]: true;
}

export type SourcePlugin<Config = never> = Plugin<'source', Config>;
export type OperatorPlugin<Config = never> = Plugin<'operator', Config>;
export type SinkPlugin<Config = never> = Plugin<'sink', Config>;
export type AnyPlugin = SourcePlugin | OperatorPlugin | SinkPlugin;

/**
 * A plugin's config schema, checked against its `Config` type when the plugin is defined: `properties`
 * names every field of `Config` and nothing else, and `required` only those fields. Renaming a field
 * in one and not the other is then a compile error rather than a config the schema lets through and
 * the factory never reads (or reads as undefined). A `Config` without fixed fields (not an object
 * type, or a `Record<string, ...>`) is not checked.
 */
export type ConfigSchema<Config> = JsonSchema &
  ([Config] extends [never]
    ? unknown
    : [Config] extends [object]
    ? string extends keyof Config
      ? unknown // Record<string, ...>: no fixed fields to check
      : {
        properties: { [Field in keyof Config]-?: JsonSchema };
        required?: readonly (keyof Config & string)[];
      }
    : unknown);

/**
 * A field of `Config` by name (`features`), or a field of an object field of it (`model.features`): how a
 * spec names a field of its config (PluginSpec.featureSelectorField), so a field renamed in `Config` and not
 * in the spec is a compile error. A `Config` without fixed fields (a `Record<string, ...>`, or none) takes any name.
 */
export type ConfigFieldPath<Config> = [Config] extends [never]
  ? string
  : [Config] extends [object]
    ? string extends keyof Config
      ? string
      : { [Field in keyof Config & string]: Field | FieldPathBelow<Field, NonNullable<Config[Field]>> }[keyof Config & string]
    : string;

/** `field.inner` for each field of an object field's value (not of a list's): ConfigFieldPath one level down. */
type FieldPathBelow<Field extends string, Value> = Value extends readonly unknown[]
  ? never
  : Value extends object
    ? string extends keyof Value
      ? `${Field}.${string}`
      : `${Field}.${keyof Value & string}`
    : never;

/**
 * The spec `define*` take: the plugin's spec with its config schema, and the config field it names
 * (featureSelectorField), checked against `Config`. (Checked here, not in PluginSpec, whose plugins are
 * handed around as AnyPlugin: there a field of one Config would not be a field of another.)
 */
export type CheckedSpec<K extends PluginKind, Config> = Omit<PluginSpec<K, Config>, 'kind' | 'config' | 'featureSelectorField'> & {
  config: ConfigSchema<Config>;
  featureSelectorField?: ConfigFieldPath<Config>;
};

function define<K extends PluginKind, Config>(kind: K, spec: Omit<PluginSpec<K, Config>, 'kind'>): Plugin<K, Config> {
  return Object.freeze({ ...spec, kind, [pluginMarker]: true as const });
}

export function defineSource<Config>(spec: CheckedSpec<'source', Config>): SourcePlugin<Config> {
  return define('source', spec);
}

export function defineOperator<Config>(spec: CheckedSpec<'operator', Config>): OperatorPlugin<Config> {
  return define('operator', spec);
}

export function defineSink<Config>(spec: CheckedSpec<'sink', Config>): SinkPlugin<Config> {
  return define('sink', spec);
}

export function isPlugin(value: unknown): value is AnyPlugin {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[pluginMarker] === true;
}

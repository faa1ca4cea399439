/**
 * `kafka` source: reads JSON records from Kafka topics (or a topic pattern) in a consumer group and
 * maps them to canonical events with the shared mapping config.
 *
 * Consumption is non-flowing: a background loop calls `consume(n)` and keeps at most `max_buffered`
 * records in memory. At that bound it first just stops taking records: librdkafka's own prefetch queue
 * is bounded (queued.min.messages, queued.max.messages.kbytes), so fetching stops by itself and nothing
 * prefetched is thrown away. Only when the pipeline stalls for longer (`stallPauseMs`) does it pause
 * every assigned partition (librdkafka then drops what it prefetched and refetches it on resume) and
 * keep calling `consume`, so rebalances and `max.poll.interval.ms` stay served; it resumes below half.
 * The runtime pulls batches from that buffer only when the pipeline has room.
 *
 * Watermarks are kept per partition (largest event time minus the entry's max_out_of_orderness; times
 * further than max_ahead_of_clock ahead of the clock do not count) and combined by minimum over
 * partitions that are not idle: an event within the entry's idle_timeout, or records still to read
 * (see KafkaSource.idle).
 *
 * Offsets are never auto-committed: the runtime calls `commit(position)` after every sink flushed
 * (at-least-once); with `guarantee: exactly-once` the offsets go into the pipeline's Kafka transaction
 * instead (see transactions.ts).
 */
import { isUtf8 } from 'node:buffer';
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import {
  absentFieldCheck,
  createEventMapper,
  unknownEventTypeWarning,
  defineSource,
  fieldPath,
  fieldText,
  formatDuration,
  isRejected,
  isSkipped,
  rejectionOf,
  mappingOf,
  notUtf8Rejection,
  isInheritedName,
  ownValue,
  parseDuration,
  setOwnField,
  timerDurationMax,
  timeOffsetReporter,
  TributaryError,
  valueAtPath,
  type ClickEvent,
  type CommitMarks,
  type Counter,
  type EntryProblem,
  type Gauge,
  type GaugeFamily,
  type MappingConfig,
  type MappingSetting,
  type PartitionListener,
  type OutlineEntry,
  type PipelineOutline,
  type PluginContext,
  type Rejection,
  type SourceHealth,
  type SourcePosition,
} from 'tributary';
import type * as RdKafka from 'node-rdkafka';
import {
  asError,
  brokerList,
  ConnectionFailures,
  connectionProperties,
  connectUnlessStopped,
  ErrorCode,
  exactlyOnceMismatch,
  fatalErrorOf,
  fatalHint,
  guaranteeProperty,
  hasExactlyOnceKafkaSink,
  isBrokersDown,
  isGroupDenied,
  isoTime,
  isTimedOut,
  isUnknownTopicOrPartition,
  librdkafkaConnection,
  checkpointLogGone,
  listsTopic,
  partitionOfError,
  provideOauthToken,
  promisify,
  rdkafka,
  redactProperties,
  refusedOptions,
  throughLookupLane,
  toTopicPartitionOffsets,
  type ConnectionConfig,
  type Guarantee,
  type PartitionOffsets,
  withTlsFiles,
} from './common.js';
import { PipelineTransactions } from './transactions.js';

export interface KafkaSourceConfig extends ConnectionConfig {
  topics?: string[];
  pattern?: string;
  group: string;
  /** `earliest`, `latest`, or a date and time with its UTC offset (RFC 3339): the first record at or after it (offsetsForTimes). */
  start_from: 'earliest' | 'latest' | string;
  event_time: 'field' | 'timestamp';
  key_field?: string;
  mapping?: MappingSetting;
  guarantee: Guarantee;
  max_buffered?: number;
  poll_timeout: string | number;
  /** How long the group may give no assignment before /readyz says not ready; {@link DEFAULT_ASSIGNMENT_TIMEOUT} when absent. */
  assignment_timeout?: string | number;
  stop_at_end: boolean;
}

interface PartitionState {
  topic: string;
  partition: number;
  /** `topic-partition`, as Kafka names its log folders: the id scale-out files state under. */
  id: string;
  /** Next offset after the last record consumed into the buffer (consume side; `next` is the read side). */
  fetched: number | undefined;
  /** Next offset after the last record handed to the runtime; undefined before the first. */
  next: number | undefined;
  maxTime: number;
  /**
   * When a record of it last gave an event (one dead-lettered does not count), or its idle clock started
   * (see {@link KafkaSource.idle}).
   */
  lastActivity: number;
  /**
   * Assigned, and no fetch answer for it seen yet: its idle clock has not started (its first records may
   * still be on their way), so it holds the watermark.
   */
  unfetched: boolean;
  assigned: boolean;
  /** Reached the end of the partition (stop_at_end). */
  atEnd: boolean;
  /** Counts this instance's assignments of the partition: a position taken in an earlier one is stale. */
  assignment: number;
  /** The consume round under way when it was last taken away (see KafkaSource.round); -1: none was. */
  releasedInRound: number;
  /** The offset last handed to a commit (a blocked partition's is committed again only once it moved). */
  committing: number | undefined;
  /** The partition's end offset as last looked up by noteFetched (-1: not yet). */
  endSeen: number;
  /**
   * The largest high watermark librdkafka cached for it in this assignment (-1: none yet), see knownEnd:
   * its cache follows every fetch answer, and an errored one (a leader change) sets it to -1, a new
   * leader's answer may give a lower one for a while; the partition's end does not move back.
   */
  highSeen: number;
  /**
   * read_committed: the brokers' last stable offset, at the position it was asked at (watchProgress)
   * and when: at or below that position, nothing is readable yet (another producer's transaction is
   * open, its records past it), however far the high watermark is. Trusted for `stableEndTrustMs`.
   */
  stableEnd?: { position: number; offset: number; at: number };
  /**
   * Where reading starts in this assignment while librdkafka has no position (nothing read yet): the
   * offset it was assigned at, else what the brokers said (the committed offset, else `start_from`'s
   * end), once watchProgress asked. Undefined until known.
   */
  startOffset?: number | undefined;
  /**
   * The offset a checkpoint's position (seek) started this assignment at: the partition's position
   * until a record of it is read. Without it a checkpoint taken before then (a restart, then a stop or
   * an interval with no record of the partition) held no offset of it, and the restart after that one
   * started at the group's committed offset instead, which may be older (a commit that failed, or a
   * crash between a checkpoint and its commit) or set by hand (`kafka-consumer-groups --reset-offsets`).
   */
  resumedAt?: number | undefined;
  /** Assigned at its log's start whatever start_from says (an added partition: addedPartitions), in this assignment. */
  fromLogStart?: boolean;
  /**
   * While not assigned: the offset after its last record handed to the runtime before it was revoked.
   * The pipeline's state holds its input up to there, so a checkpoint's position names it: exactly-once
   * until the partition is forgotten (forgetRevoked: its hand-over known committed), for covers() to judge
   * against the group's committed offsets (its hand-over commit may have failed); at-least-once while the
   * group is not known to have it committed (see position()).
   */
  revokedAt?: number | undefined;
}

/**
 * A record batch librdkafka cannot read (its CRC does not match, with `check.crcs`; it does not
 * decompress). librdkafka reports it at the batch's first offset, again at every fetch, and reads no
 * further. Its records go to the dead-letter sink, one per offset, and reading goes on after it. Where
 * the batch ends is not reported, so it is searched for: a fetch from an offset inside it fails the
 * same way; one from past it reads records, meets another such batch, or brings nothing (records of an
 * aborted transaction). The partition's end offset bounds the search (a fetch past the end would
 * reset the position: `start_from`).
 */
interface UnreadableBatch {
  state: PartitionState;
  /** The batch's first offset, and why librdkafka cannot read it (its own words). */
  base: number;
  reason: string;
  /** The first offset not yet accounted for: the batch's first, or where an earlier search of it left off. */
  from: number;
  /** The largest offset known to be inside the batch, and the smallest known past it. */
  inside: number;
  past: number;
  /** The offset fetched from now, and since when (waiting for the brokers' answer meanwhile). */
  probe: number;
  probedAt: number;
}

/** An assigned partition librdkafka reads nothing more from (see KafkaSource.blocked). */
interface BlockedPartition {
  state: PartitionState;
  /** librdkafka's words. */
  reason: string;
  /**
   * The brokers deny its fetch (TOPIC_AUTHORIZATION_FAILED): read again once they answer one (see
   * allowedAgain). False for a batch in a codec this build lacks, or a stall: only a record says so.
   */
  denied: boolean;
}

const KAFKA_TIMESTAMP_FIELD = '\u0000kafka_timestamp';
/** How long a full buffer may wait for the runtime before the partitions are paused. */
const stallPauseMs = 1_000;
/**
 * How long a rebalance may leave the source without an assignment (after a revocation that left it
 * none) before /readyz says so, unless `assignment_timeout` says otherwise: a rebalance takes seconds,
 * so only a longer wait is news. (Before its first assignment the source is not ready anyway: a first
 * join takes about 3 s, the broker's group.initial.rebalance.delay.ms; past this bound it says so.)
 */
const DEFAULT_ASSIGNMENT_TIMEOUT = '30s';
/**
 * Most time between requests for every topic's metadata when none is due sooner (see probe); the
 * requests in between name one topic (nextTopicToName).
 */
const clusterCheckMs = 30_000;
/**
 * Most time between requests for every topic while the `pattern` matches none: a topic created for it
 * is read within about that (librdkafka on its own: topic.metadata.refresh.interval.ms, 5 min).
 */
const unmatchedPatternCheckMs = 10_000;
/**
 * How long a fetch from an offset after an unreadable batch may bring nothing before that offset counts
 * as past the batch: a fetch from inside it fails again within a round trip.
 */
const probeQuietMs = 5_000;
/**
 * How long librdkafka may deliver no record of an assigned partition while the brokers hold committed
 * records past its position (and the source keeps asking for records) before the partition counts as
 * stalled (watchProgress).
 */
const noProgressMs = 10_000;

/** librdkafka's logical offset of a partition's first record (RD_KAFKA_OFFSET_BEGINNING), to assign a partition at. */
const OFFSET_BEGINNING = -2;
/**
 * How long a last stable offset the brokers gave (watchProgress asks again every noProgressMs while a
 * partition's position stays below its high watermark) counts: a transaction may have ended since, and
 * its records, readable now, must not be taken for none (see hasRecordsToRead).
 */
const stableEndTrustMs = 2 * noProgressMs;

export default defineSource<KafkaSourceConfig>({
  name: 'kafka',
  emits: ['event'],
  partitioned: true,
  status: 'beta',
  summary: 'Reads JSON records from Kafka topics in a consumer group, with per-partition watermarks and committed offsets.',
  description:
    'Each record value is one JSON object, mapped to the canonical event by `mapping`. A value that is not a JSON object, ' +
    'or that the mapping rejects, goes to the dead-letter sink with its topic, partition, offset and key (`key`; base64 with ' +
    '`keyEncoding: base64` when it is not UTF-8 text), so it can be replayed whole; one that is not UTF-8 text ' +
    '(a binary value) goes there as its exact bytes, base64 (`encoding: base64`), and a tombstone (a null value) as ' +
    '`tombstone (null value)` with `raw` null. Event time comes from ' +
    'the mapped time field or from the record timestamp. Offsets are committed only after every sink has flushed the ' +
    'outputs (at-least-once), or inside the Kafka transaction that writes the outputs (`guarantee: exactly-once`). ' +
    'While every broker is unreachable the source keeps running, reports not ready, and resumes when one returns. It also ' +
    'reports not ready while a subscribed topic does not exist, while it cannot read an assigned partition (the brokers deny ' +
    'its fetch; a record batch in a compression codec this build lacks; librdkafka delivers nothing more from it though the brokers ' +
    'hold records past its position, as at a damaged LZ4 batch), while the brokers refuse it its group (no Read on the group), ' +
    'from its subscription (a start, a restart) until its group\'s first assignment (an empty one too: an idle member), and ' +
    'while a later rebalance has left it no assignment for longer than `assignment_timeout` (30 s by default). A record batch librdkafka cannot read (damaged) goes to the dead-letter sink, one ' +
    'dead letter per offset, and reading goes on after it. A consumer librdkafka declares dead (a fatal error: fenced by ' +
    'another with its `group.instance.id`) fails the source, and the pipeline stops with librdkafka\'s reason.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['brokers', 'group'],
    // So `validate` finds it too (it was only the factory's check); the description is the message.
    allOf: [{ description: 'Exactly one of `topics` and `pattern`.', oneOf: [{ type: 'object', properties: { topics: true }, required: ['topics'] }, { type: 'object', properties: { pattern: true }, required: ['pattern'] }] }],
    properties: {
      ...connectionProperties,
      topics: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Topics to read (give this or `pattern`).' },
      pattern: {
        type: 'string',
        minLength: 1,
        description:
          'Regular expression (POSIX extended, as librdkafka reads it) of topics to read, e.g. `^clicks\\..*` (give this or `topics`); new matching topics are ' +
          'picked up. It is anchored at its start (a leading `^` is added where missing) and not at its end: `clicks` reads `clicks-dlq` too (end it with `$`). ' +
          'One that matches a topic a `kafka` sink of this pipeline writes on the same brokers (its dead-letter topic, say) is a config error: every record ' +
          'written there would be read again.',
      },
      group: { type: 'string', minLength: 1, description: 'Consumer group: instances with one group split the partitions; committed offsets are kept per group.' },
      start_from: {
        // In allOf with a short description of its own: validate's message for a value of neither form is that description.
        allOf: [{ description: 'earliest, latest, or a date and time with its UTC offset (RFC 3339), such as 2026-12-01T00:00:00Z', anyOf: [{ enum: ['earliest', 'latest'] }, { type: 'string', format: 'date-time' }] }],
        default: 'earliest',
        description:
          'Where a partition with no committed offset starts: its first record (`earliest`), only new ones (`latest`), or its first record ' +
          'whose Kafka timestamp is at or after a point in time, a date and time with its UTC offset (RFC 3339, e.g. `2026-12-01T00:00:00Z`; ' +
          'librdkafka\'s offsetsForTimes; a partition with no record since starts at its end). A checkpoint\'s offsets and the group\'s committed ' +
          'offsets come first: a point in time applies to a new group (a replay beside the live pipeline) or one whose offsets were deleted, ' +
          'not to a group that committed (docs/operations.md, Reprocessing and replays). A partition added to a topic after this ' +
          'source first read it (the topic grown, or deleted and created again with more partitions) starts at its first record either way, ' +
          'said in the log: `latest` would skip the records written to it before the group noticed it.',
      },
      event_time: {
        enum: ['field', 'timestamp'],
        default: 'field',
        description: "Event time from the mapped time field (`mapping.fields.time`, `mapping.time_format`), or from the Kafka record's timestamp.",
      },
      key_field: {
        type: 'string',
        minLength: 1,
        format: 'field-path',
        description:
          "Raw field that receives the record's key when the value has no such field, e.g. `user_id` when producers key by user. " +
          'A path (`user.id`, `ids[0]`) is looked up as a mapping reads it, the whole name first, then the path into nested objects and lists; ' +
          'a value with neither gets the key as the field of the whole name (`"user.id"`), which the mapping reads first. ' +
          "A key that is not UTF-8 text sends such a record to the dead-letter sink, with the key's exact bytes in base64 as " +
          '`key` (`keyEncoding: base64`) beside the value as `raw`.',
      },
      mapping: { $ref: 'tributary:mapping' },
      guarantee: guaranteeProperty,
      max_buffered: {
        type: 'integer',
        minimum: 1,
        description: 'Most records held in memory before the partitions are paused (back pressure). Default: twice settings.max_in_flight.',
      },
      poll_timeout: { $ref: 'tributary:duration', default: '100ms', maxDuration: timerDurationMax, description: 'How long one consume call waits for a first record.' },
      assignment_timeout: {
        $ref: 'tributary:duration',
        default: DEFAULT_ASSIGNMENT_TIMEOUT,
        minDuration: '1s',
        description:
          'How long a rebalance may leave this source no assignment (after a revocation that left it none) before /readyz says ' +
          'not ready: a rebalance that does not end, or a group it cannot rejoin. A rebalance takes seconds; a group whose ' +
          'rebalances take longer (many members, slow ones) needs a longer bound. Before the group\'s first assignment (after a ' +
          'start or a restart) the source reads nothing and is not ready whatever this says; past it, its reason says so.',
      },
      stop_at_end: {
        type: 'boolean',
        default: false,
        description: 'End the input once every assigned partition has been read to its end (backfills, tests). Default: run forever.',
      },
    },
  },
  examples: [
    { brokers: '${KAFKA_BROKERS}', topics: ['clicks'], group: 'tributary-intent' },
    {
      brokers: ['kafka-1:9093', 'kafka-2:9093'],
      pattern: '^clicks\\..*',
      group: 'tributary-churn',
      event_time: 'timestamp',
      key_field: 'user_id',
      guarantee: 'exactly-once',
      security: { sasl: { mechanism: 'SCRAM-SHA-512', username: '${KAFKA_USER}', password: '${KAFKA_PASSWORD}' } },
    },
  ],
  checkPipeline(config, pipeline, self) {
    const problems = ownOutputsRead(config, pipeline);
    for (const { name, why } of refusedOptions(config.options, 'consumer')) problems.push({ field: fieldText(['options', name]), message: why });
    const sink = hasExactlyOnceKafkaSink(pipeline);
    if (config.guarantee === 'exactly-once' && !sink) problems.push({ field: 'guarantee', message: exactlyOnceMismatch.sourceWithoutSink });
    if (config.guarantee !== 'exactly-once' && sink) problems.push({ field: 'guarantee', message: exactlyOnceMismatch.sourceNotExactlyOnce });
    problems.push(...coPartitionProblems(config, pipeline, self));
    return problems;
  },
  replayNotes(config) {
    const notes: string[] = [];
    // In a replay the file source reads the mapping as written: this source puts its own fields in it (below: KAFKA_TIMESTAMP_FIELD, key_field).
    const fields = mappingOf(config.mapping)?.fields as Record<string, string | undefined> | undefined;
    if (config.event_time === 'timestamp') {
      notes.push(
        `event_time: timestamp takes event time from each Kafka record's timestamp, which a file's lines do not carry: the replay reads it from the field ` +
          `'${fields?.time ?? 'time'}' (mapping.fields.time, in mapping.time_format, ISO 8601 by default) instead; set it to the data's own field if that differs`,
      );
    }
    if (config.key_field !== undefined) {
      notes.push(`key_field: ${config.key_field} is filled from each Kafka record's key where the value lacks it; a file's lines carry no key, so a line without that field stays without it`);
    }
    return notes;
  },
  async create(config, context) {
    if ((config.topics === undefined) === (config.pattern === undefined)) throw new Error('give exactly one of `topics` and `pattern`');
    const Kafka = await rdkafka();
    const found = PipelineTransactions.find(context.shared);
    const transactions = config.guarantee === 'exactly-once' ? found : undefined;
    // validate and PipelineRunner say these first (checkPipeline); this is for an instance made outside a runner.
    if (config.guarantee === 'exactly-once' && !transactions) throw new Error(exactlyOnceMismatch.sourceWithoutSink);
    // An exactly-once sink's transactions commit with this source's offsets: read at-least-once,
    // none would ever commit, and read_committed consumers would see none of the outputs.
    if (found && !transactions) throw new Error(exactlyOnceMismatch.sourceNotExactlyOnce);
    if (transactions) transactions.sourceAttached = true;
    return new KafkaSource(Kafka, withTlsFiles(config, context.baseDir), context, transactions);
  },
});


/** The consumer's fetch and prefetch settings (bench/kafka.ts's client floor uses them too). */
export const CONSUMER_TUNING = {
  // Prefetch stays bounded in librdkafka too, not only in our buffer (per partition: ~20k records or 16 MiB).
  'queued.max.messages.kbytes': 16_384,
  'queued.min.messages': 20_000,
  // Latency: the broker answers a fetch at once when data is there (fetch.min.bytes 1); these bound
  // the wait when it is not, the pause after an empty fetch, and after a full local queue (default
  // 500 ms, 500 ms and 1 s), each of which a record arriving then would otherwise wait out.
  'fetch.wait.max.ms': 50,
  'fetch.error.backoff.ms': 20,
  'fetch.queue.backoff.ms': 20,
  'isolation.level': 'read_committed',
} as const;

/** The marks a committed offset's metadata holds (withMarks: space-separated), none where it has none. */
function marksOf(tp: RdKafka.TopicPartitionOffset): string[] {
  return tp.offset >= 0 && tp.metadata ? tp.metadata.split(' ').filter((mark) => mark !== '') : [];
}

/** One consume call and the handling of its answer (KafkaSource.round): its number, and who waits for its end. */
interface ConsumeRound {
  number: number;
  ended: (() => void)[];
}

/** What a commit's failure is logged as (ConnectionFailures.logError), and forgotten as at a commit that succeeds (settled). */
const commitFailedMessage = 'kafka offset commit failed; a restart replays from the previous commit';
/** What the consumer's errors are logged as, and forgotten as at an assignment (settled). */
const consumerErrorMessage = 'kafka consumer error';

class KafkaSource {
  private readonly consumer: RdKafka.KafkaConsumer;
  /**
   * Each partition assigned here, by key, and each revoked one until the group's next assignment leaves
   * it out with nothing of it still needed (forgetRevoked): a run of months over a topic pattern meets
   * partitions without end.
   */
  private readonly partitions = new Map<string, PartitionState>();
  /** The assignment each partition of a position() was in, for commit() to skip stale ones. */
  private readonly positionAssignments = new WeakMap<SourcePosition, Map<PartitionState, number>>();
  /** Consumed records not yet handed to the runtime, as the chunks consume() returned them (no copying). */
  private chunks: RdKafka.Message[][] = [];
  /** End-of-partition events of the last consume call, applied once its records are buffered. */
  private ends: { key: string; offset: number }[] = [];
  private buffered = 0;
  /** Resolved when read() takes records: the consume loop waits on it while the buffer is full. */
  private taken: (() => void) | undefined;
  private readonly maxBuffered: number;
  private readonly pollTimeout: number;
  private readonly assignmentTimeout: number;
  private readonly maxOutOfOrderness: number;
  private readonly idleTimeout: number;
  /** Event times further ahead of the clock do not advance a partition's watermark (PluginContext.watermark). */
  private readonly maxAheadOfClock: number;
  private readonly map: ReturnType<typeof createEventMapper>;
  /** Says once which optional fields the mapping names that none of the first records had (a misnamed or nested field). */
  private readonly absentFields: ReturnType<typeof absentFieldCheck>;
  /** Offsets to start from at the next assignment, by partition key: a checkpoint's (`seek`), or a hand-over's the brokers refused to commit (revokeCommitted). */
  private readonly seekTo = new Map<string, number>();
  /** The keys of the starts startsOutsideCheckpoint found at `start_from`'s point in time, not a checkpoint's: no note that the group's offset differs. */
  private readonly timeStarts = new Set<string>();
  /** The keys of `seekTo` that a refused hand-over commit set (revokeCommitted), not a checkpoint: see startsOutsideCheckpoint. */
  private readonly refusedHandOvers = new Set<string>();
  /**
   * How many partitions each topic read here had as this source last knew it: as its checkpoint says
   * (seek: the position names them), else as the brokers listed the topic at its first assignment in
   * this run; raised as partitions past it are assigned, 0 once the topic is seen deleted. A partition
   * past it was added since (the topic grown, or deleted and created again with more): see addedPartitions.
   */
  private readonly layouts = new Map<string, number>();
  private paused = false;
  private closing = false;
  /** Ends the connect's tries (close(), or the pipeline's stop) while the consumer connects. */
  private stopConnecting: (() => void) | undefined;
  /** The marks the group's committed offsets carry (their metadata) as far as known here (noteCommitted), by partition key. */
  private readonly knownMarks = new Map<string, string[]>();
  /** The group's committed offsets as far as known here (noteCommitted), by partition key. */
  private readonly knownCommitted = new Map<string, number>();
  /** Exactly-once: settles once the last transaction commit() asked for has committed or failed. */
  private lastCommit: Promise<void> | undefined;
  /** The consumer's connect, once: by covers() before the first read, or by the consume loop. */
  private connecting: Promise<void> | undefined;
  private connected = false;
  /** Why its connections to the brokers fail (librdkafka logs it; its errors do not say). */
  private readonly connectionFailures: ConnectionFailures;
  private healthy: SourceHealth = { ready: false, detail: 'connecting' };
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** Asynchronous offset commits sent and not yet answered (offset_commit_cb), and who waits for none. */
  private commitsInFlight = 0;
  private commitsSettled: (() => void) | undefined;
  private lastProbe = 0;
  /** The metadata request under way (startProbe), which close() waits for. */
  private probing: Promise<void> | undefined;
  /** How many times the source was found not ready (setUnhealthy): a probe's answer counts only if none came meanwhile. */
  private losses = 0;
  /**
   * Since when the source has had no assignment: from its subscription, and from a revocation that
   * left it none, until the group's next assignment (even an empty one: a member of a group with more
   * members than partitions is idle, not stuck). Undefined while assigned.
   */
  private unassignedSince: number | undefined;
  private warnedUnassigned = false;
  /**
   * Set at the group's first assignment since the subscription (an empty one too). Until then the
   * source reads nothing and is not ready, whatever `assignment_timeout` says: that bound is the grace
   * of a later rebalance, which a running member rides out (as Kafka Streams is CREATED, then
   * REBALANCING, and RUNNING only once its first assignment came).
   */
  private assignedOnce = false;
  /**
   * Scale-out: the assignments whose partitions' state the runtime is restoring (or is about to: an
   * assignment waits its turn behind the rebalance steps before it), each with its partitions' ids and
   * when it came, removed as its step ends. Not ready meanwhile: none of those partitions is read until
   * its state is restored, as Kafka Streams stays REBALANCING until its tasks' restoration completes.
   */
  private readonly restoring = new Set<{ ids: readonly string[]; since: number }>();
  /**
   * scale_out with several sources: the assignment whose partitions wait for the runtime's `assigned` (its tasks wait
   * for the other sources' partitions), assigned in librdkafka already (paused) so that a rebalance can come meanwhile;
   * `abandoned` once one did (PartitionListener.abandoned).
   */
  private awaitingAssigned: { ids: readonly string[]; abandoned: boolean } | undefined;
  /**
   * The brokers' last refusal of the group to this client (GROUP_AUTHORIZATION_FAILED: no Read ACL on the
   * group), in librdkafka's words, and when: it cannot join, so no assignment ever comes. Counts while
   * it came since the source was last without an assignment; the next assignment ends it.
   */
  private groupDenied: { reason: string; at: number } | undefined;
  /** Subscribed topics the last metadata answer lacked (for a pattern: the pattern, when no topic matched). */
  private missingTopics: string[] = [];
  /** The topics a `pattern` matched in the last answer for every topic (what its standby names). */
  private matchedTopics: string[] = [];
  /** When the brokers last answered a request for every topic's metadata. */
  private lastClusterCheck = 0;
  /**
   * The client said a topic or partition is unknown, or an answer lacked a topic the source reads:
   * the consume loop asks for every topic's metadata at once.
   */
  private clusterCheckDue = false;
  private failure: Error | undefined;
  /** Scale-out: the runtime's side of rebalances (saves and restores partition state). */
  private listener: PartitionListener | undefined;
  private stopTokens: () => void = () => undefined;
  /** node-rdkafka's build features (`oidc` or not). */
  private readonly features: readonly string[];
  /** Rebalance steps run one after another: an assignment waits for the revocation before it. */
  private rebalancing: Promise<void> = Promise.resolve();
  /** Revoked partitions whose offsets (and, scale-out, state) the runtime's checkpoint under way commits (revokeCommitted, revokeWithState). */
  private readonly handingOver = new Set<PartitionState>();
  /** Exactly-once: the last checkpoint's transaction was held, not committed (transactionOffsets): said once until one commits. */
  private writesHeld = false;
  /** A committed-offsets request under way: disconnect waits for it (node-rdkafka runs it without the lock its disconnect takes). */
  private offsetsFetch: Promise<unknown> | undefined;
  /** The look at the group's committed offsets after a resume from a checkpoint (sayCommittedDiffers): disconnect waits for it. */
  private resumeCheck: Promise<void> | undefined;
  private readonly label: string;
  private lastState: PartitionState | undefined;
  /** Why the consumer cannot go on (librdkafka raised a fatal error): the source stops and stays not ready. */
  private fatal: string | undefined;
  /**
   * Assigned partitions librdkafka reads nothing more from, by key, with its words: the brokers deny
   * their fetch (an ACL without Read), or a record batch uses a compression codec this build of
   * librdkafka lacks (zstd). Not ready until a record of each is read again (a denied one: its fetch answered), or the group assigns it anew.
   */
  private readonly blocked = new Map<string, BlockedPartition>();
  /** Partitions at a record batch librdkafka cannot read, by key: the search for the batch's end. */
  private readonly unreadable = new Map<string, UnreadableBatch>();
  /** Assigned partitions behind the brokers' cached high watermark: the position last seen, and since when (watchProgress). */
  private readonly progress = new Map<string, { position: number; since: number }>();
  private lastProgressCheck = 0;
  /**
   * Records of the assigned partitions not yet through this source (exportLag), and how many partitions it
   * is assigned. A family of no labels of its own, so that its one series can be removed: with no partition
   * assigned there is no lag to measure, and a 0 would read as "caught up".
   */
  private readonly lagGauge: GaugeFamily;
  /** The lag per partition (topic, partition), so that one partition stuck behind does not hide in the sum. */
  private readonly partitionLag: GaugeFamily;
  /** The partitions whose lag series exist (by key): removed once no longer assigned. */
  private readonly partitionLagSeries = new Map<string, { topic: string; partition: string }>();
  private readonly assignedGauge: Gauge;
  /** Back-pressure pauses (pause()). */
  private readonly pauses: Counter;
  /** Partitions this source paused in librdkafka and has not resumed since, assigned or not. */
  private readonly pausedInClient = new Set<string>();
  private lastLagExport = 0;
  /** Start offsets being looked up for the lag of partitions not read from yet (exportLag). */
  private lagStarts: Promise<void> | undefined;
  /**
   * When a consume call last returned fewer records than it asked for: librdkafka's queue held nothing
   * more then, so every record fetched before was delivered (watchProgress).
   */
  private queueDrainedAt = -Infinity;
  /**
   * librdkafka's positions of the assigned partitions when the consume call now under way began, else
   * undefined (see hasRecordsToRead).
   */
  private positionsBeforeConsume: Map<string, number | undefined> | undefined;
  /**
   * The consume call under way and the handling of its answer, numbered, with who waits for its end
   * (afterRound): undefined between them. Records taken from librdkafka before a revocation are dropped
   * only if their partition is not assigned when the answer is looked at; given back meanwhile (an
   * eager rebalance whose revocation and assignment both come while one call runs), they passed for
   * the new assignment's, which reads them again. So a partition taken away during a round is given
   * back only after it.
   */
  private round: ConsumeRound | undefined;
  /** A revoked partition forgetRevoked kept for the consume round under way only: forgotten at its end (endRound). */
  private forgetAfterRound = false;
  private rounds = 0;
  /** An error consumeBatch met after taking a record: thrown by its next call (see consumeBatch). */
  private heldConsumeError: unknown;
  /** A last-stable-offset request under way (watchProgress): disconnect waits for it, as for offsetsFetch. */
  private endQuery: Promise<unknown> | undefined;
  /** A committed-offsets request for revoked partitions kept for a refused hand-over commit (checkKeptCommitted): disconnect waits for it. */
  private keptCheck: Promise<void> | undefined;
  /** Stand-ins in the buffer for the records of an unreadable batch (they carry no value): their dead letters' reasons. */
  private readonly skipped = new WeakMap<RdKafka.Message, string>();
  /** Records librdkafka delivered at an offset they cannot have (see noteFetched): their dead letters' reasons. */
  private readonly misplacedRecords = new WeakMap<RdKafka.Message, string>();

  constructor(
    Kafka: typeof RdKafka,
    private readonly config: KafkaSourceConfig,
    private readonly context: PluginContext,
    private readonly transactions: PipelineTransactions | undefined,
  ) {
    this.label = context.label;
    this.features = Kafka.features;
    this.maxBuffered = config.max_buffered ?? 2 * context.batchSize;
    this.lagGauge = context.metrics.gaugeFamily(
      'kafka_consumer_lag',
      'Records of the assigned partitions not yet through the source: the high watermark minus the read position, plus records read and waiting in its buffer. No sample while no partition is assigned (see kafka_assigned_partitions).',
      [],
    );
    this.partitionLag = context.metrics.gaugeFamily(
      'kafka_partition_lag',
      'Records of one assigned partition not yet through the source: its high watermark minus the read position, plus its records read and waiting in the buffer (the parts of kafka_consumer_lag).',
      ['topic', 'partition'],
    );
    this.assignedGauge = context.metrics.gauge('kafka_assigned_partitions', 'Partitions assigned to the source.');
    this.pauses = context.metrics.counter('kafka_pauses_total', 'Times the source paused fetching its partitions: its buffer was full and the pipeline took nothing for a second (back pressure).');
    this.pollTimeout = parseDuration(config.poll_timeout);
    this.assignmentTimeout = parseDuration(config.assignment_timeout ?? DEFAULT_ASSIGNMENT_TIMEOUT);
    this.maxOutOfOrderness = context.watermark?.maxOutOfOrderness ?? 5_000;
    this.idleTimeout = context.watermark?.idleTimeout ?? 60_000;
    this.maxAheadOfClock = context.watermark?.maxAheadOfClock ?? 86_400_000;
    const mapping: MappingConfig = mappingOf(config.mapping) ?? {};
    this.map = createEventMapper(
      config.event_time === 'timestamp' ? { ...mapping, fields: { ...mapping.fields, time: KAFKA_TIMESTAMP_FIELD }, time_format: 'epoch_ms' } : mapping,
      unknownEventTypeWarning(context.logger),
      // Its first time read with an offset of its own (+01:00) is told to the stages, once (session-features' hours).
      timeOffsetReporter(context.shared, context.label),
      // An erasure request without a time is taken (no event-time meaning); its NaN time moves no partition's watermark.
      context.erasureEventType,
    );
    this.absentFields = absentFieldCheck(mapping, context.logger, `topics ${config.topics?.join(', ') ?? config.pattern ?? ''}`, context.metrics);
    const properties: Record<string, unknown> = {
      // scale_out with several sources: this member's name first, so the range assignor (which sorts the consumers by
      // member id, the client.id and a broker's UUID) ranks this member's consumers alike on every topic: partition p
      // of each comes here together. Without it the UUIDs ranked them at random, and half the rebalances split a task.
      ...librdkafkaConnection(config, context.scaleOutMember === undefined ? `tributary-${context.pipeline}-${context.label}` : `tributary-${context.pipeline}-${context.scaleOutMember}-${context.label}`, Kafka.features),
      'group.id': config.group,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'enable.partition.eof': config.stop_at_end,
      ...CONSUMER_TUNING,
      'socket.keepalive.enable': true,
      // Rebalances are handled here: assignments start at seek() positions, revocations drop buffered records.
      rebalance_cb: (error: RdKafka.LibrdKafkaError, assignment: RdKafka.TopicPartition[]) => this.onRebalance(error, assignment),
      offset_commit_cb: (error: RdKafka.LibrdKafkaError | null, committed?: RdKafka.TopicPartitionOffset[]) => {
        // The answer to assignmentLost()'s question, not to a commit.
        if (error && (error.code === ErrorCode.NO_OFFSET || error.code === ErrorCode.ASSIGNMENT_LOST)) return;
        // At-least-once: a failed commit only means a longer replay after a crash, so it is logged, not fatal.
        if (error) this.commitFailed(error, committed ?? []);
        else if (committed) {
          this.noteCommitted(committed);
          // The commits' refusal (if any) is over: the next one is news again.
          this.connectionFailures.settled(commitFailedMessage);
        }
        if (this.commitsInFlight > 0 && --this.commitsInFlight === 0) this.commitsSettled?.();
      },
      ...(config.options ?? {}),
    };
    context.logger.debug({ kafka: redactProperties(properties) }, 'kafka source configured');
    this.consumer = throughLookupLane(new Kafka.KafkaConsumer(properties as RdKafka.ConsumerGlobalConfig, { 'auto.offset.reset': config.start_from === 'latest' ? 'latest' : 'earliest' }));
    this.consumer.on('event.error', (error) => this.onClientError(error));
    this.connectionFailures = new ConnectionFailures(this.consumer, context.logger, 'the source reads nothing until one answers, then reads on where it was', brokerList(config));
    // node-rdkafka emits these before the consume callback hands over the records they follow, so
    // they are applied after those records are buffered (applyEnds).
    this.consumer.on('partition.eof', (eof) => void this.ends.push({ key: partitionKey(eof.topic, eof.partition), offset: eof.offset }));
  }

  // ---- Source API ----

  async *read(): AsyncGenerator<ClickEvent[]> {
    // The consume loop's failure (a subscription librdkafka rejects, an OAUTHBEARER token it cannot
    // get, say) fails this source (failSource). Unobserved, the rejection ended the whole process.
    this.loop ??= this.run().catch((error: unknown) => this.failSource(asError(error)));
    // Exactly-once: the pipeline runs (every sink and stage opened), so the transactional producer may
    // now fence its predecessor; it starts alongside the consumer's connect, and the sinks' ready()
    // reports its failure.
    if (this.transactions) void this.transactions.open();
    const batchSize = this.context.batchSize;
    const signal = this.context.signal;
    signal?.addEventListener('abort', () => this.notify(), { once: true });
    while (!this.closing && !signal?.aborted) {
      if (this.failure) throw this.failure;
      if (this.buffered === 0) {
        if (this.config.stop_at_end && this.reachedEnd()) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      // Nothing is taken while the runtime holds the sources: a rebalance then hands over the position,
      // which must not count records the pipeline has not pushed (their outputs are not written yet).
      const hold = this.context.held?.();
      if (hold) {
        await hold;
        // A turn of the event loop before taking: a checkpoint queued behind this hold (a rebalance's
        // commitNow) claims the sources first. Taken at once, the batch counted in the position that
        // checkpoint took before its pump could push it.
        await setImmediate();
        continue;
      }
      // Yielded even when empty (every record taken went to the dead-letter sink), so the runtime waits
      // for that sink's room before the next pull: looping on here wrote to one that had none.
      yield this.decode(this.take(batchSize));
    }
  }

  watermark(): number {
    const now = this.context.clock.now();
    let combined = Infinity;
    let anyActive = false;
    let mostAdvanced = -Infinity;
    let least = Infinity;
    let allBlocked = true;
    for (const state of this.partitions.values()) {
      if (!state.assigned) continue;
      const own = state.maxTime - this.maxOutOfOrderness;
      if (own > mostAdvanced) mostAdvanced = own;
      if (own < least) least = own;
      if (!this.blocked.has(partitionKey(state.topic, state.partition))) allBlocked = false;
      if (this.idle(state, now)) continue;
      anyActive = true;
      if (own < combined) combined = own;
    }
    if (anyActive) return combined;
    // Exactly-once with every partition blocked: none follows another. Their offsets are left out of the
    // transactions while they do not move (commit()), so a transaction then carries no offset, and no mark
    // of the checkpoint it goes with: sessions the watermark closed by their idleness alone were committed,
    // and a restart restored the older checkpoint the marks still named and closed them again. It stays
    // where they hold it (the runtime never takes one back) until one of them is read again.
    if (this.transactions && allBlocked && least !== Infinity) return least;
    // Every partition idle: follow the most advanced one, as the runtime does across sources.
    return mostAdvanced;
  }

  position(): SourcePosition {
    const offsets: PartitionOffsets = {};
    const assignments = new Map<PartitionState, number>();
    for (const state of this.partitions.values()) {
      // One being handed over stands where it stood while assigned, read from or not: its hand-over's
      // checkpoint commits it there (commit()), with the mark of the state that checkpoint saves.
      const held = state.assigned || this.handingOver.has(state);
      const next = state.next ?? (held ? state.resumedAt : this.revokedUncommitted(state));
      if (next === undefined) continue;
      (offsets[state.topic] ??= {})[String(state.partition)] = next;
      assignments.set(state, state.assignment);
    }
    // The topics' partition counts go with it: a restart tells the partitions added meanwhile (addedPartitions).
    const position: SourcePosition = this.layouts.size > 0 ? { offsets, partitions: Object.fromEntries(this.layouts) } : { offsets };
    this.positionAssignments.set(position, assignments);
    return position;
  }

  /**
   * A revoked partition's offset for the position. At-least-once names it only while the group is not
   * known to hold it committed (the hand-over's commit refused, in a broker outage): a restart then
   * starts the partition there, where the state stands, not at the older committed offset, which read
   * its records again into state that held them (a chaos soak's sessions counted events twice). Once
   * committed, the group's offset says the same, and another member may move it on meanwhile.
   */
  private revokedUncommitted(state: PartitionState): number | undefined {
    const at = state.revokedAt;
    if (at === undefined || this.transactions) return at;
    return at > (this.knownCommitted.get(partitionKey(state.topic, state.partition)) ?? -1) ? at : undefined;
  }

  seek(position: SourcePosition): void {
    // Whatever the guarantee: what the checkpoint knew of each topic tells the partitions added since.
    for (const [topic, count] of Object.entries((position.partitions ?? {}) as Record<string, unknown>)) {
      if (typeof count === 'number' && Number.isSafeInteger(count) && count >= 0) this.layouts.set(topic, count);
    }
    // Exactly-once: the offsets committed in the last transaction are the truth (they moved atomically
    // with the outputs); an older position would write those outputs twice.
    if (this.transactions) return;
    const offsets = (position.offsets ?? {}) as PartitionOffsets;
    for (const [topic, partitions] of Object.entries(offsets)) {
      for (const [partition, offset] of Object.entries(partitions)) this.seekTo.set(partitionKey(topic, Number(partition)), Number(offset));
    }
  }

  /**
   * Exactly-once: whether the group's committed offsets cover a checkpoint's (each at or past it), since
   * this source resumes from them whatever the checkpoint says (seek). A transaction that failed after
   * its checkpoint was written leaves that checkpoint past them. The transactional producer starts first
   * (the pipeline runs): its initTransactions aborts a predecessor's open transaction (a crash, a stop in
   * an outage), whose offsets the brokers would otherwise withhold until transaction_timeout.
   * At-least-once resumes from the checkpoint's offsets: every checkpoint is covered.
   */
  async covers(position: SourcePosition): Promise<boolean> {
    const named = toTopicPartitionOffsets((position.offsets ?? {}) as PartitionOffsets);
    if (!this.transactions || named.length === 0) return true;
    const committedOf = (tp: RdKafka.TopicPartitionOffset): number | undefined => this.knownCommitted.get(partitionKey(tp.topic, tp.partition));
    const past = (): RdKafka.TopicPartitionOffset[] => named.filter((tp) => !(tp.offset <= (committedOf(tp) ?? -1)));
    // The last transaction this run asked for may be the one that commits them.
    await this.lastCommit;
    if (past().length === 0) return true;
    try {
      await this.transactions.open();
      await this.connectOnce();
      if (!this.connected) return true; // stopped while connecting: nothing is read
      this.noteCommitted(await this.fetchCommitted(named.map(({ topic, partition }) => ({ topic, partition }))));
    } catch (error) {
      // Told to stop meanwhile: nothing is read, so any answer will do.
      if (this.closing || this.context.signal?.aborted) return true;
      throw error;
    }
    const uncovered = await this.withoutGoneLogs(past(), committedOf);
    if (uncovered.length > 0) {
      this.context.logger.info(
        { partitions: uncovered.map((tp) => ({ partition: `${tp.topic}/${tp.partition}`, checkpoint: tp.offset, committed: committedOf(tp) ?? null })) },
        'kafka source: a checkpoint is past the group\'s committed offsets',
      );
    }
    return uncovered.length === 0;
  }

  /**
   * `uncovered` less the partitions whose records no one can read again (checkpointLogGone): of a topic
   * deleted (a pattern's topics come and go), or deleted and created again. Nothing of theirs can be read
   * twice or written twice, so they do not decide which checkpoint the state comes from; a pipeline that
   * ran for months would otherwise find every checkpoint uncovered and start with empty state. A
   * re-created topic is read as a new one: from the group's committed offset, else `start_from`. Asked
   * only where the group holds no committed offset (the brokers drop a deleted topic's); each partition
   * said once per run. A failed look leaves `uncovered` as it is.
   */
  private async withoutGoneLogs(uncovered: RdKafka.TopicPartitionOffset[], committedOf: (tp: RdKafka.TopicPartitionOffset) => number | undefined): Promise<RdKafka.TopicPartitionOffset[]> {
    const unknown = uncovered.filter((tp) => committedOf(tp) === undefined);
    if (unknown.length === 0) return uncovered;
    const gone = new Map<RdKafka.TopicPartitionOffset, 'deleted' | 'recreated'>();
    try {
      // Every topic's metadata, not the topics named: a request naming a deleted topic would have a broker
      // with auto.create.topics.enable create it again.
      const metadata = await promisify<RdKafka.Metadata>((cb) => this.consumer.getMetadata({ timeout: 5_000 }, cb));
      for (const tp of unknown) {
        const listed = listsTopic(metadata, tp.topic);
        const log = listed ? await promisify<RdKafka.WatermarkOffsets>((cb) => this.consumer.queryWatermarkOffsets(tp.topic, tp.partition, 5_000, cb)) : undefined;
        const why = checkpointLogGone(tp, metadata, log);
        if (why) gone.set(tp, why);
      }
    } catch {
      return uncovered;
    }
    const unsaid = [...gone].filter(([tp]) => !this.saidGone.has(partitionKey(tp.topic, tp.partition)));
    if (unsaid.length > 0) {
      for (const [tp] of unsaid) this.saidGone.add(partitionKey(tp.topic, tp.partition));
      const list = unsaid
        .map(([tp, why]) => `${tp.topic}/${tp.partition} at ${tp.offset} (${why === 'deleted' ? 'its topic deleted' : 'its topic deleted and created again: its log ends below that offset'})`)
        .join(', ');
      this.context.logger.warn(
        { partitions: unsaid.map(([tp, why]) => ({ partition: `${tp.topic}/${tp.partition}`, checkpoint: tp.offset, topic: why })) },
        `kafka source: a checkpoint names partitions whose records can no longer be read, and the group holds no committed offset of them: ${list}. ` +
          `The checkpoint is judged by its other partitions; a topic created again is read from start_from (${this.config.start_from})`,
      );
    }
    return uncovered.filter((tp) => !gone.has(tp));
  }

  /** Partitions withoutGoneLogs has said are gone, so each is said once per run (covers() is asked after every checkpoint). */
  private readonly saidGone = new Set<string>();

  /**
   * A revoked partition's read positions go, the one it was assigned at (resumedAt) too; where it stood
   * stays for the position (revokedAt). One let go already keeps where it stood then: revoked again from an
   * assignment given up before it was read (scale_out with several sources: PartitionListener.abandoned),
   * which marked nothing assigned. Its offset of the assignment before, kept, went into that revocation's
   * hand-over commit and moved the group's committed offset back under the member that had read on since:
   * its next restore found no state file at that offset (pruned) and read those records again into empty state.
   */
  private letGo(state: PartitionState): void {
    this.blocked.delete(partitionKey(state.topic, state.partition));
    state.revokedAt = state.next ?? state.resumedAt ?? state.revokedAt;
    state.next = undefined;
    state.resumedAt = undefined;
    state.fetched = undefined;
  }

  /** Offsets the group is known to hold committed: the brokers' answer, or a commit of this run's they acknowledged. */
  private noteCommitted(offsets: readonly RdKafka.TopicPartitionOffset[]): void {
    for (const tp of offsets) {
      const key = partitionKey(tp.topic, tp.partition);
      const known = this.knownCommitted.get(key) ?? -1;
      if (tp.offset > known) this.knownCommitted.set(key, tp.offset);
      // At an equal offset too: a later commit's marks (its metadata) replace the earlier ones.
      if (tp.offset >= known && tp.offset >= 0) this.knownMarks.set(key, marksOf(tp));
    }
  }

  commit(position: SourcePosition, marks?: CommitMarks): Promise<void> {
    // Only partitions this instance still owns: another group member may own (and commit) the rest.
    // And only in the assignment the position was taken in: the runtime flushes sinks between
    // position() and commit(), and a rebalance meanwhile may have handed a partition over (committing
    // newer offsets) and back; the stale offsets would move the group backwards and replay outputs.
    const assignments = this.positionAssignments.get(position);
    const held = toTopicPartitionOffsets((position.offsets ?? {}) as PartitionOffsets).filter((tp) => {
      const state = this.partitions.get(partitionKey(tp.topic, tp.partition));
      if (!state || (!state.assigned && !this.handingOver.has(state))) return false;
      const takenIn = assignments?.get(state);
      return takenIn === undefined || takenIn === state.assignment;
    });
    const offsets = held.filter((tp) => !this.leftUncommitted(this.partitions.get(partitionKey(tp.topic, tp.partition))!, tp.offset));
    for (const tp of offsets) this.partitions.get(partitionKey(tp.topic, tp.partition))!.committing = tp.offset;
    if (this.transactions) {
      // Expelled, the revocation that says so not handled yet: as loseCommitted, this commit fails. (Sent,
      // the offsets would go with the group metadata librdkafka has after the expulsion, not the one they were read in.)
      if (this.connected && this.assignmentLost()) this.abandonTransaction([...this.partitions.values()].filter((state) => state.assigned).map((state) => `${state.topic}/${state.partition}`));
      const sent = this.transactionOffsets(offsets, held);
      if (sent === undefined) {
        this.holdWrites(held);
        return Promise.resolve();
      }
      this.writesHeld = false;
      const marked = this.withMarks(sent, marks);
      const { sealed, committed } = this.transactions.commit(marked, this.connected ? this.consumer : undefined);
      // The transaction was aborted: stop with this error (a restart resumes from the last commit).
      this.lastCommit = committed.then(() => this.noteCommitted(marked), (error: unknown) => this.keepFailure(asError(error)));
      return sealed;
    }
    if (offsets.length === 0 || !this.connected || this.fatal !== undefined) return Promise.resolve();
    // Expelled from the group (its session or max.poll.interval expired: a stalled process), and the
    // revocation that says so not handled yet: a checkpoint in between names partitions the group has
    // given another member, which reads them from the committed offsets. Not committed: a commit of
    // them would move the group's offsets under that member (the brokers take one where the group has
    // gone empty meanwhile), and the revocation that follows commits nothing either (revokeCommitted).
    if (this.assignmentLost()) {
      this.context.logger.warn(
        { source: this.label, partitions: offsets.map((tp) => `${tp.topic}/${tp.partition}`) },
        'kafka source: this member lost its partitions (its session or max.poll.interval.ms expired: a stalled process, or the brokers unreachable that long): the checkpoint\'s offsets of them are not committed; the group gives them to another member, which reads them on from the committed offsets',
      );
      return Promise.resolve();
    }
    // Asynchronous: the offsets are final (every sink flushed), so nothing needs to wait for the
    // broker's answer; the barrier would otherwise hold the whole pipeline for one round trip per
    // commit. Commits of one consumer are sent in order; close() waits for the answers.
    try {
      this.consumer.commit(offsets);
      this.commitsInFlight++;
    } catch (error) {
      this.commitFailed(error, offsets);
    }
    return Promise.resolve();
  }

  /**
   * A periodic commit that failed (at-least-once), said as the source's other client errors are
   * (ConnectionFailures.logError): one warning per error text, naming the commit's partitions, until a
   * commit succeeds (settled) or a connection succeeds again after an outage; repeats at debug level. The commits in flight when the
   * group expels this member (or the brokers go away) all fail at once with one error: each was a
   * warning of its own (nine in one millisecond at a partition loss).
   */
  private commitFailed(error: unknown, offsets: readonly RdKafka.TopicPartition[]): void {
    this.connectionFailures.logError(asError(error), commitFailedMessage, {
      source: this.label,
      partitions: offsets.map((tp) => `${tp.topic}/${tp.partition}`),
    });
  }

  /**
   * Whether a commit leaves `state`'s `offset` out: it is blocked and did not move since it was last handed
   * to a commit. The brokers refuse the commit of a partition whose fetch they deny (at-least-once: logged;
   * exactly-once: the transaction fails, and with it a stop or a hand-over, though nothing of it was read),
   * and the group holds that offset already. One that moved (records read before it stopped) is committed:
   * where the brokers deny it, at-least-once reads those records again after a restart, and exactly-once's
   * transaction, which holds their outputs, fails and the pipeline restarts, as it must.
   */
  private leftUncommitted(state: PartitionState, offset: number): boolean {
    return this.blocked.has(partitionKey(state.topic, state.partition)) && state.committing === offset;
  }

  /**
   * Exactly-once: what the transaction sends of `offsets` (the position's offsets of the partitions held
   * in this assignment, `held`, less the blocked ones that did not move: leftUncommitted), or undefined
   * where it must not commit now (holdWrites).
   *
   * Left out: partitions assigned at the group's committed offset whose first fetch no answer has come
   * for yet (unmoved: nothing of them read). Such a partition may be one the brokers deny, found so only
   * at that answer: its offset in a transaction made the brokers refuse it (TOPIC_AUTHORIZATION_FAILED)
   * and the pipeline restart, where a checkpoint came between a rebalance or a start giving it to a
   * member and that answer (a loaded machine: kafka-acl.test.ts failed so). Left out, the group keeps
   * that offset with its older marks, which still name its state: no record of it was read, and its
   * watermark follows no other until an answer came (idle), so nothing of it closed by time either.
   *
   * The marks (withMarks) are what a restore goes by: it takes the newest checkpoint that the committed
   * offsets of the position's partitions name. So a transaction that holds writes (sessions closed by
   * their idleness, a stage's timer) must put the checkpoint's mark on at least one of them; committed
   * with none, a restore took the older checkpoint the marks still named and wrote those outputs again.
   * Where no offset is left to carry it (every partition unanswered, or blocked and unmoved):
   * - with no write since the last commit, none is needed: a restore from the older checkpoint commits
   *   nothing twice;
   * - at a hand-over (a revocation's checkpoint), every held partition's offset goes, with the mark: the
   *   partitions leave, and no later commit of this member may have one to carry it. The brokers refuse
   *   one they deny, and the pipeline restarts from the checkpoint the marks name (exactly-once kept);
   * - otherwise (a periodic checkpoint, the last one at a stop) the transaction is not committed
   *   (undefined): its writes stay in it and go with the next commit that has an offset to carry that
   *   commit's mark, normally the next checkpoint's, once a fetch of a partition is answered. Nowhere
   *   else can carry it: the group's other partitions are other members' to commit (committing them
   *   would move their offsets under them), and whether an unanswered partition is one the brokers let
   *   this member commit is known only from its fetch answer. A restart meanwhile (a crash, a stop: the
   *   open transaction is aborted) restores the checkpoint the marks name and writes those outputs again,
   *   once. The cost is delay only; past transaction_timeout (every partition denied for that long) the
   *   brokers abort the transaction, its commit fails and the pipeline restarts, as any failed one.
   * Scale-out: each partition's state is its own, and its watermark stays put until the answer, so a
   * transaction with none of them changes no state their marks name. (A member restoring its partitions'
   * state reads none of them until restored, and a checkpoint may come first.)
   */
  private transactionOffsets(offsets: RdKafka.TopicPartitionOffset[], held: RdKafka.TopicPartitionOffset[]): RdKafka.TopicPartitionOffset[] | undefined {
    const now = this.context.clock.now();
    const kept = offsets.filter((tp) => {
      const state = this.partitions.get(partitionKey(tp.topic, tp.partition))!;
      return state.resumedAt !== tp.offset || this.fetchAnswered(state, now);
    });
    // Without the no-write case, a member's first checkpoint 21 ms after its assignment (loaded) sent
    // them all, and failed on a denied one. With no partition held, the position names none whose marks
    // a restore could read (covers alone decides).
    if (kept.length > 0 || this.listener || held.length === 0 || this.transactions!.writesSinceCommit() === 0) return kept;
    if (this.handingOver.size > 0) return held;
    return undefined;
  }

  /**
   * A checkpoint whose transaction is held (see transactionOffsets): said once until a commit goes, naming
   * the partitions and why none can carry the mark.
   */
  private holdWrites(held: readonly RdKafka.TopicPartitionOffset[]): void {
    if (this.writesHeld) return;
    this.writesHeld = true;
    const why = (tp: RdKafka.TopicPartitionOffset): string => (this.blocked.has(partitionKey(tp.topic, tp.partition)) ? 'cannot be read' : 'no fetch answered since its assignment');
    this.context.logger.info(
      { source: this.label, partitions: held.map((tp) => `${tp.topic}/${tp.partition}`) },
      `kafka source: the checkpoint's transaction holds outputs, and no partition of it can carry the checkpoint's mark with its offset yet (${held.map((tp) => `${tp.topic}/${tp.partition}: ${why(tp)}`).join(', ')}): ` +
        'it is not committed now; its outputs go with the next commit that can (a restart before then resumes from the checkpoint the group\'s offsets name, and writes them again)',
    );
  }

  /**
   * Exactly-once: the offsets with the checkpoint files they go with as their commit's metadata (the
   * pipeline's checkpoint, and in scale_out the partition's own file), so a restore can tell which file
   * the last committed transaction belongs to (committedMarks, assignWithState). At-least-once resumes
   * from a checkpoint's offsets (or, in scale_out, restores the file its committed offset covers) and
   * stores none.
   */
  private withMarks(offsets: RdKafka.TopicPartitionOffset[], marks: CommitMarks | undefined): RdKafka.TopicPartitionOffset[] {
    if (!marks || !this.transactions) return offsets;
    return offsets.map((tp) => {
      const own = marks.partitions?.get(this.partitions.get(partitionKey(tp.topic, tp.partition))?.id ?? '');
      const metadata = [marks.checkpoint, own].filter((mark) => mark !== undefined).join(' ');
      return metadata === '' ? tp : { ...tp, metadata };
    });
  }

  /**
   * Exactly-once: the marks the group's committed offsets of the partitions `position` names were
   * committed with (their metadata: withMarks), for the runtime to restore the checkpoint the last
   * committed transaction goes with. At-least-once: none (covers() takes every checkpoint).
   */
  async committedMarks(position: SourcePosition): Promise<readonly string[]> {
    const named = toTopicPartitionOffsets((position.offsets ?? {}) as PartitionOffsets);
    if (!this.transactions || named.length === 0) return [];
    await this.lastCommit;
    // Known from this run's commits (and the brokers' answers): asked after each checkpoint's commit.
    const known = named.map((tp) => this.knownMarks.get(partitionKey(tp.topic, tp.partition)));
    if (known.every((marks) => marks !== undefined)) return known.flat();
    let committed: RdKafka.TopicPartitionOffset[];
    try {
      await this.transactions.open();
      await this.connectOnce();
      if (!this.connected) return []; // stopped while connecting: nothing is read
      committed = await this.fetchCommitted(named.map(({ topic, partition }) => ({ topic, partition })));
    } catch (error) {
      if (this.closing || this.context.signal?.aborted) return [];
      throw error;
    }
    this.noteCommitted(committed);
    return committed.flatMap((tp) => marksOf(tp));
  }

  /**
   * Not ready once the consumer hit a fatal error (the source fails), while no broker answers, while a
   * subscribed topic does not exist, while librdkafka cannot read an assigned partition (`blocked`),
   * until the group's first assignment since the subscription (after a start or a restart: it reads
   * nothing yet), or while the group has given this source no assignment for longer than
   * `assignment_timeout` after a revocation (a rebalance that does not end, a group it cannot rejoin
   * after an outage): as Kafka Streams is not RUNNING then. Reads state only; the consume loop's
   * metadata requests keep it current.
   */
  health(): SourceHealth {
    if (this.fatal !== undefined) return { ready: false, detail: this.fatal };
    // Its first connect: why the brokers refuse, once librdkafka logged it, and the fix for a wrong address.
    if (!this.healthy.ready) return this.healthy.detail === 'connecting' ? { ready: false, detail: this.connectionFailures.explain('connecting') } : this.healthy;
    if (this.missingTopics.length > 0) return { ready: false, detail: missingDetail(this.config, this.missingTopics) };
    if (this.blocked.size > 0) return { ready: false, detail: blockedDetail(this.blocked.values()) };
    const denied = this.groupDeniedDetail();
    if (denied !== undefined) return { ready: false, detail: denied };
    const waited = this.unassignedSince === undefined ? 0 : this.context.clock.now() - this.unassignedSince;
    const bound = `assignment_timeout ${formatDuration(this.assignmentTimeout)}`;
    // Since when, not for how long: the reason stays the same from one probe to the next while nothing changes.
    const since = this.unassignedSince === undefined ? '' : ` since ${isoTime(this.unassignedSince)}`;
    if (!this.assignedOnce) {
      const past = waited >= this.assignmentTimeout ? `, over its ${bound} (a rebalance that does not end, a group it cannot join, or an earlier member of it whose session has not expired)` : '';
      return { ready: false, detail: `waiting for the group's first assignment (group '${this.config.group}', ${subscriptionNamed(this.config)})${since}${past}` };
    }
    if (waited >= this.assignmentTimeout) {
      return { ready: false, detail: `no partitions assigned by group '${this.config.group}'${since}, over its ${bound} (a rebalance that does not end, or a group it cannot join)` };
    }
    if (this.restoring.size > 0) {
      const steps = [...this.restoring];
      const ids = [...new Set(steps.flatMap((step) => step.ids))];
      const first = Math.min(...steps.map((step) => step.since));
      return { ready: false, detail: `restoring the scale_out state of partition${ids.length === 1 ? '' : 's'} ${ids.join(', ')} (none of them is read until it is restored) since ${isoTime(first)}` };
    }
    return this.healthy;
  }

  onPartitions(listener: PartitionListener): void {
    this.listener = listener;
  }

  partitionWatermarks(): ReadonlyMap<string, number> {
    const now = this.context.clock.now();
    const combined = this.watermark();
    const marks = new Map<string, number>();
    for (const state of this.partitions.values()) {
      if (!state.assigned) continue;
      const own = state.maxTime - this.maxOutOfOrderness;
      // An idle partition follows the others, as it does in the combined watermark. Exactly-once, not one
      // that is blocked: its offset is left out of the transactions while it does not move (commit()), so
      // they cannot commit it with the mark of a state file its watermark changed (sessions closed by time
      // alone), and its next owner would restore the older file its offset names and close them again.
      // Its task's watermark stays where it stood (the runtime never takes one back) until it is read again.
      const follows = this.idle(state, now) && !(this.transactions && this.blocked.has(partitionKey(state.topic, state.partition)));
      marks.set(state.id, follows ? Math.max(own, combined) : own);
    }
    return marks;
  }

  idlePartitions(): ReadonlySet<string> {
    const now = this.context.clock.now();
    const idle = new Set<string>();
    for (const state of this.partitions.values()) if (state.assigned && this.idle(state, now)) idle.add(state.id);
    return idle;
  }

  /**
   * Whether an assigned partition is idle: no event read from it for idle_timeout (a record that goes to
   * the dead-letter sink is none), and nothing left to read (hasRecordsToRead). Its clock starts at the
   * first fetch answer for it that this sees (librdkafka caches the partition's high watermark from
   * it; a local call), not at the assignment: the first fetch can take longer than idle_timeout (a
   * loaded machine or broker, a scale-out state restore, the partitions paused while the buffer is
   * full), and a partition declared idle before its records came would let the watermark pass them
   * (late). One with nothing to read (empty, or read to its end before) starts its clock at that answer
   * too, so it holds the watermark for idle_timeout after it, not for ever.
   */
  private idle(state: PartitionState, now: number): boolean {
    if (!this.fetchAnswered(state, now)) return false;
    return now - state.lastActivity >= this.idleTimeout && !this.hasRecordsToRead(state, now);
  }

  /**
   * Whether a fetch of the assigned partition was answered since its assignment: a record of it, a
   * denial (onBlocked), or the high watermark librdkafka caches from an answer (0 or more; a denied one
   * caches -1). Its idle clock starts at the answer this finds.
   */
  private fetchAnswered(state: PartitionState, now: number): boolean {
    if (!state.unfetched) return true;
    let highOffset = -1;
    try {
      highOffset = this.consumer.getWatermarkOffsets(state.topic, state.partition).highOffset;
    } catch {
      // Not known yet.
    }
    if (highOffset < 0) return false;
    state.unfetched = false;
    state.lastActivity = now;
    return true;
  }

  /**
   * Whether an assigned partition still has records to read (lag > 0): some in this source's buffer, or
   * its position (librdkafka's, past control records and aborted transactions; else where reading
   * starts, once known) below its high watermark as librdkafka cached it from the last fetch answer (a
   * local call). Such a partition is not idle, however long its records wait: behind another partition's
   * in librdkafka's queue, or on the brokers while the buffer is full. Where reading starts is not known
   * yet (nothing read since the assignment), one whose log holds records counts as having some
   * (watchProgress learns the start, 10 s on). One the source cannot read (`blocked`) is judged by time
   * alone: its records are not coming. Records librdkafka handed to a consume call whose answer the
   * source has not handled yet count as still to read (positionsBeforeConsume).
   */
  private hasRecordsToRead(state: PartitionState, now: number): boolean {
    if (state.fetched !== undefined && state.next !== state.fetched) return true;
    if (this.blocked.has(partitionKey(state.topic, state.partition))) return false;
    const tp = { topic: state.topic, partition: state.partition };
    let log: RdKafka.WatermarkOffsets;
    let position: number | undefined;
    try {
      log = this.consumer.getWatermarkOffsets(tp.topic, tp.partition);
      // While a consume call is under way, librdkafka's position already counts the records it took for
      // it, which the source holds only once its answer is handled (a loaded machine: seconds later):
      // those records are still to read, so the position from before the call counts.
      position = this.positionsBeforeConsume ? this.positionsBeforeConsume.get(partitionKey(tp.topic, tp.partition)) : this.consumer.position([tp])[0]?.offset;
    } catch {
      // Not known (disconnected): nothing to judge by.
      return false;
    }
    // -1 (no fetch answered yet in this assignment, or only errored ones since): the end seen before.
    const high = this.knownEnd(state, log.highOffset);
    if (high < 0) return false;
    const from = typeof position === 'number' && position >= 0 ? position : state.startOffset;
    if (from === undefined) return high > Math.max(log.lowOffset, 0);
    if (from >= high) return false;
    // read_committed, held by another producer's open transaction: its records are not readable until it
    // ends (Kafka's own consumer counts lag to the last stable offset so; Kafka Streams then idles the
    // partition, max.task.idle.ms). Not while that answer may be stale, nor once the position moved.
    const stable = state.stableEnd;
    return !(stable !== undefined && stable.position === from && stable.offset <= from && now - stable.at < stableEndTrustMs);
  }

  /**
   * The partition's end offset as far as this assignment has seen it: librdkafka's cached high watermark
   * `cached` (from the last fetch answer for it), or a larger one it cached before. The cache follows
   * every answer: an errored one (a leader change, NOT_LEADER_OR_FOLLOWER) sets it to -1, a new
   * leader's may be lower until its high watermark catches up; records below the larger one exist all
   * the same. -1 while none is known.
   */
  private knownEnd(state: PartitionState, cached: number): number {
    if (cached > state.highSeen) state.highSeen = cached;
    return state.highSeen;
  }

  /** Scale-out (Source.partitionsLost): librdkafka takes the assignment as lost, the revocation not handled yet. */
  partitionsLost(): boolean {
    return this.connected && !this.closing && this.assignmentLost();
  }

  committedOffsets(): ReadonlyMap<string, number> {
    // Revoked ones too: the runtime writes a partition's last file after its revocation began.
    const offsets = new Map<string, number>();
    for (const [key, offset] of this.knownCommitted) {
      const state = this.partitions.get(key);
      if (state) offsets.set(state.id, offset);
    }
    return offsets;
  }

  partitionOffsets(): ReadonlyMap<string, number> {
    const offsets = new Map<string, number>();
    for (const state of this.partitions.values()) if ((state.assigned || this.handingOver.has(state)) && state.next !== undefined) offsets.set(state.id, state.next);
    return offsets;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.stopConnecting?.();
    this.notify();
    this.taken?.();
    await this.loop?.catch(() => undefined);
    await this.probing;
    // The last transaction may still be committing (after its barrier): it needs the consumer's group metadata.
    await this.transactions?.settled();
    if (this.connected && this.commitsInFlight > 0) {
      // The last commits' answers come through consume() calls; poll until they are in (bounded).
      const settled = new Promise<void>((resolve) => (this.commitsSettled = resolve));
      const deadline = Date.now() + 10_000;
      this.consumer.setDefaultConsumeTimeout(this.pollTimeout);
      while (this.commitsInFlight > 0 && Date.now() < deadline) {
        await Promise.race([settled, promisify<RdKafka.Message[]>((cb) => this.consumer.consume(1, cb)).catch(() => [])]);
      }
    }
    if (this.connected) {
      this.connected = false;
      await this.offsetsFetch?.catch(() => undefined);
      await this.resumeCheck;
      await this.endQuery;
      await this.keptCheck;
      await this.lagStarts;
      await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
    }
    this.stopTokens();
  }

  // ---- consumption ----

  private async run(): Promise<void> {
    await this.connectOnce();
    // Stopped while connecting (the pipeline's signal, before close() came): nothing to read, and a
    // subscribe on the unconnected consumer failed the stop with librdkafka's "Erroneous state".
    if (this.closing || !this.connected) return;
    // librdkafka reads a subscription that starts with ^ as a regular expression.
    const pattern = this.config.pattern;
    const topics: RdKafka.SubscribeTopicList = pattern ? [pattern.startsWith('^') ? pattern : `^${pattern}`] : (this.config.topics ?? []);
    this.consumer.subscribe(topics);
    this.unassignedSince = this.context.clock.now();
    while (!this.closing && this.fatal === undefined) {
      this.exportLag();
      if (!this.paused && this.buffered >= this.maxBuffered) {
        // Full: wait for the runtime to take records; pause only if it stalls (see the top of the file).
        if (await this.roomWithin(stallPauseMs)) continue;
        if (this.closing) break;
        this.pause();
      } else if (this.paused && this.buffered <= this.maxBuffered / 2) {
        this.resume();
      }
      const round: ConsumeRound = { number: ++this.rounds, ended: [] };
      this.round = round;
      try {
        let messages: RdKafka.Message[];
        const asked = this.paused ? 1 : Math.min(this.context.batchSize, this.maxBuffered - this.buffered);
        this.positionsBeforeConsume = this.librdkafkaPositions();
        try {
          messages = await this.consumeBatch(asked);
          if (messages.length < asked) this.queueDrainedAt = this.context.clock.now();
        } catch (error) {
          this.positionsBeforeConsume = undefined;
          this.onClientError(error as RdKafka.LibrdKafkaError);
          // No records to look at: an assignment need not wait out the pause.
          this.endRound(round);
          // Errors about an unreadable batch are the answers of its search: the next step at once.
          if (!this.unreadable.has(errorPartitionKey(error))) await sleep(200);
          continue;
        }
        // Noted below in this same turn: from here on, librdkafka's positions match what the source holds.
        this.positionsBeforeConsume = undefined;
        if (this.unreadable.size > 0) messages = this.probeAnswers(messages);
        if (this.blocked.size > 0) {
          this.readAgain(messages);
          this.allowedAgain();
        }
        if (messages.length > 0) {
          await this.confirmEnds(messages);
          let kept = messages;
          for (let i = 0; i < messages.length; i++) {
            const message = messages[i]!;
            const state = this.stateOf(message.topic, message.partition);
            if (state?.assigned) {
              this.noteFetched(state, message);
            } else {
              // A record of a partition revoked meanwhile belongs to its new owner now.
              kept = messages.filter((m) => this.stateOf(m.topic, m.partition)?.assigned);
              break;
            }
          }
          if (kept !== messages) for (const message of kept) this.noteFetched(this.stateOf(message.topic, message.partition)!, message);
          if (kept.length > 0) {
            this.chunks.push(kept);
            this.buffered += kept.length;
          }
          this.applyEnds();
          this.notify();
        } else if (this.applyEnds()) {
          this.notify();
        }
      } finally {
        this.endRound(round);
      }
      // A metadata request every 2 s (1 s while not ready), whether records come or not, says
      // whether the brokers are there. Records do not: librdkafka fetched them ahead, maybe before
      // the brokers went away, and its error event saying so waits behind them in the consumer's
      // queue. Nor do its error events alone, for a broker that vanished without closing its
      // connections. See probe for which topics it asks about.
      if (!this.probing && (this.clusterCheckDue || this.context.clock.now() - this.lastProbe > this.probeInterval())) this.startProbe();
      if (this.unreadable.size > 0) this.quietProbes();
      this.watchProgress();
      this.warnIfUnassigned();
      if (this.config.stop_at_end && this.reachedEnd()) this.notify();
    }
  }

  /**
   * Up to `max` records: what is already fetched if any (one call), else waits up to poll_timeout for
   * the first and then takes only what is already fetched (node-rdkafka's consume(n) waits its timeout
   * for each record until it has n, which would hold records back for as long as they keep coming).
   */
  private async consumeBatch(max: number): Promise<RdKafka.Message[]> {
    const held = this.heldConsumeError;
    if (held !== undefined) {
      this.heldConsumeError = undefined;
      throw held;
    }
    if (max > 1) {
      this.consumer.setDefaultConsumeTimeout(0);
      const ready = await promisify<RdKafka.Message[]>((cb) => this.consumer.consume(max, cb));
      if (ready.length > 0 || this.closing) return ready;
    }
    this.consumer.setDefaultConsumeTimeout(this.pollTimeout);
    const first = await promisify<RdKafka.Message[]>((cb) => this.consumer.consume(1, cb));
    if (first.length === 0 || max <= 1 || this.closing) return first;
    this.consumer.setDefaultConsumeTimeout(0);
    let rest: RdKafka.Message[];
    try {
      rest = await promisify<RdKafka.Message[]>((cb) => this.consumer.consume(max - 1, cb));
    } catch (error) {
      // An error next in librdkafka's queue (a denied fetch of another partition, say): `first` is taken
      // from the queue already, and librdkafka's position is past it; thrown now, it would be lost for
      // good (later commits pass it). It is delivered, and the error thrown by the next call, as
      // node-rdkafka's patched consume(n) holds an error met after records.
      this.heldConsumeError = error;
      return first;
    }
    return rest.length === 0 ? first : first.concat(rest);
  }

  private connectOnce(): Promise<void> {
    return (this.connecting ??= this.connect());
  }

  private async connect(): Promise<void> {
    try {
      this.stopTokens = await provideOauthToken(this.consumer, this.config, this.features, (error) => this.context.logger.error({ err: error.message }, 'kafka OAUTHBEARER token refresh failed'));
    } catch (error) {
      this.setUnhealthy(`no OAUTHBEARER token: ${asError(error).message}`);
      throw error;
    }
    this.context.logger.info({ source: this.label, brokers: brokerList(this.config) }, 'kafka source: connecting to the brokers');
    // Tries that a stop ends between (connectUnlessStopped): one 10 s connect held a stop for up to 11 s.
    const stopped = new AbortController();
    this.stopConnecting = () => stopped.abort();
    const signal = this.context.signal;
    if (signal?.aborted) stopped.abort();
    else signal?.addEventListener('abort', this.stopConnecting, { once: true });
    try {
      while (!this.closing && !stopped.signal.aborted) {
        try {
          if (!(await connectUnlessStopped(this.consumer, { timeoutMs: 10_000, signal: stopped.signal }))) break;
          this.connected = true;
          this.setHealthy();
          return;
        } catch (error) {
          this.setUnhealthy(`cannot connect: ${this.connectionFailures.explain(asError(error).message)}`);
          // A stop ends the pause at once (the loop then leaves); rejected with an AbortError, which says nothing more.
          await sleep(1_000, undefined, { signal: stopped.signal }).catch(() => undefined);
        }
      }
      this.context.logger.info({ source: this.label }, 'kafka source: stopped while connecting to the brokers');
    } finally {
      signal?.removeEventListener('abort', this.stopConnecting);
      this.stopConnecting = undefined;
    }
  }

  /**
   * Sends a metadata request (see probe) that the consume loop does not wait for: with no broker
   * there it takes its whole timeout, and the records already fetched are still to be read meanwhile.
   */
  private startProbe(): void {
    this.probing = this.probe().finally(() => {
      this.probing = undefined;
    });
  }

  /**
   * Is any broker there, and do the subscribed topics exist? One metadata request. Every topic's
   * metadata is costly on a large cluster (docs/operations.md, Readiness), so it is asked for only to
   * find something out: at first; while a pattern matches no topic (spaced out: probeInterval); when a
   * named topic's answer contradicts the last answer for every topic (a topic read here gone, a missing
   * one created: this answer also lets librdkafka join the group at once; on its own it waits for
   * topic.metadata.refresh.interval.ms, 5 min); and every `clusterCheckMs` (a topic only other members
   * read deleted, a new topic matching the pattern). Otherwise it names one topic (nextTopicToName):
   * enough to show that the brokers answer, and whether that topic exists.
   */
  private async probe(): Promise<void> {
    const now = this.context.clock.now();
    this.lastProbe = now;
    const namedTopic = this.nextTopicToName();
    const wholeCluster = this.clusterCheckDue || namedTopic === undefined || now - this.lastClusterCheck >= clusterCheckMs;
    this.clusterCheckDue = false;
    const losses = this.losses;
    let metadata: RdKafka.Metadata;
    try {
      // One topic named, not librdkafka's local topics (allTopics false, none named): it sends a list of
      // cached topics alone with auto-creation allowed, whatever allow.auto.create.topics says, so a
      // broker with auto.create.topics.enable would re-create a topic deleted while this source read it.
      // (node-rdkafka leaked the topic handle of every request naming a topic: patched, patches/README.md.)
      const request = wholeCluster ? { timeout: 2_000 } : { timeout: 2_000, allTopics: false, topic: namedTopic! };
      metadata = await promisify<RdKafka.Metadata>((cb) => this.consumer.getMetadata(request, cb));
    } catch (error) {
      // With the cause librdkafka logged (a refused connection, a failed handshake), as the consumer's own error says it.
      if (!isBrokersDown(error as { code?: number })) return this.setUnhealthy(`metadata request failed: ${this.connectionFailures.explain(asError(error).message)}`);
      this.setUnhealthy(`broker unreachable: metadata request failed: ${this.connectionFailures.explainOutage(asError(error).message)}`, false);
      this.connectionFailures.logError(asError(error), consumerErrorMessage, { source: this.label });
      return;
    }
    // An answer to a request sent before the brokers were last reported gone may predate that news.
    if (this.losses === losses) this.setHealthy();
    if (!wholeCluster) {
      // A topic read here is gone, or a missing one exists now: the whole cluster's answer decides what
      // is missing (at once: the consume loop sends it next).
      if (listsTopic(metadata, namedTopic!) === this.missingTopics.includes(namedTopic!)) this.clusterCheckDue = true;
      return;
    }
    this.lastClusterCheck = now;
    this.forgetDeleted(metadata);
    // A topic read here and gone: created again, every partition of it is an added one (read from its start).
    for (const topic of this.layouts.keys()) if (!listsTopic(metadata, topic)) this.layouts.set(topic, 0);
    this.checkKeptCommitted();
    if (this.config.pattern !== undefined) {
      this.matchedTopics = topicsSubscribed(this.config, metadata) ?? [];
      this.unmatchedChecks = this.matchedTopics.length === 0 ? this.unmatchedChecks + 1 : 0;
    }
    const missing = missingTopics(this.config, metadata);
    if (missing.length > 0 && missing.join() !== this.missingTopics.join()) this.context.logger.warn({ source: this.label, detail: missingDetail(this.config, missing) }, 'kafka source not ready');
    else if (missing.length === 0 && this.missingTopics.length > 0) this.context.logger.info({ source: this.label }, 'kafka source: subscribed topics found');
    this.missingTopics = missing;
  }

  /**
   * Time between metadata requests: 2 s, 1 s while no broker answers. While a pattern matches no topic
   * each request is for every topic (nothing else shows a new match), and the source is not ready
   * whatever the answer, so they are spaced out: 2, 4, 8 s, then every `unmatchedPatternCheckMs`.
   */
  private probeInterval(): number {
    if (!this.healthy.ready) return 1_000;
    if (this.config.pattern === undefined || this.missingTopics.length === 0) return 2_000;
    return Math.min(unmatchedPatternCheckMs, 1_000 * 2 ** this.unmatchedChecks);
  }

  /** Answers for every topic in a row in which the pattern matched none (probeInterval). */
  private unmatchedChecks = 0;

  /** Topics each get their turn in the probes that name one. */
  private probedTopics = 0;

  /**
   * The topic the next small probe names, each in turn: a subscribed topic found missing (named, so its
   * creation shows), or one of the partitions this source holds; for a member the group gave none
   * (more members than partitions: a standby), one it subscribed to by name, or one its pattern
   * matched in the last answer for every topic; the same while it waits for an assignment (librdkafka
   * knows those topics already). Undefined while its pattern matches none (only every topic's metadata
   * shows a new match), and before the first answer for every topic.
   */
  private nextTopicToName(): string | undefined {
    if (this.config.pattern !== undefined && this.missingTopics.length > 0) return undefined;
    const names = new Set(this.missingTopics);
    for (const state of this.partitions.values()) if (state.assigned) names.add(state.topic);
    if (names.size === 0) for (const topic of this.config.topics ?? this.matchedTopics) names.add(topic);
    return names.size === 0 ? undefined : [...names][this.probedTopics++ % names.size];
  }

  private warnIfUnassigned(): void {
    // A group refused to this client was said when it came (onGroupDenied).
    if (this.unassignedSince === undefined || this.warnedUnassigned || this.groupDeniedDetail() !== undefined) return;
    if (this.context.clock.now() - this.unassignedSince < this.assignmentTimeout) return;
    this.warnedUnassigned = true;
    this.context.logger.warn({ source: this.label, detail: this.health().detail }, 'kafka source not ready');
  }

  private onClientError(error: RdKafka.LibrdKafkaError): void {
    // A consume() call reports a fatal error as ERR__FATAL; rd_kafka_fatal_error says which.
    const fatal = fatalErrorOf(this.consumer) ?? (error?.code === ErrorCode.FATAL ? asError(error) : undefined);
    if (fatal) return this.failFatally(fatal);
    const at = partitionOfError(error);
    if (at && (error.code === ErrorCode.BAD_MSG || error.code === ErrorCode.BAD_COMPRESSION || error.code === ErrorCode.NOT_IMPLEMENTED)) {
      // A record batch it cannot read. One at or past the partition's end offset (cached from the fetch
      // that brought the report) is librdkafka misreading a batch (with check.crcs, librdkafka 2.12 can):
      // the report that counts is still to come.
      const cached = this.consumer.getWatermarkOffsets(at.topic, at.partition).highOffset;
      // The largest end seen: after an errored fetch answer the cache is -1, which would bound the search to one offset.
      const state = this.partitions.get(partitionKey(at.topic, at.partition));
      const end = state ? this.knownEnd(state, cached) : cached;
      if (end >= 0 && at.offset >= end) return;
      // A batch in a codec this build lacks is valid input that another build reads: waited on, never skipped.
      if (error.code === ErrorCode.NOT_IMPLEMENTED) return this.onBlocked(at, error.message);
      return this.onUnreadableBatch(at, end, error.message);
    }
    if (at && error.code === ErrorCode.TOPIC_AUTHORIZATION_FAILED) return this.onBlocked(at, error.message, true);
    if (isGroupDenied(error)) return this.onGroupDenied(error.message);
    // Every broker down: not ready, said in the outage's one warning with its connection failures.
    if (isBrokersDown(error)) {
      this.setUnhealthy(`broker unreachable: ${this.connectionFailures.explainOutage(error.message)}`, false);
      this.connectionFailures.logError(error, consumerErrorMessage, { source: this.label, ...at });
    }
    // A subscribed topic does not exist (or went away): look at the metadata at once.
    else if (isUnknownTopicOrPartition(error)) this.clusterCheckDue = true;
    // One broker connection failing ("broker transport failure", one per connection at an outage's
    // start) or another error: warned of once until the consumer reads again (the producers' rule too).
    else if (!isTimedOut(error)) this.connectionFailures.logError(error, consumerErrorMessage, { source: this.label, ...at });
  }

  /**
   * librdkafka raised a fatal error (a static member fenced by another with its group.instance.id):
   * the consumer reads nothing more, ever. The source fails (the pipeline stops, the process exits 1,
   * a supervisor restarts it with a new consumer from the last commit) and is not ready meanwhile.
   */
  private failFatally(fatal: Error & { code?: number }): void {
    if (this.fatal !== undefined) return;
    const hint = fatalHint(fatal, { groupInstanceId: this.config.options?.['group.instance.id'] });
    this.fatal = `the consumer hit a fatal error and cannot go on: ${fatal.message}${hint}`;
    this.context.logger.error({ source: this.label, detail: this.fatal }, 'kafka source failed');
    // Without the label: the runtime's report names the source (`<label> failed: ...`).
    this.failSource(new TributaryError('TRIB_ERR_SOURCE', `${this.fatal}; a restart resumes from the last commit with a new consumer`, { cause: fatal }));
  }

  /**
   * A failed transaction: read() throws it, and the exactly-once sinks report it to the runtime
   * (PluginContext.fail, TRIB_ERR_SINK: a producer fenced is theirs, not this source's).
   */
  private keepFailure(failure: Error): void {
    this.failure ??= failure;
    this.notify();
  }

  /**
   * The source cannot go on: reported to the runtime at once (context.fail: not ready, the pipeline
   * stops), not only when it next pulls from read(), which it may not do for a while (waiting on its
   * sinks, holding the sources, no input) or ever (a caller that does not await read()); read() throws
   * it too. Not for a failed transaction (keepFailure).
   */
  private failSource(failure: Error): void {
    if (this.failure === undefined) {
      this.failure = failure;
      this.context.fail(failure);
    }
    this.notify();
  }

  /** librdkafka reads nothing more from an assigned partition (see `blocked`): not ready until it is read again. */
  private onBlocked(at: { topic: string; partition: number }, reason: string, denied = false): void {
    const key = partitionKey(at.topic, at.partition);
    const state = this.partitions.get(key);
    if (!state?.assigned || this.blocked.has(key)) return;
    // Its idle clock starts if no fetch of it was answered yet (see idle): a partition the source cannot
    // read holds the watermark of the others for idle_timeout, not for as long as it stays unreadable.
    if (state.unfetched) {
      state.unfetched = false;
      state.lastActivity = this.context.clock.now();
    }
    this.blocked.set(key, { state, reason, denied });
    this.context.logger.warn({ source: this.label, detail: blockedDetail(this.blocked.values()) }, 'kafka source not ready');
  }

  /**
   * The brokers refuse the group to this client: not ready at once, naming it (before, /readyz said ready
   * until assignment_timeout, then only that no assignment came). Said when it first comes, or changes.
   */
  private onGroupDenied(reason: string): void {
    const said = this.groupDeniedDetail();
    this.groupDenied = { reason, at: this.context.clock.now() };
    const detail = this.groupDeniedDetail();
    if (detail !== undefined && detail !== said) this.context.logger.warn({ source: this.label, detail }, 'kafka source not ready');
  }

  /** What /readyz says while the group is refused to this client and it has no assignment; undefined otherwise. */
  private groupDeniedDetail(): string | undefined {
    const denied = this.groupDenied;
    if (denied === undefined || this.unassignedSince === undefined || denied.at < this.unassignedSince) return undefined;
    return `group '${this.config.group}' refuses this client (${denied.reason}): it needs Read on the group (an ACL); ready once the group assigns it partitions`;
  }

  /** A record of a blocked partition is read (its ACL restored, say): that partition is no longer blocked. */
  private readAgain(messages: readonly RdKafka.Message[]): void {
    for (const message of messages) this.unblock(partitionKey(message.topic, message.partition));
  }

  /**
   * A denied partition whose fetch the brokers answer again (Read allowed again) is no longer blocked,
   * though no record may come to say so. The brokers answer a denied fetch with high watermark -1 and an
   * answered one with the partition's own; librdkafka caches it from every fetch answer, and
   * getWatermarkOffsets reads that cache (no request). librdkafka caches the denied answer's -1 before
   * it queues the error that reports it (rdkafka_fetcher.c), so from the error on the cache holds that
   * -1 or a later answer's: one of 0 or more is a fetch answered since the denial, whenever this looks.
   * (Before, it had to see the -1 first: an answer that came before its next look, while the event loop
   * was busy or the error waited behind other records, left the partition not ready until a record of
   * it came, for good on a quiet topic.) librdkafka refetches a denied partition every second
   * (max(1 s, 10 x fetch.error.backoff.ms)), and reports the denial once until a fetch is answered, so
   * this shows within about a second.
   */
  private allowedAgain(): void {
    for (const [key, blocked] of this.blocked) {
      if (!blocked.denied) continue;
      let highOffset: number;
      try {
        highOffset = this.consumer.getWatermarkOffsets(blocked.state.topic, blocked.state.partition).highOffset;
      } catch {
        continue;
      }
      if (highOffset >= 0) this.unblock(key);
    }
  }

  private unblock(key: string): void {
    const blocked = this.blocked.get(key);
    if (!blocked) return;
    this.blocked.delete(key);
    this.context.logger.info({ source: this.label, topic: blocked.state.topic, partition: blocked.state.partition }, 'kafka source: a partition it could not read is read again');
  }

  /**
   * A record consumed into the buffer: the partition's fetched position moves past it, unless its
   * offset is one the partition does not have yet, at or past its end offset (librdkafka's cached high
   * watermark, from the fetch answer that brought the record). A damaged batch (an LZ4 one: its frames
   * carry no checksum here) can decode so, and librdkafka 2.12 delivers such a record as it is, then
   * reads on from the batch's end: taken at its word, the position (and the offsets committed) would
   * jump past records still to come, and a restart from there would find its offset out of range and
   * start over from `start_from`. It goes to the dead-letter sink instead, with its bytes, and the
   * position stays. The end offset is looked up only for a record at or past the last one looked up.
   */
  private noteFetched(state: PartitionState, message: RdKafka.Message): void {
    if (message.offset >= state.endSeen) {
      try {
        state.endSeen = this.knownEnd(state, this.consumer.getWatermarkOffsets(state.topic, state.partition).highOffset);
      } catch {
        // Not known: nothing to judge by.
      }
      if (state.endSeen >= 0 && message.offset >= state.endSeen) {
        this.misplacedRecords.set(
          message,
          `kafka record delivered at offset ${message.offset}, at or past the partition's end offset ${state.endSeen}: a damaged record batch decoded it so; its true offset is unknown`,
        );
        this.context.logger.warn({ source: this.label, topic: state.topic, partition: state.partition, offset: message.offset, end: state.endSeen }, 'kafka source: a record at an offset past the partition\'s end (a damaged batch) goes to the dead-letter sink');
        return;
      }
    }
    state.fetched = message.offset + 1;
  }

  /**
   * Before noteFetched judges records at or past the partition's end as librdkafka cached it: the
   * brokers are asked for that end (one request per such partition, 5 s at most), and their answer
   * counts if larger. The cache follows every fetch answer, and one from a new leader whose high
   * watermark still lags the old leader's is lower than records already fetched from the old one: taken
   * at its word, those valid records would go to the dead-letter sink as misplaced. Records truly past
   * the end (a damaged batch) stay past the brokers' answer too. Without an answer, the cache decides.
   */
  private async confirmEnds(messages: readonly RdKafka.Message[]): Promise<void> {
    // Made only for a batch that reaches a partition's end as last looked up: on the hot path, most do not.
    let last: Map<PartitionState, number> | undefined;
    for (const message of messages) {
      const state = this.stateOf(message.topic, message.partition);
      if (state?.assigned && message.offset >= state.endSeen) (last ??= new Map()).set(state, Math.max(last.get(state) ?? -1, message.offset));
    }
    if (last === undefined) return;
    for (const [state, offset] of last) {
      let end: number;
      try {
        end = this.knownEnd(state, this.consumer.getWatermarkOffsets(state.topic, state.partition).highOffset);
      } catch {
        continue;
      }
      if (end < 0 || offset < end) continue;
      try {
        const answer = await promisify<RdKafka.WatermarkOffsets>((cb) => this.consumer.queryWatermarkOffsets(state.topic, state.partition, 5_000, cb));
        this.knownEnd(state, answer.highOffset);
      } catch (error) {
        this.context.logger.debug({ source: this.label, topic: state.topic, partition: state.partition, err: asError(error).message }, 'kafka source: the brokers did not say where the partition ends; the cached end decides');
      }
    }
  }

  /** librdkafka reports a record batch it cannot read (see UnreadableBatch): a search for its end starts, or takes a step. */
  private onUnreadableBatch(at: { topic: string; partition: number; offset: number }, end: number, reason: string): void {
    const key = partitionKey(at.topic, at.partition);
    const state = this.partitions.get(key);
    if (!state?.assigned || at.offset < 0) return;
    const search = this.unreadable.get(key);
    if (search) {
      // The same batch again: the probe was inside it. Another one, starting at or before the probe: the
      // batch ends before that one.
      if (at.offset === search.base) search.inside = Math.max(search.inside, search.probe);
      else if (at.offset > search.base && at.offset <= search.probe) search.past = Math.min(search.past, at.offset);
      else return;
      this.nextProbe(search);
      return;
    }
    const from = Math.max(at.offset, state.fetched ?? at.offset);
    // No fetch is made from the partition's end offset or beyond (that would reset the position).
    const batch: UnreadableBatch = { state, base: at.offset, reason, from, inside: from, past: Math.max(end, from + 1), probe: from, probedAt: this.context.clock.now() };
    this.unreadable.set(key, batch);
    this.context.logger.warn({ source: this.label, topic: at.topic, partition: at.partition, offset: at.offset, err: reason }, 'kafka source: a record batch cannot be read; its records go to the dead-letter sink, reading goes on after it');
    this.nextProbe(batch);
  }

  /** Fetches from halfway between the last offset known inside the batch and the first known past it; done when they meet. */
  private nextProbe(search: UnreadableBatch): void {
    const { state } = search;
    if (search.past <= search.inside + 1) return this.skipUnreadable(search);
    search.probe = search.inside + Math.floor((search.past - search.inside) / 2);
    search.probedAt = this.context.clock.now();
    this.seekPartition(state, search.probe);
  }

  /** Records of a partition under search answer its probe (the fetch was past the batch); they are read again later, in order. */
  private probeAnswers(messages: RdKafka.Message[]): RdKafka.Message[] {
    const answered = new Set<UnreadableBatch>();
    const kept = messages.filter((message) => {
      const search = this.unreadable.get(partitionKey(message.topic, message.partition));
      if (!search) return true;
      if (message.offset >= search.probe) answered.add(search);
      return false;
    });
    for (const search of answered) {
      search.past = Math.min(search.past, search.probe);
      this.nextProbe(search);
    }
    return kept;
  }

  /** A probe the brokers answered with nothing for probeQuietMs (not counting time paused) was past the batch. */
  private quietProbes(): void {
    const now = this.context.clock.now();
    for (const search of [...this.unreadable.values()]) {
      if (this.paused) search.probedAt = now;
      else if (now - search.probedAt >= probeQuietMs) {
        search.past = Math.min(search.past, search.probe);
        this.nextProbe(search);
      }
    }
  }

  /**
   * The batch's end is found: a stand-in for each of its records goes into the buffer, in order with the
   * records (each becomes a dead letter when the runtime takes it, and moves the position past it), and
   * reading goes on after the batch.
   */
  private skipUnreadable(search: UnreadableBatch): void {
    const { state } = search;
    this.unreadable.delete(partitionKey(state.topic, state.partition));
    const reason = `kafka record batch from offset ${search.base} cannot be read, so neither can this record: ${search.reason}`;
    const standIns: RdKafka.Message[] = [];
    for (let offset = search.from; offset < search.past; offset++) {
      const standIn: RdKafka.Message = { topic: state.topic, partition: state.partition, offset, value: null, size: 0, key: null };
      this.skipped.set(standIn, reason);
      standIns.push(standIn);
    }
    state.fetched = search.past;
    this.chunks.push(standIns);
    this.buffered += standIns.length;
    this.seekPartition(state, search.past);
    this.context.logger.warn(
      { source: this.label, topic: state.topic, partition: state.partition, from: search.from, to: search.past - 1, err: search.reason },
      'kafka source: records of an unreadable batch dead-lettered; reading goes on after it',
    );
    this.notify();
  }

  /**
   * Moves where librdkafka fetches the partition from (the unreadable-batch search). node-rdkafka makes
   * a timeout under 10 ms 10 ms, and rd_kafka_seek queues the seek to librdkafka's thread before it waits
   * that long for the answer: "Local: Timed out" (a loaded machine) says only that the answer came
   * later; the seek is made all the same, so it is no warning. Any other error means it was not made
   * (the partition revoked, the consumer closing): reading goes on from where librdkafka was, and
   * meets the batch again.
   */
  private seekPartition(state: PartitionState, offset: number): void {
    this.consumer.seek({ topic: state.topic, partition: state.partition, offset }, 0, (error) => {
      if (!error) return;
      const fields = { source: this.label, topic: state.topic, partition: state.partition, offset, err: asError(error).message };
      if (isTimedOut(error)) this.context.logger.debug(fields, 'kafka source: seek queued; librdkafka had not confirmed it within 10 ms');
      else this.context.logger.warn(fields, 'kafka source: seek not made; the partition is read on from where librdkafka was');
    });
  }

  /**
   * A partition librdkafka silently stops delivering is blocked (not ready, named). librdkafka 2.12 does
   * that at an LZ4 batch whose records decompress short (damaged: LZ4 frames carry no checksum here): it
   * takes the record cut off for the end of a fetch answer, delivers those before it, and fetches from
   * there again and again, reporting nothing. Seen here as a position (librdkafka's, past control records
   * and aborted transactions) that stays below the cached high watermark for noProgressMs while the
   * source keeps consuming; then the brokers are asked for the last stable offset (read_committed: a
   * transaction still open legitimately holds the position below the high watermark), and records below
   * it that do not come mean a stall. Cheap while nothing is amiss: local calls every 2 s.
   * The wait counts only once librdkafka's queue has run dry since the position was last seen: until
   * then the partition's records may be there, fetched, behind another partition's backlog that the
   * source is still delivering (one fetch answer can bring 4,000 records of one partition ahead of
   * another's: before, a pipeline slow enough to take 10 s over them had the other partition called
   * stalled, judged by time alone, and its records came late).
   */
  private watchProgress(): void {
    const now = this.context.clock.now();
    if (now - this.lastProgressCheck < 2_000) return;
    this.lastProgressCheck = now;
    // Not asking for records (the buffer full, paused): no record would come, and that says nothing.
    if (this.paused || this.buffered >= this.maxBuffered || !this.connected) return this.progress.clear();
    let positions: RdKafka.TopicPartitionOffset[];
    try {
      positions = this.consumer.position(this.assignedList());
    } catch {
      return;
    }
    for (const { topic, partition, offset: librdkafkaPosition } of positions) {
      const key = partitionKey(topic, partition);
      // No position yet (nothing read since the assignment: a batch at the start that delivers nothing
      // stalls so too): where reading starts, once known (checkStall asks), else -1 (any record is past it).
      const offset = typeof librdkafkaPosition === 'number' && librdkafkaPosition >= 0 ? librdkafkaPosition : (this.partitions.get(key)?.startOffset ?? -1);
      // What is amiss is known already: no judgement.
      let highOffset = -1;
      try {
        if (!this.blocked.has(key) && !this.unreadable.has(key)) highOffset = this.consumer.getWatermarkOffsets(topic, partition).highOffset;
      } catch {
        // Not known yet.
      }
      const seen = this.progress.get(key);
      if (highOffset <= offset || highOffset <= 0) this.progress.delete(key);
      else if (seen === undefined || seen.position !== offset) this.progress.set(key, { position: offset, since: now });
      else if (this.queueDrainedAt < seen.since) seen.since = now;
      else if (now - seen.since >= noProgressMs && this.endQuery === undefined) this.checkStall(topic, partition, seen);
    }
  }

  /**
   * A checkpoint's offsets decide where reading starts, not the group's committed ones: said when the
   * two differ, since a reset of the group's offsets (`kafka-consumer-groups --reset-offsets`, to replay
   * from a point in time) is otherwise ignored in silence while a checkpoint is there. They differ, the
   * committed ones older, after a crash between a checkpoint and its commit too. Only a note: a failed
   * look says nothing. (Offsets outside their partitions' logs were found before the assignment: resumedOutsideLog.)
   */
  private async sayCommittedDiffers(resumed: RdKafka.TopicPartitionOffset[]): Promise<void> {
    let committed: RdKafka.TopicPartitionOffset[] = [];
    try {
      committed = await promisify<RdKafka.TopicPartitionOffset[]>((cb) => this.consumer.committed(resumed.map(({ topic, partition }) => ({ topic, partition })), 5_000, cb));
    } catch {
      // Not known now: nothing to say about them.
    }
    const resumedAt = new Map(resumed.map((tp) => [partitionKey(tp.topic, tp.partition), tp.offset]));
    const differing: { partition: string; checkpoint: number; committed: number }[] = [];
    for (const tp of committed) {
      const checkpoint = resumedAt.get(partitionKey(tp.topic, tp.partition));
      if (tp.offset >= 0 && checkpoint !== undefined && checkpoint !== tp.offset) differing.push({ partition: `${tp.topic}/${tp.partition}`, checkpoint, committed: tp.offset });
    }
    if (differing.length > 0) {
      const list = differing.map((d) => `${d.partition} at ${d.checkpoint} (committed: ${d.committed})`).join(', ');
      this.context.logger.warn(
        { partitions: differing },
        `kafka source resumes at its checkpoint's offsets, not at the group's committed offsets: ${list}. A checkpoint's offsets decide where reading starts; ` +
          'to read from the group\'s offsets instead (set by kafka-consumer-groups --reset-offsets, say), stop, move the checkpoint folder away and start again (docs/operations.md, Replaying from a point in time)',
      );
    }
  }

  /**
   * The checkpoint's offsets (`resumed`) outside their partition's log, each with the log's start, where
   * reading starts instead, said in a warning once per assignment. Below the log's start, the records
   * between were deleted (retention) while the daemon was stopped, and are lost to it; past the log's end,
   * the offsets are not this log's (the topic was deleted and created again, or the brokers are another
   * cluster's), and every record of this log came after the checkpoint. Before, librdkafka started such a
   * partition over at `start_from`, which with `latest` skipped the records there, saying so only in its
   * debug log. The logs are asked for together, before the assignment; a failed look leaves that partition
   * to librdkafka (start_from).
   */
  private async resumedOutsideLog(resumed: readonly RdKafka.TopicPartitionOffset[]): Promise<Map<string, number>> {
    const logs = await Promise.all(
      resumed.map((tp) => promisify<RdKafka.WatermarkOffsets>((cb) => this.consumer.queryWatermarkOffsets(tp.topic, tp.partition, 5_000, cb)).catch(() => undefined)),
    );
    const outside: { partition: string; checkpoint: number; logStart: number; logEnd: number }[] = [];
    const starts = new Map<string, number>();
    for (const [k, tp] of resumed.entries()) {
      const log = logs[k];
      if (log === undefined || (tp.offset >= log.lowOffset && tp.offset <= log.highOffset)) continue;
      outside.push({ partition: `${tp.topic}/${tp.partition}`, checkpoint: tp.offset, logStart: log.lowOffset, logEnd: log.highOffset });
      starts.set(partitionKey(tp.topic, tp.partition), log.lowOffset);
    }
    if (outside.length === 0) return starts;
    const list = outside
      .map((o) => o.checkpoint < o.logStart
        ? `${o.partition}: offset ${o.checkpoint} is below the log's start ${o.logStart} (records ${o.checkpoint}-${o.logStart - 1} were deleted, by retention, before they were read)`
        : `${o.partition}: offset ${o.checkpoint} is past the log's end ${o.logEnd} (the topic was created again, or these brokers are another cluster's)`)
      .join('; ');
    this.context.logger.warn(
      { partitions: outside },
      `kafka source cannot resume where its checkpoint says: ${list}. Such a partition is read from its log's start, whatever start_from says`,
    );
    return starts;
  }

  /**
   * Where reading starts in the partition's assignment while librdkafka has no position (nothing read
   * from it yet): the group's committed offset, else `start_from`'s end of `log` (the brokers' offsets,
   * asked just before). Kept as its `startOffset`; undefined when not readable now (brokers away, a
   * transaction's offsets withheld) or the assignment changed meanwhile.
   */
  private async lookUpStart(state: PartitionState, log: RdKafka.WatermarkOffsets): Promise<number | undefined> {
    const assignment = state.assignment;
    let committed: RdKafka.TopicPartitionOffset | undefined;
    try {
      [committed] = await promisify<RdKafka.TopicPartitionOffset[]>((cb) => this.consumer.committed([{ topic: state.topic, partition: state.partition }], 5_000, cb));
    } catch {
      return undefined;
    }
    if (state.assignment !== assignment || !state.assigned) return undefined;
    // A point in time's offset was looked up at the assignment (startsAtTime): kept.
    const fallback = startTime(this.config) !== undefined && state.startOffset !== undefined ? state.startOffset : this.config.start_from !== 'latest' || state.fromLogStart ? log.lowOffset : log.highOffset;
    const start = committed !== undefined && committed.offset >= 0 ? committed.offset : fallback;
    state.startOffset = start;
    return start;
  }

  /**
   * Consumer lag for /metrics, every 2 s: per assigned partition, its end (the high watermark as
   * librdkafka last saw it, a local call) minus where reading is (librdkafka's position; before the
   * first record of it, where reading starts, looked up once per assignment), plus the records read and
   * waiting in this source's buffer. Growing, the pipeline falls behind its input (the alert to set). A
   * partition whose end or start is not known yet counts 0. None assigned: no sample (see lagGauge). The group's committed offsets lag more (they
   * follow checkpoints): this is the work left, not the replay a restart would make.
   */
  private exportLag(): void {
    const now = this.context.clock.now();
    if (now - this.lastLagExport < 2_000) return;
    this.lastLagExport = now;
    const assigned = this.assignedList();
    this.assignedGauge.set(assigned.length);
    if (!this.connected || assigned.length === 0) {
      // Nothing measured (before the first assignment, the group's partitions all elsewhere, or lost with
      // the brokers): no sample, so the series goes stale. 0 told an alert "caught up".
      this.removePartitionLag(new Set());
      return this.lagGauge.remove({});
    }
    let lag = this.buffered;
    const unknownStarts: PartitionState[] = [];
    const exported = new Set<string>();
    // The buffer's records by partition (at most max_buffered, every 2 s): each partition's lag counts its own.
    const waiting = new Map<string, number>();
    for (const chunk of this.chunks) {
      for (const message of chunk) {
        const key = partitionKey(message.topic, message.partition);
        waiting.set(key, (waiting.get(key) ?? 0) + 1);
      }
    }
    try {
      for (const { topic, partition, offset } of this.consumer.position(assigned)) {
        const key = partitionKey(topic, partition);
        const state = this.partitions.get(key);
        if (!state) continue;
        const from = typeof offset === 'number' && offset >= 0 ? offset : state.startOffset;
        if (from === undefined) {
          unknownStarts.push(state);
          continue;
        }
        const end = this.knownEnd(state, this.consumer.getWatermarkOffsets(topic, partition).highOffset);
        const own = Math.max(0, end - from);
        lag += own;
        const labels = { topic, partition: String(partition) };
        this.partitionLag.set(labels, own + (waiting.get(key) ?? 0));
        this.partitionLagSeries.set(key, labels);
        exported.add(key);
      }
    } catch {
      return; // not known now (the consumer closing): the last figure stands
    }
    this.lagGauge.set({}, lag);
    this.removePartitionLag(exported);
    if (unknownStarts.length > 0 && this.lagStarts === undefined && !this.closing) {
      // Looked up for the next export, one partition after another, in the background.
      this.lagStarts = (async () => {
        for (const state of unknownStarts) {
          const log = await promisify<RdKafka.WatermarkOffsets>((cb) => this.consumer.queryWatermarkOffsets(state.topic, state.partition, 5_000, cb));
          if (this.closing) return;
          await this.lookUpStart(state, log);
        }
      })()
        .catch(() => undefined) // not known now: asked again at the next export
        .finally(() => {
          this.lagStarts = undefined;
        });
    }
  }

  /** Drops the lag series of partitions not in `kept` (revoked, or not measured now): a series left would read as current. */
  private removePartitionLag(kept: ReadonlySet<string>): void {
    for (const [key, labels] of this.partitionLagSeries) {
      if (kept.has(key)) continue;
      this.partitionLag.remove(labels);
      this.partitionLagSeries.delete(key);
    }
  }

  /**
   * Asks the brokers for the partition's last stable offset: a stall when records below it have not
   * come. Without a position (-1), first where reading starts: the group's committed offset, else the
   * partition's start or end (`start_from`; its end now, which is past where librdkafka started, so no
   * stall is seen that is not one). Kept in the partition's state, so it is asked once per assignment.
   */
  private checkStall(topic: string, partition: number, seen: { position: number; since: number }): void {
    const key = partitionKey(topic, partition);
    const state = this.partitions.get(key);
    this.endQuery = promisify<RdKafka.WatermarkOffsets>((cb) => this.consumer.queryWatermarkOffsets(topic, partition, 5_000, cb)).then(
      async ({ lowOffset, highOffset }) => {
        if (seen.position < 0 && state) {
          // Not known now (brokers away, a transaction's offsets withheld): asked again at the next look.
          const start = await this.lookUpStart(state, { lowOffset, highOffset });
          if (start === undefined) return;
          seen.position = start;
        }
        if (this.progress.get(key) !== seen || this.closing) return;
        // Below the log's start (its records deleted since the offset was committed or saved): no fetch
        // is made there; librdkafka's is out of range and it starts over from `start_from`'s end. Judged
        // from there, after another noProgressMs (before: a false stall, with start_from latest).
        if (seen.position < lowOffset) {
          const reset = this.config.start_from !== 'latest' || state?.fromLogStart ? lowOffset : highOffset;
          if (state && state.startOffset === seen.position) state.startOffset = reset;
          seen.position = reset;
          return void (seen.since = this.context.clock.now());
        }
        // Held by an open transaction: nothing to read (hasRecordsToRead) until it ends; look again after another noProgressMs.
        if (highOffset <= seen.position) {
          const now = this.context.clock.now();
          if (state?.assigned) state.stableEnd = { position: seen.position, offset: highOffset, at: now };
          return void (seen.since = now);
        }
        this.progress.delete(key);
        const waited = formatDuration(this.context.clock.now() - seen.since);
        this.onBlocked(
          { topic, partition },
          `librdkafka delivers no record from offset ${seen.position} on, for ${waited}, though the brokers hold records up to ${highOffset - 1} ` +
            '(librdkafka reports nothing at an LZ4 batch damaged so that its records decompress short)',
        );
      },
      () => undefined,
    ).finally(() => {
      this.endQuery = undefined;
    });
  }

  private setHealthy(): void {
    if (!this.healthy.ready) this.context.logger.info({ source: this.label }, 'kafka source connected');
    this.healthy = { ready: true };
    this.connectionFailures.clear();
  }

  /** Not ready for `detail`; `warn` false where the brokers' outage is warned of by ConnectionFailures.logError instead (one warning per outage). */
  private setUnhealthy(detail: string, warn = true): void {
    this.losses++;
    if (warn && (this.healthy.ready || this.healthy.detail === 'connecting')) this.context.logger.warn({ source: this.label, detail }, 'kafka source not ready');
    this.healthy = { ready: false, detail };
  }

  private onRebalance(error: RdKafka.LibrdKafkaError, assignment: RdKafka.TopicPartition[]): void {
    this.noteAssignment(error.code, assignment);
    if (this.listener && (error.code === ErrorCode.ASSIGN_PARTITIONS || error.code === ErrorCode.REVOKE_PARTITIONS)) {
      const listener = this.listener;
      // A rebalance while the runtime waits for the other sources' partitions of this assignment: it needs this
      // consumer, so the wait is given up (at once, not in turn: the turn is that wait's).
      const awaiting = this.awaitingAssigned;
      if (error.code === ErrorCode.REVOKE_PARTITIONS && awaiting && !awaiting.abandoned) {
        awaiting.abandoned = true;
        listener.abandoned?.(awaiting.ids);
      }
      if (error.code === ErrorCode.REVOKE_PARTITIONS) return this.inTurn(() => this.revokeWithState(listener, assignment));
      // Not ready from the assignment's arrival until its partitions' state is restored and they are read (health).
      const step = { ids: assignment.map(partitionId), since: this.context.clock.now() };
      if (step.ids.length > 0) this.restoring.add(step);
      return this.inTurn(async () => {
        try {
          await this.assignWithState(listener, assignment);
        } finally {
          this.restoring.delete(step);
        }
      });
    }
    if (error.code !== ErrorCode.ASSIGN_PARTITIONS && error.code !== ErrorCode.REVOKE_PARTITIONS) {
      this.context.logger.warn({ err: error.message }, 'kafka rebalance error');
      return;
    }
    // A revocation's hand-over is a checkpoint of the runtime's (revokeCommitted), which takes a while,
    // and an assignment may wait for a consume round (afterRound): every step waits its turn, so an
    // assignment never overtakes the revocation before it.
    if (error.code === ErrorCode.ASSIGN_PARTITIONS) {
      return this.inTurn(async () => {
        await this.afterRound(assignment);
        this.assignPartitions(assignment, await this.startsOutsideCheckpoint(assignment));
      });
    }
    this.inTurn(this.context.commitNow ? () => this.revokeCommitted(assignment) : async () => this.handOver(assignment));
  }

  /** The consume round's records are looked at (buffered or dropped): the assignments waiting for it go on. */
  private endRound(round: ConsumeRound): void {
    if (this.round === round) this.round = undefined;
    // An assignment waiting for this round forgets them itself, after it took back those it names.
    if (this.forgetAfterRound && round.ended.length === 0) this.forgetRevoked();
    for (const resolve of round.ended.splice(0)) resolve();
  }

  /** Resolves once the consume round under way is over, if a partition of `assignment` was taken away during it (see `round`). */
  private async afterRound(assignment: readonly RdKafka.TopicPartition[]): Promise<void> {
    const round = this.round;
    if (round === undefined) return;
    const releasedInIt = assignment.some((tp) => this.partitions.get(partitionKey(tp.topic, tp.partition))?.releasedInRound === round.number);
    if (releasedInIt) await new Promise<void>((resolve) => round.ended.push(resolve));
  }

  /**
   * Runs a rebalance step once the steps before it are done. One that fails stops the source: state
   * that cannot be saved, restored or committed must not be skipped over, and a restart resumes
   * consistently. Closing, the consumer's disconnect revokes everything and a step may find it gone
   * ("KafkaConsumer is disconnected"): the run is ending, and the next owner restores from the last commit.
   */
  private inTurn(step: () => Promise<void>): void {
    this.rebalancing = this.rebalancing.then(step).catch((failure: unknown) => (this.closing ? this.keepFailure(asError(failure)) : this.failSource(asError(failure))));
  }

  /**
   * Where an assignment without scale-out starts partitions other than at a checkpoint's offset or the
   * group's, by partition key: a partition added to its topic since (addedPartitions) that the group
   * holds no committed offset of, at its start (OFFSET_BEGINNING); a checkpoint's offset outside its
   * partition's log, at the log's start (resumedOutsideLog). Looks that fail (the brokers away) leave
   * a partition to the checkpoint's offset, the group's, or start_from, as before.
   */
  private async startsOutsideCheckpoint(assignment: RdKafka.TopicPartition[]): Promise<Map<string, number>> {
    const starts = new Map<string, number>();
    await this.dropOvertakenHandOvers(assignment);
    const added = (await this.addedPartitions(assignment)).filter((tp) => !this.seekTo.has(partitionKey(tp.topic, tp.partition)));
    if (added.length > 0) {
      let committed: RdKafka.TopicPartitionOffset[] | undefined;
      try {
        committed = await promisify<RdKafka.TopicPartitionOffset[]>((cb) => this.consumer.committed(added.map(({ topic, partition }) => ({ topic, partition })), 10_000, cb));
      } catch (error) {
        this.context.logger.warn({ source: this.label, partitions: added.map(partitionId), err: asError(error).message }, `kafka source: the group's committed offsets of partitions added to their topic not known; they start at the group's offsets, else at start_from (${this.config.start_from})`);
      }
      // librdkafka gives a partition the group never committed offset -1001 (RD_KAFKA_OFFSET_INVALID), node-rdkafka none.
      const uncommitted = (committed ?? []).filter((tp) => !(tp.offset >= 0));
      for (const tp of uncommitted) starts.set(partitionKey(tp.topic, tp.partition), OFFSET_BEGINNING);
      this.sayAdded(uncommitted);
    }
    const resumed = assignment.flatMap((tp) => {
      const offset = this.seekTo.get(partitionKey(tp.topic, tp.partition));
      return offset === undefined ? [] : [{ ...tp, offset }];
    });
    for (const [key, logStart] of await this.resumedOutsideLog(resumed)) starts.set(key, logStart);
    const time = startTime(this.config);
    if (time !== undefined) {
      const fresh = assignment.filter((tp) => !starts.has(partitionKey(tp.topic, tp.partition)) && !this.seekTo.has(partitionKey(tp.topic, tp.partition)));
      for (const [key, offset] of await this.startsAtTime(fresh, time)) {
        starts.set(key, offset);
        this.timeStarts.add(key);
      }
    }
    return starts;
  }

  /**
   * `start_from` a point in time: where each of `partitions` the group holds no committed offset of
   * starts, by partition key: its first record whose Kafka timestamp is at or after `time`
   * (offsetsForTimes, as Kafka's `--reset-offsets --to-datetime` and Flink's timestamp start), or its
   * end where it has none since. A partition the group committed is left to that offset (left out).
   * `uncommitted`: the caller knows them uncommitted already. Looks that fail after a few tries fail
   * the assignment (the source, restarted by the runtime): left to librdkafka, they would start at the
   * log's start, a replay of all retention instead of the one asked for.
   */
  private async startsAtTime(partitions: readonly RdKafka.TopicPartition[], time: number, uncommitted = false): Promise<Map<string, number>> {
    const starts = new Map<string, number>();
    if (partitions.length === 0) return starts;
    const asked = partitions.map(({ topic, partition }) => ({ topic, partition }));
    const lookUp = async <T>(what: string, call: Parameters<typeof promisify<T>>[0]): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await promisify<T>(call);
        } catch (error) {
          if (attempt >= 3 || this.closing) throw new Error(`kafka source: start_from ${this.config.start_from}: ${what} of ${asked.map(partitionId).join(', ')} not known (${asError(error).message})`);
        }
      }
    };
    const committed = uncommitted ? [] : await lookUp<RdKafka.TopicPartitionOffset[]>("the group's committed offsets", (cb) => this.consumer.committed(asked, 10_000, cb));
    const taken = new Set(committed.filter((tp) => tp.offset >= 0).map((tp) => partitionKey(tp.topic, tp.partition)));
    const fresh = asked.filter((tp) => !taken.has(partitionKey(tp.topic, tp.partition)));
    if (fresh.length === 0) return starts;
    const found = await lookUp<RdKafka.TopicPartitionOffset[]>('the offsets at that time', (cb) => this.consumer.offsetsForTimes(fresh.map((tp) => ({ ...tp, offset: time })), 10_000, cb));
    const said: string[] = [];
    for (const tp of found) {
      // librdkafka answers -1 (RD_KAFKA_OFFSET_END) for a partition with no record at or after the time: its end now, named so the lag counts from there.
      const offset = tp.offset >= 0 ? tp.offset : (await lookUp<RdKafka.WatermarkOffsets>('the log end', (cb) => this.consumer.queryWatermarkOffsets(tp.topic, tp.partition, 10_000, cb))).highOffset;
      starts.set(partitionKey(tp.topic, tp.partition), offset);
      said.push(`${tp.topic}/${tp.partition} at ${offset}${tp.offset >= 0 ? '' : ' (its end: no record since)'}`);
    }
    this.context.logger.info(
      { source: this.label, start_from: this.config.start_from, partitions: Object.fromEntries(found.map((tp) => [`${tp.topic}/${tp.partition}`, starts.get(partitionKey(tp.topic, tp.partition))])) },
      `kafka source: partitions the group holds no committed offset of start at start_from ${this.config.start_from}, their first record at or after it: ${said.join(', ')}`,
    );
    return starts;
  }

  /**
   * The offsets a refused hand-over commit kept (revokeCommitted) of partitions assigned here again, that
   * the group's committed offset has reached or passed since: another member read them on and committed
   * meanwhile (this member missed the assignments between: out of the group, its session expired while
   * the brokers were unreachable to it), so they start at the group's offset, as one assigned afresh.
   * From the kept offset the records that member read were read again, past at-least-once's replay
   * (that replays what no commit covers). One the group's offset is still behind starts where its state
   * stands. A failed look keeps the kept offsets (the group's would read the state's records again).
   */
  private async dropOvertakenHandOvers(assignment: readonly RdKafka.TopicPartition[]): Promise<void> {
    const kept = assignment.filter((tp) => this.refusedHandOvers.has(partitionKey(tp.topic, tp.partition)));
    if (kept.length === 0) return;
    let committed: RdKafka.TopicPartitionOffset[];
    try {
      committed = await promisify<RdKafka.TopicPartitionOffset[]>((cb) => this.consumer.committed(kept.map(({ topic, partition }) => ({ topic, partition })), 10_000, cb));
    } catch {
      return;
    }
    this.noteCommitted(committed);
    const overtaken: { partition: string; kept: number; committed: number }[] = [];
    for (const tp of committed) {
      const key = partitionKey(tp.topic, tp.partition);
      const at = this.seekTo.get(key);
      if (at === undefined || !(tp.offset >= at)) continue;
      this.seekTo.delete(key);
      this.refusedHandOvers.delete(key);
      if (tp.offset > at) overtaken.push({ partition: `${tp.topic}/${tp.partition}`, kept: at, committed: tp.offset });
    }
    if (overtaken.length === 0) return;
    this.context.logger.info(
      { source: this.label, partitions: overtaken },
      `kafka source: partitions whose hand-over commit the brokers refused were read on and committed by another member since (${overtaken.map((p) => `${p.partition} at ${p.committed}, kept at ${p.kept}`).join(', ')}): read on from the group's committed offsets`,
    );
  }

  /**
   * The partitions of `assignment` added to their topic since this source knew it (`layouts`): the
   * topic grown (kafka-topics --alter --partitions), or deleted and created again with more. A topic
   * assigned here the first time in this run, and not named by the checkpoint, is learnt from the
   * brokers (one metadata request naming it): its partitions then are not added ones. Raises each
   * topic's count to the partitions assigned. A failed look learns nothing (the next assignment asks again).
   */
  private async addedPartitions(assignment: readonly RdKafka.TopicPartition[]): Promise<RdKafka.TopicPartition[]> {
    const unknown = [...new Set(assignment.map((tp) => tp.topic))].filter((topic) => !this.layouts.has(topic));
    if (unknown.length > 0) {
      try {
        // One topic named (every topic's metadata is costly on a large cluster; assigned, it exists, and no
        // broker creates it anew), or every topic at once for several (a pattern's first assignment).
        const request = unknown.length === 1 ? { timeout: 5_000, allTopics: false, topic: unknown[0]! } : { timeout: 5_000 };
        const metadata = await promisify<RdKafka.Metadata>((cb) => this.consumer.getMetadata(request, cb));
        for (const topic of unknown) {
          const count = metadata.topics.find((listed) => listed.name === topic)?.partitions.length ?? 0;
          if (count > 0) this.layouts.set(topic, count);
        }
      } catch {
        // Not known now: none of their partitions is taken for an added one.
      }
    }
    const added = assignment.filter((tp) => tp.partition >= (this.layouts.get(tp.topic) ?? Infinity));
    for (const tp of assignment) if (this.layouts.has(tp.topic) && tp.partition >= this.layouts.get(tp.topic)!) this.layouts.set(tp.topic, tp.partition + 1);
    return added;
  }

  /**
   * Scale-out: how many partitions each assigned topic has now, by topic (PartitionAssignment.partitions: the runtime
   * refuses a partition's state saved under another count). Asked at each assignment, not taken from `layouts` (the
   * counts first seen): partitions added since are what it is for. Not known (the brokers away): warned, and those
   * partitions' state is restored unchecked, as before counts were recorded.
   */
  private async partitionCounts(assignment: readonly RdKafka.TopicPartition[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const topics = [...new Set(assignment.map((tp) => tp.topic))];
    if (topics.length === 0) return counts;
    try {
      const request = topics.length === 1 ? { timeout: 5_000, allTopics: false, topic: topics[0]! } : { timeout: 5_000 };
      const metadata = await promisify<RdKafka.Metadata>((cb) => this.consumer.getMetadata(request, cb));
      for (const topic of topics) {
        const count = metadata.topics.find((listed) => listed.name === topic)?.partitions.length ?? 0;
        if (count > 0) counts.set(topic, count);
      }
    } catch (error) {
      this.context.logger.warn(
        { source: this.label, topics, err: asError(error).message },
        `kafka source: the partition count of ${topics.join(', ')} is not known (${asError(error).message}): the assigned partitions' state is restored without checking it was saved under the same count`,
      );
    }
    return counts;
  }

  /** Says which partitions added to their topic are read from their start, and why. */
  private sayAdded(partitions: readonly RdKafka.TopicPartition[]): void {
    if (partitions.length === 0) return;
    const named = partitions.map((tp) => `${tp.topic}/${tp.partition}`).join(', ');
    const why = this.config.start_from === 'latest' ? ' (start_from: latest is for the partitions there when the group first read the topic: its records would otherwise be skipped)' : '';
    this.context.logger.info(
      { source: this.label, partitions: partitions.map((tp) => `${tp.topic}/${tp.partition}`) },
      `kafka source: partitions added to their topic since this source last read it (the topic grown, or created again with more partitions): ${named} read from their start, the group holding no committed offset of them${why}`,
    );
  }

  /** An assignment without scale-out: reading starts at a checkpoint's offsets (at-least-once, after a restart), else at the group's. */
  private assignPartitions(assignment: RdKafka.TopicPartition[], starts: ReadonlyMap<string, number> = new Map()): void {
    const now = this.context.clock.now();
    const resumed: RdKafka.TopicPartitionOffset[] = [];
    const list: RdKafka.Assignment[] = assignment.map((tp) => {
      const key = partitionKey(tp.topic, tp.partition);
      let state = this.partitions.get(key);
      if (!state) {
        state = newPartitionState(tp, now, true);
        this.partitions.set(key, state);
      }
      markAssigned(state, now);
      const start = starts.get(key);
      // An added partition: at its start, which librdkafka finds (no offset to name for the position until a record of it is read).
      if (start === OFFSET_BEGINNING) {
        state.startOffset = state.resumedAt = undefined;
        state.fromLogStart = true;
        return { ...tp, offset: OFFSET_BEGINNING };
      }
      const from = start ?? this.seekTo.get(key);
      state.startOffset = from;
      state.resumedAt = from;
      // As if handed to a commit: a blocked partition that did not move is not committed (commit()).
      if (from === undefined) return tp;
      state.committing = from;
      // A refused hand-over's offset differs from the group's by design (said at the revocation): no note of it.
      if (!this.refusedHandOvers.has(key) && !this.timeStarts.has(key)) resumed.push({ topic: tp.topic, partition: tp.partition, offset: from });
      return { ...tp, offset: from };
    });
    this.assign(list);
    this.setPaused(assignment);
    if (this.transactions) this.learnCommittedStarts(assignment.map((tp) => this.partitions.get(partitionKey(tp.topic, tp.partition))!).filter((state) => state.resumedAt === undefined));
    this.context.logger.info({ partitions: assignment.map((tp) => `${tp.topic}/${tp.partition}`) }, 'kafka partitions assigned');
    if (resumed.length > 0) this.resumeCheck = this.sayCommittedDiffers(resumed);
    this.timeStarts.clear();
    this.forgetCheckpointOffsets();
    this.forgetRevoked();
  }

  /**
   * Exactly-once without scale_out: a partition assigned at the group's committed offset (a checkpoint's
   * offsets are not sought to) stands there until a record of it is read, and from the brokers' answer
   * on, the position names it there (resumedAt): each checkpoint's transaction commits its offset again,
   * with that checkpoint's mark (withMarks), once a fetch of it is answered (transactionOffsets). Without
   * it, a run whose partitions stayed idle after a restart committed its transactions with no offsets,
   * and so no mark: the restore then took the older checkpoint the marks named for the last one
   * committed, and closed its sessions a second time.
   */
  private learnCommittedStarts(states: PartitionState[]): void {
    if (states.length === 0) return;
    const asked = new Map(states.map((state) => [partitionKey(state.topic, state.partition), { state, assignment: state.assignment }]));
    void this.fetchCommitted(states.map(({ topic, partition }) => ({ topic, partition }))).then(
      (committed) => {
        this.noteCommitted(committed);
        for (const tp of committed) {
          const entry = asked.get(partitionKey(tp.topic, tp.partition));
          if (!entry || tp.offset < 0) continue;
          const { state, assignment } = entry;
          // Read from, revoked or assigned again meanwhile: that says where it stands.
          if (state.assignment !== assignment || !state.assigned || state.next !== undefined || state.resumedAt !== undefined) continue;
          state.resumedAt = tp.offset;
          state.committing = tp.offset;
          state.startOffset ??= tp.offset;
        }
      },
      // Closing, or an error the next assignment meets again: the partitions are named once read from.
      () => undefined,
    );
  }

  /**
   * Revoked partitions take no more records: not assigned, their buffered records dropped. Returns their
   * states and the offsets after the last records they handed to the runtime (what a hand-over commits).
   */
  private takeAway(assignment: RdKafka.TopicPartition[]): { revoked: PartitionState[]; offsets: RdKafka.TopicPartitionOffset[] } {
    const keys = new Set(assignment.map((tp) => partitionKey(tp.topic, tp.partition)));
    const revoked = [...keys].map((key) => this.partitions.get(key)).filter((state): state is PartitionState => state !== undefined);
    for (const state of revoked) {
      state.assigned = false;
      state.releasedInRound = this.round?.number ?? -1;
    }
    this.dropBuffered(keys);
    // A partition resumed at a checkpoint's offset and revoked before a record of it was read stands there (resumedAt):
    // left out, its commit was never made, and after a refused one its next assignment started at the older committed offset.
    const offsets: RdKafka.TopicPartitionOffset[] = [];
    const unreadable: { partition: string; offset: number | null; reason: string }[] = [];
    for (const state of revoked) {
      const offset = state.next ?? state.resumedAt;
      const blocked = this.blocked.get(partitionKey(state.topic, state.partition));
      if (blocked && (offset === undefined || this.leftUncommitted(state, offset))) {
        unreadable.push({ partition: `${state.topic}/${state.partition}`, offset: offset ?? null, reason: blocked.reason });
      } else if (offset !== undefined) {
        offsets.push({ topic: state.topic, partition: state.partition, offset });
      }
    }
    // A partition it cannot read (see leftUncommitted) stays where the group's committed offset has it:
    // read from there by whoever is assigned it once it can be read. Said once per hand-over (a stop too).
    if (unreadable.length > 0) {
      const named = unreadable.map(({ partition, offset }) => (offset === null ? partition : `${partition} at ${offset}`)).join(', ');
      this.context.logger.warn(
        { source: this.label, partitions: unreadable },
        `kafka source: handing over partitions it cannot read (${named}) without committing them: the group keeps their offsets, and their records are read from there once they can be read (a denied one: once Read on its topic is allowed)`,
      );
    }
    return { revoked, offsets };
  }

  /**
   * A revocation without scale-out while closing, or in a runtime that does not commit on request (a
   * source driven by hand). Exactly-once, the open transaction holds outputs of these partitions'
   * records: out of closing, it commits with their offsets before they go, or their next owner would
   * produce those outputs again. (Every record handed to the runtime has been pushed through the
   * stages by the time this runs.)
   */
  private handOver(assignment: RdKafka.TopicPartition[]): void {
    const { revoked, offsets } = this.takeAway(assignment);
    for (const state of revoked) this.letGo(state);
    // Closing, the run has made its last commit, or it failed: then the open transaction holds outputs
    // of only some of these records (a stage or sink failed among them), and is the sinks' to abort.
    if (this.transactions && offsets.length > 0 && !this.closing) {
      this.transactions.commit(offsets, this.consumer).committed.then(
        () => {
          this.noteCommitted(offsets);
          this.unassign(assignment);
        },
        (error: unknown) => {
          this.keepFailure(asError(error));
          this.unassign(assignment);
        },
      );
    } else {
      this.unassign(assignment);
    }
    this.context.logger.info({ partitions: assignment.map((tp) => `${tp.topic}/${tp.partition}`) }, 'kafka partitions revoked');
  }

  /**
   * A revocation in a runtime that commits on request (PluginContext.commitNow): the runtime takes a
   * checkpoint whose commit carries the revoked partitions' offsets, so the state saved and the group's
   * offsets agree, and only then are the partitions let go. Without it, exactly-once committed the
   * offsets alone in the open transaction (their outputs are in it), past the newest checkpoint: a
   * restart before the next one resumed after that input with state that never held it (sessions cut).
   * At-least-once committed nothing: a partition given back (by a rebalance that returns it, as every
   * eager one does) was read again from the last checkpoint's offsets into a state that held its
   * records already (sessions counting their events twice). The partitions take no more records meanwhile.
   */
  private async revokeCommitted(assignment: RdKafka.TopicPartition[]): Promise<void> {
    // Closing: the run's last commit is made, and the consumer's disconnect revokes everything.
    if (this.closing) return this.handOver(assignment);
    if (this.transactions && this.assignmentLost()) return this.loseCommitted(assignment);
    const { revoked, offsets } = this.takeAway(assignment);
    let committed = false;
    try {
      await this.checkpointHandingOver(revoked);
      if (this.transactions) {
        // A failed transaction fails the source (keepFailure), as a periodic one does.
        committed = this.failure === undefined;
      } else {
        // The runtime's commit is asynchronous: the next assignment reads the committed offsets, so these
        // wait for the brokers. Refused (a broker outage), the next assignment starts these partitions where
        // the state stands, as a checkpoint's offsets at a start: from the older committed offsets they were
        // read again into state that held their records (a chaos soak's sessions counted events twice).
        committed = offsets.length === 0 || this.commitRevoked(offsets, 'the next assignment reads them on from where the state stands');
        if (!committed) {
          for (const tp of offsets) {
            const key = partitionKey(tp.topic, tp.partition);
            this.seekTo.set(key, tp.offset);
            this.refusedHandOvers.add(key);
          }
        }
      }
    } finally {
      for (const state of revoked) this.letGo(state);
      this.unassign(assignment);
      const partitions = assignment.map((tp) => `${tp.topic}/${tp.partition}`);
      // None read since they were assigned (or none it can read: takeAway said so): nothing committed, which a broker outage does not fail (said as such, not as a commit).
      const said = offsets.length === 0 ? 'kafka partitions revoked, none read since assigned (or readable): no offsets to commit' : committed ? 'kafka partitions revoked, their offsets committed with a checkpoint' : 'kafka partitions revoked, their offsets not committed';
      this.context.logger.info({ partitions }, said);
    }
  }

  /**
   * Exactly-once without scale-out, partitions lost (the group expelled this member: its session or
   * max.poll.interval expired, and the group gave them to other members, which read them from the
   * committed offsets): the open transaction holds outputs of their records and cannot commit (KIP-447),
   * so the run fails as handed over (inputHandedOver), and a restart resumes from the last committed
   * checkpoint. No checkpoint is taken: before, the hand-over's checkpoint was written, then its
   * transaction refused ("Unknown member"), and the restart resumed from that file, which the group's
   * offsets covered, moved on by the member that took the partitions: its state held the refused
   * transaction's input, and lacked the outputs it had let out (an expelled member lost records and
   * wrote others twice; kafka-rebalance-state.test.ts).
   */
  private loseCommitted(assignment: RdKafka.TopicPartition[]): void {
    const { revoked } = this.takeAway(assignment);
    for (const state of revoked) this.letGo(state);
    this.unassign(assignment);
    const partitions = assignment.map((tp) => `${tp.topic}/${tp.partition}`);
    this.context.logger.info({ partitions }, 'kafka partitions lost: the group gave them to other members before this one handed them over');
    this.abandonTransaction(partitions);
  }

  /**
   * Exactly-once, `partitions` lost (see loseCommitted): the open transaction, which holds outputs of
   * their records, never commits (PipelineTransactions.abandon), and the pipeline fails, handed over.
   * Only kept for read() to throw, the failure waited for the source's next pull, and a checkpoint under
   * way meanwhile (it holds the sources) committed that transaction without their offsets: its outputs
   * were written again by the restart, which reads from the group's committed offsets.
   */
  private abandonTransaction(partitions: readonly string[]): void {
    const failure = new TributaryError(
      'TRIB_ERR_SOURCE',
      `this member lost its partitions (${partitions.join(', ')}): its session or max.poll.interval.ms expired (a stalled process, or the brokers unreachable that long), and the group gives them to another member: the open transaction, which holds outputs of their records, cannot commit; their next owner reads that input again, and a restart resumes from the last committed checkpoint`,
      { handedOver: true },
    );
    this.keepFailure(failure);
    this.transactions?.abandon(failure);
  }

  /**
   * A checkpoint of the runtime's (commitNow) that commits the offsets of `revoked` partitions, and
   * (scale-out) saves their state, with everything else: they count as assigned until it is done.
   * Exactly-once, it waits for that checkpoint's transaction, whose failure the source keeps.
   */
  private async checkpointHandingOver(revoked: readonly PartitionState[]): Promise<void> {
    for (const state of revoked) this.handingOver.add(state);
    try {
      await this.context.commitNow!();
      if (this.transactions) await this.lastCommit;
    } finally {
      for (const state of revoked) this.handingOver.delete(state);
    }
  }

  /**
   * A checkpoint's offsets are for the first assignment after the start only. A partition it names that
   * the group gave another member then is that member's to read and commit: assigned here later, it
   * starts at the group's committed offset. From the checkpoint's (older) offset, everything that member
   * read since would be read again, and written again. (A deleted topic's partitions are not assigned
   * either: the message names both causes.)
   */
  private forgetCheckpointOffsets(): void {
    const elsewhere: { partition: string; checkpoint: number }[] = [];
    for (const [key, checkpoint] of this.seekTo) {
      if (!this.partitions.get(key)?.assigned) elsewhere.push({ partition: key.replace('\u0000', '/'), checkpoint });
    }
    this.seekTo.clear();
    this.refusedHandOvers.clear();
    if (elsewhere.length === 0) return;
    this.context.logger.info(
      { partitions: elsewhere },
      `kafka source: the checkpoint's offsets of partitions not assigned here (the group gave them to another member, or their topic was deleted) are not used (${elsewhere.map((p) => `${p.partition} at ${p.checkpoint}`).join(', ')}): assigned here later, they start at the group's committed offsets`,
    );
  }

  /** Whether partitions besides `revoked` stay assigned (a cooperative rebalance's revocation). */
  private keepsOthers(revoked: RdKafka.TopicPartition[]): boolean {
    const keys = new Set(revoked.map((tp) => partitionKey(tp.topic, tp.partition)));
    return [...this.partitions.entries()].some(([key, state]) => state.assigned && !keys.has(key));
  }

  /** Keeps `unassignedSince` (for health) as the group assigns and revokes. */
  private noteAssignment(code: number, partitions: RdKafka.TopicPartition[]): void {
    // A partition assigned anew, or gone: whatever was known about reading it is past. Except, for one
    // revoked, that it is blocked: its hand-over must not commit its offset (leftUncommitted), which the
    // brokers refuse where they deny its fetch; it is forgotten once let go (letGo).
    for (const tp of partitions) {
      const key = partitionKey(tp.topic, tp.partition);
      if (code !== ErrorCode.REVOKE_PARTITIONS) this.blocked.delete(key);
      this.unreadable.delete(key);
      this.progress.delete(key);
    }
    if (code === ErrorCode.ASSIGN_PARTITIONS) {
      // In the group again (after an expulsion, say): the next loss is news again.
      this.connectionFailures.settled(consumerErrorMessage);
      this.assignedOnce = true;
      this.unassignedSince = undefined;
      this.warnedUnassigned = false;
      this.groupDenied = undefined;
    } else if (code === ErrorCode.REVOKE_PARTITIONS && this.unassignedSince === undefined) {
      // Eager: everything goes, and the next assignment ends the rebalance. Cooperative: only when
      // nothing stays (the rest keeps being read meanwhile).
      if (!this.keepsOthers(partitions)) this.unassignedSince = this.context.clock.now();
    }
  }

  /**
   * Scale-out assignment: the runtime restores each partition's state (the newest saved state its
   * group's committed offset covers) before a record is read; reading starts where that state ends.
   */
  private async assignWithState(listener: PartitionListener, assignment: RdKafka.TopicPartition[]): Promise<void> {
    // The topics' partition counts asked beside the committed offsets: the assignment waits for one round trip, not two.
    const [committed, counts] = await Promise.all([assignment.length === 0 ? [] : this.fetchCommitted(assignment), this.partitionCounts(assignment)]);
    this.noteCommitted(committed);
    const committedOf = new Map(committed.map((tp) => [partitionKey(tp.topic, tp.partition), tp.offset >= 0 ? tp.offset : undefined]));
    // Exactly-once only: what an at-least-once run commits carries none, and leaves an older run's in place.
    const committedMarksOf = new Map(this.transactions ? committed.map((tp) => [partitionKey(tp.topic, tp.partition), marksOf(tp)]) : []);
    const now = this.context.clock.now();
    const states = assignment.map((tp) => {
      const key = partitionKey(tp.topic, tp.partition);
      let state = this.partitions.get(key);
      if (!state) {
        state = newPartitionState(tp, now, false);
        this.partitions.set(key, state);
      }
      const marks = committedMarksOf.get(key);
      return { state, committed: committedOf.get(key), ...(marks && marks.length > 0 ? { marks } : {}) };
    });
    // Several sources (co-partitioned): their tasks wait for each source's consumer to hear of its part, and one may
    // hear of it a rebalance later (its consumer joined the group after this one). Assigned now, paused, this
    // consumer can take part in that rebalance while the runtime waits (librdkafka holds a rebalance back until the
    // assignment it delivered is assigned), and is told to give the wait up (abandoned).
    const coPartitioned = this.context.scaleOutMember !== undefined;
    if (coPartitioned) {
      this.assign(assignment);
      this.pauseInClient(assignment);
      this.awaitingAssigned = { ids: states.map(({ state }) => state.id), abandoned: false };
    }
    let starts: ReadonlyMap<string, number>;
    try {
      starts = await listener.assigned(
        states.map(({ state, committed, marks }) => {
          const partitions = counts.get(state.topic);
          return { id: state.id, partition: state.partition, committed, ...(marks ? { marks } : {}), ...(partitions === undefined ? {} : { partitions }) };
        }),
      );
    } finally {
      if (coPartitioned && this.awaitingAssigned?.abandoned === true) this.context.logger.info({ partitions: states.map(({ state }) => state.id) }, 'kafka partitions assigned, then taken back by the next rebalance before the other sources\' partitions of their tasks came: none read');
    }
    const abandoned = this.awaitingAssigned?.abandoned === true;
    this.awaitingAssigned = undefined;
    // Left assigned and paused: the revocation that follows takes them back.
    if (abandoned) return;
    // Partitions added to their topic since, with no state and no committed offset: at their start, whatever start_from says.
    const added = (await this.addedPartitions(assignment)).filter((tp) => starts.get(partitionId(tp)) === undefined && committedOf.get(partitionKey(tp.topic, tp.partition)) === undefined);
    const addedKeys = new Set(added.map((tp) => partitionKey(tp.topic, tp.partition)));
    this.sayAdded(added);
    // No saved state, no committed offset, not added: at start_from's point in time, where it is one.
    const time = startTime(this.config);
    const timeStarts =
      time === undefined
        ? new Map<string, number>()
        : await this.startsAtTime(
            assignment.filter((tp) => starts.get(partitionId(tp)) === undefined && committedOf.get(partitionKey(tp.topic, tp.partition)) === undefined && !addedKeys.has(partitionKey(tp.topic, tp.partition))),
            time,
            true,
          );
    await this.afterRound(assignment);
    const assignedAt = this.context.clock.now();
    for (const { state } of states) {
      markAssigned(state, assignedAt);
      state.next = undefined;
      // Event time restarts with the records read from the restored offset (they may be older than
      // what this instance saw of the partition before it left).
      state.maxTime = -Infinity;
    }
    const assigned = assignment.map((tp, index) => {
      const { state, committed } = states[index]!;
      const start = starts.get(state.id);
      state.startOffset = start;
      // Exactly-once: a partition restored at the group's committed offset stands there until a record of
      // it is read, and the position names it there (resumedAt), as learnCommittedStarts does without
      // scale_out: each transaction commits that offset again with the mark of its newest state file
      // (withMarks), once a fetch of it is answered (transactionOffsets). Unnamed, a partition that read
      // nothing kept the previous owner's mark while its own file closed sessions at that offset, and its
      // next owner restored the marked, older file and closed them again. A start behind the committed
      // offset is not committed: that would move it back.
      // As if handed to a commit (it is committed there): a blocked one that does not move is not committed
      // again (commit()), which the brokers refuse where they deny its fetch, failing the transaction.
      if (this.transactions && start !== undefined && start === committed) state.resumedAt = state.committing = start;
      if (addedKeys.has(partitionKey(tp.topic, tp.partition))) {
        state.fromLogStart = true;
        return { ...tp, offset: OFFSET_BEGINNING };
      }
      const atTime = timeStarts.get(partitionKey(tp.topic, tp.partition));
      if (atTime !== undefined) {
        state.startOffset = atTime;
        return { ...tp, offset: atTime };
      }
      return start === undefined ? tp : { ...tp, offset: start };
    });
    if (!coPartitioned) this.assign(assigned);
    else {
      // Assigned already, at the group's committed offsets: to where the task's state file says, where that differs.
      for (const [index, tp] of assigned.entries()) {
        const { state, committed } = states[index]!;
        if ('offset' in tp && typeof tp.offset === 'number' && tp.offset !== committed) this.seekPartition(state, tp.offset);
      }
    }
    this.setPaused(assignment);
    this.context.logger.info({ partitions: states.map(({ state }) => state.id), starts: Object.fromEntries(starts) }, 'kafka partitions assigned');
    this.forgetRevoked();
  }

  /**
   * At an assignment (the end of a rebalance), forgets the partitions it left out whose hand-over is done:
   * their state, committed offset and marks, and librdkafka's pause of them. Kept while one is still
   * needed: handed over by a checkpoint under way, taken away during the consume round under way
   * (afterRound; forgotten at that round's end), or its offset after the last record handed to the runtime (revokedAt) not known
   * committed: a refused hand-over commit, which position() names until then (the group's committed
   * offset is older), at-least-once and exactly-once alike. Once committed the group's offset says the
   * same, and the member that reads it now moves it on. Assigned here again later, a partition starts
   * afresh at the group's committed offset, as one assigned the first time. Its lag series went at the
   * revocation's next export (exportLag). A kept one goes later once the group's committed offset is known
   * to pass its own (checkKeptCommitted) or its topic is deleted (forgetDeleted).
   */
  private forgetRevoked(): void {
    this.forgetAfterRound = false;
    for (const [key, state] of this.partitions) {
      if (state.assigned || this.handingOver.has(state)) continue;
      if (this.round !== undefined && state.releasedInRound === this.round.number) {
        this.forgetAfterRound = true;
        continue;
      }
      if (state.revokedAt !== undefined && state.revokedAt > (this.knownCommitted.get(key) ?? -1)) {
        // Its topic may be deleted (forgetDeleted): the next metadata request asks for every topic.
        this.clusterCheckDue = true;
        continue;
      }
      this.forget(key, state);
    }
    // Committed offsets and marks of partitions held here no more (and those a checkpoint named that the group gave another member): asked of the brokers where needed again (covers, committedMarks).
    for (const known of [this.knownCommitted, this.knownMarks]) for (const key of known.keys()) if (!this.partitions.has(key)) known.delete(key);
  }

  /**
   * Revoked partitions forgetRevoked keeps for their refused hand-over commit whose topic the brokers no
   * longer list (`metadata`, every topic's): deleted, the brokers refuse its offsets for good and its
   * records can be read no more. Forgotten, so no later checkpoint names them (a restart after the topic
   * is created again would seek the new log to the old offset, skipping its first records).
   */
  private forgetDeleted(metadata: RdKafka.Metadata): void {
    for (const [key, state] of this.partitions) {
      if (state.assigned || this.handingOver.has(state) || state.revokedAt === undefined || listsTopic(metadata, state.topic)) continue;
      if (this.round !== undefined && state.releasedInRound === this.round.number) continue;
      this.forget(key, state);
      this.knownCommitted.delete(key);
      this.knownMarks.delete(key);
    }
  }

  /**
   * Revoked partitions forgetRevoked keeps for their refused hand-over commit: the group's committed offsets
   * of them are asked for (with each look at the whole cluster: every clusterCheckMs, and soon after an
   * assignment that keeps one). One the group holds committed at or past where the state stands (revokedAt:
   * the member that reads it now read on from the older offset and committed past it) is forgotten, as
   * after a hand-over known committed: the group's offset covers what the state holds. Before, it stayed
   * named in every checkpoint for the rest of the run unless it came back here or its topic was deleted. No
   * answer (the brokers away; exactly-once, a transaction still open that commits it): asked at the next look.
   */
  private checkKeptCommitted(): void {
    if (this.keptCheck !== undefined || !this.connected || this.closing) return;
    const kept = [...this.partitions.values()].filter((state) => this.keptForRefusedCommit(state));
    if (kept.length === 0) return;
    const asked = kept.map(({ topic, partition }) => ({ topic, partition }));
    this.keptCheck = promisify<RdKafka.TopicPartitionOffset[]>((cb) => this.consumer.committed(asked, 10_000, cb)).then(
      (committed) => {
        if (this.closing) return;
        for (const tp of committed) {
          const key = partitionKey(tp.topic, tp.partition);
          const state = this.partitions.get(key);
          // Assigned here again (or handed over) meanwhile: its assignment and commits say what the group holds.
          if (!state || !this.keptForRefusedCommit(state)) continue;
          this.noteCommitted([tp]);
          if (state.revokedAt! > (this.knownCommitted.get(key) ?? -1)) continue;
          this.forget(key, state);
          this.knownCommitted.delete(key);
          this.knownMarks.delete(key);
        }
      },
      (error: unknown) => this.context.logger.debug({ source: this.label, err: asError(error).message }, 'kafka source: the group\'s committed offsets of revoked partitions not read; asked again at the next look'),
    ).finally(() => {
      this.keptCheck = undefined;
    });
  }

  /** Whether forgetRevoked keeps a partition only for its hand-over commit the brokers refused (its offset not known committed). */
  private keptForRefusedCommit(state: PartitionState): boolean {
    if (state.assigned || this.handingOver.has(state) || state.revokedAt === undefined) return false;
    if (this.round !== undefined && state.releasedInRound === this.round.number) return false;
    return state.revokedAt > (this.knownCommitted.get(partitionKey(state.topic, state.partition)) ?? -1);
  }

  private forget(key: string, state: PartitionState): void {
    this.partitions.delete(key);
    if (this.lastState === state) this.lastState = undefined;
    // librdkafka keeps a partition paused through its revocation (see setPaused): resumed now, so one
    // assigned here again is not left paused. Kept in the set where librdkafka refused.
    if (this.pausedInClient.has(key)) {
      try {
        this.consumer.resume([{ topic: state.topic, partition: state.partition }]);
        this.pausedInClient.delete(key);
      } catch {
        // Resumed at its next assignment (setPaused).
      }
    }
  }

  /**
   * The group's committed offsets of `assignment`, waiting as long as they are not readable. With
   * read_committed the broker withholds an offset that a still-open transaction commits (a previous
   * owner that died mid-commit: the broker aborts it after that producer's transaction.timeout.ms),
   * and librdkafka retries until the call's timeout; an unreachable broker times out alike. Either
   * way the state to restore depends on the answer, so the source waits (a failure here would stop
   * the pipeline for a condition that resolves itself).
   */
  private async fetchCommitted(assignment: RdKafka.TopicPartition[]): Promise<RdKafka.TopicPartitionOffset[]> {
    const waitedFrom = this.context.clock.now();
    for (;;) {
      const fetch = promisify<RdKafka.TopicPartitionOffset[]>((cb) => this.consumer.committed(assignment, 10_000, cb));
      this.offsetsFetch = fetch;
      try {
        return await fetch;
      } catch (error) {
        const failure = asError(error);
        if (this.closing || this.context.signal?.aborted || (failure.code !== ErrorCode.TIMED_OUT && failure.code !== ErrorCode.UNSTABLE_OFFSET_COMMIT)) throw failure;
        this.context.logger.warn(
          { partitions: assignment.map((tp) => `${tp.topic}/${tp.partition}`), waitedMs: this.context.clock.now() - waitedFrom, err: failure.message },
          'kafka committed offsets not readable yet (a previous owner\'s transaction still open, or the broker unreachable); waiting',
        );
      }
    }
  }

  /**
   * Scale-out revocation: nothing more of these partitions is handed over; the runtime saves their
   * state (after flushing every output of their records); then their offsets are committed (in the
   * open transaction, exactly-once) and they are let go. If saving fails nothing is committed, so
   * the next owner restores older state from older offsets and replays (at-least-once).
   */
  private async revokeWithState(listener: PartitionListener, assignment: RdKafka.TopicPartition[]): Promise<void> {
    // Exactly-once, a cooperative rebalance that leaves partitions here: the open transaction holds
    // outputs of the kept partitions' records too. Sealed with the revoked partitions' offsets alone, it
    // committed those outputs without their offsets, and a crash before the next checkpoint wrote them
    // again. So a checkpoint comes first: every partition's state saved, every offset in its transaction.
    // They take no record from here on (takeAway first): one taken after the checkpoint's instant would
    // have its output in the next transaction, which commits without the offsets of a partition gone.
    // Lost (the session or max.poll.interval expired): the group gave them to other members already,
    // which restore their state and may write its files by now: their state is not saved, nor their
    // offsets committed (exactly-once: the open transaction is abandoned).
    const lost = this.assignmentLost();
    const checkpointFirst = !lost && this.transactions !== undefined && this.context.commitNow !== undefined && !this.closing && this.keepsOthers(assignment);
    const { revoked, offsets } = this.takeAway(assignment);
    const positions = revoked.map((state) => ({ id: state.id, partition: state.partition, offset: state.next, ...(lost ? { lost } : {}) }));
    // Exactly-once, lost: as loseCommitted, the open transaction, which holds outputs of their records,
    // never commits (abandoned before the runtime's hand-over, so no checkpoint waiting on it commits it),
    // and the run restarts, handed over. Their offsets are not sent: they would go with the group
    // identity librdkafka has after the expulsion. The brokers refused that so far ("Unknown member"),
    // but a transactional commit of a reset identity (no member id, generation -1) is one they take
    // (KIP-447 fences by that identity), under the member that took the partitions.
    if (lost && this.transactions) this.abandonTransaction(assignment.map((tp) => `${tp.topic}/${tp.partition}`));
    try {
      if (checkpointFirst) await this.checkpointHandingOver(revoked);
      let committed: Promise<void> | undefined;
      // Exactly-once: sealed while the runtime still holds its barrier, so the transaction holds no
      // output of another partition's record processed after these offsets were taken.
      const seal =
        this.transactions && offsets.length > 0 && !checkpointFirst && !lost
          ? (marks: ReadonlyMap<string, string>) => void (committed = this.transactions!.commit(this.withMarks(offsets, { partitions: marks }), this.consumer).committed)
          : undefined;
      await listener.revoked(positions, seal);
      // A failed transaction is the exactly-once sinks' to report (TRIB_ERR_SINK: a fencing, say), as in commit().
      if (committed) await committed.then(() => this.noteCommitted(offsets), (error: unknown) => this.keepFailure(asError(error)));
      // Synchronous: the next owner reads the committed offsets to pick the state to restore.
      else if (!this.transactions && offsets.length > 0 && !lost) this.commitRevoked(offsets, 'the next owner restores the state the last commit covers and replays from there');
    } finally {
      for (const state of revoked) this.letGo(state);
      this.unassign(assignment);
      this.context.logger.info({ partitions: positions }, lost ? 'kafka partitions lost: the group gave them to other members before this one handed them over' : `kafka partitions revoked, state handed over${checkpointFirst ? ' after a checkpoint of every partition' : ''}`);
    }
  }

  /**
   * Whether librdkafka takes the assignment as lost (its rd_kafka_assignment_lost: the session or
   * max.poll.interval expired, and the group went on without this member), asked in a revocation,
   * before the unassign that clears it. node-rdkafka 3.6 binds no such call; librdkafka gives the same
   * answer to a commit of "the current assignment" (no offsets named): ASSIGNMENT_LOST when lost, else
   * NO_OFFSET, with nothing sent, as no offset is ever stored here (enable.auto.offset.store is off).
   * Where `options` turn offset storing on, that commit would commit them: not asked then (not lost).
   */
  private assignmentLost(): boolean {
    const storing = this.config.options?.['enable.auto.offset.store'];
    if (storing !== undefined && String(storing) !== 'false') return false;
    try {
      this.consumer.commitSync(null);
      return false;
    } catch (error) {
      return asError(error).code === ErrorCode.ASSIGNMENT_LOST;
    }
  }

  /**
   * Commits a revoked partition's offsets (at-least-once). A commit that fails (the group coordinator
   * unreachable: the brokers restarting, a partition lost with the session) is logged, as a failed
   * periodic commit is: the state file just written is then newer than the committed offset, so the
   * next owner restores the older one that offset covers and replays from there, which is the
   * at-least-once contract. Failing the source for it stopped the daemon (exit 1) in a broker outage
   * it otherwise runs through. Returns whether the commit went through.
   */
  private commitRevoked(offsets: RdKafka.TopicPartitionOffset[], afterwards: string): boolean {
    try {
      this.consumer.commitSync(offsets);
      this.noteCommitted(offsets);
      return true;
    } catch (error) {
      // Closing, the disconnect's own revocation finds the consumer gone, after the run's last commit: as before.
      if (this.closing) throw error;
      this.context.logger.warn(
        { partitions: offsets.map((tp) => ({ partition: `${tp.topic}/${tp.partition}`, offset: tp.offset })), err: asError(error).message },
        `kafka offset commit at revocation failed; ${afterwards}`,
      );
      return false;
    }
  }

  /**
   * A record's partition state. Records come in runs of one partition, so the last one found is
   * kept (states are never replaced in `partitions`, only updated).
   */
  private stateOf(topic: string, partition: number): PartitionState | undefined {
    const last = this.lastState;
    if (last !== undefined && last.partition === partition && last.topic === topic) return last;
    const state = this.partitions.get(partitionKey(topic, partition));
    if (state) this.lastState = state;
    return state;
  }

  /** Forgets the buffered records of partitions (by key) this instance no longer owns. */
  private dropBuffered(keys: ReadonlySet<string>): void {
    this.chunks = this.chunks.map((chunk) => chunk.filter((message) => !keys.has(partitionKey(message.topic, message.partition)))).filter((c) => c.length > 0);
    this.buffered = this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /**
   * With the cooperative protocol (`partition.assignment.strategy: cooperative-sticky`) a rebalance
   * names only the partitions that move, and they are added or removed; with the eager one (the
   * default) every partition is revoked and the new assignment replaces the old.
   */
  private assign(partitions: RdKafka.Assignment[]): void {
    if (this.consumer.rebalanceProtocol() === 'COOPERATIVE') this.consumer.incrementalAssign(partitions);
    else this.consumer.assign(partitions);
  }

  private unassign(partitions: RdKafka.TopicPartition[]): void {
    if (this.consumer.rebalanceProtocol() === 'COOPERATIVE') this.consumer.incrementalUnassign(partitions);
    else this.consumer.unassign();
  }

  /** librdkafka's position of each assigned partition, by key (undefined where it has none); empty if it cannot say (disconnected). */
  private librdkafkaPositions(): Map<string, number | undefined> {
    const positions = new Map<string, number | undefined>();
    try {
      for (const { topic, partition, offset } of this.consumer.position(this.assignedList())) positions.set(partitionKey(topic, partition), offset);
    } catch {
      // Not known: hasRecordsToRead judges by where reading starts.
    }
    return positions;
  }

  private assignedList(): RdKafka.TopicPartition[] {
    return [...this.partitions.values()].filter((s) => s.assigned).map((s) => ({ topic: s.topic, partition: s.partition }));
  }

  private pause(): void {
    this.paused = true;
    this.pauses.inc();
    this.pauseInClient(this.assignedList());
  }

  private resume(): void {
    this.paused = false;
    const assigned = this.assignedList();
    this.consumer.resume(assigned);
    for (const tp of assigned) this.pausedInClient.delete(partitionKey(tp.topic, tp.partition));
  }

  private pauseInClient(partitions: RdKafka.TopicPartition[]): void {
    this.consumer.pause(partitions);
    for (const tp of partitions) this.pausedInClient.add(partitionKey(tp.topic, tp.partition));
  }

  /**
   * Newly assigned partitions take the source's pause state, either way: librdkafka keeps a partition
   * the application paused paused through its revocation and a later assignment, so one revoked while
   * paused (resume() then no longer lists it) came back paused for good, never fetched again.
   */
  private setPaused(assignment: RdKafka.TopicPartition[]): void {
    if (this.paused) return this.pauseInClient(assignment);
    const stillPaused = assignment.filter((tp) => this.pausedInClient.delete(partitionKey(tp.topic, tp.partition)));
    if (stillPaused.length > 0) this.consumer.resume(stillPaused);
  }

  private reachedEnd(): boolean {
    let any = false;
    for (const state of this.partitions.values()) {
      if (!state.assigned) continue;
      any = true;
      if (!state.atEnd) return false;
    }
    return any && this.buffered === 0;
  }

  private notify(): void {
    this.wake?.();
  }

  /** Marks partitions read to their end; true if any was. */
  private applyEnds(): boolean {
    if (this.ends.length === 0) return false;
    let any = false;
    for (const end of this.ends) {
      const state = this.partitions.get(end.key);
      // An end queued before a pause may outlive the records purged with it: it counts only if
      // nothing lies between what was consumed and that end.
      if (state?.assigned && (state.fetched === undefined || end.offset <= state.fetched)) {
        state.atEnd = true;
        any = true;
      }
    }
    this.ends = [];
    return any;
  }

  /** Up to `max` buffered records, oldest first. */
  private take(max: number): RdKafka.Message[] {
    let out: RdKafka.Message[];
    const first = this.chunks[0]!;
    if (first.length >= max) {
      out = first.length === max ? first : first.slice(0, max);
      if (first.length === max) this.chunks.shift();
      else this.chunks[0] = first.slice(max);
    } else {
      out = [];
      while (out.length < max && this.chunks.length > 0) {
        const chunk = this.chunks[0]!;
        const room = max - out.length;
        if (chunk.length <= room) {
          this.chunks.shift();
          for (const message of chunk) out.push(message);
        } else {
          for (let i = 0; i < room; i++) out.push(chunk[i]!);
          this.chunks[0] = chunk.slice(room);
        }
      }
    }
    this.buffered -= out.length;
    const taken = this.taken;
    this.taken = undefined;
    taken?.();
    return out;
  }

  /** True once read() takes records, false after `ms` without (or when closing). */
  private roomWithin(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.taken = undefined;
        resolve(false);
      }, ms);
      this.taken = () => {
        clearTimeout(timer);
        resolve(!this.closing);
      };
    });
  }

  /**
   * A record to the dead-letter sink, with its key beside its value (`raw`), so it can be replayed
   * whole: with `key_field` the key is the user id, and the key picks the partition.
   */
  private deadLetter(message: RdKafka.Message, rejection: Rejection): void {
    this.context.deadLetter({ ...rejection, ...deadLetterKey(message.key) });
  }

  /** Records -> events; rejects go to the dead-letter sink. Advances positions and watermarks. */
  private decode(messages: readonly RdKafka.Message[]): ClickEvent[] {
    const events: ClickEvent[] = [];
    const now = this.context.clock.now();
    const keyField = this.config.key_field;
    // A key field named `constructor` is one the record has or lacks, never Object.prototype's.
    const keyInherited = keyField !== undefined && isInheritedName(keyField);
    // A key field that is a path (`user.id`) is one the value has where the mapping would find it: the
    // whole name, else the path into nested objects and lists. Where it has neither, the key goes in as the field of the
    // whole name, which the mapping reads first (a nested `user` is not made or changed).
    const keyPath = keyField === undefined ? undefined : fieldPath(keyField);
    const byTimestamp = this.config.event_time === 'timestamp';
    for (const message of messages) {
      const state = this.stateOf(message.topic, message.partition);
      const origin = { source: this.label, file: message.topic, partition: message.partition, offset: message.offset, partitionId: state?.id };
      const misplaced = this.misplacedRecords.get(message);
      if (misplaced !== undefined) {
        // Its offset is not where it is: the position does not move (noteFetched).
        const value = message.value ?? Buffer.alloc(0);
        this.deadLetter(message, isUtf8(value) ? { reason: misplaced, raw: value.toString('utf8'), origin } : { ...notUtf8Rejection(value, origin), reason: `${misplaced}; raw is its exact bytes in base64` });
        continue;
      }
      if (state) {
        state.next = message.offset + 1;
        // A fetch of it was answered: its idle clock starts, if it had not. Only an event restarts it
        // (below): a partition of records that all go to the dead-letter sink (another format) gives
        // no event time, and counted as active it held the watermark for ever.
        if (state.unfetched) {
          state.unfetched = false;
          state.lastActivity = now;
        }
      }
      const value = message.value;
      if (value === null) {
        const unreadable = this.skipped.get(message);
        // A stand-in for a record of an unreadable batch: neither its key nor its value is known.
        if (unreadable !== undefined) this.context.deadLetter({ reason: unreadable, origin });
        // A tombstone (a compacted topic's deletion of its key): no event, and raw null says so on a replay.
        else this.deadLetter(message, { reason: 'tombstone (null value)', raw: null, origin });
        continue;
      }
      // JSON is UTF-8 text. Anything else (Avro, Protobuf, Latin-1) is kept as its bytes: decoded, it
      // would lose them to replacement characters (or pass on altered strings, were it JSON-like).
      if (!isUtf8(value)) {
        this.deadLetter(message, notUtf8Rejection(value, origin));
        continue;
      }
      const text = value.toString('utf8');
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (error) {
        this.deadLetter(message, { reason: `not JSON: ${(error as Error).message}`, raw: text, origin });
        continue;
      }
      // Dead letters carry the record's text, as it came: a parsed value may be one no writer can
      // encode (nested thousands deep), and the text is what a user replays.
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        this.deadLetter(message, { reason: 'not a JSON object', raw: text, origin });
        continue;
      }
      const record = raw as Record<string, unknown>;
      if (
        keyField &&
        message.key !== undefined &&
        message.key !== null &&
        (keyInherited ? ownValue(record, keyField) : record[keyField]) === undefined &&
        (keyPath === undefined || valueAtPath(record, keyPath) === undefined)
      ) {
        const key = message.key;
        // A key that is not UTF-8 would decode to replacement characters: every such key the same id,
        // unrelated users' records merged under it. Kept as its exact bytes instead, as a value is.
        if (Buffer.isBuffer(key) && !isUtf8(key)) {
          this.deadLetter(message, { reason: `key is not UTF-8 text, so not a ${keyField}; key is its exact bytes in base64, raw is the value`, raw: text, origin });
          continue;
        }
        setOwnField(record, keyField, key.toString());
      }
      if (byTimestamp) record[KAFKA_TIMESTAMP_FIELD] = message.timestamp;
      const result = this.map(record, origin);
      if (byTimestamp) delete record[KAFKA_TIMESTAMP_FIELD];
      if (isSkipped(result)) {
        this.context.countFiltered(1, result.rejected);
        continue;
      }
      if (isRejected(result)) {
        this.deadLetter(message, { ...rejectionOf(this.map, result, record), raw: text, origin });
        continue;
      }
      // An absurd future time (a producer's clock, a unit slip) is passed on, as the runtime does for the
      // sources whose watermark it keeps (the operators dead-letter it), but moves no watermark: it would
      // make every later record of the partition late.
      if (state) {
        state.lastActivity = now;
        if (result.time > state.maxTime && result.time <= now + this.maxAheadOfClock) state.maxTime = result.time;
      }
      this.absentFields.see(result, record);
      events.push(result);
    }
    this.absentFields.flush();
    return events;
  }
}

/** A partition's id as scale_out names it (PartitionAssignment.id): its state's folder under `state_dir`. */
function partitionId(tp: RdKafka.TopicPartition): string {
  return `${tp.topic}-${tp.partition}`;
}

function newPartitionState(tp: RdKafka.TopicPartition, now: number, assigned: boolean): PartitionState {
  return { topic: tp.topic, partition: tp.partition, id: partitionId(tp), fetched: undefined, next: undefined, maxTime: -Infinity, lastActivity: now, unfetched: false, assigned, atEnd: false, assignment: 0, releasedInRound: -1, committing: undefined, endSeen: -1, highSeen: -1 };
}

/** A record's key as its dead letter carries it: text, or its exact bytes in base64 where they are not UTF-8 text; none for a null key. */
function deadLetterKey(key: RdKafka.MessageKey): Pick<Rejection, 'key' | 'keyEncoding'> {
  if (key === null || key === undefined) return {};
  if (!Buffer.isBuffer(key)) return { key: String(key) };
  return isUtf8(key) ? { key: key.toString('utf8') } : { key: key.toString('base64'), keyEncoding: 'base64' };
}

/** The partition key of the partition a consumer error is about ('' for none). */
function errorPartitionKey(error: unknown): string {
  const at = partitionOfError(error);
  return at ? partitionKey(at.topic, at.partition) : '';
}

/** Blocked partitions, by topic: what /readyz says. */
function blockedDetail(blocked: Iterable<BlockedPartition>): string {
  const byTopic = new Map<string, { partitions: number[]; reason: string }>();
  for (const { state, reason } of blocked) {
    const topic = byTopic.get(state.topic) ?? { partitions: [], reason };
    topic.partitions.push(state.partition);
    byTopic.set(state.topic, topic);
  }
  const topics = [...byTopic].map(([name, { partitions, reason }]) => `topic '${name}' (partition${partitions.length === 1 ? '' : 's'} ${partitions.sort((a, b) => a - b).join(', ')}: ${reason})`);
  return `cannot read ${topics.join(', ')}; ready again once a record of it is read (a denied one: once the brokers answer its fetch), or the group assigns it anew`;
}

/** The partition is this instance's again: a new assignment, read from where the group says. */
function markAssigned(state: PartitionState, now: number): void {
  state.assigned = true;
  state.assignment++;
  state.atEnd = false;
  state.fetched = undefined;
  state.startOffset = undefined;
  state.resumedAt = undefined;
  state.fromLogStart = false;
  state.revokedAt = undefined;
  state.highSeen = -1;
  state.stableEnd = undefined;
  state.lastActivity = now;
  state.unfetched = true;
}

/**
 * The subscription's pattern as JavaScript reads it, anchored at the start as librdkafka anchors it (see
 * run()); JavaScript's regex dialect is close enough for "which match". Undefined without a pattern, or
 * for one JavaScript cannot read (librdkafka's dialect differs).
 */
function subscriptionPattern(config: Pick<KafkaSourceConfig, 'pattern'>): RegExp | undefined {
  if (config.pattern === undefined) return undefined;
  try {
    return new RegExp(config.pattern.startsWith('^') ? config.pattern : `^${config.pattern}`);
  } catch {
    return undefined;
  }
}

/** A broker list's addresses, as written (`host:port`, lower case), to tell whether two entries name one cluster. */
function brokerAddresses(brokers: unknown): Set<string> {
  const list = Array.isArray(brokers) ? brokers : typeof brokers === 'string' ? brokers.split(',') : [];
  return new Set(list.filter((address): address is string => typeof address === 'string').map((address) => address.trim().toLowerCase()).filter((address) => address !== ''));
}

/**
 * The topics this source reads that a `kafka` sink of the same pipeline (the dead-letter one included)
 * writes to on the same brokers: each record written there would come back as input, and a dead letter,
 * never an event, would be dead-lettered again without end (a `pattern` such as `^clicks-.*` beside a
 * dead-letter topic `clicks-dlq`). Said at `pattern`, or at the item of `topics`. Brokers are the same when the two lists
 * share an address as written; another name for one cluster is not caught.
 */
function ownOutputsRead(config: KafkaSourceConfig, pipeline: PipelineOutline): EntryProblem[] {
  const sourceBrokers = brokerAddresses(config.brokers);
  const pattern = subscriptionPattern(config);
  const named = new Set(config.topics ?? []);
  const writers = pipeline.sinks.map((entry, index) => ({ who: `sinks[${index}]`, entry }));
  if (pipeline.deadLetter) writers.push({ who: 'the dead-letter sink', entry: pipeline.deadLetter });
  const problems: EntryProblem[] = [];
  for (const { who, entry } of writers) {
    const topic = entry.config.topic;
    if (entry.type !== 'kafka' || typeof topic !== 'string' || ![...brokerAddresses(entry.config.brokers)].some((address) => sourceBrokers.has(address))) continue;
    const deadLetters = entry === pipeline.deadLetter ? ' (a dead letter, never an event, dead-lettered again without end)' : '';
    const loop = `which ${who} writes on the same brokers: every record written there would be read again as input${deadLetters}`;
    if (pattern?.test(topic)) {
      problems.push({ field: 'pattern', message: `the pattern matches topic '${topic}', ${loop}; name the outputs so the pattern does not match them, end the pattern with \`$\` where it reads too far, or read a list of \`topics\`` });
    } else if (named.has(topic)) {
      problems.push({ field: `topics[${(config.topics ?? []).indexOf(topic)}]`, message: `reads topic '${topic}', ${loop}; read other topics, or write to another one` });
    }
  }
  return problems;
}

/**
 * The topics of `metadata` (those with partitions) that the subscription reads: those of `topics`, or
 * those `pattern` matches. Undefined for a pattern JavaScript cannot read (librdkafka's dialect differs).
 */
function topicsSubscribed(config: KafkaSourceConfig, metadata: RdKafka.Metadata): string[] | undefined {
  const existing = metadata.topics.filter((topic) => topic.partitions.length > 0).map((topic) => topic.name);
  if (config.pattern === undefined) {
    const subscribed = new Set(config.topics);
    return existing.filter((name) => subscribed.has(name));
  }
  const pattern = subscriptionPattern(config);
  return pattern === undefined ? undefined : existing.filter((name) => pattern.test(name));
}

/**
 * Subscribed topics that `metadata`, an answer for every topic, shows missing (for a pattern: the
 * pattern, when no topic of it matches).
 */
function missingTopics(config: KafkaSourceConfig, metadata: RdKafka.Metadata): string[] {
  const found = topicsSubscribed(config, metadata);
  if (found === undefined) return [];
  if (config.pattern !== undefined) return found.length > 0 ? [] : [config.pattern];
  const present = new Set(found);
  return (config.topics ?? []).filter((topic) => !present.has(topic));
}

/** The topics the source subscribed to, as /readyz names them: `topic 'a'`, `topics 'a', 'b'`, or `the topics matching 'p'`. */
function subscriptionNamed(config: KafkaSourceConfig): string {
  if (config.pattern !== undefined) return `the topics matching '${config.pattern}'`;
  const topics = config.topics ?? [];
  return `${topics.length === 1 ? 'topic' : 'topics'} ${topics.map((topic) => `'${topic}'`).join(', ')}`;
}

function missingDetail(config: KafkaSourceConfig, missing: readonly string[]): string {
  if (config.pattern !== undefined) return `no topic matches the pattern '${config.pattern}'`;
  const names = missing.map((topic) => `'${topic}'`).join(', ');
  return `${missing.length === 1 ? `topic ${names} does not exist` : `topics ${names} do not exist`} (or this client may not see it); read once it does`;
}

/**
 * scale_out with several sources: partition p of each source's topic is one task p's input, restored and
 * handed over together, so each topic's p must come to one member. The group's `range` assignor does that
 * for topics of one partition count whose members subscribe alike: one group for all the sources, one topic
 * each (a pattern may match more later), and no other strategy (cooperative-sticky, roundrobin: they spread
 * each topic's partitions on their own). The partition counts are the brokers' and checked at the assignment.
 */
function coPartitionProblems(config: KafkaSourceConfig, pipeline: PipelineOutline, self: OutlineEntry): EntryProblem[] {
  if (pipeline.scaleOut !== true || pipeline.sources.length < 2) return [];
  const others = pipeline.sources.filter((entry) => entry !== self);
  const problems: EntryProblem[] = [];
  const why = 'with scale_out, partition p of every source\'s topic goes to one task p (co-partitioned topics)';
  if (config.pattern !== undefined) problems.push({ field: 'pattern', message: `${why}: each source names its one topic in \`topics\`, not a pattern` });
  else if (config.topics !== undefined && config.topics.length !== 1) problems.push({ field: 'topics', message: `${why}: each source reads one topic; this one names ${config.topics.length} (give each its own source)` });
  else if (config.topics?.length === 1) {
    const topic = config.topics[0]!;
    const sameTopic = others.find((entry) => entry.type === 'kafka' && Array.isArray(entry.config.topics) && (entry.config.topics as unknown[]).includes(topic));
    // In one group the two consumers would split the topic's partitions, and task p would take p of it twice.
    if (sameTopic) problems.push({ field: 'topics', message: `${why}: ${sameTopic.label} reads '${topic}' too; read a topic in one source` });
  }
  const otherGroup = others.find((entry) => entry.type === 'kafka' && entry.config.group !== config.group);
  if (otherGroup) {
    problems.push({
      field: 'group',
      message: `${why}: every source must be in one consumer group, whose assignor gives p of each topic to one member; this one's is '${config.group}', ${otherGroup.label}'s '${String(otherGroup.config.group)}'`,
    });
  }
  if (config.client_id !== undefined) {
    problems.push({
      field: 'client_id',
      message: `${why}: the range assignor ranks a group's consumers by member id, which begins with the client id; leave it out, so that each member's sources get one name of the member (tributary-<pipeline>-<member>-<label>) and rank alike on every topic`,
    });
  }
  const strategy = config.options?.['partition.assignment.strategy'];
  if (strategy !== undefined && String(strategy).split(',')[0]!.trim() !== 'range') {
    problems.push({
      field: fieldText(['options', 'partition.assignment.strategy']),
      message: `${why}: only the range assignor gives partition p of topics with one partition count to one member; '${String(strategy)}' does not (cooperative-sticky and roundrobin spread each topic on its own). Leave it out (librdkafka's default, range) or set range on every member`,
    });
  }
  return problems;
}

/** `start_from`'s point in time in epoch milliseconds, or undefined for `earliest` and `latest`. */
function startTime(config: Pick<KafkaSourceConfig, 'start_from'>): number | undefined {
  if (config.start_from === 'earliest' || config.start_from === 'latest') return undefined;
  const time = Date.parse(config.start_from);
  if (Number.isNaN(time)) throw new Error(`start_from: expected earliest, latest, or a date and time with its UTC offset (RFC 3339), got ${JSON.stringify(config.start_from)}`);
  return time;
}

function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

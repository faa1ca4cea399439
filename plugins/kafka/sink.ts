/**
 * `kafka` sink: writes records as JSON to a Kafka topic, keyed by user id (so one user's records stay
 * in one partition, in order; a model's records without a user by its name, see messageKey), with an idempotent producer (no duplicates or reordering from retries).
 *
 * `flush()` resolves only when the brokers have acknowledged every record written so far (librdkafka's
 * flush, which returns once its queue is empty), and rejects if any delivery failed (only failures are
 * reported, per record): the runtime commits the source's offsets only after it. With `guarantee:
 * exactly-once` the records go into the pipeline's Kafka transaction instead, which the Kafka source
 * commits together with its offsets (transactions.ts); there `flush()` waits for nothing, since the
 * records become durable and visible with that commit, not before.
 *
 * Works as the dead-letter sink and as a side-output sink (`outputs: [late]`) too.
 */
import { isDeepStrictEqual } from 'node:util';
import { defineSink, fieldText, parseDuration, PluginConfigError, recordToJsonBytes, TributaryError, valueAtPath, type EntryProblem, type PipelineOutline, type PluginContext, type StreamRecord } from 'tributary';
import type * as RdKafka from 'node-rdkafka';
import {
  asError,
  brokerList,
  brokersUnreachable,
  connectionProperties,
  connectUnlessStopped,
  deliveryFailure,
  disconnectProducer,
  dispatched,
  ErrorCode,
  exactlyOnceMismatch,
  fatalErrorOf,
  flushProducer,
  guaranteeProperty,
  hasExactlyOnceKafkaSource,
  inOutage,
  librdkafkaConnection,
  librdkafkaFeatures,
  missingCodec,
  missingOptionCodecs,
  provideOauthToken,
  ProducerReachability,
  promisify,
  rdkafka,
  redactProperties,
  refusedOptions,
  throughLookupLane,
  topicListed,
  transactionalProducerOwner,
  type CompressionCodec,
  type ConnectionConfig,
  type Guarantee,
  withTlsFiles,
} from './common.js';
import { PipelineTransactions } from './transactions.js';

/**
 * The failure of a sink whose topic the brokers do not list, at its open: the usual first mistake
 * against a new cluster. Without this check it came only from the first flush, after input was read.
 */
function topicNotThere(topic: string): TributaryError {
  return new TributaryError(
    'TRIB_ERR_SINK',
    `kafka sink: topic '${topic}' is not there: it does not exist (the brokers do not create topics on first use: create it, or enable auto.create.topics.enable on them), or this client may not describe it`,
  );
}

export interface KafkaSinkConfig extends ConnectionConfig {
  topic: string;
  key_field: string;
  guarantee: Guarantee;
  transactional_id?: string;
  /** Unset: {@link transactionTimeoutMs}'s default. */
  transaction_timeout?: string | number;
  compression: CompressionCodec;
  linger: string | number;
  batch_size: number;
  max_in_flight: number;
}

/** Least transaction timeout by default (Kafka Streams' too). */
const defaultTransactionTimeoutMs = 10_000;
/** The brokers' transaction.max.timeout.ms by default: initTransactions is refused a longer transaction timeout. */
const brokersMaxTransactionTimeoutMs = 900_000;
/** librdkafka's message.timeout.ms by default (at-least-once; exactly-once, it is the transaction timeout). */
const defaultMessageTimeoutMs = 300_000;

/**
 * The exactly-once producer's transaction.timeout.ms: `transaction_timeout`, else twice the time
 * between commits (at least 10 s, at most the brokers' default cap of 15 min). Each transaction stays
 * open from one commit to the next, `checkpoint.interval` apart with checkpoints (30 s by default), and
 * the brokers abort one open longer than its timeout: with a fixed 10 s, a pipeline with checkpoints
 * never committed one (every commit found its transaction aborted, read as a fencing; restarts without end).
 */
export function transactionTimeoutMs(configured: string | number | undefined, commitIntervalMs: number): number {
  if (configured !== undefined) return parseDuration(configured);
  return Math.min(brokersMaxTransactionTimeoutMs, Math.max(defaultTransactionTimeoutMs, 2 * commitIntervalMs));
}

/**
 * What would keep this sink's producer from working, found from its config and how often the
 * pipeline commits (PipelineOutline.commits in `validate`, PluginContext.commitIntervalMs at the
 * start): a transaction timeout no longer than the time between commits (the brokers would abort every
 * transaction), and a `linger` no shorter than the producer's message timeout (librdkafka refuses the
 * producer: before, that failed the start as "cannot connect to the brokers", restarted without end).
 */
function producerTimingProblems(config: KafkaSinkConfig, commits: { intervalMs: number; setting: string } | undefined): EntryProblem[] {
  const problems: EntryProblem[] = [];
  const exactlyOnce = config.guarantee === 'exactly-once';
  const transactionMs = exactlyOnce && commits ? transactionTimeoutMs(config.transaction_timeout, commits.intervalMs) : undefined;
  if (transactionMs !== undefined && commits && transactionMs <= commits.intervalMs) {
    const set = config.transaction_timeout !== undefined;
    problems.push({
      field: set ? 'transaction_timeout' : 'guarantee',
      message:
        `exactly-once: each transaction stays open from one commit to the next, every ${commits.intervalMs / 1000} s (${commits.setting}), and the brokers abort one ` +
        `open longer than the transaction timeout (${transactionMs / 1000} s${set ? '' : ', the most brokers allow by default'}), so none would ever commit: ` +
        (set ? `set transaction_timeout well above ${commits.intervalMs / 1000} s, or commit more often` : `commit more often (${commits.setting} under ${brokersMaxTransactionTimeoutMs / 60_000} min)`),
    });
  }
  const optionTimeout = config.options?.['message.timeout.ms'];
  const messageMs = optionTimeout !== undefined ? Number(optionTimeout) : exactlyOnce ? transactionMs : defaultMessageTimeoutMs;
  const lingerMs = parseDuration(config.linger);
  if (messageMs !== undefined && messageMs > 0 && lingerMs >= messageMs) {
    const what = optionTimeout !== undefined ? "options' message.timeout.ms" : exactlyOnce ? 'the transaction timeout' : "librdkafka's message.timeout.ms";
    problems.push({ field: 'linger', message: `linger (${lingerMs} ms) must be shorter than ${what} (${messageMs} ms): librdkafka refuses a producer that would time a record out before it may send it` });
  }
  return problems;
}

/** Fields each exactly-once sink keeps for itself; every other one configures the shared transactional producer. */
const perSinkFields: ReadonlySet<string> = new Set(['topic', 'key_field', 'guarantee']);
/** Shared fields whose values a config error must not print (credentials). */
const unprintedFields: ReadonlySet<string> = new Set(['security', 'options']);

/**
 * Every exactly-once sink of a pipeline writes through one transactional producer, created from the
 * first one's settings (PipelineTransactions.obtain): another's different `brokers` or
 * `transactional_id` (or compression, linger...) would be ignored without a word. Each field that
 * differs from that sink's is a problem at the field; of a map set in both (`options`, `security`),
 * at each key that differs (`options["sasl.password"]`).
 */
function sharedProducerMismatches(config: KafkaSinkConfig, pipeline: PipelineOutline): EntryProblem[] {
  const owner = transactionalProducerOwner(pipeline);
  if (!owner) return [];
  const own = config as unknown as Readonly<Record<string, unknown>>;
  const comparable = (field: string, value: unknown): unknown => (field === 'brokers' && Array.isArray(value) ? value.join(',') : value);
  const problems: EntryProblem[] = [];
  for (const field of new Set([...Object.keys(owner.config), ...Object.keys(own)])) {
    if (perSinkFields.has(field)) continue;
    for (const path of differingPaths([field], comparable(field, owner.config[field]), comparable(field, own[field]))) {
      const there = valueAtPath(owner.config, path);
      const here = valueAtPath(own, path);
      const values = unprintedFields.has(field) ? '' : ` (${JSON.stringify(there) ?? 'not set'} there, ${JSON.stringify(here) ?? 'not set'} here)`;
      const name = fieldText(path);
      problems.push({
        field: name,
        message:
          `every exactly-once \`kafka\` sink of a pipeline writes through one transactional producer, set up from ${owner.where}: ` +
          `\`${name}\` must be the same as there${values}; only \`topic\` and \`key_field\` may differ`,
      });
    }
  }
  return problems;
}

const isMap = (value: unknown): value is Readonly<Record<string, unknown>> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The paths, from `at`, where `there` and `here` differ: into the keys of maps both have, else the whole value. */
function differingPaths(at: readonly string[], there: unknown, here: unknown): string[][] {
  if (isDeepStrictEqual(there, here)) return [];
  if (!isMap(there) || !isMap(here)) return [[...at]];
  return [...new Set([...Object.keys(there), ...Object.keys(here)])].flatMap((key) => differingPaths([...at, key], there[key], here[key]));
}

export default defineSink<KafkaSinkConfig>({
  name: 'kafka',
  status: 'beta',
  // Its topic's consumers act on what it writes: a backtest writes a file in the report folder instead.
  external: true,
  summary: 'Writes records as JSON to a Kafka topic, keyed by user id, with an idempotent or transactional producer.',
  description:
    'Each record is one JSON message, the line a `file` sink writes for it, with no headers (a `kafka` source reads events back with ' +
    '`mapping: canonical`); its key is the record field `key_field` (the user id by default), so a user\'s records stay in one partition in the ' +
    'order written. A record without that field is keyed by what keeps its own kind in order: a `drift` or `model_metrics` record (no user) by its ' +
    '`model`, a dead letter as the record it carries (`raw`; a rejected event by its user), else by the key of its input message (a Kafka ' +
    'source\'s `key`, where it is text); any other has no key, and librdkafka\'s partitioner spreads those over the partitions. The producer is ' +
    'idempotent (acks=all), and `flush` waits until the brokers acknowledged every record written (and fails if any ' +
    'delivery failed), so source offsets are committed only for records the brokers hold. With `guarantee: exactly-once` every such sink of the pipeline writes in one Kafka ' +
    'transaction that also commits the Kafka source offsets, through one producer (so their fields other than `topic` and `key_field` must agree); ' +
    'consumers should read with isolation.level=read_committed. A record larger than `message.max.bytes` (librdkafka\'s: ' +
    '1,000,000 bytes with its key unless `options` sets it) goes to the ' +
    'dead-letter sink with the reason instead of failing the run (which a restart would meet again); a dead letter that ' +
    'large, this sink being the dead-letter sink, is written with its `raw` cut to fit and `rawBytes` its whole length. ' +
    'The topic\'s `max.message.bytes` (1,048,588 on a default broker) bounds a whole batch of records, and a batch over it fails ' +
    'every record in it, and the run: keep `message.max.bytes` and `batch.size` (librdkafka\'s, 1,000,000 bytes) within it.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['brokers', 'topic'],
    properties: {
      ...connectionProperties,
      topic: { type: 'string', minLength: 1, description: 'Topic to write to (it must exist, or the brokers must create topics on first use); one the brokers do not list fails the start, whatever the guarantee.' },
      key_field: {
        type: 'string',
        minLength: 1,
        default: 'userId',
        description: 'Record field used as the message key (a string, or a number as text). A record without it is keyed by its `model` (`drift`, `model_metrics`) or, a dead letter, as the record it carries or by its input message\'s key; other records without it get no key. Default: the user id.',
      },
      guarantee: guaranteeProperty,
      transactional_id: {
        type: 'string',
        minLength: 1,
        description:
          'exactly-once only: the producer transactional.id. Keep it stable across restarts of one instance (a restart then ' +
          'fences and aborts the previous transaction at once) and distinct between instances. Default: tributary-<pipeline>.',
      },
      transaction_timeout: {
        $ref: 'tributary:duration',
        description:
          'exactly-once only: the producer transaction.timeout.ms, after which the brokers abort a transaction left open. ' +
          'Each transaction stays open from one commit to the next (`checkpoint.interval` apart with checkpoints, else ' +
          '`settings.commit_interval`), so it must be longer than that, with room for the commit itself. Default: twice that interval, ' +
          'at least 10 s (Kafka Streams\' default) and at most 15 min (the brokers\' default transaction.max.timeout.ms, above which ' +
          'they refuse the producer): 60 s with the default 30 s checkpoints. An instance that dies mid-transaction without coming back ' +
          'under its transactional_id holds back read_committed readers of the outputs, and the group member that takes its partitions, ' +
          'until then. A broker outage longer than it fails the open transaction (the daemon restarts the pipeline).',
        // librdkafka's transaction.timeout.ms takes no less.
        minDuration: '1s',
      },
      compression: {
        enum: ['none', 'gzip', 'snappy', 'lz4', 'zstd'],
        default: 'lz4',
        description:
          'Compression of record batches. `zstd` needs a librdkafka built with libzstd: node-rdkafka\'s bundled one is not, and `validate` says so.',
      },
      linger: { $ref: 'tributary:duration', default: '5ms', maxDuration: '15m', description: 'How long the producer waits to fill a batch (librdkafka linger.ms, at most 15 min).' },
      batch_size: { type: 'integer', minimum: 1, default: 10000, description: 'Most records in one batch to the broker (librdkafka batch.num.messages).' },
      max_in_flight: {
        type: 'integer',
        minimum: 1,
        default: 100000,
        description:
          'Most records written and not yet acknowledged (at-least-once: the producer queue, librdkafka queue.buffering.max.messages); ' +
          'above it the sink tells the runtime to wait (back pressure).',
      },
    },
  },
  examples: [
    { brokers: '${KAFKA_BROKERS}', topic: 'predictions' },
    { brokers: '${KAFKA_BROKERS}', topic: 'predictions', guarantee: 'exactly-once', transactional_id: 'intent-${HOSTNAME}', compression: 'gzip' },
  ],
  checkPipeline(config, pipeline) {
    // Not a check across entries, but the hook validate runs where the field's position is known.
    const features = librdkafkaFeatures();
    const codec = missingCodec(config.compression, features);
    const problems: EntryProblem[] = codec === undefined ? [] : [{ field: 'compression', message: codec }];
    const codecs = missingOptionCodecs(config.options, features);
    // A codec this build lacks is said so above, in words that name the ones it has.
    const refused = refusedOptions(config.options, 'producer').filter(({ name }) => !codecs.some((codec) => codec.name === name));
    for (const { name, why } of [...codecs, ...refused]) problems.push({ field: fieldText(['options', name]), message: why });
    problems.push(...producerTimingProblems(config, pipeline.commits));
    if (config.guarantee !== 'exactly-once') return problems;
    if (!hasExactlyOnceKafkaSource(pipeline)) return [...problems, { field: 'guarantee', message: exactlyOnceMismatch.sinkWithoutSource }];
    return [...problems, ...sharedProducerMismatches(config, pipeline)];
  },
  async create(config, context) {
    // Again with the run's own commit interval: `--checkpoint-dir` adds checkpoints the file may not declare.
    const commits = context.commitIntervalMs === undefined ? undefined : { intervalMs: context.commitIntervalMs, setting: 'checkpoint.interval' };
    const [timing] = producerTimingProblems(config, commits);
    if (timing) throw new PluginConfigError(timing.field ?? 'guarantee', timing.message);
    config = withTlsFiles(config, context.baseDir);
    const Kafka = await rdkafka();
    const lingerMs = parseDuration(config.linger);
    const properties: Record<string, string | number | boolean> = {
      ...librdkafkaConnection(config, `tributary-${context.pipeline}-${context.label}`, Kafka.features),
      'enable.idempotence': true,
      acks: 'all',
      'compression.codec': config.compression,
      'linger.ms': lingerMs,
      'batch.num.messages': config.batch_size,
      // Delivery reports only for failures: a report per record would cost a JS object and an event
      // each. flush() learns that everything was acknowledged from librdkafka's own flush instead.
      'delivery.report.only.error': true,
      'socket.keepalive.enable': true,
      ...(config.options ?? {}),
    };
    context.logger.debug({ kafka: redactProperties(properties) }, 'kafka sink configured');
    const keyOf = (record: StreamRecord): string | null => messageKey(record, config.key_field);
    const fitted = sizeLimit(Number(properties['message.max.bytes'] ?? defaultMaxMessageBytes), context, config.topic);

    if (config.guarantee === 'exactly-once') {
      if (!context.shared) throw new Error('guarantee: exactly-once needs a runtime that shares state between the plugins of a pipeline');
      const transactionalId = config.transactional_id ?? `tributary-${context.pipeline}`;
      const transactions = await PipelineTransactions.obtain(
        context.shared,
        {
          ...properties,
          'queue.buffering.max.messages': config.options?.['queue.buffering.max.messages'] ?? Math.max(config.max_in_flight * 2, 100_000),
          'transactional.id': transactionalId,
          'transaction.timeout.ms': transactionTimeoutMs(config.transaction_timeout, context.commitIntervalMs ?? 1_000),
        },
        // Its lines are the producer's, not this sink's (the first one's, which creates it): labelled so.
        context.sharedLogger?.(PipelineTransactions.logName(transactionalId)) ?? context.logger,
        config,
        context.signal,
      );
      transactions.join(context.label, config.topic);
      // Its failures name it and the sinks that share it: the runtime reports them so, not as this sink's.
      transactions.onFailure((error) => context.fail(error));
      return {
        open: async () => {
          // Every plugin exists now: a pipeline with no exactly-once kafka source would never commit a transaction.
          if (!transactions.sourceAttached) {
            throw new TributaryError('TRIB_ERR_PLUGIN_FACTORY', exactlyOnceMismatch.sinkWithoutSource);
          }
          // The producer connects (the first such sink's open) and the topic is looked up, as an
          // at-least-once sink's; no transaction yet: a sink opened after this one may still fail, and
          // initTransactions fences the transactional.id's previous owner. They start once the pipeline
          // runs (PipelineTransactions.open: the source's first read, or ready() below).
          context.logger.info({ brokers: brokerList(config), topic: config.topic }, 'kafka sink: connecting to the brokers');
          if (!(await transactions.connect(context.signal))) {
            context.logger.info({ topic: config.topic }, 'kafka sink: stopped while connecting to the brokers');
            return;
          }
          if ((await transactions.topicListed(config.topic, context.signal)) === false) throw topicNotThere(config.topic);
        },
        // Its records are committed with the source's offsets (the source's commit), not by flush.
        transactional: true,
        write(record) {
          const key = keyOf(record);
          const value = fitted(record, recordToJsonBytes(record), key);
          if (value) transactions.produce(config.topic, value, key);
        },
        ready: () => transactions.ready(),
        flush: () => transactions.flush(),
        health: () => transactions.health(),
        close: () => transactions.close(),
      };
    }

    // librdkafka holds at most max_in_flight records not yet acknowledged (an acknowledged record
    // leaves its queue); beyond that produce() refuses them and the sink asks the runtime to wait.
    const producer = throughLookupLane(
      new Kafka.Producer(
        {
          ...properties,
          'queue.buffering.max.messages': config.options?.['queue.buffering.max.messages'] ?? config.max_in_flight,
          // librdkafka wants a batch to fit in its queue.
          'batch.num.messages': Math.min(config.batch_size, config.max_in_flight),
          dr_cb: true,
        } as RdKafka.ProducerGlobalConfig,
        {},
      ),
    );
    /** Records handed to librdkafka since the last flush began. */
    let produced = 0;
    let failure: Error | undefined;
    /**
     * Why the producer cannot go on: librdkafka raised a fatal error (e.g. the brokers refuse it a
     * producer id). Every write, flush and wait for room fails with it, and the sink is not ready.
     */
    let fatal: Error | undefined;
    let room: { resolve: () => void; reject: (error: Error) => void } | undefined;
    let roomPromise: Promise<void> | undefined;
    /** Answers the pipeline's wait for room (ready()), if any: room came (no error), or none will (why). */
    const answerRoom = (error?: Error): void => {
      const waiting = room;
      room = undefined;
      roomPromise = undefined;
      if (error) waiting?.reject(error);
      else waiting?.resolve();
    };
    let retryTimer: NodeJS.Timeout | undefined;
    /** Records produce() refused (max_in_flight unacknowledged): sent first, as soon as there is room. */
    let backlog: { value: Buffer; key: string | null }[] = [];
    producer.on('delivery-report', (error) => {
      // Only failures are reported (delivery.report.only.error). The pipeline is told at once: while
      // the input is quiet, no write or flush would report it (a flush at each checkpoint only failed
      // that checkpoint), and the run went on, ready, with the record lost until a restart.
      if (!error || failure) return;
      failure = inOutage(deliveryFailure(config.topic, error), brokers.unreachable());
      context.fail(failed()!);
    });
    const brokers = new ProducerReachability(producer, 'records wait in the producer', context.logger, brokerList(config));
    const failFatally = (raised: Error): void => {
      if (fatal) return;
      fatal = new Error(`the producer hit a fatal error and cannot go on: ${raised.message}`, { cause: raised });
      context.logger.error({ topic: config.topic, err: fatal.message }, 'kafka sink failed');
      // Raised in a callback (event.error), maybe while the input is quiet: the pipeline stops now,
      // not at the sink's next record.
      context.fail(fatal);
      clearTimeout(retryTimer);
      retryTimer = undefined;
      answerRoom(fatal);
    };
    /** The failure to report: a fatal error first (a delivery failure may be its consequence: records purged). */
    const failed = (): Error | undefined => {
      if (failure && !fatal) {
        const raised = fatalErrorOf(producer);
        if (raised) failFatally(raised);
      }
      return fatal ?? failure;
    };
    producer.on('event.error', (error) => {
      // node-rdkafka says nothing of an error being fatal; librdkafka does, when asked.
      // (After one, every error is its echo.)
      if (fatal) return;
      const raised = fatalErrorOf(producer);
      if (raised) failFatally(raised);
      else brokers.observe(error, 'kafka producer error', { topic: config.topic });
    });
    // Serves the failure reports and librdkafka's other callbacks (errors, statistics).
    producer.setPollInterval(20);
    let stopTokens: () => void = () => undefined;
    /** Connected by open(): a sink never opened (the pipeline failed to start) has nothing to flush or disconnect. */
    let opened = false;
    /** The pipeline stops (or failed) while the brokers are unreachable: its flush and close wait for nothing more. */
    const stoppedInOutage = (): Error | undefined => brokers.stoppedUnreachable(context.signal, `kafka sink (topic '${config.topic}')`);
    const send = (value: Buffer, key: string | null): boolean => {
      try {
        producer.produce(config.topic, null, value, key, Date.now());
        produced++;
        return true;
      } catch (error) {
        if (asError(error).code === ErrorCode.QUEUE_FULL) return false;
        const raised = fatal ? undefined : fatalErrorOf(producer);
        if (raised) failFatally(raised);
        // A refusal librdkafka knows before sending (an ACL denies the topic): named as a failed delivery is.
        throw fatal ?? deliveryFailure(config.topic, asError(error));
      }
    };
    const retryBacklog = (): void => {
      clearTimeout(retryTimer);
      retryTimer = undefined;
      if (fatal) return;
      const outage = stoppedInOutage();
      if (outage) {
        // A stop in an outage: no room will come, and the pipeline's wait for it (ready()) ends the stop.
        answerRoom(outage);
        return;
      }
      let sent = 0;
      try {
        while (sent < backlog.length && send(backlog[sent]!.value, backlog[sent]!.key)) sent++;
      } catch (error) {
        // Those sent are librdkafka's now: not sent again by a later retry.
        backlog = backlog.slice(sent);
        // Called from a timer: a refusal here (the producer failed meanwhile) must reach the runtime
        // through ready(), not end the process.
        if (!fatal) failure ??= asError(error);
        answerRoom(failed()!);
        return;
      }
      if (sent > 0) backlog = backlog.slice(sent);
      if (backlog.length > 0) {
        // Acknowledgements make room without telling this thread: look again shortly.
        retryTimer = setTimeout(retryBacklog, 5);
        return;
      }
      answerRoom();
    };
    const queue = (value: Buffer, key: string | null): void => {
      backlog.push({ value, key });
      retryTimer ??= setTimeout(retryBacklog, 5);
    };
    return {
      // Connecting touches the brokers: only once every factory succeeded (see Sink.open).
      async open() {
        stopTokens = await provideOauthToken(producer, config, Kafka.features, (error) => context.logger.error({ err: error.message }, 'kafka OAUTHBEARER token refresh failed'));
        context.logger.info({ brokers: brokerList(config), topic: config.topic }, 'kafka sink: connecting to the brokers');
        const connected = await brokers
          .whileConnecting(connectUnlessStopped(producer, { timeoutMs: 30_000, signal: context.signal }))
          .catch((error: unknown) => brokersUnreachable(error, 'connect to the brokers', brokers.failures));
        if (!connected) {
          // Told to stop first: the runtime ends the run without reading (nothing to flush or disconnect).
          context.logger.info({ topic: config.topic }, 'kafka sink: stopped while connecting to the brokers');
          return;
        }
        brokers.reachable();
        opened = true;
        // A topic that is not there fails the start, not the first flush after the input was read.
        if ((await topicListed(producer, config.topic, { signal: context.signal })) === false) throw topicNotThere(config.topic);
      },
      write(record) {
        if (fatal ?? failure) throw failed();
        const key = keyOf(record);
        // A scratch buffer: librdkafka copies it; a record queued here gets its own copy.
        const value = fitted(record, recordToJsonBytes(record), key);
        if (!value) return;
        if (backlog.length === 0 && send(value, key)) return;
        queue(Buffer.from(value), key);
      },
      ready() {
        if (fatal) return Promise.reject(fatal);
        if (backlog.length === 0) return undefined;
        // A stop in an outage waits for no room: none will come.
        const outage = stoppedInOutage();
        if (outage) return Promise.reject(outage);
        roomPromise ??= new Promise<void>((resolve, reject) => {
          room = { resolve, reject };
        });
        return roomPromise;
      },
      async flush() {
        // Nothing written since the last flush (e.g. a dead-letter sink): no threadpool round trip.
        if (fatal) throw fatal;
        if (produced === 0 && backlog.length === 0) {
          if (failure) throw failed();
          return;
        }
        while (backlog.length > 0) {
          // A failure (the producer refusing every record, at once: without this the loop never let
          // the event loop turn) or a stop in an outage ends the wait for room.
          if (fatal ?? failure) throw failed();
          const outage = stoppedInOutage();
          if (outage) throw outage;
          retryBacklog();
          if (backlog.length > 0) await promisify((cb) => producer.flush(1_000, cb)).catch(() => undefined);
        }
        // Resolves once librdkafka holds no record: each was acknowledged or has failed, and the
        // failure reports have been handed to node-rdkafka's dispatcher before it returns. Only then
        // is the count cleared: after a flush that timed out (brokers down), the next one must wait
        // for those records again, not find nothing written and let a checkpoint commit their offsets.
        const before = produced;
        await flushProducer(producer, 60_000, () => fatal ?? stoppedInOutage()).catch((error: unknown) => {
          throw error === fatal ? error : inOutage(asError(error), brokers.unreachable());
        });
        await dispatched();
        produced -= before;
        if (fatal ?? failure) throw failed();
        brokers.reachable();
      },
      health: () => (fatal ? { ready: false, detail: fatal.message } : brokers.health()),
      async close() {
        clearTimeout(retryTimer);
        if (!opened) {
          stopTokens();
          return;
        }
        // In a broker outage nothing more will be acknowledged: the records held are let go (their
        // input was not committed), rather than waited for as long as the stop may take.
        if (!stoppedInOutage()) await flushProducer(producer, 30_000, stoppedInOutage).catch(() => undefined);
        await disconnectProducer(producer, stoppedInOutage() ? 0 : 10_000);
        stopTokens();
        if (fatal ?? failure) throw failed();
      },
    };
  },
});

/** librdkafka's `message.max.bytes` when the sink's `options` do not set it. */
const defaultMaxMessageBytes = 1_000_000;
/** A record field's value as a message key: a string, or a number as text; anything else is no key. */
function keyText(value: unknown): string | null {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : null;
}

/**
 * A record's message key: its `keyField`. One without it is keyed so that what belongs together stays in one
 * partition, in the order written: a record with a `model` and no user (`drift`, `model_metrics`) by the model's
 * name; a dead letter by the key of the record it carries (its `raw`, keyed so: a rejected event's user), else
 * by the key its input message had (a Kafka source's `key`, where it is text). Any other gets no key, which
 * librdkafka's partitioner spreads over the partitions.
 */
export function messageKey(record: StreamRecord, keyField: string): string | null {
  const own = keyText(record[keyField]);
  if (own !== null) return own;
  if (record.kind === 'dead_letter') {
    const raw = record['raw'];
    // A rejected record (an event, a drift record too large for the topic) is keyed as it would have been.
    const carried = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? messageKey(raw as StreamRecord, keyField) : null;
    if (carried !== null) return carried;
    // A key librdkafka gave as bytes that are not text (`keyEncoding: base64`) is not the message's key as text.
    return record['keyEncoding'] === undefined ? keyText(record['key']) : null;
  }
  return keyText(record['model']);
}

/** What librdkafka counts of a record besides its key and value (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD; no headers). */
const recordOverheadBytes = 41;
/** Room left beside a cut dead letter's `raw` for what the cut adds (its two fields, a character cut in two). */
const cutMarginBytes = 64;

/**
 * The sink's check of each record against `message.max.bytes`, librdkafka's own (its produce() would
 * refuse the record, and the run would fail on it after every restart). An output too large goes to
 * the dead-letter sink with the reason; a dead letter too large (its `raw`, an oversized input, did
 * it) is written with `raw` cut to fit, `rawBytes` saying how long it was: it has nowhere else to go,
 * and its reason and position still say which input it was. Returns the value to send, or undefined.
 */
function sizeLimit(maxBytes: number, context: PluginContext, topic: string): (record: StreamRecord, value: Buffer, key: string | null) => Buffer | undefined {
  const keyBytes = (key: string | null): number => (key === null ? 0 : Buffer.byteLength(key));
  return (record, value, key) => {
    const bytes = recordOverheadBytes + keyBytes(key) + value.length;
    if (bytes <= maxBytes) return value;
    if (record.kind !== 'dead_letter') {
      context.deadLetter({ reason: `kafka sink: the ${record.kind} record is ${bytes} bytes with its key, more than message.max.bytes (${maxBytes}) lets topic '${topic}' take`, raw: record });
      return undefined;
    }
    const raw = typeof record.raw === 'string' ? record.raw : JSON.stringify(record.raw) ?? '';
    const rawBytes = Buffer.byteLength(raw);
    const without = bytes - rawBytes;
    const kept = Buffer.from(raw).subarray(0, Math.max(0, maxBytes - without - cutMarginBytes)).toString();
    context.logger.warn({ topic, bytes, maxBytes, rawBytes }, 'kafka sink: a dead letter larger than message.max.bytes is written with its raw input cut to fit');
    return recordToJsonBytes({ ...record, raw: kept, rawBytes });
  };
}

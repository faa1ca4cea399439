/**
 * `kafka` sink: writes records as JSON to a Kafka topic, keyed by user id (so one user's records stay
 * in one partition, in order), with an idempotent producer (no duplicates or reordering from retries).
 *
 * `flush()` resolves only when the brokers have acknowledged every record written so far (delivery
 * reports), and rejects if any delivery failed: the runtime commits the source's offsets only after
 * it. With `guarantee: exactly-once` the records go into the pipeline's Kafka transaction instead,
 * which the Kafka source commits together with its offsets (transactions.ts).
 *
 * Works as the dead-letter sink and as a side-output sink (`outputs: [late]`) too.
 */
import { defineSink, parseDuration, recordToJson, type SourceHealth, type StreamRecord } from 'tributary';
import type * as RdKafka from 'node-rdkafka';
import {
  asError,
  connectionProperties,
  ErrorCode,
  guaranteeProperty,
  librdkafkaConnection,
  provideOauthToken,
  promisify,
  rdkafka,
  redactProperties,
  type ConnectionConfig,
  type Guarantee,
} from './common.js';
import { PipelineTransactions } from './transactions.js';

export interface KafkaSinkConfig extends ConnectionConfig {
  topic: string;
  key_field: string;
  guarantee: Guarantee;
  transactional_id?: string;
  compression: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
  linger: string | number;
  batch_size: number;
  max_in_flight: number;
}

export default defineSink<KafkaSinkConfig>({
  name: 'kafka',
  status: 'beta',
  summary: 'Writes records as JSON to a Kafka topic, keyed by user id, with an idempotent or transactional producer.',
  description:
    'Each record is one JSON message; its key is the record field `key_field` (the user id by default). The producer is ' +
    'idempotent (acks=all), and `flush` waits for every delivery report, so source offsets are committed only for ' +
    'records the brokers hold. With `guarantee: exactly-once` every such sink of the pipeline writes in one Kafka ' +
    'transaction that also commits the Kafka source offsets; consumers should read with isolation.level=read_committed.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['brokers', 'topic'],
    properties: {
      ...connectionProperties,
      topic: { type: 'string', minLength: 1, description: 'Topic to write to (it must exist, or the brokers must create topics on first use).' },
      key_field: {
        type: 'string',
        minLength: 1,
        default: 'userId',
        description: 'Record field used as the message key (records without it get no key). Default: the user id.',
      },
      guarantee: guaranteeProperty,
      transactional_id: {
        type: 'string',
        minLength: 1,
        description:
          'exactly-once only: the producer transactional.id. Keep it stable across restarts of one instance (a restart then ' +
          'fences and aborts the previous transaction at once) and distinct between instances. Default: tributary-<pipeline>.',
      },
      compression: { enum: ['none', 'gzip', 'snappy', 'lz4', 'zstd'], default: 'lz4', description: 'Compression of record batches.' },
      linger: { $ref: 'tributary:duration', default: '5ms', description: 'How long the producer waits to fill a batch (librdkafka linger.ms).' },
      batch_size: { type: 'integer', minimum: 1, default: 10000, description: 'Most records in one batch to the broker (librdkafka batch.num.messages).' },
      max_in_flight: {
        type: 'integer',
        minimum: 1,
        default: 100000,
        description: 'Most records written and not yet acknowledged; above it the sink tells the runtime to wait (back pressure).',
      },
    },
  },
  examples: [
    { brokers: '${KAFKA_BROKERS}', topic: 'predictions' },
    { brokers: '${KAFKA_BROKERS}', topic: 'predictions', guarantee: 'exactly-once', transactional_id: 'intent-${HOSTNAME}', compression: 'zstd' },
  ],
  async create(config, context) {
    const Kafka = await rdkafka();
    const lingerMs = parseDuration(config.linger);
    const properties: Record<string, string | number | boolean> = {
      ...librdkafkaConnection(config, `tributary-${context.pipeline}-${context.label}`, Kafka.features),
      'enable.idempotence': true,
      acks: 'all',
      'compression.codec': config.compression,
      'linger.ms': lingerMs,
      'batch.num.messages': config.batch_size,
      'queue.buffering.max.messages': Math.max(config.max_in_flight * 2, 100_000),
      'socket.keepalive.enable': true,
      ...(config.options ?? {}),
    };
    context.logger.debug({ kafka: redactProperties(properties) }, 'kafka sink configured');
    const keyField = config.key_field;
    const keyOf = (record: StreamRecord): string | null => {
      const key = record[keyField];
      return typeof key === 'string' ? key : typeof key === 'number' ? String(key) : null;
    };

    if (config.guarantee === 'exactly-once') {
      if (!context.shared) throw new Error('guarantee: exactly-once needs a runtime that shares state between the plugins of a pipeline');
      const transactions = await PipelineTransactions.obtain(
        context.shared,
        { ...properties, 'transactional.id': config.transactional_id ?? `tributary-${context.pipeline}`, 'transaction.timeout.ms': 60_000 },
        context.logger,
        config,
      );
      return {
        write(record) {
          transactions.produce({ topic: config.topic, value: Buffer.from(recordToJson(record)), key: keyOf(record), timestamp: Date.now() });
        },
        ready: () => transactions.ready(),
        flush: () => transactions.flush(),
        close: () => transactions.close(),
      };
    }

    const producer = new Kafka.Producer({ ...properties, dr_cb: true } as RdKafka.ProducerGlobalConfig, {});
    let outstanding = 0;
    let failure: Error | undefined;
    let healthy: SourceHealth = { ready: true };
    let drained: (() => void) | undefined;
    let room: (() => void) | undefined;
    let roomPromise: Promise<void> | undefined;
    /** Records produce() refused (local queue full); retried first on the next poll. */
    let backlog: { value: Buffer; key: string | null }[] = [];
    producer.on('delivery-report', (error) => {
      outstanding--;
      if (error) failure ??= asError(error);
      else if (!healthy.ready) healthy = { ready: true };
      if (outstanding <= config.max_in_flight / 2 && room) {
        const wake = room;
        room = undefined;
        roomPromise = undefined;
        wake();
      }
      if (outstanding === 0) drained?.();
    });
    producer.on('event.error', (error) => {
      const code = (error as { code?: number }).code;
      if (code === ErrorCode.ALL_BROKERS_DOWN || code === ErrorCode.TRANSPORT) {
        if (healthy.ready) context.logger.warn({ err: error.message }, 'kafka sink: brokers unreachable; records wait in the producer');
        healthy = { ready: false, detail: error.message };
      } else {
        context.logger.warn({ code, err: error.message }, 'kafka producer error');
      }
    });
    producer.setPollInterval(20);
    const stopTokens = await provideOauthToken(producer, config, Kafka.features, (error) => context.logger.error({ err: error.message }, 'kafka OAUTHBEARER token refresh failed'));
    await promisify((cb) => producer.connect({ timeout: 30_000 }, (error) => cb(error)));
    const send = (value: Buffer, key: string | null): boolean => {
      try {
        producer.produce(config.topic, null, value, key, Date.now());
        outstanding++;
        return true;
      } catch (error) {
        if (asError(error).code === ErrorCode.QUEUE_FULL) return false;
        throw error;
      }
    };
    const retryBacklog = (): void => {
      while (backlog.length > 0 && send(backlog[0]!.value, backlog[0]!.key)) backlog.shift();
    };
    const backlogTimer = setInterval(retryBacklog, 20);
    backlogTimer.unref();
    return {
      write(record) {
        if (failure) throw failure;
        const key = keyOf(record);
        if (backlog.length === 0) {
          // librdkafka copies the value (RK_MSG_COPY), so one scratch buffer serves every record.
          const value = encode(recordToJson(record));
          if (send(value, key)) return;
          backlog.push({ value: Buffer.from(value), key });
        } else {
          backlog.push({ value: Buffer.from(recordToJson(record)), key });
        }
      },
      ready() {
        if (outstanding + backlog.length <= config.max_in_flight) return undefined;
        roomPromise ??= new Promise<void>((resolve) => {
          room = resolve;
        });
        return roomPromise;
      },
      async flush() {
        // Nothing written since the last flush (e.g. a dead-letter sink): no threadpool round trip.
        if (outstanding === 0 && backlog.length === 0) {
          if (failure) throw failure;
          return;
        }
        while (backlog.length > 0) {
          retryBacklog();
          if (backlog.length > 0) await promisify((cb) => producer.flush(1_000, cb)).catch(() => undefined);
        }
        await promisify((cb) => producer.flush(60_000, cb));
        // The last delivery reports may still be queued for this thread after flush returns.
        if (outstanding > 0) await new Promise<void>((resolve) => (drained = resolve));
        drained = undefined;
        if (failure) throw failure;
      },
      health: () => healthy,
      async close() {
        clearInterval(backlogTimer);
        await promisify((cb) => producer.flush(30_000, cb)).catch(() => undefined);
        await new Promise<void>((resolve) => producer.disconnect(10_000, () => resolve()));
        stopTokens();
        if (failure) throw failure;
      },
    };
  },
});

let scratch = Buffer.allocUnsafe(64 * 1024);

/** `text` as UTF-8 in the shared scratch buffer: valid until the next call. */
function encode(text: string): Buffer {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (text.length * 3 > scratch.length) scratch = Buffer.allocUnsafe(Math.max(text.length * 3, scratch.length * 2));
  const bytes = scratch.write(text, 0, 'utf8');
  return scratch.subarray(0, bytes);
}


/**
 * What the Kafka source and sink share: connection and security fields (one schema, so both read
 * alike), their translation to librdkafka properties, and loading node-rdkafka lazily (a pipeline
 * without Kafka never loads the native addon).
 */
import { inputFileProblem, inputHandedOver, isSecret, PluginConfigError, redactSecretText, TributaryError, type JsonSchema, type OutlineEntry, type PipelineOutline, type SourceHealth } from 'tributary';
import { accessSync, constants as fsConstants } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as RdKafka from 'node-rdkafka';

export type Guarantee = 'at-least-once' | 'exactly-once';

export interface SecurityConfig {
  protocol?: 'plaintext' | 'ssl' | 'sasl_plaintext' | 'sasl_ssl';
  sasl?: {
    mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'OAUTHBEARER';
    username?: string;
    password?: string;
    oauthbearer?: { token_endpoint_url: string; client_id: string; client_secret: string; scope?: string; extensions?: string };
  };
  tls?: {
    ca_location?: string;
    ca_pem?: string;
    certificate_location?: string;
    certificate_pem?: string;
    key_location?: string;
    key_pem?: string;
    key_password?: string;
    verify_hostname?: boolean;
  };
}

export interface ConnectionConfig {
  brokers: string | string[];
  client_id?: string;
  security?: SecurityConfig;
  /** Raw librdkafka properties, passed through as they are. */
  options?: Record<string, string | number | boolean>;
}

/** Schema fields every Kafka plugin has. */
export const connectionProperties = {
  brokers: {
    description: 'Bootstrap servers (`host:port`): a comma-separated string or a list. Usually `${KAFKA_BROKERS}`.',
    anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }],
    examples: ['${KAFKA_BROKERS}', ['kafka-1:9092', 'kafka-2:9092']],
  },
  client_id: { type: 'string', minLength: 1, description: 'Client id the brokers see in their logs and quotas. Default: tributary-<pipeline>-<label>.' },
  security: {
    type: 'object',
    additionalProperties: false,
    description:
      'TLS and SASL. Put secrets in the environment and write `"${VAR}"` here, quoted: they are never logged. Unquoted, a value YAML reads as ' +
      'another type (`123456`, `true`) or an empty one is no string, a config error that cannot show the secret.',
    properties: {
      protocol: {
        enum: ['plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl'],
        description: 'librdkafka `security.protocol`. Default: plaintext, or sasl_ssl when `sasl` is given (a SASL listener without TLS takes sasl_plaintext).',
      },
      sasl: {
        type: 'object',
        additionalProperties: false,
        required: ['mechanism'],
        description: 'SASL authentication.',
        properties: {
          mechanism: { enum: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'], description: 'SASL mechanism.' },
          username: { type: 'string', description: 'User name (PLAIN, SCRAM).' },
          password: { type: 'string', description: 'Password (PLAIN, SCRAM); write `"${VAR}"`, quoted.' },
          oauthbearer: {
            type: 'object',
            additionalProperties: false,
            required: ['token_endpoint_url', 'client_id', 'client_secret'],
            description:
              'OAUTHBEARER with OIDC client credentials (client_secret_basic): a librdkafka built with OIDC fetches and refreshes the token itself; ' +
              'node-rdkafka\'s bundled one has none, so Tributary fetches it before connecting and refreshes it at 80% of its lifetime (`extensions` are then not sent).',
            properties: {
              token_endpoint_url: { type: 'string', minLength: 1, description: 'OAuth/OIDC token endpoint.' },
              client_id: { type: 'string', minLength: 1, description: 'OAuth client id.' },
              client_secret: { type: 'string', minLength: 1, description: 'OAuth client secret; write `"${VAR}"`, quoted.' },
              scope: { type: 'string', description: 'Requested scope.' },
              extensions: { type: 'string', description: 'SASL extensions, `key=value,key=value`.' },
            },
          },
        },
      },
      tls: {
        type: 'object',
        additionalProperties: false,
        description: 'TLS files or PEM text (the `*_pem` fields take `"${VAR}"` values, quoted).',
        properties: {
          ca_location: { type: 'string', description: "CA certificate file. A relative path is relative to the pipeline file's folder; one that is not a file this process may read is a config error as the pipeline starts." },
          ca_pem: { type: 'string', description: 'CA certificate, PEM text.' },
          certificate_location: { type: 'string', description: "Client certificate file (mutual TLS). A relative path is relative to the pipeline file's folder; one that is not a file this process may read is a config error as the pipeline starts." },
          certificate_pem: { type: 'string', description: 'Client certificate, PEM text.' },
          key_location: { type: 'string', description: "Client private key file. A relative path is relative to the pipeline file's folder; one that is not a file this process may read is a config error as the pipeline starts." },
          key_pem: { type: 'string', description: 'Client private key, PEM text; write `"${VAR}"`, quoted.' },
          key_password: { type: 'string', description: "Password of the client's private key; write `\"${VAR}\"`, quoted." },
          verify_hostname: { type: 'boolean', default: true, description: "Check the broker certificate's host name." },
        },
      },
    },
  },
  options: {
    type: 'object',
    description:
      'Raw librdkafka properties (e.g. `{"socket.keepalive.enable": true}`), applied last. See librdkafka CONFIGURATION.md. ' +
      'A name librdkafka does not know (`sasl.usernme`) or a value it refuses is a config error at the property (`validate` says so).',
    additionalProperties: { type: ['string', 'number', 'boolean'] },
  },
} satisfies Record<string, JsonSchema>;

export const guaranteeProperty: JsonSchema = {
  enum: ['at-least-once', 'exactly-once'],
  default: 'at-least-once',
  description:
    '`at-least-once`: offsets are committed after every sink flushed (a crash replays, outputs may repeat). ' +
    '`exactly-once`: a Kafka source and a Kafka sink of one pipeline write outputs and commit consumed offsets in one ' +
    'transaction; read the outputs with isolation.level=read_committed. Both ends must say so: a pipeline with an ' +
    'exactly-once sink and no exactly-once kafka source (which commits the transactions), or with an at-least-once ' +
    'kafka source beside it, is a config error (`tributary validate` says so).',
};

/**
 * Why a pipeline's exactly-once ends do not meet: said by `validate` (the plugins' checkPipeline) and,
 * for instances made outside a PipelineRunner (which runs checkPipeline too), by the factories and the sink's open() alike.
 */
export const exactlyOnceMismatch = {
  sinkWithoutSource:
    'guarantee: exactly-once needs a `kafka` source with guarantee: exactly-once in the same pipeline (its offsets commit the transactions); without one nothing written would ever be committed',
  sourceWithoutSink: 'guarantee: exactly-once needs a `kafka` sink with guarantee: exactly-once in the same pipeline (it writes the transaction)',
  sourceNotExactlyOnce: 'a `kafka` sink of this pipeline is exactly-once: give this source guarantee: exactly-once too (it commits the transactions)',
} as const;

function exactlyOnceKafka(entry: OutlineEntry | undefined): boolean {
  return entry?.type === 'kafka' && entry.config.guarantee === 'exactly-once';
}

/** Whether a sink of the pipeline (the dead-letter one included) is an exactly-once `kafka` sink. */
export function hasExactlyOnceKafkaSink(pipeline: PipelineOutline): boolean {
  return pipeline.sinks.some(exactlyOnceKafka) || exactlyOnceKafka(pipeline.deadLetter);
}

/**
 * The exactly-once `kafka` sink whose settings configure the pipeline's one transactional producer
 * (transactions.ts): the first such sink created, the dead-letter one (the runtime creates it first),
 * else the first in `sinks`. `where` names it as a config path does.
 */
export function transactionalProducerOwner(pipeline: PipelineOutline): { where: string; config: Readonly<Record<string, unknown>> } | undefined {
  if (exactlyOnceKafka(pipeline.deadLetter)) return { where: 'dead_letter', config: pipeline.deadLetter!.config };
  const index = pipeline.sinks.findIndex(exactlyOnceKafka);
  return index < 0 ? undefined : { where: `sinks[${index}]`, config: pipeline.sinks[index]!.config };
}

/** Whether a source of the pipeline is an exactly-once `kafka` source. */
export function hasExactlyOnceKafkaSource(pipeline: PipelineOutline): boolean {
  return pipeline.sources.some(exactlyOnceKafka);
}

/** The bootstrap servers, comma-separated (librdkafka's `metadata.broker.list`). */
export function brokerList(config: Pick<ConnectionConfig, 'brokers'>): string {
  return Array.isArray(config.brokers) ? config.brokers.join(',') : config.brokers;
}

/**
 * librdkafka properties for the connection and security fields. `features` is node-rdkafka's
 * `features`: a build without `oidc` (the bundled one has no libcurl) gets OAUTHBEARER tokens from
 * {@link provideOauthToken} instead of fetching them itself.
 */
export function librdkafkaConnection(config: ConnectionConfig, defaultClientId: string, features: readonly string[] = ['oidc']): Record<string, string | number | boolean> {
  const brokers = brokerList(config);
  const props: Record<string, string | number | boolean> = {
    'metadata.broker.list': brokers,
    'client.id': config.client_id ?? defaultClientId,
    // The address family is left to the resolver, but loopback names resolve fast either way.
    'broker.address.family': 'v4',
  };
  const security = config.security;
  if (security) {
    const sasl = security.sasl;
    props['security.protocol'] = security.protocol ?? (sasl ? 'sasl_ssl' : 'plaintext');
    if (sasl) {
      props['sasl.mechanisms'] = sasl.mechanism;
      if (sasl.username !== undefined) props['sasl.username'] = sasl.username;
      if (sasl.password !== undefined) props['sasl.password'] = sasl.password;
      if (sasl.oauthbearer && features.includes('oidc')) {
        props['sasl.oauthbearer.method'] = 'oidc';
        props['sasl.oauthbearer.token.endpoint.url'] = sasl.oauthbearer.token_endpoint_url;
        props['sasl.oauthbearer.client.id'] = sasl.oauthbearer.client_id;
        props['sasl.oauthbearer.client.secret'] = sasl.oauthbearer.client_secret;
        if (sasl.oauthbearer.scope) props['sasl.oauthbearer.scope'] = sasl.oauthbearer.scope;
        if (sasl.oauthbearer.extensions) props['sasl.oauthbearer.extensions'] = sasl.oauthbearer.extensions;
      }
    }
    const tls = security.tls;
    if (tls) {
      if (tls.ca_location) props['ssl.ca.location'] = tls.ca_location;
      if (tls.ca_pem) props['ssl.ca.pem'] = tls.ca_pem;
      if (tls.certificate_location) props['ssl.certificate.location'] = tls.certificate_location;
      if (tls.certificate_pem) props['ssl.certificate.pem'] = tls.certificate_pem;
      if (tls.key_location) props['ssl.key.location'] = tls.key_location;
      if (tls.key_pem) props['ssl.key.pem'] = tls.key_pem;
      if (tls.key_password) props['ssl.key.password'] = tls.key_password;
      props['ssl.endpoint.identification.algorithm'] = tls.verify_hostname === false ? 'none' : 'https';
    }
  }
  return props;
}

/** The `security.tls` fields that name files. */
const tlsFileFields = ['ca_location', 'certificate_location', 'key_location'] as const;

/**
 * `config` with its TLS files (`security.tls.*_location`) resolved against the pipeline file's folder, as
 * a `file` source's path is, each checked to be a file this process may read: one that is not is a
 * config error at its field (exit 2). librdkafka said only `ssl.ca.location failed: error:05880002:x509
 * certificate routines::system lib` when it created the client, a sink's open failed with that, and the
 * daemon restarted the pipeline without end for a path a person must mend.
 */
export function withTlsFiles<Config extends ConnectionConfig>(config: Config, baseDir: string): Config {
  const tls = config.security?.tls;
  if (!tls) return config;
  const resolved: NonNullable<SecurityConfig['tls']> = { ...tls };
  for (const field of tlsFileFields) {
    const given = tls[field];
    if (given === undefined) continue;
    const path = resolve(baseDir, given);
    const relative = isAbsolute(given) ? '' : ` (${given}, relative to the pipeline file's folder)`;
    const problem = inputFileProblem(path);
    if (problem !== undefined) throw new PluginConfigError(`security.tls.${field}`, `${problem}${relative}`);
    try {
      accessSync(path, fsConstants.R_OK);
    } catch (error) {
      throw new PluginConfigError(`security.tls.${field}`, `${path}${relative} cannot be read by this process: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    resolved[field] = path;
  }
  return { ...config, security: { ...config.security, tls: resolved } };
}

/**
 * A copy of librdkafka properties safe to log: secrets replaced by `[redacted]`, by the runtime's one
 * rule (isSecret), which `validate --print` follows too: `sasl.username`, passwords, secrets, private keys.
 */
export function redactProperties(props: Record<string, unknown>): Record<string, unknown> {
  const safe: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(props)) safe[key] = isSecret(key, value) ? '[redacted]' : value;
  return safe;
}

/**
 * A failure to reach the brokers as a sink starts: a runtime failure (TRIB_ERR_SINK, exit 1, a
 * supervisor restarts it), not a config error, which is what anything else a factory throws is taken for.
 */
export function brokersUnreachable(error: unknown, doing: string, failures: ConnectionFailures): never {
  throw new TributaryError('TRIB_ERR_SINK', `kafka sink: cannot ${doing}: ${failures.explain(asError(error).message)}`, { cause: error });
}

/**
 * Whether a metadata answer lists `topic` with its partitions. node-rdkafka drops a topic's error code:
 * a missing topic, or one this client may not describe, is listed with no partitions.
 */
export function listsTopic(metadata: RdKafka.Metadata, topic: string): boolean {
  return metadata.topics.some((listed) => listed.name === topic && listed.partitions.length > 0);
}

/**
 * Why a checkpoint's offset of a partition names records no one can read again, where the group holds no
 * committed offset of it: its topic (or that partition) is gone from the brokers' `metadata` (deleted: the
 * brokers drop the group's offsets of a deleted topic), or its `log` ends below the offset (deleted and
 * created again: not the log the checkpoint read). Undefined where the log holds the offset (the group's
 * offsets expired or were deleted by hand) or its end is not known.
 */
export function checkpointLogGone(tp: RdKafka.TopicPartitionOffset, metadata: RdKafka.Metadata, log: RdKafka.WatermarkOffsets | undefined): 'deleted' | 'recreated' | undefined {
  const topic = metadata.topics.find((listed) => listed.name === tp.topic);
  if (!topic || !topic.partitions.some((partition) => partition.id === tp.partition)) return 'deleted';
  return log !== undefined && log.highOffset >= 0 && log.highOffset < tp.offset ? 'recreated' : undefined;
}

/**
 * Whether the brokers list `topic` with its partitions, asked again for up to `waitMs` (brokers that
 * create topics on first use create it for this very request, and list it a moment later); undefined
 * when no answer comes (judged by the deliveries then, as before), or when `signal` is aborted first.
 */
export async function topicListed(client: Pick<RdKafka.Client<string>, 'getMetadata'>, topic: string, options: { waitMs?: number; signal?: AbortSignal | undefined } = {}): Promise<boolean | undefined> {
  const deadline = Date.now() + (options.waitMs ?? 3_000);
  const signal = options.signal;
  for (;;) {
    let metadata: RdKafka.Metadata;
    try {
      metadata = await promisify<RdKafka.Metadata>((cb) => client.getMetadata({ topic, timeout: 5_000 }, cb));
    } catch {
      return undefined;
    }
    if (listsTopic(metadata, topic)) return true;
    if (signal?.aborted) return undefined;
    if (Date.now() >= deadline) return false;
    const waited = await sleep(250, true, signal ? { signal } : {}).catch(() => false);
    if (!waited) return undefined;
  }
}

/**
 * A failed delivery, named by its topic (librdkafka's message does not name it). A missing topic is the
 * usual first mistake against a new cluster, or a topic deleted under a running pipeline: say what to do.
 * So is an ACL that lets the client write some topics (the dead-letter one) and not this one.
 * So is a batch the brokers refuse for its size: the topic's `max.message.bytes` bounds a whole record
 * batch, and librdkafka neither learns it nor splits a refused batch, so every record of the batch fails
 * (small ones too) and a restart meets it again until the sink's batches fit.
 */
export function deliveryFailure(topic: string | undefined, error: RdKafka.LibrdKafkaError | Error): Error {
  const hint = isUnknownTopicOrPartition(error)
    ? ' (the topic does not exist, and the brokers do not create topics on first use: create it, or enable auto.create.topics.enable on them)'
    : isErrorOf(error, [ErrorCode.MSG_SIZE_TOO_LARGE])
      ? ` (the brokers refused a batch of records larger than the topic's max.message.bytes, which bounds a whole batch: set the sink's options 'batch.size' and 'message.max.bytes' below the topic's limit, or raise it)`
      : isErrorOf(error, [ErrorCode.TOPIC_AUTHORIZATION_FAILED])
        ? ` (the brokers deny this client Write on the topic: an ACL must allow its principal, the security.sasl user or the certificate's subject, Write on topic '${topic ?? '?'}')`
        : '';
  return new Error(`delivery to topic '${topic ?? '?'}' failed: ${asError(error).message}${hint}`, { cause: error });
}

/**
 * Whether a failed delivery is its topic's own doing (the topic is not there, a batch too large for
 * it, no right to write it), not the brokers' or the producer's: then the sink writing that topic failed.
 */
export function topicsOwnFault(error: unknown): boolean {
  const failure = error as { message?: string; code?: number } | null | undefined;
  return isUnknownTopicOrPartition(failure) || isErrorOf(failure, [ErrorCode.MSG_SIZE_TOO_LARGE, ErrorCode.TOPIC_AUTHORIZATION_FAILED]);
}

/** Whether a client error is one of `codes`, as an operation's error (the code) or an `event.error` (the text). */
function isErrorOf(error: { message?: string; code?: number } | null | undefined, codes: readonly number[]): boolean {
  if (!error) return false;
  if (error.code !== undefined && codes.includes(error.code)) return true;
  const message = (error.message ?? '').toLowerCase();
  return codes.some((code) => {
    const text = errorTexts.get(code);
    return text !== undefined && (message === text || message.endsWith(`: ${text}`));
  });
}

/**
 * Whether a client error says the brokers are unreachable, for the source's and the sinks' /readyz
 * alike: ALL_BROKERS_DOWN in either form, or TRANSPORT as a code. (An `event.error` "broker transport
 * failure" is one broker's connection failing; when it was the last, "all broker connections are
 * down" follows.)
 */
export function isBrokersDown(error: { message?: string; code?: number } | null | undefined): boolean {
  return isErrorOf(error, [ErrorCode.ALL_BROKERS_DOWN]) || error?.code === ErrorCode.TRANSPORT;
}

/**
 * Whether a client error says a topic or partition does not exist (deleted, or never created): the
 * metadata answer says which subscribed topic is missing. A consumer gets UNKNOWN_TOPIC_OR_PART from
 * consume() for a subscribed topic that is missing, and "unknown topic or partition" and "unknown
 * partition" event.errors for the partitions of a topic deleted while it read them.
 */
export function isUnknownTopicOrPartition(error: { message?: string; code?: number } | null | undefined): boolean {
  return isErrorOf(error, [ErrorCode.UNKNOWN_TOPIC_OR_PART, ErrorCode.UNKNOWN_TOPIC, ErrorCode.UNKNOWN_PARTITION]);
}

/**
 * Whether a client error says the brokers refuse this client its consumer group (GROUP_AUTHORIZATION_FAILED:
 * no Read ACL on the group), as a consume() error ("FindCoordinator response error: Group authorization
 * failed.") or an event.error.
 */
export function isGroupDenied(error: { message?: string; code?: number } | null | undefined): boolean {
  return isErrorOf(error, [ErrorCode.GROUP_AUTHORIZATION_FAILED]);
}

/** Whether a client error is librdkafka's local TIMED_OUT (an operation or a wait that ran out of time). */
export function isTimedOut(error: { message?: string; code?: number } | null | undefined): boolean {
  return isErrorOf(error, [ErrorCode.TIMED_OUT]);
}

/**
 * The partition a consumer error is about, as the patched binding gives it (patches/README.md): a fetch
 * denied by an ACL, a record batch librdkafka cannot read. Undefined for an error about no partition.
 */
export function partitionOfError(error: unknown): { topic: string; partition: number; offset: number } | undefined {
  const { topic, partition, offset } = (error ?? {}) as { topic?: unknown; partition?: unknown; offset?: unknown };
  if (typeof topic !== 'string' || topic === '' || typeof partition !== 'number' || partition < 0) return undefined;
  return { topic, partition, offset: typeof offset === 'number' ? offset : -1 };
}

/**
 * The fatal error librdkafka raised on a client (rd_kafka_fatal_error, in its own words: a fenced
 * static member, a fenced or unauthorised producer), or undefined. After one the client can do nothing
 * more: a consumer reads nothing, a producer's writes fail. node-rdkafka tells nobody (its
 * `event.error` gives the underlying code's text, not that it is fatal): the patched binding's
 * `fatalError()` asks librdkafka; a binding without it has none to report.
 */
export function fatalErrorOf(client: object): (Error & { code?: number }) | undefined {
  const ask = (client as { fatalError?: () => unknown }).fatalError;
  if (typeof ask !== 'function') return undefined;
  const fatal = ask.call(client);
  return fatal ? asError(fatal) : undefined;
}

/**
 * What to do about a fatal error, where librdkafka's words do not say it: two instances that share
 * an identity meant to be their own fence each other out.
 */
export function fatalHint(fatal: { code?: number }, identity: { groupInstanceId?: unknown; transactionalId?: unknown }): string {
  if (fatal.code === ErrorCode.FENCED_INSTANCE_ID && identity.groupInstanceId !== undefined) {
    return `: another consumer joined the group with this source's group.instance.id '${String(identity.groupInstanceId)}'; give each instance its own`;
  }
  if ((fatal.code === ErrorCode.FENCED || fatal.code === ErrorCode.PRODUCER_FENCED) && identity.transactionalId !== undefined) {
    return `: another producer started with transactional_id '${String(identity.transactionalId)}'; give each instance its own`;
  }
  return '';
}

/** A line of librdkafka's log as node-rdkafka hands it over (`event.log`): syslog severity, facility, text. */
interface LibrdkafkaLog {
  severity?: number;
  fac?: string;
  message?: string;
}

/** A failure logged longer ago than this is not taken for the cause of a new error (librdkafka's reconnect backoff is at most 10 s). */
const failureFreshMs = 60_000;

/**
 * How long the broker connection failures at an outage's start are gathered into one warning: librdkafka
 * reports each connection's at once (every broker's, the bootstrap ones', a coordinator's: about 8 for
 * one transactional producer of a 3-broker cluster), as many warnings that said one thing.
 */
export const connectionBurstMs = 1_000;

/**
 * How long after the brokers answered again an outage's own errors (a connection failing, every broker
 * down) are still its, not a new outage's: librdkafka delivers an error queued in the outage after the
 * answer that ended it, and a broker that restarts refuses a connection or two as it comes up (seen:
 * a second warning, seconds after the first outage's, for one broker stopped once).
 */
export const outageSettleMs = 10_000;

/**
 * The most distinct error texts one client remembers as warned of (ConnectionFailures.logError) and
 * gathers into one outage's warning: texts carry varying parts (offsets, broker addresses, times), so
 * an outage of days grew the set without bound. Past it, a new text is logged at debug level and counted.
 */
export const maxWarnedErrors = 50;

/** Whether a client error says one broker connection failed (TRANSPORT: `broker transport failure`), as an operation's error or an `event.error`. */
function isTransportFailure(error: { message?: string; code?: number }): boolean {
  return isErrorOf(error, [ErrorCode.TRANSPORT]);
}

/** Whether a client error says no broker is reachable (ALL_BROKERS_DOWN: `all broker connections are down`). */
function isEveryBrokerDown(error: { message?: string; code?: number }): boolean {
  return isErrorOf(error, [ErrorCode.ALL_BROKERS_DOWN]);
}

/**
 * The broker a librdkafka FAIL line is about (`sasl_ssl://host:port/2: ...`, `host:port/bootstrap: ...`,
 * or a coordinator's, `GroupCoordinator: host:port: ...`): its address.
 */
function failedBroker(text: string): string | undefined {
  const match = /^(?:(?:[a-z_]+:\/\/)?([^\s/]+:\d+)\/\S*|[A-Za-z]+Coordinator: (?:[a-z_]+:\/\/)?([^\s/]+:\d+)): /.exec(text);
  return match?.[1] ?? match?.[2];
}

/** Whether a FAIL line shows its broker past the first request (ApiVersion answered): it failed authenticating or once up. */
function answeredFirstRequest(text: string): boolean {
  return /\bin state (?:UP|AUTH_[A-Z_]+)\b/.test(text);
}

/** The fix for brokers never reached since the start whose host names do not resolve (ConnectionFailures.neverReached): surely a wrong address. */
const neverReachedRemedy = 'check `brokers`: host, port, and that this machine can reach them';

/**
 * The fixes for brokers that refused every connection since the start: nothing listens there yet, which
 * a wrong address and brokers not up yet (the daemon started before Kafka, as in a compose file) look alike.
 */
const notUpYetRemedy = 'check `brokers` (host, port, and that this machine can reach them), or start the brokers: the clients keep trying, and connect once they are up';

/**
 * How long after a first refused or unresolved broker the wrong-address warning waits for the other
 * configured brokers' first tries (librdkafka tries bootstrap brokers one after another, with backoff).
 */
export const neverReachedWaitMs = 3_000;

/** Whether a FAIL line says a broker refused the connection (ECONNREFUSED: nothing listens at that host and port). */
function isRefused(text: string): boolean {
  return /: Connection refused\b/.test(text);
}

/** Whether a FAIL line says a broker's host name does not resolve (ENOTFOUND). */
function isUnresolved(text: string): boolean {
  return /: Failed to resolve /.test(text);
}

/** Why a FAIL line says a broker was not reached at all, as the warning names it: a refused connection or a host name that does not resolve; undefined for any other failure. */
function neverReachedCause(text: string): string | undefined {
  if (isRefused(text)) return 'ECONNREFUSED: nothing listens at that host and port';
  if (isUnresolved(text)) return 'DNS: the host name does not resolve';
  return undefined;
}

/**
 * How long a broker that refused connections after one succeeded stays refusing without a new refusal
 * (ConnectionFailures.refused): librdkafka retries a broker it needs at least every reconnect.backoff.max.ms
 * (10 s by default), so a quiet minute means it answers again, or is needed no more.
 */
export const refusalEpisodeGapMs = 60_000;

/**
 * Whether a FAIL line's broker is one the brokers' metadata named (librdkafka names it `host:port/<id>`, or
 * a coordinator), not one of `brokers` (`host:port/bootstrap`): the client reached a bootstrap broker before.
 */
function isAdvertisedBroker(text: string): boolean {
  return !/^(?:[a-z_]+:\/\/)?[^\s/]+:\d+\/bootstrap: /.test(text);
}

/**
 * The TLS advice for an address the brokers advertise (metadata) that never answered: the client reached a
 * bootstrap broker without TLS, and the advertised listener takes TLS, so setting security.protocol alone
 * would lose the bootstrap listener.
 */
function advertisedTlsRemedy(cause: string): string {
  return (
    `${cause}likely a listener that takes TLS, one the brokers advertise (advertised.listeners) where a bootstrap address of \`brokers\` answered without TLS: ` +
    'name the TLS listener in `brokers` and set security.protocol to ssl or sasl_ssl, or have the brokers advertise their listener without TLS'
  );
}

/** A clock reading as /readyz's reasons and the warnings name a moment: ISO 8601, UTC. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * librdkafka's connection failures that a change of the config mends, each with the change. An outage
 * (a refused connection, a timeout) is none: the clients wait it out and say not ready.
 */
const connectionRemedies: readonly { cause: RegExp; remedy: string; onlyBeforeAnswered?: true; remedyAdvertised?: string }[] = [
  {
    cause: /connecting to a PLAINTEXT broker listener\?/,
    remedy: 'the listener takes no TLS: set security.protocol to sasl_plaintext (or plaintext); where `sasl` is given without it, it is sasl_ssl',
  },
  {
    cause: /connecting to a SSL listener\?/,
    remedy: 'likely a listener that takes TLS: set security.protocol to ssl or sasl_ssl',
    onlyBeforeAnswered: true,
    remedyAdvertised: advertisedTlsRemedy(''),
  },
  {
    // A listener that takes TLS closes a client that speaks without it at its first request (ApiVersion):
    // librdkafka asks "connecting to a SSL listener?" only for a plaintext client that does not send ApiVersion.
    // A broker killed or restarting while the client connects closes it there too (librdkafka's question above
    // included): only an address never seen answering can be a listener that takes TLS (ConnectionFailures.remedyOf).
    cause: /^(?:(?:sasl_)?plaintext:\/\/)?[^\s/]+:\d+\/\S*: Disconnected\b.*in state APIVERSION_QUERY/,
    remedy: 'the brokers closed the connection at its first request and have answered none since the start, likely a listener that takes TLS: set security.protocol to ssl or sasl_ssl (or `brokers` names a port that is no Kafka listener)',
    onlyBeforeAnswered: true,
    remedyAdvertised: advertisedTlsRemedy('the broker closed the connection at its first request and has answered none at this address since the start, '),
  },
  {
    cause: /Unsupported SASL mechanism/,
    remedy: 'the brokers do not enable this SASL mechanism: set security.sasl.mechanism to one they list (its credentials may differ per mechanism: SCRAM users are made per mechanism)',
  },
  { cause: /SASL authentication error/, remedy: 'the brokers refused the credentials: check security.sasl (mechanism, username, password, and the variables they come from)' },
  {
    cause: /certificate verify failed/,
    remedy: "no CA this client trusts signed the brokers' certificate: set security.tls.ca_location (or ca_pem) to the CA that did",
  },
];

/** The logger a Kafka client's connection failures are said to (PluginContext.logger, or a test's). */
export interface ConnectionLogger {
  debug(fields: object, message: string): void;
  info?(fields: object, message: string): void;
  warn?(fields: object, message: string): void;
}

/**
 * Why a client's connections to the brokers fail, which librdkafka says only in its log (facility
 * FAIL): a TLS handshake or certificate, SASL authentication, a refused connection. Its errors do not
 * carry it: `connect` fails with "broker transport failure" and `event.error` says every broker is
 * down, whatever the cause, and a wrong password looked like a network fault. Each failure is logged at
 * debug level; the latest explains the errors that follow it, with the change that mends it where the
 * config is at fault (connectionRemedies), which is also a warning, once per remedy until a connection
 * succeeds: a sink's start otherwise said nothing above debug level for the 30 s it waits.
 */
export class ConnectionFailures {
  private last: { text: string; at: number; remedy: string | undefined } | undefined;
  /** The remedies warned of since the last connection that succeeded. */
  private readonly warned = new Set<string>();
  /** The brokers (addresses) whose connections failed since the last connection that succeeded. */
  private readonly failedBrokers = new Set<string>();
  /** The client's errors being gathered into one warning (see {@link logError}): how many of each text, at most maxWarnedErrors texts; `further`: how many errors of other texts. */
  private burst: { errors: Map<string, number>; further: number; fields: object } | undefined;
  /**
   * The error texts warned of since the last connection that succeeded or their condition cleared
   * ({@link settled}), each with what it was logged as, at most maxWarnedErrors: repeats are logged at debug level.
   */
  private readonly warnedErrors = new Map<string, string>();
  /** Errors of new texts logged at debug level only since warnedErrors was full (see {@link logError}). */
  private suppressedErrors = 0;
  /** Every broker's being down was warned of since the last connection that succeeded: the outage's failed reconnects are no news. */
  private outageWarned = false;
  /** When a connection last succeeded after an outage (clear()): the outage's warned errors are forgotten outageSettleMs later. */
  private recoveredAt: number | undefined;
  /** A connection succeeded since the client was made (clear()): a refused connection is an outage from then on, not a wrong address. */
  private connectedOnce = false;
  /**
   * The brokers (addresses) a FAIL line showed past their first request (its ApiVersion answered: in state
   * UP or authenticating) since the client was made: their listener speaks this client's protocol.
   */
  private readonly answered = new Set<string>();
  /** Before any connection succeeded: each broker refused or not resolved, with its latest failure, for the one warning of a wrong `brokers` (see {@link neverReached}). */
  private readonly unreached = new Map<string, string>();
  /** The wrong-`brokers` warning is given, or waits for the rest of the brokers' first tries. */
  private unreachedWarning: 'waiting' | 'warned' | undefined;
  /**
   * Since a connection succeeded: each broker that refuses connections (so it answered before), since
   * when, its latest refusal, and whether it was warned of (one warning per such episode, see {@link refused}).
   */
  private readonly refusing = new Map<string, { since: number; last: number; text: string; warned: boolean }>();
  /** The warning of brokers refusing waits connectionBurstMs for the others' refusals, or for the outage's warning that says it instead. */
  private refusalWarningDue = false;

  constructor(
    client: { on(event: 'event.log', listener: (log: LibrdkafkaLog) => void): unknown },
    private readonly logger?: ConnectionLogger,
    /** What the client does while no broker is reachable (`records wait in the producer`), said in the outage's warning. */
    private readonly whileUnreachable?: string,
    /** The configured bootstrap brokers (brokerList): the wrong-address warning waits until each was tried once. */
    private readonly brokers?: string,
  ) {
    client.on('event.log', (log) => {
      if (log.fac !== 'FAIL' || typeof log.message !== 'string') return;
      // "[thrd:sasl_ssl://host:port/bootstrap]: sasl_ssl://host:port/bootstrap: SASL authentication error: ..."
      const text = log.message.replace(/^\[thrd:[^\]]*\]: /, '');
      const broker = failedBroker(text);
      if (broker !== undefined && answeredFirstRequest(text)) this.answered.add(broker);
      const unreachable = this.connectedOnce ? undefined : neverReachedCause(text);
      const remedy = unreachable !== undefined ? (isUnresolved(text) ? neverReachedRemedy : notUpYetRemedy) : this.remedyOf(text, broker);
      if (broker !== undefined) this.failedBrokers.add(broker);
      this.last = { text, at: Date.now(), remedy };
      logger?.debug({ err: text }, 'kafka broker connection failed');
      if (unreachable !== undefined) return this.neverReached(broker ?? '?', text);
      // A line naming no broker (a coordinator's by its node id: `GroupCoordinator/1: Connect to ipv4#...`) is one of a
      // named broker's connections, whose own lines say it: taken as a broker `?`, it was warned of as a second broker.
      if (this.connectedOnce && isRefused(text)) return broker === undefined ? undefined : this.refused(broker, text);
      if (remedy !== undefined && !this.warned.has(remedy)) {
        this.warned.add(remedy);
        logger?.warn?.({ err: text }, `kafka broker connection failed: ${remedy}`);
      }
    });
  }

  /**
   * The config change that mends a FAIL line (connectionRemedies), if any. A broker closing the connection at
   * the first request is likely a listener that takes TLS only where that address never answered this
   * client: one that did is a broker killed or restarting as the client connects (an outage, no config
   * fault). Judged per address, not per client: a client that connected to the bootstrap address (plaintext)
   * meets the address the brokers advertise, another listener, which may take TLS (was: no advice at all
   * once any connection succeeded).
   */
  private remedyOf(text: string, broker: string | undefined): string | undefined {
    const found = connectionRemedies.find(({ cause }) => cause.test(text));
    if (found?.onlyBeforeAnswered && broker !== undefined && this.answered.has(broker)) return undefined;
    return found?.remedyAdvertised !== undefined && isAdvertisedBroker(text) ? found.remedyAdvertised : found?.remedy;
  }

  /**
   * A broker refused the connection or its host did not resolve, and no connection ever succeeded:
   * most likely a wrong address, not an outage. One warning once every configured broker was tried
   * (or {@link neverReachedWaitMs} after the first failure, for brokers librdkafka tries later), naming
   * the brokers and their errors, with the fix; before, nothing was said above debug level for the
   * 30 s a sink's connect waits (10 s a source's), and /readyz said only that it was connecting.
   */
  private neverReached(broker: string, text: string): void {
    this.unreached.set(broker, text);
    if (this.unreachedWarning !== undefined) {
      if (this.unreachedWarning === 'waiting' && this.everyBrokerTried()) this.warnNeverReached();
      return;
    }
    this.unreachedWarning = 'waiting';
    if (this.everyBrokerTried()) return this.warnNeverReached();
    setTimeout(() => this.warnNeverReached(), neverReachedWaitMs).unref();
  }

  private everyBrokerTried(): boolean {
    if (this.brokers === undefined) return false;
    return this.brokers.split(',').every((given) => {
      const address = given.trim().replace(/^[a-z_]+:\/\//i, '');
      // librdkafka names a broker given without a port by its default one.
      return this.unreached.has(/:\d+$/.test(address) ? address : `${address}:9092`);
    });
  }

  /**
   * The one warning of brokers never reached since the start. A host name that does not resolve is a
   * wrong address; a refused connection at a host that resolves is a wrong address or brokers not up
   * yet (the daemon started before Kafka): before, both were called a wrong address.
   */
  private warnNeverReached(): void {
    if (this.unreachedWarning !== 'waiting' || this.connectedOnce) return;
    this.unreachedWarning = 'warned';
    const texts = [...this.unreached.values()];
    const causes = [...new Set(texts.map((text) => neverReachedCause(text)))].join(', ');
    const why = texts.some(isUnresolved) ? `a wrong address: ${neverReachedRemedy}` : `a wrong address, or the brokers not up yet: ${notUpYetRemedy}`;
    this.logger?.warn?.(
      { unreached: Object.fromEntries(this.unreached), err: texts.at(-1) },
      `kafka broker connection failed: no broker of \`brokers\` was reached since the start (${causes}), ${why}`,
    );
  }

  /**
   * A broker refused a connection after a connection succeeded: it answered before, so it was stopped,
   * restarted on another port, or a firewall came between. One warning per episode (a broker refusing
   * again after {@link refusalEpisodeGapMs} without a refusal is a new one), gathered over
   * {@link connectionBurstMs} with the other brokers' and said in the outage's warning where one is due
   * ({@link warnBurst}); /readyz says it too ({@link explain}). Before, it was the generic outage only.
   */
  private refused(broker: string, text: string): void {
    const now = Date.now();
    this.forgetRefusals(now);
    const episode = this.refusing.get(broker);
    if (episode !== undefined) {
      episode.last = now;
      episode.text = text;
      return;
    }
    this.refusing.set(broker, { since: now, last: now, text, warned: false });
    if (this.refusalWarningDue) return;
    this.refusalWarningDue = true;
    setTimeout(() => this.warnRefusals(), connectionBurstMs).unref();
  }

  /** Ends the refusal episodes of brokers that refused nothing for refusalEpisodeGapMs. */
  private forgetRefusals(now: number): void {
    for (const [broker, episode] of this.refusing) if (now - episode.last >= refusalEpisodeGapMs) this.refusing.delete(broker);
  }

  /** The refusing brokers' sentence (undefined when none refuses now), marking them warned of when `warning`. */
  private refusalNews(warning: boolean): { said: string; since: Record<string, string> } | undefined {
    this.forgetRefusals(Date.now());
    const episodes = [...this.refusing].filter(([, episode]) => !warning || !episode.warned);
    if (episodes.length === 0) return undefined;
    if (warning) for (const [, episode] of episodes) episode.warned = true;
    const since = Object.fromEntries(episodes.map(([broker, episode]) => [broker, isoTime(episode.since)]));
    const one = episodes.length === 1;
    const named = one ? `broker ${episodes[0]![0]} refuses connections since ${isoTime(episodes[0]![1].since)}` : `brokers ${episodes.map(([broker, episode]) => `${broker} (since ${isoTime(episode.since)})`).join(', ')} refuse connections`;
    return {
      said:
        `${named}, and ${one ? 'it was' : 'they were'} reachable before: stopped, restarted on another port, or a firewall in between; ` +
        `the daemon keeps its state and resumes when ${one ? 'it returns' : 'they return'}`,
      since,
    };
  }

  /** The one warning of brokers that began refusing, unless the outage's warning due says it. */
  private warnRefusals(): void {
    this.refusalWarningDue = false;
    if (this.burst) return;
    const news = this.refusalNews(true);
    if (news === undefined) return;
    (this.logger?.warn ?? this.logger?.debug)?.call(this.logger, { refusing: news.since, err: this.last?.text }, `kafka broker connection refused: ${news.said}`);
  }

  /** `message`, with the latest connection failure's cause after it when one was logged lately, and its remedy where it has one. */
  explain(message: string): string {
    const last = this.last;
    if (last === undefined || Date.now() - last.at > failureFreshMs) return message;
    return `${message} (${last.text})${last.remedy === undefined ? '' : `: ${last.remedy}`}`;
  }

  /**
   * An outage's /readyz detail: `message` explained ({@link explain}), then the brokers that refuse
   * connections though they answered before, since when, and what the daemon does meanwhile. Not for
   * a failure's or a stop's message, which the daemon's keeping on does not fit.
   */
  explainOutage(message: string): string {
    const refusals = this.refusalNews(false)?.said;
    return refusals === undefined ? this.explain(message) : `${this.explain(message)}; ${refusals}`;
  }

  /**
   * Logs a client's `event.error` that no other rule took (not fatal), as `what` (`kafka producer
   * error`), by one rule for every Kafka client. An outage's errors, a broker connection failing
   * (`broker transport failure`) and every broker being down (`all broker connections are down`), are
   * gathered with those that follow within {@link connectionBurstMs} (librdkafka reports each
   * connection's at an outage's start, and every broker down among them) into one warning that says
   * that no broker is reachable and what the client does meanwhile (`whileUnreachable`), how many
   * connections failed, to how many brokers, and each other error met meanwhile once; any other error
   * is warned of once. Until {@link outageSettleMs} after a connection succeeds again ({@link clear}),
   * or its condition clears ({@link settled}: a commit succeeds, the group assigns partitions), a repeat is logged at debug level, and once every broker's being down was warned of, so is a connection failing (the outage's
   * reconnects): /readyz says whether the brokers are reachable meanwhile. Before, every broker down
   * was a warning of its own beside the connection failures' one. At most {@link maxWarnedErrors}
   * distinct texts are remembered (and gathered into one warning): past them a new text is logged at
   * debug level and counted, with one warning at the first such, and the count said at clear().
   */
  logError(error: { message: string; code?: number }, what: string, fields: object = {}): void {
    const text = error.message;
    if (this.recoveredAt !== undefined && Date.now() - this.recoveredAt >= outageSettleMs) {
      this.recoveredAt = undefined;
      this.warnedErrors.clear();
      this.suppressedErrors = 0;
      this.outageWarned = false;
    }
    if (this.burst) {
      const count = this.burst.errors.get(text);
      if (count !== undefined || this.burst.errors.size < maxWarnedErrors) this.burst.errors.set(text, (count ?? 0) + 1);
      else this.burst.further++;
      return;
    }
    if (this.warnedErrors.has(text) || (this.outageWarned && isTransportFailure(error))) {
      this.logger?.debug({ ...fields, code: error.code, err: text }, what);
      return;
    }
    if (!isTransportFailure(error) && !isEveryBrokerDown(error)) {
      if (this.warnedErrors.size >= maxWarnedErrors) return this.suppressError(error, what, fields);
      this.warnedErrors.set(text, what);
      (this.logger?.warn ?? this.logger?.debug)?.call(this.logger, { ...fields, code: error.code, err: text }, what);
      return;
    }
    setTimeout(() => this.warnBurst(what), connectionBurstMs).unref();
    this.burst = { errors: new Map([[text, 1]]), further: 0, fields };
  }

  /**
   * A new error text once maxWarnedErrors were warned of: logged at debug level and counted, and the first
   * such is a warning that says so; the count is said once a connection succeeds again (clear()).
   */
  private suppressError(error: { message: string; code?: number }, what: string, fields: object): void {
    const entry = { ...fields, code: error.code, err: error.message };
    if (this.suppressedErrors++ === 0) {
      (this.logger?.warn ?? this.logger?.debug)?.call(
        this.logger,
        entry,
        `${what}; ${maxWarnedErrors} different errors were warned of since a connection last succeeded: until one does, further new ones are logged at debug level only, and counted`,
      );
    } else {
      this.logger?.debug(entry, what);
    }
  }

  /** The one warning of the connection failures gathered (see {@link logError}). */
  private warnBurst(what: string): void {
    const burst = this.burst;
    if (!burst) return;
    this.burst = undefined;
    const errors = Object.fromEntries(burst.errors);
    for (const text of burst.errors.keys()) if (this.warnedErrors.size < maxWarnedErrors) this.warnedErrors.set(text, what);
    let connections = 0;
    let everyBrokerDown: string | undefined;
    const others: string[] = [];
    for (const [text, count] of burst.errors) {
      if (isEveryBrokerDown({ message: text })) everyBrokerDown ??= text;
      else if (isTransportFailure({ message: text })) connections += count;
      else others.push(text);
    }
    if (everyBrokerDown !== undefined) this.outageWarned = true;
    const brokers = this.failedBrokers.size;
    const said = [
      ...(everyBrokerDown === undefined ? [] : [`no broker is reachable (${everyBrokerDown})${this.whileUnreachable === undefined ? '' : `: ${this.whileUnreachable}`}`]),
      ...(connections === 0 ? [] : [`${connections} broker connection${connections === 1 ? '' : 's'} failed (broker transport failure)` + (brokers > 0 ? `, to ${brokers} broker${brokers === 1 ? '' : 's'}` : '')]),
    ];
    const refusals = this.refusalNews(true);
    if (refusals !== undefined) said.push(refusals.said);
    const message =
      `${what}: ${said.join('; ')}` +
      (others.length > 0 ? `; also ${others.join('; ')}` : '') +
      (burst.further > 0 ? `; and ${burst.further} more error${burst.further === 1 ? '' : 's'} of other texts` : '') +
      '; /readyz says not ready while no broker is reachable, and until a connection succeeds again further such errors are logged at debug level';
    const err = this.explain(everyBrokerDown ?? 'broker transport failure');
    // Each broker under one field: `refusing` those this line names as refusing, `failing` the others whose connections failed.
    const failing = [...this.failedBrokers].filter((broker) => refusals?.since[broker] === undefined);
    (this.logger?.warn ?? this.logger?.debug)?.call(this.logger, { ...burst.fields, errors, ...(failing.length > 0 ? { failing } : {}), ...(refusals === undefined ? {} : { refusing: refusals.since }), err }, message);
  }

  /**
   * The condition of the errors logged as `what` cleared (a commit succeeded after `kafka offset commit
   * failed`; the group assigned partitions again after an expulsion): their texts are warned of again
   * when met next, as a new episode. Before, an error text was forgotten only when a connection
   * succeeded after an outage, so a second expulsion or refused commit days later, with no outage
   * between, was logged at debug level only. An outage's own errors stay its (see {@link clear}).
   */
  settled(what: string): void {
    for (const [text, loggedAs] of this.warnedErrors) {
      if (loggedAs === what && !isTransportFailure({ message: text }) && !isEveryBrokerDown({ message: text })) this.warnedErrors.delete(text);
    }
  }

  /** Connected: what failed before is history, and the outage's warned errors are once outageSettleMs passed. */
  clear(): void {
    if (!this.connectedOnce && this.unreachedWarning === 'warned') {
      // Warned of as a wrong address or brokers not up yet: it was the latter, or the address was mended.
      this.logger?.info?.({ reached: [...this.unreached.keys()] }, 'kafka brokers reached: the brokers warned of as not reached since the start answer now');
    }
    this.connectedOnce = true;
    this.unreached.clear();
    this.last = undefined;
    this.warned.clear();
    this.failedBrokers.clear();
    if (this.suppressedErrors > 0) {
      this.logger?.warn?.({ suppressed: this.suppressedErrors }, `kafka client connected again; ${this.suppressedErrors} error${this.suppressedErrors === 1 ? '' : 's'} of new texts met meanwhile, past the first ${maxWarnedErrors}, ${this.suppressedErrors === 1 ? 'was' : 'were'} logged at debug level only`);
      this.suppressedErrors = 0;
    }
    if (this.warnedErrors.size > 0 || this.outageWarned) this.recoveredAt ??= Date.now();
  }
}

/**
 * Whether a producer reaches its brokers, for a sink's `health()` (/readyz). Not ready from an
 * `event.error` saying every broker is down until the brokers answer again: a metadata request (at
 * most one in flight, one per 5 s, asked from `health()` itself, so an idle producer such as a
 * dead-letter sink's becomes ready again), or the owner seeing them answer (`reachable()`: a flush or a
 * commit that completed).
 */
export class ProducerReachability {
  /**
   * The error that said every broker is down, until they answer again; /readyz explains it when asked
   * (ConnectionFailures.explain), so it names brokers that began refusing after it came.
   */
  private downError: string | undefined;
  private probing = false;
  private lastProbe = 0;
  private connecting = false;
  /** Why its connections fail, for the messages of a failed connect and of an outage. */
  readonly failures: ConnectionFailures;

  constructor(
    private readonly producer: RdKafka.Producer,
    /** What the producer does while no broker is reachable (`records wait in the producer`), said in the outage's warning. */
    whileUnreachable: string,
    logger?: ConnectionLogger,
    /** The configured bootstrap brokers (brokerList). */
    brokers?: string,
  ) {
    this.failures = new ConnectionFailures(producer, logger, whileUnreachable, brokers);
  }

  /**
   * Takes the producer's `event.error` that is not fatal: one saying the brokers are unreachable makes
   * the producer not ready. Each is logged as `what` by the rule of every Kafka client
   * (ConnectionFailures.logError: an outage is one warning, which says what the producer does meanwhile).
   */
  observe(error: { message: string; code?: number }, what: string, fields: object = {}): void {
    if (isBrokersDown(error)) this.downError = error.message;
    this.failures.logError(error, what, fields);
  }

  /** The brokers answered (a flush or a commit completed). */
  reachable(): void {
    this.downError = undefined;
    this.failures.clear();
  }

  /**
   * The producer's connect as the pipeline starts (up to 30 s): not ready meanwhile, saying why the
   * brokers refuse once librdkafka logged it (before, /readyz said only `starting`).
   */
  async whileConnecting<T>(connect: Promise<T>): Promise<T> {
    this.connecting = true;
    try {
      return await connect;
    } finally {
      this.connecting = false;
    }
  }

  /** Why the brokers are unreachable, while the producer last saw them so (no probe); undefined when reachable. */
  unreachable(): string | undefined {
    return this.downError === undefined ? undefined : this.failures.explain(this.downError);
  }

  /**
   * What a flush or close of `what` (the sink, the transactions) gives up with when the pipeline stops
   * (or failed: `signal`, PluginContext.signal) while the brokers are unreachable ({@link stoppedUnreachable});
   * undefined otherwise: it waits for them.
   */
  stoppedUnreachable(signal: AbortSignal | undefined, what: string, options: { shared?: boolean } = {}): TributaryError | undefined {
    const detail = signal?.aborted ? this.unreachable() : undefined;
    return detail === undefined ? undefined : stoppedUnreachable(what, detail, options);
  }

  health(): SourceHealth {
    if (this.connecting) return { ready: false, detail: this.failures.explain('connecting to the brokers') };
    if (this.downError !== undefined) this.probe();
    return this.downError === undefined ? { ready: true } : { ready: false, detail: this.failures.explainOutage(this.downError) };
  }

  /** Asks the brokers for metadata (at most one request in flight, one per 5 s): an answer ends the outage. */
  private probe(): void {
    const now = Date.now();
    if (this.probing || now - this.lastProbe < 5_000) return;
    this.probing = true;
    this.lastProbe = now;
    this.producer.getMetadata({ timeout: 2_000 }, (error) => {
      this.probing = false;
      if (!error) this.reachable();
    });
  }
}

type RdKafkaModule = typeof RdKafka;
let loaded: Promise<RdKafkaModule> | undefined;

/**
 * node-rdkafka's failure to load, said with what mends it: most often its native binding is not built (its
 * install script was skipped, as npm 11 skips scripts not in `allowScripts`, or failed), where node-rdkafka
 * itself lists the paths it tried and names no cause.
 */
function rdkafkaUnloadable(cause: unknown): Error {
  const first = String((cause as Error | undefined)?.message ?? cause).split('\n')[0];
  return new Error(
    `node-rdkafka, which the kafka plugins need, does not load (${first}): its native binding is built by its install script, ` +
      "which did not run or failed: allow it and Tributary's (which patches it) and rebuild them: npm install-scripts approve node-rdkafka tributary, then npm rebuild node-rdkafka tributary " +
      '(docs/plugin-authoring.md, A plugin project)',
    { cause },
  );
}

/** node-rdkafka, loaded on first use. */
export function rdkafka(): Promise<RdKafkaModule> {
  loaded ??= import('node-rdkafka').then(
    (module) => ((module as unknown as { default?: RdKafkaModule }).default ?? module) as RdKafkaModule,
    (error: unknown) => {
      throw rdkafkaUnloadable(error);
    },
  );
  return loaded;
}

/**
 * The features librdkafka was built with (its `builtin.features`: codecs, `ssl`, `oidc`...), for checks
 * that `validate` runs synchronously (PluginSpec.checkPipeline); loads node-rdkafka then, as a Kafka
 * entry will anyway.
 */
export function librdkafkaFeatures(): readonly string[] {
  return rdkafkaNow().features;
}

/** node-rdkafka loaded synchronously, for the checks `validate` runs synchronously (PluginSpec.checkPipeline). */
function rdkafkaNow(): RdKafkaModule {
  try {
    return createRequire(import.meta.url)('node-rdkafka') as RdKafkaModule;
  } catch (error) {
    throw rdkafkaUnloadable(error);
  }
}

export type CompressionCodec = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
const compressionCodecs: readonly CompressionCodec[] = ['gzip', 'snappy', 'lz4', 'zstd'];

/**
 * Why this build of librdkafka cannot write `codec`, or undefined when it can. librdkafka refuses such a
 * `compression.codec` only when the producer is made (at `run`, at the entry, not the field); the
 * bundled one (node-rdkafka 3.6.1's) is built without libzstd.
 */
export function missingCodec(codec: CompressionCodec, features: readonly string[]): string | undefined {
  if (codec === 'none' || features.includes(codec)) return undefined;
  const built = compressionCodecs.filter((each) => features.includes(each));
  return `this build of librdkafka (node-rdkafka's) has no ${codec} (built without lib${codec}; its codecs: ${built.join(', ')}); choose one of those, or none`;
}

/**
 * The raw librdkafka properties (`options`) that name a compression codec this build lacks, each with
 * why (missingCodec): `compression.codec` and its alias `compression.type`, by the property's name.
 * librdkafka refuses them only when the producer is made, as it does the `compression` field's value.
 */
export function missingOptionCodecs(options: Readonly<Record<string, string | number | boolean>> | undefined, features: readonly string[]): { name: string; why: string }[] {
  const missing: { name: string; why: string }[] = [];
  for (const name of ['compression.codec', 'compression.type']) {
    const value = options?.[name];
    const codec = compressionCodecs.find((each) => each === value);
    const why = codec === undefined ? undefined : missingCodec(codec, features);
    if (why !== undefined) missing.push({ name, why });
  }
  return missing;
}

/**
 * The raw librdkafka properties (`options`) that librdkafka refuses, each with its words: a name it does
 * not know (`sasl.usernme`) or a value it does not take. It checks them only as the client is made, when
 * the pipeline starts, and that failure was said at the entry, not the property, and not by `validate`.
 * Each is set alone on a client of the plugin's kind that is never connected (node-rdkafka makes
 * librdkafka's handle, its threads and sockets, only on connect()).
 */
export function refusedOptions(options: Readonly<Record<string, string | number | boolean>> | undefined, client: 'producer' | 'consumer'): { name: string; why: string }[] {
  if (options === undefined) return [];
  const Kafka = rdkafkaNow();
  const refused: { name: string; why: string }[] = [];
  for (const [name, value] of Object.entries(options)) {
    try {
      if (client === 'producer') new Kafka.Producer({ 'metadata.broker.list': 'localhost:9092', [name]: value });
      else new Kafka.KafkaConsumer({ 'metadata.broker.list': 'localhost:9092', 'group.id': 'validate', [name]: value }, {});
    } catch (error) {
      const words = asError(error).message;
      const unknown = /No such configuration property/.test(words);
      refused.push({
        name,
        why: `librdkafka refuses it: ${words}${unknown ? ' (a misspelt name? Its properties are those of librdkafka\'s CONFIGURATION.md; SASL and TLS are set under `security`)' : ''}`,
      });
    }
  }
  return refused;
}

/** librdkafka error codes this code reacts to (node-rdkafka's `CODES.ERRORS`). */
export const ErrorCode = {
  /** A record batch librdkafka cannot read: its CRC does not match (`check.crcs`), or it is malformed. */
  BAD_MSG: -199,
  /** A record batch librdkafka cannot decompress. */
  BAD_COMPRESSION: -198,
  TRANSPORT: -195,
  UNKNOWN_PARTITION: -190,
  UNKNOWN_TOPIC: -188,
  ALL_BROKERS_DOWN: -187,
  TIMED_OUT: -185,
  QUEUE_FULL: -184,
  ASSIGN_PARTITIONS: -175,
  REVOKE_PARTITIONS: -174,
  STATE: -172,
  /** A commit found nothing to commit (of the assignment: no offset stored). */
  NO_OFFSET: -168,
  /** Among others: a record batch in a compression codec this build of librdkafka lacks. */
  NOT_IMPLEMENTED: -170,
  FATAL: -150,
  FENCED: -144,
  /** librdkafka takes the assignment as lost (the session or max.poll.interval expired). */
  ASSIGNMENT_LOST: -142,
  UNKNOWN_TOPIC_OR_PART: 3,
  /** The brokers refused a record batch larger than the topic's max.message.bytes. */
  MSG_SIZE_TOO_LARGE: 10,
  /** The group's generation moved on past this member's (a rebalance it missed). */
  ILLEGAL_GENERATION: 22,
  /** The group no longer knows this member (it left, or its session expired). */
  UNKNOWN_MEMBER_ID: 25,
  TOPIC_AUTHORIZATION_FAILED: 29,
  /** The brokers refuse this client its consumer group (no Read ACL on the group). */
  GROUP_AUTHORIZATION_FAILED: 30,
  FENCED_INSTANCE_ID: 82,
  UNSTABLE_OFFSET_COMMIT: 88,
  PRODUCER_FENCED: 90,
} as const;

/**
 * librdkafka's text of each code the Kafka plugins look for: its err2str without the "Local: " or
 * "Broker: " origin, lower-cased, which is all an `event.error` keeps of it. node-rdkafka hands every
 * `event.error` over as code -1 (ERR_UNKNOWN) with that text (src/callbacks.cc makes the Error from
 * err2str, lib/error.js drops the code and the origin), while an operation's error (consume, commit)
 * keeps the code: a check must look at both.
 */
const errorTexts: ReadonlyMap<number, string> = new Map<number, string>([
  [ErrorCode.ALL_BROKERS_DOWN, 'all broker connections are down'],
  [ErrorCode.TRANSPORT, 'broker transport failure'],
  [ErrorCode.TIMED_OUT, 'timed out'],
  [ErrorCode.UNKNOWN_TOPIC_OR_PART, 'unknown topic or partition'],
  [ErrorCode.UNKNOWN_TOPIC, 'unknown topic'],
  [ErrorCode.UNKNOWN_PARTITION, 'unknown partition'],
  [ErrorCode.MSG_SIZE_TOO_LARGE, 'message size too large'],
  [ErrorCode.GROUP_AUTHORIZATION_FAILED, 'group authorization failed'],
  [ErrorCode.TOPIC_AUTHORIZATION_FAILED, 'topic authorization failed'],
]);

/** Offsets by topic and partition: the JSON form a position and a commit share. */
export type PartitionOffsets = Record<string, Record<string, number>>;

export function toTopicPartitionOffsets(offsets: PartitionOffsets): RdKafka.TopicPartitionOffset[] {
  const list: RdKafka.TopicPartitionOffset[] = [];
  for (const [topic, partitions] of Object.entries(offsets)) {
    for (const [partition, offset] of Object.entries(partitions)) list.push({ topic, partition: Number(partition), offset });
  }
  return list;
}

export function promisify<T = void>(call: (cb: (error: RdKafka.LibrdKafkaError | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    call((error, value) => (error ? reject(asError(error)) : resolve(value as T)));
  });
}

/**
 * How long the tries of {@link connectUnlessStopped} wait for the brokers: the first, the second, and
 * every later one. Short first (a stop is taken between tries); longer later, so brokers whose first
 * answer is slow (TLS and SASL to a distant cluster, a token to fetch) still connect within the timeout.
 */
const connectTryMs = [2_000, 5_000, 10_000] as const;

/** What {@link connectUnlessStopped} needs of a node-rdkafka client (a producer or a consumer). */
type Connectable = Pick<RdKafka.Client<string>, 'connect'>;

/**
 * node-rdkafka's `connect`, in tries of 2 s, 5 s, then 10 s each, until `timeoutMs` passed or
 * `signal` is aborted. Its connect waits for the brokers' first metadata answer on a libuv pool thread,
 * and nothing ends that wait early: not a disconnect (it waits for the same lock), not even the
 * process's exit (which joins the pool's threads). One 30 s try made a stop while the brokers were
 * unreachable take the whole 30 s, and then fail the run (exit 1), past a Kubernetes pod's grace period.
 * A try that fails waits out its time (a refused connection fails none sooner: librdkafka waits for a
 * broker until the timeout), then the next one starts with a new librdkafka handle.
 *
 * Resolves true once connected, false when stopped first (not connected then); rejects with the last
 * try's error once `timeoutMs` passed, or at once with an error that is not the brokers' silence (the
 * handle could not be made: a bad TLS file).
 */
export async function connectUnlessStopped(client: Connectable, options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<boolean> {
  const { timeoutMs, signal } = options;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const tryMs = connectTryMs[Math.min(attempt, connectTryMs.length - 1)]!;
    if (signal?.aborted) return false;
    const began = Date.now();
    try {
      await promisify((cb) => client.connect({ timeout: Math.max(1, Math.min(tryMs, deadline - began)) }, (error) => cb(error)));
      return true;
    } catch (error) {
      if (!isBrokersDown(asError(error)) && !isTimedOut(asError(error))) throw error;
      if (signal?.aborted) return false;
      if (Date.now() >= deadline) throw error;
      const rest = tryMs - (Date.now() - began);
      if (rest > 0) await sleep(rest, undefined, signal ? { signal } : {}).catch(() => undefined);
    }
  }
}

/**
 * How long each of {@link flushProducer}'s waits is: short enough that a stop in a broker outage is
 * taken within it, long enough not to matter otherwise (librdkafka's flush returns as soon as its queue
 * is empty; it polls in 10 ms slices itself).
 */
const flushSliceMs = 250;

/**
 * librdkafka's flush, up to `timeoutMs` in all, in slices, asking `giveUp` between them: a flush waits
 * on a thread of libuv's pool, which the process's exit joins, so one long wait held a stop in a broker
 * outage (and the exit after its shutdown timeout) for the whole of it. `giveUp` returns the error to
 * fail with (a stop that meets the brokers unreachable: {@link stoppedUnreachable}), or undefined to go on.
 */
export async function flushProducer(
  producer: { flush(timeoutMs: number, cb: (error: RdKafka.LibrdKafkaError | null | undefined) => void): unknown },
  timeoutMs: number,
  giveUp: () => Error | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const slice = Math.max(0, Math.min(flushSliceMs, deadline - Date.now()));
    try {
      await promisify((cb) => producer.flush(slice, cb));
      return;
    } catch (error) {
      if (!isTimedOut(asError(error)) || Date.now() >= deadline) throw error;
      const reason = giveUp();
      if (reason) throw reason;
    }
  }
}

/**
 * A stop (or a failed run's end) that meets the brokers unreachable does not wait for them: what its
 * producer holds cannot be acknowledged, so the input it came from is not committed, and the next
 * start (or the group's next owner of the partitions) reads it again. Marked `handedOver`
 * (inputHandedOver): the daemon ends such a stop as stopped, with a warning, not as failed.
 */
export function stoppedUnreachable(what: string, detail: string, options: { shared?: boolean } = {}): TributaryError {
  return new TributaryError(
    'TRIB_ERR_SINK',
    `${what}: stopped while the brokers are unreachable (${detail}), with records not acknowledged; the input they came from stays uncommitted, and the next start reads it again`,
    { handedOver: true, ...options },
  );
}

/**
 * A failure met while the brokers are unreachable (`detail`, from ProducerReachability.unreachable):
 * a delivery or a flush that timed out, a transaction that could not commit. Nothing of the input it
 * covered was committed, and the next start reads it again, so it is marked `handedOver`
 * (inputHandedOver): a stop that meets it, or that comes while the daemon waits to restart after it,
 * ends as stopped, not failed. A running pipeline is restarted after it as after any failure.
 */
export function inOutage(failure: Error, detail: string | undefined): Error {
  return detail === undefined ? failure : handedOver(failure, `the brokers are unreachable: ${detail}`);
}

/** `failure` marked `handedOver` (inputHandedOver), `why` added to its message; as it is when marked already. */
export function handedOver(failure: Error, why: string): Error {
  if (inputHandedOver(failure)) return failure;
  // A failure that names itself (TributaryError.shared: the transactional producer's) still does.
  const shared = failure instanceof TributaryError && failure.shared;
  return new TributaryError('TRIB_ERR_SINK', `${failure.message} (${why})`, { cause: failure, handedOver: true, shared });
}

/**
 * Flushes and disconnects a producer that `setPollInterval` polls. The interval is stopped first:
 * node-rdkafka's disconnect destroys the librdkafka handle on a worker thread while its poll(),
 * which takes no lock, would go on serving that handle from this thread until the 'disconnected'
 * event (a use after free: librdkafka forbids any call on a handle being destroyed).
 */
export function disconnectProducer(producer: RdKafka.Producer, timeoutMs: number): Promise<void> {
  producer.setPollInterval(0);
  return new Promise<void>((resolve) => producer.disconnect(timeoutMs, () => resolve()));
}

/**
 * Resolves once the callbacks node-rdkafka has queued for this thread so far have run. A delivery
 * report served on librdkafka's side (in flush() or poll()) reaches JavaScript through a libuv async
 * handle signalled before flush's completion; libuv runs it in the same event-loop turn as that
 * completion or, if it scanned that handle just before the signal, in the next turn. Two check
 * phases (setImmediate) later, both have passed.
 */
export function dispatched(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** librdkafka errors are plain objects at times; make them Errors with the code kept. */
export function asError(error: unknown): Error & { code?: number } {
  if (error instanceof Error) return error;
  const e = error as { message?: string; code?: number };
  return Object.assign(new Error(e?.message ?? String(error)), { code: e?.code });
}

/**
 * `error` said without the secrets a URL in its message may carry (redactSecretText): fetch's own errors
 * quote the URL whole (`Request cannot be constructed from a URL that includes credentials: https://id:secret@...`,
 * `Failed to parse URL from ...`), and the message reaches /readyz and the failure's record. Its cause (the
 * connection's error, which names the host alone) is kept.
 */
function withoutUrlSecrets(error: Error): Error {
  const message = redactSecretText(error.message);
  if (message === error.message) return error;
  return new Error(message, error.cause === undefined ? undefined : { cause: error.cause });
}

type OAuthConfig = NonNullable<NonNullable<SecurityConfig['sasl']>['oauthbearer']>;

/** What a node-rdkafka client offers for OAUTHBEARER tokens handed in by the application. */
export interface TokenClient {
  setOauthBearerToken(token: string): unknown;
}

/**
 * OIDC client credentials (RFC 6749 4.4, client_secret_basic, as librdkafka's own OIDC does), for
 * librdkafka builds without OIDC: fetches a token, hands it to the client, and fetches the next at
 * 80% of its lifetime (10 s after a failure, logged).
 */
export class OidcTokens {
  private timer: NodeJS.Timeout | undefined;
  private readonly clients = new Set<TokenClient>();
  private token: string | undefined;
  /**
   * Set by stop(): a fetch under way then (a refresh due as the pipeline failed) schedules no next one.
   * It did, and each restart of the daemon's that met one left a refresh asking the endpoint for good.
   */
  private stopped = false;

  constructor(
    private readonly oauth: OAuthConfig,
    private readonly onError: (error: Error) => void,
    private readonly fetchToken: typeof fetch = fetch,
  ) {}

  async attach(client: TokenClient): Promise<void> {
    this.clients.add(client);
    if (this.token === undefined) await this.refresh();
    else client.setOauthBearerToken(this.token);
  }

  async refresh(): Promise<void> {
    clearTimeout(this.timer);
    const { token_endpoint_url: url, client_id: id, client_secret: secret, scope } = this.oauth;
    // The endpoint as messages name it: its URL may carry a credential (user info, a query's secret).
    const endpoint = redactSecretText(url);
    let lifetimeMs: number;
    try {
      const response = await this.fetchToken(url, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }).toString(),
      });
      if (!response.ok) throw new Error(`OAUTHBEARER token endpoint ${endpoint} answered HTTP ${response.status}`);
      const answer = (await response.json()) as { access_token?: unknown; expires_in?: unknown };
      if (typeof answer.access_token !== 'string' || answer.access_token === '') throw new Error(`OAUTHBEARER token endpoint ${endpoint} answered without an access_token`);
      this.token = answer.access_token;
      lifetimeMs = (typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : 3600) * 1000;
    } catch (error) {
      this.schedule(10_000);
      throw withoutUrlSecrets(asError(error));
    }
    for (const client of this.clients) client.setOauthBearerToken(this.token);
    this.schedule(lifetimeMs * 0.8);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.refresh().catch((error: unknown) => this.onError(asError(error))), ms);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.clients.clear();
  }
}

/**
 * Starts token delivery for a client whose config asks for OAUTHBEARER with OIDC when librdkafka
 * cannot fetch tokens itself. Call before `connect`; the returned function stops the refreshes.
 */
export async function provideOauthToken(client: TokenClient, config: ConnectionConfig, features: readonly string[], onError: (error: Error) => void): Promise<() => void> {
  const oauth = config.security?.sasl?.oauthbearer;
  if (!oauth || features.includes('oidc')) return () => undefined;
  const tokens = new OidcTokens(oauth, onError);
  try {
    await tokens.attach(client);
  } catch (error) {
    // The failed fetch scheduled a retry: with no stop function returned, nothing would ever end it.
    tokens.stop();
    throw error;
  }
  return () => tokens.stop();
}


/**
 * node-rdkafka makes each blocking client call on libuv's thread pool: 4 threads unless
 * UV_THREADPOOL_SIZE says more, shared with node's own fs (checkpoint writes, file sinks), zlib,
 * dns.lookup and crypto. In a broker outage each call holds its thread for its whole timeout (2-30 s):
 * a lookup per partition made at once filled the pool, and a checkpoint's write or a transaction's
 * abort waited for them all. The lookups (metadata, watermarks, committed offsets, offsets for times)
 * go through this lane, one in the process at a time, so they hold one thread at most; a client's
 * other blocking calls (connect, consume, flush, the transaction calls) each come one at a time by
 * their own logic. A lookup that waited for its turn longer than its own timeout fails as timed out
 * without being made: in an outage the queue drains at once instead of growing.
 */
export class LookupLane {
  private running = false;
  private readonly queue: (() => void)[] = [];
  /** Lookups made and not yet answered (0 or 1), and waiting for their turn: for tests and debugging. */
  get inFlight(): number {
    return this.running ? 1 : 0;
  }
  get waiting(): number {
    return this.queue.length;
  }

  /** Makes `call` when the lane is free, or fails with a timeout if that comes after `timeoutMs`. */
  run<T>(timeoutMs: number, call: (done: (error: LibrdKafkaErrorLike | null | undefined, value?: T) => void) => void, callback: (error: LibrdKafkaErrorLike | null | undefined, value?: T) => void): void {
    const asked = Date.now();
    const turn = (): void => {
      const waited = Date.now() - asked;
      if (waited > timeoutMs) return this.answer(() => callback(laneTimedOut(waited)));
      this.running = true;
      let answered = false;
      let released = false;
      // A lookup not answered well past its timeout (a client closed under it, a call that never calls
      // back) holds the lane no longer: the next goes; its answer, if it comes, still reaches its caller.
      const overdue = setTimeout(() => {
        released = true;
        this.running = false;
        this.queue.shift()?.();
      }, timeoutMs + lookupOverdueMs);
      overdue.unref?.();
      const done = (error: LibrdKafkaErrorLike | null | undefined, value?: T): void => {
        if (answered) return;
        answered = true;
        clearTimeout(overdue);
        if (released) return callback(error, value);
        this.running = false;
        this.answer(() => callback(error, value));
      };
      try {
        call(done);
      } catch (error) {
        done(asLibrdKafkaError(error));
      }
    };
    // Behind those waiting, also when asked from an answer's callback (the lane is free then, its queue not).
    if (this.running || this.queue.length > 0) this.queue.push(turn);
    else turn();
  }

  /** Hands an answer over, then gives the next lookup its turn (also if the caller's callback throws). */
  private answer(callback: () => void): void {
    try {
      callback();
    } finally {
      if (!this.running) this.queue.shift()?.();
    }
  }
}

/** How long past its own timeout a lookup holds the lane at most (see LookupLane.run). */
export const lookupOverdueMs = 5_000;

/** A client error as node-rdkafka's callbacks hand it over (LibrdKafkaError, or a plain Error). */
type LibrdKafkaErrorLike = Error & { code?: number };

function asLibrdKafkaError(error: unknown): LibrdKafkaErrorLike {
  return error instanceof Error ? error : new Error(String(error));
}

function laneTimedOut(waitedMs: number): LibrdKafkaErrorLike {
  return Object.assign(new Error(`Local: Timed out (waited ${waitedMs} ms for the other Kafka lookups ahead of it: not made)`), { code: ErrorCode.TIMED_OUT });
}

/** The process's lane: libuv's pool is the process's. */
export const lookupLane = new LookupLane();

/** The lookups of node-rdkafka's clients that block a pool thread, and their defaults where no timeout is given. */
type LaneClient = Pick<RdKafka.Client<string>, 'getMetadata'> & Partial<Pick<RdKafka.KafkaConsumer, 'queryWatermarkOffsets' | 'committed' | 'offsetsForTimes'>>;

/**
 * Sends `client`'s lookups through `lane` (see {@link LookupLane}): its getMetadata, queryWatermarkOffsets,
 * committed and offsetsForTimes, wherever they are called from; but not the metadata request connect()
 * makes itself. A connect is one per client start, not the lookups' fan-out that filled the pool, and
 * queued behind another client's lookups it failed as timed out without asking its own brokers (a sink
 * starting beside a source whose brokers refused its credentials said "waited 2002 ms for the other
 * Kafka lookups" instead of the refusal).
 */
export function throughLookupLane<C extends LaneClient>(client: C, lane: LookupLane = lookupLane): C {
  type Callback = (error: LibrdKafkaErrorLike | null | undefined, value?: unknown) => void;
  const own = client as unknown as Record<string, (...args: unknown[]) => unknown>;
  // Each method takes its callback last and its timeout where node-rdkafka says (the defaults are node-rdkafka's).
  // The method is looked up on the prototype at each call, not kept: what a test swaps there later still answers.
  const prototype = Object.getPrototypeOf(client) as Record<string, (...args: unknown[]) => unknown>;
  const wrap = (name: string, timeoutOf: (args: unknown[]) => number): void => {
    if (typeof prototype[name] !== 'function' || Object.hasOwn(own, name)) return;
    own[name] = function (this: unknown, ...args: unknown[]) {
      const original = prototype[name]!;
      const last = args[args.length - 1];
      if (typeof last !== 'function') return original.apply(client, args);
      const callback = last as Callback;
      const head = args.slice(0, -1);
      if (connecting) return original.apply(client, args);
      lane.run(timeoutOf(head), (done) => original.apply(client, [...head, done]), callback);
      return client;
    };
  };
  // connect() calls getMetadata from its own callback chain, before it calls back: that one goes straight.
  let connecting = false;
  if (typeof prototype.connect === 'function' && !Object.hasOwn(own, 'connect')) {
    own.connect = function (this: unknown, ...args: unknown[]) {
      const original = prototype.connect!;
      const last = args[args.length - 1];
      if (typeof last !== 'function') return original.apply(client, args);
      connecting = true;
      return original.apply(client, [
        ...args.slice(0, -1),
        (error: unknown, value: unknown) => {
          connecting = false;
          (last as (error: unknown, value: unknown) => void)(error, value);
        },
      ]);
    };
  }
  wrap('getMetadata', (args) => Number((args[0] as { timeout?: number } | undefined)?.timeout ?? 30_000));
  wrap('queryWatermarkOffsets', (args) => (typeof args[2] === 'number' ? args[2] : 1_000));
  wrap('committed', (args) => (typeof args[1] === 'number' ? args[1] : 1_000));
  wrap('offsetsForTimes', (args) => (typeof args[1] === 'number' ? args[1] : 1_000));
  return client;
}

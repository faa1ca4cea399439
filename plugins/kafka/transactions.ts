/**
 * Exactly-once for one pipeline: a single transactional producer shared by every `kafka` sink with
 * `guarantee: exactly-once` in the pipeline, and the `kafka` source whose offsets it commits.
 *
 * How it fits together (as Kafka Streams' exactly_once_v2 does):
 * - The first exactly-once sink's factory creates the pipeline's `PipelineTransactions` (found through
 *   `PluginContext.shared`, so no other pipeline sees it) with its producer, not yet connected. The
 *   sinks' `open()` connects it, to look up their topics (a connect fences no one). It calls
 *   `initTransactions` (which fences and aborts a previous incarnation's open transaction with the
 *   same `transactional.id`) and begins a transaction only when the pipeline first needs one: the
 *   source's first read (alongside its consumer's connect, so the first record waits for neither in
 *   turn), or a sink's first wait for room, or a commit. All of these come after
 *   every sink and stage opened. Fencing earlier let a run that never starts kill the live one's
 *   transactions: from the factory, a second `tributary run` by mistake whose config then fails; from
 *   the sink's `open()`, one whose later sink cannot open its output. Further exactly-once sinks write
 *   through it too, so every output topic is in the same transaction.
 * - The source (created after the sinks) finds it and, instead of committing offsets to its group,
 *   calls `commit(offsets, consumer)`: flush, `sendOffsetsToTransaction` (with the consumer's group
 *   metadata, so a zombie from an older group generation is fenced: KIP-447), `commitTransaction`,
 *   and begin the next one. The runtime calls the source's `commit` at a barrier, after every sink
 *   flushed, so the transaction holds exactly the outputs of the input up to the offsets it commits.
 * - Only the sealing of the transaction (no more writes into it) happens at that barrier, at once;
 *   the sinks' flush there does not wait for the brokers either. The broker round trips (flush,
 *   sendOffsetsToTransaction, commitTransaction) run after it, while the pipeline goes on writing
 *   into a bounded queue for the next transaction. A commit asked for while one is under way does not
 *   wait for it either: it marks how much of that queue it covers and commits right after (two such
 *   asks merge into one, offsets merged). So commits run back to back at a short interval without
 *   ever holding the pipeline, and each transaction holds exactly the writes made before its commit
 *   was asked for (also for a revocation, which has no barrier).
 * - Any transactional error aborts and fails the pipeline: a restart resumes from the last committed
 *   offsets, and readers with isolation.level=read_committed never see the aborted outputs.
 */
import type { Logger } from 'pino';
import type * as RdKafka from 'node-rdkafka';
import { TributaryError, type SourceHealth } from 'tributary';
import {
  asError,
  brokerList,
  connectUnlessStopped,
  deliveryFailure,
  disconnectProducer,
  dispatched,
  ErrorCode,
  fatalErrorOf,
  fatalHint,
  flushProducer,
  handedOver,
  inOutage,
  ProducerReachability,
  promisify,
  provideOauthToken,
  rdkafka,
  throughLookupLane,
  topicListed,
  topicsOwnFault,
  type ConnectionConfig,
} from './common.js';

const key = 'kafka:transactions';
/**
 * The transaction's offsets refused because the group had moved on (KIP-447: this member left it, cut
 * off or stalled past its session, and its partitions went to another member).
 */
const groupMovedOn: ReadonlySet<number> = new Set([ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNKNOWN_MEMBER_ID]);

/** A transaction's failure, marked (inputHandedOver) where the group gave its input to another member. */
function handedOverOr(failure: Error & { code?: number }): Error {
  if (failure.code === undefined || !groupMovedOn.has(failure.code)) return failure;
  return handedOver(failure, "the group gave this member's partitions to another member, which reads their uncommitted input again");
}

/** How long a failed transaction's abort may take (see {@link PipelineTransactions.run}). */
const abortTimeoutMs = 5_000;
/** Most records queued for the next transaction while one commits; beyond it the sinks ask the runtime to wait. */
const maxWaiting = 50_000;

export interface TransactionalProduce {
  topic: string;
  value: Buffer;
  key: string | null;
  timestamp: number;
}

/** One source's offsets for a commit, sent with its own consumer's group metadata (KIP-447). */
interface OffsetsAsk {
  offsets: readonly RdKafka.TopicPartitionOffset[];
  consumer: RdKafka.KafkaConsumer | undefined;
}

/**
 * The commit sealed last, while its offsets are not sent yet: another source's ask with no write since
 * (several exactly-once sources, each asked at one barrier) joins it, so one transaction holds the
 * outputs and every source's offsets (else the second source's offsets went in a transaction of their
 * own, and a crash between the two replayed its input, whose outputs the first had committed).
 */
interface SealedCommit {
  asks: OffsetsAsk[];
  /** PipelineTransactions.writes as sealed: an ask joins only while no write came since. */
  writes: number;
  sending: boolean;
}

interface QueuedCommit {
  /** Next offset to read per partition (merged over the asks: the newest of each), with the consumer of its source. */
  offsets: Map<string, { tp: RdKafka.TopicPartitionOffset; consumer: RdKafka.KafkaConsumer | undefined }>;
  covers: number;
  committed: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class PipelineTransactions {
  /** Writes made while no transaction was open (a commit under way), in order; sent as the next ones begin. */
  private waiting: TransactionalProduce[] = [];
  /** A transaction takes writes; false while a commit is under way (from sealing to the next begin). */
  private transactionOpen = false;
  /**
   * Writes of the open (or the sealed, committing) transaction librdkafka had no room for (its queue
   * full: acknowledgements behind, a broker slow or failing over), in order: sent as room comes, before
   * any later write, and all of them before the transaction commits. Meanwhile the sinks wait (ready()).
   */
  private overflow: TransactionalProduce[] = [];
  private overflowTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The producer's connect, once (see {@link connect}). */
  private connecting: Promise<boolean> | undefined;
  /** initTransactions and the first begin, once (see {@link open}). */
  private opening: Promise<void> | undefined;
  private connected = false;
  /** Set once the first transaction began: writes go straight to the producer from then on. */
  private opened = false;
  private stopTokens: () => void = () => undefined;
  /** A failed delivery (its transaction cannot commit). */
  private failure: Error | undefined;
  /** The topic of that failed delivery, if a delivery's (its sinks are named where the topic is at fault). */
  private failedTopic: string | undefined;
  /** The exactly-once sinks writing through this producer, in the order they were created (see {@link join}). */
  private readonly sinks: { label: string; topic: string }[] = [];
  /** Set once a transaction failed and was aborted: nothing commits after it. */
  private aborted: Error | undefined;
  /** Why no transaction may commit any more (see {@link abandon}): the next commit fails with it. */
  private abandoned: Error | undefined;
  /** Why the last transaction was left open instead (a stop in a broker outage: {@link stoppedInOutage}). */
  private leftOpen: TributaryError | undefined;
  /**
   * Why the producer cannot go on: librdkafka raised a fatal error (another producer started with this
   * transactional.id and fenced it). Commits and writes fail with it, and the sinks are not ready.
   */
  private fatal: TributaryError | undefined;
  /** The first exactly-once sink's PluginContext.fail (see {@link onFailure}). */
  private reportFailure: ((error: Error) => void) | undefined;
  /** The commit asked for while one was under way: it covers the first `covers` waiting writes. */
  private next: QueuedCommit | undefined;
  /** See SealedCommit. */
  private sealedCommit: SealedCommit | undefined;
  /** Resolved when `waiting` has room again (while it is full); rejected once nothing more commits. */
  private room: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } | undefined;
  /** The last commit asked for (whatever its outcome, close() waits for it). */
  private committing: Promise<void> = Promise.resolve();
  transactions = 0;
  /** Writes made so far, and how many of them the commits asked for so far hold (see {@link writesSinceCommit}). */
  private writes = 0;
  private writesCommitted = 0;
  /** Set by the exactly-once kafka source that commits these transactions: without one, nothing would ever commit. */
  sourceAttached = false;

  private readonly brokers: ProducerReachability;

  private constructor(
    readonly transactionalId: string,
    private readonly producer: RdKafka.Producer,
    private readonly logger: Logger,
    private readonly connection: ConnectionConfig | undefined,
    /** node-rdkafka's build features (`oidc` or not). */
    private readonly features: readonly string[],
    private readonly signal: AbortSignal | undefined,
  ) {
    this.brokers = new ProducerReachability(
      producer,
      'the open transaction waits (its commit fails if they stay away longer than its requests may wait, about 20-30 s, and the pipeline restarts from its last commit)',
      logger,
      connection === undefined ? undefined : brokerList(connection),
    );
  }

  /**
   * `label`, an exactly-once sink writing to `topic`, writes through this producer: its failures name
   * every such sink, and a failed delivery to `topic` names this one.
   */
  join(label: string, topic: string): void {
    this.sinks.push({ label, topic });
  }

  /**
   * This producer as its failures name it: the sinks that share it and its transactional_id. Its
   * failure is every one of them's, reported by whichever met it first (the first one created, the
   * dead-letter sink, reported them all): the runtime reports it as it is (TributaryError.shared).
   */
  private get named(): string {
    const labels = [...new Set(this.sinks.map((sink) => sink.label))];
    const whose = labels.length === 0 ? '' : labels.length === 1 ? ` of sink ${labels[0]}` : ` shared by sinks ${listed(labels)}`;
    return `the exactly-once producer${whose} (transactional_id '${this.transactionalId}')`;
  }

  /** This producer's failure, as the runtime reports it: named, whichever sink reports it. */
  private failed(message: string, options: { cause?: unknown; handedOver?: boolean } = {}): TributaryError {
    return new TributaryError('TRIB_ERR_SINK', message, { ...options, shared: true });
  }

  /** The brokers could not be reached for `doing` (brokersUnreachable's words, naming this producer). */
  private unreachable(error: unknown, doing: string): never {
    throw this.failed(`${this.named} failed: cannot ${doing}: ${this.brokers.failures.explain(asError(error).message)}`, { cause: error });
  }

  /**
   * The fields of this producer's log lines, besides `shared` (its logger's, {@link logName}): every
   * sink that shares it, not one of them as the `stage` of a sink's logger said (the first one's, which
   * created it, also for a failure met by another).
   */
  private get logged(): { transactionalId: string; sinks: string[] } {
    return { transactionalId: this.transactionalId, sinks: this.sinks.map((sink) => sink.label) };
  }

  /** What this producer's log lines carry as `shared` (PluginContext.sharedLogger) where a sink's carry its `stage`. */
  static logName(transactionalId: string): string {
    return `the exactly-once producer (transactional_id '${transactionalId}')`;
  }

  /** The pipeline's transactions, if an exactly-once sink created them. */
  static find(shared: Map<string, unknown> | undefined): PipelineTransactions | undefined {
    return shared?.get(key) as PipelineTransactions | undefined;
  }

  /**
   * Finds or creates the pipeline's transactional producer with `properties` (from the first sink).
   * Nothing touches the brokers yet (see {@link open}); a property librdkafka rejects throws here.
   */
  static async obtain(
    shared: Map<string, unknown>,
    properties: Record<string, string | number | boolean>,
    logger: Logger,
    connection?: ConnectionConfig,
    /** The pipeline's (PluginContext.signal): aborted when it stops or failed. */
    signal?: AbortSignal,
  ): Promise<PipelineTransactions> {
    const existing = shared.get(key);
    if (existing) return existing as PipelineTransactions;
    const Kafka = await rdkafka();
    const producer = throughLookupLane(new Kafka.Producer({ ...properties, dr_cb: true } as RdKafka.ProducerGlobalConfig, {}));
    const created = new PipelineTransactions(String(properties['transactional.id']), producer, logger, connection, Kafka.features, signal);
    shared.set(key, created);
    return created;
  }

  /**
   * Connects, fences any other producer with this transactional.id (initTransactions) and begins the
   * first transaction. Call only once the pipeline runs (the source's read, a sink's wait for room, a
   * commit), never from a factory or `open()`: only a pipeline that starts may fence the one it
   * replaces, and the runtime opens sinks one by one, so a later one may still fail. Idempotent. A
   * failure rejects with a `TRIB_ERR_SINK` error, also the queued commit's and every later one's.
   */
  open(): Promise<void> {
    if (!this.opening) {
      this.opening = this.start();
      // Observed by whoever needs it (ready(), a commit); the pre-start from the source does not wait.
      this.opening.catch(() => undefined);
    }
    return this.opening;
  }

  /**
   * Connects the producer, once; resolves false when `signal` (the pipeline's stop) came first. It
   * fences nothing: a transactional producer asks for its producer id only in initTransactions
   * ({@link open}), so the exactly-once sinks' open() connects it to look up their topics. A failure
   * rejects with a `TRIB_ERR_SINK` error.
   */
  connect(signal?: AbortSignal): Promise<boolean> {
    this.connecting ??= this.connectProducer(signal);
    return this.connecting;
  }

  private async connectProducer(signal: AbortSignal | undefined): Promise<boolean> {
    this.producer.on('delivery-report', (error, report) => {
      // Only failures are reported (delivery.report.only.error, from the sink's properties). A failed
      // delivery inside a transaction makes the commit fail; remember why (the commit's error does not say).
      if (error && !this.failure) {
        this.failure = deliveryFailure(report?.topic, error);
        this.failedTopic = report?.topic;
      }
    });
    this.producer.on('event.error', (error) => {
      // node-rdkafka says nothing of an error being fatal; librdkafka does, when asked.
      // (After one, every error is its echo.)
      if (this.fatal) return;
      const raised = fatalErrorOf(this.producer);
      if (raised) this.failFatally(raised);
      else this.brokers.observe(error, 'kafka transactional producer error', this.logged);
    });
    this.producer.setPollInterval(50);
    try {
      if (this.connection) this.stopTokens = await provideOauthToken(this.producer, this.connection, this.features, (error) => this.logger.error({ err: error.message }, 'kafka OAUTHBEARER token refresh failed'));
      this.connected = await this.brokers.whileConnecting(connectUnlessStopped(this.producer, { timeoutMs: 30_000, signal }));
    } catch (error) {
      this.unreachable(error, 'connect to the brokers');
    }
    if (this.connected) this.brokers.reachable();
    return this.connected;
  }

  /** Whether the brokers list `topic` (common.ts topicListed), asked through this producer once it is connected. */
  topicListed(topic: string, signal?: AbortSignal): Promise<boolean | undefined> {
    return this.connected ? topicListed(this.producer, topic, { signal }) : Promise.resolve(undefined);
  }

  private async start(): Promise<void> {
    try {
      // Connected by the sinks' open() already, unless they were never opened (tests); no signal then.
      if (!(await this.connect())) throw new Error('stopped while connecting to the brokers');
      await promisify((cb) => this.producer.initTransactions(30_000, cb));
      await this.begin();
      this.opened = true;
    } catch (error) {
      // A bad property failed in obtain(): a config error. This is a runtime one.
      try {
        const raised = fatalErrorOf(this.producer);
        if (raised) throw this.failFatally(raised);
        if (error instanceof TributaryError) throw error;
        this.unreachable(error, 'start transactions');
      } catch (failed) {
        this.endWith(asError(failed));
        throw failed;
      }
    }
  }

  private async begin(): Promise<void> {
    await promisify((cb) => this.producer.beginTransaction(cb));
    const next = this.next;
    if (next) {
      // The writes the queued commit covers form this transaction, sealed at once. (Queued until they
      // are sent: a refused one leaves it to the failure, which rejects it.)
      const covered = this.waiting.splice(0, next.covers);
      for (const record of covered) this.send(record);
      this.next = undefined;
      this.wake();
      this.run(this.seal([...next.offsets.values()].map(({ tp, consumer }) => ({ offsets: [tp], consumer })))).then(next.resolve, next.reject);
      return;
    }
    this.transactionOpen = true;
    const waiting = this.waiting;
    this.waiting = [];
    for (const record of waiting) this.send(record);
    this.wake();
  }

  /**
   * Writes a record's value into the open transaction (or the next one, while a commit is under way).
   * `value` may be a scratch buffer: librdkafka copies it, and a queued record gets its own copy.
   */
  produce(topic: string, value: Buffer, key: string | null): void {
    if (this.fatal) throw this.fatal;
    if (this.aborted) throw this.failedTransaction();
    this.writes++;
    if (!this.transactionOpen) {
      this.waiting.push({ topic, value: Buffer.from(value), key, timestamp: Date.now() });
      return;
    }
    // No record object on this path (one per output) unless it must wait for room.
    const timestamp = Date.now();
    if (this.overflow.length === 0 && this.tryProduce(topic, value, key, timestamp)) return;
    this.keepForRoom({ topic, value: Buffer.from(value), key, timestamp });
  }

  /** A write of the transaction being begun: after any it has no room for. */
  private send(record: TransactionalProduce): void {
    if (this.overflow.length === 0 && this.tryProduce(record.topic, record.value, record.key, record.timestamp)) return;
    this.keepForRoom(record);
  }

  /** Keeps a write librdkafka has no room for (or one behind such), sent as room comes. */
  private keepForRoom(record: TransactionalProduce): void {
    this.overflow.push(record);
    this.overflowTimer ??= setTimeout(() => this.retryOverflow(), 5);
  }

  /** Hands a write to librdkafka; false when its queue is full. Any other refusal throws what to report. */
  private tryProduce(topic: string, value: Buffer, key: string | null, timestamp: number): boolean {
    try {
      this.producer.produce(topic, null, value, key, timestamp);
      return true;
    } catch (error) {
      if (asError(error).code === ErrorCode.QUEUE_FULL) return false;
      const raised = this.fatal ? undefined : fatalErrorOf(this.producer);
      if (raised) throw this.failFatally(raised);
      // After a failed delivery librdkafka refuses every write to the transaction ("Erroneous state"):
      // the delivery's failure, which names the topic and why, is the one to report.
      throw this.failure ?? asError(error);
    }
  }

  /** Sends the overflow as librdkafka makes room (acknowledgements free it without telling this thread: looked at every 5 ms). */
  private retryOverflow(): void {
    clearTimeout(this.overflowTimer);
    this.overflowTimer = undefined;
    // (Not on `closed`: a close waits for the commit under way, which drains the overflow through here.)
    if (this.aborted) return;
    let sent = 0;
    try {
      while (sent < this.overflow.length) {
        const record = this.overflow[sent]!;
        if (!this.tryProduce(record.topic, record.value, record.key, record.timestamp)) break;
        sent++;
      }
    } catch (error) {
      // From a timer: kept for the transaction's commit, which fails on it (and reports it); the
      // records left are that transaction's, which will not commit. (A fatal error is reported already.)
      this.failure ??= asError(error);
      this.overflow = [];
      this.wake();
      return;
    }
    if (sent > 0) this.overflow = this.overflow.slice(sent);
    if (this.overflow.length > 0) this.overflowTimer = setTimeout(() => this.retryOverflow(), 5);
    else this.wake();
  }

  /** Before a commit: every write of the transaction handed to librdkafka (up to `timeoutMs`; `giveUp` as flushProducer's). */
  private async drainOverflow(timeoutMs: number, giveUp: () => Error | undefined): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.overflow.length > 0) {
      this.retryOverflow();
      if (this.fatal ?? this.failure) throw this.fatal ?? this.failure;
      if (this.overflow.length === 0) return;
      const reason = giveUp();
      if (reason) throw reason;
      if (Date.now() >= deadline) throw new Error(`${this.overflow.length} records of the transaction found no room in the producer's queue within ${timeoutMs} ms`);
      // Waits for acknowledgements to make room (flush returns once the queue is empty, or times out).
      await promisify((cb) => this.producer.flush(250, cb)).catch(() => undefined);
    }
  }

  /**
   * Resolves when there is room: a transaction is open, or the queue for the next one is not full.
   * Before the first transaction began, starts the transactions (if the source has not) and waits for
   * them: the writes so far wait in the queue, and a failure to start fails the sinks (rejects).
   */
  ready(): Promise<void> | undefined {
    if (!this.opened) return this.open();
    if (this.aborted) return Promise.reject(this.failedTransaction());
    if (this.hasRoom()) return undefined;
    if (!this.room) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((done, fail) => {
        resolve = done;
        reject = fail;
      });
      this.room = { promise, resolve, reject };
    }
    return this.room.promise;
  }

  /** Writes may go on: none waits for room in librdkafka's queue, and a transaction is open or the next one's queue has room. */
  private hasRoom(): boolean {
    return this.overflow.length === 0 && (this.transactionOpen || this.waiting.length < maxWaiting);
  }

  private wake(): void {
    if (this.room && this.hasRoom()) {
      this.room.resolve();
      this.room = undefined;
    }
  }

  /**
   * The sinks' flush, at the runtime's barrier before it commits: nothing to wait for. Their writes
   * become durable with the transaction that holds them, and the commit after this barrier seals
   * exactly the writes made before it. Waiting here for the brokers' acknowledgements held the whole
   * pipeline at every commit, for at least one of librdkafka's 10 ms flush slices (rd_kafka_flush
   * polls in 10 ms slices, and with failure-only delivery reports nothing wakes it earlier); the
   * commit flushes after the barrier instead. A failed delivery fails that commit (run()), which
   * aborts the transaction and reports it: a flush failing here would fail only this checkpoint, and
   * the next, while the input is quiet, and never abort or report anything.
   */
  async flush(): Promise<void> {
    if (!this.failure || this.aborted) return;
    // A delivery failed because the producer did (fenced): that is the error to report.
    const raised = fatalErrorOf(this.producer);
    if (raised) this.failFatally(raised);
  }

  /**
   * Commits every write made so far together with the consumer's `offsets` (next offsets to read).
   * The open transaction is sealed at once (later writes wait for the next one), so `sealed` is
   * already resolved; `committed` resolves when the brokers committed it. While another commit is
   * under way, this one is queued behind it (merged with any other queued one). On failure the
   * transaction is aborted and `committed` rejects (this one's and every later one's): the pipeline
   * must stop.
   */
  commit(offsets: RdKafka.TopicPartitionOffset[], consumer: RdKafka.KafkaConsumer | undefined): { sealed: Promise<void>; committed: Promise<void> } {
    const sealed = Promise.resolve();
    this.writesCommitted = this.writes;
    const refused = this.aborted;
    if (refused) {
      const failed = Promise.reject(refused);
      failed.catch(() => undefined);
      return { sealed, committed: failed };
    }
    // Another source's ask at the same barrier: into the transaction just sealed, whose offsets are not sent yet.
    const joined = this.sealedCommit;
    if (joined && !joined.sending && joined.writes === this.writes && !this.next) {
      joined.asks.push({ offsets, consumer });
      return { sealed, committed: this.committing };
    }
    if (this.transactionOpen) {
      this.transactionOpen = false;
      this.committing = this.run(this.seal([{ offsets, consumer }]));
      return { sealed, committed: this.committing };
    }
    // Not started yet (a commit before any record, or the source's pre-start still under way): the
    // commit queues, and the first transaction's begin (or its failure) settles it.
    void this.open();
    if (!this.next) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const committed = new Promise<void>((done, fail) => {
        resolve = done;
        reject = fail;
      });
      this.next = { offsets: new Map(), covers: 0, committed, resolve, reject };
      this.committing = committed;
    }
    const next = this.next;
    next.covers = this.waiting.length;
    for (const tp of offsets) {
      const id = `${tp.topic}\u0000${tp.partition}`;
      const known = next.offsets.get(id);
      // At an equal offset the later ask's: its metadata names the later checkpoint, whose outputs this commit holds too.
      if (known === undefined || tp.offset >= known.tp.offset) next.offsets.set(id, { tp, consumer: consumer ?? known?.consumer });
    }
    return { sealed, committed: next.committed };
  }

  /**
   * Writes made since the last commit was asked for: those the next commit holds besides the ones
   * already asked for (a commit queued behind the one under way merges with the next ask).
   */
  writesSinceCommit(): number {
    return this.writes - this.writesCommitted;
  }

  /** A commit sealed now, with these asks (more may join it: SealedCommit). */
  private seal(asks: OffsetsAsk[]): SealedCommit {
    this.sealedCommit = { asks, writes: this.writes, sending: false };
    return this.sealedCommit;
  }

  /** Commits the sealed transaction, then begins the next (which may be a queued commit's, sealed at once). */
  private async run(commit: SealedCommit): Promise<void> {
    try {
      // The records first. Sending the offsets while they were still in flight (commitTransaction
      // flushes them itself) made the p99 bimodal, ~95 or ~250 ms at 5k/s, likely AddOffsetsToTxn
      // answered CONCURRENT_TRANSACTIONS while the previous commit's markers are written, and its
      // 100 ms backoff (the records' AddPartitionsToTxn retries after 20 ms).
      const leaveOpen = (): TributaryError | undefined => (this.leftOpen = this.stoppedInOutage());
      await this.drainOverflow(30_000, leaveOpen);
      await flushProducer(this.producer, 30_000, leaveOpen);
      // A failed delivery's report comes in a later turn than the flush's end (as the sinks' flush waits
      // for it): seen here, it is the failure reported, naming the topic and why, not the commit's error.
      await dispatched();
      if (this.failure) throw this.failure;
      // Each of the two calls below waits out its whole timeout when the brokers are away.
      const outage = leaveOpen();
      if (outage) throw outage;
      if (this.abandoned) throw this.abandoned;
      commit.sending = true;
      if (this.sealedCommit === commit) this.sealedCommit = undefined;
      // Each consumer's offsets with its own group metadata; of one partition asked twice, the later (greater) offset.
      const byConsumer = new Map<RdKafka.KafkaConsumer, Map<string, RdKafka.TopicPartitionOffset>>();
      for (const { offsets, consumer } of commit.asks) {
        if (!consumer) continue;
        const merged = byConsumer.get(consumer) ?? new Map<string, RdKafka.TopicPartitionOffset>();
        byConsumer.set(consumer, merged);
        for (const tp of offsets) {
          const id = `${tp.topic}\u0000${tp.partition}`;
          const known = merged.get(id);
          if (known === undefined || tp.offset >= known.offset) merged.set(id, tp);
        }
      }
      for (const [consumer, merged] of byConsumer) {
        if (merged.size > 0) await promisify((cb) => this.producer.sendOffsetsToTransaction([...merged.values()], consumer, 30_000, cb));
      }
      await promisify((cb) => this.producer.commitTransaction(30_000, cb));
      this.transactions++;
      this.brokers.reachable();
    } catch (error) {
      if (this.sealedCommit === commit) this.sealedCommit = undefined;
      if (error !== undefined && error === this.leftOpen) {
        // A stop in an outage: not aborted (it cannot reach the coordinator); the process ends, and its next start aborts it.
        this.logger.warn({ ...this.logged, err: this.leftOpen.message }, 'kafka transaction left open: the pipeline stops while the brokers are unreachable');
        throw this.endWith(this.leftOpen);
      }
      this.logger.error({ ...this.logged, err: asError(error).message }, 'kafka transaction failed; aborting it');
      // Reported at once, not only at the source's next read: while the input is quiet, or while the
      // pipeline waits for room that only a next transaction would make, that read may never come.
      // Briefly: in a broker outage the abort cannot reach the coordinator either, and waiting for it
      // held the pipeline's restart 30 s; the next incarnation's initTransactions aborts it anyway.
      if (!fatalErrorOf(this.producer)) await promisify((cb) => this.producer.abortTransaction(abortTimeoutMs, cb)).catch(() => undefined);
      // Asked after the abort too: a fenced producer's commit can fail with an error librdkafka takes as
      // abortable (seen under load: EndTxn answered "Unknown broker error" while another producer fenced
      // this one), and only the abort finds it fenced. librdkafka raises that fatal error before the abort
      // returns, but its event.error comes at a later poll, after the source reported the EndTxn error:
      // the fencing is what to report.
      const raised = this.fatal ? undefined : fatalErrorOf(this.producer);
      if (raised) this.failFatally(raised);
      const failure = this.endWith(this.fatal ?? inOutage(handedOverOr(asError(error)), this.brokers.unreachable()));
      if (!this.fatal) this.reportFailure?.(this.failedTransaction());
      throw failure;
    }
    try {
      await this.begin();
    } catch (error) {
      // This transaction committed; nothing commits after it (a later commit, ready() and the pipeline are told).
      this.logger.error({ ...this.logged, err: asError(error).message }, 'kafka transaction could not begin after a commit');
      const raised = this.fatal ? undefined : fatalErrorOf(this.producer);
      if (raised) this.failFatally(raised);
      this.endWith(this.fatal ?? inOutage(asError(error), this.brokers.unreachable()));
      if (!this.fatal) this.reportFailure?.(this.failedTransaction());
    }
  }

  /**
   * The source lost partitions whose records' outputs the open transaction holds (the group expelled
   * this member: its session or max.poll.interval expired): their offsets can never commit with them.
   * Committed without those offsets (a later checkpoint's commit names only the partitions still held,
   * or none, and needs no group's consent then), it let out outputs whose input the partitions' next
   * owner, or the pipeline's restart, reads and writes again (a loaded test run's stall past the
   * session committed 758 duplicates). So no transaction commits from now on: the next commit (or the
   * one under way, if it has not sent its offsets yet) fails with `failure` (marked handed over:
   * inputHandedOver) before it sends offsets or commits, and is aborted and reported as any failed
   * commit is (run()), as Kafka Streams aborts on a lost assignment. Neither aborted nor reported here:
   * in a broker outage (which librdkafka also takes as a lost assignment once the session runs out) an
   * abort made at the loss never called back, and without it the close's disconnect of the producer
   * never returned: the run never restarted. A failed commit's abort, after its flush, does return.
   * (librdkafka 2.12's abort itself returns at its timeout with the broker gone: 5.0 s, "Timed out
   * waiting for operation to finish", and at once, doing nothing, while a commit is under way:
   * "Conflicting commit_transaction API call is already in progress". node-rdkafka runs it on libuv's
   * pool of 4 threads, behind every other blocking client call: with 4 metadata requests of 20 s to the
   * lost broker ahead of it, its callback came after 25 s. So the likely cause was the pool, full of the
   * outage's 5-30 s waits, not a hang in librdkafka; not reproduced with the code that hung. The
   * clients' lookups now go through one lane in the process, LookupLane in common.ts, and hold one thread.)
   */
  abandon(failure: Error): void {
    if (this.aborted || this.abandoned) return;
    this.abandoned = failure;
    this.logger.warn({ ...this.logged, err: failure.message }, 'kafka transaction abandoned: the source lost partitions whose outputs it holds; it will not commit');
  }

  /** Nothing commits after `failure`; a commit asked for before (queued as the next one) fails with it. Returns it. */
  private endWith(failure: Error): Error {
    this.aborted = failure;
    const next = this.next;
    this.next = undefined;
    next?.reject(failure);
    const room = this.room;
    this.room = undefined;
    room?.reject(this.failedTransaction());
    return failure;
  }

  /**
   * What the sinks fail with once nothing commits (`aborted`): a transaction left open or a fatal error
   * in its own words; else this producer's failed transaction, or, where a delivery failed for its
   * topic's own sake (the topic is not there, a batch too large for it, no right to write it), the
   * failure of the sinks writing to that topic, which made it fail.
   */
  private failedTransaction(): Error {
    const aborted = this.aborted!;
    if (aborted === this.leftOpen || aborted === this.fatal) return aborted;
    const delivery = this.failure;
    const first = delivery && delivery !== aborted && !aborted.message.includes(delivery.message) ? `; first: ${delivery.message}` : '';
    const uncommitted = 'the input it covered stays uncommitted, and a restart reads it again';
    const topic = delivery && topicsOwnFault(delivery.cause) ? this.failedTopic : undefined;
    const owners = [...new Set(this.sinks.filter((sink) => sink.topic === topic).map((sink) => sink.label))];
    const message =
      owners.length > 0
        ? `${listed(owners)} failed: ${aborted.message}${first}; so ${this.named} aborted its transaction: ${uncommitted}`
        : `${this.named} failed: its transaction was aborted: ${aborted.message}${first}; ${uncommitted}`;
    return this.failed(message, { cause: aborted });
  }

  /** The pipeline stops (or failed) while the brokers are unreachable: its last transaction is not waited for. */
  private stoppedInOutage(): TributaryError | undefined {
    return this.brokers.stoppedUnreachable(this.signal, this.named, { shared: true });
  }

  /** Whether the producer reaches its brokers (every exactly-once sink's health, /readyz): not ready says it is this producer. */
  health(): SourceHealth {
    // Every sink that shares the producer reports this: said once, naming the producer (SourceHealth.shared).
    if (this.fatal) return { ready: false, detail: this.fatal.message, shared: true };
    const health = this.brokers.health();
    return health.ready ? health : { ready: false, detail: `${this.named}: ${health.detail ?? 'not ready'}`, shared: true };
  }

  /**
   * librdkafka raised a fatal error: the producer can do nothing more. Every later commit and write
   * fails with this error, which names the sinks' producer (reported at once: the pipeline stops,
   * exit 1, and a restart resumes from the last committed transaction).
   */
  private failFatally(raised: Error & { code?: number }): TributaryError {
    if (this.fatal) return this.fatal;
    const hint = fatalHint(raised, { transactionalId: this.transactionalId });
    this.fatal = this.failed(`${this.named} failed: it hit a fatal error and cannot go on: ${raised.message}${hint}`, { cause: raised });
    this.aborted ??= this.fatal;
    this.logger.error({ ...this.logged, err: this.fatal.message }, 'kafka transactional producer failed');
    this.reportFailure?.(this.fatal);
    return this.fatal;
  }

  /**
   * Tells the pipeline of a fatal error as soon as librdkafka raises it, and of a failed transaction as
   * soon as it is aborted (a sink's PluginContext.fail), not at the next commit, write or read, which a
   * quiet input may put off for good. The first sink's is enough: the error names this producer and
   * the sinks that share it, and the runtime reports it so (TributaryError.shared), not as that sink's.
   */
  onFailure(report: (error: Error) => void): void {
    if (this.reportFailure) return;
    this.reportFailure = report;
    if (this.fatal) report(this.fatal);
  }

  /** Resolves when no commit is under way (whatever its outcome). */
  settled(): Promise<void> {
    return this.committing.catch(() => undefined);
  }

  /** Aborts the open transaction (a stop without a final commit) and disconnects. Idempotent; nothing to do if never connected. */
  async close(): Promise<void> {
    if (!this.connecting || this.closed) return;
    this.closed = true;
    clearTimeout(this.overflowTimer);
    await this.connecting.catch(() => false);
    await this.opening?.catch(() => undefined);
    // A commit still under way (after its barrier) finishes first: aborting now would undo it.
    await this.committing.catch(() => undefined);
    const producer = this.producer;
    if (!this.connected) {
      // Never connected (the connect failed, or a stop came first): nothing to abort or disconnect.
      this.stopTokens();
      return;
    }
    // In a broker outage neither the abort nor the records held can reach the brokers: the next
    // start's initTransactions aborts the open transaction (or the brokers, after transaction_timeout).
    const outage = this.stoppedInOutage() !== undefined;
    if (this.transactionOpen) {
      this.transactionOpen = false;
      if (!outage) await promisify((cb) => producer.abortTransaction(10_000, cb)).catch(() => undefined);
    }
    await disconnectProducer(producer, outage ? 0 : 10_000);
    this.stopTokens();
    // A failed transaction is reported by the source's next read; the last one (at the end of the input,
    // or at a stop) has no next read, and the run ended as if its outputs were written (exit 0, though
    // the transaction was aborted and its input stays uncommitted). Its close says so instead.
    if (this.aborted && !this.fatal) throw this.failedTransaction();
  }
}

/** `a`, `a and b`, `a, b, and c`. */
function listed(items: readonly string[]): string {
  return new Intl.ListFormat('en', { type: 'conjunction' }).format(items);
}

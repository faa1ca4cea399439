/**
 * Exactly-once for one pipeline: a single transactional producer shared by every `kafka` sink with
 * `guarantee: exactly-once` in the pipeline, and the `kafka` source whose offsets it commits.
 *
 * How it fits together (as Kafka Streams' exactly_once_v2 does):
 * - The first exactly-once sink creates the pipeline's `PipelineTransactions` (found through
 *   `PluginContext.shared`, so no other pipeline sees it), connects the producer, calls
 *   `initTransactions` (which fences and aborts a previous incarnation's open transaction with the same
 *   `transactional.id`) and begins a transaction. Further exactly-once sinks write through it too, so
 *   every output topic is in the same transaction.
 * - The source (created after the sinks) finds it and, instead of committing offsets to its group,
 *   calls `commit(offsets, consumer)`: flush, `sendOffsetsToTransaction` (with the consumer's group
 *   metadata, so a zombie from an older group generation is fenced: KIP-447), `commitTransaction`,
 *   and begin the next one. The runtime calls the source's `commit` at a barrier, after every sink
 *   flushed, so the transaction holds exactly the outputs of the input up to the offsets it commits.
 * - Only the flush and the sealing of the transaction (no more writes into it) happen at that barrier:
 *   the broker round trips of sendOffsetsToTransaction and commitTransaction run after it, while the
 *   pipeline goes on writing into a bounded queue that opens the next transaction. Holding the
 *   barrier for them would stop the pipeline for most of every short commit interval.
 * - Any transactional error aborts and fails the pipeline: a restart resumes from the last committed
 *   offsets, and readers with isolation.level=read_committed never see the aborted outputs.
 */
import type { Logger } from 'pino';
import type * as RdKafka from 'node-rdkafka';
import { asError, encodeScratch, promisify, provideOauthToken, rdkafka, type ConnectionConfig } from './common.js';

const key = 'kafka:transactions';
/** Most records queued for the next transaction while one commits; beyond it the sinks ask the runtime to wait. */
const maxWaiting = 50_000;

export interface TransactionalProduce {
  topic: string;
  value: Buffer;
  key: string | null;
  timestamp: number;
}

export class PipelineTransactions {
  private producer!: RdKafka.Producer;
  /** Writes that arrived while no transaction was open (during a commit); sent when the next begins. */
  private waiting: TransactionalProduce[] = [];
  private open = false;
  private closed = false;
  private failure: Error | undefined;
  private opened: Promise<void> = Promise.resolve();
  /** Resolved when the next transaction opens (while `waiting` is full). */
  private reopened: Promise<void> = Promise.resolve();
  private reopen: (() => void) | undefined;
  private committing: Promise<void> = Promise.resolve();
  transactions = 0;

  private constructor(
    readonly transactionalId: string,
    private readonly logger: Logger,
  ) {}

  /** The pipeline's transactions, if an exactly-once sink created them. */
  static find(shared: Map<string, unknown> | undefined): PipelineTransactions | undefined {
    return shared?.get(key) as PipelineTransactions | undefined;
  }

  /** Finds or creates the pipeline's transactional producer with `properties` (from the first sink). */
  static async obtain(shared: Map<string, unknown>, properties: Record<string, string | number | boolean>, logger: Logger, connection?: ConnectionConfig): Promise<PipelineTransactions> {
    const existing = shared.get(key);
    if (existing) return existing as PipelineTransactions;
    const created = new PipelineTransactions(String(properties['transactional.id']), logger);
    shared.set(key, created);
    await created.start(properties, connection);
    return created;
  }

  private stopTokens: () => void = () => undefined;

  private async start(properties: Record<string, string | number | boolean>, connection: ConnectionConfig | undefined): Promise<void> {
    const Kafka = await rdkafka();
    this.producer = new Kafka.Producer({ ...properties, dr_cb: true } as RdKafka.ProducerGlobalConfig, {});
    if (connection) this.stopTokens = await provideOauthToken(this.producer, connection, Kafka.features, (error) => this.logger.error({ err: error.message }, 'kafka OAUTHBEARER token refresh failed'));
    this.producer.on('delivery-report', (error) => {
      // Only failures are reported (delivery.report.only.error, from the sink's properties). A failed
      // delivery inside a transaction makes the commit fail; remember why.
      if (error) this.failure ??= asError(error);
    });
    this.producer.on('event.error', (error) => this.logger.warn({ err: asError(error).message }, 'kafka transactional producer error'));
    this.producer.setPollInterval(50);
    await promisify((cb) => this.producer.connect({}, (error) => cb(error)));
    await promisify((cb) => this.producer.initTransactions(30_000, cb));
    await this.begin();
  }

  private async begin(): Promise<void> {
    this.opened = promisify((cb) => this.producer.beginTransaction(cb));
    await this.opened;
    this.open = true;
    const waiting = this.waiting;
    this.waiting = [];
    for (const record of waiting) this.send(record);
    const reopen = this.reopen;
    this.reopen = undefined;
    reopen?.();
  }

  /** No more writes into the open transaction: later ones wait for the next. */
  private seal(): void {
    this.open = false;
    this.reopened = new Promise<void>((resolve) => (this.reopen = resolve));
  }

  /** Writes a JSON value into the open transaction (or the next one, while a commit is under way). */
  produce(topic: string, json: string, key: string | null): void {
    if (!this.open) {
      this.waiting.push({ topic, value: Buffer.from(json), key, timestamp: Date.now() });
      return;
    }
    this.producer.produce(topic, null, encodeScratch(json), key, Date.now());
  }

  private send(record: TransactionalProduce): void {
    this.producer.produce(record.topic, null, record.value, record.key, record.timestamp);
  }

  /** Resolves when there is room: a transaction is open, or the queue for the next one is not full. */
  ready(): Promise<void> | undefined {
    return this.open || this.waiting.length < maxWaiting ? undefined : this.reopened;
  }

  /** Waits until everything produced so far is acknowledged by the brokers (still uncommitted). */
  async flush(): Promise<void> {
    // No wait for queued failure reports here (unlike the idempotent sink): commitTransaction fails
    // by itself if any delivery of the transaction failed, and every event-loop turn between this
    // flush and seal() lets writes into a transaction whose offsets a revocation already took.
    await promisify((cb) => this.producer.flush(30_000, cb));
    if (this.failure) throw this.failure;
  }

  /**
   * Commits the open transaction together with the consumer's `offsets` (next offsets to read), then
   * opens the next. `sealed` resolves once everything written so far is acknowledged and the
   * transaction takes no more writes (the part that needs the runtime's barrier); `committed` when the
   * brokers committed it. On failure the transaction is aborted and both reject: the pipeline must stop.
   */
  commit(offsets: RdKafka.TopicPartitionOffset[], consumer: RdKafka.KafkaConsumer | undefined): { sealed: Promise<void>; committed: Promise<void> } {
    let sealed!: () => void;
    let notSealed!: (error: unknown) => void;
    const sealedPromise = new Promise<void>((resolve, reject) => {
      sealed = resolve;
      notSealed = reject;
    });
    const run = async (): Promise<void> => {
      try {
        await this.flush();
        this.seal();
        sealed();
        if (offsets.length > 0 && consumer) await promisify((cb) => this.producer.sendOffsetsToTransaction(offsets, consumer, 30_000, cb));
        await promisify((cb) => this.producer.commitTransaction(30_000, cb));
        this.transactions++;
      } catch (error) {
        notSealed(error);
        if (this.open) this.seal();
        this.logger.error({ err: asError(error).message }, 'kafka transaction failed; aborting it');
        await promisify((cb) => this.producer.abortTransaction(30_000, cb)).catch(() => undefined);
        throw asError(error);
      }
      await this.begin();
    };
    this.committing = this.committing.then(run, run);
    sealedPromise.catch(() => undefined); // the caller observes `committed` too
    return { sealed: sealedPromise, committed: this.committing };
  }

  /** Resolves when no commit is under way (whatever its outcome). */
  settled(): Promise<void> {
    return this.committing.catch(() => undefined);
  }

  /** Aborts the open transaction (a stop without a final commit) and disconnects. Idempotent. */
  async close(): Promise<void> {
    if (!this.producer || this.closed) return;
    this.closed = true;
    // A commit still under way (after its barrier) finishes first: aborting now would undo it.
    await this.committing.catch(() => undefined);
    const producer = this.producer;
    if (this.open) {
      this.open = false;
      await promisify((cb) => producer.abortTransaction(10_000, cb)).catch(() => undefined);
    }
    await new Promise<void>((done) => producer.disconnect(10_000, () => done()));
    this.stopTokens();
  }
}

/**
 * A model held by a worker thread, used like one of this thread's. For the webgpu backend, which in
 * Node reads results back only asynchronously while the model operators score their micro-batches
 * synchronously: a prediction blocks this thread until the worker has it (Atomics.wait on a shared
 * flag, then the answer taken off the port with receiveMessageOnPort), as a synchronous read of a
 * GPU backend blocks anyway; a learning step is sent and not waited for, so the worker and its device
 * learn while this thread goes on with the next records. A step that fails there ends the worker (the
 * model is short of it from then on), reported at once to the model's `onFailure`, not at the next request.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { Batch, Model, ModelConfig, ModelKind, ModelState } from './model.js';
import type { ModelAnswer, ModelRequest, ModelWorkerData, WorkerBackend } from './model-worker.js';
import type { OptimizerConfig } from './params.js';

/** How long a request may wait for its answer: the first ones compile the device's kernels. */
const ANSWER_TIMEOUT_MS = 120_000;

/** A typed array that owns its buffer whole: posting a view would copy the whole buffer it views. */
function own<T extends Float32Array | Int32Array>(array: T): T {
  return array.byteOffset === 0 && array.byteLength === array.buffer.byteLength ? array : (array.slice() as T);
}

function ownBatch(batch: Batch): Batch {
  const n = batch.n;
  const copy: Batch = { n, d: batch.d };
  if (batch.x) copy.x = own(batch.x.subarray(0, n * batch.d));
  if (batch.x1) copy.x1 = own(batch.x1.subarray(0, n * (batch.d + 1)));
  if (batch.seq) {
    const { length, types, categories, steps } = batch.seq;
    copy.seq = { length, types: own(types), categories: own(categories), steps: own(steps) };
  }
  return copy;
}

export class RemoteModel implements Model {
  readonly kind: ModelKind;
  readonly optimizer: { learningRate: number; reset(): void };
  /** What the worker opened, e.g. `webgpu (nvidia ... NVIDIA H200)`. */
  readonly opened: string;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private learningRate: number;
  private disposed = false;
  private lastId = 0;
  /** How the worker ended, once it has (seen between requests): later requests fail at once. */
  private exited: string | undefined;
  /** onFailure was told. */
  private reported = false;

  constructor(
    readonly inputs: number,
    config: ModelConfig,
    optimizerConfig: OptimizerConfig,
    backend: WorkerBackend,
    /**
     * Told once that the model cannot go on: its worker ended (a device lost, a learning step or learning
     * rate nothing waited for failed) or did not answer in time. A request that throws while a record is
     * handled only dead-letters that record, and one sent unanswered throws nothing: the caller fails its run here.
     */
    private readonly onFailure?: (error: Error) => void,
  ) {
    this.kind = config.kind;
    this.learningRate = optimizerConfig.learning_rate;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const workerData: ModelWorkerData = { port: port2, flag: this.flag.buffer as SharedArrayBuffer, backend, inputs, config, optimizer: optimizerConfig };
    this.worker = new Worker(new URL('./model-worker.js', import.meta.url), { workerData, transferList: [port2] });
    // Neither keeps the process alive: a pipeline that ends without disposing (a failure) still exits.
    this.worker.unref();
    this.port.unref();
    this.worker.on('error', (error) => this.ended(`failed: ${error.message}`));
    this.worker.on('exit', (code) => {
      if (this.disposed) return;
      // The worker posts why before it ends (model-worker.ts): the reason, not just the exit code.
      let fatal: string | undefined;
      for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) fatal ??= (m.message as ModelAnswer).fatal;
      this.ended(fatal !== undefined ? `failed: ${fatal}` : `exited (code ${code})`);
    });
    const model = this;
    this.optimizer = {
      get learningRate(): number {
        return model.learningRate;
      },
      set learningRate(value: number) {
        model.learningRate = value;
        model.request({ op: 'learningRate', answer: false, value });
      },
      reset(): void {
        model.request({ op: 'reset', answer: false });
      },
    };
    this.opened = this.request({ op: 'open', answer: true }) as string;
  }

  predictProbaMany(batch: Batch): Float32Array {
    if (batch.n === 0) return new Float32Array(0);
    return this.request({ op: 'predict', answer: true, batch: ownBatch(batch) }) as Float32Array;
  }

  learnMany(batch: Batch, labels: Float32Array): void {
    if (batch.n === 0) return;
    this.request({ op: 'learn', answer: false, batch: ownBatch(batch), labels: own(labels.subarray(0, batch.n)) });
  }

  state(): ModelState {
    return this.request({ op: 'state', answer: true }) as ModelState;
  }

  load(state: ModelState): void {
    this.learningRate = this.request({ op: 'load', answer: true, state }) as number;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    try {
      if (this.exited === undefined) this.request({ op: 'dispose', answer: true });
    } finally {
      void this.worker.terminate();
      this.port.close();
    }
  }

  private ended(how: string): void {
    this.exited ??= how;
    this.report(new Error(`the ${this.kind} model's worker ${this.exited}`));
  }

  private report(error: Error): void {
    if (this.disposed || this.reported) return;
    this.reported = true;
    this.onFailure?.(error);
  }

  /** Sends a request; for one that is answered, blocks until the worker answers and returns its value. */
  private request(request: ModelRequest): unknown {
    if (this.exited !== undefined) throw new Error(`the ${this.kind} model's worker ${this.exited}`);
    if (!request.answer) {
      this.port.postMessage(request);
      return undefined;
    }
    const id = ++this.lastId;
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage({ ...request, id });
    for (;;) {
      const answer = receiveMessageOnPort(this.port)?.message as ModelAnswer | undefined;
      if (answer === undefined) {
        // The worker posts an answer before it raises the flag: once raised, the answer is there to take.
        if (Atomics.wait(this.flag, 0, 0, ANSWER_TIMEOUT_MS) === 'timed-out') {
          const error = new Error(`the ${this.kind} model's worker did not answer '${request.op}' in ${ANSWER_TIMEOUT_MS / 1000} s`);
          this.report(error);
          throw error;
        }
        Atomics.store(this.flag, 0, 0);
        continue;
      }
      if (answer.fatal !== undefined) {
        this.ended(`failed: ${answer.fatal}`);
        throw new Error(`the ${this.kind} model's worker ${this.exited}`);
      }
      // An answer to an earlier request that gave up waiting is not this one's.
      if (answer.id !== id) continue;
      if (answer.error !== undefined) throw new Error(`the ${this.kind} model's worker: ${answer.error}`);
      return answer.value;
    }
  }
}

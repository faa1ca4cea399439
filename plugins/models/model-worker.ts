/**
 * The worker thread that holds one model for a {@link RemoteModel} (remote.ts): it opens its backend,
 * builds the model, and answers the requests of its port one at a time, in order. A request that
 * waits for an answer (`answer: true`) gets one message back, then the shared flag is raised for the
 * caller blocked on it; the others (learning steps, a learning rate) get none, and a failure of one of
 * them ends the worker (the model is short of that step from then on), as a device's failure does.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { loadTf, openBackend } from './backend.js';
import type { Batch, ModelConfig, ModelState, OnlineModel } from './model.js';
import { createModel } from './models.js';
import type { OptimizerConfig } from './params.js';
import { useWebgpu } from './webgpu.js';

/** A backend a worker-held model runs on: webgpu, or (tests, comparisons) one of the host's. */
export type WorkerBackend = 'webgpu' | 'wasm' | 'cpu';

export interface ModelWorkerData {
  port: MessagePort;
  /** One Int32 the worker sets to 1 once an answer is posted. */
  flag: SharedArrayBuffer;
  backend: WorkerBackend;
  inputs: number;
  config: ModelConfig;
  optimizer: OptimizerConfig;
}

/** What a caller sends; `id` (set by the caller) on those answered, echoed in the answer. */
export type ModelRequest = { id?: number } & (
  | { op: 'open'; answer: true }
  | { op: 'predict'; answer: true; batch: Batch }
  | { op: 'learn'; answer: false; batch: Batch; labels: Float32Array }
  | { op: 'learningRate'; answer: false; value: number }
  | { op: 'reset'; answer: false }
  | { op: 'state'; answer: true }
  | { op: 'load'; answer: true; state: ModelState }
  | { op: 'dispose'; answer: true }
);

export interface ModelAnswer {
  id?: number;
  value?: unknown;
  error?: string;
  /** The worker is failing as a whole (an error outside any request: a device lost): no more answers. */
  fatal?: string;
}

const data = workerData as ModelWorkerData;
const flag = new Int32Array(data.flag);
let model: OnlineModel | undefined;
let opening: Promise<string> | undefined;

async function open(): Promise<string> {
  await loadTf();
  let adapter = data.backend;
  if (data.backend === 'webgpu') adapter += ` (${await useWebgpu()})`;
  else await openBackend(data.backend);
  model = createModel(data.inputs, data.config, data.optimizer);
  return adapter;
}

async function handle(request: ModelRequest): Promise<unknown> {
  opening ??= open();
  const adapter = await opening;
  const m = model!;
  switch (request.op) {
    case 'open':
      return adapter;
    case 'predict':
      // The one read this backend has in Node (webgpu's synchronous read needs an OffscreenCanvas).
      return await m.predictProbaManyAsync(request.batch);
    case 'learn':
      return m.learnMany(request.batch, request.labels);
    case 'learningRate':
      m.optimizer.learningRate = request.value;
      return undefined;
    case 'reset':
      return m.optimizer.reset();
    case 'state':
      return await m.stateAsync();
    case 'load':
      m.load(request.state);
      return m.optimizer.learningRate;
    case 'dispose':
      m.dispose();
      return undefined;
  }
}

function answer(message: ModelAnswer): void {
  data.port.postMessage(message);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

/**
 * Ends this worker, saying why: a caller blocked waiting reads it at once (not at its timeout); one that
 * is not sees the worker's exit between requests (RemoteModel reads the reason then) and fails its run.
 */
function end(fatal: string): never {
  answer({ fatal });
  process.exit(1);
}

// One request at a time, in the order they came: a step's kernels are all queued before the next read.
let queue: Promise<void> = Promise.resolve();
data.port.on('message', (request: ModelRequest) => {
  queue = queue.then(async () => {
    try {
      const value = await handle(request);
      if (request.answer) answer({ id: request.id, value });
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      if (request.answer) answer({ id: request.id, error: message });
      // Nothing waits for it (a learning step, a learning rate): the model is short of it from now on, so the
      // caller must hear of it now, not at its next answered request (and a request's error fails no run).
      else end(`'${request.op}' failed: ${message}`);
    }
  });
});

// An error outside any request (a callback of the device's: lost, out of memory) ends this worker: the
// caller, perhaps blocked waiting, is told at once instead of at its timeout.
process.on('uncaughtException', (error) => end(error.message ?? String(error)));

/**
 * TensorFlow.js backend selection. `auto` tries tfjs-node-gpu (CUDA), tfjs-node, WASM, then the plain
 * JS backend, and says why each one it skipped was not taken. The backend is process-wide in TF.js,
 * so the first model operator to open picks it; a later one asking for another is told so (warned),
 * not silently switched. `webgpu` is only taken when asked for: its models live in worker threads
 * (remote.ts), and at the default micro-batch it is slower than wasm (BENCHMARKS.md, backends).
 */
import type * as TF from '@tensorflow/tfjs';
import type { Logger } from 'pino';
import type { WorkerBackend } from './model-worker.js';
import type { BackendChoice } from './settings.js';

/**
 * TF.js, once {@link loadTf} (or {@link useBackend}) has run. Loaded lazily: importing it costs
 * about a second, which every CLI command (`validate` included) and every pipeline without a model
 * would pay if this module imported it at its top. An ES module binding, so importers see it set.
 */
export let tf: typeof TF = undefined as unknown as typeof TF;
let loading: Promise<typeof TF> | undefined;

/** Imports TF.js (once per process). */
export async function loadTf(): Promise<typeof TF> {
  loading ??= import('@tensorflow/tfjs').then((module) => (tf = module));
  return loading;
}

export type { BackendChoice } from './settings.js';
export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface BackendSelection {
  /** The backend in use. */
  backend: BackendName;
  /** TF.js's own name of it (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  tfName: string;
  /** Why each backend tried before it was not taken. */
  skipped: { backend: BackendName; reason: string }[];
}

const order: BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
let selected: Promise<BackendSelection> | undefined;
let selectedFor: BackendChoice | undefined;
let inWorkers: WorkerBackend | undefined;

/** The backend that models of this process run on in worker threads (remote.ts), if they do. */
export const modelsInWorkers = (): WorkerBackend | undefined => inWorkers;

/**
 * Tests and benches: models made from now on run in worker threads on `backend`, as webgpu's do, but
 * on a backend any machine has (the worker path checked against the same models in this thread).
 */
export function runModelsInWorkers(backend: WorkerBackend | undefined): void {
  inWorkers = backend;
}

async function importOptional(specifier: string): Promise<void> {
  // A variable specifier keeps tsc from requiring the optional package's types at build time.
  await import(specifier);
}

/** The optional packages a backend imports, where it needs any (the others are dependencies): imported by these names, and named to install. */
export const optionalPackages = {
  'tensorflow-gpu': ['@tensorflow/tfjs-node-gpu'],
  tensorflow: ['@tensorflow/tfjs-node'],
  webgpu: ['webgpu', '@tensorflow/tfjs-backend-webgpu'],
} as const satisfies Partial<Record<BackendName, readonly string[]>>;

/**
 * The optional packages a backend named in the config needs that are not installed, resolved as its
 * import resolves them (none for `auto`, which skips a backend whose package is missing). Asked by the
 * models' factories, so a named backend that cannot load is a config error at its field (exit 2), not
 * a failure as the stage opens (exit 1, and restarts that meet it alike).
 */
export function missingPackages(choice: BackendChoice): string[] {
  if (choice === 'auto') return [];
  return ((optionalPackages as Partial<Record<BackendChoice, readonly string[]>>)[choice] ?? []).filter((specifier) => {
    try {
      import.meta.resolve(specifier);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
    }
  });
}

/** A package an import did not find (an optional one, not installed). */
export const isMissingPackage = (error: unknown): boolean => /Cannot find (module|package)/i.test((error as Error | undefined)?.message ?? String(error));

/**
 * Makes `name` this thread's TF.js backend (webgpu's models open theirs in their workers: useWebgpu in
 * webgpu.ts); returns TF.js's name of it. Throws if its package is missing or it does not initialise.
 */
export async function openBackend(name: Exclude<BackendName, 'webgpu'>): Promise<string> {
  switch (name) {
    case 'tensorflow-gpu':
      await importOptional(optionalPackages['tensorflow-gpu'][0]);
      if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend did not initialise');
      return 'tensorflow';
    case 'tensorflow':
      await importOptional(optionalPackages.tensorflow[0]);
      if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend did not initialise');
      return 'tensorflow';
    case 'wasm':
      await import('@tensorflow/tfjs-backend-wasm');
      if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
      return 'wasm';
    case 'cpu': {
      // The cpu backend prints an advert for tfjs-node on first use; the selection log says it better.
      const warn = console.warn;
      console.warn = () => undefined;
      try {
        if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend did not initialise');
        tf.tensor([0]).dispose();
      } finally {
        console.warn = warn;
      }
      return 'cpu';
    }
  }
}

async function tryBackend(name: BackendName): Promise<string> {
  if (name !== 'webgpu') return openBackend(name);
  // The models' own device is opened in their workers; this finds the GPU (and the packages) at the
  // start, so a machine without one is told so here, and this thread, which does no model arithmetic,
  // stays on the plain JS backend.
  const { openDawn, webgpuPackages } = await import('./webgpu.js');
  try {
    await openDawn();
    await importOptional(optionalPackages.webgpu[1]);
  } catch (error) {
    if (isMissingPackage(error)) throw new Error(`not installed (npm install ${webgpuPackages})`);
    throw error;
  }
  await openBackend('cpu');
  inWorkers = 'webgpu';
  return 'webgpu';
}

/** Why a backend was not taken, in a line. */
export function skipReason(error: unknown): string {
  if (isMissingPackage(error)) return 'not installed (optional dependency)';
  return ((error as Error | undefined)?.message ?? String(error)).split('\n')[0]!.slice(0, 200);
}

async function select(choice: BackendChoice): Promise<BackendSelection> {
  await loadTf();
  const candidates = choice === 'auto' ? order : [choice];
  const skipped: BackendSelection['skipped'] = [];
  for (const backend of candidates) {
    try {
      const tfName = await tryBackend(backend);
      // The GPU build registers `tensorflow` too; only a visible CUDA device makes it a GPU backend.
      return { backend, tfName, skipped };
    } catch (error) {
      skipped.push({ backend, reason: skipReason(error) });
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialised: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`);
}

/**
 * Bytes the backend holds outside the V8 heap and the ArrayBuffers: the wasm backend's linear memory
 * (a WebAssembly.Memory grows and never shrinks, so this is its high-water mark), or the tensors in
 * tfjs-node's native memory. NaN on the cpu backend (its tensors are ArrayBuffers) and in worker threads.
 */
export function backendMemoryBytes(): number {
  if (tf === undefined) return Number.NaN;
  switch (tf.getBackend()) {
    case 'wasm':
      return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer.byteLength;
    case 'tensorflow':
      return tf.memory().numBytes;
    default:
      return Number.NaN;
  }
}

/** Selects the backend once per process; later calls get the same selection. */
export async function useBackend(choice: BackendChoice, logger: Logger): Promise<BackendSelection> {
  if (!selected) {
    selectedFor = choice;
    selected = select(choice);
    const selection = await selected;
    logger.info({ backend: selection.backend, skipped: selection.skipped }, `TensorFlow.js backend: ${selection.backend}` + (selection.skipped.length ? ` (${selection.skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')})` : ''));
    return selection;
  }
  const selection = await selected;
  if (choice !== 'auto' && choice !== selection.backend && choice !== selectedFor) {
    logger.warn({ requested: choice, backend: selection.backend }, `backend ${choice} requested, but TensorFlow.js already runs on ${selection.backend} in this process (one backend per process)`);
  }
  return selection;
}


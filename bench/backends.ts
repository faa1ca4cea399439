/**
 * Backend bench: `node --expose-gc dist/bench/backends.js [EVENTS] [--write]`.
 * Learn + predict throughput of the three model kinds on each TensorFlow.js backend this machine
 * offers, at micro-batches of 256 to 16,384: `webgpu` (a GPU through Dawn: the `webgpu` and
 * `@tensorflow/tfjs-backend-webgpu` packages, not dependencies of Tributary, where installed and an
 * adapter is found: plugins/models/webgpu.ts), `wasm` and `cpu`; `tensorflow-gpu` and `tensorflow` where their packages load.
 * Scores are read back asynchronously (predictProbaManyAsync), the only way the webgpu backend reads
 * in Node. Also: whether every backend's model computes what wasm's does (the largest score
 * difference after the same steps), and that no step leaves tensors behind.
 * Prints the `backends` section of BENCHMARKS.md; `--write` records it there.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTf, openBackend, skipReason, tf } from '../plugins/models/backend.js';
import { resolveConfig } from '../plugins/models/config.js';
import { stepFeatures } from '../plugins/models/gru.js';
import type { Batch, ModelKind, OnlineModel } from '../plugins/models/model.js';
import { createModel } from '../plugins/models/models.js';
import { rng } from '../plugins/models/testdata.js';
import { useWebgpu } from '../plugins/models/webgpu.js';
import { demoFeatureVectors, writeSyntheticEvents } from './data.js';
import { commandLine, machine, median, positionalArgs, publishSection } from './machine.js';

const events = Number(positionalArgs()[0] ?? 100_000);
const loadAtStart = loadavg()[0]!;
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-backends-'));
const n = (x: number): string => Math.round(x).toLocaleString('en-US');
const sizes = [256, 1024, 4096, 16_384];
const kinds: ModelKind[] = ['logistic', 'mlp', 'gru'];

await loadTf();

// Each backend registered once, in this order; TF.js moves a tensor between them when one is used on another.
const available: { name: string; tfName: string; what: string }[] = [];
const unavailable: { name: string; reason: string }[] = [];
for (const [name, open, what] of [
  ['tensorflow-gpu', () => openBackend('tensorflow-gpu'), 'TensorFlow C library, CUDA'],
  ['tensorflow', () => openBackend('tensorflow'), 'TensorFlow C library'],
  ['webgpu', useWebgpu, ''],
  ['wasm', () => openBackend('wasm'), 'WebAssembly (XNNPACK)'],
  ['cpu', () => openBackend('cpu'), 'plain JS'],
] as const) {
  // tfjs-node-gpu and tfjs-node register the same backend name: the first that loads is the one.
  if (name === 'tensorflow' && available.some((b) => b.name === 'tensorflow-gpu')) continue;
  try {
    const opened = await open();
    available.push({ name, tfName: name === 'webgpu' ? 'webgpu' : opened, what: what || opened });
  } catch (error) {
    unavailable.push({ name, reason: skipReason(error) });
  }
}
console.log(`backends: ${available.map((b) => `${b.name} (${b.what})`).join(', ')}; not available: ${unavailable.map((u) => `${u.name}: ${u.reason}`).join('; ') || 'none'}`);

// Inputs: the demo's real feature vectors; for gru, seeded event sequences of the model's shape.
const eventsFile = join(dir, 'events.jsonl');
await writeSyntheticEvents(eventsFile, events, 2000, 7);
const { d, X, Y } = await demoFeatureVectors({ type: 'file', path: eventsFile, mapping: { time_format: 'epoch_ms' } }, dir, 50_000);
const rows = Y.length;
const largest = sizes[sizes.length - 1]!;
if (rows < largest) throw new Error(`${rows} feature vectors, fewer than the largest batch (${largest}): pass more events`);
const gruConfig = resolveConfig({ model: { kind: 'gru' } }, 'gru').model;
const L = gruConfig.sequence_length;
const random = rng(12_345);
const types = new Int32Array(rows * L);
const categories = new Int32Array(rows * L);
const steps = new Float32Array(rows * L * stepFeatures);
for (let i = 0; i < rows; i++) {
  // Sessions of 1 to L events so far, left-padded with zeros as the pipeline pads them.
  for (let t = L - 1 - (i % L); t < L; t++) {
    types[i * L + t] = 1 + Math.floor(random() * 5);
    categories[i * L + t] = 1 + Math.floor(random() * gruConfig.category_buckets);
    for (let k = 0; k < stepFeatures; k++) steps[(i * L + t) * stepFeatures + k] = random() * 4 - 2;
  }
}

/** Batch `index` of `size` rows (rows taken in order, wrapping round). */
function batchAt(kind: ModelKind, size: number, index: number): { batch: Batch; labels: Float32Array } {
  const first = (index * size) % (rows - size + 1);
  const batch: Batch = { n: size, d, x: X.subarray(first * d, (first + size) * d) };
  if (kind === 'gru') {
    batch.seq = {
      length: L,
      types: types.subarray(first * L, (first + size) * L),
      categories: categories.subarray(first * L, (first + size) * L),
      steps: steps.subarray(first * L * stepFeatures, (first + size) * L * stepFeatures),
    };
  }
  return { batch, labels: Y.subarray(first, first + size) };
}

function newModel(kind: ModelKind): OnlineModel {
  const config = resolveConfig({ model: { kind } }, kind);
  return createModel(d, config.model, config.optimizer);
}

/** One step as the pipeline takes it: predict the batch (read back), then learn from it. */
async function step(model: OnlineModel, kind: ModelKind, size: number, index: number): Promise<void> {
  const { batch, labels } = batchAt(kind, size, index);
  await model.predictProbaManyAsync(batch);
  model.learnMany(batch, labels);
}

// Samples per measured pass: enough batches for the smaller sizes; gru is ~20x dearer per sample.
const passSamples = (kind: ModelKind, size: number): number => Math.max(size, kind === 'gru' ? 4096 : 32_768);

interface Cell {
  samplesPerS: number;
  passes: number;
  leakedTensors: number;
}
const cells = new Map<string, Cell>();
const key = (backend: string, kind: ModelKind, size: number): string => `${backend}/${kind}/${size}`;

// Backends interleaved per cell, their order reversed from one cell to the next: a drift of the
// machine over the run (clocks, other tenants) then falls on every backend alike.
let cellIndex = 0;
for (const kind of kinds) {
  for (const size of sizes) {
    const order = cellIndex++ % 2 === 0 ? available : [...available].reverse();
    for (const backend of order) {
      // The cpu backend's gru is minutes per pass at these sizes, and no pipeline would choose it.
      if (backend.name === 'cpu' && kind === 'gru') continue;
      await tf.setBackend(backend.tfName);
      global.gc?.();
      const tensorsBefore = tf.memory().numTensors;
      const model = newModel(kind);
      const batches = passSamples(kind, size) / size;
      const passMs: number[] = [];
      // One unmeasured pass (kernels compiled, shaders built, memory taken), then passes until three
      // are measured or five seconds have been spent measuring.
      for (let pass = 0; pass < 4 && (pass < 2 || passMs.reduce((a, b) => a + b, 0) < 5000); pass++) {
        const start = performance.now();
        for (let b = 0; b < batches; b++) await step(model, kind, size, pass * batches + b);
        if (pass > 0) passMs.push(performance.now() - start);
      }
      model.dispose();
      const cell = { samplesPerS: passSamples(kind, size) / (median(passMs) / 1000), passes: passMs.length, leakedTensors: tf.memory().numTensors - tensorsBefore };
      cells.set(key(backend.name, kind, size), cell);
      console.log(`${backend.name} ${kind} batch ${size}: ${n(cell.samplesPerS)} samples/s (${cell.passes} passes: ${passMs.map((ms) => Math.round(ms)).join(', ')} ms), tensors left ${cell.leakedTensors}`);
    }
  }
}

// Agreement: the same model (same seed) takes the same 20 steps on each backend, then scores one batch.
const agreement: string[] = [];
for (const kind of kinds) {
  const scores = new Map<string, Float32Array>();
  for (const backend of available) {
    if (backend.name === 'cpu' && kind === 'gru') continue;
    await tf.setBackend(backend.tfName);
    const model = newModel(kind);
    for (let b = 1; b <= 20; b++) await step(model, kind, 256, b);
    scores.set(backend.name, await model.predictProbaManyAsync(batchAt(kind, 256, 0).batch));
    model.dispose();
  }
  const reference = scores.get('wasm')!;
  for (const [name, values] of scores) {
    if (name === 'wasm') continue;
    let worst = 0;
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i]! - reference[i]!));
    agreement.push(`${kind} ${name}: ${worst.toExponential(1)}`);
  }
}

function gpuName(): string | undefined {
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return undefined;
  }
}

const names = available.map((b) => b.name);
const gpuBackend = available.find((b) => b.name === 'webgpu' || b.name === 'tensorflow-gpu')?.name;
const header = `| model | batch | ${names.map((b) => `${b} samples/s`).join(' | ')} |${gpuBackend ? ` ${gpuBackend} ÷ best other |` : ''}`;
const rule = `|---|---|${names.map(() => '---|').join('')}${gpuBackend ? '---|' : ''}`;
const table = kinds.flatMap((kind) =>
  sizes.map((size) => {
    const figures = names.map((b) => cells.get(key(b, kind, size))?.samplesPerS);
    const others = names.filter((b) => b !== gpuBackend).map((b) => cells.get(key(b, kind, size))?.samplesPerS ?? 0);
    const gpu = gpuBackend ? cells.get(key(gpuBackend, kind, size))?.samplesPerS : undefined;
    const ratio = gpu !== undefined ? ` ${(gpu / Math.max(...others)).toFixed(2)} |` : gpuBackend ? ' - |' : '';
    return `| ${kind} | ${n(size)} | ${figures.map((f) => (f === undefined ? '-' : n(f))).join(' | ')} |${ratio}`;
  }),
);
const leaks = [...cells.entries()].filter(([, c]) => c.leakedTensors !== 0).map(([k, c]) => `${k}: ${c.leakedTensors}`);
const gpu = gpuName();

const markdown = `## Backends

\`${commandLine()}\` — learn + predict throughput of each model kind on each TensorFlow.js backend found, at micro-batch sizes 256 to 16,384: per step the model predicts the batch (scores read back asynchronously) and learns from it (Adam), as the pipeline's model operators do per micro-batch; ${d} real features from the demo pipeline, gru with seeded sequences of ${L} events; backends interleaved cell by cell (their order reversed from one cell to the next); median of up to 3 passes after an unmeasured one (${n(passSamples('logistic', 256))} samples a pass, gru ${n(passSamples('gru', 256))}, or one batch where that is larger).

Backends: ${available.map((b) => `**${b.name}** (${b.what})`).join(', ')}. Not available: ${unavailable.map((u) => `${u.name} (${u.reason})`).join(', ') || 'none'}.${gpu ? ` GPU (nvidia-smi): ${gpu}.` : ''}

${header}
${rule}
${table.join('\n')}

Same model, same 20 steps, then one batch scored: largest score difference from wasm: ${agreement.join('; ') || '(only one backend)'}. Tensors left behind by a model's passes: ${leaks.length === 0 ? 'none on any backend' : leaks.join(', ')}.

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start of the run, ${loadavg()[0]!.toFixed(1)} at the end. Measured ${new Date().toISOString().slice(0, 10)}.`;
publishSection('backends', markdown);

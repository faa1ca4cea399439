/**
 * How long the model stages' snapshot and restore hold the event loop: `n` open intent sessions
 * (one event each, awaiting their session's label) and `n` churn users (one closed session each,
 * awaiting the horizon). The checkpoint as the runtime takes it: snapshot() at its instant, then a
 * plain value stringified at once, or a promise awaited and its value stringified in parts
 * (stringifyInParts); the restore as at start: JSON.parse of the text, then restore(). For each, the
 * longest the event loop went without turning (as a 1 ms timer sees it, in wall and CPU time) and
 * the whole time and CPU time (the process's: its GC threads too), and the parse's (a snapshot format
 * moves work, and garbage, between the parse and restore()). Three rounds each. With --expose-gc, a
 * full collection before each measured step, so the garbage of the steps before it (the bench's
 * heap: ~700 MB by the last round) is not collected, and counted, within it.
 *
 *   node --max-old-space-size=8192 [--expose-gc] dist/bench/model-snapshots.js [n=100000]
 */
import { runOperator, testContext } from 'tributary/testing';
import { stringifyInParts } from '../core/runtime/parts.js';
import intentModel, { type IntentModelConfig } from '../plugins/models/intent.js';
import churnModel from '../plugins/models/churn.js';
import { event, summary } from '../plugins/models/testdata.js';
import { watchLoop } from './machine.js';

const n = Number(process.argv[2] ?? 100_000);
const t0 = Date.UTC(2024, 0, 1);
const config: IntentModelConfig = { backend: 'cpu', batch: { max_size: 256, max_delay: 0 } };
const intentInput = Array.from({ length: n }, (_, s) => event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]));
const churnInput = Array.from({ length: n }, (_, s) => [event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]), summary(`u${s}`, `s${s}`, t0 + s, t0 + s + 60_000, 1, false)]).flat();

/** CPU time of the process so far (ms): unlike wall time, not stretched while other processes hold the cores. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> => typeof (value as { then?: unknown } | null)?.then === 'function';

for (const [name, plugin, input] of [
  ['intent', intentModel, intentInput],
  ['churn', churnModel, churnInput],
] as const) {
  const { operator } = await runOperator(plugin, config, input);
  for (let round = 0; round < 3; round++) {
    let bytes = 0;
    let callMs = 0;
    globalThis.gc?.();
    // As the runtime's takeSnapshots and serialiseBody do.
    const checkpoint = await watchLoop(async () => {
      const called = performance.now();
      const taken = operator.snapshot!();
      callMs = performance.now() - called;
      const pieces = isPromiseLike(taken) ? await stringifyInParts(await taken) : [Buffer.from(JSON.stringify(taken))];
      for (const piece of pieces) bytes += piece.length;
    });
    const text = JSON.stringify(await operator.snapshot!());
    globalThis.gc?.();
    const parseStarted = performance.now();
    const parseStartedCpu = cpuMs();
    const parsed = JSON.parse(text) as unknown;
    const parseMs = performance.now() - parseStarted;
    const parseCpuMs = cpuMs() - parseStartedCpu;
    const fresh = await plugin.create({ ...config }, testContext());
    await fresh.open?.();
    globalThis.gc?.();
    const restore = await watchLoop(async () => fresh.restore!(parsed));
    await fresh.close?.();
    console.log(
      JSON.stringify({
        name,
        n,
        mib: +(bytes / 2 ** 20).toFixed(1),
        snapshotCallMs: Math.round(callMs),
        checkpointLongestBlockMs: Math.round(checkpoint.longestMs),
        checkpointLongestBlockCpuMs: Math.round(checkpoint.heaviestCpuMs),
        checkpointWholeMs: Math.round(checkpoint.ms),
        checkpointCpuMs: Math.round(checkpoint.cpuMs),
        parseMs: Math.round(parseMs),
        parseCpuMs: Math.round(parseCpuMs),
        restoreLongestBlockMs: Math.round(restore.longestMs),
        restoreLongestBlockCpuMs: Math.round(restore.heaviestCpuMs),
        restoreWholeMs: Math.round(restore.ms),
        restoreCpuMs: Math.round(restore.cpuMs),
      }),
    );
  }
}
process.exit(0); // the models' backends keep handles open

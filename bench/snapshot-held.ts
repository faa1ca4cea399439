/**
 * How long a checkpoint holds the sources for each large stage's snapshot: `n` users' state in
 * user-features (max_users n/2, so slots are reused and the rows gathered), churn (one closed session
 * and one prediction awaiting its label per user), intent (one prediction awaiting its session's
 * label per user) and intent-scored (n sessions closed, their labels scored: the prequential metrics'
 * bins filled, every distinct score kept by exact_auc_limit n), built with the stages' own code. Each round calls snapshot() as the runtime does and
 * measures the process's CPU time until the sources may go on (the promise's `copied` where it says one:
 * CopyingSnapshot, builds from 2026-12-07's fix-snapheld; else until it resolves) and until it resolves,
 * and a SHA-256 of its JSON, so two builds are seen to write the same bytes. Public plugin API only, so
 * older builds run it too.
 *
 * Also the wall time until the sources may go on (stretched on a loaded host: the CPU time is the figure to compare).
 *
 *   node --expose-gc dist/bench/snapshot-held.js [n=200000] [rounds=5] [settle_ms=1000]
 */
import { createHash } from 'node:crypto';
import { runOperator } from 'tributary/testing';
import { watermark, type ClickEvent, type Element } from 'tributary';
import userFeatures from '../plugins/operators/user-features.js';
import intentModel, { type IntentModelConfig } from '../plugins/models/intent.js';
import churnModel from '../plugins/models/churn.js';
import { event, summary } from '../plugins/models/testdata.js';

const n = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 5);
/** Wall time after each gc() before a round (see below); 0 measures as builds before 2026-12-07's fix-labelcow did. */
const settleMs = Number(process.argv[4] ?? 1000);
const t0 = Date.UTC(2024, 0, 1);
const modelConfig: IntentModelConfig = { backend: 'cpu', batch: { max_size: 256, max_delay: 0 } };

/** CPU time of the process so far (ms): unlike wall time, not stretched while other processes hold the cores. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

const usersInput: Element[] = Array.from({ length: n }, (_, u): ClickEvent => {
  const e = event(`u${u}`, `s${u}`, t0 + u * 10, 0, t0 + u * 10, u % 7 === 0 ? 'cart' : 'view');
  return { ...e, itemId: `i${u % 5000}`, price: 10 + (u % 90) };
});
const stages = [
  ['user-features', userFeatures, { max_users: Math.floor(n / 2), horizons: ['1d', '7d', '30d'] }, [...usersInput, watermark(t0 + n * 10)]],
  ['churn', churnModel, { ...modelConfig, horizon: '7d' }, Array.from({ length: n }, (_, s) => [event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]), summary(`u${s}`, `s${s}`, t0 + s, t0 + s + 60_000, 1, false)]).flat()],
  ['intent', intentModel, modelConfig, Array.from({ length: n }, (_, s) => event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]))],
  // Its prequential metrics full: n labels scored (each session closed), their scores spread by the features, every distinct one kept (exact_auc_limit).
  [
    'intent-scored',
    intentModel,
    { ...modelConfig, metrics: { exact_auc_limit: n } },
    Array.from({ length: n }, (_, s) => [event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [((s * 7919) % 1000) / 1000, (s % 13) / 13, ((s * 31) % 97) / 97, 1]), summary(`u${s}`, `s${s}`, t0 + s, t0 + s + 60_000, 1, s % 5 === 0)]).flat(),
  ],
] as const;

for (const [name, plugin, config, input] of stages) {
  const { operator } = await runOperator(plugin as never, config as never, input as Element[]);
  for (let round = 0; round < rounds; round++) {
    globalThis.gc?.();
    // The collector's threads go on sweeping after gc() returns, counted in the process's CPU time: waited
    // out, or the first work after it (the held part) was charged 100-200 ms of their time.
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const began = cpuMs();
    const beganWall = performance.now();
    const taken = operator.snapshot!() as Promise<unknown> & { copied?: Promise<void> };
    await (taken.copied ?? taken);
    const heldCpuMs = cpuMs() - began;
    const heldWallMs = performance.now() - beganWall;
    const state = await taken;
    const wholeCpuMs = cpuMs() - began;
    const sha = createHash('sha256').update(JSON.stringify(state)).digest('hex').slice(0, 12);
    console.log(JSON.stringify({ name, n, round, heldCpuMs: Math.round(heldCpuMs), heldWallMs: Math.round(heldWallMs), wholeCpuMs: Math.round(wholeCpuMs), sha }));
  }
  await operator.close?.();
}
process.exit(0); // the models' backends keep handles open

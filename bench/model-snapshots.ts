/**
 * How long the model stages' synchronous snapshot and restore hold the event loop: `n` open intent
 * sessions (one event each, awaiting their session's label) and `n` churn users (one closed session
 * each, awaiting the horizon), snapshot() then JSON.stringify as a checkpoint does at its instant,
 * and JSON.parse then restore() of the text as the restore at start does (its synchronous part,
 * and the longest the event loop went without turning while it ran, as a 1 ms timer sees it). Three
 * rounds each.
 *
 *   node --max-old-space-size=8192 dist/bench/model-snapshots.js [n=100000]
 */
import { runOperator, testContext } from 'tributary/testing';
import intentModel, { type IntentModelConfig } from '../plugins/models/intent.js';
import churnModel from '../plugins/models/churn.js';
import { event, summary } from '../plugins/models/testdata.js';

const n = Number(process.argv[2] ?? 100_000);
const t0 = Date.UTC(2024, 0, 1);
const config: IntentModelConfig = { backend: 'cpu', batch: { max_size: 256, max_delay: 0 } };
const intentInput = Array.from({ length: n }, (_, s) => event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]));
const churnInput = Array.from({ length: n }, (_, s) => [event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]), summary(`u${s}`, `s${s}`, t0 + s, t0 + s + 60_000, 1, false)]).flat();

for (const [name, plugin, input] of [
  ['intent', intentModel, intentInput],
  ['churn', churnModel, churnInput],
] as const) {
  const { operator } = await runOperator(plugin, config, input);
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    const state = operator.snapshot!();
    const buildMs = performance.now() - started;
    const text = JSON.stringify(state);
    const stringifyMs = performance.now() - started - buildMs;
    const parseStarted = performance.now();
    const parsed = JSON.parse(text) as unknown;
    const parseMs = performance.now() - parseStarted;
    const fresh = await plugin.create({ ...config }, testContext());
    await fresh.open?.();
    let last = performance.now();
    let longestMs = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longestMs = Math.max(longestMs, now - last);
      last = now;
    }, 1);
    const restoreStarted = performance.now();
    last = restoreStarted;
    const restoring = fresh.restore!(parsed);
    const restoreMs = performance.now() - restoreStarted; // synchronous part
    await restoring;
    longestMs = Math.max(longestMs, performance.now() - last);
    clearInterval(timer);
    const restoreWholeMs = performance.now() - restoreStarted;
    await fresh.close?.();
    console.log(JSON.stringify({ name, n, mib: +(text.length / 2 ** 20).toFixed(1), buildMs: Math.round(buildMs), stringifyMs: Math.round(stringifyMs), parseMs: Math.round(parseMs), restoreMs: Math.round(restoreMs), restoreWholeMs: Math.round(restoreWholeMs), restoreLongestBlockMs: Math.round(longestMs) }));
  }
}
process.exit(0); // the models' backends keep handles open

/**
 * The sessionizer's snapshot with events waiting for the watermark, as the soak holds them (2,000
 * events/s and a 5 s out-of-orderness bound: 10,000 events): its JSON bytes, and the time to take it
 * (snapshot + JSON.stringify, as a checkpoint does) and to restore it (JSON.parse + restore).
 *
 *   node dist/bench/sessionizer-pending.js [events=10000] [rounds=7]
 *
 * Runs the operator through the test harness, so the same script measures an older build.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ClickEvent } from 'tributary';
import { testContext } from 'tributary/testing';
import sessionizer from '../plugins/operators/sessionizer.js';
import { Chain, stage } from '../plugins/operators/harness.js';

const count = Number(process.argv[2] ?? 10_000);
const rounds = Number(process.argv[3] ?? 7);
const t0 = Date.UTC(2026, 11, 4);
const config = { gap: '20s', max_length: '5m', max_open_sessions: 40_000 };
// Shaped as bench/pipelines/soak.yaml's synthetic source writes them.
const events = (): ClickEvent[] =>
  Array.from({ length: count }, (_, i) => ({ kind: 'event', userId: `u${(i * 7919) % 20_000}`, time: t0 + Math.floor(i / 2), type: i % 9 === 0 ? 'cart' : 'view', itemId: `i${(i * 31) % 5000}`, category: `c${i % 50}`, price: Math.round(((i * 7.3) % 500) * 100) / 100 }));

const results: { bytes: number; takeMs: number; restoreMs: number }[] = [];
for (let r = 0; r < rounds; r++) {
  const chain = await Chain.build([stage(sessionizer, config)], testContext());
  chain.push(events());
  const began = performance.now();
  const text = JSON.stringify(await chain.operators[0]!.snapshot!());
  const took = performance.now() - began;
  const restoring = performance.now();
  await Chain.build([stage(sessionizer, config)], testContext(), [JSON.parse(text)]);
  results.push({ bytes: Buffer.byteLength(text), takeMs: took, restoreMs: performance.now() - restoring });
}
console.log(JSON.stringify({ events: count, load: loadavg()[0], rounds: results }));

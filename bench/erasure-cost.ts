/**
 * What one erasure request costs (Operator.forget of every stage, between two records: the pipeline waits for it),
 * at a shop's scale: `users` shoppers known (user-features' rows, churn's histories), the last `open` of them in an
 * open session (sessionizer, session-features, intent's sessions and predictions awaiting their label). The state is
 * built by pushing two views of each user through the chain of the sessionize bench's stages and both models
 * (logistic), then each stage's forget() is timed for `requests` users with an open session, the median and the
 * largest said per stage, and for the whole request.
 *
 *   node --expose-gc --max-old-space-size=8192 dist/bench/erasure-cost.js [users=1000000] [open=200000] [requests=21]
 */
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { testContext } from 'tributary/testing';
import { watermark, type ClickEvent, type Element } from 'tributary';
import { Chain, stage } from '../plugins/operators/harness.js';
import sessionizer from '../plugins/operators/sessionizer.js';
import sessionFeatures from '../plugins/operators/session-features.js';
import userFeatures from '../plugins/operators/user-features.js';
import intentModel from '../plugins/models/intent.js';
import churnModel from '../plugins/models/churn.js';
import { commandLine, machine, median } from './machine.js';

const users = Number(process.argv[2] ?? 1_000_000);
const open = Number(process.argv[3] ?? 200_000);
const requests = Number(process.argv[4] ?? 21);
const loadAtStart = loadavg()[0]!;

const stages = [
  stage(sessionizer, { gap: '30m' }),
  stage(sessionFeatures, {}),
  stage(userFeatures, { horizons: ['1d', '7d'] }),
  stage(intentModel, { backend: 'cpu', model: { kind: 'logistic' }, label_buffer: { max_size: 2 * users } }),
  stage(churnModel, { backend: 'cpu', model: { kind: 'logistic' }, horizon: '7d', label_buffer: { max_size: 2 * users } }),
] as const;
const labels = ['sessionizer', 'session-features', 'user-features', 'intent-model', 'churn-model'];
let out = 0;
const chain = await Chain.build(stages, testContext(), undefined, () => void out++);

const t0 = Date.parse('2026-12-01T00:00:00Z');
const closedSpan = 9 * 3_600_000;
const openSpan = 20 * 60_000;
/** User i's first view: the closed ones spread over 9 hours, the open ones over the last 20 minutes (a 30 m gap). */
const firstAt = (i: number): number => (i < users - open ? t0 + Math.floor((i * closedSpan) / (users - open)) : t0 + closedSpan + 3_600_000 + Math.floor(((i - (users - open)) * openSpan) / open));
const view = (i: number, time: number, k: number): ClickEvent => ({ kind: 'event', userId: `user-${i}`, time, type: 'view', itemId: `item-${(i * 7 + k) % 5000}`, category: `cat-${i % 40}`, price: 10 + (i % 90) });
const built = performance.now();
const batch: Element[] = [];
for (let i = 0; i < users; i++) {
  const time = firstAt(i);
  batch.push(view(i, time, 0), view(i, time + 1_000, 1));
  if (batch.length >= 2_000) {
    batch.push(watermark(time - 5_000));
    chain.push(batch);
    batch.length = 0;
  }
}
const last = firstAt(users - 1);
batch.push(watermark(last - 5_000));
chain.push(batch);
console.log(`state built in ${((performance.now() - built) / 1000).toFixed(1)} s (${out} records out); heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB`);
global.gc?.();

// Users with an open session, spread over the open ones: each stage holds them.
const times: number[][] = labels.map(() => []);
const totals: number[] = [];
const dropped: number[] = [];
for (let r = 0; r < requests; r++) {
  const userId = `user-${users - open + Math.floor(((r + 0.5) * open) / requests)}`;
  let total = 0;
  let items = 0;
  chain.operators.forEach((operator, k) => {
    const start = performance.now();
    items += operator.forget?.(userId) ?? 0;
    const ms = performance.now() - start;
    times[k]!.push(ms);
    total += ms;
  });
  totals.push(total);
  dropped.push(items);
}
const f = (ms: number): string => ms.toFixed(2);
console.log(`${commandLine()}\n${machine()}; load ${loadAtStart.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end`);
console.log(`one erasure request, ${users.toLocaleString('en')} users known, ${open.toLocaleString('en')} open sessions, ${requests} requests (items dropped per request: median ${median(dropped)}):`);
console.log('| stage | median ms | largest ms |\n|---|---|---|');
labels.forEach((label, k) => console.log(`| ${label} | ${f(median(times[k]!))} | ${f(Math.max(...times[k]!))} |`));
console.log(`| **whole request** | **${f(median(totals))}** | **${f(Math.max(...totals))}** |`);

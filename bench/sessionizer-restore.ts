/**
 * The sessionizer's restore of many open sessions, as a daemon's restart (or a Kafka rebalance)
 * restores them: JSON.parse of its snapshot, then restore() into a fresh operator, each round timed
 * in the process's CPU time and in wall time, with the longest event-loop block of the restore (a
 * 1 ms timer's longest gap between two ticks).
 *
 *   node --expose-gc --max-old-space-size=8192 dist/bench/sessionizer-restore.js [users=1000000] [rounds=5]
 *
 * The state: `users` users with one open session each, a tenth of them with a second event of
 * another type (two counts), the pending buffer empty. With SNAPSHOT_FILE set, the snapshot's JSON is
 * read from that file (written first if missing), so alternating runs of two builds restore the
 * same bytes. Runs the operator through the test harness, so the same script measures an older build.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { watermark, type ClickEvent, type Element } from 'tributary';
import { testContext } from 'tributary/testing';
import sessionizer from '../plugins/operators/sessionizer.js';
import { Chain, stage } from '../plugins/operators/harness.js';

const users = Number(process.argv[2] ?? 1_000_000);
const rounds = Number(process.argv[3] ?? 5);
const file = process.env['SNAPSHOT_FILE'];
const t0 = Date.UTC(2026, 11, 4);
const config = { gap: '30m', max_length: '4h', allowed_lateness: '10m', max_open_sessions: 2_000_000 };
const context = () => testContext({ clock: { now: () => t0 + 3_600_000 } });

function* events(): Generator<Element> {
  for (let i = 0; i < users; i++) {
    const time = t0 + Math.floor((i * 600_000) / users);
    yield { kind: 'event', userId: `u${i}`, time, type: 'view', itemId: `i${(i * 31) % 5000}`, category: `c${i % 50}`, price: 10 } as ClickEvent;
    if (i % 10 === 0) yield { kind: 'event', userId: `u${i}`, time: time + 1000, type: 'cart', itemId: `i${(i * 31) % 5000}` } as ClickEvent;
    if (i % 1000 === 999) yield watermark(time);
  }
  yield watermark(t0 + 600_000);
}

async function snapshotText(): Promise<string> {
  if (file !== undefined && existsSync(file)) return readFileSync(file, 'utf8');
  let outputs = 0;
  const chain = await Chain.build([stage(sessionizer, config)], context(), undefined, () => void outputs++);
  chain.push(events());
  const text = JSON.stringify(await chain.operators[0]!.snapshot!());
  chain.end();
  if (file !== undefined) writeFileSync(file, text);
  return text;
}

const cpuMs = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const gc = (globalThis as { gc?: () => void }).gc;

const text = await snapshotText();
const results: { parseMs: number; restoreMs: number; restoreCpuMs: number; longestBlockMs: number }[] = [];
for (let r = 0; r < rounds; r++) {
  gc?.();
  const parsing = performance.now();
  const saved: unknown = JSON.parse(text);
  const parseMs = performance.now() - parsing;
  let last = performance.now();
  let longest = 0;
  const watch = setInterval(() => {
    const now = performance.now();
    if (now - last > longest) longest = now - last;
    last = now;
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, 5));
  last = performance.now();
  longest = 0;
  const cpu = cpuMs();
  const began = performance.now();
  const chain = await Chain.build([stage(sessionizer, config)], context(), [saved]);
  const restoreMs = performance.now() - began;
  const restoreCpuMs = cpuMs() - cpu;
  const end = performance.now();
  if (end - last > longest) longest = end - last;
  clearInterval(watch);
  chain.end();
  results.push({ parseMs: Math.round(parseMs), restoreMs: Math.round(restoreMs), restoreCpuMs: Math.round(restoreCpuMs), longestBlockMs: Math.round(longest) });
}
console.log(JSON.stringify({ users, bytes: Buffer.byteLength(text), load: loadavg()[0], rounds: results }));

/**
 * What periodic checkpoints cost beyond their own wall time: `count` checkpoints `apartMs` apart in
 * one process with 1M known users and 100k open sessions (the state of bench/checkpoint.ts), all the
 * process's CPU (its threads too) counted until `apartMs` after the last, and V8's garbage
 * collections by kind in that span (a PerformanceObserver on 'gc').
 *
 *   node --expose-gc --max-old-space-size=8192 dist/bench/checkpoint-cost.js [users=1000000] [open=100000] [count=5] [apartMs=2000]
 *
 * Uses only the public API, so the same script measures an older build (copied into its dist/bench).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { checkpointStatePipeline } from './checkpoint-state.js';

const users = Number(process.argv[2] ?? 1_000_000);
const open = Number(process.argv[3] ?? 100_000);
const count = Number(process.argv[4] ?? 5);
const apartMs = Number(process.argv[5] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-checkpoint-cost-'));
const { runner, controller } = await checkpointStatePipeline('checkpoint-cost', dir, users, open);
const run = runner.run();
while (runner.stats.eventsIn < users) await new Promise((resolve) => setTimeout(resolve, 20));
await new Promise((resolve) => setTimeout(resolve, 200));
global.gc?.();
await new Promise((resolve) => setTimeout(resolve, apartMs));

const gcs = { major: 0, minor: 0, incremental: 0, weak: 0, majorMs: 0, minorMs: 0 };
let counting = false;
const observer = new PerformanceObserver((list) => {
  if (!counting) return;
  for (const entry of list.getEntries()) {
    const kind = (entry as unknown as { detail?: { kind: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gcs.major++;
      gcs.majorMs += entry.duration;
    } else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gcs.minor++;
      gcs.minorMs += entry.duration;
    } else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) gcs.incremental++;
    else gcs.weak++;
  }
});
observer.observe({ entryTypes: ['gc'] });
counting = true;
const cpu0 = process.cpuUsage();
const wall0 = performance.now();
const each: { ms: number; cpuMs: number }[] = [];
for (let k = 0; k < count; k++) {
  if (k > 0) await new Promise((resolve) => setTimeout(resolve, apartMs));
  const c = process.cpuUsage();
  const w = performance.now();
  await runner.checkpoint();
  const d = process.cpuUsage(c);
  each.push({ ms: Math.round(performance.now() - w), cpuMs: Math.round((d.user + d.system) / 1000) });
}
await new Promise((resolve) => setTimeout(resolve, apartMs));
const cpu = process.cpuUsage(cpu0);
const wallMs = performance.now() - wall0;
await new Promise((resolve) => setImmediate(resolve)); // the observer's last entries
counting = false;
observer.disconnect();
controller.abort();
await run;
console.log(
  JSON.stringify({
    users,
    open,
    count,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    wallMs: Math.round(wallMs),
    checkpoints: each,
    gcs: { ...gcs, majorMs: Math.round(gcs.majorMs), minorMs: Math.round(gcs.minorMs) },
    load: loadavg()[0]!.toFixed(1),
  }),
);
rmSync(dir, { recursive: true, force: true });

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
import { CheckpointStore, defineSource, loadPipeline, MetricsHub, PipelineRunner, type ClickEvent } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';

const users = Number(process.argv[2] ?? 1_000_000);
const open = Number(process.argv[3] ?? 100_000);
const count = Number(process.argv[4] ?? 5);
const apartMs = Number(process.argv[5] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-checkpoint-cost-'));
const t0 = Date.UTC(2024, 0, 1);

const generated = defineSource<Record<string, never>>({
  name: 'bench-users',
  summary: 'One event per user (bench only).',
  config: { type: 'object' },
  create: (_config, context) => ({
    async *read() {
      for (let start = 0; start < users; start += context.batchSize) {
        const batch: ClickEvent[] = [];
        for (let u = start; u < Math.min(users, start + context.batchSize); u++) {
          const late = u >= users - open;
          const time = late ? t0 + 3_600_000 + ((u - (users - open)) / open) * 300_000 : t0 + (u / (users - open)) * 600_000;
          batch.push({ kind: 'event', userId: `user-${u}`, time: Math.round(time), type: u % 7 === 0 ? 'cart' : 'view', itemId: `i${u % 5000}`, category: `c${u % 50}`, price: 10 + (u % 90) });
        }
        yield batch;
      }
      await new Promise((resolve) => context.signal?.addEventListener('abort', resolve, { once: true }));
    },
  }),
});

const yaml = `name: checkpoint-cost
sources: [{type: bench-users}]
stages:
  - {type: sessionizer, gap: 30m, max_open_sessions: ${users + 1}}
  - {type: session-features}
  - {type: user-features, max_users: ${users + 1}}
sinks: [{type: file, path: ${join(dir, 'out.jsonl')}, kinds: [nothing]}]
checkpoint: {dir: ${join(dir, 'checkpoints')}, interval: 1h}
`;

const registry = await builtinRegistry();
registry.register(generated, 'bench');
const loaded = await loadPipeline(join(dir, 'bench.yaml'), { registry, text: yaml, env: {} });
const controller = new AbortController();
const runner = new PipelineRunner(loaded, {
  logger: silentLogger,
  metrics: new MetricsHub(),
  signal: controller.signal,
  checkpoints: { store: new CheckpointStore(join(dir, 'checkpoints')), intervalMs: 3_600_000 },
});
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

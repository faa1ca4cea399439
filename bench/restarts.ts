/**
 * What restarts in the process keep: the demo pipeline (with checkpoints) and, in front of its stages,
 * one that fails the run at its N-th event, `restarts` times, so the daemon restarts it from its last
 * checkpoint each time (settings.restart, 1 ms backoff). At each start (a new instance of that stage)
 * the heap after a full GC, memory outside the heap, and the process's handles; then the last run
 * drains. A failed run the daemon still held would show as a heap growing with every restart.
 *
 *   node --expose-gc dist/bench/restarts.js [restarts=30] [failAtEvent=20000]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { map } from 'rxjs';
import { Daemon, defineOperator } from '../core/index.js';
import { builtinRegistry } from '../core/cli/registry.js';
import { packageRoot } from '../core/paths.js';
import { silentLogger } from '../core/testing.js';

const restarts = Number(process.argv[2] ?? 30);
const failAt = Number(process.argv[3] ?? 20_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench -- restarts passes it)');

interface Sample {
  start: number;
  heapMiB: number;
  externalMiB: number;
  handles: number;
}
const samples: Sample[] = [];
const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
let starts = 0;
const failsAt = defineOperator<Record<string, never>>({
  name: 'fails-at',
  summary: 'Fails the run at its N-th event, but for the last start (bench only).',
  config: { type: 'object' },
  create: () => {
    const start = ++starts;
    gc();
    const memory = process.memoryUsage();
    samples.push({ start, heapMiB: mib(memory.heapUsed), externalMiB: mib(memory.external), handles: (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length });
    let seen = 0;
    return {
      apply: (input) =>
        input.pipe(
          map((element) => {
            if (element.kind === 'event' && ++seen === failAt && start <= restarts) throw new Error(`failed on purpose (start ${start})`);
            return element;
          }),
        ),
    };
  },
});

const dir = mkdtempSync(join(tmpdir(), 'tributary-restarts-'));
try {
  const demo = readFileSync(join(packageRoot, 'pipelines', 'demo.yaml'), 'utf8');
  const yaml =
    demo.replace('stages:\n', 'stages:\n  - type: fails-at\n').replace('../out/demo-predictions.jsonl', join(dir, 'predictions.jsonl')) +
    `checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }\nsettings:\n  restart: { attempts: ${restarts}, backoff: 1ms, max_backoff: 1ms }\n`;
  const file = join(dir, 'demo-restarts.yaml');
  writeFileSync(file, yaml);
  const began = performance.now();
  const daemon = new Daemon({
    targets: [file],
    logger: silentLogger,
    registry: async () => {
      const registry = await builtinRegistry();
      registry.register(failsAt, 'bench');
      return registry;
    },
  });
  const result = await daemon.run();
  if (result.failures.length > 0) throw result.failures[0]!.error;
  const stats = result.runs[0]!.stats;
  console.log(`demo pipeline, failing at its ${failAt}th event after each start: ${stats.restarts ?? 0} restarts in the process, then drained (${stats.eventsIn} events in, ${((performance.now() - began) / 1000).toFixed(1)} s)`);
  console.log('| start | heap after GC | outside the heap | handles |\n|---|---|---|---|');
  for (const s of samples) console.log(`| ${s.start} | ${s.heapMiB} MiB | ${s.externalMiB} MiB | ${s.handles} |`);
  const settled = samples[Math.min(3, samples.length - 1)]!;
  const last = samples[samples.length - 1]!;
  console.log(`heap from start ${settled.start} to ${last.start}: ${settled.heapMiB} -> ${last.heapMiB} MiB (${((last.heapMiB - settled.heapMiB) / Math.max(1, last.start - settled.start)).toFixed(3)} MiB per restart)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

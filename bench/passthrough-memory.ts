/**
 * One `file` source (JSONL) -> `file` sink (JSONL) run of the passthrough bench's pipeline, with the
 * process's memory sampled while it runs; prints one JSON line. bench/passthrough.ts times its rounds
 * with `runPassthrough` and measures memory by spawning this file as a fresh process per input size,
 * so each size's peak RSS is its own run's, not what earlier runs in the same process left mapped.
 *
 *   node --expose-gc dist/bench/passthrough-memory.js INPUT OUTPUT [--live]
 *
 * `--live`: a full GC before each sample (every 100 ms, untimed), so the heap figure is live data,
 * not garbage V8 has yet to collect; without it, samples every 25 ms.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadPipeline, PipelineRunner, MetricsHub } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';

export interface PassthroughResult {
  ms: number;
  /** Events read (checked equal to the records written). */
  events: number;
  /** RSS just before the run (modules loaded, pipeline built). */
  rssBefore: number;
  peakRss: number;
  peakHeap: number;
  /** Heap after a forced full GC, at its highest (`live` runs only): what the run keeps alive. */
  peakLiveHeap: number;
}

/** Runs the pipeline once from `input` to `output`; `live`: a full GC before each memory sample (untimed runs). */
export async function runPassthrough(input: string, output: string, live = false): Promise<PassthroughResult> {
  const registry = await builtinRegistry();
  const yaml = `name: passthrough\nsources: [{type: file, path: ${input}, mapping: {time_format: epoch_ms}}]\nsinks: [{type: file, path: ${output}}]\n`;
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-passthrough-'));
  try {
    const loaded = await loadPipeline(join(dir, 'bench.yaml'), { registry, text: yaml, env: {} });
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let peakRss = 0;
    let peakHeap = 0;
    let peakLiveHeap = 0;
    const sample = (): void => {
      if (live) global.gc?.();
      const usage = process.memoryUsage();
      peakRss = Math.max(peakRss, usage.rss);
      if (live) peakLiveHeap = Math.max(peakLiveHeap, usage.heapUsed);
      else peakHeap = Math.max(peakHeap, usage.heapUsed);
    };
    const sampler = setInterval(sample, live ? 100 : 25);
    const start = performance.now();
    const stats = await new PipelineRunner(loaded, { logger: silentLogger, metrics: new MetricsHub() }).run();
    const ms = performance.now() - start;
    clearInterval(sampler);
    sample();
    if (stats.recordsOut !== stats.eventsIn) throw new Error(`lost events: ${JSON.stringify(stats)}`);
    return { ms, events: stats.eventsIn, rssBefore, peakRss, peakHeap, peakLiveHeap };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [input, output] = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
  if (!input || !output) throw new Error('usage: passthrough-memory INPUT OUTPUT [--live]');
  if (!global.gc) throw new Error('run with node --expose-gc');
  console.log(JSON.stringify(await runPassthrough(input, output, process.argv.includes('--live'))));
}

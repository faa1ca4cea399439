/**
 * `file` source -> `file` sink passthrough of 1M JSONL events, against the raw parse limit (plain
 * readline + JSON.parse of the same file, in the same run), and peak memory at two input sizes.
 *
 *   node --expose-gc dist/bench/passthrough.js [events=1000000] [--rounds=5] [--write]
 *
 * Rounds alternate raw and pipeline; figures are medians. `--write` puts them into the
 * `bench:passthrough` section of BENCHMARKS.md. The machine is shared: the load average before and
 * after is printed (and written) with the figures, since it moves them a lot.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline, PipelineRunner, MetricsHub } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { rawParseMs, writeSyntheticEvents } from './data.js';
import { machine, median, writeSection } from './machine.js';

const args = process.argv.slice(2);
const events = Number(args.find((arg) => !arg.startsWith('--')) ?? 1_000_000);
const rounds = Number(args.find((arg) => arg.startsWith('--rounds='))?.slice('--rounds='.length) ?? 5);
const write = args.includes('--write');
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-'));

interface PipelineResult {
  ms: number;
  peakRss: number;
  peakHeap: number;
}

async function pipeline(path: string, out: string): Promise<PipelineResult> {
  const registry = await builtinRegistry();
  const yaml = `name: passthrough\nsources: [{type: file, path: ${path}, mapping: {time_format: epoch_ms}}]\nsinks: [{type: file, path: ${out}}]\n`;
  const loaded = await loadPipeline(join(dir, 'bench.yaml'), { registry, text: yaml, env: {} });
  global.gc?.();
  let peakRss = 0;
  let peakHeap = 0;
  const sample = (): void => {
    const usage = process.memoryUsage();
    peakRss = Math.max(peakRss, usage.rss);
    peakHeap = Math.max(peakHeap, usage.heapUsed);
  };
  const sampler = setInterval(sample, 25);
  const start = performance.now();
  const stats = await new PipelineRunner(loaded, { logger: silentLogger, metrics: new MetricsHub() }).run();
  const ms = performance.now() - start;
  clearInterval(sampler);
  sample();
  if (stats.recordsOut !== stats.eventsIn) throw new Error(`lost events: ${JSON.stringify(stats)}`);
  return { ms, peakRss, peakHeap };
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

const input = join(dir, 'events.jsonl');
await writeSyntheticEvents(input, events, Math.max(1000, events / 10));
const loadBefore = loadavg()[0]!;
const rawTimes: number[] = [];
const pipeTimes: number[] = [];
let memory: PipelineResult | undefined;
for (let round = 0; round < rounds; round++) {
  rawTimes.push(await rawParseMs(input, events));
  const result = await pipeline(input, join(dir, 'out.jsonl'));
  pipeTimes.push(result.ms);
  memory = result;
  console.error(`round ${round + 1}: raw ${rawTimes[round]!.toFixed(0)} ms, pipeline ${result.ms.toFixed(0)} ms, load ${loadavg()[0]!.toFixed(2)}`);
}
const small = join(dir, 'small.jsonl');
await writeSyntheticEvents(small, events / 4, Math.max(1000, events / 40));
const smallMemory = await pipeline(small, join(dir, 'small-out.jsonl'));
const loadAfter = loadavg()[0]!;

const raw = median(rawTimes);
const piped = median(pipeTimes);
const rawRate = (events / raw) * 1000;
const pipeRate = (events / piped) * 1000;
const summary = {
  events,
  rawEventsPerSecond: Math.round(rawRate),
  pipelineEventsPerSecond: Math.round(pipeRate),
  ratio: Number((pipeRate / rawRate).toFixed(2)),
  roundRatios: rawTimes.map((raw, i) => Number((raw / pipeTimes[i]!).toFixed(2))),
  loadAverage: { before: loadBefore, after: loadAfter },
  peakRss: { [events / 4]: smallMemory.peakRss, [events]: memory!.peakRss },
  peakHeap: { [events / 4]: smallMemory.peakHeap, [events]: memory!.peakHeap },
};
console.log(JSON.stringify(summary, null, 2));
if (write) writeSection(
  new URL('../../BENCHMARKS.md', import.meta.url).pathname,
  'passthrough',
  `## File passthrough (core)

\`node --expose-gc dist/bench/passthrough.js ${events} --rounds=${rounds} --write\` — \`file\` source (JSONL) -> \`file\` sink (JSONL) of ${events.toLocaleString('en-US')} synthetic events, against plain \`readline\` + \`JSON.parse\` of the same file in the same run (median of ${rounds} rounds each, alternating).

| measure | value |
|---|---|
| raw parse limit (readline + JSON.parse) | ${Math.round(rawRate).toLocaleString('en-US')} events/s |
| pipeline file -> file | ${Math.round(pipeRate).toLocaleString('en-US')} events/s |
| ratio (goal >= 0.7) | **${summary.ratio}** (per round: ${summary.roundRatios.join(', ')}) |
| peak RSS / heap, ${(events / 4).toLocaleString('en-US')} events | ${mib(smallMemory.peakRss)} / ${mib(smallMemory.peakHeap)} |
| peak RSS / heap, ${events.toLocaleString('en-US')} events | ${mib(memory!.peakRss)} / ${mib(memory!.peakHeap)} |

Machine: ${machine()}; 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (shared machine). Measured ${new Date().toISOString().slice(0, 10)}.`,
);
rmSync(dir, { recursive: true, force: true });

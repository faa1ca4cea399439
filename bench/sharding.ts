/**
 * An experiment, not a feature: would keyed parallelism inside one process lift the sessionize
 * bench (issue 3: sessionizer + every feature operator at 0.5 of readline + JSON.parse) past its
 * goal on this 2-core machine? Tributary runs a pipeline on one JavaScript thread; this measures
 * what N worker threads would give, each running the same pipeline on its shard of the users.
 *
 * Each worker reads the whole file and keeps the lines whose user id (found in the raw text, before
 * any parse) hashes to its shard, so only bytes are shared, never events (handing events between
 * threads costs a structured clone, about what the parse saves). A user's events all land in one
 * worker, in file order, so its sessions and features are the ones one thread computes; only
 * lateness decisions could differ (each shard's watermark follows its own events), and the session
 * counts printed show whether any did. Sinks only count, as in the sessionize bench.
 *
 *   node --expose-gc dist/bench/sharding.js [events=1000000] [users=100000] [rounds=3] [--shards=1,2] [--write]
 *
 * --shards lists the worker counts to run (on a machine with more cores than this one's two).
 */
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createEventMapper, defineSink, defineSource, isRejected, loadPipeline, MetricsHub, PipelineRunner, readLineBatches, type ClickEvent } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { commandLine, machine, median, positionalArgs, publishSection } from './machine.js';
import { rawParseMs, sessionizeStagesYaml, writeSyntheticEvents } from './data.js';

/** What the first run found (2026-12-03), kept with the bench that writes this section. */
const FINDING = `**Finding** (first run, 2026-12-03, AMD EPYC host, 5 alternating rounds): two worker threads ran 1.44x as fast as one (median wall time per 1M events 6.89 s with one, 4.80 s with two), ratio 0.27 -> 0.39 (0.44 counting the pipeline runs alone, without the workers' start); an earlier ad hoc run of the same design gave 0.40-0.55 against 0.24-0.35. On two cores keyed parallelism alone lands short of 0.5, or at best at it, against a raw parse that runs on one: each worker still reads and splits every line, and the two share the cores with V8's own threads (GC, compiler). It would help where there are more cores; here the per-event cost of the stages (Sessionizer section) is the bound.`;

interface ShardJob {
  path: string;
  shard: number;
  shards: number;
}

interface ShardResult {
  events: number;
  sessions: number;
  /** The pipeline's run alone, without the worker's start (module loading, registry). */
  runMs: number;
}

const USER_KEY = '"user_id":"';

/** FNV-1a of the line's user id, read from the raw text; lines without one go to shard 0 (to be dead-lettered there). */
function shardOf(line: string, shards: number): number {
  const at = line.indexOf(USER_KEY);
  if (at < 0) return 0;
  let hash = 2166136261;
  for (let i = at + USER_KEY.length; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 34) break;
    hash = Math.imul(hash ^ c, 16777619);
  }
  return (hash >>> 0) % shards;
}

async function runShard({ path, shard, shards }: ShardJob): Promise<ShardResult> {
  const registry = await builtinRegistry();
  let events = 0;
  let sessions = 0;
  registry.register(
    defineSink<Record<string, never>>({
      name: 'count', summary: 'Counts records (bench).', config: { type: 'object', properties: {} },
      create: () => ({ write: (r) => void (r.kind === 'session' ? sessions++ : events++), close: async () => undefined }),
    }),
    'bench',
  );
  registry.register(
    defineSource<Record<string, never>>({
      name: 'shard-file', summary: 'The lines of one key shard of a JSONL file (bench).', config: { type: 'object', properties: {} },
      create: (_config, context) => ({
        async *read(): AsyncGenerator<ClickEvent[]> {
          const map = createEventMapper({ time_format: 'epoch_ms' });
          for await (const { lines, firstLine } of readLineBatches(createReadStream(path, { highWaterMark: 1 << 20 }), context.batchSize)) {
            const batch: ClickEvent[] = [];
            for (let i = 0; i < lines.length; i++) {
              const line = lines[i]!;
              if (shards > 1 && shardOf(line, shards) !== shard) continue;
              const origin = { source: context.label, file: path, line: firstLine + i };
              const mapped = map(JSON.parse(line) as Record<string, unknown>, origin);
              if (isRejected(mapped)) context.deadLetter({ reason: mapped.rejected, raw: line, origin });
              else batch.push(mapped);
            }
            if (batch.length > 0) yield batch;
          }
        },
      }),
    }),
    'bench',
  );
  const yaml = `name: sharding\nsources: [{type: shard-file}]\n${sessionizeStagesYaml}\nsinks: [{type: count}]\n`;
  const loaded = await loadPipeline(join(tmpdir(), 'sharding.yaml'), { registry, text: yaml, env: {} });
  const runner = new PipelineRunner(loaded, { logger: silentLogger, metrics: new MetricsHub() });
  const start = performance.now();
  await runner.run();
  return { events, sessions, runMs: performance.now() - start };
}

/** Wall time of `shards` workers from their start to the last one's end, and their results. */
async function parallel(path: string, shards: number): Promise<{ ms: number; results: ShardResult[] }> {
  const start = performance.now();
  const results = await Promise.all(
    Array.from({ length: shards }, (_, shard) =>
      new Promise<ShardResult>((resolve, reject) => {
        // The young generation `tributary run` gives the main thread (--max-semi-space-size=32: 3 x 32 MiB).
        const worker = new Worker(new URL(import.meta.url), { workerData: { path, shard, shards } satisfies ShardJob, resourceLimits: { maxYoungGenerationSizeMb: 96 } });
        worker.once('message', resolve);
        worker.once('error', reject);
      }),
    ),
  );
  return { ms: performance.now() - start, results };
}

if (!isMainThread) {
  parentPort!.postMessage(await runShard(workerData as ShardJob));
} else {
  const args = positionalArgs();
  const events = Number(args[0] ?? 1_000_000);
  const users = Number(args[1] ?? 100_000);
  const rounds = Number(args[2] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-sharding-'));
  const path = join(dir, 'events.jsonl');
  const loadAtStart = loadavg()[0]!;
  await writeSyntheticEvents(path, events, users);
  const raw: number[] = [];
  const shardCounts = (process.argv.find((a) => a.startsWith('--shards='))?.slice('--shards='.length) ?? '1,2').split(',').map(Number);
  if (shardCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--shards takes worker counts such as 1,2,4: got ${shardCounts.join(',')}`);
  const byShards = new Map(shardCounts.map((n) => [n, { ms: [] as number[], runMs: [] as number[], sessions: 0 }]));
  for (let round = 0; round < rounds; round++) {
    raw.push(await rawParseMs(path, events));
    for (const [shards, figures] of byShards) {
      const { ms, results } = await parallel(path, shards);
      const counted = results.reduce((sum, r) => sum + r.events, 0);
      if (counted !== events) throw new Error(`${shards} shards: ${counted} of ${events} events came out`);
      figures.ms.push(ms);
      figures.runMs.push(Math.max(...results.map((r) => r.runMs)));
      figures.sessions = results.reduce((sum, r) => sum + r.sessions, 0);
      console.log(`round ${round + 1}: raw ${Math.round(raw.at(-1)!)} ms; ${shards} shard(s): ${Math.round(ms)} ms (pipelines ${results.map((r) => Math.round(r.runMs)).join(', ')} ms), ratio ${(raw.at(-1)! / ms).toFixed(2)}, ${figures.sessions} sessions`);
    }
  }
  const rawMs = median(raw);
  const rows = [...byShards].map(([shards, f]) => {
    const ms = median(f.ms);
    return `| ${shards} | ${Math.round((events / ms) * 1000).toLocaleString('en-US')} events/s | **${(rawMs / ms).toFixed(2)}** (${f.ms.map((x, i) => (raw[i]! / x).toFixed(2)).join(', ')}) | ${(rawMs / median(f.runMs)).toFixed(2)} | ${f.sessions.toLocaleString('en-US')} |`;
  });
  const markdown = `## Keyed parallelism (experiment)

\`${commandLine()}\` — **an experiment, not a feature**: Tributary runs a pipeline on one JavaScript thread. Same input and stages as the Sessionizer section (${events.toLocaleString('en-US')} synthetic events, ${users.toLocaleString('en-US')} users; sessionizer -> session-features -> user-features -> hash-features -> log1p -> standardize -> clip -> a counting sink), run in N worker threads, each reading the whole file and keeping the lines whose user id (found in the raw text, before any parse) hashes to its shard. Against readline + JSON.parse on the main thread, alternating, ${rounds} rounds; wall time from the workers' start (module loading included) to the last one's end, and, apart, the slowest worker's pipeline run alone.

| worker threads | events/s | ratio to the raw parse (each round) | ratio, pipeline runs alone | sessions |
|---|---|---|---|---|
${rows.join('\n')}

Raw parse limit ${Math.round((events / rawMs) * 1000).toLocaleString('en-US')} events/s (median). Equal session counts mean no lateness decision changed with the shards' own watermarks.\n\n${FINDING}\n\nWhat it would take to make this a feature: sources that can read a key shard (files as here; Kafka partitions already are shards), per-worker state in checkpoints, sinks fed from every worker (or one per worker), merged counters and metrics, and models, which learn from every user: one per worker, or their updates merged.

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end. Measured ${new Date().toISOString().slice(0, 10)}.`;
  publishSection('sharding', markdown);
  rmSync(dir, { recursive: true, force: true });
}

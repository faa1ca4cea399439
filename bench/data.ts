/**
 * The benches' common input: synthetic shoppers written as JSON lines, and the raw parse limit
 * (plain readline + JSON.parse) every throughput figure is compared against, in the same run.
 */
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse, stringify } from 'yaml';
import { defineSink, loadPipeline, MetricsHub, PipelineRunner, type StreamRecord } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { Normaliser } from '../plugins/models/normaliser.js';
import { ShopperWorld } from '../plugins/sources/shoppers.js';

/** The stages of pipelines/demo.yaml, as declared there (the model benches run them, or parts). */
export function demoStages(): Record<string, unknown>[] {
  const file = new URL('../../pipelines/demo.yaml', import.meta.url);
  return (parse(readFileSync(file, 'utf8')) as { stages: Record<string, unknown>[] }).stages;
}

/**
 * Runs `source` -> `stages` -> a sink that keeps the records `keep` accepts (and drops the rest), from
 * a pipeline file written to `dir`; returns the wall time of the run, what was kept and the events read.
 */
export async function runPipeline(
  source: Record<string, unknown>,
  stages: Record<string, unknown>[],
  keep: (r: StreamRecord) => boolean,
  dir: string,
): Promise<{ ms: number; cpuUs: number; kept: StreamRecord[]; eventsIn: number }> {
  const registry = await builtinRegistry();
  const kept: StreamRecord[] = [];
  registry.register(
    defineSink({ name: 'keep', summary: 'Keeps or counts records (bench).', config: { type: 'object', properties: {} }, create: () => ({ write: (r) => void (keep(r) && kept.push(r)), close: async () => undefined }) }),
    'bench',
  );
  const file = join(dir, `bench-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify({ name: 'bench', sources: [source], stages, sinks: [{ type: 'keep' }] }));
  const loaded = await loadPipeline(file, { registry, env: {} });
  const runner = new PipelineRunner(loaded, { logger: silentLogger, metrics: new MetricsHub() });
  // Wall and CPU over the run alone (not the registry and pipeline loading before it).
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const stats = await runner.run();
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  return { ms, cpuUs: cpu.user + cpu.system, kept, eventsIn: stats.eventsIn };
}

/** A model stage (intent-model, churn-model): what the model benches split the demo at. */
export const isModelStage = (stage: Record<string, unknown>): boolean => String(stage.type).endsWith('-model');

/** Writes `events` events of `users` shoppers as JSONL; returns the first and last event times. */
export async function writeSyntheticEvents(path: string, events: number, users: number, seed = 1): Promise<{ first: number; last: number }> {
  const world = new ShopperWorld({ seed, users });
  const out = createWriteStream(path);
  let chunk = '';
  let first = 0;
  let last = 0;
  for (let i = 0; i < events; i++) {
    const e = world.next();
    if (i === 0) first = e.time;
    last = e.time;
    chunk += `{"user_id":"${e.userId}","time":${e.time},"type":"${e.type}","item_id":"${e.itemId}","category":"${e.category}","price":${e.price}}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
  return { first, last };
}

/** Milliseconds to read and JSON.parse every line of `path` with readline; checks the count. */
export async function rawParseMs(path: string, expected: number): Promise<number> {
  const start = performance.now();
  let count = 0;
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
    if ((JSON.parse(line) as { user_id?: string }).user_id) count++;
  }
  if (count !== expected) throw new Error(`parsed ${count} of ${expected}`);
  return performance.now() - start;
}

/** The sessionizer and every feature operator, as the sessionize bench (and its digest check) run them. */
export const sessionizeStagesYaml = `stages:
  - {type: sessionizer, gap: 30m, max_length: 4h, allowed_lateness: 5m}
  - {type: session-features}
  - {type: user-features}
  - {type: hash-features, fields: [category, itemId], width: 32}
  - {type: log1p, features: ["s_*", "u_events", "u_monetary"]}
  - {type: standardize, features: ["s_*", "u_*"]}
  - {type: clip, features: ["*"], min: -8, max: 8}`;

/**
 * The demo pipeline's real feature vectors (without its model stages): events before their session's
 * first purchase, up to `limit`, normalised once as a model would (`X`, n x d), each labelled with
 * whether its session bought (`Y`).
 */
export async function demoFeatureVectors(
  source: Record<string, unknown>,
  dir: string,
  limit: number,
): Promise<{ vectors: { names: readonly string[]; values: Float32Array; y: number }[]; d: number; X: Float32Array; Y: Float32Array }> {
  const captured = await runPipeline(source, demoStages().filter((s) => !isModelStage(s)), (r) => r.kind === 'event' || r.kind === 'session', dir);
  const purchased = new Map<string, number>();
  for (const r of captured.kept) if (r.kind === 'session') purchased.set(r.sessionId as string, r.purchased ? 1 : 0);
  const vectors: { names: readonly string[]; values: Float32Array; y: number }[] = [];
  for (const r of captured.kept) {
    const features = r.features as { names: readonly string[]; values: Float32Array } | undefined;
    const session = r.session as { id: string } | undefined;
    if (r.kind === 'event' && features && session && r.type !== 'purchase') vectors.push({ names: features.names, values: features.values, y: purchased.get(session.id) ?? 0 });
    if (vectors.length >= limit) break;
  }
  const d = vectors[0]!.names.length;
  const normaliser = new Normaliser(d);
  const X = new Float32Array(vectors.length * d);
  vectors.forEach((v, i) => normaliser.updateAndTransform(v.values, X, i * d));
  return { vectors, d, X, Y: Float32Array.from(vectors, (v) => v.y) };
}

/** `items` in an order that is the same on every run (a linear congruential generator, seed 7): a shuffle benches can compare. */
export function seededShuffle<T>(items: readonly T[]): T[] {
  let seed = 7;
  const shuffled = [...items];
  for (let i = shuffled.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  return shuffled;
}

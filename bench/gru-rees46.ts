/**
 * The `gru` intent model alone on the REES46 sample, prequential: `node dist/bench/gru-rees46.js [OVERRIDES]`.
 * Runs pipelines/intent-rees46.yaml with only its intent-gru model stage (OVERRIDES, a JSON object,
 * is merged into that stage, e.g. '{"optimizer":{"learning_rate":0.005}}') and prints the summary
 * with the constant base rate's log loss beside it. Writes nothing to BENCHMARKS.md.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { defineSink, loadPipeline, MetricsHub, PipelineRunner, type StreamRecord } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { packageRoot as root } from '../core/paths.js';

const rees46 = join(root, '../shared/data/rees46/2019-Oct_head.csv');
if (!existsSync(rees46)) throw new Error(`${rees46} is absent`);
const overrides = JSON.parse(process.argv[2] ?? '{}') as Record<string, Record<string, unknown>>;
// Another of the pipeline's models, for comparison (e.g. intent-logistic).
const stageName = process.argv[3] ?? 'intent-gru';

const pipeline = parse(readFileSync(join(root, 'pipelines/intent-rees46.yaml'), 'utf8')) as { sources: Record<string, unknown>[]; stages: Record<string, unknown>[] };
const stages = pipeline.stages
  .filter((s) => !String(s.type).endsWith('-model') || s.name === stageName)
  .map((s) => {
    if (s.name !== stageName) return s;
    const merged: Record<string, unknown> = { ...s, report: true };
    for (const [key, value] of Object.entries(overrides)) merged[key] = typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...(s[key] as object), ...value } : value;
    return merged;
  });
const registry = await builtinRegistry();
const reports: StreamRecord[] = [];
registry.register(
  defineSink({ name: 'keep', summary: 'Keeps model reports (bench).', config: { type: 'object', properties: {} }, create: () => ({ write: (r) => void (r.kind === 'model_metrics' && reports.push(r)), close: async () => undefined }) }),
  'bench',
);
const dir = mkdtempSync(join(tmpdir(), 'tributary-gru-rees46-'));
const file = join(dir, 'gru.yaml');
writeFileSync(file, stringify({ name: 'gru-rees46', sources: [{ ...pipeline.sources[0]!, path: rees46 }], stages, sinks: [{ type: 'keep' }] }));
const runner = new PipelineRunner(await loadPipeline(file, { registry, env: {} }), { logger: silentLogger, metrics: new MetricsHub() });
const load = loadavg()[0]!;
const cpu = process.cpuUsage();
await runner.run();
const used = process.cpuUsage(cpu);
const s = reports[0]!.summary as { auc: number; logloss: number; brier: number; n: number; positives: number };
const rate = s.positives / s.n;
const baseLoss = -(rate * Math.log(rate) + (1 - rate) * Math.log(1 - rate));
console.log(
  JSON.stringify({
    model: stageName,
    overrides,
    auc: Number(s.auc.toFixed(4)),
    logloss: Number(s.logloss.toFixed(4)),
    brier: Number(s.brier.toFixed(4)),
    baseRateLogloss: Number(baseLoss.toFixed(4)),
    n: s.n,
    positives: s.positives,
    drifts: (reports[0]!.counts as { drifts: number }).drifts,
    cpuS: Number(((used.user + used.system) / 1e6).toFixed(1)),
    // Log loss over the last metrics.window labels, at a few points of the stream.
    windowLogloss: (reports[0]!.timeline as { n: number; logloss: number }[]).filter((_, i, all) => i % Math.ceil(all.length / 8) === 0).map((p) => `${p.n}:${p.logloss.toFixed(3)}`).join(' '),
    load: [load, loadavg()[0]!].map((l) => l.toFixed(2)).join(' -> '),
  }),
);

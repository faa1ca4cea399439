/**
 * Model bench: `node dist/bench/models.js [EVENTS]`.
 * 1. Learn+predict throughput (samples/s) of `logistic` and `mlp` on the demo pipeline's real feature
 *    vectors, micro-batches of 256, against River's LogisticRegression (Python, one sample at a time)
 *    on the same vectors, in the same run.
 * 2. Prequential AUC / log loss on the REES46 sample for intent, against River's logistic regression
 *    fed the same features with the same label delays (skipped without ../shared/data).
 * 3. Whole demo pipeline (file of synthetic events -> sessionizer -> features -> intent + churn ->
 *    counting sink) events/s against the raw parse limit (readline + JSON.parse) of the same file.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { defineSink, loadPipeline, MetricsHub, PipelineRunner, type StreamRecord } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { rawParseMs, writeSyntheticEvents } from './data.js';
import { useBackend } from '../plugins/models/backend.js';
import { createModel } from '../plugins/models/models.js';
import { resolveConfig } from '../plugins/models/config.js';
import { Normaliser } from '../plugins/models/normaliser.js';
import { commandLine, machine, median, writeSection } from './machine.js';

const events = Number(process.argv[2] ?? 200_000);
// A shared machine: the load average goes into BENCHMARKS.md with the figures.
const loadAtStart = loadavg()[0]!;
const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-models-'));
const n = (x: number): string => Math.round(x).toLocaleString('en-US');

const demo = parse(readFileSync(join(root, 'pipelines/demo.yaml'), 'utf8')) as { stages: Record<string, unknown>[] };
const isModel = (s: Record<string, unknown>): boolean => String(s.type).endsWith('-model');

/** file source -> stages -> a sink that keeps what `keep` says (and counts the rest). */
async function run(source: Record<string, unknown>, stages: Record<string, unknown>[], keep: (r: StreamRecord) => boolean, baseDir = dir): Promise<{ ms: number; kept: StreamRecord[]; eventsIn: number }> {
  const registry = await builtinRegistry();
  const kept: StreamRecord[] = [];
  registry.register(
    defineSink({ name: 'keep', summary: 'Keeps or counts records (bench).', config: { type: 'object', properties: {} }, create: () => ({ write: (r) => void (keep(r) && kept.push(r)), close: async () => undefined }) }),
    'bench',
  );
  const file = join(baseDir, `bench-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify({ name: 'bench-models', sources: [source], stages, sinks: [{ type: 'keep' }] }));
  const loaded = await loadPipeline(file, { registry, env: {} });
  const runner = new PipelineRunner(loaded, { logger: silentLogger, metrics: new MetricsHub() });
  const start = performance.now();
  const stats = await runner.run();
  return { ms: performance.now() - start, kept, eventsIn: stats.eventsIn };
}

const eventsFile = join(dir, 'events.jsonl');
await writeSyntheticEvents(eventsFile, events, 2000, 7);
const fileSource = { type: 'file', path: eventsFile, mapping: { time_format: 'epoch_ms' } };
const backend = await useBackend('auto', silentLogger);

// 3. Whole pipeline against the raw parse limit (median of 3, alternating).
const raw: number[] = [];
const whole: number[] = [];
const featuresOnly: number[] = [];
let modelReports: StreamRecord[] = [];
for (let round = 0; round < 3; round++) {
  raw.push(await rawParseMs(eventsFile, events));
  const result = await run(fileSource, demo.stages.map((s) => (isModel(s) ? { ...s, report: true } : s)), (r) => r.kind === 'model_metrics');
  whole.push(result.ms);
  modelReports = result.kept;
  featuresOnly.push((await run(fileSource, demo.stages.filter((s) => !isModel(s)), () => false)).ms);
}
const rawRate = (events / median(raw)) * 1000;
const wholeRate = (events / median(whole)) * 1000;
const featuresRate = (events / median(featuresOnly)) * 1000;
// What the two model operators add per event (their own work, TF.js, and their prediction records downstream).
const modelUs = 1e6 / wholeRate - 1e6 / featuresRate;

// 1. Throughput on the demo's real feature vectors (events before their session's first purchase).
const captured = await run(fileSource, demo.stages.filter((s) => !isModel(s)), (r) => r.kind === 'event' || r.kind === 'session');
const purchased = new Map<string, number>();
for (const r of captured.kept) if (r.kind === 'session') purchased.set(r.sessionId as string, r.purchased ? 1 : 0);
const vectors: { names: readonly string[]; values: Float32Array; y: number }[] = [];
for (const r of captured.kept) {
  const features = r.features as { names: readonly string[]; values: Float32Array } | undefined;
  const session = r.session as { id: string } | undefined;
  if (r.kind === 'event' && features && session && r.type !== 'purchase') vectors.push({ names: features.names, values: features.values, y: purchased.get(session.id) ?? 0 });
  if (vectors.length >= 50_000) break;
}
const d = vectors[0]!.names.length;
const normaliser = new Normaliser(d);
const X = new Float32Array(vectors.length * d);
vectors.forEach((v, i) => normaliser.updateAndTransform(v.values, X, i * d));
const Y = Float32Array.from(vectors, (v) => v.y);
const throughput: Record<string, number> = {};
for (const kind of ['logistic', 'mlp'] as const) {
  const config = resolveConfig({ model: { kind } }, kind);
  const model = createModel(d, config.model, config.optimizer);
  const size = 256;
  const batches = Math.floor(vectors.length / size);
  const step = (b: number): void => {
    const batch = { n: size, d, x: X.subarray(b * size * d, (b + 1) * size * d) };
    model.predictProbaMany(batch);
    model.learnMany(batch, Y.subarray(b * size, (b + 1) * size));
  };
  for (let b = 0; b < 5; b++) step(b); // warm-up: kernels compiled, memory allocated
  const start = performance.now();
  for (let b = 0; b < batches; b++) step(b);
  throughput[kind] = (batches * size) / ((performance.now() - start) / 1000);
  model.dispose();
}
const riverFile = join(dir, 'vectors.jsonl');
writeFileSync(riverFile, vectors.map((v) => JSON.stringify({ x: Object.fromEntries(v.names.map((name, i) => [name, v.values[i]])), y: v.y })).join('\n'));
const riverRun = spawnSync('python3', [join(root, 'bench/river_throughput.py'), riverFile], { encoding: 'utf8' });
const river = riverRun.status === 0 ? (JSON.parse(riverRun.stdout) as { samples_per_s: number }).samples_per_s : NaN;
const riverVersion = spawnSync('python3', ['-c', 'import river; print(river.__version__)'], { encoding: 'utf8' }).stdout.trim() || 'not installed';

// 2. REES46 prequential, same features and label delays.
const rees46 = join(root, '../shared/data/rees46/2019-Oct_head.csv');
let rees46Rows = '| (skipped: ../shared/data/rees46 absent) | | | | |';
if (existsSync(rees46)) {
  const pipeline = parse(readFileSync(join(root, 'pipelines/intent-rees46.yaml'), 'utf8')) as { sources: Record<string, unknown>[]; stages: Record<string, unknown>[] };
  const source = { ...pipeline.sources[0]!, path: rees46 };
  const models = await run(source, pipeline.stages.map((s) => (isModel(s) ? { ...s, report: true } : s)), (r) => r.kind === 'model_metrics');
  const stream = await run(source, pipeline.stages.filter((s) => !isModel(s)), (r) => r.kind === 'event' || r.kind === 'session');
  const streamFile = join(dir, 'rees46-stream.jsonl');
  const { recordToJson } = await import('tributary');
  writeFileSync(streamFile, stream.kept.map((r) => recordToJson(r)).join('\n'));
  const rows: string[] = [];
  for (const report of models.kept) {
    const s = report.summary as { auc: number; logloss: number; brier: number; n: number; positives: number };
    rows.push(`| tributary ${report.model} (${report.kind_of_model}) | ${s.auc.toFixed(4)} | ${s.logloss.toFixed(4)} | ${s.brier.toFixed(4)} | ${n(s.n)} (${s.positives} positive) |`);
  }
  // River as it comes (intercept at 0), and with its intercept at the same prior as intent-model's.
  for (const args of [['0.01'], ['0.001'], ['0.001', '0.05'], ['0.0001', '0.05']]) {
    const out = spawnSync('python3', [join(root, 'bench/river_prequential.py'), streamFile, ...args], { encoding: 'utf8' });
    if (out.status !== 0) rows.push(`| River (failed: ${out.stderr.trim().split('\n').pop()}) | | | | |`);
    else {
      const r = JSON.parse(out.stdout) as { model: string; auc: number; logloss: number; brier: number; n: number; positives: number };
      rows.push(`| ${r.model} | ${r.auc.toFixed(4)} | ${r.logloss.toFixed(4)} | ${r.brier.toFixed(4)} | ${n(r.n)} (${r.positives} positive) |`);
    }
  }
  rees46Rows = rows.join('\n');
}

const demoModels = modelReports
  .map((r) => {
    const s = r.summary as { auc: number | null; logloss: number; n: number; positives: number };
    return `${r.model} AUC ${s.auc?.toFixed(3) ?? '-'}, log loss ${s.logloss.toFixed(3)} (${n(s.n)} labels, ${n(s.positives)} positive)`;
  })
  .join('; ');
// Before/after this session's model work, and what bounds the figures now (see git log for the changes).
const beforeAfter = `**Before / after the label-buffer and bookkeeping work** (models-speed branch against main at 1b66820, built side by side, 2026-11-25; the machine was shared with three other engineers' builds and benches, load average 3.6 to 15 on 2 cores, so wall-clock figures moved 2x between runs of the same code and the A/B below uses CPU time and profiles):

| measure | before (main) | after |
|---|---|---|
| model stages alone, CPU µs/event (intent + churn replayed over the demo's captured feature stream, 100,000 events; 4 alternating rounds, reps 3-6, medians of all; load 4.5-5.2) | 10.3 | 10.5 |
| model plugin code's own JavaScript, CPU-profile self time of 4 replays (4 alternating pairs) | 4,890 / 5,345 / 5,716 / 5,210 ms | 3,759 / 3,653 / 7,577 / 4,656 ms |
| garbage collection, same profiles | 1,397 / 1,289 / 1,982 / 1,420 ms | 969 / 921 / 2,578 / 1,274 ms |
| logistic predict / learn, 256 x 42, CPU per call (same process, interleaved, 2 runs) | 61-68 / 329-374 µs | 47-48 / 321-330 µs |
| whole demo pipeline / raw parse limit (this bench, one run each, load 3.6-7.4) | 0.08 | 0.08 |
| REES46 intent AUC / log loss (logistic, mlp, gru) | 0.6032 / 0.1582, 0.6026 / 0.1640, 0.6014 / 0.1711 | the same |

The profiles show the model code's own work and its garbage down by 10-30% (three of four pairs; the fourth ran during a load spike), but that is under 1 µs/event of the replay's ~10 and the end-to-end CPU and wall-clock figures cannot resolve it at this load: **the ratio did not move and the goal (0.35) is not met**. The outputs are the same floats as before (deterministic demo run with \`max_delay: 0\`: intent AUC 0.866304, log loss 0.266138; churn 0.506872 / 0.488302; the same scores).

What changed: task operators hold sample handles and the label buffer is a queue released lazily (no Map insertion, lookup and deletion by a hashed id per prediction); churn skips the per-event user lookup for a session's later events; a sample is one object shape from creation and keeps its slab and row offset instead of a view; predictions are built whole; logistic predicts without a reshape and keeps its 1/n scalar. A restore bug was fixed on the way (a snapshot's single pending sample, predicted alone, threw RangeError). New \`batch.learn_size\` (labelled samples per learning step, default \`max_size\`): on the demo stream \`learn_size: 1024\` cuts learning steps 377 -> 95 and scores better (intent AUC 0.8735 against 0.8663), but on REES46 logistic at 2x / 4x \`max_size\` scores log loss 0.1625 / 0.1679 against 0.1582 (AUC 0.6038 / 0.5801), so it is not the default. Tried and dropped: fused matMul+sigmoid and matMul+bias, and an untransposed row-form gradient product, all slower on wasm (XNNPACK packs a new operand every call).

What bounds it now: the goal needs the two model stages at ~2.3 µs/event, and TF.js alone costs ~1.5 µs/event at batch 256 (a logistic learning step ~330 µs CPU per 256 labels, a prediction batch ~50 µs); the rest is spread thin: normalising 42 features and hashing a prediction id per event (~10% of the stages' profile), churn's per-session bookkeeping, the windowed timeline (a sort of the 1,000-label window every 250 labels, ~0.3 µs per label), every prediction record passing churn and the runtime, and GC (10-15%). Only larger learning steps (a quality trade on short streams, above) or cheaper per-record costs in the runtime would move the ratio by much.`;

const markdown = `## Models

\`${commandLine()}\` — TensorFlow.js backend **${backend.backend}** (${backend.skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ') || 'first choice'}). There is no GPU on this machine, so tensorflow-gpu was not measured.

**Learn + predict throughput** on ${n(vectors.length)} real feature vectors (${d} features) from the demo pipeline (synthetic -> sessionizer -> session/user features -> log1p), normalised once; tributary runs micro-batches of 256 (predictProbaMany then learnMany, Adam); River ${riverVersion} runs predict_proba_one then learn_one per sample on the same vectors, in the same run.

| model | samples/s | vs River |
|---|---|---|
| tributary logistic | ${n(throughput.logistic!)} | ${(throughput.logistic! / river).toFixed(1)}x (goal >= 5x) |
| tributary mlp (32, 16) | ${n(throughput.mlp!)} | ${(throughput.mlp! / river).toFixed(1)}x (goal >= 1x) |
| River LogisticRegression | ${n(river)} | 1x |

**Prequential intent on the REES46 sample** (17,434 events; a prediction at every event before the session's first purchase, all labels at session close; test-then-train; AUC exact). The constant base rate (3.98%) would score log loss 0.168:

| model | AUC | log loss | Brier | labels |
|---|---|---|---|---|
${rees46Rows}

**Whole demo pipeline** (${n(events)} synthetic events as JSONL -> file source -> sessionizer -> session-features -> user-features -> log1p -> intent-model + churn-model (logistic) -> counting sink), median of 3:

| measure | value |
|---|---|
| raw parse limit (readline + JSON.parse) | ${n(rawRate)} events/s |
| same pipeline without the model stages | ${n(featuresRate)} events/s (ratio ${(featuresRate / rawRate).toFixed(2)}) |
| whole demo pipeline | ${n(wholeRate)} events/s |
| model stages (intent + churn) | ${modelUs.toFixed(1)} µs/event |
| ratio (goal >= 0.35) | **${(wholeRate / rawRate).toFixed(2)}** |

Demo models (prequential): ${demoModels}.

${beforeAfter}

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start of the run, ${loadavg()[0]!.toFixed(1)} at the end (a shared machine: other work ran at the same time, so the rates are low bounds). Measured ${new Date().toISOString().slice(0, 10)}.`;
writeSection(join(root, 'BENCHMARKS.md'), 'models', markdown);
process.stdout.write(`${markdown}\n`);

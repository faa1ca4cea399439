/**
 * The soak: the demo pipeline (bench/pipelines/soak.yaml) as a daemon at a steady rate on wall-clock
 * event time, watched through its own /metrics every `sample` seconds: heap, event-time lag
 * (wall clock - watermark) and p99 stage latency must stay flat. Writes a CSV and an SVG plot next to
 * BENCHMARKS.md (bench/results/) and a summary section.
 *
 *   node dist/bench/soak.js [minutes=30] [rate=2000] [sampleSeconds=10] [--write]
 *
 * `months` mode, the long run: months of event time in minutes of wall time. The daemon runs
 * bench/pipelines/soak-months.yaml, reading bench/soak-visitors.ts's visitors (1M+ distinct users over
 * `days`, most coming once) from its standard input as fast as it goes, checkpointing every 5 s, and
 * is watched for what grows with time or users rather than with traffic: heap after full collections
 * (--trace-gc), RSS, the checkpoint folder's files, /metrics' bytes and series, log lines, active
 * handles, the models' buffers and the per-user bounds. Writes bench/results/soak-months.csv and the
 * BENCHMARKS.md section "Long run".
 *
 *   node dist/bench/soak.js months [users=1050000] [days=180] [sampleSeconds=10] [maxMinutes=25] [--write]
 *
 * Only a run given `--write` replaces its section of BENCHMARKS.md and the files in bench/results; another prints
 * the section and keeps its samples in a temporary folder.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, positionalArgs, publishSection, recording } from './machine.js';
import { packageRoot as root } from '../core/paths.js';
import { commandNodeFlags } from '../core/cli/build.js';
import { visitorLines } from './soak-visitors.js';

const positional = positionalArgs();
const months = positional[0] === 'months';
const args = months ? positional.slice(1) : positional;
const minutes = months ? Number(args[3] ?? 25) : Number(args[0] ?? 30);
const rate = months ? 0 : Number(args[1] ?? 2000);
const sampleSeconds = Number(args[2] ?? 10);
const visitors = { users: Number(args[0] ?? 1_050_000), days: Number(args[1] ?? 180), badEvery: 100_000 };
const work = mkdtempSync(join(tmpdir(), 'tributary-soak-'));
const loadAtStart = loadavg()[0]!;

interface Sample {
  minute: number;
  eventsIn: number;
  eventsPerSecond: number;
  heapMiB: number;
  lagSeconds: number;
  p99Micros: number;
  openSessions: number;
  knownUsers: number;
  rssMiB: number;
  /** The V8 heap's committed pages (prom-client's nodejs_heap_size_total_bytes): used plus what each space keeps free until the next full collection. */
  heapCommittedMiB: number;
  /** Committed of the old space and of the large-object space (arrays, Maps' tables and strings over about 128 KiB). */
  oldSpaceMiB: number;
  largeObjectSpaceMiB: number;
  /** V8's external memory: ArrayBuffers and Buffers, the wasm backend's linear memory, external strings. */
  externalMiB: number;
  arrayBuffersMiB: number;
  /** The wasm backend's linear memory (NaN on another backend). */
  wasmMiB: number;
  /** RSS less the V8 heap's committed pages and the external memory: malloc's own (arenas, fragmentation), code, stacks, the node binary. */
  nativeRestMiB: number;
  openFds: number;
  /** Bytes of every file in the checkpoint folder: old checkpoints must be pruned (`keep`). */
  checkpointDirMiB: number;
  checkpointFiles: number;
  /** Heap after the last full (mark-compact) collection before the sample, from --trace-gc. */
  heapAfterGcMiB: number;
  /** Days of event time since the first event (the watermark's). */
  eventDays: number;
  metricsBytes: number;
  metricsSeries: number;
  /** Log lines (stderr) since the last sample, and warnings or worse in all. */
  logLines: number;
  warnings: number;
  activeHandles: number;
  intentLabelBuffer: number;
  churnLabelBuffer: number;
  /** Share of churn labels that were 1 so far: eviction that drops returners' labels lifts it. */
  churnBaseRate: number;
  usersEvicted: number;
  churnUsersEvicted: number;
  labelsExpired: number;
  labelBufferOverflows: number;
  deadLetters: number;
  deadLetterFileMiB: number;
}

/** Total size of the files in `dir` (0 when it is not there yet), and how many there are. */
function folder(dir: string): { mib: number; files: number } {
  let bytes = 0;
  let files = 0;
  try {
    for (const name of readdirSync(dir)) {
      try {
        bytes += statSync(join(dir, name)).size;
        files++;
      } catch {
        // a temp checkpoint renamed meanwhile
      }
    }
  } catch {
    // no checkpoint yet
  }
  return { mib: bytes / 2 ** 20, files };
}

function fileMiB(path: string): number {
  try {
    return statSync(path).size / 2 ** 20;
  } catch {
    return 0;
  }
}

/** The sum of a metric's series (every label set), 0 when it has none. */
function total(series: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [key, value] of series) if (key === name || key.startsWith(`${name}{`)) sum += value;
  return sum;
}

/** Prometheus text -> series name with labels -> value. */
function parseMetrics(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const space = line.lastIndexOf(' ');
    series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}

/** p99 over all stages' latency histograms, from the bucket counts added since the last sample. */
function p99Since(now: Map<string, number>, before: Map<string, number>): number {
  const perStage = new Map<string, { le: number; count: number }[]>();
  for (const [name, value] of now) {
    const match = /^tributary_stage_latency_seconds_bucket\{le="([^"]+)",pipeline="soak",stage="([^"]+)"\}$/.exec(name);
    if (!match) continue;
    const delta = value - (before.get(name) ?? 0);
    const list = perStage.get(match[2]!) ?? [];
    list.push({ le: match[1] === '+Inf' ? Infinity : Number(match[1]), count: delta });
    perStage.set(match[2]!, list);
  }
  let worst = 0;
  for (const buckets of perStage.values()) {
    buckets.sort((a, b) => a.le - b.le);
    const total = buckets.at(-1)?.count ?? 0;
    if (total === 0) continue;
    const bucket = buckets.find((b) => b.count >= 0.99 * total)!;
    worst = Math.max(worst, bucket.le);
  }
  return worst * 1e6;
}

function svgPlot(samples: readonly Sample[]): string {
  const charts: { key: keyof Sample; title: string; unit: string }[] = [
    { key: 'heapMiB', title: 'heap used', unit: 'MiB' },
    { key: 'lagSeconds', title: 'event-time lag (wall - watermark)', unit: 's' },
    { key: 'p99Micros', title: 'p99 stage latency per record (bucket bound)', unit: 'µs' },
    { key: 'eventsPerSecond', title: 'events/s', unit: '' },
  ];
  const width = 640;
  const height = 150;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${charts.length * (height + 30)}" font-family="sans-serif" font-size="11">`];
  charts.forEach((chart, index) => {
    const top = index * (height + 30) + 20;
    const values = samples.map((s) => Number(s[chart.key]));
    const max = Math.max(...values, 1e-9) * 1.1;
    const x = (minute: number): number => 50 + (minute / Math.max(minutes, 1e-9)) * (width - 70);
    const y = (value: number): number => top + height - (value / max) * height;
    parts.push(`<text x="50" y="${top - 5}">${chart.title} (max ${max.toFixed(1)} ${chart.unit})</text>`);
    parts.push(`<rect x="50" y="${top}" width="${width - 70}" height="${height}" fill="none" stroke="#ccc"/>`);
    parts.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${samples.map((s) => `${x(s.minute).toFixed(1)},${y(Number(s[chart.key])).toFixed(1)}`).join(' ')}"/>`);
    parts.push(`<text x="5" y="${top + 10}">${max.toFixed(0)}</text><text x="5" y="${top + height}">0</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * The intent model's label buffer: a prediction waits for its session's end, 24-29 s of events (the
 * 20 s gap and the rest of its session: a 2,000 events/s checkpoint held 47,196, 6,839 open sessions
 * x 6.9 predictions; at 5,000 events/s 146,000 awaited after 3 minutes, level), twice 24 s for the
 * swings; never below the default 100,000, which overflowed at 5,000 events/s, dropping predictions unscored.
 */
const labelBuffer = Math.max(100_000, Math.ceil(rate * 24 * 2));

const pipeline = join(root, months ? 'bench/pipelines/soak-months.yaml' : 'bench/pipelines/soak.yaml');
// As the `tributary` command runs (its node flags: the young generation), and --trace-gc for the heap samples.
const child = spawn(process.execPath, [...commandNodeFlags(), '--trace-gc', join(root, 'dist/core/cli/tributary.cjs'), 'run', pipeline, '--http-port', '0', '--log-level', 'info'], {
  cwd: work,
  env: { ...process.env, SOAK_RATE: String(rate), SOAK_LABEL_BUFFER: String(labelBuffer), SOAK_OUT: join(work, 'predictions.jsonl'), SOAK_CHECKPOINTS: join(work, 'checkpoints') },
  stdio: [months ? 'pipe' : 'ignore', 'pipe', 'pipe'],
});
let log = '';
/** The log's end: the run's summary record at exit. */
let logTail = '';
let logLines = 0;
let warnings = 0;
const warningCounts = new Map<string, number>();
let pendingLog = '';
child.stderr!.on('data', (chunk: Buffer) => {
  const text = chunk.toString();
  if (log.length < 100_000) log += text;
  logTail = (logTail + text).slice(-20_000);
  pendingLog += text;
  const lines = pendingLog.split('\n');
  pendingLog = lines.pop()!;
  for (const line of lines) {
    logLines++;
    const level = /"level":(\d+)/.exec(line);
    if (level && Number(level[1]) >= 40) {
      warnings++;
      const msg = /"msg":"([^"]{0,80})/.exec(line)?.[1] ?? line.slice(0, 80);
      warningCounts.set(msg, (warningCounts.get(msg) ?? 0) + 1);
    }
  }
});
let heapAfterGcMiB = NaN;
let pendingGc = '';
child.stdout!.on('data', (chunk: Buffer) => {
  const lines = (pendingGc + chunk.toString()).split('\n');
  pendingGc = lines.pop()!;
  for (const line of lines) {
    const after = /Mark-Compact[^>]*-> ([\d.]+)/.exec(line);
    if (after) heapAfterGcMiB = Number(after[1]);
  }
});
let linesWritten = 0;
let inputDone = false;
if (months) {
  // As fast as the daemon reads: each batch waits for the pipe to drain.
  const stdin = child.stdin!;
  stdin.on('error', () => undefined); // the daemon stopped at the time limit, before the input's end
  void (async () => {
    for (const batch of visitorLines({ users: visitors.users, start: Date.parse('2026-05-01T00:00:00Z'), span: visitors.days * 86_400_000, badEvery: visitors.badEvery })) {
      for (let i = batch.indexOf('\n'); i >= 0; i = batch.indexOf('\n', i + 1)) linesWritten++;
      if (!stdin.write(batch)) await new Promise((resolve) => stdin.once('drain', resolve));
      if (child.exitCode !== null) return;
    }
    stdin.end();
    inputDone = true;
  })();
}
const started = Date.now();
while (!/"port":(\d+)/.test(log)) {
  if (Date.now() - started > 60_000 || child.exitCode !== null) throw new Error(`the daemon did not start:\n${log}`);
  await new Promise((resolve) => setTimeout(resolve, 100));
}
const base = `http://127.0.0.1:${/"port":(\d+)/.exec(log)![1]}`;
const samples: Sample[] = [];
let previous = new Map<string, number>();
let previousAt = Date.now();
let previousLogLines = 0;
let firstEventTime = NaN;
while (Date.now() - started < minutes * 60_000) {
  await new Promise((resolve) => setTimeout(resolve, sampleSeconds * 1000));
  // The input read to its end: the daemon stops once it has written its outputs.
  if (child.exitCode !== null) break;
  let text: string;
  try {
    text = await (await fetch(`${base}/metrics`)).text();
  } catch {
    break; // stopping at the input's end
  }
  const now = parseMetrics(text);
  const at = Date.now();
  const watermark = at - (now.get('tributary_watermark_lag_seconds{pipeline="soak"}') ?? NaN) * 1000;
  if (Number.isNaN(firstEventTime) && Number.isFinite(watermark)) firstEventTime = months ? Date.parse('2026-05-01T00:00:00Z') : watermark;
  const checkpoints = folder(join(work, 'checkpoints'));
  const eventsIn = now.get('tributary_records_in_total{pipeline="soak"}') ?? 0;
  samples.push({
    minute: (at - started) / 60_000,
    eventsIn,
    eventsPerSecond: ((eventsIn - (previous.get('tributary_records_in_total{pipeline="soak"}') ?? 0)) / (at - previousAt)) * 1000,
    heapMiB: (now.get('tributary_heap_used_bytes') ?? 0) / 2 ** 20,
    lagSeconds: now.get('tributary_watermark_lag_seconds{pipeline="soak"}') ?? NaN,
    p99Micros: p99Since(now, previous),
    openSessions: now.get('tributary_open_sessions{pipeline="soak",stage="stage-sessionizer-0"}') ?? NaN,
    knownUsers: now.get('tributary_known_users{pipeline="soak",stage="stage-user-features-2"}') ?? NaN,
    rssMiB: (now.get('tributary_process_resident_memory_bytes') ?? NaN) / 2 ** 20,
    heapCommittedMiB: (now.get('tributary_nodejs_heap_size_total_bytes') ?? NaN) / 2 ** 20,
    oldSpaceMiB: (now.get('tributary_nodejs_heap_space_size_total_bytes{space="old"}') ?? NaN) / 2 ** 20,
    largeObjectSpaceMiB: (now.get('tributary_nodejs_heap_space_size_total_bytes{space="large_object"}') ?? NaN) / 2 ** 20,
    externalMiB: (now.get('tributary_nodejs_external_memory_bytes') ?? NaN) / 2 ** 20,
    arrayBuffersMiB: (now.get('tributary_array_buffers_bytes') ?? NaN) / 2 ** 20,
    // Process-wide: every model's series says the same.
    wasmMiB: (now.get('tributary_model_backend_info{pipeline="soak",stage="stage-intent-model-4",model="intent",backend="wasm"}') === 1 ? (now.get('tributary_model_backend_memory_bytes{pipeline="soak",stage="stage-intent-model-4",model="intent"}') ?? NaN) : NaN) / 2 ** 20,
    nativeRestMiB: ((now.get('tributary_process_resident_memory_bytes') ?? NaN) - (now.get('tributary_nodejs_heap_size_total_bytes') ?? NaN) - (now.get('tributary_nodejs_external_memory_bytes') ?? NaN)) / 2 ** 20,
    openFds: now.get('tributary_process_open_fds') ?? NaN,
    checkpointDirMiB: checkpoints.mib,
    checkpointFiles: checkpoints.files,
    heapAfterGcMiB,
    eventDays: (watermark - firstEventTime) / 86_400_000,
    metricsBytes: Buffer.byteLength(text),
    metricsSeries: now.size,
    logLines: logLines - previousLogLines,
    warnings,
    activeHandles: now.get('tributary_nodejs_active_handles_total') ?? NaN,
    intentLabelBuffer: total(now, 'tributary_model_label_buffer') - (now.get('tributary_model_label_buffer{pipeline="soak",stage="stage-churn-model-5",model="churn"}') ?? 0),
    churnLabelBuffer: now.get('tributary_model_label_buffer{pipeline="soak",stage="stage-churn-model-5",model="churn"}') ?? NaN,
    churnBaseRate: now.get('tributary_model_base_rate{pipeline="soak",stage="stage-churn-model-5",model="churn"}') ?? NaN,
    usersEvicted: total(now, 'tributary_users_evicted_total'),
    churnUsersEvicted: total(now, 'tributary_churn_users_evicted_total'),
    labelsExpired: total(now, 'tributary_model_labels_expired_total'),
    labelBufferOverflows: total(now, 'tributary_model_label_buffer_overflow_total'),
    deadLetters: total(now, 'tributary_dead_letters_total'),
    deadLetterFileMiB: fileMiB(join(work, 'dead-letters-soak.jsonl')),
  });
  previous = now;
  previousAt = at;
  previousLogLines = logLines;
  const last = samples.at(-1)!;
  process.stderr.write(
    `${last.minute.toFixed(1)} min: ${last.eventsIn} events (day ${last.eventDays.toFixed(1)}), ${last.eventsPerSecond.toFixed(0)}/s, heap ${last.heapMiB.toFixed(0)} MiB (after GC ${last.heapAfterGcMiB.toFixed(0)}), RSS ${last.rssMiB.toFixed(0)} MiB (V8 heap committed ${last.heapCommittedMiB.toFixed(0)}: old ${last.oldSpaceMiB.toFixed(0)}, large objects ${last.largeObjectSpaceMiB.toFixed(0)}; external ${last.externalMiB.toFixed(0)}: ArrayBuffers ${last.arrayBuffersMiB.toFixed(0)}, wasm ${last.wasmMiB.toFixed(0)}; native rest ${last.nativeRestMiB.toFixed(0)}), ${last.knownUsers} known users (evicted ${last.usersEvicted}; churn ${last.churnUsersEvicted}), label buffers ${last.intentLabelBuffer}/${last.churnLabelBuffer} (expired ${last.labelsExpired}, overflow ${last.labelBufferOverflows}), churn base rate ${last.churnBaseRate.toFixed(3)}, ${last.openFds} fds, ${last.activeHandles} handles, checkpoints ${last.checkpointFiles} files ${last.checkpointDirMiB.toFixed(1)} MiB, /metrics ${last.metricsSeries} series ${last.metricsBytes} B, ${last.logLines} log lines (${last.warnings} warnings), dead letters ${last.deadLetters} (${last.deadLetterFileMiB.toFixed(2)} MiB), lag ${last.lagSeconds.toFixed(1)} s, p99 ${last.p99Micros.toFixed(0)} µs\n`,
  );
}
if (child.exitCode === null) child.kill('SIGTERM');
const exitCode = child.exitCode ?? (await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))));
if (months) {
  process.stderr.write(`input: ${linesWritten} lines written, ${inputDone ? 'to its end' : 'cut at the time limit'}; the daemon's last log lines:\n${logTail.trim().split('\n').slice(-3).join('\n')}\n`);
  process.stderr.write(`warnings by message: ${JSON.stringify([...warningCounts])}\n`);
}

// bench/results holds the recorded run's samples and plot, which the sections link to: an ad-hoc run keeps its own apart.
const results = recording() ? join(root, 'bench', 'results') : mkdtempSync(join(tmpdir(), 'tributary-soak-results-'));
mkdirSync(results, { recursive: true });
if (!recording()) process.stderr.write(`samples and plot in ${results} (--write puts them in bench/results)\n`);
if (months) writeLongRun(results, exitCode);
else {
  writeFileSync(
    join(results, 'soak.csv'),
    [
      'minute,events_in,events_per_s,heap_mib,lag_s,p99_us,open_sessions,known_users,rss_mib,open_fds,checkpoint_dir_mib',
      ...samples.map((s) =>
        [s.minute.toFixed(2), s.eventsIn, s.eventsPerSecond.toFixed(0), s.heapMiB.toFixed(1), s.lagSeconds.toFixed(2), s.p99Micros.toFixed(1), s.openSessions, s.knownUsers, s.rssMiB.toFixed(1), s.openFds, s.checkpointDirMiB.toFixed(1)].join(','),
      ),
    ].join('\n') + '\n',
  );
  writeFileSync(join(results, 'soak.svg'), svgPlot(samples));
  const third = (from: number, to: number): Sample[] => samples.filter((s) => s.minute >= (minutes * from) / 3 && s.minute < (minutes * to) / 3 + 1e-9);
  const mean = (list: Sample[], key: keyof Sample): number => list.reduce((sum, s) => sum + Number(s[key]), 0) / Math.max(1, list.length);
  // The mean of a sawtooth depends on where the collector happens to be; the lowest sample (just
  // after a major GC) is what a leak would lift.
  const lowestHeap = (list: Sample[]): number => list.reduce((low, s) => Math.min(low, s.heapMiB), Infinity);
  const measures: [label: string, of: (list: Sample[]) => number, digits: number][] = [
    ['heap used (MiB)', (list) => mean(list, 'heapMiB'), 1],
    ['heap used, lowest sample (MiB)', lowestHeap, 1],
    ['open sessions', (list) => mean(list, 'openSessions'), 0],
    ['known users', (list) => mean(list, 'knownUsers'), 0],
    ['RSS, highest sample (MiB)', (list) => list.reduce((high, s) => Math.max(high, s.rssMiB), 0), 0],
    ['open file descriptors, highest sample', (list) => list.reduce((high, s) => Math.max(high, s.openFds), 0), 0],
    ['checkpoint folder, highest sample (MiB)', (list) => list.reduce((high, s) => Math.max(high, s.checkpointDirMiB), 0), 1],
    ['event-time lag (s)', (list) => mean(list, 'lagSeconds'), 1],
    ['p99 stage latency (µs)', (list) => mean(list, 'p99Micros'), 1],
    ['events/s', (list) => mean(list, 'eventsPerSecond'), 1],
  ];
  const rows = measures.map(([label, of, digits]) => `| ${label} | ${[third(0, 1), third(1, 2), third(2, 3)].map((list) => of(list).toFixed(digits)).join(' | ')} |`);
  publishSection(
    'soak',
    `## Soak (daemon)

\`node dist/bench/soak.js ${minutes} ${rate} ${sampleSeconds} --write\` — [bench/pipelines/soak.yaml](bench/pipelines/soak.yaml) (synthetic shoppers at ${rate} events/s on wall-clock event time -> sessionizer -> features -> intent and churn models -> file sink, checkpoints every 30 s) run as a daemon for ${minutes} minutes, sampled through its own \`/metrics\` every ${sampleSeconds} s. Means per third of the run, and the lowest heap sample of each third (flat = no leak, no drift):

| measure | first third | second third | last third |
|---|---|---|---|
${rows.join('\n')}

Plot: [bench/results/soak.svg](bench/results/soak.svg); samples: [bench/results/soak.csv](bench/results/soak.csv). ${samples.at(-1)?.eventsIn.toLocaleString('en-US') ?? 0} events in; the daemon exited ${exitCode} on SIGTERM.

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end. Measured ${new Date().toISOString().slice(0, 10)}.`,
  );
}
rmSync(work, { recursive: true, force: true });

/** The memory knobs this run's daemon had: the command's node flags, and any from the environment (the bench passes its own on), for the section's reader. */
function memoryKnobs(): string {
  const set = ['NODE_OPTIONS', 'MALLOC_ARENA_MAX', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_'].filter((name) => process.env[name]);
  return ` (node ${commandNodeFlags().join(' ')}, as the tributary command runs${set.length === 0 ? '' : `; run with ${set.map((name) => `${name}=${process.env[name]}`).join(' ')}`})`;
}

/** The `months` run: every sample to bench/results/soak-months.csv, about a dozen of them to the "Long run" section. */
function writeLongRun(results: string, exitCode: number | null): void {
  const columns: [header: string, of: (s: Sample) => string][] = [
    ['minute', (s) => s.minute.toFixed(1)],
    ['event day', (s) => s.eventDays.toFixed(0)],
    ['events in', (s) => String(s.eventsIn)],
    ['events/s', (s) => s.eventsPerSecond.toFixed(0)],
    ['heap after full GC (MiB)', (s) => s.heapAfterGcMiB.toFixed(0)],
    ['RSS (MiB)', (s) => s.rssMiB.toFixed(0)],
    ['V8 heap committed (MiB)', (s) => s.heapCommittedMiB.toFixed(0)],
    ['of which old / large-object space', (s) => `${s.oldSpaceMiB.toFixed(0)} / ${s.largeObjectSpaceMiB.toFixed(0)}`],
    ['external (MiB)', (s) => s.externalMiB.toFixed(0)],
    ['of which ArrayBuffers / wasm memory', (s) => `${s.arrayBuffersMiB.toFixed(0)} / ${s.wasmMiB.toFixed(0)}`],
    ['RSS - heap committed - external (MiB)', (s) => s.nativeRestMiB.toFixed(0)],
    ['known users', (s) => String(s.knownUsers)],
    ['users evicted', (s) => String(s.usersEvicted)],
    ['churn users evicted', (s) => String(s.churnUsersEvicted)],
    ['open sessions', (s) => String(s.openSessions)],
    ['label buffers intent / churn', (s) => `${s.intentLabelBuffer} / ${s.churnLabelBuffer}`],
    ['labels expired', (s) => String(s.labelsExpired)],
    ['buffer overflows', (s) => String(s.labelBufferOverflows)],
    ['churn base rate', (s) => s.churnBaseRate.toFixed(3)],
    ['checkpoint files / MiB', (s) => `${s.checkpointFiles} / ${s.checkpointDirMiB.toFixed(0)}`],
    ['/metrics series / bytes', (s) => `${s.metricsSeries} / ${s.metricsBytes}`],
    ['log lines since last', (s) => String(s.logLines)],
    ['warnings (all)', (s) => String(s.warnings)],
    ['active handles', (s) => String(s.activeHandles)],
    ['open fds', (s) => String(s.openFds)],
    ['dead letters / file MiB', (s) => `${s.deadLetters} / ${s.deadLetterFileMiB.toFixed(2)}`],
  ];
  writeFileSync(join(results, 'soak-months.csv'), [columns.map(([h]) => `"${h}"`).join(','), ...samples.map((s) => columns.map(([, of]) => `"${of(s)}"`).join(','))].join('\n') + '\n');
  const step = Math.max(1, Math.ceil(samples.length / 12));
  const shown = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  // Transposed: one row per measure, one column per sample shown (time runs left to right).
  const table = [`| ${columns[0]![0]} | ${shown.map((s) => columns[0]![1](s)).join(' | ')} |`, `|---|${shown.map(() => '---').join('|')}|`, ...columns.slice(1).map(([h, of]) => `| ${h} | ${shown.map(of).join(' | ')} |`)];
  publishSection(
    'soak-months',
    `## Long run (months of event time)

\`node dist/bench/soak.js months ${visitors.users} ${visitors.days} ${sampleSeconds} ${minutes} --write\` — [bench/pipelines/soak-months.yaml](bench/pipelines/soak-months.yaml) as a daemon (\`tributary run\`, HTTP metrics on, checkpoints every 5 s, \`max_users\` 200,000 in user-features and churn, \`max_open_sessions\` 100,000) reading [bench/soak-visitors.ts](bench/soak-visitors.ts)'s visitors from its standard input as fast as it takes them: ${visitors.users.toLocaleString('en-US')} distinct users arriving over ${visitors.days} days of event time (4 in 5 come once, the others a few times days apart; one line in ${visitors.badEvery.toLocaleString('en-US')} not JSON), ${linesWritten.toLocaleString('en-US')} lines written${inputDone ? ', all read' : ' when the time limit stopped it'}. Sampled every ${sampleSeconds} s (heap after full GC from the daemon's \`--trace-gc\`; the others from its \`/metrics\` and the folder); ${shown.length} of ${samples.length} samples shown, all in [bench/results/soak-months.csv](bench/results/soak-months.csv):

${table.join('\n')}

The daemon exited ${exitCode}${memoryKnobs()}. Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end. Measured ${new Date().toISOString().slice(0, 10)}.`,
  );
}

/**
 * The soak: the demo pipeline (bench/pipelines/soak.yaml) as a daemon at a steady rate on wall-clock
 * event time, watched through its own /metrics every `sample` seconds: heap, event-time lag
 * (wall clock - watermark) and p99 stage latency must stay flat. Writes a CSV and an SVG plot next to
 * BENCHMARKS.md (bench/results/) and a summary section.
 *
 *   node dist/bench/soak.js [minutes=30] [rate=2000] [sampleSeconds=10]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, writeSection } from './machine.js';
import { packageRoot as root } from '../core/paths.js';

const minutes = Number(process.argv[2] ?? 30);
const rate = Number(process.argv[3] ?? 2000);
const sampleSeconds = Number(process.argv[4] ?? 10);
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
  openFds: number;
  /** Bytes of every file in the checkpoint folder: old checkpoints must be pruned (`keep`). */
  checkpointDirMiB: number;
}

/** Total size of the files in `dir` (0 when it is not there yet). */
function folderMiB(dir: string): number {
  let bytes = 0;
  try {
    for (const name of readdirSync(dir)) {
      try {
        bytes += statSync(join(dir, name)).size;
      } catch {
        // a temp checkpoint renamed meanwhile
      }
    }
  } catch {
    // no checkpoint yet
  }
  return bytes / 2 ** 20;
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

const child = spawn(process.execPath, [join(root, 'dist/core/cli/main.js'), 'run', join(root, 'bench/pipelines/soak.yaml'), '--http-port', '0', '--log-level', 'info'], {
  env: { ...process.env, SOAK_RATE: String(rate), SOAK_LABEL_BUFFER: String(labelBuffer), SOAK_OUT: join(work, 'predictions.jsonl'), SOAK_CHECKPOINTS: join(work, 'checkpoints') },
  stdio: ['ignore', 'ignore', 'pipe'],
});
let log = '';
child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
const started = Date.now();
while (!/"port":(\d+)/.test(log)) {
  if (Date.now() - started > 60_000 || child.exitCode !== null) throw new Error(`the daemon did not start:\n${log}`);
  await new Promise((resolve) => setTimeout(resolve, 100));
}
const base = `http://127.0.0.1:${/"port":(\d+)/.exec(log)![1]}`;
const samples: Sample[] = [];
let previous = new Map<string, number>();
let previousAt = Date.now();
while (Date.now() - started < minutes * 60_000) {
  await new Promise((resolve) => setTimeout(resolve, sampleSeconds * 1000));
  const now = parseMetrics(await (await fetch(`${base}/metrics`)).text());
  const at = Date.now();
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
    openFds: now.get('tributary_process_open_fds') ?? NaN,
    checkpointDirMiB: folderMiB(join(work, 'checkpoints')),
  });
  previous = now;
  previousAt = at;
  const last = samples.at(-1)!;
  process.stderr.write(`${last.minute.toFixed(1)} min: ${last.eventsIn} events, ${last.eventsPerSecond.toFixed(0)}/s, heap ${last.heapMiB.toFixed(0)} MiB, RSS ${last.rssMiB.toFixed(0)} MiB, ${last.knownUsers} known users, ${last.openFds} fds, checkpoints ${last.checkpointDirMiB.toFixed(1)} MiB, lag ${last.lagSeconds.toFixed(1)} s, p99 ${last.p99Micros.toFixed(0)} µs\n`);
}
child.kill('SIGTERM');
const exitCode = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

const results = join(root, 'bench', 'results');
mkdirSync(results, { recursive: true });
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
writeSection(
  join(root, 'BENCHMARKS.md'),
  'soak',
  `## Soak (daemon)

\`node dist/bench/soak.js ${minutes} ${rate} ${sampleSeconds}\` — [bench/pipelines/soak.yaml](bench/pipelines/soak.yaml) (synthetic shoppers at ${rate} events/s on wall-clock event time -> sessionizer -> features -> intent and churn models -> file sink, checkpoints every 30 s) run as a daemon for ${minutes} minutes, sampled through its own \`/metrics\` every ${sampleSeconds} s. Means per third of the run, and the lowest heap sample of each third (flat = no leak, no drift):

| measure | first third | second third | last third |
|---|---|---|---|
${rows.join('\n')}

Plot: [bench/results/soak.svg](bench/results/soak.svg); samples: [bench/results/soak.csv](bench/results/soak.csv). ${samples.at(-1)?.eventsIn.toLocaleString('en-US') ?? 0} events in; the daemon exited ${exitCode} on SIGTERM.

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end. Measured ${new Date().toISOString().slice(0, 10)}.`,
);
rmSync(work, { recursive: true, force: true });

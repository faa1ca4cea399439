/** The machine a benchmark ran on, for BENCHMARKS.md: figures mean nothing without it. */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}

/** How this bench was started (node's own flags included, e.g. the young-generation size), for the section's first line. */
export function commandLine(): string {
  const script = process.argv[1]!.replace(/^.*?(dist\/bench\/)/, '$1');
  return ['node', ...process.execArgv, script, ...process.argv.slice(2)].join(' ');
}

/**
 * Whether this run records its figures: `--write` among the bench's arguments. Only a recorded run
 * replaces its section of BENCHMARKS.md; an ad-hoc one (an A/B pair, other arguments, a loaded host)
 * must not overwrite the quiet-host figures.
 */
export function recording(argv: readonly string[] = process.argv): boolean {
  return argv.slice(2).includes('--write');
}

/** The bench's positional arguments: its arguments less the flags (`--write`, `--rounds=5`), so a flag anywhere shifts none of them. */
export function positionalArgs(argv: readonly string[] = process.argv): string[] {
  return argv.slice(2).filter((arg) => !arg.startsWith('--'));
}

/**
 * A bench's section of BENCHMARKS.md: printed, and written between its `<!-- bench:NAME -->` markers
 * (replacing the recorded one) only when the run was given `--write` (see `recording`).
 */
export function publishSection(name: string, markdown: string, options: { argv?: readonly string[]; path?: string } = {}): void {
  // Relative to this file (dist/bench/machine.js), not core's packageRoot: a bench copied into an older build's dist/bench still finds it.
  const path = options.path ?? fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
  process.stdout.write(`${markdown.trim()}\n`);
  if (recording(options.argv)) {
    writeSection(path, name, markdown);
    process.stderr.write(`wrote the ${name} section of ${path}\n`);
  } else {
    process.stderr.write(`${path} left as it is: run with --write to record this as the ${name} section\n`);
  }
}

/** Replaces (or appends) the section between `<!-- bench:NAME -->` markers in BENCHMARKS.md. */
function writeSection(path: string, name: string, markdown: string): void {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  let text = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n\nFigures from `bench/` (recorded with `npm run bench -- NAME [args...] --write`), with the machine they ran on.\n';
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  text = from >= 0 && to > from ? text.slice(0, from) + block + text.slice(to + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, text);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The median: the middle value of an odd count, the mean of the two middle values of an even one
 * (median([1, 2]) = 1.5); NaN for none. Not always one of `values`: a caller that needs "the median
 * run" itself (to read its other fields) picks it with another helper.
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

let probeLines: string[] | undefined;

/**
 * How fast this host runs right now: µs per JSON.parse of a fixed event line (the fastest of 5
 * passes over 20,000 lines, about 0.1 s in all). This machine's speed drifts by up to 1.5-2x within
 * minutes (other tenants); printed beside a run, it tells a slow spell from a slow change.
 */
export function hostProbe(): number {
  probeLines ??= Array.from({ length: 20_000 }, (_, i) =>
    JSON.stringify({ user_id: `u${(i * 7919) % 100_000}`, time: 1_704_067_200_000 + i * 1_000, type: i % 9 === 0 ? 'cart' : 'view', item_id: `i${(i * 104_729) % 50_000}`, category: 'electronics.smartphone', price: ((i * 37) % 100_000) / 100 }),
  );
  let best = Infinity;
  let sink = 0;
  for (let pass = 0; pass < 5; pass++) {
    const start = performance.now();
    for (const line of probeLines) sink += (JSON.parse(line) as { time: number }).time & 1;
    best = Math.min(best, performance.now() - start);
  }
  if (sink < 0) throw new Error('unreachable');
  return (best * 1000) / probeLines.length;
}

/** CPU time of the main thread so far, ms (its schedstat: nanoseconds on a CPU); NaN where there is no /proc. */
function mainThreadCpuMs(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return NaN;
  }
}

/**
 * The longest time the event loop went without turning while `work` ran, as a 1 ms timer sees it
 * (the longest gap between its ticks), with the CPU time the process (all its threads) spent in that
 * gap: on a shared host a gap with little CPU in it is the process waiting for a core, not work
 * holding the loop; and the most CPU in any one gap (on a loaded host the heaviest gap is not always
 * the longest). Also the work's wall and CPU time, and the main thread's own CPU time (Linux:
 * /proc schedstat; NaN elsewhere), which leaves out what the process's other threads did meanwhile
 * (libuv's pool: file writes, zlib).
 */
export async function watchLoop<T>(work: () => Promise<T>): Promise<{ value: T; ms: number; cpuMs: number; mainThreadCpuMs: number; longestMs: number; longestCpuMs: number; heaviestCpuMs: number; over100: number }> {
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  let longestMs = 0;
  let longestCpuMs = 0;
  let heaviestCpuMs = 0;
  let over100 = 0;
  const tick = (): void => {
    const now = performance.now();
    const cpu = process.cpuUsage();
    const gap = now - last;
    const gapCpuMs = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
    if (gap > 100) over100++;
    heaviestCpuMs = Math.max(heaviestCpuMs, gapCpuMs);
    if (gap > longestMs) {
      longestMs = gap;
      longestCpuMs = gapCpuMs;
    }
    last = now;
    lastCpu = cpu;
  };
  const timer = setInterval(tick, 1);
  const started = performance.now();
  const startedCpu = process.cpuUsage();
  const startedMainThread = mainThreadCpuMs();
  last = started;
  lastCpu = startedCpu;
  const value = await work();
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(startedCpu);
  tick();
  clearInterval(timer);
  return { value, ms, cpuMs: (cpu.user + cpu.system) / 1000, mainThreadCpuMs: mainThreadCpuMs() - startedMainThread, longestMs, longestCpuMs, heaviestCpuMs, over100 };
}

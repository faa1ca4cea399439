/**
 * What each stage of the sessionize bench's pipeline adds per event: the pipeline run with its first
 * k stages, k = 0 (file source -> sink) to all seven, in alternating rounds; a stage's cost is the
 * difference between the runs with and without it in the same round (median over the rounds), in
 * wall time and in the process's CPU time (all threads: GC helpers included). A profile splits the
 * time by function; this says what removing or speeding up a stage would save end to end, cache
 * misses and garbage included.
 *
 *   node --expose-gc dist/bench/stage-costs.js [events=1000000] [users=100000] [rounds=5] [--write]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { commandLine, machine, median, positionalArgs, publishSection } from './machine.js';
import { rawParseMs, runPipeline, sessionizeStagesYaml, writeSyntheticEvents } from './data.js';

const [eventsArg, usersArg, roundsArg] = positionalArgs();
const events = Number(eventsArg ?? 1_000_000);
const users = Number(usersArg ?? 100_000);
const rounds = Number(roundsArg ?? 5);
const loadAtStart = loadavg()[0]!;
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-stages-'));
const input = join(dir, 'events.jsonl');
await writeSyntheticEvents(input, events, users);
const stages = (parse(sessionizeStagesYaml) as { stages: Record<string, unknown>[] }).stages;
const source = { type: 'file', path: input, mapping: { time_format: 'epoch_ms' } };
const gc = (): void => {
  if (!global.gc) throw new Error('run with node --expose-gc');
  global.gc();
  global.gc();
};

/** µs per event of the pipeline with its first `k` stages: wall and process CPU. */
async function run(k: number): Promise<{ wall: number; cpu: number }> {
  gc();
  const { ms, cpuUs, eventsIn } = await runPipeline(source, stages.slice(0, k), () => false, dir);
  if (eventsIn !== events) throw new Error(`read ${eventsIn} of ${events} events`);
  return { wall: (ms * 1000) / events, cpu: cpuUs / events };
}

const raw: number[] = [];
/** Runs with the first k stages, by k = 0..stages.length, one per round. */
const byK: { wall: number; cpu: number }[][] = Array.from({ length: stages.length + 1 }, () => []);
await run(stages.length); // warm-up, not counted
for (let round = 0; round < rounds; round++) {
  raw.push((await rawParseMs(input, events)) * 1000 / events);
  for (let k = 0; k <= stages.length; k++) byK[k]!.push(await run(k));
  console.log(`round ${round}: ${byK.map((runs) => runs[round]!.wall.toFixed(2)).join(' ')} µs/event (wall, k = 0..${stages.length})`);
}
const marginal = (k: number, measure: 'wall' | 'cpu'): number => median(byK[k]!.map((r, round) => r[measure] - byK[k - 1]![round]![measure]));
const f = (x: number): string => x.toFixed(2);
const rows = [`| file source -> sink (no stages) | ${f(median(byK[0]!.map((r) => r.wall)))} | ${f(median(byK[0]!.map((r) => r.cpu)))} |`];
for (let k = 1; k <= stages.length; k++) {
  const { type, ...config } = stages[k - 1]!;
  rows.push(`| + ${String(type)} ${Object.keys(config).length ? `(${Object.entries(config).map(([key, value]) => `${key}: ${JSON.stringify(value)}`).join(', ')})` : ''} | ${f(marginal(k, 'wall'))} | ${f(marginal(k, 'cpu'))} |`);
}
const whole = median(byK[stages.length]!.map((r) => r.wall));
const rawUs = median(raw);
rows.push(`| **whole pipeline** | **${f(whole)}** | **${f(median(byK[stages.length]!.map((r) => r.cpu)))}** |`);
console.log(rows.join('\n'));
publishSection(
  'stage-costs',
  `## What each stage costs

\`${commandLine()}\` — the Sessionizer section's pipeline (${events.toLocaleString('en-US')} synthetic events, ${users.toLocaleString('en-US')} users, JSONL file source, a sink that takes nothing) run with its first k stages for k = 0 to ${stages.length}, in ${rounds} alternating rounds after a warm-up run; each stage's cost is the difference between the runs with and without it in the same round, median over the rounds, in µs per event. CPU is the process's (all threads, GC helpers included).

| stage | wall µs/event | CPU µs/event |
|---|---|---|
${rows.join('\n')}

Raw parse (readline + JSON.parse) in the same rounds: ${f(rawUs)} µs/event, so issue 3's ratio of 0.5 needs the whole pipeline at ${f(2 * rawUs)} µs/event; this run's ${f(whole)} is ratio ${(rawUs / whole).toFixed(2)}. Differences of runs minutes apart on a shared host are noisy (each round's figures are in the bench's output): read the larger costs, not the second decimal.

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end. Measured ${new Date().toISOString().slice(0, 10)}.`,
);
rmSync(dir, { recursive: true, force: true });

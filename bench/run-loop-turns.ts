/**
 * What the run loop's turns of the event loop cost, with sources that never wait: a `file` source over
 * a JSONL file in the page cache, and `synthetic` at rate 0, each into a sink that only counts. Per
 * round: events/s, the process's CPU, and the longest time the event loop went without turning (what
 * /healthz, /metrics, signals and timers waited at most; bench/machine.ts watchLoop).
 *
 *   node --expose-gc --max-semi-space-size=32 dist/bench/run-loop-turns.js [events=1000000] [rounds=3] [--input=FILE]
 *
 * One line of JSON per round. `--input` reads that file (written by an earlier run: it is kept then),
 * so that two builds, run alternately, read the same bytes; without it a file of `events` events is
 * written and removed. Compare builds on one machine at one time only (BENCHMARKS.md, "The run loop's turns").
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPipeline, writeSyntheticEvents } from './data.js';
import { watchLoop } from './machine.js';

const args = process.argv.slice(2);
const plain = args.filter((arg) => !arg.startsWith('--'));
const events = Number(plain[0] ?? 1_000_000);
const rounds = Number(plain[1] ?? 3);
const given = args.find((arg) => arg.startsWith('--input='))?.slice('--input='.length);
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-turns-'));
const input = given ?? join(dir, 'events.jsonl');
if (!existsSync(input)) await writeSyntheticEvents(input, events, 100_000);

const sources: Record<string, Record<string, unknown>> = {
  file: { type: 'file', path: input, mapping: { time_format: 'epoch_ms' } },
  synthetic: { type: 'synthetic', events, users: 1000, rate: 0 },
};

try {
  for (let round = 1; round <= rounds; round++) {
    for (const [name, source] of Object.entries(sources)) {
      (globalThis as { gc?: () => void }).gc?.();
      const load = loadavg()[0]!;
      const watched = await watchLoop(() => runPipeline(source, [], () => false, dir));
      const { eventsIn } = watched.value;
      console.log(
        JSON.stringify({
          round,
          source: name,
          eventsIn,
          eventsPerSecond: Math.round(eventsIn / (watched.ms / 1000)),
          ms: Math.round(watched.ms),
          cpuMs: Math.round(watched.cpuMs),
          longestLoopGapMs: Math.round(watched.longestMs),
          gapsOver100ms: watched.over100,
          load: Number(load.toFixed(2)),
        }),
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Microbench of session-features' hour-of-day and day-of-week features, with `utc_offset_minutes` (UTC
 * shifted) and with `time_zone`: nanoseconds per event for the stage alone (events that carry their
 * session context, as a sessionizer's do), and per value for the instant-to-local-time step alone. Over
 * 200,000 events of 2024 from 1,000 users' sessions of 10 events, in time order, and with their times
 * shuffled (each event then most likely in another day than the one before).
 *
 *   node dist/bench/session-features-time.js [dist folder of another build] [--rounds=7]
 *
 * The folder (an earlier commit's dist, copied away beside its package.json and node_modules) lets one
 * build be measured against another in the same run of the machine; a build without `time_zone`
 * measures its UTC cases alone. Each case, and each of its two parts, runs in a process of its own (its
 * call sites see one configuration, as a pipeline's stage does). Figures: per case, the best of 5 passes
 * in each round, the median over rounds (cases alternate within each round). The stage's figure holds
 * everything it does per event (its state, the feature vector), in the process's CPU time (all its
 * threads, the collector's included); the step's, the local time alone, in wall time.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ClickEvent, Element } from '../core/index.js';
import { seededShuffle } from './data.js';

type Features = typeof import('../plugins/operators/session-features.js');
type Harness = typeof import('../plugins/operators/harness.js');
type Testing = typeof import('../core/testing.js');
type Core = typeof import('../core/index.js');

const args = process.argv.slice(2);
const distArg = args.find((arg) => !arg.startsWith('--'));
const rounds = Number(args.find((arg) => arg.startsWith('--rounds='))?.slice('--rounds='.length) ?? 7);
const dist = distArg === undefined ? new URL('../', import.meta.url) : pathToFileURL(`${distArg.replace(/\/$/, '')}/`);
const load = async <T>(path: string): Promise<T> => (await import(new URL(path, dist).href)) as T;
const features = (await load<Features>('plugins/operators/session-features.js')).default;
const { Chain, stage } = await load<Harness>('plugins/operators/harness.js');
const { testContext } = await load<Testing>('core/testing.js');
const core = await load<Core>('core/index.js');
const zoned = (features.config.properties as Record<string, unknown> | undefined)?.time_zone !== undefined;

const count = 200_000;
const users = 1000;
const perSession = 10;
const start = Date.UTC(2024, 0, 1);
const step = Math.floor((366 * 86_400_000) / count);
const times = Array.from({ length: count }, (_, i) => start + i * step);
const shuffled = seededShuffle(times);

/** Fresh events (the stage appends to them) with their session context: user i % users, sessions of perSession events. */
function eventsOf(eventTimes: readonly number[]): Element[] {
  return eventTimes.map((time, i): ClickEvent => {
    const user = i % users;
    const nth = Math.floor(i / users);
    const position = nth % perSession;
    const session = `${user}-${Math.floor(nth / perSession)}`;
    return {
      kind: 'event',
      userId: `u${user}`,
      time,
      type: 'view',
      itemId: `i${i % 5000}`,
      price: 10 + (i % 90),
      session: { id: session, position, sinceStart: position * 60_000, sincePrevious: position === 0 ? 0 : 60_000, start: time - position * 60_000 },
    };
  });
}

interface Case {
  name: string;
  config: Record<string, unknown>;
  times: readonly number[];
}
const cases: Case[] = [
  { name: 'default (UTC)', config: {}, times },
  { name: 'utc_offset_minutes: 60', config: { utc_offset_minutes: 60 }, times },
  { name: 'default (UTC), shuffled', config: {}, times: shuffled },
];
if (zoned) {
  cases.push(
    { name: 'time_zone: Europe/Berlin', config: { time_zone: 'Europe/Berlin' }, times },
    { name: 'time_zone: Europe/Berlin, shuffled', config: { time_zone: 'Europe/Berlin' }, times: shuffled },
  );
}

let sink = 0;
async function stagePass(testCase: Case): Promise<number> {
  const events = eventsOf(testCase.times);
  const chain = await Chain.build([stage(features, testCase.config as never)], testContext(), undefined, (element) => {
    if (element.kind === 'event') sink += (element as ClickEvent).features!.values.length;
  });
  // CPU time, not wall: a pass takes a fifth of a second, which on a loaded machine other processes share.
  const begin = process.cpuUsage();
  chain.push(events);
  const used = process.cpuUsage(begin);
  chain.end();
  return ((used.user + used.system) * 1000) / events.length;
}

/** The local time step alone: UTC shifted (as the stage adds utc_offset_minutes), or utcToLocal. */
function convertPass(toLocal: (time: number) => number, values: readonly number[]): number {
  const begin = process.hrtime.bigint();
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += toLocal(values[i]!);
  const ns = Number(process.hrtime.bigint() - begin) / values.length;
  sink += sum % 997;
  return ns;
}

const only = args.find((arg) => arg.startsWith('--case='));
const part = args.find((arg) => arg.startsWith('--part='))?.slice('--part='.length);
if (only !== undefined) {
  // One case and part in this process: the step alone is measured where the stage never ran.
  const testCase = cases[Number(only.slice('--case='.length))]!;
  let best = Infinity;
  if (part === 'stage') {
    for (let pass = 0; pass < 5; pass++) best = Math.min(best, await stagePass(testCase));
  } else {
    const zone = testCase.config.time_zone as string | undefined;
    const offset = ((testCase.config.utc_offset_minutes as number | undefined) ?? 0) * 60_000;
    const toLocal = zone === undefined ? (time: number): number => time + offset : core.utcToLocal(zone);
    for (let pass = 0; pass < 5; pass++) best = Math.min(best, convertPass(toLocal, testCase.times));
  }
  process.stdout.write(JSON.stringify({ ns: best, sink: sink % 997 }));
} else {
  const results = cases.map(() => ({ stage: [] as number[], convert: [] as number[] }));
  const script = fileURLToPath(import.meta.url);
  const measure = (index: number, which: 'stage' | 'convert'): number => {
    const output = execFileSync(process.execPath, [script, ...(distArg === undefined ? [] : [distArg]), `--case=${index}`, `--part=${which}`], { encoding: 'utf8' });
    return (JSON.parse(output) as { ns: number }).ns;
  };
  for (let round = 0; round < rounds; round++) {
    cases.forEach((_, index) => {
      results[index]!.stage.push(measure(index, 'stage'));
      results[index]!.convert.push(measure(index, 'convert'));
    });
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(`${distArg ?? 'dist'}: ${count} events, ${rounds} rounds, node ${process.version}, load ${loadavg()[0]!.toFixed(1)}`);
  cases.forEach(({ name }, index) => {
    const { stage: stageNs, convert } = results[index]!;
    console.log(`${name.padEnd(38)} stage ${median(stageNs).toFixed(0).padStart(5)} ns CPU/event   local time ${median(convert).toFixed(1).padStart(5)} ns/value`);
  });
}

/**
 * Sessionizer + every feature operator over 1M synthetic JSONL events from 100k users, against plain
 * readline + JSON.parse of the same file in the same run, and the operators alone (events from the
 * generator, the generator's own time subtracted); `rounds` alternating rounds of all of them, medians
 * published. Then bytes of state per open session and per known user, measured on the heap (run with
 * --expose-gc).
 *
 *   node --expose-gc dist/bench/sessionize.js [events=1000000] [users=100000] [knownUsers=1000000] [rounds=3] [--write]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineSink, loadPipeline, MetricsHub, PipelineRunner, watermark, type ClickEvent } from 'tributary';
import { silentLogger, testContext } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { ShopperWorld } from '../plugins/sources/shoppers.js';
import { Chain, stage, type Stage } from '../plugins/operators/harness.js';
import sessionizer from '../plugins/operators/sessionizer.js';
import sessionFeatures from '../plugins/operators/session-features.js';
import userFeatures from '../plugins/operators/user-features.js';
import { commandLine, machine, median, positionalArgs, publishSection } from './machine.js';
import { rawParseMs, writeSyntheticEvents, sessionizeStagesYaml } from './data.js';

const [eventsArg, usersArg, knownUsersArg, roundsArg] = positionalArgs();
const events = Number(eventsArg ?? 1_000_000);
const users = Number(usersArg ?? 100_000);
const knownUsers = Number(knownUsersArg ?? 1_000_000);
const rounds = Number(roundsArg ?? 3);
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-sessionize-'));
const loadAtStart = loadavg()[0]!;
/**
 * Earlier rounds' measurements (A/B runs, profiles), each with its date and commit: history kept with
 * the bench that writes this section, not figures of the run that writes it.
 */
const HISTORY = `### Sessionizer and features: earlier rounds (history: not this run's figures)

**Issue 3, sixth round: events built with every field they later get** (2026-12-06, against 97ea1c6; tried and **not kept**). The mapper (core/mapping.ts) read every field first and built the event as one literal holding them all, absent ones \`undefined\` and \`session\`, \`features\` and the origin among them, so that the sessionizer's \`event.session =\` and the feature blocks' \`event.features =\` store into fields the event already has. V8 confirmed the shape (\`%DebugPrint\`, \`%HaveSameMap\`): before, 4 fields in the object and the rest in a properties array grown as they are added (and another map for an event without item fields); after, one map for all, 12 fields in the object (120 B), unchanged by the stages. Output digest unchanged (event bdda29242e253de9, session 0a4d6a22aa49116a, 215,993 sessions). Before and after built apart, \`sessionize-digest.js 1000000 100000 count\` alternating (before first in each pair), process CPU ms, on a host at load 7-19 (other sessions' builds, benches and a Kafka soak running): 8 pairs (load 8.4-12.0) 9,023/6,776/7,063/6,697/6,582/6,481/9,034/6,798 -> 9,150/6,501/7,457/9,048/6,531/6,460/9,430/9,717 (medians 6,787 -> 8,253; higher in 5 of 8); 8 pairs under \`perf stat\` (load 8.9-12.4; the VM has no hardware counters, so no instruction counts) 6,856/7,273/7,060/7,121/6,959/6,497/8,055/8,600 -> 7,054/6,844/9,958/10,056/6,788/10,037/9,071/9,097 (7,091 -> 9,084; higher in 6 of 8); 6 pairs with \`--single-threaded\` (collector and compilers on the main thread; load 7.1-18.6) 6,349/6,547/6,714/8,432/6,565/6,887 -> 6,940/8,103/6,578/7,843/6,106/6,537 (6,640 -> 6,759; higher in 2 of 6). Higher in 13 of 22 pairs in all. The runs fall in a fast mode (6.1-7.5 s) and a slow one (7.8-10.1 s, with 2.4-7.2 s of GC pauses), the slow one 5 times of 22 before and 11 after: whether that is the change or the load, it is no gain. One profile of each at load 19: the sessionizer's \`assign\` (which sets \`event.session\`) fell from 5.7% to 3.2% of the samples, the saving the idea was after, but too small for the whole to show. Keeping it would also have cost behaviour: every event has own keys with \`undefined\` values (seen by \`Object.keys\`, \`in\`, spread and \`assert.deepStrictEqual\`: 2 of core/mapping's 29 tests fail as they are), and the JSON writers' canonical-event fast path (core/json.ts) and the sessionizer's plain pending events (snapshot columns) would each have had to skip such keys. The second idea of that paragraph, one per-user registry shared by the stages (\`context.shared\`), was not tried in this round; what it could save, measured apart: a \`Map.get\` of an event's user id in the file's order (126,038 ids) took 98-119 ns of CPU (7 passes, twice, load 26), so one lookup by the first stage instead of the sessionizer's, user-features' and session-features' (whose key is a string built per event, about 0.13 µs by the profile of 2026-12-05) would save about 0.2-0.3 µs of the 6.5-10 µs per event these runs spent, less than the pairs above resolve.

**Issue 3, fifth round: log1p, standardize and clip fused into one pass per feature** (2026-12-06, against 8baf478; tried and **not kept**). The stages stayed as written (three stages, their labels, snapshots and per-stage timing of sampled batches); the runtime asked each record stage's handlers for one handler doing its work and the next stage's (\`fuseWith\`), and the three transforms answered with one loop over the vector that applied each selected feature's steps in turn, rounding to float32 after each as the vector stores it. Outputs bit-identical: the 1M-event digest (bench/sessionize-digest.ts, event bdda29242e253de9, session 0a4d6a22aa49116a), the demo's backtest predictions with and without standardize + clip after its log1p (sha-256 023c02baddb0480f and 950c84431def6944, 234,475 lines each), and 60,000 hand-made vectors of edge values (±0, NaN, ±Infinity, float32 extremes, a bound of 0.1) through three sequences of them (log1p, standardize, clip, log1p; standardize, clip, standardize; clip, log1p), snapshots included; for both versions below. Measured on the 2-core host at load 3-16 (other sessions' tests and benches running), before and after built apart and run alternately, before first in each pair: (1) a loop interpreting any sequence of steps was slower than the stages apart and, with each step a function call, boxed every value (GC time doubled); (2) one step of each kind at most, in the order log1p, standardize, clip, written out in one loop: 6 pairs of \`stage-costs.js 300000 30000 1\` gave the three transforms 1.50 -> 1.94 µs of CPU per event (medians; higher in 6 of 6) and the whole pipeline 8.08 -> 8.56 µs; its GC showed why: a clip bound read as a small integer made V8 box every value of the loop (85-90 scavenges per 1M events against 62-71); (3) that fixed (the bounds in a Float64Array): 6 pairs of \`stage-costs.js 300000 30000 1\` gave the three transforms 1.06 -> 1.19 µs of CPU per event (lower in 3 of 6) and the whole pipeline 7.45 -> 7.15 (lower in 3 of 6); 4 pairs of \`sessionize-digest.js 1000000 100000 count\` gave CPU 7,783/6,103/6,064/7,863 -> 6,695/5,910/5,846/6,754 ms (lower in 4 of 4, medians 6,943 -> 6,303), but 6 pairs of \`sessionize.js 1000000 100000 100000 1\` gave the pipeline 5.8-8.7 -> 5.3-11.4 s (median 6.1 -> 9.1 s, ratio 0.235 -> 0.15, higher in 5 of 6) while the run without stages, which runs none of this code, moved alike (1.3 -> 1.8 s, higher in 5 of 6): at that load wall times tell nothing. In one process, the three stages against the fused pass on the bench's 76-feature vectors (30,000 events, 20 passes each, alternating; medians of 5 runs): 1.15/1.88/1.07/1.02/1.55 against 1.25/2.23/1.19/1.11/1.49 µs per event, slower in 4 of 5; a kernel written for this one pipeline (its selections, bounds and min_count as literals) took 0.91/1.38/0.94/0.93/1.16 µs in the same runs, so a fusion could save about 0.2 µs of the 5.4 (ratio 0.25 -> 0.26), and the shareable one did not get there. Not kept: no gain measured, for a new handler method (\`fuseWith\`) in the plugin API and a second path for records in the runtime. The patch (core/operators.ts, plugins/operators/feature-pass.ts, tests) is not in the tree.

**Issue 3, fourth round: the hops between stages** (2026-12-02, 3b8036f; measured then). Consecutive record operators now run fused (\`composeOperators\`, core/operators.ts): one subscription for each run of record operators, each stage's \`emit\` calling the next stage's handlers directly, and the stage-latency probes only inside sampled batches (a second, timed chain of the same handlers). Output digest of the 1M-event run unchanged (bench/sessionize-digest.ts). Its gain is small, about 3%: 22 pairs of runs side by side (so both saw the same load) gave median CPU 7,147 -> 6,823 ms per 1M events (lower in 18 of 22, sign test p = 0.002), and the profile's time in hops and probes went 396-460 -> 236-277 ms; 32 alternating rounds on the loaded host (load 2-10) could not separate it from the noise (medians 5,890 / 6,049 ms).

Tried and not kept (2026-12-02, 95c9b86): decoding the file source on a worker thread (columnar batches handed over as transferable buffers, strings as one JSON array text per batch, at most 4 batches ahead). On the quiet host, 4 alternating rounds of the 1M-event sessionize run: wall 5.62/5.76/5.72/5.69 s with the decode on the main thread, 5.19/5.68/5.84/5.53 s with the worker, while the process's CPU rose from 6.3 s to 7.5-8.6 s. Rebuilding the events on the main thread costs most of what the decode saved there (main-thread CPU -10%), so the stages stay the bound; file -> file without stages gained about 25% (load 3-4). Not worth a second wire format of the events for that.

The previous rounds (V8's young generation: main-thread GC 1.0-1.75 -> 0.54-0.58 s per 1M events; the sessionizer's per-session objects: 19.1 -> 16.6 s of CPU per 1M events, 729 -> 417 B per open session; one Float32Array per event) are described in this file's history at commits 2008de8, 1255163 and 1b66820.

Where the time went (2026-12-03, the run at 52e66f0 on a quiet host, load 0.3: pipeline 4.5 µs per event, source 1.4 µs, raw parse 1.34 µs, ratio 0.30; the tables of 2026-12-02, 95c9b86, read 0.33 at load 1.7 and 0.35). By the profile of that day (1M events: decode 22%, sessionizer 14%, GC 10%, user-features 8%, standardize 7%, session-features 7%, log1p + clip 7%): the sessionizer (its per-user map lookup and first reads of a session's fields are cold cache lines), user-features (a cold row per event, three exp()), standardize/log1p/clip (about 15% together: a fused per-feature transform would read and write each value once instead of three times; tried on 2026-12-06 and not kept, the fifth round above), GC 10%. One per-user registry shared by the stages (\`context.shared\`) would save one map lookup per event; events built with every field they later get would save a property-array growth per event (core/mapping.ts).`;

const gc = (): void => {
  if (!global.gc) throw new Error('run with node --expose-gc');
  global.gc();
  global.gc();
};


/** Runs file source -> (stages) -> a sink that only counts, so the figure is the pipeline's, not JSON output's. */
async function pipeline(path: string, withStages: boolean): Promise<{ ms: number; sessions: number }> {
  const registry = await builtinRegistry();
  let counted = 0;
  let sessions = 0;
  registry.register(
    defineSink<Record<string, never>>({
      name: 'count', summary: 'Counts records (bench).', config: { type: 'object', properties: {} },
      create: () => ({ write: (r) => void (r.kind === 'session' ? sessions++ : counted++), close: async () => undefined }),
    }),
    'bench',
  );
  const yaml = `name: sessionize\nsources: [{type: file, path: ${path}, mapping: {time_format: epoch_ms}}]\n${withStages ? `${sessionizeStagesYaml}\n` : ''}sinks: [{type: count}]\n`;
  const loaded = await loadPipeline(join(dir, 'bench.yaml'), { registry, text: yaml, env: {} });
  // The synthetic world starts in 2024: a fixed clock keeps max_ahead_of_clock meaningful.
  const runner = new PipelineRunner(loaded, { logger: silentLogger, metrics: new MetricsHub() });
  gc();
  const start = performance.now();
  const stats = await runner.run();
  const ms = performance.now() - start;
  if (counted !== events || stats.deadLettered > 0) throw new Error(`lost events: ${counted} of ${events}, ${stats.deadLettered} dead-lettered`);
  return { ms, sessions };
}

/** Heap (and typed-array memory) held by `stages` after feeding them `count` distinct keys. */
async function stateBytes(stages: Stage[], count: number, make: (i: number) => ClickEvent, drainTo: number): Promise<number> {
  gc();
  const before = process.memoryUsage();
  const chain = await Chain.build(stages, testContext({ clock: { now: () => Date.UTC(2030, 0, 1) } }), undefined, () => undefined);
  for (let i = 0; i < count; i++) chain.push([make(i)]);
  chain.push([watermark(drainTo)]); // assigns the buffered events; sessions stay open (gap not passed)
  gc();
  const after = process.memoryUsage();
  const bytes = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
  if (chain.operators.length === 0) throw new Error('unreachable');
  chain.output.length = 0;
  return bytes / count;
}

// Operators alone: events made by the generator in the loop (young objects, as a source makes
// them), minus the time of the generator alone, measured the same way in the same round.
const opStages = [
  stage(sessionizer, { gap: '30m', max_length: '4h', allowed_lateness: '5m' }),
  stage(sessionFeatures),
  stage(userFeatures),
];
const { default: hashFeatures } = await import('../plugins/operators/hash-features.js');
const { default: log1p } = await import('../plugins/operators/log1p.js');
const { default: standardize } = await import('../plugins/operators/standardize.js');
const { default: clip } = await import('../plugins/operators/clip.js');
opStages.push(stage(hashFeatures, { fields: ['category', 'itemId'], width: 32 }), stage(log1p, { features: ['s_*', 'u_events', 'u_monetary'] }), stage(standardize, { features: ['s_*', 'u_*'] }), stage(clip, { features: ['*'], min: -8, max: 8 }));
async function operatorLoop(withOperators: boolean): Promise<number> {
  const world = new ShopperWorld({ seed: 1, users });
  const chain = await Chain.build(withOperators ? opStages : [], testContext({ clock: { now: () => Date.UTC(2030, 0, 1) } }), undefined, () => undefined);
  gc();
  const start = performance.now();
  let maxTime = -Infinity;
  for (let i = 0; i < events; i++) {
    const e = world.next();
    chain.push([e]);
    if (e.time > maxTime) maxTime = e.time;
    if (i % 4096 === 4095) chain.push([watermark(maxTime - 5000)]);
  }
  chain.push([watermark(Infinity)]);
  chain.end();
  return performance.now() - start;
}

const input = join(dir, 'events.jsonl');
const span = await writeSyntheticEvents(input, events, users);
const rawTimes: number[] = [];
const pipeTimes: number[] = [];
const sourceTimes: number[] = [];
/** Per round: the operator loop's time minus the generator-only loop's, both run in that round. */
const opTimes: number[] = [];
let sessions = 0;
for (let round = 0; round < rounds; round++) {
  rawTimes.push(await rawParseMs(input, events));
  const result = await pipeline(input, true);
  pipeTimes.push(result.ms);
  sessions = result.sessions;
  sourceTimes.push((await pipeline(input, false)).ms);
  const generatorMs = await operatorLoop(false);
  opTimes.push(Math.max(1, (await operatorLoop(true)) - generatorMs));
  console.error(`round ${round + 1}: raw ${Math.round(rawTimes[round]!)} ms, pipeline ${Math.round(pipeTimes[round]!)} ms, source only ${Math.round(sourceTimes[round]!)} ms, operators alone ${Math.round(opTimes[round]!)} ms (generator ${Math.round(generatorMs)} ms subtracted), load ${loadavg()[0]!.toFixed(2)}`);
}

// State per open session: N users, one event each, watermark at the last event (sessions open).
const T = Date.UTC(2024, 0, 1);
const openN = 200_000;
const mkSessionEvent = (i: number): ClickEvent => ({ kind: 'event', userId: `user-${i}`, time: T + i, type: 'view', itemId: `item-${i % 5000}`, category: `cat-${i % 50}`, price: 10 });
const perSessionSessionizer = await stateBytes([stage(sessionizer)], openN, mkSessionEvent, T + openN);
const perSessionBoth = await stateBytes([stage(sessionizer), stage(sessionFeatures)], openN, mkSessionEvent, T + openN);
// State per known user: user-features alone, one event per user (each with its session id).
const mkUserEvent = (i: number): ClickEvent => ({ kind: 'event', userId: `user-${i}`, sessionId: `user-${i}:${T + i}`, time: T + i, type: 'view', price: 10 });
const perUser = await stateBytes([stage(userFeatures)], knownUsers, mkUserEvent, T + knownUsers);

const rate = (ms: number): number => (events / ms) * 1000;
const rawRate = rate(median(rawTimes));
const pipeRate = rate(median(pipeTimes));
const sourceRate = rate(median(sourceTimes));
const opRate = rate(median(opTimes));
const userGiB = (perUser * 1_000_000) / 2 ** 30;
const summary = {
  events, users, sessions,
  rawEventsPerSecond: Math.round(rawRate),
  pipelineEventsPerSecond: Math.round(pipeRate),
  ratio: Number((pipeRate / rawRate).toFixed(2)),
  sourceOnlyEventsPerSecond: Math.round(sourceRate),
  operatorsOnlyEventsPerSecond: Math.round(opRate),
  roundMs: { raw: rawTimes.map(Math.round), pipeline: pipeTimes.map(Math.round), sourceOnly: sourceTimes.map(Math.round), operatorsOnly: opTimes.map(Math.round) },
  bytesPerOpenSession: { sessionizer: Math.round(perSessionSessionizer), withSessionFeatures: Math.round(perSessionBoth) },
  bytesPerKnownUser: Math.round(perUser),
  millionUsersGiB: Number(userGiB.toFixed(2)),
};
console.log(JSON.stringify(summary, null, 2));
const n = (x: number): string => Math.round(x).toLocaleString('en-US');
const featureWidth = await sessionFeatureWidth();
const us = (x: number): string => x.toFixed(2);
// What is left to the goal, from this run's medians (differences of medians: estimates).
const rawUs = 1e6 / rawRate;
const pipeUs = 1e6 / pipeRate;
const sourceUs = 1e6 / sourceRate;
const stagesUs = pipeUs - sourceUs;
const goalUs = 2 * rawUs;
const stagesGoalUs = goalUs - sourceUs;
const whatIsLeft = `**What is left**, from this run's medians (load ${loadAtStart.toFixed(1)} at its start; differences of medians, so estimates): the pipeline takes ${us(pipeUs)} µs per event, of which the source (the run without stages) ${us(sourceUs)} µs and the stages about ${us(stagesUs)} µs, against a raw parse of ${us(rawUs)} µs. ${
  pipeUs <= goalUs
    ? `The goal of 0.5 (the whole at ${us(goalUs)} µs) is met in this run.`
    : stagesGoalUs > 0
      ? `0.5 needs the whole at ${us(goalUs)} µs, so the stages near ${us(stagesGoalUs)} µs (${(stagesUs / stagesGoalUs).toFixed(1)}x less).`
      : `0.5 needs the whole at ${us(goalUs)} µs, which the source alone (${us(sourceUs)} µs) already exceeds in this run.`
}`;
publishSection(
  'sessionize',
  `## Sessionizer and features

\`${commandLine()}\` — ${n(events)} synthetic events (ShopperWorld, seed 1, ${n(users)} users, ${new Date(span.first).toISOString().slice(0, 10)} to ${new Date(span.last).toISOString().slice(0, 10)}) written as JSONL to a temp file; \`file\` source -> sessionizer (30m gap, 4h max length, 5m lateness) -> session-features -> user-features (1d/7d/30d) -> hash-features (32) -> log1p -> standardize -> clip (${sessions ? n(sessions) : '?'} sessions, ${featureWidth ?? '?'} features per event) -> a sink that only counts. Against plain \`readline\` + \`JSON.parse\` of the same file in the same run; the seven operators alone are the same stages fed by the generator in a loop (no file, no runtime), less a loop of the generator alone. Median of ${rounds} rounds each, alternating (each round: raw parse, pipeline, pipeline without stages, generator alone, operators).

| measure | value |
|---|---|
| raw parse limit (readline + JSON.parse) | ${n(rawRate)} events/s |
| pipeline with sessionizer + all feature operators | ${n(pipeRate)} events/s |
| ratio (goal >= 0.5) | **${summary.ratio}** |
| same pipeline without stages (file source -> counting sink) | ${n(sourceRate)} events/s (ratio ${(sourceRate / rawRate).toFixed(2)}) |
| the seven operators alone (generator time subtracted in each round) | ${n(opRate)} events/s (${(1e6 / opRate).toFixed(1)} µs per event; each round ${opTimes.map((ms) => ((ms * 1000) / events).toFixed(1)).join(', ')} µs) |
| state per open session: sessionizer / + session-features | ${n(perSessionSessionizer)} B / ${n(perSessionBoth)} B (${n(openN)} open sessions) |
| state per known user (user-features) | ${n(perUser)} B (${n(knownUsers)} users) |
| 1M known users | ${userGiB.toFixed(2)} GiB: ${userGiB < 1 ? 'fits' : 'does not fit'} in 1 GiB |

State (one measurement each, not a median) is heap used plus typed-array memory after a full GC, with user ids of the form \`user-123456\` and session ids kept by the sessionizer.

${whatIsLeft}

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end of the run (on a shared host other work runs at the same time: the rates are then low bounds and vary by tens of percent from run to run). Measured ${new Date().toISOString().slice(0, 10)}.

${HISTORY}`,
);
rmSync(dir, { recursive: true, force: true });

/** Features per event the seven operators give, read from one event through them (untimed). */
async function sessionFeatureWidth(): Promise<number | undefined> {
  let width: number | undefined;
  const chain = await Chain.build(opStages, testContext({ clock: { now: () => Date.UTC(2030, 0, 1) } }), undefined, (element) => {
    if (element.kind === 'event' && (element as ClickEvent).features) width ??= (element as ClickEvent).features!.values.length;
  });
  chain.push([{ kind: 'event', userId: 'u', time: Date.UTC(2024, 0, 1), type: 'view', itemId: 'i', category: 'c', price: 1 }, watermark(Infinity)]);
  chain.end();
  return width;
}

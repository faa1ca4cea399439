/**
 * The dedupe stage's cost: synthetic events (ShopperWorld, one in 20 sent twice, the copy a few events later)
 * pushed through a chain of it, keyed by fingerprint and by an event id, against the same chain without it,
 * alternating in each round; medians published. Then heap per remembered key (run with --expose-gc).
 *
 *   node --expose-gc dist/bench/dedupe.js [events=1000000] [users=100000] [keys=200000] [rounds=5] [--write]
 */
import { loadavg } from 'node:os';
import { watermark, type ClickEvent, type Element } from 'tributary';
import { testContext } from 'tributary/testing';
import { ShopperWorld } from '../plugins/sources/shoppers.js';
import { Chain, stage, type Stage } from '../plugins/operators/harness.js';
import dedupe from '../plugins/operators/dedupe.js';
import { commandLine, machine, median, positionalArgs, publishSection } from './machine.js';

const [eventsArg, usersArg, keysArg, roundsArg] = positionalArgs();
const events = Number(eventsArg ?? 1_000_000);
const users = Number(usersArg ?? 100_000);
const keyCount = Number(keysArg ?? 200_000);
const rounds = Number(roundsArg ?? 5);
const loadAtStart = loadavg()[0]!;
const clock = { now: () => Date.UTC(2030, 0, 1) };

/** Earlier measurements, each with its date: history kept with the bench that writes this section, not figures of the run that writes it. */
const HISTORY = `### Dedupe: earlier rounds (history: not this run's figures)

**The fingerprint kept as a 53-bit hash, not as text** (2026-12-08). The first version keyed a fingerprint by its values as text (\`time\`, \`type\`, item, category, price, session: 80-90 characters with the user), every one kept for \`within\`. Its recorded run (1,000,000 events, 5 rounds, load 6.6-14.0): chain alone 1.13 µs per event, fingerprint 11.81 µs (rounds 7,943/13,526/10,431/11,811/15,237 ms), id 4.11 µs; 562 B of heap per fingerprint key, 324 B per id key. Then before and after built apart and run alternately (\`dedupe.js 300000 30000 100000 1\`, before first in each pair, load about 13): fingerprint 12.73/9.61/9.32 -> 8.25/9.94/6.92 µs per event (medians 9.61 -> 8.25, lower in 2 of 3: within the noise of that load), id 5.26/3.64/4.16 -> 4.81/3.15/4.95 (unchanged code); heap per fingerprint key 563 -> 228-230 B in every run (the figure that decided it: \`max_keys: 1000000\` about 537 -> 304 MiB).`;

const gc = (): void => {
  if (!global.gc) throw new Error('run with node --expose-gc');
  global.gc();
  global.gc();
};

// The input, made once (the generator's time is no part of the figure): each event has an id; one in 20 comes again 3 events later.
const world = new ShopperWorld({ seed: 1, users });
const input: Element[] = [];
const copies: ClickEvent[] = [];
let maxTime = -Infinity;
let copiesSent = 0;
for (let i = 0; input.length < events; i++) {
  const event = { ...world.next(), attrs: { event_id: `e-${i}` } };
  input.push(event);
  if (i % 20 === 0) copies.push({ ...event });
  if (i % 20 === 3 && copies.length > 0) {
    input.push(copies.shift()!);
    copiesSent++;
  }
  if (event.time > maxTime) maxTime = event.time;
  if (i % 4096 === 4095) input.push(watermark(maxTime - 5000));
}
input.push(watermark(Infinity));
const eventCount = input.filter((e) => e.kind === 'event').length;

/** Ms to push the whole input through `stages`, and how many events came out. */
async function pass(stages: Stage[]): Promise<{ ms: number; out: number }> {
  let out = 0;
  const chain = await Chain.build(stages, testContext({ clock }), undefined, (element) => {
    if (element.kind === 'event') out++;
  });
  gc();
  const start = performance.now();
  chain.push(input);
  const ms = performance.now() - start;
  chain.end();
  return { ms, out };
}

const variants: { name: string; stages: Stage[] }[] = [
  { name: 'none', stages: [] },
  { name: 'fingerprint', stages: [stage(dedupe, { within: '10m' })] },
  { name: 'id', stages: [stage(dedupe, { within: '10m', id_field: 'attrs.event_id' })] },
];
const times: Record<string, number[]> = { none: [], fingerprint: [], id: [] };
const outs: Record<string, number> = {};
for (let round = 0; round < rounds; round++) {
  for (const { name, stages } of variants) {
    const { ms, out } = await pass(stages);
    times[name]!.push(ms);
    outs[name] = out;
  }
  console.error(`round ${round + 1}: ${variants.map(({ name }) => `${name} ${Math.round(times[name]![round]!)} ms`).join(', ')}, load ${loadavg()[0]!.toFixed(2)}`);
}

/** Heap held per key after `count` distinct events through the stage. */
async function bytesPerKey(stages: Stage[], count: number): Promise<number> {
  gc();
  const before = process.memoryUsage();
  const chain = await Chain.build(stages, testContext({ clock }), undefined, () => undefined);
  const T = Date.UTC(2024, 0, 1);
  for (let i = 0; i < count; i++) chain.push([{ kind: 'event', userId: `user-${i % 100_000}`, time: T + i, type: 'view', itemId: `item-${i % 5000}`, category: `cat-${i % 50}`, price: 10, attrs: { event_id: `${i.toString(16).padStart(20, '0')}` } }]);
  gc();
  const after = process.memoryUsage();
  chain.end();
  return (after.heapUsed - before.heapUsed) / count;
}
// The events themselves are dropped by the sink; what stays is the stage's map. Measured against an empty chain (the harness).
const heapNone = await bytesPerKey([], keyCount);
const heapFingerprint = (await bytesPerKey([stage(dedupe, { max_keys: keyCount })], keyCount)) - heapNone;
const heapId = (await bytesPerKey([stage(dedupe, { max_keys: keyCount, id_field: 'attrs.event_id' })], keyCount)) - heapNone;

const perEventUs = (name: string): number => (median(times[name]!) * 1000) / eventCount;
const rate = (name: string): number => eventCount / (median(times[name]!) / 1000);
const n = (x: number): string => Math.round(x).toLocaleString('en-US');
const summary = {
  events: eventCount, duplicates: eventCount - outs.fingerprint!, rounds,
  medianMs: Object.fromEntries(variants.map(({ name }) => [name, Math.round(median(times[name]!))])),
  roundMs: Object.fromEntries(variants.map(({ name }) => [name, times[name]!.map(Math.round)])),
  bytesPerKey: { fingerprint: Math.round(heapFingerprint), id: Math.round(heapId) },
};
console.log(JSON.stringify(summary, null, 2));
// Every copy dropped, by either key, and nothing else.
if (outs.fingerprint !== outs.id || outs.none! - outs.fingerprint! !== copiesSent) throw new Error(`dropped ${outs.none! - outs.fingerprint!} (fingerprint) and ${outs.none! - outs.id!} (id) of ${copiesSent} copies`);
publishSection(
  'dedupe',
  `## Dedupe

\`${commandLine()}\` — ${n(eventCount)} synthetic events (ShopperWorld, seed 1, ${n(users)} users; each with an \`attrs.event_id\`, one in 20 sent again 3 events later: ${n(outs.none! - outs.fingerprint!)} copies, every one dropped by both keys) pushed through the stage in a chain as the runtime fuses it (no file, no source, no sink), with a watermark every 4,096 events (\`within: 10m\`, default \`max_keys\`); against the same chain without the stage, alternating in each of ${rounds} rounds. Medians:

| stage | ms per ${n(eventCount)} events | events/s | µs per event | µs per event over the chain without it |
|---|---|---|---|---|
| none (the chain alone) | ${n(median(times.none!))} | ${n(rate('none'))} | ${perEventUs('none').toFixed(2)} | — |
| dedupe, fingerprint (default \`fields\`) | ${n(median(times.fingerprint!))} | ${n(rate('fingerprint'))} | ${perEventUs('fingerprint').toFixed(2)} | ${(perEventUs('fingerprint') - perEventUs('none')).toFixed(2)} |
| dedupe, \`id_field: attrs.event_id\` | ${n(median(times.id!))} | ${n(rate('id'))} | ${perEventUs('id').toFixed(2)} | ${(perEventUs('id') - perEventUs('none')).toFixed(2)} |

Each round (ms): none ${times.none!.map(Math.round).join(', ')}; fingerprint ${times.fingerprint!.map(Math.round).join(', ')}; id ${times.id!.map(Math.round).join(', ')}.

Heap per remembered key (${n(keyCount)} keys, users \`user-<n>\`, ids of 20 characters; heap used after a full GC, less an empty chain's, one measurement): fingerprint ${n(heapFingerprint)} B, id ${n(heapId)} B. So \`max_keys: 1000000\` holds about ${((Math.max(heapFingerprint, heapId) * 1e6) / 2 ** 20).toFixed(0)} MiB.

Machine: ${machine()}; load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end (a shared host, ~7 engineers' builds and tests on 2 cores: the rates are low bounds and vary by tens of percent between runs). Measured ${new Date().toISOString().slice(0, 10)}.

${HISTORY}`,
);

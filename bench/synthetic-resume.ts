/**
 * What resuming a `synthetic` source costs: the time from `seek` to its first batch, from a position
 * that holds the generator's state (what a checkpoint saves now) and from the event count alone (what
 * one saved before: the stream replayed to it), alternately, after `events` events of `users` shoppers;
 * and what taking the position costs (each call's milliseconds).
 *
 *   node dist/bench/synthetic-resume.js [users=1000] [rounds=3] EVENTS...
 */
import { loadavg } from 'node:os';
import { testContext } from '../core/testing.js';
import synthetic, { type SyntheticSourceConfig } from '../plugins/sources/synthetic.js';
import type { SourcePosition } from '../core/plugin.js';

const users = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 3);
const counts = process.argv.slice(4).map(Number);
const config: SyntheticSourceConfig = { seed: 42, users, events: 0, rate: 0, items: 5000, categories: 50, start: '2024-01-01T00:00:00Z', session_ids: false, clock: 'simulated' };

/** Milliseconds from seek to the first batch, and that batch's first event time (the same either way). */
async function resume(position: SourcePosition): Promise<[number, number]> {
  const source = await synthetic.create(config, testContext());
  const began = performance.now();
  await source.seek!(position);
  for await (const batch of source.read()) return [performance.now() - began, batch[0]!.time];
  throw new Error('no batch');
}

for (const events of counts) {
  const source = await synthetic.create({ ...config, events }, testContext());
  for await (const batch of source.read()) void batch;
  // The position's own cost: taken at once, in one block of the event loop, while a checkpoint holds the source.
  const positionMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const began = performance.now();
    source.position!();
    positionMs.push(performance.now() - began);
  }
  const position = source.position!();
  const bytes = JSON.stringify(position).length;
  const fromState: number[] = [];
  const fromCount: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const [stateMs, stateTime] = await resume(position);
    const [countMs, countTime] = await resume({ emitted: events });
    if (stateTime !== countTime) throw new Error(`resumed streams differ: ${stateTime} vs ${countTime}`);
    fromState.push(stateMs);
    fromCount.push(countMs);
  }
  const ms = (values: number[]): string => values.map((v) => v.toFixed(0)).join(', ');
  console.log(`${events.toLocaleString('en-US')} events, ${users} users: position() ${ms(positionMs)} ms; from the state (${(bytes / 1024).toFixed(0)} KiB position) ${ms(fromState)} ms; replayed from the count ${ms(fromCount)} ms; load ${loadavg()[0]!.toFixed(1)}`);
}

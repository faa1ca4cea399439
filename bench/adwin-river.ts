/**
 * Tributary's ADWIN against River's `drift.ADWIN` on the same seeded sequences:
 * `node dist/bench/adwin-river.js`. Prints, per sequence, both detectors' detection indices and the
 * window width right after each, and whether they agree. River runs in bench/river.ts's Python.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Adwin, type AdwinConfig } from '../plugins/models/drift.js';
import { rng } from '../plugins/models/testdata.js';
import { runRiverScript } from './river.js';

const config: AdwinConfig = { delta: 0.002, clock: 32, max_buckets: 5, min_window_length: 5, grace_period: 10 };

/** Normal by Box-Muller on a seeded uniform. */
function normal(random: () => number, mean: number, sd: number): number {
  return mean + sd * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
function sequence(seed: number, parts: [number, (random: () => number) => number][]): number[] {
  const random = rng(seed);
  return parts.flatMap(([count, draw]) => Array.from({ length: count }, () => draw(random)));
}
const bernoulli = (p: number) => (random: () => number) => (random() < p ? 1 : 0);
const gaussian = (mean: number, sd: number) => (random: () => number) => normal(random, mean, sd);
// Per-label log loss of a calibrated model at base rate p: heavy-tailed, as the learner's loss stream.
const logLossOf = (p: number) => (random: () => number) => (random() < p ? -Math.log(0.05) : -Math.log(0.95));

const sequences = [
  { name: 'bernoulli 0.2 stationary (20k)', values: sequence(1, [[20_000, bernoulli(0.2)]]) },
  { name: 'gaussian 0.5 sd 0.2 stationary (20k)', values: sequence(2, [[20_000, gaussian(0.5, 0.2)]]) },
  { name: 'gaussian 0.2 -> 0.5 at 1000', values: sequence(3, [[1000, gaussian(0.2, 0.1)], [1000, gaussian(0.5, 0.1)]]) },
  { name: 'bernoulli 0.1 -> 0.3 at 5000', values: sequence(4, [[5000, bernoulli(0.1)], [5000, bernoulli(0.3)]]) },
  { name: 'bernoulli 0.5 -> 0.2 -> 0.6 (3 x 3000)', values: sequence(5, [[3000, bernoulli(0.5)], [3000, bernoulli(0.2)], [3000, bernoulli(0.6)]]) },
  { name: 'log loss, base rate 0.04 -> 0.12 at 8000', values: sequence(6, [[8000, logLossOf(0.04)], [8000, logLossOf(0.12)]]) },
  { name: 'gaussian slow ramp 0 -> 1 over 10k', values: sequence(7, [[10_000, (random) => normal(random, 0, 0.3)]]).map((v, i) => v + i / 10_000) },
];

const dir = mkdtempSync(join(tmpdir(), 'tributary-adwin-'));
const file = join(dir, 'sequences.json');
writeFileSync(file, JSON.stringify(sequences));
const river = runRiverScript('adwin_river.py', [file, ...[config.delta, config.clock, config.max_buckets, config.min_window_length, config.grace_period].map(String)]);
const theirs = JSON.parse(river) as { name: string; detections: number[]; widths: number[]; width: number }[];

let agree = 0;
for (const [i, { name, values }] of sequences.entries()) {
  const adwin = new Adwin(config);
  const detections: number[] = [];
  const widths: number[] = [];
  values.forEach((value, index) => {
    if (adwin.update(value)) {
      detections.push(index);
      widths.push(adwin.windowWidth);
    }
  });
  const river = theirs[i]!;
  const same = JSON.stringify([detections, widths, adwin.windowWidth]) === JSON.stringify([river.detections, river.widths, river.width]);
  if (same) agree++;
  console.log(`${same ? 'same' : 'DIFFERENT'}  ${name}\n  tributary: ${detections.join(', ') || '-'} (widths ${widths.join(', ') || '-'}; final ${adwin.windowWidth})\n  river:     ${river.detections.join(', ') || '-'} (widths ${river.widths.join(', ') || '-'}; final ${river.width})`);
}
console.log(`${agree} of ${sequences.length} sequences: same detections and widths as River`);

/**
 * How evenly FNV-1a (core/hash.ts) spreads realistic keys over buckets where Tributary reduces it mod
 * a width: hash-features (`(h >>> 1) % width`, seeded with `field=`), the gru model's category
 * buckets (`h % buckets`) and the sharding bench's shards (`h % shards`). FNV-1a's low bits are known
 * to be weak for short keys that differ in their last characters; this measures whether that shows
 * at the widths used, against the same hash with murmur3's final mix (fmix32) on top.
 *
 *   node dist/bench/hash-buckets.js [REES46_CSV] [--write]
 *
 * Per key set and width: the chi-square statistic of the bucket counts over its degrees of freedom
 * (about 1 for a uniformly random hash, give or take sqrt(2 / df)), its z-score ((chi2 - df) /
 * sqrt(2 df): beyond about ±3 a random hash is unlikely to give), and the fullest bucket over the
 * mean. Prints the `hash-buckets` section of BENCHMARKS.md; `--write` records it there.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fnv1a } from '../core/hash.js';
import { packageRoot } from '../core/paths.js';
import { commandLine, positionalArgs, publishSection } from './machine.js';

/** murmur3's 32-bit finaliser: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Spread {
  chi2PerDf: number;
  z: number;
  maxOverMean: number;
}

function spread(keys: readonly string[], width: number, bucketOf: (key: string) => number): Spread {
  const counts = new Float64Array(width);
  for (const key of keys) counts[bucketOf(key)]!++;
  const mean = keys.length / width;
  let chi2 = 0;
  let max = 0;
  for (const c of counts) {
    chi2 += (c - mean) ** 2 / mean;
    max = Math.max(max, c);
  }
  const df = width - 1;
  return { chi2PerDf: chi2 / df, z: (chi2 - df) / Math.sqrt(2 * df), maxOverMean: max / mean };
}

const range = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

const keySets: { name: string; field: string; keys: string[] }[] = [
  { name: 'item ids `item-1`..`item-50000`', field: 'itemId', keys: range('item-', 1, 50_000) },
  { name: 'item ids `i0`..`i49999` (synthetic source)', field: 'itemId', keys: range('i', 0, 49_999) },
  { name: 'user ids `user-1`..`user-100000`', field: 'userId', keys: range('user-', 1, 100_000) },
  { name: 'categories `c0`..`c199` (synthetic source)', field: 'category', keys: range('c', 0, 199) },
];

// REES46's own keys where the sample is beside the project: numeric product and user ids, category codes, brands.
const csv = positionalArgs()[0] ?? join(packageRoot, '../shared/data/rees46/2019-Oct_head.csv');
if (existsSync(csv)) {
  const rows = readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((line) => line.split(','));
  const distinct = (column: number): string[] => [...new Set(rows.map((row) => row[column] ?? '').filter((value) => value !== ''))];
  keySets.push(
    { name: `REES46 product ids (${distinct(2).length} distinct)`, field: 'itemId', keys: distinct(2) },
    { name: `REES46 user ids (${distinct(7).length} distinct)`, field: 'userId', keys: distinct(7) },
    { name: `REES46 category codes (${distinct(4).length} distinct)`, field: 'category', keys: distinct(4) },
    { name: `REES46 brands (${distinct(5).length} distinct)`, field: 'attrs.brand', keys: distinct(5) },
  );
} else {
  console.error(`${csv} not found: REES46 key sets skipped`);
}

const widths = [16, 32, 64, 1000];
/** The reductions as the code makes them: hash-features seeds with `field=` and drops the sign bit; gru and sharding take h mod width. */
const reductions: { name: string; bucket: (key: string, field: string, width: number, mix: (h: number) => number) => number }[] = [
  { name: 'hash-features `(h >>> 1) % width`', bucket: (key, field, width, mix) => (mix(fnv1a(key, fnv1a(`${field}=`))) >>> 1) % width },
  { name: 'gru categories, sharding `h % width`', bucket: (key, _field, width, mix) => mix(fnv1a(key)) % width },
];

const cell = (s: Spread): string => `${s.chi2PerDf.toFixed(2)} (z ${s.z >= 0 ? '+' : ''}${s.z.toFixed(1)}), max ${s.maxOverMean.toFixed(2)}`;
const lines = [`| reduction | keys | width | FNV-1a: chi2/df (z), max/mean | FNV-1a + fmix32 |`, '|---|---|---|---|---|'];
for (const reduction of reductions) {
  for (const set of keySets) {
    for (const width of widths) {
      // Fewer than 5 keys a bucket: chi-square says little; the largest widths are left out for small sets.
      if (set.keys.length / width < 5) continue;
      const plain = spread(set.keys, width, (key) => reduction.bucket(key, set.field, width, (h) => h));
      const mixed = spread(set.keys, width, (key) => reduction.bucket(key, set.field, width, fmix32));
      lines.push(`| ${reduction.name} | ${set.name} | ${width} | ${cell(plain)} | ${cell(mixed)} |`);
    }
  }
}

/**
 * hash-features' sign (`signed`, the default): the lowest bit, beside a bucket from the bits above it. Collisions stay
 * unbiased only if a bucket's keys get + and - alike: per bucket, the sum of its keys' signs over the square root of
 * its count, root mean square over the buckets (about 1 for a random hash; far above, the signs follow the bucket).
 */
function signBalance(keys: readonly string[], field: string, width: number, mix: (h: number) => number): number {
  const sums = new Float64Array(width);
  const counts = new Float64Array(width);
  const seed = fnv1a(`${field}=`);
  for (const key of keys) {
    const h = mix(fnv1a(key, seed));
    const bucket = (h >>> 1) % width;
    sums[bucket]! += (h & 1) === 1 ? -1 : 1;
    counts[bucket]!++;
  }
  let squares = 0;
  for (let b = 0; b < width; b++) squares += counts[b]! > 0 ? sums[b]! ** 2 / counts[b]! : 0;
  return Math.sqrt(squares / width);
}
lines.push('', '| hash-features sign balance | keys | width | FNV-1a | FNV-1a + fmix32 |', '|---|---|---|---|---|');
for (const set of keySets) {
  for (const width of widths) {
    if (set.keys.length / width < 5) continue;
    lines.push(`| RMS of sign sum / sqrt(count) | ${set.name} | ${width} | ${signBalance(set.keys, set.field, width, (h) => h).toFixed(2)} | ${signBalance(set.keys, set.field, width, fmix32).toFixed(2)} |`);
  }
}

/** What the first run found (2026-12-07), kept with the bench that writes this section. */
const FINDING = `**Finding** (2026-12-07): no skew that costs anything at the widths used, so FNV-1a stays as it is. At powers of two, sequential ids (\`item-N\`, \`iN\`, \`user-N\`: 50,000-100,000 keys) spread *more* evenly than a random hash would (chi2/df 0.00-0.32, fullest bucket at most 1.04x the mean, 1.02-1.10x with fmix32; 200 categories \`cN\`: 0.13-0.82), and hash-features' signs balance better too (sign-sum RMS 0.14-0.64 against about 1): the last digits' low bits, which differ from key to key, land straight in the bucket's bits. At width 1000 the user ids are over-dispersed (z +15.7 in hash-features, +21.7 mod 1000: chi2/df 1.70, 1.97), \`item-N\` less (+8.0, -3.6), yet the fullest bucket is 1.35-1.50x the mean against 1.31-1.56x with fmix32. REES46's own keys (numeric product and user ids, category codes, brands) look random either way (|z| under 1.5; fmix32 gave the one z over 3, brands at 32). The weakness that is real is structural: a bucket taken mod 2^k depends only on the low k (hash-features: k + 1) bits of each UTF-16 code unit, so keys that differ only in higher bits of a character share a bucket at every such width: \`Apple\` and \`apple\` (bit 5) at gru's 16 and 32 and hash-features' 16, \`c1\` and \`ca\` (0x31, 0x61) at gru's 16. A final mix (murmur3's fmix32) would remove that, but it moves every bucket: hash-features' \`<prefix>_k\` values and gru's category ids in checkpoints and model files would change under the same names and settings, which neither the resume check (docs/operations.md, Changing a pipeline: it compares stage settings) nor the warm-start check would notice, and fnv1a's promise (the same buckets in every version, core/hash.test.ts) would break. A non-power-of-two width (hash-features \`width: 1000\`) takes every bit into account, for a pipeline that meets such keys.`;

publishSection(
  'hash-buckets',
  `## FNV-1a buckets (hash-features, gru categories)

\`${commandLine()}\` — how evenly FNV-1a (core/hash.ts) spreads keys where it is reduced mod a width: hash-features (\`(h >>> 1) % width\`, seeded with \`field=\`, the lowest bit its sign), the gru model's category buckets and the sharding bench's shards (\`h % width\`), against the same hash with murmur3's final mix (fmix32) on top. Per key set and width: chi-square of the bucket counts over its degrees of freedom (about 1 for a random hash, give or take sqrt(2/df)), its z-score (beyond about ±3 a random hash seldom gives), and the fullest bucket over the mean; sets of fewer than 5 keys a bucket are left out. Then hash-features' signs: per bucket the sum of its keys' ±1 over the square root of its count, root mean square over the buckets (about 1 for a random hash; higher, the signs would follow the bucket and collisions would not cancel). The keys are deterministic: the figures are the same on every machine.

${lines.join('\n')}

${FINDING}`,
);

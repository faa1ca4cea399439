/**
 * What a checkpoint's bytes are: the body's serialised size by section (sources, operators,
 * counters), by stage, and by field within each stage, down to a depth, largest first.
 *
 *   node dist/bench/checkpoint-breakdown.js CHECKPOINT_FILE [depth=3] [minBytes=10000]
 *
 * Sizes are of each value's JSON (as the checkpoint writes it), in bytes of UTF-8; a field's size
 * leaves out its key and separators, so the children of a value add up to a little less than it.
 * Arrays are shown as one field with their length (not element by element).
 */
import { readCheckpoint } from 'tributary';

const file = process.argv[2];
if (!file) throw new Error('usage: checkpoint-breakdown CHECKPOINT_FILE [depth] [minBytes]');
const depth = Number(process.argv[3] ?? 3);
const minBytes = Number(process.argv[4] ?? 10_000);

const body = await readCheckpoint(file);
const bytesOf = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? '');
const describe = (value: unknown): string => (Array.isArray(value) ? `array[${value.length}]` : value === null ? 'null' : typeof value);

const rows: { path: string; bytes: number; what: string }[] = [];
function walk(path: string, value: unknown, level: number): void {
  const bytes = bytesOf(value);
  if (bytes < minBytes && level > 1) return;
  rows.push({ path, bytes, what: describe(value) });
  if (level >= depth || value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) walk(`${path}.${key}`, child, level + 1);
}
const total = bytesOf(body);
for (const [key, value] of Object.entries(body)) walk(key, value, 1);
console.log(`| path | bytes | share | type |\n|---|---:|---:|---|`);
for (const row of rows) console.log(`| ${row.path} | ${row.bytes.toLocaleString('en-US')} | ${((100 * row.bytes) / total).toFixed(1)}% | ${row.what} |`);
console.log(`| (body) | ${total.toLocaleString('en-US')} | 100% | |`);

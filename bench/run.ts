/**
 * `npm run bench -- NAME [args...]`: runs one benchmark (dist/bench/NAME.js) with the flags it needs.
 * Each prints its section of BENCHMARKS.md, with the machine it ran on, and records it there only with `--write`
 * (bench/machine.ts publishSection): an ad-hoc run leaves the recorded figures alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const available = readdirSync(here)
  .filter((name) => name.endsWith('.js') && !['run.js', 'machine.js'].includes(name) && !name.endsWith('.test.js'))
  .map((name) => name.replace(/\.js$/, ''))
  .sort();
const [name, ...args] = process.argv.slice(2);
if (!name || !existsSync(join(here, `${name}.js`))) {
  console.error(`usage: npm run bench -- NAME [args...]\navailable: ${available.join(', ')}`);
  process.exit(2);
}
// The young generation the `tributary` command runs with (core/cli/main.ts), so benches measure what users run.
const flags = ['--expose-gc', '--max-old-space-size=8192', '--max-semi-space-size=32'];
const result = spawnSync(process.execPath, [...flags, join(here, `${name}.js`), ...args], { stdio: 'inherit' });
process.exit(result.status ?? 1);

/**
 * The Python that runs River's side of the benches (bench/models, bench/adwin-river): a virtual
 * environment under .cache with the River release BENCHMARKS.md was measured against, made on first use,
 * so the comparison needs no hand-installed package and cannot silently run against another version.
 * `TRIBUTARY_RIVER_PYTHON` points to a Python of your own instead.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot as root } from '../core/paths.js';

export const riverVersion = '0.26.1';

export function riverPython(): string {
  const own = process.env.TRIBUTARY_RIVER_PYTHON;
  if (own) return own;
  const venv = join(root, '.cache', `river-${riverVersion}`);
  const python = join(venv, 'bin', 'python');
  const done = join(venv, '.complete');
  if (existsSync(done)) return python;
  rmSync(venv, { recursive: true, force: true });
  console.error(`river: installing river==${riverVersion} into ${venv} (once)`);
  const steps: [string, string[]][] = [
    ['python3', ['-m', 'venv', venv]],
    [python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `river==${riverVersion}`]],
  ];
  for (const [command, args] of steps) {
    const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 900_000 });
    if (result.status !== 0) {
      throw new Error(`river: \`${command} ${args.join(' ')}\` failed (${result.status ?? result.error?.message}): ${(result.stderr || result.stdout || '').trim().slice(-800)}`);
    }
  }
  writeFileSync(done, `river==${riverVersion}\n`);
  return python;
}

/** River's Python with `args`; its stdout, or an error saying why it failed. */
function runRiverPython(what: string, args: readonly string[]): string {
  const result = spawnSync(riverPython(), args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  // A Python that cannot start gives no stderr at all: its error says why.
  if (result.status !== 0) throw new Error(`river: ${what} failed (${result.status ?? result.error?.message}): ${(result.stderr ?? '').trim().slice(-800)}`);
  return result.stdout;
}

/** Runs one of the bench's Python scripts with River's Python; throws with its stderr when it fails. */
export function runRiverScript(script: string, args: readonly string[]): string {
  return runRiverPython(script, [join(root, 'bench', script), ...args]);
}

/** The River version River's Python imports (the pinned one, unless TRIBUTARY_RIVER_PYTHON names another Python). */
export function installedRiverVersion(): string {
  const version = runRiverPython('reading its version', ['-c', 'import river; print(river.__version__)']).trim();
  if (version === '') throw new Error('river: its version is unreadable');
  return version;
}

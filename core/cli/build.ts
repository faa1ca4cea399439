/** What this build of Tributary is: its package version and, run from a git checkout, its commit. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';

let version: string | undefined;

/**
 * Tributary's version, from its own package.json. yargs' `.version()` would read the package.json
 * above the node_modules holding yargs: in a project that installed Tributary, the project's.
 */
export function tributaryVersion(): string {
  version ??= (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

/** This build's package version and, when it runs from a git checkout of Tributary, its commit: what made a report. */
export function tributaryBuild(): { version: string; commit?: string } {
  // An installed package has no .git of its own, and its version alone says what it is; git run in its
  // folder would find the repository of the project that installed it, and name that one's commit.
  if (!existsSync(join(packageRoot, '.git'))) return { version: tributaryVersion() };
  const git = spawnSync('git', ['-C', packageRoot, 'describe', '--always', '--dirty', '--abbrev=12'], { encoding: 'utf8', timeout: 5000 });
  const commit = git.status === 0 ? git.stdout.trim() : undefined;
  return { version: tributaryVersion(), ...(commit ? { commit } : {}) };
}

/**
 * The node flags the `tributary` command runs with (`--max-semi-space-size=32 --expose-gc`): those its bin,
 * dist/core/cli/tributary.cjs (package.json `bin`), names on its `#!/usr/bin/env -S node ...` line, which is where
 * they are set (a shebang can import nothing, so it is the one place). For whatever starts the daemon's code
 * with `node` itself and must run it as the command does (bench/soak.ts): a young generation of node's
 * default size made every soak figure before 2026-12-07 another daemon's than the one users run.
 */
export function commandNodeFlags(): string[] {
  const bin = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.tributary!;
  const shebang = readFileSync(join(packageRoot, bin), 'utf8').split('\n', 1)[0]!;
  const flags = /^#!\/usr\/bin\/env -S node((?: --\S+)*)$/.exec(shebang);
  if (!flags) throw new Error(`${bin}'s first line is not '#!/usr/bin/env -S node [--flag ...]': ${shebang}`);
  return flags[1]!.trim().split(' ').filter((flag) => flag !== '');
}

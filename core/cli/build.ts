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

// What the CLI's test files share (split from one cli.test.ts so that each file runs well within the
// test runner's per-file limit). A test helper: not exported by the package (package.json's files leave it out).
import { after } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { boundedSpawnSync, tempFolder } from 'tributary/testing';

export const cli = join(packageRoot, 'dist', 'core', 'cli', 'main.js');
export const dir = tempFolder({ after }, 'cli');

export function tributary(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = boundedSpawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function pipeline(name: string, yaml: string): string {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

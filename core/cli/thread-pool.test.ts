import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';

const bin = join(packageRoot, (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { bin: { tributary: string } }).bin.tributary);

/**
 * `tributary --version` through package.json's bin, as a user's command runs, with `env` for
 * UV_THREADPOOL_SIZE: the process's threads and that variable as they are when it exits (a preload
 * reads them; libuv's pool has started by then: the ES module loader reads main.js with it).
 */
function versionRun(size: string | undefined): { threads: number; size: string | undefined } {
  const folder = mkdtempSync(join(tmpdir(), 'tributary-thread-pool-'));
  try {
    const preload = join(folder, 'threads.cjs');
    writeFileSync(preload, "process.on('exit', () => process.stderr.write(JSON.stringify({ threads: require('node:fs').readdirSync('/proc/self/task').length, size: process.env.UV_THREADPOOL_SIZE }) + '\\n'));\n");
    const { UV_THREADPOOL_SIZE: _unset, ...env } = process.env;
    const run = spawnSync(process.execPath, ['-r', preload, bin, '--version'], { encoding: 'utf8', env: size === undefined ? env : { ...env, UV_THREADPOOL_SIZE: size } });
    assert.equal(run.status, 0, run.stderr);
    return JSON.parse(run.stderr.trim().split('\n').at(-1)!) as { threads: number; size: string | undefined };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

test("the tributary command starts libuv's thread pool with 16 threads where the environment names no size, and with the size it names otherwise (node-rdkafka's blocking calls wait there)", () => {
  // One thread of pool: the others are node's and V8's, the same in each run; the pool is the difference.
  const baseline = versionRun('1').threads - 1;
  const unset = versionRun(undefined);
  assert.equal(unset.size, '16', 'the variable its children inherit');
  assert.equal(unset.threads - baseline, 16, 'threads in the pool with UV_THREADPOOL_SIZE unset');
  assert.equal(versionRun('6').threads - baseline, 6, 'threads in the pool with UV_THREADPOOL_SIZE=6');
});

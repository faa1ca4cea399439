#!/usr/bin/env node
// Runs every test: the compiled *.test.js files under dist/ (core, plugins, examples, integration-tests),
// with node's built-in runner so its summary is printed. `npm test` compiles first.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');

function find(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...find(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const only = process.argv.slice(2);
const files = find(dist)
  .filter((file) => only.length === 0 || only.some((part) => file.includes(part)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/ (did tsc run?)');
  process.exit(1);
}
console.error(`running ${files.length} test files: ${files.map((f) => relative(dist, f)).join(' ')}`);
// Kafka integration tests share one real broker for the run (integration-tests/kafka/broker.ts).
const kafka = files.some((file) => /integration-tests\/.*kafka/.test(relative(dist, file)))
  ? await (await import('../dist/integration-tests/kafka/broker.js')).provideForRun()
  : { env: {}, stop: async () => undefined };
// --test-force-exit: a test file whose test timed out while holding a handle (a consumer, a socket) would otherwise
// never exit and hang the whole run. --test-timeout caps a test that sets no timeout of its own (the longest passing
// test takes under a minute), so a hang becomes a named failure.
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-force-exit', '--test-timeout=300000', ...files], { stdio: 'inherit', cwd: root, env: { ...process.env, ...kafka.env } });
await kafka.stop();
process.exit(result.status ?? 1);

#!/usr/bin/env node
// Applies patches/ to dependencies (patch-package), then recompiles node-rdkafka's native binding if
// its patched sources are newer than the binding node-rdkafka's own install just compiled. Only the
// changed files recompile (node-gyp build, not rebuild): a few seconds, not librdkafka's minutes.
// Why the patch: patches/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const run = (command, args, cwd) => {
  const result = spawnSync(command, args, { cwd, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
const require = createRequire(import.meta.url);

// Where node-rdkafka is: in our own node_modules in a checkout, but beside Tributary (hoisted into the
// project's node_modules) when Tributary is installed as a dependency, where patch-package run from
// our folder finds nothing to patch. It runs from the folder holding that node_modules, with our patches.
let rdkafka = join(root, 'node_modules', 'node-rdkafka');
try {
  rdkafka = dirname(require.resolve('node-rdkafka/package.json'));
} catch {
  // not installed: patch-package says so below
}
const appRoot = dirname(dirname(rdkafka));

// In CI a patch that does not apply cleanly (or a version mismatch) fails the install; elsewhere it is
// a warning: an unpatched binding works, only slower, and the kafka source then cannot name the
// partition a consumer error is about, nor say why a client failed for good (patches/README.md).
// CI is the rule of scripts/ci.ts (set to anything but '', 'false' or '0'), written out here because
// this script runs at install time, before tsc has compiled that module.
const inCI = !['', 'false', '0'].includes((process.env.CI ?? '').trim().toLowerCase());
run(process.execPath, [require.resolve('patch-package/index.js'), '--patch-dir', relative(appRoot, join(root, 'patches')), ...(inCI ? ['--error-on-warn'] : [])], appRoot);

const binding = join(rdkafka, 'build', 'Release', 'node-librdkafka.node');
if (existsSync(binding)) {
  const built = statSync(binding).mtimeMs;
  const changed = readdirSync(join(rdkafka, 'src')).some((name) => statSync(join(rdkafka, 'src', name)).mtimeMs > built);
  if (changed) {
    // npm tells its lifecycle scripts where its own node-gyp is; else it sits beside npm.
    const nodeGyp = process.env.npm_config_node_gyp ?? join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    console.error('postinstall: recompiling the patched node-rdkafka binding');
    run(process.execPath, [nodeGyp, 'build'], rdkafka);
  }
}

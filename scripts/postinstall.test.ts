import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = new URL('../..', import.meta.url).pathname;

test('installed as a dependency, with node-rdkafka hoisted beside it, postinstall still applies our patch to it', () => {
  // A project that installed Tributary: npm puts node-rdkafka in the project's node_modules, not in Tributary's.
  const app = mkdtempSync(join(tmpdir(), 'tributary-postinstall-'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { tributary: '0.1.0' } }));
  const tributary = join(app, 'node_modules', 'tributary');
  mkdirSync(join(tributary, 'scripts'), { recursive: true });
  mkdirSync(join(tributary, 'patches'));
  writeFileSync(join(tributary, 'package.json'), JSON.stringify({ name: 'tributary', version: '0.1.0', type: 'module' }));
  cpSync(join(repo, 'scripts', 'postinstall.mjs'), join(tributary, 'scripts', 'postinstall.mjs'));
  symlinkSync(join(repo, 'node_modules', 'patch-package'), join(app, 'node_modules', 'patch-package'));
  // A stand-in for node-rdkafka (no native build) and a patch to it under the real patch's name.
  const rdkafka = join(app, 'node_modules', 'node-rdkafka');
  mkdirSync(join(rdkafka, 'src'), { recursive: true });
  writeFileSync(join(rdkafka, 'package.json'), JSON.stringify({ name: 'node-rdkafka', version: '3.6.1', main: 'index.js' }));
  writeFileSync(join(rdkafka, 'src', 'producer.cc'), 'int patched = 0;\n');
  writeFileSync(
    join(tributary, 'patches', 'node-rdkafka+3.6.1.patch'),
    [
      'diff --git a/node_modules/node-rdkafka/src/producer.cc b/node_modules/node-rdkafka/src/producer.cc',
      'index 1111111..2222222 100644',
      '--- a/node_modules/node-rdkafka/src/producer.cc',
      '+++ b/node_modules/node-rdkafka/src/producer.cc',
      '@@ -1 +1 @@',
      '-int patched = 0;',
      '+int patched = 1;',
      '',
    ].join('\n'),
  );
  // As npm runs it: from Tributary's folder. Without CI set, a patch it cannot apply is only a warning.
  const { CI: _ci, ...env } = process.env;
  const result = spawnSync(process.execPath, ['scripts/postinstall.mjs'], { cwd: tributary, encoding: 'utf8', env });
  assert.equal(result.status, 0, result.stderr);
  // It was left unpatched: patch-package ran in Tributary's folder and found no node_modules/node-rdkafka there.
  assert.equal(readFileSync(join(rdkafka, 'src', 'producer.cc'), 'utf8'), 'int patched = 1;\n', result.stdout + result.stderr);
});

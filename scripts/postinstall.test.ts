import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempFolder } from 'tributary/testing';

const repo = new URL('../..', import.meta.url).pathname;

/**
 * A project that installed Tributary: npm puts node-rdkafka (here a stand-in with no native build,
 * at `installedVersion`) in the project's node_modules, not in Tributary's. Our one patch, to
 * node-rdkafka `patchedVersion`, turns `int patched = 0;` into `int patched = 1;`.
 */
function installedApp(t: TestContext, installedVersion = '3.6.1', patchedVersion = '3.6.1'): { tributary: string; rdkafka: string } {
  const app = tempFolder(t, 'postinstall');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { tributary: '0.1.0' } }));
  const tributary = join(app, 'node_modules', 'tributary');
  mkdirSync(join(tributary, 'scripts'), { recursive: true });
  mkdirSync(join(tributary, 'patches'));
  writeFileSync(join(tributary, 'package.json'), JSON.stringify({ name: 'tributary', version: '0.1.0', type: 'module' }));
  cpSync(join(repo, 'scripts', 'postinstall.mjs'), join(tributary, 'scripts', 'postinstall.mjs'));
  symlinkSync(join(repo, 'node_modules', 'patch-package'), join(app, 'node_modules', 'patch-package'));
  const rdkafka = join(app, 'node_modules', 'node-rdkafka');
  mkdirSync(join(rdkafka, 'src'), { recursive: true });
  writeFileSync(join(rdkafka, 'package.json'), JSON.stringify({ name: 'node-rdkafka', version: installedVersion, main: 'index.js' }));
  writeFileSync(join(rdkafka, 'src', 'producer.cc'), 'int patched = 0;\n');
  writeFileSync(
    join(tributary, 'patches', `node-rdkafka+${patchedVersion}.patch`),
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
  return { tributary, rdkafka };
}

/** postinstall as npm runs it: from Tributary's folder; `CI` as given (unset where undefined). */
function postinstall(tributary: string, ci?: string) {
  const { CI: _ci, ...env } = process.env;
  return spawnSync(process.execPath, ['scripts/postinstall.mjs'], { cwd: tributary, encoding: 'utf8', env: ci === undefined ? env : { ...env, CI: ci } });
}

test('installed as a dependency, with node-rdkafka hoisted beside it, postinstall still applies our patch to it', (t) => {
  const { tributary, rdkafka } = installedApp(t);
  // Without CI set, a patch it cannot apply would only be a warning, so the exit status alone proves nothing.
  const result = postinstall(tributary);
  assert.equal(result.status, 0, result.stderr);
  // It was patched: postinstall found node-rdkafka where npm put it and ran patch-package from the folder holding it
  // (run from Tributary's own folder, patch-package would find no node_modules/node-rdkafka and leave it unpatched).
  assert.equal(readFileSync(join(rdkafka, 'src', 'producer.cc'), 'utf8'), 'int patched = 1;\n', result.stdout + result.stderr);
});

test('a patch made for another node-rdkafka version fails the install in CI (CI set as CI systems set it), and only warns outside it', (t) => {
  for (const ci of ['true', '1']) {
    const { tributary } = installedApp(t, '3.6.1', '3.6.0');
    const result = postinstall(tributary, ci);
    assert.notEqual(result.status, 0, `CI=${ci}: ${result.stdout}${result.stderr}`);
  }
  for (const ci of [undefined, '', 'false', '0']) {
    const { tributary, rdkafka } = installedApp(t, '3.6.1', '3.6.0');
    const result = postinstall(tributary, ci);
    assert.equal(result.status, 0, `CI=${ci}: ${result.stdout}${result.stderr}`);
    // A warning, not a failure: the patch still applied (its lines match), and patch-package said why it warned.
    assert.equal(readFileSync(join(rdkafka, 'src', 'producer.cc'), 'utf8'), 'int patched = 1;\n');
    assert.match(result.stdout, /3\.6\.0/, `CI=${ci}: ${result.stdout}`);
  }
});

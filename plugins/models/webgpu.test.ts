import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOperator, tempFolder } from 'tributary/testing';
import intentModel from './intent.js';
import { missingPackages } from './backend.js';
import { separableIntentStream } from './testdata.js';
import { webgpuPackages } from './webgpu.js';

const cli = fileURLToPath(new URL('../../core/cli/main.js', import.meta.url));
/** CI and most machines: the packages are optional, not dependencies. */
const webgpuInstalled = missingPackages('webgpu').length === 0;

test('backend webgpu, named: without its packages (or a GPU) the model operator does not start, and says what is missing', async () => {
  const opening = runOperator(intentModel, { backend: 'webgpu', batch: { max_size: 32, max_delay: 0 } }, separableIntentStream(5));
  if (!webgpuInstalled) {
    // Refused by the factory, at the field (was: as the stage opened, a runtime failure).
    await assert.rejects(opening, (error: Error & { field?: string }) => error.name === 'PluginConfigError' && error.field === 'backend' && error.message.includes(`not installed: npm install ${webgpuPackages}`));
  } else {
    // Installed: it runs on a GPU, or says that none was found.
    await opening.then(
      (run) => assert.ok(run.output.length > 0),
      (error: Error) => assert.match(error.message, /webgpu: no WebGPU adapter/),
    );
  }
});

test('run of a pipeline naming backend webgpu without its packages: a config error at the field, exit 2 at once, no stack (was: exit 1 with a stack trace, a runtime failure)', (t) => {
  if (webgpuInstalled) return t.skip('the webgpu packages are installed here');
  const dir = tempFolder(t, 'webgpu-missing');
  writeFileSync(join(dir, 'p.yaml'), 'name: g\nsources: [{type: synthetic, events: 50}]\nstages:\n  - {type: sessionizer}\n  - {type: session-features}\n  - {type: intent-model, backend: webgpu}\nsinks: [{type: file, path: o.jsonl}]\n');
  const run = spawnSync(process.execPath, [cli, 'run', 'p.yaml'], { cwd: dir, encoding: 'utf8' });
  assert.equal(run.status, 2, run.stderr);
  const errors = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; code?: string; msg: string; err?: unknown }).filter((record) => record.level >= 50);
  assert.deepEqual(errors.map((record) => [record.code, record.msg, record.err]), [
    ['TRIB_ERR_PLUGIN_FACTORY', `p.yaml:6:35: $.stages[2].backend: operator 'intent-model': backend webgpu needs webgpu and @tensorflow/tfjs-backend-webgpu, not installed: npm install ${webgpuPackages}, or use backend: auto`, undefined],
  ]);
});

test('missingPackages: auto and the backends that are dependencies need no optional package', () => {
  for (const choice of ['auto', 'cpu', 'wasm'] as const) assert.deepEqual(missingPackages(choice), [], choice);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runOperator } from 'tributary/testing';
import intentModel from './intent.js';
import { separableIntentStream } from './testdata.js';
import { webgpuPackages } from './webgpu.js';

test('backend webgpu, named: without its packages (or a GPU) the model operator does not open, and says what is missing', async () => {
  let installed = true;
  try {
    import.meta.resolve('webgpu');
  } catch {
    installed = false;
  }
  const opening = runOperator(intentModel, { backend: 'webgpu', batch: { max_size: 32, max_delay: 0 } }, separableIntentStream(5));
  if (!installed) {
    // CI and most machines: the packages are optional, not dependencies.
    await assert.rejects(opening, new RegExp(`webgpu: not installed \\(npm install ${webgpuPackages}\\)`));
  } else {
    // Installed: it runs on a GPU, or says that none was found.
    await opening.then(
      (run) => assert.ok(run.output.length > 0),
      (error: Error) => assert.match(error.message, /webgpu: no WebGPU adapter/),
    );
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsHub } from 'tributary';
import { runOperator, testContext } from 'tributary/testing';
import intentModel from './intent.js';
import { separableIntentStream } from './testdata.js';
import { base } from './models-test-helpers.js';

// A file of its own: the backend is process-wide, and the other model tests run on cpu.
test("a model on the wasm backend exports the backend's linear memory (outside the heap, it never shrinks: what a pod's memory limit must leave room for)", async () => {
  const hub = new MetricsHub();
  await runOperator(intentModel, { ...base, backend: 'wasm', name: 'intent-wasm' }, separableIntentStream(300), testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'i' }) }));
  const text = await hub.registry.metrics();
  assert.match(text, /^tributary_model_backend_info\{pipeline="p",stage="i",model="intent-wasm",backend="wasm"\} 1$/m);
  const bytes = Number(/^tributary_model_backend_memory_bytes\{pipeline="p",stage="i",model="intent-wasm"\} (\S+)$/m.exec(text)?.[1]);
  // Whole wasm pages (64 KiB), at least the few MiB the module starts with.
  assert.ok(bytes >= 2 ** 20 && bytes % 65_536 === 0, `backend memory ${bytes} B\n${text}`);
});

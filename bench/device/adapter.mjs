// Which WebGPU adapters Dawn finds here, and one small product on the first (a smoke test before the bench).
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const flags = (process.env.TRIBUTARY_WEBGPU_FLAGS ?? '').split(' ').filter(Boolean);
const gpu = create(flags);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
console.log('adapter:', adapter ? JSON.stringify({ vendor: adapter.info.vendor, architecture: adapter.info.architecture, device: adapter.info.device, description: adapter.info.description, fallback: adapter.isFallbackAdapter }) : null);
if (!adapter) { console.log(await gpu.requestAdapter({ forceFallbackAdapter: true }) ? 'only a fallback adapter' : 'no adapter at all'); process.exit(3); }
globalThis.navigator ??= { gpu };
const tf = await import('@tensorflow/tfjs');
await import('@tensorflow/tfjs-backend-webgpu');
console.log('setBackend webgpu:', await tf.setBackend('webgpu'));
const a = tf.randomNormal([2048, 2048]);
const b = tf.randomNormal([2048, 2048]);
await tf.matMul(a, b).data();
const t0 = performance.now();
for (let i = 0; i < 20; i++) { const c = tf.matMul(a, b); await c.data(); c.dispose(); }
const ms = (performance.now() - t0) / 20;
console.log(`2048^3 matMul + read back: ${ms.toFixed(2)} ms (${((2 * 2048 ** 3) / ms / 1e9).toFixed(1)} TFLOP/s incl. read back)`);

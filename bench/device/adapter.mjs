// Whether Dawn finds the GPU here (the project's own setup, plugins/models/webgpu.ts, built in dist/), and one
// large product on the webgpu backend: a smoke test before the bench. Exits 3 without an adapter.
import { loadTf, tf } from '../../dist/plugins/models/backend.js';
import { useWebgpu } from '../../dist/plugins/models/webgpu.js';

await loadTf();
try {
  console.log('adapter:', await useWebgpu());
} catch (error) {
  console.log('no webgpu:', error.message);
  process.exit(3);
}
const a = tf.randomNormal([2048, 2048]);
const b = tf.randomNormal([2048, 2048]);
await tf.matMul(a, b).data();
const t0 = performance.now();
for (let i = 0; i < 20; i++) {
  const c = tf.matMul(a, b);
  await c.data();
  c.dispose();
}
const ms = (performance.now() - t0) / 20;
console.log(`2048^3 matMul + read back: ${ms.toFixed(2)} ms (${((2 * 2048 ** 3) / ms / 1e9).toFixed(1)} TFLOP/s incl. read back)`);

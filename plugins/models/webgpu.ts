/**
 * TF.js's webgpu backend in Node: Dawn (the `webgpu` package) as `navigator.gpu`, which Node lacks,
 * and `@tensorflow/tfjs-backend-webgpu` on it. Both are optional packages a user installs where
 * there is a GPU with a Vulkan driver. TRIBUTARY_WEBGPU_FLAGS passes Dawn its flags, space-separated
 * (`backend=vulkan`, `adapter=NAME`; `backend=null` is Dawn's null device, which takes every command
 * and computes nothing: a check of the plumbing without a GPU).
 */
import { optionalPackages, tf } from './backend.js';

/** The packages the webgpu backend needs, as `npm install` takes them. */
export const webgpuPackages = optionalPackages.webgpu.join(' ');

/** The Dawn module's part used here (the package ships no types for it). */
interface Dawn {
  create(flags: string[]): GpuLike;
  globals: object;
}

interface GpuLike {
  requestAdapter(options?: object): Promise<{ info: { vendor: string; architecture: string; device?: string; description: string } } | null>;
}

export const webgpuFlags = (): string[] => (process.env.TRIBUTARY_WEBGPU_FLAGS ?? '').split(' ').filter(Boolean);

/**
 * Makes Dawn this thread's `navigator.gpu` (once) and returns what its adapter says it is; throws
 * if no adapter is found (no GPU, no Vulkan driver) or the package is missing.
 */
export async function openDawn(flags = webgpuFlags()): Promise<string> {
  // Variable specifiers: tsc needs no types of the optional packages.
  const specifier: string = optionalPackages.webgpu[0];
  const dawn = (await import(specifier)) as Dawn;
  const holder = globalThis as { navigator?: { gpu?: GpuLike } };
  let gpu = holder.navigator?.gpu;
  if (gpu === undefined) {
    Object.assign(globalThis, dawn.globals);
    gpu = dawn.create(flags);
    // Node 20 has no navigator; 21 and later have one without gpu.
    if (holder.navigator === undefined) holder.navigator = { gpu };
    else Object.defineProperty(holder.navigator, 'gpu', { value: gpu, configurable: true });
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter (no GPU, or no Vulkan driver found)');
  if (flags.includes('backend=null')) return "Dawn's null device: no GPU, computes nothing";
  const { vendor, architecture, device, description } = adapter.info;
  return [vendor, architecture, device, description].filter(Boolean).join(' ') || 'an unnamed adapter';
}

/** {@link openDawn}, then TF.js's webgpu backend on it, in this thread; returns the adapter's description. */
export async function useWebgpu(): Promise<string> {
  const adapter = await openDawn();
  const specifier: string = optionalPackages.webgpu[1];
  await import(specifier);
  if (!(await tf.setBackend('webgpu'))) throw new Error('the webgpu backend did not initialise');
  return adapter;
}

import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { PluginRegistry } from '../registry.js';

/** The built-in plugin module, loaded exactly as a user's plugin module is. */
export const builtinPluginModule = join(packageRoot, 'dist', 'plugins', 'index.js');

export async function builtinRegistry(extra: readonly string[] = []): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  await registry.load(builtinPluginModule, packageRoot);
  for (const specifier of extra) await registry.load(specifier, process.cwd());
  return registry;
}

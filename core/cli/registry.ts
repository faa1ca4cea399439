import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { PluginRegistry } from '../registry.js';
import { TributaryError } from '../errors.js';

/** The built-in plugin module, loaded exactly as a user's plugin module is. */
export const builtinPluginModule = join(packageRoot, 'dist', 'plugins', 'index.js');

export async function builtinRegistry(extra: readonly string[] = []): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  await registry.load(builtinPluginModule, packageRoot);
  for (const specifier of extra) {
    try {
      await registry.load(specifier, process.cwd());
    } catch (cause) {
      // Said with the loader's code (TRIB_ERR_PLUGIN_LOAD, _DUPLICATE), as for a module in `plugins:`: one
      // code per cause, whoever names the module. Exit 2 for every command, as any a person must mend.
      const code = cause instanceof TributaryError ? cause.code : 'TRIB_ERR_PLUGIN_LOAD';
      throw new TributaryError(code, `--plugin ${specifier}: ${(cause as Error).message}`, { cause });
    }
  }
  return registry;
}

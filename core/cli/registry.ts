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
      // A module the command line names that does not load is a mistake in the command line: exit 2 with
      // the loader's reason, for every command (not a runtime failure's exit 1 and stack trace).
      throw new TributaryError('TRIB_ERR_USAGE', `--plugin ${specifier}: ${(cause as Error).message}`, { cause });
    }
  }
  return registry;
}

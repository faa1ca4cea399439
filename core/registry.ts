/**
 * Plugins known to a run, by kind and name, and the loader for plugin modules (npm packages or files).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve as resolveImport } from 'import-meta-resolve';
import { TributaryError } from './errors.js';
import { isPlugin, runtimeEntryFields, type AnyPlugin, type PluginKind } from './plugin.js';

export class PluginRegistry {
  private readonly byKind = new Map<PluginKind, Map<string, AnyPlugin>>([
    ['source', new Map()],
    ['operator', new Map()],
    ['sink', new Map()],
  ]);
  /** Where each plugin came from, for `tributary plugins` and duplicate errors. */
  private readonly origins = new Map<AnyPlugin, string>();

  register(plugin: AnyPlugin, origin = 'built-in'): void {
    const problem = specProblem(plugin);
    // Said here, naming the plugin and its module, rather than as a TypeError deep in validation or
    // the runtime (a plugin written in JavaScript has no compiler to catch these).
    if (problem) throw new TributaryError('TRIB_ERR_PLUGIN_LOAD', `${origin}: ${describePlugin(plugin)} is not a valid plugin: ${problem}`);
    const named = this.byKind.get(plugin.kind)!;
    const existing = named.get(plugin.name);
    if (existing === plugin) return;
    if (existing) {
      throw new TributaryError(
        'TRIB_ERR_PLUGIN_DUPLICATE',
        `${plugin.kind} '${plugin.name}' from ${origin} is already registered from ${this.origins.get(existing)}: load only one of the two modules, or rename the plugin in one of them`,
      );
    }
    named.set(plugin.name, plugin);
    this.origins.set(plugin, origin);
  }

  get(kind: PluginKind, name: string): AnyPlugin | undefined {
    return this.byKind.get(kind)!.get(name);
  }

  names(kind: PluginKind): string[] {
    return [...this.byKind.get(kind)!.keys()].sort();
  }

  all(): AnyPlugin[] {
    return [...this.byKind.values()].flatMap((named) => [...named.values()]);
  }

  originOf(plugin: AnyPlugin): string {
    return this.origins.get(plugin) ?? 'unknown';
  }

  /**
   * Loads a plugin module and registers every plugin it exports (default export: one plugin or an
   * array; named exports that are plugins count too). `specifier` is a file path (relative to
   * `baseDir`) or an npm package name.
   */
  async load(specifier: string, baseDir: string): Promise<AnyPlugin[]> {
    const url = resolveModule(specifier, baseDir);
    let module: Record<string, unknown>;
    try {
      module = (await import(url)) as Record<string, unknown>;
    } catch (cause) {
      const where = cause instanceof SyntaxError ? syntaxErrorLocation(url, cause) : undefined;
      // Node (20) cannot import TypeScript: say what to name instead of its bare "Unknown file extension".
      const code = (cause as NodeJS.ErrnoException).code;
      const compileFirst = 'a TypeScript plugin is compiled first, with `npx tsc`; name the compiled .js file here: docs/plugin-authoring.md';
      const typescript = code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?ts$/.test(specifier) ? ` (${compileFirst})` : '';
      const file = url.startsWith('file:') ? fileURLToPath(url) : undefined;
      // The named file itself is missing (not a module it imports): Node's text says it was "imported from"
      // Tributary's own registry.js. Said as the path, what it is relative to (the pipeline's folder, or the
      // working directory for --plugin), and a TypeScript source there (`../src/plugin.js`, named as a
      // TypeScript import names it).
      if (code === 'ERR_MODULE_NOT_FOUND' && file !== undefined && !existsSync(file)) {
        const source = ['.ts', '.mts'].map((ext) => file.replace(/\.[cm]?js$/, ext)).find((candidate) => candidate !== file && existsSync(candidate));
        // The other way round: a .ts name in the compiled output (`dist/src/index.ts`), where tsc wrote the .js.
        const compiled = source ? undefined : ['.js', '.mjs'].map((ext) => file.replace(/\.[cm]?ts$/, ext)).find((candidate) => candidate !== file && existsSync(candidate));
        const relative = isAbsolute(specifier) ? '' : ` (relative to ${baseDir})`;
        const hint = source ? `; ${source} is its TypeScript source: ${compileFirst}` : compiled ? `; ${compiled} is there: name the compiled .js file` : '';
        throw new TributaryError('TRIB_ERR_PLUGIN_LOAD', `cannot load plugin module '${specifier}': there is no file ${file}${relative}${hint}`, { cause });
      }
      throw new TributaryError('TRIB_ERR_PLUGIN_LOAD', `cannot load plugin module '${specifier}': ${(cause as Error).message}${where ? ` at ${where}` : ''}${typescript}`, { cause });
    }
    const found = new Set<AnyPlugin>();
    for (const value of Object.values(module)) {
      for (const candidate of Array.isArray(value) ? value : [value]) if (isPlugin(candidate)) found.add(candidate);
    }
    if (found.size === 0) {
      throw new TributaryError('TRIB_ERR_PLUGIN_LOAD', `plugin module '${specifier}' exports no plugin (use defineSource/defineOperator/defineSink)`);
    }
    for (const plugin of found) this.register(plugin, specifier);
    return [...found];
  }
}

/**
 * Where a module that failed to parse has its syntax error (`/path/plugin.js:12`). A CommonJS one says
 * it in the first line of its stack; an ES module's SyntaxError from import() does not (Node prints it
 * only for an uncaught one), so a child process importing the module is asked: ES modules are all
 * parsed before any runs, so the child runs none of the plugin's code. Only for a parse error: a
 * SyntaxError the module's own code threw (JSON.parse at its top level) has the module in its stack,
 * and importing it again would run that code twice.
 */
function syntaxErrorLocation(url: string, error: SyntaxError): string | undefined {
  const location = (text: string | undefined): string | undefined => {
    const match = text === undefined ? null : /^(file:\/\/\S+|\/\S+|[A-Za-z]:\\\S+):(\d+)$/.exec(text);
    if (!match) return undefined;
    return `${match[1]!.startsWith('file:') ? fileURLToPath(match[1]!) : match[1]!}:${match[2]!}`;
  };
  const stack = error.stack ?? '';
  const first = location(stack.split('\n')[0]);
  if (first) return first;
  if (/\(?file:\/\//.test(stack)) return undefined;
  const child = spawnSync(process.execPath, ['--input-type=module', '--eval', `await import(${JSON.stringify(url)})`], { encoding: 'utf8', timeout: 10_000 });
  for (const text of child.stderr?.split('\n') ?? []) {
    const found = location(text);
    if (found) return found;
  }
  return undefined;
}

const kinds: readonly PluginKind[] = ['source', 'operator', 'sink'];

/** What is wrong with a plugin's spec, checked cheaply at registration; undefined when nothing is. */
function specProblem(plugin: AnyPlugin): string | undefined {
  const spec = plugin as unknown as Record<string, unknown>;
  if (!kinds.includes(spec.kind as PluginKind)) return `kind must be one of ${kinds.join(', ')}, got ${JSON.stringify(spec.kind)}`;
  if (typeof spec.name !== 'string' || spec.name === '') return 'name must be a non-empty string (the `type:` in YAML)';
  if (typeof spec.summary !== 'string') return 'summary must be a string';
  if (typeof spec.config !== 'object' || spec.config === null || Array.isArray(spec.config)) return 'config must be a JSON Schema object, e.g. { type: "object", properties: {} }';
  if (typeof spec.create !== 'function') return 'create must be a function (config, context) => instance';
  // Declared, such a field would replace the runtime's in the entry's schema (a `type` of its own makes
  // every entry of the plugin invalid) or pass validation and never reach the factory.
  const properties = (spec.config as { properties?: unknown }).properties;
  const taken = typeof properties === 'object' && properties !== null ? runtimeEntryFields.find((field) => Object.hasOwn(properties, field)) : undefined;
  if (taken !== undefined) {
    return `config declares '${taken}', an entry field the runtime reads itself (${runtimeEntryFields.join(', ')}) and never hands to the factory: give the option another name`;
  }
  if (spec.partitioned !== undefined && (spec.kind !== 'source' || typeof spec.partitioned !== 'boolean')) return 'partitioned is for sources only: true where its instances implement onPartitions, partitionOffsets and partitionWatermarks';
  if (spec.kinds !== undefined) {
    if (spec.kind !== 'sink') return 'kinds is for sinks only (the record kinds a sink takes)';
    // An empty list would take no record at all (not even a side output's): it is always a mistake.
    if (!Array.isArray(spec.kinds) || spec.kinds.length === 0 || !spec.kinds.every((kind) => typeof kind === 'string' && kind !== '' && kind !== 'watermark')) {
      return "kinds must be a non-empty list of record kinds, e.g. ['prediction'] (not 'watermark': watermarks reach no sink); leave it out to take every kind";
    }
  }
  // What a backtest trusts to keep a replay out of production: another value would be read as not external.
  if (spec.external !== undefined && (spec.kind !== 'sink' || typeof spec.external !== 'boolean')) {
    return 'external is for sinks only: true where the sink writes outside the run\'s own files (a broker, a remote service), so a backtest replaces it by a file';
  }
  // What validation trusts to refuse a sink's kinds and outputs: a list it cannot read would refuse right configs.
  const isNameList = (value: unknown): boolean => Array.isArray(value) && value.every((name) => typeof name === 'string' && name !== '');
  if (spec.emits !== undefined || spec.sideOutputs !== undefined) {
    if (spec.kind === 'sink') return 'emits and sideOutputs are for sources and operators only (what they produce); a sink says what it takes with kinds';
    if (spec.emits === undefined) return "sideOutputs needs emits beside it: declaring emits declares everything the plugin produces (emits: [] for no kind of its own)";
    if (!isNameList(spec.emits) || (spec.emits as string[]).includes('watermark')) return "emits must be a list of record kinds, e.g. ['session'] ([] for none of its own; not 'watermark'); leave it out if the plugin may emit any";
    if (spec.sideOutputs !== undefined && !isNameList(spec.sideOutputs)) return "sideOutputs must be a list of side output names, e.g. ['late']";
  }
  // What validation asks for the clash check of feature blocks: asked of another kind, or a field without it, it would check nothing.
  if (spec.featureNames !== undefined && (spec.kind !== 'operator' || typeof spec.featureNames !== 'function')) {
    return 'featureNames is for operators only: (config) => the names of the feature block it appends';
  }
  if (spec.featureNamesField !== undefined && (spec.featureNames === undefined || typeof spec.featureNamesField !== 'string')) {
    return "featureNamesField needs featureNames beside it: the config field its names come from, e.g. 'prefix'";
  }
  if (spec.featureSelectorField !== undefined && (spec.kind !== 'operator' || typeof spec.featureSelectorField !== 'string')) {
    return "featureSelectorField is for operators only: the config field holding the feature names it selects, e.g. 'features'";
  }
  // What the warnings of featureSelectorField are worded by: another value would be taken for a transform without a word.
  if (spec.role !== undefined && (spec.kind !== 'operator' || spec.role !== 'model')) {
    return "role is for operators only, and 'model' its one value (a model stage, as defineModel's); leave it out for any other";
  }
  // Asked of the sinks (outputFiles) and sources (inputFiles) alone: on another kind it would check nothing.
  if (spec.outputFiles !== undefined && (spec.kind !== 'sink' || typeof spec.outputFiles !== 'function')) {
    return "outputFiles is for sinks only: (config) => the files it writes, e.g. [{ path: config.path, field: 'path' }]";
  }
  if (spec.inputFiles !== undefined && (spec.kind !== 'source' || typeof spec.inputFiles !== 'function')) {
    return "inputFiles is for sources only: (config) => the files it reads, e.g. [{ path: config.path, field: 'path' }]";
  }
  // A condition validation cannot apply, or one on a name not declared, would refuse right configs or check nothing.
  for (const [field, list] of [['emitsOnlyWith', 'emits'], ['sideOutputsOnlyWith', 'sideOutputs']] as const) {
    const conditions: unknown = spec[field];
    if (conditions === undefined) continue;
    const declared: unknown = spec[list];
    if (typeof conditions !== 'object' || conditions === null || Array.isArray(conditions)) return `${field} must map names of ${list} to { condition, test }`;
    for (const [name, value] of Object.entries(conditions)) {
      if (!Array.isArray(declared) || !declared.includes(name)) return `${field} names '${name}', which is not in ${list}: list it there too (${list} is all the plugin can make)`;
      const { condition, test } = (value ?? {}) as { condition?: unknown; test?: unknown };
      if (typeof condition !== 'string' || condition === '' || typeof test !== 'function') {
        return `${field}.${name} must be { condition: 'the option that makes it, e.g. report: true', test: (config) => boolean }`;
      }
    }
  }
  return undefined;
}

function describePlugin(plugin: AnyPlugin): string {
  const spec = plugin as unknown as Record<string, unknown>;
  return `${typeof spec.kind === 'string' ? spec.kind : 'plugin'} ${typeof spec.name === 'string' ? `'${spec.name}'` : '(no name)'}`;
}

function resolveModule(specifier: string, baseDir: string): string {
  const looksLikePath = specifier.startsWith('.') || isAbsolute(specifier) || /\.[cm]?[jt]s$/.test(specifier);
  if (looksLikePath) return pathToFileURL(resolve(baseDir, specifier)).href;
  // An npm package: resolved as `import` resolves it (an `exports` map's `import` entry, else `main`),
  // from the pipeline's folder first, as a user expects, then from Tributary's. require.resolve
  // would miss a package that only exports an `import` entry.
  let firstError: Error | undefined;
  const parents = [pathToFileURL(resolve(baseDir, 'noop.js')).href, import.meta.url];
  for (const from of parents) {
    try {
      return resolveImport(specifier, from);
    } catch (error) {
      firstError ??= error as Error;
    }
  }
  // A CommonJS package whose exports offer only a `require` entry: import() loads it all the same.
  for (const from of parents) {
    try {
      return pathToFileURL(createRequire(from).resolve(specifier)).href;
    } catch {
      // not there either
    }
  }
  // Node's text names a file the search started from ('imported from /pipelines/noop.js'), which does not
  // exist, and says a package is missing when only the file its package.json names is (not built yet).
  const missing = firstError === undefined ? undefined : /^Cannot find package '([^']*)'/.exec(firstError.message)?.[1];
  const reason =
    firstError === undefined || missing === specifier
      ? `no package '${specifier}' is installed in node_modules of ${baseDir} or a folder above it, nor beside Tributary: npm install it there, or name the plugin's file (./plugin.js, relative to ${baseDir})`
      : missing !== undefined && isAbsolute(missing)
        ? `the package is at ${missing}, but the file its package.json names (main, or exports' import entry) is not: is it built (npx tsc there)?`
        : firstError.message;
  throw new TributaryError('TRIB_ERR_PLUGIN_LOAD', `cannot load plugin module '${specifier}': ${reason}`);
}

/**
 * Calls of a plugin spec's hooks whose results the core reads (PluginSpec.featureNames, inputFiles,
 * outputFiles, checkPipeline, replayNotes, countRecords, and an emitsOnlyWith condition's test), each
 * result checked here, once, as it crosses into the core. A plugin written in JavaScript has no compiler
 * to hold it to its spec: a hook returning a string for a list, or nothing, would otherwise fail as a
 * TypeError deep in validation, naming neither the plugin nor the hook. Said as a PluginHookError.
 */
import { TributaryError } from './errors.js';
import type { ConfigFile, EntryProblem, OutlineEntry, OutputCondition, PipelineOutline, PluginKind, PluginSpec } from './plugin.js';
import { valueText } from './value-text.js';

/** What names a plugin in a hook's error: its kind and name. */
type NamedPlugin = Pick<PluginSpec<PluginKind, never>, 'kind' | 'name'>;

/**
 * A plugin's hook that returned what its spec does not allow, or threw: a fault of the plugin, not of the
 * pipeline's config, said naming the plugin and the hook (TRIB_ERR_PLUGIN_LOAD: a person mends it, as a
 * plugin whose spec lacks a `create`). `entry`: the JSONPath of the entry whose config it was called with, where known.
 */
export class PluginHookError extends TributaryError {
  constructor(
    readonly plugin: NamedPlugin,
    readonly hook: string,
    readonly entry: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('TRIB_ERR_PLUGIN_LOAD', `${plugin.kind} '${plugin.name}': its ${hook} ${message}`, options);
    this.name = 'PluginHookError';
  }
}

/** A value as an error quotes it: JSON where it has one, cut to 60 characters. */
function shown(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return 'a function';
  return valueText(value);
}

/**
 * Why `value` is not a list whose every item `item` accepts: '' where it is no list, else the item's reason
 * with its index; undefined where it is one.
 */
function listProblem(value: unknown, item: (each: unknown) => string | undefined): string | undefined {
  if (!Array.isArray(value)) return '';
  for (const [index, each] of value.entries()) {
    const problem = item(each);
    if (problem !== undefined) return `item ${index} (${shown(each)}) ${problem}`;
  }
  return undefined;
}

const text = (each: unknown): string | undefined => (typeof each === 'string' ? undefined : 'is not a string');
const name = (each: unknown): string | undefined => (typeof each === 'string' && each !== '' ? undefined : 'is not a non-empty string');

function configFile(each: unknown): string | undefined {
  if (typeof each !== 'object' || each === null || Array.isArray(each)) return 'is not an object { path, field? }';
  const { path, field } = each as { path?: unknown; field?: unknown };
  if (typeof path !== 'string' || path === '') return 'has no path (a non-empty string)';
  if (field !== undefined && typeof field !== 'string') return 'has a field that is not a string';
  return undefined;
}

function entryProblem(each: unknown): string | undefined {
  if (typeof each !== 'object' || each === null || Array.isArray(each)) return 'is not an object { field?, message, severity? }';
  const { field, message, severity } = each as { field?: unknown; message?: unknown; severity?: unknown };
  if (typeof message !== 'string' || message === '') return 'has no message (a non-empty string)';
  if (field !== undefined && typeof field !== 'string') return 'has a field that is not a string';
  if (severity !== undefined && severity !== 'error' && severity !== 'warning') return "has a severity that is neither 'error' nor 'warning'";
  return undefined;
}

/** What a hook threw, said with the plugin and the hook; a TributaryError is its own (it names what failed). */
function thrown(plugin: NamedPlugin, hook: string, entry: string | undefined, cause: unknown, verb = 'threw'): TributaryError {
  if (cause instanceof TributaryError) return cause;
  return new PluginHookError(plugin, hook, entry, `${verb}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
}

/**
 * `value` as the hook returned it, or the PluginHookError that says what it is not: `expected`, the form its
 * spec asks for, and `problemOf`'s detail (an item's; '' where the value is wrong as a whole).
 */
function result<T>(plugin: NamedPlugin, hook: string, entry: string | undefined, value: unknown, problemOf: (value: unknown) => string | undefined, expected: string): T {
  const problem = problemOf(value);
  if (problem === undefined) return value as T;
  throw new PluginHookError(plugin, hook, entry, `returned ${shown(value)}${problem === '' ? '' : `: ${problem}`}; it must return ${expected}`);
}

/** `call`'s value, checked by `result`. */
function checked<T>(plugin: NamedPlugin, hook: string, entry: string | undefined, call: () => unknown, problemOf: (value: unknown) => string | undefined, expected: string): T {
  let value: unknown;
  try {
    value = call();
  } catch (cause) {
    throw thrown(plugin, hook, entry, cause);
  }
  return result<T>(plugin, hook, entry, value, problemOf, expected);
}

/** Where a hook's result is read: the JSONPath of the entry whose config it is called with (for its error), if known. */
export interface HookCall {
  entry?: string;
}

/** PluginSpec.featureNames: the names of the block the stage appends with this config; undefined where it does not declare them. */
export function featureNamesOf<Config>(plugin: NamedPlugin & Pick<PluginSpec<PluginKind, Config>, 'featureNames'>, config: Config, at: HookCall = {}): readonly string[] | undefined {
  const hook = plugin.featureNames;
  if (hook === undefined) return undefined;
  return checked(plugin, 'featureNames(config)', at.entry, () => hook.call(plugin, config), (value) => listProblem(value, name), "a list of feature names, e.g. ['my_score']");
}

/** PluginSpec.keepsFeatureValues: whether the stage configured `saved` then and `config` now makes each name it still makes as before (it only adds or drops names); false where it does not say. */
export function keepsFeatureValuesOf<Config>(plugin: NamedPlugin & Pick<PluginSpec<PluginKind, Config>, 'keepsFeatureValues'>, saved: unknown, config: Config, at: HookCall = {}): boolean {
  const hook = plugin.keepsFeatureValues;
  if (hook === undefined) return false;
  return checked(plugin, 'keepsFeatureValues(saved, config)', at.entry, () => hook.call(plugin, saved, config), (value) => (typeof value === 'boolean' ? undefined : ''), 'true or false');
}

/** PluginSpec.inputFiles: the files a source reads with this config; [] where it does not declare them. */
export function inputFilesOf<Config>(plugin: NamedPlugin & Pick<PluginSpec<PluginKind, Config>, 'inputFiles'>, config: Config, at: HookCall = {}): readonly ConfigFile[] {
  const hook = plugin.inputFiles;
  if (hook === undefined) return [];
  return checked(plugin, 'inputFiles(config)', at.entry, () => hook.call(plugin, config), (value) => listProblem(value, configFile), "a list of { path, field? }, e.g. [{ path: config.path, field: 'path' }]");
}

/** PluginSpec.outputFiles: the files a sink writes with this config; [] where it does not declare them. */
export function outputFilesOf<Config>(plugin: NamedPlugin & Pick<PluginSpec<PluginKind, Config>, 'outputFiles'>, config: Config, at: HookCall = {}): readonly ConfigFile[] {
  const hook = plugin.outputFiles;
  if (hook === undefined) return [];
  return checked(plugin, 'outputFiles(config)', at.entry, () => hook.call(plugin, config), (value) => listProblem(value, configFile), "a list of { path, field? }, e.g. [{ path: config.path, field: 'path' }]");
}

/** PluginSpec.checkPipeline: this entry's problems in the pipeline; [] where the plugin has no such check. */
export function pipelineProblemsOf<Config>(plugin: NamedPlugin & Pick<PluginSpec<PluginKind, Config>, 'checkPipeline'>, config: Config, pipeline: PipelineOutline, self: OutlineEntry, at: HookCall = {}): readonly EntryProblem[] {
  const hook = plugin.checkPipeline;
  if (hook === undefined) return [];
  return checked(
    plugin,
    'checkPipeline(config, pipeline, self)',
    at.entry,
    () => hook.call(plugin, config, pipeline, self),
    (value) => listProblem(value, entryProblem),
    "a list of this entry's problems, { field?, message, severity? } each ([] for none)",
  );
}

/** PluginSpec.replayNotes: what a replay of a file in this source's place cannot take from it; [] where the plugin says nothing. */
export function replayNotesOf<Config>(plugin: NamedPlugin & Pick<PluginSpec<PluginKind, Config>, 'replayNotes'>, config: Config, at: HookCall = {}): readonly string[] {
  const hook = plugin.replayNotes;
  if (hook === undefined) return [];
  return checked(plugin, 'replayNotes(config)', at.entry, () => hook.call(plugin, config), (value) => listProblem(value, text), 'a list of notes, each a string ([] for none)');
}

/** PluginSpec.countRecords: how many records a run of this source's config will read; undefined where that is not known. */
export async function recordCountOf<Config>(plugin: NamedPlugin & Pick<PluginSpec<PluginKind, Config>, 'countRecords'>, config: Config, baseDir: string, at: HookCall = {}): Promise<number | undefined> {
  const hook = plugin.countRecords;
  if (hook === undefined) return undefined;
  const hookName = 'countRecords(config, baseDir)';
  let value: unknown;
  try {
    value = await hook.call(plugin, config, baseDir);
  } catch (cause) {
    throw thrown(plugin, hookName, at.entry, cause, 'failed');
  }
  const isCount = (count: unknown): boolean => count === undefined || (typeof count === 'number' && count >= 0 && Number.isFinite(count));
  return result(plugin, hookName, at.entry, value, (count) => (isCount(count) ? undefined : ''), 'a promise of a count (a number of 0 or more), or of undefined where it is not known');
}

/** An emitsOnlyWith (or sideOutputsOnlyWith) condition's test of a config: whether the plugin makes `made` with it. */
export function conditionMet<Config>(plugin: NamedPlugin, field: 'emitsOnlyWith' | 'sideOutputsOnlyWith', made: string, condition: OutputCondition<Config>, config: Config, at: HookCall = {}): boolean {
  return checked(plugin, `${field}.${made}.test(config)`, at.entry, () => condition.test(config), (value) => (typeof value === 'boolean' ? undefined : ''), 'true or false');
}

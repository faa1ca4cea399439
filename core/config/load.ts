/**
 * Reads a pipeline file: YAML with positions, `${VAR}` interpolation, `--set` overrides, plugin
 * modules, then validation. Every problem comes back at once, as `FILE:LINE:COL: <json path>: <message>`.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, Scalar, Schema, visit, type Alias, type Document, type Node, type Pair, type ScalarTag, type YAMLMap } from 'yaml';
import type { ErrorObject } from 'ajv';
import { closest, distance } from 'fastest-levenshtein';
import { ConfigError, positionOf, TributaryError, type ConfigProblem } from '../errors.js';
import { emittedWith, runtimeEntryFields, type AnyPlugin, type JsonSchema, type OutlineEntry, type OutputCondition, type PipelineOutline, type PluginKind } from '../plugin.js';
import type { PluginRegistry } from '../registry.js';
import { featureNamesOf, inputFilesOf, outputFilesOf, pipelineProblemsOf, PluginHookError } from '../plugin-hooks.js';
import { mappingWarnings, timeFormatProblem, type MappingConfig } from '../mapping.js';
import { timeZoneProblem } from '../time-zone.js';
import { parseDuration } from '../duration.js';
import { fieldPathProblem, ownValue, setOwnField } from '../fields.js';
import { sameFile } from '../paths.js';
import { FeatureSelector } from '../feature-selector.js';
import { nestedFieldHome, SchemaValidator, sinkKindsSchemaPath } from './schema.js';
import type { CheckpointCompression } from '../runtime/checkpoint.js';
import { isSecret } from '../runtime/telemetry.js';
import { valueText as quotedValue } from '../value-text.js';

export interface PipelineEntry {
  type: string;
  label?: string;
  [field: string]: unknown;
}

export interface PipelineDocument {
  name: string;
  description?: string;
  plugins?: string[];
  sources: PipelineEntry[];
  stages?: PipelineEntry[];
  sinks: PipelineEntry[];
  dead_letter?: PipelineEntry;
  settings: {
    max_in_flight: number;
    progress_interval: string | number;
    commit_interval?: string | number;
    shutdown_timeout?: string | number;
    sink_stall_timeout?: string | number;
    heap_budget?: string | number;
    heap_wait?: string | number;
    restart?: { attempts?: number | 'unlimited'; backoff?: string | number; max_backoff?: string | number; reset_after?: string | number };
  };
  checkpoint?: { dir: string; interval: string | number; min_pause?: string | number; keep: number; compression?: CheckpointCompression; tolerable_failures?: number | 'unlimited' };
  scale_out?: { state_dir: string; keep: number };
  erasure?: ErasureSettings;
}

/** The pipeline's `erasure` section: how an erasure request for one user is recognised and logged. */
export interface ErasureSettings {
  /** The event type that asks to erase its user's state (`erase`). */
  event_type: string;
  /** How the log line of each request names the user: `hashed` (a SHA-256 prefix), `clear`, or `none`. */
  log_user_id: 'hashed' | 'clear' | 'none';
}

/** A validated pipeline, with each entry's plugin resolved. */
export interface LoadedPipeline {
  file: string;
  baseDir: string;
  document: PipelineDocument;
  sources: ResolvedEntry[];
  stages: ResolvedEntry[];
  sinks: ResolvedEntry[];
  deadLetter: ResolvedEntry;
  /**
   * Where a field of the document (`name`, `scale_out`, `checkpoint.dir`) is in the file, as
   * {@link ResolvedEntry.locate} finds an entry's; absent for a pipeline composed in code.
   */
  locate?(field: string, place?: FieldPlace): FieldPosition;
  /**
   * What the plugins' checks across entries warn of (EntryProblem.severity `warning`), located as
   * problems are: a config that runs but is most likely not what was meant. `validate` says them;
   * PipelineRunner logs them (found again as it checks the pipeline: loadedPipelineProblems).
   */
  warnings?: readonly ConfigProblem[];
}

/**
 * Which position of a field a config problem is said at, one rule for `validate` (loadPipeline) and
 * for the runner's check of a loaded pipeline (loadedPipelineProblems) alike: `value` (the default) for a
 * bad value, where the value written (or the `${VAR}` it came from) starts (a block map or list: at its
 * key, since its value starts at its first inner key); `key` for a key that
 * should not be there (an unknown field, one that does not apply) and for a map that lacks a required
 * field, said at the key of that map (an entry of a list, which has none: where it starts).
 */
export type FieldPlace = 'value' | 'key';

/** A field's JSONPath, and where it is in the file: its own position, or the nearest enclosing one the file holds. */
export interface FieldPosition {
  path: string;
  line: number;
  column: number;
  /**
   * Where no place in the file holds the field's value (a `--set` gave it, or made the section it is in):
   * that said, as the note problemPlace and placeText put in parentheses (`from --set 'sources[0].users=0',
   * not from the file`); such a problem is said by the file and path alone (problemPlace), `line` and
   * `column` being only the nearest position the file has.
   */
  origin?: string;
  /** With `origin`: the field is in a section or entry a `--set` created (not a value one gave), which originNote's advice is for. */
  inCreatedSection?: boolean;
}

/** A FieldPosition's `origin` and `inCreatedSection`, where it has an origin. */
type SetOrigin = Required<Pick<FieldPosition, 'origin'>> & Pick<FieldPosition, 'inCreatedSection'>;

/**
 * FieldPosition.origin as a problem at the field says it (in its parentheses), the one wording of loadPipeline's
 * problems (notingWhatSetGave) and the runner's re-check of them (problemPlace). `missingField`: the problem is
 * a required field missing there, which in a section a `--set` created is the user's to set (that --set gave
 * only one field), so the note says how; other problems (`scale_out needs checkpoints`, a stage named in a
 * checkpoint's message) it does not fit.
 */
function originNote(at: SetOrigin, missingField: boolean): string {
  return missingField && at.inCreatedSection ? `${at.origin}; set its other required fields too, or write the section in the file` : at.origin;
}

/**
 * Where a problem at a field (`at`, a locator's answer; absent: `fallback`'s position, an entry's) is said:
 * its line and column, or, for a value no place in the file holds (FieldPosition.origin), none, with that
 * said after the message (originNote; `missingField` as it takes it).
 */
export function problemPlace(at: FieldPosition | undefined, message: string, fallback?: { readonly line?: number; readonly column?: number }, missingField = false): Pick<ConfigProblem, 'line' | 'column' | 'message'> {
  return at?.origin === undefined ? { ...positionOf(at ?? fallback), message } : { message: `${message} (${originNote({ origin: at.origin, inCreatedSection: at.inCreatedSection }, missingField)})` };
}

/**
 * Where a field or entry is (`at`, as problemPlace takes it), as another problem's message names it:
 * `FILE:LINE:COL`, `FILE` where it has no position, or for a value no place in the file holds, the file
 * with where it came from (`a.yaml (from --set 'name=x', not from the file)`), not the nearest position.
 * With `details` (a path, a type), the text a message puts in its own parentheses, the origin last, so
 * that none nest: `a.yaml:3:10, $.stages[0], user-features`, `a.yaml, $.stages[0], user-features; from
 * --set 'stages[0]={...}', not from the file`.
 */
export function placeText(file: string, at: { readonly line?: number; readonly column?: number; readonly origin?: string } | undefined, details: readonly string[] = []): string {
  const { line, column } = at?.origin === undefined ? positionOf(at) : {};
  const place = [line === undefined ? file : `${file}:${line}:${column}`, ...details].join(', ');
  if (at?.origin === undefined) return place;
  return details.length === 0 ? `${place} (${at.origin})` : `${place}; ${at.origin}`;
}

export interface ResolvedEntry {
  plugin: AnyPlugin;
  entry: PipelineEntry;
  /** JSONPath of the entry in the document, for messages. */
  path: string;
  /** Where the entry starts in the file (absent for defaults the file does not hold, and for an entry a `--set` gave or created). */
  line?: number;
  column?: number;
  /**
   * Where a field of the entry (`url`, `mapping.time_format`, `horizons[1]`, a key with a dot as the
   * JSONPath writes it: `options["a.b"]`; `''`: the entry) is in the file: its JSONPath and the position of
   * its value, or of its key (see FieldPlace), or the nearest enclosing one the file holds (a default's entry).
   */
  locate?(field: string, place?: FieldPlace): FieldPosition;
  /**
   * A sink the command adds for its own use, not the pipeline's (the backtest's collection of model
   * reports): a record only such sinks take is counted in RunStats.collected, not as a record out.
   */
  internal?: boolean;
}

export interface LoadOptions {
  registry: PluginRegistry;
  env?: Record<string, string | undefined>;
  /** `path=value` overrides, applied after interpolation (`sources[0].users=10` or `sources.0.users=10`; a key with a dot or an `=`, quoted in brackets: `sinks[0].options["linger.ms"]=5`; the path ends at the first `=` outside its brackets). */
  sets?: readonly string[];
  /** Replace the text read from `file` (tests, stdin). */
  text?: string;
  /**
   * Changes each stage's entry once its plugin is known, before it is validated (the backtest switches
   * every model's report on), so the checks across entries see the pipeline as it will run.
   */
  adjustStage?(entry: PipelineEntry, plugin: AnyPlugin): void;
}

type PathSegment = string | number;

/** A problem at a place in the pipeline's text: every problem loadPipeline finds once the file is read. */
type LocatedProblem = ConfigProblem & Required<Pick<ConfigProblem, 'line' | 'column' | 'path'>>;

export async function loadPipeline(file: string, options: LoadOptions): Promise<LoadedPipeline> {
  let text = options.text;
  if (text === undefined) {
    try {
      text = await readFile(file, 'utf8');
    } catch (cause) {
      // No text to point into: a problem of the file as a whole, said as `FILE: cannot read: ...`.
      throw new ConfigError([{ file, message: `cannot read: ${(cause as Error).message}` }], 'TRIB_ERR_CONFIG_READ');
    }
  }
  const lineCounter = new LineCounter();
  // Merge keys (`<<: *kafka`, YAML 1.1's, which YAML 1.2 lacks) as Docker Compose reads them: a block
  // shared by several entries (a Kafka `security` section) is written once, beside a top-level `x-` key.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true });
  const at = (offset: number, path: string, message: string): LocatedProblem => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col, path, message };
  };
  // A tag YAML's core schema does not know (`!!js/function`, `!!python/object`, a custom `!env`) was read as if
  // absent: a `!!js/function "..."` loaded as the text of the function. Nothing here runs one; it is refused, so that
  // no one thinks it does, or that a tag meant something.
  const unknownTag = doc.warnings.find((warning) => warning.code === 'TAG_RESOLVE_FAILED');
  if (doc.errors.length === 0 && unknownTag !== undefined) {
    const tag = unknownTag.message.split('\n')[0]!.replace(/^Unresolved tag: /, '');
    let path: PathSegment[] = [];
    visit(doc, (_key, node, ancestors) => {
      if (!isScalar(node) && !isMap(node) && !isSeq(node)) return undefined;
      if (node.tag !== tag) return undefined;
      path = segmentsOf(ancestors, node);
      return visit.BREAK;
    });
    const written = tag.replace(/^tag:yaml\.org,2002:/, '!!');
    throw new ConfigError([at(unknownTag.pos[0], jsonPath(path), `YAML tag ${written} is not taken: a pipeline file takes YAML's standard tags only (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq), and none runs code; remove it`)], 'TRIB_ERR_CONFIG_YAML');
  }
  if (doc.errors.length > 0) {
    // The first syntax error is the one to fix: the parser's later ones mostly follow from it (one
    // stray brace gave sixty), so they are counted, not listed.
    const first = doc.errors[0]!;
    const more = doc.errors.length - 1;
    const counted = more > 0 ? ` (and ${more} more YAML error${more > 1 ? 's' : ''} after it, which often follow from this one)` : '';
    const duplicate = first.code === 'DUPLICATE_KEY' ? duplicateKeyAt(text, first.pos[0]) : undefined;
    // The parser's words for a second document are advice to its API's users, not to this file's writer.
    // An unquoted `${VAR}` in a flow collection (`[...]`, `{...}`): YAML reads its `{` as a map, and says only
    // "Unexpected flow-map-start" there, or "Missing , or :", with nothing of the variable.
    const unquotedVariable = text[first.pos[0]] === '{' && text[first.pos[0] - 1] === '$';
    const message =
      first.code === 'MULTIPLE_DOCS'
        ? 'a pipeline file holds one YAML document; this `---` starts another: remove it, or move what follows to a file of its own'
        : unquotedVariable
          ? `${first.message.split('\n')[0]!}: a \`\${VAR}\` inside \`[...]\` or \`{...}\` is read by YAML as the start of a map; quote the value (\`"\${VAR}"\`) or write that entry in block style`
          : first.message.split('\n')[0]!;
    const problem = duplicate
      ? at(first.pos[0], jsonPath(duplicate.path), `'${duplicate.key}' is given twice in this map (first at line ${lineCounter.linePos(duplicate.firstAt).line}): keep one${counted}`)
      : at(first.pos[0], '$', message + counted);
    throw new ConfigError([problem], 'TRIB_ERR_CONFIG_YAML');
  }

  const problems: ConfigProblem[] = [];
  /** Values that were one unquoted `${VAR}` read as a number, boolean or null, by their node: the reference as written. */
  const retyped = new Map<Node, string>();
  /** Values the environment filled in (a `${VAR}` in them), by their node: the variables, for the problems said at them. */
  const filledIn = new Map<Node, readonly string[]>();
  interpolate(doc, options.env ?? process.env, (node, path, message) => problems.push(at(node.range?.[0] ?? 0, jsonPath(path), message)), retyped, filledIn);
  /**
   * The `${VAR}` an unquoted value at `segments` was, by the node the path reaches: through an alias or
   * a merge key, the anchored block's (keyed by their own path, the entry using the block found none).
   */
  const retypedAt = (segments: readonly PathSegment[]): string | undefined => {
    const found = nodeAt(doc, segments);
    return found === undefined ? undefined : retyped.get(found.node);
  };
  if (problems.length > 0) throw new ConfigError(problems, 'TRIB_ERR_CONFIG_VARIABLE');

  // An alias of no anchor, or a merge key of no map: yaml throws at toJS, with neither place nor path.
  const aliasProblems = mergeProblems(doc);
  if (aliasProblems.length > 0) throw new ConfigError(aliasProblems.map(({ node, path, message }) => at(node.range?.[0] ?? 0, jsonPath(path), message)), 'TRIB_ERR_CONFIG_YAML');
  let js: unknown;
  try {
    js = doc.toJS();
  } catch (error) {
    // yaml's limit on aliases (an alias bomb, "billion laughs": each level repeats the one above nine times) throws with neither place nor path.
    if (!(error instanceof ReferenceError && /alias count/i.test(error.message))) throw error;
    const bomb = aliasBomb(doc);
    throw new ConfigError([at(bomb?.node.range?.[0] ?? 0, jsonPath(bomb?.path ?? []), `this alias *${bomb?.node.source ?? ''} repeats a block that itself repeats others: together they expand past what a pipeline file may (yaml's limit against alias bombs, "billion laughs"); write the values out, or share blocks one level deep`)], 'TRIB_ERR_CONFIG_YAML');
  }
  const data: unknown = unshared(js ?? {});
  /** Whether `dead_letter` is the default sink a `--set` changes (the file names none): seedDefaultDeadLetter. */
  const seeded = seedDefaultDeadLetter(data, options.sets ?? [], file);
  /** Sections and entries a `--set` created (the file lacks them), by JSONPath: said with their problems. */
  const createdBySet = new Map<string, string>();
  /** The value each `--set` gave, by its JSONPath (the last one where two set one path): no place in the file holds it. */
  const setValues = new Map<string, string>();
  for (const assignment of options.sets ?? []) {
    try {
      for (const created of applySet(data, assignment)) if (!createdBySet.has(created)) createdBySet.set(created, assignment);
      setValues.set(jsonPath(pathSegments(assignmentParts(assignment)!.path)), assignment);
    } catch (error) {
      // A config error (exit 2, no stack trace), for run and backtest as for validate; said by the file and
      // the --set argument (`FILE: --set 'stages[9].gap=1m': ...`), as it has no place in the file.
      throw new TributaryError('TRIB_ERR_CONFIG_SET', `${file}: ${(error as Error).message}`, { cause: error });
    }
  }

  const locate = (segments: readonly PathSegment[], message: string, place: FieldPlace = 'value'): LocatedProblem => {
    const path = jsonPath(segments);
    // A value filled in from the environment is said at its `${VAR}`, which shows the reference, not the value
    // (one a --set replaced is said as the --set's: notingWhatSetGave).
    // Found by node: a value in a block an entry uses by alias or merge key (`<<: *kafka`) is the anchor's.
    const found = place === 'value' && message !== '' && ![...setValues.keys()].some((set) => within(path, set)) ? nodeAt(doc, segments) : undefined;
    const variables = found === undefined ? undefined : filledIn.get(found.node);
    const shared = found?.anchor === undefined ? '' : `, in the block anchored &${found.anchor} that this entry uses`;
    const filled = variables === undefined || variables.some((name) => message.includes(`\${${name}`)) ? '' : ` (a value filled in from ${variables.map((name) => `\${${name}}`).join(' and ')}${shared})`;
    return at(offsetOf(doc, segments, place), path, message === '' ? message : message + filled);
  };
  /**
   * A problem as the file's problems are said: one at what a `--set` gave or created by the file and that
   * --set (notingWhatSetGave); `missingField` as originNote takes it. Each is noted as it is found.
   */
  const noted = (problem: ConfigProblem, missingField = false): ConfigProblem => notingWhatSetGave(problem, setValues, createdBySet, seeded, missingField);
  /** `locate` as problemFromAjv takes it: its problems noted (a missing required field's as such). */
  const locateNoted: AjvProblemLocator = (segments, message, place, missingField) => noted(locate(segments, message, place), missingField);
  /**
   * The locator of the fields below `base` (an entry's, or the document's: `[]`), fields named as
   * `mapping.time_format` or `options["a.b"]` (pathSegments): what the runner's checks locate their problems
   * by (inEntry, which names them by fieldText), so they are said where loadPipeline says them.
   */
  const fieldsBelow =
    (base: readonly PathSegment[]) =>
    (field: string, place: FieldPlace = 'value'): FieldPosition => {
      const segments = [...base, ...(field === '' ? [] : pathSegments(field))];
      const { line, column, path } = locate(segments, '', place);
      return { path, line, column, ...setOrigin(path, setValues, createdBySet, seeded) };
    };

  const baseDir = dirname(resolve(file));
  const document = data as PipelineDocument;
  // Plugin modules first: their schemas take part in validation.
  let pluginModuleFailed = false;
  if (Array.isArray(document.plugins)) {
    for (const [index, specifier] of document.plugins.entries()) {
      if (typeof specifier !== 'string') continue;
      try {
        await options.registry.load(specifier, baseDir);
      } catch (cause) {
        pluginModuleFailed = true;
        // Its own code (LOAD, DUPLICATE) kept, with the position: each cause has one code wherever it is said.
        const code = cause instanceof TributaryError ? cause.code : 'TRIB_ERR_PLUGIN_LOAD';
        problems.push(noted({ ...locate(['plugins', index], (cause as Error).message), code }));
      }
    }
  }

  const validator = new SchemaValidator();
  // An absent `settings` still gets its defaults filled in by validation.
  if (typeof data === 'object' && data !== null && !('settings' in data)) (data as Record<string, unknown>).settings = {};
  for (const error of validator.validateDocument(data)) {
    const problem = problemFromAjv(error, [], locateNoted, undefined, retypedAt);
    if (problem) problems.push(problem);
  }

  /** Entries whose config failed their plugin's schema (or the document's): the checks across entries take them as their plugin only. */
  const invalid = new Set<ResolvedEntry>();
  /** A section's entries in order, a hole (undefined) where its plugin is unknown (or the entry is no entry): said already. */
  const resolveEntries = (key: string, kind: PluginKind): (ResolvedEntry | undefined)[] => {
    const list = (data as Record<string, unknown>)[key];
    const entries = key === 'dead_letter' ? (list === undefined ? [] : [list]) : Array.isArray(list) ? list : [];
    const resolved: (ResolvedEntry | undefined)[] = entries.map(() => undefined);
    entries.forEach((entry: unknown, index: number) => {
      const base: PathSegment[] = key === 'dead_letter' ? [key] : [key, index];
      if (typeof entry !== 'object' || entry === null || typeof (entry as PipelineEntry).type !== 'string') return; // skeleton reported it
      const type = (entry as PipelineEntry).type;
      const plugin = options.registry.get(kind, type);
      if (!plugin) {
        const known = options.registry.names(kind);
        const otherKind = (['source', 'operator', 'sink'] as const).find((other) => other !== kind && options.registry.get(other, type));
        const a = (what: PluginKind): string => (what === 'operator' ? `an ${what}` : `a ${what}`);
        const near = otherKind ? undefined : nearestName(type, known);
        const unknown = otherKind ? `'${type}' is ${a(otherKind)} plugin, not ${a(kind)} plugin` : `unknown ${kind} plugin '${type}'${near ? ` (did you mean '${near}'?)` : ''}`;
        // A name like no known one is most often a plugin of the user's own that the pipeline does not load
        // (or one from a module that failed to load, said at \`plugins\`).
        const ownPlugin = otherKind || near ? '' : pluginModuleFailed ? ' (a module in `plugins:` failed to load: see above)' : `; a plugin of your own: name its module in the pipeline's \`plugins:\` list`;
        problems.push(noted({ ...locate([...base, 'type'], `${unknown}; known ${kind} plugins: ${known.join(', ') || '(none)'}${ownPlugin}`), code: 'TRIB_ERR_PLUGIN_UNKNOWN' }));
        return;
      }
      if (kind === 'operator') options.adjustStage?.(entry as PipelineEntry, plugin);
      // Before validation fills the plugin's default in, which looks the same.
      if (kind === 'sink' && Object.hasOwn(entry, 'kinds')) sinkKindsGiven.add(entry as PipelineEntry);
      let errors: ErrorObject[];
      try {
        errors = validator.validateEntry(plugin, entry);
      } catch (error) {
        if (!(error instanceof TributaryError)) throw error;
        problems.push(noted({ ...locate([...base, 'type'], `${error.message} (plugin from ${options.registry.originOf(plugin)})`), code: error.code }));
        return;
      }
      for (const error of errors) {
        const problem = problemFromAjv(error, base, locateNoted, plugin, retypedAt);
        if (problem) problems.push(problem);
      }
      // An entry a --set gave or created has no place in the file: no position (its locator says where it came from).
      const locateField = fieldsBelow(base);
      const { line, column, path, origin } = locateField('');
      resolved[index] = { plugin, entry: entry as PipelineEntry, path, ...(origin === undefined ? { line, column } : {}), locate: locateField };
      // The document's skeleton checks an entry's runtime fields (`label`, `kinds`): a problem there counts too.
      if (errors.length > 0 || problems.some((problem) => problem.path !== undefined && within(problem.path, path))) invalid.add(resolved[index]);
    });
    return resolved;
  };

  const sources = resolveEntries('sources', 'source');
  const stages = resolveEntries('stages', 'operator');
  const sinks = resolveEntries('sinks', 'sink');
  const deadLetters = resolveEntries('dead_letter', 'sink');
  const warnings: ConfigProblem[] = [];
  // The checks across entries run whatever else is wrong, on what can be judged (crossEntryChecks): a user
  // with a schema mistake and a clash of labels sees both at once, not the second only once the first is mended.
  // A section that is not a list (or is missing) has no entries to judge the pipeline by.
  const sectionsWhole = !problems.some((problem) => problem.path !== undefined && ['$', '$.sources', '$.stages', '$.sinks', '$.dead_letter'].includes(problem.path));
  const named = (data as Record<string, unknown>).dead_letter !== undefined;
  const name = typeof document.name === 'string' ? document.name : pipelineNameOf(file);
  // The runtime's own where the file names none: checked against the sources' input files as well. (Without
  // a `file` plugin that is an error of its own, thrown where the file has no other.)
  let defaultDeadLetter: ResolvedEntry | undefined;
  if (!named) {
    const made = defaultDeadLetterSink(options.registry, validator, name);
    // No place in the file (it names no dead_letter): said by the file alone, among its other problems.
    if ('problem' in made) problems.push(noted({ file, ...made.problem }));
    else defaultDeadLetter = made;
  }
  // Commit intervals from sections that validated only: a plugin's check compares its timeouts with them.
  const commits = problems.some((problem) => problem.path !== undefined && (within(problem.path, '$.checkpoint') || within(problem.path, '$.settings'))) ? undefined : declaredCommits(document);
  const inFile: ProblemLocator = { entry: (_resolved, base, below, message, place) => locate([...base, ...below], message, place), section: locate };
  problems.push(
    ...crossEntryProblems({ sources, stages, sinks, deadLetter: deadLetters[0], defaultDeadLetter, invalid, sectionsWhole, scaleOut: document.scale_out !== undefined, commits, baseDir }, inFile, warnings).map((problem) => noted(problem)),
  );
  const deadLetter = deadLetters[0] ?? defaultDeadLetter;
  if (problems.length > 0 || deadLetter === undefined) throw new ConfigError(sortProblems(problems));
  document.name ??= name;
  return { file, baseDir, document, sources: present(sources), stages: present(stages), sinks: present(sinks), deadLetter, locate: fieldsBelow([]), warnings: sortProblems(warnings.map((warning) => noted(warning))) };
}

/** Whether JSONPath `path` is `section` or lies inside it. */
const within = (path: string, section: string): boolean => path === section || path.startsWith(`${section}.`) || path.startsWith(`${section}[`);

/** The entries of a section that are there (a pipeline without problems has no holes). */
const present = (entries: readonly (ResolvedEntry | undefined)[]): ResolvedEntry[] => entries.filter((resolved): resolved is ResolvedEntry => resolved !== undefined);

/**
 * The runtime's dead-letter sink of a pipeline whose file names none. One file per pipeline, locked like any
 * output: pipelines started in one working directory (one process or several) keep each one's bad input, and
 * a second process running the same pipeline there is refused, not left to replace the first one's records.
 */
function defaultDeadLetterSink(registry: PluginRegistry, validator: SchemaValidator, pipeline: string): ResolvedEntry | { problem: Omit<ConfigProblem, 'file'> } {
  const plugin = registry.get('sink', 'file');
  const named = '; name a dead_letter sink';
  if (!plugin) return { problem: { message: `this pipeline names no dead_letter sink, and no \`file\` sink plugin is registered for the default one${named}`, code: 'TRIB_ERR_PLUGIN_UNKNOWN' } };
  const entry = defaultDeadLetterEntry(pipeline);
  // A `file` sink of an embedding program's own, whose schema the default entry does not fit: a person's to mend, as a factory's refusal is.
  const errors = validator.validateEntry(plugin, entry);
  if (errors.length > 0) {
    const why = configErrorTexts(plugin, errors).join('; ');
    const message = `the default dead-letter sink (this pipeline names no dead_letter: a \`file\` sink writing ${defaultDeadLetterFile(pipeline)}) does not fit the \`file\` sink plugin registered (from ${registry.originOf(plugin)}): ${why}${named}`;
    return { problem: { message, code: 'TRIB_ERR_PLUGIN_FACTORY' } };
  }
  const deadLetter: ResolvedEntry = { plugin, entry, path: '$.dead_letter' };
  defaultDeadLetters.add(deadLetter);
  return deadLetter;
}

/** A pipeline's name where the file gives none: its file's name. */
const pipelineNameOf = (file: string): string => file.replace(/^.*[\\/]/, '').replace(/\.ya?ml$/, '');

/** The default dead-letter file of a pipeline, in the working directory: `dead-letters-NAME.jsonl`, NAME made a file name. */
const defaultDeadLetterFile = (pipeline: string): string => `dead-letters-${pipeline.replace(/[^\w.-]+/g, '_')}.jsonl`;

const defaultDeadLetterLabel = 'dead-letter';

/** The default dead-letter sink's entry: its label names it in logs and metrics, whether or not a `--set` changed a field of it. */
const defaultDeadLetterEntry = (pipeline: string): PipelineEntry => ({ type: 'file', label: defaultDeadLetterLabel, path: resolve(defaultDeadLetterFile(pipeline)), lazy: true });

/** The runtime's own dead-letter sink where a file names none: no entry of the pipeline, so no plugin's check sees it. */
const defaultDeadLetters = new WeakSet<ResolvedEntry>();

/**
 * Sink entries whose file (or a `--set`) names their `kinds`: checked against what the pipeline makes even
 * where they equal the plugin's own list, which is otherwise taken for validation's default (see sinkRoutingProblems).
 */
const sinkKindsGiven = new WeakSet<PipelineEntry>();

/** Where a problem of the checks across entries is, in a file (loadPipeline) or by paths alone (a pipeline composed in code). */
interface ProblemLocator {
  /** In an entry (at `base` in the document): at `below` inside it, at its value or its key (`place`, by default the value). */
  entry(resolved: ResolvedEntry, base: readonly PathSegment[], below: readonly PathSegment[], message: string, place?: FieldPlace): ConfigProblem;
  /** At a section of the document (`scale_out`). */
  section(segments: readonly PathSegment[], message: string): ConfigProblem;
}

/**
 * A pipeline's entries as the checks across entries take them: in order, with a hole (undefined) where an
 * entry's plugin is unknown, and those whose config failed validation in `invalid`; a pipeline that passed
 * validation has neither. Each check runs on what it can judge (crossEntryChecks).
 */
interface PipelineEntries {
  sources: readonly (ResolvedEntry | undefined)[];
  stages: readonly (ResolvedEntry | undefined)[];
  sinks: readonly (ResolvedEntry | undefined)[];
  /** The dead-letter sink the file names, if any (undefined too where its plugin is unknown). */
  deadLetter: ResolvedEntry | undefined;
  /** The runtime's own where the file names none (a `file` sink writing dead-letters-NAME.jsonl): no entry, but a file it writes. */
  defaultDeadLetter?: ResolvedEntry;
  /** Entries whose config failed validation: known by their plugin only, not by their config. */
  invalid?: ReadonlySet<ResolvedEntry>;
  /** False where a section is not a list as the schema says (or `sources` or `sinks` is missing): the entries do not show the whole pipeline. */
  sectionsWhole?: boolean;
  scaleOut: boolean;
  /** Undefined where the sections they come from failed validation. */
  commits: PipelineOutline['commits'];
  baseDir: string;
}

/** A pipeline's entries every one of which is known and valid: what the checks of the pipeline as a whole need. */
interface WholePipeline extends PipelineEntries {
  sources: readonly ResolvedEntry[];
  stages: readonly ResolvedEntry[];
  sinks: readonly ResolvedEntry[];
}

/** The pipeline's entries where every one is known and valid (its named dead-letter sink too), else undefined. */
function wholePipeline(entries: PipelineEntries): WholePipeline | undefined {
  const invalid = entries.invalid ?? new Set<ResolvedEntry>();
  const sources = known(entries.sources, entries.sectionsWhole);
  const stages = known(entries.stages, entries.sectionsWhole);
  const sinks = known(entries.sinks, entries.sectionsWhole);
  if (!sources || !stages || !sinks || (entries.deadLetter ?? entries.defaultDeadLetter) === undefined) return undefined;
  if ([...sources, ...stages, ...sinks, ...(entries.deadLetter ? [entries.deadLetter] : [])].some((resolved) => invalid.has(resolved))) return undefined;
  return { ...entries, sources, stages, sinks };
}

/** `entries` without holes, or undefined (an entry's plugin is unknown, or a section is not a list). */
function known(entries: readonly (ResolvedEntry | undefined)[], sectionsWhole: boolean | undefined): readonly ResolvedEntry[] | undefined {
  return sectionsWhole !== false && entries.every((resolved) => resolved !== undefined) ? (entries as readonly ResolvedEntry[]) : undefined;
}

/** How often the sources commit, as the document declares it (PipelineOutline.commits; the runtime's defaults). */
function declaredCommits(document: PipelineDocument): NonNullable<PipelineOutline['commits']> {
  return document.checkpoint
    ? { intervalMs: parseDuration(document.checkpoint.interval ?? '30s'), setting: 'checkpoint.interval' }
    : { intervalMs: parseDuration(document.settings?.commit_interval ?? '1s'), setting: 'settings.commit_interval' };
}

/**
 * The checks across entries: scale-out's (it splits the leading per-user stages by source partition:
 * that needs exactly one source, and no per-user stage after a global one, whose state could not move
 * with the partitions), then, when those pass, each plugin's own (PluginSpec.checkPipeline). Its
 * warnings (EntryProblem.severity) go to `warnings`, not among the problems returned.
 */
function crossEntryProblems(entries: PipelineEntries, locate: ProblemLocator, warnings: ConfigProblem[]): ConfigProblem[] {
  try {
    return crossEntryChecks(entries, locate, warnings);
  } catch (error) {
    // A plugin's hook that returned what its spec does not allow: said at the entry it was called for, naming the plugin and the hook.
    if (!(error instanceof PluginHookError)) throw error;
    const at = entryBases(entries).find(({ resolved }) => resolved.path === error.entry);
    if (at === undefined) throw error;
    return [{ ...locate.entry(at.resolved, at.base, [], error.message), code: error.code }];
  }
}

/** Each entry of the pipeline there is (the dead-letter sink the file names among them) with its segments in the document. */
function entryBases(entries: PipelineEntries): { resolved: ResolvedEntry; base: PathSegment[] }[] {
  const bases: { resolved: ResolvedEntry; base: PathSegment[] }[] = [];
  for (const key of ['sources', 'stages', 'sinks'] as const) {
    entries[key].forEach((resolved, index) => {
      if (resolved !== undefined) bases.push({ resolved, base: [key, index] });
    });
  }
  if (entries.deadLetter) bases.push({ resolved: entries.deadLetter, base: ['dead_letter'] });
  return bases;
}

function crossEntryChecks(entries: PipelineEntries, locate: ProblemLocator, warnings: ConfigProblem[]): ConfigProblem[] {
  // Each check on what it can judge where some entries are unknown or invalid (said already), so that all of
  // a file's problems are said at once: labels, and files written over inputs, pair by pair; scale-out's
  // order by the plugins alone; what reaches the sinks once every source and stage is valid; the plugins'
  // own checks (and feature names) only on a pipeline whose every entry is, as they read the whole of it.
  const invalid = entries.invalid ?? new Set<ResolvedEntry>();
  const valid = (resolved: ResolvedEntry | undefined): ResolvedEntry | undefined => (resolved !== undefined && !invalid.has(resolved) ? resolved : undefined);
  const problems: ConfigProblem[] = labelProblems(entries, locate);
  const sources = known(entries.sources, entries.sectionsWhole);
  const stages = known(entries.stages, entries.sectionsWhole);
  let scaleOutProblems = 0;
  if (entries.scaleOut && sources && stages) {
    const before = problems.length;
    // Several sources are tasks' inputs together, partition p of each in task p (co-partitioned topics, as Kafka
    // Streams joins them): every one must be partitioned; the plugin checks the rest (one group, one topic each).
    sources.forEach((source, index) => {
      if (source.plugin.partitioned) return;
      const why = sources.length === 1 ? '' : ': with several sources, partition p of each goes to one task p, so every source must be one (co-partitioned topics)';
      problems.push(locate.entry(source, ['sources', index], [], `scale_out needs a partitioned source (kafka); '${source.entry.type}' is not${why}`));
    });
    let global: ResolvedEntry | undefined;
    stages.forEach((stage, index) => {
      const scope = stage.plugin.state ?? 'global';
      if (scope === 'global') global ??= stage;
      else if (scope === 'keyed' && global) {
        problems.push(
          locate.entry(stage, ['stages', index], ['type'], `'${stage.entry.type}' keeps per-user state but follows '${global.entry.type}' (global state); with scale_out, per-user stages must come before global ones`),
        );
      }
    });
    scaleOutProblems = problems.length - before;
  }
  // The dead-letter sink is handed every dead letter: one whose plugin takes other kinds alone would drop them.
  const deadLetter = entries.deadLetter;
  if (deadLetter?.plugin.kind === 'sink' && deadLetter.plugin.kinds && !deadLetter.plugin.kinds.includes('dead_letter')) {
    const { name, kinds } = deadLetter.plugin;
    problems.push(locate.entry(deadLetter, ['dead_letter'], ['type'], `sink '${name}' does not take kind 'dead_letter' (it takes: ${kinds.join(', ')}), so it cannot be the dead-letter sink`));
  }
  // Routing fields mean nothing there: it is handed every dead letter and nothing else. Honoured, `kinds`
  // could only drop dead letters, and `outputs` would mix other records into them; said, not ignored.
  // (A `kinds` equal to its plugin's is validation's default: the loader fills it in.)
  if (valid(deadLetter)?.plugin.kind === 'sink') {
    const { kinds, outputs } = deadLetter!.entry as { kinds?: unknown; outputs?: unknown };
    const declared = deadLetter!.plugin.kinds;
    if (kinds !== undefined && !(declared && Array.isArray(kinds) && kinds.length === declared.length && kinds.every((kind, i) => kind === declared[i]))) {
      problems.push(locate.entry(deadLetter!, ['dead_letter'], ['kinds'], "the dead-letter sink is handed every dead letter and nothing else: 'kinds' does not apply to it; remove it", 'key'));
    }
    if (outputs !== undefined) {
      problems.push(
        locate.entry(deadLetter!, ['dead_letter'], ['outputs'], "the dead-letter sink is handed dead letters only: 'outputs' does not apply to it; remove it, and add a sink with these outputs to keep their records (it may write to the same file)", 'key'),
      );
    }
  }
  const validSources = known(entries.sources.map(valid), entries.sectionsWhole);
  const validStages = known(entries.stages.map(valid), entries.sectionsWhole);
  if (validSources && validStages) problems.push(...sinkRoutingProblems(validSources, validStages, entries.sinks.map(valid), locate));
  problems.push(...overwrittenInputProblems({ ...entries, sources: entries.sources.map(valid), sinks: entries.sinks.map(valid), deadLetter: valid(deadLetter) }, locate));
  const whole = wholePipeline(entries);
  if (whole === undefined || scaleOutProblems > 0) return problems;
  const outlineOf = (kind: string) => (resolved: ResolvedEntry, index: number): OutlineEntry => {
    const emits = resolved.plugin.kind === 'sink' ? undefined : emittedWith(resolved.plugin, pluginConfig(resolved.entry) as never)?.kinds;
    return { type: resolved.entry.type, label: entryLabel(kind, resolved.entry, index), config: pluginConfig(resolved.entry), ...(emits === undefined ? {} : { emits }) };
  };
  const outline: PipelineOutline = {
    sources: whole.sources.map(outlineOf('source')),
    stages: whole.stages.map(outlineOf('stage')),
    sinks: whole.sinks.map(outlineOf('sink')),
    ...(whole.deadLetter ? { deadLetter: outlineOf('dead-letter')(whole.deadLetter, 0) } : {}),
    ...(whole.commits ? { commits: whole.commits } : {}),
    ...(whole.scaleOut ? { scaleOut: true } : {}),
    baseDir: whole.baseDir,
  };
  const located: { resolved: ResolvedEntry; self: OutlineEntry; base: PathSegment[]; stage?: number }[] = [
    ...whole.sources.map((resolved, index) => ({ resolved, self: outline.sources[index]!, base: ['sources', index] })),
    ...whole.stages.map((resolved, index) => ({ resolved, self: outline.stages[index]!, base: ['stages', index], stage: index })),
    ...whole.sinks.map((resolved, index) => ({ resolved, self: outline.sinks[index]!, base: ['sinks', index] })),
    ...(whole.deadLetter ? [{ resolved: whole.deadLetter, self: outline.deadLetter!, base: ['dead_letter'] }] : []),
  ];
  const appended = whole.stages.map((resolved) => featureNamesOf(resolved.plugin, pluginConfig(resolved.entry) as never, { entry: resolved.path }));
  for (const { resolved, self, base, stage } of located) {
    // The mapping sources share (`tributary:mapping`), whichever plugin reads it (file, stdin, kafka, a user's): its warnings, said here for all.
    const mapping = self.config.mapping;
    const declared = (resolved.plugin.config.properties as Record<string, { $ref?: unknown }> | undefined)?.mapping;
    if (resolved.plugin.kind === 'source' && declared?.$ref === 'tributary:mapping' && typeof mapping === 'object' && mapping !== null) {
      for (const { field, message } of mappingWarnings(mapping as MappingConfig)) warnings.push(locate.entry(resolved, base, ['mapping', ...fieldSegments(field)], message));
    }
    for (const problem of pipelineProblemsOf(resolved.plugin, pluginConfig(resolved.entry) as never, outline, self, { entry: resolved.path })) {
      (problem.severity === 'warning' ? warnings : problems).push(locate.entry(resolved, base, fieldSegments(problem.field), problem.message));
    }
    const clash = stage === undefined ? undefined : featureNameClash(appended, outline.stages, stage, resolved.plugin.featureNamesField);
    if (clash !== undefined) problems.push(locate.entry(resolved, base, fieldSegments(resolved.plugin.featureNamesField), clash));
    const selectorField = resolved.plugin.featureSelectorField;
    if (stage !== undefined && selectorField !== undefined) {
      // A path: a custom model's list is in its `model` options (`model.features`).
      const selected = fieldSegments(selectorField).reduce<unknown>((value, key) => (typeof value === 'object' && value !== null ? (value as Record<string | number, unknown>)[key] : undefined), self.config);
      // A model (defineModel's: role 'model') reads the features it selects, and its own create decides what a missing one does.
      const reader = resolved.plugin.role === 'model' ? 'model' : 'transform';
      for (const { index, message } of unmatchedSelections(appended.slice(0, stage), selected, reader)) {
        warnings.push(locate.entry(resolved, base, [...fieldSegments(selectorField), index], message));
      }
    }
  }
  return problems;
}

/**
 * Sinks writing a file a source of the pipeline reads (PluginSpec.outputFiles, inputFiles): replacing
 * it as the pipeline starts would wipe the input before it is read, and appending to it would feed the
 * output back in. Found by sameFile (by name through links to the folders, by device and inode where
 * both are regular files). Said at the sink's field that names the file; for the default dead-letter
 * file, which no field of the file names, at the source's.
 */
function overwrittenInputProblems(entries: PipelineEntries, locate: ProblemLocator): ConfigProblem[] {
  const read = entries.sources.flatMap((source, index) =>
    source === undefined ? [] : inputFilesOf(source.plugin, pluginConfig(source.entry) as never, { entry: source.path }).map((file) => ({ source, index, file, resolved: resolve(entries.baseDir, file.path) })),
  );
  if (read.length === 0) return [];
  const problems: ConfigProblem[] = [];
  const fallback = entries.defaultDeadLetter;
  for (const output of fallback ? outputFilesOf(fallback.plugin, pluginConfig(fallback.entry) as never, { entry: fallback.path }) : []) {
    const written = resolve(entries.baseDir, output.path);
    for (const input of read) {
      if (!sameFile(written, input.resolved)) continue;
      const message = `${written} is the default dead-letter file (this pipeline names no dead_letter), which the run replaces at its first reject (appends to, resumed from a checkpoint): this source would read the dead letters back as input; add a dead_letter sink writing another file, or read a copy of it`;
      problems.push(locate.entry(input.source, ['sources', input.index], fieldSegments(input.file.field), message));
    }
  }
  const writers = entryBases({ ...entries, sources: [], stages: [] });
  for (const { resolved, base } of writers) {
    for (const output of outputFilesOf(resolved.plugin, pluginConfig(resolved.entry) as never, { entry: resolved.path })) {
      const written = resolve(entries.baseDir, output.path);
      for (const input of read) {
        if (!sameFile(written, input.resolved)) continue;
        const how = `${input.file.field ?? 'reading'}: ${input.file.path}`;
        const message = `${written} is the input of sources[${input.index}] (${how}): writing it would replace that file before it is read (or, appending, read this sink's records back as input); ${output.field === undefined ? 'give this sink another file' : `name another file in this sink's ${output.field}`}`;
        problems.push(locate.entry(resolved, base, fieldSegments(output.field), message));
      }
    }
  }
  return problems;
}

/**
 * Why the feature names stage `at` appends (PluginSpec.featureNames; `appended`, by stage) cannot be:
 * names a stage before it appends too (two hash-features with the default prefix, a block twice, a
 * plugin's block naming `s_events`), each such stage named with its names, or one of them twice. Every block appends to one vector per
 * event, where a name twice would be ambiguous to whatever reads features by name; FeatureBlock
 * refuses both (the first in every event, which is dead-lettered; the second as it is made).
 * `field`: the plugin's featureNamesField. Undefined when the names are fine, or not declared.
 */
function featureNameClash(appended: readonly (readonly string[] | undefined)[], stages: readonly OutlineEntry[], at: number, field: string | undefined): string | undefined {
  const names = appended[at];
  if (names === undefined) return undefined;
  const shown = (clash: readonly string[]): string => (clash.length > 3 ? `${clash.slice(0, 3).join(', ')} and ${clash.length - 3} more` : clash.join(', '));
  const own = new Set(names);
  // Every earlier block it clashes with, each with its names: a fix that clears the first alone would be refused again.
  const clashes: string[] = [];
  for (let other = 0; other < at; other++) {
    const clash = appended[other]?.filter((name) => own.has(name));
    if (clash !== undefined && clash.length > 0) clashes.push(`(${shown(clash)}) ${clashes.length === 0 ? 'are also those' : 'those'} of stage ${stages[other]!.label}`);
  }
  if (clashes.length > 0) {
    const remedy = field !== undefined ? `set a different ${field}` : 'remove one of them';
    const listed = clashes.length > 1 ? `${clashes.slice(0, -1).join(', ')} and ${clashes.at(-1)!}` : clashes[0]!;
    return `its feature names ${listed}: every block appends to one vector per event, so every event would be dead-lettered; ${remedy}`;
  }
  if (own.size < names.length) {
    const seen = new Set<string>();
    const twice = new Set<string>();
    for (const name of names) (seen.has(name) ? twice : seen).add(name);
    return `its feature names have ${shown([...twice])} twice: whatever reads features by name (a transform, a model) would find one of them only`;
  }
  return undefined;
}

/**
 * The names and `*` patterns of a stage's list (PluginSpec.featureSelectorField) that no feature a stage
 * before it appends matches, each with its index, and what the run does then, by `reader`: a transform
 * selects nothing for it, which the run logs once (the built-ins' FeatureSelector onMissing, as the guide
 * tells a plugin's to); a model's create is handed the names the events have and decides (one that throws
 * has every event it predicts dead-lettered). Nothing where a stage before it does not declare its
 * names (`before`: their featureNames, undefined where not declared): its features are not known.
 */
function unmatchedSelections(before: readonly (readonly string[] | undefined)[], selected: unknown, reader: 'transform' | 'model'): { index: number; message: string }[] {
  if (!Array.isArray(selected) || before.some((names) => names === undefined)) return [];
  const names = before.flatMap((block) => block ?? []);
  const found: { index: number; message: string }[] = [];
  selected.forEach((pattern: unknown, index) => {
    if (typeof pattern !== 'string') return;
    let missing = false;
    new FeatureSelector([pattern], () => (missing = true)).indices(names);
    if (!missing) return;
    const what = pattern.includes('*') ? `no feature a stage before it appends matches '${pattern}'` : `no stage before it appends a feature '${pattern}'${nearestHint(pattern, names)}`;
    const appended = names.length === 0 ? 'no stage before it appends features' : `they append ${names.length > 6 ? `${names.slice(0, 6).join(', ')} and ${names.length - 6} more` : names.join(', ')}`;
    const consequence =
      reader === 'model'
        ? 'so the model reads nothing for it (its create is handed the features the events have: if it throws on a missing one, the run dead-letters every event it predicts)'
        : 'so it selects nothing (the run logs it once)';
    found.push({ index, message: `${what}, ${consequence}; ${appended}` });
  });
  return found;
}

/**
 * The `stage` under which the runtime times routing and writing to the sinks in
 * `tributary_stage_latency_seconds`, after the stages' own: no stage may be labelled so.
 */
export const sinksLatencyStage = 'sinks';

/**
 * Labels two entries share. A label keys a stage's state and a source's position in checkpoints (a
 * restart restored one stage's state into both), and names an instance's metrics and logs, so each
 * entry needs its own, across sources, stages, sinks and the dead-letter sink. Default labels
 * (`<kind>-<type>-<index>`) never collide with one another, so a collision always involves a `label`
 * the file sets: it is said there, naming the entry that has the label too (by default, if it does).
 */
function labelProblems(entries: PipelineEntries, locate: ProblemLocator): ConfigProblem[] {
  interface Labelled {
    resolved?: ResolvedEntry;
    base: PathSegment[];
    /** How a message names it: `$.stages[0] (line 7)`, or the runtime's default dead-letter sink. */
    name: string;
    explicit: boolean;
  }
  const byLabel = new Map<string, Labelled[]>();
  const hold = (label: string, holder: Labelled): void => void byLabel.set(label, [...(byLabel.get(label) ?? []), holder]);
  const add = (kind: string, resolved: ResolvedEntry, base: PathSegment[], index: number): void => {
    // An entry a --set gave or created: where it came from, not a line of the file.
    const origin = resolved.locate?.('').origin;
    const name = `${resolved.path}${origin !== undefined ? ` (${origin})` : resolved.line ? ` (line ${resolved.line})` : ''}`;
    hold(entryLabel(kind, resolved.entry, index), { resolved, base, name, explicit: resolved.entry.label !== undefined });
  };
  const kinds = { sources: 'source', stages: 'stage', sinks: 'sink', dead_letter: 'dead-letter' } as const;
  for (const { resolved, base } of entryBases(entries)) {
    // An entry whose label is no text (said by validation) labels nothing.
    const label = resolved.entry.label as unknown;
    if (label !== undefined && typeof label !== 'string') continue;
    add(kinds[base[0] as keyof typeof kinds], resolved, base, typeof base[1] === 'number' ? base[1] : 0);
  }
  if (entries.defaultDeadLetter) {
    // The runtime's default dead-letter sink, which the file does not name, has a label too.
    hold(defaultDeadLetterLabel, { base: ['dead_letter'], name: 'the default dead-letter sink (the pipeline names no dead_letter)', explicit: false });
  }
  const problems: ConfigProblem[] = [];
  // Reserved rather than the runtime's slot renamed: dashboards and alerts read stage="sinks" as documented.
  entries.stages.forEach((resolved, index) => {
    if (resolved?.entry.label !== sinksLatencyStage) return;
    problems.push(
      locate.entry(
        resolved,
        ['stages', index],
        ['label'],
        `label '${sinksLatencyStage}' is the runtime's own: tributary_stage_latency_seconds{stage="${sinksLatencyStage}"} is the time of routing and writing to the sinks, which this stage's would be mixed with; give the stage another label`,
      ),
    );
  });
  for (const [label, holders] of byLabel) {
    if (holders.length < 2) continue;
    // The one that has it without asking (a default label), else the first: the others are said at their `label`.
    const first = holders.find((holder) => !holder.explicit) ?? holders[0]!;
    const whose = first.explicit ? 'the label of' : 'the default label of';
    for (const holder of holders) {
      if (holder === first || !holder.resolved) continue;
      problems.push(
        locate.entry(
          holder.resolved,
          holder.base,
          ['label'],
          `label '${label}' is also ${whose} ${first.name}: labels key each stage's state and each source's position in checkpoints and name each instance's metrics and logs, so every entry needs its own`,
        ),
      );
    }
  }
  return problems;
}

/**
 * A sink's `kinds` and `outputs` entries that name what no source or stage of the pipeline produces: the
 * sink would get nothing from them, silently (`model_metric` for `model_metrics`). What a pipeline produces
 * is known only where its plugins declare it (PluginSpec.emits): kinds where every stage does (sources
 * produce events), side outputs where every source and stage does. Each entry counts for what its own
 * config makes (PluginSpec.emitsOnlyWith: a model's `model_metrics` only with `report: true`); a name an
 * entry would make with other config is said with the entry and the condition. Where a plugin does not
 * declare (a user's plugin), nothing is said: it may produce anything, and a note on every such pipeline
 * would be noise that `validate` could not tell from a finding. A `kinds` the entry does not give is
 * validation's default (its sink plugin's own list), not the user's choice: a backtest's report sink takes
 * `model_metrics` in a pipeline with no model, and is handed nothing, rightly. One the file gives is checked,
 * even where it equals that list (a sink of predictions beside no model: `kinds: [prediction]`).
 */
function sinkRoutingProblems(sources: readonly ResolvedEntry[], stages: readonly ResolvedEntry[], sinks: readonly (ResolvedEntry | undefined)[], locate: ProblemLocator): ConfigProblem[] {
  const kinds = new Set<string>(['event']);
  const outputs = new Set<string>();
  /** Names an entry declares but is not configured to make: `the intent-model at stages[4] ... only with report: true`, by name. */
  const withheldKinds = new Map<string, string[]>();
  const withheldOutputs = new Map<string, string[]>();
  let kindsKnown = true;
  let outputsKnown = true;
  const add = (resolved: ResolvedEntry): boolean => {
    const made = resolved.plugin.kind === 'sink' ? undefined : emittedWith(resolved.plugin, pluginConfig(resolved.entry) as never, { entry: resolved.path });
    if (made === undefined) return false;
    for (const kind of made.kinds) kinds.add(kind);
    for (const output of made.sideOutputs) outputs.add(output);
    return true;
  };
  for (const source of sources) if (!add(source)) outputsKnown = false;
  for (const stage of stages) if (!add(stage)) kindsKnown = outputsKnown = false;
  // Once every entry is in: a name one entry is not configured to make may be made by another.
  const withhold = (into: Map<string, string[]>, made: ReadonlySet<string>, resolved: ResolvedEntry, conditions: { readonly [name: string]: OutputCondition<never> } | undefined): void => {
    for (const [name, { condition }] of Object.entries(conditions ?? {})) {
      if (!made.has(name)) into.set(name, [...(into.get(name) ?? []), `the ${resolved.entry.type} at ${resolved.path.replace(/^\$\./, '')} emits it only with ${condition}`]);
    }
  };
  for (const resolved of [...sources, ...stages]) {
    if (resolved.plugin.kind === 'sink') continue;
    withhold(withheldKinds, kinds, resolved, resolved.plugin.emitsOnlyWith);
    withhold(withheldOutputs, outputs, resolved, resolved.plugin.sideOutputsOnlyWith);
  }
  const problems: ConfigProblem[] = [];
  sinks.forEach((sink, index) => {
    if (sink === undefined) return;
    const entry = sink.entry as { kinds?: unknown; outputs?: unknown };
    const declared = sink.plugin.kinds;
    const isDefault =
      !sinkKindsGiven.has(sink.entry) && declared !== undefined && Array.isArray(entry.kinds) && entry.kinds.length === declared.length && entry.kinds.every((kind, i) => kind === declared[i]);
    if (kindsKnown && Array.isArray(entry.kinds) && !isDefault) {
      entry.kinds.forEach((kind: unknown, at) => {
        if (typeof kind !== 'string' || kinds.has(kind)) return;
        const message =
          kind === 'dead_letter'
            ? "kind 'dead_letter' never reaches this sink: dead letters go to the pipeline's dead-letter sink alone (`dead_letter:`, by default a file)"
            : notMade(`emits kind '${kind}'`, kind, kinds, withheldKinds, `so this sink would get none; they emit: ${[...kinds].join(', ')}`);
        problems.push(locate.entry(sink, ['sinks', index], ['kinds', at], message));
      });
    }
    if (outputsKnown && Array.isArray(entry.outputs)) {
      entry.outputs.forEach((output: unknown, at) => {
        if (typeof output !== 'string' || outputs.has(output)) return;
        const produced = outputs.size > 0 ? `the side outputs they have: ${[...outputs].join(', ')}` : 'they have none';
        const message = notMade(`has side output '${output}'`, output, outputs, withheldOutputs, `so this sink would get none from it; ${produced}`);
        problems.push(locate.entry(sink, ['sinks', index], ['outputs', at], message));
      });
    }
  });
  return problems;
}

/** ` (did you mean 'NAME'?)` for the known name nearest a mistyped one, or nothing. */
function nearestHint(name: string, known: readonly string[]): string {
  const near = nearestName(name, known);
  return near ? ` (did you mean '${near}'?)` : '';
}

/**
 * Why a sink's kind or side output `name` reaches it from nothing: the entries that would make it with
 * other config, with their conditions, else the nearest name (see routingHint); `what` says what was
 * asked (`emits kind 'x'`), `after` what follows from it.
 */
function notMade(what: string, name: string, made: ReadonlySet<string>, withheld: ReadonlyMap<string, readonly string[]>, after: string): string {
  const conditions = withheld.get(name);
  return conditions
    ? `no source or stage of this pipeline ${what} as configured: ${conditions.join('; ')}; ${after}`
    : `no source or stage of this pipeline ${what}${routingHint(name, made, withheld)}, ${after}`;
}

/**
 * nearestHint for a sink's kind or side output: of the names made, and those an entry would make with
 * other config (said with its condition: the name alone would be refused next).
 */
function routingHint(name: string, made: ReadonlySet<string>, withheld: ReadonlyMap<string, readonly string[]>): string {
  const near = nearestName(name, [...made, ...withheld.keys()]);
  const conditions = near === undefined ? undefined : withheld.get(near);
  return conditions ? ` (did you mean '${near}'? ${conditions.join('; ')})` : nearestHint(name, [...made]);
}

/** Compiled entry schemas, kept across the pipelines a process runs (one compile per plugin). */
const runnerValidator = new SchemaValidator();

/**
 * The checks loadPipeline makes of its entries, made again on a pipeline as PipelineRunner is handed
 * it: one composed in code with the public API never went through loadPipeline, and one that did may
 * have changed since (a backtest replaces its source). Each entry against its plugin's schema (filling
 * its defaults in, which factories and checkPipeline rely on), then the checks across entries. A
 * problem is located by its entry's `path` (and, for an entry read from a file, its position there).
 * The checks' warnings (EntryProblem.severity) go to `warnings`, when given.
 */
export function loadedPipelineProblems(loaded: LoadedPipeline, warnings: ConfigProblem[] = []): ConfigProblem[] {
  const file = loaded.file;
  const locate: ProblemLocator = {
    entry: (resolved, _base, below, message, place) => inEntry(file, resolved, below, message, place),
    section: (segments, message) => ({ file, ...problemPlace(loaded.locate?.(fieldText(segments)), message), path: jsonPath(segments) }),
  };
  const problems: ConfigProblem[] = [];
  // As loadPipeline does: the checks across entries run on what can be judged, beside the entries' schema problems.
  const invalid = new Set<ResolvedEntry>();
  for (const resolved of [...loaded.sources, ...loaded.stages, ...loaded.sinks, loaded.deadLetter]) {
    const found = entrySchemaProblems(file, resolved);
    if (found.length > 0) invalid.add(resolved);
    problems.push(...found);
  }
  const fallback = defaultDeadLetters.has(loaded.deadLetter);
  const deadLetter = fallback ? undefined : loaded.deadLetter;
  const defaultDeadLetter = fallback ? loaded.deadLetter : undefined;
  const entries = { sources: loaded.sources, stages: loaded.stages, sinks: loaded.sinks, deadLetter, defaultDeadLetter, invalid, scaleOut: loaded.document.scale_out !== undefined, commits: declaredCommits(loaded.document), baseDir: loaded.baseDir };
  problems.push(...crossEntryProblems(entries, locate, warnings));
  return sortProblems(problems);
}

/**
 * An entry checked against its plugin's schema (filling its defaults in), as the runner checks each
 * (loadedPipelineProblems); a command that replaced an entry's plugin checks it so first (a backtest's
 * source, replayed from a file): each problem said at the field of the entry in `file`, where it has one.
 */
export function entrySchemaProblems(file: string, resolved: ResolvedEntry): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const error of runnerValidator.validateEntry(resolved.plugin, resolved.entry)) {
    const problem = problemFromAjv(error, [], (below, message, place, missingField) => inEntry(file, resolved, below, message, place, missingField), resolved.plugin);
    if (problem) problems.push(problem);
  }
  return problems;
}

/**
 * A problem at `below` in an entry, at its value or its key (`place`): by its `path`, and for one read
 * from a file at its position there, found by the entry's locator, which is loadPipeline's (fieldsBelow).
 * One composed in code has none: said by the file alone (positionOf).
 */
function inEntry(file: string, resolved: ResolvedEntry, below: readonly PathSegment[], message: string, place?: FieldPlace, missingField = false): ConfigProblem {
  const at = resolved.locate?.(fieldText(below), place);
  return { file, ...problemPlace(at, message, resolved, missingField), path: resolved.path + jsonPath(below).slice(1) };
}

/**
 * A problem at `field` of an entry (`mode`, `mapping.time_zone`, a PluginConfigError's; none: the entry as
 * a whole), located as the checks of a loaded pipeline locate theirs (inEntry): what the runner says of a
 * factory's refusal.
 */
export function entryFieldProblem(file: string, resolved: ResolvedEntry, field: string | undefined, message: string): ConfigProblem {
  return inEntry(file, resolved, fieldSegments(field), message);
}

/** A plugin's field name (`prefix`, `mapping.time_zone`, `path[1]`) as path segments; none: the entry itself. */
const fieldSegments = (field: string | undefined): PathSegment[] => (field === undefined || field === '' ? [] : pathSegments(field));

/** Entry fields the runtime reads; everything else is the plugin's config (what its factory gets). */
const runtimeFields = new Set(runtimeEntryFields);

/** The label an entry's instance gets (its context's `label`, its metrics' `stage`, its key in checkpoints): its own, else `<kind>-<type>-<index>`. */
export function entryLabel(kind: string, entry: PipelineEntry, index: number): string {
  return entry.label ?? `${kind}-${entry.type}-${index}`;
}

/**
 * The record kinds a sink entry is handed from the main stream: its `kinds`, else all its plugin takes
 * (PluginSpec.kinds; validation fills that default in, and rejects an entry's kind the plugin does not
 * take); undefined: every kind.
 */
export function sinkKinds(resolved: ResolvedEntry): readonly string[] | undefined {
  return (resolved.entry.kinds as readonly string[] | undefined) ?? resolved.plugin.kinds;
}

export function pluginConfig(entry: PipelineEntry): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry)) if (!runtimeFields.has(key)) config[key] = value;
  return config;
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/**
 * One plugin config's schema errors as `<path>: <message>` (`$.max_items: must be >= 1, got 0`), worded as a
 * pipeline file's problems are, for a config checked outside any file (`runOperator` in a plugin's tests).
 */
export function configErrorTexts(plugin: AnyPlugin, errors: readonly ErrorObject[]): string[] {
  const texts: string[] = [];
  for (const error of errors) {
    // No file and no place in one (a default entry, a config in code): a path and a message.
    const problem = problemFromAjv(error, [], (segments, message) => ({ file: '', path: jsonPath(segments), message }), plugin);
    if (problem) texts.push(`${problem.path}: ${problem.message}`);
  }
  return texts;
}

/** Where problemFromAjv's problem is said; `missingField`: it is a required field missing there (as originNote takes it). */
type AjvProblemLocator = (segments: readonly PathSegment[], message: string, place?: FieldPlace, missingField?: boolean) => ConfigProblem;

/**
 * Turns one ajv error into a located problem; drops errors that only restate another (if/then, anyOf summaries).
 * `plugin`: the entry's, when the error is about one of its entries. `retyped`: the `${VAR}` a value at a
 * path was, where it was one unquoted reference read as another type than text (interpolate).
 */
function problemFromAjv(
  error: ErrorObject,
  base: readonly PathSegment[],
  locate: AjvProblemLocator,
  plugin?: AnyPlugin,
  retyped?: (segments: readonly PathSegment[]) => string | undefined,
): ConfigProblem | undefined {
  const segments = [...base, ...pointerSegments(error.instancePath)];
  switch (error.keyword) {
    case 'if':
      return undefined;
    case 'required': {
      // At the key of the map that lacks it (`csv:`), not at its first field: the field is missing from all of it.
      return locate(segments, `missing required field '${(error.params as { missingProperty: string }).missingProperty}'`, 'key', true);
    }
    case 'additionalProperties': {
      const field = (error.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((error.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {});
      const near = nearestHint(field, known);
      // A field written a level too high (`delimiter` beside `csv`, `time_format` beside `mapping`) is said where it goes.
      const home = near === '' ? nestedFieldHome(error.parentSchema as JsonSchema | undefined, field) : undefined;
      return locate([...segments, field], `unknown field '${field}'${home === undefined ? near : ` (did you mean '${home}'?)`}`, 'key');
    }
    case 'const':
      return locate(segments, `must be ${JSON.stringify((error.params as { allowedValue: unknown }).allowedValue)}`);
    case 'oneOf':
    case 'anyOf': {
      // The forms' own errors were dropped (collapseAlternatives): the schema's description says what is expected.
      const description = (error.parentSchema as { description?: string } | undefined)?.description;
      const expected = description ? `expected ${description.charAt(0).toLowerCase()}${description.slice(1)}` : (error.message ?? error.keyword);
      // A value (a duration written out) is quoted; a whole entry or section, at its own line, is not.
      if (typeof error.data === 'object' && error.data !== null) return locate(segments, expected);
      return locate(segments, `${expected.replace(/\.$/, '')}, got ${valueText(error.data, segments)}`);
    }
    case 'format':
      if ((error.params as { format: string }).format === 'time-format') return locate(segments, timeFormatProblem(String(error.data)) ?? 'not a time format');
      if ((error.params as { format: string }).format === 'time-zone') return locate(segments, timeZoneProblem(String(error.data)) ?? 'not a time zone');
      // ajv says only 'must match format "date-time"': say what one looks like (a date alone, or no offset, is what is written most).
      if ((error.params as { format: string }).format === 'date-time') return locate(segments, `expected a date and time with its UTC offset (RFC 3339), such as 2020-01-01T00:00:00Z, got ${valueText(error.data, segments)}`);
      if ((error.params as { format: string }).format === 'field-path') return locate(segments, fieldPathProblem(String(error.data)) ?? 'not a field name');
      return locate(segments, `${error.message ?? error.keyword}, got ${valueText(error.data, segments)}`);
    case 'pattern': {
      // A regular expression tells a user little: where the field's schema says what it takes, say that.
      const { description, type } = (error.parentSchema ?? {}) as { description?: string; type?: unknown };
      // One word or an object (`mapping: canonical`): the description says what each does; the error, which the value is not.
      const word = /^\^(\w+)\$$/.exec(String(error.schema))?.[1];
      if (word !== undefined && Array.isArray(type) && type.includes('object')) return locate(segments, `expected \`${word}\` or an object, got ${valueText(error.data, segments)}`);
      if (description === undefined) return locate(segments, `${error.message ?? error.keyword}, got ${valueText(error.data, segments)}`);
      return locate(segments, `expected ${description.charAt(0).toLowerCase()}${description.slice(1).replace(/\.$/, '')}, got ${valueText(error.data, segments)}`);
    }
    case 'minDuration':
      return locate(segments, `must be at least ${String(error.schema)}, got ${valueText(error.data, segments)}`);
    case 'maxDuration':
      return locate(segments, `must be at most ${String(error.schema)}, got ${valueText(error.data, segments)}`);
    case 'type': {
      // `password: ${KAFKA_PASSWORD}` holding digits is a number, as YAML reads `password: 1234`: the cure is quotes.
      const reference = retyped?.(segments);
      const expectsText = String((error.params as { type: unknown }).type).split(',').includes('string');
      if (reference !== undefined && expectsText) {
        return locate(segments, `${typeMessage(error)}, got ${valueText(error.data, segments)}: an unquoted ${reference} is read as YAML reads its value (digits a number, true or false a boolean, empty or null no value); quote it for text: "${reference}"`);
      }
      return locate(segments, `${typeMessage(error)}, got ${valueText(error.data, segments)}`);
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      // The value as read: where it came from `${VAR}` or --set, the file at this line does not show it.
      return locate(segments, `${error.message ?? error.keyword}, got ${valueText(error.data, segments)}`);
    case 'uniqueItems': {
      // At the later of the two (ajv names the first pair it finds), naming the earlier.
      const { i, j } = error.params as { i: number; j: number };
      const list = segments.at(-1);
      const earlier = typeof list === 'string' ? `${list}[${Math.min(i, j)}]` : `item ${Math.min(i, j)}`;
      return locate([...segments, Math.max(i, j)], `the same as ${earlier}, got ${valueText((error.data as unknown[])[Math.max(i, j)], segments)}`);
    }
    case 'enum': {
      // A kind the sink's own plugin says it does not take: say whose rule it is, not only the list.
      if (plugin?.kind === 'sink' && plugin.kinds && error.schemaPath === sinkKindsSchemaPath) {
        return locate(segments, `sink '${plugin.name}' does not take kind '${String(error.data)}'; it takes: ${plugin.kinds.join(', ')}`);
      }
      // The value given, and the allowed one a typo most likely meant ('logistc' for 'logistic').
      const allowed = (error.params as { allowedValues: unknown[] }).allowedValues;
      const names = allowed.filter((value): value is string => typeof value === 'string');
      const hint = typeof error.data === 'string' ? nearestHint(error.data, names) : '';
      return locate(segments, `must be one of: ${allowed.map((v) => JSON.stringify(v)).join(', ')}, got ${valueText(error.data, segments)}${hint}`);
    }
    default:
      return locate(segments, error.message ?? error.keyword);
  }
}

/**
 * A `type` error's message: ajv's for one type (`must be integer`), as every other config error words it; for
 * a field that takes several (`type: [string, array]`), each in words from the field's schema (`must be a field
 * name or a list of field names`), where ajv joins the keywords (`must be string,array`).
 */
function typeMessage(error: ErrorObject): string {
  const types = error.schema;
  if (!Array.isArray(types) || types.length < 2) return error.message ?? error.keyword;
  const schema = (error.parentSchema ?? {}) as JsonSchema;
  const words = types.map((type) => typeWords(String(type), schema));
  return `must be ${words.slice(0, -1).join(', ')} or ${words.at(-1)!}`;
}

/** A JSON Schema type in words, one value of it (`a field name`), or `many` of them (`field names`), told apart by the schema's format, pattern and items. */
function typeWords(type: string, schema: JsonSchema, many = false): string {
  switch (type) {
    case 'string': {
      if (schema.format === 'field-path') return many ? 'field names' : 'a field name';
      // One word (`mapping: canonical`): the word itself, as the pattern error says it.
      const word = typeof schema.pattern === 'string' ? /^\^(\w+)\$$/.exec(schema.pattern)?.[1] : undefined;
      if (word !== undefined && !many) return `\`${word}\``;
      return many ? 'strings' : 'a string';
    }
    case 'array': {
      const items = schema.items;
      const itemType = typeof items === 'object' && items !== null && !Array.isArray(items) ? (items as JsonSchema).type : undefined;
      const list = many ? 'lists' : 'a list';
      return typeof itemType === 'string' ? `${list} of ${typeWords(itemType, items as JsonSchema, true)}` : list;
    }
    case 'object':
      return many ? 'objects' : 'an object';
    case 'integer':
      return many ? 'whole numbers' : 'a whole number';
    case 'number':
      return many ? 'numbers' : 'a number';
    case 'boolean':
      return many ? 'booleans (true or false)' : 'a boolean (true or false)';
    case 'null':
      return 'null';
    default:
      return type;
  }
}

const SECRET_NOT_SHOWN = '(not shown: a secret)';

/**
 * A value as JSON, cut to 60 characters: what a config problem quotes (a whole section would drown it).
 * Not a secret's (a password that YAML read as a number, a `${VAR}` holding one), nor anything under a
 * `security` section (a SASL section written as one string): the problem goes to logs and terminals.
 */
function valueText(value: unknown, segments: readonly PathSegment[]): string {
  return isHiddenValue(value, segments) ? SECRET_NOT_SHOWN : quotedValue(value);
}

/** Whether a config problem must not quote the value at `segments` (valueText): a secret's, or anything under a `security` section. */
function isHiddenValue(value: unknown, segments: readonly PathSegment[]): boolean {
  const field = segments.at(-1);
  return segments.includes('security') || isSecret(typeof field === 'string' ? field : '', value);
}

/** The known name a mistyped one most likely meant: one edit away for names of up to 3 characters, two up to 6, three beyond. */
function nearestName(name: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const best = closest(name, [...known]);
  return distance(name, best) <= (name.length <= 3 ? 1 : name.length <= 6 ? 2 : 3) ? best : undefined;
}

function pointerSegments(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((raw) => raw.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment));
}

export function jsonPath(segments: readonly PathSegment[]): string {
  let path = '$';
  for (const segment of segments) {
    path += typeof segment === 'number' ? `[${segment}]` : /^[A-Za-z_$][\w$-]*$/.test(segment) ? `.${segment}` : `[${JSON.stringify(segment)}]`;
  }
  return path;
}

/**
 * `value` with no map or list in two places. YAML gives a block used by an alias (`security: *kafka`, and
 * the fields `<<: *kafka` brings) as one object wherever it is used, so a `--set` on one entry, or a
 * default validation filled in, would have changed every entry that shares it.
 */
function unshared(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unshared);
  if (typeof value !== 'object' || value === null || ![Object.prototype, null].includes(Object.getPrototypeOf(value))) return value;
  const copy: Record<string, unknown> = {};
  // setOwnField: a key __proto__ (YAML gives one as data) would otherwise set the copy's prototype.
  for (const [key, field] of Object.entries(value)) setOwnField(copy, key, unshared(field));
  return copy;
}

/**
 * The pair of `map` whose key is `segment` (by text: a key YAML reads as a number, `2: cart` in
 * event_types, is the string "2" once loaded), else the one a merge key (`<<: *anchor`, or a list of
 * them) brings, as YAML merges them: the map's own pairs first, then each merged map in order.
 */
function pairOf(doc: Document, map: YAMLMap, segment: PathSegment): Pair | undefined {
  const own = map.items.find((item) => !isMergeKey(item) && String(isScalar(item.key) ? item.key.value : item.key) === String(segment));
  if (own) return own;
  for (const merge of map.items.filter(isMergeKey)) {
    const sources = isSeq(merge.value) ? merge.value.items : [merge.value];
    for (const source of sources) {
      const merged = isAlias(source) ? source.resolve(doc) : source;
      const found = isMap(merged) ? pairOf(doc, merged, segment) : undefined;
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * The aliases that name no anchor (`*kafka` before `&kafka`, or a misspelt name) and the merge keys whose
 * value is no map, an alias of one or a list of them (`<<: 5`), each with its node and path.
 */
function mergeProblems(doc: Document): { node: Node; path: PathSegment[]; message: string }[] {
  const found: { node: Node; path: PathSegment[]; message: string }[] = [];
  visit(doc, {
    Alias(_key, node, ancestors) {
      if (node.resolve(doc) === undefined) {
        found.push({ node, path: segmentsOf(ancestors, node), message: `no anchor &${node.source} before this alias *${node.source}: an alias names an anchor written above it in the file` });
      }
    },
    Pair(_key, pair, ancestors) {
      if (!isMergeKey(pair)) return;
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const source of sources) {
        const merged = isAlias(source) ? source.resolve(doc) : source;
        if (merged === undefined || isMap(merged)) continue;
        found.push({ node: (source ?? pair.key) as Node, path: segmentsOf(ancestors, pair), message: 'a merge key (`<<`) takes a map, an alias of one (`<<: *name`), or a list of them (`<<: [*a, *b]`)' });
      }
    },
  });
  return found;
}

/**
 * The alias to name where yaml's limit on aliases refused the file (toJS says neither where nor which): the first,
 * in the file's order, of a block that holds aliases itself (an alias bomb's second level and on), else the first.
 */
function aliasBomb(doc: Document): { node: Alias; path: PathSegment[] } | undefined {
  let first: { node: Alias; path: PathSegment[] } | undefined;
  let nested: { node: Alias; path: PathSegment[] } | undefined;
  visit(doc, {
    Alias(_key, node, ancestors) {
      first ??= { node, path: segmentsOf(ancestors, node) };
      const block = node.resolve(doc);
      let holdsAliases = false;
      if (block !== undefined) {
        visit(block, {
          Alias() {
            holdsAliases = true;
            return visit.BREAK;
          },
        });
      }
      if (!holdsAliases) return undefined;
      nested = { node, path: segmentsOf(ancestors, node) };
      return visit.BREAK;
    },
  });
  return nested ?? first;
}

/** Whether `pair` is a merge key: parsed with `merge: true`, its key's value is the symbol `<<`. */
function isMergeKey(pair: Pair): boolean {
  if (!isScalar(pair.key)) return false;
  const key: unknown = pair.key.value;
  return key === '<<' || (typeof key === 'symbol' && key.description === '<<');
}

/**
 * The node of the value at `segments`, undefined where the file does not hold it (a default, a --set's),
 * following aliases and merge keys (pairOf) into the anchored block as YAML does; `anchor`: the last
 * anchor the path went through (`kafka` for `<<: *kafka`), undefined for a path of the entry's own text.
 */
function nodeAt(doc: Document, segments: readonly PathSegment[]): { node: Node; anchor: string | undefined } | undefined {
  let node: unknown = doc.contents;
  let anchor: string | undefined;
  const resolved = (value: unknown): unknown => {
    if (!isAlias(value)) return value;
    anchor = value.source;
    return value.resolve(doc);
  };
  for (const segment of segments) {
    node = resolved(node);
    if (isMap(node)) {
      const own = node.items.some((item) => !isMergeKey(item) && String(isScalar(item.key) ? item.key.value : item.key) === String(segment));
      const pair = pairOf(doc, node, segment);
      if (!pair) return undefined;
      // A pair a merge key brought: the anchor of the merged block (the first merged map that holds it, as pairOf finds it).
      if (!own) anchor = mergedAnchorOf(doc, node, segment) ?? anchor;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number' && node.items[segment] !== undefined) {
      node = node.items[segment];
    } else {
      return undefined;
    }
  }
  node = resolved(node);
  return node === null || node === undefined ? undefined : { node: node as Node, anchor };
}

/** The anchor of the block whose merge into `map` brings its `segment` (pairOf's order); undefined where none does by alias. */
function mergedAnchorOf(doc: Document, map: YAMLMap, segment: PathSegment): string | undefined {
  for (const merge of map.items.filter(isMergeKey)) {
    const sources = isSeq(merge.value) ? merge.value.items : [merge.value];
    for (const source of sources) {
      const merged = isAlias(source) ? source.resolve(doc) : source;
      if (isMap(merged) && pairOf(doc, merged, segment)) return isAlias(source) ? source.source : undefined;
    }
  }
  return undefined;
}

/**
 * Offset of the value at `segments`, or of its key (FieldPlace; a list's item has none: its value).
 * Falls back to the nearest ancestor present in the YAML (a block map or list: its key), since `--set`
 * and defaults can add paths the file lacks. A path through an alias (`security: *kafka`) or a merge key
 * (`<<: *kafka`) goes on in the anchored block: a field inside it is said where the anchor's text holds
 * it (the text to mend), the path naming the entry that uses it; the alias as a whole, at the alias.
 */
function offsetOf(doc: Document, segments: readonly PathSegment[], place: FieldPlace = 'value'): number {
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  // The key the node found last is the value of, if it is one's: where a field it lacks is said, for a block map.
  let keyOffset: number | undefined;
  const last = segments.length - 1;
  const step = (segment: PathSegment, index: number): boolean => {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = pairOf(doc, node, segment);
      if (!pair) return false;
      const target = place === 'key' && index === last ? pair.key : pair.value;
      node = target;
      keyOffset = (pair.key as Node | null)?.range?.[0];
      offset = (target as Node | null)?.range?.[0] ?? (pair.key as Node | null)?.range?.[0] ?? offset;
      // A block map or list as the value found wrong starts on the next line, at its first inner key,
      // which a problem of the whole would seem to be about: said at its key (`label_buffer:`) instead.
      if (index === last && (isMap(target) || isSeq(target)) && !target.flow) offset = (pair.key as Node | null)?.range?.[0] ?? offset;
      return true;
    }
    if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined) return false;
      node = item;
      keyOffset = undefined;
      offset = (item as Node).range?.[0] ?? offset;
      return true;
    }
    return false;
  };
  for (const [index, segment] of segments.entries()) {
    if (step(segment, index)) continue;
    // A field the file does not hold (a default) is said at the nearest enclosing one it does; a block
    // map or list there starts at its first inner key, which it would seem to be about: at its key instead.
    return (isMap(node) || isSeq(node)) && !node.flow && keyOffset !== undefined ? keyOffset : offset;
  }
  return offset;
}

/**
 * A variable's value: the environment's (empty if set empty, as in a shell), else for `HOSTNAME` the
 * machine's name. A shell sets HOSTNAME without exporting it and systemd sets none, so a service never
 * had it: `${HOSTNAME:-local}` (an instance's own transactional_id or checkpoint folder) gave every
 * instance the same value, and the instances fenced each other; containers (Docker, Kubernetes) set it
 * to the same name os.hostname() gives.
 */
function variable(env: Record<string, string | undefined>, name: string): string | undefined {
  // Own variables only: `${constructor}` is not Object.prototype's member (process.env inherits them).
  const value = ownValue(env, name) as string | undefined;
  if (name === 'HOSTNAME' && (value === undefined || value === '')) return hostname() || undefined;
  return value;
}

/** A `${` in a string that starts no `${NAME}` or `${NAME:-default}` (a space, `${A-x}`, `${A:x}`, no `}`): its offset in the string. */
class MalformedReference extends Error {
  constructor(readonly offset: number) {
    super('malformed reference');
  }
}

const variableName = /[A-Za-z_][A-Za-z0-9_]*/y;

/**
 * `text` with its references replaced, as a shell does: `${NAME}` is NAME's value (empty where it is set
 * empty), `${NAME:-default}` the default where NAME is unset or empty; a default may hold references,
 * read only where it is used. `$${` is a literal `${`. `missing`: the names used that have no value;
 * `whole`: the text is one reference and nothing else. Throws MalformedReference.
 */
function substitute(text: string, lookup: (name: string) => string | undefined): { value: string; missing: string[]; whole: boolean } {
  let wholeEnd = -1;
  const scan = (start: number, inDefault: boolean): { value: string; missing: string[]; end: number } => {
    let value = '';
    const missing: string[] = [];
    let i = start;
    while (i < text.length) {
      if (inDefault && text[i] === '}') return { value, missing, end: i };
      if (text.startsWith('$${', i)) {
        value += '${';
        i += 3;
        continue;
      }
      if (!text.startsWith('${', i)) {
        value += text[i];
        i++;
        continue;
      }
      variableName.lastIndex = i + 2;
      const name = variableName.exec(text)?.[0];
      if (name === undefined) throw new MalformedReference(i);
      const after = i + 2 + name.length;
      const found = lookup(name);
      if (text[after] === '}') {
        if (found === undefined) missing.push(name);
        else value += found;
        if (i === 0) wholeEnd = after + 1;
        i = after + 1;
      } else if (text.startsWith(':-', after)) {
        const fallback = scan(after + 2, true);
        if (fallback.end >= text.length) throw new MalformedReference(i); // no closing brace
        if (found !== undefined && found !== '') value += found;
        else {
          value += fallback.value;
          missing.push(...fallback.missing);
        }
        if (i === 0) wholeEnd = fallback.end + 1;
        i = fallback.end + 1;
      } else {
        throw new MalformedReference(i);
      }
    }
    return { value, missing, end: i };
  };
  const { value, missing } = scan(0, false);
  return { value, missing, whole: wholeEnd === text.length };
}

/** The YAML core schema's tags of plain scalars besides strings: null, bool, int and float, each with its pattern. */
const coreScalarTags = new Schema({ schema: 'core' }).tags.filter((tag): tag is ScalarTag & { test: RegExp } => 'test' in tag && tag.test instanceof RegExp);

/**
 * A plain scalar's text typed as YAML types it (core schema): `8080` a number, `true` a boolean, `null`
 * or nothing null; anything else the text as it is. Never parsed as YAML: a variable's value holding
 * `#`, quotes, `&`, `*`, `!` or `|` is kept whole.
 */
function typedAsPlainScalar(text: string): unknown {
  const tag = coreScalarTags.find((candidate) => candidate.test.test(text));
  if (!tag) return text;
  const typed = tag.resolve(text, () => undefined, {});
  return isScalar(typed) ? typed.value : typed;
}

/** `${VAR}` and `${VAR:-default}` in every string scalar (see substitute); `$${` is a literal `${`. */
function interpolate(
  doc: Document,
  env: Record<string, string | undefined>,
  report: (node: Scalar, path: PathSegment[], message: string) => void,
  retyped: Map<Node, string>,
  filledIn: Map<Node, readonly string[]>,
): void {
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const original = node.value;
      let result: ReturnType<typeof substitute>;
      const names: string[] = [];
      try {
        result = substitute(original, (name) => {
          if (!names.includes(name)) names.push(name);
          return variable(env, name);
        });
      } catch (error) {
        if (!(error instanceof MalformedReference)) throw error;
        const segments = segmentsOf(ancestors, node);
        // The file's own text, cut at the reference's end; not a secret field's (a literal password may hold `${`).
        const close = original.indexOf('}', error.offset);
        const shown = valueText(original.slice(error.offset, close < 0 ? undefined : close + 1), segments);
        report(node, segments, `malformed variable reference ${shown}: write \${NAME} or \${NAME:-default} (NAME: letters, digits and _), or $\${ for a literal \${`);
        return;
      }
      for (const name of new Set(result.missing)) report(node, segmentsOf(ancestors, node), `environment variable ${name} is not set and has no default (write \${${name}:-default})`);
      if (result.missing.length > 0) return;
      // An unquoted scalar that was one whole reference takes the type of its value: `port: ${PORT:-8080}` is a number.
      node.value = result.whole && node.type === Scalar.PLAIN ? typedAsPlainScalar(result.value) : result.value;
      if (typeof node.value !== 'string') retyped.set(node, original.trim());
      if (names.length > 0) filledIn.set(node, names);
    },
  });
}

/**
 * The key a YAML map gives twice, at the parser's DUPLICATE_KEY error offset: its path and where its
 * first occurrence is, found in the text parsed again with duplicates allowed (the error names neither).
 */
function duplicateKeyAt(text: string, offset: number): { key: string; path: PathSegment[]; firstAt: number } | undefined {
  let found: { key: string; path: PathSegment[]; firstAt: number } | undefined;
  visit(parseDocument(text, { uniqueKeys: false }), {
    Pair(_key, pair, ancestors) {
      if (!isScalar(pair.key) || pair.key.range?.[0] !== offset) return undefined;
      const map = ancestors[ancestors.length - 1];
      const twin = isMap(map) ? map.items.find((other) => isScalar(other.key) && other.key.value === (pair.key as Scalar).value) : undefined;
      found = { key: String(pair.key.value), path: segmentsOf(ancestors, pair), firstAt: (twin?.key as Scalar | undefined)?.range?.[0] ?? offset };
      return visit.BREAK;
    },
  });
  return found;
}

/** The JSON path segments of `node`, from the ancestors `visit` passes (pairs give keys, sequences indices). */
function segmentsOf(ancestors: readonly unknown[], node: unknown): PathSegment[] {
  const segments: PathSegment[] = [];
  const chain = [...ancestors, node];
  chain.forEach((item, i) => {
    // A merge key's value is the symbol `<<` (parsed with `merge: true`).
    if (isPair(item) && isScalar(item.key)) segments.push(isMergeKey(item) ? '<<' : String(item.key.value));
    // A sequence last in the chain is the node itself (a tagged list), no index into it.
    else if (isSeq(item) && i + 1 < chain.length) segments.push(item.items.indexOf(chain[i + 1] as never));
  });
  return segments;
}

/**
 * `sources[0].users` or `sources.0.users` as segments (indices as numbers); an empty segment stays ''. A key
 * with a dot (or any other key) is written as the JSONPath in messages writes it, quoted in brackets:
 * `options["fetch.min.bytes"]` (see fieldText), so a path given as text names the key it was made from.
 */
function pathSegments(path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  let at = 0;
  for (;;) {
    // One part: a name up to a dot or a bracket, then its brackets (`[0]`, `["a.b"]`).
    let name = '';
    while (at < path.length && path[at] !== '.' && bracketAt(path, at) === undefined) name += path[at++];
    const brackets: PathSegment[] = [];
    for (let bracket = bracketAt(path, at); bracket !== undefined; bracket = bracketAt(path, at)) {
      brackets.push(bracket.segment);
      at = bracket.end;
    }
    if (name !== '' || brackets.length === 0) segments.push(/^\d+$/.test(name) ? Number(name) : name);
    segments.push(...brackets);
    if (at >= path.length) return segments;
    if (path[at] === '.') {
      at++;
      if (at === path.length) return [...segments, ''];
    }
  }
}

/** The bracket at `at` in a path (`[2]`, an index; `["a.b"]`, a key as JSON writes it) and where it ends; undefined where none starts. */
function bracketAt(path: string, at: number): { segment: PathSegment; end: number } | undefined {
  if (path[at] !== '[') return undefined;
  const index = /\[(\d+)\]/y;
  index.lastIndex = at;
  const number = index.exec(path);
  if (number) return { segment: Number(number[1]), end: index.lastIndex };
  const key = /\[("(?:[^"\\]|\\.)*")\]/y;
  key.lastIndex = at;
  const quoted = key.exec(path);
  if (!quoted) return undefined;
  try {
    return { segment: JSON.parse(quoted[1]!) as string, end: key.lastIndex };
  } catch {
    return undefined;
  }
}

/**
 * Segments as a field's path below an entry or the document (`mapping.time_zone`, `options["a.b"]`, `path[1]`):
 * read back by pathSegments as the same segments. What a plugin names a field by (EntryProblem.field,
 * PluginConfigError) where a key may hold a dot: `fieldText(['options', name])`.
 */
export function fieldText(segments: readonly (string | number)[]): string {
  return jsonPath(segments).replace(/^\$\.?/, '');
}

/**
 * `--set dead_letter.FIELD=...` where the file names no `dead_letter` changes the dead-letter sink the
 * pipeline has: the default one (a lazy `file` sink writing `dead-letters-NAME.jsonl`), so the section is
 * created as that entry first. Not where a `--set` names the section's `type` or the section whole: that
 * declares another sink, which the default's fields would not fit.
 */
function seedDefaultDeadLetter(data: unknown, sets: readonly string[], file: string): boolean {
  if (typeof data !== 'object' || data === null || Array.isArray(data) || 'dead_letter' in data) return false;
  const paths = sets.map((assignment) => pathSegments(assignmentParts(assignment)?.path ?? ''));
  const intoSection = paths.filter((segments) => segments[0] === 'dead_letter');
  if (intoSection.length === 0 || intoSection.some((segments) => segments.length === 1 || segments[1] === 'type')) return false;
  const name = (data as { name?: unknown }).name;
  const pipeline = typeof name === 'string' ? name : pipelineNameOf(file);
  (data as Record<string, unknown>).dead_letter = defaultDeadLetterEntry(pipeline);
  return true;
}

/**
 * A problem at (or inside) what no place in the file holds is said by the file and its path alone, with where it
 * came from, not at the nearest position the file has (the document's 1:1, or the value a `--set` replaced): a
 * value a `--set` gave; a section or entry a `--set` created; the default dead-letter sink a `--set
 * dead_letter.FIELD` changed.
 */
function notingWhatSetGave(problem: ConfigProblem, setValues: ReadonlyMap<string, string>, createdBySet: ReadonlyMap<string, string>, seeded: boolean, missingField: boolean): ConfigProblem {
  const origin = problem.path === undefined ? undefined : setOrigin(problem.path, setValues, createdBySet, seeded);
  if (origin === undefined) return problem;
  const { line: _line, column: _column, ...unplaced } = problem;
  return { ...unplaced, message: `${problem.message} (${originNote(origin, missingField)})` };
}

/**
 * Where the value at JSONPath `at` came from, where no place in the file holds it (see notingWhatSetGave), as
 * FieldPosition.origin and inCreatedSection say it; undefined where the file does.
 */
function setOrigin(at: string, setValues: ReadonlyMap<string, string>, createdBySet: ReadonlyMap<string, string>, seeded: boolean): SetOrigin | undefined {
  // The innermost value set where a --set gave a section and another a field inside it.
  const set = [...setValues].filter(([path]) => within(at, path)).sort(([a], [b]) => b.length - a.length)[0];
  if (set !== undefined) return { origin: `from --set ${assignmentText(set[1])}, not from the file` };
  for (const [path, assignment] of createdBySet) {
    if (within(at, path)) return { origin: `${path} is not in the file: --set ${assignmentText(assignment)} created it`, inCreatedSection: true };
  }
  if (seeded && within(at, '$.dead_letter')) return { origin: '$.dead_letter is not in the file: the default dead-letter sink, which a --set dead_letter.FIELD changed' };
  return undefined;
}

/**
 * A `--set` as its messages quote it: `'path=value'`, or `'path=…' (value not shown: a secret)` where
 * valueText would hide the value (isHiddenValue) (these messages go to logs and terminals as schema errors do).
 */
function assignmentText(assignment: string): string {
  if (!isHiddenAssignment(assignment)) return `'${assignment}'`;
  const parts = assignmentParts(assignment);
  return parts === undefined ? SECRET_NOT_SHOWN : `'${parts.path}=…' (value not shown: a secret)`;
}

/**
 * A `--set` as a record of the run shows it (a backtest's report.html, which is passed around): as given, or
 * `path=…` where its value is a secret's, as assignmentText judges. Before, the report showed
 * `--set stages[3].api_token=...` whole.
 */
export function assignmentShown(assignment: string): string {
  if (!isHiddenAssignment(assignment)) return assignment;
  const parts = assignmentParts(assignment);
  return parts === undefined ? '… (not shown: a secret)' : `${parts.path}=… (value not shown: a secret)`;
}

/** Whether a `--set`'s value is a secret's, or under a `security` section (isHiddenValue): nothing said of it may quote it. */
function isHiddenAssignment(assignment: string): boolean {
  const parts = assignmentParts(assignment);
  const path = parts?.path ?? '';
  const raw = parts?.value ?? assignment;
  // The value as applySet reads it (a PEM key is told by its text); a value YAML cannot read is judged as text.
  let value: unknown = raw;
  try {
    value = parseDocument(raw).toJS() as unknown;
  } catch {
    // Judged as the text.
  }
  // Without `=` the text may be a path with a secret's value run into it (`...password:hunter2`).
  const segments = pathSegments(parts === undefined ? assignment : path);
  return isHiddenValue(value, segments) || isHiddenValue(raw, segments);
}

/**
 * A `--set`'s path and value, split at the first `=` outside the path's brackets (pathSegments' own:
 * `["a=b"]`, `[0]`), so a bracketed key may hold one: `options["a=b"]=1`. Undefined without such an `=`.
 */
function assignmentParts(assignment: string): { path: string; value: string } | undefined {
  for (let at = 0; at < assignment.length; ) {
    const bracket = bracketAt(assignment, at);
    if (bracket !== undefined) at = bracket.end;
    else if (assignment[at] === '=') return { path: assignment.slice(0, at).trim(), value: assignment.slice(at + 1) };
    else at++;
  }
  return undefined;
}

/**
 * Applies `a.b[0].c=value` (value read as a YAML scalar) to `data`. Returns the JSONPaths of the
 * sections and entries it created on the way (parents the file lacks), outermost first.
 */
export function applySet(data: unknown, assignment: string): string[] {
  const parts = assignmentParts(assignment);
  if (parts === undefined || parts.path === '') throw new TributaryError('TRIB_ERR_CONFIG_SET', `--set ${assignmentText(assignment)}: expected path=value`);
  const segments = pathSegments(parts.path);
  if (segments.includes('')) throw new TributaryError('TRIB_ERR_CONFIG_SET', `--set ${assignmentText(assignment)}: empty path segment`);
  // Walked into, these reach Object.prototype (`__proto__.x=1` would set x on every object of the process); no pipeline field has these names.
  const unsafe = segments.find((segment) => segment === '__proto__' || segment === 'constructor' || segment === 'prototype');
  if (unsafe !== undefined) throw new TributaryError('TRIB_ERR_CONFIG_SET', `--set ${assignmentText(assignment)}: '${unsafe}' is no field of a pipeline`);
  const value = parseDocument(parts.value).toJS() as unknown;
  let target = data as Record<string | number, unknown>;
  const created: string[] = [];
  for (const [index, segment] of segments.entries()) {
    // A list grows by one at most: an index past its end would leave holes that read as wrong entries.
    if (Array.isArray(target) && typeof segment === 'number' && segment > target.length) {
      throw new TributaryError('TRIB_ERR_CONFIG_SET', `--set ${assignmentText(assignment)}: ${jsonPath(segments.slice(0, index))} has ${target.length} entries; index ${segment} is past its end (${target.length} adds one)`);
    }
    if (index === segments.length - 1) {
      target[segment] = value;
      return created;
    }
    let next = target[segment];
    if (typeof next !== 'object' || next === null) {
      next = typeof segments[index + 1] === 'number' ? [] : {};
      target[segment] = next;
      created.push(jsonPath(segments.slice(0, index + 1)));
    }
    target = next as Record<string | number, unknown>;
  }
  return created;
}

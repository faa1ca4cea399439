/**
 * The pipeline document's JSON Schema, composed with each registered plugin's config schema.
 *
 * Validation runs in two steps so every error is precise: the document skeleton, then each entry
 * against its own plugin's compiled schema (which also fills defaults). The composed single schema
 * (`tributary schema`) expresses the same rules with if/then per plugin, for editors.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { durationPattern, parseDuration, type Duration } from '../duration.js';
import { TributaryError } from '../errors.js';
import { timeFormatProblem } from '../mapping.js';
import { timeZoneProblem } from '../time-zone.js';
import { fieldPathProblem } from '../fields.js';
import { packageRoot } from '../paths.js';
import type { AnyPlugin, JsonSchema, PluginKind } from '../plugin.js';
import type { PluginRegistry } from '../registry.js';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

export const documentSchemaPath = join(packageRoot, 'schemas', 'pipeline.schema.json');

/** Fields the runtime reads on every entry of a kind; plugins' own schemas never declare them. */
export const commonEntryFields: Record<PluginKind, Record<string, JsonSchema>> = {
  source: {
    label: { type: 'string', description: "Name of this instance in logs, metrics and dead letters, and the key of its position in checkpoints. Each entry's label is its own: one that another source, stage or sink has (its own or its default, <kind>-<type>-<index>) is a config error." },
    watermark: { $ref: 'tributary:watermark' },
  },
  operator: {
    label: {
      type: 'string',
      description:
        "Name of this instance in logs, metrics and dead letters, and the key of its state in checkpoints. Default: stage-<type>-<index>, which changes when a stage is added or removed before it: set one to keep the state across such edits. Each entry's label is its own: one that another source, stage or sink has (its own or its default) is a config error, and so is the label `sinks` (the runtime's own stage in tributary_stage_latency_seconds).",
    },
  },
  sink: {
    label: { type: 'string', description: "Name of this instance in logs, metrics and dead letters. Each entry's label is its own: one that another source, stage or sink has (its own or its default, <kind>-<type>-<index>; the default dead-letter sink's is dead-letter) is a config error." },
    kinds: {
      type: 'array',
      items: { type: 'string' },
      description:
        'Record kinds this sink takes (e.g. event, session, prediction). Default: every kind. A kind that no source or stage of the pipeline emits as configured is a config error (model_metrics from a model without report: true; where each of them declares what it emits, as the built-ins do).',
    },
    outputs: {
      type: 'array',
      items: { type: 'string' },
      description: 'Side outputs this sink takes (e.g. late). Default: none. A side output that no source or stage of the pipeline has is a config error (where each of them declares its side outputs, as the built-ins do).',
    },
  },
};

/**
 * The runtime's fields on an entry of `plugin` ({@link commonEntryFields}), as they apply to it: a sink
 * that declares the kinds it takes (PluginSpec.kinds) has a `kinds` of those alone, defaulting to all of them.
 */
export function entryFields(plugin: AnyPlugin): Record<string, JsonSchema> {
  const common = commonEntryFields[plugin.kind];
  if (plugin.kind !== 'sink' || plugin.kinds === undefined) return common;
  const takes = plugin.kinds.join(', ');
  return {
    ...common,
    kinds: {
      type: 'array',
      items: { type: 'string', enum: [...plugin.kinds] },
      default: [...plugin.kinds],
      description: `Record kinds this sink takes, of those it can take: ${takes}. Default: all of those. A kind that no source or stage of the pipeline emits as configured is a config error (model_metrics from a model without report: true; where each of them declares what it emits, as the built-ins do).`,
    },
  };
}

/** Where ajv puts the error of a `kinds` item that the sink does not take (see entryFields, problemFromAjv). */
export const sinkKindsSchemaPath = '#/properties/kinds/items/enum';

const entryKey: Record<PluginKind, 'sourceEntry' | 'stageEntry' | 'sinkEntry'> = {
  source: 'sourceEntry',
  operator: 'stageEntry',
  sink: 'sinkEntry',
};

let documentSchemaCache: JsonSchema | undefined;

export function documentSchema(): JsonSchema {
  documentSchemaCache ??= JSON.parse(readFileSync(documentSchemaPath, 'utf8')) as JsonSchema;
  return documentSchemaCache;
}

function sharedDefinitions(): Record<string, JsonSchema> {
  return documentSchema().$defs as Record<string, JsonSchema>;
}

/**
 * Where in `schema`'s objects, two levels down at most, a field named `field` belongs: `csv.delimiter` for a
 * `delimiter` written beside `csv` in a file source, `mapping.time_format`, `fields.user_id` for a `user_id`
 * written in a mapping; undefined where no nested object has it. The shared types (`tributary:mapping`) are
 * looked into as well.
 */
export function nestedFieldHome(schema: JsonSchema | undefined, field: string, depth = 2): string | undefined {
  const properties = (schema?.properties ?? {}) as Record<string, JsonSchema>;
  for (const [name, child] of Object.entries(properties)) {
    const ref = typeof child.$ref === 'string' ? /^tributary:(\w+)$/.exec(child.$ref)?.[1] : undefined;
    const resolved = ref === undefined ? child : sharedDefinitions()[ref];
    const own = (resolved?.properties ?? {}) as Record<string, JsonSchema>;
    if (Object.hasOwn(own, field)) return `${name}.${field}`;
    const deeper = depth > 1 ? nestedFieldHome(resolved, field, depth - 1) : undefined;
    if (deeper !== undefined) return `${name}.${deeper}`;
  }
  return undefined;
}

/** The schema an entry of `plugin` is validated against: its own fields plus the common ones. */
export function entrySchema(plugin: AnyPlugin): JsonSchema {
  const own = plugin.config;
  const ownProperties = (own.properties ?? {}) as Record<string, JsonSchema>;
  return {
    ...own,
    type: 'object',
    description: plugin.summary,
    properties: {
      type: { const: plugin.name, description: `The ${plugin.kind} plugin to use.` },
      ...entryFields(plugin),
      ...ownProperties,
    },
    required: ['type', ...((own.required as string[] | undefined) ?? [])],
  };
}

export function createAjv(): Ajv {
  // verbose: errors carry the value, so a format error can say what is wrong with it.
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true, verbose: true });
  addFormats(ajv);
  ajv.addFormat('time-format', { type: 'string', validate: (pattern: string) => timeFormatProblem(pattern) === undefined });
  ajv.addFormat('time-zone', { type: 'string', validate: (zone: string) => timeZoneProblem(zone) === undefined });
  ajv.addFormat('field-path', { type: 'string', validate: (name: string) => fieldPathProblem(name) === undefined });
  // `minDuration: '1s'` / `maxDuration: '24d'` beside a `tributary:duration`: the least or most duration a
  // field takes (a bound JSON Schema cannot say of `500ms`). A value that is no duration at all is the
  // duration type's error alone. A bound that is no duration is the plugin's schema mistake, thrown as
  // its schema compiles (else every value would pass it unchecked).
  for (const [keyword, within] of [
    ['minDuration', (ms: number, bound: number) => ms >= bound],
    ['maxDuration', (ms: number, bound: number) => ms <= bound],
  ] as const) {
    ajv.addKeyword({
      keyword,
      schemaType: ['string', 'number'],
      compile: (limit: Duration) => {
        let bound: number;
        try {
          bound = parseDuration(limit);
        } catch (error) {
          throw new Error(`${keyword}: ${(error as Error).message}`);
        }
        return (value: unknown) => {
          const ms = durationValue(value);
          return ms === undefined || within(ms, bound);
        };
      },
    });
  }
  for (const [name, definition] of Object.entries(sharedDefinitions())) {
    if (name.endsWith('Entry')) continue;
    ajv.addSchema({ ...definition, $id: `tributary:${name}` });
  }
  return ajv;
}

/**
 * A value's milliseconds where the duration type (`tributary:duration`) takes it: a finite number of 0 or
 * more, or a string of its pattern; undefined otherwise (`-5`, `.nan`, `-5s`), which that type's own error
 * says, once: a bound's would say the same mistake again ("must be at least 1ms, got -5").
 */
function durationValue(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  return typeof value === 'string' && durationForm.test(value) ? parseDuration(value) : undefined;
}

const durationForm = new RegExp(durationPattern);

/** Compiles once per plugin and per document skeleton; one instance serves a whole run. */
export class SchemaValidator {
  private readonly ajv = createAjv();
  // Weak: a process validating many pipelines (the runner checks each it runs) keeps no plugin alive for this.
  private readonly byPlugin = new WeakMap<AnyPlugin, ValidateFunction>();
  private skeleton: ValidateFunction | undefined;

  validateDocument(document: unknown): ErrorObject[] {
    this.skeleton ??= this.ajv.compile(withLocalRefs(documentSchema()));
    return this.skeleton(document) ? [] : collapseAlternatives(this.skeleton.errors ?? []);
  }

  validateEntry(plugin: AnyPlugin, entry: unknown): ErrorObject[] {
    let validate = this.byPlugin.get(plugin);
    if (!validate) {
      try {
        validate = this.ajv.compile(entrySchema(plugin));
        const wrongDefault = this.defaultProblem(plugin.config, '');
        if (wrongDefault) throw new Error(wrongDefault);
      } catch (cause) {
        // The plugin's own schema is wrong (a misspelt keyword is an error in strict mode): the plugin's
        // author must mend it, so say whose schema it is, not only what ajv found.
        throw new TributaryError('TRIB_ERR_PLUGIN_LOAD', `${plugin.kind} '${plugin.name}' has an invalid config schema: ${(cause as Error).message}`, { cause });
      }
      this.byPlugin.set(plugin, validate);
    }
    return validate(entry) ? [] : collapseAlternatives(validate.errors ?? []);
  }

  /**
   * A `default` its own field's schema rejects, as a sentence; undefined when every default fits. Filled in
   * for a field the pipeline does not set, such a default would fail there, blamed on the pipeline's author.
   */
  private defaultProblem(schema: JsonSchema, path: string): string | undefined {
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const [name, field] of Object.entries(properties)) {
      const at = path === '' ? name : `${path}.${name}`;
      if (field.default !== undefined) {
        const { default: value, ...rest } = field;
        const check = this.ajv.compile(rest);
        if (!check(value)) return `the default of '${at}' (${JSON.stringify(value)}) fails the field's own schema: ${check.errors?.[0]?.message ?? 'invalid'}`;
      }
      const nested = this.defaultProblem(field, at) ?? (field.items && typeof field.items === 'object' ? this.defaultProblem(field.items as JsonSchema, `${at}[]`) : undefined);
      if (nested) return nested;
    }
    return undefined;
  }
}

/**
 * A value that matches none of an `anyOf`'s (or `oneOf`'s) forms (a duration given as `30 minutes`) is
 * one error, the choice's: without this, each failed form adds its own ("must be number", "must match pattern").
 */
function collapseAlternatives(errors: readonly ErrorObject[]): ErrorObject[] {
  const alternatives = errors.filter((error) => error.keyword === 'anyOf' || error.keyword === 'oneOf');
  if (alternatives.length === 0) return [...errors];
  return errors.filter(
    (error) => alternatives.includes(error) || !alternatives.some((choice) => error.instancePath === choice.instancePath && error.schemaPath.startsWith(`${choice.schemaPath}/`)),
  );
}

/** `tributary:x` refs become `#/$defs/x`, so the schema stands alone. */
function withLocalRefs<T>(schema: T): T {
  return JSON.parse(JSON.stringify(schema).replace(/"tributary:([A-Za-z]+)"/g, '"#/$defs/$1"')) as T;
}

/** One self-contained schema: the document, with every registered plugin's entry as an if/then branch. */
export function composedSchema(registry: PluginRegistry): JsonSchema {
  const base = structuredClone(documentSchema());
  const defs = base.$defs as Record<string, JsonSchema>;
  for (const kind of ['source', 'operator', 'sink'] as const) {
    const names = registry.names(kind);
    for (const name of names) defs[`${kind}.${name}`] = entrySchema(registry.get(kind, name)!);
    defs[entryKey[kind]] = {
      type: 'object',
      required: ['type'],
      properties: { type: { enum: names, description: `One of the registered ${kind} plugins.` } },
      allOf: names.map((name) => ({
        if: { properties: { type: { const: name } }, required: ['type'] },
        then: { $ref: `#/$defs/${kind}.${name}` },
      })),
    };
  }
  return withLocalRefs(base);
}

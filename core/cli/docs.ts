/**
 * The pipeline reference, generated from the same schemas that validate pipelines: a field is
 * documented exactly as it is checked.
 */
import { Document, Scalar, visit } from 'yaml';
import { documentSchema, entryFields } from '../config/schema.js';
import type { AnyPlugin, JsonSchema, PluginKind } from '../plugin.js';
import type { PluginRegistry } from '../registry.js';
import { externalSinkText, withConditions } from './plugins.js';

function typeOf(schema: JsonSchema): string {
  if (schema.$ref) {
    const ref = String(schema.$ref);
    const entry = { '#/$defs/sourceEntry': '[source](#sources)', '#/$defs/stageEntry': '[stage](#stages-operators)', '#/$defs/sinkEntry': '[sink](#sinks)' }[ref];
    if (entry) return entry;
    const name = ref.replace(/^tributary:/, '').replace(/^#\/\$defs\//, '');
    return `[${name}](#${name})`;
  }
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  if (schema.enum) return (schema.enum as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (schema.anyOf) return (schema.anyOf as JsonSchema[]).map(typeOf).join(' \\| ');
  // A form in allOf to carry validate's message of its own (kafka's start_from): its type is that form's.
  if (Array.isArray(schema.allOf) && schema.allOf.length === 1) return typeOf(schema.allOf[0] as JsonSchema);
  if (schema.type === 'array') return `${schema.items ? typeOf(schema.items as JsonSchema) : 'any'}[]`;
  if (schema.type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    return `map of ${typeOf(schema.additionalProperties as JsonSchema)}`;
  }
  return Array.isArray(schema.type) ? schema.type.join(' \\| ') : String(schema.type ?? 'any');
}

const escape = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/**
 * The fields of an object schema, each object field followed by its own fields as `parent.child`
 * (so `csv.delimiter` and `model.hidden` are documented where users look, not only in the schema).
 * The third item is the required column: `yes`, or for a nested field required within its object,
 * ``yes, in `parent` `` (the parent itself may be optional).
 */
function fieldsOf(properties: Record<string, JsonSchema>, required: ReadonlySet<string>, nested: boolean, prefix = ''): [string, JsonSchema, string][] {
  return Object.entries(properties).flatMap(([name, field]): [string, JsonSchema, string][] => {
    const path = `${prefix}${name}`;
    const marker = !required.has(name) ? '' : prefix === '' ? 'yes' : `yes, in \`${prefix.slice(0, -1)}\``;
    const own: [string, JsonSchema, string] = [path, field, marker];
    const children = nested && field.type === 'object' ? (field.properties as Record<string, JsonSchema> | undefined) : undefined;
    if (!children) return [own];
    return [own, ...fieldsOf(children, new Set((field.required as string[] | undefined) ?? []), true, `${path}.`)];
  });
}

const counted = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** A string's length bounds, as the reference says them: `not empty`, `one character`, `at most 8 characters`. */
function lengthBound(min: unknown, max: unknown): string {
  if (min === 1 && max === 1) return 'one character';
  const least = typeof min === 'number' && min > 0 ? (min === 1 ? 'not empty' : `at least ${counted(min, 'character')}`) : '';
  const most = typeof max === 'number' ? `at most ${counted(max, 'character')}` : '';
  return [least, most].filter(Boolean).join(', ');
}

/** `nested: false` for a table whose object fields get tables of their own below it. */
function fieldTable(schema: JsonSchema, extra: Record<string, JsonSchema> = {}, nested = true): string {
  const properties = { ...extra, ...((schema.properties ?? {}) as Record<string, JsonSchema>) };
  const required = new Set((schema.required as string[] | undefined) ?? []);
  if (Object.keys(properties).length === 0) return '_No fields._\n';
  const rows = fieldsOf(properties, required, nested).map(([name, field, requiredMarker]) => {
    const bounds = [
      field.minimum !== undefined ? `>= ${String(field.minimum)}` : '',
      field.exclusiveMinimum !== undefined ? `> ${String(field.exclusiveMinimum)}` : '',
      field.minDuration !== undefined ? `at least ${String(field.minDuration)}` : '',
      field.maxDuration !== undefined ? `at most ${String(field.maxDuration)}` : '',
      field.maximum !== undefined ? `<= ${String(field.maximum)}` : '',
      field.exclusiveMaximum !== undefined ? `< ${String(field.exclusiveMaximum)}` : '',
      // Every bound the schema checks, so a value the reference allows is one validate takes (0 items is no bound).
      typeof field.minItems === 'number' && field.minItems > 0 ? `at least ${counted(field.minItems, 'item')}` : '',
      typeof field.maxItems === 'number' ? `at most ${counted(field.maxItems, 'item')}` : '',
      lengthBound(field.minLength, field.maxLength),
    ].filter(Boolean);
    const description = `${escape(String(field.description ?? ''))}${bounds.length ? ` (${bounds.join(', ')})` : ''}`;
    return `| \`${name}\` | ${typeOf(field)} | ${requiredMarker} | ${field.default !== undefined ? `\`${JSON.stringify(field.default)}\`` : ''} | ${description} |`;
  });
  return ['| field | type | required | default | description |', '|---|---|---|---|---|', ...rows].join('\n') + '\n';
}

const kindTitle: Record<PluginKind, string> = { source: 'Sources', operator: 'Stages (operators)', sink: 'Sinks' };

function pluginSection(plugin: AnyPlugin): string {
  // Operators say what their state is keyed by: it decides where they may stand in a scale_out pipeline.
  // Sinks that take some record kinds alone say which: no other reaches them.
  // Operators that make records of their own kinds, or send to side outputs, say which: what a sink may ask for.
  const emits = plugin.kind === 'operator' && plugin.emits?.length ? `, emits: ${withConditions(plugin.emits, plugin.emitsOnlyWith)}` : '';
  const sideOutputs = plugin.kind === 'operator' && plugin.sideOutputs?.length ? `, side outputs: ${withConditions(plugin.sideOutputs, plugin.sideOutputsOnlyWith)}` : '';
  const takes = plugin.kind === 'sink' && plugin.kinds ? `, takes: ${plugin.kinds.join(', ')}` : '';
  const external = plugin.kind === 'sink' && plugin.external === true ? `, ${externalSinkText}` : '';
  const scope = plugin.kind === 'operator' ? `, state: ${plugin.state ?? 'global'}${emits}${sideOutputs}` : `${takes}${external}`;
  const parts = [`### \`${plugin.name}\``, '', `_${plugin.kind}, ${plugin.status ?? 'experimental'}${scope}._ ${plugin.summary}`, ''];
  if (plugin.description) parts.push(plugin.description, '');
  parts.push(fieldTable(plugin.config, entryFields(plugin)));
  for (const example of plugin.examples ?? []) parts.push('```yaml', exampleYaml({ type: plugin.name, ...example }), '```', '');
  return parts.join('\n');
}

/**
 * An example entry as YAML, its `${VAR}` references quoted: copied unquoted, a password of digits from the
 * environment would be read as a number (the docs tell users to quote them; the examples do as they say).
 */
function exampleYaml(entry: Record<string, unknown>): string {
  const document = new Document([entry]);
  visit(document, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && node.value.includes('${')) node.type = Scalar.QUOTE_DOUBLE;
    },
  });
  return document.toString().trim();
}

export function pipelineReference(registry: PluginRegistry): string {
  const document = documentSchema();
  const defs = document.$defs as Record<string, JsonSchema>;
  const sections = document.properties as Record<string, JsonSchema>;
  const parts = [
    '# Pipeline reference',
    '',
    '<!-- Generated by `tributary docs` from schemas/pipeline.schema.json and the plugins\' config schemas. Do not edit; run `npm run docs`. -->',
    '',
    String(document.description),
    '',
    'Every string may use `${VAR}` or `${VAR:-default}` (environment variables, as a shell reads them: a variable set empty is empty, the default is taken where VAR is unset or empty, and may hold references itself; `${HOSTNAME}`, unset in a service\'s environment, is the machine\'s name). `$${` is a literal `${`; any other `${` is a config error. An unquoted value that is one whole reference takes the type its value has as a plain YAML scalar (`8080` a number, `true` a boolean, `null` or nothing null), else it is the value as given, never read as YAML (`#`, quotes, `*` kept). Quoted, it is always a string; and inside a flow collection (`{...}` or `[...]`) YAML ends a plain value at `{` or `}`, so a reference there must be quoted: a number or boolean from the environment needs block style (`events: ${N}` on its own line). `tributary validate` checks a file; `tributary schema` prints the JSON Schema for editors. A plugin\'s examples below are single entries of its list, not whole pipelines: some need a partner elsewhere in the file (an exactly-once `kafka` source an exactly-once `kafka` sink, a sink of `prediction` records a model stage), which `validate` checks across the file. The metrics a description names (`sessions_evicted_total`, `model_auc`) are served on `/metrics` (`tributary run --http-port`) with the prefix `tributary_` (`tributary_sessions_evicted_total`), labelled by `pipeline` and `stage` (docs/operations.md lists them).',
    '',
    '## Document',
    '',
    // Its `x-` keys (patternProperties), which hold shared blocks, as a row after the named fields.
    fieldTable({ ...document, properties: { ...sections, 'x-NAME': (document.patternProperties as Record<string, JsonSchema>)['^x-']! } }, {}, false),
    // The document's object-valued sections, each with its own table.
    ...['settings', 'checkpoint', 'scale_out', 'erasure'].flatMap((name) => [`### ${name}`, '', fieldTable(sections[name]!)]),
    '## Shared types',
    '',
    '### duration',
    '',
    String(defs.duration!.description),
    '',
    '### watermark',
    '',
    String(defs.watermark!.description),
    '',
    fieldTable(defs.watermark!),
    '### mapping',
    '',
    String(defs.mapping!.description),
    '',
    fieldTable(defs.mapping!, {}, false),
    '#### mapping.fields',
    '',
    fieldTable(((defs.mapping!.properties as Record<string, JsonSchema>).fields)!),
  ];
  for (const kind of ['source', 'operator', 'sink'] as const) {
    parts.push(`## ${kindTitle[kind]}`, '');
    for (const name of registry.names(kind)) parts.push(pluginSection(registry.get(kind, name)!));
  }
  return `${parts.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

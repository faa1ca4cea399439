import type { JsonSchema, OutputCondition } from '../plugin.js';
import type { PluginRegistry } from '../registry.js';

/** How `tributary plugins` and the reference say a sink declares PluginSpec.external. */
export const externalSinkText = 'external: a backtest writes its records to a file in its report folder instead (--live-sinks keeps it)';

/** Each name's condition in words (PluginSpec.emitsOnlyWith), as `tributary plugins --json` gives it. */
function conditionTexts(conditions: { readonly [name: string]: OutputCondition<never> }): Record<string, string> {
  return Object.fromEntries(Object.entries(conditions).map(([name, { condition }]) => [name, condition]));
}

/** Names with their conditions, as the listing and the reference show them: `prediction, model_metrics (only with report: true)`. */
export function withConditions(names: readonly string[], conditions: { readonly [name: string]: string | OutputCondition<never> } = {}): string {
  return names
    .map((name) => {
      const condition = Object.hasOwn(conditions, name) ? conditions[name]! : undefined;
      return condition === undefined ? name : `${name} (only with ${typeof condition === 'string' ? condition : condition.condition})`;
    })
    .join(', ');
}

function typeOf(schema: JsonSchema): string {
  if (schema.$ref) return String(schema.$ref).replace(/^tributary:/, '');
  if (schema.enum) return (schema.enum as unknown[]).map((v) => JSON.stringify(v)).join('|');
  if (schema.anyOf) return (schema.anyOf as JsonSchema[]).map(typeOf).join('|');
  // A form in allOf to carry validate's message of its own (kafka's start_from): its type is that form's.
  if (Array.isArray(schema.allOf) && schema.allOf.length === 1) return typeOf(schema.allOf[0] as JsonSchema);
  if (schema.type === 'array' && schema.items) return `${typeOf(schema.items as JsonSchema)}[]`;
  return Array.isArray(schema.type) ? schema.type.join('|') : String(schema.type ?? 'any');
}

/** `tributary plugins`: every installed plugin with its fields, as text or JSON. */
export function describePlugins(registry: PluginRegistry, json: boolean): string {
  const plugins = registry.all().map((plugin) => {
    const properties = (plugin.config.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((plugin.config.required as string[] | undefined) ?? []);
    return {
      kind: plugin.kind,
      name: plugin.name,
      status: plugin.status ?? 'experimental',
      summary: plugin.summary,
      origin: registry.originOf(plugin),
      // Sinks: the record kinds it takes (PluginSpec.kinds); absent: every kind.
      ...(plugin.kind === 'sink' && plugin.kinds ? { kinds: [...plugin.kinds] } : {}),
      // Sinks writing outside the run's files (PluginSpec.external), which a backtest replaces by a file; absent: not declared.
      ...(plugin.kind === 'sink' && plugin.external === true ? { external: true } : {}),
      // Sources and operators: the record kinds and side outputs it makes (PluginSpec.emits); absent: undeclared.
      ...(plugin.kind !== 'sink' && plugin.emits ? { emits: [...plugin.emits], sideOutputs: [...(plugin.sideOutputs ?? [])] } : {}),
      // Those it makes only under some config, with the condition (PluginSpec.emitsOnlyWith).
      ...(plugin.kind !== 'sink' && plugin.emitsOnlyWith ? { emitsOnlyWith: conditionTexts(plugin.emitsOnlyWith) } : {}),
      ...(plugin.kind !== 'sink' && plugin.sideOutputsOnlyWith ? { sideOutputsOnlyWith: conditionTexts(plugin.sideOutputsOnlyWith) } : {}),
      fields: Object.entries(properties).map(([name, schema]) => ({
        name,
        type: typeOf(schema),
        required: required.has(name),
        default: schema.default,
        description: String(schema.description ?? ''),
      })),
    };
  });
  if (json) return `${JSON.stringify(plugins, null, 2)}\n`;
  const lines: string[] = [];
  for (const plugin of plugins) {
    lines.push(`${plugin.kind} ${plugin.name} (${plugin.status}${plugin.origin === 'built-in' || plugin.origin.endsWith('plugins/index.js') ? '' : `, from ${plugin.origin}`})`);
    lines.push(`  ${plugin.summary}`);
    if (plugin.kinds) lines.push(`  takes kinds: ${plugin.kinds.join(', ')}`);
    if (plugin.external) lines.push(`  ${externalSinkText}`);
    if (plugin.emits?.length) lines.push(`  emits kinds: ${withConditions(plugin.emits, plugin.emitsOnlyWith)}`);
    if (plugin.sideOutputs?.length) lines.push(`  side outputs: ${withConditions(plugin.sideOutputs, plugin.sideOutputsOnlyWith)}`);
    for (const field of plugin.fields) {
      const flags = [field.required ? 'required' : undefined, field.default !== undefined ? `default ${JSON.stringify(field.default)}` : undefined].filter(Boolean);
      lines.push(`    ${field.name}: ${field.type}${flags.length ? ` (${flags.join(', ')})` : ''}  ${field.description}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

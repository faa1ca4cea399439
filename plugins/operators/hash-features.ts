/**
 * `hash-features`: the hashing trick for categorical fields (category, brand, item): each value adds
 * ±1 to one of `width` buckets, so an unbounded vocabulary fits a fixed, named block. The hash
 * (FNV-1a, 32 bits, seeded by the field) is fixed, so the same value lands in the same bucket in
 * every run and on every machine.
 */
import { isDeepStrictEqual } from 'node:util';
import { defineOperator, FeatureBlock, fnv1a, isInheritedName, ownValue, PluginConfigError, recordOperator, type ClickEvent } from 'tributary';
import { hashFeatureNames } from './feature-blocks.js';

export interface HashFeaturesConfig {
  fields: string[];
  width: number;
  prefix: string;
  signed: boolean;
}

const canonical = new Set(['type', 'itemId', 'category', 'userId', 'sessionId']);

export default defineOperator<HashFeaturesConfig>({
  name: 'hash-features',
  state: 'none',
  emits: [],
  status: 'beta',
  summary: 'Hashes categorical fields of each event into a fixed-width block of named features (`<prefix>_0` …).',
  description:
    'Fields are canonical event fields (`type`, `itemId`, `category`, `sessionId`, `userId`) or attributes as ' +
    '`attrs.<name>` (e.g. `attrs.brand`); a value that is not a string is hashed by its text: a number\'s digits, an object\'s or a list\'s JSON. Each present value adds 1 (or, with `signed`, ±1 by another bit of the hash, ' +
    'which keeps collisions unbiased) to bucket hash(field, value) mod width. Absent fields add nothing.',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['fields'],
    properties: {
      fields: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'string',
          pattern: '^(type|itemId|category|userId|sessionId|attrs\\..+)$',
          description: 'An event field, `type`, `itemId`, `category`, `userId` or `sessionId` (the mapping\'s item_id, user_id and session_id are the event\'s itemId, userId and sessionId), or an attribute as `attrs.<name>` (`attrs.brand`).',
        },
        uniqueItems: true,
        description:
          'Categorical fields to hash, each once (a field twice would count double): the event\'s `type`, `itemId`, `category`, `userId` or `sessionId` (what the mapping calls ' +
          'item_id, user_id and session_id), or an attribute the source\'s `mapping.attributes` keeps, as `attrs.<name>` (`attrs.brand`).',
      },
      width: { type: 'integer', minimum: 1, maximum: 65536, default: 32, description: 'Number of buckets (features) in the block.' },
      prefix: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$', default: 'hash', description: 'Name prefix of the block (`<prefix>_<bucket>`): a letter or `_`, then letters, digits or `_`.' },
      signed: { type: 'boolean', default: true, description: 'Add ±1 instead of 1, the sign taken from the hash.' },
    },
  },
  examples: [{ fields: ['category', 'attrs.brand'], width: 32 }, { fields: ['itemId'], width: 256, prefix: 'item', signed: false }],
  featureNames: (config) => hashFeatureNames(config.prefix, config.width),
  featureNamesField: 'prefix',
  // Only a `prefix` edit keeps values: it renames every feature (none kept, all added and dropped), so a model takes
  // the renamed ones on from 0. Any other edit does not: every field adds into the same `width` buckets, so a field
  // added changes the values under the names kept (`<prefix>_k` sums all fields' ±1s); a width changed moves almost
  // every value to another bucket (hash mod width), under names kept; `signed` changes their signs. A resume warns
  // of those and a warm start refuses them.
  keepsFeatureValues: (saved, config) => {
    const before = saved as Partial<HashFeaturesConfig> | null;
    return before !== null && typeof before === 'object' && isDeepStrictEqual(before.fields, config.fields) && before.width === config.width && before.signed === config.signed;
  },
  create(config, context) {
    const width = config.width;
    const block = new FeatureBlock(hashFeatureNames(config.prefix, width));
    const attrNames: (string | undefined)[] = [];
    const fieldNames: (keyof ClickEvent | undefined)[] = [];
    const seeds = new Uint32Array(config.fields.length);
    config.fields.forEach((field, k) => {
      // The schema says so too; a config composed in code reaches here unchecked.
      const first = config.fields.indexOf(field);
      if (first < k) throw new PluginConfigError(`fields[${k}]`, `'${field}' is fields[${first}] again: it would count double`);
      if (field.startsWith('attrs.')) attrNames.push(field.slice(6));
      else if (canonical.has(field)) attrNames.push(undefined);
      else throw new RangeError(`fields[${k}]: unknown field '${field}'`);
      fieldNames.push(field.startsWith('attrs.') ? undefined : (field as keyof ClickEvent));
      seeds[k] = fnv1a(field + '=');
    });
    // Field codes, not names: a keyed load with a varying name per field was megamorphic.
    // An attribute named `constructor` or `__proto__` is one the event has or lacks, never Object.prototype's.
    const codes = Int32Array.from(fieldNames, (name, k) => (name !== undefined ? CANONICAL.indexOf(name) : isInheritedName(attrNames[k]!) ? INHERITED_ATTR : ATTR));
    const signed = config.signed;
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (record.kind === 'event') {
            const event = record as ClickEvent;
            const values = block.append(event);
            const base = block.offset;
            for (let k = 0; k < seeds.length; k++) {
              const raw = fieldValue(event, codes[k]!, attrNames[k]);
              if (raw === undefined || raw === null || raw === '') continue;
              const text = typeof raw === 'string' ? raw : textOf(raw);
              const h = fnv1a(text, seeds[k]!);
              // Bucket from the high bits, sign from the lowest: independent enough for the trick.
              values[base + ((h >>> 1) % width)]! += signed && (h & 1) === 1 ? -1 : 1;
            }
          }
          emit(record);
        },
      })),
    };
  },
});

/**
 * The text a value that is not a string is hashed by: a number's or a boolean's (`7` as `"7"`, as a CSV
 * gives it), an object's or a list's JSON. String() would give every object `[object Object]` (one
 * bucket for all) and throw on one whose own `toString` is no function (`{"toString": 1}`, an input's).
 */
function textOf(value: unknown): string {
  return typeof value === 'object' ? (JSON.stringify(value) ?? String(value)) : String(value);
}

const CANONICAL: readonly (keyof ClickEvent)[] = ['type', 'itemId', 'category', 'userId', 'sessionId'];
const ATTR = -1;
/** An attribute whose name plain objects inherit (isInheritedName): read only where the event's attributes have it. */
const INHERITED_ATTR = -2;

function fieldValue(event: ClickEvent, code: number, attr: string | undefined): unknown {
  switch (code) {
    case 0:
      return event.type;
    case 1:
      return event.itemId;
    case 2:
      return event.category;
    case 3:
      return event.userId;
    case 4:
      return event.sessionId;
    case INHERITED_ATTR: {
      const attrs = event.attrs;
      return attrs == null ? undefined : ownValue(attrs, attr!);
    }
    default:
      return event.attrs?.[attr!];
  }
}

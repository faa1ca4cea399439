/**
 * Records read and written by field names that config or data gives (a mapping's fields and attributes,
 * a hashed attribute, a Kafka key field, a pipeline file's `${VAR}`, a session summary's counts by event
 * type). A plain object inherits Object.prototype's members: where a
 * record has no field `constructor` (`toString`, `__proto__`, ...) of its own, `record[name]` is that
 * member, a function or an object, read as if it were data; and assigning `__proto__` sets the
 * record's prototype instead of a field. Which names need the slower own-field check is decided once
 * per name, when the config is compiled: every other read stays a plain lookup.
 */

/** Whether plain objects inherit a member of this name (`constructor`, `toString`, `__proto__`, ...). */
export function isInheritedName(name: string): boolean {
  return name in Object.prototype;
}

/**
 * The record's own value of field `name`, undefined where it has none of its own. For the names that
 * isInheritedName says; a plain `record[name]` reads any other (one keyed load per call site, which a
 * shared reader function would make one megamorphic site for every name: a third slower per record).
 */
export function ownValue(record: object, name: string): unknown {
  return Object.hasOwn(record, name) ? (record as Record<string, unknown>)[name] : undefined;
}

/** Sets the record's own field `name`, `__proto__` too (an assignment would set the record's prototype). */
export function setOwnField(record: object, name: string, value: unknown): void {
  if (name === '__proto__') Object.defineProperty(record, name, { value, enumerable: true, writable: true, configurable: true });
  else (record as Record<string, unknown>)[name] = value;
}

/**
 * A step of a field path: an own field of an object (`user`, `["a.b"]`), the element of a list at an
 * index (`items[0]`), or the first element of a list that is an object whose own field is a value
 * (`event_params[key="ga_session_id"]`: GA4's list of key/value objects, Segment's and Snowplow's
 * contexts).
 */
export type FieldStep = string | number | ElementTest;

/** `[field=value]`: the first element of a list that is an object whose own field `field` is `value` (===). */
export interface ElementTest {
  readonly field: string;
  readonly value: string | number | boolean;
}

/** The steps of a field name read as a path (fieldPath). */
export type FieldPath = readonly FieldStep[];

/**
 * The steps of a field name, which a mapping reads as a path into nested objects and lists where a
 * record has no field of the whole name (JSON from trackers, Kafka producers and warehouse exports nests
 * its fields): `user.id`; `items[0].item_id` (an element by index, from 0); `event_params[key="ga_session_id"].value.int_value`
 * (the first element whose field is the value: a JSON string in double quotes, a number, true or
 * false); `["a.b"]` (a key with dots or brackets, in double quotes as JSON writes it, as config errors
 * name fields). Undefined for a name read only whole: one without a dot or such a step, or a dotted one
 * with an empty step (`a..b`). A `[` whose content is no step (`Price [EUR]`) is part of a name. Throws
 * a RangeError for a name whose steps are written wrong (fieldPathProblem says why): the mapping's config
 * check refuses it first.
 */
export function fieldPath(name: string): FieldPath | undefined {
  const parsed = parseFieldPath(name);
  if (typeof parsed === 'string') throw new RangeError(parsed);
  return parsed;
}

/** Why `name` is no field name fieldPath reads (a step in brackets written wrong); undefined when it is one. */
export function fieldPathProblem(name: string): string | undefined {
  const parsed = parseFieldPath(name);
  return typeof parsed === 'string' ? parsed : undefined;
}

/** Whether the `[` at `at` opens a step: a number, a quoted key or a test follows it (`[EUR]` is text). */
function opensStep(name: string, at: number): boolean {
  let k = at + 1;
  while (name[k] === ' ') k++;
  const first = name[k];
  if (first === undefined) return false;
  if (/[-0-9"']/.test(first)) return true;
  const close = name.indexOf(']', k);
  return name.slice(k, close < 0 ? undefined : close).includes('=');
}

/** The steps of `name` (undefined: read whole only), or why its steps are written wrong. */
function parseFieldPath(name: string): FieldPath | undefined | string {
  let stepped = false;
  for (let at = name.indexOf('['); at >= 0; at = name.indexOf('[', at + 1)) {
    if (opensStep(name, at)) {
      stepped = true;
      break;
    }
  }
  if (!stepped) {
    if (!name.includes('.')) return undefined;
    const steps = name.split('.');
    return steps.includes('') ? undefined : steps;
  }
  const said = `field '${name}'`;
  const steps: FieldStep[] = [];
  let at = 0;
  while (at < name.length) {
    if (name[at] === '[') {
      const step = parseBracket(name, at, said);
      if (typeof step === 'string') return step;
      if (steps.length === 0 && typeof step.step !== 'string') {
        return `${said}: a record is an object: a path starts with a field (items[0], not [0])`;
      }
      steps.push(step.step);
      at = step.end;
    } else {
      let end = at;
      while (end < name.length && name[end] !== '.' && name[end] !== '[') end++;
      if (end === at) return `${said}: an empty step at character ${at + 1}; steps are parted by one dot (a.b), and a bracket follows its field without one (items[0])`;
      steps.push(name.slice(at, end));
      at = end;
    }
    if (at === name.length) break;
    if (name[at] === '.') {
      at++;
      if (at === name.length || name[at] === '.' || name[at] === '[') {
        return `${said}: an empty step at character ${at + 1}; steps are parted by one dot (a.b), and a bracket follows its field without one (items[0])`;
      }
    } else if (name[at] !== '[') {
      return `${said}: '${name[at]}' after ']' at character ${at + 1}; a step in brackets is followed by '.', '[' or the end`;
    }
  }
  return steps;
}

const stepForms = 'a step in brackets is an index from 0 ([0]), a key in double quotes (["a.b"]) or a test of the elements ([key="value"])';

/** The step in brackets at `at` (a `[`) and where what follows it starts, or why it is written wrong. */
function parseBracket(name: string, at: number, said: string): { step: FieldStep; end: number } | string {
  const close = closingBracket(name, at);
  if (close < 0) return `${said}: '[' at character ${at + 1} is not closed by ']'`;
  const inner = name.slice(at + 1, close).trim();
  const written = name.slice(at, close + 1);
  const end = close + 1;
  if (/^\d+$/.test(inner)) {
    const index = Number(inner);
    if (!Number.isSafeInteger(index)) return `${said}: ${written}: an index below 2^53`;
    return { step: index, end };
  }
  if (/^-\d+$/.test(inner)) return `${said}: ${written}: an index counts from the first element, [0]; no negative index is read`;
  if (inner.startsWith('"')) {
    const key = jsonScalar(inner);
    return typeof key === 'string' ? { step: key, end } : `${said}: ${written}: a key in double quotes, as JSON writes text (["a.b"], ["say \\"hi\\""])`;
  }
  if (inner.startsWith("'")) return `${said}: ${written}: a key is written in double quotes, as JSON writes text: ["${inner.slice(1, inner.endsWith("'") ? -1 : undefined)}"]`;
  const equals = inner.indexOf('=');
  if (equals < 0) return `${said}: ${written}: ${stepForms}`;
  const field = inner.slice(0, equals).trim();
  const literal = inner.slice(equals + 1).trim();
  if (literal.startsWith('=')) return `${said}: ${written}: a test is written with one '=': [${field}=${literal.slice(1).trim()}]`;
  if (!/^[A-Za-z_$][\w$-]*$/.test(field)) return `${said}: ${written}: a test names a field of the elements before '=' (letters, digits, _, $ or -): [key="value"]`;
  const value = jsonScalar(literal);
  if (value === undefined || literal.startsWith("'")) {
    const text = literal.replace(/^['"]|['"]$/g, '');
    return `${said}: ${written}: the value of a test is JSON: text in double quotes ([${field}=${JSON.stringify(text)}]), a number, true or false`;
  }
  return { step: { field, value }, end };
}

/** The `]` that closes the `[` at `at`, passing over the text in double quotes (a key, a test's value); -1 if none. */
function closingBracket(name: string, at: number): number {
  let quoted = false;
  for (let k = at + 1; k < name.length; k++) {
    const c = name[k];
    if (quoted) {
      if (c === '\\') k++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ']') return k;
  }
  return -1;
}

/** The text, number or boolean JSON `literal` (the whole of it) reads as; undefined if it is none of them. */
function jsonScalar(literal: string): string | number | boolean | undefined {
  try {
    const value: unknown = JSON.parse(literal);
    return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The value at `path` (fieldPath) through nested objects and lists, own fields only; undefined where a
 * step is missing or reaches no object or list it can step into (a name into a list, an index into an
 * object, a string). Read where a record has no field of the whole name: the caller reads that first, at
 * its own call site, so a plain read stays a plain keyed load.
 */
export function valueAtPath(record: object, path: FieldPath): unknown {
  let at: unknown = record;
  for (let k = 0; k < path.length; k++) {
    if (typeof at !== 'object' || at === null) return undefined;
    const step = path[k]!;
    if (typeof step === 'string') {
      if (Array.isArray(at)) return undefined;
      at = ownValue(at, step);
    } else if (!Array.isArray(at)) return undefined;
    else if (typeof step === 'number') at = step < at.length ? (at as unknown[])[step] : undefined;
    else at = elementWith(at as unknown[], step);
  }
  return at;
}

/** The first element of `list` that is an object whose own field `test.field` is `test.value`. */
function elementWith(list: readonly unknown[], test: ElementTest): unknown {
  for (let k = 0; k < list.length; k++) {
    const element = list[k];
    if (typeof element === 'object' && element !== null && !Array.isArray(element) && ownValue(element, test.field) === test.value) return element;
  }
  return undefined;
}

/** The path's steps as a mapping names them (`items[0].item_id`, `["a.b"]`, `event_params[key="ga_session_id"]`). */
export function fieldPathText(path: FieldPath): string {
  let text = '';
  for (const step of path) {
    if (typeof step === 'number') text += `[${step}]`;
    else if (typeof step === 'object') text += `[${step.field}=${JSON.stringify(step.value)}]`;
    else if (step.includes('.') || step.includes('[') || step === '') text += `[${JSON.stringify(step)}]`;
    else text += text === '' ? step : `.${step}`;
  }
  return text;
}

/**
 * Where the walk of `path` through `record` found nothing, said for a reason or a warning (`items is an
 * empty list`, `no element of event_params has key "ga_session_id"`, `items is a list: ...`); undefined
 * where its first step is missing (the record lacks the field: similarFieldPath says what is alike) or
 * the walk reaches a value. Never per event read.
 */
export function fieldPathStop(record: object, path: FieldPath): string | undefined {
  let at: unknown = record;
  for (let k = 0; k < path.length; k++) {
    const step = path[k]!;
    const here = fieldPathText(path.slice(0, k));
    if (at === null) return `${here} is null`;
    if (typeof at !== 'object' || at === null) return `${here} is ${kindOf(at)}, not an object or a list`;
    if (typeof step === 'string') {
      if (Array.isArray(at)) {
        // `event_params.ga_session_id`, where an element's `key` is "ga_session_id": the test that finds it.
        const keyed = fieldHolding(at as unknown[], step);
        if (keyed !== undefined) return `${here} is a list: its element whose ${keyed} is ${JSON.stringify(step)} is ${here}[${keyed}=${JSON.stringify(step)}]`;
        return `${here} is a list: ${fieldPathText([...path.slice(0, k), 0, ...path.slice(k)])} reads its first element`;
      }
      if (!Object.hasOwn(at, step)) return k === 0 ? undefined : `${here} has no field ${JSON.stringify(step)}`;
      at = ownValue(at, step);
    } else if (!Array.isArray(at)) {
      return `${here} is an object, not a list${typeof step === 'number' ? ` (a key in brackets is quoted: ${here}["${step}"])` : ''}`;
    } else if (typeof step === 'number') {
      if (step >= at.length) return at.length === 0 ? `${here} is an empty list` : `${here} has ${at.length} element${at.length === 1 ? '' : 's'}`;
      at = (at as unknown[])[step];
    } else {
      const found = elementWith(at as unknown[], step);
      if (found === undefined) return `no element of ${here} has ${step.field} ${JSON.stringify(step.value)}`;
      at = found;
    }
  }
  return undefined;
}

/** A field of an element of `list` (an object) whose value is `value`, the first found among 256 fields at most; undefined if none. */
function fieldHolding(list: readonly unknown[], value: string): string | undefined {
  let looked = 0;
  for (const element of list) {
    if (typeof element !== 'object' || element === null || Array.isArray(element)) continue;
    for (const field of Object.keys(element)) {
      if (++looked > 256) return undefined;
      if ((element as Record<string, unknown>)[field] === value && /^[A-Za-z_$][\w$-]*$/.test(field)) return field;
    }
  }
  return undefined;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'string' ? 'text' : `a ${typeof value}`;
}

/** A field name for comparing: lower case, letters and digits only (`User ID`, `user_id` and `user.id` are one). */
export const comparable = (name: string): string => name.toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * The path (as a mapping names it) of a value in `record` that a mapping most likely meant by `name`,
 * which the record lacks: one that reads as `name` letters and digits alone (`user.id`, `userId` or
 * `User ID` for `user_id`), or whose last step is `name`'s (`event.product.price` for `price`). Lists are
 * looked into: by the element that names `name` in a field (`event_params[key="ga_session_id"].value.int_value`
 * for `ga_session_id`: GA4's key/value lists, with the first value the element holds), else by the first
 * element, where it is an object (`items[0].price` for `price`). Breadth first (the shortest such path),
 * through own fields of objects at most four levels down, at most 256 fields looked at; values that are
 * objects, lists, null or empty text are passed over. For a rejection's reason, never per event read.
 */
export function similarFieldPath(record: object, name: string): string | undefined {
  const whole = comparable(name);
  const last = comparable(name.slice(name.lastIndexOf('.') + 1));
  const budget = { looked: 0 };
  let level: [FieldStep[], object][] = [[[], record]];
  for (let depth = 0; depth < 4 && level.length > 0; depth++) {
    const next: [FieldStep[], object][] = [];
    for (const [steps, object] of level) {
      for (const key of Object.keys(object)) {
        if (++budget.looked > 256) return undefined;
        const path = [...steps, key];
        const value = (object as Record<string, unknown>)[key];
        if (Array.isArray(value)) {
          const keyed = namingElement(value, path, whole, budget);
          if (keyed !== undefined) return keyed;
          const first: unknown = value[0];
          if (typeof first === 'object' && first !== null && !Array.isArray(first)) next.push([[...path, 0], first]);
          continue;
        }
        if (typeof value === 'object' && value !== null) {
          next.push([path, value]);
          continue;
        }
        const text = pathText(path);
        if (value === undefined || value === null || value === '' || text === name) continue;
        // An index is no part of what a path says (`items[0].sku` reads as items.sku).
        const here = comparable(path.filter((step) => typeof step === 'string').join('.'));
        if (here === whole || (depth > 0 && comparable(key) === last)) return text;
      }
    }
    level = next;
  }
  return undefined;
}

/** A path as a mapping names it: a field of the record by its name as it is (`Visitor ID`, `geo.city`), else fieldPathText. */
const pathText = (steps: FieldPath): string => (steps.length === 1 ? (steps[0] as string) : fieldPathText(steps));

/**
 * The path of the first value held by the element of `list` (at `steps`) one of whose own fields names
 * `whole` (comparable): `event_params[key="ga_session_id"].value.int_value` for GA4's
 * `{key: "ga_session_id", value: {int_value: "1710237660"}}`. Counts the fields it looks at in `budget`.
 */
function namingElement(list: readonly unknown[], steps: FieldPath, whole: string, budget: { looked: number }): string | undefined {
  for (const element of list) {
    if (typeof element !== 'object' || element === null || Array.isArray(element)) continue;
    for (const field of Object.keys(element)) {
      if (++budget.looked > 256) return undefined;
      const said = (element as Record<string, unknown>)[field];
      if (typeof said !== 'string' || comparable(said) !== whole || !/^[A-Za-z_$][\w$-]*$/.test(field)) continue;
      // The value beside the name: breadth first through the element's other fields, two levels at most.
      let level: [FieldStep[], object][] = [[[...steps, { field, value: said }], element]];
      for (let depth = 0; depth < 2 && level.length > 0; depth++) {
        const next: [FieldStep[], object][] = [];
        for (const [at, object] of level) {
          for (const key of Object.keys(object)) {
            if (++budget.looked > 256) return undefined;
            if (depth === 0 && key === field) continue;
            const value = (object as Record<string, unknown>)[key];
            if (value === undefined || value === null || value === '') continue;
            if (typeof value !== 'object') return fieldPathText([...at, key]);
            if (!Array.isArray(value)) next.push([[...at, key], value]);
          }
        }
        level = next;
      }
    }
  }
  return undefined;
}

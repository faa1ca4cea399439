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
 * The steps of a dotted field name (`user.id`: `user`, then `id`), which a mapping reads as a path into
 * nested objects where a record has no field of the whole name (JSON from trackers and Kafka producers nests
 * its fields); undefined for a name without a dot, or with an empty step (`a..b`, `.a`), read only whole.
 */
export function fieldPath(name: string): readonly string[] | undefined {
  if (!name.includes('.')) return undefined;
  const steps = name.split('.');
  return steps.includes('') ? undefined : steps;
}

/**
 * The value at `path` (fieldPath) through nested objects, own fields only; undefined where a step is
 * missing or reaches no object (a list, a string). Read where a record has no field of the whole dotted
 * name: the caller reads that first, at its own call site, so a plain read stays a plain keyed load.
 */
export function valueAtPath(record: object, path: readonly string[]): unknown {
  let at: unknown = record;
  for (const step of path) {
    if (typeof at !== 'object' || at === null || Array.isArray(at)) return undefined;
    at = ownValue(at, step);
  }
  return at;
}

/** A field name for comparing: lower case, letters and digits only (`User ID`, `user_id` and `user.id` are one). */
const comparable = (name: string): string => name.toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * The path (dotted, as a mapping names it) of a value in `record` that a mapping most likely meant by
 * `name`, which the record lacks: one that reads as `name` letters and digits alone (`user.id`, `userId` or
 * `User ID` for `user_id`), or whose last step is `name`'s (`event.product.price` for `price`). Breadth first
 * (the shortest such path), through own fields of objects at most four levels down, at most 256 fields
 * looked at; values that are objects, lists, null or empty text are passed over. For a rejection's reason, never per event read.
 */
export function similarFieldPath(record: object, name: string): string | undefined {
  const whole = comparable(name);
  const last = comparable(name.slice(name.lastIndexOf('.') + 1));
  let level: [string, object][] = [['', record]];
  let looked = 0;
  for (let depth = 0; depth < 4 && level.length > 0; depth++) {
    const next: [string, object][] = [];
    for (const [prefix, object] of level) {
      for (const key of Object.keys(object)) {
        if (++looked > 256) return undefined;
        const path = prefix === '' ? key : `${prefix}.${key}`;
        const value = (object as Record<string, unknown>)[key];
        if (typeof value === 'object' && value !== null) {
          if (!Array.isArray(value)) next.push([path, value]);
          continue;
        }
        if (value === undefined || value === null || value === '' || path === name) continue;
        const here = comparable(path);
        if (here === whole || (depth > 0 && comparable(key) === last)) return path;
      }
    }
    level = next;
  }
  return undefined;
}

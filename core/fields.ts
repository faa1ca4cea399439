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
 * `value`, or where it is undefined (the record has no field of the whole dotted name) and `path` is
 * given, the value at `path` through nested objects, own fields only; undefined where a step is missing
 * or reaches no object (a list, a string). Called with a field's plain read, so a name without a dot
 * (no path) costs one comparison, and its keyed load stays at its own call site.
 */
export function orAtPath(value: unknown, record: object, path: readonly string[] | undefined): unknown {
  if (value !== undefined || path === undefined) return value;
  let at: unknown = record;
  for (const step of path) {
    if (typeof at !== 'object' || at === null || Array.isArray(at)) return undefined;
    at = ownValue(at, step);
  }
  return at;
}

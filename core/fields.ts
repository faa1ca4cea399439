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

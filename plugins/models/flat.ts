/**
 * The model stages' per-key state (intent's sessions, churn's users) snapshotted as columns, as the
 * operators' snapshots are (the core's columns, `encodeColumns`): one JSON value a
 * column, and keys and ids as flat lists of strings, not one object per session or user. The
 * checkpoint's serialiser writes a column, or a run of flat strings, natively; objects holding arrays
 * (a session's pending prediction ids) it walked value by value (100,000 sessions: 0.9-1.6 s of CPU).
 * A list per row (a session's pending predictions) is one flat list for all rows, with a column of
 * each row's length.
 */
import { decodeColumn, type Column } from 'tributary';

/** The column's n values; throws on anything but a column of n rows (a damaged checkpoint). */
export function columnOf(column: Column, n: number, what: string): Float64Array {
  const values = decodeColumn(column, what);
  if (values.length !== n) throw new Error(`${what}: ${values.length} values, expected ${n}`);
  return values;
}

/** `value` as a list of strings (of n, when given); throws on anything else. */
export function stringsOf(value: unknown, n: number | undefined, what: string): string[] {
  if (!Array.isArray(value) || (n !== undefined && value.length !== n)) throw new Error(`${what}: not a list of ${n ?? 'some'} strings`);
  for (let i = 0; i < value.length; i++) if (typeof value[i] !== 'string') throw new Error(`${what}: not a list of strings`);
  return value as string[];
}

/** `value` as n strings or nulls (none: an absent list); throws on anything else. */
export function optionalStringsOf(value: unknown, n: number, what: string): (string | null)[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length !== n) throw new Error(`${what}: not a list of ${n} strings`);
  for (let i = 0; i < n; i++) if (value[i] !== null && typeof value[i] !== 'string') throw new Error(`${what}: not a list of ${n} strings`);
  return value as (string | null)[];
}

/** Checks that each row's list length is a whole number and that they add up to the flat list's `total`. */
export function checkLengths(lengths: Float64Array, total: number, what: string): void {
  let sum = 0;
  for (let i = 0; i < lengths.length; i++) {
    const length = lengths[i]!;
    if (!Number.isSafeInteger(length) || length < 0) throw new Error(`${what}: length ${length} at row ${i}`);
    sum += length;
  }
  if (sum !== total) throw new Error(`${what}: lengths add up to ${sum}, the list holds ${total}`);
}

/** The column's n values, or undefined for an absent column (one added after a snapshot was written). */
export function optionalColumnOf(column: Column | undefined, n: number, what: string): Float64Array | undefined {
  return column === undefined ? undefined : columnOf(column, n, what);
}

/**
 * Numeric columns for operator snapshots: one JSON value per column instead of one JSON number per
 * cell, so a million-row state serialises and parses in milliseconds, not seconds. Exact for every
 * float64 (NaN, ±Infinity and -0 included), unlike JSON numbers. Bytes are little-endian.
 */
import { endianness } from 'node:os';

/**
 * `{n, c}`: n copies of c. `{n, base, bytes, b64}`: integers base + an unsigned offset of 1, 2 or 4
 * bytes each. `{n, f64}`: raw float64s. `b64` and `f64` are base64.
 */
export type Column =
  | { n: number; c: number }
  | { n: number; base: number; bytes: 1 | 2 | 4; b64: string }
  | { n: number; f64: string };

const littleEndian = endianness() === 'LE';

/**
 * Encodes n values, `values[start + i * stride]`, in the smallest of the three forms that is exact.
 * The stride reads one field of a row-major table without copying it out first.
 */
export function encodeColumn(values: ArrayLike<number>, n = values.length, start = 0, stride = 1): Column {
  if (n === 0) return { n, c: 0 };
  let min = Infinity;
  let max = -Infinity;
  let integers = true;
  for (let i = 0; i < n; i++) {
    const v = values[start + i * stride]!;
    // -0 and non-integers (NaN and ±Infinity among them) need the raw form.
    if (!Number.isSafeInteger(v) || Object.is(v, -0)) {
      integers = false;
      break;
    }
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (integers) {
    const range = max - min;
    if (range === 0) return { n, c: min };
    if (range <= 0xffffffff) {
      const bytes = range <= 0xff ? 1 : range <= 0xffff ? 2 : 4;
      const out = bytes === 1 ? new Uint8Array(n) : bytes === 2 ? new Uint16Array(n) : new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = values[start + i * stride]! - min;
      return { n, base: min, bytes, b64: toBase64(out) };
    }
  }
  const raw = new Float64Array(n);
  for (let i = 0; i < n; i++) raw[i] = values[start + i * stride]!;
  return { n, f64: toBase64(raw) };
}

/** The column's values; throws on anything but a column this module wrote. */
export function decodeColumn(column: Column, what: string): Float64Array {
  const n = column?.n;
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: not a snapshot column`);
  const out = new Float64Array(n);
  decodeColumnInto(column, out, 0, 1, what);
  return out;
}

/**
 * Writes the column's values to `out[start + i * stride]` (one field of a row-major table, with no
 * column-sized array in between); returns the number of values.
 */
export function decodeColumnInto(column: Column, out: Float64Array, start: number, stride: number, what: string): number {
  const n = column?.n;
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: not a snapshot column`);
  if (n > 0 && start + (n - 1) * stride >= out.length) throw new Error(`${what}: column of ${n} values does not fit`);
  if ('c' in column) {
    const c = column.c;
    if (typeof c !== 'number') throw new Error(`${what}: not a snapshot column`);
    for (let i = 0; i < n; i++) out[start + i * stride] = c;
    return n;
  }
  if ('f64' in column) {
    const raw = fromBase64(column.f64, Float64Array, n, what);
    for (let i = 0; i < n; i++) out[start + i * stride] = raw[i]!;
    return n;
  }
  if (typeof column.base !== 'number') throw new Error(`${what}: not a snapshot column`);
  const offsets: ArrayLike<number> =
    column.bytes === 1
      ? fromBase64(column.b64, Uint8Array, n, what)
      : column.bytes === 2
        ? fromBase64(column.b64, Uint16Array, n, what)
        : column.bytes === 4
          ? fromBase64(column.b64, Uint32Array, n, what)
          : [];
  if (offsets.length !== n) throw new Error(`${what}: not a snapshot column`);
  const base = column.base;
  for (let i = 0; i < n; i++) out[start + i * stride] = base + offsets[i]!;
  return n;
}

type TypedArrayClass<T> = { new (buffer: ArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number };

function toBase64(array: Uint8Array | Uint16Array | Uint32Array | Float64Array): string {
  if (!littleEndian) throw new Error('snapshot columns need a little-endian host');
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString('base64');
}

function fromBase64<T>(text: string, type: TypedArrayClass<T>, n: number, what: string): T {
  if (!littleEndian) throw new Error('snapshot columns need a little-endian host');
  if (typeof text !== 'string') throw new Error(`${what}: not a snapshot column`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== n * type.BYTES_PER_ELEMENT) throw new Error(`${what}: column holds ${bytes.length} bytes, expected ${n * type.BYTES_PER_ELEMENT}`);
  // Copied to a fresh buffer: Buffer's pool gives no alignment guarantee for wider elements.
  const aligned = new ArrayBuffer(bytes.length);
  new Uint8Array(aligned).set(bytes);
  return new type(aligned, 0, n);
}

/**
 * Ids of the form `<owner>:<integer>` (the sessionizer's `<userId>:<start ms>`) as a column of the
 * integers; any other id (data session ids, none) goes to `other` by row. Restores exactly.
 */
export interface DerivedIds {
  times: Column;
  /** Rows whose id is not `<owner>:<integer>`: row indices and their ids (null for none). */
  otherRows: number[];
  otherIds: (string | null)[];
}

/** A number among `ids` is the integer of an id known to be `<owner>:<integer>` (not built yet). */
export function encodeDerivedIds(owners: readonly string[], ids: readonly (string | number | undefined | null)[]): DerivedIds {
  const n = owners.length;
  const times = new Float64Array(n);
  const otherRows: number[] = [];
  const otherIds: (string | null)[] = [];
  let fill = NaN;
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    const owner = owners[i]!;
    const time = typeof id === 'number' ? id : id != null && id.length > owner.length + 1 && id.charCodeAt(owner.length) === 58 /* : */ && id.startsWith(owner) ? canonicalInteger(id, owner.length + 1) : NaN;
    if (time === time) {
      times[i] = time;
      if (fill !== fill) fill = time;
    } else {
      times[i] = NaN;
      otherRows.push(i);
      otherIds.push(typeof id === 'string' ? id : null);
    }
  }
  // Rows listed in `other` take a nearby value, so the column stays a narrow integer one.
  for (const row of otherRows) times[row] = fill === fill ? fill : 0;
  return { times: encodeColumn(times), otherRows, otherIds };
}

export function decodeDerivedIds(owners: readonly string[], saved: DerivedIds, what: string): (string | undefined)[];
/**
 * Lazy form: `ids` holds only the other ids; row i's id is `<owner>:<times[i]>` where times[i] is
 * not NaN, for the caller to build when it needs it.
 */
export function decodeDerivedIds(owners: readonly string[], saved: DerivedIds, what: string, lazy: true): { ids: (string | undefined)[]; times: Float64Array };
export function decodeDerivedIds(
  owners: readonly string[],
  saved: DerivedIds,
  what: string,
  lazy = false,
): (string | undefined)[] | { ids: (string | undefined)[]; times: Float64Array } {
  const times = decodeColumn(saved.times, what);
  if (times.length !== owners.length) throw new Error(`${what}: ${times.length} ids for ${owners.length} rows`);
  if (lazy) {
    const ids: (string | undefined)[] = [];
    for (let k = 0; k < saved.otherRows.length; k++) {
      const row = saved.otherRows[k]!;
      if (!(row >= 0 && row < owners.length)) throw new Error(`${what}: row ${row} out of range`);
      times[row] = NaN;
      while (ids.length < row) ids.push(undefined);
      ids[row] = saved.otherIds[k] ?? undefined;
    }
    // Full length: a later store far past the end would turn the array into a slow dictionary.
    while (ids.length < owners.length) ids.push(undefined);
    return { ids, times };
  }
  // Pushed, not `new Array(n)`: a large preallocated array gets slow dictionary elements in V8.
  const ids: (string | undefined)[] = [];
  for (let i = 0; i < owners.length; i++) ids.push(`${owners[i]!}:${times[i]!}`);
  for (let k = 0; k < saved.otherRows.length; k++) ids[saved.otherRows[k]!] = saved.otherIds[k] ?? undefined;
  return ids;
}

/**
 * The integer that `text` spells from `from` to its end, if `String()` of it gives back exactly
 * that text (no sign but '-', no leading zeros, no "-0", at most 15 digits); else NaN. Parsed by
 * hand: slicing a million ids to parse them showed in checkpoint profiles.
 */
function canonicalInteger(text: string, from: number): number {
  let i = from;
  const negative = text.charCodeAt(i) === 45; /* - */
  if (negative) i++;
  const digits = text.length - i;
  if (digits < 1 || digits > 15) return NaN;
  if (text.charCodeAt(i) === 48 /* 0 */ && (digits > 1 || negative)) return NaN;
  let value = 0;
  for (; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    value = value * 10 + d;
  }
  return negative ? -value : value;
}

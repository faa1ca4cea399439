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

/** Encodes `values[0..n)` in the smallest of the three forms that is exact. */
export function encodeColumn(values: Float64Array | readonly number[], n = values.length): Column {
  if (n === 0) return { n, c: 0 };
  let min = Infinity;
  let max = -Infinity;
  let integers = true;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
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
      for (let i = 0; i < n; i++) out[i] = values[i]! - min;
      return { n, base: min, bytes, b64: toBase64(out) };
    }
  }
  const raw = new Float64Array(n);
  for (let i = 0; i < n; i++) raw[i] = values[i]!;
  return { n, f64: toBase64(raw) };
}

/** The column's values; throws on anything but a column this module wrote. */
export function decodeColumn(column: Column, what: string): Float64Array {
  const n = column?.n;
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: not a snapshot column`);
  const out = new Float64Array(n);
  if ('c' in column) {
    out.fill(column.c);
    return out;
  }
  if ('f64' in column) {
    out.set(fromBase64(column.f64, Float64Array, n, what));
    return out;
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
  for (let i = 0; i < n; i++) out[i] = base + offsets[i]!;
  return out;
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

export function encodeDerivedIds(owners: readonly string[], ids: readonly (string | undefined | null)[]): DerivedIds {
  const n = owners.length;
  const times = new Float64Array(n);
  const otherRows: number[] = [];
  const otherIds: (string | null)[] = [];
  let fill = NaN;
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    const owner = owners[i]!;
    let time = NaN;
    if (id != null && id.length > owner.length + 1 && id.charCodeAt(owner.length) === 58 /* : */ && id.startsWith(owner)) {
      const suffix = id.slice(owner.length + 1);
      const parsed = Number(suffix);
      if (Number.isSafeInteger(parsed) && String(parsed) === suffix) time = parsed;
    }
    if (time === time) {
      times[i] = time;
      if (fill !== fill) fill = time;
    } else {
      times[i] = NaN;
      otherRows.push(i);
      otherIds.push(id ?? null);
    }
  }
  // Rows listed in `other` take a nearby value, so the column stays a narrow integer one.
  for (const row of otherRows) times[row] = fill === fill ? fill : 0;
  return { times: encodeColumn(times), otherRows, otherIds };
}

export function decodeDerivedIds(owners: readonly string[], saved: DerivedIds, what: string): (string | undefined)[] {
  const times = decodeColumn(saved.times, what);
  if (times.length !== owners.length) throw new Error(`${what}: ${times.length} ids for ${owners.length} rows`);
  const ids: (string | undefined)[] = new Array<string | undefined>(owners.length);
  for (let i = 0; i < owners.length; i++) ids[i] = `${owners[i]!}:${times[i]!}`;
  for (let k = 0; k < saved.otherRows.length; k++) ids[saved.otherRows[k]!] = saved.otherIds[k] ?? undefined;
  return ids;
}

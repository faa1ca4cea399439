/**
 * Numeric columns for operator snapshots: one JSON value per column instead of one JSON number per
 * cell, so a million-row state serialises and parses in milliseconds, not seconds. Exact for every
 * float64 (NaN, ±Infinity and -0 included), unlike JSON numbers. Bytes are little-endian.
 */
import { endianness } from 'node:os';
import { inParts, nextTurn, partsOf, turnDue } from './turns.js';

/**
 * `{n, c}`: n copies of c. `{n, base, bytes, b64}`: integers base + an unsigned offset of 1, 2 or 4
 * bytes each. `{n, f64}`: raw float64s. `b64` and `f64` are base64.
 */
export type Column = (
  | { n: number; c: number }
  | { n: number; base: number; bytes: 1 | 2 | 4; b64: string }
  | { n: number; f64: string }
) & {
  /** Present: the values are offsets from the same rows of another column (its number is the caller's). */
  ref?: number;
};

const littleEndian = endianness() === 'LE';

/**
 * Another column of the same rows; `ref` names it in the snapshot. Row i's value is
 * values[offset + i * stride] (by default values[i]): a field of a row-major table is read in
 * place, not copied out into a column of its own first (a million rows: 8 MB more a checkpoint).
 */
export interface Reference {
  values: Float64Array;
  ref: number;
  stride?: number;
  offset?: number;
}

/** Whether the reference holds n rows. */
const holds = (reference: Reference, n: number): boolean => {
  const stride = reference.stride ?? 1;
  const offset = reference.offset ?? 0;
  return Number.isInteger(stride) && stride >= 1 && Number.isInteger(offset) && offset >= 0 && (n === 0 || offset + (n - 1) * stride < reference.values.length);
};

/**
 * One buffer for the temporary arrays an encoder fills and makes base64, one after another: a
 * snapshot's columns each in a buffer of their own were tens of MiB of ArrayBuffers a checkpoint,
 * kept across turns, and V8 starts a full GC for every 64 MiB of those (see toBase64).
 */
class Scratch {
  private buffer = new ArrayBuffer(0);

  /** At least `bytes` bytes; whatever an array of an earlier call holds is overwritten. */
  take(bytes: number): ArrayBuffer {
    if (this.buffer.byteLength < bytes) this.buffer = new ArrayBuffer(bytes);
    return this.buffer;
  }
}

/**
 * Encodes the values in the smallest of the three forms that is exact (Float64Array only: monomorphic
 * loops). Yields between parts of the rows (a snapshot in parts, see PartedSnapshots).
 */
export function* encodeColumn(values: Float64Array, reference?: Reference, scratch = new Scratch()): Generator<void, Column, void> {
  const plain = yield* encodePlain(values, scratch);
  if (reference === undefined || 'f64' in plain || 'c' in plain) return plain;
  // Times of one row are close to each other (first seen, last seen, session start): as offsets
  // from a related column they often shrink to a constant or a byte.
  const n = values.length;
  if (!holds(reference, n)) throw new Error(`reference of ${reference.values.length} values for ${n} rows`);
  const base = reference.values;
  const stride = reference.stride ?? 1;
  const offset = reference.offset ?? 0;
  const diffs = new Float64Array(n); // not from scratch: encodePlain's output goes there
  let exact = true;
  yield* partsOf(n, (from, to) => {
    if (!exact) return;
    for (let i = from, o = offset + from * stride; i < to; i++, o += stride) {
      const v = values[i]!;
      const r = base[o]!;
      const d = v - r;
      if (!Number.isSafeInteger(r) || !Number.isSafeInteger(d) || r + d !== v) {
        exact = false;
        return;
      }
      diffs[i] = d;
    }
  });
  if (!exact) return plain;
  const relative = yield* encodePlain(diffs, scratch);
  return size(relative) < size(plain) ? { ...relative, ref: reference.ref } : plain;
}

function size(column: Column): number {
  return 'c' in column ? 0 : 'b64' in column ? column.b64.length : column.f64.length;
}

/** The values as a column; its offsets are made base64 from `scratch`. */
function* encodePlain(values: Float64Array, scratch: Scratch): Generator<void, Column, void> {
  const n = values.length;
  if (n === 0) return { n, c: 0 };
  let min = Infinity;
  let max = -Infinity;
  let integers = true;
  yield* partsOf(n, (from, to) => {
    if (!integers) return;
    // Locals in the loop: the captured variables are updated once a part (a loop over them was 2.5x slower).
    let low = min;
    let high = max;
    for (let i = from; i < to; i++) {
      const v = values[i]!;
      // -0 and non-integers (NaN and ±Infinity among them) need the raw form.
      if (!Number.isSafeInteger(v) || (v === 0 && 1 / v < 0)) {
        integers = false;
        return;
      }
      if (v < low) low = v;
      if (v > high) high = v;
    }
    min = low;
    max = high;
  });
  if (integers) {
    const range = max - min;
    if (range === 0) return { n, c: min };
    // One loop per element type, each monomorphic.
    let out: Uint8Array | Uint16Array | Uint32Array | undefined;
    if (range <= 0xff) {
      const bytes = new Uint8Array(scratch.take(n * 1), 0, n);
      yield* partsOf(n, (from, to) => {
        for (let i = from; i < to; i++) bytes[i] = values[i]! - min;
      });
      out = bytes;
    } else if (range <= 0xffff) {
      const bytes = new Uint16Array(scratch.take(n * 2), 0, n);
      yield* partsOf(n, (from, to) => {
        for (let i = from; i < to; i++) bytes[i] = values[i]! - min;
      });
      out = bytes;
    } else if (range <= 0xffffffff) {
      const bytes = new Uint32Array(scratch.take(n * 4), 0, n);
      yield* partsOf(n, (from, to) => {
        for (let i = from; i < to; i++) bytes[i] = values[i]! - min;
      });
      out = bytes;
    }
    if (out !== undefined) {
      if (turnDue()) yield;
      return { n, base: min, bytes: out.BYTES_PER_ELEMENT as 1 | 2 | 4, b64: toBase64(out) };
    }
  }
  return { n, f64: toBase64(values) };
}

/** encodeColumn of each, in parts. */
export function* encodeColumns(columns: readonly Float64Array[]): Generator<void, Column[], void> {
  const encoded: Column[] = [];
  const scratch = new Scratch();
  for (const values of columns) encoded.push(yield* encodeColumn(values, undefined, scratch));
  return encoded;
}

/**
 * encodeColumns of named columns, in parts: `const { start, end } = yield* encodeNamedColumns({ start,
 * end })`, the same names back; decodeNamedColumns reads them.
 */
export function* encodeNamedColumns<K extends string>(columns: Readonly<Record<K, Float64Array>>): Generator<void, Record<K, Column>, void> {
  const names = Object.keys(columns) as K[];
  const encoded = yield* encodeColumns(names.map((name) => columns[name]));
  return Object.fromEntries(names.map((name, k) => [name, encoded[k]!])) as Record<K, Column>;
}

/** The column's values; throws on anything but a column this module wrote. */
export function decodeColumn(column: Column, what: string, reference?: Reference): Float64Array {
  const n = column?.n;
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: not a snapshot column`);
  let out: Float64Array;
  if ('c' in column) {
    if (typeof column.c !== 'number') throw new Error(`${what}: not a snapshot column`);
    out = new Float64Array(n);
    if (column.c !== 0) out.fill(column.c);
  } else if ('f64' in column) {
    out = fromBase64(column.f64, Float64Array, n, what);
  } else {
    if (typeof column.base !== 'number') throw new Error(`${what}: not a snapshot column`);
    out = new Float64Array(n);
    if (column.bytes === 1) addOffsets(out, fromBase64(column.b64, Uint8Array, n, what), column.base);
    else if (column.bytes === 2) addOffsets(out, fromBase64(column.b64, Uint16Array, n, what), column.base);
    else if (column.bytes === 4) addOffsets(out, fromBase64(column.b64, Uint32Array, n, what), column.base);
    else throw new Error(`${what}: not a snapshot column`);
  }
  if (column.ref !== undefined) {
    if (reference === undefined || reference.ref !== column.ref || !holds(reference, n)) throw new Error(`${what}: column refers to column ${column.ref}, which cannot be its reference`);
    const base = reference.values;
    const stride = reference.stride ?? 1;
    for (let i = 0, o = reference.offset ?? 0; i < n; i++, o += stride) out[i]! += base[o]!;
  }
  return out;
}

/*
 * Reading a snapshot back: every list and column checked against the rows it must hold, so a damaged
 * snapshot is refused with what does not match, not restored into state that reads past a list's end
 * (undefined ids, NaN counts). `what` names the plugin's snapshot and the part of it.
 */

/** The column's values, which must be `rows` of them; throws with `what` on anything else. */
export function decodeColumnOf(column: Column, rows: number, what: string, reference?: Reference): Float64Array {
  const values = decodeColumn(column, what, reference);
  if (values.length !== rows) throw new Error(`${what}: ${values.length} rows, expected ${rows}`);
  return values;
}

/** decodeColumnOf, or undefined for an absent column (one a later version added to the snapshot). */
export function decodeOptionalColumnOf(column: Column | undefined, rows: number, what: string): Float64Array | undefined {
  return column === undefined ? undefined : decodeColumnOf(column, rows, what);
}

/**
 * The inverse of encodeColumns: `count` columns (a list of another length throws), each of `rows`
 * rows (undefined: as many as the first). An error names the column by its index.
 */
export function decodeColumns(columns: readonly Column[], count: number, rows: number | undefined, what: string): Float64Array[] {
  if (!Array.isArray(columns) || columns.length !== count) throw new Error(`${what}: ${Array.isArray(columns) ? columns.length : 'no list of'} columns, expected ${count}`);
  const decoded: Float64Array[] = [];
  for (let k = 0; k < count; k++) {
    const values = rows === undefined && k === 0 ? decodeColumn(columns[k]!, `${what}: column 0`) : decodeColumnOf(columns[k]!, rows ?? decoded[0]!.length, `${what}: column ${k}`);
    decoded.push(values);
  }
  return decoded;
}

/**
 * The columns `names` of a snapshot object, each of `rows` rows: `const { start, end } =
 * decodeNamedColumns(saved, ['start', 'end'], n, what)`. An error names the column.
 */
export function decodeNamedColumns<K extends string>(saved: { readonly [name in K]: Column }, names: readonly K[], rows: number, what: string): Record<K, Float64Array> {
  const decoded = {} as Record<K, Float64Array>;
  for (const name of names) decoded[name] = decodeColumnOf(saved?.[name], rows, `${what}: ${name}`);
  return decoded;
}

/**
 * decodeNamedColumns, the event loop turning before each column (a restore in parts: a column of a
 * million rows takes tens of milliseconds to decode, a stage's six of them one block of a few hundred).
 */
export async function decodeNamedColumnsInTurns<K extends string>(saved: { readonly [name in K]: Column }, names: readonly K[], rows: number, what: string): Promise<Record<K, Float64Array>> {
  const decoded = {} as Record<K, Float64Array>;
  for (const name of names) {
    await nextTurn();
    decoded[name] = decodeColumnOf(saved?.[name], rows, `${what}: ${name}`);
  }
  return decoded;
}

/** `value` as a list of strings (of `rows`, when given), as saved beside columns (keys, ids); throws on anything else. */
export function decodeStrings(value: unknown, rows: number | undefined, what: string): string[] {
  if (!Array.isArray(value)) throw new Error(`${what}: not a list of strings`);
  if (rows !== undefined && value.length !== rows) throw new Error(`${what}: ${value.length} strings, expected ${rows}`);
  for (let i = 0; i < value.length; i++) if (typeof value[i] !== 'string') throw new Error(`${what}: not a string at row ${i}`);
  return value as string[];
}

/** `value` as a list of `rows` strings or nulls (null: none, e.g. an event without an item); throws on anything else. */
export function decodeNullableStrings(value: unknown, rows: number, what: string): (string | null)[] {
  if (!Array.isArray(value)) throw new Error(`${what}: not a list of strings`);
  if (value.length !== rows) throw new Error(`${what}: ${value.length} strings, expected ${rows}`);
  for (let i = 0; i < rows; i++) if (value[i] !== null && typeof value[i] !== 'string') throw new Error(`${what}: not a string or null at row ${i}`);
  return value as (string | null)[];
}

/**
 * A list per row saved as one flat list of `total` items and a column of each row's length: checks
 * that the lengths are whole numbers that add up to `total`.
 */
export function checkListLengths(lengths: Float64Array, total: number, what: string): void {
  let sum = 0;
  for (let i = 0; i < lengths.length; i++) {
    const length = lengths[i]!;
    if (!Number.isSafeInteger(length) || length < 0) throw new Error(`${what}: length ${length} at row ${i}`);
    sum += length;
  }
  if (sum !== total) throw new Error(`${what}: lengths add up to ${sum}, the list holds ${total}`);
}

function addOffsets(out: Float64Array, offsets: ArrayLike<number>, base: number): void {
  for (let i = 0; i < out.length; i++) out[i] = base + offsets[i]!;
}

/**
 * Encodes each field of the first n rows of a row-major table as a column, reading the table in
 * two row-major passes (statistics, then the offsets of the fields that need them): memory
 * bandwidth, not arithmetic, bounds a million-row table, so it is never copied out field by field.
 * `refs[f]`, when set, is an earlier field that field f may be stored as offsets from. Yields
 * between parts of rows and between columns (a snapshot in parts, see PartedSnapshots).
 */
export function* encodeTable(rows: Float64Array, n: number, width: number, refs: readonly (number | undefined)[] = []): Generator<void, Column[], void> {
  const min = new Float64Array(width).fill(Infinity);
  const max = new Float64Array(width).fill(-Infinity);
  const minD = new Float64Array(width).fill(Infinity);
  const maxD = new Float64Array(width).fill(-Infinity);
  const integer = new Uint8Array(width).fill(1);
  const relative = new Uint8Array(width);
  const ref = new Int32Array(width).fill(-1);
  for (let f = 0; f < width; f++) {
    const r = refs[f];
    if (r !== undefined && r >= 0 && r < f) {
      ref[f] = r;
      relative[f] = 1;
    }
  }
  yield* partsOf(n, (from, to) => {
    for (let i = from, o = from * width; i < to; i++, o += width) {
      for (let f = 0; f < width; f++) {
        const v = rows[o + f]!;
        if (integer[f] === 1) {
          // -0 and non-integers (NaN and ±Infinity among them) need the raw form.
          if (!Number.isSafeInteger(v) || (v === 0 && 1 / v < 0)) integer[f] = 0;
          else {
            if (v < min[f]!) min[f] = v;
            if (v > max[f]!) max[f] = v;
          }
        }
        if (relative[f] === 1) {
          const base = rows[o + ref[f]!]!;
          const d = v - base;
          if (!Number.isSafeInteger(base) || !Number.isSafeInteger(d) || base + d !== v) relative[f] = 0;
          else {
            if (d < minD[f]!) minD[f] = d;
            if (d > maxD[f]!) maxD[f] = d;
          }
        }
      }
    }
  });
  const columns: Column[] = [];
  const plans: { f: number; base: number; ref: number; bytes: number }[] = [];
  for (let f = 0; f < width; f++) {
    const plainRange = integer[f] === 1 && n > 0 ? max[f]! - min[f]! : Infinity;
    const relRange = relative[f] === 1 && integer[f] === 1 && n > 0 ? maxD[f]! - minD[f]! : Infinity;
    const useRel = relRange < plainRange && bytesFor(relRange) < bytesFor(plainRange);
    const range = useRel ? relRange : plainRange;
    const base = useRel ? minD[f]! : min[f]!;
    const extra = useRel ? { ref: ref[f]! } : {};
    if (n === 0) columns.push({ n, c: 0 });
    else if (range === 0) columns.push({ n, c: base, ...extra });
    else {
      const bytes = bytesFor(range);
      plans.push({ f, base: bytes === 8 ? 0 : base, ref: useRel ? ref[f]! : -1, bytes });
      columns.push({ n, c: 0 }); // replaced below
    }
  }
  // Each field's offsets are made base64 before the next is encoded: one buffer holds them all in turn.
  const scratch = new Scratch();
  for (const plan of plans) {
    if (turnDue()) yield;
    // One pass per encoded field keeps each loop monomorphic in its output type.
    const { f, base, bytes } = plan;
    const buffer = scratch.take(n * bytes);
    const out = bytes === 1 ? new Uint8Array(buffer, 0, n) : bytes === 2 ? new Uint16Array(buffer, 0, n) : bytes === 4 ? new Uint32Array(buffer, 0, n) : new Float64Array(buffer, 0, n);
    const r = plan.ref;
    yield* partsOf(n, (from, to) => {
      if (r >= 0) for (let i = from, o = from * width; i < to; i++, o += width) out[i] = rows[o + f]! - rows[o + r]! - base;
      else for (let i = from, o = from * width; i < to; i++, o += width) out[i] = rows[o + f]! - base;
    });
    const column: Column =
      out instanceof Float64Array ? { n, f64: toBase64(out) } : { n, base, bytes: out.BYTES_PER_ELEMENT as 1 | 2 | 4, b64: toBase64(out) };
    if (r >= 0) column.ref = r;
    columns[f] = column;
  }
  return columns;
}

function bytesFor(range: number): number {
  return range <= 0xff ? 1 : range <= 0xffff ? 2 : range <= 0xffffffff ? 4 : 8;
}

/**
 * The inverse of encodeTable into the first rows of a zeroed row-major table; resolves to the row
 * count. Zero constants are skipped (the table is zeroed); columns decode in order, so a
 * reference to an earlier field reads values already in place. The event loop turns between
 * columns and between parts of their rows (inParts).
 */
export async function decodeTable(columns: readonly Column[], rows: Float64Array, width: number, what: string): Promise<number> {
  if (columns.length !== width) throw new Error(`${what}: ${columns.length} columns, expected ${width}`);
  const n = columns[0]?.n ?? 0;
  if (!Number.isSafeInteger(n) || n < 0 || n * width > rows.length) throw new Error(`${what}: not a snapshot table`);
  // Rows in parts too: a column of a million rows takes milliseconds, but the first one written
  // touches every page of a fresh table (168 MB for a million users: 0.2-0.5 s of page faults here).
  for (let f = 0; f < width; f++) {
    if (f > 0) await nextTurn();
    const column = columns[f]!;
    if (column?.n !== n) throw new Error(`${what}: column ${f} has ${String(column?.n)} rows, expected ${n}`);
    const r = column.ref ?? -1;
    if (r !== -1 && !(Number.isInteger(r) && r >= 0 && r < f)) throw new Error(`${what}: column ${f} refers to column ${r}`);
    if ('c' in column) {
      const c = column.c;
      if (typeof c !== 'number') throw new Error(`${what}: not a snapshot column`);
      if (r >= 0) {
        await inParts(n, (from, to) => {
          for (let i = from, o = from * width; i < to; i++, o += width) rows[o + f] = rows[o + r]! + c;
        });
      } else if (c !== 0 || 1 / c < 0) {
        await inParts(n, (from, to) => {
          for (let i = from, o = from * width; i < to; i++, o += width) rows[o + f] = c;
        });
      }
      continue;
    }
    const values = decodeColumn({ ...column, ref: undefined } as Column, what);
    await inParts(n, (from, to) => {
      if (r >= 0) for (let i = from, o = from * width; i < to; i++, o += width) rows[o + f] = rows[o + r]! + values[i]!;
      else for (let i = from, o = from * width; i < to; i++, o += width) rows[o + f] = values[i]!;
    });
  }
  return n;
}

type TypedArrayClass<T> = { new (buffer: ArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number };

/**
 * Bytes made base64 at once (a multiple of 3, so the pieces join without padding): Node makes the
 * base64 of more than about 750 KiB an external string, counted as external memory, and V8 starts a
 * full GC for every 64 MiB of that (a snapshot's columns held until the checkpoint was written made
 * 31 MiB of it each checkpoint). Joined pieces are one string on V8's heap.
 */
const BASE64_BYTES = 3 << 17;

function toBase64(array: Uint8Array | Uint16Array | Uint32Array | Float64Array): string {
  if (!littleEndian) throw new Error('snapshot columns need a little-endian host');
  const bytes = Buffer.from(array.buffer, array.byteOffset, array.byteLength);
  if (bytes.length <= BASE64_BYTES) return bytes.toString('base64');
  const pieces: string[] = [];
  for (let from = 0; from < bytes.length; from += BASE64_BYTES) pieces.push(bytes.toString('base64', from, Math.min(bytes.length, from + BASE64_BYTES)));
  return pieces.join('');
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

/**
 * A number among `ids` is the integer of an id known to be `<owner>:<integer>` (not built yet).
 * Yields between parts of the rows (a snapshot in parts, see PartedSnapshots).
 */
export function* encodeDerivedIds(owners: readonly string[], ids: readonly (string | number | undefined | null)[], reference?: Reference): Generator<void, DerivedIds, void> {
  const n = owners.length;
  const times = new Float64Array(n);
  const otherRows: number[] = [];
  const otherIds: (string | null)[] = [];
  let fill = NaN;
  yield* partsOf(n, (from, to) => {
    let first = fill; // a local in the loop, as in encodePlain
    for (let i = from; i < to; i++) {
      const id = ids[i];
      const owner = owners[i]!;
      const time = typeof id === 'number' ? id : id != null && id.length > owner.length + 1 && id.charCodeAt(owner.length) === 58 /* : */ && id.startsWith(owner) ? canonicalInteger(id, owner.length + 1) : NaN;
      if (time === time) {
        times[i] = time;
        if (first !== first) first = time;
      } else {
        times[i] = NaN;
        otherRows.push(i);
        otherIds.push(typeof id === 'string' ? id : null);
      }
    }
    fill = first;
  });
  // Rows listed in `other` take a nearby value, so the column stays a narrow integer one.
  for (const row of otherRows) times[row] = fill === fill ? fill : 0;
  return { times: yield* encodeColumn(times, reference), otherRows, otherIds };
}

export function decodeDerivedIds(owners: readonly string[], saved: DerivedIds, what: string, lazy?: false, reference?: Reference): (string | undefined)[];
/**
 * Lazy form: `ids` holds only the other ids; row i's id is `<owner>:<times[i]>` where times[i] is
 * not NaN, for the caller to build when it needs it.
 */
export function decodeDerivedIds(owners: readonly string[], saved: DerivedIds, what: string, lazy: true, reference?: Reference): { ids: (string | undefined)[]; times: Float64Array };
export function decodeDerivedIds(
  owners: readonly string[],
  saved: DerivedIds,
  what: string,
  lazy = false,
  reference?: Reference,
): (string | undefined)[] | { ids: (string | undefined)[]; times: Float64Array } {
  const times = decodeColumn(saved.times, what, reference);
  if (times.length !== owners.length) throw new Error(`${what}: ${times.length} ids for ${owners.length} rows`);
  // Each other id goes to its row: a row past the owners would lengthen the ids, one id short shift the rest.
  const { otherRows, otherIds } = saved;
  if (!Array.isArray(otherRows) || !Array.isArray(otherIds)) throw new Error(`${what}: other ids or their rows not a list`);
  if (otherIds.length !== otherRows.length) throw new Error(`${what}: ${otherIds.length} other ids for ${otherRows.length} other rows`);
  for (let k = 0; k < otherRows.length; k++) {
    const row = otherRows[k]!;
    if (!(Number.isInteger(row) && row >= 0 && row < owners.length)) throw new Error(`${what}: row ${row} out of range`);
    if (otherIds[k] !== null && typeof otherIds[k] !== 'string') throw new Error(`${what}: other id at ${k} not a string or null`);
  }
  if (lazy) {
    const ids: (string | undefined)[] = [];
    for (let k = 0; k < saved.otherRows.length; k++) {
      const row = saved.otherRows[k]!;
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

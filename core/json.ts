/**
 * The JSON encoding of records, shared by every sink that writes JSON (file, stdout, Kafka), so a
 * record reads the same wherever it lands.
 */
import type { ClickEvent, FeatureVector, Prediction } from './events.js';
import { setOwnField } from './fields.js';

/** True when every own enumerable string key is a canonical event field (for-in skips the symbol-keyed origin). */
function onlyCanonicalFields(event: object): boolean {
  for (const key in event) {
    switch (key) {
      case 'kind':
      case 'userId':
      case 'time':
      case 'type':
      case 'sessionId':
      case 'itemId':
      case 'category':
      case 'price':
        break;
      default:
        return false;
    }
  }
  return true;
}

const optionalString = (value: unknown): boolean => value === undefined || typeof value === 'string';

/**
 * A canonical event with only its canonical fields, of the expected types. Anything else
 * (attributes, features, fields other operators added, values of unexpected types) takes the
 * generic path, so nothing is ever dropped or written differently.
 */
function isCanonicalEvent(record: object): record is ClickEvent {
  const event = record as ClickEvent;
  if (event.kind !== 'event' || typeof event.userId !== 'string' || typeof event.type !== 'string' || !Number.isFinite(event.time)) return false;
  if (!optionalString(event.sessionId) || !optionalString(event.itemId) || !optionalString(event.category)) return false;
  if (event.price !== undefined && !Number.isFinite(event.price)) return false;
  return onlyCanonicalFields(event);
}

/** The fields of a prediction as the models build it, in that order (JSON keeps insertion order). */
const PREDICTION_KEYS = ['kind', 'id', 'model', 'modelVersion', 'task', 'userId', 'time', 'score', 'sessionId'];

/**
 * A prediction with exactly the fields of {@link Prediction}, in the order the models build them,
 * of the expected types. Anything else takes the generic path.
 */
function isCanonicalPrediction(record: object): record is Prediction {
  const p = record as Prediction;
  if (p.kind !== 'prediction' || typeof p.id !== 'string' || typeof p.model !== 'string' || typeof p.modelVersion !== 'string') return false;
  if (typeof p.task !== 'string' || typeof p.userId !== 'string' || !Number.isFinite(p.time) || !Number.isFinite(p.score) || !optionalString(p.sessionId)) return false;
  let i = 0;
  for (const key in record) if (key !== PREDICTION_KEYS[i++]) return false;
  return i >= 8;
}

/** {@link writeRecordJson}: the record is not a canonical event; encode it with {@link recordToJson}. */
export const NOT_CANONICAL = -1;
/** {@link writeRecordJson}: the target has too little room after `at`; nothing was written. */
export const NO_ROOM = -2;

/**
 * A Buffer and a DataView over the same bytes, what {@link writeRecordJson} writes into: the
 * DataView stores the constant parts of the JSON four bytes at a time (a quarter of the stores).
 */
export class JsonBuffer {
  readonly bytes: Buffer;
  readonly view: DataView;

  constructor(size: number) {
    this.bytes = Buffer.allocUnsafeSlow(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
  }
}

/** A constant as little-endian 32-bit words, zero-padded: writing it may touch up to 3 bytes past its end, which what follows overwrites. */
interface Constant {
  words: Int32Array;
  length: number;
}

function constant(text: string): Constant {
  const padded = Buffer.alloc(Math.ceil(text.length / 4) * 4);
  padded.write(text, 'latin1');
  const words = new Int32Array(padded.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = padded.readInt32LE(4 * i);
  return { words, length: text.length };
}

const KIND_USER = constant('{"kind":"event","userId":');
const TIME = constant(',"time":');
const TYPE = constant(',"type":');
const SESSION = constant(',"sessionId":');
const ITEM = constant(',"itemId":');
const CATEGORY = constant(',"category":');
const PRICE = constant(',"price":');
const PREDICTION_ID = constant('{"kind":"prediction","id":');
const MODEL = constant(',"model":');
const MODEL_VERSION = constant(',"modelVersion":');
const TASK = constant(',"task":');
const USER = constant(',"userId":');
const SCORE = constant(',"score":');
/**
 * Room a record needs besides 6 bytes per string character: every constant of its kind (with their
 * padding; a prediction's add up to 112), two numbers (at most 25 characters each), the quotes of
 * its strings and the closing brace.
 */
const FIXED_BYTES = 192;

function putConstant(out: JsonBuffer, at: number, { words, length }: Constant): number {
  for (let i = 0; i < words.length; i++) out.view.setInt32(at + 4 * i, words[i]!, true);
  return at + length;
}

/** A JSON string literal. Printable ASCII without `"` or `\` is copied byte by byte; anything else goes through JSON.stringify. */
function putString(out: Buffer, at: number, value: string): number {
  out[at] = 34;
  let j = at + 1;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 32 || c > 126 || c === 34 || c === 92) return at + out.write(JSON.stringify(value), at, 'utf8');
    out[j++] = c;
  }
  out[j] = 34;
  return j + 1;
}

const POWERS_OF_TEN = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/** Decimal digits of an integer in [0, 1e9), in int32 arithmetic (a double `%` is a slow library call). */
function putSmallDigits(out: Buffer, at: number, value: number): number {
  let digits = 1;
  while (digits < 9 && value >= POWERS_OF_TEN[digits]!) digits++;
  for (let i = at + digits - 1, rest = value | 0; i >= at; i--) {
    const quotient = (rest / 10) | 0;
    out[i] = 48 + rest - quotient * 10;
    rest = quotient;
  }
  return at + digits;
}

/** Decimal digits of a non-negative safe integer (epoch milliseconds need two int32 halves). */
function putDigits(out: Buffer, at: number, value: number): number {
  if (value < 1e9) return putSmallDigits(out, at, value);
  const high = Math.floor(value / 1e9);
  at = putDigits(out, at, high);
  for (let i = at + 8, rest = (value - high * 1e9) | 0; i >= at; i--) {
    const quotient = (rest / 10) | 0;
    out[i] = 48 + rest - quotient * 10;
    rest = quotient;
  }
  return at + 9;
}

/**
 * A finite number exactly as JSON.stringify writes it. Integers, and values with at most two
 * decimals (prices) below 1e9, are written digit by digit without allocating a string: when
 * `cents / 100` is the very double `value`, no shorter decimal rounds to it (neighbours differ by
 * 0.01, doubles there by less than 1e-6), so those digits are its shortest round-trip form, which
 * is what Number#toString prints. Everything else uses the number's own string.
 */
function putNumber(out: Buffer, at: number, value: number): number {
  const magnitude = Math.abs(value);
  if (value < 0) out[at++] = 45;
  if (magnitude <= Number.MAX_SAFE_INTEGER && Math.floor(magnitude) === magnitude) return putDigits(out, at, magnitude);
  if (magnitude < 1e9) {
    const cents = Math.round(magnitude * 100);
    if (cents / 100 === magnitude) {
      const whole = Math.floor(magnitude);
      at = putDigits(out, at, whole);
      const fraction = (cents - whole * 100) | 0;
      const tenths = (fraction / 10) | 0;
      out[at++] = 46;
      out[at++] = 48 + tenths;
      if (fraction !== tenths * 10) out[at++] = 48 + fraction - tenths * 10;
      return at;
    }
  }
  const text = String(magnitude);
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/**
 * Writes the JSON of `record` into `target` from `at` when it is a canonical event or prediction,
 * byte for byte what {@link recordToJson} returns (UTF-8), without building strings: sinks run this
 * once per record. Returns the end of what was written, {@link NOT_CANONICAL} or {@link NO_ROOM}.
 */
export function writeRecordJson(record: object, target: JsonBuffer, at: number): number {
  if (!isCanonicalEvent(record)) return isCanonicalPrediction(record) ? writePrediction(record, target, at) : NOT_CANONICAL;
  const { userId, type, sessionId, itemId, category, price } = record;
  // Worst case per string character: a 6-byte \u escape (a UTF-8 character takes at most 3 per UTF-16 unit).
  const strings = userId.length + type.length + (sessionId?.length ?? 0) + (itemId?.length ?? 0) + (category?.length ?? 0);
  const out = target.bytes;
  if (at + FIXED_BYTES + 6 * strings > out.length) return NO_ROOM;
  at = putConstant(target, at, KIND_USER);
  at = putString(out, at, userId);
  at = putConstant(target, at, TIME);
  at = putNumber(out, at, record.time);
  at = putConstant(target, at, TYPE);
  at = putString(out, at, type);
  if (sessionId !== undefined) at = putString(out, putConstant(target, at, SESSION), sessionId);
  if (itemId !== undefined) at = putString(out, putConstant(target, at, ITEM), itemId);
  if (category !== undefined) at = putString(out, putConstant(target, at, CATEGORY), category);
  if (price !== undefined) at = putNumber(out, putConstant(target, at, PRICE), price);
  out[at] = 125;
  return at + 1;
}

function writePrediction(record: Prediction, target: JsonBuffer, at: number): number {
  const { id, model, modelVersion, task, userId, sessionId } = record;
  const strings = id.length + model.length + modelVersion.length + task.length + userId.length + (sessionId?.length ?? 0);
  const out = target.bytes;
  if (at + FIXED_BYTES + 6 * strings > out.length) return NO_ROOM;
  at = putString(out, putConstant(target, at, PREDICTION_ID), id);
  at = putString(out, putConstant(target, at, MODEL), model);
  at = putString(out, putConstant(target, at, MODEL_VERSION), modelVersion);
  at = putString(out, putConstant(target, at, TASK), task);
  at = putString(out, putConstant(target, at, USER), userId);
  at = putNumber(out, putConstant(target, at, TIME), record.time);
  at = putNumber(out, putConstant(target, at, SCORE), record.score);
  if (sessionId !== undefined) at = putString(out, putConstant(target, at, SESSION), sessionId);
  out[at] = 125;
  return at + 1;
}

/** Scratch space for recordToJson's canonical events and recordToJsonBytes; grown when one does not fit. */
let scratch = new JsonBuffer(4096);

function growScratch(bytes: number): void {
  let size = scratch.bytes.length * 2;
  while (size < bytes) size *= 2;
  scratch = new JsonBuffer(size);
}

/** {@link writeRecordJson} into the scratch space from its start, grown until the record fits. */
function writeToScratch(record: object): number {
  let end = writeRecordJson(record, scratch, 0);
  while (end === NO_ROOM) {
    growScratch(0);
    end = writeRecordJson(record, scratch, 0);
  }
  return end;
}

/**
 * JSON.stringify, with a feature vector written as `{name: value}`: records the writer does not take. A
 * dead letter's `raw` is the record a stage or a sink rejected, an event with its features maybe: its
 * vector is written so too (as JSON.stringify writes a Float32Array, `{"0": 1, ...}` without the
 * names, the dead letter could not be read or replayed as the event it was).
 */
function genericJson(record: object): string {
  if ((record as { kind?: unknown }).kind === 'dead_letter') {
    const raw = (record as { raw?: unknown }).raw;
    const named = typeof raw === 'object' && raw !== null ? withNamedFeatures(raw) : raw;
    if (named !== raw) return JSON.stringify({ ...record, raw: named });
  }
  return JSON.stringify(withNamedFeatures(record));
}

/** `record` with its feature vector as `{name: value}`; `record` itself when it has none. */
function withNamedFeatures(record: object): object {
  const features = (record as { features?: FeatureVector }).features;
  if (features === undefined || features === null || !(features.values instanceof Float32Array)) return record;
  const named: Record<string, number> = {};
  // setOwnField: a feature a plugin named __proto__ would otherwise set the object's prototype, and be lost.
  for (let i = 0; i < features.names.length; i++) setOwnField(named, features.names[i]!, features.values[i]!);
  return { ...record, features: named };
}

/** JSON for one record. A feature vector becomes `{name: value}` so readers never need the schema. */
export function recordToJson(record: object): string {
  // A prediction: V8's JSON.stringify makes its string faster than the writer plus a UTF-8 decode
  // (the writer wins only where bytes are wanted: recordToJsonBytes, the file sinks).
  if ((record as { kind?: unknown }).kind === 'prediction') return genericJson(record);
  const end = writeToScratch(record);
  return end === NOT_CANONICAL ? genericJson(record) : scratch.bytes.toString('utf8', 0, end);
}

/**
 * {@link recordToJson}'s UTF-8 bytes, in a scratch buffer that the next call overwrites: for a
 * writer that copies them at once (Kafka's produce does). Canonical events and predictions are
 * written there directly, with no string in between.
 */
export function recordToJsonBytes(record: object): Buffer {
  let end = writeToScratch(record);
  if (end === NOT_CANONICAL) {
    const text = genericJson(record);
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (text.length * 3 > scratch.bytes.length) growScratch(text.length * 3);
    end = scratch.bytes.write(text, 0, 'utf8');
  }
  return scratch.bytes.subarray(0, end);
}

/**
 * Where `value` holds something JSON.stringify drops or changes, and what; undefined where nothing.
 * Always: a Map or a Set (written as {}), a typed array (an object of indices), a Date (a string), a
 * function, a symbol, a bigint. `strict` also: a number that is not finite (null) and undefined in an
 * array (null), which a state may mean (and read null back as). `itemsEach` bounds the walk to the first
 * so many items of each list and entries of each object (a state's lists hold one kind of value): the
 * runtime checks a large state in one turn of the event loop.
 */
export function jsonProblem(value: unknown, path: string, options: { strict: boolean; itemsEach?: number }): string | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return !options.strict || Number.isFinite(value) ? undefined : `${path} is ${value} (written as null)`;
  if (typeof value !== 'object') return `${path} is a ${typeof value}`;
  if (value instanceof Map || value instanceof Set) return `${path} is a ${value instanceof Map ? 'Map' : 'Set'} (written as {}): use [...entries] or an object`;
  if (ArrayBuffer.isView(value)) return `${path} is a ${value.constructor.name} (written as an object of indices): use Array.from`;
  if (value instanceof Date) return `${path} is a Date (read back as a string): use getTime()`;
  // What JSON.stringify writes of it (a Buffer's, a user's own class's).
  const toJson = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJson === 'function') return jsonProblem((toJson as () => unknown).call(value), path, options);
  if (Array.isArray(value)) {
    const items = Math.min(value.length, options.itemsEach ?? Infinity);
    for (let i = 0; i < items; i++) {
      const item: unknown = value[i];
      const problem = item === undefined ? (options.strict ? `${path}[${i}] is undefined (written as null)` : undefined) : jsonProblem(item, `${path}[${i}]`, options);
      if (problem) return problem;
    }
    return undefined;
  }
  let entries = options.itemsEach ?? Infinity;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    if (entries-- <= 0) break;
    const child: unknown = (value as Record<string, unknown>)[key];
    if (child === undefined) continue; // dropped, and absent reads back as undefined
    const problem = jsonProblem(child, `${path}.${key}`, options);
    if (problem) return problem;
  }
  return undefined;
}

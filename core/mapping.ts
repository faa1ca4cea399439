/**
 * Raw record -> canonical event, through config alone: a field mapping, a value mapping for event
 * types, and a timestamp format. Every source plugin (file, stdin, Kafka, a user's) uses this one
 * mapper, so every source accepts and rejects records the same way.
 */
import { ORIGIN, type ClickEvent, type Origin } from './events.js';

export interface MappingConfig {
  fields?: {
    user_id?: string;
    session_id?: string;
    time?: string;
    type?: string;
    item_id?: string;
    category?: string;
    price?: string;
  };
  event_types?: Record<string, string>;
  time_format?: string;
  attributes?: string[];
  /** Raw field holding an object of attributes, taken whole (`attrs` in what a `file` sink wrote). */
  attributes_field?: string;
  default_type?: string;
}

/**
 * Reads canonical events as JSON (what a `file` sink writes): canonical field names, epoch milliseconds,
 * attributes from `attrs`. The mapping a backtest gives the file that replaces a source without a
 * mapping of its own (synthetic, or a user's source that emits canonical events, attributes included).
 */
export const CANONICAL_EVENT_MAPPING: Readonly<MappingConfig> = Object.freeze({
  fields: Object.freeze({ user_id: 'userId', session_id: 'sessionId', item_id: 'itemId' }),
  time_format: 'epoch_ms',
  attributes_field: 'attrs',
});

/** A mapped event, or the reason the raw record cannot be one. */
export type MapResult = ClickEvent | { rejected: string };

export function isRejected(result: MapResult): result is { rejected: string } {
  return (result as { rejected?: string }).rejected !== undefined;
}

/** Parses a raw timestamp into epoch milliseconds; NaN when it cannot. */
export type TimeParser = (value: unknown) => number;

/** Why `format` is not a time format `createTimeParser` reads; undefined when it is one. */
export function timeFormatProblem(format: string): string | undefined {
  try {
    createTimeParser(format);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

export function createTimeParser(format = 'iso8601'): TimeParser {
  switch (format) {
    case 'iso8601':
      return parseIso8601;
    case 'epoch_ms':
      return (value) => toNumber(value);
    case 'epoch_s':
      return (value) => toNumber(value) * 1000;
    default:
      return compilePattern(format);
  }
}

/**
 * Date.parse of an ISO 8601 timestamp. The form producers write most, `YYYY-MM-DDTHH:mm:ss[.sss]Z`,
 * is read by position (Date.parse's tokenizer was about 0.25 µs per event in the Kafka source); any
 * other form, or a field out of the ranges below, goes to Date.parse itself, so the result is always
 * what Date.parse gives.
 */
function parseIso8601(value: unknown): number {
  if (typeof value !== 'string') return NaN;
  const n = value.length;
  if (
    (n === 20 || (n === 24 && value.charCodeAt(19) === 46)) /* . */ &&
    value.charCodeAt(4) === 45 /* - */ &&
    value.charCodeAt(7) === 45 &&
    value.charCodeAt(10) === 84 /* T */ &&
    value.charCodeAt(13) === 58 /* : */ &&
    value.charCodeAt(16) === 58 &&
    value.charCodeAt(n - 1) === 90 /* Z */
  ) {
    const year = digitsAt(value, 0, 4);
    const month = digitsAt(value, 5, 2);
    const day = digitsAt(value, 8, 2);
    const hour = digitsAt(value, 11, 2);
    const minute = digitsAt(value, 14, 2);
    const second = digitsAt(value, 17, 2);
    const ms = n === 24 ? digitsAt(value, 20, 3) : 0;
    // Years below 100 and 24:00:00 are rare: left to Date.parse. A day past its month's end rolls
    // over here as in V8's Date.parse (2024-02-30 is March 1st).
    if (year >= 100 && month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 59 && ms >= 0) {
      return (((daysFromCivil(year, month) + day - 1) * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms;
    }
  }
  return n >= 10 && value.charCodeAt(0) >= 48 && value.charCodeAt(0) <= 57 ? Date.parse(value) : NaN;
}

/**
 * Days from 1970-01-01 to the first of `month` (1-12) of `year` in the proleptic Gregorian calendar
 * (Hinnant's days_from_civil), in integer arithmetic: what Date.UTC computes, without its call.
 */
function daysFromCivil(year: number, month: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5);
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** The decimal number of `width` digits at `at`; NaN if any is not a digit. */
function digitsAt(text: string, at: number, width: number): number {
  let value = 0;
  for (let k = at; k < at + width; k++) {
    const digit = text.charCodeAt(k) - 48;
    if (digit < 0 || digit > 9) return NaN;
    value = value * 10 + digit;
  }
  return value;
}

function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return NaN;
}

const fieldTokens = ['yyyy', 'SSS', 'MM', 'dd', 'HH', 'mm', 'ss'] as const;
type FieldToken = (typeof fieldTokens)[number];

/**
 * A fixed-width pattern such as `yyyy-MM-dd HH:mm:ss 'UTC'`, read as UTC. Fixed widths let the parser
 * read digits by position instead of through a regular expression: this runs once per event.
 */
export function compilePattern(pattern: string): TimeParser {
  const fields: { token: FieldToken; at: number }[] = [];
  const literals: { text: string; at: number }[] = [];
  let length = 0;
  for (let i = 0; i < pattern.length; ) {
    if (pattern[i] === "'") {
      const end = pattern.indexOf("'", i + 1);
      if (end < 0) throw new RangeError(`time_format '${pattern}': unclosed quote`);
      const text = pattern.slice(i + 1, end);
      literals.push({ text, at: length });
      length += text.length;
      i = end + 1;
      continue;
    }
    const token = fieldTokens.find((candidate) => pattern.startsWith(candidate, i));
    if (token) {
      fields.push({ token, at: length });
      length += token.length;
      i += token.length;
      continue;
    }
    if (/[A-Za-z]/.test(pattern[i]!)) throw new RangeError(`time_format '${pattern}': unknown letter '${pattern[i]}' (quote literal text: 'UTC')`);
    literals.push({ text: pattern[i]!, at: length });
    length += 1;
    i += 1;
  }
  if (!fields.some((f) => f.token === 'yyyy')) throw new RangeError(`time_format '${pattern}': needs at least yyyy`);
  return (value) => {
    if (typeof value !== 'string' || value.length !== length) return NaN;
    for (const literal of literals) if (!value.startsWith(literal.text, literal.at)) return NaN;
    const parts = { yyyy: 1970, MM: 1, dd: 1, HH: 0, mm: 0, ss: 0, SSS: 0 };
    for (const field of fields) parts[field.token] = digitsAt(value, field.at, field.token.length);
    if (parts.MM < 1 || parts.MM > 12 || parts.dd < 1 || parts.dd > 31 || parts.HH > 23 || parts.mm > 59 || parts.ss > 60) return NaN;
    return Date.UTC(parts.yyyy, parts.MM - 1, parts.dd, parts.HH, parts.mm, parts.ss, parts.SSS);
  };
}

/**
 * Builds the mapper once per source. The returned function runs per record: it allocates only the
 * event it returns. It takes any parsed value (what `JSON.parse` gave): one that is not an object is
 * a rejection, as every other unusable record is.
 */
export function createEventMapper(config: MappingConfig = {}): (raw: unknown, origin?: Origin) => MapResult {
  const fields = config.fields ?? {};
  const userField = fields.user_id ?? 'user_id';
  const timeField = fields.time ?? 'time';
  const typeField = fields.type ?? 'type';
  const sessionField = fields.session_id ?? 'session_id';
  const itemField = fields.item_id ?? 'item_id';
  const categoryField = fields.category ?? 'category';
  const priceField = fields.price ?? 'price';
  const eventTypes = new Map(Object.entries(config.event_types ?? {}));
  const parseTime = createTimeParser(config.time_format ?? 'iso8601');
  const attributes = config.attributes ?? [];
  const attributesField = config.attributes_field;
  const defaultType = config.default_type;

  return (input, origin) => {
    // A parsed JSON line may be any value: `null` or `42` is a rejection, not a TypeError that fails the source.
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      return { rejected: `expected a JSON object, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}` };
    }
    const raw = input as Record<string, unknown>;
    const user = idValue(raw[userField]);
    if (user === undefined) return { rejected: `${userField}: missing user id` };
    if (user === null) return { rejected: `${userField}: expected a string or number, got ${describe(raw[userField])}` };
    const rawTime = raw[timeField];
    if (rawTime === undefined || rawTime === null || rawTime === '') return { rejected: `${timeField}: missing timestamp` };
    const time = parseTime(rawTime);
    if (!Number.isFinite(time)) return { rejected: `${timeField}: cannot parse ${describe(rawTime)} as ${config.time_format ?? 'iso8601'}` };
    let type = raw[typeField];
    if (type === undefined || type === null || type === '') {
      if (defaultType === undefined) return { rejected: `${typeField}: missing event type` };
      type = defaultType;
    } else if (typeof type !== 'string') {
      return { rejected: `${typeField}: expected a string, got ${describe(type)}` };
    }
    const event: ClickEvent = { kind: 'event', userId: user, time, type: eventTypes.get(type as string) ?? (type as string) };
    const session = idValue(raw[sessionField]);
    if (session === null) return { rejected: `${sessionField}: expected a string or number, got ${describe(raw[sessionField])}` };
    if (session !== undefined) event.sessionId = session;
    const item = idValue(raw[itemField]);
    if (item === null) return { rejected: `${itemField}: expected a string or number, got ${describe(raw[itemField])}` };
    if (item !== undefined) event.itemId = item;
    const category = idValue(raw[categoryField]);
    if (category === null) return { rejected: `${categoryField}: expected a string or number, got ${describe(raw[categoryField])}` };
    if (category !== undefined) event.category = category;
    const rawPrice = raw[priceField];
    if (rawPrice !== undefined && rawPrice !== null && rawPrice !== '') {
      const price = typeof rawPrice === 'number' ? rawPrice : typeof rawPrice === 'string' ? Number(rawPrice) : NaN;
      if (!Number.isFinite(price)) return { rejected: `${priceField}: expected a number, got ${describe(rawPrice)}` };
      // A negative price is bad input (a refund or a sign error upstream), not a price: the features
      // (price statistics, cart value, monetary value) would take it as one.
      if (price < 0) return { rejected: `${priceField}: expected a number of 0 or more, got ${describe(rawPrice)}` };
      event.price = price;
    }
    let whole: Record<string, unknown> | undefined;
    if (attributesField !== undefined) {
      const value = raw[attributesField];
      if (value !== undefined && value !== null) {
        if (typeof value !== 'object' || Array.isArray(value)) return { rejected: `${attributesField}: expected an object of attributes, got ${describe(value)}` };
        // The same bound as for each listed attribute (see below), one level down.
        if (nestedDeeperThan(value, MAX_ATTRIBUTE_DEPTH + 1)) return { rejected: `${attributesField}: attribute nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels` };
        whole = value as Record<string, unknown>;
      }
    }
    if (attributes.length === 0) {
      if (whole) event.attrs = whole;
    } else {
      // Spread (own data properties): an attribute named `__proto__` stays an attribute.
      const attrs: Record<string, unknown> = whole ? { ...whole } : {};
      for (const name of attributes) {
        const value = raw[name];
        if (value === undefined || value === '') continue;
        // Every writer of events serialises attributes recursively: a value nested thousands deep
        // (valid JSON) would overflow the stack there, far from the input that carried it.
        if (typeof value === 'object' && value !== null && nestedDeeperThan(value, MAX_ATTRIBUTE_DEPTH)) return { rejected: `${name}: attribute nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels` };
        attrs[name] = value;
      }
      event.attrs = attrs;
    }
    if (origin) event[ORIGIN] = origin;
    return event;
  };
}

/** A string id, `undefined` when absent, `null` when present but of the wrong type. */
function idValue(value: unknown): string | undefined | null {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

/** Deepest nesting of objects and arrays an attribute value may have. */
export const MAX_ATTRIBUTE_DEPTH = 64;

/** Whether `value` holds objects or arrays more than `limit` levels deep (looks no deeper than that). */
function nestedDeeperThan(value: object, limit: number): boolean {
  if (limit === 0) return true;
  for (const child of Array.isArray(value) ? value : Object.values(value)) {
    if (typeof child === 'object' && child !== null && nestedDeeperThan(child, limit - 1)) return true;
  }
  return false;
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value); // JSON.stringify writes Infinity (1e400 in JSON) as null
  if (typeof value === 'object' && value !== null && nestedDeeperThan(value, MAX_ATTRIBUTE_DEPTH)) return `${Array.isArray(value) ? 'an array' : 'an object'} nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels`;
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

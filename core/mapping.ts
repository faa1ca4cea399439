/**
 * Raw record -> canonical event, through config alone: a field mapping, a value mapping for event
 * types, and a timestamp format. Every source plugin (file, stdin, Kafka, a user's) uses this one
 * mapper, so every source accepts and rejects records the same way.
 */
import type { Logger } from 'pino';
import type { Counter, Metrics } from './plugin.js';
import { distance } from 'fastest-levenshtein';
import { KNOWN_EVENT_TYPES, ORIGIN, type ClickEvent, type Origin } from './events.js';
import { comparable, fieldPath, fieldPathProblem, fieldPathStop, isInheritedName, ownValue, setOwnField, similarFieldPath, valueAtPath, type FieldPath } from './fields.js';
import { daysFromCivil, isUtcZone, localTimeToUtc, zoneNameWarning, type LocalToUtc } from './time-zone.js';
import { valueText } from './value-text.js';

export interface MappingConfig {
  fields?: {
    /** A field, or fields read in turn where the ones before are absent, null or empty (`[userId, anonymousId]`). */
    user_id?: string | readonly string[];
    /** As user_id: a field, or fields read in turn. */
    session_id?: string | readonly string[];
    time?: string;
    type?: string;
    item_id?: string;
    category?: string;
    price?: string;
  };
  event_types?: Record<string, string>;
  time_format?: string;
  /**
   * IANA zone (`Europe/Berlin`) of the times written without an offset (iso8601 without one, and patterns);
   * default UTC. A time with `Z` or an offset (a pattern's XXX, XX, xxx, xx, Z included), and epoch times,
   * are instants and keep them.
   */
  time_zone?: string;
  attributes?: string[];
  /** Raw field holding an object of attributes, taken whole (`attrs` in what a `file` sink wrote). */
  attributes_field?: string;
  default_type?: string;
  /**
   * Canonical types (after `event_types`) this source does not take: its records of them are counted as
   * filtered, neither events nor dead letters. The browser's `purchase` where the order service's orders come
   * on another source, so that no purchase is counted twice.
   */
  skip_types?: readonly string[];
  /** How a price in text writes its decimals: `.` (12.50, the default) or `,` (12,50; 1.234,56). */
  decimal_separator?: '.' | ',';
  /**
   * What every price is divided by, a power of ten (PRICE_DIVISORS): 100 for prices in cents (minor
   * units, as Stripe writes them), 1000000 for micros. Default: prices as written.
   */
  price_divisor?: number;
}

/** The `price_divisor`s a mapping takes: powers of ten, each exactly a double, so that a division by one is exact (dividedPrice). */
export const PRICE_DIVISORS: readonly number[] = Object.freeze([1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000]);

/**
 * `price / divisor` (a power of ten) as the decimal text of `price` with its point moved reads: 1999 cents
 * are exactly the number `19.99` is (1999 * 0.01 is 19.990000000000002). An integer (the cents of
 * Stripe, the micros of Google Ads) is exact, and so is its quotient (IEEE division is correctly rounded,
 * as parsing is); a fraction (`1999.5` cents) is moved by its shortest decimal text (String), rounded once.
 */
export function dividedPrice(price: number, divisor: number): number {
  if (Number.isInteger(price)) return price / divisor;
  const text = String(price); // `1999.5`, `1.5e-7`: the shortest text that reads as this number
  const exponent = text.indexOf('e');
  const decimals = Math.round(Math.log10(divisor));
  return exponent < 0 ? Number(`${text}e-${decimals}`) : Number(`${text.slice(0, exponent)}e${Number(text.slice(exponent + 1)) - decimals}`);
}

/**
 * Reads canonical events as JSON (what a `file` sink writes): canonical field names, epoch milliseconds,
 * attributes from `attrs`. What `mapping: canonical` names (mappingOf): a pipeline reading another's
 * events, and a backtest's file replacing a source without a mapping of its own (synthetic, or a user's
 * source that emits canonical events, attributes included).
 */
const CANONICAL_FIELDS = { user_id: 'userId', session_id: 'sessionId', item_id: 'itemId' } as const;
export const CANONICAL_EVENT_MAPPING: Readonly<MappingConfig> = Object.freeze({
  fields: Object.freeze({ ...CANONICAL_FIELDS }),
  time_format: 'epoch_ms',
  attributes_field: 'attrs',
});

/**
 * What a source's `mapping` holds: a mapping, or `canonical`, which names CANONICAL_EVENT_MAPPING, so
 * that reading back what a `file` sink wrote (a pipeline chained to another through a file, a backtest's
 * input) takes one word and reads as the backtest reads it.
 */
export type MappingSetting = MappingConfig | 'canonical';

/** The mapping a source's `mapping` setting stands for: CANONICAL_EVENT_MAPPING for `canonical`. */
export function mappingOf(setting: MappingSetting | undefined): MappingConfig | undefined {
  return setting === 'canonical' ? CANONICAL_EVENT_MAPPING : setting;
}

/**
 * Whether `config` reads canonical events as CANONICAL_EVENT_MAPPING does: its names, the others at
 * their defaults (as written out in a pipeline, the schema's defaults filled in, as the docs said to before `canonical`), nothing more.
 */
function isCanonicalMapping(config: MappingConfig): boolean {
  const fields = config.fields ?? {};
  const canonical = CANONICAL_FIELDS;
  const as = (field: keyof NonNullable<MappingConfig['fields']>, name: string): boolean => (fields[field] ?? field) === name;
  return (
    as('user_id', canonical.user_id) &&
    as('session_id', canonical.session_id) &&
    as('item_id', canonical.item_id) &&
    as('time', 'time') &&
    as('type', 'type') &&
    as('category', 'category') &&
    as('price', 'price') &&
    config.time_format === CANONICAL_EVENT_MAPPING.time_format &&
    config.attributes_field === CANONICAL_EVENT_MAPPING.attributes_field &&
    (config.attributes ?? []).length === 0 &&
    (config.skip_types ?? []).length === 0 &&
    Object.keys(config.event_types ?? {}).length === 0 &&
    config.default_type === undefined
  );
}

/**
 * What a mapping that reads says that is most likely not what was meant, by field (`time_zone`): a
 * time_zone that is an abbreviation (`EST` is UTC-05:00 all year: zoneNameWarning), or one that
 * applies to no time, as the format reads instants (timeFormatReadsInstants: an epoch, or a pattern that
 * reads an offset with each). `validate` and `run` say them as warnings for every source whose config
 * has a mapping (loadPipeline); the source runs as configured.
 */
export function mappingWarnings(config: MappingConfig): { field: string; message: string }[] {
  const warnings: { field: string; message: string }[] = [];
  // An event type mapped to a misspelt known type (`purchase: purchased`, `pv: View`) is a type of its own
  // to the run, which names as such only what event_types does not: it would go unsaid, the intent model
  // learning from sessions none of which bought. A type mapped to itself is kept on purpose.
  for (const [raw, mapped] of Object.entries(config.event_types ?? {})) {
    if (typeof mapped !== 'string' || mapped === raw || (KNOWN_EVENT_TYPES as readonly string[]).includes(mapped)) continue;
    const meant = nearestKnownType(mapped);
    if (meant === undefined) continue;
    warnings.push({
      field: `event_types[${JSON.stringify(raw)}]`,
      message: `event_types maps '${raw}' to '${mapped}', which is no known type (${KNOWN_EVENT_TYPES.join(', ')}): did you mean '${meant}'? The feature operators count such events only as events, and no model takes one for a purchase`,
    });
  }
  // A skipped type no record can have (`purchases`) skips nothing: the purchases it was to drop would count twice.
  const mappedTypes = new Set<string>([...(KNOWN_EVENT_TYPES as readonly string[]), ...Object.values(config.event_types ?? {})]);
  if (typeof config.default_type === 'string') mappedTypes.add(config.event_types?.[config.default_type] ?? config.default_type);
  for (const [index, skipped] of (config.skip_types ?? []).entries()) {
    if (typeof skipped !== 'string' || mappedTypes.has(skipped)) continue;
    const meant = nearestKnownType(skipped);
    if (meant === undefined) continue;
    warnings.push({ field: `skip_types[${index}]`, message: `skip_types names '${skipped}', which is no known type (${KNOWN_EVENT_TYPES.join(', ')}) and no type event_types maps to: did you mean '${meant}'? Types are compared after event_types, exactly; as written it skips no '${meant}' event` });
  }
  const zone = config.time_zone;
  if (typeof zone !== 'string') return warnings;
  const abbreviation = zoneNameWarning(zone);
  if (abbreviation !== undefined) warnings.push({ field: 'time_zone', message: abbreviation });
  const format = config.time_format;
  if (!isUtcZone(zone) && typeof format === 'string' && timeFormatReadsInstants(format)) {
    const how =
      isEpochFormat(format)
        ? `reads instants (${{ epoch_s: 'seconds', epoch_ms: 'milliseconds', epoch_us: 'microseconds' }[format as 'epoch_s' | 'epoch_ms' | 'epoch_us']} since 1970-01-01 UTC); remove time_zone`
        : `reads an offset with each, and so the instant; remove time_zone, or the offset letter where the times are to be read in ${zone}`;
    warnings.push({ field: 'time_zone', message: `time_zone ${zone} applies to no time: time_format '${format}' ${how}` });
  }
  return warnings;
}

/**
 * The known event type `name` most likely means: the same letters and digits in any case (`View`,
 * `remove-from-cart`), or one or two edits away (`purchased`, `veiw`; one for a name of three letters or
 * fewer: `new` is no `view`); undefined where none is that near.
 */
function nearestKnownType(name: string): string | undefined {
  const loose = comparable(name);
  const lower = name.toLowerCase();
  const known = KNOWN_EVENT_TYPES as readonly string[];
  return known.find((type) => comparable(type) === loose) ?? known.find((type) => distance(lower, type) <= (name.length <= 3 ? 1 : 2));
}

/**
 * Whether every time `format` (a mapping's `time_format`) reads is an instant of its own, which the
 * mapping's `time_zone` applies to none of: an epoch (`epoch_s`, `epoch_ms`, `epoch_us`), or a pattern with an
 * offset letter (XXX, XX, xxx, xx, Z: letters outside quotes that no other token has). Not `iso8601`,
 * whose times without an offset are read in the zone.
 */
export function timeFormatReadsInstants(format: string): boolean {
  if (isEpochFormat(format)) return true;
  if (format === 'iso8601') return false;
  return /[XxZ]/.test(format.replace(/'[^']*'?/g, ''));
}

/**
 * Why a raw record cannot be an event. `skipped`: a record of a type the mapping's `skip_types` names, to be
 * counted as filtered, not dead-lettered; a source that does not look at it dead-letters it with its reason,
 * so nothing is lost either way.
 */
export type MapRejection = { rejected: string; skipped?: true };

/** A mapped event, or the reason the raw record cannot be one. */
export type MapResult = ClickEvent | MapRejection;

export function isRejected(result: MapResult): result is MapRejection {
  return (result as { rejected?: string }).rejected !== undefined;
}

/** Whether a rejection is a record of a type the mapping skips (`skip_types`): filtered, not bad input. */
export function isSkipped(result: MapResult): result is { rejected: string; skipped: true } {
  return (result as { skipped?: true }).skipped === true;
}

/** A source's mapping (createEventMapper): raw records to events. */
export interface EventMapper {
  (raw: unknown, origin?: Origin): MapResult;
  /**
   * The event type a record names, as an event of it would have it (`event_types` mapped; `default_type` where it
   * names none), where that is text; undefined else, and for a record of a sink's other kinds. For a rejected
   * record, whatever else it lacks: one rejected before the runtime sees its type (an erasure request without a
   * user id) is then told for what it was (rejectionOf, Rejection.eventType).
   */
  typeOf(raw: unknown): string | undefined;
}

/** A mapping's rejection of `raw` as a source hands it to PluginContext.deadLetter: its reason, and the event type the record names (Rejection.eventType). */
export function rejectionOf(map: EventMapper, result: MapRejection, raw: unknown): { reason: string; eventType?: string } {
  const eventType = map.typeOf(raw);
  return eventType === undefined ? { reason: result.rejected } : { reason: result.rejected, eventType };
}

/** Parses a raw timestamp into epoch milliseconds; NaN when it cannot. */
export type TimeParser = (value: unknown) => number;

/** Called by a TimeParser with the UTC offset (minutes east, never 0) a time it read carried in its text. */
export type OffsetListener = (offsetMinutes: number) => void;

/** The epoch time formats: instants, which `time_zone` does not apply to. */
const EPOCH_FORMATS: readonly string[] = ['epoch_s', 'epoch_ms', 'epoch_us'];
const isEpochFormat = (format: string): boolean => EPOCH_FORMATS.includes(format);

/** Why `format` is not a time format `createTimeParser` reads; undefined when it is one. */
export function timeFormatProblem(format: string): string | undefined {
  try {
    createTimeParser(format);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * The parser of `format`. `timeZone` (an IANA name; default UTC) is where times without an offset were
 * written: localTimeToUtc. In UTC the parsers are those alone: the hot path pays nothing for zones.
 * `onOffset` is told the offset of each time read with one other than zero (createEventMapper's onTimeOffset).
 */
export function createTimeParser(format = 'iso8601', timeZone?: string, onOffset?: OffsetListener): TimeParser {
  if (!isUtcZone(timeZone)) {
    const toUtc = localTimeToUtc(timeZone!);
    if (format === 'iso8601') return (value) => (typeof value === 'string' ? parseIsoForms(value, toUtc, onOffset) : NaN);
    if (!isEpochFormat(format)) return compilePattern(format, toUtc, onOffset);
  }
  switch (format) {
    case 'iso8601':
      return onOffset === undefined ? parseIso8601 : (value) => parseIso8601(value, onOffset);
    case 'epoch_ms':
      return (value) => Math.floor(epochNumber(value));
    case 'epoch_s':
      return epochSeconds;
    case 'epoch_us':
      return epochMicros;
    default:
      if (/^epoch_/i.test(format)) throw new RangeError(`time_format '${format}': the epoch formats are ${EPOCH_FORMATS.join(', ')} (seconds, milliseconds, microseconds since 1970)`);
      return compilePattern(format, undefined, onOffset);
  }
}

/**
 * An epoch time, a number or decimal text as decimalNumber reads it, but NaN for text in exponent form
 * (`1.71e15`, `1.71E+15`): a spreadsheet writes a long number so, keeping a few digits of it, and the time
 * read would be days or months off with no sign of it. A JSON number is taken as it is (JSON.parse gives
 * 1.71e15 and 1710000000000000 alike).
 */
function epochNumber(value: unknown): number {
  if (typeof value === 'string' && (value.includes('e') || value.includes('E'))) return NaN;
  return decimalNumber(value);
}

/**
 * Seconds since the epoch (a number or decimal text, a fraction as Python's time.time() writes it) as the
 * millisecond they fall in, as epoch_us, iso8601 and patterns read times: every event time is whole
 * milliseconds. The product with 1000 can fall a few units in the last place below a whole millisecond
 * (1.005 * 1000 is 1004.9999999999999): within one part in 2^52 of it, it is that millisecond (in this
 * century, 0.4 µs: a double of seconds holds times a quarter of a microsecond apart, no closer).
 */
function epochSeconds(value: unknown): number {
  const millis = epochNumber(value) * 1000;
  const nearest = Math.round(millis);
  return Math.abs(millis - nearest) <= Number.EPSILON * Math.abs(millis) ? nearest : Math.floor(millis);
}

/**
 * Microseconds since the epoch (GA4's `event_timestamp`, BigQuery's INT64 times), a number or decimal
 * text (a JSON export writes INT64 as text), as the millisecond they fall in: the sub-millisecond part is
 * dropped (floored, so 1.999 ms is 1 ms, and -0.5 ms is -1 ms, as for a time before 1970). Exact for every
 * integer below 2^53 µs (the year 2255): the quotient of two such integers rounds to no integer it is not.
 */
function epochMicros(value: unknown): number {
  return Math.floor(epochNumber(value) / 1000);
}

/**
 * An ISO 8601 timestamp as RFC 3339 writes it: `YYYY-MM-DD`, then optionally `T` (or `t`, or a space)
 * and `HH:mm`, `:ss`, a fraction (its first three digits are the milliseconds), and `Z` or an offset
 * `±HH:mm` (`±HHmm`). Without an offset it is UTC (or mapping.time_zone, createTimeParser): read in the
 * machine's time zone (as Date.parse does), the same file would give other times on another machine.
 * A date that does not exist (February 30th) and any other text (`12/31/2024 10:00`, which Date.parse
 * reads in local time) are NaN, rejected. `24:00:00` is the end of the day, as ISO 8601 has it. The form producers write most,
 * `YYYY-MM-DDTHH:mm:ss[.sss]Z`, is read by position first: this runs once per event.
 */
function parseIso8601(value: unknown, onOffset?: OffsetListener): number {
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
    if (isDate(year, month, day) && hour <= 23 && minute <= 59 && second <= 59 && ms >= 0) {
      return (((daysFromCivil(year, month) + day - 1) * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms;
    }
  }
  return parseIsoForms(value, undefined, onOffset);
}

/**
 * parseIso8601 for every form but the one it reads by position (NaN for what is none of them); a time
 * without an offset in the zone of `toUtc` where one is given.
 */
function parseIsoForms(value: string, toUtc?: LocalToUtc, onOffset?: OffsetListener): number {
  const n = value.length;
  if (n < 10 || value.charCodeAt(4) !== 45 || value.charCodeAt(7) !== 45) return NaN;
  const year = digitsAt(value, 0, 4);
  const month = digitsAt(value, 5, 2);
  const day = digitsAt(value, 8, 2);
  if (!isDate(year, month, day)) return NaN;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let ms = 0;
  let offsetMinutes = 0;
  let offsetGiven = false;
  if (n > 10) {
    const separator = value.charCodeAt(10);
    if ((separator !== 84 /* T */ && separator !== 116 /* t */ && separator !== 32) || value.charCodeAt(13) !== 58) return NaN;
    hour = digitsAt(value, 11, 2);
    minute = digitsAt(value, 14, 2);
    let at = 16;
    if (value.charCodeAt(at) === 58) {
      second = digitsAt(value, at + 1, 2);
      at += 3;
      if (value.charCodeAt(at) === 46 /* . */) {
        const from = ++at;
        while (at < n && value.charCodeAt(at) >= 48 && value.charCodeAt(at) <= 57) at++;
        if (at === from) return NaN;
        ms = digitsAt(value.slice(from, Math.min(at, from + 3)).padEnd(3, '0'), 0, 3);
      }
    }
    const zone = value.charCodeAt(at);
    if ((zone === 90 /* Z */ || zone === 122 /* z */) && at + 1 === n) {
      at = n;
      offsetGiven = true;
    } else if (zone === 43 /* + */ || zone === 45 /* - */) {
      const colon = value.charCodeAt(at + 3) === 58 ? 1 : 0;
      const hours = digitsAt(value, at + 1, 2);
      const minutes = digitsAt(value, at + 3 + colon, 2);
      if (at + 5 + colon !== n || !(hours <= 23 && minutes <= 59)) return NaN;
      offsetMinutes = (zone === 43 ? 1 : -1) * (hours * 60 + minutes);
      offsetGiven = true;
      at = n;
    }
    if (at !== n) return NaN;
    const endOfDay = hour === 24 && minute === 0 && second === 0 && ms === 0;
    if (!((hour <= 23 && minute <= 59 && second <= 59) || endOfDay)) return NaN;
  }
  const time = (((daysFromCivil(year, month) + day - 1) * 24 + hour) * 60 + minute - offsetMinutes) * 60_000 + second * 1000 + ms;
  if (offsetMinutes !== 0 && onOffset !== undefined) onOffset(offsetMinutes);
  return toUtc === undefined || offsetGiven ? time : toUtc(time);
}

/** Whether the day exists in the proleptic Gregorian calendar (NaN parts are none). */
function isDate(year: number, month: number, day: number): boolean {
  if (!(year >= 0 && month >= 1 && month <= 12 && day >= 1)) return false;
  if (day <= 28) return true;
  if (month === 2) return day === 29 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31);
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

/**
 * A JSON number, or a number written in decimal (`12.50`, `-3`, `1e3`, spaces around it); anything
 * else is NaN. Number() alone reads blank text as 0, and `0x1F` as 31 (`0b11`, `0o17` too): a price of
 * `   ` would be free. Those all read as integers, and none starts with a digit from 1 to 9 or a sign:
 * only such text is looked at again (this runs once per price).
 */
export function decimalNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return NaN;
  const number = Number(value);
  if (Number.isInteger(number)) {
    const first = value.charCodeAt(0);
    const plain = (first >= 49 && first <= 57) || first === 43 || first === 45;
    if (!plain && (value.trim() === '' || /^\s*0[box]/i.test(value))) return NaN;
  }
  return number;
}

/**
 * A price as European exports write it: a decimal comma (`12,50`), and dots, if any, between groups of
 * three digits (`1.234,56`); a JSON number as it is. Anything else is NaN: `12.50` is not read as 1250,
 * nor `1.234` (a thousand, or one and a bit?) guessed at.
 */
export function decimalCommaNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return NaN;
  const match = /^\s*([+-]?)(\d{1,3}(?:\.\d{3})+|\d+)(?:,(\d+))?\s*$/.exec(value);
  return match ? Number(`${match[1]}${match[2]!.replaceAll('.', '')}.${match[3] ?? '0'}`) : NaN;
}

/** A price in text written with a decimal comma (`12,50`, `1.234,56`): the hint a rejection of it gives. */
const decimalCommaText = /^\s*[+-]?\d{1,3}(?:\.\d{3})*,\d+\s*$|^\s*[+-]?\d+,\d+\s*$/;

// The longer fractions first: SSSSSS is one field, not SSS twice.
const fieldTokens = ['yyyy', 'SSSSSSSSS', 'SSSSSS', 'SSS', 'MM', 'dd', 'HH', 'mm', 'ss'] as const;
type FieldToken = (typeof fieldTokens)[number];

/**
 * What the digits of each width of a fraction of a second are divided by to be milliseconds: microseconds
 * (BigQuery's TIMESTAMP as text, `2024-03-12 00:01:16.700123 UTC`) and nanoseconds are read to the
 * millisecond they fall in, the rest dropped, as epoch_us and iso8601 read them.
 */
const fractionDivisors = { SSS: 1, SSSSSS: 1000, SSSSSSSSS: 1_000_000 } as const;
type FractionToken = keyof typeof fractionDivisors;
const isFractionToken = (token: string): token is FractionToken => Object.hasOwn(fractionDivisors, token);

/** The parts of a time a pattern reads, the fraction of a second as milliseconds (SSS). */
type TimeParts = { yyyy: number; MM: number; dd: number; HH: number; mm: number; ss: number; SSS: number };

/** Sets the part `token` reads from its `digits` (NaN where they are none). */
function setTimePart(parts: TimeParts, token: FieldToken, digits: number): void {
  if (isFractionToken(token)) parts.SSS = Math.floor(digits / fractionDivisors[token]);
  else parts[token] = digits;
}

/**
 * How each offset letter of Java's DateTimeFormatter is written: its width, whether a colon parts hours
 * from minutes, and whether `Z` stands for +00:00 (XXX and XX: `Z`; xxx, xx and Z: `+0000`).
 */
const offsetForms = {
  XXX: { width: 6, colon: true, zulu: true }, // +01:00, Z
  XX: { width: 5, colon: false, zulu: true }, // +0100, Z
  xxx: { width: 6, colon: true, zulu: false }, // +01:00
  xx: { width: 5, colon: false, zulu: false }, // +0100
  ZZZ: { width: 5, colon: false, zulu: false }, // +0100: Z, ZZ and ZZZ are one form in Java
  ZZ: { width: 5, colon: false, zulu: false },
  Z: { width: 5, colon: false, zulu: false },
} as const;
type OffsetToken = keyof typeof offsetForms;

/**
 * The letters read beyond fixed-width numbers, as Java's DateTimeFormatter reads them: MMM (Jan to
 * Dec), hh with a (a 12-hour clock, AM or PM) and an offset. Looked for before fieldTokens (MMM before MM).
 */
const textTokens = ['MMM', 'hh', 'a', 'XXX', 'XX', 'xxx', 'xx', 'ZZZ', 'ZZ', 'Z'] as const;
type TextToken = (typeof textTokens)[number];

const isOffsetToken = (token: TextToken): token is OffsetToken => Object.hasOwn(offsetForms, token);

/** What MMM reads, in any case: English month abbreviations. */
const MONTH_ABBREVIATIONS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] as const;

/** The month (1-12) of the English abbreviation at `at`, in any case; NaN where there is none. */
function monthAbbreviationAt(text: string, at: number): number {
  // `| 32` lowers an ASCII capital and leaves a small letter; no other character becomes a small letter by it.
  const first = text.charCodeAt(at) | 32;
  const second = text.charCodeAt(at + 1) | 32;
  const third = text.charCodeAt(at + 2) | 32;
  for (let month = 0; month < 12; month++) {
    const name = MONTH_ABBREVIATIONS[month]!;
    if (name.charCodeAt(0) === first && name.charCodeAt(1) === second && name.charCodeAt(2) === third) return month + 1;
  }
  return NaN;
}

/** The hours AM or PM (any case) at `at` adds to an hour of a 12-hour clock made 0-11: 0, 12, or NaN for neither. */
function meridiemAt(text: string, at: number): number {
  if ((text.charCodeAt(at + 1) | 32) !== 109 /* m */) return NaN;
  const first = text.charCodeAt(at) | 32;
  return first === 97 /* a */ ? 0 : first === 112 /* p */ ? 12 : NaN;
}

/**
 * A fixed-width pattern such as `yyyy-MM-dd HH:mm:ss 'UTC'`, read as UTC, or in the zone of `toUtc`
 * where one is given. Fixed widths let the parser read digits by position instead of through a regular
 * expression: this runs once per event. The letters of textTokens (MMM, hh with a, an offset) are read
 * by textPattern; a pattern without them by the reader here, unchanged by them.
 */
export function compilePattern(pattern: string, toUtc?: LocalToUtc, onOffset?: OffsetListener): TimeParser {
  const fields: { token: FieldToken; at: number }[] = [];
  const texts: { token: TextToken; at: number }[] = [];
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
    const text = textTokens.find((candidate) => pattern.startsWith(candidate, i));
    if (text) {
      texts.push({ token: text, at: length });
      length += isOffsetToken(text) ? offsetForms[text].width : text === 'a' ? 2 : text.length;
      i += text.length;
      continue;
    }
    const token = fieldTokens.find((candidate) => pattern.startsWith(candidate, i));
    if (token) {
      fields.push({ token, at: length });
      length += token.length;
      i += token.length;
      continue;
    }
    if (/[A-Za-z]/.test(pattern[i]!)) {
      // Said with what a pattern reads instead: a Java or strftime habit (EEE, MMMM, z, yy) finds no such token here.
      throw new RangeError(
        `time_format '${pattern}': unknown letter '${pattern[i]}': a pattern reads yyyy MM dd HH mm ss SSS, SSSSSS or SSSSSSSSS (fixed-width numbers; a fraction of a second in milliseconds, microseconds or nanoseconds), MMM (Jan to Dec), hh with a (a 12-hour clock, AM or PM) and an offset, XXX (+01:00 or Z), XX (+0100 or Z), xxx (+01:00), xx or Z (+0100), as Java's DateTimeFormatter has them; no day names, full month names or zone names (a time without an offset is in UTC or mapping.time_zone); quote literal text: 'UTC'`,
      );
    }
    literals.push({ text: pattern[i]!, at: length });
    length += 1;
    i += 1;
  }
  if (!fields.some((f) => f.token === 'yyyy')) throw new RangeError(`time_format '${pattern}': needs at least yyyy`);
  // A letter read twice would have the later one win silently (`yyyy-MM-dd HH:mm (yyyy)`).
  const tokens: string[] = [...fields.map(({ token }) => token), ...texts.map(({ token }) => token)];
  const fractions = tokens.filter(isFractionToken);
  if (fractions.length > 1) throw new RangeError(`time_format '${pattern}': the fraction of a second twice (SSS, SSSSSS or SSSSSSSSS); a pattern reads it once`);
  const twice = tokens.find((token, index) => tokens.indexOf(token) !== index);
  if (twice !== undefined) throw new RangeError(`time_format '${pattern}': ${twice} twice; a pattern reads it once`);
  if (texts.length > 0) return textPattern(pattern, fields, texts, literals, length, toUtc, onOffset);
  const read: TimeParser = (value) => {
    if (typeof value !== 'string' || value.length !== length) return NaN;
    for (const literal of literals) if (!value.startsWith(literal.text, literal.at)) return NaN;
    const parts: TimeParts = { yyyy: 1970, MM: 1, dd: 1, HH: 0, mm: 0, ss: 0, SSS: 0 };
    for (const field of fields) setTimePart(parts, field.token, digitsAt(value, field.at, field.token.length));
    // A day past its month's end (February 31st) is no date: the sum below would roll it into the next month.
    // Second 60 (a leap second) is no time here, as iso8601 (and Date.parse) has it: one rule for both forms.
    if (!isDate(parts.yyyy, parts.MM, parts.dd) || parts.HH > 23 || parts.mm > 59 || parts.ss > 59) return NaN;
    // Days counted as iso8601 counts them: Date.UTC reads years 0 to 99 as 1900 to 1999 (0099-01-01 was 1999).
    return (((daysFromCivil(parts.yyyy, parts.MM) + parts.dd - 1) * 24 + parts.HH) * 60 + parts.mm) * 60_000 + parts.ss * 1000 + parts.SSS;
  };
  return toUtc === undefined ? read : (value) => toUtc(read(value));
}

/**
 * compilePattern's reader of a pattern with letters of textTokens. An offset makes each time an
 * instant: `toUtc` (mapping.time_zone) does not apply. XXX and XX may read `Z` in place of the offset
 * written out, the one width that varies: what follows it then sits that many characters earlier.
 */
function textPattern(
  pattern: string,
  fields: readonly { token: FieldToken; at: number }[],
  texts: readonly { token: TextToken; at: number }[],
  literals: readonly { text: string; at: number }[],
  length: number,
  toUtc: LocalToUtc | undefined,
  onOffset: OffsetListener | undefined,
): TimeParser {
  const said = `time_format '${pattern}'`;
  const offsets = texts.filter(({ token }) => isOffsetToken(token));
  if (offsets.length > 1) throw new RangeError(`${said}: two offsets (${offsets.map(({ token }) => token).join(' and ')}); a pattern reads one`);
  const atOf = (token: TextToken): number => texts.find((text) => text.token === token)?.at ?? -1;
  const monthAt = atOf('MMM');
  const hourAt = atOf('hh');
  const meridiemTokenAt = atOf('a');
  if (hourAt >= 0 && meridiemTokenAt < 0) throw new RangeError(`${said}: hh (an hour from 01 to 12) needs a (AM or PM) beside it; an hour from 00 to 23 is HH`);
  if (meridiemTokenAt >= 0 && hourAt < 0) throw new RangeError(`${said}: a (AM or PM) needs hh (an hour from 01 to 12) beside it; HH is an hour from 00 to 23, without a`);
  if (hourAt >= 0 && fields.some(({ token }) => token === 'HH')) throw new RangeError(`${said}: HH and hh both; a pattern reads the hour once, HH (00 to 23) or hh (01 to 12) with a`);
  if (monthAt >= 0 && fields.some(({ token }) => token === 'MM')) throw new RangeError(`${said}: MM and MMM both; a pattern reads the month once, MM (01 to 12) or MMM (Jan to Dec)`);
  const offsetToken = offsets[0]?.token as OffsetToken | undefined;
  const offsetAt = offsets[0]?.at ?? length;
  const offset = offsetToken === undefined ? undefined : offsetForms[offsetToken];
  // How much shorter a time is with `Z` in place of the offset written out; 0: no `Z` is read.
  const zuluShorter = offset?.zulu ? offset.width - 1 : 0;
  const read: TimeParser = (value) => {
    if (typeof value !== 'string') return NaN;
    let shift = 0; // of what follows the offset
    let offsetMinutes = 0;
    if (value.length !== length) {
      if (zuluShorter === 0 || value.length !== length - zuluShorter || value.charCodeAt(offsetAt) !== 90 /* Z */) return NaN;
      shift = zuluShorter;
    } else if (offset !== undefined) {
      const sign = value.charCodeAt(offsetAt);
      const hours = digitsAt(value, offsetAt + 1, 2);
      const minutes = digitsAt(value, offsetAt + (offset.colon ? 4 : 3), 2);
      if ((sign !== 43 /* + */ && sign !== 45) /* - */ || (offset.colon && value.charCodeAt(offsetAt + 3) !== 58) /* : */ || !(hours <= 23 && minutes <= 59)) return NaN;
      offsetMinutes = sign === 43 ? hours * 60 + minutes : -(hours * 60 + minutes);
    }
    for (const literal of literals) if (!value.startsWith(literal.text, literal.at > offsetAt ? literal.at - shift : literal.at)) return NaN;
    const parts: TimeParts = { yyyy: 1970, MM: 1, dd: 1, HH: 0, mm: 0, ss: 0, SSS: 0 };
    for (const field of fields) setTimePart(parts, field.token, digitsAt(value, field.at > offsetAt ? field.at - shift : field.at, field.token.length));
    if (monthAt >= 0) parts.MM = monthAbbreviationAt(value, monthAt > offsetAt ? monthAt - shift : monthAt);
    if (hourAt >= 0) {
      const hour = digitsAt(value, hourAt > offsetAt ? hourAt - shift : hourAt, 2);
      const added = meridiemAt(value, meridiemTokenAt > offsetAt ? meridiemTokenAt - shift : meridiemTokenAt);
      // 12 AM is midnight, 12 PM noon; 00 and 13 are no hours of this clock.
      parts.HH = hour >= 1 && hour <= 12 ? (hour % 12) + added : NaN;
    }
    // As the reader of plain patterns: a day that does not exist, a leap second, are no times (a NaN part is none).
    if (!isDate(parts.yyyy, parts.MM, parts.dd) || !(parts.HH <= 23 && parts.mm <= 59 && parts.ss <= 59 && parts.SSS >= 0)) return NaN;
    if (offsetMinutes !== 0 && onOffset !== undefined) onOffset(offsetMinutes);
    return (((daysFromCivil(parts.yyyy, parts.MM) + parts.dd - 1) * 24 + parts.HH) * 60 + parts.mm - offsetMinutes) * 60_000 + parts.ss * 1000 + parts.SSS;
  };
  return toUtc === undefined || offset !== undefined ? read : (value) => toUtc(read(value));
}

/** Most distinct unknown event types {@link unknownEventTypeWarning} tells of: free-form types would log without end. */
export const MAX_UNKNOWN_TYPES_TOLD = 10;

/**
 * The `onUnknownType` of createEventMapper that logs a warning the first time each type comes (up to
 * {@link MAX_UNKNOWN_TYPES_TOLD} types). A source makes one and gives it to each of its mappers (a file
 * source has one per file), so a type is told once per source. An export whose types are named its own
 * way (`page_view`, `checkout_completed`) otherwise reads without a word: no view, cart or purchase in any
 * feature, and an intent model with no positive label.
 */
export function unknownEventTypeWarning(logger: Pick<Logger, 'warn'>): (type: string, near?: string) => void {
  const told = new Set<string>();
  const known = KNOWN_EVENT_TYPES.join(', ');
  return (type, near) => {
    if (told.has(type) || told.size >= MAX_UNKNOWN_TYPES_TOLD) return;
    told.add(type);
    const last = told.size === MAX_UNKNOWN_TYPES_TOLD ? ` (the ${MAX_UNKNOWN_TYPES_TOLD}th such type: further ones are not told)` : '';
    const quoted = JSON.stringify(type);
    const nearMiss =
      near === undefined
        ? ''
        : (KNOWN_EVENT_TYPES as readonly string[]).includes(near)
          ? ` (the known type ${JSON.stringify(near)} differs from it in case, spaces or punctuation: names are compared exactly)`
          : ` (it names ${JSON.stringify(near)}: names are compared exactly, case, spaces and punctuation too)`;
    logger.warn(
      { type, knownTypes: KNOWN_EVENT_TYPES, ...(near === undefined ? {} : { near }) },
      `event type ${quoted} is none of the known types (${known}) and mapping.event_types does not name it${nearMiss}: the feature operators count it only as an event, and no model takes it for a purchase; map it in mapping.event_types to the known type it stands for (${quoted}: one of ${known}), or to itself (${quoted}: ${quoted}) to keep it as it is${last}`,
    );
  };
}

/**
 * Events {@link absentFieldCheck} looks at before it says which named fields none of them had; and, later,
 * how many events in a row must lack a field that earlier ones had before it says that field vanished.
 */
export const ABSENT_FIELD_SAMPLE = 1000;

/** What absentFieldCheck watches: the optional fields a mapping names, and how an event shows it had one. */
const optionalFields = [
  ['session_id', (event: ClickEvent) => event.sessionId !== undefined, 'a session id'],
  ['item_id', (event: ClickEvent) => event.itemId !== undefined, 'an item'],
  ['category', (event: ClickEvent) => event.category !== undefined, 'a category'],
  ['price', (event: ClickEvent) => event.price !== undefined, 'a price'],
] as const;

/** One optional field a mapping names, as absentFieldCheck follows it through a source's events. */
interface WatchedField {
  label: string;
  name: string;
  also: readonly string[];
  has: (event: ClickEvent) => boolean;
  what: string;
  /** Its series of tributary_source_field_values_absent_total: `field` is the canonical name (`price`), or `attrs.<name>` for an attribute. */
  absent?: Counter;
  /** The last record that had it (its fields are compared with a record's that lacks it, to name a rename). */
  lastWith?: unknown;
  /** Events without it not yet added to `absent` (flush): a counter's increment per event cost more than the check. */
  pending: number;
  /** Events since the last one that had it. */
  run: number;
  /** Events that had it, since the check began. */
  had: number;
}

/**
 * Follows the optional fields a mapping names (`fields.price`, `fields.category`, ..., `attributes`) through
 * a source's events, as a misnamed or vanished optional field is no rejection: each event just lacks it,
 * and its features read 0 (no price: a cart value of 0) without a dead letter. It
 * - says, once, which of them none of the first {@link ABSENT_FIELD_SAMPLE} events had (or, for a shorter
 *   input, none of them at `finish()`), with the field of the last record that most likely is it
 *   (`event.product.price`: a nested one, similarFieldPath): JSON has no header row to check the names
 *   against as a CSV's columns are;
 * - says, once each time, a field that 100 events and one in ten before had at least and the last
 *   {@link ABSENT_FIELD_SAMPLE} in a row lacked (a producer renamed or moved it under a running pipeline: a Kafka source's first sample was
 *   weeks ago), with the field most likely meant and the record's fields that the last one with it lacked
 *   (`price_cents`);
 * - with `metrics`, counts each event that lacks each of them in `tributary_source_field_values_absent_total`
 *   (label `field`), so that a share that rises can be alerted on, null values too (a category no longer sent).
 * `see` takes each mapped event with its raw record: a comparison per named field; the counts reach the
 * counter at `flush()` (a source calls it after each batch), at `finish()`, and every 1,000. Says nothing and counts
 * nothing for the canonical mapping (CANONICAL_EVENT_MAPPING), whose names are fixed: what lacks a field
 * there is an event that had none.
 */
export function absentFieldCheck(
  setting: MappingSetting = {},
  logger: Pick<Logger, 'warn'>,
  where: string,
  metrics?: Metrics,
): { see(event: ClickEvent, raw: unknown): void; flush(): void; finish(): void } {
  const config = mappingOf(setting)!;
  // Canonical events (what a file sink wrote; a backtest's input for a source without a mapping) have
  // the canonical names or lack the field: an event that had no session id (synthetic's) is written
  // without one, and there is no other name to point at.
  if (isCanonicalMapping(config)) return { see() {}, flush() {}, finish() {} };
  const counter = (field: string): Counter | undefined =>
    // Named here in full: examples/ops's tests find the series the code registers by their literal names.
    metrics?.withLabels({ field }).counter('source_field_values_absent_total', 'Events a source read without an optional field its mapping names (null, empty or absent), per field');
  // A session_id that names fields read in turn is said with all of them, and the record's field near the first.
  const named: WatchedField[] = optionalFields
    .filter(([field]) => config.fields?.[field] !== undefined)
    .map(([field, has, what]) => {
      const [name, ...also] = mappedFieldNames(config.fields![field]!, field);
      return { label: `fields.${field}`, name: name!, also, has, what, absent: counter(field), pending: 0, run: 0, had: 0 };
    });
  for (const name of config.attributes ?? []) {
    named.push({ label: 'attributes', name, also: [], has: (event) => event.attrs?.[name] !== undefined, what: `an attribute ${name}`, absent: counter(`attrs.${name}`), pending: 0, run: 0, had: 0 });
  }
  const namesOf = ({ name, also }: WatchedField): string => [name, ...also].map((each) => `'${each}'`).join(' or ');
  let unseen = named;
  let events = 0;
  let lastRaw: unknown;
  let sampled = named.length === 0;
  const flush = (): void => {
    for (const field of named) {
      if (field.pending === 0) continue;
      field.absent?.inc(field.pending);
      field.pending = 0;
    }
  };
  const finish = (): void => {
    flush();
    if (sampled) return;
    sampled = true;
    if (unseen.length === 0 || events === 0) return;
    const record = typeof lastRaw === 'object' && lastRaw !== null ? lastRaw : {};
    lastRaw = undefined;
    const said = unseen.map((field) => {
      const { label, name } = field;
      // A path that reached into the last record and stopped (a list stepped into by name) says where.
      const path = fieldPathProblem(name) === undefined ? fieldPath(name) : undefined;
      const stop = path === undefined ? undefined : fieldPathStop(record, path);
      if (stop !== undefined) return `${label} ${namesOf(field)} (in the last record, ${stop})`;
      const near = similarFieldPath(record, name);
      return `${label} ${namesOf(field)}${near === undefined ? '' : ` (the records have ${near})`}`;
    });
    const first = events === ABSENT_FIELD_SAMPLE ? `the first ${events}` : `the ${events}`;
    logger.warn(
      { missing: said, events },
      `${where}: none of ${first} events had ${said.join(', ')}, so no event gets ${unseen.map(({ what }) => what).join(' or ')}; name the field the records have (a nested one by its path: user.id, items[0].price)`,
    );
  };
  const vanished = (field: WatchedField, raw: unknown): void => {
    const record = typeof raw === 'object' && raw !== null ? raw : {};
    const near = similarFieldPath(record, field.name);
    const before = typeof field.lastWith === 'object' && field.lastWith !== null ? field.lastWith : {};
    const added = Object.keys(record).filter((key) => !Object.hasOwn(before, key));
    const hints = [...(added.length === 0 ? [] : [`fields new since the last record with it: ${added.slice(0, 5).join(', ')}${added.length > 5 ? ', ...' : ''}`]), ...(near === undefined ? [] : [`the records have ${near}`])];
    const made = field.label === 'fields.price' ? ' (a cart value of 0)' : '';
    logger.warn(
      { field: field.label, name: field.name, events: field.run, ...(added.length === 0 ? {} : { added }), ...(near === undefined ? {} : { near }) },
      `${where}: the last ${field.run} events had no ${field.label} ${namesOf(field)}, though the events before them had it${hints.length === 0 ? '' : ` (${hints.join('; ')})`}: they get no ${field.what.replace(/^an? /, '')}, and the features made of it are as for events without one${made}; if the producer renamed or moved it, name the field the records have now in the mapping and restart (docs/operations.md, When your event schema changes). Said again only after it comes back`,
    );
  };
  return {
    see(event, raw) {
      events++;
      if (!sampled) {
        lastRaw = raw;
        unseen = unseen.filter(({ has }) => !has(event));
        if (unseen.length === 0) sampled = true;
        else if (events === ABSENT_FIELD_SAMPLE) finish();
      }
      for (const field of named) {
        if (field.has(event)) {
          field.run = 0;
          field.had++;
          field.lastWith = raw;
          continue;
        }
        if (++field.pending === ABSENT_FIELD_SAMPLE) flush();
        // Once a run, again after it came back. Only a field that 100 events and one in ten before the run
        // had at least: a sparse one (a coupon code on a purchase) lacks it for long by nature, and one
        // never seen is the first sample's to say.
        if (++field.run === ABSENT_FIELD_SAMPLE && field.had >= ABSENT_FIELD_SAMPLE / 10 && field.had * 10 >= events - field.run) vanished(field, raw);
      }
    },
    flush,
    finish,
  };
}

/**
 * Builds the mapper once per source. The returned function runs per record: it allocates only the
 * event it returns. It takes any parsed value (what `JSON.parse` gave): one that is not an object is
 * a rejection, as every other unusable record is. `onUnknownType` is called with each event's type that is
 * none of {@link KNOWN_EVENT_TYPES} and that `event_types` (or `default_type`) does not name: the types a
 * mapping names are meant, others most often a naming of the export's own (see unknownEventTypeWarning).
 * `onTimeOffset` is called once, with the first UTC offset other than zero (in minutes east) that a time
 * carries in its text (`+01:00`; iso8601, or a pattern's offset letter): such a time is the right instant,
 * but its clock's hours are not UTC's (timeOffsetReporter).
 * `erasureType` (the pipeline's erasure section's event type, PluginContext.erasureEventType): a record of
 * that type without a time is taken, its time NaN: an erasure request has no event-time meaning (the
 * runtime does it where it is in the stream, and its time moves no watermark), and the erasure tool
 * that sends it has no event time to give. One with a time that cannot be read is rejected as any record.
 */
export function createEventMapper(
  setting: MappingSetting = {},
  onUnknownType?: (type: string, near?: string) => void,
  onTimeOffset?: (offsetMinutes: number) => void,
  erasureType?: string,
): EventMapper {
  const config = mappingOf(setting)!;
  const fields = config.fields ?? {};
  // user_id and session_id may name fields read in turn: the first is read as a single one is (its own
  // call site, a plain keyed load), the others only where it has no value.
  const userNames = mappedFieldNames(fields.user_id ?? 'user_id', 'user_id');
  const sessionNames = mappedFieldNames(fields.session_id ?? 'session_id', 'session_id');
  const userField = userNames[0]!;
  const timeField = fields.time ?? 'time';
  const typeField = fields.type ?? 'type';
  const sessionField = sessionNames[0]!;
  const itemField = fields.item_id ?? 'item_id';
  const categoryField = fields.category ?? 'category';
  const priceField = fields.price ?? 'price';
  // A field named `constructor` or `__proto__` is one the record has or lacks, never Object.prototype's:
  // such names (decided here, once) are read by ownValue, any other by a plain lookup.
  const userInherited = isInheritedName(userField);
  const timeInherited = isInheritedName(timeField);
  const typeInherited = isInheritedName(typeField);
  const sessionInherited = isInheritedName(sessionField);
  const itemInherited = isInheritedName(itemField);
  const categoryInherited = isInheritedName(categoryField);
  const priceInherited = isInheritedName(priceField);
  // A name the record lacks whole is read as a path where it is one (`user.id`, `items[0].price`): fieldPath, valueAtPath.
  const userPath = fieldPath(userField);
  const timePath = fieldPath(timeField);
  const typePath = fieldPath(typeField);
  const sessionPath = fieldPath(sessionField);
  const itemPath = fieldPath(itemField);
  const categoryPath = fieldPath(categoryField);
  const pricePath = fieldPath(priceField);
  const userFallbacks = fallbackFields(userNames);
  const sessionFallbacks = fallbackFields(sessionNames);
  const eventTypes = new Map(Object.entries(config.event_types ?? {}));
  // Told once per mapper (a source's file, or its Kafka reader): every event of an export has the offset.
  let offsetTold = onTimeOffset === undefined;
  const parseTime = createTimeParser(
    config.time_format ?? 'iso8601',
    config.time_zone,
    onTimeOffset === undefined
      ? undefined
      : (offsetMinutes) => {
          if (offsetTold) return;
          offsetTold = true;
          onTimeOffset(offsetMinutes);
        },
  );
  const epochFormat = isEpochFormat(config.time_format ?? 'iso8601');
  // Said in each rejection of a time: the forms iso8601 reads (an offset is not required, a real date is).
  const timeFormat = (config.time_format ?? 'iso8601') === 'iso8601' ? 'iso8601 (YYYY-MM-DD, then THH:mm, :ss, .sss and Z or ±HH:mm as given; a date that exists)' : config.time_format;
  const attributes = config.attributes ?? [];
  const attributesInherited = attributes.map(isInheritedName);
  const attributesPaths = attributes.map(fieldPath);
  const attributesField = config.attributes_field;
  const attributesFieldInherited = attributesField !== undefined && isInheritedName(attributesField);
  const attributesFieldPath = attributesField === undefined ? undefined : fieldPath(attributesField);
  const defaultType = config.default_type;
  const skipTypes = config.skip_types === undefined || config.skip_types.length === 0 ? undefined : new Set(config.skip_types);
  const decimalComma = config.decimal_separator === ',';
  const readPrice = decimalComma ? decimalCommaNumber : decimalNumber;
  const priceDivisor = config.price_divisor;
  if (priceDivisor !== undefined && !PRICE_DIVISORS.includes(priceDivisor)) {
    // Checked again here for a mapping that reaches the mapper without validation (a user's source).
    throw new RangeError(`price_divisor ${String(priceDivisor)}: expected one of ${PRICE_DIVISORS.join(', ')} (100: prices in cents)`);
  }
  // The erasure section's type is meant (not warned of as unknown): the runtime takes such a request out of the stream.
  const namedTypes = new Set<string>([...KNOWN_EVENT_TYPES, ...eventTypes.values(), ...(defaultType === undefined ? [] : [eventTypes.get(defaultType) ?? defaultType]), ...(erasureType === undefined ? [] : [erasureType])]);
  // A type named as event_types names one, or as a known type, but for case, spaces or punctuation
  // (`Product Viewed` where `product_viewed: view`, `Purchase`), told with that name: compared exactly,
  // it would be mapped by neither. Each type's answer is kept: an unknown type usually comes in every record.
  const nearNames = new Map<string, string>([...KNOWN_EVENT_TYPES, ...eventTypes.keys()].map((name) => [comparable(name), name]));
  const nearNameOfType = new Map<string, string | undefined>();
  const nearNameOf = (type: string): string | undefined => {
    if (nearNameOfType.has(type)) return nearNameOfType.get(type);
    const loose = comparable(type);
    const near = loose === '' ? undefined : nearNames.get(loose);
    // Bounded: free-form types are told only up to MAX_UNKNOWN_TYPES_TOLD anyway.
    if (nearNameOfType.size < 4 * MAX_UNKNOWN_TYPES_TOLD) nearNameOfType.set(type, near);
    return near;
  };

  const readsSinkEvents = isCanonicalMapping(config);
  const rawTypeOf = (raw: Record<string, unknown>): unknown => {
    const rawType = typeInherited ? ownValue(raw, typeField) : raw[typeField];
    return rawType === undefined && typePath !== undefined ? valueAtPath(raw, typePath) : rawType;
  };
  const typeOf = (input: unknown): string | undefined => {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
    const raw = input as Record<string, unknown>;
    if (readsSinkEvents && typeof raw.kind === 'string' && raw.kind !== 'event') return undefined;
    const rawType = rawTypeOf(raw);
    if (rawType === undefined || rawType === null || rawType === '') return defaultType === undefined ? undefined : (eventTypes.get(defaultType) ?? defaultType);
    if (typeof rawType === 'string') return eventTypes.get(rawType) ?? rawType;
    return typeof rawType === 'number' ? eventTypes.get(String(rawType)) : undefined;
  };
  const mapRecord = (input: unknown, origin?: Origin): MapResult => {
    // A parsed JSON line may be any value: `null` or `42` is a rejection, not a TypeError that fails the source.
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      return { rejected: `expected a JSON object, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}` };
    }
    const raw = input as Record<string, unknown>;
    // What a sink wrote of another kind (a session summary, a prediction, a dead letter) read as events: said as such, not by the field it lacks.
    if (readsSinkEvents && typeof raw.kind === 'string' && raw.kind !== 'event') return { rejected: `kind: ${notAnEvent(raw.kind)}` };
    // A name the record lacks whole is walked as a path where it is one; a plain name costs one comparison more.
    let rawUser = userInherited ? ownValue(raw, userField) : raw[userField];
    if (rawUser === undefined && userPath !== undefined) rawUser = valueAtPath(raw, userPath);
    let userRead = userField;
    if (userFallbacks !== undefined && (rawUser === undefined || rawUser === null || rawUser === '')) {
      const found = firstFallback(raw, userFallbacks);
      if (found !== undefined) ({ value: rawUser, name: userRead } = found);
    }
    const user = idValue(userRead, rawUser);
    if (user === undefined) return { rejected: missingUserReason(raw, userNames) };
    if (typeof user !== 'string') return user;
    let rawTime = timeInherited ? ownValue(raw, timeField) : raw[timeField];
    if (rawTime === undefined && timePath !== undefined) rawTime = valueAtPath(raw, timePath);
    const timeless = rawTime === undefined || rawTime === null || rawTime === '';
    if (timeless && (erasureType === undefined || typeOf(raw) !== erasureType)) return { rejected: `${timeField}: missing timestamp${missingHint(raw, timeField, timePath)}` };
    const time = timeless ? NaN : parseTime(rawTime);
    if (!timeless && !Number.isFinite(time)) return { rejected: `${timeField}: cannot parse ${describe(rawTime)} as ${timeFormat}${epochFormat ? exponentHint(rawTime) : epochHint(rawTime)}` };
    const rawType = rawTypeOf(raw);
    let type: string;
    if (rawType === undefined || rawType === null || rawType === '') {
      if (defaultType === undefined) return { rejected: `${typeField}: missing event type${missingHint(raw, typeField, typePath)}` };
      type = eventTypes.get(defaultType) ?? defaultType;
    } else if (typeof rawType === 'string') type = eventTypes.get(rawType) ?? rawType;
    else {
      // A number (a JSON `type` of 2) is read by its text where event_types maps it (`"2": cart`); no
      // canonical type is a number, so one it does not map is a mistake in the mapping, said as such.
      const mapped = typeof rawType === 'number' ? eventTypes.get(String(rawType)) : undefined;
      if (mapped === undefined) {
        const unmapped = typeof rawType === 'number' ? ` (a number is read only where event_types maps it: "${String(rawType)}": cart)` : '';
        return { rejected: `${typeField}: expected a string${unmapped}, got ${describe(rawType)}` };
      }
      type = mapped;
    }
    // Before the other fields are read: a skipped record is not taken, so nothing else in it is wrong.
    if (skipTypes?.has(type)) return { rejected: `skip_types: ${type}`, skipped: true };
    const event: ClickEvent = { kind: 'event', userId: user, time, type };
    let rawSession = sessionInherited ? ownValue(raw, sessionField) : raw[sessionField];
    if (rawSession === undefined && sessionPath !== undefined) rawSession = valueAtPath(raw, sessionPath);
    let sessionRead = sessionField;
    if (sessionFallbacks !== undefined && (rawSession === undefined || rawSession === null || rawSession === '')) {
      const found = firstFallback(raw, sessionFallbacks);
      if (found !== undefined) ({ value: rawSession, name: sessionRead } = found);
    }
    const session = idValue(sessionRead, rawSession);
    if (typeof session === 'object') return session;
    if (session !== undefined) event.sessionId = session;
    let rawItem = itemInherited ? ownValue(raw, itemField) : raw[itemField];
    if (rawItem === undefined && itemPath !== undefined) rawItem = valueAtPath(raw, itemPath);
    const item = idValue(itemField, rawItem);
    if (typeof item === 'object') return item;
    if (item !== undefined) event.itemId = item;
    let rawCategory = categoryInherited ? ownValue(raw, categoryField) : raw[categoryField];
    if (rawCategory === undefined && categoryPath !== undefined) rawCategory = valueAtPath(raw, categoryPath);
    const category = idValue(categoryField, rawCategory);
    if (typeof category === 'object') return category;
    if (category !== undefined) event.category = category;
    let rawPrice = priceInherited ? ownValue(raw, priceField) : raw[priceField];
    if (rawPrice === undefined && pricePath !== undefined) rawPrice = valueAtPath(raw, pricePath);
    if (rawPrice !== undefined && rawPrice !== null && rawPrice !== '') {
      const written = readPrice(rawPrice);
      if (!Number.isFinite(written)) {
        // Worded without quotes or digits: the run's summary counts reasons with those elided.
        const hint = decimalComma
          ? ' with a decimal comma (mapping.decimal_separator), dots only between groups of three digits'
          : typeof rawPrice === 'string' && decimalCommaText.test(rawPrice)
            ? ' (a decimal comma? set mapping.decimal_separator to a comma)'
            : '';
        return { rejected: `${priceField}: expected a number${hint}, got ${describe(rawPrice)}` };
      }
      // A negative price is bad input (a refund or a sign error upstream), not a price: the features
      // (price statistics, cart value, monetary value) would take it as one.
      if (written < 0) return { rejected: `${priceField}: expected a number of 0 or more, got ${describe(rawPrice)}` };
      event.price = priceDivisor === undefined ? written : dividedPrice(written, priceDivisor);
    }
    let whole: Record<string, unknown> | undefined;
    if (attributesField !== undefined) {
      let value = attributesFieldInherited ? ownValue(raw, attributesField) : raw[attributesField];
      if (value === undefined && attributesFieldPath !== undefined) value = valueAtPath(raw, attributesFieldPath);
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
      for (let k = 0; k < attributes.length; k++) {
        const name = attributes[k]!;
        let value = attributesInherited[k] ? ownValue(raw, name) : raw[name];
        const path = attributesPaths[k];
        if (value === undefined && path !== undefined) value = valueAtPath(raw, path);
        if (value === undefined || value === '') continue;
        // Every writer of events serialises attributes recursively: a value nested thousands deep
        // (valid JSON) would overflow the stack there, far from the input that carried it.
        if (typeof value === 'object' && value !== null && nestedDeeperThan(value, MAX_ATTRIBUTE_DEPTH)) return { rejected: `${name}: attribute nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels` };
        if (attributesInherited[k]) setOwnField(attrs, name, value);
        else attrs[name] = value;
      }
      event.attrs = attrs;
    }
    if (onUnknownType !== undefined && !namedTypes.has(type)) onUnknownType(type, nearNameOf(type));
    if (origin) event[ORIGIN] = origin;
    return event;
  };
  return Object.assign(mapRecord, { typeOf });
}

/**
 * Why a record lacks a required field, so that the first dead letter says what to write: where the walk
 * of a path stopped (` (no element of event_params has key "uid")`, ` (items is an empty list)`:
 * fieldPathStop), else ` (the record has user.id)` where it has a field the mapping most likely meant
 * (nested, or named another way: similarFieldPath).
 */
function missingHint(record: object, name: string, path: FieldPath | undefined): string {
  const stop = path === undefined ? undefined : fieldPathStop(record, path);
  if (stop !== undefined) return ` (${stop})`;
  const similar = similarFieldPath(record, name);
  return similar === undefined ? '' : ` (the record has ${similar})`;
}

/** The fields a mapping's `user_id` or `session_id` names, in the order they are read; a list of none is refused (by the schema first). */
function mappedFieldNames(entry: string | readonly string[], field: string): readonly string[] {
  if (typeof entry === 'string') return [entry];
  if (entry.length === 0) throw new RangeError(`fields.${field}: an empty list names no field; name one, or several read in turn ([userId, anonymousId])`);
  return entry;
}

/** A field of a list read after the first, where those before it have no value: how it is read, decided once. */
interface FallbackField {
  name: string;
  inherited: boolean;
  path: FieldPath | undefined;
}

/** The fields after the first of `names`, compiled; undefined for a single field (the mapper then reads one, as ever). */
function fallbackFields(names: readonly string[]): FallbackField[] | undefined {
  if (names.length < 2) return undefined;
  return names.slice(1).map((name) => ({ name, inherited: isInheritedName(name), path: fieldPath(name) }));
}

/** The value of `field` in `raw`, read as the mapper reads a field: the whole name, then the path. */
function fallbackValue(raw: Record<string, unknown>, field: FallbackField): unknown {
  const value = field.inherited ? ownValue(raw, field.name) : raw[field.name];
  return value === undefined && field.path !== undefined ? valueAtPath(raw, field.path) : value;
}

/** The first of a list's later fields with a value in `raw` (not absent, null or empty), and its name; read only where the first field had none. */
function firstFallback(raw: Record<string, unknown>, fields: readonly FallbackField[]): { value: unknown; name: string } | undefined {
  for (const field of fields) {
    const value = fallbackValue(raw, field);
    if (value !== undefined && value !== null && value !== '') return { value, name: field.name };
  }
  return undefined;
}

/**
 * Fields (compared as `comparable` writes them) that hold a user id in exports, other than the one a
 * mapping reads: Segment's and RudderStack's anonymousId, GA4's user_pseudo_id, a shop's customer_id,
 * Snowplow's domain_userid, and the like. Named in a missing user id's reason, never read in its place.
 */
const OTHER_USER_ID_FIELDS: ReadonlySet<string> = new Set(
  ['anonymousId', 'anonymous_id', 'userId', 'user_pseudo_id', 'customer_id', 'customerId', 'visitor_id', 'visitorId', 'domain_userid', 'network_userid', 'client_id', 'device_id', 'distinct_id', 'shopper_id', 'account_id', 'member_id', 'cookie_id'].map(comparable),
);

/**
 * The reason a record without a user id is dead-lettered: the field(s) read, in order, then what the
 * record holds that was most likely meant (missingHint for each field read), else its fields that hold
 * another kind of user id (`anonymousId`, `user_pseudo_id`, `customer_id`: OTHER_USER_ID_FIELDS, top-level
 * fields with a value), with the list that would read them after. Only on the dead-letter path.
 */
function missingUserReason(record: Record<string, unknown>, names: readonly string[]): string {
  const [first, ...rest] = names;
  const read = rest.length === 0 ? `${first}: missing user id` : `${first}: missing user id, nor any in ${rest.join(', ')} (read in turn)`;
  const written = sinkRecordHint(record);
  if (written !== undefined) return `${read} (${written})`;
  for (const name of names) {
    const hint = missingHint(record, name, fieldPathProblem(name) === undefined ? fieldPath(name) : undefined);
    if (hint !== '') return `${read}${hint}`;
  }
  const tried = new Set(names.map(comparable));
  const others: string[] = [];
  let looked = 0;
  for (const key in record) {
    if (++looked > 256 || others.length === 3) break;
    if (!Object.hasOwn(record, key) || tried.has(comparable(key)) || !OTHER_USER_ID_FIELDS.has(comparable(key))) continue;
    const value = record[key];
    if ((typeof value === 'string' && value !== '') || typeof value === 'number') others.push(key);
  }
  if (others.length === 0) return read;
  const list = [...names, ...others].map((name) => (/^[\w.]+$/.test(name) ? name : JSON.stringify(name))).join(', ');
  return `${read} (the record has ${others.join(', ')}; to read it where ${names.join(', ')} has none: fields.user_id: [${list}])`;
}

/**
 * What a record a `file` sink wrote (its `kind`, `userId` and `time` in epoch milliseconds) is said with
 * where a mapping found no user id in it: an event reads back with `mapping: canonical`, and a record of
 * another kind (a prediction, a session summary) is no event at all. Undefined for any other record.
 */
function sinkRecordHint(record: Record<string, unknown>): string | undefined {
  const { kind, userId, time } = record;
  if (typeof kind !== 'string' || (typeof userId !== 'string' && typeof userId !== 'number')) return undefined;
  if (kind !== 'event') return notAnEvent(kind);
  return typeof time === 'number' ? 'the record is an event as a file sink writes it, userId and time in epoch milliseconds: read such records with mapping: canonical' : undefined;
}

/** Why a record of `kind` (not `event`) a sink wrote is read as no event: only events read back (mapping: canonical). */
function notAnEvent(kind: string): string {
  const named = /^[A-Za-z_-]{1,40}$/.test(kind) ? kind : 'other';
  return `the record is a ${named} record as a sink writes it, no event: only events are read back as events (a sink's kinds: [event], read with mapping: canonical)`;
}

/**
 * What a time in exponent text (`1.71e15`) is said with where an epoch format rejects it: such text keeps
 * only the digits written (three here: any time in about 115 days, for microseconds), most often a
 * spreadsheet's rounding of a long number. Worded without digits: the run's summary counts reasons with
 * those elided.
 */
/**
 * For a time format that reads text (iso8601, a pattern), a time written as a number of seconds,
 * milliseconds or microseconds since 1970 (a producer that switched to epoch times): the `time_format`
 * that reads it, by its digits (10 seconds, 13 milliseconds, 16 microseconds, as times of these decades are).
 */
function epochHint(value: unknown): string {
  // Whole digits only: a fraction (Python's time.time(), 1710201676.700123) is no part of the count.
  const digits = typeof value === 'number' && Number.isFinite(value) && value >= 1 ? String(Math.trunc(value)) : typeof value === 'string' ? /^(\d+)(\.\d+)?$/.exec(value)?.[1] : undefined;
  const format = digits === undefined ? undefined : ({ 10: 'epoch_s', 13: 'epoch_ms', 16: 'epoch_us' } as Record<number, string>)[digits.length];
  return format === undefined ? '' : ` (a number: ${format === 'epoch_s' ? 'seconds' : format === 'epoch_ms' ? 'milliseconds' : 'microseconds'} since 1970? mapping.time_format: ${format} reads them)`;
}

function exponentHint(value: unknown): string {
  if (typeof value !== 'string' || !/^\s*[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+\s*$/.test(value)) return '';
  return ' (a number in exponent form keeps only the digits written, most often what a spreadsheet left of a long number: the time may be days or months off; export the times as whole numbers, or as text)';
}

/**
 * Longest id (user, session, item, category) read, in UTF-16 code units. Ids are kept in state (per user,
 * per session, in session and prediction ids): 400 ids of a megabyte each (a blob pasted into a field)
 * took 4.8 GB of memory, where a shop's ids are tens of characters.
 */
export const MAX_ID_LENGTH = 1024;

/**
 * The id in `field`: its text; `undefined` when absent; the rejection when it is no id. A number is
 * one only as an integer JSON reads exactly (below 2^53): past that, JSON.parse rounds it, and two
 * users' ids (12345678901234567890 and ...891) would become one.
 */
function idValue(field: string, value: unknown): string | undefined | { rejected: string } {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string') {
    if (value.length > MAX_ID_LENGTH) return { rejected: `${field}: an id of ${value.length} characters, longer than ${MAX_ID_LENGTH} (ids are kept in state, per user and session)` };
    return value;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value === 'number' && Number.isFinite(value)) {
    return { rejected: `${field}: the number ${describe(value)} is not an integer below 2^53, which JSON readers round (two ids could become one): send ids as strings` };
  }
  return { rejected: `${field}: expected a string or number, got ${describe(value)}` };
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

/** A record's value as its dead letter's reason quotes it: valueText's, cut with `...` as reasons always were; too deep a value is said, not quoted. */
function describe(value: unknown): string {
  if (typeof value === 'object' && value !== null && nestedDeeperThan(value, MAX_ATTRIBUTE_DEPTH)) return `${Array.isArray(value) ? 'an array' : 'an object'} nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels`;
  return valueText(value, '...');
}

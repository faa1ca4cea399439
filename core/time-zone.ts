/**
 * Local wall-clock times of a time zone (what a shop's export writes: `2024-03-31 02:30:00`, no offset)
 * to instants, for the mapping's `time_zone`, and instants to local times, for session-features'
 * `time_zone` (hour of day, day of week). Offsets come from Intl.DateTimeFormat, whose tz data the
 * runtime keeps current; a call to it costs microseconds, so each day's offsets are worked out once
 * (shiftedByDay) and the mapper or the stage, per record, compares and adds.
 */
import { closest, distance } from 'fastest-levenshtein';

const SECOND = 1000;
const DAY = 86_400_000;

/** Days whose offsets are kept (27 years of them); past that the cache starts again. */
const MAX_DAYS_KEPT = 10_000;
/** Slots of the table of days last seen, a power of two (a day's slot is its number's low bits). */
const SLOTS = 4096;

/** Local epoch milliseconds (the wall-clock time read as if it were UTC) to the instant they stand for. */
export type LocalToUtc = (local: number) => number;
/** An instant to its local epoch milliseconds (the wall-clock time there, read as if it were UTC). */
export type UtcToLocal = (instant: number) => number;

/**
 * Days from 1970-01-01 to the first of `month` (1-12) of `year` in the proleptic Gregorian calendar
 * (Hinnant's days_from_civil), in integer arithmetic: what Date.UTC computes, without its call.
 */
export function daysFromCivil(year: number, month: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5);
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** Whether `zone` is UTC itself: times without an offset are then read as they are, at no cost. */
export function isUtcZone(zone: string | undefined): boolean {
  return zone === undefined || zone === 'UTC';
}

/** Why `zone` is not a time zone `localTimeToUtc` reads; undefined when it is one. */
export function timeZoneProblem(zone: string): string | undefined {
  if (canonicalTimeZone(zone) !== undefined) return undefined;
  return `time_zone '${zone}': no such time zone${zoneHint(zone)}; expected an IANA zone name such as Europe/Berlin or America/New_York, or UTC`;
}

/** A zone's name as Intl knows it (`europe/berlin` is `Europe/Berlin`, `Etc/UTC` is `UTC`), to compare zones by; undefined for a name that is no zone. */
export function canonicalTimeZone(zone: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/**
 * Names Intl takes as zones that are abbreviations, not places (in upper case), and the places most
 * likely meant by whoever wrote them. IANA's legacy zones: `EST`, `MST`, `HST` are fixed offsets all year
 * (a New York shop's `EST` is an hour off all summer); `CET`, `EST5EDT` and their kind are rules, or
 * (tz data 2024b on) a city picked for them. And Java's three-letter ids, which ICU (Node's Intl) takes
 * too, some as another place than the abbreviation is said of: `BST` is Asia/Dhaka, not London; `IST`
 * Asia/Kolkata; `NST` Pacific/Auckland; `AST` America/Anchorage. No places listed: ids of no
 * abbreviation in use, said with the zone they are read as.
 */
export const ZONE_ABBREVIATIONS: Readonly<Record<string, readonly string[]>> = {
  EST: ['America/New_York'],
  MST: ['America/Denver', 'America/Phoenix'],
  HST: ['Pacific/Honolulu'],
  EST5EDT: ['America/New_York'],
  CST6CDT: ['America/Chicago'],
  MST7MDT: ['America/Denver'],
  PST8PDT: ['America/Los_Angeles'],
  CET: ['Europe/Paris', 'Europe/Berlin'],
  MET: ['Europe/Paris', 'Europe/Berlin'],
  EET: ['Europe/Athens', 'Europe/Helsinki'],
  WET: ['Europe/Lisbon'],
  PST: ['America/Los_Angeles'],
  CST: ['America/Chicago', 'Asia/Shanghai'],
  AST: ['America/Halifax'],
  BST: ['Europe/London'],
  IST: ['Asia/Kolkata', 'Europe/Dublin'],
  NST: ['America/St_Johns'],
  SST: ['Pacific/Pago_Pago', 'Asia/Singapore'],
  JST: ['Asia/Tokyo'],
  EAT: ['Africa/Nairobi'],
  CAT: ['Africa/Maputo'],
  ECT: ['America/Guayaquil', 'Europe/Paris'],
  ART: ['America/Argentina/Buenos_Aires'],
  ACT: ['Australia/Darwin', 'Australia/Adelaide'],
  AET: ['Australia/Sydney'],
  AGT: [],
  BET: [],
  CNT: [],
  CTT: [],
  IET: [],
  MIT: [],
  NET: [],
  PLT: [],
  PNT: [],
  PRT: [],
  VST: [],
};

/**
 * Why `zone`, a name Intl takes, is most likely not what was meant: an abbreviation, which names no place
 * (`EST`: UTC-05:00 all year, where New York has summer time), said with the zone and offsets it is read as
 * and the place most likely meant; or an `Etc/GMT+5`-style name, whose sign is POSIX's (UTC-05:00).
 * Undefined for any other name (a place, UTC, or no zone at all, which timeZoneProblem says). The mapping's `time_zone` and session-features' share it: a warning, not an
 * error, as a fixed UTC-05:00 may be meant. The offsets are those of `year` (by default this one, as a
 * config is checked before any data is read), and said so: rules change (New York kept summer time all of 1974).
 */
export function zoneNameWarning(zone: string, year: number = new Date().getUTCFullYear()): string | undefined {
  const key = zone.trim().toUpperCase();
  const fixed = /^ETC\/GMT([+-])(\d{1,2})$/.exec(key);
  if (fixed !== null && Number(fixed[2]) !== 0 && canonicalTimeZone(zone) !== undefined) return etcGmtWarning(zone, fixed[1] === '+' ? -Number(fixed[2]) : Number(fixed[2]));
  if (!Object.hasOwn(ZONE_ABBREVIATIONS, key)) return undefined;
  const read = canonicalTimeZone(zone);
  if (read === undefined) return undefined;
  // Tz data before 2024b reads `CET` as `CET` itself, later data as Europe/Brussels: said as this runtime reads it.
  const readAsPlace = read.includes('/') ? read : undefined;
  const offsets = yearOffsets(zone, year);
  const listed = ZONE_ABBREVIATIONS[key]!;
  const places = listed.length > 0 ? listed : readAsPlace === undefined ? [] : [readAsPlace];
  const placeText = (place: string): string => {
    const own = yearOffsets(place, year);
    return own === offsets ? place : `${place} (${own})`;
  };
  const meant = places.length === 0 ? 'name the place meant' : places.length === 1 ? `name the place meant, most likely ${placeText(places[0]!)}` : `name the place meant, such as ${places.map(placeText).join(' or ')}`;
  const keep = readAsPlace !== undefined && !places.some((place) => canonicalTimeZone(place) === readAsPlace) ? `; ${readAsPlace} reads as ${zone} does, without this warning` : '';
  return `time_zone '${zone}' is an abbreviation, not a place: it is read${readAsPlace === undefined ? '' : ` as ${readAsPlace}`}, in ${year} ${offsets}; ${meant}${keep}`;
}

/**
 * `Etc/GMT+5` is UTC-05:00: tz data keeps POSIX's sign, west of Greenwich positive, the opposite of how
 * offsets are written everywhere else (ISO 8601, `+05:00`), so the name is most often read the wrong way round.
 */
function etcGmtWarning(zone: string, hours: number): string {
  const said = `UTC${hours < 0 ? '-' : '+'}${String(Math.abs(hours)).padStart(2, '0')}:00`;
  const mirror = `Etc/GMT${hours < 0 ? '-' : '+'}${Math.abs(hours)}`;
  return `time_zone '${zone}' is ${said} all year: Etc/GMT names keep POSIX's sign, the opposite of an offset's (${zone} is ${hours < 0 ? 'west' : 'east'} of Greenwich); for UTC${hours < 0 ? '+' : '-'}${String(Math.abs(hours)).padStart(2, '0')}:00 write ${mirror}, and for a shop's local clock name its place (Europe/Berlin), whose offset follows summer time`;
}

/** A zone's offsets in `year`, as said: `UTC-05:00 all year (no summer time)`, or `UTC+01:00, UTC+02:00 in summer time`. */
function yearOffsets(zone: string, year: number): string {
  const offsetAt = intlOffsets(zone);
  // Mid-month, every month: a year's rules need not follow January and July (New York kept summer time from January 1974).
  const months = Array.from({ length: 12 }, (_, month) => offsetAt(Date.UTC(year, month, 15)));
  const [standard, summer] = [Math.min(...months), Math.max(...months)];
  const said = (offset: number): string => {
    const minutes = Math.abs(offset) / 60_000;
    return `UTC${offset < 0 ? '-' : '+'}${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
  };
  // Summer time is the later clock, in either hemisphere (January is summer in Sydney).
  return standard === summer ? `${said(standard)} all year (no summer time)` : `${said(standard)}, ${said(summer)} in summer time`;
}

/**
 * The name most likely meant, as ` (did you mean ...)`: a city alone (`Berlin`, `new york`), the name
 * with stray spaces, or one a few letters away (`Europe/Berln`). Intl itself matches names in any case.
 */
function zoneHint(zone: string): string {
  // Said apart: a fixed offset cannot follow summer time, which is what a zone is for.
  if (/^\s*(?:UTC|GMT)?\s*[+-]\s*\d/i.test(zone)) return ' (an offset is no zone: name the place, whose offset follows summer time)';
  const known = ['UTC', ...Intl.supportedValuesOf('timeZone')];
  const wanted = zone.trim().replaceAll(' ', '_').toLowerCase();
  if (wanted === '') return '';
  const lower = known.map((name) => name.toLowerCase());
  const city = lower.findIndex((name) => name.endsWith(`/${wanted}`));
  if (city >= 0) return ` (did you mean '${known[city]}'?)`;
  const best = closest(wanted, lower);
  return distance(wanted, best) <= (wanted.length <= 6 ? 2 : 3) ? ` (did you mean '${known[lower.indexOf(best)]}'?)` : '';
}

/**
 * The instant of each local time of `zone` (an IANA name; RangeError when there is no such zone). Where a
 * local time occurs twice (clocks set back), the earlier instant; where it does not occur (clocks set
 * forward), the time moved forward by the gap (02:30 in a gap of an hour is 03:30): Temporal's
 * `compatible` disambiguation, java.time's ZonedDateTime.of. Assumes no zone changes its offset twice
 * within two days, true of every zone since 1970.
 */
export function localTimeToUtc(zone: string): LocalToUtc {
  const offsetAt = intlOffsets(zone);
  /** The instant of one local time, from Intl alone. */
  const resolve = (local: number): number => {
    // Every instant a local time can be lies within a day of it (offsets stay under 18 hours).
    const before = offsetAt(local - DAY);
    const after = offsetAt(local + DAY);
    if (before === after) return local - before;
    const earlier = local - before;
    if (offsetAt(earlier) === before) return earlier; // unique, or the earlier of two (set back)
    const later = local - after;
    if (offsetAt(later) === after) return later;
    return earlier; // in the gap (set forward): with the offset before it, which moves it forward by the gap
  };
  // Local days: each of them has its offsets (as seen from its local times), subtracted.
  return shiftedByDay((local) => local - resolve(local), -1);
}

/**
 * The local wall-clock time of each instant in `zone` (an IANA name; RangeError when there is no such
 * zone), as epoch milliseconds read as UTC: what a clock there showed, hour of day and day of week
 * included (session-features' `time_zone`). The opposite of localTimeToUtc, and simpler: an instant has
 * one local time. Assumes no zone changes its offset twice within a day, true of every zone since 1970.
 */
export function utcToLocal(zone: string): UtcToLocal {
  // UTC days: each of them has its offsets (as Intl gives them), added.
  return shiftedByDay(intlOffsets(zone), 1);
}

/** The zone's offset (local minus UTC, in milliseconds) at an instant, from Intl: microseconds a call. */
function intlOffsets(zone: string): (instant: number) => number {
  const problem = timeZoneProblem(zone);
  if (problem !== undefined) throw new RangeError(problem);
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    era: 'short',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  return (instant) => {
    const whole = Math.floor(instant / SECOND) * SECOND;
    let year = 0;
    let month = 0;
    let day = 0;
    let hour = 0;
    let minute = 0;
    let second = 0;
    let beforeChrist = false;
    for (const part of format.formatToParts(whole)) {
      if (part.type === 'year') year = Number(part.value);
      else if (part.type === 'month') month = Number(part.value);
      else if (part.type === 'day') day = Number(part.value);
      else if (part.type === 'hour') hour = Number(part.value) % 24;
      else if (part.type === 'minute') minute = Number(part.value);
      else if (part.type === 'second') second = Number(part.value);
      else if (part.type === 'era') beforeChrist = part.value === 'BC';
    }
    // 1 BC is year 0 (Date.UTC would read a year below 100 as 19xx).
    const date = (daysFromCivil(beforeChrist ? 1 - year : year, month) + day - 1) * DAY;
    return date + ((hour * 60 + minute) * 60 + second) * SECOND - whole;
  };
}

/**
 * `time + sign * offsetOf(time)`, where the offset is constant over each day of `time` (local days for
 * localTimeToUtc, UTC days for utcToLocal) but for one change at most. offsetOf (from Intl) is called a
 * few dozen times per day, once: each day's offsets are worked out the first time one of its times
 * comes, and kept; per time, the common case is a range check and an add.
 */
function shiftedByDay(offsetOf: (time: number) => number, sign: 1 | -1): (time: number) => number {
  /** A day's shifts (sign * offset): `before` up to `switchAt` (its end where it has one offset), `after` from there. */
  const dayShifts = (start: number): { switchAt: number; before: number; after: number } => {
    const last = start + DAY - SECOND; // changes fall on whole seconds: the day's last one holds to its end
    const before = offsetOf(start);
    const after = offsetOf(last);
    if (before === after) return { switchAt: start + DAY, before: sign * before, after: sign * after };
    let low = start;
    let high = last;
    while (high - low > SECOND) {
      const middle = low + Math.floor((high - low) / (2 * SECOND)) * SECOND;
      if (offsetOf(middle) === before) low = middle;
      else high = middle;
    }
    return { switchAt: high, before: sign * before, after: sign * after };
  };
  const days = new Map<number, { switchAt: number; before: number; after: number }>();
  // Before the map, a table of the days last seen, a slot per day of 11 years: times out of order
  // (a shuffled export) cost an index there, not a map lookup.
  const slotDay = new Float64Array(SLOTS).fill(NaN);
  const slotSwitchAt = new Float64Array(SLOTS);
  const slotBefore = new Float64Array(SLOTS);
  const slotAfter = new Float64Array(SLOTS);
  // The span the last time fell in, [from, to), and its shift: times come mostly in order. Fields of
  // an object, which V8 updates in place as doubles (`let`s of the closure took a fifth longer a time).
  // NaN: no span yet, no time falls in it.
  const span = { from: NaN, to: NaN, shift: NaN };
  /** A time outside the span of the last one: its day's span and shift, from the table, the map or Intl. */
  const enterSpan = (time: number): number => {
    if (!Number.isFinite(time)) return NaN;
    const day = Math.floor(time / DAY);
    const slot = day & (SLOTS - 1);
    if (slotDay[slot] !== day) {
      let shifts = days.get(day);
      if (shifts === undefined) {
        if (days.size >= MAX_DAYS_KEPT) days.clear();
        shifts = dayShifts(day * DAY);
        days.set(day, shifts);
      }
      slotDay[slot] = day;
      slotSwitchAt[slot] = shifts.switchAt;
      slotBefore[slot] = shifts.before;
      slotAfter[slot] = shifts.after;
    }
    const switchAt = slotSwitchAt[slot]!;
    if (time < switchAt) {
      span.from = day * DAY;
      span.to = switchAt;
      span.shift = slotBefore[slot]!;
    } else {
      span.from = switchAt;
      span.to = day * DAY + DAY;
      span.shift = slotAfter[slot]!;
    }
    return time + span.shift;
  };
  // Kept small, so that the optimiser inlines it where it is called (the mapper, session-features):
  // the rest runs once per span.
  return (time) => (time >= span.from && time < span.to ? time + span.shift : enterSpan(time));
}

/** `+01:00`, `-05:30`, `+00:00`: an offset from UTC in minutes east, as ISO 8601 writes it. */
export function offsetText(offsetMinutes: number): string {
  const size = Math.abs(offsetMinutes);
  return `${offsetMinutes < 0 ? '-' : '+'}${String(Math.floor(size / 60)).padStart(2, '0')}:${String(size % 60).padStart(2, '0')}`;
}

/** Told the first UTC offset other than zero that a source's times carried in their text, and the source's label. */
export type TimeOffsetListener = (offsetMinutes: number, source: string) => void;

/** The pipeline's word of its sources' offsets, kept in its `shared` map (PluginContext.shared). */
interface TimeOffsetsSeen {
  first?: { offsetMinutes: number; source: string };
  listeners: TimeOffsetListener[];
}

const TIME_OFFSETS_SEEN = 'tributary:time-offsets-seen';

function timeOffsetsSeen(shared: Map<string, unknown>): TimeOffsetsSeen {
  let seen = shared.get(TIME_OFFSETS_SEEN) as TimeOffsetsSeen | undefined;
  if (seen === undefined) shared.set(TIME_OFFSETS_SEEN, (seen = { listeners: [] }));
  return seen;
}

/**
 * What a source gives createEventMapper as its onTimeOffset, so that the pipeline's stages hear, once,
 * that its times carry an offset of their own (`2024-03-12T10:00:00+01:00`): each such time is the right
 * instant, but a stage that takes hours of a clock from it (session-features' hour of day) takes UTC's
 * unless told a zone. Core names no stage: a stage listens (onTimeOffset) where its config leaves the
 * zone unsaid. Undefined without a `shared` map (a context made by hand): nothing to tell.
 */
export function timeOffsetReporter(shared: Map<string, unknown> | undefined, source: string): ((offsetMinutes: number) => void) | undefined {
  if (shared === undefined) return undefined;
  const seen = timeOffsetsSeen(shared);
  return (offsetMinutes) => {
    if (seen.first !== undefined || offsetMinutes === 0) return;
    seen.first = { offsetMinutes, source };
    for (const listener of seen.listeners) listener(offsetMinutes, source);
  };
}

/**
 * Calls `listener` once, with the first UTC offset other than zero that one of the pipeline's sources
 * read in a time's text (timeOffsetReporter): at once where one was read already, stages and sources
 * being made in either order. Nothing without a `shared` map.
 */
export function onTimeOffset(shared: Map<string, unknown> | undefined, listener: TimeOffsetListener): void {
  if (shared === undefined) return;
  const seen = timeOffsetsSeen(shared);
  if (seen.first !== undefined) listener(seen.first.offsetMinutes, seen.first.source);
  else seen.listeners.push(listener);
}

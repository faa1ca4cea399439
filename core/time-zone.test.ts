import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalTimeZone, localTimeToUtc, offsetText, onTimeOffset, timeOffsetReporter, timeZoneProblem, utcToLocal, ZONE_ABBREVIATIONS, zoneNameWarning } from './time-zone.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

/** The local time of `instant` in `zone` (as epoch milliseconds read as UTC), from Intl: the reference. */
function localOf(zone: string): (instant: number) => number {
  const format = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
  return (instant) => {
    const parts = Object.fromEntries(format.formatToParts(instant).map((p) => [p.type, Number(p.value)]));
    return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
  };
}

test('localTimeToUtc: each local time, in 5-minute steps over the days around every change of offset in the years given, is the earliest instant that shows it, or (in a gap) the instant that shows it moved forward by the gap; the same in time order as shuffled (its cache of local days)', () => {
  const zones: [string, number, number][] = [
    ['Europe/Berlin', 2023, 2025], // an hour, at 02:00 and 03:00
    ['Australia/Lord_Howe', 2024, 2025], // half an hour of summer time
    ['Pacific/Apia', 2011, 2012], // 2011-12-30 skipped: a gap of a day
    ['America/Santiago', 2024, 2025], // changes at midnight
  ];
  for (const [zone, from, to] of zones) {
    const localAt = localOf(zone);
    const offsetAt = (instant: number): number => localAt(instant) - instant;
    // The changes of offset, found by the hour, then the day around each of them in local time.
    const checks: { local: number; before: number; after: number }[] = [];
    for (let hour = Date.UTC(from, 0, 1); hour < Date.UTC(to, 0, 1); hour += 3_600_000) {
      const before = offsetAt(hour);
      const after = offsetAt(hour + 3_600_000);
      if (before === after) continue;
      for (let local = hour - DAY; local <= hour + DAY; local += 5 * MINUTE) checks.push({ local, before, after });
    }
    assert.ok(checks.length > 0, zone);
    const inOrder = localTimeToUtc(zone);
    const shuffled = localTimeToUtc(zone);
    // A seeded shuffle: the same order on every run.
    const order = checks.map((_, i) => i);
    let seed = 11;
    for (let i = order.length - 1; i > 0; i--) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const j = seed % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const got = new Map<number, number>();
    for (const index of order) got.set(index, shuffled(checks[index]!.local));
    checks.forEach(({ local, before, after }, index) => {
      const instant = inOrder(local);
      assert.equal(got.get(index), instant, `${zone} ${new Date(local).toISOString()}: shuffled`);
      const shows = [local - before, local - after].filter((candidate) => localAt(candidate) === local).sort((a, b) => a - b);
      const what = `${zone} ${new Date(local).toISOString().slice(0, 19)}`;
      if (shows.length > 0) assert.equal(instant, shows[0], `${what}: the earliest instant showing it`);
      else assert.equal(localAt(instant), local + (after - before), `${what}: in the gap, moved forward by it`);
    });
  }
});

test('localTimeToUtc: offsets of seconds (local mean time, before zones), and a year below 100 or before Christ', () => {
  const berlin = localTimeToUtc('Europe/Berlin');
  assert.equal(berlin(Date.UTC(1880, 0, 1)), Date.UTC(1880, 0, 1) - (53 * 60 + 28) * 1000); // LMT +00:53:28
  const year50 = new Date(0).setUTCFullYear(50, 5, 1);
  assert.equal(berlin(year50), year50 - (53 * 60 + 28) * 1000);
  const year0 = new Date(0).setUTCFullYear(0, 0, 1);
  assert.equal(berlin(year0), year0 - (53 * 60 + 28) * 1000);
  assert.ok(Number.isNaN(berlin(NaN)));
});

test('utcToLocal: each instant, in 5-minute steps over the days around every change of offset in the years given, is the local time Intl shows for it; the same in time order as shuffled (its cache of UTC days)', () => {
  const zones: [string, number, number][] = [
    ['Europe/Berlin', 2023, 2025], // an hour, at 01:00Z
    ['Australia/Lord_Howe', 2024, 2025], // half an hour of summer time
    ['Pacific/Apia', 2011, 2012], // 2011-12-30 skipped: a day
    ['America/Santiago', 2024, 2025], // changes at local midnight
    ['Asia/Kathmandu', 1985, 1987], // +05:30 to +05:45 on 1986-01-01
  ];
  for (const [zone, from, to] of zones) {
    const localAt = localOf(zone);
    const instants: number[] = [];
    for (let hour = Date.UTC(from, 0, 1); hour < Date.UTC(to, 0, 1); hour += 3_600_000) {
      if (localAt(hour) - hour === localAt(hour + 3_600_000) - hour - 3_600_000) continue;
      for (let instant = hour - DAY; instant <= hour + DAY; instant += 5 * MINUTE) instants.push(instant);
    }
    assert.ok(instants.length > 0, zone);
    const inOrder = utcToLocal(zone);
    const shuffled = utcToLocal(zone);
    const order = instants.map((_, i) => i);
    let seed = 13;
    for (let i = order.length - 1; i > 0; i--) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const j = seed % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const got = new Map<number, number>();
    for (const index of order) got.set(index, shuffled(instants[index]!));
    instants.forEach((instant, index) => {
      const what = `${zone} ${new Date(instant).toISOString()}`;
      assert.equal(inOrder(instant), localAt(instant), what);
      assert.equal(got.get(index), localAt(instant), `${what}: shuffled`);
    });
  }
});

test('utcToLocal: milliseconds kept, offsets of seconds (local mean time), a year below 100 or before Christ, and a zone that is none', () => {
  const berlin = utcToLocal('Europe/Berlin');
  assert.equal(berlin(Date.UTC(2024, 6, 1, 12, 0, 0, 123)), Date.UTC(2024, 6, 1, 14, 0, 0, 123));
  assert.equal(berlin(Date.UTC(1880, 0, 1)), Date.UTC(1880, 0, 1) + (53 * 60 + 28) * 1000); // LMT +00:53:28
  const year50 = new Date(0).setUTCFullYear(50, 5, 1);
  assert.equal(berlin(year50), year50 + (53 * 60 + 28) * 1000);
  const year0 = new Date(0).setUTCFullYear(0, 0, 1);
  assert.equal(berlin(year0), year0 + (53 * 60 + 28) * 1000);
  assert.ok(Number.isNaN(berlin(NaN)));
  assert.equal(utcToLocal('Asia/Kathmandu')(Date.UTC(2024, 5, 1)), Date.UTC(2024, 5, 1, 5, 45));
  assert.throws(() => utcToLocal('Europe/Berln'), { name: 'RangeError', message: /^time_zone 'Europe\/Berln': no such time zone \(did you mean 'Europe\/Berlin'\?\)/ });
});

test('timeZoneProblem: none for a zone Intl knows (any case, an alias); for another name, the zone most likely meant', () => {
  for (const zone of ['UTC', 'Europe/Berlin', 'europe/berlin', 'America/New_York', 'Asia/Kathmandu', 'US/Eastern', 'Etc/GMT-1']) assert.equal(timeZoneProblem(zone), undefined, zone);
  const said = (zone: string): string => timeZoneProblem(zone)!.replace(/; expected an IANA zone name such as Europe\/Berlin or America\/New_York, or UTC$/, '');
  assert.equal(said('Europe/Berln'), "time_zone 'Europe/Berln': no such time zone (did you mean 'Europe/Berlin'?)");
  assert.equal(said('Berlin'), "time_zone 'Berlin': no such time zone (did you mean 'Europe/Berlin'?)");
  assert.equal(said('new york'), "time_zone 'new york': no such time zone (did you mean 'America/New_York'?)");
  assert.equal(said(' Europe/Berlin'), "time_zone ' Europe/Berlin': no such time zone (did you mean 'Europe/Berlin'?)");
  assert.equal(said('+01:00'), "time_zone '+01:00': no such time zone (an offset is no zone: name the place, whose offset follows summer time)");
  assert.equal(said('UTC+2'), "time_zone 'UTC+2': no such time zone (an offset is no zone: name the place, whose offset follows summer time)");
  assert.equal(said('Mars/Olympus_Mons'), "time_zone 'Mars/Olympus_Mons': no such time zone");
  assert.equal(said(''), "time_zone '': no such time zone");
});

test('zoneNameWarning: an abbreviation Intl takes as a zone (EST, CET, BST, est) is said with what it is read as, its offsets and the place most likely meant; a place, UTC or no zone is not (was: EST taken without a word, UTC-05:00 all summer)', () => {
  // What this runtime's tz data reads each as: America/Panama from 2024b on, EST itself before.
  const as = (zone: string): string => {
    const read = canonicalTimeZone(zone)!;
    return read.includes('/') ? ` as ${read}` : '';
  };
  const keep = (zone: string): string => {
    const read = canonicalTimeZone(zone)!;
    return read.includes('/') ? `; ${read} reads as ${zone} does, without this warning` : '';
  };
  // The offsets of the year asked for (by default this one), which the warning names.
  const year = new Date().getUTCFullYear();
  assert.equal(zoneNameWarning('EST'), zoneNameWarning('EST', year));
  assert.equal(
    zoneNameWarning('EST', 2024),
    `time_zone 'EST' is an abbreviation, not a place: it is read${as('EST')}, in 2024 UTC-05:00 all year (no summer time); name the place meant, most likely America/New_York (UTC-05:00, UTC-04:00 in summer time)${keep('EST')}`,
  );
  assert.equal(
    zoneNameWarning('est', 2024),
    `time_zone 'est' is an abbreviation, not a place: it is read${as('est')}, in 2024 UTC-05:00 all year (no summer time); name the place meant, most likely America/New_York (UTC-05:00, UTC-04:00 in summer time)${keep('est')}`,
  );
  assert.equal(
    zoneNameWarning('CET', 2024),
    `time_zone 'CET' is an abbreviation, not a place: it is read${as('CET')}, in 2024 UTC+01:00, UTC+02:00 in summer time; name the place meant, such as Europe/Paris or Europe/Berlin${keep('CET')}`,
  );
  // Java's ids, which ICU takes: BST is Bangladesh's, not British Summer Time.
  assert.equal(
    zoneNameWarning('BST', 2024),
    `time_zone 'BST' is an abbreviation, not a place: it is read${as('BST')}, in 2024 UTC+06:00 all year (no summer time); name the place meant, most likely Europe/London (UTC+00:00, UTC+01:00 in summer time)${keep('BST')}`,
  );
  // Where the place meant is the one it is read as, there is no other way to keep it to tell of.
  assert.match(zoneNameWarning('PST8PDT', 2024)!, /^time_zone 'PST8PDT' is an abbreviation, not a place: it is read( as America\/Los_Angeles)?, in 2024 UTC-08:00, UTC-07:00 in summer time; name the place meant, most likely America\/Los_Angeles$/);
  for (const zone of ['UTC', 'GMT', 'Etc/UTC', 'Europe/Berlin', 'America/New_York', 'US/Eastern', 'GB', 'Japan', 'Etc/GMT+0', 'Etc/GMT0', 'EDT', 'CEST', 'Mars/Olympus_Mons', '']) {
    assert.equal(zoneNameWarning(zone), undefined, zone);
  }
  // Every abbreviation listed that this runtime takes is said, and every place it names is a zone.
  for (const name of Object.keys(ZONE_ABBREVIATIONS)) {
    if (timeZoneProblem(name) !== undefined) continue;
    const warning = zoneNameWarning(name);
    assert.ok(warning?.startsWith(`time_zone '${name}' is an abbreviation, not a place`), name);
    for (const place of ZONE_ABBREVIATIONS[name]!) assert.equal(timeZoneProblem(place), undefined, `${name}: ${place}`);
  }
});

test("zoneNameWarning: the offsets it states are those of the year it names, by default this one, the data's where a caller knows it (was: this year's, unnamed): France and Germany had no summer time in 1974", () => {
  assert.match(zoneNameWarning('CET', 1974)!, /, in 1974 UTC\+01:00 all year \(no summer time\); name the place meant, such as Europe\/Paris or Europe\/Berlin/);
  assert.match(zoneNameWarning('CET')!, new RegExp(`, in ${new Date().getUTCFullYear()} UTC\\+01:00, UTC\\+02:00 in summer time;`));
  // A year whose summer time did not follow January and July: New York's began on January 6th, 1974, and ended in October.
  assert.match(zoneNameWarning('EST', 1974)!, /, in 1974 UTC-05:00 all year \(no summer time\); name the place meant, most likely America\/New_York \(UTC-05:00, UTC-04:00 in summer time\)/);
});

test('zoneNameWarning: an Etc/GMT name with an hour is said with the offset it is (Etc/GMT+5 is UTC-05:00, POSIX sign) and the name of the offset likely meant (was: taken without a word)', () => {
  assert.equal(
    zoneNameWarning('Etc/GMT+5'),
    "time_zone 'Etc/GMT+5' is UTC-05:00 all year: Etc/GMT names keep POSIX's sign, the opposite of an offset's (Etc/GMT+5 is west of Greenwich); for UTC+05:00 write Etc/GMT-5, and for a shop's local clock name its place (Europe/Berlin), whose offset follows summer time",
  );
  assert.equal(
    zoneNameWarning('etc/gmt-10'),
    "time_zone 'etc/gmt-10' is UTC+10:00 all year: Etc/GMT names keep POSIX's sign, the opposite of an offset's (etc/gmt-10 is east of Greenwich); for UTC-10:00 write Etc/GMT+10, and for a shop's local clock name its place (Europe/Berlin), whose offset follows summer time",
  );
  // The offsets the names say are what the runtime reads them as.
  assert.equal(localTimeToUtc('Etc/GMT+5')(Date.UTC(2024, 6, 1, 12)), Date.UTC(2024, 6, 1, 17));
  assert.equal(zoneNameWarning('Etc/GMT+99'), undefined); // no zone: timeZoneProblem's to say
});

test('timeOffsetReporter and onTimeOffset: the first offset other than zero a source reports is told once to every listener of the pipeline, made before it or after; zero is not told; without a shared map, nothing', () => {
  assert.deepEqual([60, -330, 0, 345, 840].map(offsetText), ['+01:00', '-05:30', '+00:00', '+05:45', '+14:00']);
  const shared = new Map<string, unknown>();
  const told: string[] = [];
  onTimeOffset(shared, (offset, source) => told.push(`early ${source} ${offset}`));
  const first = timeOffsetReporter(shared, 'source-a')!;
  const second = timeOffsetReporter(shared, 'source-b')!;
  first(0);
  assert.equal(told.length, 0);
  second(120);
  first(60);
  second(60);
  onTimeOffset(shared, (offset, source) => told.push(`late ${source} ${offset}`));
  assert.deepEqual(told, ['early source-b 120', 'late source-b 120']);
  assert.equal(timeOffsetReporter(undefined, 'source-a'), undefined);
  onTimeOffset(undefined, () => assert.fail('no shared map: nothing to tell'));
});

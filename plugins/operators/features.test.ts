import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decodeTable, defineOperator, encodeTable, FeatureBlock, FeatureSelector, inFloat32Range, inTurns, isClickEvent, isCopyingSnapshot, MetricsHub, recordOperator, watermark, type ClickEvent, type Column, type Element, type StreamRecord } from 'tributary';
import { countLoopTurns, runOperator, runYaml, testContext, tempFolder } from 'tributary/testing';
import sessionizer from './sessionizer.js';
import sessionFeatures, { sessionFeatureNames } from './session-features.js';
import userFeatures from './user-features.js';
import hashFeatures, { type HashFeaturesConfig } from './hash-features.js';
import standardize from './standardize.js';
import log1p from './log1p.js';
import clip from './clip.js';
import { Chain, stage, withDefaults, T0, MIN, ev } from './harness.js';
import { ShopperWorld } from '../sources/shoppers.js';
import { pino } from 'pino';

const clock = { now: () => Date.UTC(2030, 0, 1) };
const ctx = () => testContext({ clock });

const named = (e: ClickEvent): Record<string, number> => Object.fromEntries(e.features!.names.map((n, i) => [n, e.features!.values[i]!]));
const eventsOf = (out: Element[]): ClickEvent[] => out.filter((e): e is ClickEvent => e.kind === 'event');

async function chain(stages: Parameters<typeof Chain.build>[0], input: Element[]): Promise<Element[]> {
  return (await Chain.build(stages, ctx())).push(input).end();
}

test('session features at each event use the session up to and including that event', async () => {
  const input: Element[] = [
    ev('u1', 0, 'view', { itemId: 'a', category: 'x', price: 10 }),
    ev('u1', 1, 'view', { itemId: 'b', category: 'y', price: 30 }),
    ev('u1', 3, 'cart', { itemId: 'b', category: 'y', price: 30 }),
    ev('u1', 4, 'view', { itemId: 'a', category: 'x', price: 10 }),
    ev('u1', 6, 'remove_from_cart', { itemId: 'b', price: 30 }),
    watermark(Infinity),
  ];
  const out = eventsOf(await chain([stage(sessionizer), stage(sessionFeatures)], input));
  const f = out.map(named);
  assert.deepEqual(out[0]!.features!.names, sessionFeatureNames);
  assert.deepEqual([f[0]!.s_events, f[0]!.s_views, f[0]!.s_view_price_mean, f[0]!.s_view_price_std, f[0]!.s_is_view], [1, 1, 10, 0, 1]);
  assert.deepEqual([f[2]!.s_events, f[2]!.s_carts, f[2]!.s_cart_value, f[2]!.s_cart_to_view, f[2]!.s_distinct_items, f[2]!.s_repeat_item], [3, 1, 30, 0.5, 2, 1]);
  assert.equal(f[3]!.s_view_price_mean.toFixed(4), (50 / 3).toFixed(4));
  assert.equal(f[3]!.s_view_price_min, 10);
  assert.equal(f[3]!.s_view_price_max, 30);
  assert.equal(f[3]!.s_duration_s, 240);
  assert.equal(f[3]!.s_since_prev_s, 60);
  assert.equal(f[3]!.s_mean_dwell_s, 80);
  assert.deepEqual([f[4]!.s_removes, f[4]!.s_cart_value, f[4]!.s_distinct_categories], [1, 0, 2]);
  // Midnight on a Monday: hour angle 0, weekday 0.
  assert.deepEqual([f[0]!.hour_sin, f[0]!.hour_cos, f[0]!.dow_sin, f[0]!.dow_cos], [0, 1, 0, 1]);
  assert.ok(Math.abs(f[4]!.hour_sin - Math.sin((2 * Math.PI * 6) / 1440)) < 1e-6);
});

/** The hour-of-day and day-of-week features of `instant` as a clock in `zone` showed it, from Intl (the reference). */
function clockFeatures(zone: string, instant: number): number[] {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', weekday: 'short', hour: 'numeric', minute: 'numeric', second: 'numeric' })
      .formatToParts(instant)
      .map((part) => [part.type, part.value]),
  );
  const dayFraction = (Number(parts.hour) * 3600 + Number(parts.minute) * 60 + Number(parts.second)) / 86_400;
  const weekday = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(parts.weekday!);
  return [Math.sin(2 * Math.PI * dayFraction), Math.cos(2 * Math.PI * dayFraction), Math.sin((2 * Math.PI * weekday) / 7), Math.cos((2 * Math.PI * weekday) / 7)];
}

/** session-features' hour and day features at each of `instants` (one user, a session each: 1 h apart at least, or one session). */
async function timeFeatures(config: Record<string, unknown>, instants: number[]): Promise<number[][]> {
  const input: Element[] = instants.map((time) => ({ kind: 'event', userId: 'u1', time, type: 'view' }));
  const out = eventsOf(await chain([stage(sessionizer, { gap: '30m' }), stage(sessionFeatures, config)], [...input, watermark(Infinity)]));
  return out.map((e) => named(e)).map((f) => [f.hour_sin!, f.hour_cos!, f.dow_sin!, f.dow_cos!]);
}

function assertClose(got: number[][], expected: number[][], what: (index: number) => string): void {
  assert.equal(got.length, expected.length);
  got.forEach((row, index) => row.forEach((value, k) => assert.ok(Math.abs(value - expected[index]![k]!) < 1e-6, `${what(index)}: feature ${k} ${value}, expected ${expected[index]![k]}`)));
}

test('session-features time_zone: hour and day features are those of a clock in the zone, summer time followed (Berlin 14:00 in winter and summer, each 15 min across the March and October changes; Kathmandu +05:45); utc_offset_minutes and the default stay UTC shifted (was: no time_zone, a Berlin shop an hour off in summer)', async () => {
  const berlin = { time_zone: 'Europe/Berlin' };
  const winter = Date.UTC(2024, 0, 15, 13); // Monday 14:00 in Berlin
  const summer = Date.UTC(2024, 6, 15, 12); // Monday 14:00 in Berlin
  const fourteen = [Math.sin((2 * Math.PI * 14) / 24), Math.cos((2 * Math.PI * 14) / 24), 0, 1];
  assertClose(await timeFeatures(berlin, [winter, summer]), [fourteen, fourteen], (i) => ['winter', 'summer'][i]!);
  // A fixed offset: 14:00 in winter, 13:00 in summer. The default: UTC, as is time_zone: UTC.
  const thirteen = [Math.sin((2 * Math.PI * 13) / 24), Math.cos((2 * Math.PI * 13) / 24), 0, 1];
  const twelve = [Math.sin((2 * Math.PI * 12) / 24), Math.cos((2 * Math.PI * 12) / 24), 0, 1];
  assertClose(await timeFeatures({ utc_offset_minutes: 60 }, [winter, summer]), [fourteen, thirteen], (i) => `utc_offset_minutes: 60, ${['winter', 'summer'][i]}`);
  assertClose(await timeFeatures({}, [winter, summer]), [thirteen, twelve], (i) => `default, ${['winter', 'summer'][i]}`);
  assertClose(await timeFeatures({ time_zone: 'UTC' }, [winter, summer]), [thirteen, twelve], (i) => `UTC, ${['winter', 'summer'][i]}`);

  // Every 15 minutes from 4 h before to 4 h after each change (01:00Z), Saturday night into Sunday.
  for (const change of [Date.UTC(2024, 2, 31, 1), Date.UTC(2024, 9, 27, 1)]) {
    const instants = Array.from({ length: 33 }, (_, k) => change + (k - 16) * 15 * MIN);
    assertClose(await timeFeatures(berlin, instants), instants.map((instant) => clockFeatures('Europe/Berlin', instant)), (i) => new Date(instants[i]!).toISOString());
  }
  // Berlin by the local hour, either side of the October change: 02:45 summer time (00:45Z), then 02:00 winter time (01:00Z).
  const [lastSummer, firstWinter] = await timeFeatures(berlin, [Date.UTC(2024, 9, 27, 0, 45), Date.UTC(2024, 9, 27, 1)]);
  assert.ok(Math.abs(lastSummer![0]! - Math.sin((2 * Math.PI * 2.75) / 24)) < 1e-6 && Math.abs(firstWinter![0]! - Math.sin((2 * Math.PI * 2) / 24)) < 1e-6);

  // Kathmandu: +05:45 all year. Sunday 2023-12-31 18:15Z is Monday 00:00 there.
  const kathmandu = [Date.UTC(2023, 11, 31, 18, 15), Date.UTC(2024, 5, 1, 0, 0)];
  const saturday = [Math.sin((2 * Math.PI * 5) / 7), Math.cos((2 * Math.PI * 5) / 7)];
  assertClose(await timeFeatures({ time_zone: 'Asia/Kathmandu' }, kathmandu), [[0, 1, 0, 1], [Math.sin((2 * Math.PI * 5.75) / 24), Math.cos((2 * Math.PI * 5.75) / 24), ...saturday]], (i) => new Date(kathmandu[i]!).toISOString());
});

test('session-features time_zone keeps no state of its own: its snapshot is the one taken without it (the format unchanged), and a restore from it goes on as the run without one', async () => {
  const zoned = [stage(sessionizer, { gap: '30m', allowed_lateness: '10m' }), stage(sessionFeatures, { time_zone: 'America/New_York' })];
  const plain = [stage(sessionizer, { gap: '30m', allowed_lateness: '10m' }), stage(sessionFeatures)];
  const first = await Chain.build(zoned, ctx());
  first.push(shoppers(3000).slice(0, 1500));
  const other = await Chain.build(plain, ctx());
  other.push(shoppers(3000).slice(0, 1500));
  const saved = await first.snapshot();
  assert.deepEqual(saved, await other.snapshot());
  const whole = eventsOf(await chain(zoned, shoppers(3000))).map((e) => Array.from(e.features!.values));
  const second = await Chain.build(zoned, ctx(), saved);
  second.push(shoppers(3000).slice(1500));
  assert.deepEqual([...eventsOf(first.output), ...eventsOf(second.end())].map((e) => Array.from(e.features!.values)), whole);
});

test('session features without a sessionizer: the event is dead-lettered with the reason', async () => {
  const context = ctx();
  const { output } = await runOperator(sessionFeatures, {} as never, [ev('u1', 0)], context);
  assert.equal(output.length, 0);
  assert.match(context.deadLetters[0]!.reason, /put a sessionizer before session-features/);
});

test('user features across sessions: frequency, monetary, recency, decayed counts, mean session length', async () => {
  const input: Element[] = [
    ev('u1', 0), ev('u1', 10, 'purchase', { price: 20 }),
    ev('u1', 24 * 60), ev('u1', 24 * 60 + 30), ev('u1', 24 * 60 + 40, 'purchase', { price: 5 }),
    watermark(Infinity),
  ];
  const out = eventsOf(await chain([stage(sessionizer), stage(userFeatures, { horizons: ['1d'] })], input));
  const f = out.map(named);
  assert.deepEqual(Object.keys(f[0]!), [
    'u_events', 'u_sessions', 'u_purchases', 'u_monetary', 'u_tenure_days', 'u_recency_days', 'u_days_since_purchase',
    'u_has_purchased', 'u_mean_session_events', 'u_mean_session_minutes', 'u_events_1d', 'u_purchases_1d',
  ]);
  assert.deepEqual([f[1]!.u_events, f[1]!.u_sessions, f[1]!.u_purchases, f[1]!.u_monetary, f[1]!.u_has_purchased], [2, 1, 1, 20, 1]);
  const second = f[2]!;
  assert.equal(second.u_sessions, 2);
  assert.equal(second.u_mean_session_events, 2);
  assert.equal(second.u_mean_session_minutes, 10);
  assert.ok(Math.abs(second.u_recency_days - (24 * 60 - 10) / 1440) < 1e-6);
  assert.ok(Math.abs(second.u_days_since_purchase - (24 * 60 - 10) / 1440) < 1e-6);
  assert.ok(Math.abs(second.u_tenure_days - 1) < 1e-6);
  // Two events a day ago (decayed by e^-1 and a bit), plus this one.
  const expected = 1 + Math.exp(-1) + Math.exp(-(24 * 60 - 10) / 1440);
  assert.ok(Math.abs(second.u_events_1d - expected) < 1e-5, `${second.u_events_1d} vs ${expected}`);
  assert.deepEqual([f[4]!.u_purchases, f[4]!.u_monetary, f[4]!.u_days_since_purchase], [2, 25, 0]);
});

test('user features count each session once: a return to an earlier session is none, a data id reused after the gap is one, a late session older than the current one is one and leaves the current one current', async () => {
  // REES46 has both: one user's data sessions interleave (two tabs), and a user_session id comes back after the gap.
  const interleaved: Element[] = [
    ev('u', 0, 'view', { sessionId: 'A' }), ev('u', 2, 'view', { sessionId: 'B' }), ev('u', 3, 'view', { sessionId: 'A' }),
    ev('u', 4, 'view', { sessionId: 'A' }), ev('u', 100, 'view', { sessionId: 'A' }), watermark(Infinity),
  ];
  const data = eventsOf(await chain([stage(sessionizer, { session_id_from: 'data' }), stage(userFeatures, { horizons: [] })], interleaved)).map(named);
  assert.deepEqual(data.map((f) => f.u_sessions), [1, 2, 2, 2, 3]);
  // At the third session the two before it are done: 4 events between them.
  assert.equal(data[4]!.u_mean_session_events, 2);
  // Two tabs that start in the same minute, their events interleaved: two sessions, each switch opens none.
  const sameStart = (): Element[] => [
    ev('u', 0, 'view', { sessionId: 'A' }), ev('u', 0, 'view', { sessionId: 'B' }), ev('u', 1, 'view', { sessionId: 'A' }),
    ev('u', 2, 'cart', { sessionId: 'B' }), watermark(T0 + 2 * MIN), ev('u', 3, 'view', { sessionId: 'A' }), ev('u', 4, 'view', { sessionId: 'B' }), watermark(Infinity),
  ];
  const tabStages = [stage(sessionizer, { session_id_from: 'data' }), stage(userFeatures, { horizons: ['1h'] })];
  const tabs = await chain(tabStages, sameStart());
  assert.deepEqual(eventsOf(tabs).map((e) => [e.sessionId, (e.session!.start - T0) / MIN, named(e).u_sessions]), [['A', 0, 1], ['B', 0, 2], ['A', 0, 2], ['B', 0, 2], ['A', 0, 2], ['B', 0, 2]]);
  const serialize = (out: Element[]) => out.map((e) => JSON.stringify({ ...e, features: (e as ClickEvent).features ? Array.from((e as ClickEvent).features!.values) : undefined }));
  for (let cut = 0; cut <= sameStart().length; cut++) {
    const first = await Chain.build(tabStages, ctx());
    first.push(sameStart().slice(0, cut));
    const second = await Chain.build(tabStages, ctx(), await first.snapshot());
    assert.deepEqual(serialize([...first.output, ...second.push(sameStart().slice(cut)).end()]), serialize(tabs), `cut at ${cut}`);
  }
  // A late event bridging two closed sessions merges them (into the earlier one): one session from then on.
  const bridging: Element[] = [ev('m', 0), ev('m', 50), watermark(T0 + 120 * MIN), ev('m', 25, 'cart'), ev('m', 60), watermark(Infinity)];
  const gap = eventsOf(await chain([stage(sessionizer, { gap: '30m', allowed_lateness: '2h' }), stage(userFeatures, { horizons: [] })], bridging)).map(named);
  assert.deepEqual(gap.map((f) => f.u_sessions), [1, 2, 1, 1]);
  // A late event opening a session of its own, older than the current one, counts once; the current one
  // stays current, so its next events open nothing, and the completed sessions are still the first alone.
  const older: Element[] = [ev('m', 0), ev('m', 10), ev('m', 100), ev('m', 105), watermark(T0 + 110 * MIN), ev('m', 50), ev('m', 115), ev('m', 120), watermark(Infinity)];
  const late = eventsOf(await chain([stage(sessionizer, { gap: '30m', allowed_lateness: '2h' }), stage(userFeatures, { horizons: [] })], older));
  assert.deepEqual(late.map((e) => (e.session!.start - T0) / MIN), [0, 0, 100, 100, 50, 100, 100]);
  assert.deepEqual(late.map((e) => named(e).u_sessions), [1, 1, 2, 2, 3, 3, 3]);
  assert.deepEqual(late.slice(4).map((e) => [named(e).u_mean_session_events, named(e).u_mean_session_minutes, named(e).u_recency_days]), Array(3).fill([2, 10, Math.fround(90 / 1440)]));
});

test('blocks append in pipeline order with stable names and a fixed width; transforms change named features in place', async () => {
  const input: Element[] = [];
  for (let m = 0; m < 50; m++) input.push(ev(`u${m % 3}`, m, m % 7 === 0 ? 'cart' : 'view', { itemId: `i${m % 11}`, category: `c${m % 4}`, price: 1 + (m % 13) * 100, attrs: { brand: `b${m % 5}` } }));
  input.push(watermark(Infinity));
  const stages = [
    stage(sessionizer), stage(sessionFeatures), stage(userFeatures), stage(hashFeatures, { fields: ['category', 'attrs.brand'], width: 8, prefix: 'h' }),
  ];
  const plain = eventsOf(await chain(stages, input.map((e) => ({ ...e }))));
  const width = sessionFeatureNames.length + 16 + 8;
  for (const e of plain) {
    assert.equal(e.features!.values.length, width);
    assert.equal(e.features!.names, plain[0]!.features!.names, 'one shared names array');
  }
  assert.deepEqual(plain[0]!.features!.names.slice(-9), ['u_purchases_30d', 'h_0', 'h_1', 'h_2', 'h_3', 'h_4', 'h_5', 'h_6', 'h_7']);
  // Two hashed fields: absolute bucket values sum to at most 2, and the same input hashes alike.
  for (const e of plain) {
    const h = Array.from(e.features!.values.slice(-8));
    assert.ok(h.reduce((a, x) => a + Math.abs(x), 0) <= 2);
  }
  const transformed = eventsOf(
    await chain([...stages, stage(log1p, { features: ['s_price'] }), stage(standardize, { features: ['u_events'] }), stage(clip, { features: ['s_view_price_*'], max: 300 })], input.map((e) => ({ ...e }))),
  );
  const p = plain.map(named);
  const t = transformed.map(named);
  assert.equal(t[5]!.s_price, Math.fround(Math.log1p(p[5]!.s_price)));
  assert.ok(t.every((x) => x.s_view_price_max! <= 300 && x.s_view_price_mean! <= 300));
  assert.equal(t[5]!.s_events, p[5]!.s_events, 'features not named are untouched');
  const raw = p.map((x) => x.u_events!);
  const mean = raw.reduce((a, x) => a + x, 0) / raw.length;
  const sd = Math.sqrt(raw.reduce((a, x) => a + (x - mean) ** 2, 0) / (raw.length - 1));
  assert.ok(Math.abs(t.at(-1)!.u_events! - (raw.at(-1)! - mean) / sd) < 1e-4, 'the last value is standardised by the statistics of all values');
});

/** A user's feature block as docs/plugin-authoring.md writes one: `<prefix>_minute` and `<prefix>_price`, through the public FeatureBlock. */
const userBlockNames = (config: { prefix: string }): string[] => [`${config.prefix}_minute`, `${config.prefix}_price`];
const userBlock = defineOperator<{ prefix: string }>({
  name: 'user-block',
  summary: 'Two features of the event (tests only).',
  emits: [],
  config: { type: 'object', additionalProperties: false, properties: { prefix: { type: 'string', default: 'mine' } } },
  featureNames: userBlockNames,
  featureNamesField: 'prefix',
  create(config, context) {
    const block = new FeatureBlock(userBlockNames(config));
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (isClickEvent(record)) {
            const values = block.append(record);
            values[block.offset] = (record.time - T0) / MIN;
            values[block.offset + 1] = inFloat32Range(record.price ?? -1);
          }
          emit(record);
        },
      })),
    };
  },
});

/** The same block as a plugin without FeatureBlock writes it: a vector of its own per event (docs/plugin-authoring.md before FeatureBlock was public). */
const handMadeBlock = defineOperator<Record<string, never>>({
  name: 'hand-made-block',
  summary: 'Two features of the event, vector made by hand (tests only).',
  emits: [],
  config: { type: 'object', additionalProperties: false, properties: {} },
  create(_config, context) {
    let namesIn: readonly string[] | undefined;
    let namesOut: readonly string[] | undefined;
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (isClickEvent(record)) {
            const old = record.features;
            const used = old ? old.names.length : 0;
            if (namesOut === undefined || old?.names !== namesIn) {
              namesIn = old?.names;
              namesOut = [...(namesIn ?? []), 'mine_minute', 'mine_price'];
            }
            const values = new Float32Array(used + 2);
            if (old) values.set(old.values.subarray(0, used));
            values[used] = (record.time - T0) / MIN;
            values[used + 1] = record.price ?? -1;
            record.features = { names: namesOut, values };
          }
          emit(record);
        },
      })),
    };
  },
});

test("a plugin's feature block between built-in blocks (the public FeatureBlock, or a vector made by hand) appends its names and values in order, and leaves the built-ins' as they are; through FeatureBlock every block of the chain writes one values array per event", async () => {
  const input: Element[] = [];
  for (let m = 0; m < 60; m++) input.push(ev(`u${m % 4}`, m, m % 9 === 0 ? 'cart' : 'view', { itemId: `i${m % 7}`, category: `c${m % 3}`, ...(m % 5 === 0 ? {} : { price: 10 + m }) }));
  input.push(watermark(Infinity));
  const builtIn = [stage(sessionizer), stage(sessionFeatures), stage(userFeatures, { horizons: ['1d'] }), stage(hashFeatures, { fields: ['category'], width: 4 })];
  const plain = eventsOf(await chain(builtIn, input.map((e) => ({ ...e }))));
  for (const block of [userBlock, handMadeBlock]) {
    for (const at of [1, 2, 3, 4]) {
      // A stage after every block that notes the values array each event has there.
      const arrays = new Map<ClickEvent, Set<Float32Array>>();
      const spy = defineOperator<Record<string, never>>({
        name: 'spy', summary: 'Notes the values arrays (tests only).', emits: [], config: { type: 'object', properties: {} },
        create: (_config, context) => ({
          apply: recordOperator(context, () => ({
            record(record, emit) {
              if (isClickEvent(record) && record.features) arrays.set(record, (arrays.get(record) ?? new Set()).add(record.features.values));
              emit(record);
            },
          })),
        }),
      });
      const stages = [...builtIn.slice(0, at), stage(block as typeof userBlock), ...builtIn.slice(at)].flatMap((s, k) => (k === 0 ? [s] : [s, stage(spy)]));
      const got = eventsOf(await chain(stages, input.map((e) => ({ ...e }))));
      const where = `${block.name} at stages[${at}]`;
      assert.equal(got.length, plain.length, where);
      const names = [...plain[0]!.features!.names];
      const blockAt = at === 1 ? 0 : plain[0]!.features!.names.indexOf(at === 2 ? 'dow_cos' : at === 3 ? 'u_purchases_1d' : 'hash_3') + 1;
      names.splice(blockAt, 0, 'mine_minute', 'mine_price');
      got.forEach((e, k) => {
        assert.deepEqual(e.features!.names, names, where);
        assert.equal(e.features!.names, got[0]!.features!.names, `${where}: one shared names array`);
        assert.equal(e.features!.values.length, names.length, where);
        const values = Array.from(e.features!.values);
        const own = values.splice(blockAt, 2);
        assert.deepEqual(own, [(e.time - T0) / MIN, e.price ?? -1], `${where}: event ${k}`);
        assert.deepEqual(values, Array.from(plain[k]!.features!.values), `${where}: event ${k}, the built-ins' values`);
      });
      // The first event teaches the chain its width; every later one is written in one array, whatever the block before.
      if (block === userBlock) for (const e of got.slice(1)) assert.equal(arrays.get(e)!.size, 1, `${where}: one values array per event`);
      else assert.ok(got.every((e) => arrays.get(e)!.size > 1), `${where}: a vector made by hand is one more array, and the block after it makes another`);
    }
  }
});

/** A user's transform as docs/plugin-authoring.md writes one: multiplies the named features by `factor`, selected through the public FeatureSelector. */
const userScale = defineOperator<{ features: string[]; factor: number }>({
  name: 'scale',
  summary: 'Multiplies the named features (tests only).',
  emits: [],
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['features', 'factor'],
    properties: { features: { type: 'array', items: { type: 'string' } }, factor: { type: 'number' } },
  },
  create(config, context) {
    const selector = new FeatureSelector(config.features, (missing) => context.logger.warn({ missing }, 'scale: features not in the vector'));
    const apply = recordOperator(context, () => ({
      record(record, emit) {
        if (isClickEvent(record) && record.features !== undefined) {
          const indices = selector.indices(record.features.names);
          const values = record.features.values;
          for (let k = 0; k < indices.length; k++) {
            const i = indices[k]!;
            values[i] = values[i]! * config.factor;
          }
        }
        emit(record);
      },
    }));
    return { apply };
  },
});

test("a plugin's transform through the public FeatureSelector, after session-features and user-features, changes the features `s_*` selects and only those; a name not in the vector is logged once", async () => {
  const input: Element[] = [];
  for (let m = 0; m < 40; m++) input.push(ev(`u${m % 3}`, m, m % 6 === 0 ? 'cart' : 'view', { itemId: `i${m % 5}`, price: 10 + m }));
  input.push(watermark(Infinity));
  const builtIn = [stage(sessionizer), stage(sessionFeatures), stage(userFeatures, { horizons: ['1d'] })];
  const plain = eventsOf(await chain(builtIn, input.map((e) => ({ ...e }))));
  const logs: { missing?: unknown }[] = [];
  const logger = pino({ level: 'warn' }, { write: (entry: string) => void logs.push(JSON.parse(entry) as { missing?: unknown }) });
  const stages = [...builtIn, stage(userScale, { features: ['s_*', 's_nope'], factor: 2 })];
  const scaled = eventsOf(await (await Chain.build(stages, testContext({ clock, logger }))).push(input.map((e) => ({ ...e }))).end());
  assert.equal(scaled.length, plain.length);
  const selected = plain[0]!.features!.names.filter((name) => name.startsWith('s_'));
  assert.equal(selected.length, sessionFeatureNames.filter((name) => name.startsWith('s_')).length);
  scaled.forEach((e, k) => {
    const before = named(plain[k]!);
    for (const [name, value] of Object.entries(named(e))) assert.equal(value, name.startsWith('s_') ? Math.fround(before[name]! * 2) : before[name], `event ${k}: ${name}`);
  });
  assert.ok(scaled.some((e) => named(e).s_events! > 1), 'some s_* values are not 0');
  assert.deepEqual(logs.map((entry) => entry.missing), [['s_nope']], 'said once for the one names array');
});

test('hash-features: an attribute that is an object or a list is hashed by its JSON: objects apart, and one whose own toString is no function (input data) is no failure', async () => {
  const brands: unknown[] = [{ toString: 1 }, Object.assign(Object.create(null) as object, { a: 1 }), { a: 1 }, { b: 2 }, [1, 2], '1,2', 7, '7'];
  const input: Element[] = [...brands.map((brand, i) => ev('u1', i, 'view', { attrs: { brand } })), watermark(Infinity)];
  const context = ctx();
  const dead: unknown[] = [];
  context.deadLetter = (rejection) => void dead.push(rejection);
  const { output } = await runOperator(hashFeatures, { fields: ['attrs.brand'], width: 65536, signed: false }, input, context);
  assert.deepEqual(dead, []);
  const buckets = eventsOf(output).map((e) => e.features!.values.findIndex((v) => v === 1));
  assert.equal(buckets.length, brands.length);
  assert.ok(buckets.every((b) => b >= 0));
  assert.equal(buckets[1], buckets[2], 'the same JSON, the same bucket');
  assert.notEqual(buckets[2], buckets[3], 'two objects are two values');
  assert.notEqual(buckets[4], buckets[5], 'a list is not the text of its items joined');
  assert.equal(buckets[6], buckets[7], 'a number is its digits, as a CSV gives it');
});

test('hash-features: a field added changes the values under the names it made before (every field adds into the same buckets), so it declares that only a prefix edit keeps the values of the names it keeps (keepsFeatureValues)', async () => {
  // What a resume's warning and a warm start's refusal of a hash-features edit rest on (a field added is not add-only).
  // Events made afresh for each run: a run appends its block to them.
  const input = (): Element[] => [...['a', 'b', 'c', 'd'].map((category, i) => ev('u1', i, 'view', { category, itemId: `item-${i}` })), watermark(Infinity)];
  const values = async (fields: string[]): Promise<number[][]> =>
    eventsOf((await runOperator(hashFeatures, { fields, width: 4, signed: false }, input(), ctx())).output).map((e) => [...e.features!.values]);
  const [before, after] = [await values(['category']), await values(['category', 'itemId'])];
  assert.deepEqual(before.map((row) => row.reduce((sum, v) => sum + v, 0)), [1, 1, 1, 1], 'one count an event');
  assert.deepEqual(after.map((row) => row.reduce((sum, v) => sum + v, 0)), [2, 2, 2, 2], "the item's count lands in the same names");
  assert.equal(hashFeatures.featureNames?.({ fields: ['category', 'itemId'], width: 4, prefix: 'hash', signed: false }).length, 4, 'no name added');
  const keeps = (saved: Partial<HashFeaturesConfig>, now: Partial<HashFeaturesConfig>): boolean => hashFeatures.keepsFeatureValues!(withDefaults(hashFeatures, saved as never), withDefaults(hashFeatures, now as never));
  assert.equal(keeps({ fields: ['category'] }, { fields: ['category', 'itemId'] }), false, 'a field added');
  assert.equal(keeps({ fields: ['category'], width: 4 }, { fields: ['category'], width: 8 }), false, 'the width');
  assert.equal(keeps({ fields: ['category'] }, { fields: ['category'], signed: false }), false, 'the signs');
  assert.equal(keeps({ fields: ['category'] }, { fields: ['category'], prefix: 'cat' }), true, 'only renamed: no name kept, every one added and dropped');
});

test('hash-features: an attribute named as an Object.prototype member (attrs.constructor, attrs.__proto__) is hashed only where the event has it, never the inherited member', async () => {
  const input: Element[] = [
    ev('u1', 0, 'view', { attrs: {} }),
    ev('u1', 1, 'view', { attrs: JSON.parse('{"constructor":"c1","__proto__":"p1"}') as Record<string, unknown> }),
    watermark(Infinity),
  ];
  const { output } = await runOperator(hashFeatures, { fields: ['attrs.constructor', 'attrs.__proto__', 'attrs.toString'], width: 65536, signed: false }, input, ctx());
  const counts = eventsOf(output).map((e) => Array.from(e.features!.values).reduce((a, v) => a + v, 0));
  assert.deepEqual(counts, [0, 2], 'nothing for attributes the event lacks; one each for those it has');
});

test('feature operators pass session summaries and other records through unchanged', async () => {
  const summary = { kind: 'session', userId: 'u1', sessionId: 'x', start: 0, end: 0, eventCount: 1, counts: { view: 1 }, purchased: false } as StreamRecord;
  for (const [plugin, config] of [[sessionFeatures, {}], [userFeatures, {}], [hashFeatures, { fields: ['category'] }], [standardize, { features: ['*'] }], [log1p, { features: ['*'] }], [clip, { features: ['*'], max: 1 }]] as const) {
    const { output } = await runOperator(plugin as never, config as never, [summary, watermark(Infinity)], ctx());
    assert.equal(output[0], summary, plugin.name);
    assert.deepEqual(output[0], { kind: 'session', userId: 'u1', sessionId: 'x', start: 0, end: 0, eventCount: 1, counts: { view: 1 }, purchased: false });
  }
});

/** Synthetic shoppers with watermarks every 200 events (5 s behind), as the runtime sends them. */
function shoppers(count: number): Element[] {
  const world = new ShopperWorld({ seed: 11, users: 300 });
  const out: Element[] = [];
  let max = -Infinity;
  for (let i = 0; i < count; i++) {
    const e = world.next();
    out.push(e);
    max = Math.max(max, e.time);
    if (i % 200 === 199) out.push(watermark(max - 5000));
  }
  out.push(watermark(Infinity));
  return out;
}

const allStages = [
  stage(sessionizer, { gap: '30m', allowed_lateness: '10m', max_length: '2h' }),
  stage(sessionFeatures),
  stage(userFeatures, { max_users: 250 }),
  stage(hashFeatures, { fields: ['category', 'itemId'], width: 16 }),
  stage(log1p, { features: ['s_*'] }),
  stage(standardize, { features: ['s_*', 'u_*'] }),
  stage(clip, { features: ['*'], min: -5, max: 5 }),
];

test('snapshot/restore of the whole feature chain mid-stream gives the same output as one run', async () => {
  const whole = await chain(allStages, shoppers(6000));
  const serialize = (out: Element[]) => out.map((e) => JSON.stringify({ ...e, features: (e as ClickEvent).features ? Array.from((e as ClickEvent).features!.values) : undefined }));
  for (const cut of [777, 3001, 5990]) {
    const input = shoppers(6000);
    const first = await Chain.build(allStages, ctx());
    first.push(input.slice(0, cut));
    const saved = await first.snapshot();
    const second = await Chain.build(allStages, ctx(), saved);
    second.push(input.slice(cut));
    assert.deepEqual(serialize([...first.output, ...second.end()]), serialize(whole), `cut at ${cut}`);
  }
});

test('sessionizer, session-features, user-features: a snapshot is copied at its call and encoded while records flow (the sources go on once it is copied); the records after the call do not show in it: it is byte for byte the snapshot of a chain that saw nothing after the call', async () => {
  const stages = [stage(sessionizer, { gap: '30m' }), stage(sessionFeatures), stage(userFeatures)];
  for (const cut of [777, 3001, 5990]) {
    // Each chain its own events (the sessionizer writes their session in place).
    const input = shoppers(6000);
    const still = await Chain.build(stages, ctx());
    still.push(shoppers(6000).slice(0, cut));
    const atCall = (await Promise.all(still.operators.map((operator) => operator.snapshot!()))).map((state) => JSON.stringify(state));
    const fed = await Chain.build(stages, ctx());
    fed.push(input.slice(0, cut));
    const taken = fed.operators.map((operator) => operator.snapshot!());
    for (const snapshot of taken) {
      assert.ok(isCopyingSnapshot(snapshot), 'says when it is copied');
      await snapshot.copied;
    }
    // All the rest before the encode parts' first turn, as records that reach the stages once the sources go on.
    fed.push(input.slice(cut));
    assert.ok(fed.output.length > still.output.length, 'the chain went on after the call');
    for (const [k, snapshot] of taken.entries()) assert.equal(JSON.stringify(await snapshot), atCall[k], `cut ${cut}, ${stages[k]!.plugin.name}: the snapshot is its call's state`);
    fed.end();
    still.end();
  }
});

test('user-features copies on write: users changed, added and evicted while its snapshot is encoded (the sources going on) do not show in it; it is byte for byte the state at the call, and restores to it', async () => {
  // More users than one part of the gather (1,024) and past max_users once the new ones come: an eviction mid-encode.
  const users = 5000;
  const stages = [stage(userFeatures, { max_users: 6000 })];
  const before = (): Element[] =>
    Array.from({ length: 3 * users }, (_, k) => ev(`u${k % users}`, k / 100, k % 7 === 0 ? 'purchase' : 'view', { sessionId: `s${k % users}-${Math.floor(k / 4000)}`, price: 3 + (k % 11) }));
  // Returning users (a purchase, a new session), new users past the bound (the 10% seen least recently go), the returners again.
  const returning = (from: number): Element[] => Array.from({ length: 1500 }, (_, k) => ev(`u${(k * 7 + from) % users}`, 200 + from + k / 100, k % 3 === 0 ? 'purchase' : 'view', { sessionId: `late${from}-${k % 50}`, price: 9 }));
  const newcomers = Array.from({ length: 2500 }, (_, k) => ev(`new${k}`, 300 + k / 100, 'view', { sessionId: `n${k}` }));
  const still = await Chain.build(stages, ctx());
  still.push(before());
  const atCall = JSON.stringify(await still.operators[0]!.snapshot!());

  const hub = new MetricsHub();
  const context = testContext({ clock, metrics: hub.scoped({ pipeline: 'test', stage: 'user-features' }) });
  const fed = await Chain.build(stages, context);
  fed.push(before());
  const snapshot = fed.operators[0]!.snapshot!();
  assert.ok(isCopyingSnapshot(snapshot));
  await snapshot.copied;
  let encoded = false;
  void snapshot.then(() => (encoded = true));
  // Before the encode parts' first turn: nothing gathered yet when the new users evict.
  fed.push(returning(0));
  fed.push(newcomers);
  assert.equal(encoded, false, 'the records came while the snapshot was being encoded');
  const evicted = Number(/^tributary_users_evicted_total\{[^}]*\} (\d+)$/m.exec(await hub.registry.metrics())![1]);
  assert.ok(evicted >= 500, `users evicted while the snapshot was encoded: ${evicted}`);
  // The encoding may have gone on meanwhile, or be done: either way these do not show in it.
  fed.push(returning(1));
  fed.push(returning(2));
  const saved = await snapshot;
  assert.equal(JSON.stringify(saved), atCall, 'the snapshot is the state at its call');
  const restored = await Chain.build(stages, ctx(), [JSON.parse(atCall)]);
  assert.equal(JSON.stringify(await restored.operators[0]!.snapshot!()), atCall, 'restored whole');
  // And the live state went on: the returning users' events counted after the snapshot.
  assert.notEqual(JSON.stringify(await fed.operators[0]!.snapshot!()), atCall);
  fed.end();
  still.end();
});

test('a large state is restored in parts, the event loop turning between them (the daemon answers /healthz meanwhile), and restores whole', async () => {
  // More users and open sessions than one part holds (65,536 rows).
  const users = 70_000;
  const stages = [stage(sessionizer, { gap: '30m' }), stage(sessionFeatures), stage(userFeatures)];
  // Within ten minutes, and the watermark after them: every session is open (the sessionizer holds
  // the events the watermark has not passed as pending: restored in parts too).
  const input = Array.from({ length: users }, (_, u) => ev(`u${u}`, u / 7000, u % 5 === 0 ? 'cart' : 'view', { itemId: `i${u % 300}`, category: `c${u % 20}` }));
  const first = await Chain.build(stages, ctx());
  first.push(input.slice(0, users - 1000)).push([watermark(T0 + 9.8 * MIN)]).push(input.slice(users - 1000));
  const saved = await first.snapshot();
  for (const [k, { plugin, config }] of stages.entries()) {
    const operator = await plugin.create(withDefaults(plugin, config as never), ctx());
    const loop = countLoopTurns();
    // Restored in one synchronous go, no turn came before it ended (a million users: over a second).
    await operator.restore!(saved[k]);
    const turns = loop.stop();
    assert.ok(turns >= 1, `${plugin.name}: the event loop turned ${turns} times during the restore`);
    assert.deepEqual(JSON.parse(JSON.stringify(await operator.snapshot!())), saved[k], `${plugin.name}: restored whole`);
  }
});

test('a large state is snapshotted in parts, the event loop turning between them, and holds the state of its call though records reach the stages meanwhile', async () => {
  // More users and open sessions than one part holds (65,536 rows): every stage takes several parts.
  const users = 70_000;
  const stages = [stage(sessionizer, { gap: '30m' }), stage(sessionFeatures), stage(userFeatures)];
  // Fresh events for every chain: stages add to the events they pass on.
  const filled = async (): Promise<Chain> => {
    const input = Array.from({ length: users }, (_, u) => ev(`u${u}`, u / 7000, u % 5 === 0 ? 'cart' : 'view', { itemId: `i${u % 300}`, category: `c${u % 20}` }));
    return (await Chain.build(stages, ctx())).push(input.slice(0, users - 1000)).push([watermark(T0 + 9.8 * MIN)]).push(input.slice(users - 1000));
  };
  // After the snapshot's instant: users coming back (a purchase), new users, sessions closed by a watermark.
  const later = (): Element[] => [
    ...Array.from({ length: 3000 }, (_, k) => ev(`u${k * 23}`, 10 + k / 1000, k % 3 === 0 ? 'purchase' : 'view', { itemId: `j${k % 50}`, price: 5 + (k % 40) })),
    ...Array.from({ length: 2000 }, (_, k) => ev(`new${k}`, 12 + k / 1000)),
    watermark(T0 + 45 * MIN),
    ev('u1', 50),
  ];
  const quiet = await filled();
  for (const [k, operator] of quiet.operators.entries()) {
    const loop = countLoopTurns();
    // Built in one synchronous go, no turn came before it ended (a million users: half a second).
    await operator.snapshot!();
    const turns = loop.stop();
    assert.ok(turns >= 1, `${stages[k]!.plugin.name}: the event loop turned ${turns} times during the snapshot`);
  }
  const reference = await quiet.snapshot();

  const busy = await filled();
  const taken = busy.snapshot(); // every stage's snapshot() is called now: this instant is what they must hold
  await new Promise((resolve) => setImmediate(resolve)); // a part of each done
  busy.push(later()); // as another stage's timer could: each stage finishes its snapshot before it changes
  const saved = await taken;
  assert.deepEqual(saved, reference, 'the snapshot holds the state of its call');
  // And it restores to the outputs of the run that went on.
  const serialize = (out: Element[]) => out.map((e) => JSON.stringify({ ...e, features: (e as ClickEvent).features ? Array.from((e as ClickEvent).features!.values) : undefined }));
  const restored = await Chain.build(stages, ctx(), saved);
  const before = quiet.output.length;
  quiet.push(later());
  assert.deepEqual(serialize(restored.push(later()).end()), serialize(quiet.output.slice(before)));
  quiet.end();
  busy.end();
});

/** Copies each event's session context and each summary: the copies lack the sessionizer's hidden handles. */
const stripHandles = defineOperator<Record<string, never>>({
  name: 'strip-handles',
  summary: 'Test only: drops the session handles.',
  config: { type: 'object', properties: {} },
  create: (_config, context) => ({
    apply: recordOperator(context, () => ({
      record(record, emit) {
        const event = record as ClickEvent;
        if (record.kind === 'event' && event.session) emit({ ...event, session: { ...event.session } } as ClickEvent);
        else emit(record.kind === 'session' ? { ...record } : record);
      },
    })),
  }),
});

test('features are the same whether stages find their state through the session handles or by id (evictions, late events, merges)', async () => {
  // Every 40th event held back 150 elements: late (some within the lateness, merging sessions), some too late.
  const late = (): Element[] => {
    const input = shoppers(6000);
    const out: Element[] = [];
    const held: [number, Element][] = [];
    input.forEach((e, i) => {
      if (e.kind === 'event' && i % 40 === 7) held.push([i + 150, e]);
      else out.push(e);
      while (held.length > 0 && held[0]![0] <= i) out.splice(out.length - 1, 0, held.shift()![1]);
    });
    for (const [, e] of held) out.splice(out.length - 1, 0, e);
    return out;
  };
  const serialize = (out: Element[]) => out.map((e) => JSON.stringify({ ...e, features: (e as ClickEvent).features ? Array.from((e as ClickEvent).features!.values) : undefined }));
  const compare = async (stages: typeof allStages, input: () => Element[]): Promise<string[]> => {
    const [first, ...rest] = stages;
    const a = await Chain.build(stages, ctx());
    const b = await Chain.build([first!, stage(stripHandles), ...rest], ctx());
    const withHandles = serialize(a.push(input()).output);
    assert.deepEqual(withHandles, serialize(b.push(input()).output));
    // The state too: every closed session's state dropped either way, users alike.
    assert.deepEqual((await a.snapshot()).slice(1), (await b.snapshot()).slice(2));
    a.end();
    b.end();
    return withHandles;
  };
  const shopped = await compare(allStages, late);
  assert.ok(shopped.some((line) => line.includes('"update":true')), 'late events updated some sessions');
  // Late events bridging two sessions merge them: a closed one with an open one (whose state is
  // dropped through the merged handle), then two closed ones.
  const item = { itemId: 'i1', category: 'c1', price: 5 };
  const merging = (): Element[] => [
    ev('m', 0, 'view', item), ev('n', 1, 'view', item), ev('m', 40, 'cart', item), watermark(T0 + 50 * MIN),
    ev('m', 20, 'view', { ...item, itemId: 'i2' }), ev('m', 55, 'view', item), ev('n', 80, 'view', item),
    ev('n', 120, 'view', item), watermark(T0 + 155 * MIN), ev('n', 100, 'cart', item), ev('n', 160, 'view', item), watermark(Infinity),
  ];
  const merged = await compare([stage(sessionizer, { gap: '30m', allowed_lateness: '1h' }), ...allStages.slice(1)], merging);
  assert.ok(merged.some((line) => line.includes('"replaces"')), 'a late event merged sessions');
  // A user forgotten (max_users) in mid-session, their slot taken by another: the handle's slot is stale.
  const evicting = (): Element[] => [ev('a', 0, 'view', item), ev('b', 1, 'purchase', item), ev('c', 2, 'view', item), ev('a', 3, 'view', item), watermark(Infinity)];
  await compare([stage(sessionizer), stage(sessionFeatures), stage(userFeatures, { max_users: 2 })], evicting);
});

test('session-features keeps apart two users\' sessions under one data session id, through a restore and a compaction; a snapshot naming a session twice is refused, and an older one (ids alone) leaves such ids out', async () => {
  // Data ids numbered per user, as some shops' are: alice's and bob's sessions are both '1'.
  const stages = [stage(sessionizer, { session_id_from: 'data', gap: '30m' }), stage(sessionFeatures)];
  const burst = (): Element[] => Array.from({ length: 3000 }, (_, k) => ev(`x${k}`, k / 10_000, 'view', { sessionId: '1', price: 1 }));
  // A burst of others' sessions (also '1') grows the pools, then alice carts and bob views; the burst's close
  // (at 30 min) shrinks the pools back, moving alice's and bob's state, which goes on at 40 and 41.
  const input = (withBurst: boolean): Element[] => [
    ...(withBurst ? burst() : []),
    ev('alice', 1, 'cart', { sessionId: '1', itemId: 'x', price: 100 }), ev('bob', 1.5, 'view', { sessionId: '1', itemId: 'y', price: 5 }), watermark(T0 + 3 * MIN),
    ev('alice', 20, 'view', { sessionId: '1', itemId: 'z', price: 7 }), ev('bob', 21, 'view', { sessionId: '1', itemId: 'w', price: 9 }), watermark(T0 + 35 * MIN),
    ev('alice', 40, 'view', { sessionId: '1', itemId: 'x', price: 11 }), ev('bob', 41, 'cart', { sessionId: '1', itemId: 'w', price: 9 }), watermark(Infinity),
  ];
  const features = (out: Element[]) => eventsOf(out).filter((e) => !e.userId.startsWith('x')).map((e) => `${e.userId} ${JSON.stringify(named(e))}`);
  const whole = eventsOf(await chain(stages, input(false))).map(named);
  assert.deepEqual(whole.map((f) => [f.s_views, f.s_carts, f.s_cart_value, f.s_distinct_items]), [[0, 1, 100, 1], [1, 0, 0, 1], [1, 1, 100, 2], [2, 0, 0, 2], [2, 1, 100, 2], [2, 1, 9, 2]]);
  assert.deepEqual(features(await chain(stages, input(true))), features(await chain(stages, input(false))), 'a compaction moved them apart');
  for (const cut of [3001, 3003, 3006]) {
    const first = await Chain.build(stages, ctx());
    first.push(input(true).slice(0, cut));
    const second = await Chain.build(stages, ctx(), await first.snapshot());
    assert.deepEqual(features([...first.output, ...second.push(input(true).slice(cut)).end()]), features(await chain(stages, input(false))), `restored at ${cut}`);
  }
  const first = await Chain.build(stages, ctx());
  first.push(input(false).slice(0, 3));
  const saved = (await first.snapshot())[1] as { version: number; users: string[]; ids: unknown; unknownUsers?: unknown };
  assert.equal(saved.version, 4);
  assert.deepEqual(saved.users, ['alice', 'bob']);
  const twice = structuredClone(saved);
  twice.users[1] = 'alice';
  const operator = await sessionFeatures.create(withDefaults(sessionFeatures, {}), testContext({ clock, label: 'stage-s' }));
  await assert.rejects(Promise.resolve(operator.restore!(twice)), /^Error: session-features snapshot: session '1' of user 'alice' at row 1 again$/);
  // Version 3 kept sessions by id alone: the two '1's are not told apart, so they are left out (said), their features start over.
  const logs: { msg: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (entry: string) => void logs.push(JSON.parse(entry) as { msg: string }) });
  const older = { ...structuredClone(saved), version: 3, ids: ['1', '1'] } as Record<string, unknown>;
  delete older.users;
  delete older.unknownUsers;
  const resumed = await Chain.build(stages, testContext({ clock, logger }), [(await first.snapshot())[0], older]);
  assert.deepEqual(((await resumed.snapshot())[1] as { users: string[] }).users, []);
  assert.match(logs.map((entry) => entry.msg).join('\n'), /holds these session ids more than once/);
  const after = eventsOf(resumed.push(input(false).slice(3)).end()).map(named);
  assert.deepEqual(after.map((f) => [f.s_events, f.s_views, f.s_carts]), [[2, 1, 0], [2, 1, 0], [3, 2, 0], [3, 1, 1]]);
  first.end();
});

/** Copies each session summary (adds a field), passing events on as they are: the copies lack the sessionizer's hidden handle. */
const copySummaries = defineOperator<Record<string, never>>({
  name: 'copy-summaries',
  summary: 'Test only: copies summaries.',
  config: { type: 'object', properties: {} },
  create: (_config, context) => ({
    apply: recordOperator(context, () => ({
      record(record, emit) {
        emit(record.kind === 'session' ? { ...record, note: 'copied' } : record);
      },
    })),
  }),
});

test('a stage between the sessionizer and session-features that copies the summaries: each closed session\'s state is still freed', async () => {
  const stages = [stage(sessionizer, { gap: '1m' }), stage(copySummaries), stage(sessionFeatures)];
  const run = await Chain.build(stages, ctx());
  // 2,000 one-event sessions, each closed by a watermark two minutes on.
  for (let k = 0; k < 2000; k++) run.push([ev(`u${k}`, k * 2, 'view', { itemId: 'i', price: 3 }), watermark(T0 + k * 2 * MIN)]);
  run.push([watermark(T0 + (2000 * 2 + 10) * MIN)]);
  assert.equal(run.output.filter((e) => e.kind === 'session').length, 2000);
  assert.deepEqual(((await run.snapshot())[2] as { users: string[] }).users, [], 'no state left');
  run.end();
});

test('a session reopened after its summary goes on from its state: a late event within allowed_lateness, and a data id back within it (events in order, as pipelines/intent-rees46.yaml)', async () => {
  const keys = ['s_events', 's_views', 's_carts', 's_distinct_items', 's_view_price_mean', 's_view_price_max', 's_cart_value', 's_cart_to_view', 's_repeat_item'];
  const pick = (e: ClickEvent) => keys.map((k) => named(e)[k]);
  const late: Element[] = [
    ev('u', 0, 'view', { itemId: 'a', price: 100 }), ev('u', 1, 'cart', { itemId: 'a', price: 100 }), ev('u', 2, 'view', { itemId: 'b', price: 50 }),
    watermark(T0 + 40 * MIN), // 2 + 30 passed: closed, summary out
    ev('u', 3, 'view', { itemId: 'a', price: 100 }), // late, within the lateness: the same session
    watermark(Infinity),
  ];
  const out = eventsOf(await chain([stage(sessionizer, { gap: '30m', allowed_lateness: '2h' }), stage(sessionFeatures)], late));
  assert.deepEqual(out.map((e) => e.session!.position), [0, 1, 2, 3]);
  assert.deepEqual(pick(out[3]!), [4, 3, 1, 2, 250 / 3, 100, 100, 1 / 3, 1].map(Math.fround));
  const data: Element[] = [
    ev('u', 0, 'view', { sessionId: 'abc', itemId: 'a', price: 10 }), watermark(T0),
    ev('u', 1, 'cart', { sessionId: 'abc', itemId: 'a', price: 10 }), watermark(T0 + MIN),
    watermark(T0 + 32 * MIN), // 1 + 30 passed: closed, summary out
    ev('u', 33, 'view', { sessionId: 'abc', itemId: 'a', price: 10 }), watermark(T0 + 33 * MIN), // the id back within the lateness: reopened
    watermark(Infinity),
  ];
  const reopened = await chain([stage(sessionizer, { session_id_from: 'data', gap: '30m', allowed_lateness: '5m' }), stage(sessionFeatures), stage(userFeatures, { horizons: [] })], data);
  assert.deepEqual(reopened.filter((e) => e.kind === 'session').map((e) => (e as StreamRecord).eventCount), [2, 3]);
  const third = eventsOf(reopened)[2]!;
  assert.equal(third.session!.position, 2);
  assert.deepEqual(pick(third), [3, 2, 1, 1, 10, 10, 10, 0.5, 1]);
  assert.equal(named(third).u_sessions, 1);
});

test('a late event that merges two sessions folds their state: counts and sums add, extremes and deviations combine, distinct items unite; u_sessions counts one', async () => {
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '1h' }), stage(sessionFeatures), stage(userFeatures, { horizons: [] })];
  const input = (): Element[] => [
    ev('m', 0, 'view', { itemId: 'a', price: 10 }),
    ev('m', 40, 'cart', { itemId: 'b', price: 30 }), // a second session (40 >= 0 + 30)
    ev('m', 41, 'view', { itemId: 'b', price: 30 }),
    watermark(T0 + 45 * MIN), // the first closed, the second open
    ev('m', 20, 'view', { itemId: 'c', price: 20 }), // late, within 30 min of both: bridges and merges them
    ev('m', 50, 'view', { itemId: 'a', price: 10 }), // in order, in the merged session
    watermark(Infinity),
  ];
  const out = await chain(stages, input());
  const [, , , bridging, after] = eventsOf(out);
  assert.deepEqual(bridging!.session!.merged, [`m:${T0 + 40 * MIN}`]);
  const keys = ['s_events', 's_views', 's_carts', 's_distinct_items', 's_view_price_mean', 's_view_price_std', 's_view_price_min', 's_view_price_max', 's_cart_price_mean', 's_cart_value', 's_repeat_item', 'u_sessions'];
  const pick = (e: ClickEvent) => keys.map((k) => named(e)[k]);
  const std = (prices: number[]) => Math.sqrt(prices.reduce((a, p) => a + (p - prices.reduce((x, y) => x + y) / prices.length) ** 2, 0) / prices.length);
  assert.deepEqual(pick(bridging!), [4, 3, 1, 3, 20, std([10, 30, 20]), 10, 30, 30, 30, 0, 1].map(Math.fround));
  assert.deepEqual(pick(after!), [5, 4, 1, 3, 17.5, std([10, 30, 20, 10]), 10, 30, 30, 30, 1, 1].map(Math.fround));
  // A stage between that copies events and summaries (no handles) gets the same.
  const copied = await chain([stages[0]!, stage(stripHandles), ...stages.slice(1)], input());
  assert.deepEqual(eventsOf(copied).map((e) => Array.from(e.features!.values)), eventsOf(out).map((e) => Array.from(e.features!.values)));
});

test('a late event inside its session\'s span, or bridging two, gets the time since the start and since the previous event (s_duration_s, s_since_prev_s) of the same event in order; its counts are of the events arrived before it', async () => {
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '1h' }), stage(sessionFeatures)];
  const keys = ['s_events', 's_duration_s', 's_since_prev_s', 's_mean_dwell_s'];
  const figuresAt = (out: Element[], minute: number) => keys.map((k) => named(eventsOf(out).find((e) => e.time === T0 + minute * MIN)!)[k]);
  // 15 late inside 0-30; 25 late between 0-10 and 40-45, merging them.
  const cases: [number[], Element[]][] = [
    [[0, 10, 15, 20, 30], [ev('u', 0), ev('u', 10), ev('u', 20), ev('u', 30), watermark(T0 + 40 * MIN), ev('u', 15), watermark(Infinity)]],
    [[0, 10, 25, 40, 45], [ev('u', 0), ev('u', 10), ev('u', 40), ev('u', 45), watermark(T0 + 46 * MIN), ev('u', 25), watermark(Infinity)]],
  ];
  for (const [minutes, late] of cases) {
    const at = minutes[2]!;
    const inOrder = await chain(stages, [...minutes.map((minute) => ev('u', minute)), watermark(Infinity)]);
    const got = figuresAt(await chain(stages, late), at);
    assert.deepEqual(got.slice(1, 3), figuresAt(inOrder, at).slice(1, 3), `at minute ${at}`);
    assert.deepEqual(got, [5, at * 60, (at - 10) * 60, Math.fround((at * 60) / 4)], 'counted in arrival order: the 4 events before it arrived first');
  }
});

test('after a late event merges two sessions, the events after it get the session figures of the same events in order: time since the start (s_duration_s) from the merged session\'s start, since the previous event, mean gap, counts', async () => {
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '1h' }), stage(sessionFeatures)];
  // Sessions 0-10 and 40-45; the event at 25 bridges them when it comes late, after 45.
  const inOrder: Element[] = [...[0, 10, 25, 40, 45, 50, 55].map((minute) => ev('m', minute)), watermark(Infinity)];
  const late: Element[] = [ev('m', 0), ev('m', 10), ev('m', 40), ev('m', 45), watermark(T0 + 46 * MIN), ev('m', 25), ev('m', 50), ev('m', 55), watermark(Infinity)];
  const figures = (out: Element[]) => new Map(eventsOf(out).map((e) => [(e.time - T0) / MIN, named(e)]));
  const lateOut = await chain(stages, late);
  assert.deepEqual(eventsOf(lateOut)[4]!.session!.merged, [`m:${T0 + 40 * MIN}`], 'the late event merged the sessions');
  const got = figures(lateOut);
  const expected = figures(await chain(stages, inOrder));
  for (const minute of [50, 55]) assert.deepEqual(got.get(minute), expected.get(minute), `at minute ${minute}`);
  assert.equal(got.get(55)!['s_duration_s'], 55 * 60, 'seconds since the merged session\'s start (0), not the absorbed one\'s (40)');
});

test('a late event that merges the previous session into the current one gives the user the figures of the same events in order: mean session length and recency, through a snapshot at any point', async () => {
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '1h' }), stage(userFeatures, { horizons: [] })];
  // Sessions at 0-5, 60-70 and 110-118; the event at 90 bridges the second and third.
  const inOrder = (): Element[] => [...[0, 5, 60, 70, 90, 110, 115, 118, 200, 210].map((minute) => ev('m', minute)), watermark(Infinity)];
  // The same events, 90 late: it arrives when 60-70 has closed (its summary out) and 110 has opened.
  const late = (): Element[] => [ev('m', 0), ev('m', 5), ev('m', 60), ev('m', 70), ev('m', 110), ev('m', 115), watermark(T0 + 120 * MIN), ev('m', 90), ev('m', 118), ev('m', 200), ev('m', 210), watermark(Infinity)];
  // Not u_events: a late event's counts every event that arrived before it (arrival order, see the description).
  const keys = ['u_sessions', 'u_recency_days', 'u_mean_session_events', 'u_mean_session_minutes'];
  const figures = (out: Element[]) => new Map(eventsOf(out).map((e) => [(e.time - T0) / MIN, keys.map((k) => named(e)[k])]));
  const expected = figures(await chain(stages, inOrder()));
  const out = await chain(stages, late());
  assert.deepEqual(eventsOf(out)[6]!.session!.merged, [`m:${T0 + 110 * MIN}`], 'the late event merged the sessions');
  const got = figures(out);
  // The late event and those after it: as in order (before it, the merged sessions were two).
  for (const minute of [90, 118, 200, 210]) assert.deepEqual(got.get(minute), expected.get(minute), `at minute ${minute}`);
  assert.deepEqual(got.get(200), [3, Math.fround((200 - 118) / 1440), 4, Math.fround((5 + 58) / 2)]);
  const serialize = (elements: Element[]) => eventsOf(elements).map((e) => Array.from(e.features!.values));
  for (let cut = 0; cut <= late().length; cut++) {
    const first = await Chain.build(stages, ctx());
    first.push(late().slice(0, cut));
    const second = await Chain.build(stages, ctx(), await first.snapshot());
    assert.deepEqual([...serialize(first.output), ...serialize(second.push(late().slice(cut)).end())], serialize(out), `cut at ${cut}`);
  }
  // The earlier session never completed here: a late one of its own at 50, older than the current 100-105, then 75 bridges them.
  const olderLate: Element[] = [ev('m', 0), ev('m', 10), ev('m', 100), ev('m', 105), watermark(T0 + 110 * MIN), ev('m', 50), ev('m', 75), ev('m', 110), ev('m', 200), watermark(Infinity)];
  const olderStages = [stage(sessionizer, { gap: '30m', allowed_lateness: '2h' }), stage(userFeatures, { horizons: [] })];
  const olderGot = figures(await chain(olderStages, olderLate));
  const olderExpected = figures(await chain(olderStages, [...[0, 10, 50, 75, 100, 105, 110, 200].map((minute) => ev('m', minute)), watermark(Infinity)]));
  for (const minute of [75, 110, 200]) assert.deepEqual(olderGot.get(minute), olderExpected.get(minute), `at minute ${minute}, the earlier session late`);
  assert.deepEqual(olderGot.get(200), [3, Math.fround(90 / 1440), 3.5, 35]);
});

test('a late event that merges the two sessions completed last (the current one a third) gives the user the figures of the same events in order: mean session length, through a snapshot at any point', async () => {
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '2h' }), stage(userFeatures, { horizons: [] })];
  // Sessions at 0-5, 60-70 and 120-128; in order, the event at 32 makes the first two one (0-70).
  const inOrder = (): Element[] => [...[0, 5, 32, 60, 70, 120, 125, 128, 200, 210].map((minute) => ev('m', minute)), watermark(Infinity)];
  // The same events, 32 late: it arrives when 0-5 and 60-70 have closed (their summaries out) and 120 is the current session.
  const late = (): Element[] => [ev('m', 0), ev('m', 5), ev('m', 60), ev('m', 70), ev('m', 120), ev('m', 125), watermark(T0 + 130 * MIN), ev('m', 32), ev('m', 128), ev('m', 200), ev('m', 210), watermark(Infinity)];
  const keys = ['u_sessions', 'u_recency_days', 'u_mean_session_events', 'u_mean_session_minutes'];
  const figures = (out: Element[]) => new Map(eventsOf(out).map((e) => [(e.time - T0) / MIN, keys.map((k) => named(e)[k])]));
  const expected = figures(await chain(stages, inOrder()));
  const out = await chain(stages, late());
  const bridge = eventsOf(out)[6]!;
  assert.deepEqual([bridge.session!.id, bridge.session!.merged], [`m:${T0}`, [`m:${T0 + 60 * MIN}`]], 'the late event merged the two earlier sessions');
  const got = figures(out);
  // The events after the late one, in the current session and the next: as in order. (The late one itself is
  // not compared: in order it came before the current session opened.)
  for (const minute of [128, 200, 210]) assert.deepEqual(got.get(minute), expected.get(minute), `at minute ${minute}`);
  // One completed session of 5 events over 70 minutes; then (70 + 8) / 2 and (5 + 3) / 2.
  assert.deepEqual(got.get(128), [2, Math.fround(50 / 1440), 5, 70]);
  assert.deepEqual(got.get(200), [3, Math.fround((200 - 128) / 1440), 4, 39]);
  const serialize = (elements: Element[]) => eventsOf(elements).map((e) => Array.from(e.features!.values));
  for (let cut = 0; cut <= late().length; cut++) {
    const first = await Chain.build(stages, ctx());
    first.push(late().slice(0, cut));
    const second = await Chain.build(stages, ctx(), await first.snapshot());
    assert.deepEqual([...serialize(first.output), ...serialize(second.push(late().slice(cut)).end())], serialize(out), `cut at ${cut}`);
  }
  // Not the two completed last: a late session of its own at 50 lies between 0-5 and 100-105 (the current one 200),
  // and 30 bridges 0-5 and 50. The completed sessions stay 0-5 and 100-105 (figures kept, not a wrong correction).
  const between = (): Element[] => [ev('m', 0), ev('m', 5), ev('m', 100), ev('m', 105), ev('m', 200), watermark(T0 + 210 * MIN), ev('m', 50), ev('m', 30), ev('m', 215), watermark(Infinity)];
  const betweenOut = await chain([stage(sessionizer, { gap: '30m', allowed_lateness: '3h' }), stage(userFeatures, { horizons: [] })], between());
  assert.deepEqual(eventsOf(betweenOut)[6]!.session!.merged, [`m:${T0 + 50 * MIN}`], '30 merged 0-5 and the late 50');
  assert.deepEqual(figures(betweenOut).get(215), [3, Math.fround(95 / 1440), 2, 5]);
  // Nor where 75 bridges the late 50 and 100-105 (the session completed last, but not with 0-5).
  const withLast = [...between().slice(0, 7), ev('m', 75), ev('m', 215), watermark(Infinity)];
  const withLastOut = await chain([stage(sessionizer, { gap: '30m', allowed_lateness: '3h' }), stage(userFeatures, { horizons: [] })], withLast);
  assert.deepEqual(eventsOf(withLastOut)[6]!.session!.merged, [`m:${T0 + 100 * MIN}`], '75 merged the late 50 and 100-105');
  assert.deepEqual(figures(withLastOut).get(215), [3, Math.fround(95 / 1440), 2, 5]);
});

test('a closed session\'s state stays until the watermark passes its keptUntil (or the sessionizer forgets it early), then goes; a snapshot at any point restores to the uninterrupted run', async () => {
  const held = async (run: Chain) => ((await run.snapshot())[1] as { users: string[] }).users.length;
  const run = await Chain.build([stage(sessionizer, { gap: '30m', allowed_lateness: '1h' }), stage(sessionFeatures)], ctx());
  run.push([ev('u', 0), ev('v', 0), watermark(T0 + 31 * MIN)]); // both closed (summaries out), kept until 0 + 30 + 60
  assert.equal(await held(run), 2);
  run.push([watermark(T0 + 89 * MIN)]);
  assert.equal(await held(run), 2);
  run.push([watermark(T0 + 90 * MIN)]);
  assert.equal(await held(run), 0, 'the watermark passed their keptUntil');
  run.end();
  // max_open_sessions 5: the sessionizer forgets closed sessions long before their lateness runs out; so does session-features.
  const bounded = await Chain.build([stage(sessionizer, { gap: '1m', allowed_lateness: '1d', max_open_sessions: 5 }), stage(sessionFeatures)], ctx());
  for (let k = 0; k < 200; k++) bounded.push([ev(`u${k}`, k * 2), watermark(T0 + k * 2 * MIN)]);
  assert.ok((await held(bounded)) <= 6, `${await held(bounded)} sessions held`);
  bounded.end();
  // A far-future event the sessionizer dead-letters holds its watermark back, not the one after it: the state stays while the sessionizer keeps the session.
  const ahead = await Chain.build([stage(sessionizer, { gap: '30m', allowed_lateness: '1h' }), stage(sessionFeatures)], ctx());
  ahead.push([ev('u', 0, 'view', { price: 4 }), watermark(T0 + 31 * MIN), ev('u', 10 * 365 * 24 * 60), watermark(T0 + 200 * MIN), ev('u', 5, 'view', { price: 6 })]);
  const reopened = eventsOf(ahead.end()).at(-1)!;
  assert.deepEqual([reopened.session!.position, named(reopened).s_views, named(reopened).s_view_price_mean], [1, 2, 5]);
  // Reopened, merged, data ids back: cut anywhere, restored, the same as one run.
  const serialize = (out: Element[]) => out.map((e) => JSON.stringify({ ...e, features: (e as ClickEvent).features ? Array.from((e as ClickEvent).features!.values) : undefined }));
  const item = { itemId: 'i1', category: 'c1', price: 5 };
  const streams: [Parameters<typeof stage>[1], () => Element[]][] = [
    [{ gap: '30m', allowed_lateness: '1h' }, () => [
      ev('m', 0, 'view', item), ev('n', 1, 'view', item), ev('m', 40, 'cart', item), watermark(T0 + 50 * MIN),
      ev('m', 20, 'view', { ...item, itemId: 'i2' }), ev('m', 55, 'view', item), ev('n', 80, 'view', item),
      ev('n', 120, 'purchase', item), watermark(T0 + 155 * MIN), ev('n', 100, 'cart', item), ev('n', 160, 'view', item), watermark(Infinity),
    ]],
    [{ session_id_from: 'data', gap: '30m', allowed_lateness: '10m' }, () => [
      ev('u', 0, 'view', { ...item, sessionId: 'A' }), ev('v', 1, 'cart', { ...item, sessionId: 'A' }), watermark(T0 + MIN), watermark(T0 + 32 * MIN),
      ev('u', 35, 'view', { ...item, sessionId: 'A', itemId: 'i3' }), ev('v', 80, 'view', { ...item, sessionId: 'A' }), watermark(T0 + 90 * MIN),
      ev('u', 36, 'cart', { ...item, sessionId: 'A' }), watermark(Infinity),
    ]],
    // The far-future event again, the watermark here past u's keptUntil (90) while the sessionizer's is at
    // 40: restored, with no handle to ask, u's state waits for the sessionizer too (a watermark before u's
    // late event released it, and the event started over from zero).
    [{ gap: '30m', allowed_lateness: '1h' }, () => [
      ev('u', 0, 'view', { ...item, price: 4 }), watermark(T0 + 31 * MIN), ev('u', 10 * 365 * 24 * 60), watermark(T0 + 200 * MIN),
      ev('v', 40, 'view', item), watermark(T0 + 201 * MIN), ev('u', 5, 'view', { ...item, price: 6 }), ev('v', 41, 'cart', item), watermark(Infinity),
    ]],
  ];
  for (const [config, input] of streams) {
    const stages = [stage(sessionizer, config as never), stage(sessionFeatures), stage(userFeatures, { horizons: ['1h'] })];
    const run = await chain(stages, input());
    const late = eventsOf(run).find((e) => e.userId === 'u' && e.time === T0 + 5 * MIN);
    if (late !== undefined) assert.deepEqual([named(late).s_events, named(late).s_views, named(late).s_view_price_mean], [2, 2, 5]);
    const whole = serialize(run);
    for (let cut = 0; cut <= input().length; cut++) {
      const first = await Chain.build(stages, ctx());
      first.push(input().slice(0, cut));
      const second = await Chain.build(stages, ctx(), await first.snapshot());
      assert.deepEqual(serialize([...first.output, ...second.push(input().slice(cut)).end()]), whole, `cut at ${cut}`);
    }
  }
});

test('after a burst of sessions has closed, session-features gives its room back, and the sessions still open keep their state', async () => {
  const item = (k: number) => ({ itemId: `i${k % 7}`, category: `c${k % 3}`, price: 5 + k });
  const survivors = Array.from({ length: 40 }, (_, k) => `s${k}`);
  // 20,000 one-event sessions within ten minutes, beside 40 sessions that go on for hours.
  const burst = (size: number): Element[] => Array.from({ length: size }, (_, k) => ev(`b${k}`, (k / size) * 10, 'view', item(k)));
  const rest = (): Element[] => {
    const out: Element[] = [];
    for (let step = 0; step < 10; step++) {
      for (const [k, user] of survivors.entries()) out.push(ev(user, 12 + step * 20, step % 3 === 2 ? 'cart' : 'view', item(k + step)));
      out.push(watermark(T0 + (12 + step * 20) * MIN));
    }
    out.push(watermark(Infinity));
    return out;
  };
  const hub = new MetricsHub();
  const slots = async (): Promise<number> => Number(/^tributary_session_feature_slots\{[^}]*\} (\d+)$/m.exec(await hub.registry.metrics())![1]);
  const stages = [stage(sessionizer), stage(sessionFeatures)];
  const withBurst = await Chain.build(stages, testContext({ clock, metrics: hub.scoped({ pipeline: 'test', stage: 'session-features' }) }));
  withBurst.push([...burst(20_000), watermark(T0 + 10 * MIN)]); // the sessionizer passes events on at the watermark
  assert.ok((await slots()) >= 20_000, 'room for the burst');
  const survivorsOnly = (out: Element[]) => eventsOf(out).filter((e) => e.userId.startsWith('s')).map((e) => JSON.stringify({ ...e, features: Array.from(e.features!.values) }));
  const got = survivorsOnly(withBurst.push(rest()).output);
  assert.equal(await slots(), 1024, 'back to the smallest pool once the burst closed');
  const alone = await Chain.build(stages, ctx());
  const expected = survivorsOnly(alone.push(rest()).end());
  assert.equal(got.length, 400);
  assert.deepEqual(got, expected, 'features of the sessions moved by the compaction are those of a run without the burst');
  withBurst.end();
});

test('sessions opened after session-features gave its room back start from zero, not from a closed session\'s figures', async () => {
  // A burst of 3,000 one-view sessions grows the pools; once they closed, the pools shrink back, and
  // 1,000 new sessions take slots beyond the ones the free list hands out: none may see a burst's view.
  const burst = (): Element[] => Array.from({ length: 3000 }, (_, k) => ev(`b${k}`, k / 1000, 'view', { price: 1000 + k }));
  const newcomers = (): Element[] => Array.from({ length: 1000 }, (_, k) => ev(`n${k}`, 200 + k / 1000, 'view', { price: 7 }));
  const stages = [stage(sessionizer), stage(sessionFeatures)];
  const afterBurst = eventsOf(await chain(stages, [...burst(), watermark(T0 + 100 * MIN), ...newcomers(), watermark(Infinity)]))
    .filter((e) => e.userId.startsWith('n'))
    .map(named);
  const alone = eventsOf(await chain(stages, [...newcomers(), watermark(Infinity)])).map(named);
  assert.equal(afterBurst.length, 1000);
  assert.deepEqual(afterBurst.filter((f) => f.s_views !== 1 || f.s_view_price_max !== 7), [], 'one view at price 7 each');
  assert.deepEqual(afterBurst, alone);
});

test('no leakage: features at events before a purchase are identical whether or not the purchase and later events exist', async (t) => {
  const dir = tempFolder(t, 'leakage');
  const world = new ShopperWorld({ seed: 5, users: 400 });
  const all: ClickEvent[] = Array.from({ length: 8000 }, () => world.next());
  const purchases = all.filter((e) => e.type === 'purchase');
  assert.ok(purchases.length >= 30);
  const line = (e: ClickEvent) => JSON.stringify({ user_id: e.userId, time: e.time, type: e.type, item_id: e.itemId, category: e.category, price: e.price });
  const run = async (events: ClickEvent[]) => {
    const path = join(dir, `cut-${events.length}.jsonl`);
    writeFileSync(path, events.map(line).join('\n') + '\n');
    const result = await runYaml(
      `sources: [{type: file, path: ${path}, mapping: {time_format: epoch_ms}}]
stages:
  - {type: sessionizer, gap: 30m}
  - {type: session-features}
  - {type: user-features}
  - {type: hash-features, fields: [category]}
  - {type: log1p, features: ["s_*"]}
  - {type: standardize, features: ["s_*", "u_*"]}
sinks: [{type: memory, kinds: [event]}]
`,
      { clock },
    );
    return new Map(result.outputs[0]!.map((e) => [`${e.userId}@${e.time}#${e.type}#${e.itemId}`, Array.from((e.features as { values: Float32Array }).values)]));
  };
  const full = await run(all);
  for (const purchase of [purchases[0]!, purchases[10]!, purchases[29]!]) {
    // Cut the stream at the purchase: it and everything after it never happened.
    const before = all.filter((e) => e.time < purchase.time);
    const cut = await run(before);
    assert.equal(cut.size, new Set(before.map((e) => `${e.userId}@${e.time}#${e.type}#${e.itemId}`)).size);
    for (const [key, values] of cut) assert.deepEqual(full.get(key), values, `features at ${key} (before the purchase at ${purchase.time}) changed`);
  }
});

test('the REES46 sample runs through sessionizer and features from pipelines/rees46-sessions.yaml', async (t) => {
  const csv = resolve('../shared/data/rees46/2019-Oct_head.csv');
  if (!existsSync(csv)) {
    t.skip(`${csv} is absent (../shared/data is not part of the project)`);
    return;
  }
  const out = tempFolder(t, 'rees46');
  const result = await runYaml(readFileSync('pipelines/rees46-sessions.yaml', 'utf8'), { env: { REES46_CSV: csv, OUT_DIR: out }, clock });
  assert.ok(result.stats.eventsIn > 17_000);
  assert.equal(result.stats.outByKind.event, result.stats.eventsIn, 'every event comes out with features');
  const sessions = readFileSync(join(out, 'rees46-sessions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { sessionId: string; purchased: boolean; eventCount: number });
  const ids = new Set(sessions.map((s) => s.sessionId));
  assert.ok(ids.size >= 5000 && ids.size <= 5100, `${ids.size} sessions (the README counts 5,067)`);
  const withPurchase = new Set(sessions.filter((s) => s.purchased).map((s) => s.sessionId)).size;
  assert.ok(withPurchase >= 190 && withPurchase <= 210, `${withPurchase} sessions with a purchase (README: 200)`);
  const first = JSON.parse(readFileSync(join(out, 'rees46-features.jsonl'), 'utf8').split('\n', 1)[0]!) as { features: Record<string, number>; session: { id: string } };
  assert.equal(first.session.id, '72d76fde-8bb3-4e00-8c23-a032dfed738c');
  assert.ok('s_events' in first.features && 'u_events_7d' in first.features && 'cat_31' in first.features);
  assert.ok(Object.values(first.features).every((v) => Number.isFinite(v)));
});

test('the open_sessions and known_users gauges read 0 from their stage\'s start, not absent until the first event', async () => {
  const hub = new MetricsHub();
  for (const [plugin, name] of [[sessionizer, 'open_sessions'], [userFeatures, 'known_users']] as const) {
    const metrics = hub.scoped({ pipeline: 'p', stage: name });
    await (plugin.create as (config: unknown, context: unknown) => Promise<unknown>)(withDefaults(plugin as never, {}), testContext({ metrics }));
    assert.match(await hub.registry.metrics(), new RegExp(`^tributary_${name}\\{pipeline="p",stage="${name}"\\} 0$`, 'm'));
  }
});

test('s_view_price_std keeps its precision for large prices with a small spread (Welford, not E[x^2] - mean^2)', async () => {
  // Population deviation of 1e9 + {0.1, 0.2, 0.3}: sqrt(0.02 / 3). E[x^2] - mean^2 cancels 1e18-sized
  // terms whose float64 steps are 128, so it gave 0 or tens.
  const big = 1e9;
  const input: Element[] = [0.1, 0.2, 0.3].map((d, k) => ev('u1', k, 'view', { price: big + d }));
  // The same spread on small prices, for the figure the large ones must match.
  input.push(...[0.1, 0.2, 0.3].map((d, k) => ev('u2', k, 'view', { price: 10 + d })), watermark(Infinity));
  const out = eventsOf(await chain([stage(sessionizer), stage(sessionFeatures)], input));
  const stds = (user: string) => out.filter((e) => e.userId === user).map((e) => named(e).s_view_price_std);
  const expected = Math.fround(Math.sqrt(0.02 / 3));
  const large = stds('u1');
  const small = stds('u2');
  assert.ok(Math.abs(small[2]! - expected) < 1e-6, `std of 10 + {0.1, 0.2, 0.3}: ${small[2]}`);
  assert.ok(Math.abs(large[2]! - expected) < 1e-5, `std of 1e9 + {0.1, 0.2, 0.3}: ${large[2]}, expected ${expected}`);
  assert.ok(Math.abs(large[1]! - 0.05) < 1e-5, `after two views: ${large[1]}`);
  assert.equal(large[0], 0);
});

test('a session-features snapshot of version 2 (sums of squared view prices) restores to the same deviations', async () => {
  // Fresh events for each run: the stages tag the events they pass.
  const events = (): Element[] => [ev('u1', 0, 'view', { price: 10 }), ev('u1', 1, 'view', { price: 20 }), watermark(T0 + 2 * MIN), ev('u1', 3, 'view', { price: 30 }), watermark(Infinity)];
  const stages = [stage(sessionizer), stage(sessionFeatures)];
  const whole = eventsOf(await chain(stages, events())).map((e) => named(e).s_view_price_std);
  const input = events();
  const first = await Chain.build(stages, ctx());
  first.push(input.slice(0, 3));
  const saved = await first.snapshot();
  const features = saved[1] as { version: number; ids: unknown; users?: unknown; unknownUsers?: unknown; columns: { n: number; f64?: string; c?: number }[] };
  assert.equal(features.version, 4);
  // As version 2 wrote it: sessions by id alone, and the sum of squares (100 + 400) where version 3 on keeps the squared deviations (50).
  features.version = 2;
  features.ids = [`u1:${T0}`];
  delete features.users;
  delete features.unknownUsers;
  features.columns[6] = { n: 1, f64: Buffer.from(new Float64Array([500]).buffer).toString('base64') };
  const second = await Chain.build(stages, ctx(), saved);
  second.push(input.slice(3));
  const resumed = [...eventsOf(first.output), ...eventsOf(second.end())].map((e) => named(e).s_view_price_std);
  assert.deepEqual(resumed, whole);
  assert.equal(whole[2], Math.fround(Math.sqrt(200 / 3)));
});

test('a price beyond the Float32 range (1e39, which the mapping accepts) is written as the largest Float32, never Infinity; standardize skips values that are not finite and restores statistics an older version saved as null from zero', async () => {
  const huge = 1e39;
  const max = 3.4028234663852886e38;
  const input = (): Element[] => {
    const out: Element[] = [];
    // A watermark after each event, so each passes the sessionizer at once.
    for (let k = 0; k < 5; k++) out.push(ev(`a${k}`, k, 'purchase', { itemId: 'i', price: 10 + k }), watermark(T0 + k * MIN));
    out.push(ev('bad', 5, 'view', { itemId: 'i', price: huge }), ev('bad', 5.5, 'cart', { itemId: 'i', price: huge }), ev('bad', 6, 'purchase', { itemId: 'i', price: huge }), watermark(T0 + 6 * MIN));
    for (let k = 0; k < 5; k++) out.push(ev(`b${k}`, 7 + k, 'purchase', { itemId: 'i', price: 10 + k }), watermark(T0 + (7 + k) * MIN));
    out.push(watermark(Infinity));
    return out;
  };
  const raw = [stage(sessionizer), stage(sessionFeatures), stage(userFeatures, { horizons: [] })];
  const bad = eventsOf(await chain(raw, input())).filter((e) => e.userId === 'bad').map(named);
  for (const f of bad) for (const [name, value] of Object.entries(f)) assert.ok(Number.isFinite(value), `${name}: ${value}`);
  assert.deepEqual([bad[0]!.s_price, bad[0]!.s_view_price_mean, bad[0]!.s_view_price_max, bad[1]!.s_cart_value, bad[1]!.s_cart_price_max, bad[2]!.u_monetary], Array(6).fill(max));
  // standardize after them: the statistics stay numbers, and a restore after the huge price goes on as one run.
  const stages = [...raw, stage(standardize, { features: ['s_price', 'u_monetary'] })];
  const whole = eventsOf(await chain(stages, input())).map((e) => [named(e).s_price, named(e).u_monetary]);
  assert.ok(whole.slice(-5).every(([price, monetary]) => price !== 0 && monetary !== 0 && Number.isFinite(price) && Number.isFinite(monetary)), JSON.stringify(whole.slice(-5)));
  const first = await Chain.build(stages, ctx());
  first.push(input().slice(0, 20));
  const second = await Chain.build(stages, ctx(), await first.snapshot());
  assert.deepEqual(eventsOf([...first.output, ...second.push(input().slice(20)).end()]).map((e) => [named(e).s_price, named(e).u_monetary]), whole);
  // An Infinity another stage let through is left as it is and not counted.
  const vector = (x: number): ClickEvent => ({ ...ev('u', 0), features: { names: ['x'], values: Float32Array.of(x) } });
  const values = (xs: number[]) => runOperator(standardize, { features: ['x'], min_count: 2 }, [...xs.map(vector), watermark(Infinity)], ctx()).then(({ output }) => eventsOf(output).map((e) => e.features!.values[0]));
  const finite = await values([1, 2, 3, 4]);
  assert.deepEqual(await values([1, 2, Infinity, 3, -Infinity, 4]), [finite[0], finite[1], Infinity, finite[2], -Infinity, finite[3]]);
  // Statistics an older version let an Infinity poison were saved as null: they start over, said.
  const logs: { msg: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (entry: string) => void logs.push(JSON.parse(entry) as { msg: string }) });
  const operator = await standardize.create(withDefaults(standardize, { features: ['x'] }), testContext({ clock, logger }));
  await operator.restore!({ version: 1, stats: { x: [8, null, null] } });
  assert.deepEqual(await operator.snapshot!(), { version: 1, stats: {} });
  assert.match(logs.map((entry) => entry.msg).join('\n'), /statistics of these features are not numbers/);
});

test('prices near the largest double (1e308, which the mapping accepts) leave every session feature finite: their sum no longer overflows to Infinity and the view price std to NaN (was: NaN for the rest of the session, and in a session merged with it)', async () => {
  const max = 3.4028234663852886e38;
  const input: Element[] = [
    ev('u', 0, 'view', { sessionId: 'A', price: 1e308 }),
    ev('u', 1, 'view', { sessionId: 'A', price: 1e308 }),
    ev('u', 2, 'view', { sessionId: 'A', price: 5 }),
    ev('u', 3, 'cart', { sessionId: 'A', price: 1e308 }),
    ev('u', 4, 'cart', { sessionId: 'A', price: 1e308 }),
    ev('u', 5, 'purchase', { sessionId: 'A', price: 1e308 }),
    watermark(Infinity),
  ];
  const out = eventsOf(await chain([stage(sessionizer), stage(sessionFeatures)], input)).map(named);
  for (const f of out) for (const [name, value] of Object.entries(f)) assert.ok(Number.isFinite(value), `${name}: ${value}`);
  // Read as the largest Float32 each: two equal, then one far below them.
  assert.deepEqual(out.map((f) => f.s_view_price_mean), [max, max, Math.fround((2 * max + 5) / 3), ...Array(3).fill(Math.fround((2 * max + 5) / 3))]);
  assert.equal(out[1]!.s_view_price_std, 0);
  assert.ok(out[2]!.s_view_price_std! > 1e38, String(out[2]!.s_view_price_std));
  assert.equal(out[4]!.s_cart_value, max);
});

test("a user's feature block keeps a price beyond the Float32 range finite with the public inFloat32Range, as the built-in blocks do (the largest Float32 of its sign; NaN stays NaN)", async () => {
  const max = 3.4028234663852886e38;
  assert.deepEqual([1e39, -1e39, 12.5, 0].map(inFloat32Range), [max, -max, 12.5, 0]);
  assert.ok(Number.isNaN(inFloat32Range(Number.NaN)));
  const { output } = await runOperator(userBlock, { prefix: 'mine' }, [ev('u', 0, 'view', { price: 1e39 }), ev('u', 1, 'view', { price: -1e39 }), watermark(Infinity)], ctx());
  assert.deepEqual(eventsOf(output).map((e) => named(e).mine_price), [max, -max]);
});

test('standardize: a feature of small scale is standardised like any other; only one whose values differ by no more than float32 rounding becomes 0', async () => {
  const vector = (x: number): ClickEvent => ({ ...ev('u', 0), features: { names: ['x'], values: Float32Array.of(x) } });
  const values = (xs: number[]) => runOperator(standardize, { features: ['x'], min_count: 2 }, [...xs.map(vector), watermark(Infinity)], ctx()).then(({ output }) => eventsOf(output).map((e) => e.features!.values[0]!));
  // 1e-7, 2e-7, 3e-7: at the 2nd, mean 1.5e-7 and sample sd 0.5e-7 * sqrt(2), z = 1/sqrt(2); at the 3rd, mean 2e-7 and sd 1e-7, z = 1.
  // (A variance of 1e-14 was below a fixed 1e-12, so every value became 0.)
  const small = await values([1e-7, 2e-7, 3e-7]);
  assert.equal(small[0], 0);
  assert.ok(Math.abs(small[1]! - Math.SQRT1_2) < 1e-6 && Math.abs(small[2]! - 1) < 1e-6, JSON.stringify(small));
  // The same at 1e6 times the scale, and at 1e6 plus it: scaled alike, offset alike.
  assert.deepEqual(await values([1, 2, 3]), [0, Math.fround(Math.SQRT1_2), 1]);
  assert.deepEqual(await values([1e6 + 1, 1e6 + 2, 1e6 + 3]), [0, Math.fround(Math.SQRT1_2), 1]);
  // A constant, and values one float32 step apart (rounding, not signal: 1e6 and the next float32 up, 1e6 + 1/16).
  assert.deepEqual(await values([5, 5, 5]), [0, 0, 0]);
  assert.deepEqual(await values([1e6, 1e6 + 1 / 16, 1e6, 1e6 + 1 / 16]), [0, 0, 0, 0]);
});

test('a transform\'s `features` wildcard that matches no name in the vector is logged, as an exact name not in it is; one that matches is not', async () => {
  for (const [plugin, config] of [[standardize, {}], [log1p, {}], [clip, { max: 1 }]] as const) {
    const warnings = async (features: string[]): Promise<unknown[]> => {
      const logs: { missing?: unknown }[] = [];
      const logger = pino({ level: 'warn' }, { write: (entry: string) => void logs.push(JSON.parse(entry) as { missing?: unknown }) });
      const input = [ev('u', 0, 'view', { price: 3 }), ev('u', 1, 'view', { price: 4 }), watermark(Infinity)];
      await (await Chain.build([stage(sessionizer), stage(sessionFeatures), stage(plugin as never, { ...config, features } as never)], testContext({ clock, logger }))).push(input).end();
      return logs.map((entry) => entry.missing);
    };
    assert.deepEqual(await warnings(['s_view_prices_*', 'u_*', 's_nope', 's_view_price_*']), [['s_nope', 's_view_prices_*', 'u_*']], plugin.name);
    assert.deepEqual(await warnings(['s_view_price_*', 's_events']), [], plugin.name);
  }
});

test('max_users reached: the eviction policy is said once at info, naming its metric, and every eviction is counted', async () => {
  const logs: { level: number; msg: string; metric?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (entry: string) => void logs.push(JSON.parse(entry) as { level: number; msg: string }) });
  const hub = new MetricsHub();
  const context = testContext({ clock, logger, metrics: hub.scoped({ pipeline: 'test', stage: 'user-features' }) });
  // 1,000 users one after another past a bound of 50: evictions again and again.
  const input: Element[] = [...Array.from({ length: 1000 }, (_, u) => ev(`u${u}`, u, 'view', { itemId: 'i1', category: 'c1' })), watermark(Infinity)];
  const out = await (await Chain.build([stage(userFeatures, { max_users: 50 })], context)).push(input).end();
  assert.equal(eventsOf(out).length, 1000, 'every event passes on');
  const evicted = Number(/^tributary_users_evicted_total\{[^}]*\} (\d+)$/m.exec(await hub.registry.metrics())![1]);
  assert.ok(evicted >= 900, `evictions counted: ${evicted}`);
  assert.equal(logs.length, 1, logs.map((entry) => entry.msg).join('\n'));
  assert.equal(logs[0]!.level, 30, 'info: the expected policy, not a warning');
  assert.equal(logs[0]!.metric, 'tributary_users_evicted_total');
  assert.match(logs[0]!.msg, /max_users reached.*tributary_users_evicted_total/);
});

test('user-features snapshots the previous session end and last purchase as integers of at most 4 bytes (times, or offsets from first seen), not raw float64s; a snapshot with 0s there (before) restores to the same features', async () => {
  // Row fields (user-features.ts): users without a completed session or a purchase yet are among these.
  const [FIRST_SEEN, DONE_SESSIONS, PREV_SESSION_END, PURCHASES, LAST_PURCHASE] = [0, 7, 10, 11, 13];
  const stages = [stage(sessionizer, { gap: '30m' }), stage(userFeatures, { horizons: ['1d'] })];
  const serialize = (out: Element[]) => eventsOf(out).map((e) => Array.from(e.features!.values));
  const whole = serialize(await chain(stages, shoppers(6000)));
  const input = shoppers(6000);
  const cut = 3001;
  const first = await Chain.build(stages, ctx());
  first.push(input.slice(0, cut));
  const saved = await first.snapshot();
  const users = saved[1] as { columns: Column[] };
  const width = users.columns.length;
  const n = users.columns[0]!.n;
  const rows = new Float64Array(n * width);
  await decodeTable(users.columns, rows, width, 'test');
  const without = (guard: number) => Array.from({ length: n }, (_, i) => rows[i * width + guard]).filter((count) => count === 0).length;
  assert.ok(without(DONE_SESSIONS) > 0 && without(PURCHASES) > 0, 'some users have no completed session or no purchase yet');
  for (const field of [PREV_SESSION_END, LAST_PURCHASE]) {
    const column = users.columns[field]!;
    assert.ok('c' in column || ('bytes' in column && column.bytes <= 4), `field ${field}: ${JSON.stringify(column).slice(0, 60)}`);
  }
  // As the release before wrote it: 0 until set, which made both columns raw float64s.
  for (let i = 0; i < n; i++) {
    if (rows[i * width + DONE_SESSIONS] === 0) rows[i * width + PREV_SESSION_END] = 0;
    if (rows[i * width + PURCHASES] === 0) rows[i * width + LAST_PURCHASE] = 0;
  }
  const refs: number[] = [];
  for (const field of [1, 4, 6, PREV_SESSION_END, LAST_PURCHASE, 14]) refs[field] = FIRST_SEEN;
  const old = [saved[0], { ...(saved[1] as object), columns: await inTurns(encodeTable(rows, n, width, refs)) }];
  assert.ok('f64' in (old[1] as { columns: Column[] }).columns[PREV_SESSION_END]!);
  for (const restoredFrom of [saved, old]) {
    const second = await Chain.build(stages, ctx(), restoredFrom);
    assert.deepEqual(await second.snapshot(), saved, 'restored as the current release writes it');
    second.push(shoppers(6000).slice(cut)); // fresh events: the stages add to the events they pass on
    assert.deepEqual([...serialize(first.output), ...serialize(second.end())], whole);
  }
  // Version 2, without the previous session's figures (row fields 15-17; the decayed counts after them): the same features (no merges here).
  const v2 = [saved[0], { ...(saved[1] as object), version: 2, columns: users.columns.filter((_, f) => f < 15 || f > 17) }];
  const second = await Chain.build(stages, ctx(), v2);
  second.push(shoppers(6000).slice(cut));
  assert.deepEqual([...serialize(first.output), ...serialize(second.end())], whole);
  first.end();
});

test("a damaged snapshot of the sessionizer, session-features or user-features is refused by restore, saying what does not match (the runtime's message names the stage)", async () => {
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '10m' }), stage(sessionFeatures), stage(userFeatures)];
  const first = await Chain.build(stages, ctx());
  // Open sessions, closed ones (users with a history) and events the watermark has not passed yet.
  first.push(shoppers(3000).slice(0, 2500));
  const saved = await first.snapshot();
  type Damage = [number, string, (state: Record<string, any>) => void, RegExp];
  const damages: Damage[] = [
    [0, 'a session column of one row', (s) => void (s.start = { n: 1, c: 0 }), /^Error: sessionizer snapshot: start: 1 rows, expected \d+$/],
    [0, 'a timer heap of fewer sessions than its keys', (s) => void (s.heapSeqs = { n: 1, c: 0 }), /^Error: sessionizer snapshot: heapSeqs: 1 rows, expected \d+$/],
    [0, 'a pending event without its user', (s) => void s.pending.userIds.pop(), /^Error: sessionizer snapshot: pending: userIds: \d+ strings, expected \d+$/],
    [1, 'a feature column of one row', (s) => void (s.columns[3] = { n: 1, c: 0 }), /^Error: session-features snapshot: columns: column 3: 1 rows, expected \d+$/],
    [1, 'one feature column short', (s) => void s.columns.pop(), /^Error: session-features snapshot: columns: \d+ columns, expected \d+$/],
    [1, 'an item list short of its counts', (s) => void s.items.pop(), /^Error: session-features snapshot: items: lengths add up to \d+, the list holds \d+$/],
    [2, 'a user id that is not a string', (s) => void (s.users[0] = 7), /^Error: user-features snapshot: users: not a string at row 0$/],
    [2, 'one user more than its rows', (s) => void s.users.push('extra'), /^Error: user-features snapshot: \d+ rows for \d+ users$/],
  ];
  for (const [k, what, damage, message] of damages) {
    const state = structuredClone(saved[k]) as Record<string, any>;
    damage(state);
    const { plugin, config } = stages[k]!;
    const operator = await plugin.create(withDefaults(plugin, config as never), testContext({ clock, label: 'stage-s' }));
    await assert.rejects(Promise.resolve(operator.restore!(state)), message, `${plugin.name}: ${what}`);
  }
});

test('user-features: state saved with horizons 1d, 7d resumes into 1d, 7d, 30d: every user keeps the features of the kept horizons (the same values as an uninterrupted run), the added horizon counts from 0 at the resume, said once (was: refused, "snapshot horizons 1d, 7d differ")', async () => {
  // Each run its own copy of the input: the stages add to the events they pass on.
  const input = (): Element[] => shoppers(6000);
  const cut = 3001;
  const sessions = stage(sessionizer, { gap: '30m', allowed_lateness: '10m' });
  const grown = [sessions, stage(userFeatures, { horizons: ['1d', '7d', '30d'] })];
  const first = await Chain.build([sessions, stage(userFeatures, { horizons: ['1d', '7d'] })], ctx());
  first.push(input().slice(0, cut));
  const saved = await first.snapshot();
  const whole = eventsOf(await chain(grown, input())).slice(eventsOf(first.end()).length);
  const restoredUsers = new Set((saved[1] as { users: string[] }).users);
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, { write: (entry: string) => void logs.push((JSON.parse(entry) as { msg: string }).msg) });
  const resumed = await Chain.build(grown, testContext({ clock, logger }), saved);
  const after = eventsOf(resumed.push(input().slice(cut)).end());
  assert.equal(after.length, whole.length);
  assert.deepEqual(logs.filter((line) => line.startsWith('user-features: ')), [
    `user-features: horizon 30d added since the checkpoint: u_events_30d, u_purchases_30d start at 0 now for the ${restoredUsers.size} users restored (the events before are not kept), the other horizons' counts resumed`,
  ]);
  const added = new Set(['u_events_30d', 'u_purchases_30d']);
  const seen = new Set<string>();
  let firstAfter = 0;
  for (const [i, event] of after.entries()) {
    const got = named(event);
    const expected = named(whole[i]!);
    assert.deepEqual(Object.keys(got), Object.keys(expected));
    for (const name of Object.keys(expected).filter((n) => !added.has(n))) assert.equal(got[name], expected[name], `${event.userId} at ${event.time}: ${name}`);
    if (restoredUsers.has(event.userId) && !seen.has(event.userId)) {
      // The user's first event since the resume: the added horizon's count is this event alone.
      seen.add(event.userId);
      firstAfter++;
      assert.equal(got.u_events_30d, 1, `${event.userId}: u_events_30d`);
      assert.equal(got.u_purchases_30d, event.type === 'purchase' ? 1 : 0);
      assert.ok(expected.u_events_30d! > 1, 'an uninterrupted run counts the events before');
    }
  }
  assert.ok(firstAfter > 100, `${firstAfter} restored users came back`);
});

test('user-features: state saved with horizons 1d, 7d, 30d resumes into 1d, 7d with every feature the same as an uninterrupted 1d, 7d run, so it declares that horizons added, removed or changed keep the values of the names kept (keepsFeatureValues; was: only added)', async () => {
  // What a resume's info line (no warning) and a warm start across a horizon removed rest on.
  const input = (): Element[] => shoppers(4000);
  const cut = 2001;
  const sessions = stage(sessionizer, { gap: '30m', allowed_lateness: '10m' });
  const kept = [sessions, stage(userFeatures, { horizons: ['1d', '7d'] })];
  const first = await Chain.build([sessions, stage(userFeatures, { horizons: ['1d', '7d', '30d'] })], ctx());
  first.push(input().slice(0, cut));
  const saved = await first.snapshot();
  const whole = eventsOf(await chain(kept, input())).slice(eventsOf(first.end()).length);
  const resumed = await Chain.build(kept, ctx(), saved);
  const after = eventsOf(resumed.push(input().slice(cut)).end());
  assert.equal(after.length, whole.length);
  for (const [i, event] of after.entries()) assert.deepEqual(named(event), named(whole[i]!), `${event.userId} at ${event.time}`);

  const keeps = (saved: unknown, horizons: string[]): boolean => userFeatures.keepsFeatureValues!(saved, withDefaults(userFeatures, { horizons } as never));
  const then = { horizons: ['1d', '7d', '30d'], max_users: 5000000 };
  assert.equal(keeps(then, ['1d', '7d', '30d', '90d']), true, 'added');
  assert.equal(keeps(then, ['1d', '7d']), true, 'removed');
  assert.equal(keeps(then, ['1d', '14d']), true, 'changed: 7d and 30d gone, 14d added');
  assert.equal(keeps({ horizons: [3_600_000] }, ['1h']), true, 'a number of milliseconds (u_events_3600000ms) gone, 1h added');
  // A record of another shape (a damaged file, a foreign plugin's) tells nothing: taken for values made otherwise.
  for (const other of [null, 'x', {}, { horizons: '1d' }, { horizons: [{}] }]) assert.equal(keeps(other, ['1d']), false, JSON.stringify(other));
});

test("user-features: a horizon removed since the snapshot is dropped and said, in the config's words (a saved 7d as 7d, not 1w); a saved horizon of a configured one's name but another duration is refused, leaving the stage's label to the runtime's message", async () => {
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, { write: (entry: string) => void logs.push((JSON.parse(entry) as { msg: string }).msg) });
  const context = testContext({ clock, label: 'stage-s', logger });
  const create = (horizons: (string | number)[]) => userFeatures.create(withDefaults(userFeatures, { horizons } as never), context);
  const writer = (await Chain.build([stage(userFeatures, { horizons: ['1h', '7d'] })], context)).push([ev('u', 0), ev('u', 30, 'purchase')]);
  const saved = (await writer.snapshot())[0] as Record<string, unknown>;
  const into = await Chain.build([stage(userFeatures, { horizons: ['1h', '14d'] })], context, [saved]);
  assert.deepEqual(logs, [
    "user-features: horizon 14d added since the checkpoint: u_events_14d, u_purchases_14d start at 0 now for the 1 users restored (the events before are not kept), the other horizons' counts resumed",
    'user-features: horizon 7d removed since the checkpoint: its saved counts are dropped',
  ]);
  const [next] = eventsOf(into.push([ev('u', 60)]).end());
  assert.deepEqual([named(next!).u_events_1h, named(next!).u_events_14d], [Math.fround(1 + Math.exp(-0.5) * (1 + Math.exp(-0.5))), 1]);
  // A snapshot of an older version, without the words: the config's where the duration is one of its horizons, else days (which parse back alike).
  logs.length = 0;
  await (await create([3_600_000])).restore!({ ...saved, horizonNames: undefined });
  assert.deepEqual(logs, ['user-features: horizon 7d removed since the checkpoint: its saved counts are dropped']);
  await assert.rejects(Promise.resolve((await create(['1h', '7d'])).restore!({ ...saved, horizons: [3_600_000, 14 * 86_400_000] })), {
    message: 'snapshot horizon 7d is 1209600000 ms, the config\'s 604800000 ms: its counts were decayed otherwise',
  });
});

test('a damaged snapshot of the sessionizer, session-features or user-features fails the run with the stage named once, by the runtime', async (t) => {
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '10m' }), stage(sessionFeatures), stage(userFeatures)];
  const first = await Chain.build(stages, ctx());
  first.push(shoppers(3000).slice(0, 2500));
  const saved = (await first.snapshot()) as Record<string, any>[];
  first.end();
  const dir = tempFolder(t, 'restore-label');
  const file = join(dir, 'pipeline.yaml');
  const yaml = 'sources: [{type: synthetic, events: 10}]\nstages:\n  - {type: sessionizer, gap: 30m, allowed_lateness: 10m}\n  - {type: session-features}\n  - {type: user-features}\nsinks: [{type: memory}]\n';
  const ways =
    "(if the stage's configuration changed since, undo the change to resume. To start this stage afresh and keep the other stages' state: give it a new `label` " +
    "and run once with --allow-non-restored-state, which drops its old state. To start the whole pipeline afresh: move its checkpoints away, and its `file` outputs " +
    'too to keep them, as a start without a checkpoint replaces them)';
  const damages: [number, string, (state: Record<string, any>) => void, (state: Record<string, any>) => string][] = [
    [0, 'sessionizer', (s) => void (s.start = { n: 1, c: 0 }), (s) => `sessionizer snapshot: start: 1 rows, expected ${(s.users as unknown[]).length}`],
    [1, 'session-features', (s) => void s.columns.pop(), (s) => `session-features snapshot: columns: ${s.columns.length} columns, expected ${s.columns.length + 1}`],
    [2, 'user-features', (s) => void s.users.push('extra'), (s) => `user-features snapshot: ${s.users.length - 1} rows for ${s.users.length} users`],
  ];
  for (const [k, type, damage, refusal] of damages) {
    const state = structuredClone(saved[k]!);
    damage(state);
    const label = `stage-${type}-${k}`;
    // Before: "... could not be restored: stage-sessionizer-0: sessionizer snapshot: ...", the label twice.
    await assert.rejects(runYaml(yaml, { baseDir: dir, restoreState: { [label]: state } }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_CHECKPOINT');
      assert.equal(error.message, `the saved state of stage ${label} (${file}:${3 + k}:5, $.stages[${k}], ${type}) could not be restored: ${refusal(state)} ${ways}`);
      return true;
    }, type);
  }
});

test('session-features without time_zone or utc_offset_minutes warns once, at the first time a source reads with an offset other than zero (+01:00), naming it and the options; with either set, or with times in Z, it says nothing (was: UTC hours without a word)', async (t) => {
  const dir = tempFolder(t, 'offsets');
  const offsetWarnings = async (times: string[], stageConfig: string): Promise<string[]> => {
    const path = join(dir, `events-${Math.random().toString(36).slice(2)}.jsonl`);
    writeFileSync(path, times.map((time, k) => JSON.stringify({ user_id: `u${k % 2}`, time, type: 'view' })).join('\n') + '\n');
    const logs: { msg: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (entry: string) => void logs.push(JSON.parse(entry) as { msg: string }) });
    await runYaml(`sources: [{type: file, path: ${path}}]\nstages: [{type: sessionizer}, {type: session-features${stageConfig}}]\nsinks: [{type: memory}]\n`, { clock, logger });
    return logs.map(({ msg }) => msg).filter((msg) => msg.includes('UTC offset'));
  };
  const berlin = ['2024-01-10T10:00:00Z', '2024-01-10T11:00:00+01:00', '2024-07-10T12:00:00+02:00', '2024-01-10T11:05:00+01:00'];
  assert.deepEqual(await offsetWarnings(berlin, ''), [
    'source-file-0 reads times written with their own UTC offset (+01:00, the first one read), while neither time_zone nor utc_offset_minutes is set on this stage: the hour-of-day and day-of-week features are taken in UTC, not on the clock the times were written on; set time_zone to the shop\'s zone (an IANA name, Europe/Berlin: summer time followed), or utc_offset_minutes: 60 for a fixed offset (time_zone: UTC keeps UTC hours and says they are meant)',
  ]);
  assert.deepEqual(await offsetWarnings(['2024-01-10T10:00:00-05:30'], ''), [
    'source-file-0 reads times written with their own UTC offset (-05:30, the first one read), while neither time_zone nor utc_offset_minutes is set on this stage: the hour-of-day and day-of-week features are taken in UTC, not on the clock the times were written on; set time_zone to the shop\'s zone (an IANA name, Europe/Berlin: summer time followed), or utc_offset_minutes: -330 for a fixed offset (time_zone: UTC keeps UTC hours and says they are meant)',
  ]);
  assert.deepEqual(await offsetWarnings(berlin, ', time_zone: Europe/Berlin'), []);
  assert.deepEqual(await offsetWarnings(berlin, ', time_zone: UTC'), []);
  assert.deepEqual(await offsetWarnings(berlin, ', utc_offset_minutes: 60'), []);
  assert.deepEqual(await offsetWarnings(['2024-01-10T10:00:00Z', '2024-01-10T10:00:00+00:00', '2024-01-10 10:00:00'], ''), []);
});

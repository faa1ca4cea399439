import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeColumn, MetricsHub, ORIGIN, watermark, type ClickEvent, type Column, type Element, type StreamRecord } from 'tributary';
import { runOperator, runYaml, testContext } from 'tributary/testing';
import sessionizer, { type SessionizerSummary } from './sessionizer.js';
import { Chain, stage, withDefaults, T0, MIN, ev, wm } from './harness.js';

const clock = { now: () => Date.UTC(2024, 5, 1) };

const events = (out: Element[]): ClickEvent[] => out.filter((e): e is ClickEvent => e.kind === 'event');
const summaries = (out: Element[]): SessionizerSummary[] => out.filter((e) => e.kind === 'session') as unknown as SessionizerSummary[];
const ctx = () => testContext({ clock });
/** A counter's or gauge's value, as exported. */
async function metricOf(hub: MetricsHub, name: string): Promise<number> {
  return Number(new RegExp(`^tributary_${name}\\{[^}]*\\} (\\d+)$`, 'm').exec(await hub.registry.metrics())![1]);
}
/** The output as a trace in minutes: `W35` a watermark, `u1@20>u1:0` an event and its session, `S u1:0 [0,20] gap update` a summary. */
function trace(out: Element[]): string[] {
  const minutes = (id: string): string => id.replace(/:(\d+)(?=$|#)/, (_, time: string) => `:${(Number(time) - T0) / MIN}`);
  return out.map((e) => {
    if (e.kind === 'watermark') return `W${((e as { time: number }).time - T0) / MIN}`;
    if (e.kind === 'event') return `${(e as ClickEvent).userId}@${((e as ClickEvent).time - T0) / MIN}>${minutes((e as ClickEvent).session!.id)}`;
    const s = e as unknown as SessionizerSummary;
    return `S ${minutes(s.sessionId)} [${(s.start - T0) / MIN},${(s.end - T0) / MIN}] ${s.closedBy}${s.update ? ' update' : ''}`;
  });
}

test('gaps: a silence of `gap` starts a new session; context per event; summary once the watermark passes end + gap', async () => {
  const input: Element[] = [
    ev('u1', 0), ev('u2', 5), ev('u1', 10, 'cart', { price: 5 }), ev('u1', 20, 'purchase'), wm(49),
    ev('u1', 60), // 40 min after 20: new session
    wm(50), wm(70), wm(Infinity),
  ];
  const { output } = await runOperator(sessionizer, { gap: '30m' } as never, input, ctx());
  const tagged = events(output).map((e) => [e.userId, e.session!.id, e.session!.position, e.session!.sinceStart / MIN, e.session!.sincePrevious / MIN]);
  assert.deepEqual(tagged, [
    ['u1', `u1:${T0}`, 0, 0, 0],
    ['u2', `u2:${T0 + 5 * MIN}`, 0, 0, 0],
    ['u1', `u1:${T0}`, 1, 10, 10],
    ['u1', `u1:${T0}`, 2, 20, 20 - 10],
    ['u1', `u1:${T0 + 60 * MIN}`, 0, 0, 0],
  ]);
  // Order of records: u1's first session closes at wm 50 (20 + 30), not at 49; u2's at 35 < 49.
  const kinds = output.map((e) => (e.kind === 'session' ? `S:${(e as StreamRecord).sessionId}` : e.kind === 'watermark' ? `W${((e as { time: number }).time - T0) / MIN}` : `E${((e as ClickEvent).time - T0) / MIN}`));
  assert.deepEqual(kinds, ['E0', 'E5', 'E10', 'E20', `S:u2:${T0 + 5 * MIN}`, 'W49', `S:u1:${T0}`, 'W50', 'E60', 'W70', `S:u1:${T0 + 60 * MIN}`, 'WInfinity']);
  const first = summaries(output).find((s) => s.sessionId === `u1:${T0}`)!;
  assert.deepEqual(first, {
    kind: 'session', userId: 'u1', sessionId: `u1:${T0}`, start: T0, end: T0 + 20 * MIN, eventCount: 3,
    counts: { view: 1, cart: 1, purchase: 1 }, purchased: true, closedBy: 'gap', keptUntil: T0 + 50 * MIN,
  });
  assert.equal(summaries(output).at(-1)!.closedBy, 'end_of_input');
});

test('out-of-order events within the watermark bound are assigned in event-time order', async () => {
  const { output } = await runOperator(sessionizer, {} as never, [ev('u1', 10), ev('u1', 0, 'cart'), ev('u1', 5), wm(Infinity)], ctx());
  assert.deepEqual(events(output).map((e) => [(e.time - T0) / MIN, e.session!.position, e.session!.sincePrevious / MIN]), [[0, 0, 0], [5, 1, 5], [10, 2, 5]]);
  assert.equal(summaries(output).length, 1);
});

test('a late event within allowed lateness bridges two closed sessions: merged, and the summary is sent again with update', async () => {
  const input: Element[] = [ev('u1', 0), ev('u1', 40, 'purchase'), wm(75), ev('u1', 20, 'cart'), wm(Infinity)];
  const { output } = await runOperator(sessionizer, { gap: '30m', allowed_lateness: '1h' } as never, input, ctx());
  const s = summaries(output);
  assert.deepEqual(s.map((x) => [x.sessionId, x.eventCount, x.update ?? false, x.replaces ?? []]), [
    [`u1:${T0}`, 1, false, []],
    [`u1:${T0 + 40 * MIN}`, 1, false, []],
    [`u1:${T0}`, 3, true, [`u1:${T0 + 40 * MIN}`]],
  ]);
  const merged = s[2]!;
  assert.equal(merged.start, T0);
  assert.equal(merged.end, T0 + 40 * MIN);
  assert.equal(merged.purchased, true);
  assert.deepEqual(merged.counts, { view: 1, cart: 1, purchase: 1 });
  const late = events(output).find((e) => e.type === 'cart')!;
  assert.equal(late.session!.id, `u1:${T0}`);
  assert.equal(late.session!.position, 2, 'late events take the next position in arrival order');
});

test('counts by type keep first-seen order, with other types than the four known ones, through merges and snapshot + restore', async () => {
  const input: Element[] = [
    ev('u1', 0, 'cart'), ev('u1', 1), ev('u1', 2, 'wishlist'), ev('u1', 3), ev('u1', 4, '__proto__'),
    ev('u2', 0, 'purchase'), ev('u2', 1), ev('u2', 40, 'share'), ev('u2', 41), wm(75), ev('u2', 20, 'cart'), wm(Infinity),
  ];
  const config = { gap: '30m', allowed_lateness: '1h' };
  const whole = await runOperator(sessionizer, config as never, input, ctx());
  const last = (user: string): SessionizerSummary => summaries(whole.output).filter((x) => x.userId === user).at(-1)!;
  assert.deepEqual(Object.entries(last('u1').counts), [['cart', 1], ['view', 2], ['wishlist', 1], ['__proto__', 1]]);
  assert.deepEqual(Object.entries(last('u2').counts), [['purchase', 1], ['view', 2], ['share', 1], ['cart', 1]]);
  for (const cut of [3, 8, 10]) {
    const first = await Chain.build([stage(sessionizer, config)], ctx());
    first.push(input.slice(0, cut));
    const second = await Chain.build([stage(sessionizer, config)], ctx(), await first.snapshot());
    const after = second.push(input.slice(cut)).end();
    assert.equal(JSON.stringify([...first.output, ...after]), JSON.stringify(whole.output), `cut at ${cut}`);
  }
});

test('a late event inside a session\'s span, or bridging two, is measured from the event before it in event time (time since the previous event), as an in-order stream gives; its position is the count of events arrived before it', async () => {
  const config = { gap: '30m', allowed_lateness: '1h' };
  /** Each event as [minute, position, since start, since previous] (minutes). */
  const tags = (out: Element[]) => events(out).map((e) => [(e.time - T0) / MIN, e.session!.position, e.session!.sinceStart / MIN, e.session!.sincePrevious / MIN]);
  // Inside the span: 15 follows 10; 12 then follows 10 too, and 17 the late 15; 25 follows 20.
  const inside: Element[] = [ev('u', 0), ev('u', 10), ev('u', 20), ev('u', 30), wm(40), ev('u', 15), ev('u', 12), ev('u', 17), ev('u', 25), wm(Infinity)];
  const within = await runOperator(sessionizer, config as never, inside, ctx());
  assert.deepEqual(tags(within.output).slice(4), [[15, 4, 15, 5], [12, 5, 12, 2], [17, 6, 17, 2], [25, 7, 25, 5]]);
  // Before the start: the session's first now (0 since the previous); the next one inside measures from the old first.
  const first = await runOperator(sessionizer, config as never, [ev('u', 10), ev('u', 20), wm(25), ev('u', 5), ev('u', 15), wm(Infinity)], ctx());
  assert.deepEqual(tags(first.output).slice(2), [[5, 2, 0, 0], [15, 3, 10, 5]]);
  // Bridging 0-10 and 40-45 (merged): 25 follows 10; then 30 follows 25, and 42 the absorbed 40, from the merged start.
  const bridging: Element[] = [ev('u', 0), ev('u', 10), ev('u', 40), ev('u', 45), wm(46), ev('u', 25), ev('u', 30), ev('u', 42), wm(Infinity)];
  const merged = await runOperator(sessionizer, config as never, bridging, ctx());
  assert.deepEqual(events(merged.output)[4]!.session!.merged, [`u:${T0 + 40 * MIN}`]);
  assert.deepEqual(tags(merged.output).slice(4), [[25, 4, 25, 15], [30, 5, 30, 5], [42, 6, 42, 2]]);
  // The same as the in-order stream's figures for those events, each among the events arrived before it.
  const inOrder = await runOperator(sessionizer, config as never, [...[0, 10, 25, 30, 40, 42, 45].map((minute) => ev('u', minute)), wm(Infinity)], ctx());
  const sinceOf = (out: Element[], minute: number) => events(out).find((e) => e.time === T0 + minute * MIN)!.session!.sincePrevious;
  assert.equal(sinceOf(merged.output, 25), sinceOf(inOrder.output, 25));
  assert.equal(sinceOf(merged.output, 42), sinceOf(inOrder.output, 42));
  // The same through a snapshot and restore anywhere.
  for (const input of [inside, bridging]) {
    const whole = (await Chain.build([stage(sessionizer, config)], ctx())).push(input).end();
    for (let cut = 0; cut <= input.length; cut++) {
      const before = await Chain.build([stage(sessionizer, config)], ctx());
      before.push(input.slice(0, cut));
      const after = await Chain.build([stage(sessionizer, config)], ctx(), await before.snapshot());
      assert.deepEqual(tags([...before.output, ...after.push(input.slice(cut)).end()]), tags(whole), `cut at ${cut}`);
    }
  }
});

test('a late event older than the last four events of its session is measured from the latest kept time before it, the first event\'s at worst (more than the true time since the previous), as after a restore of a snapshot that kept no times', async () => {
  const config = { gap: '30m', allowed_lateness: '1h' };
  const since = (out: Element[]) => events(out).map((e) => e.session!.sincePrevious / MIN).at(-1);
  // Kept: 0 (the first), 15, 20, 25 and 30; 7's previous is 5, not kept.
  const input: Element[] = [...[0, 5, 10, 15, 20, 25, 30].map((minute) => ev('u', minute)), wm(35)];
  assert.equal(since((await runOperator(sessionizer, config as never, [...input, ev('u', 7), wm(Infinity)], ctx())).output), 7);
  assert.equal(since((await runOperator(sessionizer, config as never, [...input, ev('u', 17), wm(Infinity)], ctx())).output), 2);
  // A snapshot without the times (written before they were kept) restores: then only the first and last are known.
  const before = await Chain.build([stage(sessionizer, config)], ctx());
  before.push(input);
  const saved = await before.snapshot();
  const state = saved[0] as { prior?: Column };
  assert.ok(state.prior !== undefined);
  delete state.prior;
  const after = await Chain.build([stage(sessionizer, config)], ctx(), saved);
  assert.equal(since(after.push([ev('u', 17)]).output), 17);
  // The times after the restore are kept again: 35 follows 30, which was the last.
  assert.equal(since(after.push([ev('u', 40), wm(41), ev('u', 35), wm(Infinity)]).end()), 5);
});

test('a late event that only extends a closed session updates it; an open session is not re-emitted early', async () => {
  const input: Element[] = [ev('u1', 0), ev('u2', 0), ev('u2', 50), wm(35), ev('u1', 2, 'cart'), ev('u2', 48), wm(Infinity)];
  const { output } = await runOperator(sessionizer, { gap: '30m', allowed_lateness: '10m' } as never, input, ctx());
  assert.deepEqual(summaries(output).map((x) => [x.userId, x.eventCount, x.update ?? false]), [
    ['u1', 1, false], ['u2', 1, false], ['u1', 2, true], ['u2', 2, false],
  ]);
});

test('a late event that arrives after a later event of its user is marked session.outOfOrder (in any of its sessions; after max_open_sessions dropped sessions, any before their latest end); events in order, and late ones after all of their user\'s, are not', async () => {
  const input: Element[] = [
    ev('u', 0), ev('u', 10), ev('u', 50), ev('v', 0), wm(55),
    ev('u', 5), // late, before u's events at 10 and 50: marked
    ev('u', 52), // late, after every event of u: not marked
    ev('v', 20), // late, v's only event is at 0: not marked
    ev('u', 40), // late, a session of its own between two: marked
    ev('u', 60), wm(Infinity), // in order: not marked
  ];
  const { output } = await runOperator(sessionizer, { gap: '30m', allowed_lateness: '1h' } as never, input, ctx());
  const marked = (out: Element[]) => events(out).map((e) => `${e.userId}@${(e.time - T0) / MIN}${e.session!.outOfOrder ? ' outOfOrder' : ''}`);
  assert.deepEqual(marked(output), ['u@0', 'v@0', 'u@10', 'u@50', 'u@5 outOfOrder', 'u@52', 'v@20', 'u@40 outOfOrder', 'u@60']);
  assert.deepEqual(Object.keys(events(output)[0]!.session!), ['id', 'position', 'sinceStart', 'sincePrevious', 'start'], 'absent where not set');
  // Beyond max_open_sessions sessions are dropped, and whose they were with them: a late event before the latest
  // end among them is marked (a's at 1 came after a's at 3, whose session b's and c's pushed out), one after it is not.
  const bounded: Element[] = [ev('a', 0), ev('a', 3), ev('b', 5), ev('c', 6), wm(40), ev('a', 1), ev('c', 7), wm(Infinity)];
  const dropped = await runOperator(sessionizer, { gap: '30m', allowed_lateness: '1h', max_open_sessions: 1 } as never, bounded, ctx());
  assert.deepEqual(marked(dropped.output), ['a@0', 'a@3', 'b@5', 'c@6', 'a@1 outOfOrder', 'c@7']);
});

test('a session reopened or merged by a late event closes again when the watermark passes its new end + gap, not its old end + gap + lateness', async () => {
  const config = { gap: '30m', allowed_lateness: '1h' };
  // u1 closed at 30; the late u1@20 reopens it until 50. u2's next session ends after that.
  const reopened = await runOperator(sessionizer, config as never, [ev('u1', 0), ev('u2', 0), wm(35), ev('u1', 20), ev('u2', 60), wm(55), wm(95), wm(Infinity)], ctx());
  assert.deepEqual(trace(reopened.output).slice(5), [
    'u1@20>u1:0', 'S u1:0 [0,20] gap update', 'W55', 'u2@60>u2:60', 'S u2:60 [60,60] gap', 'W95', 'WInfinity',
  ]);
  // The late u1@20 bridges closed u1:0 and open u1:45: the merged session is due at 45 + 30.
  const merged = await runOperator(sessionizer, config as never, [ev('u1', 0), wm(35), ev('u1', 45), wm(50), ev('u1', 20), wm(80), wm(Infinity)], ctx());
  assert.deepEqual(trace(merged.output).slice(3), ['u1@45>u1:45', 'W50', 'u1@20>u1:0', 'S u1:0 [0,45] gap update', 'W80', 'WInfinity']);
  // The input ending before the old timer does not make it an end_of_input close.
  const ended = await runOperator(sessionizer, config as never, [ev('u1', 0), wm(35), ev('u1', 20), wm(60), wm(Infinity)], ctx());
  assert.deepEqual(summaries(ended.output).map((x) => x.closedBy), ['gap', 'gap']);
  // A snapshot of an earlier version holds the reopened session's timer at its old end + gap + lateness (90): restored, it is due at 50 all the same.
  const first = await Chain.build([stage(sessionizer, config)], ctx());
  first.push([ev('u1', 0), wm(35), ev('u1', 20)]);
  const [saved] = (await first.snapshot()) as Record<string, unknown>[];
  saved!.heapKeys = { n: 1, f64: Buffer.from(Float64Array.of(T0 + 90 * MIN).buffer).toString('base64') } satisfies Column;
  const restored = await Chain.build([stage(sessionizer, config)], ctx(), [saved]);
  assert.deepEqual(trace(restored.push([wm(55)]).output), ['S u1:0 [0,20] gap update', 'W55']);
});

test('max_length holds for late events too: one that would stretch a session to it starts its own, or joins the session after it; between two, it joins the one before, as in order', async () => {
  const config = { gap: '30m', max_length: '1h', allowed_lateness: '1h' };
  const spans = (out: Element[]): number[] => summaries(out).map((x) => (x.end - x.start) / MIN);
  // 65 is 65 minutes after u1:0's start: in order it starts a session, so it does late.
  const after = await runOperator(sessionizer, config as never, [ev('u1', 0), ev('u1', 20), ev('u1', 40), wm(75), ev('u1', 65), wm(Infinity)], ctx());
  assert.deepEqual(trace(after.output).slice(4), ['W75', 'u1@65>u1:65', 'S u1:65 [65,65] end_of_input', 'WInfinity']);
  // 0 is 69 minutes before the end of u1:10, still open.
  const before = await runOperator(sessionizer, config as never, [ev('u1', 10), ev('u1', 35), ev('u1', 60), ev('u1', 69), wm(75), ev('u1', 0), wm(Infinity)], ctx());
  assert.deepEqual(trace(before.output).slice(4), ['W75', 'u1@0>u1:0', 'S u1:0 [0,0] gap', 'S u1:10 [10,69] end_of_input', 'WInfinity']);
  // 55 lies between u1:0 [0,40] (cut by max_length) and u1:60 [60,70], which cannot merge: in order it joins u1:0.
  const between = await runOperator(sessionizer, config as never, [ev('u1', 0), ev('u1', 20), ev('u1', 40), ev('u1', 60), ev('u1', 70), wm(75), ev('u1', 55), wm(Infinity)], ctx());
  assert.deepEqual(trace(between.output).slice(7), ['u1@55>u1:0', 'S u1:0 [0,55] max_length update', 'S u1:60 [60,70] end_of_input', 'WInfinity']);
  // Without lateness, into a session still open: 13 would stretch u1:0 to 13 minutes.
  const open = await runOperator(sessionizer, { gap: '10m', max_length: '12m' } as never, [ev('u1', 0), ev('u1', 5), wm(14), ev('u1', 13), wm(Infinity)], ctx());
  assert.deepEqual(trace(open.output).slice(3), ['u1@13>u1:13', 'S u1:0 [0,5] end_of_input', 'S u1:13 [13,13] end_of_input', 'WInfinity']);
  for (const out of [after.output, before.output, between.output]) assert.ok(spans(out).every((span) => span < 60), String(spans(out)));
  assert.ok(spans(open.output).every((span) => span < 12));
});

test('events later than the allowed lateness go to the late side output, counted, never dropped silently', async () => {
  const context = testContext({ clock });
  const input: Element[] = [ev('u1', 0), ev('u1', 100), wm(120), ev('u1', 10), ev('u2', 95), wm(Infinity)];
  const { output } = await runOperator(sessionizer, { gap: '30m', allowed_lateness: '5m' } as never, input, context);
  assert.deepEqual(context.sideOutputs.map((o) => [o.name, (o.record.time as number - T0) / MIN]), [['late', 10]]);
  // u2 at 95 is behind the watermark but its session (95 + 30 + 5 > 120) is still within lateness.
  assert.deepEqual(events(output).map((e) => [e.userId, (e.time - T0) / MIN]), [['u1', 0], ['u1', 100], ['u2', 95]]);
  assert.equal(context.deadLetters.length, 0);
});

test('max_length splits a long session; the cut session is summarised at once', async () => {
  const input: Element[] = [];
  for (let m = 0; m <= 150; m += 10) input.push(ev('u1', m));
  input.push(wm(Infinity));
  const { output } = await runOperator(sessionizer, { gap: '30m', max_length: '1h' } as never, input, ctx());
  assert.deepEqual(summaries(output).map((s) => [(s.start - T0) / MIN, (s.end - T0) / MIN, s.eventCount, s.closedBy]), [
    [0, 50, 6, 'max_length'], [60, 110, 6, 'max_length'], [120, 150, 4, 'end_of_input'],
  ]);
  assert.deepEqual(events(output).map((e) => e.session!.position), [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3]);
});

test('session_id_from: data uses the data\'s ids (REES46 user_session); interleaved sessions of one user stay apart', async () => {
  const context = testContext({ clock });
  const input: Element[] = [
    ev('u1', 0, 'view', { sessionId: 'a' }), ev('u1', 1, 'view', { sessionId: 'b' }), ev('u1', 2, 'cart', { sessionId: 'a' }),
    ev('u1', 3), // no session id: dead-lettered
    wm(Infinity),
  ];
  const { output } = await runOperator(sessionizer, { session_id_from: 'data' } as never, input, context);
  assert.deepEqual(events(output).map((e) => [e.session!.id, e.session!.position]), [['a', 0], ['b', 0], ['a', 1]]);
  assert.deepEqual(summaries(output).map((s) => [s.sessionId, s.eventCount]).sort(), [['a', 2], ['b', 1]]);
  assert.equal(context.deadLetters.length, 1);
  // Said by the mapping's name the user wrote (session_id), not the event's field (sessionId).
  assert.equal(context.deadLetters[0]!.reason, "under-test: event has no session id: its source's mapping read no session_id (session_id_from: data needs one)");
});

test('session_id_from: data: an id that comes back after a gap opens a new session under it; while its closed session is still kept (allowed_lateness), that session takes it again, reopened, so one session holds each id (as intent and churn key their state)', async () => {
  const a = (minute: number): ClickEvent => ev('u1', minute, 'view', { sessionId: 'a' });
  const spans = (out: Element[]): [number, number, boolean][] => summaries(out).map((x) => [(x.start - T0) / MIN, (x.end - T0) / MIN, x.update ?? false]);
  const input = [a(0), wm(35), a(40), a(45), wm(50), a(50), wm(Infinity)];
  // No lateness: the closed session is gone, the id is back in a new one.
  const back = await runOperator(sessionizer, { session_id_from: 'data', gap: '10m' } as never, input, ctx());
  assert.deepEqual(spans(back.output), [[0, 0, false], [40, 50, false]]);
  assert.deepEqual(events(back.output).map((e) => e.session!.position), [0, 0, 1, 2]);
  // An hour of lateness: the closed session [0,0] is kept, and takes the id's events again; its summary comes again when it closes.
  // (Before: a second session 'a' beside it, and intent labelled one's predictions with the other's summary.)
  const kept = await runOperator(sessionizer, { session_id_from: 'data', gap: '10m', allowed_lateness: '1h' } as never, input, ctx());
  assert.deepEqual(spans(kept.output), [[0, 0, false], [0, 50, true]]);
  assert.deepEqual(events(kept.output).map((e) => e.session!.position), [0, 1, 2, 3]);
  // A late event of the id within the lateness joins it too.
  const late = await runOperator(sessionizer, { session_id_from: 'data', gap: '10m', allowed_lateness: '1h' } as never, [a(0), wm(35), a(30), wm(Infinity)], ctx());
  assert.deepEqual(spans(late.output), [[0, 0, false], [0, 30, true]]);
});

test('session ids are deterministic: the same input gives the same ids and outputs', async () => {
  const make = (): Element[] => [ev('u1', 0), ev('u2', 3), ev('u1', 45), ev('u2', 4), wm(50), ev('u1', 100), wm(Infinity)];
  const a = await runOperator(sessionizer, {} as never, make(), ctx());
  const b = await runOperator(sessionizer, {} as never, make(), ctx());
  assert.equal(JSON.stringify(a.output), JSON.stringify(b.output));
  assert.deepEqual([...new Set(events(a.output).map((e) => e.session!.id))], [`u1:${T0}`, `u2:${T0 + 3 * MIN}`, `u1:${T0 + 45 * MIN}`, `u1:${T0 + 100 * MIN}`]);
});

test('session ids stay unique after max_open_sessions drops sessions: a new one that could repeat a dropped one\'s id is numbered, the same way through a snapshot and restore', async () => {
  const config = { gap: '10m', allowed_lateness: '30m', max_open_sessions: 1 };
  // u1:0 is forgotten for u2, then a late u1@0 opens a session of its own; at 20, u3:20 is evicted
  // for u4, and u3's next event, at the same minute, opens a session again.
  const input = (): Element[] => [ev('u1', 0), wm(12), ev('u2', 12), wm(13), ev('u1', 0), ev('u3', 20), ev('u4', 20), ev('u3', 20), wm(21), wm(Infinity)];
  const whole = (await Chain.build([stage(sessionizer, config)], ctx())).push(input()).end();
  assert.deepEqual(trace(whole), [
    'u1@0>u1:0', 'S u1:0 [0,0] gap', 'W12', 'u2@12>u2:12', 'W13', 'u1@0>u1:0#1', 'S u1:0#1 [0,0] gap',
    'u3@20>u3:20', 'S u2:12 [12,12] evicted', 'u4@20>u4:20', 'S u3:20 [20,20] evicted', 'u3@20>u3:20#2', 'S u4:20 [20,20] evicted', 'W21',
    'S u3:20#2 [20,20] end_of_input', 'WInfinity',
  ]);
  const first = summaries(whole).filter((x) => !x.update).map((x) => x.sessionId);
  assert.equal(new Set(first).size, first.length, first.join(' '));
  for (let cut = 1; cut < input().length; cut++) {
    const part = await Chain.build([stage(sessionizer, config)], ctx());
    part.push(input().slice(0, cut));
    const rest = (await Chain.build([stage(sessionizer, config)], ctx(), await part.snapshot())).push(input().slice(cut)).end();
    assert.equal(JSON.stringify([...part.output, ...rest]), JSON.stringify(whole), `cut at ${cut}`);
  }
  // A version-3 snapshot (before droppedThrough and numberedIds) still restores.
  const part = await Chain.build([stage(sessionizer, config)], ctx());
  part.push(input().slice(0, 2));
  const [saved] = (await part.snapshot()) as Record<string, unknown>[];
  const { droppedThrough, numberedIds, futureUntil, ...v3 }: Record<string, unknown> = { ...saved!, version: 3, sawFuture: false };
  assert.deepEqual([droppedThrough, numberedIds, futureUntil], [null, 0, null]);
  const rest = (await Chain.build([stage(sessionizer, config)], ctx(), [v3])).push(input().slice(2)).end();
  assert.equal(JSON.stringify([...part.output, ...rest]), JSON.stringify(whole));
});

test('absurd timestamps go to the dead-letter sink with the reason', async () => {
  const context = testContext({ clock });
  const input: Element[] = [
    ev('u1', 0), wm(0),
    { kind: 'event', userId: 'u1', time: Date.UTC(2099, 0, 1), type: 'view' } as ClickEvent,
    { kind: 'event', userId: 'u1', time: 0, type: 'view' } as ClickEvent,
    ev('u1', 1), wm(10_000_000), // far ahead only in this operator's view: the clamp keeps u1's session open
    ev('u1', 2),
    wm(Infinity),
  ];
  const { output } = await runOperator(sessionizer, { max_behind_watermark: '1d' } as never, input, context);
  assert.deepEqual(context.deadLetters.map((d) => d.reason.replace(/ \(.*\)$/, '').replace(/^under-test: /, '')), [
    'event time 2099-01-01T00:00:00.000Z is more than max_ahead_of_clock ahead of the clock',
    'event time 1970-01-01T00:00:00.000Z is before not_before 2000-01-01T00:00:00.000Z',
  ]);
  assert.equal(summaries(output).length, 1);
  assert.equal(summaries(output)[0]!.eventCount, 3, 'a huge watermark is clamped to the accepted events, so the session survives');
});

test('after a lull longer than max_ahead_of_clock, a live batch (its events pushed before its watermark) is checked against the clock as it is now, not as it was at the last watermark', async () => {
  let now = T0;
  const context = testContext({ clock: { now: () => now } });
  const chain = await Chain.build([stage(sessionizer, { gap: '30m', max_ahead_of_clock: '2h' })], context);
  // As the runtime does: a batch's events, then its watermark; the wall clock just past the events.
  const batch = (...minutes: number[]): void => {
    now = T0 + Math.max(...minutes) * MIN + 1000;
    chain.push([...minutes.map((m) => ev('u', m)), watermark(T0 + Math.max(...minutes) * MIN - 5000)]);
  };
  batch(0, 1, 2);
  batch(185, 186, 187); // the first batch after a night of 3 h: ordinary live events
  batch(190);
  chain.push([wm(Infinity)]);
  assert.deepEqual(context.deadLetters.map((d) => d.reason), []);
  assert.deepEqual(events(chain.output).map((e) => (e.time - T0) / MIN), [0, 1, 2, 185, 186, 187, 190]);
  // More than 2 h ahead of a fresh reading (190 min): dead-lettered.
  const ahead = await Chain.build([stage(sessionizer, { gap: '30m', max_ahead_of_clock: '2h' })], context);
  ahead.push([ev('u', 320)]);
  assert.deepEqual(context.deadLetters.map((d) => d.reason), ['under-test: event time 2024-01-01T05:20:00.000Z is more than max_ahead_of_clock ahead of the clock (2024-01-01T03:10:01.000Z)']);
});

test('after a dead-lettered far-future event raised the sources\' watermark, accepted events move the held-back time: sessions close and events come out without waiting hours for a watermark; a restore anywhere goes on as one run', async () => {
  // The wall clock at 240 min: the event at 600 min is more than max_ahead_of_clock (2h) ahead, dead-lettered
  // here, but within the source's (1d): its watermark jumps to 600 min and stays there until the end.
  const context = () => testContext({ clock: { now: () => T0 + 240 * MIN } });
  const config = { gap: '5m', max_ahead_of_clock: '2h' };
  const input = (): Element[] => {
    const out: Element[] = [];
    let maxTime = -Infinity;
    let emitted = -Infinity;
    const feed = (e: ClickEvent): void => {
      out.push(e);
      if (e.time > maxTime) maxTime = e.time;
      if (maxTime - 5000 > emitted) out.push(watermark((emitted = maxTime - 5000)));
    };
    for (let m = 0; m <= 240; m++) {
      feed(ev(`u${m % 7}`, m)); // each user's events 7 min apart: a session each, gap 5m
      if (m === 20) feed(ev('skewed-client', 600));
    }
    return out;
  };
  const c = context();
  const whole = await Chain.build([stage(sessionizer, config)], c);
  whole.push(input());
  assert.equal(c.deadLetters.length, 1);
  assert.equal(events(whole.output).length, 241, 'every event out, none held');
  assert.equal(summaries(whole.output).length, 236, 'every session 5 min past its event closed (235 and before)');
  const [saved] = (await whole.snapshot()) as { pending: { n: number } }[];
  assert.equal(saved!.pending.n, 0);
  const out = JSON.stringify(whole.end());
  for (let cut = 1; cut < input().length; cut++) {
    const part = await Chain.build([stage(sessionizer, config)], context());
    part.push(input().slice(0, cut));
    const rest = (await Chain.build([stage(sessionizer, config)], context(), await part.snapshot())).push(input().slice(cut)).end();
    assert.equal(JSON.stringify([...part.output, ...rest]), out, `cut at ${cut}`);
  }
});

test('restored while held after a far-future event, the watermarks it passes on never go back, though the sources\' watermark starts over behind its time', async () => {
  const config = { gap: '5m', max_ahead_of_clock: '2h' };
  const context = () => testContext({ clock: { now: () => T0 + 60 * MIN } });
  const marks = (out: Element[]): number[] => out.flatMap((e) => (e.kind === 'watermark' ? [((e as { time: number }).time - T0) / MIN] : []));
  const held = await Chain.build([stage(sessionizer, config)], context());
  held.push([ev('u0', 0), wm(0), ev('skewed-client', 600), wm(600)]);
  const saved = await held.snapshot();
  // Run on: the sources' watermark stays at the far-future event's; the events move this operator's time.
  assert.deepEqual(marks(held.push([ev('u1', 10), wm(601), ev('u2', 12), wm(602)]).output), [0, 10, 12]);
  // Restored: the sources' watermark starts over from the events read since, behind the time those
  // events move this operator to. Before: passed on as received, 10, 9, 12, 11.
  const restored = await Chain.build([stage(sessionizer, config)], context(), saved);
  assert.deepEqual(marks(restored.push([ev('u1', 10), wm(9), ev('u2', 12), wm(11)]).output), [10, 12]);
});

test('the hold after a far-future event ends once accepted events reach its time: the watermark moves this operator\'s time again, and is passed on as received', async () => {
  let now = T0;
  const config = { gap: '5m', max_ahead_of_clock: '2h' };
  const chain = await Chain.build([stage(sessionizer, config)], testContext({ clock: { now: () => now } }));
  // The event at 180 min is more than 2 h ahead of the clock (0): dead-lettered, and the sources' watermark jumps to it.
  chain.push([ev('u0', 0), wm(0), ev('skewed-client', 180), wm(180)]);
  assert.deepEqual(trace(chain.output), ['u0@0>u0:0', 'W0'], 'held at the accepted events: nothing passed on');
  const [saved] = (await chain.snapshot()) as Record<string, unknown>[];
  // Hours later the clock and the events reach it; then a watermark ahead of the events (others, dropped before this stage).
  now = T0 + 180 * MIN;
  chain.push([ev('u1', 179), ev('u2', 181), wm(200)]);
  // u1 (179) moves the held time, passed on; u2 (181) reaches the far-future event: the hold ends, and the
  // watermark of 200 moves it. Before, held for good: u2 waited for a later event, and 200 reached no stage after this one.
  assert.deepEqual(trace(chain.output).slice(2), ['S u0:0 [0,0] gap', 'u1@179>u1:179', 'W179', 'u2@181>u2:181', 'S u1:179 [179,179] gap', 'S u2:181 [181,181] gap', 'W200']);
  // A snapshot of version 5 (no futureUntil, only sawFuture) stays held past it, as that version did.
  const { futureUntil, ...v5 }: Record<string, unknown> = { ...saved!, version: 5, sawFuture: true };
  assert.equal(futureUntil, T0 + 180 * MIN);
  const restored = await Chain.build([stage(sessionizer, config)], testContext({ clock: { now: () => now } }), [v5]);
  assert.ok(!trace(restored.push([ev('u1', 179), ev('u2', 181), wm(200)]).output).includes('W200'));
});

test('a far-future event within the source\'s max_ahead_of_clock but beyond the sessionizer\'s does not move the stages after it: churn labels no session early', async () => {
  const { defineSource } = await import('tributary');
  // The wall clock at 3 h: the event 9 days on is within the source's bound (30d), beyond the sessionizer's (1d).
  const batches: ClickEvent[][] = [[ev('a', 0), ev('b', 40)], [ev('skewed-client', 9 * 24 * 60)], [ev('a', 120)]];
  const source = defineSource<Record<string, never>>({
    name: 'batches', summary: 'test', config: { type: 'object', properties: {} },
    create: () => ({
      async *read() {
        yield* batches;
      },
    }),
  });
  const { outputs, deadLetters } = await runYaml(
    [
      'sources: [{type: batches, watermark: {max_out_of_orderness: 0ms, max_ahead_of_clock: 30d}}]',
      'stages:',
      '  - {type: sessionizer, gap: 30m, max_ahead_of_clock: 1d}',
      '  - {type: churn-model, horizon: 7d, backend: cpu, batch: {max_size: 1, max_delay: 0}, report: true}',
      'sinks: [{type: memory, kinds: [prediction, model_metrics]}]',
      '',
    ].join('\n'),
    { plugins: [source], clock: { now: () => T0 + 180 * MIN } },
  );
  assert.deepEqual(deadLetters.map((d) => (d.raw as ClickEvent).userId), ['skewed-client']);
  const predictions = outputs[0]!.filter((r) => r.kind === 'prediction');
  assert.deepEqual(predictions.map((p) => p.sessionId), [`a:${T0}`, `b:${T0 + 40 * MIN}`, `a:${T0 + 120 * MIN}`]);
  // a came back 2 h after its first session: not a churner. The sessions' 7 days never passed in event
  // time (2 h at most), so the end of input leaves all three unlabelled. Before, the far-future event's
  // watermark (9 days) reached churn and labelled a's first session 1 before a came back.
  const report = outputs[0]!.find((r) => r.kind === 'model_metrics') as unknown as { summary: { n: number; positives: number }; counts: { unlabelledAtEnd: number } };
  assert.deepEqual([report.summary.n, report.summary.positives, report.counts.unlabelledAtEnd], [0, 0, 3]);
});

test('max_open_sessions: the session closest to closing is closed early, counted and summarised as evicted', async () => {
  const input: Element[] = [ev('u1', 0), ev('u2', 1), ev('u3', 2), wm(3), ev('u1', 4), wm(Infinity)];
  const { output } = await runOperator(sessionizer, { max_open_sessions: 2 } as never, input, ctx());
  assert.deepEqual(summaries(output).map((s) => [s.userId, s.eventCount, s.closedBy]), [
    ['u1', 1, 'evicted'], ['u2', 1, 'evicted'], ['u3', 1, 'end_of_input'], ['u1', 1, 'end_of_input'],
  ]);
});

test('max_open_sessions is never exceeded: closed sessions waiting out their lateness are forgotten first, then the open one due to close first is closed early; each kind counted apart', async () => {
  const hub = new MetricsHub();
  const context = testContext({ clock, metrics: hub.scoped({ pipeline: 'test', stage: 'sessionizer' }) });
  const metric = (name: string): Promise<number> => metricOf(hub, name);
  const config = { gap: '30m', allowed_lateness: '1h', max_open_sessions: 2 };
  const chain = await Chain.build([stage(sessionizer, config)], context);
  // u1 closed at 30, kept until 90 for late events; u3 makes three: u1 goes, not the open u2.
  chain.push([ev('u1', 0), wm(35), ev('u2', 40), ev('u3', 41), wm(43)]);
  assert.deepEqual(trace(chain.output), ['u1@0>u1:0', 'S u1:0 [0,0] gap', 'W35', 'u2@40>u2:40', 'u3@41>u3:41', 'W43']);
  assert.deepEqual([await metric('sessions_forgotten_early_total'), await metric('sessions_evicted_total')], [1, 0]);
  // None closed: the open session due first (u2, at 70) is closed early.
  chain.output.length = 0;
  chain.push([ev('u4', 42), wm(44)]);
  assert.deepEqual(trace(chain.output), ['u4@42>u4:42', 'S u2:40 [40,40] evicted', 'W44']);
  assert.deepEqual([await metric('sessions_forgotten_early_total'), await metric('sessions_evicted_total'), await metric('open_sessions')], [1, 1, 2]);
  // Late events that each open a session (new users) do not push the count past the bound either;
  // a late event of a forgotten session (u1) opens one of its own: it comes out, tagged and summarised
  // (its id numbered, as it starts before the end of a session dropped: see the test on unique ids).
  chain.output.length = 0;
  chain.push([ev('u1', 5), ...Array.from({ length: 20 }, (_, k) => ev(`x${k}`, 43 - k / 10))]);
  assert.deepEqual(trace(chain.output).slice(0, 2), ['u1@5>u1:5#1', 'S u1:5#1 [5,5] gap']);
  const [saved] = (await chain.snapshot()) as { users: string[] }[];
  assert.equal(saved!.users.length, 2, 'sessions kept');
  assert.equal(events(chain.output).length, 21, 'every late event comes out');
});

test('a session a late event opens is counted at once, not at the next watermark (a snapshot taken in between left it out of the counters)', async () => {
  const hub = new MetricsHub();
  const context = testContext({ clock, metrics: hub.scoped({ pipeline: 'test', stage: 'sessionizer' }) });
  const metric = (name: string): Promise<number> => metricOf(hub, name);
  const chain = await Chain.build([stage(sessionizer, { gap: '30m', allowed_lateness: '1h' })], context);
  chain.push([ev('u1', 0), wm(35), ev('u2', 0)]); // u2@0 opens a session, closed at once
  assert.deepEqual(summaries(chain.output).map((x) => x.userId), ['u1', 'u2']);
  assert.deepEqual([await metric('sessions_opened_total'), await metric('sessions_closed_total'), await metric('open_sessions')], [2, 2, 2]);
});

test('records that are not events pass through unchanged', async () => {
  const other = { kind: 'prediction', id: 'p1', score: 0.5 };
  const { output } = await runOperator(sessionizer, {} as never, [other, wm(Infinity)], ctx());
  assert.equal(output[0], other);
});

/** A deterministic stream with disorder within the bound, late events, and watermarks every 50 events. */
function stream(seed: number): Element[] {
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const out: Element[] = [];
  let t = T0;
  let maxT = t;
  for (let i = 0; i < 3000; i++) {
    t += Math.floor(rand() * 40_000);
    const jitter = rand() < 0.1 ? -Math.floor(rand() * 4000) : 0; // within the 5 s bound
    const late = rand() < 0.01 ? -Math.floor(rand() * 40 * MIN) : 0; // sometimes well behind
    const time = t + jitter + late;
    const types = ['view', 'view', 'view', 'cart', 'remove_from_cart', 'purchase'];
    out.push({ kind: 'event', userId: `u${Math.floor(rand() * 40)}`, time, type: types[Math.floor(rand() * types.length)]!, itemId: `i${Math.floor(rand() * 30)}`, category: `c${Math.floor(rand() * 5)}`, price: Math.round(rand() * 10000) / 100 });
    maxT = Math.max(maxT, time);
    if (i % 50 === 49) out.push(watermark(maxT - 5000));
  }
  out.push(watermark(Infinity));
  return out;
}

test('snapshot mid-stream + restore in a fresh instance + the rest of the stream == one uninterrupted run', async () => {
  // 35 of 40 users: closed sessions are forgotten first, so a tighter bound leaves none for a late update.
  const config = { gap: '20m', max_length: '30m', allowed_lateness: '15m', max_open_sessions: 35 };
  const stages = [stage(sessionizer, config)];
  const whole = (await Chain.build(stages, testContext({ clock }))).push(stream(7)).end();
  assert.ok(summaries(whole).some((s) => s.update), 'the stream exercises late updates');
  assert.ok(summaries(whole).some((s) => s.closedBy === 'evicted'), 'and eviction');
  assert.ok(summaries(whole).some((s) => s.closedBy === 'max_length'), 'and max_length');
  for (const cut of [1, 500, 1234, 2999]) {
    const input = stream(7);
    const first = await Chain.build(stages, testContext({ clock }));
    first.push(input.slice(0, cut));
    const saved = await first.snapshot();
    const before = first.output.slice();
    const second = await Chain.build(stages, testContext({ clock }), saved);
    const after = second.push(input.slice(cut)).end();
    assert.equal(JSON.stringify([...before, ...after]), JSON.stringify(whole), `cut at ${cut}`);
  }
});

test('idle source: when the other source has drained, the idle one does not hold back the watermark the drained one moved', async () => {
  const { defineSource, defineSink } = await import('tributary');
  let now = Date.UTC(2024, 5, 1);
  const testClock = { now: () => now };
  let quietSpokeAgain = false;
  const seen: string[] = [];
  let quietHeard!: () => void;
  const quietFirst = new Promise<void>((resolve) => (quietHeard = resolve));
  let sawU1!: () => void;
  const u1Summarised = new Promise<void>((resolve) => (sawU1 = resolve));
  const drained = defineSource<Record<string, never>>({
    name: 'drained', summary: 'test', config: { type: 'object', properties: {} },
    create: () => ({
      async *read() {
        await quietFirst;
        yield [ev('u1', 0), ev('u1', 1)];
        yield [ev('u2', 120)];
        now += 5 * MIN; // then the input ends, and the quiet source says nothing for 5 minutes of wall clock
      },
    }),
  });
  const quiet = defineSource<Record<string, never>>({
    name: 'quiet', summary: 'test', config: { type: 'object', properties: {} },
    create: () => ({
      async *read() {
        yield [ev('q', 1)];
        quietHeard(); // runs once the runtime has taken that batch
        // Silent until u1's session is summarised; the bound ends the wait where that never happens.
        let bound: NodeJS.Timeout | undefined;
        await Promise.race([u1Summarised, new Promise((resolve) => (bound = setTimeout(resolve, 3000)))]);
        clearTimeout(bound);
        quietSpokeAgain = true;
        yield [ev('u3', 122)];
      },
    }),
  });
  const recorder = defineSink<Record<string, never>>({
    name: 'recorder', summary: 'test', config: { type: 'object', properties: {} },
    create: () => ({
      write: (r) => {
        if (r.kind !== 'session') return;
        seen.push(`${quietSpokeAgain ? 'after' : 'before'}:${String(r.userId)}`);
        if (r.userId === 'u1') sawU1();
      },
      close: async () => undefined,
    }),
  });
  // No alignment (max_drift): the sources wait on each other by design here, and the test clock moves only when they yield.
  const wm = 'watermark: {idle_timeout: 1m, max_out_of_orderness: 0ms, max_drift: unlimited}';
  await runYaml(
    `sources:\n  - {type: drained, ${wm}}\n  - {type: quiet, ${wm}}\nstages: [{type: sessionizer, gap: 30m}]\nsinks: [{type: recorder}]\n`,
    { plugins: [drained, quiet, recorder], clock: testClock },
  );
  // The drained source's events reached 120 min, and the quiet one is idle: q (1 min) and u1 (last
  // event at 1 min) close before the quiet source speaks again, not at its next event.
  assert.deepEqual(seen.slice(0, 2).sort(), ['before:q', 'before:u1']);
  assert.deepEqual(seen.slice(2), ['after:u2', 'after:u3']);
});

test('idle source: with an idle timeout the watermark advances while another source is silent, closing sessions before the end of input', async () => {
  const { defineSource, defineSink } = await import('tributary');
  const runWith = async (idleTimeout: string) => {
    let now = Date.UTC(2024, 5, 1);
    const testClock = { now: () => now };
    let phase = 0; // which batch the busy source has handed over: tells when a record reached the sink
    const seen: string[] = [];
    let releaseQuiet!: () => void;
    const quietMayEnd = new Promise<void>((resolve) => (releaseQuiet = resolve));
    const busy = defineSource<Record<string, never>>({
      name: 'busy', summary: 'test', config: { type: 'object', properties: {} },
      create: () => ({
        async *read() {
          phase = 1;
          yield [ev('u1', 0), ev('u1', 1)];
          now += 5 * MIN; // wall clock moves on: the quiet source has said nothing for 5 minutes
          phase = 2;
          yield [ev('u2', 120)];
          phase = 3;
          yield [ev('u2', 121)];
          phase = 4;
          releaseQuiet();
        },
      }),
    });
    const quiet = defineSource<Record<string, never>>({
      name: 'quiet', summary: 'test', config: { type: 'object', properties: {} },
      create: () => ({
        async *read() {
          await quietMayEnd; // silent while the busy source runs
          yield [ev('u3', 122)];
        },
      }),
    });
    const recorder = defineSink<Record<string, never>>({
      name: 'recorder', summary: 'test', config: { type: 'object', properties: {} },
      create: () => ({ write: (r) => void (r.kind === 'session' && seen.push(`${phase}:${String(r.userId)}`)), close: async () => undefined }),
    });
    await runYaml(
      // No alignment (max_drift): the busy source runs ahead of the silent one by design here.
      `sources:\n  - {type: busy, watermark: {idle_timeout: ${idleTimeout}, max_drift: unlimited}}\n  - {type: quiet, watermark: {idle_timeout: ${idleTimeout}, max_drift: unlimited}}\nstages: [{type: sessionizer, gap: 30m}]\nsinks: [{type: recorder}]\n`,
      { plugins: [busy, quiet, recorder], clock: testClock },
    );
    return seen;
  };
  // u1's session is summarised as soon as the busy source's second batch moves the watermark...
  assert.deepEqual(await runWith('1m'), ['2:u1', '4:u2', '4:u3']);
  // ...while without idleness the silent source holds it back until the end of input.
  assert.deepEqual(await runWith('1d'), ['4:u1', '4:u2', '4:u3']);
});

test('events waiting for the watermark are snapshotted as columns (a fraction of their JSON) and restored exactly, odd ones and origins included', async () => {
  const config = { gap: '20m' };
  const plain = Array.from({ length: 2000 }, (_, i): ClickEvent => ({ kind: 'event', userId: `u${i % 700}`, time: T0 + i * 37, type: i % 5 === 0 ? 'cart' : 'view', itemId: `i${i % 3000}`, category: `c${i % 40}`, price: Math.round(i * 7.3) / 100 }));
  const odd: ClickEvent[] = [
    { kind: 'event', userId: 'x1', time: T0 + 5, type: 'view' }, // no item, category or price
    { kind: 'event', userId: 'x2', time: T0 + 6, type: 'wish', price: 0 },
    { kind: 'event', userId: 'x3', time: T0 + 7, type: 'view', attrs: { channel: 'app' } },
    { kind: 'event', userId: 'x4', time: T0 + 8, type: 'view', sessionId: 's-4' },
    { userId: 'x5', kind: 'event', time: T0 + 9, type: 'view' }, // another key order
  ];
  odd[1]![ORIGIN] = { source: 'kafka', file: 'clicks', offset: 42 };
  const source = [...plain.slice(0, 1000), ...odd, ...plain.slice(1000)];
  // A copy for each run: the sessionizer sets the session context on the events it passes.
  const fresh = (): ClickEvent[] => source.map((e) => Object.assign({ ...e }, e[ORIGIN] ? { [ORIGIN]: e[ORIGIN] } : {}));
  const input = fresh();
  const whole = (await Chain.build([stage(sessionizer, config)], ctx())).push([...fresh(), wm(Infinity)]).end();
  const first = await Chain.build([stage(sessionizer, config)], ctx());
  first.push(fresh()); // no watermark yet: every event waits in the snapshot
  const [saved] = (await first.snapshot()) as { version: number; pending: unknown }[];
  const pendingBytes = JSON.stringify(saved!.pending).length;
  const asObjects = JSON.stringify(input).length;
  assert.ok(pendingBytes < asObjects / 2, `pending: ${pendingBytes} bytes, as objects ${asObjects}`);
  const second = await Chain.build([stage(sessionizer, config)], ctx(), [saved]);
  const after = second.push([wm(Infinity)]).end();
  assert.equal(JSON.stringify(after), JSON.stringify(whole));
  const restoredOrigin = events(after).find((e) => e.userId === 'x2');
  assert.deepEqual(restoredOrigin?.[ORIGIN], { source: 'kafka', file: 'clicks', offset: 42 });
  assert.deepEqual(Object.keys(events(after).find((e) => e.userId === 'x5')!).slice(0, 2), ['userId', 'kind']);

  // A version-2 snapshot (pending events as [event, origin] pairs) still restores.
  const { futureUntil: _, ...v6 } = saved as Record<string, unknown>;
  const v2 = { ...v6, version: 2, sawFuture: false, pending: input.map((e) => [{ ...e }, e[ORIGIN] ?? null]) };
  const third = await Chain.build([stage(sessionizer, config)], ctx(), [JSON.parse(JSON.stringify(v2))]);
  assert.equal(JSON.stringify(third.push([wm(Infinity)]).end()), JSON.stringify(whole));
});

test('a damaged sessionizer snapshot is refused by restore, naming the field that does not match (merged-away ids, count types, seqs, timers, times, pending events); every snapshot a run writes restores', async () => {
  const config = { gap: '30m', allowed_lateness: '1h' };
  const first = await Chain.build([stage(sessionizer, config)], ctx());
  // A merge (u1: replaces), counts of several layouts and an unknown type (wishlist), and events the watermark has not passed.
  first.push([ev('u1', 0), ev('u1', 40, 'purchase'), ev('u2', 5, 'wishlist'), ev('u2', 6), ev('u3', 10), ev('u3', 12, 'cart'), wm(75), ev('u1', 20, 'cart'), ev('u4', 80), ev('u2', 90, 'view', { attrs: { channel: 'app' } })]);
  const [saved] = (await first.snapshot()) as Record<string, any>[];
  assert.deepEqual([saved!.replacesRows, saved!.countTypes.length, saved!.pending.otherRows], [[0], 3, [1]], 'the state has what the damages below need');
  const f64 = (values: number[]): Column => ({ n: values.length, f64: Buffer.from(Float64Array.from(values).buffer).toString('base64') });
  const seqs = [...decodeColumn(saved!.seq, 'seq')];
  type Damage = [string, (state: Record<string, any>) => void, RegExp];
  const damages: Damage[] = [
    ['replacesRows not a list', (s) => void (s.replacesRows = { 0: 0 }), /^Error: sessionizer snapshot: replacesRows: not a list$/],
    ['one list of replaced ids fewer than its rows', (s) => void s.replaces.pop(), /^Error: sessionizer snapshot: replaces: 0 lists, expected 1$/],
    ['one list of replaced ids more than its rows', (s) => void s.replaces.push(['u9:1']), /^Error: sessionizer snapshot: replaces: 2 lists, expected 1$/],
    ['a replacing row past the last row', (s) => void (s.replacesRows[0] = 3), /^Error: sessionizer snapshot: replacesRows: 3 at 0, expected increasing rows below 3$/],
    ['a replacing row that is not a whole number', (s) => void (s.replacesRows[0] = 0.5), /^Error: sessionizer snapshot: replacesRows: 0.5 at 0, expected increasing rows below 3$/],
    ['one row listed twice', (s) => { s.replacesRows.push(0); s.replaces.push(['u9:1']); }, /^Error: sessionizer snapshot: replacesRows: 0 at 1, expected increasing rows below 3$/],
    ['a replaced id that is not a string', (s) => void (s.replaces[0][0] = 7), /^Error: sessionizer snapshot: replaces: list 0: not a string at row 0$/],
    ['countTypes not a list', (s) => void (s.countTypes = 'view'), /^Error: sessionizer snapshot: countTypes: not a list$/],
    ['a type name that is not a string', (s) => void (s.countTypes[1][0] = 7), /^Error: sessionizer snapshot: countTypes: list 1: not a string at row 0$/],
    ['a type name twice in one list', (s) => void (s.countTypes[1][0] = 'view'), /^Error: sessionizer snapshot: countTypes: list 1: 'view' twice$/],
    ['a count list of another width', (s) => void s.countTypes[2].push('purchase'), /^Error: sessionizer snapshot: countValues: lengths add up to 8, the list holds 7$/],
    ['a count layout past the lists', (s) => void (s.countLayout = { n: 3, c: 3 }), /^Error: sessionizer snapshot: countLayout: 3 at row 0, expected a list of countTypes \(0 to 2\)$/],
    ['an event count its counts by type do not add up to', (s) => void (s.count = { n: 3, c: 2 }), /^Error: sessionizer snapshot: count: 2 at row 0, its counts by type add up to 3$/],
    ['two sessions of one seq', (s) => void (s.seq = { n: 3, c: 1 }), /^Error: sessionizer snapshot: seq: 1 at row 1 again$/],
    ['a seq at or past nextSeq', (s) => void (s.nextSeq = 2), /^Error: sessionizer snapshot: seq: 2 at row 2, expected a whole number below nextSeq 2$/],
    ['nextSeq not a whole number', (s) => void (s.nextSeq = '4'), /^Error: sessionizer snapshot: nextSeq: 4 is not a whole number$/],
    ['a session start that is not a time', (s) => void (s.start = f64([NaN, 0, 0])), /^Error: sessionizer snapshot: start: NaN at row 0 is not a time$/],
    ['a session end before its start', (s) => void (s.end = { n: 3, c: 0 }), /^Error: sessionizer snapshot: end: 0 at row 0, expected a time at or after its start 1704067200000$/],
    ['flags that are no set of the four', (s) => void (s.flags = { n: 3, c: 16 }), /^Error: sessionizer snapshot: flags: 16 at row 0, expected a whole number 0 to 15$/],
    ['a session without a timer', (s) => { s.heapKeys = f64([T0]); s.heapSeqs = f64([seqs[0]!]); }, /^Error: sessionizer snapshot: heapKeys: 1 rows, expected 3$/],
    ['a timer of no session', (s) => void (s.heapSeqs = f64([seqs[0]!, seqs[1]!, 99])), /^Error: sessionizer snapshot: heapSeqs: 99 at 2 names no session$/],
    ['two timers of one session', (s) => void (s.heapSeqs = f64([seqs[0]!, seqs[1]!, seqs[1]!])), /^Error: sessionizer snapshot: heapSeqs: 1 at 2 names a session timed before$/],
    ['a timer at no time', (s) => void (s.heapKeys = f64([T0, NaN, T0])), /^Error: sessionizer snapshot: heapKeys: NaN at 1 is not a time$/],
    ['the sessions of one user apart', (s) => void (s.users = ['u1', 'u2', 'u1']), /^Error: sessionizer snapshot: users: 'u1' at row 2 apart from its other rows$/],
    ['prior event times of another number of rows', (s) => void (s.prior = f64([-1, -1, -1])), /^Error: sessionizer snapshot: prior: 3 rows, expected 9$/],
    ['a prior event time past its session\'s end', (s) => void (s.prior = f64([1e9, -1, -1, -1, -1, -1, -1, -1, -1])), /^Error: sessionizer snapshot: prior: 1000000000 at row 0, expected -1 or a whole number of ms after the session's start up to 2400000 \(its end, or the later one before it\)$/],
    ['a prior event time after one not kept', (s) => void (s.prior = f64([-1, 5, -1, -1, -1, -1, -1, -1, -1])), /^Error: sessionizer snapshot: prior: 5 at row 0, expected -1 or a whole number of ms after the session's start up to none after a -1$/],
    ['a watermark that is not a number', (s) => void (s.watermark = 'soon'), /^Error: sessionizer snapshot: watermark: not a number or null$/],
    ['maxSeen that is not a number', (s) => void (s.maxSeen = {}), /^Error: sessionizer snapshot: maxSeen: not a number or null$/],
    ['a far-future time that is not a time', (s) => void (s.futureUntil = true), /^Error: sessionizer snapshot: futureUntil: not a number or null$/],
    ['sawFuture (before version 6) that is not true or false', (s) => void Object.assign(s, { version: 5, sawFuture: 'no' }), /^Error: sessionizer snapshot: sawFuture: not true or false$/],
    ['a last watermark that is not a time', (s) => void (s.lastMark = 'soon'), /^Error: sessionizer snapshot: lastMark: not a number or null$/],
    ['a session id for a row past the last', (s) => { s.ids.otherRows.push(3); s.ids.otherIds.push('x'); }, /^Error: sessionizer snapshot: ids: row 3 out of range$/],
    ['a session id of no row', (s) => void s.ids.otherIds.push('x'), /^Error: sessionizer snapshot: ids: 1 other ids for 0 other rows$/],
    ['a pending event type that is not a string', (s) => void (s.pending.types[0] = 7), /^Error: sessionizer snapshot: pending: types: not a string at row 0$/],
    ['a pending event kept whole that is missing', (s) => void s.pending.others.pop(), /^Error: sessionizer snapshot: pending: others: 0 events, expected 1$/],
    ['a pending event at no time', (s) => void (s.pending.time = f64([NaN, 0])), /^Error: sessionizer snapshot: pending: time: NaN at row 0 is not a time$/],
    ['an origin of no pending event', (s) => void s.pending.origins.push({ source: 'kafka', file: 'clicks', offset: 1 }), /^Error: sessionizer snapshot: pending: origins: 1 origins, expected 0$/],
    ['a pending event kept whole that is not an object', (s) => void (s.pending.others[0] = 'event'), /^Error: sessionizer snapshot: pending: others: not an event at 0$/],
  ];
  for (const [what, damage, message] of damages) {
    const state = structuredClone(saved) as Record<string, any>;
    damage(state);
    const operator = await sessionizer.create(withDefaults(sessionizer, config as never), testContext({ clock, label: 'stage-s' }));
    await assert.rejects(Promise.resolve(operator.restore!(state)), message, what);
  }
  // The checks refuse no state the sessionizer writes: a snapshot after every 100 elements of a
  // stream with late updates, merges, evictions and max_length cuts restores and goes on as one run.
  const streamConfig = { gap: '20m', max_length: '30m', allowed_lateness: '15m', max_open_sessions: 35 };
  const whole = (await Chain.build([stage(sessionizer, streamConfig)], ctx())).push(stream(13)).end();
  for (let cut = 100; cut < 3000; cut += 100) {
    const input = stream(13);
    const part = await Chain.build([stage(sessionizer, streamConfig)], ctx());
    part.push(input.slice(0, cut));
    const rest = (await Chain.build([stage(sessionizer, streamConfig)], ctx(), await part.snapshot())).push(input.slice(cut)).end();
    assert.equal(JSON.stringify([...part.output, ...rest]), JSON.stringify(whole), `cut at ${cut}`);
  }
});

test('a restore finds each timer\'s session by seq however far apart the seqs are (one session kept open long among many newer ones); a seq twice or a timer of no session among them is refused', async () => {
  const config = { gap: '20m', max_length: '30m', allowed_lateness: '15m', max_open_sessions: 25 };
  const input = stream(7);
  const cut = 1500;
  const first = await Chain.build([stage(sessionizer, config)], ctx());
  first.push(input.slice(0, cut));
  const [saved] = (await first.snapshot()) as Record<string, any>[];
  const f64 = (values: number[]): Column => ({ n: values.length, f64: Buffer.from(Float64Array.from(values).buffer).toString('base64') });
  const seqs = [...decodeColumn(saved!.seq, 'seq')];
  const timerSeqs = [...decodeColumn(saved!.heapSeqs, 'heapSeqs')];
  assert.ok(seqs.length >= 10, 'many sessions kept');
  // The oldest seq stays, the others move a million on: their order, which breaks ties between timers, is kept.
  const oldest = Math.min(...seqs);
  const spread = (seq: number): number => (seq === oldest ? seq : seq + 1_000_000);
  const apart = structuredClone(saved!);
  apart.seq = f64(seqs.map(spread));
  apart.heapSeqs = f64(timerSeqs.map(spread));
  apart.nextSeq += 1_000_000;
  const rest = async (state: unknown): Promise<string> => JSON.stringify((await Chain.build([stage(sessionizer, config)], ctx(), [state])).push(input.slice(cut)).end());
  assert.equal(await rest(apart), await rest(saved), 'the same output as from the snapshot as it was written');
  // Re-snapshotted at once, the ids are as saved (built from the numbers they were kept as).
  const again = await Chain.build([stage(sessionizer, config)], ctx(), [apart]);
  assert.deepEqual(((await again.snapshot()) as Record<string, unknown>[])[0]!.ids, saved!.ids);

  const oldRow = seqs.indexOf(oldest);
  const other = oldRow === 0 ? 1 : 0;
  const oldTimer = timerSeqs.indexOf(oldest);
  const newTimer = oldTimer === 0 ? 1 : 0;
  const damages: [string, (state: Record<string, any>) => void, RegExp][] = [
    ['the old seq twice', (s) => void (s.seq = f64(seqs.map((seq, i) => (i === other ? oldest : spread(seq))))), new RegExp(`: seq: ${oldest} at row ${Math.max(oldRow, other)} again$`)],
    ['a timer of an old seq no session has', (s) => void (s.heapSeqs = f64(timerSeqs.map((seq, i) => (i === oldTimer ? oldest - 1 : spread(seq))))), new RegExp(`: heapSeqs: ${oldest - 1} at ${oldTimer} names no session$`)],
    ['a timer of a seq between the new ones', (s) => void (s.heapSeqs = f64(timerSeqs.map((seq, i) => (i === newTimer ? spread(seq) + 0.5 : spread(seq))))), new RegExp(`: heapSeqs: ${spread(timerSeqs[newTimer]!) + 0.5} at ${newTimer} names no session$`)],
  ];
  for (const [what, damage, message] of damages) {
    const state = structuredClone(apart);
    damage(state);
    const operator = await sessionizer.create(withDefaults(sessionizer, config as never), testContext({ clock, label: 'stage-s' }));
    await assert.rejects(Promise.resolve(operator.restore!(state)), message, what);
  }
});

test('a gap edited between a snapshot and its restore applies to the sessions open at the snapshot: shorter, one closes at its last event plus the new gap; longer, it stays open past the old one (docs/operations.md, Changing a pipeline)', async () => {
  const first = await Chain.build([stage(sessionizer, { gap: '30m' })], ctx());
  first.push([ev('u1', 0), ev('u1', 5), wm(5)]);
  assert.equal(summaries(first.output).length, 0, 'open at the snapshot');
  const saved = await first.snapshot();
  const shorter = await Chain.build([stage(sessionizer, { gap: '10m' })], ctx(), saved);
  assert.equal(summaries(shorter.push([wm(14)]).output).length, 0, 'open until its last event plus 10 minutes');
  assert.deepEqual(summaries(shorter.push([wm(15)]).output).map((s) => [s.eventCount, s.closedBy, (s.end - T0) / MIN]), [[2, 'gap', 5]]);
  const longer = await Chain.build([stage(sessionizer, { gap: '1h' })], ctx(), saved);
  assert.equal(summaries(longer.push([wm(40), ev('u1', 40), wm(40)]).output).length, 0, 'past the old gap, open: an event 35 minutes on joins it');
  assert.deepEqual(summaries(longer.push([wm(100)]).output).map((s) => [s.eventCount, (s.end - T0) / MIN]), [[3, 40]]);
});

test('a time in the wrong epoch unit (a producer that switched from milliseconds to seconds, or back) is dead-lettered with the unit most likely meant and the setting that reads it; a time no unit explains is not given such a hint', async () => {
  const context = testContext({ clock: { now: () => T0 + 1000 } });
  const chain = await Chain.build([stage(sessionizer, { gap: '30m' })], context);
  chain.push([
    { kind: 'event', userId: 'u', time: T0 / 1000, type: 'view' } as ClickEvent, // seconds, read as epoch_ms
    { kind: 'event', userId: 'u', time: T0 * 1000, type: 'view' } as ClickEvent, // milliseconds, read as epoch_s
    { kind: 'event', userId: 'u', time: 5, type: 'view' } as ClickEvent,
    wm(Infinity),
  ]);
  assert.deepEqual(context.deadLetters.map((d) => d.reason), [
    "under-test: event time 1970-01-20T17:21:07.200Z is before not_before 2000-01-01T00:00:00.000Z (as 2024-01-01T00:00:00.000Z it would be in range: a time in seconds read as milliseconds, as after a producer switched units? check the source's mapping.time_format)",
    "under-test: event time +055969-09-28T00:00:00.000Z is more than max_ahead_of_clock ahead of the clock (2024-01-01T00:00:01.000Z) (as 2024-01-01T00:00:00.000Z it would be in range: a time in milliseconds read as seconds, or microseconds as milliseconds, as after a producer switched units? check the source's mapping.time_format)",
    'under-test: event time 1970-01-01T00:00:00.005Z is before not_before 2000-01-01T00:00:00.000Z',
  ]);
});

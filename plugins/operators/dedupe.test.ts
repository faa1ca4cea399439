import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MetricsHub, type ClickEvent, type Element } from 'tributary';
import { runOperator, runYaml, specProblems, tempFolder, testContext } from 'tributary/testing';
import dedupe from './dedupe.js';
import { Chain, stage, T0, MIN, ev, wm } from './harness.js';

const clock = { now: () => Date.UTC(2024, 5, 1) };

/** The output as `u@minute:type` events and `W<minute>` watermarks. */
const trace = (out: readonly Element[]): string[] =>
  out.map((e) => (e.kind === 'watermark' ? `W${((e as { time: number }).time - T0) / MIN}` : `${(e as ClickEvent).userId}@${((e as ClickEvent).time - T0) / MIN}:${(e as ClickEvent).type}`));
async function metricOf(hub: MetricsHub, name: string): Promise<number> {
  const found = new RegExp(`^tributary_${name}\\{[^}]*\\} (\\d+)$`, 'm').exec(await hub.registry.metrics());
  return Number(found![1]);
}

test('the spec: descriptions on every field, examples valid', () => {
  assert.deepEqual(specProblems(dedupe), []);
});

test('a copy within the horizon is dropped, sent to the duplicates side output and counted; one past the horizon is kept', async () => {
  const metrics = new MetricsHub();
  const context = testContext({ clock, metrics: metrics.scoped({ pipeline: 'test', stage: 'dedupe' }) });
  const cart = { itemId: 'i1', price: 3.9 };
  const input: Element[] = [
    ev('u1', 0, 'cart', cart), ev('u1', 0, 'cart', cart), // the retry: the same event again
    ev('u2', 0, 'cart', cart), // another user's same event: not a copy
    ev('u1', 0, 'cart', { itemId: 'i1', price: 4 }), // another price: not a copy
    wm(5), ev('u1', 0, 'cart', cart), // 5 min after, behind the watermark, within 10m: dropped
    wm(11), ev('u1', 0, 'cart', cart), // the watermark passed 0 + 10m: forgotten, kept
    wm(Infinity),
  ];
  const { output } = await runOperator(dedupe, { within: '10m' }, input, context);
  assert.deepEqual(trace(output), ['u1@0:cart', 'u2@0:cart', 'u1@0:cart', 'W5', 'W11', 'u1@0:cart', 'WInfinity']);
  assert.deepEqual(context.sideOutputs.map((o) => [o.name, o.record.userId, o.record.price]), [['duplicates', 'u1', 3.9], ['duplicates', 'u1', 3.9]]);
  assert.equal(await metricOf(metrics, 'duplicates_total'), 2);
  assert.equal(context.deadLetters.length, 0);
});

test('out of order within the sources\' lateness: a copy arriving after later events, or before its first copy\'s time passed, is dropped', async () => {
  const input: Element[] = [ev('u', 10), ev('u', 4), ev('u', 12, 'cart'), ev('u', 4), wm(8), ev('u', 10), ev('u', 12, 'cart'), wm(13), ev('u', 4), wm(Infinity)];
  const context = testContext({ clock });
  const { output } = await runOperator(dedupe, { within: '5m' }, input, context);
  // 4's copy at 8 is within 4 + 5; its copy after the watermark 13 is past 9: kept (a late copy beyond the horizon).
  assert.deepEqual(trace(output), ['u@10:view', 'u@4:view', 'u@12:cart', 'W8', 'W13', 'u@4:view', 'WInfinity']);
  assert.equal(context.sideOutputs.length, 3);
});

test('id_field keys by user and event id: the same id is a copy whatever else differs; an event without it is fingerprinted and counted', async () => {
  const metrics = new MetricsHub();
  const context = testContext({ clock, metrics: metrics.scoped({ pipeline: 'test', stage: 'dedupe' }) });
  const input: Element[] = [
    ev('u', 0, 'view', { attrs: { event_id: 'e1', sent_at: 1 } }), ev('u', 0, 'view', { attrs: { event_id: 'e1', sent_at: 2 } }),
    ev('u', 0, 'view', { attrs: { event_id: 'e2' } }), ev('v', 0, 'view', { attrs: { event_id: 'e1' } }),
    ev('u', 1, 'cart'), ev('u', 1, 'cart'), ev('u', 2, 'cart', { attrs: { event_id: '' } }),
    wm(Infinity),
  ];
  const { output } = await runOperator(dedupe, { id_field: 'attrs.event_id' }, input, context);
  assert.deepEqual(trace(output), ['u@0:view', 'u@0:view', 'v@0:view', 'u@1:cart', 'u@2:cart', 'WInfinity']);
  assert.equal(context.sideOutputs.length, 2);
  assert.equal(await metricOf(metrics, 'dedupe_events_without_id_total'), 3);
});

test('a fingerprint tells values apart by type and by where one ends: 1 and "1", "a|b" and "a", null and "null" are other keys', async () => {
  const context = testContext({ clock });
  const input: Element[] = [
    ev('u', 0, 'view', { attrs: { q: 1 } }), ev('u', 0, 'view', { attrs: { q: '1' } }),
    ev('u', 0, 'view', { attrs: { q: 'a', r: 'b' } }), ev('u', 0, 'view', { attrs: { q: 'a:b' } }),
    ev('u', 0, 'view', { attrs: { q: null } }), ev('u', 0, 'view', { attrs: { q: 'null' } }), ev('u', 0, 'view', { attrs: { q: [1] } }),
    ev('u', 0, 'view', { attrs: { q: 1 } }), ev('u', 0, 'view'), // a copy; and an absent q, as null
    wm(Infinity),
  ];
  const { output } = await runOperator(dedupe, { fields: ['time', 'attrs.q', 'attrs.r'] }, input, context);
  assert.equal(output.length - 1, 7);
  assert.equal(context.sideOutputs.length, 2);
});

test('max_keys: beyond it the key first seen longest ago is forgotten, counted; its copy is then passed on', async () => {
  const metrics = new MetricsHub();
  const context = testContext({ clock, metrics: metrics.scoped({ pipeline: 'test', stage: 'dedupe' }) });
  const input: Element[] = [ev('a', 0), ev('b', 1), ev('c', 2), ev('a', 0), ev('c', 2), wm(Infinity)];
  const { output } = await runOperator(dedupe, { max_keys: 2 }, input, context);
  // c evicts a: a's copy passes (and evicts b); c's copy is dropped.
  assert.deepEqual(trace(output), ['a@0:view', 'b@1:view', 'c@2:view', 'a@0:view', 'WInfinity']);
  assert.equal(await metricOf(metrics, 'dedupe_keys_evicted_total'), 2);
  // A key the watermark expired already is no loss: not counted.
  const quiet = new MetricsHub();
  await runOperator(dedupe, { max_keys: 1, within: '1m' }, [ev('a', 0), wm(5), ev('b', 5), wm(Infinity)], testContext({ clock, metrics: quiet.scoped({ pipeline: 'test', stage: 'dedupe' }) }));
  assert.equal(await metricOf(quiet, 'dedupe_keys_evicted_total'), 0);
});

test('an erasure request forgets the user\'s keys, and no other user\'s', async () => {
  const chain = await Chain.build([stage(dedupe, {})], testContext({ clock }));
  chain.push([ev('u', 0), ev('u1', 0), ev('uu', 0)]);
  assert.equal(chain.operators[0]!.forget!('u'), 1);
  const snapshot = (await chain.snapshot())[0] as { keys: string[] };
  assert.deepEqual(snapshot.keys.map((key) => key.slice(0, 4)), ['2:u1', '2:uu']);
  assert.deepEqual(trace(chain.push([ev('u', 0), ev('u1', 0)]).end()).slice(3), ['u@0:view']);
});

test('a snapshot mid-stream and a restore give the same outputs and duplicates as one run, at every cut', async () => {
  const input: Element[] = [];
  for (let minute = 0; minute < 40; minute++) {
    const user = `u${minute % 3}`;
    input.push(ev(user, minute, minute % 4 === 0 ? 'cart' : 'view', { itemId: `i${minute % 5}` }));
    if (minute % 3 === 0) input.push(ev(user, minute, minute % 4 === 0 ? 'cart' : 'view', { itemId: `i${minute % 5}` }));
    if (minute % 7 === 0) input.push(ev(`u${(minute + 1) % 3}`, minute - 3, 'view', { itemId: `i${(minute - 2) % 5}` }), wm(minute - 2));
    if (minute % 11 === 5) input.push(ev('u0', minute - 5, 'cart', { itemId: 'i0' }));
  }
  input.push(wm(Infinity));
  const config = { within: '4m', max_keys: 8 };
  const wholeContext = testContext({ clock });
  const whole = (await Chain.build([stage(dedupe, config)], wholeContext)).push(input).end();
  assert.ok(wholeContext.sideOutputs.length > 10);
  for (let cut = 0; cut <= input.length; cut++) {
    const context = testContext({ clock });
    const before = await Chain.build([stage(dedupe, config)], context);
    before.push(input.slice(0, cut));
    const after = await Chain.build([stage(dedupe, config)], context, await before.snapshot());
    assert.deepEqual(trace([...before.output, ...after.push(input.slice(cut)).end()]), trace(whole), `cut at ${cut}`);
    assert.equal(context.sideOutputs.length, wholeContext.sideOutputs.length, `cut at ${cut}`);
  }
});

test('a damaged snapshot is refused with what does not match', async () => {
  const chain = await Chain.build([stage(dedupe, {})], testContext({ clock }));
  chain.push([ev('u', 0), ev('v', 1), wm(2)]);
  const [saved] = (await chain.snapshot()) as [{ keys: string[] }];
  const operator = await dedupe.create({ fields: ['time', 'type'], within: '10m', max_keys: 10 }, testContext({ clock }));
  assert.throws(() => operator.restore!({ ...saved, keys: saved.keys.slice(1) }), /^Error: dedupe snapshot: /);
  assert.throws(() => operator.restore!({ version: 2 }), /not a dedupe snapshot of version 1/);
});

test('in a pipeline before the sessionizer: copies counted once, in the run summary as side output duplicates, and written by a sink naming the output', async (t) => {
  const dir = tempFolder(t, 'dedupe');
  const line = (minute: number, type: string, price: number) => JSON.stringify({ user_id: 'u1', time: T0 + minute * MIN, type, item_id: 'i1', price });
  const input = join(dir, 'in.jsonl');
  writeFileSync(input, [line(0, 'view', 4), line(1, 'cart', 4), line(1, 'cart', 4), line(2, 'purchase', 4), line(2, 'purchase', 4)].join('\n') + '\n');
  const result = await runYaml(
    `sources: [{type: file, path: ${input}, mapping: {time_format: epoch_ms}}]
stages:
  - {type: dedupe, within: 10m}
  - {type: sessionizer, gap: 30m}
sinks:
  - {type: memory, kinds: [session]}
  - {type: memory, id: 1, kinds: [], outputs: [duplicates]}
`,
    { clock, baseDir: dir },
  );
  const [session] = result.outputs[0]!;
  assert.equal(session!.eventCount, 3);
  assert.deepEqual(session!.counts, { view: 1, cart: 1, purchase: 1 });
  assert.deepEqual(result.outputs[1]!.map((e) => e.type), ['cart', 'purchase']);
  assert.equal(result.stats.sideOutputs.duplicates, 2);
});

test('a bad config is an error at its file, line and column', async () => {
  await assert.rejects(runYaml('sources: [{type: synthetic}]\nstages:\n  - {type: dedupe, within: 10 minutes}\nsinks: [{type: memory}]\n', { clock }), /pipeline\.yaml:3:28: \$\.stages\[0\]\.within: /);
  await assert.rejects(runYaml('sources: [{type: synthetic}]\nstages:\n  - type: dedupe\n    fields: [time, item]\nsinks: [{type: memory}]\n', { clock }), /pipeline\.yaml:4:20: \$\.stages\[0\]\.fields\[1\]: /);
  await assert.rejects(runYaml('sources: [{type: synthetic}]\nstages:\n  - {type: dedupe, max_keys: 0}\nsinks: [{type: memory}]\n', { clock }), /pipeline\.yaml:3:30: \$\.stages\[0\]\.max_keys: /);
  await assert.rejects(runYaml('sources: [{type: synthetic}]\nstages:\n  - {type: dedupe, id_field: event_id}\nsinks: [{type: memory}]\n', { clock }), /pipeline\.yaml:3:30: \$\.stages\[0\]\.id_field: /);
});

test('validate warns of a dedupe after a sessionizer, at the entry, and of a within of bare milliseconds', async () => {
  const run = await runYaml('sources: [{type: synthetic, events: 10}]\nstages:\n  - {type: sessionizer}\n  - {type: dedupe, within: 600}\nsinks: [{type: memory}]\n', { clock });
  const said = (run.loaded.warnings ?? []).map((w) => `${w.line}:${w.column}: ${w.path}: ${w.message}`);
  assert.equal(said.length, 2, said.join('\n'));
  assert.match(said.join('\n'), /4:5: \$\.stages\[1\]: a stage before this one makes sessions: .*put dedupe before the sessionizer/);
  assert.match(said.join('\n'), /4:28: \$\.stages\[1\]\.within: 600 is 600 milliseconds/);
});

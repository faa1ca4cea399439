import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runSummaries, tempFolder } from 'tributary/testing';

const root = new URL('../../../', import.meta.url).pathname;
const fixture = join(root, 'plugins/sources/fixtures/ga4/events_20240312.jsonl');

type Record = { [field: string]: unknown };
interface Ga4Row {
  event_timestamp: string;
  event_name: string;
  user_pseudo_id?: string;
  event_params: { key: string; value: { int_value?: string; string_value?: string } }[];
  items: { item_id: string; item_category: string; price?: number }[];
}

/**
 * pipelines/ga4-intent.yaml on its fixture, a GA4 BigQuery export (events_20240312, 410 lines): event_timestamp
 * in microseconds as text, the session id in event_params' list of key/value objects, the product in items[0].
 */
test('a GA4 BigQuery export is read through config alone (epoch_us, event_params[key="ga_session_id"], items[0]) and runs through sessions, session features and the intent model, each session labelled by its own purchase', (t) => {
  const dir = tempFolder(t, 'ga4');
  const result = spawnSync(
    process.execPath,
    [join(root, 'dist/core/cli/main.js'), 'run', join(root, 'pipelines/ga4-intent.yaml'), '--log-level', 'warn', '--set', 'sinks[0].kinds=[prediction, event, session, model_metrics]', '--set', 'stages[2].report=true'],
    { encoding: 'utf8', cwd: dir, env: { ...process.env, OUT_DIR: dir } },
  );
  assert.equal(result.status, 0, result.stderr);
  // No warning but the dead letters' (the first of each reason, below): every event type the export has is named
  // in event_types, every field the mapping names is read.
  const warnings = result.stderr.split('\n').filter((line) => line.includes('"level":40')).map((line) => JSON.parse(line) as { msg: string; reason?: string; line?: number });
  assert.deepEqual(warnings.filter(({ msg }) => !msg.startsWith('dead letter: ')), []);
  assert.deepEqual(warnings.map(({ reason, line }) => [reason, line]), [
    ['source-file-0: user_pseudo_id: missing user id', 92],
    ["stage-sessionizer-0: event has no session id: its source's mapping read no session_id (session_id_from: data needs one)", 140],
  ]);
  const [summary] = runSummaries(result.stderr);
  assert.equal(summary?.eventsIn, 409, result.stderr);
  // A cookieless ping (no user_pseudo_id) and a Measurement Protocol refund (no ga_session_id): dead-lettered with their reasons.
  assert.deepEqual(summary!.deadLetteredByReason, { 'source-file-0: user_pseudo_id: missing user id': 1, "stage-sessionizer-0: event has no session id: its source's mapping read no session_id (session_id_from: data needs one)": 1 });
  const dead = readFileSync(join(dir, 'dead-letters-ga4-intent.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record);
  assert.deepEqual(dead.map((letter) => [letter.reason, letter.line]), [
    ['user_pseudo_id: missing user id', 92],
    ["stage-sessionizer-0: event has no session id: its source's mapping read no session_id (session_id_from: data needs one)", 140],
  ]);
  assert.equal((dead[1]!.raw as Record).type, 'refund');

  const rows = readFileSync(fixture, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Ga4Row);
  const out = readFileSync(join(dir, 'ga4-intent-predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record);
  const events = out.filter((r) => r.kind === 'event');
  const sessions = out.filter((r) => r.kind === 'session');
  const predictions = out.filter((r) => r.kind === 'prediction');
  assert.equal(events.length, 408);

  // Each field as the export has it: the millisecond of the microseconds, ga_session_id's int_value, items[0].
  const row = rows.find((r) => r.event_name === 'view_item')!;
  const mapped = events.find((e) => e.userId === row.user_pseudo_id && e.time === Math.floor(Number(row.event_timestamp) / 1000) && e.type === 'view')!;
  assert.deepEqual([mapped.sessionId, mapped.itemId, mapped.category, mapped.price], [row.event_params.find((p) => p.key === 'ga_session_id')!.value.int_value, row.items[0]!.item_id, row.items[0]!.item_category, row.items[0]!.price]);
  // A page_view has no items (an empty list): no item, no price; a view_item whose item has no price: no price.
  assert.ok(events.filter((e) => e.type === 'page_view').every((e) => e.itemId === undefined && e.price === undefined));
  assert.deepEqual(events.filter((e) => e.type === 'view' && e.price === undefined).map((e) => [e.userId, e.itemId !== undefined]), [['1777204113.1708000000', true]]);
  assert.deepEqual(
    [...new Set(events.map((e) => e.type))].sort(),
    ['add_payment_info', 'add_shipping_info', 'begin_checkout', 'cart', 'first_visit', 'page_view', 'purchase', 'remove_from_cart', 'scroll', 'select_item', 'session_start', 'user_engagement', 'view', 'view_cart', 'view_item_list'],
  );

  // Events of one millisecond (GA4 writes a page_view, the first_visit and the session_start it set off with one
  // microsecond) leave in the order of the file, whatever lines come between them (the sessionizer sorts by time, stably).
  const typeOf: { [name: string]: string } = { view_item: 'view', add_to_cart: 'cart' };
  const tiedInFile = new Map<string, string[]>();
  const tiedOut = new Map<string, string[]>();
  for (const r of rows.filter((r) => r.user_pseudo_id !== undefined && r.event_name !== 'refund')) {
    const at = `${r.user_pseudo_id} ${Math.floor(Number(r.event_timestamp) / 1000)}`;
    tiedInFile.set(at, [...(tiedInFile.get(at) ?? []), typeOf[r.event_name] ?? r.event_name]);
  }
  for (const e of events) tiedOut.set(`${String(e.userId)} ${String(e.time)}`, [...(tiedOut.get(`${String(e.userId)} ${String(e.time)}`) ?? []), String(e.type)]);
  const tied = [...tiedInFile].filter(([, types]) => types.length > 1);
  assert.equal(tied.length, 112);
  assert.deepEqual(tied[0], ['1187345092.1709912233 1710231123149', ['page_view', 'first_visit', 'session_start']]);
  for (const [at, types] of tied) assert.deepEqual(tiedOut.get(at), types, at);

  // 21 sessions of 11 users, 5 that bought; two users started one in the same second (ga_session_id 1710241200): two sessions, one bought.
  assert.equal(sessions.length, 21);
  assert.equal(new Set(sessions.map((s) => s.userId)).size, 11);
  assert.deepEqual(sessions.filter((s) => s.sessionId === '1710241200').map((s) => [s.userId, s.purchased]), [['1520099871.1709000000', false], ['339812044.1710241200', true]]);
  assert.equal(sessions.filter((s) => s.purchased === true).length, 5);

  // A prediction at each event before its session's first purchase; labelled 1 where that session bought, each session by its own.
  const key = (r: Record): string => `${String(r.userId)} ${String(r.sessionId)}`;
  const summaryOf = new Map(sessions.map((s) => [key(s), s]));
  assert.equal(predictions.length, 408 - 5);
  const labelled = predictions.filter((p) => summaryOf.get(key(p))!.closedBy === 'gap');
  const positives = labelled.filter((p) => summaryOf.get(key(p))!.purchased === true);
  const report = out.find((r) => r.kind === 'model_metrics') as { summary: { n: number; positives: number }; counts: { unlabelledAtEnd: number } };
  assert.deepEqual([report.summary.n, report.summary.positives, report.counts.unlabelledAtEnd], [labelled.length, positives.length, predictions.length - labelled.length]);
  assert.deepEqual([labelled.length, positives.length], [389, 95]);
});

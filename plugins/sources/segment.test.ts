import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runSummaries, tempFolder } from 'tributary/testing';

const root = new URL('../../../', import.meta.url).pathname;
const pipeline = join(root, 'pipelines/segment-intent.yaml');

type Record = { [field: string]: unknown };

function run(dir: string, ...set: string[]): { stderr: string; out: Record[] } {
  const result = spawnSync(
    process.execPath,
    [join(root, 'dist/core/cli/main.js'), 'run', pipeline, '--log-level', 'warn', '--set', 'sinks[0].kinds=[prediction, event, session]', ...set.flatMap((s) => ['--set', s])],
    { encoding: 'utf8', cwd: dir, env: { ...process.env, OUT_DIR: dir } },
  );
  assert.equal(result.status, 0, result.stderr);
  const out = readFileSync(join(dir, 'segment-intent-predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record);
  return { stderr: result.stderr, out };
}

/**
 * pipelines/segment-intent.yaml on its fixture, a Segment export of track and page calls: the user is the
 * device's anonymousId, so a login in the middle of a visit (userId null before it) keeps one session.
 */
test('a Segment export is read through config alone (anonymousId, timestamp, Title Case event names, page calls by default_type): a visit with a login in it is one session of one user', (t) => {
  const dir = tempFolder(t, 'segment');
  const { stderr, out } = run(dir);
  // No warning: every event name the export has is named in event_types, every field the mapping names is read.
  assert.deepEqual(stderr.split('\n').filter((line) => line.includes('"level":40')), []);
  const [summary] = runSummaries(stderr);
  assert.deepEqual([summary?.eventsIn, summary?.deadLettered, summary?.sideOutputs], [17, 0, {}], stderr);
  const events = out.filter((r) => r.kind === 'event');
  const sessions = out.filter((r) => r.kind === 'session');
  // The login (userId from the fourth call on) changes nothing: one user, one session, which bought.
  const visit = sessions.filter((s) => s.userId === 'a7f3e1c2');
  assert.equal(visit.length, 1);
  assert.deepEqual([visit[0]!.eventCount, visit[0]!.purchased, visit[0]!.counts], [6, true, { page_view: 1, view: 1, cart: 1, 'Signed In': 1, 'Checkout Started': 1, purchase: 1 }]);
  assert.deepEqual(events.filter((e) => e.userId === 'a7f3e1c2').map((e) => (e.attrs as Record).userId), [null, null, null, 'cust-1001', 'cust-1001', 'cust-1001']);
  // Each field as the export has it: the time of `timestamp`, the product in properties.
  const viewed = events.find((e) => e.userId === 'a7f3e1c2' && e.type === 'view')!;
  assert.deepEqual([viewed.time, viewed.itemId, viewed.category, viewed.price], [Date.parse('2024-03-12T09:00:40.000Z'), 'P-100', 'Shoes', 59.9]);
  // The phone's batch, received out of order, is in its session in event time; remove_from_cart is mapped.
  assert.deepEqual(events.filter((e) => e.userId === 'd4e5f6a7').map((e) => e.type), ['view', 'cart', 'purchase']);
  assert.deepEqual(sessions.find((s) => s.userId === 'c0ffee42')!.counts, { view: 1, cart: 1, remove_from_cart: 1 });
  assert.deepEqual(sessions.map((s) => s.userId).sort(), ['a7f3e1c2', 'b19d44e0', 'b19d44e0', 'c0ffee42', 'd4e5f6a7']);
  assert.ok(out.some((r) => r.kind === 'prediction'));
});

test('a Segment export read by userId (what the pipeline\'s comment warns of): the calls before a login are dead-lettered as missing a user id, naming anonymousId and the list that reads it, and the visit\'s session starts at the login', (t) => {
  const dir = tempFolder(t, 'segment-user-id');
  const { stderr, out } = run(dir, 'sources[0].mapping.fields.user_id=userId');
  const [summary] = runSummaries(stderr);
  assert.deepEqual(summary?.deadLetteredByReason, { 'source-file-0: userId: missing user id (the record has anonymousId; to read it where userId has none: fields.user_id: [userId, anonymousId])': 11 }, stderr);
  const visit = out.filter((r) => r.kind === 'session' && r.userId === 'cust-1001');
  assert.deepEqual(visit.map((s) => [s.start, s.eventCount]), [[Date.parse('2024-03-12T09:03:00.000Z'), 3]]);
});

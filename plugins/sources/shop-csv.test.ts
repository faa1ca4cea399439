import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runSummaries, tempFolder } from 'tributary/testing';

const root = new URL('../../../', import.meta.url).pathname;

type Record = { [field: string]: unknown };

/**
 * pipelines/shop-csv-intent.yaml on its fixture, a shop's CSV as European spreadsheet tools write it: a byte
 * order mark, CRLF, `;`, a quoted header with spaces and parentheses, times with +01:00, decimal-comma prices.
 */
test('a shop\'s CSV export (BOM, CRLF, ;, quoted header names with spaces, +01:00 times, 12,50 and 1.249,00) is read through config alone, with hours of the day in the shop\'s zone', (t) => {
  const dir = tempFolder(t, 'shop-csv');
  const result = spawnSync(
    process.execPath,
    [join(root, 'dist/core/cli/main.js'), 'run', join(root, 'pipelines/shop-csv-intent.yaml'), '--log-level', 'warn', '--set', 'sinks[0].kinds=[prediction, event, session]'],
    { encoding: 'utf8', cwd: dir, env: { ...process.env, OUT_DIR: dir } },
  );
  assert.equal(result.status, 0, result.stderr);
  // No warning: every column the mapping names is in the header (the BOM is not part of its first name), every type is mapped.
  assert.deepEqual(result.stderr.split('\n').filter((line) => line.includes('"level":40')), []);
  const [summary] = runSummaries(result.stderr);
  assert.deepEqual([summary?.eventsIn, summary?.deadLettered], [12, 0], result.stderr);
  const out = readFileSync(join(dir, 'shop-csv-intent-predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record);
  const events = out.filter((r) => r.kind === 'event');
  const order = events.filter((e) => e.userId === 'K-1001');
  assert.deepEqual(
    order.map((e) => [e.time, e.type, e.itemId, e.category, e.price]),
    [
      [Date.parse('2024-03-12T08:00:00Z'), 'page_view', undefined, undefined, undefined],
      [Date.parse('2024-03-12T08:00:45Z'), 'view', 'SKU-17', 'Bikes', 1249],
      [Date.parse('2024-03-12T08:02:00Z'), 'view', 'SKU-03', 'Helmets', 59.9],
      [Date.parse('2024-03-12T08:03:20Z'), 'cart', 'SKU-03', 'Helmets', 59.9],
      [Date.parse('2024-03-12T08:06:20Z'), 'purchase', 'SKU-03', 'Helmets', 59.9],
    ],
  );
  // 09:00 in Berlin (08:00Z): hour 9 of the day, as the shop's clock showed it.
  const features = order[0]!.features as { [name: string]: number };
  assert.ok(Math.abs(features.hour_sin! - Math.sin((2 * Math.PI * 9) / 24)) < 1e-6 && Math.abs(features.hour_cos! - Math.cos((2 * Math.PI * 9) / 24)) < 1e-6, JSON.stringify(features));
  const sessions = out.filter((r) => r.kind === 'session');
  assert.deepEqual(sessions.map((s) => [s.sessionId, s.purchased]).sort(), [['V-1', true], ['V-2', false], ['V-3', false], ['V-4', false]]);
  assert.deepEqual(sessions.find((s) => s.sessionId === 'V-4')!.counts, { view: 1, cart: 1, remove_from_cart: 1 });
});

// A backtest of two inputs (clicks and orders, one --input per source) against the same events in one file.
// Its own file: each backtest it runs is a process of its own, and backtest.test.ts's already take most of a file's time limit on a loaded host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { BacktestModelMetrics } from './backtest.js';
import { tempFolder } from 'tributary/testing';

const main = new URL('./main.js', import.meta.url).pathname;

test('backtest of churn on two files flushes at the end as on one: each prediction whose horizon the last event time passes is labelled, the rest censored, whichever file ends first (was: a source ending before the other left every prediction unlabelled)', (t) => {
  const dir = tempFolder(t, 'backtest-two-sources-churn');
  const click = (user: string, time: string) => ({ user_id: user, event_time: time, event_type: 'view', product_id: 'i1', price: 5 });
  const order = (user: string, time: string) => ({ order_id: `o-${user}-${time}`, customer_id: user, created_at: time, total: 9 });
  const lines = (rows: readonly object[]): string => rows.map((row) => `${JSON.stringify(row)}\n`).join('');
  const clicks = [click('u1', '2024-01-01T10:00:00Z'), click('u2', '2024-01-01T10:00:00Z'), click('u3', '2024-01-01T10:00:00Z'), click('u3', '2024-01-03T10:00:00Z'), click('z', '2024-01-20T10:00:00Z')];
  const source = (path: string, mapping: string) => `  - { type: file, path: ${path}, mapping: ${mapping} }\n`;
  const clickMapping = '{ fields: { user_id: user_id, time: event_time, type: event_type, item_id: product_id, price: price } }';
  const rest = 'stages:\n  - { type: sessionizer, gap: 30m }\n  - { type: churn-model, name: churn, horizon: 7d, emit_labels: true }\nsinks: [{ type: file, path: out.jsonl, kinds: [label, unlabelled] }]\n';
  writeFileSync(join(dir, 'two.yaml'), `name: churn-two\nsources:\n${source('clicks.jsonl', clickMapping)}${source('orders.jsonl', '{ fields: { user_id: customer_id, time: created_at, price: total }, default_type: purchase }')}${rest}`);
  writeFileSync(join(dir, 'one.yaml'), `name: churn-one\nsources:\n${source('whole.jsonl', clickMapping)}${rest}`);
  type Outcome = { kind: string; predictionId: string; label?: number; reason?: string };
  const backtest = (pipeline: string, inputs: Record<string, readonly object[]>) => {
    for (const [file, rows] of Object.entries(inputs)) writeFileSync(join(dir, file), lines(rows));
    const run = spawnSync(process.execPath, [main, 'backtest', pipeline, ...Object.keys(inputs).flatMap((file) => ['--input', file]), '--report', 'report', '--log-level', 'warn'], { encoding: 'utf8', cwd: dir });
    assert.equal(run.status, 0, run.stderr);
    const outcomes = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Outcome);
    const metrics = (JSON.parse(readFileSync(join(dir, 'report', 'metrics.json'), 'utf8')) as { models: Record<string, BacktestModelMetrics> }).models.churn!;
    return {
      labels: outcomes.filter((o) => o.kind === 'label').map((o) => `${o.predictionId}=${o.label}`).sort(),
      censored: outcomes.filter((o) => o.kind === 'unlabelled').map((o) => `${o.predictionId}:${o.reason}`).sort(),
      scored: [metrics.n, metrics.positives],
    };
  };
  // The same events merged into one file, in time order (the order written as a purchase click).
  const merged = (orders: readonly ReturnType<typeof order>[]) =>
    [...clicks, ...orders.map((o) => ({ user_id: o.customer_id, event_time: o.created_at, event_type: 'purchase', product_id: 'x', price: o.total }))].sort((a, b) => a.event_time.localeCompare(b.event_time));
  for (const [when, orders] of [
    ['the orders end two weeks before the clicks', [order('u1', '2024-01-03T09:00:00Z')]],
    ['both end together', [order('u1', '2024-01-03T09:00:00Z'), order('z', '2024-01-20T10:00:00Z')]],
  ] as const) {
    const one = backtest('one.yaml', { 'whole.jsonl': merged(orders) });
    // Every session of the first days is past its horizon (7 d + the 30 m gap) by 20 January; z's is not.
    assert.equal(one.labels.length, 5, when);
    assert.deepEqual([one.censored.length, one.censored[0]?.endsWith(':unlabelled_at_end')], [1, true], when);
    const two = backtest('two.yaml', { 'clicks.jsonl': clicks, 'orders.jsonl': orders });
    assert.deepEqual(two, one, `${when}: the two files label, censor and score what the merged one does`);
  }
});

test("backtest of the order-service example on two files (clicks, orders) scores what the same events merged into one file score: the clicks are not read days ahead of the orders' first batch (watermark.max_drift; was churn AUC 0.502 against 0.522)", { timeout: 240_000 }, (t) => {
  const dir = tempFolder(t, 'backtest-two-sources-aligned');
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const example = join(root, 'examples', 'pipelines', 'purchases-from-orders.yaml');
  const cli = (args: readonly string[]) => {
    const run = spawnSync(process.execPath, [main, ...args, '--log-level', 'warn'], { encoding: 'utf8', cwd: dir, env: { ...process.env, OUT_DIR: dir } });
    assert.equal(run.status, 0, run.stderr);
  };
  // The walk of docs/operations.md (Purchases from the order service): the demo's events, split into clicks and orders.
  cli(['run', join(root, 'examples', 'orders', 'demo-events.yaml')]);
  const split = spawnSync(process.execPath, [join(root, 'examples', 'orders', 'split-orders.mjs'), join(dir, 'demo-events.jsonl'), dir], { encoding: 'utf8' });
  assert.equal(split.status, 0, split.stderr);
  type Click = { user_id: string; event_time: string; event_type: string; product_id?: string; price?: number };
  const rows = <T>(file: string): T[] => readFileSync(join(dir, file), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as T);
  // The same events in one file: the clicks but the browser's purchases, and each order as a purchase at its time.
  const orders = rows<{ customer_id: string; created_at: string; total: number }>('orders.jsonl').map((o): Click => ({ user_id: o.customer_id, event_time: o.created_at, event_type: 'purchase', price: o.total }));
  const merged = [...rows<Click>('clicks.jsonl').filter((c) => c.event_type !== 'purchase'), ...orders].sort((a, b) => a.event_time.localeCompare(b.event_time));
  writeFileSync(join(dir, 'merged.jsonl'), merged.map((row) => `${JSON.stringify(row)}\n`).join(''));
  const text = readFileSync(example, 'utf8');
  writeFileSync(
    join(dir, 'one.yaml'),
    `name: one\nsources:\n  - { type: file, path: merged.jsonl, mapping: { fields: { user_id: user_id, time: event_time, type: event_type, item_id: product_id, price: price } }, watermark: { max_out_of_orderness: 2s } }\n${text.slice(text.indexOf('\nstages:') + 1)}`,
  );
  const models = (report: string) => (JSON.parse(readFileSync(join(dir, report, 'metrics.json'), 'utf8')) as { models: Record<string, BacktestModelMetrics> }).models;
  cli(['backtest', example, '--input', 'clicks.jsonl', '--input', 'orders.jsonl', '--report', 'two']);
  cli(['backtest', 'one.yaml', '--input', 'merged.jsonl', '--report', 'one']);
  const [two, one] = [models('two'), models('one')];
  for (const name of ['intent', 'churn']) {
    const figures = (m: BacktestModelMetrics | undefined) => [m?.n, m?.positives, m?.auc?.toFixed(4)];
    assert.deepEqual(figures(two[name]), figures(one[name]), `${name}: labels, positives and AUC of two files and of one`);
  }
});

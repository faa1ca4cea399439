import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runSummaries, tempFolder } from 'tributary/testing';

const root = new URL('../../../', import.meta.url).pathname;
const sample = join(root, '..', 'shared', 'data', 'rees46', '2019-Oct_head.csv');

test('the REES46 sample is read through config alone: session ids, event types and UTC timestamps', { skip: existsSync(sample) ? false : `REES46 sample not found at ${sample} (../shared/data is not part of the project)` }, (t) => {
  const dir = tempFolder(t, 'rees46');
  const out = join(dir, 'events.jsonl');
  const result = spawnSync(process.execPath, [join(root, 'dist/core/cli/main.js'), 'run', join(root, 'pipelines/rees46-events.yaml'), '--log-level', 'warn'], {
    encoding: 'utf8',
    cwd: dir,
    env: { ...process.env, OUT: out },
  });
  assert.equal(result.status, 0, result.stderr);
  // The sample's last row was cut mid-line when it was taken: it is dead-lettered, not lost (in the default dead-letter file, named after the pipeline).
  const [summary] = runSummaries(result.stderr);
  assert.equal(summary?.eventsIn, 17434, result.stderr);
  assert.equal(summary!.deadLettered, 1);
  const [dead] = readFileSync(join(dir, 'dead-letters-rees46-events.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(dead!.reason, 'CSV row has 8 fields, expected 9');
  assert.equal(dead!.line, 17436);
  const events = readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(events.length, 17434);
  assert.deepEqual(events[0], {
    kind: 'event',
    userId: '541312140',
    time: Date.UTC(2019, 9, 1, 0, 0, 0),
    type: 'view',
    sessionId: '72d76fde-8bb3-4e00-8c23-a032dfed738c',
    itemId: '44600062',
    price: 35.79,
    attrs: { brand: 'shiseido', category_id: '2103807459595387724' },
  });
  const types = new Set(events.map((e) => e.type));
  assert.deepEqual([...types].sort(), ['cart', 'purchase', 'view']);
  assert.equal(new Set(events.filter((e) => e.type === 'purchase').map((e) => e.sessionId)).size, 200, '200 sessions contain a purchase');
});

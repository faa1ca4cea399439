import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileDurably, writeFileDurablySync } from 'tributary';

test('writeFileDurably and writeFileDurablySync replace a file with all its parts, in order, and leave no temp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-durable-'));
  const file = join(dir, 'state.json');
  writeFileSync(file, 'old contents, longer than the new ones');
  // Bigger than one write call is sure to take, with a multi-byte character across parts.
  const body = 'é'.repeat(300_000);
  await writeFileDurably(file, ['{"a":', Buffer.from('1,"b":"'), body, '"}']);
  assert.equal(readFileSync(file, 'utf8'), `{"a":1,"b":"${body}"}`);
  writeFileDurablySync(file, `{"c":"${body}"}`);
  assert.equal(readFileSync(file, 'utf8'), `{"c":"${body}"}`);
  writeFileDurablySync(file, ['x', Buffer.from('y')], join(dir, 'fixed.tmp'));
  assert.equal(readFileSync(file, 'utf8'), 'xy');
  assert.deepEqual(readdirSync(dir), ['state.json']);
});

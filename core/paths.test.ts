import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempFolder } from './testing.js';
import { inputFileProblem } from './paths.js';

test('inputFileProblem: a missing path with * or ? in its name says that paths are no patterns and how to list the files (was: only "no such file", for a GA4 export\'s events_*.json shards)', (t) => {
  const dir = tempFolder(t, 'paths');
  writeFileSync(join(dir, 'events_000.json'), '');
  mkdirSync(join(dir, 'folder'));
  assert.equal(inputFileProblem(join(dir, 'events_000.json')), undefined);
  assert.equal(inputFileProblem(join(dir, 'gone.json')), `no such file: ${join(dir, 'gone.json')}`);
  assert.equal(inputFileProblem(join(dir, 'folder')), `${join(dir, 'folder')} is a folder; name its files`);
  for (const name of ['events_*.json', 'events_00?.json']) {
    assert.equal(inputFileProblem(join(dir, name)), `no such file: ${join(dir, name)} (a path is read as written, with no wildcards: list the files, path: [a.json, b.json], read one after another)`);
  }
});

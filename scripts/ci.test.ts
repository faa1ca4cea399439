import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inCI } from './ci.js';

test('CI counts as set for any value CI systems use, and not for unset, empty, false or 0', () => {
  for (const value of ['true', 'TRUE', '1', 'yes', 'github-actions', ' true ']) assert.equal(inCI({ CI: value }), true, `CI=${JSON.stringify(value)}`);
  for (const value of [undefined, '', ' ', 'false', 'False', '0']) assert.equal(inCI(value === undefined ? {} : { CI: value }), false, `CI=${JSON.stringify(value)}`);
});

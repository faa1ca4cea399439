import { test } from 'node:test';
import assert from 'node:assert/strict';
import { thrownAsError } from './process-events.js';

test('a promise rejected with a non-Error is said as an Error naming what it was, its secret fields redacted; an Error is kept as it is', () => {
  const error = new Error('kept');
  assert.equal(thrownAsError(error), error);
  assert.equal(thrownAsError('quota exceeded').message, 'quota exceeded (thrown as string, not as an Error)');
  assert.equal(thrownAsError({ reason: 'refused', password: 'pw-1a2b3c' }).message, "{ reason: 'refused', password: '[redacted]' } (thrown as object, not as an Error)");
  assert.equal(thrownAsError(undefined).message, 'undefined (thrown as undefined, not as an Error)');
  assert.equal(thrownAsError(null).message, 'null (thrown as null, not as an Error)');
});

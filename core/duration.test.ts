import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durationText, parseDuration } from './duration.js';

test('durationText writes a duration in its largest whole unit, which parses back to it', () => {
  const cases: [number, string][] = [[3_600_000, '1h'], [86_400_000, '1d'], [2_592_000_000, '30d'], [1_209_600_000, '2w'], [90_000, '90s'], [1_500, '1500ms'], [0, '0ms']];
  for (const [ms, text] of cases) {
    assert.equal(durationText(ms), text);
    assert.equal(parseDuration(text), ms);
  }
});

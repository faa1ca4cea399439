import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitToTerminal, watermarkProgress } from './progress.js';

test('a redrawn progress line is cut to one row of the terminal (columns - 1, ending in …), so no wrapped row is left stale at the next redraw', () => {
  const line = 'a: in 1,234,567 out 2,345,678 dead 0 12,345 ev/s wm 2024-06-01T00:00:00Z | b: in 7,654,321 out 0 dead 3 9,876 ev/s wm -';
  const cut = fitToTerminal(line, 80);
  assert.equal(cut.length, 79);
  assert.equal(cut, `${line.slice(0, 78)}…`);
  // One that fits, or a terminal of unknown width, is left as it is.
  assert.equal(fitToTerminal('a: in 1 out 1', 80), 'a: in 1 out 1');
  assert.equal(fitToTerminal(line, line.length + 1), line);
  assert.equal(fitToTerminal(line, undefined), line);
  assert.equal(fitToTerminal(line, 0), line);
  // By code points: a pipeline named with an emoji is not cut inside its surrogate pair.
  const named = `${'😀'.repeat(10)}: in 5`;
  assert.equal(fitToTerminal(named, 6), '😀😀😀😀…');
});

test("progress shows the sources' watermark, and the one the stages passed on beside it only while a stage holds it back", () => {
  const T0 = Date.UTC(2024, 5, 1);
  const held = watermarkProgress({ watermark: T0 + 3_600_000, passedWatermark: T0 });
  assert.deepEqual(held.fields, { watermark: '2024-06-01T01:00:00Z', passedWatermark: '2024-06-01T00:00:00Z' });
  assert.equal(held.text, '2024-06-01T01:00:00Z (held at 2024-06-01T00:00:00Z)');
  // Held at none yet (a stage that passed nothing on).
  assert.equal(watermarkProgress({ watermark: T0, passedWatermark: -Infinity }).text, '2024-06-01T00:00:00Z (held at -)');
  const passed = watermarkProgress({ watermark: T0, passedWatermark: T0 });
  assert.deepEqual(passed.fields, { watermark: '2024-06-01T00:00:00Z', passedWatermark: '2024-06-01T00:00:00Z' });
  assert.equal(passed.text, '2024-06-01T00:00:00Z');
  assert.deepEqual(watermarkProgress({ watermark: -Infinity, passedWatermark: -Infinity }), { fields: { watermark: null, passedWatermark: null }, text: '-' });
  assert.equal(watermarkProgress({ watermark: Infinity, passedWatermark: Infinity }).text, '-');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FeatureSelector } from 'tributary';

test('FeatureSelector: exact names and `*` wildcards select indices in the vector\'s order, each once; other characters are literal', () => {
  const names = Object.freeze(['s_events', 's_view_price_mean', 'hour_sin', 'u_events', 's_view_price_max', 'a.b', 'axb', 'x_(1)']);
  const selector = new FeatureSelector(['u_events', 's_view_price_*', 's_*', 'a.b', 'x_(*)'], () => assert.fail('nothing is missing'));
  assert.deepEqual(Array.from(selector.indices(names)), [0, 1, 3, 4, 5, 7]);
  assert.deepEqual(Array.from(new FeatureSelector(['*'], () => {}).indices(names)), [0, 1, 2, 3, 4, 5, 6, 7]);
});

test('FeatureSelector: resolved once per names array (the same array handed out for every event with it), again for another one; what is missing is said once per names array, exact names first in the order given', () => {
  const said: string[][] = [];
  const selector = new FeatureSelector(['s_nope', 'u_*', 's_events', 'v_*', 'zz'], (missing) => said.push(missing));
  const first = Object.freeze(['s_events', 'hour_sin']);
  const indices = selector.indices(first);
  assert.deepEqual(Array.from(indices), [0]);
  for (let event = 0; event < 3; event++) assert.equal(selector.indices(first), indices, 'the cached array');
  assert.deepEqual(said, [['s_nope', 'zz', 'u_*', 'v_*']]);
  const second = Object.freeze(['u_events', 's_events']);
  assert.deepEqual(Array.from(selector.indices(second)), [0, 1]);
  assert.deepEqual(said.at(-1), ['s_nope', 'zz', 'v_*']);
  assert.equal(said.length, 2);
});

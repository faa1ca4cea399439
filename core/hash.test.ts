import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fnv1a } from 'tributary';

test('fnv1a is FNV-1a, 32 bits (the published test vectors), and continues from a seed: hashed features and embeddings keep their buckets across versions', () => {
  assert.equal(fnv1a(''), 0x811c9dc5);
  assert.equal(fnv1a('a'), 0xe40c292c);
  assert.equal(fnv1a('foobar'), 0xbf9cf968);
  assert.equal(fnv1a('bar', fnv1a('foo')), fnv1a('foobar'));
});

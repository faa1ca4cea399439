import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eachOf, inParts, inTurns, PartedSnapshots, partsOf } from './turns.js';
import { stringifyInParts } from './runtime/parts.js';
import { countLoopTurns } from './testing.js';

test('parts of work running at once (stages snapshotting, the checkpoint serialiser) run one per turn of the event loop', async () => {
  const loop = countLoopTurns();
  /** The loop's turn at the start of every part but the first of each work (run at the call, as a checkpoint calls every stage's snapshot() at one instant). */
  const partStarts: number[] = [];
  function* stage(parts: number): Generator<void, number, void> {
    for (let k = 1; k < parts; k++) {
      yield;
      partStarts.push(loop.turns);
    }
    return parts;
  }
  // The serialiser ends a part at every full piece (1 MiB): each element is two, and its toJSON
  // runs at the start of a part.
  const long = 'x'.repeat(2 << 20);
  const body = Array.from({ length: 4 }, (_, k) => ({
    toJSON: () => {
      if (k > 0) partStarts.push(loop.turns);
      return long;
    },
  }));
  const [a, b, pieces] = await Promise.all([inTurns(stage(6)), new PartedSnapshots().take(stage(6)), stringifyInParts(body)]);
  loop.stop();
  assert.equal(a + b, 12);
  assert.equal(Buffer.concat(pieces).toString(), JSON.stringify([long, long, long, long]));
  assert.equal(partStarts.length, 5 + 5 + 3);
  const shared = partStarts.filter((turn, k) => partStarts.indexOf(turn) !== k);
  assert.deepEqual(shared, [], `turns that ran more than one part: ${partStarts.join(' ')}`);
});

test('partsOf and eachOf cover every row once, in order, in parts', async () => {
  const n = 200_000; // over TURN_ROWS
  const seen: number[] = [];
  const loop = countLoopTurns();
  await inParts(n, (from, to) => {
    for (let i = from; i < to; i++) seen.push(i);
  });
  assert.ok(loop.stop() >= 1);
  assert.equal(seen.length, n);
  assert.ok(seen.every((row, i) => row === i));

  const map = new Map(Array.from({ length: n }, (_, i) => [i, i * 2]));
  let sum = 0;
  let parts = 0;
  const work = eachOf(map.values(), (value) => (sum += value));
  while (!work.next().done) parts++;
  assert.ok(parts >= 2, `${parts + 1} parts`);
  assert.equal(sum, n * (n - 1));
  assert.equal([...partsOf(0, () => assert.fail('no rows'))].length, 0);
});

test('a snapshot in parts settled before the state changes holds the state of its call', async () => {
  const state = Array.from({ length: 100_000 }, (_, i) => i);
  const snapshots = new PartedSnapshots();
  const taken = snapshots.take(
    (function* () {
      const copy: number[] = [];
      yield* partsOf(state.length, (from, to) => {
        for (let i = from; i < to; i++) copy.push(state[i]!);
      });
      return copy;
    })(),
  );
  snapshots.settle(); // as a stage does before a record changes its state
  state.fill(-1);
  const copy = await taken;
  assert.equal(copy.length, 100_000);
  assert.ok(copy.every((value, i) => value === i));
});

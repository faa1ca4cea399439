import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Adwin, LossBlocks, PageHinkley, createDriftDetector, type AdwinConfig, type DriftDetectorKind, type DriftState } from './drift.js';
import { resolveConfig } from './config.js';
import { isSessionKeyOf, sessionKey } from 'tributary';
import { rng } from './testdata.js';

const riverDefaults: AdwinConfig = { delta: 0.002, clock: 32, max_buckets: 5, min_window_length: 5, grace_period: 10 };

/** Seeded normal values (Box-Muller). */
function normals(seed: number, count: number, mean: number, sd: number): number[] {
  const random = rng(seed);
  return Array.from({ length: count }, () => mean + sd * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));
}
function bernoullis(seed: number, count: number, p: number): number[] {
  const random = rng(seed);
  return Array.from({ length: count }, () => (random() < p ? 1 : 0));
}

/** Indices where the detector fired, and its window width just before and right after each. */
function run(adwin: Adwin, values: number[]): { at: number; before: number; after: number }[] {
  const detections: { at: number; before: number; after: number }[] = [];
  values.forEach((value, at) => {
    const before = adwin.windowWidth;
    if (adwin.update(value)) detections.push({ at, before: before + 1, after: adwin.windowWidth });
  });
  return detections;
}

test('adwin: an abrupt change in mean is detected within a bounded delay, and the window shrinks to about the values since it', () => {
  const values = [...normals(3, 1000, 0.2, 0.1), ...normals(4, 1000, 0.5, 0.1)];
  const detections = run(new Adwin(riverDefaults), values);
  assert.equal(detections.length, 1, JSON.stringify(detections));
  const { at, before, after } = detections[0]!;
  // Detected after the change, at one of the next two tests (every `clock` = 32 values).
  assert.ok(at >= 1000 && at < 1000 + 2 * riverDefaults.clock, `detected at ${at}`);
  assert.equal(before, at + 1);
  // The older part is dropped: what is left is the values since the change, to within the coarsest bucket dropped.
  assert.ok(after < before / 4, `window ${before} -> ${after}`);
  assert.ok(after >= at + 1 - 1000 - riverDefaults.clock && after <= 2 * (at + 1 - 1000) + 64, `window after ${after} for ${at + 1 - 1000} values since the change`);
});

test('adwin: Bernoulli rate changes both ways are detected; stationary streams are not flagged', () => {
  const changes = run(new Adwin(riverDefaults), [...bernoullis(5, 3000, 0.5), ...bernoullis(6, 3000, 0.2), ...bernoullis(7, 3000, 0.6)]);
  assert.equal(changes.length, 2, JSON.stringify(changes));
  assert.ok(changes[0]!.at >= 3000 && changes[0]!.at < 3600, `first at ${changes[0]!.at}`);
  assert.ok(changes[1]!.at >= 6000 && changes[1]!.at < 6600, `second at ${changes[1]!.at}`);
  for (const [seed, values] of [
    [8, bernoullis(8, 20_000, 0.2)],
    [9, normals(9, 20_000, 0.5, 0.2)],
    [10, bernoullis(10, 20_000, 0.04)],
  ] as const) {
    const adwin = new Adwin(riverDefaults);
    assert.deepEqual(run(adwin, values), [], `seed ${seed}`);
    assert.equal(adwin.windowWidth, 20_000);
    // Its mean is the stream's, though the older values sit in buckets of up to thousands.
    assert.ok(Math.abs(adwin.mean - values.reduce((a, b) => a + b, 0) / values.length) < 1e-9);
  }
});

test('adwin: the exponential histogram stays logarithmic in the window', () => {
  const adwin = new Adwin(riverDefaults);
  run(adwin, normals(11, 100_000, 0, 1));
  const buckets = adwin.state().rows.reduce((sum, [totals]) => sum + totals.length, 0);
  // At most max_buckets per row (between updates), rows up to log2(width).
  assert.ok(buckets <= riverDefaults.max_buckets * Math.ceil(Math.log2(100_000)), `${buckets} buckets`);
  assert.equal(adwin.windowWidth, 100_000);
});

test('adwin: a snapshot (JSON round trip) taken mid-stream restores to the same detections', () => {
  const values = [...bernoullis(12, 4000, 0.1), ...bernoullis(13, 4000, 0.4)];
  const whole = run(new Adwin(riverDefaults), values);
  assert.equal(whole.length, 1);
  // After the change, before its detection: the restored window must hold both sides of it.
  const cut = 4020;
  assert.ok(whole[0]!.at > cut);
  const first = new Adwin(riverDefaults);
  run(first, values.slice(0, cut));
  const restored = new Adwin(riverDefaults);
  restored.load(JSON.parse(JSON.stringify(first.state())) as DriftState);
  const rest = run(restored, values.slice(cut)).map((d) => ({ ...d, at: d.at + cut }));
  assert.deepEqual(rest, whole);
});

test('drift detectors: the config picks one; a snapshot of the other detector starts it afresh', () => {
  const adwin = createDriftDetector(resolveConfig({ drift: { detector: 'adwin' } }, 'm').drift);
  assert.ok(adwin instanceof Adwin);
  assert.ok(createDriftDetector(resolveConfig({}, 'm').drift) instanceof PageHinkley);
  // River's defaults for adwin, Page-Hinkley's own otherwise.
  const resolved = resolveConfig({ drift: { detector: 'adwin' } }, 'm').drift;
  assert.deepEqual([resolved.delta, resolved.clock, resolved.max_buckets, resolved.min_window_length, resolved.grace_period], [0.002, 32, 5, 5, 10]);
  assert.equal(resolveConfig({}, 'm').drift.delta, 0.01);

  const pageHinkley = new PageHinkley({ delta: 0.01, threshold: 2, min_instances: 20 });
  for (let i = 0; i < 50; i++) pageHinkley.update(0.5);
  for (let i = 0; i < 50; i++) adwin.update(0.5);
  const fromAdwin = adwin.state();
  adwin.load(pageHinkley.state());
  assert.equal((adwin as Adwin).windowWidth, 0);
  pageHinkley.load(fromAdwin);
  assert.deepEqual(pageHinkley.state(), new PageHinkley({ delta: 0.01, threshold: 2, min_instances: 20 }).state());
});

/**
 * An intent model's losses as its learner sees them: sessions (mostly short, a buyer's longer, a
 * heavy tail) whose predictions all take the session's one label and score alike, so their losses
 * rise and fall together. From `changeAt` labels on, the model's signal no longer fits (the
 * features' relation to purchase is reversed): the loss rises.
 */
function sessionLosses(seed: number, labels: number, changeAt = Infinity): [number, string][] {
  const random = rng(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const out: [number, string][] = [];
  for (let session = 0; out.length < labels; session++) {
    const intent = normal();
    const buys = random() < 1 / (1 + Math.exp(2 - 1.5 * intent));
    const meanSize = buys ? 12 : 3;
    const size = 1 + Math.floor(Math.log(1 - random()) / Math.log(1 - 1 / meanSize));
    const weight = out.length >= changeAt ? -0.3 : 1.5;
    for (let i = 0; i < size; i++) {
      const score = 1 / (1 + Math.exp(2 - weight * intent - 0.3 * normal()));
      out.push([-Math.log(buys ? score : 1 - score), `s${session}`]);
    }
  }
  return out;
}

/** Labels at which the detector (the config's defaults) fired, fed per label or per prediction. */
function drifts(detector: DriftDetectorKind, losses: [number, string][], feed: 'label' | 'prediction'): number[] {
  const config = resolveConfig({ drift: { detector } }, 'intent').drift;
  const drift = createDriftDetector(config);
  const blocks = new LossBlocks(config.block);
  const fired: number[] = [];
  losses.forEach(([loss, session], at) => {
    // Per prediction: every loss its own unit, as the learner fed them before.
    const mean = blocks.add(loss, feed === 'label' ? session : String(at));
    if (mean !== undefined && drift.update(mean)) fired.push(at);
  });
  return fired;
}

test('drift on a stationary stream of sessions: at most one false alarm in a million labels, each label read once, while single losses fired dozens of times', () => {
  for (const detector of ['page-hinkley', 'adwin'] as const) {
    for (const seed of [1, 2]) {
      const losses = sessionLosses(seed, 1_000_000);
      const fired = drifts(detector, losses, 'label');
      assert.ok(fired.length <= 1, `${detector}, seed ${seed}: fired at ${fired.join(', ')}`);
      // The cause: a block of single losses holds a few sessions' worth of independent values.
      if (detector === 'page-hinkley') assert.ok(drifts(detector, losses, 'prediction').length >= 10, 'per prediction, the same stream fires again and again');
    }
  }
});

test('drift: a real change (the model no longer fits) is still detected, within 20,000 labels, and only after it', () => {
  for (const detector of ['page-hinkley', 'adwin'] as const) {
    for (const seed of [3, 4]) {
      const changeAt = 200_000;
      const fired = drifts(detector, sessionLosses(seed, 400_000, changeAt), 'label');
      assert.ok(fired.length >= 1 && fired[0]! >= changeAt && fired[0]! < changeAt + 20_000, `${detector}, seed ${seed}: fired at ${fired.join(', ')}`);
    }
  }
});

test('loss blocks: a block is `size` labels, each the mean of its predictions\' losses; a snapshot taken within a label restores to the same blocks', () => {
  const blocks = new LossBlocks(2);
  // Labels a (3 predictions), b (1), c (2), d: a block closes when its last label's successor starts.
  const means = [[0.3, 'a'], [0.3, 'a'], [0.9, 'a'], [0.1, 'b'], [1, 'c'], [2, 'c'], [4, 'd']].map(([loss, unit]) => blocks.add(loss as number, unit as string));
  assert.deepEqual(means.map((mean) => (mean === undefined ? undefined : Number(mean.toFixed(6)))), [undefined, undefined, undefined, undefined, 0.3, undefined, undefined]);
  const saved = JSON.parse(JSON.stringify(blocks.state())) as ReturnType<LossBlocks['state']>;
  const restored = new LossBlocks(2);
  restored.load(saved);
  for (const copy of [blocks, restored]) {
    assert.equal(copy.add(4, 'd'), undefined);
    assert.equal(copy.add(0, 'e'), (1.5 + 4) / 2);
  }
  // A snapshot from before labels were units ([sum, count] of single losses) starts the block afresh.
  const old = new LossBlocks(2);
  old.load([12.5, 150]);
  assert.deepEqual(old.state(), new LossBlocks(2).state());
});

/**
 * Runs `steps` (LossBlocks calls, each returning a block's mean or undefined) on blocks of `size` whole, and, at
 * every cut, up to the cut, through a snapshot (JSON round trip) restored with the losses `toCome` there, then
 * the rest: each restored run must give the whole run's means. Returns the whole run's.
 */
function restoresAtEveryCut(size: number, steps: ((blocks: LossBlocks) => number | undefined)[], toCome: (cut: number) => string[]): (number | undefined)[] {
  const run = (blocks: LossBlocks, from: number, to: number, out: (number | undefined)[]): void => {
    for (let i = from; i < to; i++) out.push(steps[i]!(blocks));
  };
  const whole: (number | undefined)[] = [];
  run(new LossBlocks(size), 0, steps.length, whole);
  for (let cut = 0; cut <= steps.length; cut++) {
    const first = new LossBlocks(size);
    const out: (number | undefined)[] = [];
    run(first, 0, cut, out);
    const restored = new LossBlocks(size);
    restored.load(JSON.parse(JSON.stringify(first.state())) as ReturnType<LossBlocks['state']>, toCome(cut));
    run(restored, cut, steps.length, out);
    assert.deepEqual(out, whole, `cut ${cut}`);
  }
  return whole;
}

test('loss blocks: a label whose loss comes later (its prediction not scored yet) keeps its unit open until it comes, whatever other labels come between; a unit that waits is in the snapshot, its losses to come counted again at the restore', () => {
  // a: one loss now, two later (deferred); c: one now; b: one later; then a, b, a's later ones in batch order, d now.
  // Restored at any cut, given the losses still to come there (the learner's labelled samples waiting for their predictions).
  const toCome = (cut: number): string[] => [[], [], ['a'], ['a', 'a'], ['a', 'a'], ['a', 'a', 'b'], ['a', 'b'], ['a'], [], [], []][cut]!;
  const whole = restoresAtEveryCut(
    3,
    [
      (blocks) => blocks.add(1, 'a'),
      (blocks) => blocks.defer('a'),
      (blocks) => blocks.defer('a'),
      (blocks) => blocks.add(2, 'c'),
      (blocks) => blocks.defer('b'),
      (blocks) => blocks.addDeferred(3, 'a'),
      (blocks) => blocks.addDeferred(4, 'b'),
      (blocks) => blocks.addDeferred(undefined, 'a'), // not a probability: nothing scored, nothing more to wait for
      (blocks) => blocks.add(5, 'd'),
      (blocks) => blocks.add(0, 'e'),
    ],
    toCome,
  );
  // c, a (1 and 3: 2), b (4) close the block of three: (2 + 2 + 4) / 3, at b's unit's end (d's first loss). Before, a, c, a, b, a were five units.
  assert.deepEqual(whole, [undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, 8 / 3, undefined]);
  // Nothing waiting: the state is the five numbers it always was.
  assert.equal(new LossBlocks(3).state().length, 5);
});

test('page-hinkley is one-sided and forgets nothing (River\'s PageHinkley with mode up, alpha 1): a rise fires where the excess passes the threshold, a fall never', () => {
  const detections = (values: number[]): number[] => {
    const detector = new PageHinkley({ delta: 0, threshold: 1, min_instances: 1 });
    return values.flatMap((value, at) => (detector.update(value) ? [at] : []));
  };
  // 0, 0, 0, 2: the 4th moves the mean to 0.5 and adds 2 - 0.5 = 1.5 > 1 to the sum (its minimum 0).
  assert.deepEqual(detections([0, 0, 0, 2]), [3]);
  // 0, 0, 0, 1: 1 - 0.25 = 0.75, not above 1; a 5th 1 adds 1 - 0.4 = 0.6 (1.35 in all).
  assert.deepEqual(detections([0, 0, 0, 1, 1]), [4]);
  // The mirror image falls: the sum only goes down, and so does its minimum.
  assert.deepEqual(detections([2, 2, 2, 0, 0, 0, 0, 0]), []);
});

test('loss blocks: a unit labelled again (a late event reopened its session) counts once: its new losses join its mean while that is in the open block, and are left out once the detector read its block; kept until its `until`, in the snapshot', () => {
  // Block of 3: a (1), b (3), a again (5), c (0): a is one unit of mean 3, so the block is a, b, c: (3 + 3 + 0) / 3 at d.
  const open = new LossBlocks(3);
  const openMeans = [open.add(1, 'a', 100), open.add(3, 'b', 100), open.add(5, 'a', 100), open.add(0, 'c', 100), open.add(0, 'd', 100)];
  assert.deepEqual(openMeans, [undefined, undefined, undefined, undefined, 2]);
  // Block of 3 again, through every state a unit kept for a later label is in: a is taken out of the open block and put
  // back (mean 3); c's label waits for its loss; c, labelled again once its block was read (13 / 3), is left out.
  // Restored at any cut (the losses still to come given, as the learner does), the same blocks.
  const whole = restoresAtEveryCut(
    3,
    [
      (blocks) => blocks.add(1, 'a', 100),
      (blocks) => blocks.add(3, 'b', 100),
      (blocks) => blocks.add(5, 'a', 100),
      (blocks) => blocks.defer('c', 100),
      (blocks) => blocks.add(9, 'd'),
      (blocks) => blocks.addDeferred(7, 'c'),
      (blocks) => blocks.add(4, 'c', 100),
      (blocks) => blocks.add(0, 'e'),
      (blocks) => blocks.add(2, 'f'),
      (blocks) => blocks.add(0, 'g'),
    ],
    (cut) => (cut === 4 || cut === 5 ? ['c'] : []),
  );
  // Before, a's and c's second runs were units of their own: a (1), b (3), a (5) made the first block (3, at c's label).
  assert.deepEqual(whole, [undefined, undefined, undefined, undefined, undefined, 13 / 3, undefined, undefined, undefined, 11 / 3]);
  // Once the watermark passes its until, a unit is let go: a later label of it is a unit again.
  const released = new LossBlocks(2);
  released.add(1, 'a', 100);
  released.add(3, 'b', 100);
  released.release(101);
  assert.equal(released.add(5, 'a'), 2);
  assert.equal(released.add(0, 'g'), undefined, 'a (5) is a unit of the next block');
  assert.equal(released.add(0, 'h'), 2.5);
  // Kept to the until itself.
  const kept = new LossBlocks(2);
  kept.add(1, 'a', 100);
  kept.add(3, 'b', 100);
  kept.release(100);
  kept.add(5, 'a');
  assert.equal(kept.add(0, 'g'), undefined);
  assert.equal(kept.add(0, 'h'), undefined, 'a left out: g is the only unit of the block');
  // A snapshot from before units were kept (five numbers, or six) restores, keeping none.
  const old = new LossBlocks(2);
  old.load([1, 1, 3, 1, 'b', []]);
  assert.deepEqual(old.state(), [1, 1, 3, 1, 'b']);
});

test('loss blocks: renew (a new session under a key whose session was labelled) makes the next labels of that key a unit of their own: the kept unit is not taken up again, and an open run of it ends', () => {
  // a closed into the open block and kept for a later label; renewed, a's next label is another unit: a, b, a fill the block.
  const kept = new LossBlocks(3);
  assert.equal(kept.add(1, 'a', 100), undefined);
  assert.equal(kept.add(2, 'b'), undefined);
  assert.equal(kept.renew('a'), undefined);
  assert.equal(kept.add(3, 'a', 100), undefined);
  assert.equal(kept.add(4, 'c'), 2, 'the means of a (1), b (2) and the new a (3)');
  // a's run still open: renew ends it (its mean into the block), and the next a starts another.
  const open = new LossBlocks(2);
  assert.equal(open.add(1, 'a'), undefined);
  assert.equal(open.renew('a'), undefined);
  assert.equal(open.add(5, 'a'), undefined);
  assert.equal(open.add(0, 'b'), 3, 'the means of a (1) and the new a (5)');
});

test('loss blocks: retire renames a run still waiting for losses, so that a new session under its key (renew) is a unit of its own, and the losses still to come close the old one; a snapshot anywhere restores to the same blocks', () => {
  // a labelled twice before its predictions were scored (open, then waiting once b starts); a new a's label; a's losses come in as a~.
  const steps: ((blocks: LossBlocks) => number | undefined)[] = [
    (b) => b.defer('a'),
    (b) => b.defer('a'),
    (b) => (b.retire('a', 'a~'), b.renew('a')),
    (b) => b.add(5, 'b'),
    (b) => b.add(7, 'a'),
    (b) => b.addDeferred(1, 'a~'),
    (b) => b.addDeferred(3, 'a~'),
    (b) => b.add(0, 'c'),
  ];
  // The losses still to come at each cut, under the key their samples carry then.
  const toCome = (cut: number): string[] => [[], ['a'], ['a', 'a'], ['a~', 'a~'], ['a~', 'a~'], ['a~', 'a~'], ['a~'], [], []][cut]!;
  const means = restoresAtEveryCut(3, steps, toCome);
  // b (5), the new a (7), the old a (2): one block of three units. Before: a's one unit (1, 3 and 7) beside b.
  assert.deepEqual(means, [undefined, undefined, undefined, undefined, undefined, undefined, undefined, (5 + 7 + 2) / 3]);
  const blocks = new LossBlocks(3);
  blocks.defer('a');
  assert.equal(blocks.awaits('a'), true);
  blocks.retire('a', 'a~');
  assert.deepEqual([blocks.awaits('a'), blocks.awaits('a~')], [false, true]);
});

test('loss blocks: merge (a late event merged session a into e) makes a\'s losses part of e\'s unit where both are in reach: a\'s mean taken out of the open block, e\'s put back over both; a unit in a block the detector read stays', () => {
  // e and a closed into the open block, kept; merged: one unit, mean (1 + 3 + 5) / 3; b fills the block of 2.
  const closedEAndA = (size: number): LossBlocks => {
    const blocks = new LossBlocks(size);
    blocks.add(1, 'e', 100);
    blocks.add(3, 'a', 100);
    blocks.add(5, 'a', 100);
    return blocks;
  };
  const both = closedEAndA(2);
  assert.equal(both.add(0, 'x'), 2.5, 'without a merge the block of 2 is e (1) and a (4)');
  const merged = closedEAndA(3);
  merged.add(0, 'b');
  merged.merge('a', 'e');
  assert.equal(merged.add(6, 'c'), undefined, 'e (with a) and b: two units, not three');
  assert.equal(merged.add(0, 'd'), 3, 'the means of e with a (3), b (0) and c (6)');
  // a's run still open: its losses join e's mean in the open block.
  const open = new LossBlocks(2);
  open.add(2, 'e', 100);
  open.add(4, 'a');
  open.merge('a', 'e');
  assert.equal(open.add(0, 'b'), undefined, 'a\'s run ended in e');
  assert.equal(open.add(1, 'c'), 1.5, 'the means of e with a (3) and b (0)');
  // e's block read already: a stays a unit of its own.
  const read = new LossBlocks(1);
  assert.equal(read.add(2, 'e', 100), undefined);
  assert.equal(read.add(4, 'a', 100), 2);
  read.merge('a', 'e');
  assert.equal(read.add(0, 'b'), 4, 'a is its own unit still');
});

test('loss blocks: merge joins a run still waiting for losses (labelled before its batch ran) to the merged session\'s unit, whose mean leaves the open block until they come; a snapshot anywhere restores to the same blocks (was: a unit of its own beside it)', () => {
  // e closed into the open block (kept), x after it; a labelled before its prediction was scored, waiting once y starts;
  // a merged into e; a's loss comes (under e, as the learner tags its sample); z ends y's run.
  const steps: ((blocks: LossBlocks) => number | undefined)[] = [
    (b) => b.add(1, 'e', 100),
    (b) => b.add(2, 'x'),
    (b) => b.defer('a', 100),
    (b) => b.add(4, 'y'),
    (b) => (b.merge('a', 'e'), undefined),
    (b) => b.addDeferred(3, 'e'),
    (b) => b.add(0, 'z'),
  ];
  const toCome = (cut: number): string[] => [[], [], [], ['a'], ['a'], ['e'], [], []][cut]!;
  const means = restoresAtEveryCut(3, steps, toCome);
  // e with a (2), x (2), y (4). Before: e (1), x (2) and a (3), a block at a's loss.
  assert.deepEqual(means, [undefined, undefined, undefined, undefined, undefined, undefined, (2 + 2 + 4) / 3]);
  // Told whether a's losses still to come go on as e's (the learner tags their samples so).
  const blocks = new LossBlocks(3);
  blocks.defer('a');
  assert.equal(blocks.merge('a', 'e'), false, 'e in no run nor the open block: a stays');
  blocks.add(1, 'e', 100);
  assert.equal(blocks.merge('a', 'e'), true);
  assert.deepEqual([blocks.awaits('a'), blocks.awaits('e')], [false, true]);
});

test("loss blocks: rekey (an erasure request) renames a user's units, open, waiting or kept for a relabel, so no key of the state names them; the blocks' means are as without it", () => {
  const u = (id: string): string => sessionKey('erased-user', id);
  const v = sessionKey('other-user', 's1');
  const fill = (blocks: LossBlocks): (number | undefined)[] => [blocks.add(1, u('s1'), 100), blocks.add(3, v, 100), blocks.defer(u('s2')), blocks.add(2, v, 100)];
  const plain = new LossBlocks(3);
  const erased = new LossBlocks(3);
  assert.deepEqual(fill(erased), fill(plain));
  let n = 0;
  assert.equal(erased.rekey((key) => isSessionKeyOf(key, 'erased-user'), () => `erased:${++n}`), 2);
  assert.ok(!JSON.stringify(erased.state()).includes('erased-user'), JSON.stringify(erased.state()));
  assert.ok(JSON.stringify(plain.state()).includes('erased-user'), 'the plain one names the user: the check above sees keys');
  // The user's deferred loss still closes its unit (under its new key), and the block closes as it would have.
  assert.equal(erased.addDeferred(4, 'erased:2'), plain.addDeferred(4, u('s2')));
  assert.equal(erased.add(6, v, 100), plain.add(6, v, 100));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsHub, watermark, type ClickEvent, type Element, isSessionSummary, type StreamRecord } from 'tributary';
import { runOperator, testContext, until } from 'tributary/testing';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import intentModel, { type IntentModelConfig } from './intent.js';
import churnModel from './churn.js';
import { calibrationError, exactAuc, logLoss, Prequential } from './prequential.js';
import { event, rng, separableIntentStream, summary } from './testdata.js';
import { modelOperatorProperties } from './config.js';
import { defineModel } from './define.js';
import { scoreNotes } from './score-notes.js';
import sessionizer from '../operators/sessionizer.js';
import sessionFeatures from '../operators/session-features.js';
import { Chain, stage } from '../operators/harness.js';
import { day, base, of, reportOf, shiftingIntentStream } from './models-test-helpers.js';

test('exactAuc: equals counting every pair (ties half), whichever class is the smaller, on the first `count` only', () => {
  let seed = 3;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const rate of [0.1, 0.5, 0.9]) {
    for (const n of [2, 7, 300]) {
      // Scores on a coarse grid, so ties are common.
      const scores = Array.from({ length: n + 5 }, () => Math.round(random() * 20) / 20);
      const labels = scores.map(() => (random() < rate ? 1 : 0));
      let won = 0;
      let positives = 0;
      for (let i = 0; i < n; i++) {
        if (!labels[i]) continue;
        positives++;
        for (let j = 0; j < n; j++) if (!labels[j]) won += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
      const negatives = n - positives;
      assert.equal(exactAuc(scores, labels, n), positives && negatives ? won / (positives * negatives) : null);
    }
  }
});

test('prequential metrics match a hand-computed example', () => {
  const scores = [0.9, 0.8, 0.3, 0.6, 0.2];
  const labels = [1, 0, 1, 1, 0];
  const metrics = new Prequential(3, 2);
  scores.forEach((s, i) => metrics.add(s, labels[i]!, i));
  const s = metrics.summary();
  // Positives 0.9, 0.3, 0.6 against negatives 0.8, 0.2: 4 of 6 pairs ordered right.
  assert.equal(s.auc, 4 / 6);
  assert.equal(exactAuc(scores, labels), 4 / 6);
  const expectedLoss = -(Math.log(0.9) + Math.log(0.2) + Math.log(0.3) + Math.log(0.6) + Math.log(0.8)) / 5;
  assert.ok(Math.abs(s.logloss - expectedLoss) < 1e-12);
  assert.ok(Math.abs(s.brier - (0.01 + 0.64 + 0.49 + 0.16 + 0.04) / 5) < 1e-12);
  assert.equal(s.baseRate, 0.6);
  // Window of the last 3: 0.3 (1), 0.6 (1), 0.2 (0): both positives above the negative.
  assert.equal(s.window.auc, 1);
  assert.equal(s.window.n, 3);
  // Calibration in two bins: [0, .5) holds 0.3, 0.2; [.5, 1] holds 0.9, 0.8, 0.6.
  const bins = metrics.calibrationTable();
  assert.deepEqual(bins.map((b) => b.count), [2, 3]);
  assert.ok(Math.abs(bins[1]!.positiveRate - 2 / 3) < 1e-12);
  // Ties count half.
  assert.equal(exactAuc([0.5, 0.5], [1, 0]), 0.5);
});

test('calibration error matches a hand-computed example: ECE weighs each bin\'s gap by its share of the labels, the max gap is the largest of a bin holding one; none before a label', () => {
  const scores = [0.9, 0.8, 0.3, 0.6, 0.2];
  const labels = [1, 0, 1, 1, 0];
  const two = new Prequential(3, 2);
  scores.forEach((s, i) => two.add(s, labels[i]!, i));
  // [0, .5): 0.3 (1), 0.2 (0): mean 0.25, rate 1/2, gap 0.25. [.5, 1]: 0.9 (1), 0.8 (0), 0.6 (1): mean 2.3/3, rate 2/3, gap 0.1.
  // ECE = 2/5 * 0.25 + 3/5 * 0.1 = 0.16; max gap 0.25.
  const error = calibrationError(two.calibrationTable())!;
  assert.ok(Math.abs(error.ece - 0.16) < 1e-12, `ECE ${error.ece}`);
  assert.ok(Math.abs(error.maxGap - 0.25) < 1e-12, `max gap ${error.maxGap}`);
  // Five bins, two of them empty: [.2, .4) 0.2 (0), 0.3 (1): gap 0.25; [.6, .8) 0.6 (1): gap 0.4; [.8, 1] 0.9 (1), 0.8 (0): mean 0.85, rate 1/2, gap 0.35.
  // ECE = (2 * 0.25 + 1 * 0.4 + 2 * 0.35) / 5 = 0.32; max gap 0.4, the bin of one label.
  const five = new Prequential(3, 5);
  scores.forEach((s, i) => five.add(s, labels[i]!, i));
  assert.deepEqual(five.calibrationTable().map((bin) => bin.count), [0, 2, 0, 1, 2]);
  const fiveError = calibrationError(five.calibrationTable())!;
  assert.ok(Math.abs(fiveError.ece - 0.32) < 1e-12, `ECE ${fiveError.ece}`);
  assert.ok(Math.abs(fiveError.maxGap - 0.4) < 1e-12, `max gap ${fiveError.maxGap}`);
  // Perfectly calibrated: every bin's mean is its rate.
  assert.deepEqual(calibrationError([{ lower: 0, upper: 0.5, count: 4, meanScore: 0.25, positiveRate: 0.25 }, { lower: 0.5, upper: 1, count: 2, meanScore: 0.5, positiveRate: 0.5 }]), { ece: 0, maxGap: 0 });
  // Before the first label there is no gap to measure (a 0 would read as perfect).
  assert.equal(calibrationError(new Prequential(3, 5).calibrationTable()), null);
});

test("a model's model_metrics record says its calibration error over its bins (the figure its model_calibration_error gauge exports), null before a label", async () => {
  const hub = new MetricsHub();
  const { output } = await runOperator(intentModel, { ...base, report: true }, separableIntentStream(300), testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'intent' }) }));
  const record = reportOf(output);
  assert.ok(record.summary.n > 0);
  // By hand from the record's own bins.
  const gaps = record.calibration.filter((bin) => bin.count > 0).map((bin) => ({ count: bin.count, gap: Math.abs(bin.meanScore - bin.positiveRate) }));
  const ece = gaps.reduce((sum, bin) => sum + (bin.count / record.summary.n) * bin.gap, 0);
  assert.ok(Math.abs(record.calibrationError!.ece - ece) < 1e-12, `${record.calibrationError?.ece} vs ${ece}`);
  assert.equal(record.calibrationError!.maxGap, Math.max(...gaps.map((bin) => bin.gap)));
  const gauge = Number(/^tributary_model_calibration_error\{pipeline="p",stage="intent",model="under-test"\} (\S+)$/m.exec(await hub.registry.metrics())?.[1]);
  assert.ok(Math.abs(gauge - record.calibrationError!.ece) < 1e-12, `gauge ${gauge}`);
  const t = Date.parse('2024-01-01T00:00:00Z');
  const unlabelled = await runOperator(intentModel, { ...base, report: true }, [event('a', 'a1', t, 0, t, 'view'), watermark(Infinity)]);
  assert.equal(reportOf(unlabelled.output).calibrationError, null);
});

test('log loss clips scores to [1e-7, 1 - 1e-7]: a confident miss costs -ln(1e-7) = 16.118 at most, a confident hit about 1e-7', () => {
  const most = -Math.log(1e-7);
  for (const [score, label] of [[0, 1], [1e-10, 1], [1, 0], [1 - 1e-10, 0]] as const) assert.ok(Math.abs(logLoss(score, label) - most) < 1e-8, `${score}, ${label}`);
  assert.ok(Math.abs(most - 16.118095651) < 1e-9);
  assert.ok(Math.abs(logLoss(1, 1) - 1e-7) < 1e-13 && Math.abs(logLoss(0, 0) - 1e-7) < 1e-13);
  // Within the clip a score is taken as it is.
  assert.equal(logLoss(1e-6, 1), -Math.log(1e-6));
  // All-one-class windows have no AUC; the other figures do.
  const metrics = new Prequential(4, 2);
  for (const score of [0, 1, 0.5]) metrics.add(score, 0, 0);
  const w = metrics.summary().window;
  assert.deepEqual([w.auc, metrics.summary().auc, w.baseRate], [null, null, 0]);
  assert.ok(Math.abs(w.brier - (0 + 1 + 0.25) / 3) < 1e-12);
});

/** Pairs won by brute force over labels [0, n): `sameBinHalf(i, j)` says a pair counts half whatever its order. */
function bruteForceWon(scores: number[], labels: number[], n: number, sameBinHalf: (i: number, j: number) => boolean = () => false): number {
  let won = 0;
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < j; i++) {
      if (labels[i] === labels[j]) continue;
      const [p, q] = labels[i] ? [scores[i]!, scores[j]!] : [scores[j]!, scores[i]!];
      won += sameBinHalf(i, j) ? 0.5 : p > q ? 1 : p === q ? 0.5 : 0;
    }
  }
  return won;
}

/** `metrics.exact_auc_limit` for the tests of the exact cumulative AUC (by default it is binned). */
const exactLimit = 1_000_000;

/** Scores that tie often and often share a bin of 1/65,536 without tying (the binned AUC got those wrong). */
function crowdedScore(random: () => number, label: number): number {
  const centre = Math.floor(Math.min(0.99, Math.max(0, 0.4 + (label ? 0.15 : 0) + (random() - 0.5) * 0.6)) * 40) / 40;
  // One of 6 scores within the bin above the centre (float32 like the tf models', or not): ties and near-ties.
  const within = Math.floor(random() * 6) * 2e-6;
  return random() < 0.5 ? Math.fround(centre + within) : centre + within;
}

test('prequential: the cumulative AUC is exact (ties half, scores within one bin ordered) on random streams, also after a restore', () => {
  for (const [seed, rate, n] of [[3, 0.2, 1500], [5, 0.5, 800], [7, 0.9, 800], [11, 0.03, 1500]] as const) {
    const random = rng(seed);
    const metrics = new Prequential(50, 10, exactLimit);
    const scores: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const label = random() < rate ? 1 : 0;
      const score = crowdedScore(random, label);
      metrics.add(score, label, i);
      scores.push(score);
      labels.push(label);
      if (i % 97 === 0 || i === n - 1) {
        const positives = labels.filter((l) => l).length;
        const expected = positives && positives <= i ? bruteForceWon(scores, labels, i + 1) / (positives * (i + 1 - positives)) : null;
        assert.equal(metrics.cumulativeAuc(), expected, `seed ${seed} after ${i + 1} labels`);
        assert.equal(metrics.cumulativeAucByPass(), expected);
      }
    }
    assert.equal(metrics.cumulativeAuc(), exactAuc(scores, labels));
    assert.equal(metrics.summary().aucExact, true);
    // Distinct scores only: the stream's scores repeat.
    assert.equal(metrics.exactAucScores, new Set(scores).size);
    const restored = new Prequential(50, 10, exactLimit);
    restored.load(JSON.parse(JSON.stringify(metrics.state())) as ReturnType<Prequential['state']>);
    assert.equal(restored.cumulativeAuc(), metrics.cumulativeAuc());
    for (let i = 0; i < 300; i++) {
      const label = random() < rate ? 1 : 0;
      const score = crowdedScore(random, label);
      restored.add(score, label, n + i);
      metrics.add(score, label, n + i);
      scores.push(score);
      labels.push(label);
    }
    assert.equal(restored.cumulativeAuc(), metrics.cumulativeAuc());
    assert.equal(restored.cumulativeAuc(), exactAuc(scores, labels));
    assert.deepEqual(restored.state(), metrics.state());
  }
});

test('prequential: by default the cumulative AUC is binned (pairs within a bin of 1/65,536 half) and keeps no scores', () => {
  const random = rng(19);
  const metrics = new Prequential(50, 10);
  const scores: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < 800; i++) {
    const label = random() < 0.3 ? 1 : 0;
    const score = crowdedScore(random, label);
    metrics.add(score, label, i);
    scores.push(score);
    labels.push(label);
  }
  const bin = (s: number): number => Math.floor(s * 65536);
  const positives = labels.filter((l) => l).length;
  assert.equal(metrics.cumulativeAuc(), bruteForceWon(scores, labels, 800, (i, j) => bin(scores[i]!) === bin(scores[j]!)) / (positives * (800 - positives)));
  assert.equal(metrics.exactAucScores, 0);
  assert.equal(metrics.summary().aucExact, false);
});

test('prequential: past exact_auc_limit distinct scores the cumulative AUC frees them and counts later pairs within a bin half', () => {
  const random = rng(13);
  const limit = 40;
  const metrics = new Prequential(50, 10, limit);
  const scores: number[] = [];
  const labels: number[] = [];
  const distinct = new Set<number>();
  let binnedFrom = -1;
  for (let i = 0; i < 1200; i++) {
    const label = random() < 0.3 ? 1 : 0;
    const score = crowdedScore(random, label);
    if (!distinct.has(score) && distinct.size === limit && binnedFrom < 0) binnedFrom = i;
    distinct.add(score);
    metrics.add(score, label, i);
    scores.push(score);
    labels.push(label);
    // Memory stays bounded: never more distinct scores than the limit, none once past it.
    assert.ok(metrics.exactAucScores <= limit);
    assert.equal(metrics.summary().aucExact, binnedFrom < 0);
  }
  assert.ok(binnedFrom > 0);
  assert.equal(metrics.exactAucScores, 0);
  const bin = (s: number): number => Math.floor(s * 65536);
  const positives = labels.filter((l) => l).length;
  const won = bruteForceWon(scores, labels, scores.length, (i, j) => j >= binnedFrom && bin(scores[i]!) === bin(scores[j]!));
  assert.equal(metrics.cumulativeAuc(), won / (positives * (scores.length - positives)));
  // Still binned after a restore.
  const restored = new Prequential(50, 10, limit);
  restored.load(JSON.parse(JSON.stringify(metrics.state())) as ReturnType<Prequential['state']>);
  restored.add(0.5, 1, 1200);
  metrics.add(0.5, 1, 1200);
  assert.equal(restored.cumulativeAuc(), metrics.cumulativeAuc());
  assert.equal(restored.summary().aucExact, false);
});

test('prequential: a snapshot from before the exact AUC (bins only) restores its binned figure and carries on', () => {
  const random = rng(17);
  const metrics = new Prequential(50, 10, exactLimit);
  const scores: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < 600; i++) {
    const label = random() < 0.3 ? 1 : 0;
    const score = crowdedScore(random, label);
    metrics.add(score, label, i);
    scores.push(score);
    labels.push(label);
  }
  const { auc: _exact, ...old } = metrics.state();
  const restored = new Prequential(50, 10, exactLimit);
  restored.load(JSON.parse(JSON.stringify(old)) as ReturnType<Prequential['state']>);
  // The old snapshot's own figure: pairs within one bin counted half.
  const bin = (s: number): number => Math.floor(s * 65536);
  const binnedWon = (n: number): number => bruteForceWon(scores, labels, n, (i, j) => bin(scores[i]!) === bin(scores[j]!));
  let positives = labels.filter((l) => l).length;
  assert.equal(restored.cumulativeAuc(), binnedWon(600) / (positives * (600 - positives)));
  assert.notEqual(restored.cumulativeAuc(), metrics.cumulativeAuc());
  // Later labels are compared with the restored ones at their bin's midpoint, and exactly with each other.
  const midpoint = (s: number): number => (bin(s) + 0.5) / 65536;
  const compared = scores.map(midpoint);
  for (let i = 0; i < 300; i++) {
    const label = random() < 0.3 ? 1 : 0;
    const score = crowdedScore(random, label);
    restored.add(score, label, 600 + i);
    compared.push(score);
    labels.push(label);
  }
  positives = labels.filter((l) => l).length;
  const won = bruteForceWon(compared, labels, compared.length, (i, j) => j < 600 && bin(scores[i]!) === bin(scores[j]!));
  assert.equal(restored.cumulativeAuc(), won / (positives * (labels.length - positives)));
  // Its pairs were counted binned: not exact, though later ones are.
  assert.equal(restored.summary().aucExact, false);
  assert.match(restored.aucNote(), /exact since/);
});

/** `count` labels of crowded scores from `random`, added to each of `metrics`, and to `scores` and `labels`. */
function addCrowded(random: () => number, count: number, scores: number[], labels: number[], ...metrics: Prequential[]): void {
  for (let i = 0; i < count; i++) {
    const label = random() < 0.3 ? 1 : 0;
    const score = crowdedScore(random, label);
    for (const m of metrics) m.add(score, label, scores.length);
    scores.push(score);
    labels.push(label);
  }
}

const checkpointed = (metrics: Prequential): ReturnType<Prequential['state']> => JSON.parse(JSON.stringify(metrics.state())) as ReturnType<Prequential['state']>;

test('prequential: a checkpoint of the binned AUC (limit 0) restored under exact_auc_limit N keeps its binned pairs, counts later ones exactly, and says so', () => {
  const random = rng(23);
  const scores: number[] = [];
  const labels: number[] = [];
  const binned = new Prequential(50, 10);
  addCrowded(random, 600, scores, labels, binned);
  const restored = new Prequential(50, 10, exactLimit);
  restored.load(checkpointed(binned));
  assert.equal(restored.cumulativeAuc(), binned.cumulativeAuc());
  assert.equal(restored.summary().aucExact, false);
  assert.equal(restored.aucNote(), ' (binned until it resumed from a checkpoint taken with metrics.exact_auc_limit 0, exact since)');
  // Later labels: exact with each other and against the restored ones at their bin's midpoint.
  addCrowded(random, 300, scores, labels, restored);
  const bin = (s: number): number => Math.floor(s * 65536);
  const compared = scores.map((s, i) => (i < 600 ? (bin(s) + 0.5) / 65536 : s));
  const positives = labels.filter((l) => l).length;
  const won = bruteForceWon(compared, labels, labels.length, (i, j) => j < 600 && bin(scores[i]!) === bin(scores[j]!));
  assert.equal(restored.cumulativeAuc(), won / (positives * (labels.length - positives)));
  assert.ok(restored.exactAucScores > 0);
  // Checkpointed again under the same limit: still said to be partly binned, and as uninterrupted.
  const again = new Prequential(50, 10, exactLimit);
  again.load(checkpointed(restored));
  assert.equal(again.summary().aucExact, false);
  assert.equal(again.aucNote(), restored.aucNote());
  assert.deepEqual(again.state(), restored.state());
  // A checkpoint taken before any pair was counted binned nothing.
  const empty = new Prequential(50, 10, exactLimit);
  empty.load(checkpointed(new Prequential(50, 10)));
  assert.equal(empty.summary().aucExact, true);
  assert.equal(empty.aucNote(), '');
  // One taken when the labels were all of one class counted no pair, but its labels stand at their
  // bin's midpoint: a tie with them is not counted as exactly as a run that never stopped counts it.
  const oneClass = new Prequential(50, 10);
  for (let i = 0; i < 3; i++) oneClass.add(0.5, 0, i);
  const restoredOneClass = new Prequential(50, 10, exactLimit);
  restoredOneClass.load(checkpointed(oneClass));
  restoredOneClass.add(0.5, 1, 3);
  assert.equal(restoredOneClass.summary().aucExact, false);
  assert.match(restoredOneClass.aucNote(), /binned until it resumed from a checkpoint/);
});

test('prequential: a checkpoint restored under a lower exact_auc_limit (or 0) goes binned and says why; under a higher one after passing its own, exact again', () => {
  const random = rng(29);
  const scores: number[] = [];
  const labels: number[] = [];
  const exact = new Prequential(50, 10, exactLimit);
  addCrowded(random, 600, scores, labels, exact);
  assert.ok(exact.exactAucScores > 40);
  // Limit 0: binned by config, as the docs say; nothing to add to the summary line.
  const off = new Prequential(50, 10, 0);
  off.load(checkpointed(exact));
  assert.equal(off.cumulativeAuc(), exact.cumulativeAuc());
  assert.deepEqual([off.summary().aucExact, off.aucNote(), off.exactAucScores], [false, '', 0]);
  // Fewer distinct scores allowed than the checkpoint holds: this run's limit is passed.
  const lower = new Prequential(50, 10, 40);
  lower.load(checkpointed(exact));
  assert.deepEqual([lower.summary().aucExact, lower.aucNote(), lower.exactAucScores], [false, ' (binned past metrics.exact_auc_limit)', 0]);
  // Past 40 in the run that saved it, restored under a higher limit: exact from the restore on, and said.
  addCrowded(random, 10, scores, labels, lower);
  const higher = new Prequential(50, 10, exactLimit);
  higher.load(checkpointed(lower));
  assert.equal(higher.cumulativeAuc(), lower.cumulativeAuc());
  assert.deepEqual([higher.summary().aucExact, higher.aucNote()], [false, ' (binned past metrics.exact_auc_limit 40 before it resumed from a checkpoint, exact since)']);
  assert.ok(higher.exactAucScores > 0);
  // Under the limit it passed: binned still, as a run that never stopped.
  const same = new Prequential(50, 10, 40);
  same.load(checkpointed(lower));
  addCrowded(random, 100, scores, labels, same, lower);
  assert.deepEqual(same.state(), lower.state());
  assert.equal(same.aucNote(), ' (binned past metrics.exact_auc_limit)');
});

test('a model resumed under another metrics.exact_auc_limit says in its summary line how its AUC was counted', async () => {
  const input = separableIntentStream(200, 3);
  const cut = 500;
  const summaryLine = async (savedUnder: number, resumedUnder: number): Promise<string> => {
    const first = await runOperator(intentModel, { ...base, metrics: { exact_auc_limit: savedUnder } }, input.slice(0, cut));
    const lines: string[] = [];
    const context = testContext();
    const log = (_: unknown, message?: string) => void (message?.includes('prequential AUC') && lines.push(message));
    const logged = { ...context, logger: { ...context.logger, info: log, warn: log } } as typeof context;
    await runOperator(intentModel, { ...base, metrics: { exact_auc_limit: resumedUnder } }, input.slice(cut), logged, { restore: first.state });
    assert.equal(lines.length, 1);
    return lines[0]!;
  };
  assert.match(await summaryLine(0, 1_000_000), /AUC \d\.\d+ \(binned until it resumed from a checkpoint taken with metrics\.exact_auc_limit 0, exact since\),/);
  assert.match(await summaryLine(10, 1_000_000), /AUC \d\.\d+ \(binned past metrics\.exact_auc_limit 10 before it resumed from a checkpoint, exact since\),/);
  assert.match(await summaryLine(1_000_000, 10), /AUC \d\.\d+ \(binned past metrics\.exact_auc_limit\),/);
  assert.match(await summaryLine(1_000_000, 0), /AUC \d\.\d+, log loss/);
});

test('a model that got no label says its scores are n/a in its summary line, not a perfect log loss 0', async () => {
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  const context = testContext();
  const log = (fields: unknown, message?: string) => void (message?.includes('prequential AUC') && lines.push({ fields: fields as Record<string, unknown>, message }));
  const logged = { ...context, logger: { ...context.logger, info: log, warn: log } } as typeof context;
  // No session closes (the end-of-input watermark kept), so no prediction is ever labelled.
  const events = separableIntentStream(20).filter((r) => r.kind !== 'session');
  await runOperator(intentModel, base, events, logged);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!.message, /: 0 labels .*prequential AUC n\/a \(no label\), log loss n\/a, Brier n\/a$/);
  assert.deepEqual([lines[0]!.fields.auc, lines[0]!.fields.logloss, lines[0]!.fields.brier, lines[0]!.fields.scoreReason], [null, null, null, 'no label']);
});

test("a model whose last metrics.window labels are of one class still gives their log loss in its summary line and record (was: the line's whole 'last N labels' part left out, and no recentLogloss field at all)", async () => {
  // Buyers only in the first 150 sessions: the last metrics.window labels are all negatives, their AUC undefined.
  const stream = separableIntentStream(300);
  const sessionOf = (e: Element): string | undefined => (e.kind === 'event' ? (e as ClickEvent).session?.id : isSessionSummary(e) ? e.sessionId : undefined);
  const lateBuyers = new Set(stream.flatMap((e) => (isSessionSummary(e) && e.purchased && Number(e.sessionId.slice(1)) >= 150 ? [e.sessionId] : [])));
  const input = stream.filter((e) => !lateBuyers.has(sessionOf(e) ?? ''));
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  const context = testContext();
  const log = (fields: unknown, message?: string) => void (message?.includes('prequential AUC') && lines.push({ fields: fields as Record<string, unknown>, message }));
  const logged = { ...context, logger: { ...context.logger, info: log, warn: log } } as typeof context;
  const { output } = await runOperator(intentModel, { ...base, report: true, metrics: { window: 50 } }, input, logged);
  const { summary: scores } = reportOf(output);
  assert.equal(scores.window.auc, null);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!.message, new RegExp(`; last 50 labels: AUC n/a \\(one class\\), log loss ${scores.window.logloss.toFixed(3)}$`));
  assert.deepEqual([lines[0]!.fields.recentAuc, lines[0]!.fields.recentLabels, lines[0]!.fields.recentLogloss], [null, 50, scores.window.logloss]);
});

test("a model says why its AUC measures nothing learnt, beside it in its end-of-run log line and in its model_metrics record (scoreReason, scoreNotes), as a backtest shows them; a custom model that diverged is not told to lower an optimizer.learning_rate it has not (was: a bare 'prequential AUC 0.500', and a record without a word why)", async () => {
  const summaryLines = (): { lines: { fields: Record<string, unknown>; message: string }[]; errors: string[]; logged: ReturnType<typeof testContext> } => {
    const lines: { fields: Record<string, unknown>; message: string }[] = [];
    const errors: string[] = [];
    const context = testContext();
    const log = (fields: unknown, message?: string) => void (message?.includes('prequential AUC') && lines.push({ fields: fields as Record<string, unknown>, message }));
    const error = (_fields: unknown, message?: string) => void errors.push(String(message));
    return { lines, errors, logged: { ...context, logger: { ...context.logger, info: log, warn: log, error } } as typeof context };
  };
  // A learning batch larger than the stream's labels: every label is scored against the untrained model's prior.
  const cold = summaryLines();
  const { output } = await runOperator(intentModel, { ...base, report: true, batch: { max_size: 32, learn_size: 100_000, max_delay: 0 } }, separableIntentStream(40), cold.logged);
  const report = reportOf(output);
  assert.ok(report.summary.n > 0 && report.summary.positives > 0 && report.summary.positives < report.summary.n);
  assert.equal(report.scoreReason, 'every label scored before it learnt');
  assert.deepEqual(report.scoreNotes, [
    `all ${report.summary.n} labels scored predictions made before the model had learnt from any label (it learns once batch.learn_size labels have come): the scores measure the untrained model (a logistic one predicts its prior, the same for every event: AUC 0.5), not what it learns`,
  ]);
  assert.equal(cold.lines.length, 1);
  assert.match(cold.lines[0]!.message, /, prequential AUC 0\.500 \(every label scored before it learnt\), log loss /);
  assert.equal(cold.lines[0]!.fields.scoreReason, 'every label scored before it learnt');
  // One that learnt has no reason to give, and its line is as before.
  const learnt = summaryLines();
  const healthy = reportOf((await runOperator(intentModel, { ...base, report: true }, separableIntentStream(300), learnt.logged)).output);
  // (Its first labels were scored before its first learning step: said in a note, not as the reason.)
  assert.equal(healthy.scoreReason, null);
  assert.ok(healthy.scoreNotes.every((note) => note.startsWith('at least ')), healthy.scoreNotes.join('; '));
  assert.match(learnt.lines[0]!.message, /, prequential AUC \d\.\d{3}, log loss /);
  assert.equal('scoreReason' in learnt.lines[0]!.fields && learnt.lines[0]!.fields.scoreReason !== undefined, false);
  // A defineModel model, through the same stage: every prediction not a number.
  const nanRule = defineModel<Record<string, never>>({
    name: 'nan-rule',
    task: 'intent',
    summary: 'Predicts NaN: a diverged model.',
    config: { type: 'object', additionalProperties: false, properties: {} },
    create: () => ({ predict: () => Number.NaN, learn: () => undefined }),
  });
  const diverged = summaryLines();
  const custom = reportOf((await runOperator(nanRule, { report: true }, separableIntentStream(20), diverged.logged)).output);
  const predictions = custom.counts.predictions;
  assert.ok(predictions > 0 && custom.counts.invalidScores === predictions);
  assert.equal(custom.scoreReason, `diverged: all ${predictions} predictions not a number`);
  assert.deepEqual(custom.scoreNotes, [`all ${predictions} predictions were not a number (the model diverged): neither scored nor learnt from`]);
  assert.match(diverged.lines[0]!.message, new RegExp(`prequential AUC n/a \\(diverged: all ${predictions} predictions not a number\\), log loss n/a`));
  // Its one error line says where the number came from, not to lower a learning rate it has not (was the built-ins' text).
  assert.deepEqual(diverged.errors, [
    'model under-test: a prediction is not a number (or not between 0 and 1): its predict returned one (a custom model, nan-rule). Its predictions carry score null and are neither scored nor learnt from; see what its predict computes',
  ]);
});

test('scoreNotes: one class, a diverged model, some labels scored before learning; nothing to say of a model that learnt', () => {
  const counts = { predictions: 100, unlabelledAtEnd: 0, overflow: 0, expired: 0, invalidScores: 0, scoredBeforeLearning: 0 };
  assert.deepEqual(scoreNotes({ summary: { n: 80, positives: 0 }, counts: { ...counts, unlabelledAtEnd: 20 } }), {
    reason: 'one class: every label negative',
    notes: ['no AUC: all 80 labels were negative, and an AUC needs both outcomes'],
  });
  const diverged = scoreNotes({ summary: { n: 10, positives: 3 }, counts: { ...counts, invalidScores: 90, scoredBeforeLearning: 4 } });
  assert.equal(diverged.reason, 'diverged: 90 of 100 predictions not a number');
  assert.deepEqual(diverged.notes, [
    'at least 4 of 10 labels scored predictions made before the model had learnt from any label (the untrained model): those scored before its first learning step',
    '90 of 100 predictions were not a number (the model diverged): neither scored nor learnt from; lower optimizer.learning_rate',
  ]);
  assert.deepEqual(scoreNotes({ summary: { n: 0, positives: 0 }, counts: { ...counts, predictions: 0 } }), { reason: 'no label', notes: ['no label: the model made no prediction'] });
  assert.deepEqual(scoreNotes({ summary: { n: 0, positives: 0 }, counts: { ...counts, unlabelledAtEnd: 60, overflow: 30, expired: 10 } }), {
    reason: 'no label',
    notes: ['no label: 60 of 100 predictions still awaited their outcome when the input ended (a session still open, a churn horizon not yet passed): a longer input gives labels', '40 of 100 predictions were dropped unlabelled (label_buffer.max_size, label_buffer.timeout)'],
  });
  assert.deepEqual(scoreNotes({ summary: { n: 100, positives: 9 }, counts }), { notes: [] });
});

test('before its first label a model exports no log loss, Brier score, base rate or calibration error (absent, not a false 0 that reads as perfect); after it, all four', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const sessions: Element[] = [event('a', 'a1', t, 0, t, 'view'), summary('a', 'a1', t, t, 1, false, { view: 1 }), event('b', 'b1', t + 1000, 0, t + 1000, 'view'), summary('b', 'b1', t + 1000, t + 1000, 1, false, { view: 1 })];
  const config = { backend: 'cpu' as const, horizon: '7d', batch: { max_size: 1, max_delay: 0 } };
  const scored = /^tributary_model_(logloss|brier|base_rate|calibration_error)\{[^}]*\} /gm;
  const unlabelled = new MetricsHub();
  // Within the horizon: predictions, no label yet (the end of input censors them).
  await runOperator(churnModel, config, [...sessions, watermark(t + day), watermark(Infinity)], testContext({ metrics: unlabelled.scoped({ pipeline: 'p', stage: 'churn' }) }));
  const before = await unlabelled.registry.metrics();
  assert.match(before, /^tributary_model_predictions_total\{pipeline="p",stage="churn",model="under-test"\} 2$/m);
  assert.deepEqual(before.match(scored), null);
  const labelled = new MetricsHub();
  await runOperator(churnModel, config, [...sessions, watermark(t + 8 * day), watermark(Infinity)], testContext({ metrics: labelled.scoped({ pipeline: 'p', stage: 'churn' }) }));
  assert.equal((await labelled.registry.metrics()).match(scored)?.length, 4);
});

test('a model exports the log loss of its last metrics.window labels beside the cumulative one (a dashboard of a months-long run needs the recent figure)', async () => {
  const hub = new MetricsHub();
  const { output } = await runOperator(intentModel, { ...base, report: true, metrics: { window: 50 } }, separableIntentStream(300), testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'intent' }) }));
  const { summary: scores } = reportOf(output);
  assert.ok(scores.n > 50, `more labels than the window (${scores.n})`);
  const text = await hub.registry.metrics();
  const gauge = (name: string): number => Number(new RegExp(`^tributary_${name}\\{pipeline="p",stage="intent",model="under-test"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  // Before, only model_logloss (every label so far) was exported, and the example dashboard plotted it as the window's.
  assert.ok(Math.abs(gauge('model_logloss_window') - scores.window.logloss) < 1e-9, `window: ${gauge('model_logloss_window')} vs ${scores.window.logloss}`);
  assert.ok(Math.abs(gauge('model_logloss') - scores.logloss) < 1e-9);
  assert.notEqual(scores.window.logloss, scores.logloss, 'the two figures differ here, so the test tells them apart');
  // The record says what its window spans and which field sets it, for a backtest's report, which knows no model's config.
  assert.deepEqual(reportOf(output).timelineWindow, { labels: 50, firstPointAt: 12, setting: 'metrics.window' });
  assert.equal(reportOf(output).timeline[0]?.n, 12, 'its first point comes as said');
});

test("every series of a model carries its name as the `model` label beside its stage's (a dashboard names the model, not stage-intent-model-5)", async () => {
  const hub = new MetricsHub();
  await runOperator(intentModel, { ...base, name: 'intent-lr' }, separableIntentStream(100), testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'stage-intent-model-5' }) }));
  const t = Date.parse('2024-01-01T00:00:00Z');
  const churnInput: Element[] = [event('a', 'a1', t, 0, t, 'view'), summary('a', 'a1', t, t, 1, false, { view: 1 }), watermark(t + 8 * day), watermark(Infinity)];
  await runOperator(churnModel, { backend: 'cpu', name: 'churn-lr', horizon: '7d', batch: { max_size: 1, max_delay: 0 } }, churnInput, testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'stage-churn-model-6' }) }));
  const series = (await hub.registry.metrics()).split('\n').filter((line) => /^tributary_(model|intent|churn)_/.test(line));
  assert.ok(series.length > 20, series.join('\n'));
  for (const line of series) assert.match(line, /^\S+\{pipeline="p",stage="stage-(intent-model-5",model="intent-lr|churn-model-6",model="churn-lr)"[,}]/, line);
  assert.ok(series.some((line) => line.startsWith('tributary_model_auc_cumulative{pipeline="p",stage="stage-intent-model-5",model="intent-lr"}')), series.join('\n'));
  assert.ok(series.some((line) => line.startsWith('tributary_intent_out_of_order_events_total{pipeline="p",stage="stage-intent-model-5",model="intent-lr"}')));
  assert.ok(series.some((line) => line.startsWith('tributary_churn_users_evicted_total{pipeline="p",stage="stage-churn-model-6",model="churn-lr"}')));
  // The backend as an info metric: its name a label, the value 1 (was tributary_model_backend, a number standing for it).
  assert.ok(series.includes('tributary_model_backend_info{pipeline="p",stage="stage-intent-model-5",model="intent-lr",backend="cpu"} 1'), series.join('\n'));
  assert.ok(!series.some((line) => line.startsWith('tributary_model_backend{')));
});

test('intent and churn with a gru export the evictions of their sequence trackers (intent: open ones, and closed ones kept for late events), at 0 until the bound is reached', async () => {
  const hub = new MetricsHub();
  const gru = { kind: 'gru', units: 4, sequence_length: 3 } as const;
  await runOperator(intentModel, { ...base, name: 'intent-gru', model: gru }, separableIntentStream(20), testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'i' }) }));
  const t = Date.parse('2024-01-01T00:00:00Z');
  const churnInput: Element[] = [event('a', 'a1', t, 0, t, 'view'), summary('a', 'a1', t, t, 1, false, { view: 1 }), watermark(Infinity)];
  await runOperator(churnModel, { backend: 'cpu', name: 'churn-gru', horizon: '7d', model: gru, batch: { max_size: 1, max_delay: 0 } }, churnInput, testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'c' }) }));
  const text = await hub.registry.metrics();
  for (const name of ['intent_sequences_evicted_total', 'intent_sequences_forgotten_early_total']) assert.match(text, new RegExp(`^tributary_${name}\\{pipeline="p",stage="i",model="intent-gru"\\} 0$`, 'm'));
  assert.match(text, /^tributary_churn_sequences_evicted_total\{pipeline="p",stage="c",model="churn-gru"\} 0$/m);
});

test('a window of labels of one class exports its AUC as NaN, not the last window that had both classes', async () => {
  // Buyers only in the first 150 sessions: the last metrics.window labels are all negatives.
  const stream = separableIntentStream(300);
  const sessionOf = (e: Element): string | undefined => (e.kind === 'event' ? (e as ClickEvent).session?.id : isSessionSummary(e) ? e.sessionId : undefined);
  const lateBuyers = new Set(stream.flatMap((e) => (isSessionSummary(e) && e.purchased && Number(e.sessionId.slice(1)) >= 150 ? [e.sessionId] : [])));
  const input = stream.filter((e) => !lateBuyers.has(sessionOf(e) ?? ''));
  const hub = new MetricsHub();
  const { output } = await runOperator(intentModel, { ...base, report: true, metrics: { window: 50 } }, input, testContext({ metrics: hub.scoped({ pipeline: 'p', stage: 'intent' }) }));
  const { summary: scores } = reportOf(output);
  assert.equal(scores.window.auc, null);
  assert.ok(scores.auc !== null && scores.auc > 0.5, `cumulative AUC ${scores.auc}`);
  const text = await hub.registry.metrics();
  // prom-client writes `Nan`; Prometheus parses NaN in any case.
  assert.match(text, /^tributary_model_auc\{pipeline="p",stage="intent",model="under-test"\} nan$/im);
  assert.match(text, new RegExp(`^tributary_model_auc_cumulative\\{pipeline="p",stage="intent",model="under-test"\\} ${scores.auc}$`, 'm'));
});

test("a model's gauges catch up once the stream goes quiet: labels scored within a second of the last export are exported at a later tick, not left stale while no prediction comes", async () => {
  let now = Date.parse('2024-06-01T00:00:00Z');
  let ticks = 0;
  // The model's timer asks `held` at each tick (every batch.max_delay): counted, so the test waits for ticks, not for time.
  const hub = new MetricsHub();
  const context = testContext({ clock: { now: () => now }, held: () => void ticks++, metrics: hub.scoped({ pipeline: 'p', stage: 'intent' }) });
  const operator = await intentModel.create({ ...base, batch: { max_size: 1000, max_delay: '10ms' } } as never, context);
  await operator.open?.();
  const input = new Subject<Element>();
  let completed!: () => void;
  const done = new Promise<void>((resolve) => (completed = resolve));
  const subscription = operator.apply(input).subscribe({ complete: () => completed() });
  const gauges = async (): Promise<string> => (await hub.registry.metrics()).split('\n').filter((line) => /^tributary_model_(labels_total|base_rate|logloss|auc_cumulative)\{/.test(line)).join('\n');
  const afterTicks = async (more: number): Promise<void> => {
    const target = ticks + more;
    await until(() => ticks >= target, `${more} ticks of the batch timer`);
  };
  try {
    const stream = separableIntentStream(120).slice(0, -1); // its end of input comes last, below
    const half = stream.findIndex((e, i) => i > stream.length / 2 && isSessionSummary(e)) + 1;
    for (const e of stream.slice(0, half)) input.next(e);
    await afterTicks(2); // the first export, at `now`
    for (const e of stream.slice(half)) input.next(e);
    await afterTicks(2); // within the same second: the counters move, the gauges wait
    now += 500; // the batches waiting run by time (batch.max_delay), still within the second: the gauges wait again
    await afterTicks(2);
    now += 5_000; // the stream is quiet: no prediction, no batch comes any more
    await afterTicks(2);
    const quiet = await gauges();
    input.next(watermark(Infinity)); // the end of input exports whatever is due (every session already closed: no label comes)
    input.complete();
    await done;
    assert.equal(quiet, await gauges(), 'the gauges at the quiet ticks are those of every label scored');
  } finally {
    subscription.unsubscribe();
    await operator.close?.();
  }
});

test('adwin drift: a shift in the label distribution emits a drift record (page-hinkley too), a stationary stream none; a snapshot restores the detector', async () => {
  const shiftAt = 800;
  const shiftTime = Date.parse('2024-01-01T00:00:00Z') + shiftAt * 600_000;
  const input = shiftingIntentStream(1200, shiftAt, 0.05, 0.5, 21);
  // Blocks of 4 sessions (about 20 predictions: each session's label is read once) fit this short stream.
  const config: IntentModelConfig = { ...base, drift: { detector: 'adwin', block: 4 }, report: true };
  const { output } = await runOperator(intentModel, config, input);
  const drifts = of(output, 'drift');
  assert.ok(drifts.length >= 1, 'drift detected');
  assert.equal(drifts[0]!.detector, 'adwin');
  assert.equal(drifts[0]!.model, 'under-test');
  // At or after the shift, within a few hundred sessions' labels (ADWIN tests every 32 blocks of 4 sessions).
  const labelsBefore = reportOf((await runOperator(intentModel, config, shiftingIntentStream(shiftAt, shiftAt, 0.05, 0.5, 21))).output).summary.n;
  assert.ok((drifts[0]!.time as number) >= shiftTime, `drift at ${new Date(drifts[0]!.time as number).toISOString()}`);
  assert.ok((drifts[0]!.labels as number) > labelsBefore && (drifts[0]!.labels as number) <= labelsBefore + 1500, `drift after ${drifts[0]!.labels as number} labels (${labelsBefore} before the shift)`);
  assert.equal(reportOf(output).counts.drifts, drifts.length);

  const stationary = await runOperator(intentModel, config, shiftingIntentStream(1200, 1200, 0.05, 0.05, 22));
  assert.deepEqual(of(stationary.output, 'drift'), []);
  // The default detector sees the shift too, and says which it is.
  const pageHinkley = of((await runOperator(intentModel, { ...config, drift: { block: 40 } }, input)).output, 'drift');
  assert.ok(pageHinkley.length >= 1 && pageHinkley.every((d) => d.detector === 'page-hinkley' && (d.time as number) >= shiftTime));

  // Cut after the shift, before its detection: the restored detector holds the window across the change.
  const cut = input.findIndex((r) => r.kind === 'session' && (r as StreamRecord).sessionId === `s${shiftAt + 20}`);
  const first = await runOperator(intentModel, config, input.slice(0, cut));
  assert.deepEqual(of(first.output, 'drift'), []);
  const saved = JSON.parse(JSON.stringify(await first.operator.snapshot!())) as unknown;
  const operator = await intentModel.create({ ...config }, testContext());
  await operator.open?.();
  await operator.restore!(saved);
  const rest = await lastValueFrom(operator.apply(from(input.slice(cut))).pipe(toArray()));
  await operator.close?.();
  assert.deepEqual(of(rest, 'drift'), drifts);
});

test('a churn horizon or a label timeout of 0 is rejected by the schema (validate says it at the field: core/config/load.test.ts)', async () => {
  await assert.rejects(async () => runOperator(churnModel, { backend: 'cpu', horizon: '0d' }, []), /^Error: invalid churn-model config: \$\.horizon: must be at least 1ms, got "0d"$/);
  await assert.rejects(async () => runOperator(intentModel, { backend: 'cpu', label_buffer: { timeout: 0 } }, []), /^Error: invalid intent-model config: \$\.label_buffer\.timeout: must be at least 1ms, got 0$/);
  const operator = await churnModel.create({ backend: 'cpu', horizon: '1d', label_buffer: { timeout: '1h' } }, testContext());
  await operator.close?.();
});

test('the `report` option\'s description names every count the model_metrics record carries', async () => {
  const { output } = await runOperator(intentModel, { ...base, report: true }, separableIntentStream(5, 1));
  const counts = Object.keys(reportOf(output).counts);
  const description = modelOperatorProperties.report.description;
  assert.deepEqual(counts.filter((key) => !description.includes(`\`${key}\``)), []);
});

test("label_buffer.timeout's described default is each task's: 1d for intent-model, twice the horizon for churn-model and a custom churn model (was: 1d for churn too, which raises it to 14d by default)", () => {
  const timeoutText = (properties: Record<string, unknown>): string =>
    (properties.label_buffer as { properties: { timeout: { description: string } } }).properties.timeout.description;
  assert.match(timeoutText(intentModel.config.properties as Record<string, unknown>), /Default: 1d\.$/);
  const customChurn = defineModel<Record<string, never>>({ name: 'churn-rule', task: 'churn', summary: 'A rule.', config: { type: 'object', properties: {} }, create: () => ({ predict: () => 0.5 }) });
  for (const plugin of [churnModel, customChurn]) {
    const text = timeoutText(plugin.config.properties as Record<string, unknown>);
    assert.doesNotMatch(text, /Default: 1d/, plugin.name);
    assert.match(text, /Default: twice the horizon \(14d with the default horizon of 7d\), at least 1d\.$/, plugin.name);
  }
});

test("the model stages' descriptions name every metric they export, and only those (docs/operations.md points to them for the list)", async () => {
  /** The series a model stage makes, by name: those labelled with its `model`. */
  const exported = async (stages: Parameters<typeof Chain.build>[0]): Promise<string[]> => {
    const hub = new MetricsHub();
    await Chain.build(stages, testContext({ metrics: hub.scoped({ pipeline: 'test', stage: 'model' }) }));
    const names = hub.registry.getMetricsAsArray().filter((metric) => (metric as unknown as { labelNames: string[] }).labelNames.includes('model'));
    return names.map((metric) => metric.name.replace(/^tributary_/, '')).sort();
  };
  const named = (description: string, prefix: RegExp): string[] => [...new Set([...description.matchAll(/`([a-z_]+)`/g)].map(([, name]) => name!).filter((name) => prefix.test(name)))].sort();
  // A gru model exports every one; the others all but its sequence tracker's (`_sequences_`, said "with a `gru`").
  const gru = { kind: 'gru', units: 4, sequence_length: 3 } as const;
  const notGru = (names: string[]): string[] => names.filter((name) => !name.includes('_sequences_'));
  const intentGru = await exported([stage(sessionizer, { gap: '30m' }), stage(sessionFeatures), stage(intentModel, { ...base, model: gru })]);
  assert.deepEqual(named(intentModel.description ?? '', /^(model|intent)_/), intentGru);
  const intent = await exported([stage(sessionizer, { gap: '30m' }), stage(sessionFeatures), stage(intentModel, base)]);
  assert.deepEqual(notGru(intentGru), intent);
  // Churn's: intent-model's model_ series, and its own churn_ ones.
  const churnGru = await exported([stage(sessionizer, { gap: '30m' }), stage(churnModel, { backend: 'cpu', horizon: '7d', model: gru })]);
  assert.deepEqual([...intent.filter((name) => name.startsWith('model_')), ...named(churnModel.description ?? '', /^churn_/)].sort(), churnGru);
  const churn = await exported([stage(sessionizer, { gap: '30m' }), stage(churnModel, { backend: 'cpu', horizon: '7d' })]);
  assert.deepEqual(notGru(churnGru), churn);
  assert.deepEqual(named(churnModel.description ?? '', /^intent_/), [], 'churn-model exports no intent_ series');
});

test("prequential metrics' state is copied on write: labels added after stateOnWrite's call (filling its bins, overwriting its window ring, its timeline halved, its exact scores grown then dropped past exact_auc_limit) do not show in what it reads, which is state() at the call", () => {
  const random = rng(11);
  // Scores on a coarse grid so that bins repeat and ties occur; exact until 300 distinct scores.
  const draw = (): [number, number] => {
    const score = Math.round(random() * 500) / 500 + (random() < 0.5 ? 0 : 1e-6);
    return [score, random() < score ? 1 : 0];
  };
  for (const exactLimit of [0, 300]) {
    const metrics = new Prequential(50, 10, exactLimit);
    for (let i = 0; i < 200; i++) metrics.add(...draw(), i);
    const atCall = JSON.stringify(metrics.state());
    const copy = metrics.stateOnWrite();
    // Past the window (every ring slot), past 400 timeline points (halved), past the exact limit (dropped).
    for (let i = 200; i < 5000; i++) metrics.add(...draw(), i);
    if (exactLimit > 0) assert.equal(metrics.cumulativeAucExact, false, 'the exact scores were dropped after the call');
    assert.equal(JSON.stringify(copy.read()), atCall, `limit ${exactLimit}: the state as at the call`);
    // A second copy while one is read goes on as state() does, and a load reads a pending one first.
    const now = JSON.stringify(metrics.state());
    const pending = metrics.stateOnWrite();
    const restored = new Prequential(50, 10, exactLimit);
    restored.load(JSON.parse(atCall));
    assert.equal(JSON.stringify(restored.state()), atCall, 'restored whole');
    metrics.load(JSON.parse(atCall));
    assert.equal(JSON.stringify(pending.read()), now, 'a copy pending at a load is read before it');
  }
});

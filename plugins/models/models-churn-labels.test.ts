import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeColumn, MetricsHub, watermark, type Column, type Element, type Emit, isClickEvent, isPrediction, isSessionSummary, type StreamRecord } from 'tributary';
import { runOperator, testContext, until } from 'tributary/testing';
import { lastValueFrom, Subject, toArray } from 'rxjs';
import { type IntentModelConfig } from './intent.js';
import churnModel, { churnFeatureNames } from './churn.js';
import { event, summary } from './testdata.js';
import { OnlineLearner, type SampleInput } from './learner.js';
import { LogisticRegression } from './logistic.js';
import { churnFormat3NoGrace } from './snapshots-churn-format3.js';
import sessionizer from '../operators/sessionizer.js';
import { Chain, stage } from '../operators/harness.js';
import { min, hour, day, base, of, reportOf, outputsRestoredAt, fedOperator, modelOutputs } from './models-test-helpers.js';

test('churn: fixed-horizon labels when the watermark passes end + horizon (0 if the user returned, else 1); the end of input censors', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const input: Element[] = [
    event('a', 'a1', t, 0, t, 'view'),
    summary('a', 'a1', t, t + 60_000, 1, false, { view: 1 }),
    event('b', 'b1', t + 1000, 0, t + 1000, 'view'),
    summary('b', 'b1', t + 1000, t + 1000, 1, false, { view: 1 }),
    event('a', 'a2', t + 2 * day, 0, t + 2 * day, 'view'), // a returns after 2 days: a1 -> 0
    summary('a', 'a2', t + 2 * day, t + 2 * day, 1, false, { view: 1 }),
    watermark(t + 8 * day), // b1 + 7d passed: b1 -> 1; a2 (+7d = day 9) still open
    watermark(Infinity),
  ];
  const { output } = await runOperator(churnModel, { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true }, input);
  const predictions = of(output, 'prediction');
  assert.deepEqual(predictions.map((p) => [p.sessionId, p.task]), [['a1', 'churn'], ['b1', 'churn'], ['a2', 'churn']]);
  const report = reportOf(output);
  assert.equal(report.summary.n, 2);
  assert.equal(report.summary.positives, 1);
  assert.equal(report.counts.unlabelledAtEnd, 1);
  // a1's return is seen at day 2, but its label waits for its deadline like b1's: before it, nothing is scored.
  const early = await runOperator(churnModel, { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true }, [...input.slice(0, 6), watermark(t + 6 * day), watermark(Infinity)]);
  const earlyReport = reportOf(early.output);
  assert.equal(earlyReport.summary.n, 0);
  assert.equal(earlyReport.counts.unlabelledAtEnd, 3);
});

test('churn, scale-out: users of a revoked partition are released, not labelled churners', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  let partition: string | undefined;
  const context = testContext({ currentPartition: () => partition });
  const operator = await churnModel.create({ backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true } as never, context);
  await operator.open?.();
  const input = new Subject<Element>();
  const done = lastValueFrom(operator.apply(input).pipe(toArray()));
  const from = (p: string, elements: Element[]) => {
    partition = p;
    for (const element of elements) input.next(element);
    partition = undefined;
  };
  from('clicks-0', [event('a', 'a1', t, 0, t, 'view'), summary('a', 'a1', t, t, 1, false, { view: 1 })]);
  from('clicks-1', [event('b', 'b1', t, 0, t, 'view'), summary('b', 'b1', t, t, 1, false, { view: 1 })]);
  // clicks-0 moves to another member: a's return, if any, is seen there.
  operator.partitionsRevoked!(['clicks-0']);
  input.next(watermark(t + 8 * day));
  input.next(watermark(Infinity));
  input.complete();
  const report = reportOf(await done);
  await operator.close?.();
  assert.equal(report.counts.predictions, 2);
  assert.equal(report.summary.n, 1, 'only b (still here) is labelled');
  assert.equal(report.summary.positives, 1);
});

test('churn, scale-out: each user\'s partition survives a snapshot and restore: a partition revoked after it still releases its users', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  let partition: string | undefined;
  const config = { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true } as IntentModelConfig;
  const operator = await churnModel.create({ ...config }, testContext({ currentPartition: () => partition }));
  await operator.open?.();
  const input = new Subject<Element>();
  const done = lastValueFrom(operator.apply(input).pipe(toArray()));
  for (const [p, user] of [['clicks-0', 'a'], ['clicks-1', 'b']] as const) {
    partition = p;
    input.next(event(user, `${user}1`, t, 0, t, 'view'));
    input.next(summary(user, `${user}1`, t, t, 1, false, { view: 1 }));
  }
  partition = undefined;
  const saved = JSON.parse(JSON.stringify(await operator.snapshot!())) as { users: { partitions?: unknown } };
  input.complete();
  await done;
  await operator.close?.();
  assert.deepEqual(saved.users.partitions, ['clicks-0', 'clicks-1']);
  const restored = await fedOperator(churnModel, config, saved);
  restored.operator.partitionsRevoked!(['clicks-0']);
  restored.input.next(watermark(t + 8 * day));
  restored.input.next(watermark(Infinity));
  restored.input.complete();
  await restored.done;
  await restored.operator.close?.();
  const report = reportOf(restored.output);
  assert.equal(report.summary.n, 1, 'only b (still here) is labelled');
  assert.equal(report.summary.positives, 1);
});

test('churn: a session merged into an earlier one by a late event is one session with one prediction, labelled from the merged end', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const merged = (end: number, count: number) => ({ ...summary('a', 'A', t, end, count, false, { view: count }), update: true, replaces: ['B'] });
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 }, report: true } as const;
  // Both sessions closed (and were predicted) before a late event at t+20m bridged them.
  const bothClosed: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'B', t + 40 * min, 0, t + 40 * min, 'view'),
    summary('a', 'B', t + 40 * min, t + 40 * min, 1, false, { view: 1 }),
    event('a', 'A', t + 20 * min, 2, t, 'view'), // the late event, tagged with the merged session
    merged(t + 40 * min, 3),
  ];
  const run = async (input: Element[]) => {
    const metrics = new MetricsHub();
    const { output } = await runOperator(churnModel, config, input, { ...testContext(), metrics: metrics.scoped({ pipeline: 'test', stage: 'churn' }) });
    return { report: reportOf(output), predictions: of(output, 'prediction'), text: await metrics.registry.metrics() };
  };
  // The user never comes back: the merged session churned. Before, A was labelled 0 (B's start read as a return) and B 1.
  const churned = await run([...bothClosed, watermark(t + 3 * day), watermark(Infinity)]);
  assert.deepEqual(churned.predictions.map((p) => p.sessionId), ['A', 'B'], 'both were predicted before the merge');
  assert.equal(churned.report.summary.n, 1, 'one session, one label');
  assert.equal(churned.report.summary.positives, 1);
  assert.equal(churned.report.counts.expired + churned.report.counts.unlabelledAtEnd, 0);
  assert.match(churned.text, /^tributary_churn_predictions_merged_total\{[^}]*\} 1$/m);
  // Its deadline is the merged end + horizon, not A's end + horizon.
  const early = await run([...bothClosed, watermark(t + day + 30 * min), watermark(Infinity)]);
  assert.equal(early.report.summary.n, 0);
  assert.equal(early.report.counts.unlabelledAtEnd, 1);
  // A return within the horizon of the merged end labels it 0.
  const back = await run([...bothClosed, event('a', 'C', t + 40 * min + 20 * 60 * min, 0, t + 40 * min + 20 * 60 * min, 'view'), watermark(t + 3 * day), watermark(Infinity)]);
  assert.equal(back.report.summary.n, 1);
  assert.equal(back.report.summary.positives, 0);
  // B still open when the late event merged it (the merged summary comes when it closes): A's prediction is the
  // session's, and B's start is no return. Before, A was labelled 0.
  const openB = await run([
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'B', t + 40 * min, 0, t + 40 * min, 'view'),
    event('a', 'A', t + 20 * min, 2, t, 'view'),
    event('a', 'A', t + 50 * min, 3, t, 'view'),
    merged(t + 50 * min, 4),
    watermark(t + 3 * day),
    watermark(Infinity),
  ]);
  assert.deepEqual(openB.predictions.map((p) => p.sessionId), ['A']);
  assert.equal(openB.report.summary.n, 1);
  assert.equal(openB.report.summary.positives, 1);
});

test('churn: a session withdrawn by a merge leaves the user\'s history: its purchase and gap go with it (the merged session counts once); a snapshot without those columns restores', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 } } as const;
  const merged = (purchased: boolean) => ({ ...summary('a', 'A', t, t + 40 * min, 3, purchased, { view: 2, purchase: purchased ? 1 : 0 }), update: true, replaces: ['B'] });
  // P two days before; A and B 40 minutes apart, both predicted, then bridged by a late event.
  const before = (aBought: boolean, bBought: boolean): Element[] => [
    event('a', 'P', t - 2 * day, 0, t - 2 * day, 'view'),
    summary('a', 'P', t - 2 * day, t - 2 * day + 10 * min, 1, false, { view: 1 }),
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, aBought, { view: 1 }),
    event('a', 'B', t + 40 * min, 0, t + 40 * min, 'view'),
    summary('a', 'B', t + 40 * min, t + 40 * min, 1, bBought, { view: 1 }),
    event('a', 'A', t + 20 * min, 2, t, 'view'),
  ];
  type Users = { sessions: Column; purchases: Column; gapSum: Column; pendingStarts?: Column; pendingPurchased?: Column; pendingGaps?: Column };
  const history = (state: unknown) => {
    const users = (state as { users: Users }).users;
    return { sessions: [...decodeColumn(users.sessions, 'test')], purchases: [...decodeColumn(users.purchases, 'test')], gapSum: [...decodeColumn(users.gapSum, 'test')] };
  };
  // Two sessions (P and the merged one), one gap (P's end to A's start), one purchase. Before, B's purchase and its
  // 40-minute gap stayed: purchases 2, mean gap a day.
  const both = await runOperator(churnModel, config, [...before(true, true), merged(true)]);
  assert.deepEqual(history(both.state), { sessions: [2], purchases: [1], gapSum: [2 * day - 10 * min] });
  // Only the withdrawn part bought: the merged session did, once.
  const onlyB = await runOperator(churnModel, config, [...before(false, true), merged(true)]);
  assert.deepEqual(history(onlyB.state), { sessions: [2], purchases: [1], gapSum: [2 * day - 10 * min] });
  // A snapshot written before the columns of what each prediction added restores (nothing to take back: B's purchase
  // and gap stay, as before), and carries the columns from then on.
  const cut = await runOperator(churnModel, config, before(true, true));
  const old = JSON.parse(JSON.stringify(cut.state)) as { users: Users };
  delete old.users.pendingStarts;
  delete old.users.pendingPurchased;
  delete old.users.pendingGaps;
  const restored = await runOperator(churnModel, config, [merged(true)], testContext(), { restore: old });
  assert.deepEqual(history(restored.state), { sessions: [2], purchases: [2], gapSum: [2 * day + 30 * min] });
  assert.deepEqual([...decodeColumn((restored.state as { users: Users }).users.pendingPurchased!, 'test')], [NaN, NaN], 'P and A: not known');
});

test('churn: a later session that closed before the merge is a return at its start, not its end', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const end = t + 40 * min;
  const input: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'B', end, 0, end, 'view'),
    summary('a', 'B', end, end, 1, false, { view: 1 }),
    // C starts 23 hours after the merged end (within the 1d horizon) and lasts 2 hours: it closes before the merge.
    event('a', 'C', end + 23 * hour, 0, end + 23 * hour, 'view'),
    event('a', 'C', end + 25 * hour, 1, end + 23 * hour, 'view'),
    summary('a', 'C', end + 23 * hour, end + 25 * hour, 2, false, { view: 2 }),
    event('a', 'A', t + 20 * min, 2, t, 'view'),
    { ...summary('a', 'A', t, end, 3, false, { view: 3 }), update: true, replaces: ['B'] },
    watermark(end + 4 * day),
    watermark(Infinity),
  ];
  const { output } = await runOperator(churnModel, { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 }, report: true }, input);
  const report = reportOf(output);
  // The merged session: back (0); C: no return (1). Before, C's end (25 hours on) was the merged session's return: both 1.
  assert.equal(report.summary.n, 2);
  assert.equal(report.summary.positives, 1);
});

/**
 * Runs `run` and collects the churn features of each prediction it makes, by session id: the learner's
 * input, copied (churn reuses one vector for every prediction).
 */
async function withChurnFeatures<T>(run: () => Promise<T>): Promise<{ result: T; features: Map<string, Record<(typeof churnFeatureNames)[number], number>> }> {
  const features = new Map<string, Record<(typeof churnFeatureNames)[number], number>>();
  const submit = OnlineLearner.prototype.submit;
  const spy = mock.method(OnlineLearner.prototype, 'submit', function (this: OnlineLearner, input: SampleInput, emit: Emit) {
    if (input.sessionId !== undefined) features.set(input.sessionId, Object.fromEntries(churnFeatureNames.map((name, i) => [name, input.values[i]!])) as Record<(typeof churnFeatureNames)[number], number>);
    return submit.call(this, input, emit);
  });
  try {
    return { result: await run(), features };
  } finally {
    spy.mock.restore();
  }
}

/** A gap or count as churn's feature vector holds it (float32 of log1p). */
const logFeature = (x: number): number => Math.fround(Math.log1p(x));

test('churn: a late event that extends a closed session moves the user\'s last end: the next session\'s gap (and its label\'s return) follow the final end', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 }, report: true } as const;
  // A closed at t, predicted; a late event 20 minutes on extends it (an update summary). C starts 23h50m after A's
  // final end, 24h10m after its first: a return within the 1d horizon of the final end.
  const cStart = t + 20 * min + 23 * hour + 50 * min;
  const input: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'A', t + 20 * min, 1, t, 'view'),
    { ...summary('a', 'A', t, t + 20 * min, 2, false, { view: 2 }), update: true },
    event('a', 'C', cStart, 0, cStart, 'view'),
    summary('a', 'C', cStart, cStart, 1, false, { view: 1 }),
    watermark(cStart + 2 * day),
    watermark(Infinity),
  ];
  const { result, features } = await withChurnFeatures(() => runOperator(churnModel, config, input));
  const report = reportOf(result.output);
  assert.equal(report.summary.n, 2);
  assert.equal(report.summary.positives, 1, 'A is back (0), C churned (1)');
  // Before, C's gap was measured from A's first end: 24h10m.
  assert.equal(features.get('C')!.user_days_since_previous_log, logFeature((23 * hour + 50 * min) / day));
});

test('churn: a merge with a session still open moves the user\'s last end to the merged end; one that closed after it keeps its own', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 } } as const;
  // A closed; B opens 40 minutes on; a late event at 20 minutes bridges them while B is open, B goes on to 50 minutes;
  // the merged summary (an update of A, replacing B) comes when it closes. C starts 2 hours after the merged end.
  const cStart = t + 50 * min + 2 * hour;
  const input: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'B', t + 40 * min, 0, t + 40 * min, 'view'),
    event('a', 'A', t + 20 * min, 2, t, 'view'),
    event('a', 'A', t + 50 * min, 3, t, 'view'),
    { ...summary('a', 'A', t, t + 50 * min, 4, false, { view: 4 }), update: true, replaces: ['B'] },
    event('a', 'C', cStart, 0, cStart, 'view'),
    summary('a', 'C', cStart, cStart, 1, false, { view: 1 }),
  ];
  const { features } = await withChurnFeatures(() => runOperator(churnModel, config, input));
  // Before, 2h50m (from A's first end).
  assert.equal(features.get('C')!.user_days_since_previous_log, logFeature((2 * hour) / day));
  // C closed before a late event extended A: C's gap shrinks by the extension, and the user's last end stays C's.
  const late: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'C', t + 3 * hour, 0, t + 3 * hour, 'view'),
    summary('a', 'C', t + 3 * hour, t + 3 * hour, 1, false, { view: 1 }),
    event('a', 'A', t + 20 * min, 1, t, 'view'),
    { ...summary('a', 'A', t, t + 20 * min, 2, false, { view: 2 }), update: true },
    event('a', 'D', t + 5 * hour, 0, t + 5 * hour, 'view'),
    summary('a', 'D', t + 5 * hour, t + 5 * hour, 1, false, { view: 1 }),
  ];
  const after = await withChurnFeatures(() => runOperator(churnModel, config, late));
  assert.equal(after.features.get('D')!.user_days_since_previous_log, logFeature((2 * hour) / day));
  // The one gap before D, A to C: 2h40m. Before, it stayed 3h.
  assert.equal(after.features.get('D')!.user_mean_gap_days_log, logFeature((2 * hour + 40 * min) / day));
});

test('churn: a late event before a closed session\'s start brings it nearer the session before: its gap shrinks', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 } } as const;
  // P ends 2 hours before A starts; a late event 20 minutes before A's start moves it there. C 2 hours after A.
  const input: Element[] = [
    event('a', 'P', t - 2 * hour, 0, t - 2 * hour, 'view'),
    summary('a', 'P', t - 2 * hour, t - 2 * hour, 1, false, { view: 1 }),
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'A', t - 20 * min, 1, t - 20 * min, 'view'),
    { ...summary('a', 'A', t - 20 * min, t, 2, false, { view: 2 }), update: true },
    event('a', 'C', t + 2 * hour, 0, t + 2 * hour, 'view'),
    summary('a', 'C', t + 2 * hour, t + 2 * hour, 1, false, { view: 1 }),
  ];
  const { features } = await withChurnFeatures(() => runOperator(churnModel, config, input));
  // The one gap before C, P to A: 1h40m. Before, it stayed 2h.
  assert.equal(features.get('C')!.user_mean_gap_days_log, logFeature((hour + 40 * min) / day));
});

test('churn: a purchase only an update shows (a late purchase event in a closed session) counts once in the user\'s purchases', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 } } as const;
  const bought = (end: number, count: number) => ({ ...summary('a', 'A', t, end, count, true, { view: count - 1, purchase: 1 }), update: true });
  const next: Element[] = [event('a', 'C', t + 3 * hour, 0, t + 3 * hour, 'view'), summary('a', 'C', t + 3 * hour, t + 3 * hour, 1, false, { view: 1 })];
  // A closed without a purchase; a late purchase event extends it; a second late event updates it again.
  const extended: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'A', t + 10 * min, 1, t, 'purchase'),
    bought(t + 10 * min, 2),
    event('a', 'A', t + 15 * min, 2, t, 'view'),
    bought(t + 15 * min, 3),
    ...next,
  ];
  const { features } = await withChurnFeatures(() => runOperator(churnModel, config, extended));
  assert.equal(features.get('C')!.user_purchases_log, logFeature(1), 'before, 0');
  // The late purchase bridges two closed sessions that bought nothing: the merged session bought, once.
  const merged: Element[] = [
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'B', t + 40 * min, 0, t + 40 * min, 'view'),
    summary('a', 'B', t + 40 * min, t + 40 * min, 1, false, { view: 1 }),
    event('a', 'A', t + 20 * min, 2, t, 'purchase'),
    { ...bought(t + 40 * min, 3), replaces: ['B'] },
    ...next,
  ];
  const both = await withChurnFeatures(() => runOperator(churnModel, config, merged));
  assert.equal(both.features.get('C')!.user_purchases_log, logFeature(1), 'before, 0');
  assert.equal(both.features.get('C')!.user_sessions_log, logFeature(1), 'A and B are one session');
});

test('churn: a session that closes after a later one (a late event started it) sees that later session as its return, and leaves the user\'s last end the later one\'s', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const config = { backend: 'cpu', horizon: '1h', batch: { max_size: 1, max_delay: 0 }, report: true } as const;
  // B (at 60 minutes) closes first; a late event at 0 starts A, which closes at once (its gap has passed). C starts 2 hours after B.
  const cStart = t + 3 * hour;
  const input: Element[] = [
    event('a', 'B', t + hour, 0, t + hour, 'view'),
    summary('a', 'B', t + hour, t + hour, 1, false, { view: 1 }),
    event('a', 'A', t, 0, t, 'view'),
    summary('a', 'A', t, t, 1, false, { view: 1 }),
    event('a', 'C', cStart, 0, cStart, 'view'),
    summary('a', 'C', cStart, cStart, 1, false, { view: 1 }),
    watermark(cStart + day),
    watermark(Infinity),
  ];
  const { result, features } = await withChurnFeatures(() => runOperator(churnModel, config, input));
  const report = reportOf(result.output);
  assert.equal(report.summary.n, 3);
  // A is back (B, an hour on: 0); B and C churned. Before, A was labelled 1 too.
  assert.equal(report.summary.positives, 2);
  // C's gap is from B's end; before, from A's (3 hours), where A's summary had put the user's last end back.
  assert.equal(features.get('C')!.user_days_since_previous_log, logFeature((2 * hour) / day));
});

test('churn: a session the sessionizer evicted (max_open_sessions) is not predicted: its events go on in another session, which would label it 0 at once', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const input: Element[] = [
    event('a', 'a1', t, 0, t, 'view'),
    { ...summary('a', 'a1', t, t + min, 2, false, { view: 2 }), closedBy: 'evicted' },
    event('a', 'a1#1', t + 2 * min, 0, t + 2 * min, 'view'), // the same visit, under another id
    summary('a', 'a1#1', t + 2 * min, t + 2 * min, 1, false, { view: 1 }),
    watermark(t + 9 * day),
    watermark(Infinity),
  ];
  const { output } = await runOperator(churnModel, { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true }, input);
  // Before, two predictions: a1's labelled 0 (its continuation read as a return), a1#1's 1.
  assert.deepEqual(of(output, 'prediction').map((p) => p.sessionId), ['a1#1']);
  const report = reportOf(output);
  assert.deepEqual([report.summary.n, report.summary.positives], [1, 1]);
});

test('churn: a session the sessionizer cut at max_length is not predicted: the event that cut it starts its continuation, which would label it 0 at once', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  // One visit of 5 hours (an event every 10 minutes), cut at 2 h and 4 h by max_length, then silence.
  const input: Element[] = [];
  for (let m = 0; m <= 300; m += 10) input.push({ ...event('a', '', t + m * min, 0, t, 'view'), session: undefined });
  input.push(watermark(t + 9 * day), watermark(Infinity));
  const chain = await Chain.build(
    [stage(sessionizer, { gap: '30m', max_length: '2h' }), stage(churnModel, { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true })],
    testContext(),
  );
  const output = chain.push(input).end();
  const closedBy = output.filter(isSessionSummary).map((r) => r.closedBy);
  assert.deepEqual(closedBy, ['max_length', 'max_length', 'gap']);
  // Before, three predictions: the two cut ones labelled 0 (their continuations read as returns), the last 1.
  const predictions = output.filter(isPrediction);
  assert.deepEqual(predictions.map((p) => (p.time - t) / min), [300]);
  const report = reportOf(output);
  assert.deepEqual([report.summary.n, report.summary.positives], [1, 1]);
});

test('churn: a prediction whose session a merge extended past the label timeout waits for its moved deadline, not expired from its first end (also across a restore)', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const view = (minute: number): Element => ({ ...event('a', '', t + minute * min, 0, t, 'view'), session: undefined });
  // A (ends at 0) is predicted; a late event at 8 bridges it with B (from 15), which goes on to 180; B's
  // events wait for the next watermark, which closes the merged session: its update moves A's deadline to
  // 180 + 60. The label timeout (2 h) would have dropped A's prediction at 120 + 1, counted from 0.
  const input: Element[] = [view(0), watermark(t + 11 * min), view(15), watermark(t + 16 * min), view(8)];
  for (let m = 20; m <= 180; m += 5) input.push(view(m));
  input.push(watermark(t + 200 * min), watermark(t + 230 * min), watermark(t + 300 * min), watermark(Infinity));
  const stages = [stage(sessionizer, { gap: '10m', allowed_lateness: '20m' }), stage(churnModel, { backend: 'cpu', horizon: '1h', label_buffer: { timeout: '2h' }, batch: { max_size: 1, max_delay: 0 }, report: true })];
  const chain = await Chain.build(stages, testContext());
  const whole = chain.push(input).end();
  const updates = whole.filter(isSessionSummary).filter((r) => r.update);
  assert.deepEqual(updates.map((r) => (r.end - t) / min), [180], 'the merge\'s update');
  assert.equal(of(whole, 'prediction').length, 1);
  const report = reportOf(whole);
  // Before: expired at 200 (0 + 2 h), and its label at 240 + came late.
  assert.deepEqual([report.counts.labels, report.counts.expired, report.counts.lateLabels, report.summary.positives], [1, 0, 0, 1]);
  // A snapshot taken between the update and the old expiry holds the moved one.
  const cut = input.findIndex((r) => r.kind === 'watermark' && r.time === t + 200 * min) + 1;
  assert.equal(await outputsRestoredAt(stages, input, cut), modelOutputs(whole));
});

test('churn: a return whose first event arrives late (behind the watermark, within the sessionizer\'s allowed_lateness) after end + horizon passed labels 0; a churner\'s label waits as long, then is 1; a snapshot mid-wait restores to the same labels', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const view = (user: string, minute: number): Element => ({ ...event(user, '', t + minute * min, 0, t, 'view'), session: undefined });
  // a and b visit at 0; their sessions close at 30 (summaries at the watermark 40, keptUntil 0 + 30 + 10). Horizon 1 h:
  // end + horizon is 60. a comes back at 50, but that event arrives at the watermark 70: late, and the sessionizer
  // still starts a session with it (70 < 50 + gap + allowed_lateness = 90). Labels wait for 60 + 40 = 100.
  const input: Element[] = [view('a', 0), view('b', 0), watermark(t + 40 * min), watermark(t + 70 * min), view('a', 50), watermark(t + 95 * min), watermark(t + 101 * min), watermark(Infinity)];
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '10m' }), stage(churnModel, { backend: 'cpu', horizon: '1h', batch: { max_size: 1, max_delay: 0 }, report: true })];
  const whole = (await Chain.build(stages, testContext())).push(input).end();
  const summaries = whole.filter(isSessionSummary);
  assert.deepEqual(summaries.map((s) => [s.userId, (s.start - t) / min, ((s.keptUntil ?? NaN) - t) / min]), [['a', 0, 40], ['b', 0, 40], ['a', 50, 90]], 'the late event started a session of its own');
  assert.deepEqual(whole.filter(isPrediction).map((p) => [p.userId, (p.time - t) / min]), [['a', 0], ['b', 0], ['a', 50]]);
  const report = reportOf(whole);
  // Before: both labelled 1 at the watermark 70 (a's return came after its label).
  assert.deepEqual([report.summary.n, report.summary.positives, report.counts.unlabelledAtEnd], [2, 1, 1], 'a back (0), b churned (1); a\'s second session censored');
  // Neither is labelled at end + horizon (60) nor before end + horizon + the grace (100).
  const waiting = (await Chain.build(stages, testContext())).push([...input.slice(0, 6), watermark(Infinity)]).end();
  assert.deepEqual([reportOf(waiting).summary.n, reportOf(waiting).counts.unlabelledAtEnd], [0, 3]);
  // A snapshot past the old deadline, before and after the late return, restores to the same labels.
  for (const cut of [4, 5, 6]) {
    assert.equal(await outputsRestoredAt(stages, input, cut), modelOutputs(whole), `cut ${cut}`);
  }
});

test('churn: a late event that joins a later session before its start and moves that start back into the horizon is a return (as the events in time order are); one that stays beyond it is none; a snapshot mid-way restores to the same labels', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const view = (minute: number): Element => ({ ...event('u', '', t + minute * min, 0, t, 'view'), session: undefined });
  const stages = [stage(sessionizer, { gap: '30m', allowed_lateness: '10m' }), stage(churnModel, { backend: 'cpu', horizon: '1h', batch: { max_size: 1, max_delay: 0 }, report: true })];
  const run = async (input: Element[]) => (await Chain.build(stages, testContext())).push(input).end();
  /** A's label (its session ends at 0; horizon 1 h, labelled when the watermark passes 0 + 60 + 40). */
  const labelOfA = (output: Element[]): number => {
    const report = reportOf(output);
    assert.equal(report.summary.n, 1, 'A alone is labelled (B is censored)');
    return report.summary.positives;
  };
  // A at 0 closes at the watermark 40. B starts at 70 (beyond A's horizon) and goes on to 90: open until 120, after
  // A's label. A late event at `late`, within B's gap, joins B: B starts at `late` now (not a session of its own).
  const openB = (late: number): Element[] => [view(0), watermark(t + 40 * min), view(70), view(90), watermark(t + 95 * min), view(late), watermark(t + 101 * min), watermark(Infinity)];
  const inTimeOrder = (late: number): Element[] => [view(0), watermark(t + 40 * min), view(late), view(70), view(90), watermark(t + 95 * min), watermark(t + 101 * min), watermark(Infinity)];
  const whole = await run(openB(55));
  const joined = whole.filter(isClickEvent).filter((r) => r.time === t + 55 * min)[0]!;
  assert.deepEqual([joined.session!.id, joined.session!.position, (joined.session!.start - t) / min], [`u:${t + 70 * min}`, 2, 55], 'the late event joined B and moved its start');
  // Back at 55, within the horizon: 0 (before, B's start at 70 was the return: 1), as in time order.
  assert.equal(labelOfA(whole), 0);
  assert.equal(labelOfA(await run(inTimeOrder(55))), 0);
  // Moved to 65, still beyond the horizon: 1, as in time order.
  assert.equal(labelOfA(await run(openB(65))), 1);
  assert.equal(labelOfA(await run(inTimeOrder(65))), 1);
  // B closed (and predicted, from 62) before the late event: its update summary moves its start to 55. Before, 1.
  const closedB: Element[] = [view(0), watermark(t + 40 * min), view(62), watermark(t + 93 * min), view(55), watermark(t + 101 * min), watermark(Infinity)];
  const updated = await run(closedB);
  assert.deepEqual(
    updated.filter(isSessionSummary).map((s) => [(s.start - t) / min, s.update ?? false]),
    [[0, false], [62, false], [55, true]],
  );
  assert.equal(labelOfA(updated), 0);
  // A snapshot before, at and after the move restores to the same labels.
  for (const [input, output] of [[openB(55), whole], [closedB, updated]] as const) {
    for (let cut = 3; cut <= 6; cut++) {
      assert.equal(await outputsRestoredAt(stages, input, cut), modelOutputs(output), `cut ${cut}`);
    }
  }
});

test('churn: a grace longer than the horizon\'s margin in the label timeout does not expire a churner before its label (the timeout counts from end + grace)', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  // Horizon 30 m, label timeout 1 h; the grace (gap + allowed_lateness) 40 m: the label comes after 70 m, past end + timeout.
  const input: Element[] = [event('a', 'a1', t, 0, t, 'view'), { ...summary('a', 'a1', t, t, 1, false, { view: 1 }), keptUntil: t + 40 * min }, watermark(t + 65 * min), watermark(t + 71 * min), watermark(Infinity)];
  const config = { backend: 'cpu', horizon: '30m', label_buffer: { timeout: '1h' }, batch: { max_size: 1, max_delay: 0 }, report: true } as const;
  const { output } = await runOperator(churnModel, config, input);
  const report = reportOf(output);
  // Before the timeout counted from end + grace, expired at the watermark 65 (0 + 1 h), its label not come.
  assert.deepEqual([report.summary.n, report.summary.positives, report.counts.expired], [1, 1, 0]);
  const early = reportOf((await runOperator(churnModel, config, [...input.slice(0, 3), watermark(Infinity)])).output);
  assert.deepEqual([early.summary.n, early.counts.expired, early.counts.unlabelledAtEnd], [0, 0, 1], 'not labelled at end + horizon (30)');
});

test('churn: pending predictions of a snapshot written before the grace (format 3, by c97d22f) restore without it, labelled at end + horizon as then; the next snapshot is format 5', async () => {
  const t = Date.UTC(2024, 0, 1);
  const s = (user: string, start: number): string => `${user}:${start}`;
  const kept = (record: StreamRecord & { end: number }): Element => ({ ...record, keptUntil: record.end + 40 * min });
  // The stream churnFormat3NoGrace was cut from (at 5, the watermark 50 m: a's and b's predictions pending).
  const input: Element[] = [
    event('a', s('a', t), t, 0, t, 'view'),
    kept(summary('a', s('a', t), t, t, 1, false, { view: 1 })),
    event('b', s('b', t), t, 0, t, 'view'),
    kept(summary('b', s('b', t), t, t, 1, false, { view: 1 })),
    watermark(t + 50 * min),
    watermark(t + 70 * min),
    event('a', s('a', t + 50 * min), t + 50 * min, 0, t + 50 * min, 'view'), // a late return
    watermark(t + 95 * min),
    watermark(t + 101 * min),
    watermark(Infinity),
  ];
  const config = { backend: 'cpu', horizon: '1h', batch: { max_size: 1, max_delay: 0 }, report: true } as IntentModelConfig;
  const old = await fedOperator(churnModel, config, churnFormat3NoGrace);
  const resaved = JSON.parse(JSON.stringify(await old.operator.snapshot!())) as { format: number; users: { pendingGraces: Column } };
  assert.equal(resaved.format, 5);
  assert.deepEqual([...decodeColumn(resaved.users.pendingGraces, 'test')], [0, 0]);
  for (const element of input.slice(5)) old.input.next(element);
  old.input.complete();
  await old.done;
  await old.operator.close?.();
  // Both labelled 1 at the watermark 70, as the build that wrote it labelled them.
  assert.deepEqual([reportOf(old.output).summary.n, reportOf(old.output).summary.positives], [2, 2]);
  // This build's own snapshot at the same cut keeps the grace: a's return is seen.
  const first = await runOperator(churnModel, config, input.slice(0, 5));
  assert.deepEqual([...decodeColumn((first.state as typeof resaved).users.pendingGraces, 'test')], [40 * min, 40 * min]);
  const restored = await fedOperator(churnModel, config, first.state);
  for (const element of input.slice(5)) restored.input.next(element);
  restored.input.complete();
  await restored.done;
  await restored.operator.close?.();
  assert.deepEqual([reportOf(restored.output).summary.n, reportOf(restored.output).summary.positives], [2, 1]);
});

test('churn: a return after the horizon labels 1', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const input: Element[] = [
    event('a', 'a1', t, 0, t, 'view'),
    summary('a', 'a1', t, t, 1, false, { view: 1 }),
    event('a', 'a2', t + 8 * day, 0, t + 8 * day, 'view'), // back after 8 days: a1 churned (7d horizon)
    watermark(t + 9 * day),
    watermark(Infinity),
  ];
  const { output } = await runOperator(churnModel, { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true }, input);
  const report = reportOf(output);
  assert.equal(report.summary.n, 1);
  assert.equal(report.summary.positives, 1);
});

test('churn: the next session seen before the previous summary still labels it', async () => {
  const t = Date.parse('2024-01-01T00:00:00Z');
  const input: Element[] = [
    event('a', 'a1', t, 0, t, 'view'),
    event('a', 'a2', t + day, 0, t + day, 'view'), // next session before a1's summary
    summary('a', 'a1', t, t, 1, false, { view: 1 }),
    watermark(t + 8 * day),
    watermark(Infinity),
  ];
  const { output } = await runOperator(churnModel, { backend: 'cpu', batch: { max_size: 1, max_delay: 0 }, report: true }, input);
  const report = reportOf(output);
  assert.equal(report.summary.n, 1);
  assert.equal(report.summary.positives, 0);
});

test('churn: a user forgotten for max_users takes its pending predictions out of the label buffer at once, counted as expired (was: they waited for label_buffer.timeout, 1d by default, though no label could come: a 2-minute-horizon soak held ~25 more per second)', async () => {
  const t = Date.UTC(2024, 0, 1);
  const metrics = new MetricsHub();
  const operator = await churnModel.create({ ...base, horizon: '1h', max_users: 2, batch: { max_size: 1, max_delay: 0 } } as IntentModelConfig, testContext({ metrics: metrics.scoped({ pipeline: 'test', stage: 'churn' }) }));
  await operator.open?.();
  const input = new Subject<Element>();
  const output: Element[] = [];
  const done = new Promise<void>((resolve, reject) => operator.apply(input).subscribe({ next: (element) => void output.push(element), error: reject, complete: resolve }));
  const gauge = async (name: string): Promise<number> => Number(new RegExp(`^tributary_${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(await metrics.registry.metrics())?.[1]);
  // a, b and c each end a session (a prediction each, awaiting its horizon); c's first event forgets a.
  for (const [i, user] of ['a', 'b', 'c'].entries()) {
    const start = t + i * min;
    input.next(event(user, `${user}:${start}`, start, 0, start, 'view'));
    input.next(summary(user, `${user}:${start}`, start, start, 1, false, { view: 1 }));
  }
  input.next(watermark(t + 10 * min));
  await until(async () => (await gauge('model_predictions_total')) === 3, 'three predictions');
  assert.equal(await gauge('churn_users_evicted_total'), 1);
  assert.equal(await gauge('churn_known_users'), 2, 'b and c: at max_users');
  assert.equal(await gauge('model_labels_expired_total'), 1, "a's prediction left with a");
  // Past every deadline: b's and c's are labelled (churned), a's is not counted again.
  input.next(watermark(t + 3 * 60 * min));
  input.complete();
  await done;
  assert.equal(await gauge('model_labels_total'), 2);
  assert.equal(await gauge('model_labels_expired_total'), 1);
  await operator.close?.();
});

test('churn: a diverged model\'s predictions are counted and said when made, not a horizon later when their labels come; their labels count nothing more', async () => {
  // Every score not a number, as a diverged model's (its weights no longer finite).
  const diverged = mock.method(LogisticRegression.prototype, 'predictRow', () => Number.NaN);
  try {
    const t = Date.parse('2024-01-01T00:00:00Z');
    const input: Element[] = [];
    for (let d = 0; d < 3; d++) {
      for (const u of ['a', 'b']) {
        input.push(event(u, `${u}${d}`, t + d * day, 0, t + d * day, 'view'));
        input.push(summary(u, `${u}${d}`, t + d * day, t + d * day + min, 1, false, { view: 1 }));
      }
    }
    const config = { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true } as const;
    const run = async (elements: Element[]) => {
      const errors: unknown[][] = [];
      const context = testContext();
      const logged = { ...context, logger: { ...context.logger, error: (...args: unknown[]) => void errors.push(args) } } as typeof context;
      const { output } = await runOperator(churnModel, config, elements, logged);
      const report = reportOf(output);
      return { output, errors, report };
    };
    // The input ends before any label is due: before, 0 invalid scores, 6 unlabelled, nothing said.
    const early = await run([...input, watermark(t + 3 * day), watermark(Infinity)]);
    assert.equal(of(early.output, 'prediction').length, 6);
    assert.deepEqual([early.report.counts.invalidScores, early.report.counts.unlabelledAtEnd], [6, 0]);
    assert.equal(early.errors.length, 1);
    assert.match(early.errors[0]![1] as string, /the model diverged/);
    // Every label comes: each prediction is counted once (no late label, no second count).
    const late = await run([...input, watermark(t + 20 * day), watermark(Infinity)]);
    const { counts, summary: scored } = late.report;
    assert.deepEqual([counts.predictions, counts.invalidScores, counts.labels, counts.lateLabels, counts.unlabelledAtEnd, scored.n], [6, 6, 0, 0, 0, 0]);
    assert.equal(counts.labels + counts.overflow + counts.expired + counts.unlabelledAtEnd + counts.withdrawn + counts.invalidScores, counts.predictions);
    assert.equal(late.errors.length, 1);
    // A snapshot between prediction and label restores to the uninterrupted run.
    const whole = await runOperator(churnModel, config, [...input, watermark(t + 20 * day), watermark(Infinity)]);
    const first = await runOperator(churnModel, config, [...input, watermark(t + 3 * day)]);
    const rest = await runOperator(churnModel, config, [watermark(t + 20 * day), watermark(Infinity)], testContext(), { restore: first.state });
    assert.equal(modelOutputs(first.output) + '\n' + modelOutputs(rest.output), modelOutputs(whole.output));
  } finally {
    diverged.mock.restore();
  }
});

test("churn: a session that started days before the user's first event seen (a late event began it) makes no NaN tenure feature: the user's first seen moves back to it (was: log1p of minus 2 days, NaN)", async () => {
  const t = Date.parse('2024-01-10T00:00:00Z');
  const warned: string[] = [];
  const context = testContext();
  const logger = { ...context.logger, warn: (_: unknown, message?: string) => void (message !== undefined && warned.push(message)) };
  const input: Element[] = [
    event('a', 'a2', t, 0, t, 'view'),
    // Late: a session 3 days before, its own.
    event('a', 'a1', t - 3 * day, 0, t - 3 * day, 'view'),
    summary('a', 'a1', t - 3 * day, t - 3 * day + 60_000, 1, false, { view: 1 }),
    summary('a', 'a2', t, t + 60_000, 1, false, { view: 1 }),
    watermark(Infinity),
  ];
  const { output } = await runOperator(churnModel, { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, report: true }, input, { ...context, logger } as typeof context);
  assert.equal(of(output, 'prediction').length, 2);
  assert.deepEqual(warned.filter((message) => message.includes('not finite')), []);
  assert.deepEqual(reportOf(output).skippedFeatureValues, { absent: {}, nonFinite: {} });
});

test('churn: max_users forgets the user seen least recently, not the one first seen longest ago: a loyal returner keeps its history and its label 0 (was: it was forgotten first, its awaited label 0 expired, so the labels leaned to churn)', async () => {
  const t = Date.UTC(2024, 0, 1);
  const metrics = new MetricsHub();
  const operator = await churnModel.create({ ...base, horizon: '1h', max_users: 2, batch: { max_size: 1, max_delay: 0 }, report: true } as IntentModelConfig, testContext({ metrics: metrics.scoped({ pipeline: 'test', stage: 'churn' }) }));
  await operator.open?.();
  const input = new Subject<Element>();
  const output: Element[] = [];
  const done = new Promise<void>((resolve, reject) => operator.apply(input).subscribe({ next: (element) => void output.push(element), error: reject, complete: resolve }));
  const value = async (name: string): Promise<number> => Number(new RegExp(`^tributary_${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(await metrics.registry.metrics())?.[1]);
  const session = (user: string, start: number): void => {
    input.next(event(user, `${user}:${start}`, start, 0, start, 'view'));
    input.next(summary(user, `${user}:${start}`, start, start, 1, false, { view: 1 }));
  };
  session('loyal', t); // first seen first
  session('once-1', t + 10 * min);
  session('loyal', t + 40 * min); // back: its first session is labelled 0
  input.next(watermark(t + 75 * min)); // once-1's and loyal's first labels are due and given
  await until(async () => (await value('model_labels_total')) === 2, 'two labels');
  // A third user: one of the two known goes. once-1 was seen an hour ago, its label given; loyal 40 minutes ago, awaiting its return.
  session('once-2', t + 80 * min);
  session('loyal', t + 90 * min); // back within the horizon of its second session: label 0
  input.next(watermark(t + 5 * 60 * min)); // every deadline passed
  input.next(watermark(Infinity)); // the end: the report
  input.complete();
  await done;
  assert.equal(await value('model_labels_total'), 5);
  assert.equal(await value('churn_users_evicted_total'), 1, 'once-1 forgotten, loyal kept');
  assert.equal(await value('model_labels_expired_total'), 0, 'no label lost to the bound');
  // loyal's first two sessions returned (0); once-1, once-2 and loyal's third did not (1): 3 of 5, as without the bound.
  await operator.close?.();
  const report = reportOf(output);
  assert.equal(report.summary.n, 5);
  assert.equal(report.summary.positives, 3);
});

// emit_labels' `unlabelled` records: with the `label` records, exactly one outcome per prediction, and by reason the
// model report's counts.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { watermark, type Element, type StreamRecord } from 'tributary';
import { runOperator, testContext } from 'tributary/testing';
import { lastValueFrom, Subject, toArray } from 'rxjs';
import intentModel, { type IntentModelConfig } from './intent.js';
import churnModel from './churn.js';
import { event, summary } from './testdata.js';
import { LogisticRegression } from './logistic.js';
import { min, hour, day, base, of, fedOperator, reportOf } from './models-test-helpers.js';

/**
 * Checks what a consumer of `output` relies on: each prediction has exactly one outcome record after it (a `label`,
 * or an `unlabelled` with its reason), none is for an unknown prediction, `label` records are what they were (a
 * number label, no reason), and the outcomes by reason are the model report's counts. Returns the reasons seen.
 */
function assertOneOutcomeEach(output: readonly Element[], what: string): Map<string, number> {
  const records = output as StreamRecord[];
  const predictedAt = new Map<string, number>();
  const outcomes = new Map<string, string>();
  const reasons = new Map<string, number>();
  records.forEach((r, at) => {
    if (r.kind === 'prediction') {
      assert.ok(!predictedAt.has(r.id as string), `${what}: prediction ${String(r.id)} twice`);
      predictedAt.set(r.id as string, at);
      return;
    }
    if (r.kind !== 'label' && r.kind !== 'unlabelled') return;
    const id = r.predictionId as string;
    const before = predictedAt.get(id);
    assert.ok(before !== undefined && before < at, `${what}: ${r.kind} ${id} before its prediction (or for an unknown one)`);
    assert.ok(!outcomes.has(id), `${what}: prediction ${id} has two outcomes: ${outcomes.get(id)} and ${JSON.stringify(r)}`);
    if (r.kind === 'label') {
      assert.ok(r.label === 0 || r.label === 1, `${what}: label ${JSON.stringify(r)}`);
      assert.ok(!('reason' in r), `${what}: a label record carries no reason`);
      outcomes.set(id, `label ${String(r.label)}`);
    } else {
      assert.ok(!('label' in r), `${what}: an unlabelled record carries no label`);
      outcomes.set(id, r.reason as string);
      reasons.set(r.reason as string, (reasons.get(r.reason as string) ?? 0) + 1);
    }
  });
  for (const id of predictedAt.keys()) assert.ok(outcomes.has(id), `${what}: prediction ${id} has no outcome`);
  const counts = reportOf(output).counts;
  const n = (reason: string): number => reasons.get(reason) ?? 0;
  assert.deepEqual(
    {
      predictions: predictedAt.size,
      labels: of(output as Element[], 'label').length,
      overflow: n('overflow'),
      expired: n('expired') + n('handed_over'),
      unlabelledAtEnd: n('unlabelled_at_end'),
      withdrawn: n('withdrawn'),
      invalidScores: n('invalid_score'),
    },
    { predictions: counts.predictions, labels: counts.labels, overflow: counts.overflow, expired: counts.expired, unlabelledAtEnd: counts.unlabelledAtEnd, withdrawn: counts.withdrawn, invalidScores: counts.invalidScores },
    `${what}: outcomes by reason against the report's counts`,
  );
  return reasons;
}

const t = Date.parse('2024-01-01T00:00:00Z');
const v = [0.5, 0, 0, 0];

/** Intent input forcing every way a prediction goes unlabelled, beside labelled sessions. */
function intentInput(): Element[] {
  const input: Element[] = [];
  // Labelled: two sessions, one bought.
  input.push(event('a', 'L1', t, 0, t, 'view', v), event('a', 'L1', t + min, 1, t, 'purchase', v), summary('a', 'L1', t, t + min, 2, true));
  input.push(event('b', 'L2', t, 0, t, 'view', v), summary('b', 'L2', t, t, 1, false));
  // Expired: x's session gets no summary; the watermark passes its event + the timeout (1h).
  input.push(event('x', 'X', t, 0, t, 'view', v), watermark(t + 2 * hour));
  // Overflow: 8 events of one session into the label buffer (max_size 4): its last 4 are not held. Its summary
  // labels the first 4 (the last 4's labels late), which leaves the buffer empty for what follows.
  const t2 = t + 3 * hour;
  for (let p = 0; p < 8; p++) input.push(event('c', 'O', t2 + p * min, p, t2, 'view', v));
  input.push(summary('c', 'O', t2, t2 + 7 * min, 8, false));
  // Withdrawn: a late event merges A, which bought, into E: E's prediction at +45, after that purchase, is not scored (as the intent labels test).
  input.push(
    event('d', 'E', t2, 0, t2, 'view', v),
    summary('d', 'E', t2, t2, 1, false),
    event('d', 'A', t2 + 40 * min, 0, t2 + 40 * min, 'view', v),
    event('d', 'A', t2 + 41 * min, 1, t2 + 40 * min, 'purchase', v),
    event('d', 'E', t2 + 20 * min, 2, t2, 'view', v),
    event('d', 'E', t2 + 45 * min, 3, t2, 'view', v),
    { ...summary('d', 'E', t2, t2 + 45 * min, 4, true), update: true, replaces: ['A'] },
  );
  // Unlabelled at the end: an open session when the input ends.
  input.push(event('e', 'U', t2 + 2 * hour, 0, t2 + 2 * hour, 'view', v), event('e', 'U', t2 + 2 * hour + min, 1, t2 + 2 * hour, 'view', v));
  input.push(watermark(Infinity));
  return input;
}

/** Logistic scores each prediction at once; an mlp waits for its batch (16), so the label buffer (4) gives up some before their batch runs. */
const intentConfigs: [string, IntentModelConfig][] = [
  ['logistic', { ...base, batch: { max_size: 1, max_delay: 0 }, label_buffer: { max_size: 4, timeout: '1h' }, emit_labels: true, report: true }],
  ['mlp, batches of 16', { ...base, model: { kind: 'mlp', hidden: [4] }, batch: { max_size: 16, max_delay: 0 }, label_buffer: { max_size: 4, timeout: '1h' }, emit_labels: true, report: true }],
];

test('intent, emit_labels: every prediction gets exactly one outcome, a label or an unlabelled record with its reason (overflow, expired, withdrawn, unlabelled_at_end), and by reason they are the report\'s counts; one given up before its batch ran is said after its prediction', async () => {
  for (const [what, config] of intentConfigs) {
    const { output } = await runOperator(intentModel, config, intentInput());
    const reasons = assertOneOutcomeEach(output, what);
    for (const reason of ['overflow', 'expired', 'withdrawn', 'unlabelled_at_end']) assert.ok((reasons.get(reason) ?? 0) > 0, `${what}: '${reason}' forced (seen: ${JSON.stringify([...reasons])})`);
    assert.ok(of(output, 'label').length >= 2, 'some labelled');
    const given = of(output, 'unlabelled')[0]!;
    assert.deepEqual(Object.keys(given), ['kind', 'predictionId', 'model', 'task', 'userId', 'sessionId', 'reason']);
    assert.equal(given.task, 'intent');
  }
  // Without emit_labels, none.
  const { output } = await runOperator(intentModel, { ...intentConfigs[1]![1], emit_labels: false }, intentInput());
  assert.deepEqual([of(output, 'label').length, of(output, 'unlabelled').length], [0, 0]);
});

test('intent, emit_labels: a prediction given up before its batch ran and snapshotted so keeps its reason: restored anywhere, each prediction still gets one outcome, the same as uninterrupted', async () => {
  const config = intentConfigs[1]![1];
  const input = intentInput();
  const outcomes = (output: readonly Element[]): string[] =>
    (output as StreamRecord[]).filter((r) => r.kind === 'label' || r.kind === 'unlabelled').map((r) => `${String(r.predictionId)} ${String(r.reason ?? r.label)}`).sort();
  const whole = await runOperator(intentModel, config, input);
  for (let cut = 1; cut < input.length; cut++) {
    const first = await runOperator(intentModel, config, input.slice(0, cut));
    const rest = await runOperator(intentModel, config, input.slice(cut), testContext(), { restore: first.state });
    const output = [...first.output, ...rest.output];
    assertOneOutcomeEach(output, `restored at ${cut}`);
    assert.deepEqual(outcomes(output), outcomes(whole.output), `restored at ${cut}`);
  }
});

test('churn, emit_labels: every prediction gets exactly one outcome (labelled, withdrawn by a merge, expired with a user forgotten for max_users, handed_over with a revoked partition, overflow, unlabelled_at_end), and by reason they are the report\'s counts', async () => {
  let partition: string | undefined;
  const config = { backend: 'cpu', horizon: '1d', max_users: 2, label_buffer: { max_size: 2 }, batch: { max_size: 1, max_delay: 0 }, emit_labels: true, report: true } as IntentModelConfig;
  const operator = await churnModel.create({ ...config }, testContext({ currentPartition: () => partition }));
  await operator.open?.();
  const input = new Subject<Element>();
  const done = lastValueFrom(operator.apply(input).pipe(toArray()));
  const session = (user: string, id: string, start: number, p?: string): void => {
    partition = p;
    input.next(event(user, id, start, 0, start, 'view'));
    input.next(summary(user, id, start, start, 1, false, { view: 1 }));
    partition = undefined;
  };
  // Labelled: a returns within the horizon (0), then does not (1).
  session('a', 'a1', t);
  session('a', 'a2', t + hour);
  input.next(watermark(t + 2 * day));
  // Withdrawn: b's two sessions, both predicted, then merged by a late event.
  session('b', 'B1', t + 2 * day);
  session('b', 'B2', t + 2 * day + 40 * min);
  input.next({ ...summary('b', 'B1', t + 2 * day, t + 2 * day + 40 * min, 3, false, { view: 3 }), update: true, replaces: ['B2'] });
  // Handed over: h's partition moves to another member (h's arrival forgets a, at max_users 2, nothing pending).
  session('h', 'H1', t + 2 * day + hour, 'clicks-0');
  operator.partitionsRevoked!(['clicks-0']);
  // Expired: d's arrival forgets b (the least recently seen), its merged session's prediction pending; g's forgets c.
  session('c', 'c1', t + 2 * day + 2 * hour);
  session('d', 'd1', t + 2 * day + 3 * hour);
  // Overflow: g's sessions pending past the label buffer's 2; unlabelled at the end: the last two.
  for (let i = 0; i < 3; i++) session('g', `g${i}`, t + 2 * day + (4 + i) * hour);
  input.next(watermark(Infinity));
  input.complete();
  const output = await done;
  await operator.close?.();
  const reasons = assertOneOutcomeEach(output, 'churn');
  for (const reason of ['withdrawn', 'expired', 'handed_over', 'overflow', 'unlabelled_at_end']) assert.ok((reasons.get(reason) ?? 0) > 0, `'${reason}' forced (seen: ${JSON.stringify([...reasons])})`);
  assert.ok(of(output, 'label').length >= 2, 'some labelled');
  assert.equal(of(output, 'unlabelled')[0]!.task, 'churn');
});

test('emit_labels: a diverged model\'s predictions (score null) each get one unlabelled record, invalid_score, and their labels none', async () => {
  const diverged = mock.method(LogisticRegression.prototype, 'predictRow', () => Number.NaN);
  try {
    const input: Element[] = [];
    for (let d = 0; d < 3; d++) for (const u of ['a', 'b']) input.push(event(u, `${u}${d}`, t + d * day, 0, t + d * day, 'view'), summary(u, `${u}${d}`, t + d * day, t + d * day + min, 1, false, { view: 1 }));
    input.push(watermark(t + 20 * day), watermark(Infinity));
    const { output } = await runOperator(churnModel, { backend: 'cpu', horizon: '7d', batch: { max_size: 1, max_delay: 0 }, emit_labels: true, report: true } as IntentModelConfig, input);
    const reasons = assertOneOutcomeEach(output, 'diverged');
    assert.deepEqual([...reasons], [['invalid_score', 6]]);
  } finally {
    diverged.mock.restore();
  }
});

test('churn, emit_labels: the unlabelled records of a revoked partition\'s predictions (handed_over, queued for the next record) survive a checkpoint taken before that record: restored, each is emitted once; uninterrupted, once; and none while the runtime holds the sources for the checkpoint', async () => {
  let partition: string | undefined;
  // The runtime's hold (PluginContext.held): a checkpoint's state is taken as it begins, its outputs committed as it ends.
  let hold: Promise<void> | undefined;
  const config = { backend: 'cpu', horizon: '1d', batch: { max_size: 1, max_delay: 0 }, emit_labels: true, report: true } as IntentModelConfig;
  const operator = await churnModel.create({ ...config }, testContext({ currentPartition: () => partition, held: () => hold }));
  await operator.open?.();
  const input = new Subject<Element>();
  const output: Element[] = [];
  const done = new Promise<void>((resolve, reject) => operator.apply(input).subscribe({ next: (element) => void output.push(element), error: reject, complete: resolve }));
  for (const [user, p] of [['a', 'clicks-0'], ['h', 'clicks-0'], ['b', 'clicks-1']] as const) {
    partition = p;
    input.next(event(user, `${user}1`, t, 0, t, 'view'));
    input.next(summary(user, `${user}1`, t, t, 1, false, { view: 1 }));
  }
  partition = undefined;
  const handedOver = (records: readonly Element[]): string[] =>
    of(records as Element[], 'unlabelled')
      .filter((r) => r.reason === 'handed_over')
      .map((r) => String(r.userId))
      .sort();
  operator.partitionsRevoked!(['clicks-0']);
  assert.deepEqual(handedOver(output), [], 'no emit at hand: queued for the next record');
  // A checkpoint before that record: the state of this instant, then the sources held until its outputs are committed.
  hold = new Promise<void>(() => undefined);
  const state = JSON.parse(JSON.stringify(await operator.snapshot!())) as unknown;
  // A record reaching the stage meanwhile (another stage's timer) leaves them queued: the state holds them.
  input.next(watermark(t + hour));
  assert.deepEqual(handedOver(output), [], 'none committed with the checkpoint whose state holds them');
  hold = undefined;
  input.next(watermark(t + 2 * hour));
  input.next(watermark(Infinity));
  input.complete();
  await done;
  await operator.close?.();
  assert.deepEqual(handedOver(output), ['a', 'h'], 'uninterrupted: once each');
  assertOneOutcomeEach(output, 'uninterrupted');

  // Restored from that checkpoint (a crash after it, or a stop before the next record), the next record emits them.
  const restored = await fedOperator(churnModel, config, state);
  restored.input.next(watermark(t + 2 * hour));
  assert.deepEqual(handedOver(restored.output), ['a', 'h'], 'restored: emitted at the first record');
  restored.input.next(watermark(Infinity));
  restored.input.complete();
  await restored.done;
  await restored.operator.close?.();
  assert.deepEqual(handedOver(restored.output), ['a', 'h'], 'restored: once each');
  assert.equal(reportOf(restored.output).counts.expired, 2, 'the counts the records say');
  // Restored with emit_labels off, none: no sink is to get the kind.
  const off = await runOperator(churnModel, { ...config, emit_labels: false }, [watermark(t + 2 * hour), watermark(Infinity)], testContext(), { restore: state });
  assert.deepEqual(of(off.output, 'unlabelled'), []);
});

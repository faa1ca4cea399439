import { test } from 'node:test';
import assert from 'node:assert/strict';
import { watermark, type Element } from 'tributary';
import { countLoopTurns, runOperator, testContext } from 'tributary/testing';
import intentModel, { type IntentModelConfig } from './intent.js';
import churnModel from './churn.js';
import { event, rng, summary } from './testdata.js';
import { day, base, of, fedOperator, modelOutputs } from './models-test-helpers.js';

for (const [name, plugin, kind] of [
  ['intent', intentModel, 'logistic'],
  ['intent', intentModel, 'mlp'],
  ['churn', churnModel, 'logistic'],
] as const) {
  test(`${name} (${kind}): a large snapshot is taken in parts while records keep arriving, holds the state of its call, and restores to the uninterrupted run's predictions and metrics`, async () => {
    // More samples awaiting labels than one part holds (65,536 rows): the snapshot takes several
    // parts whatever the machine's speed, and the records pushed after its first part find it pending.
    const n = 70_000;
    const t0 = Date.UTC(2024, 0, 1);
    const random = rng(11);
    const buyer = Array.from({ length: n }, () => random() < 0.3);
    const features = (s: number): number[] => [(buyer[s] ? 1 : -1) + (random() - 0.5), random(), random(), random()];
    // Churn's horizon is 1 day: a session ending at t0 + s * 10 is labelled once the watermark passes t0 + 1 day + s * 10.
    const config: IntentModelConfig = { ...base, model: { kind, hidden: [8] }, batch: { max_size: 256, max_delay: 0 }, drift: { detector: 'adwin', action: 'reset_optimizer' }, report: true, ...(name === 'churn' ? { horizon: '1d' } : { label_buffer: { timeout: '2m' } }) };
    // Before the snapshot: every session open (intent: one view each, awaiting its summary) or closed (churn: awaiting its horizon).
    const before: Element[] = [];
    for (let s = 0; s < n; s++) {
      const time = t0 + s * 10;
      before.push(event(`u${s}`, `s${s}`, time, 0, time, 'view', features(s)));
      if (name === 'churn') before.push(summary(`u${s}`, `s${s}`, time, time, 1, buyer[s]!));
    }
    // While its parts run: labels (intent: summaries; churn: returns, then the horizon passing), new predictions, expiry.
    const during: Element[] = [];
    const after: Element[] = [];
    for (let s = 0; s < n; s++) {
      const time = t0 + s * 10;
      const into = s < n / 2 ? during : after;
      if (name === 'intent') into.push(summary(`u${s}`, `s${s}`, time, time + 1, 1, buyer[s]!));
      // Churn: non-buyers come back an hour later (a session closed: a new prediction).
      else if (!buyer[s]) into.push(event(`u${s}`, `r${s}`, time + 3_600_000, 0, time + 3_600_000, 'view', features(s)), summary(`u${s}`, `r${s}`, time + 3_600_000, time + 3_600_000, 1, false));
      if (s % 5000 === 4999) into.push(watermark(name === 'intent' ? time : time + day));
    }
    // First, a record that changes the operator's own state before the learner's (a new session or user).
    during.unshift(event('late', 'late', t0 + 1, 0, t0 + 1, 'view', features(0)));
    after.push(watermark(Infinity));

    const whole = await fedOperator(plugin, config);
    for (const element of before) whole.input.next(element);
    const cut = whole.output.length;
    // Taken with nothing arriving while its parts run: the state of that instant.
    const quiet = JSON.stringify(await whole.operator.snapshot!());
    if (name === 'churn') {
      // Each pending prediction once: its id remade (70,000 of them), its deadline a row of the pending list.
      const { users, deadlines } = JSON.parse(quiet) as { users: { pendingIds: string[] }; deadlines: Record<string, unknown> };
      assert.equal(users.pendingIds.length, 0);
      assert.deepEqual(Object.keys(deadlines).sort(), ['at', 'pending']);
    }
    for (const element of [...during, ...after]) whole.input.next(element);
    whole.input.complete();
    await whole.done;

    const busy = await fedOperator(plugin, config);
    for (const element of before) busy.input.next(element);
    let resolved = false;
    const taken = Promise.resolve(busy.operator.snapshot!()).then((state) => {
      resolved = true;
      return state;
    });
    await new Promise((resolve) => setImmediate(resolve)); // its first part done, the others pending
    assert.equal(resolved, false, 'the snapshot is still in parts when the next records come');
    for (const element of during) busy.input.next(element);
    // Compared as text (as a checkpoint holds it): assert.deepEqual takes seconds on 70,000 samples.
    const saved = JSON.stringify(await taken);
    assert.ok(saved === quiet, 'the snapshot holds the state of its call, not of the records handled while it was taken');
    for (const element of after) busy.input.next(element);
    busy.input.complete();
    await busy.done;
    assert.ok(modelOutputs(busy.output) === modelOutputs(whole.output), 'taking the snapshot changed no output');

    const restored = await fedOperator(plugin, config, JSON.parse(saved));
    for (const element of [...during, ...after]) restored.input.next(element);
    restored.input.complete();
    await restored.done;
    assert.ok(of(restored.output, 'prediction').length > 0 && of(restored.output, 'model_metrics').length === 1);
    assert.ok(modelOutputs(restored.output) === modelOutputs(whole.output.slice(cut)), 'restored, the rest of the run is the uninterrupted one\'s');
    for (const run of [whole, busy, restored]) await run.operator.close?.();
  });
}

test('a large model state is restored in parts, the event loop turning between them, and whole', async () => {
  // More samples awaiting labels than one part holds (65,536 rows): a million in one go held the loop for seconds.
  const n = 70_000;
  const t0 = Date.UTC(2024, 0, 1);
  const config: IntentModelConfig = { backend: 'cpu', batch: { max_size: 256, max_delay: 0 } };
  const intentInput = Array.from({ length: n }, (_, s) => event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]));
  const churnInput = Array.from({ length: n }, (_, s) => [event(`u${s}`, `s${s}`, t0 + s, 0, t0 + s, 'view', [1, 0, 0, 0]), summary(`u${s}`, `s${s}`, t0 + s, t0 + s + 60_000, 1, false)]).flat();
  for (const [plugin, input] of [
    [intentModel, intentInput],
    [churnModel, churnInput],
  ] as const) {
    const first = await runOperator(plugin, config, input);
    const saved = JSON.parse(JSON.stringify(await first.operator.snapshot!())) as unknown;
    const operator = await plugin.create({ ...config }, testContext());
    await operator.open?.();
    const loop = countLoopTurns();
    await operator.restore!(saved);
    const turns = loop.stop();
    assert.ok(turns >= 1, `${plugin.name}: the event loop turned ${turns} times during the restore`);
    assert.deepEqual(JSON.parse(JSON.stringify(await operator.snapshot!())), saved, `${plugin.name}: restored whole`);
    await operator.close?.();
    await first.operator.close?.();
  }
});

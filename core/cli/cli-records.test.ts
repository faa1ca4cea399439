// What a consumer downstream of a pipeline relies on, checked on records `tributary run` writes: every field of
// every record kind is the one docs/records.md lists, a consumer recomputes a model's prequential AUC from the
// predictions and `label` records alone, and a replay after kill -9 writes duplicates under the same ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { boundedSpawnSync, spawnTributary } from 'tributary/testing';
import { ShopperWorld } from '../../plugins/sources/shoppers.js';
import { cli, dir, pipeline, tributary } from './cli-test-helpers.js';
import { documentedFields } from './records-doc-test-helpers.js';

type OutputRecord = { kind: string; [field: string]: unknown };

function readRecords(file: string): OutputRecord[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as OutputRecord);
}

/** ROC AUC with ties counting half, as a consumer computes it (a rank sum over the sorted scores). */
function exactAuc(pairs: readonly { score: number; label: number }[]): number {
  const sorted = [...pairs].sort((a, b) => a.score - b.score);
  let positives = 0;
  let negatives = 0;
  let rankSum = 0;
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j < sorted.length && sorted[j]!.score === sorted[i]!.score) j++;
    const midRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) {
      if (sorted[k]!.label === 1) {
        positives++;
        rankSum += midRank;
      } else negatives++;
    }
    i = j;
  }
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** The demo's stages, every kind of record on; `churnBatch`: the churn model's `batch` (intent's is cut by size alone). */
const modelStages = (churnBatch = 'batch: {max_delay: 0}'): string => `  - {type: sessionizer, gap: 30m}
  - type: session-features
  - type: user-features
  - type: intent-model
    name: intent
    model: {kind: logistic}
    batch: {max_delay: 0}
    metrics: {exact_auc_limit: 1000000}
    drift: {detector: page-hinkley, block: 20, threshold: 0.5}
    emit_labels: true
    report: true
  - type: churn-model
    name: churn
    horizon: 1d
    model: {kind: logistic}
    ${churnBatch}
    metrics: {exact_auc_limit: 1000000}
    emit_labels: true
    report: true
`;

let written: OutputRecord[] | undefined;
/** One run of the demo's models on synthetic shoppers, every kind written: shared by the tests below. */
function demoOutput(): OutputRecord[] {
  if (written) return written;
  const out = join(dir, 'records-out.jsonl');
  const file = pipeline(
    'records.yaml',
    `name: records
sources: [{type: synthetic, users: 300, events: 40000, seed: 5}]
stages:
${modelStages()}sinks: [{type: file, path: ${out}, kinds: [prediction, label, unlabelled, session, drift, model_metrics]}]
`,
  );
  const run = tributary('run', file, '--log-level', 'warn', '--no-progress');
  assert.equal(run.status, 0, run.stderr);
  written = readRecords(out);
  return written;
}

test('every field of every record kind a sink writes (prediction of either task, label, unlabelled, session, drift, model_metrics, event, dead_letter) is the one docs/records.md lists, and each listed as always there is', () => {
  const documented = documentedFields();
  // Events with what the stages add, and the mapped fields a synthetic source leaves out (a session id, attributes), from a
  // small run of their own; with dead letters: a line that is not JSON, an event without a user, one the sessionizer refuses.
  const events = join(dir, 'records-events.jsonl');
  const deadLetters = join(dir, 'records-dead-letters.jsonl');
  const input = join(dir, 'records-events-in.jsonl');
  const time = 1_704_067_200_000;
  writeFileSync(
    input,
    [
      JSON.stringify({ user_id: 'u1', session_id: 's1', time, type: 'view', item_id: 'i1', category: 'c1', price: 3, country: 'DE' }),
      'not json',
      JSON.stringify({ session_id: 's2', time, type: 'view' }),
      JSON.stringify({ user_id: 'u2', session_id: 's3', time: time - 86_400_000, type: 'view' }),
    ].join('\n') + '\n',
  );
  const eventRun = tributary('run', pipeline('records-events.yaml', `name: records-events
sources: [{type: file, path: ${input}, mapping: {time_format: epoch_ms, attributes: [country]}}]
stages: [{type: sessionizer, session_id_from: data, not_before: '2024-01-01T00:00:00Z'}, {type: session-features}]
sinks: [{type: file, path: ${events}, kinds: [event]}]
dead_letter: {type: file, path: ${deadLetters}}
`), '--log-level', 'warn', '--no-progress');
  assert.equal(eventRun.status, 0, eventRun.stderr);
  const rejected = readRecords(deadLetters);
  assert.deepEqual(rejected.map((r) => r.stage), ['source-file-0', 'source-file-0', 'stage-sessionizer-0'], 'the dead letters of the source and of a stage');
  const records = [...demoOutput(), ...readRecords(events), ...rejected];
  const seen = new Set<string>();
  for (const record of records) {
    const fields = documented.get(record.kind);
    assert.ok(fields, `kind '${record.kind}' has no table in docs/records.md`);
    const what = record.kind === 'prediction' || record.kind === 'label' || record.kind === 'unlabelled' ? `${record.kind} (${String(record.task)})` : record.kind;
    seen.add(what);
    for (const key of Object.keys(record)) assert.ok(fields.has(key), `${what}: field '${key}' is written but not in docs/records.md`);
    for (const [key, { optional }] of fields) if (!optional) assert.ok(key in record, `${what}: docs/records.md lists '${key}' as always there, but it is not: ${JSON.stringify(record).slice(0, 300)}`);
  }
  assert.deepEqual([...seen].sort(), ['dead_letter', 'drift', 'event', 'label (churn)', 'label (intent)', 'model_metrics', 'prediction (churn)', 'prediction (intent)', 'session', 'unlabelled (churn)', 'unlabelled (intent)'], 'every kind checked on a real record');
});

/**
 * Checks that a consumer who joins the labels to the predictions by id recomputes each model's reported figures
 * (its model_metrics record's summary) from `records` alone.
 */
function assertRecomputed(records: readonly OutputRecord[], what: string): void {
  for (const model of ['intent', 'churn']) {
    const predictions = new Map<string, number>();
    for (const r of records) if (r.kind === 'prediction' && r.model === model) predictions.set(r.id as string, r.score as number);
    const labels = records.filter((r) => r.kind === 'label' && r.model === model);
    const pairs = labels.map((label) => {
      assert.ok(predictions.has(label.predictionId as string), `${what}, ${model}: label for an unknown prediction ${String(label.predictionId)}`);
      return { score: predictions.get(label.predictionId as string)!, label: label.label as number };
    });
    assert.equal(new Set(labels.map((label) => label.predictionId)).size, labels.length, `${what}, ${model}: one label per prediction`);
    const reports = records.filter((r) => r.kind === 'model_metrics' && r.model === model);
    assert.equal(reports.length, 1, `${what}, ${model}: one model_metrics record`);
    const summary = reports[0]!.summary as { n: number; positives: number; auc: number; aucExact: boolean; logloss: number };
    assert.equal(summary.aucExact, true);
    assert.ok(summary.n > 1000, `${what}, ${model}: enough labels to mean something (${summary.n})`);
    assert.equal(pairs.length, summary.n, `${what}, ${model}: a label record per label scored`);
    assert.equal(pairs.filter((p) => p.label === 1).length, summary.positives);
    const auc = exactAuc(pairs);
    assert.ok(Math.abs(auc - summary.auc) < 1e-9, `${what}, ${model}: AUC from the output ${auc}, reported ${summary.auc}`);
    const clip = (p: number): number => Math.min(1 - 1e-7, Math.max(1e-7, p));
    const logloss = pairs.reduce((sum, p) => sum - Math.log(p.label === 1 ? clip(p.score) : 1 - clip(p.score)), 0) / pairs.length;
    assert.ok(Math.abs(logloss - summary.logloss) < 1e-6, `${what}, ${model}: log loss from the output ${logloss}, reported ${summary.logloss}`);
  }
}

test("emit_labels: a consumer joins each label to its prediction by id and recomputes the model's reported prequential AUC, log loss and label count from the output alone", () => {
  assertRecomputed(demoOutput(), 'one run');
});

test("emit_labels: in a pipeline's output every prediction has exactly one outcome, a label or an unlabelled record after it, and the unlabelled ones by reason are the model's reported counts", () => {
  const records = demoOutput();
  for (const model of ['intent', 'churn']) {
    const predicted = new Set<string>();
    const outcomes = new Set<string>();
    const reasons: Record<string, number> = {};
    for (const r of records) {
      if (r.model !== model) continue;
      if (r.kind === 'prediction') predicted.add(r.id as string);
      else if (r.kind === 'label' || r.kind === 'unlabelled') {
        const id = r.predictionId as string;
        assert.ok(predicted.has(id), `${model}: ${r.kind} ${id} before its prediction`);
        assert.ok(!outcomes.has(id), `${model}: two outcomes for ${id}`);
        outcomes.add(id);
        if (r.kind === 'unlabelled') reasons[r.reason as string] = (reasons[r.reason as string] ?? 0) + 1;
      }
    }
    assert.equal(outcomes.size, predicted.size, `${model}: an outcome for every prediction`);
    const counts = records.find((r) => r.kind === 'model_metrics' && r.model === model)!.counts as Record<string, number>;
    const n = (reason: string): number => reasons[reason] ?? 0;
    assert.deepEqual(
      [n('overflow'), n('expired') + n('handed_over'), n('withdrawn'), n('unlabelled_at_end'), n('invalid_score')],
      [counts.overflow, counts.expired, counts.withdrawn, counts.unlabelledAtEnd, counts.invalidScores],
      `${model}: unlabelled by reason (${JSON.stringify(reasons)}) against the report's counts`,
    );
    assert.ok(n('unlabelled_at_end') > 0, `${model}: some predictions still waiting at the end (${JSON.stringify(reasons)})`);
  }
});

test('without emit_labels no label is emitted, and a sink asking for kind label is a config error naming the field that turns it on', () => {
  const file = pipeline('no-labels.yaml', `name: nolabels
sources: [{type: synthetic, users: 50, events: 100}]
stages:
  - {type: sessionizer}
  - type: session-features
  - {type: intent-model, name: intent}
sinks: [{type: file, path: ${join(dir, 'no-labels.jsonl')}, kinds: [prediction, label]}]
`);
  const run = tributary('validate', file);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /label/);
  assert.match(run.stderr, /emit_labels: true/);
});

test("kill -9 mid-run, restart from the checkpoint: the replayed predictions and labels carry the same ids, and the output deduplicated by id keeping the last copy is an uninterrupted run's (whole where batches are cut by size alone) and gives the reported metrics", async (t) => {
  const input = join(dir, 'replay-events.jsonl');
  const world = new ShopperWorld({ seed: 9, users: 1000 });
  let text = '';
  for (let i = 0; i < 150_000; i++) {
    const e = world.next();
    text += `${JSON.stringify({ user_id: e.userId, time: e.time, type: e.type, item_id: e.itemId, price: e.price })}\n`;
  }
  writeFileSync(input, text);
  // Churn's learning batches are cut by wall clock too (batch.max_delay's default, as `tributary run` has it): its
  // replayed copies may score otherwise than the first ones.
  const replayPipeline = (name: string, out: string, checkpoints: string): string =>
    pipeline(
      `${name}.yaml`,
      `name: ${name}
sources: [{type: file, path: ${input}, mapping: {time_format: epoch_ms}}]
stages:
${modelStages('batch: {max_delay: 200ms}')}sinks: [{type: file, path: ${out}, kinds: [prediction, label, model_metrics]}]
checkpoint: {dir: ${checkpoints}, interval: 1s}
`,
    );
  const keyOf = (r: OutputRecord): string => (r.kind === 'label' ? `label ${String(r.predictionId)}` : `${r.kind} ${String(r.id ?? r.model)}`);
  /** The records by key, the last copy kept, and how many came twice. */
  const lastCopies = (records: readonly OutputRecord[]): { byKey: Map<string, OutputRecord>; duplicates: number } => {
    const byKey = new Map<string, OutputRecord>();
    let duplicates = 0;
    for (const r of records) {
      const key = keyOf(r);
      const before = byKey.get(key);
      if (before !== undefined) {
        duplicates++;
        // What the id is made from is the same: the same prediction of the same input, whatever its score.
        for (const field of ['kind', 'model', 'task', 'userId', 'sessionId', 'time']) assert.equal(r[field], before[field], `${key}: ${field}`);
        if (r.model === 'intent') assert.deepEqual(r, before, `${key}: batches cut by size alone, the copy is the same record, whole`);
      }
      byKey.set(key, r);
    }
    return { byKey, duplicates };
  };

  const referenceOut = join(dir, 'replay-reference.jsonl');
  const reference = boundedSpawnSync(process.execPath, [cli, 'run', replayPipeline('reference', referenceOut, join(dir, 'ckpt-replay-reference')), '--log-level', 'warn', '--no-progress'], { encoding: 'utf8' });
  assert.equal(reference.status, 0, reference.stderr);
  const expected = lastCopies(readRecords(referenceOut));
  assert.equal(expected.duplicates, 0, 'ids are unique within one run');

  const out = join(dir, 'replay-crashed.jsonl');
  const checkpoints = join(dir, 'ckpt-replay-crashed');
  const file = replayPipeline('crashed', out, checkpoints);
  const first = spawnTributary(t, ['run', file, '--log-level', 'warn', '--no-progress']);
  // Killed once output the latest checkpoint does not cover is in the file (the sink writes between checkpoints, every
  // 256 KiB or 200 ms): the size seen when a checkpoint first shows is at least what it covers.
  let latest: { name: string; size: number } | undefined;
  await first.started(() => {
    const names = existsSync(checkpoints) ? readdirSync(checkpoints).filter((name) => name.endsWith('.json')).sort() : [];
    const size = existsSync(out) ? statSync(out).size : 0;
    const name = names.at(-1);
    if (name === undefined) return false;
    if (name !== latest?.name) {
      latest = { name, size };
      return false;
    }
    return size > latest.size + 300_000;
  }, 'output past a checkpoint');
  assert.equal(await first.stop('SIGKILL'), 'SIGKILL', 'killed mid-stream, before the input was drained');
  const restarted = boundedSpawnSync(process.execPath, [cli, 'run', file, '--log-level', 'warn', '--no-progress'], { encoding: 'utf8' });
  assert.equal(restarted.status, 0, restarted.stderr);
  assert.match(restarted.stderr, /resumed from checkpoint \d+/);
  const got = lastCopies(readRecords(out));
  t.diagnostic(`${got.duplicates} records written twice across the crash`);
  assert.ok(got.duplicates > 0, 'the restart wrote again what the last checkpoint did not cover');
  assert.deepEqual([...got.byKey.keys()].sort(), [...expected.byKey.keys()].sort(), 'the same predictions and labels, each once');
  const intentOf = (byKey: Map<string, OutputRecord>): OutputRecord[] => [...byKey.values()].filter((r) => r.model === 'intent' && r.kind !== 'model_metrics');
  assert.deepEqual(intentOf(got.byKey), intentOf(expected.byKey), "intent's records are the uninterrupted run's, whole");
  // The last copies are the ones the resumed model scored its labels against: they give the figures it reports.
  assertRecomputed([...got.byKey.values()], 'deduplicated after the crash');
});

import { test } from 'node:test';
import { existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import assert from 'node:assert/strict';
import { defineOperator, defineSink, isPrediction, recordOperator, watermark, type ClickEvent, type Prediction, type StreamRecord } from 'tributary';
import { boundedSpawnSync, runOperator, runSink, runYaml, specProblems, tempFolder, testContext } from 'tributary/testing';

const click = (userId: string, time: number): ClickEvent => ({ kind: 'event', userId, time, type: 'view' });

/** Counts events per user; `as_map` snapshots the Map itself, which a checkpoint (JSON) writes as {}. */
const counter = defineOperator<{ as_map: boolean }>({
  name: 'test-counter',
  state: 'keyed',
  summary: 'Counts events per user.',
  config: { type: 'object', additionalProperties: false, properties: { as_map: { type: 'boolean', default: false, description: 'Snapshot the Map itself.' } } },
  create(config, context) {
    const counts = new Map<string, number>();
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (record.kind !== 'event') return emit(record);
          const user = (record as ClickEvent).userId;
          counts.set(user, (counts.get(user) ?? 0) + 1);
          emit({ kind: 'count', userId: user, count: counts.get(user) });
        },
      })),
      snapshot: () => (config.as_map ? { counts } : { counts: [...counts] }),
      restore(state) {
        const saved = (state as { counts: [string, number][] }).counts;
        if (!Array.isArray(saved)) throw new Error('test-counter snapshot: counts: not a list');
        counts.clear();
        for (const [user, count] of saved) counts.set(user, count);
      },
    };
  },
});

test('runOperator returns the state as a checkpoint reads it back, and starts from one with `restore`', async () => {
  const first = await runOperator(counter, {}, [click('a', 1), click('a', 2), click('b', 3)]);
  assert.deepEqual(first.state, { counts: [['a', 2], ['b', 1]] });
  const second = await runOperator(counter, {}, [click('a', 4), watermark(Infinity)], undefined, { restore: first.state });
  assert.deepEqual(
    second.output.filter((r) => r.kind === 'count').map((r) => (r as StreamRecord).count),
    [3],
  );
  assert.deepEqual(second.state, { counts: [['a', 3], ['b', 1]] });
});

test("a state the operator refuses fails runOperator's `restore` and runYaml's `restoreState` with the message a run gives, naming the stage once", async () => {
  const damaged = { counts: 'none' };
  // Before: the operator's own message alone ("test-counter snapshot: counts: not a list"), which names no stage.
  await assert.rejects(runOperator(counter, {}, [click('a', 1)], testContext({ label: 'counts' }), { restore: damaged }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_CHECKPOINT');
    assert.match(error.message, /^the saved state of stage counts could not be restored: test-counter snapshot: counts: not a list \(if the stage's configuration changed since, undo the change to resume\. /);
    return true;
  });
  const yaml = 'sources: [{type: synthetic, events: 10}]\nstages:\n  - {type: test-counter}\nsinks: [{type: memory}]\n';
  await assert.rejects(runYaml(yaml, { plugins: [counter], restoreState: { 'stage-test-counter-0': damaged } }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_CHECKPOINT');
    assert.match(error.message, /^the saved state of stage stage-test-counter-0 \(\S+pipeline\.yaml:3:5, \$\.stages\[0\], test-counter\) could not be restored: test-counter snapshot: counts: not a list \(if the stage's /);
    return true;
  });
});

test('runOperator closes an operator whose restore fails (as a failed run closes it: a lock it holds is released), and rejects with that failure', async () => {
  const calls: string[] = [];
  const closing = defineOperator<Record<string, never>>({
    name: 'test-closing',
    summary: 'Records open and close.',
    config: { type: 'object', additionalProperties: false, properties: {} },
    create: async (_config, context) => {
      const inner = await counter.create({ as_map: false }, context);
      return { ...inner, open: async () => void calls.push('open'), close: async () => void calls.push('close') };
    },
  });
  await assert.rejects(runOperator(closing, {}, [click('a', 1)], testContext({ label: 'counts' }), { restore: { counts: 'none' } }), /could not be restored/);
  assert.deepEqual(calls, ['open', 'close']);
});

test('a snapshot a checkpoint would lose (a Map is written as {}) fails the test run, saying where', async () => {
  await assert.rejects(
    runOperator(counter, { as_map: true }, [click('a', 1)]),
    /test-counter: snapshot\(\) would not survive a checkpoint \(checkpoints are JSON\): \$\.counts is a Map \(written as \{\}\)/,
  );
});

test("runOperator refuses a config as `tributary validate` words it: the field's path, an unknown field's nearest name", async () => {
  await assert.rejects(
    runOperator(counter, { as_mapp: true } as never, []),
    { message: "invalid test-counter config: $.as_mapp: unknown field 'as_mapp' (did you mean 'as_map'?)" },
  );
  await assert.rejects(runOperator(counter, { as_map: 'yes' } as never, []), { message: 'invalid test-counter config: $.as_map: must be boolean, got "yes"' });
});

test('specProblems lists what the pipeline reference needs of a spec: field descriptions, nested ones too, and valid examples', async () => {
  assert.deepEqual(specProblems(counter), []);
  const careless = defineOperator<{ window: string; limits: { max: number } }>({
    name: 'careless',
    summary: 'Has gaps in its docs.',
    config: {
      type: 'object',
      additionalProperties: false,
      properties: {
        window: { $ref: 'tributary:duration', default: '1m' },
        limits: { type: 'object', description: 'Bounds.', additionalProperties: false, properties: { max: { type: 'integer', minimum: 1 } } },
      },
    },
    examples: [{ window: '1m' }, { window: 'soon', limits: { max: 0 } }],
    create: () => ({ apply: (input) => input }),
  });
  assert.deepEqual(specProblems(careless), [
    "operator 'careless': field 'limits.max' has no description",
    `operator 'careless': example {"window":"soon","limits":{"max":0}} is invalid: $.window: expected a duration: milliseconds as a number, or a string such as 500ms, 30s, 30m, 12h, 7d, 2w, got "soon"; $.limits.max: must be >= 1, got 0`,
  ]);
});

test('runOperator ends the input as a run does: it waits for ready() first, so what an operator scores asynchronously comes out; the state is the one the final checkpoint takes', async () => {
  // Scores its records in micro-batches on the next turn of the event loop, and says so with ready() meanwhile.
  const asyncScorer = defineOperator<Record<string, never>>({
    name: 'async-scorer',
    summary: 'Scores records a turn later.',
    config: { type: 'object', additionalProperties: false, properties: {} },
    create(_config, context) {
      let pending: ClickEvent[] = [];
      let scored = 0;
      let flushed: (() => void) | undefined;
      let flushing: Promise<void> | undefined;
      return {
        apply: recordOperator(context, () => ({
          record(record, emit) {
            emit(record);
            if (record.kind !== 'event') return;
            pending.push(record as ClickEvent);
            flushing ??= new Promise<void>((resolve) => {
              flushed = resolve;
              setImmediate(() => {
                for (const event of pending) emit({ kind: 'prediction', userId: event.userId, score: 0.5 });
                scored += pending.length;
                pending = [];
                flushing = undefined;
                flushed!();
              });
            });
          },
        })),
        ready: () => flushing,
        snapshot: () => ({ pending: pending.length, scored }),
      };
    },
  });
  const { output, state } = await runOperator(asyncScorer, {}, [click('a', 1), click('b', 2), click('c', 3)]);
  assert.deepEqual(
    output.filter((r) => r.kind === 'prediction').map((r) => (r as StreamRecord).userId),
    ['a', 'b', 'c'],
  );
  assert.deepEqual(state, { pending: 0, scored: 3 });
});

test("testContext keeps what countFiltered counted by its reason, as a run's summary shows it", () => {
  const context = testContext();
  context.countFiltered(2, 'bot');
  context.countFiltered(1, 'bot');
  context.countFiltered(4, 'no price');
  assert.equal(context.filtered, 7);
  assert.deepEqual({ ...context.filteredByReason }, { bot: 3, 'no price': 4 });
});

test('tempFolder makes a folder of its own under the temp folder, removed with what is in it when its test ends', async (t) => {
  let folder = '';
  await t.test('a test using it', (inner) => {
    folder = tempFolder(inner, 'temp-folder-check');
    assert.equal(dirname(folder), tmpdir());
    assert.match(basename(folder), /^tributary-temp-folder-check-\w{6}$/);
    writeFileSync(join(folder, 'a-file'), 'written by the test');
  });
  assert.ok(folder !== '' && !existsSync(folder), `${folder} is removed`);
});

test('runYaml removes the folder it made for the YAML (and what the run wrote beside it) when the run ends; one given as baseDir is kept', async (t) => {
  const yaml = 'name: p\nsources: [{type: synthetic, users: 2, events: 5, seed: 1}]\nsinks: [{type: memory}]\ncheckpoint: {dir: cp}\n';
  const own = await runYaml(yaml);
  assert.equal(own.outputs[0]?.length, 5);
  assert.ok(!existsSync(dirname(own.loaded.file)), `${dirname(own.loaded.file)} is removed`);
  const baseDir = tempFolder(t, 'run-yaml-base');
  const given = await runYaml(yaml, { baseDir });
  assert.equal(dirname(given.loaded.file), baseDir);
  assert.ok(existsSync(join(baseDir, 'pipeline.yaml')) && existsSync(join(baseDir, 'cp')));
});

/** Keeps the scores of the predictions it takes in `lines`; dead-letters a NaN score; full (ready() a promise) every 2 records. */
function scoreSink(lines: string[], calls: string[]) {
  return defineSink<{ digits: number }>({
    name: 'test-scores',
    summary: 'Writes prediction scores.',
    kinds: ['prediction'],
    config: { type: 'object', additionalProperties: false, properties: { digits: { type: 'integer', minimum: 0, default: 2, description: 'Digits kept.' } } },
    create(config, context) {
      let held = 0;
      return {
        open: async () => void calls.push('open'),
        write(record) {
          if (!isPrediction(record)) throw new Error(`handed a ${record.kind}`);
          if (Number.isNaN(record.score)) return context.deadLetter({ reason: 'score is not a number', raw: record });
          lines.push(record.score.toFixed(config.digits));
          held++;
        },
        ready: () => (held >= 2 ? Promise.resolve().then(() => void (calls.push('waited'), (held = 0))) : undefined),
        flush: async () => void calls.push('flush'),
        close: async () => void calls.push('close'),
      };
    },
  });
}

const prediction = (score: number): Prediction => ({ kind: 'prediction', id: String(score), model: 'm', modelVersion: '1.0', task: 'intent', userId: 'u', time: 0, score });

test('runSink writes records to a sink as a run does: config defaults filled, only the kinds it takes, ready() awaited, then flush and close', async () => {
  const lines: string[] = [];
  const calls: string[] = [];
  const context = testContext();
  const event: StreamRecord = { kind: 'event', userId: 'u', time: 0, type: 'view' };
  const records: StreamRecord[] = [prediction(0.25), event, prediction(Number.NaN), prediction(0.5), prediction(0.125)];
  const run = await runSink(scoreSink(lines, calls), {}, records, context);
  assert.deepEqual(lines, ['0.25', '0.50', '0.13']);
  assert.deepEqual(run.notTaken, [event]);
  assert.deepEqual(run.written, [records[0], records[2], records[3], records[4]]);
  assert.deepEqual(context.deadLetters.map((d) => d.reason), ['score is not a number']);
  assert.deepEqual(calls, ['open', 'waited', 'flush', 'close']);
  await assert.rejects(runSink(scoreSink([], []), { digits: -1 }, []), { message: 'invalid test-scores config: $.digits: must be >= 0, got -1' });
});

test('runSink closes a sink whose write throws, and rejects with that error', async () => {
  const calls: string[] = [];
  // A prediction without a score: the sink's toFixed throws.
  await assert.rejects(runSink(scoreSink([], calls), {}, [{ kind: 'prediction' }]), TypeError);
  assert.deepEqual(calls, ['open', 'close']);
});

test('boundedSpawnSync: a command that outlives its bound is killed and fails at once with what it wrote; one that ends is handed back as spawnSync hands it', () => {
  // A shell, not node: it writes within milliseconds even on a busy host, well inside the bound. exec: the one process killed.
  const hanging = ['-c', "printf 'half a record'; printf 'a log line' >&2; exec sleep 600"];
  assert.throws(() => boundedSpawnSync('sh', hanging, { encoding: 'utf8', timeout: 2000 }), (error: Error) => {
    assert.equal(error.message, `sh -c ${hanging[1]} did not end within 2000 ms (killed)\nstdout: half a record\nstderr: a log line`);
    return true;
  });
  const ended = boundedSpawnSync(process.execPath, ['-e', "process.stdout.write('done'); process.exitCode = 3"], { encoding: 'utf8' });
  assert.deepEqual([ended.status, ended.stdout], [3, 'done']);
});

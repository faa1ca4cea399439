import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { existsSync, readdirSync, readFileSync } from 'node:fs';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { type Element } from 'tributary';
import { runOperator, runYaml, testContext, tempFolder } from 'tributary/testing';
import { pino } from 'pino';
import { Subject } from 'rxjs';
import intentModel, { type IntentModelConfig } from './intent.js';
import { featureNames, separableIntentStream } from './testdata.js';
import { base, of, reportOf } from './models-test-helpers.js';

test('checkpoint: a closed pipeline saves its model; the next one warm-starts from it', async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'intent-lr', checkpoint: { dir } };
  const input = separableIntentStream(100, 5);
  await runOperator(intentModel, config, input);
  const file = join(dir, 'intent-lr.model.json');
  assert.ok(existsSync(file));
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { features: string[]; model: { optimizer: { step: number } } };
  assert.deepEqual(saved.features, featureNames);
  assert.ok(saved.model.optimizer.step > 0);
  const probe = separableIntentStream(3, 9);
  const cold = await runOperator(intentModel, { ...config, checkpoint: { dir, warm_start: false } }, probe);
  // A cold logistic model starts at zero weights and its bias at the prior (intent: 0.05): every first-batch score is the prior.
  const prior = (score: unknown): boolean => Math.abs((score as number) - 0.05) < 1e-6;
  assert.ok(prior(of(cold.output, 'prediction')[0]!.score));
  const warm = await runOperator(intentModel, { ...config, checkpoint: { dir: tempFolder(t, 'models') } }, probe);
  assert.ok(prior(of(warm.output, 'prediction')[0]!.score), 'another folder: cold');
  const warmed = await runOperator(intentModel, config, probe);
  assert.ok(!prior(of(warmed.output, 'prediction')[0]!.score));
});

test("checkpoint: a run resumed from the pipeline's checkpoint uses that checkpoint's model, not the model file it warm-started from, and says so (the log said only 'warm start from FILE', the report's warmStart named the file)", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'intent-both', checkpoint: { dir }, report: true };
  const input = separableIntentStream(100, 5);
  const first = await runOperator(intentModel, config, input.slice(0, 300));
  assert.ok(existsSync(join(dir, 'intent-both.model.json')));
  const infos: string[] = [];
  const context = testContext();
  const logged = { ...context, logger: { ...context.logger, info: (_: unknown, message?: string) => void (message !== undefined && infos.push(message)) } } as typeof context;
  const resumed = await runOperator(intentModel, config, input.slice(300), logged, { restore: first.state });
  assert.ok(infos.some((message) => message.startsWith('model intent-both: warm start from ')), infos.join('\n'));
  assert.ok(
    infos.some((message) => /^model intent-both: resumed with the model of the pipeline's checkpoint, which replaces the one warm-started from \S+intent-both\.model\.json/.test(message)),
    infos.join('\n'),
  );
  assert.equal(reportOf(resumed.output).warmStart, null, 'the report does not claim the warm start');
});

/**
 * Watches the durable writes of files in `dir` (node:fs/promises, as writeFileDurably makes them): each
 * step in order in `steps` (the temp file opened, each fsync by what it was opened as, the rename), and
 * saves in flight at once in `maxInFlight`. Until `release()`, an fsync of a temp file waits (`held`
 * resolves at the first one): a save held in the middle of its write, as by a slow disk.
 */
function watchDurableWrites(dir: string, hold: boolean) {
  const steps: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let release!: () => void;
  const released = hold ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
  let reached!: () => void;
  const held = new Promise<void>((resolve) => (reached = resolve));
  const realOpen = fsPromises.open;
  const realRename = fsPromises.rename;
  mock.method(fsPromises, 'open', async (path: fs.PathLike, flags?: string | number, mode?: fs.Mode) => {
    const handle = await realOpen(path, flags, mode);
    const name = String(path);
    if (!name.startsWith(dir)) return handle;
    const temp = name.endsWith('.tmp');
    if (temp) {
      steps.push(`open ${name}`);
      maxInFlight = Math.max(maxInFlight, ++inFlight);
    }
    const realSync = handle.sync.bind(handle);
    handle.sync = async () => {
      steps.push(`fsync ${name}`);
      if (temp) {
        reached();
        await released;
      }
      return realSync();
    };
    return handle;
  });
  mock.method(fsPromises, 'rename', async (from: fs.PathLike, to: fs.PathLike) => {
    if (String(from).startsWith(dir)) {
      steps.push(`rename ${String(from)} -> ${String(to)}`);
      inFlight--;
    }
    return realRename(from, to);
  });
  syncBuiltinESMExports();
  return {
    steps,
    held,
    release: () => release(),
    get maxInFlight() {
      return maxInFlight;
    },
    restore: () => {
      mock.restoreAll();
      syncBuiltinESMExports();
    },
  };
}

test('checkpoint: the saved model is written durably (data fsynced before the rename, the folder after), whole', async (t) => {
  const dir = tempFolder(t, 'models');
  const file = join(dir, 'intent-durable.model.json');
  const writes = watchDurableWrites(dir, false);
  try {
    await runOperator(intentModel, { ...base, name: 'intent-durable', checkpoint: { dir } }, separableIntentStream(40, 5));
  } finally {
    writes.restore();
  }
  assert.deepEqual(writes.steps, [`open ${file}.tmp`, `fsync ${file}.tmp`, `rename ${file}.tmp -> ${file}`, `fsync ${dir}`]);
  assert.deepEqual(readdirSync(dir), ['intent-durable.model.json']);
  assert.ok((JSON.parse(readFileSync(file, 'utf8')) as { model: { optimizer: { step: number } } }).model.optimizer.step > 0);
});

test('checkpoint: periodic saves (checkpoint.every) leave the stage running while the disk syncs, never overlap, and close waits for the last', async (t) => {
  const dir = tempFolder(t, 'models');
  const file = join(dir, 'intent-bg.model.json');
  const config: IntentModelConfig = { ...base, name: 'intent-bg', checkpoint: { dir, every: 20 } };
  const input = separableIntentStream(120, 8);
  const end = input.length - 1; // the final watermark
  const writes = watchDurableWrites(dir, true);
  try {
    const operator = await intentModel.create(config as never, testContext());
    await operator.open!();
    const records = new Subject<Element>();
    const output: Element[] = [];
    const done = new Promise<void>((resolve, reject) => operator.apply(records).subscribe({ next: (e) => output.push(e), error: reject, complete: resolve }));
    const half = Math.floor(end / 2);
    for (const element of input.slice(0, half)) records.next(element);
    // A periodic save was due in the first half: it is held at its fsync, as by a slow disk...
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([writes.held, new Promise((_, reject) => (timeout = setTimeout(() => reject(new Error('no periodic save reached its fsync')), 10_000)))]);
    clearTimeout(timeout);
    const before = of(output, 'prediction').length;
    // ...while the stage goes on predicting and learning (more saves fall due meanwhile)...
    for (const element of input.slice(half, end)) records.next(element);
    assert.ok(of(output, 'prediction').length > before, 'records flow while a save is in flight');
    // ...and no partial model is ever in place.
    assert.ok(!existsSync(file) || JSON.parse(readFileSync(file, 'utf8')));
    records.next(input[end]!);
    records.complete();
    await done;
    const final = ((await operator.snapshot!()) as { learner: { saved: unknown } }).learner.saved;
    const closed = operator.close!();
    writes.release();
    await closed;
    assert.equal(writes.maxInFlight, 1, 'one save at a time (they share the temp file)');
    const saves = writes.steps.filter((step) => step.startsWith('rename')).length;
    assert.ok(saves >= 2 && saves <= 3, `the held save, at most one coalesced after it, the one at close: ${saves}`);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(JSON.stringify(final)), 'the model at close is the one in place once close resolves');
    assert.deepEqual(readdirSync(dir), ['intent-bg.model.json']);
  } finally {
    writes.restore();
  }
});

test('checkpoint: a periodic save that fails is said once and the stage goes on (no record is dead-lettered for it); the save at close reports it', async (t) => {
  const dir = tempFolder(t, 'models');
  // A file where the folder should be: every save fails.
  const notAFolder = join(dir, 'models');
  fs.writeFileSync(notAFolder, '');
  const errors: unknown[][] = [];
  const context = testContext();
  const logged = { ...context, logger: { ...context.logger, error: (...args: unknown[]) => void errors.push(args) } } as typeof context;
  await assert.rejects(runOperator(intentModel, { ...base, name: 'intent-fail', checkpoint: { dir: notAFolder, every: 20 } }, separableIntentStream(120, 8), logged), { code: 'EEXIST' });
  assert.deepEqual(context.deadLetters, []);
  assert.equal(errors.length, 1);
  assert.match(errors[0]![1] as string, /model intent-fail: saving the model failed: .*the previous save stays in place/);
});

test('checkpoint: a saved model that no longer fits the config stops the run for a person (TRIB_ERR_CHECKPOINT) and is left as it was', async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'intent-m', model: { kind: 'mlp', hidden: [8] }, checkpoint: { dir } };
  await runOperator(intentModel, config, separableIntentStream(40, 5));
  const file = join(dir, 'intent-m.model.json');
  const before = readFileSync(file, 'utf8');
  const edits: [string, IntentModelConfig][] = [
    ['another kind', { ...config, model: { kind: 'logistic' } }],
    ['another hidden size', { ...config, model: { kind: 'mlp', hidden: [4] } }],
    ['another optimiser', { ...config, optimizer: { kind: 'sgd' } }],
  ];
  for (const [edit, changed] of edits) {
    const operator = await intentModel.create(changed, testContext());
    await assert.rejects(
      async () => operator.open!(),
      (error: Error & { code?: string }) => error.code === 'TRIB_ERR_CHECKPOINT' && error.message.includes(file),
      edit,
    );
    // The runtime closes what it built when a start fails: that must not save over the file.
    await operator.close?.();
    assert.equal(readFileSync(file, 'utf8'), before, `${edit}: the saved model is untouched`);
  }
});

test('checkpoint: a warm start from a model file whose features the stages before it now make otherwise under the same names (a hash width, a transform added) is refused, naming the change; names only added are taken on by the model (from 0), and a file from before stages were recorded is said not to be checked', async (t) => {
  // Was: a model saved with hash_0..15 of a width-16 block warm-started into a width-8 one without a word
  // (the names hash_0..7 kept, their weights applied to other buckets); the pipeline checkpoint's check did not apply.
  const baseDir = tempFolder(t, 'warm-stages');
  const yaml = (features: string): string =>
    `name: shop\nsources: [{type: synthetic, users: 20, events: 300, seed: 3}]\n` +
    `stages:\n  - {type: sessionizer}\n  - {type: session-features, label: sessions}\n${features}  - {type: intent-model, label: intent, name: intent, model: {kind: logistic}, checkpoint: {dir: models}}\n` +
    `sinks: [{type: memory, kinds: [prediction]}]\n`;
  const hash = (width: number): string => `  - {type: hash-features, label: hash, fields: [category], width: ${width}}\n`;
  const file = join(baseDir, 'models', 'intent.model.json');
  const run = async (features: string): Promise<string[]> => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push((JSON.parse(line) as { msg: string }).msg) });
    await runYaml(yaml(features), { baseDir, logger });
    return lines.filter((line) => line.startsWith('model intent: '));
  };
  await run(hash(16));
  assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { stages?: { label: string }[] }).stages?.map((stage) => stage.label), ['stage-sessionizer-0', 'sessions', 'hash']);
  assert.ok((await run(hash(16))).some((line) => line.startsWith('model intent: warm start from ')), 'the same stages: warm-started');
  const before = readFileSync(file, 'utf8');

  for (const [edit, features, change] of [
    ['the width', hash(8), `hash (${join(baseDir, 'pipeline.yaml')}:6:5, $.stages[2], hash-features): width: 16 -> 8`],
    ['a transform added', hash(16) + '  - {type: log1p, label: log, features: [s_events]}\n', `log (${join(baseDir, 'pipeline.yaml')}:7:5, $.stages[3], log1p) added`],
  ] as const) {
    await assert.rejects(runYaml(yaml(features), { baseDir }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_CHECKPOINT', edit);
      assert.ok(error.message.includes(`model intent: cannot warm-start from ${file}: the stages before the model make its features otherwise than when it was saved (${change}), so the weights it learnt`), error.message);
      assert.ok(error.message.includes('checkpoint.warm_start: false'), error.message);
      return true;
    });
    assert.equal(readFileSync(file, 'utf8'), before, `${edit}: the model file is left as it was`);
  }

  // Names only added (another appending stage): not refused; the model takes them on at its first vector, from 0 (was: ignored, warned).
  const added = await run(hash(16) + '  - {type: hash-features, label: items, fields: [itemId], prefix: item, width: 4}\n');
  assert.ok(added.some((line) => line.startsWith('model intent: warm start from ')), added.join('\n'));
  assert.ok(added.includes('model intent: the input has 4 features the saved model did not (item_0, item_1, item_2, item_3): the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept'), added.join('\n'));
  assert.ok(!added.some((line) => line.startsWith("model intent: input features differ from the model's")), added.join('\n'));
  assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { features: string[] }).features.slice(-4), ['item_0', 'item_1', 'item_2', 'item_3']);

  // A file saved before stages were recorded: warm-started, said (info) not to be checked.
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { stages?: unknown };
  delete saved.stages;
  fs.writeFileSync(file, JSON.stringify(saved));
  const old = await run(hash(8));
  assert.ok(old.includes(`model intent: ${file} records no stages (saved before 2026-12-07): whether the stages before the model make its features as they did is not checked; its next save records them`), old.join('\n'));
  assert.ok(old.some((line) => line.startsWith('model intent: warm start from ')), old.join('\n'));
});

test('checkpoint: a warm start across a hash-features relabelled (a stage of no state): with its settings the same it warm-starts; with another width it is refused, its names kept and made otherwise (was: taken for names gone and added, warm-started without a word)', async (t) => {
  const baseDir = tempFolder(t, 'warm-relabelled');
  const yaml = (hash: string): string =>
    `name: shop\nsources: [{type: synthetic, users: 20, events: 300, seed: 3}]\n` +
    `stages:\n  - {type: sessionizer}\n  - {type: session-features, label: sessions}\n  - {type: hash-features, ${hash}}\n  - {type: intent-model, label: intent, name: intent, model: {kind: logistic}, checkpoint: {dir: models}}\n` +
    `sinks: [{type: memory, kinds: [prediction]}]\n`;
  const file = join(baseDir, 'models', 'intent.model.json');
  const run = async (hash: string): Promise<string[]> => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push((JSON.parse(line) as { msg: string }).msg) });
    await runYaml(yaml(hash), { baseDir, logger });
    return lines.filter((line) => line.startsWith('model intent: '));
  };
  await run('label: hash, fields: [category], width: 8');
  const same = await run('label: hash-b, fields: [category], width: 8');
  assert.ok(same.some((line) => line.startsWith('model intent: warm start from ')), same.join('\n'));
  const before = readFileSync(file, 'utf8');
  await assert.rejects(runYaml(yaml('label: hash-c, fields: [category], width: 4'), { baseDir }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_CHECKPOINT');
    assert.ok(
      error.message.includes(
        `model intent: cannot warm-start from ${file}: the stages before the model make its features otherwise than when it was saved (hash-c (${join(baseDir, 'pipeline.yaml')}:6:5, $.stages[2], hash-features) added (it appends hash_0, hash_1, hash_2, hash_3, which hash-b appended before)), so`,
      ),
      error.message,
    );
    return true;
  });
  assert.equal(readFileSync(file, 'utf8'), before, 'the model file is left as it was');
});

test("checkpoint: a pipeline resumed from its checkpoint after a stage that appends features was added before the model (labels kept): the resumed model takes them on, from 0, said once (was: ignored, warned, until the model started afresh)", async (t) => {
  const baseDir = tempFolder(t, 'resume-grow');
  const yaml = (events: number, features: string): string =>
    `name: shop\nsources: [{type: synthetic, users: 20, events: ${events}, seed: 3}]\n` +
    `stages:\n  - {type: sessionizer, label: sessions}\n  - {type: session-features, label: features}\n${features}  - {type: intent-model, label: intent, name: intent, model: {kind: logistic}}\n` +
    `sinks: [{type: memory, kinds: [prediction]}]\ncheckpoint: { dir: cp }\n`;
  const run = async (events: number, features: string): Promise<string[]> => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push((JSON.parse(line) as { msg: string }).msg) });
    await runYaml(yaml(events, features), { baseDir, logger });
    return lines;
  };
  await run(200, '');
  const resumed = await run(400, '  - {type: hash-features, label: items, fields: [itemId], prefix: item, width: 2}\n');
  assert.ok(resumed.includes('resuming from checkpoint'), resumed.join('\n'));
  assert.ok(resumed.includes('model intent: the input has 2 features the saved model did not (item_0, item_1): the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept'), resumed.join('\n'));
  assert.ok(!resumed.some((line) => line.startsWith("model intent: input features differ from the model's")), resumed.join('\n'));
});

test('checkpoint: a user-features horizon added, removed or changed is no change of the kept features: a warm start from the model file takes on the added ones from 0 and reads or drops the gone ones, and a resume from the checkpoint keeps the users\' state, the added horizon counting from the resume; a hash width changed is still refused at a warm start (was: all but an addition refused, exit 2)', async (t) => {
  const baseDir = tempFolder(t, 'grow-horizon');
  const yaml = (horizons: string, extra = '', checkpoint = '', events = 300): string =>
    `name: shop\nsources: [{type: synthetic, users: 20, events: ${events}, seed: 3}]\n` +
    `stages:\n  - {type: sessionizer, label: sessions}\n  - {type: user-features, label: users, horizons: [${horizons}]}\n${extra}  - {type: intent-model, label: intent, name: intent, model: {kind: logistic}, checkpoint: {dir: models}}\n` +
    `sinks: [{type: memory, kinds: [prediction]}]\n${checkpoint}`;
  const file = join(baseDir, 'models', 'intent.model.json');
  const run = async (text: string, dir = baseDir): Promise<string[]> => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push((JSON.parse(line) as { msg: string }).msg) });
    await runYaml(text, { baseDir: dir, logger });
    return lines;
  };
  const hash = (width: number): string => `  - {type: hash-features, label: hash, fields: [category], width: ${width}}\n`;
  await run(yaml('1d, 7d', hash(4)));
  const features = (): string[] => (JSON.parse(readFileSync(file, 'utf8')) as { features: string[] }).features;
  assert.ok(!features().includes('u_events_30d'));
  const before = readFileSync(file, 'utf8');
  for (const [edit, horizons, extra, change] of [
    ['a hash width changed', '1d, 7d', hash(8), `hash (${join(baseDir, 'pipeline.yaml')}:6:5, $.stages[2], hash-features): width: 4 -> 8`],
    ['a hash width changed with a horizon added', '1d, 7d, 30d', hash(8), `hash (${join(baseDir, 'pipeline.yaml')}:6:5, $.stages[2], hash-features): width: 4 -> 8`],
  ] as const) {
    await assert.rejects(runYaml(yaml(horizons, extra), { baseDir }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_CHECKPOINT', edit);
      assert.ok(error.message.includes(`model intent: cannot warm-start from ${file}: the stages before the model make its features otherwise than when it was saved (${change}), so`), `${edit}: ${error.message}`);
      return true;
    });
    assert.equal(readFileSync(file, 'utf8'), before, `${edit}: the model file is left as it was`);
  }
  const warm = await run(yaml('1d, 7d, 30d', hash(4)));
  assert.ok(warm.some((line) => line.startsWith('model intent: warm start from ')), warm.join('\n'));
  assert.ok(warm.includes('model intent: the input has 2 features the saved model did not (u_events_30d, u_purchases_30d): the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept'), warm.join('\n'));
  assert.deepEqual(features().filter((name) => name.endsWith('_30d')), ['u_events_30d', 'u_purchases_30d']);

  // A horizon removed (was: refused, exit 2): the kept horizons' counts are made as before. The model warm-starts, reads
  // the gone names at their running mean (weight times 0), their weights kept should they come back, warned once.
  const removed = await run(yaml('1d, 7d', hash(4)));
  assert.ok(removed.some((line) => line.startsWith('model intent: warm start from ')), removed.join('\n'));
  assert.ok(
    removed.some((line) => line.startsWith("model intent: input features differ from the model's ") && line.includes(': 0 it does not know are ignored, 2 of its own are absent and read as 0 once standardised')),
    removed.join('\n'),
  );
  assert.deepEqual(features().filter((name) => name.endsWith('_30d')), ['u_events_30d', 'u_purchases_30d']);
  // A horizon changed (7d -> 14d, was: refused): 14d's names learnt from 0, the weights of those no longer made (7d's, 30d's) dropped.
  const changed = await run(yaml('1d, 14d', hash(4)));
  assert.ok(changed.some((line) => line.startsWith('model intent: warm start from ')), changed.join('\n'));
  assert.ok(
    changed.includes(
      'model intent: the input has 2 features the saved model did not (u_events_14d, u_purchases_14d): the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept; ' +
        'its weights for 4 the input no longer has (u_events_7d, u_events_30d, u_purchases_7d, u_purchases_30d) are dropped',
    ),
    changed.join('\n'),
  );
  assert.deepEqual(features().filter((name) => /_(7|14|30)d$/.test(name)), ['u_events_14d', 'u_purchases_14d']);

  // Resumed from the pipeline's checkpoint (a folder of its own): the users' state kept, the added horizon counting from now.
  const resumeDir = tempFolder(t, 'grow-horizon-resume');
  const checkpoint = 'checkpoint: { dir: cp }\n';
  await run(yaml('1d', '', checkpoint, 200), resumeDir);
  const resumed = await run(yaml('1d, 7d', '', checkpoint, 400), resumeDir);
  assert.ok(resumed.includes('resuming from checkpoint'), resumed.join('\n'));
  assert.ok(resumed.some((line) => /^user-features: horizon 7d added since the checkpoint: u_events_7d, u_purchases_7d start at 0 now for the \d+ users restored/.test(line)), resumed.join('\n'));
  assert.ok(resumed.includes('model intent: the input has 2 features the saved model did not (u_events_7d, u_purchases_7d): the model learns them from here, their weights starting at 0 (it predicts as before until it does), its weights for the others kept'), resumed.join('\n'));
});

test('checkpoint: the configured learning rate applies to a warm-started model (it is config, not state)', async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'intent-lr', optimizer: { kind: 'adam', learning_rate: 0.05 }, checkpoint: { dir } };
  const input = separableIntentStream(30, 5);
  await runOperator(intentModel, config, input);
  const file = join(dir, 'intent-lr.model.json');
  const savedRate = () => {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { baseLearningRate: number; model: { optimizer: { learningRate: number } } };
    return [saved.baseLearningRate, saved.model.optimizer.learningRate];
  };
  assert.deepEqual(savedRate(), [0.05, 0.05]);
  await runOperator(intentModel, { ...config, optimizer: { kind: 'adam', learning_rate: 0.01 } }, input);
  assert.deepEqual(savedRate(), [0.01, 0.01]);
});

test('checkpoint: replayed input (a backtest) warm-starts from a saved model but never writes it, so backtests are reproducible', async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'intent-bt', checkpoint: { dir, every: 10 } };
  const file = join(dir, 'intent-bt.model.json');
  const input = separableIntentStream(60, 6);
  const backtest = async () => of((await runOperator(intentModel, config, input, testContext({ replay: true }))).output, 'prediction').map((p) => p.score);
  const first = await backtest();
  assert.ok(!existsSync(file), 'a backtest saves no model');
  assert.deepEqual(await backtest(), first, 'so the next one starts from the same place');
  // A model a live run saved is read (the backtest scores it), and left as it was.
  await runOperator(intentModel, config, separableIntentStream(30, 7));
  const saved = readFileSync(file, 'utf8');
  const warm = await backtest();
  assert.notDeepEqual(warm, first);
  assert.deepEqual(await backtest(), warm);
  assert.equal(readFileSync(file, 'utf8'), saved);
});

test("checkpoint: a warm-started model's predictions go on from the saved model's version (`<version>.<its learning steps>`), and a run resumed from the pipeline's checkpoint after it too (was: `1.0` again, a cold model's version, at every warm start)", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'versioned', checkpoint: { dir } };
  const versions = (output: Element[]): string[] => of(output, 'prediction').map((p) => p.modelVersion as string);
  const steps = (version: string): number => Number(version.split('.')[1]);
  const first = await runOperator(intentModel, config, separableIntentStream(60, 5));
  const trained = (JSON.parse(readFileSync(join(dir, 'versioned.model.json'), 'utf8')) as { learnSteps: number }).learnSteps;
  assert.ok(trained > 0);
  assert.equal(versions(first.output)[0], '1.0');
  // The next run's first predictions come from the saved weights: that model's version, not 1.0.
  const second = await runOperator(intentModel, config, separableIntentStream(60, 6));
  const secondVersions = versions(second.output);
  assert.equal(secondVersions[0], `1.${trained}`);
  assert.ok(steps(secondVersions.at(-1)!) > trained, secondVersions.at(-1));
  // Every version seen rises with the steps, never back.
  for (let i = 1; i < secondVersions.length; i++) assert.ok(steps(secondVersions[i]!) >= steps(secondVersions[i - 1]!));
  const afterSecond = (JSON.parse(readFileSync(join(dir, 'versioned.model.json'), 'utf8')) as { learnSteps: number }).learnSteps;
  // Resumed from the second run's checkpoint (which replaces the model file's model): from where it stopped.
  const resumed = await runOperator(intentModel, config, separableIntentStream(10, 7), testContext(), { restore: second.state });
  assert.equal(versions(resumed.output)[0], `1.${afterSecond}`);
  // The version prefix is the config's: edited, the steps go on under it.
  const savedSteps = (JSON.parse(readFileSync(join(dir, 'versioned.model.json'), 'utf8')) as { learnSteps: number }).learnSteps;
  const relabelled = await runOperator(intentModel, { ...config, version: '2' }, separableIntentStream(5, 8));
  assert.equal(versions(relabelled.output)[0], `2.${savedSteps}`);
  // Started afresh (warm_start: false): a new model, from 0.
  const cold = await runOperator(intentModel, { ...config, checkpoint: { dir, warm_start: false } }, separableIntentStream(3, 9));
  assert.equal(versions(cold.output)[0], '1.0');
});

test("checkpoint: a warm-started model resumed from an older pipeline checkpoint gives each replayed prediction the version it had before (a consumer dropping duplicates by model, version and id drops them), whatever the model file holds by then", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'replayed', checkpoint: { dir } };
  const versions = (output: Element[]): string[] => of(output, 'prediction').map((p) => `${p.id as string}@${p.modelVersion as string}`);
  await runOperator(intentModel, config, separableIntentStream(40, 5));
  // Warm-started from that file; its checkpoint taken after the first part of the input.
  const first = await runOperator(intentModel, config, separableIntentStream(40, 6));
  const input = separableIntentStream(40, 7);
  // The run that went on from that checkpoint (and saved the model file at its close, ahead of the checkpoint)...
  const wentOn = await runOperator(intentModel, config, input, testContext(), { restore: first.state });
  // ...and a restart from that same, older checkpoint (the newer one lost, or not covered by the upstream's commit): the same input again.
  const restarted = await runOperator(intentModel, config, input, testContext(), { restore: first.state });
  assert.deepEqual(versions(restarted.output), versions(wentOn.output));
});

test("checkpoint: a warm-started model resumed from a checkpoint of a build before versions counted its warm start's steps (no versionBase) goes on numbering as that build did, so the predictions made again keep their versions (was: the version jumped by the warm start's steps once, and a consumer dropping duplicates by model, version and id kept both)", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'old-versions', checkpoint: { dir } };
  const versionsOf = (output: Element[]): string[] => of(output, 'prediction').map((p) => p.modelVersion as string);
  await runOperator(intentModel, config, separableIntentStream(40, 5));
  const first = await runOperator(intentModel, config, separableIntentStream(40, 6));
  // As such a build wrote it: no versionBase; its predictions were versioned `1.<counts.learnSteps>`.
  const old = structuredClone(first.state) as { learner: { versionBase?: number; counts: { learnSteps: number } } };
  assert.ok(old.learner.versionBase! > 0, 'this build records the base of a warm-started model');
  delete old.learner.versionBase;
  const learnt = old.learner.counts.learnSteps;
  const infos: string[] = [];
  const context = testContext();
  const logged = { ...context, logger: { ...context.logger, info: (_: unknown, message?: string) => void (message !== undefined && infos.push(message)) } } as typeof context;
  const resumed = await runOperator(intentModel, config, separableIntentStream(40, 7), logged, { restore: old });
  assert.equal(versionsOf(resumed.output)[0], `1.${learnt}`);
  assert.ok(infos.some((message) => message.startsWith('model old-versions: resumed from a checkpoint written before 2026-12-07, whose predictions were versioned by')), infos.join('\n'));
  // Its model file still counts every step the model took (the next warm start numbers by those).
  const saved = JSON.parse(readFileSync(join(dir, 'old-versions.model.json'), 'utf8')) as { learnSteps: number };
  assert.ok(saved.learnSteps > Number(versionsOf(resumed.output).at(-1)!.split('.')[1]), String(saved.learnSteps));
});

test('checkpoint: a model file records the pipeline file that saved it: a run of another file of the same pipeline name (a copy of it) that warm-starts from it is warned, naming both files (was: warm-started silently, the name alone recorded)', async (t) => {
  const shared = tempFolder(t, 'same-name');
  const models = join(shared, 'models');
  const yaml =
    `name: shop\nsources: [{type: synthetic, users: 20, events: 200, seed: 3}]\n` +
    `stages:\n  - {type: sessionizer}\n  - {type: session-features}\n  - {type: intent-model, name: intent, model: {kind: logistic}, checkpoint: {dir: ${JSON.stringify(models)}}}\n` +
    `sinks: [{type: memory, kinds: [prediction]}]\n`;
  const run = async (baseDir: string): Promise<{ warned: string[]; infos: string[] }> => {
    const warned: string[] = [];
    const infos: string[] = [];
    const logger = pino({ level: 'info' }, {
      write: (line: string) => {
        const { msg, level } = JSON.parse(line) as { msg: string; level: number };
        if (msg.startsWith('model intent: ')) (level >= 40 ? warned : infos).push(msg);
      },
    });
    await runYaml(yaml, { baseDir, logger });
    return { warned, infos };
  };
  const first = join(shared, 'first');
  const copy = join(shared, 'copy');
  fs.mkdirSync(first);
  fs.mkdirSync(copy);
  const file = join(models, 'intent.model.json');
  await run(first);
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { pipelineFile?: string }).pipelineFile, join(first, 'pipeline.yaml'));
  const again = await run(first);
  assert.deepEqual(again.warned, [], 'its own file: nothing to warn of');
  assert.ok(again.infos.some((line) => line.startsWith(`model intent: warm start from ${file} `)), again.infos.join('\n'));
  const copied = await run(copy);
  assert.equal(copied.warned.length, 1, copied.warned.join('\n'));
  assert.ok(
    copied.warned[0]!.startsWith(`model intent: warm start from ${file} (`) &&
      copied.warned[0]!.includes(`saved by pipeline shop (${join(first, 'pipeline.yaml')}), not this run's pipeline shop (${join(copy, 'pipeline.yaml')}): this run saves its model to the same file and replaces that one's`),
    copied.warned[0],
  );
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { pipelineFile?: string }).pipelineFile, join(copy, 'pipeline.yaml'), 'as it says: the copy saved over it');
});

test("checkpoint: a model file, or a model's checkpointed state, of a format a later release writes (a rollback after an upgrade) is refused for a person, naming the file and both formats, and left as it was (was: read as this release's format)", async (t) => {
  const dir = tempFolder(t, 'models');
  const config: IntentModelConfig = { ...base, name: 'rolled', checkpoint: { dir } };
  const first = await runOperator(intentModel, config, separableIntentStream(30, 5));
  const file = join(dir, 'rolled.model.json');
  const later = JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), format: 2 });
  fs.writeFileSync(file, later);
  await assert.rejects(
    async () => runOperator(intentModel, config, separableIntentStream(3, 6)),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_CHECKPOINT');
      assert.ok(error.message.startsWith(`model rolled: cannot warm-start from ${file}: it has model file format 2, which a later release writes; this release reads format 1. `), error.message);
      return true;
    },
  );
  assert.equal(readFileSync(file, 'utf8'), later, 'left as it was');
  // In a pipeline checkpoint: the learner's state, and the model in it.
  fs.rmSync(file);
  for (const [what, edit, said] of [
    ['state', (state: { learner: { format: number } }) => void (state.learner.format = 5), 'its state has format 5, which a later release writes; this release reads formats 1 to 4'],
    ['model', (state: { learner: { saved: { format: number } } }) => void (state.learner.saved.format = 2), 'its saved model has format 2, which a later release writes; this release reads format 1'],
  ] as const) {
    const state = structuredClone(first.state) as { learner: { format: number; saved: { format: number } } };
    edit(state);
    await assert.rejects(
      // No model file (checkpoint section): an operator a failed restore left open holds none's lock.
      runOperator(intentModel, { ...base, name: 'rolled' }, separableIntentStream(3, 6), testContext(), { restore: state }),
      (error: Error & { code?: string }) => (error.code === 'TRIB_ERR_CHECKPOINT' && error.message.includes(said)) || assert.fail(`${error.code}: ${error.message}`),
      what,
    );
  }
});

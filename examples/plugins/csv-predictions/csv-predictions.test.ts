import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type ClickEvent, type Prediction } from 'tributary';
import { runSink, runYaml, specProblems, tempFolder, testContext } from 'tributary/testing';
import { CSV_HEADER, csvPredictions } from './index.js';

const prediction = (id: string, score: number, userId = 'u1'): Prediction => ({ kind: 'prediction', id, model: 'intent', modelVersion: '1.7', task: 'intent', userId, sessionId: `${userId}:0`, time: 1000, score });

test('writes a row per prediction scoring at least min_score, quoting a field with a comma; counts the rest as filtered and dead-letters a NaN score', async (t) => {
  const dir = tempFolder(t, 'csv-predictions');
  const context = testContext({ baseDir: dir });
  const view: ClickEvent = { kind: 'event', userId: 'u1', time: 0, type: 'view' };
  const run = await runSink(csvPredictions, { path: 'out/p.csv', min_score: 0.5 }, [prediction('a', 0.75, 'u,1'), prediction('b', 0.25), view, prediction('c', Number.NaN), prediction('d', 0.5)], context);
  assert.equal(readFileSync(join(dir, 'out', 'p.csv'), 'utf8'), `${CSV_HEADER}a,intent,intent,"u,1","u,1:0",1000,0.75\nd,intent,intent,u1,u1:0,1000,0.5\n`);
  assert.deepEqual(run.notTaken, [view], 'a run hands it predictions only');
  assert.deepEqual({ ...context.filteredByReason }, { 'below min_score': 1 });
  assert.deepEqual(context.deadLetters.map((letter) => letter.reason), ['prediction of a diverged model: score is not a number']);
});

test('a restart from a checkpoint appends to the file, without a second header', async (t) => {
  const dir = tempFolder(t, 'csv-predictions');
  await runSink(csvPredictions, { path: 'p.csv' }, [prediction('a', 0.5)], testContext({ baseDir: dir }));
  await runSink(csvPredictions, { path: 'p.csv' }, [prediction('b', 0.5)], testContext({ baseDir: dir, resuming: true }));
  assert.deepEqual(readFileSync(join(dir, 'p.csv'), 'utf8').split('\n').map((row) => row.split(',')[0]), ['id', 'a', 'b', '']);
});

test('in a pipeline: every prediction is a row or counted as filtered by its reason', async (t) => {
  const dir = tempFolder(t, 'csv-predictions');
  const run = await runYaml(
    'sources: [{type: synthetic, users: 50, events: 2000, seed: 1}]\nstages: [{type: sessionizer}, {type: session-features}, {type: intent-model, name: intent}]\nsinks: [{type: csv-predictions, path: p.csv, min_score: 0.2}]\n',
    { plugins: [csvPredictions], baseDir: dir },
  );
  const rows = readFileSync(join(dir, 'p.csv'), 'utf8').trim().split('\n').length - 1;
  const below = run.stats.filteredByReason['sink-csv-predictions-0: below min_score'] ?? 0;
  assert.ok(rows > 0 && below > 0, `${rows} rows, ${below} below`);
  assert.equal(rows, run.stats.outByKind['prediction']);
  assert.equal(run.stats.eventsIn, 2000);
});

test('a pipeline whose source reads the CSV file it writes is refused (outputFiles) before the file is replaced', async (t) => {
  const dir = tempFolder(t, 'csv-predictions');
  const csv = join(dir, 'p.csv');
  writeFileSync(csv, CSV_HEADER);
  await assert.rejects(
    runYaml('sources: [{type: file, path: p.csv}]\nstages: [{type: sessionizer}, {type: session-features}, {type: intent-model, name: intent}]\nsinks: [{type: csv-predictions, path: ./p.csv}]\n', { plugins: [csvPredictions], baseDir: dir }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.deepEqual(
        error.problems.map((problem) => `${problem.path}: ${problem.message}`),
        [`$.sinks[0].path: ${csv} is the input of sources[0] (path: p.csv): writing it would replace that file before it is read (or, appending, read this sink's records back as input); name another file in this sink's path`],
      );
      return true;
    },
  );
  assert.equal(readFileSync(csv, 'utf8'), CSV_HEADER, 'the file is as it was');
});

test('its spec documents every field and its examples validate (what `tributary docs` prints)', () => {
  assert.deepEqual(specProblems(csvPredictions), []);
});

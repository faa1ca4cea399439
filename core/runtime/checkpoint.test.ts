import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointStore, TributaryError, loadPipeline } from 'tributary';
import { builtinRegistry } from '../cli/registry.js';
import { checkpointsOf } from './checkpoint.js';
import { tributaryVersion } from '../cli/build.js';
import { tempFolder } from 'tributary/testing';

const dir = tempFolder({ after }, 'checkpoint');

/** A copy of `file` as checkpoint `sequence`, its header saying format version `version` (its hash still the body's). */
function copyWithVersion(file: string, folder: string, sequence: number, version: number): string {
  const data = readFileSync(file);
  const newline = data.indexOf(10);
  const header = { ...(JSON.parse(data.toString('utf8', 0, newline)) as Record<string, unknown>), version, sequence };
  const copy = join(folder, `checkpoint-${String(sequence).padStart(10, '0')}.json`);
  writeFileSync(copy, Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), data.subarray(newline + 1)]));
  return copy;
}

test('a checkpoint of a format version newer than this build reads (a rollback after an upgrade) stops the restore for a person, naming it (was: skipped as corrupt, an older one resumed and its outputs since written again)', async () => {
  const folder = join(dir, 'rollback');
  const store = new CheckpointStore(folder, 3);
  const older = await store.write(JSON.stringify({ sources: {}, operators: {} }));
  const newer = copyWithVersion(older.file, folder, older.sequence + 1, 3);
  const corrupt: string[] = [];
  const refusal = await store.latest((file) => corrupt.push(file)).then(
    (checkpoint) => assert.fail(`resumed from ${checkpoint?.file}`),
    (error: unknown) => error,
  );
  assert.ok(refusal instanceof TributaryError, String(refusal));
  assert.equal(refusal.code, 'TRIB_ERR_CHECKPOINT');
  assert.match(refusal.message, new RegExp(`^checkpoint ${newer.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has format version 3, which a later release writes: this release \\(tributary ${tributaryVersion().replace(/\./g, '\\.')}\\) reads versions 1 and 2\\b`));
  assert.match(refusal.message, /move it out of the folder/);
  assert.equal(corrupt.length, 0, 'not taken for corrupt');
  // A version no release writes below this build's (0) is bad contents as before: the one before is used.
  copyWithVersion(older.file, folder, older.sequence + 1, 0);
  assert.equal((await store.latest((file) => corrupt.push(file)))?.sequence, older.sequence);
  assert.equal(corrupt.length, 1);
});

test('checkpoint.min_pause: half the interval where the file sets none, else as set (0s: none, as Flink\'s default)', async () => {
  const minPause = async (section: string): Promise<number | undefined> => {
    const file = join(dir, `min-pause-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `sources: [{type: synthetic}]\nsinks: [{type: stdout}]\ncheckpoint: ${section}\n`);
    return checkpointsOf(await loadPipeline(file, { registry: await builtinRegistry(), env: {} }))?.minPauseMs;
  };
  assert.equal(await minPause('{dir: c}'), 15_000);
  assert.equal(await minPause('{dir: c, interval: 5s}'), 2_500);
  assert.equal(await minPause('{dir: c, interval: 5s, min_pause: 0s}'), 0);
  assert.equal(await minPause('{dir: c, interval: 5s, min_pause: 1m}'), 60_000);
});

test("a checkpoint records the pipeline file that wrote it: a run of another file of the same pipeline name (a copy of it) given the folder resumes from it warned, naming both files (was: resumed silently, the name alone compared)", async () => {
  const { runYaml } = await import('tributary/testing');
  const { pino } = await import('pino');
  const { mkdirSync } = await import('node:fs');
  const shared = join(dir, 'same-name');
  const folder = join(shared, 'cp');
  const yaml = `name: shop\nsources: [{type: synthetic, users: 5, events: 20, seed: 1}]\nsinks: [{type: memory}]\ncheckpoint: {dir: ${JSON.stringify(folder)}}\n`;
  const run = async (baseDir: string): Promise<{ msg: string; pipelineFile?: string }[]> => {
    mkdirSync(baseDir, { recursive: true });
    const warned: { msg: string; level: number; pipelineFile?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void warned.push(JSON.parse(line) as { msg: string; level: number }) });
    await runYaml(yaml, { baseDir, logger });
    return warned.filter((entry) => entry.level >= 40 && entry.msg.includes(' was written by '));
  };
  const first = join(shared, 'first');
  assert.deepEqual(await run(first), []);
  const store = new CheckpointStore(folder);
  assert.equal((await store.latest())?.pipelineFile, join(first, 'pipeline.yaml'));
  assert.deepEqual(await run(first), [], 'its own checkpoint: nothing to warn of');
  const copy = join(shared, 'copy');
  const warned = await run(copy);
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.match(warned[0]!.msg, /^checkpoint \S+checkpoint-\d+\.json was written by pipeline shop \((\S+)\), not this run's pipeline shop \((\S+)\): this run resumes its state and source positions\. /);
  assert.ok(warned[0]!.msg.includes(`(${join(first, 'pipeline.yaml')}), not this run's pipeline shop (${join(copy, 'pipeline.yaml')})`), warned[0]!.msg);
  assert.equal(warned[0]!.pipelineFile, join(first, 'pipeline.yaml'));
});

test("a run whose checkpoint folder's newest file is a later release's format (a rollback) does not start: it names the file, its format version and this release's, reads no input and leaves every file as it was (no older one resumed, none pruned)", async () => {
  const { runYaml } = await import('tributary/testing');
  const { readdirSync } = await import('node:fs');
  const baseDir = join(dir, 'rollback-run');
  (await import('node:fs')).mkdirSync(baseDir, { recursive: true });
  const folder = join(baseDir, 'cp');
  const yaml = `name: rolled\nsources: [{type: synthetic, users: 5, events: 20, seed: 1}]\nsinks: [{type: memory}]\ncheckpoint: {dir: cp, keep: 1}\n`;
  await runYaml(yaml, { baseDir });
  const store = new CheckpointStore(folder);
  const written = (await store.latest())!;
  // As a later release would write it: format version 3, one past the newest this release reads.
  const newer = copyWithVersion(written.file, folder, written.sequence + 1, 3);
  const before = readdirSync(folder).sort();
  await assert.rejects(runYaml(yaml, { baseDir }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_CHECKPOINT', error.message);
    assert.ok(error.message.includes(`checkpoint ${newer} has format version 3, which a later release writes: this release (tributary ${tributaryVersion()}) reads versions 1 and 2`), error.message);
    return true;
  });
  assert.deepEqual(readdirSync(folder).sort(), before, 'no checkpoint written, none pruned');
});

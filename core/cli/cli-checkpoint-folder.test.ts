import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSummaries } from '../testing.js';
import { spawnTributary, until } from 'tributary/testing';
import { dir, tributary, pipeline } from './cli-test-helpers.js';

test("a checkpoint folder another host's process holds: refused (exit 2) saying when it is taken over; --lock-wait waits for the takeover, saying so, and runs", async (t) => {
  const folder = join(dir, 'held-checkpoints');
  mkdirSync(folder, { recursive: true });
  const lock = join(folder, 'checkpoints.lock');
  const renewed = (ago: number): void => {
    const at = new Date(Date.now() - ago);
    utimesSync(lock, at, at);
  };
  writeFileSync(lock, `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'held', since: '2026-01-01T00:00:00.000Z' })}\n`);
  const file = pipeline('held.yaml', `sources: [{type: synthetic, events: 50}]\nsinks: [{type: file, path: held.jsonl}]\ncheckpoint: {dir: ${folder}}\n`);
  const logged = (stderr: string): { level: number; msg: string; code?: string; pipeline?: string; takeoverAt?: string }[] =>
    stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string; code?: string; pipeline?: string; takeoverAt?: string });
  const waitingFor = (seconds: number): RegExp => new RegExp(`^checkpoints: checkpoint folder .* is used by pid 4242 on node-7 .*; waiting for it, up to ${seconds} s in all$`);

  // Renewed just now: refused at once, naming the holder and when its lock is taken over if not renewed.
  renewed(0);
  const refused = tributary('run', file);
  assert.equal(refused.status, 2, refused.stderr);
  // stderr is not a terminal: the refusal is one JSON record among the logs, its text in msg.
  assert.ok(refused.stderr.split('\n').every((line) => line === '' || line.startsWith('{')), refused.stderr);
  const refusals = logged(refused.stderr).filter((entry) => entry.code === 'TRIB_ERR_CHECKPOINT');
  assert.equal(refusals.length, 1, refused.stderr);
  assert.equal(refusals[0]!.level, 50);
  assert.equal(refusals[0]!.pipeline, 'held');
  assert.match(refusals[0]!.msg, /TRIB_ERR_CHECKPOINT: checkpoint folder .*held-checkpoints is used by pid 4242 on node-7 .*lock renewed \d+ s ago\): its lock file .* says so; it is taken over at \d{4}-\d\d-\d\dT[\d:.]+Z unless renewed before\./);
  assert.match(refusals[0]!.msg, /--lock-wait/);

  // --lock-wait shorter than the takeover: waits, saying so, then refused as above.
  const began = Date.now();
  const waitedOut = tributary('run', file, '--lock-wait', '1s');
  assert.equal(waitedOut.status, 2, waitedOut.stderr);
  assert.ok(Date.now() - began >= 1000, 'it waited');
  assert.ok(logged(waitedOut.stderr).some((entry) => entry.level === 40 && waitingFor(1).test(entry.msg)), waitedOut.stderr);
  assert.match(waitedOut.stderr, /TRIB_ERR_CHECKPOINT: checkpoint folder .*held-checkpoints is used by pid 4242 on node-7/);

  // Its holder stops renewing it while the run waits (its node died): tried again before the wait ends, taken over, and the run goes on.
  renewed(0);
  const run = spawnTributary(t, ['run', file, '--lock-wait', '4s'], { cwd: dir });
  let status: number | NodeJS.Signals | null | undefined;
  void run.exited.then((end) => (status = end));
  const waiting = (): boolean => logged(run.stderr.slice(0, run.stderr.lastIndexOf('\n') + 1)).some((entry) => waitingFor(4).test(entry.msg));
  // The first wait bounded by the start limit, the rest (the takeover, 50 events) by until's; both had none.
  await run.started(() => status !== undefined || waiting(), 'its wait for the lock');
  const stale = waiting();
  if (stale) renewed(11 * 60_000);
  await until(() => status !== undefined, 'its end after the takeover');
  const stderr = run.stderr;
  assert.equal(status, 0, stderr);
  assert.ok(stale, stderr);
  assert.ok(logged(stderr).some((entry) => entry.msg === "checkpoints: took over another host's lock its holder stopped renewing"), stderr);
  assert.equal(runSummaries(stderr)[0]?.eventsIn, 50);
  // The run's time starts once it holds the folder: before, elapsedMs (and so events/s) took in the wait.
  const timed = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { time: number; msg: string; elapsedMs?: number; outcome?: string });
  const tookOver = timed.find((entry) => entry.msg === "checkpoints: took over another host's lock its holder stopped renewing")!;
  const summary = timed.find((entry) => entry.outcome !== undefined && entry.elapsedMs !== undefined)!;
  assert.ok(summary.time - summary.elapsedMs! >= tookOver.time - 5, `the run's time starts at the takeover (${tookOver.time}), not before: ${summary.time - summary.elapsedMs!}`);
  assert.equal(existsSync(lock), false, 'released at the end');
});

test('a stop while --lock-wait waits for another host\'s checkpoint folder is a stop before start: exit 0, nothing read or written, the lock left to its holder, no advice to remove it', async (t) => {
  const folder = join(dir, 'held-while-stopped');
  mkdirSync(folder, { recursive: true });
  const lock = join(folder, 'checkpoints.lock');
  const holder = `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'held', since: '2026-01-01T00:00:00.000Z' })}\n`;
  writeFileSync(lock, holder);
  const file = pipeline('held-stopped.yaml', `sources: [{type: synthetic, events: 50}]\nsinks: [{type: file, path: held-stopped.jsonl}]\ncheckpoint: {dir: ${folder}}\n`);
  const run = spawnTributary(t, ['run', file, '--lock-wait', '10m'], { cwd: dir });
  await run.started(() => /waiting for it, up to 600 s in all/.test(run.stderr), 'the wait');
  const status = await run.stop();
  const stderr = run.stderr;
  assert.equal(status, 0, stderr);
  const records = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string });
  assert.deepEqual(records.filter((entry) => entry.level >= 50), [], 'no error, no advice to remove a live holder\'s lock');
  assert.ok(records.some((entry) => /^stopped while waiting for the checkpoint folder another host's process holds: nothing was read or written$/.test(entry.msg)), stderr);
  assert.equal(runSummaries(stderr)[0]?.eventsIn, 0);
  assert.equal(readFileSync(lock, 'utf8'), holder, 'the lock is still its holder\'s');
  assert.equal(existsSync(join(dir, 'held-stopped.jsonl')), false, 'no output was made');
});

test('a checkpoint folder that cannot be made as a file is in its place or on its way (--checkpoint-dir or checkpoint.dir) stops the run for a person: TRIB_ERR_CHECKPOINT, exit 2, one line, no restarts (was exit 1 with a stack, after 10 restarts for checkpoint.dir)', () => {
  const blocker = pipeline('cp-blocker.txt', 'a file\n');
  const file = pipeline('cp-blocked.yaml', 'name: cp-blocked\nsources: [{type: synthetic, events: 5}]\nsinks: [{type: file, path: cp-blocked.jsonl}]\n');
  const checkpointed = pipeline('cp-blocked-own.yaml', `name: cp-blocked\nsources: [{type: synthetic, events: 5}]\nsinks: [{type: file, path: cp-blocked.jsonl}]\ncheckpoint: {dir: ${join(blocker, 'cp')}, interval: 1m}\n`);
  for (const args of [[file, '--checkpoint-dir', join(blocker, 'cp')], [file, '--checkpoint-dir', blocker], [checkpointed]]) {
    const result = tributary('run', ...args, '--log-level', 'warn');
    assert.equal(result.status, 2, result.stderr);
    const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { code?: string; msg: string; err?: unknown });
    assert.deepEqual(records.map(({ code, err }) => [code, err]), [['TRIB_ERR_CHECKPOINT', undefined]], result.stderr);
    assert.match(records[0]!.msg, /the checkpoint folder .*cp-blocker\.txt(\/cp)? cannot be made: it, or a folder on its way to it, is a file \((ENOTDIR|EEXIST): .*\): name another \(checkpoint\.dir, --checkpoint-dir\)$/);
  }
});

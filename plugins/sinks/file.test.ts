import { after, test } from 'node:test';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { closeSync, constants as fsConstants, createReadStream, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { constants as zlib, createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { ConfigError, type PluginContext, type StreamRecord } from 'tributary';
import { pino } from 'pino';
import { runSummaries, runYaml, spawnTributary, testContext, until, tempFolder } from 'tributary/testing';
import { fileURLToPath } from 'node:url';
import { releaseLock, takeLock, takerTempName } from '../../core/lock.js';
import fileSink from './file.js';

const cli = fileURLToPath(new URL('../../core/cli/main.js', import.meta.url));

const dir = tempFolder({ after }, 'file-sink');
const record = (userId: string): StreamRecord => ({ kind: 'event', userId, time: 0, type: 'view' }) as StreamRecord;
/** zlib's gzip header, without a name or extra fields (RFC 1952's fixed part). */
const GZIP_HEADER_BYTES = 10;

for (const name of ['out.jsonl', 'out.jsonl.gz']) {
  test(`${name}: after flush(), every record written is in the file, before close`, async () => {
    const path = join(dir, name);
    const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir }));
    for (let i = 0; i < 100; i++) sink.write(record(`u${i}`));
    await sink.flush?.();
    const bytes = readFileSync(path);
    // gzip is flushed (a sync flush) at every flush: what a checkpoint covers is readable by a streaming reader.
    const text = name.endsWith('.gz') ? gunzipSync(bytes, { finishFlush: zlib.Z_SYNC_FLUSH }).toString() : bytes.toString();
    const lines = text.split('\n').filter((line) => line.length > 0);
    assert.equal(lines.length, 100);
    assert.equal(JSON.parse(lines[99]!).userId, 'u99');
    if (name.endsWith('.gz')) {
      // A flush that finds nothing new (the output idle) ends the member: complete gzip, for whole-file readers too.
      await sink.flush?.();
      assert.equal(gunzipSync(readFileSync(path)).toString().split('\n').filter(Boolean).length, 100);
    }
    await sink.close?.();
    if (name.endsWith('.gz')) assert.equal(gunzipSync(readFileSync(path)).toString().split('\n').filter(Boolean).length, 100);
  });
}

test('between flushes (checkpoints), a record reaches a plain file 200 ms after it was written to the sink, not before; a gzip file holds it longer (until a flush, or gzip_flush_interval)', async (t) => {
  // A run's sinks flush only at checkpoints (30 s apart by default): a prediction must not wait for one to be in a
  // plain file (kill -9 past it leaves it there, and the restart writes it again). The wait is a setTimeout: node's
  // mock timers move its clock, so a loaded host decides nothing.
  const plainPath = join(dir, 'between-flushes.jsonl');
  const gzipPath = join(dir, 'between-flushes.jsonl.gz');
  const plain = await fileSink.create({ path: plainPath, append: false, lazy: false }, testContext({ baseDir: dir }));
  const gzip = await fileSink.create({ path: gzipPath, append: false, lazy: false }, testContext({ baseDir: dir }));
  await plain.open?.();
  await gzip.open?.();
  t.mock.timers.enable({ apis: ['setTimeout'] });
  plain.write(record('u1'));
  gzip.write(record('u1'));
  t.mock.timers.tick(199);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(statSync(plainPath).size, 0, 'held for 200 ms, so records go out in chunks');
  t.mock.timers.tick(1);
  t.mock.timers.reset();
  const line = `${JSON.stringify(record('u1'))}\n`;
  await until(() => statSync(plainPath).size === line.length, 'the record in the plain file, with no flush', 10_000);
  assert.equal(readFileSync(plainPath, 'utf8'), line);
  // The compressor holds a slow stream's text until a flush, gzip_flush_interval (a sync flush costs size) or until it has a deflate block to emit.
  // Its 10-byte header reaches the file at the first write, when the event loop gets to it: at most that much is there.
  assert.ok(statSync(gzipPath).size <= GZIP_HEADER_BYTES, 'gzip: nothing past its header before a flush');
  assert.equal(gunzipSync(readFileSync(gzipPath), { finishFlush: zlib.Z_SYNC_FLUSH }).toString(), '', 'gzip: no text before a flush');
  await gzip.flush?.();
  assert.equal(gunzipSync(readFileSync(gzipPath), { finishFlush: zlib.Z_SYNC_FLUSH }).toString(), line);
  await plain.close?.();
  await gzip.close?.();
});

/** Turns the event loop (setImmediate, which mock timers leave alone) until `condition`, for at most `ms` of real time; whether it held. */
async function turnsUntil(condition: () => boolean, ms: number): Promise<boolean> {
  for (const start = performance.now(); !condition(); ) {
    if (performance.now() - start > ms) return false;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return true;
}

test('gzip: a slow stream\'s record is in the file gzip_flush_interval (5 s by default) after it reached the compressor, readable by streaming readers, with no flush; 0 holds it until a flush', async (t) => {
  // A daemon writing a few predictions a second with 30 s checkpoints had them in a .gz file only at the checkpoint.
  const line = `${JSON.stringify(record('u1'))}\n`;
  const streamed = (path: string): string => gunzipSync(readFileSync(path), { finishFlush: zlib.Z_SYNC_FLUSH }).toString();
  for (const [interval, syncMs] of [[undefined, 5000], ['1s', 1000], [0, undefined]] as const) {
    const name = `interval ${interval ?? 'default'}`;
    const path = join(dir, `timed-sync-${interval ?? 'default'}.jsonl.gz`);
    const sink = await fileSink.create({ path, append: false, lazy: false, ...(interval === undefined ? {} : { gzip_flush_interval: interval }) }, testContext({ baseDir: dir }));
    await sink.open?.();
    // The writer's 200 ms linger and the compressor's wait are setTimeouts: node's mock timers move their clock, so a loaded host decides nothing.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    try {
      sink.write(record('u1'));
      t.mock.timers.tick(200); // the writer's linger: the record goes to the compressor
      t.mock.timers.tick((syncMs ?? 60_000) - 1);
      // Real time for the file's writes, had any been made.
      assert.equal(await turnsUntil(() => streamed(path) !== '', 300), false, `${name}: held until then`);
      assert.equal(streamed(path), '', name);
      t.mock.timers.tick(1);
      // Before: held until the sink's flush, whatever the wait.
      assert.equal(await turnsUntil(() => streamed(path) === line, 10_000), syncMs !== undefined, `${name}: ${syncMs === undefined ? 'held until a flush' : 'in the file, with no flush'}`);
      // The record after it waits its own interval; a flush writes both (one member, which the flush after ends: idle).
      sink.write(record('u2'));
      await sink.flush?.();
      assert.equal(streamed(path), line + `${JSON.stringify(record('u2'))}\n`, name);
    } finally {
      t.mock.timers.reset();
    }
    await sink.close?.();
    assert.equal(gunzipSync(readFileSync(path)).toString().split('\n').filter(Boolean).length, 2, name);
  }
});

test('a record left cut short at the end of the file (a full disk, kill -9) is dropped on resume, and ours never continue a foreign last line', async () => {
  const whole = `${JSON.stringify(record('u1'))}\n`;
  const resumed = join(dir, 'torn.jsonl');
  writeFileSync(resumed, `${whole}{"kind":"event","userId":"u2","ti`);
  const sink = await fileSink.create({ path: resumed, append: false, lazy: false }, testContext({ baseDir: dir, resuming: true }));
  await sink.open?.();
  sink.write(record('u2'));
  await sink.close();
  assert.equal(readFileSync(resumed, 'utf8'), `${whole}${JSON.stringify(record('u2'))}\n`);

  const appended = join(dir, 'foreign.jsonl');
  writeFileSync(appended, 'a last line without its newline');
  const appender = await fileSink.create({ path: appended, append: true, lazy: false }, testContext({ baseDir: dir }));
  await appender.open?.();
  appender.write(record('u3'));
  await appender.close();
  assert.equal(readFileSync(appended, 'utf8'), `a last line without its newline\n${JSON.stringify(record('u3'))}\n`);
});

test('a pipeline run again in the same process replaces its output file, as a new process would', async () => {
  const out = join(dir, 'again.jsonl');
  for (let run = 0; run < 2; run++) await runYaml(`sources: [{type: synthetic, events: 100}]\nsinks: [{type: file, path: ${out}}]\n`);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 100);
});

/**
 * Runs `yaml` and stops it once its file sink says (at debug level) that it is opening the FIFO, the open
 * waiting for a reader: a stop at a fixed time could come before the sink got there, and only repeat the
 * case of a run stopped before it starts.
 */
async function stoppedWhileWaitingForReader(yaml: string) {
  const waiting = 'file sink: opening the FIFO, which waits for a reader';
  let logged = '';
  const logger = pino({ level: 'debug' }, { write: (line: string) => void (logged += line) });
  const controller = new AbortController();
  let finished = false;
  const running = runYaml(yaml, { signal: controller.signal, logger }).finally(() => (finished = true));
  await until(() => finished || logged.includes(waiting), 'the file sink to wait for a reader of the FIFO');
  controller.abort();
  const run = await running;
  assert.ok(logged.includes(waiting), `the sink was waiting for a reader when stopped: ${logged}`);
  return run;
}

test('a FIFO without a reader: the start waits for one, and a stop while it waits ends the run at once, writing nothing', async (t) => {
  const fifo = join(dir, 'out.fifo');
  execFileSync('mkfifo', [fifo]);
  // Should a regression leave an open blocked in libuv's pool, release it so this test file can exit.
  after(() => closeSync(openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)));
  const yaml = `sources: [{type: synthetic, events: 1000}]\nsinks: [{type: file, path: ${fifo}}]\n`;
  // A stop the sink misses leaves the run waiting for a reader for ever: a timeout says so.
  const timeout = 60_000;

  await t.test('stopped before it starts', { timeout }, async () => {
    const controller = new AbortController();
    controller.abort();
    const run = await runYaml(yaml, { signal: controller.signal });
    assert.equal(run.stats.eventsIn, 0);
  });
  await t.test('stopped while it waits for a reader', { timeout }, async () => {
    const run = await stoppedWhileWaitingForReader(yaml);
    assert.equal(run.stats.eventsIn, 0);
  });
  await t.test('appending (append: true, or resuming), stopped while it waits for a reader: the sink never reads the FIFO for a torn tail', { timeout }, async () => {
    // Reading a FIFO's tail opened it to read, which blocks the process until a writer comes: not even the stop ran.
    for (const plainOrGzip of ['', ', gzip: true']) {
      const run = await stoppedWhileWaitingForReader(`sources: [{type: synthetic, events: 1000}]\nsinks: [{type: file, path: ${fifo}, append: true${plainOrGzip}}]\n`);
      assert.equal(run.stats.eventsIn, 0);
    }
  });
  await t.test('lazy (as a dead-letter file), stopped while it waits for a reader: the run ends', { timeout }, async () => {
    // Opened at its first record instead, the open waited in libuv's pool past the stop, and close waited on it.
    const run = await stoppedWhileWaitingForReader(`sources: [{type: synthetic, events: 1000}]\nsinks: [{type: file, path: ${fifo}, lazy: true}]\n`);
    assert.equal(run.stats.eventsIn, 0);
  });
  await t.test('with a reader, every record goes through the FIFO', async () => {
    const read = text(createReadStream(fifo));
    const run = await runYaml(yaml);
    assert.equal(run.stats.eventsIn, 1000);
    assert.equal((await read).trim().split('\n').length, 1000);
  });
});

test("a daemon whose FIFO output has no reader yet says so: /readyz 503 naming the FIFO (was: only `starting`), and SIGTERM still ends it, exit 0, nothing read", async (t) => {
  const fifo = join(dir, 'unread.fifo');
  execFileSync('mkfifo', [fifo]);
  // Should a regression leave an open blocked in libuv's pool, release it so this test file can exit.
  after(() => closeSync(openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)));
  const file = join(dir, 'unread.yaml');
  writeFileSync(file, `name: unread\nsources: [{type: synthetic, events: 100}]\nsinks: [{type: file, path: ${fifo}}]\n`);
  const run = spawnTributary(t, ['run', file, '--http-port', '0', '--log-level', 'debug']);
  await run.started(() => run.stderr.includes('file sink: opening the FIFO, which waits for a reader'), 'the wait for a reader');
  const port = /"port":(\d+)/.exec(run.stderr)![1];
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  assert.equal(response.status, 503);
  const { pipelines } = (await response.json()) as { pipelines: { reasons: string[] }[] };
  assert.deepEqual(pipelines[0]!.reasons.slice(0, 1), ['starting']);
  assert.match(pipelines[0]!.reasons[1] ?? '', new RegExp(`^sink-file-0: waiting for a reader of FIFO ${fifo} \\(since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\)$`), JSON.stringify(pipelines));
  assert.equal(await run.stop('SIGTERM'), 0, run.stderr);
  assert.equal(runSummaries(run.stderr)[0]!.eventsIn, 0);
});

test('a FIFO output this process may not write stops the run for a person at once, as a regular file does (TRIB_ERR_OUTPUT_UNWRITABLE, exit 2, naming the FIFO, the errno and the fix; was: 10 restarts, then exit 1)', (t) => {
  const fifo = join(dir, 'refused.fifo');
  execFileSync('mkfifo', ['-m', '0444', fifo]);
  const file = join(dir, 'refused.yaml');
  writeFileSync(file, `name: refused\nsources: [{type: synthetic, events: 100}]\nsinks: [{type: file, path: ${fifo}}]\ncheckpoint: {dir: ${join(dir, 'refused-checkpoints')}}\nsettings: {restart: {backoff: 1ms, max_backoff: 1ms}}\n`);
  // Root writes whatever the mode bits say: run without the capability that lets it (setpriv, util-linux).
  const asRoot = process.getuid?.() === 0;
  if (asRoot && spawnSync('setpriv', ['--version']).status !== 0) return t.skip('runs as root, whom mode bits do not stop, and setpriv (util-linux) is not installed to drop CAP_DAC_OVERRIDE');
  const [command, args] = asRoot ? ['setpriv', ['--bounding-set=-dac_override,-dac_read_search', process.execPath, cli]] : [process.execPath, [cli]];
  const run = spawnSync(command, [...args, 'run', file, '--log-level', 'warn', '--no-progress'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 2, run.stderr);
  const records = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; code?: string; msg: string });
  assert.deepEqual(records.map((record) => [record.level, record.code]), [[50, 'TRIB_ERR_OUTPUT_UNWRITABLE']], run.stderr);
  assert.match(records[0]!.msg, new RegExp(`${fifo} cannot be opened to write \\(EACCES: .*\\): make ${fifo} writable by user \\S+ \\(uid \\d+\\)$`));
});

test("a FIFO whose reader goes away fails the run as the sink's broken pipe, named (TRIB_ERR_SINK)", async () => {
  const fifo = join(dir, 'gone.fifo');
  execFileSync('mkfifo', [fifo]);
  for (const plainOrGzip of ['', ', gzip: true']) {
    // The reader takes 1,000 bytes and exits: the next write gets EPIPE. (The sink's start waits for it to open the FIFO.)
    const reader = spawn('head', ['-c', '1000', fifo], { stdio: 'ignore' });
    await assert.rejects(
      runYaml(`sources: [{type: synthetic, events: 1000000}]\nsinks: [{type: file, path: ${fifo}${plainOrGzip}}]\n`),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'TRIB_ERR_SINK');
        assert.match(error.message, new RegExp(`^sink-file-0 failed.*: ${fifo}: the pipe's reader went away \\(EPIPE, broken pipe\\)$`));
        return true;
      },
    );
    reader.kill();
  }
});

test('a FIFO whose reader goes away: the daemon logs the broken pipe once, as the failure, with no echo of it from the close', async (t) => {
  const fifo = join(dir, 'gone-cli.fifo');
  execFileSync('mkfifo', [fifo]);
  const file = join(dir, 'gone-cli.yaml');
  writeFileSync(file, `sources: [{type: synthetic, events: 1000000}]\nsinks: [{type: file, path: ${fifo}}]\n`);
  const reader = spawn('head', ['-c', '1000', fifo], { stdio: 'ignore' });
  const run = spawnTributary(t, ['run', file, '--log-level', 'warn']);
  const code = await run.exited;
  const stderr = run.stderr;
  reader.kill();
  assert.equal(code, 1, stderr);
  assert.match(stderr, /the pipe's reader went away \(EPIPE, broken pipe\)/);
  // The sink's close failed with the same EPIPE: that was logged as a second problem, a warning.
  assert.doesNotMatch(stderr, /closing after the failure failed too/);
});

test("a stdout sink whose reader went away (piped to head) ends the run saying so: exit 1, standard output's reader went away (EPIPE)", async (t) => {
  const file = join(dir, 'stdout-gone.yaml');
  writeFileSync(file, 'sources: [{type: synthetic, events: 1000000}]\nsinks: [{type: stdout}]\n');
  const run = spawnTributary(t, ['run', file, '--log-level', 'warn'], { stdout: true });
  // The reader takes one chunk and goes, as `head` does.
  run.child.stdout!.once('data', () => run.child.stdout!.destroy());
  const code = await run.exited;
  assert.equal(code, 1, run.stderr);
  assert.match(run.stderr, /sink-stdout-0 .*standard output's reader went away \(EPIPE, broken pipe\)/);
});

test("a daemon's stdout sink whose reader went away is not restarted in the process, where standard output stays closed: exit 1 at once (was: restarted 10 times, each replaying the input since the last checkpoint, over 5 minutes at the default backoff)", async (t) => {
  const file = join(dir, 'stdout-gone-checkpointed.yaml');
  // Checkpoints make its failures ones a restart may mend (10 restarts in a row by default); a backoff of 1 ms keeps the old behaviour's run short.
  writeFileSync(file, `name: gone\nsources: [{type: synthetic, events: 1000000}]\nsinks: [{type: stdout}]\ncheckpoint: {dir: ${join(dir, 'stdout-gone-checkpoints')}}\nsettings: {restart: {backoff: 1ms, max_backoff: 1ms}}\n`);
  const run = spawnTributary(t, ['run', file, '--log-level', 'warn'], { stdout: true });
  run.child.stdout!.once('data', () => run.child.stdout!.destroy());
  const code = await run.exited;
  assert.equal(code, 1, run.stderr);
  assert.match(run.stderr, /pipeline gone failed: sink-stdout-0 .*standard output's reader went away \(EPIPE, broken pipe\)/);
  assert.doesNotMatch(run.stderr, /restarting it/);
});

test('a FIFO whose reader stops reading: SIGTERM still ends the process, at shutdown_timeout (exit 1)', async (t) => {
  const fifo = join(dir, 'stalled.fifo');
  execFileSync('mkfifo', [fifo]);
  const file = join(dir, 'stalled.yaml');
  writeFileSync(file, `sources: [{type: synthetic, events: 0}]\nsinks: [{type: file, path: ${fifo}}]\nsettings: {shutdown_timeout: 1s}\n`);
  // This test is the reader: it holds the FIFO open and reads one byte, to know the writing started, then no more.
  const readEnd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  after(() => closeSync(readEnd));
  const run = spawnTributary(t, ['run', file, '--log-level', 'warn']);
  await run.started(() => {
    try {
      return readSync(readEnd, Buffer.alloc(1)) === 1;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      return false;
    }
  }, 'a byte written to the FIFO');
  const stopped = Date.now();
  // Its writes blocked in libuv's pool once the pipe was full, and process.exit waited on them: it ran on.
  const code = await run.stop('SIGTERM', 20_000);
  assert.equal(code, 1, `still running 20 s after SIGTERM: ${run.stderr}`);
  assert.match(run.stderr, /shutdown did not finish within shutdown_timeout; exiting 1/);
  assert.ok(Date.now() - stopped < 15_000);
});

test('gzip: a member the last run left incomplete (kill -9) is completed on resume, with its whole records, and the file stays readable', async () => {
  const line = (userId: string): string => `${JSON.stringify(record(userId))}\n`;
  // What a crash leaves: the members ended at flushes, then part of one no flush ended (its bytes up to a
  // point zlib had written out), the last record cut short.
  const torn = async (text: string): Promise<Buffer> => {
    const gzip = createGzip();
    const chunks: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
    gzip.write(text);
    await new Promise<void>((done) => gzip.flush(zlib.Z_SYNC_FLUSH, () => done()));
    return Buffer.concat(chunks);
  };
  const cut = `${line('u3')}${line('u4')}`.slice(0, -20);
  const files = {
    // this sink's files: a complete member per flush, then the torn one
    members: Buffer.concat([gzipSync(line('u1')), gzipSync(line('u2')), await torn(cut)]),
    // one member, sync flushes (this sink's member between its ends; its files before members): every record is in the torn member
    'one member': await torn(`${line('u1')}${line('u2')}${cut}`),
  };
  for (const [kind, bytes] of Object.entries(files)) {
    const path = join(dir, `crashed-${kind.replace(' ', '-')}.jsonl.gz`);
    writeFileSync(path, bytes);
    assert.throws(() => gunzipSync(readFileSync(path)), /unexpected end of file/, `${kind}: a torn file is not readable as it is`);
    const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir, resuming: true }));
    await sink.open?.();
    sink.write(record('u5'));
    await sink.close();
    assert.equal(gunzipSync(readFileSync(path)).toString(), `${line('u1')}${line('u2')}${line('u3')}${line('u5')}`, kind);
  }
});

/** A gzip file as the sink leaves it when the process dies after a flush: u1, u2 in a complete member, u3 to u5 in one still open (sync-flushed). */
async function crashedGzipFile(name: string): Promise<{ path: string; bytes: Buffer; lastMember: number }> {
  const path = join(dir, name);
  const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir }));
  await sink.open?.();
  sink.write(record('u1'));
  sink.write(record('u2'));
  await sink.flush?.();
  await sink.flush?.(); // idle: the member ends
  for (const userId of ['u3', 'u4']) sink.write(record(userId));
  await sink.flush?.();
  sink.write(record('u5'));
  await sink.flush?.();
  const bytes = readFileSync(path);
  await sink.close();
  return { path, bytes, lastMember: bytes.lastIndexOf(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])) };
}

/** Resumes a sink on `path`, writes u9, and gives the file's text (read whole: it must be complete gzip) and the warnings. */
async function resumeGzip(path: string): Promise<{ text: string; warnings: { msg: string; [field: string]: unknown }[] }> {
  const warnings: { msg: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (entry: string) => void warnings.push(JSON.parse(entry)) });
  const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir, resuming: true, logger }));
  await sink.open?.();
  sink.write(record('u9'));
  await sink.close();
  return { text: gunzipSync(readFileSync(path)).toString(), warnings };
}

const gzipLines = (...userIds: string[]): string => userIds.map((userId) => `${JSON.stringify(record(userId))}\n`).join('');

/** The files a gzip output's damaged last member's records were moved to (`<path>.damaged-<time>.jsonl`), their paths and text. */
function setAside(path: string): { path: string; text: string }[] {
  const name = path.slice(dir.length + 1);
  return readdirSync(dir)
    .filter((entry) => entry.startsWith(`${name}.damaged-`))
    .map((entry) => ({ path: join(dir, entry), text: readFileSync(join(dir, entry), 'utf8') }));
}

test('gzip, resumed after a crash that left the cut member followed by zero-filled blocks: its whole records are kept, the rest dropped (said, with the zeros), ours follow', async () => {
  const { path, bytes } = await crashedGzipFile('crash-zeros.jsonl.gz');
  writeFileSync(path, Buffer.concat([bytes.subarray(0, bytes.length - 8), Buffer.alloc(4096)]));
  const { text, warnings } = await resumeGzip(path);
  assert.equal(text, gzipLines('u1', 'u2', 'u3', 'u4', 'u9'));
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.zeroBytes, 4096);
  assert.equal(warnings[0]!.records, 2);
  assert.match(warnings[0]!.msg, /damaged at byte \d+ \(unexpected end of file\): replaced by a complete member of its 2 whole records before the damage, dropping the 4096 zero bytes the file ended with \(blocks a crash left zero-filled\); a record cut short is dropped; it is written again from the checkpoint/);
});

test('gzip, resumed after a crash that left stale bytes after the cut member: the member\'s records (zlib may inflate the stale bytes as garbage first) are moved to a file beside it, not kept (said: where, why, how many, and where to), ours follow', async () => {
  const { path, bytes } = await crashedGzipFile('crash-junk.jsonl.gz');
  // Stale bytes (deterministic): a hash chain.
  const junk: Buffer[] = [];
  for (let block = createHash('sha256').update('stale').digest(); junk.length < 128; block = createHash('sha256').update(block).digest()) junk.push(block);
  const cutAt = bytes.length - 8;
  writeFileSync(path, Buffer.concat([bytes.subarray(0, cutAt), ...junk]));
  const { text, warnings } = await resumeGzip(path);
  // Before: u3 and u4 kept in a member with a right CRC, with whatever zlib inflated of the stale bytes before it failed.
  assert.equal(text, gzipLines('u1', 'u2', 'u9'));
  const [aside, ...others] = setAside(path);
  assert.deepEqual(others, []);
  assert.ok(aside!.text.startsWith(gzipLines('u3', 'u4')), aside!.text);
  assert.equal(warnings.length, 1);
  const damagedAt = warnings[0]!.damagedAt as number;
  assert.ok(damagedAt >= cutAt, `damaged at ${damagedAt}, the junk starts at ${cutAt}`);
  assert.equal(warnings[0]!.unreadBytes, cutAt + 128 * 32 - damagedAt);
  assert.equal(warnings[0]!.movedTo, aside!.path);
  assert.equal(warnings[0]!.failedRecords, aside!.text.split('\n').length - 1);
  assert.match(
    warnings[0]!.msg,
    new RegExp(`damaged at byte \\d+ \\(.+\\): its \\d+ records inflated before the damage are moved to ${aside!.path.replaceAll('.', '\\.')}, as any of them may be wrong .*, and the member replaced by a complete one of the 0 whole records before it, dropping the \\d+ bytes from there to the end; those after the checkpoint are written again from it$`),
  );
});

test('gzip, resumed on a file whose last member has a flipped bit in its deflate data: the earlier members stay, the file is complete gzip again, ours follow (said)', async () => {
  const { path, bytes, lastMember } = await crashedGzipFile('crash-bitflip.jsonl.gz');
  const flipped = Buffer.from(bytes);
  flipped[lastMember + 10 + 3] ^= 0x10;
  writeFileSync(path, flipped);
  const { text, warnings } = await resumeGzip(path);
  assert.ok(text.startsWith(gzipLines('u1', 'u2')), text);
  assert.ok(text.endsWith(gzipLines('u9')), text);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.msg, /damaged at byte \d+ \(/);
});

test('gzip, resumed on a file whose complete last member fails its CRC (a wrong CRC, or a flipped bit in its text that inflates without error): its records are not given a right CRC but moved to a file beside it (`<path>.damaged-<time>.jsonl`, said); the earlier members stay, ours follow', async () => {
  for (const damage of ['crc', 'text']) {
    const { path } = await crashedGzipFile(`crash-crc-${damage}.jsonl.gz`);
    const bytes = readFileSync(path); // closed: its last member complete
    if (damage === 'crc') bytes[bytes.length - 8] ^= 0x01;
    else {
      // The last member stored (level 0), as another writer may leave it: a flipped bit changes one character of u4.
      const lastMember = bytes.lastIndexOf(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]));
      const stored = gzipSync(gzipLines('u3', 'u4', 'u5'), { level: 0 });
      stored[stored.indexOf('"u4"') + 2] ^= 0x01; // u4 -> u5
      bytes.fill(0, lastMember);
      writeFileSync(path, Buffer.concat([bytes.subarray(0, lastMember), stored]));
    }
    if (damage === 'crc') writeFileSync(path, bytes);
    const { text, warnings } = await resumeGzip(path);
    // Before: u3, u4, u5 kept in a member with a right CRC (with a flipped bit: u3, u5, u5).
    assert.equal(text, gzipLines('u1', 'u2', 'u9'), damage);
    assert.equal(warnings.length, 1, damage);
    assert.equal(warnings[0]!.problem, 'incorrect data check');
    assert.equal(warnings[0]!.unreadBytes, 8);
    assert.equal(warnings[0]!.failedRecords, 3);
    // Before: dropped, only counted in the log.
    const aside = setAside(path);
    assert.deepEqual(aside.map((file) => file.text), [damage === 'crc' ? gzipLines('u3', 'u4', 'u5') : gzipLines('u3', 'u5', 'u5')], damage);
    assert.equal(warnings[0]!.movedTo, aside[0]!.path);
    assert.match(aside[0]!.path, /\.jsonl\.gz\.damaged-\d{8}T\d{6}Z\.jsonl$/);
    assert.ok(warnings[0]!.msg.includes(`: its 3 records are moved to ${aside[0]!.path}, as any of them may be wrong`), warnings[0]!.msg);
  }
});

test('gzip: zero bytes after a complete last member (zero-filled blocks, padding) are dropped before appending, as gzip readers stop at them (said)', async () => {
  const { path } = await crashedGzipFile('crash-padded.jsonl.gz');
  writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.alloc(4096)]));
  const { text, warnings } = await resumeGzip(path);
  assert.equal(text, gzipLines('u1', 'u2', 'u3', 'u4', 'u5', 'u9'));
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.droppedBytes, 4096);
  assert.match(warnings[0]!.msg, /dropped the 4096 zero bytes after the last gzip member/);
});

test('a plain file ending in zero-filled blocks (a crash): the zeros are dropped, said, appending or resuming; no line of NULs', async () => {
  const whole = `${JSON.stringify(record('u1'))}\n`;
  const cases = [
    { name: 'appended after a whole line', old: whole, append: true, resuming: false, expected: whole },
    { name: 'appended after a cut line', old: `${whole}{"kind":"ev`, append: true, resuming: false, expected: `${whole}{"kind":"ev\n` },
    { name: 'resumed after a cut line', old: `${whole}{"kind":"ev`, append: false, resuming: true, expected: whole },
  ];
  for (const { name, old, append, resuming, expected } of cases) {
    const path = join(dir, `zero-filled-${name.replaceAll(' ', '-')}.jsonl`);
    writeFileSync(path, Buffer.concat([Buffer.from(old), Buffer.alloc(4096)]));
    const warnings: { msg: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (entry: string) => void warnings.push(JSON.parse(entry)) });
    const sink = await fileSink.create({ path, append, lazy: false }, testContext({ baseDir: dir, resuming, logger }));
    await sink.open?.();
    sink.write(record('u2'));
    await sink.close();
    assert.equal(readFileSync(path, 'utf8'), `${expected}${JSON.stringify(record('u2'))}\n`, name);
    assert.match(warnings[0]?.msg ?? '', /dropped the 4096 zero bytes at the end of the file \(blocks a crash left zero-filled/, name);
  }
});

test('gzip: appending to a large gzip file of another writer does not decompress it whole; its end is said unchecked, ours follow it, readable', async () => {
  const { pino } = await import('pino');
  // Level 9 sets the header's XFL byte: not a member of this sink, so its end is read from the start, within bounds.
  const line = `${JSON.stringify(record('old'))}\n`;
  const text = Buffer.from(line.repeat(Math.ceil((65 << 20) / line.length)));
  const path = join(dir, 'foreign-large.jsonl.gz');
  writeFileSync(path, gzipSync(text, { level: 9 }));
  const logs: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (entry: string) => void logs.push(entry) });
  const sink = await fileSink.create({ path, append: true, lazy: false }, testContext({ baseDir: dir, logger }));
  await sink.open?.();
  assert.equal(logs.length, 1);
  assert.match(logs[0]!, /more than 64 MiB.*could not be checked/);
  sink.write(record('new'));
  await sink.close();
  const all = gunzipSync(readFileSync(path));
  assert.equal(all.length, text.length + line.length);
  assert.equal(all.subarray(text.length).toString(), `${JSON.stringify(record('new'))}\n`);
});

test('a second process writing the same file (a backtest of a running daemon\'s pipeline) is refused at its start, naming the file and the holder; a lock left by kill -9 is taken over', async (t) => {
  const folder = mkdtempSync(join(dir, 'locked-'));
  const out = join(folder, 'predictions.jsonl');
  const lock = `${out}.lock`;
  writeFileSync(join(folder, 'daemon.yaml'), `name: live\nsources: [{type: synthetic, events: 0, rate: 2000}]\nsinks: [{type: file, path: predictions.jsonl}]\n`);
  const live = spawnTributary(t, ['run', join(folder, 'daemon.yaml'), '--log-level', 'warn'], { cwd: folder });
  const daemon = live.child;
  // Running once its output has records (the sink flushes at least every 200 ms).
  await live.started(() => existsSync(out) && statSync(out).size > 0, 'output');
  assert.deepEqual(JSON.parse(readFileSync(lock, 'utf8')), { ...JSON.parse(readFileSync(lock, 'utf8')), pid: daemon.pid, host: hostname(), pipeline: 'live' });

  const events = join(folder, 'events.jsonl');
  writeFileSync(events, `${JSON.stringify(record('b1'))}\n`);
  const backtest = (...options: string[]): { status: number | null; stderr: string } =>
    spawnSync(process.execPath, [cli, 'backtest', join(folder, 'daemon.yaml'), '--input', events, '--report', join(folder, 'report'), '--log-level', 'warn', '--no-progress', ...options], { cwd: folder, encoding: 'utf8' });
  const sizeBefore = statSync(out).size;
  // The default dead-letter file (dead-letters-live.jsonl in the working directory) is lazy: with nothing rejected, neither it nor its lock is made.
  assert.equal(existsSync(join(folder, 'dead-letters-live.jsonl.lock')), false);
  const refused = backtest();
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, new RegExp(`${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is written by pid ${daemon.pid} on ${hostname()} \\(pipeline 'live', since `));
  assert.ok(statSync(out).size >= sizeBefore, 'the daemon\'s output was not replaced');
  assert.match(readFileSync(out, 'utf8').split('\n')[0]!, /^\{"kind":"event"/);

  // Killed (-9): its lock stays, names a pid that is gone, and the next writer takes it over.
  assert.equal(await live.stop('SIGKILL'), 'SIGKILL');
  assert.ok(existsSync(lock));
  const taken = backtest();
  assert.equal(taken.status, 0, taken.stderr);
  assert.match(taken.stderr, /took over the lock of a process that is gone/);
  assert.deepEqual(readFileSync(out, 'utf8'), `${JSON.stringify(record('b1'))}\n`, 'the backtest wrote its output');
  assert.ok(!existsSync(lock), 'released when the backtest ended');
});

test('run: an output file a live process of this host writes (its lock held) exits 2 at once (TRIB_ERR_OUTPUT_LOCKED), naming the holder and the cure, without restarts that would be refused alike', () => {
  const folder = mkdtempSync(join(dir, 'held-output-'));
  const out = join(folder, 'out.jsonl');
  writeFileSync(join(folder, 'p.yaml'), 'name: second\nsources: [{type: synthetic, events: 5}]\nsinks: [{type: file, path: out.jsonl}]\ncheckpoint: {dir: cp, interval: 1h}\n');
  // This test's process holds it, as a first daemon would: a live pid of this host, its start time in the lock.
  assert.equal(takeLock(`${out}.lock`, out, { pipeline: 'first', logger: pino({ level: 'silent' }), user: 'file sink', heldAs: 'written', shared: true }), true);
  try {
    // Before: restarted in the process 10 times over about 5 minutes, each refused alike, then exit 1.
    const result = spawnSync(process.execPath, [cli, 'run', 'p.yaml'], { cwd: folder, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2, result.stderr);
    const records = result.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; code?: string });
    const failed = records.find((record) => record.code === 'TRIB_ERR_OUTPUT_LOCKED');
    assert.match(
      failed?.msg ?? result.stderr,
      new RegExp(`^pipeline second: TRIB_ERR_OUTPUT_LOCKED: sink-file-0 could not open: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is written by pid ${process.pid} on ${hostname()} \\(pipeline 'first', since [^)]+\\): .*Stop that process or give this sink another path`),
    );
    assert.equal(records.filter((record) => /restarting it/.test(record.msg)).length, 0, 'no restart in the process');
    assert.equal(existsSync(out), false, 'nothing written');
  } finally {
    releaseLock(`${out}.lock`);
  }
});

test('lazy: the start makes neither the folder nor the lock; the first record makes both, and the file', async () => {
  const folder = mkdtempSync(join(dir, 'lazy-'));
  const path = join(folder, 'later', 'dead.jsonl');
  const sink = await fileSink.create({ path, append: false, lazy: true }, testContext({ baseDir: folder }));
  await sink.open?.();
  // Was: the lock (and so the folder) made at the start, for a file no record might ever come to.
  assert.deepEqual(readdirSync(folder), [], 'nothing made at the start');
  sink.write(record('u1'));
  assert.ok(existsSync(`${path}.lock`), 'locked as the first record came');
  await sink.close();
  assert.equal(readFileSync(path, 'utf8'), `${JSON.stringify(record('u1'))}\n`);
  assert.deepEqual(readdirSync(join(folder, 'later')), ['dead.jsonl'], 'the lock released');
});

test('run: a lazy file another process took after this one started (two runs racing for it) fails this run at its first record, exit 2 (TRIB_ERR_OUTPUT_LOCKED) naming the holder; nothing of it written', async (t) => {
  const folder = mkdtempSync(join(dir, 'lazy-race-'));
  const dead = join(folder, 'dead', 'dead.jsonl');
  writeFileSync(join(folder, 'p.yaml'), 'name: racer\nsources: [{type: stdin}]\nsinks: [{type: file, path: out.jsonl}]\ndead_letter: {type: file, path: dead/dead.jsonl, lazy: true}\nsettings: {max_in_flight: 1}\n');
  const run = spawnTributary(t, ['run', 'p.yaml', '--log-level', 'warn'], { cwd: folder, stdin: true });
  run.child.stdin!.write('{"user_id":"u","time":"2024-01-01T00:00:00Z","type":"view"}\n');
  // Its sinks are open once the event is written (a batch of one line: max_in_flight; flushed every commit_interval).
  // No signal is missed here: the file is polled.
  await run.started(() => existsSync(join(folder, 'out.jsonl')) && statSync(join(folder, 'out.jsonl')).size > 0, 'the first event written');
  assert.equal(existsSync(join(folder, 'dead')), false, 'no folder (nor lock) for the dead letters yet');
  // The other run (this test's process) writes its first dead letter first.
  assert.equal(takeLock(`${dead}.lock`, dead, { pipeline: 'first', logger: pino({ level: 'silent' }), user: 'file sink', heldAs: 'written', shared: true }), true);
  try {
    run.child.stdin!.end('not json\n');
    assert.equal(await run.exited, 2, run.stderr);
    const records = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; code?: string });
    assert.match(
      records.find((record) => record.code === 'TRIB_ERR_OUTPUT_LOCKED')?.msg ?? run.stderr,
      new RegExp(`TRIB_ERR_OUTPUT_LOCKED: the dead-letter sink failed to write a record \\(kind 'dead_letter'\\): ${dead.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is written by pid ${process.pid} on ${hostname()} \\(pipeline 'first', since [^)]+\\): .*Stop that process or give this sink another path`),
    );
    assert.equal(records.filter((record) => /restarting it/.test(record.msg)).length, 0, 'no restart in the process');
    assert.equal(existsSync(dead), false, 'nothing of the other\'s file written');
    assert.equal(JSON.parse(readFileSync(`${dead}.lock`, 'utf8')).pid, process.pid, 'the lock is still the other\'s');
  } finally {
    releaseLock(`${dead}.lock`);
  }
});

test('sinks of one process share a file\'s lock; it goes when the last one closes; a lock file that cannot be read refuses, and another host\'s is taken over once not renewed for 10 minutes', async () => {
  const folder = mkdtempSync(join(dir, 'shared-lock-'));
  const path = join(folder, 'out.jsonl');
  const first = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: folder }));
  const second = await fileSink.create({ path, append: false, lazy: true }, testContext({ baseDir: folder }));
  await first.open?.();
  await second.open?.();
  await first.close?.();
  assert.ok(existsSync(`${path}.lock`), 'held while a sink of the file is open');
  await second.close?.();
  assert.ok(!existsSync(`${path}.lock`));
  writeFileSync(`${path}.lock`, '');
  const third = await fileSink.create({ path, append: false, lazy: true }, testContext({ baseDir: folder }));
  // Being written as we look, or left half-written by a taker killed: a restart mends it, so not TRIB_ERR_OUTPUT_LOCKED (exit 2).
  await assert.rejects(async () => third.open?.(), (error: Error & { code?: string }) => /out\.jsonl is written by another process \(its lock file is unreadable or being written\)/.test(error.message) && error.code === undefined);
  await third.close?.();
  assert.ok(existsSync(`${path}.lock`), 'not ours to remove');

  // Another host's lock: refused while its holder renews it; taken over once not renewed for 10 minutes (its node died).
  writeFileSync(`${path}.lock`, `${JSON.stringify({ pid: 1, host: 'elsewhere', pipeline: 'live', since: '2026-01-01T00:00:00.000Z' })}\n`);
  const fourth = await fileSink.create({ path, append: false, lazy: true }, testContext({ baseDir: folder }));
  // No lock wait given: refused at once, for a person (TRIB_ERR_OUTPUT_LOCKED), naming the lock file and the wait that
  // would get a dead node's lock. Was a failure a restart may mend (no code), restarted until the restarts were spent.
  await assert.rejects(
    async () => fourth.open?.(),
    (error: Error & { code?: string }) =>
      /out\.jsonl is written by pid 1 on elsewhere \(pipeline 'live', since 2026-01-01T00:00:00\.000Z, lock renewed \d+ s ago\): its lock file .*out\.jsonl\.lock says so/.test(error.message) &&
      /--lock-wait/.test(error.message) &&
      error.code === 'TRIB_ERR_OUTPUT_LOCKED',
  );
  await fourth.close?.();
  const elevenMinutesAgo = new Date(Date.now() - 11 * 60_000);
  utimesSync(`${path}.lock`, elevenMinutesAgo, elevenMinutesAgo);
  const warned: string[] = [];
  const base = testContext({ baseDir: folder });
  const fifth = await fileSink.create({ path, append: false, lazy: true }, { ...base, logger: { ...base.logger, warn: (...args: unknown[]) => void warned.push(String(args.at(-1))) } } as typeof base);
  await fifth.open?.();
  assert.deepEqual(warned, ["file sink: took over another host's lock its holder stopped renewing"]);
  assert.equal(JSON.parse(readFileSync(`${path}.lock`, 'utf8')).pid, process.pid);
  await fifth.close?.();
  assert.ok(!existsSync(`${path}.lock`));
});

test("another host's output lock: the sink waits for it up to the run's lock wait (PluginContext.lockWaitMs: --lock-wait), taking it over once its holder stops renewing it; refused after the wait (TRIB_ERR_OUTPUT_LOCKED); a stop while it waits leaves the file and the lock alone", async () => {
  const folder = mkdtempSync(join(dir, 'waited-lock-'));
  const path = join(folder, 'out.jsonl');
  const lock = `${path}.lock`;
  const holder = `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'live', since: '2026-01-01T00:00:00.000Z' })}\n`;
  const base = testContext({ baseDir: folder });
  const warning = (onWarn: (message: string) => void, more: Partial<PluginContext>): PluginContext =>
    ({ ...base, ...more, logger: { ...base.logger, warn: (...args: unknown[]) => onWarn(String(args.at(-1))) } }) as PluginContext;

  // Its holder's node dies while the sink waits (the lock no longer renewed): taken over, and the sink opens.
  writeFileSync(lock, holder);
  const warned: string[] = [];
  const taker = await fileSink.create(
    { path, append: false, lazy: false },
    warning((message) => {
      warned.push(message);
      if (!/waiting for it/.test(message)) return;
      const stale = new Date(Date.now() - 11 * 60_000);
      utimesSync(lock, stale, stale);
    }, { lockWaitMs: 2000 }),
  );
  await taker.open?.();
  assert.match(warned[0] ?? '', /^file sink: .*out\.jsonl is written by pid 4242 on node-7 .*; waiting for it, up to 2 s in all$/);
  assert.equal(warned[1], "file sink: took over another host's lock its holder stopped renewing");
  assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.pid);
  await taker.close?.();
  assert.equal(existsSync(lock), false);

  // Renewed throughout: refused once the wait is spent, nothing written, the lock left to its holder.
  writeFileSync(lock, holder);
  const began = Date.now();
  const refused = await fileSink.create({ path: 'late.jsonl', append: false, lazy: false }, testContext({ baseDir: folder, lockWaitMs: 1000 }));
  writeFileSync(`${join(folder, 'late.jsonl')}.lock`, holder);
  await assert.rejects(
    async () => refused.open?.(),
    (error: Error & { code?: string }) => error.code === 'TRIB_ERR_OUTPUT_LOCKED' && /late\.jsonl is written by pid 4242 on node-7 .*: its lock file .*late\.jsonl\.lock says so/.test(error.message),
  );
  assert.ok(Date.now() - began >= 1000, 'it waited');
  await refused.close?.();
  assert.equal(existsSync(join(folder, 'late.jsonl')), false, 'nothing written');
  assert.equal(readFileSync(`${join(folder, 'late.jsonl')}.lock`, 'utf8'), holder);

  // Told to stop while it waits: open returns (the run ends before reading), no file made, the lock still its holder's.
  const stoppedPath = join(folder, 'stopped.jsonl');
  writeFileSync(`${stoppedPath}.lock`, holder);
  const stop = new AbortController();
  const stopped = await fileSink.create({ path: stoppedPath, append: false, lazy: false }, warning(() => stop.abort(), { lockWaitMs: 600_000, signal: stop.signal }));
  await stopped.open?.();
  assert.ok(stop.signal.aborted);
  assert.equal(existsSync(stoppedPath), false, 'no file made');
  await stopped.close?.();
  assert.equal(readFileSync(`${stoppedPath}.lock`, 'utf8'), holder, 'the lock is still its holder\'s');
});

test("a lazy file another host's process took after the start is refused at its first record saying what helps: not this run's --lock-wait, which a first record cannot wait under, but a run started again with it", async () => {
  const folder = mkdtempSync(join(dir, 'lazy-host-'));
  const path = join(folder, 'dead.jsonl');
  const sink = await fileSink.create({ path, append: false, lazy: true }, testContext({ baseDir: folder, lockWaitMs: 600_000 }));
  await sink.open?.();
  // Another host's run, started together with this one, writes its first record first.
  writeFileSync(`${path}.lock`, `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'live', since: '2026-01-01T00:00:00.000Z' })}\n`);
  assert.throws(
    () => sink.write(record('u1')),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_OUTPUT_LOCKED');
      assert.match(error.message, /dead\.jsonl is written by pid 4242 on node-7 .*; it is taken over at \S+ unless renewed before\. /);
      // Was: "or let the run wait for its takeover (--lock-wait ...)": this run had a wait of 10 minutes, and was refused all the same.
      assert.doesNotMatch(error.message, /let the run wait/);
      assert.match(error.message, /Stop that process or give this sink another path .*; if no such process runs, remove the lock file, or start the run again with --lock-wait \(e\.g\. 15m\): /);
      return true;
    },
  );
  await sink.close?.();
  assert.equal(existsSync(path), false, 'nothing written');
});

test("run: an output file another host's process writes (its lock renewed) waits up to --lock-wait, then exits 2 (TRIB_ERR_OUTPUT_LOCKED) naming the lock file and the holder, without restarts (was: restarted until the restarts were spent, each refused alike)", () => {
  const folder = mkdtempSync(join(dir, 'remote-output-'));
  const out = join(folder, 'out.jsonl');
  const sections = 'name: second\nsources: [{type: synthetic, events: 5}]\nsinks: [{type: file, path: out.jsonl}]\n';
  // With checkpoints the daemon restarted it in the process (10 times, over about 5 minutes); without, it exited 1 for the supervisor to restart.
  writeFileSync(join(folder, 'checkpointed.yaml'), `${sections}checkpoint: {dir: cp, interval: 1h}\n`);
  writeFileSync(join(folder, 'plain.yaml'), sections);
  writeFileSync(`${out}.lock`, `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'live', since: '2026-01-01T00:00:00.000Z' })}\n`);
  const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const args of [['checkpointed.yaml'], ['plain.yaml', '--lock-wait', '1s']]) {
    const wait = args.slice(1);
    const began = Date.now();
    const result = spawnSync(process.execPath, [cli, 'run', ...args], { cwd: folder, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2, result.stderr);
    const records = result.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; code?: string; level: number });
    const failed = records.find((record) => record.code === 'TRIB_ERR_OUTPUT_LOCKED');
    assert.match(
      failed?.msg ?? result.stderr,
      new RegExp(`^pipeline second: TRIB_ERR_OUTPUT_LOCKED: sink-file-0 could not open: ${escaped(out)} is written by pid 4242 on node-7 \\(pipeline 'live', since [^)]+\\): its lock file ${escaped(out)}\\.lock says so; .*--lock-wait`),
    );
    assert.equal(records.filter((record) => /restarting it/.test(record.msg)).length, 0, 'no restart in the process');
    assert.equal(existsSync(out), false, 'nothing written');
    if (wait.length === 0) continue;
    assert.ok(Date.now() - began >= 1000, 'it waited');
    assert.ok(records.some((record) => record.level === 40 && /^file sink: .* is written by pid 4242 on node-7 .*; waiting for it, up to 1 s in all$/.test(record.msg)), result.stderr);
  }
});

test("run: a stop while --lock-wait waits for another host's output file is a stop before start: exit 0, nothing written, the lock left to its holder", async (t) => {
  const folder = mkdtempSync(join(dir, 'remote-output-stopped-'));
  const out = join(folder, 'out.jsonl');
  writeFileSync(join(folder, 'p.yaml'), 'name: second\nsources: [{type: synthetic, events: 5}]\nsinks: [{type: file, path: out.jsonl}]\n');
  const holder = `${JSON.stringify({ pid: 4242, host: 'node-7', pipeline: 'live', since: '2026-01-01T00:00:00.000Z' })}\n`;
  writeFileSync(`${out}.lock`, holder);
  const run = spawnTributary(t, ['run', 'p.yaml', '--lock-wait', '10m'], { cwd: folder });
  await run.started(() => /waiting for it, up to 600 s in all/.test(run.stderr), 'the wait');
  const status = await run.stop();
  const stderr = run.stderr;
  assert.equal(status, 0, stderr);
  const records = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string });
  assert.deepEqual(records.filter((record) => record.level >= 50), [], 'no error');
  assert.ok(records.some((record) => record.msg === 'stopped before reading any input'), stderr);
  assert.equal(existsSync(out), false, 'nothing written');
  assert.equal(readFileSync(`${out}.lock`, 'utf8'), holder, 'the lock is still its holder\'s');
});

test('rotation by copytruncate: the sink appends, so after the truncation its records start at offset 0 (no NULs in place of what was cut)', async () => {
  const folder = mkdtempSync(join(dir, 'copytruncate-'));
  const path = join(folder, 'out.jsonl');
  const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: folder }));
  await sink.open?.();
  for (let i = 0; i < 50; i++) sink.write(record(`before${i}`));
  await sink.flush?.();
  // What logrotate's copytruncate does: copy the file away, then truncate it in place.
  writeFileSync(`${path}.1`, readFileSync(path));
  truncateSync(path, 0);
  for (let i = 0; i < 3; i++) sink.write(record(`after${i}`));
  await sink.close?.();
  const after = readFileSync(path);
  assert.equal(after.indexOf(0), -1, 'no NUL bytes');
  assert.deepEqual(after.toString().trim().split('\n').map((line) => JSON.parse(line).userId), ['after0', 'after1', 'after2']);
  assert.equal(readFileSync(`${path}.1`, 'utf8').trim().split('\n').length, 50);
});

for (const name of ['out.jsonl', 'out.jsonl.gz']) {
  test(`${name}: rotation by rename, then reopen (SIGHUP): records before it are in the renamed file, whole, the rest in a new file at the path; none lost or twice`, async () => {
    const folder = mkdtempSync(join(dir, 'rename-'));
    const path = join(folder, name);
    const gz = name.endsWith('.gz');
    const read = (file: string): string[] => (gz ? gunzipSync(readFileSync(file)) : readFileSync(file)).toString().split('\n').filter(Boolean).map((line) => JSON.parse(line).userId as string);
    const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: folder }));
    await sink.open?.();
    for (let i = 0; i < 100; i++) sink.write(record(`u${i}`));
    await sink.flush?.();
    renameSync(path, `${path}.1`);
    // Written after the rename, before the reopen: still the renamed file's (its descriptor's).
    for (let i = 100; i < 150; i++) sink.write(record(`u${i}`));
    await sink.reopen?.();
    assert.ok(existsSync(path), 'the path is created again at the reopen');
    for (let i = 150; i < 200; i++) sink.write(record(`u${i}`));
    await sink.close?.();
    const old = read(`${path}.1`); // a gzip file: complete (gunzipSync would throw on an incomplete member)
    const now = read(path);
    assert.deepEqual([...old, ...now], Array.from({ length: 200 }, (_, i) => `u${i}`));
    assert.deepEqual(now, Array.from({ length: 50 }, (_, i) => `u${150 + i}`));
  });

  test(`${name}: reopened while megabytes of records are queued: each record once, whole, in order across the two files`, async () => {
    const folder = mkdtempSync(join(dir, 'reopen-busy-'));
    const path = join(folder, name);
    const gz = name.endsWith('.gz');
    const read = (file: string): string[] => (gz ? gunzipSync(readFileSync(file)) : readFileSync(file)).toString().split('\n').filter(Boolean).map((line) => JSON.parse(line).userId as string);
    const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: folder }));
    await sink.open?.();
    const padding = 'x'.repeat(200);
    const busy = (from: number, to: number): void => {
      for (let i = from; i < to; i++) sink.write({ ...record(`u${i}`), padding } as StreamRecord);
    };
    busy(0, 20_000); // ~5 MB: many chunks in the file's queue
    renameSync(path, `${path}.1`);
    const reopened = sink.reopen?.();
    busy(20_000, 40_000);
    await reopened;
    busy(40_000, 50_000);
    await sink.close?.();
    const old = read(`${path}.1`);
    const now = read(path);
    assert.deepEqual([...old, ...now], Array.from({ length: 50_000 }, (_, i) => `u${i}`));
    assert.ok(old.length >= 20_000 && now.length >= 10_000, `split at ${old.length}`);
  });
}

test('the daemon reopens its file outputs on SIGHUP (logrotate\'s create + postrotate kill -HUP): every record is in one of the two files, once', async (t) => {
  const folder = mkdtempSync(join(dir, 'sighup-'));
  const out = join(folder, 'predictions.jsonl');
  writeFileSync(join(folder, 'daemon.yaml'), `name: hup\nsources: [{type: synthetic, events: 0, rate: 2000}]\nsinks: [{type: file, path: predictions.jsonl, kinds: [event]}]\n`);
  const daemon = spawnTributary(t, ['run', join(folder, 'daemon.yaml'), '--log-level', 'info', '--no-progress'], { cwd: folder });
  await daemon.started(() => existsSync(out) && statSync(out).size > 0, 'output');
  renameSync(out, `${out}.1`);
  daemon.child.kill('SIGHUP');
  await until(() => existsSync(out) && statSync(out).size > 0, `a new file at the path, written to (${daemon.stderr})`, 20_000, 20);
  assert.match(daemon.stderr, /file sink: reopened its file/);
  assert.equal(await daemon.stop(), 0, daemon.stderr);
  const log = daemon.stderr;
  const [summary] = runSummaries(log); // its logs are JSON lines (stderr is no terminal): the summary is one record
  const recordsOut = summary!.recordsOut;
  const lines = [...readFileSync(`${out}.1`, 'utf8').split('\n'), ...readFileSync(out, 'utf8').split('\n')].filter(Boolean);
  assert.equal(lines.length, recordsOut, 'every record written once, in one of the files');
  for (const line of lines) JSON.parse(line); // whole lines only
});

test('an empty or half-written lock file (its taker killed between creating and writing it, by an older version) is taken over once a moment old; a lock is written whole, never seen empty', async () => {
  const folder = mkdtempSync(join(dir, 'unwritten-lock-'));
  const path = join(folder, 'out.jsonl');
  const lock = `${path}.lock`;
  const base = testContext({ baseDir: folder });
  for (const left of ['', '{"pid":12']) {
    writeFileSync(lock, left);
    // Just created: its taker may be writing it now.
    const early = await fileSink.create({ path, append: false, lazy: true }, base);
    await assert.rejects(async () => early.open?.(), /out\.jsonl is written by another process \(its lock file is unreadable or being written\)/);
    await early.close?.();
    const aMinuteAgo = new Date(Date.now() - 60_000);
    utimesSync(lock, aMinuteAgo, aMinuteAgo);
    const warned: string[] = [];
    const taker = await fileSink.create({ path, append: false, lazy: true }, { ...base, logger: { ...base.logger, warn: (...args: unknown[]) => void warned.push(String(args.at(-1))) } } as typeof base);
    await taker.open?.();
    assert.deepEqual(warned, ['file sink: took over a lock file a process left unwritten']);
    assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.pid);
    await taker.close?.();
    assert.ok(!existsSync(lock));
  }
  // Taken by a temp file linked to its name: nothing but the output is left in the folder, nor the
  // temp file of a taker of this host killed before it linked it (its pid runs no process).
  const gone = spawn(process.execPath, ['-e', '']);
  await once(gone, 'exit');
  writeFileSync(takerTempName(lock, gone.pid), `{"pid":${gone.pid}`);
  const sink = await fileSink.create({ path, append: false, lazy: false }, base);
  await sink.open?.();
  assert.deepEqual(readdirSync(folder).sort(), ['out.jsonl', 'out.jsonl.lock']);
  await sink.close?.();
});

test('a lock whose pid now runs another process (the holder died, its pid was reused) is taken over; one that says not when its process started, naming a running pid, is refused, asking a person', async (t) => {
  const folder = mkdtempSync(join(dir, 'reused-pid-'));
  const path = join(folder, 'out.jsonl');
  const lock = `${path}.lock`;
  // A lock as this process writes it (with the time it started), made to name a process that started later: as if its holder had died and its pid gone to that one.
  const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: folder }));
  await sink.open?.();
  const ours = JSON.parse(readFileSync(lock, 'utf8')) as { started?: string };
  await sink.close?.();
  assert.match(ours.started ?? '', /^[0-9a-f-]+:\d+$/, 'the lock holds when its process started (boot id, clock ticks)');
  const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60_000)'], { stdio: 'ignore' });
  t.after(() => void other.kill('SIGKILL'));
  await once(other, 'spawn');
  writeFileSync(lock, `${JSON.stringify({ ...ours, pid: other.pid, pipeline: 'dead' })}\n`);
  const warned: unknown[][] = [];
  const base = testContext({ baseDir: folder });
  const taker = await fileSink.create({ path, append: false, lazy: false }, { ...base, logger: { ...base.logger, warn: (...args: unknown[]) => void warned.push(args) } } as typeof base);
  await taker.open?.();
  assert.deepEqual(warned.map((args) => [(args[0] as { why: string }).why, args.at(-1)]), [['its pid runs another process, started since', 'file sink: took over the lock of a process that is gone']]);
  assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.pid);
  await taker.close?.();
  assert.ok(!existsSync(lock));

  // A lock of an older version (or of a system without /proc) says not when its process started: a running pid may be its holder.
  writeFileSync(lock, `${JSON.stringify({ pid: other.pid, host: hostname(), pipeline: 'old', since: '2026-01-01T00:00:00.000Z' })}\n`);
  const refused = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: folder }));
  await assert.rejects(async () => refused.open?.(), new RegExp(`out\\.jsonl is written by pid ${other.pid} on ${hostname()} \\(pipeline 'old', .*if no such process runs, remove the lock file$`));
  await refused.close?.();
  assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pipeline, 'old', 'left as it was');
});

test('two processes taking over one stale lock at the same moment: exactly one of them gets it, the other is refused', async (t) => {
  const folder = mkdtempSync(join(dir, 'takers-'));
  // Each taker opens a sink (which locks its file at its start) on the round's file when told to, says whether it got the lock, and holds it until its stdin ends.
  const script = `
    import { createInterface } from 'node:readline';
    const { default: fileSink } = await import(${JSON.stringify(new URL('./file.js', import.meta.url).href)});
    const { testContext } = await import(${JSON.stringify(new URL('../../core/testing.js', import.meta.url).href)});
    const quiet = { ...testContext().logger, warn() {}, info() {} };
    const held = [];
    console.log('ready');
    for await (const round of createInterface({ input: process.stdin })) {
      const sink = await fileSink.create({ path: ${JSON.stringify(folder)} + '/' + round + '/out.jsonl', append: false, lazy: false }, testContext({ logger: quiet }));
      try {
        await sink.open();
        held.push(sink);
        console.log(round + ' took');
      } catch (error) {
        console.log(round + ' refused ' + error.message.split(':')[0]);
      }
    }
  `;
  const takers = [0, 1].map(() => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => void child.kill('SIGKILL'));
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    return { child, next: async (): Promise<string> => String((await lines.next()).value) };
  });
  assert.deepEqual(await Promise.all(takers.map((taker) => taker.next())), ['ready', 'ready']);
  // A pid that runs no process: one that exited.
  const gone = spawn(process.execPath, ['-e', '']);
  await once(gone, 'exit');
  const rounds = 100;
  const outcomes: string[] = [];
  for (let round = 0; round < rounds; round++) {
    mkdirSync(join(folder, String(round)));
    writeFileSync(join(folder, String(round), 'out.jsonl.lock'), `${JSON.stringify({ pid: gone.pid, host: hostname(), pipeline: 'dead', since: new Date().toISOString() })}\n`);
    for (const taker of takers) taker.child.stdin!.write(`${round}\n`);
    const said = await Promise.all(takers.map((taker) => taker.next()));
    outcomes.push(said.map((line) => line.split(' ')[1]).sort().join('+'));
  }
  for (const taker of takers) taker.child.stdin!.end();
  const counts = Object.fromEntries([...new Set(outcomes)].map((outcome) => [outcome, outcomes.filter((o) => o === outcome).length]));
  assert.deepEqual(counts, { 'refused+took': rounds }, 'per round, who took the lock and who was refused');
});

test('a takeover of a stale lock that its taker did not finish (killed in the middle) is taken over in turn', async () => {
  const folder = mkdtempSync(join(dir, 'dead-taker-'));
  const path = join(folder, 'out.jsonl');
  const gone = spawn(process.execPath, ['-e', '']);
  await once(gone, 'exit');
  const stale = `${JSON.stringify({ pid: gone.pid, host: hostname(), pipeline: 'dead', since: '2026-01-01T00:00:00.000Z' })}\n`;
  writeFileSync(`${path}.lock`, stale);
  // The file a taker holds while it takes this lock over, named after the lock's text; its taker is gone too.
  const takeover = `${path}.lock.takeover-${createHash('sha256').update(stale).digest('hex').slice(0, 16)}`;
  writeFileSync(takeover, `${JSON.stringify({ pid: gone.pid, host: hostname(), pipeline: '(taking over a stale lock)', since: '2026-01-01T00:00:01.000Z' })}\n`);
  const sink = await fileSink.create({ path, append: false, lazy: true }, testContext({ baseDir: folder }));
  await sink.open?.();
  assert.equal(JSON.parse(readFileSync(`${path}.lock`, 'utf8')).pid, process.pid);
  assert.deepEqual(readdirSync(folder), ['out.jsonl.lock'], 'no takeover file left');
  await sink.close?.();
});

test('gzip flushed every few records (a commit a second, a quiet stream) is about as small as one member: flushes keep the member, which ends at 4 MiB of text or when idle', async () => {
  const path = join(dir, 'often-flushed.jsonl.gz');
  // Predictions as a pipeline writes them (about 200 bytes each): random ids and scores, a few models and users.
  let seed = 1;
  const random = (): number => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const predictions = Array.from({ length: 30_000 }, (_, i) => ({
    kind: 'prediction', id: Math.floor(random() * 2 ** 52).toString(16).padStart(16, '0'), model: i % 3 ? 'intent' : 'churn', modelVersion: '1.0',
    task: i % 3 ? 'intent' : 'churn', userId: `u${Math.floor(random() * 2000)}`, time: 1_704_067_200_000 + i * 997, score: random(), sessionId: `u${i % 2000}:${1_704_067_200_000 + i * 13}`,
  })) as unknown as StreamRecord[];
  const sink = await fileSink.create({ path, append: false, lazy: false }, testContext({ baseDir: dir }));
  await sink.open?.();
  for (let i = 0; i < predictions.length; i++) {
    sink.write(predictions[i]!);
    if ((i + 1) % 10 === 0) await sink.flush?.();
  }
  await sink.close();
  const text = predictions.map((p) => `${JSON.stringify(p)}\n`).join('');
  assert.equal(gunzipSync(readFileSync(path)).toString(), text);
  const ratio = statSync(path).size / gzipSync(text).length;
  // A member per flush made this file 1.5x one member's size.
  assert.ok(ratio < 1.2, `${ratio.toFixed(3)}x the size of one member`);
});

test('a sink (or the dead-letter sink) writing a file a file source of the pipeline reads is a config error at its path, by name, link or inode; the input is left as it was', async () => {
  const base = mkdtempSync(join(dir, 'same-path-'));
  const input = join(base, 'events.jsonl');
  const content = `${JSON.stringify({ user_id: 'u1', time: '2024-01-01T00:00:00Z', type: 'view' })}\n`;
  writeFileSync(input, content);
  linkSync(input, join(base, 'hard-link.jsonl'));
  symlinkSync(base, join(base, 'linked-folder'));
  const problemsOf = async (sinks: string, deadLetter = 'dl.jsonl'): Promise<string[]> => {
    try {
      await runYaml(`sources: [{type: file, path: [other.jsonl, events.jsonl]}]\nsinks: ${sinks}\ndead_letter: {type: file, path: ${deadLetter}}\n`, { baseDir: base });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((problem) => `${problem.line}: ${problem.path}: ${problem.message}`);
    }
    return [];
  };
  writeFileSync(join(base, 'other.jsonl'), '');
  const message = (line: number, at: string): string =>
    `${line}: ${at}: ${input} is the input of sources[0] (path[1]: events.jsonl): writing it would replace that file before it is read (or, appending, read this sink's records back as input); name another file in this sink's path`;
  assert.deepEqual(await problemsOf('[{type: file, path: ./events.jsonl}]'), [message(2, '$.sinks[0].path')]);
  for (const other of ['hard-link.jsonl', 'linked-folder/events.jsonl']) {
    const problems = await problemsOf(`[{type: file, path: out.jsonl}, {type: file, path: ${other}, append: true}]`);
    assert.equal(problems.length, 1, other);
    assert.match(problems[0]!, /^2: \$\.sinks\[1\]\.path: .* is the input of sources\[0\] \(path\[1\]: events\.jsonl\)/, other);
  }
  assert.deepEqual(await problemsOf('[{type: file, path: out.jsonl}]', `${base}/events.jsonl`), [message(3, '$.dead_letter.path')]);
  assert.equal(readFileSync(input, 'utf8'), content, 'the input is as it was');
  assert.deepEqual(await problemsOf('[{type: file, path: out.jsonl}]'), [], 'another file is no problem');
  assert.equal(readFileSync(join(base, 'out.jsonl'), 'utf8').split('\n').length, 2);
  // A sink path under the input file: the check had failed with ENOTDIR; now the sink's own config check says it at its path.
  assert.deepEqual(await problemsOf('[{type: file, path: events.jsonl/out.jsonl}]'), [`2: $.sinks[0].path: sink 'file': ${input} is a file, not a folder: ${input}/out.jsonl cannot be made in it; name a path whose folders are folders`]);
});

test('a sink path that is a folder, or under a file, is a config error at its path (was: at the entry, or a failed open, exit 1, saying mkdir EEXIST)', async () => {
  const base = mkdtempSync(join(dir, 'path-checks-'));
  writeFileSync(join(base, 'events.jsonl'), `${JSON.stringify({ user_id: 'u1', time: '2024-01-01T00:00:00Z', type: 'view' })}\n`);
  writeFileSync(join(base, 'a-file'), '');
  mkdirSync(join(base, 'a-folder'));
  const problemsOf = async (sinks: string): Promise<string[]> => {
    try {
      await runYaml(`sources: [{type: file, path: events.jsonl}]\nsinks:\n${sinks}\n`, { baseDir: base });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems.map((problem) => `${problem.line}:${problem.column}: ${problem.path}: ${problem.message}`);
    }
    return [];
  };
  assert.deepEqual(await problemsOf('  - type: file\n    path: a-folder'), [`4:11: $.sinks[0].path: sink 'file': ${join(base, 'a-folder')} is a folder; name a file in it`]);
  assert.deepEqual(await problemsOf('  - type: file\n    path: a-file/deeper/out.jsonl'), [
    `4:11: $.sinks[0].path: sink 'file': ${join(base, 'a-file')} is a file, not a folder: ${join(base, 'a-file/deeper/out.jsonl')} cannot be made in it; name a path whose folders are folders`,
  ]);
  assert.deepEqual(await problemsOf('  - type: file\n    path: new-folder/deeper/out.jsonl'), [], 'missing folders are made');
  assert.ok(existsSync(join(base, 'new-folder/deeper/out.jsonl')));
});

test('a sink at /dev/stdout writes after what the shell\'s `>> out.txt` holds, replacing none of it (no truncation of a file it does not own)', { skip: !existsSync('/proc/self/fd') && 'needs /dev/stdout leading to a descriptor' }, () => {
  const out = join(dir, 'shell-append.txt');
  writeFileSync(out, 'previous content\n');
  const input = join(dir, 'to-stdout.jsonl');
  writeFileSync(input, ['u1', 'u2'].map((user) => `${JSON.stringify({ user_id: user, time: '2024-01-01T00:00:00Z', type: 'view' })}\n`).join(''));
  const pipeline = join(dir, 'to-stdout.yaml');
  writeFileSync(pipeline, `sources: [{type: file, path: ${input}}]\nsinks: [{type: file, path: /dev/stdout}]\ndead_letter: {type: file, path: ${join(dir, 'to-stdout-dl.jsonl')}, lazy: true}\n`);
  const appending = openSync(out, 'a');
  try {
    const run = spawnSync(process.execPath, [cli, 'run', pipeline, '--log-level', 'warn'], { stdio: ['ignore', appending, 'pipe'] });
    assert.equal(run.status, 0, String(run.stderr));
  } finally {
    closeSync(appending);
  }
  const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
  assert.deepEqual([lines[0], lines.slice(1).map((line) => (JSON.parse(line) as { userId: string }).userId)], ['previous content', ['u1', 'u2']]);
});

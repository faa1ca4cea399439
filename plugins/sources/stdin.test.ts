import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { ClickEvent, Source } from 'tributary';
import { spawnTributary, tempFolder, testContext, until } from 'tributary/testing';
import stdin from './stdin.js';

const line = (n: number): string => `${JSON.stringify({ user_id: `u${n}`, time: n, type: 'view' })}\n`;

test('stdin: a run that ends early (a pipeline the daemon restarts in the process) leaves stdin open and without its listeners, and the next run reads on from it', async (t) => {
  const input = new PassThrough();
  const real = Object.getOwnPropertyDescriptor(process, 'stdin')!;
  Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, get: () => input });
  t.after(() => Object.defineProperty(process, 'stdin', real));
  const listening = (): number => input.eventNames().reduce((sum, name) => sum + input.listenerCount(name), 0);
  const before = listening();
  const runs = 12;
  const users: string[] = [];
  for (let run = 0; run < runs; run++) {
    const source = stdin.create({ mapping: { time_format: 'epoch_ms' } }, testContext({ batchSize: 1 })) as Source;
    const batches = source.read() as AsyncGenerator<readonly ClickEvent[]>;
    input.write(line(run));
    const first = await batches.next();
    users.push(...(first.value as ClickEvent[]).map((event) => event.userId));
    // The run fails and its source is left: the generator is returned, as the runtime's loop does.
    await batches.return(undefined);
    assert.equal(input.destroyed, false, `stdin is still open after run ${run}`);
    assert.equal(listening(), before, `no listener of run ${run} is left on stdin`);
  }
  assert.deepEqual(users, Array.from({ length: runs }, (_, run) => `u${run}`), 'each run read the line written for it');
  // The last run reads stdin to its end.
  const source = stdin.create({ mapping: { time_format: 'epoch_ms' } }, testContext()) as Source;
  input.end(line(runs));
  const rest: string[] = [];
  for await (const batch of source.read()) rest.push(...batch.map((event) => event.userId));
  assert.deepEqual(rest, [`u${runs}`]);
});

test('stdin: UTF-16 input fails the source with advice to pipe it through iconv, not to convert a file named stdin', async (t) => {
  const input = new PassThrough();
  const real = Object.getOwnPropertyDescriptor(process, 'stdin')!;
  Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, get: () => input });
  t.after(() => Object.defineProperty(process, 'stdin', real));
  const source = stdin.create({}, testContext()) as Source;
  input.end(Buffer.from('\ufeff' + line(1), 'utf16le'));
  await assert.rejects(
    async () => {
      for await (const batch of source.read()) assert.deepEqual(batch, []);
    },
    (error: Error) => {
      assert.match(error.message, /^stdin: the text is UTF-16 little-endian .*convert it first, e\.g\. pipe it through `iconv -f UTF-16 -t UTF-8`$/);
      assert.doesNotMatch(error.message, /stdin\.utf8/);
      return true;
    },
  );
});

test('stdin: records that arrived come out while stdin stays open (`tail -f events.jsonl | tributary run`), not once max_in_flight of them have', async (t) => {
  const real = Object.getOwnPropertyDescriptor(process, 'stdin')!;
  t.after(() => Object.defineProperty(process, 'stdin', real));
  const csv = { header: false, columns: ['user_id', 'time', 'type'] };
  const formats = [
    { label: 'JSON lines', config: {}, record: line },
    { label: 'CSV', config: { format: 'csv', csv }, record: (n: number) => `u${n},${n},view\n` },
    { label: 'CSV with quoted fields', config: { format: 'csv', csv }, record: (n: number) => `"u${n}",${n},"view"\n` },
  ] as const;
  for (const { label, config, record } of formats) {
    const input = new PassThrough();
    Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, get: () => input });
    const source = stdin.create({ ...config, mapping: { time_format: 'epoch_ms' } }, testContext({ batchSize: 1024 })) as Source;
    const batches = source.read() as AsyncGenerator<readonly ClickEvent[]>;
    const users: string[] = [];
    // Read as the runtime does, batch after batch (the quoted-row reader may hand on one write's rows at a time).
    const reading = (async () => {
      while (users.length < 3) {
        const result = await batches.next();
        if (result.done) break;
        users.push(...result.value.map((event) => event.userId));
      }
    })();
    input.write(record(1) + record(2));
    // The last write's last row comes out with no write after it: the quoted-row reader holds the last
    // bytes of a write back (a quote or `\r` there may be half of `""` or `\r\n`), but not after a `\n`.
    input.write(record(3));
    await until(() => users.length >= 3, `the ${label} written to stdin to come out of the source while it stays open`, 5000, 1);
    await reading;
    assert.deepEqual(users, ['u1', 'u2', 'u3'], label);
    // Stopped while waiting for more (a SIGTERM): the source ends, and stdin stays open for a next run.
    await batches.return(undefined);
    assert.equal(input.destroyed, false, label);
  }
});

test('stdin: a stop (the pipeline\'s signal) while stdin is quiet ends the source at once, without an error, and leaves stdin open for a next run', async (t) => {
  const input = new PassThrough();
  const real = Object.getOwnPropertyDescriptor(process, 'stdin')!;
  Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, get: () => input });
  t.after(() => Object.defineProperty(process, 'stdin', real));
  const stop = new AbortController();
  const source = stdin.create({ mapping: { time_format: 'epoch_ms' } }, testContext({ signal: stop.signal })) as Source;
  const batches = source.read() as AsyncGenerator<readonly ClickEvent[]>;
  input.write(line(1));
  assert.deepEqual((await batches.next()).value?.map((event: ClickEvent) => event.userId), ['u1']);
  const waiting = batches.next();
  stop.abort(new Error('SIGTERM'));
  // A failure, not a hang, where the stop is not seen: nothing more is written, and stdin stays open.
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([waiting, new Promise<'still waiting'>((resolve) => (timer = setTimeout(() => resolve('still waiting'), 5000)))]);
  clearTimeout(timer);
  assert.deepEqual(result, { done: true, value: undefined });
  assert.equal(input.destroyed, false);
  assert.equal(input.listenerCount('data'), 0);
});

test('stdin: `tributary run` reading a quiet stdin stops on SIGTERM, promptly and cleanly (exit 0, outcome stopped), not at the next line or the end of stdin', async (t) => {
  const folder = tempFolder(t, 'stdin-stop');
  const pipeline = join(folder, 'p.yaml');
  writeFileSync(
    pipeline,
    [
      'name: stdin-stop',
      'settings: { shutdown_timeout: 10s }',
      'sources: [{ type: stdin, format: csv, csv: { header: false, columns: [user_id, time, type] }, mapping: { time_format: epoch_ms } }]',
      'sinks: [{ type: stdout }]',
      '',
    ].join('\n'),
  );
  const run = spawnTributary(t, ['run', pipeline], { stdin: true, stdout: true });
  let out = '';
  run.child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  // Kept open: a quiet pipe, as `tail -f events.csv | tributary run` between lines.
  run.child.stdin!.write('"u1",1,"view"\n');
  await run.started(() => out.includes('"u1"'), 'the first record on stdout');
  // Before the fix the stop waited for input: shutdown_timeout (10 s) ended it with exit 1.
  assert.equal(await run.stop('SIGTERM', 20_000), 0, run.stderr);
  assert.match(run.stderr, /"outcome":"stopped"/);
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Daemon } from 'tributary';
import { tempFolder, until } from 'tributary/testing';
import { builtinRegistry } from '../cli/registry.js';

const dir = tempFolder({ after }, 'daemon-drained');

test('a pipeline of a folder run that drains its input while the others run on says so when it drains, with its figures (was: nothing until the process ended, months later for a daemon)', async () => {
  const folder = join(dir, 'pipelines');
  mkdirSync(folder);
  writeFileSync(join(folder, 'finite.yaml'), `name: finite\nsources: [{type: synthetic, users: 5, events: 40}]\nsinks: [{type: file, path: ${join(dir, 'finite.jsonl')}}]\n`);
  writeFileSync(join(folder, 'endless.yaml'), `name: endless\nsources: [{type: synthetic, users: 5, events: 0, rate: 200}]\nsinks: [{type: file, path: ${join(dir, 'endless.jsonl')}}]\n`);
  const logged: { level: number; msg: string; pipeline?: string; drained?: boolean; outcome?: string; eventsIn?: number }[] = [];
  const daemon = new Daemon({
    targets: [folder],
    logger: pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) }),
    registry: builtinRegistry,
  });
  const running = daemon.run();
  try {
    await until(() => logged.some((entry) => entry.pipeline === 'finite' && entry.drained === true), "the finite pipeline's drain logged while the other runs");
    const drained = logged.find((entry) => entry.pipeline === 'finite' && entry.drained === true)!;
    // Not a second summary: a log reader that takes records with `outcome` as summaries counts one per pipeline.
    assert.equal(drained.outcome, undefined);
    assert.equal(drained.level, 30);
    assert.equal(drained.eventsIn, 40);
    assert.match(drained.msg, /^pipeline finite drained its input: 40 events in, \d+ records out, 0 dead-lettered; the other pipelines run on \(its summary is written with theirs when the process ends\)$/);
    assert.equal(daemon.stopping, false, 'the others still run');
  } finally {
    daemon.stop('test over');
  }
  const result = await running;
  assert.deepEqual(result.failures, []);
  assert.deepEqual(result.runs.map((run) => [run.name, run.stats.drained]).sort(), [['endless', false], ['finite', true]]);
});

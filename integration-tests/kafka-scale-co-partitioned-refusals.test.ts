/**
 * Scale-out with two sources on topics that are not co-partitioned: the clicks topic has 4 partitions, the
 * orders topic 2. A daemon of such a pipeline stops at its first assignment with a config error that names
 * each source's topic and its count, at once: not after waiting for partitions 2 and 3 of the orders topic,
 * which do not exist. (A member given partition p of one topic but not of the other, which an assignor other
 * than range would do, waits for it a minute, then fails: core/runtime/scale-out.test.ts tests that wait.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, kafkaBrokers, keptLog, uniqueTopic } from './kafka/env.js';
import { createTopic, produce } from './kafka/client.js';
import { clicksAt, ordersAt, pipelineYaml, startMember } from './kafka/co-partitioned.js';

test('scale-out with two sources whose topics have unequal partition counts (4 and 2): the daemon stops at the assignment, at once, with a config error naming the file, each source and its topic\'s count', { timeout: 60_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const clicks = uniqueTopic('counts-clicks');
  const orders = uniqueTopic('counts-orders');
  const output = uniqueTopic('counts-out');
  await createTopic(brokers, clicks, 4);
  await createTopic(brokers, orders, 2);
  await createTopic(brokers, output, 1);
  const dir = mkdtempSync(join(tmpdir(), 'tributary-scale-co-counts-'));
  const file = join(dir, 'a.yaml');
  writeFileSync(file, pipelineYaml({ clicks, orders, output, guarantee: 'at-least-once', member: 'a', dir }));
  await produce(brokers, clicks, clicksAt(0).map((record) => ({ ...record })));
  await produce(brokers, orders, ordersAt(2, 1).map((record) => ({ ...record, partition: record.partition! % 2 })));
  const member = startMember(file, brokers);
  let passed = false;
  try {
    const started = Date.now();
    const code = await exited(member.process);
    const took = Date.now() - started;
    const log = member.log.join('');
    assert.notEqual(code, 0, 'the daemon stops with an error');
    // Before: the clicks topic's tasks 2 and 3 waited 60 s for orders partitions that do not exist, then the run failed blaming the assignor.
    assert.ok(took < 40_000, `stopped at the assignment, not after the minute's wait for the other partitions (${took} ms)`);
    assert.match(log, new RegExp(`a\\.yaml:\\d+:\\d+: \\$\\.sources\\[0\\]: scale_out with several sources needs co-partitioned topics, one partition count for all .*source-kafka-0 \\(topic ${clicks}\\) 4, source-kafka-1 \\(topic ${orders}\\) 2 partitions`));
    assert.match(log, /\$\.sources\[1\]: scale_out with several sources needs co-partitioned topics/);
    assert.doesNotMatch(log, /partition (state restored|starts with empty state)/, 'no task started');
    passed = true;
  } finally {
    if (!passed) t.diagnostic(`the daemon's log: ${keptLog(member.log, 'scale-co-counts')}`);
    if (member.process.exitCode === null && member.process.signalCode === null) member.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The example alert rules' Kafka series (examples/ops/prometheus-alerts.yaml) against a real scrape of a
 * daemon reading a real broker: a file pipeline exports none of them, so examples/ops/alerts.test.ts
 * leaves them to this test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, kafkaBrokers, operationsPort, startDaemon, uniqueTopic, waitFor } from './kafka/env.js';
import { createTopic, produce, seqRecords } from './kafka/client.js';
import { alertRules, kafkaSeries, ruleProblems, ruleSeries, scrapedSeries } from '../examples/ops/alert-rules.js';

test('the example alert rules name the Kafka source\'s series with the labels a real daemon\'s scrape has, and docs/operations.md names each of its families', { timeout: 300_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const input = uniqueTopic('in-alerts');
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-alerts-'));
  const log: string[] = [];
  let daemon: ChildProcess | undefined;
  try {
    await createTopic(brokers, input, 2);
    await produce(brokers, input, seqRecords(0, 200));
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(
      file,
      `name: alerts\nsources:\n  - type: kafka\n    brokers: \${KAFKA_BROKERS}\n    topics: [${input}]\n    group: g-${input}\n    start_from: earliest\n` +
        `sinks: [{type: file, path: ${join(dir, 'out.jsonl')}}]\ncheckpoint: {dir: ${join(dir, 'checkpoints')}, interval: 1s}\n`,
    );
    daemon = startDaemon(file, brokers, log, ['--log-level', 'info', '--http-port', '0']);
    const port = await operationsPort(daemon, log);
    let text = '';
    // The partitions' series come with the assignment, at the source's next export (every 2 s).
    await waitFor('both partitions\' lag series in the scrape', async () => {
      text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return (text.match(/^tributary_kafka_partition_lag\{/gm) ?? []).length === 2;
    }, 120_000, 250);
    const rules = alertRules(process.cwd());
    assert.ok([...ruleSeries(rules)].filter(kafkaSeries).length >= 2, 'the rules name Kafka series');
    assert.deepEqual(ruleProblems(rules, scrapedSeries(text), kafkaSeries), []);
    const operations = readFileSync(join(process.cwd(), 'docs/operations.md'), 'utf8');
    const families = [...text.matchAll(/^# TYPE (tributary_kafka_[a-z0-9_]+) /gm)].map((match) => match[1]!);
    assert.ok(families.length >= 4, families.join(', '));
    assert.deepEqual(families.filter((name) => !operations.includes(name)), []);
    daemon.kill('SIGTERM');
    assert.equal(await exited(daemon), 0, log.join(''));
  } finally {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

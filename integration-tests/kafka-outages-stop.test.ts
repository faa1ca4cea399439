/**
 * SIGTERM stops of a daemon (`tributary run`) while its brokers are down, each on a broker of its own that
 * the test stops: nothing waits for the broker, the process exits 0, and the next start writes every record.
 * Apart from kafka-outages.test.ts so that neither file nears the runner's 300 s per file on a loaded machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonStarted, eventsRead, exited, kafkaBrokers, operationsPort, startDaemon, uniqueTopic, waitFor } from './kafka/env.js';
import { committedSeqs, createTopic, produce, seqRecords } from './kafka/client.js';
import { startNativeBroker } from './kafka/broker.js';
import { assertEachOnce, pipelineYaml } from './kafka/delivery.js';
for (const guarantee of ['at-least-once', 'exactly-once'] as const) {
  test(`${guarantee}: a SIGTERM while the broker is down stops without waiting for it and exits 0, leaving the uncommitted input to the next start, which writes every record`, { timeout: 300_000 }, async (t) => {
    if (!kafkaBrokers(t)) return;
    // Stopping a broker needs one this test owns.
    const broker = await startNativeBroker({ partitions: 4 });
    const input = uniqueTopic('in-stop-outage');
    const output = uniqueTopic('out-stop-outage');
    const dlq = uniqueTopic('dlq-stop-outage');
    const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-stop-outage-'));
    const log: string[] = [];
    let daemon: ChildProcess | undefined;
    try {
      for (const topic of [input, output, dlq]) await createTopic(broker.brokers, topic, 4);
      const file = join(dir, 'pipeline.yaml');
      const yaml = pipelineYaml(input, output, dlq, guarantee, `checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }\n`);
      // The first run holds its outputs: a 10 s linger, and no commit or checkpoint for a minute (with room
      // for every record in flight meanwhile, and exactly-once a transaction_timeout above that minute),
      // so the broker goes while the sinks hold every output (the producer's queue, or the open
      // transaction). Exactly-once, the dead-letter sink shares the outputs' producer, so its settings too.
      const holding = yaml
        .replace(/^( +)topic: (.+)$/gm, `$1topic: $2\n$1linger: 10000${guarantee === 'exactly-once' ? '\n$1transaction_timeout: 120s' : ''}`)
        .replace('interval: 1s', 'interval: 60s')
        .replace('max_in_flight: 256', 'max_in_flight: 10000');
      writeFileSync(file, holding);
      daemon = startDaemon(file, broker.brokers, log, ['--log-level', 'info', '--http-port', '0']);
      const port = await operationsPort(daemon, log);
      await produce(broker.brokers, input, seqRecords(0, 1_000));
      await waitFor('every record read', async () => (await eventsRead(port)) >= 1_000, 60_000, 100);
      await broker.kill();
      // Exactly-once, the one producer of both sinks says so, as itself (`shared`), not as the sink that created it.
      const seen = guarantee === 'exactly-once' ? /kafka transactional producer error: no broker is reachable/ : /"stage":"sink-kafka-0".*kafka producer error: no broker is reachable/;
      await waitFor('the output sink sees the broker gone', () => seen.test(log.join('')), 60_000, 100);
      if (guarantee === 'exactly-once') {
        const warnings = log.join('').split('\n').filter((line) => line.startsWith('{') && (JSON.parse(line) as { level: number }).level >= 40).map((line) => JSON.parse(line) as Record<string, unknown>);
        const producers = warnings.filter((line) => String(line['msg']).startsWith('kafka transactional producer'));
        // Before: two, "kafka transactional producer: brokers unreachable; the open transaction waits ..." and
        // "kafka transactional producer error: 4 broker connections failed ...", both under the stage dead-letter-kafka-0.
        assert.equal(producers.length, 1, `the outage is one warning of the producer: ${producers.map((line) => String(line['msg'])).join('\n')}`);
        // The broker killed refuses connections: said with since when where its refusals came within the outage's first second.
        assert.match(
          String(producers[0]!['msg']),
          /: no broker is reachable \(all broker connections are down\): the open transaction waits \(.*\)(; \d+ broker connections? failed \(broker transport failure\), to 1 broker)?(; broker \S+ refuses connections since \S+, and it was reachable before: [^;]+; the daemon keeps its state and resumes when it returns)?; \/readyz says not ready/,
        );
        assert.equal(producers[0]!['shared'], `the exactly-once producer (transactional_id 'tx-${output}')`);
        assert.equal('stage' in producers[0]!, false, 'not a sink\'s');
        assert.deepEqual(producers[0]!['sinks'], ['dead-letter-kafka-0', 'sink-kafka-0']);
        // /readyz says the producer's outage once, not once per sink that shares it.
        const { pipelines } = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { pipelines: { reasons: string[] }[] };
        const said = pipelines[0]!.reasons.filter((reason) => reason.includes('exactly-once producer'));
        assert.equal(said.length, 1, said.join('\n'));
        assert.ok(said[0]!.startsWith(`the exactly-once producer shared by sinks dead-letter-kafka-0 and sink-kafka-0 (transactional_id 'tx-${output}'): all broker connections are down`), said[0]);
      }
      // Before: the stop waited for deliveries that could not come; at-least-once it hit shutdown_timeout
      // (exit 1 after 30 s, and the process lingered 25 s more on the flush's thread), exactly-once the
      // commit and the abort timed out (exit 1 after about 17 s).
      daemon.kill('SIGTERM');
      assert.equal(await exited(daemon), 0, `a SIGTERM stop in an outage exits 0: ${log.join('')}`);
      assert.ok(
        log.join('').split('\n').some((line) => line.includes('stopped without committing its last input') && line.includes('stopped while the brokers are unreachable')),
        `the stop says the input stays uncommitted, and why: ${log.join('')}`,
      );
      await broker.restart();
      writeFileSync(file, yaml);
      daemon = startDaemon(file, broker.brokers, log);
      // Its first wait, ended at once should it exit (was: 150 s of polling a daemon that had died).
      await daemonStarted(daemon, log, 'every record in the committed output', async () => (await committedSeqs(broker.brokers, output)).size >= 1_000, 500, 150_000);
      daemon.kill('SIGTERM');
      assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
      if (guarantee === 'exactly-once') await assertEachOnce(broker.brokers, output, 1_000);
    } finally {
      if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('at-least-once: a SIGTERM while the sink\'s brokers are down and it holds records librdkafka had no room for (its max_in_flight) stops at once and exits 0; the next start writes every record', { timeout: 300_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  // The outputs go to a broker of their own, down before the input comes: the source reads on while the
  // sink fills librdkafka's queue (max_in_flight 50) and keeps the rest in its own backlog.
  const outputs = await startNativeBroker({ partitions: 4 });
  const input = uniqueTopic('in-backlog-outage');
  const output = uniqueTopic('out-backlog-outage');
  const dlq = uniqueTopic('dlq-backlog-outage');
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-backlog-outage-'));
  const log: string[] = [];
  let daemon: ChildProcess | undefined;
  try {
    await createTopic(brokers, input, 4);
    for (const topic of [output, dlq]) await createTopic(outputs.brokers, topic, 4);
    const file = join(dir, 'pipeline.yaml');
    const yaml = pipelineYaml(input, output, dlq, 'at-least-once', `checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }\n`)
      .replace(/^( +)brokers: \\?\$\{KAFKA_BROKERS\}\n( +)topic: /gm, `$1brokers: ${outputs.brokers}\n$2topic: `)
      .replace(`topic: ${output}\n`, `topic: ${output}\n    max_in_flight: 50\n`);
    assert.equal(yaml.split(outputs.brokers).length, 3, 'the output and dead-letter sinks write to their own broker');
    writeFileSync(file, yaml);
    daemon = startDaemon(file, brokers, log, ['--log-level', 'info', '--http-port', '0']);
    // The sinks opened (connected, their topics looked up) before the source reads: its partitions assigned.
    await daemonStarted(daemon, log, 'the pipeline started', () => /kafka partitions assigned/.test(log.join('')), 100);
    const port = await operationsPort(daemon, log);
    await outputs.kill();
    await produce(brokers, input, seqRecords(0, 1_000));
    // More read than librdkafka may hold: the rest wait in the sink, and the pipeline waits for room.
    await waitFor('more records read than the sink may hand to librdkafka', async () => (await eventsRead(port)) > 50, 60_000, 100);
    await waitFor('the output sink sees its broker gone', () => /"stage":"sink-kafka-0".*kafka producer error: no broker is reachable/.test(log.join('')), 60_000, 100);
    const stopAt = Date.now();
    daemon.kill('SIGTERM');
    // Before: the flush waited for room in a loop that heeded neither the stop nor the outage, until
    // shutdown_timeout (30 s, exit 1); a run that failed meanwhile left that loop spinning, the CPU at 100%.
    assert.equal(await exited(daemon), 0, `a SIGTERM stop in an outage exits 0: ${log.join('').slice(-3_000)}`);
    assert.ok(Date.now() - stopAt < 15_000, `it stopped in ${Date.now() - stopAt} ms`);
    assert.ok(log.join('').split('\n').some((line) => line.includes('stopped while the brokers are unreachable')), 'the stop says why the input stays uncommitted');
    await outputs.restart();
    daemon = startDaemon(file, brokers, log);
    // Its first wait, ended at once should it exit (was: 150 s of polling a daemon that had died).
    await daemonStarted(daemon, log, 'every record in the output', async () => (await committedSeqs(outputs.brokers, output)).size >= 1_000, 500, 150_000);
    daemon.kill('SIGTERM');
    assert.equal(await exited(daemon), 0, 'a SIGTERM stop exits 0');
  } finally {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    await outputs.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

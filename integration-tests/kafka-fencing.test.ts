/**
 * An exactly-once sink fences its transactional.id's previous owner (initTransactions) only once its
 * pipeline is known to start: a second `tributary run` of a pipeline by mistake, or one whose config
 * then fails, or one whose later sink cannot open its output, must not kill the live instance's
 * transactions. A pipeline whose producer another one fenced stops, naming the sinks and the cause.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Kafka from 'node-rdkafka';
import type { LibrdKafkaError } from 'node-rdkafka';
import { runYaml, tempFolder } from 'tributary/testing';
import { ConfigError, TributaryError, defineOperator } from 'tributary';
import { disconnectProducer } from '../plugins/kafka/common.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, createTopic, produce, readTopic } from './kafka/client.js';

function done(call: (cb: (error: LibrdKafkaError | null | undefined) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => call((error) => (error ? reject(new Error(error.message)) : resolve())));
}

/** `refuse` (tests only): a stage whose factory rejects its config, as a misconfigured stage does. */
const refuse = defineOperator<Record<string, never>>({
  name: 'refuse',
  summary: 'A stage whose factory always rejects its config (tests only).',
  config: { type: 'object', additionalProperties: false, properties: {} },
  create() {
    throw new Error('refused (the test makes this factory fail)');
  },
});

function pipeline(source: string, output: string, transactionalId: string, stages = '', laterSinks = ''): string {
  return `
name: kafka-fencing-test
sources:
  - ${source}
${stages}
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, guarantee: exactly-once, transactional_id: ${transactionalId} }
${laterSinks}
dead_letter: { type: memory }
`;
}

test('a pipeline that fails to start does not fence the live producer of its transactional_id', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const [input, output] = [uniqueTopic('fence-in'), uniqueTopic('fence-out')];
  await createTopic(brokers, input, 1);
  await createTopic(brokers, output, 1);
  const transactionalId = uniqueTopic('fence-tx');
  // The live instance: a transactional producer holding an open transaction under that id.
  const live = new Kafka.Producer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'transactional.id': transactionalId });
  await done((cb) => live.connect({}, (error) => cb(error)));
  live.setPollInterval(10);
  try {
    await done((cb) => live.initTransactions(15_000, cb));
    const env = { KAFKA_BROKERS: brokers };
    const kafkaSource = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${input}], group: g-${input}, guarantee: exactly-once }`;
    // A file sink whose file cannot be created as it opens: a name longer than a file system takes (ENAMETOOLONG).
    // (A folder that is a plain file is refused earlier, as the sink is made: a config error, not an open failure.)
    const tooLong = join(tempFolder(t, 'fence'), `${'n'.repeat(300)}.jsonl`);
    const configError = (expected: RegExp) => (error: unknown) => error instanceof ConfigError && expected.test(error.message);
    const failures = [
      // Another factory rejects its config (stages are built after the sinks, before the sources).
      { what: 'a stage factory fails', yaml: pipeline(kafkaSource, output, transactionalId, 'stages:\n  - type: refuse'), expected: configError(/refused/) },
      // No exactly-once kafka source commits the sink's transactions.
      { what: 'no exactly-once kafka source', yaml: pipeline('{ type: synthetic, events: 10 }', output, transactionalId), expected: configError(/exactly-once/) },
      // A sink opened after the exactly-once one fails its open (the runtime opens sinks in file order).
      {
        what: 'a later sink cannot open',
        yaml: pipeline(kafkaSource, output, transactionalId, '', `  - { type: file, path: "${tooLong}" }`),
        expected: (error: unknown) => error instanceof TributaryError && error.code === 'TRIB_ERR_SINK' && /sink-file-1 could not open/.test(error.message),
      },
    ];
    for (const [index, { what, yaml, expected }] of failures.entries()) {
      await done((cb) => live.beginTransaction(cb));
      live.produce(output, null, Buffer.from(`live-${index}`), null);
      await assert.rejects(runYaml(yaml, { env, plugins: [refuse] }), expected, what);
      // Not fenced: the live instance's transaction still commits.
      await done((cb) => live.commitTransaction(15_000, cb)).catch((error: unknown) => assert.fail(`${what}: the live producer was fenced: ${(error as Error).message}`));
    }
    const committed = await readTopic(brokers, output, { committed: true, expect: failures.length, timeoutMs: 15_000 });
    assert.deepEqual(committed.map((m) => m.value!.toString()), failures.map((_, index) => `live-${index}`));
  } finally {
    await disconnectProducer(live, 5_000);
  }
});

test('an exactly-once pipeline whose transactional_id another producer takes over stops: TRIB_ERR_SINK, naming the id and librdkafka\'s fatal error', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const [input, output] = [uniqueTopic('fenced-in'), uniqueTopic('fenced-out')];
  await createTopic(brokers, input, 1);
  await createTopic(brokers, output, 1);
  const transactionalId = uniqueTopic('fenced-tx');
  const click = (seq: number) => ({ key: `u${seq}`, value: clickJson(seq, Date.parse('2024-05-01T00:00:00Z') + seq, 'view', { seq }) });
  await produce(brokers, input, Array.from({ length: 10 }, (_, seq) => click(seq)));
  const kafkaSource = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${input}], group: g-${input}, guarantee: exactly-once }`;
  const controller = new AbortController();
  const run = runYaml(`${pipeline(kafkaSource, output, transactionalId)}settings: { commit_interval: 100ms }\n`, { env: { KAFKA_BROKERS: brokers }, signal: controller.signal });
  let failure: unknown;
  run.catch((error: unknown) => (failure = error));
  // Another instance started with the same id: its initTransactions fences the pipeline's producer.
  const other = new Kafka.Producer({ 'metadata.broker.list': brokers, 'broker.address.family': 'v4', 'transactional.id': transactionalId });
  try {
    const committed = await readTopic(brokers, output, { committed: true, expect: 10, timeoutMs: 60_000 });
    assert.equal(committed.length, 10, 'the pipeline committed its first outputs');
    await done((cb) => other.connect({}, (error) => cb(error)));
    other.setPollInterval(10);
    await done((cb) => other.initTransactions(15_000, cb));
    // The fenced producer learns it at its next transactional request.
    await produce(brokers, input, Array.from({ length: 10 }, (_, seq) => click(10 + seq)));
    await waitFor('the pipeline stopped', () => failure !== undefined, 60_000);
    await assert.rejects(run, (error: unknown) => {
      assert.ok(error instanceof TributaryError, String(error));
      assert.equal(error.code, 'TRIB_ERR_SINK', error.message);
      // librdkafka's words depend on which request first met the fencing ("fenced by a newer instance",
      // or a TxnOffsetCommit's "Producer attempted an operation with an old epoch"); what the error says
      // of it does not.
      // Named as the sinks' shared producer, not as the failure of whichever sink reported it first.
      assert.match(error.message, new RegExp(`^the exactly-once producer of sink \\S+ \\(transactional_id '${transactionalId}'\\) failed: it hit a fatal error and cannot go on: .+: another producer started with transactional_id '${transactionalId}'; give each instance its own$`));
      return true;
    });
  } finally {
    controller.abort();
    await run.catch(() => undefined);
    await disconnectProducer(other, 5_000);
  }
});

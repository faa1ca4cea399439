/**
 * Scale-out over a topic grown while its group was stopped, through a real broker: the partition state files
 * record the topic's partition count, and a member whose assignment finds another count refuses to restore
 * them (TRIB_ERR_CHECKPOINT) rather than give a partition the state of users the producers now send elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readCheckpoint } from 'tributary';
import { runYaml, tempFolder } from 'tributary/testing';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, createTopic, growTopic, produce } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');

test('scale_out: a topic grown while its group was stopped stops the next member at its assignment, naming the partition file, both counts and the way out; nothing is restored', { timeout: 180_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const topic = uniqueTopic('repartition');
  await createTopic(brokers, topic, 2);
  const dir = tempFolder(t, 'repartition');
  const state = join(dir, 'partition-state');
  const yaml = `
name: repartition
sources:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${topic}], group: g-${topic}, start_from: earliest }
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - { type: memory }
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }
scale_out: { state_dir: ${state} }
`;
  const filesOf = (partition: number): string[] => {
    try {
      return readdirSync(join(state, `${topic}-${partition}`)).filter((name) => name.startsWith('checkpoint-'));
    } catch {
      return [];
    }
  };
  const controller = new AbortController();
  const first = runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, signal: controller.signal });
  first.catch(() => undefined);
  try {
    let seq = 0;
    await waitFor('both partitions\' state saved', async () => {
      await produce(brokers, topic, [0, 1].map((partition) => ({ partition, key: `u${partition}`, value: clickJson(partition, base + seq++ * 1000) })));
      return filesOf(0).length > 0 && filesOf(1).length > 0;
    }, 90_000, 500);
  } finally {
    controller.abort();
  }
  await first;
  const saved = join(state, `${topic}-0`, filesOf(0).sort().at(-1)!);
  assert.equal((Object.values((await readCheckpoint(saved)).sources)[0] as { partitions?: number }).partitions, 2);

  await growTopic(brokers, topic, 3);
  const again = new AbortController();
  const timer = setTimeout(() => again.abort(), 90_000);
  try {
    await assert.rejects(runYaml(yaml, { env: { KAFKA_BROKERS: brokers }, signal: again.signal }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TRIB_ERR_CHECKPOINT', error.message);
      assert.match(error.message, new RegExp(`scale_out: the state of partition ${topic}-[01] \\(\\S+\\) was saved when its topic had 2 partitions; it has 3 now`));
      assert.ok(error.message.includes(`move the partition folders out of ${state} (scale_out.state_dir)`), error.message);
      return true;
    });
  } finally {
    clearTimeout(timer);
  }
});

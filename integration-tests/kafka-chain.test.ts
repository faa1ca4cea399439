/**
 * Two pipelines chained through a Kafka topic, through a real broker: the first writes its events with a
 * `kafka` sink (`kinds: [event]`), the second reads them with a `kafka` source and `mapping: canonical`,
 * as it would read what a `file` sink wrote. Every event comes back with its fields, and the second
 * pipeline's predictions are those of one pipeline doing both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runYaml } from 'tributary/testing';
import type { ClickEvent, StreamRecord } from 'tributary';
import { kafkaBrokers, uniqueTopic } from './kafka/env.js';
import { createTopic, readTopic } from './kafka/client.js';

const events = 3000;
const base = Date.parse('2024-05-01T00:00:00Z');

/**
 * A shop's clickstream as a producer writes it: session ids (not on every event), numeric item ids,
 * prices in text and as numbers, categories, and attributes (text with accents, numbers, nested).
 * Deterministic: a linear congruential sequence.
 */
function shopLines(): string {
  let seed = 12345;
  const next = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  const types = ['view', 'view', 'view', 'cart', 'purchase', 'remove_from_cart'];
  const lines: string[] = [];
  let time = base;
  for (let i = 0; i < events; i++) {
    time += next(90_000);
    const user = next(150);
    const type = types[next(types.length)]!;
    const record: Record<string, unknown> = { user_id: `u${user}`, time: new Date(time).toISOString(), type, item_id: next(400), category: `c-${next(12)}`, brand: ['acme', 'Zoë & co', 'ünï'][next(3)] };
    if (next(4) > 0) record.session_id = `s${user}-${Math.floor(time / 3_600_000)}`;
    if (next(5) > 0) record.price = next(2) === 0 ? `${next(200)}.${String(next(100)).padStart(2, '0')}` : next(20_000) / 100;
    if (next(3) === 0) record.ctx = { device: 'mobile', screen: [390, 844], ab: { arm: next(2) } };
    lines.push(JSON.stringify(record));
  }
  return lines.join('\n') + '\n';
}
// Micro-batches cut by size alone: cut by time too (the default max_delay), where a batch ends depends on the
// machine's load, and so do what the model has learnt at each prediction and its version.
const stages = `
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: user-features, horizons: [1d] }
  - { type: intent-model, name: intent, model: { kind: logistic }, batch: { max_delay: 0 } }
`;

/** An event's canonical fields, as a reader compares them (what the stages add left out). */
function canonical(record: StreamRecord): Record<string, unknown> {
  const event = record as ClickEvent;
  const { userId, sessionId, itemId, time, type, price, category, attrs } = event;
  return JSON.parse(JSON.stringify({ userId, sessionId, itemId, time, type, price, category, attrs })) as Record<string, unknown>;
}

/** Each user's canonical events, in order, by user. */
function byUser(records: readonly StreamRecord[]): Map<string, Record<string, unknown>[]> {
  const users = new Map<string, Record<string, unknown>[]>();
  for (const record of records) {
    const event = canonical(record);
    const list = users.get(event.userId as string) ?? [];
    list.push(event);
    users.set(event.userId as string, list);
  }
  return new Map([...users].sort(([a], [b]) => a.localeCompare(b)));
}

/** A prediction as written (the same learning steps give the same text, the model's version included). */
function plain(records: readonly StreamRecord[]): unknown[] {
  return records.map((record) => JSON.parse(JSON.stringify(record)) as unknown);
}

for (const partitions of [1, 4]) {
test(`pipelines chained through a kafka topic of ${partitions} partition(s): the second reads every event the first wrote (kinds: [event]) with mapping: canonical, its fields the same, and its predictions are those of one pipeline doing both`, { timeout: 180_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-chain-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, 'clicks.jsonl');
  writeFileSync(input, shopLines());
  const shop = `{ type: file, path: ${input}, mapping: { attributes: [brand, ctx] } }`;
  const topic = uniqueTopic('chain-events');
  // One partition: the order the first pipeline wrote is the order the second reads (see README, Reading these back).
  await createTopic(brokers, topic, partitions);
  const env = { KAFKA_BROKERS: brokers };
  const first = await runYaml(`name: chain-a\nsources: [${shop}]\nsinks:\n  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${topic}, kinds: [event] }\n  - { type: memory, kinds: [event] }\n`, { env });
  assert.equal(first.stats.eventsIn, events);
  assert.deepEqual(first.deadLetters, []);
  const written = first.outputs[0]!;
  // Each record is one JSON object keyed by its user id, and nothing else (no headers to read).
  const messages = await readTopic(brokers, topic, { expect: events, timeoutMs: 30_000 });
  assert.equal(messages.length, events);
  for (const message of messages) assert.equal(String(message.key), (JSON.parse(String(message.value)) as { userId: string }).userId);
  assert.deepEqual(messages[0]!.headers ?? [], []);

  const source = `{ type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${topic}], group: g-${topic}-read, stop_at_end: true, mapping: canonical }`;
  const read = await runYaml(`name: chain-b\nsources: [${source}]\nsinks: [{ type: memory, kinds: [event] }]\n`, { env });
  assert.deepEqual(read.deadLetters, []);
  assert.equal(read.outputs[0]!.length, events, 'every event written is read back');
  // Each user's events in the order written (one user's records are in one partition); across
  // partitions the order read is the topic's, not the writer's.
  assert.deepEqual(byUser(read.outputs[0]!), byUser(written));
  const withEverything = written.filter((record) => {
    const event = record as ClickEvent;
    return event.sessionId !== undefined && event.itemId !== undefined && event.price !== undefined && event.category !== undefined && event.attrs !== undefined;
  });
  assert.ok(withEverything.length > 0, 'the events carry every field (else the comparison says little)');

  const one = await runYaml(`name: chain-one\nsources: [${shop}]\n${stages}sinks: [{ type: memory, kinds: [prediction] }]\n`, { env });
  const chained = await runYaml(`name: chain-b\nsources: [${source.replace('-read,', '-score,')}]\n${stages}sinks: [{ type: memory, kinds: [prediction] }]\n`, { env });
  assert.deepEqual(chained.deadLetters, []);
  assert.ok(one.outputs[0]!.length > 100, `predictions made (${one.outputs[0]!.length})`);
  assert.deepEqual(plain(chained.outputs[0]!), plain(one.outputs[0]!));
});
}

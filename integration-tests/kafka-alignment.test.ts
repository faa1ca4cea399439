/**
 * Watermark alignment (a source's `watermark.max_drift`) between two kafka sources against a real broker:
 * a topic with a backlog of days (clicks) is read at the pace of another (orders), not ahead of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runYaml } from 'tributary/testing';
import { MetricsHub, type ClickEvent, type StreamRecord } from 'tributary';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, collectSink, createTopic, produce, type RawRecord } from './kafka/client.js';

const base = Date.parse('2024-05-01T00:00:00Z');
const minute = 60_000;
const hour = 60 * minute;
const batch = 50;

test('two topics: the clicks (a backlog of 33 hours) wait for the orders topic, slower to have records, and are read no further than max_drift ahead of them; all of both come out', { timeout: 120_000 }, async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const clicksTopic = uniqueTopic('align-clicks');
  const ordersTopic = uniqueTopic('align-orders');
  await createTopic(brokers, clicksTopic, 1);
  await createTopic(brokers, ordersTopic, 1);
  // A click a minute for 2,000 minutes; an order every 100 minutes from 30 minutes on (21, the last after the last click).
  const clicks: RawRecord[] = Array.from({ length: 2_000 }, (_, i) => ({ key: `u${i % 50}`, value: clickJson(i % 50, base + i * minute, 'view', { seq: i }) }));
  const lastOrder = base + 30 * minute + 20 * 100 * minute;
  const orders: RawRecord[] = Array.from({ length: 21 }, (_, i) => ({ key: `u${i}`, value: clickJson(i, base + 30 * minute + i * 100 * minute, 'purchase', { seq: 10_000 + i }) }));
  await produce(brokers, clicksTopic, clicks);
  const source = (topic: string) => `
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${topic}]
    group: g-${topic}
    mapping: { attributes: [seq] }
    watermark: { max_out_of_orderness: 0s, idle_timeout: 1m, max_drift: 1h }`;
  const store: StreamRecord[][] = [[]];
  const events = (store[0] ??= []) as ClickEvent[];
  const metrics = new MetricsHub();
  const controller = new AbortController();
  const run = runYaml(`name: kafka-alignment\nsources:${source(clicksTopic)}${source(ordersTopic)}\nsinks:\n  - { type: collect, kinds: [event] }\nsettings: { max_in_flight: ${batch} }\n`, {
    env: { KAFKA_BROKERS: brokers },
    plugins: [collectSink(store)],
    metrics,
    signal: controller.signal,
  });
  try {
    // The orders' topic has records only once the clicks' first batch is in (their producer behind, or a
    // smaller backlog read sooner): unaligned, the clicks were read to their end meanwhile.
    await waitFor('the clicks\' first batch', () => events.length > 0, 60_000);
    await produce(brokers, ordersTopic, orders);
    await waitFor('every click and order', () => events.length >= 2_021, 60_000);
  } finally {
    controller.abort();
    await run;
  }
  assert.equal(events.length, 2_021, 'every click and order came out, once');
  // In the order the sources gave them: while orders are still to come, no click is more than max_drift
  // (plus the batch that took the clicks past it) ahead of the newest order read.
  let newestOrder = -Infinity;
  let newestClick = -Infinity;
  let worstAhead = -Infinity;
  let clicksBeforeOrders = 0;
  for (const event of events) {
    if (event.type === 'purchase') newestOrder = Math.max(newestOrder, event.time);
    else newestClick = Math.max(newestClick, event.time);
    // Before the orders' first batch the clicks' first is read (nothing to align it with), and no more.
    if (newestOrder === -Infinity) clicksBeforeOrders++;
    else if (newestOrder < lastOrder) worstAhead = Math.max(worstAhead, newestClick - newestOrder);
  }
  assert.ok(clicksBeforeOrders <= batch, `${clicksBeforeOrders} clicks read before the first order (at most one batch, ${batch})`);
  assert.ok(worstAhead <= hour + batch * minute, `the clicks ran ${worstAhead / minute} min ahead of the newest order read (at most 60 + ${batch})`);
  const text = await metrics.registry.metrics();
  assert.match(text, /^tributary_watermark_alignment_pauses_total\{pipeline="kafka-alignment",stage="source-kafka-0"\} [1-9]\d*$/m, 'the clicks source was held');
});

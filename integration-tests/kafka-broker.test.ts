/** The test broker itself: it answers the Kafka protocol where scripts/test.mjs said it would. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metadataBrokerCount } from './kafka/broker.js';
import { kafkaBrokers } from './kafka/env.js';

test('the broker for this run answers a metadata request', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const [host, port] = brokers.split(',')[0]!.split(':');
  assert.ok((await metadataBrokerCount(host!, Number(port), 5_000)) >= 1);
});

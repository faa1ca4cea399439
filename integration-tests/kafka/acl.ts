/**
 * What the ACL tests share: a broker of a test's own where `alice` (SASL PLAIN) may read every topic and group.
 * The run's broker has no authorizer.
 */
import type { TestContext } from 'node:test';
import type { SecurityConfig } from '../../plugins/kafka/common.js';
import { uniqueTopic } from './env.js';
import { clickJson, createTopic } from './client.js';
import { aclCommand, startNativeBroker, type NativeBroker } from './broker.js';

export const base = Date.parse('2024-05-01T00:00:00Z');
export const alice: SecurityConfig = { protocol: 'sasl_plaintext', sasl: { mechanism: 'PLAIN', username: 'alice', password: 'alice-secret' } };

/**
 * A broker of the test's own (stopped after it) where `alice` may read (and describe) every topic and
 * group, and do nothing else, with a topic of one partition for each name prefix.
 */
export async function brokerWithReader(t: TestContext, ...prefixes: string[]): Promise<{ broker: NativeBroker; admin: string; topics: string[] }> {
  const broker = await startNativeBroker({ partitions: 1, users: { alice: 'alice-secret' } });
  t.after(() => broker.stop());
  aclCommand(broker, ['--add', '--allow-principal', 'User:alice', '--operation', 'Read', '--operation', 'Describe', '--topic', '*', '--group', '*']);
  const admin = broker.plaintext!;
  const topics = prefixes.map((prefix) => uniqueTopic(prefix));
  for (const topic of topics) await createTopic(admin, topic, 1);
  return { broker, admin, topics };
}

export const views = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ key: `u${from + i}`, value: clickJson(from + i, base + from + i, 'view', { seq: from + i }) }));

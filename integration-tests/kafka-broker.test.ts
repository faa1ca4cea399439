/**
 * The test broker itself: it answers the Kafka protocol where scripts/test.mjs said it would, starts despite a
 * port taken under it, and is never mistaken for another broker (another run's) answering on its port.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { brokerMetadata, freePort, startNativeBroker } from './kafka/broker.js';
import { kafkaBrokers } from './kafka/env.js';

test('the broker for this run answers a metadata request', async (t) => {
  const brokers = kafkaBrokers(t);
  if (!brokers) return;
  const [host, port] = brokers.split(',')[0]!.split(':');
  assert.ok((await brokerMetadata(host!, Number(port), 5_000)).brokers >= 1);
});

/** A loopback port this process holds until the test ends, as another process holding it would. */
async function holdPort(t: TestContext): Promise<number> {
  const holder = createServer((socket) => socket.destroy());
  await new Promise<void>((listening) => holder.listen(0, '127.0.0.1', listening));
  t.after(() => holder.close());
  return (holder.address() as { port: number }).port;
}

test('a native broker whose picked port another process takes before java binds it starts again on fresh ports, and answers there', { timeout: 120_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  // The other process: it holds the first port picked, as one that took it after the pick would.
  const held = await holdPort(t);
  const picked: number[] = [];
  const log: string[] = [];
  const broker = await startNativeBroker({
    partitions: 1,
    pickPort: async () => {
      picked.push(picked.length === 0 ? held : await freePort());
      return picked.at(-1)!;
    },
    log: (line) => log.push(line),
  });
  t.after(() => broker.stop());
  assert.match(log.join('\n'), new RegExp(`could not bind 127\\.0\\.0\\.1:${held} \\(Address already in use\\); starting the broker again on fresh ports`));
  assert.equal(picked.length, 4, 'two ports (broker, controller) for each of the two starts');
  const port = Number(broker.brokers.split(':')[1]);
  assert.ok(port !== held && picked.slice(2).includes(port), `the broker is at ${broker.brokers}, a port of its second start`);
  assert.ok((await brokerMetadata('127.0.0.1', port, 5_000)).brokers >= 1);
});

/**
 * A Kafka broker of another run on a loopback port: the run's own broker where it listens on this machine's
 * loopback (scripts/test.mjs's native or container broker), else one the test starts (two brokers at most).
 */
async function foreignBroker(t: TestContext, runBrokers: string): Promise<{ port: number; clusterId: string | undefined }> {
  const [host, port] = runBrokers.split(',')[0]!.split(':');
  if (host === '127.0.0.1' || host === 'localhost') {
    return { port: Number(port), clusterId: (await brokerMetadata('127.0.0.1', Number(port), 5_000)).clusterId };
  }
  const other = await startNativeBroker({ partitions: 1 });
  t.after(() => other.stop());
  return { port: Number(other.brokers.split(':')[1]), clusterId: other.clusterId };
}

test("a native broker whose picked port another run's Kafka broker listens on is not mistaken for it: it starts again on fresh ports, and is the one answering there", { timeout: 180_000 }, async (t) => {
  const runBrokers = kafkaBrokers(t);
  if (!runBrokers) return;
  const foreign = await foreignBroker(t, runBrokers);
  assert.ok(foreign.clusterId, 'the other broker says its cluster id');
  // That broker took the port picked for ours before java bound it, and answers there at once.
  const picked: number[] = [];
  const log: string[] = [];
  const broker = await startNativeBroker({
    partitions: 1,
    pickPort: async () => {
      picked.push(picked.length === 0 ? foreign.port : await freePort());
      return picked.at(-1)!;
    },
    log: (line) => log.push(line),
  });
  t.after(() => broker.stop());
  assert.notEqual(broker.brokers, `127.0.0.1:${foreign.port}`, "the harness returned the other broker's address");
  assert.match(log.join('\n'), new RegExp(`another Kafka broker answers at 127\\.0\\.0\\.1:${foreign.port} \\(cluster ${foreign.clusterId}, not this start's [\\w-]{22}\\); starting the broker again on fresh ports`));
  assert.equal(picked.length, 4, 'two ports (broker, controller) for each of the two starts');
  const port = Number(broker.brokers.split(':')[1]);
  assert.ok(picked.slice(2).includes(port), `the broker is at ${broker.brokers}, a port of its second start`);
  assert.equal((await brokerMetadata('127.0.0.1', port, 5_000)).clusterId, broker.clusterId, 'our broker answers at the address returned');
  assert.equal((await brokerMetadata('127.0.0.1', foreign.port, 5_000)).clusterId, foreign.clusterId, 'the other broker still answers, untouched');
});

test('a native broker given a port another process holds fails at once, saying which port, without waiting out its start timeout', { timeout: 120_000 }, async (t) => {
  if (!kafkaBrokers(t)) return;
  const held = await holdPort(t);
  // A port the caller chose (as a restart reuses its broker's) is not swapped for another: the start fails.
  let picks = 0;
  const started = Date.now();
  await assert.rejects(
    startNativeBroker({ partitions: 1, controllerPort: held, startTimeoutMs: 60_000, pickPort: async () => (picks++, freePort()) }),
    new RegExp(`^Error: java could not bind 127\\.0\\.0\\.1:${held} \\(Address already in use\\)$`),
  );
  assert.equal(picks, 1, 'one start: only the broker port was picked');
  assert.ok(Date.now() - started < 60_000, 'failed on the bind, not at the start timeout');
});

// Bench (run by hand, after a build): in an unresponsive-broker outage (java SIGSTOPped), how long does a
// checkpoint-sized fs.promises.writeFile wait while the kafka plugin's lookup patterns run?
// Usage: node bench/kafka-pool-outage.mjs BROKERS JAVA_PID lane|nolane  (a broker of your own: node dist/integration-tests/kafka/broker.js;
// JAVA_PID its java process, SIGSTOPped for 10-20 s here and SIGCONTinued). 'nolane' makes the lookups straight, as before 2026-12-07.
import { createTopic, produce } from '../dist/integration-tests/kafka/client.js';
import { throughLookupLane, lookupLane } from '../dist/plugins/kafka/common.js';
import Kafka from 'node-rdkafka';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';

const [brokers, javaPid, mode] = process.argv.slice(2);
const wrap = mode === 'lane' ? throughLookupLane : (c) => c;
const p = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
const t0 = Date.now();
const log = (...a) => console.log(`${((Date.now() - t0) / 1000).toFixed(1)}s`, ...a);
const topic = `tp-exp-${Date.now()}`;
const partitions = 8;
await createTopic(brokers, topic, partitions);
await produce(brokers, topic, Array.from({ length: 16 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })));
const consumer = wrap(new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'group.id': `g-${topic}`, 'enable.auto.commit': false }, { 'auto.offset.reset': 'earliest' }));
consumer.on('event.error', () => undefined);
const producer = wrap(new Kafka.Producer({ 'metadata.broker.list': brokers, 'transactional.id': `tx-${topic}`, dr_cb: true }, {}));
producer.on('event.error', () => undefined);
producer.setPollInterval(50);
await p((cb) => consumer.connect({}, cb));
await p((cb) => producer.connect({}, cb));
await p((cb) => producer.initTransactions(20000, cb));
await p((cb) => producer.beginTransaction(cb));
consumer.assign(Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0 })));
let inFlight = 0, maxInFlight = 0;
const pool = (what, fn) => { inFlight++; maxInFlight = Math.max(maxInFlight, inFlight); return p(fn).finally(() => inFlight--).catch(() => undefined); };
let stopped = false;
// The source's consume loop (pollTimeout 1 s): one pool thread nearly always.
const consuming = (async () => { while (!stopped) await pool('consume', (cb) => consumer.setDefaultConsumeTimeout(1000) ?? consumer.consume(10, cb)); })();
// Baseline fs latency.
const probeFs = async () => { const s = Date.now(); await writeFile(`${tmpdir()}/kafka-pool-outage-checkpoint.json`, Buffer.alloc(1 << 20)); return Date.now() - s; };
log('before the outage: writeFile took', await probeFs(), 'ms');
process.kill(Number(javaPid), 'SIGSTOP');
log('broker SIGSTOPped');
const loops = [];
// Health probes (source: getMetadata 2 s every 5 s; producer: the same), a commit in flight (30 s), and an
// assignment's look at the checkpoint's offsets: queryWatermarkOffsets per partition, all at once (resumedOutsideLog).
const every = (ms, fn) => loops.push((async () => { while (!stopped) { await fn(); await new Promise((r) => setTimeout(r, ms)); } })());
every(5000, () => pool('source probe', (cb) => consumer.getMetadata({ timeout: 2000 }, cb)));
every(5000, () => pool('producer probe', (cb) => producer.getMetadata({ timeout: 2000 }, cb)));
producer.produce(topic, null, Buffer.from('x'), 'k');
void pool('commitTransaction', (cb) => producer.commitTransaction(30000, cb));
for (let i = 0; i < partitions; i++) void pool('watermarks', (cb) => consumer.queryWatermarkOffsets(topic, i, 5000, cb));
const waits = [];
for (let i = 0; i < 20; i++) {
  const w = await probeFs();
  waits.push(w);
  log(`writeFile took ${w} ms; pool calls in flight (ours, queued in libuv included) ${inFlight}; lane in flight ${lookupLane.inFlight}, waiting ${lookupLane.waiting}`);
  await new Promise((r) => setTimeout(r, 500));
}
process.kill(Number(javaPid), 'SIGCONT');
stopped = true;
waits.sort((a, b) => a - b);
log(`mode ${mode}: writeFile during the outage: median ${waits[10]} ms, max ${waits[19]} ms; most pool-bound calls in flight at once ${maxInFlight}`);
process.exit(0);

/**
 * Kafka through a real broker on this machine (broker included):
 *
 *   node dist/bench/kafka.js [EVENTS] [--pipeline=passthrough,intent] [--mode=at-least-once,exactly-once]
 *                            [--runs=3] [--no-throughput] [--no-latency] [--eos-commit-interval=50ms] [--latency-runs=1]
 *                            [--no-settle]
 *                            [--warmup=90] [--watermark-bound=10ms] [--write]
 *   node dist/bench/kafka.js [EVENTS] --client-floor [--runs=3]
 *
 * Two pipelines, each in both delivery modes:
 * - passthrough: `kafka` source -> `kafka` sink, no stages (the plugins' own cost);
 * - intent: `kafka` source -> sessionizer -> session-features -> user-features -> intent-model
 *   (logistic) -> `kafka` sink of the predictions (the intent pipeline of issue 6).
 *
 * 1. Sustained throughput: EVENTS simulated shopper events (default 300,000, ShopperWorld, event-time
 *    order, keyed by user) are produced once to a 4-partition topic; each run is a fresh consumer
 *    group reading them all (stop_at_end) into a fresh output topic. Rate = events / pipeline run time;
 *    the median of `--runs` runs is reported.
 * 2. Latency at 5,000 events/s: a producer writes at that rate for 20 s, each event's time set to its
 *    send time; a consumer of the output topic (read_committed in exactly-once mode) measures
 *    output-readable minus event time, p50/p99 (an output's `time` is its event's time, predictions
 *    included).
 *
 * `--client-floor` measures node-rdkafka alone on the same input, with the source's consumer and the
 * sink's producer settings and no Tributary code: consume(n) -> produce() of each record's own bytes
 * (`raw`), and the same with a JSON.parse and JSON.stringify per record (`json`, the least a pipeline
 * that reads its events must do). Nothing a pipeline adds can make it faster than this floor.
 *
 * 0. Warm-up (`--warmup=SECONDS`, default 90; 0 skips it): unmeasured throughput runs of both
 *    pipelines in both modes, round after round, until that time has passed. A broker started for
 *    the bench is a cold JVM: its JIT compilers (C1, C2) took 10-35% of this 2-core machine through
 *    the first minute of traffic (perf), competing with the pipeline measured, which a broker that
 *    has run for a while does not. Each warm-up run's broker CPU per event is printed, so its decline
 *    shows.
 *
 * A run of every pipeline and mode prints the `## Kafka` section of BENCHMARKS.md; `--write` also records it there (and
 * is refused for a run of fewer).
 * Uses KAFKA_BROKERS when set, else starts a native broker (integration-tests/kafka/broker.ts).
 * Each row's pipelines (its settling run, throughput runs and latency runs) run in a process of their
 * own with the flags `tributary run` uses, as a daemon runs one pipeline (see PipelineProcess); this
 * process produces the input, reads the outputs and measures. Throughput runs also report CPU time
 * per event of the pipeline's process (librdkafka's threads included) and of the broker (found by its
 * folder: the one started here, or BENCH_BROKER_DIR), which a busy machine disturbs less than the
 * rate. `--ab=VAR` sets the environment variable VAR in the pipeline process on every second run
 * (A/B of an experimental switch in one process).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import Kafka from 'node-rdkafka';
import type { Message } from 'node-rdkafka';
import { runYaml } from 'tributary/testing';
import { ShopperWorld } from '../plugins/sources/shoppers.js';
import { cpus, loadavg } from 'node:os';
import { commandLine, hostProbe, machine, median, percentile, positionalArgs, publishSection, recording } from './machine.js';
import { defaultLibsDir, startNativeBroker, type NativeBroker } from '../integration-tests/kafka/broker.js';
import { createTopic, produce } from '../integration-tests/kafka/client.js';
import { CONSUMER_TUNING } from '../plugins/kafka/source.js';
import { disconnectProducer, ErrorCode } from '../plugins/kafka/common.js';

type Mode = 'at-least-once' | 'exactly-once';
type PipelineKind = 'passthrough' | 'intent';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const events = Number(positionalArgs()[0] ?? 300_000);
const modes = (flag('mode')?.split(',') ?? ['at-least-once', 'exactly-once']) as Mode[];
const pipelines = (flag('pipeline')?.split(',') ?? ['passthrough', 'intent']) as PipelineKind[];
const runs = Number(flag('runs') ?? 3);
const warmupSeconds = Number(flag('warmup') ?? 90);
const doThroughput = !args.includes('--no-throughput');
const doLatency = !args.includes('--no-latency');
/** Whether this run makes the whole `## Kafka` table: only such a run prints it or, with `--write`, records it. */
const wholeTable = pipelines.length >= 2 && modes.length >= 2 && doThroughput && doLatency;
const clientFloor = args.includes('--client-floor');
const users = 20_000;
/** How often exactly-once commits its transaction: the floor of its latency (read_committed readers see a record at the commit). */
const eosCommitInterval = flag('eos-commit-interval') ?? '50ms';
/** Whether each row's throughput runs follow one unmeasured run (`--no-settle` to skip it). */
const settle = !args.includes('--no-settle');
/** Latency runs per row (each 25 s); the row shows their medians. */
const latencyRuns = Number(flag('latency-runs') ?? 1);

const stages: Record<PipelineKind, string> = {
  passthrough: '',
  intent: `
stages:
  - { type: sessionizer, gap: 30m }
  - { type: session-features }
  - { type: user-features, horizons: [1h, 1d] }
  - { type: intent-model, name: intent, model: { kind: logistic }, batch: { max_size: 256, max_delay: 20ms } }`,
};

/**
 * Latency runs bound out-of-orderness at 10 ms by default: the sessionizer holds each event until the watermark
 * passes it, so that bound is a floor of the intent pipeline's latency. It is safe here because the
 * watermark is per partition and each partition is in event-time order (records keyed by user, one
 * producer): an event can only be behind its own partition's watermark, never late.
 */
const watermarkBound = flag('watermark-bound') ?? '10ms';
const latencyWatermark = `, watermark: { max_out_of_orderness: ${watermarkBound}, idle_timeout: 1s }`;

function yaml(kind: PipelineKind, input: string, output: string, mode: Mode, extra = ''): string {
  // The intent pipeline's output is its predictions; the passthrough writes the events themselves.
  const kinds = kind === 'intent' ? ', kinds: [prediction]' : '';
  return `
name: kafka-bench-${kind}-${mode}
sources:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topics: [${input}], group: g-${output}, guarantee: ${mode}${extra} }
${stages[kind]}
sinks:
  - { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}, guarantee: ${mode}, transactional_id: tx-${output}${kinds} }
dead_letter: { type: kafka, brokers: "\${KAFKA_BROKERS}", topic: ${output}-dlq, guarantee: ${mode}, transactional_id: tx-${output} }
settings: { max_in_flight: 4096, commit_interval: ${mode === 'exactly-once' ? eosCommitInterval : '1s'} }
`;
}

function json(e: { userId: string; time: number; type: string; itemId?: string; category?: string; price?: number }): string {
  return `{"user_id":"${e.userId}","time":"${new Date(e.time).toISOString()}","type":"${e.type}","item_id":"${e.itemId ?? ''}","category":"${e.category ?? ''}","price":${e.price ?? 0}}`;
}

let inputTopic: string | undefined;

/** The throughput input, produced once for every run. */
async function throughputInput(brokers: string): Promise<string> {
  if (inputTopic) return inputTopic;
  const topic = `bench-in-${Date.now()}`;
  await createTopic(brokers, topic, 4);
  const world = new ShopperWorld({ seed: 1, users });
  for (let from = 0; from < events; from += 50_000) {
    const batch = Array.from({ length: Math.min(50_000, events - from) }, () => {
      const e = world.next();
      return { key: e.userId, value: json(e) };
    });
    await produce(brokers, topic, batch);
  }
  inputTopic = topic;
  return topic;
}

/** One throughput run: events/s, and CPU time per event of the pipeline's process and of the broker. */
interface ThroughputRun {
  rate: number;
  /** {@link hostProbe} just before the run. */
  probeUs: number;
  nodeCpuUs: number;
  brokerCpuUs: number | undefined;
}

/** The broker JVM's pid (the native broker started here), found by its server.properties path. */
function brokerPid(dir: string | undefined): number | undefined {
  if (!dir) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.startsWith('java') && cmdline.includes(`${dir}/server.properties`)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * The broker JVM's collector and heap as its command line sets them (e.g. `G1 collector, 1g heap`), so a
 * table measured on a broker started elsewhere says what it ran on: the tests' broker runs the serial
 * collector, the bench's own G1.
 */
function brokerJvm(pid: number | undefined): string | undefined {
  if (pid === undefined) return undefined;
  try {
    const flags = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const collector = flags.includes('-XX:+UseG1GC') ? 'G1' : flags.includes('-XX:+UseSerialGC') ? 'serial' : 'default';
    const heap = flags.find((flag) => flag.startsWith('-Xmx'))?.slice(4);
    return `${collector} collector${heap ? `, ${heap} heap` : ''}`;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used, in µs (from /proc; clock ticks of 10 ms). */
function processCpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/**
 * Runs `work` (which returns the events it read, the milliseconds it took to read them and, when a
 * pipeline process did the work, that process's CPU time in µs) and measures its rate and CPU.
 */
async function measured(work: () => Promise<{ read: number; ms: number; cpuUs?: number }>): Promise<ThroughputRun> {
  const java = brokerPid(broker?.dir ?? process.env.BENCH_BROKER_DIR);
  const probeUs = hostProbe();
  const cpuBefore = process.cpuUsage();
  const brokerBefore = processCpuUs(java);
  const { read, ms, cpuUs } = await work();
  const cpu = process.cpuUsage(cpuBefore);
  const brokerAfter = processCpuUs(java);
  return {
    rate: (read / ms) * 1000,
    probeUs,
    nodeCpuUs: (cpuUs ?? cpu.user + cpu.system) / read,
    brokerCpuUs: brokerBefore === undefined || brokerAfter === undefined ? undefined : (brokerAfter - brokerBefore) / read,
  };
}

function describeRun(run: ThroughputRun): string {
  return `${Math.round(run.rate)} events/s, CPU per event: pipeline process ${run.nodeCpuUs.toFixed(1)} µs, broker ${run.brokerCpuUs?.toFixed(1) ?? '?'} µs, host probe ${run.probeUs.toFixed(2)} µs`;
}

// ---- pipeline processes ----

/** A pipeline for a pipeline process to run; `ab` names an environment variable set for it (or unset). */
interface Job {
  id: number;
  yaml: string;
  env: Record<string, string>;
  ab?: { name: string; set: boolean };
}

interface JobResult {
  id: number;
  eventsIn: number;
  deadLettered: number;
  elapsedMs: number;
  /** CPU time (user + system, all threads) of the pipeline process while the job ran. */
  cpuUs: number;
  error?: string;
}

/**
 * The pipelines of one row run in a process of their own, as a daemon runs one pipeline: nothing of
 * the other rows' pipelines (their JIT feedback, V8 flushing the code of a pipeline left unused during
 * them, their heap) carries into a row, and the latency runs' load generator and output consumer are
 * not on the pipeline's event loop, as in production they are other processes. The bench's own
 * process produces, consumes and measures.
 */
class PipelineProcess {
  private readonly child: ChildProcess;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (result: JobResult) => void; reject: (error: Error) => void }>();

  constructor() {
    // The flags `tributary run` runs with (core/cli/main.ts).
    this.child = fork(new URL(import.meta.url).pathname, ['--pipeline-process'], { execArgv: ['--max-semi-space-size=32'], stdio: 'inherit' });
    this.child.on('message', (message: JobResult) => {
      const waiter = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      if (message.error) waiter?.reject(new Error(message.error));
      else waiter?.resolve(message);
    });
    this.child.on('exit', (code) => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`pipeline process exited (${code})`));
      this.waiting.clear();
    });
  }

  /** Starts a pipeline; `stop()` ends one that does not stop at the end of its input. */
  start(yaml: string, ab?: Job['ab']): { done: Promise<JobResult>; stop: () => void } {
    const id = this.nextId++;
    const done = new Promise<JobResult>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    const job: Job = { id, yaml, env: { KAFKA_BROKERS: brokers! }, ...(ab ? { ab } : {}) };
    this.child.send(job);
    return { done, stop: () => void this.child.send({ stop: id }) };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    // Its pipelines have ended; anything still holding it open after that is not worth waiting for.
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The child's side: runs each job it is sent, reports its stats and CPU, and stops a job when told. */
function servePipelineJobs(): void {
  const running = new Map<number, AbortController>();
  process.on('message', (message: Job | { stop: number }) => {
    if ('stop' in message) {
      running.get(message.stop)?.abort();
      return;
    }
    const controller = new AbortController();
    running.set(message.id, controller);
    if (message.ab) {
      if (message.ab.set) process.env[message.ab.name] = '1';
      else delete process.env[message.ab.name];
    }
    const cpuBefore = process.cpuUsage();
    runYaml(message.yaml, { env: message.env, signal: controller.signal }).then(
      ({ stats }) => {
        const cpu = process.cpuUsage(cpuBefore);
        process.send!({ id: message.id, eventsIn: stats.eventsIn, deadLettered: stats.deadLettered, elapsedMs: stats.elapsedMs, cpuUs: cpu.user + cpu.system } satisfies JobResult);
      },
      (error: unknown) => process.send!({ id: message.id, eventsIn: 0, deadLettered: 0, elapsedMs: 0, cpuUs: 0, error: String((error as Error).stack ?? error) } satisfies JobResult),
    ).finally(() => running.delete(message.id));
  });
  // The parent closing the channel ends this process (after whatever still runs).
  process.on('disconnect', () => {
    for (const controller of running.values()) controller.abort();
  });
}

async function throughput(pipelineProcess: PipelineProcess, brokers: string, kind: PipelineKind, mode: Mode, ab?: Job['ab']): Promise<ThroughputRun> {
  const input = await throughputInput(brokers);
  const output = `bench-out-${kind}-${mode}-${Date.now()}`;
  await createTopic(brokers, output, 4);
  await createTopic(brokers, `${output}-dlq`, 1);
  return measured(async () => {
    const stats = await pipelineProcess.start(yaml(kind, input, output, mode, ', stop_at_end: true'), ab).done;
    if (stats.eventsIn + stats.deadLettered !== events) console.error(`warning: read ${stats.eventsIn} + ${stats.deadLettered} dead letters of ${events}`);
    return { read: stats.eventsIn, ms: stats.elapsedMs, cpuUs: stats.cpuUs };
  });
}

async function latency(pipelineProcess: PipelineProcess, brokers: string, kind: PipelineKind, mode: Mode, rate = 5_000, seconds = 20): Promise<{ p50: number; p99: number; count: number }> {
  const id = `${Date.now()}`;
  const [input, output] = [`lat-in-${kind}-${mode}-${id}`, `lat-out-${kind}-${mode}-${id}`];
  await createTopic(brokers, input, 4);
  await createTopic(brokers, output, 4);
  await createTopic(brokers, `${output}-dlq`, 1);
  const run = pipelineProcess.start(yaml(kind, input, output, mode, latencyWatermark));
  run.done.catch((error: unknown) => console.error(error));
  const consumer = new Kafka.KafkaConsumer(
    {
      'metadata.broker.list': brokers,
      'group.id': `lat-${id}`,
      'isolation.level': mode === 'exactly-once' ? 'read_committed' : 'read_uncommitted',
      'fetch.wait.max.ms': 5,
      'fetch.error.backoff.ms': 5,
      'broker.address.family': 'v4',
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  consumer.subscribe([output]);
  const latencies: number[] = [];
  let reading = true;
  let measuring = false;
  /** Outputs of events sent before this (the warm-up's) are not measured, whenever they arrive. */
  let measureFrom = Infinity;
  // node-rdkafka's consume(n) waits up to the timeout for *each* record until it has n, so a
  // consume(1000) at 5k/s would hold records ~200 ms: wait for one, then take only what is fetched.
  const take = (n: number, timeout: number): Promise<Message[]> => {
    consumer.setDefaultConsumeTimeout(timeout);
    return new Promise<Message[]>((resolve) => consumer.consume(n, (error, messages) => resolve(error ? [] : messages)));
  };
  const reader = (async () => {
    while (reading) {
      const first = await take(1, 20);
      const batch = first.length === 0 ? first : first.concat(await take(999, 0));
      const now = Date.now();
      if (!measuring) continue;
      for (const message of batch) {
        const time = (JSON.parse(message.value!.toString()) as { time?: number }).time;
        if (time && time >= measureFrom) latencies.push(now - time);
      }
    }
  })();
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'linger.ms': 1, 'broker.address.family': 'v4', 'enable.idempotence': true });
  await new Promise<void>((resolve, reject) => producer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  producer.setPollInterval(50);
  const world = new ShopperWorld({ seed: 2, users });
  const send = (): void => {
    const e = world.next();
    producer.produce(input, null, Buffer.from(json({ ...e, time: Date.now() })), e.userId);
  };
  // Warm up (group join, first fetches, JIT, TF.js) at the target rate for 5 s, unmeasured; then 20 s measured.
  // Only events sent in the measured part count: a warm-up event's output arriving late is not a sample.
  const pace = async (ms: number): Promise<number> => {
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < ms) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      for (; sent < due; sent++) send();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return sent;
  };
  await pace(5_000);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  measuring = true;
  measureFrom = Date.now();
  const sent = await pace(seconds * 1000);
  // Predictions: one per event before the session's first purchase, so fewer than the events sent.
  const expected = kind === 'intent' ? sent * 0.8 : sent;
  const deadline = Date.now() + 10_000;
  while (latencies.length < expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  reading = false;
  await reader;
  run.stop();
  await run.done.catch(() => undefined);
  await disconnectProducer(producer, 5_000);
  await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  const sorted = latencies.sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), count: sorted.length };
}

/**
 * The client's own floor: node-rdkafka consume(n) -> produce() with the kafka source's consumer and the
 * kafka sink's producer settings (at-least-once: idempotent, acks all, lz4, linger 5 ms, delivery
 * reports for failures only), and nothing else. `json` adds one JSON.parse and one JSON.stringify per
 * record. A fresh group reads the throughput input to its end; rate and CPU per event as for pipelines.
 */
async function clientThroughput(brokers: string, json: boolean): Promise<ThroughputRun> {
  const input = await throughputInput(brokers);
  const output = `bench-out-client-${Date.now()}`;
  await createTopic(brokers, output, 4);
  const consumer = new Kafka.KafkaConsumer(
    {
      'metadata.broker.list': brokers,
      'broker.address.family': 'v4',
      'group.id': `g-${output}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'enable.partition.eof': true,
      ...CONSUMER_TUNING,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  // The kafka sink's settings (acks is librdkafka's alias that node-rdkafka's types lack).
  const producer = new Kafka.Producer({
    'metadata.broker.list': brokers,
    'broker.address.family': 'v4',
    'enable.idempotence': true,
    acks: 'all',
    'compression.codec': 'lz4',
    'linger.ms': 5,
    'batch.num.messages': 4096,
    'queue.buffering.max.messages': 4096,
    'delivery.report.only.error': true,
    dr_cb: true,
  } as Record<string, string | number | boolean> as Kafka.ProducerGlobalConfig);
  const connect = (client: { connect(options: object, cb: (error: { message: string } | null) => void): unknown }): Promise<void> =>
    new Promise((resolve, reject) => void client.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
  await connect(producer);
  await connect(consumer);
  producer.setPollInterval(50);
  let ended = 0;
  consumer.on('partition.eof', () => void ended++);
  consumer.subscribe([input]);
  const take = (n: number, timeout: number): Promise<Message[]> => {
    consumer.setDefaultConsumeTimeout(timeout);
    return new Promise<Message[]>((resolve, reject) => consumer.consume(n, (error, messages) => (error ? reject(new Error(error.message)) : resolve(messages))));
  };
  const run = await measured(async () => {
    const started = performance.now();
    let read = 0;
    let firstAt: number | undefined;
    while (ended < 4 || read < events) {
      let batch = await take(4096, 0);
      if (batch.length === 0) batch = await take(1, 100);
      if (batch.length > 0) firstAt ??= performance.now();
      for (const message of batch) {
        const value = json ? Buffer.from(JSON.stringify(JSON.parse(message.value!.toString()))) : message.value;
        for (;;) {
          try {
            producer.produce(output, null, value, message.key);
            break;
          } catch (error) {
            // Queue full (max in flight): let librdkafka send, as the sink waits for room.
            if ((error as { code?: number }).code !== ErrorCode.QUEUE_FULL) throw error;
            producer.poll();
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
      }
      read += batch.length;
    }
    await new Promise<void>((resolve, reject) => producer.flush(30_000, (error) => (error ? reject(new Error(error.message)) : resolve())));
    return { read, ms: performance.now() - (firstAt ?? started) };
  });
  await disconnectProducer(producer, 5_000);
  await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  return run;
}

interface Row {
  kind: PipelineKind;
  mode: Mode;
  rates: number[];
  probesUs: number[];
  nodeCpuUs: number[];
  brokerCpuUs: number[];
  p50?: number;
  p99?: number;
}

let broker: NativeBroker | undefined;
let brokers = process.env.KAFKA_BROKERS;
const loadAtStart = loadavg()[0]!;

/** Kafka's version as the broker's jars name it (kafka-server-X.jar in the libs folder), or undefined. */
function kafkaVersion(): string | undefined {
  try {
    for (const name of readdirSync(defaultLibsDir)) {
      const match = /^kafka-server-(\d+\.\d+\.\d+)\.jar$/.exec(name);
      if (match) return match[1];
    }
  } catch {
    // no libs folder here (an external broker)
  }
  return undefined;
}
const childMode = args.includes('--pipeline-process');

async function main(): Promise<void> {
  // Before the broker starts and the runs take their minutes, not after.
  if (recording() && !wholeTable) throw new Error('--write needs every pipeline, every mode, throughput and latency');
  if (!brokers) {
    broker = await startNativeBroker({ heap: '1g', gc: 'g1' });
    brokers = broker.brokers;
  }
  try {
    if (clientFloor) {
      for (const json of [false, true]) {
        const rates: number[] = [];
        const cpus: number[] = [];
        for (let r = 0; r < runs; r++) {
          const run = await clientThroughput(brokers, json);
          rates.push(run.rate);
          cpus.push(run.nodeCpuUs + (run.brokerCpuUs ?? NaN));
          console.error(`client floor ${json ? 'json' : 'raw'}: run ${r + 1}: ${Math.round(run.rate)} events/s, CPU per event: node-rdkafka process ${run.nodeCpuUs.toFixed(1)} µs, broker ${run.brokerCpuUs?.toFixed(1) ?? '?'} µs (load ${loadavg()[0]!.toFixed(2)})`);
        }
        console.error(`client floor ${json ? 'json' : 'raw'}: median ${Math.round(median(rates))} events/s, CPU per event (process + broker) median ${median(cpus).toFixed(1)} µs`);
      }
    }
    if (warmupSeconds > 0) {
      const warming = new PipelineProcess();
      const until = performance.now() + warmupSeconds * 1000;
      for (let round = 1; performance.now() < until; round++) {
        for (const kind of ['passthrough', 'intent'] as const) {
          for (const mode of ['at-least-once', 'exactly-once'] as const) {
            const run = await throughput(warming, brokers, kind, mode);
            console.error(`warm-up ${round}: ${kind} ${mode}: ${describeRun(run)}`);
          }
        }
      }
      await warming.close();
    }
    const rows: Row[] = [];
    for (const kind of pipelines) {
      for (const mode of modes) {
        const row: Row = { kind, mode, rates: [], probesUs: [], nodeCpuUs: [], brokerCpuUs: [] };
        const pipelineProcess = new PipelineProcess();
        if (doThroughput) {
          // One unmeasured run first, so a row's runs start warm (JIT, TF.js backend, first fetches).
          if (settle) console.error(`${kind} ${mode}: settling run (not measured): ${describeRun(await throughput(pipelineProcess, brokers, kind, mode))}`);
          for (let r = 0; r < runs; r++) {
            const abName = flag('ab');
            const ab = abName ? { name: abName, set: r % 2 === 1 } : undefined;
            const run = await throughput(pipelineProcess, brokers, kind, mode, ab);
            if (ab) console.error(`  (${ab.name}=${ab.set ? '1' : ''})`);
            row.rates.push(run.rate);
            row.probesUs.push(run.probeUs);
            row.nodeCpuUs.push(run.nodeCpuUs);
            if (run.brokerCpuUs !== undefined) row.brokerCpuUs.push(run.brokerCpuUs);
            console.error(`${kind} ${mode}: run ${r + 1}: ${describeRun(run)} (load ${loadavg()[0]!.toFixed(2)})`);
          }
        }
        if (doLatency) {
          const p50s: number[] = [];
          const p99s: number[] = [];
          for (let r = 0; r < latencyRuns; r++) {
            const lat = await latency(pipelineProcess, brokers, kind, mode);
            p50s.push(lat.p50);
            p99s.push(lat.p99);
            console.error(`${kind} ${mode}: latency at 5k/s p50 ${lat.p50} ms p99 ${lat.p99} ms (${lat.count} records; load ${loadavg()[0]!.toFixed(2)})`);
          }
          row.p50 = median(p50s);
          row.p99 = median(p99s);
        }
        await pipelineProcess.close();
        if (row.rates.length > 0) {
          console.error(
            `${kind} ${mode}: ${row.rates.map(Math.round).join(', ')} events/s (median ${Math.round(median(row.rates))}); CPU µs/event median: pipeline ${median(row.nodeCpuUs).toFixed(1)}, broker ${row.brokerCpuUs.length > 0 ? median(row.brokerCpuUs).toFixed(1) : '?'}`,
          );
        }
        rows.push(row);
      }
    }
    if (wholeTable) {
      const externalJvm = broker ? undefined : brokerJvm(brokerPid(process.env.BENCH_BROKER_DIR));
      const version = kafkaVersion() ?? '(version unknown)';
      const table = rows.map(
        (r) =>
          `| ${r.kind} | ${r.mode} | ${Math.round(median(r.rates)).toLocaleString('en-US')} events/s (${r.rates.map((x) => `${Math.round(x / 1000)}k`).join(', ')}) | ${median(r.nodeCpuUs).toFixed(1)} µs / ${r.brokerCpuUs.length > 0 ? `${median(r.brokerCpuUs).toFixed(1)} µs` : '?'} | ${median(r.probesUs).toFixed(2)} µs | ${r.p50} ms | ${r.p99} ms |`,
      );
      publishSection(
        'kafka',
        `## Kafka

\`${commandLine()}\` — through a real Kafka ${broker ? `${version} broker (native KRaft, single node, 1 GiB heap, G1 collector with a 20 ms pause goal as Kafka's own start scripts set it) on this same machine` : `broker (native KRaft ${version}, single node${externalJvm ? `, ${externalJvm}` : ''}, started by \`node dist/integration-tests/kafka/broker.js\` and passed as KAFKA_BROKERS) on this same machine`}.

- **passthrough**: \`kafka\` source (4 partitions, JSON records mapped to events) -> \`kafka\` sink (JSON, keyed by user, lz4, idempotent or transactional), no stages.
- **intent**: \`kafka\` source -> sessionizer (30 min gap) -> session-features -> user-features (1h, 1d) -> intent-model (logistic: predicts each event at once, learns in micro-batches of up to 256 labels or 20 ms) -> \`kafka\` sink of the predictions (one per event before the session's first purchase).

Throughput: ${events.toLocaleString('en-US')} simulated shopper events (${users.toLocaleString('en-US')} users, event-time order, keyed by user) produced first; each run is a fresh consumer group reading them to the end; median of ${runs} runs (each run in brackets)${settle ? ', after one unmeasured run of the same row' : ''}. Each row runs in a process of its own (settling run, throughput runs, then latency runs), with the flags \`tributary run\` uses, as a daemon runs one pipeline; the input producer and the output consumer run in the bench's process. Latency: ${latencyRuns > 1 ? `median of ${latencyRuns} runs, each with ` : ''}events produced at 5,000/s for 20 s after a 5 s warm-up (outputs of warm-up events are not measured, whenever they arrive), each event's time set to its send time, source watermark bound (max_out_of_orderness) ${watermarkBound} — the sessionizer holds every event until the watermark passes it, so that bound is part of the intent pipeline's latency (safe with keyed, per-partition-ordered input: no event is late); measured when a consumer of the output topic (read_committed in exactly-once mode, fetch.wait.max.ms 5) receives its output. Exactly-once commits a transaction every ${eosCommitInterval} (\`commit_interval\`), at-least-once commits offsets every 1 s. CPU per event: CPU time (user + system, all threads) of the process running the pipeline (librdkafka's threads included) and of the broker JVM during the throughput runs, divided by the events read, median of the runs; it is less disturbed by other work on the machine than the rates are. Host probe: µs per JSON.parse of a fixed event line just before each throughput run (fastest of 5 passes over 20,000 lines; median of the row's runs), lower is a faster host: the speed of the shared host these benches were written on drifted by up to 1.5-2x within minutes (2026-12-02), and the probe shows in which spell a row ran. ${warmupSeconds > 0 ? `Before the rows, ${warmupSeconds} s of unmeasured warm-up runs (both pipelines, both modes): a freshly started broker's JIT compilers took 10-35% of a 2-core host through its first minute of traffic (perf, 2026-12-02), which a broker that has been running does not. ` : ''}Goals (issue 6): at least 50k events/s for the intent pipeline; p99 under 100 ms.

| pipeline | mode | sustained throughput | CPU per event: pipeline process / broker | host probe | latency p50 at 5k/s | latency p99 at 5k/s |
|---|---|---|---|---|---|---|
${table.join('\n')}

Machine: ${machine()}; the broker (JVM), the load generator and the output consumer share its ${cpus().length} cores; load average ${loadAtStart.toFixed(1)} at the start of the bench and ${loadavg()[0]!.toFixed(1)} at the end (each run's in the bench's output). Measured ${new Date().toISOString().slice(0, 10)}.`,
      );
    }
  } finally {
    await broker?.stop();
  }
}

if (childMode) servePipelineJobs();
else await main();

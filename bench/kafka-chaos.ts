/**
 * A randomized chaos soak of daemons reading and writing Kafka, repeatable by its seed:
 *
 *   node dist/bench/kafka-chaos.js [--seed=1] [--minutes=5] [--mode=at-least-once|exactly-once]
 *                                  [--members=2] [--partitions=6] [--rate=200] [--session-ms=6000] [--keep]
 *                                  [--whole-state] [--cooperative]
 *
 * Starts a native broker (integration-tests/kafka/broker.ts; or uses KAFKA_BROKERS, then without broker
 * restarts), creates an input topic, an output topic and a dead-letter topic, and produces a stream of
 * click events each with a unique `seq` (one in 100 is malformed text, `malformed <seq>`, which must come
 * out as a dead letter). 1-N `tributary run` processes of one pipeline (kafka source in one
 * consumer group -> sessionizer -> kafka sink, as in integration-tests/kafka-delivery.test.ts, with `scale_out` and a
 * checkpoint folder per member, as in kafka-scale-crash.test.ts; with `--whole-state`, one member without
 * `scale_out`, its state in its checkpoints alone, so rebalances commit through them; with `--cooperative`, the
 * members rebalance incrementally, `partition.assignment.strategy: cooperative-sticky`) read it, while a schedule drawn from
 * the seed kills members with SIGKILL, stops them with SIGTERM, starts them again and, less often,
 * kills the broker with SIGKILL and restarts it on its ports and data. A member that exits on its own is
 * restarted a second later, as a supervisor would, and counted. After `--minutes` the input stops, every
 * member runs, and the soak waits for the output to hold every input; then it stops them (SIGTERM) and
 * checks:
 *
 * - at-least-once: every valid seq is in the output, every malformed one a dead letter (duplicates counted);
 * - exactly-once: the same, read with isolation.level=read_committed, each exactly once;
 * - both: every output's session context (a sessionizer stage, its state per partition) is what one
 *   uninterrupted run gives: the user's k-th event at position k of the user's one session (stateErrors);
 * - every member given SIGTERM exited 0 within 45 s (`settings.shutdown_timeout` 30 s plus its start);
 * - no member exited without a signal from the soak.
 *
 * Prints a summary (a JSON line last) and exits 1 when an invariant fails. Each member's stderr (info
 * logs, every incarnation) is kept in the soak's folder, printed at the end and kept with `--keep` or
 * on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Kafka from 'node-rdkafka';
import { startNativeBroker, type NativeBroker } from '../integration-tests/kafka/broker.js';
import { clickJson, createTopic, inputProducerConfig, produce, readTopic, values } from '../integration-tests/kafka/client.js';
import { disconnectProducer } from '../plugins/kafka/common.js';
import { packageRoot } from '../core/paths.js';
import { rng } from '../plugins/models/testdata.js';

type Mode = 'at-least-once' | 'exactly-once';

interface Options {
  seed: number;
  minutes: number;
  mode: Mode;
  members: number;
  partitions: number;
  /** Input events a second. */
  rate: number;
  /** The source's consumer group session (`session.timeout.ms`). */
  sessionMs: number;
  keep: boolean;
  /** Without `scale_out`: the state in the member's checkpoints alone (one member). */
  wholeState: boolean;
  /** Incremental rebalances (cooperative-sticky): only the partitions that move are revoked. */
  cooperative: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const flag = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const mode = flag('mode') ?? 'at-least-once';
  if (mode !== 'at-least-once' && mode !== 'exactly-once') throw new Error(`--mode: at-least-once or exactly-once, not ${mode}`);
  const members = Number(flag('members') ?? 2);
  if (!Number.isInteger(members) || members < 1 || members > 3) throw new Error('--members: 1, 2 or 3');
  const wholeState = argv.includes('--whole-state');
  // Without scale_out each member's state is of the partitions it happened to read: two would split users' sessions.
  if (wholeState && members !== 1) throw new Error('--whole-state: one member (--members=1)');
  return {
    seed: Number(flag('seed') ?? 1),
    minutes: Number(flag('minutes') ?? 5),
    mode,
    members,
    partitions: Number(flag('partitions') ?? 6),
    rate: Number(flag('rate') ?? 200),
    sessionMs: Number(flag('session-ms') ?? 6_000),
    keep: argv.includes('--keep'),
    wholeState,
    cooperative: argv.includes('--cooperative'),
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const cli = join(packageRoot, 'dist', 'core', 'cli', 'main.js');
const SIGTERM_BOUND_MS = 45_000;
const MALFORMED_EVERY = 100;
const USERS = 97;
const base = Date.parse('2024-05-01T00:00:00Z');

function pipelineYaml(o: Options, topics: { input: string; output: string; dlq: string }, member: string, dir: string): string {
  return `
name: chaos-${member}
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${topics.input}]
    group: g-${topics.input}
    guarantee: ${o.mode}
    start_from: earliest
    mapping: { attributes: [seq] }
    # By default a killed member's partitions move after 6 s instead of librdkafka's 45 s (--session-ms).
    options: { session.timeout.ms: ${o.sessionMs}, heartbeat.interval.ms: ${Math.min(3_000, Math.floor(o.sessionMs / 12))}${o.cooperative ? ', partition.assignment.strategy: cooperative-sticky' : ''} }
# Per-user state, per partition (scale_out): each event leaves with its position in its user's session.
stages:
  - { type: sessionizer, gap: 30m }
sinks:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topic: ${topics.output}
    kinds: [event]
    guarantee: ${o.mode}
    transactional_id: tx-${topics.output}-${member}
    # A broker restart (a cold JVM on a busy machine) takes longer than the default 10 s.
    transaction_timeout: 60s
dead_letter:
  type: kafka
  brokers: \${KAFKA_BROKERS}
  topic: ${topics.dlq}
  guarantee: ${o.mode}
  transactional_id: tx-${topics.output}-${member}
  transaction_timeout: 60s
checkpoint: { dir: ${join(dir, `checkpoints-${member}`)}, interval: 1s }
${o.wholeState ? '' : `scale_out: { state_dir: ${join(dir, 'partition-state')} }`}
settings:
  max_in_flight: 256
  commit_interval: 200ms
`;
}

type Ending = 'sigkill' | 'sigterm' | 'own';

interface Incarnation {
  member: string;
  started: number;
  process: ChildProcess;
  /** What the soak did to end it (none: it ended on its own). */
  signal?: 'SIGKILL' | 'SIGTERM';
  signalledAt?: number;
  exit?: { code: number | null; signal: NodeJS.Signals | null; at: number };
}

class Member {
  current?: Incarnation;
  readonly history: Incarnation[] = [];
  constructor(
    readonly name: string,
    readonly file: string,
    readonly logFile: string,
    private readonly brokers: string,
    private readonly onOwnExit: (member: Member, incarnation: Incarnation) => void,
  ) {}

  get running(): boolean {
    return this.current !== undefined && this.current.signal === undefined;
  }
  get stopped(): boolean {
    return this.current === undefined;
  }

  start(): void {
    appendFileSync(this.logFile, `\n==== ${new Date().toISOString()} start ====\n`);
    const child = spawn(process.execPath, [cli, 'run', this.file, '--log-level', 'info'], {
      env: { ...process.env, KAFKA_BROKERS: this.brokers },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const incarnation: Incarnation = { member: this.name, started: Date.now(), process: child };
    child.stderr!.on('data', (chunk: Buffer) => appendFileSync(this.logFile, chunk));
    child.once('exit', (code, signal) => {
      incarnation.exit = { code, signal, at: Date.now() };
      appendFileSync(this.logFile, `\n==== ${new Date().toISOString()} exit code=${code} signal=${signal} (soak sent ${incarnation.signal ?? 'nothing'}) ====\n`);
      if (this.current === incarnation) this.current = undefined;
      if (incarnation.signal === undefined) this.onOwnExit(this, incarnation);
    });
    this.current = incarnation;
    this.history.push(incarnation);
  }

  signal(signal: 'SIGKILL' | 'SIGTERM'): void {
    const incarnation = this.current;
    if (!incarnation) return;
    incarnation.signal ??= signal;
    incarnation.signalledAt ??= Date.now();
    if (signal === 'SIGKILL') incarnation.signal = 'SIGKILL';
    incarnation.process.kill(signal);
  }

  async exited(): Promise<void> {
    const incarnation = this.current;
    if (incarnation && !incarnation.exit) await new Promise((resolve) => incarnation.process.once('exit', resolve));
  }
}

function ending(incarnation: Incarnation): Ending {
  return incarnation.signal === 'SIGKILL' ? 'sigkill' : incarnation.signal === 'SIGTERM' ? 'sigterm' : 'own';
}

/** The input: one long-lived idempotent producer, deliveries counted by seq. */
class InputStream {
  private producer: Kafka.Producer;
  private nextSeq = 0;
  readonly delivered = new Set<number>();
  readonly failed: number[] = [];
  private pending = 0;

  constructor(
    brokers: string,
    private readonly topic: string,
  ) {
    this.producer = new Kafka.Producer(
      inputProducerConfig(brokers),
      // Wait out any broker restart rather than lose a record.
      { 'message.timeout.ms': 0 },
    );
    let lastError = '';
    this.producer.on('event.error', (error) => {
      if (error.message !== lastError) console.log(`input producer: ${error.message}`);
      lastError = error.message;
    });
    this.producer.on('delivery-report', (error, report) => {
      this.pending--;
      const seq = Number((report.opaque as { seq: number }).seq);
      if (error) this.failed.push(seq);
      else this.delivered.add(seq);
    });
  }

  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.producer.connect({}, (error) => (error ? reject(new Error(error.message)) : resolve())));
    this.producer.setPollInterval(20);
  }

  produce(count: number): void {
    for (let i = 0; i < count; i++) {
      const seq = this.nextSeq++;
      const user = seq % USERS;
      const value = seq % MALFORMED_EVERY === MALFORMED_EVERY - 1 ? `malformed ${seq}` : clickJson(user, base + seq * 10, 'view', { seq });
      this.pending++;
      this.producer.produce(this.topic, null, Buffer.from(value), `u${user}`, Date.now(), { seq });
    }
  }

  get produced(): number {
    return this.nextSeq;
  }

  /** Waits up to `timeoutMs` for the deliveries; says how many never came (not expected in the output). */
  async close(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending > 0 && Date.now() < deadline) await sleep(100);
    const undelivered = this.pending;
    await disconnectProducer(this.producer, 5_000);
    return undelivered;
  }
}

interface Reading {
  /** Output count per valid seq. */
  out: Map<number, number>;
  /** The session context of each output of a valid seq (every copy's): what the sessionizer's state said. */
  sessions: Map<number, { id: string; position: number }[]>;
  /** Dead-letter count per malformed seq. */
  dead: Map<number, number>;
  unexpected: string[];
}

async function readBack(brokers: string, topics: { output: string; dlq: string }, committed: boolean): Promise<Reading> {
  const reading: Reading = { out: new Map(), sessions: new Map(), dead: new Map(), unexpected: [] };
  for (const v of values<{ attrs?: { seq?: number }; session?: { id: string; position: number } }>(await readTopic(brokers, topics.output, { committed, timeoutMs: 60_000 }))) {
    const seq = v.attrs?.seq;
    if (typeof seq !== 'number' || !v.session) {
      reading.unexpected.push(`output without seq or session: ${JSON.stringify(v).slice(0, 200)}`);
      continue;
    }
    reading.out.set(seq, (reading.out.get(seq) ?? 0) + 1);
    const copies = reading.sessions.get(seq) ?? [];
    copies.push({ id: v.session.id, position: v.session.position });
    reading.sessions.set(seq, copies);
  }
  for (const v of values<{ raw?: unknown; reason?: string }>(await readTopic(brokers, topics.dlq, { committed, timeoutMs: 60_000 }))) {
    const match = typeof v.raw === 'string' ? /^malformed (\d+)$/.exec(v.raw) : null;
    if (!match) reading.unexpected.push(`dead letter not from a malformed input: ${JSON.stringify(v).slice(0, 300)}`);
    else reading.dead.set(Number(match[1]), (reading.dead.get(Number(match[1])) ?? 0) + 1);
  }
  return reading;
}

/**
 * Outputs whose session context the sessionizer's state got wrong. Each user's events are 970 ms apart in
 * event time, all in one session (gap 30 min), and in order in their partition: the output of a user's
 * k-th event (k from 0, among the user's events in the output) must say position k, in the session of the
 * user's first event. State restored newer than the offsets read again (input counted twice) makes the
 * positions skip ahead; state lost (a partition started empty) starts a new session at 0.
 */
function stateErrors(reading: Reading): string[] {
  const byUser = new Map<number, number[]>();
  for (const seq of [...reading.out.keys()].sort((a, b) => a - b)) {
    const seqs = byUser.get(seq % USERS) ?? [];
    seqs.push(seq);
    byUser.set(seq % USERS, seqs);
  }
  const errors: string[] = [];
  for (const [user, seqs] of byUser) {
    const first = reading.sessions.get(seqs[0]!)![0]!.id;
    seqs.forEach((seq, rank) => {
      for (const copy of reading.sessions.get(seq)!) {
        if (copy.position !== rank || copy.id !== first) errors.push(`u${user} seq ${seq}: session ${copy.id} position ${copy.position}, expected ${first} position ${rank}`);
      }
    });
  }
  return errors;
}

/** The message of the last error a member logged (its stderr file), for the summary. */
function lastError(logFile: string): string {
  const line = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('{"level":50')).pop();
  if (!line) return 'no error logged';
  const entry = JSON.parse(line) as { msg?: string; err?: string | { message?: string } };
  const err = typeof entry.err === 'string' ? entry.err : entry.err?.message;
  return `${entry.msg ?? ''}${err ? `: ${err}` : ''}`.slice(0, 300);
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const rand = rng(o.seed);
  const t0 = Date.now();
  const clock = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
  const log = (line: string) => console.log(`${clock()} ${line}`);
  const dir = mkdtempSync(join(tmpdir(), `tributary-kafka-chaos-${o.seed}-`));
  log(`seed ${o.seed}, ${o.minutes} min, ${o.mode}, ${o.members} members${o.wholeState ? ' (whole state, no scale_out)' : ''}${o.cooperative ? ', cooperative rebalances' : ''}, ${o.partitions} partitions, ${o.rate} events/s; folder ${dir}`);

  let broker: NativeBroker | undefined;
  let brokers = process.env.KAFKA_BROKERS;
  if (!brokers) {
    broker = await startNativeBroker({ log: (line) => log(line) });
    brokers = broker.brokers;
    log(`native broker at ${brokers}`);
  } else log(`KAFKA_BROKERS=${brokers}: no broker restarts`);
  const suffix = `${o.seed}-${o.mode}-${Date.now().toString(36)}`;
  const topics = { input: `chaos-in-${suffix}`, output: `chaos-out-${suffix}`, dlq: `chaos-dlq-${suffix}` };
  for (const topic of Object.values(topics)) await createTopic(brokers, topic, o.partitions);

  const counts = { sigkill: 0, sigterm: 0, starts: 0, ownExits: 0, brokerRestarts: 0 };
  const failures: string[] = [];
  let stopping = false;
  const members: Member[] = [];
  const onOwnExit = (member: Member, incarnation: Incarnation) => {
    counts.ownExits++;
    const tail = readFileSync(member.logFile, 'utf8').split('\n').filter((l) => l.includes('"level":50') || l.includes('"level":40') || l.includes('rror')).slice(-5).join('\n    ');
    log(`member ${member.name} exited on its own: code ${incarnation.exit?.code} signal ${incarnation.exit?.signal}\n    ${tail}`);
    failures.push(`member ${member.name} exited on its own (code ${incarnation.exit?.code}, signal ${incarnation.exit?.signal}) ${clock()}: ${lastError(member.logFile)}`);
    // A supervisor restarts it.
    if (!stopping) setTimeout(() => member.stopped && !stopping && (counts.starts++, member.start()), 1_000);
  };
  for (let m = 0; m < o.members; m++) {
    const name = String.fromCharCode(97 + m);
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, pipelineYaml(o, topics, name, dir));
    members.push(new Member(name, file, join(dir, `${name}.stderr.log`), brokers, onOwnExit));
  }

  const input = new InputStream(brokers, topics.input);
  await input.connect();
  const perTick = Math.max(1, Math.round(o.rate / 5));
  const producing = setInterval(() => input.produce(perTick), 200);

  const terminations: Promise<void>[] = [];
  const terminate = (member: Member): void => {
    const incarnation = member.current!;
    member.signal('SIGTERM');
    terminations.push(
      (async () => {
        const deadline = incarnation.signalledAt! + SIGTERM_BOUND_MS;
        while (!incarnation.exit && Date.now() < deadline) await sleep(100);
        const took = ((Date.now() - incarnation.signalledAt!) / 1000).toFixed(1);
        if (!incarnation.exit) {
          failures.push(`member ${member.name} did not exit within ${SIGTERM_BOUND_MS / 1000} s of SIGTERM (${clock()}); killed`);
          member.signal('SIGKILL');
        } else if (incarnation.exit.code !== 0) failures.push(`member ${member.name} exited ${incarnation.exit.code} (signal ${incarnation.exit.signal}) ${took} s after SIGTERM (${clock()}): ${lastError(member.logFile)}`);
        log(`member ${member.name}: SIGTERM -> exit ${incarnation.exit?.code ?? 'none'} after ${took} s`);
      })(),
    );
  };

  // Stopped itself (Ctrl-C, a timeout): no member outlives the soak (the broker's watchdog stops the broker).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const member of members) if (member.current && !member.current.exit) member.current.process.kill('SIGKILL');
      process.exit(130);
    });
  }
  try {
    members[0]!.start();
    counts.starts++;
    const end = t0 + o.minutes * 60_000;
    while (Date.now() < end) {
      await sleep(2_000 + rand() * 6_000);
      const draw = rand();
      if (broker && draw < 0.08) {
        const down = 2_000 + rand() * 10_000;
        log(`broker: SIGKILL, down for ${(down / 1000).toFixed(1)} s`);
        await broker.kill();
        await sleep(down);
        const restartAt = Date.now();
        await broker.restart();
        counts.brokerRestarts++;
        log(`broker: restarted, serving after ${((Date.now() - restartAt) / 1000).toFixed(1)} s`);
        continue;
      }
      const running = members.filter((m) => m.running);
      const stopped = members.filter((m) => m.stopped);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
      const action = running.length === 0 ? 'start' : stopped.length === 0 ? (rand() < 0.5 ? 'sigkill' : 'sigterm') : pick(['start', 'start', 'sigkill', 'sigterm'] as const);
      if (action === 'start' && stopped.length > 0) {
        const member = pick(stopped);
        member.start();
        counts.starts++;
        log(`member ${member.name}: start`);
      } else if (action === 'sigkill' && running.length > 0) {
        const member = pick(running);
        member.signal('SIGKILL');
        counts.sigkill++;
        log(`member ${member.name}: SIGKILL`);
      } else if (action === 'sigterm' && running.length > 0) {
        const member = pick(running);
        counts.sigterm++;
        log(`member ${member.name}: SIGTERM`);
        terminate(member);
      }
    }
    clearInterval(producing);
    log(`input stops at ${input.produced} events; waiting for their deliveries`);
    const undelivered = await input.close(120_000);
    if (undelivered > 0) failures.push(`the soak's input producer: ${undelivered} records without a delivery report after 120 s`);
    if (input.failed.length > 0) log(`${input.failed.length} input records failed delivery (not expected in the output)`);
    // The sessionizer holds each event until the watermark passes it (max_out_of_orderness behind the
    // newest): one event a day ahead on every partition lets the last ones out (it stays held itself).
    await produce(brokers, topics.input, Array.from({ length: o.partitions }, (_, partition) => ({ partition, key: `close-${partition}`, value: JSON.stringify({ user_id: `close-${partition}`, time: new Date(base + 86_400_000).toISOString(), type: 'view' }) })));
    await Promise.all(terminations);
    // Members being stopped (SIGKILL sent, or SIGTERM past its bound) end first.
    for (const member of members.filter((m) => !m.stopped && !m.running)) await member.exited();
    for (const member of members.filter((m) => m.stopped)) {
      member.start();
      counts.starts++;
    }
    log('every member runs; draining');
    const valid = [...input.delivered].filter((seq) => seq % MALFORMED_EVERY !== MALFORMED_EVERY - 1);
    const malformed = [...input.delivered].filter((seq) => seq % MALFORMED_EVERY === MALFORMED_EVERY - 1);
    const committed = o.mode === 'exactly-once';
    const drainStart = Date.now();
    let reading = await readBack(brokers, topics, committed);
    const missing = (r: Reading) => valid.filter((s) => !r.out.has(s)).length + malformed.filter((s) => !r.dead.has(s)).length;
    while (missing(reading) > 0 && Date.now() - drainStart < 300_000) {
      log(`draining: ${missing(reading)} inputs not in the output yet`);
      await sleep(5_000);
      reading = await readBack(brokers, topics, committed);
    }
    log(`drained in ${((Date.now() - drainStart) / 1000).toFixed(1)} s (${missing(reading)} missing); stopping the members`);
    stopping = true;
    for (const member of members.filter((m) => m.running)) {
      counts.sigterm++;
      terminate(member);
    }
    await Promise.all(terminations);
    reading = await readBack(brokers, topics, committed);

    const lost = valid.filter((s) => !reading.out.has(s));
    const lostDead = malformed.filter((s) => !reading.dead.has(s));
    const duplicates = [...reading.out.values()].reduce((sum, n) => sum + n - 1, 0);
    const deadDuplicates = [...reading.dead.values()].reduce((sum, n) => sum + n - 1, 0);
    if (lost.length > 0) failures.push(`${lost.length} valid inputs missing from the output, e.g. ${lost.slice(0, 10).join(', ')}`);
    if (lostDead.length > 0) failures.push(`${lostDead.length} malformed inputs missing from the dead letters, e.g. ${lostDead.slice(0, 10).join(', ')}`);
    if (reading.unexpected.length > 0) failures.push(`${reading.unexpected.length} unexpected records, e.g. ${reading.unexpected[0]}`);
    if (committed && duplicates + deadDuplicates > 0) failures.push(`exactly-once: ${duplicates} duplicate outputs, ${deadDuplicates} duplicate dead letters`);
    const wrongState = stateErrors(reading);
    if (wrongState.length > 0) failures.push(`${wrongState.length} outputs with a session context the state got wrong, e.g. ${wrongState.slice(0, 3).join('; ')}`);

    const endings = members.flatMap((m) => m.history.map(ending));
    // Pipelines the daemons restarted in the process (settings.restart), each logged once.
    const logged = (pattern: RegExp): number => members.reduce((sum, m) => sum + (readFileSync(m.logFile, 'utf8').match(pattern)?.length ?? 0), 0);
    const restartsInProcess = logged(/restarting it in \d+ ms/g);
    // Without scale_out, exactly-once: revocations whose offsets a checkpoint committed.
    const handOverCheckpoints = logged(/offsets committed with a checkpoint/g);
    // Scale-out, exactly-once, cooperative: revocations that kept partitions and so took a checkpoint first.
    const revocationCheckpoints = logged(/state handed over after a checkpoint/g);
    const summary = {
      seed: o.seed,
      mode: o.mode,
      minutes: o.minutes,
      members: o.members,
      state: o.wholeState ? 'whole' : 'scale-out',
      rebalances: o.cooperative ? 'cooperative' : 'eager',
      events: input.produced,
      valid: valid.length,
      malformed: malformed.length,
      starts: counts.starts,
      sigkill: counts.sigkill,
      sigterm: counts.sigterm,
      ownExits: endings.filter((e) => e === 'own').length,
      restartsInProcess,
      handOverCheckpoints,
      revocationCheckpoints,
      brokerRestarts: counts.brokerRestarts,
      duplicates,
      deadDuplicates,
      lost: lost.length,
      lostDeadLetters: lostDead.length,
      wrongState: wrongState.length,
      failures,
    };
    console.log(`\n${failures.length === 0 ? 'PASS' : 'FAIL'}: ${input.produced} events (${malformed.length} malformed), ${counts.starts} starts, ${counts.sigkill} SIGKILL, ${counts.sigterm} SIGTERM, ${counts.brokerRestarts} broker restarts, ${restartsInProcess} restarts in process, ${duplicates} duplicate outputs, ${deadDuplicates} duplicate dead letters`);
    for (const failure of failures) console.log(`  - ${failure}`);
    console.log(JSON.stringify(summary));
    if (failures.length > 0 || o.keep) {
      console.log(`member logs kept in ${dir}`);
      return failures.length > 0 ? 1 : 0;
    }
    rmSync(dir, { recursive: true, force: true });
    return 0;
  } finally {
    stopping = true;
    clearInterval(producing);
    for (const member of members) if (member.current && !member.current.exit) member.signal('SIGKILL');
    await broker?.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

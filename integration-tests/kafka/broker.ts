/**
 * A real Apache Kafka broker for the integration tests and the Kafka bench, chosen in this order:
 *
 * 1. `KAFKA_BROKERS` is set: use it as it is (never stopped by us).
 * 2. A Docker engine answers: `@testcontainers/kafka` (a devDependency) starts one.
 * 3. Java is installed: a native single-node KRaft broker from Apache Kafka's own jars, fetched once
 *    by `fetch-broker.sh` (Maven) into `.cache/kafka-libs`, started with `java -cp` on free loopback
 *    ports, with a small heap and log4j writing to a file in its own temp folder. A port another process
 *    takes between its pick and java binding it fails that start at once (java logs it, or another Kafka
 *    broker, another run's, answers there with its own cluster id), and the broker is started again on
 *    fresh ports (three starts in all).
 *
 * A native broker can also authenticate and authorise (`users`): SASL PLAIN users whose rights ACLs grant
 * (`aclCommand`), as a production cluster does, for the tests of what a client may not do.
 *
 * The native broker runs under a tiny shell watchdog that holds a pipe from this process: when the
 * pipe closes (we stop it, or this process dies, even by kill -9), the watchdog stops java and removes
 * the broker's folder, so a failed or killed test run leaves no broker and no log dir behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { inCI } from '../../scripts/ci.js';

export type BrokerMode = 'external' | 'testcontainers' | 'native';

export interface TestBroker {
  mode: BrokerMode;
  /** Bootstrap servers, `host:port[,host:port]`. */
  brokers: string;
  /** Stops the broker (if we started it) and removes its data. */
  stop(): Promise<void>;
}

/** Environment the test processes read: `KAFKA_BROKERS`, or why there is none. */
export const SKIP_ENV = 'TRIBUTARY_KAFKA_SKIP';
export const MODE_ENV = 'TRIBUTARY_KAFKA_MODE';
/**
 * The run's native broker's log folder (`log.dirs`), for tests that change a topic's log segment on
 * disk (damaged record batches): they use the run's broker instead of starting one of their own.
 */
export const DATA_DIR_ENV = 'TRIBUTARY_KAFKA_DATA_DIR';

// dist/integration-tests/kafka/broker.js and integration-tests/kafka/broker.ts both sit two levels
// below their root; the shell script and pom live in the source tree.
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, here.includes(`${'/dist/'}`) ? '../../..' : '../..');
const sourceDir = join(repoRoot, 'integration-tests', 'kafka');
export const defaultLibsDir = process.env.KAFKA_LIBS_DIR ?? join(repoRoot, '.cache', 'kafka-libs');

type Log = (line: string) => void;

/**
 * Finds or starts a broker. Never throws for a missing capability: it returns `skipped` with the
 * reason, and the caller decides (tests skip, or fail when CI=true).
 */
export async function provideBroker(log: Log = (line) => console.error(line)): Promise<{ broker?: TestBroker; skipped?: string }> {
  const external = process.env.KAFKA_BROKERS;
  if (external) {
    log(`kafka: using KAFKA_BROKERS=${external}`);
    return { broker: { mode: 'external', brokers: external, stop: async () => undefined } };
  }
  const reasons: string[] = [];
  if (dockerAnswers()) {
    try {
      const broker = await startContainerBroker();
      log(`kafka: started a testcontainers broker at ${broker.brokers}`);
      return { broker };
    } catch (error) {
      reasons.push(`testcontainers: ${(error as Error).message}`);
    }
  } else {
    reasons.push('no Docker engine answers');
  }
  try {
    const started = Date.now();
    const broker = await startNativeBroker({ log });
    log(`kafka: started a native KRaft broker at ${broker.brokers} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { broker };
  } catch (error) {
    reasons.push(`native broker: ${(error as Error).message}`);
  }
  return { skipped: `no Kafka broker: KAFKA_BROKERS is not set; ${reasons.join('; ')}. ${remedy}` };
}

/** What to do when no broker could be had (the reasons before it say which of these failed). */
const remedy =
  'To run the Kafka tests: set KAFKA_BROKERS=host:port, or start a Docker engine, or install a JDK 17 and Maven ' +
  "(e.g. apt-get install openjdk-17-jdk-headless maven: the broker's jars are fetched once into .cache/kafka-libs); " +
  'the tests that start brokers of their own (outages, ACLs, TLS) need the JDK and Maven in any case.';

/**
 * For scripts/test.mjs: one broker for the whole run. Returns the environment to pass to the test
 * processes (`KAFKA_BROKERS`, or `TRIBUTARY_KAFKA_SKIP` with the reason) and how to stop it.
 */
export async function provideForRun(): Promise<{ env: Record<string, string>; stop: () => Promise<void> }> {
  const { broker, skipped } = await provideBroker();
  if (!broker) {
    console.error(`kafka: ${skipped}${inCI() ? ` (CI=${process.env.CI}: the Kafka tests will fail)` : ' (the Kafka tests will skip)'}`);
    return { env: { [SKIP_ENV]: skipped ?? 'no broker' }, stop: async () => undefined };
  }
  const dataDir: Record<string, string> = broker.mode === 'native' ? { [DATA_DIR_ENV]: (broker as NativeBroker).dataDir } : {};
  return { env: { KAFKA_BROKERS: broker.brokers, [MODE_ENV]: broker.mode, KAFKA_LIBS_DIR: defaultLibsDir, ...dataDir }, stop: () => broker.stop() };
}

function dockerAnswers(): boolean {
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 10_000 });
  return result.status === 0 && result.stdout.trim() !== '';
}

interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

async function startContainerBroker(): Promise<TestBroker> {
  // A devDependency, imported only here: machines without Docker never load it.
  const module = (await import('@testcontainers/kafka')) as unknown as {
    KafkaContainer: new (image: string) => { withKraft(): { start(): Promise<StartedContainer> } };
  };
  const container = await new module.KafkaContainer('confluentinc/cp-kafka:7.9.1').withKraft().start();
  return {
    mode: 'testcontainers',
    brokers: `${container.getHost()}:${container.getMappedPort(9093)}`,
    stop: async () => void (await container.stop()),
  };
}

/** The Kafka version pom.xml fetches; fetch-broker.sh marks a complete cache with `.complete-<version>`. */
export function brokerJarsVersion(): string {
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(join(sourceDir, 'pom.xml'), 'utf8'))?.[1];
  if (!version) throw new Error(`no <kafka.version> in ${join(sourceDir, 'pom.xml')}`);
  return version;
}

/**
 * Runs fetch-broker.sh unless the jar cache is complete for pom.xml's Kafka version (a cache of another
 * version, left from before the pom changed, is fetched again); throws with its output when it fails.
 */
export function ensureBrokerJars(libsDir = defaultLibsDir): void {
  if (existsSync(join(libsDir, `.complete-${brokerJarsVersion()}`))) return;
  const result = spawnSync('bash', [join(sourceDir, 'fetch-broker.sh'), libsDir], { encoding: 'utf8', timeout: 600_000 });
  if (result.status !== 0) {
    const how = result.error ? result.error.message : result.signal ? `killed by ${result.signal}` : `exit ${result.status}`;
    throw new Error(`fetch-broker.sh failed (${how}): ${(result.stderr || result.stdout).trim().slice(-800)}`);
  }
}

export interface NativeBrokerOptions {
  libsDir?: string;
  /** Fixed ports (a restart must reuse them); free loopback ports by default. */
  port?: number;
  controllerPort?: number;
  partitions?: number;
  heap?: string;
  /**
   * The JVM's collector. `serial` (default) is cheapest for the tests; `g1` is how Kafka's own
   * scripts start a broker (kafka-run-class.sh: G1, 20 ms pause goal), for benchmarks: with a 1 GiB
   * heap the serial collector stops the broker for 100-250 ms every few seconds under load.
   */
  gc?: 'serial' | 'g1';
  log?: Log;
  /** How long to wait for the first successful metadata request. */
  startTimeoutMs?: number;
  /**
   * SASL PLAIN users (name: password) and an authorizer (Kafka's StandardAuthorizer): `brokers` then
   * takes SASL (`sasl_plaintext`) and a user may do only what ACLs grant it (`aclCommand`). `plaintext`
   * is a second listener without authentication where every client is a super user, for a test's own
   * setup (topics, records, ACLs).
   */
  users?: Record<string, string>;
  /**
   * Listeners as production clusters secure them, beside the plaintext one `brokers` names (for a test's
   * own setup): `SASL_SSL` taking SCRAM-SHA-256 and SCRAM-SHA-512 users (name: password, stored in the
   * cluster's metadata when it is formatted) and OAUTHBEARER tokens (Kafka's unsecured validator: an
   * unsigned JWS whose `sub` is the principal, with `exp` and `iat`), and `SSL` requiring a client
   * certificate. Certificates are made for the run by `openssl` (a CA, the broker's for 127.0.0.1, a
   * client's with an encrypted key). No authorizer: an authenticated client may do anything.
   */
  secure?: { scramUsers: Record<string, string> };
  /**
   * Picks each port not given above: a free loopback port (`freePort`) by default. A test passes one
   * that returns a port it holds, to see a start whose port was taken retried on fresh ones.
   */
  pickPort?: () => Promise<number>;
}

/** Where a broker started with `secure` takes secured clients, and what they need to trust it and be trusted. */
export interface SecureListeners {
  /** `host:port` of the SASL_SSL listener. */
  saslSsl: string;
  /** `host:port` of the SSL listener (client certificates required). */
  ssl: string;
  /** The CA that signed the broker's certificate and the client's (PEM file). */
  caLocation: string;
  /** A client certificate the SSL listener accepts, its key (PEM files) and the key's password. */
  client: { certificateLocation: string; keyLocation: string; keyPassword: string };
}

/** A native broker that can also be killed and started again on the same ports and data (outage tests). */
export interface NativeBroker extends TestBroker {
  mode: 'native';
  dir: string;
  /** The id its storage was formatted with: what its Metadata answers say, and no other broker's do. */
  clusterId: string;
  /** Its `log.dirs`: a partition's segments are in `<dataDir>/<topic>-<partition>/`. */
  dataDir: string;
  /** Kills java at once (kill -9), keeping its data, as a crash or a network cut would. */
  kill(): Promise<void>;
  /** Starts it again after `kill`, on the same ports and data; resolves when it serves metadata. */
  restart(): Promise<void>;
  /** With `users`: the listener where every client is a super user. */
  plaintext?: string;
  /** The folder of the broker's jars, for Kafka's own tools (`aclCommand`). */
  libsDir: string;
  /** With `secure`: its secured listeners. */
  secure?: SecureListeners;
}

/**
 * Runs Kafka's ACL tool (kafka.admin.AclCommand) against a broker started with `users`, over its
 * super-user listener: `aclCommand(broker, ['--add', '--deny-principal', 'User:alice', '--operation',
 * 'Read', '--topic', 'clicks'])`. Throws with the tool's output when it fails.
 */
export function aclCommand(broker: NativeBroker, args: readonly string[]): void {
  if (!broker.plaintext) throw new Error('aclCommand: the broker was started without users (no authorizer)');
  const jvm = ['-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', `-Dlog4j.configuration=file:${join(broker.dir, 'log4j.properties')}`];
  const result = spawnSync('java', [...jvm, '-cp', `${broker.libsDir}/*`, 'kafka.admin.AclCommand', '--bootstrap-server', broker.plaintext, '--force', ...args], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`AclCommand ${args.join(' ')} failed (${result.status}): ${(result.stderr || result.stdout || String(result.error)).trim().slice(-800)}`);
}

/**
 * Deletes a partition's records before `offset` (Kafka's DeleteRecords: its log start offset moves
 * there), for a group whose committed offset must lie below the log's start; returns the new log start
 * offset. node-rdkafka has no binding for it: integration-tests/kafka/DeleteRecords.java, run by the
 * JDK's `java` with the native broker's jars (`KAFKA_LIBS_DIR`), against any broker.
 */
export function deleteRecordsBefore(brokers: string, topic: string, partition: number, offset: number, libsDir = defaultLibsDir): number {
  ensureBrokerJars(libsDir);
  const jvm = ['-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Dlog4j.configuration=file:/dev/null'];
  const args = [brokers.split(',')[0]!, topic, String(partition), String(offset)];
  const result = spawnSync('java', [...jvm, '-cp', `${libsDir}/*`, join(sourceDir, 'DeleteRecords.java'), ...args], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`DeleteRecords ${args.join(' ')} failed (${result.status}): ${(result.stderr || result.stdout || String(result.error)).trim().slice(-800)}`);
  return Number(result.stdout.trim());
}

/** Java could not bind one of the broker's ports, or another broker answers on it: another process has it. */
class PortTakenError extends Error {
  constructor(
    message: string,
    /** The port, where the broker's log names it. */
    readonly port: number | undefined,
  ) {
    super(message);
  }
}

/** How many times a start whose picked port was taken is tried, each on fresh ports. */
const startsOnFreshPorts = 3;

export async function startNativeBroker(options: NativeBrokerOptions = {}): Promise<NativeBroker> {
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (java.status !== 0) throw new Error(`java not found (${java.error?.message ?? java.stderr.trim()}): a native Kafka broker needs a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)`);
  const libsDir = options.libsDir ?? defaultLibsDir;
  ensureBrokerJars(libsDir);
  // A picked port is free when picked, but java binds it seconds later: another process (another test's
  // broker, a client's ephemeral port) can take it in between, and that start fails. Fresh ports then.
  const fixedPorts = new Set([options.port, options.controllerPort].filter((port) => port !== undefined));
  const failures: string[] = [];
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNativeBrokerOnce(options, libsDir);
    } catch (error) {
      if (!(error instanceof PortTakenError)) throw error;
      failures.push(error.message);
      // A port the caller fixed (a restart's) would be taken again: only picked ones are worth a retry.
      if (error.port !== undefined && fixedPorts.has(error.port)) throw error;
      if (attempt === startsOnFreshPorts) {
        throw new Error(`the native broker could not bind its ports in ${attempt} starts on fresh ports, each taken by another process before java bound it: ${failures.join('; ')}`);
      }
      options.log?.(`kafka: ${error.message}; starting the broker again on fresh ports (start ${attempt + 1} of ${startsOnFreshPorts})`);
    }
  }
}

async function startNativeBrokerOnce(options: NativeBrokerOptions, libsDir: string): Promise<NativeBroker> {
  const pickPort = options.pickPort ?? freePort;
  const port = options.port ?? (await pickPort());
  const controllerPort = options.controllerPort ?? (await pickPort());
  const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-'));
  const dataDir = join(dir, 'data');
  // With users: clients authenticate on `port` (SASL PLAIN) and ACLs decide; the broker's own traffic,
  // the startup check below and a test's setup use a plaintext listener whose clients (ANONYMOUS) are super users.
  const users = options.users;
  if (users && options.secure) throw new Error('startNativeBroker: `users` and `secure` are separate brokers');
  const plaintextPort = users ? await pickPort() : port;
  const secure = options.secure ? { saslSslPort: await pickPort(), sslPort: await pickPort(), tls: makeCertificates(join(dir, 'tls')) } : undefined;
  const listeners = secure
    ? [
        `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort},SASL_SSL://127.0.0.1:${secure.saslSslPort},SSL://127.0.0.1:${secure.sslPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${port},SASL_SSL://127.0.0.1:${secure.saslSslPort},SSL://127.0.0.1:${secure.sslPort}`,
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL',
        'inter.broker.listener.name=PLAINTEXT',
        'ssl.keystore.type=PEM',
        `ssl.keystore.location=${secure.tls.serverKeystore}`,
        'ssl.truststore.type=PEM',
        `ssl.truststore.location=${secure.tls.ca}`,
        'listener.name.ssl.ssl.client.auth=required',
        'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER',
        'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
        'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
        'listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;',
      ]
    : users
    ? [
        `listeners=SASL_PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort},INTERNAL://127.0.0.1:${plaintextPort}`,
        `advertised.listeners=SASL_PLAINTEXT://127.0.0.1:${port},INTERNAL://127.0.0.1:${plaintextPort}`,
        'listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT',
        'inter.broker.listener.name=INTERNAL',
        'sasl.enabled.mechanisms=PLAIN',
        `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${Object.entries(users)
          .map(([name, password]) => `user_${name}="${password}"`)
          .join(' ')};`,
        'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
        'super.users=User:ANONYMOUS',
      ]
    : [
        `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
        'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
        'inter.broker.listener.name=PLAINTEXT',
      ];
  writeFileSync(
    join(dir, 'server.properties'),
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      ...listeners,
      'controller.listener.names=CONTROLLER',
      `log.dirs=${dataDir}`,
      `num.partitions=${options.partitions ?? 4}`,
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=4',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=4',
      // Tests join groups and expect an assignment at once, not after the default 3 s delay.
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=false',
      'log.flush.interval.messages=9223372036854775807',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'log4j.properties'),
    [
      'log4j.rootLogger=INFO, file',
      'log4j.appender.file=org.apache.log4j.FileAppender',
      `log4j.appender.file.File=${join(dir, 'server.log')}`,
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
      '',
    ].join('\n'),
  );
  const classpath = `${libsDir}/*`;
  const gc = options.gc === 'g1' ? ['-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent'] : ['-XX:+UseSerialGC'];
  const jvm = [`-Xmx${options.heap ?? '512m'}`, `-Xms${options.heap ?? '512m'}`, ...gc, `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`, `-Dkafka.logs.dir=${dir}`];
  // SCRAM credentials live in the cluster's metadata: written when it is formatted (KIP-900).
  const scram = Object.entries(options.secure?.scramUsers ?? {}).flatMap(([name, password]) =>
    ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((mechanism) => ['--add-scram', `${mechanism}=[name=${name},password=${password}]`]),
  );
  const clusterId = newClusterId();
  const format = spawnSync('java', [...jvm, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', join(dir, 'server.properties'), ...scram], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (format.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`formatting the KRaft storage failed: ${(format.stderr || format.stdout).trim().slice(-800)}`);
  }

  let watchdog: ChildProcess | undefined;
  const brokers = `127.0.0.1:${port}`;
  const log = options.log ?? (() => undefined);
  const serverLog = join(dir, 'server.log');
  const logSize = (): number => (existsSync(serverLog) ? statSync(serverLog).size : 0);
  // Java logs a port it cannot bind and exits (the watchdog lives on): seen in what this launch logged,
  // the start fails at once instead of waiting out the deadline.
  const portTaken = (loggedBefore: number): PortTakenError | undefined => {
    if (logSize() <= loggedBefore) return undefined;
    const logged = readFileSync(serverLog).subarray(loggedBefore).toString('utf8');
    if (!/Address already in use/.test(logged)) return undefined;
    const at = /failed to bind to ([^\s:]+):(\d+)/.exec(logged);
    return new PortTakenError(`java could not bind ${at ? `${at[1]}:${at[2]}` : 'a port'} (Address already in use)`, at ? Number(at[2]) : undefined);
  };
  const launch = async (): Promise<void> => {
    const loggedBefore = logSize();
    // The watchdog: java in the background; one line on stdin says how to stop ("kill": -9 and keep the
    // data), EOF (we stopped, or died) means a clean stop and removing the folder.
    const script = [
      'java "$@" > "$DIR/stdout.log" 2>&1 &',
      'pid=$!',
      // Killed itself (the test run interrupted): stop java and clean up all the same.
      `trap 'kill -9 $pid 2>/dev/null; rm -rf "$DIR"; exit 1' TERM INT HUP`,
      'IFS= read -r how || how=stop',
      'if [ "$how" = kill ]; then kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; exit 0; fi',
      'kill -TERM $pid 2>/dev/null',
      'for i in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done',
      'kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null',
      'rm -rf "$DIR"',
    ].join('\n');
    watchdog = spawn('sh', ['-c', script, 'kafka-watchdog', ...jvm, '-cp', classpath, 'kafka.Kafka', join(dir, 'server.properties')], {
      env: { ...process.env, DIR: dir },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    // Let this process exit while the broker runs (the pipe, not a ref, ties their lives together).
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
    const deadline = Date.now() + (options.startTimeoutMs ?? 90_000);
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (watchdog.exitCode !== null) break;
      let answer: BrokerMetadata | undefined;
      try {
        answer = await brokerMetadata('127.0.0.1', plaintextPort, 2_000);
      } catch (error) {
        lastError = error;
      }
      // Another run's broker on the port picked for ours (it took the port after the pick) answers at once,
      // before our java fails to bind it: not our broker, so not our start's success. A port taken, as a
      // failed bind is, and the tests never run against (or stop) that broker.
      if (answer && answer.clusterId !== clusterId) {
        throw new PortTakenError(`another Kafka broker answers at 127.0.0.1:${plaintextPort} (cluster ${answer.clusterId ?? '(none)'}, not this start's ${clusterId})`, plaintextPort);
      }
      if (answer && answer.brokers > 0) return;
      const taken = portTaken(loggedBefore);
      if (taken) throw taken;
      await delay(250);
    }
    const tail = existsSync(serverLog) ? readFileSync(serverLog, 'utf8').split('\n').slice(-15).join('\n') : '(no log)';
    log(`kafka: broker log tail:\n${tail}`);
    throw new Error(`the native broker did not answer a metadata request at ${brokers} (${String(lastError)})`);
  };
  const waitExit = async (child: ChildProcess | undefined): Promise<void> => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.ref(); // unref'd while running; while we wait for it, it must keep this process alive
    await new Promise<void>((done) => child.once('exit', () => done()));
  };
  try {
    await launch();
  } catch (error) {
    watchdog?.stdin?.end();
    await waitExit(watchdog);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    mode: 'native',
    brokers,
    dir,
    clusterId,
    dataDir,
    libsDir,
    ...(users ? { plaintext: `127.0.0.1:${plaintextPort}` } : {}),
    ...(secure
      ? {
          secure: {
            saslSsl: `127.0.0.1:${secure.saslSslPort}`,
            ssl: `127.0.0.1:${secure.sslPort}`,
            caLocation: secure.tls.ca,
            client: { certificateLocation: secure.tls.clientCertificate, keyLocation: secure.tls.clientKey, keyPassword: secure.tls.clientKeyPassword },
          },
        }
      : {}),
    async kill() {
      const child = watchdog;
      child?.stdin?.end('kill\n');
      await waitExit(child);
    },
    async restart() {
      await launch();
    },
    async stop() {
      const child = watchdog;
      child?.stdin?.end();
      await waitExit(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A CA, a certificate for the broker at 127.0.0.1 (its key and chain in one PEM file, as Kafka's PEM
 * keystore reads it) and a client certificate whose key is encrypted, made with `openssl` into `dir`.
 */
function makeCertificates(dir: string): { ca: string; serverKeystore: string; clientCertificate: string; clientKey: string; clientKeyPassword: string } {
  mkdirSync(dir, { recursive: true });
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    const result = spawnSync('openssl', args, { encoding: 'utf8', cwd: dir });
    if (result.error) throw new Error(`openssl is needed to make the test broker's certificates: ${result.error.message}`);
    if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${result.status}): ${(result.stderr || result.stdout).trim().slice(-800)}`);
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...key, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=tributary-test-ca');
  const signed = (name: string, subject: string, extensions: string): void => {
    writeFileSync(file(`${name}.ext`), extensions);
    openssl('req', ...key, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', subject);
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`));
  };
  signed('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  signed('client', '/CN=tributary-test-client', 'extendedKeyUsage=clientAuth\n');
  writeFileSync(file('server-keystore.pem'), [file('server.key'), file('server.pem'), file('ca.pem')].map((path) => readFileSync(path, 'utf8')).join(''));
  const clientKeyPassword = 'client-key-secret';
  openssl('pkcs8', '-topk8', '-in', file('client.key'), '-out', file('client-encrypted.key'), '-passout', `pass:${clientKeyPassword}`, '-v2', 'aes-256-cbc');
  return { ca: file('ca.pem'), serverKeystore: file('server-keystore.pem'), clientCertificate: file('client.pem'), clientKey: file('client-encrypted.key'), clientKeyPassword };
}

function newClusterId(): string {
  // A KRaft cluster id is a base64url-encoded UUID (22 characters), as `kafka-storage random-uuid` prints.
  // Like Kafka's Uuid.randomUuid, never one starting with '-' (1 in 64): the storage tool's argument
  // parser reads it as an option and formatting fails.
  for (;;) {
    const id = Buffer.from(randomUUID().replace(/-/g, ''), 'hex').toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** What a broker's Metadata answer says of its cluster. */
export interface BrokerMetadata {
  /** How many brokers it lists. */
  brokers: number;
  /** Its cluster's id (a KRaft broker's: the id its storage was formatted with). */
  clusterId: string | undefined;
}

/**
 * Sends a Kafka Metadata request (v4, no topics) over a plain socket and returns how many brokers the
 * answer lists and the cluster id it gives: the protocol-level readiness check, with no client library
 * needed in the test runner (node-rdkafka's metadata has no cluster id). The cluster id tells our broker
 * from another one listening on the same port.
 */
export function brokerMetadata(host: string, port: number, timeoutMs: number): Promise<BrokerMetadata> {
  return new Promise((resolveMetadata, reject) => {
    const clientId = Buffer.from('tributary-probe');
    const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1);
    let at = 0;
    at = body.writeInt16BE(3, at); // api key: Metadata
    at = body.writeInt16BE(4, at); // api version 4: a cluster id (v2+), not yet flexible (v9+)
    at = body.writeInt32BE(7, at); // correlation id
    at = body.writeInt16BE(clientId.length, at);
    at += clientId.copy(body, at);
    at = body.writeInt32BE(0, at); // topics: an empty array (v1+: none)
    body.writeInt8(0, at); // allow_auto_topic_creation: false
    const size = Buffer.alloc(4);
    size.writeInt32BE(body.length);
    const socket = createConnection({ host, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('metadata request timed out')), timeoutMs);
    socket.once('connect', () => socket.write(Buffer.concat([size, body])));
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      if (all.length < 4 || all.length < 4 + all.readInt32BE(0)) return;
      clearTimeout(timer);
      socket.destroy();
      try {
        resolveMetadata(parseMetadataV4(all.subarray(4, 4 + all.readInt32BE(0))));
      } catch (error) {
        // Not a Metadata v4 answer (not a Kafka broker): nothing the harness can use.
        reject(new Error(`not a Kafka Metadata answer: ${(error as Error).message}`));
      }
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // Closed by the other end before an answer (a broker starting or stopping, or not a broker): settled
    // here, or the caller's wait would never end (the timer is cleared). After an answer or an error, a no-op.
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('the connection closed before a metadata answer'));
    });
  });
}

/** A Metadata v4 response after its size: correlation id, throttle time, brokers, cluster id. Throws past its end. */
function parseMetadataV4(response: Buffer): BrokerMetadata {
  let at = 0;
  const int32 = (): number => {
    const value = response.readInt32BE(at);
    at += 4;
    return value;
  };
  const nullableString = (): string | undefined => {
    const length = response.readInt16BE(at);
    at += 2;
    if (length < 0) return undefined;
    if (at + length > response.length) throw new RangeError('a string runs past the answer');
    const value = response.toString('utf8', at, at + length);
    at += length;
    return value;
  };
  if (int32() !== 7) throw new Error('unexpected correlation id');
  int32(); // throttle_time_ms
  const brokers = int32();
  if (brokers < 0) throw new RangeError('a negative broker count');
  for (let broker = 0; broker < brokers; broker++) {
    int32(); // node_id
    nullableString(); // host
    int32(); // port
    nullableString(); // rack
  }
  return { brokers, clusterId: nullableString() };
}

// `node dist/integration-tests/kafka/broker.js`: start a broker, print its address, stop on Ctrl-C.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { broker, skipped } = await provideBroker();
  if (!broker) {
    console.error(skipped);
    process.exit(1);
  }
  console.log(broker.brokers);
  const stop = (): void => void broker.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  setInterval(() => undefined, 1 << 30);
}

/**
 * The native test broker's jar cache (integration-tests/kafka/fetch-broker.sh and ensureBrokerJars),
 * with a stand-in `mvn` first on PATH: it notes its pid, waits for a `release` file, then "downloads"
 * one jar into the folder it is given. No network, no Kafka.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from 'tributary/testing';
import { brokerJarsVersion, ensureBrokerJars, provideBroker } from '../integration-tests/kafka/broker.js';

const repo = new URL('../..', import.meta.url).pathname;
const fetchScript = join(repo, 'integration-tests', 'kafka', 'fetch-broker.sh');

interface StubMaven {
  dir: string;
  /** Where the cache goes (what fetch-broker.sh is given). */
  libs: string;
  env: NodeJS.ProcessEnv;
  /** The stand-in's pids, one a run. */
  runs(): number[];
  release(): void;
}

function stubMaven(t: TestContext): StubMaven {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-broker-jars-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'mvn'),
    [
      '#!/usr/bin/env bash',
      'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#-DoutputDirectory=}";; esac; done',
      'echo $$ >> "$STUB_DIR/mvn.pids"',
      'while [ ! -e "$STUB_DIR/release" ]; do sleep 0.02; done',
      'mkdir -p "$out" && echo jar > "$out/kafka_2.13-stub.jar"',
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'mvn'), 0o755);
  const stub: StubMaven = {
    dir,
    libs: join(dir, 'kafka-libs'),
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, STUB_DIR: dir },
    runs: () => (existsSync(join(dir, 'mvn.pids')) ? readFileSync(join(dir, 'mvn.pids'), 'utf8').trim().split('\n').map(Number) : []),
    release: () => writeFileSync(join(dir, 'release'), ''),
  };
  t.after(() => {
    stub.release();
    for (const pid of stub.runs()) if (running(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return stub;
}

/** Whether a process runs (a zombie, exited but not yet reaped, does not). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

function fetchJars(stub: StubMaven): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn('bash', [fetchScript, stub.libs], { env: stub.env, stdio: 'ignore' });
  return { child, exit: new Promise((done) => child.once('exit', (code, signal) => done(code ?? 128 + constants.signals[signal!]))) };
}

test('a cache marked complete for another Kafka version than pom.xml names is fetched again, not used', (t) => {
  const stub = stubMaven(t);
  stub.release();
  mkdirSync(stub.libs);
  writeFileSync(join(stub.libs, '.complete-0.0.1'), '');
  writeFileSync(join(stub.libs, 'kafka_2.13-0.0.1.jar'), 'old');
  const path = process.env.PATH;
  process.env.PATH = stub.env.PATH;
  process.env.STUB_DIR = stub.dir;
  t.after(() => {
    process.env.PATH = path;
    delete process.env.STUB_DIR;
  });
  ensureBrokerJars(stub.libs);
  assert.equal(stub.runs().length, 1, 'Maven ran');
  assert.deepEqual(readdirSync(stub.libs).sort(), [`.complete-${brokerJarsVersion()}`, 'kafka_2.13-stub.jar']);
  ensureBrokerJars(stub.libs);
  assert.equal(stub.runs().length, 1, 'a complete cache is used as it is');
});

test('two fetches at once (parallel test files, two runs sharing a cache) run Maven once and leave one complete cache', async (t) => {
  const stub = stubMaven(t);
  const first = fetchJars(stub);
  await until(() => stub.runs().length === 1, 'the first fetch to start Maven', 30_000);
  const second = fetchJars(stub);
  // The second either waits for the first (a request for the lock file's lock, blocked: `->` in /proc/locks) or runs Maven too.
  const waitsForLock = (): boolean => {
    const lock = `${stub.libs}.lock`;
    if (!existsSync(lock)) return false;
    const inode = `:${statSync(lock).ino} `;
    return readFileSync('/proc/locks', 'utf8').split('\n').some((line) => line.includes('->') && line.includes(inode));
  };
  await until(() => stub.runs().length === 2 || waitsForLock(), 'the second fetch to wait or start Maven', 30_000);
  stub.release();
  assert.deepEqual(await Promise.all([first.exit, second.exit]), [0, 0]);
  assert.equal(stub.runs().length, 1, 'Maven ran once');
  assert.deepEqual(readdirSync(stub.libs).sort(), [`.complete-${brokerJarsVersion()}`, 'kafka_2.13-stub.jar']);
  assert.deepEqual(readdirSync(stub.dir).filter((name) => name.includes('.tmp.')), [], 'no half-fetched folder left');
});

test('a fetch stopped by SIGTERM (a timeout) stops Maven and leaves nothing the next run would trust', async (t) => {
  const stub = stubMaven(t);
  const fetch = fetchJars(stub);
  await until(() => stub.runs().length === 1, 'the fetch to start Maven', 30_000);
  fetch.child.kill('SIGTERM');
  assert.equal(await fetch.exit, 143);
  const [maven] = stub.runs();
  await until(() => !running(maven!), 'Maven to be stopped', 10_000);
  assert.equal(existsSync(stub.libs), false, 'no cache');
  assert.deepEqual(readdirSync(stub.dir).filter((name) => name.includes('.tmp.')), [], 'no half-fetched folder left');
});

test('without KAFKA_BROKERS, Docker or Java, the reason the Kafka tests skip (or fail in CI) says what to install or set', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'tributary-no-java-'));
  const saved = { PATH: process.env.PATH, KAFKA_BROKERS: process.env.KAFKA_BROKERS };
  process.env.PATH = empty;
  delete process.env.KAFKA_BROKERS;
  t.after(() => {
    process.env.PATH = saved.PATH;
    if (saved.KAFKA_BROKERS !== undefined) process.env.KAFKA_BROKERS = saved.KAFKA_BROKERS;
    rmSync(empty, { recursive: true, force: true });
  });
  const { broker, skipped } = await provideBroker(() => undefined);
  assert.equal(broker, undefined);
  assert.match(skipped!, /java not found[^]*JDK 17/);
  assert.match(skipped!, /set KAFKA_BROKERS=host:port, or start a Docker engine, or install a JDK 17 and Maven/);
});

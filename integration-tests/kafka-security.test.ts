/**
 * The `kafka` source and sink against a broker secured as production clusters are: TLS with a
 * certificate the client must verify, SASL SCRAM (SHA-256 and SHA-512) and OAUTHBEARER over TLS, and
 * TLS with client certificates. Each runs a whole pipeline (`tributary run`, as a daemon does) from a
 * topic to a topic through the secured listener, its secrets from the environment, and checks every
 * record came through and no secret reached the logs (debug level). One broker of the file's own (the
 * run's broker has no secured listener), started once.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { spawnTributary, tempFolder, testContext, until, type TestCleanup } from 'tributary/testing';
import type { SinkPlugin } from 'tributary';
import kafkaSink, { type KafkaSinkConfig } from '../plugins/kafka/sink.js';
import type { SecurityConfig } from '../plugins/kafka/common.js';
import { kafkaBrokers, uniqueTopic, waitFor } from './kafka/env.js';
import { clickJson, createTopic, produce, readTopic, startSource, values } from './kafka/client.js';
import { startNativeBroker, type NativeBroker } from './kafka/broker.js';

/** A run's time from its first log line to its end (40 records through SASL/TLS, then the end of its input): its own work, after the start SPAWNED_START_MS bounds. */
const RUN_TO_END_MS = 60_000;
const base = Date.parse('2024-05-01T00:00:00Z');
const scramPassword = 'alice-scram-secret';

let started: Promise<NativeBroker> | undefined;
/** The file's secured broker, started by the first test that runs. */
function secureBroker(): Promise<NativeBroker> {
  started ??= startNativeBroker({ partitions: 2, secure: { scramUsers: { alice: scramPassword } } });
  return started;
}
after(async () => {
  if (started) await (await started).stop();
});

/** Topics of the test's own with `count` records in the input, produced over the plaintext listener. */
async function topics(broker: NativeBroker, name: string, count: number): Promise<{ input: string; output: string }> {
  const input = uniqueTopic(`sec-${name}-in`);
  const output = uniqueTopic(`sec-${name}-out`);
  await createTopic(broker.brokers, input, 2);
  await createTopic(broker.brokers, output, 2);
  await produce(broker.brokers, input, Array.from({ length: count }, (_, i) => ({ key: `u${i % 7}`, value: clickJson(i % 7, base + i, 'view', { seq: i }) })));
  return { input, output };
}

interface Run {
  /** Its exit code, or the signal that ended it. */
  code: number | NodeJS.Signals | null;
  logs: string;
  /** Where the logs are kept, for a failure to name. */
  logFile: string;
}

/**
 * Runs `tributary run` on a pipeline from `input` to `output` whose source and sink take `security`
 * (YAML flow maps, `${VAR}`s read from `env`), at debug level; resolves with its exit code and logs.
 * Bounded as every spawned run: its start by SPAWNED_START_MS (started()), then its run to the end by
 * {@link RUN_TO_END_MS}; one still running then is killed as the test ends (spawnTributary).
 */
async function runPipeline(t: TestCleanup, name: string, brokers: string, input: string, output: string, security: { source: string; sink: string }, env: Record<string, string>): Promise<Run> {
  const dir = tempFolder(t, 'kafka-security');
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `name: kafka-security-${name}
sources:
  - { type: kafka, brokers: "${brokers}", topics: [${input}], group: g-${input}, start_from: earliest, stop_at_end: true, mapping: { attributes: [seq] }, security: ${security.source} }
sinks:
  - { type: kafka, brokers: "${brokers}", topic: ${output}, key_field: userId, security: ${security.sink} }
`,
  );
  const run = spawnTributary(t, ['run', file, '--log-level', 'debug'], { cwd: dir, env: { ...process.env, ...env }, stdout: true });
  let stdout = '';
  run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  let code: number | NodeJS.Signals | null | undefined;
  void run.exited.then((end) => (code = end));
  const logFile = join(dir, 'run.log');
  try {
    await run.started(() => code !== undefined || run.stderr !== '', 'its first log line');
    await until(() => code !== undefined, 'the run to its end', RUN_TO_END_MS);
  } catch (error) {
    throw new Error(`${(error as Error).message} (logs: ${logFile})`);
  } finally {
    writeFileSync(logFile, stdout + run.stderr);
  }
  return { code: code!, logs: stdout + run.stderr, logFile };
}

/** Every input record came out (by its `seq` attribute), and none of `secrets` is in the logs. */
async function assertThrough(broker: NativeBroker, output: string, count: number, run: Run, secrets: readonly string[]): Promise<void> {
  assert.equal(run.code, 0, `the pipeline ran to its end (logs: ${run.logFile})`);
  const out = values<{ attrs?: { seq?: number } }>(await readTopic(broker.brokers, output, { expect: count }));
  assert.deepEqual(
    out.map((event) => event.attrs?.seq).sort((a, b) => a! - b!),
    Array.from({ length: count }, (_, i) => i),
    `every record came through (logs: ${run.logFile})`,
  );
  assert.match(run.logs, /kafka source configured/, 'debug logs were written (the check below reads them)');
  for (const secret of secrets) assert.ok(!run.logs.includes(secret), `a secret is in the logs: ${secret.slice(0, 12)}…`);
}

test('SASL SCRAM-SHA-512 and SCRAM-SHA-256 over TLS: a pipeline reads and writes through the secured listener, the password and CA from the environment', async (t) => {
  if (!kafkaBrokers(t)) return;
  const broker = await secureBroker();
  const secure = broker.secure!;
  const { input, output } = await topics(broker, 'scram', 40);
  const scram = (mechanism: string, tls: string) => `{ protocol: sasl_ssl, sasl: { mechanism: ${mechanism}, username: alice, password: "\${KAFKA_PASSWORD}" }, tls: ${tls} }`;
  const caPem = readFileSync(secure.caLocation, 'utf8');
  const run = await runPipeline(
    t,
    'scram',
    secure.saslSsl,
    input,
    output,
    // The source trusts the CA by file, the sink by its PEM text (a secret store hands out text, not files).
    { source: scram('SCRAM-SHA-512', `{ ca_location: "${secure.caLocation}" }`), sink: scram('SCRAM-SHA-256', '{ ca_pem: "${KAFKA_CA_PEM}" }') },
    { KAFKA_PASSWORD: scramPassword, KAFKA_CA_PEM: caPem },
  );
  await assertThrough(broker, output, 40, run, [scramPassword]);
});

test('OAUTHBEARER over TLS: tokens from the OIDC token endpoint (client credentials), a pipeline reads and writes with them', async (t) => {
  if (!kafkaBrokers(t)) return;
  const broker = await secureBroker();
  const secure = broker.secure!;
  const { input, output } = await topics(broker, 'oauth', 30);
  // An identity provider: client credentials in, an unsigned JWT out (the broker's unsecured validator
  // takes `alg: none`; a real one would check a signature, which is the broker's business, not ours).
  const requests: { authorization?: string; body: string }[] = [];
  const tokens: string[] = [];
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const provider = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      requests.push({ authorization: request.headers.authorization, body });
      const now = Math.floor(Date.now() / 1000);
      const token = `${encode({ alg: 'none' })}.${encode({ sub: 'alice', iat: now, exp: now + 3600, scope: 'kafka' })}.`;
      tokens.push(token);
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 3600 }));
    });
  });
  await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => provider.close(() => resolve())));
  const endpoint = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/token`;
  const oauth = `{ protocol: sasl_ssl, sasl: { mechanism: OAUTHBEARER, oauthbearer: { token_endpoint_url: "${endpoint}", client_id: tributary, client_secret: "\${IDP_SECRET}", scope: kafka } }, tls: { ca_location: "${secure.caLocation}" } }`;
  const idpSecret = 'idp-client-secret-42';
  const run = await runPipeline(t, 'oauth', secure.saslSsl, input, output, { source: oauth, sink: oauth }, { IDP_SECRET: idpSecret });
  await assertThrough(broker, output, 30, run, [idpSecret, Buffer.from(`tributary:${idpSecret}`).toString('base64'), ...tokens]);
  // The source's consumer and the sink's producer each asked for a token, as RFC 6749 4.4 says.
  assert.ok(requests.length >= 2, `token requests: ${requests.length}`);
  for (const request of requests) {
    assert.equal(request.authorization, `Basic ${Buffer.from(`tributary:${idpSecret}`).toString('base64')}`);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(request.body)), { grant_type: 'client_credentials', scope: 'kafka' });
  }
});

test('TLS with client certificates: a pipeline reads and writes with a certificate whose key is encrypted, by file and by PEM text', async (t) => {
  if (!kafkaBrokers(t)) return;
  const broker = await secureBroker();
  const secure = broker.secure!;
  const { input, output } = await topics(broker, 'mtls', 25);
  const client = secure.client;
  const run = await runPipeline(
    t,
    'mtls',
    secure.ssl,
    input,
    output,
    {
      source: `{ protocol: ssl, tls: { ca_location: "${secure.caLocation}", certificate_location: "${client.certificateLocation}", key_location: "${client.keyLocation}", key_password: "\${KEY_PASSWORD}" } }`,
      sink: '{ protocol: ssl, tls: { ca_pem: "${CA_PEM}", certificate_pem: "${CERT_PEM}", key_pem: "${KEY_PEM}", key_password: "${KEY_PASSWORD}" } }',
    },
    { KEY_PASSWORD: client.keyPassword, CA_PEM: readFileSync(secure.caLocation, 'utf8'), CERT_PEM: readFileSync(client.certificateLocation, 'utf8'), KEY_PEM: readFileSync(client.keyLocation, 'utf8') },
  );
  const keyBody = readFileSync(client.keyLocation, 'utf8').split('\n')[1]!;
  await assertThrough(broker, output, 25, run, [client.keyPassword, keyBody]);
});

test('a wrong password, a CA that did not sign the broker\'s certificate, a SASL mechanism not enabled, no TLS where the listener takes it, no client certificate: the source is not ready, saying which, and a sink\'s start fails saying why (librdkafka says it only in its log)', async (t) => {
  if (!kafkaBrokers(t)) return;
  const broker = await secureBroker();
  const secure = broker.secure!;
  const { input } = await topics(broker, 'refused', 1);
  const cases: { what: string; brokers: string; security: SecurityConfig; cause: RegExp }[] = [
    {
      what: 'a wrong SCRAM password',
      brokers: secure.saslSsl,
      security: { protocol: 'sasl_ssl', sasl: { mechanism: 'SCRAM-SHA-512', username: 'alice', password: 'not-the-password' }, tls: { ca_location: secure.caLocation } },
      cause: /SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512/,
    },
    {
      what: 'a CA that did not sign the broker\'s certificate',
      brokers: secure.saslSsl,
      security: { protocol: 'sasl_ssl', sasl: { mechanism: 'SCRAM-SHA-512', username: 'alice', password: scramPassword }, tls: { ca_location: secure.client.certificateLocation } },
      cause: /SSL handshake failed: .*certificate verify failed/,
    },
    {
      what: 'a SASL mechanism the brokers do not enable',
      brokers: secure.saslSsl,
      security: { protocol: 'sasl_ssl', sasl: { mechanism: 'PLAIN', username: 'alice', password: scramPassword }, tls: { ca_location: secure.caLocation } },
      cause: /Unsupported SASL mechanism: broker's supported mechanisms: .*SCRAM-SHA-512.*\): the brokers do not enable this SASL mechanism: set security.sasl.mechanism/,
    },
    {
      what: 'no TLS against a listener that takes it',
      brokers: secure.saslSsl,
      security: { protocol: 'sasl_plaintext', sasl: { mechanism: 'SCRAM-SHA-512', username: 'alice', password: scramPassword } },
      cause: /sasl_plaintext:\/\/.*Disconnected.*APIVERSION_QUERY.*\): the brokers closed the connection at its first request and have answered none since the start, likely a listener that takes TLS: set security.protocol to ssl or sasl_ssl/,
    },
    {
      what: 'no client certificate where the listener requires one',
      brokers: secure.ssl,
      security: { protocol: 'ssl', tls: { ca_location: secure.caLocation } },
      cause: /bad certificate/,
    },
  ];
  // A sink given the wrong password: not ready while it connects, saying why; its start fails so (after 30 s, meanwhile the source cases run).
  const sinkContext = testContext();
  const sink = await (kafkaSink as SinkPlugin<KafkaSinkConfig>).create(
    { brokers: secure.saslSsl, topic: input, security: cases[0]!.security, key_field: 'userId', guarantee: 'at-least-once', transaction_timeout: '10s', compression: 'lz4', linger: '5ms', batch_size: 10_000, max_in_flight: 100_000 },
    sinkContext,
  );
  const opening = sink.open!();
  opening.catch(() => undefined);
  await waitFor('the sink not ready while it connects, saying why', () => /^connecting to the brokers \(.*SASL authentication error: Authentication failed/.test(sink.health!().detail ?? ''), 20_000);
  for (const { what, brokers, security, cause } of cases) {
    const instance = await startSource(brokers, input, `g-${input}-${cases.findIndex((c) => c.what === what)}`, new Set(), undefined, { security });
    try {
      await waitFor(`not ready, saying why (${what})`, () => cause.test(instance.health!().detail ?? ''), 30_000);
      assert.equal(instance.health!().ready, false);
      // Its first connect says why as soon as librdkafka logged it (`connecting (...)`), before the try gives up.
      assert.match(instance.health!().detail!, /^(connecting \(|(cannot connect|broker unreachable): )/, what);
    } finally {
      await instance.close();
    }
  }
  await assert.rejects(opening, (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_SINK');
    assert.match(error.message, /^kafka sink: cannot connect to the brokers: broker transport failure \(.*SASL authentication error: Authentication failed during authentication due to invalid credentials/);
    return true;
  });
  await sink.close();
});

/**
 * Security settings reach librdkafka as its own properties, librdkafka accepts them, and no secret
 * reaches a log line. (Authenticating against a SASL/TLS broker: integration-tests/kafka-security.test.ts.)
 */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import type * as RdKafka from 'node-rdkafka';
import { inputHandedOver, TributaryError } from 'tributary';
import { brokersUnreachable, checkpointLogGone, LookupLane, lookupOverdueMs, throughLookupLane, connectionBurstMs, ConnectionFailures, ErrorCode, outageSettleMs, flushProducer, inOutage, isBrokersDown, isTimedOut, isUnknownTopicOrPartition, librdkafkaConnection, maxWarnedErrors, neverReachedWaitMs, OidcTokens, provideOauthToken, rdkafka, redactProperties, refusalEpisodeGapMs, stoppedUnreachable, type ConnectionConfig } from './common.js';

const scram: ConnectionConfig = {
  brokers: ['kafka-1:9093', 'kafka-2:9093'],
  security: { sasl: { mechanism: 'SCRAM-SHA-512', username: 'shop', password: 's3cret' }, tls: { verify_hostname: false } },
};
const oauth: ConnectionConfig = {
  brokers: 'kafka:9093',
  client_id: 'shop-intent',
  security: {
    protocol: 'sasl_ssl',
    sasl: { mechanism: 'OAUTHBEARER', oauthbearer: { token_endpoint_url: 'https://idp.example/token', client_id: 'tributary', client_secret: 'idp-secret', scope: 'kafka' } },
  },
};

test('SASL and TLS settings map to librdkafka properties (sasl_ssl by default with SASL, hostname checks on unless turned off)', () => {
  assert.deepEqual(librdkafkaConnection(scram, 'tributary-p-s'), {
    'metadata.broker.list': 'kafka-1:9093,kafka-2:9093',
    'client.id': 'tributary-p-s',
    'broker.address.family': 'v4',
    'security.protocol': 'sasl_ssl',
    'sasl.mechanisms': 'SCRAM-SHA-512',
    'sasl.username': 'shop',
    'sasl.password': 's3cret',
    'ssl.endpoint.identification.algorithm': 'none',
  });
  const props = librdkafkaConnection(oauth, 'unused');
  assert.equal(props['client.id'], 'shop-intent');
  assert.equal(props['sasl.oauthbearer.method'], 'oidc');
  assert.equal(props['sasl.oauthbearer.token.endpoint.url'], 'https://idp.example/token');
  assert.equal(props['sasl.oauthbearer.client.secret'], 'idp-secret');
  assert.equal(props['sasl.oauthbearer.scope'], 'kafka');
  const tls = librdkafkaConnection({ brokers: 'k:9093', security: { protocol: 'ssl', tls: { ca_location: '/etc/ca.pem', key_password: 'kp' } } }, 'c');
  assert.equal(tls['security.protocol'], 'ssl');
  assert.equal(tls['ssl.ca.location'], '/etc/ca.pem');
  assert.equal(tls['ssl.endpoint.identification.algorithm'], 'https');
  assert.equal(librdkafkaConnection({ brokers: 'k:9092' }, 'c')['security.protocol'], undefined, 'no security section: librdkafka defaults (plaintext)');
});

test('librdkafka (this build) accepts the PLAIN, SCRAM and OAUTHBEARER settings as generated for it', async () => {
  const Kafka = await rdkafka();
  for (const config of [scram, oauth, { brokers: 'k:9093', security: { sasl: { mechanism: 'PLAIN' as const, username: 'u', password: 'p' } } }]) {
    // Construction is where librdkafka validates its configuration (unknown or unsupported values throw).
    const consumer = new Kafka.KafkaConsumer({ ...librdkafkaConnection(config, 'c', Kafka.features), 'group.id': 'g' } as never, {});
    const producer = new Kafka.Producer(librdkafkaConnection(config, 'c', Kafka.features) as never);
    assert.ok(consumer && producer);
  }
  // node-rdkafka's bundled librdkafka has no OIDC (no libcurl): the OIDC properties are then left out
  // and Tributary fetches the tokens (next test).
  if (!Kafka.features.includes('oidc')) assert.equal(librdkafkaConnection(oauth, 'c', Kafka.features)['sasl.oauthbearer.method'], undefined);
});

test('OIDC client credentials: the token is fetched with basic auth and handed to the client, and a refresh hands over the next', async () => {
  const requests: { authorization: string | undefined; body: string }[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      requests.push({ authorization: request.headers.authorization, body });
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ access_token: `token-${requests.length}`, token_type: 'Bearer', expires_in: 300 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  const errors: Error[] = [];
  const tokens = new OidcTokens({ token_endpoint_url: url, client_id: 'tributary', client_secret: 'idp-secret', scope: 'kafka' }, (error) => errors.push(error));
  try {
    const received: string[] = [];
    await tokens.attach({ setOauthBearerToken: (token) => received.push(token) });
    assert.deepEqual(received, ['token-1']);
    assert.equal(requests[0]!.authorization, `Basic ${Buffer.from('tributary:idp-secret').toString('base64')}`);
    assert.equal(requests[0]!.body, 'grant_type=client_credentials&scope=kafka');
    await tokens.refresh();
    assert.deepEqual(received, ['token-1', 'token-2']);
    // A real client takes the token before it connects.
    const Kafka = await rdkafka();
    const config = { ...oauth, security: { ...oauth.security!, sasl: { ...oauth.security!.sasl!, oauthbearer: { ...oauth.security!.sasl!.oauthbearer!, token_endpoint_url: url } } } };
    const consumer = new Kafka.KafkaConsumer({ ...librdkafkaConnection(config, 'c', Kafka.features), 'group.id': 'g' } as never, {});
    const stop = await provideOauthToken(consumer, config, Kafka.features.filter((f) => f !== 'oidc'), (error) => errors.push(error));
    stop();
    assert.equal(requests.length, 3);
    assert.deepEqual(errors, []);
  } finally {
    tokens.stop();
    server.close();
  }
});

test('an OIDC endpoint that refuses is an error naming it', async () => {
  const server = createServer((_request, response) => {
    response.statusCode = 401;
    response.end('{"error":"invalid_client"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  const tokens = new OidcTokens({ token_endpoint_url: url, client_id: 'x', client_secret: 'y' }, () => undefined);
  try {
    await assert.rejects(tokens.attach({ setOauthBearerToken: () => undefined }), new RegExp(`token endpoint ${url} answered HTTP 401`));
  } finally {
    tokens.stop();
    server.close();
  }
});

test('an OIDC endpoint URL carrying a credential (user info, a client_secret in its query) is named without it in the errors, which reach the logs and /readyz (was whole)', async () => {
  const server = createServer((_request, response) => {
    response.statusCode = 401;
    response.end('{"error":"invalid_client"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  const said = async (url: string): Promise<string> => {
    const tokens = new OidcTokens({ token_endpoint_url: url, client_id: 'x', client_secret: 'y' }, () => undefined);
    try {
      let message = '';
      await assert.rejects(tokens.attach({ setOauthBearerToken: () => undefined }), (error: Error) => ((message = error.message), true));
      return message;
    } finally {
      tokens.stop();
    }
  };
  try {
    assert.equal(await said(`${base}?audience=kafka&client_secret=qs-s3cret`), `OAUTHBEARER token endpoint ${base}?audience=kafka&client_secret=[redacted] answered HTTP 401`);
    // fetch refuses a URL with user info, quoting it whole.
    const withUser = await said(base.replace('http://', 'http://svc:pw-s3cret@'));
    assert.ok(!withUser.includes('pw-s3cret') && !withUser.includes('svc:'), withUser);
    assert.match(withUser, /includes credentials: http:\/\/\[redacted\]@127\.0\.0\.1:\d+\/token$/);
  } finally {
    server.close();
  }
});

test('a start whose first token fetch fails leaves no refresh running (each daemon restart left one, asking the endpoint every 10 s for good)', async () => {
  const server = createServer((_request, response) => {
    response.statusCode = 401;
    response.end('{"error":"invalid_client"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  const config = { ...oauth, security: { ...oauth.security!, sasl: { ...oauth.security!.sasl!, oauthbearer: { ...oauth.security!.sasl!.oauthbearer!, token_endpoint_url: url } } } };
  // The retry timers the failed start sets (10 s after a failed fetch), and those cleared.
  const retries: unknown[] = [];
  const cleared = new Set<unknown>();
  const { setTimeout: realSetTimeout, clearTimeout: realClearTimeout } = globalThis;
  mock.method(globalThis, 'setTimeout', (callback: () => void, ms?: number) => {
    const timer = realSetTimeout(callback, ms);
    if (ms === 10_000) retries.push(timer);
    return timer;
  });
  mock.method(globalThis, 'clearTimeout', (timer?: NodeJS.Timeout) => {
    cleared.add(timer);
    realClearTimeout(timer);
  });
  try {
    await assert.rejects(provideOauthToken({ setOauthBearerToken: () => undefined }, config, [], () => undefined), /answered HTTP 401/);
    assert.ok(retries.length > 0, 'the failed fetch scheduled a retry');
    assert.ok(retries.every((timer) => cleared.has(timer)), 'and the failed start stopped it');
  } finally {
    mock.restoreAll();
    server.close();
  }
});

test('a refresh under way when the client stops schedules no next one (each daemon restart that met one left a refresh asking the endpoint for good)', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  let fetches = 0;
  const answers: ((outcome: 'token' | 'refused') => void)[] = [];
  // The endpoint answers when told to: the stop comes while a refresh waits for it.
  const fetchToken = (async () => {
    fetches++;
    const outcome = await new Promise<'token' | 'refused'>((resolve) => answers.push(resolve));
    if (outcome === 'refused') return new Response('{"error":"unavailable"}', { status: 503 });
    return Response.json({ access_token: `token-${fetches}`, expires_in: 300 });
  }) as typeof fetch;
  for (const outcome of ['token', 'refused'] as const) {
    fetches = 0;
    const tokens = new OidcTokens({ token_endpoint_url: 'http://idp.invalid/token', client_id: 'x', client_secret: 'y' }, () => undefined, fetchToken);
    const attached = tokens.attach({ setOauthBearerToken: () => undefined });
    answers.shift()!('token');
    await attached;
    // Its refresh falls due (80% of 300 s), and the client stops while the endpoint has not answered.
    t.mock.timers.tick(240_000);
    assert.equal(fetches, 2, 'the refresh asks the endpoint');
    tokens.stop();
    answers.shift()!(outcome);
    // Its answer (a token, or a refusal) comes after the stop: the refresh settles, then nothing more runs.
    for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
    t.mock.timers.tick(24 * 3_600_000);
    assert.equal(fetches, 2, `after a ${outcome === 'token' ? 'token' : 'refusal'} that came after the stop, the endpoint is asked no more`);
  }
});

test('secrets are redacted from logged properties; the rest stays readable', () => {
  const safe = redactProperties({
    ...librdkafkaConnection(scram, 'c'),
    ...librdkafkaConnection(oauth, 'c'),
    'ssl.key.pem': '-----BEGIN',
    'ssl.key.password': 'kp',
    'sasl.oauthbearer.config': 'clientId=a clientSecret=oc-s3cr3t',
    'some.option': '-----BEGIN RSA PRIVATE KEY-----\nxyz',
  });
  for (const key of ['sasl.password', 'sasl.username', 'sasl.oauthbearer.client.secret', 'ssl.key.pem', 'ssl.key.password', 'sasl.oauthbearer.config', 'some.option']) assert.equal(safe[key], '[redacted]', key);
  assert.equal(safe['metadata.broker.list'], 'kafka:9093');
  assert.equal(safe['sasl.mechanisms'], 'OAUTHBEARER');
  assert.ok(!JSON.stringify(safe).includes('s3cret') && !JSON.stringify(safe).includes('idp-secret'));
});

test('client errors are recognised in both forms node-rdkafka hands them over: an operation\'s (the code) and an event.error\'s (code -1, the text only)', () => {
  const require = createRequire(import.meta.url);
  const { create } = require('node-rdkafka/lib/error.js') as { create(error: Error | { code: number; message: string }): { code: number; message: string } };
  const { err2str } = require('node-rdkafka/librdkafka') as { err2str(code: number): string };
  // node-rdkafka's own conversions: an event.error is an Error of librdkafka's text (src/callbacks.cc,
  // lib/client.js); an operation's error is an object with the code (src/errors.cc).
  const asEvent = (code: number) => create(new Error(err2str(code)));
  const asOperation = (code: number) => create({ code, message: err2str(code) });
  const event = asEvent(ErrorCode.ALL_BROKERS_DOWN);
  assert.deepEqual([event.code, event.message], [-1, 'all broker connections are down'], 'the shape an event.error has');
  const REQUEST_TIMED_OUT = 7;
  const TIMED_OUT_QUEUE = -166;
  const codes = [...Object.values(ErrorCode), REQUEST_TIMED_OUT, TIMED_OUT_QUEUE];
  const predicates: [string, (error: { code?: number; message?: string } | null | undefined) => boolean, number[]][] = [
    ['isBrokersDown', isBrokersDown, [ErrorCode.ALL_BROKERS_DOWN]],
    ['isUnknownTopicOrPartition', isUnknownTopicOrPartition, [ErrorCode.UNKNOWN_TOPIC_OR_PART, ErrorCode.UNKNOWN_TOPIC, ErrorCode.UNKNOWN_PARTITION]],
    ['isTimedOut', isTimedOut, [ErrorCode.TIMED_OUT]],
  ];
  for (const [name, predicate, recognised] of predicates) {
    for (const code of codes) {
      const expected = recognised.includes(code);
      assert.equal(predicate(asEvent(code)), expected, `${name}, event.error '${err2str(code)}'`);
      assert.equal(predicate(asOperation(code)), expected || (predicate === isBrokersDown && code === ErrorCode.TRANSPORT), `${name}, operation error ${code}`);
    }
    assert.equal(predicate(null), false);
    assert.equal(predicate(undefined), false);
  }
  // One broker's connection failing is not all of them: only the code (an operation's error) says more.
  assert.equal(isBrokersDown(asEvent(ErrorCode.TRANSPORT)), false);
});

test('why connections fail, which librdkafka only logs, explains the errors after it until a connection succeeds', () => {
  const client = new EventEmitter();
  const debug: string[] = [];
  const failures = new ConnectionFailures(client, { debug: (fields) => debug.push((fields as { err: string }).err) });
  assert.equal(failures.explain('broker transport failure'), 'broker transport failure', 'nothing logged: the message as it is');
  // librdkafka's other log lines (a facility other than FAIL) are not connection failures.
  client.emit('event.log', { severity: 4, fac: 'REQTMOUT', message: '[thrd:main]: Timed out 1 in-flight request' });
  assert.equal(failures.explain('broker transport failure'), 'broker transport failure');
  const cause = 'sasl_ssl://10.0.0.7:9093/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 312ms in state AUTH_REQ)';
  client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:sasl_ssl://10.0.0.7:9093/bootstrap]: ${cause}` });
  const remedy = 'the brokers refused the credentials: check security.sasl (mechanism, username, password, and the variables they come from)';
  assert.equal(failures.explain('broker transport failure'), `broker transport failure (${cause}): ${remedy}`);
  assert.deepEqual(debug, [cause], 'each failure logged at debug level');
  assert.throws(() => brokersUnreachable(new Error('broker transport failure'), 'connect to the brokers', failures), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TRIB_ERR_SINK');
    assert.equal(error.message, `kafka sink: cannot connect to the brokers: broker transport failure (${cause}): ${remedy}`);
    return true;
  });
  failures.clear();
  assert.equal(failures.explain('all broker connections are down'), 'all broker connections are down', 'connected since: the old cause is history');
});

test('a connection failure a config change mends (TLS against a plaintext listener, refused credentials) says the change, and is a warning once', () => {
  const client = new EventEmitter();
  const warned: string[] = [];
  const failures = new ConnectionFailures(client, { debug: () => undefined, warn: (fields, message) => warned.push(`${message}: ${(fields as { err: string }).err}`) });
  const fail = (cause: string): boolean => client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:x]: ${cause}` });
  // Seen in the walk: `sasl` without `protocol` (so sasl_ssl) against a SASL_PLAINTEXT listener. Before, only librdkafka's
  // question, "connecting to a PLAINTEXT broker listener?", and at info level nothing for the 30 s until the sink gave up.
  const plaintextListener = 'sasl_ssl://127.0.0.1:44879/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by peer: connecting to a PLAINTEXT broker listener? (after 101ms in state SSL_HANDSHAKE)';
  fail(plaintextListener);
  fail(plaintextListener.replace('101ms', '102ms'));
  const remedy = 'the listener takes no TLS: set security.protocol to sasl_plaintext (or plaintext); where `sasl` is given without it, it is sasl_ssl';
  assert.equal(failures.explain('connecting to the brokers'), `connecting to the brokers (${plaintextListener.replace('101ms', '102ms')}): ${remedy}`);
  assert.deepEqual(warned, [`kafka broker connection failed: ${remedy}: ${plaintextListener}`], 'warned once, not at every retry');
  fail('sasl_plaintext://127.0.0.1:44879/bootstrap: SASL authentication error: Authentication failed: Invalid username or password (after 302ms in state AUTH_REQ)');
  assert.match(failures.explain('x'), /\): the brokers refused the credentials: check security\.sasl \(mechanism, username, password, and the variables they come from\)$/);
  fail('ssl://b:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request) (after 3ms in state APIVERSION_QUERY)');
  assert.match(failures.explain('x'), /: likely a listener that takes TLS: set security\.protocol to ssl or sasl_ssl$/);
  assert.equal(warned.length, 3);
  // Connected since: a later mistake (a rotated password) is warned of again.
  failures.clear();
  fail(plaintextListener);
  assert.equal(warned.length, 4);
  // Once a connection succeeded, a refused one is an outage, no config mistake: no remedy, no warning at once (the source and sinks say not ready).
  fail('sasl_plaintext://127.0.0.1:44879/bootstrap: Connect to ipv4#127.0.0.1:44879 failed: Connection refused (after 0ms in state CONNECT)');
  assert.match(failures.explainOutage('x'), /Connection refused \(after 0ms in state CONNECT\)\); broker 127\.0\.0\.1:44879 refuses connections since /);
  assert.equal(warned.length, 4);
});

// A broker killed or restarting while the client connects closes the connection at its first request as a
// listener that takes TLS does (seen in an integration run after a broker was killed): only an address never
// seen answering since the start can be that listener.
test('a broker that closes the connection at the first request is likely a TLS listener only while that address never answered; after, it is an outage, with no TLS advice', () => {
  const firstRequest = (broker: string): string => `${broker}: Disconnected: connection reset by peer (after 2ms in state APIVERSION_QUERY)`;
  const sslQuestion = (broker: string): string => `${broker}: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request) (after 3ms in state APIVERSION_QUERY)`;
  const tlsAdvice = /security\.protocol to ssl or sasl_ssl/;
  const watch = (): { fail: (cause: string) => boolean; failures: ConnectionFailures; warned: string[] } => {
    const client = new EventEmitter();
    const warned: string[] = [];
    const failures = new ConnectionFailures(client, { debug: () => undefined, warn: (_fields, message) => warned.push(message) });
    return { fail: (cause) => client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:x]: ${cause}` }), failures, warned };
  };

  // Never connected: a plaintext client against a listener that takes TLS. The advice stays, said as likely.
  const mismatch = watch();
  mismatch.fail(firstRequest('127.0.0.1:9093/bootstrap'));
  assert.match(mismatch.failures.explain('connecting to the brokers'), /\(127\.0\.0\.1:9093\/bootstrap: Disconnected: connection reset by peer \(after 2ms in state APIVERSION_QUERY\)\): the brokers closed the connection at its first request and have answered none since the start, likely a listener that takes TLS: set security\.protocol to ssl or sasl_ssl/);
  assert.equal(mismatch.warned.length, 1);
  assert.match(mismatch.warned[0]!, tlsAdvice);

  // Connected, then a broker killed: its restart closes the reconnects at their first request. No TLS advice.
  const restarted = watch();
  restarted.failures.clear();
  restarted.fail('127.0.0.1:9093/2: Disconnected (after 5012ms in state UP)');
  restarted.fail('127.0.0.1:9093/2: Connect to ipv4#127.0.0.1:9093 failed: Connection refused (after 0ms in state CONNECT)');
  restarted.fail(firstRequest('127.0.0.1:9093/2'));
  assert.doesNotMatch(restarted.failures.explain('x'), tlsAdvice);
  assert.match(restarted.failures.explain('x'), /^x \(127\.0\.0\.1:9093\/2: Disconnected: connection reset by peer \(after 2ms in state APIVERSION_QUERY\)\)$/);
  restarted.fail(sslQuestion('127.0.0.1:9093/2'));
  assert.doesNotMatch(restarted.failures.explain('x'), tlsAdvice, "librdkafka's own question is no TLS advice then either");
  assert.deepEqual(restarted.warned.filter((message) => tlsAdvice.test(message)), []);

  // Before the client's first connection, a broker seen up (its connection dropped in state UP) answered this
  // client's protocol: its restart is no listener mismatch, while a broker never seen answering still may be.
  const seenUp = watch();
  seenUp.fail('127.0.0.1:9094/3: Disconnected (after 812ms in state UP)');
  seenUp.fail(firstRequest('127.0.0.1:9094/3'));
  assert.doesNotMatch(seenUp.failures.explain('x'), tlsAdvice);
  seenUp.fail(firstRequest('127.0.0.1:9095/4'));
  assert.match(seenUp.failures.explain('x'), tlsAdvice);
});

// A cluster whose bootstrap listener answers without TLS while the listener its metadata advertises (another
// host:port) takes TLS: the client connects to the bootstrap address, then every connection to the advertised
// one is closed at its first request. The advice was judged per client (no advice once any connection
// succeeded), so it was lost; it is judged per address.
test('the bootstrap address connected, the advertised one closing every connection at its first request: TLS advice for that address, naming the advertised listener; an address that connected and then reset gets none', () => {
  const client = new EventEmitter();
  const warned: string[] = [];
  const failures = new ConnectionFailures(client, { debug: () => undefined, warn: (_fields, message) => warned.push(message) });
  const fail = (cause: string): boolean => client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:x]: ${cause}` });
  const advertisedAdvice =
    "likely a listener that takes TLS, one the brokers advertise (advertised.listeners) where a bootstrap address of `brokers` answered without TLS: name the TLS listener in `brokers` and set security.protocol to ssl or sasl_ssl, or have the brokers advertise their listener without TLS";
  failures.clear(); // connected through kafka-boot:9092/bootstrap
  fail('kafka-1.internal:9093/1: Disconnected: connection reset by peer (after 1ms in state APIVERSION_QUERY)');
  assert.equal(
    failures.explain('x'),
    `x (kafka-1.internal:9093/1: Disconnected: connection reset by peer (after 1ms in state APIVERSION_QUERY)): the broker closed the connection at its first request and has answered none at this address since the start, ${advertisedAdvice}`,
  );
  assert.equal(warned.length, 1, 'warned of');
  assert.ok(warned[0]!.endsWith(advertisedAdvice), warned[0]);
  fail('kafka-1.internal:9093/1: Disconnected: connection reset by peer (after 2ms in state APIVERSION_QUERY)');
  assert.equal(warned.length, 1, 'once');

  // The same client: an address that connected (seen up) and then reset at the first request is a broker restarting.
  fail('kafka-2.internal:9093/2: Disconnected (after 61020ms in state UP)');
  fail('kafka-2.internal:9093/2: Disconnected: connection reset by peer (after 1ms in state APIVERSION_QUERY)');
  assert.equal(failures.explain('x'), 'x (kafka-2.internal:9093/2: Disconnected: connection reset by peer (after 1ms in state APIVERSION_QUERY))', 'no TLS advice');
  assert.equal(warned.length, 1);
});

test('brokers never reached since the start, one of them a host that does not resolve, are a wrong address: one warning once each was tried, naming them, the errors and the fix, which /readyz says too', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new EventEmitter();
  const warned: { message: string; fields: Record<string, unknown> }[] = [];
  const failures = new ConnectionFailures(client, { debug: () => undefined, warn: (fields, message) => warned.push({ message, fields: fields as Record<string, unknown> }) }, undefined, 'kafka-1.shop.invalid:9092,127.0.0.1:47001');
  const fail = (cause: string): boolean => client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:x]: ${cause}` });
  const dns = "kafka-1.shop.invalid:9092/bootstrap: Failed to resolve 'kafka-1.shop.invalid:9092': Name or service not known (after 2ms in state CONNECT)";
  const refused = '127.0.0.1:47001/bootstrap: Connect to ipv4#127.0.0.1:47001 failed: Connection refused (after 0ms in state CONNECT)';
  const fix = 'check `brokers`: host, port, and that this machine can reach them';
  fail(dns);
  assert.equal(warned.length, 0, 'the other broker not tried yet');
  assert.equal(failures.explain('connecting'), `connecting (${dns}): ${fix}`, '/readyz says the fix at once');
  fail(refused);
  // Before: nothing above debug level until the connect gave up (30 s for a sink).
  assert.equal(warned.length, 1, 'warned once every broker was tried');
  assert.equal(
    warned[0]!.message,
    'kafka broker connection failed: no broker of `brokers` was reached since the start (DNS: the host name does not resolve, ECONNREFUSED: nothing listens at that host and port), a wrong address: ' + fix,
  );
  // Each broker once, with its error (was `brokers` and `errors` both keyed by it, `errors` then counting texts in an outage's warning).
  assert.deepEqual(warned[0]!.fields, { unreached: { 'kafka-1.shop.invalid:9092': dns, '127.0.0.1:47001': refused }, err: refused });
  fail(refused);
  fail(dns);
  t.mock.timers.tick(60_000);
  assert.equal(warned.length, 1, 'the retries say nothing more');
  // Connected once: a refused connection later is an outage, not a wrong address (no `brokers` fix in /readyz).
  failures.clear();
  fail(refused);
  assert.ok(failures.explainOutage('x').startsWith(`x (${refused}); broker 127.0.0.1:47001 refuses connections since `), failures.explainOutage('x'));
  assert.equal(failures.explain('x'), `x (${refused})`, 'a failure\'s message says the cause alone');
  t.mock.timers.tick(connectionBurstMs);
  assert.equal(warned.length, 2);
  assert.match(warned[1]!.message, /^kafka broker connection refused: /);
});

test('brokers refusing every connection since the start, whose hosts resolve, are a wrong address or brokers not up yet (the daemon started before Kafka): the warning and /readyz give both fixes, and their first answer is said at info', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new EventEmitter();
  const said: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  const logger = {
    debug: () => undefined,
    info: (fields: object, message: string) => void said.push({ level: 'info', message, fields: fields as Record<string, unknown> }),
    warn: (fields: object, message: string) => void said.push({ level: 'warn', message, fields: fields as Record<string, unknown> }),
  };
  const failures = new ConnectionFailures(client, logger, undefined, 'kafka:9092');
  const refused = 'kafka:9092/bootstrap: Connect to ipv4#172.18.0.3:9092 failed: Connection refused (after 0ms in state CONNECT)';
  client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:x]: ${refused}` });
  const fixes = 'check `brokers` (host, port, and that this machine can reach them), or start the brokers: the clients keep trying, and connect once they are up';
  // Before: "most likely a wrong address", and only the `brokers` fix, for a broker merely not up yet.
  assert.deepEqual(said.map(({ level, message }) => `${level}: ${message}`), [
    `warn: kafka broker connection failed: no broker of \`brokers\` was reached since the start (ECONNREFUSED: nothing listens at that host and port), a wrong address, or the brokers not up yet: ${fixes}`,
  ]);
  assert.equal(failures.explain('connecting'), `connecting (${refused}): ${fixes}`);
  failures.clear();
  assert.deepEqual(said[1], { level: 'info', message: 'kafka brokers reached: the brokers warned of as not reached since the start answer now', fields: { reached: ['kafka:9092'] } });
  // Later connections say nothing of the start.
  failures.clear();
  assert.equal(said.length, 2);
});

test('a broker refusing connections after a first success: one warning per episode, gathered with the outage\'s, naming the brokers, since when, that they answered before and what the daemon does meanwhile; /readyz says it too', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2026-12-07T10:00:00Z') });
  const client = new EventEmitter();
  const warned: { message: string; fields: Record<string, unknown> }[] = [];
  const failures = new ConnectionFailures(client, { debug: () => undefined, warn: (fields, message) => warned.push({ message, fields: fields as Record<string, unknown> }) }, 'records wait in the producer', 'b1:9092,b2:9092');
  const refuse = (broker: string): boolean =>
    client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:x]: ${broker}/1: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)` });
  failures.clear();
  // A whole outage: the brokers' refusals, then librdkafka's errors; one warning says both.
  refuse('b1:9092');
  // A coordinator's connection names its broker after the coordinator (seen on a consumer: was said as a broker `?`).
  client.emit('event.log', { severity: 3, fac: 'FAIL', message: '[thrd:GroupCoordinator]: GroupCoordinator: b1:9092: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)' });
  // One named by its node id, with no broker name (seen in CI: warned of as brokers `?` and b1): left to the named broker's lines.
  client.emit('event.log', { severity: 3, fac: 'FAIL', message: '[thrd:GroupCoordinator]: GroupCoordinator/1: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)' });
  failures.logError({ message: 'broker transport failure', code: ErrorCode.TRANSPORT }, 'kafka producer error');
  t.mock.timers.tick(200);
  refuse('b2:9092');
  failures.logError({ message: 'all broker connections are down', code: ErrorCode.ALL_BROKERS_DOWN }, 'kafka producer error');
  t.mock.timers.tick(connectionBurstMs);
  assert.equal(warned.length, 1, warned.map(({ message }) => message).join('\n'));
  const refusing = 'brokers b1:9092 (since 2026-12-07T10:00:00.000Z), b2:9092 (since 2026-12-07T10:00:00.200Z) refuse connections, and they were reachable before: stopped, restarted on another port, or a firewall in between; the daemon keeps its state and resumes when they return';
  assert.equal(
    warned[0]!.message,
    `kafka producer error: no broker is reachable (all broker connections are down): records wait in the producer; 1 broker connection failed (broker transport failure), to 2 brokers; ${refusing}; /readyz says not ready while no broker is reachable, and until a connection succeeds again further such errors are logged at debug level`,
  );
  assert.deepEqual(warned[0]!.fields.refusing, { 'b1:9092': '2026-12-07T10:00:00.000Z', 'b2:9092': '2026-12-07T10:00:00.200Z' });
  assert.equal(warned[0]!.fields.failing, undefined, 'every failing broker is named as refusing: under that field alone');
  assert.match(failures.explainOutage('all broker connections are down'), new RegExp(`; ${refusing.replace(/[.()]/g, '\\$&')}$`));
  // Minutes of retries: no further warning, the same since.
  for (let i = 0; i < 30; i++) {
    t.mock.timers.tick(10_000);
    refuse('b1:9092');
    refuse('b2:9092');
  }
  assert.equal(warned.length, 1);
  assert.match(failures.explainOutage('x'), /b1:9092 \(since 2026-12-07T10:00:00\.000Z\)/);
  // Back (a connection succeeded), then b2 alone refuses past a quiet minute: a new episode, warned of on its own.
  failures.clear();
  t.mock.timers.tick(refusalEpisodeGapMs);
  assert.equal(failures.explainOutage('x'), 'x', 'nothing refused for a minute: no broker said to refuse');
  refuse('b2:9092');
  t.mock.timers.tick(connectionBurstMs);
  assert.equal(warned.length, 2);
  assert.equal(
    warned[1]!.message,
    'kafka broker connection refused: broker b2:9092 refuses connections since 2026-12-07T10:06:01.200Z, and it was reachable before: stopped, restarted on another port, or a firewall in between; the daemon keeps its state and resumes when it returns',
  );
});

// A log pipeline or a grep met a broker both in `brokers` (its connections failed) and in `refusing` (since when
// it refuses), two names of different meaning; `brokers` is also the configured list in 'connecting to the brokers'.
test('an outage\'s warning names each broker under one field: `refusing` (with since when) those it says refuse, `failing` the others whose connections failed', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2026-12-07T10:00:00Z') });
  const client = new EventEmitter();
  const warned: { message: string; fields: Record<string, unknown> }[] = [];
  const failures = new ConnectionFailures(client, { debug: () => undefined, warn: (fields, message) => warned.push({ message, fields: fields as Record<string, unknown> }) }, 'records wait in the producer', 'b1:9092,b2:9092');
  const fail = (cause: string): boolean => client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:x]: ${cause}` });
  failures.clear();
  fail('b1:9092/1: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)');
  fail('b2:9092/2: Connect to ipv4#10.0.0.2:9092 failed: Connection timed out (after 30012ms in state CONNECT)');
  failures.logError({ message: 'all broker connections are down', code: ErrorCode.ALL_BROKERS_DOWN }, 'kafka producer error');
  t.mock.timers.tick(connectionBurstMs);
  assert.equal(warned.length, 1, warned.map(({ message }) => message).join('\n'));
  assert.match(warned[0]!.message, /broker b1:9092 refuses connections since 2026-12-07T10:00:00\.000Z/);
  assert.deepEqual(warned[0]!.fields.refusing, { 'b1:9092': '2026-12-07T10:00:00.000Z' });
  assert.deepEqual(warned[0]!.fields.failing, ['b2:9092']);
  assert.equal(warned[0]!.fields.brokers, undefined, 'no field of another meaning names them again');
  const named = [...(warned[0]!.fields.failing as string[]), ...Object.keys(warned[0]!.fields.refusing as object)];
  assert.deepEqual(named.sort(), ['b1:9092', 'b2:9092'], 'each broker once');
});

test('brokers never reached, some not tried yet (librdkafka tries them one after another): warned of a few seconds after the first failure, with those tried; not at all where a connection succeeds first', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new EventEmitter();
  const warned: { message: string; fields: Record<string, unknown> }[] = [];
  const warn = (fields: object, message: string) => void warned.push({ message, fields: fields as Record<string, unknown> });
  // Spaced, and b3 without its port (librdkafka's default, 9092): as users write them.
  new ConnectionFailures(client, { debug: () => undefined, warn }, undefined, 'b1:9092, b2:9092,b3');
  client.emit('event.log', { severity: 3, fac: 'FAIL', message: '[thrd:x]: b1:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 1ms in state CONNECT)' });
  t.mock.timers.tick(neverReachedWaitMs - 1);
  assert.equal(warned.length, 0);
  t.mock.timers.tick(1);
  assert.equal(warned.length, 1);
  assert.deepEqual(Object.keys(warned[0]!.fields.unreached as object), ['b1:9092']);
  const connectedFirst = new EventEmitter();
  const other = new ConnectionFailures(connectedFirst, { debug: () => undefined, warn }, undefined, 'b1:9092,b2:9092');
  connectedFirst.emit('event.log', { severity: 3, fac: 'FAIL', message: '[thrd:x]: b1:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 1ms in state CONNECT)' });
  other.clear();
  t.mock.timers.tick(neverReachedWaitMs);
  assert.equal(warned.length, 1, 'b2 answered meanwhile: no wrong address');
});

/** A producer whose flush times out `slow` times (librdkafka's ERR__TIMED_OUT), then finds its queue empty. */
function slowFlusher(slow: number): { producer: { flush(timeout: number, cb: (error: RdKafka.LibrdKafkaError | null) => void): void }; asked: number[] } {
  const asked: number[] = [];
  return {
    asked,
    producer: {
      flush(timeout, cb) {
        asked.push(timeout);
        setImmediate(() => cb(asked.length <= slow ? ({ code: ErrorCode.TIMED_OUT, message: 'Local: Timed out' } as RdKafka.LibrdKafkaError) : null));
      },
    },
  };
}

test('flushProducer: waits in short slices until the queue is empty, and gives up between slices when told', async () => {
  const patient = slowFlusher(3);
  await flushProducer(patient.producer, 60_000, () => undefined);
  assert.equal(patient.asked.length, 4);
  // Short waits on libuv's pool: a whole-timeout flush held a stop in an outage (and the process's exit) that long.
  assert.ok(patient.asked.every((timeout) => timeout <= 250), `slices: ${patient.asked.join(', ')}`);

  const stopping = slowFlusher(Infinity);
  let looks = 0;
  const reason = stoppedUnreachable("kafka sink (topic 'out')", 'all broker connections are down');
  await assert.rejects(flushProducer(stopping.producer, 60_000, () => (++looks === 2 ? reason : undefined)), (error) => error === reason);
  assert.equal(stopping.asked.length, 2, 'given up at the second look');
  assert.ok(inputHandedOver(reason), 'a stop in an outage leaves its input to the next reader');
  assert.match(reason.message, /^kafka sink \(topic 'out'\): stopped while the brokers are unreachable \(all broker connections are down\), with records not acknowledged; the input they came from stays uncommitted, and the next start reads it again$/);

  // Past its whole timeout: librdkafka's own error, as before.
  await assert.rejects(flushProducer(slowFlusher(Infinity).producer, 0, () => undefined), (error: Error & { code?: number }) => error.code === ErrorCode.TIMED_OUT);
  // Any other failure at once.
  const failing = { flush: (_: number, cb: (error: RdKafka.LibrdKafkaError) => void) => cb({ code: ErrorCode.FATAL, message: 'Local: Fatal error' } as RdKafka.LibrdKafkaError) };
  await assert.rejects(flushProducer(failing, 60_000, () => undefined), /Fatal error/);
});

test('inOutage: a failure met while the brokers are unreachable leaves its input to the next reader (a stop meeting it is a stop); others stay as they are', () => {
  const timedOut = new Error("delivery to topic 'out' failed: message timed out");
  const marked = inOutage(timedOut, 'all broker connections are down');
  assert.ok(inputHandedOver(marked));
  assert.equal(marked.cause, timedOut);
  assert.equal(marked.message, "delivery to topic 'out' failed: message timed out (the brokers are unreachable: all broker connections are down)");
  assert.equal(inOutage(timedOut, undefined), timedOut, 'brokers reachable: a failure like any other');
  assert.ok(!inputHandedOver(timedOut));
  const handed = new TributaryError('TRIB_ERR_SINK', 'Unknown member', { handedOver: true });
  assert.equal(inOutage(handed, 'down'), handed, 'marked already: kept, not wrapped again');
});

test('every broker down is said in the outage\'s one warning, with what the client does meanwhile; after it the outage\'s reconnects are no news; a later loss of the last broker (some had failed before) is news', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new EventEmitter();
  const warned: string[] = [];
  const debug: string[] = [];
  const failures = new ConnectionFailures(client, { debug: (fields) => debug.push((fields as { err: string }).err), warn: (_fields, message) => warned.push(message) }, 'records wait in the producer');
  const down = { message: 'all broker connections are down', code: -1 };
  const transport = { message: 'broker transport failure', code: -1 };
  failures.logError(down, 'kafka producer error');
  failures.logError(transport, 'kafka producer error');
  t.mock.timers.tick(1_000);
  failures.logError(transport, 'kafka producer error');
  failures.logError(down, 'kafka producer error');
  t.mock.timers.tick(1_000);
  // Before: every broker down was a warning of its own ("kafka sink: brokers unreachable; records wait in the producer"), not in this one.
  assert.deepEqual(warned, [
    'kafka producer error: no broker is reachable (all broker connections are down): records wait in the producer; 1 broker connection failed (broker transport failure); /readyz says not ready while no broker is reachable, and until a connection succeeds again further such errors are logged at debug level',
  ]);
  assert.deepEqual(debug, ['broker transport failure', 'all broker connections are down']);
  // Connected again: an error of the outage librdkafka delivers after that, or a refused connection of a
  // broker coming up, is still the outage's, for outageSettleMs (seen: a second warning for one broker
  // stopped once, its 'broker transport failure' seconds after the brokers answered).
  failures.clear();
  t.mock.timers.tick(outageSettleMs - 1_000);
  failures.logError(transport, 'kafka producer error');
  t.mock.timers.tick(1_000);
  assert.equal(warned.length, 1);
  assert.deepEqual(debug.slice(2), ['broker transport failure']);
  // The next outage starts with one broker of several lost: its warning says the connection failed; the
  // last one's loss a minute later is news (it says no broker is reachable), its reconnects are not.
  failures.clear();
  t.mock.timers.tick(outageSettleMs);
  failures.logError(transport, 'kafka producer error');
  t.mock.timers.tick(60_000);
  failures.logError(down, 'kafka producer error');
  t.mock.timers.tick(1_000);
  failures.logError(transport, 'kafka producer error');
  t.mock.timers.tick(1_000);
  assert.deepEqual(warned.slice(1), [
    'kafka producer error: 1 broker connection failed (broker transport failure); /readyz says not ready while no broker is reachable, and until a connection succeeds again further such errors are logged at debug level',
    'kafka producer error: no broker is reachable (all broker connections are down): records wait in the producer; /readyz says not ready while no broker is reachable, and until a connection succeeds again further such errors are logged at debug level',
  ]);
});

test('an outage\'s start (librdkafka reports each broker connection failing) is one warning that says how many connections failed, to how many brokers, and that /readyz says it; each other error once; again only after a connection succeeds', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new EventEmitter();
  const warned: { message: string; fields: Record<string, unknown> }[] = [];
  const debug: string[] = [];
  const failures = new ConnectionFailures(client, { debug: (_fields, message) => debug.push(message), warn: (fields, message) => warned.push({ message, fields: fields as Record<string, unknown> }) });
  // As a transactional producer of a 3-broker cluster met the brokers going away: each connection's FAIL
  // line (bootstrap ones, each broker's, the coordinator's) and its `event.error`, 8 of them.
  const connections = ['127.0.0.1:9092/bootstrap', '127.0.0.1:9093/bootstrap', '127.0.0.1:9094/bootstrap', '127.0.0.1:9092/1', '127.0.0.1:9093/2', '127.0.0.1:9094/3', '127.0.0.1:9092/1', '127.0.0.1:9093/2'];
  for (const connection of connections) {
    client.emit('event.log', { severity: 3, fac: 'FAIL', message: `[thrd:${connection}]: ${connection}: Disconnected (after 5012ms in state UP)` });
    failures.logError({ message: 'broker transport failure', code: -1 }, 'kafka transactional producer error', { transactionalId: 'tx' });
  }
  failures.logError({ message: 'Local: Timed out in queue', code: -1 }, 'kafka transactional producer error');
  // Before: 8 warnings "kafka transactional producer error: broker transport failure", at once.
  assert.equal(warned.length, 0, 'gathered first');
  t.mock.timers.tick(1_000);
  assert.equal(warned.length, 1, warned.map((each) => each.message).join('\n'));
  assert.match(warned[0]!.message, /^kafka transactional producer error: 8 broker connections failed \(broker transport failure\), to 3 brokers; also Local: Timed out in queue; \/readyz says not ready while no broker is reachable/);
  assert.equal(warned[0]!.fields['transactionalId'], 'tx');
  assert.deepEqual(warned[0]!.fields['errors'], { 'broker transport failure': 8, 'Local: Timed out in queue': 1 });
  // The reconnects of the same outage: debug level only; a new error is still warned of, once.
  failures.logError({ message: 'broker transport failure', code: -1 }, 'kafka transactional producer error');
  failures.logError({ message: 'Local: Timed out in queue', code: -1 }, 'kafka transactional producer error');
  failures.logError({ message: 'Broker: Not coordinator', code: -1 }, 'kafka transactional producer error');
  failures.logError({ message: 'Broker: Not coordinator', code: -1 }, 'kafka transactional producer error');
  t.mock.timers.tick(1_000);
  assert.deepEqual(warned.slice(1).map((each) => `${each.message}: ${String(each.fields['err'])}`), ['kafka transactional producer error: Broker: Not coordinator']);
  assert.equal(debug.filter((message) => message === 'kafka transactional producer error').length, 3);
  // Connected again (a commit went through): the next outage, once the last one settled, is warned of again.
  failures.clear();
  t.mock.timers.tick(outageSettleMs);
  failures.logError({ message: 'broker transport failure', code: -1 }, 'kafka producer error');
  t.mock.timers.tick(1_000);
  assert.equal(warned.length, 3);
  assert.match(warned[2]!.message, /^kafka producer error: 1 broker connection failed \(broker transport failure\); \/readyz/);
});

test('an outage of days whose errors differ in their texts (offsets, addresses) keeps at most maxWarnedErrors texts: past them one warning says new ones go to debug level, and the count is said once a connection succeeds', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new EventEmitter();
  const warned: { message: string; fields: Record<string, unknown> }[] = [];
  let debugs = 0;
  const failures = new ConnectionFailures(client, { debug: () => void debugs++, warn: (fields, message) => warned.push({ message, fields: fields as Record<string, unknown> }) });
  const remembered = (): number => (failures as unknown as { warnedErrors: Set<string> }).warnedErrors.size;
  const distinct = maxWarnedErrors * 4;
  for (let offset = 0; offset < distinct; offset++) failures.logError({ message: `Broker: Offset out of range (offset ${offset})`, code: -1 }, 'kafka consumer error');
  // Before: one warning per text (200), and every text kept until the outage ended.
  assert.equal(remembered(), maxWarnedErrors);
  assert.equal(warned.length, maxWarnedErrors + 1, warned.slice(-3).map((each) => each.message).join('\n'));
  assert.match(warned.at(-1)!.message, new RegExp(`^kafka consumer error; ${maxWarnedErrors} different errors were warned of since a connection last succeeded: until one does, further new ones are logged at debug level only, and counted$`));
  assert.equal(warned.at(-1)!.fields['err'], `Broker: Offset out of range (offset ${maxWarnedErrors})`);
  assert.equal(debugs, distinct - maxWarnedErrors - 1);
  // A text warned of before is still a repeat (debug level).
  failures.logError({ message: 'Broker: Offset out of range (offset 0)', code: -1 }, 'kafka consumer error');
  assert.equal(warned.length, maxWarnedErrors + 1);
  failures.clear();
  assert.equal(warned.length, maxWarnedErrors + 2);
  assert.deepEqual(warned.at(-1)!.fields, { suppressed: distinct - maxWarnedErrors });
  // Settled: the texts are forgotten, and a new one is warned of again.
  t.mock.timers.tick(outageSettleMs);
  failures.logError({ message: 'Broker: Offset out of range (offset 1000)', code: -1 }, 'kafka consumer error');
  assert.equal(warned.length, maxWarnedErrors + 3);
  assert.equal(remembered(), 1);
});

test('an outage\'s one warning gathers at most maxWarnedErrors error texts, and counts the errors of the rest', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new EventEmitter();
  const warned: { message: string; fields: Record<string, unknown> }[] = [];
  const failures = new ConnectionFailures(client, { debug: () => undefined, warn: (fields, message) => warned.push({ message, fields: fields as Record<string, unknown> }) });
  failures.logError({ message: 'broker transport failure', code: -1 }, 'kafka producer error');
  for (let i = 0; i < maxWarnedErrors * 2; i++) failures.logError({ message: `Local: Message timed out (${i})`, code: -1 }, 'kafka producer error');
  t.mock.timers.tick(1_000);
  assert.equal(warned.length, 1);
  assert.equal(Object.keys(warned[0]!.fields['errors'] as object).length, maxWarnedErrors);
  assert.match(warned[0]!.message, new RegExp(`; and ${maxWarnedErrors + 1} more errors of other texts; /readyz says`));
  assert.equal((failures as unknown as { warnedErrors: Set<string> }).warnedErrors.size, maxWarnedErrors);
});

test('checkpointLogGone: a checkpoint\'s partition of a topic gone from the metadata is deleted; one whose log ends below the offset, re-created; one whose log holds the offset (expired group offsets) or whose end is not known, neither', () => {
  const metadata = (topics: Record<string, number[]>): RdKafka.Metadata => ({
    orig_broker_id: 1,
    orig_broker_name: 'b',
    brokers: [{ id: 1, host: 'h', port: 9092 }],
    topics: Object.entries(topics).map(([name, ids]) => ({ name, partitions: ids.map((id) => ({ id, leader: 1, replicas: [1], isrs: [1] })) })),
  });
  const at = (topic: string, partition: number, offset: number): RdKafka.TopicPartitionOffset => ({ topic, partition, offset });
  const log = (lowOffset: number, highOffset: number): RdKafka.WatermarkOffsets => ({ lowOffset, highOffset });
  const cluster = metadata({ kept: [0, 1], fewer: [0] });
  assert.equal(checkpointLogGone(at('gone', 0, 5_000), cluster, undefined), 'deleted');
  assert.equal(checkpointLogGone(at('fewer', 1, 10), cluster, undefined), 'deleted', 'created again with fewer partitions: that partition is gone');
  assert.equal(checkpointLogGone(at('gone', 0, 5_000), metadata({ gone: [] }), undefined), 'deleted', 'listed without partitions (an error answer for it)');
  assert.equal(checkpointLogGone(at('kept', 0, 5_000), cluster, log(0, 12)), 'recreated');
  assert.equal(checkpointLogGone(at('kept', 0, 5_000), cluster, log(0, 5_000)), undefined, 'at the log\'s end: this log\'s offset');
  assert.equal(checkpointLogGone(at('kept', 1, 5_000), cluster, log(4_000, 9_000)), undefined);
  assert.equal(checkpointLogGone(at('kept', 0, 5_000), cluster, undefined), undefined);
  assert.equal(checkpointLogGone(at('kept', 0, 5_000), cluster, log(-1, -1)), undefined, 'an end not known');
});

test('lookups through the lane: one made at a time; one that waited for its turn past its own timeout fails as timed out, not made (an outage\'s queue drains instead of growing)', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 0 });
  const lane = new LookupLane();
  // A client whose lookups hang until answered by hand (an unresponsive broker).
  const pending: (() => void)[] = [];
  const made: string[] = [];
  // Methods on the prototype, as node-rdkafka's are.
  class HangingClient {
    getMetadata(options: { timeout: number }, cb: (error: null, metadata: unknown) => void) {
      made.push(`metadata ${options.timeout}`);
      pending.push(() => cb(null, {}));
    }
    queryWatermarkOffsets(_topic: string, partition: number, timeout: number, cb: (error: null, offsets: unknown) => void) {
      made.push(`watermarks ${partition} ${timeout}`);
      pending.push(() => cb(null, { lowOffset: 0, highOffset: 1 }));
    }
  }
  const client = throughLookupLane(new HangingClient() as unknown as RdKafka.KafkaConsumer, lane);
  const results: string[] = [];
  const noted = (what: string) => (error: { code?: number } | null | undefined) => results.push(`${what}: ${error ? `error ${error.code}` : 'ok'}`);
  client.queryWatermarkOffsets('t', 0, 5_000, noted('p0'));
  client.queryWatermarkOffsets('t', 1, 5_000, noted('p1'));
  client.getMetadata({ timeout: 20_000 }, noted('metadata'));
  assert.deepEqual(made, ['watermarks 0 5000']);
  assert.equal(lane.waiting, 2);
  t.mock.timers.tick(6_000);
  pending.shift()!();
  // p1 waited 6 s, past its 5 s: not made. The metadata request (20 s) is made.
  assert.deepEqual(results, ['p0: ok', `p1: error ${ErrorCode.TIMED_OUT}`]);
  assert.deepEqual(made, ['watermarks 0 5000', 'metadata 20000']);
  pending.shift()!();
  assert.deepEqual(results, ['p0: ok', `p1: error ${ErrorCode.TIMED_OUT}`, 'metadata: ok']);
  assert.equal(lane.inFlight, 0);
});

test("connect()'s own metadata request is made at once, not queued behind other clients' lookups: a sink starting beside a source stuck on its brokers asks its own brokers (and says their answer)", () => {
  const lane = new LookupLane();
  const pending: (() => void)[] = [];
  const made: string[] = [];
  // As node-rdkafka's Client: connect() asks the metadata itself (this.getMetadata) before it calls back.
  class Client {
    connect(options: { timeout: number }, cb: (error: null, metadata: unknown) => void) {
      this.getMetadata(options, cb);
    }
    getMetadata(options: { timeout: number }, cb: (error: null, metadata: unknown) => void) {
      made.push(`metadata ${options.timeout}`);
      pending.push(() => cb(null, {}));
    }
  }
  const stuck = throughLookupLane(new Client() as unknown as RdKafka.KafkaConsumer, lane);
  const starting = throughLookupLane(new Client() as unknown as RdKafka.Producer, lane);
  const results: string[] = [];
  stuck.getMetadata({ timeout: 20_000 }, () => results.push('stuck'));
  starting.connect({ timeout: 2_000 }, () => results.push('connected'));
  assert.deepEqual(made, ['metadata 20000', 'metadata 2000'], "the connect's request is made while the other lookup holds the lane");
  pending[1]!();
  assert.deepEqual(results, ['connected']);
  // After connect, the client's lookups go through the lane again.
  starting.getMetadata({ timeout: 1_000 }, () => results.push('after'));
  assert.deepEqual(made, ['metadata 20000', 'metadata 2000'], 'queued behind the stuck lookup');
  assert.equal(lane.waiting, 1);
  pending[0]!();
  assert.deepEqual(made, ['metadata 20000', 'metadata 2000', 'metadata 1000']);
});

test('a lookup that throws (node-rdkafka\'s disconnected client) frees the lane for the next, and its caller gets the error', () => {
  const lane = new LookupLane();
  class DisconnectedClient {
    getMetadata(_options: unknown, _cb: unknown) {
      throw new Error('KafkaConsumer is not connected');
    }
  }
  const client = throughLookupLane(new DisconnectedClient() as unknown as RdKafka.KafkaConsumer, lane);
  const errors: string[] = [];
  client.getMetadata({ timeout: 1_000 }, (error) => errors.push(error!.message));
  client.getMetadata({ timeout: 1_000 }, (error) => errors.push(error!.message));
  assert.deepEqual(errors, ['KafkaConsumer is not connected', 'KafkaConsumer is not connected']);
  assert.equal(lane.inFlight, 0);
});

test('a lookup that never calls back holds the lane only until lookupOverdueMs past its timeout: the next is made, and a late answer still reaches its caller', (t) => {
  t.mock.timers.enable({ apis: ['Date', 'setTimeout'], now: 0 });
  const lane = new LookupLane();
  const pending: (() => void)[] = [];
  const made: number[] = [];
  class HangingClient {
    queryWatermarkOffsets(_topic: string, partition: number, _timeout: number, cb: (error: null, offsets: unknown) => void) {
      made.push(partition);
      pending.push(() => cb(null, { lowOffset: 0, highOffset: 1 }));
    }
  }
  const client = throughLookupLane(new HangingClient() as unknown as RdKafka.KafkaConsumer, lane);
  const results: string[] = [];
  client.queryWatermarkOffsets('t', 0, 5_000, (error) => results.push(`p0: ${error ? 'error' : 'ok'}`));
  // Asked with a timeout long enough to outwait the first's release.
  client.queryWatermarkOffsets('t', 1, 60_000, (error) => results.push(`p1: ${error ? 'error' : 'ok'}`));
  t.mock.timers.tick(5_000 + lookupOverdueMs - 1);
  assert.deepEqual(made, [0]);
  t.mock.timers.tick(1);
  assert.deepEqual(made, [0, 1]);
  pending.shift()!();
  assert.deepEqual(results, ['p0: ok']);
  assert.equal(lane.inFlight, 1, 'the late answer frees nothing: the second lookup holds the lane');
  pending.shift()!();
  assert.deepEqual(results, ['p0: ok', 'p1: ok']);
  assert.equal(lane.inFlight, 0);
});

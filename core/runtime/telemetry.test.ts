import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createLogger, isSecret, MetricsHub, redactSecrets, redactSecretText, rememberSecretValues, secretFieldNames } from './telemetry.js';

test('redactSecrets hides secrets by field name (ours and librdkafka\'s) and private keys whatever their field', () => {
  const pem = '-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----';
  const config = {
    security: { sasl: { mechanism: 'PLAIN', username: 'app', password: 'hunter2' }, tls: { key_pem: pem, ca_pem: '-----BEGIN CERTIFICATE-----x' } },
    options: { 'ssl.key.pem': pem, 'sasl.oauthbearer.config': 'clientId=a clientSecret=s3cr3t', 'sasl.oauthbearer.client.secret': 's3cr3t', 'linger.ms': 5, note: pem },
  };
  const text = JSON.stringify(redactSecrets(config));
  for (const secret of ['hunter2', 'MIIEv', 's3cr3t']) assert.ok(!text.includes(secret), `${secret} is hidden: ${text}`);
  assert.match(text, /"username":"app"/);
  assert.match(text, /"ca_pem":"-----BEGIN CERTIFICATE-----x"/, 'a certificate is public');
  assert.match(text, /"linger.ms":5/);
  // A key __proto__ that came as data (JSON, YAML) stays, its secrets hidden (an assignment set the copy's prototype: lost).
  const odd = JSON.parse('{"__proto__": {"password": "hunter2", "user": "app"}}') as Record<string, unknown>;
  assert.equal(JSON.stringify(redactSecrets(odd)), '{"__proto__":{"password":"[redacted]","user":"app"}}');
});

test('every field isSecret flags is redacted in a log line, at any depth, in bindings and in an error\'s fields: one rule for logs and validate --print', () => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  // The names isSecret knows, and fields it flags by their endings (librdkafka's dotted names, ours) or by a private key's value.
  const keys = [...secretFieldNames, 'sasl.password', 'sasl.username', 'ssl.key.password', 'ssl.key.pem', 'sasl.oauthbearer.config', 'sasl.oauthbearer.client.secret', 'client_secret', 'refresh_token', 'ApiKey', 'PASSWORD'];
  const pem = '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF...\n-----END ENCRYPTED PRIVATE KEY-----';
  for (const key of keys) assert.ok(isSecret(key, 'x'), `${key} is a secret to isSecret`);
  assert.ok(isSecret('note', pem));
  const cases: { where: string; log: (key: string, value: string) => void }[] = [
    { where: 'top level', log: (key, value) => logger.info({ [key]: value }, 'm') },
    { where: 'nested 1', log: (key, value) => logger.info({ config: { [key]: value } }, 'm') },
    { where: 'nested 4', log: (key, value) => logger.info({ a: { b: { c: { d: { [key]: value } } } } }, 'm') },
    { where: 'in an array', log: (key, value) => logger.info({ clients: [{ name: 'x' }, { [key]: value }] }, 'm') },
    { where: 'a child\'s bindings', log: (key, value) => logger.child({ client: { [key]: value } }).info('m') },
    { where: 'a grandchild\'s bindings', log: (key, value) => logger.child({ stage: 's' }).child({ [key]: value }).info('m') },
    { where: 'an error\'s own fields', log: (key, value) => logger.warn({ err: Object.assign(new Error('failed'), { config: { [key]: value } }) }, 'm') },
  ];
  for (const { where, log } of cases) {
    for (const key of [...keys, 'note']) {
      lines.length = 0;
      const value = key === 'note' ? pem : `s3cr3t-${key}`;
      log(key, value);
      assert.equal(lines.length, 1);
      // Before: pino redacted its own list of names to a depth of 2 (`sasl.username` and `ssl.key.pem` were logged, so was a password 4 levels down).
      assert.ok(!lines[0]!.includes(key === 'note' ? 'MIIF' : value), `${key} (${where}) is redacted: ${lines[0]}`);
      assert.ok(lines[0]!.includes(`${JSON.stringify(key)}:"[redacted]"`), `${key} (${where}) says it was: ${lines[0]}`);
    }
  }
  // The rest stays, and an error keeps its message and stack.
  lines.length = 0;
  logger.warn({ err: Object.assign(new Error('failed'), { code: 'E1', config: { 'sasl.password': 'p', 'linger.ms': 5 } }), brokers: 'b:9092', username: 'app' }, 'm');
  const record = JSON.parse(lines[0]!) as { err: { message: string; stack: string; code: string; config: Record<string, unknown> }; brokers: string; username: string };
  assert.equal(record.err.message, 'failed');
  assert.match(record.err.stack, /^Error: failed\n/);
  assert.deepEqual(record.err.config, { 'sasl.password': '[redacted]', 'linger.ms': 5 });
  assert.equal(record.brokers, 'b:9092');
  assert.equal(record.username, 'app');
});

test('a stage\'s counters and histograms are exported at 0 before their first event, so rate() and alerts see them', async () => {
  const hub = new MetricsHub();
  const metrics = hub.scoped({ pipeline: 'p', stage: 'sessionizer' });
  const evicted = metrics.counter('sessions_evicted_total', 'Sessions closed early.');
  metrics.histogram('batch_seconds', 'Batch time.', [0.1, 1]);
  const before = await hub.registry.metrics();
  assert.match(before, /^tributary_sessions_evicted_total\{pipeline="p",stage="sessionizer"\} 0$/m);
  assert.match(before, /^tributary_batch_seconds_count\{pipeline="p",stage="sessionizer"\} 0$/m);
  evicted.inc();
  assert.match(await hub.registry.metrics(), /^tributary_sessions_evicted_total\{pipeline="p",stage="sessionizer"\} 1$/m);
});

test('a gauge has no series until its first set: a level not yet measured (a model\'s AUC before its first label) is absent, not a false 0', async () => {
  const hub = new MetricsHub();
  const metrics = hub.scoped({ pipeline: 'p', stage: 'intent' });
  const auc = metrics.gauge('model_auc', 'AUC.');
  assert.doesNotMatch(await hub.registry.metrics(), /^tributary_model_auc\{/m);
  auc.set(0.71);
  assert.match(await hub.registry.metrics(), /^tributary_model_auc\{pipeline="p",stage="intent"\} 0.71$/m);
});

test('a gauge family: one series per value of its own labels, after the scope\'s; a removed one is gone; the runtime\'s labels are not its to name', async () => {
  const hub = new MetricsHub();
  const metrics = hub.scoped({ pipeline: 'p', stage: 'source-kafka-0' });
  const lag = metrics.gaugeFamily('kafka_partition_lag', 'Records behind, per partition.', ['topic', 'partition']);
  lag.set({ topic: 'clicks', partition: '0' }, 5);
  lag.set({ topic: 'clicks', partition: '1' }, 7);
  lag.set({ topic: 'clicks', partition: '1' }, 3);
  let text = await hub.registry.metrics();
  assert.match(text, /^tributary_kafka_partition_lag\{pipeline="p",stage="source-kafka-0",topic="clicks",partition="0"\} 5$/m);
  assert.match(text, /^tributary_kafka_partition_lag\{pipeline="p",stage="source-kafka-0",topic="clicks",partition="1"\} 3$/m);
  // A partition revoked: its last value would read as current.
  lag.remove({ topic: 'clicks', partition: '1' });
  text = await hub.registry.metrics();
  assert.doesNotMatch(text, /partition="1"/);
  assert.match(text, /partition="0"\} 5$/m);
  assert.throws(() => metrics.gaugeFamily('other', 'h', ['stage']), /label 'stage' is the runtime's own/);
  assert.throws(() => lag.set({ topic: 'clicks' }, 1), /no value for its label 'partition'/);
});

test('withLabels: constant labels of the plugin\'s own on every series, after the scope\'s (a model\'s name); not the scope\'s own, nor a name made without them', async () => {
  const hub = new MetricsHub();
  const scope = hub.scoped({ pipeline: 'p', stage: 'stage-intent-model-5' });
  const model = scope.withLabels({ model: 'intent-lr' });
  model.gauge('model_auc', 'AUC.').set(0.8);
  model.counter('model_labels_total', 'Labels.').inc(3);
  model.histogram('model_batch_seconds', 'Batch time.', [1]).observe(0.5);
  model.gaugeFamily('model_things', 'Things.', ['thing']).set({ thing: 'a' }, 1);
  const text = await hub.registry.metrics();
  assert.match(text, /^tributary_model_auc\{pipeline="p",stage="stage-intent-model-5",model="intent-lr"\} 0.8$/m);
  assert.match(text, /^tributary_model_labels_total\{pipeline="p",stage="stage-intent-model-5",model="intent-lr"\} 3$/m);
  assert.match(text, /^tributary_model_batch_seconds_count\{pipeline="p",stage="stage-intent-model-5",model="intent-lr"\} 1$/m);
  assert.match(text, /^tributary_model_things\{pipeline="p",stage="stage-intent-model-5",model="intent-lr",thing="a"\} 1$/m);
  // Another model of the pipeline: its own series.
  scope.withLabels({ model: 'intent-mlp' }).gauge('model_auc', 'AUC.').set(0.7);
  assert.match(await hub.registry.metrics(), /^tributary_model_auc\{pipeline="p",stage="stage-intent-model-5",model="intent-mlp"\} 0.7$/m);
  assert.throws(() => scope.withLabels({ stage: 'x' }), /label 'stage' is already set/);
  assert.throws(() => model.gaugeFamily('model_other', 'Other.', ['model']), /label 'model' is the runtime's own/);
  hub.scoped({ pipeline: 'p', stage: 's' }).gauge('plain', 'Made without a model label.');
  assert.throws(() => model.gauge('plain', 'Asked with one.'), /metric tributary_plain was made with the labels pipeline, stage; asked for again with 'model' too/);
});

test('observed again under the same labels (a pipeline restarted in the process): a level is the new reader\'s alone, a count goes on from the old one\'s last value, other labels are untouched', async () => {
  const hub = new MetricsHub();
  let firstRead = 40;
  hub.observe('records_in_total', 'Events read.', { pipeline: 'p' }, () => firstRead);
  hub.observe('records_in_total', 'Events read.', { pipeline: 'q' }, () => 7);
  hub.observe('watermark_lag_seconds', 'Lag.', { pipeline: 'p' }, () => 120);
  firstRead = 42; // read on to its end
  let secondRead = 0;
  hub.observe('records_in_total', 'Events read.', { pipeline: 'p' }, () => secondRead);
  hub.observe('watermark_lag_seconds', 'Lag.', { pipeline: 'p' }, () => 3);
  secondRead = 5;
  const text = await hub.registry.metrics();
  assert.match(text, /^tributary_records_in_total\{pipeline="p"\} 47$/m);
  assert.match(text, /^tributary_records_in_total\{pipeline="q"\} 7$/m);
  assert.match(text, /^tributary_watermark_lag_seconds\{pipeline="p"\} 3$/m);
});

test('an observed level that reads NaN (not measured: no watermark or checkpoint yet) has no series, also after a value: a pipeline restarted in the process does not show its failed run\'s lag or checkpoint size', async () => {
  const hub = new MetricsHub();
  hub.observe('watermark_lag_seconds', 'Lag.', { pipeline: 'p' }, () => 42);
  hub.observe('watermark_lag_seconds', 'Lag.', { pipeline: 'q' }, () => 7);
  assert.match(await hub.registry.metrics(), /^tributary_watermark_lag_seconds\{pipeline="p"\} 42$/m);
  // Restarted: its new run has no watermark yet.
  let lag = NaN;
  hub.observe('watermark_lag_seconds', 'Lag.', { pipeline: 'p' }, () => lag);
  let text = await hub.registry.metrics();
  assert.doesNotMatch(text, /pipeline="p"/);
  assert.match(text, /^tributary_watermark_lag_seconds\{pipeline="q"\} 7$/m);
  lag = 1.5;
  text = await hub.registry.metrics();
  assert.match(text, /^tributary_watermark_lag_seconds\{pipeline="p"\} 1.5$/m);
});

test("a plugin's metric given a value that is no finite number ignores it and says so once per metric: a counter does not turn NaN for good, a histogram does not throw; a gauge set to NaN stays NaN (measured: undefined)", async () => {
  const hub = new MetricsHub();
  const logged: { msg: string; metric?: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as { msg: string; metric?: string }) });
  const metrics = hub.scoped({ pipeline: 'p', stage: 's' }, logger);
  const counter = metrics.counter('things_total', 'Things.');
  counter.inc(3);
  counter.inc(NaN);
  counter.inc(Infinity);
  counter.inc(2);
  const histogram = metrics.histogram('dwell_seconds', 'Dwell.', [1, 10]);
  histogram.observe(2);
  assert.doesNotThrow(() => histogram.observe(NaN));
  assert.doesNotThrow(() => histogram.observe(-Infinity));
  const gauge = metrics.gauge('model_auc', 'AUC.');
  gauge.set(0.5);
  gauge.inc(NaN);
  const level = metrics.gauge('open_things', 'Open things.');
  level.set(NaN);
  const text = await hub.registry.metrics();
  assert.match(text, /^tributary_things_total\{pipeline="p",stage="s"\} 5$/m);
  assert.match(text, /^tributary_dwell_seconds_count\{pipeline="p",stage="s"\} 1$/m);
  assert.match(text, /^tributary_dwell_seconds_sum\{pipeline="p",stage="s"\} 2$/m);
  assert.match(text, /^tributary_model_auc\{pipeline="p",stage="s"\} 0.5$/m);
  // prom-client writes NaN as `Nan`; Prometheus parses it in any case.
  assert.match(text, /^tributary_open_things\{pipeline="p",stage="s"\} nan$/im);
  assert.deepEqual(
    logged.map((entry) => entry.metric),
    ['tributary_things_total', 'tributary_dwell_seconds', 'tributary_model_auc'],
    'said once per metric',
  );
  assert.equal(logged[0]!.msg, 'metric tributary_things_total: an increment of NaN ignored (not a finite number); said once');
});

test("a histogram asked for again under the same labels (a pipeline the daemon restarted in the process makes its plugins anew) goes on from its counts, as a counter does; a new series starts at 0", async () => {
  const hub = new MetricsHub();
  const scope = { pipeline: 'p', stage: 'stage-x-0' };
  const first = hub.scoped(scope);
  first.counter('things_total', 'Things.').inc(5);
  first.histogram('lat_seconds', 'Latency.', [1]).observe(0.5);
  const again = hub.scoped(scope);
  again.counter('things_total', 'Things.');
  again.histogram('lat_seconds', 'Latency.', [1]).observe(0.25);
  hub.scoped({ pipeline: 'p', stage: 'stage-y-1' }).histogram('lat_seconds', 'Latency.', [1]);
  const text = await hub.registry.metrics();
  assert.match(text, /^tributary_things_total\{pipeline="p",stage="stage-x-0"\} 5$/m);
  assert.match(text, /^tributary_lat_seconds_count\{pipeline="p",stage="stage-x-0"\} 2$/m);
  assert.match(text, /^tributary_lat_seconds_sum\{pipeline="p",stage="stage-x-0"\} 0.75$/m);
  assert.match(text, /^tributary_lat_seconds_count\{pipeline="p",stage="stage-y-1"\} 0$/m);
});

test("a log record of an error with a catalogue code gets it as top-level `code` (err keeps its own); node's codes, and a record's own code, are left alone", async () => {
  const { liftErrorCode } = await import('./telemetry.js');
  const { TributaryError } = await import('../errors.js');
  const failure = new TributaryError('TRIB_ERR_SINK', 'sink-file-0 failed: locked');
  assert.deepEqual(liftErrorCode({ pipeline: 'p', err: failure }), { pipeline: 'p', err: failure, code: 'TRIB_ERR_SINK' });
  const enoent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
  assert.deepEqual(liftErrorCode({ err: enoent }), { err: enoent });
  assert.deepEqual(liftErrorCode({ code: 'TRIB_ERR_USAGE', err: failure }), { code: 'TRIB_ERR_USAGE', err: failure });
  assert.deepEqual(liftErrorCode({ err: 'a message only' }), { err: 'a message only' });
});

test('redactSecretText: a text is said without a URL\'s user info, a secret query parameter or name=value, a JSON secret field, an HTTP credential; the rest of it stays', () => {
  const cases: [string, string][] = [
    ['token endpoint https://svc:hunter2@idp.example/token answered HTTP 401', 'token endpoint https://[redacted]@idp.example/token answered HTTP 401'],
    ['Request cannot be constructed from a URL that includes credentials: http://id:sec@127.0.0.1:1/token', 'Request cannot be constructed from a URL that includes credentials: http://[redacted]@127.0.0.1:1/token'],
    ['GET https://idp.example/token?client_id=app&client_secret=s3cr3t&scope=kafka failed', 'GET https://idp.example/token?client_id=app&client_secret=[redacted]&scope=kafka failed'],
    ['https://store.example/x?sig=abc%2Fdef&se=2026 and ?key=k1', 'https://store.example/x?sig=[redacted]&se=2026 and ?key=[redacted]'],
    ['login failed: sasl.password=hunter2, user=app', 'login failed: sasl.password=[redacted], user=app'],
    ['config {"password": "hunter2", "user": "app"}', 'config {"password": "[redacted]", "user": "app"}'],
    ['header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y', 'header Authorization: Bearer [redacted]'],
    // Left alone: a URL without user info, a key=value that is no secret, a word "token" in prose.
    ['no OAUTHBEARER token: fetch failed at http://127.0.0.1:9092/x?partition=3 (key: user_id)', 'no OAUTHBEARER token: fetch failed at http://127.0.0.1:9092/x?partition=3 (key: user_id)'],
  ];
  for (const [text, said] of cases) assert.equal(redactSecretText(text), said);
});

test('a secret value of a loaded pipeline (rememberSecretValues) is cut out of any text a log line carries: its message, an error\'s message and stack and cause, a field; short values are not', () => {
  rememberSecretValues({ sources: [{ type: 'x', security: { sasl: { password: 'pw-7f3a9c' } }, api_token: 'tok/e n', users: 10 }], note: 'pw-7f3a9c-not-a-field' });
  rememberSecretValues({ password: 'abc' });
  assert.equal(redactSecretText('refused pw-7f3a9c and tok/e n (https://x/?q=tok%2Fe%20n)'), 'refused [redacted] and [redacted] (https://x/?q=[redacted])');
  const lines: string[] = [];
  const logger = createLogger({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const error = new Error('login refused with password pw-7f3a9c', { cause: new Error('server said pw-7f3a9c is wrong') });
  logger.error({ err: error, detail: 'sent pw-7f3a9c' }, `pipeline p failed: ${error.message}`);
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes('pw-7f3a9c'), lines[0]);
  const record = JSON.parse(lines[0]!) as { msg: string; detail: string; err: { message: string; stack: string; cause: { message: string } } };
  assert.equal(record.msg, 'pipeline p failed: login refused with password [redacted]');
  assert.equal(record.err.message, 'login refused with password [redacted]');
  assert.match(record.err.stack, /^Error: login refused with password \[redacted\]\n/);
  assert.equal(record.err.cause.message, 'server said [redacted] is wrong');
  assert.equal(record.detail, 'sent [redacted]');
  assert.equal(redactSecretText('abc is too short to be cut'), 'abc is too short to be cut');
});

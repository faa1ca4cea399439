/**
 * The kafka source's consume loop failing (here: it cannot get an OAUTHBEARER token, before any broker
 * is asked) reaches the runtime at once through context.fail, named by the source, whether or not the
 * runtime is pulling from read() at that moment. No broker needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TributaryError, type SourcePlugin } from 'tributary';
import { runYaml, testContext } from 'tributary/testing';
import kafkaSource, { type KafkaSourceConfig } from './source.js';
import { rdkafka } from './common.js';

/** A token endpoint that refuses every client: the source's connect fails before it asks a broker. */
async function refusingTokenEndpoint(): Promise<{ url: string; server: Server }> {
  const server = createServer((_request, response) => {
    response.statusCode = 401;
    response.end('{"error":"invalid_client"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, server };
}

const oauthSecurity = (url: string) => ({ protocol: 'sasl_plaintext' as const, sasl: { mechanism: 'OAUTHBEARER' as const, oauthbearer: { token_endpoint_url: url, client_id: 'x', client_secret: 'y' } } });

async function assertTributaryFetchesTokens(): Promise<void> {
  // With a librdkafka built with OIDC, librdkafka fetches tokens itself and the source's connect does not fail so.
  assert.ok(!(await rdkafka()).features.includes('oidc'), 'this test needs a librdkafka without OIDC (node-rdkafka\'s bundled one)');
}

test('a kafka source whose consume loop fails reports it with context.fail at once, though no one awaits read()', async () => {
  await assertTributaryFetchesTokens();
  const { url, server } = await refusingTokenEndpoint();
  const context = testContext({ batchSize: 100 });
  const config: KafkaSourceConfig = { brokers: '127.0.0.1:1', topics: ['t'], group: 'g', start_from: 'earliest', event_time: 'field', guarantee: 'at-least-once', poll_timeout: 100, stop_at_end: false, security: oauthSecurity(url) };
  const instance = await (kafkaSource as SourcePlugin<KafkaSourceConfig>).create(config, context);
  try {
    // The first pull starts the consume loop; its result is not awaited (a runtime busy elsewhere).
    void instance.read()[Symbol.asyncIterator]().next().catch(() => undefined);
    for (let waited = 0; context.failures.length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(context.failures.length, 1, 'reported once');
    assert.match(context.failures[0]!.message, new RegExp(`token endpoint ${url} answered HTTP 401`));
    assert.match(instance.health!().detail ?? '', /^no OAUTHBEARER token: /);
  } finally {
    await instance.close?.();
    server.close();
  }
});

test('a pipeline whose kafka source\'s consume loop fails stops with TRIB_ERR_SOURCE naming that source', async () => {
  await assertTributaryFetchesTokens();
  const { url, server } = await refusingTokenEndpoint();
  const yaml = `
name: kafka-loop-failure
sources:
  - type: kafka
    brokers: "127.0.0.1:1"
    topics: [t]
    group: g
    security: { protocol: sasl_plaintext, sasl: { mechanism: OAUTHBEARER, oauthbearer: { token_endpoint_url: "${url}", client_id: x, client_secret: y } } }
sinks:
  - type: memory
`;
  try {
    await assert.rejects(runYaml(yaml), (error: unknown) => {
      assert.ok(error instanceof TributaryError, String(error));
      assert.equal(error.code, 'TRIB_ERR_SOURCE');
      // Before, the failure came only through read(), as "a source failed: ...", naming no source.
      assert.match(error.message, new RegExp(`^source-kafka-0 failed: .*token endpoint ${url} answered HTTP 401`));
      return true;
    });
  } finally {
    server.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startOpsServer } from './http.js';
import { MetricsHub } from './telemetry.js';

test('an --http-port another process holds is refused with the endpoint, the address and what to do (node said only "listen EADDRINUSE")', async () => {
  const other = createServer();
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  const port = (other.address() as AddressInfo).port;
  try {
    await assert.rejects(startOpsServer({ port, registry: new MetricsHub().registry, pipelines: () => [] }), (error: Error) => {
      assert.equal(error.message, `cannot serve /healthz, /readyz and /metrics on 127.0.0.1:${port} (--http-host, --http-port): the port is in use by another process (another daemon on this host?): give each daemon its own --http-port`);
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
      return true;
    });
  } finally {
    other.close();
  }
});

test('close() ends at once though clients hold connections open that sent nothing or half a request: a daemon that drained exits, not killed by its supervisor', { timeout: 10_000 }, async (t) => {
  const ops = await startOpsServer({ port: 0, registry: new MetricsHub().registry, pipelines: () => [] });
  const accepted = new Promise<void>((resolve) => {
    let count = 0;
    ops.server.on('connection', () => void (++count === 2 && resolve()));
  });
  const silent = connect(ops.port, '127.0.0.1');
  const partial = connect(ops.port, '127.0.0.1', () => partial.write('GET /metrics HTTP/1.1\r\nHost: x\r\n'));
  const closed = [silent, partial].map((socket) => new Promise<void>((resolve) => socket.on('close', () => resolve())));
  for (const socket of [silent, partial]) socket.on('error', () => undefined);
  // Ended whatever the outcome: left open, a close() that waits for them keeps the test file from exiting.
  t.after(() => {
    for (const socket of [silent, partial]) socket.destroy();
  });
  await accepted;
  // Before, close() waited for both until the test's timeout (node closes only idle keep-alive connections).
  await ops.close();
  await Promise.all(closed);
});

test("a pipeline's readiness that throws answers /readyz with 500 and the error; the endpoint serves on (it was an uncaught exception ending the daemon)", async () => {
  const ops = await startOpsServer({
    port: 0,
    registry: new MetricsHub().registry,
    pipelines: () => [
      {
        name: 'p',
        readiness: () => {
          throw new TypeError('a plugin gone wrong');
        },
      },
    ],
  });
  try {
    const base = `http://127.0.0.1:${ops.port}`;
    const answer = await fetch(`${base}/readyz`);
    assert.equal(answer.status, 500);
    assert.equal(await answer.text(), 'a plugin gone wrong\n');
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  } finally {
    await ops.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
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

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { needsPerson, TributaryError } from '../errors.js';
import { OPS_MAX_CONNECTIONS, OpsServerStopped, startOpsServer } from './http.js';
import { MetricsHub } from './telemetry.js';

const connectionCount = (server: Server): Promise<number> =>
  new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))));

/** A port another process holds (a plain server of the test), and its release. */
async function heldPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const other = createServer();
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  return { port: (other.address() as AddressInfo).port, release: () => new Promise<void>((resolve) => other.close(() => resolve())) };
}

test('an --http-port another process holds is refused as TRIB_ERR_HTTP_PORT (exit 2, not restarted for ever), naming the port, its flag and how to see who holds it (node said only "listen EADDRINUSE")', async () => {
  const { port, release } = await heldPort();
  try {
    await assert.rejects(startOpsServer({ port, registry: new MetricsHub().registry, pipelines: () => [], portInUseWaitMs: 0 }), (error: Error) => {
      assert.ok(error instanceof TributaryError);
      assert.equal(error.code, 'TRIB_ERR_HTTP_PORT');
      assert.ok(needsPerson(error), 'exit 2: the unit does not restart on it');
      assert.equal(
        error.message,
        `cannot serve /healthz, /readyz and /metrics on 127.0.0.1:${port} (--http-host, --http-port): port ${port} is in use by another process (another daemon on this host?): see which with \`ss -ltnp 'sport = :${port}'\` (or \`lsof -nP -iTCP:${port} -sTCP:LISTEN\`); stop it or give this daemon another --http-port`,
      );
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
      return true;
    });
  } finally {
    await release();
  }
});

test('a port in use is tried again for portInUseWaitMs, told once, then refused saying how long it waited', { timeout: 30_000 }, async () => {
  const { port, release } = await heldPort();
  const told: number[] = [];
  try {
    await assert.rejects(startOpsServer({ port, registry: new MetricsHub().registry, pipelines: () => [], portInUseWaitMs: 600, onPortInUse: (waitMs) => told.push(waitMs) }), (error: Error) => {
      assert.equal((error as TributaryError).code, 'TRIB_ERR_HTTP_PORT');
      assert.match(error.message, new RegExp(`port ${port} is in use by another process \\(another daemon on this host\\?\\), still after 0\\.6 s: see which with`));
      return true;
    });
    assert.deepEqual(told, [600]);
  } finally {
    await release();
  }
});

test('a port its holder lets go of during the wait (a previous instance ending) is taken: the start goes on', { timeout: 30_000 }, async () => {
  const { port, release } = await heldPort();
  let released: Promise<void> | undefined;
  const releaseOnce = (): Promise<void> => (released ??= release());
  try {
    // Released when the first refusal is told: the wait, not the first try, takes the port.
    const ops = await startOpsServer({ port, registry: new MetricsHub().registry, pipelines: () => [], portInUseWaitMs: 20_000, onPortInUse: () => void releaseOnce() });
    try {
      assert.ok(released, 'the first try was refused');
      assert.equal(ops.port, port);
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text(), 'ok\n');
    } finally {
      await ops.close();
    }
  } finally {
    // Held still where the start failed: an open server would keep the test file running.
    await releaseOnce();
  }
});

/** An address no interface of this host has: TEST-NET-1 (RFC 5737), never assigned. */
const absentAddress = '192.0.2.1';

test('an --http-host address no interface has (one still coming up at boot) is tried again for addressMissingWaitMs, told once, then refused as TRIB_ERR_HTTP_HOST (exit 2: was exit 1, restarted every 5 s for ever), naming the address and where to see the host\'s; its 12 tries leave no listeners behind', { timeout: 30_000 }, async () => {
  const told: number[] = [];
  // Each try's listeners were left on the server: past 10, node warned of a leak (MaxListenersExceededWarning).
  const warnings: string[] = [];
  const warned = (warning: Error): void => void warnings.push(warning.name);
  process.on('warning', warned);
  const started = Date.now();
  await assert.rejects(startOpsServer({ port: 0, host: absentAddress, registry: new MetricsHub().registry, pipelines: () => [], addressMissingWaitMs: 3000, onAddressMissing: (waitMs) => told.push(waitMs) }), (error: Error) => {
    assert.ok(error instanceof TributaryError);
    assert.equal(error.code, 'TRIB_ERR_HTTP_HOST');
    assert.ok(needsPerson(error), 'exit 2: the unit does not restart on it');
    assert.equal(
      error.message,
      `cannot serve /healthz, /readyz and /metrics on ${absentAddress}:0 (--http-host, --http-port): no network interface of this host has address ${absentAddress}, still after 3 s: check --http-host (this host's addresses: \`ip -brief address\`), or give 0.0.0.0 for every interface`,
    );
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'EADDRNOTAVAIL');
    return true;
  });
  assert.ok(Date.now() - started >= 3000, 'it waited');
  assert.deepEqual(told, [3000]);
  await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  process.off('warning', warned);
  assert.deepEqual(warnings, []);
});

test('a stop during the wait for an address ends it at once as OpsServerStopped, not as a failure of the endpoint', { timeout: 30_000 }, async () => {
  const stop = new AbortController();
  const started = Date.now();
  await assert.rejects(
    startOpsServer({ port: 0, host: absentAddress, registry: new MetricsHub().registry, pipelines: () => [], addressMissingWaitMs: 20_000, onAddressMissing: () => stop.abort(), signal: stop.signal }),
    (error: Error) => error instanceof OpsServerStopped,
  );
  assert.ok(Date.now() - started < 10_000, 'not the whole wait');
});

test('a port below 1024 this user may not take is TRIB_ERR_HTTP_PORT at once (no wait): a restart meets it again', { skip: process.getuid?.() === 0 ? 'root may take any port' : false }, async () => {
  const told: number[] = [];
  await assert.rejects(startOpsServer({ port: 1, registry: new MetricsHub().registry, pipelines: () => [], onPortInUse: (waitMs) => told.push(waitMs) }), (error: Error) => {
    assert.equal((error as TributaryError).code, 'TRIB_ERR_HTTP_PORT');
    assert.match(error.message, /on 127\.0\.0\.1:1 \(--http-host, --http-port\): permission denied \(a port below 1024 needs privileges\): choose a --http-port above 1023$/);
    return true;
  });
  assert.deepEqual(told, []);
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

test('a client that sends nothing, or trickles a request\'s headers (slow-loris), is disconnected after OPS_REQUEST_TIMEOUT_MS, and the endpoint serves on (node kept a silent one for ever, and a trickling one 60-90 s)', { timeout: 20_000 }, async (t) => {
  const ops = await startOpsServer({ port: 0, registry: new MetricsHub().registry, pipelines: () => [] });
  t.after(() => ops.close());
  const silent = connect(ops.port, '127.0.0.1');
  const loris = connect(ops.port, '127.0.0.1', () => loris.write('GET /metrics HTTP/1.1\r\nHost: x\r\n'));
  const trickle = setInterval(() => loris.writable && loris.write('X-Slow: y\r\n'), 200);
  t.after(() => {
    clearInterval(trickle);
    for (const socket of [silent, loris]) socket.destroy();
  });
  let lorisAnswer = '';
  loris.on('data', (data: Buffer) => (lorisAnswer += data.toString()));
  for (const socket of [silent, loris]) socket.on('error', () => undefined);
  const closed = [silent, loris].map((socket) => new Promise<void>((resolve) => socket.on('close', () => resolve())));
  await Promise.all(closed);
  assert.match(lorisAnswer, /^HTTP\/1\.1 408/);
  const health = await fetch(`http://127.0.0.1:${ops.port}/healthz`);
  assert.equal(health.status, 200);
});

test('past OPS_MAX_CONNECTIONS connections at once a new one is closed unanswered, so clients holding many cannot take the file descriptors the daemon needs; served again once they go', { timeout: 20_000 }, async (t) => {
  const ops = await startOpsServer({ port: 0, registry: new MetricsHub().registry, pipelines: () => [] });
  t.after(() => ops.close());
  const held = Array.from({ length: OPS_MAX_CONNECTIONS }, () => connect(ops.port, '127.0.0.1'));
  t.after(() => {
    for (const socket of held) socket.destroy();
  });
  await Promise.all(held.map((socket) => new Promise<void>((resolve) => socket.on('connect', () => resolve()))));
  // Accepted by the kernel, then closed by the server: its request gets no answer.
  const refused = await fetch(`http://127.0.0.1:${ops.port}/healthz`).then(
    () => 'answered',
    (error: Error) => (error.cause as NodeJS.ErrnoException | undefined)?.code ?? error.message,
  );
  assert.notEqual(refused, 'answered');
  for (const socket of held) socket.destroy();
  // The server counts them gone as it sees each close.
  while ((await connectionCount(ops.server)) > 0) await nextTurn();
  assert.equal((await fetch(`http://127.0.0.1:${ops.port}/healthz`)).status, 200);
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

test("/readyz names a reason without the credentials a plugin's error quoted (a URL's user info, a secret query parameter), as the logs say it", async () => {
  const ops = await startOpsServer({
    port: 0,
    registry: new MetricsHub().registry,
    pipelines: () => [{ name: 'p', readiness: () => ({ ready: false, reasons: ['source k: no OAUTHBEARER token: token endpoint https://svc:pw-s3cret@idp.example/token?client_secret=qs-s3cret answered HTTP 401'] }) }],
  });
  try {
    const answer = await fetch(`http://127.0.0.1:${ops.port}/readyz`);
    assert.equal(answer.status, 503);
    assert.deepEqual(await answer.json(), {
      ready: false,
      pipelines: [{ pipeline: 'p', ready: false, reasons: ['source k: no OAUTHBEARER token: token endpoint https://[redacted]@idp.example/token?client_secret=[redacted] answered HTTP 401'] }],
    });
  } finally {
    await ops.close();
  }
});

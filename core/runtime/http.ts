/**
 * The operations endpoint: /healthz (alive), /readyz (every pipeline restored and reaching its
 * sources and sinks), /metrics (Prometheus text). Three GET routes need no framework: node:http
 * keeps the daemon's dependencies small.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Registry } from 'prom-client';
import { TributaryError } from '../errors.js';
import { redactSecretText } from './telemetry.js';

export interface Readiness {
  name: string;
  readiness(): { ready: boolean; reasons: string[] };
}

export interface OpsServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/**
 * How long a port in use is tried again before the start is refused: a previous instance still
 * draining (a restart by hand or by a deploy script that did not wait for its end) lets go of it once
 * it exits; a port another daemon keeps is refused seconds later, not at once (exit 2: no restart mends it).
 */
export const PORT_IN_USE_WAIT_MS = 5_000;
/**
 * How long an --http-host address no interface has is tried again before the start is refused: at boot
 * an interface may get its address (DHCP, a VPN, a bridge) seconds after the daemon starts, even after
 * network-online.target. Refused at once, the daemon exited 1 and systemd restarted it every 5 s for
 * ever where the address was never to come (a typo, another host's): still absent after this, a person
 * must act (exit 2).
 */
export const ADDRESS_MISSING_WAIT_MS = 30_000;
const retryMs = 250;

/**
 * How long a client may take to send its whole request, and how long a connection may stay silent (one that
 * never sends a byte): then it is closed (408 for a request begun). Probes and Prometheus send a GET at once.
 * Node's own limits were 60 s for a request's headers (checked every 30 s) and none for a silent connection,
 * so a client holding connections open (slow-loris) kept a file descriptor each, which the daemon's Kafka
 * clients and files need, for ever.
 */
export const OPS_REQUEST_TIMEOUT_MS = 5_000;
/** Connections served at once: the probes and a few scrapers need a handful; past it a new one is closed at once, so clients holding many cannot take the daemon's file descriptors. */
export const OPS_MAX_CONNECTIONS = 64;

export interface OpsServerOptions {
  port: number;
  host?: string;
  registry: Registry;
  pipelines: () => readonly Readiness[];
  /** How long a port in use is tried again ({@link PORT_IN_USE_WAIT_MS} by default; 0: refused at once). */
  portInUseWaitMs?: number;
  /** Told once, at the first refusal of a port in use, before the wait (the daemon logs a warning). */
  onPortInUse?: (waitMs: number) => void;
  /** How long an address no interface of the host has is tried again ({@link ADDRESS_MISSING_WAIT_MS} by default; 0: refused at once). */
  addressMissingWaitMs?: number;
  /** Told once, at the first refusal of an address no interface has, before the wait (the daemon logs a warning). */
  onAddressMissing?: (waitMs: number) => void;
  /** A stop (SIGTERM) during a wait ends it: startOpsServer rejects with an OpsServerStopped, which is no failure of the endpoint. */
  signal?: AbortSignal;
}

/** A stop came while the endpoint waited for its port or address: nothing was served, and nothing is wrong with either. */
export class OpsServerStopped extends Error {}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const route = (request: IncomingMessage, response: ServerResponse): void => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      // A reason quotes a plugin's error (a client's, naming an endpoint whose URL may carry a credential): said without its secrets, as the logs say it.
      const states = options.pipelines().map((pipeline) => {
        const { ready, reasons } = pipeline.readiness();
        return { pipeline: pipeline.name, ready, reasons: reasons.map(redactSecretText) };
      });
      const ready = states.length > 0 && states.every((state) => state.ready);
      response.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ ready, pipelines: states })}\n`);
      return;
    }
    if (path === '/metrics') {
      options.registry
        .metrics()
        .then((text) => response.writeHead(200, { 'content-type': options.registry.contentType }).end(text))
        .catch((error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`));
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
  };
  const server = createServer({ headersTimeout: OPS_REQUEST_TIMEOUT_MS, requestTimeout: OPS_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1_000 }, (request, response) => {
    try {
      route(request, response);
    } catch (error) {
      // A throw in a handler (a pipeline's readiness) is this request's failure, not an uncaught exception ending the daemon.
      const message = redactSecretText(error instanceof Error ? error.message : String(error));
      if (response.headersSent) response.destroy();
      else response.writeHead(500, { 'content-type': 'text/plain' }).end(`${message}\n`);
    }
  });
  server.setTimeout(OPS_REQUEST_TIMEOUT_MS); // a silent connection (no request begun) is closed: no 'timeout' listener, so node destroys it
  server.maxConnections = OPS_MAX_CONNECTIONS;
  // Loopback unless told otherwise: metrics can reveal business figures.
  const host = options.host ?? '127.0.0.1';
  // The refusals a wait may mend, each with its own wait from the start, told once at its first refusal.
  const waits: Record<string, { waitMs: number; told?: (waitMs: number) => void; toldOnce?: boolean }> = {
    EADDRINUSE: { waitMs: options.portInUseWaitMs ?? PORT_IN_USE_WAIT_MS, told: options.onPortInUse },
    EADDRNOTAVAIL: { waitMs: options.addressMissingWaitMs ?? ADDRESS_MISSING_WAIT_MS, told: options.onAddressMissing },
  };
  const started = Date.now();
  for (;;) {
    if (options.signal?.aborted) throw new OpsServerStopped('stopped while the operations endpoint waited for its port or address');
    const refused = await listening(server, options.port, host);
    if (refused === undefined) break;
    const wait = refused.code === undefined ? undefined : waits[refused.code];
    if (wait === undefined || Date.now() - started >= wait.waitMs) throw notListening(refused, options.port, host, wait?.waitMs ?? 0);
    if (!wait.toldOnce) {
      wait.toldOnce = true;
      wait.told?.(wait.waitMs);
    }
    // A stop ends the pause at once; the loop's first line then says so.
    await sleep(retryMs, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
  }
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // close() waits for every open connection, and node times out none of a closed server's: a client
        // holding one idle or half-sent kept a drained daemon up until its supervisor killed it.
        server.closeAllConnections();
      }),
  };
}


/** Listens on `port`; resolves with the error that refused it, or undefined once listening (the server can be asked again after a refusal). */
function listening(server: Server, port: number, host: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    // Each listener taken off once the other fires: a wait of 30 s asks 120 times, and listeners left behind
    // (listen's callback is a 'listening' listener) were a leak, said by node as a MaxListenersExceededWarning.
    const refused = (error: NodeJS.ErrnoException): void => {
      server.off('listening', listened);
      resolve(error);
    };
    const listened = (): void => {
      server.off('error', refused);
      resolve(undefined);
    };
    server.once('error', refused);
    server.once('listening', listened);
    server.listen(port, host);
  });
}

/**
 * What an operator does about a port the endpoint cannot listen on (node says only `listen EADDRINUSE: ...`).
 * A port in use or one this user may not take is TRIB_ERR_HTTP_PORT, an address no interface has (still,
 * after its wait) TRIB_ERR_HTTP_HOST: exit 2, as a restart meets them again. Any other refusal stays a plain
 * error, exit 1, restarted.
 */
function notListening(error: NodeJS.ErrnoException, port: number, host: string, waitMs: number): Error {
  const where = `cannot serve /healthz, /readyz and /metrics on ${host}:${port} (--http-host, --http-port)`;
  if (error.code === 'EADDRINUSE') {
    const waited = waitMs > 0 ? `, still after ${waitMs / 1000} s` : '';
    return new TributaryError(
      'TRIB_ERR_HTTP_PORT',
      `${where}: port ${port} is in use by another process (another daemon on this host?)${waited}: see which with \`ss -ltnp 'sport = :${port}'\` (or \`lsof -nP -iTCP:${port} -sTCP:LISTEN\`); stop it or give this daemon another --http-port`,
      { cause: error },
    );
  }
  if (error.code === 'EACCES') return new TributaryError('TRIB_ERR_HTTP_PORT', `${where}: permission denied (a port below 1024 needs privileges): choose a --http-port above 1023`, { cause: error });
  if (error.code === 'EADDRNOTAVAIL') {
    const waited = waitMs > 0 ? `, still after ${waitMs / 1000} s` : '';
    return new TributaryError(
      'TRIB_ERR_HTTP_HOST',
      `${where}: no network interface of this host has address ${host}${waited}: check --http-host (this host's addresses: \`ip -brief address\`), or give 0.0.0.0 for every interface`,
      { cause: error },
    );
  }
  return new Error(`${where}: ${error.message}`, { cause: error });
}

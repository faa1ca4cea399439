/**
 * The operations endpoint: /healthz (alive), /readyz (every pipeline restored and reaching its
 * sources and sinks), /metrics (Prometheus text). Three GET routes need no framework: node:http
 * keeps the daemon's dependencies small.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  name: string;
  readiness(): { ready: boolean; reasons: string[] };
}

export interface OpsServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function startOpsServer(options: { port: number; host?: string; registry: Registry; pipelines: () => readonly Readiness[] }): Promise<OpsServer> {
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
      const states = options.pipelines().map((pipeline) => ({ pipeline: pipeline.name, ...pipeline.readiness() }));
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
  const server = createServer((request, response) => {
    try {
      route(request, response);
    } catch (error) {
      // A throw in a handler (a pipeline's readiness) is this request's failure, not an uncaught exception ending the daemon.
      const message = error instanceof Error ? error.message : String(error);
      if (response.headersSent) response.destroy();
      else response.writeHead(500, { 'content-type': 'text/plain' }).end(`${message}\n`);
    }
  });
  // Loopback unless told otherwise: metrics can reveal business figures.
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`cannot serve /healthz, /readyz and /metrics on ${host}:${options.port} (--http-host, --http-port): ${whyNotListening(error)}`, { cause: error })));
    server.listen(options.port, host, () => resolve());
  });
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

/** What an operator does about a port the endpoint cannot listen on (node says only `listen EADDRINUSE: ...`). */
function whyNotListening(error: NodeJS.ErrnoException): string {
  if (error.code === 'EADDRINUSE') return 'the port is in use by another process (another daemon on this host?): give each daemon its own --http-port';
  if (error.code === 'EACCES') return 'permission denied (a port below 1024 needs privileges): choose a port above 1023';
  if (error.code === 'EADDRNOTAVAIL') return 'no network interface of this host has that address: check --http-host';
  return error.message;
}

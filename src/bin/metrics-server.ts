/**
 * A worker's small HTTP endpoint (FORGE_METRICS_PORT): /metrics for Prometheus, /healthz for
 * liveness, /readyz once its consumers are taking jobs. No token: like the API's, these say nothing
 * a job could leak (counts and durations by job type, never ids or payloads).
 */
import http from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(options: { host: string; port: number; registry: Registry; ready: () => boolean }): Promise<MetricsServer> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n');
    if (path === '/healthz') return send(200, 'application/json', '{"status":"ok"}\n');
    if (path === '/readyz') return options.ready() ? send(200, 'application/json', '{"status":"ready"}\n') : send(503, 'application/json', '{"status":"starting"}\n');
    if (path === '/metrics') {
      options.registry.metrics().then((text) => send(200, options.registry.contentType, text), (error: unknown) => send(500, 'text/plain', `${(error as Error).message}\n`));
      return undefined;
    }
    return send(404, 'text/plain', 'this port serves /metrics, /healthz and /readyz\n');
  });
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : options.port;
  return {
    url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

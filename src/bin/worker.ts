/**
 * Composition root of `forge worker`: jobs from NATS JetStream, logs and large results to the
 * object store, git through the per-worker cache, status reports to the API's internal endpoints;
 * JSON log lines on stdout with the job's run/task/step ids, metrics on FORGE_METRICS_PORT, spans
 * to FORGE_TRACES_EXPORTER.
 */
import { existsSync } from 'node:fs';
import { pino } from 'pino';
import { devIssuerKeyPath, openDevIssuer } from '../auth/dev-issuer.ts';
import { createMetrics } from '../lib/metrics.ts';
import { instrumentQueue } from '../queue/instrumented.ts';
import type { WorkerSettings } from '../settings/settings.ts';
import { jobQueueFactory, openExecutionObjects, startWorkerPool, workerTokenSource, type RunningWorkers } from './execution.ts';
import { startMetricsServer, type MetricsServer } from './metrics-server.ts';
import { startTracing } from './telemetry.ts';

export interface RunningWorkerProcess {
  workers: RunningWorkers;
  /** Where /metrics is served, when FORGE_METRICS_PORT is set. */
  metrics: MetricsServer | undefined;
  close(): Promise<void>;
}

export async function startWorkerProcess(settings: WorkerSettings): Promise<RunningWorkerProcess> {
  const { execution } = settings;
  const cleanups: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const tracing = await startTracing(settings.telemetry, 'forge-worker', { 'forge.worker.types': settings.types.join(',') });
    cleanups.push(() => tracing.shutdown());
    const log = pino({ level: settings.logLevel, base: { pid: process.pid, service: 'forge-worker' } });
    const metrics = createMetrics();
    let ready = false;
    const metricsServer = settings.metrics ? await startMetricsServer({ ...settings.metrics, registry: metrics.registry, ready: () => ready }) : undefined;
    if (metricsServer) cleanups.push(() => metricsServer.close());
    // Only an existing key: a worker must not mint an issuer that no server trusts.
    const devIssuer = !execution.workerToken && !execution.clientCredentials && existsSync(devIssuerKeyPath(settings.dataDir))
      ? await openDevIssuer(settings.dataDir)
      : undefined;
    const token = workerTokenSource(execution, devIssuer);
    const objects = await openExecutionObjects(execution, settings.dataDir);
    cleanups.push(() => objects.close());
    const queue = instrumentQueue(await jobQueueFactory(execution, objects)(`forge-worker-${settings.types.join('-')}`), { metrics, log });
    cleanups.push(() => queue.close());
    metrics.watchQueue(() => queue.lag());
    const workers = await startWorkerPool({ execution, types: settings.types, apiUrl: settings.url, token, cacheDir: settings.cacheDir, objects, queue, dataDir: settings.dataDir, log });
    cleanups.push(() => workers.stop());
    ready = true;
    return { workers, metrics: metricsServer, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

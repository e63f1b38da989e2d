/**
 * Composition root of `forge worker`: jobs from NATS JetStream, logs and large results to the
 * object store, git through the per-worker cache, status reports to the API's internal endpoints.
 */
import { existsSync } from 'node:fs';
import { devIssuerKeyPath, openDevIssuer } from '../auth/dev-issuer.ts';
import type { WorkerSettings } from '../settings/settings.ts';
import { jobQueueFactory, openExecutionObjects, startWorkerPool, workerTokenSource, type RunningWorkers } from './execution.ts';

export interface RunningWorkerProcess {
  workers: RunningWorkers;
  close(): Promise<void>;
}

export async function startWorkerProcess(settings: WorkerSettings): Promise<RunningWorkerProcess> {
  const { execution } = settings;
  const cleanups: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    // Only an existing key: a worker must not mint an issuer that no server trusts.
    const devIssuer = !execution.workerToken && !execution.clientCredentials && existsSync(devIssuerKeyPath(settings.dataDir))
      ? await openDevIssuer(settings.dataDir)
      : undefined;
    const token = workerTokenSource(execution, devIssuer);
    const objects = await openExecutionObjects(execution, settings.dataDir);
    cleanups.push(() => objects.close());
    const queue = await jobQueueFactory(execution, objects)(`forge-worker-${settings.types.join('-')}`);
    cleanups.push(() => queue.close());
    const workers = await startWorkerPool({ execution, types: settings.types, apiUrl: settings.url, token, cacheDir: settings.cacheDir, objects, queue, dataDir: settings.dataDir });
    cleanups.push(() => workers.stop());
    return { workers, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * Composition root of `forge dispatch` (an Argo dispatcher pod): the API's internal endpoints with
 * the workers' service-account token, the jobs on NATS JetStream.
 */
import { existsSync } from 'node:fs';
import { devIssuerKeyPath, openDevIssuer } from '../auth/dev-issuer.ts';
import { connectNatsJobs } from '../queue/jobs.nats.ts';
import type { DispatchSettings } from '../settings/settings.ts';
import { runDispatch, type DispatchResult } from '../worker/dispatch.ts';
import { httpInternalApi } from '../worker/internal-api.ts';
import { workerTokenSource } from './execution.ts';

export async function dispatchOnce(settings: DispatchSettings, progress: (line: string) => void, signal?: AbortSignal): Promise<DispatchResult> {
  const { execution } = settings;
  // Only an existing key: a dispatcher must not mint an issuer that no server trusts.
  const devIssuer = !execution.workerToken && !execution.clientCredentials && existsSync(devIssuerKeyPath(settings.dataDir))
    ? await openDevIssuer(settings.dataDir)
    : undefined;
  const api = httpInternalApi({ baseUrl: settings.url, token: workerTokenSource(execution, devIssuer) });
  const queue = await connectNatsJobs(execution.natsUrl!, {
    name: `forge-dispatch-${settings.stage}`, namespace: execution.natsNamespace, timings: { ackWaitMs: execution.ackWaitMs },
  });
  try {
    return await runDispatch({ api, queue, runId: settings.runId, stage: settings.stage, group: settings.group, progress, ...(signal ? { signal } : {}) });
  } finally {
    await queue.close();
  }
}

/**
 * A worker process's job consumers: for each worker type it serves, the handler of its jobs on the
 * queue, at most `concurrency` jobs at a time per type (release workers take deployment jobs too,
 * from issue 6 on).
 */
import { WORKER_TYPES, type WorkerType } from '../domain/jobs.ts';
import { invalid } from '../domain/errors.ts';
import type { JobConsumer, JobHandler, JobQueue, ObjectStore } from '../engine/ports.ts';
import type { GitWorkspaces } from './git-workspace.ts';
import { ciHandler, discoveryHandler } from './handlers.ts';
import type { InternalApi } from './internal-api.ts';
import { artifactHandler, releaseHandler, type ReleaseRegistries } from './release-handlers.ts';
import type { PublishDestination, Publisher } from '../engine/ports.ts';

export interface WorkerDeps {
  queue: JobQueue;
  api: InternalApi;
  workspaces: GitWorkspaces;
  objects: ObjectStore;
  flushMs?: number;
  /** Artifact and release workers: where images go, how they are signed, the publishers. */
  releases?: { registries: ReleaseRegistries; publisherFor(destination: PublishDestination): Publisher; stagingRoot?: string };
}

export const SUPPORTED_WORKER_TYPES: WorkerType[] = ['discovery', 'ci', 'artifact', 'release'];

export async function startWorkers(deps: WorkerDeps, types: WorkerType[], concurrency: number): Promise<{ stop(): Promise<void> }> {
  const unsupported = types.filter((t) => !SUPPORTED_WORKER_TYPES.includes(t));
  if (unsupported.length > 0) {
    throw invalid(`worker type ${unsupported.join(', ')} has no job handler yet; this Forge runs ${SUPPORTED_WORKER_TYPES.join(', ')} workers (types: ${WORKER_TYPES.join(', ')})`, { types: unsupported });
  }
  const releases = deps.releases;
  if (!releases && (types.includes('artifact') || types.includes('release'))) {
    throw invalid('artifact and release workers need registries and publishers', { types });
  }
  const handlers: Partial<Record<WorkerType, JobHandler>> = {
    discovery: discoveryHandler({ workspaces: deps.workspaces }),
    ci: ciHandler({ api: deps.api, workspaces: deps.workspaces, objects: deps.objects, ...(deps.flushMs ? { flushMs: deps.flushMs } : {}) }),
    ...(releases ? {
      artifact: artifactHandler({ workspaces: deps.workspaces, registries: releases.registries, publisherFor: releases.publisherFor, ...(releases.stagingRoot ? { stagingRoot: releases.stagingRoot } : {}) }),
      release: releaseHandler({ workspaces: deps.workspaces, registries: releases.registries, api: deps.api }),
    } : {}),
  };
  const consumers: JobConsumer[] = [];
  for (const type of types) {
    const handler = handlers[type];
    if (handler) consumers.push(await deps.queue.consume(type, handler, { concurrency }));
  }
  return {
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}

/**
 * A worker process's job consumers: for each worker type it serves, the handler of its jobs on the
 * queue, at most `concurrency` jobs at a time per type. Artifact and release handlers come with the
 * releases work (issue 5); a worker started for those types says so instead of taking jobs it
 * cannot run.
 */
import { WORKER_TYPES, type WorkerType } from '../domain/jobs.ts';
import { invalid } from '../domain/errors.ts';
import type { JobConsumer, JobHandler, JobQueue, ObjectStore } from '../engine/ports.ts';
import type { GitWorkspaces } from './git-workspace.ts';
import { ciHandler, discoveryHandler } from './handlers.ts';
import type { InternalApi } from './internal-api.ts';

export interface WorkerDeps {
  queue: JobQueue;
  api: InternalApi;
  workspaces: GitWorkspaces;
  objects: ObjectStore;
  flushMs?: number;
}

export const SUPPORTED_WORKER_TYPES: WorkerType[] = ['discovery', 'ci'];

export async function startWorkers(deps: WorkerDeps, types: WorkerType[], concurrency: number): Promise<{ stop(): Promise<void> }> {
  const unsupported = types.filter((t) => !SUPPORTED_WORKER_TYPES.includes(t));
  if (unsupported.length > 0) {
    throw invalid(`worker type ${unsupported.join(', ')} has no job handler yet; this Forge runs ${SUPPORTED_WORKER_TYPES.join(', ')} workers (types: ${WORKER_TYPES.join(', ')})`, { types: unsupported });
  }
  const handlers: Partial<Record<WorkerType, JobHandler>> = {
    discovery: discoveryHandler({ workspaces: deps.workspaces }),
    ci: ciHandler({ api: deps.api, workspaces: deps.workspaces, objects: deps.objects, ...(deps.flushMs ? { flushMs: deps.flushMs } : {}) }),
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

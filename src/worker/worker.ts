/**
 * A worker process's job consumers: for each worker type it serves, the handler of its jobs on the
 * queue, at most `concurrency` jobs at a time per type. Release workers take both job types of
 * pipeline.releases.*: release jobs (registries needed) and deployment jobs (a GitOps writer needed).
 */
import { WORKER_TYPES, type JobType, type WorkerType } from '../domain/jobs.ts';
import { invalid } from '../domain/errors.ts';
import type { GitOpsWriter, JobConsumer, JobHandler, JobQueue, ObjectStore, SecretProviders } from '../engine/ports.ts';
import { deploymentHandler } from './deployment-handler.ts';
import type { GitWorkspaces } from './git-workspace.ts';
import { ciHandler, discoveryHandler } from './handlers.ts';
import type { InternalApi } from './internal-api.ts';
import { artifactHandler, releaseHandler, type ArtifactHandlerDeps, type ReleaseRegistries } from './release-handlers.ts';
import type { StructuredLog } from '../lib/log.ts';

export interface WorkerDeps {
  queue: JobQueue;
  api: InternalApi;
  workspaces: GitWorkspaces;
  objects: ObjectStore;
  flushMs?: number;
  /** Artifact and release workers: where images go, how they are signed, the publishers. */
  releases?: { registries: ReleaseRegistries; publisherFor: ArtifactHandlerDeps['publisherFor']; stagingRoot?: string };
  /** Release workers: the GitOps repository deployment jobs commit to. */
  gitops?: GitOpsWriter;
  /** Where step lines go (structured, with run/task/step ids). */
  log?: StructuredLog;
  /** Secret providers for steps' `secrets` and publishers' `credentials`; none = every reference fails. */
  secrets?: SecretProviders;
}

export const SUPPORTED_WORKER_TYPES: WorkerType[] = ['discovery', 'ci', 'artifact', 'release'];

export async function startWorkers(deps: WorkerDeps, types: WorkerType[], concurrency: number): Promise<{ stop(): Promise<void> }> {
  const unsupported = types.filter((t) => !SUPPORTED_WORKER_TYPES.includes(t));
  if (unsupported.length > 0) {
    throw invalid(`worker type ${unsupported.join(', ')} has no job handler yet; this Forge runs ${SUPPORTED_WORKER_TYPES.join(', ')} workers (types: ${WORKER_TYPES.join(', ')})`, { types: unsupported });
  }
  const releases = deps.releases;
  if (!releases && types.includes('artifact')) throw invalid('artifact workers need registries and publishers', { types });
  if (!releases && !deps.gitops && types.includes('release')) {
    throw invalid('release workers need registries (release jobs) or a GitOps repository (deployment jobs)', { types });
  }
  const handlers: Partial<Record<WorkerType, JobHandler>> = {
    discovery: discoveryHandler({ workspaces: deps.workspaces }),
    ci: ciHandler({ api: deps.api, workspaces: deps.workspaces, objects: deps.objects, ...(deps.flushMs ? { flushMs: deps.flushMs } : {}), ...(deps.secrets ? { secrets: deps.secrets } : {}), ...(deps.log ? { log: deps.log } : {}) }),
    ...(releases ? {
      artifact: artifactHandler({ workspaces: deps.workspaces, registries: releases.registries, publisherFor: releases.publisherFor, ...(releases.stagingRoot ? { stagingRoot: releases.stagingRoot } : {}), ...(deps.secrets ? { secrets: deps.secrets } : {}) }),
    } : {}),
    release: byJobType({
      ...(releases ? { release: releaseHandler({ workspaces: deps.workspaces, registries: releases.registries, api: deps.api }) } : {}),
      ...(deps.gitops ? { deployment: deploymentHandler({ gitops: deps.gitops }) } : {}),
    }),
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

/** One consumer, several job types on its stream: each job goes to its type's handler. */
function byJobType(handlers: Partial<Record<JobType, JobHandler>>): JobHandler {
  return (delivery) => {
    const handler = handlers[delivery.job.type];
    if (!handler) throw invalid(`this worker takes ${Object.keys(handlers).join(' and ')} jobs on its stream, not ${delivery.job.type}`, { type: delivery.job.type });
    return handler(delivery);
  };
}

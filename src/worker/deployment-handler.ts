/**
 * Deployment jobs (pipeline.releases.*, taken by release workers): commit the ReleasePointer the
 * dispatcher described and reply with the commit. The engine checked policy and approvals before
 * publishing the job; the worker only writes. A redelivered or redispatched job first looks for its
 * own commit on main, so one deployment never lands twice.
 */
import type { DeploymentJobPayload, DeploymentJobResult } from '../engine/deployments.ts';
import type { GitOpsWriter, JobHandler } from '../engine/ports.ts';

export function deploymentHandler(deps: { gitops: GitOpsWriter }): JobHandler {
  return async ({ job, deliveryCount }): Promise<DeploymentJobResult> => {
    const p = job.payload as DeploymentJobPayload;
    const { commitSha, existing } = await deps.gitops.writePointer({
      environment: p.environment, repository: p.repository, project: p.project, release: p.release, aliases: p.aliases,
      deployedBy: p.deployed_by, deployedAt: new Date(p.deployed_at),
      approvedBy: p.approved_by, approvedAt: p.approved_at === null ? null : new Date(p.approved_at),
      message: p.message, deploymentId: p.deployment_id, checkExisting: p.check_existing || deliveryCount > 1,
    });
    return { commit_sha: commitSha, ...(existing ? { existing: true } : {}) };
  };
}

/**
 * Deploying a release to an environment: policy check → approval check → record the deployment →
 * write the ReleasePointer through the GitOps port → activate it, superseding the previous active
 * deployment of that environment + project.
 *
 * Deployment: pending → active → superseded;  pending → failed (the pointer could not be written)
 */
import { randomUUID } from 'node:crypto';
import type { Deployment, Release } from '../domain/entities.ts';
import { envelope } from '../domain/entities.ts';
import { ForgeError, denied, invalid, notFound } from '../domain/errors.ts';
import { policyViolations } from '../domain/policy.ts';
import { effectiveApprovalStatus } from '../domain/statuses.ts';
import type { EngineContext } from './context.ts';
import { environmentPolicy } from './environments.ts';
import type { Page } from './ports.ts';
import { getReleaseById } from './releases.ts';

export interface DeploymentView extends Deployment {
  deployment_id: string;
  release_number: number;
  commit_sha: string;
}

async function approvalFor(ctx: EngineContext, release: Release, environment: string, approvalId: string | undefined, quorum: number) {
  const now = ctx.clock.now();
  const approvals = await ctx.store.listApprovals(release.id, environment);
  const active = approvals.filter((a) => effectiveApprovalStatus(a.status, a.expires_at, now) === 'active');
  if (approvalId !== undefined) {
    const named = approvals.find((a) => a.id === approvalId);
    if (!named) {
      throw invalid('approval_id is not an approval of this release for this environment', { field: 'approval_id', approval_id: approvalId, release_id: release.id, environment });
    }
    const status = effectiveApprovalStatus(named.status, named.expires_at, now);
    if (status !== 'active') {
      throw denied(`approval ${approvalId} is ${status}; ${environment} needs an active approval`, {
        reason: 'policy_violation', environment, violations: [{ requirement: 'requires_approval', required: 'active', actual: status }],
      });
    }
  }
  const approvers = new Set(active.map((a) => a.approver));
  if (approvers.size < quorum) {
    throw denied(`${environment} needs ${quorum} active approval${quorum > 1 ? 's' : ''} of release ${release.release_number} by distinct approvers; it has ${approvers.size}`, {
      reason: 'policy_violation', environment,
      violations: [{ requirement: 'requires_approval', required: quorum, actual: approvers.size }],
    });
  }
  return approvalId !== undefined ? approvals.find((a) => a.id === approvalId) : active[0];
}

export async function createDeployment(ctx: EngineContext, input: { release_id: string; environment: string; approval_id?: string | undefined }, actor: string): Promise<Deployment> {
  const policy = environmentPolicy(ctx, input.environment);
  const release = await getReleaseById(ctx, input.release_id);
  const facts = { trigger_type: release.trigger?.trigger_type ?? 'manual', branch: release.trigger?.branch ?? null } as const;
  const violations = policyViolations(policy, facts);
  if (violations.length > 0) {
    throw denied(`release ${release.release_number} of ${release.repository}/${release.project} may not be deployed to ${policy.name}: ${violations
      .map((v) => `${v.requirement} is [${v.required.join(', ')}], release has ${v.actual}`).join('; ')}`, {
      reason: 'policy_violation', environment: policy.name, violations,
    });
  }
  const key = `${policy.name}:${release.repository}:${release.project}`;
  // One deployment of a target at a time, across processes, from the approval check to activation:
  // pointer commits and active rows then follow the same order, and an approval is checked when used.
  return ctx.store.withLock(`deploy:${key}`, async () => {
    const approval = policy.requires_approval
      ? await approvalFor(ctx, release, policy.name, input.approval_id, policy.approvals_required)
      : undefined;
    const now = ctx.clock.now();
    const deployment: Deployment = {
      id: randomUUID(), release_id: release.id, repository: release.repository, project: release.project,
      environment: policy.name, status: 'pending', deployed_at: now, deployed_by: actor, gitops_commit_sha: null,
      approval_id: approval?.id ?? null, error: null,
    };
    await ctx.store.insertDeployment(deployment);
    let commitSha: string;
    try {
      ({ commitSha } = await ctx.gitops.writePointer({
        environment: policy.name, repository: release.repository, project: release.project, release, aliases: release.aliases,
        deployedBy: actor, deployedAt: now, approvedBy: approval?.approver ?? null, approvedAt: approval?.approved_at ?? null,
        message: `Deploy ${release.repository}/${release.project} release ${release.release_number} (${release.commit_sha.slice(0, 12)}) to ${policy.name}\n\nDeployed-by: ${actor}${approval ? `\nApproved-by: ${approval.approver} at ${approval.approved_at.toISOString()}` : ''}\nDeployment: ${deployment.id}`,
      }));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await ctx.store.updateDeployment(deployment.id, { status: 'failed', error: message });
      throw new ForgeError('service_unavailable', `the GitOps pointer could not be written; deployment ${deployment.id} is failed`, { deployment_id: deployment.id }, { cause: error });
    }
    try {
      await ctx.store.transaction(async (tx) => {
        await tx.supersedeActive(policy.name, release.repository, release.project, deployment.id);
        await tx.updateDeployment(deployment.id, { status: 'active', gitops_commit_sha: commitSha });
        await tx.insertEvents([envelope('deployment.created', { deployment_id: deployment.id, release_id: release.id, environment: policy.name, deployed_by: actor }, now)]);
      });
    } catch (error) {
      // The pointer is committed but the record could not follow: say so on the record, never leave it pending.
      await ctx.store.updateDeployment(deployment.id, {
        status: 'failed', gitops_commit_sha: commitSha,
        error: `pointer committed as ${commitSha} but the deployment could not be activated: ${error instanceof Error ? error.message : String(error)}`,
      }).catch(() => undefined);
      throw error;
    }
    ctx.eventsWritten();
    return { ...deployment, status: 'active' as const, gitops_commit_sha: commitSha };
  });
}

async function view(ctx: EngineContext, rows: Deployment[]): Promise<DeploymentView[]> {
  const releases = new Map<string, Release>();
  for (const id of new Set(rows.map((r) => r.release_id))) {
    const release = await ctx.store.getRelease(id);
    if (release) releases.set(id, release);
  }
  return rows.map((d) => ({
    ...d, deployment_id: d.id,
    release_number: releases.get(d.release_id)?.release_number ?? 0,
    commit_sha: releases.get(d.release_id)?.commit_sha ?? '',
  }));
}

export async function currentDeployment(ctx: EngineContext, environment: string, repository: string, project: string): Promise<DeploymentView> {
  environmentPolicy(ctx, environment);
  const active = await ctx.store.findActiveDeployment(environment, repository, project);
  if (!active) throw notFound(`active deployment of ${repository}/${project} in ${environment}`, { environment, repository, project });
  const [result] = await view(ctx, [active]);
  if (!result) throw new Error('deployment view missing');
  return result;
}

export async function deploymentHistory(ctx: EngineContext, environment: string, repository: string, project: string, limit: number, offset: number): Promise<Page<DeploymentView>> {
  environmentPolicy(ctx, environment);
  const page = await ctx.store.listDeployments(environment, repository, project, limit, offset);
  return { rows: await view(ctx, page.rows), total: page.total };
}

/**
 * The projects overview (GET /v1/projects): every project that has a release, its latest release,
 * and what is deployed where, with the approvers of each deployed release. Three queries whatever
 * the number of projects: the projects, the active deployments, the approvals of their releases.
 */
import { effectiveApprovalStatus } from '../domain/statuses.ts';
import type { EngineContext } from './context.ts';
import type { ActiveDeployment, ProjectSummary } from './ports.ts';

export interface DeployedRelease {
  environment: string;
  deployment_id: string;
  id: string;
  release_id: string;
  release_number: number;
  deployed_by: string;
  deployed_at: Date;
  gitops_commit_sha: string | null;
  rollback: boolean;
  /** Distinct approvers of the release for the environment whose approval was not revoked, earliest first. */
  approved_by: string[];
}

export interface ProjectOverview {
  repository: string;
  project: string;
  releases: number;
  latest_release: ProjectSummary['latest'] | null;
  /** One per environment at most, in the order of the environment policies (unknown ones after, by name). */
  deployments: DeployedRelease[];
}

export async function listProjects(ctx: EngineContext): Promise<ProjectOverview[]> {
  const [projects, active] = await Promise.all([ctx.store.listProjects(), ctx.store.listActiveDeployments()]);
  const approvals = await ctx.store.listApprovalsOfReleases([...new Set(active.map((d) => d.release_id))]);
  const now = ctx.clock.now();
  // An approval that expired after the deployment still approved it; a revoked one no longer counts.
  const approvers = new Map<string, string[]>();
  for (const approval of approvals) {
    if (effectiveApprovalStatus(approval.status, approval.expires_at, now) === 'revoked') continue;
    const key = `${approval.release_id}\n${approval.environment}`;
    const names = approvers.get(key) ?? [];
    if (!names.includes(approval.approver)) names.push(approval.approver);
    approvers.set(key, names);
  }
  const order = new Map(ctx.environments.map((e, i) => [e.name, i]));
  const rank = (environment: string) => order.get(environment) ?? order.size;
  const byProject = new Map<string, ActiveDeployment[]>();
  for (const deployment of active) {
    const key = `${deployment.repository}\n${deployment.project}`;
    byProject.set(key, [...(byProject.get(key) ?? []), deployment]);
  }
  return projects.map((p) => ({
    repository: p.repository,
    project: p.project,
    releases: p.releases,
    latest_release: p.latest,
    deployments: (byProject.get(`${p.repository}\n${p.project}`) ?? [])
      .sort((a, b) => rank(a.environment) - rank(b.environment) || (a.environment < b.environment ? -1 : a.environment > b.environment ? 1 : 0))
      .map((d) => ({
        environment: d.environment, deployment_id: d.id, id: d.id, release_id: d.release_id, release_number: d.release_number,
        deployed_by: d.deployed_by, deployed_at: d.deployed_at, gitops_commit_sha: d.gitops_commit_sha,
        rollback: d.rollback_from_release_id !== null,
        approved_by: approvers.get(`${d.release_id}\n${d.environment}`) ?? [],
      })),
  }));
}

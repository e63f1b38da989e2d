/**
 * Deploying a release to an environment (digest §4.4–4.6): a request is checked against the
 * environment's policy (trigger, branch, freeze) and approvals, then recorded `pending`; the
 * dispatcher publishes a deployment job (pipeline.releases.*) for the oldest pending deployment of
 * each target (environment + repository + project), one at a time; a release worker commits the
 * ReleasePointer and its reply activates the deployment, superseding the previous active one.
 *
 * Deployment: pending → active → superseded;  pending → failed (the pointer could not be
 * committed, the approval lapsed before the job ran, or the job ran out of attempts).
 *
 * One deployment of a target in flight at a time keeps pointer commits and active rows in the same
 * order. A redispatched job (its worker died, or it ran past its timeout) looks for its commit
 * before writing again, so a deployment is never committed twice.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEntry, Deployment, Release } from '../domain/entities.ts';
import { envelope } from '../domain/entities.ts';
import { conflict, denied, invalid, isForgeError, notFound } from '../domain/errors.ts';
import { policyViolations, type EnvironmentPolicy, type Requirement } from '../domain/policy.ts';
import { effectiveApprovalStatus, isRunTerminal } from '../domain/statuses.ts';
import type { EngineContext } from './context.ts';
import { environmentPolicy } from './environments.ts';
import type { Page, ReleaseRecord, Repos } from './ports.ts';
import { getReleaseById } from './releases.ts';

export interface DeploymentView extends Deployment {
  deployment_id: string;
  release_number: number;
  commit_sha: string;
  rollback: boolean;
}

export interface DeploymentRequest {
  release_id: string;
  environment: string;
  approval_id?: string | undefined;
  /** Beyond the seed: deploy through a frozen environment, with this justification. */
  freeze_override_reason?: string | undefined;
}

/** What the caller may do beyond requesting a deployment (the API derives it from the roles). */
export interface DeployPermissions {
  overrideFreeze: boolean;
}

/** A deployment job's payload: everything the worker needs to write and commit the pointer. */
export interface DeploymentJobPayload {
  deployment_id: string;
  run_id: string;
  environment: string;
  repository: string;
  project: string;
  release: { id: string; repository: string; project: string; commit_sha: string; release_number: number; oci_uri: string };
  aliases: { alias: string; alias_type: 'numeric' | 'tag' | 'branch' | 'custom' }[];
  deployed_by: string;
  deployed_at: string;
  approved_by: string | null;
  approved_at: string | null;
  message: string;
  /** A redispatch: the worker first looks for a commit of this deployment on main. */
  check_existing: boolean;
}

export interface DeploymentJobResult {
  commit_sha: string;
  /** The commit was found on main (a redispatched job whose first push landed). */
  existing?: boolean;
}

/** How often a deployment job is published before the deployment is failed. */
export const MAX_DEPLOYMENT_ATTEMPTS = 3;

function refusal(release: Release, policy: EnvironmentPolicy, message: string, violations: Requirement[]) {
  return denied(`release ${release.release_number} of ${release.repository}/${release.project} may not be deployed to ${policy.name}: ${message}`, {
    reason: 'policy_violation', environment: policy.name, violations,
  });
}

interface ApprovalCheck {
  approvalId: string | null;
  approvers: { approver: string; approved_at: Date }[];
}

/**
 * The approvals a deployment of `release` to the environment rests on: the quorum of distinct
 * active approvers, and the named approval (if any) must be active.
 */
async function checkApprovals(ctx: EngineContext, release: ReleaseRecord, policy: EnvironmentPolicy, approvalId: string | null | undefined): Promise<ApprovalCheck> {
  if (!policy.requires_approval) return { approvalId: null, approvers: [] };
  const now = ctx.clock.now();
  const approvals = await ctx.store.listApprovals(release.id, policy.name);
  const active = approvals.filter((a) => effectiveApprovalStatus(a.status, a.expires_at, now) === 'active');
  if (approvalId !== undefined && approvalId !== null) {
    const named = approvals.find((a) => a.id === approvalId);
    if (!named) {
      throw invalid('approval_id is not an approval of this release for this environment', { field: 'approval_id', approval_id: approvalId, release_id: release.id, environment: policy.name });
    }
    const status = effectiveApprovalStatus(named.status, named.expires_at, now);
    if (status !== 'active') {
      throw refusal(release, policy, `approval ${approvalId} is ${status}; ${policy.name} needs an active approval`, [
        { requirement: 'requires_approval', required: 'active', actual: status },
      ]);
    }
  }
  const approvers = [...new Map(active.map((a) => [a.approver, a])).values()]
    .sort((a, b) => a.approved_at.getTime() - b.approved_at.getTime());
  const quorum = policy.approvals_required;
  if (approvers.length < quorum) {
    const lapsed = approvals.filter((a) => !active.includes(a)).map((a) => `${a.approver}: ${effectiveApprovalStatus(a.status, a.expires_at, now)}`);
    throw refusal(release, policy, `${policy.name} needs ${quorum} active approval${quorum > 1 ? 's' : ''} by distinct approvers (not the release's creator); it has ${approvers.length}${lapsed.length > 0 ? ` (${lapsed.join(', ')})` : ''}`, [
      { requirement: 'requires_approval', required: quorum, actual: approvers.length },
    ]);
  }
  return {
    approvalId: approvalId ?? approvers[approvers.length - 1]?.id ?? null,
    approvers: approvers.map((a) => ({ approver: a.approver, approved_at: a.approved_at })),
  };
}

function checkFreeze(release: Release, policy: EnvironmentPolicy, input: DeploymentRequest, permissions: DeployPermissions): string | null {
  const reason = input.freeze_override_reason?.trim();
  if (!policy.frozen) {
    if (reason !== undefined) {
      throw invalid(`${policy.name} is not frozen; leave out freeze_override_reason`, { field: 'freeze_override_reason', environment: policy.name });
    }
    return null;
  }
  const why = policy.freeze_reason ? ` (${policy.freeze_reason})` : '';
  if (reason === undefined || reason === '') {
    throw refusal(release, policy, `${policy.name} is frozen${why}; an operator may override the freeze with freeze_override_reason`, [
      { requirement: 'frozen', required: 'not frozen, or freeze_override_reason by a role with deployments:override-freeze', actual: 'frozen' },
    ]);
  }
  if (!permissions.overrideFreeze) {
    throw denied(`${policy.name} is frozen${why}; overriding the freeze needs permission deployments:override-freeze`, {
      reason: 'policy_violation', environment: policy.name, permission: 'deployments:override-freeze',
      violations: [{ requirement: 'frozen', required: 'deployments:override-freeze', actual: 'frozen' }],
    });
  }
  return reason;
}

function audit(at: Date, actor: string, action: AuditEntry['action'], d: Pick<Deployment, 'id' | 'environment' | 'repository' | 'project' | 'release_id' | 'approval_id'>, details: Record<string, unknown> = {}): Omit<AuditEntry, 'id'> {
  return {
    at, actor, action, environment: d.environment, repository: d.repository, project: d.project,
    release_id: d.release_id, deployment_id: d.id, approval_id: d.approval_id, details,
  };
}

/**
 * Checks a deployment request (policy, freeze, approvals) and records it `pending`; the dispatcher
 * takes it from there. Refusals are 403 policy_violation listing required vs actual values.
 */
export async function requestDeployment(ctx: EngineContext, input: DeploymentRequest, actor: string, permissions: DeployPermissions = { overrideFreeze: false }): Promise<Deployment> {
  const policy = environmentPolicy(ctx, input.environment);
  const release = await getReleaseById(ctx, input.release_id);
  const facts = { trigger_type: release.trigger?.trigger_type ?? 'manual', branch: release.trigger?.branch ?? null } as const;
  const violations = policyViolations(policy, facts);
  if (violations.length > 0) {
    throw refusal(release, policy, violations.map((v) => `${v.requirement} is [${v.required.join(', ')}], release has ${v.actual}`).join('; '), violations);
  }
  const freezeOverride = checkFreeze(release, policy, input, permissions);
  const approval = await checkApprovals(ctx, release, policy, input.approval_id);
  const active = await ctx.store.findActiveDeployment(policy.name, release.repository, release.project);
  const activeRelease = active ? await ctx.store.getRelease(active.release_id) : undefined;
  const now = ctx.clock.now();
  const deployment: Deployment = {
    id: randomUUID(), release_id: release.id, repository: release.repository, project: release.project,
    environment: policy.name, status: 'pending', deployed_at: now, deployed_by: actor, gitops_commit_sha: null,
    approval_id: approval.approvalId, error: null, dispatched_at: null, attempts: 0, finished_at: null,
    rollback_from_release_id: activeRelease && activeRelease.release_number > release.release_number ? activeRelease.id : null,
    freeze_override: freezeOverride,
  };
  await ctx.store.transaction(async (tx) => {
    await tx.insertDeployment(deployment);
    await tx.insertEvents([envelope('deployment.created', { deployment_id: deployment.id, release_id: release.id, environment: policy.name, deployed_by: actor }, now)]);
    await tx.insertAudit([
      audit(now, actor, 'deployment.requested', deployment, {
        release_number: release.release_number, commit_sha: release.commit_sha,
        approvers: approval.approvers.map((a) => a.approver),
        ...(deployment.rollback_from_release_id ? { rollback_from_release_number: activeRelease?.release_number } : {}),
      }),
      ...(freezeOverride ? [audit(now, actor, 'deployment.freeze_overridden', deployment, { justification: freezeOverride, freeze_reason: policy.freeze_reason ?? null })] : []),
    ]);
  });
  ctx.eventsWritten();
  ctx.runChanged(deployment.id);
  return deployment;
}

/** The (environment, repository, project) a deployment belongs to, as one key. */
export function deploymentTarget(d: Pick<Deployment, 'environment' | 'repository' | 'project'>): string {
  return `${d.environment}:${d.repository}:${d.project}`;
}

export type DeploymentClaim =
  | { kind: 'idle' }
  | { kind: 'busy'; deployment: Deployment }
  | { kind: 'dispatch'; payload: DeploymentJobPayload }
  | { kind: 'failed'; deployment: Deployment };

/** Who asks for a target's next deployment (decision 207). */
export interface ClaimOptions {
  /** A run's Workflow `deployment` node: only these deployments (the run's), and only when one is the target's next. */
  only?: ReadonlySet<string>;
  /**
   * The API's dispatcher under Argo Workflows: a run's auto-deploy is its Workflow's to publish; the
   * API takes it only once it has waited a whole `timeoutMs` since it was requested, undispatched.
   */
  leaveToWorkflows?: boolean;
}

/** The actor of the deployments a new release requests by itself (auto-deploy). */
export const AUTO_DEPLOY_ACTOR = 'forge-release';

/**
 * Whether a deployment is a run's auto-deploy that the run's Argo Workflow will publish (its
 * `deployment` node): only while that run is unfinished or succeeded. A run that failed after one
 * of its releases (another project's release failed) never reaches that node.
 */
async function workflowDeploys(tx: Repos, d: Deployment): Promise<boolean> {
  if (d.deployed_by !== AUTO_DEPLOY_ACTOR) return false;
  const release = await tx.getRelease(d.release_id);
  const run = release?.pipeline_run_id ? await tx.getRun(release.pipeline_run_id) : undefined;
  return run?.argo_workflow_name != null && (run.status === 'success' || !isRunTerminal(run.status));
}

/**
 * The dispatcher's step for one target: when no deployment of it is in flight, claims the oldest
 * pending one (marks it dispatched) and returns the job payload. A deployment in flight past
 * `timeoutMs` is claimed again (the job looks for its own commit first) until MAX_DEPLOYMENT_ATTEMPTS.
 * A deployment whose approvals lapsed while it waited is failed here, before any commit. Whoever
 * claims (the API's dispatcher or a Workflow's deployment node) publishes; one lock per target
 * keeps one deployment in flight per target either way.
 */
export async function claimNextDeployment(ctx: EngineContext, target: Pick<Deployment, 'environment' | 'repository' | 'project'>, timeoutMs: number, options: ClaimOptions = {}): Promise<DeploymentClaim> {
  const now = ctx.clock.now();
  const claimed = await ctx.store.transaction(async (tx): Promise<DeploymentClaim | { kind: 'claimed'; deployment: Deployment }> => {
    await tx.lock(`deploy:${deploymentTarget(target)}`);
    const [first] = await tx.listPendingDeployments(target.environment, target.repository, target.project);
    if (!first) return { kind: 'idle' };
    if (options.only && !options.only.has(first.id)) return { kind: 'busy', deployment: first };
    if (first.dispatched_at === null && options.leaveToWorkflows && now.getTime() - first.deployed_at.getTime() <= timeoutMs && await workflowDeploys(tx, first)) {
      return { kind: 'busy', deployment: first };
    }
    if (first.dispatched_at !== null) {
      if (now.getTime() - first.dispatched_at.getTime() <= timeoutMs) return { kind: 'busy', deployment: first };
      if (first.attempts >= MAX_DEPLOYMENT_ATTEMPTS) {
        return { kind: 'failed', deployment: await failIn(tx, ctx, first, `no result from the deployment job after ${first.attempts} attempts of ${Math.round(timeoutMs / 1000)}s each; the pointer may or may not be committed (look for "Deployment: ${first.id}" in the GitOps history)`) };
      }
    }
    const patch = { dispatched_at: now, attempts: first.attempts + 1 };
    await tx.updateDeployment(first.id, patch);
    return { kind: 'claimed', deployment: { ...first, ...patch } };
  });
  if (claimed.kind !== 'claimed') {
    if (claimed.kind === 'failed') ctx.eventsWritten();
    return claimed;
  }
  const deployment = claimed.deployment;
  try {
    return { kind: 'dispatch', payload: await jobPayload(ctx, deployment) };
  } catch (error) {
    if (!isForgeError(error) || !['permission_denied', 'validation_error', 'not_found'].includes(error.code)) throw error;
    const failed = await failDeployment(ctx, deployment.id, `not deployed: ${error.message}`);
    return { kind: 'failed', deployment: failed ?? deployment };
  }
}

async function jobPayload(ctx: EngineContext, deployment: Deployment): Promise<DeploymentJobPayload> {
  const policy = environmentPolicy(ctx, deployment.environment);
  const release = await getReleaseById(ctx, deployment.release_id);
  // Approvals are checked again when used: when the quorum no longer holds (an approval was revoked
  // or expired while the deployment waited), it stops here.
  const approval = await checkApprovals(ctx, release, policy, undefined);
  const previous = deployment.rollback_from_release_id ? await ctx.store.getRelease(deployment.rollback_from_release_id) : undefined;
  const last = approval.approvers[approval.approvers.length - 1];
  return {
    deployment_id: deployment.id, run_id: deployment.id, environment: deployment.environment,
    repository: release.repository, project: release.project,
    release: { id: release.id, repository: release.repository, project: release.project, commit_sha: release.commit_sha, release_number: release.release_number, oci_uri: release.oci_uri },
    aliases: release.aliases.map((a) => ({ alias: a.alias, alias_type: a.alias_type })),
    deployed_by: deployment.deployed_by, deployed_at: deployment.deployed_at.toISOString(),
    approved_by: approval.approvers.length > 0 ? approval.approvers.map((a) => a.approver).join(', ') : null,
    approved_at: last ? last.approved_at.toISOString() : null,
    message: commitMessage(deployment, release, previous, approval),
    check_existing: deployment.attempts > 1,
  };
}

/** A label for a release in messages: its tag, else its branch alias, else its short SHA. */
function releaseLabel(release: Pick<ReleaseRecord, 'aliases' | 'commit_sha'>): string {
  return release.aliases.find((a) => a.alias_type === 'tag')?.alias
    ?? release.aliases.find((a) => a.alias_type === 'branch')?.alias
    ?? release.commit_sha.slice(0, 12);
}

/** The pointer commit's message: who, which release, which approvals; a rollback says so first. */
export function commitMessage(deployment: Deployment, release: ReleaseRecord, previous: ReleaseRecord | undefined, approval: ApprovalCheck): string {
  const subject = previous
    ? `Rollback ${release.project} in ${deployment.environment} to release ${release.release_number} (${releaseLabel(release)})`
    : `Deploy ${release.project} release ${release.release_number} (${releaseLabel(release)}) to ${deployment.environment}`;
  const body = [
    `Repository: ${release.repository}`,
    `Release: ${release.release_number} (${release.commit_sha})`,
    ...(previous ? [`Previous release: ${previous.release_number} (${releaseLabel(previous)}, ${previous.commit_sha})`] : []),
  ];
  const trailers = [
    `${previous ? 'Rolled-back-by' : 'Deployed-by'}: ${deployment.deployed_by}`,
    ...approval.approvers.map((a) => `Approved-by: ${a.approver} at ${a.approved_at.toISOString()}`),
    ...(deployment.freeze_override ? [`Freeze-override: ${deployment.freeze_override.replace(/\s+/g, ' ')}`] : []),
    `Deployment: ${deployment.id}`,
  ];
  return `${subject}\n\n${body.join('\n')}\n\n${trailers.join('\n')}`;
}

/** The worker committed the pointer: the deployment becomes the active one of its target. */
export async function completeDeployment(ctx: EngineContext, id: string, commitSha: string): Promise<Deployment | undefined> {
  if (!/^[0-9a-f]{40}$/.test(commitSha)) throw invalid('gitops commit SHA must be 40 hex digits', { field: 'commit_sha' });
  const now = ctx.clock.now();
  const done = await ctx.store.transaction(async (tx) => {
    const d = await tx.getDeployment(id, { forUpdate: true });
    if (!d || d.status !== 'pending') return undefined; // a late reply (failed meanwhile, or a duplicate)
    const release = await tx.getRelease(d.release_id);
    await tx.supersedeActive(d.environment, d.repository, d.project, d.id);
    const patch = { status: 'active' as const, gitops_commit_sha: commitSha, finished_at: now, error: null };
    await tx.updateDeployment(d.id, patch);
    await tx.insertEvents([envelope('deployment.activated', {
      deployment_id: d.id, release_id: d.release_id, environment: d.environment, repository: d.repository, project: d.project,
      release_number: release?.release_number ?? 0, gitops_commit_sha: commitSha, rollback: d.rollback_from_release_id !== null,
    }, now)]);
    await tx.insertAudit([audit(now, d.deployed_by, 'deployment.activated', d, { gitops_commit_sha: commitSha, release_number: release?.release_number ?? null })]);
    return { ...d, ...patch };
  });
  if (done) ctx.eventsWritten();
  return done;
}

async function failIn(tx: Repos, ctx: EngineContext, d: Deployment, error: string): Promise<Deployment> {
  const now = ctx.clock.now();
  const patch = { status: 'failed' as const, error, finished_at: now };
  await tx.updateDeployment(d.id, patch);
  await tx.insertEvents([envelope('deployment.failed', { deployment_id: d.id, release_id: d.release_id, environment: d.environment, repository: d.repository, project: d.project, error }, now)]);
  await tx.insertAudit([audit(now, d.deployed_by, 'deployment.failed', d, { error })]);
  return { ...d, ...patch };
}

/** The pointer could not be committed: the deployment is failed; the release and the active deployment stay. */
export async function failDeployment(ctx: EngineContext, id: string, error: string): Promise<Deployment | undefined> {
  const done = await ctx.store.transaction(async (tx) => {
    const d = await tx.getDeployment(id, { forUpdate: true });
    if (!d || d.status !== 'pending') return undefined;
    return failIn(tx, ctx, d, error);
  });
  if (done) ctx.eventsWritten();
  return done;
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
    rollback: d.rollback_from_release_id !== null,
  }));
}

async function viewOne(ctx: EngineContext, deployment: Deployment): Promise<DeploymentView> {
  const [result] = await view(ctx, [deployment]);
  if (!result) throw new Error('deployment view missing');
  return result;
}

export async function getDeployment(ctx: EngineContext, id: string): Promise<DeploymentView> {
  const deployment = await ctx.store.getDeployment(id);
  if (!deployment) throw notFound('deployment', { deployment_id: id });
  return viewOne(ctx, deployment);
}

export async function currentDeployment(ctx: EngineContext, environment: string, repository: string, project: string): Promise<DeploymentView> {
  environmentPolicy(ctx, environment);
  const active = await ctx.store.findActiveDeployment(environment, repository, project);
  if (!active) throw notFound(`active deployment of ${repository}/${project} in ${environment}`, { environment, repository, project });
  return viewOne(ctx, active);
}

export async function deploymentHistory(ctx: EngineContext, environment: string, repository: string, project: string, limit: number, offset: number): Promise<Page<DeploymentView>> {
  environmentPolicy(ctx, environment);
  const page = await ctx.store.listDeployments(environment, repository, project, limit, offset);
  return { rows: await view(ctx, page.rows), total: page.total };
}

/**
 * What `forge rollback` deploys: of the releases once active in the target, the highest-numbered
 * one below the active release. 404 when nothing is deployed; 409 when there is nothing older.
 */
export async function rollbackTarget(ctx: EngineContext, environment: string, repository: string, project: string): Promise<{ release: ReleaseRecord; current: DeploymentView }> {
  const current = await currentDeployment(ctx, environment, repository, project);
  const previousId = await ctx.store.findRollbackRelease(environment, repository, project, current.release_number);
  if (!previousId) {
    throw conflict(`no earlier release of ${repository}/${project} was deployed to ${environment} (release ${current.release_number} is active); deploy a release explicitly with forge deploy`, {
      environment, repository, project, active_release_number: current.release_number,
    });
  }
  return { release: await getReleaseById(ctx, previousId), current };
}

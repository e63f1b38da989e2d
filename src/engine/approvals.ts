/**
 * Approvals of a release for an environment. The approver is the caller's identity; nobody approves
 * a release they created. An approval is active until it expires (default 24 h) or is revoked;
 * `expired` is derived from expires_at when read, so it is right at any moment without a sweeper.
 */
import { randomUUID } from 'node:crypto';
import { envelope, type AuditEntry, type ReleaseApproval } from '../domain/entities.ts';
import { conflict, denied, notFound } from '../domain/errors.ts';
import { effectiveApprovalStatus } from '../domain/statuses.ts';
import type { EngineContext } from './context.ts';
import type { AuditFilter, Page } from './ports.ts';
import { environmentPolicy } from './environments.ts';
import { getReleaseById } from './releases.ts';

export interface ApprovalView extends ReleaseApproval {
  approval_id: string;
}

export function viewApproval(approval: ReleaseApproval, now: Date): ApprovalView {
  return { ...approval, approval_id: approval.id, status: effectiveApprovalStatus(approval.status, approval.expires_at, now) };
}

export async function createApproval(ctx: EngineContext, input: { release_id: string; environment: string; justification: string }, approver: string): Promise<ApprovalView> {
  environmentPolicy(ctx, input.environment);
  const release = await getReleaseById(ctx, input.release_id);
  if (release.created_by === approver) {
    throw denied('you created this release and cannot approve it yourself; ask another approver', {
      reason: 'self_approval', release_id: release.id, created_by: release.created_by,
    });
  }
  const now = ctx.clock.now();
  const approval: ReleaseApproval = {
    id: randomUUID(), release_id: release.id, environment: input.environment, approver, approved_at: now,
    expires_at: new Date(now.getTime() + ctx.approvalTtlMs), justification: input.justification,
    status: 'active', revoked_at: null, revoked_by: null,
  };
  await ctx.store.transaction(async (tx) => {
    // Serialise approvals of one release+environment so one approver cannot hold two active ones.
    await tx.lock(`approval:${release.id}:${input.environment}`);
    const mine = (await tx.listApprovals(release.id, input.environment))
      .find((a) => a.approver === approver && effectiveApprovalStatus(a.status, a.expires_at, now) === 'active');
    if (mine) {
      throw conflict(`you already approved this release for ${input.environment}`, { approval_id: mine.id, expires_at: mine.expires_at });
    }
    await tx.insertApproval(approval);
    await tx.insertEvents([envelope('approval.created', {
      approval_id: approval.id, release_id: release.id, environment: approval.environment, approver, expires_at: (approval.expires_at ?? now).toISOString(),
    }, now)]);
    await tx.insertAudit([auditOf(approval, now, approver, 'approval.created', release, { justification: approval.justification, expires_at: approval.expires_at })]);
  });
  ctx.eventsWritten();
  return viewApproval(approval, now);
}

/** The approvals of a release for an environment, newest first; 404 when there are none. */
export async function listApprovals(ctx: EngineContext, releaseId: string, environment: string): Promise<ApprovalView[]> {
  environmentPolicy(ctx, environment);
  await getReleaseById(ctx, releaseId);
  const now = ctx.clock.now();
  const approvals = (await ctx.store.listApprovals(releaseId, environment)).map((a) => viewApproval(a, now));
  if (approvals.length === 0) throw notFound(`approval of release ${releaseId} for ${environment}`, { release_id: releaseId, environment });
  return approvals;
}

export async function revokeApproval(ctx: EngineContext, id: string, actor: string): Promise<ApprovalView> {
  const now = ctx.clock.now();
  const revoked = await ctx.store.transaction(async (tx) => {
    const approval = await tx.getApproval(id, { forUpdate: true });
    if (!approval) throw notFound('approval', { approval_id: id });
    const status = effectiveApprovalStatus(approval.status, approval.expires_at, now);
    if (status !== 'active') throw conflict(`approval is already ${status}`, { approval_id: id, status });
    const patch = { status: 'revoked' as const, revoked_at: now, revoked_by: actor };
    await tx.updateApproval(id, patch);
    const release = await tx.getRelease(approval.release_id);
    await tx.insertEvents([envelope('approval.revoked', { approval_id: id, release_id: approval.release_id, environment: approval.environment, revoked_by: actor }, now)]);
    await tx.insertAudit([auditOf(approval, now, actor, 'approval.revoked', release, { approver: approval.approver })]);
    return viewApproval({ ...approval, ...patch }, now);
  });
  ctx.eventsWritten();
  return revoked;
}

function auditOf(approval: ReleaseApproval, at: Date, actor: string, action: AuditEntry['action'], release: { repository: string; project: string; release_number: number } | undefined, details: Record<string, unknown>): Omit<AuditEntry, 'id'> {
  return {
    at, actor, action, environment: approval.environment, repository: release?.repository ?? null, project: release?.project ?? null,
    release_id: approval.release_id, deployment_id: null, approval_id: approval.id,
    details: { ...details, ...(release ? { release_number: release.release_number } : {}) },
  };
}

/** The audit trail, newest first, filtered (GET /v1/audit). */
export async function listAudit(ctx: EngineContext, filter: AuditFilter, limit: number, offset: number): Promise<Page<AuditEntry>> {
  if (filter.environment !== undefined) environmentPolicy(ctx, filter.environment);
  return ctx.store.listAudit(filter, limit, offset);
}

/**
 * Statuses of every entity as closed unions, with their rules beside them.
 *
 * Run:        pending → running → success | failed | cancelled   (pending → failed | cancelled too)
 * Phase/Task/Step: pending → running → success | failed;  pending → skipped;  pending → failed
 * Deployment: pending → active → superseded;  pending → failed
 * Approval:   active → revoked;  active reads as expired once expires_at has passed (derived, see approvals.ts)
 *
 * "The user's step failed" is `failed`; "the platform failed" is an error code + reason on the record.
 */
import { assertNever } from '../lib/assert-never.ts';

export const RUN_STATUSES = ['pending', 'running', 'success', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const EXECUTION_STATUSES = ['pending', 'running', 'success', 'failed', 'skipped'] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

/** What a worker may report for a task or step (seed 06 internal APIs). */
export const REPORTED_STATUSES = ['running', 'success', 'failed'] as const;
export type ReportedStatus = (typeof REPORTED_STATUSES)[number];

export const TRIGGER_TYPES = ['push', 'pull_request', 'manual'] as const;
export type TriggerType = (typeof TRIGGER_TYPES)[number];

export const RELEASE_TRIGGER_TYPES = ['branch_push', 'tag', 'manual'] as const;
export type ReleaseTriggerType = (typeof RELEASE_TRIGGER_TYPES)[number];

export const ALIAS_TYPES = ['numeric', 'tag', 'branch', 'custom'] as const;
export type AliasType = (typeof ALIAS_TYPES)[number];

export const ARTIFACT_TYPES = ['container', 'binary', 'archive'] as const;
export type ArtifactType = (typeof ARTIFACT_TYPES)[number];

/**
 * A release build (the release phase of one project, or a manual release): `pending` until its plan
 * is known (manual builds run discovery first), `building` while its artifact jobs run, `releasing`
 * while the release job renders, pushes and registers, then `success`, `failed` or `cancelled`.
 */
export const RELEASE_BUILD_STATUSES = ['pending', 'building', 'releasing', 'success', 'failed', 'cancelled'] as const;
export type ReleaseBuildStatus = (typeof RELEASE_BUILD_STATUSES)[number];

export function isReleaseBuildTerminal(status: ReleaseBuildStatus): boolean {
  switch (status) {
    case 'pending':
    case 'building':
    case 'releasing':
      return false;
    case 'success':
    case 'failed':
    case 'cancelled':
      return true;
    default:
      return assertNever(status, 'release build status');
  }
}

/**
 * Beyond the seed: the signature status of an artifact's tracking image, as read when asked (not
 * stored). `unsigned` (the image has no signature) becomes `verified` once Forge signs it; `verified`
 * stays so for that digest. `invalid`: signatures are there and none verifies with the platform's key
 * for this digest, or the image is not the digest the release recorded. `unavailable`: the registry
 * could not be read (unreachable, refused, no such image, no key to verify with): nothing is known.
 */
export const SIGNATURE_STATUSES = ['verified', 'unsigned', 'invalid', 'unavailable'] as const;
export type SignatureStatus = (typeof SIGNATURE_STATUSES)[number];

export const DEPLOYMENT_STATUSES = ['pending', 'active', 'superseded', 'failed'] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

export const APPROVAL_STATUSES = ['active', 'expired', 'revoked'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

export function isRunTerminal(status: RunStatus): boolean {
  switch (status) {
    case 'pending':
    case 'running':
      return false;
    case 'success':
    case 'failed':
    case 'cancelled':
      return true;
    default:
      return assertNever(status, 'run status');
  }
}

export function isExecutionTerminal(status: ExecutionStatus): boolean {
  switch (status) {
    case 'pending':
    case 'running':
      return false;
    case 'success':
    case 'failed':
    case 'skipped':
      return true;
    default:
      return assertNever(status, 'execution status');
  }
}

/** The statuses a task or step may move to from `from` when a worker reports `to`. */
export function canReport(from: ExecutionStatus, to: ReportedStatus): boolean {
  switch (to) {
    case 'running':
      return from === 'pending';
    case 'success':
      return from === 'running';
    case 'failed':
      return from === 'pending' || from === 'running';
    default:
      return assertNever(to, 'reported status');
  }
}

export function isDeploymentTerminal(status: DeploymentStatus): boolean {
  switch (status) {
    case 'pending':
    case 'active':
      return false;
    case 'superseded':
    case 'failed':
      return true;
    default:
      return assertNever(status, 'deployment status');
  }
}

/** A stored approval row is `active` or `revoked`; `expired` is derived from the clock. */
export function effectiveApprovalStatus(
  stored: ApprovalStatus,
  expiresAt: Date | null,
  now: Date,
): ApprovalStatus {
  switch (stored) {
    case 'active':
      return expiresAt !== null && expiresAt.getTime() <= now.getTime() ? 'expired' : 'active';
    case 'expired':
    case 'revoked':
      return stored;
    default:
      return assertNever(stored, 'approval status');
  }
}

/**
 * The seed's entities (06 Domain Model), field for field, as stored. Field names are the seed's
 * snake_case so a record can be returned by the API without a mapping layer. Additions beyond the
 * seed are marked and explained in docs/decisions.md.
 */
import type {
  AliasType,
  ApprovalStatus,
  ArtifactType,
  DeploymentStatus,
  ExecutionStatus,
  ReleaseBuildStatus,
  ReleaseTriggerType,
  RunStatus,
  TriggerType,
} from './statuses.ts';

export interface GithubContext {
  pr_number?: number;
  run_id?: number;
  context?: string;
  check_run_id?: number;
}

export interface PipelineRun {
  id: string;
  repository: string;
  branch: string;
  commit_sha: string;
  triggered_by: string;
  trigger_type: TriggerType;
  status: RunStatus;
  started_at: Date;
  completed_at: Date | null;
  argo_workflow_name: string | null;
  discovery_output: unknown;
  /** Beyond the seed: optional GitHub context sent by the Actions trigger (digest §7.19). */
  github_context: GithubContext | null;
  /** Beyond the seed: why the platform (not the user's step) failed the run. */
  error_code: string | null;
  error_message: string | null;
  created_at: Date;
  /** Beyond the seed: 1, plus one for each retry of its failed tasks (POST /v1/runs/{id}/retry). */
  attempt: number;
  /** Beyond the seed (dispatcher bookkeeping): when the discovery job was published. */
  discovery_dispatched_at: Date | null;
  /** Beyond the seed: when the watchdog fails the run if it has not finished (24 h cap). */
  deadline_at: Date | null;
  /** Beyond the seed: when the PR summary comment was claimed (posted at most once). */
  pr_comment_posted_at: Date | null;
  /** Beyond the seed: W3C traceparent of the request that created the run (its trace's root); null when not traced. */
  trace_context: string | null;
  /** Beyond the seed: when the retention job deleted the run's step logs (FORGE_LOG_RETENTION); a retry clears it. */
  logs_expired_at: Date | null;
  /** Bookkeeping, not shown: which of its repository's slots an unfinished run holds (the run limit; migration 006). */
  active_slot: number | null;
}

export interface PhaseExecution {
  id: string;
  pipeline_run_id: string;
  phase_name: string;
  group_number: number;
  status: ExecutionStatus;
  started_at: Date | null;
  completed_at: Date | null;
}

export interface TaskExecution {
  id: string;
  phase_execution_id: string;
  project_name: string;
  project_path: string;
  status: ExecutionStatus;
  started_at: Date | null;
  completed_at: Date | null;
  /** Beyond the seed: the `error` a worker reports with PUT /v1/tasks/{id}/status. */
  error: string | null;
  /** Beyond the seed: how many times a worker claimed the task; reports of older attempts are refused. */
  attempt: number;
  /** Beyond the seed (dispatcher bookkeeping): when its job was published, and when the watchdog fails it. */
  dispatched_at: Date | null;
  deadline_at: Date | null;
}

export interface StepExecution {
  id: string;
  task_execution_id: string;
  step_name: string;
  action: string;
  target: string;
  status: ExecutionStatus;
  started_at: Date | null;
  completed_at: Date | null;
  exit_code: number | null;
  logs_s3_key: string | null;
  /** Beyond the seed: the task attempt that last ran the step. */
  attempt: number;
  /** Beyond the seed: when the retention job deleted this step's log (its key is then null: the log reads 410). */
  logs_expired_at: Date | null;
}

export interface Release {
  id: string;
  repository: string;
  project: string;
  commit_sha: string;
  release_number: number;
  pipeline_run_id: string | null;
  oci_uri: string;
  oci_digest: string | null;
  created_at: Date;
  created_by: string;
}

export interface ReleaseAlias {
  id: string;
  release_id: string;
  /** Denormalised so aliases are unique per (repository, project) (digest §7.25). */
  repository: string;
  project: string;
  alias: string;
  alias_type: AliasType;
}

export interface ReleaseTrigger {
  release_id: string;
  trigger_type: ReleaseTriggerType;
  branch: string | null;
  tag: string | null;
  triggered_by: string;
  triggered_at: Date;
}

export interface ReleaseArtifact {
  id: string;
  release_id: string;
  artifact_name: string;
  artifact_type: ArtifactType;
  tracking_oci_uri: string;
  tracking_oci_digest: string | null;
  primary_published_uri: string;
  created_at: Date;
}

export interface Deployment {
  id: string;
  release_id: string;
  /** Denormalised from the release: one active deployment per (environment, repository, project). */
  repository: string;
  project: string;
  environment: string;
  status: DeploymentStatus;
  deployed_at: Date;
  deployed_by: string;
  gitops_commit_sha: string | null;
  approval_id: string | null;
  error: string | null;
  /** Dispatcher bookkeeping: when the deployment job was last published, and how often. */
  dispatched_at: Date | null;
  attempts: number;
  /** When it became active or failed. */
  finished_at: Date | null;
  /** A rollback: the release that was active when it was requested (a newer one). */
  rollback_from_release_id: string | null;
  /** Deployed through a frozen environment: the justification of the override. */
  freeze_override: string | null;
}

/** Actions recorded in the audit trail (GET /v1/audit). */
export const AUDIT_ACTIONS = [
  'approval.created',
  'approval.revoked',
  'deployment.requested',
  'deployment.activated',
  'deployment.failed',
  'deployment.freeze_overridden',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  id: string;
  at: Date;
  actor: string;
  action: AuditAction;
  environment: string | null;
  repository: string | null;
  project: string | null;
  release_id: string | null;
  deployment_id: string | null;
  approval_id: string | null;
  details: Record<string, unknown>;
}

export interface ReleaseApproval {
  id: string;
  release_id: string;
  environment: string;
  approver: string;
  approved_at: Date;
  expires_at: Date | null;
  justification: string;
  /** Stored as active | revoked; `expired` is derived when read (statuses.ts). */
  status: ApprovalStatus;
  revoked_at: Date | null;
  revoked_by: string | null;
}

/** What one artifact job of a release build reported (the artifact job's result, digest §3.5). */
export interface ArtifactJobState {
  status: 'pending' | 'success' | 'failed';
  dispatched_at?: string;
  /** `ArtifactJobResult` of src/engine/release-builds.ts on success. */
  result?: Record<string, unknown>;
  error?: string;
}

/** The plan of a release build: what discovery found for the project at the commit. */
export interface ReleaseBuildPlan {
  project_path: string;
  tagging_strategy: 'monorepo' | 'tag-all';
  /** project.cue `artifacts`, by name. */
  artifacts: Record<string, Record<string, unknown>>;
  /** repo.cue `publishers`, by name. */
  publishers: Record<string, Record<string, unknown>>;
}

/**
 * Beyond the seed: the release phase of one project in one run attempt, or a manual release
 * (`forge release create` / `forge release retry`): artifact jobs, then the release job. Only a
 * successful build leaves a Release row (digest §7.4); a failed one leaves its error here.
 */
export interface ReleaseBuild {
  id: string;
  repository: string;
  project: string;
  commit_sha: string;
  branch: string | null;
  pipeline_run_id: string | null;
  run_attempt: number | null;
  trigger: { type: ReleaseTriggerType; branch?: string; tag?: string };
  status: ReleaseBuildStatus;
  plan: ReleaseBuildPlan | null;
  artifacts: Record<string, ArtifactJobState>;
  /** The release it made (or rebuilt, for a retry). */
  release_id: string | null;
  error_message: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  /** Dispatcher bookkeeping: when the discovery (manual builds) and release jobs were published. */
  plan_dispatched_at: Date | null;
  release_dispatched_at: Date | null;
}

export const EVENT_TYPES = [
  'pipeline.run.created',
  'pipeline.run.completed',
  'pipeline.run.retried',
  'release.created',
  'release.build.failed',
  'deployment.created',
  'deployment.activated',
  'deployment.failed',
  'approval.created',
  'approval.revoked',
  'retention.applied',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EventData {
  'pipeline.run.created': { run_id: string; repository: string; commit_sha: string };
  'pipeline.run.completed': { run_id: string; status: RunStatus; duration_seconds: number };
  /** Beyond the seed: POST /v1/runs/{id}/retry started attempt `attempt`, re-running `tasks` tasks. */
  'pipeline.run.retried': { run_id: string; attempt: number; tasks: number; retried_by: string };
  'release.created': {
    release_id: string;
    repository: string;
    project: string;
    commit_sha: string;
    release_number: number;
  };
  /** Beyond the seed: a release build failed; no release was registered. */
  'release.build.failed': { build_id: string; repository: string; project: string; commit_sha: string; pipeline_run_id: string | null; error: string };
  'deployment.created': { deployment_id: string; release_id: string; environment: string; deployed_by: string };
  /** Beyond the seed: the pointer is committed and the deployment is the active one of its target. */
  'deployment.activated': { deployment_id: string; release_id: string; environment: string; repository: string; project: string; release_number: number; gitops_commit_sha: string; rollback: boolean };
  /** Beyond the seed: the pointer could not be committed (or the approval lapsed before it was). */
  'deployment.failed': { deployment_id: string; release_id: string; environment: string; repository: string; project: string; error: string };
  /** Beyond the seed: approvals and their revocation (the audit trail has them too). */
  'approval.created': { approval_id: string; release_id: string; environment: string; approver: string; expires_at: string };
  'approval.revoked': { approval_id: string; release_id: string; environment: string; revoked_by: string };
  /** Beyond the seed: a retention pass deleted something (engine/retention.ts); counts of what went. */
  'retention.applied': {
    runs_deleted: number; steps_deleted: number; runs_logs_expired: number; steps_logs_expired: number;
    objects_deleted: number; bytes_deleted: number; runs_older_than: string | null; logs_older_than: string | null;
  };
}

/** The seed's event envelope. */
export interface EventEnvelope<T extends EventType = EventType> {
  event_type: T;
  timestamp: string;
  data: EventData[T];
}

export function envelope<T extends EventType>(eventType: T, data: EventData[T], at: Date): EventEnvelope<T> {
  return { event_type: eventType, timestamp: at.toISOString(), data };
}

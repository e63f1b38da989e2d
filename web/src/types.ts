/** The /v1 shapes the dashboard reads (src/api/schemas.ts is the source; statuses come from the domain). */
import type {
  AliasType, ApprovalStatus, ArtifactType, DeploymentStatus, ExecutionStatus, ReleaseBuildStatus, RunStatus, SignatureStatus, TriggerType,
} from '../../src/domain/statuses.ts';

export type { ApprovalStatus, DeploymentStatus, ExecutionStatus, ReleaseBuildStatus, RunStatus, SignatureStatus };

export interface Page { total: number; limit: number; offset: number }

export interface Run {
  id: string; repository: string; branch: string; commit_sha: string; triggered_by: string; trigger_type: TriggerType;
  status: RunStatus; started_at: string; completed_at: string | null; error_code: string | null; error_message: string | null;
  attempt: number;
}
export interface Step {
  id: string; step_name: string; action: string; target: string; status: ExecutionStatus;
  started_at: string | null; completed_at: string | null; exit_code: number | null; logs_s3_key: string | null; attempt: number;
}
export interface Task {
  id: string; project_name: string; project_path: string; status: ExecutionStatus;
  started_at: string | null; completed_at: string | null; error: string | null; attempt: number; steps: Step[];
}
export interface Phase {
  id: string; name: string; group_number: number; status: ExecutionStatus;
  started_at: string | null; completed_at: string | null; tasks: Task[];
}
export interface RunTree extends Run { phases: Phase[] }
export interface RunList extends Page { runs: Run[] }

export interface ReleaseBuild {
  id: string; repository: string; project: string; commit_sha: string; status: ReleaseBuildStatus;
  release_id: string | null; error_message: string | null; created_at: string; finished_at: string | null;
}

export interface LogRange { step_id: string; key: string | null; offset: number; next_offset: number; size: number; complete: boolean; text: string }
export interface LogIndex { step_id: string; key: string | null; size: number; complete: boolean; lines: number; every: number; checkpoints: number[] }
export interface LogSearch {
  step_id: string; query: string; matches: { line: number; offset: number; text: string }[]; truncated: boolean; size: number; complete: boolean;
}

export interface Artifact {
  id: string; artifact_name: string; artifact_type: ArtifactType; tracking_oci_uri: string; tracking_oci_digest: string | null;
  primary_published_uri: string; created_at: string;
}
export interface ReleaseSignatures {
  release_id: string; release_number: number;
  signatures: { artifact_id: string; artifact_name: string; tracking_oci_uri: string; tracking_oci_digest: string | null; status: SignatureStatus; signature_digest: string | null; reason: string | null }[];
}
export interface Release {
  id: string; repository: string; project: string; commit_sha: string; release_number: number; pipeline_run_id: string | null;
  oci_uri: string; oci_digest: string | null; created_at: string; created_by: string; canonical_id: string;
  trigger: { trigger_type: string; branch: string | null; tag: string | null; triggered_by: string; triggered_at: string } | null;
  artifacts: Artifact[]; aliases: { alias: string; alias_type: AliasType }[];
}
export interface ReleaseList extends Page { releases: Release[] }

export interface ActiveDeployment {
  environment: string; deployment_id: string; id: string; release_id: string; release_number: number; deployed_by: string;
  deployed_at: string; gitops_commit_sha: string | null; rollback: boolean; approved_by: string[];
}
export interface ProjectSummary {
  repository: string; project: string; releases: number;
  latest_release: { id: string; release_number: number; commit_sha: string; created_at: string } | null;
  deployments: ActiveDeployment[];
}

export interface Deployment {
  id: string; deployment_id: string; release_id: string; release_number: number; commit_sha: string; repository: string; project: string;
  environment: string; status: DeploymentStatus; deployed_at: string; deployed_by: string; gitops_commit_sha: string | null;
  approval_id: string | null; error: string | null; finished_at: string | null; rollback: boolean; freeze_override: string | null;
}
export interface EnvironmentPolicy {
  name: string; allowed_triggers: string[]; allowed_branches: string[]; auto_deploy: boolean; requires_approval: boolean;
  approvals_required: number; frozen: boolean; freeze_reason?: string;
}
export interface Approval {
  approval_id: string; release_id: string; environment: string; approver: string; approved_at: string; expires_at: string | null;
  justification: string; status: ApprovalStatus; revoked_at: string | null; revoked_by: string | null;
}
export interface RollbackTarget { release_id: string; release_number: number; commit_sha: string; aliases: { alias: string }[]; current: Deployment }

export interface Me { subject: string; username?: string; roles: string[]; permissions: string[] }
export interface AuthConfig { mode: 'dev' | 'oidc'; issuer: string | null; client_id: string | null; scopes: string; resource: string | null }

export interface ForgeEvent { event_type: string; timestamp: string; data: Record<string, unknown> }

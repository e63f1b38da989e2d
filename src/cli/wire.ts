/**
 * The JSON shapes the /v1 API answers with (src/api/schemas.ts), derived from the domain entities:
 * the same fields, timestamps as ISO strings.
 */
import type {
  AuditEntry,
  Deployment, PhaseExecution, PipelineRun, Release, ReleaseAlias, ReleaseApproval, ReleaseArtifact,
  ReleaseTrigger, StepExecution, TaskExecution,
} from '../domain/entities.ts';
import type { RunStatus } from '../domain/statuses.ts';
import type { EnvironmentPolicy } from '../domain/policy.ts';

/** An entity as JSON: Date fields become ISO strings. */
export type Json<T> = {
  [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K];
};

export type Paged<K extends string, T> = { [key in K]: T[] } & { total: number; limit: number; offset: number };

export type RunJson = Omit<Json<PipelineRun>, 'discovery_output' | 'created_at'>;

export interface RunTreeJson extends RunJson {
  phases: (Json<PhaseExecution> & { name: string; tasks: (Json<TaskExecution> & { steps: Json<StepExecution>[] })[] })[];
}

/**
 * GET /v1/steps/{id}/logs: one byte range of a step log, as engine/logs.ts LogRange (which the CLI
 * may not import): `size` is what has been written so far, `complete` that nothing more will come.
 */
export interface LogRangeJson {
  step_id: string;
  key: string | null;
  offset: number;
  next_offset: number;
  size: number;
  complete: boolean;
  text: string;
}

export interface CreatedRunJson {
  id: string;
  status: RunStatus;
  started_at: string;
}

export interface ReleaseJson extends Json<Release> {
  canonical_id: string;
  trigger: Json<Omit<ReleaseTrigger, 'release_id'>> | null;
  artifacts: Json<Omit<ReleaseArtifact, 'release_id'>>[];
  aliases: Pick<ReleaseAlias, 'alias' | 'alias_type'>[];
}

export interface CreatedReleaseJson {
  id: string;
  release_number: number;
  oci_uri: string;
  canonical_id: string;
}

export interface DeploymentJson extends Json<Deployment> {
  deployment_id: string;
  release_number: number;
  commit_sha: string;
  rollback: boolean;
}

export interface RollbackTargetJson {
  release_id: string;
  release_number: number;
  commit_sha: string;
  aliases: { alias: string; alias_type: string }[];
  current: DeploymentJson;
}

export type AuditEntryJson = Json<AuditEntry>;
export type EnvironmentJson = EnvironmentPolicy;

export interface CreatedDeploymentJson {
  id: string;
  deployment_id: string;
  gitops_commit_sha: string | null;
  status: Deployment['status'];
}

export interface ApprovalJson extends Json<ReleaseApproval> {
  approval_id: string;
}

export interface ApprovalStatusJson extends ApprovalJson {
  approvals: ApprovalJson[];
}

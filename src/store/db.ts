/** Kysely table types: the stored shape of each entity (see migrations/). */
import type { ColumnType, Generated } from 'kysely';
import type {
  AuditEntry,
  Deployment,
  PhaseExecution,
  PipelineRun,
  Release,
  ReleaseAlias,
  ReleaseBuild,
  ReleaseApproval,
  ReleaseArtifact,
  ReleaseTrigger,
  StepExecution,
  TaskExecution,
} from '../domain/entities.ts';

/** jsonb is written as text cast to jsonb (both drivers agree on that) and read back parsed. */
type Json<T> = ColumnType<T, string | null, string | null>;

export interface Database {
  pipeline_runs: Omit<PipelineRun, 'discovery_output' | 'github_context' | 'created_at'> & {
    discovery_output: Json<unknown>;
    github_context: Json<PipelineRun['github_context']>;
    created_at: ColumnType<Date, Date | undefined, never>;
  };
  phase_executions: PhaseExecution;
  task_executions: TaskExecution;
  step_executions: StepExecution;
  releases: Release;
  release_counters: { repository: string; project: string; last_number: number };
  release_aliases: ReleaseAlias;
  release_triggers: ReleaseTrigger;
  release_artifacts: ReleaseArtifact;
  release_approvals: ReleaseApproval;
  release_builds: Omit<ReleaseBuild, 'trigger' | 'plan' | 'artifacts'> & {
    trigger: Json<ReleaseBuild['trigger']>;
    plan: Json<ReleaseBuild['plan']>;
    artifacts: Json<ReleaseBuild['artifacts']>;
  };
  deployments: Deployment;
  audit_log: Omit<AuditEntry, 'id' | 'details'> & { id: Generated<string>; details: Json<Record<string, unknown>> };
  event_outbox: {
    id: Generated<string>;
    event_type: string;
    envelope: Json<unknown>;
    created_at: Generated<Date>;
    published_at: Date | null;
  };
  github_deliveries: { delivery_id: string; event: string; run_id: string | null; received_at: Generated<Date> };
  forge_migrations: { version: number; name: string; applied_at: Generated<Date> };
}

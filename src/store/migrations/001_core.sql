-- Forge core schema: the seed's entities (06 Domain Model) with their unique constraints and indexes,
-- plus the release counters and the events outbox. Decisions behind the extra columns and the
-- deployment constraint: docs/decisions.md.

CREATE TABLE pipeline_runs (
  id                 uuid PRIMARY KEY,
  repository         text NOT NULL,
  branch             text NOT NULL,
  commit_sha         text NOT NULL,
  triggered_by       text NOT NULL,
  trigger_type       text NOT NULL CHECK (trigger_type IN ('push', 'pull_request', 'manual')),
  status             text NOT NULL CHECK (status IN ('pending', 'running', 'success', 'failed', 'cancelled')),
  started_at         timestamptz NOT NULL,
  completed_at       timestamptz,
  argo_workflow_name text,
  discovery_output   jsonb,
  github_context     jsonb,
  error_code         text,
  error_message      text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pipeline_runs_repository_commit_sha_key UNIQUE (repository, commit_sha)
);
CREATE INDEX pipeline_runs_repository_branch_created_at_idx ON pipeline_runs (repository, branch, created_at);
CREATE INDEX pipeline_runs_status_started_at_idx ON pipeline_runs (status, started_at);

CREATE TABLE phase_executions (
  id              uuid PRIMARY KEY,
  pipeline_run_id uuid NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
  phase_name      text NOT NULL,
  group_number    integer NOT NULL,
  status          text NOT NULL CHECK (status IN ('pending', 'running', 'success', 'failed', 'skipped')),
  started_at      timestamptz,
  completed_at    timestamptz,
  CONSTRAINT phase_executions_run_phase_key UNIQUE (pipeline_run_id, phase_name)
);
CREATE INDEX phase_executions_run_group_idx ON phase_executions (pipeline_run_id, group_number);

CREATE TABLE task_executions (
  id                 uuid PRIMARY KEY,
  phase_execution_id uuid NOT NULL REFERENCES phase_executions (id) ON DELETE CASCADE,
  project_name       text NOT NULL,
  project_path       text NOT NULL,
  status             text NOT NULL CHECK (status IN ('pending', 'running', 'success', 'failed', 'skipped')),
  started_at         timestamptz,
  completed_at       timestamptz,
  error              text,
  CONSTRAINT task_executions_phase_project_key UNIQUE (phase_execution_id, project_name)
);

CREATE TABLE step_executions (
  id                uuid PRIMARY KEY,
  task_execution_id uuid NOT NULL REFERENCES task_executions (id) ON DELETE CASCADE,
  step_name         text NOT NULL,
  action            text NOT NULL,
  target            text NOT NULL,
  status            text NOT NULL CHECK (status IN ('pending', 'running', 'success', 'failed', 'skipped')),
  started_at        timestamptz,
  completed_at      timestamptz,
  exit_code         integer,
  logs_s3_key       text,
  CONSTRAINT step_executions_task_step_key UNIQUE (task_execution_id, step_name)
);

CREATE TABLE releases (
  id              uuid PRIMARY KEY,
  repository      text NOT NULL,
  project         text NOT NULL,
  commit_sha      text NOT NULL,
  release_number  integer NOT NULL CHECK (release_number >= 1),
  pipeline_run_id uuid REFERENCES pipeline_runs (id) ON DELETE SET NULL,
  oci_uri         text NOT NULL,
  oci_digest      text,
  created_at      timestamptz NOT NULL,
  created_by      text NOT NULL,
  CONSTRAINT releases_repository_project_commit_sha_key UNIQUE (repository, project, commit_sha),
  CONSTRAINT releases_repository_project_release_number_key UNIQUE (repository, project, release_number)
);
CREATE INDEX releases_created_at_idx ON releases (created_at);

-- Gap-free numbering: the counter row is locked and bumped in the transaction that inserts the
-- release, so a failed attempt rolls its number back (digest §7.5).
CREATE TABLE release_counters (
  repository  text NOT NULL,
  project     text NOT NULL,
  last_number integer NOT NULL,
  PRIMARY KEY (repository, project)
);

CREATE TABLE release_aliases (
  id         uuid PRIMARY KEY,
  release_id uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
  repository text NOT NULL,
  project    text NOT NULL,
  alias      text NOT NULL,
  alias_type text NOT NULL CHECK (alias_type IN ('numeric', 'tag', 'branch', 'custom')),
  CONSTRAINT release_aliases_release_alias_key UNIQUE (release_id, alias),
  CONSTRAINT release_aliases_project_alias_key UNIQUE (repository, project, alias)
);
CREATE INDEX release_aliases_alias_type_idx ON release_aliases (alias, alias_type);

CREATE TABLE release_triggers (
  release_id   uuid PRIMARY KEY REFERENCES releases (id) ON DELETE CASCADE,
  trigger_type text NOT NULL CHECK (trigger_type IN ('branch_push', 'tag', 'manual')),
  branch       text,
  tag          text,
  triggered_by text NOT NULL,
  triggered_at timestamptz NOT NULL
);

CREATE TABLE release_artifacts (
  id                    uuid PRIMARY KEY,
  release_id            uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
  artifact_name         text NOT NULL,
  artifact_type         text NOT NULL CHECK (artifact_type IN ('container', 'binary', 'archive')),
  tracking_oci_uri      text NOT NULL,
  tracking_oci_digest   text,
  primary_published_uri text NOT NULL,
  created_at            timestamptz NOT NULL,
  CONSTRAINT release_artifacts_release_name_key UNIQUE (release_id, artifact_name)
);

CREATE TABLE release_approvals (
  id            uuid PRIMARY KEY,
  release_id    uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
  environment   text NOT NULL,
  approver      text NOT NULL,
  approved_at   timestamptz NOT NULL,
  expires_at    timestamptz,
  justification text NOT NULL,
  status        text NOT NULL CHECK (status IN ('active', 'expired', 'revoked')),
  revoked_at    timestamptz,
  revoked_by    text
);
CREATE INDEX release_approvals_release_environment_idx ON release_approvals (release_id, environment);
CREATE INDEX release_approvals_approver_approved_at_idx ON release_approvals (approver, approved_at);

CREATE TABLE deployments (
  id                uuid PRIMARY KEY,
  release_id        uuid NOT NULL REFERENCES releases (id),
  repository        text NOT NULL,
  project           text NOT NULL,
  environment       text NOT NULL,
  status            text NOT NULL CHECK (status IN ('pending', 'active', 'superseded', 'failed')),
  deployed_at       timestamptz NOT NULL,
  deployed_by       text NOT NULL,
  gitops_commit_sha text,
  approval_id       uuid REFERENCES release_approvals (id),
  error             text
);
CREATE INDEX deployments_environment_release_idx ON deployments (environment, release_id);
CREATE INDEX deployments_environment_status_idx ON deployments (environment, status);
CREATE INDEX deployments_release_environment_idx ON deployments (release_id, environment);
CREATE INDEX deployments_target_history_idx ON deployments (environment, repository, project, deployed_at DESC);
-- At most one active deployment per environment + project (digest §7.2); per (environment, release) follows.
CREATE UNIQUE INDEX deployments_one_active_per_target ON deployments (environment, repository, project) WHERE status = 'active';

-- Events outbox: written in the same transaction as the change, relayed to the publisher afterwards.
CREATE TABLE event_outbox (
  id           bigserial PRIMARY KEY,
  event_type   text NOT NULL,
  envelope     jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX event_outbox_unpublished_idx ON event_outbox (id) WHERE published_at IS NULL;

-- Release builds (issue 5): the release phase of a project in a run attempt, or a manual release.
-- Artifact job states and the plan are jsonb on the row: they are read and written with the build,
-- never queried on their own. Only a successful build leads to a releases row.

CREATE TABLE release_builds (
  id                    uuid PRIMARY KEY,
  repository            text NOT NULL,
  project               text NOT NULL,
  commit_sha            text NOT NULL,
  branch                text,
  pipeline_run_id       uuid REFERENCES pipeline_runs (id) ON DELETE CASCADE,
  run_attempt           integer,
  trigger               jsonb NOT NULL,
  status                text NOT NULL CHECK (status IN ('pending', 'building', 'releasing', 'success', 'failed', 'cancelled')),
  plan                  jsonb,
  artifacts             jsonb NOT NULL DEFAULT '{}'::jsonb,
  release_id            uuid REFERENCES releases (id),
  error_message         text,
  created_by            text NOT NULL,
  created_at            timestamptz NOT NULL,
  updated_at            timestamptz NOT NULL,
  finished_at           timestamptz,
  plan_dispatched_at    timestamptz,
  release_dispatched_at timestamptz
);

-- One build per project and run attempt.
CREATE UNIQUE INDEX release_builds_run_idx ON release_builds (pipeline_run_id, run_attempt, project) WHERE pipeline_run_id IS NOT NULL;
-- At most one unfinished build of a (repository, project, commit): a second request joins it.
CREATE UNIQUE INDEX release_builds_active_idx ON release_builds (repository, project, commit_sha) WHERE status IN ('pending', 'building', 'releasing');
CREATE INDEX release_builds_unfinished_idx ON release_builds (created_at) WHERE status IN ('pending', 'building', 'releasing');

-- Deployments as jobs (issue 6): POST /v1/deployments records a pending deployment; the dispatcher
-- publishes one deployment job per target at a time (oldest first), a release worker commits the
-- ReleasePointer, and its reply activates (or fails) the deployment.

ALTER TABLE deployments ADD COLUMN dispatched_at timestamptz;
ALTER TABLE deployments ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN finished_at timestamptz;
-- Set when the deployment goes back to an older release than the one active at request time.
ALTER TABLE deployments ADD COLUMN rollback_from_release_id uuid REFERENCES releases (id);
-- Set when the deployment went through a frozen environment: the operator's justification.
ALTER TABLE deployments ADD COLUMN freeze_override text;

-- The dispatcher's queue: pending deployments per target, oldest first.
CREATE INDEX deployments_pending_idx ON deployments (environment, repository, project, deployed_at) WHERE status = 'pending';

-- The audit trail: who did what to which release in which environment. Append-only; kept forever
-- like releases, approvals and deployments.
CREATE TABLE audit_log (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at            timestamptz NOT NULL,
  actor         text NOT NULL,
  action        text NOT NULL,
  environment   text,
  repository    text,
  project       text,
  release_id    uuid,
  deployment_id uuid,
  approval_id   uuid,
  details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_release_idx ON audit_log (release_id, id);
CREATE INDEX audit_log_target_idx ON audit_log (repository, project, environment, id);

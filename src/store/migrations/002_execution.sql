-- Execution bookkeeping for the dispatcher and workers (issue 4), and GitHub delivery records.
-- attempt: a task's attempt is the number of times a worker claimed it (a redelivery or a retry claims
-- again); reports that carry an older attempt are refused, which fences late results (nats-server#4786).

ALTER TABLE pipeline_runs ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE pipeline_runs ADD COLUMN discovery_dispatched_at timestamptz;
ALTER TABLE pipeline_runs ADD COLUMN deadline_at timestamptz;
ALTER TABLE pipeline_runs ADD COLUMN pr_comment_posted_at timestamptz;
CREATE INDEX pipeline_runs_active_idx ON pipeline_runs (created_at) WHERE status IN ('pending', 'running');

ALTER TABLE task_executions ADD COLUMN attempt integer NOT NULL DEFAULT 0;
ALTER TABLE task_executions ADD COLUMN dispatched_at timestamptz;
ALTER TABLE task_executions ADD COLUMN deadline_at timestamptz;
CREATE INDEX task_executions_deadline_idx ON task_executions (deadline_at) WHERE status IN ('pending', 'running') AND deadline_at IS NOT NULL;

ALTER TABLE step_executions ADD COLUMN attempt integer NOT NULL DEFAULT 0;

-- GitHub webhook deliveries seen (X-GitHub-Delivery), so a redelivered webhook creates nothing twice.
CREATE TABLE github_deliveries (
  delivery_id text PRIMARY KEY,
  event       text NOT NULL,
  run_id      uuid,
  received_at timestamptz NOT NULL DEFAULT now()
);

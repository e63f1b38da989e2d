-- Retention and limits (issue 9): when a run's step logs were deleted by the retention job, so the
-- API answers "log expired" (410) instead of an empty log; the retention job's index; and the
-- per-repository limit of unfinished runs, enforced by a unique index.

-- Set on the run when the log pass deleted its logs (the pass's work list: runs not yet expired),
-- and on each step whose log key it cleared (the log endpoint's answer).
ALTER TABLE pipeline_runs ADD COLUMN logs_expired_at timestamptz;
ALTER TABLE step_executions ADD COLUMN logs_expired_at timestamptz;

-- Finished runs by age: the retention job's scan.
CREATE INDEX pipeline_runs_finished_idx ON pipeline_runs (completed_at) WHERE status IN ('success', 'failed', 'cancelled');
-- The limit of unfinished runs per repository (FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY = N): an
-- unfinished run holds one of its repository's N slots 0..N-1, and no two unfinished runs of a
-- repository may hold the same slot, so PostgreSQL itself refuses run N+1 however many API replicas
-- create at once, with no lock and in the creating statement. A finished run leaves the index and
-- frees its slot; a retried run takes a slot again. Unfinished runs of before this migration get
-- slots in creation order.
ALTER TABLE pipeline_runs ADD COLUMN active_slot integer;
UPDATE pipeline_runs AS p SET active_slot = r.n - 1
  FROM (SELECT id, row_number() OVER (PARTITION BY repository ORDER BY created_at, id) AS n
          FROM pipeline_runs WHERE status IN ('pending', 'running')) AS r
 WHERE p.id = r.id;
CREATE UNIQUE INDEX pipeline_runs_active_slot_key ON pipeline_runs (repository, active_slot) WHERE status IN ('pending', 'running');

-- Observability (issue 8): the W3C traceparent of the request that created a run, so every job the
-- dispatcher publishes for it (from any API replica, after any restart) joins the run's one trace.
ALTER TABLE pipeline_runs ADD COLUMN trace_context text;

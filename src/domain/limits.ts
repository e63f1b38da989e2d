/**
 * Platform limits and retention defaults (seed 06 "Constraints & Limitations", digest §6.7): what a
 * setting may not exceed and what it defaults to.
 */

/** No run may take longer than a day (digest §2.5, §6.7: 24 h max run); FORGE_RUN_TIMEOUT may only shorten it. */
export const MAX_RUN_DURATION_MS = 24 * 3_600_000;

/** Seed 06: "Maximum 1000 concurrent runs per repository" (unfinished: pending or running). */
export const DEFAULT_MAX_ACTIVE_RUNS_PER_REPOSITORY = 1000;

/** Seed 06 "Data Retention": pipeline runs 90 days, logs 30 days; releases, deployments and approvals forever. */
export const DEFAULT_RUN_RETENTION_MS = 90 * 86_400_000;
export const DEFAULT_LOG_RETENTION_MS = 30 * 86_400_000;

/** What a pass deleted (or, dry, would delete). */
export interface RetentionReport {
  dry_run: boolean;
  /** The cutoffs: runs (logs) that completed before these went; null when that retention is off. */
  runs_older_than: string | null;
  logs_older_than: string | null;
  runs_deleted: number;
  steps_deleted: number;
  /** Runs whose step logs were deleted (their rows stay), and the steps whose log keys were cleared. */
  runs_logs_expired: number;
  steps_logs_expired: number;
  /** Objects (logs, log parts, job results) deleted from the object store, and their bytes. */
  objects_deleted: number;
  bytes_deleted: number;
  started_at: string;
  finished_at: string;
}

/**
 * Retention (seed 06 "Data Retention"): finished pipeline runs older than the run age are deleted
 * with their phases, tasks, steps, release builds and every object under `pipeline-runs/<run>/`
 * (logs, job results); the step logs of finished runs older than the log age are deleted, and the
 * steps keep a mark so the log endpoint answers 410 "expired" instead of an empty log. Releases,
 * deployments, approvals, the audit trail and events are kept forever (a release built by a deleted
 * run keeps its row; its pipeline_run_id becomes null).
 *
 * Ages count from a run's completed_at; an unfinished run is never touched (the 24 h cap ends every
 * run). Work goes in batches of `batchSize` runs, each in one transaction: the runs still deletable
 * are locked, their objects deleted, then their rows, so a run retried meanwhile (it waits for the
 * lock) keeps every object, and a pass that dies midway leaves rows that the next pass finds again.
 * One pass runs at a time across processes (the store's `retention` lock): another one asked for
 * meanwhile is refused at once, never queued holding a connection.
 */
import { envelope } from '../domain/entities.ts';
import { conflict, isForgeError } from '../domain/errors.ts';
import type { RetentionReport } from '../domain/limits.ts';
import { runLogsPrefix, runObjectsPrefix } from '../domain/logs.ts';
import type { EngineContext } from './context.ts';
import type { ObjectStore, RunCursor } from './ports.ts';

export interface RetentionOptions {
  /** Finished runs that completed longer ago than this are deleted; undefined: runs are kept. */
  runsOlderThanMs: number | undefined;
  /** Step logs of finished runs that completed longer ago than this are deleted; undefined: kept. */
  logsOlderThanMs: number | undefined;
  /** Count what would go, delete nothing. */
  dryRun?: boolean;
  /** Runs per batch (bounded memory and transaction size). */
  batchSize?: number;
  /** Stops the pass between batches (server shutdown); what was done is reported. */
  signal?: AbortSignal;
}

export type { RetentionReport };

export const RETENTION_LOCK = 'retention';
const DEFAULT_BATCH = 500;

/** A pass; refused (conflict) while another runs anywhere, instead of queueing behind it. */
export async function applyRetention(ctx: EngineContext, options: RetentionOptions): Promise<RetentionReport> {
  const result = await ctx.store.tryWithLock(RETENTION_LOCK, () => pass(ctx, options));
  if (!result.locked) throw conflict('a retention pass is running already (on this or another replica); try again when it has finished', { lock: RETENTION_LOCK });
  return result.value;
}

async function pass(ctx: EngineContext, options: RetentionOptions): Promise<RetentionReport> {
  const now = ctx.clock.now();
  const dryRun = options.dryRun === true;
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  const runCutoff = options.runsOlderThanMs === undefined ? undefined : new Date(now.getTime() - options.runsOlderThanMs);
  const logCutoff = options.logsOlderThanMs === undefined ? undefined : new Date(now.getTime() - options.logsOlderThanMs);
  const report: RetentionReport = {
    dry_run: dryRun, runs_older_than: runCutoff?.toISOString() ?? null, logs_older_than: logCutoff?.toISOString() ?? null,
    runs_deleted: 0, steps_deleted: 0, runs_logs_expired: 0, steps_logs_expired: 0, objects_deleted: 0, bytes_deleted: 0,
    started_at: now.toISOString(), finished_at: now.toISOString(),
  };

  if (runCutoff) {
    for await (const batch of finishedRuns(ctx, options.signal, { before: runCutoff, limit: batchSize })) {
      const ids = batch.map((r) => r.id);
      if (dryRun) {
        report.runs_deleted += ids.length;
        report.steps_deleted += (await ctx.store.countRunSteps(ids)).steps;
        addObjects(report, await listObjects(ctx.objects, ids.map(runObjectsPrefix)));
        continue;
      }
      let removed: ObjectCount = { count: 0, bytes: 0 };
      const deleted = await ctx.store.transaction((tx) => tx.deleteFinishedRuns(ids, async (doomed) => {
        removed = await deleteObjects(ctx.objects, doomed.map(runObjectsPrefix));
      }));
      addObjects(report, removed);
      report.runs_deleted += deleted.ids.length;
      report.steps_deleted += deleted.steps;
    }
  }

  if (logCutoff) {
    for await (const listed of finishedRuns(ctx, options.signal, { before: logCutoff, limit: batchSize, logsNotExpired: true })) {
      // A dry pass deleted no runs: leave out the ones the run pass above counted.
      const batch = dryRun && runCutoff ? listed.filter((r) => r.completed_at >= runCutoff) : listed;
      const ids = batch.map((r) => r.id);
      if (ids.length === 0) continue;
      if (dryRun) {
        report.runs_logs_expired += ids.length;
        report.steps_logs_expired += (await ctx.store.countRunSteps(ids)).logs;
        addObjects(report, await listObjects(ctx.objects, ids.map(runLogsPrefix)));
        continue;
      }
      let removed: ObjectCount = { count: 0, bytes: 0 };
      const expired = await ctx.store.transaction((tx) => tx.expireRunLogs(ids, now, async (marked) => {
        removed = await deleteObjects(ctx.objects, marked.map(runLogsPrefix));
      }));
      addObjects(report, removed);
      report.runs_logs_expired += expired.ids.length;
      report.steps_logs_expired += expired.steps;
    }
  }

  report.finished_at = ctx.clock.now().toISOString();
  if (!dryRun && (report.runs_deleted > 0 || report.runs_logs_expired > 0 || report.objects_deleted > 0)) {
    const { dry_run: _dry, started_at: _started, finished_at: _finished, ...counts } = report;
    await ctx.store.insertEvents([envelope('retention.applied', counts, now)]);
    ctx.eventsWritten();
  }
  return report;
}

/** Finished runs completed before `before`, a batch at a time, oldest first (keyset: deletions behind the cursor do not shift it). */
async function* finishedRuns(ctx: EngineContext, signal: AbortSignal | undefined, filter: { before: Date; limit: number; logsNotExpired?: boolean }): AsyncGenerator<RunCursor[]> {
  let after: RunCursor | undefined;
  while (signal?.aborted !== true) {
    const batch = await ctx.store.listFinishedRuns({ ...filter, ...(after ? { after } : {}) });
    if (batch.length === 0) return;
    yield batch;
    if (batch.length < filter.limit) return;
    after = batch[batch.length - 1];
  }
}

interface ObjectCount {
  count: number;
  bytes: number;
}

function addObjects(report: RetentionReport, objects: ObjectCount): void {
  report.objects_deleted += objects.count;
  report.bytes_deleted += objects.bytes;
}

async function listObjects(objects: ObjectStore | undefined, prefixes: string[]): Promise<ObjectCount & { keys: string[] }> {
  const found = { count: 0, bytes: 0, keys: [] as string[] };
  if (!objects) return found;
  for (const prefix of prefixes) {
    for (const object of await objects.list(prefix)) {
      found.keys.push(object.key);
      found.count += 1;
      found.bytes += object.size;
    }
  }
  return found;
}

async function deleteObjects(objects: ObjectStore | undefined, prefixes: string[]): Promise<ObjectCount> {
  const found = await listObjects(objects, prefixes);
  if (objects && found.keys.length > 0) await objects.delete(found.keys);
  return { count: found.count, bytes: found.bytes };
}

export interface RetentionJob {
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/**
 * The server's periodic pass: the first `firstAfterMs` after start (default a minute, or the
 * interval if shorter), then every `intervalMs`. Several replicas may run it: one whose turn comes
 * while another's pass runs skips it, and a pass after another finds little left. Off without an interval or
 * with both retentions off.
 */
export function startRetentionJob(
  ctx: EngineContext,
  settings: { runsOlderThanMs: number | undefined; logsOlderThanMs: number | undefined; intervalMs: number | undefined },
  hooks: { onPass?: (report: RetentionReport) => void; onError?: (error: unknown) => void; firstAfterMs?: number } = {},
): RetentionJob {
  const { intervalMs } = settings;
  if (intervalMs === undefined || (settings.runsOlderThanMs === undefined && settings.logsOlderThanMs === undefined)) {
    return { stop: async () => {} };
  }
  let stopped = false;
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      // Another replica's pass in progress: this one is skipped (the next comes after the interval).
      running = applyRetention(ctx, { ...settings, signal: abort.signal }).then((report) => hooks.onPass?.(report), (error: unknown) => {
        if (!(isForgeError(error) && error.code === 'conflict')) hooks.onError?.(error);
      })
        .finally(() => {
          running = undefined;
          schedule(intervalMs);
        });
    }, ms);
    timer.unref();
  };
  schedule(hooks.firstAfterMs ?? Math.min(60_000, intervalMs));
  return {
    async stop() {
      stopped = true;
      abort.abort();
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}

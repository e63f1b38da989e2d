/** Retention and limits (issue 9): the per-repository count of unfinished runs, and the retention job's reads and deletes. */
import { sql, type Kysely } from 'kysely';
import type { Repos, RunCursor } from '../engine/ports.ts';
import type { Database } from './db.ts';

type RetentionRepos = Pick<Repos, 'countActiveRuns' | 'freeRunSlots' | 'listFinishedRuns' | 'countRunSteps' | 'deleteFinishedRuns' | 'expireRunLogs'>;

const FINISHED = ['success', 'failed', 'cancelled'] as const;
const UNFINISHED_BUILD = ['pending', 'building', 'releasing'] as const;

export function retentionRepos(db: Kysely<Database>): RetentionRepos {
  const ids = (runIds: string[]) => sql<string>`ANY(${runIds}::uuid[])`;
  /** The steps of the runs, through their phases and tasks. */
  const stepsOf = (runIds: string[]) => db.selectFrom('step_executions as s')
    .innerJoin('task_executions as t', 't.id', 's.task_execution_id')
    .innerJoin('phase_executions as p', 'p.id', 't.phase_execution_id')
    .where('p.pipeline_run_id', '=', ids(runIds));
  return {
    async countActiveRuns(repository) {
      const row = await db.selectFrom('pipeline_runs').select(sql<number>`count(*)::int`.as('n'))
        .where('repository', '=', repository).where('status', 'in', ['pending', 'running']).executeTakeFirstOrThrow();
      return row.n;
    },
    async freeRunSlots(repository, limit) {
      const rows = await sql<{ slot: number }>`SELECT s::int AS slot FROM generate_series(0, ${limit}::int - 1) AS s
        WHERE NOT EXISTS (SELECT 1 FROM pipeline_runs WHERE repository = ${repository} AND status IN ('pending', 'running') AND active_slot = s)`.execute(db);
      return rows.rows.map((r) => r.slot);
    },
    async listFinishedRuns({ before, limit, after, logsNotExpired }) {
      let query = db.selectFrom('pipeline_runs').select(['id', 'completed_at'])
        .where('status', 'in', [...FINISHED]).where('completed_at', '<', before);
      if (after) {
        query = query.where((eb) => eb.or([
          eb('completed_at', '>', after.completed_at),
          eb.and([eb('completed_at', '=', after.completed_at), eb('id', '>', after.id)]),
        ]));
      }
      if (logsNotExpired) query = query.where('logs_expired_at', 'is', null);
      query = query.where((eb) => eb.not(eb.exists(eb.selectFrom('release_builds as b').select('b.id')
        .whereRef('b.pipeline_run_id', '=', 'pipeline_runs.id').where('b.status', 'in', [...UNFINISHED_BUILD]))));
      const rows = await query.orderBy('completed_at').orderBy('id').limit(limit).execute();
      return rows as RunCursor[];
    },
    async countRunSteps(runIds) {
      if (runIds.length === 0) return { steps: 0, logs: 0 };
      const row = await stepsOf(runIds)
        .select([sql<number>`count(*)::int`.as('steps'), sql<number>`count(s.logs_s3_key)::int`.as('logs')])
        .executeTakeFirstOrThrow();
      return { steps: row.steps, logs: row.logs };
    },
    async deleteFinishedRuns(runIds, beforeDelete) {
      if (runIds.length === 0) return { ids: [], steps: 0 };
      // Re-checked here, in the deleting statement: a run retried since it was listed, or with a
      // release build still going, stays.
      const deletable = await db.selectFrom('pipeline_runs as r').select('r.id')
        .where('r.id', '=', ids(runIds)).where('r.status', 'in', [...FINISHED])
        .where((eb) => eb.not(eb.exists(eb.selectFrom('release_builds as b').select('b.id')
          .whereRef('b.pipeline_run_id', '=', 'r.id').where('b.status', 'in', [...UNFINISHED_BUILD]))))
        .forUpdate().execute();
      const doomed = deletable.map((r) => r.id);
      if (doomed.length === 0) return { ids: [], steps: 0 };
      await beforeDelete?.(doomed);
      const { steps } = await stepsOf(doomed).select(sql<number>`count(*)::int`.as('steps')).executeTakeFirstOrThrow();
      // Phases, tasks, steps and release builds go by ON DELETE CASCADE; releases keep their rows (SET NULL).
      await db.deleteFrom('pipeline_runs').where('id', '=', ids(doomed)).execute();
      return { ids: doomed, steps };
    },
    async expireRunLogs(runIds, at, beforeExpire) {
      if (runIds.length === 0) return { ids: [], steps: 0 };
      const marked = await db.updateTable('pipeline_runs').set({ logs_expired_at: at })
        .where('id', '=', ids(runIds)).where('status', 'in', [...FINISHED]).returning('id').execute();
      const runs = marked.map((r) => r.id);
      if (runs.length === 0) return { ids: [], steps: 0 };
      await beforeExpire?.(runs);
      const taskIds = db.selectFrom('task_executions').select('id')
        .where('phase_execution_id', 'in', db.selectFrom('phase_executions').select('id').where('pipeline_run_id', '=', ids(runs)));
      const cleared = await db.updateTable('step_executions').set({ logs_s3_key: null, logs_expired_at: at })
        .where('task_execution_id', 'in', taskIds).where('logs_s3_key', 'is not', null).executeTakeFirst();
      return { ids: runs, steps: Number(cleared.numUpdatedRows) };
    },
  };
}

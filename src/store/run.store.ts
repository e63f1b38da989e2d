/** Pipeline runs and their phases, tasks and steps. */
import { sql, type Kysely } from 'kysely';
import type { PhaseExecution, PipelineRun, StepExecution, TaskExecution } from '../domain/entities.ts';
import type { ExecutionStatus } from '../domain/statuses.ts';
import type { Repos } from '../engine/ports.ts';
import type { Database } from './db.ts';
import { jsonb } from './json.ts';

type RunRepos = Pick<
  Repos,
  | 'insertRun' | 'findRunByCommit' | 'getRun' | 'listRuns' | 'updateRun'
  | 'insertPhases' | 'insertTasks' | 'insertSteps' | 'listPhases' | 'listTasks' | 'listSteps'
  | 'getPhase' | 'getTask' | 'getStep' | 'updatePhase' | 'updateTask' | 'updateStep' | 'settleRunExecutions' | 'runIdOf'
  | 'updateStepsOfTask' | 'listActiveRunIds' | 'listActiveWorkflowRuns' | 'recordGithubDelivery' | 'claimPrComment'
>;

export function runRepos(db: Kysely<Database>): RunRepos {
  const runs = () => db.selectFrom('pipeline_runs').selectAll();
  return {
    async insertRun(run, created) {
      // One statement, so one round trip and atomic: the event row exists only if the run row does.
      const row = await db
        .with('inserted', (q) => q.insertInto('pipeline_runs')
          .values({ ...run, discovery_output: jsonb(run.discovery_output), github_context: jsonb(run.github_context) })
          .onConflict((oc) => oc.columns(['repository', 'commit_sha']).doNothing())
          .returningAll())
        .with('event', (q) => q.insertInto('event_outbox').columns(['event_type', 'envelope'])
          .expression((eb) => eb.selectFrom('inserted').select([sql<string>`${created.event_type}`.as('event_type'), jsonb(created).as('envelope')]))
          .returning('id'))
        .selectFrom('inserted').selectAll()
        .executeTakeFirst();
      return row as PipelineRun | undefined;
    },
    async findRunByCommit(repository, commitSha) {
      return (await runs().where('repository', '=', repository).where('commit_sha', '=', commitSha).executeTakeFirst()) as PipelineRun | undefined;
    },
    async getRun(id) {
      return (await runs().where('id', '=', id).executeTakeFirst()) as PipelineRun | undefined;
    },
    async listRuns(filter) {
      let base = db.selectFrom('pipeline_runs');
      if (filter.repository !== undefined) base = base.where('repository', '=', filter.repository);
      if (filter.branch !== undefined) base = base.where('branch', '=', filter.branch);
      if (filter.status !== undefined) base = base.where('status', '=', filter.status);
      const [rows, count] = await Promise.all([
        base.selectAll().orderBy('created_at', 'desc').orderBy('id').limit(filter.limit).offset(filter.offset).execute(),
        base.select(sql<number>`count(*)::int`.as('total')).executeTakeFirstOrThrow(),
      ]);
      return { rows: rows as PipelineRun[], total: count.total };
    },
    async updateRun(id, patch) {
      const { discovery_output, ...rest } = patch;
      await db
        .updateTable('pipeline_runs')
        .set({ ...rest, ...('discovery_output' in patch ? { discovery_output: jsonb(discovery_output) } : {}) })
        .where('id', '=', id)
        .execute();
    },
    async insertPhases(rows) {
      if (rows.length > 0) await db.insertInto('phase_executions').values(rows).execute();
    },
    async insertTasks(rows) {
      if (rows.length > 0) await db.insertInto('task_executions').values(rows).execute();
    },
    async insertSteps(rows) {
      if (rows.length > 0) await db.insertInto('step_executions').values(rows).execute();
    },
    async listPhases(runId) {
      return db.selectFrom('phase_executions').selectAll().where('pipeline_run_id', '=', runId)
        .orderBy('group_number').orderBy('phase_name').execute() as Promise<PhaseExecution[]>;
    },
    async listTasks(phaseIds) {
      if (phaseIds.length === 0) return [];
      return db.selectFrom('task_executions').selectAll().where('phase_execution_id', '=', sql<string>`ANY(${phaseIds}::uuid[])`)
        .orderBy('project_name').execute() as Promise<TaskExecution[]>;
    },
    async listSteps(taskIds) {
      if (taskIds.length === 0) return [];
      return db.selectFrom('step_executions').selectAll().where('task_execution_id', '=', sql<string>`ANY(${taskIds}::uuid[])`)
        .orderBy('step_name').execute() as Promise<StepExecution[]>;
    },
    async getPhase(id) {
      return (await db.selectFrom('phase_executions').selectAll().where('id', '=', id).executeTakeFirst()) as PhaseExecution | undefined;
    },
    async getTask(id) {
      return (await db.selectFrom('task_executions').selectAll().where('id', '=', id).executeTakeFirst()) as TaskExecution | undefined;
    },
    async getStep(id) {
      return (await db.selectFrom('step_executions').selectAll().where('id', '=', id).executeTakeFirst()) as StepExecution | undefined;
    },
    async updateStepsOfTask(taskId, patch) {
      await db.updateTable('step_executions').set(patch).where('task_execution_id', '=', taskId).execute();
    },
    async listActiveRunIds(limit) {
      const rows = await db.selectFrom('pipeline_runs').select('id').where('status', 'in', ['pending', 'running'])
        .orderBy('created_at').limit(limit).execute();
      return rows.map((r) => r.id);
    },
    async listActiveWorkflowRuns(limit) {
      return db.selectFrom('pipeline_runs').select(['id', 'attempt', 'argo_workflow_name']).where('status', 'in', ['pending', 'running'])
        .where('argo_workflow_name', 'is not', null).orderBy('created_at').limit(limit).execute();
    },
    async recordGithubDelivery(deliveryId, event, runId) {
      const row = await db.insertInto('github_deliveries').values({ delivery_id: deliveryId, event, run_id: runId })
        .onConflict((oc) => oc.column('delivery_id').doNothing()).returning('delivery_id').executeTakeFirst();
      return row !== undefined;
    },
    async claimPrComment(runId, at) {
      const result = await db.updateTable('pipeline_runs').set({ pr_comment_posted_at: at })
        .where('id', '=', runId).where('pr_comment_posted_at', 'is', null).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
    async updatePhase(id, patch) {
      const { error: _error, attempt: _attempt, dispatched_at: _dispatched, deadline_at: _deadline, ...rest } = patch;
      await db.updateTable('phase_executions').set(rest).where('id', '=', id).execute();
    },
    async updateTask(id, patch) {
      await db.updateTable('task_executions').set(patch).where('id', '=', id).execute();
    },
    async updateStep(id, patch) {
      await db.updateTable('step_executions').set(patch).where('id', '=', id).execute();
    },
    async runIdOf(kind, id) {
      const row = kind === 'task'
        ? await db.selectFrom('task_executions as t').innerJoin('phase_executions as p', 'p.id', 't.phase_execution_id')
          .select('p.pipeline_run_id').where('t.id', '=', id).executeTakeFirst()
        : await db.selectFrom('step_executions as s').innerJoin('task_executions as t', 't.id', 's.task_execution_id')
          .innerJoin('phase_executions as p', 'p.id', 't.phase_execution_id').select('p.pipeline_run_id').where('s.id', '=', id).executeTakeFirst();
      return row?.pipeline_run_id;
    },
    async settleRunExecutions(runId, from, to, at, reason) {
      const fromList = sql<ExecutionStatus>`ANY(${from}::text[])`;
      const phaseIds = db.selectFrom('phase_executions').select('id').where('pipeline_run_id', '=', runId);
      const taskIds = db.selectFrom('task_executions').select('id').where('phase_execution_id', 'in', phaseIds);
      await db.updateTable('step_executions').set({ status: to, completed_at: at })
        .where('task_execution_id', 'in', taskIds).where('status', '=', fromList).execute();
      await db.updateTable('task_executions')
        .set({ status: to, completed_at: at, ...(reason === undefined ? {} : { error: sql<string>`COALESCE(error, ${reason})` }) })
        .where('id', 'in', taskIds).where('status', '=', fromList).execute();
      await db.updateTable('phase_executions').set({ status: to, completed_at: at })
        .where('pipeline_run_id', '=', runId).where('status', '=', fromList).execute();
    },
  };
}

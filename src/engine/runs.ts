/**
 * Pipeline run use cases.
 *
 * Run:   pending → running (first task or step starts) → success (every phase succeeded)
 *                                                      → failed (a task or step failed: fail-fast)
 *        pending | running → cancelled (DELETE /v1/runs/{id})
 * When a run ends, every phase, task and step that never started becomes `skipped`; work still
 * running (a sibling at fail-fast, anything at a cancel) is recorded `failed` with the reason.
 *
 * Locking: every transaction that changes a run first takes the run's advisory lock (`run:<id>`),
 * so all changes to one run are serialised and row locks are never taken in conflicting orders.
 */
import { randomUUID } from 'node:crypto';
import type { GithubContext, PhaseExecution, PipelineRun, StepExecution, TaskExecution } from '../domain/entities.ts';
import { envelope } from '../domain/entities.ts';
import { conflict, denied, invalid, notFound } from '../domain/errors.ts';
import { normaliseSha } from '../domain/names.ts';
import {
  canReport,
  isExecutionTerminal,
  isRunTerminal,
  type ReportedStatus,
  type RunStatus,
  type TriggerType,
} from '../domain/statuses.ts';
import type { EngineContext } from './context.ts';
import type { Repos, RunFilter } from './ports.ts';

export interface CreateRunInput {
  repository: string;
  branch: string;
  commit_sha: string;
  triggered_by?: string | undefined;
  trigger_type: TriggerType;
  github_context?: GithubContext | undefined;
}

export interface Caller {
  actor: string;
  /** May record another actor as `triggered_by` (automation acting for a pusher). */
  mayActForOthers: boolean;
}

export async function createRun(ctx: EngineContext, input: CreateRunInput, caller: Caller): Promise<{ run: PipelineRun; created: boolean }> {
  const triggeredBy = input.triggered_by ?? caller.actor;
  if (triggeredBy !== caller.actor && !caller.mayActForOthers) {
    throw denied('triggered_by must be your own identity unless you are a service account or operator', {
      field: 'triggered_by', your_identity: caller.actor,
    });
  }
  const commitSha = normaliseSha(input.commit_sha);
  const now = ctx.clock.now();
  const candidate: PipelineRun = {
    id: randomUUID(),
    repository: input.repository,
    branch: input.branch,
    commit_sha: commitSha,
    triggered_by: triggeredBy,
    trigger_type: input.trigger_type,
    status: 'pending',
    started_at: now,
    completed_at: null,
    argo_workflow_name: null,
    discovery_output: null,
    github_context: input.github_context ?? null,
    error_code: null,
    error_message: null,
    created_at: now,
    attempt: 1,
    discovery_dispatched_at: null,
    deadline_at: new Date(now.getTime() + ctx.runTimeoutMs),
    pr_comment_posted_at: null,
  };
  const inserted = await ctx.store.insertRun(candidate,
    envelope('pipeline.run.created', { run_id: candidate.id, repository: candidate.repository, commit_sha: commitSha }, now));
  if (inserted) {
    ctx.eventsWritten();
    return { run: inserted, created: true };
  }
  // The commit already has a run (or an identical request won the race): that run is the run.
  const existing = await ctx.store.findRunByCommit(input.repository, commitSha);
  if (!existing) throw new Error('run vanished after a conflicting insert');
  return { run: existing, created: false };
}

export interface RunTree extends PipelineRun {
  phases: (PhaseExecution & { tasks: (TaskExecution & { steps: StepExecution[] })[] })[];
}

export async function getRunTree(ctx: EngineContext, id: string): Promise<RunTree> {
  const run = await ctx.store.getRun(id);
  if (!run) throw notFound('pipeline run', { id });
  const phases = await ctx.store.listPhases(id);
  const tasks = await ctx.store.listTasks(phases.map((p) => p.id));
  const steps = await ctx.store.listSteps(tasks.map((t) => t.id));
  return {
    ...run,
    phases: phases.map((phase) => ({
      ...phase,
      tasks: tasks
        .filter((t) => t.phase_execution_id === phase.id)
        .map((task) => ({ ...task, steps: steps.filter((s) => s.task_execution_id === task.id) })),
    })),
  };
}

export function listRuns(ctx: EngineContext, filter: RunFilter) {
  return ctx.store.listRuns(filter);
}

/** The discovery output shape the engine needs (digest §1.8; the configuration module produces it). */
export interface DiscoveryPlan {
  projects: { name: string; path: string; phases: Record<string, { steps: { name: string; action: string; target?: string; run?: string }[] }> }[];
  phaseGroups: { group: number; phases: string[] }[];
  [key: string]: unknown;
}

/**
 * Stores the discovery output on the run and creates its phases, tasks and steps (all `pending`).
 * A phase no project takes part in gets no tasks and is `skipped`. Idempotent: a run that already has phases is left as is.
 */
export async function recordDiscovery(ctx: EngineContext, runId: string, plan: DiscoveryPlan): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    await tx.lock(runLock(runId));
    const run = await tx.getRun(runId);
    if (!run) throw notFound('pipeline run', { id: runId });
    if (isRunTerminal(run.status)) throw conflict(`run is ${run.status}`, { status: run.status });
    if ((await tx.listPhases(runId)).length > 0) return;
    const phases: PhaseExecution[] = [];
    const tasks: TaskExecution[] = [];
    const steps: StepExecution[] = [];
    const seenPhases = new Set<string>();
    for (const group of plan.phaseGroups) {
      for (const phaseName of group.phases) {
        if (seenPhases.has(phaseName)) throw invalid(`phase ${phaseName} appears in two groups`, { phase: phaseName });
        seenPhases.add(phaseName);
        const phase: PhaseExecution = {
          id: randomUUID(), pipeline_run_id: runId, phase_name: phaseName, group_number: group.group,
          status: 'pending', started_at: null, completed_at: null,
        };
        phases.push(phase);
        const before = tasks.length;
        for (const project of plan.projects) {
          const participation = project.phases[phaseName];
          if (!participation) continue;
          const task: TaskExecution = {
            id: randomUUID(), phase_execution_id: phase.id, project_name: project.name, project_path: project.path,
            status: 'pending', started_at: null, completed_at: null, error: null,
            attempt: 0, dispatched_at: null, deadline_at: null,
          };
          tasks.push(task);
          for (const step of participation.steps) {
            steps.push({
              id: randomUUID(), task_execution_id: task.id, step_name: step.name, action: step.action,
              target: step.target ?? step.run ?? '', status: 'pending', started_at: null, completed_at: null,
              exit_code: null, logs_s3_key: null, attempt: 0,
            });
          }
        }
        // A phase no project takes part in has nothing to run (digest §1.7).
        if (tasks.length === before) phase.status = 'skipped';
      }
    }
    await tx.updateRun(runId, { discovery_output: plan });
    await tx.insertPhases(phases);
    await tx.insertTasks(tasks);
    await tx.insertSteps(steps);
  });
}

const runLock = (runId: string) => `run:${runId}`;

/** The run of a task or step, locked for this transaction (see the locking note above). */
async function lockRunOf(tx: Repos, kind: 'task' | 'step', id: string): Promise<PipelineRun> {
  const runId = await tx.runIdOf(kind, id);
  if (runId === undefined) throw notFound(kind, { id });
  await tx.lock(runLock(runId));
  const run = await tx.getRun(runId);
  if (!run) throw notFound(kind, { id });
  return run;
}

/** A finished run takes no more changes; repeating what is already recorded is still fine. */
function checkRunOpen(run: PipelineRun): void {
  if (isRunTerminal(run.status)) throw conflict(`run is already ${run.status}`, { run_id: run.id, status: run.status });
}

async function finishRun(tx: Repos, run: PipelineRun, status: RunStatus, at: Date, reason?: { code: string; message: string }) {
  await tx.updateRun(run.id, {
    status, completed_at: at,
    ...(reason ? { error_code: reason.code, error_message: reason.message } : {}),
  });
  const stopped = status === 'cancelled' ? `stopped: ${reason?.message ?? 'run cancelled'}` : 'stopped: another task failed (fail-fast)';
  await tx.settleRunExecutions(run.id, ['running'], 'failed', at, stopped);
  await tx.settleRunExecutions(run.id, ['pending'], 'skipped', at);
  const duration = Math.max(0, Math.round((at.getTime() - run.started_at.getTime()) / 1000));
  await tx.insertEvents([envelope('pipeline.run.completed', { run_id: run.id, status, duration_seconds: duration }, at)]);
}

export async function cancelRun(ctx: EngineContext, id: string, actor: string): Promise<void> {
  const wrote = await ctx.store.transaction(async (tx) => {
    await tx.lock(runLock(id));
    const run = await tx.getRun(id);
    if (!run) throw notFound('pipeline run', { id });
    if (run.status === 'cancelled') return false;
    if (isRunTerminal(run.status)) {
      throw conflict(`run already finished with status ${run.status}; only pending or running runs can be cancelled`, { status: run.status });
    }
    await finishRun(tx, run, 'cancelled', ctx.clock.now(), { code: 'cancelled', message: `cancelled by ${actor}` });
    return true;
  });
  if (wrote) ctx.eventsWritten();
}

/** Applies a reported status to a task or step row, or explains why it cannot move. */
function checkReport(kind: 'task' | 'step', id: string, from: TaskExecution['status'], to: ReportedStatus): 'apply' | 'same' {
  if (from === to) return 'same';
  if (!canReport(from, to)) {
    throw conflict(`${kind} is ${from} and cannot become ${to}`, { id, status: from, requested: to });
  }
  return 'apply';
}

/**
 * Moves the task's phase and run along after a task changed:
 * a start marks them running; a failure fails phase and run (fail-fast); the last success of a
 * phase succeeds it, and the last phase succeeds the run.
 */
async function propagateTask(tx: Repos, run: PipelineRun, task: TaskExecution, to: ReportedStatus, at: Date): Promise<boolean> {
  const phase = await tx.getPhase(task.phase_execution_id);
  if (!phase) throw new Error(`task ${task.id} has no phase`);
  switch (to) {
    case 'running':
      if (phase.status === 'pending') await tx.updatePhase(phase.id, { status: 'running', started_at: at });
      if (run.status === 'pending') await tx.updateRun(run.id, { status: 'running' });
      return false;
    case 'failed':
      await tx.updatePhase(phase.id, { status: 'failed', completed_at: at, ...(phase.started_at ? {} : { started_at: at }) });
      await finishRun(tx, run, 'failed', at);
      return true;
    case 'success': {
      const siblings = await tx.listTasks([phase.id]);
      if (siblings.every((t) => (t.id === task.id ? true : t.status === 'success'))) {
        await tx.updatePhase(phase.id, { status: 'success', completed_at: at });
        const phases = await tx.listPhases(run.id);
        if (phases.every((p) => p.id === phase.id || p.status === 'success' || p.status === 'skipped')) {
          await finishRun(tx, run, 'success', at);
          return true;
        }
      }
      return false;
    }
  }
}

export async function reportTaskStatus(ctx: EngineContext, id: string, to: ReportedStatus, error?: string): Promise<TaskExecution> {
  let wroteEvents = false;
  const task = await ctx.store.transaction(async (tx) => {
    const run = await lockRunOf(tx, 'task', id);
    const current = await tx.getTask(id);
    if (!current) throw notFound('task', { id });
    if (checkReport('task', id, current.status, to) === 'same') return current;
    checkRunOpen(run);
    const now = ctx.clock.now();
    const patch = {
      status: to,
      ...(to === 'running' || current.started_at === null ? { started_at: current.started_at ?? now } : {}),
      ...(isExecutionTerminal(to) ? { completed_at: now } : {}),
      ...(error !== undefined ? { error } : {}),
    };
    await tx.updateTask(id, patch);
    wroteEvents = await propagateTask(tx, run, current, to, now);
    return { ...current, ...patch };
  });
  if (wroteEvents) ctx.eventsWritten();
  return task;
}

export interface StepReport {
  status: ReportedStatus;
  exit_code?: number | null | undefined;
  logs_s3_key?: string | null | undefined;
}

/** A step start starts its task; a step failure fails its task (and so the run). */
export async function reportStepStatus(ctx: EngineContext, id: string, report: StepReport): Promise<StepExecution> {
  let wroteEvents = false;
  const step = await ctx.store.transaction(async (tx) => {
    const run = await lockRunOf(tx, 'step', id);
    const current = await tx.getStep(id);
    if (!current) throw notFound('step', { id });
    const same = checkReport('step', id, current.status, report.status) === 'same';
    if (same && isRunTerminal(run.status)) return current;
    if (!same) checkRunOpen(run);
    const now = ctx.clock.now();
    const patch = {
      ...(same ? {} : { status: report.status }),
      ...(!same && (report.status === 'running' || current.started_at === null) ? { started_at: current.started_at ?? now } : {}),
      ...(!same && isExecutionTerminal(report.status) ? { completed_at: now } : {}),
      ...(report.exit_code !== undefined ? { exit_code: report.exit_code } : {}),
      ...(report.logs_s3_key !== undefined ? { logs_s3_key: report.logs_s3_key } : {}),
    };
    if (Object.keys(patch).length > 0) await tx.updateStep(id, patch);
    if (!same && report.status !== 'success') {
      const task = await tx.getTask(current.task_execution_id);
      if (!task) throw new Error(`step ${id} has no task`);
      const taskTo = report.status;
      if (task.status !== taskTo && canReport(task.status, taskTo)) {
        await tx.updateTask(task.id, {
          status: taskTo,
          started_at: task.started_at ?? now,
          ...(taskTo === 'failed' ? { completed_at: now, error: `step ${current.step_name} failed${report.exit_code != null ? ` with exit code ${report.exit_code}` : ''}` } : {}),
        });
        wroteEvents = await propagateTask(tx, run, task, taskTo, now);
      }
    }
    return { ...current, ...patch };
  });
  if (wroteEvents) ctx.eventsWritten();
  return step;
}

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
import { randomInt, randomUUID } from 'node:crypto';
import type { EventEnvelope, GithubContext, PhaseExecution, PipelineRun, StepExecution, TaskExecution } from '../domain/entities.ts';
import { envelope } from '../domain/entities.ts';
import { conflict, denied, ForgeError, invalid, notFound } from '../domain/errors.ts';
import { DEFAULT_MAX_ACTIVE_RUNS_PER_REPOSITORY, MAX_RUN_DURATION_MS } from '../domain/limits.ts';
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
import { uniqueViolation } from './db-errors.ts';
import { hasReleasePhase, runReleasesDone } from './release-builds.ts';

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
  const { candidate, created } = newRun(ctx, input, caller);
  const inserted = await withRunSlot(ctx, candidate.repository, (slot) => ctx.store.insertRun({ ...candidate, active_slot: slot }, created));
  if (inserted) {
    ctx.crashPoint?.('run-committed');
    ctx.eventsWritten();
    ctx.runChanged(inserted.id);
    return { run: inserted, created: true };
  }
  // The commit already has a run (or an identical request won the race): that run is the run.
  const existing = await ctx.store.findRunByCommit(input.repository, candidate.commit_sha);
  if (!existing) throw new Error('run vanished after a conflicting insert');
  return { run: existing, created: false };
}

/**
 * The run a GitHub webhook delivery asks for, and what the delivery was: the first delivery of the
 * event that created the run (`created`), the first delivery of an event whose commit already had a
 * run (`exists`), or a delivery id seen before (`duplicate`). The run and the delivery record are
 * written in one transaction, so concurrent copies of one delivery queue on the run's (repository,
 * commit) key and then on the delivery id: exactly one of them is `created` (fault 9).
 */
export async function createRunForDelivery(
  ctx: EngineContext, input: CreateRunInput, caller: Caller, delivery: { id: string; event: string },
): Promise<{ run: PipelineRun; outcome: 'created' | 'exists' | 'duplicate' }> {
  const { candidate, created } = newRun(ctx, input, caller);
  const result = await withRunSlot(ctx, candidate.repository, (slot) => ctx.store.transaction(async (tx) => {
    const inserted = await tx.insertRun({ ...candidate, active_slot: slot }, created);
    const run = inserted ?? (await tx.findRunByCommit(input.repository, candidate.commit_sha));
    if (!run) throw new Error('run vanished after a conflicting insert');
    const first = await tx.recordGithubDelivery(delivery.id, delivery.event, run.id);
    return { run, outcome: !first ? 'duplicate' as const : inserted ? 'created' as const : 'exists' as const };
  }));
  if (result.outcome === 'created') {
    ctx.eventsWritten();
    ctx.runChanged(result.run.id);
  }
  return result;
}

/** How long a refused creation is told to wait: runs finish in minutes, and the limit is far from a burst. */
const RUN_LIMIT_RETRY_AFTER_SECONDS = 30;
/** The unique index that gives each unfinished run of a repository its own slot (migration 006). */
const ACTIVE_SLOT_INDEX = 'pipeline_runs_active_slot_key';
/** Slot collisions tolerated before giving up (each retry picks among the slots seen free). */
const SLOT_ATTEMPTS = 20;

/**
 * The limit of unfinished runs per repository (seed 06: 1000; FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY),
 * enforced by the database: `write` stores a run that becomes unfinished (a creation, a retry) in
 * slot `slot`, one of 0..limit-1, and the unique index on (repository, slot) of unfinished runs
 * refuses a slot another unfinished run holds, however many replicas write at once, with no lock.
 * The first slot is a random one (free unless the repository is busy); on a collision the free
 * slots are read and one of them is tried; when none is free the repository is at its limit:
 * `rate_limited` (429) naming the limit and the count. `write` must not have kept anything (one
 * statement, or a transaction, which the collision rolls back).
 */
async function withRunSlot<T>(ctx: EngineContext, repository: string, write: (slot: number) => Promise<T>): Promise<T> {
  const limit = ctx.maxActiveRunsPerRepository ?? DEFAULT_MAX_ACTIVE_RUNS_PER_REPOSITORY;
  let slot = randomInt(limit);
  for (let attempt = 1; ; attempt++) {
    try {
      return await write(slot);
    } catch (error) {
      if (uniqueViolation(error) !== ACTIVE_SLOT_INDEX) throw error;
      const free = attempt < SLOT_ATTEMPTS ? await ctx.store.freeRunSlots(repository, limit) : [];
      const next = free[randomInt(Math.max(1, free.length))];
      if (next === undefined) throw await limitReached(ctx, repository, limit);
      slot = next;
    }
  }
}

async function limitReached(ctx: EngineContext, repository: string, limit: number): Promise<ForgeError> {
  const active = await ctx.store.countActiveRuns(repository);
  return new ForgeError('rate_limited', `repository ${repository} already has ${active} unfinished (pending or running) runs, the most it may have at once (${limit}); retry when some have finished, or cancel some`, {
    repository, limit, active_runs: active, retry_after_seconds: RUN_LIMIT_RETRY_AFTER_SECONDS,
  });
}

/** The deadline of a run (or attempt) starting `now`: the configured run timeout, never more than 24 h. */
function runDeadline(ctx: EngineContext, now: Date): Date {
  return new Date(now.getTime() + Math.min(ctx.runTimeoutMs, MAX_RUN_DURATION_MS));
}

/** A new pending run for `input` (not stored yet) and its creation event. */
function newRun(ctx: EngineContext, input: CreateRunInput, caller: Caller): { candidate: PipelineRun; created: EventEnvelope } {
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
    deadline_at: runDeadline(ctx, now),
    pr_comment_posted_at: null,
    trace_context: ctx.telemetry?.traceparent() ?? null,
    logs_expired_at: null,
    active_slot: null,
  };
  return { candidate, created: envelope('pipeline.run.created', { run_id: candidate.id, repository: candidate.repository, commit_sha: commitSha }, now) };
}

export interface RunTree extends PipelineRun {
  phases: (PhaseExecution & { tasks: (TaskExecution & { steps: StepExecution[] })[] })[];
}

/** Why a failed run failed: the platform's reason, else the first failed task's error, else the failed phase. */
export function failureReason(run: RunTree): string {
  if (run.error_message) return run.error_message;
  for (const phase of run.phases) {
    const task = phase.tasks.find((t) => t.status === 'failed');
    if (task) return `${phase.phase_name}/${task.project_name}: ${task.error ?? 'failed'}`;
  }
  const phase = run.phases.find((p) => p.status === 'failed');
  return phase ? `phase ${phase.phase_name} failed` : 'failed';
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

/**
 * The discovery output shape the engine needs (digest §1.8; config/discovery.ts produces it as
 * DiscoveryOutput): each project's phases map to the steps it runs there.
 */
export interface DiscoveryPlan {
  projects: { name: string; path: string; phases: Record<string, PlannedStep[]> }[];
  phaseGroups: { group: number; phases: string[] }[];
  repository?: { phases?: Record<string, { timeout?: string }> };
  [key: string]: unknown;
}

export interface PlannedStep {
  name: string;
  action: string;
  target?: string;
  run?: string;
  timeout?: string;
  env?: Record<string, string>;
  /** Secret references (never values): the worker resolves them when the step starts. */
  secrets?: Record<string, unknown>[];
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
          for (const step of participation) {
            steps.push({
              id: randomUUID(), task_execution_id: task.id, step_name: step.name, action: step.action,
              target: step.target ?? step.run ?? '', status: 'pending', started_at: null, completed_at: null,
              exit_code: null, logs_s3_key: null, attempt: 0, logs_expired_at: null,
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
  ctx.runChanged(runId);
}

const runLock = (runId: string) => `run:${runId}`;
/** Taken after the run's lock when both are needed (claims, task reports, step failures). */
const taskLock = (taskId: string) => `task:${taskId}`;

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

/**
 * Ends a run in one transaction holding its lock: `decide` reads the locked run and either finishes
 * it (returns true) or leaves it (false); after commit the events relay and the dispatcher hear of it.
 */
async function endRun(ctx: EngineContext, id: string, decide: (tx: Repos, run: PipelineRun | undefined, at: Date) => Promise<boolean>): Promise<boolean> {
  const wrote = await ctx.store.transaction(async (tx) => {
    await tx.lock(runLock(id));
    return decide(tx, await tx.getRun(id), ctx.clock.now());
  });
  if (wrote) {
    ctx.eventsWritten();
    ctx.runChanged(id);
  }
  return wrote;
}

export async function cancelRun(ctx: EngineContext, id: string, actor: string): Promise<void> {
  await endRun(ctx, id, async (tx, run, at) => {
    if (!run) throw notFound('pipeline run', { id });
    if (run.status === 'cancelled') return false;
    if (isRunTerminal(run.status)) {
      throw conflict(`run already finished with status ${run.status}; only pending or running runs can be cancelled`, { status: run.status });
    }
    await finishRun(tx, run, 'cancelled', at, { code: 'cancelled', message: `cancelled by ${actor}` });
    return true;
  });
}

export interface RetryResult {
  run: PipelineRun;
  /** Tasks set to run again (0 when discovery itself runs again). */
  retried: number;
}

/**
 * Retry from failure (beyond the seed): a failed or cancelled run starts attempt N+1, in which only
 * the tasks that did not succeed run again; successful tasks, their phases and their logs stay. A
 * run whose discovery never finished runs discovery again. Jobs of the new attempt carry its number,
 * so replies and reports of the old one are refused (fencing as for redelivery).
 */
export async function retryRun(ctx: EngineContext, id: string, actor: string): Promise<RetryResult> {
  const existing = await ctx.store.getRun(id);
  if (!existing) throw notFound('pipeline run', { id });
  // The retried run is unfinished again: it needs a slot of its repository as a new run does.
  const result = await withRunSlot(ctx, existing.repository, (slot) => ctx.store.transaction(async (tx) => {
    await tx.lock(runLock(id));
    const run = await tx.getRun(id);
    if (!run) throw notFound('pipeline run', { id });
    if (!isRunTerminal(run.status)) {
      throw conflict(`run is ${run.status}; only a finished run that failed or was cancelled can be retried`, { status: run.status });
    }
    if (run.status === 'success') throw conflict('run succeeded; there is nothing to retry', { status: run.status });
    const now = ctx.clock.now();
    const attempt = run.attempt + 1;
    let retried = 0;
    if (run.discovery_output !== null) {
      const phases = await tx.listPhases(id);
      const tasks = await tx.listTasks(phases.map((p) => p.id));
      const again = tasks.filter((t) => t.status !== 'success');
      retried = again.length;
      for (const task of again) {
        await tx.updateTask(task.id, { status: 'pending', started_at: null, completed_at: null, error: null, dispatched_at: null, deadline_at: null });
        // A log the retention job deleted is not "expired" any more once the step runs again.
        await tx.updateStepsOfTask(task.id, { status: 'pending', started_at: null, completed_at: null, exit_code: null, logs_expired_at: null });
      }
      for (const phase of phases) {
        // A phase no project takes part in stays skipped: it has nothing to run.
        if (phase.status === 'success' || !again.some((t) => t.phase_execution_id === phase.id)) continue;
        await tx.updatePhase(phase.id, { status: 'pending', started_at: null, completed_at: null });
      }
    }
    const patch = {
      status: 'pending' as const, attempt, completed_at: null, error_code: null, error_message: null,
      discovery_dispatched_at: null, deadline_at: runDeadline(ctx, now), pr_comment_posted_at: null,
      // The retention job expires the logs of this attempt once it has finished long enough.
      logs_expired_at: null, active_slot: slot,
    };
    await tx.updateRun(id, patch);
    await tx.insertEvents([envelope('pipeline.run.retried', { run_id: id, attempt, tasks: retried, retried_by: actor }, now)]);
    return { run: { ...run, ...patch }, retried };
  }));
  ctx.eventsWritten();
  ctx.runChanged(id);
  return result;
}

/**
 * Fails a run for a platform reason (discovery failed or timed out, the run's deadline passed):
 * running work is recorded failed with the reason, work that never started is skipped.
 */
export function failRun(ctx: EngineContext, id: string, code: string, message: string): Promise<boolean> {
  return endRun(ctx, id, async (tx, run, at) => {
    if (!run || isRunTerminal(run.status)) return false;
    await finishRun(tx, run, 'failed', at, { code, message });
    return true;
  });
}

/** Succeeds a run whose phases are all done (a plan with nothing to run finishes at once). */
export function completeRunIfDone(ctx: EngineContext, id: string): Promise<boolean> {
  return endRun(ctx, id, async (tx, run, at) => {
    if (!run || isRunTerminal(run.status) || run.discovery_output === null) return false;
    const phases = await tx.listPhases(id);
    if (!phases.every((p) => p.status === 'success' || p.status === 'skipped')) return false;
    // A run with a release phase succeeds when every release-triggered project has its release.
    if (hasReleasePhase(run) && !runReleasesDone(run, await tx.listRunReleaseBuilds(id))) return false;
    await finishRun(tx, run, 'success', at);
    return true;
  });
}

/** Records that the run's jobs were published (the dispatcher's bookkeeping; no status changes). */
export async function markDispatched(ctx: EngineContext, runId: string, marks: { discovery?: Date; tasks?: { id: string; at: Date; deadline: Date }[] }): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    await tx.lock(runLock(runId));
    if (marks.discovery) await tx.updateRun(runId, { discovery_dispatched_at: marks.discovery });
    for (const task of marks.tasks ?? []) await tx.updateTask(task.id, { dispatched_at: task.at, deadline_at: task.deadline });
  });
}

/** Records the run attempt's Argo Workflow (decision 148); an older attempt's late submission changes nothing. */
export async function recordWorkflow(ctx: EngineContext, runId: string, attempt: number, name: string): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    await tx.lock(runLock(runId));
    const run = await tx.getRun(runId);
    if (run?.attempt === attempt) await tx.updateRun(runId, { argo_workflow_name: name });
  });
}

/**
 * How long the watchdog gives a claimed task: its timeout plus a grace of a tenth (2 s to 60 s), so
 * the worker, which enforces the timeout itself and says which step ran over, reports first.
 */
export function runningBudget(timeoutMs: number): number {
  return timeoutMs + Math.min(60_000, Math.max(2_000, Math.round(timeoutMs / 10)));
}

export interface Claim {
  attempt: number;
  task: TaskExecution;
  steps: StepExecution[];
}

/**
 * A worker takes a task: its attempt goes up by one and its steps start over (a redelivered or
 * retried job runs them again in a fresh checkout). Reports that carry an older attempt are then
 * refused, so a worker that froze past ack_wait cannot overwrite the newer attempt's results.
 */
export async function claimTask(ctx: EngineContext, id: string): Promise<Claim> {
  const claim = await ctx.store.transaction(async (tx) => {
    const run = await lockRunOf(tx, 'task', id);
    await tx.lock(taskLock(id));
    const task = await tx.getTask(id);
    if (!task) throw notFound('task', { id });
    checkRunOpen(run);
    if (isExecutionTerminal(task.status)) throw conflict(`task is already ${task.status}`, { id, status: task.status });
    const now = ctx.clock.now();
    const attempt = task.attempt + 1;
    const deadline = task.deadline_at ? { deadline_at: new Date(now.getTime() + claimedSpan(task, task.deadline_at)) } : {};
    const patch = { status: 'running' as const, attempt, started_at: now, error: null, ...deadline };
    await tx.updateTask(id, patch);
    await tx.updateStepsOfTask(id, { status: 'pending', started_at: null, completed_at: null, exit_code: null });
    await propagateTask(tx, run, task, 'running', now);
    return { attempt, task: { ...task, ...patch }, steps: await tx.listSteps([id]) };
  });
  // Nothing for the dispatcher to do: the task runs, and its deadline moved with the claim.
  return claim;
}

/**
 * The watchdog's span for a claimed task, counted from the claim: waiting in the queue for a free
 * worker is not running. The first claim turns the published job's timeout into the running budget;
 * a later claim (redelivery) keeps the span the first one set, so it neither grows nor shrinks.
 */
function claimedSpan(task: TaskExecution, deadline: Date): number {
  if (task.attempt > 0 && task.started_at) return deadline.getTime() - task.started_at.getTime();
  return runningBudget(deadline.getTime() - (task.dispatched_at ?? deadline).getTime());
}

/** A report from an older attempt than the task's current one is refused (fencing). */
function checkAttempt(task: TaskExecution, attempt: number | undefined): void {
  if (attempt !== undefined && attempt !== task.attempt) {
    throw conflict(`stale report: attempt ${attempt} of this task was superseded by attempt ${task.attempt}`, { task_id: task.id, attempt, current_attempt: task.attempt });
  }
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
async function propagateTask(tx: Repos, run: PipelineRun, task: TaskExecution, to: ReportedStatus, at: Date, platformFailure?: { code: string; message: string }): Promise<boolean> {
  const phase = await tx.getPhase(task.phase_execution_id);
  if (!phase) throw new Error(`task ${task.id} has no phase`);
  switch (to) {
    case 'running':
      if (phase.status === 'pending') await tx.updatePhase(phase.id, { status: 'running', started_at: at });
      if (run.status === 'pending') await tx.updateRun(run.id, { status: 'running' });
      return false;
    case 'failed':
      await tx.updatePhase(phase.id, { status: 'failed', completed_at: at, ...(phase.started_at ? {} : { started_at: at }) });
      await finishRun(tx, run, 'failed', at, platformFailure && { code: platformFailure.code, message: `task ${phase.phase_name}/${task.project_name}: ${platformFailure.message}` });
      return true;
    case 'success': {
      const siblings = await tx.listTasks([phase.id]);
      if (siblings.every((t) => (t.id === task.id ? true : t.status === 'success'))) {
        await tx.updatePhase(phase.id, { status: 'success', completed_at: at });
        const phases = await tx.listPhases(run.id);
        if (phases.every((p) => p.id === phase.id || p.status === 'success' || p.status === 'skipped')) {
          // The release phase comes next (the dispatcher starts it), else the run is done.
          if (hasReleasePhase(run)) return true;
          await finishRun(tx, run, 'success', at);
          return true;
        }
      }
      return false;
    }
  }
}

/**
 * `platformCode`: the platform failed the task (not the user's step), e.g. `dead_lettered`: the run it
 * ends records that code and the task's error as its own.
 */
export async function reportTaskStatus(ctx: EngineContext, id: string, to: ReportedStatus, error?: string, attempt?: number, platformCode?: string): Promise<TaskExecution> {
  let wroteEvents = false;
  let changed = false;
  let runId = '';
  const task = await ctx.store.transaction(async (tx) => {
    const run = await lockRunOf(tx, 'task', id);
    await tx.lock(taskLock(id));
    runId = run.id;
    const current = await tx.getTask(id);
    if (!current) throw notFound('task', { id });
    checkAttempt(current, attempt);
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
    wroteEvents = await propagateTask(tx, run, current, to, now, platformCode ? { code: platformCode, message: error ?? to } : undefined);
    changed = true;
    return { ...current, ...patch };
  });
  if (wroteEvents) ctx.eventsWritten();
  if (changed) ctx.runChanged(runId);
  return task;
}

export interface StepReport {
  status: ReportedStatus;
  exit_code?: number | null | undefined;
  logs_s3_key?: string | null | undefined;
  /** The task attempt the worker runs (from its claim); older attempts are refused. */
  attempt?: number | undefined;
  /** Why a failed step failed, when more than its exit code says (a timeout, could not start). */
  error?: string | undefined;
}

function stepFailure(step: string, report: StepReport): string {
  if (report.error) return `step ${step} failed: ${report.error}`;
  return `step ${step} failed${report.exit_code != null ? ` with exit code ${report.exit_code}` : ''}`;
}

/**
 * A step start starts its task; a step failure fails its task (and so the run).
 *
 * Locks: a failure changes task, phase and run, so it takes the run's lock (then the task's), as
 * claims and task reports do. A start or a success changes only the step: it takes the task's lock
 * alone, so the steps of a run's many tasks are recorded side by side instead of queueing on the
 * run (under load the run lock was where report transactions waited). The task lock orders it
 * against a claim of a newer attempt (attempt fencing). It does not wait for the run: a step that
 * succeeds while fail-fast settles its run may be recorded as the success it was.
 */
export async function reportStepStatus(ctx: EngineContext, id: string, report: StepReport): Promise<StepExecution> {
  let wroteEvents = false;
  let taskChanged = false;
  let finished = false;
  let runId = '';
  const step = await ctx.store.transaction(async (tx) => {
    const located = await tx.getStep(id);
    if (!located) throw notFound('step', { id });
    // A failure, or a start of a task nobody claimed (workers claim first), changes the task.
    const unclaimed = (await tx.getTask(located.task_execution_id))?.status === 'pending';
    const changesTask = report.status === 'failed' || (report.status === 'running' && unclaimed);
    let run: PipelineRun | undefined;
    if (changesTask) run = await lockRunOf(tx, 'step', id);
    await tx.lock(taskLock(located.task_execution_id));
    const current = await tx.getStep(id);
    const task = await tx.getTask(located.task_execution_id);
    if (!current || !task) throw notFound('step', { id });
    if (!changesTask && task.status === 'pending') {
      throw conflict(`task ${task.id} went back to pending (its run is being retried); report the steps of the new attempt`, { task_id: task.id });
    }
    if (report.attempt !== undefined) checkAttempt(task, report.attempt);
    run ??= await tx.getRun(await runIdOfTask(tx, task));
    if (!run) throw notFound('step', { id });
    runId = run.id;
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
      ...(report.attempt !== undefined ? { attempt: report.attempt } : {}),
    };
    if (Object.keys(patch).length > 0) await tx.updateStep(id, patch);
    finished = !same && isExecutionTerminal(report.status);
    if (!same && changesTask) {
      const taskTo = report.status;
      if (task.status !== taskTo && canReport(task.status, taskTo)) {
        await tx.updateTask(task.id, {
          status: taskTo,
          started_at: task.started_at ?? now,
          ...(taskTo === 'failed' ? { completed_at: now, error: stepFailure(current.step_name, report) } : {}),
        });
        wroteEvents = await propagateTask(tx, run, task, taskTo, now);
        taskChanged = true;
      }
    }
    return { ...current, ...patch };
  });
  if (wroteEvents) ctx.eventsWritten();
  // The dispatcher acts on tasks and runs, never on a step alone.
  if (taskChanged) ctx.runChanged(runId);
  if (finished) ctx.telemetry?.stepFinished(step);
  return step;
}


async function runIdOfTask(tx: Repos, task: TaskExecution): Promise<string> {
  const phase = await tx.getPhase(task.phase_execution_id);
  if (!phase) throw new Error(`task ${task.id} has no phase`);
  return phase.pipeline_run_id;
}

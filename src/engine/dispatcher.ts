/**
 * The dispatcher drives runs from Postgres state: it publishes each run's jobs and moves the run
 * along when workers reply or report. It holds no state of its own that matters: a restarted
 * dispatcher (or another replica) finds the same work from the database.
 *
 * Run without discovery output → publish the discovery job once; its reply records the plan.
 * Run with a plan → the lowest phase group not done is the active one; its pending tasks that were
 *   never published are published together (every phase × project of the group at once). Group
 *   N+1 starts only when every task of group N succeeded; a failure ends the run (fail-fast) in the
 *   engine, and the dispatcher then broadcasts a cancel so workers kill the siblings in flight.
 * Watchdog (every sweep): a run past its deadline, a discovery or a task past its job timeout is
 *   failed with the reason; nothing non-terminal waits forever.
 * Orchestrated by Argo Workflows (`orchestrator`): a run whose attempt has no Workflow yet gets it
 *   submitted; the run's jobs are then published by the Workflow's `forge dispatch` pods (the same
 *   jobs, built in run-jobs.ts), never here. Everything else above stays here.
 */
import { JOB_TIMEOUTS_MS, type JobReply, type JobType } from '../domain/jobs.ts';
import { isExecutionTerminal, isReleaseBuildTerminal, isRunTerminal } from '../domain/statuses.ts';
import { RetryableError } from '../domain/errors.ts';
import { KeyedMutex } from '../lib/keyed-mutex.ts';
import type { EngineContext } from './context.ts';
import type { Deployment, PipelineRun, ReleaseBuild } from '../domain/entities.ts';
import type { JobQueue, ObjectStore, RunOrchestrator } from './ports.ts';
import { cancelRun, completeRunIfDone, failRun, markDispatched, recordWorkflow, reportTaskStatus, runningBudget, type DiscoveryPlan } from './runs.ts';
import {
  cancelRunReleaseBuilds, failReleaseBuild, hasReleasePhase, markBuildDispatched, recordArtifactOutcome, startRunReleases, type BuildDiscoveryPayload,
} from './release-builds.ts';
import { claimNextDeployment, deploymentTarget } from './deployments.ts';
import { applyJobReply, artifactJobs, ciJob, deploymentJob, discoveryJob, draft, ignoreConflict, releaseJob, taskTimeout, toMessage, type JobDraft } from './run-jobs.ts';

export interface DispatcherOptions {
  queue: JobQueue;
  objects?: ObjectStore;
  /** How often every active run is looked at (restart recovery, lost nudges, the watchdog). */
  sweepMs?: number;
  jobTimeoutsMs?: Partial<Record<JobType, number>>;
  log?: (message: string, error?: unknown, fields?: Record<string, string>) => void;
  /**
   * Runs are orchestrated elsewhere (Argo Workflows, decision 145): a run's Workflow is submitted
   * here, and its jobs are published by `forge dispatch` pods, never by this dispatcher. The
   * watchdog, completion, fail-fast cancels, manual release builds and deployments stay here.
   */
  orchestrator?: RunOrchestrator;
  /** With an orchestrator: how often the runs' Workflows are looked at in Argo (default 30 s, decision 210). */
  workflowCheckMs?: number;
}

export interface Dispatcher {
  nudge(runId: string): void;
  /** Resolves when every nudge so far has been handled (tests). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDispatcher(ctx: EngineContext, options: DispatcherOptions): Promise<Dispatcher> {
  const timeouts = { ...JOB_TIMEOUTS_MS, ...options.jobTimeoutsMs };
  const log = options.log ?? (() => undefined);
  const perRun = new KeyedMutex();
  const broadcast = new Set<string>();
  const pending = new Set<Promise<void>>();
  let stopped = false;

  // The queue settles a reply once its handling resolved (on NATS a failed one is offered again).
  const inbox = await options.queue.openInbox((reply) => {
    const work = onReply(reply);
    track(work, reply.run_id);
    return work;
  });

  /** `runId`: what the failure's warning names (a run, or a manual build's or a deployment's own id, as their jobs' run_id). */
  function track(work: Promise<unknown>, runId?: string): void {
    const guarded = work.then(() => undefined, (error: unknown) => log('dispatcher step failed', error, runId === undefined ? {} : { run_id: runId })).finally(() => pending.delete(guarded));
    pending.add(guarded);
  }

  async function onReply(reply: JobReply): Promise<void> {
    const next = await applyJobReply(ctx, reply, { objects: options.objects, log });
    if (next !== undefined) nudge(next);
  }

  /** Publishes the next deployment job of a target when none is in flight (deployments.ts claims it). */
  async function reconcileDeployments(target: Deployment): Promise<void> {
    await perRun.run(`deploy:${deploymentTarget(target)}`, async () => {
      for (;;) {
        // Under Argo a run's auto-deploy is its Workflow's deployment node's to publish (decision 207).
        const claim = await claimNextDeployment(ctx, target, timeouts.deployment, { leaveToWorkflows: options.orchestrator !== undefined });
        if (claim.kind === 'failed') {
          log(`deployment ${claim.deployment.id} failed: ${claim.deployment.error ?? ''}`);
          continue;
        }
        if (claim.kind === 'dispatch') await publish(deploymentJob(claim.payload, ctx.clock.now(), timeouts));
        return;
      }
    });
  }

  /** When each run attempt's Workflow submission first failed retryably (they are retried every sweep). */
  const submitFailures = new Map<string, number>();

  /**
   * Submits the Workflow of the run's attempt and records its name (decision 148). The name is
   * deterministic, so a submission repeated after a crash finds the Workflow there and counts as
   * done. An unreachable Argo server is tried again on every sweep for up to the discovery timeout;
   * a refused Workflow fails the run at once.
   */
  async function submitWorkflow(run: PipelineRun, orchestrator: RunOrchestrator, now: Date): Promise<void> {
    const key = `${run.id}:${run.attempt}`;
    try {
      const name = await orchestrator.submit(run);
      submitFailures.delete(key);
      await recordWorkflow(ctx, run.id, run.attempt, name);
    } catch (error) {
      const message = (error as Error).message;
      if (!(error instanceof RetryableError)) {
        submitFailures.delete(key);
        await failRun(ctx, run.id, 'workflow_rejected', `the Argo Workflow of this run was not accepted: ${message}`);
        return;
      }
      const first = submitFailures.get(key) ?? now.getTime();
      submitFailures.set(key, first);
      log(`submitting the Workflow of run ${run.id} failed; trying again: ${message}`);
      if (now.getTime() - first >= timeouts.discovery) {
        submitFailures.delete(key);
        await failRun(ctx, run.id, 'orchestrator_unavailable', `the Argo Workflow of this run could not be submitted within ${formatMs(timeouts.discovery)}: ${message}`);
      }
    }
  }

  /** Publishes a job with this dispatcher's inbox as its reply address. */
  function publish(job: JobDraft): Promise<void> {
    return options.queue.publish(toMessage(job, inbox.subject), job.msg_id);
  }

  async function reconcile(runId: string): Promise<void> {
    const run = await ctx.store.getRun(runId);
    if (!run) {
      // Not a run: a manual release build or a deployment (their ids are nudged like a run's).
      const build = await ctx.store.getReleaseBuild(runId);
      if (build) {
        await reconcileBuild(build);
        return;
      }
      const deployment = await ctx.store.getDeployment(runId);
      if (deployment) await reconcileDeployments(deployment);
      return;
    }
    const now = ctx.clock.now();
    if (isRunTerminal(run.status)) {
      // Once per attempt: a retried run that fails again cancels its new jobs too.
      const key = `${runId}:${run.attempt}`;
      if (!broadcast.has(key) && run.status !== 'success') {
        broadcast.add(key);
        const reason = run.status === 'cancelled' ? (run.error_message ?? 'run cancelled') : 'another task failed (fail-fast)';
        await options.queue.broadcastCancel(runId, reason);
        await cancelRunReleaseBuilds(ctx, run);
      }
      return;
    }
    if (run.deadline_at && now > run.deadline_at) {
      await failRun(ctx, runId, 'timeout', `run did not finish by its deadline ${run.deadline_at.toISOString()}`);
      return;
    }
    if (options.orchestrator && run.argo_workflow_name !== options.orchestrator.workflowName(run)) {
      await submitWorkflow(run, options.orchestrator, now);
      return;
    }
    if (run.discovery_output === null) {
      if (run.discovery_dispatched_at === null) {
        if (options.orchestrator) return; // the Workflow's discovery node publishes it
        await publish(discoveryJob(run, now, timeouts));
        ctx.crashPoint?.('job-published');
        await markDispatched(ctx, runId, { discovery: now });
      } else if (now.getTime() - run.discovery_dispatched_at.getTime() > timeouts.discovery) {
        await failRun(ctx, runId, 'timeout', `discovery did not finish within ${formatMs(timeouts.discovery)}`);
      }
      return;
    }
    const plan = run.discovery_output as DiscoveryPlan;
    const phases = await ctx.store.listPhases(runId);
    const tasks = await ctx.store.listTasks(phases.map((p) => p.id));
    for (const task of tasks) {
      if (!isExecutionTerminal(task.status) && task.deadline_at && now > task.deadline_at) {
        const phase = phases.find((p) => p.id === task.phase_execution_id);
        await reportTaskStatus(ctx, task.id, 'failed', `timed out: no result within ${formatMs(taskTimeout(plan, phase?.phase_name ?? '', timeouts.ci))} (phase ${phase?.phase_name ?? '?'})`).catch(ignoreConflict);
        return;
      }
    }
    const active = [...new Set(phases.map((p) => p.group_number))].sort((a, b) => a - b)
      .find((group) => phases.some((p) => p.group_number === group && p.status !== 'success' && p.status !== 'skipped'));
    if (active === undefined) {
      if (hasReleasePhase(run)) await releasePhase(run);
      else await completeRunIfDone(ctx, runId);
      return;
    }
    const activePhases = phases.filter((p) => p.group_number === active);
    const toDispatch = tasks.filter((t) => t.status === 'pending' && t.dispatched_at === null && activePhases.some((p) => p.id === t.phase_execution_id));
    if (toDispatch.length === 0 || options.orchestrator) return;
    const steps = await ctx.store.listSteps(toDispatch.map((t) => t.id));
    const marks: { id: string; at: Date; deadline: Date }[] = [];
    await Promise.all(toDispatch.map(async (task) => {
      const { job, timeoutMs } = ciJob(run, plan, activePhases.find((p) => p.id === task.phase_execution_id)!, task, steps, now, timeouts);
      await publish(job);
      marks.push({ id: task.id, at: now, deadline: new Date(now.getTime() + timeoutMs) });
    }));
    await markDispatched(ctx, runId, { tasks: marks });
    ctx.groupDispatched?.(run, phases);
  }

  /** The release phase of a run whose phase groups all succeeded (digest §2.2 step 5). */
  async function releasePhase(run: PipelineRun): Promise<void> {
    const builds = await startRunReleases(ctx, run);
    for (const build of builds) await reconcileBuild(build);
    const now = await Promise.all(builds.map((b) => ctx.store.getReleaseBuild(b.id)));
    const failed = now.find((b) => b?.status === 'failed' || b?.status === 'cancelled');
    if (failed) {
      await failRun(ctx, run.id, 'release_failed', `release of ${failed.project} failed: ${failed.error_message ?? failed.status}`);
      return;
    }
    await completeRunIfDone(ctx, run.id);
  }

  /** Publishes what a release build needs next, and fails what ran past its time. */
  async function reconcileBuild(build: ReleaseBuild): Promise<void> {
    const now = ctx.clock.now();
    const jobRun = build.pipeline_run_id ?? build.id;
    const attempt = build.run_attempt ?? 1;
    // A run's builds are published by its Workflow's artifact and release nodes when orchestrated elsewhere.
    const publishing = !(options.orchestrator && build.pipeline_run_id !== null);
    if (isReleaseBuildTerminal(build.status)) {
      const key = `build:${build.id}`;
      if (build.pipeline_run_id === null && build.status !== 'success' && !broadcast.has(key)) {
        broadcast.add(key);
        await options.queue.broadcastCancel(build.id, build.error_message ?? 'release build ended');
      }
      return;
    }
    const overdue = (since: Date | string | null | undefined, limitMs: number) => since != null && now.getTime() - new Date(since).getTime() > limitMs;
    switch (build.status) {
      case 'pending': {
        if (build.plan_dispatched_at === null && publishing) {
          const payload: BuildDiscoveryPayload & { run_id: string } = {
            build_id: build.id, run_id: build.id, repository: build.repository, commit_sha: build.commit_sha, branch: build.branch ?? '',
          };
          await publish(draft('discovery', `${build.id}_plan`, jobRun, attempt, payload, now, timeouts.discovery, `discovery-${build.id}`));
          await markBuildDispatched(ctx, build.id, { plan: now });
        } else if (overdue(build.plan_dispatched_at, timeouts.discovery)) {
          await failReleaseBuild(ctx, build.id, `discovery did not finish within ${formatMs(timeouts.discovery)}`);
        }
        return;
      }
      case 'building': {
        const plan = build.plan!;
        const names = Object.keys(plan.artifacts).sort();
        const undispatched = names.filter((n) => build.artifacts[n] === undefined);
        if (undispatched.length > 0) {
          if (!publishing) return;
          await Promise.all(artifactJobs(build, undispatched, now, timeouts).map(publish));
          await markBuildDispatched(ctx, build.id, { artifacts: undispatched });
          return;
        }
        for (const name of names) {
          const state = build.artifacts[name];
          if (state?.status === 'pending' && overdue(state.dispatched_at, runningBudget(timeouts.artifact))) {
            await recordArtifactOutcome(ctx, build.id, name, { ok: false, error: `timed out: no result within ${formatMs(timeouts.artifact)}` });
            return;
          }
        }
        if (!names.every((n) => build.artifacts[n]?.status === 'success') || !publishing) return;
        await publish(releaseJob(build, now, timeouts));
        await markBuildDispatched(ctx, build.id, { release: now });
        return;
      }
      case 'releasing':
        if (overdue(build.release_dispatched_at, runningBudget(timeouts.release))) {
          await failReleaseBuild(ctx, build.id, `release job timed out: no result within ${formatMs(timeouts.release)}`);
        }
        return;
      default:
        return;
    }
  }

  /**
   * One reconcile queued per run at a time: nudges that arrive while one waits are served by it (it
   * reads the run when it starts); a nudge during a reconcile queues the next one.
   * Across API replicas the reconcile holds the run's `dispatch:` advisory lock (decision 135): each
   * replica reads the run, publishes and marks it dispatched, so two at once would both see a task
   * undispatched and both publish it (deduplicated by JetStream only inside its window).
   */
  const queued = new Set<string>();
  function nudge(runId: string): void {
    if (stopped || runId === '' || queued.has(runId)) return;
    queued.add(runId);
    track(perRun.run(runId, () => {
      queued.delete(runId);
      return ctx.store.withLock(`dispatch:${runId}`, () => reconcile(runId));
    }), runId);
  }

  const sweepMs = options.sweepMs ?? 1000;
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping || stopped) return;
    sweeping = true;
    track(Promise.all([
      ctx.store.listActiveRunIds(1000), ctx.store.listActiveReleaseBuildIds(1000), ctx.store.listPendingDeploymentIds(1000),
    ]).then(async ([ids, builds, deployments]) => {
      for (const id of ids) nudge(id);
      for (const id of deployments) nudge(id);
      // Manual builds go by their own id; a run's builds by the run's.
      for (const id of builds) {
        const build = await ctx.store.getReleaseBuild(id);
        if (build) nudge(build.pipeline_run_id ?? build.id);
      }
    }).finally(() => { sweeping = false; }));
  }, sweepMs);
  timer.unref();

  /**
   * Argo is where a Workflow is stopped, terminated or deleted, and where it fails when a node does
   * (a dispatcher pod that timed out, a pod that could not start): the run of such a Workflow ends
   * too, instead of waiting for its deadline (decision 210). A stopped Workflow cancels its run;
   * a failed or deleted one fails it. Only the current attempt's Workflow counts.
   */
  async function checkWorkflows(orchestrator: RunOrchestrator): Promise<void> {
    const runs = (await ctx.store.listActiveWorkflowRuns(1000)).filter((r) => r.argo_workflow_name === orchestrator.workflowName(r));
    if (runs.length === 0) return;
    const states = await orchestrator.workflowStates();
    for (const run of runs) {
      const name = run.argo_workflow_name!;
      const state = states.get(name);
      if (!state) {
        // Not listed: asked by name before believing it gone (a listing is no proof).
        if (await orchestrator.workflowExists(name)) continue;
        await failRun(ctx, run.id, 'workflow_deleted', `the Argo Workflow ${name} of this run was deleted`);
      } else if (state.phase === 'Failed' || state.phase === 'Error') {
        if (/^Stopped with strategy/i.test(state.message ?? '')) {
          await cancelRun(ctx, run.id, `Argo (Workflow ${name}: ${state.message})`).catch(ignoreConflict);
        } else {
          await failRun(ctx, run.id, 'workflow_failed', `the Argo Workflow ${name} ${state.phase === 'Error' ? 'errored' : 'failed'}${state.message ? `: ${state.message}` : ''}`);
        }
      } else {
        continue;
      }
      nudge(run.id);
    }
  }
  let checking = false;
  const workflowTimer = options.orchestrator ? setInterval(() => {
    const orchestrator = options.orchestrator;
    if (checking || stopped || !orchestrator) return;
    checking = true;
    track(checkWorkflows(orchestrator).finally(() => { checking = false; }));
  }, options.workflowCheckMs ?? 30_000) : undefined;
  workflowTimer?.unref();

  return {
    nudge,
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(workflowTimer);
      while (pending.size > 0) await Promise.allSettled([...pending]);
      await inbox.close();
    },
  };
}

function formatMs(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

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
 */
import { isForgeError } from '../domain/errors.ts';
import { JOB_TIMEOUTS_MS, type JobMessage, type JobReply, type JobType } from '../domain/jobs.ts';
import { isExecutionTerminal, isRunTerminal } from '../domain/statuses.ts';
import { parseDuration } from '../lib/duration.ts';
import { KeyedMutex } from '../lib/keyed-mutex.ts';
import type { EngineContext } from './context.ts';
import type { PhaseExecution, PipelineRun } from '../domain/entities.ts';
import type { JobQueue, ObjectStore } from './ports.ts';
import { completeRunIfDone, failRun, markDispatched, recordDiscovery, reportTaskStatus, runningBudget, type DiscoveryPlan, type PlannedStep } from './runs.ts';
import {
  artifactResults, autoDeploy, cancelRunReleaseBuilds, failReleaseBuild, hasReleasePhase, markBuildDispatched, recordArtifactOutcome,
  recordBuildPlan, recordReleaseOutcome, startRunReleases,
  type ArtifactJobPayload, type ArtifactJobResult, type BuildDiscoveryPayload, type DiscoveredRelease, type ReleaseJobPayload, type ReleaseJobResult,
} from './release-builds.ts';
import type { Deployment, ReleaseBuild } from '../domain/entities.ts';
import { claimNextDeployment, completeDeployment, deploymentTarget, failDeployment, type DeploymentJobResult } from './deployments.ts';
import { isReleaseBuildTerminal } from '../domain/statuses.ts';

export interface DispatcherOptions {
  queue: JobQueue;
  objects?: ObjectStore;
  /** How often every active run is looked at (restart recovery, lost nudges, the watchdog). */
  sweepMs?: number;
  jobTimeoutsMs?: Partial<Record<JobType, number>>;
  log?: (message: string, error?: unknown) => void;
  /** Called (never awaited, must not throw) when a phase group's tasks have been dispatched. */
  onGroupDispatched?: (run: PipelineRun, phases: readonly PhaseExecution[]) => void;
}

export interface Dispatcher {
  nudge(runId: string): void;
  /** Resolves when every nudge so far has been handled (tests). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** What a CI job carries: the task and its steps as configured (Postgres has their state). */
export interface CiJobPayload {
  task_id: string;
  run_id: string;
  repository: string;
  commit_sha: string;
  branch: string;
  phase: string;
  project: string;
  project_path: string;
  timeout_ms: number;
  steps: (PlannedStep & { id: string })[];
}

export interface DiscoveryJobPayload {
  run_id: string;
  repository: string;
  commit_sha: string;
  branch: string;
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
    track(work);
    return work;
  });

  function track(work: Promise<void>): void {
    const guarded = work.catch((error: unknown) => log('dispatcher step failed', error)).finally(() => pending.delete(guarded));
    pending.add(guarded);
  }

  async function onReply(reply: JobReply): Promise<void> {
    if (reply.type === 'deployment') {
      await onDeploymentReply(reply);
      return;
    }
    if (reply.type === 'artifact' || reply.type === 'release' || (reply.type === 'discovery' && reply.job_id !== reply.run_id)) {
      await onBuildReply(reply);
      return;
    }
    const run = await ctx.store.getRun(reply.run_id);
    if (!run || run.attempt !== reply.run_attempt) return; // a reply for an older attempt of the run
    if (reply.type === 'discovery') {
      if (run.discovery_output !== null || isRunTerminal(run.status)) return;
      if (reply.ok) {
        const plan = (await resultOf(reply)) as DiscoveryPlan;
        try {
          await recordDiscovery(ctx, run.id, plan);
        } catch (error) {
          if (!isForgeError(error)) throw error;
          await failRun(ctx, run.id, 'discovery_failed', error.message);
        }
      } else {
        // Configuration problems (the handler counts them) are the user's to fix; the rest (git, a
        // commit that is not there, the worker) is a discovery failure.
        // A dead-lettered job (decision 123) never got an outcome at all.
        const config = reply.error?.code === 'validation_error' && reply.error.details?.problems !== undefined;
        const code = reply.error?.code === 'dead_lettered' ? 'dead_lettered' : config ? 'invalid_config' : 'discovery_failed';
        await failRun(ctx, run.id, code, reply.error?.message ?? 'discovery failed');
      }
    } else if (reply.type === 'ci' && !reply.ok && reply.error?.code !== 'cancelled') {
      // The worker could not run the task (no checkout, no claim), or no worker could (dead-lettered):
      // the platform fails it.
      const task = await ctx.store.getTask(reply.job_id);
      if (task && !isExecutionTerminal(task.status)) {
        const deadLettered = reply.error?.code === 'dead_lettered';
        await reportTaskStatus(ctx, task.id, 'failed', deadLettered ? reply.error!.message : `worker error: ${reply.error?.message ?? 'unknown'}`,
          undefined, deadLettered ? 'dead_lettered' : undefined).catch(ignoreConflict);
      }
    }
    nudge(reply.run_id);
  }

  /** Replies of release builds: a manual build's discovery, artifact jobs, the release job. */
  async function onBuildReply(reply: JobReply): Promise<void> {
    const [buildId, artifact] = splitBuildJobId(reply.job_id);
    const build = await ctx.store.getReleaseBuild(buildId);
    if (!build || isReleaseBuildTerminal(build.status)) return;
    if (build.pipeline_run_id !== null && build.run_attempt !== reply.run_attempt) return;
    const error = reply.error?.message ?? `${reply.type} job failed`;
    if (reply.type === 'discovery') {
      if (reply.ok) await recordBuildPlan(ctx, build.id, (await resultOf(reply)) as DiscoveredRelease);
      else await failReleaseBuild(ctx, build.id, `discovery failed: ${error}`);
    } else if (reply.type === 'artifact') {
      const name = artifact ?? '';
      await recordArtifactOutcome(ctx, build.id, name, reply.ok ? { ok: true, result: (await resultOf(reply)) as ArtifactJobResult } : { ok: false, error });
    } else if (reply.type === 'release') {
      const result = reply.ok ? (await resultOf(reply)) as ReleaseJobResult : undefined;
      const done = await recordReleaseOutcome(ctx, build.id, result ? { ok: true, result } : { ok: false, error });
      if (done?.status === 'success' && result?.created) {
        for (const outcome of await autoDeploy(ctx, result.release_id, 'forge-release')) {
          if (outcome.error) log(`auto-deploy of release ${result.release_id} to ${outcome.environment} failed: ${outcome.error}`);
        }
      }
    }
  }

  /** A deployment job's reply: the pointer commit activates the deployment, an error fails it; then the target's next one goes. */
  async function onDeploymentReply(reply: JobReply): Promise<void> {
    const deployment = await ctx.store.getDeployment(reply.job_id);
    if (!deployment) return;
    if (reply.ok) {
      const result = (await resultOf(reply)) as DeploymentJobResult;
      await completeDeployment(ctx, deployment.id, result.commit_sha);
    } else {
      await failDeployment(ctx, deployment.id, reply.error?.message ?? 'deployment job failed');
    }
    nudge(deployment.id);
  }

  /** Publishes the next deployment job of a target when none is in flight (deployments.ts claims it). */
  async function reconcileDeployments(target: Deployment): Promise<void> {
    await perRun.run(`deploy:${deploymentTarget(target)}`, async () => {
      for (;;) {
        const claim = await claimNextDeployment(ctx, target, timeouts.deployment);
        if (claim.kind === 'failed') {
          log(`deployment ${claim.deployment.id} failed: ${claim.deployment.error ?? ''}`);
          continue;
        }
        if (claim.kind === 'dispatch') {
          const { payload } = claim;
          const attempt = payload.check_existing ? 2 : 1;
          const msg = job('deployment', payload.deployment_id, payload.deployment_id, attempt, payload, ctx.clock.now());
          await options.queue.publish(msg, `deployment-${payload.deployment_id}-${Date.parse(msg.deadline)}`);
        }
        return;
      }
    });
  }

  async function resultOf(reply: JobReply): Promise<unknown> {
    if (reply.result_key === undefined) return reply.result;
    if (!options.objects) throw new Error(`reply of job ${reply.job_id} is stored at ${reply.result_key} but no object store is configured`);
    const stored = await options.objects.get(reply.result_key);
    if (!stored) throw new Error(`reply of job ${reply.job_id}: ${reply.result_key} is missing from the object store`);
    return JSON.parse(stored.body.toString('utf8')) as unknown;
  }

  function job(type: JobType, id: string, runId: string, runAttempt: number, payload: unknown, now: Date): JobMessage {
    return {
      id, type, run_id: runId, run_attempt: runAttempt, reply_to: inbox.subject,
      deadline: new Date(now.getTime() + timeouts[type]).toISOString(), payload,
    };
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
    if (run.discovery_output === null) {
      if (run.discovery_dispatched_at === null) {
        const payload: DiscoveryJobPayload = { run_id: run.id, repository: run.repository, commit_sha: run.commit_sha, branch: run.branch };
        await options.queue.publish(job('discovery', run.id, run.id, run.attempt, payload, now), `discovery-${run.id}-${run.attempt}`);
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
    if (toDispatch.length === 0) return;
    const steps = await ctx.store.listSteps(toDispatch.map((t) => t.id));
    const marks: { id: string; at: Date; deadline: Date }[] = [];
    await Promise.all(toDispatch.map(async (task) => {
      const phase = activePhases.find((p) => p.id === task.phase_execution_id)!;
      const planned = plan.projects.find((p) => p.name === task.project_name)?.phases[phase.phase_name] ?? [];
      const timeoutMs = taskTimeout(plan, phase.phase_name, timeouts.ci);
      const payload: CiJobPayload = {
        task_id: task.id, run_id: run.id, repository: run.repository, commit_sha: run.commit_sha, branch: run.branch,
        phase: phase.phase_name, project: task.project_name, project_path: task.project_path, timeout_ms: timeoutMs,
        steps: planned.flatMap((step) => {
          const row = steps.find((s) => s.task_execution_id === task.id && s.step_name === step.name);
          return row ? [{ ...step, id: row.id }] : [];
        }),
      };
      await options.queue.publish(job('ci', task.id, run.id, run.attempt, payload, now), `ci-${task.id}-${run.attempt}`);
      marks.push({ id: task.id, at: now, deadline: new Date(now.getTime() + timeoutMs) });
    }));
    await markDispatched(ctx, runId, { tasks: marks });
    options.onGroupDispatched?.(run, phases);
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
        if (build.plan_dispatched_at === null) {
          const payload: BuildDiscoveryPayload & { run_id: string } = {
            build_id: build.id, run_id: build.id, repository: build.repository, commit_sha: build.commit_sha, branch: build.branch ?? '',
          };
          await options.queue.publish(job('discovery', `${build.id}_plan`, jobRun, attempt, payload, now), `discovery-${build.id}`);
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
          await Promise.all(undispatched.map(async (name) => {
            const config = plan.artifacts[name] ?? {};
            const wanted = Array.isArray(config.publishers) ? (config.publishers as string[]) : [];
            const payload: ArtifactJobPayload = {
              build_id: build.id, repository: build.repository, project: build.project, project_path: plan.project_path,
              commit_sha: build.commit_sha, branch: build.branch, trigger: build.trigger, pipeline_run_id: build.pipeline_run_id,
              artifact: name, config, publishers: Object.fromEntries(wanted.flatMap((p) => (plan.publishers[p] ? [[p, plan.publishers[p]]] : []))),
              timeout_ms: timeouts.artifact,
            };
            await options.queue.publish(job('artifact', `${build.id}_${name}`, jobRun, attempt, payload, now), `artifact-${build.id}-${name}`);
          }));
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
        if (!names.every((n) => build.artifacts[n]?.status === 'success')) return;
        const payload: ReleaseJobPayload = {
          build_id: build.id, repository: build.repository, project: build.project, project_path: plan.project_path,
          commit_sha: build.commit_sha, branch: build.branch, trigger: build.trigger, tagging_strategy: plan.tagging_strategy,
          pipeline_run_id: build.pipeline_run_id, artifacts: artifactResults(build),
        };
        await options.queue.publish(job('release', build.id, jobRun, attempt, payload, now), `release-${build.id}`);
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
    }));
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

  return {
    nudge,
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      while (pending.size > 0) await Promise.allSettled([...pending]);
      await inbox.close();
    },
  };
}

/** `<build id>_<artifact>` → [build id, artifact]; a build's own job ids are `<build id>` and `<build id>_plan`. */
function splitBuildJobId(jobId: string): [string, string | undefined] {
  const cut = jobId.indexOf('_');
  return cut === -1 ? [jobId, undefined] : [jobId.slice(0, cut), jobId.slice(cut + 1)];
}

/** The phase's `timeout` from repo.cue, else the CI job default. */
function taskTimeout(plan: DiscoveryPlan, phase: string, fallbackMs: number): number {
  const configured = plan.repository?.phases?.[phase]?.timeout;
  return (configured ? parseDuration(configured) : undefined) ?? fallbackMs;
}

function formatMs(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** A report that lost a race with another (the task or run already ended) changes nothing. */
function ignoreConflict(error: unknown): void {
  if (isForgeError(error) && error.code === 'conflict') return;
  throw error;
}

/**
 * The jobs of a pipeline run, built one way for both orchestrators (decision 146): the built-in
 * dispatcher publishes them itself; with Argo Workflows each Workflow node runs `forge dispatch`,
 * which asks the API for its stage's jobs (`stageJobs`, POST /v1/runs/:id/jobs), publishes them with
 * its own reply inbox and hands every reply back (`applyJobReply`, POST /v1/job-replies). Either
 * way a reply is applied by the same code, so the run moves exactly as it does without Argo.
 *
 * Stages of a run, in Workflow order: discovery → ci (phase groups in order, one group's tasks in
 * parallel) → artifact (every artifact of every release build) → release (one job per build) →
 * deployment (the auto-deploys of the run's new releases, each in its target's turn).
 * A stage answers `dispatch` (jobs to publish and/or replies to wait for), `done` or `failed`.
 */
import { conflict, invalid, isForgeError, notFound } from '../domain/errors.ts';
import type { Deployment, PhaseExecution, PipelineRun, ReleaseBuild, StepExecution, TaskExecution } from '../domain/entities.ts';
import { JOB_TIMEOUTS_MS, type DispatchStage, type JobMessage, type JobReply, type JobType } from '../domain/jobs.ts';
import { isExecutionTerminal, isReleaseBuildTerminal, isRunTerminal } from '../domain/statuses.ts';
import { parseDuration } from '../lib/duration.ts';
import type { EngineContext } from './context.ts';
import {
  AUTO_DEPLOY_ACTOR, claimNextDeployment, completeDeployment, failDeployment, type DeploymentJobPayload, type DeploymentJobResult,
} from './deployments.ts';
import type { ObjectStore } from './ports.ts';
import {
  artifactResults, autoDeploy, failReleaseBuild, hasReleasePhase, markBuildDispatched, recordArtifactOutcome, recordBuildPlan, recordReleaseOutcome,
  startRunReleases,
  type ArtifactJobPayload, type ArtifactJobResult, type DiscoveredRelease, type ReleaseJobPayload, type ReleaseJobResult,
} from './release-builds.ts';
import { completeRunIfDone, failRun, failureReason, getRunTree, markDispatched, recordDiscovery, reportTaskStatus, type DiscoveryPlan, type PlannedStep } from './runs.ts';

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

type JobTimeouts = Record<JobType, number>;

/** A job before it has a reply inbox, with the JetStream message id that deduplicates its publication. */
export interface JobDraft extends Omit<JobMessage, 'reply_to'> {
  msg_id: string;
}

export function draft(type: JobType, id: string, runId: string, runAttempt: number, payload: unknown, now: Date, timeoutMs: number, msgId: string): JobDraft {
  return { id, type, run_id: runId, run_attempt: runAttempt, deadline: new Date(now.getTime() + timeoutMs).toISOString(), payload, msg_id: msgId };
}

/** The message as published: the draft with the inbox its reply goes to. */
export function toMessage({ msg_id: _msgId, ...job }: JobDraft, replyTo: string): JobMessage {
  return { ...job, reply_to: replyTo };
}

export function discoveryJob(run: PipelineRun, now: Date, timeouts: JobTimeouts): JobDraft {
  const payload: DiscoveryJobPayload = { run_id: run.id, repository: run.repository, commit_sha: run.commit_sha, branch: run.branch };
  return draft('discovery', run.id, run.id, run.attempt, payload, now, timeouts.discovery, `discovery-${run.id}-${run.attempt}`);
}

/** The phase's `timeout` from repo.cue, else the CI job default. */
export function taskTimeout(plan: DiscoveryPlan, phase: string, fallbackMs: number): number {
  const configured = plan.repository?.phases?.[phase]?.timeout;
  return (configured ? parseDuration(configured) : undefined) ?? fallbackMs;
}

/** The CI job of a task, and the time it is given. */
export function ciJob(run: PipelineRun, plan: DiscoveryPlan, phase: PhaseExecution, task: TaskExecution, steps: readonly StepExecution[], now: Date, timeouts: JobTimeouts): { job: JobDraft; timeoutMs: number } {
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
  return { job: draft('ci', task.id, run.id, run.attempt, payload, now, timeoutMs, `ci-${task.id}-${run.attempt}`), timeoutMs };
}

/** The artifact jobs of a release build in `building`, for the named artifacts. */
export function artifactJobs(build: ReleaseBuild, names: readonly string[], now: Date, timeouts: JobTimeouts): JobDraft[] {
  const plan = build.plan!;
  return names.map((name) => {
    const config = plan.artifacts[name] ?? {};
    const wanted = Array.isArray(config.publishers) ? (config.publishers as string[]) : [];
    const payload: ArtifactJobPayload = {
      build_id: build.id, repository: build.repository, project: build.project, project_path: plan.project_path,
      commit_sha: build.commit_sha, branch: build.branch, trigger: build.trigger, pipeline_run_id: build.pipeline_run_id,
      artifact: name, config, publishers: Object.fromEntries(wanted.flatMap((p) => (plan.publishers[p] ? [[p, plan.publishers[p]]] : []))),
      timeout_ms: timeouts.artifact,
    };
    return draft('artifact', `${build.id}_${name}`, build.pipeline_run_id ?? build.id, build.run_attempt ?? 1, payload, now, timeouts.artifact, `artifact-${build.id}-${name}`);
  });
}

/** The release job of a build whose artifacts all succeeded. */
export function releaseJob(build: ReleaseBuild, now: Date, timeouts: JobTimeouts): JobDraft {
  const plan = build.plan!;
  const payload: ReleaseJobPayload = {
    build_id: build.id, repository: build.repository, project: build.project, project_path: plan.project_path,
    commit_sha: build.commit_sha, branch: build.branch, trigger: build.trigger, tagging_strategy: plan.tagging_strategy,
    pipeline_run_id: build.pipeline_run_id, artifacts: artifactResults(build),
  };
  return draft('release', build.id, build.pipeline_run_id ?? build.id, build.run_attempt ?? 1, payload, now, timeouts.release, `release-${build.id}`);
}

/** The job of a claimed deployment; attempt 2 and on look for their own pointer commit first. */
export function deploymentJob(payload: DeploymentJobPayload, now: Date, timeouts: JobTimeouts): JobDraft {
  const attempt = payload.check_existing ? 2 : 1;
  const msgId = `deployment-${payload.deployment_id}-${now.getTime() + timeouts.deployment}`;
  return draft('deployment', payload.deployment_id, payload.deployment_id, attempt, payload, now, timeouts.deployment, msgId);
}

// ---------------------------------------------------------------------------------------------
// Replies

interface ReplyDeps {
  objects?: ObjectStore | undefined;
  log: (message: string, error?: unknown) => void;
}

/**
 * Applies a worker's reply to Postgres (idempotent: a reply for an older attempt, or applied
 * before, changes nothing). Returns the id to reconcile next (a run or a deployment), if any.
 */
export async function applyJobReply(ctx: EngineContext, reply: JobReply, deps: ReplyDeps): Promise<string | undefined> {
  if (reply.type === 'deployment') return applyDeploymentReply(ctx, reply, deps);
  if (reply.type === 'artifact' || reply.type === 'release' || (reply.type === 'discovery' && reply.job_id !== reply.run_id)) {
    await applyBuildReply(ctx, reply, deps);
    return undefined;
  }
  const run = await ctx.store.getRun(reply.run_id);
  if (!run || run.attempt !== reply.run_attempt) return undefined; // a reply for an older attempt of the run
  if (reply.type === 'discovery') {
    if (run.discovery_output !== null || isRunTerminal(run.status)) return undefined;
    if (reply.ok) {
      const plan = (await resultOf(reply, deps)) as DiscoveryPlan;
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
  return reply.run_id;
}

/** Replies of release builds: a manual build's discovery, artifact jobs, the release job. */
async function applyBuildReply(ctx: EngineContext, reply: JobReply, deps: ReplyDeps): Promise<void> {
  const [buildId, artifact] = splitBuildJobId(reply.job_id);
  const build = await ctx.store.getReleaseBuild(buildId);
  if (!build || isReleaseBuildTerminal(build.status)) return;
  if (build.pipeline_run_id !== null && build.run_attempt !== reply.run_attempt) return;
  const error = reply.error?.message ?? `${reply.type} job failed`;
  if (reply.type === 'discovery') {
    if (reply.ok) await recordBuildPlan(ctx, build.id, (await resultOf(reply, deps)) as DiscoveredRelease);
    else await failReleaseBuild(ctx, build.id, `discovery failed: ${error}`);
  } else if (reply.type === 'artifact') {
    const name = artifact ?? '';
    await recordArtifactOutcome(ctx, build.id, name, reply.ok ? { ok: true, result: (await resultOf(reply, deps)) as ArtifactJobResult } : { ok: false, error });
  } else if (reply.type === 'release') {
    const result = reply.ok ? (await resultOf(reply, deps)) as ReleaseJobResult : undefined;
    const done = await recordReleaseOutcome(ctx, build.id, result ? { ok: true, result } : { ok: false, error });
    if (done?.status === 'success' && result?.created) {
      for (const outcome of await autoDeploy(ctx, result.release_id, AUTO_DEPLOY_ACTOR)) {
        if (outcome.error) deps.log(`auto-deploy of release ${result.release_id} to ${outcome.environment} failed: ${outcome.error}`);
      }
    }
  }
}

/** A deployment job's reply: the pointer commit activates the deployment, an error fails it; then the target's next one goes. */
async function applyDeploymentReply(ctx: EngineContext, reply: JobReply, deps: ReplyDeps): Promise<string | undefined> {
  const deployment = await ctx.store.getDeployment(reply.job_id);
  if (!deployment) return undefined;
  if (reply.ok) {
    const result = (await resultOf(reply, deps)) as DeploymentJobResult;
    await completeDeployment(ctx, deployment.id, result.commit_sha);
  } else {
    await failDeployment(ctx, deployment.id, reply.error?.message ?? 'deployment job failed');
  }
  return deployment.id;
}

async function resultOf(reply: JobReply, deps: ReplyDeps): Promise<unknown> {
  if (reply.result_key === undefined) return reply.result;
  if (!deps.objects) throw new Error(`reply of job ${reply.job_id} is stored at ${reply.result_key} but no object store is configured`);
  const stored = await deps.objects.get(reply.result_key);
  if (!stored) throw new Error(`reply of job ${reply.job_id}: ${reply.result_key} is missing from the object store`);
  return JSON.parse(stored.body.toString('utf8')) as unknown;
}

/** `<build id>_<artifact>` → [build id, artifact]; a build's own job ids are `<build id>` and `<build id>_plan`. */
function splitBuildJobId(jobId: string): [string, string | undefined] {
  const cut = jobId.indexOf('_');
  return cut === -1 ? [jobId, undefined] : [jobId.slice(0, cut), jobId.slice(cut + 1)];
}

/** A report that lost a race with another (the task or run already ended) changes nothing. */
export function ignoreConflict(error: unknown): void {
  if (isForgeError(error) && error.code === 'conflict') return;
  throw error;
}

// ---------------------------------------------------------------------------------------------
// Stages (what one `forge dispatch` does)

export interface StageJobs {
  run_id: string;
  run_attempt: number;
  run_status: PipelineRun['status'];
  stage: DispatchStage;
  /** ci: the phase group these jobs belong to. */
  group: number | null;
  /** dispatch: publish `jobs` (never published before), then wait for the replies of `awaiting`; done / failed: stop. */
  outcome: 'dispatch' | 'done' | 'failed';
  jobs: JobDraft[];
  /** Job ids whose replies this step waits for: the jobs above and those published earlier that have no outcome yet. */
  awaiting: string[];
  /** How long to wait for those replies (the longest job timeout among them). */
  timeout_ms: number;
  message: string;
}

/**
 * Jobs marked dispatched less than this long ago, and not taken up yet, are offered again with the
 * same JetStream message id (decision 212): an answer that never reached its dispatcher pod (the
 * pod's client retries) must not lose them, and a copy of one that did go out is dropped by the
 * streams' 120 s duplicate window. Older ones are not offered again: a retried pod reopens the same
 * durable inbox (decision 149) and gets their replies there.
 */
export const REOFFER_MS = 60_000;

/**
 * The next jobs of one stage of a run, marked dispatched (so the API's watchdog times them), under
 * the run's dispatch lock; jobs dispatched within REOFFER_MS that nobody took are offered again.
 */
export async function stageJobs(ctx: EngineContext, runId: string, stage: DispatchStage, options: { group?: number | undefined; timeouts?: Partial<JobTimeouts> } = {}): Promise<StageJobs> {
  const timeouts: JobTimeouts = { ...JOB_TIMEOUTS_MS, ...options.timeouts };
  if (options.group !== undefined && stage !== 'ci') throw invalid(`group applies to the ci stage only, not ${stage}`, { field: 'group', stage });
  return ctx.store.withLock(`dispatch:${runId}`, async () => {
    const run = await ctx.store.getRun(runId);
    if (!run) throw notFound('pipeline run', { id: runId });
    const answer = (outcome: StageJobs['outcome'], message: string, more: Partial<StageJobs> = {}): StageJobs => ({
      run_id: run.id, run_attempt: run.attempt, run_status: run.status, stage, group: options.group ?? null, outcome, jobs: [], awaiting: [], timeout_ms: 0, message, ...more,
    });
    // Deployments follow a run that succeeded: the other stages are done by then.
    if (stage === 'deployment') return deploymentStage(ctx, run, ctx.clock.now(), timeouts, answer);
    if (run.status === 'success') return answer('done', 'run succeeded');
    if (isRunTerminal(run.status)) return answer('failed', `run ${run.status}: ${failureReason(await getRunTree(ctx, run.id))}`);
    const now = ctx.clock.now();
    switch (stage) {
      case 'discovery': {
        if (run.discovery_output !== null) return answer('done', 'discovery recorded the plan');
        const job = discoveryJob(run, now, timeouts);
        if (run.discovery_dispatched_at === null) {
          await markDispatched(ctx, run.id, { discovery: now });
          return answer('dispatch', 'discovery job', { jobs: [job], awaiting: [job.id], timeout_ms: timeouts.discovery });
        }
        const again = recent(run.discovery_dispatched_at, now);
        return answer('dispatch', `discovery job published earlier${again ? ' (offered again)' : ''}`, { jobs: again ? [job] : [], awaiting: [job.id], timeout_ms: timeouts.discovery });
      }
      case 'ci':
        return ciStage(ctx, run, now, timeouts, options.group, answer);
      case 'artifact':
      case 'release':
        return releaseStage(ctx, run, stage, now, timeouts, answer);
      default: {
        const never: never = stage;
        throw invalid(`unknown stage ${String(never)}`);
      }
    }
  });
}

type Answer = (outcome: StageJobs['outcome'], message: string, more?: Partial<StageJobs>) => StageJobs;
const phaseDone = (p: PhaseExecution) => p.status === 'success' || p.status === 'skipped';

async function ciStage(ctx: EngineContext, run: PipelineRun, now: Date, timeouts: JobTimeouts, wanted: number | undefined, answer: Answer): Promise<StageJobs> {
  if (run.discovery_output === null) throw conflict(`run ${run.id} has no plan yet: its discovery stage has not finished`, { run_id: run.id });
  const plan = run.discovery_output as DiscoveryPlan;
  const phases = await ctx.store.listPhases(run.id);
  const groups = [...new Set(phases.map((p) => p.group_number))].sort((a, b) => a - b);
  if (wanted !== undefined && !groups.includes(wanted)) {
    throw invalid(`run ${run.id} has no phase group ${wanted}; its groups are ${groups.join(', ') || 'none'}`, { groups });
  }
  const active = groups.find((g) => phases.some((p) => p.group_number === g && !phaseDone(p)));
  if (active === undefined || (wanted !== undefined && wanted < active)) {
    if (!hasReleasePhase(run)) await completeRunIfDone(ctx, run.id);
    return answer('done', wanted === undefined ? 'every phase group succeeded' : `phase group ${wanted} succeeded`);
  }
  if (wanted !== undefined && wanted > active) throw conflict(`phase group ${active} of run ${run.id} has not finished; group ${wanted} starts after it`, { active_group: active });
  const groupPhases = phases.filter((p) => p.group_number === active);
  const tasks = (await ctx.store.listTasks(groupPhases.map((p) => p.id))).filter((t) => !isExecutionTerminal(t.status));
  const fresh = tasks.filter((t) => t.status === 'pending' && t.dispatched_at === null);
  // Not claimed by a worker yet (still pending) and dispatched moments ago: offered again.
  const again = tasks.filter((t) => t.status === 'pending' && recent(t.dispatched_at, now));
  const steps = fresh.length + again.length > 0 ? await ctx.store.listSteps([...fresh, ...again].map((t) => t.id)) : [];
  const jobOf = (task: TaskExecution) => ciJob(run, plan, groupPhases.find((p) => p.id === task.phase_execution_id)!, task, steps, now, timeouts);
  const built = fresh.map(jobOf);
  if (built.length > 0) {
    await markDispatched(ctx, run.id, { tasks: built.map(({ job, timeoutMs }) => ({ id: job.id, at: now, deadline: new Date(now.getTime() + timeoutMs) })) });
    ctx.groupDispatched?.(run, phases);
  }
  const timeoutMs = Math.max(0, ...groupPhases.map((p) => taskTimeout(plan, p.phase_name, timeouts.ci)));
  return answer('dispatch', `phase group ${active}: ${groupPhases.map((p) => p.phase_name).join(', ')}`, {
    group: active, jobs: [...built, ...again.map(jobOf)].map((b) => b.job), awaiting: tasks.map((t) => t.id), timeout_ms: timeoutMs,
  });
}

async function releaseStage(ctx: EngineContext, run: PipelineRun, stage: 'artifact' | 'release', now: Date, timeouts: JobTimeouts, answer: Answer): Promise<StageJobs> {
  if (run.discovery_output === null) throw conflict(`run ${run.id} has no plan yet: its discovery stage has not finished`, { run_id: run.id });
  const phases = await ctx.store.listPhases(run.id);
  if (!phases.every(phaseDone)) throw conflict(`the phase groups of run ${run.id} have not all succeeded; the release phase starts after them`, { run_id: run.id });
  if (!hasReleasePhase(run)) {
    await completeRunIfDone(ctx, run.id);
    return answer('done', 'no project of this run releases');
  }
  const builds = await startRunReleases(ctx, run);
  const failed = builds.find((b) => isReleaseBuildTerminal(b.status) && b.status !== 'success');
  if (failed) return answer('failed', `release of ${failed.project} ${failed.status}: ${failed.error_message ?? 'no reason recorded'}`);
  const jobs: JobDraft[] = [];
  const awaiting: string[] = [];
  for (const build of builds) {
    if (build.status !== 'building') {
      if (stage === 'release' && build.status === 'releasing') {
        if (recent(build.release_dispatched_at, now)) jobs.push(releaseJob(build, now, timeouts));
        awaiting.push(build.id);
      }
      continue;
    }
    const names = Object.keys(build.plan?.artifacts ?? {}).sort();
    if (stage === 'artifact') {
      const undispatched = names.filter((n) => build.artifacts[n] === undefined);
      const again = names.filter((n) => build.artifacts[n]?.status === 'pending' && recent(build.artifacts[n]?.dispatched_at, now));
      if (undispatched.length > 0) await markBuildDispatched(ctx, build.id, { artifacts: undispatched });
      if (undispatched.length + again.length > 0) jobs.push(...artifactJobs(build, [...undispatched, ...again], now, timeouts));
      awaiting.push(...names.filter((n) => build.artifacts[n] === undefined || build.artifacts[n]?.status === 'pending').map((n) => `${build.id}_${n}`));
    } else {
      if (!names.every((n) => build.artifacts[n]?.status === 'success')) {
        throw conflict(`the artifacts of ${build.project} (release build ${build.id}) have not all succeeded; the release job starts after them`, { build_id: build.id });
      }
      jobs.push(releaseJob(build, now, timeouts));
      await markBuildDispatched(ctx, build.id, { release: now });
      awaiting.push(build.id);
    }
  }
  if (awaiting.length === 0) {
    if (stage === 'release') await completeRunIfDone(ctx, run.id);
    return answer('done', stage === 'artifact' ? `the artifacts of ${builds.map((b) => b.project).join(', ')} are built` : `released ${builds.map((b) => b.project).join(', ')}`);
  }
  return answer('dispatch', `${stage} jobs of ${builds.map((b) => b.project).join(', ')}`, { jobs, awaiting, timeout_ms: stage === 'artifact' ? timeouts.artifact : timeouts.release });
}

/**
 * The run's auto-deploys (decision 207): the deployments its new releases requested by themselves.
 * Each one that is next on its target is claimed here (under the target's lock, as the API's
 * dispatcher claims) and published by the node; one queued behind another deployment of its target
 * waits its turn (the node asks again). Done when all are active; failed when one failed.
 */
async function deploymentStage(ctx: EngineContext, run: PipelineRun, now: Date, timeouts: JobTimeouts, answer: Answer): Promise<StageJobs> {
  if (!isRunTerminal(run.status)) throw conflict(`run ${run.id} is ${run.status}; its deployments start after it succeeded`, { run_id: run.id, status: run.status });
  if (run.status !== 'success') return answer('failed', `run ${run.status}: ${failureReason(await getRunTree(ctx, run.id))}`);
  // This attempt's releases: an earlier attempt's deployments are not this Workflow's.
  const releaseIds = (await ctx.store.listRunReleaseBuilds(run.id)).flatMap((b) => (b.release_id && (b.run_attempt ?? 1) === run.attempt ? [b.release_id] : []));
  if (releaseIds.length === 0) return answer('done', 'this run cut no release');
  const deployments = (await ctx.store.listDeploymentsOfReleases(releaseIds)).filter((d) => d.deployed_by === AUTO_DEPLOY_ACTOR);
  const describe = (d: Deployment) => `${d.project} to ${d.environment}`;
  if (deployments.length === 0) return answer('done', 'no environment deploys the releases of this run automatically');
  const pending = deployments.filter((d) => d.status === 'pending');
  if (pending.length === 0) {
    const failed = deployments.filter((d) => d.status === 'failed');
    if (failed.length > 0) return answer('failed', failed.map((d) => `deployment of ${describe(d)} failed: ${d.error ?? 'no reason recorded'}`).join('; '));
    return answer('done', `deployed ${deployments.map(describe).join(', ')}`);
  }
  const ours = new Set(pending.map((d) => d.id));
  const jobs: JobDraft[] = [];
  const awaiting: string[] = [];
  for (const d of pending) {
    const claim = await claimNextDeployment(ctx, d, timeouts.deployment, { only: ours });
    if (claim.kind === 'dispatch') {
      jobs.push(deploymentJob(claim.payload, now, timeouts));
      awaiting.push(claim.payload.deployment_id);
    } else if (claim.kind === 'busy' && claim.deployment.id === d.id) {
      awaiting.push(d.id); // in flight (published earlier, by this node before a restart or by the API)
    } else if (claim.kind === 'failed') {
      ctx.runChanged(claim.deployment.id); // the API's dispatcher takes the target's next deployment
    }
  }
  const queued = pending.length - awaiting.length;
  return answer('dispatch', `deployments of ${pending.map(describe).join(', ')}${queued > 0 ? ` (${queued} waiting for an earlier deployment of the same target)` : ''}`, {
    jobs, awaiting, timeout_ms: timeouts.deployment,
  });
}

/** Whether a dispatch mark is younger than REOFFER_MS. */
function recent(at: Date | string | null | undefined, now: Date): boolean {
  if (at === null || at === undefined) return false;
  const age = now.getTime() - new Date(at).getTime();
  return age >= 0 && age < REOFFER_MS;
}

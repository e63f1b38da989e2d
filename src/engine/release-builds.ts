/**
 * Release builds (digest §2.2 step 5, §4.2): turning a release-triggered project at a commit into an
 * immutable, numbered release. A build is either the release phase of one project in a run attempt,
 * or a manual request (`forge release create`, `forge release retry`).
 *
 *   pending ──(plan known: from the run's discovery, or a discovery job for manual builds)──▶ building
 *   building: every artifact job of the project runs in parallel (pipeline.artifacts.*); each
 *     produces, publishes, pushes and signs its tracking image and returns what it made
 *   building ──(all artifacts done)──▶ releasing: one release job (pipeline.releases.*) renders the
 *     resources with the real artifact outputs, pushes and signs the Release OCI image, and
 *     registers it through POST /v1/releases
 *   releasing ──▶ success (release_id) | failed
 * Any failure fails the build at once (an artifact that failed aborts the release): no Release row
 * exists for it (digest §7.4), and a run whose release failed fails (§2.3). What was published
 * stays published; `forge release retry` rebuilds everything and idempotent publishers skip what
 * is there already (§7.24).
 */
import { randomUUID } from 'node:crypto';
import type { ArtifactJobState, PipelineRun, ReleaseBuild, ReleaseBuildPlan } from '../domain/entities.ts';
import { envelope } from '../domain/entities.ts';
import { invalid, notFound } from '../domain/errors.ts';
import { checkName, normaliseSha } from '../domain/names.ts';
import { policyViolations } from '../domain/policy.ts';
import { isReleaseBuildTerminal, isRunTerminal, type ReleaseTriggerType } from '../domain/statuses.ts';
import type { EngineContext } from './context.ts';
import { uniqueViolation } from './db-errors.ts';
import { requestDeployment } from './deployments.ts';
import type { Page, Repos } from './ports.ts';
import { getReleaseById } from './releases.ts';

/** What discovery reports of a project that the release phase needs (src/config/discovery.ts). */
export interface DiscoveredReleaseProject {
  name: string;
  path: string;
  artifacts?: Record<string, Record<string, unknown>>;
  releaseTriggered?: boolean;
  trigger?: { type: 'branch_push'; branch: string } | { type: 'tag'; tag: string };
}

export interface DiscoveredRelease {
  repository?: { tagging?: { strategy?: 'monorepo' | 'tag-all' }; publishers?: Record<string, Record<string, unknown>> };
  projects: DiscoveredReleaseProject[];
  releaseProjects?: string[];
}

/** What every job of a release build carries. */
export interface BuildJobFields {
  build_id: string;
  repository: string;
  project: string;
  project_path: string;
  commit_sha: string;
  branch: string | null;
  trigger: ReleaseBuild['trigger'];
  pipeline_run_id: string | null;
}

/** The job that builds one artifact: produce, publish to each publisher, push + sign its tracking image. */
export interface ArtifactJobPayload extends BuildJobFields {
  artifact: string;
  /** The artifact's project.cue config. */
  config: Record<string, unknown>;
  /** The repo.cue publishers it names, by name. */
  publishers: Record<string, Record<string, unknown>>;
  timeout_ms: number;
}

/** What an artifact job returns (digest §3.5's result, plus the output `@artifact` addresses). */
export interface ArtifactJobResult {
  name: string;
  type: 'container' | 'binary' | 'archive';
  digest: string;
  /** The fields `@artifact(name.field)` reads (§3.6): the producer output minus location_type/path, `uri`, `publishers.<name>.*`. */
  output: Record<string, unknown>;
  published_locations: { publisher: string; uri: string; digest: string; skipped: boolean; metadata: Record<string, string> }[];
  /** The primary published URI (the first publisher's), else the tracking image. */
  primary_uri: string;
  /** `<tracking-registry>/<repo>/<project>/<artifact>:sha-<commit>@sha256:…` */
  tracking_oci_uri: string;
  tracking_oci_digest: string;
  warnings: string[];
}

/** The job that renders, packages, pushes, signs and registers the release. */
export interface ReleaseJobPayload extends BuildJobFields {
  tagging_strategy: 'monorepo' | 'tag-all';
  artifacts: ArtifactJobResult[];
}

export interface ReleaseJobResult {
  release_id: string;
  release_number: number;
  oci_uri: string;
  oci_digest: string;
  /** False when the release existed already (a retry, or a redelivered job). */
  created: boolean;
}

/** A manual build's discovery job. */
export interface BuildDiscoveryPayload {
  build_id: string;
  repository: string;
  commit_sha: string;
  branch: string;
}

const buildLock = (id: string) => `release-build:${id}`;

function planOf(discovery: DiscoveredRelease, project: DiscoveredReleaseProject): ReleaseBuildPlan {
  const publishers = discovery.repository?.publishers ?? {};
  return {
    project_path: project.path,
    tagging_strategy: discovery.repository?.tagging?.strategy ?? 'monorepo',
    artifacts: project.artifacts ?? {},
    publishers,
  };
}

function newBuild(fields: Pick<ReleaseBuild, 'repository' | 'project' | 'commit_sha' | 'branch' | 'pipeline_run_id' | 'run_attempt' | 'trigger' | 'plan' | 'created_by'> & { release_id?: string | null }, now: Date): ReleaseBuild {
  return {
    id: randomUUID(), status: fields.plan ? 'building' : 'pending', artifacts: {}, release_id: fields.release_id ?? null,
    error_message: null, created_at: now, updated_at: now, finished_at: null, plan_dispatched_at: null, release_dispatched_at: null,
    ...fields,
  };
}

/**
 * The run's release phase: one build per release-triggered project that has no successful build in
 * an earlier attempt. Idempotent per attempt. Returns the builds of the current attempt.
 */
export async function startRunReleases(ctx: EngineContext, run: PipelineRun): Promise<ReleaseBuild[]> {
  const discovery = run.discovery_output as DiscoveredRelease | null;
  const names = discovery?.releaseProjects ?? [];
  if (!discovery || names.length === 0) return [];
  const builds = await ctx.store.transaction(async (tx) => {
    await tx.lock(`run:${run.id}`);
    const existing = await tx.listRunReleaseBuilds(run.id);
    const now = ctx.clock.now();
    for (const name of names) {
      if (existing.some((b) => b.project === name && (b.run_attempt === run.attempt || b.status === 'success'))) continue;
      const project = discovery.projects.find((p) => p.name === name);
      if (!project) continue;
      const trigger: ReleaseBuild['trigger'] = project.trigger ?? { type: 'branch_push', branch: run.branch };
      const build = newBuild({
        repository: run.repository, project: name, commit_sha: run.commit_sha, branch: run.branch, pipeline_run_id: run.id,
        run_attempt: run.attempt, trigger, plan: planOf(discovery, project), created_by: run.triggered_by,
      }, now);
      const other = await tx.findActiveReleaseBuild(run.repository, name, run.commit_sha);
      if (other) {
        // A manual build of the same commit is running: this one waits for nothing and fails clearly.
        await tx.insertReleaseBuild({ ...build, status: 'failed', finished_at: now, error_message: `another release build of ${name} at this commit is running (${other.id}); retry the run when it has finished` });
      } else {
        await tx.insertReleaseBuild(build);
      }
    }
    return (await tx.listRunReleaseBuilds(run.id)).filter((b) => b.run_attempt === run.attempt);
  });
  return builds;
}

export interface ReleaseRequest {
  repository?: string | undefined;
  project?: string | undefined;
  commit_sha?: string | undefined;
  branch?: string | undefined;
  /** Rebuild and re-publish this release (`forge release retry`). */
  release_id?: string | undefined;
}

/**
 * A manual release (`forge release create`) or the rebuild of an existing one (`forge release
 * retry`): a build that first runs discovery on the commit. A build of the same commit that is
 * still running is returned instead of a second one (`created: false`).
 */
export async function requestReleaseBuild(ctx: EngineContext, request: ReleaseRequest, actor: string): Promise<{ build: ReleaseBuild; created: boolean }> {
  let repository: string;
  let project: string;
  let commitSha: string;
  let branch: string | null = request.branch ?? null;
  let trigger: ReleaseBuild['trigger'] = { type: 'manual' };
  let releaseId: string | null = null;
  if (request.release_id !== undefined) {
    if (request.repository !== undefined || request.project !== undefined || request.commit_sha !== undefined) {
      throw invalid('give either release_id (retry a release) or repository, project and commit_sha (a new release), not both', { fields: ['release_id'] });
    }
    const release = await getReleaseById(ctx, request.release_id);
    ({ repository, project } = release);
    commitSha = release.commit_sha;
    releaseId = release.id;
    const recorded = release.trigger;
    if (recorded) {
      trigger = { type: recorded.trigger_type as ReleaseTriggerType, ...(recorded.branch ? { branch: recorded.branch } : {}), ...(recorded.tag ? { tag: recorded.tag } : {}) };
      branch ??= recorded.branch;
    }
  } else {
    if (request.repository === undefined || request.project === undefined || request.commit_sha === undefined) {
      throw invalid('a release needs repository, project and commit_sha (or release_id to retry one)', {
        missing: (['repository', 'project', 'commit_sha'] as const).filter((f) => request[f] === undefined),
      });
    }
    repository = checkName('repository', 'repository', request.repository);
    project = checkName('project', 'project', request.project);
    commitSha = normaliseSha(request.commit_sha);
    if (branch !== null) branch = checkName('branch', 'branch', branch);
  }
  const now = ctx.clock.now();
  const build = newBuild({
    repository, project, commit_sha: commitSha, branch, pipeline_run_id: null, run_attempt: null, trigger, plan: null,
    created_by: actor, release_id: releaseId,
  }, now);
  for (let attempt = 0; ; attempt++) {
    const existing = await ctx.store.findActiveReleaseBuild(repository, project, commitSha);
    if (existing) return { build: existing, created: false };
    try {
      await ctx.store.insertReleaseBuild(build);
      break;
    } catch (error) {
      // A concurrent request made the build first: return that one.
      if (uniqueViolation(error) === undefined || attempt > 0) throw error;
    }
  }
  ctx.runChanged(build.id);
  return { build, created: true };
}

export async function getReleaseBuild(ctx: EngineContext, id: string): Promise<ReleaseBuild> {
  const build = await ctx.store.getReleaseBuild(id);
  if (!build) throw notFound('release build', { build_id: id });
  return build;
}

export async function listRunReleaseBuilds(ctx: EngineContext, runId: string): Promise<Page<ReleaseBuild>> {
  const rows = await ctx.store.listRunReleaseBuilds(runId);
  return { rows, total: rows.length };
}

/**
 * Changes a build under its lock. `change` sees the locked build and returns the patch (or undefined
 * to leave it); a build that has finished is never changed again.
 */
async function changeBuild(
  ctx: EngineContext, id: string,
  change: (build: ReleaseBuild, tx: Repos, now: Date) => Promise<Partial<ReleaseBuild> | undefined> | Partial<ReleaseBuild> | undefined,
): Promise<ReleaseBuild | undefined> {
  const changed = await ctx.store.transaction(async (tx) => {
    await tx.lock(buildLock(id));
    const build = await tx.getReleaseBuild(id);
    if (!build || isReleaseBuildTerminal(build.status)) return undefined;
    const now = ctx.clock.now();
    const patch = await change(build, tx, now);
    if (!patch) return undefined;
    const next: ReleaseBuild = { ...build, ...patch, updated_at: now };
    if (isReleaseBuildTerminal(next.status)) next.finished_at = now;
    await tx.updateReleaseBuild(id, { ...patch, updated_at: now, finished_at: next.finished_at });
    if (next.status === 'failed') {
      await tx.insertEvents([envelope('release.build.failed', {
        build_id: id, repository: build.repository, project: build.project, commit_sha: build.commit_sha,
        pipeline_run_id: build.pipeline_run_id, error: next.error_message ?? 'failed',
      }, now)]);
    }
    return next;
  });
  if (changed) {
    if (changed.status === 'failed') ctx.eventsWritten();
    ctx.runChanged(changed.pipeline_run_id ?? changed.id);
  }
  return changed;
}

/** A manual build's discovery output: the project's plan, or the build fails naming what is there. */
export function recordBuildPlan(ctx: EngineContext, id: string, discovery: DiscoveredRelease): Promise<ReleaseBuild | undefined> {
  return changeBuild(ctx, id, (build) => {
    if (build.status !== 'pending') return undefined;
    const project = discovery.projects.find((p) => p.name === build.project);
    if (!project) {
      const names = discovery.projects.map((p) => p.name);
      return { status: 'failed', error_message: `project ${build.project} is not in ${build.repository} at ${build.commit_sha.slice(0, 12)}; its projects are ${names.length > 0 ? names.join(', ') : '(none)'}` };
    }
    return { status: 'building', plan: planOf(discovery, project) };
  });
}

export function failReleaseBuild(ctx: EngineContext, id: string, message: string, status: 'failed' | 'cancelled' = 'failed'): Promise<ReleaseBuild | undefined> {
  return changeBuild(ctx, id, () => ({ status, error_message: message }));
}

/** Dispatcher bookkeeping: which jobs of the build were published, and when. */
export function markBuildDispatched(ctx: EngineContext, id: string, marks: { plan?: Date; artifacts?: string[]; release?: Date }): Promise<ReleaseBuild | undefined> {
  return changeBuild(ctx, id, (build, _tx, now) => {
    const artifacts: Record<string, ArtifactJobState> = { ...build.artifacts };
    for (const name of marks.artifacts ?? []) artifacts[name] = { status: 'pending', dispatched_at: now.toISOString() };
    return {
      ...(marks.plan ? { plan_dispatched_at: marks.plan } : {}),
      ...(marks.artifacts ? { artifacts } : {}),
      ...(marks.release ? { release_dispatched_at: marks.release, status: 'releasing' as const } : {}),
    };
  });
}

/** An artifact job's outcome; the first one counts (a redelivered job's second reply is ignored). */
export function recordArtifactOutcome(ctx: EngineContext, id: string, name: string, outcome: { ok: true; result: ArtifactJobResult } | { ok: false; error: string }): Promise<ReleaseBuild | undefined> {
  return changeBuild(ctx, id, (build) => {
    if (build.status !== 'building') return undefined;
    const current = build.artifacts[name];
    if (current && current.status !== 'pending') return undefined;
    const artifacts: Record<string, ArtifactJobState> = {
      ...build.artifacts,
      [name]: outcome.ok
        ? { ...current, status: 'success', result: outcome.result as unknown as Record<string, unknown> }
        : { ...current, status: 'failed', error: outcome.error },
    };
    return outcome.ok ? { artifacts } : { artifacts, status: 'failed', error_message: `artifact ${name} failed: ${outcome.error}` };
  });
}

/** The release job's outcome. */
export function recordReleaseOutcome(ctx: EngineContext, id: string, outcome: { ok: true; result: ReleaseJobResult } | { ok: false; error: string }): Promise<ReleaseBuild | undefined> {
  return changeBuild(ctx, id, (build) => {
    if (build.status !== 'releasing') return undefined;
    return outcome.ok
      ? { status: 'success', release_id: outcome.result.release_id }
      : { status: 'failed', error_message: `release failed: ${outcome.error}` };
  });
}

/** The successful artifact results of a build, in name order (the release job's input). */
export function artifactResults(build: ReleaseBuild): ArtifactJobResult[] {
  return Object.keys(build.artifacts).sort()
    .flatMap((name) => {
      const state = build.artifacts[name];
      return state?.status === 'success' && state.result ? [state.result as unknown as ArtifactJobResult] : [];
    });
}

/** Ends the unfinished builds of a run that ended (failed elsewhere, cancelled, timed out). */
export async function cancelRunReleaseBuilds(ctx: EngineContext, run: PipelineRun): Promise<void> {
  if (!isRunTerminal(run.status)) return;
  const builds = await ctx.store.listRunReleaseBuilds(run.id);
  for (const build of builds) {
    if (!isReleaseBuildTerminal(build.status)) await failReleaseBuild(ctx, build.id, `run ${run.status}: ${run.error_message ?? 'the run ended'}`, 'cancelled');
  }
}

/**
 * After a new release: a deployment to every environment whose policy has `auto_deploy`, allows
 * the release's trigger and branch, and needs no approval (digest §4.2 step 6). A deployment that
 * fails never fails the release (§2.3); the outcomes are returned for the log.
 */
export async function autoDeploy(ctx: EngineContext, releaseId: string, actor: string): Promise<{ environment: string; deployment_id?: string; error?: string }[]> {
  const release = await getReleaseById(ctx, releaseId);
  const facts = { trigger_type: release.trigger?.trigger_type ?? 'manual', branch: release.trigger?.branch ?? null } as const;
  const outcomes: { environment: string; deployment_id?: string; error?: string }[] = [];
  for (const policy of ctx.environments) {
    if (!policy.auto_deploy || policy.requires_approval || policyViolations(policy, facts).length > 0) continue;
    if (policy.frozen) {
      outcomes.push({ environment: policy.name, error: `${policy.name} is frozen${policy.freeze_reason ? ` (${policy.freeze_reason})` : ''}; not deployed automatically` });
      continue;
    }
    try {
      const deployment = await requestDeployment(ctx, { release_id: releaseId, environment: policy.name }, actor);
      outcomes.push({ environment: policy.name, deployment_id: deployment.id });
    } catch (error) {
      outcomes.push({ environment: policy.name, error: (error as Error).message });
    }
  }
  return outcomes;
}

/** Whether a run has a release phase (its discovery named release-triggered projects). */
export function hasReleasePhase(run: Pick<PipelineRun, 'discovery_output'>): boolean {
  const discovery = run.discovery_output as DiscoveredRelease | null;
  return (discovery?.releaseProjects?.length ?? 0) > 0;
}

/** Whether every release-triggered project of the run has a successful build (any attempt). */
export function runReleasesDone(run: PipelineRun, builds: readonly ReleaseBuild[]): boolean {
  const discovery = run.discovery_output as DiscoveredRelease | null;
  return (discovery?.releaseProjects ?? []).every((name) => builds.some((b) => b.project === name && b.status === 'success'));
}

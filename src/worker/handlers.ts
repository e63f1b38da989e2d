/**
 * Job handlers of the discovery and CI workers.
 *
 * discovery: check out the commit, discover its projects (CUE), return the discovery output (the
 *   dispatcher records it). Invalid configuration is a final error (validation_error) naming every
 *   problem as file:line:column.
 * ci: claim the task (attempt n) while checking out the commit, run each step in the project directory
 *   with a clean environment, streaming its output to the object store, reporting running and the
 *   outcome of each step; the first failing step ends the task (the API fails task, phase and run).
 *   A cancel (fail-fast or DELETE /v1/runs) kills the running step; its log ends with why.
 *   A step's `secrets` are resolved just before it starts (step-secrets.ts); their values are masked
 *   in its log and error, and a secret that cannot be had fails the step naming the reference.
 */
import { join } from 'node:path';
import type { Step } from '../config/project-config.ts';
import { ConfigError } from '../config/config-file.ts';
import { discover } from '../config/discovery.ts';
import { invalid, isForgeError } from '../domain/errors.ts';
import { stepLogKey } from '../domain/logs.ts';
import type { CiJobPayload, DiscoveryJobPayload } from '../engine/run-jobs.ts';
import type { JobHandler, ObjectStore, SecretProviders } from '../engine/ports.ts';
import { Masker } from '../lib/masker.ts';
import type { GitWorkspaces } from './git-workspace.ts';
import type { InternalApi } from './internal-api.ts';
import type { StructuredLog } from '../lib/log.ts';
import { inSpan, markFailed } from '../lib/tracing.ts';
import { formatDuration, runStep } from './steps.ts';
import { StepLog } from './step-log.ts';
import { resolveStepSecrets, type StepSecrets } from './step-secrets.ts';

export function discoveryHandler(deps: { workspaces: GitWorkspaces }): JobHandler {
  return async ({ job, signal }) => {
    const payload = job.payload as DiscoveryJobPayload;
    const workspace = await deps.workspaces.checkout(payload.repository, payload.commit_sha, `discovery-${job.id}`, signal);
    try {
      return await discover(workspace.dir, { git: { branch: payload.branch } });
    } catch (error) {
      // Paths relative to the repository root: the worktree's location means nothing to the user.
      if (error instanceof ConfigError) throw invalid(`invalid configuration at ${payload.commit_sha.slice(0, 12)}:\n${error.message.split(`${workspace.dir}/`).join('')}`, { problems: error.problems.length });
      throw error;
    } finally {
      await workspace.remove();
    }
  };
}

/** The environment a step or producer starts from: nothing of the worker's own but what a build needs, plus `vars`. */
export function buildEnv(vars: Record<string, string>): Record<string, string | undefined> {
  const keep = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ'];
  return { ...Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])), CI: 'true', ...vars };
}

function cleanEnv(payload: CiJobPayload): Record<string, string | undefined> {
  return buildEnv({
    FORGE_RUN_ID: payload.run_id, FORGE_REPOSITORY: payload.repository, FORGE_COMMIT_SHA: payload.commit_sha,
    FORGE_BRANCH: payload.branch, FORGE_PHASE: payload.phase, FORGE_PROJECT: payload.project, FORGE_PROJECT_PATH: payload.project_path,
  });
}

export function ciHandler(deps: { api: InternalApi; workspaces: GitWorkspaces; objects: ObjectStore; flushMs?: number; secrets?: SecretProviders; log?: StructuredLog }): JobHandler {
  return async ({ job, deliveryCount, signal }) => {
    const payload = job.payload as CiJobPayload;
    // Claim and checkout side by side: the first step starts a round trip sooner. The checkout is
    // named by delivery, not attempt (not known yet): two deliveries of a job never share a dir.
    const [claimed, checkedOut] = await Promise.allSettled([
      deps.api.claimTask(payload.task_id),
      deps.workspaces.checkout(payload.repository, payload.commit_sha, `${payload.task_id}-r${job.run_attempt}-d${deliveryCount}`, signal),
    ]);
    if (claimed.status === 'rejected') {
      if (checkedOut.status === 'fulfilled') await checkedOut.value.remove();
      const error: unknown = claimed.reason;
      // The task finished or its run ended while the job waited: nothing to do.
      if (isForgeError(error) && error.code === 'conflict') return { status: 'skipped', reason: error.message };
      throw error;
    }
    if (checkedOut.status === 'rejected') throw checkedOut.reason;
    const { attempt } = claimed.value;
    const workspace = checkedOut.value;
    const deadline = Date.now() + payload.timeout_ms;
    try {
      for (const step of payload.steps) {
        const ids = { run_id: payload.run_id, task_id: payload.task_id, step_id: step.id, step: step.name, phase: payload.phase, project: payload.project, attempt };
        // Each step a span (its status reports to the API carry it) and a log line when it ends.
        const ended = await inSpan(`step ${step.name}`, {
          attributes: { 'forge.run.id': payload.run_id, 'forge.task.id': payload.task_id, 'forge.step.id': step.id, 'forge.step.name': step.name, 'forge.phase': payload.phase, 'forge.project': payload.project, 'forge.task.attempt': attempt },
        }, async (span) => {
          const key = stepLogKey(payload.run_id, payload.phase, payload.project, step.name, attempt);
          await deps.api.reportStep(step.id, { status: 'running', logs_s3_key: key, attempt });
          let secrets: StepSecrets;
          try {
            secrets = await resolveStepSecrets(deps.secrets ?? {}, step.secrets, { where: `step ${step.name}: secrets`, ...(step.env ? { stepEnv: step.env } : {}), signal });
          } catch (error) {
            // Not to be had (missing, refused, no such provider): the step fails naming the reference.
            if (!isForgeError(error)) throw error;
            const log = new StepLog(deps.objects, key, deps.flushMs);
            await log.finish(`--- step failed: ${error.message}`);
            markFailed(span, error.message);
            deps.log?.warn({ ...ids, status: 'failed', exit_code: null, error: error.message }, 'step finished');
            await deps.api.reportStep(step.id, { status: 'failed', exit_code: null, attempt, error: error.message });
            return { exit_code: null };
          }
          const masker = new Masker(secrets.values);
          const log = new StepLog(deps.objects, key, deps.flushMs, masker);
          const outcome = await runStep(step as Step, {
            cwd: join(workspace.dir, payload.project_path), baseEnv: cleanEnv(payload), env: secrets.env, earthlySecrets: secrets.names,
            timeoutMs: Math.max(1, deadline - Date.now()), timeoutReason: `timed out: phase ${payload.phase} allows ${formatDuration(payload.timeout_ms)}`, signal, onOutput: (chunk) => log.write(chunk),
          }).finally(() => secrets.remove());
          const error = outcome.error === undefined ? undefined : masker.mask(outcome.error);
          const why = signal.aborted
            ? `--- step stopped: ${(signal.reason as Error | undefined)?.message ?? 'cancelled'}`
            : outcome.status === 'failed'
              ? `--- step failed after ${formatDuration(outcome.durationMs)}: ${error ?? `exit code ${outcome.exitCode}`}`
              : undefined;
          await log.finish(why);
          const status = signal.aborted ? 'stopped' : outcome.status;
          span.setAttribute('forge.step.status', status);
          if (outcome.exitCode !== null) span.setAttribute('process.exit.code', outcome.exitCode);
          if (status !== 'success') markFailed(span, why ?? status);
          deps.log?.[status === 'success' ? 'info' : 'warn']({ ...ids, status, exit_code: outcome.exitCode, duration_ms: Math.round(outcome.durationMs) }, 'step finished');
          if (signal.aborted) return 'cancelled' as const;
          await deps.api.reportStep(step.id, { status: outcome.status, exit_code: outcome.exitCode, attempt, ...(error && !error.startsWith('exited with code') ? { error } : {}) });
          return outcome.status === 'failed' ? { exit_code: outcome.exitCode } : 'success' as const;
        });
        if (ended === 'cancelled') return { status: 'cancelled' };
        if (ended !== 'success') return { status: 'failed', step: step.name, exit_code: ended.exit_code };
      }
      await deps.api.reportTask(payload.task_id, { status: 'success', attempt });
      return { status: 'success' };
    } catch (error) {
      if (isForgeError(error) && error.code === 'conflict') return { status: 'superseded', reason: error.message };
      throw error;
    } finally {
      await workspace.remove();
    }
  };
}

/**
 * `forge dispatch`: what one node of a run's Argo Workflow does (spec 07 "Orchestration Flow"): the
 * dispatcher pod publishes the stage's jobs on the seed's subjects with a reply inbox, waits for the
 * replies, and exits 0 or 1 with the result. Stages: discovery, ci, artifact, release, and
 * deployment (the run's auto-deploys, each published when it is next on its target).
 *
 *   ask the API (POST /v1/runs/:id/jobs) ──done──▶ exit 0      ──failed──▶ exit 1
 *      │ dispatch: jobs to publish, job ids to wait for
 *      ▼
 *   publish (reply_to = this node's inbox) → wait for every awaited reply; each reply is handed to
 *   the API (POST /v1/job-replies), which applies it exactly as the built-in dispatcher would
 *      │ all replies in                              │ no new reply within the jobs' timeout
 *      ▼                                             ▼
 *   ask again (ci: the next phase group)           exit 1 (timed out)
 *
 * The inbox is durable and named by run, attempt and stage (decision 149): a pod Argo retries
 * reopens it and receives the replies to jobs its predecessor published. It is removed when the
 * node ends. Status never flows through here: workers report to the API, Postgres is the truth.
 */
import type { DispatchStage, JobReply } from '../domain/jobs.ts';
import type { JobQueue } from '../engine/ports.ts';
import { toMessage, type StageJobs } from '../engine/run-jobs.ts';
import type { DispatchApi } from './internal-api.ts';
import { formatDuration } from './steps.ts';

export interface DispatchOptions {
  api: DispatchApi;
  queue: JobQueue;
  runId: string;
  stage: DispatchStage;
  /** ci: this phase group alone; default every group in order. */
  group?: number | undefined;
  /** Progress lines (stderr). */
  progress: (line: string) => void;
  /** How long to wait before asking again when a stage has nothing to wait for (default 1 s). */
  pollMs?: number;
  /** Aborting ends the node as failed (the pod was told to stop). */
  signal?: AbortSignal;
  /** How often a deployment node asks again while it waits (default 5 s). */
  deploymentPollMs?: number;
}

export interface DispatchResult {
  ok: boolean;
  run_id: string;
  stage: DispatchStage;
  group: number | null;
  run_status: string | null;
  /** Jobs this node published. */
  published: number;
  /** Replies of this run attempt received here, by job id. */
  replies: { job_id: string; type: string; ok: boolean; error?: string }[];
  message: string;
}

/** The durable inbox of a Workflow node: `dispatch-<run>-a<attempt>-<stage>[-g<group>]` (≤ 64 characters). */
/** How often a deployment node asks the API again while it waits for deployments. */
const DEPLOYMENT_POLL_MS = 5000;

export function dispatchInboxName(runId: string, attempt: number, stage: DispatchStage, group?: number): string {
  return `dispatch-${runId}-a${attempt}-${stage}${group === undefined ? '' : `-g${group}`}`.slice(0, 64);
}

export async function runDispatch(options: DispatchOptions): Promise<DispatchResult> {
  const { api, queue, runId, stage, group, progress } = options;
  const pollMs = options.pollMs ?? 1000;
  const replies = new Map<string, JobReply>();
  let attempt: number | undefined;
  let published = 0;
  let wake: (() => void) | undefined;
  let inbox: { subject: string; close(o?: { remove?: boolean }): Promise<void> } | undefined;
  const result = (ok: boolean, step: StageJobs | undefined, message: string): DispatchResult => ({
    ok, run_id: runId, stage, group: step?.group ?? group ?? null, run_status: step?.run_status ?? null, published,
    replies: [...replies.values()].map((r) => ({ job_id: r.job_id, type: r.type, ok: r.ok && !failedOutcome(r), ...(replyError(r) ? { error: replyError(r) } : {}) })),
    message,
  });

  const onReply = async (reply: JobReply): Promise<void> => {
    // Handed over first: if the API is away the reply is not settled and comes back.
    await api.handOver(reply);
    // A deployment job carries its deployment's id and attempt, not the run's.
    if (stage === 'deployment' ? reply.type !== 'deployment' : reply.run_attempt !== attempt) return;
    const first = !replies.has(reply.job_id);
    replies.set(reply.job_id, reply);
    if (first) progress(`${reply.type} job ${reply.job_id}: ${describeReply(reply)}`);
    wake?.();
  };

  const aborted = () => options.signal?.aborted === true;
  let lastLine = '';
  try {
    let last: StageJobs | undefined;
    for (;;) {
      if (aborted()) return result(false, last, `stopped: ${String(options.signal?.reason ?? 'signal')}`);
      const step = await api.stageJobs(runId, stage, group);
      last = step;
      if (attempt === undefined) attempt = step.run_attempt;
      if (step.run_attempt !== attempt) return result(false, step, `the run was retried (attempt ${step.run_attempt}); this node dispatched attempt ${attempt}`);
      if (step.outcome === 'done') return result(true, step, step.message);
      if (step.outcome === 'failed') return result(false, step, step.message);
      inbox ??= await queue.openInbox(onReply, { name: dispatchInboxName(runId, attempt, stage, group) });
      for (const job of step.jobs) await queue.publish(toMessage(job, inbox.subject), job.msg_id);
      published += step.jobs.length;
      const waiting = step.awaiting.filter((id) => !replies.has(id));
      const line = `${stage}${step.group !== null ? ` group ${step.group}` : ''}: ${step.message}; published ${step.jobs.length} job(s), waiting for ${waiting.length} repl${waiting.length === 1 ? 'y' : 'ies'}`;
      // Said once per change: a deployment node asks again every few seconds while it waits.
      if (line !== lastLine) progress(line);
      lastLine = line;
      if (waiting.length === 0) {
        await sleep(pollMs, options.signal);
        continue;
      }
      // Deployments are polled: the API answers done or failed for the ones it published itself
      // (decision 207), and claims again (a job to publish) what went without a reply too long.
      const polling = stage === 'deployment';
      const missing = await waitFor(waiting, polling ? Math.min(step.timeout_ms, options.deploymentPollMs ?? DEPLOYMENT_POLL_MS) : step.timeout_ms);
      if (aborted()) continue; // reported at the top of the loop
      if (missing.length > 0 && !polling) {
        // The API's watchdog may have failed the run meanwhile: its reason is the better message. A
        // deployment the API published after waiting for this node (decision 207) ended without a
        // reply here: the API has its outcome.
        const after = await api.stageJobs(runId, stage, group).catch(() => undefined);
        if (after?.outcome === 'failed') return result(false, after, after.message);
        if (after?.outcome === 'done') return result(true, after, after.message);
        return result(false, step, `no reply for ${missing.join(', ')} within ${formatDuration(step.timeout_ms)}`);
      }
    }
  } finally {
    await inbox?.close({ remove: true });
  }

  /** Resolves with the ids still without a reply once all arrived, the wait ran `timeoutMs` without a new one, or the node was stopped. */
  async function waitFor(ids: string[], timeoutMs: number): Promise<string[]> {
    let deadline = Date.now() + timeoutMs;
    let seen = replies.size;
    for (;;) {
      const missing = ids.filter((id) => !replies.has(id));
      if (missing.length === 0 || aborted()) return missing;
      if (replies.size > seen) {
        seen = replies.size;
        deadline = Date.now() + timeoutMs;
      }
      const left = deadline - Date.now();
      if (left <= 0) return missing;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 5000));
        function done(): void {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', done);
          resolve();
        }
        wake = done;
        options.signal?.addEventListener('abort', done, { once: true });
      });
      wake = undefined;
    }
  }
}

/** A CI or artifact job can end "ok" at the queue level with a failed outcome inside (a step failed). */
function failedOutcome(reply: JobReply): boolean {
  const status = (reply.result as { status?: unknown } | undefined)?.status;
  return status === 'failed';
}

function replyError(reply: JobReply): string | undefined {
  if (!reply.ok) return reply.error?.message ?? `${reply.type} job failed`;
  const result = reply.result as { status?: unknown; step?: unknown; exit_code?: unknown } | undefined;
  if (result?.status === 'failed') return `step ${String(result.step ?? '?')} failed${result.exit_code !== undefined ? ` (exit code ${String(result.exit_code)})` : ''}`;
  return undefined;
}

function describeReply(reply: JobReply): string {
  const error = replyError(reply);
  if (error) return `failed: ${error}`;
  const status = (reply.result as { status?: unknown } | undefined)?.status;
  return typeof status === 'string' ? status : 'ok';
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

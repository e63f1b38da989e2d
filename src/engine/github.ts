/**
 * GitHub commit statuses and the PR summary comment (digest §2.7, behaviours 26-27).
 *
 * The notifier reacts to run events. Every update describes the run as it is now (read from the
 * store), not as the event said, so a late `created` event for a run that already finished repeats
 * the final state instead of setting it back to pending.
 *
 * PR comment of a run: unclaimed → claimed (`pr_comment_posted_at` set once by the store) → posted.
 * The claim comes first, so a repeated event or a second replica never posts twice; if GitHub
 * refuses the post after the claim, the comment is lost rather than risked twice (at most once).
 *
 * GitHub failures are logged and swallowed: they never throw into the caller and never fail a run.
 */
import type { EventEnvelope, PhaseExecution, PipelineRun } from '../domain/entities.ts';
import { RUN_STATUSES, isRunTerminal, type RunStatus } from '../domain/statuses.ts';
import { assertNever } from '../lib/assert-never.ts';
import type { EngineContext } from './context.ts';
import { failureReason, getRunTree, type RunTree } from './runs.ts';

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

export interface CommitStatusInput {
  /** owner/name */
  repository: string;
  sha: string;
  state: CommitState;
  context: string;
  description: string;
  targetUrl?: string;
}

export interface PrCommentInput {
  repository: string;
  prNumber: number;
  /** Markdown. */
  body: string;
}

/** What Forge asks of GitHub. Adapter: gitops/github.client.ts (Octokit). */
export interface GitHubPort {
  setCommitStatus(input: CommitStatusInput): Promise<void>;
  createPrComment(input: PrCommentInput): Promise<void>;
}

export const DEFAULT_STATUS_CONTEXT = 'ci/catalyst-forge';

export interface GitHubNotifierOptions {
  /** Where users reach Forge; links point at `<publicUrl>/v1/runs/<id>`. */
  publicUrl: string;
  /** With Argo Workflows: the page of a Workflow in the Argo UI; statuses of a run that has one link there (digest §2.7). */
  workflowUrl?: ((workflowName: string) => string) | undefined;
  log?: (message: string, error: unknown) => void;
}

function isRunStatus(value: string): value is RunStatus {
  return (RUN_STATUSES as readonly string[]).includes(value);
}

/** Run status → commit state (digest §2.7). A status this build does not know is an `error`. */
export function githubState(status: string): CommitState {
  if (!isRunStatus(status)) return 'error';
  switch (status) {
    case 'pending':
    case 'running':
      return 'pending';
    case 'success':
      return 'success';
    case 'failed':
      return 'failure';
    case 'cancelled':
      return 'error';
    default:
      return assertNever(status, 'run status');
  }
}

/** 125 s → "2m5s"; an hour or more → "1h2m5s". */
export function formatElapsed(totalSeconds: number): string {
  const seconds = Math.max(0, Math.round(totalSeconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return `${h > 0 ? `${h}h` : ''}${m}m${seconds % 60}s`;
}

function elapsedSeconds(run: PipelineRun): number {
  return ((run.completed_at ?? run.started_at).getTime() - run.started_at.getTime()) / 1000;
}

type PhaseState = Pick<PhaseExecution, 'group_number' | 'status'>;

/** Phase groups run one after another, so "phase X of N" counts groups: X is the first group not yet finished. */
export function phaseProgress(phases: readonly PhaseState[]): { current: number; total: number; percent: number } | undefined {
  const groups = [...new Set(phases.map((p) => p.group_number))].sort((a, b) => a - b);
  if (groups.length === 0) return undefined;
  const open = (group: number) => phases.some((p) => p.group_number === group && (p.status === 'pending' || p.status === 'running'));
  const finished = groups.findIndex(open);
  const done = finished === -1 ? groups.length : finished;
  return { current: Math.min(done + 1, groups.length), total: groups.length, percent: Math.floor((done * 100) / groups.length) };
}

export const STARTED_DESCRIPTION = 'Pipeline started - discovering projects...';

export function progressDescription(phases: readonly PhaseState[]): string {
  const progress = phaseProgress(phases);
  return progress ? `Running phase ${progress.current} of ${progress.total} (${progress.percent}% complete)` : STARTED_DESCRIPTION;
}


/** The one-line status text GitHub shows beside the commit (the adapter cuts it to GitHub's 140 characters). */
export function describeRun(run: RunTree): string {
  const status = run.status;
  const elapsed = formatElapsed(elapsedSeconds(run));
  switch (status) {
    case 'pending':
      return STARTED_DESCRIPTION;
    case 'running':
      return progressDescription(run.phases);
    case 'success':
      return `Pipeline succeeded in ${elapsed}`;
    case 'failed':
      return `Pipeline failed after ${elapsed}: ${failureReason(run)}`;
    case 'cancelled':
      return `Pipeline cancelled after ${elapsed}${run.error_message ? `: ${run.error_message}` : ''}`;
    default:
      return assertNever(status, 'run status');
  }
}

export function statusContext(run: Pick<PipelineRun, 'github_context'>): string {
  return run.github_context?.context ?? DEFAULT_STATUS_CONTEXT;
}

export function runUrl(publicUrl: string, runId: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/v1/runs/${runId}`;
}

function statusOf(run: PipelineRun, description: string, options: GitHubNotifierOptions): CommitStatusInput {
  return {
    repository: run.repository, sha: run.commit_sha, state: githubState(run.status),
    context: statusContext(run), description, targetUrl: workflowLink(run, options) ?? runUrl(options.publicUrl, run.id),
  };
}

function workflowLink(run: PipelineRun, options: GitHubNotifierOptions): string | undefined {
  return run.argo_workflow_name && options.workflowUrl ? options.workflowUrl(run.argo_workflow_name) : undefined;
}

/**
 * "Running phase X of N (Y% complete)"; the dispatcher calls it when a phase group starts. A run
 * already finished is left alone, so progress never overwrites a final state. Never throws: a
 * GitHub failure goes to `log`.
 */
export async function notifyPhaseProgress(github: GitHubPort, run: PipelineRun, phases: readonly PhaseState[], options: GitHubNotifierOptions): Promise<void> {
  if (isRunTerminal(run.status)) return;
  await swallow(options, `commit status of run ${run.id}`, () =>
    github.setCommitStatus(statusOf(run, progressDescription(phases), options)));
}

const ICONS: Record<string, string> = { success: '✅', failed: '❌', cancelled: '⛔', skipped: '⏭️', running: '🔄', pending: '⏳' };
const icon = (status: string) => ICONS[status] ?? '❔';
/** Text inside a Markdown table cell: one line, no column breaks, bounded. */
const cell = (text: string, max = 200) => {
  const line = text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};

/** The PR summary (digest §2.7): status, duration, link, and one row per phase with its projects. */
export function prSummary(run: RunTree, options: GitHubNotifierOptions): string {
  const argo = workflowLink(run, options);
  const rows = run.phases.map((phase) => {
    const projects = phase.tasks
      .map((t) => `${icon(t.status)} ${t.project_name}${t.status === 'failed' && t.error ? ` (${t.error})` : ''}`)
      .join(', ');
    return `| ${phase.group_number} | ${cell(phase.phase_name)} | ${icon(phase.status)} ${phase.status} | ${cell(projects || '-', 500)} |`;
  });
  return [
    `<!-- forge:run:${run.id} -->`,
    `### ${icon(run.status)} Forge pipeline ${run.status}`,
    '',
    `**Commit** \`${run.commit_sha.slice(0, 12)}\` on \`${cell(run.branch)}\` · **Duration** ${formatElapsed(elapsedSeconds(run))} · [run details](${runUrl(options.publicUrl, run.id)})${argo ? ` · [Argo workflow](${argo})` : ''}`,
    ...(run.status === 'failed' ? ['', `**Error:** ${cell(failureReason(run), 500)}`] : []),
    '',
    ...(rows.length > 0
      ? ['| Group | Phase | Status | Projects |', '| --- | --- | --- | --- |', ...rows]
      : ['No phases ran.']),
  ].join('\n');
}

async function swallow(options: GitHubNotifierOptions, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    options.log?.(`GitHub update failed (${what}); the run is not affected`, error);
  }
}

export interface GitHubNotifier {
  /** Never throws. */
  onEvent(event: EventEnvelope): Promise<void>;
}

export function createGitHubNotifier(ctx: EngineContext, github: GitHubPort, options: GitHubNotifierOptions): GitHubNotifier {
  async function onRunEvent(runId: string, completed: boolean): Promise<void> {
    const run = await getRunTree(ctx, runId);
    await swallow(options, `commit status of run ${run.id}`, () =>
      github.setCommitStatus(statusOf(run, describeRun(run), options)));
    const prNumber = run.github_context?.pr_number;
    if (!completed || prNumber === undefined) return;
    if (!(await ctx.store.claimPrComment(run.id, ctx.clock.now()))) return;
    await swallow(options, `PR #${prNumber} comment for run ${run.id}`, () =>
      github.createPrComment({ repository: run.repository, prNumber, body: prSummary(run, options) }));
  }

  return {
    async onEvent(event) {
      const { event_type: type } = event;
      if (type !== 'pipeline.run.created' && type !== 'pipeline.run.completed' && type !== 'pipeline.run.retried') return;
      const { run_id: runId } = event.data as { run_id: string };
      // Reading the run or claiming the comment can fail too (database away): same rule, log and go on.
      await swallow(options, `${type} of run ${runId}`, () => onRunEvent(runId, type === 'pipeline.run.completed'));
    },
  };
}

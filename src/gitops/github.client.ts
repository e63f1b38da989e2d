/**
 * The GitHub port over Octokit (REST v3): commit statuses and PR comments. No retries here: a
 * failed update is logged by the notifier and the next update of the run supersedes it.
 */
import { Octokit } from '@octokit/core';
import { RequestError } from '@octokit/request-error';
import type { CommitStatusInput, GitHubPort, PrCommentInput } from '../engine/github.ts';

export const GITHUB_API_URL = 'https://api.github.com';
/** GitHub refuses a commit status description longer than this. */
export const STATUS_DESCRIPTION_LIMIT = 140;
const DEFAULT_TIMEOUT_MS = 10_000;

export interface GitHubClientOptions {
  /** A token allowed to write statuses and issue comments (`repo:status` + `public_repo`/`repo`, or a GitHub App installation token). */
  token: string;
  /** GitHub Enterprise: https://<host>/api/v3. */
  baseUrl?: string | undefined;
  timeoutMs?: number;
}

/** A GitHub API call that failed: GitHub's HTTP status (undefined when no answer came) and its message. */
export class GitHubApiError extends Error {
  override readonly name = 'GitHubApiError';
  constructor(message: string, readonly status: number | undefined, readonly githubMessage: string | undefined, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Cuts to GitHub's limit by characters (not UTF-16 units), marking the cut with an ellipsis. */
export function truncateDescription(text: string, limit = STATUS_DESCRIPTION_LIMIT): string {
  const chars = [...text];
  return chars.length <= limit ? text : `${chars.slice(0, limit - 1).join('')}…`;
}

function splitRepository(repository: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = repository.split('/');
  if (!owner || !repo || rest.length > 0) throw new GitHubApiError(`repository must be owner/name, not ${JSON.stringify(repository)}`, undefined, undefined);
  return { owner, repo };
}

export function createGitHubClient(options: GitHubClientOptions): GitHubPort {
  const octokit = new Octokit({ auth: options.token, baseUrl: (options.baseUrl ?? GITHUB_API_URL).replace(/\/+$/, ''), userAgent: 'forge' });
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  async function call(what: string, send: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
    try {
      await send(AbortSignal.timeout(timeoutMs));
    } catch (error) {
      if (error instanceof RequestError) {
        const data = error.response?.data as { message?: unknown } | undefined;
        const githubMessage = typeof data?.message === 'string' ? data.message : undefined;
        // Octokit reports a request that got no answer (refused, timed out) as status 500.
        const status = error.response ? error.status : undefined;
        throw new GitHubApiError(`GitHub ${what} failed: ${status ?? 'no answer'} ${githubMessage ?? error.message}`, status, githubMessage, { cause: error });
      }
      throw new GitHubApiError(`GitHub ${what} failed: ${(error as Error).message}`, undefined, undefined, { cause: error });
    }
  }

  return {
    async setCommitStatus(input: CommitStatusInput) {
      const { owner, repo } = splitRepository(input.repository);
      await call(`status for ${input.repository}@${input.sha}`, (signal) => octokit.request('POST /repos/{owner}/{repo}/statuses/{sha}', {
        owner, repo, sha: input.sha, state: input.state, context: input.context,
        description: truncateDescription(input.description),
        ...(input.targetUrl !== undefined ? { target_url: input.targetUrl } : {}),
        request: { signal },
      }));
    },
    async createPrComment(input: PrCommentInput) {
      const { owner, repo } = splitRepository(input.repository);
      await call(`comment on ${input.repository}#${input.prNumber}`, (signal) => octokit.request('POST /repos/{owner}/{repo}/issues/{issue_number}/comments', {
        owner, repo, issue_number: input.prNumber, body: input.body, request: { signal },
      }));
    },
  };
}

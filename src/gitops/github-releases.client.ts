/**
 * GitHubReleasesPort over Octokit (REST v3). No retries here (the github publisher retries what is
 * transient); every failure becomes a ForgeError whose code tells transient from final, with
 * GitHub's status and message in the message and `details`. A 403 whose rate limit is spent
 * (`x-ratelimit-remaining: 0`, or a "rate limit" message: GitHub's secondary limits) is
 * `rate_limited`, any other 403 `permission_denied`.
 */
import { Octokit } from '@octokit/core';
import { RequestError } from '@octokit/request-error';
import { ForgeError, type ErrorCode } from '../domain/errors.ts';
import type { GitHubRelease, GitHubReleaseAsset, GitHubReleasesPort, NewRelease } from '../engine/github-releases.ts';
import { GITHUB_API_URL } from './github.client.ts';

export interface GitHubReleasesClientOptions {
  /** A token with `contents: write` on the repositories it publishes to. */
  token: string;
  /** GitHub Enterprise: https://<host>/api/v3. */
  baseUrl?: string | undefined;
  /** Per API request; default 30 s. */
  timeoutMs?: number;
  /** Per asset upload; default 10 min. */
  uploadTimeoutMs?: number;
}

const PAGE = 100;

function splitRepository(repository: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = repository.split('/');
  if (!owner || !repo || rest.length > 0) throw new ForgeError('validation_error', `repository must be owner/name, not ${JSON.stringify(repository)}`, { repository });
  return { owner, repo };
}

function codeOf(status: number | undefined, message: string, headers: Record<string, string | number | undefined>): ErrorCode {
  if (status === undefined || status >= 500) return 'service_unavailable';
  if (status === 401) return 'authentication_required';
  if (status === 429) return 'rate_limited';
  if (status === 403) return String(headers['x-ratelimit-remaining']) === '0' || /rate limit/i.test(message) ? 'rate_limited' : 'permission_denied';
  if (status === 404) return 'not_found';
  if (status === 409 || status === 422) return 'conflict';
  return 'validation_error';
}

interface ReleaseBody { id: number; tag_name: string; html_url: string; upload_url: string }
interface AssetBody { id: number; name: string; size: number; browser_download_url: string; digest?: string | null }

const toRelease = (body: ReleaseBody): GitHubRelease => ({ id: body.id, tag: body.tag_name, url: body.html_url, uploadUrl: body.upload_url });
const toAsset = (body: AssetBody): GitHubReleaseAsset => ({
  id: body.id, name: body.name, size: body.size, downloadUrl: body.browser_download_url,
  ...(typeof body.digest === 'string' ? { digest: body.digest } : {}),
});

export function createGitHubReleasesClient(options: GitHubReleasesClientOptions): GitHubReleasesPort {
  const octokit = new Octokit({ auth: options.token, baseUrl: (options.baseUrl ?? GITHUB_API_URL).replace(/\/+$/, ''), userAgent: 'forge' });
  const timeoutMs = options.timeoutMs ?? 30_000;
  const uploadTimeoutMs = options.uploadTimeoutMs ?? 10 * 60_000;

  async function call<T>(what: string, send: (signal: AbortSignal) => Promise<{ data: unknown }>, limitMs = timeoutMs): Promise<T> {
    try {
      return (await send(AbortSignal.timeout(limitMs))).data as T;
    } catch (error) {
      if (error instanceof RequestError) {
        const data = error.response?.data as { message?: unknown; errors?: unknown } | undefined;
        const githubMessage = typeof data?.message === 'string' ? data.message : error.message;
        // Octokit reports a request that got no answer (refused, timed out) as status 500 without a response.
        const status = error.response ? error.status : undefined;
        const code = codeOf(status, githubMessage, error.response?.headers ?? {});
        throw new ForgeError(code, `GitHub ${what} failed: ${status ?? 'no answer'} ${githubMessage}`, { status, github_message: githubMessage, github_errors: data?.errors }, { cause: error });
      }
      throw new ForgeError('service_unavailable', `GitHub ${what} failed: ${(error as Error).message}`, {}, { cause: error });
    }
  }

  return {
    async findRelease(repository, tag) {
      const { owner, repo } = splitRepository(repository);
      try {
        return toRelease(await call<ReleaseBody>(`release ${tag} of ${repository}`, (signal) =>
          octokit.request('GET /repos/{owner}/{repo}/releases/tags/{tag}', { owner, repo, tag, request: { signal } })));
      } catch (error) {
        if (error instanceof ForgeError && error.code === 'not_found') return undefined;
        throw error;
      }
    },

    async createRelease(repository, release: NewRelease) {
      const { owner, repo } = splitRepository(repository);
      return toRelease(await call<ReleaseBody>(`create release ${release.tag} of ${repository}`, (signal) =>
        octokit.request('POST /repos/{owner}/{repo}/releases', {
          owner, repo, tag_name: release.tag, target_commitish: release.commitSha, name: release.name ?? release.tag,
          draft: release.draft ?? false, prerelease: release.prerelease ?? false, request: { signal },
        })));
    },

    async listAssets(repository, releaseId) {
      const { owner, repo } = splitRepository(repository);
      const assets: GitHubReleaseAsset[] = [];
      for (let page = 1; ; page++) {
        const rows = await call<AssetBody[]>(`assets of release ${releaseId} of ${repository}`, (signal) =>
          octokit.request('GET /repos/{owner}/{repo}/releases/{release_id}/assets', { owner, repo, release_id: releaseId, per_page: PAGE, page, request: { signal } }));
        assets.push(...rows.map(toAsset));
        if (rows.length < PAGE) return assets;
      }
    },

    async uploadAsset(repository, release, asset) {
      splitRepository(repository);
      return toAsset(await call<AssetBody>(`upload of ${asset.name} to release ${release.tag} of ${repository}`, (signal) =>
        octokit.request({
          method: 'POST', url: release.uploadUrl, name: asset.name, data: asset.body,
          headers: { 'content-type': asset.contentType, 'content-length': asset.body.byteLength },
          request: { signal },
        }), uploadTimeoutMs));
    },

    async deleteAsset(repository, assetId) {
      const { owner, repo } = splitRepository(repository);
      await call(`delete of asset ${assetId} of ${repository}`, (signal) =>
        octokit.request('DELETE /repos/{owner}/{repo}/releases/assets/{asset_id}', { owner, repo, asset_id: assetId, request: { signal } }));
    },
  };
}

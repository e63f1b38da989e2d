/**
 * What the `github` publisher asks of GitHub: releases and their assets (REST v3). Kept apart from
 * GitHubPort (commit statuses, PR comments), which the notifier uses. Adapter:
 * gitops/github-releases.client.ts (Octokit). Failures are ForgeErrors whose code says whether a
 * retry may help (`service_unavailable`, `rate_limited`) or not (`authentication_required`,
 * `permission_denied`, `not_found`, `conflict`, `validation_error`); `details` carry GitHub's
 * status and message.
 */

export interface GitHubRelease {
  id: number;
  tag: string;
  /** The release's page (`html_url`). */
  url: string;
  /** GitHub's upload URL template (`…/assets{?name,label}`). */
  uploadUrl: string;
}

export interface GitHubReleaseAsset {
  id: number;
  name: string;
  size: number;
  /** `browser_download_url`. */
  downloadUrl: string;
  /** `sha256:<hex>` as GitHub reports it (github.com since 2025; older GitHub Enterprise: undefined). */
  digest?: string;
}

export interface NewRelease {
  tag: string;
  /** The commit a new tag is created at. */
  commitSha: string;
  name?: string;
  draft?: boolean;
  prerelease?: boolean;
}

export interface GitHubReleasesPort {
  /** The release of `tag`, or undefined. */
  findRelease(repository: string, tag: string): Promise<GitHubRelease | undefined>;
  /** Creates the release (and the tag when missing); `conflict` when the release exists already. */
  createRelease(repository: string, release: NewRelease): Promise<GitHubRelease>;
  listAssets(repository: string, releaseId: number): Promise<GitHubReleaseAsset[]>;
  uploadAsset(repository: string, release: GitHubRelease, asset: { name: string; contentType: string; body: Uint8Array }): Promise<GitHubReleaseAsset>;
  deleteAsset(repository: string, assetId: number): Promise<void>;
}

/**
 * The `github` publisher: a file artifact (binary, archive) becomes an asset of the GitHub release
 * of the artifact's version (created at the commit when missing). Destination fields: `repository`
 * (default: the artifact's own), `tag` (default: the version), `draft`, `prerelease`.
 * Idempotent: an asset of the same name whose digest (as GitHub reports it) is the artifact's is
 * left alone (`skipped`); one with another or no digest is deleted and uploaded again (`replaced`).
 * Every GitHub call is retried on its own by withPublishRetries (transient failures only).
 * Limit: the asset is read into memory for the upload (GitHub takes assets up to 2 GiB).
 */
import { readFile } from 'node:fs/promises';
import { invalid, isForgeError, RetryableError } from '../domain/errors.ts';
import type { GitHubRelease, GitHubReleasesPort } from '../engine/github-releases.ts';
import type { Publisher, PublishDestination, PublishResult } from '../engine/ports.ts';
import { artifactFileName, checkDestinationType, checkVersion, configString, withPublishRetries, type RetryOptions } from '../engine/publishing.ts';

function configFlag(destination: PublishDestination, field: string): boolean {
  const value = destination.config[field];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalid(`publisher ${destination.name}: ${field} must be true or false`, { publisher: destination.name, field });
  return value;
}

export function createGitHubPublisher(options: { releases: GitHubReleasesPort; retry?: RetryOptions }): Publisher {
  const { releases } = options;
  const retried = <T>(what: string, attempt: () => Promise<T>) => withPublishRetries(what, attempt, options.retry);

  return {
    type: 'github',
    async publish(artifact, destination): Promise<PublishResult> {
      checkDestinationType(destination, 'github');
      const name = artifactFileName(artifact);
      const output = artifact.output;
      if (output.location_type !== 'file') throw invalid('unreachable: artifactFileName takes files only');
      const repository = configString(destination, 'repository') ?? artifact.repository;
      const tag = configString(destination, 'tag') ?? checkVersion(artifact.version);
      const draft = configFlag(destination, 'draft');
      const prerelease = configFlag(destination, 'prerelease');

      const release: GitHubRelease = await retried(`find release ${tag} of ${repository}`, () => releases.findRelease(repository, tag))
        ?? await retried(`create release ${tag} of ${repository}`, async () => {
          try {
            return await releases.createRelease(repository, { tag, commitSha: artifact.commit_sha, draft, prerelease });
          } catch (error) {
            // Another publisher of this release created it first.
            if (isForgeError(error) && error.code === 'conflict') {
              const found = await releases.findRelease(repository, tag);
              if (found) return found;
            }
            throw error;
          }
        });

      const assets = await retried(`list assets of release ${tag} of ${repository}`, () => releases.listAssets(repository, release.id));
      const existing = assets.find((a) => a.name === name);
      const result = (downloadUrl: string, skipped: boolean): PublishResult => ({
        uri: downloadUrl, digest: output.digest, skipped,
        metadata: {
          uri: downloadUrl, release_url: release.url, asset_name: name, download_url: downloadUrl,
          ...(existing && !skipped ? { replaced: 'true' } : {}),
        },
      });
      if (existing?.digest === output.digest) return result(existing.downloadUrl, true);
      if (existing) await retried(`delete asset ${name} of release ${tag} of ${repository}`, () => releases.deleteAsset(repository, existing.id));

      const body = await readFile(output.path);
      const uploaded = await retried(`upload ${name} to release ${tag} of ${repository}`, async () => {
        try {
          return await releases.uploadAsset(repository, release, { name, contentType: output.media_type, body });
        } catch (error) {
          if (!isForgeError(error) || error.code !== 'conflict') throw error;
          // An earlier attempt that failed midway may have left the asset (GitHub keeps failed uploads
          // as "starter" assets): take it when complete, else remove it and try again.
          const left = (await releases.listAssets(repository, release.id)).find((a) => a.name === name);
          if (left?.digest === output.digest) return left;
          if (!left) throw error;
          await releases.deleteAsset(repository, left.id);
          throw new RetryableError(`asset ${name} was left by an earlier attempt and is removed`, undefined, { cause: error });
        }
      });
      return result(uploaded.downloadUrl, false);
    },
    async close() {},
  };
}

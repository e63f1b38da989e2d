/**
 * Job handlers of the artifact and release workers (digest §3, §4.2).
 *
 * artifact: check out the commit, produce the artifact into a staging dir of its own (never
 *   publishing), publish it to each of its publishers in order (idempotent: the same digest there is
 *   skipped), push its tracking image `<tracking>/<repo>/<project>/<artifact>:sha-<commit>` and sign
 *   it. Any failure fails the job (a signing failure too; a missing SBOM is only a warning). Returns
 *   the ArtifactJobResult the release job needs.
 * release: check out the commit, render the project's resources with the real artifact outputs,
 *   refuse them when their XRs break the platform XRDs or the catalog rules (src/config/xrd.ts),
 *   build the Release OCI image for the release's number and aliases, push and sign it, register
 *   the release through POST /v1/releases. The number is part of the image, so it is chosen first:
 *   the existing release's (a retry), else the project's latest + 1; registering with that number
 *   expected answers 409 when a concurrent release took it, and the image is built again for the
 *   next one. Only a registered release exists: nothing is recorded when any step fails.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { findProjectConfig, type Artifact, type Producer } from '../config/project-config.ts';
import { ConfigError } from '../config/config-file.ts';
import { renderResources } from '../config/render.ts';
import { loadRepoConfig } from '../config/repo-config.ts';
import { checkResources } from '../config/xrd.ts';
import { ForgeError, invalid, isForgeError } from '../domain/errors.ts';
import { describeProblem, projectNamespaces } from '../domain/xr.ts';
import type { JobHandler, ProducedArtifact, PublishDestination, Publisher, SecretProviders } from '../engine/ports.ts';
import { artifactVersion, publisherCredentials, type PublisherCredentials } from '../engine/publishing.ts';
import { describeSecretRef, parseSecretRef } from '../domain/secrets.ts';
import { Masker } from '../lib/masker.ts';
import { assertNever } from '../lib/assert-never.ts';
import { maskedError, resolveSecret } from './step-secrets.ts';
import type { ArtifactJobPayload, ArtifactJobResult, BuildJobFields, ReleaseJobPayload, ReleaseJobResult } from '../engine/release-builds.ts';
import { buildEnv } from './handlers.ts';
import { generatedAliases } from '../engine/releases.ts';
import type { ImageRegistry } from '../oci/image.ts';
import { pushReleaseImage } from '../oci/release-image.ts';
import { signImage, type SigningKey } from '../oci/signing.ts';
import { pushTrackingImage } from '../oci/tracking-image.ts';
import type { GitWorkspaces } from './git-workspace.ts';
import type { InternalApi, RegisteredRelease } from './internal-api.ts';
import { produceArtifact } from './producers.ts';

const run = promisify(execFile);

/** What the release workers push to and sign with (src/bin/registries.ts makes it). */
export interface ReleaseRegistries {
  release: ImageRegistry;
  tracking: ImageRegistry;
  signingKey(): Promise<SigningKey>;
}

export interface ArtifactHandlerDeps {
  workspaces: GitWorkspaces;
  registries: ReleaseRegistries;
  /**
   * The publisher adapter for a destination (by its type), or a validation_error saying why there is
   * none. With credentials it is made for one publish and closed after it.
   */
  publisherFor(destination: PublishDestination, credentials?: PublisherCredentials): Publisher;
  /** Resolve publishers' `credentials` references (at the publish, never stored). */
  secrets?: SecretProviders;
  /** Where staging dirs are made (default the OS temp dir). */
  stagingRoot?: string;
  /** The SLSA builder id (the worker's identity). */
  builderId?: string;
}

/** The environment producers start from (buildEnv) with the release's FORGE_* variables. */
function producerEnv(payload: BuildJobFields): Record<string, string | undefined> {
  return buildEnv({
    FORGE_REPOSITORY: payload.repository, FORGE_COMMIT_SHA: payload.commit_sha, FORGE_BRANCH: payload.branch ?? '',
    FORGE_PROJECT: payload.project, FORGE_PROJECT_PATH: payload.project_path,
  });
}

/** The commit's time and author: the images' only timestamp comes from here (same inputs, same digest). */
async function commitInfo(dir: string): Promise<{ time: string; author: string; message: string }> {
  const { stdout } = await run('git', ['show', '-s', '--format=%cI%n%an%n%s', 'HEAD'], { cwd: dir });
  const [time = '', author = '', message = ''] = stdout.split('\n');
  return { time: new Date(time).toISOString().replace(/\.\d{3}Z$/, 'Z'), author, message };
}

/** The fields `@artifact(name.field)` reads (§3.6): producer output minus location_type/path, plus uri and publishers. */
export function artifactOutputs(artifact: ProducedArtifact, published: ArtifactJobResult['published_locations'], primaryUri: string): Record<string, unknown> {
  const { location_type: _where, path: _path, ...fields } = artifact.output as unknown as Record<string, unknown>;
  return {
    ...fields,
    uri: primaryUri,
    publishers: Object.fromEntries(published.map((p) => [p.publisher, { ...p.metadata, uri: p.uri }])),
  };
}

/**
 * Publishes to one destination; a publisher with `credentials` gets them resolved now (a missing
 * secret fails naming the reference), used for this publish only, and masked in any error.
 */
async function publishTo(deps: ArtifactHandlerDeps, artifact: ProducedArtifact, destination: PublishDestination, signal: AbortSignal) {
  const reference = destination.config.credentials;
  if (reference === undefined) return deps.publisherFor(destination).publish(artifact, destination);
  const parsed = parseSecretRef(reference, `publishers.${destination.name}.credentials`);
  if ('problems' in parsed) throw invalid(parsed.problems.join('\n'), { publisher: destination.name });
  const described = describeSecretRef(parsed.ref);
  const value = await resolveSecret(deps.secrets ?? {}, parsed.ref, signal).catch((error: unknown) => {
    throw isForgeError(error) ? new ForgeError(error.code, `publisher ${destination.name}: ${error.message}`, { ...error.details, publisher: destination.name }) : error;
  });
  const credentials = publisherCredentials(destination, value, described);
  // The whole value and each secret field of it (an error may quote a password alone, or in Basic form).
  const masker = new Masker([value, ...secretFields(credentials)]);
  let publisher: Publisher | undefined;
  try {
    publisher = deps.publisherFor(destination, credentials);
    return await publisher.publish(artifact, destination);
  } catch (error) {
    throw maskedError(error, masker);
  } finally {
    await publisher?.close();
  }
}

/** The parts of publisher credentials that are secret, as they may appear in a message. */
function secretFields(credentials: PublisherCredentials): string[] {
  switch (credentials.type) {
    case 'docker':
      return [credentials.password, `${credentials.username}:${credentials.password}`];
    case 's3':
      return [credentials.secretAccessKey];
    case 'github':
      return [credentials.token];
    default:
      return assertNever(credentials, 'publisher credentials');
  }
}

export function artifactHandler(deps: ArtifactHandlerDeps): JobHandler {
  return async ({ job, deliveryCount, signal }) => {
    const payload = job.payload as ArtifactJobPayload;
    const workspace = await deps.workspaces.checkout(payload.repository, payload.commit_sha, `${job.id}-d${deliveryCount}`, signal);
    const root = deps.stagingRoot ?? tmpdir();
    await mkdir(root, { recursive: true });
    const staging = await mkdtemp(join(root, `forge-staging-${payload.artifact}-`));
    try {
      const config = payload.config as unknown as Artifact & { producer: Producer & { args?: string[] } };
      const version = artifactVersion(payload.commit_sha, payload.trigger.tag);
      const commit = await commitInfo(workspace.dir);
      const started = new Date().toISOString();
      const produced = await produceArtifact({
        name: payload.artifact, artifact: config, repository: payload.repository, project: payload.project,
        commitSha: payload.commit_sha, version, projectDir: join(workspace.dir, payload.project_path), stagingDir: staging,
        baseEnv: producerEnv(payload), timeoutMs: payload.timeout_ms, signal,
      });
      if (produced.status === 'failed') {
        throw new ForgeError('validation_error', `${produced.error}${produced.output ? `\n--- build output (last lines) ---\n${produced.output.trimEnd()}` : ''}`, { artifact: payload.artifact, exit_code: produced.exitCode });
      }
      const artifact = produced.artifact;
      const published: ArtifactJobResult['published_locations'] = [];
      for (const name of config.publishers ?? []) {
        const fields = payload.publishers[name];
        if (!fields) throw invalid(`artifact ${payload.artifact} names publisher ${name}, which repo.cue does not define`, { publisher: name });
        const destination: PublishDestination = { name, type: String(fields.type), config: fields };
        const result = await publishTo(deps, artifact, destination, signal);
        published.push({ publisher: name, uri: result.uri, digest: result.digest, skipped: result.skipped, metadata: result.metadata });
      }
      const tracking = await pushTrackingImage(deps.registries.tracking, {
        repository: payload.repository, project: payload.project, commit: payload.commit_sha, created: commit.time,
        source: { ...(payload.branch ? { branch: payload.branch } : {}), ...(payload.trigger.tag ? { tag: payload.trigger.tag } : {}) },
        artifact: { name: artifact.name, type: artifact.type, digest: artifact.output.digest, size: artifact.output.size, output: artifactOutputs(artifact, [], '') },
        published: published.map((p) => ({ publisher: p.publisher, uri: p.uri, metadata: p.metadata })),
        build: {
          builderId: deps.builderId ?? 'https://forge.projectcatalyst.io/workers/artifact', pipelineRunId: payload.pipeline_run_id,
          producer: { type: config.producer.type, ...(config.producer.target ? { target: config.producer.target } : {}), ...(config.producer.run ? { run: config.producer.run } : {}) },
          startedOn: started, finishedOn: new Date().toISOString(),
        },
        stagingDir: staging,
      });
      try {
        await signImage(deps.registries.tracking.store, tracking.repo, tracking.digest, await deps.registries.signingKey(), { dockerReference: tracking.reference.replace(/:[^:/]+$/, '') });
      } catch (error) {
        throw new ForgeError(isForgeError(error) ? error.code : 'internal_error', `signing the tracking image ${tracking.pinned} failed: ${(error as Error).message}`, { artifact: payload.artifact });
      }
      const primary = published[0]?.uri ?? tracking.pinned;
      const result: ArtifactJobResult = {
        name: artifact.name, type: artifact.type, digest: artifact.output.digest,
        output: artifactOutputs(artifact, published, primary), published_locations: published, primary_uri: primary,
        tracking_oci_uri: tracking.pinned, tracking_oci_digest: tracking.digest, warnings: tracking.warnings,
      };
      return result;
    } finally {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      await workspace.remove();
    }
  };
}

export interface ReleaseHandlerDeps {
  workspaces: GitWorkspaces;
  registries: ReleaseRegistries;
  api: InternalApi;
  /** How often a release is built again for the next number before giving up (default 20). */
  maxNumberAttempts?: number;
}

const aliasesOf = (release: RegisteredRelease) => release.aliases.map((a) => ({ type: a.alias_type, value: a.alias }));

export function releaseHandler(deps: ReleaseHandlerDeps): JobHandler {
  return async ({ job, deliveryCount, signal }) => {
    const payload = job.payload as ReleaseJobPayload;
    const workspace = await deps.workspaces.checkout(payload.repository, payload.commit_sha, `${job.id}-d${deliveryCount}`, signal);
    try {
      const commit = await commitInfo(workspace.dir);
      const outputs = Object.fromEntries(payload.artifacts.map((a) => [a.name, a.output]));
      let yaml: string;
      try {
        const { config: repo } = await loadRepoConfig(workspace.dir);
        const rendered = await renderResources(join(workspace.dir, payload.project_path), repo, outputs);
        // The XRs are checked as `forge validate` checks them, before any image is built.
        const file = relative(workspace.dir, findProjectConfig(join(workspace.dir, payload.project_path)) ?? payload.project_path);
        const problems = checkResources(rendered.resources, { file, namespaces: projectNamespaces(payload.repository, payload.project) });
        if (problems.length > 0) {
          throw invalid(`${payload.project}'s deploy.resources are not valid XRs (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  ${describeProblem(p)}`).join('\n')}`, { problems: problems.length });
        }
        yaml = rendered.resources.length > 0 ? rendered.yaml : '';
      } catch (error) {
        if (error instanceof ConfigError) throw invalid(`rendering ${payload.project} failed:\n${error.message.split(`${workspace.dir}/`).join('')}`, { problems: error.problems.length });
        throw error;
      }
      const resources = yaml === '' ? [] : [yaml];
      const artifacts = payload.artifacts.map((a) => ({ name: a.name, type: a.type, digest: a.digest, trackingUri: a.tracking_oci_uri, uri: a.primary_uri }));
      const key = await deps.registries.signingKey();
      const trigger = { type: payload.trigger.type, ...(payload.trigger.branch ? { branch: payload.trigger.branch } : {}), ...(payload.trigger.tag ? { tag: payload.trigger.tag } : {}) };

      const existing = await deps.api.findRelease(payload.repository, payload.project, payload.commit_sha);
      let number = existing ? existing.release_number : ((await deps.api.latestRelease(payload.repository, payload.project))?.release_number ?? 0) + 1;
      const attempts = deps.maxNumberAttempts ?? 20;
      for (let attempt = 1; ; attempt++) {
        signal.throwIfAborted();
        const aliases = existing && existing.release_number === number ? aliasesOf(existing) : generatedAliases(number, trigger, payload.project, payload.tagging_strategy);
        const image = await pushReleaseImage(deps.registries.release, {
          repository: payload.repository, project: payload.project, number, aliases, trigger,
          source: { commit: payload.commit_sha, ...(payload.branch ? { branch: payload.branch } : {}), ...(payload.trigger.tag ? { tag: payload.trigger.tag } : {}), author: commit.author, message: commit.message },
          artifacts, created: commit.time, resources, pipelineRunId: payload.pipeline_run_id,
        });
        try {
          await signImage(deps.registries.release.store, image.repo, image.digest, key, { dockerReference: image.reference.replace(/:[^:/]+$/, '') });
        } catch (error) {
          throw new ForgeError(isForgeError(error) ? error.code : 'internal_error', `signing the release image ${image.pinned} failed: ${(error as Error).message}`, {});
        }
        try {
          const registered = await deps.api.registerRelease({
            repository: payload.repository, project: payload.project, commit_sha: payload.commit_sha,
            ...(payload.pipeline_run_id ? { pipeline_run_id: payload.pipeline_run_id } : {}),
            trigger, tagging_strategy: payload.tagging_strategy, release_number: number,
            oci_uri: image.reference, oci_digest: image.digest,
            artifacts: payload.artifacts.map((a) => ({
              name: a.name, type: a.type, tracking_oci_uri: a.tracking_oci_uri, tracking_oci_digest: a.tracking_oci_digest, primary_published_uri: a.primary_uri,
            })),
          });
          if (registered.release_number !== number) {
            // The commit was released meanwhile under another number: the image must say that one.
            number = registered.release_number;
            if (attempt >= attempts) throw new Error(`release ${registered.id} has number ${number}, but its image could not be rebuilt for it`);
            continue;
          }
          const result: ReleaseJobResult = { release_id: registered.id, release_number: number, oci_uri: image.reference, oci_digest: image.digest, created: registered.created };
          return result;
        } catch (error) {
          const next = isForgeError(error) && error.code === 'conflict' ? error.details.next_release_number : undefined;
          if (typeof next !== 'number' || attempt >= attempts) throw error;
          number = next;
        }
      }
    } finally {
      await workspace.remove();
    }
  };
}

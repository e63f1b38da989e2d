/**
 * The `docker` publisher: pushes an artifact to an OciStore (a registry, or the embedded image
 * layout store) as `<repository>:<tag>`.
 * - container: the image from the producer's OCI image layout, blobs first, then index children by
 *   digest, then the top manifest under the tag.
 * - binary / archive: a single-layer OCI artifact (OCI 1.1 `artifactType`, the empty config, the
 *   file as the one layer titled with its name, as ORAS does). No timestamps: the same file gives
 *   the same manifest digest.
 * Idempotent: a tag that already names the digest is not pushed again (`skipped`); blobs and
 * manifests are HEADed before every push anyway. Retries of network errors, 5xx and 429 are the
 * registry client's (backoffDelay, 5 attempts); 401/403 fail at once there.
 *
 * Destination fields: `repository` (default: the container's `ref`, else
 * `<owner>/<repo>/<project>/<artifact>`, lowercased), `namespace` (a prefix to it), `tag` (default:
 * the artifact's version).
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { conflict, invalid } from '../domain/errors.ts';
import type { OciStore, ProducedArtifact, PublishDestination, PublishResult, Publisher } from '../engine/ports.ts';
import { artifactFileName, checkDestinationType, checkVersion, configString } from '../engine/publishing.ts';
import { sha256Digest } from './content.ts';
import { layoutBlobPath, readLayoutImage } from './layout-source.ts';
import { MEDIA_TYPES } from './manifest.ts';
import { checkRepository, checkTag } from './reference.ts';

export interface OciPublisherOptions {
  store: OciStore;
  /** How URIs name the store: a registry host (`127.0.0.1:5000`), or e.g. `oci:<dir>` for the layout store. */
  registry: string;
}

const EMPTY_CONFIG = Buffer.from('{}');
const EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
/** The OCI artifactType of a Forge file artifact: `application/vnd.forge.artifact.<type>.v1`. */
export const fileArtifactType = (type: string) => `application/vnd.forge.artifact.${type}.v1`;

/** The OCI repository an artifact goes to (see the module comment). */
export function ociRepository(artifact: ProducedArtifact, destination: PublishDestination): string {
  const configured = configString(destination, 'repository');
  const ref = artifact.output.location_type === 'oci-layout' ? artifact.output.image_ref?.replace(/[:@].*$/, '') : undefined;
  const name = configured ?? ref ?? `${artifact.repository}/${artifact.project}/${artifact.name}`;
  const namespace = configString(destination, 'namespace');
  return checkRepository((namespace ? `${namespace.replace(/\/+$/, '')}/${name}` : name).toLowerCase());
}

/** The single-layer manifest of a file artifact (deterministic bytes). */
export function fileArtifactManifest(artifact: ProducedArtifact): Buffer {
  if (artifact.output.location_type !== 'file') throw invalid(`artifact ${artifact.name} is not a file`);
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: fileArtifactType(artifact.type),
    config: { mediaType: EMPTY_MEDIA_TYPE, digest: sha256Digest(EMPTY_CONFIG), size: EMPTY_CONFIG.length, data: EMPTY_CONFIG.toString('base64') },
    layers: [{
      mediaType: artifact.output.media_type,
      digest: artifact.output.digest,
      size: artifact.output.size,
      annotations: { 'org.opencontainers.image.title': artifactFileName(artifact) },
    }],
    annotations: { 'org.opencontainers.image.revision': artifact.commit_sha, 'org.opencontainers.image.version': artifact.version },
  }));
}

export function createOciPublisher(options: OciPublisherOptions): Publisher {
  const { store, registry } = options;

  return {
    type: 'docker',
    async publish(artifact, destination): Promise<PublishResult> {
      checkDestinationType(destination, 'docker');
      const repository = ociRepository(artifact, destination);
      const tag = checkTag(configString(destination, 'tag') ?? checkVersion(artifact.version));
      const output = artifact.output;

      // What will be pushed, read before anything is sent.
      const plan = output.location_type === 'oci-layout'
        ? await readLayoutImage(output.path, output.image_ref)
        : undefined;
      const manifest = plan ? undefined : fileArtifactManifest(artifact);
      const digest = plan ? plan.top.digest : sha256Digest(manifest!);
      if (plan && plan.top.digest !== output.digest) {
        throw conflict(`artifact ${artifact.name}: the layout at ${output.path} now holds ${plan.top.digest}, the producer reported ${output.digest}`, { path: output.path });
      }

      const slash = repository.lastIndexOf('/');
      const outputs = (skipped: boolean): PublishResult => ({
        uri: `${registry}/${repository}:${tag}@${digest}`,
        digest,
        skipped,
        metadata: {
          uri: `${registry}/${repository}:${tag}@${digest}`,
          registry,
          namespace: slash === -1 ? '' : repository.slice(0, slash),
          repository,
          tag,
          digest,
        },
      });
      const previous = await store.resolve(repository, tag);
      if (previous === digest) return outputs(true);

      if (plan) {
        for (const blob of plan.blobs) {
          await store.pushBlob(repository, createReadStream(layoutBlobPath(plan.dir, blob.digest)), blob.digest);
        }
        for (const child of plan.children) {
          await store.pushManifest(repository, child.digest, await readFile(layoutBlobPath(plan.dir, child.digest)), child.mediaType);
        }
        await store.pushManifest(repository, tag, await readFile(layoutBlobPath(plan.dir, plan.top.digest)), plan.top.mediaType);
      } else if (output.location_type === 'file') {
        await store.pushBlob(repository, EMPTY_CONFIG);
        await store.pushBlob(repository, createReadStream(output.path), output.digest);
        await store.pushManifest(repository, tag, manifest!, MEDIA_TYPES.ociManifest);
      }
      const pushed = outputs(false);
      // The tag named other content before: it now names this (the rule of every publisher).
      if (previous !== undefined) pushed.metadata.replaced = 'true';
      return pushed;
    },
    /** The store belongs to the caller, who closes it. */
    async close() {},
  };
}

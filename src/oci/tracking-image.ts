/**
 * The artifact tracking image (digest §3.5): `<tracking-registry>/<repository>/<project>/<artifact>:sha-<commit>`,
 * an immutable record of one artifact of one release, with the standard OCI image config and layers
 * - `application/vnd.forge.artifact.metadata.v1+json` (layer type `metadata`): the artifact, where it was
 *   published, how it was built;
 * - `application/vnd.cyclonedx+json` (`sbom`): the files the artifact's staging directory holds. When
 *   that cannot be made the image has no SBOM layer and the caller gets a warning (§3.5: an SBOM
 *   failure never fails the release);
 * - `application/vnd.in-toto+json` (`attestation`): an in-toto v1 statement with a SLSA provenance v1
 *   predicate whose subject is the artifact's digest.
 * Times come from the inputs only, so the same artifact, outputs and files give the same digest.
 */
import { invalid } from '../domain/errors.ts';
import { buildImage, canonicalJson, type BuiltImage, type ImageLayer, type ImageRegistry, LAYER_TYPE_ANNOTATION, locate, normalizeTime, pushImage } from './image.ts';
import { checkCommit, FORGE_ANNOTATIONS } from './release-image.ts';
import { cycloneDxSbom, listFiles, SBOM_MEDIA_TYPE } from './sbom.ts';

export const TRACKING_MEDIA_TYPES = {
  metadata: 'application/vnd.forge.artifact.metadata.v1+json',
  sbom: SBOM_MEDIA_TYPE,
  attestation: 'application/vnd.in-toto+json',
} as const;

export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_TYPE = 'https://slsa.dev/provenance/v1';
/** What a Forge artifact build is, for SLSA `buildDefinition.buildType`. */
export const FORGE_BUILD_TYPE = 'https://forge.projectcatalyst.io/build-types/artifact/v1';

const SHA256 = /^sha256:[a-f0-9]{64}$/;

export interface PublishedLocation {
  publisher: string;
  uri: string;
  metadata?: Record<string, unknown>;
}

export interface TrackingImageInput {
  /** `owner/name`. */
  repository: string;
  project: string;
  commit: string;
  /** The commit's (or release's) time, RFC 3339. */
  created: string;
  source?: { url?: string; branch?: string; tag?: string };
  artifact: {
    name: string;
    type: string;
    /** `sha256:<hex>` of the artifact (a container's manifest digest, a file's digest). */
    digest: string;
    size?: number;
    /** The producer's output (fields as `@artifact` sees them). */
    output?: Record<string, unknown>;
  };
  published: readonly PublishedLocation[];
  build: {
    /** SLSA builder id, e.g. the Forge worker's URI. */
    builderId: string;
    pipelineRunId?: string | null;
    releaseId?: string | null;
    producer: { type: string; [detail: string]: unknown };
    startedOn?: string;
    finishedOn?: string;
  };
  /** The directory the producer wrote the artifact into: what the SBOM lists. Absent: no SBOM (a warning). */
  stagingDir?: string;
  /** The SBOM's tool entry. */
  tool?: { name: string; version: string };
}

export interface BuiltTrackingImage extends BuiltImage {
  repo: string;
  tag: string;
  reference: string;
  pinned: string;
  /** Things that went wrong without failing the image (an SBOM that could not be made). */
  warnings: string[];
}

const DEFAULT_TOOL = { name: 'catalyst-forge', version: '0.1.0' };

function provenance(input: TrackingImageInput): Buffer {
  const source = input.source?.url ?? input.repository;
  const run = input.build.pipelineRunId ?? input.build.releaseId;
  return canonicalJson({
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: input.artifact.name, digest: { sha256: input.artifact.digest.slice('sha256:'.length) } }],
    predicateType: SLSA_PROVENANCE_TYPE,
    predicate: {
      buildDefinition: {
        buildType: FORGE_BUILD_TYPE,
        externalParameters: {
          repository: input.repository,
          project: input.project,
          artifact: input.artifact.name,
          type: input.artifact.type,
          producer: input.build.producer,
          ...(input.source?.branch ? { branch: input.source.branch } : {}),
          ...(input.source?.tag ? { tag: input.source.tag } : {}),
        },
        resolvedDependencies: [{ uri: `git+${source}@${input.commit}`, digest: { gitCommit: input.commit } }],
      },
      runDetails: {
        builder: { id: input.build.builderId },
        metadata: {
          ...(run ? { invocationId: run } : {}),
          ...(input.build.startedOn ? { startedOn: normalizeTime(input.build.startedOn, 'build.startedOn') } : {}),
          ...(input.build.finishedOn ? { finishedOn: normalizeTime(input.build.finishedOn, 'build.finishedOn') } : {}),
        },
      },
    },
  });
}

/** Builds the tracking image (nothing is pushed); reads and hashes the staging dir for the SBOM. */
export async function buildTrackingImage(registry: ImageRegistry, input: TrackingImageInput): Promise<BuiltTrackingImage> {
  checkCommit(input.commit);
  if (!SHA256.test(input.artifact.digest)) throw invalid(`invalid artifact digest ${JSON.stringify(input.artifact.digest)}: sha256:<64 lowercase hex>`, { digest: input.artifact.digest });
  if (!input.build.builderId) throw invalid('a builder id is required for the provenance');
  const created = normalizeTime(input.created, 'created');
  const { repo, reference } = locate(registry, `${input.repository.toLowerCase()}/${input.project}/${input.artifact.name}`);
  const tag = `sha-${input.commit}`;
  const warnings: string[] = [];

  const metadata = canonicalJson({
    schemaVersion: 1,
    repository: input.repository,
    project: input.project,
    commit: input.commit,
    created,
    source: input.source ?? {},
    artifact: input.artifact,
    published: [...input.published].sort((a, b) => (a.publisher < b.publisher ? -1 : a.publisher > b.publisher ? 1 : a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0)),
    build: input.build,
  });
  const layers: ImageLayer[] = [{ mediaType: TRACKING_MEDIA_TYPES.metadata, content: metadata, annotations: { [LAYER_TYPE_ANNOTATION]: 'metadata' } }];
  if (input.stagingDir === undefined) {
    warnings.push(`no SBOM for artifact ${input.artifact.name}: no staging directory was given`);
  } else {
    try {
      const files = await listFiles(input.stagingDir);
      const sbom = cycloneDxSbom({ name: input.artifact.name, type: input.artifact.type, digest: input.artifact.digest }, files, created, input.tool ?? DEFAULT_TOOL);
      layers.push({ mediaType: TRACKING_MEDIA_TYPES.sbom, content: sbom, annotations: { [LAYER_TYPE_ANNOTATION]: 'sbom' } });
    } catch (error) {
      warnings.push(`no SBOM for artifact ${input.artifact.name}: listing ${input.stagingDir} failed: ${(error as Error).message}`);
    }
  }
  layers.push({ mediaType: TRACKING_MEDIA_TYPES.attestation, content: provenance(input), annotations: { [LAYER_TYPE_ANNOTATION]: 'attestation' } });

  const labels = {
    [FORGE_ANNOTATIONS.kind]: 'artifact-tracking',
    [FORGE_ANNOTATIONS.repository]: input.repository,
    [FORGE_ANNOTATIONS.project]: input.project,
    [FORGE_ANNOTATIONS.artifact]: input.artifact.name,
    [FORGE_ANNOTATIONS.commit]: input.commit,
  };
  const image = buildImage({
    created,
    labels,
    layers,
    annotations: {
      ...labels,
      'org.opencontainers.image.created': created,
      'org.opencontainers.image.revision': input.commit,
      'org.opencontainers.image.title': `${input.repository}/${input.project}/${input.artifact.name}`,
      ...(input.source?.url ? { 'org.opencontainers.image.source': input.source.url } : {}),
    },
  });
  return { ...image, repo, tag, reference: `${reference}:${tag}`, pinned: `${reference}@${image.digest}`, warnings };
}

/** Builds and pushes the tracking image under `sha-<commit>`; `pushed` is false when it was already there. */
export async function pushTrackingImage(registry: ImageRegistry, input: TrackingImageInput): Promise<BuiltTrackingImage & { pushed: boolean }> {
  const image = await buildTrackingImage(registry, input);
  const { pushed } = await pushImage(registry.store, image.repo, image.tag, image);
  return { ...image, pushed };
}

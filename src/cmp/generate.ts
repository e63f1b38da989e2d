/**
 * `generate` (digest §4.7): the ReleasePointer in the application directory → the Release OCI image
 * `<release-registry>/<repository lowercased>/<project>:<commit-sha>` (named as
 * src/oci/release-image.ts names it) → its resources layer, found by media type → the manifests,
 * sorted by (kind, name), then the directory's env override. The store checks every manifest and
 * blob against its digest as it reads them; the manifest's commit annotation, when there is one,
 * must be the pointer's release.
 */
import { resolve } from 'node:path';
import { DEFAULT_POINTER_LAYOUT } from '../gitops/release-pointer.ts';
import { isForgeError } from '../domain/errors.ts';
import { type ImageRegistry, locate } from '../oci/image.ts';
import { checkManifest, MEDIA_TYPES } from '../oci/manifest.ts';
import { FORGE_ANNOTATIONS } from '../oci/release-image.ts';
import { permanent, pullFailure } from './cmp-error.ts';
import { readPointer, releaseTarget, type PointerDocument, type ReleaseTarget } from './pointer.ts';
import { layerDocuments, readEnvOverride, renderStream, selectResourcesLayer, sortResources, unpackLayer, type LayerDescriptor } from './resources.ts';

export interface GenerateOptions {
  /** GitOps layout template the pointer's path is read with; default DEFAULT_POINTER_LAYOUT. */
  layout?: string;
  /** The application's path inside the GitOps repository (Argo CD's ARGOCD_APP_SOURCE_PATH); default the directory's absolute path. */
  sourcePath?: string;
}

export interface GenerateResult {
  /** The multi-document YAML stream for stdout. */
  output: string;
  pointer: PointerDocument;
  target: ReleaseTarget;
  /** `<registry>/<repo>:<sha>` and the manifest digest it named. */
  reference: string;
  digest: string;
  /** How many documents came from the release, and the env file appended (if any). */
  resources: number;
  env: { file: string; documents: number } | undefined;
}

/** The image manifest types a release image can be (an index is not one). */
const IMAGE_MANIFEST_TYPES: readonly string[] = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];

interface ParsedManifest {
  layers: LayerDescriptor[];
  annotations: Record<string, string>;
}

function parseManifest(bytes: Buffer, mediaType: string, details: Record<string, string>): ParsedManifest {
  try {
    checkManifest(bytes, mediaType);
  } catch (error) {
    if (isForgeError(error)) throw permanent('image.manifest', `the release image's manifest is not usable: ${error.message}`, details, error);
    throw error;
  }
  const parsed = JSON.parse(bytes.toString('utf8')) as { layers: LayerDescriptor[]; annotations?: unknown };
  const annotations = typeof parsed.annotations === 'object' && parsed.annotations !== null ? parsed.annotations as Record<string, string> : {};
  return { layers: parsed.layers, annotations };
}

export async function generate(dir: string, registry: ImageRegistry, options: GenerateOptions = {}): Promise<GenerateResult> {
  const directory = resolve(dir);
  const pointer = await readPointer(directory);
  const layout = options.layout ?? DEFAULT_POINTER_LAYOUT;
  const target = releaseTarget(pointer, { layout, directory: options.sourcePath ?? directory });

  let located: { repo: string; reference: string };
  try {
    located = locate(registry, `${target.repository.toLowerCase()}/${target.project}`);
  } catch (error) {
    if (!isForgeError(error)) throw error;
    throw permanent('pointer.target', `repository ${target.repository} and project ${target.project} do not make an OCI repository name: ${error.message}`, { pointer: pointer.path });
  }
  const reference = `${located.reference}:${pointer.release}`;
  const details: Record<string, string> = {
    ref: reference,
    pointer: pointer.path,
    release: `${target.repository}/${target.project}@${pointer.release} (repository from ${target.from.repository}, project from ${target.from.project})`,
    ...(pointer.spec.ociUri !== undefined && pointer.spec.ociUri !== reference ? { 'pointer spec.ociUri': pointer.spec.ociUri } : {}),
  };

  const manifest = await registry.store.getManifest(located.repo, pointer.release, IMAGE_MANIFEST_TYPES)
    .catch((error: unknown) => { throw pullFailure(error, `release image ${reference}`, details); });
  const withDigest = { ...details, digest: manifest.digest };
  const { layers, annotations } = parseManifest(manifest.bytes, manifest.mediaType, withDigest);
  const commit = annotations[FORGE_ANNOTATIONS.commit];
  if (commit !== undefined && commit !== pointer.release) {
    throw permanent('image.commit', `the image ${reference} is of commit ${commit}, not the pointer's release ${pointer.release}`, withDigest);
  }

  const layer = selectResourcesLayer(layers, withDigest);
  const atLayer = { ...withDigest, layer: `${layer.mediaType} ${layer.digest}` };
  const blob = await registry.store.getBlob(located.repo, layer.digest)
    .catch((error: unknown) => { throw pullFailure(error, `the resources layer of ${reference}`, atLayer); });
  if (blob.byteLength !== layer.size) {
    throw permanent('layer.archive', `the resources layer is ${blob.byteLength} bytes, its descriptor says ${layer.size}`, atLayer);
  }
  const resources = sortResources(layerDocuments(unpackLayer(blob, layer.mediaType, atLayer), atLayer));
  if (resources.length === 0) {
    // Printing nothing would make Argo CD prune every resource of the application.
    throw permanent('resources.empty', 'the resources layer holds no YAML document: refusing to print an empty set of manifests', atLayer);
  }
  const env = await readEnvOverride(directory, { directory, ref: reference });
  return {
    output: renderStream([...resources, ...(env?.documents ?? [])]),
    pointer,
    target,
    reference,
    digest: manifest.digest,
    resources: resources.length,
    env: env && { file: env.file, documents: env.documents.length },
  };
}
